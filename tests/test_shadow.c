/* test_shadow.c - the shadow evaluation (pipelines/stages/shadow.c) driven without a network: an
 * answered request is sampled, its shadow call's answer is compared deterministically or by the
 * judge, the scope's estimate moves (never on an unparseable verdict), and the route stage acts
 * on the estimate. The upstream's answers are written into the calls by the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "host/cache/agreement.h"
#include "host/core/config.h"
#include "pipelines/optimizer.h"
#include "pipelines/pipeline.h"
#include "pipelines/stages/stages.h"

#define PATHLEN 4096

static char tmpdir[PATHLEN];
static int serial; /* a fresh store per optimizer */

static void set(sc_config_t *cfg, const char *kv)
{
    char err[256];
    if (sc_config_set(cfg, kv, err, sizeof err) != SC_OK)
        fail_msg("%s: %s", kv, err);
}

/* No encoder, cache, router or pruning: routing is the strong default plus the scope's evidence.
 * Every answer is sampled (rate 1), a tier is earned at a lower bound of 0.6 (z 1.645: 5 of 5
 * agreeing give 0.649), and 5 comparisons are enough evidence to act on. */
static sc_optimizer_t *new_optimizer_router(sc_config_t **cfgp, const char *rate, int router)
{
    sc_config_t *cfg = NULL;
    char kv[PATHLEN + 64], err[512];
    assert_int_equal(sc_config_new(&cfg), SC_OK);
    set(cfg, "cache.enabled=false");
    if (router) {
        const char *src = getenv("SCRIMP_SOURCE_DIR");
        snprintf(kv, sizeof kv, "models.embedding=%s/models/all-MiniLM-L6-v2", src ? src : ".");
        set(cfg, kv);
        snprintf(kv, sizeof kv, "router.path=%s/models/router/router.json", src ? src : ".");
        set(cfg, kv);
        set(cfg, "backend=cpu");
    }
    set(cfg, router ? "router.enabled=true" : "router.enabled=false");
    set(cfg, "prune.enabled=false");
    set(cfg, "prompt_cache.enabled=false");
    set(cfg, "router.quality_target=0.6");
    set(cfg, "router.shadow_min_samples=5");
    set(cfg, "router.shadow_window=0");
    snprintf(kv, sizeof kv, "router.shadow_rate=%s", rate);
    set(cfg, kv);
    snprintf(kv, sizeof kv, "router.shadow_path=%s/shadow-%d", tmpdir, serial++);
    set(cfg, kv);
    sc_optimizer_t *o = NULL;
    if (sc_optimizer_new(cfg, NULL, 0, &o, err, sizeof err) != SC_OK)
        fail_msg("sc_optimizer_new: %s", err);
    *cfgp = cfg;
    return o;
}

static sc_optimizer_t *new_optimizer(sc_config_t **cfgp, const char *rate)
{
    return new_optimizer_router(cfgp, rate, 0);
}

static void done(sc_optimizer_t *o, sc_config_t *cfg)
{
    sc_optimizer_free(o);
    sc_config_free(cfg);
}

/* One request of agent, prepared (routed, its call built). */
static sc_item_t *prepared(sc_optimizer_t *o, const sc_config_t *cfg, const char *model,
                           const char *agent, const char *text)
{
    sc_batch_t b = {0};
    sc_item_t *it = sc_item_new();
    assert_non_null(it);
    char json[1024];
    int len = snprintf(json, sizeof json,
                       "{\"id\":\"r-%s\",\"tenant\":\"acme\",\"agent\":\"%s\",\"model\":\"%s\","
                       "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
                       agent, agent, model, text);
    assert_true(len > 0 && (size_t)len < sizeof json);
    it->raw = strdup(json);
    it->raw_len = (size_t)len;
    it->deadline_ms = INT64_MAX;
    b.items = &it;
    b.n = 1;
    sc_limits_t lim;
    sc_limits_from_config(cfg, &lim);
    sc_stage_parse(&b, &lim);
    assert_int_equal(it->state, SC_ITEM_FORWARD);
    sc_optimizer_prepare(o, &b);
    assert_int_equal(b.n, 1);
    assert_non_null(it->call);
    return it;
}

