/* gemini.c - the Gemini generateContent client: one libcurl multi handle, the call lifecycle,
 * retries with backoff on a timer list, submit / poll / sync and the connect probe
 * (gemini-api.md §1, §6). Request bodies: request.c; parsing: response.c; limits: limits.c. */
#include "host/gemini/gemini.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "host/core/log.h"
#include "host/core/util.h"
#include "host/gemini/gemini_internal.h"

#ifndef SCRIMP_VERSION
#define SCRIMP_VERSION "dev"
#endif

/* ---- limits ---- */

#define SC_GEMINI_BODY_MAX ((size_t)64 * 1024 * 1024) /* one response body */
#define SC_GEMINI_BODY_INITIAL ((size_t)16 * 1024)    /* first allocation of a response */
#define SC_GEMINI_URL_MAX 1024                         /* a whole request URL */
#define SC_GEMINI_KEY_MAX 512                          /* api_key length */
#define SC_GEMINI_HEADER_MAX (SC_GEMINI_KEY_MAX + 32)  /* "x-goog-api-key: KEY" */
#define SC_GEMINI_LOGMSG_MAX 160                       /* error text quoted in a log line */
#define SC_GEMINI_INFLIGHT_LIMIT 65536                 /* upper bound accepted for max_inflight */
#define SC_GEMINI_ATTEMPTS_LIMIT 100                   /* upper bound accepted for max_attempts */
#define SC_GEMINI_CAUSE_MAX (CURL_ERROR_SIZE + 128)    /* a failed attempt's cause, in words */
#define SC_GEMINI_FINAL_MAX (SC_GEMINI_CAUSE_MAX + 160) /* the cause with how the call ended */

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
#define SC_GEMINI_BREAKER_FAILURES_LIMIT 1000000     /* upper bound accepted for breaker_failures */
#define SC_GEMINI_BREAKER_COOLDOWN_LIMIT_MS 3600000L /* upper bound for both cooldowns */

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

/* A model id goes into the URL path: allow only the characters model ids use. */
int sc_gemini_model_ok(const char *model)
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

/* The cause of a failed transfer (p->easy not yet reset) into buf, in words a reader of the
 * result understands, with curl's own message: a connection closed or reset before any answer,
 * a body cut short (how much of it came), an attempt out of time. */
static void sc_gemini_transport_cause(const sc_gem_priv_t *p, CURLcode rc, char *buf, size_t len)
{
    const char *msg = p->curl_err[0] ? p->curl_err : curl_easy_strerror(rc);
    curl_off_t got = -1, want = -1;

    switch (rc) {
    case CURLE_GOT_NOTHING:
        snprintf(buf, len, "connection reset / empty reply (%s)", msg);
        break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        snprintf(buf, len, "connection reset / broken (%s)", msg);
        break;
    case CURLE_PARTIAL_FILE:
        curl_easy_getinfo(p->easy, CURLINFO_SIZE_DOWNLOAD_T, &got);
        curl_easy_getinfo(p->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &want);
        if (got >= 0 && want >= 0)
            snprintf(buf, len, "body truncated: got %lld of %lld bytes (%s)", (long long)got,
                     (long long)want, msg);
        else
            snprintf(buf, len, "body truncated (%s)", msg);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(buf, len, "attempt timed out (%s)", msg);
        break;
    default:
        snprintf(buf, len, "%s", msg);
        break;
    }
}

/* Put how the call ended (what) before the last attempt's error in err_message, so that a
 * deadline names both: "deadline passed during attempt 2; last error: body truncated: …". */
void sc_gemini_err_ended(sc_gemini_call_t *call, const char *what)
{
    char msg[SC_GEMINI_FINAL_MAX], status[sizeof(call->err_status)];

    sc_strlcpy(status, call->err_status, sizeof(status)); /* set_err copies into err_status */
    if (call->err_message && call->err_message[0])
        snprintf(msg, sizeof(msg), "%s; last error: %s", what, call->err_message);
    else
        snprintf(msg, sizeof(msg), "%s", what);
    sc_gemini_set_err(call, status, msg);
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
void sc_gemini_enqueue(sc_gem_priv_t *p)
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
void sc_gemini_dequeue(sc_gem_priv_t *p)
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
void sc_gemini_finish(sc_gemini_t *g, sc_gem_priv_t *p, sc_status_t st)
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

/* ---- retries and backoff ---- */

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
        char what[SC_GEMINI_LOGMSG_MAX];
        snprintf(what, sizeof(what),
                 "deadline too close for attempt %d (retry in %ld ms, %lld ms left)",
                 call->attempts + 1, delay, (long long)(call->deadline_ms - now));
        sc_gemini_err_ended(call, what);
        sc_gemini_finish(g, p, SC_ERR_DEADLINE);
        return;
    }
    p->due_ms = now + delay;
    p->state = SC_GEM_WAITING;
    {
        char msg[SC_GEMINI_LOGMSG_MAX];
        sc_gemini_log_value(msg, sizeof(msg), call->err_message);
        sc_debug("gemini.retry", "model=%s http=%ld status=%s attempt=%d delay_ms=%ld cause=\"%s\"",
                 call->model, call->http_status, call->err_status[0] ? call->err_status : "-",
                 call->attempts, delay, msg);
    }
}

/* ---- attempts ---- */

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

/* Start one attempt: set up an easy handle and add it to the multi handle. On failure the call
 * is finished. */
void sc_gemini_start_attempt(sc_gemini_t *g, sc_gem_priv_t *p)
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
            char what[SC_GEMINI_LOGMSG_MAX];
            snprintf(what, sizeof(what), "deadline passed before attempt %d", call->attempts + 1);
            sc_gemini_err_ended(call, what);
            sc_gemini_finish(g, p, SC_ERR_DEADLINE);
            return;
        }
        if (left < timeout)
            timeout = (long)left;
    }
    p->deadline_capped = call->deadline_ms > 0 && timeout < g->opts.request_timeout_ms;
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

/* ---- the multi loop ---- */

/* One attempt ended (curl says DONE): decide success, retry or final failure. */
static void sc_gemini_attempt_done(sc_gemini_t *g, sc_gem_priv_t *p, CURLcode rc)
{
    sc_gemini_call_t *call = p->call;
    sc_gem_model_t *m = p->model;
    int64_t now = sc_now_ms();
    long http = 0;
    CURL *e = p->easy;
    char cause[SC_GEMINI_CAUSE_MAX] = "";

    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http);
    if (rc != CURLE_OK) /* before the handle goes back to the pool */
        sc_gemini_transport_cause(p, rc, cause, sizeof(cause));
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
    /* Any transfer error, an empty reply or a body cut short (curl checks Content-Length and
     * the chunked framing) included, is decided here: a partial body is never parsed, even when
     * a prefix of it happens to be JSON. */
    if (rc != CURLE_OK) {
        call->http_status = 0;
        sc_gemini_set_err(call, "", cause);
        /* a timeout set from the deadline is the deadline, whatever a millisecond clock says
         * when it fires (curl times the transfer with its own) */
        if (call->deadline_ms > 0 && (sc_now_ms() >= call->deadline_ms ||
                                      (rc == CURLE_OPERATION_TIMEDOUT && p->deadline_capped))) {
            char what[SC_GEMINI_LOGMSG_MAX];
            snprintf(what, sizeof(what), "deadline passed during attempt %d", call->attempts);
            sc_gemini_err_ended(call, what);
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
                sc_gemini_err_ended(p->call, sc_gemini_hold_reason(p->model, p, now));
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
