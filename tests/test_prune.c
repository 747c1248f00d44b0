/* test_prune.c - context pruning: the plan's rules, the pruned and summary bodies, and the LMDB
 * summary store. */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "host/gemini/gemini.h"
#include "host/cache/summary_store.h"
#include "pipelines/stages/prune.h"

#define ERRLEN 512
#define MAXT   64

/* ---- helpers ---- */

/* A request of n alternating turns (user first) with texts[i], or "turn <i> ..." when NULL. */
static sc_request_t *make_req(size_t n, const char *const *texts, const char *system)
{
    json_t *root = json_object();
    json_t *msgs = json_array();
    char buf[128];
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "turn %zu says something about topic %zu", i, i * 7 + 3);
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", i % 2 ? "model" : "user",
                                              "content", texts && texts[i] ? texts[i] : buf));
    }
    json_object_set_new(root, "id", json_string("r-1"));
    json_object_set_new(root, "tenant", json_string("acme"));
    json_object_set_new(root, "conversation_id", json_string("c-9"));
    json_object_set_new(root, "messages", msgs);
    json_object_set_new(root, "generation",
                        json_pack("{s:f, s:i}", "temperature", 0.3, "max_output_tokens", 256));
    if (system)
        json_object_set_new(root, "system", json_string(system));
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    sc_limits_t lim;
    sc_limits_default(&lim);
    sc_request_t *req = NULL;
    char id[64], err[ERRLEN];
    sc_status_t st = sc_request_parse(s, strlen(s), &lim, &req, id, sizeof id, err, sizeof err);
    free(s);
    if (st != SC_OK)
        fail_msg("parse: %s", err);
    return req;
}

static void fill(long *tok, size_t n, long v)
{
    for (size_t i = 0; i < n; i++)
        tok[i] = v;
}

/* Unit vector along axis a (mixed with axis b by weight w, renormalised). */
static void unit(float *v, int a, int b, float w)
{
    memset(v, 0, SC_PRUNE_DIM * sizeof(float));
    v[a] = 1.0f;
    if (b >= 0)
        v[b] += w;
    float nrm = sqrtf(1.0f + (b >= 0 ? w * w : 0.0f));
    v[a] /= nrm;
    if (b >= 0)
        v[b] /= nrm;
}

/* Contents of a body (parsed; new reference) and checks on its roles. */
static json_t *check_roles(const char *body)
{
    json_error_t jerr;
    json_t *root = json_loads(body, 0, &jerr);
    assert_non_null(root);
    json_t *contents = json_object_get(root, "contents");
    assert_true(json_is_array(contents));
    assert_true(json_array_size(contents) >= 1);
    const char *prev = NULL;
    for (size_t i = 0; i < json_array_size(contents); i++) {
        const char *role = json_string_value(json_object_get(json_array_get(contents, i), "role"));
        assert_non_null(role);
        if (i == 0)
            assert_string_equal(role, "user");
        if (prev)
            assert_string_not_equal(role, prev);
        prev = role;
    }
    assert_string_equal(prev, "user");
    return root;
}

/* All the texts of a body's contents, joined with "|" (caller frees). */
static char *joined_text(json_t *root)
{
    json_t *contents = json_object_get(root, "contents");
    size_t cap = 1;
    for (size_t i = 0; i < json_array_size(contents); i++)
        cap += strlen(json_string_value(json_object_get(
                   json_array_get(json_object_get(json_array_get(contents, i), "parts"), 0),
                   "text"))) +
               1;
    char *s = calloc(1, cap);
    size_t used = 0;
    for (size_t i = 0; i < json_array_size(contents); i++) {
        const char *t = json_string_value(json_object_get(
            json_array_get(json_object_get(json_array_get(contents, i), "parts"), 0), "text"));
        memcpy(s + used, t, strlen(t));
        used += strlen(t);
        s[used++] = '|';
    }
    return s;
}

/* ---- the plan ---- */

static void test_fits_unchanged(void **state)
{
    (void)state;
    sc_request_t *req = make_req(9, NULL, "Be brief.");
    long tok[MAXT];
    fill(tok, 9, 50);
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan(req, tok, 20, NULL, 470, 3, &plan), SC_OK);
    assert_int_equal(plan.pruned, 0);
    assert_int_equal(plan.n_kept, 9);
    assert_int_equal(plan.pruned_tokens, 0);
    assert_int_equal(plan.original_tokens, 470);
    for (size_t i = 0; i < 9; i++)
        assert_true(plan.keep[i]);
    size_t l1, l2;
    char *a = sc_prune_body(req, &plan, "ignored", &l1);
    char *b = sc_gemini_body_from_request(req, &l2);
    assert_string_equal(a, b);
    assert_int_equal(l1, l2);
    free(a);
    free(b);
    sc_prune_plan_clear(&plan);
    sc_request_free(req);
}

static void test_tail_kept_budget_respected(void **state)
{
    (void)state;
    sc_request_t *req = make_req(31, NULL, "Be brief.");
    long tok[MAXT];
    fill(tok, 31, 100);
    sc_prune_opts_t o;
    sc_prune_opts_default(&o);
    o.fill_budget = 1;
    for (int keep_last = 0; keep_last <= 5; keep_last++) {
        sc_prune_plan_t plan;
        assert_int_equal(sc_prune_plan_opts(req, tok, 30, NULL, 1000, keep_last, &o, &plan), SC_OK);
        assert_int_equal(plan.pruned, 1);
        assert_int_equal(plan.over_budget, 0);
        assert_true(plan.keep[30]); /* the last user turn, always */
        for (int k = 0; k < keep_last; k++)
            assert_true(plan.keep[30 - k]);
        assert_true(plan.kept_tokens + plan.summary_reserve <= 1000);
        assert_int_equal(plan.summary_reserve, 1000 * SC_PRUNE_SUMMARY_RESERVE_PCT / 100);
        assert_true(plan.summary_max_tokens <= plan.summary_reserve);
        assert_int_equal(plan.pruned_tokens, plan.original_tokens - plan.kept_tokens);
        assert_int_equal(plan.n_kept + plan.n_dropped, 31);
        assert_false(plan.keep[plan.first_dropped]);
        assert_false(plan.keep[plan.last_dropped]);
        assert_int_equal(plan.summary_to, plan.last_dropped + 1);
        /* greedy fills: no dropped middle turn would still fit */
        long room = 1000 - plan.summary_reserve - plan.kept_tokens;
        assert_true(room < 100);
        sc_prune_plan_clear(&plan);
    }
    sc_request_free(req);
}

