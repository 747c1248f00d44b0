/* offsets.c - completion watermarks: per partition, a ring of consumed offsets in order with a
 * done flag; the contiguous done prefix is popped and its end stored with rd_kafka_offsets_store. */
#include "pipelines/offsets.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/log.h"

#define OFFSETS_MAX_PARTITIONS 65536
#define OFFSETS_RING_INIT 64

typedef struct {
    int64_t *off;
    unsigned char *done;
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
    /* The rings of the epoch before the last reset: their messages' results may still be
     * delivered after it (a broker outage holds them back), and each one still moves the
     * partition's acked offset, though it is no longer stored for commit. */
    ring_t *retired; /* owned, nretired */
    size_t nretired;
    uint64_t retired_epoch;
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

void sc_offsets_free(sc_offsets_t *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->nparts; i++)
        ring_clear(&o->parts[i]);
    free(o->parts);
    for (size_t i = 0; i < o->nretired; i++)
        ring_clear(&o->retired[i]);
    free(o->retired);
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

uint64_t sc_offsets_add(sc_offsets_t *o, int32_t partition, int64_t offset)
{
    uint64_t epoch = 0; /* 0: not tracked (never matches, so never stored) */
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
    if (r->len == r->cap && ring_grow(r) != 0)
        goto out;
    size_t at = (r->head + r->len) % r->cap;
    r->off[at] = offset;
    r->done[at] = 0;
    r->len++;
    o->pending++;
    epoch = o->epoch;
out:
    pthread_mutex_unlock(&o->lock);
    return epoch;
}

/* Mark offset done in r; returns the end of the contiguous done prefix it popped (the next offset
 * to consume), or -1 when the prefix did not move (offset unknown, already done, or behind an open
 * one). */
static int64_t ring_done(ring_t *r, int64_t offset)
{
    /* binary search: offsets in the ring are increasing */
    size_t lo = 0, hi = r->len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->off[(r->head + mid) % r->cap] < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == r->len || r->off[(r->head + lo) % r->cap] != offset ||
        r->done[(r->head + lo) % r->cap])
        return -2; /* not a message of this ring, or acknowledged twice */
    r->done[(r->head + lo) % r->cap] = 1;
    int64_t last = -1;
    while (r->len > 0 && r->done[r->head]) {
        last = r->off[r->head];
        r->head = (r->head + 1) % r->cap;
        r->len--;
    }
    return last < 0 ? -1 : last + 1;
}

int64_t sc_offsets_done(sc_offsets_t *o, int32_t partition, int64_t offset, uint64_t epoch)
{
    int64_t stored = -1;
    pthread_mutex_lock(&o->lock);
    if (partition < 0)
        goto out;
    if (epoch != o->epoch) {
        /* a message of the epoch before the last reset: its result is published, so what this
         * process acknowledged moves on, but nothing is stored for a partition it may not own */
        if (epoch == o->retired_epoch && (size_t)partition < o->nretired &&
            (size_t)partition < o->nparts) {
            int64_t next = ring_done(&o->retired[partition], offset);
            if (next > o->parts[partition].acked)
                o->parts[partition].acked = next;
        }
        goto out;
    }
    if ((size_t)partition >= o->nparts)
        goto out;
    ring_t *r = &o->parts[partition];
    int64_t next = ring_done(r, offset);
    if (next == -2)
        goto out;
    o->pending--;
    if (next < 0)
        goto out;
    stored = next;
    if (stored > r->acked)
        r->acked = stored;
    if (o->consumer) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, o->topic, partition)->offset = stored;
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(o->consumer, l);
        if (err)
            sc_warn("offsets.store", "partition=%d offset=%lld err=\"%s\"", partition,
                    (long long)stored, rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(l);
    }
out:
    pthread_mutex_unlock(&o->lock);
    return stored;
}

void sc_offsets_reset(sc_offsets_t *o)
{
    pthread_mutex_lock(&o->lock);
    /* the current rings retire (the older retired ones go); fresh ones keep the acked offsets */
    ring_t *fresh = o->nparts ? calloc(o->nparts, sizeof *fresh) : NULL;
    for (size_t i = 0; i < o->nretired; i++)
        ring_clear(&o->retired[i]);
    free(o->retired);
    o->retired = NULL;
    o->nretired = 0;
    if (fresh) {
        for (size_t i = 0; i < o->nparts; i++)
            fresh[i].acked = o->parts[i].acked;
        o->retired = o->parts;
        o->nretired = o->nparts;
        o->parts = fresh;
    } else { /* out of memory (or nothing tracked): keep only the acked offsets */
        for (size_t i = 0; i < o->nparts; i++) {
            int64_t acked = o->parts[i].acked;
            ring_clear(&o->parts[i]);
            o->parts[i].acked = acked;
        }
    }
    o->retired_epoch = o->epoch;
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
