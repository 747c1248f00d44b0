/* gemini.c - the Gemini generateContent client: one libcurl multi handle, retries on a timer
 * list, per-model rate limits / 429 throttling / circuit breaker, response and error parsing
 * (gemini-api.md §1, §6, §8). */
#include "host/gemini/gemini.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "host/core/log.h"
#include "host/core/util.h"

#ifndef SCRIMP_VERSION
#define SCRIMP_VERSION "dev"
#endif

/* ---- limits ---- */

#define SC_GEMINI_BODY_MAX ((size_t)64 * 1024 * 1024) /* one response body */
#define SC_GEMINI_BODY_INITIAL ((size_t)16 * 1024)    /* first allocation of a response */
#define SC_GEMINI_BASE_URL_MAX 512                     /* base_url length */
#define SC_GEMINI_URL_MAX 1024                         /* a whole request URL */
#define SC_GEMINI_KEY_MAX 512                          /* api_key length */
#define SC_GEMINI_HEADER_MAX (SC_GEMINI_KEY_MAX + 32)  /* "x-goog-api-key: KEY" */
#define SC_GEMINI_ERRMSG_MAX 1024                      /* err_message kept per call */
#define SC_GEMINI_LOGMSG_MAX 160                       /* error text quoted in a log line */
#define SC_GEMINI_EASY_POOL_MAX 1024                   /* idle easy handles kept for reuse */
#define SC_GEMINI_INFLIGHT_LIMIT 65536                 /* upper bound accepted for max_inflight */
#define SC_GEMINI_ATTEMPTS_LIMIT 100                   /* upper bound accepted for max_attempts */
#define SC_GEMINI_RETRY_DELAY_MAX_S 86400L             /* parsed RetryInfo clamp, before cap */
#define SC_GEMINI_MIN_ATTEMPT_MS 1L                    /* smallest CURLOPT_TIMEOUT_MS we set */

#define SC_GEMINI_DEFAULT_CONNECT_MS 5000L
#define SC_GEMINI_DEFAULT_REQUEST_MS 60000L
#define SC_GEMINI_DEFAULT_INFLIGHT 256
#define SC_GEMINI_DEFAULT_ATTEMPTS 5
#define SC_GEMINI_DEFAULT_BACKOFF_MS 1000L
#define SC_GEMINI_DEFAULT_BACKOFF_MAX_MS 60000L
#define SC_GEMINI_DEFAULT_JITTER_MS 1000L
#define SC_GEMINI_DEFAULT_BREAKER_FAILURES 20
#define SC_GEMINI_DEFAULT_BREAKER_COOLDOWN_MS 5000L
#define SC_GEMINI_DEFAULT_BREAKER_MAX_COOLDOWN_MS 60000L

/* ---- per-model limits, throttling and breaker ---- */

#define SC_GEMINI_MODELS_MAX 64  /* distinct model ids one client tracks */
#define SC_GEMINI_RATE_LIMIT 1e9 /* upper bound accepted for rpm and tpm */
#define SC_GEMINI_MS_PER_MIN 60000.0
/* Bucket capacity: this much time of the rate (and at least one request / one request's
 * tokens), so an idle model can burst rate/60 requests, not a whole minute's worth. */
#define SC_GEMINI_BUCKET_BURST_MS 1000.0
#define SC_GEMINI_BUCKET_EPSILON 1e-9 /* float slack when comparing tokens */
/* Observed request rate: attempts started in a ring of slots, SLOTS*SLOT_MS = 2 s window. */
#define SC_GEMINI_RATE_SLOT_MS 100
#define SC_GEMINI_RATE_SLOTS 20
/* AIMD on 429 (gemini-api.md §8): a 429 cuts the model's request rate to DECREASE times the
 * lower of the observed rate and the limit in force (not below FLOOR), at most once per
 * CUT_GAP_MS, only for an attempt started after the last cut, and only when at least
 * MIN_SAMPLES attempts were started in the window (below that our own rate did not cause the
 * 429 and the model-wide pause alone answers it); every success adds INCREASE_RPM. After
 * QUIET_MS without a 429 (counted from the end of the pause) the adaptive limit is dropped:
 * back to the configured rpm, or unlimited. */
#define SC_GEMINI_AIMD_DECREASE 0.5
#define SC_GEMINI_AIMD_FLOOR_RPM 1.0
#define SC_GEMINI_AIMD_INCREASE_RPM 2.0
#define SC_GEMINI_AIMD_INCREASE_FRACTION 0.05 /* and at least this share of the rate per success */
#define SC_GEMINI_AIMD_CUT_GAP_MS 1000L
#define SC_GEMINI_AIMD_MIN_SAMPLES 10u
#define SC_GEMINI_AIMD_QUIET_MS 5000L
#define SC_GEMINI_THROTTLE_LOG_STEP 1.5     /* log a recovering rate each time it grows this much */
#define SC_GEMINI_THROTTLE_LOG_GAP_MS 1000L /* a pause without a rate change: one line per this */
#define SC_GEMINI_BREAKER_WINDOW_MS 10000L  /* the consecutive failures must fall within this */
#define SC_GEMINI_BREAKER_FAILURES_LIMIT 1000000     /* upper bound accepted for breaker_failures */
#define SC_GEMINI_BREAKER_COOLDOWN_LIMIT_MS 3600000L /* upper bound for both cooldowns */

/* ---- types ---- */

typedef enum {
    SC_GEM_IDLE = 0, /* not submitted */
    SC_GEM_RUNNING,  /* an attempt is on the multi handle */
    SC_GEM_WAITING,  /* in the timer list until due_ms */
    SC_GEM_QUEUED,   /* in its model's FIFO until the limits, pause and breaker let it go */
    SC_GEM_DONE,     /* finished, queued for the done callback */
} sc_gem_state_t;

typedef enum {
    SC_GEM_BREAKER_CLOSED = 0,
    SC_GEM_BREAKER_OPEN,      /* nothing is sent until open_until_ms */
    SC_GEM_BREAKER_HALF_OPEN, /* one probe attempt may be on the wire */
} sc_gem_breaker_t;

struct sc_gem_priv;

/* A token bucket refilled continuously at rate per minute; rate 0 = unlimited (not tracked). */
typedef struct {
    double rate;
    double tokens; /* may go below 0 after a request larger than the capacity */
    int64_t last_ms;
} sc_gem_bucket_t;

/* Everything the client keeps per model id: limits, buckets, AIMD, breaker, the FIFO. */
typedef struct {
    char name[128];
    sc_gemini_limits_t cfg;     /* configured; 0 = unlimited */
    sc_gem_bucket_t req, tok;   /* requests and prompt tokens per minute */
    double aimd_rpm;            /* adaptive limit after a 429; 0 = none */
    double aimd_ceiling_rpm;    /* the rate in force before the first cut: recovery ends there */
    double logged_rpm;          /* last rate written to the log */
    int64_t last_cut_ms, last_429_ms, pause_until_ms, last_log_ms;
    uint32_t slot_count[SC_GEMINI_RATE_SLOTS];
    int64_t slot_id[SC_GEMINI_RATE_SLOTS];
    sc_gem_breaker_t br_state;
    int br_failures;            /* consecutive, since br_first_ms */
    int64_t br_first_ms, br_open_until_ms;
    long br_cooldown_ms;        /* of the current / next opening */
    struct sc_gem_priv *br_probe; /* the half-open probe on the wire, borrowed */
    struct sc_gem_priv *q_head, *q_tail; /* FIFO of SC_GEM_QUEUED calls, borrowed */
    int n_waiting, n_running;
    uint64_t requests_started, throttled_429, breaker_opens;
    double rate_min;
} sc_gem_model_t;

/* Why an attempt failed, which picks the status after the last attempt. */
typedef enum {
    SC_GEM_FAIL_HTTP = 0,  /* retryable HTTP status */
    SC_GEM_FAIL_TRANSPORT, /* curl error */
    SC_GEM_FAIL_BAD,       /* 200 we could not parse */
} sc_gem_fail_t;

typedef struct sc_gem_priv {
    sc_gemini_call_t *call; /* back pointer, borrowed */
    sc_gem_state_t state;
    CURL *easy;             /* while running; owned by the client's pool */
    char *resp;             /* response body of the current attempt, owned */
    size_t resp_len, resp_cap;
    int resp_overflow;
    int64_t due_ms;         /* when waiting */
    int64_t attempt_ms;     /* when the current attempt started */
    sc_gem_model_t *model;  /* the client's entry for call->model, borrowed */
    struct sc_gem_priv *q_prev, *q_next; /* the model's FIFO while queued */
    char curl_err[CURL_ERROR_SIZE];
    struct sc_gem_priv *prev, *next; /* g->held: running and waiting calls */
    struct sc_gem_priv *done_next;   /* g->done queue */
} sc_gem_priv_t;

