/* sim_internal.h - internal to host/gemini/sim*.c (the Gemini simulator): its state, the types of
 * a route handler and the helpers its files share. Nothing outside those files includes it. */
#ifndef SC_GEMINI_SIM_INTERNAL_H
#define SC_GEMINI_SIM_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "host/core/jschema.h"
#include "host/core/status.h"
#include "host/gemini/sim.h"

/* ---- limits shared by the simulator's files ---- */

#define SC_SIM_ID_MAX          128 /* longest {model} taken from a path */
#define SC_SIM_CHARS_PER_TOKEN 4   /* token estimate: ceil(bytes / 4) */
#define SC_SIM_HTTP_CODES      600
#define SC_SIM_FAULT_SLOTS     65536u /* per-body fault counters; a power of two */
#define SC_SIM_RETRY_DELAY_MAX 32
#define SC_SIM_BATCH_MAX       4096u /* batches held at once; beyond: 429 */
#define SC_SIM_BATCH_ID_LEN    32    /* characters of the {id} in batches/{id} */
#define SC_SIM_BATCH_NAME_MAX  (SC_SIM_BATCH_ID_LEN + 16)
#define SC_SIM_CACHE_MAX       1024u /* cachedContents held at once; beyond: 429 */
#define SC_SIM_CANDIDATES_MAX  8     /* generationConfig.candidateCount, 1..8 */
#define SC_SIM_ERR_MAX         512   /* a validation message from host/core (genreq, jschema) */
#define SC_SIM_FN_NAME_MAX     128   /* FunctionDeclaration.name, bytes */

#define SC_SIM_MSG_500                                                                             \
    "An internal error has occurred. Please retry or report in "                                   \
    "https://developers.generativeai.google/guide/troubleshooting"

#define SC_SIM_FNV_OFFSET 0xcbf29ce484222325ull
#define SC_SIM_FNV_PRIME  0x100000001b3ull

/* ---- models ---- */

typedef struct {
    const char *name;
    bool can_think;         /* accepts a thinking budget at all */
    bool thinks_by_default; /* thinks when no budget is given */
    bool can_disable;       /* thinkingBudget 0 turns thinking off */
    unsigned cache_min;     /* smallest cachedContents, tokens, unless the opts override it */
    /* the Model resource (GET /v1beta/models) */
    const char *display_name;
    const char *version;
    double temperature, top_p; /* the defaults */
    int top_k;
} sc_sim_model_t;

#define SC_SIM_MODEL_COUNT ((size_t)5) /* entries of sc_sim_models */

/* The model table (sim.c). */
extern const sc_sim_model_t sc_sim_models[];

/* An embedding model: embedContent and batchEmbedContents only. */
typedef struct {
    const char *name;
    const char *display_name;
    const char *version;
    unsigned dims_max; /* largest outputDimensionality */
} sc_sim_embed_model_t;

#define SC_SIM_EMBED_MODEL_COUNT ((size_t)2) /* entries of sc_sim_embed_models */
#define SC_SIM_EMBED_DIMS        SC_GEMINI_SIM_EMBED_DIMS

/* The embedding model table (sim.c). */
extern const sc_sim_embed_model_t sc_sim_embed_models[];

/* ---- faults ---- */

typedef enum {
    SC_SIM_F_429 = 0,
    SC_SIM_F_500,
    SC_SIM_F_503,
    SC_SIM_F_MALFORMED,
    SC_SIM_F_RESET,    /* the connection closed without any HTTP response */
    SC_SIM_F_TRUNCATE, /* 200 with the whole answer's Content-Length, the body cut short */
    SC_SIM_F_DELAY,    /* drawn on its own and not capped: a delay does not fail the request */
    SC_SIM_F_COUNT,
} sc_sim_fault_t;

#define SC_SIM_F_NONE (-1)

/* The spec names of the kinds, indexed by sc_sim_fault_t (sim_faults.c). */
extern const char *const sc_sim_fault_names[SC_SIM_F_COUNT];

