/* changelog.c - the cache's changelog on a compacted Kafka topic: records, the restore at start,
 * the thread that applies the other replicas' entries, and publishing this process's own. */
#include "pipelines/changelog.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "host/core/log.h"
#include "host/core/message.h"
#include "host/core/util.h"
#include "host/kafka/client.h"
#include "host/metrics/metrics.h"

#define CL_ORIGIN_MAX 96
#define CL_APPLY_BATCH 256      /* entries per store transaction while restoring */
#define CL_POLL_MS 100
#define CL_TEXT_MAX (64u << 10) /* normalised text hashed for the key */

struct sc_changelog {
    const sc_config_t *cfg;
    sc_cache_t *cache;        /* borrowed */
    sc_summary_store_t *summaries; /* borrowed; NULL: summaries read are skipped */
    sc_prompt_cache_t *pcache; /* borrowed; NULL: prompt caches read are skipped */
    /* other replicas' Batch Mode submissions in flight: request key → {display, model, name?} */
    pthread_mutex_t bat_mu;
    json_t *batches;
    sc_metrics_t *metrics;    /* borrowed; NULL: none */
    atomic_llong bytes_read;
    rd_kafka_t *producer;     /* borrowed */
    /* owned, made at the first batch record: batch records go through a producer of their own,
     * so that sc_changelog_batch_sync() can wait for them alone (in the caller's thread) */
    rd_kafka_t *bat_producer;
    atomic_llong n_bat_failed; /* batch records the broker did not acknowledge */
    rd_kafka_t *consumer;     /* owned: assigned every partition, no group */
    const char *topic;        /* borrowed from cfg */
    char origin[CL_ORIGIN_MAX];
    int dim;
    int64_t ttl_ms;           /* 0: none */
    pthread_t thread;
    int started;
    atomic_int stop;
    atomic_llong n_published, n_dropped, n_applied, n_skipped, n_bad, n_purges;
    atomic_llong n_sum_published, n_sum_applied;
    atomic_llong n_pc_published, n_pc_applied, n_bat_published, n_bat_applied;
    /* purges seen (applier thread only): entries of a tenant created before are not taken */
    struct {
        char *tenant; /* NULL: every tenant */
        int64_t before_ms;
    } *purges;
    size_t npurges;
};

/* ---- records ---- */

/* This process's name on the changelog: host, pid and a random part (a restart is another
 * origin, so it re-reads what its earlier life wrote). */
static void cl_origin(char *buf, size_t len)
{
    char host[48] = "host";
    gethostname(host, sizeof host - 1);
    uint64_t r = XXH3_64bits(&buf, sizeof buf) ^ (uint64_t)sc_now_us();
    snprintf(buf, len, "%s-%d-%08" PRIx32, host, (int)getpid(), (uint32_t)(r ^ (r >> 32)));
}

/* A record's value: v (stolen; NULL: out of memory) as compact JSON, its length in *len. */
static char *cl_dump(json_t *v, size_t *len)
{
    char *out = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (out)
        *len = strlen(out);
    return out;
}

static void cl_key(const sc_cache_item_t *it, char *key)
{
    char *norm = malloc(CL_TEXT_MAX);
    uint64_t h = 0;
    if (norm) {
        size_t n = sc_cache_normalize(it->q.text, it->q.len, norm, CL_TEXT_MAX);
        h = XXH3_64bits(norm, n);
        free(norm);
    } else {
        h = XXH3_64bits(it->q.text, it->q.len);
    }
    snprintf(key, SC_CHANGELOG_KEY_MAX, "%016" PRIx64 ":%016" PRIx64, it->q.scope, h);
}

char *sc_changelog_encode(const sc_cache_item_t *it, const char *origin, int dim, char *key,
                          size_t *len)
{
    char scope[17];
    snprintf(scope, sizeof scope, "%016" PRIx64, it->q.scope);
    cl_key(it, key);
    json_t *v = json_pack("{s:i, s:s, s:s, s:s, s:s%, s:s%, s:s, s:[IIII], s:f, s:I}", "v", 1,
                          "origin", origin, "tenant", it->q.tenant ? it->q.tenant : "",
                          "scope", scope, "text", it->q.text, it->q.len, "response",
                          it->response, it->response_len, "model", it->model ? it->model : "",
                          "usage", (json_int_t)it->usage.prompt_tokens,
                          (json_int_t)it->usage.cached_tokens,
                          (json_int_t)it->usage.output_tokens,
                          (json_int_t)it->usage.thought_tokens, "cost_usd", it->cost_usd,
                          "created_ms", (json_int_t)it->created_ms);
    if (v && it->q.vec) {
        char *b64 = sc_base64_encode((const unsigned char *)it->q.vec, (size_t)dim * sizeof(float));
        if (!b64 || json_object_set_new(v, "vec", json_string(b64))) {
            json_decref(v);
            v = NULL;
        }
        free(b64);
    }
    return cl_dump(v, len);
}

char *sc_changelog_encode_summary(const char *tenant, const char *conversation, const char *text,
                                  size_t text_len, size_t n_turns, uint64_t hash,
                                  const char *origin, char *key, size_t *len)
{
    /* the tenant's hash (its NUL included, so the two cannot run together) seeds the other's */
    uint64_t k = XXH3_64bits_withSeed(conversation, strlen(conversation),
                                      XXH3_64bits(tenant, strlen(tenant) + 1));
    snprintf(key, SC_CHANGELOG_KEY_MAX, "sum:%016" PRIx64, k);
    char h[17];
    snprintf(h, sizeof h, "%016" PRIx64, hash);
    json_t *v = json_pack("{s:i, s:s, s:{s:s, s:s, s:s%, s:I, s:s}}", "v", 1, "origin", origin,
                          "summary", "tenant", tenant, "conversation", conversation, "text", text,
                          text_len, "n_turns", (json_int_t)n_turns, "hash", h);
    return cl_dump(v, len);
}

