/* test_gemini_sim.c - the simulator on loopback, driven with libcurl: shapes, arithmetic,
 * determinism, keys, validation, countTokens, fault injection, stats, start and stop; the API's
 * rules (unknown fields, snake_case, thinking, candidates, schemas, stop sequences, thought
 * summaries, function calling), streamGenerateContent, the models and the embeddings. Batch Mode
 * is tested in test_gemini_sim_batches.c, context caching in test_gemini_sim_caches.c. */
#include <stdbool.h>

#include "tests/gemini_sim_test_util.h"

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
        {"/v1beta/models/gemini-2.5-pro:generateContent", body, 1}, /* budget 0: 400, below */
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
        {"{\"contents\":[{\"role\":\"system\",\"parts\":[{\"text\":\"x\"}]}]}", "role"},
        {"{\"contents\":[{\"role\":\"user\",\"parts\":[]}]}", "parts"},
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

    /* countTokens agrees with generateContent's promptTokenCount: the wrapped form of a whole
     * request counts what generateContent counts, the plain form only the contents */
    json_t *req = json_loads(req_camel, 0, NULL);
    assert_non_null(req);
    json_t *plain = json_pack("{s:O}", "contents", json_object_get(req, "contents"));
    assert_int_equal(json_object_set_new(req, "model", json_string("models/gemini-2.5-flash")), 0);
    json_t *wrap = json_pack("{s:O}", "generateContentRequest", req);
    char *plain_s = json_dumps(plain, JSON_COMPACT), *wrap_s = json_dumps(wrap, JSON_COMPACT);
    r = test_post(sim, "/v1beta/models/gemini-2.5-flash:countTokens", plain_s);
    test_resp_t w = test_post(sim, "/v1beta/models/gemini-2.5-flash:countTokens", wrap_s);
    test_resp_t g = test_post(sim, GEN_FLASH, req_camel);
    json_t *jc = test_json(&r), *jw = test_json(&w), *jg = test_json(&g);
    size_t contents_chars = strlen(USER_TEXT) + strlen(MODEL_TEXT) + strlen(USER2_TEXT);
    assert_int_equal(json_integer_value(json_object_get(jc, "totalTokens")),
                     (json_int_t)((contents_chars + 3) / 4)); /* plain form: no system text */
    assert_int_equal(test_usage(jg, "promptTokenCount"),
                     json_integer_value(json_object_get(jw, "totalTokens")));
    assert_true(test_usage(jg, "promptTokenCount") >
                json_integer_value(json_object_get(jc, "totalTokens")));
    json_decref(jc);
    json_decref(jw);
    json_decref(jg);
    test_resp_free(&r);
    test_resp_free(&w);
    test_resp_free(&g);

    /* the API's CountTokensRequest has no systemInstruction of its own: the unknown name is
     * refused, and the wrapped form must name its model */
    r = test_post(sim, "/v1beta/models/gemini-2.5-flash:countTokens", req_camel);
    const char *msg = test_error(&r, 400, "INVALID_ARGUMENT", &doc);
    assert_non_null(
        strstr(msg, "Invalid JSON payload received. Unknown name \"systemInstruction\""));
    json_decref(doc);
    test_resp_free(&r);
    assert_int_equal(json_object_del(req, "model"), 0);
    free(wrap_s);
    wrap_s = json_dumps(wrap, JSON_COMPACT);
    r = test_post(sim, "/v1beta/models/gemini-2.5-flash:countTokens", wrap_s);
    msg = test_error(&r, 400, "INVALID_ARGUMENT", &doc);
    assert_non_null(strstr(msg, "model"));
    json_decref(doc);
    test_resp_free(&r);
    free(plain_s);
    free(wrap_s);
    json_decref(plain);
    json_decref(wrap);
    json_decref(req);

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
    r = test_post(sim, "/v1beta/models/gemini-2.5-flash:countTokens",
                  "{\"contents\":[{\"parts\":[{\"text\":\"count me\"}]}]}");
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

/* ---- the API's rules (gemini-api.md §1-§3; the Python SDK as the peer) ---- */

#define GEN_PRO    "/v1beta/models/gemini-2.5-pro:generateContent"
#define STREAM_SSE "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
#define STREAM_RAW "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
#define EMBED_001  "/v1beta/models/gemini-embedding-001"
#define SIM_MODELS 7 /* five generation models and two embedding models */
#define SSE_SEP    "\r\n\r\n"

/* A body with one user turn of text T, without its closing brace (append ",\"...\":...}" or
 * "}"). */
#define ONE_TURN(T) "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"" T "\"}]}]"

/* Two functions: one with a Gemini Schema, one with a JSON Schema. */
#define TOOLS_TWO                                                                                  \
    "\"tools\":[{\"functionDeclarations\":["                                                       \
    "{\"name\":\"get_weather\",\"description\":\"Get the current weather in a city\","             \
    "\"parameters\":{\"type\":\"OBJECT\",\"properties\":{\"city\":{\"type\":\"STRING\"},"          \
    "\"unit\":{\"type\":\"STRING\",\"enum\":[\"C\",\"F\"]}},\"required\":[\"city\"]}},"            \
    "{\"name\":\"get_time\",\"description\":\"Get the local time in a timezone\","                 \
    "\"parametersJsonSchema\":{\"type\":\"object\",\"properties\":{\"tz\":{\"type\":\"string\"}}," \
    "\"required\":[\"tz\"]}}]}]"

/* POST body to path and expect 200. @return the JSON, a new reference. */
static json_t *rule_ok(const sc_gemini_sim_t *sim, const char *path, const char *body)
{
    test_resp_t r = test_post(sim, path, body);
    if (r.status != 200)
        fail_msg("%s: %ld %.400s (body %.300s)", path, r.status, r.body, body);
    json_t *doc = test_json(&r);
    test_resp_free(&r);
    return doc;
}

/* POST body to path and expect a 400 INVALID_ARGUMENT whose message holds needle.
 * @return the message (the caller frees it). */
