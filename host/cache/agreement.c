/* agreement.c - decayed per-scope, per-tier agreement counts: an in-memory table written through
 * to LMDB (agreement.h). */
#include "host/cache/agreement.h"

#include <errno.h>
#include <lmdb.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "host/cache/lmdb_env.h"
#include "host/core/log.h"
#include "host/core/util.h"

/*
 * LMDB record: key = the 16-byte canonical XXH3-128 of the joined names (tenant NUL agent NUL
 * stage NUL tier NUL), so it always fits LMDB's key limit whatever the names; value =
 *   magic u32, version u32, n f64, k f64, updated_ms i64, 4 × u16 name lengths, then the four
 *   names back to back (no NULs), all in host byte order.
 */
#define SC_AGREEMENT_MAGIC     0x52474153u /* "SAGR" */
#define SC_AGREEMENT_VERSION   1u
#define SC_AGREEMENT_FIELDS    4
#define SC_AGREEMENT_HEADER    40
#define SC_AGREEMENT_VALUE_MAX (SC_AGREEMENT_HEADER + SC_AGREEMENT_FIELDS * SC_AGREEMENT_FIELD_MAX)
#define SC_AGREEMENT_KEY_BYTES 16
#define SC_AGREEMENT_JOIN_MAX  (SC_AGREEMENT_FIELDS * (SC_AGREEMENT_FIELD_MAX + 1))
/* open addressing at most half full; a power of two so that a mask picks the slot */
#define SC_AGREEMENT_SLOTS     (2 * SC_AGREEMENT_MAX_ENTRIES)
#define SC_AGREEMENT_FIRST_CAP 64 /* entry pointers allocated at first; doubled up to the max */
#define SC_AGREEMENT_PATH_MAX  4096

/* The four names of an estimate, joined, and their hash: what add, get and load look up by. */
typedef struct {
    char buf[SC_AGREEMENT_JOIN_MAX]; /* tenant NUL agent NUL stage NUL tier NUL */
    size_t len;                      /* bytes of buf used, NULs included */
    uint16_t flen[SC_AGREEMENT_FIELDS];
    XXH128_hash_t h; /* of buf[0, len) */
} sc_agreement_key_t;

typedef struct {
    uint64_t h; /* h.low64 of its key: the slot's start */
    unsigned char lkey[SC_AGREEMENT_KEY_BYTES];
    sc_agreement_est_t est;
    uint16_t flen[SC_AGREEMENT_FIELDS];
    size_t names_len;
    char names[]; /* names_len bytes: tenant NUL agent NUL stage NUL tier NUL */
} sc_agreement_entry_t;

struct sc_agreement {
    pthread_mutex_t wmu; /* serialises the writers (add, purge) across their LMDB transaction */
    pthread_mutex_t mu;  /* guards the table below; never held across I/O. Writers hold wmu too
                          * when they change it, so under wmu alone the table may be read. */
    double decay;        /* what n and k are multiplied by before each add; 1 = no decay */
    MDB_env *env;        /* NULL: memory only */
    MDB_dbi dbi;
    sc_agreement_entry_t **entries; /* [0, n_entries) owned; cap allocated */
    size_t n_entries, cap;
    uint32_t *slots; /* SC_AGREEMENT_SLOTS; 0 empty, else an index into entries + 1 */
    char path[SC_AGREEMENT_PATH_MAX]; /* for the log: a failed write names its store */
};

/* ---- keys and the table ---- */

static void sc_agreement_hash(sc_agreement_key_t *key)
{
    key->h = XXH3_128bits(key->buf, key->len);
}

/* Join the names into key. SC_ERR_INVALID_ARG for a NULL or empty tenant or tier or a name over
 * SC_AGREEMENT_FIELD_MAX. */