char *sc_changelog_encode_prompt_cache(const sc_prompt_cache_share_t *s, const char *origin,
                                       char *key, size_t *len)
{
    /* the model's hash (its NUL and the fields flag included) keys the prefix's */
    char mf[SC_PROMPT_CACHE_MODEL_MAX + 2];
    size_t ml = strlen(s->model);
    if (ml >= SC_PROMPT_CACHE_MODEL_MAX)
        return NULL;
    memcpy(mf, s->model, ml + 1);
    mf[ml + 1] = s->fields ? '1' : '0';
    snprintf(key, SC_CHANGELOG_KEY_MAX, "pc:%016" PRIx64 ":%016" PRIx64, XXH3_64bits(mf, ml + 2),
             s->hash);
    char h[17];
    snprintf(h, sizeof h, "%016" PRIx64, s->hash);
    json_t *pc = json_pack("{s:s, s:i, s:s, s:s, s:i}", "model", s->model, "fields", s->fields ? 1 : 0,
                           "hash", h, "name", s->name, "gone", s->gone ? 1 : 0); /* new */
    if (pc && !s->gone &&
        (!s->prefix ||
         json_object_set_new(pc, "prefix", json_stringn(s->prefix, s->prefix_len)) ||
         json_object_set_new(pc, "tokens", json_integer(s->tokens)) ||
         json_object_set_new(pc, "expire_ms", json_integer(s->expire_wall_ms)))) {
        json_decref(pc);
        pc = NULL;
    }
    json_t *v = pc ? json_pack("{s:i, s:s, s:o}", "v", 1, "origin", origin, "pcache", pc) : NULL;
    return cl_dump(v, len);
}

char *sc_changelog_encode_batch(const char *req_key, const char *display, const char *model,
                                const char *name, const char *origin, char *key, size_t *len)
{
    if ((size_t)snprintf(key, SC_CHANGELOG_KEY_MAX, "bat:%s", req_key) >= SC_CHANGELOG_KEY_MAX)
        return NULL;
    json_t *b = json_pack("{s:s, s:s, s:s}", "key", req_key, "display", display, "model", model);
    if (b && name && json_object_set_new(b, "name", json_string(name))) {
        json_decref(b);
        b = NULL;
    }
    json_t *v = b ? json_pack("{s:i, s:s, s:o}", "v", 1, "origin", origin, "batch", b) : NULL;
    return cl_dump(v, len);
}

void sc_changelog_rec_clear(sc_changelog_rec_t *rec)
{
    free(rec->vec);
    json_decref(rec->json);
    memset(rec, 0, sizeof *rec);
}

/* Records carry "v": 1; any other is refused, named in errbuf. */
static int cl_version_ok(json_int_t ver, char *errbuf, size_t errlen)
{
    if (ver == 1)
        return 1;
    snprintf(errbuf, errlen, "record version %lld (this scrimp reads 1)", (long long)ver);
    return 0;
}

