/* optimizer.h - what scrimp does to a request between parsing and the upstream call, shared by
 * both drivers: embed, cache lookup, coalescing, routing, pruning, prompt caching and the call's
 * body; and after the call: summary → main call, cascade promotion, cache store, followers. */
#ifndef SC_OPTIMIZER_H
#define SC_OPTIMIZER_H

#include <stddef.h>
#include <stdint.h>

#include "host/cache/cache.h"
#include "host/cache/summary_store.h"
#include "host/core/config.h"
#include "host/gemini/prompt_cache.h"
#include "host/metrics/metrics.h"
#include "pipelines/pipeline.h"

typedef struct sc_optimizer sc_optimizer_t;

/*
 * Build every technique the configuration switches on (cache.enabled, router.enabled,
 * prune.enabled, prompt_cache.enabled, cascade.enabled, coalesce.enabled): the encoder (when the
 * cache, the router or pruning need it), the cache store and index, the router weights, the
 * summary store, the prompt-cache manager. A technique whose files are missing is an error naming
 * the file. metrics may be NULL. batch_mode: no summary calls (Batch Mode cannot chain calls).
 * @remark the caller frees with sc_optimizer_free().
 */
sc_status_t sc_optimizer_new(const sc_config_t *cfg, sc_metrics_t *metrics, int batch_mode,
                             sc_optimizer_t **out, char *errbuf, size_t errlen);
void sc_optimizer_free(sc_optimizer_t *o); /* NULL ok */

/*
 * The stages after parsing, for one micro-batch (one thread: the compute thread): every FORWARD
 * item ends DONE (a cache hit), FORWARD with its model chosen and its call (it->call) built — the
 * summary call first when pruning needs one —, or coalesced onto an item in flight: such an item
 * is removed from the batch (batch->n shrinks) and handed back with its leader by
 * sc_optimizer_finish(); the caller must not touch it again. Non-FORWARD items are left alone.
 */
void sc_optimizer_prepare(sc_optimizer_t *o, sc_batch_t *batch);

/*
 * An upstream call of it came back (forward thread). Returns 1 when it needs another call (the
 * main call after its summary, or the next tier after a failed cheap answer): it->call is then a
 * new call to submit. Returns 0 when the item is done (ok or not).
 */
int sc_optimizer_after_call(sc_optimizer_t *o, sc_item_t *it);

/*
 * The item has its final answer (publish thread, before its result is written): store the answer
 * in the cache when allowed, record token-estimate calibration, and detach the items coalesced
 * onto it, each made DONE with a copy of the answer; they are returned as a linked list
 * (next_follower) for the caller to publish. An item that was following and is published here
 * itself has nothing to do.
 */
sc_item_t *sc_optimizer_finish(sc_optimizer_t *o, sc_item_t *it);

/* ---- shadow evaluation (pipelines/stages/shadow.c; forward thread only) ---- */

/*
 * The item's final call came back ok (forward thread, before the item is handed on to be
 * published): when it is sampled (router.shadow_rate), a second tier's call of the same body,
 * for the caller to submit; NULL when not sampled, not shadowable (pinned, cached, promoted,
 * Batch Mode, not STOP), or dropped because busy (the upstream has a backlog) or
 * router.shadow_max_inflight are in flight. Everything the comparison needs is copied: the item
 * may be published and freed at once. The call belongs to the shadow evaluation: hand it back to
 * sc_optimizer_shadow_done() when it finishes, or with status SC_ERR_FULL when it cannot be
 * submitted.
 */
sc_gemini_call_t *sc_optimizer_shadow_start(sc_optimizer_t *o, const sc_item_t *it, int busy);

/* Is call one of the shadow evaluation's (a shadow answer or a judge)? */
int sc_optimizer_is_shadow(const sc_optimizer_t *o, const sc_gemini_call_t *call);

/*
 * A shadow call finished; it is taken (freed here or kept by its job). Returns the next call
 * to submit (the strong model's judge, when the two answers have no checkable form), or NULL when
 * the comparison is over: then *line is its ledger line (a new JSON string, *len bytes, NULL on
 * allocation failure) for topics.shadow; @remark the caller frees *line.
 */
sc_gemini_call_t *sc_optimizer_shadow_done(sc_optimizer_t *o, sc_gemini_call_t *call,
                                           char **line, size_t *len);

/* Drop an item that will never be finished (abandoned at shutdown) from the in-flight map. */
void sc_optimizer_forget(sc_optimizer_t *o, sc_item_t *it);

/* The cache the optimizer answers from (borrowed); NULL when cache.enabled is false. */
sc_cache_t *sc_optimizer_cache(sc_optimizer_t *o);

/* The conversation summaries pruning keeps (borrowed); NULL when prune.summaries is off. */
sc_summary_store_t *sc_optimizer_summaries(sc_optimizer_t *o);

/* The explicit prompt caches (borrowed); NULL when prompt_cache is off. */
sc_prompt_cache_t *sc_optimizer_prompt_cache(sc_optimizer_t *o);

/* fn(ud, stored) after every answer the optimizer stores in the cache, from the thread that
 * finished the item (serve: the publish thread); the entry is borrowed for the call. Set before
 * the first batch. */
void sc_optimizer_on_store(sc_optimizer_t *o, void (*fn)(void *ud, const sc_cache_item_t *stored),
                           void *ud);

/* fn(ud, ...) after every conversation summary the optimizer stores (the forward thread): the
 * summary of turns [0, n_turns) of tenant's conversation, with their sc_summary_hash_turns. Set
 * before the first batch. */
typedef void (*sc_optimizer_summary_fn)(void *ud, const char *tenant, const char *conversation,
                                        const char *text, size_t text_len, size_t n_turns,
                                        uint64_t hash);
void sc_optimizer_on_summary(sc_optimizer_t *o, sc_optimizer_summary_fn fn, void *ud);

#endif
