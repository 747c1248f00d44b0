/* cache.c - the semantic cache's API: options, open/close, insert, lookup (exact, then semantic
 * inside the query's own partition, then the guards), get, foreach, purge, stats. The store is
 * store.c, the index index.c, the saved index index_file.c, scopes and keys scope.c. */
#include "host/cache/cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <faiss/c_api/AutoTune_c.h>
#include <lmdb.h>

#include "host/cache/cache_internal.h"
#include "host/cache/gpu_flat.h"
#include "host/cache/lmdb_env.h"
#include "host/core/log.h"
#include "host/core/util.h"

#define SC_CACHE_MAP_FACTOR 4                 /* LMDB map: pages, overflow and free pages */
#define SC_CACHE_MAP_HEADROOM (256ull << 20)
#define SC_CACHE_MAP_MAX (1ull << 44)
#define SC_CACHE_MAX_READERS 512              /* concurrent read transactions */
#define SC_CACHE_FIELD_MAX (64u << 20)        /* text / response / tenant / model bytes */

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
        (rc = sc_lmdb_env_open(c->env, c->path, MDB_NOTLS, 0664))) {
        snprintf(errbuf, errlen, "cache: cannot open LMDB at %s: %s", c->path, mdb_strerror(rc));
        st = SC_ERR_IO;
        goto out;
    }
    if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) ||
        (rc = mdb_dbi_open(txn, "entries", MDB_CREATE | MDB_INTEGERKEY, &c->db_entries)) ||
        (rc = mdb_dbi_open(txn, "exact", MDB_CREATE, &c->db_exact)) ||
        (rc = mdb_dbi_open(txn, "lru", MDB_CREATE, &c->db_lru)) ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &c->db_meta)) ||
        (rc = sc_cache_meta_init(c, txn)) || (rc = mdb_txn_commit(txn))) {
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
        sc_cache_gpu_init(c);
    if (sc_cache_persist_on(c)) { /* a save that a crash cut short */
        char tmp[SC_CACHE_PATH_MAX + 32];
        sc_cache_ix_path(c, SC_CACHE_IX_TMP, tmp, sizeof(tmp));
        unlink(tmp);
    }
    st = sc_cache_rebuild(c);
    if (st) {
        snprintf(errbuf, errlen, "cache: rebuilding the index from %s failed: %s", c->path,
                 sc_strerror(st));
        goto out;
    }
    if (sc_cache_persist_on(c) && c->opts.checkpoint_s > 0) {
        if (pthread_create(&c->ckpt, NULL, sc_cache_ckpt_main, c))
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
        if (!sc_cache_wtxn_begin(c, &txn)) {
            if (sc_cache_flush_pending(c, txn, &de, &db, &dx)) {
                mdb_txn_abort(txn);
                c->removed.n = 0;
            } else if (sc_cache_wtxn_commit(c, txn)) {
                c->removed.n = 0;
            } else {
                /* the index is saved next: it must match the store */
                sc_cache_index_apply_removed(c);
            }
        }
        pthread_mutex_unlock(&c->wmu);
    }
    if (c->ready)
        sc_cache_index_save(c, "close");
    if (c->env)
        mdb_env_close(c->env);
    sc_cache_pmap_clear(&c->parts);
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
    return sc_cache_index_save(c, "checkpoint");
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
    st = sc_cache_mdb_status(sc_cache_wtxn_begin(c, &txn), "insert_begin");
    if (st)
        goto out;
    st = sc_cache_flush_pending(c, txn, &dentries, &dbytes, &dexpired);
    for (size_t i = 0; !st && i < n; i++) {
        uint64_t id = first + i;
        st = sc_cache_store_put(c, txn, &items[i], id, now, &dentries, &dbytes);
        if (!st && items[i].q.vec) {
            nv[nnv].scope = items[i].q.scope;
            nv[nnv].id = id;
            nv[nnv].item = i;
            nnv++;
        }
    }
    if (st)
        goto out;
    /* durable from here on */
    int rc = sc_cache_wtxn_commit(c, txn);
    st = sc_cache_mdb_status(rc, "insert_commit");
    txn = NULL;
    if (st) {
        c->removed.n = 0; /* nothing was deleted */
        /* a full disk shows here (LMDB writes its pages at commit): the store stays as it was,
         * and the caller's answers do not depend on it */
        sc_error("cache_insert", "path=%s entries=%zu result=not_stored error=\"%s\"", c->path,
                 n, mdb_strerror(rc));
        goto out;
    }
    c->next_id = first + n;
    sc_cache_apply_deltas(c, dentries, dbytes, dexpired);
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
    st = sc_cache_index_add_rows(c, rows, nnv);
    pthread_rwlock_unlock(&c->ilock);
    free(rows);
    /* after the adds: an entry of this batch may already have been replaced by a later one */
    sc_cache_index_apply_removed(c);
    if (st) {
        c->index_stale = 1; /* never saved: the next open rebuilds */
        sc_error("cache_index_add", "entries=%zu error=\"%s\" note=\"stored; indexed at the next "
                 "open\"", nnv, sc_strerror(st));
        goto out;
    }
    st = sc_cache_evict(c);
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

static int sq_cmp(const void *a, const void *b)
{
    const sc_sq_t *x = a, *y = b;
    if (x->scope != y->scope)
        return x->scope < y->scope ? -1 : 1;
    return x->q < y->q ? -1 : x->q > y->q;
}

sc_status_t sc_cache_lookup(sc_cache_t *c, const sc_cache_query_t *q, size_t n,
                            sc_cache_result_t *res)
{
    return sc_cache_lookup_layers(c, q, n, SC_CACHE_LAYER_EXACT | SC_CACHE_LAYER_SEMANTIC, res);
}

sc_status_t sc_cache_lookup_layers(sc_cache_t *c, const sc_cache_query_t *q, size_t n,
                                   unsigned layers, sc_cache_result_t *res)
{
    if (!c || (n && (!q || !res)) || !layers ||
        (layers & ~(unsigned)(SC_CACHE_LAYER_EXACT | SC_CACHE_LAYER_SEMANTIC)))
        return SC_ERR_INVALID_ARG;
    const int exact = (layers & SC_CACHE_LAYER_EXACT) != 0;
    const int semantic = (layers & SC_CACHE_LAYER_SEMANTIC) != 0;
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
    st = sc_cache_mdb_status(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn), "lookup_begin");
    if (st)
        goto out;

    /* exact layer: the normalised text in the query's scope */
    for (size_t i = 0; i < n; i++) {
        if (!q[i].text)
            continue; /* as ever: no text, no lookup (the guards read it) */
        if (!exact) {
            if (q[i].vec) {
                sq[m].scope = q[i].scope;
                sq[m].q = i;
                m++;
            }
            continue;
        }
        sc_exact_key_t ek;
        uint64_t lo, hi;
        st = sc_cache_exact_key(q[i].scope, q[i].text, q[i].len, &ek, &lo, &hi);
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
            found = !mdb_get(txn, c->db_entries, &ik, &v) && !sc_cache_rec_parse(&v, &r) &&
                    r.h.scope == q[i].scope;
        }
        if (found && sc_cache_rec_expired(c, &r, now)) {
            sc_cache_pend_expired(c, id);
            found = 0;
        }
        if (found) {
            st = fill_hit(&r, id, SC_CACHE_HIT_EXACT, 1.0, &res[i]);
            if (st)
                goto out;
            sc_cache_pend_hit(c, id, now);
        } else if (semantic && q[i].vec) {
            sq[m].scope = q[i].scope;
            sq[m].q = i;
            m++;
        }
    }

    /* semantic layer: each query searches its own scope's partition only */
    if (m) {
        qsort(sq, m, sizeof(*sq), sq_cmp);
        pthread_rwlock_rdlock(&c->ilock);
        st = sc_cache_search_partitions(c, q, sq, m, cs, ci);
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
            if (mdb_get(txn, c->db_entries, &ik, &v) || sc_cache_rec_parse(&v, &rec))
                continue; /* deleted since the search */
            if (rec.h.scope != q[i].scope) { /* fail closed, and say so: the index is wrong */
                sc_error("cache_scope_mismatch", "id=%llu", (unsigned long long)id);
                continue;
            }
            if (sc_cache_rec_expired(c, &rec, now)) {
                sc_cache_pend_expired(c, id);
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
            sc_cache_pend_hit(c, id, now);
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
    /* an exact-only call counts its hits only: its misses go on to the caller's semantic-only
     * call, which counts them, so that a query looked up in two steps counts once */
    uint64_t counted = semantic ? n : he;
    atomic_fetch_add(&c->lookups, counted);
    atomic_fetch_add(&c->hits_exact, he);
    atomic_fetch_add(&c->hits_semantic, hs);
    atomic_fetch_add(&c->misses, counted - he - hs);
    sc_cache_maybe_flush(c);
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

sc_status_t sc_cache_find_exact(sc_cache_t *c, uint64_t scope, const char *text, size_t len,
                                int64_t *created_ms)
{
    if (!c || !text)
        return SC_ERR_INVALID_ARG;
    sc_exact_key_t ek;
    uint64_t lo, hi;
    sc_status_t st = sc_cache_exact_key(scope, text, len, &ek, &lo, &hi);
    if (st)
        return st;
    MDB_txn *txn = NULL;
    st = sc_cache_mdb_status(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn), "find_begin");
    if (st)
        return st;
    MDB_val ekv = {sizeof(ek.b), ek.b}, ev, v;
    sc_rec_t r;
    int rc = mdb_get(txn, c->db_exact, &ekv, &ev);
    if (rc == MDB_SUCCESS && ev.mv_size == sizeof(uint64_t)) {
        uint64_t id;
        memcpy(&id, ev.mv_data, sizeof(id));
        MDB_val k = {sizeof(id), &id};
        rc = mdb_get(txn, c->db_entries, &k, &v);
        if (rc == MDB_SUCCESS && !sc_cache_rec_parse(&v, &r)) {
            if (created_ms)
                *created_ms = r.h.created_ms;
        } else if (rc == MDB_SUCCESS) {
            st = SC_ERR_IO;
        }
    }
    if (!st && rc == MDB_NOTFOUND)
        st = SC_ERR_NOT_FOUND;
    else if (!st && rc)
        st = sc_cache_mdb_status(rc, "find");
    mdb_txn_abort(txn);
    return st;
}

sc_status_t sc_cache_get(sc_cache_t *c, uint64_t id, sc_cache_entry_t *e)
{
    memset(e, 0, sizeof(*e));
    if (!c)
        return SC_ERR_INVALID_ARG;
    MDB_txn *txn = NULL;
    sc_status_t st =
        sc_cache_mdb_status(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn), "get_begin");
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
        st = sc_cache_mdb_status(rc, "get");
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
    if (sc_cache_rec_parse(&own, &r)) {
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
    sc_status_t st = sc_cache_mdb_status(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn), "ls_begin");
    if (st)
        return st;
    st = sc_cache_mdb_status(mdb_cursor_open(txn, c->db_entries, &cur), "ls_cursor");
    if (st)
        goto out;
    MDB_val k, v;
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        sc_rec_t r;
        uint64_t id;
        if (k.mv_size != sizeof(id) || sc_cache_rec_parse(&v, &r))
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
        st = sc_cache_mdb_status(rc, "ls_scan");
out:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return st;
}

