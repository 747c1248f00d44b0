/* backfill.c - the offline driver: the stages of the online path over a JSONL file, forwarded as
 * concurrent online calls or through Gemini Batch Mode; one output line per input line, journaled
 * so that a run killed at any point resumes without submitting a batch twice. Read top to bottom:
 * output and journal, reading windows of input, online forwarding, batch forwarding, resume, run. */
#include "pipelines/backfill.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "host/gemini.h"
#include "host/gemini_batch.h"
#include "host/log.h"
#include "host/util.h"
#include "pipelines/cli.h"
#include "pipelines/pipeline.h"

#define BF_WINDOW_ONLINE_MIN 1024   /* input lines read at once in online mode (at least) */
#define BF_WINDOW_BATCHES 8         /* batch mode: a window holds this many full batches */
#define BF_POLL_TICK_MS 100         /* how often a wait looks at the run flag */
#define BF_CREATE_ATTEMPTS 4        /* creations of one batch whose outcome stays unknown */
#define BF_KEY_MAX 32
#define BF_PATH_MAX 4096
#define BF_LINE_HEAD_MAX 64
#define BF_ERR_MAX 2048
#define BF_HTTP_TIMEOUT_MS 120000

/* ---- the run ---- */

typedef struct {
    char display[96];
    char name[SC_BATCH_NAME_MAX];
    char model[SC_MODEL_MAX];
    sc_item_t **items; /* borrowed from the window; sorted by line */
    size_t n;
    sc_batch_status_t status;
    int64_t next_poll_ms;
    long poll_ms;
    int finished;
} bf_batch_t;

typedef struct {
    const sc_config_t *cfg;
    const sc_backfill_opts_t *opts;
    volatile sig_atomic_t *running;
    sc_limits_t lim;
    char state_path[BF_PATH_MAX];
    FILE *in;
    int out_fd, state_fd;
    long long n_lines;       /* lines in the input */
    unsigned char *done;     /* per line (1-based): has its output line */
    unsigned char *retries;  /* per line: batch resubmissions so far */
    long long n_done, n_ok, n_err, n_malformed, n_resumed, n_batches;
    double cost, baseline, saved_batch;
    int64_t t0, next_progress;
    int tty;
    char run_id[17];
    unsigned batch_seq;
    sc_gemini_t *gemini;     /* online mode */
    sc_batch_client_t *bc;   /* batch mode */
    int interrupted;
} bf_t;

static int bf_stop(bf_t *b)
{
    return !*b->running;
}

/* ---- output and journal ---- */

static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

static void progress(bf_t *b, int final)
{
    int64_t now = sc_now_ms();
    if (!final && now < b->next_progress)
        return;
    b->next_progress = now + sc_config_int(b->cfg, "backfill.progress_every_ms");
    double secs = (double)(now - b->t0) / 1000.0;
    long long fresh = b->n_done - b->n_resumed;
    double rate = secs > 0 ? (double)fresh / secs : 0;
    double eta = rate > 0 ? (double)(b->n_lines - b->n_done) / rate : 0;
    double pct = b->n_lines ? 100.0 * (double)b->n_done / (double)b->n_lines : 100.0;
    if (b->tty) {
        char bar[31];
        int fill = (int)(pct * 30 / 100);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %lld/%lld  cost $%.4f  %.0f req/s  ETA %dm%02ds ", bar, b->n_done,
                b->n_lines, b->cost, rate, (int)eta / 60, (int)eta % 60);
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "backfill: %lld/%lld lines (%.1f%%), ok %lld, errors %lld, cost $%.6f, "
                        "%.0f req/s, ETA %ds\n", b->n_done, b->n_lines, pct, b->n_ok,
                b->n_err + b->n_malformed, b->cost, rate, (int)eta);
    }
    fflush(stderr);
}

/* Write line's output: {"line":N, <rest of obj>}. obj is a JSON object text. Once per line. */
static int emit(bf_t *b, long long line, const char *obj, size_t len)
{
    char head[BF_LINE_HEAD_MAX];
    if (line < 1 || line > b->n_lines || b->done[line] || len < 2 || obj[0] != '{')
        return 0;
    int hl = snprintf(head, sizeof head, "{\"line\":%lld%s", line, len > 2 ? "," : "");
    char *buf = malloc((size_t)hl + len);
    if (!buf)
        return -1;
    memcpy(buf, head, (size_t)hl);
    memcpy(buf + hl, obj + 1, len - 1); /* the object without its '{' */
    buf[(size_t)hl + len - 1] = '\n';
    int rc = write_all(b->out_fd, buf, (size_t)hl + len); /* one write: no torn lines on a crash */
    free(buf);
    if (rc)
        return -1;
    b->done[line] = 1;
    b->n_done++;
    progress(b, 0);
    return 0;
}

