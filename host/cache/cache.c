/* cache.c - the semantic cache: scope hashing, text normalisation, the LMDB store (entries, exact
 * keys, LRU order, meta), the per-scope FAISS partitions (saved next to the store and loaded when
 * their stamp matches it, else rebuilt from the store at open), lookups (exact, then semantic inside
 * the query's own partition, then the guards), TTL, LRU eviction, purge. */
#include "host/cache/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <lmdb.h>
#include <omp.h>
#include <utf8proc.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "host/cache/gpu_flat.h"
#include "host/core/log.h"
#include "host/core/util.h"

#define SC_CACHE_MAGIC 0x53434331u            /* "SCC1": record format version */
#define SC_CACHE_TOPK 8                       /* candidates per query after filtering */
#define SC_CACHE_DEAD_EXTRA_MAX 64            /* extra HNSW candidates to step over deleted ids */
#define SC_CACHE_HNSW_DEAD_FRACTION 4         /* rebuild an HNSW partition past live/4 dead ids */
#define SC_CACHE_IVF_MIN_PER_LIST 39          /* FAISS's minimum training points per list */
#define SC_CACHE_PENDING_MAX 4096             /* hit updates / expiries queued by lookups */
#define SC_CACHE_MAP_FACTOR 4                 /* LMDB map: pages, overflow and free pages */
#define SC_CACHE_MAP_HEADROOM (256ull << 20)
#define SC_CACHE_MAP_MAX (1ull << 44)
#define SC_CACHE_MAX_READERS 512              /* concurrent read transactions */
#define SC_CACHE_KEY_OVERHEAD 48              /* exact key + id, LRU key, per entry */
#define SC_CACHE_EVICT_PERCENT 90             /* evict down to this share of max_bytes */
#define SC_CACHE_FIELD_MAX (64u << 20)        /* text / response / tenant / model bytes */
#define SC_CACHE_GPU_SLACK 4096               /* GPU capacity beyond max_bytes / vector size */
#define SC_CACHE_GPU_MAX (1ull << 25)
#define SC_CACHE_PAR_MIN 16                   /* queries per search before FAISS may use a team */
#define SC_CACHE_PATH_MAX 4096
#define SC_CACHE_DESC_MAX 64
#define SC_CACHE_IX_FILE "index.scx"          /* the saved partitions, next to data.mdb */
#define SC_CACHE_IX_TMP "index.scx.tmp"       /* written, synced, then renamed over the file */
#define SC_CACHE_IX_MAGIC 0x49584353u         /* "SCXI" */
#define SC_CACHE_IX_VERSION 1u
#define SC_CACHE_IX_DEAD_MAX (1ull << 32)     /* bounds for a partition record */
#define SC_CACHE_IO_CHUNK (1u << 20)
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

/* ---- the saved index (index.scx) ----
 * header, then per hnsw/ivf partition: sc_ix_part_t, n_dead int64 ids (HNSW: removed ids still in
 * the graph), the FAISS index (faiss_write_index). Native byte order: the file is this machine's.
 * It describes the store whose meta holds store_id and index_gen == gen, with these parameters;
 * payload_hash (XXH3-64 of everything after the header) and header_hash catch a torn or corrupt
 * file before FAISS reads it. Flat partitions are not saved: they are cheaper to build. */
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

typedef struct {
    uint64_t id, scope;
} sc_idscope_t;

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

/* ---- options ---- */

void sc_cache_opts_default(sc_cache_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->path = "var/cache";
    o->max_bytes = (size_t)1 << 30;
    o->ttl_s = 604800;
    o->threshold = 0.96;
    o->strict_band = 0.02;
    o->guards = 1;
    o->index = "flat";
    o->hnsw_m = 32;
    o->hnsw_ef_search = 96; /* recall@1 ≥ 0.99 at 1M entries (bench/results/cache.md) */
    o->hnsw_ef_construction = 80;
    o->ivf_nlist = 1024;
    o->ivf_nprobe = 16;
    o->ann_min = 20000;
    o->dim = 384;
    o->use_gpu = 1;
    o->index_save = 1;
    o->checkpoint_s = 600;
}

void sc_cache_opts_from_config(const sc_config_t *cfg, sc_cache_opts_t *o)
{
    sc_cache_opts_default(o);
    o->path = sc_config_str(cfg, "cache.path");
    o->max_bytes = (size_t)sc_config_int(cfg, "cache.max_bytes");
    o->ttl_s = (int64_t)sc_config_int(cfg, "cache.ttl_s");
    o->threshold = sc_config_num(cfg, "cache.threshold");
    o->strict_band = sc_config_num(cfg, "cache.strict_band");
    o->guards = sc_config_bool(cfg, "cache.guards");
    o->index = sc_config_str(cfg, "cache.index");
    o->ann_min = (size_t)sc_config_int(cfg, "cache.ann_min");
    o->hnsw_m = (int)sc_config_int(cfg, "cache.hnsw_m");
    o->hnsw_ef_search = (int)sc_config_int(cfg, "cache.hnsw_ef_search");
    o->hnsw_ef_construction = (int)sc_config_int(cfg, "cache.hnsw_ef_construction");
    o->ivf_nlist = (int)sc_config_int(cfg, "cache.ivf_nlist");
    o->ivf_nprobe = (int)sc_config_int(cfg, "cache.ivf_nprobe");
    o->use_gpu = sc_config_bool(cfg, "cache.gpu");
    o->index_save = sc_config_bool(cfg, "cache.index_save");
    o->checkpoint_s = (int64_t)sc_config_int(cfg, "cache.checkpoint_s");
}

/* ---- scope ---- */

/* Each field: a tag, a presence byte, a 64-bit length, the bytes; so no two different field
 * sequences can feed the same stream. */
static void scope_field(XXH3_state_t *st, unsigned char tag, const void *p, size_t len)
{
    unsigned char hdr[10];
    uint64_t l = len;
    hdr[0] = tag;
    hdr[1] = p != NULL;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (unsigned char)(l >> (8 * i));
    XXH3_64bits_update(st, hdr, sizeof(hdr));
    if (p && len)
        XXH3_64bits_update(st, p, len);
}

uint64_t sc_cache_scope(const sc_request_t *req, const char *tier)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    const char *t = req->tenant;
    scope_field(&st, 'T', t, t ? strlen(t) : 0);
    scope_field(&st, 'M', tier, tier ? strlen(tier) : 0);
    scope_field(&st, 'S', req->system, req->system ? strlen(req->system) : 0);
    if (req->has_temperature) {
        /* rounded to 2 decimals: 0.2 and 0.2000001 are the same setting */
        int64_t centi = (int64_t)llround(req->temperature * 100.0);
        unsigned char b[8];
        for (int i = 0; i < 8; i++)
            b[i] = (unsigned char)((uint64_t)centi >> (8 * i));
        scope_field(&st, 'P', b, sizeof(b));
    } else {
        scope_field(&st, 'P', NULL, 0);
    }
    const char *mime = req->response_mime_type;
    scope_field(&st, 'R', mime, mime ? strlen(mime) : 0);
    /* the earlier conversation: every turn before the last one (the embedded user turn) */
    size_t earlier = req->n_turns ? req->n_turns - 1 : 0;
    unsigned char nb[8];
    for (int i = 0; i < 8; i++)
        nb[i] = (unsigned char)((uint64_t)earlier >> (8 * i));
    scope_field(&st, 'N', nb, sizeof(nb));
    for (size_t i = 0; i < earlier; i++) {
        const sc_turn_t *tu = &req->turns[i];
        scope_field(&st, 'r', tu->role, tu->role ? strlen(tu->role) : 0);
        scope_field(&st, 'c', tu->content, tu->content ? tu->content_len : 0);
    }
    return XXH3_64bits_digest(&st);
}

/* ---- normalisation ---- */

static int is_space_cp(utf8proc_int32_t cp)
{
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || cp == 0x85)
        return 1;
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
           cat == UTF8PROC_CATEGORY_ZP;
}

/* Collapse runs of whitespace to one space and trim, in place (the text only shrinks). */
static size_t collapse_utf8(unsigned char *s, size_t n)
{
    size_t r = 0, w = 0;
    int pending_space = 0;
    while (r < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + r, (utf8proc_ssize_t)(n - r), &cp);
        if (k <= 0) { /* cannot happen after utf8proc_map; keep the byte */
            cp = -1;
            k = 1;
        }
        if (cp >= 0 && is_space_cp(cp)) {
            pending_space = w > 0;
        } else {
            if (pending_space)
                s[w++] = ' ';
            pending_space = 0;
            memmove(s + w, s + r, (size_t)k);
            w += (size_t)k;
        }
        r += (size_t)k;
    }
    return w;
}

/* Not UTF-8: lower-case ASCII and collapse ASCII whitespace, byte by byte. */
static size_t collapse_bytes(unsigned char *s, size_t n)
{
    size_t w = 0;
    int pending_space = 0;
    for (size_t r = 0; r < n; r++) {
        unsigned char ch = s[r];
        if (ch == ' ' || (ch >= 0x09 && ch <= 0x0d)) {
            pending_space = w > 0;
            continue;
        }
        if (pending_space)
            s[w++] = ' ';
        pending_space = 0;
        s[w++] = (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + 32) : ch;
    }
    return w;
}

/* The whole normalised text. @remark the caller frees the result; NULL when out of memory. */
static char *norm_dup(const char *text, size_t len, size_t *out_len)
{
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE |
                                          UTF8PROC_CASEFOLD | UTF8PROC_IGNORE);
    if (m >= 0) {
        *out_len = collapse_utf8(dst, (size_t)m);
        dst[*out_len] = '\0';
        return (char *)dst;
    }
    if (m == UTF8PROC_ERROR_NOMEM)
        return NULL;
    char *raw = malloc(len + 1);
    if (!raw)
        return NULL;
    memcpy(raw, text, len);
    *out_len = collapse_bytes((unsigned char *)raw, len);
    raw[*out_len] = '\0';
    return raw;
}

size_t sc_cache_normalize(const char *text, size_t len, char *out, size_t cap)
{
    if (!cap)
        return 0;
    size_t n = 0;
    char *s = norm_dup(text, len, &n);
    if (!s) {
        out[0] = '\0';
        return 0;
    }
    if (n > cap - 1) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) /* not inside a character */
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    free(s);
    return n;
}

static sc_status_t exact_key(uint64_t scope, const char *text, size_t len, sc_exact_key_t *k,
                             uint64_t *lo, uint64_t *hi)
{
    size_t n;
    char *s = norm_dup(text, len, &n);
    if (!s)
        return SC_ERR_NOMEM;
    XXH128_hash_t h = XXH3_128bits(s, n);
    free(s);
    memcpy(k->b, &scope, 8);
    memcpy(k->b + 8, &h.low64, 8);
    memcpy(k->b + 16, &h.high64, 8);
    *lo = h.low64;
    *hi = h.high64;
    return SC_OK;
}

/* ---- records ---- */

static int rec_parse(const MDB_val *v, sc_rec_t *r)
{
    if (v->mv_size < sizeof(sc_rec_hdr_t))
        return -1;
    memcpy(&r->h, v->mv_data, sizeof(r->h));
    if (r->h.magic != SC_CACHE_MAGIC)
        return -1;
    uint64_t need = sizeof(sc_rec_hdr_t) + (uint64_t)r->h.tenant_len + 1 + r->h.model_len + 1 +
                    (uint64_t)r->h.dim * sizeof(float) + r->h.text_len + 1 + r->h.resp_len + 1;
    if (need != v->mv_size)
        return -1;
    const char *p = (const char *)v->mv_data + sizeof(sc_rec_hdr_t);
    r->tenant = p;
    p += r->h.tenant_len + 1;
    r->model = p;
    p += r->h.model_len + 1;
    r->vec = (const unsigned char *)p;
    p += (size_t)r->h.dim * sizeof(float);
    r->text = p;
    p += r->h.text_len + 1;
    r->resp = p;
    r->size = v->mv_size;
    return 0;
}

static size_t rec_size(uint32_t dim, size_t tl, size_t ml, size_t xl, size_t rl)
{
    return sizeof(sc_rec_hdr_t) + tl + 1 + ml + 1 + (size_t)dim * sizeof(float) + xl + 1 + rl + 1;
}

