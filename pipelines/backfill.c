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

#include "host/gemini/gemini.h"
#include "host/gemini/batch.h"
#include "host/core/log.h"
#include "host/core/util.h"
#include "pipelines/batcher.h"
#include "pipelines/cli.h"
#include "pipelines/optimizer.h"
#include "pipelines/pipeline.h"

#define BF_WINDOW_ONLINE_MIN 1024   /* input lines read at once in online mode (at least) */
#define BF_WINDOW_BATCHES 8         /* batch mode: a window holds this many full batches */
#define BF_POLL_TICK_MS 100         /* how often a wait looks at the run flag */
#define BF_PATH_MAX 4096
#define BF_LINE_HEAD_MAX 64
#define BF_HTTP_TIMEOUT_MS 120000

/* ---- the run ---- */


typedef struct {
    const sc_config_t *cfg;
    const sc_backfill_opts_t *opts;
    volatile sig_atomic_t *running;
    sc_limits_t lim;
    char state_path[BF_PATH_MAX];
    FILE *in;
    int out_fd, state_fd;
    int created_files; /* this run created the output and the journal (not --resume) */
    long long journaled; /* journal events this run wrote */
    long long n_lines;       /* lines in the input */
    unsigned char *done;     /* per line (1-based): has its output line */
    long long n_done, n_ok, n_err, n_malformed, n_resumed, n_batches;
    double cost, baseline, saved_batch;
    int64_t t0, next_progress;
    int tty;
    char run_id[17];
    sc_gemini_t *gemini;     /* online mode */
    sc_batch_client_t *bc;   /* batch mode */
    sc_batcher_t *batcher;   /* batch mode */
    sc_optimizer_t *opt;     /* the stages between parsing and the call */
    sc_item_t **again;       /* online mode: items whose next call waits to be submitted */
    size_t nagain, capagain;
    int interrupted;
    int werr;                /* the first failed write to OUT or OUT.state (an errno): stops */
    const char *werr_path;   /* the file it failed on */
    long long n_wfail_after; /* writes that failed after it (answers drained, journal events) */
} bf_t;

/* Stopped by a signal, or by a write that failed: nothing more goes upstream, what is in flight
 * is drained (and written when it can be); the rest waits for --resume. */
static int bf_stop(bf_t *b)
{
    return !*b->running || b->werr;
}

/* ---- output and journal ---- */

static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w == 0)
            errno = EIO; /* no progress and no reason: not to be retried forever */
        if (w <= 0)
            return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* The first write that fails stops the run (bf_stop) and is its error; later ones are counted. */
static void write_failed(bf_t *b, const char *path, int err)
{
    if (b->werr) {
        b->n_wfail_after++;
        return;
    }
    b->werr = err ? err : EIO;
    b->werr_path = path;
    sc_error("backfill.write", "path=%s error=\"%s\" note=\"stopping: nothing more is sent; "
             "every line written is whole, run again with --resume once there is room\"", path,
             strerror(b->werr));
}

/* Append one whole line (buf ends with its newline) in one write. When it fails part way (a
 * full disk lets a write through up to the last free block) the file is cut back to where the
 * line began: a torn line followed by the next one would read as one corrupt line. */
static int append_line(bf_t *b, int fd, const char *path, const char *buf, size_t len)
{
    off_t at = lseek(fd, 0, SEEK_END); /* O_APPEND: where this write lands */
    if (at >= 0 && write_all(fd, buf, len) == 0)
        return 0;
    int err = errno;
    if (at >= 0 && ftruncate(fd, at) != 0) /* a shrink needs no room: not expected to fail */
        sc_error("backfill.write", "path=%s error=\"cannot cut the torn line: %s\" "
                 "note=\"--resume cuts it\"", path, strerror(errno));
    write_failed(b, path, err);
    errno = err;
    return -1;
}

