/* optimizer.c - the driver of the optimizing stages (pipelines/stages/, one file each) between
 * parsing and the upstream call, and what follows a call: one context shared by the online and
 * the backfill drivers. Read top to bottom: set-up, the helpers the stages share, prepare (the
 * list of stages), after a call (summary → main call, an expired prompt cache → the call again
 * uncached, cascade), finish (cache store, calibration, followers). */
#include "pipelines/optimizer.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/cache/cache.h"
#include "host/core/log.h"
#include "host/core/paths.h"
#include "host/core/price.h"
#include "host/gemini/prompt_cache.h"
#include "host/cache/summary_store.h"
#include "host/core/tokens.h"
#include "host/core/util.h"
#include "models/router.h"
#include "pipelines/stages/stages.h"

#define OPT_PATH_MAX 4096

const char *const sc_opt_tier_names[OPT_NTIERS] = {"lite", "cheap", "strong"};

/* ---- set-up ---- */

static sc_status_t open_encoder(sc_optimizer_t *o, char *errbuf, size_t errlen)
{
    char dir[OPT_PATH_MAX];
    sc_encoder_opts_t eo;
    sc_encoder_opts_default(&eo);
    eo.model_dir = sc_resolve_path(sc_config_str(o->cfg, "models.embedding"), dir, sizeof dir);
    if (sc_backend_parse(sc_config_str(o->cfg, "backend"), &eo.backend) != 0)
        eo.backend = SC_BACKEND_AUTO;
    if (sc_precision_parse(sc_config_str(o->cfg, "encoder.precision"), &eo.precision) != 0)
        eo.precision = SC_PRECISION_AUTO; /* sc_config_validate has refused any other */
    eo.max_batch = (int)sc_config_int(o->cfg, "batch.max_messages");
    return sc_encoder_new(&eo, &o->enc, errbuf, errlen);
}

static void publish_estimate(const char *tenant, const char *agent, const char *stage,
                             const char *tier, const sc_agreement_est_t *e, void *arg)
{
    sc_optimizer_t *o = arg;
    sc_metrics_route_agreement(o->metrics, tenant, agent[0] ? agent : NULL,
                               stage[0] ? stage : NULL, tier,
                               sc_wilson_lower(e->k, e->n, o->shadow_z),
                               e->n > 0 ? e->k / e->n : 0.0, e->n);
}

/* The shadow evaluation's evidence store (router.shadow_path, "" for none) and its settings. */
static sc_status_t open_shadow(sc_optimizer_t *o, char *errbuf, size_t errlen)
{
    const sc_config_t *cfg = o->cfg;
    o->quality_target = sc_config_num(cfg, "router.quality_target");
    o->shadow_rate = sc_config_num(cfg, "router.shadow_rate");
    o->shadow_z = sc_config_num(cfg, "router.shadow_z");
    o->shadow_min = (double)sc_config_int(cfg, "router.shadow_min_samples");
    o->shadow_max_inflight = (int)sc_config_int(cfg, "router.shadow_max_inflight");
    uint64_t seed = (uint64_t)sc_config_int(cfg, "router.shadow_seed"); /* 0: from the clock */
    o->shadow_rng = seed ? seed * 0x9E3779B97F4A7C15ULL
                         : (uint64_t)sc_now_us() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
    if (!o->shadow_rng)
        o->shadow_rng = 1;
    const char *path = sc_config_str(cfg, "router.shadow_path");
    if (!path[0])
        return SC_OK;
    if (o->shadow_max_inflight > 0 &&
        !(o->shadows = calloc((size_t)o->shadow_max_inflight, sizeof *o->shadows)))
        return SC_ERR_NOMEM;
    char dir[OPT_PATH_MAX];
    sc_status_t st = sc_agreement_open(sc_resolve_path(path, dir, sizeof dir),
                                       sc_config_num(cfg, "router.shadow_window"), &o->agreement,
                                       errbuf, errlen);
    if (st)
        return st;
    sc_agreement_foreach(o->agreement, publish_estimate, o);
    sc_info("shadow.ready", "path=%s estimates=%zu rate=%g z=%g min_samples=%g target=%g",
            dir, sc_agreement_count(o->agreement), o->shadow_rate, o->shadow_z, o->shadow_min,
            o->quality_target);
    return SC_OK;
}

