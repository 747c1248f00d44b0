/* online.c - the online driver (DESIGN §5): four threads joined by bounded queues. Read it top to
 * bottom: consumer (Kafka poll, micro-batches) → compute (sc_stage_parse, then
 * sc_optimizer_prepare: estimate, exact cache, embed, cache, coalesce, route, prune, call) →
 * forward (one curl multi loop; requests marked "priority": "batch" go to the batcher thread and
 * Gemini Batch Mode instead) → publish (results, dead letters, delivery reports, offsets). */
#include "pipelines/online.h"
#include "host/metrics/http.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "host/gemini/gemini.h"
#include "host/kafka/client.h"
#include "host/core/log.h"
#include "host/core/queue.h"
#include "host/core/util.h"
#include "pipelines/batcher.h"
#include "pipelines/changelog.h"
#include "pipelines/offsets.h"
#include "pipelines/optimizer.h"
#include "pipelines/pipeline.h"

#define ONLINE_IDLE_POLL_MS 100      /* how often an idle thread looks at the run flag */
#define ONLINE_PUBLISH_BATCH 512     /* items taken off the publish queue at once */
#define ONLINE_FORWARD_BATCH 256     /* items taken off the upstream queue at once */
#define ONLINE_STATS_EVERY_MS 10000  /* period of the serve.stats log line */
#define ONLINE_COMMITTED_TIMEOUT_MS 5000 /* bound on asking the group for its committed offsets */
#define ONLINE_BATCH_RECORD_WAIT_MS 5000 /* bound on the broker's ack of a batch's changelog records */

typedef struct {
    const sc_config_t *cfg;
    volatile sig_atomic_t *running;
    sc_limits_t limits;
    const char *t_requests, *t_results, *t_dlq, *t_shadow;
    int batch_max;
    int batch_wait_ms;
    size_t chunk;           /* items the compute thread prepares at once */
    int64_t default_deadline_ms;
    rd_kafka_t *consumer, *producer;
    sc_gemini_t *gemini;
    sc_offsets_t *offsets;
    sc_queue_t *compute_q;  /* sc_batch_t* */
    sc_queue_t *upstream_q; /* sc_item_t* */
    sc_queue_t *publish_q;  /* sc_item_t* */
    sc_queue_t *batch_q;    /* sc_item_t*: requests with "priority": "batch" */
    atomic_llong drain_deadline_ms; /* 0 while running */
    atomic_int fatal;
    atomic_llong n_consumed, n_ok, n_error, n_dead, n_inflight;
    atomic_llong n_skipped; /* consumed again after a rebalance, published already: skipped */
    sc_metrics_t *metrics;
    sc_metrics_server_t *metrics_srv;
    sc_changelog_t *changelog; /* cache.changelog: the cache shared with the other replicas */
    json_t *bat_creating;      /* batcher thread: the journal's last "creating" event */
    sc_optimizer_t *opt;
    sc_item_t **again;      /* forward thread only: items whose next call waits to be submitted */
    size_t nagain, capagain;
    sc_gemini_call_t **shadow_next; /* forward thread only: shadow calls waiting to be submitted */
    size_t nshadow_next, capshadow_next;
    int max_inflight;
    atomic_llong n_shadow_lines;
} online_t;

static int64_t drain_deadline(online_t *o)
{
    return atomic_load(&o->drain_deadline_ms);
}

static int past_drain(online_t *o)
{
    int64_t d = drain_deadline(o);
    return d > 0 && sc_now_ms() > d;
}

/* A partition that comes back to this process (the group lost it when the broker was out of
 * reach past the session timeout, say) goes on after what this process already published there,
 * when the group's committed offset is behind that: everything before it has its result on the
 * results topic, so consuming it again would publish every one a second time. Never behind the
 * committed offset, which another owner may have moved on meanwhile. Sets the offsets in parts,
 * for rd_kafka_assign(). */
static void resume_acked(online_t *o, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts)
{
    bool any = false;
    for (int i = 0; i < parts->cnt && !any; i++)
        any = sc_offsets_acked(o->offsets, parts->elems[i].partition) >= 0;
    if (!any)
        return;
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, parts, ONLINE_COMMITTED_TIMEOUT_MS);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t acked = sc_offsets_acked(o->offsets, p->partition);
        if (acked < 0)
            continue;
        if (err || p->err) {
            /* no committed offset known: the group's own rules decide (re-delivery, no loss) */
            sc_warn("kafka.resume", "partition=%d acked=%lld committed=unknown err=\"%s\"",
                    p->partition, (long long)acked, rd_kafka_err2str(err ? err : p->err));
            p->offset = RD_KAFKA_OFFSET_INVALID;
            continue;
        }
        if (p->offset >= 0 && p->offset >= acked)
            continue; /* the commit is at or past what we published: start there */
        sc_info("kafka.resume", "partition=%d committed=%lld acked=%lld", p->partition,
                (long long)p->offset, (long long)acked);
        p->offset = acked;
    }
}