/* The last user turn is protected even when a model turn follows it and keep_last is 0. */
static void test_last_user_when_model_last(void **state)
{
    (void)state;
    /* the parser wants the last message from the user: parse 11 turns, then hide the last so
     * the request ends with model turn 9 after user turn 8 */
    sc_request_t *req = make_req(11, NULL, NULL);
    req->n_turns = 10;
    long tok[MAXT];
    fill(tok, 10, 100);
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan(req, tok, 0, NULL, 500, 0, &plan), SC_OK);
    assert_int_equal(plan.protected_from, 8);
    assert_true(plan.keep[8]);
    assert_true(plan.keep[9]);
    assert_int_equal(plan.pruned, 1);
    sc_prune_plan_clear(&plan);
    req->n_turns = 11;
    sc_request_free(req);
}

static void test_relevance_order(void **state)
{
    (void)state;
    enum { N = 21 };
    sc_request_t *req = make_req(N, NULL, NULL);
    long tok[MAXT];
    float *vecs = calloc((size_t)N * SC_PRUNE_DIM, sizeof(float));
    fill(tok, N, 100);
    for (int i = 0; i < N; i++)
        unit(vecs + (size_t)i * SC_PRUNE_DIM, 10 + i, -1, 0); /* all orthogonal */
    unit(vecs + (size_t)20 * SC_PRUNE_DIM, 0, -1, 0);         /* the query: axis 0 */
    unit(vecs + (size_t)4 * SC_PRUNE_DIM, 0, 14, 0.1f);       /* user turn 4: cos ~0.995 */
    unit(vecs + (size_t)12 * SC_PRUNE_DIM, 0, 22, 1.0f);      /* user turn 12: cos ~0.71 */
    unit(vecs + (size_t)7 * SC_PRUNE_DIM, 0, 17, 2.0f);       /* model turn 7: cos ~0.45 */
    sc_prune_opts_t o;
    sc_prune_opts_default(&o);
    o.lexical_weight = 0;
    o.prev_turn_weight = 0;
    o.reserve_pct = 10;

    /* room for the tail (3 turns) and 2 more turns: 4 and 12 */
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan_opts(req, tok, 0, vecs, 600, 3, &o, &plan), SC_OK);
    assert_int_equal(plan.n_kept, 5);
    assert_true(plan.keep[4] && plan.keep[12]);
    assert_false(plan.keep[7]);
    sc_prune_plan_clear(&plan);

    /* room for 4 more: 4, 12, then model turn 7 pulls in its question 6 */
    assert_int_equal(sc_prune_plan_opts(req, tok, 0, vecs, 800, 3, &o, &plan), SC_OK);
    assert_int_equal(plan.n_kept, 7);
    assert_true(plan.keep[4] && plan.keep[12] && plan.keep[7] && plan.keep[6]);
    sc_prune_plan_clear(&plan);

    /* room for 3 more: 4, 12; 7 with 6 does not fit, 7 alone does */
    assert_int_equal(sc_prune_plan_opts(req, tok, 0, vecs, 700, 3, &o, &plan), SC_OK);
    assert_true(plan.keep[4] && plan.keep[12] && plan.keep[7]);
    assert_false(plan.keep[6]);

    /* the body: order preserved, every kept turn whole, roles valid; 6 dropped so 7 (model)
     * follows 4 (user)... */
    char *body = sc_prune_body(req, &plan, "the user asked about topics", NULL);
    assert_non_null(body);
    json_t *root = check_roles(body);
    char *all = joined_text(root);
    const char *prev = all;
    for (size_t i = 0; i < N; i++) {
        const char *p = strstr(all, req->turns[i].content);
        if (plan.keep[i]) {
            assert_non_null(p);
            assert_true(p >= prev);
            prev = p;
        } else {
            assert_null(p);
        }
    }
    assert_non_null(strstr(all, SC_PRUNE_SUMMARY_PREFIX "the user asked about topics"));
    /* generationConfig as the plain body has it */
    json_t *gen = json_object_get(root, "generationConfig");
    assert_int_equal(json_integer_value(json_object_get(gen, "maxOutputTokens")), 256);
    free(all);
    json_decref(root);
    free(body);
    sc_prune_plan_clear(&plan);
    free(vecs);
    sc_request_free(req);
}

/* The relevance floor: with room for many turns, only the clearly relevant ones are kept (the
 * summary covers the rest); with fill_budget the room is used. */
