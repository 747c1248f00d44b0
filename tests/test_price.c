/* test_price.c - cost arithmetic of gemini-api.md §1.3 against hand-computed figures. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "host/core/price.h"

static void assert_usd(double got, double want)
{
    if (fabs(got - want) > 1e-12)
        fail_msg("cost %.12f, expected %.12f", got, want);
}

static void test_flash(void **state)
{
    (void)state;
    sc_config_t *cfg;
    sc_price_t p;
    assert_int_equal(sc_config_new(&cfg), SC_OK);
    assert_int_equal(sc_price_lookup(cfg, "gemini-2.5-flash", &p), SC_OK);
    /* 1000 prompt (200 cached) + 100 output + 50 thinking:
     * 800 × 0.30 + 200 × 0.03 + 150 × 2.50 = 240 + 6 + 375 = 621 per 1M → 0.000621 */
    sc_usage_t u = {.prompt_tokens = 1000, .cached_tokens = 200, .output_tokens = 100,
                    .thought_tokens = 50};
    assert_usd(sc_price_cost(&p, &u, 0), 0.000621);
    /* batch halves input and output, not cached: 120 + 6 + 187.5 */
    assert_usd(sc_price_cost(&p, &u, 1), 0.0003135);
    sc_config_free(cfg);
}

static void test_pro_tiers(void **state)
{
    (void)state;
    sc_config_t *cfg;
    sc_price_t p;
    assert_int_equal(sc_config_new(&cfg), SC_OK);
    assert_int_equal(sc_price_lookup(cfg, "gemini-2.5-pro", &p), SC_OK);
    sc_usage_t small = {.prompt_tokens = 200000, .output_tokens = 1000};
    assert_usd(sc_price_cost(&p, &small, 0), (200000 * 1.25 + 1000 * 10.0) / 1e6);
    sc_usage_t big = {.prompt_tokens = 200001, .output_tokens = 1000};
    assert_usd(sc_price_cost(&p, &big, 0), (200001 * 2.50 + 1000 * 15.0) / 1e6);
    sc_config_free(cfg);
}

static void test_lookup(void **state)
{
    (void)state;
    sc_config_t *cfg;
    sc_price_t p;
    assert_int_equal(sc_config_new(&cfg), SC_OK);
    /* a versioned id falls back to its family; the longest prefix wins (flash-lite, not flash) */
    assert_int_equal(sc_price_lookup(cfg, "gemini-2.5-flash-lite-001", &p), SC_OK);
    assert_true(p.input == 0.10);
    assert_int_equal(sc_price_lookup(cfg, "gemini-2.5-flash-002", &p), SC_OK);
    assert_true(p.input == 0.30);
    assert_int_equal(sc_price_lookup(cfg, "gpt-4", &p), SC_ERR_NOT_FOUND);
    assert_int_equal(sc_price_lookup(cfg, "gemini-2.5-flashy", &p), SC_ERR_NOT_FOUND);
    sc_usage_t zero = {0};
    assert_usd(sc_price_cost(&p, &zero, 0), 0.0);
    sc_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flash),
        cmocka_unit_test(test_pro_tiers),
        cmocka_unit_test(test_lookup),
    };
    return cmocka_run_group_tests_name("price", tests, NULL, NULL);
}