/* Store the resumed offsets for the next commit, so the group's offset catches up at once. */
static void store_resumed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        if (p->offset < 0)
            continue;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->offset;
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(rk, l);
        if (err)
            sc_warn("kafka.resume", "partition=%d offset=%lld store_err=\"%s\"", p->partition,
                    (long long)p->offset, rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(l);
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    online_t *o = opaque;
    /* Work in flight for the old assignment still publishes its results, but its offsets are no
     * longer stored: the new owner re-delivers them (at least once, never lost). */
    sc_offsets_reset(o->offsets);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        sc_info("kafka.assign", "partitions=%d", parts->cnt);
        resume_acked(o, rk, parts);
        rd_kafka_assign(rk, parts);
        store_resumed(rk, parts);
    } else {
        sc_info("kafka.revoke", "partitions=%d", parts->cnt);
        rd_kafka_assign(rk, NULL);
    }
}

/* ---- publish: results, dead letters, delivery reports, offsets ---- */

static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    online_t *o = opaque;
    sc_item_t *it = m->_private;
    if (!it) { /* a shadow ledger line or a changelog record: its loss costs no request, but is said */
        if (m->err)
            sc_warn("publish.side_failed", "topic=%s err=\"%s\"", rd_kafka_topic_name(m->rkt),
                    rd_kafka_err2str(m->err));
        return;
    }
    if (m->err) {
        /* Not acknowledged: its offset must not be stored. Stop, so a restart re-delivers. */
        sc_error("publish.failed", "id=%s err=\"%s\"", it->id, rd_kafka_err2str(m->err));
        atomic_store(&o->fatal, 1);
    } else {
        sc_offsets_done(o->offsets, it->partition, it->offset, it->epoch);
    }
    sc_item_free(it);
}

static void publish_one(online_t *o, sc_item_t *it)
{
    size_t len = 0;
    char *buf;
    const char *topic;
    sc_item_t *followers = NULL;
    if (it->state != SC_ITEM_INVALID) /* store the answer; release the items that share it */
        followers = sc_optimizer_finish(o->opt, it);
    while (followers) {
        sc_item_t *f = followers;
        followers = f->next_follower;
        f->next_follower = NULL;
        publish_one(o, f);
    }
    if (it->state == SC_ITEM_INVALID) {
        buf = sc_deadletter_to_json(it->raw, it->raw_len, o->t_requests, it->partition,
                                    it->offset, it->id, sc_status_code(it->error), it->errmsg,
                                    &len);
        topic = o->t_dlq;
        atomic_fetch_add(&o->n_dead, 1);
        sc_metrics_dead_letter(o->metrics, sc_status_code(it->error));
    } else {
        buf = sc_stage_ledger(it, o->cfg, o->metrics, &len);
        topic = o->t_results;
        atomic_fetch_add(it->error == SC_OK ? &o->n_ok : &o->n_error, 1);
    }
    if (!buf) {
        sc_error("publish.encode", "id=%s: out of memory", it->id);
        atomic_store(&o->fatal, 1);
        sc_item_free(it);
        return;
    }
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            o->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(it->id, strlen(it->id)),
            RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
            RD_KAFKA_V_OPAQUE(it), RD_KAFKA_V_END);
        if (!err)
            return; /* buf and it now belong to librdkafka until delivery_cb */
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            sc_error("publish.produce", "id=%s err=\"%s\"", it->id, rd_kafka_err2str(err));
            atomic_store(&o->fatal, 1);
            free(buf);
            sc_item_free(it);
            return;
        }
        rd_kafka_poll(o->producer, ONLINE_IDLE_POLL_MS); /* serve deliveries to make room */
    }
}

static void *publish_main(void *arg)
{
    online_t *o = arg;
    void *items[ONLINE_PUBLISH_BATCH];
    for (;;) {
        size_t n = sc_queue_pop_many(o->publish_q, items, ONLINE_PUBLISH_BATCH,
                                     ONLINE_IDLE_POLL_MS / 10);
        for (size_t i = 0; i < n; i++)
            publish_one(o, items[i]);
        rd_kafka_poll(o->producer, 0);
        if (n == 0 && sc_queue_closed(o->publish_q))
            break;
    }
    int64_t left = drain_deadline(o) - sc_now_ms();
    rd_kafka_resp_err_t err = rd_kafka_flush(o->producer, left > 1000 ? (int)left : 1000);
    if (err)
        sc_error("publish.flush", "err=\"%s\" unacknowledged=%d", rd_kafka_err2str(err),
                 rd_kafka_outq_len(o->producer));
    return NULL;
}

/* ---- forward: one curl multi loop for every upstream call ---- */

/* A shadow call to submit after this poll round; when there is no room it is handed back. */
static void shadow_queue(online_t *o, sc_gemini_call_t *c);

