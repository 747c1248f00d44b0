/* test_gemini_sim.c - the simulator on loopback, driven with libcurl: shapes, arithmetic,
 * determinism, keys, validation, countTokens, fault injection, stats, Batch Mode, context
 * caching. */
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

/* ---- HTTP client ---- */

typedef struct {
    char *data;
    size_t len;
} test_buf_t;

static size_t test_write(char *ptr, size_t size, size_t nmemb, void *userdata)
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

static void test_resp_free(test_resp_t *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* key: sent as x-goog-api-key when non-NULL. body: POSTed when non-NULL (body_len bytes). */
static test_resp_t test_http(const sc_gemini_sim_t *sim, const char *method, const char *path,
                             const char *key, const char *body, size_t body_len)
{
    test_resp_t r = {0};
    test_buf_t b = {0};
    char url[512], hdr[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", sc_gemini_sim_port(sim), path);
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

static test_resp_t test_post(const sc_gemini_sim_t *sim, const char *path, const char *body)
{
    return test_http(sim, "POST", path, TEST_KEY, body, strlen(body));
}

/* @return a new reference; fails the test when the body is not JSON. */
static json_t *test_json(const test_resp_t *r)
{
    json_error_t e;
    json_t *j = json_loads(r->body, 0, &e);
    if (!j)
        fail_msg("not JSON (%s): %.200s", e.text, r->body);
    return j;
}

static sc_gemini_sim_t *test_start(const char *api_key, const char *faults)
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
static const char *test_error(const test_resp_t *r, long code, const char *status, json_t **doc_out)
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
static json_t *test_detail(json_t *doc, const char *type)
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

static const char *const req_camel =
    "{\"systemInstruction\":{\"parts\":[{\"text\":\"" SYS_TEXT "\"}]},"
    "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"" USER_TEXT "\"}]},"
    "{\"role\":\"model\",\"parts\":[{\"text\":\"" MODEL_TEXT "\"}]},"
    "{\"role\":\"user\",\"parts\":[{\"text\":\"" USER2_TEXT "\"}]}],"
    "\"generationConfig\":{\"temperature\":0.2,\"maxOutputTokens\":1024,"
    "\"unknownKnob\":true}}";

static json_int_t test_usage(json_t *doc, const char *field)
{
    return json_integer_value(json_object_get(json_object_get(doc, "usageMetadata"), field));
}

static const char *test_text(json_t *doc)
{
    json_t *cand = json_array_get(json_object_get(doc, "candidates"), 0);
    json_t *part = json_array_get(json_object_get(json_object_get(cand, "content"), "parts"), 0);
    return json_string_value(json_object_get(part, "text"));
}

static const char *test_finish(json_t *doc)
{
    json_t *cand = json_array_get(json_object_get(doc, "candidates"), 0);
    return json_string_value(json_object_get(cand, "finishReason"));
}

/* ---- tests ---- */

static void test_success_shape(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    test_resp_t r = test_post(sim, GEN_FLASH, req_camel);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "application/json"));
    json_t *doc = test_json(&r);
    json_t *cand = json_array_get(json_object_get(doc, "candidates"), 0);
    assert_non_null(cand);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(cand, "content"), "role")), "model");
    assert_string_equal(test_finish(doc), "STOP");
    assert_int_equal(json_integer_value(json_object_get(cand, "index")), 0);
    const char *text = test_text(doc);
    assert_non_null(text);
    assert_non_null(strstr(text, "gemini-2.5-flash"));
    assert_string_equal(json_string_value(json_object_get(doc, "modelVersion")),
                        "gemini-2.5-flash");
    const char *rid = json_string_value(json_object_get(doc, "responseId"));
    assert_non_null(rid);
    assert_true(strlen(rid) >= 16);

    size_t chars = strlen(SYS_TEXT) + strlen(USER_TEXT) + strlen(MODEL_TEXT) + strlen(USER2_TEXT);
    json_int_t prompt = test_usage(doc, "promptTokenCount");
    json_int_t cands = test_usage(doc, "candidatesTokenCount");
    json_int_t thoughts = test_usage(doc, "thoughtsTokenCount");
    assert_int_equal(prompt, (json_int_t)((chars + 3) / 4));
    assert_int_equal(cands, (json_int_t)((strlen(text) + 3) / 4));
    assert_true(thoughts > 0); /* 2.5-flash thinks by default */
    assert_int_equal(test_usage(doc, "totalTokenCount"), prompt + cands + thoughts);
    json_t *det = json_array_get(
        json_object_get(json_object_get(doc, "usageMetadata"), "promptTokensDetails"), 0);
    assert_string_equal(json_string_value(json_object_get(det, "modality")), "TEXT");
    assert_int_equal(json_integer_value(json_object_get(det, "tokenCount")), prompt);

    /* Words vary between 10 and 120: the text is not empty and not enormous. */
    assert_true(strlen(text) > 40 && strlen(text) < 2000);
    json_decref(doc);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);
}

static void test_thinking_by_model(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    static const char *body = "{\"contents\":[{\"parts\":[{\"text\":\"hi there\"}]}]}";
    static const char *budget0 =
        "{\"contents\":[{\"parts\":[{\"text\":\"hi there\"}]}],"
        "\"generationConfig\":{\"thinkingConfig\":{\"thinkingBudget\":0}}}";
    struct {
        const char *path, *body;
        int thinks;
    } cases[] = {
        {"/v1beta/models/gemini-2.5-pro:generateContent", body, 1},
        {"/v1beta/models/gemini-2.5-pro:generateContent", budget0, 1}, /* cannot disable */
        {GEN_FLASH, budget0, 0},
        {"/v1beta/models/gemini-2.5-flash-lite:generateContent", body, 0},
        {"/v1beta/models/gemini-2.0-flash:generateContent", body, 0},
        {"/v1beta/models/gemini-2.0-flash-lite:generateContent", body, 0},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(cases); i++) {
        test_resp_t r = test_post(sim, cases[i].path, cases[i].body);
        assert_int_equal(r.status, 200);
        json_t *doc = test_json(&r);
        json_t *usage = json_object_get(doc, "usageMetadata");
        json_t *th = json_object_get(usage, "thoughtsTokenCount");
        if (cases[i].thinks)
            assert_true(json_integer_value(th) > 0);
        else
            assert_null(th); /* omitted when 0 */
        assert_int_equal(test_usage(doc, "totalTokenCount"),
                         test_usage(doc, "promptTokenCount") +
                             test_usage(doc, "candidatesTokenCount") + json_integer_value(th));
        json_decref(doc);
        test_resp_free(&r);
    }
    sc_gemini_sim_stop(sim);
}

static void test_determinism(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    test_resp_t a = test_post(sim, GEN_FLASH, req_camel);
    test_resp_t b = test_post(sim, GEN_FLASH, req_camel);
    test_resp_t c = test_post(sim, GEN_FLASH,
                              "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"A "
                              "different question entirely.\"}]}]}");
    json_t *ja = test_json(&a), *jb = test_json(&b), *jc = test_json(&c);
    assert_string_equal(test_text(ja), test_text(jb));
    assert_string_not_equal(test_text(ja), test_text(jc));
    assert_int_equal(test_usage(ja, "thoughtsTokenCount"), test_usage(jb, "thoughtsTokenCount"));
    assert_string_not_equal(json_string_value(json_object_get(ja, "responseId")),
                            json_string_value(json_object_get(jb, "responseId")));
    json_decref(ja);
    json_decref(jb);
    json_decref(jc);
    test_resp_free(&a);
    test_resp_free(&b);
    test_resp_free(&c);

    /* A second simulator gives the same text too. */
    sc_gemini_sim_t *sim2 = test_start(NULL, NULL);
    a = test_post(sim, GEN_FLASH, req_camel);
    b = test_post(sim2, GEN_FLASH, req_camel);
    ja = test_json(&a);
    jb = test_json(&b);
    assert_string_equal(test_text(ja), test_text(jb));
    json_decref(ja);
    json_decref(jb);
    test_resp_free(&a);
    test_resp_free(&b);
    sc_gemini_sim_stop(sim2);
    sc_gemini_sim_stop(sim);
}

static void test_snake_case_and_max_tokens(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    const char *snake =
        "{\"system_instruction\":{\"parts\":[{\"text\":\"" SYS_TEXT "\"}]},"
        "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"" USER_TEXT "\"}]}],"
        "\"generation_config\":{\"max_output_tokens\":5,"
        "\"thinking_config\":{\"thinking_budget\":0}}}";
    const char *camel =
        "{\"systemInstruction\":{\"parts\":[{\"text\":\"" SYS_TEXT "\"}]},"
        "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"" USER_TEXT "\"}]}],"
        "\"generationConfig\":{\"maxOutputTokens\":5,"
        "\"thinkingConfig\":{\"thinkingBudget\":0}}}";
    test_resp_t rs = test_post(sim, GEN_FLASH, snake);
    test_resp_t rc = test_post(sim, GEN_FLASH, camel);
    assert_int_equal(rs.status, 200);
    assert_int_equal(rc.status, 200);
    json_t *js = test_json(&rs), *jc = test_json(&rc);
    assert_string_equal(test_finish(js), "MAX_TOKENS");
    assert_int_equal(strlen(test_text(js)), 20); /* 5 tokens * 4 chars */
    assert_int_equal(test_usage(js, "candidatesTokenCount"), 5);
    assert_null(json_object_get(json_object_get(js, "usageMetadata"), "thoughtsTokenCount"));
    /* system_instruction counted, exactly as systemInstruction is */
    assert_int_equal(test_usage(js, "promptTokenCount"),
                     (json_int_t)((strlen(SYS_TEXT) + strlen(USER_TEXT) + 3) / 4));
    assert_string_equal(test_text(js), test_text(jc));
    assert_int_equal(test_usage(js, "totalTokenCount"), test_usage(jc, "totalTokenCount"));
    /* camelCase out even for snake_case in */
    assert_non_null(json_object_get(js, "usageMetadata"));
    assert_null(json_object_get(js, "usage_metadata"));
    json_decref(js);
    json_decref(jc);
    test_resp_free(&rs);
    test_resp_free(&rc);

    /* response_mime_type application/json gives a JSON answer */
    test_resp_t rj = test_post(sim, GEN_FLASH,
                               "{\"contents\":[{\"parts\":[{\"text\":\"json please\"}]}],"
                               "\"generation_config\":{\"response_mime_type\":"
                               "\"application/json\"}}");
    assert_int_equal(rj.status, 200);
    json_t *jj = test_json(&rj);
    json_t *inner = json_loads(test_text(jj), 0, NULL);
    assert_non_null(inner);
    assert_string_equal(json_string_value(json_object_get(inner, "model")), "gemini-2.5-flash");
    json_decref(inner);
    json_decref(jj);
    test_resp_free(&rj);
    sc_gemini_sim_stop(sim);
}

