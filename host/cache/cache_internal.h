/* cache_internal.h - internal to host/cache/{cache,scope,store,index,index_file}.c: struct
 * sc_cache, the record and partition types, and the functions those files share (not the API). */
#ifndef SC_CACHE_INTERNAL_H
#define SC_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <lmdb.h>

#include "host/cache/cache.h"
#include "host/cache/gpu_flat.h"

#define SC_CACHE_TOPK 8                       /* candidates per query after filtering */
#define SC_CACHE_PENDING_MAX 4096             /* hit updates / expiries queued by lookups */
#define SC_CACHE_KEY_OVERHEAD 48              /* exact key + id, LRU key, per entry */
#define SC_CACHE_GPU_SLACK 4096               /* GPU capacity beyond max_bytes / vector size */
#define SC_CACHE_GPU_MAX (1ull << 25)
#define SC_CACHE_PATH_MAX 4096
#define SC_CACHE_IX_FILE "index.scx"          /* the saved partitions, next to data.mdb */
#define SC_CACHE_IX_TMP "index.scx.tmp"       /* written, synced, then renamed over the file */
#define SC_CACHE_STORE_ID_LEN 16
#define SC_CACHE_META_STORE_ID "store_id"     /* meta: random, made with the store */
#define SC_CACHE_META_GEN "index_gen"         /* meta: +1 by every commit that adds or deletes */

/* ---- record layout ----
 * entries: id (uint64, MDB_INTEGERKEY) -> header, tenant\0, model\0, dim floats, text\0, resp\0.
 * exact:   scope (8) || xxh3_128 of the normalised text (16) -> id (8).
 * lru:     be64(last_hit_ms) || be64(id) -> nothing; the first key is the least recently hit. */
typedef struct {
    uint32_t magic, dim;
    uint64_t scope;
    int64_t created_ms, last_hit_ms;
    uint64_t hits;
    uint64_t key_lo, key_hi; /* xxh3_128 of the normalised text */
    int64_t usage[4];        /* prompt, cached, output, thought tokens */
    double cost_usd;
    uint32_t tenant_len, model_len, text_len, resp_len;
} sc_rec_hdr_t;

typedef struct {
    sc_rec_hdr_t h;
    const char *tenant, *model, *text, *resp; /* into the value, NUL-terminated */
    const unsigned char *vec;                 /* dim floats, unaligned */
    size_t size;                              /* value bytes */
} sc_rec_t;

typedef struct {
    unsigned char b[24];
} sc_exact_key_t;

typedef struct {
    uint64_t id, scope;
} sc_idscope_t;

/* ---- the saved index (index.scx) ----
 * header, then per hnsw/ivf partition: sc_ix_part_t, n_dead int64 ids (HNSW: removed ids still in
 * the graph), the FAISS index (faiss_write_index). Native byte order: the file is this machine's.
 * It describes the store whose meta holds store_id and index_gen == gen, with these parameters;
 * payload_hash (XXH3-64 of everything after the header) and header_hash catch a torn or corrupt
 * file before FAISS reads it. Flat partitions are not saved: they are cheaper to build. */
#define SC_CACHE_IX_MAGIC 0x49584353u         /* "SCXI" */
#define SC_CACHE_IX_VERSION 1u

typedef struct {
    uint32_t magic, version;
    unsigned char store_id[SC_CACHE_STORE_ID_LEN];
    uint64_t gen;
    char kind[16];
    uint32_t dim, hnsw_m, hnsw_ef_construction, ivf_nlist;
    uint64_t ann_min;
    uint64_t n_parts;
    uint64_t payload_len, payload_hash;
    uint64_t header_hash; /* XXH3-64 of the bytes before it */
} sc_ix_hdr_t;

typedef struct {
    uint64_t scope;
    uint32_t kind, nlist; /* sc_part_kind_t; IVF lists */
    uint64_t live, n_dead;
} sc_ix_part_t;

/* ---- small hash tables (linear probing) ---- */

typedef enum { SC_PART_FLAT = 0, SC_PART_HNSW, SC_PART_IVF } sc_part_kind_t;

typedef struct {
    int64_t *slot; /* 0 = empty (ids start at 1) */
    size_t cap, n;
} sc_idset_t;