struct sc_gemini {
    sc_gemini_opts_t opts; /* base_url/api_key point at the owned copies below */
    char base_url[SC_GEMINI_BASE_URL_MAX];
    CURLM *multi;
    struct curl_slist *headers; /* shared by every attempt; holds the key, never logged */
    CURL *pool[SC_GEMINI_EASY_POOL_MAX]; /* idle easy handles */
    int n_pool;
    sc_gem_priv_t *held;                  /* running + waiting */
    sc_gem_priv_t *done_head, *done_tail; /* finished, not yet delivered */
    int n_inflight;                       /* held + done queue */
    uint64_t rng;
    sc_gem_model_t *models[SC_GEMINI_MODELS_MAX]; /* owned */
    int n_models;
};

/* ---- global init ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void sc_gemini_curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int sc_gemini_global_init(void)
{
    pthread_once(&curl_once, sc_gemini_curl_init);
    return curl_init_rc == CURLE_OK ? 0 : -1;
}

/* ---- small helpers ---- */

/* xorshift64*: a seeded, reproducible jitter source. */
static uint64_t sc_gemini_rand(sc_gemini_t *g)
{
    uint64_t x = g->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    g->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* @remark the caller frees the result with free(); NULL on allocation failure. */
static char *sc_gemini_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* A model id goes into the URL path: allow only the characters model ids use. */
static int sc_gemini_model_ok(const char *model)
{
    size_t n = strlen(model);
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)model[i];
        if (!isalnum(c) && c != '-' && c != '.' && c != '_')
            return 0;
    }
    return 1;
}

/* Copy s into dst (dstlen bytes) for a log value in double quotes: quotes, backslashes and
 * control bytes become '_' so a line stays one line of key=value pairs. */
static void sc_gemini_log_value(char *dst, size_t dstlen, const char *s)
{
    size_t j = 0;
    if (!s)
        s = "";
    for (size_t i = 0; s[i] && j + 1 < dstlen; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[j++] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\') ? '_' : (char)c;
    }
    dst[j] = '\0';
}

static const char *sc_gemini_reason(long http)
{
    switch (http) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "HTTP error";
    }
}

static int sc_gemini_http_retryable(long http)
{
    return http == 408 || http == 429 || http == 500 || http == 502 || http == 503 ||
           http == 504;
}

/* Transport errors worth another attempt; the rest are configuration problems that repeat. */
static int sc_gemini_curl_retryable(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_UNKNOWN_OPTION:
        return 0;
    default:
        return 1;
    }
}

/*
 * Parse a protobuf Duration string ("26s", "0.2s", "57.238747106s") into milliseconds, rounded
 * up. Returns -1 when s is not one.
 */
static long sc_gemini_duration_ms(const char *s)
{
    long secs = 0, frac_ms = 0;
    int digits = 0, frac_digits = 0, frac_rest = 0;
    const char *p = s;

    while (*p >= '0' && *p <= '9') {
        if (secs < SC_GEMINI_RETRY_DELAY_MAX_S)
            secs = secs * 10 + (*p - '0');
        digits++;
        p++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (frac_digits < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
            else if (*p != '0')
                frac_rest = 1;
            frac_digits++;
            p++;
        }
        for (int i = frac_digits; i < 3; i++)
            frac_ms *= 10;
    }
    if ((digits == 0 && frac_digits == 0) || p[0] != 's' || p[1] != '\0')
        return -1;
    if (secs > SC_GEMINI_RETRY_DELAY_MAX_S)
        secs = SC_GEMINI_RETRY_DELAY_MAX_S;
    return secs * 1000 + frac_ms + (frac_rest ? 1 : 0);
}

/* ---- calls ---- */

/* @remark takes body_owned in every case (freed here when the call cannot be made); the caller
 * frees the call with sc_gemini_call_free(). NULL on allocation failure or a model id that does
 * not fit call->model. */
sc_gemini_call_t *sc_gemini_call_new(const char *model, char *body_owned, size_t body_len)
{
    sc_gemini_call_t *call = NULL;

    if (!model || strlen(model) >= sizeof(call->model))
        goto fail;
    call = calloc(1, sizeof(*call));
    if (!call)
        goto fail;
    sc_strlcpy(call->model, model, sizeof(call->model));
    call->body = body_owned;
    call->body_len = body_len;
    call->status = SC_OK;
    return call;

fail:
    free(body_owned);
    return NULL;
}

static void sc_gemini_call_clear_out(sc_gemini_call_t *call)
{
    free(call->text);
    free(call->finish_reason);
    free(call->model_version);
    free(call->response_id);
    free(call->block_reason);
    free(call->err_message);
    call->text = call->finish_reason = call->model_version = NULL;
    call->response_id = call->block_reason = call->err_message = NULL;
    call->status = SC_OK;
    call->http_status = 0;
    call->attempts = 0;
    memset(&call->usage, 0, sizeof(call->usage));
    call->err_status[0] = '\0';
    call->started_ms = call->finished_ms = 0;
}

void sc_gemini_call_free(sc_gemini_call_t *call)
{
    if (!call)
        return;
    sc_gemini_call_clear_out(call);
    free(call->body);
    sc_gem_priv_t *p = call->priv;
    if (p)
        free(p->resp);
    free(p);
    free(call);
}

/* ---- request body ---- */

/* A new Content {"role": role, "parts":[{"text": text}]} (no role when NULL).
 * @remark the caller owns the returned reference; NULL on allocation failure or bad UTF-8. */
static json_t *sc_gemini_content(const char *role, const char *text, size_t len)
{
    json_t *content = json_object();          /* new */
    json_t *parts = json_array();             /* new */
    json_t *part = json_object();             /* new */
    json_t *str = json_stringn(text, len);    /* new; NULL on invalid UTF-8 */
    if (!content || !parts || !part || !str)
        goto fail;
    if (json_object_set_new(part, "text", str) != 0) {
        str = NULL;
        goto fail;
    }
    str = NULL;
    if (json_array_append_new(parts, part) != 0) {
        part = NULL;
        goto fail;
    }
    part = NULL;
    if (role && json_object_set_new(content, "role", json_string(role)) != 0)
        goto fail;
    if (json_object_set_new(content, "parts", parts) != 0) {
        parts = NULL;
        goto fail;
    }
    return content;

fail:
    json_decref(str);
    json_decref(part);
    json_decref(parts);
    json_decref(content);
    return NULL;
}

/* @remark the caller frees the result with free(); NULL on allocation failure or a string that
 * is not UTF-8. */
json_t *sc_gemini_content_new(const char *role, const char *text, size_t len)
{
    return sc_gemini_content(role, text ? text : "", text ? len : 0);
}

/* The generateContent body: contents (stolen, released even on failure), generationConfig from
 * req, and either req's systemInstruction or, with cache_name, "cachedContent": cache_name and
 * no systemInstruction (the cache holds it; gemini-api.md §1.4, §4.4). */
static char *sc_gemini_body_build(const sc_request_t *req, json_t *contents,
                                  const char *cache_name, size_t *len)
{
    char *out = NULL;
    json_t *root = json_object(); /* new, released at out */
    json_t *gen = NULL;

    if (!root || !req || !contents)
        goto out;
    if (cache_name) {
        if (json_object_set_new(root, "cachedContent", json_string(cache_name)) != 0)
            goto out;
    } else if (req->system) {
        json_t *si = sc_gemini_content(NULL, req->system, strlen(req->system)); /* new */
        if (!si || json_object_set_new(root, "systemInstruction", si) != 0)
            goto out;
    }
    if (json_object_set_new(root, "contents", contents) != 0) {
        contents = NULL; /* set_new released it */
        goto out;
    }
    contents = NULL;

    gen = json_object(); /* new; handed to root when not empty */
    if (!gen)
        goto out;
    if (req->has_temperature && json_object_set_new(gen, "temperature", json_real(req->temperature)))
        goto out;
    if (req->max_output_tokens > 0 &&
        json_object_set_new(gen, "maxOutputTokens", json_integer(req->max_output_tokens)))
        goto out;
    if (req->response_mime_type &&
        json_object_set_new(gen, "responseMimeType", json_string(req->response_mime_type)))
        goto out;
    if (json_object_size(gen) > 0) {
        if (json_object_set_new(root, "generationConfig", gen) != 0) {
            gen = NULL;
            goto out;
        }
        gen = NULL;
    }

    out = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (out && len)
        *len = strlen(out);

out:
    json_decref(gen);
    json_decref(contents);
    json_decref(root);
    return out;
}