static void rec_write(unsigned char *dst, const sc_rec_hdr_t *h, const char *tenant,
                      const char *model, const float *vec, const char *text, const char *resp)
{
    unsigned char *p = dst;
    memcpy(p, h, sizeof(*h));
    p += sizeof(*h);
    memcpy(p, tenant, h->tenant_len);
    p[h->tenant_len] = 0;
    p += h->tenant_len + 1;
    memcpy(p, model, h->model_len);
    p[h->model_len] = 0;
    p += h->model_len + 1;
    if (h->dim) {
        memcpy(p, vec, (size_t)h->dim * sizeof(float));
        p += (size_t)h->dim * sizeof(float);
    }
    memcpy(p, text, h->text_len);
    p[h->text_len] = 0;
    p += h->text_len + 1;
    memcpy(p, resp, h->resp_len);
    p[h->resp_len] = 0;
}

static void lru_key(unsigned char k[16], int64_t when_ms, uint64_t id)
{
    uint64_t w = (uint64_t)when_ms;
    for (int i = 0; i < 8; i++) {
        k[i] = (unsigned char)(w >> (56 - 8 * i));
        k[8 + i] = (unsigned char)(id >> (56 - 8 * i));
    }
}

static uint64_t lru_key_id(const unsigned char *k)
{
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id = (id << 8) | k[8 + i];
    return id;
}

static int rec_expired(const sc_cache_t *c, const sc_rec_t *r, int64_t now_ms)
{
    return c->opts.ttl_s > 0 && now_ms - r->h.created_ms >= c->opts.ttl_s * 1000;
}

static sc_status_t mdb_status(int rc, const char *what)
{
    if (rc == MDB_SUCCESS)
        return SC_OK;
    sc_error("cache_lmdb", "op=%s error=\"%s\"", what, mdb_strerror(rc));
    if (rc == MDB_MAP_FULL)
        return SC_ERR_FULL;
    return rc == ENOMEM ? SC_ERR_NOMEM : SC_ERR_IO;
}

static uint64_t meta_u64(MDB_txn *txn, MDB_dbi db, const char *key)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    uint64_t x = 0;
    if (!mdb_get(txn, db, &k, &v) && v.mv_size == sizeof(x))
        memcpy(&x, v.mv_data, sizeof(x));
    return x;
}

/* Write transactions (under wmu). One that inserts or deletes an entry (txn_changed) also moves
 * the store's index generation on, in the same commit: a saved index stamped with an older
 * generation is then never loaded. Hit updates alone keep the generation. */
static int wtxn_begin(sc_cache_t *c, MDB_txn **txn)
{
    c->txn_changed = 0;
    return mdb_txn_begin(c->env, NULL, 0, txn);
}

static int wtxn_commit(sc_cache_t *c, MDB_txn *txn)
{
    uint64_t gen = c->gen;
    if (c->txn_changed) {
        uint64_t cur = meta_u64(txn, c->db_meta, SC_CACHE_META_GEN);
        if (cur != c->gen) /* another process changed the store: this index lacks it */
            c->index_stale = 1;
        gen = cur + 1;
        MDB_val k = {strlen(SC_CACHE_META_GEN), SC_CACHE_META_GEN}, v = {sizeof(gen), &gen};
        int rc = mdb_put(txn, c->db_meta, &k, &v, 0);
        if (rc) {
            mdb_txn_abort(txn);
            return rc;
        }
    }
    c->txn_changed = 0;
    int rc = mdb_txn_commit(txn);
    if (!rc)
        c->gen = gen;
    return rc;
}

static sc_status_t idlist_push(sc_idlist_t *l, uint64_t id, uint64_t scope)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        sc_idscope_t *v = realloc(l->v, nc * sizeof(*v));
        if (!v)
            return SC_ERR_NOMEM;
        l->v = v;
        l->cap = nc;
    }
    l->v[l->n].id = id;
    l->v[l->n].scope = scope;
    l->n++;
    return SC_OK;
}

/* ---- id set and partition map ---- */

static size_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x;
}

static int idset_has(const sc_idset_t *s, int64_t id)
{
    if (!s->cap)
        return 0;
    size_t m = s->cap - 1;
    for (size_t i = mix64((uint64_t)id) & m; s->slot[i]; i = (i + 1) & m)
        if (s->slot[i] == id)
            return 1;
    return 0;
}

static sc_status_t idset_add(sc_idset_t *s, int64_t id)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        int64_t *ns = calloc(nc, sizeof(*ns));
        if (!ns)
            return SC_ERR_NOMEM;
        for (size_t j = 0; j < s->cap; j++) {
            if (!s->slot[j])
                continue;
            size_t i = mix64((uint64_t)s->slot[j]) & (nc - 1);
            while (ns[i])
                i = (i + 1) & (nc - 1);
            ns[i] = s->slot[j];
        }
        free(s->slot);
        s->slot = ns;
        s->cap = nc;
    }
    size_t m = s->cap - 1, i = mix64((uint64_t)id) & m;
    for (; s->slot[i]; i = (i + 1) & m)
        if (s->slot[i] == id)
            return SC_OK;
    s->slot[i] = id;
    s->n++;
    return SC_OK;
}

static void idset_clear(sc_idset_t *s)
{
    free(s->slot);
    memset(s, 0, sizeof(*s));
}

static sc_part_t *pmap_get(const sc_pmap_t *m, uint64_t scope)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = mix64(scope) & mask; m->slot[i]; i = (i + 1) & mask)
        if (m->slot[i]->scope == scope)
            return m->slot[i];
    return NULL;
}

static sc_status_t pmap_put(sc_pmap_t *m, sc_part_t *p)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        sc_part_t **ns = calloc(nc, sizeof(*ns));
        if (!ns)
            return SC_ERR_NOMEM;
        for (size_t j = 0; j < m->cap; j++) {
            if (!m->slot[j])
                continue;
            size_t i = mix64(m->slot[j]->scope) & (nc - 1);
            while (ns[i])
                i = (i + 1) & (nc - 1);
            ns[i] = m->slot[j];
        }
        free(m->slot);
        m->slot = ns;
        m->cap = nc;
    }
    size_t mask = m->cap - 1, i = mix64(p->scope) & mask;
    while (m->slot[i])
        i = (i + 1) & mask;
    m->slot[i] = p;
    m->n++;
    return SC_OK;
}

/* Remove by backward shift, so that probing never needs tombstones. */
static void pmap_del(sc_pmap_t *m, uint64_t scope)
{
    if (!m->cap)
        return;
    size_t mask = m->cap - 1, i = mix64(scope) & mask;
    while (m->slot[i] && m->slot[i]->scope != scope)
        i = (i + 1) & mask;
    if (!m->slot[i])
        return;
    m->slot[i] = NULL;
    m->n--;
    for (size_t j = (i + 1) & mask; m->slot[j]; j = (j + 1) & mask) {
        size_t k = mix64(m->slot[j]->scope) & mask;
        int between = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!between) {
            m->slot[i] = m->slot[j];
            m->slot[j] = NULL;
            i = j;
        }
    }
}

static void part_free(sc_part_t *p)
{
    if (!p)
        return;
    faiss_Index_free(p->ix);
    idset_clear(&p->dead);
    free(p);
}

static void pmap_clear(sc_pmap_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        part_free(m->slot[i]);
    free(m->slot);
    memset(m, 0, sizeof(*m));
}

/* ---- FAISS partitions (all under ilock held for writing unless said otherwise) ---- */

static sc_status_t faiss_status(int rc, const char *what)
{
    if (!rc)
        return SC_OK;
    const char *m = faiss_get_last_error();
    sc_error("cache_faiss", "op=%s rc=%d error=\"%s\"", what, rc, m ? m : "unknown");
    return SC_ERR_IO;
}

static sc_part_kind_t part_kind_for(const sc_cache_t *c, size_t n)
{
    if (n < c->opts.ann_min)
        return SC_PART_FLAT;
    if (!strcmp(c->index_kind, "hnsw"))
        return SC_PART_HNSW;
    if (!strcmp(c->index_kind, "ivf") && n >= SC_CACHE_IVF_MIN_PER_LIST)
        return SC_PART_IVF;
    return SC_PART_FLAT;
}

/* The search-time settings of a partition's index (and HNSW's efConstruction for later adds). */
static sc_status_t part_tune(sc_cache_t *c, FaissIndex *ix, sc_part_kind_t kind, int nlist)
{
    if (kind == SC_PART_HNSW) {
        /* efConstruction is an extension of host/cache/faiss_c_compat.cpp; a real libfaiss_c refuses
         * it and FAISS's default stays */
        if (faiss_ParameterSpace_set_index_parameter(c->ps, ix, "efConstruction",
                                                     c->opts.hnsw_ef_construction))
            sc_debug("cache_faiss", "op=efConstruction result=unsupported");
        return faiss_status(faiss_ParameterSpace_set_index_parameter(c->ps, ix, "efSearch",
                                                                     c->opts.hnsw_ef_search),
                            "efSearch");
    }
    if (kind == SC_PART_IVF) {
        int nprobe = c->opts.ivf_nprobe < nlist ? c->opts.ivf_nprobe : nlist;
        return faiss_status(faiss_ParameterSpace_set_index_parameter(c->ps, ix, "nprobe", nprobe),
                            "nprobe");
    }
    return SC_OK;
}

/* A new index of the kind suited to n vectors, holding them. @remark the caller owns *out. */
static sc_status_t part_build_index(sc_cache_t *c, size_t n, const float *vecs,
                                    const int64_t *ids, FaissIndex **out, sc_part_kind_t *kind,
                                    int *nlist_out)
{
    char desc[SC_CACHE_DESC_MAX];
    FaissIndex *ix = NULL;
    sc_status_t st = SC_OK;
    int nlist = 0;
    *kind = part_kind_for(c, n);
    switch (*kind) {
    case SC_PART_FLAT:
        snprintf(desc, sizeof(desc), "IDMap,Flat");
        break;
    case SC_PART_HNSW:
        snprintf(desc, sizeof(desc), "IDMap,HNSW%d,Flat", c->opts.hnsw_m);
        break;
    case SC_PART_IVF: {
        size_t lists = n / SC_CACHE_IVF_MIN_PER_LIST;
        nlist = (int)(lists < (size_t)c->opts.ivf_nlist ? lists : (size_t)c->opts.ivf_nlist);
        if (nlist < 1)
            nlist = 1;
        snprintf(desc, sizeof(desc), "IVF%d,Flat", nlist);
        break;
    }
    }
    st = faiss_status(faiss_index_factory(&ix, c->opts.dim, desc, METRIC_INNER_PRODUCT), desc);
    if (st)
        goto out;
    if (*kind == SC_PART_IVF) {
        st = faiss_status(faiss_Index_train(ix, (idx_t)n, vecs), "ivf_train");
        if (st)
            goto out;
    }
    st = part_tune(c, ix, *kind, nlist);
    if (st)
        goto out;
    if (n)
        st = faiss_status(faiss_Index_add_with_ids(ix, (idx_t)n, vecs, ids), "add");
out:
    if (st) {
        faiss_Index_free(ix);
        ix = NULL;
    }
    *out = ix;
    *nlist_out = nlist;
    return st;
}

/* The live vectors and ids of an IDMap partition (flat or HNSW).
 * @remark the caller frees *vecs and *ids. */
static sc_status_t part_export(const sc_cache_t *c, sc_part_t *p, float **vecs, int64_t **ids,
                               size_t *n)
{
    *vecs = NULL;
    *ids = NULL;
    *n = 0;
    FaissIndexIDMap *m = faiss_IndexIDMap_cast(p->ix);
    if (!m)
        return SC_ERR_INVALID_ARG;
    idx_t *map = NULL;
    size_t total = 0;
    faiss_IndexIDMap_id_map(m, &map, &total);
    size_t d = (size_t)c->opts.dim;
    float *all = malloc((total ? total : 1) * d * sizeof(float));
    int64_t *keep = malloc((total ? total : 1) * sizeof(int64_t));
    sc_status_t st = SC_OK;
    if (!all || !keep) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    if (total) {
        st = faiss_status(faiss_Index_reconstruct_n(faiss_IndexIDMap_sub_index(m), 0,
                                                    (idx_t)total, all),
                          "reconstruct");
        if (st)
            goto out;
    }
    size_t w = 0;
    for (size_t i = 0; i < total; i++) {
        if (idset_has(&p->dead, map[i]))
            continue;
        if (w != i)
            memmove(all + w * d, all + i * d, d * sizeof(float));
        keep[w++] = map[i];
    }
    *vecs = all;
    *ids = keep;
    *n = w;
    all = NULL;
    keep = NULL;
out:
    free(all);
    free(keep);
    return st;
}

