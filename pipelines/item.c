/* item.c - life cycle of pipeline items and batches. */
#include <stdlib.h>

#include "pipelines/pipeline.h"

sc_item_t *sc_item_new(void)
{
    sc_item_t *it = calloc(1, sizeof *it);
    if (it) {
        it->similarity = -1;
        it->route_score = -1;
        it->tier = -1;
        it->base_thoughts = -1;
    }
    return it;
}

void sc_item_free(sc_item_t *item)
{
    if (!item)
        return;
    free(item->raw);
    free(item->vec);
    free(item->shared_text);
    free(item->body_plain);
    free(item->summary_body);
    sc_prune_plan_clear(&item->plan);
    sc_request_free(item->req);
    sc_gemini_call_free(item->call);
    free(item);
}

void sc_batch_free(sc_batch_t *batch)
{
    if (!batch)
        return;
    for (size_t i = 0; i < batch->n; i++)
        sc_item_free(batch->items[i]);
    free(batch->items);
    free(batch);
}
