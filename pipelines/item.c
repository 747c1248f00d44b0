/* item.c - life cycle of pipeline items and batches. */
#include <stdlib.h>

#include "pipelines/pipeline.h"

void sc_item_free(sc_item_t *item)
{
    if (!item)
        return;
    free(item->raw);
    free(item->vec);
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
