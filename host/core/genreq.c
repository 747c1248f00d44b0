/* genreq.c - Gemini's GenerateContentRequest checked by the API's rules and normalised to
 * camelCase: one table per message type, walked recursively (docs/gemini-request.md). */
#include "host/core/genreq.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/jschema.h"
#include "host/core/util.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define GR_PATH_MAX      512 /* bytes of a field path quoted in an error */
#define GR_NAME_MAX      64  /* a field name's snake_case spelling */
#define GR_STOP_MAX      5   /* stopSequences entries */
#define GR_CANDIDATES    8   /* candidateCount upper bound */
#define GR_FN_NAME_MAX   128 /* a function declaration's name */
#define GR_INT32_MAX     2147483647.0

/* ---- the tables ---- */

typedef enum {
    F_STRING = 0,
    F_BYTES,      /* base64 string */
    F_BOOL,
    F_INT,        /* int32: a JSON integer, an integral real, or a string of digits */
    F_NUMBER,
    F_ENUM,
    F_MSG,
    F_STRUCT,     /* any JSON object, copied untouched */
    F_VALUE,      /* any JSON value, copied untouched */
    F_SCHEMA,     /* Gemini Schema (jschema OPENAPI) */
    F_JSONSCHEMA, /* JSON Schema (jschema JSON) */
} gr_kind_t;

#define GR_REPEATED 1u

typedef struct gr_msg gr_msg_t;

typedef struct {
    const char *name; /* camelCase */
    gr_kind_t kind;
    unsigned flags;
    const gr_msg_t *msg;       /* F_MSG */
    const char *const *values; /* F_ENUM, NULL-terminated */
} gr_field_t;

/* A check over the whole normalised message (oneof, ranges, field pairs); in: the input object
 * (for its spellings), out: the normalised copy. */
typedef int (*gr_rule_fn)(const json_t *out, char *path, char *err, size_t errlen);

struct gr_msg {
    const gr_field_t *fields;
    size_t n;
    gr_rule_fn rule;
};

#define GR_MSG(fields, rule) {fields, SC_ARRAY_LEN(fields), rule}

static const char *const gr_roles[] = {"user", "model", NULL};
static const char *const gr_languages[] = {"LANGUAGE_UNSPECIFIED", "PYTHON", NULL};
static const char *const gr_outcomes[] = {"OUTCOME_UNSPECIFIED", "OUTCOME_OK", "OUTCOME_FAILED",
                                          "OUTCOME_DEADLINE_EXCEEDED", NULL};
static const char *const gr_scheduling[] = {"SCHEDULING_UNSPECIFIED", "SILENT", "WHEN_IDLE",
                                            "INTERRUPT", NULL};
static const char *const gr_behavior[] = {"UNSPECIFIED", "BLOCKING", "NON_BLOCKING", NULL};
static const char *const gr_fc_modes[] = {"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED",
                                          NULL};
static const char *const gr_dyn_modes[] = {"MODE_UNSPECIFIED", "MODE_DYNAMIC", NULL};
static const char *const gr_harm[] = {
    "HARM_CATEGORY_UNSPECIFIED", "HARM_CATEGORY_DEROGATORY", "HARM_CATEGORY_TOXICITY",
    "HARM_CATEGORY_VIOLENCE", "HARM_CATEGORY_SEXUAL", "HARM_CATEGORY_MEDICAL",
    "HARM_CATEGORY_DANGEROUS", "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY", NULL};
static const char *const gr_thresholds[] = {
    "HARM_BLOCK_THRESHOLD_UNSPECIFIED", "BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF", NULL};
static const char *const gr_modalities[] = {"MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO",
                                            NULL};
static const char *const gr_media_res[] = {"MEDIA_RESOLUTION_UNSPECIFIED", "MEDIA_RESOLUTION_LOW",
                                           "MEDIA_RESOLUTION_MEDIUM", "MEDIA_RESOLUTION_HIGH",
                                           NULL};
static const char *const gr_levels[] = {"THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM",
                                        "HIGH", NULL};

static int rule_part(const json_t *out, char *path, char *err, size_t errlen);
static int rule_content(const json_t *out, char *path, char *err, size_t errlen);
static int rule_fndecl(const json_t *out, char *path, char *err, size_t errlen);
static int rule_gencfg(const json_t *out, char *path, char *err, size_t errlen);
static int rule_thinking(const json_t *out, char *path, char *err, size_t errlen);
static int rule_request(const json_t *out, char *path, char *err, size_t errlen);

static const gr_field_t f_blob[] = {{"mimeType", F_STRING, 0, NULL, NULL},
                                    {"data", F_BYTES, 0, NULL, NULL},
                                    {"displayName", F_STRING, 0, NULL, NULL}};