static int emit_item(bf_t *b, sc_item_t *it)
{
    size_t len = 0;
    char *json;
    if (it->state == SC_ITEM_INVALID) {
        sc_result_t r;
        sc_result_init(&r);
        r.id = it->id[0] ? it->id : NULL;
        r.error_code = sc_status_code(it->error);
        r.error_message = it->errmsg;
        json = sc_result_to_json(&r, &len);
        b->n_malformed++;
    } else {
        json = sc_stage_ledger(it, b->cfg, &len);
        json_t *r = json ? json_loadb(json, len, 0, NULL) : NULL; /* new: read the ledger back */
        int ok = r && strcmp(json_string_value(json_object_get(r, "status")), "ok") == 0;
        ok ? b->n_ok++ : b->n_err++;
        b->cost += json_number_value(json_object_get(r, "cost_usd"));
        b->baseline += json_number_value(json_object_get(r, "baseline_cost_usd"));
        b->saved_batch +=
            json_number_value(json_object_get(json_object_get(r, "savings"), "batch_usd"));
        json_decref(r);
    }
    if (!json)
        return -1;
    int rc = emit(b, (long long)it->offset, json, len);
    free(json);
    return rc;
}

static int journal(bf_t *b, json_t *ev /* stolen */)
{
    char *s = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    if (!s)
        return -1;
    size_t len = strlen(s);
    s[len] = '\n';
    int rc = write_all(b->state_fd, s, len + 1);
    free(s);
    /* Durable before the next step: the output first (results it refers to), then the journal. */
    if (rc == 0)
        rc = fdatasync(b->out_fd) | fdatasync(b->state_fd);
    return rc;
}

/* ---- reading the input ---- */

static long long count_lines(FILE *f)
{
    char buf[1 << 16];
    long long n = 0;
    size_t r, last = '\n';
    rewind(f);
    while ((r = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < r; i++)
            n += buf[i] == '\n';
        last = (unsigned char)buf[r - 1];
    }
    if (last != '\n')
        n++; /* a last line without its newline */
    rewind(f);
    return n;
}

/* An item for input line `line` (text without the newline). */
static sc_item_t *item_for(const char *text, size_t len, long long line)
{
    sc_item_t *it = calloc(1, sizeof *it);
    if (!it || !(it->raw = malloc(len ? len : 1))) {
        free(it);
        return NULL;
    }
    memcpy(it->raw, text, len);
    it->raw_len = len;
    it->partition = -1;
    it->offset = line;
    it->consumed_ms = sc_now_ms();
    return it;
}

/*
 * Read the next lines of the input into batch (at most max items), skipping lines that already
 * have output, or, with `only`, lines not marked in only. *line is the last line number read.
 * Returns how many were read; 0 at the end.
 */
static size_t read_window(bf_t *b, sc_batch_t *batch, size_t max, long long *line,
                          const unsigned char *only)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    batch->n = 0;
    while (batch->n < max && (len = getline(&buf, &cap, b->in)) >= 0) {
        (*line)++;
        if (len > 0 && buf[len - 1] == '\n')
            len--;
        if (*line > b->n_lines || b->done[*line] || (only && !only[*line]))
            continue;
        sc_item_t *it = item_for(buf, (size_t)len, *line);
        if (!it)
            break;
        if (len == 0) { /* an empty line is malformed too, and says so */
            it->state = SC_ITEM_INVALID;
            it->error = SC_ERR_JSON;
            sc_strlcpy(it->errmsg, "empty line", sizeof it->errmsg);
        }
        batch->items[batch->n++] = it;
    }
    free(buf);
    return batch->n;
}

/* Parse and route (the same stages as online); malformed lines are written out at once. */
static int stages(bf_t *b, sc_batch_t *batch)
{
    sc_stage_parse(batch, &b->lim);
    sc_stage_route(batch, b->cfg);
    for (size_t i = 0; i < batch->n; i++)
        if (batch->items[i]->state == SC_ITEM_INVALID && emit_item(b, batch->items[i]) != 0)
            return -1;
    return 0;
}

/* ---- online forwarding: concurrent calls on one curl multi loop ---- */

static void online_done(sc_gemini_call_t *call, void *arg)
{
    bf_t *b = arg;
    sc_item_t *it = call->opaque;
    it->state = SC_ITEM_DONE;
    it->error = call->status;
    if (call->status != SC_OK)
        snprintf(it->errmsg, sizeof it->errmsg, "%s%s%s", sc_strerror(call->status),
                 call->err_message ? ": " : "", call->err_message ? call->err_message : "");
    if (emit_item(b, it) != 0)
        sc_error("backfill.write", "line=%lld: %s", (long long)it->offset, strerror(errno));
}