char *sc_gemini_body_with_contents(const sc_request_t *req, json_t *contents, size_t *len)
{
    return sc_gemini_body_build(req, contents, NULL, len);
}

/* req's turns as a contents array. @return a new reference, or NULL on allocation failure. */
static json_t *sc_gemini_turns(const sc_request_t *req)
{
    json_t *contents = json_array(); /* new */
    if (!contents)
        return NULL;
    for (size_t i = 0; i < req->n_turns; i++) {
        const sc_turn_t *t = &req->turns[i];
        const char *text = t->content ? t->content : "";
        size_t tlen = t->content ? t->content_len : 0;
        json_t *c = sc_gemini_content(t->role ? t->role : "user", text, tlen); /* new */
        if (!c || json_array_append_new(contents, c) != 0) {
            json_decref(contents);
            return NULL;
        }
    }
    return contents;
}

char *sc_gemini_body_from_request(const sc_request_t *req, size_t *len)
{
    if (!req)
        return NULL;
    json_t *contents = sc_gemini_turns(req); /* new; handed to sc_gemini_body_build */
    return contents ? sc_gemini_body_build(req, contents, NULL, len) : NULL;
}

char *sc_gemini_body_with_cache(const sc_request_t *req, const char *cache_name, size_t *len)
{
    if (!req || !cache_name || !cache_name[0])
        return NULL;
    json_t *contents = sc_gemini_turns(req); /* new; handed to sc_gemini_body_build */
    return contents ? sc_gemini_body_build(req, contents, cache_name, len) : NULL;
}

/* ---- client ---- */

void sc_gemini_opts_default(sc_gemini_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->connect_timeout_ms = SC_GEMINI_DEFAULT_CONNECT_MS;
    opts->request_timeout_ms = SC_GEMINI_DEFAULT_REQUEST_MS;
    opts->max_inflight = SC_GEMINI_DEFAULT_INFLIGHT;
    opts->max_attempts = SC_GEMINI_DEFAULT_ATTEMPTS;
    opts->backoff_initial_ms = SC_GEMINI_DEFAULT_BACKOFF_MS;
    opts->backoff_max_ms = SC_GEMINI_DEFAULT_BACKOFF_MAX_MS;
    opts->backoff_jitter_ms = SC_GEMINI_DEFAULT_JITTER_MS;
    opts->http2 = 1;
    opts->seed = 1;
    opts->breaker_failures = SC_GEMINI_DEFAULT_BREAKER_FAILURES;
    opts->breaker_cooldown_ms = SC_GEMINI_DEFAULT_BREAKER_COOLDOWN_MS;
    opts->breaker_max_cooldown_ms = SC_GEMINI_DEFAULT_BREAKER_MAX_COOLDOWN_MS;
}

static int sc_gemini_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static sc_status_t sc_gemini_check_opts(const sc_gemini_opts_t *o, char *errbuf, size_t errlen)
{
    const char *why = NULL;
    if (!o->base_url || !(sc_gemini_has_prefix(o->base_url, "http://") ||
                          sc_gemini_has_prefix(o->base_url, "https://")))
        why = "gemini base_url must start with http:// or https://";
    else if (strlen(o->base_url) >= SC_GEMINI_BASE_URL_MAX)
        why = "gemini base_url is too long";
    else if (o->api_key && strlen(o->api_key) >= SC_GEMINI_KEY_MAX)
        why = "gemini api_key is too long";
    else if (o->api_key && strpbrk(o->api_key, "\r\n"))
        why = "gemini api_key contains a line break";
    else if (o->max_attempts < 1 || o->max_attempts > SC_GEMINI_ATTEMPTS_LIMIT)
        why = "gemini max_attempts must be in 1..100";
    else if (o->max_inflight < 1 || o->max_inflight > SC_GEMINI_INFLIGHT_LIMIT)
        why = "gemini max_inflight must be in 1..65536";
    else if (o->connect_timeout_ms < 1 || o->request_timeout_ms < 1)
        why = "gemini timeouts must be positive";
    else if (o->backoff_initial_ms < 0 || o->backoff_max_ms < 0 || o->backoff_jitter_ms < 0)
        why = "gemini backoff values must not be negative";
    else if (o->breaker_failures < 1 || o->breaker_failures > SC_GEMINI_BREAKER_FAILURES_LIMIT)
        why = "gemini breaker_failures must be in 1..1000000";
    else if (o->breaker_cooldown_ms < 1 ||
             o->breaker_cooldown_ms > SC_GEMINI_BREAKER_COOLDOWN_LIMIT_MS)
        why = "gemini breaker_cooldown_ms must be in 1..3600000";
    else if (o->breaker_max_cooldown_ms < o->breaker_cooldown_ms ||
             o->breaker_max_cooldown_ms > SC_GEMINI_BREAKER_COOLDOWN_LIMIT_MS)
        why = "gemini breaker_max_cooldown_ms must be in breaker_cooldown_ms..3600000";
    if (!why)
        return SC_OK;
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", why);
    return SC_ERR_INVALID_ARG;
}

/* @remark on SC_OK *out is a new client; the caller frees it with sc_gemini_free(). The opts
 * strings are copied. */
sc_status_t sc_gemini_new(const sc_gemini_opts_t *opts, sc_gemini_t **out, char *errbuf,
                          size_t errlen)
{
    sc_status_t st = SC_OK;
    sc_gemini_t *g = NULL;
    char hdr[SC_GEMINI_HEADER_MAX];
    struct curl_slist *tmp;

    if (!opts || !out) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "gemini: missing opts or out");
        return SC_ERR_INVALID_ARG;
    }
    *out = NULL;
    st = sc_gemini_check_opts(opts, errbuf, errlen);
    if (st != SC_OK)
        goto out;
    if (sc_gemini_global_init() != 0) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "gemini: curl_global_init failed");
        st = SC_ERR_IO;
        goto out;
    }
    g = calloc(1, sizeof(*g));
    if (!g) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    g->opts = *opts;
    sc_strlcpy(g->base_url, opts->base_url, sizeof(g->base_url));
    for (size_t n = strlen(g->base_url); n > 0 && g->base_url[n - 1] == '/'; n--)
        g->base_url[n - 1] = '\0';
    g->opts.base_url = g->base_url;
    g->opts.api_key = NULL; /* only the header keeps it */
    g->rng = ((uint64_t)opts->seed << 1) ^ 0x9E3779B97F4A7C15ULL;
    if (g->rng == 0)
        g->rng = 1;

    tmp = curl_slist_append(NULL, "Content-Type: application/json");
    if (tmp)
        g->headers = tmp;
    /* An empty Expect stops libcurl from waiting on 100-continue for large bodies. */
    if (tmp && (tmp = curl_slist_append(g->headers, "Expect:")) != NULL)
        g->headers = tmp;
    if (tmp && opts->api_key && opts->api_key[0]) {
        snprintf(hdr, sizeof(hdr), "x-goog-api-key: %s", opts->api_key);
        tmp = curl_slist_append(g->headers, hdr);
        if (tmp)
            g->headers = tmp;
        memset(hdr, 0, sizeof(hdr));
    }
    if (!tmp) {
        st = SC_ERR_NOMEM;
        goto out;
    }

    g->multi = curl_multi_init();
    if (!g->multi) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    curl_multi_setopt(g->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(g->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)opts->max_inflight);
    /* The multi handle's connection cache: keep as many idle connections as calls can run. */
    curl_multi_setopt(g->multi, CURLMOPT_MAXCONNECTS, (long)opts->max_inflight);

out:
    if (st != SC_OK) {
        if (st == SC_ERR_NOMEM && errbuf && errlen)
            snprintf(errbuf, errlen, "gemini: out of memory");
        sc_gemini_free(g);
        return st;
    }
    *out = g;
    return SC_OK;
}

void sc_gemini_free(sc_gemini_t *g)
{
    if (!g)
        return;
    while (g->held) {
        sc_gem_priv_t *p = g->held;
        g->held = p->next;
        if (p->easy) {
            curl_multi_remove_handle(g->multi, p->easy);
            curl_easy_cleanup(p->easy);
            p->easy = NULL;
        }
        sc_gemini_call_free(p->call);
    }
    while (g->done_head) {
        sc_gem_priv_t *p = g->done_head;
        g->done_head = p->done_next;
        sc_gemini_call_free(p->call);
    }
    for (int i = 0; i < g->n_pool; i++)
        curl_easy_cleanup(g->pool[i]);
    if (g->multi)
        curl_multi_cleanup(g->multi);
    curl_slist_free_all(g->headers);
    for (int i = 0; i < g->n_models; i++)
        free(g->models[i]);
    free(g);
}

