/* route.c - stage: the model of every forwarded request: the pinned one, or a tier chosen on
 * evidence: the router's score inside its training domain (one router call for the batch), the
 * scope's shadow evaluation (stages/shadow.c), else the strong tier, as the naive request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/genreq.h"
#include "host/core/util.h"
#include "pipelines/stages/stages.h"

static int routed(const sc_item_t *it)
{
    return it->state == SC_ITEM_FORWARD && strcmp(it->req->model, "auto") == 0;
}

static void set_tier(sc_optimizer_t *o, sc_item_t *it, int t, const char *basis)
{
    it->tier = t;
    it->route = sc_opt_tier_names[t];
    it->route_basis = basis;
    sc_strlcpy(it->model, o->tiers[t], sizeof it->model);
}

/* The router's tier for the n routed items with a vector (it->tier, route, model, route_score). A
 * prompt unlike the router's training prompts, or a router file that does not say what it was
 * trained on, gets router.outside_tier: the score is no evidence there. */
static void score_batch(sc_optimizer_t *o, sc_batch_t *batch, size_t n)
{
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
        if (!routed(it) || !it->vec)
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
        if (o->outside_tier >= 0 &&
            (!sc_router_has_domain(o->router) ||
             !sc_router_in_domain(o->router, sig + k * SC_ROUTER_NSIGNALS)))
            t = o->outside_tier;
        set_tier(o, who[k], t, t < OPT_NTIERS - 1 ? "router" : "no-evidence");
        who[k]->router_tier = t < OPT_NTIERS - 1 ? t : -1;
        who[k]->route_score = score[k];
    }
out:
    free(emb);
    free(sig);
    free(score);
    free(who);
    free(ids);
}

/*
 * The scope's own evidence over the router's (or the strong default): the cheapest tier the
 * scope earned on its whole traffic (shadow lower bound >= the target) wins; the router's cheaper
 * pick stands while the scope has too little evidence about the prompts the router sends there;
 * a pick whose measured bound is below the target is not used: the request goes up to strong
 * until the evidence recovers (its strong answers are shadowed by the router's pick).
 */
static void apply_evidence(sc_optimizer_t *o, sc_item_t *it)
{
    if (!o->agreement)
        return;
    int strong = OPT_NTIERS - 1, t = it->tier < 0 ? strong : it->tier, earned = strong;
    for (int j = 0; j < strong && earned == strong; j++)
        if (sc_shadow_evidence(o, it->req, j, 0) > 0)
            earned = j;
    int below = t < strong && sc_shadow_evidence(o, it->req, t, it->router_tier == t) < 0;
    if (below)
        t = strong;
    if (earned <= t && earned < strong)
        set_tier(o, it, earned, "shadow");
    else if (below)
        set_tier(o, it, strong, "below-target");
}

/* A request in Gemini's own shape whose settings the chosen tier's model refuses (thinking off
 * on a model that always thinks, a budget on one that cannot think) goes to the nearest tier
 * that takes them, stronger first; when none does it ends INVALID_REQUEST, as the API would
 * answer it. */
static void fit_settings(sc_optimizer_t *o, sc_item_t *it)
{
    char why[SC_ITEM_ERR_MAX - 64]; /* room for the sentence around it */
    int t = it->tier < 0 ? OPT_NTIERS - 1 : it->tier;
    if (!it->req->native || sc_genreq_check_model(it->req->native, it->model, why, sizeof why) == SC_OK)
        return;
    for (int d = 1; d < OPT_NTIERS; d++) {
        int up = t + d, down = t - d;
        if (up < OPT_NTIERS &&
            sc_genreq_check_model(it->req->native, o->tiers[up], NULL, 0) == SC_OK) {
            set_tier(o, it, up, it->route_basis);
            return;
        }
        if (down >= 0 &&
            sc_genreq_check_model(it->req->native, o->tiers[down], NULL, 0) == SC_OK) {
            set_tier(o, it, down, it->route_basis);
            return;
        }
    }
    it->state = SC_ITEM_DONE;
    it->error = SC_ERR_INVALID;
    snprintf(it->errmsg, sizeof it->errmsg, "no model tier takes these settings: %s", why);
}

void sc_stage_route(sc_optimizer_t *o, sc_batch_t *batch)
{
    size_t n = 0;
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_FORWARD)
            continue;
        if (!routed(it)) {
            sc_strlcpy(it->model, it->req->model, sizeof it->model);
            it->route = "pinned";
        } else {
            sc_strlcpy(it->model, o->default_model, sizeof it->model);
            it->route = "default";
            it->route_basis = "no-evidence";
            it->tier = OPT_NTIERS - 1;
            n += o->router && it->vec;
        }
    }
    if (n > 0)
        score_batch(o, batch, n);
    for (size_t i = 0; i < batch->n; i++)
        if (routed(batch->items[i])) {
            apply_evidence(o, batch->items[i]);
            fit_settings(o, batch->items[i]);
        }
}
