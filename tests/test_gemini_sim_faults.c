/* test_gemini_sim_faults.c - the simulator's connection faults (reset, truncate) driven with
 * libcurl: what a client sees, the per-body cap, the seeded draws, the counters and the spec's
 * errors; then the Gemini client (host/gemini/gemini.h) against them and against a slow upstream:
 * transient faults are retried, and a call that runs out of attempts or time says why. */
#include <stdbool.h>

#include "host/gemini/gemini.h"
#include "tests/gemini_sim_test_util.h"

#define GEN_STREAM     "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
#define SEEDED_BODIES  60     /* distinct bodies of the seeded-draw test */
#define CLIENT_TIMEOUT 10000L /* ms, per attempt of the client tests */
#define SLOW_DELAY_MS  1500   /* the slow upstream: every answer this late */
#define SLOW_DEADLINE  300    /* ms, the deadline of a call to it */

/* ---- a libcurl exchange that may fail ---- */

typedef struct {
    CURLcode rc;
    long status;     /* 0: no response */
    curl_off_t clen; /* Content-Length announced, -1: none */
    char *body;      /* what came, owned, NUL-terminated */
    size_t len;
} test_raw_t;

/* POST body to path on a fresh connection (no reuse: curl retries a dead reused connection on
 * its own, which would hide the fault). */
static test_raw_t raw_post(const sc_gemini_sim_t *sim, const char *path, const char *body)
{
    test_raw_t r = {.clen = -1};
    test_buf_t b = {0};
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", sc_gemini_sim_port(sim), path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "x-goog-api-key: " TEST_KEY);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, test_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, TEST_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    r.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &r.clen);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    r.body = b.data ? b.data : strdup("");
    r.len = b.len;
    return r;
}

static json_int_t stat_of(json_t *doc, const char *group, const char *key)
{
    json_t *g = group ? json_object_get(doc, group) : doc;
    return json_integer_value(json_object_get(g, key));
}

/* ---- the simulator ---- */

static void test_reset(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, "reset=1,max_per_request=1");
    test_raw_t r = raw_post(sim, GEN_FLASH, req_camel);
    if (r.rc != CURLE_GOT_NOTHING)
        fail_msg("a reset gave curl %d (%s), want CURLE_GOT_NOTHING", r.rc,
                 curl_easy_strerror(r.rc));
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 0);
    free(r.body);
    /* the cap: the same body is answered the second time */
    r = raw_post(sim, GEN_FLASH, req_camel);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    free(r.body);
    /* streamGenerateContent is reset the same way */
    r = raw_post(sim, GEN_STREAM "?alt=sse", "{\"contents\":[{\"parts\":[{\"text\":\"s\"}]}]}");
    assert_int_equal(r.rc, CURLE_GOT_NOTHING);
    free(r.body);

    json_t *doc = test_stats_doc(sim);
    assert_int_equal(stat_of(doc, "faults", "reset"), 2);
    assert_int_equal(stat_of(doc, "faults", "truncate"), 0);
    assert_int_equal(stat_of(doc, NULL, "requests"), 3);
    /* a reset answered nothing: only the one 200 is a response */
    assert_int_equal(json_object_size(json_object_get(doc, "responses")), 1);
    assert_int_equal(stat_of(doc, "responses", "200"), 1);
    json_decref(doc);
    sc_gemini_sim_stop(sim);
}

static void test_truncate(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, "truncate=1,max_per_request=1");
    test_raw_t r = raw_post(sim, GEN_FLASH, req_camel);
    if (r.rc != CURLE_PARTIAL_FILE)
        fail_msg("a truncated body gave curl %d (%s), want CURLE_PARTIAL_FILE", r.rc,
                 curl_easy_strerror(r.rc));
    assert_int_equal(r.status, 200);
    assert_true(r.clen > 100);                     /* the whole answer's length is announced */
    assert_int_equal(r.len, (size_t)(r.clen / 2)); /* and half of it sent */
    assert_null(json_loads(r.body, 0, NULL));
    assert_int_equal(strncmp(r.body, "{\"candidates\":", 14), 0); /* the answer's own start */
    free(r.body);
    r = raw_post(sim, GEN_FLASH, req_camel);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, (size_t)r.clen);
    json_error_t e;
    json_t *answer = json_loads(r.body, 0, &e);
    assert_non_null(answer);
    free(r.body);
    /* the stream's body is cut as well, after its status line */
    r = raw_post(sim, GEN_STREAM "?alt=sse", "{\"contents\":[{\"parts\":[{\"text\":\"s\"}]}]}");
    assert_int_equal(r.rc, CURLE_PARTIAL_FILE);
    assert_int_equal(r.status, 200);
    assert_int_equal(strncmp(r.body, "data: ", 6), 0);
    free(r.body);

    json_t *doc = test_stats_doc(sim);
    assert_int_equal(stat_of(doc, "faults", "truncate"), 2);
    assert_int_equal(stat_of(doc, "faults", "reset"), 0);
    assert_int_equal(stat_of(doc, "responses", "200"), 3);
    /* only the answer that arrived whole is billed */
    json_t *billed = json_object_get(json_object_get(doc, "billed_tokens"), "gemini-2.5-flash");
    assert_int_equal(json_integer_value(json_object_get(billed, "prompt")),
                     test_usage(answer, "promptTokenCount"));
    json_decref(answer);
    json_decref(doc);
    sc_gemini_sim_stop(sim);
}

