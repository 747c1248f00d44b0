/* batcher.h - Gemini Batch Mode for pipeline items: groups them by model into inline batches
 * within the count and size limits, journals each batch before creating it (creation is not
 * idempotent), polls with backoff, and hands every item back exactly once — answered, or failed
 * after resubmitting it up to a limit. Used by the backfill driver and by `scrimp serve` for
 * requests with "priority": "batch". Not thread-safe: one thread drives it. */
#ifndef SC_BATCHER_H
#define SC_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "host/core/config.h"
#include "host/gemini/batch.h"
#include "pipelines/pipeline.h"

#define SC_BATCHER_KEY_MAX 48

typedef struct sc_batcher sc_batcher_t;

typedef struct {
    const sc_config_t *cfg;      /* backfill.batch_max_requests, batch_max_bytes, poll_*,
                                    max_batch_retries */
    sc_batch_client_t *client;   /* borrowed */
    const char *run_id;          /* display names are "scrimp-<run_id>-<seq>" */
    /* An item is finished: state DONE, with its call (ok) or error/errmsg set. It is the
     * callee's again. */
    void (*done)(sc_item_t *it, void *arg);
    /* The key of an item, unique among the items of one batch (e.g. "L<line>"). */
    void (*key)(const sc_item_t *it, char *buf, size_t len);
    /* Durable journal of batch events ("creating" with the keys, "created" with the name,
     * "finished" with the state), or NULL. ev is stolen. Non-zero: the journal failed. */
    int (*journal)(json_t *ev, void *arg);
    void *arg;
} sc_batcher_opts_t;

/* @remark the caller frees with sc_batcher_free(). */
sc_status_t sc_batcher_new(const sc_batcher_opts_t *opts, sc_batcher_t **out);
/* Items still inside (pending or in open batches) are freed without being handed back: their
 * requests get no result from this run (a Kafka consumer re-delivers them). NULL ok. */
void sc_batcher_free(sc_batcher_t *b);

/* Queue a FORWARD item (its model chosen) for the next batch of its model. */
sc_status_t sc_batcher_add(sc_batcher_t *b, sc_item_t *it);

/* Create batches from the queued items: every one (force), else only models whose queue fills a
 * batch or whose oldest item has waited max_wait_ms. An outcome that stays unknown after retries
 * (looked up by display name before each new creation) returns an error; journaled batches can be
 * adopted by a later run. */
sc_status_t sc_batcher_flush(sc_batcher_t *b, int force, int64_t max_wait_ms, char *errbuf,
                             size_t errlen);

/* Poll each open batch that is due; finished items are handed back through done, failed ones
 * queued again (they go out with the next flush) until backfill.max_batch_retries. */
sc_status_t sc_batcher_poll(sc_batcher_t *b, char *errbuf, size_t errlen);

/* Milliseconds until the next poll is due (0: now), or -1 when no batch is open. */
long sc_batcher_next_poll_ms(const sc_batcher_t *b);

size_t sc_batcher_queued(const sc_batcher_t *b); /* items waiting for a batch */
size_t sc_batcher_open(const sc_batcher_t *b);   /* items in created, unfinished batches */
long long sc_batcher_created(const sc_batcher_t *b); /* batches created by this batcher */

/* Take over a batch created earlier (by a run or a replica that died): poll it like our own.
 * items (with their keys as the journal listed them) are the batcher's until handed back. A batch
 * of that name already open here takes the items in (a replica adopts a dead one's batch as its
 * requests are re-delivered, a few at a time); results for keys it holds no item of are dropped. */
sc_status_t sc_batcher_adopt(sc_batcher_t *b, const char *display, const char *name,
                             const char *model, sc_item_t **items, size_t n);

#endif
