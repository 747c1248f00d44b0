/* prompt_cache.c - the explicit-cache manager: a fixed table of entries keyed by (model, XXH3 of
 * the prefix) and one thread that creates (POST), extends (PATCH) and deletes (DELETE)
 * cachedContents on its own curl easy handle, and the two ends of sharing those caches with
 * other replicas (the share hook, adopt) (prompt_cache.h; gemini-api.md §4). */
#include "host/gemini/prompt_cache.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "host/core/log.h"
#include "host/core/util.h"

/* ---- limits and defaults ---- */

#define SC_PC_MIN_TOKENS_DEFAULT     1024
#define SC_PC_MIN_TOKENS_PRO_DEFAULT 4096
#define SC_PC_TTL_S_DEFAULT          300
#define SC_PC_IDLE_S_DEFAULT         600
#define SC_PC_MAX_CACHES_DEFAULT     256
#define SC_PC_TIMEOUT_MS_DEFAULT     10000L
#define SC_PC_TIMEOUT_MS_MAX         600000L
#define SC_PC_SECONDS_MAX            31536000L /* one year: the largest ttl_s / idle_s */
#define SC_PC_MIN_TOKENS_MAX         (1L << 20)
#define SC_PC_CHARS_PER_TOKEN        4     /* estimate when the caller gives none */
#define SC_PC_RETRY_MS               30000 /* after a failed create or extension */
#define SC_PC_MARGIN_MS              2000  /* a cache this close to expiry is not handed out */
#define SC_PC_TICK_MAX_MS            1000  /* the thread looks at idle entries this often */
#define SC_PC_TICK_MIN_MS            10
#define SC_PC_RESP_MAX               ((size_t)1 << 20) /* a CachedContent is small */
#define SC_PC_URL_MAX                2048
#define SC_PC_ERR_MAX                512
#define SC_PC_KEY_HDR_MAX            1024
#define SC_PC_MS_PER_HOUR            3600000.0
#define SC_PC_TOKENS_PER_PRICE       1e6 /* prices are per 1M tokens */
#define SC_PC_TOO_SMALL              "Cached content is too small"
#define SC_PC_NAME_PREFIX            "cachedContents/"

/* ---- types ---- */

typedef enum {
    SC_PC_FREE = 0,
    SC_PC_PENDING,  /* creation scheduled */
    SC_PC_CREATING, /* POST on the wire */
    SC_PC_LIVE,
    SC_PC_DELETING, /* DELETE on the wire */
    SC_PC_NEVER,    /* the server said too small */
    SC_PC_FAILED,   /* create failed; retried after retry_at_ms */
} sc_pc_state_t;

/* One prefix. Guarded by pc->mu; while busy the thread works on it unlocked and only it changes
 * state, name, tokens or expiry. */
typedef struct {
    sc_pc_state_t state;
    bool busy;          /* the thread has an HTTP call for it on the wire */
    bool extend_wanted; /* an acquire found less than half the TTL left */
    char model[SC_PROMPT_CACHE_MODEL_MAX];
    uint64_t hash; /* XXH3 of the prefix */
    char *prefix;  /* owned copy (the POST body needs it; acquire compares it) */
    size_t prefix_len;
    bool fields;   /* the prefix is a JSON object of CachedContent fields, not system text */
    char name[SC_PROMPT_CACHE_NAME_MAX];
    long tokens;            /* usageMetadata.totalTokenCount of the cache */
    int64_t expire_wall_ms; /* the server's expireTime */
    int64_t last_used_ms;   /* monotonic */
    int64_t retry_at_ms;    /* monotonic: FAILED creates and failed extensions */
    double storage_price;   /* USD per 1M tokens per hour */
    double charge_due;      /* storage bought and not yet handed to a request */
    bool adopted;           /* made live from another replica's record: never deleted at free */
} sc_pc_entry_t;

struct sc_prompt_cache {
    sc_prompt_cache_opts_t o; /* strings below are the manager's copies */
    char *base_url, *api_key; /* owned */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    bool mu_ready, cond_ready, thread_started;
    bool stopping;
    sc_pc_entry_t *entries; /* o.max_caches, owned */
    sc_prompt_cache_stats_t st;
    sc_prompt_cache_share_fn share_fn; /* NULL: not sharing now */
    void *share_arg;
    /* a hook was set once: the caches belong to the replicas together and are left at free. Not
     * cleared with the hook, so that a caller can stop sharing before its changelog closes. */
    bool shared;
    int n_left; /* live caches left at free, for its log line */
    /* the thread's HTTP state */
    CURL *easy;
    struct curl_slist *hdrs;
    char *resp;
    size_t resp_len, resp_cap;
};

/* ---- small helpers ---- */

static void sc_pc_errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sc_pc_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static bool sc_pc_is_pro(const char *model)
{
    return strstr(model, "-pro") != NULL;
}

/* prices.<model>.cache_storage_per_hour, the longest listed prefix for versioned ids. */
static double sc_pc_storage_price(const sc_config_t *cfg, const char *model)
{
    json_t *prices = cfg ? sc_config_node(cfg, "prices") : NULL; /* borrowed */
    json_t *entry = json_object_get(prices, model);              /* borrowed */
    if (!entry) {
        const char *key;
        json_t *val;
        size_t best = 0;
        json_object_foreach(prices, key, val)
        {
            size_t kl = strlen(key);
            if (kl > best && strncmp(model, key, kl) == 0 && model[kl] == '-') {
                entry = val;
                best = kl;
            }
        }
    }
    return json_number_value(json_object_get(entry, "cache_storage_per_hour")); /* 0 if none */
}

