/* batcher.c - Batch Mode for pipeline items: per-model queues, batch creation behind a journal
 * entry, polling with backoff, results matched by key, resubmission of failed items. */
#include "pipelines/batcher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/core/log.h"
#include "host/core/util.h"

#define BATCHER_CREATE_ATTEMPTS 4   /* creations of one batch whose outcome stays unknown */
#define BATCHER_CREATE_BACKOFF_MS 1000
#define BATCHER_BODY_SLACK 128      /* bytes of envelope per request in the create body */
#define BATCHER_ENVELOPE 256        /* bytes of the create body around the requests */
#define BATCHER_WHY_MAX 2048

typedef struct {
    char display[96];
    char name[SC_BATCH_NAME_MAX];
    char model[SC_MODEL_MAX];
    sc_item_t **items;             /* owned array; the items are the batcher's */
    char (*keys)[SC_BATCHER_KEY_MAX]; /* keys[i] of items[i], sorted */
    unsigned char *gone;           /* gone[i]: items[i] was handed back or requeued */
    size_t n;
    sc_batch_status_t status;
    int64_t next_poll_ms;
    long poll_ms;
} batch_t;

typedef struct {
    char model[SC_MODEL_MAX];
    sc_item_t **items; /* owned array */
    size_t n, cap;
    int64_t oldest_ms;
} queue_t;

struct sc_batcher {
    sc_batcher_opts_t o;
    queue_t *queues; /* one per model seen */
    size_t nqueues;
    batch_t **open;  /* created, not finished */
    size_t nopen, capopen;
    unsigned seq;
    long long created;
};

sc_status_t sc_batcher_new(const sc_batcher_opts_t *opts, sc_batcher_t **out)
{
    sc_batcher_t *b = calloc(1, sizeof *b);
    if (!b)
        return SC_ERR_NOMEM;
    b->o = *opts;
    *out = b;
    return SC_OK;
}

static void batch_free(batch_t *bt, int free_items)
{
    if (!bt)
        return;
    for (size_t i = 0; free_items && i < bt->n; i++)
        if (!bt->gone || !bt->gone[i])
            sc_item_free(bt->items[i]);
    free(bt->items);
    free(bt->keys);
    free(bt->gone);
    free(bt);
}

void sc_batcher_free(sc_batcher_t *b)
{
    if (!b)
        return;
    for (size_t q = 0; q < b->nqueues; q++) {
        for (size_t i = 0; i < b->queues[q].n; i++)
            sc_item_free(b->queues[q].items[i]);
        free(b->queues[q].items);
    }
    free(b->queues);
    for (size_t i = 0; i < b->nopen; i++)
        batch_free(b->open[i], 1);
    free(b->open);
    free(b);
}

size_t sc_batcher_queued(const sc_batcher_t *b)
{
    size_t n = 0;
    for (size_t q = 0; q < b->nqueues; q++)
        n += b->queues[q].n;
    return n;
}

size_t sc_batcher_open(const sc_batcher_t *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->nopen; i++)
        n += b->open[i]->n;
    return n;
}

long long sc_batcher_created(const sc_batcher_t *b)
{
    return b->created;
}

long sc_batcher_next_poll_ms(const sc_batcher_t *b)
{
    if (b->nopen == 0)
        return -1;
    int64_t now = sc_now_ms(), next = INT64_MAX;
    for (size_t i = 0; i < b->nopen; i++)
        if (b->open[i]->next_poll_ms < next)
            next = b->open[i]->next_poll_ms;
    return next <= now ? 0 : (long)(next - now);
}

/* ---- queues ---- */

static queue_t *queue_for(sc_batcher_t *b, const char *model)
{
    for (size_t q = 0; q < b->nqueues; q++)
        if (strcmp(b->queues[q].model, model) == 0)
            return &b->queues[q];
    queue_t *nq = realloc(b->queues, (b->nqueues + 1) * sizeof *nq);
    if (!nq)
        return NULL;
    b->queues = nq;
    queue_t *q = &b->queues[b->nqueues++];
    memset(q, 0, sizeof *q);
    sc_strlcpy(q->model, model, sizeof q->model);
    return q;
}

