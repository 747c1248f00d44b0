/* cache.h - the semantic cache (DESIGN §1, §8): an exact layer (XXH3 of the normalised text
 * within its scope, O(1) in LMDB) and a semantic layer (inner-product search in the query's own
 * scope partition, cosine ≥ threshold, then the guards), on a durable LMDB store with TTL and LRU
 * eviction. The HNSW/IVF partitions are saved next to the store (index.scx) on a clean close and at
 * checkpoints, stamped with the store's identity and index generation; an open loads them only
 * when the stamp matches the store exactly, and otherwise rebuilds the index from the store. */
#ifndef SC_CACHE_H
#define SC_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "host/core/config.h"
#include "host/cache/guards.h"
#include "host/core/message.h"
#include "host/core/status.h"

#define SC_CACHE_MODEL_MAX 128

typedef struct sc_cache sc_cache_t;

typedef struct {
    const char *path;         /* LMDB directory (created when missing) */
    size_t max_bytes;         /* store size limit: least recently hit entries are evicted */
    int64_t ttl_s;            /* entries older than this are not served (and are purged); 0 = none */
    double threshold;         /* cosine for a semantic hit */
    double strict_band;       /* [threshold, threshold + band): stricter guards */
    int guards;               /* 0 disables the guards (calibration only) */
    const char *index;        /* "flat" (default), "hnsw" or "ivf": per scope partition */
    int hnsw_m, hnsw_ef_search, hnsw_ef_construction;
    int ivf_nlist, ivf_nprobe;
    size_t ann_min;           /* a partition switches from flat to hnsw/ivf at this many entries */
    int dim;                  /* vector dimension (384) */
    int use_gpu;              /* flat search on the GPU when one is available */
    int store_only;           /* admin tools: open the store without building the index */
    int index_save;           /* save the hnsw/ivf partitions (index.scx) and load them at open */
    int64_t checkpoint_s;     /* also save every this many seconds when changed; 0: at close only */
} sc_cache_opts_t;

void sc_cache_opts_default(sc_cache_opts_t *o);

/* The options from the cache.* keys of cfg (cache.path, max_bytes, ttl_s, threshold, strict_band,
 * guards, index, ann_min, hnsw_*, ivf_*, gpu, index_save, checkpoint_s). Strings are borrowed from
 * cfg. */
void sc_cache_opts_from_config(const sc_config_t *cfg, sc_cache_opts_t *o);

/*
 * The scope of a request: tenant, model tier, the system prompt, the generation settings that
 * change the answer (temperature, response MIME type), and the earlier conversation (every turn
 * before the last user turn). A lookup only ever sees entries of its own scope.
 */
uint64_t sc_cache_scope(const sc_request_t *req, const char *tier);

/* Normalise text for the exact layer (NFKC, case fold, whitespace collapsed, trimmed) into out
 * (cap bytes); returns the length (truncated at cap-1). */
size_t sc_cache_normalize(const char *text, size_t len, char *out, size_t cap);

typedef struct {
    uint64_t scope;
    const char *tenant;       /* kept with the entry, for purge and stats */
    const char *text;         /* the embedded text: the last user turn */
    size_t len;
    const float *vec;         /* dim floats, L2-normalised; NULL: exact layer only */
} sc_cache_query_t;

typedef enum { SC_CACHE_MISS = 0, SC_CACHE_HIT_EXACT, SC_CACHE_HIT_SEMANTIC } sc_cache_hit_t;

typedef struct {
    sc_cache_hit_t hit;
    double similarity;            /* of the best candidate in scope (hit or refused); -1: none */
    sc_guard_reason_t refused;    /* a candidate ≥ threshold refused by a guard, else OK */
    uint64_t entry;               /* the entry that answered */
    char *response;               /* owned: free() it; NULL on a miss */
    size_t response_len;
    char model[SC_CACHE_MODEL_MAX];
    sc_usage_t usage;             /* the original call's usage */
    double cost_usd;              /* what the original call cost */
} sc_cache_result_t;

/* Open (or create) the store and make the index: the saved partitions when their stamp matches
 * the store (and their ids the store's entries), else a rebuild from the store; logs the time.
 * @remark the caller closes with sc_cache_close(). */
sc_status_t sc_cache_open(const sc_cache_opts_t *opts, sc_cache_t **out, char *errbuf,
                          size_t errlen);
/* Write the queued hit updates, save the index (when enabled and changed), close. NULL ok. */
void sc_cache_close(sc_cache_t *c);

/* Save the hnsw/ivf partitions now when the store changed since the last save (what the
 * checkpoint thread does every checkpoint_s). Lookups go on meanwhile; inserts wait. SC_OK also
 * when saving is off or nothing changed. */
sc_status_t sc_cache_checkpoint(sc_cache_t *c);

/* Look up n queries (exact layer first, then semantic, in each query's own scope only).
 * Thread-safe. res[i] is filled for each; free each res[i].response. */
sc_status_t sc_cache_lookup(sc_cache_t *c, const sc_cache_query_t *q, size_t n,
                            sc_cache_result_t *res);

