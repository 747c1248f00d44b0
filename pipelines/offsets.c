/* offsets.c - completion watermarks: per partition, a ring of consumed offsets in order with a
 * done flag; the contiguous done prefix is popped and its end stored with rd_kafka_offsets_store. */
#include "pipelines/offsets.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "host/core/log.h"

#define OFFSETS_MAX_PARTITIONS 65536
#define OFFSETS_RING_INIT 64

enum { RING_OPEN = 0, RING_DONE = 1, RING_WAITS = 2 }; /* WAITS: an older epoch's copy completes it */

typedef struct {
    int64_t *off;
    unsigned char *done; /* RING_* */
    size_t cap, head, len;
    int64_t acked; /* next offset after everything acknowledged here, 0 for none; kept by reset */
} ring_t;

struct sc_offsets {
    pthread_mutex_t lock;
    rd_kafka_t *consumer; /* borrowed */
    char *topic;          /* owned */
    ring_t *parts;        /* owned, nparts */
    size_t nparts;
    uint64_t epoch;
    size_t pending;
    /* What older epochs left open (and acknowledged out of order) at each reset, merged: their
     * results may still be delivered after it (a broker outage holds them back). Each one still
     * moves the partition's acked offset, and completes its copy in the current epoch, though it
     * is no longer stored for commit as itself. */
    ring_t *retired; /* owned, nretired */
    size_t nretired;
};

sc_status_t sc_offsets_new(rd_kafka_t *consumer, const char *topic, sc_offsets_t **out)
{
    sc_offsets_t *o = calloc(1, sizeof *o);
    if (!o || !(o->topic = strdup(topic))) {
        free(o);
        return SC_ERR_NOMEM;
    }
    o->consumer = consumer;
    o->epoch = 1;
    pthread_mutex_init(&o->lock, NULL);
    *out = o;
    return SC_OK;
}

static void ring_clear(ring_t *r)
{
    free(r->off);
    free(r->done);
    memset(r, 0, sizeof *r);
}

static void rings_free(ring_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ring_clear(&r[i]);
    free(r);
}

void sc_offsets_free(sc_offsets_t *o)
{
    if (!o)
        return;
    rings_free(o->parts, o->nparts);
    rings_free(o->retired, o->nretired);
    free(o->topic);
    pthread_mutex_destroy(&o->lock);
    free(o);
}

static int ring_grow(ring_t *r)
{
    size_t ncap = r->cap ? r->cap * 2 : OFFSETS_RING_INIT;
    int64_t *noff = malloc(ncap * sizeof *noff);
    unsigned char *ndone = malloc(ncap);
    if (!noff || !ndone) {
        free(noff);
        free(ndone);
        return -1;
    }
    for (size_t i = 0; i < r->len; i++) {
        noff[i] = r->off[(r->head + i) % r->cap];
        ndone[i] = r->done[(r->head + i) % r->cap];
    }
    free(r->off);
    free(r->done);
    r->off = noff;
    r->done = ndone;
    r->cap = ncap;
    r->head = 0;
    return 0;
}

static int ring_push(ring_t *r, int64_t offset, unsigned char state)
{
    if (r->len == r->cap && ring_grow(r) != 0)
        return -1;
    size_t at = (r->head + r->len) % r->cap;
    r->off[at] = offset;
    r->done[at] = state;
    r->len++;
    return 0;
}

/* The slot of offset in r (offsets in a ring are increasing), or -1. */
static long ring_find(const ring_t *r, int64_t offset)
{
    size_t lo = 0, hi = r->len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->off[(r->head + mid) % r->cap] < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == r->len || r->off[(r->head + lo) % r->cap] != offset)
        return -1;
    return (long)((r->head + lo) % r->cap);
}

/* Mark offset done in r; returns the end of the contiguous done prefix it popped (the next offset
 * to consume), -1 when the prefix did not move (behind an open one), or -2 when offset is not an
 * open message of r (unknown, or acknowledged twice). */
static int64_t ring_done(ring_t *r, int64_t offset)
{
    long at = ring_find(r, offset);
    if (at < 0 || r->done[at] == RING_DONE)
        return -2;
    r->done[at] = RING_DONE;
    int64_t last = -1;
    while (r->len > 0 && r->done[r->head] == RING_DONE) {
        last = r->off[r->head];
        r->head = (r->head + 1) % r->cap;
        r->len--;
    }
    return last < 0 ? -1 : last + 1;
}

/* offset of the current epoch is acknowledged: move the watermark and store it. Under the lock. */
static int64_t complete_locked(sc_offsets_t *o, int32_t partition, int64_t offset)
{
    ring_t *r = &o->parts[partition];
    int64_t next = ring_done(r, offset);
    if (next == -2)
        return -1;
    o->pending--;
    if (next < 0)
        return -1;
    if (next > r->acked)
        r->acked = next;
    if (o->consumer) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, o->topic, partition)->offset = next;
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(o->consumer, l);
        if (err)
            sc_warn("offsets.store", "partition=%d offset=%lld err=\"%s\"", partition,
                    (long long)next, rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(l);
    }
    return next;
}

