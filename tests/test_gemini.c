/* test_gemini.c - the Gemini client against the in-process simulator (retries, faults,
 * deadlines, concurrency, per-model limits, 429 throttling, circuit breaker) and against a
 * canned-response server (response parsing edge cases). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "host/gemini/batch.h"
#include "host/gemini/gemini.h"
#include "host/gemini/sim.h"
#include "host/core/log.h"
#include "host/core/util.h"

#define TEST_KEY "test-key-123"
#define TEST_MODEL "gemini-2.5-flash"
#define POLL_MS 100
#define TEST_WAIT_MAX_MS 30000 /* no test waits longer than this for calls to finish */
#define N_CONCURRENT 64
#define STORM_CALLS 300      /* calls per batch of the 429-storm test */
#define BATCH_INFLIGHT 512   /* max_inflight of the clients that submit whole batches */
#define TIMING_SLACK_MS 20   /* clock truncation and scheduling, subtracted from lower bounds */

/* ---- helpers ---- */

typedef struct {
    sc_gemini_sim_t *sim;
    char url[64];
} sim_t;

/* Start a simulator on port (0: any free one) with threads HTTP workers (0: its default). */
static void sim_start_on(sim_t *s, const char *faults, int port, unsigned threads)
{
    char err[256] = "";
    sc_gemini_sim_opts_t so = {0};
    so.port = port;
    so.api_key = TEST_KEY;
    so.faults = faults;
    so.threads = threads;
    sc_status_t st = sc_gemini_sim_start(&so, &s->sim, err, sizeof(err));
    if (st != SC_OK)
        fail_msg("sim start: %s", err);
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", sc_gemini_sim_port(s->sim));
}

static void sim_start(sim_t *s, const char *faults)
{
    sim_start_on(s, faults, 0, 0);
}

static void client_opts(sc_gemini_opts_t *o, const char *url, long backoff_ms, int max_attempts)
{
    sc_gemini_opts_default(o);
    o->base_url = url;
    o->api_key = TEST_KEY;
    o->backoff_initial_ms = backoff_ms;
    o->backoff_jitter_ms = backoff_ms / 10;
    o->max_attempts = max_attempts;
    o->connect_timeout_ms = 2000;
    o->request_timeout_ms = 10000;
}

static sc_gemini_t *client_from(const sc_gemini_opts_t *o)
{
    char err[256] = "";
    sc_gemini_t *g = NULL;
    if (sc_gemini_new(o, &g, err, sizeof(err)) != SC_OK)
        fail_msg("client: %s", err);
    return g;
}

static sc_gemini_t *client_new(const char *url, long backoff_ms, int max_attempts)
{
    sc_gemini_opts_t o;
    client_opts(&o, url, backoff_ms, max_attempts);
    return client_from(&o);
}

/* A generateContent body with one user turn. @remark the caller owns the result (free()). */
static char *body_text(const char *text, long max_tokens, size_t *len)
{
    json_t *root = json_pack("{s:[{s:s, s:[{s:s}]}]}", "contents", "role", "user", "parts",
                             "text", text); /* new */
    assert_non_null(root);
    if (max_tokens > 0)
        json_object_set_new(root, "generationConfig",
                            json_pack("{s:I}", "maxOutputTokens", (json_int_t)max_tokens));
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    assert_non_null(s);
    *len = strlen(s);
    return s;
}

static sc_gemini_call_t *call_make(const char *model, const char *text, long max_tokens)
{
    size_t len = 0;
    char *b = body_text(text, max_tokens, &len);
    sc_gemini_call_t *c = sc_gemini_call_new(model, b, len);
    assert_non_null(c);
    return c;
}

/* A loopback port with nothing listening: the socket is bound (so no one else takes the port)
 * but never listens, so connects are refused. */
static int refused_port(int *fd_out)
{
    struct sockaddr_in a = {0};
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *fd_out = fd;
    return ntohs(a.sin_port);
}

/* ---- canned server: answers with a scripted list of (status, body) ---- */

#define CANNED_MAX 8

typedef struct {
    pthread_mutex_t mu;
    int n;
    long status[CANNED_MAX];
    const char *body[CANNED_MAX];
    int hits;
    char last_url[256];
    char last_key[128];
    char last_ctype[64];
    struct MHD_Daemon *d;
    char url[64];
} canned_t;

static canned_t canned = {.mu = PTHREAD_MUTEX_INITIALIZER};

static enum MHD_Result canned_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload, size_t *upload_size, void **con_cls)
{
    static int marker;
    (void)cls, (void)method, (void)version, (void)upload;
    if (*con_cls == NULL) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&canned.mu);
    int i = canned.hits < canned.n ? canned.hits : canned.n - 1;
    canned.hits++;
    const char *k = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-goog-api-key");
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    const char *q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "key");
    sc_strlcpy(canned.last_url, url, sizeof(canned.last_url));
    sc_strlcpy(canned.last_key, k ? k : "", sizeof(canned.last_key));
    sc_strlcpy(canned.last_ctype, ct ? ct : "", sizeof(canned.last_ctype));
    if (q)
        sc_strlcpy(canned.last_url, "KEY-IN-QUERY", sizeof(canned.last_url));
    long status = canned.status[i];
    const char *body = canned.body[i];
    pthread_mutex_unlock(&canned.mu);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Script the canned server: n pairs of (long status, const char *body). */
static void canned_script(int n, ...)
{
    va_list ap;
    va_start(ap, n);
    pthread_mutex_lock(&canned.mu);
    canned.n = n;
    canned.hits = 0;
    for (int i = 0; i < n && i < CANNED_MAX; i++) {
        canned.status[i] = va_arg(ap, long);
        canned.body[i] = va_arg(ap, const char *);
    }
    pthread_mutex_unlock(&canned.mu);
    va_end(ap);
}

static int canned_setup(void **state)
{
    struct sockaddr_in a = {0};
    (void)state;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    canned.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, canned_handler,
                                NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
                                MHD_OPTION_END);
    if (!canned.d)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(canned.d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(canned.url, sizeof(canned.url), "http://127.0.0.1:%u", (unsigned)info->port);
    return 0;
}

static int canned_teardown(void **state)
{
    (void)state;
    MHD_stop_daemon(canned.d);
    canned.d = NULL;
    return 0;
}