/* Replace p's index by a new one over its live vectors plus n more (kind chosen anew). */
static sc_status_t part_rebuild(sc_cache_t *c, sc_part_t *p, size_t n, const float *vecs,
                                const int64_t *ids)
{
    float *old = NULL, *all = NULL;
    int64_t *oldids = NULL, *allids = NULL;
    size_t m = 0, d = (size_t)c->opts.dim;
    FaissIndex *ix = NULL;
    sc_part_kind_t kind;
    int nlist = 0;
    sc_status_t st = part_export(c, p, &old, &oldids, &m);
    if (st)
        goto out;
    all = malloc((m + n + 1) * d * sizeof(float));
    allids = malloc((m + n + 1) * sizeof(int64_t));
    if (!all || !allids) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    memcpy(all, old, m * d * sizeof(float));
    memcpy(allids, oldids, m * sizeof(int64_t));
    if (n) {
        memcpy(all + m * d, vecs, n * d * sizeof(float));
        memcpy(allids + m, ids, n * sizeof(int64_t));
    }
    st = part_build_index(c, m + n, all, allids, &ix, &kind, &nlist);
    if (st)
        goto out;
    faiss_Index_free(p->ix);
    p->ix = ix;
    p->kind = kind;
    p->nlist = nlist;
    p->live = m + n;
    idset_clear(&p->dead);
out:
    free(old);
    free(oldids);
    free(all);
    free(allids);
    return st;
}

/* Add n vectors of one scope to its partition (created when missing). */
static sc_status_t part_add(sc_cache_t *c, uint64_t scope, size_t n, const float *vecs,
                            const int64_t *ids)
{
    sc_status_t st = SC_OK;
    sc_part_t *p = pmap_get(&c->parts, scope);
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return SC_ERR_NOMEM;
        p->scope = scope;
        st = part_build_index(c, n, vecs, ids, &p->ix, &p->kind, &p->nlist);
        if (!st)
            st = pmap_put(&c->parts, p);
        if (st) {
            part_free(p);
            return st;
        }
        p->live = n;
    } else if (p->kind == SC_PART_FLAT && part_kind_for(c, p->live + n) != SC_PART_FLAT) {
        st = part_rebuild(c, p, n, vecs, ids); /* the partition outgrew flat search */
        if (st)
            return st;
    } else {
        st = faiss_status(faiss_Index_add_with_ids(p->ix, (idx_t)n, vecs, ids), "add");
        if (st)
            return st;
        p->live += n;
    }
    atomic_fetch_add(&c->indexed, n);
    return SC_OK;
}

/* Remove n ids of one scope from its partition: one FAISS call for flat and IVF (removal there
 * is linear in the partition's size), the deleted-id set for HNSW. */
static void part_remove(sc_cache_t *c, uint64_t scope, const int64_t *ids, size_t n)
{
    sc_part_t *p = pmap_get(&c->parts, scope);
    if (!p || !n)
        return;
    if (p->kind == SC_PART_HNSW) { /* HNSW cannot remove: the ids are skipped in this partition */
        for (size_t i = 0; i < n && p->live; i++) {
            if (idset_has(&p->dead, ids[i]))
                continue;
            if (idset_add(&p->dead, ids[i])) {
                c->index_stale = 1; /* it may still answer (the store read skips it) */
                continue;
            }
            p->live--;
            atomic_fetch_sub(&c->indexed, 1);
        }
        if (p->live && p->dead.n * SC_CACHE_HNSW_DEAD_FRACTION > p->live &&
            part_rebuild(c, p, 0, NULL, NULL))
            sc_warn("cache_partition_rebuild", "scope=%016llx result=failed",
                    (unsigned long long)scope);
    } else {
        FaissIDSelectorBatch *sel = NULL;
        size_t removed = 0;
        if (faiss_status(faiss_IDSelectorBatch_new(&sel, n, ids), "selector")) {
            c->index_stale = 1;
            return;
        }
        if (faiss_status(faiss_Index_remove_ids(p->ix, (const FaissIDSelector *)sel, &removed),
                         "remove")) {
            c->index_stale = 1;
        } else if (removed) {
            p->live -= removed;
            atomic_fetch_sub(&c->indexed, removed);
        }
        faiss_IDSelector_free((FaissIDSelector *)sel);
    }
    if (!p->live) {
        pmap_del(&c->parts, scope);
        part_free(p);
    }
}