static void test_key_missing(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    test_resp_t r = test_http(sim, "POST", GEN_FLASH, NULL, req_camel, strlen(req_camel));
    json_t *doc = NULL;
    const char *msg = test_error(&r, 403, "PERMISSION_DENIED", &doc);
    assert_string_equal(msg, "Method doesn't allow unregistered callers (callers without "
                             "established identity). Please use API Key or other form of API "
                             "consumer identity to call this API.");
    json_decref(doc);
    test_resp_free(&r);

    /* ?key= works as well as the header */
    r = test_http(sim, "POST", GEN_FLASH "?key=abc", NULL, req_camel, strlen(req_camel));
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);
}

static void test_key_wrong(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(TEST_KEY, NULL);
    test_resp_t r = test_http(sim, "POST", GEN_FLASH, "wrong", req_camel, strlen(req_camel));
    json_t *doc = NULL;
    const char *msg = test_error(&r, 400, "INVALID_ARGUMENT", &doc);
    assert_string_equal(msg, "API key not valid. Please pass a valid API key.");
    json_t *info = test_detail(doc, "type.googleapis.com/google.rpc.ErrorInfo");
    assert_non_null(info);
    assert_string_equal(json_string_value(json_object_get(info, "reason")), "API_KEY_INVALID");
    json_decref(doc);
    test_resp_free(&r);

    r = test_http(sim, "POST", GEN_FLASH "?key=wrong", NULL, req_camel, strlen(req_camel));
    assert_int_equal(r.status, 400);
    test_resp_free(&r);
    r = test_http(sim, "POST", GEN_FLASH "?key=" TEST_KEY, NULL, req_camel, strlen(req_camel));
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    r = test_post(sim, GEN_FLASH, req_camel);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);
}

static void test_unknown_model_and_route(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    test_resp_t r = test_post(sim, "/v1beta/models/gemini-9-ultra:generateContent", req_camel);
    json_t *doc = NULL;
    const char *msg = test_error(&r, 404, "NOT_FOUND", &doc);
    assert_non_null(strstr(msg, "models/gemini-9-ultra is not found for API version v1beta"));
    json_decref(doc);
    test_resp_free(&r);

    r = test_post(sim, "/v1beta/models/gemini-2.5-flash:fooBar", req_camel);
    test_error(&r, 404, "NOT_FOUND", &doc);
    json_decref(doc);
    test_resp_free(&r);
    r = test_http(sim, "GET", GEN_FLASH, TEST_KEY, NULL, 0);
    test_error(&r, 404, "NOT_FOUND", &doc);
    json_decref(doc);
    test_resp_free(&r);
    r = test_http(sim, "GET", "/nope", NULL, NULL, 0);
    test_error(&r, 404, "NOT_FOUND", &doc);
    json_decref(doc);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);
}

static void test_validation(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    struct {
        const char *body, *needle;
    } cases[] = {
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],"
         "\"generationConfig\":{\"maxOutputTokens\":100000}}",
         "The specified maxOutputTokens value 100000 is out of range; supported range is [1, "
         "65537)"},
        {"{\"contents\": [", "Invalid JSON payload received."},
        {"not json at all", "Invalid JSON payload received."},
        {"[1,2]", "Invalid JSON payload received."},
        {"{}", "contents is not specified"},
        {"{\"contents\":[]}", "contents is not specified"},
        {"{\"contents\":[{\"role\":\"system\",\"parts\":[{\"text\":\"x\"}]}]}", "valid role"},
        {"{\"contents\":[{\"role\":\"user\",\"parts\":[]}]}", "parts must not be empty"},
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],"
         "\"generation_config\":{\"temperature\":2.5}}",
         "temperature"},
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],"
         "\"generationConfig\":{\"temperature\":-0.1}}",
         "temperature"},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(cases); i++) {
        test_resp_t r = test_post(sim, GEN_FLASH, cases[i].body);
        json_t *doc = NULL;
        const char *msg = test_error(&r, 400, "INVALID_ARGUMENT", &doc);
        if (!strstr(msg, cases[i].needle))
            fail_msg("case %zu: message '%s' lacks '%s'", i, msg, cases[i].needle);
        json_decref(doc);
        test_resp_free(&r);
    }
    /* boundaries that are fine */
    test_resp_t r = test_post(sim, GEN_FLASH,
                              "{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],"
                              "\"generationConfig\":{\"maxOutputTokens\":65536,"
                              "\"temperature\":2}}");
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);
}

static void test_body_too_large(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    size_t n = (size_t)33 * 1024 * 1024;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    test_resp_t r = test_http(sim, "POST", GEN_FLASH, TEST_KEY, big, n);
    json_t *doc = NULL;
    const char *msg = test_error(&r, 400, "INVALID_ARGUMENT", &doc);
    assert_non_null(strstr(msg, "exceeds the limit"));
    json_decref(doc);
    test_resp_free(&r);
    free(big);
    sc_gemini_sim_stop(sim);
}

static void test_count_tokens(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    const char *fox = "The quick brown fox jumps over the lazy dog."; /* 44 bytes: 11 tokens */
    char body[512];
    snprintf(body, sizeof body,
             "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"%s\"}]}]}", fox);
    test_resp_t r = test_post(sim, "/v1beta/models/gemini-2.5-flash:countTokens", body);
    assert_int_equal(r.status, 200);
    json_t *doc = test_json(&r);
    assert_int_equal(json_integer_value(json_object_get(doc, "totalTokens")), 11);
    json_t *det = json_array_get(json_object_get(doc, "promptTokensDetails"), 0);
    assert_string_equal(json_string_value(json_object_get(det, "modality")), "TEXT");
    assert_int_equal(json_integer_value(json_object_get(det, "tokenCount")), 11);
    json_decref(doc);
    test_resp_free(&r);

    /* the wrapped form counts the system instruction: 44 + 16 = 60 bytes, 15 tokens */
    snprintf(body, sizeof body,
             "{\"generateContentRequest\":{\"model\":\"models/gemini-2.5-flash\","
             "\"systemInstruction\":{\"parts\":[{\"text\":\"You are a cat 12\"}]},"
             "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"%s\"}]}]}}",
             fox);
    r = test_post(sim, "/v1beta/models/gemini-2.5-flash:countTokens", body);
    assert_int_equal(r.status, 200);
    doc = test_json(&r);
    assert_int_equal(json_integer_value(json_object_get(doc, "totalTokens")), 15);
    json_decref(doc);
    test_resp_free(&r);

    /* countTokens agrees with generateContent's promptTokenCount */
    r = test_post(sim, "/v1beta/models/gemini-2.5-flash:countTokens", req_camel);
    test_resp_t g = test_post(sim, GEN_FLASH, req_camel);
    json_t *jc = test_json(&r), *jg = test_json(&g);
    size_t contents_chars = strlen(USER_TEXT) + strlen(MODEL_TEXT) + strlen(USER2_TEXT);
    assert_int_equal(json_integer_value(json_object_get(jc, "totalTokens")),
                     (json_int_t)((contents_chars + 3) / 4)); /* plain form: no system text */
    assert_true(test_usage(jg, "promptTokenCount") >
                json_integer_value(json_object_get(jc, "totalTokens")));
    json_decref(jc);
    json_decref(jg);
    test_resp_free(&r);
    test_resp_free(&g);

    r = test_post(sim, "/v1beta/models/gemini-2.5-flash:countTokens", "{}");
    test_error(&r, 400, "INVALID_ARGUMENT", &doc);
    json_decref(doc);
    test_resp_free(&r);
    r = test_post(sim, "/v1beta/models/nope:countTokens", body);
    test_error(&r, 404, "NOT_FOUND", &doc);
    json_decref(doc);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);
}

static void test_fault_429_transient(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, "429=1,max_per_request=2,retry_delay=0.5s");
    for (int attempt = 0; attempt < 2; attempt++) {
        test_resp_t r = test_post(sim, GEN_FLASH, req_camel);
        json_t *doc = NULL;
        test_error(&r, 429, "RESOURCE_EXHAUSTED", &doc);
        json_t *ri = test_detail(doc, "type.googleapis.com/google.rpc.RetryInfo");
        assert_non_null(ri);
        assert_string_equal(json_string_value(json_object_get(ri, "retryDelay")), "0.5s");
        json_t *qf = test_detail(doc, "type.googleapis.com/google.rpc.QuotaFailure");
        assert_non_null(qf);
        json_t *v = json_array_get(json_object_get(qf, "violations"), 0);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(v, "quotaDimensions"), "model")),
            "gemini-2.5-flash");
        assert_non_null(test_detail(doc, "type.googleapis.com/google.rpc.Help"));
        json_decref(doc);
        test_resp_free(&r);
    }
    test_resp_t r = test_post(sim, GEN_FLASH, req_camel);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    /* a different body starts its own count */
    r = test_post(sim, GEN_FLASH, "{\"contents\":[{\"parts\":[{\"text\":\"other\"}]}]}");
    assert_int_equal(r.status, 429);
    test_resp_free(&r);
    /* invalid requests are answered by validation, never by a fault */
    r = test_post(sim, GEN_FLASH, "{}");
    assert_int_equal(r.status, 400);
    test_resp_free(&r);

    char *stats = sc_gemini_sim_stats_json(sim);
    assert_non_null(stats);
    json_t *doc = json_loads(stats, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "faults"), "429")), 3);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "responses"), "429")),
                     3);
    json_decref(doc);
    free(stats);
    sc_gemini_sim_stop(sim);
}