static void test_relevance_floor(void **state)
{
    (void)state;
    enum { N = 41 };
    sc_request_t *req = make_req(N, NULL, NULL);
    long tok[MAXT];
    float *vecs = calloc((size_t)N * SC_PRUNE_DIM, sizeof(float));
    fill(tok, N, 100);
    for (int i = 0; i < N; i++)
        unit(vecs + (size_t)i * SC_PRUNE_DIM, 1, 2 + i % 300, 3.0f); /* cos ~0.32 each */
    unit(vecs + (size_t)40 * SC_PRUNE_DIM, 1, -1, 0);
    unit(vecs + (size_t)10 * SC_PRUNE_DIM, 1, 12, 0.2f); /* cos ~0.98 */
    unit(vecs + (size_t)20 * SC_PRUNE_DIM, 1, 22, 0.5f); /* cos ~0.89 */
    sc_prune_opts_t o;
    sc_prune_opts_default(&o);
    o.lexical_weight = 0;
    o.prev_turn_weight = 0;
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan_opts(req, tok, 0, vecs, 3000, 3, &o, &plan), SC_OK);
    assert_int_equal(plan.pruned, 1);
    assert_int_equal(plan.n_kept, 5);
    assert_true(plan.keep[10] && plan.keep[20]);
    assert_true(plan.score[10] > plan.score[20] && plan.score[20] > plan.score[5]);
    sc_prune_plan_clear(&plan);
    o.fill_budget = 1;
    assert_int_equal(sc_prune_plan_opts(req, tok, 0, vecs, 3000, 3, &o, &plan), SC_OK);
    assert_true(plan.keep[10] && plan.keep[20]);
    assert_int_equal(plan.n_kept, 26); /* (3000 - 360) / 100 */
    sc_prune_plan_clear(&plan);
    free(vecs);
    sc_request_free(req);
}

/* A turn that does not fit is skipped whole (never split); a smaller one after it still fits. */
static void test_never_split(void **state)
{
    (void)state;
    enum { N = 11 };
    sc_request_t *req = make_req(N, NULL, NULL);
    long tok[MAXT];
    float *vecs = calloc((size_t)N * SC_PRUNE_DIM, sizeof(float));
    fill(tok, N, 50);
    for (int i = 0; i < N; i++)
        unit(vecs + (size_t)i * SC_PRUNE_DIM, 10 + i, -1, 0);
    unit(vecs + (size_t)10 * SC_PRUNE_DIM, 0, -1, 0);
    unit(vecs + (size_t)2 * SC_PRUNE_DIM, 0, 12, 0.1f); /* most relevant but huge */
    unit(vecs + (size_t)4 * SC_PRUNE_DIM, 0, 14, 1.0f);
    tok[2] = 5000;
    sc_prune_opts_t o;
    sc_prune_opts_default(&o);
    o.lexical_weight = 0;
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan_opts(req, tok, 0, vecs, 400, 3, &o, &plan), SC_OK);
    assert_false(plan.keep[2]);
    assert_true(plan.keep[4]);
    assert_true(plan.kept_tokens + plan.summary_reserve <= 400);
    sc_prune_plan_clear(&plan);
    free(vecs);
    sc_request_free(req);
}

/* Without embeddings the rare-term overlap still finds the turn with the planted fact. */
static void test_lexical_only(void **state)
{
    (void)state;
    const char *texts[15] = {NULL};
    texts[4] = "My order number is Q-48213 and it was shipped to Rotterdam on March 3.";
    texts[14] = "Remind me, where was order Q-48213 shipped to?";
    sc_request_t *req = make_req(15, texts, NULL);
    long tok[MAXT];
    fill(tok, 15, 100);
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan(req, tok, 0, NULL, 600, 3, &plan), SC_OK);
    assert_int_equal(plan.pruned, 1);
    assert_true(plan.keep[4]);
    sc_prune_plan_clear(&plan);
    sc_request_free(req);
}

/* A history longer than SC_PRUNE_EMBED_MAX embeds at most that many turns: the last user turn
 * and the one before it, the protected tail, and the turns that share the last question's rare
 * terms (the planted fact among them), not the rest; a short one embeds every turn. The plan with
 * zero vectors for the others still keeps the fact's turn. */
static void test_embed_select(void **state)
{
    (void)state;
    enum { N = 201 };
    const char *texts[N] = {NULL};
    texts[40] = "For the record, the incident ticket is INC-204518, opened by Mei Lin this morning.";
    texts[N - 1] = "What was the incident ticket I noted earlier, and who opened it?";
    sc_request_t *req = make_req(N, texts, NULL);
    unsigned char pick[N];
    size_t m = sc_prune_embed_select(req, 3, SC_PRUNE_EMBED_MAX, pick);
    assert_int_equal(m, SC_PRUNE_EMBED_MAX);
    size_t set = 0;
    for (size_t i = 0; i < N; i++)
        set += pick[i];
    assert_int_equal(set, m);
    assert_true(pick[N - 1] && pick[N - 2] && pick[N - 3]); /* the last user turn, the tail */
    assert_true(pick[40]);                                  /* the fact: "incident", "ticket" */
    /* the plan, with zero vectors for the turns not embedded, keeps the fact's turn */
    float *vecs = calloc((size_t)N * SC_PRUNE_DIM, sizeof *vecs);
    assert_non_null(vecs);
    for (size_t i = 0; i < N; i++) /* the question and the fact alike, the others not */
        if (pick[i])
            unit(vecs + i * SC_PRUNE_DIM, i == 40 || i == N - 1 ? 0 : 1 + (int)(i % 6),
                 i == 40 ? 1 : -1, 0.5f);
    long tok[N];
    fill(tok, N, 60);
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan(req, tok, 0, vecs, 1500, 3, &plan), SC_OK);
    assert_int_equal(plan.pruned, 1);
    assert_true(plan.keep[40]);
    sc_prune_plan_clear(&plan);
    free(vecs);
    sc_request_free(req);

    const char *few[10] = {NULL};
    req = make_req(9, few, NULL);
    assert_int_equal(sc_prune_embed_select(req, 3, SC_PRUNE_EMBED_MAX, pick), 9);
    for (size_t i = 0; i < 9; i++)
        assert_true(pick[i]);
    sc_request_free(req);
}