static const gr_msg_t m_blob = GR_MSG(f_blob, NULL);
static const gr_field_t f_file[] = {{"mimeType", F_STRING, 0, NULL, NULL},
                                    {"fileUri", F_STRING, 0, NULL, NULL},
                                    {"displayName", F_STRING, 0, NULL, NULL}};
static const gr_msg_t m_file = GR_MSG(f_file, NULL);
static const gr_field_t f_fcall[] = {{"id", F_STRING, 0, NULL, NULL},
                                     {"name", F_STRING, 0, NULL, NULL},
                                     {"args", F_STRUCT, 0, NULL, NULL}};
static const gr_msg_t m_fcall = GR_MSG(f_fcall, NULL);
static const gr_field_t f_fresp[] = {{"id", F_STRING, 0, NULL, NULL},
                                     {"name", F_STRING, 0, NULL, NULL},
                                     {"response", F_STRUCT, 0, NULL, NULL},
                                     {"parts", F_VALUE, 0, NULL, NULL},
                                     {"willContinue", F_BOOL, 0, NULL, NULL},
                                     {"scheduling", F_ENUM, 0, NULL, gr_scheduling}};
static const gr_msg_t m_fresp = GR_MSG(f_fresp, NULL);
static const gr_field_t f_code[] = {{"language", F_ENUM, 0, NULL, gr_languages},
                                    {"code", F_STRING, 0, NULL, NULL}};
static const gr_msg_t m_code = GR_MSG(f_code, NULL);
static const gr_field_t f_coderes[] = {{"outcome", F_ENUM, 0, NULL, gr_outcomes},
                                       {"output", F_STRING, 0, NULL, NULL}};
static const gr_msg_t m_coderes = GR_MSG(f_coderes, NULL);
static const gr_field_t f_video[] = {{"startOffset", F_STRING, 0, NULL, NULL},
                                     {"endOffset", F_STRING, 0, NULL, NULL},
                                     {"fps", F_NUMBER, 0, NULL, NULL}};
static const gr_msg_t m_video = GR_MSG(f_video, NULL);
static const gr_field_t f_part[] = {{"text", F_STRING, 0, NULL, NULL},
                                    {"inlineData", F_MSG, 0, &m_blob, NULL},
                                    {"fileData", F_MSG, 0, &m_file, NULL},
                                    {"functionCall", F_MSG, 0, &m_fcall, NULL},
                                    {"functionResponse", F_MSG, 0, &m_fresp, NULL},
                                    {"executableCode", F_MSG, 0, &m_code, NULL},
                                    {"codeExecutionResult", F_MSG, 0, &m_coderes, NULL},
                                    {"thought", F_BOOL, 0, NULL, NULL},
                                    {"thoughtSignature", F_BYTES, 0, NULL, NULL},
                                    {"videoMetadata", F_MSG, 0, &m_video, NULL},
                                    {"partMetadata", F_STRUCT, 0, NULL, NULL}};
static const gr_msg_t m_part = GR_MSG(f_part, rule_part);
static const gr_field_t f_content[] = {{"role", F_ENUM, 0, NULL, gr_roles},
                                       {"parts", F_MSG, GR_REPEATED, &m_part, NULL}};
static const gr_msg_t m_content = GR_MSG(f_content, rule_content);

static const gr_field_t f_fndecl[] = {{"name", F_STRING, 0, NULL, NULL},
                                      {"description", F_STRING, 0, NULL, NULL},
                                      {"parameters", F_SCHEMA, 0, NULL, NULL},
                                      {"parametersJsonSchema", F_JSONSCHEMA, 0, NULL, NULL},
                                      {"response", F_SCHEMA, 0, NULL, NULL},
                                      {"responseJsonSchema", F_JSONSCHEMA, 0, NULL, NULL},
                                      {"behavior", F_ENUM, 0, NULL, gr_behavior}};
static const gr_msg_t m_fndecl = GR_MSG(f_fndecl, rule_fndecl);
static const gr_field_t f_dynret[] = {{"mode", F_ENUM, 0, NULL, gr_dyn_modes},
                                      {"dynamicThreshold", F_NUMBER, 0, NULL, NULL}};
static const gr_msg_t m_dynret = GR_MSG(f_dynret, NULL);
static const gr_field_t f_gsr[] = {{"dynamicRetrievalConfig", F_MSG, 0, &m_dynret, NULL}};
static const gr_msg_t m_gsr = GR_MSG(f_gsr, NULL);
static const gr_field_t f_interval[] = {{"startTime", F_STRING, 0, NULL, NULL},
                                        {"endTime", F_STRING, 0, NULL, NULL}};
