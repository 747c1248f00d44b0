/* sim.c - the Gemini REST simulator: routing, key check, request validation, deterministic
 * answers, Batch Mode, context caching, seeded fault injection and counters (sim.h;
 * gemini-api.md §0, §1, §3, §4, §5, §6, §10). */
#include "host/gemini/sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "host/core/log.h"
#include "host/core/util.h"

/* ---- limits and defaults ---- */

#define SC_SIM_BODY_MAX             ((size_t)32 * 1024 * 1024) /* larger request bodies get a 400 */
#define SC_SIM_BODY_INITIAL         4096 /* first allocation of a body buffer */
#define SC_SIM_ID_MAX               128  /* longest {model} taken from a path */
#define SC_SIM_ADDR_MAX             64   /* longest listen address */
#define SC_SIM_THREADS_DEFAULT      4u
#define SC_SIM_THREADS_MAX          256u
#define SC_SIM_CONNECTION_LIMIT     1024u
#define SC_SIM_CONNECTION_TIMEOUT_S 60u
#define SC_SIM_MAX_OUTPUT_TOKENS    65536 /* largest accepted maxOutputTokens */
#define SC_SIM_TEMPERATURE_MAX      2.0
#define SC_SIM_CHARS_PER_TOKEN      4  /* token estimate: ceil(bytes / 4) */
#define SC_SIM_WORDS_MIN            10 /* answer length range, in words */
#define SC_SIM_WORDS_MAX            120
#define SC_SIM_TEXT_MAX             4096 /* holds SC_SIM_WORDS_MAX words plus the header */
#define SC_SIM_THOUGHTS_MIN         64
#define SC_SIM_THOUGHTS_MAX         1024
#define SC_SIM_MSG_MAX              1024 /* longest error message */
#define SC_SIM_HTTP_CODES           600
#define SC_SIM_RESPONSE_ID_MAX      32

#define SC_SIM_FAULT_SPEC_MAX          1024
#define SC_SIM_FAULT_SLOTS             65536u /* per-body fault counters; a power of two */
#define SC_SIM_FAULT_PROBE             32u    /* linear-probe window in that table */
#define SC_SIM_MAX_PER_REQUEST_DEFAULT 2u
#define SC_SIM_MAX_PER_REQUEST_MAX     1000000u
#define SC_SIM_DELAY_MS_DEFAULT        50u
#define SC_SIM_DELAY_MS_MAX            60000u
#define SC_SIM_RETRY_DELAY_DEFAULT     "0.2s"
#define SC_SIM_RETRY_DELAY_MAX         32
#define SC_SIM_SEED_DEFAULT            1u

/* Batch Mode (§5) */
#define SC_SIM_BATCH_INLINE_MAX         ((size_t)20 * 1024 * 1024) /* inline bodies: < 20 MB */
#define SC_SIM_BATCH_MAX                4096u    /* batches held at once; beyond: 429 */
#define SC_SIM_BATCH_REQUESTS_MAX       100000u  /* requests in one batch */
#define SC_SIM_BATCH_ITEMS_MAX          1000000u /* requests held over all batches; beyond: 429 */
#define SC_SIM_BATCH_KEYS_MAX           1000000u /* keys kept for duplicate_batch_keys */
#define SC_SIM_BATCH_KEYS_INITIAL       4096u    /* first key-set size in slots; a power of two */
#define SC_SIM_BATCH_ID_LEN             32       /* characters of the {id} in batches/{id} */
#define SC_SIM_BATCH_NAME_MAX           (SC_SIM_BATCH_ID_LEN + 16)
#define SC_SIM_DISPLAY_NAME_MAX         512 /* longest accepted displayName, bytes */
#define SC_SIM_BATCH_PENDING_MS_DEFAULT 200u
#define SC_SIM_BATCH_RUNNING_MS_DEFAULT 500u
#define SC_SIM_BATCH_PAGE_DEFAULT       50   /* pageSize when none is given */
#define SC_SIM_BATCH_PAGE_MAX           1000 /* larger pageSize values are clamped to this */
#define SC_SIM_TIME_MAX                 40   /* "2025-12-03T17:23:06.004734302Z" plus room */
/* Context caching (§4) */
#define SC_SIM_CACHE_MAX              1024u /* cachedContents held at once; beyond: 429 */
#define SC_SIM_CACHE_TTL_DEFAULT_S    3600  /* neither ttl nor expireTime: 1 hour (§4.5) */
#define SC_SIM_CACHE_TTL_MAX_S        315360000LL /* 10 years: keeps ns arithmetic in int64 */
#define SC_SIM_CACHE_MIN_FLASH        1024u /* default minimum, non-pro models (§4.5) */
#define SC_SIM_CACHE_MIN_PRO          4096u /* default minimum, pro models */
#define SC_SIM_CACHE_DISPLAY_NAME_MAX 128   /* Unicode characters (§4.1) */
#define SC_SIM_CACHE_PREFIX           "cachedContents/"
#define SC_SIM_NS_PER_S               1000000000LL
#define SC_SIM_BATCH_TYPE                                                                          \
    "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
#define SC_SIM_BATCH_OUTPUT_TYPE                                                                   \
    "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"

#define SC_SIM_MSG_NO_KEY                                                                          \
    "Method doesn't allow unregistered callers (callers without established identity). Please "    \
    "use API Key or other form of API consumer identity to call this API."
#define SC_SIM_MSG_BAD_KEY "API key not valid. Please pass a valid API key."
#define SC_SIM_MSG_429                                                                             \
    "You exceeded your current quota, please check your plan and billing details. For more "       \
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
#define SC_SIM_MSG_500                                                                             \
    "An internal error has occurred. Please retry or report in "                                   \
    "https://developers.generativeai.google/guide/troubleshooting"
#define SC_SIM_MSG_503 "The model is overloaded. Please try again later."

/* ---- models ---- */

typedef struct {
    const char *name;
    bool can_think;         /* accepts a thinking budget at all */
    bool thinks_by_default; /* thinks when no budget is given */
    bool can_disable;       /* thinkingBudget 0 turns thinking off */
    unsigned cache_min;     /* smallest cachedContents, tokens, unless the opts override it */
} sc_sim_model_t;

static const sc_sim_model_t sc_sim_models[] = {
    {"gemini-2.5-pro", true, true, false, SC_SIM_CACHE_MIN_PRO},
    {"gemini-2.5-flash", true, true, true, SC_SIM_CACHE_MIN_FLASH},
    {"gemini-2.5-flash-lite", true, false, true, SC_SIM_CACHE_MIN_FLASH},
    {"gemini-2.0-flash", false, false, true, SC_SIM_CACHE_MIN_FLASH},
    {"gemini-2.0-flash-lite", false, false, true, SC_SIM_CACHE_MIN_FLASH},
};
#define SC_SIM_MODEL_COUNT SC_ARRAY_LEN(sc_sim_models)

static const char *const sc_sim_words[] = {
    "amber",   "basil",   "cedar",   "delta",   "ember",   "fjord",   "garnet", "harbor",
    "indigo",  "jasper",  "kelp",    "lumen",   "maple",   "nectar",  "onyx",   "pebble",
    "quartz",  "raven",   "saffron", "tundra",  "umber",   "velvet",  "willow", "xenon",
    "yarrow",  "zephyr",  "anchor",  "beacon",  "canyon",  "dune",    "echo",   "falcon",
    "glacier", "heron",   "island",  "juniper", "kestrel", "lagoon",  "meadow", "nimbus",
    "orchid",  "prairie", "quill",   "ridge",   "summit",  "thistle", "upland", "valley",
    "wren",    "yonder",  "zenith",  "aurora",  "breeze",  "coral",   "drift",  "estuary",
    "fern",    "grove",   "hollow",  "iris",    "jade",    "knoll",   "larch",  "mesa",
};

static const char *const sc_sim_mime_types[] = {
    "text/plain", "application/json", "application/xml", "application/yaml", "text/x.enum",
};

/* ---- faults ---- */

typedef enum {
    SC_SIM_F_429 = 0,
    SC_SIM_F_500,
    SC_SIM_F_503,
    SC_SIM_F_MALFORMED,
    SC_SIM_F_DELAY, /* drawn on its own and not capped: a delay does not fail the request */
    SC_SIM_F_COUNT,
} sc_sim_fault_t;

#define SC_SIM_F_NONE (-1)

#define SC_SIM_REFUSAL "I'm sorry, but I can't help with that request."

static const char *const sc_sim_fault_names[SC_SIM_F_COUNT] = {"429", "500", "503", "malformed",
                                                               "delay"};

typedef struct {
    double share[SC_SIM_F_COUNT]; /* each 0..1; the failing four sum to at most 1 */
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

/* ---- batches ---- */

typedef enum {
    SC_SIM_BS_PENDING = 0,
    SC_SIM_BS_RUNNING,
    SC_SIM_BS_SUCCEEDED,
    SC_SIM_BS_FAILED,
    SC_SIM_BS_CANCELLED,
    SC_SIM_BS_EXPIRED,
} sc_sim_batch_state_t;

static const char *const sc_sim_batch_state_names[] = {"PENDING", "RUNNING",   "SUCCEEDED",
                                                       "FAILED",  "CANCELLED", "EXPIRED"};

/* What the simulator takes from a GenerateContentRequest. */
typedef struct {
    size_t prompt_chars;     /* bytes of text in systemInstruction (if counted) and contents */
    uint64_t last_user_hash; /* FNV of the text of the last user turn */
    long long max_output;    /* 0 = unset */
    bool have_budget;
    long long budget;
    bool json_mime;
    size_t cached_tokens; /* tokens of the cachedContent the request uses; 0 = none */
} sc_sim_gen_req_t;

/* One request of a batch, validated at creation. */
typedef struct {
    sc_sim_gen_req_t g;
    json_t *metadata; /* owned reference to the echoed metadata object, or NULL */
    json_t *error;    /* owned reference to the error Status when the request fails, or NULL */
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

/* A cachedContents resource (§4.1). Only counts are kept: contents and systemInstruction are
 * input-only and never echoed, and the answer depends on the request's last user turn. Owned by
 * the sim's table; guarded by cache_mu. */
typedef struct {
    char id[SC_SIM_BATCH_ID_LEN + 1]; /* same id scheme as batches */
    uint64_t seq;                     /* creation order, from 1; the list's page token */
    size_t model_index;
    char *display_name; /* owned, NULL when none was given */
    size_t tokens;      /* usageMetadata.totalTokenCount */
    int64_t create_ns, update_ns, expire_ns; /* CLOCK_REALTIME */
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

/* Per-connection request state (MHD's con_cls): the body as it arrives. */
typedef struct {
    char *body; /* owned; NUL-terminated when len > 0 */
    size_t len, cap;
    bool too_large;
} sc_sim_conn_t;

/* What a route handler sees. Everything is borrowed for the duration of the call. */
typedef struct {
    sc_gemini_sim_t *sim;
    struct MHD_Connection *conn;
    const char *id; /* the {model} of the path, or "" */
    const char *body;
    size_t body_len;
} sc_sim_call_t;

/* What a route handler produces. */
typedef struct {
    unsigned code;
    char *body; /* owned, malloc'd; NULL means "out of memory" and becomes a fixed 500 */
    size_t len;
    const char *fault; /* name of an injected fault, for the log; NULL if none */
} sc_sim_reply_t;

typedef void (*sc_sim_handler_fn)(sc_sim_call_t *call, sc_sim_reply_t *reply);

/* ---- small helpers ---- */

static void sc_sim_errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sc_sim_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t sc_sim_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double sc_sim_unit(uint64_t *state)
{
    return (double)(sc_sim_splitmix64(state) >> 11) * 0x1.0p-53;
}

#define SC_SIM_FNV_OFFSET 0xcbf29ce484222325ull
#define SC_SIM_FNV_PRIME  0x100000001b3ull

static uint64_t sc_sim_fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= SC_SIM_FNV_PRIME;
    }
    return h;
}

static size_t sc_sim_tokens(size_t chars)
{
    return (chars + SC_SIM_CHARS_PER_TOKEN - 1) / SC_SIM_CHARS_PER_TOKEN;
}

static const sc_sim_model_t *sc_sim_model_find(const char *name, size_t *index)
{
    for (size_t i = 0; i < SC_SIM_MODEL_COUNT; i++) {
        if (strcmp(sc_sim_models[i].name, name) == 0) {
            if (index)
                *index = i;
            return &sc_sim_models[i];
        }
    }
    return NULL;
}

/* A key in either spelling (camelCase first). @return a borrowed reference or NULL. */
static json_t *sc_sim_get2(const json_t *obj, const char *camel, const char *snake)
{
    json_t *v = json_object_get(obj, camel);
    return v ? v : json_object_get(obj, snake);
}

/* An integer given as a JSON integer, an integral real, or a decimal string (proto3 JSON). */
static bool sc_sim_json_int(const json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d != floor(d) || fabs(d) > 1e15)
            return false;
        *out = (long long)d;
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (errno || end == s || *end)
            return false;
        *out = x;
        return true;
    }
    return false;
}

/* ---- replies ---- */

/* Serialize doc into the reply. @param doc: a new reference, stolen. */
static void sc_sim_reply_json(sc_sim_reply_t *r, unsigned code, json_t *doc)
{
    r->code = code;
    free(r->body);
    r->body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    r->len = r->body ? strlen(r->body) : 0;
    json_decref(doc);
}

/* A Google error body {"error":{code,message,status,details}}.
 * @param details: a new reference to an array, stolen; NULL gives []. */