sc_status_t sc_changelog_decode(const void *buf, size_t len, int dim, sc_changelog_rec_t *rec,
                                char *errbuf, size_t errlen)
{
    memset(rec, 0, sizeof *rec);
    json_error_t jerr;
    json_t *v = json_loadb(buf, len, 0, &jerr);
    if (!v) {
        snprintf(errbuf, errlen, "not JSON: %s", jerr.text);
        return SC_ERR_INVALID_ARG;
    }
    rec->json = v;
    json_t *pg = json_object_get(v, "purge");
    if (pg) { /* a purge record */
        json_int_t ver = 0, before = 0;
        if (json_unpack_ex(v, &jerr, 0, "{s:I, s:s, s:I}", "v", &ver, "origin", &rec->origin,
                           "before_ms", &before) != 0 || (!json_is_null(pg) && !json_is_string(pg))) {
            snprintf(errbuf, errlen, "purge record: %s", pg && !json_is_null(pg) &&
                     !json_is_string(pg) ? "purge must be a tenant or null" : jerr.text);
            goto bad;
        }
        if (!cl_version_ok(ver, errbuf, errlen))
            goto bad;
        rec->purge = 1;
        rec->purge_tenant = json_string_value(pg);
        rec->before_ms = before;
        return SC_OK;
    }
    json_t *sm = json_object_get(v, "summary");
    if (sm) { /* a conversation summary */
        json_int_t ver = 0, turns = 0;
        const char *hash = NULL;
        if (json_unpack_ex(v, &jerr, 0, "{s:I, s:s, s:{s:s, s:s, s:s%, s:I, s:s}}", "v", &ver,
                           "origin", &rec->origin, "summary", "tenant", &rec->sum_tenant,
                           "conversation", &rec->sum_conversation, "text", &rec->sum.text,
                           &rec->sum.text_len, "n_turns", &turns, "hash", &hash) != 0) {
            snprintf(errbuf, errlen, "summary record: %s", jerr.text);
            goto bad;
        }
        if (!cl_version_ok(ver, errbuf, errlen))
            goto bad;
        char *end = NULL;
        rec->sum.hash = strtoull(hash, &end, 16);
        if (strlen(hash) != 16 || !end || *end || turns < 1) {
            snprintf(errbuf, errlen, "summary record: %s", turns < 1 ? "n_turns must be >= 1"
                                                                     : "hash is not 16 hex digits");
            goto bad;
        }
        rec->sum.n_turns = (size_t)turns;
        rec->summary = 1;
        return SC_OK;
    }
    json_t *pcj = json_object_get(v, "pcache");
    if (pcj) { /* a prompt cache */
        json_int_t ver = 0, fields = 0, gone = 0, tokens = 0, expire = 0;
        const char *hash = NULL;
        sc_prompt_cache_share_t *pc = &rec->pc;
        if (json_unpack_ex(v, &jerr, 0, "{s:I, s:s, s:{s:s, s:I, s:s, s:s, s:I, s?:s%, s?:I, s?:I}}",
                           "v", &ver, "origin", &rec->origin, "pcache", "model", &pc->model,
                           "fields", &fields, "hash", &hash, "name", &pc->name, "gone", &gone,
                           "prefix", &pc->prefix, &pc->prefix_len, "tokens", &tokens,
                           "expire_ms", &expire) != 0) {
            snprintf(errbuf, errlen, "prompt cache record: %s", jerr.text);
            goto bad;
        }
        if (!cl_version_ok(ver, errbuf, errlen))
            goto bad;
        char *end = NULL;
        pc->hash = strtoull(hash, &end, 16);
        if (strlen(hash) != 16 || !end || *end || (!gone && !pc->prefix)) {
            snprintf(errbuf, errlen, "prompt cache record: %s", !gone && !pc->prefix
                     ? "a live cache without its prefix" : "hash is not 16 hex digits");
            goto bad;
        }
        pc->fields = fields != 0;
        pc->gone = gone != 0;
        pc->tokens = (long)tokens;
        pc->expire_wall_ms = expire;
        rec->pcache = 1;
        return SC_OK;
    }
    json_t *bj = json_object_get(v, "batch");
    if (bj) { /* a Batch Mode submission */
        json_int_t ver = 0;
        if (json_unpack_ex(v, &jerr, 0, "{s:I, s:s, s:{s:s, s:s, s:s, s?:s}}", "v", &ver,
                           "origin", &rec->origin, "batch", "key", &rec->bat_key, "display",
                           &rec->bat_display, "model", &rec->bat_model, "name",
                           &rec->bat_name) != 0) {
            snprintf(errbuf, errlen, "batch record: %s", jerr.text);
            goto bad;
        }
        if (!cl_version_ok(ver, errbuf, errlen))
            goto bad;
        if (!rec->bat_key[0] || strlen(rec->bat_key) + 5 > SC_CHANGELOG_KEY_MAX ||
            !rec->bat_display[0] || !rec->bat_model[0] || (rec->bat_name && !rec->bat_name[0])) {
            snprintf(errbuf, errlen, "batch record: key, display, model and name must not be "
                     "empty (key at most %d bytes)", SC_CHANGELOG_KEY_MAX - 5);
            goto bad;
        }
        rec->batch = 1;
        return SC_OK;
    }
    const char *scope = NULL, *vec = NULL;
    json_int_t ver = 0, u[4] = {0}, created = 0;
    double cost = 0;
    sc_cache_item_t *it = &rec->item;
    size_t tl = 0, rl = 0, vl = 0;
    if (json_unpack_ex(v, &jerr, 0, "{s:I, s:s, s:s, s:s, s:s%, s:s%, s:s, s:[IIII], s:F, s:I, s?:s%}",
                       "v", &ver, "origin", &rec->origin, "tenant", &it->q.tenant, "scope", &scope,
                       "text", &it->q.text, &tl, "response", &it->response, &rl, "model",
                       &it->model, "usage", &u[0], &u[1], &u[2], &u[3], "cost_usd", &cost,
                       "created_ms", &created, "vec", &vec, &vl) != 0) {
        snprintf(errbuf, errlen, "%s", jerr.text);
        goto bad;
    }
    if (!cl_version_ok(ver, errbuf, errlen))
        goto bad;
    char *end = NULL;
    it->q.scope = strtoull(scope, &end, 16);
    if (strlen(scope) != 16 || !end || *end) {
        snprintf(errbuf, errlen, "scope \"%.20s\" is not 16 hex digits", scope);
        goto bad;
    }
    it->q.len = tl;
    it->response_len = rl;
    it->usage = (sc_usage_t){(long)u[0], (long)u[1], (long)u[2], (long)u[3]};
    it->cost_usd = cost;
    it->created_ms = created;
    if (vec) {
        size_t want = (size_t)dim * sizeof(float), got = 0;
        rec->vec = malloc(want);
        if (!rec->vec) {
            snprintf(errbuf, errlen, "out of memory");
            goto bad;
        }
        if (sc_base64_decode(vec, vl, (unsigned char *)rec->vec, want, &got) != SC_OK ||
            got != want) {
            snprintf(errbuf, errlen, "vec is not %d float32s in base64", dim);
            goto bad;
        }
        it->q.vec = rec->vec;
    }
    return SC_OK;
bad:
    sc_changelog_rec_clear(rec);
    return SC_ERR_INVALID_ARG;
}

/* ---- publishing ---- */

/* Produce one record on rk (val is taken, freed by librdkafka or here; NULL: a tombstone when
 * tombstone is set, else a record that could not be encoded); what names it in the warning of a
 * drop. Returns 1 when it was queued. */
