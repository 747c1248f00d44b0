/* embed.c - stage: the embedding of each forwarded request's last user turn (the text the
 * semantic cache and the router read), for the whole micro-batch in one encoder call. */
#include <stdlib.h>
#include <string.h>

#include "host/core/log.h"
#include "pipelines/pipeline.h"

sc_status_t sc_stage_embed(sc_batch_t *batch, sc_encoder_t *enc)
{
    size_t n = 0;
    for (size_t i = 0; i < batch->n; i++)
        n += batch->items[i]->state == SC_ITEM_FORWARD && !batch->items[i]->vec;
    if (n == 0 || !enc)
        return SC_OK;
    const char **texts = malloc(n * sizeof *texts);
    size_t *lens = malloc(n * sizeof *lens);
    float *out = malloc(n * SC_EMBED_DIM * sizeof *out);
    sc_item_t **who = malloc(n * sizeof *who);
    sc_status_t st = SC_ERR_NOMEM;
    if (!texts || !lens || !out || !who)
        goto out;
    n = 0;
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_FORWARD || it->vec)
            continue;
        const sc_turn_t *last = &it->req->turns[it->req->n_turns - 1];
        texts[n] = last->content;
        lens[n] = last->content_len;
        who[n++] = it;
    }
    st = sc_encoder_embed(enc, texts, lens, n, out);
    if (st) {
        sc_warn("embed.failed", "n=%zu err=%s (the batch goes on without embeddings)", n,
                sc_strerror(st));
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        who[k]->vec = malloc(SC_EMBED_DIM * sizeof(float));
        if (who[k]->vec)
            memcpy(who[k]->vec, out + k * SC_EMBED_DIM, SC_EMBED_DIM * sizeof(float));
    }
out:
    free(texts);
    free(lens);
    free(out);
    free(who);
    return st;
}