static sc_status_t sc_agreement_key(sc_agreement_key_t *key, const char *tenant, const char *agent,
                                    const char *stage, const char *tier)
{
    const char *f[SC_AGREEMENT_FIELDS] = {tenant, agent ? agent : "", stage ? stage : "", tier};

    if (!tenant || !*tenant || !tier || !*tier)
        return SC_ERR_INVALID_ARG;
    key->len = 0;
    for (int i = 0; i < SC_AGREEMENT_FIELDS; i++) {
        size_t l = strnlen(f[i], SC_AGREEMENT_FIELD_MAX + 1);
        if (l > SC_AGREEMENT_FIELD_MAX)
            return SC_ERR_INVALID_ARG;
        memcpy(key->buf + key->len, f[i], l);
        key->buf[key->len + l] = '\0';
        key->len += l + 1;
        key->flen[i] = (uint16_t)l;
    }
    sc_agreement_hash(key);
    return SC_OK;
}

/* The slot holding key (*found = 1) or the empty slot where it would go (*found = 0). The table
 * is never more than half full, so an empty slot is always reached. Called under mu or wmu. */
static size_t sc_agreement_slot(const sc_agreement_t *a, const sc_agreement_key_t *key, int *found)
{
    size_t at = (size_t)(key->h.low64 & (SC_AGREEMENT_SLOTS - 1));

    *found = 0;
    for (size_t i = 0; i < SC_AGREEMENT_SLOTS; i++, at = (at + 1) & (SC_AGREEMENT_SLOTS - 1)) {
        uint32_t s = a->slots[at];
        if (s == 0)
            break;
        const sc_agreement_entry_t *e = a->entries[s - 1];
        if (e->h == key->h.low64 && e->names_len == key->len &&
            memcmp(e->names, key->buf, key->len) == 0) {
            *found = 1;
            break;
        }
    }
    return at;
}

/* A new entry for key with a zero estimate. @remark the caller frees it (free()). */
static sc_agreement_entry_t *sc_agreement_entry_new(const sc_agreement_key_t *key)
{
    sc_agreement_entry_t *e = calloc(1, sizeof(*e) + key->len);
    XXH128_canonical_t c;

    if (!e)
        return NULL;
    e->h = key->h.low64;
    XXH128_canonicalFromHash(&c, key->h);
    memcpy(e->lkey, c.digest, sizeof(e->lkey));
    memcpy(e->flen, key->flen, sizeof(e->flen));
    e->names_len = key->len;
    memcpy(e->names, key->buf, key->len);
    return e;
}

/* Room in entries for one more pointer; -1 when out of memory. Called under mu (it may move
 * entries). */
static int sc_agreement_reserve(sc_agreement_t *a)
{
    sc_agreement_entry_t **grown;
    size_t cap;

    if (a->n_entries < a->cap)
        return 0;
    cap = a->cap ? 2 * a->cap : SC_AGREEMENT_FIRST_CAP;
    if (cap > SC_AGREEMENT_MAX_ENTRIES)
        cap = SC_AGREEMENT_MAX_ENTRIES;
    grown = realloc(a->entries, cap * sizeof(*grown));
    if (!grown)
        return -1;
    a->entries = grown;
    a->cap = cap;
    return 0;
}

/* Put e at the empty slot at (reserved beforehand). Called under mu and wmu. */
static void sc_agreement_insert(sc_agreement_t *a, size_t at, sc_agreement_entry_t *e)
{
    a->entries[a->n_entries] = e;
    a->slots[at] = (uint32_t)(a->n_entries + 1);
    a->n_entries++;
}

/* ---- the LMDB value ---- */

/* The value of e with estimate est into v (SC_AGREEMENT_VALUE_MAX bytes); its length. */
static size_t sc_agreement_encode(unsigned char *v, const sc_agreement_entry_t *e,
                                  const sc_agreement_est_t *est)
{
    uint32_t magic = SC_AGREEMENT_MAGIC, ver = SC_AGREEMENT_VERSION;
    size_t len = SC_AGREEMENT_HEADER;
    const char *name = e->names;

    memcpy(v, &magic, 4);
    memcpy(v + 4, &ver, 4);
    memcpy(v + 8, &est->n, 8);
    memcpy(v + 16, &est->k, 8);
    memcpy(v + 24, &est->updated_ms, 8);
    memcpy(v + 32, e->flen, sizeof(e->flen));
    for (int i = 0; i < SC_AGREEMENT_FIELDS; i++) {
        memcpy(v + len, name, e->flen[i]);
        len += e->flen[i];
        name += e->flen[i] + 1;
    }
    return len;
}