static const gr_msg_t m_interval = GR_MSG(f_interval, NULL);
static const gr_field_t f_gsearch[] = {{"timeRangeFilter", F_MSG, 0, &m_interval, NULL}};
static const gr_msg_t m_gsearch = GR_MSG(f_gsearch, NULL);
static const gr_field_t f_empty[] = {{"", F_VALUE, 0, NULL, NULL}}; /* matches no key */
static const gr_msg_t m_empty = {f_empty, 0, NULL};
static const gr_field_t f_tool[] = {{"functionDeclarations", F_MSG, GR_REPEATED, &m_fndecl, NULL},
                                    {"codeExecution", F_MSG, 0, &m_empty, NULL},
                                    {"googleSearch", F_MSG, 0, &m_gsearch, NULL},
                                    {"googleSearchRetrieval", F_MSG, 0, &m_gsr, NULL},
                                    {"urlContext", F_MSG, 0, &m_empty, NULL}};
static const gr_msg_t m_tool = GR_MSG(f_tool, NULL);
static const gr_field_t f_fccfg[] = {{"mode", F_ENUM, 0, NULL, gr_fc_modes},
                                     {"allowedFunctionNames", F_STRING, GR_REPEATED, NULL, NULL}};
static const gr_msg_t m_fccfg = GR_MSG(f_fccfg, NULL);
static const gr_field_t f_latlng[] = {{"latitude", F_NUMBER, 0, NULL, NULL},
                                      {"longitude", F_NUMBER, 0, NULL, NULL}};
static const gr_msg_t m_latlng = GR_MSG(f_latlng, NULL);
static const gr_field_t f_retcfg[] = {{"latLng", F_MSG, 0, &m_latlng, NULL},
                                      {"languageCode", F_STRING, 0, NULL, NULL}};
static const gr_msg_t m_retcfg = GR_MSG(f_retcfg, NULL);
static const gr_field_t f_toolcfg[] = {{"functionCallingConfig", F_MSG, 0, &m_fccfg, NULL},
                                       {"retrievalConfig", F_MSG, 0, &m_retcfg, NULL}};
static const gr_msg_t m_toolcfg = GR_MSG(f_toolcfg, NULL);
static const gr_field_t f_safety[] = {{"category", F_ENUM, 0, NULL, gr_harm},
                                      {"threshold", F_ENUM, 0, NULL, gr_thresholds}};
static const gr_msg_t m_safety = GR_MSG(f_safety, NULL);

static const gr_field_t f_thinking[] = {{"thinkingBudget", F_INT, 0, NULL, NULL},
                                        {"includeThoughts", F_BOOL, 0, NULL, NULL},
                                        {"thinkingLevel", F_ENUM, 0, NULL, gr_levels}};
static const gr_msg_t m_thinking = GR_MSG(f_thinking, rule_thinking);
static const gr_field_t f_gencfg[] = {
    {"stopSequences", F_STRING, GR_REPEATED, NULL, NULL},
    {"responseMimeType", F_STRING, 0, NULL, NULL},
    {"responseSchema", F_SCHEMA, 0, NULL, NULL},
    {"responseJsonSchema", F_JSONSCHEMA, 0, NULL, NULL},
    {"responseModalities", F_ENUM, GR_REPEATED, NULL, gr_modalities},
    {"candidateCount", F_INT, 0, NULL, NULL},
    {"maxOutputTokens", F_INT, 0, NULL, NULL},
    {"temperature", F_NUMBER, 0, NULL, NULL},
    {"topP", F_NUMBER, 0, NULL, NULL},
    {"topK", F_INT, 0, NULL, NULL},
    {"seed", F_INT, 0, NULL, NULL},
    {"presencePenalty", F_NUMBER, 0, NULL, NULL},
    {"frequencyPenalty", F_NUMBER, 0, NULL, NULL},
    {"responseLogprobs", F_BOOL, 0, NULL, NULL},
    {"logprobs", F_INT, 0, NULL, NULL},
    {"enableEnhancedCivicAnswers", F_BOOL, 0, NULL, NULL},
    {"speechConfig", F_STRUCT, 0, NULL, NULL},
    {"imageConfig", F_STRUCT, 0, NULL, NULL},
    {"thinkingConfig", F_MSG, 0, &m_thinking, NULL},
    {"mediaResolution", F_ENUM, 0, NULL, gr_media_res},
};
static const gr_msg_t m_gencfg = GR_MSG(f_gencfg, rule_gencfg);

/* A request's fields: scrimp's requests take all but the last two (scrimp decides the model and
 * the prompt cache); a whole generateContent body takes them all. */
static const gr_field_t f_req[] = {
    {"contents", F_MSG, GR_REPEATED, &m_content, NULL},
    {"systemInstruction", F_MSG, 0, &m_content, NULL},
    {"tools", F_MSG, GR_REPEATED, &m_tool, NULL},
    {"toolConfig", F_MSG, 0, &m_toolcfg, NULL},
    {"safetySettings", F_MSG, GR_REPEATED, &m_safety, NULL},
    {"generationConfig", F_MSG, 0, &m_gencfg, NULL},
    {"cachedContent", F_STRING, 0, NULL, NULL},
    {"model", F_STRING, 0, NULL, NULL},
};
#define GR_API_ONLY_FIELDS 2
static const gr_msg_t m_req_scrimp = {f_req, SC_ARRAY_LEN(f_req) - GR_API_ONLY_FIELDS,
                                      rule_request};
