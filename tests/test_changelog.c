/* test_changelog.c - the cache changelog's records: an entry encodes and decodes to itself (with
 * and without its vector), the key follows the normalised text, and bad records are refused with
 * a reason; purge records. Base64 round trips. Batch records are acknowledged before
 * sc_changelog_batch_sync() says so, and not while the broker is down (the dev broker). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "host/core/config.h"
#include "host/core/message.h"
#include "host/core/util.h"
#include "host/kafka/dev_broker.h"
#include "pipelines/changelog.h"

#define DIM 384

static sc_cache_item_t entry(const float *vec, const char *text)
{
    sc_cache_item_t it = {.q = {.scope = 0x0123456789abcdefULL, .tenant = "acme", .text = text,
                                .len = strlen(text), .vec = vec},
                          .response = "the answer \"quoted\"\n", .model = "gemini-2.5-flash",
                          .usage = {12, 3, 45, 6}, .cost_usd = 0.00125,
                          .created_ms = 1764000000123LL};
    it.response_len = strlen(it.response);
    return it;
}

/* Each of the n values is refused with a reason, leaving nothing to clear. */
static void assert_refused(const char *const *bad, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sc_changelog_rec_t rec;
        char err[256] = "";
        assert_int_equal(sc_changelog_decode(bad[i], strlen(bad[i]), DIM, &rec, err, sizeof err),
                         SC_ERR_INVALID_ARG);
        assert_true(err[0] != '\0');
        assert_null(rec.json);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    float vec[DIM];
    for (int i = 0; i < DIM; i++)
        vec[i] = sinf((float)i) / 20.0f;
    for (int with_vec = 0; with_vec < 2; with_vec++) {
        sc_cache_item_t it = entry(with_vec ? vec : NULL, "How do I reset my password?");
        char key[SC_CHANGELOG_KEY_MAX], err[160];
        size_t len = 0;
        char *val = sc_changelog_encode(&it, "host-1-abc", DIM, key, &len);
        assert_non_null(val);
        assert_int_equal(strlen(key), 33);
        assert_memory_equal(key, "0123456789abcdef:", 17);
        sc_changelog_rec_t rec;
        assert_int_equal(sc_changelog_decode(val, len, DIM, &rec, err, sizeof err), SC_OK);
        assert_string_equal(rec.origin, "host-1-abc");
        assert_int_equal(rec.item.q.scope, it.q.scope);
        assert_string_equal(rec.item.q.tenant, "acme");
        assert_int_equal(rec.item.q.len, it.q.len);
        assert_memory_equal(rec.item.q.text, it.q.text, it.q.len);
        assert_int_equal(rec.item.response_len, it.response_len);
        assert_memory_equal(rec.item.response, it.response, it.response_len);
        assert_string_equal(rec.item.model, "gemini-2.5-flash");
        assert_int_equal(rec.item.usage.prompt_tokens, 12);
        assert_int_equal(rec.item.usage.thought_tokens, 6);
        assert_true(fabs(rec.item.cost_usd - 0.00125) < 1e-12);
        assert_int_equal(rec.item.created_ms, 1764000000123LL);
        if (with_vec) {
            assert_non_null(rec.item.q.vec);
            assert_memory_equal(rec.item.q.vec, vec, sizeof vec); /* bit for bit */
        } else {
            assert_null(rec.item.q.vec);
        }
        sc_changelog_rec_clear(&rec);
        free(val);
    }
}

/* The key is the scope and the normalised text: what the exact layer treats as one entry is one
 * key, so compaction keeps its latest answer. */
static void test_key_follows_normalised_text(void **state)
{
    (void)state;
    char k1[SC_CHANGELOG_KEY_MAX], k2[SC_CHANGELOG_KEY_MAX], k3[SC_CHANGELOG_KEY_MAX];
    size_t len;
    sc_cache_item_t a = entry(NULL, "Reset my  password"), b = entry(NULL, "reset my password"),
                    c = entry(NULL, "reset my passport");
    free(sc_changelog_encode(&a, "o", DIM, k1, &len));
    free(sc_changelog_encode(&b, "o", DIM, k2, &len));
    free(sc_changelog_encode(&c, "o", DIM, k3, &len));
    assert_string_equal(k1, k2);
    assert_string_not_equal(k1, k3);
    b.q.scope ^= 1; /* another scope (another tenant, say): another key */
    free(sc_changelog_encode(&b, "o", DIM, k2, &len));
    assert_string_not_equal(k1, k2);
}