static void sc_sim_reply_error(sc_sim_reply_t *r, unsigned code, const char *status,
                               json_t *details, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void sc_sim_reply_error(sc_sim_reply_t *r, unsigned code, const char *status,
                               json_t *details, const char *fmt, ...)
{
    char msg[SC_SIM_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!details)
        details = json_array();
    json_t *doc = json_pack("{s:{s:I, s:s, s:s, s:o}}", "error", "code", (json_int_t)code,
                            "message", msg, "status", status, "details", details);
    sc_sim_reply_json(r, code, doc);
}

static void sc_sim_reply_invalid(sc_sim_reply_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sc_sim_reply_invalid(sc_sim_reply_t *r, const char *fmt, ...)
{
    char msg[SC_SIM_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sc_sim_reply_error(r, 400, "INVALID_ARGUMENT", NULL, "%s", msg);
}

/* ---- key check (§0, §10.1) ---- */

/* @return true when the request may go on; false with the error in r. Keys are never logged. */
static bool sc_sim_check_key(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    const char *key = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "x-goog-api-key");
    if (!key || !key[0])
        key = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "key");
    if (!key || !key[0]) {
        sc_sim_reply_error(r, 403, "PERMISSION_DENIED", NULL, "%s", SC_SIM_MSG_NO_KEY);
        return false;
    }
    if (c->sim->api_key && strcmp(key, c->sim->api_key) != 0) {
        json_t *details = json_pack("[{s:s, s:s, s:s, s:{s:s}}, {s:s, s:s, s:s}]", "@type",
                                    "type.googleapis.com/google.rpc.ErrorInfo", "reason",
                                    "API_KEY_INVALID", "domain", "googleapis.com", "metadata",
                                    "service", "generativelanguage.googleapis.com", "@type",
                                    "type.googleapis.com/google.rpc.LocalizedMessage", "locale",
                                    "en-US", "message", SC_SIM_MSG_BAD_KEY);
        sc_sim_reply_error(r, 400, "INVALID_ARGUMENT", details, "%s", SC_SIM_MSG_BAD_KEY);
        return false;
    }
    return true;
}

/* ---- request parsing (§1.1, §3) ---- */

/* @return a new reference to the body's top-level object, or NULL with a 400 in r. */
static json_t *sc_sim_parse_body(const sc_sim_call_t *c, sc_sim_reply_t *r)
{
    json_error_t jerr;
    json_t *root = json_loadb(c->body ? c->body : "", c->body_len, 0, &jerr);
    if (!root) {
        sc_sim_reply_invalid(r, "Invalid JSON payload received. %s at line %d column %d.",
                             jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        sc_sim_reply_invalid(r, "Invalid JSON payload received. Expected an object at the top "
                                "level.");
        return NULL;
    }
    return root;
}

/* Sum the text of a Content's parts into *chars; hash it into *hash when hash is set.
 * @return false with a 400 in r when the Content is not a valid shape. */
static bool sc_sim_parse_parts(const json_t *content, const char *where, size_t *chars,
                               uint64_t *hash, sc_sim_reply_t *r)
{
    json_t *parts = json_object_get(content, "parts");
    if (!json_is_array(parts) || json_array_size(parts) == 0) {
        sc_sim_reply_invalid(r,
                             "* GenerateContentRequest.%s.parts: contents.parts must not be "
                             "empty.",
                             where);
        return false;
    }
    size_t i;
    json_t *part;
    json_array_foreach(parts, i, part)
    {
        if (!json_is_object(part)) {
            sc_sim_reply_invalid(r, "Invalid value at '%s.parts[%zu]': expected a Part object.",
                                 where, i);
            return false;
        }
        json_t *text = json_object_get(part, "text");
        if (!text)
            continue; /* inlineData, fileData...: not counted */
        if (!json_is_string(text)) {
            sc_sim_reply_invalid(r, "Invalid value at '%s.parts[%zu].text': expected a string.",
                                 where, i);
            return false;
        }
        size_t n = json_string_length(text);
        *chars += n;
        if (hash) {
            *hash = sc_sim_fnv(*hash, json_string_value(text), n);
            *hash = sc_sim_fnv(*hash, "\n", 1);
        }
    }
    return true;
}

static bool sc_sim_parse_config(const json_t *root, sc_sim_gen_req_t *g, sc_sim_reply_t *r)
{
    json_t *cfg = sc_sim_get2(root, "generationConfig", "generation_config");
    if (!cfg)
        return true;
    if (!json_is_object(cfg)) {
        sc_sim_reply_invalid(r, "Invalid value at 'generation_config': expected an object.");
        return false;
    }
    json_t *temp = json_object_get(cfg, "temperature");
    if (temp) {
        double t = json_is_number(temp) ? json_number_value(temp) : NAN;
        if (!(t >= 0.0 && t <= SC_SIM_TEMPERATURE_MAX)) {
            sc_sim_reply_invalid(r, "* GenerateContentRequest.generation_config.temperature: "
                                    "temperature must be in the range [0.0, 2.0].");
            return false;
        }
    }
    json_t *mot = sc_sim_get2(cfg, "maxOutputTokens", "max_output_tokens");
    if (mot) {
        long long v = 0;
        if (!sc_sim_json_int(mot, &v)) {
            sc_sim_reply_invalid(r, "Invalid value at 'generation_config.max_output_tokens' "
                                    "(TYPE_INT32).");
            return false;
        }
        if (v < 0 || v > SC_SIM_MAX_OUTPUT_TOKENS) {
            sc_sim_reply_invalid(r,
                                 "The specified maxOutputTokens value %lld is out of range; "
                                 "supported range is [1, %d)",
                                 v, SC_SIM_MAX_OUTPUT_TOKENS + 1);
            return false;
        }
        g->max_output = v; /* 0 is the proto3 default: unset */
    }
    json_t *mime = sc_sim_get2(cfg, "responseMimeType", "response_mime_type");
    if (mime) {
        bool ok = false;
        for (size_t i = 0; json_is_string(mime) && i < SC_ARRAY_LEN(sc_sim_mime_types); i++)
            ok = ok || strcmp(json_string_value(mime), sc_sim_mime_types[i]) == 0;
        if (!ok) {
            sc_sim_reply_invalid(r, "* GenerateContentRequest.generation_config.response_mime_"
                                    "type: allowed mimetypes are `text/plain`, "
                                    "`application/json`, `application/xml`, `application/yaml` "
                                    "and `text/x.enum`.");
            return false;
        }
        g->json_mime = strcmp(json_string_value(mime), "application/json") == 0;
    }
    json_t *tc = sc_sim_get2(cfg, "thinkingConfig", "thinking_config");
    if (tc) {
        if (!json_is_object(tc)) {
            sc_sim_reply_invalid(r, "Invalid value at 'generation_config.thinking_config': "
                                    "expected an object.");
            return false;
        }
        json_t *tb = sc_sim_get2(tc, "thinkingBudget", "thinking_budget");
        if (tb) {
            long long b = 0;
            if (!sc_sim_json_int(tb, &b) || b < -1 || b > INT32_MAX) {
                sc_sim_reply_invalid(r, "Invalid value at 'generation_config.thinking_config."
                                        "thinking_budget' (TYPE_INT32).");
                return false;
            }
            g->have_budget = true;
            g->budget = b;
        }
    }
    return true;
}

/* Validate a contents array (required: it must be there and not be empty) and add its text to
 * g. @return false with a 400 in r. */
static bool sc_sim_parse_contents(const json_t *root, bool required, sc_sim_gen_req_t *g,
                                  sc_sim_reply_t *r)
{
    json_t *contents = json_object_get(root, "contents");
    if (!contents && !required)
        return true;
    if (!json_is_array(contents) || (required && json_array_size(contents) == 0)) {
        sc_sim_reply_invalid(r, "* GenerateContentRequest.contents: contents is not specified");
        return false;
    }
    size_t i;
    json_t *content;
    json_array_foreach(contents, i, content)
    {
        char where[64];
        snprintf(where, sizeof where, "contents[%zu]", i);
        if (!json_is_object(content)) {
            sc_sim_reply_invalid(r, "Invalid value at '%s': expected a Content object.", where);
            return false;
        }
        json_t *role = json_object_get(content, "role");
        bool user = true;
        if (role) {
            const char *rs = json_is_string(role) ? json_string_value(role) : NULL;
            if (!rs || (rs[0] && strcmp(rs, "user") != 0 && strcmp(rs, "model") != 0)) {
                sc_sim_reply_invalid(r, "Please use a valid role: user, model.");
                return false;
            }
            user = strcmp(rs, "model") != 0;
        }
        uint64_t h = SC_SIM_FNV_OFFSET;
        if (!sc_sim_parse_parts(content, where, &g->prompt_chars, &h, r))
            return false;
        if (user)
            g->last_user_hash = h;
    }
    return true;
}

/* Add the text of systemInstruction (either spelling, optional) to g. @return false with a 400
 * in r. */
static bool sc_sim_parse_system(const json_t *root, sc_sim_gen_req_t *g, sc_sim_reply_t *r)
{
    json_t *sys = sc_sim_get2(root, "systemInstruction", "system_instruction");
    if (!sys)
        return true;
    if (!json_is_object(sys)) {
        sc_sim_reply_invalid(r, "Invalid value at 'system_instruction': expected a Content "
                                "object.");
        return false;
    }
    return sc_sim_parse_parts(sys, "system_instruction", &g->prompt_chars, NULL, r);
}

/* Validate a GenerateContentRequest-shaped object. with_system: count systemInstruction (a
 * countTokens body with plain contents does not carry one). @return false with a 400 in r. */
static bool sc_sim_parse_gen(const json_t *root, bool with_system, sc_sim_gen_req_t *g,
                             sc_sim_reply_t *r)
{
    memset(g, 0, sizeof *g);
    g->last_user_hash = SC_SIM_FNV_OFFSET;
    if (!sc_sim_parse_contents(root, true, g, r))
        return false;
    if (with_system && !sc_sim_parse_system(root, g, r))
        return false;
    return sc_sim_parse_config(root, g, r);
}

/* ---- fault injection ---- */

/* Decide the fate of one generateContent. @return a failing sc_sim_fault_t or SC_SIM_F_NONE;
 * *delay says whether to sleep first. Both draws happen for every request so that a seed gives
 * the same sequence whatever the outcomes. */
/* A refusal instead of the answer? Only the cheaper models refuse (a cascade's first tiers). */
static bool sc_sim_refuses(sc_gemini_sim_t *sim, const sc_sim_model_t *m)
{
    if (sim->faults.refuse <= 0.0 || strstr(m->name, "-pro"))
        return false;
    pthread_mutex_lock(&sim->fault_mu);
    bool r = sc_sim_unit(&sim->rng) < sim->faults.refuse;
    pthread_mutex_unlock(&sim->fault_mu);
    return r;
}

static int sc_sim_fault_draw(sc_gemini_sim_t *sim, uint64_t body_hash, bool *delay)
{
    const sc_sim_faults_t *f = &sim->faults;
    int kind = SC_SIM_F_NONE;
    *delay = false;
    if (!f->any)
        return kind;
    pthread_mutex_lock(&sim->fault_mu);
    double u_delay = sc_sim_unit(&sim->rng);
    double u = sc_sim_unit(&sim->rng);
    *delay = u_delay < f->share[SC_SIM_F_DELAY];
    double acc = 0.0;
    for (int k = SC_SIM_F_429; k < SC_SIM_F_DELAY; k++) {
        acc += f->share[k];
        if (u < acc) {
            kind = k;
            break;
        }
    }
    if (kind != SC_SIM_F_NONE && sim->fault_slots) {
        uint64_t key = body_hash ? body_hash : 1;
        size_t home = (size_t)(key & (SC_SIM_FAULT_SLOTS - 1));
        sc_sim_fault_slot_t *slot = NULL, *victim = NULL;
        for (size_t p = 0; p < SC_SIM_FAULT_PROBE && !slot; p++) {
            sc_sim_fault_slot_t *s = &sim->fault_slots[(home + p) & (SC_SIM_FAULT_SLOTS - 1)];
            if (s->key == key || s->key == 0)
                slot = s;
            else if (!victim || s->count > victim->count)
                victim = s; /* the most-failed body is the likeliest to be finished */
        }
        if (!slot) {
            slot = victim;
            slot->key = 0;
            atomic_fetch_add(&sim->fault_evictions, 1);
        }
        if (slot->key != key) {
            slot->key = key;
            slot->count = 0;
        }
        if (slot->count >= f->max_per_request)
            kind = SC_SIM_F_NONE;
        else
            slot->count++;
    }
    pthread_mutex_unlock(&sim->fault_mu);
    if (kind != SC_SIM_F_NONE)
        atomic_fetch_add(&sim->faults_by_kind[kind], 1);
    if (*delay)
        atomic_fetch_add(&sim->faults_by_kind[SC_SIM_F_DELAY], 1);
    return kind;
}

static bool sc_sim_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s[0])
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno || v > max)
        return false;
    *out = (uint64_t)v;
    return true;
}

static bool sc_sim_parse_rate(const char *s, double *out)
{
    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '.'))
        return false;
    char *end = NULL;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || *end || !isfinite(d) || d < 0.0 || d > 1.0)
        return false;
    *out = d;
    return true;
}

/* A duration as the API writes it: digits, optionally '.' and 1..9 digits, then 's'. */
static bool sc_sim_valid_duration(const char *s)
{
    size_t n = strlen(s), i = 0, frac = 0;
    if (n < 2 || n >= SC_SIM_RETRY_DELAY_MAX || s[n - 1] != 's')
        return false;
    while (i < n - 1 && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == 0)
        return false;
    if (i < n - 1 && s[i] == '.') {
        i++;
        while (i < n - 1 && s[i] >= '0' && s[i] <= '9') {
            i++;
            frac++;
        }
        if (frac == 0 || frac > 9)
            return false;
    }
    return i == n - 1;
}