static const gr_msg_t m_req_api = GR_MSG(f_req, rule_request);

/* ---- paths and errors ---- */

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen,
                                                      const char *path, const char *fmt, ...)
{
    char reason[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (err && errlen)
        snprintf(err, errlen, "field \"%s\": %s", path, reason);
    return -1;
}

/* Append ".key" (or "key" at the root) to path; returns the old length to restore. Control
 * bytes and quotes of a key from the input become '?'. */
static size_t path_push(char *path, const char *key)
{
    size_t n = strlen(path), i;
    size_t room = GR_PATH_MAX - n;
    int w = snprintf(path + n, room, "%s%s", n ? "." : "", key);
    if (w < 0 || (size_t)w >= room)
        path[GR_PATH_MAX - 1] = '\0';
    for (i = n; path[i]; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c < 0x20 || c == 0x7F || c == '"' || c == '\\')
            path[i] = '?';
    }
    return n;
}

static size_t path_index(char *path, size_t idx)
{
    size_t n = strlen(path);
    size_t room = GR_PATH_MAX - n;
    int w = snprintf(path + n, room, "[%zu]", idx);
    if (w < 0 || (size_t)w >= room)
        path[GR_PATH_MAX - 1] = '\0';
    return n;
}

/* camelCase -> snake_case ("inlineData" -> "inline_data"). */
static void snake_of(const char *camel, char *out, size_t cap)
{
    size_t w = 0;
    for (const char *p = camel; *p && w + 2 < cap; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            out[w++] = '_';
            out[w++] = (char)(*p - 'A' + 'a');
        } else {
            out[w++] = *p;
        }
    }
    out[w] = '\0';
}

/* ---- values ---- */

static int is_base64(const char *s, size_t n)
{
    size_t pad = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/' || c == '-' || c == '_';
        if (c == '=') {
            pad++;
            continue;
        }
        if (!ok || pad)
            return 0;
    }
    return pad <= 2;
}

/* An int32 in any of proto3 JSON's forms. 0 on success. */
static int as_int(const json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = (long long)json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d != floor(d) || fabs(d) > GR_INT32_MAX)
            return -1;
        *out = (long long)d;
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        if (!*s)
            return -1;
        *out = strtoll(s, &end, 10);
        if (*end)
            return -1;
    } else {
        return -1;
    }
    return (*out > (long long)GR_INT32_MAX || *out < -(long long)GR_INT32_MAX - 1) ? -1 : 0;
}

static int norm_msg(const gr_msg_t *m, const json_t *in, char *path, int depth, json_t **out,
                    char *err, size_t errlen);

/* One scalar or message value of field f; *out a new reference. */
static int norm_value(const gr_field_t *f, const json_t *v, char *path, int depth, json_t **out,
                      char *err, size_t errlen)
{
    long long iv;

    *out = NULL;
    switch (f->kind) {
    case F_STRING:
        if (!json_is_string(v))
            return fail(err, errlen, path, "must be a string");
        *out = json_incref((json_t *)v);
        break;
    case F_BYTES:
        if (!json_is_string(v) || !is_base64(json_string_value(v), json_string_length(v)))
            return fail(err, errlen, path, "must be a base64 string");
        *out = json_incref((json_t *)v);
        break;
    case F_BOOL:
        if (!json_is_boolean(v))
            return fail(err, errlen, path, "must be true or false");
        *out = json_incref((json_t *)v);
        break;
    case F_INT:
        if (as_int(v, &iv) != 0)
            return fail(err, errlen, path, "must be an integer");
        *out = json_integer(iv);
        break;
    case F_NUMBER:
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return fail(err, errlen, path, "must be a number");
        *out = json_incref((json_t *)v);
        break;
    case F_ENUM: {
        if (json_is_string(v))
            for (size_t i = 0; f->values[i]; i++)
                if (strcmp(json_string_value(v), f->values[i]) == 0) {
                    *out = json_incref((json_t *)v);
                    return 0;
                }
        char list[256] = "";
        size_t n = 0;
        for (size_t i = 0; f->values[i] && n + 2 < sizeof(list); i++) {
            int w = snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", f->values[i]);
            if (w < 0)
                break;
            n += (size_t)w < sizeof(list) - n ? (size_t)w : sizeof(list) - n - 1;
        }
        return fail(err, errlen, path, "must be one of %s", list);
    }
    case F_STRUCT:
        if (!json_is_object(v))
            return fail(err, errlen, path, "must be an object");
        *out = json_deep_copy(v);
        break;
    case F_VALUE:
        *out = json_deep_copy(v);
        break;
    case F_SCHEMA:
    case F_JSONSCHEMA: {
        json_t *norm = NULL;
        if (!json_is_object(v) && !(f->kind == F_JSONSCHEMA && json_is_boolean(v)))
            return fail(err, errlen, path, "must be a schema object");
        if (sc_jschema_check(v, f->kind == F_SCHEMA ? SC_JSCHEMA_OPENAPI : SC_JSCHEMA_JSON, path,
                             &norm, err, errlen) != SC_OK)
            return -1;
        *out = norm;
        break;
    }
    case F_MSG:
        if (!json_is_object(v))
            return fail(err, errlen, path, "must be an object");
        return norm_msg(f->msg, v, path, depth + 1, out, err, errlen);
    }
    if (!*out)
        return fail(err, errlen, path, "out of memory");
    return 0;
}

