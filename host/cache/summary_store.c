/* summary_store.c - LMDB store of conversation summaries for context pruning. */
#include "host/cache/summary_store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "host/cache/lmdb_env.h"
#include "host/core/log.h"
#include "host/core/util.h"

#define SC_SUMMARY_MAGIC   0x4d535353u /* "SSSM" */
#define SC_SUMMARY_VERSION 1u
#define SC_SUMMARY_HEADER  32 /* magic u32, version u32, n_turns u64, hash u64, len u64 */
#define SC_SUMMARY_PATH_MAX 4096

struct sc_summary_store {
    MDB_env *env;
    MDB_dbi dbi;
    char path[SC_SUMMARY_PATH_MAX]; /* for the log: a failed write names its store */
};

void sc_summary_clear(sc_summary_t *s)
{
    if (!s)
        return;
    free(s->text);
    memset(s, 0, sizeof(*s));
}

uint64_t sc_summary_hash_turns(const sc_turn_t *turns, size_t n)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    for (size_t i = 0; i < n; i++) {
        const char *role = turns[i].role ? turns[i].role : "";
        uint64_t rl = strlen(role), cl = turns[i].content ? turns[i].content_len : 0;
        XXH3_64bits_update(&st, &rl, sizeof(rl));
        XXH3_64bits_update(&st, role, (size_t)rl);
        XXH3_64bits_update(&st, &cl, sizeof(cl));
        if (cl)
            XXH3_64bits_update(&st, turns[i].content, (size_t)cl);
    }
    return XXH3_64bits_digest(&st);
}

/* ---- open / close ---- */

sc_status_t sc_summary_store_open(const char *path, size_t map_bytes, sc_summary_store_t **out,
                                  char *errbuf, size_t errlen)
{
    sc_status_t st = SC_ERR_IO;
    sc_summary_store_t *s = NULL;
    MDB_txn *txn = NULL;
    int rc;

    if (!path || !out) {
        snprintf(errbuf, errlen, "summary store: no path");
        return SC_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(errbuf, errlen, "summary store %s: mkdir: %s", path, strerror(errno));
        return SC_ERR_IO;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(errbuf, errlen, "summary store: out of memory");
        return SC_ERR_NOMEM;
    }
    sc_strlcpy(s->path, path, sizeof(s->path));
    if ((rc = mdb_env_create(&s->env)) != 0)
        goto lmdb_fail;
    if ((rc = mdb_env_set_mapsize(s->env, map_bytes ? map_bytes : SC_SUMMARY_DEFAULT_MAP)) != 0)
        goto lmdb_fail;
    /* NOTLS: read transactions are not tied to threads (the pipeline's workers share the env) */
    if ((rc = sc_lmdb_env_open(s->env, path, MDB_NOTLS, 0600)) != 0)
        goto lmdb_fail;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        goto lmdb_fail;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &s->dbi)) != 0)
        goto lmdb_fail;
    if ((rc = mdb_txn_commit(txn)) != 0) {
        txn = NULL;
        goto lmdb_fail;
    }
    *out = s;
    return SC_OK;

lmdb_fail:
    snprintf(errbuf, errlen, "summary store %s: %s", path, mdb_strerror(rc));
    if (txn)
        mdb_txn_abort(txn);
    if (s->env)
        mdb_env_close(s->env);
    free(s);
    return st;
}

void sc_summary_store_close(sc_summary_store_t *st)
{
    if (!st)
        return;
    mdb_env_close(st->env);
    free(st);
}

/* ---- records ---- */

/* tenant NUL conversation_id into buf; its length, or 0 when it does not fit. */
static size_t sc_summary_key(char *buf, size_t cap, const char *tenant, const char *conv)
{
    size_t tl = strlen(tenant ? tenant : ""), cl = strlen(conv ? conv : "");
    if (tl + 1 + cl > cap)
        return 0;
    memcpy(buf, tenant ? tenant : "", tl);
    buf[tl] = '\0';
    memcpy(buf + tl + 1, conv ? conv : "", cl);
    return tl + 1 + cl;
}

static void sc_summary_put_u64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}
static uint64_t sc_summary_get_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