static int cl_produce(sc_changelog_t *cl, rd_kafka_t *rk, const char *key, char *val, size_t len,
                      int tombstone, const char *what)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__FAIL;
    int flags = val ? RD_KAFKA_MSG_F_FREE : 0; /* (the macro casts its argument unparenthesised) */
    if (val || tombstone)
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(cl->topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                RD_KAFKA_V_VALUE(val, val ? len : 0), RD_KAFKA_V_MSGFLAGS(flags),
                                RD_KAFKA_V_OPAQUE(NULL), RD_KAFKA_V_END);
    if (!err)
        return 1;
    free(val);
    if (atomic_fetch_add(&cl->n_dropped, 1) == 0) /* said once; the count is in the close */
        sc_warn("changelog.publish", "topic=%s err=\"%s\" note=\"the %s stays in this replica's "
                "store only\"", cl->topic, rd_kafka_err2str(err), what);
    return 0;
}

static int cl_send(sc_changelog_t *cl, const char *key, char *val, size_t len, const char *what)
{
    return cl_produce(cl, cl->producer, key, val, len, 0, what);
}

void sc_changelog_publish(void *arg, const sc_cache_item_t *stored)
{
    sc_changelog_t *cl = arg;
    char key[SC_CHANGELOG_KEY_MAX];
    size_t len = 0;
    char *val = sc_changelog_encode(stored, cl->origin, cl->dim, key, &len);
    if (cl_send(cl, key, val, len, "entry"))
        atomic_fetch_add(&cl->n_published, 1);
}

void sc_changelog_publish_summary(void *arg, const char *tenant, const char *conversation,
                                  const char *text, size_t text_len, size_t n_turns,
                                  uint64_t hash)
{
    sc_changelog_t *cl = arg;
    char key[SC_CHANGELOG_KEY_MAX];
    size_t len = 0;
    char *val = sc_changelog_encode_summary(tenant, conversation, text, text_len, n_turns, hash,
                                            cl->origin, key, &len);
    if (cl_send(cl, key, val, len, "summary"))
        atomic_fetch_add(&cl->n_sum_published, 1);
}

void sc_changelog_publish_prompt_cache(void *arg, const sc_prompt_cache_share_t *s)
{
    sc_changelog_t *cl = arg;
    char key[SC_CHANGELOG_KEY_MAX];
    size_t len = 0;
    char *val = sc_changelog_encode_prompt_cache(s, cl->origin, key, &len);
    if (cl_send(cl, key, val, len, "prompt cache"))
        atomic_fetch_add(&cl->n_pc_published, 1);
}

static void cl_bat_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    sc_changelog_t *cl = opaque;
    if (m->err && atomic_fetch_add(&cl->n_bat_failed, 1) == 0)
        sc_warn("changelog.publish", "topic=%s err=\"%s\" note=\"a batch record was not "
                "acknowledged\"", cl->topic, rd_kafka_err2str(m->err));
}

/* The batch records' producer, made on first use (batcher thread only); the shared one when it
 * cannot be made (said once): records still go, but sc_changelog_batch_sync() cannot wait. */
static rd_kafka_t *cl_bat_producer(sc_changelog_t *cl)
{
    static const char *const why = "batch records go unconfirmed through the results producer";
    if (cl->bat_producer)
        return cl->bat_producer;
    char err[SC_KAFKA_ERRSTR];
    rd_kafka_conf_t *conf = sc_kafka_conf_new(cl->cfg, 0, err, sizeof err);
    if (conf) {
        rd_kafka_conf_set_dr_msg_cb(conf, cl_bat_dr);
        rd_kafka_conf_set_opaque(conf, cl);
        cl->bat_producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        if (cl->bat_producer)
            return cl->bat_producer;
    }
    if (atomic_fetch_add(&cl->n_dropped, 1) == 0)
        sc_warn("changelog.publish", "topic=%s err=\"%s\" note=\"%s\"", cl->topic, err, why);
    return NULL;
}

void sc_changelog_publish_batch(sc_changelog_t *cl, const char *req_key, const char *display,
                                const char *model, const char *name)
{
    char key[SC_CHANGELOG_KEY_MAX];
    size_t len = 0;
    char *val = NULL;
    if (!display) { /* handed on: a tombstone, so compaction drops the key */
        if ((size_t)snprintf(key, sizeof key, "bat:%s", req_key) >= sizeof key)
            return;
    } else {
        val = sc_changelog_encode_batch(req_key, display, model, name, cl->origin, key, &len);
    }
    rd_kafka_t *p = cl_bat_producer(cl);
    if (cl_produce(cl, p ? p : cl->producer, key, val, len, !display,
                   display ? "batch submission" : "batch tombstone") && display)
        atomic_fetch_add(&cl->n_bat_published, 1);
    if (p)
        rd_kafka_poll(p, 0); /* its delivery reports: nothing else polls it */
}

int sc_changelog_batch_sync(sc_changelog_t *cl, int timeout_ms)
{
    if (!cl->bat_producer)
        return 0;
    long long failed = atomic_load(&cl->n_bat_failed);
    rd_kafka_resp_err_t err = rd_kafka_flush(cl->bat_producer, timeout_ms);
    return !err && atomic_load(&cl->n_bat_failed) == failed;
}

int sc_changelog_batch_lookup(sc_changelog_t *cl, const char *req_key, char *display,
                              size_t display_len, char *model, size_t model_len, char *name,
                              size_t name_len)
{
    pthread_mutex_lock(&cl->bat_mu);
    json_t *b = json_object_get(cl->batches, req_key); /* borrowed */
    if (b) {
        const char *n = json_string_value(json_object_get(b, "name"));
        sc_strlcpy(display, json_string_value(json_object_get(b, "display")), display_len);
        sc_strlcpy(model, json_string_value(json_object_get(b, "model")), model_len);
        sc_strlcpy(name, n ? n : "", name_len);
    }
    pthread_mutex_unlock(&cl->bat_mu);
    return b != NULL;
}

