/* changelog.h - the cache's changelog: replicas of `scrimp serve` in one group share what they
 * learned. Every answer a replica stores in its cache also goes to a compacted Kafka topic
 * (topics.cache), keyed by its scope and normalised last turn; at start, before it consumes a
 * request, a replica reads the topic to its end into its local store (the LMDB store becomes a
 * cache of the changelog), and while it runs it keeps applying what the other replicas write.
 * Every replica holds every entry: the cache is small beside the traffic (a million entries of
 * 2 KiB are 2 GiB of topic), so no shard key has to follow the requests' partitions.
 *
 * Record: key "SCOPE:HASH" (16 hex digits each: the cache scope, XXH3 of the normalised text),
 * value JSON {"v":1, "origin", "tenant", "scope", "text", "response", "model",
 * "usage":[prompt, cached, output, thought], "cost_usd", "created_ms", "vec"?} with the vector
 * as base64 of its float32s (none for an exact-layer-only entry).
 * A purge (`scrimp cache purge` with cache.changelog on): key "purge:TENANT" ("purge:*" for all),
 * value {"v":1, "origin", "purge": TENANT or null, "before_ms"}: every replica removes the
 * tenant's entries created before before_ms, and skips such entries it reads later.
 * A conversation summary (pruning's, when the summary store is on): key "sum:HASH" (XXH3 of
 * tenant and conversation id), value {"v":1, "origin", "summary": {"tenant", "conversation",
 * "text", "n_turns", "hash" (16 hex digits: sc_summary_hash_turns of those turns)}}: a replica
 * keeps it unless it holds a summary of as many turns or more. Summaries ride on the cache's
 * topic (one restore pass, one compacted topic to operate); compaction keeps the newest per
 * conversation.
 * A prompt cache (an explicit cachedContents of a static prefix, when prompt_cache is on): key
 * "pc:MODEL:PREFIX" (16 hex digits each: XXH3 of the model and fields flag, XXH3 of the prefix),
 * value {"v":1, "origin", "pcache": {"model", "fields" (0/1), "hash", "name", "gone" (0/1),
 * "prefix"?, "tokens"?, "expire_ms"?}}: a replica uses a cache another one made (and extends it
 * as it uses it) instead of creating and paying for its own; "gone" says it was deleted.
 * A Batch Mode submission in flight (a "priority": "batch" request): key "bat:KEY" (KEY: the
 * request's "P<partition>.<offset>" on topics.requests), value {"v":1, "origin", "batch": {"key",
 * "display", "model", "name"?}} (no name: being created); a tombstone when its result is handed
 * on. The replica that a re-delivered request comes to adopts the batch instead of submitting
 * the request again. */
#ifndef SC_CHANGELOG_H
#define SC_CHANGELOG_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "host/cache/cache.h"
#include "host/cache/summary_store.h"
#include "host/core/config.h"
#include "host/core/status.h"
#include "host/gemini/prompt_cache.h"
#include "host/metrics/metrics.h"

#define SC_CHANGELOG_KEY_MAX 40

typedef struct sc_changelog sc_changelog_t;

/* A decoded record; strings point into the JSON it came from (rec->json, owned). */
typedef struct {
    sc_cache_item_t item;     /* an entry (purge == 0) */
    int purge;                /* 1: a purge record; purge_tenant NULL for every tenant */
    const char *purge_tenant;
    int64_t before_ms;
    int summary;              /* 1: a conversation summary, in sum */
    const char *sum_tenant, *sum_conversation;
    sc_summary_t sum;         /* sum.text borrowed from json: never sc_summary_clear() it */
    int pcache;               /* 1: a prompt cache, in pc (strings borrowed from json) */
    sc_prompt_cache_share_t pc;
    int batch;                /* 1: a Batch Mode submission; bat_name NULL while being created */
    const char *bat_key, *bat_display, *bat_model, *bat_name;
    const char *origin;
    float *vec;    /* owned; NULL when the entry has none */
    void *json;    /* owned: json_t of the value */
} sc_changelog_rec_t;

/* The record of an entry: key into key (SC_CHANGELOG_KEY_MAX), the value returned (free() it;
 * *len its length). NULL: no memory. */
char *sc_changelog_encode(const sc_cache_item_t *it, const char *origin, int dim, char *key,
                          size_t *len);
/* The record of a conversation summary (as sc_changelog_encode). */
char *sc_changelog_encode_summary(const char *tenant, const char *conversation, const char *text,
                                  size_t text_len, size_t n_turns, uint64_t hash,
                                  const char *origin, char *key, size_t *len);