/* One outcome of a POST: '.' answered, 'r' reset, 't' truncated. */
static char outcome(const test_raw_t *r)
{
    if (r->rc == CURLE_OK && r->status == 200)
        return '.';
    if (r->rc == CURLE_GOT_NOTHING)
        return 'r';
    if (r->rc == CURLE_PARTIAL_FILE)
        return 't';
    fail_msg("unexpected outcome: curl %d, HTTP %ld", r->rc, r->status);
    return '?';
}

/* The shares are drawn from the seeded PRNG: one seed gives one pattern, and each body is
 * answered within max_per_request + 1 tries. */
static void test_seeded_and_capped(void **state)
{
    (void)state;
    char first[2][SEEDED_BODIES + 1];
    for (int run = 0; run < 2; run++) {
        sc_gemini_sim_t *sim = test_start(NULL, "reset=0.3,truncate=0.3,seed=11,max_per_request=2");
        int resets = 0, truncs = 0;
        for (int i = 0; i < SEEDED_BODIES; i++) {
            char body[128];
            snprintf(body, sizeof body, "{\"contents\":[{\"parts\":[{\"text\":\"q%d\"}]}]}", i);
            char o = '?';
            for (int tries = 0; o != '.'; tries++) {
                assert_true(tries < 3); /* failed at most twice */
                test_raw_t r = raw_post(sim, GEN_FLASH, body);
                o = outcome(&r);
                free(r.body);
                if (tries == 0)
                    first[run][i] = o;
                resets += o == 'r';
                truncs += o == 't';
            }
        }
        first[run][SEEDED_BODIES] = '\0';
        assert_true(resets > 0 && truncs > 0);
        json_t *doc = test_stats_doc(sim);
        assert_int_equal(stat_of(doc, "faults", "reset"), resets);
        assert_int_equal(stat_of(doc, "faults", "truncate"), truncs);
        json_decref(doc);
        sc_gemini_sim_stop(sim);
    }
    assert_string_equal(first[0], first[1]);
}

static void test_bad_spec(void **state)
{
    (void)state;
    struct {
        const char *spec, *needle;
    } cases[] = {
        {"reset=1.5", "reset"},
        {"truncate=x", "truncate"},
        {"reset=0.6,truncate=0.6", "sum"},
        {"503=0.5,reset=0.3,truncate=0.3", "sum"},
        {"resets=0.1", "unknown key 'resets'"},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(cases); i++) {
        sc_gemini_sim_opts_t o = {.faults = cases[i].spec};
        sc_gemini_sim_t *sim = (sc_gemini_sim_t *)0x1;
        char err[256] = "";
        assert_int_equal(sc_gemini_sim_start(&o, &sim, err, sizeof err), SC_ERR_INVALID_ARG);
        assert_null(sim);
        if (!strstr(err, cases[i].needle))
            fail_msg("spec '%s': message '%s' lacks '%s'", cases[i].spec, err, cases[i].needle);
    }
}

/* ---- the client against them ---- */

typedef struct {
    sc_gemini_sim_t *sim;
    sc_gemini_t *g;
    char url[64];
} rig_t;

/* A simulator with faults and a client of it: max_attempts, a first retry after backoff_ms. */
static void rig_start(rig_t *t, const char *faults, int max_attempts, long backoff_ms)
{
    sc_gemini_sim_opts_t so = {.faults = faults};
    char err[256] = "";
    if (sc_gemini_sim_start(&so, &t->sim, err, sizeof err) != SC_OK)
        fail_msg("sim start: %s", err);
    snprintf(t->url, sizeof t->url, "http://127.0.0.1:%d", sc_gemini_sim_port(t->sim));
    sc_gemini_opts_t o;
    sc_gemini_opts_default(&o);
    o.base_url = t->url;
    o.api_key = TEST_KEY;
    o.backoff_initial_ms = backoff_ms;
    o.backoff_jitter_ms = 0;
    o.max_attempts = max_attempts;
    o.request_timeout_ms = CLIENT_TIMEOUT;
    if (sc_gemini_new(&o, &t->g, err, sizeof err) != SC_OK)
        fail_msg("client: %s", err);
}