static void cl_purge_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    *(rd_kafka_resp_err_t *)opaque = m->err;
}

sc_status_t sc_changelog_send_purge(const sc_config_t *cfg, const char *tenant, char *errbuf,
                                    size_t errlen)
{
    char kerr[SC_KAFKA_ERRSTR], key[SC_CHANGELOG_KEY_MAX + 256], origin[CL_ORIGIN_MAX];
    cl_origin(origin, sizeof origin);
    snprintf(key, sizeof key, "purge:%s", tenant ? tenant : "*");
    json_t *v = json_pack("{s:i, s:s, s:o, s:I}", "v", 1, "origin", origin, "purge",
                          tenant ? json_string(tenant) : json_null(), "before_ms",
                          (json_int_t)sc_wall_ms() + 1);
    char *val = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    rd_kafka_conf_t *conf = val ? sc_kafka_conf_new(cfg, 0, errbuf, errlen) : NULL;
    if (!conf) {
        free(val);
        return val ? SC_ERR_CONFIG : SC_ERR_NOMEM;
    }
    rd_kafka_resp_err_t derr = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    rd_kafka_conf_set_dr_msg_cb(conf, cl_purge_dr);
    rd_kafka_conf_set_opaque(conf, &derr);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr);
    if (!p) {
        free(val);
        snprintf(errbuf, errlen, "cannot create the Kafka producer: %s", kerr);
        return SC_ERR_KAFKA;
    }
    const char *topic = sc_config_str(cfg, "topics.cache");
    rd_kafka_resp_err_t err =
        rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                          RD_KAFKA_V_VALUE(val, strlen(val)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                          RD_KAFKA_V_END);
    if (err)
        free(val);
    else
        rd_kafka_flush(p, (int)sc_config_int(cfg, "pipeline.startup_timeout_ms"));
    rd_kafka_poll(p, 0);
    if (!err)
        err = derr;
    rd_kafka_destroy(p);
    if (err) {
        snprintf(errbuf, errlen, "the purge was not sent to %s at %s: %s (the other replicas "
                 "keep the entries)", topic, sc_config_str(cfg, "kafka.bootstrap.servers"),
                 err == RD_KAFKA_RESP_ERR__IN_PROGRESS ? "no acknowledgement in time"
                                                        : rd_kafka_err2str(err));
        return SC_ERR_KAFKA;
    }
    return SC_OK;
}

/* ---- applying ---- */

/* Whether rec goes into the store: another replica's, unexpired, newer than what is held. */
static int cl_wanted(sc_changelog_t *cl, const sc_changelog_rec_t *rec, int64_t now)
{
    if (strcmp(rec->origin, cl->origin) == 0)
        return 0;
    for (size_t i = 0; i < cl->npurges; i++)
        if ((!cl->purges[i].tenant || strcmp(cl->purges[i].tenant, rec->item.q.tenant) == 0) &&
            rec->item.created_ms < cl->purges[i].before_ms)
            return 0; /* purged (the purge was read first) */
    if (cl->ttl_ms > 0 && rec->item.created_ms > 0 && rec->item.created_ms + cl->ttl_ms <= now)
        return 0;
    int64_t held = 0;
    sc_status_t st = sc_cache_find_exact(cl->cache, rec->item.q.scope, rec->item.q.text,
                                         rec->item.q.len, &held);
    return st == SC_ERR_NOT_FOUND || (st == SC_OK && held < rec->item.created_ms);
}

typedef struct {
    sc_changelog_rec_t recs[CL_APPLY_BATCH];
    sc_cache_item_t items[CL_APPLY_BATCH];
    size_t n;
    long long bytes;
} cl_batch_t;

static void cl_flush(sc_changelog_t *cl, cl_batch_t *b)
{
    if (b->n) {
        for (size_t i = 0; i < b->n; i++)
            b->items[i] = b->recs[i].item;
        sc_status_t st = sc_cache_insert_many(cl->cache, b->items, b->n, NULL);
        if (st)
            sc_warn("changelog.apply", "entries=%zu err=\"%s\" note=\"not stored here\"", b->n,
                    sc_strerror(st));
        else
            atomic_fetch_add(&cl->n_applied, (long long)b->n);
    }
    for (size_t i = 0; i < b->n; i++)
        sc_changelog_rec_clear(&b->recs[i]);
    b->n = 0;
}

/* A purge made elsewhere: remove what it covers here, and remember it for entries read later. */
static void cl_purge(sc_changelog_t *cl, const sc_changelog_rec_t *rec)
{
    const char *t = rec->purge_tenant;
    size_t i = 0;
    while (i < cl->npurges && !((!t && !cl->purges[i].tenant) ||
                                (t && cl->purges[i].tenant && !strcmp(t, cl->purges[i].tenant))))
        i++;
    if (i == cl->npurges) {
        void *np = realloc(cl->purges, (cl->npurges + 1) * sizeof *cl->purges);
        char *dup = t ? strdup(t) : NULL;
        if (np)
            cl->purges = np;
        if (np && (!t || dup)) {
            cl->purges[cl->npurges].tenant = dup;
            cl->purges[cl->npurges].before_ms = 0;
            cl->npurges++;
        } else {
            free(dup);
            i = SIZE_MAX; /* out of memory: applied, not remembered */
        }
    }
    if (i != SIZE_MAX && rec->before_ms > cl->purges[i].before_ms)
        cl->purges[i].before_ms = rec->before_ms;
    if (strcmp(rec->origin, cl->origin) == 0)
        return;
    uint64_t removed = 0;
    sc_status_t st = sc_cache_purge_before(cl->cache, t, rec->before_ms, &removed);
    if (st)
        sc_warn("changelog.purge", "tenant=\"%s\" err=\"%s\"", t ? t : "*", sc_strerror(st));
    else
        sc_info("changelog.purge", "tenant=\"%s\" before_ms=%lld removed=%llu origin=%s",
                t ? t : "*", (long long)rec->before_ms, (unsigned long long)removed, rec->origin);
    atomic_fetch_add(&cl->n_purges, 1);
}