sc_status_t sc_optimizer_new(const sc_config_t *cfg, sc_metrics_t *metrics, int batch_mode,
                             sc_optimizer_t **out, char *errbuf, size_t errlen)
{
    sc_status_t st = SC_OK;
    sc_optimizer_t *o = calloc(1, sizeof *o);
    if (!o)
        return SC_ERR_NOMEM;
    pthread_mutex_init(&o->lock, NULL);
    o->cfg = cfg;
    o->metrics = metrics;
    o->batch_mode = batch_mode;
    o->tiers[0] = sc_config_str(cfg, "models.lite");
    o->tiers[1] = sc_config_str(cfg, "models.cheap");
    o->tiers[2] = sc_config_str(cfg, "models.strong");
    o->default_model = sc_config_str(cfg, "models.default");
    if (strcmp(o->default_model, "auto") == 0)
        o->default_model = o->tiers[2]; /* without a router, "auto" is the strong model */
    o->cascade = sc_config_bool(cfg, "cascade.enabled");
    o->coalesce = sc_config_bool(cfg, "coalesce.enabled") && sc_config_bool(cfg, "cache.enabled");
    o->prune = sc_config_bool(cfg, "prune.enabled");
    o->budget = (long)sc_config_int(cfg, "prune.max_tokens");
    o->keep_last = (int)sc_config_int(cfg, "prune.keep_last");
    long tvn = (long)sc_config_int(cfg, "prune.turn_vectors");
    if (o->prune && tvn > 0 && !(o->turn_vecs = sc_turn_vecs_new((size_t)tvn, SC_EMBED_DIM))) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    o->temperature_max = sc_config_num(cfg, "cache.temperature_max");
    o->threshold = sc_config_num(cfg, "cache.threshold");
    o->band = sc_config_num(cfg, "cache.strict_band");
    o->guards = sc_config_bool(cfg, "cache.guards");
    if (!(o->tokens = sc_tokens_new()) ||
        !(o->thinking = sc_thinking_new(sc_config_str(cfg, "models.strong"),
                                        (double)sc_config_int(cfg, "ledger.strong_thought_tokens"))) ||
        !(o->leaders = calloc(OPT_LEADERS_MAX, sizeof *o->leaders))) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    int need_enc = sc_config_bool(cfg, "cache.enabled") || sc_config_bool(cfg, "router.enabled") ||
                   o->prune;
    if (need_enc && (st = open_encoder(o, errbuf, errlen)))
        goto out;
    if (sc_config_bool(cfg, "cache.enabled")) {
        sc_cache_opts_t co;
        sc_cache_opts_from_config(cfg, &co);
        if ((st = sc_cache_open(&co, &o->cache, errbuf, errlen)))
            goto out;
    }
    if (sc_config_bool(cfg, "router.enabled")) {
        char path[OPT_PATH_MAX];
        sc_resolve_path(sc_config_str(cfg, "router.path"), path, sizeof path);
        if ((st = sc_router_load(path, &o->router, errbuf, errlen)))
            goto out;
        /* the operating point: the strong tier's threshold for router.quality_target (0: the
         * file's thresholds as trained), from the file's operating curve */
        double target = sc_config_num(cfg, "router.quality_target");
        double lite = sc_config_num(cfg, "router.lite_share"), share = 0.0;
        int met = 0;
        if (target > 0.0) {
            st = sc_router_set_quality_target(o->router, target, lite, &share, &met);
            if (st) {
                snprintf(errbuf, errlen,
                         "%s: router.quality_target %g / router.lite_share %g: %s", path, target,
                         lite,
                         st == SC_ERR_NOT_FOUND
                             ? "the file has no operating curve (retrain with scrimp "
                               "train-router, or set router.quality_target=0)"
                             : "out of range");
                st = SC_ERR_CONFIG;
                goto out;
            }
            if (!met)
                sc_warn("router.operating_point",
                        "quality_target=%g reason=\"not reached on the training CV: every prompt "
                        "goes to the strong tier\"",
                        target);
        }
        const char *outside = sc_config_str(cfg, "router.outside_tier");
        o->outside_tier = -1; /* "score": the head's score decides, as inside */
        for (int j = 0; j < OPT_NTIERS; j++)
            if (strcmp(outside, sc_opt_tier_names[j]) == 0)
                o->outside_tier = j;
        sc_info("router.operating_point",
                "quality_target=%g lite_share=%g t1=%.4f t2=%.4f strong_share_cv=%.3f "
                "outside_tier=%s domain=%s",
                target, lite, (double)sc_router_threshold(o->router, 0),
                (double)sc_router_threshold(o->router, 1), target > 0.0 ? share : NAN, outside,
                sc_router_has_domain(o->router) ? "on" : "none in the file");
    }
    if ((st = open_shadow(o, errbuf, errlen)))
        goto out;
    if (o->prune && sc_config_bool(cfg, "prune.summaries") &&
        (st = sc_summary_store_open(sc_config_str(cfg, "prune.path"), 0, &o->summaries, errbuf,
                                    errlen)))
        goto out;
    if (sc_config_bool(cfg, "prompt_cache.enabled") && !batch_mode) {
        sc_prompt_cache_opts_t po;
        sc_prompt_cache_opts_from_config(cfg, &po);
        if ((st = sc_prompt_cache_new(&po, &o->pcache, errbuf, errlen)))
            goto out;
    }
    sc_info("optimizer.ready", "cache=%s router=%s prune=%s summaries=%s prompt_cache=%s "
            "cascade=%s coalesce=%s backend=%s", o->cache ? "on" : "off",
            o->router ? "on" : "off", o->prune ? "on" : "off", o->summaries ? "on" : "off",
            o->pcache ? "on" : "off", o->cascade ? "on" : "off", o->coalesce ? "on" : "off",
            o->enc ? sc_backend_name(sc_encoder_backend(o->enc)) : "none");
    *out = o;
    return SC_OK;
out:
    sc_optimizer_free(o);
    return st;
}