/* Output and journal durable (both: the journal refers to results in the output). */
static int sync_files(bf_t *b)
{
    if (fdatasync(b->out_fd) != 0) {
        write_failed(b, b->opts->out_path, errno);
        return -1;
    }
    if (b->state_fd >= 0 && fdatasync(b->state_fd) != 0) {
        write_failed(b, b->state_path, errno);
        return -1;
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
    /* one write: no torn lines on a crash; none left behind by a full disk */
    int rc = append_line(b, b->out_fd, b->opts->out_path, buf, (size_t)hl + len);
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
    int ok = 0;
    double cost = 0, baseline = 0, saved_batch = 0;
    if (it->state != SC_ITEM_INVALID) { /* store the answer; write the lines that share it */
        sc_item_t *f = sc_optimizer_finish(b->opt, it);
        while (f) { /* followers left the window when they were coalesced: they end here */
            sc_item_t *next = f->next_follower;
            f->next_follower = NULL;
            emit_item(b, f);
            sc_item_free(f);
            f = next;
        }
    }
    if (it->state == SC_ITEM_INVALID) {
        sc_result_t r;
        sc_result_init(&r);
        r.id = it->id[0] ? it->id : NULL;
        r.error_code = sc_status_code(it->error);
        r.error_message = it->errmsg;
        json = sc_result_to_json(&r, &len);
    } else {
        json = sc_stage_ledger(it, b->cfg, NULL, &len);
        json_t *r = json ? json_loadb(json, len, 0, NULL) : NULL; /* new: read the ledger back */
        ok = r && strcmp(json_string_value(json_object_get(r, "status")), "ok") == 0;
        cost = json_number_value(json_object_get(r, "cost_usd"));
        baseline = json_number_value(json_object_get(r, "baseline_cost_usd"));
        saved_batch =
            json_number_value(json_object_get(json_object_get(r, "savings"), "batch_usd"));
        json_decref(r);
    }
    if (!json) {
        errno = ENOMEM;
        return -1;
    }
    long long before = b->n_done;
    int rc = emit(b, (long long)it->offset, json, len);
    free(json);
    if (b->n_done > before) { /* the summary counts the lines the output holds */
        if (it->state == SC_ITEM_INVALID)
            b->n_malformed++;
        else
            ok ? b->n_ok++ : b->n_err++;
        b->cost += cost;
        b->baseline += baseline;
        b->saved_batch += saved_batch;
    }
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
    int rc = append_line(b, b->state_fd, b->state_path, s, len + 1);
    free(s);
    if (rc == 0)
        b->journaled++;
    /* Durable before the next step: the output first (results it refers to), then the journal. */
    if (rc == 0)
        rc = sync_files(b);
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
    sc_item_t *it = sc_item_new();
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
/* The same stages as online (parse, then the optimizer: embed, cache, coalesce, route, prune,
 * the call); malformed lines and cache hits are written out at once. */
static int stages(bf_t *b, sc_batch_t *batch)
{
    int64_t dflt = sc_config_int(b->cfg, "request.default_deadline_ms");
    sc_stage_parse(batch, &b->lim);
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        it->deadline_ms = sc_now_ms() + (it->req && it->req->deadline_ms > 0 ? it->req->deadline_ms
                                                                             : dflt);
    }
    sc_optimizer_prepare(b->opt, batch);
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if ((it->state == SC_ITEM_INVALID || it->state == SC_ITEM_DONE) && emit_item(b, it) != 0)
            return -1;
    }
    return 0;
}

/* ---- online forwarding: concurrent calls on one curl multi loop ---- */

static void online_done(sc_gemini_call_t *call, void *arg)
{
    bf_t *b = arg;
    sc_item_t *it = call->opaque;
    if (sc_optimizer_after_call(b->opt, it)) { /* summary first, or a promotion: call again */
        if (b->nagain < b->capagain) {
            b->again[b->nagain++] = it;
            return;
        }
    }
    call = it->call;
    it->state = SC_ITEM_DONE;
    it->error = call->status;
    if (call->status != SC_OK)
        snprintf(it->errmsg, sizeof it->errmsg, "%s%s%s", sc_strerror(call->status),
                 call->err_message ? ": " : "", call->err_message ? call->err_message : "");
    if (emit_item(b, it) != 0 && !b->werr) /* a failed write said so itself */
        sc_error("backfill.write", "line=%lld: %s", (long long)it->offset, strerror(errno));
}

