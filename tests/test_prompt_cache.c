/* test_prompt_cache.c - the explicit-cache manager against the simulator on loopback: scheduled
 * creation, use through the client, the minimum, "too small", TTL extension, idle deletion,
 * deletion at free, the storage charge, the acceptance scenario (a shared 6,000-token system
 * prompt), and sharing caches between replicas (the share hook, adopt, leaving at free). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "host/core/config.h"
#include "host/gemini/gemini.h"
#include "host/gemini/sim.h"
#include "host/core/log.h"
#include "host/core/price.h"
#include "host/gemini/prompt_cache.h"
#include "host/core/util.h"

#define TEST_KEY      "test-key"
#define TEST_FLASH    "gemini-2.5-flash"
#define TEST_WAIT_MS  10000 /* longest a test polls for the manager or the simulator */
#define TEST_POLL_MS  5
#define TEST_RESP_MAX ((size_t)1 << 20)
#define TEST_URL_MAX  256
#define ACCEPT_N      50    /* requests in the acceptance scenario */
#define ACCEPT_CHARS  24000 /* its system prompt: 6,000 tokens at 4 characters per token */
#define ACCEPT_RATIO  0.90
#define SHARES_MAX    16   /* shares a recorder keeps */
#define STALL_MS      5000 /* bounds a manager's call to the server that never answers */

typedef struct {
    sc_gemini_sim_t *sim;
    char url[TEST_URL_MAX];
    sc_config_t *cfg; /* default prices */
    sc_prompt_cache_t *pc;
    sc_gemini_t *g;
} fx_t;

static void test_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A prefix of n characters that differs per seed. @remark the caller frees. */
static char *prefix_make(size_t n, unsigned seed)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    int head = snprintf(s, n + 1, "System prompt %u. ", seed);
    for (size_t i = (size_t)head; i < n; i++)
        s[i] = (char)('a' + (i * 7 + seed) % 26);
    s[n] = '\0';
    return s;
}

static void fx_start(fx_t *f, unsigned sim_min, long min_tokens, long ttl_s, long idle_s)
{
    memset(f, 0, sizeof *f);
    char err[256] = "";
    sc_gemini_sim_opts_t so = {.threads = 4, .api_key = TEST_KEY, .cache_min_tokens = sim_min};
    if (sc_gemini_sim_start(&so, &f->sim, err, sizeof err) != SC_OK)
        fail_msg("sim: %s", err);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", sc_gemini_sim_port(f->sim));
    assert_int_equal(sc_config_new(&f->cfg), SC_OK);
    sc_prompt_cache_opts_t o;
    sc_prompt_cache_opts_from_config(f->cfg, &o);
    assert_int_equal(o.min_tokens, 1024); /* the configured defaults */
    assert_int_equal(o.min_tokens_pro, 4096);
    assert_int_equal(o.ttl_s, 300);
    assert_int_equal(o.idle_s, 600);
    o.base_url = f->url;
    o.api_key = TEST_KEY;
    if (min_tokens > 0)
        o.min_tokens = min_tokens;
    if (ttl_s > 0)
        o.ttl_s = ttl_s;
    if (idle_s > 0)
        o.idle_s = idle_s;
    if (sc_prompt_cache_new(&o, &f->pc, err, sizeof err) != SC_OK)
        fail_msg("prompt cache: %s", err);
    sc_gemini_opts_t go;
    sc_gemini_opts_default(&go);
    go.base_url = f->url;
    go.api_key = TEST_KEY;
    go.max_attempts = 1;
    if (sc_gemini_new(&go, &f->g, err, sizeof err) != SC_OK)
        fail_msg("client: %s", err);
}

static void fx_stop(fx_t *f)
{
    sc_gemini_free(f->g);
    sc_prompt_cache_free(f->pc);
    sc_gemini_sim_stop(f->sim);
    sc_config_free(f->cfg);
}

/* A counter of the simulator's stats. */
static double sim_stat(fx_t *f, const char *key)
{
    char *s = sc_gemini_sim_stats_json(f->sim);
    assert_non_null(s);
    json_t *doc = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(doc);
    double v = json_number_value(json_object_get(doc, key));
    json_decref(doc);
    return v;
}

/* Poll the manager until *field (of its stats) reaches want. */
#define WAIT_STAT(f, field, want)                                                                  \
    do {                                                                                           \
        int64_t deadline_ = sc_now_ms() + TEST_WAIT_MS;                                            \
        sc_prompt_cache_stats_t s_;                                                                \
        for (;;) {                                                                                 \
            sc_prompt_cache_stats((f)->pc, &s_);                                                   \
            if (s_.field >= (want))                                                                \
                break;                                                                             \
            if (sc_now_ms() > deadline_)                                                           \
                fail_msg("stats." #field " = %g, never reached %g", (double)s_.field,              \
                         (double)(want));                                                          \
            test_sleep_ms(TEST_POLL_MS);                                                           \
        }                                                                                          \
    } while (0)

/* Poll the simulator until stats[key] reaches want. */
static void wait_sim(fx_t *f, const char *key, double want)
{
    int64_t deadline = sc_now_ms() + TEST_WAIT_MS;
    while (sim_stat(f, key) < want) {
        if (sc_now_ms() > deadline)
            fail_msg("sim %s never reached %g", key, want);
        test_sleep_ms(TEST_POLL_MS);
    }
}

/* The live caches the simulator lists. */
static size_t sim_list_count(fx_t *f)
{
    char url[TEST_URL_MAX + 64];
    snprintf(url, sizeof url, "%s/v1beta/cachedContents?pageSize=1000", f->url);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "x-goog-api-key: " TEST_KEY);
    FILE *mem;
    char *buf = NULL;
    size_t len = 0;
    mem = open_memstream(&buf, &len);
    assert_non_null(mem);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    fclose(mem);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 200);
    json_t *doc = json_loads(buf, 0, NULL);
    assert_non_null(doc);
    size_t n = json_array_size(json_object_get(doc, "cachedContents"));
    json_decref(doc);
    free(buf);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return n;
}

/* Send one request (system prompt + one user turn) with the cache when name is set.
 * @return the finished call; the caller frees it. */