int sc_gemini_inflight(const sc_gemini_t *g)
{
    return g ? g->n_inflight : 0;
}

void sc_gemini_wakeup(sc_gemini_t *g)
{
    if (g && g->multi)
        curl_multi_wakeup(g->multi);
}

/* ---- call lifecycle ---- */

static void sc_gemini_unlink_held(sc_gemini_t *g, sc_gem_priv_t *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        g->held = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

static void sc_gemini_link_held(sc_gemini_t *g, sc_gem_priv_t *p)
{
    p->prev = NULL;
    p->next = g->held;
    if (g->held)
        g->held->prev = p;
    g->held = p;
}

/* Append a call to its model's FIFO. */
static void sc_gemini_enqueue(sc_gem_priv_t *p)
{
    sc_gem_model_t *m = p->model;
    p->q_next = NULL;
    p->q_prev = m->q_tail;
    if (m->q_tail)
        m->q_tail->q_next = p;
    else
        m->q_head = p;
    m->q_tail = p;
    m->n_waiting++;
    p->state = SC_GEM_QUEUED;
}

/* Take a queued call out of its model's FIFO (head or middle). */
static void sc_gemini_dequeue(sc_gem_priv_t *p)
{
    sc_gem_model_t *m = p->model;
    if (p->q_prev)
        p->q_prev->q_next = p->q_next;
    else
        m->q_head = p->q_next;
    if (p->q_next)
        p->q_next->q_prev = p->q_prev;
    else
        m->q_tail = p->q_prev;
    p->q_prev = p->q_next = NULL;
    m->n_waiting--;
    p->state = SC_GEM_IDLE;
}

/* Return an easy handle to the pool (or clean it up when the pool is full). */
static void sc_gemini_easy_put(sc_gemini_t *g, CURL *easy)
{
    if (g->n_pool < SC_GEMINI_EASY_POOL_MAX)
        g->pool[g->n_pool++] = easy;
    else
        curl_easy_cleanup(easy);
}

/* Move a call to the done queue with its final status. */
static void sc_gemini_finish(sc_gemini_t *g, sc_gem_priv_t *p, sc_status_t st)
{
    sc_gemini_call_t *call = p->call;

    if (p->state == SC_GEM_QUEUED)
        sc_gemini_dequeue(p);
    sc_gemini_unlink_held(g, p);
    call->status = st;
    call->finished_ms = sc_now_ms();
    if (!call->text && st == SC_OK)
        call->text = sc_gemini_strndup("", 0);
    free(p->resp);
    p->resp = NULL;
    p->resp_len = p->resp_cap = 0;
    p->state = SC_GEM_DONE;
    if (st != SC_OK) {
        char msg[SC_GEMINI_LOGMSG_MAX];
        sc_gemini_log_value(msg, sizeof(msg), call->err_message);
        sc_warn("gemini.failed", "model=%s http=%ld status=%s attempts=%d error=%s msg=\"%s\"",
                call->model, call->http_status, call->err_status[0] ? call->err_status : "-",
                call->attempts, sc_status_code(st), msg);
    }
    p->done_next = NULL;
    if (g->done_tail)
        g->done_tail->done_next = p;
    else
        g->done_head = p;
    g->done_tail = p;
}

static void sc_gemini_set_err(sc_gemini_call_t *call, const char *status, const char *msg)
{
    sc_strlcpy(call->err_status, status ? status : "", sizeof(call->err_status));
    free(call->err_message);
    call->err_message = NULL;
    if (msg) {
        size_t n = strlen(msg);
        call->err_message = sc_gemini_strndup(msg, n < SC_GEMINI_ERRMSG_MAX ? n : SC_GEMINI_ERRMSG_MAX);
    }
}

static long sc_gemini_backoff_ms(sc_gemini_t *g, int attempts)
{
    long d = g->opts.backoff_initial_ms;
    for (int i = 1; i < attempts && d < g->opts.backoff_max_ms; i++)
        d = d > g->opts.backoff_max_ms / 2 ? g->opts.backoff_max_ms : d * 2;
    if (d > g->opts.backoff_max_ms)
        d = g->opts.backoff_max_ms;
    if (g->opts.backoff_jitter_ms > 0)
        d += (long)(sc_gemini_rand(g) % (uint64_t)(g->opts.backoff_jitter_ms + 1));
    return d;
}

/* The delay before the next attempt of a call that has made `attempts`: the server's RetryInfo
 * (retry_info_ms >= 0, capped at backoff_max_ms) or exponential backoff with jitter. */
static long sc_gemini_retry_delay(sc_gemini_t *g, int attempts, long retry_info_ms)
{
    if (retry_info_ms >= 0)
        return retry_info_ms < g->opts.backoff_max_ms ? retry_info_ms : g->opts.backoff_max_ms;
    return sc_gemini_backoff_ms(g, attempts);
}

/*
 * After a failed attempt: finish the call when attempts are used up or the deadline would pass
 * first, else put it in the timer list for delay ms (< 0: compute the backoff here).
 */
static void sc_gemini_retry_or_fail(sc_gemini_t *g, sc_gem_priv_t *p, sc_gem_fail_t why,
                                    long delay)
{
    sc_gemini_call_t *call = p->call;
    int64_t now = sc_now_ms();

    if (call->attempts >= g->opts.max_attempts) {
        sc_status_t st = why == SC_GEM_FAIL_TRANSPORT ? SC_ERR_UPSTREAM_TRANSPORT
                         : why == SC_GEM_FAIL_BAD     ? SC_ERR_UPSTREAM_BAD_RESPONSE
                                                      : SC_ERR_UPSTREAM_RETRYABLE;
        sc_gemini_finish(g, p, st);
        return;
    }
    if (delay < 0)
        delay = sc_gemini_retry_delay(g, call->attempts, -1);
    if (call->deadline_ms > 0 && now + delay >= call->deadline_ms) {
        sc_gemini_finish(g, p, SC_ERR_DEADLINE);
        return;
    }
    p->due_ms = now + delay;
    p->state = SC_GEM_WAITING;
    sc_debug("gemini.retry", "model=%s http=%ld status=%s attempt=%d delay_ms=%ld", call->model,
             call->http_status, call->err_status[0] ? call->err_status : "-", call->attempts,
             delay);
}

static size_t sc_gemini_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    sc_gem_priv_t *p = userp;
    size_t n = size * nmemb;

    if (n > SC_GEMINI_BODY_MAX - p->resp_len) {
        p->resp_overflow = 1;
        return 0; /* CURLE_WRITE_ERROR */
    }
    if (p->resp_len + n + 1 > p->resp_cap) {
        size_t cap = p->resp_cap ? p->resp_cap : SC_GEMINI_BODY_INITIAL;
        while (cap < p->resp_len + n + 1)
            cap *= 2;
        if (cap > SC_GEMINI_BODY_MAX + 1)
            cap = SC_GEMINI_BODY_MAX + 1;
        char *r = realloc(p->resp, cap);
        if (!r)
            return 0;
        p->resp = r;
        p->resp_cap = cap;
    }
    memcpy(p->resp + p->resp_len, data, n);
    p->resp_len += n;
    p->resp[p->resp_len] = '\0';
    return n;
}

/* Count an attempt start in the model's observed-rate ring. */
static void sc_gemini_rate_note(sc_gem_model_t *m, int64_t now)
{
    int64_t slot = now / SC_GEMINI_RATE_SLOT_MS;
    size_t i = (size_t)(slot % SC_GEMINI_RATE_SLOTS);
    if (m->slot_id[i] != slot) {
        m->slot_id[i] = slot;
        m->slot_count[i] = 0;
    }
    m->slot_count[i]++;
}

/* Attempts started in the last SC_GEMINI_RATE_SLOTS slots. */
static uint32_t sc_gemini_rate_window(const sc_gem_model_t *m, int64_t now)
{
    int64_t slot = now / SC_GEMINI_RATE_SLOT_MS;
    uint32_t n = 0;
    for (size_t i = 0; i < SC_GEMINI_RATE_SLOTS; i++)
        if (m->slot_id[i] > slot - SC_GEMINI_RATE_SLOTS && m->slot_id[i] <= slot)
            n += m->slot_count[i];
    return n;
}

/* Start one attempt: set up an easy handle and add it to the multi handle. On failure the call
 * is finished. */