static void test_bad_records(void **state)
{
    (void)state;
    static const char *bad[] = {
        "not json",
        "{\"v\":1}",
        "{\"v\":2,\"origin\":\"o\",\"tenant\":\"t\",\"scope\":\"0123456789abcdef\",\"text\":\"q\","
        "\"response\":\"r\",\"model\":\"m\",\"usage\":[1,2,3,4],\"cost_usd\":0,\"created_ms\":1}",
        "{\"v\":1,\"origin\":\"o\",\"tenant\":\"t\",\"scope\":\"12zz\",\"text\":\"q\","
        "\"response\":\"r\",\"model\":\"m\",\"usage\":[1,2,3,4],\"cost_usd\":0,\"created_ms\":1}",
        "{\"v\":1,\"origin\":\"o\",\"tenant\":\"t\",\"scope\":\"0123456789abcdef\",\"text\":\"q\","
        "\"response\":\"r\",\"model\":\"m\",\"usage\":[1,2,3,4],\"cost_usd\":0,\"created_ms\":1,"
        "\"vec\":\"AAAA\"}", /* 3 bytes, not 384 floats */
        "{\"v\":1,\"origin\":\"o\",\"tenant\":\"t\",\"scope\":\"0123456789abcdef\",\"text\":\"q\","
        "\"response\":\"r\",\"model\":\"m\",\"usage\":[1,2,3,4],\"cost_usd\":0,\"created_ms\":1,"
        "\"vec\":\"!!!!\"}",
    };
    assert_refused(bad, sizeof bad / sizeof bad[0]);
}

static void test_purge_record(void **state)
{
    (void)state;
    sc_changelog_rec_t rec;
    char err[160];
    const char *t = "{\"v\":1,\"origin\":\"h-1-purge\",\"purge\":\"globex\",\"before_ms\":1764000000000}";
    assert_int_equal(sc_changelog_decode(t, strlen(t), DIM, &rec, err, sizeof err), SC_OK);
    assert_int_equal(rec.purge, 1);
    assert_string_equal(rec.purge_tenant, "globex");
    assert_int_equal(rec.before_ms, 1764000000000LL);
    assert_string_equal(rec.origin, "h-1-purge");
    sc_changelog_rec_clear(&rec);
    const char *all = "{\"v\":1,\"origin\":\"o\",\"purge\":null,\"before_ms\":5}";
    assert_int_equal(sc_changelog_decode(all, strlen(all), DIM, &rec, err, sizeof err), SC_OK);
    assert_int_equal(rec.purge, 1);
    assert_null(rec.purge_tenant);
    sc_changelog_rec_clear(&rec);
    const char *bad[] = {"{\"v\":1,\"origin\":\"o\",\"purge\":7,\"before_ms\":5}",
                         "{\"v\":1,\"origin\":\"o\",\"purge\":\"t\"}",
                         "{\"v\":3,\"origin\":\"o\",\"purge\":\"t\",\"before_ms\":5}"};
    assert_refused(bad, sizeof bad / sizeof bad[0]);
}

/* A conversation summary: its key follows tenant and conversation (not the text), it decodes to
 * what was encoded, and malformed ones are refused with a reason. */