/* Parse the spec of sim.h into *f. @return SC_ERR_INVALID_ARG with a message naming the
 * key in errbuf. */
static sc_status_t sc_sim_faults_parse(const char *spec, sc_sim_faults_t *f, char *errbuf,
                                       size_t errlen)
{
    sc_status_t st = SC_OK;
    char buf[SC_SIM_FAULT_SPEC_MAX];
    memset(f, 0, sizeof *f);
    f->delay_ms = SC_SIM_DELAY_MS_DEFAULT;
    f->seed = SC_SIM_SEED_DEFAULT;
    f->max_per_request = SC_SIM_MAX_PER_REQUEST_DEFAULT;
    sc_strlcpy(f->retry_delay, SC_SIM_RETRY_DELAY_DEFAULT, sizeof f->retry_delay);
    if (!spec || !spec[0])
        goto out;
    if (sc_strlcpy(buf, spec, sizeof buf) >= sizeof buf) {
        sc_sim_errf(errbuf, errlen, "fault spec longer than %d bytes", SC_SIM_FAULT_SPEC_MAX - 1);
        st = SC_ERR_INVALID_ARG;
        goto out;
    }
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item) {
            sc_sim_errf(errbuf, errlen, "fault spec: '%s' is not key=value", item);
            st = SC_ERR_INVALID_ARG;
            goto out;
        }
        *eq = '\0';
        const char *key = item, *val = eq + 1;
        int kind = SC_SIM_F_NONE;
        for (int k = 0; k < SC_SIM_F_COUNT; k++)
            if (strcmp(key, sc_sim_fault_names[k]) == 0)
                kind = k;
        uint64_t u = 0;
        if (kind != SC_SIM_F_NONE) {
            if (!sc_sim_parse_rate(val, &f->share[kind])) {
                sc_sim_errf(errbuf, errlen, "fault spec: %s=%s: the share must be a number in 0..1",
                            key, val);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
        } else if (strcmp(key, "delay_ms") == 0) {
            if (!sc_sim_parse_u64(val, SC_SIM_DELAY_MS_MAX, &u)) {
                sc_sim_errf(errbuf, errlen, "fault spec: delay_ms=%s: expected 0..%u", val,
                            SC_SIM_DELAY_MS_MAX);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
            f->delay_ms = (unsigned)u;
        } else if (strcmp(key, "seed") == 0) {
            if (!sc_sim_parse_u64(val, UINT64_MAX, &u)) {
                sc_sim_errf(errbuf, errlen, "fault spec: seed=%s: expected an unsigned integer",
                            val);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
            f->seed = u;
        } else if (strcmp(key, "max_per_request") == 0) {
            if (!sc_sim_parse_u64(val, SC_SIM_MAX_PER_REQUEST_MAX, &u)) {
                sc_sim_errf(errbuf, errlen, "fault spec: max_per_request=%s: expected 0..%u", val,
                            SC_SIM_MAX_PER_REQUEST_MAX);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
            f->max_per_request = (unsigned)u;
        } else if (strcmp(key, "retry_delay") == 0) {
            if (!sc_sim_valid_duration(val)) {
                sc_sim_errf(errbuf, errlen,
                            "fault spec: retry_delay=%s: expected a duration like 0.2s", val);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
            sc_strlcpy(f->retry_delay, val, sizeof f->retry_delay);
        } else if (strcmp(key, "batch_error") == 0 || strcmp(key, "batch_fail") == 0 ||
                   strcmp(key, "batch_expire") == 0 || strcmp(key, "refuse") == 0) {
            double *dst = strcmp(key, "batch_error") == 0  ? &f->batch_error
                          : strcmp(key, "batch_fail") == 0 ? &f->batch_fail
                          : strcmp(key, "refuse") == 0     ? &f->refuse
                                                           : &f->batch_expire;
            if (!sc_sim_parse_rate(val, dst)) {
                sc_sim_errf(errbuf, errlen, "fault spec: %s=%s: the share must be a number in 0..1",
                            key, val);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
        } else if (strcmp(key, "job_state_prefix") == 0) {
            if (!sc_sim_parse_u64(val, 1, &u)) {
                sc_sim_errf(errbuf, errlen, "fault spec: job_state_prefix=%s: expected 0 or 1",
                            val);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
            f->job_state_prefix = u == 1;
        } else {
            sc_sim_errf(errbuf, errlen, "fault spec: unknown key '%s'", key);
            st = SC_ERR_INVALID_ARG;
            goto out;
        }
    }
    double sum = 0.0;
    for (int k = SC_SIM_F_429; k < SC_SIM_F_DELAY; k++)
        sum += f->share[k];
    if (sum > 1.0 + 1e-9) {
        sc_sim_errf(errbuf, errlen, "fault spec: 429+500+503+malformed shares sum to %g, above 1",
                    sum);
        st = SC_ERR_INVALID_ARG;
        goto out;
    }
    if (f->batch_fail + f->batch_expire > 1.0 + 1e-9) {
        sc_sim_errf(errbuf, errlen, "fault spec: batch_fail+batch_expire shares sum to %g, above 1",
                    f->batch_fail + f->batch_expire);
        st = SC_ERR_INVALID_ARG;
        goto out;
    }
    for (int k = 0; k < SC_SIM_F_COUNT; k++)
        f->any = f->any || f->share[k] > 0.0;
out:
    return st;
}

/* ---- generateContent ---- */

static bool sc_sim_cache_use(sc_gemini_sim_t *sim, const json_t *root, const json_t *cached,
                             size_t model_index, sc_sim_gen_req_t *g, sc_sim_reply_t *r);

static void sc_sim_response_id(sc_gemini_sim_t *sim, char *out, size_t outlen)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    /* The counter half is a bijection of the counter, so ids never repeat within one sim. */
    uint64_t n = atomic_fetch_add(&sim->id_counter, 1);
    uint64_t s1 = sim->id_nonce ^ n, s2 = n;
    uint64_t parts[2] = {sc_sim_splitmix64(&s1), sc_sim_splitmix64(&s2)};
    size_t o = 0;
    for (size_t p = 0; p < 2; p++)
        for (int b = 0; b < 11 && o + 1 < outlen; b++)
            out[o++] = alphabet[(parts[p] >> (6 * b)) & 63];
    out[o] = '\0';
}

/* Append to a bounded text buffer; silently stops at the bound. */
static void sc_sim_append(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n >= cap)
        n = cap - 1 - *len;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

/* The deterministic answer for (model, last user turn). Writes text into buf (cap bytes). */
static size_t sc_sim_answer(const char *model, const sc_sim_gen_req_t *g, char *buf, size_t cap)
{
    uint64_t state = g->last_user_hash;
    size_t words = SC_SIM_WORDS_MIN +
                   (size_t)(sc_sim_splitmix64(&state) % (SC_SIM_WORDS_MAX - SC_SIM_WORDS_MIN + 1));
    char head[SC_SIM_ID_MAX + 96];
    size_t len = 0;
    buf[0] = '\0';
    if (g->json_mime)
        snprintf(head, sizeof head,
                 "{\"model\":\"%s\",\"fingerprint\":\"%016" PRIx64 "\",\"answer\":\"", model,
                 g->last_user_hash);
    else
        snprintf(head, sizeof head, "Simulated answer from %s (fingerprint %016" PRIx64 "):", model,
                 g->last_user_hash);
    sc_sim_append(buf, cap, &len, head);
    for (size_t i = 0; i < words; i++) {
        if (!g->json_mime || i > 0)
            sc_sim_append(buf, cap, &len, " ");
        sc_sim_append(buf, cap, &len,
                      sc_sim_words[sc_sim_splitmix64(&state) % SC_ARRAY_LEN(sc_sim_words)]);
    }
    sc_sim_append(buf, cap, &len, g->json_mime ? "\"}" : ".");
    return len;
}

static size_t sc_sim_thoughts(const sc_sim_model_t *m, const sc_sim_gen_req_t *g)
{
    bool thinks;
    if (!m->can_think)
        thinks = false;
    else if (m->thinks_by_default)
        thinks = !(g->have_budget && g->budget == 0 && m->can_disable);
    else
        thinks = g->have_budget && g->budget != 0;
    if (!thinks)
        return 0;
    uint64_t state = g->last_user_hash ^ 0x7468696e6b696e67ull; /* separate stream: "thinking" */
    size_t t = SC_SIM_THOUGHTS_MIN + (size_t)(sc_sim_splitmix64(&state) %
                                              (SC_SIM_THOUGHTS_MAX - SC_SIM_THOUGHTS_MIN + 1));
    if (g->have_budget && g->budget > 0 && t > (size_t)g->budget)
        t = (size_t)g->budget;
    return t;
}

static void sc_sim_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void sc_sim_reply_fault(sc_gemini_sim_t *sim, int kind, const char *model, sc_sim_reply_t *r)
{
    r->fault = sc_sim_fault_names[kind];
    if (kind == SC_SIM_F_429) {
        json_t *details = json_pack(
            "[{s:s, s:[{s:s, s:s, s:{s:s, s:s}, s:s}]}, {s:s, s:[{s:s, s:s}]}, {s:s, s:s}]",
            "@type", "type.googleapis.com/google.rpc.QuotaFailure", "violations", "quotaMetric",
            "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
            "quotaId", "GenerateContentInputTokensPerModelPerMinute-FreeTier", "quotaDimensions",
            "location", "global", "model", model, "quotaValue", "250000", "@type",
            "type.googleapis.com/google.rpc.Help", "links", "description",
            "Learn more about Gemini API quotas", "url",
            "https://ai.google.dev/gemini-api/docs/rate-limits", "@type",
            "type.googleapis.com/google.rpc.RetryInfo", "retryDelay", sim->faults.retry_delay);
        sc_sim_reply_error(r, 429, "RESOURCE_EXHAUSTED", details, "%s", SC_SIM_MSG_429);
    } else if (kind == SC_SIM_F_500) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "%s", SC_SIM_MSG_500);
    } else {
        sc_sim_reply_error(r, 503, "UNAVAILABLE", NULL, "%s", SC_SIM_MSG_503);
    }
}

/* The GenerateContentResponse for a validated request: the deterministic answer, usage and a
 * fresh responseId. Shared by generateContent and Batch Mode.
 * @return a new reference, or NULL when out of memory. */
static json_t *sc_sim_gen_doc(sc_gemini_sim_t *sim, const sc_sim_model_t *m,
                              const sc_sim_gen_req_t *g)
{
    char text[SC_SIM_TEXT_MAX];
    size_t len = sc_sim_answer(m->name, g, text, sizeof text);
    const char *finish = "STOP";
    if (g->max_output > 0 && len > (size_t)g->max_output * SC_SIM_CHARS_PER_TOKEN) {
        len = (size_t)g->max_output * SC_SIM_CHARS_PER_TOKEN;
        text[len] = '\0';
        finish = "MAX_TOKENS";
    }
    size_t prompt = sc_sim_tokens(g->prompt_chars);
    if (prompt < 1)
        prompt = 1;
    prompt += g->cached_tokens; /* promptTokenCount includes the cached prefix (§4.4) */
    size_t cand = sc_sim_tokens(len);
    size_t thoughts = sc_sim_thoughts(m, g);
    char rid[SC_SIM_RESPONSE_ID_MAX];
    sc_sim_response_id(sim, rid, sizeof rid);

    json_t *usage =
        json_pack("{s:I, s:I, s:I, s:[{s:s, s:I}]}", "promptTokenCount", (json_int_t)prompt,
                  "candidatesTokenCount", (json_int_t)cand, "totalTokenCount",
                  (json_int_t)(prompt + cand + thoughts), "promptTokensDetails", "modality", "TEXT",
                  "tokenCount", (json_int_t)prompt);
    if (usage && thoughts > 0 &&
        json_object_set_new(usage, "thoughtsTokenCount", json_integer((json_int_t)thoughts))) {
        json_decref(usage);
        usage = NULL;
    }
    if (usage && g->cached_tokens > 0 &&
        (json_object_set_new(usage, "cachedContentTokenCount",
                             json_integer((json_int_t)g->cached_tokens)) ||
         json_object_set_new(usage, "cacheTokensDetails",
                             json_pack("[{s:s, s:I}]", "modality", "TEXT", "tokenCount",
                                       (json_int_t)g->cached_tokens)))) {
        json_decref(usage);
        usage = NULL;
    }
    /* "o" steals usage even when json_pack fails; NULL usage makes it fail */
    return json_pack("{s:[{s:{s:s, s:[{s:s#}]}, s:s, s:i}], s:o, s:s, s:s}", "candidates",
                     "content", "role", "model", "parts", "text", text, (int)len, "finishReason",
                     finish, "index", 0, "usageMetadata", usage, "modelVersion", m->name,
                     "responseId", rid);
}

static void sc_sim_generate(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    json_t *root = NULL, *doc = NULL;
    size_t model_index = 0;
    const sc_sim_model_t *m = sc_sim_model_find(c->id, &model_index);
    if (!m) {
        sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                           "models/%s is not found for API version v1beta, or is not supported "
                           "for generateContent. Call ListModels to see the list of available "
                           "models and their supported methods.",
                           c->id);
        goto out;
    }
    atomic_fetch_add(&c->sim->generate_by_model[model_index], 1);
    root = sc_sim_parse_body(c, r);
    if (!root)
        goto out;
    json_t *cached = sc_sim_get2(root, "cachedContent", "cached_content");
    sc_sim_gen_req_t g;
    if (!sc_sim_parse_gen(root, cached == NULL, &g, r))
        goto out;
    if (cached && !sc_sim_cache_use(c->sim, root, cached, model_index, &g, r))
        goto out;

    bool delay = false;
    uint64_t body_hash = sc_sim_fnv(SC_SIM_FNV_OFFSET, c->id, strlen(c->id) + 1);
    body_hash = sc_sim_fnv(body_hash, c->body, c->body_len);
    int fault = sc_sim_fault_draw(c->sim, body_hash, &delay);
    if (delay)
        sc_sim_sleep_ms(c->sim->faults.delay_ms);
    if (fault == SC_SIM_F_429 || fault == SC_SIM_F_500 || fault == SC_SIM_F_503) {
        sc_sim_reply_fault(c->sim, fault, m->name, r);
        goto out;
    }

    doc = sc_sim_gen_doc(c->sim, m, &g);
    if (doc && sc_sim_refuses(c->sim, m)) {
        json_t *part = json_array_get(json_object_get(json_object_get(json_array_get(
                                                          json_object_get(doc, "candidates"), 0),
                                                          "content"),
                                                      "parts"),
                                      0); /* borrowed */
        json_object_set_new(part, "text", json_string(SC_SIM_REFUSAL));
        atomic_fetch_add(&c->sim->refusals, 1);
    }
    if (fault == SC_SIM_F_MALFORMED) {
        /* 200 with the body cut in half: what a proxy dropping the connection looks like. */
        sc_sim_reply_json(r, 200, doc);
        doc = NULL;
        if (r->body)
            r->len /= 2;
        r->fault = sc_sim_fault_names[fault];
        goto out;
    }
    {
        json_t *u = json_object_get(doc, "usageMetadata"); /* borrowed */
        static const char *const keys[4] = {"promptTokenCount", "cachedContentTokenCount",
                                            "candidatesTokenCount", "thoughtsTokenCount"};
        for (int k = 0; k < 4; k++)
            atomic_fetch_add(&c->sim->billed_tokens[model_index][k],
                             (uint64_t)json_integer_value(json_object_get(u, keys[k])));
    }
    sc_sim_reply_json(r, 200, doc);
    doc = NULL;
    if (g.cached_tokens > 0) {
        pthread_mutex_lock(&c->sim->cache_mu);
        c->sim->cached_tokens_served += g.cached_tokens;
        pthread_mutex_unlock(&c->sim->cache_mu);
    }
out:
    json_decref(doc);
    json_decref(root);
}

/* ---- countTokens ---- */

static void sc_sim_count_tokens(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    json_t *root = NULL;
    atomic_fetch_add(&c->sim->count_tokens, 1);
    if (!sc_sim_model_find(c->id, NULL)) {
        sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                           "models/%s is not found for API version v1beta, or is not supported "
                           "for countTokens. Call ListModels to see the list of available "
                           "models and their supported methods.",
                           c->id);
        goto out;
    }
    root = sc_sim_parse_body(c, r);
    if (!root)
        goto out;
    json_t *wrapped = sc_sim_get2(root, "generateContentRequest", "generate_content_request");
    if (wrapped && json_object_get(root, "contents")) {
        sc_sim_reply_invalid(r, "contents and generateContentRequest are mutually exclusive.");
        goto out;
    }
    if (wrapped && !json_is_object(wrapped)) {
        sc_sim_reply_invalid(r, "Invalid value at 'generate_content_request': expected an "
                                "object.");
        goto out;
    }
    sc_sim_gen_req_t g;
    if (!sc_sim_parse_gen(wrapped ? wrapped : root, wrapped != NULL, &g, r))
        goto out;
    size_t n = sc_sim_tokens(g.prompt_chars);
    if (n < 1)
        n = 1;
    sc_sim_reply_json(r, 200,
                      json_pack("{s:I, s:[{s:s, s:I}]}", "totalTokens", (json_int_t)n,
                                "promptTokensDetails", "modality", "TEXT", "tokenCount",
                                (json_int_t)n));
out:
    json_decref(root);
}