static int idscope_cmp(const void *a, const void *b)
{
    const sc_idscope_t *x = a, *y = b;
    if (x->scope != y->scope)
        return x->scope < y->scope ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Drop the ids of c->removed from the index (after their deletion was committed). */
static void index_apply_removed(sc_cache_t *c)
{
    sc_idlist_t *r = &c->removed;
    if (!r->n)
        return;
    qsort(r->v, r->n, sizeof(r->v[0]), idscope_cmp);
    int64_t *ids = malloc(r->n * sizeof(int64_t));
    pthread_rwlock_wrlock(&c->ilock);
    for (size_t i = 0, j; i < r->n; i = j) {
        for (j = i; j < r->n && r->v[j].scope == r->v[i].scope; j++) {
            if (ids)
                ids[j - i] = (int64_t)r->v[j].id;
            if (c->gpu && sc_gpu_flat_remove(c->gpu, (int64_t)r->v[j].id) == SC_OK)
                atomic_fetch_sub(&c->indexed, 1);
        }
        if (c->gpu)
            continue;
        if (ids) {
            part_remove(c, r->v[i].scope, ids, j - i);
        } else { /* out of memory for the batch: one at a time */
            for (size_t t = i; t < j; t++) {
                int64_t one = (int64_t)r->v[t].id;
                part_remove(c, r->v[t].scope, &one, 1);
            }
        }
    }
    pthread_rwlock_unlock(&c->ilock);
    free(ids);
    r->n = 0;
}

/* ---- store writes (under wmu, inside a write transaction) ---- */

/* Delete entry id (its record r) from the three databases; queue its vector for removal. */
static sc_status_t store_del(sc_cache_t *c, MDB_txn *txn, uint64_t id, const sc_rec_t *r,
                             int64_t *dbytes)
{
    MDB_val k = {sizeof(id), &id};
    sc_exact_key_t ek;
    unsigned char lk[16];
    memcpy(ek.b, &r->h.scope, 8);
    memcpy(ek.b + 8, &r->h.key_lo, 8);
    memcpy(ek.b + 16, &r->h.key_hi, 8);
    lru_key(lk, r->h.last_hit_ms, id);
    int has_vec = r->h.dim > 0;
    uint64_t scope = r->h.scope;
    size_t size = r->size; /* r points into pages this transaction is about to change */
    MDB_val ekv = {sizeof(ek.b), ek.b}, ev;
    int rc = mdb_get(txn, c->db_exact, &ekv, &ev);
    if (rc == MDB_SUCCESS && ev.mv_size == sizeof(uint64_t) && !memcmp(ev.mv_data, &id, 8)) {
        rc = mdb_del(txn, c->db_exact, &ekv, NULL);
        if (rc)
            return mdb_status(rc, "del_exact");
    }
    MDB_val lkv = {sizeof(lk), lk};
    rc = mdb_del(txn, c->db_lru, &lkv, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return mdb_status(rc, "del_lru");
    rc = mdb_del(txn, c->db_entries, &k, NULL);
    if (rc)
        return mdb_status(rc, "del_entry");
    c->txn_changed = 1;
    *dbytes -= (int64_t)(size + SC_CACHE_KEY_OVERHEAD);
    if (has_vec)
        return idlist_push(&c->removed, id, scope);
    return SC_OK;
}

static sc_status_t scratch_reserve(sc_cache_t *c, size_t n)
{
    if (n <= c->scratch_cap)
        return SC_OK;
    unsigned char *s = realloc(c->scratch, n);
    if (!s)
        return SC_ERR_NOMEM;
    c->scratch = s;
    c->scratch_cap = n;
    return SC_OK;
}

/* Write the hit updates and expiries lookups queued. Hit counters are best effort: a full
 * queue drops updates, and a crash loses the queued ones. */
static sc_status_t flush_pending(sc_cache_t *c, MDB_txn *txn, int64_t *dentries, int64_t *dbytes,
                                 uint64_t *dexpired)
{
    size_t nh, ne;
    pthread_mutex_lock(&c->pmu);
    nh = c->n_pend_hits;
    ne = c->n_pend_exp;
    memcpy(c->work_hits, c->pend_hits, nh * sizeof(c->pend_hits[0]));
    memcpy(c->work_exp, c->pend_exp, ne * sizeof(c->pend_exp[0]));
    c->n_pend_hits = c->n_pend_exp = 0;
    pthread_mutex_unlock(&c->pmu);

    int64_t now = sc_wall_ms();
    sc_status_t st = SC_OK;
    for (size_t i = 0; i < ne; i++) {
        uint64_t id = c->work_exp[i];
        MDB_val k = {sizeof(id), &id}, v;
        sc_rec_t r;
        if (mdb_get(txn, c->db_entries, &k, &v) || rec_parse(&v, &r) || !rec_expired(c, &r, now))
            continue;
        st = store_del(c, txn, id, &r, dbytes);
        if (st)
            return st;
        (*dentries)--;
        (*dexpired)++;
    }
    for (size_t i = 0; i < nh; i++) {
        uint64_t id = c->work_hits[i].id;
        MDB_val k = {sizeof(id), &id}, v;
        sc_rec_t r;
        if (mdb_get(txn, c->db_entries, &k, &v) || rec_parse(&v, &r))
            continue;
        st = scratch_reserve(c, v.mv_size);
        if (st)
            return st;
        memcpy(c->scratch, v.mv_data, v.mv_size);
        sc_rec_hdr_t h = r.h;
        unsigned char oldk[16], newk[16];
        lru_key(oldk, h.last_hit_ms, id);
        if (c->work_hits[i].when_ms > h.last_hit_ms)
            h.last_hit_ms = c->work_hits[i].when_ms;
        h.hits++;
        lru_key(newk, h.last_hit_ms, id);
        memcpy(c->scratch, &h, sizeof(h));
        MDB_val nv = {v.mv_size, c->scratch}, ok = {16, oldk}, nk = {16, newk}, empty = {0, NULL};
        int rc = mdb_put(txn, c->db_entries, &k, &nv, 0);
        if (!rc) {
            rc = mdb_del(txn, c->db_lru, &ok, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
        if (!rc)
            rc = mdb_put(txn, c->db_lru, &nk, &empty, 0);
        if (rc)
            return mdb_status(rc, "hit_update");
    }
    return SC_OK;
}

static void apply_deltas(sc_cache_t *c, int64_t dentries, int64_t dbytes, uint64_t dexpired)
{
    atomic_fetch_add(&c->entries, (uint64_t)dentries);
    atomic_fetch_add(&c->bytes, (uint64_t)dbytes);
    atomic_fetch_add(&c->expired, dexpired);
}

/* Delete the least recently hit entries until the store is under SC_CACHE_EVICT_PERCENT of
 * max_bytes. Under wmu. */
static sc_status_t evict(sc_cache_t *c)
{
    if (atomic_load(&c->bytes) <= c->opts.max_bytes)
        return SC_OK;
    uint64_t target = (uint64_t)((double)c->opts.max_bytes * SC_CACHE_EVICT_PERCENT / 100.0);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int64_t dentries = 0, dbytes = 0;
    uint64_t n = 0;
    sc_status_t st = mdb_status(wtxn_begin(c, &txn), "evict_begin");
    if (st)
        goto out;
    st = mdb_status(mdb_cursor_open(txn, c->db_lru, &cur), "evict_cursor");
    if (st)
        goto out;
    while ((int64_t)atomic_load(&c->bytes) + dbytes > (int64_t)target) {
        MDB_val k, v;
        int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == MDB_NOTFOUND)
            break;
        if (rc || k.mv_size != 16) {
            st = mdb_status(rc ? rc : MDB_CORRUPTED, "evict_first");
            goto out;
        }
        uint64_t id = lru_key_id(k.mv_data);
        MDB_val ik = {sizeof(id), &id}, iv;
        sc_rec_t r;
        rc = mdb_get(txn, c->db_entries, &ik, &iv);
        if (rc || rec_parse(&iv, &r)) { /* an orphan LRU key: drop it */
            st = mdb_status(mdb_cursor_del(cur, 0), "evict_orphan");
            if (st)
                goto out;
            continue;
        }
        st = store_del(c, txn, id, &r, &dbytes);
        if (st)
            goto out;
        dentries--;
        n++;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    st = mdb_status(wtxn_commit(c, txn), "evict_commit");
    txn = NULL;
    if (st)
        goto out;
    apply_deltas(c, dentries, dbytes, 0);
    atomic_fetch_add(&c->evictions, n);
    sc_info("cache_evict", "evicted=%llu bytes=%llu", (unsigned long long)n,
            (unsigned long long)atomic_load(&c->bytes));
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    if (st)
        c->removed.n = 0; /* nothing was deleted */
    index_apply_removed(c);
    return st;
}

/* ---- the saved index (index.scx) ---- */

/* Saving and loading apply to CPU hnsw/ivf partitions only: flat ones (and the GPU index) are
 * about as fast to build from the store as to read. */
static int persist_on(const sc_cache_t *c)
{
    return c->opts.index_save && !c->opts.store_only && !c->gpu &&
           (!strcmp(c->index_kind, "hnsw") || !strcmp(c->index_kind, "ivf"));
}

static void ix_path(const sc_cache_t *c, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", c->path, name);
}

/* The header this cache writes for generation gen (no counts, no hashes). */
static void ix_stamp(const sc_cache_t *c, uint64_t gen, sc_ix_hdr_t *h)
{
    memset(h, 0, sizeof(*h));
    h->magic = SC_CACHE_IX_MAGIC;
    h->version = SC_CACHE_IX_VERSION;
    memcpy(h->store_id, c->store_id, sizeof(h->store_id));
    h->gen = gen;
    sc_strlcpy(h->kind, c->index_kind, sizeof(h->kind));
    h->dim = (uint32_t)c->opts.dim;
    h->hnsw_m = (uint32_t)c->opts.hnsw_m;
    h->hnsw_ef_construction = (uint32_t)c->opts.hnsw_ef_construction;
    h->ivf_nlist = (uint32_t)c->opts.ivf_nlist;
    h->ann_min = c->opts.ann_min;
}

static uint64_t ix_header_hash(const sc_ix_hdr_t *h)
{
    return XXH3_64bits(h, offsetof(sc_ix_hdr_t, header_hash));
}

/* XXH3-64 of the next len bytes of f. -1 when they cannot all be read. */
static int ix_hash(FILE *f, uint64_t len, uint64_t *out)
{
    unsigned char *buf = malloc(SC_CACHE_IO_CHUNK);
    XXH3_state_t *hs = XXH3_createState();
    int rc = -1;
    if (!buf || !hs)
        goto out;
    XXH3_64bits_reset(hs);
    while (len) {
        size_t want = len < SC_CACHE_IO_CHUNK ? (size_t)len : SC_CACHE_IO_CHUNK;
        if (fread(buf, 1, want, f) != want)
            goto out;
        XXH3_64bits_update(hs, buf, want);
        len -= want;
    }
    *out = XXH3_64bits_digest(hs);
    rc = 0;
out:
    free(buf);
    if (hs)
        XXH3_freeState(hs);
    return rc;
}

/* Write the hnsw/ivf partitions, stamped with gen, to index.scx: a temporary file, synced, then
 * renamed over it, so that a crash leaves the old file or the new one. With none, index.scx is
 * removed. Under ilock (read). */
static sc_status_t ix_write(sc_cache_t *c, uint64_t gen, uint64_t *bytes, size_t *nparts)
{
    char tmp[SC_CACHE_PATH_MAX + 32], fin[SC_CACHE_PATH_MAX + 32], err[256] = "";
    ix_path(c, SC_CACHE_IX_TMP, tmp, sizeof(tmp));
    ix_path(c, SC_CACHE_IX_FILE, fin, sizeof(fin));
    size_t n = 0;
    for (size_t i = 0; i < c->parts.cap; i++)
        n += c->parts.slot[i] && c->parts.slot[i]->kind != SC_PART_FLAT;
    *bytes = 0;
    *nparts = n;
    if (!n) {
        if (unlink(fin) && errno != ENOENT) {
            sc_warn("cache_index_save", "op=unlink path=%s error=\"%s\"", fin, strerror(errno));
            return SC_ERR_IO;
        }
        return SC_OK;
    }
    sc_ix_hdr_t h;
    ix_stamp(c, gen, &h);
    h.n_parts = n;
    const char *op = "open";
    off_t end = 0;
    int rc;
    FILE *f = fopen(tmp, "w+b");
    if (!f)
        goto fail;
    op = "write";
    if (fwrite(&h, sizeof(h), 1, f) != 1)
        goto fail;
    for (size_t i = 0; i < c->parts.cap; i++) {
        sc_part_t *p = c->parts.slot[i];
        if (!p || p->kind == SC_PART_FLAT)
            continue;
        sc_ix_part_t ph;
        memset(&ph, 0, sizeof(ph));
        ph.scope = p->scope;
        ph.kind = (uint32_t)p->kind;
        ph.nlist = (uint32_t)p->nlist;
        ph.live = p->live;
        ph.n_dead = p->dead.n;
        if (fwrite(&ph, sizeof(ph), 1, f) != 1)
            goto fail;
        for (size_t j = 0; j < p->dead.cap; j++)
            if (p->dead.slot[j] && fwrite(&p->dead.slot[j], sizeof(int64_t), 1, f) != 1)
                goto fail;
        if (faiss_write_index(p->ix, f)) {
            const char *m = faiss_get_last_error();
            snprintf(err, sizeof(err), "faiss: %s", m ? m : "unknown");
            goto fail;
        }
    }
    if (fflush(f) || (end = ftello(f)) < (off_t)sizeof(h))
        goto fail;
    h.payload_len = (uint64_t)end - sizeof(h);
    op = "hash";
    if (fseeko(f, (off_t)sizeof(h), SEEK_SET) || ix_hash(f, h.payload_len, &h.payload_hash))
        goto fail;
    h.header_hash = ix_header_hash(&h);
    op = "write";
    if (fseeko(f, 0, SEEK_SET) || fwrite(&h, sizeof(h), 1, f) != 1 || fflush(f))
        goto fail;
    op = "fsync";
    if (fsync(fileno(f)))
        goto fail;
    op = "close";
    rc = fclose(f);
    f = NULL;
    if (rc)
        goto fail;
    op = "rename";
    if (rename(tmp, fin))
        goto fail;
    int dfd = open(c->path, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) { /* the rename itself, durable */
        if (fsync(dfd))
            sc_debug("cache_index_save", "op=fsync_dir error=\"%s\"", strerror(errno));
        close(dfd);
    }
    *bytes = (uint64_t)end;
    return SC_OK;
fail:
    if (!err[0])
        snprintf(err, sizeof(err), "%s", errno ? strerror(errno) : "short write");
    sc_warn("cache_index_save", "op=%s path=%s error=\"%s\"", op, tmp, err);
    if (f)
        fclose(f);
    unlink(tmp);
    return SC_ERR_IO;
}

/* Save the partitions when the store's generation moved since the last save. The generation is
 * read under wmu, where no commit is in flight and the index reflects every commit; the index is
 * then written under ilock (read): lookups go on, a writer commits but waits to index. */
static sc_status_t index_save(sc_cache_t *c, const char *trigger)
{
    if (!persist_on(c))
        return SC_OK;
    pthread_mutex_lock(&c->smu);
    pthread_mutex_lock(&c->wmu);
    MDB_txn *txn = NULL;
    if (mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)) {
        c->index_stale = 1;
    } else {
        if (meta_u64(txn, c->db_meta, SC_CACHE_META_GEN) != c->gen)
            c->index_stale = 1; /* another process changed the store */
        mdb_txn_abort(txn);
    }
    uint64_t gen = c->gen;
    int stale = c->index_stale;
    if (stale || (c->saved_valid && c->saved_gen == gen)) {
        pthread_mutex_unlock(&c->wmu);
        pthread_mutex_unlock(&c->smu);
        if (stale)
            sc_warn("cache_index_save", "trigger=%s result=skipped reason=\"the index missed a "
                    "change to the store\" note=\"the next open rebuilds\"", trigger);
        return SC_OK;
    }
    pthread_rwlock_rdlock(&c->ilock);
    pthread_mutex_unlock(&c->wmu);
    int64_t t0 = sc_now_us();
    uint64_t bytes = 0;
    size_t nparts = 0;
    sc_status_t st = ix_write(c, gen, &bytes, &nparts);
    pthread_rwlock_unlock(&c->ilock);
    if (!st) {
        c->saved_gen = gen;
        c->saved_valid = 1;
        int64_t us = sc_now_us() - t0;
        atomic_store(&c->save_us, us);
        sc_info("cache_index_save", "trigger=%s gen=%llu partitions=%zu bytes=%llu ms=%.1f",
                trigger, (unsigned long long)gen, nparts, (unsigned long long)bytes,
                (double)us / 1000.0);
    }
    pthread_mutex_unlock(&c->smu);
    return st;
}

/* Read index.scx into parts when its stamp is this store (store_id), generation gen and this
 * cache's index parameters, and its checksums hold. Returns 1 when loaded; 0 when there is none,
 * it is stale (logged as info) or it is unreadable (logged as a warning): then parts is empty. */
static int ix_read(sc_cache_t *c, uint64_t gen, sc_pmap_t *parts)
{
    char fin[SC_CACHE_PATH_MAX + 32];
    ix_path(c, SC_CACHE_IX_FILE, fin, sizeof(fin));
    FILE *f = fopen(fin, "rb");
    if (!f) {
        if (errno == ENOENT)
            sc_info("cache_index_load", "result=none action=rebuild");
        else
            sc_warn("cache_index_load", "result=unreadable path=%s error=\"%s\" action=rebuild",
                    fin, strerror(errno));
        return 0;
    }
    const char *bad = NULL;
    char faiss_err[200] = "";
    sc_ix_hdr_t h, want;
    struct stat sb;
    if (fstat(fileno(f), &sb)) {
        bad = "stat failed";
        goto out;
    }
    if (fread(&h, sizeof(h), 1, f) != 1) {
        bad = "truncated header";
        goto out;
    }
    if (h.magic != SC_CACHE_IX_MAGIC || h.header_hash != ix_header_hash(&h)) {
        bad = "bad header";
        goto out;
    }
    ix_stamp(c, gen, &want);
    if (h.version != want.version || memcmp(h.store_id, want.store_id, sizeof(h.store_id)) ||
        h.gen != want.gen || memcmp(h.kind, want.kind, sizeof(h.kind)) || h.dim != want.dim ||
        h.hnsw_m != want.hnsw_m || h.hnsw_ef_construction != want.hnsw_ef_construction ||
        h.ivf_nlist != want.ivf_nlist || h.ann_min != want.ann_min) {
        sc_info("cache_index_load", "result=stale file_gen=%llu store_gen=%llu same_store=%d "
                "same_params=%d action=rebuild", (unsigned long long)h.gen,
                (unsigned long long)gen, !memcmp(h.store_id, want.store_id, sizeof(h.store_id)),
                !memcmp(h.kind, want.kind, sizeof(h.kind)) && h.dim == want.dim &&
                    h.hnsw_m == want.hnsw_m &&
                    h.hnsw_ef_construction == want.hnsw_ef_construction &&
                    h.ivf_nlist == want.ivf_nlist && h.ann_min == want.ann_min);
        fclose(f);
        return 0;
    }
    uint64_t hash = 0;
    if ((uint64_t)sb.st_size != sizeof(h) + h.payload_len) {
        bad = "size differs from the header's (truncated?)";
        goto out;
    }
    if (ix_hash(f, h.payload_len, &hash) || hash != h.payload_hash) {
        bad = "payload checksum mismatch";
        goto out;
    }
    if (fseeko(f, (off_t)sizeof(h), SEEK_SET)) {
        bad = "seek failed";
        goto out;
    }
    for (uint64_t i = 0; i < h.n_parts && !bad; i++) {
        sc_ix_part_t ph;
        if (fread(&ph, sizeof(ph), 1, f) != 1 ||
            (ph.kind != SC_PART_HNSW && ph.kind != SC_PART_IVF) ||
            ph.n_dead > SC_CACHE_IX_DEAD_MAX || pmap_get(parts, ph.scope)) {
            bad = "bad partition record";
            break;
        }
        sc_part_t *p = calloc(1, sizeof(*p));
        if (!p) {
            bad = "out of memory";
            break;
        }
        p->scope = ph.scope;
        p->kind = (sc_part_kind_t)ph.kind;
        p->nlist = (int)ph.nlist;
        p->live = ph.live;
        for (uint64_t j = 0; j < ph.n_dead && !bad; j++) {
            int64_t id;
            if (fread(&id, sizeof(id), 1, f) != 1 || id <= 0 || idset_add(&p->dead, id))
                bad = "bad deleted ids";
        }
        if (!bad && faiss_read_index(f, 0, &p->ix)) {
            const char *m = faiss_get_last_error();
            snprintf(faiss_err, sizeof(faiss_err), "faiss: %s", m ? m : "unknown");
            bad = faiss_err;
            p->ix = NULL;
        }
        if (!bad && (faiss_Index_d(p->ix) != c->opts.dim || p->dead.n != ph.n_dead ||
                     faiss_Index_ntotal(p->ix) != (idx_t)(ph.live + ph.n_dead) || !ph.live))
            bad = "partition sizes differ from its record";
        if (!bad && part_tune(c, p->ix, p->kind, p->nlist))
            bad = "cannot set the search parameters";
        if (!bad && pmap_put(parts, p))
            bad = "out of memory";
        if (bad)
            part_free(p);
    }
    if (!bad && ftello(f) != sb.st_size)
        bad = "trailing bytes";
out:
    fclose(f);
    if (bad) {
        sc_warn("cache_index_load", "result=corrupt path=%s reason=\"%s\" action=rebuild", fin,
                bad);
        pmap_clear(parts);
        return 0;
    }
    return 1;
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    uint64_t scope;
    uint64_t id;
    const unsigned char *vec; /* into the read transaction's pages */
    int expired;              /* at open: stored but past its TTL */
} sc_row_t;

/* Whether every loaded partition holds exactly the store's vectors of its scope. rows: the store's
 * vectors (expired ones included: the saved index had them), sorted by (scope, id). HNSW (IDMap)
 * partitions are compared id by id, IVF ones by count. A defence behind the stamp. */
static int ix_matches(const sc_pmap_t *parts, const sc_row_t *rows, size_t n)
{
    size_t seen = 0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i; j < n && rows[j].scope == rows[i].scope; j++)
            ;
        sc_part_t *p = pmap_get(parts, rows[i].scope);
        if (!p)
            continue;
        seen++;
        if (p->live != j - i)
            return 0;
        FaissIndexIDMap *m = faiss_IndexIDMap_cast(p->ix);
        if (!m)
            continue;
        idx_t *map = NULL;
        size_t total = 0, w = 0;
        faiss_IndexIDMap_id_map(m, &map, &total);
        int64_t *live = malloc((j - i) * sizeof(int64_t));
        if (!live)
            return 0;
        for (size_t k = 0; k < total; k++) {
            if (idset_has(&p->dead, map[k]))
                continue;
            if (w == j - i) {
                free(live);
                return 0;
            }
            live[w++] = map[k];
        }
        qsort(live, w, sizeof(int64_t), i64_cmp);
        int same = w == j - i;
        for (size_t k = 0; same && k < w; k++)
            same = (uint64_t)live[k] == rows[i + k].id;
        free(live);
        if (!same)
            return 0;
    }
    return seen == parts->n;
}

/* Make the loaded partitions the index (ilock held for writing): drop their expired vectors, and
 * keep in rows (*n) only what is still to be built: the live vectors of the other scopes. *maxid
 * gets the largest id a loaded partition still holds (a deleted one in an HNSW graph), which new
 * entries must not reuse. */
static sc_status_t ix_adopt(sc_cache_t *c, sc_pmap_t *loaded, sc_row_t *rows, size_t *n,
                            uint64_t *maxid)
{
    *maxid = 0;
    for (size_t i = 0; i < loaded->cap; i++) {
        sc_part_t *p = loaded->slot[i];
        if (!p)
            continue;
        for (size_t j = 0; j < p->dead.cap; j++)
            if (p->dead.slot[j] && (uint64_t)p->dead.slot[j] > *maxid)
                *maxid = (uint64_t)p->dead.slot[j];
        sc_status_t st = pmap_put(&c->parts, p);
        if (st)
            return st; /* p stays in loaded, whose owner frees it */
        loaded->slot[i] = NULL;
        loaded->n--;
        atomic_fetch_add(&c->indexed, p->live);
    }
    size_t w = 0;
    for (size_t i = 0, j; i < *n; i = j) {
        for (j = i; j < *n && rows[j].scope == rows[i].scope; j++)
            ;
        if (!pmap_get(&c->parts, rows[i].scope)) {
            for (size_t k = i; k < j; k++)
                if (!rows[k].expired)
                    rows[w++] = rows[k];
            continue;
        }
        size_t ne = 0;
        for (size_t k = i; k < j; k++)
            ne += rows[k].expired;
        if (!ne)
            continue;
        int64_t *ids = malloc(ne * sizeof(int64_t));
        if (!ids)
            return SC_ERR_NOMEM;
        ne = 0;
        for (size_t k = i; k < j; k++)
            if (rows[k].expired)
                ids[ne++] = (int64_t)rows[k].id;
        part_remove(c, rows[i].scope, ids, ne);
        free(ids);
    }
    *n = w;
    return SC_OK;
}

/* ---- open / close ---- */

static sc_status_t mkdir_p(const char *path, char *errbuf, size_t errlen)
{
    char buf[SC_CACHE_PATH_MAX];
    if (sc_strlcpy(buf, path, sizeof(buf)) >= sizeof(buf)) {
        snprintf(errbuf, errlen, "cache.path: too long");
        return SC_ERR_INVALID_ARG;
    }
    for (char *p = buf + 1;; p++) {
        char ch = *p;
        if (ch != '/' && ch != '\0')
            continue;
        *p = '\0';
        if (mkdir(buf, 0775) && errno != EEXIST) {
            snprintf(errbuf, errlen, "cache.path: cannot create %s: %s", buf, strerror(errno));
            return SC_ERR_IO;
        }
        *p = ch;
        if (!ch)
            break;
    }
    return SC_OK;
}

static int row_cmp(const void *a, const void *b)
{
    const sc_row_t *x = a, *y = b;
    if (x->scope != y->scope)
        return x->scope < y->scope ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Add rows (sorted by scope) to the index, one partition per run of a scope. */
static sc_status_t index_add_rows(sc_cache_t *c, sc_row_t *rows, size_t n)
{
    size_t d = (size_t)c->opts.dim, maxrun = 0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i; j < n && rows[j].scope == rows[i].scope; j++)
            ;
        if (j - i > maxrun)
            maxrun = j - i;
    }
    float *vecs = malloc((maxrun ? maxrun : 1) * d * sizeof(float));
    int64_t *ids = malloc((maxrun ? maxrun : 1) * sizeof(int64_t));
    uint64_t *scopes = c->gpu ? malloc((maxrun ? maxrun : 1) * sizeof(uint64_t)) : NULL;
    sc_status_t st = SC_OK;
    if (!vecs || !ids || (c->gpu && !scopes)) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i; j < n && rows[j].scope == rows[i].scope; j++) {
            memcpy(vecs + (j - i) * d, rows[j].vec, d * sizeof(float));
            ids[j - i] = (int64_t)rows[j].id;
            if (scopes)
                scopes[j - i] = rows[j].scope;
        }
        if (c->gpu) {
            st = sc_gpu_flat_add(c->gpu, j - i, vecs, ids, scopes);
            if (!st)
                atomic_fetch_add(&c->indexed, j - i);
        } else {
            st = part_add(c, rows[i].scope, j - i, vecs, ids);
        }
        if (st)
            goto out;
    }