/* The shadow's ledger line on topics.shadow (forward thread; the producer is thread-safe). */
static void shadow_publish(online_t *o, char *line, size_t len)
{
    if (!line)
        return;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        o->producer, RD_KAFKA_V_TOPIC(o->t_shadow), RD_KAFKA_V_VALUE(line, len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_OPAQUE(NULL), RD_KAFKA_V_END);
    if (err) {
        sc_warn("shadow.publish", "err=\"%s\" (the line is lost; /metrics counted its cost)",
                rd_kafka_err2str(err));
        free(line);
        return;
    }
    atomic_fetch_add(&o->n_shadow_lines, 1);
}

static void shadow_done(online_t *o, sc_gemini_call_t *call)
{
    char *line;
    size_t len;
    sc_gemini_call_t *next = sc_optimizer_shadow_done(o->opt, call, &line, &len);
    shadow_publish(o, line, len);
    if (next)
        shadow_queue(o, next);
}

static void shadow_queue(online_t *o, sc_gemini_call_t *c)
{
    if (o->nshadow_next == o->capshadow_next) {
        size_t cap = o->capshadow_next ? o->capshadow_next * 2 : 16;
        sc_gemini_call_t **na = realloc(o->shadow_next, cap * sizeof *na);
        if (!na) {
            c->status = SC_ERR_FULL;
            shadow_done(o, c);
            return;
        }
        o->shadow_next = na;
        o->capshadow_next = cap;
    }
    o->shadow_next[o->nshadow_next++] = c;
}

static void forward_done(sc_gemini_call_t *call, void *arg)
{
    online_t *o = arg;
    if (sc_optimizer_is_shadow(o->opt, call)) {
        shadow_done(o, call);
        return;
    }
    sc_item_t *it = call->opaque;
    if (sc_optimizer_after_call(o->opt, it)) { /* a summary before it, or a promotion */
        if (o->nagain == o->capagain) {
            size_t cap = o->capagain ? o->capagain * 2 : 64;
            sc_item_t **na = realloc(o->again, cap * sizeof *na);
            if (na) {
                o->again = na;
                o->capagain = cap;
            }
        }
        if (o->nagain < o->capagain) {
            o->again[o->nagain++] = it;
            return;
        }
        call = it->call; /* no room to resubmit: the new call's outcome is unknown, fail it */
        call->status = SC_ERR_NOMEM;
    }
    call = it->call;
    it->state = SC_ITEM_DONE;
    it->error = call->status;
    if (call->status != SC_OK) {
        if (call->http_status)
            snprintf(it->errmsg, sizeof it->errmsg, "HTTP %ld %s: %s", call->http_status,
                     call->err_status, call->err_message ? call->err_message : "");
        else
            snprintf(it->errmsg, sizeof it->errmsg, "%s%s%s", sc_strerror(call->status),
                     call->err_message ? ": " : "", call->err_message ? call->err_message : "");
    }
    atomic_fetch_sub(&o->n_inflight, 1);
    /* a sampled answer is shadowed, never before or instead of being published; under pressure
     * (half of gemini.max_inflight in use, as many requests waiting for the upstream, or
     * draining) the shadow is dropped */
    int busy = sc_queue_len(o->upstream_q) >= (size_t)(o->max_inflight / 2) ||
               sc_gemini_inflight(o->gemini) >= o->max_inflight / 2 || drain_deadline(o) > 0;
    sc_gemini_call_t *shadow = call->status == SC_OK ? sc_optimizer_shadow_start(o->opt, it, busy)
                                                     : NULL;
    sc_queue_push(o->publish_q, it, -1);
    if (shadow)
        shadow_queue(o, shadow);
}