static int forward_online(bf_t *b, sc_batch_t *batch)
{
    size_t next = 0;
    while (next < batch->n || sc_gemini_inflight(b->gemini) > 0) {
        while (next < batch->n && !bf_stop(b)) {
            sc_item_t *it = batch->items[next];
            if (it->state != SC_ITEM_FORWARD) {
                next++;
                continue;
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
        for (size_t i = 0; i < b->nagain; i++) /* the next call of a chained request */
            if (sc_gemini_submit(b->gemini, b->again[i]->call) != SC_OK) {
                b->again[i]->state = SC_ITEM_DONE;
                b->again[i]->error = SC_ERR_FULL;
                emit_item(b, b->again[i]);
            }
        b->nagain = 0;
    }
    return 0;
}

/* ---- batch forwarding: pipelines/batcher.c, with the journal in OUT.state ---- */

static void bf_key(const sc_item_t *it, char *buf, size_t len)
{
    snprintf(buf, len, "L%lld", (long long)it->offset);
}

static void bf_batch_done(sc_item_t *it, void *arg)
{
    bf_t *b = arg;
    if (emit_item(b, it) != 0 && !b->werr) /* a failed write said so itself */
        sc_error("backfill.write", "line=%lld: %s", (long long)it->offset, strerror(errno));
    sc_item_free(it);
}

static int bf_journal(json_t *ev, void *arg)
{
    return journal(arg, ev);
}

/* Drive the batcher until every item given to it is handed back (or the run is stopped). */
static sc_status_t batch_drain(bf_t *b, char *errbuf, size_t errlen)
{
    sc_status_t st = SC_OK;
    while (!st && (sc_batcher_queued(b->batcher) > 0 || sc_batcher_open(b->batcher) > 0)) {
        if (bf_stop(b)) {
            b->interrupted = 1;
            return SC_ERR_CLOSED; /* the batches stay journaled for --resume */
        }
        st = sc_batcher_flush(b->batcher, 1, 0, errbuf, errlen);
        if (!st)
            st = sc_batcher_poll(b->batcher, errbuf, errlen);
        long wait = sc_batcher_next_poll_ms(b->batcher);
        if (!st && wait > 0)
            usleep((useconds_t)(wait < BF_POLL_TICK_MS ? wait : BF_POLL_TICK_MS) * 1000);
    }
    b->n_batches = sc_batcher_created(b->batcher);
    return st;
}

/* The window's FORWARD items go to the batcher (which owns them until it hands them back). */
static sc_status_t forward_batch(bf_t *b, sc_batch_t *batch, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < batch->n; i++) {
        if (batch->items[i]->state != SC_ITEM_FORWARD)
            continue;
        if (sc_batcher_add(b->batcher, batch->items[i]) != SC_OK)
            return SC_ERR_NOMEM;
        batch->items[i] = NULL;
    }
    return batch_drain(b, errbuf, errlen);
}

/* ---- resume ---- */

/* Mark the lines OUT already has; cut a last line torn by a crash. */
static sc_status_t read_output(bf_t *b, char *errbuf, size_t errlen)
{
    FILE *f = fopen(b->opts->out_path, "r");
    if (!f) {
        if (errno == ENOENT)
            return SC_OK;
        snprintf(errbuf, errlen, "%s: %s", b->opts->out_path, strerror(errno));
        return SC_ERR_IO;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    off_t good = 0;
    long long at = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        at++;
        if (line[len - 1] != '\n')
            break; /* torn: dropped below */
        json_t *r = json_loadb(line, (size_t)len, 0, NULL); /* new */
        json_int_t n = json_integer_value(json_object_get(r, "line"));
        json_decref(r);
        if (n < 1 || n > b->n_lines) {
            snprintf(errbuf, errlen, "%s: output line %lld is not a result of this input (no "
                     "\"line\" from 1 to %lld)", b->opts->out_path, at, b->n_lines);
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
    int rerr = ferror(f) ? errno : 0;
    free(line);
    fclose(f);
    if (rerr) {
        snprintf(errbuf, errlen, "%s: %s", b->opts->out_path, strerror(rerr));
        return SC_ERR_IO;
    }
    if (truncate(b->opts->out_path, good) != 0) {
        snprintf(errbuf, errlen, "%s: cannot cut the torn last line: %s", b->opts->out_path,
                 strerror(errno));
        return SC_ERR_IO;
    }
    return SC_OK;
}

/* Cut a journal's torn last event (a crash in the middle of its write): the next event appended
 * would otherwise be read as part of it, and lost with it. */
static sc_status_t cut_journal_tail(bf_t *b, char *errbuf, size_t errlen)
{
    FILE *f = fopen(b->state_path, "r");
    if (!f) {
        if (errno == ENOENT)
            return SC_OK;
        snprintf(errbuf, errlen, "%s: %s", b->state_path, strerror(errno));
        return SC_ERR_IO;
    }
    off_t good = 0, total = 0;
    int ch;
    while ((ch = getc(f)) != EOF) {
        total++;
        if (ch == '\n')
            good = total;
    }
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (rerr) {
        snprintf(errbuf, errlen, "%s: %s", b->state_path, strerror(rerr));
        return SC_ERR_IO;
    }
    if (good < total && truncate(b->state_path, good) != 0) {
        snprintf(errbuf, errlen, "%s: cannot cut the torn last event: %s", b->state_path,
                 strerror(errno));
        return SC_ERR_IO;
    }
    return SC_OK;
}

json_t *sc_backfill_journal_open(FILE *f)
{
    json_t *open = json_object(); /* display -> {model, keys, name?}; new */
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (open && (len = getline(&line, &cap, f)) > 0) {
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
    return open;
}

/* Batches the journal says were created (or may have been) and did not finish: poll them to the
 * end instead of creating them again. */
static sc_status_t adopt_batches(bf_t *b, char *errbuf, size_t errlen)
{
    FILE *f = fopen(b->state_path, "r");
    if (!f)
        return SC_OK;
    json_t *open = sc_backfill_journal_open(f); /* new */
    fclose(f);
    if (!open)
        return SC_ERR_NOMEM;

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
        else /* created, but killed before the journal said so: the journal names it now */
            journal(b, json_pack("{s:s, s:s, s:s, s:b}", "ev", "created", "display", display,
                                 "name", name, "adopted", 1));
        /* The batch's lines that have no output yet: read them back from the input. */
        unsigned char *only = calloc((size_t)b->n_lines + 1, 1);
        size_t i, want = 0;
        json_t *l;
        json_array_foreach(json_object_get(ent, "keys"), i, l) {
            const char *key = json_string_value(l);
            long long n = key && key[0] == 'L' ? strtoll(key + 1, NULL, 10) : 0;
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
            /* paid in that batch: a killed run may have stored the answer in the cache before
             * it wrote the line, but the line is the batch's answer, at the batch's cost */
            for (size_t k = 0; k < batch.n; k++)
                batch.items[k]->adopted = 1;
            stages(b, &batch);
            size_t n = 0; /* the lines that still go upstream (not malformed) */
            for (size_t k = 0; k < batch.n; k++)
                if (batch.items[k]->state == SC_ITEM_FORWARD)
                    batch.items[n++] = batch.items[k];
                else
                    sc_item_free(batch.items[k]);
            batch.n = 0;
            st = sc_batcher_adopt(b->batcher, display, name,
                                  json_string_value(json_object_get(ent, "model")), batch.items, n);
            if (st)
                for (size_t k = 0; k < n; k++)
                    sc_item_free(batch.items[k]);
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
    return st ? st : batch_drain(b, errbuf, errlen);
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
    if (!b->done)
        return SC_ERR_NOMEM;
    if (b->opts->resume) {
        sc_status_t st = read_output(b, errbuf, errlen);
        if (!st)
            st = cut_journal_tail(b, errbuf, errlen);
        if (st)
            return st;
    }
    return SC_OK;
}

/* The output and the journal, once everything that can be checked before work starts has been
 * (the key, the input, the configuration, the model and the cache). */
static sc_status_t create_files(bf_t *b, char *errbuf, size_t errlen)
{
    b->created_files = !b->opts->resume;
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
    sc_status_t ost = sc_optimizer_new(cfg, NULL, b->opts->batch_mode, &b->opt, errbuf, errlen);
    if (ost)
        return ost;
    if (b->opts->batch_mode) {
        sc_status_t st = sc_batch_client_new(url, key, BF_HTTP_TIMEOUT_MS, &b->bc, errbuf, errlen);
        if (st)
            return st;
        sc_batcher_opts_t bo = {.cfg = cfg, .client = b->bc, .run_id = b->run_id,
                                .done = bf_batch_done, .key = bf_key, .journal = bf_journal,
                                .arg = b};
        return sc_batcher_new(&bo, &b->batcher);
    }
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
    /* first what needs no work: the key, then the files; nothing is created before the model
     * and the cache have opened */
    if (!sc_config_str(cfg, "gemini.api_key")[0]) {
        snprintf(errbuf, errlen, "GEMINI_API_KEY is not set");
        st = SC_ERR_CONFIG;
        goto out;
    }
    if ((st = open_files(&b, errbuf, errlen)) || (st = make_clients(&b, errbuf, errlen)) ||
        (st = create_files(&b, errbuf, errlen)))
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
    b.capagain = (size_t)sc_config_int(cfg, "gemini.max_inflight");
    b.again = calloc(b.capagain, sizeof *b.again);
    if (!b.again || !(batch.items = calloc(window, sizeof *batch.items))) {
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
            st = forward_batch(&b, &batch, errbuf, errlen);
        else if (forward_online(&b, &batch) != 0)
            st = SC_ERR_NOMEM;
        for (size_t i = 0; i < batch.n; i++)
            sc_item_free(batch.items[i]);
        batch.n = 0;
        if (st)
            goto out;
        sync_files(&b); /* a failure stops the loop (bf_stop) */
    }
    if (bf_stop(&b) || b.interrupted)
        st = SC_ERR_CLOSED;
out:
    for (size_t i = 0; i < batch.n; i++)
        sc_item_free(batch.items[i]);
    free(batch.items);
    sc_batcher_free(b.batcher); /* before the output closes: it may hold items (interrupted) */
    b.batcher = NULL;
    sc_optimizer_free(b.opt);
    b.opt = NULL;
    free(b.again);
    if (b.out_fd >= 0) {
        if (!b.werr)
            sync_files(&b);
        if (close(b.out_fd) != 0)
            write_failed(&b, opts->out_path, errno);
    }
    if (b.state_fd >= 0 && close(b.state_fd) != 0)
        write_failed(&b, b.state_path, errno);
    if (st && b.created_files && b.n_done == 0 && b.journaled <= 1) {
        /* failed before its first line: leave nothing behind for the next run to refuse */
        unlink(b.opts->out_path);
        unlink(b.state_path);
    }
    if (b.done && b.out_fd >= 0) {
        progress(&b, 1);
        summary(&b);
    }
    if (b.werr) { /* the cause, whatever it stopped on the way */
        snprintf(errbuf, errlen, "%s: %s (%lld of %lld lines written, each one whole%s; make "
                 "room and run again with --resume to finish)", b.werr_path, strerror(b.werr),
                 b.n_done, b.n_lines, b.n_wfail_after ? ", later writes failed too" : "");
        st = SC_ERR_IO;
    } else if (st == SC_ERR_CLOSED)
        snprintf(errbuf, errlen, "interrupted with %lld of %lld lines done; run again with "
                 "--resume to finish (nothing is submitted twice)", b.n_done, b.n_lines);
    else if (!st && b.n_done != b.n_lines) {
        snprintf(errbuf, errlen, "%lld of %lld lines have no output line", b.n_lines - b.n_done,
                 b.n_lines);
        st = SC_ERR_IO;
    }
    sc_gemini_free(b.gemini);
    sc_batcher_free(b.batcher);
    sc_batch_client_free(b.bc);
    free(b.done);
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