/* A summary another replica made: kept unless one of as many turns or more is held. */
static void cl_summary(sc_changelog_t *cl, const sc_changelog_rec_t *rec)
{
    sc_summary_t held = {0};
    if (!cl->summaries || strcmp(rec->origin, cl->origin) == 0 ||
        (sc_summary_store_get(cl->summaries, rec->sum_tenant, rec->sum_conversation, &held) ==
             SC_OK &&
         held.n_turns >= rec->sum.n_turns)) {
        sc_summary_clear(&held);
        atomic_fetch_add(&cl->n_skipped, 1);
        return;
    }
    sc_summary_clear(&held);
    sc_status_t st = sc_summary_store_put(cl->summaries, rec->sum_tenant, rec->sum_conversation,
                                          rec->sum.text, rec->sum.text_len, rec->sum.n_turns,
                                          rec->sum.hash);
    if (st)
        sc_warn("changelog.summary", "conversation=\"%s\" err=\"%s\" note=\"not stored here\"",
                rec->sum_conversation, sc_strerror(st));
    else
        atomic_fetch_add(&cl->n_sum_applied, 1);
}

/* A prompt cache another replica made, extended or dropped: into the manager. */
static void cl_prompt_cache(sc_changelog_t *cl, const sc_changelog_rec_t *rec)
{
    if (!cl->pcache || strcmp(rec->origin, cl->origin) == 0) {
        atomic_fetch_add(&cl->n_skipped, 1);
        return;
    }
    sc_status_t st = sc_prompt_cache_adopt(cl->pcache, &rec->pc);
    if (st == SC_OK)
        atomic_fetch_add(&cl->n_pc_applied, 1);
    else
        atomic_fetch_add(&cl->n_skipped, 1); /* full, expired, unknown or refused: made here */
}

/* Another replica's batch submission: remembered until its tombstone. */
static void cl_batch(sc_changelog_t *cl, const sc_changelog_rec_t *rec)
{
    if (strcmp(rec->origin, cl->origin) == 0) {
        atomic_fetch_add(&cl->n_skipped, 1);
        return;
    }
    json_t *b = json_pack("{s:s, s:s}", "display", rec->bat_display, "model", rec->bat_model);
    if (b && rec->bat_name && json_object_set_new(b, "name", json_string(rec->bat_name))) {
        json_decref(b);
        b = NULL;
    }
    pthread_mutex_lock(&cl->bat_mu);
    int err = !b || json_object_set_new(cl->batches, rec->bat_key, b);
    pthread_mutex_unlock(&cl->bat_mu);
    if (err)
        sc_warn("changelog.batch", "key=%s err=\"out of memory\" note=\"a re-delivered request "
                "of it is submitted again\"", rec->bat_key);
    else
        atomic_fetch_add(&cl->n_bat_applied, 1);
}

/* One message of the topic into b (flushed when full). */
static void cl_take(sc_changelog_t *cl, cl_batch_t *b, const rd_kafka_message_t *m)
{
    b->bytes += (long long)m->len + (long long)m->key_len;
    atomic_fetch_add(&cl->bytes_read, (long long)m->len + (long long)m->key_len);
    if (!m->payload) { /* a tombstone: compaction's delete marker */
        if (m->key_len > 4 && m->key_len < SC_CHANGELOG_KEY_MAX && !memcmp(m->key, "bat:", 4)) {
            char k[SC_CHANGELOG_KEY_MAX];
            memcpy(k, (const char *)m->key + 4, m->key_len - 4);
            k[m->key_len - 4] = '\0';
            pthread_mutex_lock(&cl->bat_mu);
            json_object_del(cl->batches, k); /* its result was handed on */
            pthread_mutex_unlock(&cl->bat_mu);
        }
        atomic_fetch_add(&cl->n_skipped, 1);
        return;
    }
    char err[160];
    sc_changelog_rec_t *rec = &b->recs[b->n];
    if (sc_changelog_decode(m->payload, m->len, cl->dim, rec, err, sizeof err) != SC_OK) {
        if (atomic_fetch_add(&cl->n_bad, 1) == 0)
            sc_warn("changelog.bad_record", "partition=%d offset=%lld err=\"%s\"", m->partition,
                    (long long)m->offset, err);
        return;
    }
    if (rec->purge) {
        cl_flush(cl, b); /* what came before the purge first */
        cl_purge(cl, rec);
        sc_changelog_rec_clear(rec);
        return;
    }
    if (rec->summary || rec->pcache || rec->batch) {
        if (rec->summary)
            cl_summary(cl, rec);
        else if (rec->pcache)
            cl_prompt_cache(cl, rec);
        else
            cl_batch(cl, rec);
        sc_changelog_rec_clear(rec);
        return;
    }
    if (!cl_wanted(cl, rec, sc_wall_ms())) {
        sc_changelog_rec_clear(rec);
        atomic_fetch_add(&cl->n_skipped, 1);
        return;
    }
    if (++b->n == CL_APPLY_BATCH)
        cl_flush(cl, b);
}

