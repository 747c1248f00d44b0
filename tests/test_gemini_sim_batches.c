/* test_gemini_sim_batches.c - the simulator's Batch Mode on loopback, driven with libcurl: the
 * lifecycle and its states, both spellings, request errors, the API's request rules, injected
 * failures, list, cancel, delete, duplicate keys, rejected creates and a full table. */
#include "tests/gemini_sim_test_util.h"

/* ---- Batch Mode ---- */

#define BATCH_FLASH    "/v1beta/models/gemini-2.5-flash:batchGenerateContent"
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

/* Inline requests follow generateContent's rules: an unknown field or a thinking budget out of
 * the model's range is that request's 400 entry; snake_case, schemas and tools are honoured. */
static void test_batch_api_rules(void **state)
{
    (void)state;
    sc_gemini_sim_t *sim = test_start_batch(NULL, BATCH_QUICK_MS, BATCH_QUICK_MS);
    const char *body =
        "{\"batch\":{\"inputConfig\":{\"requests\":{\"requests\":["
        "{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":"
        "{\"topPp\":1}},\"metadata\":{\"key\":\"unknown\"}},"
        "{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":"
        "{\"thinkingConfig\":{\"thinkingBudget\":30000}}},\"metadata\":{\"key\":\"budget\"}},"
        "{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"A city\"}]}],\"generation_config\":"
        "{\"response_mime_type\":\"application/json\",\"response_schema\":{\"type\":\"OBJECT\","
        "\"properties\":{\"city\":{\"type\":\"STRING\"}},\"required\":[\"city\"]}}},"
        "\"metadata\":{\"key\":\"schema\"}},"
        "{\"request\":{\"contents\":[{\"parts\":[{\"text\":\"What is the weather in Oslo?\"}]}],"
        "\"tools\":[{\"function_declarations\":[{\"name\":\"get_weather\",\"parameters\":"
        "{\"type\":\"OBJECT\",\"properties\":{\"city\":{\"type\":\"STRING\"}}}}]}]},"
        "\"metadata\":{\"key\":\"call\"}}]}}}}";
    json_t *op = test_batch_create(sim, body);
    char name[128], seen[16];
    sc_strlcpy(name, json_string_value(json_object_get(op, "name")), sizeof name);
    json_decref(op);
    op = test_batch_wait(sim, name, seen, sizeof seen);
    assert_string_equal(test_stat(op, "failedRequestCount"), "2");
    json_t *list = json_object_get(
        json_object_get(json_object_get(op, "response"), "inlinedResponses"), "inlinedResponses");
    const char *needles[2] = {"Invalid JSON payload received. field \"generationConfig.topPp\"",
                              "thinkingBudget"};
    for (size_t i = 0; i < 2; i++) {
        json_t *err = json_object_get(json_array_get(list, i), "error");
        assert_int_equal(json_integer_value(json_object_get(err, "code")), 400);
        assert_non_null(strstr(json_string_value(json_object_get(err, "message")), needles[i]));
    }
    json_t *resp = json_object_get(json_array_get(list, 2), "response");
    json_t *inst = json_loads(test_text(resp), 0, NULL);
    assert_true(json_is_string(json_object_get(inst, "city")));
    json_decref(inst);
    resp = json_object_get(json_array_get(list, 3), "response");
    json_t *part = json_array_get(
        json_object_get(
            json_object_get(json_array_get(json_object_get(resp, "candidates"), 0), "content"),
            "parts"),
        0);
    json_t *call = json_object_get(part, "functionCall");
    assert_string_equal(json_string_value(json_object_get(call, "name")), "get_weather");
    assert_string_equal(json_string_value(json_object_get(json_object_get(call, "args"), "city")),
                        "Oslo");
    json_decref(op);
    sc_gemini_sim_stop(sim);
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

int main(void)
{
    if (!getenv("SCRIMP_LOG"))
        sc_log_set_level(SC_LOG_WARN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_lifecycle),
        cmocka_unit_test(test_batch_snake_case),
        cmocka_unit_test(test_batch_request_errors),
        cmocka_unit_test(test_batch_api_rules),
        cmocka_unit_test(test_batch_fail_expire),
        cmocka_unit_test(test_batch_job_state_prefix),
        cmocka_unit_test(test_batch_list_cancel_delete),
        cmocka_unit_test(test_batch_duplicate_keys),
        cmocka_unit_test(test_batch_rejects),
        cmocka_unit_test(test_batch_table_full),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