static void test_fault_kinds(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, "503=1,max_per_request=1");
    test_resp_t r = test_post(sim, GEN_FLASH, req_camel);
    json_t *doc = NULL;
    const char *msg = test_error(&r, 503, "UNAVAILABLE", &doc);
    assert_string_equal(msg, "The model is overloaded. Please try again later.");
    json_decref(doc);
    test_resp_free(&r);
    r = test_post(sim, GEN_FLASH, req_camel);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);

    sim = test_start(NULL, "500=1");
    r = test_post(sim, GEN_FLASH, req_camel);
    test_error(&r, 500, "INTERNAL", &doc);
    json_decref(doc);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);

    sim = test_start(NULL, "malformed=1,max_per_request=1");
    r = test_post(sim, GEN_FLASH, req_camel);
    assert_int_equal(r.status, 200);
    assert_true(r.len > 0);
    assert_null(json_loads(r.body, 0, NULL));
    test_resp_free(&r);
    r = test_post(sim, GEN_FLASH, req_camel);
    assert_int_equal(r.status, 200);
    doc = test_json(&r);
    assert_non_null(test_text(doc));
    json_decref(doc);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);

    sim = test_start(NULL, "delay=1,delay_ms=150");
    int64_t t0 = sc_now_ms();
    r = test_post(sim, GEN_FLASH, req_camel);
    assert_int_equal(r.status, 200);
    assert_true(sc_now_ms() - t0 >= 150);
    test_resp_free(&r);
    char *stats = sc_gemini_sim_stats_json(sim);
    doc = json_loads(stats, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "faults"), "delay")),
                     1);
    json_decref(doc);
    free(stats);
    sc_gemini_sim_stop(sim);
}

/* The same seed gives the same fault pattern; another seed a different one. */
static void test_fault_seeded(void **state)
{
    (void)state;
    enum { N = 40 };
    char pattern[3][N + 1];
    const char *specs[3] = {"429=0.5,seed=7", "429=0.5,seed=7", "429=0.5,seed=8"};
    for (int s = 0; s < 3; s++) {
        sc_gemini_sim_t *sim = test_start(NULL, specs[s]);
        for (int i = 0; i < N; i++) {
            char body[128];
            snprintf(body, sizeof body, "{\"contents\":[{\"parts\":[{\"text\":\"q%d\"}]}]}", i);
            test_resp_t r = test_post(sim, GEN_FLASH, body);
            assert_true(r.status == 200 || r.status == 429);
            pattern[s][i] = r.status == 200 ? '.' : 'x';
            test_resp_free(&r);
        }
        pattern[s][N] = '\0';
        sc_gemini_sim_stop(sim);
    }
    assert_string_equal(pattern[0], pattern[1]);
    assert_string_not_equal(pattern[0], pattern[2]);
    assert_non_null(strchr(pattern[0], 'x'));
    assert_non_null(strchr(pattern[0], '.'));
}

static void test_bad_fault_spec(void **state)
{
    (void)state;
    struct {
        const char *spec, *needle;
    } cases[] = {
        {"bogus=0.1", "bogus"},
        {"429=1.5", "429"},
        {"503=-0.1", "503"},
        {"500=abc", "500"},
        {"delay_ms=x", "delay_ms"},
        {"seed=-3", "seed"},
        {"429", "429"},
        {"retry_delay=2", "retry_delay"},
        {"429=0.6,503=0.6", "sum"},
        {"max_per_request=1.5", "max_per_request"},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(cases); i++) {
        sc_gemini_sim_opts_t o = {.faults = cases[i].spec};
        sc_gemini_sim_t *sim = (sc_gemini_sim_t *)0x1;
        char err[256] = "";
        sc_status_t st = sc_gemini_sim_start(&o, &sim, err, sizeof err);
        assert_int_equal(st, SC_ERR_INVALID_ARG);
        assert_null(sim);
        if (!strstr(err, cases[i].needle))
            fail_msg("spec '%s': message '%s' lacks '%s'", cases[i].spec, err, cases[i].needle);
    }
}

static void test_port_in_use(void **state)
{
    (void)state;
    sc_gemini_sim_t *a = test_start(NULL, NULL);
    sc_gemini_sim_opts_t o = {.port = sc_gemini_sim_port(a)};
    sc_gemini_sim_t *b = NULL;
    char err[256] = "";
    sc_status_t st = sc_gemini_sim_start(&o, &b, err, sizeof err);
    assert_int_equal(st, SC_ERR_HTTP_SERVER);
    assert_null(b);
    char port[16];
    snprintf(port, sizeof port, "%d", o.port);
    assert_non_null(strstr(err, port));
    assert_non_null(strstr(err, "in use"));
    sc_gemini_sim_stop(a);
}

static void test_stats(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    test_resp_t r;
    for (int i = 0; i < 3; i++) {
        r = test_post(sim, GEN_FLASH, req_camel);
        test_resp_free(&r);
    }
    r = test_post(sim, "/v1beta/models/gemini-2.0-flash:generateContent", req_camel);
    test_resp_free(&r);
    r = test_post(sim, "/v1beta/models/unknown:generateContent", req_camel);
    test_resp_free(&r);
    r = test_http(sim, "POST", GEN_FLASH, NULL, req_camel, strlen(req_camel));
    test_resp_free(&r);
    r = test_post(sim, "/v1beta/models/gemini-2.5-flash:countTokens", req_camel);
    test_resp_free(&r);

    r = test_http(sim, "GET", "/sim/stats", NULL, NULL, 0); /* no key needed */
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "application/json"));
    json_t *doc = test_json(&r);
    assert_int_equal(json_integer_value(json_object_get(doc, "requests")), 7);
    json_t *resp = json_object_get(doc, "responses");
    assert_int_equal(json_integer_value(json_object_get(resp, "200")), 5);
    assert_int_equal(json_integer_value(json_object_get(resp, "404")), 1);
    assert_int_equal(json_integer_value(json_object_get(resp, "403")), 1);
    json_t *gen = json_object_get(doc, "generate_content");
    assert_int_equal(json_integer_value(json_object_get(gen, "gemini-2.5-flash")), 3);
    assert_int_equal(json_integer_value(json_object_get(gen, "gemini-2.0-flash")), 1);
    assert_int_equal(json_integer_value(json_object_get(doc, "count_tokens")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "faults"), "429")), 0);

    /* the function gives the same document (stats requests are not counted) */
    char *s = sc_gemini_sim_stats_json(sim);
    json_t *doc2 = json_loads(s, 0, NULL);
    assert_true(json_equal(doc, doc2));
    json_decref(doc2);
    free(s);
    json_decref(doc);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);
}

static void test_stop_null(void **state)
{
    (void)state;
    sc_gemini_sim_stop(NULL);
    assert_null(sc_gemini_sim_stats_json(NULL));
    sc_gemini_sim_opts_t o = {.host = "not-an-address"};
    sc_gemini_sim_t *sim = NULL;
    char err[256] = "";
    assert_int_equal(sc_gemini_sim_start(&o, &sim, err, sizeof err), SC_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "not-an-address"));
}

/* ---- Batch Mode ---- */

#define BATCH_FLASH    "/v1beta/models/gemini-2.5-flash:batchGenerateContent"
#define BATCH_WAIT_MS  10000 /* longest a test polls a batch for */
#define BATCH_POLL_MS  5
#define BATCH_INLINE   ((size_t)20 * 1024 * 1024) /* the simulator's inline limit */
#define BATCH_QUICK_MS 20u                        /* pending and running time of the quick sims */
#define BATCH_SLOW_MS  60000u /* long enough that a test finds the batch still pending */

static sc_gemini_sim_t *test_start_batch(const char *faults, unsigned pending_ms,
                                         unsigned running_ms)
{
    sc_gemini_sim_opts_t o = {.faults = faults,
                              .threads = 2,
                              .batch_pending_ms = pending_ms,
                              .batch_running_ms = running_ms};
    sc_gemini_sim_t *sim = NULL;
    char err[256];
    sc_status_t st = sc_gemini_sim_start(&o, &sim, err, sizeof err);
    if (st != SC_OK)
        fail_msg("sim start: %s: %s", sc_strerror(st), err);
    return sim;
}

static void test_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* metadata.<field> of an Operation (borrowed). */
static const char *test_md_str(json_t *op, const char *field)
{
    return json_string_value(json_object_get(json_object_get(op, "metadata"), field));
}

static const char *test_stat(json_t *op, const char *field)
{
    json_t *st = json_object_get(json_object_get(op, "metadata"), "batchStats");
    return json_string_value(json_object_get(st, field));
}

/* Create a batch; assert 200. @return the Operation, a new reference. */
static json_t *test_batch_create(sc_gemini_sim_t *sim, const char *body)
{
    test_resp_t r = test_post(sim, BATCH_FLASH, body);
    if (r.status != 200)
        fail_msg("create: %ld %.300s", r.status, r.body);
    json_t *op = test_json(&r);
    test_resp_free(&r);
    return op;
}

/* GET a batch by its name ("batches/x"). @return the body's JSON, a new reference. */
static json_t *test_batch_get(sc_gemini_sim_t *sim, const char *name, long *status)
{
    char path[256];
    snprintf(path, sizeof path, "/v1beta/%s", name);
    test_resp_t r = test_http(sim, "GET", path, TEST_KEY, NULL, 0);
    *status = r.status;
    json_t *doc = test_json(&r);
    test_resp_free(&r);
    return doc;
}

/* Poll until done; states_seen gets one letter per distinct state in order (P, R, S, F, C, E).
 * @return the terminal Operation, a new reference. */