static char *rule_400(const sc_gemini_sim_t *sim, const char *path, const char *body,
                      const char *needle)
{
    test_resp_t r = test_post(sim, path, body);
    json_t *doc = NULL;
    const char *msg = test_error(&r, 400, "INVALID_ARGUMENT", &doc);
    if (!strstr(msg, needle))
        fail_msg("body %.300s: message '%s' lacks '%s'", body, msg, needle);
    char *out = strdup(msg);
    assert_non_null(out);
    json_decref(doc);
    test_resp_free(&r);
    return out;
}

static void rule_400_free(const sc_gemini_sim_t *sim, const char *path, const char *body,
                          const char *needle)
{
    free(rule_400(sim, path, body, needle));
}

/* Candidate c of a GenerateContentResponse (borrowed). */
static json_t *rule_cand(json_t *doc, size_t c)
{
    return json_array_get(json_object_get(doc, "candidates"), c);
}

/* Part i of candidate c (borrowed), or NULL. */
static json_t *rule_part(json_t *doc, size_t c, size_t i)
{
    return json_array_get(json_object_get(json_object_get(rule_cand(doc, c), "content"), "parts"),
                          i);
}

static size_t rule_nparts(json_t *doc, size_t c)
{
    return json_array_size(json_object_get(json_object_get(rule_cand(doc, c), "content"), "parts"));
}

/* The functionCall of candidate c's first part that is not a thought (borrowed), or NULL. */
static json_t *rule_call(json_t *doc, size_t c)
{
    for (size_t i = 0; i < rule_nparts(doc, c); i++) {
        json_t *call = json_object_get(rule_part(doc, c, i), "functionCall");
        if (call)
            return call;
    }
    return NULL;
}

static const char *rule_arg(json_t *call, const char *name)
{
    return json_string_value(json_object_get(json_object_get(call, "args"), name));
}

/* An unknown field anywhere is refused with a 400 that names it, worded as the API words it. */
static void test_unknown_field(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    static const struct {
        const char *body, *needle;
    } cases[] = {
        {ONE_TURN("x") ",\"generationConfig\":{\"temprature\":0.5}}",
         "generationConfig.temprature"},
        {ONE_TURN("x") ",\"bogus\":1}", "bogus"},
        {"{\"contents\":[{\"parts\":[{\"inline_dat\":{}}]}]}", "contents[0].parts[0].inline_dat"},
        {ONE_TURN("x") ",\"generationConfig\":{\"thinkingConfig\":{\"budget\":5}}}",
         "thinkingConfig.budget"},
        {ONE_TURN("x") ",\"tools\":[{\"functionDeclarations\":[{\"name\":\"f\",\"parameterz\":{}}]}"
                       "]}",
         "parameterz"},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(cases); i++) {
        char *msg = rule_400(sim, GEN_FLASH, cases[i].body, cases[i].needle);
        assert_int_equal(strncmp(msg, "Invalid JSON payload received. ", 31), 0);
        free(msg);
        /* streamGenerateContent validates the same way, before any chunk */
        rule_400_free(sim, STREAM_SSE, cases[i].body, cases[i].needle);
    }
    /* a type error is a 400 naming the field too, without the "unknown" wording */
    rule_400_free(sim, GEN_FLASH, ONE_TURN("x") ",\"generationConfig\":{\"topK\":\"many\"}}",
                  "generationConfig.topK");
    /* countTokens: its own unknown names and those inside generateContentRequest */
    rule_400_free(sim, "/v1beta/models/gemini-2.5-flash:countTokens", ONE_TURN("x") ",\"x\":1}",
                  "Unknown name \"x\"");
    rule_400_free(sim, "/v1beta/models/gemini-2.5-flash:countTokens",
                  "{\"generateContentRequest\":{\"model\":\"models/gemini-2.5-flash\","
                  "\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"extra\":true}}",
                  "extra");
    /* cachedContents create: its own fields and the request fields it holds */
    rule_400_free(sim, "/v1beta/cachedContents",
                  "{\"model\":\"models/gemini-2.5-flash\",\"ttl\":\"60s\",\"colour\":\"red\"}",
                  "colour");
    rule_400_free(sim, "/v1beta/cachedContents",
                  "{\"model\":\"models/gemini-2.5-flash\",\"contents\":[{\"parts\":[{\"txt\":"
                  "\"a\"}]}]}",
                  "contents[0].parts[0].txt");
    sc_gemini_sim_stop(sim);
}