static int forward_online(bf_t *b, sc_batch_t *batch)
{
    size_t next = 0;
    int64_t deadline_ms = sc_config_int(b->cfg, "request.default_deadline_ms");
    while (next < batch->n || sc_gemini_inflight(b->gemini) > 0) {
        while (next < batch->n && !bf_stop(b)) {
            sc_item_t *it = batch->items[next];
            if (it->state != SC_ITEM_FORWARD) {
                next++;
                continue;
            }
            if (!it->call) {
                size_t len;
                char *body = sc_gemini_body_from_request(it->req, &len);
                if (!body || !(it->call = sc_gemini_call_new(it->model, body, len)))
                    return -1;
                int64_t budget = it->req->deadline_ms > 0 ? it->req->deadline_ms : deadline_ms;
                it->call->deadline_ms = sc_now_ms() + budget;
                it->call->est_tokens = (long)(len / SC_CHARS_PER_TOKEN);
                it->call->opaque = it;
            }
            if (sc_gemini_submit(b->gemini, it->call) == SC_ERR_FULL)
                break;
            next++;
        }
        if (bf_stop(b) && next < batch->n) {
            b->interrupted = 1;
            next = batch->n; /* submit nothing more; drain what runs */
        }
        if (sc_gemini_inflight(b->gemini) > 0)
            sc_gemini_poll(b->gemini, BF_POLL_TICK_MS, online_done, b);
    }
    return 0;
}

/* ---- batch forwarding: inline batches, journaled before polling ---- */

static int cmp_item_line(const void *a, const void *c)
{
    const sc_item_t *x = *(sc_item_t *const *)a, *y = *(sc_item_t *const *)c;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static sc_item_t *find_item(bf_batch_t *bt, const char *key)
{
    if (key[0] != 'L')
        return NULL;
    long long line = strtoll(key + 1, NULL, 10);
    size_t lo = 0, hi = bt->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (bt->items[mid]->offset < line)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < bt->n && bt->items[lo]->offset == line ? bt->items[lo] : NULL;
}

typedef struct {
    bf_t *b;
    bf_batch_t *bt;
    sc_item_t **retry; /* items to resubmit */
    size_t *n_retry;
} bf_result_ctx_t;

/* A failed line goes again in a later batch, until backfill.max_batch_retries; then its error. */
static void fail_or_retry(bf_t *b, sc_item_t *it, sc_status_t st, const char *why,
                          sc_item_t **retry, size_t *n_retry)
{
    if (st != SC_ERR_UPSTREAM_REJECTED &&
        b->retries[it->offset] < sc_config_int(b->cfg, "backfill.max_batch_retries")) {
        b->retries[it->offset]++;
        sc_gemini_call_free(it->call);
        it->call = NULL;
        it->batch = 0;
        it->state = SC_ITEM_NEW; /* queued for a later batch */
        retry[(*n_retry)++] = it;
        return;
    }
    it->state = SC_ITEM_DONE;
    it->error = st;
    sc_strlcpy(it->errmsg, why, sizeof it->errmsg);
    emit_item(b, it);
}

static void batch_result(const char *key, sc_gemini_call_t *call, void *arg)
{
    bf_result_ctx_t *ctx = arg;
    sc_item_t *it = find_item(ctx->bt, key);
    if (!it || it->state != SC_ITEM_FORWARD || ctx->b->done[it->offset]) {
        sc_gemini_call_free(call);
        return;
    }
    sc_gemini_call_free(it->call);
    it->call = call;
    it->batch = 1;
    if (call->status == SC_OK) {
        it->state = SC_ITEM_DONE;
        it->error = SC_OK;
        emit_item(ctx->b, it);
        return;
    }
    char why[BF_ERR_MAX];
    snprintf(why, sizeof why, "in batch %s: %s %s", ctx->bt->name, call->err_status,
             call->err_message ? call->err_message : "");
    fail_or_retry(ctx->b, it, call->status, why, ctx->retry, ctx->n_retry);
}

static json_t *lines_json(const bf_batch_t *bt)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < bt->n; i++)
        json_array_append_new(a, json_integer(bt->items[i]->offset));
    return a;
}

/* Create bt on the server: journal first, then POST; an unknown outcome is looked up by display
 * name before any second creation. */