/* ---- Batch Mode (§5) ---- */

static int64_t sc_sim_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* RFC 3339, UTC, 9 fractional digits, as the API writes timestamps. */
static void sc_sim_rfc3339(int64_t ns, char *out, size_t outlen)
{
    if (ns < 0)
        ns = 0;
    time_t sec = (time_t)(ns / 1000000000);
    unsigned frac = (unsigned)(ns % 1000000000);
    struct tm tm;
    char base[SC_SIM_TIME_MAX];
    if (!gmtime_r(&sec, &tm) || strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        sc_strlcpy(base, "1970-01-01T00:00:00", sizeof base);
    snprintf(out, outlen, "%.24s.%09uZ", base, frac % 1000000000u); /* 24 covers 5-digit years */
}

/* Free a batch and everything it owns. NULL ok. */
static void sc_sim_batch_free(sc_sim_batch_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; b->items && i < b->n; i++) {
        json_decref(b->items[i].metadata);
        json_decref(b->items[i].error);
    }
    free(b->items);
    free(b->display_name);
    json_decref(b->output);
    free(b);
}

/* A google.rpc.Status as the brief of this simulator writes it: {code, message, status} with the
 * HTTP code (the same numbers the HTTP error bodies carry). @return a new reference or NULL. */
static json_t *sc_sim_status_obj(unsigned code, const char *status, const char *msg)
{
    return json_pack("{s:I, s:s, s:s}", "code", (json_int_t)code, "message", msg, "status", status);
}

/* The {code, message, status} of an error reply written by the validation code, so that a bad
 * request inside a batch gets the very error generateContent would answer.
 * @return a new reference or NULL when out of memory. */
static json_t *sc_sim_reply_to_status(const sc_sim_reply_t *r)
{
    json_t *doc = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
    json_t *out = json_deep_copy(json_object_get(doc, "error")); /* new or NULL */
    json_decref(doc);
    if (out)
        (void)json_object_del(out, "details");
    return out;
}

/* An id like the API's (lowercase letters and digits). The first 13 characters encode a
 * bijection of a counter, so ids never repeat within one sim; the rest is noise. */
static void sc_sim_batch_id(sc_gemini_sim_t *sim, char out[SC_SIM_BATCH_ID_LEN + 1])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    const uint64_t base = sizeof alphabet - 1;
    uint64_t n = atomic_fetch_add(&sim->id_counter, 1);
    uint64_t s1 = n, s2 = sim->id_nonce ^ (n << 1);
    uint64_t v = sc_sim_splitmix64(&s1);
    size_t o = 0;
    for (int i = 0; i < 13; i++, v /= base) /* 36^13 > 2^64 */
        out[o++] = alphabet[v % base];
    while (o < SC_SIM_BATCH_ID_LEN) {
        v = sc_sim_splitmix64(&s2);
        for (int i = 0; i < 12 && o < SC_SIM_BATCH_ID_LEN; i++, v /= base)
            out[o++] = alphabet[v % base];
    }
    out[o] = '\0';
}

/* The state of b at now_ms (batch_mu held); *end_ns gets the end time of a terminal state. */
static sc_sim_batch_state_t sc_sim_batch_state(const sc_gemini_sim_t *sim, const sc_sim_batch_t *b,
                                               int64_t now_ms, int64_t *end_ns)
{
    *end_ns = 0;
    if (b->cancelled) {
        *end_ns = b->cancel_wall_ns;
        return SC_SIM_BS_CANCELLED;
    }
    int64_t elapsed = now_ms - b->create_mono_ms;
    if (elapsed < (int64_t)sim->batch_pending_ms)
        return SC_SIM_BS_PENDING;
    if (elapsed < (int64_t)sim->batch_pending_ms + (int64_t)sim->batch_running_ms)
        return SC_SIM_BS_RUNNING;
    *end_ns = b->create_wall_ns +
              ((int64_t)sim->batch_pending_ms + (int64_t)sim->batch_running_ms) * 1000000;
    return b->fate;
}

/* Build b->output once, at the first read that sees the batch SUCCEEDED (batch_mu held): one
 * entry per request in input order, {response, metadata} or {error, metadata}.
 * @return false when out of memory. */
static bool sc_sim_batch_output(sc_gemini_sim_t *sim, sc_sim_batch_t *b)
{
    if (b->output)
        return true;
    const sc_sim_model_t *m = &sc_sim_models[b->model_index];
    json_t *list = json_array();
    bool ok = list != NULL;
    for (size_t i = 0; ok && i < b->n; i++) {
        const sc_sim_batch_item_t *it = &b->items[i];
        json_t *entry = it->error ? json_pack("{s:O}", "error", it->error)
                                  : json_pack("{s:o}", "response", sc_sim_gen_doc(sim, m, &it->g));
        if (entry && it->metadata && json_object_set(entry, "metadata", it->metadata) != 0) {
            json_decref(entry);
            entry = NULL;
        }
        ok = entry && json_array_append_new(list, entry) == 0;
    }
    if (ok)
        b->output = json_pack("{s:s, s:{s:o}}", "@type", SC_SIM_BATCH_OUTPUT_TYPE,
                              "inlinedResponses", "inlinedResponses", list); /* steals list */
    else
        json_decref(list);
    return b->output != NULL;
}

/* Set obj[key] to n as an int64 JSON string; zero counts are omitted as proto3 does. */
static bool sc_sim_set_count(json_t *obj, const char *key, size_t n)
{
    char buf[24];
    if (n == 0)
        return true;
    snprintf(buf, sizeof buf, "%zu", n);
    return json_object_set_new(obj, key, json_string(buf)) == 0;
}

static bool sc_sim_set_time(json_t *obj, const char *key, int64_t ns)
{
    char buf[SC_SIM_TIME_MAX];
    sc_sim_rfc3339(ns, buf, sizeof buf);
    return json_object_set_new(obj, key, json_string(buf)) == 0;
}

/* The Operation for b as GET answers it (batch_mu held). @return a new reference, or NULL when
 * out of memory. */
static json_t *sc_sim_batch_doc(sc_gemini_sim_t *sim, sc_sim_batch_t *b, int64_t now_ms)
{
    int64_t end_ns = 0;
    sc_sim_batch_state_t state = sc_sim_batch_state(sim, b, now_ms, &end_ns);
    bool done = state >= SC_SIM_BS_SUCCEEDED;
    if (state == SC_SIM_BS_SUCCEEDED && !sc_sim_batch_output(sim, b))
        return NULL;
    int64_t update_ns = done ? end_ns
                        : state == SC_SIM_BS_RUNNING
                            ? b->create_wall_ns + (int64_t)sim->batch_pending_ms * 1000000
                            : b->create_wall_ns;
    char name[SC_SIM_BATCH_NAME_MAX], model[SC_SIM_ID_MAX + 16], state_s[32];
    snprintf(name, sizeof name, "batches/%s", b->id);
    snprintf(model, sizeof model, "models/%s", sc_sim_models[b->model_index].name);
    snprintf(state_s, sizeof state_s, "%s_STATE_%s", sim->faults.job_state_prefix ? "JOB" : "BATCH",
             sc_sim_batch_state_names[state]);

    json_t *stats = json_object();
    bool ok = stats && sc_sim_set_count(stats, "requestCount", b->n);
    if (ok && state == SC_SIM_BS_SUCCEEDED)
        ok = sc_sim_set_count(stats, "successfulRequestCount", b->n - b->failed) &&
             sc_sim_set_count(stats, "failedRequestCount", b->failed);
    else if (ok && !done)
        ok = sc_sim_set_count(stats, "pendingRequestCount", b->n);
    json_t *md = ok ? json_pack("{s:s, s:s}", "@type", SC_SIM_BATCH_TYPE, "model", model) : NULL;
    ok = md != NULL;
    if (ok && b->display_name)
        ok = json_object_set_new(md, "displayName", json_string(b->display_name)) == 0;
    ok = ok && sc_sim_set_time(md, "createTime", b->create_wall_ns);
    if (ok && done)
        ok = sc_sim_set_time(md, "endTime", end_ns);
    ok = ok && sc_sim_set_time(md, "updateTime", update_ns) &&
         json_object_set(md, "batchStats", stats) == 0 &&
         json_object_set_new(md, "state", json_string(state_s)) == 0 &&
         json_object_set_new(md, "name", json_string(name)) == 0;
    if (ok && state == SC_SIM_BS_SUCCEEDED)
        ok = json_object_set(md, "output", b->output) == 0;
    json_t *op = ok ? json_pack("{s:s, s:O}", "name", name, "metadata", md) : NULL;
    ok = op != NULL;
    if (ok && done)
        ok = json_object_set_new(op, "done", json_true()) == 0;
    if (ok && state == SC_SIM_BS_SUCCEEDED)
        ok = json_object_set(op, "response", b->output) == 0;
    if (ok && state == SC_SIM_BS_FAILED)
        ok = json_object_set_new(op, "error",
                                 sc_sim_status_obj(500, "INTERNAL",
                                                   "Batch processing failed (simulated by the "
                                                   "batch_fail fault).")) == 0;
    json_decref(stats);
    json_decref(md);
    if (!ok) {
        json_decref(op);
        return NULL;
    }
    return op;
}

/* The live batch with this id (batch_mu held). @return borrowed, or NULL; *slot gets its index. */
static sc_sim_batch_t *sc_sim_batch_find(sc_gemini_sim_t *sim, const char *id, size_t *slot)
{
    for (size_t i = 0; i < SC_SIM_BATCH_MAX; i++) {
        sc_sim_batch_t *b = sim->batches[i];
        if (b && strcmp(b->id, id) == 0) {
            if (slot)
                *slot = i;
            return b;
        }
    }
    return NULL;
}

/* The slot for hash in the key set: the one holding it, or the empty one where it would go.
 * The set is at most half full, so the probe ends. */
static sc_sim_key_slot_t *sc_sim_keys_slot(sc_sim_key_slot_t *keys, size_t cap, uint64_t hash)
{
    size_t i = (size_t)hash & (cap - 1);
    while (keys[i].hash != 0 && keys[i].hash != hash)
        i = (i + 1) & (cap - 1);
    return &keys[i];
}