/* A snake_case body is answered exactly as its camelCase twin, new fields included. */
static void test_snake_case_rules(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    static const char *const pairs[][2] = {
        {"{\"system_instruction\":{\"parts\":[{\"text\":\"Be brief.\"}]},"
         "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"What is the weather in "
         "Paris?\"}]}],"
         "\"generation_config\":{\"candidate_count\":2,\"max_output_tokens\":2000,"
         "\"thinking_config\":{\"thinking_budget\":512,\"include_thoughts\":true}},"
         "\"tools\":[{\"function_declarations\":[{\"name\":\"get_weather\",\"description\":"
         "\"Weather in a city\",\"parameters\":{\"type\":\"OBJECT\",\"properties\":{\"city\":"
         "{\"type\":\"STRING\"}}}}]}],\"tool_config\":{\"function_calling_config\":{\"mode\":"
         "\"AUTO\"}}}",
         "{\"systemInstruction\":{\"parts\":[{\"text\":\"Be brief.\"}]},"
         "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"What is the weather in "
         "Paris?\"}]}],"
         "\"generationConfig\":{\"candidateCount\":2,\"maxOutputTokens\":2000,"
         "\"thinkingConfig\":{\"thinkingBudget\":512,\"includeThoughts\":true}},"
         "\"tools\":[{\"functionDeclarations\":[{\"name\":\"get_weather\",\"description\":"
         "\"Weather in a city\",\"parameters\":{\"type\":\"OBJECT\",\"properties\":{\"city\":"
         "{\"type\":\"STRING\"}}}}]}],\"toolConfig\":{\"functionCallingConfig\":{\"mode\":"
         "\"AUTO\"}}}"},
        {ONE_TURN("A colour") ",\"generation_config\":{\"response_mime_type\":\"application/json\","
                              "\"response_schema\":{\"type\":\"OBJECT\",\"properties\":{\"name\":"
                              "{\"type\":\"STRING\"}},\"required\":[\"name\"]},\"stop_sequences\":"
                              "[\"zzz\"]}}",
         ONE_TURN("A colour") ",\"generationConfig\":{\"responseMimeType\":\"application/json\","
                              "\"responseSchema\":{\"type\":\"OBJECT\",\"properties\":{\"name\":"
                              "{\"type\":\"STRING\"}},\"required\":[\"name\"]},\"stopSequences\":"
                              "[\"zzz\"]}}"},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(pairs); i++) {
        json_t *snake = rule_ok(sim, GEN_FLASH, pairs[i][0]);
        json_t *camel = rule_ok(sim, GEN_FLASH, pairs[i][1]);
        assert_true(
            json_equal(json_object_get(snake, "candidates"), json_object_get(camel, "candidates")));
        assert_true(json_equal(json_object_get(snake, "usageMetadata"),
                               json_object_get(camel, "usageMetadata")));
        if (i == 0) { /* the snake_case tools and config were honoured, not ignored */
            assert_int_equal(json_array_size(json_object_get(snake, "candidates")), 2);
            assert_true(json_is_true(json_object_get(rule_part(snake, 0, 0), "thought")));
            assert_string_equal(rule_arg(rule_call(snake, 0), "city"), "Paris");
        } else {
            json_t *inst = json_loads(test_text(snake), 0, NULL);
            assert_true(json_is_string(json_object_get(inst, "name")));
            json_decref(inst);
        }
        json_decref(snake);
        json_decref(camel);
    }
    sc_gemini_sim_stop(sim);
}

/* Thinking by the model's rules: the ranges of each 2.5 model, no budget 0 on 2.5-pro, no thinking
 * configuration on the 2.0 models. */
static void test_thinking_rules(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    static const struct {
        const char *model, *tc;
        long budget; /* > 0: thoughts at most this many; 0: a 400 */
    } cases[] = {
        {"gemini-2.5-pro", "\"thinkingBudget\":0", 0},
        {"gemini-2.5-pro", "\"thinkingBudget\":100", 0},
        {"gemini-2.5-pro", "\"thinkingBudget\":40000", 0},
        {"gemini-2.5-pro", "\"thinkingBudget\":128", 128},
        {"gemini-2.5-pro", "\"thinkingBudget\":-1", 1024},
        {"gemini-2.5-flash", "\"thinkingBudget\":30000", 0},
        {"gemini-2.5-flash", "\"thinkingBudget\":24576", 24576},
        {"gemini-2.5-flash-lite", "\"thinkingBudget\":100", 0},
        {"gemini-2.5-flash-lite", "\"thinkingBudget\":512", 512},
        {"gemini-2.0-flash", "\"thinkingBudget\":1024", 0},
        {"gemini-2.0-flash", "\"includeThoughts\":true", 0},
        {"gemini-2.0-flash-lite", "\"thinkingBudget\":0", 0},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(cases); i++) {
        char path[128], body[512];
        snprintf(path, sizeof path, "/v1beta/models/%s:generateContent", cases[i].model);
        snprintf(body, sizeof body,
                 ONE_TURN("Think about it.") ",\"generationConfig\":{"
                                             "\"thinkingConfig\":{%s}}}",
                 cases[i].tc);
        if (cases[i].budget == 0) {
            rule_400_free(sim, path, body, "generationConfig.thinkingConfig");
            continue;
        }
        json_t *doc = rule_ok(sim, path, body);
        json_int_t t = test_usage(doc, "thoughtsTokenCount");
        if (t <= 0 || t > cases[i].budget)
            fail_msg("%s {%s}: %lld thoughts", cases[i].model, cases[i].tc, (long long)t);
        json_decref(doc);
    }
    /* the stream and the batch take the same rules */
    rule_400_free(
        sim, "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        ONE_TURN("x") ",\"generationConfig\":{\"thinkingConfig\":{\"thinkingBudget\":0}}}",
        "thinkingBudget");
    sc_gemini_sim_stop(sim);
}

/* candidateCount answers that many different candidates; the first is the single answer. */
static void test_candidate_count(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    json_t *one = rule_ok(sim, GEN_FLASH, ONE_TURN("Name three colours.") "}");
    json_t *three = rule_ok(sim, GEN_FLASH,
                            ONE_TURN("Name three colours.") ",\"generationConfig\":"
                                                            "{\"candidateCount\":3}}");
    json_t *cands = json_object_get(three, "candidates");
    assert_int_equal(json_array_size(cands), 3);
    json_int_t sum = 0;
    for (size_t i = 0; i < 3; i++) {
        json_t *c = json_array_get(cands, i);
        assert_int_equal(json_integer_value(json_object_get(c, "index")), (json_int_t)i);
        assert_string_equal(json_string_value(json_object_get(c, "finishReason")), "STOP");
        const char *t = json_string_value(json_object_get(rule_part(three, i, 0), "text"));
        assert_non_null(t);
        sum += (json_int_t)((strlen(t) + 3) / 4);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(
                t, json_string_value(json_object_get(rule_part(three, k, 0), "text")));
    }
    assert_string_equal(test_text(one), test_text(three));
    assert_int_equal(test_usage(three, "candidatesTokenCount"), sum);
    assert_int_equal(test_usage(three, "thoughtsTokenCount"),
                     test_usage(one, "thoughtsTokenCount"));
    assert_int_equal(test_usage(three, "totalTokenCount"),
                     test_usage(three, "promptTokenCount") + sum +
                         test_usage(three, "thoughtsTokenCount"));
    json_decref(one);
    json_decref(three);
    rule_400_free(sim, GEN_FLASH, ONE_TURN("x") ",\"generationConfig\":{\"candidateCount\":9}}",
                  "candidateCount");
    sc_gemini_sim_stop(sim);
}