/* ---- simulator tests ---- */

static void test_success(void **state)
{
    (void)state;
    sim_t s;
    sim_start(&s, NULL);
    sc_gemini_t *g = client_new(s.url, 10, 5);
    sc_gemini_call_t *c = call_make(TEST_MODEL, "What is the capital of France?", 0);
    assert_int_equal(sc_gemini_call_sync(g, c), SC_OK);
    assert_int_equal(c->status, SC_OK);
    assert_int_equal(c->http_status, 200);
    assert_int_equal(c->attempts, 1);
    assert_non_null(c->text);
    assert_true(strlen(c->text) > 0);
    assert_true(c->usage.prompt_tokens > 0);
    assert_true(c->usage.output_tokens > 0);
    assert_non_null(c->model_version);
    assert_non_null(strstr(c->model_version, "gemini-2.5-flash"));
    assert_non_null(c->finish_reason);
    assert_true(c->finished_ms >= c->started_ms);
    assert_int_equal(sc_gemini_inflight(g), 0);
    sc_gemini_call_free(c);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

typedef struct {
    int done, ok;
    sc_gemini_call_t *calls[N_CONCURRENT];
} collect_t;

static void collect_cb(sc_gemini_call_t *call, void *arg)
{
    collect_t *col = arg;
    col->done++;
    if (call->status == SC_OK && call->text && call->text[0] && call->attempts == 1)
        col->ok++;
    col->calls[(intptr_t)call->opaque] = call;
}

static void poll_until(sc_gemini_t *g, collect_t *col, int want)
{
    int64_t t0 = sc_now_ms();
    while (col->done < want) {
        assert_int_equal(sc_gemini_poll(g, POLL_MS, collect_cb, col), SC_OK);
        assert_true(sc_now_ms() - t0 < TEST_WAIT_MAX_MS);
    }
}

static void test_concurrent(void **state)
{
    (void)state;
    sim_t s;
    sim_start(&s, NULL);
    sc_gemini_t *g = client_new(s.url, 10, 5);
    collect_t col = {0};
    for (int i = 0; i < N_CONCURRENT; i++) {
        char text[64];
        snprintf(text, sizeof(text), "question number %d", i);
        sc_gemini_call_t *c = call_make(i % 2 ? "gemini-2.5-flash-lite" : TEST_MODEL, text, 0);
        c->opaque = (void *)(intptr_t)i;
        assert_int_equal(sc_gemini_submit(g, c), SC_OK);
    }
    assert_int_equal(sc_gemini_inflight(g), N_CONCURRENT);
    poll_until(g, &col, N_CONCURRENT);
    assert_int_equal(col.done, N_CONCURRENT);
    assert_int_equal(col.ok, N_CONCURRENT);
    assert_int_equal(sc_gemini_inflight(g), 0);
    for (int i = 0; i < N_CONCURRENT; i++)
        sc_gemini_call_free(col.calls[i]);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_reject_400(void **state)
{
    (void)state;
    sim_t s;
    sim_start(&s, NULL);
    sc_gemini_t *g = client_new(s.url, 10, 5);
    sc_gemini_call_t *c = call_make(TEST_MODEL, "too many tokens", 100000);
    assert_int_equal(sc_gemini_call_sync(g, c), SC_ERR_UPSTREAM_REJECTED);
    assert_int_equal(c->http_status, 400);
    assert_int_equal(c->attempts, 1);
    assert_string_equal(c->err_status, "INVALID_ARGUMENT");
    assert_non_null(c->err_message);
    sc_gemini_call_free(c);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_reject_404(void **state)
{
    (void)state;
    sim_t s;
    sim_start(&s, NULL);
    sc_gemini_t *g = client_new(s.url, 10, 5);
    sc_gemini_call_t *c = call_make("gemini-9.9-nonexistent", "hello", 0);
    assert_int_equal(sc_gemini_call_sync(g, c), SC_ERR_UPSTREAM_REJECTED);
    assert_int_equal(c->http_status, 404);
    assert_int_equal(c->attempts, 1);
    assert_string_equal(c->err_status, "NOT_FOUND");
    sc_gemini_call_free(c);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_reject_403_no_key(void **state)
{
    (void)state;
    sim_t s;
    sc_gemini_opts_t o;
    char err[128];
    sc_gemini_t *g = NULL;
    sim_start(&s, NULL);
    sc_gemini_opts_default(&o);
    o.base_url = s.url; /* no api_key */
    assert_int_equal(sc_gemini_new(&o, &g, err, sizeof(err)), SC_OK);
    sc_gemini_call_t *c = call_make(TEST_MODEL, "hello", 0);
    assert_int_equal(sc_gemini_call_sync(g, c), SC_ERR_UPSTREAM_REJECTED);
    assert_int_equal(c->http_status, 403);
    assert_int_equal(c->attempts, 1);
    sc_gemini_call_free(c);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_429_retry_info(void **state)
{
    (void)state;
    sim_t s;
    sim_start(&s, "429=1,max_per_request=2,retry_delay=0.05s");
    /* default backoff (1 s + up to 1 s jitter): the test would take > 2 s without RetryInfo */
    sc_gemini_t *g = client_new(s.url, 1000, 5);
    sc_gemini_call_t *c = call_make(TEST_MODEL, "rate limited", 0);
    int64_t t0 = sc_now_ms();
    assert_int_equal(sc_gemini_call_sync(g, c), SC_OK);
    int64_t took = sc_now_ms() - t0;
    assert_int_equal(c->attempts, 3);
    assert_true(took >= 100);
    assert_true(took < 900);
    assert_true(strlen(c->text) > 0);
    sc_gemini_call_free(c);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_503_then_ok(void **state)
{
    (void)state;
    sim_t s;
    sim_start(&s, "503=1,max_per_request=2");
    sc_gemini_t *g = client_new(s.url, 10, 5);
    sc_gemini_call_t *c = call_make(TEST_MODEL, "unavailable twice", 0);
    assert_int_equal(sc_gemini_call_sync(g, c), SC_OK);
    assert_int_equal(c->attempts, 3);
    assert_int_equal(c->http_status, 200);
    assert_true(strlen(c->text) > 0);
    sc_gemini_call_free(c);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_503_exhausted(void **state)
{
    (void)state;
    sim_t s;
    sim_start(&s, "503=1,max_per_request=100");
    sc_gemini_t *g = client_new(s.url, 10, 3);
    sc_gemini_call_t *c = call_make(TEST_MODEL, "always unavailable", 0);
    assert_int_equal(sc_gemini_call_sync(g, c), SC_ERR_UPSTREAM_RETRYABLE);
    assert_int_equal(c->attempts, 3);
    assert_int_equal(c->http_status, 503);
    assert_string_equal(c->err_status, "UNAVAILABLE");
    sc_gemini_call_free(c);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_conn_refused(void **state)
{
    (void)state;
    int fd;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", refused_port(&fd));
    sc_gemini_t *g = client_new(url, 10, 3);
    sc_gemini_call_t *c = call_make(TEST_MODEL, "hello", 0);
    int64_t t0 = sc_now_ms();
    assert_int_equal(sc_gemini_call_sync(g, c), SC_ERR_UPSTREAM_TRANSPORT);
    assert_true(sc_now_ms() - t0 < 2000);
    assert_int_equal(c->attempts, 3);
    assert_int_equal(c->http_status, 0);
    assert_non_null(c->err_message);
    sc_gemini_call_free(c);
    sc_gemini_free(g);
    close(fd);
}

static void test_deadline(void **state)
{
    (void)state;
    sim_t s;
    sim_start(&s, "503=1,max_per_request=100");
    sc_gemini_t *g = client_new(s.url, 2000, 5); /* retry delay 2 s > the 300 ms deadline */
    sc_gemini_call_t *c = call_make(TEST_MODEL, "deadline", 0);
    int64_t t0 = sc_now_ms();
    c->deadline_ms = t0 + 300;
    assert_int_equal(sc_gemini_call_sync(g, c), SC_ERR_DEADLINE);
    assert_true(sc_now_ms() - t0 < 1000); /* given up at once, not after sleeping */
    assert_int_equal(c->attempts, 1);
    sc_gemini_call_free(c);

    /* a deadline already passed: no attempt at all */
    c = call_make(TEST_MODEL, "late", 0);
    c->deadline_ms = sc_now_ms() - 1;
    assert_int_equal(sc_gemini_call_sync(g, c), SC_ERR_DEADLINE);
    assert_int_equal(c->attempts, 0);
    sc_gemini_call_free(c);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_malformed(void **state)
{
    (void)state;
    sim_t s;
    sim_start(&s, "malformed=1,max_per_request=1");
    sc_gemini_t *g = client_new(s.url, 10, 5);
    sc_gemini_call_t *c = call_make(TEST_MODEL, "malformed once", 0);
    assert_int_equal(sc_gemini_call_sync(g, c), SC_OK);
    assert_int_equal(c->attempts, 2);
    assert_true(strlen(c->text) > 0);
    sc_gemini_call_free(c);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_full(void **state)
{
    (void)state;
    sim_t s;
    sc_gemini_opts_t o;
    char err[128];
    sc_gemini_t *g = NULL;
    collect_t col = {0};
    sim_start(&s, NULL);
    sc_gemini_opts_default(&o);
    o.base_url = s.url;
    o.api_key = TEST_KEY;
    o.max_inflight = 2;
    assert_int_equal(sc_gemini_new(&o, &g, err, sizeof(err)), SC_OK);
    sc_gemini_call_t *c0 = call_make(TEST_MODEL, "one", 0);
    sc_gemini_call_t *c1 = call_make(TEST_MODEL, "two", 0);
    sc_gemini_call_t *c2 = call_make(TEST_MODEL, "three", 0);
    c0->opaque = (void *)(intptr_t)0;
    c1->opaque = (void *)(intptr_t)1;
    c2->opaque = (void *)(intptr_t)2;
    assert_int_equal(sc_gemini_submit(g, c0), SC_OK);
    assert_int_equal(sc_gemini_submit(g, c1), SC_OK);
    assert_int_equal(sc_gemini_submit(g, c2), SC_ERR_FULL);
    assert_int_equal(sc_gemini_inflight(g), 2);
    poll_until(g, &col, 2);
    assert_int_equal(sc_gemini_submit(g, c2), SC_OK); /* room again */
    poll_until(g, &col, 3);
    assert_int_equal(col.ok, 3);
    for (int i = 0; i < 3; i++)
        sc_gemini_call_free(col.calls[i]);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_free_with_inflight(void **state)
{
    (void)state;
    sim_t s;
    sim_start(&s, "delay=1,delay_ms=2000");
    sc_gemini_t *g = client_new(s.url, 10, 5);
    for (int i = 0; i < 4; i++)
        assert_int_equal(sc_gemini_submit(g, call_make(TEST_MODEL, "slow", 0)), SC_OK);
    collect_t col = {0};
    assert_int_equal(sc_gemini_poll(g, 50, collect_cb, &col), SC_OK);
    assert_int_equal(col.done, 0);
    assert_int_equal(sc_gemini_inflight(g), 4);
    sc_gemini_free(g); /* aborts and frees them (checked for leaks under ASan) */
    sc_gemini_sim_stop(s.sim);
}

static void *wake_thread(void *arg)
{
    usleep(50 * 1000);
    sc_gemini_wakeup(arg);
    return NULL;
}

static void test_wakeup(void **state)
{
    (void)state;
    sc_gemini_t *g = client_new("http://127.0.0.1:1", 10, 1);
    collect_t col = {0};
    pthread_t th;
    int64_t t0 = sc_now_ms();
    assert_int_equal(pthread_create(&th, NULL, wake_thread, g), 0);
    assert_int_equal(sc_gemini_poll(g, 5000, collect_cb, &col), SC_OK);
    assert_true(sc_now_ms() - t0 < 2500);
    pthread_join(th, NULL);
    sc_gemini_free(g);
}

static void test_probe(void **state)
{
    (void)state;
    sim_t s;
    char err[256] = "";
    int fd;
    char url[64];
    sim_start(&s, NULL);
    assert_int_equal(sc_gemini_probe(s.url, 2000, err, sizeof(err)), SC_OK);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", refused_port(&fd));
    assert_int_equal(sc_gemini_probe(url, 2000, err, sizeof(err)), SC_ERR_UPSTREAM_TRANSPORT);
    assert_non_null(strstr(err, "127.0.0.1"));
    close(fd);
    assert_int_equal(sc_gemini_probe("ftp://x", 100, err, sizeof(err)), SC_ERR_INVALID_ARG);
    sc_gemini_sim_stop(s.sim);
}

/* ---- per-model limits, 429 throttling, breaker ---- */

typedef struct {
    int done, ok, deadline, other;
    int min_attempts, max_attempts;
    int64_t last_done_ms;
} batch_t;

/* Counts a finished call and frees it. */
static void batch_cb(sc_gemini_call_t *call, void *arg)
{
    batch_t *b = arg;
    b->done++;
    if (call->status == SC_OK && call->text && call->text[0])
        b->ok++;
    else if (call->status == SC_ERR_DEADLINE)
        b->deadline++;
    else
        b->other++;
    if (b->done == 1 || call->attempts < b->min_attempts)
        b->min_attempts = call->attempts;
    if (call->attempts > b->max_attempts)
        b->max_attempts = call->attempts;
    b->last_done_ms = sc_now_ms();
    sc_gemini_call_free(call);
}

/* What the model's stats showed between polls while a batch ran. */
typedef struct {
    int max_running, max_waiting, breaker_seen;
    double min_rate;
} watch_t;

/*
 * Submit n calls of model at once (texts "<tag> <i>", est_tokens each, deadline_ms absolute or
 * 0) and poll until all are back. Returns the ms from the first submit to the last call back.
 */
static int64_t run_batch(sc_gemini_t *g, const char *model, const char *tag, int n,
                         long est_tokens, int64_t deadline_ms, batch_t *b, watch_t *w)
{
    int64_t t0 = sc_now_ms();
    memset(b, 0, sizeof(*b));
    if (w)
        memset(w, 0, sizeof(*w));
    for (int i = 0; i < n; i++) {
        char text[96];
        snprintf(text, sizeof(text), "%s question %d", tag, i);
        sc_gemini_call_t *c = call_make(model, text, 0);
        c->est_tokens = est_tokens;
        c->deadline_ms = deadline_ms;
        assert_int_equal(sc_gemini_submit(g, c), SC_OK);
    }
    while (b->done < n) {
        sc_gemini_model_stats_t st;
        assert_int_equal(sc_gemini_poll(g, POLL_MS, batch_cb, b), SC_OK);
        sc_gemini_model_stats(g, model, &st);
        if (w) {
            if (st.running > w->max_running)
                w->max_running = st.running;
            if (st.waiting > w->max_waiting)
                w->max_waiting = st.waiting;
            w->breaker_seen |= st.breaker_open;
            if (st.rate_rpm_now > 0 && (w->min_rate == 0 || st.rate_rpm_now < w->min_rate))
                w->min_rate = st.rate_rpm_now;
        }
        assert_true(st.running + st.waiting <= sc_gemini_inflight(g));
        assert_true(sc_now_ms() - t0 < TEST_WAIT_MAX_MS);
    }
    assert_int_equal(sc_gemini_inflight(g), 0);
    return b->last_done_ms - t0;
}

static void test_limit_rpm(void **state)
{
    (void)state;
    sim_t s;
    batch_t b;
    watch_t w;
    sc_gemini_model_stats_t st;
    const sc_gemini_limits_t lim = {.rpm = 1200}; /* 20/s, a burst of 20 */
    const int n = 44;
    sim_start(&s, NULL);
    sc_gemini_t *g = client_new(s.url, 10, 5);
    assert_int_equal(sc_gemini_set_model_limits(g, TEST_MODEL, &lim), SC_OK);
    int64_t took = run_batch(g, TEST_MODEL, "rpm", n, 0, 0, &b, &w);
    assert_int_equal(b.ok, n);
    /* the burst goes at once, the other 24 one per 50 ms: the last starts >= 1200 ms in */
    assert_true(took >= (n - 20) * 50 - TIMING_SLACK_MS);
    assert_true(w.max_waiting > 0);
    sc_gemini_model_stats(g, TEST_MODEL, &st);
    assert_int_equal(st.requests_started, n);
    assert_true(st.rate_rpm_now > 1199 && st.rate_rpm_now < 1201);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.running, 0);
    /* another model is not limited by this one's bucket */
    took = run_batch(g, "gemini-2.5-flash-lite", "other", n, 0, 0, &b, NULL);
    assert_int_equal(b.ok, n);
    assert_true(took < 1000);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_limit_tpm(void **state)
{
    (void)state;
    sim_t s;
    batch_t b;
    const sc_gemini_limits_t lim = {.tpm = 240000}; /* 4000 tokens/s, a burst of 4000 */
    sim_start(&s, NULL);
    sc_gemini_t *g = client_new(s.url, 10, 5);
    assert_int_equal(sc_gemini_set_model_limits(g, TEST_MODEL, &lim), SC_OK);
    /* 12 calls of 500 tokens: 8 at once, then one per 125 ms */
    int64_t took = run_batch(g, TEST_MODEL, "tpm", 12, 500, 0, &b, NULL);
    assert_int_equal(b.ok, 12);
    assert_true(took >= 4 * 125 - TIMING_SLACK_MS);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_limit_concurrency(void **state)
{
    (void)state;
    sim_t s;
    batch_t b;
    watch_t w;
    const sc_gemini_limits_t lim = {.max_concurrency = 2};
    const int n = 10;
    sim_start_on(&s, "delay=1,delay_ms=100", 0, 16); /* more sim workers than the cap */
    sc_gemini_t *g = client_new(s.url, 10, 5);
    assert_int_equal(sc_gemini_set_model_limits(g, TEST_MODEL, &lim), SC_OK);
    int64_t took = run_batch(g, TEST_MODEL, "conc", n, 0, 0, &b, &w);
    assert_int_equal(b.ok, n);
    assert_true(took >= (n / 2) * 100 - TIMING_SLACK_MS); /* 5 rounds of 100 ms */
    assert_true(w.max_running <= 2);
    assert_true(w.max_waiting > 0);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_limit_deadline(void **state)
{
    (void)state;
    sim_t s;
    batch_t b;
    const sc_gemini_limits_t lim = {.rpm = 30}; /* one call now, the next in two seconds */
    sim_start(&s, NULL);
    sc_gemini_t *g = client_new(s.url, 10, 5);
    assert_int_equal(sc_gemini_set_model_limits(g, TEST_MODEL, &lim), SC_OK);
    int64_t t0 = sc_now_ms();
    int64_t took = run_batch(g, TEST_MODEL, "deadline", 3, 0, t0 + 300, &b, NULL);
    assert_int_equal(b.ok, 1);
    assert_int_equal(b.deadline, 2);
    assert_int_equal(b.min_attempts, 0); /* never sent */
    assert_true(took >= 300 - TIMING_SLACK_MS);
    assert_true(took < 1500); /* ended at the deadline, not when the bucket refilled */
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

/* Poll an idle client until model's adaptive limit is gone (stats show no limit, no pause). */
static void wait_unthrottled(sc_gemini_t *g, const char *model)
{
    int64_t t0 = sc_now_ms();
    batch_t none = {0};
    for (;;) {
        sc_gemini_model_stats_t st;
        sc_gemini_model_stats(g, model, &st);
        if (st.rate_rpm_now == 0 && st.pause_ms_left == 0)
            return;
        assert_int_equal(sc_gemini_poll(g, POLL_MS, batch_cb, &none), SC_OK);
        assert_true(sc_now_ms() - t0 < TEST_WAIT_MAX_MS);
    }
}

static void test_429_storm(void **state)
{
    (void)state;
    sim_t s;
    batch_t b;
    watch_t w;
    sc_gemini_opts_t o;
    sc_gemini_model_stats_t st;
    sim_start(&s, NULL);
    int port = sc_gemini_sim_port(s.sim);
    client_opts(&o, s.url, 10, 6);
    o.max_inflight = BATCH_INFLIGHT;
    sc_gemini_t *g = client_from(&o);

    int64_t base = run_batch(g, TEST_MODEL, "baseline", STORM_CALLS, 0, 0, &b, NULL);
    assert_int_equal(b.ok, STORM_CALLS);
    sc_gemini_sim_stop(s.sim);

    /* the storm: half the requests answered 429 (RetryInfo 50 ms), each body at most 3 times */
    sim_start_on(&s, "429=0.5,max_per_request=3,retry_delay=0.05s,seed=11", port, 0);
    int64_t storm = run_batch(g, TEST_MODEL, "storm", STORM_CALLS, 0, 0, &b, &w);
    assert_int_equal(b.ok, STORM_CALLS);
    assert_true(b.max_attempts <= 4);
    sc_gemini_model_stats(g, TEST_MODEL, &st);
    assert_true(st.throttled_429 > 0);
    assert_true(st.rate_rpm_min > 0); /* the adaptive limit engaged */
    assert_true(st.rate_rpm_min < STORM_CALLS * 60.0);
    assert_int_equal(st.breaker_opens, 0); /* 429s are not breaker failures */
    sc_gemini_sim_stop(s.sim);

    /* the storm is over: the limit lifts after the quiet period and full speed returns */
    sim_start_on(&s, NULL, port, 0);
    wait_unthrottled(g, TEST_MODEL);
    int64_t after = run_batch(g, TEST_MODEL, "after", STORM_CALLS, 0, 0, &b, NULL);
    assert_int_equal(b.ok, STORM_CALLS);
    printf("    429 storm: baseline %lld ms, storm %lld ms (429s %llu, lowest rate %.0f rpm), "
           "after %lld ms\n",
           (long long)base, (long long)storm, (unsigned long long)st.throttled_429,
           st.rate_rpm_min, (long long)after);
    assert_true(after <= 2 * base + 500); /* still throttled, 300 calls would take > 1 s */
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_429_pause_model_wide(void **state)
{
    (void)state;
    sim_t s;
    batch_t b;
    sc_gemini_model_stats_t st;
    /* every body fails once with RetryInfo 300 ms: the whole model waits, not just that call */
    sim_start(&s, "429=1,max_per_request=1,retry_delay=0.3s");
    sc_gemini_t *g = client_new(s.url, 10, 3);
    int64_t took = run_batch(g, TEST_MODEL, "pause", 4, 0, 0, &b, NULL);
    assert_int_equal(b.ok, 4);
    assert_true(took >= 300 - TIMING_SLACK_MS);
    sc_gemini_model_stats(g, TEST_MODEL, &st);
    assert_int_equal(st.throttled_429, 4);
    assert_int_equal(st.rate_rpm_now, 0); /* a few calls: the pause alone answers */
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_breaker(void **state)
{
    (void)state;
    sim_t s;
    batch_t b;
    watch_t w;
    sc_gemini_opts_t o;
    sc_gemini_model_stats_t st;
    /* every body answers 503 twice, then 200 */
    sim_start(&s, "503=1,max_per_request=2");
    client_opts(&o, s.url, 10, 6);
    o.breaker_failures = 3;
    o.breaker_cooldown_ms = 200;
    o.breaker_max_cooldown_ms = 400;
    sc_gemini_t *g = client_from(&o);
    /*
     * 3 calls fail together: the breaker opens (200 ms). Each later probe is the FIFO's head:
     * the other two bodies still have a 503 left, so probes fail and re-open it with the
     * cooldown doubled and capped (400, 400) until a probe of an exhausted body closes it.
     */
    int64_t took = run_batch(g, TEST_MODEL, "breaker", 3, 0, 0, &b, &w);
    assert_int_equal(b.ok, 3);
    assert_int_equal(b.min_attempts, 3);
    assert_int_equal(b.max_attempts, 3);
    assert_true(w.breaker_seen);
    assert_true(took >= 200 + 400 + 400 + 400 - TIMING_SLACK_MS);
    sc_gemini_model_stats(g, TEST_MODEL, &st);
    assert_int_equal(st.breaker_opens, 4);
    assert_int_equal(st.breaker_open, 0);
    assert_int_equal(st.requests_started, 9);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

static void test_breaker_deadline(void **state)
{
    (void)state;
    sim_t s;
    batch_t b;
    sc_gemini_opts_t o;
    sim_start(&s, "503=1,max_per_request=100");
    client_opts(&o, s.url, 10, 20);
    o.breaker_failures = 2;
    o.breaker_cooldown_ms = 5000;
    sc_gemini_t *g = client_from(&o);
    int64_t took = run_batch(g, TEST_MODEL, "open", 2, 0, sc_now_ms() + 300, &b, NULL);
    assert_int_equal(b.deadline, 2); /* waited behind the open breaker until the deadline */
    assert_int_equal(b.max_attempts, 1);
    assert_true(took >= 300 - TIMING_SLACK_MS);
    assert_true(took < 2000);
    sc_gemini_free(g);
    sc_gemini_sim_stop(s.sim);
}

/* ---- no server ---- */

static void test_opts(void **state)
{
    (void)state;
    sc_gemini_opts_t o;
    char err[256];
    sc_gemini_t *g = NULL;
    sc_gemini_opts_default(&o);
    assert_int_equal(o.connect_timeout_ms, 5000);
    assert_int_equal(o.request_timeout_ms, 60000);
    assert_int_equal(o.max_inflight, 256);
    assert_int_equal(o.max_attempts, 5);
    assert_int_equal(o.backoff_initial_ms, 1000);
    assert_int_equal(o.backoff_max_ms, 60000);
    assert_int_equal(o.backoff_jitter_ms, 1000);
    assert_int_equal(o.http2, 1);
    assert_int_equal(o.seed, 1);
    assert_int_equal(o.breaker_failures, 20);
    assert_int_equal(o.breaker_cooldown_ms, 5000);
    assert_int_equal(o.breaker_max_cooldown_ms, 60000);
    assert_null(o.base_url);
    assert_null(o.api_key);

    err[0] = '\0';
    o.base_url = "generativelanguage.googleapis.com";
    assert_int_equal(sc_gemini_new(&o, &g, err, sizeof(err)), SC_ERR_INVALID_ARG);
    assert_null(g);
    assert_non_null(strstr(err, "base_url"));
    o.base_url = "https://generativelanguage.googleapis.com";
    o.max_attempts = 0;
    assert_int_equal(sc_gemini_new(&o, &g, err, sizeof(err)), SC_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "max_attempts"));
    o.max_attempts = 5;
    o.max_inflight = 0;
    assert_int_equal(sc_gemini_new(&o, &g, err, sizeof(err)), SC_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "max_inflight"));
    o.max_inflight = 4;
    o.breaker_max_cooldown_ms = o.breaker_cooldown_ms - 1;
    assert_int_equal(sc_gemini_new(&o, &g, err, sizeof(err)), SC_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "breaker_max_cooldown_ms"));
    o.breaker_max_cooldown_ms = 60000;
    o.breaker_failures = 0;
    assert_int_equal(sc_gemini_new(&o, &g, err, sizeof(err)), SC_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "breaker_failures"));
    o.breaker_failures = 20;
    o.api_key = "abc\r\nX-Evil: 1";
    assert_int_equal(sc_gemini_new(&o, &g, err, sizeof(err)), SC_ERR_INVALID_ARG);
    o.api_key = "k";
    assert_int_equal(sc_gemini_new(&o, &g, err, sizeof(err)), SC_OK);
    assert_non_null(g);
    /* a model id that would break the URL path is refused at submit */
    sc_gemini_call_t *c = call_make("../evil?x=", "hi", 0);
    assert_int_equal(sc_gemini_submit(g, c), SC_ERR_INVALID_ARG);
    sc_gemini_call_free(c);
    /* limits: bad values and model ids refused; unknown models read as zero */
    sc_gemini_limits_t lim = {.rpm = -1};
    assert_int_equal(sc_gemini_set_model_limits(g, TEST_MODEL, &lim), SC_ERR_INVALID_ARG);
    lim.rpm = 0;
    lim.max_concurrency = -1;
    assert_int_equal(sc_gemini_set_model_limits(g, TEST_MODEL, &lim), SC_ERR_INVALID_ARG);
    lim.max_concurrency = 4;
    assert_int_equal(sc_gemini_set_model_limits(g, "a/b", &lim), SC_ERR_INVALID_ARG);
    assert_int_equal(sc_gemini_set_model_limits(g, TEST_MODEL, &lim), SC_OK);
    assert_int_equal(sc_gemini_set_model_limits(g, TEST_MODEL, NULL), SC_OK); /* cleared */
    sc_gemini_model_stats_t st;
    sc_gemini_model_stats(g, "never-seen", &st);
    assert_int_equal(st.requests_started, 0);
    assert_true(st.rate_rpm_now == 0);
    sc_gemini_free(g);
    sc_gemini_free(NULL);
    sc_gemini_call_free(NULL);

    char too_long[200];
    memset(too_long, 'a', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    assert_null(sc_gemini_call_new(too_long, strdup("{}"), 2)); /* body freed, not leaked */
}

static void test_body_from_request(void **state)
{
    (void)state;
    sc_turn_t turns[3] = {
        {"user", "My router keeps rebooting.", 26},
        {"model", "Which model is it?", 18},
        {"user", "TP-Link \"Archer\" C7", 19},
    };
    sc_request_t req;
    memset(&req, 0, sizeof(req));
    req.system = "Role: Tech Support.";
    req.turns = turns;
    req.n_turns = 3;
    req.has_temperature = 1;
    req.temperature = 0.2;
    req.max_output_tokens = 512;
    req.response_mime_type = "text/plain";

    size_t len = 0;
    char *b = sc_gemini_body_from_request(&req, &len);
    assert_non_null(b);
    assert_int_equal(len, strlen(b));
    json_error_t je;
    json_t *root = json_loadb(b, len, 0, &je); /* new */
    assert_non_null(root);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_object_get(root, "systemInstruction"), "parts"), 0),
            "text")),
        "Role: Tech Support.");
    json_t *contents = json_object_get(root, "contents"); /* borrowed */
    assert_int_equal(json_array_size(contents), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(contents, 1), "role")),
                        "model");
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_array_get(contents, 2), "parts"), 0), "text")),
        "TP-Link \"Archer\" C7");
    json_t *gen = json_object_get(root, "generationConfig"); /* borrowed */
    assert_non_null(gen);
    assert_true(json_real_value(json_object_get(gen, "temperature")) > 0.199 &&
                json_real_value(json_object_get(gen, "temperature")) < 0.201);
    assert_int_equal(json_integer_value(json_object_get(gen, "maxOutputTokens")), 512);
    assert_string_equal(json_string_value(json_object_get(gen, "responseMimeType")), "text/plain");
    assert_null(json_object_get(root, "system_instruction"));
    assert_null(strchr(b, '\n')); /* compact */
    json_decref(root);
    free(b);

    /* bare request: no system, no generationConfig */
    memset(&req, 0, sizeof(req));
    req.turns = turns;
    req.n_turns = 1;
    b = sc_gemini_body_from_request(&req, &len);
    assert_non_null(b);
    assert_string_equal(b, "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":"
                           "\"My router keeps rebooting.\"}]}]}");
    free(b);
}

/* ---- canned-server tests: response and error parsing ---- */

static sc_gemini_call_t *canned_call(sc_gemini_t *g, sc_status_t want)
{
    sc_gemini_call_t *c = call_make(TEST_MODEL, "hello", 0);
    assert_int_equal(sc_gemini_call_sync(g, c), want);
    return c;
}

static void test_parse_thoughts_and_headers(void **state)
{
    (void)state;
    canned_script(1, 200L,
                  "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":["
                  "{\"text\":\"thinking...\",\"thought\":true},{\"text\":\"Hello, \"},"
                  "{\"text\":\"world\",\"thoughtSignature\":\"abc\"}]},\"finishReason\":\"STOP\","
                  "\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":31,"
                  "\"cachedContentTokenCount\":16,\"candidatesTokenCount\":8,"
                  "\"thoughtsTokenCount\":40,\"totalTokenCount\":79},"
                  "\"modelVersion\":\"gemini-2.5-flash-001\",\"responseId\":\"rid-1\","
                  "\"someFutureField\":{\"x\":1}}");
    sc_gemini_t *g = client_new(canned.url, 10, 3);
    sc_gemini_call_t *c = canned_call(g, SC_OK);
    assert_string_equal(c->text, "Hello, world");
    assert_string_equal(c->finish_reason, "STOP");
    assert_string_equal(c->model_version, "gemini-2.5-flash-001");
    assert_string_equal(c->response_id, "rid-1");
    assert_null(c->block_reason);
    assert_int_equal(c->usage.prompt_tokens, 31);
    assert_int_equal(c->usage.cached_tokens, 16);
    assert_int_equal(c->usage.output_tokens, 8);
    assert_int_equal(c->usage.thought_tokens, 40);
    pthread_mutex_lock(&canned.mu);
    assert_string_equal(canned.last_url, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_string_equal(canned.last_key, TEST_KEY);
    assert_string_equal(canned.last_ctype, "application/json");
    pthread_mutex_unlock(&canned.mu);
    sc_gemini_call_free(c);
    sc_gemini_free(g);
}

static void test_parse_max_tokens_no_parts(void **state)
{
    (void)state;
    canned_script(1, 200L,
                  "{\"candidates\":[{\"content\":{\"role\":\"model\"},\"finishReason\":"
                  "\"MAX_TOKENS\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":5,"
                  "\"thoughtsTokenCount\":1000}}");
    sc_gemini_t *g = client_new(canned.url, 10, 3);
    sc_gemini_call_t *c = canned_call(g, SC_OK);
    assert_string_equal(c->text, "");
    assert_string_equal(c->finish_reason, "MAX_TOKENS");
    assert_int_equal(c->usage.prompt_tokens, 5);
    assert_int_equal(c->usage.cached_tokens, 0);
    assert_int_equal(c->usage.output_tokens, 0);
    assert_int_equal(c->usage.thought_tokens, 1000);
    assert_null(c->model_version);
    assert_int_equal(c->attempts, 1);
    sc_gemini_call_free(c);
    sc_gemini_free(g);
}

static void test_parse_blocked(void **state)
{
    (void)state;
    canned_script(1, 200L,
                  "{\"promptFeedback\":{\"blockReason\":\"SAFETY\",\"safetyRatings\":[]},"
                  "\"usageMetadata\":{\"promptTokenCount\":7},\"modelVersion\":\"m\"}");
    sc_gemini_t *g = client_new(canned.url, 10, 3);
    sc_gemini_call_t *c = canned_call(g, SC_OK);
    assert_string_equal(c->text, "");
    assert_string_equal(c->block_reason, "SAFETY");
    assert_null(c->finish_reason);
    assert_int_equal(c->usage.prompt_tokens, 7);
    sc_gemini_call_free(c);
    sc_gemini_free(g);
}

static void test_parse_array_error_retry_info(void **state)
{
    (void)state;
    canned_script(2, 429L,
                  "[{\"error\":{\"code\":429,\"message\":\"quota\",\"status\":"
                  "\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":"
                  "\"type.googleapis.com/google.rpc.Help\",\"links\":[]},{\"@type\":"
                  "\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"0.2s\"}]}}]",
                  200L,
                  "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"ok\"}]},"
                  "\"finishReason\":\"STOP\"}]}");
    sc_gemini_t *g = client_new(canned.url, 5000, 3); /* backoff would be >= 5 s */
    int64_t t0 = sc_now_ms();
    sc_gemini_call_t *c = canned_call(g, SC_OK);
    int64_t took = sc_now_ms() - t0;
    assert_true(took >= 200);
    assert_true(took < 2000);
    assert_int_equal(c->attempts, 2);
    assert_string_equal(c->text, "ok");
    assert_string_equal(c->err_status, ""); /* cleared on success */
    sc_gemini_call_free(c);

    /* and the error fields when it never clears */
    canned_script(1, 429L,
                  "[{\"error\":{\"code\":429,\"message\":\"quota\",\"status\":"
                  "\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":"
                  "\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"0.01s\"}]}}]");
    c = canned_call(g, SC_ERR_UPSTREAM_RETRYABLE);
    assert_int_equal(c->attempts, 3);
    assert_int_equal(c->http_status, 429);
    assert_string_equal(c->err_status, "RESOURCE_EXHAUSTED");
    assert_string_equal(c->err_message, "quota");
    sc_gemini_call_free(c);
    sc_gemini_free(g);
}

static void test_parse_non_json_error(void **state)
{
    (void)state;
    canned_script(1, 502L, "<html>bad gateway</html>");
    sc_gemini_t *g = client_new(canned.url, 10, 2);
    sc_gemini_call_t *c = canned_call(g, SC_ERR_UPSTREAM_RETRYABLE);
    assert_int_equal(c->attempts, 2);
    assert_int_equal(c->http_status, 502);
    assert_string_equal(c->err_status, "");
    assert_string_equal(c->err_message, "Bad Gateway");
    sc_gemini_call_free(c);

    /* other 4xx: final at once */
    canned_script(1, 422L, "{\"error\":{\"code\":422,\"message\":\"nope\",\"status\":\"X\"}}");
    c = canned_call(g, SC_ERR_UPSTREAM_REJECTED);
    assert_int_equal(c->attempts, 1);
    assert_string_equal(c->err_message, "nope");
    sc_gemini_call_free(c);
    sc_gemini_free(g);
}

static void test_parse_bad_200(void **state)
{
    (void)state;
    /* JSON but not a response, then truncated JSON: both retried, then BAD_RESPONSE */
    canned_script(2, 200L, "{\"hello\":1}", 200L, "{\"candidates\":[");
    sc_gemini_t *g = client_new(canned.url, 10, 2);
    sc_gemini_call_t *c = canned_call(g, SC_ERR_UPSTREAM_BAD_RESPONSE);
    assert_int_equal(c->attempts, 2);
    sc_gemini_call_free(c);
    sc_gemini_free(g);
}

/* A batch GET answered 200 with JSON that is no Operation: BAD_RESPONSE, and the document is
 * released (it leaked: under --sanitize LeakSanitizer failed this test; found by fuzz_batch). */
static void test_batch_get_not_object(void **state)
{
    char err[256] = "";
    sc_batch_status_t st;
    sc_batch_client_t *bc = NULL;
    (void)state;
    canned_script(1, 200L, "[{\"name\":\"batches/x\",\"done\":true}]");
    assert_int_equal(sc_batch_client_new(canned.url, TEST_KEY, 5000, &bc, err, sizeof err), SC_OK);
    assert_int_equal(sc_batch_get(bc, "batches/x", &st, NULL, NULL, err, sizeof err),
                     SC_ERR_UPSTREAM_BAD_RESPONSE);
    assert_non_null(strstr(err, "not JSON"));
    assert_string_equal(canned.last_url, "/v1beta/batches/x");
    sc_batch_client_free(bc);
}

static void count_result(const char *key, sc_gemini_call_t *call, void *arg)
{
    int *n = arg;
    assert_string_equal(key, *n == 0 ? "L1" : "L2");
    assert_int_equal(call->status, *n == 0 ? SC_OK : SC_ERR_UPSTREAM_REJECTED);
    (*n)++;
    sc_gemini_call_free(call);
}

/* The Operation parser on its own: the status, and the results of a finished batch. */
static void test_batch_parse_operation(void **state)
{
    const char *op =
        "{\"name\":\"batches/x\",\"done\":true,\"metadata\":{\"state\":\"JOB_STATE_SUCCEEDED\","
        "\"batchStats\":{\"requestCount\":\"2\",\"failedRequestCount\":1}},\"response\":"
        "{\"inlinedResponses\":{\"inlinedResponses\":[{\"metadata\":{\"key\":\"L1\"},"
        "\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}]}}]}},"
        "{\"metadata\":{\"key\":\"L2\"},\"error\":{\"code\":3,\"message\":\"bad\"}},"
        "{\"response\":{}}]}}}";
    sc_batch_status_t st;
    int n = 0;
    (void)state;
    assert_int_equal(sc_batch_parse_operation(op, strlen(op), &st, count_result, &n), SC_OK);
    assert_int_equal(st.state, SC_BATCH_SUCCEEDED);
    assert_true(st.done);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.failed, 1);
    assert_int_equal(n, 2); /* the result without a key cannot be matched: not delivered */
    assert_int_equal(sc_batch_parse_operation("[]", 2, &st, count_result, &n),
                     SC_ERR_UPSTREAM_BAD_RESPONSE);
    assert_int_equal(sc_batch_parse_operation("{\"done\":", 8, &st, NULL, NULL),
                     SC_ERR_UPSTREAM_BAD_RESPONSE);
}

int main(void)
{
    if (!getenv("SCRIMP_LOG"))
        sc_log_set_level(SC_LOG_WARN);
    const struct CMUnitTest sim_tests[] = {
        cmocka_unit_test(test_opts),
        cmocka_unit_test(test_body_from_request),
        cmocka_unit_test(test_success),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_reject_400),
        cmocka_unit_test(test_reject_404),
        cmocka_unit_test(test_reject_403_no_key),
        cmocka_unit_test(test_429_retry_info),
        cmocka_unit_test(test_503_then_ok),
        cmocka_unit_test(test_503_exhausted),
        cmocka_unit_test(test_conn_refused),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_free_with_inflight),
        cmocka_unit_test(test_wakeup),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_limit_rpm),
        cmocka_unit_test(test_limit_tpm),
        cmocka_unit_test(test_limit_concurrency),
        cmocka_unit_test(test_limit_deadline),
        cmocka_unit_test(test_429_pause_model_wide),
        cmocka_unit_test(test_429_storm),
        cmocka_unit_test(test_breaker),
        cmocka_unit_test(test_breaker_deadline),
    };
    const struct CMUnitTest parse_tests[] = {
        cmocka_unit_test(test_parse_thoughts_and_headers),
        cmocka_unit_test(test_parse_max_tokens_no_parts),
        cmocka_unit_test(test_parse_blocked),
        cmocka_unit_test(test_parse_array_error_retry_info),
        cmocka_unit_test(test_parse_non_json_error),
        cmocka_unit_test(test_parse_bad_200),
        cmocka_unit_test(test_batch_get_not_object),
        cmocka_unit_test(test_batch_parse_operation),
    };
    int failed = cmocka_run_group_tests_name("gemini_sim", sim_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("gemini_parse", parse_tests, canned_setup,
                                          canned_teardown);
    return failed;
}