/* Double the key set (batch_mu held). @return false when out of memory or at the bound. */
static bool sc_sim_keys_grow(sc_gemini_sim_t *sim)
{
    size_t cap = sim->keys_cap ? sim->keys_cap * 2 : SC_SIM_BATCH_KEYS_INITIAL;
    if (cap / 2 > (size_t)SC_SIM_BATCH_KEYS_MAX * 2)
        return false;
    sc_sim_key_slot_t *keys = calloc(cap, sizeof *keys);
    if (!keys)
        return false;
    for (size_t i = 0; i < sim->keys_cap; i++)
        if (sim->keys[i].hash)
            *sc_sim_keys_slot(keys, cap, sim->keys[i].hash) = sim->keys[i];
    free(sim->keys);
    sim->keys = keys;
    sim->keys_cap = cap;
    return true;
}

/* Remember the metadata.key of every request of a new batch, counting each key that an earlier
 * batch carried once in duplicate_keys (batch_mu held). Keys are compared by a 64-bit hash. */
static void sc_sim_keys_note(sc_gemini_sim_t *sim, const sc_sim_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        json_t *key = json_object_get(b->items[i].metadata, "key");
        if (!json_is_string(key))
            continue;
        uint64_t h = sc_sim_fnv(SC_SIM_FNV_OFFSET, json_string_value(key), json_string_length(key));
        h = h ? h : 1;
        sc_sim_key_slot_t *slot = sim->keys ? sc_sim_keys_slot(sim->keys, sim->keys_cap, h) : NULL;
        if (slot && slot->hash == h) {
            if (slot->seq != b->seq && !slot->counted) {
                slot->counted = true;
                sim->duplicate_keys++;
            }
            continue;
        }
        if (sim->keys_len >= SC_SIM_BATCH_KEYS_MAX) {
            sim->keys_overflow++;
            continue;
        }
        if ((sim->keys_len + 1) * 2 > sim->keys_cap) {
            if (!sc_sim_keys_grow(sim)) {
                sim->keys_overflow++;
                continue;
            }
        }
        slot = sc_sim_keys_slot(sim->keys, sim->keys_cap, h);
        *slot = (sc_sim_key_slot_t){.hash = h, .seq = b->seq, .counted = false};
        sim->keys_len++;
    }
}

static void sc_sim_reply_batch_not_found(sc_sim_reply_t *r, const char *id)
{
    sc_sim_reply_error(r, 404, "NOT_FOUND", NULL, "Batch batches/%s not found.", id);
}

/* Validate the requests of a create body into b->items (b->n entries, allocated by the caller).
 * A request that generateContent would reject becomes an error entry, not a failed create.
 * @return false with a 400 in r when the batch itself is malformed. */
static bool sc_sim_batch_parse_items(const json_t *reqs, sc_sim_batch_t *b, sc_sim_reply_t *r)
{
    size_t i;
    json_t *entry;
    json_array_foreach(reqs, i, entry)
    {
        sc_sim_batch_item_t *it = &b->items[i];
        if (!json_is_object(entry)) {
            sc_sim_reply_invalid(r,
                                 "Invalid value at 'batch.input_config.requests.requests[%zu]': "
                                 "expected an InlinedRequest object.",
                                 i);
            return false;
        }
        json_t *md = json_object_get(entry, "metadata");
        if (md && !json_is_object(md)) {
            sc_sim_reply_invalid(r,
                                 "Invalid value at 'batch.input_config.requests.requests[%zu]."
                                 "metadata': expected an object.",
                                 i);
            return false;
        }
        it->metadata = json_incref(md);
        json_t *req = json_object_get(entry, "request");
        sc_sim_reply_t vr = {0};
        bool valid;
        if (!json_is_object(req)) {
            sc_sim_reply_invalid(&vr, "* InlinedRequest.request: request is not specified");
            valid = false;
        } else {
            valid = sc_sim_parse_gen(req, true, &it->g, &vr);
        }
        if (!valid) {
            it->error = sc_sim_reply_to_status(&vr);
            free(vr.body);
            if (!it->error) {
                sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
                return false;
            }
            b->failed++;
        }
    }
    return true;
}

/* Draw the batch's fate and its injected request errors with the seeded PRNG. Draws happen only
 * for shares > 0, so specs without batch keys leave generateContent's sequence as it was. */
static bool sc_sim_batch_draw(sc_gemini_sim_t *sim, sc_sim_batch_t *b)
{
    const sc_sim_faults_t *f = &sim->faults;
    bool ok = true;
    b->fate = SC_SIM_BS_SUCCEEDED;
    pthread_mutex_lock(&sim->fault_mu);
    if (f->batch_fail > 0.0 || f->batch_expire > 0.0) {
        double u = sc_sim_unit(&sim->rng);
        if (u < f->batch_fail)
            b->fate = SC_SIM_BS_FAILED;
        else if (u < f->batch_fail + f->batch_expire)
            b->fate = SC_SIM_BS_EXPIRED;
    }
    for (size_t i = 0; f->batch_error > 0.0 && i < b->n; i++) {
        bool hit = sc_sim_unit(&sim->rng) < f->batch_error;
        if (!hit || b->items[i].error)
            continue; /* a request that is invalid stays answered by validation */
        b->items[i].error = sc_sim_status_obj(500, "INTERNAL", SC_SIM_MSG_500);
        if (!b->items[i].error) {
            ok = false;
            break;
        }
        b->failed++;
    }
    pthread_mutex_unlock(&sim->fault_mu);
    return ok;
}

/* POST /v1beta/models/{model}:batchGenerateContent with inline requests (§5.2). */
static void sc_sim_batch_create(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    json_t *root = NULL;
    sc_sim_batch_t *b = NULL; /* owned until it enters the table */
    size_t model_index = 0;
    if (!sc_sim_model_find(c->id, &model_index)) {
        sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                           "models/%s is not found for API version v1beta, or is not supported "
                           "for batchGenerateContent. Call ListModels to see the list of "
                           "available models and their supported methods.",
                           c->id);
        goto out;
    }
    if (c->body_len > SC_SIM_BATCH_INLINE_MAX) {
        sc_sim_reply_invalid(r,
                             "Request payload size exceeds the limit: %zu bytes. Inline batch "
                             "requests must be smaller than 20 MB; use a file for larger ones.",
                             SC_SIM_BATCH_INLINE_MAX);
        goto out;
    }
    root = sc_sim_parse_body(c, r);
    if (!root)
        goto out;
    json_t *batch = json_object_get(root, "batch");
    if (!json_is_object(batch)) {
        sc_sim_reply_invalid(r, "* BatchGenerateContentRequest.batch: batch is not specified");
        goto out;
    }
    json_t *dn = sc_sim_get2(batch, "displayName", "display_name");
    if (dn && (!json_is_string(dn) || json_string_length(dn) > SC_SIM_DISPLAY_NAME_MAX)) {
        sc_sim_reply_invalid(r,
                             "Invalid value at 'batch.display_name': expected a string of at "
                             "most %d bytes.",
                             SC_SIM_DISPLAY_NAME_MAX);
        goto out;
    }
    json_t *ic = sc_sim_get2(batch, "inputConfig", "input_config");
    if (!json_is_object(ic)) {
        sc_sim_reply_invalid(r, "* GenerateContentBatch.input_config: input_config is not "
                                "specified");
        goto out;
    }
    if (sc_sim_get2(ic, "fileName", "file_name")) {
        sc_sim_reply_invalid(r, "file input is not supported by the simulator");
        goto out;
    }
    json_t *outer = json_object_get(ic, "requests");
    json_t *reqs = json_is_object(outer) ? json_object_get(outer, "requests") : NULL;
    if (!json_is_array(reqs) || json_array_size(reqs) == 0) {
        sc_sim_reply_invalid(r, "* GenerateContentBatch.input_config.requests: requests must not "
                                "be empty");
        goto out;
    }
    size_t n = json_array_size(reqs);
    if (n > SC_SIM_BATCH_REQUESTS_MAX) {
        sc_sim_reply_invalid(r, "A batch holds at most %u inline requests; this one has %zu.",
                             SC_SIM_BATCH_REQUESTS_MAX, n);
        goto out;
    }
    b = calloc(1, sizeof *b);
    if (b)
        b->items = calloc(n, sizeof *b->items);
    if (!b || !b->items) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        goto out;
    }
    b->n = n;
    b->model_index = model_index;
    if (!sc_sim_batch_parse_items(reqs, b, r))
        goto out;
    if (dn && !(b->display_name = strdup(json_string_value(dn)))) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        goto out;
    }
    if (!sc_sim_batch_draw(c->sim, b)) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        goto out;
    }
    b->create_wall_ns = sc_sim_wall_ns();
    b->create_mono_ms = sc_now_ms();

    sc_gemini_sim_t *sim = c->sim;
    pthread_mutex_lock(&sim->batch_mu);
    size_t slot = SC_SIM_BATCH_MAX;
    for (size_t i = 0; sim->batch_count < SC_SIM_BATCH_MAX && i < SC_SIM_BATCH_MAX; i++)
        if (!sim->batches[i]) {
            slot = i;
            break;
        }
    if (slot == SC_SIM_BATCH_MAX) {
        sc_sim_reply_error(r, 429, "RESOURCE_EXHAUSTED", NULL,
                           "too many batches: the simulator holds at most %u; delete some.",
                           SC_SIM_BATCH_MAX);
    } else if (sim->batch_items + n > SC_SIM_BATCH_ITEMS_MAX) {
        sc_sim_reply_error(r, 429, "RESOURCE_EXHAUSTED", NULL,
                           "too many batched requests: the simulator holds at most %u over all "
                           "batches; delete some.",
                           SC_SIM_BATCH_ITEMS_MAX);
    } else {
        b->seq = ++sim->batch_seq;
        sc_sim_batch_id(sim, b->id);
        sim->batches[slot] = b;
        sim->batch_count++;
        sim->batch_items += n;
        sim->batches_created++;
        sim->batch_requests += n;
        sc_sim_keys_note(sim, b);
        sc_sim_reply_json(r, 200, sc_sim_batch_doc(sim, b, b->create_mono_ms));
        b = NULL; /* the table owns it */
    }
    pthread_mutex_unlock(&sim->batch_mu);
out:
    sc_sim_batch_free(b);
    json_decref(root);
}

/* GET /v1beta/batches/{id} */
static void sc_sim_batch_get(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    pthread_mutex_lock(&c->sim->batch_mu);
    sc_sim_batch_t *b = sc_sim_batch_find(c->sim, c->id, NULL);
    if (b)
        sc_sim_reply_json(r, 200, sc_sim_batch_doc(c->sim, b, sc_now_ms()));
    else
        sc_sim_reply_batch_not_found(r, c->id);
    pthread_mutex_unlock(&c->sim->batch_mu);
}

/* pageSize and pageToken of a list call (page clamped to SC_SIM_BATCH_PAGE_MAX, 0 = default;
 * the token is the seq of the first item of the page). false with a 400 in r when malformed. */
static bool sc_sim_page_args(sc_sim_call_t *c, sc_sim_reply_t *r, uint64_t *page, uint64_t *from)
{
    const char *ps = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "pageSize");
    const char *pt = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "pageToken");
    *page = SC_SIM_BATCH_PAGE_DEFAULT;
    *from = 0;
    if (ps && ps[0]) {
        if (!sc_sim_parse_u64(ps, UINT32_MAX, page)) {
            sc_sim_reply_invalid(r, "Invalid value at 'page_size' (TYPE_INT32), \"%.64s\"", ps);
            return false;
        }
        if (*page == 0)
            *page = SC_SIM_BATCH_PAGE_DEFAULT;
        if (*page > SC_SIM_BATCH_PAGE_MAX)
            *page = SC_SIM_BATCH_PAGE_MAX;
    }
    if (pt && pt[0] && !sc_sim_parse_u64(pt, UINT64_MAX, from)) {
        sc_sim_reply_invalid(r, "Invalid page token.");
        return false;
    }
    return true;
}

static int sc_sim_batch_cmp(const void *a, const void *b)
{
    uint64_t x = (*(sc_sim_batch_t *const *)a)->seq, y = (*(sc_sim_batch_t *const *)b)->seq;
    return x < y ? -1 : x > y;
}

/* GET /v1beta/batches?pageSize=&pageToken= in creation order. The page token is the seq of the
 * first batch of the next page. */
static void sc_sim_batch_list(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    sc_gemini_sim_t *sim = c->sim;
    uint64_t page, from;
    if (!sc_sim_page_args(c, r, &page, &from))
        return;
    sc_sim_batch_t **sel = malloc(SC_SIM_BATCH_MAX * sizeof *sel); /* borrowed pointers */
    json_t *ops = json_array(), *doc = json_object();
    bool ok = sel && ops && doc;
    pthread_mutex_lock(&sim->batch_mu);
    size_t n = 0;
    for (size_t i = 0; ok && i < SC_SIM_BATCH_MAX; i++)
        if (sim->batches[i] && sim->batches[i]->seq >= from)
            sel[n++] = sim->batches[i];
    if (ok)
        qsort(sel, n, sizeof *sel, sc_sim_batch_cmp);
    int64_t now = sc_now_ms();
    for (size_t i = 0; ok && i < n && i < page; i++)
        ok = json_array_append_new(ops, sc_sim_batch_doc(sim, sel[i], now)) == 0;
    ok = ok && json_object_set(doc, "operations", ops) == 0;
    if (ok && n > page) {
        char tok[24];
        snprintf(tok, sizeof tok, "%" PRIu64, sel[page]->seq);
        ok = json_object_set_new(doc, "nextPageToken", json_string(tok)) == 0;
    }
    if (ok) {
        sc_sim_reply_json(r, 200, doc); /* serialized under the lock: the outputs are shared */
        doc = NULL;
    }
    pthread_mutex_unlock(&sim->batch_mu);
    if (!ok)
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
    json_decref(ops);
    json_decref(doc);
    free(sel);
}

