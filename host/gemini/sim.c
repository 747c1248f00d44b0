/* sim.c - the Gemini REST simulator's server (sim.h): the model table, shared helpers and error
 * replies, the key check, counters (GET /sim/stats), routing, dispatch, body accumulation, start
 * and stop. The endpoint families live in sim_generate.c (with sim_tools.c), sim_models.c,
 * sim_batches.c, sim_caches.c, sim_faults.c and sim_quality.c (gemini-api.md §0, §10). */
#include "host/gemini/sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
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
#include <unistd.h>

#include "host/core/log.h"
#include "host/core/util.h"
#include "host/gemini/sim_internal.h"

/* ---- limits and defaults ---- */

#define SC_SIM_BODY_MAX             ((size_t)32 * 1024 * 1024) /* larger request bodies get a 400 */
#define SC_SIM_BODY_INITIAL         4096 /* first allocation of a body buffer */
#define SC_SIM_ADDR_MAX             64   /* longest listen address */
#define SC_SIM_THREADS_DEFAULT      4u
#define SC_SIM_THREADS_MAX          256u
#define SC_SIM_CONNECTION_LIMIT     1024u
#define SC_SIM_CONNECTION_TIMEOUT_S 60u
#define SC_SIM_MSG_MAX              1024 /* longest error message */
#define SC_SIM_URL_MAX              1024 /* longest path served under /v1 as under /v1beta */
#define SC_SIM_V1_PREFIX            "/v1/"
#define SC_SIM_CUT_BLOCK            4096 /* MHD's read size for a body the truncate fault cuts */

/* Batch Mode (§5) and context caching (§4) defaults */
#define SC_SIM_BATCH_PENDING_MS_DEFAULT 200u
#define SC_SIM_BATCH_RUNNING_MS_DEFAULT 500u
#define SC_SIM_CACHE_MIN_FLASH          1024u /* default minimum, non-pro models (§4.5) */
#define SC_SIM_CACHE_MIN_PRO            4096u /* default minimum, pro models */

#define SC_SIM_MSG_NO_KEY                                                                          \
    "Method doesn't allow unregistered callers (callers without established identity). Please "    \
    "use API Key or other form of API consumer identity to call this API."
#define SC_SIM_MSG_BAD_KEY "API key not valid. Please pass a valid API key."

/* ---- models ---- */

/* The models the simulator serves; SC_SIM_MODEL_COUNT entries (sim_internal.h). */
const sc_sim_model_t sc_sim_models[] = {
    {"gemini-2.5-pro", true, true, false, SC_SIM_CACHE_MIN_PRO, "Gemini 2.5 Pro", "2.5", 1.0, 0.95,
     64},
    {"gemini-2.5-flash", true, true, true, SC_SIM_CACHE_MIN_FLASH, "Gemini 2.5 Flash", "001", 1.0,
     0.95, 64},
    {"gemini-2.5-flash-lite", true, false, true, SC_SIM_CACHE_MIN_FLASH, "Gemini 2.5 Flash-Lite",
     "001", 1.0, 0.95, 64},
    {"gemini-2.0-flash", false, false, true, SC_SIM_CACHE_MIN_FLASH, "Gemini 2.0 Flash", "2.0", 1.0,
     0.95, 40},
    {"gemini-2.0-flash-lite", false, false, true, SC_SIM_CACHE_MIN_FLASH, "Gemini 2.0 Flash-Lite",
     "2.0", 1.0, 0.95, 40},
};
_Static_assert(SC_ARRAY_LEN(sc_sim_models) == SC_SIM_MODEL_COUNT,
               "SC_SIM_MODEL_COUNT must match sc_sim_models");

/* ---- the server ---- */

/* Per-connection request state (MHD's con_cls): the body as it arrives. */
typedef struct {
    char *body; /* owned; NUL-terminated when len > 0 */
    size_t len, cap;
    bool too_large;
} sc_sim_conn_t;

/* ---- small helpers ---- */

void sc_sim_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

uint64_t sc_sim_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
double sc_sim_unit(uint64_t *state)
{
    return (double)(sc_sim_splitmix64(state) >> 11) * 0x1.0p-53;
}