static sc_status_t create_batch(bf_t *b, bf_batch_t *bt, char *errbuf, size_t errlen)
{
    sc_status_t st = SC_ERR_UPSTREAM_TRANSPORT;
    sc_batch_item_t *req = calloc(bt->n, sizeof *req);
    char (*keys)[BF_KEY_MAX] = calloc(bt->n, sizeof *keys);
    char **bodies = calloc(bt->n, sizeof *bodies);
    if (!req || !keys || !bodies) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < bt->n; i++) {
        snprintf(keys[i], BF_KEY_MAX, "L%lld", (long long)bt->items[i]->offset);
        bodies[i] = sc_gemini_body_from_request(bt->items[i]->req, &req[i].body_len);
        if (!bodies[i]) {
            st = SC_ERR_NOMEM;
            goto out;
        }
        req[i].key = keys[i];
        req[i].body = bodies[i];
    }
    if (journal(b, json_pack("{s:s, s:s, s:s, s:o}", "ev", "creating", "display", bt->display,
                             "model", bt->model, "lines", lines_json(bt))) != 0) {
        snprintf(errbuf, errlen, "%s: cannot write the journal: %s", b->state_path,
                 strerror(errno));
        st = SC_ERR_IO;
        goto out;
    }
    for (int attempt = 0; attempt < BF_CREATE_ATTEMPTS; attempt++) {
        if (attempt > 0) {
            /* The last creation may have happened: never create twice. */
            if (sc_batch_find(b->bc, bt->display, bt->name, sizeof bt->name, errbuf, errlen) ==
                SC_OK) {
                st = SC_OK;
                break;
            }
            usleep((useconds_t)(1000 * 1000) << attempt);
        }
        st = sc_batch_create(b->bc, bt->model, bt->display, req, bt->n, bt->name,
                             sizeof bt->name, errbuf, errlen);
        if (st == SC_OK || st == SC_ERR_UPSTREAM_REJECTED || st == SC_ERR_NOT_FOUND)
            break;
        sc_warn("backfill.create_retry", "display=%s attempt=%d err=\"%s\"", bt->display,
                attempt + 1, errbuf);
    }
    if (st == SC_OK) {
        b->n_batches++;
        sc_info("backfill.batch", "name=%s display=%s model=%s requests=%zu", bt->name,
                bt->display, bt->model, bt->n);
        if (journal(b, json_pack("{s:s, s:s, s:s}", "ev", "created", "display", bt->display,
                                 "name", bt->name)) != 0) {
            snprintf(errbuf, errlen, "%s: cannot write the journal", b->state_path);
            st = SC_ERR_IO;
        }
    }
out:
    for (size_t i = 0; bodies && i < bt->n; i++)
        free(bodies[i]);
    free(bodies);
    free(keys);
    free(req);
    return st;
}

/* Poll every batch until each is terminal, writing results as they come. Failed lines collect in
 * retry. SC_ERR_CLOSED when interrupted (the batches stay journaled for --resume). */
static sc_status_t poll_batches(bf_t *b, bf_batch_t *bts, size_t nb, sc_item_t **retry,
                                size_t *n_retry, char *errbuf, size_t errlen)
{
    size_t open = 0;
    for (size_t i = 0; i < nb; i++)
        open += !bts[i].finished;
    while (open > 0) {
        if (bf_stop(b)) {
            b->interrupted = 1;
            return SC_ERR_CLOSED;
        }
        int64_t now = sc_now_ms(), wake = now + BF_POLL_TICK_MS;
        for (size_t i = 0; i < nb; i++) {
            bf_batch_t *bt = &bts[i];
            if (bt->finished)
                continue;
            if (bt->next_poll_ms > now) {
                wake = bt->next_poll_ms < wake ? bt->next_poll_ms : wake;
                continue;
            }
            bf_result_ctx_t ctx = {.b = b, .bt = bt, .retry = retry, .n_retry = n_retry};
            sc_status_t st = sc_batch_get(b->bc, bt->name, &bt->status, batch_result, &ctx,
                                          errbuf, errlen);
            long pmax = (long)sc_config_int(b->cfg, "backfill.poll_max_ms");
            bt->poll_ms = bt->poll_ms * 2 > pmax ? pmax : bt->poll_ms * 2;
            bt->next_poll_ms = sc_now_ms() + bt->poll_ms;
            if (st == SC_ERR_NOT_FOUND) { /* deleted behind our back: its lines go again */
                bt->status.state = SC_BATCH_FAILED;
                bt->status.done = 1;
                snprintf(bt->status.error, sizeof bt->status.error, "batch not found");
            } else if (st) {
                sc_warn("backfill.poll", "name=%s err=\"%s\"", bt->name, errbuf);
                continue; /* transient: poll again later */
            }
            if (!bt->status.done && !sc_batch_state_terminal(bt->status.state))
                continue;
            /* Terminal. Lines without a result (a FAILED/EXPIRED/CANCELLED batch, or a key the
             * output left out) are failures of the whole batch: retried or reported. */
            char why[BF_ERR_MAX];
            snprintf(why, sizeof why, "batch %s ended %s%s%s", bt->name,
                     sc_batch_state_name(bt->status.state), bt->status.error[0] ? ": " : "",
                     bt->status.error);
            for (size_t k = 0; k < bt->n; k++) /* FORWARD: no result was seen for it */
                if (bt->items[k]->state == SC_ITEM_FORWARD && !b->done[bt->items[k]->offset])
                    fail_or_retry(b, bt->items[k], SC_ERR_UPSTREAM_RETRYABLE, why, retry, n_retry);
            if (journal(b, json_pack("{s:s, s:s, s:s, s:s}", "ev", "finished", "display",
                                     bt->display, "name", bt->name, "state",
                                     sc_batch_state_name(bt->status.state))) != 0) {
                snprintf(errbuf, errlen, "%s: cannot write the journal", b->state_path);
                return SC_ERR_IO;
            }
            if (bt->status.state != SC_BATCH_SUCCEEDED)
                sc_warn("backfill.batch_failed", "%s", why);
            bt->finished = 1;
            open--;
        }
        int64_t sleep_ms = wake - sc_now_ms();
        if (open > 0 && sleep_ms > 0)
            usleep((useconds_t)(sleep_ms < BF_POLL_TICK_MS ? sleep_ms : BF_POLL_TICK_MS) * 1000);
    }
    return SC_OK;
}