static void *forward_main(void *arg)
{
    online_t *o = arg;
    void *items[ONLINE_FORWARD_BATCH];
    int max_inflight = (int)sc_config_int(o->cfg, "gemini.max_inflight");
    for (;;) {
        int inflight = sc_gemini_inflight(o->gemini);
        int room = max_inflight - inflight;
        if (room > 0) {
            size_t want = (size_t)room < ONLINE_FORWARD_BATCH ? (size_t)room : ONLINE_FORWARD_BATCH;
            size_t n = sc_queue_pop_many(o->upstream_q, items, want,
                                         inflight ? 0 : ONLINE_IDLE_POLL_MS);
            for (size_t i = 0; i < n; i++) {
                sc_item_t *it = items[i];
                if (sc_gemini_submit(o->gemini, it->call) != SC_OK) { /* cannot happen: room */
                    it->state = SC_ITEM_DONE;
                    it->error = SC_ERR_FULL;
                    sc_queue_push(o->publish_q, it, -1);
                    continue;
                }
                atomic_fetch_add(&o->n_inflight, 1);
            }
        }
        inflight = sc_gemini_inflight(o->gemini);
        if (inflight == 0 && sc_queue_closed(o->upstream_q))
            break;
        if (inflight > 0 && past_drain(o)) {
            sc_warn("forward.abandon", "calls=%d reason=\"drain timeout\" (their offsets stay "
                    "uncommitted, so they are re-delivered)", inflight);
            break;
        }
        if (inflight > 0)
            sc_gemini_poll(o->gemini, ONLINE_IDLE_POLL_MS, forward_done, o);
        for (size_t i = 0; i < o->nagain; i++) { /* the next call of a chained request */
            sc_item_t *it = o->again[i];
            if (sc_gemini_submit(o->gemini, it->call) != SC_OK) {
                it->state = SC_ITEM_DONE;
                it->error = SC_ERR_FULL;
                atomic_fetch_sub(&o->n_inflight, 1);
                sc_queue_push(o->publish_q, it, -1);
            }
        }
        o->nagain = 0;
        size_t nshadow = o->nshadow_next; /* shadows and judges, last */
        o->nshadow_next = 0;
        for (size_t i = 0; i < nshadow; i++) {
            sc_gemini_call_t *c = o->shadow_next[i];
            if (sc_gemini_submit(o->gemini, c) != SC_OK) {
                c->status = SC_ERR_FULL; /* counted as dropped; a failed call has no next */
                shadow_done(o, c);
            }
        }
    }
    return NULL;
}

/* ---- batcher: "priority": "batch" requests through Gemini Batch Mode ---- */

static void batch_key(const sc_item_t *it, char *buf, size_t len)
{
    snprintf(buf, len, "P%d.%lld", (int)it->partition, (long long)it->offset);
}

static void batch_done(sc_item_t *it, void *arg)
{
    online_t *o = arg;
    if (o->changelog) { /* handed on: the other replicas forget its batch */
        char key[SC_BATCHER_KEY_MAX];
        batch_key(it, key, sizeof key);
        sc_changelog_publish_batch(o->changelog, key, NULL, NULL, NULL);
    }
    sc_queue_push(o->publish_q, it, -1);
}

/* With cache.changelog, the batcher's journal goes to the changelog: each request of a batch
 * being created, then created (with its name), so that the replica its request is re-delivered
 * to after this one dies adopts the batch instead of paying for the request again. Best effort:
 * a record that cannot be sent costs at most that second payment, so creation goes on. */
static int batch_journal(json_t *ev, void *arg)
{
    online_t *o = arg;
    const char *what = json_string_value(json_object_get(ev, "ev"));
    const char *display = json_string_value(json_object_get(ev, "display"));
    if (what && display && strcmp(what, "creating") == 0) {
        json_decref(o->bat_creating);
        o->bat_creating = json_incref(ev); /* "created" of the same batch comes next */
    }
    json_t *c = o->bat_creating; /* borrowed */
    const char *name = json_string_value(json_object_get(ev, "name"));
    if (what && c && (strcmp(what, "creating") == 0 || strcmp(what, "created") == 0) &&
        strcmp(display, json_string_value(json_object_get(c, "display"))) == 0) {
        const char *model = json_string_value(json_object_get(c, "model"));
        size_t i;
        json_t *k;
        json_array_foreach(json_object_get(c, "keys"), i, k)
            sc_changelog_publish_batch(o->changelog, json_string_value(k), display, model,
                                       strcmp(what, "created") == 0 ? name : NULL);
        /* the batch is created only once the others can know of it: a replica killed just after
         * the creation (a test kills at the log line) would otherwise leave nothing to adopt */
        if (!sc_changelog_batch_sync(o->changelog, ONLINE_BATCH_RECORD_WAIT_MS))
            sc_warn("batcher.journal", "ev=%s display=%s requests=%zu note=\"not acknowledged "
                    "by the broker within %d ms: if this replica dies, the one that takes its "
                    "requests may submit them again\"", what, display,
                    json_array_size(json_object_get(c, "keys")), ONLINE_BATCH_RECORD_WAIT_MS);
    }
    json_decref(ev);
    return 0;
}

/* A re-delivered batch-priority request that another replica had put in a batch: adopted (1), so
 * its result comes from that batch; 0 when there is none to adopt. */
static int batch_adopt(online_t *o, sc_batcher_t *b, sc_batch_client_t *client, sc_item_t *it)
{
    char key[SC_BATCHER_KEY_MAX], display[96], model[SC_MODEL_MAX], name[SC_BATCH_NAME_MAX];
    char err[512];
    batch_key(it, key, sizeof key);
    if (!sc_changelog_batch_lookup(o->changelog, key, display, sizeof display, model,
                                   sizeof model, name, sizeof name))
        return 0;
    /* only "creating" was recorded: the batch exists if the creation went through */
    if (!name[0] && sc_batch_find(client, display, name, sizeof name, err, sizeof err) != SC_OK) {
        sc_info("batcher.adopt_none", "key=%s display=%s note=\"never created: submitted "
                "here\"", key, display);
        return 0;
    }
    sc_item_t *one[1] = {it};
    if (sc_batcher_adopt(b, display, name, model, one, 1) != SC_OK)
        return 0;
    return 1;
}