uint64_t sc_sim_fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= SC_SIM_FNV_PRIME;
    }
    return h;
}

size_t sc_sim_tokens(size_t chars)
{
    return (chars + SC_SIM_CHARS_PER_TOKEN - 1) / SC_SIM_CHARS_PER_TOKEN;
}

const sc_sim_model_t *sc_sim_model_find(const char *name, size_t *index)
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
json_t *sc_sim_get2(const json_t *obj, const char *camel, const char *snake)
{
    json_t *v = json_object_get(obj, camel);
    return v ? v : json_object_get(obj, snake);
}

/* ---- replies ---- */

/* Serialize doc into the reply. @param doc: a new reference, stolen. */
void sc_sim_reply_json(sc_sim_reply_t *r, unsigned code, json_t *doc)
{
    r->code = code;
    free(r->body);
    r->body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    r->len = r->body ? strlen(r->body) : 0;
    json_decref(doc);
}

/* A Google error body {"error":{code,message,status,details}}.
 * @param details: a new reference to an array, stolen; NULL gives []. */
void sc_sim_reply_error(sc_sim_reply_t *r, unsigned code, const char *status,
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

void sc_sim_reply_invalid(sc_sim_reply_t *r, const char *fmt, ...)
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
    if (ok && sim->quality.on) /* absent when off: the document stays as it was */
        ok = json_object_set_new(root, "quality", sc_sim_quality_stats(sim)) == 0;
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

/* New endpoints are one row each. */
static const sc_sim_route_t sc_sim_routes[] = {
    {"POST", SC_SIM_MATCH_ID_VERB, "/v1beta/models/", "generateContent", true, false,
     "generate_content", sc_sim_generate},
    {"POST", SC_SIM_MATCH_ID_VERB, "/v1beta/models/", "streamGenerateContent", true, false,
     "stream_generate_content", sc_sim_stream_generate},
    {"GET", SC_SIM_MATCH_EXACT, "/v1beta/models", NULL, true, false, "models_list",
     sc_sim_models_list},
    {"GET", SC_SIM_MATCH_ID, "/v1beta/models/", NULL, true, false, "model_get", sc_sim_model_get},
    {"POST", SC_SIM_MATCH_ID_VERB, "/v1beta/models/", "embedContent", true, false, "embed_content",
     sc_sim_embed},
    {"POST", SC_SIM_MATCH_ID_VERB, "/v1beta/models/", "batchEmbedContents", true, false,
     "batch_embed_contents", sc_sim_batch_embed},
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
    {"GET", SC_SIM_MATCH_EXACT, "/sim/difficulty", NULL, false, true, "difficulty",
     sc_sim_difficulty_route},
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

/* ---- sending (the reset and truncate faults break it on purpose) ---- */

/* A body that stops halfway: MHD's reader state for SC_SIM_SEND_CUT. */
typedef struct {
    char *body; /* owned */
    size_t len; /* what Content-Length announces */
    size_t cut; /* bytes sent before the connection is closed, < len */
} sc_sim_cut_body_t;

static ssize_t sc_sim_cut_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    const sc_sim_cut_body_t *cb = cls;
    if (pos >= cb->cut) /* MHD closes the connection: the client sees fewer bytes than promised */
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = cb->cut - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, cb->body + pos, n);
    return (ssize_t)n;
}

static void sc_sim_cut_free(void *cls)
{
    sc_sim_cut_body_t *cb = cls;
    if (cb) {
        free(cb->body);
        free(cb);
    }
}

/* A response of r->len bytes of which only the first half is ever sent. r->body moves into it.
 * @return NULL when out of memory (r->body is still r's then). */
static struct MHD_Response *sc_sim_cut_response(sc_sim_reply_t *r)
{
    sc_sim_cut_body_t *cb = calloc(1, sizeof *cb); /* freed by MHD through sc_sim_cut_free */
    if (!cb)
        return NULL;
    cb->body = r->body;
    cb->len = r->len;
    cb->cut = r->len / 2;
    struct MHD_Response *resp = MHD_create_response_from_callback(
        (uint64_t)cb->len, SC_SIM_CUT_BLOCK, sc_sim_cut_read, cb, sc_sim_cut_free);
    if (!resp) {
        free(cb);
        return NULL;
    }
    r->body = NULL;
    return resp;
}

