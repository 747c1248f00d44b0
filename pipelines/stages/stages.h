/* stages.h - internal to pipelines/optimizer.c and the optimizer's stages in pipelines/stages/:
 * the optimizer's context, one entry point per stage, and the few helpers they share. */
#ifndef SC_STAGES_H
#define SC_STAGES_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "host/cache/agreement.h"
#include "host/cache/cache.h"
#include "host/cache/summary_store.h"
#include "host/core/thinking.h"
#include "host/core/tokens.h"
#include "host/gemini/prompt_cache.h"
#include "models/router.h"
#include "pipelines/optimizer.h"
#include "pipelines/stages/turn_vecs.h"

#define OPT_NTIERS 3
#define OPT_LEADERS_MAX 65536       /* items in flight that others may coalesce onto */

/* "lite", "cheap", "strong": the router's tier names, index = sc_optimizer.tiers[] (optimizer.c) */
extern const char *const sc_opt_tier_names[OPT_NTIERS];

/* The techniques the configuration switched on, built by sc_optimizer_new() (optimizer.c), which
 * owns every handle; the stages borrow them. */
struct sc_optimizer {
    const sc_config_t *cfg;
    sc_metrics_t *metrics;
    int batch_mode;
    sc_encoder_t *enc;
    sc_cache_t *cache;
    sc_router_t *router;
    sc_tokens_t *tokens;
    sc_thinking_t *thinking; /* the strong model's thinking per scope, for the ledger */
    sc_summary_store_t *summaries;
    sc_prompt_cache_t *pcache;
    /* told of every answer stored in the cache (serve: the changelog); NULL: none */
    void (*on_store)(void *ud, const sc_cache_item_t *stored);
    void *on_store_ud;
    sc_optimizer_summary_fn on_summary; /* told of every summary stored; NULL: none */
    void *on_summary_ud;
    int cascade, coalesce, prune;
    long budget;
    int keep_last;
    sc_turn_vecs_t *turn_vecs;   /* pruning's turn vectors already made (compute thread); NULL: none */
    uint64_t prune_embedded;     /* turns pruning sent to the encoder (compute thread) */
    double temperature_max, threshold, band;
    int guards;
    const char *tiers[OPT_NTIERS]; /* model ids, borrowed from cfg */
    int outside_tier; /* router.outside_tier: prompts outside the router's domain; -1: score */
    const char *default_model;
    /* shadow evaluation (stages/shadow.c): per-scope evidence that a cheaper tier keeps the target */
    sc_agreement_t *agreement; /* router.shadow_path; NULL: no evidence kept (routing as item 1) */
    double quality_target;     /* router.quality_target: a tier is earned when its bound reaches it */
    double shadow_rate, shadow_z, shadow_min;
    int shadow_max_inflight;
    struct sc_shadow_job **shadows; /* forward thread only: the jobs in flight */
    int nshadows;
    uint64_t shadow_rng;            /* forward thread only */
    /* coalescing: items in flight others may share (compute adds, publish removes) */
    pthread_mutex_t lock;
    sc_item_t **leaders;
    size_t nleaders;
    /* the embed stage's encoder work (compute thread only; read by tests and logs) */
    uint64_t embed_calls;    /* encoder calls */
    uint64_t embedded_texts; /* texts sent: the distinct last user turns that needed a vector */
};

/* ---- the stages before the call, in the order sc_optimizer_prepare() runs them ---- */

/* estimate.c: reset the per-item outcomes, estimate the prompt's tokens, decide the cache scope
 * (0: not cacheable) of every FORWARD item. */
void sc_stage_estimate(sc_optimizer_t *o, sc_batch_t *batch);

/* cache.c: look every cacheable FORWARD item up in the cache's exact layer (one lookup for the
 * batch), before anything is embedded; a hit becomes DONE with the stored answer. */
void sc_stage_cache_exact(sc_optimizer_t *o, sc_batch_t *batch);

/* embed.c: embed the last user turn of every FORWARD item that a later stage reads it->vec of
 * (cacheable, or routed by a loaded router), each distinct text once, in one encoder call; on
 * failure the items go on without a vector. */