static json_t *test_batch_wait(sc_gemini_sim_t *sim, const char *name, char *seen, size_t seenlen)
{
    int64_t deadline = sc_now_ms() + BATCH_WAIT_MS;
    size_t ns = 0;
    seen[0] = '\0';
    for (;;) {
        long status = 0;
        json_t *op = test_batch_get(sim, name, &status);
        assert_int_equal(status, 200);
        const char *state = test_md_str(op, "state");
        assert_non_null(state);
        const char *p = strstr(state, "_STATE_");
        assert_non_null(p);
        char letter = p[7]; /* first letter of PENDING, RUNNING, SUCCEEDED... */
        if (ns + 1 < seenlen && (ns == 0 || seen[ns - 1] != letter)) {
            seen[ns++] = letter;
            seen[ns] = '\0';
        }
        if (json_is_true(json_object_get(op, "done")))
            return op;
        json_decref(op);
        if (sc_now_ms() > deadline)
            fail_msg("batch %s not done after %d ms (states %s)", name, BATCH_WAIT_MS, seen);
        test_sleep_ms(BATCH_POLL_MS);
    }
}

/* "YYYY-MM-DDTHH:MM:SS.fffffffffZ" */
static void test_assert_rfc3339(const char *t)
{
    assert_non_null(t);
    assert_int_equal(strlen(t), 30);
    assert_int_equal(t[4], '-');
    assert_int_equal(t[10], 'T');
    assert_int_equal(t[19], '.');
    assert_int_equal(t[29], 'Z');
}

static json_t *test_stats_doc(sc_gemini_sim_t *sim)
{
    char *s = sc_gemini_sim_stats_json(sim);
    assert_non_null(s);
    json_t *doc = json_loads(s, 0, NULL);
    assert_non_null(doc);
    free(s);
    return doc;
}

/* Three requests, one with its own system instruction and config; keys k1..k3. */
static const char *const batch_camel =
    "{\"batch\":{\"displayName\":\"camel-batch\",\"priority\":3,\"inputConfig\":{\"requests\":"
    "{\"requests\":["
    "{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"Describe photosynthesis.\"}]}]},"
    "\"metadata\":{\"key\":\"k1\"}},"
    "{\"request\":" /* req_camel, spliced below */
    "%s,\"metadata\":{\"key\":\"k2\",\"extra\":7}},"
    "{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"Why is the sky blue?\"}]}],"
    "\"generationConfig\":{\"temperature\":0.7,\"maxOutputTokens\":3}},"
    "\"metadata\":{\"key\":\"k3\"}}]}}}}";

static void test_batch_lifecycle(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start_batch(NULL, 50, 300);
    char body[4096];
    snprintf(body, sizeof body, batch_camel, req_camel);
    json_t *op = test_batch_create(sim, body);
    const char *name = json_string_value(json_object_get(op, "name"));
    assert_non_null(name);
    assert_true(strncmp(name, "batches/", 8) == 0 && strlen(name) > 20);
    assert_string_equal(test_md_str(op, "name"), name);
    assert_string_equal(test_md_str(op, "@type"),
                        "type.googleapis.com/google.ai.generativelanguage.v1main."
                        "GenerateContentBatch");
    assert_string_equal(test_md_str(op, "model"), "models/gemini-2.5-flash");
    assert_string_equal(test_md_str(op, "displayName"), "camel-batch");
    assert_string_equal(test_md_str(op, "state"), "BATCH_STATE_PENDING");
    test_assert_rfc3339(test_md_str(op, "createTime"));
    assert_string_equal(test_md_str(op, "createTime"), test_md_str(op, "updateTime"));
    assert_string_equal(test_stat(op, "requestCount"), "3"); /* int64: a string */
    assert_string_equal(test_stat(op, "pendingRequestCount"), "3");
    assert_null(test_stat(op, "successfulRequestCount"));
    assert_null(json_object_get(op, "done"));
    assert_null(json_object_get(op, "response"));
    char name_copy[128];
    sc_strlcpy(name_copy, name, sizeof name_copy);
    json_decref(op);

    char seen[16];
    op = test_batch_wait(sim, name_copy, seen, sizeof seen);
    assert_string_equal(seen, "PRS"); /* PENDING -> RUNNING -> SUCCEEDED */
    assert_true(json_is_true(json_object_get(op, "done")));
    assert_string_equal(test_md_str(op, "state"), "BATCH_STATE_SUCCEEDED");
    test_assert_rfc3339(test_md_str(op, "endTime"));
    assert_string_equal(test_md_str(op, "endTime"), test_md_str(op, "updateTime"));
    assert_true(strcmp(test_md_str(op, "endTime"), test_md_str(op, "createTime")) > 0);
    assert_string_equal(test_stat(op, "requestCount"), "3");
    assert_string_equal(test_stat(op, "successfulRequestCount"), "3");
    assert_null(test_stat(op, "failedRequestCount"));  /* zero: omitted */
    assert_null(test_stat(op, "pendingRequestCount")); /* zero: omitted */
    assert_null(json_object_get(op, "error"));
    json_t *resp = json_object_get(op, "response");
    assert_string_equal(json_string_value(json_object_get(resp, "@type")),
                        "type.googleapis.com/google.ai.generativelanguage.v1main."
                        "GenerateContentBatchOutput");
    assert_true(json_equal(resp, json_object_get(json_object_get(op, "metadata"), "output")));
    json_t *list = json_object_get(json_object_get(resp, "inlinedResponses"), "inlinedResponses");
    assert_int_equal(json_array_size(list), 3);

    /* each response is what generateContent answers for the same request (but the responseId) */
    const char *reqs[3] = {"{\"contents\":[{\"parts\":[{\"text\":\"Describe photosynthesis.\"}]}]}",
                           req_camel,
                           "{\"contents\":[{\"parts\":[{\"text\":\"Why is the sky blue?\"}]}],"
                           "\"generationConfig\":{\"temperature\":0.7,\"maxOutputTokens\":3}}"};
    const char *keys[3] = {"k1", "k2", "k3"};
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(list, i);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(e, "metadata"), "key")), keys[i]);
        assert_null(json_object_get(e, "error"));
        json_t *br = json_object_get(e, "response");
        test_resp_t g = test_post(sim, GEN_FLASH, reqs[i]);
        assert_int_equal(g.status, 200);
        json_t *gd = test_json(&g);
        assert_string_equal(test_text(br), test_text(gd));
        assert_string_equal(test_finish(br), test_finish(gd));
        assert_true(
            json_equal(json_object_get(br, "usageMetadata"), json_object_get(gd, "usageMetadata")));
        assert_true(test_usage(br, "promptTokenCount") > 0);
        assert_string_equal(json_string_value(json_object_get(br, "modelVersion")),
                            "gemini-2.5-flash");
        assert_non_null(json_string_value(json_object_get(br, "responseId")));
        json_decref(gd);
        test_resp_free(&g);
    }
    assert_string_equal(test_finish(json_object_get(json_array_get(list, 2), "response")),
                        "MAX_TOKENS");
    json_int_t extra = json_integer_value(
        json_object_get(json_object_get(json_array_get(list, 1), "metadata"), "extra"));
    assert_int_equal(extra, 7); /* metadata is echoed whole */

    /* a second read gives the same document: results are computed once */
    long status = 0;
    json_t *again = test_batch_get(sim, name_copy, &status);
    assert_int_equal(status, 200);
    assert_true(json_equal(op, again));
    json_decref(again);
    json_decref(op);

    json_t *stats = test_stats_doc(sim);
    assert_int_equal(json_integer_value(json_object_get(stats, "batches_created")), 1);
    assert_int_equal(json_integer_value(json_object_get(stats, "batch_requests")), 3);
    assert_int_equal(json_integer_value(json_object_get(stats, "duplicate_batch_keys")), 0);
    json_decref(stats);
    sc_gemini_sim_stop(sim);
}

static void test_batch_snake_case(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start_batch(NULL, BATCH_QUICK_MS, BATCH_QUICK_MS);
    const char *snake =
        "{\"batch\":{\"display_name\":\"snake-batch\",\"input_config\":{\"requests\":"
        "{\"requests\":[{\"request\":{\"system_instruction\":{\"parts\":[{\"text\":\"" SYS_TEXT
        "\"}]},\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"" USER_TEXT "\"}]}],"
        "\"generation_config\":{\"max_output_tokens\":5}},\"metadata\":{\"key\":\"s1\"}}]}}}}";
    json_t *op = test_batch_create(sim, snake);
    assert_string_equal(test_md_str(op, "displayName"), "snake-batch");
    assert_string_equal(test_stat(op, "requestCount"), "1");
    char name[128], seen[16];
    sc_strlcpy(name, json_string_value(json_object_get(op, "name")), sizeof name);
    json_decref(op);
    op = test_batch_wait(sim, name, seen, sizeof seen);
    json_t *e = json_array_get(
        json_object_get(json_object_get(json_object_get(op, "response"), "inlinedResponses"),
                        "inlinedResponses"),
        0);
    json_t *br = json_object_get(e, "response");
    assert_string_equal(test_finish(br), "MAX_TOKENS"); /* max_output_tokens was read */
    assert_int_equal(test_usage(br, "promptTokenCount"),
                     (json_int_t)((strlen(SYS_TEXT) + strlen(USER_TEXT) + 3) / 4));
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "metadata"), "key")),
                        "s1");
    json_decref(op);
    sc_gemini_sim_stop(sim);
}