typedef struct {
    uint64_t scope;
    FaissIndex *ix;     /* owned */
    sc_part_kind_t kind;
    int nlist;          /* IVF lists */
    size_t live;        /* vectors that answer (ntotal minus dead) */
    sc_idset_t dead;    /* HNSW only: removed ids still in the graph */
} sc_part_t;

typedef struct {
    sc_part_t **slot;
    size_t cap, n;
} sc_pmap_t;

typedef struct {
    uint64_t id;
    int64_t when_ms;
} sc_pend_hit_t;

/* A growable array of (id, scope) with a bound given by the caller's context. */
typedef struct {
    sc_idscope_t *v;
    size_t n, cap;
} sc_idlist_t;

struct sc_cache {
    sc_cache_opts_t opts;
    char path[SC_CACHE_PATH_MAX];
    char index_kind[16];
    MDB_env *env;
    MDB_dbi db_entries, db_exact, db_lru, db_meta;
    uint64_t next_id;               /* under wmu */
    unsigned char store_id[SC_CACHE_STORE_ID_LEN];
    _Atomic uint64_t gen;           /* written under wmu: the index generation the index reflects */
    int txn_changed;                /* under wmu: the open write transaction adds or deletes */
    int index_stale;                /* under wmu: the index missed a change: never saved */

    pthread_mutex_t wmu;            /* one writer at a time */
    unsigned char *scratch;         /* under wmu: a record being rewritten */
    size_t scratch_cap;
    sc_idlist_t removed;            /* under wmu: ids to drop from the index after a commit */

    pthread_rwlock_t ilock;         /* the partitions / the GPU index */
    sc_pmap_t parts;
    FaissParameterSpace *ps;
    sc_gpu_flat_t *gpu;             /* owned; NULL: CPU partitions */

    pthread_mutex_t pmu;            /* pending work queued by lookups */
    sc_pend_hit_t pend_hits[SC_CACHE_PENDING_MAX];
    size_t n_pend_hits;
    uint64_t pend_exp[SC_CACHE_PENDING_MAX];
    size_t n_pend_exp;
    sc_pend_hit_t work_hits[SC_CACHE_PENDING_MAX]; /* under wmu: the batch being written */
    uint64_t work_exp[SC_CACHE_PENDING_MAX];

    _Atomic uint64_t entries, bytes, evictions, expired, indexed;
    _Atomic uint64_t lookups, hits_exact, hits_semantic, misses;
    _Atomic uint64_t refused[SC_GUARD_COUNT];
    double rebuild_ms;
    int index_loaded;

    pthread_mutex_t smu;            /* one save at a time */
    uint64_t saved_gen;             /* under smu: the generation index.scx describes */
    int saved_valid;                /* under smu: saved_gen is set */
    _Atomic int64_t save_us;        /* the last save's duration */
    pthread_mutex_t cmu;            /* the checkpoint thread */
    pthread_cond_t ccv;
    pthread_t ckpt;
    int ckpt_running, ckpt_stop;    /* under cmu */
    int ready;                      /* opened: close saves the index */
};

/* A stored vector on its way into the index. */
typedef struct {
    uint64_t scope;
    uint64_t id;
    const unsigned char *vec; /* into the read transaction's pages */
    int expired;              /* at open: stored but past its TTL */
} sc_row_t;

/* A semantic query of a lookup: its scope and its index in the caller's array. */
typedef struct {
    uint64_t scope;
    size_t q;
} sc_sq_t;

/* ---- scope.c ---- */

/* The exact-layer key of text in scope (k) and the xxh3_128 of the normalised text (lo, hi). */
sc_status_t sc_cache_exact_key(uint64_t scope, const char *text, size_t len, sc_exact_key_t *k,
                               uint64_t *lo, uint64_t *hi);

/* ---- store.c: records, transactions, meta, store writes, eviction, pending hit updates ---- */

/* r points into v (the transaction's pages). 0: a well-formed record. */
int sc_cache_rec_parse(const MDB_val *v, sc_rec_t *r);
int sc_cache_rec_expired(const sc_cache_t *c, const sc_rec_t *r, int64_t now_ms);
/* An LMDB return code as a status (logged unless MDB_SUCCESS). */
sc_status_t sc_cache_mdb_status(int rc, const char *what);
uint64_t sc_cache_meta_u64(MDB_txn *txn, MDB_dbi db, const char *key);
int sc_cache_wtxn_begin(sc_cache_t *c, MDB_txn **txn);
int sc_cache_wtxn_commit(sc_cache_t *c, MDB_txn *txn);
int sc_cache_meta_init(sc_cache_t *c, MDB_txn *txn);
/* Under wmu, inside a write transaction. */
sc_status_t sc_cache_store_del(sc_cache_t *c, MDB_txn *txn, uint64_t id, const sc_rec_t *r,
                               int64_t *dbytes);