/* Structured output: the answer is an instance of the schema, in either dialect. */
static void test_response_schema(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
#define RECIPE_SCHEMA                                                                              \
    "{\"type\":\"OBJECT\",\"properties\":{\"name\":{\"type\":\"STRING\"},\"minutes\":{\"type\":"   \
    "\"INTEGER\"},\"vegan\":{\"type\":\"BOOLEAN\"},\"steps\":{\"type\":\"ARRAY\",\"items\":"       \
    "{\"type\":\"STRING\"}}},\"required\":[\"name\",\"minutes\",\"steps\"]}"
    const char *body = ONE_TURN("A recipe, please.") ",\"generationConfig\":{\"responseMimeType\":"
                                                     "\"application/json\",\"candidateCount\":2,"
                                                     "\"responseSchema\":" RECIPE_SCHEMA "}}";
    json_t *a = rule_ok(sim, GEN_FLASH, body), *b = rule_ok(sim, GEN_FLASH, body);
    for (size_t c = 0; c < 2; c++) {
        const char *text = json_string_value(json_object_get(rule_part(a, c, 0), "text"));
        json_t *inst = json_loads(text, 0, NULL);
        if (!json_is_object(inst))
            fail_msg("not an object: %s", text);
        assert_true(json_is_string(json_object_get(inst, "name")));
        assert_true(json_is_integer(json_object_get(inst, "minutes")));
        json_t *steps = json_object_get(inst, "steps");
        assert_true(json_is_array(steps));
        for (size_t i = 0; i < json_array_size(steps); i++)
            assert_true(json_is_string(json_array_get(steps, i)));
        json_t *vegan = json_object_get(inst, "vegan");
        assert_true(!vegan || json_is_boolean(vegan));
        json_decref(inst);
    }
    assert_true(json_equal(json_object_get(a, "candidates"), json_object_get(b, "candidates")));
    json_decref(a);
    json_decref(b);

    /* JSON Schema: the required keys, and nothing else with additionalProperties false */
    json_t *j = rule_ok(sim, GEN_FLASH,
                        ONE_TURN("Weather report") ",\"generationConfig\":{\"responseMimeType\":"
                                                   "\"application/json\",\"responseJsonSchema\":"
                                                   "{\"type\":\"object\",\"properties\":{\"city\":"
                                                   "{\"type\":\"string\"},\"temp\":{\"type\":"
                                                   "\"number\"}},\"required\":[\"city\",\"temp\"],"
                                                   "\"additionalProperties\":false}}}");
    json_t *inst = json_loads(test_text(j), 0, NULL);
    assert_true(json_is_string(json_object_get(inst, "city")));
    assert_true(json_is_number(json_object_get(inst, "temp")));
    assert_int_equal(json_object_size(inst), 2);
    json_decref(inst);
    json_decref(j);

    /* text/x.enum: one of the values, as plain text */
    j = rule_ok(
        sim, GEN_FLASH,
        ONE_TURN("Pick a colour") ",\"generationConfig\":{\"responseMimeType\":\"text/x.enum\","
                                  "\"responseSchema\":{\"type\":\"STRING\",\"enum\":[\"red\","
                                  "\"green\",\"blue\"]}}}");
    const char *e = test_text(j);
    assert_true(strcmp(e, "red") == 0 || strcmp(e, "green") == 0 || strcmp(e, "blue") == 0);
    json_decref(j);

    /* a schema needs a JSON mime type; a schema must be one */
    rule_400_free(sim, GEN_FLASH,
                  ONE_TURN("x") ",\"generationConfig\":{\"responseSchema\":" RECIPE_SCHEMA "}}",
                  "responseSchema");
    rule_400_free(sim, GEN_FLASH,
                  ONE_TURN("x") ",\"generationConfig\":{\"responseMimeType\":\"text/plain\","
                                "\"responseSchema\":" RECIPE_SCHEMA "}}",
                  "responseSchema");
    rule_400_free(sim, GEN_FLASH,
                  ONE_TURN("x") ",\"generationConfig\":{\"responseMimeType\":\"application/json\","
                                "\"responseSchema\":{\"type\":\"OBJECT\",\"properties\":{\"a\":"
                                "{\"typ\":\"STRING\"}}}}}",
                  "typ");
#undef RECIPE_SCHEMA
    sc_gemini_sim_stop(sim);
}

/* stopSequences cut the answer at the first occurrence of any of them. */
static void test_stop_sequences(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    json_t *full = rule_ok(sim, GEN_FLASH, ONE_TURN("Tell me a story.") "}");
    const char *text = test_text(full);
    /* a stop sequence from the middle of the answer: the sixth word after the header */
    const char *p = strstr(text, "):");
    assert_non_null(p);
    for (int w = 0; w < 6; w++) {
        p = strchr(p + 1, ' ');
        assert_non_null(p);
    }
    char stop[32];
    size_t n = strcspn(p + 1, " .");
    assert_true(n > 0 && n + 2 < sizeof stop);
    stop[0] = ' ';
    memcpy(stop + 1, p + 1, n);
    stop[n + 1] = '\0';
    size_t cut = (size_t)(strstr(text, stop) - text); /* its first occurrence */
    json_t *body = json_pack("{s:[{s:s, s:[{s:s}]}], s:{s:[s, s]}}", "contents", "role", "user",
                             "parts", "text", "Tell me a story.", "generationConfig",
                             "stopSequences", "never-in-an-answer", stop);
    char *bs = json_dumps(body, JSON_COMPACT);
    json_t *cutd = rule_ok(sim, GEN_FLASH, bs);
    const char *t = test_text(cutd);
    assert_int_equal(strlen(t), cut);
    assert_int_equal(strncmp(t, text, cut), 0);
    assert_string_equal(test_finish(cutd), "STOP");
    assert_int_equal(test_usage(cutd, "candidatesTokenCount"), (json_int_t)((cut + 3) / 4));
    free(bs);
    json_decref(body);
    json_decref(cutd);
    json_decref(full);
    rule_400_free(sim, GEN_FLASH,
                  ONE_TURN("x") ",\"generationConfig\":{\"stopSequences\":[\"a\",\"b\",\"c\",\"d\","
                                "\"e\",\"f\"]}}",
                  "stopSequences");
    sc_gemini_sim_stop(sim);
}