sc_status_t sc_batcher_add(sc_batcher_t *b, sc_item_t *it)
{
    queue_t *q = queue_for(b, it->model);
    if (!q)
        return SC_ERR_NOMEM;
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        sc_item_t **ni = realloc(q->items, cap * sizeof *ni);
        if (!ni)
            return SC_ERR_NOMEM;
        q->items = ni;
        q->cap = cap;
    }
    if (q->n == 0)
        q->oldest_ms = sc_now_ms();
    it->state = SC_ITEM_FORWARD;
    q->items[q->n++] = it;
    return SC_OK;
}

/* ---- finishing items ---- */

static void finish(sc_batcher_t *b, sc_item_t *it, sc_status_t st, const char *why)
{
    it->state = SC_ITEM_DONE;
    it->error = st;
    if (st != SC_OK)
        sc_strlcpy(it->errmsg, why, sizeof it->errmsg);
    b->o.done(it, b->o.arg);
}

/* A failed item goes again with a later batch, until backfill.max_batch_retries; then its
 * error. A rejected request (4xx) is never resubmitted. */
static void fail_or_requeue(sc_batcher_t *b, sc_item_t *it, sc_status_t st, const char *why)
{
    if (st != SC_ERR_UPSTREAM_REJECTED &&
        it->retries < sc_config_int(b->o.cfg, "backfill.max_batch_retries")) {
        it->retries++;
        sc_gemini_call_free(it->call);
        it->call = NULL;
        it->batch = 0;
        if (sc_batcher_add(b, it) == SC_OK)
            return;
    }
    finish(b, it, st, why);
}

/* ---- creating ---- */

/* Sort items and keys together by key (for the lookup of results). */
static void sort_by_key(batch_t *bt)
{
    /* sort an index array (n is at most one batch), then permute keys and items by it */
    size_t *idx = malloc(bt->n * sizeof *idx);
    char (*k2)[SC_BATCHER_KEY_MAX] = malloc(bt->n * sizeof *k2);
    sc_item_t **i2 = malloc(bt->n * sizeof *i2);
    unsigned char *g2 = malloc(bt->n);
    if (!idx || !k2 || !i2 || !g2) {
        free(idx);
        free(k2);
        free(i2);
        free(g2);
        return; /* unsorted: find_item falls back to a scan */
    }
    for (size_t i = 0; i < bt->n; i++)
        idx[i] = i;
    /* shell sort on idx by key */
    for (size_t gap = bt->n / 2; gap > 0; gap /= 2)
        for (size_t i = gap; i < bt->n; i++)
            for (size_t j = i; j >= gap && strcmp(bt->keys[idx[j - gap]], bt->keys[idx[j]]) > 0;
                 j -= gap) {
                size_t t = idx[j];
                idx[j] = idx[j - gap];
                idx[j - gap] = t;
            }
    for (size_t i = 0; i < bt->n; i++) {
        memcpy(k2[i], bt->keys[idx[i]], SC_BATCHER_KEY_MAX);
        i2[i] = bt->items[idx[i]];
        g2[i] = bt->gone[idx[i]];
    }
    free(bt->keys);
    free(bt->items);
    free(bt->gone);
    bt->keys = k2;
    bt->items = i2;
    bt->gone = g2;
    free(idx);
}

/* The index of key in bt, or bt->n when absent. */
static size_t find_item(const batch_t *bt, const char *key)
{
    size_t lo = 0, hi = bt->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(bt->keys[mid], key);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = 0; i < bt->n; i++) /* in case the sort could not allocate */
        if (strcmp(bt->keys[i], key) == 0)
            return i;
    return bt->n;
}

static batch_t *batch_new(sc_batcher_t *b, const char *model, size_t cap)
{
    batch_t *bt = calloc(1, sizeof *bt);
    if (!bt)
        return NULL;
    bt->items = calloc(cap ? cap : 1, sizeof *bt->items);
    bt->keys = calloc(cap ? cap : 1, sizeof *bt->keys);
    bt->gone = calloc(cap ? cap : 1, 1);
    if (!bt->items || !bt->keys || !bt->gone) {
        batch_free(bt, 0);
        return NULL;
    }
    snprintf(bt->display, sizeof bt->display, "scrimp-%s-%u", b->o.run_id, ++b->seq);
    sc_strlcpy(bt->model, model, sizeof bt->model);
    bt->poll_ms = (long)sc_config_int(b->o.cfg, "backfill.poll_initial_ms");
    bt->next_poll_ms = sc_now_ms() + bt->poll_ms;
    return bt;
}

