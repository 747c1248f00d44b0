/* test_config.c - defaults, file merge, -X overrides, validation messages, masking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "host/core/config.h"

static char err[512];

static sc_config_t *fresh(void)
{
    sc_config_t *cfg = NULL;
    assert_int_equal(sc_config_new(&cfg), SC_OK);
    return cfg;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_defaults(void **state)
{
    (void)state;
    sc_config_t *cfg = fresh();
    assert_string_equal(sc_config_str(cfg, "kafka.bootstrap.servers"), "127.0.0.1:9092");
    assert_string_equal(sc_config_str(cfg, "kafka.group.id"), "scrimp");
    assert_string_equal(sc_config_str(cfg, "topics.requests"), "scrimp.requests");
    assert_int_equal(sc_config_int(cfg, "batch.max_messages"), 256);
    assert_int_equal(sc_config_int(cfg, "batch.max_wait_ms"), 10);
    assert_string_equal(sc_config_str(cfg, "models.cheap"), "gemini-2.5-flash");
    assert_string_equal(sc_config_str(cfg, "models.strong"), "gemini-2.5-pro");
    assert_string_equal(sc_config_str(cfg, "models.default"), "auto");
    assert_true(sc_config_bool(cfg, "cache.enabled"));
    assert_int_equal(sc_config_int(cfg, "prune.max_tokens"), 4000);
    assert_int_equal(sc_config_int(cfg, "prune.keep_last"), 3);
    assert_string_equal(sc_config_str(cfg, "metrics.listen"), "127.0.0.1:9464");
    assert_string_equal(sc_config_str(cfg, "backend"), "auto");
    assert_string_equal(sc_config_str(cfg, "encoder.precision"), "auto");
    /* keys with dots inside a name: a model id */
    assert_true(sc_config_num(cfg, "prices.gemini-2.5-flash.input") > 0.29);
    assert_null(sc_config_node(cfg, "no.such.key"));
    assert_int_equal(sc_config_validate(cfg, err, sizeof err), SC_OK);
    sc_config_free(cfg);
}

static void test_overrides(void **state)
{
    (void)state;
    sc_config_t *cfg = fresh();
    assert_int_equal(sc_config_set(cfg, "batch.max_messages=17", err, sizeof err), SC_OK);
    assert_int_equal(sc_config_int(cfg, "batch.max_messages"), 17);
    assert_int_equal(sc_config_set(cfg, "cache.enabled=false", err, sizeof err), SC_OK);
    assert_false(sc_config_bool(cfg, "cache.enabled"));
    assert_int_equal(sc_config_set(cfg, "cache.threshold=0.9", err, sizeof err), SC_OK);
    assert_true(sc_config_num(cfg, "cache.threshold") == 0.9);
    assert_int_equal(sc_config_set(cfg, "prices.gemini-2.5-pro.input=2", err, sizeof err), SC_OK);
    assert_true(sc_config_num(cfg, "prices.gemini-2.5-pro.input") == 2.0);
    /* kafka.* goes through unchanged, any key */
    assert_int_equal(sc_config_set(cfg, "kafka.socket.timeout.ms=1234", err, sizeof err), SC_OK);
    assert_string_equal(sc_config_str(cfg, "kafka.socket.timeout.ms"), "1234");
    /* value with '=' inside */
    assert_int_equal(sc_config_set(cfg, "kafka.sasl.jaas=a=b", err, sizeof err), SC_OK);
    assert_string_equal(sc_config_str(cfg, "kafka.sasl.jaas"), "a=b");
    sc_config_free(cfg);
}

static void test_override_errors(void **state)
{
    (void)state;
    sc_config_t *cfg = fresh();
    assert_int_equal(sc_config_set(cfg, "batch.max_mesages=5", err, sizeof err), SC_ERR_CONFIG);
    assert_non_null(strstr(err, "batch.max_mesages"));
    assert_int_equal(sc_config_set(cfg, "batch.max_messages=x", err, sizeof err), SC_ERR_CONFIG);
    assert_non_null(strstr(err, "batch.max_messages"));
    assert_int_equal(sc_config_set(cfg, "cache.enabled=maybe", err, sizeof err), SC_ERR_CONFIG);
    assert_int_equal(sc_config_set(cfg, "batch=3", err, sizeof err), SC_ERR_CONFIG);
    assert_non_null(strstr(err, "section"));
    assert_int_equal(sc_config_set(cfg, "noequals", err, sizeof err), SC_ERR_CONFIG);
    assert_int_equal(sc_config_set(cfg, "gemini.api_key=k", err, sizeof err), SC_ERR_CONFIG);
    assert_non_null(strstr(err, "environment"));
    sc_config_free(cfg);
}