static int norm_msg(const gr_msg_t *m, const json_t *in, char *path, int depth, json_t **out,
                    char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_t *res = json_object(); /* new; handed to *out */
    char snake[GR_NAME_MAX];

    *out = NULL;
    if (!res)
        return fail(err, errlen, path, "out of memory");
    if (depth > SC_JSCHEMA_DEPTH_MAX) {
        json_decref(res);
        return fail(err, errlen, path, "nested too deeply");
    }
    json_object_foreach((json_t *)in, key, v) {
        const gr_field_t *f = NULL;
        size_t mark = path_push(path, key);
        for (size_t i = 0; i < m->n && !f; i++) {
            snake_of(m->fields[i].name, snake, sizeof(snake));
            if (strcmp(key, m->fields[i].name) == 0 || strcmp(key, snake) == 0)
                f = &m->fields[i];
        }
        if (!f) {
            fail(err, errlen, path, "unknown field");
            goto bad;
        }
        if (json_object_get(res, f->name)) {
            fail(err, errlen, path, "given twice (as %s and %s)", f->name, snake);
            goto bad;
        }
        if (json_is_null(v)) { /* proto3 JSON: null is the field's default */
            path[mark] = '\0';
            continue;
        }
        json_t *nv = NULL;
        if (f->flags & GR_REPEATED) {
            size_t i;
            json_t *e;
            if (!json_is_array(v)) {
                fail(err, errlen, path, "must be an array");
                goto bad;
            }
            nv = json_array();
            if (!nv) {
                fail(err, errlen, path, "out of memory");
                goto bad;
            }
            json_array_foreach(v, i, e) {
                json_t *ne = NULL;
                size_t mk = path_index(path, i);
                if (norm_value(f, e, path, depth, &ne, err, errlen) != 0 ||
                    json_array_append_new(nv, ne) != 0) {
                    json_decref(nv);
                    goto bad;
                }
                path[mk] = '\0';
            }
        } else if (norm_value(f, v, path, depth, &nv, err, errlen) != 0) {
            goto bad;
        }
        if (json_object_set_new(res, f->name, nv) != 0) {
            fail(err, errlen, path, "out of memory");
            goto bad;
        }
        path[mark] = '\0';
        continue;
    bad:
        json_decref(res);
        return -1;
    }
    if (m->rule && m->rule(res, path, err, errlen) != 0) {
        json_decref(res);
        return -1;
    }
    *out = res;
    return 0;
}

/* ---- rules across fields ---- */

static int fail_at(char *err, size_t errlen, char *path, const char *field, const char *reason)
{
    size_t mark = path_push(path, field);
    fail(err, errlen, path, "%s", reason);
    path[mark] = '\0';
    return -1;
}

static int rule_part(const json_t *out, char *path, char *err, size_t errlen)
{
    static const char *const data[] = {"text", "inlineData", "fileData", "functionCall",
                                       "functionResponse", "executableCode",
                                       "codeExecutionResult"};
    int n = 0;
    for (size_t i = 0; i < SC_ARRAY_LEN(data); i++)
        n += json_object_get(out, data[i]) != NULL;
    if (n != 1)
        return fail(err, errlen, path,
                    n ? "holds more than one of text, inlineData, fileData, functionCall, "
                        "functionResponse, executableCode, codeExecutionResult"
                      : "must hold one of text, inlineData, fileData, functionCall, "
                        "functionResponse, executableCode, codeExecutionResult");
    json_t *blob = json_object_get(out, "inlineData");
    if (blob && (!json_object_get(blob, "mimeType") || !json_object_get(blob, "data")))
        return fail_at(err, errlen, path, "inlineData", "needs mimeType and data");
    json_t *file = json_object_get(out, "fileData");
    if (file && !json_object_get(file, "fileUri"))
        return fail_at(err, errlen, path, "fileData", "needs fileUri");
    json_t *fc = json_object_get(out, "functionCall");
    if (fc && !json_is_string(json_object_get(fc, "name")))
        return fail_at(err, errlen, path, "functionCall.name", "required");
    json_t *fr = json_object_get(out, "functionResponse");
    if (fr && !json_is_string(json_object_get(fr, "name")))
        return fail_at(err, errlen, path, "functionResponse.name", "required");
    if (fr && !json_object_get(fr, "response"))
        return fail_at(err, errlen, path, "functionResponse.response", "required");
    json_t *code = json_object_get(out, "executableCode");
    if (code && !json_object_get(code, "code"))
        return fail_at(err, errlen, path, "executableCode.code", "required");
    return 0;
}