static int journal(sc_batcher_t *b, json_t *ev)
{
    if (!b->o.journal) {
        json_decref(ev);
        return 0;
    }
    return b->o.journal(ev, b->o.arg);
}

static sc_status_t add_open(sc_batcher_t *b, batch_t *bt)
{
    if (b->nopen == b->capopen) {
        size_t cap = b->capopen ? b->capopen * 2 : 16;
        batch_t **no = realloc(b->open, cap * sizeof *no);
        if (!no)
            return SC_ERR_NOMEM;
        b->open = no;
        b->capopen = cap;
    }
    b->open[b->nopen++] = bt;
    return SC_OK;
}

/* POST the batch: journal first; an unknown outcome is looked up by display name before any
 * second creation, so a batch is never created twice. */
static sc_status_t create(sc_batcher_t *b, batch_t *bt, char *errbuf, size_t errlen)
{
    sc_status_t st = SC_ERR_UPSTREAM_TRANSPORT;
    sc_batch_item_t *req = calloc(bt->n, sizeof *req);
    char **bodies = calloc(bt->n, sizeof *bodies);
    json_t *keys = json_array(); /* new, stolen by the journal event */
    if (!req || !bodies || !keys) {
        json_decref(keys);
        st = SC_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < bt->n; i++) {
        const sc_item_t *it = bt->items[i]; /* the pruned body when the optimizer made one */
        bodies[i] = it->body_plain ? strdup(it->body_plain)
                                   : sc_gemini_body_from_request(it->req, &req[i].body_len);
        if (bodies[i] && it->body_plain)
            req[i].body_len = strlen(bodies[i]);
        if (!bodies[i]) {
            json_decref(keys);
            st = SC_ERR_NOMEM;
            goto out;
        }
        req[i].key = bt->keys[i];
        req[i].body = bodies[i];
        json_array_append_new(keys, json_string(bt->keys[i]));
    }
    if (journal(b, json_pack("{s:s, s:s, s:s, s:o}", "ev", "creating", "display", bt->display,
                             "model", bt->model, "keys", keys)) != 0) {
        snprintf(errbuf, errlen, "cannot write the batch journal");
        st = SC_ERR_IO;
        goto out;
    }
    for (int attempt = 0; attempt < BATCHER_CREATE_ATTEMPTS; attempt++) {
        if (attempt > 0) {
            if (sc_batch_find(b->o.client, bt->display, bt->name, sizeof bt->name, errbuf,
                              errlen) == SC_OK) {
                st = SC_OK; /* the last creation did happen */
                break;
            }
            usleep((useconds_t)(BATCHER_CREATE_BACKOFF_MS * 1000) << (attempt - 1));
        }
        st = sc_batch_create(b->o.client, bt->model, bt->display, req, bt->n, bt->name,
                             sizeof bt->name, errbuf, errlen);
        if (st == SC_OK || st == SC_ERR_UPSTREAM_REJECTED || st == SC_ERR_NOT_FOUND)
            break;
        sc_warn("batch.create_retry", "display=%s attempt=%d err=\"%s\"", bt->display,
                attempt + 1, errbuf);
    }
    if (st == SC_OK) {
        b->created++;
        sc_info("batch.created", "name=%s display=%s model=%s requests=%zu", bt->name,
                bt->display, bt->model, bt->n);
        if (journal(b, json_pack("{s:s, s:s, s:s}", "ev", "created", "display", bt->display,
                                 "name", bt->name)) != 0) {
            snprintf(errbuf, errlen, "cannot write the batch journal");
            st = SC_ERR_IO;
        }
    }
out:
    for (size_t i = 0; bodies && i < bt->n; i++)
        free(bodies[i]);
    free(bodies);
    free(req);
    return st;
}