static sc_gemini_call_t *send_req(fx_t *f, const char *model, const char *system, const char *user,
                                  const char *name)
{
    sc_turn_t turn = {"user", user, strlen(user)};
    sc_request_t req;
    memset(&req, 0, sizeof req);
    req.system = system;
    req.turns = &turn;
    req.n_turns = 1;
    size_t len = 0;
    char *body = name ? sc_gemini_body_with_cache(&req, name, &len)
                      : sc_gemini_body_from_request(&req, &len);
    assert_non_null(body);
    if (name) { /* the cache replaces the system instruction (gemini-api.md §1.4) */
        assert_null(strstr(body, "systemInstruction"));
        assert_non_null(strstr(body, "\"cachedContent\""));
    }
    sc_gemini_call_t *call = sc_gemini_call_new(model, body, len);
    assert_non_null(call);
    sc_status_t st = sc_gemini_call_sync(f->g, call);
    if (st != SC_OK)
        fail_msg("generateContent: %s http=%ld %s", sc_strerror(st), call->http_status,
                 call->err_message ? call->err_message : "");
    return call;
}

/* USD per 1M tokens per hour of storage for model. */
static double storage_price(fx_t *f, const char *model)
{
    char key[128];
    snprintf(key, sizeof key, "prices.%s.cache_storage_per_hour", model);
    return sc_config_num(f->cfg, key);
}

/* ---- tests ---- */

static void test_create_then_use(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, 0, 0, 0, 0);
    assert_int_equal(sc_prompt_cache_min_tokens(f.pc, TEST_FLASH), 1024);
    assert_int_equal(sc_prompt_cache_min_tokens(f.pc, "gemini-2.5-pro"), 4096);
    char *sys = prefix_make(8000, 1); /* 2000 tokens */
    char name[SC_PROMPT_CACHE_NAME_MAX];
    double charge = -1.0;

    /* first acquire: nothing yet; the manager creates it in the background */
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, 8000, 0, name, sizeof name, &charge),
        SC_ERR_NOT_FOUND);
    assert_true(charge == 0.0);
    assert_string_equal(name, "");
    WAIT_STAT(&f, creates, 1);
    assert_int_equal(sim_stat(&f, "caches_created"), 1);

    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, 8000, 0, name, sizeof name, &charge), SC_OK);
    assert_memory_equal(name, "cachedContents/", 15);
    double want = 2000.0 / 1e6 * (300.0 / 3600.0) * storage_price(&f, TEST_FLASH);
    assert_true(want > 0.0);
    assert_true(fabs(charge - want) < 1e-12);
    /* the charge is handed out once */
    char name2[SC_PROMPT_CACHE_NAME_MAX];
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, 8000, 2000, name2, sizeof name2, &charge),
        SC_OK);
    assert_string_equal(name, name2);
    assert_true(charge == 0.0);

    /* through the client: the cached prefix shows in usage */
    sc_gemini_call_t *call = send_req(&f, TEST_FLASH, sys, "What is two plus two?", name);
    assert_int_equal(call->usage.cached_tokens, 2000);
    assert_int_equal(call->usage.prompt_tokens,
                     2000 + (long)(strlen("What is two plus two?") + 3) / 4);
    sc_gemini_call_free(call);
    assert_int_equal(sim_stat(&f, "cached_tokens_served"), 2000);

    /* another model, another prefix: separate caches; bad arguments */
    assert_int_equal(sc_prompt_cache_acquire(f.pc, "gemini-2.5-flash-lite", sys, 8000, 0, name,
                                             sizeof name, NULL),
                     SC_ERR_NOT_FOUND);
    WAIT_STAT(&f, creates, 2);
    assert_int_equal(sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, 8000, 0, name, 8, NULL),
                     SC_ERR_INVALID_ARG);
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, NULL, 8000, 0, name, sizeof name, NULL),
        SC_ERR_INVALID_ARG);
    sc_prompt_cache_stats_t st;
    sc_prompt_cache_stats(f.pc, &st);
    assert_int_equal(st.live, 2);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 2);
    free(sys);
    fx_stop(&f);
}

static void test_below_minimum_and_too_small(void **state)
{
    (void)state;
    fx_t f;
    /* the manager thinks 100 tokens are enough; the server's minimum is 1024 */
    fx_start(&f, 0, 100, 0, 0);
    char name[SC_PROMPT_CACHE_NAME_MAX];
    char *tiny = prefix_make(200, 2);   /* 50 tokens: below the manager's own minimum */
    char *small = prefix_make(2000, 3); /* 500 tokens: the server refuses it */
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, tiny, 200, 0, name, sizeof name, NULL),
        SC_ERR_INVALID);
    /* a pro model's minimum (4096) is its own */
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, "gemini-2.5-pro", small, 2000, 0, name, sizeof name, NULL),
        SC_ERR_INVALID);

    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, small, 2000, 0, name, sizeof name, NULL),
        SC_ERR_NOT_FOUND);
    WAIT_STAT(&f, too_small, 1);
    for (int i = 0; i < 5; i++) /* remembered: not retried */
        assert_int_equal(
            sc_prompt_cache_acquire(f.pc, TEST_FLASH, small, 2000, 0, name, sizeof name, NULL),
            SC_ERR_INVALID);
    assert_int_equal(sim_stat(&f, "caches_too_small"), 1);
    assert_int_equal(sim_stat(&f, "caches_created"), 0);
    sc_prompt_cache_stats_t st;
    sc_prompt_cache_stats(f.pc, &st);
    assert_int_equal(st.creates, 0);
    assert_int_equal(st.create_failures, 0);
    assert_true(st.storage_usd == 0.0);
    free(tiny);
    free(small);
    fx_stop(&f);
}

/* Used with less than half its TTL left, the cache is extended by PATCH; the extension's storage
 * is charged once, to the next request that gets the cache. */