static void cl_gauges(sc_changelog_t *cl)
{
    if (!cl->metrics)
        return;
    sc_cache_stats_t cs;
    sc_cache_stats(cl->cache, &cs);
    sc_metrics_gauge_set(cl->metrics, "cache_entries", (double)cs.entries);
    sc_metrics_gauge_set(cl->metrics, "changelog_read_bytes", (double)atomic_load(&cl->bytes_read));
    sc_metrics_gauge_set(cl->metrics, "changelog_published",
                         (double)atomic_load(&cl->n_published));
    sc_metrics_gauge_set(cl->metrics, "changelog_applied", (double)atomic_load(&cl->n_applied));
    /* the lag: what the broker holds past this consumer's position (watermarks as last fetched,
     * so no request to the broker here) */
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (!rd_kafka_assignment(cl->consumer, &parts) && parts &&
        !rd_kafka_position(cl->consumer, parts)) {
        long long lag = 0;
        for (int i = 0; i < parts->cnt; i++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_get_watermark_offsets(cl->consumer, cl->topic, parts->elems[i].partition,
                                               &lo, &hi) || hi < 0)
                continue;
            int64_t at = parts->elems[i].offset >= 0 ? parts->elems[i].offset : lo;
            lag += hi > at ? hi - at : 0;
        }
        sc_metrics_gauge_set(cl->metrics, "changelog_lag_records", (double)lag);
    }
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    pthread_mutex_lock(&cl->bat_mu);
    size_t nb = json_object_size(cl->batches);
    pthread_mutex_unlock(&cl->bat_mu);
    sc_metrics_gauge_set(cl->metrics, "changelog_batches_in_flight", (double)nb);
}

