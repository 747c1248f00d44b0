/* queue.c - bounded pointer FIFO (ring buffer) guarded by one mutex and two condition variables. */
#include "host/core/queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct sc_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    void **ring; /* owned, capacity slots */
    size_t cap, head, len;
    int closed;
};

sc_status_t sc_queue_new(size_t capacity, sc_queue_t **out)
{
    if (capacity < 1)
        return SC_ERR_INVALID_ARG;
    sc_queue_t *q = calloc(1, sizeof *q);
    if (!q)
        return SC_ERR_NOMEM;
    q->ring = calloc(capacity, sizeof *q->ring);
    if (!q->ring) {
        free(q);
        return SC_ERR_NOMEM;
    }
    q->cap = capacity;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, &ca);
    pthread_cond_init(&q->not_full, &ca);
    pthread_condattr_destroy(&ca);
    *out = q;
    return SC_OK;
}

void sc_queue_free(sc_queue_t *q)
{
    if (!q)
        return;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    free(q->ring);
    free(q);
}

static void deadline_after(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int can_push(const sc_queue_t *q)
{
    return q->closed || q->len < q->cap;
}

static int can_pop(const sc_queue_t *q)
{
    return q->closed || q->len > 0;
}

/* Wait on cv (the lock held) until pred holds or timeout_ms passes (-1 forever, 0 no wait). */
static void wait_for(sc_queue_t *q, pthread_cond_t *cv, int (*pred)(const sc_queue_t *),
                     int timeout_ms)
{
    struct timespec ts;
    if (timeout_ms > 0)
        deadline_after(&ts, timeout_ms);
    while (!pred(q)) {
        if (timeout_ms == 0)
            return;
        if (timeout_ms < 0)
            pthread_cond_wait(cv, &q->lock);
        else if (pthread_cond_timedwait(cv, &q->lock, &ts) == ETIMEDOUT)
            return;
    }
}

sc_status_t sc_queue_push(sc_queue_t *q, void *item, int timeout_ms)
{
    sc_status_t st = SC_OK;
    pthread_mutex_lock(&q->lock);
    wait_for(q, &q->not_full, can_push, timeout_ms);
    if (q->closed) {
        st = SC_ERR_CLOSED;
        goto out;
    }
    if (q->len == q->cap) {
        st = SC_ERR_TIMEOUT;
        goto out;
    }
    q->ring[(q->head + q->len) % q->cap] = item;
    q->len++;
    pthread_cond_signal(&q->not_empty);
out:
    pthread_mutex_unlock(&q->lock);
    return st;
}

size_t sc_queue_pop_many(sc_queue_t *q, void **items, size_t max, int timeout_ms)
{
    size_t n = 0;
    pthread_mutex_lock(&q->lock);
    wait_for(q, &q->not_empty, can_pop, timeout_ms);
    while (n < max && q->len > 0) {
        items[n++] = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
    }
    if (n)
        pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
    return n;
}

sc_status_t sc_queue_pop(sc_queue_t *q, void **item, int timeout_ms)
{
    if (sc_queue_pop_many(q, item, 1, timeout_ms) == 1)
        return SC_OK;
    return sc_queue_closed(q) ? SC_ERR_CLOSED : SC_ERR_TIMEOUT;
}

void sc_queue_close(sc_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
}

int sc_queue_closed(sc_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    int c = q->closed && q->len == 0;
    pthread_mutex_unlock(&q->lock);
    return c;
}

size_t sc_queue_len(sc_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->len;
    pthread_mutex_unlock(&q->lock);
    return n;
}