void sc_optimizer_free(sc_optimizer_t *o)
{
    if (!o)
        return;
    sc_optimizer_shadow_free_all(o);
    free(o->shadows);
    sc_agreement_close(o->agreement);
    sc_prompt_cache_free(o->pcache); /* deletes the caches it created */
    sc_summary_store_close(o->summaries);
    sc_turn_vecs_free(o->turn_vecs);
    sc_router_free(o->router);
    sc_cache_close(o->cache);
    sc_encoder_free(o->enc);
    sc_tokens_free(o->tokens);
    sc_thinking_free(o->thinking);
    free(o->leaders);
    pthread_mutex_destroy(&o->lock);
    free(o);
}

/* ---- helpers shared with the stages (declared in stages/stages.h) ---- */

double sc_opt_cost_of(const sc_optimizer_t *o, const char *model, const sc_usage_t *u, int batch)
{
    sc_price_t p;
    return sc_price_lookup(o->cfg, model, &p) == SC_OK ? sc_price_cost(&p, u, batch) : 0.0;
}

const sc_turn_t *sc_opt_last_turn(const sc_item_t *it)
{
    return &it->req->turns[it->req->n_turns - 1];
}

char *sc_opt_answer(const sc_item_t *it)
{
    const sc_gemini_call_t *c = it->call;
    if (!c)
        return NULL;
    if (it->req->native) /* the whole candidates, as the ledger hands them on */
        return c->candidates ? json_dumps(c->candidates, JSON_COMPACT) : NULL;
    return c->text ? strdup(c->text) : NULL;
}

float sc_opt_dot(const float *a, const float *b)
{
    float s = 0;
    for (int i = 0; i < SC_EMBED_DIM; i++)
        s += a[i] * b[i];
    return s;
}

void sc_opt_fail_item(sc_item_t *it, sc_status_t st, const char *why)
{
    it->state = SC_ITEM_DONE;
    it->error = st;
    sc_strlcpy(it->errmsg, why, sizeof it->errmsg);
}

/* ---- prepare: the stages before the call ---- */

/* Run one stage and record how long it took. */
#define TIMED(o, name, call)                                                                     \
    do {                                                                                         \
        int64_t t0_ = sc_now_us();                                                               \
        call;                                                                                    \
        double s_ = (double)(sc_now_us() - t0_) / 1e6;                                           \
        sc_metrics_stage_latency((o)->metrics, name, s_);                                        \
        if (s_ > 1.0)                                                                            \
            sc_info("stage.slow", "stage=%s seconds=%.2f batch=%zu", name, s_, batch->n);       \
    } while (0)