static void test_batch_request_errors(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start_batch(NULL, BATCH_QUICK_MS, BATCH_QUICK_MS);
    const char *body =
        "{\"batch\":{\"inputConfig\":{\"requests\":{\"requests\":["
        "{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"fine\"}]}]},\"metadata\":{\"key\":"
        "\"ok\"}},"
        "{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],"
        "\"generationConfig\":{\"maxOutputTokens\":100000}},\"metadata\":{\"key\":\"big\"}},"
        "{\"request\":{\"contents\":[]},\"metadata\":{\"key\":\"empty\"}}]}}}}";
    json_t *op = test_batch_create(sim, body);
    assert_null(json_object_get(json_object_get(op, "metadata"), "displayName"));
    char name[128], seen[16];
    sc_strlcpy(name, json_string_value(json_object_get(op, "name")), sizeof name);
    json_decref(op);
    op = test_batch_wait(sim, name, seen, sizeof seen);
    assert_string_equal(test_md_str(op, "state"), "BATCH_STATE_SUCCEEDED"); /* not a failed batch */
    assert_string_equal(test_stat(op, "successfulRequestCount"), "1");
    assert_string_equal(test_stat(op, "failedRequestCount"), "2");
    json_t *list = json_object_get(
        json_object_get(json_object_get(op, "response"), "inlinedResponses"), "inlinedResponses");
    assert_non_null(json_object_get(json_array_get(list, 0), "response"));
    const char *needles[3] = {NULL, "The specified maxOutputTokens value 100000 is out of range",
                              "contents is not specified"};
    for (size_t i = 1; i < 3; i++) {
        json_t *e = json_array_get(list, i);
        assert_null(json_object_get(e, "response"));
        json_t *err = json_object_get(e, "error");
        assert_int_equal(json_integer_value(json_object_get(err, "code")), 400);
        assert_string_equal(json_string_value(json_object_get(err, "status")), "INVALID_ARGUMENT");
        assert_non_null(strstr(json_string_value(json_object_get(err, "message")), needles[i]));
        assert_non_null(json_object_get(json_object_get(e, "metadata"), "key"));
    }
    json_decref(op);
    sc_gemini_sim_stop(sim);

    /* batch_error=1: every request of the batch is answered with a 500 entry */
    sim = test_start_batch("batch_error=1", BATCH_QUICK_MS, BATCH_QUICK_MS);
    char big[4096];
    snprintf(big, sizeof big, batch_camel, req_camel);
    op = test_batch_create(sim, big);
    sc_strlcpy(name, json_string_value(json_object_get(op, "name")), sizeof name);
    json_decref(op);
    op = test_batch_wait(sim, name, seen, sizeof seen);
    assert_string_equal(test_md_str(op, "state"), "BATCH_STATE_SUCCEEDED");
    assert_string_equal(test_stat(op, "failedRequestCount"), "3");
    assert_null(test_stat(op, "successfulRequestCount"));
    list = json_object_get(json_object_get(json_object_get(op, "response"), "inlinedResponses"),
                           "inlinedResponses");
    assert_int_equal(json_array_size(list), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *err = json_object_get(json_array_get(list, i), "error");
        assert_int_equal(json_integer_value(json_object_get(err, "code")), 500);
        assert_string_equal(json_string_value(json_object_get(err, "status")), "INTERNAL");
    }
    json_decref(op);
    sc_gemini_sim_stop(sim);

    /* batch_error=0.5 with a seed: some of each, the same pattern for the same seed */
    char pattern[2][33];
    for (int s = 0; s < 2; s++) {
        sim = test_start_batch("batch_error=0.5,seed=11", BATCH_QUICK_MS, BATCH_QUICK_MS);
        char many[8192];
        size_t len = (size_t)snprintf(many, sizeof many,
                                      "{\"batch\":{\"inputConfig\":{\"requests\":{\"requests\":[");
        for (int i = 0; i < 32; i++)
            len +=
                (size_t)snprintf(many + len, sizeof many - len,
                                 "%s{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"q%d\"}]}]},"
                                 "\"metadata\":{\"key\":\"m%d\"}}",
                                 i ? "," : "", i, i);
        snprintf(many + len, sizeof many - len, "]}}}}");
        op = test_batch_create(sim, many);
        sc_strlcpy(name, json_string_value(json_object_get(op, "name")), sizeof name);
        json_decref(op);
        op = test_batch_wait(sim, name, seen, sizeof seen);
        list = json_object_get(json_object_get(json_object_get(op, "response"), "inlinedResponses"),
                               "inlinedResponses");
        for (size_t i = 0; i < 32; i++)
            pattern[s][i] = json_object_get(json_array_get(list, i), "error") ? 'x' : '.';
        pattern[s][32] = '\0';
        json_decref(op);
        sc_gemini_sim_stop(sim);
    }
    assert_string_equal(pattern[0], pattern[1]);
    assert_non_null(strchr(pattern[0], 'x'));
    assert_non_null(strchr(pattern[0], '.'));
}

static const char *const batch_one =
    "{\"batch\":{\"inputConfig\":{\"requests\":{\"requests\":[{\"request\":{\"contents\":"
    "[{\"parts\":[{\"text\":\"one\"}]}]},\"metadata\":{\"key\":\"one\"}}]}}}}";

static void test_batch_fail_expire(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start_batch("batch_fail=1", BATCH_QUICK_MS, BATCH_QUICK_MS);
    json_t *op = test_batch_create(sim, batch_one);
    assert_string_equal(test_md_str(op, "state"), "BATCH_STATE_PENDING");
    char name[128], seen[16];
    sc_strlcpy(name, json_string_value(json_object_get(op, "name")), sizeof name);
    json_decref(op);
    op = test_batch_wait(sim, name, seen, sizeof seen);
    assert_string_equal(test_md_str(op, "state"), "BATCH_STATE_FAILED");
    assert_true(json_is_true(json_object_get(op, "done")));
    json_t *err = json_object_get(op, "error");
    assert_true(json_is_object(err));
    assert_int_equal(json_integer_value(json_object_get(err, "code")), 500);
    assert_non_null(json_string_value(json_object_get(err, "message")));
    assert_null(json_object_get(op, "response"));
    assert_null(json_object_get(json_object_get(op, "metadata"), "output"));
    test_assert_rfc3339(test_md_str(op, "endTime"));
    json_decref(op);
    sc_gemini_sim_stop(sim);

    sim = test_start_batch("batch_expire=1", BATCH_QUICK_MS, BATCH_QUICK_MS);
    op = test_batch_create(sim, batch_one);
    sc_strlcpy(name, json_string_value(json_object_get(op, "name")), sizeof name);
    json_decref(op);
    op = test_batch_wait(sim, name, seen, sizeof seen);
    assert_string_equal(test_md_str(op, "state"), "BATCH_STATE_EXPIRED");
    assert_true(json_is_true(json_object_get(op, "done")));
    assert_null(json_object_get(op, "response"));
    assert_null(json_object_get(op, "error"));
    assert_null(json_object_get(json_object_get(op, "metadata"), "output"));
    json_decref(op);
    sc_gemini_sim_stop(sim);

    /* a bad spec is refused at start */
    sc_gemini_sim_opts_t o = {.faults = "batch_fail=0.7,batch_expire=0.7"};
    sc_gemini_sim_t *bad = NULL;
    char e[256] = "";
    assert_int_equal(sc_gemini_sim_start(&o, &bad, e, sizeof e), SC_ERR_INVALID_ARG);
    assert_non_null(strstr(e, "batch_fail+batch_expire"));
    o.faults = "job_state_prefix=2";
    assert_int_equal(sc_gemini_sim_start(&o, &bad, e, sizeof e), SC_ERR_INVALID_ARG);
    assert_non_null(strstr(e, "job_state_prefix"));
    o.faults = NULL;
    o.batch_pending_ms = SC_GEMINI_SIM_BATCH_DELAY_MS_MAX + 1;
    assert_int_equal(sc_gemini_sim_start(&o, &bad, e, sizeof e), SC_ERR_INVALID_ARG);
    assert_null(bad);
}

static void test_batch_job_state_prefix(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start_batch("job_state_prefix=1", BATCH_QUICK_MS, BATCH_QUICK_MS);
    json_t *op = test_batch_create(sim, batch_one);
    assert_string_equal(test_md_str(op, "state"), "JOB_STATE_PENDING");
    char name[128], seen[16];
    sc_strlcpy(name, json_string_value(json_object_get(op, "name")), sizeof name);
    json_decref(op);
    op = test_batch_wait(sim, name, seen, sizeof seen);
    assert_string_equal(test_md_str(op, "state"), "JOB_STATE_SUCCEEDED");
    json_decref(op);
    sc_gemini_sim_stop(sim);
}

