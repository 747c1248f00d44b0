/* store.c - the cache's LMDB store: records, exact and LRU keys, meta and the index generation,
 * write transactions, deletes and puts, LRU eviction, and the hit updates lookups queue. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "host/cache/cache_internal.h"
#include "host/core/log.h"
#include "host/core/util.h"

#define SC_CACHE_MAGIC 0x53434331u            /* "SCC1": record format version */
#define SC_CACHE_EVICT_PERCENT 90             /* evict down to this share of max_bytes */

/* ---- records ---- */

int sc_cache_rec_parse(const MDB_val *v, sc_rec_t *r)
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

int sc_cache_rec_expired(const sc_cache_t *c, const sc_rec_t *r, int64_t now_ms)
{
    return c->opts.ttl_s > 0 && now_ms - r->h.created_ms >= c->opts.ttl_s * 1000;
}

/* ---- transactions and meta ---- */

sc_status_t sc_cache_mdb_status(int rc, const char *what)
{
    if (rc == MDB_SUCCESS)
        return SC_OK;
    sc_error("cache_lmdb", "op=%s error=\"%s\"", what, mdb_strerror(rc));
    if (rc == MDB_MAP_FULL)
        return SC_ERR_FULL;
    return rc == ENOMEM ? SC_ERR_NOMEM : SC_ERR_IO;
}

uint64_t sc_cache_meta_u64(MDB_txn *txn, MDB_dbi db, const char *key)
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
int sc_cache_wtxn_begin(sc_cache_t *c, MDB_txn **txn)
{
    c->txn_changed = 0;
    return mdb_txn_begin(c->env, NULL, 0, txn);
}