static void test_summary_record(void **state)
{
    (void)state;
    char key[SC_CHANGELOG_KEY_MAX], key2[SC_CHANGELOG_KEY_MAX], err[160];
    size_t len = 0, len2 = 0;
    const char *text = "The user set up billing alerts; ticket INC-4471 is open.";
    char *v = sc_changelog_encode_summary("acme", "conv-9", text, strlen(text), 42,
                                          0x0123456789abcdefULL, "h-1-x", key, &len);
    assert_non_null(v);
    assert_int_equal(strncmp(key, "sum:", 4), 0);
    assert_int_equal(strlen(key), 4 + 16);
    char *v2 = sc_changelog_encode_summary("acme", "conv-9", "other", 5, 50, 1, "h-2-y", key2,
                                           &len2);
    assert_string_equal(key, key2); /* the same conversation: compaction keeps the newest */
    free(v2);
    v2 = sc_changelog_encode_summary("acmeconv", "-9", text, strlen(text), 42, 1, "o", key2, &len2);
    assert_string_not_equal(key, key2); /* tenant and conversation do not run together */
    free(v2);
    v2 = sc_changelog_encode_summary("globex", "conv-9", text, strlen(text), 42, 1, "o", key2, &len2);
    assert_string_not_equal(key, key2);
    free(v2);
    sc_changelog_rec_t rec;
    assert_int_equal(sc_changelog_decode(v, len, DIM, &rec, err, sizeof err), SC_OK);
    assert_int_equal(rec.summary, 1);
    assert_int_equal(rec.purge, 0);
    assert_string_equal(rec.sum_tenant, "acme");
    assert_string_equal(rec.sum_conversation, "conv-9");
    assert_int_equal(rec.sum.text_len, strlen(text));
    assert_memory_equal(rec.sum.text, text, strlen(text));
    assert_int_equal(rec.sum.n_turns, 42);
    assert_true(rec.sum.hash == 0x0123456789abcdefULL);
    assert_string_equal(rec.origin, "h-1-x");
    sc_changelog_rec_clear(&rec);
    free(v);
    const char *bad[] = {
        "{\"v\":1,\"origin\":\"o\",\"summary\":{\"tenant\":\"t\",\"conversation\":\"c\","
        "\"text\":\"x\",\"n_turns\":0,\"hash\":\"0123456789abcdef\"}}",
        "{\"v\":1,\"origin\":\"o\",\"summary\":{\"tenant\":\"t\",\"conversation\":\"c\","
        "\"text\":\"x\",\"n_turns\":3,\"hash\":\"xyz\"}}",
        "{\"v\":1,\"origin\":\"o\",\"summary\":{\"tenant\":\"t\",\"text\":\"x\",\"n_turns\":3,"
        "\"hash\":\"0123456789abcdef\"}}",
        "{\"v\":2,\"origin\":\"o\",\"summary\":{\"tenant\":\"t\",\"conversation\":\"c\","
        "\"text\":\"x\",\"n_turns\":3,\"hash\":\"0123456789abcdef\"}}"};
    assert_refused(bad, sizeof bad / sizeof bad[0]);
}

static void test_prompt_cache_record(void **state)
{
    (void)state;
    char key[SC_CHANGELOG_KEY_MAX], key2[SC_CHANGELOG_KEY_MAX], err[256];
    size_t len = 0, len2 = 0;
    const char *prefix = "You are the catalog assistant of ACME. Answer from the catalog only.";
    sc_prompt_cache_share_t s = {.model = "gemini-2.5-flash", .fields = 0, .prefix = prefix,
                                 .prefix_len = strlen(prefix), .hash = 0xfedcba9876543210ULL,
                                 .name = "cachedContents/abc123", .tokens = 6001,
                                 .expire_wall_ms = 1790000000123LL};
    char *v = sc_changelog_encode_prompt_cache(&s, "h-1-x", key, &len);
    assert_non_null(v);
    assert_int_equal(strncmp(key, "pc:", 3), 0);
    assert_int_equal(strlen(key), 3 + 16 + 1 + 16);
    assert_string_equal(key + 20, "fedcba9876543210");
    /* another model, or the fields form, is another key; a gone record keeps the key */
    sc_prompt_cache_share_t o = s;
    o.model = "gemini-2.5-pro";
    free(sc_changelog_encode_prompt_cache(&o, "h", key2, &len2));
    assert_string_not_equal(key, key2);
    o = s;
    o.fields = 1;
    free(sc_changelog_encode_prompt_cache(&o, "h", key2, &len2));
    assert_string_not_equal(key, key2);
    o = s;
    o.gone = 1;
    o.prefix = NULL;
    char *g = sc_changelog_encode_prompt_cache(&o, "h-2-y", key2, &len2);
    assert_non_null(g);
    assert_string_equal(key, key2);

    sc_changelog_rec_t rec;
    assert_int_equal(sc_changelog_decode(v, len, DIM, &rec, err, sizeof err), SC_OK);
    assert_int_equal(rec.pcache, 1);
    assert_int_equal(rec.summary + rec.purge + rec.batch, 0);
    assert_string_equal(rec.pc.model, "gemini-2.5-flash");
    assert_int_equal(rec.pc.fields, 0);
    assert_int_equal(rec.pc.prefix_len, strlen(prefix));
    assert_memory_equal(rec.pc.prefix, prefix, strlen(prefix));
    assert_true(rec.pc.hash == 0xfedcba9876543210ULL);
    assert_string_equal(rec.pc.name, "cachedContents/abc123");
    assert_int_equal(rec.pc.tokens, 6001);
    assert_true(rec.pc.expire_wall_ms == 1790000000123LL);
    assert_int_equal(rec.pc.gone, 0);
    assert_string_equal(rec.origin, "h-1-x");
    sc_changelog_rec_clear(&rec);
    assert_int_equal(sc_changelog_decode(g, len2, DIM, &rec, err, sizeof err), SC_OK);
    assert_int_equal(rec.pcache, 1);
    assert_int_equal(rec.pc.gone, 1);
    assert_null(rec.pc.prefix);
    sc_changelog_rec_clear(&rec);
    free(v);
    free(g);
    const char *bad[] = {
        /* live without its prefix */
        "{\"v\":1,\"origin\":\"o\",\"pcache\":{\"model\":\"m\",\"fields\":0,"
        "\"hash\":\"0123456789abcdef\",\"name\":\"cachedContents/x\",\"gone\":0}}",
        "{\"v\":1,\"origin\":\"o\",\"pcache\":{\"model\":\"m\",\"fields\":0,"
        "\"hash\":\"0123\",\"name\":\"cachedContents/x\",\"gone\":1}}",
        "{\"v\":1,\"origin\":\"o\",\"pcache\":{\"fields\":0,"
        "\"hash\":\"0123456789abcdef\",\"name\":\"cachedContents/x\",\"gone\":1}}",
        "{\"v\":3,\"origin\":\"o\",\"pcache\":{\"model\":\"m\",\"fields\":0,"
        "\"hash\":\"0123456789abcdef\",\"name\":\"cachedContents/x\",\"gone\":1}}"};
    assert_refused(bad, sizeof bad / sizeof bad[0]);
}