/* One stage after another, each over the whole batch: stages/estimate.c, the exact layer of
 * stages/cache.c (its hits are never embedded), stages/embed.c (only what a later stage reads),
 * the semantic layer of stages/cache.c, stages/coalesce.c, stages/route.c, stages/prune_stage.c,
 * stages/call.c (which also applies the prompt cache to the main call's body). */
void sc_optimizer_prepare(sc_optimizer_t *o, sc_batch_t *batch)
{
    TIMED(o, "estimate", sc_stage_estimate(o, batch));
    TIMED(o, "cache_exact", sc_stage_cache_exact(o, batch));
    if (o->enc)
        TIMED(o, "embed", sc_stage_embed(o, batch));
    TIMED(o, "cache", sc_stage_cache(o, batch));
    TIMED(o, "coalesce", sc_stage_coalesce(o, batch));
    TIMED(o, "route", sc_stage_route(o, batch));
    TIMED(o, "prune", sc_stage_prune(o, batch));
    TIMED(o, "call", sc_stage_call(o, batch));
}

/* ---- after a call ---- */

int sc_optimizer_after_call(sc_optimizer_t *o, sc_item_t *it)
{
    sc_gemini_call_t *c = it->call;
    const sc_request_t *rq = it->req;
    size_t len;
    if (it->summary_body) { /* the summary came back: store it, then the main call */
        free(it->summary_body);
        it->summary_body = NULL;
        const char *summary = NULL;
        if (c->status == SC_OK && c->text && c->text[0]) {
            summary = c->text;
            it->summary_cost_usd += sc_opt_cost_of(o, c->model, &c->usage, 0);
            uint64_t h = sc_summary_hash_turns(rq->turns, it->plan.summary_to);
            if (sc_summary_store_put(o->summaries, rq->tenant, rq->conversation_id, summary,
                                     strlen(summary), it->plan.summary_to, h) != SC_OK)
                sc_warn("prune.summary_store", "id=%s conversation=%s", it->id,
                        rq->conversation_id);
            else if (o->on_summary)
                o->on_summary(o->on_summary_ud, rq->tenant, rq->conversation_id, summary,
                              strlen(summary), it->plan.summary_to, h);
        } else {
            sc_warn("prune.summary_failed", "id=%s err=%s (sent without a summary)", it->id,
                    sc_status_code(c->status));
        }
        it->body_plain = sc_prune_body(rq, &it->plan, summary, &len);
        char *body = it->body_plain ? sc_opt_main_body(o, it, &len) : NULL;
        if (sc_opt_resubmit(it, it->model, body, len))
            return 1;
        sc_opt_fail_item(it, SC_ERR_NOMEM, "out of memory building the main call");
        return 0;
    }
    if (c->status == SC_ERR_UPSTREAM_REJECTED && c->http_status == 404 && it->prompt_cache[0]) {
        sc_prompt_cache_forget(o->pcache, it->prompt_cache); /* expired elsewhere: uncached */
        it->prompt_cache[0] = '\0';
        return sc_opt_resubmit(it, it->model, strdup(it->body_plain), strlen(it->body_plain));
    }
    return sc_stage_cascade(o, it); /* promotion of a cheap answer not good enough */
}

/* ---- finish ---- */

static void remove_leader(sc_optimizer_t *o, sc_item_t *it)
{
    for (size_t k = 0; k < o->nleaders; k++)
        if (o->leaders[k] == it) {
            o->leaders[k] = o->leaders[--o->nleaders];
            return;
        }
}

sc_cache_t *sc_optimizer_cache(sc_optimizer_t *o)
{
    return o->cache;
}

void sc_optimizer_on_store(sc_optimizer_t *o, void (*fn)(void *ud, const sc_cache_item_t *stored),
                           void *ud)
{
    o->on_store = fn;
    o->on_store_ud = ud;
}

sc_summary_store_t *sc_optimizer_summaries(sc_optimizer_t *o)
{
    return o->summaries;
}

sc_prompt_cache_t *sc_optimizer_prompt_cache(sc_optimizer_t *o)
{
    return o->pcache;
}