out:
    free(vecs);
    free(ids);
    free(scopes);
    return st;
}

/* Read every entry, drop the expired ones, and make the partitions: the saved ones when their
 * stamp and ids match the store, built from the store for every other scope. */
static sc_status_t rebuild(sc_cache_t *c)
{
    int64_t t0 = sc_now_us(), now = sc_wall_ms();
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    sc_row_t *rows = NULL;
    size_t nrows = 0, caprows = 0;
    uint64_t entries = 0, bytes = 0, last = 0, maxid = 0;
    sc_idlist_t expired = {0};
    sc_pmap_t loaded = {0};
    int have_saved = 0;
    double load_ms = 0;
    sc_status_t st = mdb_status(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn), "rebuild_begin");
    if (st)
        goto out;
    c->gen = meta_u64(txn, c->db_meta, SC_CACHE_META_GEN); /* what this snapshot reflects */
    if (persist_on(c)) {
        have_saved = ix_read(c, c->gen, &loaded);
        load_ms = (double)(sc_now_us() - t0) / 1000.0;
    }
    st = mdb_status(mdb_cursor_open(txn, c->db_entries, &cur), "rebuild_cursor");
    if (st)
        goto out;
    MDB_val k, v;
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t id;
        sc_rec_t r;
        int is_expired = 0;
        if (k.mv_size != sizeof(id))
            continue;
        memcpy(&id, k.mv_data, sizeof(id));
        last = id;
        if (rec_parse(&v, &r)) {
            sc_warn("cache_record", "id=%llu result=unreadable", (unsigned long long)id);
            continue;
        }
        if (rec_expired(c, &r, now)) {
            st = idlist_push(&expired, id, r.h.scope);
            if (st)
                goto out;
            if (!have_saved) /* a saved partition still holds it: it is checked, then dropped */
                continue;
            is_expired = 1;
        } else {
            entries++;
            bytes += r.size + SC_CACHE_KEY_OVERHEAD;
        }
        if (!r.h.dim || c->opts.store_only)
            continue;
        if (r.h.dim != (uint32_t)c->opts.dim) {
            if (!is_expired)
                sc_warn("cache_record", "id=%llu dim=%u want=%d result=not_indexed",
                        (unsigned long long)id, r.h.dim, c->opts.dim);
            continue;
        }
        if (nrows == caprows) {
            size_t nc = caprows ? caprows * 2 : 1024;
            sc_row_t *nr = realloc(rows, nc * sizeof(*nr));
            if (!nr) {
                st = SC_ERR_NOMEM;
                goto out;
            }
            rows = nr;
            caprows = nc;
        }
        rows[nrows].scope = r.h.scope;
        rows[nrows].id = id;
        rows[nrows].vec = r.vec;
        rows[nrows].expired = is_expired;
        nrows++;
    }
    if (rc != MDB_NOTFOUND) {
        st = mdb_status(rc, "rebuild_scan");
        goto out;
    }
    qsort(rows, nrows, sizeof(*rows), row_cmp);
    if (have_saved && !ix_matches(&loaded, rows, nrows)) {
        sc_warn("cache_index_load", "result=mismatch reason=\"the saved partitions differ from "
                "the store's entries\" action=rebuild");
        pmap_clear(&loaded);
        have_saved = 0;
        size_t w = 0; /* the expired rows were kept for the comparison only */
        for (size_t i = 0; i < nrows; i++)
            if (!rows[i].expired)
                rows[w++] = rows[i];
        nrows = w;
    }
    pthread_rwlock_wrlock(&c->ilock);
    if (have_saved)
        st = ix_adopt(c, &loaded, rows, &nrows, &maxid);
    if (!st)
        st = index_add_rows(c, rows, nrows);
    pthread_rwlock_unlock(&c->ilock);
    if (st)
        goto out;
    c->index_loaded = have_saved;
    if (have_saved) { /* the file describes this generation: no need to write it again */
        c->saved_gen = c->gen;
        c->saved_valid = 1;
    }
    atomic_store(&c->entries, entries);
    atomic_store(&c->bytes, bytes);
    c->next_id = (maxid > last ? maxid : last) + 1;
    mdb_cursor_close(cur);
    cur = NULL;
    mdb_txn_abort(txn);
    txn = NULL;

    if (expired.n) { /* expired entries are not indexed (any more): delete them from the store */
        int64_t dbytes = 0;
        sc_status_t xs = mdb_status(wtxn_begin(c, &txn), "expire_begin");
        if (xs)
            txn = NULL;
        for (size_t i = 0; !xs && i < expired.n; i++) {
            MDB_val ik = {sizeof(uint64_t), &expired.v[i].id}, iv;
            sc_rec_t r;
            if (mdb_get(txn, c->db_entries, &ik, &iv) || rec_parse(&iv, &r))
                continue;
            xs = store_del(c, txn, expired.v[i].id, &r, &dbytes);
        }
        c->removed.n = 0;
        if (!xs) {
            xs = mdb_status(wtxn_commit(c, txn), "expire_commit");
            txn = NULL;
        }
        if (!xs)
            atomic_fetch_add(&c->expired, expired.n);
        else /* not fatal: they are not served, and the next open tries again */
            sc_warn("cache_expire", "expired=%zu result=not_deleted", expired.n);
    }
    c->rebuild_ms = (double)(sc_now_us() - t0) / 1000.0;
    sc_info("cache_rebuild", "entries=%llu indexed=%llu partitions=%zu expired=%zu "
            "saved_index=%s load_ms=%.1f ms=%.1f", (unsigned long long)entries,
            (unsigned long long)atomic_load(&c->indexed), c->parts.n, expired.n,
            have_saved ? "loaded" : "no", load_ms, c->rebuild_ms);
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    pmap_clear(&loaded);
    free(rows);
    free(expired.v);
    return st;
}