typedef struct {
    double share[SC_SIM_F_COUNT]; /* each 0..1; the failing ones (all but delay) sum to at most 1 */
    unsigned delay_ms;
    uint64_t seed;
    unsigned max_per_request; /* 0: no cap */
    char retry_delay[SC_SIM_RETRY_DELAY_MAX];
    bool any; /* some share > 0 (generateContent faults only) */
    /* Batch Mode: not part of share[], so they never touch generateContent's draws */
    double batch_error;    /* share of batched requests answered with an error entry */
    double batch_fail;     /* share of batches that end FAILED */
    double batch_expire;   /* share of batches that end EXPIRED */
    double refuse;         /* share of answers of the cheaper models (not "-pro") that are a
                            * refusal: a cascade promotes them */
    bool job_state_prefix; /* JOB_STATE_* instead of BATCH_STATE_* */
} sc_sim_faults_t;

typedef struct {
    uint64_t key; /* hash of model + body; 0 = empty slot */
    unsigned count;
} sc_sim_fault_slot_t;

/* ---- quality (sim.h, "Quality spec") ---- */

typedef enum {
    SC_SIM_TIER_LITE = 0, /* the flash-lite models */
    SC_SIM_TIER_CHEAP,    /* the other flash models */
    SC_SIM_TIER_STRONG,   /* pro, and any model neither of the above */
    SC_SIM_TIER_COUNT,
} sc_sim_tier_t;

/* The truth file's table (sim_quality.c): normalised text -> right or wrong per tier. Read-only
 * once loaded, so handlers read it without a lock. */
typedef struct sc_sim_truth sc_sim_truth_t;

typedef struct {
    bool on;                       /* a non-empty spec was given */
    double cap[SC_SIM_TIER_COUNT]; /* capability of each tier, 0..1 */
    double summary_loss;           /* share of identifier tokens a summary drops, 0..1 */
    uint64_t seed;                 /* the drops' seed */
    sc_sim_truth_t *truth;         /* owned; NULL without a truth file */
} sc_sim_quality_t;

/* ---- requests, batches, caches ---- */

typedef enum {
    SC_SIM_BS_PENDING = 0,
    SC_SIM_BS_RUNNING,
    SC_SIM_BS_SUCCEEDED,
    SC_SIM_BS_FAILED,
    SC_SIM_BS_CANCELLED,
    SC_SIM_BS_EXPIRED,
} sc_sim_batch_state_t;

/* What the simulator takes from a GenerateContentRequest (a normalised one: camelCase only). */
typedef struct {
    size_t prompt_chars;     /* bytes of text in systemInstruction (if counted) and contents, and
                              * of the JSON of functionCall/functionResponse parts and tools */
    uint64_t last_user_hash; /* FNV of the text of the last user turn */
    long long max_output;    /* 0 = unset */
    bool have_budget;
    long long budget;
    bool json_mime;
    bool enum_mime;        /* text/x.enum */
    bool include_thoughts; /* thinkingConfig.includeThoughts */
    unsigned candidates;   /* candidateCount, 1..SC_SIM_CANDIDATES_MAX */
    bool schema;           /* responseSchema or responseJsonSchema: answers are instances */
    bool stop;             /* stopSequences given */
    bool calls;            /* function calling: the answer is a functionCall part */
    bool tool_result;      /* the last user turn holds functionResponse parts */
    size_t cached_tokens;  /* tokens of the cachedContent the request uses; 0 = none */
} sc_sim_gen_req_t;

/* Whether the answer to g reads the request itself (schema, stop sequences, tools), so that a
 * batch keeps it. */
#define SC_SIM_GEN_NEEDS_REQUEST(g) ((g)->schema || (g)->stop || (g)->calls || (g)->tool_result)

/* One request of a batch, validated at creation. */
typedef struct {
    sc_sim_gen_req_t g;
    json_t *metadata; /* owned reference to the echoed metadata object, or NULL */
    json_t *error;    /* owned reference to the error Status when the request fails, or NULL */
    json_t *request;  /* owned reference to the normalised request, kept in quality mode and when
                       * SC_SIM_GEN_NEEDS_REQUEST, or NULL */
} sc_sim_batch_item_t;