static void test_batch_record(void **state)
{
    (void)state;
    char key[SC_CHANGELOG_KEY_MAX], err[256];
    size_t len = 0;
    char *v = sc_changelog_encode_batch("P3.1234", "scrimp-serve-7-1-2", "gemini-2.5-flash",
                                        "batches/xyz", "h-1-x", key, &len);
    assert_non_null(v);
    assert_string_equal(key, "bat:P3.1234");
    sc_changelog_rec_t rec;
    assert_int_equal(sc_changelog_decode(v, len, DIM, &rec, err, sizeof err), SC_OK);
    assert_int_equal(rec.batch, 1);
    assert_int_equal(rec.summary + rec.purge + rec.pcache, 0);
    assert_string_equal(rec.bat_key, "P3.1234");
    assert_string_equal(rec.bat_display, "scrimp-serve-7-1-2");
    assert_string_equal(rec.bat_model, "gemini-2.5-flash");
    assert_string_equal(rec.bat_name, "batches/xyz");
    sc_changelog_rec_clear(&rec);
    free(v);
    /* being created: no name yet */
    v = sc_changelog_encode_batch("P0.7", "d", "m", NULL, "o", key, &len);
    assert_non_null(v);
    assert_int_equal(sc_changelog_decode(v, len, DIM, &rec, err, sizeof err), SC_OK);
    assert_null(rec.bat_name);
    sc_changelog_rec_clear(&rec);
    free(v);
    /* a request key too long for a record key is refused at encoding */
    char long_key[SC_CHANGELOG_KEY_MAX + 8];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    assert_null(sc_changelog_encode_batch(long_key, "d", "m", NULL, "o", key, &len));
    const char *bad[] = {
        "{\"v\":1,\"origin\":\"o\",\"batch\":{\"key\":\"\",\"display\":\"d\",\"model\":\"m\"}}",
        "{\"v\":1,\"origin\":\"o\",\"batch\":{\"key\":\"P1.2\",\"model\":\"m\"}}",
        "{\"v\":1,\"origin\":\"o\",\"batch\":{\"key\":\"P1.2\",\"display\":\"d\",\"model\":\"m\","
        "\"name\":\"\"}}",
        "{\"v\":1,\"origin\":\"o\",\"batch\":{\"key\":\"P1.2\",\"display\":\"d\",\"model\":\"m\","
        "\"name\":7}}"};
    assert_refused(bad, sizeof bad / sizeof bad[0]);
}

/* What a second changelog (another replica) knows of req_key's batch within 10 s: its name, or
 * "" (being created), or NULL when it never learned of it. */
static const char *other_sees(sc_changelog_t *other, const char *req_key, char *name, size_t len)
{
    char display[96], model[64];
    for (int i = 0; i < 200; i++) {
        if (sc_changelog_batch_lookup(other, req_key, display, sizeof display, model,
                                      sizeof model, name, len))
            return name;
        usleep(50 * 1000);
    }
    return NULL;
}