static void sc_gemini_start_attempt(sc_gemini_t *g, sc_gem_priv_t *p)
{
    sc_gemini_call_t *call = p->call;
    int64_t now = sc_now_ms();
    long timeout = g->opts.request_timeout_ms;
    char url[SC_GEMINI_URL_MAX];
    CURL *e;
    int n;

    if (call->deadline_ms > 0) {
        int64_t left = call->deadline_ms - now;
        if (left < SC_GEMINI_MIN_ATTEMPT_MS) {
            sc_gemini_finish(g, p, SC_ERR_DEADLINE);
            return;
        }
        if (left < timeout)
            timeout = (long)left;
    }
    n = snprintf(url, sizeof(url), "%s/v1beta/models/%s:generateContent", g->base_url,
                 call->model);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        sc_gemini_set_err(call, "", "request URL too long");
        sc_gemini_finish(g, p, SC_ERR_INVALID_ARG);
        return;
    }
    e = g->n_pool > 0 ? g->pool[--g->n_pool] : curl_easy_init();
    if (!e) {
        sc_gemini_set_err(call, "", "curl_easy_init failed");
        sc_gemini_finish(g, p, SC_ERR_NOMEM);
        return;
    }
    /* reset keeps the handle's live connections, DNS and TLS session caches */
    curl_easy_reset(e);
    p->resp_len = 0;
    p->resp_overflow = 0;
    p->curl_err[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, g->headers);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     g->opts.http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, g->opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "scrimp/" SCRIMP_VERSION);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sc_gemini_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, p->curl_err);
    curl_easy_setopt(e, CURLOPT_PRIVATE, p);
    if (curl_multi_add_handle(g->multi, e) != CURLM_OK) {
        sc_gemini_easy_put(g, e);
        sc_gemini_set_err(call, "", "curl_multi_add_handle failed");
        sc_gemini_finish(g, p, SC_ERR_UPSTREAM_TRANSPORT);
        return;
    }
    p->easy = e;
    p->state = SC_GEM_RUNNING;
    p->attempt_ms = now;
    call->attempts++;
    p->model->n_running++;
    p->model->requests_started++;
    sc_gemini_rate_note(p->model, now);
}

/* ---- per-model limits: buckets, AIMD throttle, breaker, FIFO dispatch ---- */

static double sc_gemini_bucket_cap(const sc_gem_bucket_t *b)
{
    double cap = b->rate * SC_GEMINI_BUCKET_BURST_MS / SC_GEMINI_MS_PER_MIN;
    return cap < 1.0 ? 1.0 : cap;
}

static void sc_gemini_bucket_refill(sc_gem_bucket_t *b, int64_t now)
{
    if (b->rate > 0 && now > b->last_ms) {
        double cap = sc_gemini_bucket_cap(b);
        b->tokens += b->rate * (double)(now - b->last_ms) / SC_GEMINI_MS_PER_MIN;
        if (b->tokens > cap)
            b->tokens = cap;
    }
    b->last_ms = now;
}

/* Change a bucket's rate: refilled at the old rate up to now; a bucket that was unlimited
 * starts full; tokens above the new capacity are dropped. */
static void sc_gemini_bucket_set_rate(sc_gem_bucket_t *b, double rate, int64_t now)
{
    int was_unlimited = b->rate <= 0;
    sc_gemini_bucket_refill(b, now);
    b->rate = rate;
    if (rate <= 0) {
        b->tokens = 0;
        return;
    }
    if (was_unlimited || b->tokens > sc_gemini_bucket_cap(b))
        b->tokens = sc_gemini_bucket_cap(b);
}

/* ms until the bucket holds need tokens (0: now). need is clamped to the capacity so a request
 * larger than the bucket goes when the bucket is full. */
static long sc_gemini_bucket_wait(sc_gem_bucket_t *b, double need, int64_t now)
{
    double cap, missing;
    if (b->rate <= 0 || need <= 0)
        return 0;
    sc_gemini_bucket_refill(b, now);
    cap = sc_gemini_bucket_cap(b);
    if (need > cap)
        need = cap;
    missing = need - b->tokens;
    if (missing <= SC_GEMINI_BUCKET_EPSILON)
        return 0;
    missing = ceil(missing * SC_GEMINI_MS_PER_MIN / b->rate);
    return missing < 1.0 ? 1L : (long)missing;
}

/* The request rate in force: the lower of the configured and the adaptive limit (0: none). */
static double sc_gemini_eff_rpm(double cfg_rpm, double aimd_rpm)
{
    if (cfg_rpm > 0 && aimd_rpm > 0)
        return cfg_rpm < aimd_rpm ? cfg_rpm : aimd_rpm;
    return cfg_rpm > 0 ? cfg_rpm : aimd_rpm;
}

/* The adaptive limit still in force at now: dropped after the quiet period. */
static int sc_gemini_aimd_expired(const sc_gem_model_t *m, int64_t now)
{
    int64_t from = m->last_429_ms > m->pause_until_ms ? m->last_429_ms : m->pause_until_ms;
    return m->aimd_rpm > 0 && now - from >= SC_GEMINI_AIMD_QUIET_MS;
}

static void sc_gemini_throttle_log(sc_gem_model_t *m, int64_t now, const char *why)
{
    double rpm = sc_gemini_eff_rpm(m->cfg.rpm, m->aimd_rpm);
    long pause = m->pause_until_ms > now ? (long)(m->pause_until_ms - now) : 0;
    sc_info("gemini.throttle", "model=%s pause_ms=%ld rate_rpm=%.0f reason=%s", m->name, pause,
            rpm, why);
    m->logged_rpm = rpm;
    m->last_log_ms = now;
}

/* Apply a new adaptive limit to the request bucket. */
static void sc_gemini_aimd_set(sc_gem_model_t *m, double aimd_rpm, int64_t now)
{
    double eff;
    m->aimd_rpm = aimd_rpm;
    eff = sc_gemini_eff_rpm(m->cfg.rpm, aimd_rpm);
    sc_gemini_bucket_set_rate(&m->req, eff, now);
    if (eff > 0 && (m->rate_min <= 0 || eff < m->rate_min))
        m->rate_min = eff;
}

/* Quiet period over: drop the adaptive limit. */
static void sc_gemini_aimd_tick(sc_gem_model_t *m, int64_t now)
{
    if (!sc_gemini_aimd_expired(m, now))
        return;
    sc_gemini_aimd_set(m, 0, now);
    sc_gemini_throttle_log(m, now, "recovered");
}

/* A 429 for model m on the attempt of p: pause the whole model for delay ms and (see
 * SC_GEMINI_AIMD_*) cut its request rate. */
static void sc_gemini_throttle_429(sc_gem_model_t *m, const sc_gem_priv_t *p, long delay,
                                   int64_t now)
{
    int paused_before = m->pause_until_ms > now;
    uint32_t seen;
    double base, cur;

    m->throttled_429++;
    m->last_429_ms = now;
    if (now + delay > m->pause_until_ms)
        m->pause_until_ms = now + delay;
    seen = sc_gemini_rate_window(m, now);
    if ((m->last_cut_ms && now - m->last_cut_ms < SC_GEMINI_AIMD_CUT_GAP_MS) ||
        p->attempt_ms < m->last_cut_ms || seen < SC_GEMINI_AIMD_MIN_SAMPLES) {
        if (!paused_before && now - m->last_log_ms >= SC_GEMINI_THROTTLE_LOG_GAP_MS)
            sc_gemini_throttle_log(m, now, "pause");
        return;
    }
    base = seen * SC_GEMINI_MS_PER_MIN / (SC_GEMINI_RATE_SLOTS * SC_GEMINI_RATE_SLOT_MS);
    cur = sc_gemini_eff_rpm(m->cfg.rpm, m->aimd_rpm);
    if (cur > 0 && cur < base)
        base = cur;
    if (m->aimd_rpm <= 0) /* the first cut of a storm: remember where recovery ends */
        m->aimd_ceiling_rpm = base;
    base *= SC_GEMINI_AIMD_DECREASE;
    m->last_cut_ms = now;
    sc_gemini_aimd_set(m, base < SC_GEMINI_AIMD_FLOOR_RPM ? SC_GEMINI_AIMD_FLOOR_RPM : base, now);
    sc_gemini_throttle_log(m, now, "429");
}