static void test_file(void **state)
{
    (void)state;
    char path[] = "/tmp/scrimp-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    sc_config_t *cfg = fresh();
    write_file(path, "{\"batch\": {\"max_wait_ms\": 25}, \"kafka\": {\"client.id\": \"x\"},"
                     " \"prices\": {\"my-model\": {\"input\": 1, \"output\": 2, \"cached_input\": 0,"
                     " \"input_long\": 1, \"output_long\": 2, \"cached_input_long\": 0,"
                     " \"batch_factor\": 0.5}}}");
    assert_int_equal(sc_config_load_file(cfg, path, err, sizeof err), SC_OK);
    assert_int_equal(sc_config_int(cfg, "batch.max_wait_ms"), 25);
    assert_int_equal(sc_config_int(cfg, "batch.max_messages"), 256); /* untouched */
    assert_string_equal(sc_config_str(cfg, "kafka.client.id"), "x");
    assert_true(sc_config_num(cfg, "prices.my-model.output") == 2.0);
    assert_int_equal(sc_config_validate(cfg, err, sizeof err), SC_OK);

    write_file(path, "{\"topics\": {\"requests\": 5}}");
    assert_int_equal(sc_config_load_file(cfg, path, err, sizeof err), SC_ERR_CONFIG);
    assert_non_null(strstr(err, "topics.requests"));
    write_file(path, "{\"gemini\": {\"api_key\": \"k\"}}");
    assert_int_equal(sc_config_load_file(cfg, path, err, sizeof err), SC_ERR_CONFIG);
    assert_non_null(strstr(err, "gemini.api_key"));
    write_file(path, "{\"batch\": [1]}");
    assert_int_equal(sc_config_load_file(cfg, path, err, sizeof err), SC_ERR_CONFIG);
    assert_non_null(strstr(err, "batch"));
    write_file(path, "{\"batch\": {\"max_messages\": 1,\n\"max_messages\": 2}}");
    assert_int_equal(sc_config_load_file(cfg, path, err, sizeof err), SC_ERR_CONFIG);
    assert_non_null(strstr(err, path)); /* names the file and the line */
    write_file(path, "[]");
    assert_int_equal(sc_config_load_file(cfg, path, err, sizeof err), SC_ERR_CONFIG);
    unlink(path);
    assert_int_equal(sc_config_load_file(cfg, path, err, sizeof err), SC_ERR_CONFIG);
    sc_config_free(cfg);
}

static void test_validate(void **state)
{
    (void)state;
    static const struct {
        const char *kv, *key;
    } bad[] = {
        {"batch.max_messages=0", "batch.max_messages"},
        {"batch.max_wait_ms=-1", "batch.max_wait_ms"},
        {"gemini.base_url=ftp://x", "gemini.base_url"},
        {"gemini.max_attempts=0", "gemini.max_attempts"},
        {"cache.threshold=1.5", "cache.threshold"},
        {"backend=tpu", "backend"},
        {"encoder.precision=int4", "encoder.precision"},
        {"topics.results=", "topics.results"},
        {"prices.gemini-2.5-pro.output=-1", "prices.gemini-2.5-pro.output"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sc_config_t *cfg = fresh();
        assert_int_equal(sc_config_set(cfg, bad[i].kv, err, sizeof err), SC_OK);
        assert_int_equal(sc_config_validate(cfg, err, sizeof err), SC_ERR_CONFIG);
        if (!strstr(err, bad[i].key))
            fail_msg("%s: message \"%s\" does not name %s", bad[i].kv, err, bad[i].key);
        sc_config_free(cfg);
    }
}

static void test_env_and_dump(void **state)
{
    (void)state;
    sc_config_t *cfg = fresh();
    setenv("GEMINI_API_KEY", "sk-test-secret", 1);
    sc_config_load_env(cfg);
    unsetenv("GEMINI_API_KEY");
    assert_string_equal(sc_config_str(cfg, "gemini.api_key"), "sk-test-secret");
    assert_int_equal(sc_config_set(cfg, "kafka.sasl.password=hunter2", err, sizeof err), SC_OK);
    char *dump = sc_config_dump(cfg);
    assert_non_null(dump);
    assert_null(strstr(dump, "sk-test-secret"));
    assert_null(strstr(dump, "hunter2"));
    assert_non_null(strstr(dump, "********"));
    assert_non_null(strstr(dump, "\"bootstrap.servers\""));
    free(dump);
    /* the dump did not change the configuration itself */
    assert_string_equal(sc_config_str(cfg, "gemini.api_key"), "sk-test-secret");
    sc_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_override_errors), cmocka_unit_test(test_file),
        cmocka_unit_test(test_validate),        cmocka_unit_test(test_env_and_dump),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
