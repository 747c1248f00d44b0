/* index_file.c - the cache's saved index (index.scx): writing, reading, checking it against the
 * store and adopting it at open; saves at close and by the checkpoint thread. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_io_c.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "host/cache/cache_internal.h"
#include "host/core/log.h"
#include "host/core/util.h"

#define SC_CACHE_IX_DEAD_MAX (1ull << 32)     /* bounds for a partition record */
#define SC_CACHE_IO_CHUNK (1u << 20)

/* ---- saving (the layout of index.scx: cache_internal.h) ---- */

/* Saving and loading apply to CPU hnsw/ivf partitions only: flat ones (and the GPU index) are
 * about as fast to build from the store as to read. */
int sc_cache_persist_on(const sc_cache_t *c)
{
    return c->opts.index_save && !c->opts.store_only && !c->gpu &&
           (!strcmp(c->index_kind, "hnsw") || !strcmp(c->index_kind, "ivf"));
}

void sc_cache_ix_path(const sc_cache_t *c, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", c->path, name);
}

/* The header this cache writes for generation gen (no counts, no hashes). */
void sc_cache_ix_stamp(const sc_cache_t *c, uint64_t gen, sc_ix_hdr_t *h)
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

uint64_t sc_cache_ix_header_hash(const sc_ix_hdr_t *h)
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
    sc_cache_ix_path(c, SC_CACHE_IX_TMP, tmp, sizeof(tmp));
    sc_cache_ix_path(c, SC_CACHE_IX_FILE, fin, sizeof(fin));
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
    sc_cache_ix_stamp(c, gen, &h);
    h.n_parts = n;
    const char *op = "open";
    off_t end = 0;
    int rc;
    errno = 0; /* what fails below says why through errno; none from before */
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
            int e = errno; /* the write FAISS saw fail (a full disk, say) */
            const char *m = faiss_get_last_error();
            int said = e && m && strstr(m, strerror(e)); /* newer FAISS words it itself */
            snprintf(err, sizeof(err), "faiss: %s%s%s", m ? m : "unknown", e && !said ? "; " : "",
                     e && !said ? strerror(e) : "");
            goto fail;
        }
    }
    if (fflush(f) || (end = ftello(f)) < (off_t)sizeof(h))
        goto fail;
    h.payload_len = (uint64_t)end - sizeof(h);
    op = "hash";
    if (fseeko(f, (off_t)sizeof(h), SEEK_SET) || ix_hash(f, h.payload_len, &h.payload_hash))
        goto fail;
    h.header_hash = sc_cache_ix_header_hash(&h);
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
    sc_warn("cache_index_save", "result=failed op=%s path=%s error=\"%s\" note=\"%s is left as "
            "it was\"", op, tmp, err, SC_CACHE_IX_FILE);
    if (f)
        fclose(f);
    unlink(tmp); /* never renamed: a torn file is never the saved index */
    return SC_ERR_IO;
}

/* Save the partitions when the store's generation moved since the last save. The generation is
 * read under wmu, where no commit is in flight and the index reflects every commit; the index is
 * then written under ilock (read): lookups go on, a writer commits but waits to index. */
sc_status_t sc_cache_index_save(sc_cache_t *c, const char *trigger)
{
    if (!sc_cache_persist_on(c))
        return SC_OK;
    pthread_mutex_lock(&c->smu);
    pthread_mutex_lock(&c->wmu);
    MDB_txn *txn = NULL;
    if (mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)) {
        c->index_stale = 1;
    } else {
        if (sc_cache_meta_u64(txn, c->db_meta, SC_CACHE_META_GEN) != c->gen)
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

/* ---- loading at open ---- */

/* Read index.scx into parts when its stamp is this store (store_id), generation gen and this
 * cache's index parameters, and its checksums hold. Returns 1 when loaded; 0 when there is none,
 * it is stale (logged as info) or it is unreadable (logged as a warning): then parts is empty. */
int sc_cache_ix_read(sc_cache_t *c, uint64_t gen, sc_pmap_t *parts)
{
    char fin[SC_CACHE_PATH_MAX + 32];
    sc_cache_ix_path(c, SC_CACHE_IX_FILE, fin, sizeof(fin));
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
    if (h.magic != SC_CACHE_IX_MAGIC || h.header_hash != sc_cache_ix_header_hash(&h)) {
        bad = "bad header";
        goto out;
    }
    sc_cache_ix_stamp(c, gen, &want);
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
            ph.n_dead > SC_CACHE_IX_DEAD_MAX || sc_cache_pmap_get(parts, ph.scope)) {
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
            if (fread(&id, sizeof(id), 1, f) != 1 || id <= 0 || sc_cache_idset_add(&p->dead, id))
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
        if (!bad && sc_cache_part_tune(c, p->ix, p->kind, p->nlist))
            bad = "cannot set the search parameters";
        if (!bad && sc_cache_pmap_put(parts, p))
            bad = "out of memory";
        if (bad)
            sc_cache_part_free(p);
    }
    if (!bad && ftello(f) != sb.st_size)
        bad = "trailing bytes";
out:
    fclose(f);
    if (bad) {
        sc_warn("cache_index_load", "result=corrupt path=%s reason=\"%s\" action=rebuild", fin,
                bad);
        sc_cache_pmap_clear(parts);
        return 0;
    }
    return 1;
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Whether every loaded partition holds exactly the store's vectors of its scope. rows: the store's
 * vectors (expired ones included: the saved index had them), sorted by (scope, id). HNSW (IDMap)
 * partitions are compared id by id, IVF ones by count. A defence behind the stamp. */
int sc_cache_ix_matches(const sc_pmap_t *parts, const sc_row_t *rows, size_t n)
{
    size_t seen = 0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i; j < n && rows[j].scope == rows[i].scope; j++)
            ;
        sc_part_t *p = sc_cache_pmap_get(parts, rows[i].scope);
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
            if (sc_cache_idset_has(&p->dead, map[k]))
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
sc_status_t sc_cache_ix_adopt(sc_cache_t *c, sc_pmap_t *loaded, sc_row_t *rows, size_t *n,
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
        sc_status_t st = sc_cache_pmap_put(&c->parts, p);
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
        if (!sc_cache_pmap_get(&c->parts, rows[i].scope)) {
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
        sc_cache_part_remove(c, rows[i].scope, ids, ne);
        free(ids);
    }
    *n = w;
    return SC_OK;
}

/* ---- the checkpoint thread ---- */

void *sc_cache_ckpt_main(void *arg)
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
        sc_cache_index_save(c, "checkpoint");
        pthread_mutex_lock(&c->cmu);
    }
    pthread_mutex_unlock(&c->cmu);
    return NULL;
}