/* A batch. Owned by the sim's table; every field is guarded by batch_mu. */
typedef struct {
    char id[SC_SIM_BATCH_ID_LEN + 1];
    uint64_t seq; /* creation order, from 1; the list's page token */
    size_t model_index;
    char *display_name;        /* owned, NULL when none was given */
    int64_t create_wall_ns;    /* CLOCK_REALTIME, for the timestamps */
    int64_t create_mono_ms;    /* CLOCK_MONOTONIC, for the state machine */
    sc_sim_batch_state_t fate; /* SUCCEEDED, FAILED or EXPIRED: drawn at creation */
    bool cancelled;
    int64_t cancel_wall_ns;
    size_t n;                   /* requests */
    size_t failed;              /* of which error entries */
    sc_sim_batch_item_t *items; /* n entries, owned */
    json_t *output; /* owned GenerateContentBatchOutput, built at the first terminal read */
} sc_sim_batch_t;

/* A cachedContents resource (§4.1). Of contents and systemInstruction only counts are kept: they
 * are input-only and never echoed, and the answer depends on the request's last user turn. Its
 * tools and toolConfig are kept, normalised: a request through the cache calls its functions.
 * Owned by the sim's table; guarded by cache_mu. */
typedef struct {
    char id[SC_SIM_BATCH_ID_LEN + 1]; /* same id scheme as batches */
    uint64_t seq;                     /* creation order, from 1; the list's page token */
    size_t model_index;
    char *display_name; /* owned, NULL when none was given */
    size_t tokens;      /* usageMetadata.totalTokenCount */
    int64_t create_ns, update_ns, expire_ns; /* CLOCK_REALTIME */
    json_t *tools;                           /* owned reference, or NULL */
    json_t *tool_config;                     /* owned reference, or NULL */
} sc_sim_cache_t;

/* A slot of the key set behind duplicate_batch_keys: the hash of a metadata.key and the batch
 * that first carried it. */
typedef struct {
    uint64_t hash; /* 0 = empty slot */
    uint64_t seq;  /* first batch with the key */
    bool counted;  /* already counted as a duplicate */
} sc_sim_key_slot_t;

/* ---- the server ---- */

struct sc_gemini_sim {
    struct MHD_Daemon *daemon;
    int port;
    char *api_key; /* owned copy; NULL accepts any non-empty key */
    sc_sim_faults_t faults;

    pthread_mutex_t fault_mu; /* guards rng and fault_slots */
    bool fault_mu_ready;
    uint64_t rng;
    sc_sim_fault_slot_t *fault_slots; /* SC_SIM_FAULT_SLOTS entries, owned; NULL without cap */

    uint64_t id_nonce;
    atomic_uint_fast64_t id_counter;

    /* counters; the memory is zeroed by calloc */
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t by_status[SC_SIM_HTTP_CODES];
    atomic_uint_fast64_t faults_by_kind[SC_SIM_F_COUNT];
    atomic_uint_fast64_t generate_by_model[SC_SIM_MODEL_COUNT];
    /* tokens of the generateContent answers given (200s): prompt (cached included), cached,
     * candidates, thoughts — what a bill for this simulator would count */
    atomic_uint_fast64_t billed_tokens[SC_SIM_MODEL_COUNT][4];
    atomic_uint_fast64_t count_tokens;
    atomic_uint_fast64_t fault_evictions;
    atomic_uint_fast64_t refusals; /* answers replaced by a refusal (fault "refuse") */

    /* quality mode (sim_quality.c); the counters stay 0 when it is off */
    sc_sim_quality_t quality;
    atomic_uint_fast64_t q_right[SC_SIM_MODEL_COUNT], q_wrong[SC_SIM_MODEL_COUNT];
    atomic_uint_fast64_t q_judge, q_judge_malformed, q_judge_declined;
    atomic_uint_fast64_t q_summaries, q_tokens_kept, q_tokens_dropped;
    atomic_uint_fast64_t q_truth_hits; /* ordinary answers whose prompt is in the truth file */

    /* --record: one line per generateContent call */
    FILE *record;              /* owned; NULL without --record */
    pthread_mutex_t record_mu; /* guards record; never held with another lock */
    bool record_mu_ready;