/* includeThoughts: a thought summary part before the answer, on a model that thinks. */
static void test_include_thoughts(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    json_t *plain = rule_ok(sim, GEN_FLASH, ONE_TURN("Why is the sea salty?") "}");
    json_t *with =
        rule_ok(sim, GEN_FLASH,
                ONE_TURN("Why is the sea salty?") ",\"generationConfig\":{\"thinkingConfig"
                                                  "\":{\"includeThoughts\":true}}}");
    assert_int_equal(rule_nparts(plain, 0), 1);
    assert_int_equal(rule_nparts(with, 0), 2);
    json_t *thought = rule_part(with, 0, 0), *answer = rule_part(with, 0, 1);
    assert_true(json_is_true(json_object_get(thought, "thought")));
    assert_true(json_string_length(json_object_get(thought, "text")) > 0);
    assert_null(json_object_get(answer, "thought"));
    assert_string_equal(json_string_value(json_object_get(answer, "text")), test_text(plain));
    assert_int_equal(test_usage(with, "thoughtsTokenCount"),
                     test_usage(plain, "thoughtsTokenCount"));
    assert_int_equal(test_usage(with, "candidatesTokenCount"),
                     test_usage(plain, "candidatesTokenCount")); /* thoughts are not candidates */
    json_decref(plain);
    json_decref(with);
    /* with thinking off there is nothing to summarise */
    json_t *off = rule_ok(sim, GEN_FLASH,
                          ONE_TURN("Why?") ",\"generationConfig\":{\"thinkingConfig\":{"
                                           "\"includeThoughts\":true,\"thinkingBudget\":0}}}");
    assert_int_equal(rule_nparts(off, 0), 1);
    assert_null(json_object_get(rule_part(off, 0, 0), "thought"));
    json_decref(off);
    json_t *pro = rule_ok(sim, GEN_PRO,
                          ONE_TURN("Why?") ",\"generationConfig\":{\"thinkingConfig\":{"
                                           "\"includeThoughts\":true}}}");
    assert_true(json_is_true(json_object_get(rule_part(pro, 0, 0), "thought")));
    json_decref(pro);
    sc_gemini_sim_stop(sim);
}

/* Function calling: the declaration that matches the question, with its arguments. */
static void test_function_call(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    json_t *paris =
        rule_ok(sim, GEN_FLASH, ONE_TURN("What is the weather in Paris?") "," TOOLS_TWO "}");
    json_t *call = rule_call(paris, 0);
    assert_non_null(call);
    assert_string_equal(json_string_value(json_object_get(call, "name")), "get_weather");
    assert_string_equal(rule_arg(call, "city"), "Paris");
    const char *unit = rule_arg(call, "unit");
    assert_true(!unit || strcmp(unit, "C") == 0 || strcmp(unit, "F") == 0);
    assert_null(test_text(paris)); /* a call, no text */
    assert_string_equal(test_finish(paris), "STOP");
    assert_true(test_usage(paris, "candidatesTokenCount") > 0);

    json_t *again =
        rule_ok(sim, GEN_FLASH, ONE_TURN("What is the weather in Paris?") "," TOOLS_TWO "}");
    assert_true(json_equal(rule_call(again, 0), call)); /* deterministic */
    json_decref(again);
    json_t *london =
        rule_ok(sim, GEN_FLASH, ONE_TURN("And the weather in London today?") "," TOOLS_TWO "}");
    assert_string_equal(rule_arg(rule_call(london, 0), "city"), "London");
    json_decref(london);
    json_t *tokyo =
        rule_ok(sim, GEN_FLASH, ONE_TURN("What time is it in 'Asia/Tokyo'?") "," TOOLS_TWO "}");
    call = rule_call(tokyo, 0);
    assert_string_equal(json_string_value(json_object_get(call, "name")), "get_time");
    assert_string_equal(rule_arg(call, "tz"), "Asia/Tokyo");
    json_decref(tokyo);

    /* mode NONE: text; mode ANY narrowed by allowedFunctionNames: that function */
    json_t *none = rule_ok(
        sim, GEN_FLASH,
        ONE_TURN("What is the weather in Paris?") "," TOOLS_TWO
                                                  ",\"toolConfig\":{\"functionCallingConfig\":{"
                                                  "\"mode\":\"NONE\"}}}");
    assert_null(rule_call(none, 0));
    assert_non_null(test_text(none));
    json_decref(none);
    json_t *any = rule_ok(
        sim, GEN_FLASH,
        ONE_TURN("What is the weather in Paris?") "," TOOLS_TWO
                                                  ",\"toolConfig\":{\"functionCallingConfig\":{"
                                                  "\"mode\":\"ANY\","
                                                  "\"allowedFunctionNames\":[\"get_time\"]}}}");
    assert_string_equal(json_string_value(json_object_get(rule_call(any, 0), "name")), "get_time");
    json_decref(any);
    rule_400_free(sim, GEN_FLASH,
                  ONE_TURN("x") "," TOOLS_TWO ",\"toolConfig\":{\"functionCallingConfig\":{"
                                "\"mode\":\"AUTO\",\"allowedFunctionNames\":[\"get_time\"]}}}",
                  "allowed_function_names");
    rule_400_free(sim, GEN_FLASH,
                  ONE_TURN("x") "," TOOLS_TWO ",\"toolConfig\":{\"functionCallingConfig\":{"
                                "\"mode\":\"ANY\",\"allowedFunctionNames\":[\"get_tide\"]}}}",
                  "get_tide");
    rule_400_free(sim, GEN_FLASH,
                  ONE_TURN("x") ",\"tools\":[{\"functionDeclarations\":[{\"name\":\"9lives\"}]}]}",
                  "name");
    /* a streamed call comes whole, in one chunk with the finishReason */
    test_resp_t r =
        test_post(sim, STREAM_SSE, ONE_TURN("What is the weather in Paris?") "," TOOLS_TWO "}");
    assert_int_equal(r.status, 200);
    assert_int_equal(strncmp(r.body, "data: ", 6), 0);
    const char *sep = strstr(r.body, SSE_SEP);
    assert_non_null(sep);
    assert_int_equal((size_t)(sep - r.body) + strlen(SSE_SEP), r.len); /* one event */
    json_t *chunk = json_loadb(r.body + 6, r.len - 6 - strlen(SSE_SEP), 0, NULL);
    assert_true(json_equal(rule_call(chunk, 0), rule_call(paris, 0)));
    assert_string_equal(test_finish(chunk), "STOP");
    json_decref(chunk);
    test_resp_free(&r);
    json_decref(paris);
    sc_gemini_sim_stop(sim);
}