sc_status_t sc_cache_store_put(sc_cache_t *c, MDB_txn *txn, const sc_cache_item_t *it, uint64_t id,
                               int64_t now, int64_t *dentries, int64_t *dbytes);
sc_status_t sc_cache_flush_pending(sc_cache_t *c, MDB_txn *txn, int64_t *dentries, int64_t *dbytes,
                                   uint64_t *dexpired);
void sc_cache_apply_deltas(sc_cache_t *c, int64_t dentries, int64_t dbytes, uint64_t dexpired);
sc_status_t sc_cache_evict(sc_cache_t *c);
/* Lookups queue hit updates and expiries (pmu); a writer writes them. */
void sc_cache_pend_hit(sc_cache_t *c, uint64_t id, int64_t now);
void sc_cache_pend_expired(sc_cache_t *c, uint64_t id);
void sc_cache_maybe_flush(sc_cache_t *c);

/* ---- index.c: id sets, the partition map, the FAISS partitions, the GPU index ---- */

sc_status_t sc_cache_idlist_push(sc_idlist_t *l, uint64_t id, uint64_t scope);
int sc_cache_idset_has(const sc_idset_t *s, int64_t id);
sc_status_t sc_cache_idset_add(sc_idset_t *s, int64_t id);
sc_part_t *sc_cache_pmap_get(const sc_pmap_t *m, uint64_t scope);
/* @remark the map owns p from here on (freed by sc_cache_pmap_clear()). */
sc_status_t sc_cache_pmap_put(sc_pmap_t *m, sc_part_t *p);
void sc_cache_pmap_clear(sc_pmap_t *m);
void sc_cache_part_free(sc_part_t *p);
/* Under ilock held for writing. */
sc_status_t sc_cache_part_tune(sc_cache_t *c, FaissIndex *ix, sc_part_kind_t kind, int nlist);
void sc_cache_part_remove(sc_cache_t *c, uint64_t scope, const int64_t *ids, size_t n);
sc_status_t sc_cache_index_add_rows(sc_cache_t *c, sc_row_t *rows, size_t n);
/* Takes ilock itself. */
void sc_cache_index_apply_removed(sc_cache_t *c);
sc_status_t sc_cache_rebuild(sc_cache_t *c);
/* Under ilock (read). */
sc_status_t sc_cache_search_partitions(sc_cache_t *c, const sc_cache_query_t *q, const sc_sq_t *sq,
                                       size_t m, float *cs, int64_t *ci);
void sc_cache_gpu_init(sc_cache_t *c);

/* ---- index_file.c: the saved index (index.scx) and the checkpoint thread ---- */

int sc_cache_persist_on(const sc_cache_t *c);
void sc_cache_ix_path(const sc_cache_t *c, const char *name, char *out, size_t len);
sc_status_t sc_cache_index_save(sc_cache_t *c, const char *trigger);
/* The header this cache writes for generation gen (no counts, no hashes), and the checksum of a
 * header (XXH3-64 of the bytes before header_hash): what a file must carry to be read. */
void sc_cache_ix_stamp(const sc_cache_t *c, uint64_t gen, sc_ix_hdr_t *h);
uint64_t sc_cache_ix_header_hash(const sc_ix_hdr_t *h);
/* @remark the caller clears *parts with sc_cache_pmap_clear(). */
int sc_cache_ix_read(sc_cache_t *c, uint64_t gen, sc_pmap_t *parts);
int sc_cache_ix_matches(const sc_pmap_t *parts, const sc_row_t *rows, size_t n);
sc_status_t sc_cache_ix_adopt(sc_cache_t *c, sc_pmap_t *loaded, sc_row_t *rows, size_t *n,
                              uint64_t *maxid);
/* The checkpoint thread: saves every checkpoint_s until ckpt_stop (cmu, ccv). */
void *sc_cache_ckpt_main(void *arg);

#endif
