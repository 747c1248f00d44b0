/* shadow.c - after a result: shadow evaluation. A sampled share of routed answers is answered by a
 * second tier as well (the strong one behind a cheaper answer, a cheaper one behind a strong
 * answer), off the result path; the two answers are compared (stages/verdict.c: deterministic
 * where they have a checkable form, else the strong model judges) and the outcome is one more
 * comparison in the scope's agreement estimate (host/cache/agreement.h), which the route stage
 * reads. Every shadow call's cost is a ledger line of its own (topics.shadow) and in /metrics. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "host/core/log.h"
#include "host/core/util.h"
#include "pipelines/optimizer.h"
#include "pipelines/stages/stages.h"
#include "pipelines/stages/verdict.h"

#define SHADOW_NAME_MAX         SC_AGREEMENT_FIELD_MAX
#define SHADOW_JUDGE_OUT_TOKENS 32 /* a verdict's expected output tokens, for the sampling */

struct sc_shadow_job {
    char id[SC_ITEM_ID_MAX];
    char tenant[SHADOW_NAME_MAX + 1], agent[SHADOW_NAME_MAX + 1], stage[SHADOW_NAME_MAX + 1];
    int has_agent, has_stage;
    int tier;                          /* the cheaper tier this comparison is evidence for */
    char key[24];                      /* its estimate's tier key: "lite", or "lite@router" */
    int shadow_is_strong;              /* the shadow call is the strong tier's (else the cheap one's) */
    int json;                          /* the request asked for application/json */
    int judging;                       /* the call in flight is the judge's */
    char answered_by[SC_MODEL_MAX];    /* the model of the published answer */
    char shadow_model[SC_MODEL_MAX];
    char judge_model[SC_MODEL_MAX];    /* "" until a judge call is made */
    char *answer;                      /* owned: the published answer */
    char *prompt;                      /* owned: the last user turn, for the judge */
    size_t prompt_len;
    int native;                        /* the request is in Gemini's own shape */
    int answer_calls;                  /* the published answer is function calls (answer: JSON) */
    char *shadow_answer;               /* owned: the shadow call's answer in comparable form */
    char *reference, *candidate;       /* borrowed from answer / shadow_answer */
    sc_usage_t usage, judge_usage;
    double cost_usd;
    sc_gemini_call_t *call;            /* the call in flight (owned by the client meanwhile) */
    sc_gemini_call_t *shadow_call;     /* owned once back: its text is the shadow answer */
};

typedef struct sc_shadow_job shadow_job_t;

static void job_free(shadow_job_t *j)
{
    if (!j)
        return;
    free(j->answer);
    free(j->shadow_answer);
    free(j->prompt);
    sc_gemini_call_free(j->shadow_call);
    free(j);
}

/* ---- evidence (read by the route stage) ---- */

static const char *opt_str(const char *s, int has)
{
    return has ? s : NULL;
}

/* The estimate's tier key: the tier's name, "@router" added for the router's own picks. */
static const char *evidence_key(int t, int router, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", sc_opt_tier_names[t], router ? "@router" : "");
    return buf;
}

static int lookup(const sc_optimizer_t *o, const sc_request_t *rq, int t, int router,
                  sc_agreement_est_t *e)
{
    char key[24];
    return o->agreement && t >= 0 && t < OPT_NTIERS - 1 &&
           sc_agreement_get(o->agreement, rq->tenant, rq->agent, rq->stage,
                            evidence_key(t, router, key, sizeof key), e);
}

int sc_shadow_evidence(const sc_optimizer_t *o, const sc_request_t *rq, int t, int router)
{
    sc_agreement_est_t e;
    if (o->quality_target <= 0.0 || !lookup(o, rq, t, router, &e))
        return 0;
    if (sc_wilson_lower(e.k, e.n, o->shadow_z) >= o->quality_target)
        return 1;
    return e.n >= o->shadow_min ? -1 : 0;
}

/* Decided: enough comparisons to say the tier keeps the target, or that it does not. */
static int decided(const sc_optimizer_t *o, const sc_item_t *it, int t, int router)
{
    sc_agreement_est_t e;
    if (!lookup(o, it->req, t, router, &e))
        return 0;
    return sc_wilson_lower(e.k, e.n, o->shadow_z) >= o->quality_target ||
           (e.n >= o->shadow_min && sc_wilson_upper(e.k, e.n, o->shadow_z) < o->quality_target);
}

