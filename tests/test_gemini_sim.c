/* test_gemini_sim.c - the simulator on loopback, driven with libcurl: shapes, arithmetic,
 * determinism, keys, validation, countTokens, fault injection, stats, start and stop. Batch Mode
 * is tested in test_gemini_sim_batches.c, context caching in test_gemini_sim_caches.c. */
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
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