/* Parse one stored record into key and est; -1 when it is not a well-formed record of this
 * version (wrong size, magic or version, bad lengths, a NUL in a name, counts out of range, or a
 * key that is not the hash of the names). */
static int sc_agreement_decode(const MDB_val *k, const MDB_val *v, sc_agreement_key_t *key,
                               sc_agreement_est_t *est)
{
    const unsigned char *p = v->mv_data;
    uint32_t magic, ver;
    size_t want = SC_AGREEMENT_HEADER, at = SC_AGREEMENT_HEADER;
    XXH128_canonical_t c;

    if (k->mv_size != SC_AGREEMENT_KEY_BYTES || v->mv_size < SC_AGREEMENT_HEADER)
        return -1;
    memcpy(&magic, p, 4);
    memcpy(&ver, p + 4, 4);
    if (magic != SC_AGREEMENT_MAGIC || ver != SC_AGREEMENT_VERSION)
        return -1;
    memcpy(&est->n, p + 8, 8);
    memcpy(&est->k, p + 16, 8);
    memcpy(&est->updated_ms, p + 24, 8);
    memcpy(key->flen, p + 32, sizeof(key->flen));
    if (!isfinite(est->n) || !isfinite(est->k) || !(est->k >= 0) || !(est->k <= est->n))
        return -1;
    for (int i = 0; i < SC_AGREEMENT_FIELDS; i++) {
        if (key->flen[i] > SC_AGREEMENT_FIELD_MAX)
            return -1;
        want += key->flen[i];
    }
    if (want != v->mv_size || key->flen[0] == 0 || key->flen[SC_AGREEMENT_FIELDS - 1] == 0)
        return -1;
    key->len = 0;
    for (int i = 0; i < SC_AGREEMENT_FIELDS; i++) {
        size_t l = key->flen[i];
        if (memchr(p + at, '\0', l))
            return -1;
        memcpy(key->buf + key->len, p + at, l);
        key->buf[key->len + l] = '\0';
        key->len += l + 1;
        at += l;
    }
    sc_agreement_hash(key);
    XXH128_canonicalFromHash(&c, key->h);
    return memcmp(c.digest, k->mv_data, SC_AGREEMENT_KEY_BYTES) == 0 ? 0 : -1;
}

/* Write e's record with estimate est in one transaction. Called under wmu. */
static sc_status_t sc_agreement_put(sc_agreement_t *a, const sc_agreement_entry_t *e,
                                    const sc_agreement_est_t *est)
{
    unsigned char v[SC_AGREEMENT_VALUE_MAX];
    MDB_val key, val;
    MDB_txn *txn = NULL;
    int rc;

    key.mv_data = (void *)e->lkey;
    key.mv_size = sizeof(e->lkey);
    val.mv_data = v;
    val.mv_size = sc_agreement_encode(v, e, est);
    if ((rc = mdb_txn_begin(a->env, NULL, 0, &txn)) == 0) {
        rc = mdb_put(txn, a->dbi, &key, &val, 0);
        if (rc == 0)
            rc = mdb_txn_commit(txn); /* synchronous: durable once it returns */
        else
            mdb_txn_abort(txn);
    }
    if (rc == 0)
        return SC_OK;
    /* the record on disk is the last one written (LMDB commits whole or not at all) */
    sc_error("agreement_store", "op=put path=%s error=\"%s\"", a->path, mdb_strerror(rc));
    return SC_ERR_IO;
}

/* Every stored record into the table; records that do not parse, and any beyond
 * SC_AGREEMENT_MAX_ENTRIES, are skipped (and counted in the log). Called before a is shared. */