static void batch_init(bf_t *b, bf_batch_t *bt, const char *model)
{
    memset(bt, 0, sizeof *bt);
    snprintf(bt->display, sizeof bt->display, "scrimp-%s-%u", b->run_id, ++b->batch_seq);
    sc_strlcpy(bt->model, model, sizeof bt->model);
    bt->poll_ms = (long)sc_config_int(b->cfg, "backfill.poll_initial_ms");
    bt->next_poll_ms = sc_now_ms() + bt->poll_ms;
}

/* Group the FORWARD items by model into batches within the count and size limits, create them,
 * poll them; resubmit failed lines in new batches until none is left. */
static sc_status_t forward_batch(bf_t *b, sc_item_t **items, size_t n, char *errbuf,
                                 size_t errlen)
{
    size_t max_req = (size_t)sc_config_int(b->cfg, "backfill.batch_max_requests");
    size_t max_bytes = (size_t)sc_config_int(b->cfg, "backfill.batch_max_bytes");
    sc_item_t **todo = malloc((n ? n : 1) * sizeof *todo);
    sc_item_t **retry = malloc((n ? n : 1) * sizeof *retry);
    bf_batch_t *bts = calloc(n ? n : 1, sizeof *bts);
    size_t ntodo = 0, nretry = 0;
    sc_status_t st = SC_OK;
    if (!todo || !retry || !bts) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (items[i]->state == SC_ITEM_FORWARD)
            todo[ntodo++] = items[i];
    while (ntodo > 0 && !st) {
        qsort(todo, ntodo, sizeof *todo, cmp_item_line);
        size_t nb = 0;
        /* one pass per model, items kept in line order within a batch */
        for (size_t i = 0; i < ntodo; i++) {
            if (!todo[i])
                continue;
            const char *model = todo[i]->model;
            bf_batch_t *bt = &bts[nb++];
            batch_init(b, bt, model);
            bt->items = malloc(ntodo * sizeof *bt->items);
            if (!bt->items) {
                st = SC_ERR_NOMEM;
                goto out;
            }
            size_t bytes = 256;
            for (size_t j = i; j < ntodo; j++) {
                if (!todo[j] || strcmp(todo[j]->model, model) != 0)
                    continue;
                size_t add = todo[j]->raw_len * 2 + 128; /* a generous bound on its body */
                if (bt->n == max_req || (bt->n > 0 && bytes + add > max_bytes))
                    break;
                bt->items[bt->n++] = todo[j];
                bytes += add;
                todo[j] = NULL;
            }
        }
        for (size_t k = 0; k < nb && !st; k++) {
            if (bf_stop(b)) {
                b->interrupted = 1;
                st = SC_ERR_CLOSED;
                break;
            }
            st = create_batch(b, &bts[k], errbuf, errlen);
            if (st == SC_ERR_UPSTREAM_REJECTED) { /* the whole request refused: say so per line */
                for (size_t j = 0; j < bts[k].n; j++)
                    fail_or_retry(b, bts[k].items[j], st, errbuf, retry, &nretry);
                bts[k].finished = 1;
                st = SC_OK;
            }
        }
        if (!st)
            st = poll_batches(b, bts, nb, retry, &nretry, errbuf, errlen);
        for (size_t k = 0; k < nb; k++)
            free(bts[k].items);
        memset(bts, 0, nb * sizeof *bts);
        memcpy(todo, retry, nretry * sizeof *todo);
        ntodo = nretry;
        nretry = 0;
        for (size_t i = 0; i < ntodo; i++)
            todo[i]->state = SC_ITEM_FORWARD;
    }
out:
    free(todo);
    free(retry);
    free(bts);
    return st;
}