static void test_batch_list_cancel_delete(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start_batch(NULL, BATCH_SLOW_MS, BATCH_SLOW_MS);
    enum { NB = 5 };
    char names[NB][128];
    for (int i = 0; i < NB; i++) {
        json_t *op = test_batch_create(sim, batch_one); /* the same key each time */
        sc_strlcpy(names[i], json_string_value(json_object_get(op, "name")), sizeof names[i]);
        json_decref(op);
    }
    /* page through two at a time */
    char path[256];
    char token[64] = "";
    int total = 0, pages = 0;
    do {
        snprintf(path, sizeof path, "/v1beta/batches?pageSize=2%s%s", token[0] ? "&pageToken=" : "",
                 token);
        test_resp_t r = test_http(sim, "GET", path, TEST_KEY, NULL, 0);
        assert_int_equal(r.status, 200);
        json_t *doc = test_json(&r);
        json_t *ops = json_object_get(doc, "operations");
        assert_true(json_array_size(ops) <= 2);
        for (size_t i = 0; i < json_array_size(ops); i++) {
            const char *n = json_string_value(json_object_get(json_array_get(ops, i), "name"));
            assert_string_equal(n, names[total]); /* creation order */
            assert_string_equal(test_md_str(json_array_get(ops, i), "state"),
                                "BATCH_STATE_PENDING");
            total++;
        }
        const char *next = json_string_value(json_object_get(doc, "nextPageToken"));
        sc_strlcpy(token, next ? next : "", sizeof token);
        json_decref(doc);
        test_resp_free(&r);
        pages++;
    } while (token[0] && pages < 10);
    assert_int_equal(total, NB);
    assert_int_equal(pages, 3);

    test_resp_t r = test_http(sim, "GET", "/v1beta/batches?pageSize=5000", TEST_KEY, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *doc = test_json(&r);
    assert_int_equal(json_array_size(json_object_get(doc, "operations")), NB);
    assert_null(json_object_get(doc, "nextPageToken"));
    json_decref(doc);
    test_resp_free(&r);
    r = test_http(sim, "GET", "/v1beta/batches?pageToken=garbage", TEST_KEY, NULL, 0);
    test_error(&r, 400, "INVALID_ARGUMENT", &doc);
    json_decref(doc);
    test_resp_free(&r);
    r = test_http(sim, "GET", "/v1beta/batches?pageSize=-1", TEST_KEY, NULL, 0);
    test_error(&r, 400, "INVALID_ARGUMENT", &doc);
    json_decref(doc);
    test_resp_free(&r);
    r = test_http(sim, "GET", "/v1beta/batches", NULL, NULL, 0); /* key needed */
    test_error(&r, 403, "PERMISSION_DENIED", &doc);
    json_decref(doc);
    test_resp_free(&r);

    /* cancel */
    snprintf(path, sizeof path, "/v1beta/%s:cancel", names[1]);
    r = test_http(sim, "POST", path, TEST_KEY, "", 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{}");
    test_resp_free(&r);
    long status = 0;
    json_t *op = test_batch_get(sim, names[1], &status);
    assert_int_equal(status, 200);
    assert_string_equal(test_md_str(op, "state"), "BATCH_STATE_CANCELLED");
    assert_true(json_is_true(json_object_get(op, "done")));
    assert_null(json_object_get(op, "response"));
    test_assert_rfc3339(test_md_str(op, "endTime"));
    json_decref(op);
    r = test_http(sim, "POST", path, TEST_KEY, "", 0); /* again: still {} */
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    op = test_batch_get(sim, names[0], &status); /* the others go on */
    assert_string_equal(test_md_str(op, "state"), "BATCH_STATE_PENDING");
    json_decref(op);

    /* delete */
    snprintf(path, sizeof path, "/v1beta/%s", names[2]);
    r = test_http(sim, "DELETE", path, TEST_KEY, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{}");
    test_resp_free(&r);
    op = test_batch_get(sim, names[2], &status);
    assert_int_equal(status, 404);
    assert_string_equal(json_string_value(json_object_get(json_object_get(op, "error"), "status")),
                        "NOT_FOUND");
    json_decref(op);
    r = test_http(sim, "DELETE", path, TEST_KEY, NULL, 0);
    test_error(&r, 404, "NOT_FOUND", &doc);
    json_decref(doc);
    test_resp_free(&r);
    r = test_http(sim, "POST", "/v1beta/batches/nosuchbatch:cancel", TEST_KEY, "", 0);
    test_error(&r, 404, "NOT_FOUND", &doc);
    json_decref(doc);
    test_resp_free(&r);
    r = test_http(sim, "GET", "/v1beta/batches/nosuchbatch", TEST_KEY, NULL, 0);
    test_error(&r, 404, "NOT_FOUND", &doc);
    json_decref(doc);
    test_resp_free(&r);
    r = test_http(sim, "GET", "/v1beta/batches", TEST_KEY, NULL, 0);
    doc = test_json(&r);
    assert_int_equal(json_array_size(json_object_get(doc, "operations")), NB - 1);
    json_decref(doc);
    test_resp_free(&r);

    /* the same key in five batches is one duplicate key */
    json_t *stats = test_stats_doc(sim);
    assert_int_equal(json_integer_value(json_object_get(stats, "duplicate_batch_keys")), 1);
    assert_int_equal(json_integer_value(json_object_get(stats, "batches_created")), NB);
    json_decref(stats);
    sc_gemini_sim_stop(sim); /* frees the pending batches */
}

static void test_batch_duplicate_keys(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start_batch(NULL, BATCH_SLOW_MS, BATCH_SLOW_MS);
    const char *fmt = "{\"batch\":{\"inputConfig\":{\"requests\":{\"requests\":["
                      "{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}]},"
                      "\"metadata\":{\"key\":\"%s\"}},"
                      "{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"b\"}]}]},"
                      "\"metadata\":{\"key\":\"%s\"}}]}}}}";
    struct {
        const char *k1, *k2;
        int dups; /* duplicate_batch_keys after this batch */
    } steps[] = {
        {"a", "a", 0},                /* twice in one batch: not a resubmission */
        {"b", "c", 0}, {"c", "d", 1}, /* c was in the batch before */
        {"c", "b", 2},                /* c is counted once; b is new as a duplicate */
        {"e", "f", 2},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(steps); i++) {
        char body[1024];
        snprintf(body, sizeof body, fmt, steps[i].k1, steps[i].k2);
        json_t *op = test_batch_create(sim, body);
        json_decref(op);
        json_t *stats = test_stats_doc(sim);
        assert_int_equal(json_integer_value(json_object_get(stats, "duplicate_batch_keys")),
                         steps[i].dups);
        assert_int_equal(json_integer_value(json_object_get(stats, "batch_keys_overflow")), 0);
        json_decref(stats);
    }
    /* a rejected create remembers nothing */
    test_resp_t r = test_post(sim, "/v1beta/models/nope:batchGenerateContent", batch_one);
    assert_int_equal(r.status, 404);
    test_resp_free(&r);
    json_t *op = test_batch_create(sim, batch_one);
    json_decref(op);
    json_t *stats = test_stats_doc(sim);
    assert_int_equal(json_integer_value(json_object_get(stats, "duplicate_batch_keys")), 2);
    assert_int_equal(json_integer_value(json_object_get(stats, "batches_created")), 6);
    assert_int_equal(json_integer_value(json_object_get(stats, "batch_requests")), 11);
    json_decref(stats);
    sc_gemini_sim_stop(sim);
}

static void test_batch_rejects(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start_batch(NULL, BATCH_SLOW_MS, BATCH_SLOW_MS);
    struct {
        const char *body, *needle;
    } cases[] = {
        {"{}", "batch is not specified"},
        {"not json", "Invalid JSON payload"},
        {"{\"batch\":{\"displayName\":\"x\"}}", "input_config is not specified"},
        {"{\"batch\":{\"inputConfig\":{}}}", "requests must not be empty"},
        {"{\"batch\":{\"input_config\":{\"requests\":{}}}}", "requests must not be empty"},
        {"{\"batch\":{\"input_config\":{\"requests\":{\"requests\":[]}}}}",
         "requests must not be empty"},
        {"{\"batch\":{\"input_config\":{\"file_name\":\"files/123\"}}}",
         "file input is not supported by the simulator"},
        {"{\"batch\":{\"inputConfig\":{\"fileName\":\"files/123\"}}}",
         "file input is not supported by the simulator"},
        {"{\"batch\":{\"inputConfig\":{\"requests\":{\"requests\":[7]}}}}", "InlinedRequest"},
        {"{\"batch\":{\"displayName\":5,\"inputConfig\":{\"requests\":{\"requests\":"
         "[{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}]}}]}}}}",
         "display_name"},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(cases); i++) {
        test_resp_t r = test_post(sim, BATCH_FLASH, cases[i].body);
        json_t *doc = NULL;
        const char *msg = test_error(&r, 400, "INVALID_ARGUMENT", &doc);
        if (!strstr(msg, cases[i].needle))
            fail_msg("case %zu: message '%s' lacks '%s'", i, msg, cases[i].needle);
        json_decref(doc);
        test_resp_free(&r);
    }
    json_t *doc = NULL;
    test_resp_t r = test_post(sim, "/v1beta/models/gemini-9-ultra:batchGenerateContent", batch_one);
    const char *msg = test_error(&r, 404, "NOT_FOUND", &doc);
    assert_non_null(strstr(msg, "models/gemini-9-ultra"));
    json_decref(doc);
    test_resp_free(&r);
    r = test_http(sim, "POST", BATCH_FLASH, NULL, batch_one, strlen(batch_one));
    test_error(&r, 403, "PERMISSION_DENIED", &doc);
    json_decref(doc);
    test_resp_free(&r);

    /* the 20 MB inline limit: one byte over is refused, just under is accepted */
    const char *head = "{\"batch\":{\"inputConfig\":{\"requests\":{\"requests\":[{\"request\":"
                       "{\"contents\":[{\"parts\":[{\"text\":\"";
    const char *tail = "\"}]}]},\"metadata\":{\"key\":\"huge\"}}]}}}}";
    size_t fixed = strlen(head) + strlen(tail);
    size_t sizes[2] = {BATCH_INLINE + 1, BATCH_INLINE - 16};
    long want[2] = {400, 200};
    char *big = malloc(BATCH_INLINE + 1);
    assert_non_null(big);
    for (int k = 0; k < 2; k++) {
        size_t n = sizes[k];
        memcpy(big, head, strlen(head));
        memset(big + strlen(head), 'a', n - fixed);
        memcpy(big + n - strlen(tail), tail, strlen(tail));
        r = test_http(sim, "POST", BATCH_FLASH, TEST_KEY, big, n);
        if (r.status != want[k])
            fail_msg("body of %zu bytes: %ld %.200s", n, r.status, r.body);
        if (want[k] == 400) {
            msg = test_error(&r, 400, "INVALID_ARGUMENT", &doc);
            assert_non_null(strstr(msg, "exceeds the limit"));
            json_decref(doc);
        }
        test_resp_free(&r);
    }
    free(big);

    json_t *stats = test_stats_doc(sim);
    assert_int_equal(json_integer_value(json_object_get(stats, "batches_created")), 1);
    json_decref(stats);
    sc_gemini_sim_stop(sim);
}

/* The table holds SC_SIM_BATCH_MAX (4096) batches; one more is a 429 until one is deleted. */
static void test_batch_table_full(void **state)
{
    (void)state;
    enum { LIMIT = 4096 };
    sc_gemini_sim_t *sim = test_start_batch(NULL, BATCH_SLOW_MS, BATCH_SLOW_MS);
    char first[128] = "";
    for (int i = 0; i < LIMIT; i++) {
        test_resp_t r = test_post(sim, BATCH_FLASH, batch_one);
        if (r.status != 200)
            fail_msg("create %d: %ld %.200s", i, r.status, r.body);
        if (i == 0) {
            json_t *op = test_json(&r);
            sc_strlcpy(first, json_string_value(json_object_get(op, "name")), sizeof first);
            json_decref(op);
        }
        test_resp_free(&r);
    }
    /* pageSize is clamped to 1000 */
    test_resp_t r = test_http(sim, "GET", "/v1beta/batches?pageSize=5000", TEST_KEY, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *doc = test_json(&r);
    assert_int_equal(json_array_size(json_object_get(doc, "operations")), 1000);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(doc, "operations"), 0), "name")),
                        first);
    assert_non_null(json_string_value(json_object_get(doc, "nextPageToken")));
    json_decref(doc);
    test_resp_free(&r);

    r = test_post(sim, BATCH_FLASH, batch_one);
    const char *msg = test_error(&r, 429, "RESOURCE_EXHAUSTED", &doc);
    assert_non_null(strstr(msg, "too many batches"));
    json_decref(doc);
    test_resp_free(&r);
    char path[256];
    snprintf(path, sizeof path, "/v1beta/%s", first);
    r = test_http(sim, "DELETE", path, TEST_KEY, NULL, 0);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    r = test_post(sim, BATCH_FLASH, batch_one);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);
}