/* Even the protected part alone over budget: sent anyway, flagged. */
static void test_over_budget(void **state)
{
    (void)state;
    sc_request_t *req = make_req(9, NULL, "sys");
    long tok[MAXT];
    fill(tok, 9, 300);
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan(req, tok, 100, NULL, 500, 3, &plan), SC_OK);
    assert_int_equal(plan.over_budget, 1);
    assert_int_equal(plan.pruned, 1);
    assert_int_equal(plan.n_kept, 3);
    assert_true(plan.keep[6] && plan.keep[7] && plan.keep[8]);
    sc_prune_plan_clear(&plan);
    /* keep_last covering everything: nothing can be dropped */
    assert_int_equal(sc_prune_plan(req, tok, 100, NULL, 500, 20, &plan), SC_OK);
    assert_int_equal(plan.over_budget, 1);
    assert_int_equal(plan.pruned, 0);
    sc_prune_plan_clear(&plan);
    /* bad arguments */
    assert_int_equal(sc_prune_plan(req, tok, 100, NULL, 0, 3, &plan), SC_ERR_INVALID_ARG);
    assert_int_equal(sc_prune_plan(req, NULL, 100, NULL, 500, 3, &plan), SC_ERR_INVALID_ARG);
    sc_request_free(req);
}

/* No summary and a model turn first among the kept: a user placeholder opens the contents; two
 * user turns made adjacent by a dropped model turn are joined. */
static void test_body_roles_without_summary(void **state)
{
    (void)state;
    sc_request_t *req = make_req(9, NULL, NULL);
    sc_prune_plan_t plan;
    long tok[MAXT];
    fill(tok, 9, 10);
    assert_int_equal(sc_prune_plan(req, tok, 0, NULL, 1000, 3, &plan), SC_OK);
    /* hand-made plan: keep 1 (model), 2 (user), 4 (user), 6.. */
    plan.pruned = 1;
    memset(plan.keep, 0, 9);
    plan.keep[1] = plan.keep[2] = plan.keep[4] = plan.keep[6] = plan.keep[7] = plan.keep[8] = 1;
    char *body = sc_prune_body(req, &plan, NULL, NULL);
    json_t *root = check_roles(body);
    json_t *c0 = json_array_get(json_object_get(root, "contents"), 0);
    const char *t0 =
        json_string_value(json_object_get(json_array_get(json_object_get(c0, "parts"), 0), "text"));
    assert_string_equal(t0, SC_PRUNE_OMITTED_TEXT);
    char *all = joined_text(root);
    /* turns 2 and 4 joined by a blank line */
    char want[256];
    snprintf(want, sizeof want, "%s\n\n%s", req->turns[2].content, req->turns[4].content);
    assert_non_null(strstr(all, want));
    free(all);
    json_decref(root);
    free(body);
    sc_prune_plan_clear(&plan);
    sc_request_free(req);
}

static void test_summary_body(void **state)
{
    (void)state;
    enum { N = 31 };
    sc_request_t *req = make_req(N, NULL, "sys");
    long tok[MAXT];
    fill(tok, N, 100);
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan(req, tok, 0, NULL, 1000, 3, &plan), SC_OK);
    assert_true(plan.summary_to > 5);
    size_t len = 0;
    char *body = sc_prune_summary_body(req, &plan, NULL, 0, &len);
    assert_non_null(body);
    assert_int_equal(strlen(body), len);
    json_error_t jerr;
    json_t *root = json_loads(body, 0, &jerr);
    assert_non_null(root);
    const char *instr = json_string_value(json_object_get(
        json_array_get(json_object_get(json_object_get(root, "systemInstruction"), "parts"), 0),
        "text"));
    assert_non_null(strstr(instr, "number"));
    assert_non_null(strstr(instr, "name"));
    assert_non_null(strstr(instr, "decision"));
    assert_non_null(strstr(instr, "open question"));
    json_t *gen = json_object_get(root, "generationConfig");
    assert_int_equal(json_integer_value(json_object_get(gen, "maxOutputTokens")),
                     plan.summary_max_tokens);
    assert_true(plan.summary_max_tokens <= SC_PRUNE_SUMMARY_MAX_TOKENS);
    const char *text = json_string_value(json_object_get(
        json_array_get(
            json_object_get(json_array_get(json_object_get(root, "contents"), 0), "parts"), 0),
        "text"));
    assert_non_null(strstr(text, req->turns[0].content));
    json_decref(root);
    free(body);

    /* incremental: the previous summary covers [0, 4): only turns 4.. are sent */
    body = sc_prune_summary_body(req, &plan, "PREVIOUS SUMMARY TEXT", 4, NULL);
    root = json_loads(body, 0, &jerr);
    text = json_string_value(json_object_get(
        json_array_get(
            json_object_get(json_array_get(json_object_get(root, "contents"), 0), "parts"), 0),
        "text"));
    assert_non_null(strstr(text, "PREVIOUS SUMMARY TEXT"));
    assert_null(strstr(text, req->turns[3].content));
    assert_non_null(strstr(text, req->turns[4].content));
    assert_non_null(strstr(text, req->turns[plan.summary_to - 1].content));
    if (plan.summary_to < N)
        assert_null(strstr(text, req->turns[N - 1].content));
    json_decref(root);
    free(body);

    /* nothing new: no call */
    assert_null(sc_prune_summary_body(req, &plan, "S", plan.summary_to, NULL));
    sc_prune_plan_clear(&plan);
    sc_request_free(req);
}

/* A long multi-byte turn is cut at a character boundary in the summary input (valid JSON). */
static void test_summary_body_cut_utf8(void **state)
{
    (void)state;
    size_t big = SC_PRUNE_SUMMARY_TURN_BYTES * 2 + 1;
    char *s = malloc(big + 1);
    for (size_t i = 0; i + 2 < big; i += 3)
        memcpy(s + i, "\xe2\x82\xac", 3); /* € */
    big = big / 3 * 3;
    s[big] = '\0';
    const char *texts[9] = {s};
    sc_request_t *req = make_req(9, texts, NULL);
    long tok[MAXT];
    fill(tok, 9, 100);
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan(req, tok, 0, NULL, 500, 3, &plan), SC_OK);
    assert_false(plan.keep[0]);
    char *body = sc_prune_summary_body(req, &plan, NULL, 0, NULL);
    assert_non_null(body);
    assert_true(strlen(body) < big);
    free(body);
    sc_prune_plan_clear(&plan);
    sc_request_free(req);
    free(s);
}

