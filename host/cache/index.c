/* index.c - the cache's index: per-scope FAISS partitions (flat, HNSW, IVF) in a scope map, or
 * the GPU flat index; adds, removals, the rebuild from the store at open, the partition search. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <omp.h>

#include "host/cache/cache_internal.h"
#include "host/cache/gpu_flat.h"
#include "host/core/log.h"
#include "host/core/util.h"

#define SC_CACHE_DEAD_EXTRA_MAX 64            /* extra HNSW candidates to step over deleted ids */
#define SC_CACHE_HNSW_DEAD_FRACTION 4         /* rebuild an HNSW partition past live/4 dead ids */
#define SC_CACHE_IVF_MIN_PER_LIST 39          /* FAISS's minimum training points per list */
#define SC_CACHE_PAR_MIN 16                   /* queries per search before FAISS may use a team */
#define SC_CACHE_DESC_MAX 64

/* ---- id list, id set and partition map ---- */

sc_status_t sc_cache_idlist_push(sc_idlist_t *l, uint64_t id, uint64_t scope)
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

static size_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x;
}

int sc_cache_idset_has(const sc_idset_t *s, int64_t id)
{
    if (!s->cap)
        return 0;
    size_t m = s->cap - 1;
    for (size_t i = mix64((uint64_t)id) & m; s->slot[i]; i = (i + 1) & m)
        if (s->slot[i] == id)
            return 1;
    return 0;
}

sc_status_t sc_cache_idset_add(sc_idset_t *s, int64_t id)
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

sc_part_t *sc_cache_pmap_get(const sc_pmap_t *m, uint64_t scope)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = mix64(scope) & mask; m->slot[i]; i = (i + 1) & mask)
        if (m->slot[i]->scope == scope)
            return m->slot[i];
    return NULL;
}

sc_status_t sc_cache_pmap_put(sc_pmap_t *m, sc_part_t *p)
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

void sc_cache_part_free(sc_part_t *p)
{
    if (!p)
        return;
    faiss_Index_free(p->ix);
    idset_clear(&p->dead);
    free(p);
}