static int rule_content(const json_t *out, char *path, char *err, size_t errlen)
{
    json_t *parts = json_object_get(out, "parts");
    if (!parts || json_array_size(parts) == 0)
        return fail_at(err, errlen, path, "parts", "must have at least 1 part");
    return 0;
}

static int rule_fndecl(const json_t *out, char *path, char *err, size_t errlen)
{
    json_t *name = json_object_get(out, "name");
    if (!json_is_string(name))
        return fail_at(err, errlen, path, "name", "required");
    const char *s = json_string_value(name);
    size_t n = json_string_length(name);
    int ok = n > 0 && n <= GR_FN_NAME_MAX &&
             ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_');
    for (size_t i = 0; ok && i < n; i++) {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '.' || c == ':' || c == '-';
    }
    if (!ok)
        return fail_at(err, errlen, path, "name",
                       "must start with a letter or an underscore and hold only a-z, A-Z, 0-9, "
                       "underscores, dots, colons and dashes, at most 128");
    if (json_object_get(out, "parameters") && json_object_get(out, "parametersJsonSchema"))
        return fail_at(err, errlen, path, "parametersJsonSchema",
                       "cannot be set together with parameters");
    return 0;
}

static int rule_thinking(const json_t *out, char *path, char *err, size_t errlen)
{
    if (json_object_get(out, "thinkingBudget") && json_object_get(out, "thinkingLevel"))
        return fail_at(err, errlen, path, "thinkingLevel",
                       "cannot be set together with thinkingBudget");
    return 0;
}

static int rule_gencfg(const json_t *out, char *path, char *err, size_t errlen)
{
    static const char *const mimes[] = {"text/plain", "application/json", "application/xml",
                                        "application/yaml", "text/x.enum"};
    json_t *v;
    long long iv;

    if ((v = json_object_get(out, "temperature")) &&
        !(json_number_value(v) >= 0.0 && json_number_value(v) <= 2.0))
        return fail_at(err, errlen, path, "temperature", "must be a number from 0 to 2");
    if ((v = json_object_get(out, "topP")) &&
        !(json_number_value(v) >= 0.0 && json_number_value(v) <= 1.0))
        return fail_at(err, errlen, path, "topP", "must be a number from 0 to 1");
    if ((v = json_object_get(out, "topK")) && json_integer_value(v) < 1)
        return fail_at(err, errlen, path, "topK", "must be an integer >= 1");
    if ((v = json_object_get(out, "maxOutputTokens")) && json_integer_value(v) < 1)
        return fail_at(err, errlen, path, "maxOutputTokens", "must be an integer >= 1");
    if ((v = json_object_get(out, "candidateCount"))) {
        iv = json_integer_value(v);
        if (iv < 1 || iv > GR_CANDIDATES)
            return fail_at(err, errlen, path, "candidateCount", "must be an integer from 1 to 8");
    }
    if ((v = json_object_get(out, "stopSequences")) && json_array_size(v) > GR_STOP_MAX)
        return fail_at(err, errlen, path, "stopSequences", "at most 5 entries");
    if ((v = json_object_get(out, "logprobs")) &&
        (json_integer_value(v) < 0 || json_integer_value(v) > 20))
        return fail_at(err, errlen, path, "logprobs", "must be an integer from 0 to 20");
    if ((v = json_object_get(out, "logprobs")) &&
        !json_is_true(json_object_get(out, "responseLogprobs")))
        return fail_at(err, errlen, path, "logprobs", "needs responseLogprobs true");
    const char *mime = NULL;
    if ((v = json_object_get(out, "responseMimeType"))) {
        int ok = 0;
        mime = json_string_value(v);
        for (size_t i = 0; i < SC_ARRAY_LEN(mimes) && !ok; i++)
            ok = strcmp(mime, mimes[i]) == 0;
        if (!ok)
            return fail_at(err, errlen, path, "responseMimeType",
                           "must be text/plain, application/json, application/xml, "
                           "application/yaml or text/x.enum");
    }
    int schema = json_object_get(out, "responseSchema") != NULL;
    int jschema = json_object_get(out, "responseJsonSchema") != NULL;
    if (schema && jschema)
        return fail_at(err, errlen, path, "responseJsonSchema",
                       "cannot be set together with responseSchema");
    if ((schema || jschema) &&
        (!mime || (strcmp(mime, "application/json") != 0 && strcmp(mime, "text/x.enum") != 0)))
        return fail_at(err, errlen, path, schema ? "responseSchema" : "responseJsonSchema",
                       "needs responseMimeType application/json (or text/x.enum)");
    return 0;
}