/* What the upstream would have said: an ok STOP answer with some usage. */
static void answer(sc_gemini_call_t *c, const char *text)
{
    c->status = SC_OK;
    free(c->text);
    c->text = strdup(text);
    free(c->finish_reason);
    c->finish_reason = strdup("STOP");
    c->usage.prompt_tokens = 40;
    c->usage.output_tokens = 200;
    c->usage.thought_tokens = strcmp(c->model, "gemini-2.5-pro") == 0 ? 1000 : 0;
    /* so the judge (pro, thinking) costs less than the strong answer it checks: rate 1 is p 1 */
}

/* The item answered with text, then its shadow started (NULL when not sampled). */
static sc_gemini_call_t *answered(sc_optimizer_t *o, sc_item_t *it, const char *text)
{
    answer(it->call, text);
    it->state = SC_ITEM_DONE;
    return sc_optimizer_shadow_start(o, it, 0);
}

static json_t *finish_shadow(sc_optimizer_t *o, sc_gemini_call_t *c, const char *text,
                             sc_gemini_call_t **judge)
{
    char *line = NULL;
    size_t len = 0;
    assert_non_null(c);
    answer(c, text);
    *judge = sc_optimizer_shadow_done(o, c, &line, &len);
    if (*judge) {
        assert_null(line);
        return NULL;
    }
    assert_non_null(line);
    json_t *doc = json_loads(line, 0, NULL);
    assert_non_null(doc);
    free(line);
    return doc;
}

static const char *str(json_t *doc, const char *key)
{
    return json_string_value(json_object_get(doc, key));
}

static int estimate(sc_optimizer_t *o, const char *agent, const char *tier, sc_agreement_est_t *e)
{
    return sc_agreement_get(o->agreement, "acme", agent, NULL, tier, e);
}

/* A strong answer is shadowed by the cheapest tier; the same final answer is an agreement, a
 * different one a disagreement, each counted in the scope (tenant × agent × stage) and tier. */
static void test_deterministic_compare(void **state)
{
    (void)state;
    sc_config_t *cfg;
    sc_optimizer_t *o = new_optimizer(&cfg, "1");
    sc_item_t *it = prepared(o, cfg, "auto", "easy", "What is 6 times 7?");
    assert_string_equal(it->route, "default");
    assert_string_equal(it->route_basis, "no-evidence");
    assert_string_equal(it->model, "gemini-2.5-pro");
    sc_gemini_call_t *c = answered(o, it, "Six sevens.\nFinal answer: 42");
    assert_non_null(c);
    assert_string_equal(c->model, "gemini-2.5-flash-lite");
    assert_true(sc_optimizer_is_shadow(o, c));
    assert_false(sc_optimizer_is_shadow(o, it->call));
    sc_item_free(it); /* the shadow owns copies of what it compares */
    sc_gemini_call_t *judge;
    json_t *line = finish_shadow(o, c, "It is **Final answer:** 42.", &judge);
    assert_null(judge);
    assert_string_equal(str(line, "kind"), "shadow");
    assert_string_equal(str(line, "tier"), "lite");
    assert_string_equal(str(line, "compare"), "final-answer");
    assert_string_equal(str(line, "outcome"), "agree");
    assert_string_equal(str(line, "answered_by"), "gemini-2.5-pro");
    double cost = json_number_value(json_object_get(line, "cost_usd"));
    assert_true(cost > 0);
    assert_true(json_number_value(json_object_get(json_object_get(line, "savings"), "shadow_usd")) ==
                -cost);
    json_decref(line);
    sc_agreement_est_t e;
    assert_int_equal(estimate(o, "easy", "lite", &e), 1);
    assert_true(e.n == 1.0 && e.k == 1.0);

    it = prepared(o, cfg, "auto", "easy", "What is 6 times 8?");
    c = answered(o, it, "Final answer: 48");
    sc_item_free(it);
    line = finish_shadow(o, c, "Final answer: 47", &judge);
    assert_string_equal(str(line, "outcome"), "disagree");
    json_decref(line);
    assert_int_equal(estimate(o, "easy", "lite", &e), 1);
    assert_true(e.n == 2.0 && e.k == 1.0);
    assert_int_equal(estimate(o, "other", "lite", &e), 0);
    done(o, cfg);
}