static void *ckpt_main(void *arg)
{
    sc_cache_t *c = arg;
    pthread_mutex_lock(&c->cmu);
    while (!c->ckpt_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)c->opts.checkpoint_s;
        int rc = 0;
        while (!c->ckpt_stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&c->ccv, &c->cmu, &ts);
        if (c->ckpt_stop)
            break;
        pthread_mutex_unlock(&c->cmu);
        index_save(c, "checkpoint");
        pthread_mutex_lock(&c->cmu);
    }
    pthread_mutex_unlock(&c->cmu);
    return NULL;
}

/* The store's identity: random bytes made with its meta database (a new or replaced store gets
 * new ones, so that no saved index of another store matches it). */
static int meta_init(sc_cache_t *c, MDB_txn *txn)
{
    MDB_val k = {strlen(SC_CACHE_META_STORE_ID), SC_CACHE_META_STORE_ID}, v;
    int rc = mdb_get(txn, c->db_meta, &k, &v);
    if (!rc && v.mv_size == sizeof(c->store_id)) {
        memcpy(c->store_id, v.mv_data, sizeof(c->store_id));
        return 0;
    }
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    if (getrandom(c->store_id, sizeof(c->store_id), 0) != (ssize_t)sizeof(c->store_id)) {
        XXH128_hash_t h; /* no entropy source: time, pid and an address */
        uint64_t seed[3] = {(uint64_t)sc_now_us(), (uint64_t)getpid(), (uint64_t)(uintptr_t)c};
        h = XXH3_128bits(seed, sizeof(seed));
        memcpy(c->store_id, &h.low64, 8);
        memcpy(c->store_id + 8, &h.high64, 8);
    }
    v.mv_size = sizeof(c->store_id);
    v.mv_data = c->store_id;
    return mdb_put(txn, c->db_meta, &k, &v, 0);
}

static void gpu_init(sc_cache_t *c)
{
    char eb[256] = "";
    if (!c->opts.use_gpu)
        return;
    if (!sc_gpu_flat_available(eb, sizeof(eb))) {
        sc_info("cache_gpu", "result=unavailable reason=\"%s\"", eb);
        return;
    }
    uint64_t cap = c->opts.max_bytes / ((size_t)c->opts.dim * sizeof(float)) + SC_CACHE_GPU_SLACK;
    if (cap > SC_CACHE_GPU_MAX)
        cap = SC_CACHE_GPU_MAX;
    if (sc_gpu_flat_new(c->opts.dim, (size_t)cap, &c->gpu, eb, sizeof(eb)) != SC_OK) {
        sc_warn("cache_gpu", "result=failed reason=\"%s\" fallback=cpu", eb);
        c->gpu = NULL;
        return;
    }
    sc_info("cache_gpu", "result=ok capacity=%llu", (unsigned long long)cap);
}

sc_status_t sc_cache_open(const sc_cache_opts_t *opts, sc_cache_t **out, char *errbuf,
                          size_t errlen)
{
    sc_cache_t *c = NULL;
    MDB_txn *txn = NULL;
    sc_status_t st = SC_OK;
    int rc;
    *out = NULL;
    if (errlen)
        errbuf[0] = '\0';
    if (!opts || !opts->path || !*opts->path || opts->dim <= 0 || !opts->max_bytes) {
        snprintf(errbuf, errlen, "cache: path, dim and max_bytes are required");
        return SC_ERR_INVALID_ARG;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return SC_ERR_NOMEM;
    c->opts = *opts;
    sc_strlcpy(c->path, opts->path, sizeof(c->path));
    c->opts.path = c->path;
    sc_strlcpy(c->index_kind, opts->index ? opts->index : "flat", sizeof(c->index_kind));
    c->opts.index = c->index_kind;
    if (!c->opts.ann_min)
        c->opts.ann_min = 1;
    pthread_mutex_init(&c->wmu, NULL);
    pthread_mutex_init(&c->pmu, NULL);
    pthread_rwlock_init(&c->ilock, NULL);
    pthread_mutex_init(&c->smu, NULL);
    pthread_mutex_init(&c->cmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->ccv, &ca);
    pthread_condattr_destroy(&ca);

    st = mkdir_p(c->path, errbuf, errlen);
    if (st)
        goto out;
    if (faiss_ParameterSpace_new(&c->ps)) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    uint64_t map = (uint64_t)opts->max_bytes * SC_CACHE_MAP_FACTOR + SC_CACHE_MAP_HEADROOM;
    if (map > SC_CACHE_MAP_MAX)
        map = SC_CACHE_MAP_MAX;
    if ((rc = mdb_env_create(&c->env)) || (rc = mdb_env_set_maxdbs(c->env, 8)) ||
        (rc = mdb_env_set_maxreaders(c->env, SC_CACHE_MAX_READERS)) ||
        (rc = mdb_env_set_mapsize(c->env, (size_t)map)) ||
        (rc = mdb_env_open(c->env, c->path, MDB_NOTLS, 0664))) {
        snprintf(errbuf, errlen, "cache: cannot open LMDB at %s: %s", c->path, mdb_strerror(rc));
        st = SC_ERR_IO;
        goto out;
    }
    if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) ||
        (rc = mdb_dbi_open(txn, "entries", MDB_CREATE | MDB_INTEGERKEY, &c->db_entries)) ||
        (rc = mdb_dbi_open(txn, "exact", MDB_CREATE, &c->db_exact)) ||
        (rc = mdb_dbi_open(txn, "lru", MDB_CREATE, &c->db_lru)) ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &c->db_meta)) || (rc = meta_init(c, txn)) ||
        (rc = mdb_txn_commit(txn))) {
        if (txn && rc)
            mdb_txn_abort(txn);
        txn = NULL;
        snprintf(errbuf, errlen, "cache: cannot open the databases in %s: %s", c->path,
                 mdb_strerror(rc));
        st = SC_ERR_IO;
        goto out;
    }
    txn = NULL;
    if (!c->opts.store_only)
        gpu_init(c);
    if (persist_on(c)) { /* a save that a crash cut short */
        char tmp[SC_CACHE_PATH_MAX + 32];
        ix_path(c, SC_CACHE_IX_TMP, tmp, sizeof(tmp));
        unlink(tmp);
    }
    st = rebuild(c);
    if (st) {
        snprintf(errbuf, errlen, "cache: rebuilding the index from %s failed: %s", c->path,
                 sc_strerror(st));
        goto out;
    }
    if (persist_on(c) && c->opts.checkpoint_s > 0) {
        if (pthread_create(&c->ckpt, NULL, ckpt_main, c))
            sc_warn("cache_checkpoint", "result=no_thread note=\"saved at close only\"");
        else
            c->ckpt_running = 1;
    }
    c->ready = 1;
    *out = c;
    c = NULL;
out:
    sc_cache_close(c);
    return st;
}

void sc_cache_close(sc_cache_t *c)
{
    if (!c)
        return;
    if (c->ckpt_running) {
        pthread_mutex_lock(&c->cmu);
        c->ckpt_stop = 1;
        pthread_cond_signal(&c->ccv);
        pthread_mutex_unlock(&c->cmu);
        pthread_join(c->ckpt, NULL);
    }
    if (c->env && (c->n_pend_hits || c->n_pend_exp)) {
        MDB_txn *txn = NULL;
        int64_t de = 0, db = 0;
        uint64_t dx = 0;
        pthread_mutex_lock(&c->wmu);
        if (!wtxn_begin(c, &txn)) {
            if (flush_pending(c, txn, &de, &db, &dx)) {
                mdb_txn_abort(txn);
                c->removed.n = 0;
            } else if (wtxn_commit(c, txn)) {
                c->removed.n = 0;
            } else {
                index_apply_removed(c); /* the index is saved next: it must match the store */
            }
        }
        pthread_mutex_unlock(&c->wmu);
    }
    if (c->ready)
        index_save(c, "close");
    if (c->env)
        mdb_env_close(c->env);
    pmap_clear(&c->parts);
    sc_gpu_flat_free(c->gpu);
    if (c->ps)
        faiss_ParameterSpace_free(c->ps);
    free(c->scratch);
    free(c->removed.v);
    pthread_rwlock_destroy(&c->ilock);
    pthread_mutex_destroy(&c->pmu);
    pthread_mutex_destroy(&c->wmu);
    pthread_mutex_destroy(&c->smu);
    pthread_mutex_destroy(&c->cmu);
    pthread_cond_destroy(&c->ccv);
    free(c);
}

sc_status_t sc_cache_checkpoint(sc_cache_t *c)
{
    if (!c || !c->ready)
        return SC_ERR_INVALID_ARG;
    return index_save(c, "checkpoint");
}

/* ---- insert ---- */

typedef struct {
    uint64_t scope, id;
    size_t item;
} sc_newvec_t;