static sc_status_t sc_agreement_load(sc_agreement_t *a, const char *path, char *errbuf,
                                     size_t errlen)
{
    sc_status_t st = SC_OK;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    sc_agreement_key_t key;
    sc_agreement_est_t est;
    size_t skipped = 0;
    int rc, found;

    if ((rc = mdb_txn_begin(a->env, NULL, MDB_RDONLY, &txn)) != 0 ||
        (rc = mdb_cursor_open(txn, a->dbi, &cur)) != 0) {
        snprintf(errbuf, errlen, "agreement store %s: %s", path, mdb_strerror(rc));
        st = SC_ERR_IO;
        goto out;
    }
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (sc_agreement_decode(&k, &v, &key, &est) != 0 ||
            a->n_entries >= SC_AGREEMENT_MAX_ENTRIES) {
            skipped++;
            continue;
        }
        size_t at = sc_agreement_slot(a, &key, &found);
        if (found) { /* the same names under two keys cannot be written by add */
            skipped++;
            continue;
        }
        sc_agreement_entry_t *e = sc_agreement_entry_new(&key);
        if (!e || sc_agreement_reserve(a) != 0) {
            free(e);
            snprintf(errbuf, errlen, "agreement store %s: out of memory", path);
            st = SC_ERR_NOMEM;
            goto out;
        }
        e->est = est;
        sc_agreement_insert(a, at, e);
    }
    if (rc != MDB_NOTFOUND) {
        snprintf(errbuf, errlen, "agreement store %s: %s", path, mdb_strerror(rc));
        st = SC_ERR_IO;
        goto out;
    }
    if (skipped)
        sc_warn("agreement_load_skipped", "path=%s skipped=%zu loaded=%zu", path, skipped,
                a->n_entries);
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return st;
}

/* ---- open / close ---- */

sc_status_t sc_agreement_open(const char *path, double window, sc_agreement_t **out, char *errbuf,
                              size_t errlen)
{
    sc_status_t st = SC_OK;
    sc_agreement_t *a = NULL;
    MDB_txn *txn = NULL;
    int rc = 0;

    if (!out) {
        snprintf(errbuf, errlen, "agreement store: no out");
        return SC_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (!(window == 0 || window >= 1)) { /* NaN too */
        snprintf(errbuf, errlen, "agreement store: window %g is neither 0 nor >= 1", window);
        return SC_ERR_INVALID_ARG;
    }
    a = calloc(1, sizeof(*a));
    if (a)
        a->slots = calloc(SC_AGREEMENT_SLOTS, sizeof(*a->slots));
    if (!a || !a->slots) {
        if (a)
            free(a);
        snprintf(errbuf, errlen, "agreement store: out of memory");
        return SC_ERR_NOMEM;
    }
    a->decay = window == 0 ? 1.0 : 1.0 - 1.0 / window;
    if (pthread_mutex_init(&a->mu, NULL) != 0) {
        free(a->slots);
        free(a);
        snprintf(errbuf, errlen, "agreement store: mutex");
        return SC_ERR_NOMEM;
    }
    if (pthread_mutex_init(&a->wmu, NULL) != 0) {
        pthread_mutex_destroy(&a->mu);
        free(a->slots);
        free(a);
        snprintf(errbuf, errlen, "agreement store: mutex");
        return SC_ERR_NOMEM;
    }
    if (!path || !*path)
        goto out; /* memory only */
    sc_strlcpy(a->path, path, sizeof(a->path));

    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(errbuf, errlen, "agreement store %s: mkdir: %s", path, strerror(errno));
        st = SC_ERR_IO;
        goto out;
    }
    if ((rc = mdb_env_create(&a->env)) != 0 ||
        (rc = mdb_env_set_mapsize(a->env, SC_AGREEMENT_DEFAULT_MAP)) != 0 ||
        /* NOTLS: read transactions are not tied to threads (the pipeline's workers share it) */
        (rc = sc_lmdb_env_open(a->env, path, MDB_NOTLS, 0600)) != 0 ||
        (rc = mdb_txn_begin(a->env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, NULL, 0, &a->dbi)) != 0)
        goto lmdb_fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        goto lmdb_fail;
    st = sc_agreement_load(a, path, errbuf, errlen);
    goto out;

lmdb_fail:
    snprintf(errbuf, errlen, "agreement store %s: %s", path, mdb_strerror(rc));
    st = SC_ERR_IO;
out:
    if (txn)
        mdb_txn_abort(txn);
    if (st != SC_OK) {
        sc_agreement_close(a);
        return st;
    }
    *out = a;
    return SC_OK;
}