/* ---- context caching ---- */

#define CACHES       "/v1beta/cachedContents"
#define GEN_PRO      "/v1beta/models/gemini-2.5-pro:generateContent"
#define CACHE_SYS_N  5000 /* chars of the cached system instruction */
#define CACHE_CTX_N  1000 /* chars of the cached contents */
#define CACHE_TOKENS ((CACHE_SYS_N + CACHE_CTX_N) / 4)

/* n copies of 'a'..'z' cycling. @remark the caller frees. */
static char *test_text_n(size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + i % 26);
    s[n] = '\0';
    return s;
}

/* A create body. ttl_field: e.g. "\"ttl\":\"300s\"" or NULL for none. @remark the caller frees. */
static char *test_cache_body(const char *model, size_t sys_n, size_t ctx_n, const char *ttl_field)
{
    char *sys = test_text_n(sys_n), *ctx = test_text_n(ctx_n);
    json_t *b = json_pack("{s:s, s:s, s:{s:[{s:s}]}}", "model", model, "displayName", "test-cache",
                          "systemInstruction", "parts", "text", sys);
    if (ctx_n > 0)
        json_object_set_new(b, "contents",
                            json_pack("[{s:s, s:[{s:s}]}]", "role", "user", "parts", "text", ctx));
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    free(sys);
    free(ctx);
    if (ttl_field) { /* splice the field in before the closing brace */
        size_t n = strlen(s) + strlen(ttl_field) + 2;
        char *t = malloc(n);
        snprintf(t, n, "%.*s,%s}", (int)strlen(s) - 1, s, ttl_field);
        free(s);
        s = t;
    }
    return s;
}

/* RFC 3339 "…Z" as seconds since the epoch (with the fraction). */
static double test_time_s(const char *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    assert_non_null(t);
    assert_int_equal(sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec),
                     6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    double frac = t[19] == '.' ? strtod(t + 19, NULL) : 0.0;
    return (double)timegm(&tm) + frac;
}

static const char *test_str(json_t *doc, const char *key)
{
    return json_string_value(json_object_get(doc, key));
}

/* POST a cache; assert 200. @return the CachedContent, a new reference. */
static json_t *test_cache_create(sc_gemini_sim_t *sim, const char *body)
{
    test_resp_t r = test_post(sim, CACHES, body);
    if (r.status != 200)
        fail_msg("cache create: %ld %.300s", r.status, r.body);
    json_t *doc = test_json(&r);
    test_resp_free(&r);
    return doc;
}

/* A generateContent body using cache name (plus extra JSON members, may be ""). */
static char *test_gen_cached(const char *name, const char *extra)
{
    size_t n = strlen(name) + strlen(extra) + 256;
    char *b = malloc(n);
    snprintf(b, n,
             "{\"cachedContent\":\"%s\",\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":"
             "\"" USER_TEXT "\"}]}]%s}",
             name, extra);
    return b;
}

