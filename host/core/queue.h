/* queue.h - a bounded FIFO of pointers between pipeline threads (mutex + two condition
 * variables): a full queue blocks the producer, which is how back-pressure travels upstream. */
#ifndef SC_QUEUE_H
#define SC_QUEUE_H

#include <stddef.h>

#include "host/core/status.h"

typedef struct sc_queue sc_queue_t;

/* capacity >= 1. @remark the caller frees with sc_queue_free(). */
sc_status_t sc_queue_new(size_t capacity, sc_queue_t **out);
/* Items still inside are not freed. NULL ok. */
void sc_queue_free(sc_queue_t *q);

/* Push; waits up to timeout_ms for room (-1 = forever, 0 = not at all).
 * SC_OK, SC_ERR_TIMEOUT (still full) or SC_ERR_CLOSED. */
sc_status_t sc_queue_push(sc_queue_t *q, void *item, int timeout_ms);
/* Pop; waits up to timeout_ms for an item. SC_OK, SC_ERR_TIMEOUT, or SC_ERR_CLOSED once the
 * queue is closed and empty. */
sc_status_t sc_queue_pop(sc_queue_t *q, void **item, int timeout_ms);
/* Pop up to max items at once without waiting after the first. Returns how many (0 on
 * timeout or when closed and empty; check sc_queue_closed()). */
size_t sc_queue_pop_many(sc_queue_t *q, void **items, size_t max, int timeout_ms);
/* After close, pushes fail and pops drain what is left. */
void sc_queue_close(sc_queue_t *q);
int sc_queue_closed(sc_queue_t *q);
size_t sc_queue_len(sc_queue_t *q);

#endif
