/* ledger.c - last stage before publishing: the result of an item, what it cost, what the naive
 * request would have cost (DESIGN §1: the strong model, full context, no cache) and which
 * technique saved what. The savings are attributed in a fixed order so that they add up to
 * baseline − cost:
 *   baseline  = baseline model, full prompt (sent + pruned tokens), uncached, standard price
 *   prune     = baseline − (baseline model, the prompt as sent, uncached) − summary call
 *   route     = that − (the model that answered, as sent, uncached) − failed cascade attempts
 *   prompt    = that − (the model that answered, cached tokens at the cached price) − storage
 *   batch     = that − the same at the Batch Mode price (= cost_usd)
 * Output tokens count the same in every line (the answer actually given); thought tokens do not:
 * when the answer came from another model than the baseline one (a cheaper tier, or the cache),
 * the baseline model's thinking is its mean per call in the request's scope as observed so far
 * (host/core/thinking.h, set by sc_optimizer_finish: it->base_thoughts), or the documented
 * default ledger.strong_thought_tokens before any call of it. A cache hit or a coalesced answer
 * costs nothing and saves its whole baseline. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/log.h"
#include "host/core/price.h"
#include "host/core/util.h"
#include "pipelines/pipeline.h"

static double cost_of(const sc_config_t *cfg, const char *model, const sc_usage_t *u, int batch)
{
    sc_price_t p;
    if (sc_price_lookup(cfg, model, &p) != SC_OK) {
        sc_warn("ledger.no_price", "model=%s (add it under \"prices\" in the configuration)",
                model);
        return 0.0;
    }
    return sc_price_cost(&p, u, batch);
}

static sc_usage_t uncached(sc_usage_t u)
{
    u.cached_tokens = 0;
    return u;
}

static void tags(sc_result_t *r, const sc_item_t *it)
{
    const sc_request_t *req = it->req;
    r->id = it->id;
    r->tenant = req->tenant;
    r->user = req->user;
    r->agent = req->agent;
    r->stage = req->stage;
    r->conversation_id = req->conversation_id;
    r->model = it->model[0] ? it->model : NULL;
    r->route = it->route;
    r->route_score = it->route_score;
    r->route_basis = it->route_basis;
    r->promoted = it->promoted;
    r->pruned_tokens = it->pruned_tokens;
    r->prompt_cache = it->prompt_cache[0] ? it->prompt_cache : NULL;
    r->latency_ms = (long)(sc_now_ms() - it->consumed_ms);
}

/* An answer shared from the cache or from a coalescing leader. */
static void shared_answer(sc_result_t *r, const sc_item_t *it, const sc_config_t *cfg,
                          const char *base_model)
{
    r->ok = 1;
    r->source = it->source;
    r->text = it->shared_text ? it->shared_text : "";
    r->finish_reason = "STOP";
    r->similarity = it->similarity;
    r->model = it->shared_model[0] ? it->shared_model : r->model;
    /* nothing was billed: usage stays zero; the naive request would have sent the whole prompt
     * to the baseline model and got an answer as long as the shared one */
    sc_usage_t base = {.prompt_tokens = it->est_prompt_tokens,
                       .output_tokens = it->shared_usage.output_tokens,
                       .thought_tokens = it->base_thoughts >= 0 ? lround(it->base_thoughts)
                                                                : it->shared_usage.thought_tokens};
    r->baseline_cost_usd = cost_of(cfg, base_model, &base, 0);
    r->cost_usd = 0;
    r->savings.cache_usd = r->baseline_cost_usd;
}

static void llm_answer(sc_result_t *r, const sc_item_t *it, const sc_config_t *cfg,
                       const char *base_model)
{
    const sc_gemini_call_t *call = it->call;
    r->ok = 1;
    r->source = "llm";
    r->text = call->text ? call->text : "";
    r->finish_reason = call->finish_reason;
    r->usage = call->usage;
    r->attempts = call->attempts;
    /* the usage as billed includes the failed attempts of a promoted request */
    r->usage.prompt_tokens += it->extra_usage.prompt_tokens;
    r->usage.cached_tokens += it->extra_usage.cached_tokens;
    r->usage.output_tokens += it->extra_usage.output_tokens;
    r->usage.thought_tokens += it->extra_usage.thought_tokens;

    sc_usage_t sent = uncached(call->usage);
    sc_usage_t base_sent = sent; /* the baseline model thinks as it would have */
    if (it->base_thoughts >= 0)
        base_sent.thought_tokens = lround(it->base_thoughts);
    sc_usage_t full = base_sent;
    full.prompt_tokens += it->pruned_tokens;
    double extras = it->summary_cost_usd + it->extra_cost_usd;
    double a = cost_of(cfg, base_model, &full, 0);                 /* baseline */
    double b = cost_of(cfg, base_model, &base_sent, 0) + it->summary_cost_usd;
    double c = cost_of(cfg, it->model, &sent, 0) + extras;
    double d = cost_of(cfg, it->model, &call->usage, 0) + extras + it->storage_usd;
    double e = cost_of(cfg, it->model, &call->usage, it->batch) + extras + it->storage_usd;
    r->baseline_cost_usd = a;
    r->cost_usd = e;
    r->savings.prune_usd = a - b;
    r->savings.route_usd = b - c;
    r->savings.prompt_cache_usd = c - d;
    r->savings.batch_usd = d - e;
}

char *sc_stage_ledger(const sc_item_t *it, const sc_config_t *cfg, sc_metrics_t *metrics,
                      size_t *len)
{
    sc_result_t r;
    sc_result_init(&r);
    tags(&r, it);
    const char *pinned = strcmp(it->req->model, "auto") != 0 ? it->req->model : NULL;
    const char *base_model = pinned ? pinned : sc_config_str(cfg, "models.strong");
    const sc_gemini_call_t *call = it->call;
    if (it->error == SC_OK && it->source) {
        shared_answer(&r, it, cfg, base_model);
    } else if (it->error == SC_OK && call && call->status == SC_OK) {
        llm_answer(&r, it, cfg, base_model);
    } else {
        r.ok = 0;
        r.source = it->source ? it->source : "llm";
        r.attempts = call ? call->attempts : 0;
        r.error_code = sc_status_code(it->error);
        r.error_message = it->errmsg[0] ? it->errmsg : sc_strerror(it->error);
        /* what was paid on the way (a summary call, failed cheap attempts, cache storage) is
         * still paid, and counted against the technique that spent it */
        r.cost_usd = it->summary_cost_usd + it->extra_cost_usd + it->storage_usd;
        r.savings.prune_usd = -it->summary_cost_usd;
        r.savings.route_usd = -it->extra_cost_usd;
        r.savings.prompt_cache_usd = -it->storage_usd;
        r.usage = it->extra_usage;
    }
    /* a request in Gemini's own shape gets the whole candidate: the call's, or the one the
     * cache or the coalescing leader shared (stored as the candidates' JSON) */
    json_t *shared = NULL; /* new, released below */
    char *shared_text = NULL;
    if (r.ok && it->req->native) {
        if (it->source && it->shared_text) {
            shared = json_loads(it->shared_text, 0, NULL);
            if (json_is_array(shared)) {
                r.candidates = shared;
                shared_text = sc_gemini_candidate_text(json_array_get(shared, 0));
                r.text = shared_text ? shared_text : "";
            }
        } else if (call) {
            r.candidates = call->candidates;
        }
    }
    if (call && !it->source)
        r.usage_metadata = call->usage_meta;
    sc_metrics_observe_result(metrics, &r);
    char *out = sc_result_to_json(&r, len);
    json_decref(shared);
    free(shared_text);
    return out;
}