/* ---- the system prompt outside the budget ---- */

/* A 5,000-token system prompt does not count against a 4,000-token history budget: a history
 * that fits is untouched, and a longer one still gets its relevant middle turn. */
static void test_system_outside_budget(void **state)
{
    (void)state;
    enum { N = 41 };
    sc_request_t *req = make_req(N, NULL, "A long catalogue system prompt.");
    long tok[MAXT];
    float *vecs = calloc((size_t)N * SC_PRUNE_DIM, sizeof(float));
    fill(tok, N, 50); /* 2,050 history tokens */
    for (int i = 0; i < N; i++)
        unit(vecs + (size_t)i * SC_PRUNE_DIM, 10 + i, -1, 0);
    unit(vecs + (size_t)40 * SC_PRUNE_DIM, 0, -1, 0);
    unit(vecs + (size_t)12 * SC_PRUNE_DIM, 0, 22, 0.1f);
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan(req, tok, 5000, vecs, 4000, 3, &plan), SC_OK);
    assert_int_equal(plan.pruned, 0);
    assert_int_equal(plan.over_budget, 0);
    assert_int_equal(plan.system_tokens, 5000);
    assert_int_equal(plan.history_tokens, 2050);
    assert_int_equal(plan.original_tokens, 7050);
    sc_prune_plan_clear(&plan);

    fill(tok, N, 200); /* 8,200 history tokens */
    assert_int_equal(sc_prune_plan(req, tok, 5000, vecs, 4000, 3, &plan), SC_OK);
    assert_int_equal(plan.pruned, 1);
    assert_int_equal(plan.over_budget, 0);
    assert_true(plan.keep[12]); /* not starved by the system prompt */
    assert_true(plan.keep[38] && plan.keep[39] && plan.keep[40]);
    assert_int_equal(plan.kept_tokens, 5000 + plan.kept_history_tokens);
    assert_true(plan.kept_history_tokens + plan.summary_reserve <= 4000);
    assert_int_equal(plan.pruned_tokens, plan.history_tokens - plan.kept_history_tokens);
    assert_int_equal(plan.summary_reserve, 4000 * SC_PRUNE_SUMMARY_RESERVE_PCT / 100);
    sc_prune_plan_clear(&plan);
    free(vecs);
    sc_request_free(req);
}

/* Recency fills the rest: after the relevant turns, the newest middle turns up to
 * SC_PRUNE_RECENT_PCT % of the budget (the protected tail counted in), newest first. */
static void test_recency_fills(void **state)
{
    (void)state;
    enum { N = 41 };
    sc_request_t *req = make_req(N, NULL, NULL);
    long tok[MAXT];
    float *vecs = calloc((size_t)N * SC_PRUNE_DIM, sizeof(float));
    fill(tok, N, 50);
    for (int i = 0; i < N; i++)
        unit(vecs + (size_t)i * SC_PRUNE_DIM, 1, 2 + i, 3.0f);
    unit(vecs + (size_t)40 * SC_PRUNE_DIM, 1, -1, 0);
    unit(vecs + (size_t)10 * SC_PRUNE_DIM, 1, 12, 0.2f);
    sc_prune_opts_t o;
    sc_prune_opts_default(&o);
    o.lexical_weight = 0;
    o.prev_turn_weight = 0;
    o.recent_pct = 25; /* 500 of 2000: the tail's 150 + 7 newer middle turns */
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan_opts(req, tok, 0, vecs, 2000, 3, &o, &plan), SC_OK);
    assert_int_equal(plan.pruned, 1);
    assert_true(plan.keep[10]);
    assert_int_equal(plan.n_recent, 7);
    for (int i = 31; i < 38; i++)
        assert_true(plan.keep[i]);
    assert_false(plan.keep[30]);
    sc_prune_plan_clear(&plan);
    o.recent_pct = 0;
    assert_int_equal(sc_prune_plan_opts(req, tok, 0, vecs, 2000, 3, &o, &plan), SC_OK);
    assert_int_equal(plan.n_recent, 0);
    assert_false(plan.keep[37]);
    sc_prune_plan_clear(&plan);
    free(vecs);
    sc_request_free(req);
}

/* ---- identifiers of the last turn reach the upstream ---- */

static int has_id(char (*ids)[SC_PRUNE_ID_MAX], size_t n, const char *want)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], want) == 0)
            return 1;
    return 0;
}

static void test_ids_extracted(void **state)
{
    (void)state;
    const char *t = "Ping priya.raman@example.com about ORD-1234 and the AX5400 on 2026-03-05 at "
                    "14:30. Priya Raman in Rotterdam quoted 4,250 EUR, see db3.internal:5432 or "
                    "3 days. What about it?";
    char ids[SC_PRUNE_MAX_IDS][SC_PRUNE_ID_MAX];
    size_t n = sc_prune_ids(t, strlen(t), ids, SC_PRUNE_MAX_IDS);
    assert_true(has_id(ids, n, "priya.raman@example.com"));
    assert_true(has_id(ids, n, "ORD-1234"));
    assert_true(has_id(ids, n, "AX5400"));
    assert_true(has_id(ids, n, "2026-03-05"));
    assert_true(has_id(ids, n, "14:30"));
    assert_true(has_id(ids, n, "Raman"));
    assert_true(has_id(ids, n, "Rotterdam"));
    assert_true(has_id(ids, n, "4,250"));
    assert_true(has_id(ids, n, "EUR"));
    assert_true(has_id(ids, n, "db3.internal:5432"));
    assert_false(has_id(ids, n, "Ping"));  /* opens the text */
    assert_false(has_id(ids, n, "Priya")); /* opens a sentence */
    assert_false(has_id(ids, n, "What"));
    assert_false(has_id(ids, n, "3"));
    assert_int_equal(n, 10);
    /* bounded */
    assert_int_equal(sc_prune_ids(t, strlen(t), ids, 2), 2);
    assert_true(sc_prune_has_token("order ord-1234, shipped", 23, "ORD-1234"));
    assert_false(sc_prune_has_token("order ORD-12345", 15, "ORD-1234"));
}