/* A successful attempt: the adaptive limit grows back additively. */
static void sc_gemini_throttle_ok(sc_gem_model_t *m, int64_t now)
{
    double next;
    if (m->aimd_rpm <= 0)
        return;
    /* Additive at low rates, proportional at high ones, so a cut from thousands of rpm recovers
     * in seconds of successes rather than minutes. */
    next = m->aimd_rpm + (m->aimd_rpm * SC_GEMINI_AIMD_INCREASE_FRACTION > SC_GEMINI_AIMD_INCREASE_RPM
                              ? m->aimd_rpm * SC_GEMINI_AIMD_INCREASE_FRACTION
                              : SC_GEMINI_AIMD_INCREASE_RPM);
    if ((m->cfg.rpm > 0 && next >= m->cfg.rpm) ||
        (m->aimd_ceiling_rpm > 0 && next >= m->aimd_ceiling_rpm)) {
        sc_gemini_aimd_set(m, 0, now); /* the configured (or unlimited) rate rules again */
        sc_gemini_throttle_log(m, now, "recovered");
        return;
    }
    sc_gemini_aimd_set(m, next, now);
    if (next >= m->logged_rpm * SC_GEMINI_THROTTLE_LOG_STEP)
        sc_gemini_throttle_log(m, now, "recovering");
}

static void sc_gemini_breaker_open(sc_gem_model_t *m, int64_t now, const char *why)
{
    m->br_state = SC_GEM_BREAKER_OPEN;
    m->br_open_until_ms = now + m->br_cooldown_ms;
    m->breaker_opens++;
    sc_warn("gemini.breaker", "model=%s state=open reason=%s failures=%d cooldown_ms=%ld",
            m->name, why, m->br_failures, m->br_cooldown_ms);
}

/* The outcome of an attempt for the breaker: failed = 500/502/503/504 or a transport error. */
static void sc_gemini_breaker_result(sc_gemini_t *g, sc_gem_model_t *m, sc_gem_priv_t *p,
                                     int failed, int64_t now)
{
    int was_probe = m->br_probe == p;
    if (was_probe)
        m->br_probe = NULL;
    if (m->br_state != SC_GEM_BREAKER_CLOSED) {
        if (!was_probe)
            return; /* attempts sent before the breaker opened do not decide */
        if (failed) {
            long c = m->br_cooldown_ms;
            m->br_cooldown_ms = c > g->opts.breaker_max_cooldown_ms / 2
                                    ? g->opts.breaker_max_cooldown_ms
                                    : c * 2;
            sc_gemini_breaker_open(m, now, "probe_failed");
            return;
        }
        m->br_state = SC_GEM_BREAKER_CLOSED;
        m->br_failures = 0;
        m->br_cooldown_ms = g->opts.breaker_cooldown_ms;
        sc_info("gemini.breaker", "model=%s state=closed", m->name);
        return;
    }
    if (!failed) {
        m->br_failures = 0;
        return;
    }
    if (m->br_failures == 0 || now - m->br_first_ms > SC_GEMINI_BREAKER_WINDOW_MS) {
        m->br_failures = 0;
        m->br_first_ms = now;
    }
    if (++m->br_failures >= g->opts.breaker_failures)
        sc_gemini_breaker_open(m, now, "failures");
}

/* The model entry for name, created when create is set. NULL when absent, or the table is full
 * or memory is short (create). */
static sc_gem_model_t *sc_gemini_model_get(sc_gemini_t *g, const char *name, int create)
{
    sc_gem_model_t *m;
    for (int i = 0; i < g->n_models; i++)
        if (strcmp(g->models[i]->name, name) == 0)
            return g->models[i];
    if (!create || g->n_models >= SC_GEMINI_MODELS_MAX || strlen(name) >= sizeof(m->name))
        return NULL;
    m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    sc_strlcpy(m->name, name, sizeof(m->name));
    m->br_cooldown_ms = g->opts.breaker_cooldown_ms;
    m->last_log_ms = INT64_MIN / 2;
    g->models[g->n_models++] = m;
    return m;
}

/*
 * May the head call p of model m start now? 0: yes; > 0: ms until it may (breaker cooldown,
 * pause, bucket refill); -1: not before an attempt of m ends (concurrency cap, probe on the
 * wire).
 */
static long sc_gemini_gate(sc_gem_model_t *m, const sc_gem_priv_t *p, int64_t now)
{
    long w;
    if (m->br_state == SC_GEM_BREAKER_OPEN) {
        if (now < m->br_open_until_ms)
            return (long)(m->br_open_until_ms - now);
        m->br_state = SC_GEM_BREAKER_HALF_OPEN;
        sc_debug("gemini.breaker", "model=%s state=half_open", m->name);
    }
    if (m->br_state == SC_GEM_BREAKER_HALF_OPEN && m->br_probe)
        return -1;
    if (now < m->pause_until_ms)
        return (long)(m->pause_until_ms - now);
    if (m->cfg.max_concurrency > 0 && m->n_running >= m->cfg.max_concurrency)
        return -1;
    if ((w = sc_gemini_bucket_wait(&m->req, 1.0, now)) > 0)
        return w;
    return sc_gemini_bucket_wait(&m->tok, (double)p->call->est_tokens, now);
}

/* Start the calls at the head of m's FIFO that may go. Returns ms until the head may go or its
 * deadline passes (-1: only an attempt ending can unblock it, or the FIFO is empty). */
static long sc_gemini_dispatch(sc_gemini_t *g, sc_gem_model_t *m, int64_t now)
{
    sc_gemini_call_t *call;
    sc_gem_priv_t *p;
    long w;

    sc_gemini_aimd_tick(m, now);
    while ((p = m->q_head) != NULL) {
        call = p->call;
        if (call->deadline_ms > 0 && call->deadline_ms - now < SC_GEMINI_MIN_ATTEMPT_MS) {
            if (!call->err_message)
                sc_gemini_set_err(call, "", "deadline passed while waiting for the model's "
                                            "rate limit, pause or breaker");
            sc_gemini_finish(g, p, SC_ERR_DEADLINE);
            continue;
        }
        w = sc_gemini_gate(m, p, now);
        if (w != 0) {
            if (call->deadline_ms > 0) {
                long left = (long)(call->deadline_ms - now);
                if (w < 0 || left < w)
                    w = left;
            }
            return w;
        }
        sc_gemini_dequeue(p);
        if (m->req.rate > 0)
            m->req.tokens -= 1.0;
        if (m->tok.rate > 0 && call->est_tokens > 0)
            m->tok.tokens -= (double)call->est_tokens;
        sc_gemini_start_attempt(g, p);
        if (p->state == SC_GEM_RUNNING && m->br_state == SC_GEM_BREAKER_HALF_OPEN)
            m->br_probe = p;
    }
    return -1;
}

/* Queue a call behind its model's limits and start what may start. */
static void sc_gemini_admit(sc_gemini_t *g, sc_gem_priv_t *p, int64_t now)
{
    sc_gemini_enqueue(p);
    sc_gemini_dispatch(g, p->model, now);
}

sc_status_t sc_gemini_set_model_limits(sc_gemini_t *g, const char *model,
                                       const sc_gemini_limits_t *lim)
{
    static const sc_gemini_limits_t none = {0, 0, 0};
    sc_gem_model_t *m;
    int64_t now = sc_now_ms();

    if (!g || !model || !sc_gemini_model_ok(model))
        return SC_ERR_INVALID_ARG;
    if (!lim)
        lim = &none;
    if (!isfinite(lim->rpm) || !isfinite(lim->tpm) || lim->rpm < 0 || lim->tpm < 0 ||
        lim->rpm > SC_GEMINI_RATE_LIMIT || lim->tpm > SC_GEMINI_RATE_LIMIT ||
        lim->max_concurrency < 0 || lim->max_concurrency > SC_GEMINI_CONCURRENCY_LIMIT)
        return SC_ERR_INVALID_ARG;
    if (strlen(model) >= sizeof(m->name))
        return SC_ERR_INVALID_ARG;
    m = sc_gemini_model_get(g, model, 1);
    if (!m)
        return g->n_models >= SC_GEMINI_MODELS_MAX ? SC_ERR_FULL : SC_ERR_NOMEM;
    m->cfg = *lim;
    if (m->aimd_rpm > 0 && m->cfg.rpm > 0 && m->aimd_rpm >= m->cfg.rpm)
        m->aimd_rpm = 0;
    sc_gemini_aimd_set(m, m->aimd_rpm, now);
    sc_gemini_bucket_set_rate(&m->tok, m->cfg.tpm, now);
    sc_info("gemini.limits", "model=%s rpm=%.0f tpm=%.0f max_concurrency=%d", m->name,
            m->cfg.rpm, m->cfg.tpm, m->cfg.max_concurrency);
    sc_gemini_dispatch(g, m, now); /* raised limits may let waiting calls go */
    return SC_OK;
}