static void test_ttl_extension(void **state)
{
    (void)state;
    enum { TTL_S = 3 };
    fx_t f;
    fx_start(&f, 0, 0, TTL_S, 60);
    char *sys = prefix_make(8000, 4);
    char name[SC_PROMPT_CACHE_NAME_MAX];
    double charge = 0.0, total = 0.0;
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, 8000, 0, name, sizeof name, NULL),
        SC_ERR_NOT_FOUND);
    WAIT_STAT(&f, creates, 1);
    int64_t created = sc_now_ms();
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, 8000, 0, name, sizeof name, &charge), SC_OK);
    total += charge;
    sc_prompt_cache_stats_t st;
    sc_prompt_cache_stats(f.pc, &st);
    assert_int_equal(st.extends, 0); /* more than half the TTL left: no extension */

    /* wait for the clock to pass half the TTL (a wait on time itself, not on an event) */
    while (sc_now_ms() - created < TTL_S * 1000 / 2 + 100)
        test_sleep_ms(TEST_POLL_MS);
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, 8000, 0, name, sizeof name, &charge), SC_OK);
    total += charge;
    WAIT_STAT(&f, extends, 1);
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, 8000, 0, name, sizeof name, &charge), SC_OK);
    assert_true(charge > 0.0); /* the extension's token-hours */
    total += charge;
    sc_prompt_cache_stats(f.pc, &st);
    assert_true(fabs(total - st.storage_usd) < 1e-15); /* everything bought, handed out once */
    assert_true(st.storage_usd_unclaimed == 0.0);
    /* bought: 2000 tokens for the first TTL plus the time the extension added (>= half a TTL) */
    double per_s = 2000.0 / 1e6 / 3600.0 * storage_price(&f, TEST_FLASH);
    assert_true(st.storage_usd > per_s * TTL_S * 1.5 - 1e-15);
    assert_true(st.storage_usd < per_s * TTL_S * 2.0 + 1e-15);

    /* the cache outlives its first TTL */
    while (sc_now_ms() - created < TTL_S * 1000 + 200)
        test_sleep_ms(TEST_POLL_MS);
    sc_gemini_call_t *call = send_req(&f, TEST_FLASH, sys, "Still there?", name);
    assert_int_equal(call->usage.cached_tokens, 2000);
    sc_gemini_call_free(call);
    free(sys);
    fx_stop(&f);
}

/* An unused cache is deleted after idle_s; the rest are deleted at free. */
static void test_idle_and_free_delete(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, 0, 0, 0, 1);
    char *a = prefix_make(8000, 5), *b = prefix_make(8000, 6);
    char name[SC_PROMPT_CACHE_NAME_MAX];
    assert_int_equal(sc_prompt_cache_acquire(f.pc, TEST_FLASH, a, 8000, 0, name, sizeof name, NULL),
                     SC_ERR_NOT_FOUND);
    WAIT_STAT(&f, creates, 1);
    assert_int_equal(sc_prompt_cache_acquire(f.pc, TEST_FLASH, a, 8000, 0, name, sizeof name, NULL),
                     SC_OK);
    assert_int_equal(sim_list_count(&f), 1);
    wait_sim(&f, "caches_deleted", 1); /* idle for 1 s */
    WAIT_STAT(&f, deletes, 1);
    assert_int_equal(sim_list_count(&f), 0);
    sc_prompt_cache_stats_t st;
    sc_prompt_cache_stats(f.pc, &st);
    assert_int_equal(st.live, 0);
    assert_true(st.storage_usd_unclaimed == 0.0); /* its charge went with the acquire */
    /* the prefix comes back: a new cache */
    assert_int_equal(sc_prompt_cache_acquire(f.pc, TEST_FLASH, a, 8000, 0, name, sizeof name, NULL),
                     SC_ERR_NOT_FOUND);
    assert_int_equal(sc_prompt_cache_acquire(f.pc, TEST_FLASH, b, 8000, 0, name, sizeof name, NULL),
                     SC_ERR_NOT_FOUND);
    WAIT_STAT(&f, creates, 3);
    assert_int_equal(sim_list_count(&f), 2);
    assert_int_equal(sim_stat(&f, "caches_created"), 3);

    /* free deletes what the manager created */
    sc_prompt_cache_free(f.pc);
    f.pc = NULL;
    assert_int_equal(sim_stat(&f, "caches_deleted"), 3);
    assert_int_equal(sim_list_count(&f), 0);
    free(a);
    free(b);
    fx_stop(&f);
}

/* A cache that vanished upstream (404): forget it and the next acquire makes a new one. */
static void test_forget(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, 0, 0, 0, 0);
    char *sys = prefix_make(8000, 7);
    char name[SC_PROMPT_CACHE_NAME_MAX];
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, 8000, 0, name, sizeof name, NULL),
        SC_ERR_NOT_FOUND);
    WAIT_STAT(&f, creates, 1);
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, 8000, 0, name, sizeof name, NULL), SC_OK);
    /* delete it behind the manager's back */
    char url[TEST_URL_MAX + SC_PROMPT_CACHE_NAME_MAX + 16];
    snprintf(url, sizeof url, "%s/v1beta/%s", f.url, name);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "x-goog-api-key: " TEST_KEY);
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    fclose(devnull);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);

    sc_turn_t turn = {"user", "hello", 5};
    sc_request_t req;
    memset(&req, 0, sizeof req);
    req.turns = &turn;
    req.n_turns = 1;
    size_t len = 0;
    char *body = sc_gemini_body_with_cache(&req, name, &len);
    sc_gemini_call_t *call = sc_gemini_call_new(TEST_FLASH, body, len);
    assert_int_equal(sc_gemini_call_sync(f.g, call), SC_ERR_UPSTREAM_REJECTED);
    assert_int_equal(call->http_status, 404);
    sc_gemini_call_free(call);
    assert_null(sc_gemini_body_with_cache(&req, "", &len));

    sc_prompt_cache_forget(f.pc, name);
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, 8000, 0, name, sizeof name, NULL),
        SC_ERR_NOT_FOUND);
    WAIT_STAT(&f, creates, 2);
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, 8000, 0, name, sizeof name, NULL), SC_OK);
    free(sys);
    fx_stop(&f);
}

/* The acceptance: 50 requests sharing a 6,000-token system prompt; after the first,
 * >= 90% of the prefix tokens are billed as cached, and caching (cached-input price + storage)
 * costs less than not caching. */