/* A history with function results: the answer is text that reports what the function returned. */
static void test_function_response(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
#define HISTORY(RESP)                                                                              \
    "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"What is the weather in Paris?\"}]}," \
    "{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"get_weather\",\"args\":"         \
    "{\"city\":\"Paris\"}}}]},{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":"      \
    "\"get_weather\",\"response\":" RESP "}}]}]," TOOLS_TWO
    json_t *warm = rule_ok(sim, GEN_FLASH, HISTORY("{\"temp\":21,\"sky\":\"clear\"}") "}");
    json_t *cold = rule_ok(sim, GEN_FLASH, HISTORY("{\"temp\":-5,\"sky\":\"snow\"}") "}");
    const char *tw = test_text(warm), *tc = test_text(cold);
    assert_non_null(tw);
    assert_null(rule_call(warm, 0));
    assert_non_null(strstr(tw, "get_weather"));
    assert_non_null(strstr(tw, "{\"temp\":21,\"sky\":\"clear\"}"));
    assert_non_null(strstr(tc, "{\"temp\":-5,\"sky\":\"snow\"}"));
    assert_string_not_equal(tw, tc);
    json_decref(warm);
    json_decref(cold);
    /* mode ANY calls whatever the last turn is */
    json_t *any =
        rule_ok(sim, GEN_FLASH,
                HISTORY("{\"temp\":21}") ",\"toolConfig\":{"
                                         "\"functionCallingConfig\":{\"mode\":\"ANY\"}}}");
    assert_non_null(rule_call(any, 0));
    json_decref(any);
#undef HISTORY
    sc_gemini_sim_stop(sim);
}

/* The API refuses a functionResponse that answers no functionCall of the model turn before it. */
static void test_orphan_function_response(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    static const char *const bodies[] = {
        /* no turn before it */
        "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":"
        "\"get_weather\",\"response\":{\"temp\":21}}}]}]}",
        /* the model called another function */
        "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"Time?\"}]},{\"role\":\"model\","
        "\"parts\":[{\"functionCall\":{\"name\":\"get_time\",\"args\":{}}}]},{\"role\":\"user\","
        "\"parts\":[{\"functionResponse\":{\"name\":\"get_weather\",\"response\":{}}}]}]}",
        /* the turn before it is no model turn */
        "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"Weather?\"}]},{\"role\":\"user\","
        "\"parts\":[{\"functionResponse\":{\"name\":\"get_weather\",\"response\":{}}}]}]}",
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(bodies); i++) {
        rule_400_free(sim, GEN_FLASH, bodies[i], "function");
        rule_400_free(sim, STREAM_SSE, bodies[i], "function");
    }
    sc_gemini_sim_stop(sim);
}

/* The events of an SSE body, each parsed. @return a new array reference. */
static json_t *rule_sse_events(const test_resp_t *r)
{
    json_t *events = json_array();
    const char *p = r->body, *end = r->body + r->len;
    while (p < end) {
        assert_int_equal(strncmp(p, "data: ", 6), 0);
        const char *sep = strstr(p, SSE_SEP);
        assert_non_null(sep);
        json_error_t e;
        json_t *doc = json_loadb(p + 6, (size_t)(sep - p - 6), 0, &e);
        if (!doc)
            fail_msg("event not JSON (%s): %.200s", e.text, p);
        assert_int_equal(json_array_append_new(events, doc), 0);
        p = sep + strlen(SSE_SEP);
    }
    return events;
}

/* streamGenerateContent: the answer of generateContent in data: events, the last one final. */
static void test_stream_sse(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    const char *body = ONE_TURN("Why is the sky blue?") ",\"generationConfig\":{\"thinkingConfig\":"
                                                        "{\"includeThoughts\":true}}}";
    json_t *whole = rule_ok(sim, GEN_FLASH, body);
    test_resp_t r = test_post(sim, STREAM_SSE, body);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "text/event-stream"));
    json_t *events = rule_sse_events(&r);
    size_t n = json_array_size(events);
    assert_true(n >= 2 && n <= 4);
    const char *rid = json_string_value(json_object_get(json_array_get(events, 0), "responseId"));
    assert_non_null(rid);
    char text[8192] = "";
    size_t tlen = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *ev = json_array_get(events, i);
        bool last = i + 1 == n;
        assert_string_equal(json_string_value(json_object_get(ev, "responseId")), rid);
        assert_string_equal(json_string_value(json_object_get(ev, "modelVersion")),
                            "gemini-2.5-flash");
        assert_int_equal(test_finish(ev) != NULL, last);
        json_t *u = json_object_get(ev, "usageMetadata");
        assert_int_equal(json_object_get(u, "candidatesTokenCount") != NULL, last);
        for (size_t k = 0; k < rule_nparts(ev, 0); k++) {
            json_t *part = rule_part(ev, 0, k);
            if (json_is_true(json_object_get(part, "thought"))) {
                assert_int_equal(i, 0); /* the summary comes first */
                continue;
            }
            const char *t = json_string_value(json_object_get(part, "text"));
            assert_non_null(t);
            assert_true(tlen + strlen(t) < sizeof text);
            memcpy(text + tlen, t, strlen(t) + 1);
            tlen += strlen(t);
        }
    }
    /* the deltas join into generateContent's answer; the final counts are its counts */
    assert_string_equal(text, json_string_value(json_object_get(rule_part(whole, 0, 1), "text")));
    json_t *lu = json_object_get(json_array_get(events, n - 1), "usageMetadata");
    assert_true(json_equal(lu, json_object_get(whole, "usageMetadata")));
    test_resp_free(&r);

    /* without alt=sse: one JSON array of the same chunks */
    r = test_post(sim, STREAM_RAW, body);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "application/json"));
    json_t *arr = test_json(&r);
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), n);
    for (size_t i = 0; i < n; i++)
        assert_true(json_equal(json_object_get(json_array_get(arr, i), "candidates"),
                               json_object_get(json_array_get(events, i), "candidates")));
    json_decref(arr);
    test_resp_free(&r);
    json_decref(events);
    json_decref(whole);

    /* errors before streaming are plain JSON errors */
    json_t *doc = NULL;
    r = test_post(sim, "/v1beta/models/gemini-9:streamGenerateContent?alt=sse", body);
    test_error(&r, 404, "NOT_FOUND", &doc);
    json_decref(doc);
    test_resp_free(&r);
    r = test_post(sim, STREAM_SSE, "{\"contents\":[]}");
    test_error(&r, 400, "INVALID_ARGUMENT", &doc);
    json_decref(doc);
    test_resp_free(&r);
    sc_gemini_sim_stop(sim);
}

