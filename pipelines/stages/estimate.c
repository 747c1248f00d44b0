/* estimate.c - stage: the first look at every forwarded request: its outcomes reset to "none",
 * its prompt's tokens estimated (system + every turn), and its cache scope (0: not cacheable). */
#include <stdlib.h>

#include "pipelines/stages/stages.h"

void sc_stage_estimate(sc_optimizer_t *o, sc_batch_t *batch)
{
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_FORWARD)
            continue;
        it->similarity = -1;
        it->route_score = -1;
        it->tier = -1;
        it->route_basis = NULL;
        it->router_tier = -1;
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
