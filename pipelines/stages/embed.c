/* embed.c - stage: the embedding of the last user turn of each forwarded request that a later
 * reader needs it for (the semantic cache and its store, coalescing, the router), each distinct
 * text of the micro-batch once, in one encoder call. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/log.h"
#include "pipelines/stages/stages.h"

/* Whether anything after this stage reads it->vec:
 *  - a cacheable item (scope != 0): the semantic lookup (cache "on"), coalescing (a leader's
 *    vector is read for any follower in its scope) and its follower's similarity, and the store
 *    after the call (the entry's vector serves later semantic lookups whatever this request's
 *    cache mode); scope is 0 whenever the cache is off or the request's cache is "off";
 *  - a request with model "auto" when a router is loaded (route.c);
 * pruning embeds every turn itself and never reads it->vec. */
static int needs_vec(const sc_optimizer_t *o, const sc_item_t *it)
{
    if (it->state != SC_ITEM_FORWARD || it->vec)
        return 0;
    return it->scope != 0 || (o->router && strcmp(it->req->model, "auto") == 0);
}

static uint64_t text_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

sc_status_t sc_stage_embed(sc_optimizer_t *o, sc_batch_t *batch)
{
    size_t n = 0;
    for (size_t i = 0; i < batch->n; i++)
        n += needs_vec(o, batch->items[i]);
    if (n == 0 || !o->enc)
        return SC_OK;
    size_t cap = 1;
    while (cap < 2 * n) /* open addressing, at most half full */
        cap <<= 1;
    const char **texts = malloc(n * sizeof *texts);
    size_t *lens = malloc(n * sizeof *lens);
    float *out = malloc(n * SC_EMBED_DIM * sizeof *out);
    sc_item_t **who = malloc(n * sizeof *who);
    size_t *slot_of = malloc(n * sizeof *slot_of); /* item k → its distinct text */
    size_t *table = malloc(cap * sizeof *table);   /* distinct text + 1; 0: empty */
    sc_status_t st = SC_ERR_NOMEM;
    if (!texts || !lens || !out || !who || !slot_of || !table)
        goto out;
    memset(table, 0, cap * sizeof *table);
    size_t m = 0, nitems = 0; /* distinct texts, items */
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (!needs_vec(o, it))
            continue;
        const sc_turn_t *last = sc_opt_last_turn(it);
        size_t h = (size_t)text_hash(last->content, last->content_len) & (cap - 1);
        while (table[h] && !(lens[table[h] - 1] == last->content_len &&
                             memcmp(texts[table[h] - 1], last->content, last->content_len) == 0))
            h = (h + 1) & (cap - 1);
        if (!table[h]) {
            texts[m] = last->content;
            lens[m] = last->content_len;
            table[h] = ++m;
        }
        slot_of[nitems] = table[h] - 1;
        who[nitems++] = it;
    }
    st = sc_encoder_embed(o->enc, texts, lens, m, out);
    o->embed_calls++;
    o->embedded_texts += m;
    if (st) {
        sc_warn("embed.failed", "n=%zu err=%s (the batch goes on without embeddings)", m,
                sc_strerror(st));
        goto out;
    }
    for (size_t k = 0; k < nitems; k++) {
        who[k]->vec = malloc(SC_EMBED_DIM * sizeof(float));
        if (who[k]->vec)
            memcpy(who[k]->vec, out + slot_of[k] * SC_EMBED_DIM, SC_EMBED_DIM * sizeof(float));
    }
out:
    free(texts);
    free(lens);
    free(out);
    free(who);
    free(slot_of);
    free(table);
    return st;
}