/*
 * Gathers batch-priority requests per model for up to batch.priority_max_wait_ms (or a full
 * batch), creates the batch, polls it, and publishes each result when its batch completes. Their
 * offsets wait for them (the completion watermark), so a crash re-delivers them: they are then
 * submitted again in a new batch.
 */
static void *batcher_main(void *arg)
{
    online_t *o = arg;
    char err[1024];
    char run_id[32];
    sc_batch_client_t *client = NULL;
    sc_batcher_t *b = NULL;
    void *items[ONLINE_FORWARD_BATCH];
    int64_t max_wait = sc_config_int(o->cfg, "batch.priority_max_wait_ms");
    snprintf(run_id, sizeof run_id, "serve-%d-%lld", (int)getpid(), (long long)sc_wall_ms());
    sc_batcher_opts_t bo = {.cfg = o->cfg, .run_id = run_id, .done = batch_done,
                            .key = batch_key, .journal = o->changelog ? batch_journal : NULL,
                            .arg = o};
    if (sc_batch_client_new(sc_config_str(o->cfg, "gemini.base_url"),
                            sc_config_str(o->cfg, "gemini.api_key"),
                            sc_config_int(o->cfg, "gemini.request_timeout_ms"), &client, err,
                            sizeof err) != SC_OK ||
        (bo.client = client, sc_batcher_new(&bo, &b)) != SC_OK) {
        sc_error("batcher.start", "err=\"%s\"", err);
        atomic_store(&o->fatal, 1);
        goto out;
    }
    for (;;) {
        long next = sc_batcher_next_poll_ms(b);
        int wait = next < 0 || next > ONLINE_IDLE_POLL_MS ? ONLINE_IDLE_POLL_MS : (int)next;
        size_t n = sc_queue_pop_many(o->batch_q, items, ONLINE_FORWARD_BATCH, wait);
        for (size_t i = 0; i < n; i++)
            if (!(o->changelog && batch_adopt(o, b, client, items[i])) &&
                sc_batcher_add(b, items[i]) != SC_OK) {
                sc_item_t *it = items[i];
                it->state = SC_ITEM_DONE;
                it->error = SC_ERR_NOMEM;
                sc_queue_push(o->publish_q, it, -1);
            }
        int closing = sc_queue_closed(o->batch_q);
        /* While draining, what waits is sent at once: it may finish within the deadline. */
        if (sc_batcher_flush(b, closing, max_wait, err, sizeof err) != SC_OK)
            sc_warn("batcher.flush", "err=\"%s\" (retried on the next round)", err);
        sc_batcher_poll(b, err, sizeof err);
        if (closing && sc_batcher_queued(b) == 0 && sc_batcher_open(b) == 0)
            break;
        if (closing && past_drain(o)) {
            sc_warn("batcher.abandon", "requests=%zu reason=\"drain timeout\" (their offsets stay "
                    "uncommitted, so they are re-delivered)", sc_batcher_queued(b) +
                    sc_batcher_open(b));
            break;
        }
    }
out:
    sc_batcher_free(b);
    sc_batch_client_free(client);
    json_decref(o->bat_creating);
    o->bat_creating = NULL;
    return NULL;
}

/* ---- compute: the stages, one call each ---- */

/* The stages of one chunk of a micro-batch, then each item to where it goes next. */
static void compute_chunk(online_t *o, sc_batch_t *view)
{
    sc_optimizer_prepare(o->opt, view); /* every stage of the optimizer, in order */
    for (size_t i = 0; i < view->n; i++) {
        sc_item_t *it = view->items[i];
        view->items[i] = NULL;
        if (it->state == SC_ITEM_FOLLOWING)
            continue; /* published with its leader's answer */
        sc_queue_t *next = o->publish_q;
        if (it->state == SC_ITEM_FORWARD && o->batch_q && it->req->priority &&
            strcmp(it->req->priority, "batch") == 0) {
            next = o->batch_q; /* Batch Mode takes the main call only: no summary first */
            if (it->summary_body) {
                free(it->summary_body);
                it->summary_body = NULL;
                size_t len;
                free(it->body_plain);
                it->body_plain = sc_prune_body(it->req, &it->plan, NULL, &len);
            }
        } else if (it->state == SC_ITEM_FORWARD) {
            next = o->upstream_q;
        }
        sc_queue_push(next, it, -1);
    }
    sc_gemini_wakeup(o->gemini);
}