static void test_acceptance_shared_prefix(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, 0, 0, 0, 0);
    char *sys = prefix_make(ACCEPT_CHARS, 8);
    const long prefix_tokens = ACCEPT_CHARS / 4;
    sc_price_t price;
    assert_int_equal(sc_price_lookup(f.cfg, TEST_FLASH, &price), SC_OK);
    long cached_sum = 0, prefix_sum = 0;
    double cost_cached = 0.0, cost_uncached = 0.0, storage = 0.0;
    int uncached_after_first = 0;
    for (int i = 0; i < ACCEPT_N; i++) {
        char name[SC_PROMPT_CACHE_NAME_MAX], user[64];
        double charge = 0.0;
        snprintf(user, sizeof user, "Question number %d: what changed?", i);
        sc_status_t st = sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, ACCEPT_CHARS, prefix_tokens,
                                                 name, sizeof name, &charge);
        assert_true(st == SC_OK || st == SC_ERR_NOT_FOUND);
        storage += charge;
        sc_gemini_call_t *call = send_req(&f, TEST_FLASH, sys, user, st == SC_OK ? name : NULL);
        sc_usage_t u = call->usage, plain = call->usage;
        plain.cached_tokens = 0;
        cost_cached += sc_price_cost(&price, &u, 0) + charge;
        cost_uncached += sc_price_cost(&price, &plain, 0);
        if (i > 0) {
            cached_sum += u.cached_tokens;
            prefix_sum += prefix_tokens;
            uncached_after_first += st != SC_OK;
        }
        sc_gemini_call_free(call);
        if (i == 0)
            WAIT_STAT(&f, creates, 1); /* the first request went uncached while it was made */
    }
    double ratio = (double)cached_sum / (double)prefix_sum;
    sc_prompt_cache_stats_t st;
    sc_prompt_cache_stats(f.pc, &st);
    printf("acceptance: %d requests, %ld-token shared system prompt on %s\n", ACCEPT_N,
           prefix_tokens, TEST_FLASH);
    printf("  requests 2..%d: cached prefix tokens %ld / %ld = %.4f (need >= %.2f), "
           "uncached after the first: %d\n",
           ACCEPT_N, cached_sum, prefix_sum, ratio, ACCEPT_RATIO, uncached_after_first);
    printf("  cost with caching    $%.6f (of which storage $%.6f)\n", cost_cached, storage);
    printf("  cost without caching $%.6f (saved %.1f%%)\n", cost_uncached,
           100.0 * (1.0 - cost_cached / cost_uncached));
    assert_true(ratio >= ACCEPT_RATIO);
    assert_true(cost_cached < cost_uncached);
    /* storage included exactly once: all of it went to requests */
    assert_true(fabs(storage - st.storage_usd) < 1e-15);
    assert_true(storage > 0.0);
    assert_int_equal(st.creates, 1);
    assert_int_equal(sim_stat(&f, "caches_created"), 1);
    assert_int_equal(sim_stat(&f, "cached_tokens_served"), cached_sum);
    /* what the simulator saw stored (tokens x seconds alive) is within what was bought */
    sc_prompt_cache_free(f.pc);
    f.pc = NULL;
    double sim_usd =
        sim_stat(&f, "storage_token_seconds") / 1e6 / 3600.0 * storage_price(&f, TEST_FLASH);
    printf("  storage billed on time alive (simulator) $%.8f <= bought $%.8f\n", sim_usd, storage);
    assert_true(sim_usd > 0.0 && sim_usd <= storage + 1e-15);
    free(sys);
    fx_stop(&f);
}

/* ---- sharing between replicas ---- */

/* One share a hook was told, with copies of its strings (they are borrowed). */
typedef struct {
    sc_prompt_cache_share_t s; /* its strings point at the copies below */
    char model[SC_PROMPT_CACHE_MODEL_MAX], name[SC_PROMPT_CACHE_NAME_MAX];
    char *prefix; /* owned, NULL when the share had none */
} share_rec_t;

/* A share hook's recorder: the manager's thread writes, the test reads, hence the lock. */
typedef struct {
    pthread_mutex_t mu;
    int n; /* shares told; those past SHARES_MAX are counted, not kept */
    share_rec_t r[SHARES_MAX];
} shares_t;

static void shares_init(shares_t *sh)
{
    memset(sh, 0, sizeof *sh);
    pthread_mutex_init(&sh->mu, NULL);
}

static void shares_clear(shares_t *sh)
{
    for (int i = 0; i < sh->n && i < SHARES_MAX; i++)
        free(sh->r[i].prefix);
    pthread_mutex_destroy(&sh->mu);
}

static void shares_hook(void *arg, const sc_prompt_cache_share_t *s)
{
    shares_t *sh = arg;
    pthread_mutex_lock(&sh->mu);
    if (sh->n < SHARES_MAX) {
        share_rec_t *r = &sh->r[sh->n];
        r->s = *s;
        snprintf(r->model, sizeof r->model, "%s", s->model);
        snprintf(r->name, sizeof r->name, "%s", s->name);
        r->prefix = s->prefix ? malloc(s->prefix_len) : NULL;
        if (r->prefix)
            memcpy(r->prefix, s->prefix, s->prefix_len);
        r->s.model = r->model;
        r->s.name = r->name;
        r->s.prefix = r->prefix;
    }
    sh->n++;
    pthread_mutex_unlock(&sh->mu);
}

/* Shares told so far. */
static int shares_total(shares_t *sh)
{
    pthread_mutex_lock(&sh->mu);
    int n = sh->n;
    pthread_mutex_unlock(&sh->mu);
    return n;
}

/* Shares told so far with that gone flag. */
static int shares_count(shares_t *sh, int gone)
{
    pthread_mutex_lock(&sh->mu);
    int c = 0;
    for (int i = 0; i < sh->n && i < SHARES_MAX; i++)
        c += sh->r[i].s.gone == gone;
    pthread_mutex_unlock(&sh->mu);
    return c;
}

/* The k-th (from 0) share with that gone flag, polled for; it stays valid until shares_clear. */
static const sc_prompt_cache_share_t *shares_wait(shares_t *sh, int gone, int k)
{
    int64_t deadline = sc_now_ms() + TEST_WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&sh->mu);
        int seen = 0;
        for (int i = 0; i < sh->n && i < SHARES_MAX; i++) {
            if (sh->r[i].s.gone == gone && seen++ == k) {
                pthread_mutex_unlock(&sh->mu);
                return &sh->r[i].s;
            }
        }
        pthread_mutex_unlock(&sh->mu);
        if (sc_now_ms() > deadline)
            fail_msg("share %d with gone=%d never came", k, gone);
        test_sleep_ms(TEST_POLL_MS);
    }
}