/* Take up to a batch's worth of q's items (in queue order) into a new batch. */
static batch_t *take(sc_batcher_t *b, queue_t *q)
{
    size_t max_req = (size_t)sc_config_int(b->o.cfg, "backfill.batch_max_requests");
    size_t max_bytes = (size_t)sc_config_int(b->o.cfg, "backfill.batch_max_bytes");
    size_t n = 0, bytes = BATCHER_ENVELOPE;
    while (n < q->n && n < max_req) {
        size_t add = q->items[n]->raw_len * 2 + BATCHER_BODY_SLACK; /* bounds its body */
        if (n > 0 && bytes + add > max_bytes)
            break;
        bytes += add;
        n++;
    }
    batch_t *bt = batch_new(b, q->model, n);
    if (!bt)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bt->items[i] = q->items[i];
        b->o.key(bt->items[i], bt->keys[i], SC_BATCHER_KEY_MAX);
    }
    bt->n = n;
    memmove(q->items, q->items + n, (q->n - n) * sizeof *q->items);
    q->n -= n;
    q->oldest_ms = sc_now_ms();
    sort_by_key(bt);
    return bt;
}

sc_status_t sc_batcher_flush(sc_batcher_t *b, int force, int64_t max_wait_ms, char *errbuf,
                             size_t errlen)
{
    size_t max_req = (size_t)sc_config_int(b->o.cfg, "backfill.batch_max_requests");
    for (size_t qi = 0; qi < b->nqueues; qi++) {
        queue_t *q = &b->queues[qi];
        while (q->n > 0 && (force || q->n >= max_req || sc_now_ms() - q->oldest_ms >= max_wait_ms)) {
            batch_t *bt = take(b, q);
            if (!bt)
                return SC_ERR_NOMEM;
            sc_status_t st = create(b, bt, errbuf, errlen);
            if (st == SC_ERR_UPSTREAM_REJECTED) { /* the whole request refused: per item */
                for (size_t i = 0; i < bt->n; i++)
                    finish(b, bt->items[i], st, errbuf);
                batch_free(bt, 0);
                continue;
            }
            if (st == SC_OK)
                st = add_open(b, bt);
            if (st) { /* journaled as "creating": a later run adopts it if it exists */
                batch_free(bt, 1);
                return st;
            }
        }
    }
    return SC_OK;
}

/* ---- polling ---- */

typedef struct {
    sc_batcher_t *b;
    batch_t *bt;
} result_ctx_t;

static void on_result(const char *key, sc_gemini_call_t *call, void *arg)
{
    result_ctx_t *ctx = arg;
    size_t at = find_item(ctx->bt, key);
    if (at == ctx->bt->n || ctx->bt->gone[at]) { /* unknown or repeated key */
        sc_gemini_call_free(call);
        return;
    }
    sc_item_t *it = ctx->bt->items[at];
    ctx->bt->gone[at] = 1; /* from here on it may be freed by whoever it is handed to */
    sc_gemini_call_free(it->call);
    it->call = call;
    it->batch = 1;
    if (call->status == SC_OK) {
        finish(ctx->b, it, SC_OK, NULL);
        return;
    }
    char why[BATCHER_WHY_MAX];
    snprintf(why, sizeof why, "in batch %s: %s %s", ctx->bt->name, call->err_status,
             call->err_message ? call->err_message : "");
    fail_or_requeue(ctx->b, it, call->status, why);
}