sc_status_t sc_summary_store_put(sc_summary_store_t *st, const char *tenant,
                                 const char *conversation_id, const char *text, size_t text_len,
                                 size_t n_turns, uint64_t hash)
{
    char kbuf[SC_SUMMARY_KEY_MAX];
    MDB_txn *txn = NULL;
    MDB_val key, val;
    size_t klen;
    int rc;

    if (!st || (!text && text_len))
        return SC_ERR_INVALID_ARG;
    if (text_len > SC_SUMMARY_MAX_BYTES)
        return SC_ERR_TOO_LARGE;
    klen = sc_summary_key(kbuf, sizeof(kbuf), tenant, conversation_id);
    if (klen == 0)
        return SC_ERR_INVALID_ARG;
    key.mv_data = kbuf;
    key.mv_size = klen;
    if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0)
        goto out;
    val.mv_size = SC_SUMMARY_HEADER + text_len;
    val.mv_data = NULL;
    rc = mdb_put(txn, st->dbi, &key, &val, MDB_RESERVE); /* write in place, no extra copy */
    if (rc == 0) {
        unsigned char *p = val.mv_data;
        uint32_t magic = SC_SUMMARY_MAGIC, ver = SC_SUMMARY_VERSION;
        memcpy(p, &magic, 4);
        memcpy(p + 4, &ver, 4);
        sc_summary_put_u64(p + 8, (uint64_t)n_turns);
        sc_summary_put_u64(p + 16, hash);
        sc_summary_put_u64(p + 24, (uint64_t)text_len);
        if (text_len)
            memcpy(p + SC_SUMMARY_HEADER, text, text_len);
        rc = mdb_txn_commit(txn); /* synchronous: durable once this returns */
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
out:
    if (rc == 0)
        return SC_OK;
    /* the store is as it was (LMDB commits whole or not at all); the caller goes on without */
    sc_error("summary_store", "op=put path=%s error=\"%s\"", st->path, mdb_strerror(rc));
    return rc == MDB_MAP_FULL ? SC_ERR_FULL : SC_ERR_IO;
}

sc_status_t sc_summary_store_get(sc_summary_store_t *st, const char *tenant,
                                 const char *conversation_id, sc_summary_t *out)
{
    char kbuf[SC_SUMMARY_KEY_MAX];
    MDB_txn *txn = NULL;
    MDB_val key, val;
    sc_status_t res = SC_ERR_NOT_FOUND;
    size_t klen;
    int rc;

    if (!st || !out)
        return SC_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    klen = sc_summary_key(kbuf, sizeof(kbuf), tenant, conversation_id);
    if (klen == 0)
        return SC_ERR_INVALID_ARG;
    key.mv_data = kbuf;
    key.mv_size = klen;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0)
        return SC_ERR_IO;
    rc = mdb_get(txn, st->dbi, &key, &val);
    if (rc == MDB_NOTFOUND)
        goto out;
    if (rc != 0) {
        res = SC_ERR_IO;
        goto out;
    }
    {
        const unsigned char *p = val.mv_data;
        uint32_t magic, ver;
        uint64_t tl;
        if (val.mv_size < SC_SUMMARY_HEADER)
            goto out; /* not ours: treated as absent */
        memcpy(&magic, p, 4);
        memcpy(&ver, p + 4, 4);
        tl = sc_summary_get_u64(p + 24);
        if (magic != SC_SUMMARY_MAGIC || ver != SC_SUMMARY_VERSION || tl > SC_SUMMARY_MAX_BYTES ||
            tl != val.mv_size - SC_SUMMARY_HEADER)
            goto out;
        out->text = malloc((size_t)tl + 1);
        if (!out->text) {
            res = SC_ERR_NOMEM;
            goto out;
        }
        memcpy(out->text, p + SC_SUMMARY_HEADER, (size_t)tl);
        out->text[tl] = '\0';
        out->text_len = (size_t)tl;
        out->n_turns = (size_t)sc_summary_get_u64(p + 8);
        out->hash = sc_summary_get_u64(p + 16);
        res = SC_OK;
    }
out:
    mdb_txn_abort(txn);
    return res;
}

sc_status_t sc_summary_store_lookup(sc_summary_store_t *st, const char *tenant,
                                    const char *conversation_id, const sc_turn_t *turns,
                                    size_t n_turns, sc_summary_t *out)
{
    sc_status_t res = sc_summary_store_get(st, tenant, conversation_id, out);
    if (res != SC_OK)
        return res;
    if (out->n_turns > n_turns || sc_summary_hash_turns(turns, out->n_turns) != out->hash) {
        sc_summary_clear(out);
        return SC_ERR_NOT_FOUND;
    }
    return SC_OK;
}

sc_status_t sc_summary_store_del(sc_summary_store_t *st, const char *tenant,
                                 const char *conversation_id)
{
    char kbuf[SC_SUMMARY_KEY_MAX];
    MDB_txn *txn = NULL;
    MDB_val key;
    size_t klen;
    int rc;

    if (!st)
        return SC_ERR_INVALID_ARG;
    klen = sc_summary_key(kbuf, sizeof(kbuf), tenant, conversation_id);
    if (klen == 0)
        return SC_ERR_INVALID_ARG;
    key.mv_data = kbuf;
    key.mv_size = klen;
    if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0)
        goto out;
    rc = mdb_del(txn, st->dbi, &key, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        goto out;
    }
    rc = mdb_txn_commit(txn);
out:
    if (rc == 0)
        return SC_OK;
    sc_error("summary_store", "op=del path=%s error=\"%s\"", st->path, mdb_strerror(rc));
    return SC_ERR_IO;
}