void sc_agreement_close(sc_agreement_t *a)
{
    if (!a)
        return;
    if (a->env)
        mdb_env_close(a->env);
    for (size_t i = 0; i < a->n_entries; i++)
        free(a->entries[i]);
    free(a->entries);
    free(a->slots);
    pthread_mutex_destroy(&a->wmu);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* ---- add / get ---- */

sc_status_t sc_agreement_add(sc_agreement_t *a, const char *tenant, const char *agent,
                             const char *stage, const char *tier, int agree,
                             sc_agreement_est_t *now)
{
    sc_agreement_key_t key;
    sc_agreement_entry_t *fresh = NULL, *e = NULL;
    sc_agreement_est_t est;
    sc_status_t st;
    size_t at;
    int found;

    if (!a)
        return SC_ERR_INVALID_ARG;
    if ((st = sc_agreement_key(&key, tenant, agent, stage, tier)) != SC_OK)
        return st;

    /* wmu held throughout: no other writer moves the slot or the estimate read here before the
     * new one is published; readers only wait for mu, never for the disk */
    pthread_mutex_lock(&a->wmu);
    pthread_mutex_lock(&a->mu);
    at = sc_agreement_slot(a, &key, &found);
    if (found) {
        e = a->entries[a->slots[at] - 1];
    } else if (a->n_entries >= SC_AGREEMENT_MAX_ENTRIES) {
        st = SC_ERR_FULL;
    } else {
        fresh = e = sc_agreement_entry_new(&key);
        if (!e || sc_agreement_reserve(a) != 0)
            st = SC_ERR_NOMEM;
    }
    pthread_mutex_unlock(&a->mu);
    if (st != SC_OK)
        goto out;

    est.n = e->est.n * a->decay + 1.0;
    est.k = e->est.k * a->decay + (agree ? 1.0 : 0.0);
    if (est.k > est.n)
        est.k = est.n;
    est.updated_ms = sc_wall_ms();
    if (a->env && (st = sc_agreement_put(a, e, &est)) != SC_OK)
        goto out; /* the in-memory estimate stays as it was */

    pthread_mutex_lock(&a->mu);
    e->est = est;
    if (fresh) {
        sc_agreement_insert(a, at, fresh);
        fresh = NULL;
    }
    pthread_mutex_unlock(&a->mu);
    if (now)
        *now = est;
out:
    pthread_mutex_unlock(&a->wmu);
    free(fresh);
    return st;
}

int sc_agreement_get(sc_agreement_t *a, const char *tenant, const char *agent, const char *stage,
                     const char *tier, sc_agreement_est_t *out)
{
    sc_agreement_key_t key;
    int found = 0;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!a || sc_agreement_key(&key, tenant, agent, stage, tier) != SC_OK)
        return 0;
    pthread_mutex_lock(&a->mu);
    size_t at = sc_agreement_slot(a, &key, &found);
    if (found && out)
        *out = a->entries[a->slots[at] - 1]->est;
    pthread_mutex_unlock(&a->mu);
    return found;
}

size_t sc_agreement_count(sc_agreement_t *a)
{
    size_t n;

    if (!a)
        return 0;
    pthread_mutex_lock(&a->mu);
    n = a->n_entries;
    pthread_mutex_unlock(&a->mu);
    return n;
}

void sc_agreement_foreach(sc_agreement_t *a, sc_agreement_fn fn, void *arg)
{
    if (!a || !fn)
        return;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->n_entries; i++) {
        const sc_agreement_entry_t *e = a->entries[i];
        const char *f[SC_AGREEMENT_FIELDS];
        const char *p = e->names;
        for (int j = 0; j < SC_AGREEMENT_FIELDS; j++) {
            f[j] = p;
            p += e->flen[j] + 1;
        }
        fn(f[0], f[1], f[2], f[3], &e->est, arg);
    }
    pthread_mutex_unlock(&a->mu);
}