static enum MHD_Result sc_sim_send(struct MHD_Connection *conn, sc_sim_reply_t *r)
{
    static const char oom[] = "{\"error\":{\"code\":500,\"message\":\"out of memory\","
                              "\"status\":\"INTERNAL\",\"details\":[]}}";
    struct MHD_Response *resp;
    const char *ctype = r->body && r->ctype ? r->ctype : "application/json";
    if (r->send == SC_SIM_SEND_NOTHING)
        return MHD_NO; /* MHD closes the connection without a response */
    if (r->body && r->send == SC_SIM_SEND_CUT && r->len > 0)
        resp = sc_sim_cut_response(r);
    else if (r->body)
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_COPY);
    else {
        r->code = 500;
        resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    enum MHD_Result ret = MHD_add_response_header(resp, "Content-Type", ctype);
    if (ret == MHD_YES)
        ret = MHD_queue_response(conn, r->code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result sc_sim_dispatch(sc_gemini_sim_t *sim, struct MHD_Connection *conn,
                                       const char *url, const char *method, sc_sim_conn_t *st)
{
    char id[SC_SIM_ID_MAX], alias[SC_SIM_URL_MAX];
    const sc_sim_route_t *rt = NULL;
    const char *route_url = url;
    /* /v1/... is served as /v1beta/...: google-genai 3.x calls v1 unless told otherwise */
    if (strncmp(url, SC_SIM_V1_PREFIX, strlen(SC_SIM_V1_PREFIX)) == 0 &&
        (size_t)snprintf(alias, sizeof alias, "/v1beta/%s", url + strlen(SC_SIM_V1_PREFIX)) <
            sizeof alias)
        route_url = alias;
    for (size_t i = 0; i < SC_ARRAY_LEN(sc_sim_routes) && !rt; i++)
        if (sc_sim_route_match(&sc_sim_routes[i], method, route_url, id, sizeof id))
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
    /* a connection closed without a response answered nothing: no status to count */
    if (counted && reply.send != SC_SIM_SEND_NOTHING && reply.code < SC_SIM_HTTP_CODES)
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
    st = sc_sim_quality_parse(opts->quality, &sim->quality, errbuf, errlen);
    if (st != SC_OK)
        goto out;
    if (opts->quality_truth && opts->quality_truth[0]) {
        if (!sim->quality.on) {
            sc_sim_errf(errbuf, errlen, "gemini_sim: a quality truth file needs a quality spec");
            st = SC_ERR_INVALID_ARG;
            goto out;
        }
        st = sc_sim_truth_load(opts->quality_truth, &sim->quality.truth, errbuf, errlen);
        if (st != SC_OK)
            goto out;
    }
    if (opts->record && opts->record[0]) {
        if (pthread_mutex_init(&sim->record_mu, NULL) != 0) {
            st = SC_ERR_NOMEM;
            sc_sim_errf(errbuf, errlen, "gemini_sim: cannot create a mutex");
            goto out;
        }
        sim->record_mu_ready = true;
        sim->record = fopen(opts->record, "w");
        if (!sim->record) {
            sc_sim_errf(errbuf, errlen, "gemini_sim: cannot open the record file '%s': %s",
                        opts->record, strerror(errno));
            st = SC_ERR_IO;
            goto out;
        }
    }
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
    sc_info("sim.start",
            "host=%s port=%d threads=%u key_required=%s faults=\"%s\" cache_min=%u "
            "quality=\"%s\" truth_lines=%zu record=%s",
            host, sim->port, threads, sim->api_key ? "exact" : "any",
            opts->faults ? opts->faults : "", sim->cache_min_override,
            opts->quality ? opts->quality : "", sc_sim_truth_lines(sim->quality.truth),
            sim->record ? "on" : "off");
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
    sc_sim_truth_free(sim->quality.truth);
    if (sim->record)
        fclose(sim->record);
    if (sim->record_mu_ready)
        pthread_mutex_destroy(&sim->record_mu);
    free(sim);
}