/* USD for tokens stored ms milliseconds at price (per 1M tokens per hour). */
static double sc_pc_storage_usd(long tokens, int64_t ms, double price)
{
    if (tokens <= 0 || ms <= 0)
        return 0.0;
    return (double)tokens / SC_PC_TOKENS_PER_PRICE * ((double)ms / SC_PC_MS_PER_HOUR) * price;
}

/* RFC 3339 "YYYY-MM-DDTHH:MM:SS[.fff…]Z" (what the API writes) in ms since the epoch. */
static bool sc_pc_parse_time_ms(const char *s, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int used = 0;
    if (!s ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &used) != 6 ||
        used != 19)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = s + used;
    int64_t frac_ms = 0, scale = 100;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac_ms += (*p - '0') * scale; /* digits past the ms add 0 */
    if (*p != 'Z')
        return false;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *ms = (int64_t)t * 1000 + frac_ms;
    return true;
}

/* ---- HTTP (manager thread only) ---- */

static size_t sc_pc_write(char *data, size_t size, size_t nmemb, void *userp)
{
    sc_prompt_cache_t *pc = userp;
    size_t n = size * nmemb;
    if (pc->resp_len + n + 1 > SC_PC_RESP_MAX)
        return 0;
    if (pc->resp_len + n + 1 > pc->resp_cap) {
        size_t cap = pc->resp_cap ? pc->resp_cap : 4096;
        while (cap < pc->resp_len + n + 1)
            cap *= 2;
        char *r = realloc(pc->resp, cap);
        if (!r)
            return 0;
        pc->resp = r;
        pc->resp_cap = cap;
    }
    memcpy(pc->resp + pc->resp_len, data, n);
    pc->resp_len += n;
    pc->resp[pc->resp_len] = '\0';
    return n;
}

/* One REST call. @return SC_OK on 2xx with the parsed body in *doc (a new reference, may be
 * NULL when the body is not JSON); otherwise the status, *http (0: no answer) and the reason in
 * errbuf (the Google error message when there is one). */