/* POST /v1beta/batches/{id}:cancel: a batch not yet terminal ends CANCELLED, with no results. */
static void sc_sim_batch_cancel(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    pthread_mutex_lock(&c->sim->batch_mu);
    sc_sim_batch_t *b = sc_sim_batch_find(c->sim, c->id, NULL);
    if (b) {
        int64_t end_ns;
        if (sc_sim_batch_state(c->sim, b, sc_now_ms(), &end_ns) < SC_SIM_BS_SUCCEEDED) {
            b->cancelled = true;
            b->cancel_wall_ns = sc_sim_wall_ns();
        }
        sc_sim_reply_json(r, 200, json_object());
    } else {
        sc_sim_reply_batch_not_found(r, c->id);
    }
    pthread_mutex_unlock(&c->sim->batch_mu);
}

/* DELETE /v1beta/batches/{id}: the batch and its results are freed; its keys stay remembered. */
static void sc_sim_batch_delete(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    size_t slot = 0;
    pthread_mutex_lock(&c->sim->batch_mu);
    sc_sim_batch_t *b = sc_sim_batch_find(c->sim, c->id, &slot);
    if (b) {
        c->sim->batches[slot] = NULL;
        c->sim->batch_count--;
        c->sim->batch_items -= b->n;
    }
    pthread_mutex_unlock(&c->sim->batch_mu);
    if (b) {
        sc_sim_batch_free(b);
        sc_sim_reply_json(r, 200, json_object());
    } else {
        sc_sim_reply_batch_not_found(r, c->id);
    }
}

/* ---- context caching (§4) ---- */

static void sc_sim_cache_free(sc_sim_cache_t *cc)
{
    if (!cc)
        return;
    free(cc->display_name);
    free(cc);
}

/* The smallest cache model_index accepts, in tokens. */
static size_t sc_sim_cache_min(const sc_gemini_sim_t *sim, size_t model_index)
{
    return sim->cache_min_override ? sim->cache_min_override
                                   : sc_sim_models[model_index].cache_min;
}

/* Token-seconds of cc from its creation to until_ns (not past its expiry). */
static double sc_sim_cache_storage(const sc_sim_cache_t *cc, int64_t until_ns)
{
    int64_t end = until_ns < cc->expire_ns ? until_ns : cc->expire_ns;
    if (end <= cc->create_ns)
        return 0.0;
    return (double)cc->tokens * (double)(end - cc->create_ns) / (double)SC_SIM_NS_PER_S;
}

/* Drop the caches expired at now_ns (cache_mu held): an expired cache is gone for every call. */
static void sc_sim_cache_sweep(sc_gemini_sim_t *sim, int64_t now_ns)
{
    for (size_t i = 0; i < SC_SIM_CACHE_MAX && sim->cache_count > 0; i++) {
        sc_sim_cache_t *cc = sim->caches[i];
        if (!cc || cc->expire_ns > now_ns)
            continue;
        sim->storage_dead += sc_sim_cache_storage(cc, now_ns);
        sim->caches_expired++;
        sim->caches[i] = NULL;
        sim->cache_count--;
        sc_sim_cache_free(cc);
    }
}

/* The live cache with this id (cache_mu held, swept). @return borrowed or NULL. */
static sc_sim_cache_t *sc_sim_cache_find(sc_gemini_sim_t *sim, const char *id, size_t *slot)
{
    for (size_t i = 0; i < SC_SIM_CACHE_MAX; i++) {
        sc_sim_cache_t *cc = sim->caches[i];
        if (cc && strcmp(cc->id, id) == 0) {
            if (slot)
                *slot = i;
            return cc;
        }
    }
    return NULL;
}

static void sc_sim_reply_cache_not_found(sc_sim_reply_t *r, const char *id)
{
    sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                       "CachedContent not found (or permission denied): " SC_SIM_CACHE_PREFIX
                       "%.64s",
                       id);
}

/* A duration "300s" / "3.5s" in ns, at most SC_SIM_CACHE_TTL_MAX_S. */
static bool sc_sim_parse_duration_ns(const char *s, int64_t *ns)
{
    if (!sc_sim_valid_duration(s))
        return false;
    char *end = NULL;
    errno = 0;
    long long sec = strtoll(s, &end, 10);
    if (errno || sec < 0 || sec > SC_SIM_CACHE_TTL_MAX_S)
        return false;
    int64_t frac = 0, scale = SC_SIM_NS_PER_S / 10;
    if (*end == '.')
        for (end++; *end >= '0' && *end <= '9'; end++, scale /= 10)
            frac += (*end - '0') * scale;
    *ns = (int64_t)sec * SC_SIM_NS_PER_S + frac;
    return true;
}

/* RFC 3339 "YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM)" in ns since the epoch. */
static bool sc_sim_parse_time_ns(const char *s, int64_t *ns)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int used = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &used) != 6 ||
        used != 19 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = s + used;
    int64_t frac = 0, scale = SC_SIM_NS_PER_S / 10;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++, scale /= 10)
            if (digits < 9)
                frac += (*p - '0') * scale;
        if (digits == 0 || digits > 9)
            return false;
    }
    long offset_s = 0;
    if (*p == 'Z' && p[1] == '\0') {
        offset_s = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int hh = 0, mm = 0;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59)
            return false;
        offset_s = (long)(hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
    } else {
        return false;
    }
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *ns = ((int64_t)t - offset_s) * SC_SIM_NS_PER_S + frac;
    return true;
}

/* The expiry a body asks for: ttl or expireTime (one-of), either spelling. *given says whether
 * one was there (*expire_ns untouched when not). @return false with a 400 in r. */
static bool sc_sim_cache_expiry(const json_t *root, int64_t now_ns, int64_t *expire_ns,
                                bool *given, sc_sim_reply_t *r)
{
    json_t *ttl = json_object_get(root, "ttl");
    json_t *exp = sc_sim_get2(root, "expireTime", "expire_time");
    *given = ttl || exp;
    if (ttl && exp) {
        sc_sim_reply_invalid(r, "ttl and expire_time are mutually exclusive (oneof expiration).");
        return false;
    }
    int64_t v = 0;
    if (ttl) {
        if (!json_is_string(ttl) || !sc_sim_parse_duration_ns(json_string_value(ttl), &v) ||
            v <= 0) {
            sc_sim_reply_invalid(r, "Invalid value at 'cached_content.ttl' (type.googleapis.com/"
                                    "google.protobuf.Duration): a positive duration such as "
                                    "\"300s\" is expected.");
            return false;
        }
        *expire_ns = now_ns + v;
    } else if (exp) {
        if (!json_is_string(exp) || !sc_sim_parse_time_ns(json_string_value(exp), &v)) {
            sc_sim_reply_invalid(r, "Invalid value at 'cached_content.expire_time' "
                                    "(type.googleapis.com/google.protobuf.Timestamp).");
            return false;
        }
        if (v <= now_ns || v - now_ns > SC_SIM_CACHE_TTL_MAX_S * SC_SIM_NS_PER_S) {
            sc_sim_reply_invalid(r, "expire_time must be in the future (and within %lld s).",
                                 SC_SIM_CACHE_TTL_MAX_S);
            return false;
        }
        *expire_ns = v;
    }
    return true;
}

/* The CachedContent as create/get/list/patch answer it: never the input-only fields (§4.1).
 * @return a new reference, or NULL when out of memory. */
static json_t *sc_sim_cache_doc(const sc_sim_cache_t *cc)
{
    char name[SC_SIM_BATCH_NAME_MAX], model[SC_SIM_ID_MAX + 16];
    snprintf(name, sizeof name, SC_SIM_CACHE_PREFIX "%s", cc->id);
    snprintf(model, sizeof model, "models/%s", sc_sim_models[cc->model_index].name);
    json_t *doc = json_pack("{s:s, s:s, s:{s:I}}", "name", name, "model", model, "usageMetadata",
                            "totalTokenCount", (json_int_t)cc->tokens);
    bool ok = doc != NULL;
    if (ok && cc->display_name)
        ok = json_object_set_new(doc, "displayName", json_string(cc->display_name)) == 0;
    ok = ok && sc_sim_set_time(doc, "createTime", cc->create_ns) &&
         sc_sim_set_time(doc, "updateTime", cc->update_ns) &&
         sc_sim_set_time(doc, "expireTime", cc->expire_ns);
    if (!ok) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Unicode characters in a UTF-8 string (continuation bytes not counted). */
static size_t sc_sim_utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* POST /v1beta/cachedContents: the body is the CachedContent itself (§4.2). */
static void sc_sim_cache_create(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    sc_gemini_sim_t *sim = c->sim;
    sc_sim_cache_t *cc = NULL; /* owned until it enters the table */
    json_t *root = sc_sim_parse_body(c, r);
    if (!root)
        goto out;
    json_t *model = json_object_get(root, "model");
    const char *ms = json_string_value(model);
    if (!ms || !ms[0]) {
        sc_sim_reply_invalid(r, "* CachedContent.model: model is not specified");
        goto out;
    }
    size_t model_index = 0;
    if (strncmp(ms, "models/", 7) != 0 || !sc_sim_model_find(ms + 7, &model_index)) {
        sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                           "%.128s is not found for API version v1beta, or is not supported for "
                           "createCachedContent. Call ListModels to see the list of available "
                           "models and their supported methods.",
                           ms);
        goto out;
    }
    json_t *dn = sc_sim_get2(root, "displayName", "display_name");
    if (dn && (!json_is_string(dn) ||
               sc_sim_utf8_chars(json_string_value(dn)) > SC_SIM_CACHE_DISPLAY_NAME_MAX)) {
        sc_sim_reply_invalid(r,
                             "Invalid value at 'cached_content.display_name': expected a string "
                             "of at most %d characters.",
                             SC_SIM_CACHE_DISPLAY_NAME_MAX);
        goto out;
    }
    sc_sim_gen_req_t g;
    memset(&g, 0, sizeof g);
    if (!sc_sim_parse_contents(root, false, &g, r) || !sc_sim_parse_system(root, &g, r))
        goto out;
    int64_t now = sc_sim_wall_ns();
    int64_t expire = now + (int64_t)SC_SIM_CACHE_TTL_DEFAULT_S * SC_SIM_NS_PER_S;
    bool given = false;
    if (!sc_sim_cache_expiry(root, now, &expire, &given, r))
        goto out;
    size_t tokens = sc_sim_tokens(g.prompt_chars), min = sc_sim_cache_min(sim, model_index);
    if (tokens < min) {
        pthread_mutex_lock(&sim->cache_mu);
        sim->caches_too_small++;
        pthread_mutex_unlock(&sim->cache_mu);
        sc_sim_reply_invalid(r,
                             "Cached content is too small. total_token_count=%zu, "
                             "min_total_token_count=%zu",
                             tokens, min);
        goto out;
    }
    cc = calloc(1, sizeof *cc);
    if (!cc || (dn && !(cc->display_name = strdup(json_string_value(dn))))) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        goto out;
    }
    cc->model_index = model_index;
    cc->tokens = tokens;
    cc->create_ns = cc->update_ns = now;
    cc->expire_ns = expire;

    pthread_mutex_lock(&sim->cache_mu);
    sc_sim_cache_sweep(sim, now);
    size_t slot = SC_SIM_CACHE_MAX;
    for (size_t i = 0; sim->cache_count < SC_SIM_CACHE_MAX && i < SC_SIM_CACHE_MAX; i++)
        if (!sim->caches[i]) {
            slot = i;
            break;
        }
    if (slot == SC_SIM_CACHE_MAX) {
        sc_sim_reply_error(r, 429, "RESOURCE_EXHAUSTED", NULL,
                           "too many cachedContents: the simulator holds at most %u; delete "
                           "some.",
                           SC_SIM_CACHE_MAX);
    } else {
        cc->seq = ++sim->cache_seq;
        sc_sim_batch_id(sim, cc->id);
        sim->caches[slot] = cc;
        sim->cache_count++;
        sim->caches_created++;
        sc_sim_reply_json(r, 200, sc_sim_cache_doc(cc));
        cc = NULL; /* the table owns it */
    }
    pthread_mutex_unlock(&sim->cache_mu);
out:
    sc_sim_cache_free(cc);
    json_decref(root);
}

/* GET /v1beta/cachedContents/{id} */
static void sc_sim_cache_get(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    pthread_mutex_lock(&c->sim->cache_mu);
    sc_sim_cache_sweep(c->sim, sc_sim_wall_ns());
    sc_sim_cache_t *cc = sc_sim_cache_find(c->sim, c->id, NULL);
    if (cc)
        sc_sim_reply_json(r, 200, sc_sim_cache_doc(cc));
    else
        sc_sim_reply_cache_not_found(r, c->id);
    pthread_mutex_unlock(&c->sim->cache_mu);
}

static int sc_sim_cache_cmp(const void *a, const void *b)
{
    uint64_t x = (*(sc_sim_cache_t *const *)a)->seq, y = (*(sc_sim_cache_t *const *)b)->seq;
    return x < y ? -1 : x > y;
}

/* GET /v1beta/cachedContents?pageSize=&pageToken= in creation order; the page token is the seq
 * of the first cache of the next page. */
