/* gemini_sim_test_util.h - what the simulator's tests (tests/test_gemini_sim*.c) share: a libcurl
 * client for the sim on loopback, starting a sim, the error-shape and usage accessors, the shared
 * requests, polling, timestamps and the stats document. Tests may die: helpers fail the test. */
#ifndef SC_GEMINI_SIM_TEST_UTIL_H
#define SC_GEMINI_SIM_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "host/gemini/sim.h"
#include "host/core/log.h"
#include "host/core/util.h"

#define TEST_KEY       "test-key"
#define TEST_RESP_MAX  ((size_t)4 * 1024 * 1024)
#define TEST_TIMEOUT_S 30L

#define BATCH_WAIT_MS  10000 /* longest a test polls a batch (or a cache) for */
#define BATCH_POLL_MS  5

/* The helpers are static inline so that a test file not calling one of them builds warning-free. */

/* ---- HTTP client ---- */

typedef struct {
    char *data;
    size_t len;
} test_buf_t;

static inline size_t test_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    test_buf_t *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > TEST_RESP_MAX)
        return 0;
    char *nd = realloc(b->data, b->len + n + 1);
    if (!nd)
        return 0;
    memcpy(nd + b->len, ptr, n);
    b->data = nd;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

typedef struct {
    long status;
    char *body; /* owned, NUL-terminated */
    size_t len;
    char ctype[128];
} test_resp_t;

static inline void test_resp_free(test_resp_t *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* key: sent as x-goog-api-key when non-NULL. body: POSTed when non-NULL (body_len bytes). */
static inline test_resp_t test_http(const sc_gemini_sim_t *sim, const char *method,
                                    const char *path, const char *key, const char *body,
                                    size_t body_len)
{
    test_resp_t r = {0};
    test_buf_t b = {0};
    char url[2048], hdr[256]; /* paths up to 1 KiB (a /sim/difficulty?text=… query) fit */
    int un = snprintf(url, sizeof url, "http://127.0.0.1:%d%s", sc_gemini_sim_port(sim), path);
    assert_true(un > 0 && (size_t)un < sizeof url);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (key) {
        snprintf(hdr, sizeof hdr, "x-goog-api-key: %s", key);
        h = curl_slist_append(h, hdr);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, test_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, TEST_TIMEOUT_S);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("curl %s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    sc_strlcpy(r.ctype, ct ? ct : "", sizeof r.ctype);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    r.body = b.data ? b.data : strdup("");
    r.len = b.len;
    return r;
}

static inline test_resp_t test_post(const sc_gemini_sim_t *sim, const char *path, const char *body)
{
    return test_http(sim, "POST", path, TEST_KEY, body, strlen(body));
}

/* @return a new reference; fails the test when the body is not JSON. */
static inline json_t *test_json(const test_resp_t *r)
{
    json_error_t e;
    json_t *j = json_loads(r->body, 0, &e);
    if (!j)
        fail_msg("not JSON (%s): %.200s", e.text, r->body);
    return j;
}

static inline sc_gemini_sim_t *test_start(const char *api_key, const char *faults)
{
    sc_gemini_sim_opts_t o = {.api_key = api_key, .faults = faults, .threads = 2};
    sc_gemini_sim_t *sim = NULL;
    char err[256];
    sc_status_t st = sc_gemini_sim_start(&o, &sim, err, sizeof err);
    if (st != SC_OK)
        fail_msg("sim start: %s: %s", sc_strerror(st), err);
    assert_true(sc_gemini_sim_port(sim) > 0);
    return sim;
}

/* Assert the Google error shape and return error.message (borrowed from *doc_out). */
static inline const char *test_error(const test_resp_t *r, long code, const char *status,
                                     json_t **doc_out)
{
    assert_int_equal(r->status, code);
    assert_non_null(strstr(r->ctype, "application/json"));
    json_t *doc = test_json(r);
    json_t *err = json_object_get(doc, "error");
    assert_true(json_is_object(err));
    assert_int_equal(json_integer_value(json_object_get(err, "code")), code);
    assert_string_equal(json_string_value(json_object_get(err, "status")), status);
    assert_true(json_is_array(json_object_get(err, "details")));
    const char *msg = json_string_value(json_object_get(err, "message"));
    assert_non_null(msg);
    *doc_out = doc;
    return msg;
}

/* The detail of the given @type in error.details (borrowed), or NULL. */
static inline json_t *test_detail(json_t *doc, const char *type)
{
    json_t *details = json_object_get(json_object_get(doc, "error"), "details");
    size_t i;
    json_t *d;
    json_array_foreach(details, i, d)
    {
        const char *t = json_string_value(json_object_get(d, "@type"));
        if (t && strcmp(t, type) == 0)
            return d;
    }
    return NULL;
}

#define GEN_FLASH  "/v1beta/models/gemini-2.5-flash:generateContent"
#define SYS_TEXT   "You are terse."
#define USER_TEXT  "Name a prime number."
#define MODEL_TEXT "7"
#define USER2_TEXT "Another one."

static const char *const req_camel __attribute__((unused)) =
    "{\"systemInstruction\":{\"parts\":[{\"text\":\"" SYS_TEXT "\"}]},"
    "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"" USER_TEXT "\"}]},"
    "{\"role\":\"model\",\"parts\":[{\"text\":\"" MODEL_TEXT "\"}]},"
    "{\"role\":\"user\",\"parts\":[{\"text\":\"" USER2_TEXT "\"}]}],"
    "\"generationConfig\":{\"temperature\":0.2,\"maxOutputTokens\":1024}}";

static inline json_int_t test_usage(json_t *doc, const char *field)
{
    return json_integer_value(json_object_get(json_object_get(doc, "usageMetadata"), field));
}

static inline const char *test_text(json_t *doc)
{
    json_t *cand = json_array_get(json_object_get(doc, "candidates"), 0);
    json_t *part = json_array_get(json_object_get(json_object_get(cand, "content"), "parts"), 0);
    return json_string_value(json_object_get(part, "text"));
}

static inline const char *test_finish(json_t *doc)
{
    json_t *cand = json_array_get(json_object_get(doc, "candidates"), 0);
    return json_string_value(json_object_get(cand, "finishReason"));
}

/* ---- polling, timestamps, stats ---- */

static inline void test_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* GET a batch by its name ("batches/x"). @return the body's JSON, a new reference. */
static inline json_t *test_batch_get(sc_gemini_sim_t *sim, const char *name, long *status)
{
    char path[256];
    snprintf(path, sizeof path, "/v1beta/%s", name);
    test_resp_t r = test_http(sim, "GET", path, TEST_KEY, NULL, 0);
    *status = r.status;
    json_t *doc = test_json(&r);
    test_resp_free(&r);
    return doc;
}

/* "YYYY-MM-DDTHH:MM:SS.fffffffffZ" */
static inline void test_assert_rfc3339(const char *t)
{
    assert_non_null(t);
    assert_int_equal(strlen(t), 30);
    assert_int_equal(t[4], '-');
    assert_int_equal(t[10], 'T');
    assert_int_equal(t[19], '.');
    assert_int_equal(t[29], 'Z');
}

static inline json_t *test_stats_doc(sc_gemini_sim_t *sim)
{
    char *s = sc_gemini_sim_stats_json(sim);
    assert_non_null(s);
    json_t *doc = json_loads(s, 0, NULL);
    assert_non_null(doc);
    free(s);
    return doc;
}

#endif