/* Another replica's manager on f's prices: url "" for f's simulator. @remark the caller frees. */
static sc_prompt_cache_t *replica_new(fx_t *f, const char *url, long ttl_s, int max_caches,
                                      long timeout_ms)
{
    sc_prompt_cache_opts_t o;
    sc_prompt_cache_opts_from_config(f->cfg, &o);
    o.base_url = url[0] ? url : f->url;
    o.api_key = TEST_KEY;
    if (ttl_s > 0)
        o.ttl_s = ttl_s;
    if (max_caches > 0)
        o.max_caches = max_caches;
    if (timeout_ms > 0)
        o.request_timeout_ms = timeout_ms;
    char err[256] = "";
    sc_prompt_cache_t *pc = NULL;
    if (sc_prompt_cache_new(&o, &pc, err, sizeof err) != SC_OK)
        fail_msg("replica: %s", err);
    return pc;
}

/* A live record of (model, prefix) made by the test (the hash its XXH3). */
static sc_prompt_cache_share_t share_make(const char *model, const char *prefix, size_t len,
                                          const char *name, int64_t expire_wall_ms)
{
    sc_prompt_cache_share_t s = {.model = model,
                                 .prefix = prefix,
                                 .prefix_len = len,
                                 .hash = XXH3_64bits(prefix, len),
                                 .name = name,
                                 .tokens = (long)(len / 4),
                                 .expire_wall_ms = expire_wall_ms};
    return s;
}

/* Create prefix's cache on f's manager; its name into name (SC_PROMPT_CACHE_NAME_MAX bytes). */
static void fx_make_cache(fx_t *f, const char *prefix, size_t len, char *name)
{
    sc_prompt_cache_stats_t st;
    sc_prompt_cache_stats(f->pc, &st);
    assert_int_equal(sc_prompt_cache_acquire(f->pc, TEST_FLASH, prefix, len, 0, name,
                                             SC_PROMPT_CACHE_NAME_MAX, NULL),
                     SC_ERR_NOT_FOUND);
    WAIT_STAT(f, creates, st.creates + 1);
    assert_int_equal(sc_prompt_cache_acquire(f->pc, TEST_FLASH, prefix, len, 0, name,
                                             SC_PROMPT_CACHE_NAME_MAX, NULL),
                     SC_OK);
}

/* A replica's cache, shared by A's hook, is adopted by B: B answers A's name without creating
 * one, and carries no storage for it. */
static void test_share_and_adopt(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, 0, 0, 0, 0);
    shares_t sh;
    shares_init(&sh);
    sc_prompt_cache_on_share(f.pc, shares_hook, &sh);
    char *sys = prefix_make(8000, 11);
    char name_a[SC_PROMPT_CACHE_NAME_MAX], name[SC_PROMPT_CACHE_NAME_MAX];
    fx_make_cache(&f, sys, 8000, name_a);
    const sc_prompt_cache_share_t *s = shares_wait(&sh, 0, 0);
    assert_int_equal(shares_total(&sh), 1);
    assert_string_equal(s->name, name_a);
    assert_string_equal(s->model, TEST_FLASH);
    assert_int_equal(s->fields, 0);
    assert_int_equal(s->prefix_len, 8000);
    assert_memory_equal(s->prefix, sys, 8000);
    assert_true(s->hash == XXH3_64bits(sys, 8000));
    assert_int_equal(s->tokens, 2000);
    assert_true(s->expire_wall_ms > sc_wall_ms() + 200 * 1000); /* the 300 s TTL */

    sc_prompt_cache_t *b = replica_new(&f, "", 0, 0, 0);
    assert_int_equal(sc_prompt_cache_adopt(b, s), SC_OK);
    double charge = -1.0;
    assert_int_equal(
        sc_prompt_cache_acquire(b, TEST_FLASH, sys, 8000, 0, name, sizeof name, &charge), SC_OK);
    assert_string_equal(name, name_a);
    assert_true(charge == 0.0); /* A bought the storage */
    /* the same record again refreshes, it adopts nothing new */
    assert_int_equal(sc_prompt_cache_adopt(b, s), SC_OK);
    sc_gemini_call_t *call = send_req(&f, TEST_FLASH, sys, "Which replica am I on?", name_a);
    assert_int_equal(call->usage.cached_tokens, 2000);
    sc_gemini_call_free(call);

    sc_prompt_cache_stats_t st;
    sc_prompt_cache_stats(b, &st);
    assert_int_equal(st.creates, 0);
    assert_int_equal(st.adopted, 1);
    assert_int_equal(st.live, 1);
    assert_int_equal(st.hits, 1);
    assert_true(st.storage_usd == 0.0);
    assert_int_equal(sim_stat(&f, "caches_created"), 1);
    /* B leaves A's cache alone at free */
    sc_prompt_cache_free(b);
    assert_int_equal(sim_stat(&f, "caches_deleted"), 0);
    assert_int_equal(sim_list_count(&f), 1);
    sc_prompt_cache_on_share(f.pc, NULL, NULL);
    assert_int_equal(shares_total(&sh), 1); /* B's adopting told A nothing */
    shares_clear(&sh);
    free(sys);
    fx_stop(&f);
}