/* Answers without a checkable form go to the strong model's judge; a verdict that cannot be
 * parsed is no evidence: it never moves an estimate, however many there are. */
static void test_unparseable_verdict_never_raises(void **state)
{
    (void)state;
    sc_config_t *cfg;
    sc_optimizer_t *o = new_optimizer(&cfg, "1");
    sc_gemini_call_t *judge;
    sc_agreement_est_t e;
    /* first one real disagreement, by a valid verdict */
    sc_item_t *it = prepared(o, cfg, "auto", "chat", "Tell me about harbours.");
    sc_gemini_call_t *c = answered(o, it, "Harbours shelter ships from the open sea.");
    sc_item_free(it);
    assert_null(finish_shadow(o, c, "Harbours are where trains stop.", &judge));
    assert_non_null(judge);
    assert_string_equal(judge->model, "gemini-2.5-pro");
    assert_non_null(strstr(judge->body, "scrimp-judge"));
    assert_non_null(strstr(judge->body, "responseSchema"));
    json_t *line = finish_shadow(o, judge, "{\"a_correct\": true, \"b_correct\": false, "
                                           "\"agree\": false}", &judge);
    assert_null(judge);
    assert_string_equal(str(line, "compare"), "judge");
    assert_string_equal(str(line, "outcome"), "disagree");
    assert_string_equal(str(line, "judge_model"), "gemini-2.5-pro");
    json_decref(line);
    assert_int_equal(estimate(o, "chat", "lite", &e), 1);
    assert_true(e.n == 1.0 && e.k == 0.0);
    double lower = sc_wilson_lower(e.k, e.n, 1.645);
    /* then many unparseable verdicts: the estimate stays where it was */
    static const char *const bad[] = {"Verdict unavailable: malformed judge request (x).",
                                      "{\"a_correct\": true, \"b_correct\": \"yes\", \"agree\": true}",
                                      "{\"agree\": true}", "", "yes, they agree"};
    for (int k = 0; k < 20; k++) {
        it = prepared(o, cfg, "auto", "chat", "Tell me about harbours.");
        c = answered(o, it, "Harbours shelter ships from the open sea.");
        sc_item_free(it);
        assert_non_null(c);
        assert_null(finish_shadow(o, c, "A harbour is a sheltered body of water.", &judge));
        assert_non_null(judge);
        line = finish_shadow(o, judge, bad[k % 5], &judge);
        assert_string_equal(str(line, "outcome"), "no_evidence");
        assert_true(json_number_value(json_object_get(line, "cost_usd")) > 0);
        json_decref(line);
    }
    assert_int_equal(estimate(o, "chat", "lite", &e), 1);
    assert_true(e.n == 1.0 && e.k == 0.0);
    assert_true(sc_wilson_lower(e.k, e.n, 1.645) == lower);
    /* a valid agreeing verdict does count */
    it = prepared(o, cfg, "auto", "chat", "Tell me about harbours.");
    c = answered(o, it, "Harbours shelter ships from the open sea.");
    sc_item_free(it);
    assert_null(finish_shadow(o, c, "A harbour is a sheltered body of water.", &judge));
    line = finish_shadow(o, judge, "```json\n{\"a_correct\":true,\"b_correct\":true,"
                                   "\"agree\":true}\n```", &judge);
    assert_string_equal(str(line, "outcome"), "agree");
    json_decref(line);
    assert_int_equal(estimate(o, "chat", "lite", &e), 1);
    assert_true(e.n == 2.0 && e.k == 1.0);
    done(o, cfg);
}

