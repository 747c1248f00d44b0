/* genreq.h - Gemini's GenerateContentRequest by the API's rules (gemini-api.md §1.1,
 * docs/gemini-request.md): every field known and of the right type, both spellings (camelCase
 * and snake_case) accepted, normalised to camelCase; the model-specific rules (thinking) apart. */
#ifndef SC_GENREQ_H
#define SC_GENREQ_H

#include <stddef.h>

#include <jansson.h>

#include "host/core/status.h"

typedef enum {
    SC_GENREQ_SCRIMP = 0, /* the Gemini fields a scrimp request carries: contents,
                           * systemInstruction, tools, toolConfig, safetySettings,
                           * generationConfig (no cachedContent, no model: scrimp decides) */
    SC_GENREQ_API,        /* a whole generateContent body: also cachedContent and model */
} sc_genreq_kind_t;

/*
 * Check obj (borrowed), an object holding the fields of a GenerateContentRequest, and build
 * *out: a new object with the same content and every field name in camelCase. Free-form values
 * (functionCall.args, functionResponse.response, schema property names) are copied untouched.
 * Keys of obj that are not request fields: SC_ERR_INVALID (callers pass only the fields they mean
 * to be Gemini's). On failure SC_ERR_INVALID with a one-line reason naming the field's path:
 *   field "contents[1].parts[0].inline_dat": unknown field
 *   field "generationConfig.topP": must be a number
 * SC_ERR_NOMEM on allocation failure. @remark the caller releases *out with json_decref().
 */
sc_status_t sc_genreq_normalize(const json_t *obj, sc_genreq_kind_t kind, json_t **out, char *err,
                                size_t errlen);

/*
 * The rules that depend on the model, on a normalized request (borrowed): a thinking budget or
 * includeThoughts on a model that cannot think, thinking off where it cannot be turned off
 * (gemini-2.5-pro), a budget outside the model's range. model: a Gemini model id ("models/"
 * prefix allowed). A model the table does not know passes. SC_OK or SC_ERR_INVALID with a
 * one-line reason naming the field.
 */
sc_status_t sc_genreq_check_model(const json_t *norm, const char *model, char *err, size_t errlen);

#endif

/* What sc_genreq_render() found in a Content (a bit set). */
#define SC_GENREQ_TEXT     1u  /* a text part (thoughts excluded) */
#define SC_GENREQ_CALL     2u  /* a functionCall part */
#define SC_GENREQ_RESPONSE 4u  /* a functionResponse part */
#define SC_GENREQ_MEDIA    8u  /* an inlineData or fileData part */
#define SC_GENREQ_CODE     16u /* executableCode or codeExecutionResult */

/*
 * The text view of a normalised Content (borrowed), for embedding, routing, pruning and the
 * cache's keys: the text parts as they are (thought parts left out), and one bracketed line per
 * other part: "[call NAME {args}]", "[result NAME {response}]", "[media MIME HASH]" (XXH3-128 of
 * the data, or of the file URI), "[code LANGUAGE]" + the code, "[code result OUTCOME]" + the
 * output; JSON values in canonical form (sorted keys, compact). Parts are joined by "\n".
 * *flags (may be NULL) gets the SC_GENREQ_* bits of what the Content holds; *len its length.
 * @remark the caller frees the result with free(); NULL on allocation failure.
 */
char *sc_genreq_render(const json_t *content, unsigned *flags, size_t *len);

/* Canonical JSON of v (sorted keys, compact, reals at full precision): the same bytes for the
 * same value. @remark the caller frees with free(); NULL on allocation failure. */
char *sc_genreq_canonical(const json_t *v);