/* Poll one batch; returns 1 when it reached its end (its items all handed back or requeued). */
static int poll_one(sc_batcher_t *b, batch_t *bt, char *errbuf, size_t errlen)
{
    result_ctx_t ctx = {.b = b, .bt = bt};
    sc_status_t st = sc_batch_get(b->o.client, bt->name, &bt->status, on_result, &ctx, errbuf,
                                  errlen);
    long pmax = (long)sc_config_int(b->o.cfg, "backfill.poll_max_ms");
    bt->poll_ms = bt->poll_ms * 2 > pmax ? pmax : bt->poll_ms * 2;
    bt->next_poll_ms = sc_now_ms() + bt->poll_ms;
    if (st == SC_ERR_NOT_FOUND) { /* deleted behind our back: its items go again */
        bt->status.state = SC_BATCH_FAILED;
        bt->status.done = 1;
        snprintf(bt->status.error, sizeof bt->status.error, "batch not found");
    } else if (st) {
        sc_warn("batch.poll", "name=%s err=\"%s\"", bt->name, errbuf);
        return 0; /* transient: poll again later */
    }
    if (!bt->status.done && !sc_batch_state_terminal(bt->status.state))
        return 0;
    /* Items without a result (a FAILED / EXPIRED / CANCELLED batch, or a key the output left
     * out) failed with the whole batch: requeued or reported. */
    char why[BATCHER_WHY_MAX];
    snprintf(why, sizeof why, "batch %s ended %s%s%s", bt->name,
             sc_batch_state_name(bt->status.state), bt->status.error[0] ? ": " : "",
             bt->status.error);
    if (bt->status.state != SC_BATCH_SUCCEEDED)
        sc_warn("batch.failed", "%s", why);
    for (size_t k = 0; k < bt->n; k++)
        if (!bt->gone[k]) {
            bt->gone[k] = 1;
            fail_or_requeue(b, bt->items[k], SC_ERR_UPSTREAM_RETRYABLE, why);
        }
    journal(b, json_pack("{s:s, s:s, s:s, s:s}", "ev", "finished", "display", bt->display, "name",
                         bt->name, "state", sc_batch_state_name(bt->status.state)));
    return 1;
}

sc_status_t sc_batcher_poll(sc_batcher_t *b, char *errbuf, size_t errlen)
{
    int64_t now = sc_now_ms();
    size_t i = 0;
    while (i < b->nopen) {
        batch_t *bt = b->open[i];
        if (bt->next_poll_ms > now || !poll_one(b, bt, errbuf, errlen)) {
            i++;
            continue;
        }
        b->open[i] = b->open[--b->nopen];
        batch_free(bt, 0); /* its items were handed back or requeued */
    }
    return SC_OK;
}

/* Items taken into open batch bt (adopted by name a second time): appended, then sorted again. */
static sc_status_t batch_append(sc_batcher_t *b, batch_t *bt, sc_item_t **items, size_t n)
{
    size_t total = bt->n + n;
    sc_item_t **ni = realloc(bt->items, total * sizeof *ni);
    if (ni)
        bt->items = ni;
    char (*nk)[SC_BATCHER_KEY_MAX] = ni ? realloc(bt->keys, total * sizeof *nk) : NULL;
    if (nk)
        bt->keys = nk;
    unsigned char *ng = nk ? realloc(bt->gone, total) : NULL;
    if (!ng)
        return SC_ERR_NOMEM;
    bt->gone = ng;
    for (size_t i = 0; i < n; i++) {
        items[i]->state = SC_ITEM_FORWARD;
        bt->items[bt->n + i] = items[i];
        b->o.key(items[i], bt->keys[bt->n + i], SC_BATCHER_KEY_MAX);
        bt->gone[bt->n + i] = 0;
    }
    bt->n = total;
    sort_by_key(bt);
    bt->next_poll_ms = sc_now_ms();
    return SC_OK;
}

sc_status_t sc_batcher_adopt(sc_batcher_t *b, const char *display, const char *name,
                             const char *model, sc_item_t **items, size_t n)
{
    for (size_t i = 0; i < b->nopen; i++)
        if (strcmp(b->open[i]->name, name) == 0) {
            sc_info("batch.adopt", "name=%s display=%s requests=%zu (joined)", name, display, n);
            return batch_append(b, b->open[i], items, n);
        }
    batch_t *bt = batch_new(b, model, n);
    if (!bt)
        return SC_ERR_NOMEM;
    sc_strlcpy(bt->display, display, sizeof bt->display);
    sc_strlcpy(bt->name, name, sizeof bt->name);
    for (size_t i = 0; i < n; i++) {
        items[i]->state = SC_ITEM_FORWARD;
        bt->items[i] = items[i];
        b->o.key(items[i], bt->keys[i], SC_BATCHER_KEY_MAX);
    }
    bt->n = n;
    sort_by_key(bt);
    bt->next_poll_ms = sc_now_ms(); /* at once: it may have finished long ago */
    sc_info("batch.adopt", "name=%s display=%s requests=%zu", name, display, n);
    sc_status_t st = add_open(b, bt);
    if (st)
        batch_free(bt, 0);
    return st;
}
