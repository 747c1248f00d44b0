/* test_gemini_sim_caches.c - the simulator's context caching on loopback, driven with libcurl:
 * the cachedContents lifecycle, use by generateContent, too-small and malformed caches, expiry
 * and storage token-seconds. */
#include "tests/gemini_sim_test_util.h"

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
        cmocka_unit_test(test_cache_lifecycle),
        cmocka_unit_test(test_cache_too_small_and_errors),
        cmocka_unit_test(test_cache_expiry_storage),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