void sc_optimizer_on_summary(sc_optimizer_t *o, sc_optimizer_summary_fn fn, void *ud)
{
    o->on_summary = fn;
    o->on_summary_ud = ud;
}

void sc_optimizer_forget(sc_optimizer_t *o, sc_item_t *it)
{
    pthread_mutex_lock(&o->lock);
    remove_leader(o, it);
    pthread_mutex_unlock(&o->lock);
}

sc_item_t *sc_optimizer_finish(sc_optimizer_t *o, sc_item_t *it)
{
    sc_item_t *followers = NULL;
    if (it->leader) /* a follower: its leader already handed it its answer */
        return NULL;
    pthread_mutex_lock(&o->lock);
    remove_leader(o, it);
    followers = it->followers;
    it->followers = NULL;
    pthread_mutex_unlock(&o->lock);

    const sc_gemini_call_t *c = it->call;
    int ok = it->state == SC_ITEM_DONE && it->error == SC_OK && c && c->status == SC_OK;
    if (ok && !it->source) {
        long sent = it->est_prompt_tokens - it->pruned_tokens;
        if (sent > 0 && c->usage.prompt_tokens > 0 && !it->plan.pruned)
            sc_tokens_observe(o->tokens, it->model, sent, c->usage.prompt_tokens);
        char *answer = sc_opt_answer(it); /* owned */
        if (o->cache && it->cache_store && c->finish_reason &&
            strcmp(c->finish_reason, "STOP") == 0 && answer) {
            const sc_turn_t *t = sc_opt_last_turn(it);
            /* an answer to a tool-using or media request is found by the exact layer only: a
             * look-alike (other arguments, another image) is no answer */
            sc_cache_query_t q = {.scope = it->scope, .tenant = it->req->tenant,
                                  .text = t->content, .len = t->content_len,
                                  .vec = sc_request_exact_only(it->req) ? NULL : it->vec};
            double cost = sc_opt_cost_of(o, it->model, &c->usage, it->batch);
            sc_cache_item_t stored = {.q = q, .response = answer, .response_len = strlen(answer),
                                      .model = it->model, .usage = c->usage, .cost_usd = cost,
                                      .created_ms = sc_wall_ms()};
            if (sc_cache_insert_many(o->cache, &stored, 1, NULL) != SC_OK)
                sc_warn("cache.insert", "id=%s (the answer is not cached)", it->id);
            else if (o->on_store)
                o->on_store(o->on_store_ud, &stored);
        }
        free(answer);
    }
    /* The naive request's thinking, for the ledger: the baseline model's own when it answered
     * (and then one more observation of it), else its mean in this scope. */
    const sc_request_t *rq = it->req;
    if (rq && it->state == SC_ITEM_DONE && it->error == SC_OK) {
        const char *base = strcmp(rq->model, "auto") != 0 ? rq->model
                                                          : sc_config_str(o->cfg, "models.strong");
        if (ok && !it->source && strcmp(it->model, base) == 0) {
            sc_thinking_observe(o->thinking, base, rq->tenant, rq->agent, rq->stage,
                                c->usage.thought_tokens);
            it->base_thoughts = -1;
        } else if (it->source && strcmp(it->shared_model, base) == 0) {
            it->base_thoughts = -1; /* the shared answer came from the baseline model */
        } else {
            it->base_thoughts =
                sc_thinking_estimate(o->thinking, base, rq->tenant, rq->agent, rq->stage, NULL);
        }
    }
    for (sc_item_t *f = followers; f; f = f->next_follower) {
        f->state = SC_ITEM_DONE;
        f->error = ok ? SC_OK : it->error;
        f->source = "coalesced";
        f->route = "coalesced";
        sc_strlcpy(f->errmsg, it->errmsg, sizeof f->errmsg);
        sc_strlcpy(f->model, it->model, sizeof f->model);
        if (ok) {
            f->shared_text = sc_opt_answer(it);
            f->shared_usage = c->usage;
            sc_strlcpy(f->shared_model, it->model, sizeof f->shared_model);
            if (f->vec && it->vec)
                f->similarity = sc_opt_dot(f->vec, it->vec);
        }
        f->leader = NULL;
    }
    return followers;
}
