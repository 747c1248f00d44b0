/* coalesce.c - stage: identical or near-identical requests in flight at once share one upstream
 * call; the leaders others may follow are kept in the optimizer (o->leaders, under o->lock) until
 * sc_optimizer_finish() or sc_optimizer_forget() removes them. */
#include <stdint.h>

#include "host/cache/guards.h"
#include "pipelines/stages/stages.h"

#define OPT_NORM_MAX 4096           /* bytes of normalised text hashed for coalescing */

static uint64_t norm_hash(const sc_item_t *it)
{
    char buf[OPT_NORM_MAX];
    const sc_turn_t *t = sc_opt_last_turn(it);
    size_t n = sc_cache_normalize(t->content, t->content_len, buf, sizeof buf);
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)buf[i]) * 1099511628211ULL;
    return h ^ it->scope;
}

/* A miss that an item in flight will answer: follow it instead of calling upstream. Exact
 * (normalised text) or near-identical (cosine ≥ the cache threshold, guards passed), always in
 * the same scope. Otherwise the item becomes a leader others may follow. */
void sc_stage_coalesce(sc_optimizer_t *o, sc_batch_t *batch)
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
            const sc_turn_t *lt = sc_opt_last_turn(it);
            for (size_t k = 0; k < o->nleaders && !lead && !it->adopted; k++) {
                sc_item_t *l = o->leaders[k];
                if (l->scope != it->scope)
                    continue;
                if (norm_hash(l) == h) {
                    lead = l;
                } else if (it->req->cache == SC_CACHE_ON && it->vec && l->vec) {
                    float sim = sc_opt_dot(it->vec, l->vec);
                    const sc_turn_t *ll = sc_opt_last_turn(l);
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