void sc_gemini_model_stats(const sc_gemini_t *g, const char *model, sc_gemini_model_stats_t *out)
{
    const sc_gem_model_t *m = NULL;
    int64_t now = sc_now_ms();

    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!g || !model)
        return;
    for (int i = 0; i < g->n_models && !m; i++)
        if (strcmp(g->models[i]->name, model) == 0)
            m = g->models[i];
    if (!m)
        return;
    out->requests_started = m->requests_started;
    out->throttled_429 = m->throttled_429;
    out->breaker_opens = m->breaker_opens;
    out->rate_rpm_now =
        sc_gemini_eff_rpm(m->cfg.rpm, sc_gemini_aimd_expired(m, now) ? 0 : m->aimd_rpm);
    out->rate_rpm_min = m->rate_min;
    out->pause_ms_left = m->pause_until_ms > now ? m->pause_until_ms - now : 0;
    out->breaker_open = m->br_state != SC_GEM_BREAKER_CLOSED;
    out->waiting = m->n_waiting;
    out->running = m->n_running;
}

/* ---- response parsing ---- */

static char *sc_gemini_json_strdup(json_t *v) /* v borrowed; result owned or NULL */
{
    return json_is_string(v) ? sc_gemini_strndup(json_string_value(v), json_string_length(v))
                             : NULL;
}

static long sc_gemini_json_long(json_t *obj, const char *key) /* obj borrowed */
{
    json_t *v = json_object_get(obj, key); /* borrowed */
    return json_is_integer(v) ? (long)json_integer_value(v) : 0;
}

/* Fill the call's outputs from a GenerateContentResponse object (borrowed). 0, or -1 when it is
 * not a usable response. */
int sc_gemini_response_from_json(sc_gemini_call_t *call, json_t *root)
{
    int rc = -1;
    json_t *cands, *cand, *parts, *usage, *fb; /* borrowed from root */
    char *text = NULL;

    if (!json_is_object(root))
        goto out;
    cands = json_object_get(root, "candidates");
    fb = json_object_get(root, "promptFeedback");
    cand = json_is_array(cands) ? json_array_get(cands, 0) : NULL;
    if (cands && !json_is_array(cands))
        goto out;
    if (cand && !json_is_object(cand))
        goto out;
    if (!cand && !json_is_string(json_object_get(fb, "blockReason")))
        goto out; /* neither an answer nor a block: not a response we understand */

    parts = cand ? json_object_get(json_object_get(cand, "content"), "parts") : NULL;
    {
        size_t total = 0, off = 0, i;
        json_t *part;
        json_array_foreach(parts, i, part) {
            json_t *t = json_object_get(part, "text");
            if (json_is_true(json_object_get(part, "thought")) || !json_is_string(t))
                continue;
            total += json_string_length(t);
        }
        text = malloc(total + 1);
        if (!text)
            goto out;
        json_array_foreach(parts, i, part) {
            json_t *t = json_object_get(part, "text");
            if (json_is_true(json_object_get(part, "thought")) || !json_is_string(t))
                continue;
            memcpy(text + off, json_string_value(t), json_string_length(t));
            off += json_string_length(t);
        }
        text[off] = '\0';
    }

    free(call->text);
    call->text = text;
    text = NULL;
    free(call->finish_reason);
    call->finish_reason = cand ? sc_gemini_json_strdup(json_object_get(cand, "finishReason")) : NULL;
    free(call->block_reason);
    call->block_reason = sc_gemini_json_strdup(json_object_get(fb, "blockReason"));
    free(call->model_version);
    call->model_version = sc_gemini_json_strdup(json_object_get(root, "modelVersion"));
    free(call->response_id);
    call->response_id = sc_gemini_json_strdup(json_object_get(root, "responseId"));
    usage = json_object_get(root, "usageMetadata");
    call->usage.prompt_tokens = sc_gemini_json_long(usage, "promptTokenCount");
    call->usage.cached_tokens = sc_gemini_json_long(usage, "cachedContentTokenCount");
    call->usage.output_tokens = sc_gemini_json_long(usage, "candidatesTokenCount");
    call->usage.thought_tokens = sc_gemini_json_long(usage, "thoughtsTokenCount");
    call->err_status[0] = '\0';
    free(call->err_message);
    call->err_message = NULL;
    rc = 0;

out:
    free(text);
    return rc;
}

/* Fill the call's outputs from a 2xx body. 0, or -1 when the body is not a usable response. */
static int sc_gemini_parse_ok(sc_gemini_call_t *call, const char *body, size_t len)
{
    json_t *root = json_loadb(body, len, 0, NULL); /* new */
    int rc = sc_gemini_response_from_json(call, root);
    json_decref(root);
    return rc;
}

/* Read an error body into call->err_status / err_message. Returns the RetryInfo delay in ms,
 * or -1 when there is none. */
static long sc_gemini_parse_error(sc_gemini_call_t *call, long http, const char *body,
                                  size_t len)
{
    long retry_ms = -1;
    json_t *root = body ? json_loadb(body, len, 0, NULL) : NULL; /* new, released below */
    json_t *doc = root, *err, *details, *d;                        /* borrowed */
    size_t i;

    if (json_is_array(doc) && json_array_size(doc) == 1)
        doc = json_array_get(doc, 0);
    err = json_object_get(doc, "error");
    if (!json_is_object(err)) {
        sc_gemini_set_err(call, "", sc_gemini_reason(http));
        goto out;
    }
    {
        json_t *st = json_object_get(err, "status"), *msg = json_object_get(err, "message");
        sc_gemini_set_err(call, json_is_string(st) ? json_string_value(st) : "",
                          json_is_string(msg) ? json_string_value(msg) : sc_gemini_reason(http));
    }
    details = json_object_get(err, "details");
    json_array_foreach(details, i, d) {
        json_t *type = json_object_get(d, "@type"), *rd = json_object_get(d, "retryDelay");
        const char *ts = json_is_string(type) ? json_string_value(type) : "";
        size_t tl = strlen(ts), sl = strlen("google.rpc.RetryInfo");
        if (tl >= sl && strcmp(ts + tl - sl, "google.rpc.RetryInfo") == 0 && json_is_string(rd)) {
            retry_ms = sc_gemini_duration_ms(json_string_value(rd));
            break;
        }
    }

out:
    json_decref(root);
    return retry_ms;
}

/* One attempt ended (curl says DONE): decide success, retry or final failure. */
static void sc_gemini_attempt_done(sc_gemini_t *g, sc_gem_priv_t *p, CURLcode rc)
{
    sc_gemini_call_t *call = p->call;
    sc_gem_model_t *m = p->model;
    int64_t now = sc_now_ms();
    long http = 0;
    CURL *e = p->easy;

    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http);
    curl_multi_remove_handle(g->multi, e);
    sc_gemini_easy_put(g, e);
    p->easy = NULL;
    p->state = SC_GEM_IDLE;
    m->n_running--;
    /* the breaker counts 5xx and transport failures; any other answer shows the model is up */
    sc_gemini_breaker_result(g, m, p,
                             rc != CURLE_OK ? !p->resp_overflow
                                            : (http == 500 || http == 502 || http == 503 ||
                                               http == 504),
                             now);

    if (p->resp_overflow) {
        call->http_status = http;
        sc_gemini_set_err(call, "", "response body exceeds the size limit");
        sc_gemini_finish(g, p, SC_ERR_UPSTREAM_BAD_RESPONSE);
        return;
    }
    if (rc != CURLE_OK) {
        const char *msg = p->curl_err[0] ? p->curl_err : curl_easy_strerror(rc);
        call->http_status = 0;
        sc_gemini_set_err(call, "", msg);
        if (call->deadline_ms > 0 && sc_now_ms() >= call->deadline_ms) {
            sc_gemini_finish(g, p, SC_ERR_DEADLINE);
            return;
        }
        if (!sc_gemini_curl_retryable(rc)) {
            sc_gemini_finish(g, p, SC_ERR_UPSTREAM_TRANSPORT);
            return;
        }
        sc_gemini_retry_or_fail(g, p, SC_GEM_FAIL_TRANSPORT, -1);
        return;
    }
    call->http_status = http;
    if (http >= 200 && http < 300) {
        if (sc_gemini_parse_ok(call, p->resp ? p->resp : "", p->resp_len) == 0) {
            sc_gemini_throttle_ok(m, now);
            sc_gemini_finish(g, p, SC_OK);
            return;
        }
        sc_gemini_set_err(call, "", "response is not a generateContent JSON document");
        sc_gemini_retry_or_fail(g, p, SC_GEM_FAIL_BAD, -1);
        return;
    }
    {
        long retry_ms = sc_gemini_parse_error(call, http, p->resp, p->resp_len);
        long delay = -1;
        if (!sc_gemini_http_retryable(http)) {
            sc_gemini_finish(g, p, SC_ERR_UPSTREAM_REJECTED);
            return;
        }
        if (http == 429) {
            /* the pause holds every call of the model, this one included */
            delay = sc_gemini_retry_delay(g, call->attempts, retry_ms);
            sc_gemini_throttle_429(m, p, delay, now);
        }
        sc_gemini_retry_or_fail(g, p, SC_GEM_FAIL_HTTP, delay);
    }
}