static void *compute_main(void *arg)
{
    online_t *o = arg;
    void *p;
    while (sc_queue_pop(o->compute_q, &p, -1) == SC_OK) {
        sc_batch_t *batch = p;
        sc_stage_parse(batch, &o->limits);
        for (size_t i = 0; i < batch->n; i++) {
            sc_item_t *it = batch->items[i];
            int64_t budget = it->req && it->req->deadline_ms > 0 ? it->req->deadline_ms
                                                                 : o->default_deadline_ms;
            it->deadline_ms = it->consumed_ms + budget;
        }
        /* In chunks, so the first requests of a large batch go upstream while the rest is still
         * being embedded (the CPU encoder takes a while for hundreds of texts). */
        for (size_t c0 = 0; c0 < batch->n; c0 += o->chunk) {
            sc_batch_t view = {.items = batch->items + c0,
                               .n = batch->n - c0 < o->chunk ? batch->n - c0 : o->chunk};
            compute_chunk(o, &view);
        }
        sc_gemini_wakeup(o->gemini);
        batch->n = 0;
        sc_batch_free(batch);
    }
    sc_queue_close(o->upstream_q);
    if (o->batch_q)
        sc_queue_close(o->batch_q);
    sc_gemini_wakeup(o->gemini);
    return NULL;
}

/* ---- consumer: poll, micro-batch, hand on ---- */

static sc_item_t *item_from_message(const rd_kafka_message_t *m, uint64_t epoch)
{
    sc_item_t *it = sc_item_new();
    if (!it)
        return NULL;
    it->raw = malloc(m->len ? m->len : 1);
    if (!it->raw) {
        free(it);
        return NULL;
    }
    if (m->len)
        memcpy(it->raw, m->payload, m->len);
    it->raw_len = m->len;
    it->partition = m->partition;
    it->offset = m->offset;
    it->consumed_ms = sc_now_ms();
    it->epoch = epoch;
    return it;
}

static void log_stats(online_t *o)
{
    sc_info("serve.stats", "consumed=%lld ok=%lld error=%lld dead_letters=%lld inflight=%lld "
            "unacked=%zu skipped_published=%lld", (long long)atomic_load(&o->n_consumed),
            (long long)atomic_load(&o->n_ok), (long long)atomic_load(&o->n_error),
            (long long)atomic_load(&o->n_dead), (long long)atomic_load(&o->n_inflight),
            sc_offsets_pending(o->offsets), (long long)atomic_load(&o->n_skipped));
}

