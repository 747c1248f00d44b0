/* cache.c - stages: the cache lookup of every cacheable forwarded request in two steps, the exact
 * layer before the embedding (an exact hit is never embedded) and the semantic layer after it,
 * one lookup each for the batch; a hit is DONE with the stored answer, which the item then owns. */
#include <stdlib.h>

#include "host/cache/guards.h"
#include "host/core/util.h"
#include "pipelines/stages/stages.h"

/* One lookup of layers for every cacheable FORWARD item; a hit is DONE. The exact step records
 * its hits only (its misses go on to the semantic step, which records the outcome of each). */
static void lookup(sc_optimizer_t *o, sc_batch_t *batch, unsigned layers)
{
    size_t n = 0;
    for (size_t i = 0; i < batch->n; i++)
        n += batch->items[i]->state == SC_ITEM_FORWARD && batch->items[i]->scope &&
             !batch->items[i]->adopted;
    if (!o->cache || n == 0)
        return;
    const int semantic = (layers & SC_CACHE_LAYER_SEMANTIC) != 0;
    sc_cache_query_t *q = calloc(n, sizeof *q);
    sc_cache_result_t *res = calloc(n, sizeof *res);
    sc_item_t **who = calloc(n, sizeof *who);
    if (!q || !res || !who)
        goto out;
    n = 0;
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_FORWARD || !it->scope || it->adopted)
            continue;
        q[n] = (sc_cache_query_t){.scope = it->scope, .tenant = it->req->tenant,
                                  .text = sc_opt_last_turn(it)->content,
                                  .len = sc_opt_last_turn(it)->content_len,
                                  .vec = semantic && it->req->cache == SC_CACHE_ON &&
                                                 !sc_request_exact_only(it->req)
                                             ? it->vec
                                             : NULL};
        who[n++] = it;
    }
    if (sc_cache_lookup_layers(o->cache, q, n, layers, res) != SC_OK)
        goto out;
    for (size_t k = 0; k < n; k++) {
        sc_item_t *it = who[k];
        if (res[k].refused != SC_GUARD_OK)
            sc_metrics_guard_refusal(o->metrics, sc_guard_reason_name(res[k].refused));
        if (res[k].hit == SC_CACHE_MISS) {
            if (semantic)
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

void sc_stage_cache_exact(sc_optimizer_t *o, sc_batch_t *batch)
{
    lookup(o, batch, SC_CACHE_LAYER_EXACT);
}

/* Both layers again: an answer stored while the batch was being embedded is still an exact hit. */
void sc_stage_cache(sc_optimizer_t *o, sc_batch_t *batch)
{
    lookup(o, batch, SC_CACHE_LAYER_EXACT | SC_CACHE_LAYER_SEMANTIC);
}
