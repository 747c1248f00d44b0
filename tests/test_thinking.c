/* test_thinking.c - the per-scope thinking estimate and the ledger baseline that uses it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "host/core/config.h"
#include "host/core/thinking.h"
#include "pipelines/pipeline.h"

#define PRO  "gemini-2.5-pro"
#define LITE "gemini-2.5-flash-lite"

static void test_default_then_model_then_scope(void **state)
{
    (void)state;
    sc_thinking_t *t = sc_thinking_new(PRO, 1000);
    assert_non_null(t);
    sc_thinking_basis_t why;
    /* nothing seen: the documented default for the strong model, 0 for any other */
    assert_true(fabs(sc_thinking_estimate(t, PRO, "acme", "bot", "triage", &why) - 1000) < 1e-9);
    assert_int_equal(why, SC_THINKING_DEFAULT);
    assert_true(sc_thinking_estimate(t, LITE, "acme", "bot", "triage", &why) == 0);
    assert_int_equal(why, SC_THINKING_DEFAULT);

    /* one call in another scope: the model's mean answers everywhere */
    sc_thinking_observe(t, PRO, "globex", "bot", "triage", 200);
    assert_true(fabs(sc_thinking_estimate(t, PRO, "acme", "bot", "triage", &why) - 200) < 1e-9);
    assert_int_equal(why, SC_THINKING_MODEL);

    /* a scope's own mean once it has enough calls; other scopes keep the model's */
    for (int i = 0; i < SC_THINKING_MIN_SCOPE; i++)
        sc_thinking_observe(t, PRO, "acme", "bot", "triage", 800);
    assert_true(fabs(sc_thinking_estimate(t, PRO, "acme", "bot", "triage", &why) - 800) < 1e-9);
    assert_int_equal(why, SC_THINKING_SCOPE);
    double model_mean = (200.0 + 800.0 * SC_THINKING_MIN_SCOPE) / (1 + SC_THINKING_MIN_SCOPE);
    assert_true(fabs(sc_thinking_estimate(t, PRO, "acme", "bot", "answer", &why) - model_mean) <
                1e-9);
    assert_int_equal(why, SC_THINKING_MODEL);
    /* the fields are kept apart: ("acme", "bot") is not ("acm", "ebot") */
    sc_thinking_estimate(t, PRO, "acm", "ebot", "triage", &why);
    assert_int_equal(why, SC_THINKING_MODEL);
    /* calls that did not think count as 0 */
    sc_thinking_t *u = sc_thinking_new(PRO, 1000);
    sc_thinking_observe(u, PRO, NULL, NULL, NULL, 0);
    assert_true(sc_thinking_estimate(u, PRO, NULL, NULL, NULL, &why) == 0);
    assert_int_equal(why, SC_THINKING_MODEL);
    sc_thinking_free(u);
    sc_thinking_free(t);
    sc_thinking_free(NULL);
    assert_true(sc_thinking_estimate(NULL, PRO, NULL, NULL, NULL, NULL) == 0);
}

static void test_scope_table_is_bounded(void **state)
{
    (void)state;
    sc_thinking_t *t = sc_thinking_new(PRO, 0);
    char tenant[32];
    for (int i = 0; i < SC_THINKING_MAX_SCOPES + 100; i++) {
        snprintf(tenant, sizeof tenant, "t%d", i);
        for (int k = 0; k < SC_THINKING_MIN_SCOPE; k++)
            sc_thinking_observe(t, PRO, tenant, NULL, NULL, i < SC_THINKING_MAX_SCOPES ? 10 : 90);
    }
    sc_thinking_basis_t why;
    assert_true(fabs(sc_thinking_estimate(t, PRO, "t0", NULL, NULL, &why) - 10) < 1e-9);
    assert_int_equal(why, SC_THINKING_SCOPE);
    /* a scope past the bound is estimated from the model's mean, which still counts its calls */
    sc_thinking_estimate(t, PRO, "t4100", NULL, NULL, &why);
    assert_int_equal(why, SC_THINKING_MODEL);
    sc_thinking_free(t);
}

/* An item answered by model with usage u, for the ledger. */
static sc_item_t *answered(const char *model, sc_usage_t u, double base_thoughts)
{
    static const char req[] =
        "{\"id\":\"r1\",\"tenant\":\"acme\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    sc_limits_t lim = {.max_message_bytes = 4096, .max_messages = 10, .max_id_bytes = 64};
    char id[64], err[256];
    sc_item_t *it = sc_item_new();
    assert_non_null(it);
    assert_int_equal(sc_request_parse(req, strlen(req), &lim, &it->req, id, sizeof id, err,
                                      sizeof err),
                     SC_OK);
    snprintf(it->id, sizeof it->id, "r1");
    snprintf(it->model, sizeof it->model, "%s", model);
    it->state = SC_ITEM_DONE;
    it->call = sc_gemini_call_new(model, NULL, 0);
    it->call->status = SC_OK;
    it->call->text = strdup("hello");
    it->call->usage = u;
    it->base_thoughts = base_thoughts;
    return it;
}

static double field(const char *json, const char *key)
{
    json_t *r = json_loads(json, 0, NULL);
    assert_non_null(r);
    double v = json_number_value(json_object_get(r, key));
    json_decref(r);
    return v;
}

static void test_ledger_prices_the_baseline_thinking(void **state)
{
    (void)state;
    sc_config_t *cfg = NULL;
    assert_int_equal(sc_config_new(&cfg), SC_OK);
    sc_usage_t u = {.prompt_tokens = 1000, .output_tokens = 100, .thought_tokens = 0};
    /* pro in: 1.25 / 1M, out (thinking included): 10 / 1M */
    double no_think = (1000 * 1.25 + 100 * 10.0) / 1e6;
    size_t len;
    sc_item_t *lite = answered(LITE, u, 500); /* a cheap answer; pro would have thought 500 */
    char *j = sc_stage_ledger(lite, cfg, NULL, &len);
    assert_true(fabs(field(j, "baseline_cost_usd") - (no_think + 500 * 10.0 / 1e6)) < 1e-12);
    free(j);
    sc_item_free(lite);
    /* -1: the answer's own thinking (here the strong model answered and did not think) */
    sc_item_t *pro = answered(PRO, u, -1);
    j = sc_stage_ledger(pro, cfg, NULL, &len);
    assert_true(fabs(field(j, "baseline_cost_usd") - no_think) < 1e-12);
    assert_true(fabs(field(j, "cost_usd") - no_think) < 1e-12);
    free(j);
    sc_item_free(pro);
    sc_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_then_model_then_scope),
        cmocka_unit_test(test_scope_table_is_bounded),
        cmocka_unit_test(test_ledger_prices_the_baseline_thinking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