static void test_cache_lifecycle(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    char *body = test_cache_body("models/gemini-2.5-flash", CACHE_SYS_N, CACHE_CTX_N,
                                 "\"ttl\":\"300s\"");
    json_t *cc = test_cache_create(sim, body);
    free(body);
    char name[128];
    sc_strlcpy(name, test_str(cc, "name"), sizeof name);
    assert_memory_equal(name, "cachedContents/", 15);
    assert_string_equal(test_str(cc, "model"), "models/gemini-2.5-flash");
    assert_string_equal(test_str(cc, "displayName"), "test-cache");
    assert_int_equal(test_usage(cc, "totalTokenCount"), CACHE_TOKENS);
    assert_null(json_object_get(cc, "contents")); /* input-only: never echoed */
    assert_null(json_object_get(cc, "systemInstruction"));
    test_assert_rfc3339(test_str(cc, "createTime"));
    test_assert_rfc3339(test_str(cc, "updateTime"));
    test_assert_rfc3339(test_str(cc, "expireTime"));
    double created = test_time_s(test_str(cc, "createTime"));
    assert_true(fabs(test_time_s(test_str(cc, "expireTime")) - created - 300.0) < 1e-3);
    json_decref(cc);

    char path[256];
    snprintf(path, sizeof path, "/v1beta/%s", name);
    long status = 0;
    json_t *got = test_batch_get(sim, name, &status);
    assert_int_equal(status, 200);
    assert_string_equal(test_str(got, "name"), name);
    assert_int_equal(test_usage(got, "totalTokenCount"), CACHE_TOKENS);
    json_decref(got);

    /* generateContent with the cache: the prefix's tokens are cached and part of the prompt */
    char *gen = test_gen_cached(name, "");
    test_resp_t r = test_post(sim, GEN_FLASH, gen);
    assert_int_equal(r.status, 200);
    json_t *doc = test_json(&r);
    test_resp_free(&r);
    long user_tokens = (long)(strlen(USER_TEXT) + 3) / 4;
    assert_int_equal(test_usage(doc, "cachedContentTokenCount"), CACHE_TOKENS);
    assert_int_equal(test_usage(doc, "promptTokenCount"), CACHE_TOKENS + user_tokens);
    /* the same last user turn without the cache gives the same answer */
    r = test_post(sim, GEN_FLASH, "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"" USER_TEXT
                                  "\"}]}]}");
    json_t *plain = test_json(&r);
    test_resp_free(&r);
    assert_string_equal(test_text(doc), test_text(plain));
    assert_null(json_object_get(json_object_get(plain, "usageMetadata"), "cachedContentTokenCount"));
    json_decref(plain);
    json_decref(doc);
    free(gen);

    /* systemInstruction, tools or toolConfig beside a cache: 400 (gemini-api.md §1.4) */
    static const char *const conflicts[] = {
        ",\"systemInstruction\":{\"parts\":[{\"text\":\"x\"}]}",
        ",\"system_instruction\":{\"parts\":[{\"text\":\"x\"}]}",
        ",\"tools\":[{\"functionDeclarations\":[]}]",
        ",\"toolConfig\":{}",
    };
    for (size_t i = 0; i < sizeof conflicts / sizeof conflicts[0]; i++) {
        gen = test_gen_cached(name, conflicts[i]);
        r = test_post(sim, GEN_FLASH, gen);
        const char *msg = test_error(&r, 400, "INVALID_ARGUMENT", &doc);
        assert_non_null(strstr(msg, "CachedContent can not be used with GenerateContent request "
                                    "setting system_instruction, tools or tool_config"));
        json_decref(doc);
        test_resp_free(&r);
        free(gen);
    }
    /* another model than the cache's: 400; an unknown cache: 404 */
    gen = test_gen_cached(name, "");
    r = test_post(sim, GEN_PRO, gen);
    assert_non_null(strstr(test_error(&r, 400, "INVALID_ARGUMENT", &doc), "has to be the same"));
    json_decref(doc);
    test_resp_free(&r);
    free(gen);
    gen = test_gen_cached("cachedContents/nosuchcache", "");
    r = test_post(sim, GEN_FLASH, gen);
    test_error(&r, 404, "NOT_FOUND", &doc);
    json_decref(doc);
    test_resp_free(&r);
    free(gen);

    /* PATCH: ttl or expireTime only */
    r = test_http(sim, "PATCH", path, TEST_KEY, "{\"ttl\":\"600s\"}", 14);
    assert_int_equal(r.status, 200);
    doc = test_json(&r);
    test_resp_free(&r);
    assert_true(fabs(test_time_s(test_str(doc, "expireTime")) -
                     test_time_s(test_str(doc, "updateTime")) - 600.0) < 1e-3);
    assert_true(test_time_s(test_str(doc, "updateTime")) >= created);
    assert_int_equal(test_usage(doc, "totalTokenCount"), CACHE_TOKENS);
    json_decref(doc);
    char when[64], pbody[128];
    time_t later = time(NULL) + 7200;
    struct tm tm;
    gmtime_r(&later, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S.5Z", &tm);
    snprintf(pbody, sizeof pbody, "{\"expire_time\":\"%s\"}", when);
    r = test_http(sim, "PATCH", path, TEST_KEY, pbody, strlen(pbody));
    assert_int_equal(r.status, 200);
    doc = test_json(&r);
    test_resp_free(&r);
    assert_true(fabs(test_time_s(test_str(doc, "expireTime")) - ((double)later + 0.5)) < 1e-3);
    json_decref(doc);
    static const char *const bad_patches[] = {"{\"displayName\":\"x\"}", "{}",
                                              "{\"ttl\":\"1s\",\"expireTime\":\"2030-01-01T00:00:00Z\"}",
                                              "{\"ttl\":\"soon\"}"};
    for (size_t i = 0; i < sizeof bad_patches / sizeof bad_patches[0]; i++) {
        r = test_http(sim, "PATCH", path, TEST_KEY, bad_patches[i], strlen(bad_patches[i]));
        test_error(&r, 400, "INVALID_ARGUMENT", &doc);
        json_decref(doc);
        test_resp_free(&r);
    }

    /* list: a second cache, pages of one */
    body = test_cache_body("models/gemini-2.5-flash", 8000, 0, NULL); /* default TTL: 1 hour */
    cc = test_cache_create(sim, body);
    free(body);
    assert_true(fabs(test_time_s(test_str(cc, "expireTime")) -
                     test_time_s(test_str(cc, "createTime")) - 3600.0) < 1e-3);
    char second[128];
    sc_strlcpy(second, test_str(cc, "name"), sizeof second);
    json_decref(cc);
    r = test_http(sim, "GET", CACHES "?pageSize=1", TEST_KEY, NULL, 0);
    assert_int_equal(r.status, 200);
    doc = test_json(&r);
    test_resp_free(&r);
    json_t *list = json_object_get(doc, "cachedContents");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(test_str(json_array_get(list, 0), "name"), name);
    assert_null(json_object_get(json_array_get(list, 0), "systemInstruction"));
    char url[256];
    snprintf(url, sizeof url, CACHES "?pageSize=1&pageToken=%s", test_str(doc, "nextPageToken"));
    json_decref(doc);
    r = test_http(sim, "GET", url, TEST_KEY, NULL, 0);
    doc = test_json(&r);
    test_resp_free(&r);
    list = json_object_get(doc, "cachedContents");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(test_str(json_array_get(list, 0), "name"), second);
    assert_null(json_object_get(doc, "nextPageToken"));
    json_decref(doc);

    /* DELETE -> {}; then 404 everywhere */
    r = test_http(sim, "DELETE", path, TEST_KEY, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{}");
    test_resp_free(&r);
    got = test_batch_get(sim, name, &status);
    assert_int_equal(status, 404);
    json_decref(got);
    r = test_http(sim, "DELETE", path, TEST_KEY, NULL, 0);
    assert_int_equal(r.status, 404);
    test_resp_free(&r);
    gen = test_gen_cached(name, "");
    r = test_post(sim, GEN_FLASH, gen);
    assert_int_equal(r.status, 404);
    test_resp_free(&r);
    free(gen);

    json_t *stats = test_stats_doc(sim);
    assert_int_equal(json_integer_value(json_object_get(stats, "caches_created")), 2);
    assert_int_equal(json_integer_value(json_object_get(stats, "caches_deleted")), 1);
    assert_int_equal(json_integer_value(json_object_get(stats, "caches_live")), 1);
    assert_int_equal(json_integer_value(json_object_get(stats, "cached_tokens_served")),
                     CACHE_TOKENS);
    assert_true(json_real_value(json_object_get(stats, "storage_token_seconds")) > 0.0);
    json_decref(stats);
    sc_gemini_sim_stop(sim);
}

static void test_cache_too_small_and_errors(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    json_t *doc = NULL;
    /* 1000 chars = 250 tokens < 1024 (flash) */
    char *body = test_cache_body("models/gemini-2.5-flash", 1000, 0, NULL);
    test_resp_t r = test_post(sim, CACHES, body);
    assert_string_equal(test_error(&r, 400, "INVALID_ARGUMENT", &doc),
                        "Cached content is too small. total_token_count=250, "
                        "min_total_token_count=1024");
    json_decref(doc);
    test_resp_free(&r);
    free(body);
    /* 8000 chars = 2000 tokens: enough for flash, not for pro (4096) */
    body = test_cache_body("models/gemini-2.5-pro", 8000, 0, NULL);
    r = test_post(sim, CACHES, body);
    assert_string_equal(test_error(&r, 400, "INVALID_ARGUMENT", &doc),
                        "Cached content is too small. total_token_count=2000, "
                        "min_total_token_count=4096");
    json_decref(doc);
    test_resp_free(&r);
    free(body);

    static const struct {
        const char *body;
        long code;
    } bad[] = {
        {"{\"systemInstruction\":{\"parts\":[{\"text\":\"x\"}]}}", 400},   /* no model */
        {"{\"model\":\"gemini-2.5-flash\"}", 404},                        /* no models/ */
        {"{\"model\":\"models/nope\"}", 404},                             /* unknown model */
        {"{\"model\":\"models/gemini-2.5-flash\",\"ttl\":\"1s\","
         "\"expireTime\":\"2030-01-01T00:00:00Z\"}", 400},                /* one-of */
        {"{\"model\":\"models/gemini-2.5-flash\",\"ttl\":\"-5s\"}", 400},
        {"{\"model\":\"models/gemini-2.5-flash\",\"expireTime\":\"2001-01-01T00:00:00Z\"}", 400},
        {"{\"model\":\"models/gemini-2.5-flash\",\"contents\":[{\"role\":\"x\",\"parts\":[{\"text\":"
         "\"a\"}]}]}", 400},
        {"[]", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = test_post(sim, CACHES, bad[i].body);
        if (r.status != bad[i].code)
            fail_msg("bad[%zu]: %ld %.200s", i, r.status, r.body);
        test_resp_free(&r);
    }
    json_t *stats = test_stats_doc(sim);
    assert_int_equal(json_integer_value(json_object_get(stats, "caches_too_small")), 2);
    assert_int_equal(json_integer_value(json_object_get(stats, "caches_created")), 0);
    json_decref(stats);
    sc_gemini_sim_stop(sim);

    /* a configured minimum applies to every model; snake_case keys are accepted */
    sc_gemini_sim_opts_t o = {.threads = 2, .cache_min_tokens = 100};
    char err[256];
    assert_int_equal(sc_gemini_sim_start(&o, &sim, err, sizeof err), SC_OK);
    char when[64], sbody[1024];
    time_t later = time(NULL) + 60;
    struct tm tm;
    gmtime_r(&later, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char *sys = test_text_n(400); /* 100 tokens */
    snprintf(sbody, sizeof sbody,
             "{\"model\":\"models/gemini-2.5-pro\",\"display_name\":\"snake\","
             "\"system_instruction\":{\"parts\":[{\"text\":\"%s\"}]},\"expire_time\":\"%s\"}",
             sys, when);
    free(sys);
    json_t *cc = test_cache_create(sim, sbody);
    assert_int_equal(test_usage(cc, "totalTokenCount"), 100);
    assert_string_equal(test_str(cc, "displayName"), "snake");
    assert_true(fabs(test_time_s(test_str(cc, "expireTime")) - (double)later) < 1e-3);
    json_decref(cc);
    body = test_cache_body("models/gemini-2.5-flash", 396, 0, NULL); /* 99 tokens */
    r = test_post(sim, CACHES, body);
    assert_non_null(strstr(test_error(&r, 400, "INVALID_ARGUMENT", &doc),
                           "total_token_count=99, min_total_token_count=100"));
    json_decref(doc);
    test_resp_free(&r);
    free(body);
    sc_gemini_sim_stop(sim);

    o.cache_min_tokens = SC_GEMINI_SIM_CACHE_MIN_TOKENS_MAX + 1;
    assert_int_equal(sc_gemini_sim_start(&o, &sim, err, sizeof err), SC_ERR_INVALID_ARG);
}

/* An expired cache is gone (404); its storage is tokens x its TTL exactly. */
static void test_cache_expiry_storage(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    char *body = test_cache_body("models/gemini-2.5-flash", 8000, 0, "\"ttl\":\"0.25s\"");
    json_t *cc = test_cache_create(sim, body);
    free(body);
    char name[128];
    sc_strlcpy(name, test_str(cc, "name"), sizeof name);
    json_decref(cc);
    int64_t deadline = sc_now_ms() + BATCH_WAIT_MS;
    for (;;) {
        long status = 0;
        json_t *got = test_batch_get(sim, name, &status);
        json_decref(got);
        if (status == 404)
            break;
        assert_int_equal(status, 200);
        if (sc_now_ms() > deadline)
            fail_msg("cache %s never expired", name);
        test_sleep_ms(BATCH_POLL_MS);
    }
    char *gen = test_gen_cached(name, "");
    test_resp_t r = test_post(sim, GEN_FLASH, gen);
    assert_int_equal(r.status, 404);
    test_resp_free(&r);
    free(gen);
    r = test_http(sim, "GET", CACHES, TEST_KEY, NULL, 0);
    json_t *doc = test_json(&r);
    assert_int_equal(json_array_size(json_object_get(doc, "cachedContents")), 0);
    json_decref(doc);
    test_resp_free(&r);
    json_t *stats = test_stats_doc(sim);
    assert_int_equal(json_integer_value(json_object_get(stats, "caches_expired")), 1);
    assert_int_equal(json_integer_value(json_object_get(stats, "caches_live")), 0);
    double storage = json_real_value(json_object_get(stats, "storage_token_seconds"));
    assert_true(fabs(storage - 2000 * 0.25) < 1e-6);
    json_decref(stats);
    sc_gemini_sim_stop(sim);
}

int main(void)
{
    if (!getenv("SCRIMP_LOG"))
        sc_log_set_level(SC_LOG_WARN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_shape),
        cmocka_unit_test(test_thinking_by_model),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_snake_case_and_max_tokens),
        cmocka_unit_test(test_key_missing),
        cmocka_unit_test(test_key_wrong),
        cmocka_unit_test(test_unknown_model_and_route),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_count_tokens),
        cmocka_unit_test(test_fault_429_transient),
        cmocka_unit_test(test_fault_kinds),
        cmocka_unit_test(test_fault_seeded),
        cmocka_unit_test(test_bad_fault_spec),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_stop_null),
        cmocka_unit_test(test_batch_lifecycle),
        cmocka_unit_test(test_batch_snake_case),
        cmocka_unit_test(test_batch_request_errors),
        cmocka_unit_test(test_batch_fail_expire),
        cmocka_unit_test(test_batch_job_state_prefix),
        cmocka_unit_test(test_batch_list_cancel_delete),
        cmocka_unit_test(test_batch_duplicate_keys),
        cmocka_unit_test(test_batch_rejects),
        cmocka_unit_test(test_batch_table_full),
        cmocka_unit_test(test_cache_lifecycle),
        cmocka_unit_test(test_cache_too_small_and_errors),
        cmocka_unit_test(test_cache_expiry_storage),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