    /* Batch Mode */
    unsigned batch_pending_ms, batch_running_ms;
    pthread_mutex_t batch_mu; /* guards everything below; never held with fault_mu */
    bool batch_mu_ready;
    sc_sim_batch_t **batches; /* SC_SIM_BATCH_MAX slots, owned, each NULL or owned */
    size_t batch_count;       /* live batches */
    size_t batch_items;       /* requests held over the live batches */
    uint64_t batch_seq;       /* last seq handed out */
    sc_sim_key_slot_t *keys;  /* key set, keys_cap slots (a power of two), owned; NULL at first */
    size_t keys_cap, keys_len;
    uint64_t batches_created, batch_requests, duplicate_keys, keys_overflow;

    /* context caching */
    unsigned cache_min_override; /* 0: each model's cache_min */
    pthread_mutex_t cache_mu;    /* guards everything below; never held with another lock */
    bool cache_mu_ready;
    sc_sim_cache_t **caches; /* SC_SIM_CACHE_MAX slots, owned, each NULL or owned */
    size_t cache_count;
    uint64_t cache_seq;
    uint64_t caches_created, caches_deleted, caches_expired, caches_too_small;
    uint64_t cached_tokens_served;
    double storage_dead; /* token-seconds of the caches already gone */
};

/* What a route handler sees. Everything is borrowed for the duration of the call. */
typedef struct {
    sc_gemini_sim_t *sim;
    struct MHD_Connection *conn;
    const char *id; /* the {model} of the path, or "" */
    const char *body;
    size_t body_len;
} sc_sim_call_t;

/* How a reply leaves the server: whole, or broken as the reset and truncate faults break it. */
typedef enum {
    SC_SIM_SEND_WHOLE = 0,
    SC_SIM_SEND_NOTHING, /* the connection is closed before any byte of a response */
    SC_SIM_SEND_CUT,     /* status, headers and a Content-Length of len, then len / 2 bytes of
                          * the body, then the connection is closed */
} sc_sim_send_t;

/* What a route handler produces. */
typedef struct {
    unsigned code;
    char *body; /* owned, malloc'd; NULL means "out of memory" and becomes a fixed 500 */
    size_t len;
    const char *fault; /* name of an injected fault, for the log; NULL if none */
    const char *ctype; /* Content-Type (static); NULL: application/json */
    sc_sim_send_t send;
} sc_sim_reply_t;

typedef void (*sc_sim_handler_fn)(sc_sim_call_t *call, sc_sim_reply_t *reply);

/* ---- sim.c: small helpers and replies ---- */

/* printf into errbuf (errlen bytes); nothing when errbuf is NULL or errlen 0. */
void sc_sim_errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The next value of a splitmix64 stream. */
uint64_t sc_sim_splitmix64(uint64_t *state);
/* Uniform in [0, 1), from the splitmix64 stream. */
double sc_sim_unit(uint64_t *state);
/* FNV-1a of len bytes, continuing from h (SC_SIM_FNV_OFFSET to start). */
uint64_t sc_sim_fnv(uint64_t h, const void *data, size_t len);
/* The token estimate of chars bytes of text. */
size_t sc_sim_tokens(size_t chars);
/* The model called name; *index (when not NULL) gets its index. @return borrowed, or NULL. */
const sc_sim_model_t *sc_sim_model_find(const char *name, size_t *index);
/* A key in either spelling (camelCase first). @return a borrowed reference or NULL. */
json_t *sc_sim_get2(const json_t *obj, const char *camel, const char *snake);
/* Serialize doc into the reply. @param doc: a new reference, stolen. */
void sc_sim_reply_json(sc_sim_reply_t *r, unsigned code, json_t *doc);
/* A Google error body {"error":{code,message,status,details}}.
 * @param details: a new reference to an array, stolen; NULL gives []. */