int sc_cache_wtxn_commit(sc_cache_t *c, MDB_txn *txn)
{
    uint64_t gen = c->gen;
    if (c->txn_changed) {
        uint64_t cur = sc_cache_meta_u64(txn, c->db_meta, SC_CACHE_META_GEN);
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

/* The store's identity: random bytes made with its meta database (a new or replaced store gets
 * new ones, so that no saved index of another store matches it). */
int sc_cache_meta_init(sc_cache_t *c, MDB_txn *txn)
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

/* ---- store writes (under wmu, inside a write transaction) ---- */

/* Delete entry id (its record r) from the three databases; queue its vector for removal. */
sc_status_t sc_cache_store_del(sc_cache_t *c, MDB_txn *txn, uint64_t id, const sc_rec_t *r,
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
            return sc_cache_mdb_status(rc, "del_exact");
    }
    MDB_val lkv = {sizeof(lk), lk};
    rc = mdb_del(txn, c->db_lru, &lkv, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return sc_cache_mdb_status(rc, "del_lru");
    rc = mdb_del(txn, c->db_entries, &k, NULL);
    if (rc)
        return sc_cache_mdb_status(rc, "del_entry");
    c->txn_changed = 1;
    *dbytes -= (int64_t)(size + SC_CACHE_KEY_OVERHEAD);
    if (has_vec)
        return sc_cache_idlist_push(&c->removed, id, scope);
    return SC_OK;
}

/* Write entry id for item it: record, exact key, LRU key. An entry of the same text in the same
 * scope is deleted first: the new answer replaces it. */
sc_status_t sc_cache_store_put(sc_cache_t *c, MDB_txn *txn, const sc_cache_item_t *it, uint64_t id,
                               int64_t now, int64_t *dentries, int64_t *dbytes)
{
    const sc_cache_query_t *q = &it->q;
    const char *tenant = q->tenant ? q->tenant : "";
    const char *model = it->model ? it->model : "";
    size_t tl = strlen(tenant), ml = strlen(model);
    sc_exact_key_t ek;
    sc_rec_hdr_t h;
    memset(&h, 0, sizeof(h));
    sc_status_t st = sc_cache_exact_key(q->scope, q->text, q->len, &ek, &h.key_lo, &h.key_hi);
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
        if (!mdb_get(txn, c->db_entries, &ok, &ov) && !sc_cache_rec_parse(&ov, &r)) {
            st = sc_cache_store_del(c, txn, old, &r, dbytes);
            if (st)
                return st;
            (*dentries)--;
        }
    } else if (rc != MDB_NOTFOUND) {
        return sc_cache_mdb_status(rc, "get_exact");
    }
    h.magic = SC_CACHE_MAGIC;
    h.dim = q->vec ? (uint32_t)c->opts.dim : 0;
    h.scope = q->scope;
    /* an entry restored from the changelog keeps its age (the TTL counts from its creation) */
    h.created_ms = h.last_hit_ms = it->created_ms > 0 && it->created_ms < now ? it->created_ms : now;
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
        return sc_cache_mdb_status(rc, "put_entry");
    c->txn_changed = 1;
    rec_write(v.mv_data, &h, tenant, model, q->vec, q->text, it->response);
    MDB_val idv = {sizeof(id), &id};
    rc = mdb_put(txn, c->db_exact, &ekv, &idv, 0);
    if (rc)
        return sc_cache_mdb_status(rc, "put_exact");
    unsigned char lk[16];
    lru_key(lk, now, id);
    MDB_val lkv = {sizeof(lk), lk}, empty = {0, NULL};
    rc = mdb_put(txn, c->db_lru, &lkv, &empty, 0);
    if (rc)
        return sc_cache_mdb_status(rc, "put_lru");
    (*dentries)++;
    *dbytes += (int64_t)(size + SC_CACHE_KEY_OVERHEAD);
    return SC_OK;
}

void sc_cache_apply_deltas(sc_cache_t *c, int64_t dentries, int64_t dbytes, uint64_t dexpired)
{
    atomic_fetch_add(&c->entries, (uint64_t)dentries);
    atomic_fetch_add(&c->bytes, (uint64_t)dbytes);
    atomic_fetch_add(&c->expired, dexpired);
}

/* Delete the least recently hit entries until the store is under SC_CACHE_EVICT_PERCENT of
 * max_bytes. Under wmu. */
sc_status_t sc_cache_evict(sc_cache_t *c)
{
    if (atomic_load(&c->bytes) <= c->opts.max_bytes)
        return SC_OK;
    uint64_t target = (uint64_t)((double)c->opts.max_bytes * SC_CACHE_EVICT_PERCENT / 100.0);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int64_t dentries = 0, dbytes = 0;
    uint64_t n = 0;
    sc_status_t st = sc_cache_mdb_status(sc_cache_wtxn_begin(c, &txn), "evict_begin");
    if (st)
        goto out;
    st = sc_cache_mdb_status(mdb_cursor_open(txn, c->db_lru, &cur), "evict_cursor");
    if (st)
        goto out;
    while ((int64_t)atomic_load(&c->bytes) + dbytes > (int64_t)target) {
        MDB_val k, v;
        int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == MDB_NOTFOUND)
            break;
        if (rc || k.mv_size != 16) {
            st = sc_cache_mdb_status(rc ? rc : MDB_CORRUPTED, "evict_first");
            goto out;
        }
        uint64_t id = lru_key_id(k.mv_data);
        MDB_val ik = {sizeof(id), &id}, iv;
        sc_rec_t r;
        rc = mdb_get(txn, c->db_entries, &ik, &iv);
        if (rc || sc_cache_rec_parse(&iv, &r)) { /* an orphan LRU key: drop it */
            st = sc_cache_mdb_status(mdb_cursor_del(cur, 0), "evict_orphan");
            if (st)
                goto out;
            continue;
        }
        st = sc_cache_store_del(c, txn, id, &r, &dbytes);
        if (st)
            goto out;
        dentries--;
        n++;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    st = sc_cache_mdb_status(sc_cache_wtxn_commit(c, txn), "evict_commit");
    txn = NULL;
    if (st)
        goto out;
    sc_cache_apply_deltas(c, dentries, dbytes, 0);
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
    sc_cache_index_apply_removed(c);
    return st;
}

/* ---- pending hit updates (queued by lookups) ---- */

void sc_cache_pend_hit(sc_cache_t *c, uint64_t id, int64_t now)
{
    pthread_mutex_lock(&c->pmu);
    if (c->n_pend_hits < SC_CACHE_PENDING_MAX) {
        c->pend_hits[c->n_pend_hits].id = id;
        c->pend_hits[c->n_pend_hits].when_ms = now;
        c->n_pend_hits++;
    }
    pthread_mutex_unlock(&c->pmu);
}

void sc_cache_pend_expired(sc_cache_t *c, uint64_t id)
{
    pthread_mutex_lock(&c->pmu);
    if (c->n_pend_exp < SC_CACHE_PENDING_MAX)
        c->pend_exp[c->n_pend_exp++] = id;
    pthread_mutex_unlock(&c->pmu);
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
sc_status_t sc_cache_flush_pending(sc_cache_t *c, MDB_txn *txn, int64_t *dentries, int64_t *dbytes,
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
        if (mdb_get(txn, c->db_entries, &k, &v) || sc_cache_rec_parse(&v, &r) ||
            !sc_cache_rec_expired(c, &r, now))
            continue;
        st = sc_cache_store_del(c, txn, id, &r, dbytes);
        if (st)
            return st;
        (*dentries)--;
        (*dexpired)++;
    }
    for (size_t i = 0; i < nh; i++) {
        uint64_t id = c->work_hits[i].id;
        MDB_val k = {sizeof(id), &id}, v;
        sc_rec_t r;
        if (mdb_get(txn, c->db_entries, &k, &v) || sc_cache_rec_parse(&v, &r))
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
            return sc_cache_mdb_status(rc, "hit_update");
    }
    return SC_OK;
}

/* Write the queued work when no writer is busy and enough has gathered (or an expiry waits). */
void sc_cache_maybe_flush(sc_cache_t *c)
{
    pthread_mutex_lock(&c->pmu);
    int due = c->n_pend_exp > 0 || c->n_pend_hits >= SC_CACHE_PENDING_MAX / 2;
    pthread_mutex_unlock(&c->pmu);
    if (!due || pthread_mutex_trylock(&c->wmu))
        return;
    MDB_txn *txn = NULL;
    int64_t de = 0, db = 0;
    uint64_t dx = 0;
    if (!sc_cache_wtxn_begin(c, &txn)) {
        if (sc_cache_flush_pending(c, txn, &de, &db, &dx)) {
            mdb_txn_abort(txn);
            c->removed.n = 0;
        } else if (sc_cache_wtxn_commit(c, txn)) {
            c->removed.n = 0;
        } else {
            sc_cache_apply_deltas(c, de, db, dx);
            sc_cache_index_apply_removed(c);
        }
    }
    pthread_mutex_unlock(&c->wmu);
}