/* A scope whose cheapest tier agrees often enough earns it: its requests go there (route basis
 * "shadow"), and are then shadowed by the strong tier; a scope that disagrees stays on strong and
 * its next shadows try the next tier. A pinned request is never routed nor shadowed. */
static void test_route_follows_evidence(void **state)
{
    (void)state;
    sc_config_t *cfg;
    sc_optimizer_t *o = new_optimizer(&cfg, "1");
    sc_gemini_call_t *judge;
    char q[64];
    for (int k = 0; k < 5; k++) {
        snprintf(q, sizeof q, "What is %d plus %d?", k, k);
        sc_item_t *it = prepared(o, cfg, "auto", "easy", q);
        assert_string_equal(it->model, "gemini-2.5-pro");
        sc_gemini_call_t *c = answered(o, it, "Final answer: 8");
        sc_item_free(it);
        json_decref(finish_shadow(o, c, "Final answer: 8", &judge));
        it = prepared(o, cfg, "auto", "hard", q);
        c = answered(o, it, "Final answer: 9");
        sc_item_free(it);
        json_decref(finish_shadow(o, c, "Final answer: 3", &judge));
    }
    sc_agreement_est_t e;
    assert_int_equal(estimate(o, "easy", "lite", &e), 1);
    assert_true(sc_wilson_lower(e.k, e.n, 1.645) >= 0.6);
    sc_item_t *it = prepared(o, cfg, "auto", "easy", "What is 9 plus 9?");
    assert_string_equal(it->model, "gemini-2.5-flash-lite");
    assert_string_equal(it->route, "lite");
    assert_string_equal(it->route_basis, "shadow");
    sc_gemini_call_t *c = answered(o, it, "Final answer: 18");
    assert_non_null(c);
    assert_string_equal(c->model, "gemini-2.5-pro"); /* the strong tier shadows a cheap answer */
    sc_item_free(it);
    json_t *line = finish_shadow(o, c, "Final answer: 18", &judge);
    assert_string_equal(str(line, "tier"), "lite");
    assert_string_equal(str(line, "model"), "gemini-2.5-pro");
    json_decref(line);

    it = prepared(o, cfg, "auto", "hard", "What is 9 plus 9?");
    assert_string_equal(it->model, "gemini-2.5-pro");
    c = answered(o, it, "Final answer: 18");
    assert_non_null(c); /* lite measured below the target: the next tier is tried */
    assert_string_equal(c->model, "gemini-2.5-flash");
    sc_item_free(it);
    json_decref(finish_shadow(o, c, "Final answer: 18", &judge));

    it = prepared(o, cfg, "gemini-2.5-flash", "easy", "What is 9 plus 9?");
    assert_string_equal(it->route, "pinned");
    assert_null(answered(o, it, "Final answer: 18"));
    sc_item_free(it);
    done(o, cfg);
}

/* Under a backlog nothing is shadowed; a rate of 0 shadows nothing; a failed answer is not
 * shadowed. */
static void test_not_sampled(void **state)
{
    (void)state;
    sc_config_t *cfg;
    sc_optimizer_t *o = new_optimizer(&cfg, "1");
    sc_item_t *it = prepared(o, cfg, "auto", "easy", "What is 1 plus 1?");
    answer(it->call, "Final answer: 2");
    assert_null(sc_optimizer_shadow_start(o, it, 1)); /* busy */
    free(it->call->finish_reason);
    it->call->finish_reason = strdup("MAX_TOKENS");
    assert_null(sc_optimizer_shadow_start(o, it, 0));
    sc_item_free(it);
    done(o, cfg);

    o = new_optimizer(&cfg, "0");
    for (int k = 0; k < 50; k++) {
        it = prepared(o, cfg, "auto", "easy", "What is 1 plus 1?");
        assert_null(answered(o, it, "Final answer: 2"));
        sc_item_free(it);
    }
    done(o, cfg);
}