static void *cl_main(void *arg)
{
    sc_changelog_t *cl = arg;
    cl_batch_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    while (!atomic_load(&cl->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cl->consumer, CL_POLL_MS);
        if (!m) {
            cl_flush(cl, b);
            cl_gauges(cl);
            continue;
        }
        if (!m->err)
            cl_take(cl, b, m);
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            sc_warn("changelog.consume", "err=\"%s\"", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
    cl_flush(cl, b);
    free(b);
    return NULL;
}

/* Read every partition from its start to the end it has now, into the store. */
static sc_status_t cl_restore(sc_changelog_t *cl, char *errbuf, size_t errlen)
{
    int64_t t0 = sc_now_ms();
    int64_t budget = sc_config_int(cl->cfg, "cache.changelog_restore_ms");
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(cl->consumer, cl->topic, NULL);
    rd_kafka_resp_err_t err =
        rkt ? rd_kafka_metadata(cl->consumer, 0, rkt, &md, (int)(budget > 0 ? budget : 5000))
            : RD_KAFKA_RESP_ERR__FAIL;
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        snprintf(errbuf, errlen, "changelog topic %s: %s", cl->topic,
                 rd_kafka_err2str(err ? err : md->topic_cnt ? md->topics[0].err
                                                            : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
        if (md)
            rd_kafka_metadata_destroy(md);
        return SC_ERR_KAFKA;
    }
    int np = md->topics[0].partition_cnt;
    int64_t *end = calloc((size_t)(np > 0 ? np : 1), sizeof *end);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(np);
    int left = 0;
    for (int i = 0; end && i < np; i++)
        end[i] = -1; /* nothing to read there, until its watermarks say otherwise */
    for (int i = 0; end && i < np; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        err = rd_kafka_query_watermark_offsets(cl->consumer, cl->topic, p, &lo, &hi, 5000);
        if (err) {
            snprintf(errbuf, errlen, "changelog topic %s partition %d: %s", cl->topic, p,
                     rd_kafka_err2str(err));
            break;
        }
        rd_kafka_topic_partition_list_add(parts, cl->topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
        if (p >= 0 && p < np && hi > lo) {
            end[p] = hi;
            left++;
        }
    }
    rd_kafka_metadata_destroy(md);
    if (!end || err) {
        free(end);
        rd_kafka_topic_partition_list_destroy(parts);
        return end ? SC_ERR_KAFKA : SC_ERR_NOMEM;
    }
    err = rd_kafka_assign(cl->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err) {
        free(end);
        snprintf(errbuf, errlen, "changelog topic %s: assign: %s", cl->topic, rd_kafka_err2str(err));
        return SC_ERR_KAFKA;
    }
    cl_batch_t *b = calloc(1, sizeof *b);
    if (!b) {
        free(end);
        return SC_ERR_NOMEM;
    }
    long long records = 0;
    while (left > 0 && (budget <= 0 || sc_now_ms() - t0 < budget)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cl->consumer, CL_POLL_MS);
        if (!m)
            continue;
        if (!m->err) {
            records++;
            cl_take(cl, b, m);
            if (m->partition >= 0 && m->partition < np && end[m->partition] >= 0 &&
                m->offset + 1 >= end[m->partition]) {
                end[m->partition] = -1;
                left--;
            }
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            sc_warn("changelog.consume", "err=\"%s\"", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    cl_flush(cl, b);
    long long bytes = b->bytes;
    free(b);
    free(end);
    sc_info("changelog.restore", "topic=%s partitions=%d records=%lld applied=%lld summaries=%lld "
            "prompt_caches=%lld batches=%lld skipped=%lld bad=%lld bytes=%lld ms=%lld complete=%s",
            cl->topic, np, records, (long long)atomic_load(&cl->n_applied),
            (long long)atomic_load(&cl->n_sum_applied), (long long)atomic_load(&cl->n_pc_applied),
            (long long)json_object_size(cl->batches),
            (long long)atomic_load(&cl->n_skipped),
            (long long)atomic_load(&cl->n_bad), bytes, (long long)(sc_now_ms() - t0),
            left ? "no" : "yes");
    if (cl->metrics) {
        sc_metrics_gauge_set(cl->metrics, "changelog_restore_seconds",
                             (double)(sc_now_ms() - t0) / 1000.0);
        sc_metrics_gauge_set(cl->metrics, "changelog_restore_records", (double)records);
        cl_gauges(cl);
    }
    if (left)
        sc_warn("changelog.restore", "partitions_left=%d note=\"cache.changelog_restore_ms "
                "passed: serving now, the rest is applied as it is read\"", left);
    return SC_OK;
}

static void cl_free(sc_changelog_t *cl)
{
    for (size_t i = 0; i < cl->npurges; i++)
        free(cl->purges[i].tenant);
    free(cl->purges);
    json_decref(cl->batches);
    pthread_mutex_destroy(&cl->bat_mu);
    free(cl);
}

sc_status_t sc_changelog_open(const sc_config_t *cfg, const sc_changelog_stores_t *stores,
                              rd_kafka_t *producer, sc_metrics_t *metrics, sc_changelog_t **out,
                              char *errbuf, size_t errlen)
{
    char kerr[SC_KAFKA_ERRSTR];
    sc_changelog_t *cl = calloc(1, sizeof *cl);
    if (!cl)
        return SC_ERR_NOMEM;
    if (pthread_mutex_init(&cl->bat_mu, NULL) != 0 || !(cl->batches = json_object())) {
        free(cl);
        return SC_ERR_NOMEM;
    }
    cl->cfg = cfg;
    cl->cache = stores->cache;
    cl->summaries = stores->summaries;
    cl->pcache = stores->prompt_caches;
    cl->producer = producer;
    cl->metrics = metrics;
    cl->topic = sc_config_str(cfg, "topics.cache");
    sc_cache_opts_t co;
    sc_cache_opts_default(&co);
    sc_cache_opts_from_config(cfg, &co);
    cl->dim = co.dim;
    cl->ttl_ms = co.ttl_s > 0 ? co.ttl_s * 1000 : 0;
    cl_origin(cl->origin, sizeof cl->origin);

    rd_kafka_conf_t *conf = sc_kafka_conf_new(cfg, 1, errbuf, errlen);
    if (!conf) {
        cl_free(cl);
        return SC_ERR_CONFIG;
    }
    /* partitions are assigned, not subscribed: no group membership and nothing committed */
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", kerr, sizeof kerr);
    rd_kafka_conf_set(conf, "enable.partition.eof", "false", kerr, sizeof kerr);
    if (!(cl->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof kerr))) {
        snprintf(errbuf, errlen, "cannot create the changelog consumer: %s", kerr);
        cl_free(cl);
        return SC_ERR_KAFKA;
    }
    rd_kafka_poll_set_consumer(cl->consumer);
    sc_status_t st = cl_restore(cl, errbuf, errlen);
    if (!st && pthread_create(&cl->thread, NULL, cl_main, cl) != 0) {
        snprintf(errbuf, errlen, "cannot start the changelog thread");
        st = SC_ERR_NOMEM;
    }
    if (st) {
        rd_kafka_consumer_close(cl->consumer);
        rd_kafka_destroy(cl->consumer);
        cl_free(cl);
        return st;
    }
    cl->started = 1;
    sc_info("changelog.start", "topic=%s origin=%s", cl->topic, cl->origin);
    *out = cl;
    return SC_OK;
}

void sc_changelog_close(sc_changelog_t *cl)
{
    if (!cl)
        return;
    atomic_store(&cl->stop, 1);
    if (cl->started)
        pthread_join(cl->thread, NULL);
    rd_kafka_consumer_close(cl->consumer);
    rd_kafka_destroy(cl->consumer);
    if (cl->bat_producer) { /* the last tombstones */
        rd_kafka_flush(cl->bat_producer, (int)sc_config_int(cl->cfg, "pipeline.drain_timeout_ms"));
        rd_kafka_destroy(cl->bat_producer);
    }
    sc_info("changelog.stop", "topic=%s published=%lld summaries_published=%lld "
            "prompt_caches_published=%lld batches_published=%lld dropped=%lld applied=%lld "
            "summaries_applied=%lld prompt_caches_applied=%lld batches_applied=%lld skipped=%lld "
            "bad=%lld purges=%lld", cl->topic,
            (long long)atomic_load(&cl->n_published), (long long)atomic_load(&cl->n_sum_published),
            (long long)atomic_load(&cl->n_pc_published),
            (long long)atomic_load(&cl->n_bat_published),
            (long long)atomic_load(&cl->n_dropped), (long long)atomic_load(&cl->n_applied),
            (long long)atomic_load(&cl->n_sum_applied), (long long)atomic_load(&cl->n_pc_applied),
            (long long)atomic_load(&cl->n_bat_applied),
            (long long)atomic_load(&cl->n_skipped), (long long)atomic_load(&cl->n_bad),
            (long long)atomic_load(&cl->n_purges));
    cl_free(cl);
}