uint64_t sc_offsets_add(sc_offsets_t *o, int32_t partition, int64_t offset,
                        sc_offsets_seen_t *seen)
{
    uint64_t epoch = 0; /* 0: not tracked (never matches, so never stored) */
    sc_offsets_seen_t s = SC_OFFSETS_NEW;
    pthread_mutex_lock(&o->lock);
    if (partition < 0 || partition >= OFFSETS_MAX_PARTITIONS)
        goto out;
    if ((size_t)partition >= o->nparts) {
        size_t n = (size_t)partition + 1;
        ring_t *np = realloc(o->parts, n * sizeof *np);
        if (!np)
            goto out;
        memset(np + o->nparts, 0, (n - o->nparts) * sizeof *np);
        o->parts = np;
        o->nparts = n;
    }
    ring_t *r = &o->parts[partition];
    if (offset < r->acked) {
        s = SC_OFFSETS_PUBLISHED;
    } else if ((size_t)partition < o->nretired) {
        const ring_t *old = &o->retired[partition];
        long at = ring_find(old, offset);
        if (at >= 0)
            s = old->done[at] == RING_DONE ? SC_OFFSETS_PUBLISHED : SC_OFFSETS_IN_FLIGHT;
    }
    if (ring_push(r, offset, s == SC_OFFSETS_IN_FLIGHT ? RING_WAITS : RING_OPEN) != 0) {
        s = SC_OFFSETS_NEW;
        goto out;
    }
    o->pending++;
    epoch = o->epoch;
    if (s == SC_OFFSETS_PUBLISHED)
        complete_locked(o, partition, offset);
out:
    pthread_mutex_unlock(&o->lock);
    if (seen)
        *seen = s;
    return epoch;
}

int64_t sc_offsets_done(sc_offsets_t *o, int32_t partition, int64_t offset, uint64_t epoch)
{
    int64_t stored = -1;
    pthread_mutex_lock(&o->lock);
    if (partition < 0 || (size_t)partition >= o->nparts)
        goto out;
    if (epoch == o->epoch) {
        stored = complete_locked(o, partition, offset);
        goto out;
    }
    /* A message of an epoch before the last reset: its result is published, so what this process
     * acknowledged moves on, and the current epoch's copy of it (consumed again after the
     * partition came back) is done too; the message itself is stored for nothing. */
    if (epoch == 0 || epoch > o->epoch || (size_t)partition >= o->nretired)
        goto out;
    int64_t next = ring_done(&o->retired[partition], offset);
    if (next == -2)
        goto out;
    if (next > o->parts[partition].acked)
        o->parts[partition].acked = next;
    long at = ring_find(&o->parts[partition], offset);
    if (at >= 0 && o->parts[partition].done[at] == RING_WAITS)
        complete_locked(o, partition, offset);
out:
    pthread_mutex_unlock(&o->lock);
    return stored;
}

/* Into out: a's and b's entries in offset order, one per offset (done wins), none below floor and
 * none of b's that wait on a's copy. */
static int ring_merge(const ring_t *a, const ring_t *b, int64_t floor, ring_t *out)
{
    size_t i = 0, j = 0;
    while (i < a->len || j < b->len) {
        int64_t oa = i < a->len ? a->off[(a->head + i) % a->cap] : INT64_MAX;
        int64_t ob = j < b->len ? b->off[(b->head + j) % b->cap] : INT64_MAX;
        unsigned char sa = i < a->len ? a->done[(a->head + i) % a->cap] : RING_OPEN;
        unsigned char sb = j < b->len ? b->done[(b->head + j) % b->cap] : RING_OPEN;
        int64_t off;
        unsigned char st;
        if (oa < ob) {
            off = oa, st = sa, i++;
        } else if (ob < oa) {
            off = ob, st = sb, j++;
            if (st == RING_WAITS)
                continue; /* its copy in a is gone already: it never comes back */
        } else {
            off = oa, st = sa == RING_DONE || sb == RING_DONE ? RING_DONE : RING_OPEN, i++, j++;
        }
        if (off < floor)
            continue;
        if (ring_push(out, off, st == RING_WAITS ? RING_OPEN : st) != 0)
            return -1;
    }
    return 0;
}

void sc_offsets_reset(sc_offsets_t *o)
{
    pthread_mutex_lock(&o->lock);
    /* the current rings retire, merged with what older epochs left; fresh ones keep acked */
    ring_t *fresh = o->nparts ? calloc(o->nparts, sizeof *fresh) : NULL;
    ring_t *merged = o->nparts ? calloc(o->nparts, sizeof *merged) : NULL;
    int ok = fresh && merged;
    static const ring_t empty;
    for (size_t i = 0; ok && i < o->nparts; i++)
        ok = ring_merge(i < o->nretired ? &o->retired[i] : &empty, &o->parts[i],
                        o->parts[i].acked, &merged[i]) == 0;
    if (ok) {
        for (size_t i = 0; i < o->nparts; i++)
            fresh[i].acked = o->parts[i].acked;
        rings_free(o->retired, o->nretired);
        rings_free(o->parts, o->nparts);
        o->retired = merged;
        o->nretired = o->nparts;
        o->parts = fresh;
    } else { /* out of memory: keep only the acked offsets (older results re-deliver) */
        rings_free(fresh, fresh ? o->nparts : 0);
        rings_free(merged, merged ? o->nparts : 0);
        rings_free(o->retired, o->nretired);
        o->retired = NULL;
        o->nretired = 0;
        for (size_t i = 0; i < o->nparts; i++) {
            int64_t acked = o->parts[i].acked;
            ring_clear(&o->parts[i]);
            o->parts[i].acked = acked;
        }
    }
    o->pending = 0;
    o->epoch++;
    pthread_mutex_unlock(&o->lock);
}

int64_t sc_offsets_acked(sc_offsets_t *o, int32_t partition)
{
    int64_t acked = -1;
    pthread_mutex_lock(&o->lock);
    if (partition >= 0 && (size_t)partition < o->nparts && o->parts[partition].acked > 0)
        acked = o->parts[partition].acked;
    pthread_mutex_unlock(&o->lock);
    return acked;
}

size_t sc_offsets_pending(sc_offsets_t *o)
{
    pthread_mutex_lock(&o->lock);
    size_t n = o->pending;
    pthread_mutex_unlock(&o->lock);
    return n;
}