/* ---- resume ---- */

/* Mark the lines OUT already has; cut a last line torn by a crash. */
static sc_status_t read_output(bf_t *b, char *errbuf, size_t errlen)
{
    FILE *f = fopen(b->opts->out_path, "r");
    if (!f)
        return errno == ENOENT ? SC_OK : SC_ERR_IO;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    off_t good = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n')
            break; /* torn: dropped below */
        json_t *r = json_loadb(line, (size_t)len, 0, NULL); /* new */
        json_int_t n = json_integer_value(json_object_get(r, "line"));
        json_decref(r);
        if (n < 1 || n > b->n_lines) {
            snprintf(errbuf, errlen, "%s: line %lld is not an output of this input",
                     b->opts->out_path, (long long)(good ? n : 0));
            free(line);
            fclose(f);
            return SC_ERR_INVALID;
        }
        if (!b->done[n]) {
            b->done[n] = 1;
            b->n_done++;
            b->n_resumed++;
        }
        good += len;
    }
    free(line);
    fclose(f);
    if (truncate(b->opts->out_path, good) != 0)
        return SC_ERR_IO;
    return SC_OK;
}

/* Batches the journal says were created (or may have been) and did not finish: poll them to the
 * end instead of creating them again. */
static sc_status_t adopt_batches(bf_t *b, char *errbuf, size_t errlen)
{
    FILE *f = fopen(b->state_path, "r");
    if (!f)
        return SC_OK;
    json_t *open = json_object(); /* display -> {model, lines, name?}; new */
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        json_t *ev = json_loadb(line, (size_t)len, 0, NULL); /* new; a torn last line: NULL */
        const char *kind = json_string_value(json_object_get(ev, "ev"));
        const char *display = json_string_value(json_object_get(ev, "display"));
        if (kind && display && strcmp(kind, "creating") == 0)
            json_object_set(open, display, ev);
        else if (kind && display && strcmp(kind, "created") == 0 && json_object_get(open, display))
            json_object_set(json_object_get(open, display), "name", json_object_get(ev, "name"));
        else if (kind && display && strcmp(kind, "finished") == 0)
            json_object_del(open, display);
        json_decref(ev);
    }
    free(line);
    fclose(f);

    sc_status_t st = SC_OK;
    const char *display;
    json_t *ent;
    json_object_foreach(open, display, ent) {
        char name[SC_BATCH_NAME_MAX] = "";
        const char *known = json_string_value(json_object_get(ent, "name"));
        if (known)
            sc_strlcpy(name, known, sizeof name);
        else if (sc_batch_find(b->bc, display, name, sizeof name, errbuf, errlen) != SC_OK)
            continue; /* never created: its lines are simply submitted again */
        /* The batch's lines that have no output yet: read them back from the input. */
        unsigned char *only = calloc((size_t)b->n_lines + 1, 1);
        size_t i, want = 0;
        json_t *l;
        json_array_foreach(json_object_get(ent, "lines"), i, l) {
            json_int_t n = json_integer_value(l);
            if (only && n >= 1 && n <= b->n_lines && !b->done[n]) {
                only[n] = 1;
                want++;
            }
        }
        sc_batch_t batch = {.items = want ? calloc(want, sizeof(sc_item_t *)) : NULL};
        long long at = 0;
        rewind(b->in);
        if (only && want && batch.items) {
            read_window(b, &batch, want, &at, only);
            stages(b, &batch);
            bf_batch_t bt;
            batch_init(b, &bt, json_string_value(json_object_get(ent, "model")));
            sc_strlcpy(bt.display, display, sizeof bt.display);
            sc_strlcpy(bt.name, name, sizeof bt.name);
            bt.items = batch.items;
            bt.n = batch.n;
            qsort(bt.items, bt.n, sizeof *bt.items, cmp_item_line);
            sc_info("backfill.adopt", "name=%s display=%s lines=%zu", name, display, bt.n);
            sc_item_t **retry = calloc(bt.n ? bt.n : 1, sizeof *retry);
            size_t nretry = 0;
            st = retry ? poll_batches(b, &bt, 1, retry, &nretry, errbuf, errlen) : SC_ERR_NOMEM;
            for (size_t k = 0; k < nretry; k++)
                retry[k]->state = SC_ITEM_FORWARD;
            if (!st && nretry) /* its failed lines go out in fresh batches */
                st = forward_batch(b, retry, nretry, errbuf, errlen);
            free(retry);
        } else if (!want) {
            journal(b, json_pack("{s:s, s:s, s:s, s:s}", "ev", "finished", "display", display,
                                 "name", name, "state", "ADOPTED_EMPTY"));
        }
        for (size_t k = 0; k < batch.n; k++)
            sc_item_free(batch.items[k]);
        free(batch.items);
        free(only);
        if (st)
            break;
    }
    json_decref(open);
    rewind(b->in);
    return st;
}