static sc_status_t sc_pc_http(sc_prompt_cache_t *pc, const char *method, const char *path,
                              const char *body, long *http, json_t **doc, char *errbuf,
                              size_t errlen)
{
    char url[SC_PC_URL_MAX];
    *http = 0;
    *doc = NULL;
    if ((size_t)snprintf(url, sizeof url, "%s%s", pc->base_url, path) >= sizeof url) {
        sc_pc_errf(errbuf, errlen, "URL too long");
        return SC_ERR_INVALID_ARG;
    }
    pc->resp_len = 0;
    if (pc->resp)
        pc->resp[0] = '\0';
    curl_easy_reset(pc->easy);
    curl_easy_setopt(pc->easy, CURLOPT_URL, url);
    curl_easy_setopt(pc->easy, CURLOPT_HTTPHEADER, pc->hdrs);
    curl_easy_setopt(pc->easy, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(pc->easy, CURLOPT_WRITEFUNCTION, sc_pc_write);
    curl_easy_setopt(pc->easy, CURLOPT_WRITEDATA, pc);
    curl_easy_setopt(pc->easy, CURLOPT_TIMEOUT_MS, pc->o.request_timeout_ms);
    curl_easy_setopt(pc->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(pc->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (body) {
        curl_easy_setopt(pc->easy, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(pc->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    CURLcode rc = curl_easy_perform(pc->easy);
    if (rc != CURLE_OK) {
        sc_pc_errf(errbuf, errlen, "%s", curl_easy_strerror(rc));
        return SC_ERR_UPSTREAM_TRANSPORT;
    }
    curl_easy_getinfo(pc->easy, CURLINFO_RESPONSE_CODE, http);
    json_t *root = json_loadb(pc->resp ? pc->resp : "", pc->resp_len, 0, NULL); /* new or NULL */
    if (*http >= 200 && *http < 300) {
        *doc = root;
        return SC_OK;
    }
    const char *msg = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    sc_pc_errf(errbuf, errlen, "HTTP %ld: %s", *http, msg ? msg : "(no message)");
    json_decref(root);
    if (*http == 404)
        return SC_ERR_NOT_FOUND;
    if (*http == 408 || *http == 429 || *http >= 500)
        return SC_ERR_UPSTREAM_RETRYABLE;
    return SC_ERR_UPSTREAM_REJECTED;
}

/* ---- entries (pc->mu held) ---- */

/* Forget a live entry's cache (mu held): its unhanded charge becomes unclaimed. */
static void sc_pc_entry_release(sc_prompt_cache_t *pc, sc_pc_entry_t *e)
{
    pc->st.storage_usd_unclaimed += e->charge_due;
    free(e->prefix);
    memset(e, 0, sizeof *e); /* SC_PC_FREE */
}

/* Tell the share hook what e's cache is now (mu held; e not yet released when gone). */
static void sc_pc_share(sc_prompt_cache_t *pc, const sc_pc_entry_t *e, bool gone)
{
    if (!pc->share_fn)
        return;
    sc_prompt_cache_share_t s = {.model = e->model,
                                 .fields = e->fields ? 1 : 0,
                                 .prefix = e->prefix,
                                 .prefix_len = e->prefix_len,
                                 .hash = e->hash,
                                 .name = e->name,
                                 .tokens = e->tokens,
                                 .expire_wall_ms = e->expire_wall_ms,
                                 .gone = gone ? 1 : 0};
    pc->share_fn(pc->share_arg, &s);
}

/* ---- the manager thread's jobs (pc->mu not held during HTTP) ---- */

/* POST /v1beta/cachedContents for e (busy, CREATING). Called with mu held; returns with it. */
static void sc_pc_create(sc_prompt_cache_t *pc, sc_pc_entry_t *e)
{
    char err[SC_PC_ERR_MAX] = "", model[SC_PROMPT_CACHE_MODEL_MAX + 8], ttl[32], display[40];
    snprintf(model, sizeof model, "models/%s", e->model);
    snprintf(ttl, sizeof ttl, "%lds", pc->o.ttl_s);
    snprintf(display, sizeof display, "scrimp-%016" PRIx64, e->hash);
    /* e->prefix is stable while busy: only this thread frees it */
    json_t *req = e->fields
                      ? json_loadb(e->prefix, e->prefix_len, 0, NULL)
                      : json_pack("{s:{s:[{s:s%}]}}", "systemInstruction", "parts", "text",
                                  e->prefix, e->prefix_len); /* new */
    if (json_is_object(req) &&
        (json_object_set_new(req, "model", json_string(model)) ||
         json_object_set_new(req, "displayName", json_string(display)) ||
         json_object_set_new(req, "ttl", json_string(ttl)))) {
        json_decref(req);
        req = NULL;
    }
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    long http = 0;
    json_t *doc = NULL; /* new, from sc_pc_http */
    int64_t t0 = sc_now_ms();
    pthread_mutex_unlock(&pc->mu);
    sc_status_t st =
        body ? sc_pc_http(pc, "POST", "/v1beta/cachedContents", body, &http, &doc, err, sizeof err)
             : SC_ERR_NOMEM;
    free(body);
    pthread_mutex_lock(&pc->mu);
    e->busy = false;
    const char *name = json_string_value(json_object_get(doc, "name"));
    json_t *tok = json_object_get(json_object_get(doc, "usageMetadata"), "totalTokenCount");
    if (st == SC_OK && name && strncmp(name, SC_PC_NAME_PREFIX, strlen(SC_PC_NAME_PREFIX)) == 0 &&
        strlen(name) < sizeof e->name) {
        sc_strlcpy(e->name, name, sizeof e->name);
        e->tokens = (long)json_integer_value(tok);
        int64_t exp = 0;
        if (!sc_pc_parse_time_ms(json_string_value(json_object_get(doc, "expireTime")), &exp))
            exp = sc_wall_ms() + pc->o.ttl_s * 1000;
        e->expire_wall_ms = exp;
        double usd = sc_pc_storage_usd(e->tokens, pc->o.ttl_s * 1000, e->storage_price);
        e->charge_due += usd;
        pc->st.storage_usd += usd;
        pc->st.creates++;
        e->state = SC_PC_LIVE;
        sc_info("prompt_cache.create",
                "model=%s name=%s tokens=%ld ttl_s=%ld storage_usd=%.8f "
                "ms=%lld",
                e->model, e->name, e->tokens, pc->o.ttl_s, usd, (long long)(sc_now_ms() - t0));
        sc_pc_share(pc, e, false);
    } else if (st == SC_ERR_UPSTREAM_REJECTED && http == 400 && strstr(err, SC_PC_TOO_SMALL)) {
        e->state = SC_PC_NEVER;
        pc->st.too_small++;
        sc_info("prompt_cache.too_small", "model=%s hash=%016" PRIx64 " bytes=%zu reason=\"%s\"",
                e->model, e->hash, e->prefix_len, err);
    } else {
        if (st == SC_OK)
            sc_pc_errf(err, sizeof err, "a create answer without a usable name");
        e->state = SC_PC_FAILED;
        e->retry_at_ms = sc_now_ms() + SC_PC_RETRY_MS;
        pc->st.create_failures++;
        sc_warn("prompt_cache.create_failed",
                "model=%s hash=%016" PRIx64 " status=%s "
                "reason=\"%s\"",
                e->model, e->hash, sc_status_code(st), err);
    }
    json_decref(doc);
}

/* PATCH the TTL of e (busy, LIVE). Called with mu held; returns with it. */
static void sc_pc_extend(sc_prompt_cache_t *pc, sc_pc_entry_t *e)
{
    char err[SC_PC_ERR_MAX] = "", path[SC_PROMPT_CACHE_NAME_MAX + 16], body[64];
    snprintf(path, sizeof path, "/v1beta/%s", e->name);
    snprintf(body, sizeof body, "{\"ttl\":\"%lds\"}", pc->o.ttl_s);
    long http = 0;
    json_t *doc = NULL;
    pthread_mutex_unlock(&pc->mu);
    sc_status_t st = sc_pc_http(pc, "PATCH", path, body, &http, &doc, err, sizeof err);
    pthread_mutex_lock(&pc->mu);
    e->busy = false;
    int64_t exp = 0;
    if (st == SC_OK) {
        if (!sc_pc_parse_time_ms(json_string_value(json_object_get(doc, "expireTime")), &exp))
            exp = sc_wall_ms() + pc->o.ttl_s * 1000;
        int64_t added = exp - e->expire_wall_ms;
        double usd = sc_pc_storage_usd(e->tokens, added, e->storage_price);
        if (exp > e->expire_wall_ms)
            e->expire_wall_ms = exp;
        e->charge_due += usd;
        pc->st.storage_usd += usd;
        pc->st.extends++;
        sc_info("prompt_cache.extend", "model=%s name=%s added_ms=%lld storage_usd=%.8f", e->model,
                e->name, (long long)added, usd);
        sc_pc_share(pc, e, false);
    } else if (st == SC_ERR_NOT_FOUND) {
        sc_info("prompt_cache.gone", "model=%s name=%s reason=\"%s\"", e->model, e->name, err);
        sc_pc_share(pc, e, true);
        sc_pc_entry_release(pc, e);
    } else {
        e->retry_at_ms = sc_now_ms() + SC_PC_RETRY_MS;
        sc_warn("prompt_cache.extend_failed", "model=%s name=%s status=%s reason=\"%s\"", e->model,
                e->name, sc_status_code(st), err);
    }
    json_decref(doc);
}

/* DELETE e's cache (busy, DELETING) and free the entry whatever the answer: the server drops
 * the cache at its expiry anyway. Only a cache known gone is shared as gone: one whose DELETE
 * failed is still there for the other replicas. Called with mu held; returns with it. */
static void sc_pc_delete(sc_prompt_cache_t *pc, sc_pc_entry_t *e, const char *why)
{
    char err[SC_PC_ERR_MAX] = "", path[SC_PROMPT_CACHE_NAME_MAX + 16];
    snprintf(path, sizeof path, "/v1beta/%s", e->name);
    long http = 0;
    json_t *doc = NULL;
    pthread_mutex_unlock(&pc->mu);
    sc_status_t st = sc_pc_http(pc, "DELETE", path, NULL, &http, &doc, err, sizeof err);
    json_decref(doc);
    pthread_mutex_lock(&pc->mu);
    if (st == SC_OK || st == SC_ERR_NOT_FOUND) {
        pc->st.deletes++;
        sc_info("prompt_cache.delete", "model=%s name=%s why=%s http=%ld", e->model, e->name, why,
                http);
        sc_pc_share(pc, e, true);
    } else {
        sc_warn("prompt_cache.delete_failed", "model=%s name=%s why=%s status=%s reason=\"%s\"",
                e->model, e->name, why, sc_status_code(st), err);
    }
    sc_pc_entry_release(pc, e);
}

/* The next job for the thread (mu held): returns true after doing one. */
static bool sc_pc_work_one(sc_prompt_cache_t *pc)
{
    int64_t now = sc_now_ms(), wall = sc_wall_ms(), idle_ms = pc->o.idle_s * 1000;
    for (int i = 0; i < pc->o.max_caches; i++) {
        sc_pc_entry_t *e = &pc->entries[i];
        if (e->busy)
            continue;
        if (e->state == SC_PC_PENDING && !pc->stopping) {
            e->state = SC_PC_CREATING;
            e->busy = true;
            sc_pc_create(pc, e);
            return true;
        }
        if (e->state == SC_PC_PENDING) { /* stopping: not worth creating any more */
            sc_pc_entry_release(pc, e);
            continue;
        }
        if (e->state == SC_PC_LIVE && wall >= e->expire_wall_ms) {
            sc_info("prompt_cache.expired", "model=%s name=%s", e->model, e->name);
            sc_pc_share(pc, e, true);
            sc_pc_entry_release(pc, e); /* the server dropped it already */
            continue;
        }
        if (e->state == SC_PC_LIVE && pc->stopping && (pc->shared || e->adopted)) {
            pc->n_left++; /* the other replicas go on using it; the server drops it at expiry */
            sc_pc_entry_release(pc, e);
            continue;
        }
        if (e->state == SC_PC_LIVE && (pc->stopping || now - e->last_used_ms >= idle_ms)) {
            e->state = SC_PC_DELETING;
            e->busy = true;
            sc_pc_delete(pc, e, pc->stopping ? "shutdown" : "idle");
            return true;
        }
        if (e->state == SC_PC_LIVE && e->extend_wanted && now >= e->retry_at_ms) {
            e->extend_wanted = false;
            e->busy = true;
            sc_pc_extend(pc, e);
            return true;
        }
        if ((e->state == SC_PC_NEVER || e->state == SC_PC_FAILED) &&
            now - e->last_used_ms >= idle_ms)
            sc_pc_entry_release(pc, e); /* bounded memory; a prefix back after idle_s is retried */
    }
    return false;
}

static void *sc_pc_thread(void *arg)
{
    sc_prompt_cache_t *pc = arg;
    long tick = SC_PC_TICK_MAX_MS;
    if (pc->o.idle_s * 1000 / 4 < tick)
        tick = pc->o.idle_s * 1000 / 4;
    if (pc->o.ttl_s * 1000 / 4 < tick)
        tick = pc->o.ttl_s * 1000 / 4;
    if (tick < SC_PC_TICK_MIN_MS)
        tick = SC_PC_TICK_MIN_MS;
    pthread_mutex_lock(&pc->mu);
    for (;;) {
        if (sc_pc_work_one(pc))
            continue;
        if (pc->stopping)
            break; /* nothing left: every live cache is deleted */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += tick / 1000;
        ts.tv_nsec += (tick % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        int rc = pthread_cond_timedwait(&pc->cond, &pc->mu, &ts);
        (void)rc; /* a timeout and a signal both mean: look again */
    }
    pthread_mutex_unlock(&pc->mu);
    return NULL;
}

/* ---- public ---- */

void sc_prompt_cache_opts_default(sc_prompt_cache_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->min_tokens = SC_PC_MIN_TOKENS_DEFAULT;
    o->min_tokens_pro = SC_PC_MIN_TOKENS_PRO_DEFAULT;
    o->ttl_s = SC_PC_TTL_S_DEFAULT;
    o->idle_s = SC_PC_IDLE_S_DEFAULT;
    o->max_caches = SC_PC_MAX_CACHES_DEFAULT;
    o->request_timeout_ms = SC_PC_TIMEOUT_MS_DEFAULT;
}

void sc_prompt_cache_opts_from_config(const sc_config_t *cfg, sc_prompt_cache_opts_t *o)
{
    sc_prompt_cache_opts_default(o);
    o->base_url = sc_config_str(cfg, "gemini.base_url");
    o->api_key = sc_config_str(cfg, "gemini.api_key");
    o->min_tokens = (long)sc_config_int(cfg, "prompt_cache.min_tokens");
    o->min_tokens_pro = (long)sc_config_int(cfg, "prompt_cache.min_tokens_pro");
    o->ttl_s = (long)sc_config_int(cfg, "prompt_cache.ttl_s");
    o->idle_s = (long)sc_config_int(cfg, "prompt_cache.idle_s");
    o->max_caches = (int)sc_config_int(cfg, "prompt_cache.max_caches");
    o->prices = cfg;
}

sc_status_t sc_prompt_cache_new(const sc_prompt_cache_opts_t *o, sc_prompt_cache_t **out,
                                char *errbuf, size_t errlen)
{
    sc_status_t st = SC_OK;
    sc_prompt_cache_t *pc = NULL;
    char hdr[SC_PC_KEY_HDR_MAX];
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!o || !out || !o->base_url || !o->base_url[0]) {
        sc_pc_errf(errbuf, errlen, "prompt_cache: base_url and out are required");
        return SC_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (o->min_tokens < 1 || o->min_tokens > SC_PC_MIN_TOKENS_MAX || o->min_tokens_pro < 1 ||
        o->min_tokens_pro > SC_PC_MIN_TOKENS_MAX || o->ttl_s < 1 || o->ttl_s > SC_PC_SECONDS_MAX ||
        o->idle_s < 1 || o->idle_s > SC_PC_SECONDS_MAX || o->max_caches < 1 ||
        o->max_caches > SC_PROMPT_CACHE_MAX_CACHES_LIMIT || o->request_timeout_ms < 1 ||
        o->request_timeout_ms > SC_PC_TIMEOUT_MS_MAX) {
        sc_pc_errf(errbuf, errlen,
                   "prompt_cache: out of range (min_tokens 1..%ld, ttl_s and idle_s 1..%ld, "
                   "max_caches 1..%d, request_timeout_ms 1..%ld)",
                   SC_PC_MIN_TOKENS_MAX, SC_PC_SECONDS_MAX, SC_PROMPT_CACHE_MAX_CACHES_LIMIT,
                   SC_PC_TIMEOUT_MS_MAX);
        return SC_ERR_INVALID_ARG;
    }
    if (strlen(o->api_key ? o->api_key : "") + 32 > sizeof hdr) {
        sc_pc_errf(errbuf, errlen, "prompt_cache: api_key too long");
        return SC_ERR_INVALID_ARG;
    }
    pc = calloc(1, sizeof *pc);
    if (!pc) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    pc->o = *o;
    pc->base_url = strdup(o->base_url);
    pc->api_key = strdup(o->api_key ? o->api_key : "");
    pc->entries = calloc((size_t)o->max_caches, sizeof *pc->entries);
    pc->easy = curl_easy_init();
    snprintf(hdr, sizeof hdr, "x-goog-api-key: %s", pc->api_key ? pc->api_key : "");
    pc->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    pc->hdrs = pc->hdrs ? curl_slist_append(pc->hdrs, hdr) : NULL;
    if (!pc->base_url || !pc->api_key || !pc->entries || !pc->easy || !pc->hdrs) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    pc->o.base_url = pc->base_url;
    pc->o.api_key = pc->api_key;
    size_t bl = strlen(pc->base_url);
    while (bl > 0 && pc->base_url[bl - 1] == '/')
        pc->base_url[--bl] = '\0';
    if (pthread_mutex_init(&pc->mu, NULL) != 0) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    pc->mu_ready = true;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&pc->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    pc->cond_ready = true;
    if (pthread_create(&pc->thread, NULL, sc_pc_thread, pc) != 0) {
        st = SC_ERR_NOMEM;
        sc_pc_errf(errbuf, errlen, "prompt_cache: cannot start the manager thread");
        goto out;
    }
    pc->thread_started = true;
    sc_info("prompt_cache.start",
            "min_tokens=%ld min_tokens_pro=%ld ttl_s=%ld idle_s=%ld "
            "max_caches=%d",
            o->min_tokens, o->min_tokens_pro, o->ttl_s, o->idle_s, o->max_caches);
    *out = pc;
    pc = NULL;
out:
    if (st == SC_ERR_NOMEM && errbuf && errlen && !errbuf[0])
        sc_pc_errf(errbuf, errlen, "prompt_cache: out of memory");
    sc_prompt_cache_free(pc);
    return st;
}

void sc_prompt_cache_free(sc_prompt_cache_t *pc)
{
    if (!pc)
        return;
    if (pc->thread_started) {
        pthread_mutex_lock(&pc->mu);
        pc->stopping = true;
        pthread_cond_signal(&pc->cond);
        pthread_mutex_unlock(&pc->mu);
        pthread_join(pc->thread, NULL); /* it deletes (or leaves) the live caches, then ends */
        if (pc->shared || pc->n_left > 0)
            sc_info("prompt_cache.leave", "caches=%d", pc->n_left);
    }
    for (int i = 0; pc->entries && i < pc->o.max_caches; i++)
        free(pc->entries[i].prefix);
    free(pc->entries);
    if (pc->cond_ready)
        pthread_cond_destroy(&pc->cond);
    if (pc->mu_ready)
        pthread_mutex_destroy(&pc->mu);
    if (pc->easy)
        curl_easy_cleanup(pc->easy);
    curl_slist_free_all(pc->hdrs);
    free(pc->resp);
    free(pc->base_url);
    free(pc->api_key);
    free(pc);
}

long sc_prompt_cache_min_tokens(const sc_prompt_cache_t *pc, const char *model)
{
    return model && sc_pc_is_pro(model) ? pc->o.min_tokens_pro : pc->o.min_tokens;
}

/* A free slot, else the least recently used remembered refusal (mu held). NULL when full. */
static sc_pc_entry_t *sc_pc_slot(sc_prompt_cache_t *pc)
{
    sc_pc_entry_t *victim = NULL;
    for (int i = 0; i < pc->o.max_caches; i++) {
        sc_pc_entry_t *e = &pc->entries[i];
        if (e->state == SC_PC_FREE && !e->busy)
            return e;
        if ((e->state == SC_PC_NEVER || e->state == SC_PC_FAILED) && !e->busy &&
            (!victim || e->last_used_ms < victim->last_used_ms))
            victim = e;
    }
    if (victim)
        sc_pc_entry_release(pc, victim);
    return victim;
}

static sc_status_t sc_pc_acquire(sc_prompt_cache_t *pc, const char *model, const char *system,
                                 size_t system_len, bool fields, long est_tokens, char *name,
                                 size_t namelen, double *storage_usd_charge)
{
    if (storage_usd_charge)
        *storage_usd_charge = 0.0;
    if (!pc || !model || !model[0] || !system || system_len == 0 || !name ||
        namelen < SC_PROMPT_CACHE_NAME_MAX || strlen(model) >= SC_PROMPT_CACHE_MODEL_MAX)
        return SC_ERR_INVALID_ARG;
    name[0] = '\0';
    if (system_len > SC_PROMPT_CACHE_PREFIX_MAX)
        return SC_ERR_TOO_LARGE;
    if (est_tokens <= 0)
        est_tokens = (long)((system_len + SC_PC_CHARS_PER_TOKEN - 1) / SC_PC_CHARS_PER_TOKEN);
    if (est_tokens < sc_prompt_cache_min_tokens(pc, model))
        return SC_ERR_INVALID;

    uint64_t hash = XXH3_64bits(system, system_len);
    int64_t now = sc_now_ms();
    sc_status_t st = SC_ERR_NOT_FOUND;
    bool wake = false;
    pthread_mutex_lock(&pc->mu);
    sc_pc_entry_t *e = NULL;
    for (int i = 0; i < pc->o.max_caches && !e; i++) {
        sc_pc_entry_t *x = &pc->entries[i];
        if (x->state != SC_PC_FREE && x->hash == hash && x->prefix_len == system_len &&
            x->fields == fields && strcmp(x->model, model) == 0 &&
            memcmp(x->prefix, system, system_len) == 0)
            e = x;
    }
    if (!e) {
        e = sc_pc_slot(pc);
        char *copy = e ? malloc(system_len) : NULL;
        if (!e || !copy) {
            free(copy);
            st = e ? SC_ERR_NOMEM : SC_ERR_FULL;
            goto out;
        }
        memcpy(copy, system, system_len);
        sc_strlcpy(e->model, model, sizeof e->model);
        e->hash = hash;
        e->prefix = copy;
        e->prefix_len = system_len;
        e->fields = fields;
        e->storage_price = sc_pc_storage_price(pc->o.prices, model);
        e->state = SC_PC_PENDING;
        e->last_used_ms = now;
        wake = true;
        goto out;
    }
    e->last_used_ms = now;
    switch (e->state) {
    case SC_PC_LIVE: {
        int64_t left = e->expire_wall_ms - sc_wall_ms(), ttl_ms = pc->o.ttl_s * 1000;
        int64_t margin = ttl_ms / 4 < SC_PC_MARGIN_MS ? ttl_ms / 4 : SC_PC_MARGIN_MS;
        if (left < ttl_ms / 2 && !e->busy) {
            e->extend_wanted = true;
            wake = true;
        }
        if (left <= margin)
            break; /* about to expire: send uncached (an extension may still save it) */
        sc_strlcpy(name, e->name, namelen);
        if (storage_usd_charge)
            *storage_usd_charge = e->charge_due;
        e->charge_due = 0.0;
        st = SC_OK;
        break;
    }
    case SC_PC_NEVER:
        st = SC_ERR_INVALID;
        break;
    case SC_PC_FAILED:
        if (now >= e->retry_at_ms) {
            e->state = SC_PC_PENDING;
            wake = true;
        }
        break;
    case SC_PC_FREE:
    case SC_PC_PENDING:
    case SC_PC_CREATING:
    case SC_PC_DELETING:
        break;
    }
out:
    if (st == SC_OK)
        pc->st.hits++;
    else if (st == SC_ERR_NOT_FOUND)
        pc->st.misses++;
    if (wake)
        pthread_cond_signal(&pc->cond);
    pthread_mutex_unlock(&pc->mu);
    return st;
}

void sc_prompt_cache_forget(sc_prompt_cache_t *pc, const char *name)
{
    if (!pc || !name || !name[0])
        return;
    pthread_mutex_lock(&pc->mu);
    for (int i = 0; i < pc->o.max_caches; i++) {
        sc_pc_entry_t *e = &pc->entries[i];
        if (e->state == SC_PC_LIVE && !e->busy && strcmp(e->name, name) == 0) {
            sc_info("prompt_cache.forget", "model=%s name=%s", e->model, e->name);
            sc_pc_share(pc, e, true);
            sc_pc_entry_release(pc, e);
        }
    }
    pthread_mutex_unlock(&pc->mu);
}

/* ---- sharing with other replicas ---- */

void sc_prompt_cache_on_share(sc_prompt_cache_t *pc, sc_prompt_cache_share_fn fn, void *arg)
{
    if (!pc)
        return;
    pthread_mutex_lock(&pc->mu);
    pc->share_fn = fn;
    pc->share_arg = fn ? arg : NULL;
    if (fn)
        pc->shared = true;
    pthread_mutex_unlock(&pc->mu);
}

/* "cachedContents/{id}" with an id of [A-Za-z0-9_-]: the manager puts names into its PATCH and
 * DELETE paths, so a record must not steer those at another resource. */
static bool sc_pc_name_ok(const char *name)
{
    size_t pl = strlen(SC_PC_NAME_PREFIX);
    if (!name || strncmp(name, SC_PC_NAME_PREFIX, pl) != 0)
        return false;
    size_t n = strlen(name);
    if (n == pl || n >= SC_PROMPT_CACHE_NAME_MAX)
        return false;
    for (const char *c = name + pl; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return false;
    return true;
}

/* Make e (not busy) live with the shared cache s (mu held). Its charge_due stays what it is (0
 * for an entry that never had a cache of its own): the storage is the sharer's to carry. */
static void sc_pc_take(sc_prompt_cache_t *pc, sc_pc_entry_t *e, const sc_prompt_cache_share_t *s,
                       int64_t now)
{
    sc_strlcpy(e->name, s->name, sizeof e->name);
    e->tokens = s->tokens;
    e->expire_wall_ms = s->expire_wall_ms;
    e->last_used_ms = now;
    e->retry_at_ms = 0; /* a FAILED create's back-off is not the cache's */
    e->extend_wanted = false;
    e->adopted = true;
    e->state = SC_PC_LIVE;
    pc->st.adopted++;
    sc_info("prompt_cache.adopt", "model=%s name=%s tokens=%ld expire_in_ms=%lld", e->model,
            e->name, e->tokens, (long long)(e->expire_wall_ms - sc_wall_ms()));
}

/* A gone record: drop the idle live entry of that name, without a DELETE (mu not held). */
static sc_status_t sc_pc_adopt_gone(sc_prompt_cache_t *pc, const char *name)
{
    sc_status_t st = SC_ERR_NOT_FOUND;
    pthread_mutex_lock(&pc->mu);
    for (int i = 0; i < pc->o.max_caches; i++) {
        sc_pc_entry_t *e = &pc->entries[i];
        if (e->state == SC_PC_LIVE && !e->busy && strcmp(e->name, name) == 0) {
            sc_info("prompt_cache.adopt_gone", "model=%s name=%s", e->model, e->name);
            sc_pc_entry_release(pc, e);
            st = SC_OK;
        }
    }
    pthread_mutex_unlock(&pc->mu);
    return st;
}

sc_status_t sc_prompt_cache_adopt(sc_prompt_cache_t *pc, const sc_prompt_cache_share_t *s)
{
    if (!pc || !s || !sc_pc_name_ok(s->name))
        return SC_ERR_INVALID_ARG;
    if (s->gone)
        return sc_pc_adopt_gone(pc, s->name);
    int64_t wall = sc_wall_ms();
    if (!s->model || !s->model[0] || strlen(s->model) >= SC_PROMPT_CACHE_MODEL_MAX ||
        (s->fields != 0 && s->fields != 1) || !s->prefix || s->prefix_len == 0 ||
        s->prefix_len > SC_PROMPT_CACHE_PREFIX_MAX || s->tokens < 0 ||
        s->expire_wall_ms > wall + SC_PC_SECONDS_MAX * 1000)
        return SC_ERR_INVALID_ARG;
    /* recomputed, never trusted: the hash picks the entry a tenant's acquire is answered from */
    uint64_t hash = XXH3_64bits(s->prefix, s->prefix_len);
    if (hash != s->hash)
        return SC_ERR_INVALID_ARG;
    if (s->expire_wall_ms <= wall + SC_PC_MARGIN_MS)
        return SC_ERR_TIMEOUT; /* acquire would not hand it out; compared so as not to overflow */

    bool fields = s->fields == 1;
    int64_t now = sc_now_ms();
    sc_status_t st = SC_ERR_INVALID;
    pthread_mutex_lock(&pc->mu);
    if (pc->stopping) {
        st = SC_ERR_CLOSED;
        goto out;
    }
    sc_pc_entry_t *e = NULL;
    for (int i = 0; i < pc->o.max_caches && !e; i++) {
        sc_pc_entry_t *x = &pc->entries[i];
        if (x->state != SC_PC_FREE && x->hash == hash && x->prefix_len == s->prefix_len &&
            x->fields == fields && strcmp(x->model, s->model) == 0 &&
            memcmp(x->prefix, s->prefix, s->prefix_len) == 0)
            e = x;
    }
    if (!e) {
        e = sc_pc_slot(pc);
        char *copy = e ? malloc(s->prefix_len) : NULL;
        if (!e || !copy) {
            free(copy);
            st = e ? SC_ERR_NOMEM : SC_ERR_FULL;
            goto out;
        }
        memcpy(copy, s->prefix, s->prefix_len);
        sc_strlcpy(e->model, s->model, sizeof e->model);
        e->hash = hash;
        e->prefix = copy;
        e->prefix_len = s->prefix_len;
        e->fields = fields;
        e->storage_price = sc_pc_storage_price(pc->o.prices, s->model); /* its own extensions */
        sc_pc_take(pc, e, s, now);
        st = SC_OK;
        goto out;
    }
    switch (e->state) {
    case SC_PC_PENDING: /* not on the wire yet: the create is saved */
    case SC_PC_NEVER:   /* another replica's server took it: the minimum moved, or it differs */
    case SC_PC_FAILED:
        if (!e->busy) {
            sc_pc_take(pc, e, s, now);
            st = SC_OK;
        }
        break;
    case SC_PC_LIVE:
        if (strcmp(e->name, s->name) != 0)
            break;
        e->last_used_ms = now; /* used by another replica: not idle */
        st = SC_OK;
        if (e->busy)
            break; /* the thread owns the expiry while its PATCH is out */
        if (s->expire_wall_ms > e->expire_wall_ms)
            e->expire_wall_ms = s->expire_wall_ms;
        if (e->expire_wall_ms - wall >= pc->o.ttl_s * 1000 / 2)
            e->extend_wanted = false; /* the other replica's extension did it */
        break;
    case SC_PC_FREE:
    case SC_PC_CREATING:
    case SC_PC_DELETING:
        break;
    }
out:
    pthread_mutex_unlock(&pc->mu);
    return st;
}

void sc_prompt_cache_stats(sc_prompt_cache_t *pc, sc_prompt_cache_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!pc)
        return;
    pthread_mutex_lock(&pc->mu);
    *out = pc->st;
    for (int i = 0; i < pc->o.max_caches; i++) {
        sc_pc_state_t s = pc->entries[i].state;
        out->live += s == SC_PC_LIVE || s == SC_PC_DELETING;
        out->pending += s == SC_PC_PENDING || s == SC_PC_CREATING;
    }
    pthread_mutex_unlock(&pc->mu);
}

sc_status_t sc_prompt_cache_acquire(sc_prompt_cache_t *pc, const char *model, const char *system,
                                    size_t system_len, long est_tokens, char *name, size_t namelen,
                                    double *storage_usd_charge)
{
    return sc_pc_acquire(pc, model, system, system_len, false, est_tokens, name, namelen,
                         storage_usd_charge);
}

sc_status_t sc_prompt_cache_acquire_fields(sc_prompt_cache_t *pc, const char *model,
                                           const char *fields, size_t fields_len, long est_tokens,
                                           char *name, size_t namelen, double *storage_usd_charge)
{
    json_t *doc = fields ? json_loadb(fields, fields_len, 0, NULL) : NULL; /* new */
    int ok = json_is_object(doc);
    json_decref(doc);
    if (storage_usd_charge)
        *storage_usd_charge = 0.0;
    if (!ok)
        return SC_ERR_INVALID_ARG;
    return sc_pc_acquire(pc, model, fields, fields_len, true, est_tokens, name, namelen,
                         storage_usd_charge);
}