/* Records that do not hold up are refused; a record answers its own prefix only. */
static void test_adopt_refuses(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, 0, 0, 0, 0);
    char *p1 = prefix_make(8000, 12), *p2 = prefix_make(8000, 13), *p3 = prefix_make(8000, 14);
    int64_t exp = sc_wall_ms() + 300 * 1000;
    const char *n2 = "cachedContents/replica2", *n3 = "cachedContents/replica3";
    sc_prompt_cache_share_t s = share_make(TEST_FLASH, p2, 8000, n2, exp);
    char name[SC_PROMPT_CACHE_NAME_MAX];

    /* p2's cache claimed for p1's bytes (p1 keeps p2's hash, or gets its own): refused */
    sc_prompt_cache_share_t bad = s;
    bad.prefix = p1;
    assert_int_equal(sc_prompt_cache_adopt(f.pc, &bad), SC_ERR_INVALID_ARG);
    bad = s;
    bad.hash ^= 1;
    assert_int_equal(sc_prompt_cache_adopt(f.pc, &bad), SC_ERR_INVALID_ARG);
    const char *bad_names[] = {"cachedContents/", "cachedContents/../models", "files/abc",
                               "cachedContents/a?b", NULL};
    for (int i = 0; i < 5; i++) {
        bad = s;
        bad.name = bad_names[i];
        assert_int_equal(sc_prompt_cache_adopt(f.pc, &bad), SC_ERR_INVALID_ARG);
    }
    bad = s;
    bad.model = "";
    assert_int_equal(sc_prompt_cache_adopt(f.pc, &bad), SC_ERR_INVALID_ARG);
    bad = s;
    bad.prefix = NULL;
    assert_int_equal(sc_prompt_cache_adopt(f.pc, &bad), SC_ERR_INVALID_ARG);
    bad = s;
    bad.fields = 2;
    assert_int_equal(sc_prompt_cache_adopt(f.pc, &bad), SC_ERR_INVALID_ARG);
    bad = s;
    bad.expire_wall_ms = sc_wall_ms() + 1000; /* inside the hand-out margin */
    assert_int_equal(sc_prompt_cache_adopt(f.pc, &bad), SC_ERR_TIMEOUT);
    bad.expire_wall_ms = INT64_MIN;
    assert_int_equal(sc_prompt_cache_adopt(f.pc, &bad), SC_ERR_TIMEOUT);
    bad.expire_wall_ms = INT64_MAX; /* beyond any TTL */
    assert_int_equal(sc_prompt_cache_adopt(f.pc, &bad), SC_ERR_INVALID_ARG);
    assert_int_equal(sc_prompt_cache_adopt(NULL, &s), SC_ERR_INVALID_ARG);
    sc_prompt_cache_stats_t st;
    sc_prompt_cache_stats(f.pc, &st);
    assert_int_equal(st.adopted, 0);
    assert_int_equal(st.live, 0);

    /* p2's real record: p1 and p2 under another model are not answered with it */
    assert_int_equal(sc_prompt_cache_adopt(f.pc, &s), SC_OK);
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, p2, 8000, 0, name, sizeof name, NULL), SC_OK);
    assert_string_equal(name, n2);
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, p1, 8000, 0, name, sizeof name, NULL),
        SC_ERR_NOT_FOUND);
    assert_int_equal(sc_prompt_cache_acquire(f.pc, "gemini-2.5-flash-lite", p2, 8000, 0, name,
                                             sizeof name, NULL),
                     SC_ERR_NOT_FOUND);
    WAIT_STAT(&f, creates, 2);
    /* p1 now has a cache of its own: another replica's for p1 leaves it as it is */
    char own[SC_PROMPT_CACHE_NAME_MAX];
    assert_int_equal(sc_prompt_cache_acquire(f.pc, TEST_FLASH, p1, 8000, 0, own, sizeof own, NULL),
                     SC_OK);
    sc_prompt_cache_share_t other = share_make(TEST_FLASH, p1, 8000, n3, exp);
    assert_int_equal(sc_prompt_cache_adopt(f.pc, &other), SC_ERR_INVALID);
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, p1, 8000, 0, name, sizeof name, NULL), SC_OK);
    assert_string_equal(name, own);
    sc_prompt_cache_stats(f.pc, &st);
    assert_int_equal(st.adopted, 1);
    assert_int_equal(st.live, 3);
    fx_stop(&f);

    /* a table of one: the second prefix finds no slot */
    fx_start(&f, 0, 0, 0, 0);
    sc_prompt_cache_t *one = replica_new(&f, "", 0, 1, 0);
    assert_int_equal(sc_prompt_cache_adopt(one, &s), SC_OK);
    other = share_make(TEST_FLASH, p3, 8000, n3, exp);
    assert_int_equal(sc_prompt_cache_adopt(one, &other), SC_ERR_FULL);
    sc_prompt_cache_free(one);
    free(p1);
    free(p2);
    free(p3);
    fx_stop(&f);
}

/* A gone record drops the adopted cache without a DELETE: the next acquire makes one. */
static void test_adopt_gone(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, 0, 0, 0, 0);
    char *sys = prefix_make(8000, 15);
    char name_a[SC_PROMPT_CACHE_NAME_MAX], name[SC_PROMPT_CACHE_NAME_MAX];
    fx_make_cache(&f, sys, 8000, name_a);
    sc_prompt_cache_t *b = replica_new(&f, "", 0, 0, 0);
    sc_prompt_cache_share_t s =
        share_make(TEST_FLASH, sys, 8000, name_a, sc_wall_ms() + 300 * 1000);
    assert_int_equal(sc_prompt_cache_adopt(b, &s), SC_OK);
    assert_int_equal(sc_prompt_cache_acquire(b, TEST_FLASH, sys, 8000, 0, name, sizeof name, NULL),
                     SC_OK);
    assert_string_equal(name, name_a);

    sc_prompt_cache_share_t gone = {
        .model = TEST_FLASH, .hash = s.hash, .name = name_a, .gone = 1}; /* no prefix */
    assert_int_equal(sc_prompt_cache_adopt(b, &gone), SC_OK);
    assert_int_equal(sc_prompt_cache_adopt(b, &gone), SC_ERR_NOT_FOUND);
    assert_int_equal(sc_prompt_cache_acquire(b, TEST_FLASH, sys, 8000, 0, name, sizeof name, NULL),
                     SC_ERR_NOT_FOUND);
    fx_t fb = {.pc = b};
    WAIT_STAT(&fb, creates, 1);
    assert_int_equal(sc_prompt_cache_acquire(b, TEST_FLASH, sys, 8000, 0, name, sizeof name, NULL),
                     SC_OK);
    assert_string_not_equal(name, name_a);
    assert_int_equal(sim_stat(&f, "caches_created"), 2);
    assert_int_equal(sim_stat(&f, "caches_deleted"), 0); /* the gone record deleted nothing */
    gone.name = "cachedContents/unknown";
    assert_int_equal(sc_prompt_cache_adopt(b, &gone), SC_ERR_NOT_FOUND);
    sc_prompt_cache_free(b); /* no hook: B deletes the cache it made */
    assert_int_equal(sim_stat(&f, "caches_deleted"), 1);
    free(sys);
    fx_stop(&f);
}

