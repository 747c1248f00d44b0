/* route.c - stage: the model of every forwarded request: the pinned one, the default, or the
 * tier the router's score picks (one router call for the batch). */
#include <stdlib.h>
#include <string.h>

#include "host/core/util.h"
#include "pipelines/stages/stages.h"

void sc_stage_route(sc_optimizer_t *o, sc_batch_t *batch)
{
    size_t n = 0;
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_FORWARD)
            continue;
        if (strcmp(it->req->model, "auto") != 0) {
            sc_strlcpy(it->model, it->req->model, sizeof it->model);
            it->route = "pinned";
        } else {
            sc_strlcpy(it->model, o->default_model, sizeof it->model);
            it->route = "default";
            it->tier = OPT_NTIERS - 1;
            n += o->router && it->vec;
        }
    }
    if (n == 0)
        return;
    float *emb = malloc(n * SC_EMBED_DIM * sizeof *emb);
    float *sig = malloc(n * SC_ROUTER_NSIGNALS * sizeof *sig);
    float *score = malloc(n * sizeof *score);
    sc_item_t **who = malloc(n * sizeof *who);
    int32_t *ids = malloc(SC_ROUTER_COUNT_TOKENS * sizeof *ids); /* counted as in training */
    if (!emb || !sig || !score || !who || !ids)
        goto out;
    n = 0;
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_FORWARD || strcmp(it->req->model, "auto") != 0 || !it->vec)
            continue;
        const sc_turn_t *t = sc_opt_last_turn(it);
        int ntok = sc_tokenizer_encode(sc_encoder_tokenizer(o->enc), t->content, t->content_len,
                                       ids, SC_ROUTER_COUNT_TOKENS);
        memcpy(emb + n * SC_EMBED_DIM, it->vec, SC_EMBED_DIM * sizeof *emb);
        sc_router_signals(t->content, t->content_len, ntok, sig + n * SC_ROUTER_NSIGNALS);
        who[n++] = it;
    }
    if (sc_router_score_batch(o->router, emb, sig, n, score) != SC_OK)
        goto out;
    for (size_t k = 0; k < n; k++) {
        const char *tier = sc_router_tier(o->router, score[k], sc_opt_tier_names, OPT_NTIERS);
        int t = OPT_NTIERS - 1;
        for (int j = 0; j < OPT_NTIERS; j++)
            if (strcmp(tier, sc_opt_tier_names[j]) == 0)
                t = j;
        /* a prompt unlike the router's training prompts, or a router file that does not say what
         * it was trained on: the score is no evidence, the prompt goes to router.outside_tier */
        if (o->outside_tier >= 0 &&
            (!sc_router_has_domain(o->router) ||
             !sc_router_in_domain(o->router, sig + k * SC_ROUTER_NSIGNALS)))
            t = o->outside_tier;
        who[k]->tier = t;
        who[k]->route = sc_opt_tier_names[t];
        who[k]->route_score = score[k];
        sc_strlcpy(who[k]->model, o->tiers[t], sizeof who[k]->model);
    }
out:
    free(emb);
    free(sig);
    free(score);
    free(who);
    free(ids);
}
