/* optimizer.c - the optimizing stages between parsing and the upstream call, and what follows a
 * call: one context shared by the online and the backfill drivers. Read top to bottom: set-up,
 * prepare (estimate, embed, cache, coalesce, route, prune, prompt cache, call), after a call
 * (summary → main call, cascade), finish (cache store, calibration, followers). */
#include "pipelines/optimizer.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "host/cache/cache.h"
#include "host/cache/guards.h"
#include "host/core/log.h"
#include "host/core/paths.h"
#include "host/core/price.h"
#include "host/gemini/prompt_cache.h"
#include "host/cache/summary_store.h"
#include "host/core/tokens.h"
#include "host/core/util.h"
#include "models/router.h"

#define OPT_NTIERS 3
#define OPT_NORM_MAX 4096           /* bytes of normalised text hashed for coalescing */
#define OPT_LEADERS_MAX 65536       /* items in flight that others may coalesce onto */
#define OPT_PATH_MAX 4096

static const char *const tier_names[OPT_NTIERS] = {"lite", "cheap", "strong"};

/* Openings of a refusal: a cheap answer that starts so is promoted (lower-cased compare). */
static const char *const refusals[] = {"i'm sorry", "i am sorry", "i cannot", "i can't",
                                       "i can not", "i'm unable", "i am unable", "as an ai",
                                       "sorry, i"};

struct sc_optimizer {
    const sc_config_t *cfg;
    sc_metrics_t *metrics;
    int batch_mode;
    sc_encoder_t *enc;
    sc_cache_t *cache;
    sc_router_t *router;
    sc_tokens_t *tokens;
    sc_summary_store_t *summaries;
    sc_prompt_cache_t *pcache;
    int cascade, coalesce, prune;
    long budget;
    int keep_last;
    double temperature_max, threshold, band;
    int guards;
    const char *tiers[OPT_NTIERS]; /* model ids, borrowed from cfg */
    int outside_tier; /* router.outside_tier: prompts outside the router's domain; -1: score */
    const char *default_model;
    /* coalescing: items in flight others may share (compute adds, publish removes) */
    pthread_mutex_t lock;
    sc_item_t **leaders;
    size_t nleaders;
};

/* ---- set-up ---- */

static sc_status_t open_encoder(sc_optimizer_t *o, char *errbuf, size_t errlen)
{
    char dir[OPT_PATH_MAX];
    sc_encoder_opts_t eo;
    sc_encoder_opts_default(&eo);
    eo.model_dir = sc_resolve_path(sc_config_str(o->cfg, "models.embedding"), dir, sizeof dir);
    if (sc_backend_parse(sc_config_str(o->cfg, "backend"), &eo.backend) != 0)
        eo.backend = SC_BACKEND_AUTO;
    eo.max_batch = (int)sc_config_int(o->cfg, "batch.max_messages");
    return sc_encoder_new(&eo, &o->enc, errbuf, errlen);
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
    o->temperature_max = sc_config_num(cfg, "cache.temperature_max");
    o->threshold = sc_config_num(cfg, "cache.threshold");
    o->band = sc_config_num(cfg, "cache.strict_band");
    o->guards = sc_config_bool(cfg, "cache.guards");
    if (!(o->tokens = sc_tokens_new()) ||
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
            if (strcmp(outside, tier_names[j]) == 0)
                o->outside_tier = j;
        sc_info("router.operating_point",
                "quality_target=%g lite_share=%g t1=%.4f t2=%.4f strong_share_cv=%.3f "
                "outside_tier=%s domain=%s",
                target, lite, (double)sc_router_threshold(o->router, 0),
                (double)sc_router_threshold(o->router, 1), target > 0.0 ? share : NAN, outside,
                sc_router_has_domain(o->router) ? "on" : "none in the file");
    }
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
    sc_prompt_cache_free(o->pcache); /* deletes the caches it created */
    sc_summary_store_close(o->summaries);
    sc_router_free(o->router);
    sc_cache_close(o->cache);
    sc_encoder_free(o->enc);
    sc_tokens_free(o->tokens);
    free(o->leaders);
    pthread_mutex_destroy(&o->lock);
    free(o);
}