void sc_cache_pmap_clear(sc_pmap_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        sc_cache_part_free(m->slot[i]);
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
sc_status_t sc_cache_part_tune(sc_cache_t *c, FaissIndex *ix, sc_part_kind_t kind, int nlist)
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
    st = sc_cache_part_tune(c, ix, *kind, nlist);
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
        if (sc_cache_idset_has(&p->dead, map[i]))
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
    sc_part_t *p = sc_cache_pmap_get(&c->parts, scope);
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return SC_ERR_NOMEM;
        p->scope = scope;
        st = part_build_index(c, n, vecs, ids, &p->ix, &p->kind, &p->nlist);
        if (!st)
            st = sc_cache_pmap_put(&c->parts, p);
        if (st) {
            sc_cache_part_free(p);
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
void sc_cache_part_remove(sc_cache_t *c, uint64_t scope, const int64_t *ids, size_t n)
{
    sc_part_t *p = sc_cache_pmap_get(&c->parts, scope);
    if (!p || !n)
        return;
    if (p->kind == SC_PART_HNSW) { /* HNSW cannot remove: the ids are skipped in this partition */
        for (size_t i = 0; i < n && p->live; i++) {
            if (sc_cache_idset_has(&p->dead, ids[i]))
                continue;
            if (sc_cache_idset_add(&p->dead, ids[i])) {
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
        sc_cache_part_free(p);
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
void sc_cache_index_apply_removed(sc_cache_t *c)
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
            sc_cache_part_remove(c, r->v[i].scope, ids, j - i);
        } else { /* out of memory for the batch: one at a time */
            for (size_t t = i; t < j; t++) {
                int64_t one = (int64_t)r->v[t].id;
                sc_cache_part_remove(c, r->v[t].scope, &one, 1);
            }
        }
    }
    pthread_rwlock_unlock(&c->ilock);
    free(ids);
    r->n = 0;
}

/* Add rows (sorted by scope) to the index, one partition per run of a scope. */
sc_status_t sc_cache_index_add_rows(sc_cache_t *c, sc_row_t *rows, size_t n)
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

/* ---- the GPU flat index ---- */

/* The GPU flat index (c->gpu) when use_gpu and a GPU is there; else the CPU partitions. */
void sc_cache_gpu_init(sc_cache_t *c)
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

/* ---- the index at open: the saved partitions or a rebuild from the store ---- */

static int row_cmp(const void *a, const void *b)
{
    const sc_row_t *x = a, *y = b;
    if (x->scope != y->scope)
        return x->scope < y->scope ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Read every entry, drop the expired ones, and make the partitions: the saved ones when their
 * stamp and ids match the store, built from the store for every other scope. */
sc_status_t sc_cache_rebuild(sc_cache_t *c)
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
    sc_status_t st =
        sc_cache_mdb_status(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn), "rebuild_begin");
    if (st)
        goto out;
    /* what this snapshot reflects */
    c->gen = sc_cache_meta_u64(txn, c->db_meta, SC_CACHE_META_GEN);
    if (sc_cache_persist_on(c)) {
        have_saved = sc_cache_ix_read(c, c->gen, &loaded);
        load_ms = (double)(sc_now_us() - t0) / 1000.0;
    }
    st = sc_cache_mdb_status(mdb_cursor_open(txn, c->db_entries, &cur), "rebuild_cursor");
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
        if (sc_cache_rec_parse(&v, &r)) {
            sc_warn("cache_record", "id=%llu result=unreadable", (unsigned long long)id);
            continue;
        }
        if (sc_cache_rec_expired(c, &r, now)) {
            st = sc_cache_idlist_push(&expired, id, r.h.scope);
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
        st = sc_cache_mdb_status(rc, "rebuild_scan");
        goto out;
    }
    if (nrows) /* an empty store leaves rows NULL, and qsort's base must not be NULL */
        qsort(rows, nrows, sizeof(*rows), row_cmp);
    if (have_saved && !sc_cache_ix_matches(&loaded, rows, nrows)) {
        sc_warn("cache_index_load", "result=mismatch reason=\"the saved partitions differ from "
                "the store's entries\" action=rebuild");
        sc_cache_pmap_clear(&loaded);
        have_saved = 0;
        size_t w = 0; /* the expired rows were kept for the comparison only */
        for (size_t i = 0; i < nrows; i++)
            if (!rows[i].expired)
                rows[w++] = rows[i];
        nrows = w;
    }
    pthread_rwlock_wrlock(&c->ilock);
    if (have_saved)
        st = sc_cache_ix_adopt(c, &loaded, rows, &nrows, &maxid);
    if (!st)
        st = sc_cache_index_add_rows(c, rows, nrows);
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
        sc_status_t xs = sc_cache_mdb_status(sc_cache_wtxn_begin(c, &txn), "expire_begin");
        if (xs)
            txn = NULL;
        for (size_t i = 0; !xs && i < expired.n; i++) {
            MDB_val ik = {sizeof(uint64_t), &expired.v[i].id}, iv;
            sc_rec_t r;
            if (mdb_get(txn, c->db_entries, &ik, &iv) || sc_cache_rec_parse(&iv, &r))
                continue;
            xs = sc_cache_store_del(c, txn, expired.v[i].id, &r, &dbytes);
        }
        c->removed.n = 0;
        if (!xs) {
            xs = sc_cache_mdb_status(sc_cache_wtxn_commit(c, txn), "expire_commit");
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
    sc_cache_pmap_clear(&loaded);
    free(rows);
    free(expired.v);
    return st;
}

/* ---- search ---- */

/* Search the partitions for the semantic queries sq[0..m): candidates (best first, deleted ids
 * skipped, -1 padded) into cs/ci, SC_CACHE_TOPK per query, indexed like sq. Under ilock (read). */
sc_status_t sc_cache_search_partitions(sc_cache_t *c, const sc_cache_query_t *q, const sc_sq_t *sq,
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
        const sc_part_t *p = sc_cache_pmap_get(&c->parts, sq[i].scope);
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
                if (id < 0 || (extra && sc_cache_idset_has(&p->dead, id)))
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