/* ---- purge ---- */

static int sc_agreement_of_tenant(const sc_agreement_entry_t *e, const char *tenant, size_t tl)
{
    return e->flen[0] == tl && memcmp(e->names, tenant, tl) == 0;
}

long sc_agreement_purge_tenant(sc_agreement_t *a, const char *tenant)
{
    MDB_txn *txn = NULL;
    long removed = 0;
    size_t tl, j = 0;
    int rc = 0, found;

    if (!a || !tenant || !*tenant)
        return 0;
    tl = strlen(tenant);
    pthread_mutex_lock(&a->wmu); /* the table may be read under wmu: only writers change it */
    for (size_t i = 0; i < a->n_entries; i++)
        removed += sc_agreement_of_tenant(a->entries[i], tenant, tl);
    if (removed == 0)
        goto out;

    if (a->env) {
        if ((rc = mdb_txn_begin(a->env, NULL, 0, &txn)) != 0) {
            sc_error("agreement_store", "op=purge path=%s error=\"%s\"", a->path,
                     mdb_strerror(rc));
            removed = -1;
            goto out;
        }
        for (size_t i = 0; i < a->n_entries && rc == 0; i++) {
            sc_agreement_entry_t *e = a->entries[i];
            MDB_val key = {.mv_size = sizeof(e->lkey), .mv_data = e->lkey};
            if (sc_agreement_of_tenant(e, tenant, tl)) {
                rc = mdb_del(txn, a->dbi, &key, NULL);
                if (rc == MDB_NOTFOUND)
                    rc = 0;
            }
        }
        if (rc != 0)
            mdb_txn_abort(txn);
        else
            rc = mdb_txn_commit(txn);
        if (rc != 0) {
            sc_error("agreement_store", "op=purge path=%s error=\"%s\"", a->path,
                     mdb_strerror(rc));
            removed = -1;
            goto out;
        }
    }

    /* drop the tenant's entries, keep the rest in order, and rebuild the slots: open addressing
     * has no cheap delete, and a purge is rare */
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->n_entries; i++) {
        if (sc_agreement_of_tenant(a->entries[i], tenant, tl))
            free(a->entries[i]);
        else
            a->entries[j++] = a->entries[i];
    }
    a->n_entries = 0;
    memset(a->slots, 0, SC_AGREEMENT_SLOTS * sizeof(*a->slots));
    for (size_t i = 0; i < j; i++) {
        sc_agreement_entry_t *e = a->entries[i];
        sc_agreement_key_t key;
        memcpy(key.buf, e->names, e->names_len);
        key.len = e->names_len;
        key.h.low64 = e->h;
        sc_agreement_insert(a, sc_agreement_slot(a, &key, &found), e);
    }
    pthread_mutex_unlock(&a->mu);
out:
    pthread_mutex_unlock(&a->wmu);
    return removed;
}

/* ---- Wilson score interval ---- */

static double sc_clamp01(double x)
{
    if (!(x > 0)) /* NaN too */
        return 0;
    return x > 1 ? 1 : x;
}

/* Both bounds for n > 0. */
static void sc_wilson(double k, double n, double z, double *lo, double *hi)
{
    double p = sc_clamp01(k / n), z2 = z * z;
    double denom = 1 + z2 / n;
    double center = (p + z2 / (2 * n)) / denom;
    double half = fabs(z) * sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom;

    *lo = sc_clamp01(center - half);
    *hi = sc_clamp01(center + half);
}

double sc_wilson_lower(double k, double n, double z)
{
    double lo, hi;

    if (!(n > 0))
        return 0;
    sc_wilson(k, n, z, &lo, &hi);
    return lo;
}

double sc_wilson_upper(double k, double n, double z)
{
    double lo, hi;

    if (!(n > 0))
        return 1;
    sc_wilson(k, n, z, &lo, &hi);
    return hi;
}