/* ---- helpers ---- */

static double cost_of(const sc_optimizer_t *o, const char *model, const sc_usage_t *u, int batch)
{
    sc_price_t p;
    return sc_price_lookup(o->cfg, model, &p) == SC_OK ? sc_price_cost(&p, u, batch) : 0.0;
}

static const sc_turn_t *last_turn(const sc_item_t *it)
{
    return &it->req->turns[it->req->n_turns - 1];
}

static uint64_t norm_hash(const sc_item_t *it)
{
    char buf[OPT_NORM_MAX];
    const sc_turn_t *t = last_turn(it);
    size_t n = sc_cache_normalize(t->content, t->content_len, buf, sizeof buf);
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)buf[i]) * 1099511628211ULL;
    return h ^ it->scope;
}

static float dot(const float *a, const float *b)
{
    float s = 0;
    for (int i = 0; i < SC_EMBED_DIM; i++)
        s += a[i] * b[i];
    return s;
}

static sc_gemini_call_t *new_call(sc_item_t *it, const char *model, char *body, size_t len)
{
    sc_gemini_call_t *c = sc_gemini_call_new(model, body, len);
    if (!c)
        return NULL;
    c->opaque = it;
    c->deadline_ms = it->deadline_ms;
    c->est_tokens = (long)(len / SC_CHARS_PER_TOKEN);
    return c;
}

/* body with the system instruction moved into cachedContent name. New string or NULL. */
static char *with_prompt_cache(const char *body, const char *name, size_t *len)
{
    json_t *doc = json_loads(body, 0, NULL); /* new */
    char *out = NULL;
    if (json_is_object(doc) && json_object_del(doc, "systemInstruction") == 0 &&
        json_object_set_new(doc, "cachedContent", json_string(name)) == 0)
        out = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (out)
        *len = strlen(out);
    return out;
}

static void fail_item(sc_item_t *it, sc_status_t st, const char *why)
{
    it->state = SC_ITEM_DONE;
    it->error = st;
    sc_strlcpy(it->errmsg, why, sizeof it->errmsg);
}

/* ---- prepare: the stages before the call ---- */

static void stage_estimate(sc_optimizer_t *o, sc_batch_t *batch)
{
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_FORWARD)
            continue;
        it->similarity = -1;
        it->route_score = -1;
        it->tier = -1;
        long sys = 0, sum = 0;
        long *turns = malloc(it->req->n_turns * sizeof *turns);
        if (turns) {
            sc_prune_count(o->tokens, it->req->model, it->req, turns, &sys);
            for (size_t k = 0; k < it->req->n_turns; k++)
                sum += turns[k];
            free(turns);
        }
        it->est_prompt_tokens = sys + sum;
        const sc_request_t *rq = it->req;
        int cacheable = o->cache && rq->cache != SC_CACHE_OFF &&
                        (!rq->has_temperature || rq->temperature <= o->temperature_max);
        it->scope = cacheable ? sc_cache_scope(rq, rq->model) : 0;
        it->cache_store = cacheable;
    }
}