/* What leaves the table for good is shared as gone: an expiry, a forget, an idle delete. */
static void test_share_gone(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, 0, 0, 1, 60); /* a 1 s TTL, nothing extends it */
    shares_t sh;
    shares_init(&sh);
    sc_prompt_cache_on_share(f.pc, shares_hook, &sh);
    char *p1 = prefix_make(8000, 16), *p2 = prefix_make(8000, 17), *p3 = prefix_make(8000, 18);
    char name[SC_PROMPT_CACHE_NAME_MAX];
    fx_make_cache(&f, p1, 8000, name);
    const sc_prompt_cache_share_t *g = shares_wait(&sh, 1, 0); /* expired */
    assert_string_equal(g->name, name);
    assert_true(g->hash == XXH3_64bits(p1, 8000));
    assert_int_equal(shares_count(&sh, 0), 1);
    sc_prompt_cache_on_share(f.pc, NULL, NULL);
    fx_stop(&f);
    shares_clear(&sh);

    fx_start(&f, 0, 0, 0, 1); /* idle after 1 s */
    shares_init(&sh);
    sc_prompt_cache_on_share(f.pc, shares_hook, &sh);
    fx_make_cache(&f, p2, 8000, name);
    sc_prompt_cache_forget(f.pc, name); /* told at once, on this thread */
    assert_int_equal(shares_count(&sh, 1), 1);
    assert_string_equal(shares_wait(&sh, 1, 0)->name, name);
    assert_int_equal(sim_stat(&f, "caches_deleted"), 0);
    fx_make_cache(&f, p3, 8000, name);
    wait_sim(&f, "caches_deleted", 1);
    WAIT_STAT(&f, deletes, 1);
    assert_string_equal(shares_wait(&sh, 1, 1)->name, name);
    assert_int_equal(shares_count(&sh, 0), 2);
    sc_prompt_cache_on_share(f.pc, NULL, NULL);
    fx_stop(&f);
    shares_clear(&sh);
    free(p1);
    free(p2);
    free(p3);
}

/* A sharing manager leaves its caches to the other replicas at free, also when its hook was
 * cleared first (as serve does before its changelog closes). Without a hook they are deleted
 * (test_idle_and_free_delete). */
static void test_leave_at_free(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, 0, 0, 0, 0);
    shares_t sh;
    shares_init(&sh);
    sc_prompt_cache_on_share(f.pc, shares_hook, &sh);
    char *p1 = prefix_make(8000, 19), *p2 = prefix_make(8000, 20);
    char name[SC_PROMPT_CACHE_NAME_MAX];
    fx_make_cache(&f, p1, 8000, name);
    sc_prompt_cache_free(f.pc);
    assert_int_equal(sim_stat(&f, "caches_deleted"), 0);
    assert_int_equal(sim_list_count(&f), 1);
    assert_int_equal(shares_count(&sh, 1), 0); /* left, not gone */

    sc_prompt_cache_t *c = replica_new(&f, "", 0, 0, 0);
    sc_prompt_cache_on_share(c, shares_hook, &sh);
    f.pc = c;
    fx_make_cache(&f, p2, 8000, name);
    sc_prompt_cache_on_share(c, NULL, NULL);
    sc_prompt_cache_free(c);
    f.pc = NULL;
    assert_int_equal(sim_stat(&f, "caches_deleted"), 0);
    assert_int_equal(sim_list_count(&f), 2);
    assert_int_equal(shares_count(&sh, 0), 2);
    assert_int_equal(shares_count(&sh, 1), 0);
    shares_clear(&sh);
    free(p1);
    free(p2);
    fx_stop(&f);
}

/* The adopter extends the cache like its own: the PATCH is charged to it and shared. */
static void test_adopter_extends(void **state)
{
    (void)state;
    enum { TTL_S = 3 };
    fx_t f;
    fx_start(&f, 0, 0, TTL_S, 60);
    char *sys = prefix_make(8000, 21);
    char name_a[SC_PROMPT_CACHE_NAME_MAX], name[SC_PROMPT_CACHE_NAME_MAX];
    fx_make_cache(&f, sys, 8000, name_a);
    int64_t created = sc_now_ms();
    sc_prompt_cache_t *b = replica_new(&f, "", TTL_S, 0, 0);
    shares_t sh;
    shares_init(&sh);
    sc_prompt_cache_on_share(b, shares_hook, &sh);
    /* the record as A's hook would make it: expireTime from the simulator's view of A's TTL */
    sc_prompt_cache_share_t s =
        share_make(TEST_FLASH, sys, 8000, name_a, sc_wall_ms() + TTL_S * 1000 - 100);
    assert_int_equal(sc_prompt_cache_adopt(b, &s), SC_OK);
    double charge = -1.0;
    assert_int_equal(
        sc_prompt_cache_acquire(b, TEST_FLASH, sys, 8000, 0, name, sizeof name, &charge), SC_OK);
    assert_true(charge == 0.0);
    while (sc_now_ms() - created < TTL_S * 1000 / 2 + 100) /* a wait on the clock itself */
        test_sleep_ms(TEST_POLL_MS);
    assert_int_equal(sc_prompt_cache_acquire(b, TEST_FLASH, sys, 8000, 0, name, sizeof name, NULL),
                     SC_OK);
    const sc_prompt_cache_share_t *e = shares_wait(&sh, 0, 0);
    assert_string_equal(e->name, name_a);
    assert_true(e->expire_wall_ms > s.expire_wall_ms);
    assert_memory_equal(e->prefix, sys, 8000);
    assert_int_equal(
        sc_prompt_cache_acquire(b, TEST_FLASH, sys, 8000, 0, name, sizeof name, &charge), SC_OK);
    assert_true(charge > 0.0); /* B's own extension */
    sc_prompt_cache_stats_t st;
    sc_prompt_cache_stats(b, &st);
    assert_int_equal(st.extends, 1);
    assert_int_equal(st.creates, 0);
    assert_true(fabs(st.storage_usd - charge) < 1e-15);
    sc_prompt_cache_stats(f.pc, &st);
    assert_int_equal(st.extends, 0);
    /* A takes B's extension: the same cache, its expiry raised, nothing adopted */
    assert_int_equal(sc_prompt_cache_adopt(f.pc, e), SC_OK);
    sc_prompt_cache_stats(f.pc, &st);
    assert_int_equal(st.adopted, 0);
    assert_int_equal(st.live, 1);
    /* past A's first TTL the cache still answers, through A */
    while (sc_now_ms() - created < TTL_S * 1000 + 200)
        test_sleep_ms(TEST_POLL_MS);
    assert_int_equal(
        sc_prompt_cache_acquire(f.pc, TEST_FLASH, sys, 8000, 0, name, sizeof name, NULL), SC_OK);
    sc_gemini_call_t *call = send_req(&f, TEST_FLASH, sys, "Extended elsewhere?", name);
    assert_int_equal(call->usage.cached_tokens, 2000);
    sc_gemini_call_free(call);
    sc_prompt_cache_on_share(b, NULL, NULL);
    sc_prompt_cache_free(b);
    shares_clear(&sh);
    free(sys);
    fx_stop(&f);
}