/* Every identifier-like token of the last user turn that an earlier turn holds reaches the
 * upstream in body (or the system prompt). */
static void assert_ids_reach(const sc_request_t *req, const char *body)
{
    size_t last = req->n_turns - 1;
    char ids[SC_PRUNE_MAX_IDS][SC_PRUNE_ID_MAX];
    size_t n =
        sc_prune_ids(req->turns[last].content, req->turns[last].content_len, ids, SC_PRUNE_MAX_IDS);
    json_error_t jerr;
    json_t *root = json_loads(body, 0, &jerr);
    assert_non_null(root);
    char *all = joined_text(root);
    size_t checked = 0;
    for (size_t k = 0; k < n; k++) {
        int held = 0;
        for (size_t i = 0; i < last && !held; i++)
            held = sc_prune_has_token(req->turns[i].content, req->turns[i].content_len, ids[k]);
        if (!held)
            continue;
        checked++;
        assert_true(sc_prune_has_token(all, strlen(all), ids[k]) ||
                    (req->system && sc_prune_has_token(req->system, strlen(req->system), ids[k])));
    }
    assert_true(checked > 0);
    free(all);
    json_decref(root);
}

/* A turn whose embedding says nothing (orthogonal) but that holds the order number and the
 * name the last question names is kept; without the check it is not. */
static void test_id_guard_keeps_turn(void **state)
{
    (void)state;
    enum { N = 31 };
    const char *texts[N] = {NULL};
    texts[6] = "Lots of unrelated chatter about shelving, pallets and the weather in the depot. "
               "By the way the replacement is order ORD-77812, handled by Ingrid Larsen.";
    texts[30] = "Sorry, what was the status of ORD-77812, and is Larsen still handling it?";
    sc_request_t *req = make_req(N, texts, "You are a support agent. Be brief.");
    long tok[MAXT];
    float *vecs = calloc((size_t)N * SC_PRUNE_DIM, sizeof(float));
    fill(tok, N, 100);
    for (int i = 0; i < N; i++)
        unit(vecs + (size_t)i * SC_PRUNE_DIM, 1, 2 + i, 1.0f);
    unit(vecs + (size_t)30 * SC_PRUNE_DIM, 1, -1, 0);
    unit(vecs + (size_t)6 * SC_PRUNE_DIM, 300, -1, 0);   /* cosine 0: the fact diluted away */
    unit(vecs + (size_t)20 * SC_PRUNE_DIM, 1, 22, 0.1f); /* a look-alike the cosine prefers */
    sc_prune_opts_t o;
    sc_prune_opts_default(&o);
    o.lexical_weight = 0;
    o.prev_turn_weight = 0;
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan_opts(req, tok, 5000, vecs, 1000, 3, &o, &plan), SC_OK);
    assert_int_equal(plan.pruned, 1);
    assert_true(plan.keep[6]);
    assert_true(plan.keep[20]);
    assert_true(plan.score[6] > plan.score[20]); /* ranked first */
    assert_int_equal(plan.n_ids_lost, 0);
    assert_null(plan.carry);
    char *body = sc_prune_body(req, &plan, "The user asked about a replacement.", NULL);
    assert_non_null(body);
    json_decref(check_roles(body));
    assert_ids_reach(req, body);
    free(body);
    sc_prune_plan_clear(&plan);

    /* neither the bonus nor the check: the cosine alone loses the turn */
    o.id_weight = 0;
    o.id_guard = 0;
    assert_int_equal(sc_prune_plan_opts(req, tok, 5000, vecs, 1000, 3, &o, &plan), SC_OK);
    assert_false(plan.keep[6]);
    sc_prune_plan_clear(&plan);

    /* the check alone (no bonus) still brings it back */
    o.id_guard = 1;
    assert_int_equal(sc_prune_plan_opts(req, tok, 5000, vecs, 1000, 3, &o, &plan), SC_OK);
    assert_true(plan.keep[6]);
    assert_int_equal(plan.n_id_kept, 1);
    sc_prune_plan_clear(&plan);
    free(vecs);
    sc_request_free(req);
}

/* The holder cannot fit: the sentence with the token is carried verbatim, with the summary (or
 * alone, opening the contents), and the pruned turn itself stays out. */
static void test_id_guard_carries(void **state)
{
    (void)state;
    enum { N = 21 };
    const char *texts[N] = {NULL};
    texts[4] = "We went through the whole checklist again. The refund reference is RF-904411 "
               "and it was approved by Mateo Rossi on June 12. After that we talked about the "
               "dock for a long time.";
    texts[20] = "Can you confirm refund RF-904411 and who approved it on June 12?";
    sc_request_t *req = make_req(N, texts, NULL);
    long tok[MAXT];
    fill(tok, N, 100);
    tok[4] = 3000; /* larger than the whole budget */
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan(req, tok, 0, NULL, 1000, 3, &plan), SC_OK);
    assert_int_equal(plan.pruned, 1);
    assert_false(plan.keep[4]);
    assert_non_null(plan.carry);
    assert_int_equal(strlen(plan.carry), plan.carry_len);
    assert_true(plan.n_ids_carried >= 1);
    assert_int_equal(plan.n_ids_lost, 0);
    assert_non_null(strstr(plan.carry, "The refund reference is RF-904411 and it was approved by "
                                       "Mateo Rossi on June 12."));
    assert_null(strstr(plan.carry, "checklist"));
    assert_true(plan.carry_len <= SC_PRUNE_CARRY_MAX);
    assert_true(plan.kept_tokens + plan.summary_reserve <= 1000 + (long)plan.carry_len);
    for (int with_summary = 0; with_summary < 2; with_summary++) {
        char *body = sc_prune_body(req, &plan, with_summary ? "Refund talk." : NULL, NULL);
        assert_non_null(body);
        json_t *root = check_roles(body);
        char *all = joined_text(root);
        assert_non_null(strstr(all, SC_PRUNE_CARRY_PREFIX));
        assert_null(strstr(all, req->turns[4].content));
        if (with_summary)
            assert_true(strstr(all, SC_PRUNE_SUMMARY_PREFIX) < strstr(all, SC_PRUNE_CARRY_PREFIX));
        free(all);
        json_decref(root);
        assert_ids_reach(req, body);
        free(body);
    }
    sc_prune_plan_clear(&plan);
    assert_null(plan.carry);
    sc_request_free(req);
}