/* The record of a prompt cache as its manager shares it (as sc_changelog_encode). */
char *sc_changelog_encode_prompt_cache(const sc_prompt_cache_share_t *s, const char *origin,
                                       char *key, size_t *len);
/* The record of a Batch Mode submission: request key, batch display name, model and name (NULL
 * while it is being created); as sc_changelog_encode. */
char *sc_changelog_encode_batch(const char *req_key, const char *display, const char *model,
                                const char *name, const char *origin, char *key, size_t *len);
/* Parse a value; SC_ERR_INVALID_ARG names what is wrong in errbuf. @remark the caller clears rec
 * with sc_changelog_rec_clear(). */
sc_status_t sc_changelog_decode(const void *buf, size_t len, int dim, sc_changelog_rec_t *rec,
                                char *errbuf, size_t errlen);
void sc_changelog_rec_clear(sc_changelog_rec_t *rec);

/* What a replica shares; cache is required, the others may be NULL (their records are skipped). */
typedef struct {
    sc_cache_t *cache;
    sc_summary_store_t *summaries;
    sc_prompt_cache_t *prompt_caches;
} sc_changelog_stores_t;

/* Restore cache from topics.cache (every partition from its start to the end it had when the
 * restore began, at most cache.changelog_restore_ms; logged as event=changelog.restore), then
 * start the thread that applies what other replicas write. Entries this process wrote, entries
 * already held as new or newer, and expired ones are skipped; summaries and prompt caches go to
 * their stores, and other replicas' Batch Mode submissions in flight into a table that
 * sc_changelog_batch_lookup() reads. The stores are borrowed. producer publishes this process's
 * records (borrowed; its delivery callback sees them with a NULL opaque); metrics (NULL ok) gets
 * the scrimp_changelog_* gauges and scrimp_cache_entries.
 * @remark the caller closes with sc_changelog_close(). */
sc_status_t sc_changelog_open(const sc_config_t *cfg, const sc_changelog_stores_t *stores,
                              rd_kafka_t *producer, sc_metrics_t *metrics, sc_changelog_t **out,
                              char *errbuf, size_t errlen);
/* Stop applying, log what was applied and published. NULL ok. */
void sc_changelog_close(sc_changelog_t *cl);

/* Send a purge record for tenant (NULL: every tenant), for entries created before now; waits
 * for the broker's acknowledgement (pipeline.startup_timeout_ms). SC_ERR_KAFKA with the reason. */
sc_status_t sc_changelog_send_purge(const sc_config_t *cfg, const char *tenant, char *errbuf,
                                    size_t errlen);

/* Publish an entry this process stored (any thread; never blocks: a full producer queue drops
 * it, counted and logged, and the entry stays local). Fits sc_optimizer_on_store(). */
void sc_changelog_publish(void *cl, const sc_cache_item_t *stored);

/* Publish a conversation summary this process stored (as sc_changelog_publish). Fits
 * sc_optimizer_on_summary(). */
void sc_changelog_publish_summary(void *cl, const char *tenant, const char *conversation,
                                  const char *text, size_t text_len, size_t n_turns,
                                  uint64_t hash);

/* Publish a prompt cache's change (as sc_changelog_publish). Fits sc_prompt_cache_on_share(). */
void sc_changelog_publish_prompt_cache(void *cl, const sc_prompt_cache_share_t *s);

/* Publish that request req_key is in batch display of model (name NULL: being created), or, with
 * display NULL, that its result was handed on (a tombstone). Through a producer of the
 * changelog's own, made at the first call; one thread only (the batcher's). Never blocks. */
void sc_changelog_publish_batch(sc_changelog_t *cl, const char *req_key, const char *display,
                                const char *model, const char *name);

/* Wait up to timeout_ms until every batch record published so far is acknowledged by the broker
 * (the thread of sc_changelog_publish_batch): 1 when they are, 0 when one failed, time ran out or
 * they could not be sent on a producer of their own. A batch is created only after its
 * "creating" records are acknowledged, so a replica killed at once leaves them for the next. */
int sc_changelog_batch_sync(sc_changelog_t *cl, int timeout_ms);

/* The batch another replica put request req_key in: 1 with display, model and name (name ""
 * while it was being created) copied into the buffers (SC_BATCH_NAME_MAX, SC_MODEL_MAX-sized
 * will do); 0 when none is known. Thread-safe. */
int sc_changelog_batch_lookup(sc_changelog_t *cl, const char *req_key, char *display,
                              size_t display_len, char *model, size_t model_len, char *name,
                              size_t name_len);

#endif
