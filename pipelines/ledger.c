/* ledger.c - last stage before publishing: the result of an item and what it cost, against the
 * baseline of DESIGN §1 (strong model, full context, no cache). */
#include <string.h>

#include "host/log.h"
#include "host/price.h"
#include "host/util.h"
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

char *sc_stage_ledger(const sc_item_t *it, const sc_config_t *cfg, sc_metrics_t *metrics,
                      size_t *len)
{
    sc_result_t r;
    sc_result_init(&r);
    const sc_request_t *req = it->req;
    const sc_gemini_call_t *call = it->call;
    r.id = it->id;
    r.tenant = req->tenant;
    r.user = req->user;
    r.agent = req->agent;
    r.stage = req->stage;
    r.conversation_id = req->conversation_id;
    r.model = it->model;
    r.source = "llm";
    r.route = it->route;
    r.attempts = call ? call->attempts : 0;
    r.latency_ms = (long)(sc_now_ms() - it->consumed_ms);
    if (call && call->status == SC_OK) {
        r.ok = 1;
        r.text = call->text ? call->text : "";
        r.finish_reason = call->finish_reason;
        r.usage = call->usage;
        r.cost_usd = cost_of(cfg, it->model, &r.usage, it->batch);
        /* Batch Mode: the same call at the standard price, less what it cost */
        if (it->batch)
            r.savings.batch_usd = cost_of(cfg, it->model, &r.usage, 0) - r.cost_usd;
        /* The baseline is the naive request: the same full prompt, uncached, on the strong model
         * (or on the model the producer pinned, since scrimp does not reroute those). */
        sc_usage_t base = r.usage;
        base.cached_tokens = 0;
        const char *base_model =
            strcmp(it->route, "pinned") == 0 ? it->model : sc_config_str(cfg, "models.strong");
        r.baseline_cost_usd = cost_of(cfg, base_model, &base, 0);
    } else {
        r.ok = 0;
        r.error_code = sc_status_code(it->error);
        r.error_message = it->errmsg[0] ? it->errmsg : sc_strerror(it->error);
    }
    sc_metrics_observe_result(metrics, &r);
    return sc_result_to_json(&r, len);
}