/* The summary call asks for identifiers verbatim. */
static void test_summary_verbatim_instruction(void **state)
{
    (void)state;
    sc_request_t *req = make_req(31, NULL, NULL);
    long tok[MAXT];
    fill(tok, 31, 100);
    sc_prune_plan_t plan;
    assert_int_equal(sc_prune_plan(req, tok, 0, NULL, 1000, 3, &plan), SC_OK);
    char *body = sc_prune_summary_body(req, &plan, NULL, 0, NULL);
    json_error_t jerr;
    json_t *root = json_loads(body, 0, &jerr);
    const char *instr = json_string_value(json_object_get(
        json_array_get(json_object_get(json_object_get(root, "systemInstruction"), "parts"), 0),
        "text"));
    const char *want[] = {"verbatim", "number", "code",   "identifier",
                          "name",     "date",   "e-mail", "never round"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_non_null(strstr(instr, want[i]));
    json_decref(root);
    free(body);
    sc_prune_plan_clear(&plan);
    sc_request_free(req);
}

/* ---- the summary store ---- */

static void test_summary_store(void **state)
{
    (void)state;
    char dir[] = "/tmp/sc_test_prune_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[ERRLEN];
    sc_summary_store_t *st = NULL;
    assert_int_equal(sc_summary_store_open(dir, 1 << 20, &st, err, sizeof err), SC_OK);

    sc_request_t *req = make_req(21, NULL, NULL);
    sc_summary_t s;
    assert_int_equal(sc_summary_store_get(st, "acme", "c-9", &s), SC_ERR_NOT_FOUND);
    uint64_t h8 = sc_summary_hash_turns(req->turns, 8);
    assert_int_equal(sc_summary_store_put(st, "acme", "c-9", "first eight", 11, 8, h8), SC_OK);
    assert_int_equal(sc_summary_store_get(st, "acme", "c-9", &s), SC_OK);
    assert_string_equal(s.text, "first eight");
    assert_int_equal(s.n_turns, 8);
    assert_true(s.hash == h8);
    sc_summary_clear(&s);
    /* scoped by tenant */
    assert_int_equal(sc_summary_store_get(st, "other", "c-9", &s), SC_ERR_NOT_FOUND);

    /* lookup against the same history: usable */
    assert_int_equal(sc_summary_store_lookup(st, "acme", "c-9", req->turns, 21, &s), SC_OK);
    sc_summary_clear(&s);
    /* extend: a later request covers 14 turns */
    uint64_t h14 = sc_summary_hash_turns(req->turns, 14);
    assert_true(h14 != h8);
    assert_int_equal(sc_summary_store_put(st, "acme", "c-9", "fourteen", 8, 14, h14), SC_OK);
    assert_int_equal(sc_summary_store_lookup(st, "acme", "c-9", req->turns, 21, &s), SC_OK);
    assert_string_equal(s.text, "fourteen");
    assert_int_equal(s.n_turns, 14);
    sc_summary_clear(&s);
    /* a shorter history than the summary covers: not usable */
    assert_int_equal(sc_summary_store_lookup(st, "acme", "c-9", req->turns, 10, &s),
                     SC_ERR_NOT_FOUND);
    /* an edited covered turn: not usable */
    const char *saved = req->turns[3].content;
    req->turns[3].content = "edited";
    req->turns[3].content_len = 6;
    assert_int_equal(sc_summary_store_lookup(st, "acme", "c-9", req->turns, 21, &s),
                     SC_ERR_NOT_FOUND);
    assert_null(s.text);
    req->turns[3].content = saved;
    req->turns[3].content_len = strlen(saved);
    /* an edit after the covered prefix does not matter */
    req->turns[18].content = "edited later";
    req->turns[18].content_len = 12;
    assert_int_equal(sc_summary_store_lookup(st, "acme", "c-9", req->turns, 21, &s), SC_OK);
    sc_summary_clear(&s);

    /* bounds */
    char *huge = calloc(1, SC_SUMMARY_MAX_BYTES + 2);
    memset(huge, 'x', SC_SUMMARY_MAX_BYTES + 1);
    assert_int_equal(sc_summary_store_put(st, "acme", "c-9", huge, SC_SUMMARY_MAX_BYTES + 1, 1, 0),
                     SC_ERR_TOO_LARGE);
    huge[SC_SUMMARY_KEY_MAX] = '\0';
    assert_int_equal(sc_summary_store_put(st, huge, "c", "x", 1, 1, 0), SC_ERR_INVALID_ARG);
    free(huge);

    /* durable: reopen */
    sc_summary_store_close(st);
    st = NULL;
    assert_int_equal(sc_summary_store_open(dir, 1 << 20, &st, err, sizeof err), SC_OK);
    assert_int_equal(sc_summary_store_get(st, "acme", "c-9", &s), SC_OK);
    assert_string_equal(s.text, "fourteen");
    sc_summary_clear(&s);
    assert_int_equal(sc_summary_store_del(st, "acme", "c-9"), SC_OK);
    assert_int_equal(sc_summary_store_get(st, "acme", "c-9", &s), SC_ERR_NOT_FOUND);
    sc_summary_store_close(st);
    sc_summary_store_close(NULL);

    char path[256];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
    sc_request_free(req);
}

static void test_store_open_error(void **state)
{
    (void)state;
    char err[ERRLEN] = "";
    sc_summary_store_t *st = NULL;
    assert_int_not_equal(
        sc_summary_store_open("/proc/definitely/not/here", 0, &st, err, sizeof err), SC_OK);
    assert_null(st);
    assert_true(strlen(err) > 0);
}

/* ---- tool turns (Gemini's own request shape) ---- */

/* Groups of (question, call, result, answer), then a last question whose call and result end the
 * request: the API refuses a functionResponse without its functionCall just before it. */
static void test_tool_turns(void **state)
{
    (void)state;
    json_t *contents = json_array();
    char q[160];
    for (int g = 0; g < 8; g++) {
        snprintf(q, sizeof q, "question %d about order %d and the shipping of parcel %d", g,
                 1000 + g, 77 * g);
        json_array_append_new(contents, json_pack("{s:s,s:[{s:s}]}", "role", "user", "parts",
                                                  "text", q));
        json_array_append_new(contents, json_pack("{s:s,s:[{s:{s:s,s:{s:i}}}]}", "role", "model",
                                                  "parts", "functionCall", "name", "lookup_order",
                                                  "args", "order", 1000 + g));
        json_array_append_new(contents, json_pack("{s:s,s:[{s:{s:s,s:{s:s,s:i}}}]}", "role",
                                                  "user", "parts", "functionResponse", "name",
                                                  "lookup_order", "response", "status", "shipped",
                                                  "order", 1000 + g));
        if (g < 7)
            json_array_append_new(contents, json_pack("{s:s,s:[{s:s}]}", "role", "model", "parts",
                                                      "text", "It shipped yesterday."));
    }
    json_t *root = json_pack("{s:s,s:s,s:s,s:o,s:[{s:[{s:s}]}]}", "id", "tool-1", "tenant", "acme",
                             "conversation_id", "c-tools", "contents", contents, "tools",
                             "functionDeclarations", "name", "lookup_order");
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    sc_request_t *req = NULL;
    char id[64], err[ERRLEN];
    if (sc_request_parse(s, strlen(s), NULL, &req, id, sizeof id, err, sizeof err) != SC_OK)
        fail_msg("parse: %s", err);
    free(s);
    size_t n = req->n_turns;
    assert_int_equal(n, 31);
    long tok[MAXT];
    fill(tok, n, 100);
    for (long budget = 500; budget <= 2500; budget += 250) {
        sc_prune_plan_t plan;
        assert_int_equal(sc_prune_plan(req, tok, 0, NULL, budget, 1, &plan), SC_OK);
        assert_true(plan.pruned);
        /* the last question's chain is kept whole */
        for (size_t i = n - 3; i < n; i++)
            assert_true(plan.keep[i]);
        /* a call and its result: both or neither */
        for (size_t i = 1; i + 1 < n; i += 4)
            if (plan.keep[i] != plan.keep[i + 1])
                fail_msg("budget %ld: call %zu kept %d, its result %d", budget, i, plan.keep[i],
                         plan.keep[i + 1]);
        char *body = sc_prune_body(req, &plan, "the user asked about orders", NULL);
        assert_non_null(body);
        json_t *b = json_loads(body, 0, NULL);
        json_t *cs = json_object_get(b, "contents");
        for (size_t i = 0; i < json_array_size(cs); i++) {
            json_t *parts = json_object_get(json_array_get(cs, i), "parts");
            for (size_t k = 0; k < json_array_size(parts); k++) {
                if (!json_object_get(json_array_get(parts, k), "functionResponse"))
                    continue;
                assert_true(i > 0);
                json_t *prev = json_object_get(json_array_get(cs, i - 1), "parts");
                int called = 0;
                for (size_t m = 0; m < json_array_size(prev); m++)
                    called |= json_object_get(json_array_get(prev, m), "functionCall") != NULL;
                if (!called)
                    fail_msg("budget %ld: content %zu answers a call that is not before it: %s",
                             budget, i, body);
            }
        }
        /* the summary input names the tools called, with what, and what came back */
        char *sum = sc_prune_summary_body(req, &plan, NULL, 0, NULL);
        assert_non_null(sum);
        assert_non_null(strstr(sum, "[call lookup_order"));
        assert_non_null(strstr(sum, "[result lookup_order"));
        free(sum);
        json_decref(b);
        free(body);
        sc_prune_plan_clear(&plan);
    }
    sc_request_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fits_unchanged),
        cmocka_unit_test(test_tail_kept_budget_respected),
        cmocka_unit_test(test_last_user_when_model_last),
        cmocka_unit_test(test_relevance_order),
        cmocka_unit_test(test_relevance_floor),
        cmocka_unit_test(test_never_split),
        cmocka_unit_test(test_lexical_only),
        cmocka_unit_test(test_embed_select),
        cmocka_unit_test(test_over_budget),
        cmocka_unit_test(test_body_roles_without_summary),
        cmocka_unit_test(test_summary_body),
        cmocka_unit_test(test_summary_body_cut_utf8),
        cmocka_unit_test(test_system_outside_budget),
        cmocka_unit_test(test_recency_fills),
        cmocka_unit_test(test_ids_extracted),
        cmocka_unit_test(test_id_guard_keeps_turn),
        cmocka_unit_test(test_id_guard_carries),
        cmocka_unit_test(test_summary_verbatim_instruction),
        cmocka_unit_test(test_summary_store),
        cmocka_unit_test(test_store_open_error),
        cmocka_unit_test(test_tool_turns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