static void stage_cache(sc_optimizer_t *o, sc_batch_t *batch)
{
    size_t n = 0;
    for (size_t i = 0; i < batch->n; i++)
        n += batch->items[i]->state == SC_ITEM_FORWARD && batch->items[i]->scope;
    if (!o->cache || n == 0)
        return;
    sc_cache_query_t *q = calloc(n, sizeof *q);
    sc_cache_result_t *res = calloc(n, sizeof *res);
    sc_item_t **who = calloc(n, sizeof *who);
    if (!q || !res || !who)
        goto out;
    n = 0;
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_FORWARD || !it->scope)
            continue;
        q[n] = (sc_cache_query_t){.scope = it->scope, .tenant = it->req->tenant,
                                  .text = last_turn(it)->content,
                                  .len = last_turn(it)->content_len,
                                  .vec = it->req->cache == SC_CACHE_ON ? it->vec : NULL};
        who[n++] = it;
    }
    if (sc_cache_lookup(o->cache, q, n, res) != SC_OK)
        goto out;
    for (size_t k = 0; k < n; k++) {
        sc_item_t *it = who[k];
        if (res[k].refused != SC_GUARD_OK)
            sc_metrics_guard_refusal(o->metrics, sc_guard_reason_name(res[k].refused));
        if (res[k].hit == SC_CACHE_MISS) {
            sc_metrics_cache(o->metrics, it->req->tenant, "miss");
            continue;
        }
        int exact = res[k].hit == SC_CACHE_HIT_EXACT;
        sc_metrics_cache(o->metrics, it->req->tenant, exact ? "hit_exact" : "hit_semantic");
        it->state = SC_ITEM_DONE;
        it->error = SC_OK;
        it->source = exact ? "cache-exact" : "cache-semantic";
        it->similarity = res[k].similarity;
        it->shared_text = res[k].response; /* taken */
        res[k].response = NULL;
        it->shared_usage = res[k].usage;
        sc_strlcpy(it->shared_model, res[k].model, sizeof it->shared_model);
        sc_strlcpy(it->model, res[k].model, sizeof it->model);
        it->route = "cache";
    }
out:
    for (size_t k = 0; res && k < n; k++)
        free(res[k].response);
    free(q);
    free(res);
    free(who);
}

/* A miss that an item in flight will answer: follow it instead of calling upstream. Exact
 * (normalised text) or near-identical (cosine ≥ the cache threshold, guards passed), always in
 * the same scope. Otherwise the item becomes a leader others may follow. */
static void stage_coalesce(sc_optimizer_t *o, sc_batch_t *batch)
{
    if (!o->coalesce)
        return;
    size_t kept = 0;
    pthread_mutex_lock(&o->lock);
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        sc_item_t *lead = NULL;
        if (it->state == SC_ITEM_FORWARD && it->scope) {
            uint64_t h = norm_hash(it);
            const sc_turn_t *lt = last_turn(it);
            for (size_t k = 0; k < o->nleaders && !lead; k++) {
                sc_item_t *l = o->leaders[k];
                if (l->scope != it->scope)
                    continue;
                if (norm_hash(l) == h) {
                    lead = l;
                } else if (it->req->cache == SC_CACHE_ON && it->vec && l->vec) {
                    float sim = dot(it->vec, l->vec);
                    const sc_turn_t *ll = last_turn(l);
                    if (sim >= o->threshold &&
                        (!o->guards || sc_guard_check(lt->content, lt->content_len, ll->content,
                                                      ll->content_len, sim, o->threshold,
                                                      o->band) == SC_GUARD_OK))
                        lead = l;
                }
            }
            if (!lead && o->nleaders < OPT_LEADERS_MAX)
                o->leaders[o->nleaders++] = it;
        }
        if (lead) {
            /* From here on the follower belongs to its leader: the publish thread may finish and
             * free it at any moment, so it leaves the batch before the lock is released. */
            it->state = SC_ITEM_FOLLOWING;
            it->leader = lead;
            it->next_follower = lead->followers;
            lead->followers = it;
        } else {
            batch->items[kept++] = it;
        }
    }
    batch->n = kept;
    pthread_mutex_unlock(&o->lock);
}

