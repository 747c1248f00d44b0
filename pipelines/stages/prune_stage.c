/* prune_stage.c - stage: context pruning of every conversation whose history is over its token
 * budget (the plan from stages/prune.c), with the stored summary picked up or a summary call
 * prepared. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pipelines/stages/stages.h"

/* The token budget of a request: prune.agents.<agent>, else prune.max_tokens. */
static long budget_for(const sc_optimizer_t *o, const sc_item_t *it)
{
    json_t *b = it->req->agent
                    ? json_object_get(sc_config_node(o->cfg, "prune.agents"), it->req->agent)
                    : NULL; /* borrowed */
    return json_is_integer(b) ? (long)json_integer_value(b) : o->budget;
}

/* The budget bounds the history only: the system prompt is sent whole, accounted for apart (it
 * is usually prompt-cached), and never counts against it. */
static int needs_prune(const sc_optimizer_t *o, const sc_item_t *it)
{
    if (it->state != SC_ITEM_FORWARD || it->req->n_turns <= (size_t)o->keep_last + 1)
        return 0;
    long sys = it->req->system ? sc_tokens_estimate(o->tokens, it->req->model, it->req->system,
                                                    strlen(it->req->system))
                               : 0;
    return it->est_prompt_tokens - sys > budget_for(o, it);
}

/* Does pruning it save more than a new summary costs? The saving: the left-out tokens at the
 * answering model's input price; the summary: those tokens in and SC_PRUNE_SUMMARY_MAX_TOKENS out
 * on the cheapest tier (its calls, stages/call.c). On a cheap pinned model it may not. */
static int worth_a_summary(const sc_optimizer_t *o, const sc_item_t *it)
{
    if (!o->summaries || !it->req->conversation_id || o->batch_mode)
        return 1; /* no summary call is made: dropping turns costs nothing */
    sc_usage_t saved = {.prompt_tokens = it->plan.pruned_tokens};
    sc_usage_t summary = {.prompt_tokens = it->plan.pruned_tokens,
                          .output_tokens = SC_PRUNE_SUMMARY_MAX_TOKENS};
    return sc_opt_cost_of(o, it->model, &saved, 0) > sc_opt_cost_of(o, o->tiers[0], &summary, 0);
}

/* Plan the pruning of every long conversation in the batch (the turns of all of them embedded in
 * one encoder call: at most SC_PRUNE_EMBED_MAX of one conversation, the others ranked lexically;
 * a turn embedded for an earlier request comes from o->turn_vecs instead), and pick up the stored
 * summary; a missing one becomes a summary call. */
void sc_stage_prune(sc_optimizer_t *o, sc_batch_t *batch)
{
    if (!o->prune || !o->enc)
        return;
    size_t nturns = 0;
    for (size_t i = 0; i < batch->n; i++) {
        if (needs_prune(o, batch->items[i]))
            nturns += batch->items[i]->req->n_turns;
    }
    if (nturns == 0)
        return;
    const char **texts = malloc(nturns * sizeof *texts);
    size_t *lens = malloc(nturns * sizeof *lens);
    size_t *slot = malloc(nturns * sizeof *slot); /* turn → its row in the encoder's output */
    unsigned char *embed = malloc(nturns);
    float *vecs = calloc(nturns * SC_EMBED_DIM, sizeof *vecs);
    float *out = malloc(nturns * SC_EMBED_DIM * sizeof *out);
    if (!texts || !lens || !slot || !embed || !vecs || !out)
        goto out;
    size_t at = 0, nembed = 0;
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (!needs_prune(o, it))
            continue;
        sc_prune_embed_select(it->req, o->keep_last, SC_PRUNE_EMBED_MAX, embed + at);
        for (size_t k = 0; k < it->req->n_turns; k++, at++) {
            if (!embed[at])
                continue;
            const sc_turn_t *turn = &it->req->turns[k];
            const float *known = o->turn_vecs ? sc_turn_vecs_get(o->turn_vecs, turn->content,
                                                                 turn->content_len,
                                                                 SC_PRUNE_EMBED_TOKENS)
                                              : NULL;
            if (known) { /* embedded for an earlier request of the conversation */
                memcpy(vecs + at * SC_EMBED_DIM, known, SC_EMBED_DIM * sizeof *vecs);
                embed[at] = 0;
                continue;
            }
            slot[at] = nembed;
            texts[nembed] = turn->content;
            lens[nembed] = turn->content_len;
            nembed++;
        }
    }
    if (nembed && sc_encoder_embed_max(o->enc, texts, lens, nembed, SC_PRUNE_EMBED_TOKENS, out) !=
                      SC_OK)
        goto out;
    o->prune_embedded += nembed;
    for (size_t t = 0; t < nturns; t++) /* a turn not selected keeps a zero vector */
        if (embed[t])
            memcpy(vecs + t * SC_EMBED_DIM, out + slot[t] * SC_EMBED_DIM,
                   SC_EMBED_DIM * sizeof *vecs);
    for (size_t k = 0; o->turn_vecs && k < nembed; k++)
        sc_turn_vecs_put(o->turn_vecs, texts[k], lens[k], SC_PRUNE_EMBED_TOKENS,
                         out + k * SC_EMBED_DIM);
    at = 0;
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (!needs_prune(o, it))
            continue;
        const sc_request_t *rq = it->req;
        const float *tv = vecs + at * SC_EMBED_DIM;
        at += rq->n_turns;
        long sys = 0, *tt = malloc(rq->n_turns * sizeof *tt);
        if (!tt)
            continue;
        sc_prune_count(o->tokens, it->model, rq, tt, &sys);
        sc_status_t st = sc_prune_plan(rq, tt, sys, tv, budget_for(o, it), o->keep_last, &it->plan);
        free(tt);
        if (st || !it->plan.pruned)
            continue;
        sc_summary_t sum = {0};
        int have = o->summaries && rq->conversation_id &&
                   sc_summary_store_lookup(o->summaries, rq->tenant, rq->conversation_id, rq->turns,
                                           rq->n_turns, &sum) == SC_OK;
        if (!(have && sum.n_turns >= it->plan.summary_to) && !worth_a_summary(o, it)) {
            /* a new summary would cost more than the pruning saves on this model: the request
             * goes whole, as the naive one would */
            sc_summary_clear(&sum);
            sc_prune_plan_clear(&it->plan);
            continue;
        }
        it->pruned_tokens = it->plan.pruned_tokens;
        if (have && sum.n_turns >= it->plan.summary_to) {
            size_t len;
            it->body_plain = sc_prune_body(rq, &it->plan, sum.text, &len);
        } else if (o->summaries && rq->conversation_id && !o->batch_mode) {
            size_t len;
            it->summary_body = sc_prune_summary_body(rq, &it->plan, have ? sum.text : NULL,
                                                     have ? sum.n_turns : 0, &len);
            if (!it->summary_body) /* nothing new to summarise: the stored one serves */
                it->body_plain = sc_prune_body(rq, &it->plan, have ? sum.text : NULL, &len);
        } else {
            size_t len;
            it->body_plain = sc_prune_body(rq, &it->plan, NULL, &len);
        }
        sc_summary_clear(&sum);
    }
out:
    free(texts);
    free(lens);
    free(slot);
    free(embed);
    free(vecs);
    free(out);
}