/* Every functionResponse follows a model turn that called that function. */
static int rule_request(const json_t *out, char *path, char *err, size_t errlen)
{
    json_t *contents = json_object_get(out, "contents");
    json_t *prev = NULL, *c;
    size_t i;

    json_array_foreach(contents, i, c) {
        json_t *parts = json_object_get(c, "parts"), *p;
        size_t j;
        json_array_foreach(parts, j, p) {
            json_t *fr = json_object_get(p, "functionResponse");
            if (!fr)
                continue;
            const char *name = json_string_value(json_object_get(fr, "name"));
            int found = 0;
            json_t *pp = json_object_get(prev, "parts"), *q;
            size_t k;
            json_array_foreach(pp, k, q) {
                json_t *fc = json_object_get(q, "functionCall");
                const char *cn = fc ? json_string_value(json_object_get(fc, "name")) : NULL;
                if (cn && name && strcmp(cn, name) == 0)
                    found = 1;
            }
            if (!found) {
                char at[96];
                snprintf(at, sizeof(at), "contents[%zu].parts[%zu].functionResponse", i, j);
                return fail_at(err, errlen, path, at,
                               "a function response must follow the model turn whose "
                               "functionCall it answers (same name)");
            }
        }
        prev = c;
    }
    return 0;
}

/* ---- the API ---- */

sc_status_t sc_genreq_normalize(const json_t *obj, sc_genreq_kind_t kind, json_t **out, char *err,
                                size_t errlen)
{
    char path[GR_PATH_MAX] = "";

    if (err && errlen)
        err[0] = '\0';
    if (!out)
        return SC_ERR_INVALID_ARG;
    *out = NULL;
    if (!json_is_object(obj)) {
        fail(err, errlen, "(request)", "must be an object");
        return SC_ERR_INVALID;
    }
    if (norm_msg(kind == SC_GENREQ_API ? &m_req_api : &m_req_scrimp, obj, path, 0, out, err,
                 errlen) != 0)
        return strstr(err ? err : "", "out of memory") ? SC_ERR_NOMEM : SC_ERR_INVALID;
    return SC_OK;
}

/* What a model allows of thinkingConfig (the Gemini thinking guide; gemini-api.md §1.1). */
typedef struct {
    const char *prefix; /* model id prefix; the longest matching one applies */
    int can_think;
    int can_disable;
    long min_budget, max_budget;
    int levels; /* takes thinkingLevel instead of a budget */
} gr_model_rule_t;

static const gr_model_rule_t gr_models[] = {
    {"gemini-2.5-pro", 1, 0, 128, 32768, 0},
    {"gemini-2.5-flash-lite", 1, 1, 512, 24576, 0},
    {"gemini-2.5-flash", 1, 1, 1, 24576, 0},
    {"gemini-2.0-", 0, 1, 0, 0, 0},
    {"gemini-1.5-", 0, 1, 0, 0, 0},
    {"gemini-3", 1, 0, 0, 0, 1},
};

sc_status_t sc_genreq_check_model(const json_t *norm, const char *model, char *err, size_t errlen)
{
    const gr_model_rule_t *r = NULL;
    size_t best = 0;

    if (err && errlen)
        err[0] = '\0';
    if (!model)
        return SC_OK;
    if (strncmp(model, "models/", 7) == 0)
        model += 7;
    for (size_t i = 0; i < SC_ARRAY_LEN(gr_models); i++) {
        size_t n = strlen(gr_models[i].prefix);
        if (n > best && strncmp(model, gr_models[i].prefix, n) == 0) {
            r = &gr_models[i];
            best = n;
        }
    }
    json_t *tc = json_object_get(json_object_get(norm, "generationConfig"), "thinkingConfig");
    if (!r || !tc)
        return SC_OK;
    json_t *budget = json_object_get(tc, "thinkingBudget");
    json_t *level = json_object_get(tc, "thinkingLevel");
    int thoughts = json_is_true(json_object_get(tc, "includeThoughts"));
    const char *at = "generationConfig.thinkingConfig";
    if (!r->can_think && (budget || level || thoughts)) {
        snprintf(err, errlen, "field \"%s\": thinking is not supported by %s", at, model);
        return SC_ERR_INVALID;
    }
    if (level && !r->levels) {
        snprintf(err, errlen, "field \"%s.thinkingLevel\": not supported by %s (use thinkingBudget)",
                 at, model);
        return SC_ERR_INVALID;
    }
    if (budget && r->levels) {
        return SC_OK; /* budgets are still accepted by the thinking-level models */
    }
    if (budget) {
        long b = (long)json_integer_value(budget);
        if (b == -1)
            return SC_OK;
        if (b == 0 && !r->can_disable) {
            snprintf(err, errlen,
                     "field \"%s.thinkingBudget\": %s only works in thinking mode (budget 0 "
                     "is not allowed)",
                     at, model);
            return SC_ERR_INVALID;
        }
        if (b != 0 && (b < r->min_budget || b > r->max_budget)) {
            snprintf(err, errlen,
                     "field \"%s.thinkingBudget\": %ld is out of range for %s: 0 turns thinking "
                     "off%s, -1 is dynamic, else %ld to %ld",
                     at, b, model, r->can_disable ? "" : " (not on this model)", r->min_budget,
                     r->max_budget);
            return SC_ERR_INVALID;
        }
    }
    return SC_OK;
}