static void test_batch_sync(void **state)
{
    (void)state;
    char err[512], name[64];
    const char *topics[] = {"scrimp.cache", NULL};
    sc_dev_broker_t *broker = NULL;
    assert_int_equal(sc_dev_broker_start(0, 2, topics, &broker, err, sizeof err), SC_OK);
    sc_config_t *cfg = NULL;
    assert_int_equal(sc_config_new(&cfg), SC_OK);
    char kv[128];
    snprintf(kv, sizeof kv, "kafka.bootstrap.servers=%s", sc_dev_broker_bootstrap(broker));
    assert_int_equal(sc_config_set(cfg, kv, err, sizeof err), SC_OK);
    assert_int_equal(sc_config_set(cfg, "pipeline.drain_timeout_ms=3000", err, sizeof err), SC_OK);
    sc_changelog_stores_t stores = {0};
    sc_changelog_t *a = NULL, *b = NULL;
    assert_int_equal(sc_changelog_open(cfg, &stores, NULL, NULL, &a, err, sizeof err), SC_OK);
    assert_int_equal(sc_changelog_open(cfg, &stores, NULL, NULL, &b, err, sizeof err), SC_OK);

    /* nothing published yet: nothing to wait for, and no producer to wait on */
    assert_int_equal(sc_changelog_batch_sync(a, 100), 0);
    sc_changelog_publish_batch(a, "P0.1", "disp-1", "gemini-2.5-flash", NULL);
    sc_changelog_publish_batch(a, "P1.2", "disp-1", "gemini-2.5-flash", NULL);
    assert_int_equal(sc_changelog_batch_sync(a, 5000), 1);
    assert_non_null(other_sees(b, "P0.1", name, sizeof name));
    assert_string_equal(name, "");
    sc_changelog_publish_batch(a, "P0.1", "disp-1", "gemini-2.5-flash", "batches/b1");
    assert_int_equal(sc_changelog_batch_sync(a, 5000), 1);

    /* the broker down: a record cannot be acknowledged, and the wait says so when time is up */
    assert_int_equal(sc_dev_broker_set_down(broker, true, err, sizeof err), SC_OK);
    sc_changelog_publish_batch(a, "P0.3", "disp-2", "gemini-2.5-flash", NULL);
    int64_t t0 = sc_now_ms();
    assert_int_equal(sc_changelog_batch_sync(a, 700), 0);
    assert_true(sc_now_ms() - t0 >= 600);
    /* back up: the record goes, and the wait for it succeeds */
    assert_int_equal(sc_dev_broker_set_down(broker, false, err, sizeof err), SC_OK);
    assert_int_equal(sc_changelog_batch_sync(a, 10000), 1);
    assert_non_null(other_sees(b, "P0.3", name, sizeof name));

    sc_changelog_close(a);
    sc_changelog_close(b);
    sc_config_free(cfg);
    sc_dev_broker_stop(broker);
}

static void test_base64(void **state)
{
    (void)state;
    unsigned char in[64] = {0}, out[64];
    for (size_t n = 0; n <= sizeof in; n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (unsigned char)(i * 37 + n);
        char *b = sc_base64_encode(in, n);
        assert_non_null(b);
        size_t got = 99;
        assert_int_equal(sc_base64_decode(b, strlen(b), out, sizeof out, &got), SC_OK);
        assert_int_equal(got, n);
        assert_memory_equal(out, in, n);
        if (n > 3) /* too small an output */
            assert_int_equal(sc_base64_decode(b, strlen(b), out, n - 1, &got), SC_ERR_TOO_LARGE);
        free(b);
    }
    size_t got;
    assert_int_equal(sc_base64_decode("abc", 3, out, sizeof out, &got), SC_ERR_INVALID_ARG);
    assert_int_equal(sc_base64_decode("a=bc", 4, out, sizeof out, &got), SC_ERR_INVALID_ARG);
    assert_int_equal(sc_base64_decode("ab=c", 4, out, sizeof out, &got), SC_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_key_follows_normalised_text),
        cmocka_unit_test(test_bad_records),
        cmocka_unit_test(test_purge_record),
        cmocka_unit_test(test_summary_record),
        cmocka_unit_test(test_prompt_cache_record),
        cmocka_unit_test(test_batch_record),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_batch_sync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