/* The Model resource called name in a list (borrowed), or NULL. */
static json_t *rule_model(json_t *models, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "name")), name) == 0)
            return m;
    }
    return NULL;
}

static bool rule_has(json_t *list, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

/* GET /v1beta/models (paged) and /v1beta/models/{model}. */
static void test_models(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
    test_resp_t r = test_http(sim, "GET", "/v1beta/models", TEST_KEY, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *doc = test_json(&r);
    test_resp_free(&r);
    json_t *models = json_object_get(doc, "models");
    assert_int_equal(json_array_size(models), SIM_MODELS);
    assert_null(json_object_get(doc, "nextPageToken"));
    json_t *flash = rule_model(models, "models/gemini-2.5-flash");
    assert_non_null(flash);
    assert_string_equal(json_string_value(json_object_get(flash, "baseModelId")),
                        "gemini-2.5-flash");
    assert_int_equal(json_integer_value(json_object_get(flash, "inputTokenLimit")), 1048576);
    assert_int_equal(json_integer_value(json_object_get(flash, "outputTokenLimit")), 65536);
    assert_true(json_number_value(json_object_get(flash, "maxTemperature")) == 2.0);
    assert_true(json_is_true(json_object_get(flash, "thinking")));
    json_t *methods = json_object_get(flash, "supportedGenerationMethods");
    assert_true(rule_has(methods, "generateContent") && rule_has(methods, "countTokens") &&
                rule_has(methods, "createCachedContent") &&
                rule_has(methods, "batchGenerateContent"));
    assert_true(
        json_is_false(json_object_get(rule_model(models, "models/gemini-2.0-flash"), "thinking")));
    static const char *const embedders[] = {"models/gemini-embedding-001",
                                            "models/text-embedding-004"};
    for (size_t i = 0; i < 2; i++) {
        methods = json_object_get(rule_model(models, embedders[i]), "supportedGenerationMethods");
        assert_int_equal(json_array_size(methods), 2);
        assert_true(rule_has(methods, "embedContent") && rule_has(methods, "batchEmbedContents"));
    }

    /* pages of 3 follow the tokens through every model once */
    char path[256] = "/v1beta/models?pageSize=3";
    size_t seen = 0, pages = 0;
    for (;;) {
        r = test_http(sim, "GET", path, TEST_KEY, NULL, 0);
        assert_int_equal(r.status, 200);
        json_t *page = test_json(&r);
        test_resp_free(&r);
        json_t *list = json_object_get(page, "models");
        assert_true(json_array_size(list) <= 3);
        for (size_t i = 0; i < json_array_size(list); i++)
            assert_true(json_equal(json_array_get(list, i), json_array_get(models, seen + i)));
        seen += json_array_size(list);
        pages++;
        const char *tok = json_string_value(json_object_get(page, "nextPageToken"));
        if (!tok) {
            json_decref(page);
            break;
        }
        snprintf(path, sizeof path, "/v1beta/models?pageSize=3&pageToken=%s", tok);
        json_decref(page);
        assert_true(pages < 10);
    }
    assert_int_equal(seen, SIM_MODELS);
    assert_int_equal(pages, 3);

    /* one model; the same under /v1 (google-genai's default version) */
    r = test_http(sim, "GET", "/v1beta/models/gemini-2.5-pro", TEST_KEY, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *pro = test_json(&r);
    test_resp_free(&r);
    assert_true(json_equal(pro, rule_model(models, "models/gemini-2.5-pro")));
    json_decref(pro);
    r = test_http(sim, "GET", "/v1/models/gemini-embedding-001", TEST_KEY, NULL, 0);
    assert_int_equal(r.status, 200);
    test_resp_free(&r);
    json_t *err = NULL;
    r = test_http(sim, "GET", "/v1beta/models/gemini-9-ultra", TEST_KEY, NULL, 0);
    assert_non_null(strstr(test_error(&r, 404, "NOT_FOUND", &err), "models/gemini-9-ultra"));
    json_decref(err);
    test_resp_free(&r);
    r = test_http(sim, "GET", "/v1beta/models", NULL, NULL, 0);
    test_error(&r, 403, "PERMISSION_DENIED", &err);
    json_decref(err);
    test_resp_free(&r);
    json_decref(doc);
    sc_gemini_sim_stop(sim);
}

/* The values of embedding i of a batchEmbedContents answer (borrowed). */
static json_t *rule_values(json_t *doc, size_t i)
{
    return json_object_get(json_array_get(json_object_get(doc, "embeddings"), i), "values");
}

static double rule_dot(json_t *a, json_t *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += json_number_value(json_array_get(a, i)) * json_number_value(json_array_get(b, i));
    return s;
}

/* batchEmbedContents and embedContent: deterministic unit vectors of the asked dimensions. */
static void test_embeddings(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start(NULL, NULL);
#define EMB_REQ(TEXT, EXTRA)                                                                       \
    "{\"model\":\"models/gemini-embedding-001\",\"content\":{\"parts\":[{\"text\":\"" TEXT         \
    "\"}]}" EXTRA "}"
    const char *body = "{\"requests\":[" EMB_REQ("hello world", "") "," EMB_REQ(
        "goodbye world",
        ",\"taskType\":\"RETRIEVAL_DOCUMENT\"") "," EMB_REQ("hello world",
                                                            ",\"outputDimensionality\":16") "]}";
    json_t *a = rule_ok(sim, EMBED_001 ":batchEmbedContents", body);
    json_t *b = rule_ok(sim, EMBED_001 ":batchEmbedContents", body);
    assert_true(json_equal(a, b));
    assert_int_equal(json_array_size(json_object_get(a, "embeddings")), 3);
    json_t *v0 = rule_values(a, 0), *v1 = rule_values(a, 1), *v2 = rule_values(a, 2);
    assert_int_equal(json_array_size(v0), 768);
    assert_int_equal(json_array_size(v1), 768);
    assert_int_equal(json_array_size(v2), 16);
    assert_true(fabs(rule_dot(v0, v0, 768) - 1.0) < 1e-6);
    assert_true(fabs(rule_dot(v2, v2, 16) - 1.0) < 1e-6);
    assert_true(fabs(rule_dot(v0, v1, 768)) < 0.5); /* another text, another direction */
    /* the shorter vector is the longer one's prefix, rescaled */
    double prefix = sqrt(rule_dot(v0, v0, 16));
    assert_true(fabs(rule_dot(v0, v2, 16) / prefix - 1.0) < 1e-6);

    /* embedContent: the same vector for the same text */
    json_t *one = rule_ok(sim, EMBED_001 ":embedContent",
                          "{\"content\":{\"parts\":[{\"text\":\"hello world\"}]}}");
    assert_true(json_equal(json_object_get(json_object_get(one, "embedding"), "values"), v0));
    json_decref(one);
    json_decref(a);
    json_decref(b);

    /* only embedding models embed; their rules */
    rule_400_free(sim, "/v1beta/models/gemini-2.5-flash:embedContent",
                  "{\"content\":{\"parts\":[{\"text\":\"x\"}]}}", "embedContent");
    rule_400_free(sim, "/v1beta/models/gemini-2.5-flash:batchEmbedContents",
                  "{\"requests\":[" EMB_REQ("x", "") "]}", "batchEmbedContents");
    test_resp_t r = test_post(sim, "/v1beta/models/nope-embedding:embedContent",
                              "{\"content\":{\"parts\":[{\"text\":\"x\"}]}}");
    json_t *err = NULL;
    test_error(&r, 404, "NOT_FOUND", &err);
    json_decref(err);
    test_resp_free(&r);
    rule_400_free(sim, "/v1beta/models/text-embedding-004:embedContent",
                  "{\"content\":{\"parts\":[{\"text\":\"x\"}]},\"outputDimensionality\":1000}",
                  "output_dimensionality");
    rule_400_free(sim, EMBED_001 ":batchEmbedContents",
                  "{\"requests\":[{\"model\":\"models/text-embedding-004\",\"content\":{\"parts\":"
                  "[{\"text\":\"x\"}]}}]}",
                  "model");
    rule_400_free(sim, EMBED_001 ":batchEmbedContents",
                  "{\"requests\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]}}]}", "model");
    rule_400_free(sim, EMBED_001 ":batchEmbedContents",
                  "{\"requests\":[" EMB_REQ("x", ",\"colour\":1") "]}", "colour");
    rule_400_free(sim, EMBED_001 ":batchEmbedContents",
                  "{\"requests\":[" EMB_REQ("x", ",\"taskType\":\"GUESSING\"") "]}", "GUESSING");
    rule_400_free(sim, EMBED_001 ":batchEmbedContents", "{\"requests\":[]}", "requests");
#undef EMB_REQ
    sc_gemini_sim_stop(sim);
}

/* A cache holding tools: a request through it calls the cache's functions. */
static void test_cache_tools(void **state)
{
    (void)state;
    sc_gemini_sim_opts_t o = {.threads = 2, .cache_min_tokens = 1};
    sc_gemini_sim_t *sim = NULL;
    char errbuf[256];
    assert_int_equal(sc_gemini_sim_start(&o, &sim, errbuf, sizeof errbuf), SC_OK);
    json_t *cache =
        rule_ok(sim, "/v1beta/cachedContents",
                "{\"model\":\"models/gemini-2.5-flash\",\"contents\":[{\"role\":"
                "\"user\",\"parts\":[{\"text\":\"A long shared prefix.\"}]}]," TOOLS_TWO "}");
    char body[512];
    snprintf(body, sizeof body,
             ONE_TURN("What is the weather in Paris?") ",\"cachedContent\":\"%s\"}",
             json_string_value(json_object_get(cache, "name")));
    json_t *doc = rule_ok(sim, GEN_FLASH, body);
    assert_string_equal(rule_arg(rule_call(doc, 0), "city"), "Paris");
    assert_int_equal(test_usage(doc, "cachedContentTokenCount"),
                     json_integer_value(json_object_get(json_object_get(cache, "usageMetadata"),
                                                        "totalTokenCount")));
    json_decref(doc);
    json_decref(cache);
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
        cmocka_unit_test(test_unknown_field),
        cmocka_unit_test(test_snake_case_rules),
        cmocka_unit_test(test_thinking_rules),
        cmocka_unit_test(test_candidate_count),
        cmocka_unit_test(test_response_schema),
        cmocka_unit_test(test_stop_sequences),
        cmocka_unit_test(test_include_thoughts),
        cmocka_unit_test(test_function_call),
        cmocka_unit_test(test_function_response),
        cmocka_unit_test(test_orphan_function_response),
        cmocka_unit_test(test_stream_sse),
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_cache_tools),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