/* The layers sc_cache_lookup_layers() consults (a bit set). */
#define SC_CACHE_LAYER_EXACT    1u /* the normalised text in the query's scope */
#define SC_CACHE_LAYER_SEMANTIC 2u /* the query's vector in its scope's partition, then guards */

/* sc_cache_lookup() restricted to layers (EXACT | SEMANTIC is sc_cache_lookup() itself); the
 * same scope rules either way. For a caller that embeds only the exact layer's misses: an
 * EXACT-only call first, then a call with SEMANTIC (or both layers, to catch an entry stored in
 * between) on the misses with their vectors (each missed query exactly once, NULL vec allowed).
 * The statistics count such a two-step query once: an EXACT-only call counts its hits only, and
 * leaves its misses to the second call.
 * SC_ERR_INVALID_ARG for an empty or unknown set. Thread-safe; free each res[i].response. */
sc_status_t sc_cache_lookup_layers(sc_cache_t *c, const sc_cache_query_t *q, size_t n,
                                   unsigned layers, sc_cache_result_t *res);

/* Store an answer (durable when it returns SC_OK); *id gets the entry id (may be NULL). */
sc_status_t sc_cache_insert(sc_cache_t *c, const sc_cache_query_t *q, const char *response,
                            size_t response_len, const char *model, const sc_usage_t *usage,
                            double cost_usd, uint64_t *id);

/* One answer to store: the query it answers and what the upstream call returned. */
typedef struct {
    sc_cache_query_t q;
    const char *response;
    size_t response_len;
    const char *model;
    sc_usage_t usage;
    double cost_usd;
    int64_t created_ms; /* wall clock ms of the original answer (a changelog restore); 0: now */
} sc_cache_item_t;

/* Store n answers in one durable transaction (bulk load, backfill); ids (n, may be NULL) get the
 * entry ids. All or nothing for the store. */
sc_status_t sc_cache_insert_many(sc_cache_t *c, const sc_cache_item_t *items, size_t n,
                                 uint64_t *ids);

/* Whether the store holds an entry for text in scope (the exact layer's key); its creation time
 * (wall clock ms) in *created_ms (may be NULL). SC_OK, SC_ERR_NOT_FOUND, or a store error. */
sc_status_t sc_cache_find_exact(sc_cache_t *c, uint64_t scope, const char *text, size_t len,
                                int64_t *created_ms);

/* A stored entry as the admin tool shows it. Strings point into the entry's own buffer. */
typedef struct {
    uint64_t id, scope;
    int64_t created_ms, last_hit_ms; /* wall clock, ms since the epoch */
    uint64_t hits;
    size_t size;                     /* bytes in the store */
    const char *tenant, *model, *text, *response; /* NUL-terminated */
    size_t text_len, response_len;
    sc_usage_t usage;
    double cost_usd;
    int has_vec;
    char *buf;                       /* owned: free with sc_cache_entry_clear() */
} sc_cache_entry_t;

void sc_cache_entry_clear(sc_cache_entry_t *e);

/* Read entry id into *e (SC_ERR_NOT_FOUND when absent). @remark the caller clears *e with
 * sc_cache_entry_clear(). */
sc_status_t sc_cache_get(sc_cache_t *c, uint64_t id, sc_cache_entry_t *e);

/* Call fn for every entry of tenant (NULL: all) in id order, at most limit (0: no limit); fn
 * returns non-zero to stop. The entry is borrowed for the duration of the call. */
typedef int (*sc_cache_visit_fn)(const sc_cache_entry_t *e, void *ud);
sc_status_t sc_cache_foreach(sc_cache_t *c, const char *tenant, size_t limit,
                             sc_cache_visit_fn fn, void *ud);

typedef struct {
    uint64_t entries, bytes, evictions, expired;
    uint64_t lookups, hits_exact, hits_semantic, misses;
    uint64_t refused[SC_GUARD_COUNT]; /* by reason */
    double rebuild_ms;                /* index ready at open: loaded or rebuilt, ms */
    int index_loaded;                 /* 1: this open loaded the saved partitions */
    double index_save_ms;             /* the last save, ms (0: none by this process) */
    uint64_t index_gen;               /* the store's index generation this index reflects */
    uint64_t indexed;                 /* vectors in the index (== entries with a vector) */
    uint64_t partitions;              /* scope partitions in the index */
} sc_cache_stats_t;

void sc_cache_stats(sc_cache_t *c, sc_cache_stats_t *out);

/* Remove every entry of tenant (NULL: all). Returns how many were removed in *removed. */
sc_status_t sc_cache_purge(sc_cache_t *c, const char *tenant, uint64_t *removed);
/* The same, for the entries created before before_ms (wall clock ms) only: a purge made on
 * another replica, applied here (the changelog). */
sc_status_t sc_cache_purge_before(sc_cache_t *c, const char *tenant, int64_t before_ms,
                                  uint64_t *removed);

/* `scrimp cache stats|ls|get|purge [--tenant T]`: argv[0] is the subcommand; cfg is the
 * configuration the caller built from -c FILE and -X k=v (cache.* keys). Returns the exit
 * status (0 ok, 1 runtime error, 2 usage). */
int sc_cache_cli(const sc_config_t *cfg, int argc, char **argv);

#endif