static void stage_route(sc_optimizer_t *o, sc_batch_t *batch)
{
    size_t n = 0;
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_FORWARD)
            continue;
        if (strcmp(it->req->model, "auto") != 0) {
            sc_strlcpy(it->model, it->req->model, sizeof it->model);
            it->route = "pinned";
        } else {
            sc_strlcpy(it->model, o->default_model, sizeof it->model);
            it->route = "default";
            it->tier = OPT_NTIERS - 1;
            n += o->router && it->vec;
        }
    }
    if (n == 0)
        return;
    float *emb = malloc(n * SC_EMBED_DIM * sizeof *emb);
    float *sig = malloc(n * SC_ROUTER_NSIGNALS * sizeof *sig);
    float *score = malloc(n * sizeof *score);
    sc_item_t **who = malloc(n * sizeof *who);
    int32_t *ids = malloc(SC_ROUTER_COUNT_TOKENS * sizeof *ids); /* counted as in training */
    if (!emb || !sig || !score || !who || !ids)
        goto out;
    n = 0;
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_FORWARD || strcmp(it->req->model, "auto") != 0 || !it->vec)
            continue;
        const sc_turn_t *t = last_turn(it);
        int ntok = sc_tokenizer_encode(sc_encoder_tokenizer(o->enc), t->content, t->content_len,
                                       ids, SC_ROUTER_COUNT_TOKENS);
        memcpy(emb + n * SC_EMBED_DIM, it->vec, SC_EMBED_DIM * sizeof *emb);
        sc_router_signals(t->content, t->content_len, ntok, sig + n * SC_ROUTER_NSIGNALS);
        who[n++] = it;
    }
    if (sc_router_score_batch(o->router, emb, sig, n, score) != SC_OK)
        goto out;
    for (size_t k = 0; k < n; k++) {
        const char *tier = sc_router_tier(o->router, score[k], tier_names, OPT_NTIERS);
        int t = OPT_NTIERS - 1;
        for (int j = 0; j < OPT_NTIERS; j++)
            if (strcmp(tier, tier_names[j]) == 0)
                t = j;
        /* a prompt unlike the router's training prompts: its score says nothing */
        if (o->outside_tier >= 0 && !sc_router_in_domain(o->router, sig + k * SC_ROUTER_NSIGNALS))
            t = o->outside_tier;
        who[k]->tier = t;
        who[k]->route = tier_names[t];
        who[k]->route_score = score[k];
        sc_strlcpy(who[k]->model, o->tiers[t], sizeof who[k]->model);
    }
out:
    free(emb);
    free(sig);
    free(score);
    free(who);
    free(ids);
}

/* The token budget of a request: prune.agents.<agent>, else prune.max_tokens. */
static long budget_for(const sc_optimizer_t *o, const sc_item_t *it)
{
    json_t *b = it->req->agent ? json_object_get(sc_config_node(o->cfg, "prune.agents"),
                                                 it->req->agent)
                               : NULL; /* borrowed */
    return json_is_integer(b) ? (long)json_integer_value(b) : o->budget;
}

static int needs_prune(const sc_optimizer_t *o, const sc_item_t *it)
{
    return it->state == SC_ITEM_FORWARD && it->est_prompt_tokens > budget_for(o, it) &&
           it->req->n_turns > (size_t)o->keep_last + 1;
}

/* Plan the pruning of every long conversation in the batch (the turns of all of them embedded in
 * one encoder call), and pick up the stored summary; a missing one becomes a summary call. */
static void stage_prune(sc_optimizer_t *o, sc_batch_t *batch)
{
    if (!o->prune || !o->enc)
        return;
    size_t nturns = 0;
    for (size_t i = 0; i < batch->n; i++) {
        if (needs_prune(o, batch->items[i]))
            nturns += batch->items[i]->req->n_turns;
    }
    if (nturns == 0)
        return;
    const char **texts = malloc(nturns * sizeof *texts);
    size_t *lens = malloc(nturns * sizeof *lens);
    float *vecs = malloc(nturns * SC_EMBED_DIM * sizeof *vecs);
    if (!texts || !lens || !vecs)
        goto out;
    size_t at = 0;
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (!needs_prune(o, it))
            continue;
        for (size_t k = 0; k < it->req->n_turns; k++, at++) {
            texts[at] = it->req->turns[k].content;
            lens[at] = it->req->turns[k].content_len;
        }
    }
    if (sc_encoder_embed(o->enc, texts, lens, nturns, vecs) != SC_OK)
        goto out;
    at = 0;
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (!needs_prune(o, it))
            continue;
        const sc_request_t *rq = it->req;
        const float *tv = vecs + at * SC_EMBED_DIM;
        at += rq->n_turns;
        long sys = 0, *tt = malloc(rq->n_turns * sizeof *tt);
        if (!tt)
            continue;
        sc_prune_count(o->tokens, it->model, rq, tt, &sys);
        sc_status_t st = sc_prune_plan(rq, tt, sys, tv, budget_for(o, it), o->keep_last,
                                       &it->plan);
        free(tt);
        if (st || !it->plan.pruned)
            continue;
        it->pruned_tokens = it->plan.pruned_tokens;
        sc_summary_t sum = {0};
        int have = o->summaries && rq->conversation_id &&
                   sc_summary_store_lookup(o->summaries, rq->tenant, rq->conversation_id,
                                           rq->turns, rq->n_turns, &sum) == SC_OK;
        if (have && sum.n_turns >= it->plan.summary_to) {
            size_t len;
            it->body_plain = sc_prune_body(rq, &it->plan, sum.text, &len);
        } else if (o->summaries && rq->conversation_id && !o->batch_mode) {
            size_t len;
            it->summary_body = sc_prune_summary_body(rq, &it->plan, have ? sum.text : NULL,
                                                     have ? sum.n_turns : 0, &len);
            if (!it->summary_body) /* nothing new to summarise: the stored one serves */
                it->body_plain = sc_prune_body(rq, &it->plan, have ? sum.text : NULL, &len);
        } else {
            size_t len;
            it->body_plain = sc_prune_body(rq, &it->plan, NULL, &len);
        }
        sc_summary_clear(&sum);
    }