static int newvec_cmp(const void *a, const void *b)
{
    const sc_newvec_t *x = a, *y = b;
    if (x->scope != y->scope)
        return x->scope < y->scope ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static sc_status_t insert_one(sc_cache_t *c, MDB_txn *txn, const sc_cache_item_t *it,
                              uint64_t id, int64_t now, int64_t *dentries, int64_t *dbytes)
{
    const sc_cache_query_t *q = &it->q;
    const char *tenant = q->tenant ? q->tenant : "";
    const char *model = it->model ? it->model : "";
    size_t tl = strlen(tenant), ml = strlen(model);
    sc_exact_key_t ek;
    sc_rec_hdr_t h;
    memset(&h, 0, sizeof(h));
    sc_status_t st = exact_key(q->scope, q->text, q->len, &ek, &h.key_lo, &h.key_hi);
    if (st)
        return st;
    /* the same text in the same scope: the new answer replaces the old entry */
    MDB_val ekv = {sizeof(ek.b), ek.b}, ev;
    int rc = mdb_get(txn, c->db_exact, &ekv, &ev);
    if (rc == MDB_SUCCESS && ev.mv_size == sizeof(uint64_t)) {
        uint64_t old;
        memcpy(&old, ev.mv_data, sizeof(old));
        MDB_val ok = {sizeof(old), &old}, ov;
        sc_rec_t r;
        if (!mdb_get(txn, c->db_entries, &ok, &ov) && !rec_parse(&ov, &r)) {
            st = store_del(c, txn, old, &r, dbytes);
            if (st)
                return st;
            (*dentries)--;
        }
    } else if (rc != MDB_NOTFOUND) {
        return mdb_status(rc, "get_exact");
    }
    h.magic = SC_CACHE_MAGIC;
    h.dim = q->vec ? (uint32_t)c->opts.dim : 0;
    h.scope = q->scope;
    h.created_ms = h.last_hit_ms = now;
    h.usage[0] = it->usage.prompt_tokens;
    h.usage[1] = it->usage.cached_tokens;
    h.usage[2] = it->usage.output_tokens;
    h.usage[3] = it->usage.thought_tokens;
    h.cost_usd = it->cost_usd;
    h.tenant_len = (uint32_t)tl;
    h.model_len = (uint32_t)ml;
    h.text_len = (uint32_t)q->len;
    h.resp_len = (uint32_t)it->response_len;
    size_t size = rec_size(h.dim, tl, ml, q->len, it->response_len);
    MDB_val k = {sizeof(id), &id}, v = {size, NULL};
    rc = mdb_put(txn, c->db_entries, &k, &v, MDB_RESERVE | MDB_APPEND);
    if (rc)
        return mdb_status(rc, "put_entry");
    c->txn_changed = 1;
    rec_write(v.mv_data, &h, tenant, model, q->vec, q->text, it->response);
    MDB_val idv = {sizeof(id), &id};
    rc = mdb_put(txn, c->db_exact, &ekv, &idv, 0);
    if (rc)
        return mdb_status(rc, "put_exact");
    unsigned char lk[16];
    lru_key(lk, now, id);
    MDB_val lkv = {sizeof(lk), lk}, empty = {0, NULL};
    rc = mdb_put(txn, c->db_lru, &lkv, &empty, 0);
    if (rc)
        return mdb_status(rc, "put_lru");
    (*dentries)++;
    *dbytes += (int64_t)(size + SC_CACHE_KEY_OVERHEAD);
    return SC_OK;
}

static int item_valid(const sc_cache_item_t *it)
{
    size_t tl = it->q.tenant ? strlen(it->q.tenant) : 0, ml = it->model ? strlen(it->model) : 0;
    return it->q.text && it->response && it->q.len <= SC_CACHE_FIELD_MAX &&
           it->response_len <= SC_CACHE_FIELD_MAX && tl <= SC_CACHE_FIELD_MAX &&
           ml <= SC_CACHE_FIELD_MAX;
}

sc_status_t sc_cache_insert_many(sc_cache_t *c, const sc_cache_item_t *items, size_t n,
                                 uint64_t *ids)
{
    if (!c || (n && !items))
        return SC_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++)
        if (!item_valid(&items[i]))
            return items[i].q.text && items[i].response ? SC_ERR_TOO_LARGE : SC_ERR_INVALID_ARG;
    sc_newvec_t *nv = malloc((n ? n : 1) * sizeof(*nv));
    if (!nv)
        return SC_ERR_NOMEM;
    MDB_txn *txn = NULL;
    int64_t dentries = 0, dbytes = 0, now = sc_wall_ms();
    uint64_t dexpired = 0, first = 0;
    size_t nnv = 0;
    sc_status_t st;
    pthread_mutex_lock(&c->wmu);
    first = c->next_id;
    st = mdb_status(wtxn_begin(c, &txn), "insert_begin");
    if (st)
        goto out;
    st = flush_pending(c, txn, &dentries, &dbytes, &dexpired);
    for (size_t i = 0; !st && i < n; i++) {
        uint64_t id = first + i;
        st = insert_one(c, txn, &items[i], id, now, &dentries, &dbytes);
        if (!st && items[i].q.vec) {
            nv[nnv].scope = items[i].q.scope;
            nv[nnv].id = id;
            nv[nnv].item = i;
            nnv++;
        }
    }
    if (st)
        goto out;
    st = mdb_status(wtxn_commit(c, txn), "insert_commit"); /* durable from here on */
    txn = NULL;
    if (st) {
        c->removed.n = 0; /* nothing was deleted */
        goto out;
    }
    c->next_id = first + n;
    apply_deltas(c, dentries, dbytes, dexpired);
    for (size_t i = 0; ids && i < n; i++)
        ids[i] = first + i;

    /* the index: the new vectors, grouped by scope */
    qsort(nv, nnv, sizeof(*nv), newvec_cmp);
    sc_row_t *rows = malloc((nnv ? nnv : 1) * sizeof(*rows));
    if (!rows) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < nnv; i++) {
        rows[i].scope = nv[i].scope;
        rows[i].id = nv[i].id;
        rows[i].vec = (const unsigned char *)items[nv[i].item].q.vec;
        rows[i].expired = 0;
    }
    pthread_rwlock_wrlock(&c->ilock);
    st = index_add_rows(c, rows, nnv);
    pthread_rwlock_unlock(&c->ilock);
    free(rows);
    /* after the adds: an entry of this batch may already have been replaced by a later one */
    index_apply_removed(c);
    if (st) {
        c->index_stale = 1; /* never saved: the next open rebuilds */
        sc_error("cache_index_add", "entries=%zu error=\"%s\" note=\"stored; indexed at the next "
                 "open\"", nnv, sc_strerror(st));
        goto out;
    }
    st = evict(c);
out:
    if (txn) {
        mdb_txn_abort(txn);
        c->removed.n = 0;
    }
    pthread_mutex_unlock(&c->wmu);
    free(nv);
    return st;
}

sc_status_t sc_cache_insert(sc_cache_t *c, const sc_cache_query_t *q, const char *response,
                            size_t response_len, const char *model, const sc_usage_t *usage,
                            double cost_usd, uint64_t *id)
{
    if (!q)
        return SC_ERR_INVALID_ARG;
    sc_cache_item_t it;
    memset(&it, 0, sizeof(it));
    it.q = *q;
    it.response = response;
    it.response_len = response_len;
    it.model = model;
    if (usage)
        it.usage = *usage;
    it.cost_usd = cost_usd;
    return sc_cache_insert_many(c, &it, 1, id);
}

/* ---- lookup ---- */

static void pend_hit(sc_cache_t *c, uint64_t id, int64_t now)
{
    pthread_mutex_lock(&c->pmu);
    if (c->n_pend_hits < SC_CACHE_PENDING_MAX) {
        c->pend_hits[c->n_pend_hits].id = id;
        c->pend_hits[c->n_pend_hits].when_ms = now;
        c->n_pend_hits++;
    }
    pthread_mutex_unlock(&c->pmu);
}

static void pend_expired(sc_cache_t *c, uint64_t id)
{
    pthread_mutex_lock(&c->pmu);
    if (c->n_pend_exp < SC_CACHE_PENDING_MAX)
        c->pend_exp[c->n_pend_exp++] = id;
    pthread_mutex_unlock(&c->pmu);
}

/* Write the queued work when no writer is busy and enough has gathered (or an expiry waits). */
static void maybe_flush(sc_cache_t *c)
{
    pthread_mutex_lock(&c->pmu);
    int due = c->n_pend_exp > 0 || c->n_pend_hits >= SC_CACHE_PENDING_MAX / 2;
    pthread_mutex_unlock(&c->pmu);
    if (!due || pthread_mutex_trylock(&c->wmu))
        return;
    MDB_txn *txn = NULL;
    int64_t de = 0, db = 0;
    uint64_t dx = 0;
    if (!wtxn_begin(c, &txn)) {
        if (flush_pending(c, txn, &de, &db, &dx)) {
            mdb_txn_abort(txn);
            c->removed.n = 0;
        } else if (wtxn_commit(c, txn)) {
            c->removed.n = 0;
        } else {
            apply_deltas(c, de, db, dx);
            index_apply_removed(c);
        }
    }
    pthread_mutex_unlock(&c->wmu);
}

static sc_status_t fill_hit(const sc_rec_t *r, uint64_t id, sc_cache_hit_t kind, double sim,
                            sc_cache_result_t *res)
{
    char *resp = malloc((size_t)r->h.resp_len + 1);
    if (!resp)
        return SC_ERR_NOMEM;
    memcpy(resp, r->resp, r->h.resp_len);
    resp[r->h.resp_len] = '\0';
    res->hit = kind;
    res->similarity = sim;
    res->entry = id;
    res->response = resp;
    res->response_len = r->h.resp_len;
    sc_strlcpy(res->model, r->model, sizeof(res->model));
    res->usage.prompt_tokens = (long)r->h.usage[0];
    res->usage.cached_tokens = (long)r->h.usage[1];
    res->usage.output_tokens = (long)r->h.usage[2];
    res->usage.thought_tokens = (long)r->h.usage[3];
    res->cost_usd = r->h.cost_usd;
    return SC_OK;
}

typedef struct {
    uint64_t scope;
    size_t q;
} sc_sq_t;

static int sq_cmp(const void *a, const void *b)
{
    const sc_sq_t *x = a, *y = b;
    if (x->scope != y->scope)
        return x->scope < y->scope ? -1 : 1;
    return x->q < y->q ? -1 : x->q > y->q;
}

/* Search the partitions for the semantic queries sq[0..m): candidates (best first, deleted ids
 * skipped, -1 padded) into cs/ci, SC_CACHE_TOPK per query, indexed like sq. Under ilock (read). */
static sc_status_t search_partitions(sc_cache_t *c, const sc_cache_query_t *q, const sc_sq_t *sq,
                                     size_t m, float *cs, int64_t *ci)
{
    size_t d = (size_t)c->opts.dim, K = SC_CACHE_TOPK;
    sc_status_t st = SC_OK;
    float *x = NULL, *D = NULL;
    int64_t *L = NULL;
    uint64_t *scopes = NULL;
    for (size_t i = 0; i < m * K; i++) {
        cs[i] = -2.0f;
        ci[i] = -1;
    }
    x = malloc((m ? m : 1) * d * sizeof(float));
    if (!x)
        return SC_ERR_NOMEM;
    if (c->gpu) { /* one scoped index: the scope goes into the search */
        scopes = malloc((m ? m : 1) * sizeof(uint64_t));
        if (!scopes) {
            st = SC_ERR_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < m; i++) {
            memcpy(x + i * d, q[sq[i].q].vec, d * sizeof(float));
            scopes[i] = sq[i].scope;
        }
        st = sc_gpu_flat_search(c->gpu, m, x, scopes, (int)K, cs, ci);
        goto out;
    }
    size_t cap = 0;
    for (size_t i = 0, j; i < m; i = j) {
        for (j = i; j < m && sq[j].scope == sq[i].scope; j++)
            ;
        const sc_part_t *p = pmap_get(&c->parts, sq[i].scope);
        if (!p)
            continue; /* nothing stored in this scope: a miss */
        size_t extra = p->kind == SC_PART_HNSW ? p->dead.n : 0;
        if (extra > SC_CACHE_DEAD_EXTRA_MAX)
            extra = SC_CACHE_DEAD_EXTRA_MAX;
        size_t k = K + extra, nq = j - i;
        if (nq * k > cap) {
            free(D);
            free(L);
            cap = nq * k;
            D = malloc(cap * sizeof(float));
            L = malloc(cap * sizeof(int64_t));
            if (!D || !L) {
                st = SC_ERR_NOMEM;
                goto out;
            }
        }
        for (size_t t = i; t < j; t++)
            memcpy(x + (t - i) * d, q[sq[t].q].vec, d * sizeof(float));
        /* a few queries are searched on the calling thread: lookups already come from several
         * threads, and an OpenMP team per query costs more than it saves (and stalls whenever a
         * team member is not scheduled). The setting is this thread's own. */
        int threads = omp_get_max_threads();
        if (nq < SC_CACHE_PAR_MIN)
            omp_set_num_threads(1);
        st = faiss_status(faiss_Index_search(p->ix, (idx_t)nq, x, (idx_t)k, D, L), "search");
        omp_set_num_threads(threads);
        if (st)
            goto out;
        for (size_t t = 0; t < nq; t++) {
            size_t w = 0;
            for (size_t r = 0; r < k && w < K; r++) {
                int64_t id = L[t * k + r];
                if (id < 0 || (extra && idset_has(&p->dead, id)))
                    continue;
                cs[(i + t) * K + w] = D[t * k + r];
                ci[(i + t) * K + w] = id;
                w++;
            }
        }
    }
out:
    free(x);
    free(D);
    free(L);
    free(scopes);
    return st;
}