/* Queue the calls whose retry time has come, end the queued calls whose deadline passed, and
 * start what the models' limits let start; return ms to the next timer (-1: none): a due
 * retry, a queued call's deadline, or the moment a model's head call may go. */
static long sc_gemini_run_timers(sc_gemini_t *g)
{
    int64_t now = sc_now_ms();
    long next = -1, w;
    sc_gem_priv_t *p = g->held, *nx;

    for (; p; p = nx) {
        nx = p->next; /* finish unlinks p */
        if (p->state == SC_GEM_WAITING) {
            if (p->due_ms <= now) {
                sc_gemini_enqueue(p);
                continue;
            }
            w = (long)(p->due_ms - now);
        } else if (p->state == SC_GEM_QUEUED && p->call->deadline_ms > 0) {
            if (p->call->deadline_ms - now < SC_GEMINI_MIN_ATTEMPT_MS) {
                if (!p->call->err_message)
                    sc_gemini_set_err(p->call, "", "deadline passed while waiting for the "
                                                   "model's rate limit, pause or breaker");
                sc_gemini_finish(g, p, SC_ERR_DEADLINE);
                continue;
            }
            w = (long)(p->call->deadline_ms - now);
        } else {
            continue;
        }
        if (next < 0 || w < next)
            next = w;
    }
    for (int i = 0; i < g->n_models; i++) {
        if (!g->models[i]->q_head) {
            sc_gemini_aimd_tick(g->models[i], now);
            continue;
        }
        w = sc_gemini_dispatch(g, g->models[i], now);
        if (w >= 0 && (next < 0 || w < next))
            next = w;
    }
    return next;
}

/* @remark on SC_OK the client owns call until it comes back through the done callback. */
sc_status_t sc_gemini_submit(sc_gemini_t *g, sc_gemini_call_t *call)
{
    sc_gem_priv_t *p;
    sc_gem_model_t *m;

    if (!g || !call || !call->body || !sc_gemini_model_ok(call->model) || call->est_tokens < 0)
        return SC_ERR_INVALID_ARG;
    if (call->priv && ((sc_gem_priv_t *)call->priv)->state != SC_GEM_IDLE)
        return SC_ERR_INVALID_ARG; /* already held by a client */
    if (g->n_inflight >= g->opts.max_inflight)
        return SC_ERR_FULL;
    m = sc_gemini_model_get(g, call->model, 1);
    if (!m)
        return g->n_models >= SC_GEMINI_MODELS_MAX ? SC_ERR_FULL : SC_ERR_NOMEM;
    if (!call->priv) {
        call->priv = calloc(1, sizeof(sc_gem_priv_t));
        if (!call->priv)
            return SC_ERR_NOMEM;
    }
    p = call->priv;
    free(p->resp);
    memset(p, 0, sizeof(*p));
    p->call = call;
    p->model = m;
    sc_gemini_call_clear_out(call);
    call->started_ms = sc_now_ms();
    g->n_inflight++;
    sc_gemini_link_held(g, p);
    sc_gemini_admit(g, p, call->started_ms);
    return SC_OK;
}

/* Wait, drive transfers, and collect finished attempts; does not deliver done calls. */
static sc_status_t sc_gemini_step(sc_gemini_t *g, int timeout_ms)
{
    int running = 0, left = 0;
    long next = sc_gemini_run_timers(g);
    int wait = timeout_ms < 0 ? 0 : timeout_ms;
    CURLMsg *msg;

    if (next >= 0 && next < wait)
        wait = (int)next;
    if (g->done_head)
        wait = 0;
    if (curl_multi_poll(g->multi, NULL, 0, wait, NULL) != CURLM_OK)
        return SC_ERR_IO;
    if (curl_multi_perform(g->multi, &running) != CURLM_OK)
        return SC_ERR_IO;
    while ((msg = curl_multi_info_read(g->multi, &left)) != NULL) {
        sc_gem_priv_t *p = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&p);
        if (p)
            sc_gemini_attempt_done(g, p, msg->data.result);
    }
    sc_gemini_run_timers(g); /* retries due now (e.g. RetryInfo 0s) start without a wait */
    return SC_OK;
}

static sc_gem_priv_t *sc_gemini_pop_done(sc_gemini_t *g)
{
    sc_gem_priv_t *p = g->done_head;
    if (!p)
        return NULL;
    g->done_head = p->done_next;
    if (!g->done_head)
        g->done_tail = NULL;
    p->done_next = NULL;
    p->state = SC_GEM_IDLE;
    g->n_inflight--;
    return p;
}

/* @remark done takes ownership of each call passed to it. */
sc_status_t sc_gemini_poll(sc_gemini_t *g, int timeout_ms, sc_gemini_done_cb done, void *arg)
{
    sc_status_t st;
    sc_gem_priv_t *p;

    if (!g || !done)
        return SC_ERR_INVALID_ARG;
    st = sc_gemini_step(g, timeout_ms);
    while ((p = sc_gemini_pop_done(g)) != NULL)
        done(p->call, arg);
    return st;
}

/*
 * Submit call and drive the loop until it finishes; returns its final status (also in
 * call->status), or submit's error. Other calls finishing meanwhile stay queued for the next
 * sc_gemini_poll(). @remark the call stays the caller's in every case.
 */
sc_status_t sc_gemini_call_sync(sc_gemini_t *g, sc_gemini_call_t *call)
{
    sc_status_t st = sc_gemini_submit(g, call);
    sc_gem_priv_t *p;

    if (st != SC_OK)
        return st;
    p = call->priv;
    for (;;) {
        if (p->state == SC_GEM_DONE) {
            sc_gem_priv_t *prev = NULL, *q;
            for (q = g->done_head; q && q != p; q = q->done_next)
                prev = q;
            if (q) {
                if (prev)
                    prev->done_next = q->done_next;
                else
                    g->done_head = q->done_next;
                if (g->done_tail == q)
                    g->done_tail = prev;
                q->done_next = NULL;
                g->n_inflight--;
            }
            p->state = SC_GEM_IDLE;
            return call->status;
        }
        /* a finished call of someone else must not make step spin: wait on the network */
        {
            int busy = g->done_head != NULL;
            sc_gem_priv_t *saved_head = g->done_head, *saved_tail = g->done_tail;
            if (busy)
                g->done_head = g->done_tail = NULL;
            st = sc_gemini_step(g, 1000);
            if (busy) {
                /* put the earlier finished calls back in front, in order */
                saved_tail->done_next = g->done_head;
                if (!g->done_head)
                    g->done_tail = saved_tail;
                g->done_head = saved_head;
            }
        }
        if (st != SC_OK)
            return st;
    }
}

/* ---- probe ---- */

sc_status_t sc_gemini_probe(const char *base_url, long timeout_ms, char *errbuf, size_t errlen)
{
    sc_status_t st = SC_ERR_UPSTREAM_TRANSPORT;
    char cerr[CURL_ERROR_SIZE] = "";
    char *host = NULL;
    CURLU *u = NULL;
    CURL *e = NULL;
    CURLcode rc;

    if (!base_url || !(sc_gemini_has_prefix(base_url, "http://") ||
                       sc_gemini_has_prefix(base_url, "https://"))) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "gemini probe: base_url must start with http:// or https://");
        return SC_ERR_INVALID_ARG;
    }
    if (sc_gemini_global_init() != 0) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "gemini probe: curl_global_init failed");
        return SC_ERR_IO;
    }
    if (timeout_ms < 1)
        timeout_ms = 1;
    u = curl_url();
    if (u && curl_url_set(u, CURLUPART_URL, base_url, 0) == CURLUE_OK)
        curl_url_get(u, CURLUPART_HOST, &host, 0);
    e = curl_easy_init();
    if (!e) {
        snprintf(cerr, sizeof(cerr), "curl_easy_init failed");
        goto out;
    }
    curl_easy_setopt(e, CURLOPT_URL, base_url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
    rc = curl_easy_perform(e);
    if (rc == CURLE_OK)
        st = SC_OK;
    else if (!cerr[0])
        snprintf(cerr, sizeof(cerr), "%s", curl_easy_strerror(rc));

out:
    if (st != SC_OK && errbuf && errlen)
        snprintf(errbuf, errlen, "gemini probe %s: %s", host ? host : "?", cerr);
    curl_easy_cleanup(e);
    curl_free(host);
    curl_url_cleanup(u);
    return st;
}