static void sc_sim_cache_list(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    sc_gemini_sim_t *sim = c->sim;
    uint64_t page, from;
    if (!sc_sim_page_args(c, r, &page, &from))
        return;
    sc_sim_cache_t **sel = malloc(SC_SIM_CACHE_MAX * sizeof *sel); /* borrowed pointers */
    json_t *list = json_array(), *doc = json_object();
    bool ok = sel && list && doc;
    pthread_mutex_lock(&sim->cache_mu);
    sc_sim_cache_sweep(sim, sc_sim_wall_ns());
    size_t n = 0;
    for (size_t i = 0; ok && i < SC_SIM_CACHE_MAX; i++)
        if (sim->caches[i] && sim->caches[i]->seq >= from)
            sel[n++] = sim->caches[i];
    if (ok)
        qsort(sel, n, sizeof *sel, sc_sim_cache_cmp);
    for (size_t i = 0; ok && i < n && i < page; i++)
        ok = json_array_append_new(list, sc_sim_cache_doc(sel[i])) == 0;
    if (ok && json_array_size(list) > 0) /* proto3: an empty repeated field is left out */
        ok = json_object_set(doc, "cachedContents", list) == 0;
    if (ok && n > page) {
        char tok[24];
        snprintf(tok, sizeof tok, "%" PRIu64, sel[page]->seq);
        ok = json_object_set_new(doc, "nextPageToken", json_string(tok)) == 0;
    }
    pthread_mutex_unlock(&sim->cache_mu);
    if (ok) {
        sc_sim_reply_json(r, 200, doc);
        doc = NULL;
    } else {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
    }
    json_decref(list);
    json_decref(doc);
    free(sel);
}

/* PATCH /v1beta/cachedContents/{id}: only the expiration may change (§4.3). */
static void sc_sim_cache_patch(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    static const char *const allowed[] = {"ttl",  "expireTime", "expire_time",
                                          "name", "updateMask", "update_mask"};
    json_t *root = sc_sim_parse_body(c, r);
    if (!root)
        return;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        bool ok = false;
        for (size_t i = 0; i < SC_ARRAY_LEN(allowed); i++)
            ok = ok || strcmp(key, allowed[i]) == 0;
        if (!ok) {
            sc_sim_reply_invalid(r,
                                 "CachedContent field '%.64s' cannot be updated: only the "
                                 "expiration (ttl or expire_time) is updatable.",
                                 key);
            json_decref(root);
            return;
        }
    }
    int64_t now = sc_sim_wall_ns(), expire = 0;
    bool given = false;
    if (!sc_sim_cache_expiry(root, now, &expire, &given, r)) {
        json_decref(root);
        return;
    }
    json_decref(root);
    if (!given) {
        sc_sim_reply_invalid(r, "Either ttl or expire_time must be set to update a "
                                "CachedContent.");
        return;
    }
    pthread_mutex_lock(&c->sim->cache_mu);
    sc_sim_cache_sweep(c->sim, now);
    sc_sim_cache_t *cc = sc_sim_cache_find(c->sim, c->id, NULL);
    if (cc) {
        cc->expire_ns = expire;
        cc->update_ns = now;
        sc_sim_reply_json(r, 200, sc_sim_cache_doc(cc));
    } else {
        sc_sim_reply_cache_not_found(r, c->id);
    }
    pthread_mutex_unlock(&c->sim->cache_mu);
}

/* DELETE /v1beta/cachedContents/{id} -> {} */
static void sc_sim_cache_delete(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    size_t slot = 0;
    int64_t now = sc_sim_wall_ns();
    pthread_mutex_lock(&c->sim->cache_mu);
    sc_sim_cache_sweep(c->sim, now);
    sc_sim_cache_t *cc = sc_sim_cache_find(c->sim, c->id, &slot);
    if (cc) {
        c->sim->storage_dead += sc_sim_cache_storage(cc, now);
        c->sim->caches[slot] = NULL;
        c->sim->cache_count--;
        c->sim->caches_deleted++;
    }
    pthread_mutex_unlock(&c->sim->cache_mu);
    if (cc) {
        sc_sim_cache_free(cc);
        sc_sim_reply_json(r, 200, json_object());
    } else {
        sc_sim_reply_cache_not_found(r, c->id);
    }
}

/* generateContent with "cachedContent": no systemInstruction/tools/toolConfig beside it (§1.4),
 * a live cache of the URL's model; the cache's tokens become g->cached_tokens (§4.4).
 * @return false with the error in r. */
static bool sc_sim_cache_use(sc_gemini_sim_t *sim, const json_t *root, const json_t *cached,
                             size_t model_index, sc_sim_gen_req_t *g, sc_sim_reply_t *r)
{
    if (sc_sim_get2(root, "systemInstruction", "system_instruction") ||
        json_object_get(root, "tools") || sc_sim_get2(root, "toolConfig", "tool_config")) {
        sc_sim_reply_invalid(r, "CachedContent can not be used with GenerateContent request "
                                "setting system_instruction, tools or tool_config.\n\nProposed "
                                "fix: move those values to CachedContent from GenerateContent "
                                "request.");
        return false;
    }
    const char *name = json_string_value(cached);
    size_t plen = strlen(SC_SIM_CACHE_PREFIX);
    if (!name || strncmp(name, SC_SIM_CACHE_PREFIX, plen) != 0 || !name[plen]) {
        sc_sim_reply_invalid(r, "Invalid value at 'cached_content': expected a name like "
                                "\"" SC_SIM_CACHE_PREFIX "{id}\".");
        return false;
    }
    const char *id = name + plen;
    bool ok = false;
    pthread_mutex_lock(&sim->cache_mu);
    sc_sim_cache_sweep(sim, sc_sim_wall_ns());
    sc_sim_cache_t *cc = sc_sim_cache_find(sim, id, NULL);
    if (!cc)
        sc_sim_reply_cache_not_found(r, id);
    else if (cc->model_index != model_index)
        sc_sim_reply_invalid(r,
                             "Model used by GenerateContent request (models/%s) and "
                             "CachedContent (models/%s) has to be the same.",
                             sc_sim_models[model_index].name, sc_sim_models[cc->model_index].name);
    else {
        g->cached_tokens = cc->tokens;
        ok = true;
    }
    pthread_mutex_unlock(&sim->cache_mu);
    return ok;
}

/* ---- stats ---- */

/* @return a new reference, or NULL when out of memory. */
static json_t *sc_sim_stats_doc(sc_gemini_sim_t *sim)
{
    json_t *root = json_object(), *responses = json_object(), *faults = json_object(),
           *models = json_object(), *billed = json_object();
    bool ok = root && responses && faults && models && billed;
    for (size_t i = 0; ok && i < SC_SIM_MODEL_COUNT; i++) {
        json_t *b = json_pack("{s:I, s:I, s:I, s:I}", "prompt",
                              (json_int_t)atomic_load(&sim->billed_tokens[i][0]), "cached",
                              (json_int_t)atomic_load(&sim->billed_tokens[i][1]), "output",
                              (json_int_t)atomic_load(&sim->billed_tokens[i][2]), "thought",
                              (json_int_t)atomic_load(&sim->billed_tokens[i][3]));
        ok = b && json_object_set_new(billed, sc_sim_models[i].name, b) == 0;
    }
    for (size_t code = 0; ok && code < SC_SIM_HTTP_CODES; code++) {
        uint64_t n = atomic_load(&sim->by_status[code]);
        if (n == 0)
            continue;
        char key[8];
        snprintf(key, sizeof key, "%zu", code);
        ok = json_object_set_new(responses, key, json_integer((json_int_t)n)) == 0;
    }
    for (int k = 0; ok && k < SC_SIM_F_COUNT; k++)
        ok = json_object_set_new(faults, sc_sim_fault_names[k],
                                 json_integer((json_int_t)atomic_load(&sim->faults_by_kind[k]))) ==
             0;
    for (size_t i = 0; ok && i < SC_SIM_MODEL_COUNT; i++)
        ok = json_object_set_new(
                 models, sc_sim_models[i].name,
                 json_integer((json_int_t)atomic_load(&sim->generate_by_model[i]))) == 0;
    if (ok)
        ok = json_object_set_new(root, "requests",
                                 json_integer((json_int_t)atomic_load(&sim->requests))) == 0 &&
             json_object_set(root, "responses", responses) == 0 &&
             json_object_set(root, "faults", faults) == 0 &&
             json_object_set(root, "generate_content", models) == 0 &&
             json_object_set(root, "billed_tokens", billed) == 0 &&
             json_object_set_new(root, "count_tokens",
                                 json_integer((json_int_t)atomic_load(&sim->count_tokens))) == 0 &&
             json_object_set_new(root, "fault_table_evictions",
                                 json_integer((json_int_t)atomic_load(&sim->fault_evictions))) == 0 &&
             json_object_set_new(root, "refusals",
                                 json_integer((json_int_t)atomic_load(&sim->refusals))) == 0;
    pthread_mutex_lock(&sim->batch_mu);
    uint64_t batch_counts[] = {sim->batches_created, sim->batch_requests, sim->duplicate_keys,
                               sim->keys_overflow};
    pthread_mutex_unlock(&sim->batch_mu);
    static const char *const batch_names[] = {"batches_created", "batch_requests",
                                              "duplicate_batch_keys", "batch_keys_overflow"};
    for (size_t i = 0; ok && i < SC_ARRAY_LEN(batch_counts); i++)
        ok = json_object_set_new(root, batch_names[i], json_integer((json_int_t)batch_counts[i])) ==
             0;
    int64_t now = sc_sim_wall_ns();
    pthread_mutex_lock(&sim->cache_mu);
    sc_sim_cache_sweep(sim, now);
    double storage = sim->storage_dead;
    for (size_t i = 0; i < SC_SIM_CACHE_MAX; i++)
        if (sim->caches[i])
            storage += sc_sim_cache_storage(sim->caches[i], now);
    uint64_t cache_counts[] = {sim->caches_created,   sim->caches_deleted,
                               sim->caches_expired,   sim->cache_count,
                               sim->caches_too_small, sim->cached_tokens_served};
    pthread_mutex_unlock(&sim->cache_mu);
    static const char *const cache_names[] = {"caches_created",   "caches_deleted",
                                              "caches_expired",   "caches_live",
                                              "caches_too_small", "cached_tokens_served"};
    for (size_t i = 0; ok && i < SC_ARRAY_LEN(cache_counts); i++)
        ok = json_object_set_new(root, cache_names[i], json_integer((json_int_t)cache_counts[i])) ==
             0;
    ok = ok && json_object_set_new(root, "storage_token_seconds", json_real(storage)) == 0;
    json_decref(responses);
    json_decref(faults);
    json_decref(models);
    json_decref(billed);
    if (!ok) {
        json_decref(root);
        return NULL;
    }
    return root;
}

static void sc_sim_stats(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    json_t *doc = sc_sim_stats_doc(c->sim);
    if (!doc) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        return;
    }
    sc_sim_reply_json(r, 200, doc);
}

char *sc_gemini_sim_stats_json(sc_gemini_sim_t *sim)
{
    if (!sim)
        return NULL;
    json_t *doc = sc_sim_stats_doc(sim);
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    /* Copy so the caller can free() whatever allocator jansson was given. */
    char *out = s ? strdup(s) : NULL;
    free(s);
    return out;
}

/* ---- routing ---- */

typedef enum {
    SC_SIM_MATCH_EXACT,   /* path == prefix */
    SC_SIM_MATCH_ID,      /* path == prefix + id (no '/' or ':' in id) */
    SC_SIM_MATCH_ID_VERB, /* path == prefix + id + ':' + verb */
} sc_sim_match_t;

typedef struct {
    const char *method;
    sc_sim_match_t match;
    const char *prefix;
    const char *verb; /* SC_SIM_MATCH_ID_VERB only */
    bool needs_key;
    bool internal; /* simulator plumbing: not counted in the stats */
    const char *name;
    sc_sim_handler_fn fn;
} sc_sim_route_t;

/* New endpoints (streamGenerateContent) are one row each. */
static const sc_sim_route_t sc_sim_routes[] = {
    {"POST", SC_SIM_MATCH_ID_VERB, "/v1beta/models/", "generateContent", true, false,
     "generate_content", sc_sim_generate},
    {"POST", SC_SIM_MATCH_ID_VERB, "/v1beta/models/", "countTokens", true, false, "count_tokens",
     sc_sim_count_tokens},
    {"POST", SC_SIM_MATCH_ID_VERB, "/v1beta/models/", "batchGenerateContent", true, false,
     "batch_create", sc_sim_batch_create},
    {"GET", SC_SIM_MATCH_EXACT, "/v1beta/batches", NULL, true, false, "batch_list",
     sc_sim_batch_list},
    {"GET", SC_SIM_MATCH_ID, "/v1beta/batches/", NULL, true, false, "batch_get", sc_sim_batch_get},
    {"POST", SC_SIM_MATCH_ID_VERB, "/v1beta/batches/", "cancel", true, false, "batch_cancel",
     sc_sim_batch_cancel},
    {"DELETE", SC_SIM_MATCH_ID, "/v1beta/batches/", NULL, true, false, "batch_delete",
     sc_sim_batch_delete},
    {"POST", SC_SIM_MATCH_EXACT, "/v1beta/cachedContents", NULL, true, false, "cache_create",
     sc_sim_cache_create},
    {"GET", SC_SIM_MATCH_EXACT, "/v1beta/cachedContents", NULL, true, false, "cache_list",
     sc_sim_cache_list},
    {"GET", SC_SIM_MATCH_ID, "/v1beta/cachedContents/", NULL, true, false, "cache_get",
     sc_sim_cache_get},
    {"PATCH", SC_SIM_MATCH_ID, "/v1beta/cachedContents/", NULL, true, false, "cache_patch",
     sc_sim_cache_patch},
    {"DELETE", SC_SIM_MATCH_ID, "/v1beta/cachedContents/", NULL, true, false, "cache_delete",
     sc_sim_cache_delete},
    {"GET", SC_SIM_MATCH_EXACT, "/sim/stats", NULL, false, true, "stats", sc_sim_stats},
};