void sc_sim_reply_error(sc_sim_reply_t *r, unsigned code, const char *status, json_t *details,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A 400 INVALID_ARGUMENT with the message. */
void sc_sim_reply_invalid(sc_sim_reply_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- sim_generate.c: request parsing, answers, generateContent, streamGenerateContent,
 * countTokens ---- */

/* Append the line of sim.h ("Record") for call c to sim->record; nothing without --record. A
 * failed write is logged, the request is answered anyway. */
void sc_sim_record(sc_gemini_sim_t *sim, const sc_sim_call_t *c);
/* Append one whole line (no newline in it) to sim->record under record_mu; nothing without
 * --record. */
void sc_sim_record_line(sc_gemini_sim_t *sim, const char *line);
/* An integer given as a JSON integer, an integral real, or a decimal string (proto3 JSON). */
bool sc_sim_json_int(const json_t *v, long long *out);
/* Every key of body (borrowed) is one of the n names; where (may be "") names body in the 400 that
 * names the first other key, as the API words it. @return false with the 400 in r. */
bool sc_sim_known_keys(const json_t *body, const char *const *names, size_t n, const char *where,
                       sc_sim_reply_t *r);
/* @return a new reference to the body's top-level object, or NULL with a 400 in r. */
json_t *sc_sim_parse_body(const sc_sim_call_t *c, sc_sim_reply_t *r);
/* obj (borrowed, a GenerateContentRequest's fields) checked by the API's rules for model
 * (host/core/genreq.h) and normalised to camelCase. @return a new reference, or NULL with the
 * 400 in r (its message genreq's, after "Invalid JSON payload received. " for an unknown field). */
json_t *sc_sim_normalize(const json_t *obj, const char *model, sc_sim_reply_t *r);
/* Validate a contents array and add its text to g; a functionResponse must follow a functionCall
 * of its name in the model turn before it. @return false with a 400 in r. */
bool sc_sim_parse_contents(const json_t *root, bool required, sc_sim_gen_req_t *g,
                           sc_sim_reply_t *r);
/* Add the text of systemInstruction (optional) to g. @return false with a 400 in r. */
bool sc_sim_parse_system(const json_t *root, sc_sim_gen_req_t *g, sc_sim_reply_t *r);
/* Validate a normalised GenerateContentRequest into g. @return false with a 400 in r. */
bool sc_sim_parse_gen(const json_t *root, bool with_system, sc_sim_gen_req_t *g, sc_sim_reply_t *r);
/* The GenerateContentResponse for a validated request. req: the normalised request itself
 * (borrowed; the quality mode, schemas, stop sequences and tools read it), or NULL.
 * @return a new reference, or NULL when out of memory. */
json_t *sc_sim_gen_doc(sc_gemini_sim_t *sim, const sc_sim_model_t *m, const sc_sim_gen_req_t *g,
                       const json_t *req);
/* Bytes of v serialized compactly; 0 when out of memory. */
size_t sc_sim_json_chars(const json_t *v);
/* The largest n' <= n that does not cut a UTF-8 sequence of s (longer than n) in two. */
size_t sc_sim_utf8_floor(const char *s, size_t n);
/* Append s to buf (cap bytes, *len used); stops at the bound, never inside a UTF-8 sequence. */
void sc_sim_append(char *buf, size_t cap, size_t *len, const char *s);
/* Append n words of the answer vocabulary drawn from the stream *state, each after a space. */
void sc_sim_append_words(char *buf, size_t cap, size_t *len, uint64_t *state, size_t n);
/* The seed of candidate index's answer to a last user turn of hash h (h itself for the first). */
uint64_t sc_sim_variant(uint64_t h, unsigned index);
void sc_sim_generate(sc_sim_call_t *c, sc_sim_reply_t *r);
void sc_sim_stream_generate(sc_sim_call_t *c, sc_sim_reply_t *r);
void sc_sim_count_tokens(sc_sim_call_t *c, sc_sim_reply_t *r);

/* ---- sim_tools.c: structured output and function calling ---- */

/* The response schema of generationConfig cfg (borrowed), its dialect and its path for errors.
 * @return borrowed, or NULL when there is none. */
const json_t *sc_sim_response_schema(const json_t *cfg, sc_jschema_dialect_t *d, const char **path);
/* Check that schema (borrowed) is one of the dialect that some value satisfies.
 * @return false with a 400 in r. */
bool sc_sim_check_schema(const json_t *schema, sc_jschema_dialect_t d, const char *path,
                         sc_sim_reply_t *r);
/* Validate tools[].functionDeclarations and toolConfig of norm (normalised, borrowed) and decide
 * g->calls and g->tool_result from its last content; count: add the tools' JSON to the prompt.
 * @return false with a 400 in r. */
bool sc_sim_parse_tools(const json_t *norm, bool count, sc_sim_gen_req_t *g, sc_sim_reply_t *r);
/* An instance of req's response schema seeded by seed, as the answer text.
 * @return malloc'd (the caller frees), or NULL. */
char *sc_sim_schema_text(const sc_sim_gen_req_t *g, const json_t *req, uint64_t seed);
/* The text parts of req's last content when it is a user turn, joined by "\n".
 * @return malloc'd (the caller frees), "" when none; NULL when out of memory. */
char *sc_sim_last_user_text(const json_t *req);
/* The declaration a function call of req answers with (sim.h, "Function calling").
 * @return borrowed from req, or NULL. */
const json_t *sc_sim_pick_function(const json_t *req, const char *user);
/* The functionCall part for decl (borrowed). @return a new reference, or NULL. */
json_t *sc_sim_call_part(const json_t *decl, const char *user, uint64_t seed);
/* The answer text after function results (candidate index). @return malloc'd, or NULL. */
char *sc_sim_tool_result_text(const char *model, const sc_sim_gen_req_t *g, const json_t *req,
                              unsigned index);

/* ---- sim_models.c: the Model resources and the embedding models ---- */

/* The embedding model called name. @return borrowed, or NULL. */
const sc_sim_embed_model_t *sc_sim_embed_model_find(const char *name);
void sc_sim_models_list(sc_sim_call_t *c, sc_sim_reply_t *r);
void sc_sim_model_get(sc_sim_call_t *c, sc_sim_reply_t *r);
void sc_sim_embed(sc_sim_call_t *c, sc_sim_reply_t *r);
void sc_sim_batch_embed(sc_sim_call_t *c, sc_sim_reply_t *r);

/* ---- sim_faults.c: the spec, the draws, the replies ---- */

/* Parse the spec of sim.h into *f. @return SC_ERR_INVALID_ARG with a message in errbuf. */
sc_status_t sc_sim_faults_parse(const char *spec, sc_sim_faults_t *f, char *errbuf,
                                size_t errlen);
/* The fate of one generateContent: a failing sc_sim_fault_t or SC_SIM_F_NONE; *delay says
 * whether to sleep first. */
int sc_sim_fault_draw(sc_gemini_sim_t *sim, uint64_t body_hash, bool *delay);
/* A refusal instead of the answer? Only the cheaper models refuse. */
bool sc_sim_refuses(sc_gemini_sim_t *sim, const sc_sim_model_t *m);
/* The error reply of an injected 429, 500 or 503 for model. */
void sc_sim_reply_fault(sc_gemini_sim_t *sim, int kind, const char *model, sc_sim_reply_t *r);
/* A number in 0..1 (a share or a rate). */
bool sc_sim_parse_rate(const char *s, double *out);
/* Decimal digits only, at most max. */
bool sc_sim_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* A duration as the API writes it: digits, optionally '.' and 1..9 digits, then 's'. */
bool sc_sim_valid_duration(const char *s);

/* ---- sim_quality.c: difficulty, final answers, the judge, summaries ---- */

/* Parse the quality spec of sim.h into *q (q->on false for NULL or "").
 * @return SC_ERR_INVALID_ARG with a message naming the bad key in errbuf. */
sc_status_t sc_sim_quality_parse(const char *spec, sc_sim_quality_t *q, char *errbuf,
                                 size_t errlen);
/* Read the truth file of sim.h ("Truth file") at path into *out.
 * @return SC_OK, or SC_ERR_IO (unreadable), SC_ERR_INVALID_ARG (a malformed line, with its number),
 * SC_ERR_TOO_LARGE (past a bound) or SC_ERR_NOMEM, with a message in errbuf.
 * @remark the caller frees *out with sc_sim_truth_free(). */
sc_status_t sc_sim_truth_load(const char *path, sc_sim_truth_t **out, char *errbuf, size_t errlen);
/* Free a truth table. NULL ok. */
void sc_sim_truth_free(sc_sim_truth_t *t);
/* The distinct texts a truth table holds; 0 for NULL. */
size_t sc_sim_truth_lines(const sc_sim_truth_t *t);
/* The tier of a model, by its name. */
sc_sim_tier_t sc_sim_tier(const char *model);
/* The answer text in quality mode for request req (borrowed) to model m: the judge's verdict,
 * a summary, or plain (plain_len bytes, today's answer) with its final answer line; counts it.
 * @return a malloc'd NUL-terminated string (*len bytes), the caller frees it; NULL when out of
 * memory. */
char *sc_sim_quality_text(sc_gemini_sim_t *sim, const sc_sim_model_t *m, const sc_sim_gen_req_t *g,
                          const json_t *req, const char *plain, size_t plain_len, size_t *len);
/* The "quality" object of /sim/stats. @return a new reference, or NULL when out of memory. */
json_t *sc_sim_quality_stats(sc_gemini_sim_t *sim);
/* GET /sim/difficulty?text=... */
void sc_sim_difficulty_route(sc_sim_call_t *c, sc_sim_reply_t *r);

/* ---- sim_batches.c: Batch Mode, timestamps, ids, list pages ---- */

/* CLOCK_REALTIME in ns. */
int64_t sc_sim_wall_ns(void);
/* Set obj[key] to ns as an RFC 3339 timestamp. @return false when out of memory. */
bool sc_sim_set_time(json_t *obj, const char *key, int64_t ns);
/* A fresh id (lowercase letters and digits) that never repeats within one sim. */
void sc_sim_batch_id(sc_gemini_sim_t *sim, char out[SC_SIM_BATCH_ID_LEN + 1]);
/* pageSize and pageToken of a list call. @return false with a 400 in r when malformed. */
bool sc_sim_page_args(sc_sim_call_t *c, sc_sim_reply_t *r, uint64_t *page, uint64_t *from);
/* Free a batch and everything it owns. NULL ok. */
void sc_sim_batch_free(sc_sim_batch_t *b);
void sc_sim_batch_create(sc_sim_call_t *c, sc_sim_reply_t *r);
void sc_sim_batch_get(sc_sim_call_t *c, sc_sim_reply_t *r);
void sc_sim_batch_list(sc_sim_call_t *c, sc_sim_reply_t *r);
void sc_sim_batch_cancel(sc_sim_call_t *c, sc_sim_reply_t *r);
void sc_sim_batch_delete(sc_sim_call_t *c, sc_sim_reply_t *r);

/* ---- sim_caches.c: context caching ---- */

/* Free a cache. NULL ok. */
void sc_sim_cache_free(sc_sim_cache_t *cc);
/* Token-seconds of cc from its creation to until_ns (not past its expiry). */
double sc_sim_cache_storage(const sc_sim_cache_t *cc, int64_t until_ns);
/* Drop the caches expired at now_ns (cache_mu held). */
void sc_sim_cache_sweep(sc_gemini_sim_t *sim, int64_t now_ns);
/* generateContent with "cachedContent" (norm: the normalised request): check it, set
 * g->cached_tokens, and give norm the cache's tools and toolConfig (then decided again).
 * @return false with the error in r. */
bool sc_sim_cache_use(sc_gemini_sim_t *sim, json_t *norm, const json_t *cached, size_t model_index,
                      sc_sim_gen_req_t *g, sc_sim_reply_t *r);
void sc_sim_cache_create(sc_sim_call_t *c, sc_sim_reply_t *r);
void sc_sim_cache_get(sc_sim_call_t *c, sc_sim_reply_t *r);
void sc_sim_cache_list(sc_sim_call_t *c, sc_sim_reply_t *r);
void sc_sim_cache_patch(sc_sim_call_t *c, sc_sim_reply_t *r);
void sc_sim_cache_delete(sc_sim_call_t *c, sc_sim_reply_t *r);

#endif
