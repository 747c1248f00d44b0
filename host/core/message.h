/* message.h - the JSON contracts of DESIGN §4: request parsing and validation, result and
 * dead-letter serialisation. */
#ifndef SC_MESSAGE_H
#define SC_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "host/core/status.h"

/* Limits on an incoming request (config keys limits.*). */
typedef struct {
    size_t max_message_bytes; /* whole message, default 1 MiB */
    size_t max_messages;      /* turns in messages[], default 1000 */
    size_t max_id_bytes;      /* id, tenant and the other tag fields, default 256 */
} sc_limits_t;

/* The defaults of DESIGN §4.1. */
void sc_limits_default(sc_limits_t *lim);

typedef enum { SC_CACHE_ON = 0, SC_CACHE_EXACT, SC_CACHE_OFF } sc_cache_mode_t;

typedef struct {
    const char *role;    /* "user" or "model" */
    const char *content; /* UTF-8, content_len bytes, NUL-terminated */
    size_t content_len;
} sc_turn_t;

/* A parsed, validated request. Every const char* is borrowed from root and lives as long as
 * the request. Optional strings are NULL when absent. */
typedef struct {
    json_t *root; /* owned: the parsed document */
    const char *id;
    const char *tenant;
    const char *user, *agent, *stage, *conversation_id;
    const char *system;
    sc_turn_t *turns; /* owned array of n_turns */
    size_t n_turns;
    const char *model; /* "auto" (the default when absent) or a Gemini model id */
    int has_temperature;
    double temperature;       /* 0.0 .. 2.0 */
    long max_output_tokens;   /* 0 = unset */
    const char *response_mime_type; /* NULL = unset */
    sc_cache_mode_t cache;    /* default on */
    long deadline_ms;         /* 0 = unset (the configured default applies) */
    const char *priority;     /* NULL, "online" or "batch" */
    /* Gemini's own request shape (DESIGN §4.1), checked and normalised to camelCase by
     * host/core/genreq.h; NULL for the simple form. When set it holds "contents" (made from
     * messages when the request gave those) and every other Gemini field the request gave
     * ("systemInstruction" made from system). turns[] and system are then its text view
     * (sc_genreq_render), and temperature / max_output_tokens / response_mime_type are read from
     * its generationConfig. */
    json_t *native;           /* owned */
    unsigned parts;           /* SC_GENREQ_* bits over every turn (genreq.h); 0: text only */
    int has_tools;            /* tools[].functionDeclarations declared */
    char *native_scope;       /* owned canonical JSON of what, besides the contents, changes the
                               * answer (systemInstruction, tools, toolConfig, safetySettings,
                               * generationConfig); NULL for the simple form */
    char **texts;             /* owned: the rendered strings turns[] and system point into */
    size_t n_texts;
} sc_request_t;

/* 1 when the request's answers may come from the cache's exact layer only: it declares
 * functions, or carries function calls, function results or media (a look-alike is no answer). */
int sc_request_exact_only(const sc_request_t *req);

/*
 * Parse and validate one request (DESIGN §4.1).
 * buf: len bytes, not necessarily NUL-terminated.
 * On success *out is a new request; @remark the caller frees it with sc_request_free().
 * On failure returns SC_ERR_TOO_LARGE, SC_ERR_JSON (not JSON / not UTF-8) or SC_ERR_INVALID,
 * writes a one-line reason naming the offending field into errbuf, and copies the request's id
 * into idbuf (empty when none could be read) so a dead letter can name it.
 */
sc_status_t sc_request_parse(const void *buf, size_t len, const sc_limits_t *lim,
                             sc_request_t **out, char *idbuf, size_t idlen, char *errbuf,
                             size_t errlen);
void sc_request_free(sc_request_t *req); /* NULL ok */

/* Token counts as Gemini's usageMetadata reports them; missing counts are 0. */
typedef struct {
    long prompt_tokens;  /* promptTokenCount: includes cached tokens */
    long cached_tokens;  /* cachedContentTokenCount */
    long output_tokens;  /* candidatesTokenCount */
    long thought_tokens; /* thoughtsTokenCount */
} sc_usage_t;

typedef struct {
    double cache_usd, prune_usd, route_usd, prompt_cache_usd, batch_usd;
} sc_savings_t;

/* A result of DESIGN §4.2. Strings are borrowed for the duration of the serialisation call;
 * NULL strings are written as null (or left out for the optional tags). */
typedef struct {
    const char *id, *tenant;
    const char *user, *agent, *stage, *conversation_id; /* echoed tags, optional */
    int ok;                   /* status "ok" or "error" */
    const char *text;         /* ok only */
    const char *model;        /* the model that answered (or was asked) */
    const char *source;       /* "llm", "cache-exact", "cache-semantic", "coalesced" */
    const char *finish_reason;
    double similarity;        /* < 0: null */
    sc_usage_t usage;
    double cost_usd, baseline_cost_usd;
    sc_savings_t savings;
    long pruned_tokens;
    const char *route;        /* "pinned", "default", "cheap", "strong" */
    double route_score;       /* < 0: null */
    const char *route_basis;  /* why that tier: "router", "shadow", "below-target", "no-evidence";
                               * NULL: null (pinned, or not routed) */
    int promoted;
    const char *prompt_cache; /* NULL: null */
    long latency_ms;
    int attempts;             /* upstream attempts made, retries included */
    const json_t *candidates; /* ok only, borrowed: Gemini's candidates (every part), for a request
                               * in Gemini's own shape; NULL: left out */
    const json_t *usage_metadata; /* borrowed: Gemini's usageMetadata, as usage.metadata; NULL:
                                   * left out */
    const char *error_code;   /* error only */
    const char *error_message;
} sc_result_t;

/* Zero the struct and set the nullable numbers to "null". */
void sc_result_init(sc_result_t *res);

/* Serialise. @remark the caller frees the returned buffer with free(); *len gets its length
 * (without the NUL). NULL on allocation failure. */
char *sc_result_to_json(const sc_result_t *res, size_t *len);

/*
 * A dead letter (DESIGN §4.3): the original bytes as a JSON string ("original") when they are
 * valid UTF-8, else base64 ("original_base64"); the source coordinates; {"code","message"};
 * and "id" when one could be read (id may be NULL or empty).
 * @remark the caller frees the returned buffer with free().
 */
/* Standard base64 with padding. @remark the caller frees the result with free(); NULL: no memory. */
char *sc_base64_encode(const unsigned char *in, size_t n);
/* Decode standard padded base64 into out (cap bytes); *outlen gets the length. SC_ERR_INVALID_ARG
 * for anything but base64, SC_ERR_TOO_LARGE when out is too small. */
sc_status_t sc_base64_decode(const char *in, size_t n, unsigned char *out, size_t cap,
                             size_t *outlen);

char *sc_deadletter_to_json(const void *orig, size_t orig_len, const char *topic,
                            int32_t partition, int64_t offset, const char *id, const char *code,
                            const char *message, size_t *len);

#endif