sc_status_t sc_cache_purge(sc_cache_t *c, const char *tenant, uint64_t *removed)
{
    return sc_cache_purge_before(c, tenant, INT64_MAX, removed);
}

sc_status_t sc_cache_purge_before(sc_cache_t *c, const char *tenant, int64_t before_ms,
                                  uint64_t *removed)
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
    st = sc_cache_mdb_status(sc_cache_wtxn_begin(c, &txn), "purge_begin");
    if (st)
        goto out;
    st = sc_cache_flush_pending(c, txn, &dentries, &dbytes, &dexpired);
    if (st)
        goto out;
    if (!tenant && before_ms == INT64_MAX) { /* everything: drop the contents, the whole index */
        MDB_stat ms;
        st = sc_cache_mdb_status(mdb_stat(txn, c->db_entries, &ms), "purge_stat");
        if (!st)
            st = sc_cache_mdb_status(mdb_drop(txn, c->db_entries, 0), "purge_drop");
        if (!st)
            st = sc_cache_mdb_status(mdb_drop(txn, c->db_exact, 0), "purge_drop");
        if (!st)
            st = sc_cache_mdb_status(mdb_drop(txn, c->db_lru, 0), "purge_drop");
        c->txn_changed = 1;
        if (!st)
            st = sc_cache_mdb_status(sc_cache_wtxn_commit(c, txn), "purge_commit");
        txn = NULL;
        if (st)
            goto out;
        count = ms.ms_entries;
        c->removed.n = 0;
        atomic_store(&c->entries, 0);
        atomic_store(&c->bytes, 0);
        pthread_rwlock_wrlock(&c->ilock);
        sc_cache_pmap_clear(&c->parts);
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
    /* one tenant (or every entry older than before_ms): collect the ids, then delete them */
    st = sc_cache_mdb_status(mdb_cursor_open(txn, c->db_entries, &cur), "purge_cursor");
    if (st)
        goto out;
    MDB_val k, v;
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        sc_rec_t r;
        uint64_t id;
        if (k.mv_size != sizeof(id) || sc_cache_rec_parse(&v, &r) ||
            (tenant && strcmp(r.tenant, tenant)) || r.h.created_ms >= before_ms)
            continue;
        memcpy(&id, k.mv_data, sizeof(id));
        st = sc_cache_idlist_push(&victims, id, r.h.scope);
        if (st)
            goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (rc != MDB_NOTFOUND) {
        st = sc_cache_mdb_status(rc, "purge_scan");
        goto out;
    }
    for (size_t i = 0; i < victims.n; i++) {
        MDB_val ik = {sizeof(uint64_t), &victims.v[i].id}, iv;
        sc_rec_t r;
        if (mdb_get(txn, c->db_entries, &ik, &iv) || sc_cache_rec_parse(&iv, &r))
            continue;
        st = sc_cache_store_del(c, txn, victims.v[i].id, &r, &dbytes);
        if (st)
            goto out;
        dentries--;
        count++;
    }
    st = sc_cache_mdb_status(sc_cache_wtxn_commit(c, txn), "purge_commit");
    txn = NULL;
    if (st)
        goto out;
    sc_cache_apply_deltas(c, dentries, dbytes, dexpired);
    sc_cache_index_apply_removed(c);
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
        if (before_ms == INT64_MAX)
            sc_info("cache_purge", "tenant=\"%s\" removed=%llu", tenant ? tenant : "*",
                    (unsigned long long)count);
        else
            sc_info("cache_purge", "tenant=\"%s\" before_ms=%lld removed=%llu",
                    tenant ? tenant : "*", (long long)before_ms, (unsigned long long)count);
    }
    return st;
}