/* The cheaper tier a strong answer is shadowed by: the cheapest one not measured below the
 * target (its upper bound under it); when every one is, the cheapest, so the evidence can
 * recover. */
static int shadow_tier_for_strong(const sc_optimizer_t *o, const sc_item_t *it)
{
    for (int t = 0; t < OPT_NTIERS - 1; t++) {
        sc_agreement_est_t e;
        if (!lookup(o, it->req, t, 0, &e) || e.n < o->shadow_min ||
            sc_wilson_upper(e.k, e.n, o->shadow_z) >= o->quality_target)
            return t;
    }
    return 0;
}

/* ---- sampling ---- */

static double next_unit(sc_optimizer_t *o)
{
    uint64_t x = o->shadow_rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    o->shadow_rng = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

/* An answer as the comparison reads it: the text; or, when the first candidate of a request in
 * Gemini's own shape calls functions, the calls as canonical JSON
 * {"functionCalls":[{"name":…,"args":{…}},…]} (*calls = 1). @remark the caller frees with
 * free(); NULL when there is no answer. */
static char *comparable(int native, const sc_gemini_call_t *c, int *calls)
{
    *calls = 0;
    json_t *cand = native ? json_array_get(c->candidates, 0) : NULL;
    json_t *parts = json_object_get(json_object_get(cand, "content"), "parts"), *p;
    json_t *list = NULL; /* new */
    size_t i;
    json_array_foreach(parts, i, p) {
        json_t *fc = json_object_get(p, "functionCall");
        if (!fc)
            continue;
        if (!list && !(list = json_array()))
            return NULL;
        json_t *args = json_object_get(fc, "args");
        json_array_append_new(list, json_pack("{s:O?,s:o}", "name", json_object_get(fc, "name"),
                                              "args", args ? json_incref(args) : json_object()));
    }
    if (list) {
        json_t *doc = json_pack("{s:o}", "functionCalls", list); /* new; list stolen */
        char *out = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(doc);
        *calls = 1;
        return out;
    }
    return c->text && c->text[0] ? strdup(c->text) : NULL;
}

static int shadowable(const sc_optimizer_t *o, const sc_item_t *it)
{
    const sc_gemini_call_t *c = it->call;
    int has_answer = c && c->status == SC_OK &&
                     ((c->text && c->text[0]) || (it->req && it->req->native && c->candidates));
    return o->agreement && o->shadow_rate > 0.0 && o->quality_target > 0.0 && it->req &&
           it->tier >= 0 && !it->source && !it->promoted && !it->batch && it->body_plain &&
           has_answer && c->finish_reason && strcmp(c->finish_reason, "STOP") == 0;
}

/* The thought tokens one call of model is expected to bill in the item's scope. */
static double thoughts_of(const sc_optimizer_t *o, const sc_item_t *it, const char *model)
{
    return sc_thinking_estimate(o->thinking, model, it->req->tenant, it->req->agent,
                                it->req->stage, NULL);
}

static double cost_est(const sc_optimizer_t *o, const char *model, long prompt, long output,
                       double thoughts)
{
    sc_usage_t u = {.prompt_tokens = prompt, .output_tokens = output,
                    .thought_tokens = lround(thoughts)};
    return sc_opt_cost_of(o, model, &u, 0);
}

/*
 * The probability of shadowing this answer. The shadow calls may spend router.shadow_rate of what
 * the sampled traffic costs on the strong tier: p = rate × strong cost / shadow cost (the judge's
 * included when the answer has no checkable form). A strong shadow of a cheaper answer is so
 * sampled at about the rate itself; a cheap shadow of a strong answer, in a scope whose evidence
 * is not yet decided, more often at the same spend; once decided, at the rate at most.
 */
static double sample_probability(const sc_optimizer_t *o, const sc_item_t *it, int tier,
                                 int router, int shadow_is_strong)
{
    const char *strong = o->tiers[OPT_NTIERS - 1];
    const sc_usage_t *u = &it->call->usage;
    long prompt = u->prompt_tokens, out = u->output_tokens;
    double strong_cost = cost_est(o, strong, prompt, out,
                                  shadow_is_strong ? thoughts_of(o, it, strong)
                                                   : (double)u->thought_tokens);
    const char *model = shadow_is_strong ? strong : o->tiers[tier];
    double shadow = cost_est(o, model, prompt, out, thoughts_of(o, it, model));
    char canon[SC_ANSWER_FORM_MAX];
    int json = it->req->response_mime_type &&
               strcmp(it->req->response_mime_type, "application/json") == 0;
    if (sc_answer_form(it->call->text, json, canon, sizeof canon) == SC_FORM_NONE)
        shadow += cost_est(o, strong, (long)(sc_opt_last_turn(it)->content_len / SC_CHARS_PER_TOKEN) +
                                          2 * out,
                           SHADOW_JUDGE_OUT_TOKENS, thoughts_of(o, it, strong));
    double p = o->shadow_rate;
    if (shadow > 0.0 && strong_cost > 0.0)
        p = o->shadow_rate * strong_cost / shadow;
    if (decided(o, it, tier, router) && p > o->shadow_rate)
        p = o->shadow_rate;
    return p > 1.0 ? 1.0 : p;
}

/* ---- the jobs in flight ---- */

static int job_add(sc_optimizer_t *o, shadow_job_t *j)
{
    if (o->nshadows >= o->shadow_max_inflight)
        return 0;
    o->shadows[o->nshadows++] = j;
    return 1;
}

static shadow_job_t *job_of(const sc_optimizer_t *o, const sc_gemini_call_t *call)
{
    for (int i = 0; i < o->nshadows; i++)
        if (o->shadows[i]->call == call)
            return o->shadows[i];
    return NULL;
}

static void job_remove(sc_optimizer_t *o, shadow_job_t *j)
{
    for (int i = 0; i < o->nshadows; i++)
        if (o->shadows[i] == j) {
            o->shadows[i] = o->shadows[--o->nshadows];
            return;
        }
}

int sc_optimizer_is_shadow(const sc_optimizer_t *o, const sc_gemini_call_t *call)
{
    return call && job_of(o, call) != NULL;
}

static sc_gemini_call_t *job_call(sc_optimizer_t *o, shadow_job_t *j, const char *model,
                                  char *body, size_t len)
{
    sc_gemini_call_t *c = body ? sc_gemini_call_new(model, body, len) : NULL;
    if (!c) {
        free(body);
        return NULL;
    }
    c->opaque = j;
    c->deadline_ms = sc_now_ms() + sc_config_int(o->cfg, "gemini.request_timeout_ms");
    c->est_tokens = (long)(len / SC_CHARS_PER_TOKEN);
    j->call = c;
    return c;
}

static void dropped(sc_optimizer_t *o, const sc_item_t *it, const char *key)
{
    sc_metrics_shadow(o->metrics, it->req->tenant, it->req->agent, it->req->stage, key, "",
                      "dropped", 0.0);
}

sc_gemini_call_t *sc_optimizer_shadow_start(sc_optimizer_t *o, const sc_item_t *it, int busy)
{
    if (!shadowable(o, it))
        return NULL;
    int strong = OPT_NTIERS - 1;
    int shadow_is_strong = it->tier < strong;
    /* evidence about the router's own picks is kept apart from the scope's whole traffic: a
     * cheap answer the router chose, or a strong answer to a prompt the router would have sent
     * cheaper (routed up for lack of evidence), is shadowed as such */
    int router = shadow_is_strong ? it->route_basis && strcmp(it->route_basis, "router") == 0
                                  : it->router_tier >= 0;
    int tier = shadow_is_strong ? it->tier : router ? it->router_tier : shadow_tier_for_strong(o, it);
    if (next_unit(o) >= sample_probability(o, it, tier, router, shadow_is_strong))
        return NULL;
    char key[24];
    evidence_key(tier, router, key, sizeof key);
    if (busy || o->nshadows >= o->shadow_max_inflight) { /* the first thing dropped */
        dropped(o, it, key);
        return NULL;
    }
    const sc_request_t *rq = it->req;
    const sc_turn_t *last = sc_opt_last_turn(it);
    shadow_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    sc_strlcpy(j->id, it->id, sizeof j->id);
    sc_strlcpy(j->tenant, rq->tenant, sizeof j->tenant);
    if ((j->has_agent = rq->agent != NULL))
        sc_strlcpy(j->agent, rq->agent, sizeof j->agent);
    if ((j->has_stage = rq->stage != NULL))
        sc_strlcpy(j->stage, rq->stage, sizeof j->stage);
    j->tier = tier;
    sc_strlcpy(j->key, key, sizeof j->key);
    j->shadow_is_strong = shadow_is_strong;
    j->json = rq->response_mime_type && strcmp(rq->response_mime_type, "application/json") == 0;
    sc_strlcpy(j->answered_by, it->model, sizeof j->answered_by);
    sc_strlcpy(j->shadow_model, o->tiers[shadow_is_strong ? strong : tier], sizeof j->shadow_model);
    j->native = rq->native != NULL;
    j->answer = comparable(j->native, it->call, &j->answer_calls);
    j->prompt = malloc(last->content_len + 1);
    if (!j->answer || !j->prompt) {
        job_free(j);
        return NULL;
    }
    memcpy(j->prompt, last->content, last->content_len + 1);
    j->prompt_len = last->content_len;
    size_t len = strlen(it->body_plain);
    sc_gemini_call_t *c = job_call(o, j, j->shadow_model, strdup(it->body_plain), len);
    if (!c || !job_add(o, j)) {
        sc_gemini_call_free(c);
        job_free(j);
        return NULL;
    }
    sc_info("shadow.start", "id=%s tier=%s shadow=%s answered_by=%s", j->id, j->key,
            j->shadow_model, j->answered_by);
    return c;
}

/* ---- a shadow call came back ---- */

static json_t *usage_json(const sc_usage_t *u)
{
    return json_pack("{s:I, s:I, s:I, s:I}", "prompt_tokens", (json_int_t)u->prompt_tokens,
                     "cached_tokens", (json_int_t)u->cached_tokens, "output_tokens",
                     (json_int_t)u->output_tokens, "thought_tokens",
                     (json_int_t)u->thought_tokens);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The shadow's ledger line (a new string), NULL on allocation failure. */
static char *ledger_line(const shadow_job_t *j, const char *compare, const char *outcome,
                         size_t *len)
{
    const char *strong_model = j->judge_model[0] ? j->judge_model : NULL;
    json_t *o = json_object(); /* new */
    int ok = o &&
             json_object_set_new(o, "kind", json_string("shadow")) == 0 &&
             json_object_set_new(o, "id", json_string(j->id)) == 0 &&
             json_object_set_new(o, "tenant", json_string(j->tenant)) == 0 &&
             json_object_set_new(o, "agent", str_or_null(opt_str(j->agent, j->has_agent))) == 0 &&
             json_object_set_new(o, "stage", str_or_null(opt_str(j->stage, j->has_stage))) == 0 &&
             json_object_set_new(o, "tier", json_string(j->key)) == 0 &&
             json_object_set_new(o, "model", json_string(j->shadow_model)) == 0 &&
             json_object_set_new(o, "answered_by", json_string(j->answered_by)) == 0 &&
             json_object_set_new(o, "compare", str_or_null(compare)) == 0 &&
             json_object_set_new(o, "outcome", json_string(outcome)) == 0 &&
             json_object_set_new(o, "usage", usage_json(&j->usage)) == 0 &&
             json_object_set_new(o, "judge_model", str_or_null(strong_model)) == 0 &&
             json_object_set_new(o, "judge_usage",
                                 strong_model ? usage_json(&j->judge_usage) : json_null()) == 0 &&
             json_object_set_new(o, "cost_usd", json_real(j->cost_usd)) == 0 &&
             json_object_set_new(o, "baseline_cost_usd", json_real(0.0)) == 0 &&
             json_object_set_new(o, "savings", json_pack("{s:f}", "shadow_usd", -j->cost_usd)) == 0;
    char *s = ok ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s)
        *len = strlen(s);
    return s;
}

/* The comparison is over: count it (agree >= 0), the metrics, the ledger line; frees the job. */
static void job_finish(sc_optimizer_t *o, shadow_job_t *j, const char *compare, int agree,
                       const char *outcome, char **line, size_t *len)
{
    const char *agent = opt_str(j->agent, j->has_agent), *stage = opt_str(j->stage, j->has_stage);
    const char *tier = j->key;
    if (agree >= 0) {
        sc_agreement_est_t now;
        if (sc_agreement_add(o->agreement, j->tenant, agent, stage, tier, agree, &now) == SC_OK) {
            double lower = sc_wilson_lower(now.k, now.n, o->shadow_z);
            sc_metrics_route_agreement(o->metrics, j->tenant, agent, stage, tier, lower,
                                       now.n > 0 ? now.k / now.n : 0.0, now.n);
            sc_info("shadow.estimate", "tenant=%s agent=%s stage=%s tier=%s n=%.1f agree=%.1f "
                    "lower=%.4f", j->tenant, agent ? agent : "-", stage ? stage : "-", tier,
                    now.n, now.k, lower);
        } else {
            sc_warn("shadow.store", "id=%s (the comparison is not kept)", j->id);
        }
    }
    sc_metrics_shadow(o->metrics, j->tenant, agent, stage, tier, j->shadow_model, outcome,
                      j->cost_usd);
    *line = ledger_line(j, compare, outcome, len);
    j->call = NULL;
    job_remove(o, j);
    job_free(j);
}

sc_gemini_call_t *sc_optimizer_shadow_done(sc_optimizer_t *o, sc_gemini_call_t *call,
                                           char **line, size_t *len)
{
    *line = NULL;
    *len = 0;
    shadow_job_t *j = job_of(o, call);
    if (!j) { /* not ours: nothing to count */
        sc_gemini_call_free(call);
        return NULL;
    }
    const char *strong = o->tiers[OPT_NTIERS - 1];
    double cost = call->status == SC_OK ? sc_opt_cost_of(o, call->model, &call->usage, 0) : 0.0;
    j->cost_usd += cost;
    if (call->status == SC_OK && strcmp(call->model, strong) == 0)
        sc_thinking_observe(o->thinking, strong, j->tenant, opt_str(j->agent, j->has_agent),
                            opt_str(j->stage, j->has_stage), call->usage.thought_tokens);
    if (j->judging) {
        j->judge_usage = call->usage;
        int a_ok, b_ok, agree;
        int parsed = call->status == SC_OK && call->text &&
                     sc_judge_verdict(call->text, &a_ok, &b_ok, &agree) == 0;
        /* the candidate is as good as the strong answer: the judge says they agree, or the
         * candidate is right, or neither is (all-strong would have been wrong too) */
        int sample = parsed ? (agree || b_ok || !a_ok) : -1;
        job_finish(o, j, "judge", sample,
                   call->status != SC_OK ? "failed"
                   : !parsed             ? "no_evidence"
                   : sample              ? "agree"
                                         : "disagree",
                   line, len);
        sc_gemini_call_free(call);
        return NULL;
    }
    j->usage = call->usage;
    j->shadow_call = call;
    int shadow_calls = 0;
    j->shadow_answer = call->status == SC_OK ? comparable(j->native, call, &shadow_calls) : NULL;
    if (!j->shadow_answer) {
        job_finish(o, j, NULL, -1, call->status == SC_ERR_FULL ? "dropped" : "failed", line,
                   len);
        return NULL;
    }
    j->reference = j->shadow_is_strong ? j->shadow_answer : j->answer;
    j->candidate = j->shadow_is_strong ? j->answer : j->shadow_answer;
    const char *kind = NULL;
    sc_compare_t cmp;
    if (j->answer_calls != shadow_calls) { /* one called a tool, the other did not */
        cmp = SC_COMPARE_DIFFERENT;
        kind = "function-call";
    } else {
        cmp = sc_answers_compare(j->reference, j->candidate, j->json || shadow_calls, &kind);
        if (shadow_calls)
            kind = "function-call";
    }
    if (cmp != SC_COMPARE_UNCHECKABLE) {
        job_finish(o, j, kind, cmp == SC_COMPARE_SAME,
                   cmp == SC_COMPARE_SAME ? "agree" : "disagree", line, len);
        return NULL;
    }
    size_t blen = 0;
    char *body = sc_judge_body(j->prompt, j->prompt_len, j->reference, strlen(j->reference),
                               j->candidate, strlen(j->candidate), &blen);
    j->judging = 1;
    sc_strlcpy(j->judge_model, strong, sizeof j->judge_model);
    sc_gemini_call_t *judge = job_call(o, j, strong, body, blen);
    if (!judge) {
        job_finish(o, j, "judge", -1, "failed", line, len);
        return NULL;
    }
    return judge;
}

void sc_optimizer_shadow_free_all(sc_optimizer_t *o)
{
    for (int i = 0; i < o->nshadows; i++)
        job_free(o->shadows[i]);
    o->nshadows = 0;
}
