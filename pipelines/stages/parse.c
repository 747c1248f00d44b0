/* parse.c - stage 1: parse and validate each consumed message against the request contract. */
#include "host/core/util.h"
#include "pipelines/pipeline.h"

void sc_stage_parse(sc_batch_t *batch, const sc_limits_t *lim)
{
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_NEW)
            continue;
        it->error = sc_request_parse(it->raw, it->raw_len, lim, &it->req, it->id, sizeof it->id,
                                     it->errmsg, sizeof it->errmsg);
        if (it->error) {
            it->state = SC_ITEM_INVALID;
            continue;
        }
        sc_strlcpy(it->id, it->req->id, sizeof it->id);
        it->state = SC_ITEM_FORWARD;
    }
}