out:
    free(texts);
    free(lens);
    free(vecs);
}

/* The main call's body: the (pruned) plain body, with the system prompt moved into an explicit
 * cache when one is live for (model, system prompt). */
static char *main_body(sc_optimizer_t *o, sc_item_t *it, size_t *len)
{
    if (!it->body_plain) {
        it->body_plain = sc_gemini_body_from_request(it->req, len);
        if (!it->body_plain)
            return NULL;
    }
    *len = strlen(it->body_plain);
    it->prompt_cache[0] = '\0';
    if (o->pcache && it->req->system && !it->promoted) {
        double charge = 0;
        long est = sc_tokens_estimate(o->tokens, it->model, it->req->system, strlen(it->req->system));
        if (sc_prompt_cache_acquire(o->pcache, it->model, it->req->system, strlen(it->req->system),
                                    est, it->prompt_cache, sizeof it->prompt_cache,
                                    &charge) == SC_OK) {
            char *b = with_prompt_cache(it->body_plain, it->prompt_cache, len);
            if (b) {
                it->storage_usd += charge;
                return b;
            }
        }
        it->prompt_cache[0] = '\0';
    }
    return strdup(it->body_plain);
}

static void stage_call(sc_optimizer_t *o, sc_batch_t *batch)
{
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_FORWARD)
            continue;
        size_t len;
        if (it->summary_body) {
            /* the cheapest tier writes summaries (flash-lite does not think by default) */
            it->call = new_call(it, o->tiers[0], strdup(it->summary_body),
                                strlen(it->summary_body));
        } else {
            char *body = main_body(o, it, &len);
            it->call = body ? new_call(it, it->model, body, len) : NULL;
        }
        if (!it->call)
            fail_item(it, SC_ERR_NOMEM, "out of memory building the upstream call");
    }
}

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

void sc_optimizer_prepare(sc_optimizer_t *o, sc_batch_t *batch)
{
    TIMED(o, "estimate", stage_estimate(o, batch));
    if (o->enc)
        TIMED(o, "embed", sc_stage_embed(batch, o->enc));
    TIMED(o, "cache", stage_cache(o, batch));
    TIMED(o, "coalesce", stage_coalesce(o, batch));
    TIMED(o, "route", stage_route(o, batch));
    TIMED(o, "prune", stage_prune(o, batch));
    TIMED(o, "call", stage_call(o, batch));
}

/* ---- after a call ---- */

static int is_refusal(const char *text)
{
    while (*text && isspace((unsigned char)*text))
        text++;
    for (size_t i = 0; i < SC_ARRAY_LEN(refusals); i++)
        if (strncasecmp(text, refusals[i], strlen(refusals[i])) == 0)
            return 1;
    return 0;
}