/* A listener that never answers: a manager's call to it waits for its timeout. */
static int stall_listen(char *url, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    snprintf(url, len, "http://127.0.0.1:%d", ntohs(a.sin_port));
    return fd;
}

/* A creation still scheduled is saved by an adopted record; one on the wire is left alone. The
 * manager's server accepts and never answers, so its thread holds the first POST meanwhile. */
static void test_adopt_pending(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, 0, 0, 0, 0);
    char url[TEST_URL_MAX];
    int fd = stall_listen(url, sizeof url);
    sc_prompt_cache_t *b = replica_new(&f, url, 0, 0, STALL_MS);
    fx_t fb = {.pc = b};
    char *p1 = prefix_make(8000, 22), *p2 = prefix_make(8000, 23);
    char name[SC_PROMPT_CACHE_NAME_MAX];
    assert_int_equal(sc_prompt_cache_acquire(b, TEST_FLASH, p1, 8000, 0, name, sizeof name, NULL),
                     SC_ERR_NOT_FOUND);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, TEST_WAIT_MS), 1);
    int conn = accept(fd, NULL, NULL); /* p1's POST is out: the thread is held in it */
    assert_true(conn >= 0);
    assert_int_equal(sc_prompt_cache_acquire(b, TEST_FLASH, p2, 8000, 0, name, sizeof name, NULL),
                     SC_ERR_NOT_FOUND);
    int64_t exp = sc_wall_ms() + 300 * 1000;
    sc_prompt_cache_share_t s1 = share_make(TEST_FLASH, p1, 8000, "cachedContents/late", exp);
    sc_prompt_cache_share_t s2 = share_make(TEST_FLASH, p2, 8000, "cachedContents/saved", exp);
    assert_int_equal(sc_prompt_cache_adopt(b, &s1), SC_ERR_INVALID); /* creating: left alone */
    assert_int_equal(sc_prompt_cache_adopt(b, &s2), SC_OK);
    assert_int_equal(sc_prompt_cache_acquire(b, TEST_FLASH, p2, 8000, 0, name, sizeof name, NULL),
                     SC_OK);
    assert_string_equal(name, "cachedContents/saved");
    sc_prompt_cache_stats_t st;
    sc_prompt_cache_stats(b, &st);
    assert_int_equal(st.adopted, 1);
    assert_int_equal(st.live, 1);
    assert_int_equal(st.pending, 1); /* p1 alone */
    close(conn);                     /* p1's POST fails; p2 is never posted */
    WAIT_STAT(&fb, create_failures, 1);
    sc_prompt_cache_stats(b, &st);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.live, 1);
    assert_int_equal(st.creates, 0);
    pfd.revents = 0;
    assert_int_equal(poll(&pfd, 1, 0), 0); /* no second connection came */
    sc_prompt_cache_free(b);               /* p2 adopted: left, no DELETE sent */
    assert_int_equal(poll(&pfd, 1, 0), 0);
    close(fd);
    free(p1);
    free(p2);
    fx_stop(&f);
}

static void test_opts_and_null(void **state)
{
    (void)state;
    sc_prompt_cache_free(NULL);
    sc_prompt_cache_stats_t st;
    sc_prompt_cache_stats(NULL, &st);
    assert_int_equal(st.creates, 0);
    sc_prompt_cache_opts_t o;
    sc_prompt_cache_opts_default(&o);
    sc_prompt_cache_t *pc = NULL;
    char err[256] = "";
    assert_int_equal(sc_prompt_cache_new(&o, &pc, err, sizeof err), SC_ERR_INVALID_ARG);
    o.base_url = "http://127.0.0.1:1";
    o.max_caches = SC_PROMPT_CACHE_MAX_CACHES_LIMIT + 1;
    assert_int_equal(sc_prompt_cache_new(&o, &pc, err, sizeof err), SC_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "max_caches"));
    /* a server that is not there: the create fails, the caller is never blocked */
    o.max_caches = 1;
    o.request_timeout_ms = 2000;
    assert_int_equal(sc_prompt_cache_new(&o, &pc, err, sizeof err), SC_OK);
    char *sys = prefix_make(8000, 9), *other = prefix_make(8000, 10);
    char name[SC_PROMPT_CACHE_NAME_MAX];
    assert_int_equal(sc_prompt_cache_acquire(pc, TEST_FLASH, sys, 8000, 0, name, sizeof name, NULL),
                     SC_ERR_NOT_FOUND);
    int64_t deadline = sc_now_ms() + TEST_WAIT_MS;
    for (;;) {
        sc_prompt_cache_stats(pc, &st);
        if (st.create_failures >= 1)
            break;
        if (sc_now_ms() > deadline)
            fail_msg("the create never failed");
        test_sleep_ms(TEST_POLL_MS);
    }
    /* failed: not retried at once; the table (1 entry) is taken over by another prefix */
    assert_int_equal(sc_prompt_cache_acquire(pc, TEST_FLASH, sys, 8000, 0, name, sizeof name, NULL),
                     SC_ERR_NOT_FOUND);
    sc_prompt_cache_stats(pc, &st);
    assert_int_equal(st.pending, 0);
    assert_int_equal(
        sc_prompt_cache_acquire(pc, TEST_FLASH, other, 8000, 0, name, sizeof name, NULL),
        SC_ERR_NOT_FOUND);
    sc_prompt_cache_free(pc);
    free(sys);
    free(other);
}

int main(void)
{
    if (!getenv("SCRIMP_LOG"))
        sc_log_set_level(SC_LOG_WARN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_then_use), cmocka_unit_test(test_below_minimum_and_too_small),
        cmocka_unit_test(test_ttl_extension),   cmocka_unit_test(test_idle_and_free_delete),
        cmocka_unit_test(test_forget),          cmocka_unit_test(test_acceptance_shared_prefix),
        cmocka_unit_test(test_opts_and_null),   cmocka_unit_test(test_share_and_adopt),
        cmocka_unit_test(test_adopt_refuses),   cmocka_unit_test(test_adopt_gone),
        cmocka_unit_test(test_share_gone),      cmocka_unit_test(test_leave_at_free),
        cmocka_unit_test(test_adopter_extends), cmocka_unit_test(test_adopt_pending),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