/* @return true when url matches route; the id (if any) goes to id (idlen bytes). */
static bool sc_sim_route_match(const sc_sim_route_t *rt, const char *method, const char *url,
                               char *id, size_t idlen)
{
    id[0] = '\0';
    if (strcmp(method, rt->method) != 0)
        return false;
    if (rt->match == SC_SIM_MATCH_EXACT)
        return strcmp(url, rt->prefix) == 0;
    size_t plen = strlen(rt->prefix);
    if (strncmp(url, rt->prefix, plen) != 0)
        return false;
    const char *rest = url + plen;
    size_t n = strcspn(rest, "/:");
    if (n == 0 || n >= idlen)
        return false;
    if (rt->match == SC_SIM_MATCH_ID) {
        if (rest[n] != '\0')
            return false;
    } else if (rest[n] != ':' || strcmp(rest + n + 1, rt->verb) != 0) {
        return false;
    }
    memcpy(id, rest, n);
    id[n] = '\0';
    return true;
}

static enum MHD_Result sc_sim_send(struct MHD_Connection *conn, sc_sim_reply_t *r)
{
    static const char oom[] = "{\"error\":{\"code\":500,\"message\":\"out of memory\","
                              "\"status\":\"INTERNAL\",\"details\":[]}}";
    struct MHD_Response *resp;
    if (r->body)
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_COPY);
    else {
        r->code = 500;
        resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    enum MHD_Result ret = MHD_add_response_header(resp, "Content-Type", "application/json");
    if (ret == MHD_YES)
        ret = MHD_queue_response(conn, r->code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result sc_sim_dispatch(sc_gemini_sim_t *sim, struct MHD_Connection *conn,
                                       const char *url, const char *method, sc_sim_conn_t *st)
{
    char id[SC_SIM_ID_MAX];
    const sc_sim_route_t *rt = NULL;
    for (size_t i = 0; i < SC_ARRAY_LEN(sc_sim_routes) && !rt; i++)
        if (sc_sim_route_match(&sc_sim_routes[i], method, url, id, sizeof id))
            rt = &sc_sim_routes[i];

    sc_sim_reply_t reply = {0};
    sc_sim_call_t call = {sim, conn, id, st->body, st->len};
    bool counted = !rt || !rt->internal;
    if (counted)
        atomic_fetch_add(&sim->requests, 1);
    if (!rt)
        sc_sim_reply_error(&reply, 404, "NOT_FOUND", NULL, "Method not found: %s %s.", method, url);
    else if (rt->needs_key && !sc_sim_check_key(&call, &reply))
        ; /* the error is in reply */
    else if (st->too_large)
        sc_sim_reply_invalid(&reply, "Request payload size exceeds the limit: %zu bytes.",
                             SC_SIM_BODY_MAX);
    else
        rt->fn(&call, &reply);

    enum MHD_Result ret = sc_sim_send(conn, &reply);
    if (counted && reply.code < SC_SIM_HTTP_CODES)
        atomic_fetch_add(&sim->by_status[reply.code], 1);
    sc_debug("sim.request", "route=%s model=%s status=%u fault=%s bytes_in=%zu",
             rt ? rt->name : "none", id[0] ? id : "-", reply.code,
             reply.fault ? reply.fault : "none", st->len);
    free(reply.body);
    return ret;
}

/* Grow the body buffer up to SC_SIM_BODY_MAX; beyond it, remember and drop the rest. */
static void sc_sim_body_append(sc_sim_conn_t *st, const char *data, size_t n)
{
    if (st->too_large)
        return;
    if (n > SC_SIM_BODY_MAX - st->len) {
        st->too_large = true;
        free(st->body);
        st->body = NULL;
        st->len = st->cap = 0;
        return;
    }
    if (st->len + n + 1 > st->cap) {
        size_t cap = st->cap ? st->cap : SC_SIM_BODY_INITIAL;
        while (cap < st->len + n + 1)
            cap *= 2;
        if (cap > SC_SIM_BODY_MAX + 1)
            cap = SC_SIM_BODY_MAX + 1;
        char *nb = realloc(st->body, cap);
        if (!nb) {
            st->too_large = true; /* no memory for it: answer as too large */
            free(st->body);
            st->body = NULL;
            st->len = st->cap = 0;
            return;
        }
        st->body = nb;
        st->cap = cap;
    }
    memcpy(st->body + st->len, data, n);
    st->len += n;
    st->body[st->len] = '\0';
}

static enum MHD_Result sc_sim_access(void *cls, struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_data_size,
                                     void **con_cls)
{
    (void)version;
    sc_gemini_sim_t *sim = cls;
    sc_sim_conn_t *st = *con_cls;
    if (!st) {
        st = calloc(1, sizeof *st); /* freed in sc_sim_completed */
        if (!st)
            return MHD_NO;
        *con_cls = st;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        sc_sim_body_append(st, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    return sc_sim_dispatch(sim, conn, url, method, st);
}

static void sc_sim_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                             enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    sc_sim_conn_t *st = *con_cls;
    if (st) {
        free(st->body);
        free(st);
        *con_cls = NULL;
    }
}

/* ---- lifecycle ---- */

int sc_gemini_sim_port(const sc_gemini_sim_t *sim)
{
    return sim ? sim->port : -1;
}

/* Bind a throwaway socket to learn why the address is unusable (MHD does not say). */
static void sc_sim_probe_bind(const struct sockaddr *sa, socklen_t salen, char *why, size_t len)
{
    sc_strlcpy(why, "unknown reason", len);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sc_strlcpy(why, strerror(errno), len);
        return;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, sa, salen) != 0)
        sc_strlcpy(why, strerror(errno), len);
    close(fd);
}

sc_status_t sc_gemini_sim_start(const sc_gemini_sim_opts_t *opts, sc_gemini_sim_t **out,
                                char *errbuf, size_t errlen)
{
    sc_status_t st = SC_OK;
    sc_gemini_sim_t *sim = NULL;
    sc_gemini_sim_opts_t none = {0};
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!out) {
        sc_sim_errf(errbuf, errlen, "gemini_sim: out is NULL");
        return SC_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (!opts)
        opts = &none;
    const char *host = opts->host && opts->host[0] ? opts->host : "127.0.0.1";
    unsigned threads = opts->threads ? opts->threads : SC_SIM_THREADS_DEFAULT;
    if (opts->port < 0 || opts->port > 65535) {
        sc_sim_errf(errbuf, errlen, "gemini_sim: port %d out of range 0..65535", opts->port);
        st = SC_ERR_INVALID_ARG;
        goto out;
    }
    if (opts->batch_pending_ms > SC_GEMINI_SIM_BATCH_DELAY_MS_MAX ||
        opts->batch_running_ms > SC_GEMINI_SIM_BATCH_DELAY_MS_MAX) {
        sc_sim_errf(errbuf, errlen, "gemini_sim: batch_pending_ms/batch_running_ms above %u",
                    SC_GEMINI_SIM_BATCH_DELAY_MS_MAX);
        st = SC_ERR_INVALID_ARG;
        goto out;
    }
    if (opts->cache_min_tokens > SC_GEMINI_SIM_CACHE_MIN_TOKENS_MAX) {
        sc_sim_errf(errbuf, errlen, "gemini_sim: cache_min_tokens %u above %u",
                    opts->cache_min_tokens, SC_GEMINI_SIM_CACHE_MIN_TOKENS_MAX);
        st = SC_ERR_INVALID_ARG;
        goto out;
    }
    if (threads > SC_SIM_THREADS_MAX) {
        sc_sim_errf(errbuf, errlen, "gemini_sim: threads %u above %u", threads, SC_SIM_THREADS_MAX);
        st = SC_ERR_INVALID_ARG;
        goto out;
    }
    if (strlen(host) >= SC_SIM_ADDR_MAX) {
        sc_sim_errf(errbuf, errlen, "gemini_sim: host longer than %d bytes", SC_SIM_ADDR_MAX - 1);
        st = SC_ERR_INVALID_ARG;
        goto out;
    }

    sim = calloc(1, sizeof *sim);
    if (!sim) {
        st = SC_ERR_NOMEM;
        sc_sim_errf(errbuf, errlen, "gemini_sim: out of memory");
        goto out;
    }
    st = sc_sim_faults_parse(opts->faults, &sim->faults, errbuf, errlen);
    if (st != SC_OK)
        goto out;
    sim->rng = sim->faults.seed;
    if (pthread_mutex_init(&sim->fault_mu, NULL) != 0) {
        st = SC_ERR_NOMEM;
        sc_sim_errf(errbuf, errlen, "gemini_sim: cannot create a mutex");
        goto out;
    }
    sim->fault_mu_ready = true;
    if (pthread_mutex_init(&sim->batch_mu, NULL) != 0) {
        st = SC_ERR_NOMEM;
        sc_sim_errf(errbuf, errlen, "gemini_sim: cannot create a mutex");
        goto out;
    }
    sim->batch_mu_ready = true;
    sim->batch_pending_ms =
        opts->batch_pending_ms ? opts->batch_pending_ms : SC_SIM_BATCH_PENDING_MS_DEFAULT;
    sim->batch_running_ms =
        opts->batch_running_ms ? opts->batch_running_ms : SC_SIM_BATCH_RUNNING_MS_DEFAULT;
    if (pthread_mutex_init(&sim->cache_mu, NULL) != 0) {
        st = SC_ERR_NOMEM;
        sc_sim_errf(errbuf, errlen, "gemini_sim: cannot create a mutex");
        goto out;
    }
    sim->cache_mu_ready = true;
    sim->cache_min_override = opts->cache_min_tokens;
    sim->caches = calloc(SC_SIM_CACHE_MAX, sizeof *sim->caches);
    sim->batches = calloc(SC_SIM_BATCH_MAX, sizeof *sim->batches);
    if (!sim->batches || !sim->caches) {
        st = SC_ERR_NOMEM;
        sc_sim_errf(errbuf, errlen, "gemini_sim: out of memory");
        goto out;
    }
    if (sim->faults.any && sim->faults.max_per_request > 0) {
        sim->fault_slots = calloc(SC_SIM_FAULT_SLOTS, sizeof *sim->fault_slots);
        if (!sim->fault_slots) {
            st = SC_ERR_NOMEM;
            sc_sim_errf(errbuf, errlen, "gemini_sim: out of memory");
            goto out;
        }
    }
    if (opts->api_key && opts->api_key[0]) {
        sim->api_key = strdup(opts->api_key);
        if (!sim->api_key) {
            st = SC_ERR_NOMEM;
            sc_sim_errf(errbuf, errlen, "gemini_sim: out of memory");
            goto out;
        }
    }
    uint64_t nonce = (uint64_t)sc_wall_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)sim;
    sim->id_nonce = sc_sim_splitmix64(&nonce);

    struct sockaddr_storage ss;
    socklen_t sslen;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    memset(&ss, 0, sizeof ss);
    const char *numeric = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, numeric, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)opts->port);
        sslen = sizeof *sin;
    } else if (inet_pton(AF_INET6, numeric, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)opts->port);
        sslen = sizeof *sin6;
        flags |= MHD_USE_IPv6;
    } else {
        sc_sim_errf(errbuf, errlen, "gemini_sim: host '%s' is not a numeric IPv4/IPv6 address",
                    host);
        st = SC_ERR_INVALID_ARG;
        goto out;
    }

    sim->daemon = MHD_start_daemon(
        flags, (uint16_t)opts->port, NULL, NULL, sc_sim_access, sim, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, SC_SIM_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        SC_SIM_CONNECTION_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, sc_sim_completed, sim,
        MHD_OPTION_END);
    if (!sim->daemon) {
        char why[128];
        sc_sim_probe_bind((const struct sockaddr *)&ss, sslen, why, sizeof why);
        sc_sim_errf(errbuf, errlen, "gemini_sim: cannot listen on %s:%d: %s", host, opts->port,
                    why);
        st = SC_ERR_HTTP_SERVER;
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(sim->daemon, MHD_DAEMON_INFO_BIND_PORT);
    sim->port = info && info->port ? (int)info->port : opts->port;
    if (sim->port == 0) {
        sc_sim_errf(errbuf, errlen, "gemini_sim: cannot learn the bound port");
        st = SC_ERR_HTTP_SERVER;
        goto out;
    }
    sc_info("sim.start", "host=%s port=%d threads=%u key_required=%s faults=\"%s\" cache_min=%u",
            host, sim->port, threads, sim->api_key ? "exact" : "any",
            opts->faults ? opts->faults : "", sim->cache_min_override);
    *out = sim;
    sim = NULL;
out:
    sc_gemini_sim_stop(sim);
    return st;
}

void sc_gemini_sim_stop(sc_gemini_sim_t *sim)
{
    if (!sim)
        return;
    if (sim->daemon) {
        MHD_stop_daemon(sim->daemon);
        sc_info("sim.stop", "port=%d requests=%" PRIuFAST64, sim->port,
                (uint_fast64_t)atomic_load(&sim->requests));
    }
    if (sim->fault_mu_ready)
        pthread_mutex_destroy(&sim->fault_mu);
    /* the daemon is stopped: no handler can hold a batch any more */
    for (size_t i = 0; sim->batches && i < SC_SIM_BATCH_MAX; i++)
        sc_sim_batch_free(sim->batches[i]);
    free(sim->batches);
    for (size_t i = 0; sim->caches && i < SC_SIM_CACHE_MAX; i++)
        sc_sim_cache_free(sim->caches[i]);
    free(sim->caches);
    if (sim->cache_mu_ready)
        pthread_mutex_destroy(&sim->cache_mu);
    free(sim->keys);
    if (sim->batch_mu_ready)
        pthread_mutex_destroy(&sim->batch_mu);
    free(sim->fault_slots);
    free(sim->api_key);
    free(sim);
}