/* Fill one micro-batch: up to batch.max_messages, or batch.max_wait_ms after the first. */
static sc_batch_t *consume_batch(online_t *o)
{
    sc_batch_t *b = calloc(1, sizeof *b);
    if (!b || !(b->items = calloc((size_t)o->batch_max, sizeof *b->items))) {
        free(b);
        return NULL;
    }
    int64_t first_ms = 0;
    while (b->n < (size_t)o->batch_max && *o->running && !atomic_load(&o->fatal)) {
        int wait = ONLINE_IDLE_POLL_MS;
        if (b->n > 0) {
            wait = (int)(first_ms + o->batch_wait_ms - sc_now_ms());
            if (wait < 0)
                break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(o->consumer, wait);
        if (!m) {
            if (b->n > 0)
                break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                sc_warn("consume.error", "err=\"%s\"", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        sc_offsets_seen_t seen;
        uint64_t epoch = sc_offsets_add(o->offsets, m->partition, m->offset, &seen);
        if (seen != SC_OFFSETS_NEW) {
            /* its partition came back to this process, which published (or is publishing) this
             * one before: a second result would be a duplicate */
            atomic_fetch_add(&o->n_skipped, 1);
            rd_kafka_message_destroy(m);
            continue;
        }
        sc_item_t *it = item_from_message(m, epoch);
        rd_kafka_message_destroy(m);
        if (!it) {
            sc_error("consume.nomem", "stopping: out of memory");
            atomic_store(&o->fatal, 1);
            break;
        }
        if (b->n == 0)
            first_ms = it->consumed_ms;
        b->items[b->n++] = it;
        atomic_fetch_add(&o->n_consumed, 1);
    }
    return b;
}

static void consumer_loop(online_t *o)
{
    int64_t next_stats = sc_now_ms() + ONLINE_STATS_EVERY_MS;
    while (*o->running && !atomic_load(&o->fatal)) {
        sc_batch_t *b = consume_batch(o);
        if (!b) {
            atomic_store(&o->fatal, 1);
            break;
        }
        if (b->n == 0) {
            sc_batch_free(b);
        } else {
            /* A full pipeline blocks here: back-pressure instead of memory growth. */
            sc_status_t st;
            while ((st = sc_queue_push(o->compute_q, b, ONLINE_IDLE_POLL_MS)) == SC_ERR_TIMEOUT &&
                   !past_drain(o))
                ;
            if (st != SC_OK)
                sc_batch_free(b); /* not processed: not stored, so re-delivered */
        }
        if (sc_now_ms() >= next_stats) {
            log_stats(o);
            next_stats = sc_now_ms() + ONLINE_STATS_EVERY_MS;
        }
    }
}

/* ---- the driver ---- */

sc_status_t sc_online_run(const sc_config_t *cfg, volatile sig_atomic_t *running, char *errbuf,
                          size_t errlen)
{
    sc_status_t st = SC_OK;
    char kerr[SC_KAFKA_ERRSTR];
    online_t o = {.cfg = cfg, .running = running};
    pthread_t t_compute, t_forward, t_publish, t_batcher;
    int batcher = 0;
    int threads = 0;
    sc_limits_from_config(cfg, &o.limits);
    o.t_requests = sc_config_str(cfg, "topics.requests");
    o.t_results = sc_config_str(cfg, "topics.results");
    o.t_dlq = sc_config_str(cfg, "topics.dlq");
    o.t_shadow = sc_config_str(cfg, "topics.shadow");
    o.max_inflight = (int)sc_config_int(cfg, "gemini.max_inflight");
    o.batch_max = (int)sc_config_int(cfg, "batch.max_messages");
    o.batch_wait_ms = (int)sc_config_int(cfg, "batch.max_wait_ms");
    o.chunk = (size_t)sc_config_int(cfg, "pipeline.compute_chunk");
    o.default_deadline_ms = sc_config_int(cfg, "request.default_deadline_ms");
    size_t qcap = (size_t)sc_config_int(cfg, "pipeline.queue_capacity");

    if (!sc_config_str(cfg, "gemini.api_key")[0]) {
        snprintf(errbuf, errlen, "GEMINI_API_KEY is not set (the Gemini API key is read from the "
                 "environment only)");
        return SC_ERR_CONFIG;
    }
    /* Upstream first: it answers (or not) faster than a broker metadata round trip. */
    long probe_ms = (long)sc_config_int(cfg, "pipeline.startup_timeout_ms");
    if ((st = sc_gemini_probe(sc_config_str(cfg, "gemini.base_url"), probe_ms, errbuf, errlen)))
        return st;
    if ((st = sc_upstream_from_config(cfg, &o.gemini, errbuf, errlen)))
        return st;

    if ((st = sc_metrics_new(&o.metrics)))
        goto out;
    if ((st = sc_optimizer_new(cfg, o.metrics, 0, &o.opt, errbuf, errlen)))
        goto out;
    sc_metrics_set_max_tenants(o.metrics, (size_t)sc_config_int(cfg, "metrics.max_tenants"));
    if (sc_config_str(cfg, "metrics.listen")[0] &&
        (st = sc_metrics_server_start(o.metrics, sc_config_str(cfg, "metrics.listen"),
                                      &o.metrics_srv, errbuf, errlen)))
        goto out;
    rd_kafka_conf_t *pconf = sc_kafka_conf_new(cfg, 0, errbuf, errlen);
    if (!pconf) {
        st = SC_ERR_CONFIG;
        goto out;
    }
    rd_kafka_conf_set_dr_msg_cb(pconf, delivery_cb);
    rd_kafka_conf_set_opaque(pconf, &o);
    if (!(o.producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, kerr, sizeof kerr))) {
        snprintf(errbuf, errlen, "cannot create the Kafka producer: %s", kerr);
        st = SC_ERR_KAFKA;
        goto out;
    }
    /* the shadow topic only when shadow evaluation may publish on it */
    int shadowing = sc_config_num(cfg, "router.shadow_rate") > 0.0 &&
                    sc_config_str(cfg, "router.shadow_path")[0];
    const char *need[] = {o.t_requests, o.t_results, o.t_dlq, o.t_shadow};
    if ((st = sc_kafka_check(o.producer, cfg, need, SC_ARRAY_LEN(need) - !shadowing, errbuf,
                             errlen)))
        goto out;
    /* the changelog: restored before the first request is consumed, then kept applied */
    if (sc_config_bool(cfg, "cache.changelog") && sc_optimizer_cache(o.opt)) {
        sc_changelog_stores_t stores = {.cache = sc_optimizer_cache(o.opt),
                                        .summaries = sc_optimizer_summaries(o.opt),
                                        .prompt_caches = sc_optimizer_prompt_cache(o.opt)};
        if ((st = sc_changelog_open(cfg, &stores, o.producer, o.metrics, &o.changelog, errbuf,
                                    errlen)))
            goto out;
        sc_optimizer_on_store(o.opt, sc_changelog_publish, o.changelog);
        sc_optimizer_on_summary(o.opt, sc_changelog_publish_summary, o.changelog);
        if (stores.prompt_caches)
            sc_prompt_cache_on_share(stores.prompt_caches, sc_changelog_publish_prompt_cache,
                                     o.changelog);
    }

    rd_kafka_conf_t *cconf = sc_kafka_conf_new(cfg, 1, errbuf, errlen);
    if (!cconf) {
        st = SC_ERR_CONFIG;
        goto out;
    }
    rd_kafka_conf_set_rebalance_cb(cconf, rebalance_cb);
    rd_kafka_conf_set_opaque(cconf, &o);
    if (!(o.consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, kerr, sizeof kerr))) {
        snprintf(errbuf, errlen, "cannot create the Kafka consumer: %s", kerr);
        st = SC_ERR_KAFKA;
        goto out;
    }
    rd_kafka_poll_set_consumer(o.consumer);
    if ((st = sc_offsets_new(o.consumer, o.t_requests, &o.offsets)) ||
        (st = sc_queue_new(qcap, &o.compute_q)) || (st = sc_queue_new(qcap, &o.upstream_q)) ||
        (st = sc_queue_new(qcap, &o.publish_q)))
        goto out;
    if (sc_config_bool(cfg, "batch.priority_enabled") && (st = sc_queue_new(qcap, &o.batch_q)))
        goto out;
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, o.t_requests, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kr = rd_kafka_subscribe(o.consumer, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (kr) {
        snprintf(errbuf, errlen, "cannot subscribe to %s: %s", o.t_requests, rd_kafka_err2str(kr));
        st = SC_ERR_KAFKA;
        goto out;
    }
    if (pthread_create(&t_publish, NULL, publish_main, &o) == 0)
        threads++;
    if (threads == 1 && pthread_create(&t_forward, NULL, forward_main, &o) == 0)
        threads++;
    if (threads == 2 && o.batch_q && pthread_create(&t_batcher, NULL, batcher_main, &o) == 0)
        batcher = 1;
    if (threads == 2 && (batcher || !o.batch_q) &&
        pthread_create(&t_compute, NULL, compute_main, &o) == 0)
        threads++;
    sc_info("serve.start", "bootstrap=%s group=%s topic=%s upstream=%s default_model=%s "
            "batch_max=%d batch_wait_ms=%d max_inflight=%lld",
            sc_config_str(cfg, "kafka.bootstrap.servers"), sc_config_str(cfg, "kafka.group.id"),
            o.t_requests, sc_config_str(cfg, "gemini.base_url"),
            sc_config_str(cfg, "models.default"), o.batch_max, o.batch_wait_ms,
            sc_config_int(cfg, "gemini.max_inflight"));
    sc_metrics_set_ready(o.metrics, threads == 3);
    if (threads == 3)
        consumer_loop(&o);
    else
        st = SC_ERR_NOMEM;

    /* Drain: stop consuming, let in-flight work finish up to the deadline, flush, commit. */
    sc_metrics_set_ready(o.metrics, 0);
    atomic_store(&o.drain_deadline_ms,
                 sc_now_ms() + sc_config_int(cfg, "pipeline.drain_timeout_ms"));
    sc_info("serve.drain", "unacked=%zu deadline_ms=%lld", sc_offsets_pending(o.offsets),
            sc_config_int(cfg, "pipeline.drain_timeout_ms"));
    sc_queue_close(o.compute_q);
    if (threads == 3) {
        pthread_join(t_compute, NULL);
    } else {
        sc_queue_close(o.upstream_q);
        if (o.batch_q)
            sc_queue_close(o.batch_q);
    }
    if (threads >= 2)
        pthread_join(t_forward, NULL);
    if (batcher)
        pthread_join(t_batcher, NULL);
    sc_queue_close(o.publish_q); /* forward and batcher are done: nothing more to publish */
    if (threads >= 1)
        pthread_join(t_publish, NULL);
    log_stats(&o);
    if (atomic_load(&o.fatal) && !st) {
        snprintf(errbuf, errlen, "stopped after an unrecoverable error (see the log); "
                 "unacknowledged requests will be re-delivered");
        st = SC_ERR_KAFKA;
    }
out:
    if (o.consumer) {
        rd_kafka_consumer_close(o.consumer); /* commits the stored offsets */
        rd_kafka_destroy(o.consumer);
    }
    /* the prompt caches stop sharing before the changelog goes (they stay left to the others) */
    if (o.changelog && sc_optimizer_prompt_cache(o.opt))
        sc_prompt_cache_on_share(sc_optimizer_prompt_cache(o.opt), NULL, NULL);
    sc_changelog_close(o.changelog); /* its records are flushed with the results */
    if (o.producer)
        rd_kafka_destroy(o.producer);
    sc_gemini_free(o.gemini);
    sc_queue_free(o.compute_q);
    sc_queue_free(o.upstream_q);
    sc_queue_free(o.publish_q);
    sc_queue_free(o.batch_q);
    sc_offsets_free(o.offsets);
    sc_optimizer_free(o.opt);
    free(o.again);
    free(o.shadow_next);
    sc_metrics_server_stop(o.metrics_srv);
    sc_metrics_free(o.metrics);
    sc_info("serve.stop", "status=%s", sc_status_code(st));
    return st;
}