/* Is a cheap tier's answer good enough to keep? */
static int answer_valid(const sc_item_t *it)
{
    const sc_gemini_call_t *c = it->call;
    if (!c->finish_reason || strcmp(c->finish_reason, "STOP") != 0 || !c->text)
        return 0;
    const char *p = c->text;
    while (*p && isspace((unsigned char)*p))
        p++;
    if (!*p || is_refusal(p))
        return 0;
    if (it->req->response_mime_type && strcmp(it->req->response_mime_type, "application/json") == 0) {
        json_t *j = json_loads(c->text, JSON_DECODE_ANY, NULL);
        if (!j)
            return 0;
        json_decref(j);
    }
    return 1;
}

static int resubmit(sc_item_t *it, const char *model, char *body, size_t len)
{
    sc_gemini_call_t *c = body ? new_call(it, model, body, len) : NULL;
    if (!c)
        return 0; /* the old call stays: its outcome is the item's */
    sc_gemini_call_free(it->call);
    it->call = c;
    return 1;
}

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
            it->summary_cost_usd += cost_of(o, c->model, &c->usage, 0);
            uint64_t h = sc_summary_hash_turns(rq->turns, it->plan.summary_to);
            if (sc_summary_store_put(o->summaries, rq->tenant, rq->conversation_id, summary,
                                     strlen(summary), it->plan.summary_to, h) != SC_OK)
                sc_warn("prune.summary_store", "id=%s conversation=%s", it->id,
                        rq->conversation_id);
        } else {
            sc_warn("prune.summary_failed", "id=%s err=%s (sent without a summary)", it->id,
                    sc_status_code(c->status));
        }
        it->body_plain = sc_prune_body(rq, &it->plan, summary, &len);
        char *body = it->body_plain ? main_body(o, it, &len) : NULL;
        if (resubmit(it, it->model, body, len))
            return 1;
        fail_item(it, SC_ERR_NOMEM, "out of memory building the main call");
        return 0;
    }
    if (c->status == SC_ERR_UPSTREAM_REJECTED && c->http_status == 404 && it->prompt_cache[0]) {
        sc_prompt_cache_forget(o->pcache, it->prompt_cache); /* expired elsewhere: uncached */
        it->prompt_cache[0] = '\0';
        return resubmit(it, it->model, strdup(it->body_plain), strlen(it->body_plain));
    }
    if (c->status == SC_OK && o->cascade && it->tier >= 0 && it->tier < OPT_NTIERS - 1 &&
        !answer_valid(it)) {
        /* Promote: the failed attempt's cost stays in the ledger. */
        it->extra_cost_usd += cost_of(o, c->model, &c->usage, 0);
        it->extra_usage.prompt_tokens += c->usage.prompt_tokens;
        it->extra_usage.cached_tokens += c->usage.cached_tokens;
        it->extra_usage.output_tokens += c->usage.output_tokens;
        it->extra_usage.thought_tokens += c->usage.thought_tokens;
        it->promoted = 1;
        it->tier++;
        sc_strlcpy(it->model, o->tiers[it->tier], sizeof it->model);
        sc_info("cascade.promote", "id=%s to=%s finish=%s", it->id, it->model,
                c->finish_reason ? c->finish_reason : "-");
        char *body = main_body(o, it, &len);
        return resubmit(it, it->model, body, len);
    }
    return 0;
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
        if (o->cache && it->cache_store && c->finish_reason &&
            strcmp(c->finish_reason, "STOP") == 0 && c->text) {
            const sc_turn_t *t = last_turn(it);
            sc_cache_query_t q = {.scope = it->scope, .tenant = it->req->tenant,
                                  .text = t->content, .len = t->content_len, .vec = it->vec};
            double cost = cost_of(o, it->model, &c->usage, it->batch);
            if (sc_cache_insert(o->cache, &q, c->text, strlen(c->text), it->model, &c->usage,
                                cost, NULL) != SC_OK)
                sc_warn("cache.insert", "id=%s (the answer is not cached)", it->id);
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
            f->shared_text = strdup(c->text ? c->text : "");
            f->shared_usage = c->usage;
            sc_strlcpy(f->shared_model, it->model, sizeof f->shared_model);
            if (f->vec && it->vec)
                f->similarity = dot(f->vec, it->vec);
        }
        f->leader = NULL;
    }
    return followers;
}