static void rig_stop(rig_t *t)
{
    sc_gemini_free(t->g);
    sc_gemini_sim_stop(t->sim);
}

static sc_gemini_call_t *call_text(const char *text)
{
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":"
                     "\"%s\"}]}]}",
                     text);
    sc_gemini_call_t *c = sc_gemini_call_new("gemini-2.5-flash", strdup(body), (size_t)n);
    assert_non_null(c);
    return c;
}

static void assert_has(const char *s, const char *needle)
{
    if (!s || !strstr(s, needle))
        fail_msg("'%s' lacks '%s'", s ? s : "(null)", needle);
}

/* Both faults are transient for the client: retried until the answer comes whole. */
static void test_client_retries(void **state)
{
    (void)state;
    static const char *const specs[] = {"reset=1,max_per_request=2",
                                        "truncate=1,max_per_request=2"};
    for (size_t i = 0; i < SC_ARRAY_LEN(specs); i++) {
        rig_t t;
        rig_start(&t, specs[i], 5, 10);
        sc_gemini_call_t *c = call_text("retry me");
        assert_int_equal(sc_gemini_call_sync(t.g, c), SC_OK);
        assert_int_equal(c->attempts, 3);
        assert_int_equal(c->http_status, 200);
        assert_true(strlen(c->text) > 0);
        sc_gemini_call_free(c);
        rig_stop(&t);
    }
}

/* Out of attempts: the error names the cause, and a truncated body is never taken for an
 * answer. */
static void test_client_exhausted(void **state)
{
    (void)state;
    rig_t t;
    rig_start(&t, "truncate=1,max_per_request=100", 3, 10);
    sc_gemini_call_t *c = call_text("always cut");
    assert_int_equal(sc_gemini_call_sync(t.g, c), SC_ERR_UPSTREAM_TRANSPORT);
    assert_int_equal(c->attempts, 3);
    assert_null(c->text);
    assert_has(c->err_message, "body truncated: got ");
    long long got = 0, want = 0;
    const char *p = strstr(c->err_message, "got ");
    assert_int_equal(sscanf(p, "got %lld of %lld bytes", &got, &want), 2);
    assert_true(want > 0 && got == want / 2);
    sc_gemini_call_free(c);
    rig_stop(&t);

    rig_start(&t, "reset=1,max_per_request=100", 3, 10);
    c = call_text("always reset");
    assert_int_equal(sc_gemini_call_sync(t.g, c), SC_ERR_UPSTREAM_TRANSPORT);
    assert_int_equal(c->attempts, 3);
    assert_int_equal(c->http_status, 0);
    assert_has(c->err_message, "connection reset / empty reply");
    sc_gemini_call_free(c);
    json_t *doc = test_stats_doc(t.sim);
    assert_true(stat_of(doc, "faults", "reset") >= 3);
    json_decref(doc);
    rig_stop(&t);
}

/* An upstream slower than the deadline: the call ends at the deadline, not after the answer,
 * and says why. */
static void test_client_slow_deadline(void **state)
{
    (void)state;
    char spec[64];
    snprintf(spec, sizeof spec, "delay=1,delay_ms=%d", SLOW_DELAY_MS);
    rig_t t;
    rig_start(&t, spec, 5, 10);
    sc_gemini_call_t *c = call_text("too slow");
    int64_t t0 = sc_now_ms();
    c->deadline_ms = t0 + SLOW_DEADLINE;
    assert_int_equal(sc_gemini_call_sync(t.g, c), SC_ERR_DEADLINE);
    int64_t took = sc_now_ms() - t0;
    assert_true(took >= SLOW_DEADLINE - 20 && took < SLOW_DELAY_MS);
    assert_int_equal(c->attempts, 1);
    assert_has(c->err_message, "deadline passed during attempt 1");
    assert_has(c->err_message, "timed out");
    sc_gemini_call_free(c);
    rig_stop(&t);

    /* a deadline between two attempts: named with the failure that used the time */
    rig_start(&t, "reset=1,max_per_request=100", 5, 2000); /* the retry would start too late */
    c = call_text("reset, then no time");
    c->deadline_ms = sc_now_ms() + SLOW_DEADLINE;
    assert_int_equal(sc_gemini_call_sync(t.g, c), SC_ERR_DEADLINE);
    assert_int_equal(c->attempts, 1);
    assert_has(c->err_message, "deadline too close for attempt 2");
    assert_has(c->err_message, "last error: connection reset / empty reply");
    sc_gemini_call_free(c);
    rig_stop(&t);
}

int main(void)
{
    if (!getenv("SCRIMP_LOG"))
        sc_log_set_level(SC_LOG_ERROR);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_seeded_and_capped),
        cmocka_unit_test(test_bad_spec),
        cmocka_unit_test(test_client_retries),
        cmocka_unit_test(test_client_exhausted),
        cmocka_unit_test(test_client_slow_deadline),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