/* ---- the text view ---- */

char *sc_genreq_canonical(const json_t *v)
{
    return v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY |
                                 JSON_REAL_PRECISION(17))
             : NULL;
}

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} gr_buf_t;

static void buf_add(gr_buf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) {
            b->oom = 1;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void buf_str(gr_buf_t *b, const char *s)
{
    if (s)
        buf_add(b, s, strlen(s));
}

static void buf_json(gr_buf_t *b, const json_t *v)
{
    char *s = sc_genreq_canonical(v);
    if (!s) {
        b->oom = 1;
        return;
    }
    buf_str(b, s);
    free(s);
}

/* "[media MIME HASH]" for an inlineData (data) or fileData (fileUri) object. */
static void buf_media(gr_buf_t *b, const json_t *m, const char *key)
{
    json_t *d = json_object_get(m, key);
    const char *s = json_is_string(d) ? json_string_value(d) : "";
    size_t n = json_is_string(d) ? json_string_length(d) : 0;
    XXH128_hash_t h = XXH3_128bits(s, n);
    char hex[40];
    snprintf(hex, sizeof(hex), "%016llx%016llx", (unsigned long long)h.high64,
             (unsigned long long)h.low64);
    buf_str(b, "[media ");
    buf_str(b, json_string_value(json_object_get(m, "mimeType")));
    buf_str(b, " ");
    buf_str(b, hex);
    buf_str(b, "]");
}

char *sc_genreq_render(const json_t *content, unsigned *flags, size_t *len)
{
    gr_buf_t b = {0};
    unsigned fl = 0;
    json_t *parts = json_object_get(content, "parts"), *p, *v;
    size_t i;
    int first = 1;

    buf_add(&b, "", 0);
    json_array_foreach(parts, i, p) {
        if (json_is_true(json_object_get(p, "thought")))
            continue;
        if (!first)
            buf_str(&b, "\n");
        first = 0;
        if ((v = json_object_get(p, "text"))) {
            fl |= SC_GENREQ_TEXT;
            buf_add(&b, json_string_value(v), json_string_length(v));
        } else if ((v = json_object_get(p, "functionCall"))) {
            fl |= SC_GENREQ_CALL;
            buf_str(&b, "[call ");
            buf_str(&b, json_string_value(json_object_get(v, "name")));
            buf_str(&b, " ");
            json_t *args = json_object_get(v, "args");
            if (args)
                buf_json(&b, args);
            else
                buf_str(&b, "{}");
            buf_str(&b, "]");
        } else if ((v = json_object_get(p, "functionResponse"))) {
            fl |= SC_GENREQ_RESPONSE;
            buf_str(&b, "[result ");
            buf_str(&b, json_string_value(json_object_get(v, "name")));
            buf_str(&b, " ");
            buf_json(&b, json_object_get(v, "response"));
            buf_str(&b, "]");
        } else if ((v = json_object_get(p, "inlineData"))) {
            fl |= SC_GENREQ_MEDIA;
            buf_media(&b, v, "data");
        } else if ((v = json_object_get(p, "fileData"))) {
            fl |= SC_GENREQ_MEDIA;
            buf_media(&b, v, "fileUri");
        } else if ((v = json_object_get(p, "executableCode"))) {
            fl |= SC_GENREQ_CODE;
            buf_str(&b, "[code ");
            buf_str(&b, json_string_value(json_object_get(v, "language")));
            buf_str(&b, "]\n");
            buf_str(&b, json_string_value(json_object_get(v, "code")));
        } else if ((v = json_object_get(p, "codeExecutionResult"))) {
            fl |= SC_GENREQ_CODE;
            buf_str(&b, "[code result ");
            buf_str(&b, json_string_value(json_object_get(v, "outcome")));
            buf_str(&b, "]\n");
            buf_str(&b, json_string_value(json_object_get(v, "output")));
        }
    }
    if (b.oom) {
        free(b.buf);
        return NULL;
    }
    if (flags)
        *flags = fl;
    if (len)
        *len = b.len;
    return b.buf;
}