sc_status_t sc_stage_embed(sc_optimizer_t *o, sc_batch_t *batch);

/* cache.c: look every cacheable FORWARD item (the exact layer's misses) up in the semantic layer
 * (one lookup for the batch); a hit becomes DONE with the stored answer. */
void sc_stage_cache(sc_optimizer_t *o, sc_batch_t *batch);

/* coalesce.c: a miss that an item in flight will answer follows it and leaves the batch
 * (batch->n shrinks); any other cacheable miss becomes a leader others may follow. */
void sc_stage_coalesce(sc_optimizer_t *o, sc_batch_t *batch);

/* route.c: the model of every FORWARD item: pinned, the default, or the router's tier (one
 * router call for the batch). */
void sc_stage_route(sc_optimizer_t *o, sc_batch_t *batch);

/* prune_stage.c: plan the pruning of every conversation over its token budget and pick up its
 * stored summary; a missing one becomes a summary call (it->summary_body). */
void sc_stage_prune(sc_optimizer_t *o, sc_batch_t *batch);

/* call.c: build the upstream call (it->call) of every FORWARD item: the summary call first when
 * pruning needs one, else the main call (prompt cache applied); out of memory fails the item. */
void sc_stage_call(sc_optimizer_t *o, sc_batch_t *batch);

/* ---- after a call (forward thread, one item at a time) ---- */

/* cascade.c: an ok answer of a cheap tier that is not good enough (not STOP, empty, a refusal,
 * invalid JSON when JSON was asked for) promotes the item to the next tier. Returns 1 when
 * it->call is then the new call to submit, 0 when the item is done. */
int sc_stage_cascade(sc_optimizer_t *o, sc_item_t *it);

/* ---- shadow evaluation (shadow.c) ---- */

/* The scope's evidence for cheaper tier t (0 .. OPT_NTIERS-2): 1 earned (Wilson lower bound >=
 * the quality target), -1 below target (at least router.shadow_min_samples comparisons and the
 * bound under the target), 0 too little evidence. router: the evidence about the prompts the
 * router itself sends to t (kept apart as "<tier>@router": they are not the scope's whole
 * traffic), else about the scope's whole traffic on t. */
int sc_shadow_evidence(const sc_optimizer_t *o, const sc_request_t *rq, int t, int router);

/* Free the shadow jobs still in flight (their calls are the client's, freed with it). */
void sc_optimizer_shadow_free_all(sc_optimizer_t *o);

/* ---- shared helpers ---- */

/* optimizer.c: what usage u on model costs (0 when the model has no price). */
double sc_opt_cost_of(const sc_optimizer_t *o, const char *model, const sc_usage_t *u, int batch);
/* optimizer.c: the last turn of the item's request (borrowed). */
const sc_turn_t *sc_opt_last_turn(const sc_item_t *it);
/* What the cache stores and a coalesced follower shares of an item's answer: the text, or for a
 * request in Gemini's own shape the candidates' JSON. @remark the caller frees with free(); NULL
 * when there is none. */
char *sc_opt_answer(const sc_item_t *it);
/* optimizer.c: the dot product of two SC_EMBED_DIM vectors (cosine: they are normalised). */
float sc_opt_dot(const float *a, const float *b);
/* optimizer.c: the item is DONE with error st and message why. */
void sc_opt_fail_item(sc_item_t *it, sc_status_t st, const char *why);

/* call.c: the main call's body: the (pruned) plain body (it->body_plain, built from the request
 * when there is none yet), with the system prompt moved into an explicit cache when one is live.
 * @remark a new string the caller frees (or hands to sc_opt_resubmit()); NULL on failure. */
char *sc_opt_main_body(sc_optimizer_t *o, sc_item_t *it, size_t *len);
/* call.c: replace it->call by a new call of model with body (taken, NULL ok). Returns 1 when
 * replaced, 0 on failure (the old call stays: its outcome is the item's). */
int sc_opt_resubmit(sc_item_t *it, const char *model, char *body, size_t len);

#endif