/* The router's own cheaper picks are judged on their own evidence ("<tier>@router"), apart from
 * the scope's whole traffic: disagreements there route the router's picks up to strong
 * ("below-target"), and those strong answers are still shadowed by the router's pick, so the
 * evidence can recover. */
static void test_router_picks_have_their_own_evidence(void **state)
{
    (void)state;
    sc_config_t *cfg;
    sc_optimizer_t *o = new_optimizer_router(&cfg, "1", 1);
    static const char *const q =
        "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q."
        "\\nA. 0\\nB. 4\\nC. 2\\nD. 6\\nAnswer:"; /* an MMLU prompt the router sends to lite */
    sc_item_t *it = prepared(o, cfg, "auto", "quiz", q);
    if (!it->route_basis || strcmp(it->route_basis, "router") != 0)
        fail_msg("the router did not pick a cheaper tier for the test prompt (route %s, basis %s)",
                 it->route, it->route_basis ? it->route_basis : "-");
    int pick = it->tier;
    char key[32];
    snprintf(key, sizeof key, "%s@router", sc_opt_tier_names[pick]);
    sc_gemini_call_t *judge;
    for (int k = 0; k < 5; k++) {
        if (k > 0)
            it = prepared(o, cfg, "auto", "quiz", q);
        assert_string_equal(it->route_basis, "router");
        sc_gemini_call_t *c = answered(o, it, "Final answer: B");
        assert_non_null(c);
        assert_string_equal(c->model, "gemini-2.5-pro");
        sc_item_free(it);
        json_t *line = finish_shadow(o, c, "Final answer: A", &judge);
        assert_string_equal(str(line, "tier"), key);
        json_decref(line);
    }
    sc_agreement_est_t e;
    assert_int_equal(estimate(o, "quiz", key, &e), 1);
    assert_true(e.n == 5.0 && e.k == 0.0);
    assert_int_equal(estimate(o, "quiz", sc_opt_tier_names[pick], &e), 0); /* not the scope's */
    it = prepared(o, cfg, "auto", "quiz", q);
    assert_string_equal(it->route_basis, "below-target");
    assert_string_equal(it->model, "gemini-2.5-pro");
    sc_gemini_call_t *c = answered(o, it, "Final answer: A");
    assert_non_null(c);
    assert_string_equal(c->model, o->tiers[pick]); /* the router's pick shadows it */
    sc_item_free(it);
    json_t *line = finish_shadow(o, c, "Final answer: A", &judge);
    assert_string_equal(str(line, "tier"), key);
    assert_string_equal(str(line, "outcome"), "agree");
    json_decref(line);
    done(o, cfg);
}

/* The estimates survive a restart (LMDB under router.shadow_path). */
static void test_estimates_persist(void **state)
{
    (void)state;
    sc_config_t *cfg;
    sc_optimizer_t *o = new_optimizer(&cfg, "1");
    sc_gemini_call_t *judge;
    sc_item_t *it = prepared(o, cfg, "auto", "easy", "What is 2 plus 2?");
    sc_gemini_call_t *c = answered(o, it, "Final answer: 4");
    sc_item_free(it);
    json_decref(finish_shadow(o, c, "Final answer: 4", &judge));
    sc_optimizer_free(o);
    char err[256];
    o = NULL;
    assert_int_equal(sc_optimizer_new(cfg, NULL, 0, &o, err, sizeof err), SC_OK);
    sc_agreement_est_t e;
    assert_int_equal(estimate(o, "easy", "lite", &e), 1);
    assert_true(e.n == 1.0 && e.k == 1.0);
    done(o, cfg);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/scrimp-test-shadow-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[PATHLEN + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic_compare),
        cmocka_unit_test(test_unparseable_verdict_never_raises),
        cmocka_unit_test(test_route_follows_evidence),
        cmocka_unit_test(test_not_sampled),
        cmocka_unit_test(test_router_picks_have_their_own_evidence),
        cmocka_unit_test(test_estimates_persist),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