sc_status_t sc_cache_lookup(sc_cache_t *c, const sc_cache_query_t *q, size_t n,
                            sc_cache_result_t *res)
{
    if (!c || (n && (!q || !res)))
        return SC_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        res[i].hit = SC_CACHE_MISS;
        res[i].similarity = -1.0;
        res[i].refused = SC_GUARD_OK;
    }
    if (!n)
        return SC_OK;
    const size_t K = SC_CACHE_TOPK;
    MDB_txn *txn = NULL;
    sc_sq_t *sq = malloc(n * sizeof(*sq));
    float *cs = malloc(n * K * sizeof(float));
    int64_t *ci = malloc(n * K * sizeof(int64_t));
    size_t m = 0;
    int64_t now = sc_wall_ms();
    sc_status_t st = SC_OK;
    if (!sq || !cs || !ci) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    st = mdb_status(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn), "lookup_begin");
    if (st)
        goto out;

    /* exact layer: the normalised text in the query's scope */
    for (size_t i = 0; i < n; i++) {
        if (!q[i].text)
            continue;
        sc_exact_key_t ek;
        uint64_t lo, hi;
        st = exact_key(q[i].scope, q[i].text, q[i].len, &ek, &lo, &hi);
        if (st)
            goto out;
        MDB_val kv = {sizeof(ek.b), ek.b}, idv, v;
        sc_rec_t r;
        uint64_t id = 0;
        int found = 0;
        if (!mdb_get(txn, c->db_exact, &kv, &idv) && idv.mv_size == sizeof(id)) {
            memcpy(&id, idv.mv_data, sizeof(id));
            MDB_val ik = {sizeof(id), &id};
            /* fail closed: the record must belong to this very scope */
            found = !mdb_get(txn, c->db_entries, &ik, &v) && !rec_parse(&v, &r) &&
                    r.h.scope == q[i].scope;
        }
        if (found && rec_expired(c, &r, now)) {
            pend_expired(c, id);
            found = 0;
        }
        if (found) {
            st = fill_hit(&r, id, SC_CACHE_HIT_EXACT, 1.0, &res[i]);
            if (st)
                goto out;
            pend_hit(c, id, now);
        } else if (q[i].vec) {
            sq[m].scope = q[i].scope;
            sq[m].q = i;
            m++;
        }
    }

    /* semantic layer: each query searches its own scope's partition only */
    if (m) {
        qsort(sq, m, sizeof(*sq), sq_cmp);
        pthread_rwlock_rdlock(&c->ilock);
        st = search_partitions(c, q, sq, m, cs, ci);
        pthread_rwlock_unlock(&c->ilock);
        if (st)
            goto out;
    }
    for (size_t s = 0; s < m; s++) {
        size_t i = sq[s].q;
        const float *cand_s = cs + s * K;
        const int64_t *cand_i = ci + s * K;
        if (cand_i[0] >= 0)
            res[i].similarity = cand_s[0];
        for (size_t r = 0; r < K && cand_i[r] >= 0; r++) {
            double sim = cand_s[r];
            if (sim < c->opts.threshold)
                break;
            uint64_t id = (uint64_t)cand_i[r];
            MDB_val ik = {sizeof(id), &id}, v;
            sc_rec_t rec;
            if (mdb_get(txn, c->db_entries, &ik, &v) || rec_parse(&v, &rec))
                continue; /* deleted since the search */
            if (rec.h.scope != q[i].scope) { /* fail closed, and say so: the index is wrong */
                sc_error("cache_scope_mismatch", "id=%llu", (unsigned long long)id);
                continue;
            }
            if (rec_expired(c, &rec, now)) {
                pend_expired(c, id);
                continue;
            }
            if (c->opts.guards) {
                sc_guard_reason_t why =
                    sc_guard_check(q[i].text ? q[i].text : "", q[i].text ? q[i].len : 0,
                                   rec.text, rec.h.text_len, sim, c->opts.threshold,
                                   c->opts.strict_band);
                if (why != SC_GUARD_OK) {
                    if (res[i].refused == SC_GUARD_OK)
                        res[i].refused = why;
                    if (why < SC_GUARD_COUNT)
                        atomic_fetch_add(&c->refused[why], 1);
                    continue;
                }
            }
            st = fill_hit(&rec, id, SC_CACHE_HIT_SEMANTIC, sim, &res[i]);
            if (st)
                goto out;
            pend_hit(c, id, now);
            break;
        }
    }
out:
    if (txn)
        mdb_txn_abort(txn);
    free(sq);
    free(cs);
    free(ci);
    if (st) {
        for (size_t i = 0; i < n; i++) {
            free(res[i].response);
            res[i].response = NULL;
            res[i].hit = SC_CACHE_MISS;
        }
        return st;
    }
    uint64_t he = 0, hs = 0;
    for (size_t i = 0; i < n; i++) {
        he += res[i].hit == SC_CACHE_HIT_EXACT;
        hs += res[i].hit == SC_CACHE_HIT_SEMANTIC;
    }
    atomic_fetch_add(&c->lookups, n);
    atomic_fetch_add(&c->hits_exact, he);
    atomic_fetch_add(&c->hits_semantic, hs);
    atomic_fetch_add(&c->misses, n - he - hs);
    maybe_flush(c);
    return SC_OK;
}

/* ---- stats, entries, purge ---- */

void sc_cache_stats(sc_cache_t *c, sc_cache_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!c)
        return;
    out->entries = atomic_load(&c->entries);
    out->bytes = atomic_load(&c->bytes);
    out->evictions = atomic_load(&c->evictions);
    out->expired = atomic_load(&c->expired);
    out->lookups = atomic_load(&c->lookups);
    out->hits_exact = atomic_load(&c->hits_exact);
    out->hits_semantic = atomic_load(&c->hits_semantic);
    out->misses = atomic_load(&c->misses);
    for (int i = 0; i < SC_GUARD_COUNT; i++)
        out->refused[i] = atomic_load(&c->refused[i]);
    out->rebuild_ms = c->rebuild_ms;
    out->index_loaded = c->index_loaded;
    out->index_gen = atomic_load(&c->gen);
    out->index_save_ms = (double)atomic_load(&c->save_us) / 1000.0;
    out->indexed = atomic_load(&c->indexed);
    pthread_rwlock_rdlock(&c->ilock);
    out->partitions = c->gpu ? 0 : c->parts.n;
    pthread_rwlock_unlock(&c->ilock);
}

void sc_cache_entry_clear(sc_cache_entry_t *e)
{
    if (!e)
        return;
    free(e->buf);
    memset(e, 0, sizeof(*e));
}

static void entry_from_rec(sc_cache_entry_t *e, uint64_t id, const sc_rec_t *r)
{
    e->id = id;
    e->scope = r->h.scope;
    e->created_ms = r->h.created_ms;
    e->last_hit_ms = r->h.last_hit_ms;
    e->hits = r->h.hits;
    e->size = r->size + SC_CACHE_KEY_OVERHEAD;
    e->tenant = r->tenant;
    e->model = r->model;
    e->text = r->text;
    e->text_len = r->h.text_len;
    e->response = r->resp;
    e->response_len = r->h.resp_len;
    e->usage.prompt_tokens = (long)r->h.usage[0];
    e->usage.cached_tokens = (long)r->h.usage[1];
    e->usage.output_tokens = (long)r->h.usage[2];
    e->usage.thought_tokens = (long)r->h.usage[3];
    e->cost_usd = r->h.cost_usd;
    e->has_vec = r->h.dim > 0;
}

sc_status_t sc_cache_get(sc_cache_t *c, uint64_t id, sc_cache_entry_t *e)
{
    memset(e, 0, sizeof(*e));
    if (!c)
        return SC_ERR_INVALID_ARG;
    MDB_txn *txn = NULL;
    sc_status_t st = mdb_status(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn), "get_begin");
    if (st)
        return st;
    MDB_val k = {sizeof(id), &id}, v, own;
    sc_rec_t r;
    int rc = mdb_get(txn, c->db_entries, &k, &v);
    if (rc == MDB_NOTFOUND) {
        st = SC_ERR_NOT_FOUND;
        goto out;
    }
    if (rc) {
        st = mdb_status(rc, "get");
        goto out;
    }
    e->buf = malloc(v.mv_size);
    if (!e->buf) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    memcpy(e->buf, v.mv_data, v.mv_size);
    own.mv_size = v.mv_size;
    own.mv_data = e->buf;
    if (rec_parse(&own, &r)) {
        st = SC_ERR_IO;
        goto out;
    }
    char *keep = e->buf;
    entry_from_rec(e, id, &r);
    e->buf = keep;
out:
    mdb_txn_abort(txn);
    if (st)
        sc_cache_entry_clear(e);
    return st;
}

sc_status_t sc_cache_foreach(sc_cache_t *c, const char *tenant, size_t limit,
                             sc_cache_visit_fn fn, void *ud)
{
    if (!c || !fn)
        return SC_ERR_INVALID_ARG;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    size_t seen = 0;
    sc_status_t st = mdb_status(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn), "ls_begin");
    if (st)
        return st;
    st = mdb_status(mdb_cursor_open(txn, c->db_entries, &cur), "ls_cursor");
    if (st)
        goto out;
    MDB_val k, v;
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        sc_rec_t r;
        uint64_t id;
        if (k.mv_size != sizeof(id) || rec_parse(&v, &r))
            continue;
        if (tenant && strcmp(r.tenant, tenant))
            continue;
        memcpy(&id, k.mv_data, sizeof(id));
        sc_cache_entry_t e;
        memset(&e, 0, sizeof(e));
        entry_from_rec(&e, id, &r);
        if (fn(&e, ud))
            break;
        if (limit && ++seen >= limit)
            break;
    }
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        st = mdb_status(rc, "ls_scan");
out:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return st;
}

sc_status_t sc_cache_purge(sc_cache_t *c, const char *tenant, uint64_t *removed)
{
    if (removed)
        *removed = 0;
    if (!c)
        return SC_ERR_INVALID_ARG;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    sc_idlist_t victims = {0};
    int64_t dentries = 0, dbytes = 0;
    uint64_t dexpired = 0, count = 0;
    sc_status_t st;
    pthread_mutex_lock(&c->wmu);
    st = mdb_status(wtxn_begin(c, &txn), "purge_begin");
    if (st)
        goto out;
    st = flush_pending(c, txn, &dentries, &dbytes, &dexpired);
    if (st)
        goto out;
    if (!tenant) { /* everything: drop the databases' contents and the whole index */
        MDB_stat ms;
        st = mdb_status(mdb_stat(txn, c->db_entries, &ms), "purge_stat");
        if (!st)
            st = mdb_status(mdb_drop(txn, c->db_entries, 0), "purge_drop");
        if (!st)
            st = mdb_status(mdb_drop(txn, c->db_exact, 0), "purge_drop");
        if (!st)
            st = mdb_status(mdb_drop(txn, c->db_lru, 0), "purge_drop");
        c->txn_changed = 1;
        if (!st)
            st = mdb_status(wtxn_commit(c, txn), "purge_commit");
        txn = NULL;
        if (st)
            goto out;
        count = ms.ms_entries;
        c->removed.n = 0;
        atomic_store(&c->entries, 0);
        atomic_store(&c->bytes, 0);
        pthread_rwlock_wrlock(&c->ilock);
        pmap_clear(&c->parts);
        if (c->gpu) {
            char eb[256];
            sc_gpu_flat_t *g = NULL;
            size_t cap = c->opts.max_bytes / ((size_t)c->opts.dim * sizeof(float)) +
                         SC_CACHE_GPU_SLACK;
            sc_gpu_flat_free(c->gpu);
            c->gpu = NULL;
            if (sc_gpu_flat_new(c->opts.dim, cap < SC_CACHE_GPU_MAX ? cap : SC_CACHE_GPU_MAX, &g,
                                eb, sizeof(eb)) == SC_OK)
                c->gpu = g;
            else
                sc_warn("cache_gpu", "result=failed reason=\"%s\" fallback=cpu", eb);
        }
        atomic_store(&c->indexed, 0);
        pthread_rwlock_unlock(&c->ilock);
        goto out;
    }
    /* one tenant: collect its ids, then delete them by key */
    st = mdb_status(mdb_cursor_open(txn, c->db_entries, &cur), "purge_cursor");
    if (st)
        goto out;
    MDB_val k, v;
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        sc_rec_t r;
        uint64_t id;
        if (k.mv_size != sizeof(id) || rec_parse(&v, &r) || strcmp(r.tenant, tenant))
            continue;
        memcpy(&id, k.mv_data, sizeof(id));
        st = idlist_push(&victims, id, r.h.scope);
        if (st)
            goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (rc != MDB_NOTFOUND) {
        st = mdb_status(rc, "purge_scan");
        goto out;
    }
    for (size_t i = 0; i < victims.n; i++) {
        MDB_val ik = {sizeof(uint64_t), &victims.v[i].id}, iv;
        sc_rec_t r;
        if (mdb_get(txn, c->db_entries, &ik, &iv) || rec_parse(&iv, &r))
            continue;
        st = store_del(c, txn, victims.v[i].id, &r, &dbytes);
        if (st)
            goto out;
        dentries--;
        count++;
    }
    st = mdb_status(wtxn_commit(c, txn), "purge_commit");
    txn = NULL;
    if (st)
        goto out;
    apply_deltas(c, dentries, dbytes, dexpired);
    index_apply_removed(c);
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn) {
        mdb_txn_abort(txn);
        c->removed.n = 0;
    }
    pthread_mutex_unlock(&c->wmu);
    free(victims.v);
    if (!st) {
        if (removed)
            *removed = count;
        sc_info("cache_purge", "tenant=\"%s\" removed=%llu", tenant ? tenant : "*",
                (unsigned long long)count);
    }
    return st;
}