/* ---- the run ---- */

static void summary(bf_t *b)
{
    double secs = (double)(sc_now_ms() - b->t0) / 1000.0;
    long long fresh = b->n_done - b->n_resumed;
    printf("\n| backfill | %s |\n|---|---:|\n", b->opts->batch_mode ? "batch mode" : "online mode");
    printf("| input lines | %lld |\n| output lines written now | %lld |\n", b->n_lines, fresh);
    printf("| already done (resumed) | %lld |\n", b->n_resumed);
    printf("| ok | %lld |\n| errors | %lld |\n| malformed lines | %lld |\n", b->n_ok, b->n_err,
           b->n_malformed);
    if (b->opts->batch_mode)
        printf("| batches created | %lld |\n", b->n_batches);
    printf("| cost (USD) | %.6f |\n| baseline (USD) | %.6f |\n", b->cost, b->baseline);
    printf("| saved by Batch Mode (USD) | %.6f |\n", b->saved_batch);
    printf("| elapsed | %.1f s |\n| throughput | %.0f lines/s |\n", secs,
           secs > 0 ? (double)fresh / secs : 0.0);
}

static sc_status_t open_files(bf_t *b, char *errbuf, size_t errlen)
{
    struct stat sb;
    b->in = fopen(b->opts->in_path, "r");
    if (!b->in) {
        snprintf(errbuf, errlen, "%s: %s", b->opts->in_path, strerror(errno));
        return SC_ERR_IO;
    }
    snprintf(b->state_path, sizeof b->state_path, "%s.state", b->opts->out_path);
    if (!b->opts->resume && (stat(b->opts->out_path, &sb) == 0 || stat(b->state_path, &sb) == 0)) {
        snprintf(errbuf, errlen, "%s (or its .state) exists: pass --resume to continue that run, "
                 "or remove it", b->opts->out_path);
        return SC_ERR_INVALID;
    }
    b->n_lines = count_lines(b->in);
    b->done = calloc((size_t)b->n_lines + 2, 1);
    b->retries = calloc((size_t)b->n_lines + 2, 1);
    if (!b->done || !b->retries)
        return SC_ERR_NOMEM;
    if (b->opts->resume) {
        sc_status_t st = read_output(b, errbuf, errlen);
        if (st)
            return st;
    }
    b->out_fd = open(b->opts->out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    b->state_fd = open(b->state_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (b->out_fd < 0 || b->state_fd < 0) {
        snprintf(errbuf, errlen, "%s: %s", b->out_fd < 0 ? b->opts->out_path : b->state_path,
                 strerror(errno));
        return SC_ERR_IO;
    }
    return SC_OK;
}

static sc_status_t make_clients(bf_t *b, char *errbuf, size_t errlen)
{
    const sc_config_t *cfg = b->cfg;
    const char *url = sc_config_str(cfg, "gemini.base_url");
    const char *key = sc_config_str(cfg, "gemini.api_key");
    if (!key[0]) {
        snprintf(errbuf, errlen, "GEMINI_API_KEY is not set");
        return SC_ERR_CONFIG;
    }
    if (b->opts->batch_mode)
        return sc_batch_client_new(url, key, BF_HTTP_TIMEOUT_MS, &b->bc, errbuf, errlen);
    return sc_upstream_from_config(cfg, &b->gemini, errbuf, errlen);
}

sc_status_t sc_backfill_run(const sc_config_t *cfg, const sc_backfill_opts_t *opts,
                            volatile sig_atomic_t *running, char *errbuf, size_t errlen)
{
    bf_t b = {.cfg = cfg, .opts = opts, .running = running, .out_fd = -1, .state_fd = -1};
    sc_batch_t batch = {0};
    sc_status_t st;
    sc_limits_from_config(cfg, &b.lim);
    b.t0 = sc_now_ms();
    b.tty = isatty(STDERR_FILENO);
    snprintf(b.run_id, sizeof b.run_id, "%08x%08x", (unsigned)getpid(),
             (unsigned)(sc_wall_ms() & 0xffffffffu));
    if ((st = open_files(&b, errbuf, errlen)) || (st = make_clients(&b, errbuf, errlen)))
        goto out;
    journal(&b, json_pack("{s:s, s:s, s:s, s:s, s:I}", "ev", "run", "run", b.run_id, "input",
                          opts->in_path, "mode", opts->batch_mode ? "batch" : "online", "lines",
                          (json_int_t)b.n_lines));
    sc_info("backfill.start", "input=%s lines=%lld already_done=%lld mode=%s upstream=%s",
            opts->in_path, b.n_lines, b.n_resumed, opts->batch_mode ? "batch" : "online",
            sc_config_str(cfg, "gemini.base_url"));
    if (opts->batch_mode && (st = adopt_batches(&b, errbuf, errlen)))
        goto out;

    size_t window = opts->batch_mode
                        ? (size_t)sc_config_int(cfg, "backfill.batch_max_requests") * BF_WINDOW_BATCHES
                        : (size_t)sc_config_int(cfg, "gemini.max_inflight") * 4;
    if (window < BF_WINDOW_ONLINE_MIN)
        window = BF_WINDOW_ONLINE_MIN;
    if (!(batch.items = calloc(window, sizeof *batch.items))) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    long long line = 0;
    while (!bf_stop(&b) && read_window(&b, &batch, window, &line, NULL) > 0) {
        if (stages(&b, &batch) != 0) {
            snprintf(errbuf, errlen, "%s: %s", opts->out_path, strerror(errno));
            st = SC_ERR_IO;
            goto out;
        }
        if (opts->batch_mode)
            st = forward_batch(&b, batch.items, batch.n, errbuf, errlen);
        else if (forward_online(&b, &batch) != 0)
            st = SC_ERR_NOMEM;
        for (size_t i = 0; i < batch.n; i++)
            sc_item_free(batch.items[i]);
        batch.n = 0;
        if (st)
            goto out;
        fdatasync(b.out_fd);
    }
    if (bf_stop(&b) || b.interrupted)
        st = SC_ERR_CLOSED;
out:
    for (size_t i = 0; i < batch.n; i++)
        sc_item_free(batch.items[i]);
    free(batch.items);
    if (b.out_fd >= 0) {
        fdatasync(b.out_fd);
        close(b.out_fd);
    }
    if (b.state_fd >= 0)
        close(b.state_fd);
    if (b.done) {
        progress(&b, 1);
        summary(&b);
    }
    if (st == SC_ERR_CLOSED)
        snprintf(errbuf, errlen, "interrupted with %lld of %lld lines done; run again with "
                 "--resume to finish (nothing is submitted twice)", b.n_done, b.n_lines);
    else if (!st && b.n_done != b.n_lines) {
        snprintf(errbuf, errlen, "%lld of %lld lines have no output line", b.n_lines - b.n_done,
                 b.n_lines);
        st = SC_ERR_IO;
    }
    sc_gemini_free(b.gemini);
    sc_batch_client_free(b.bc);
    free(b.done);
    free(b.retries);
    if (b.in)
        fclose(b.in);
    return st;
}

/* ---- command line ---- */

int sc_backfill_cli(int argc, char **argv, volatile sig_atomic_t *running)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"mode", required_argument, NULL, 'm'},
                                         {"resume", no_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    sc_backfill_opts_t bo = {0};
    const char *file = NULL, *mode = NULL;
    const char *over[SC_CLI_MAX_OVERRIDES];
    int nover = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:c:X:", opts, NULL)) != -1) {
        switch (opt) {
        case 'o': bo.out_path = optarg; break;
        case 'm': mode = optarg; break;
        case 'r': bo.resume = 1; break;
        case 'c': file = optarg; break;
        case 'X':
            if (nover < SC_CLI_MAX_OVERRIDES) {
                over[nover++] = optarg;
                break;
            }
            /* fall through */
        default: goto usage;
        }
    }
    if (optind != argc - 1 || !bo.out_path)
        goto usage;
    bo.in_path = argv[optind];
    sc_config_t *cfg;
    int rc = sc_cli_config(file, over, nover, &cfg);
    if (rc)
        return rc;
    if (!mode)
        mode = sc_config_str(cfg, "backfill.mode");
    if (strcmp(mode, "online") && strcmp(mode, "batch")) {
        sc_config_free(cfg);
        goto usage;
    }
    bo.batch_mode = strcmp(mode, "batch") == 0;
    char err[1024] = "";
    sc_status_t st = sc_backfill_run(cfg, &bo, running, err, sizeof err);
    sc_config_free(cfg);
    if (st) {
        fprintf(stderr, "scrimp backfill: %s\n", err[0] ? err : sc_strerror(st));
        return st == SC_ERR_CLOSED ? 3 : 1;
    }
    return 0;
usage:
    fprintf(stderr, "usage: scrimp backfill IN.jsonl -o OUT.jsonl [--mode online|batch] "
                    "[--resume] [-c FILE] [-X key=value]...\n");
    return 2;
}
