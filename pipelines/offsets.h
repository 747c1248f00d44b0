/* offsets.h - per-partition completion watermark: an offset is stored for commit only when its
 * message and every earlier consumed message of the partition have been acknowledged (DESIGN §5). */
#ifndef SC_OFFSETS_H
#define SC_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "host/core/status.h"

typedef struct sc_offsets sc_offsets_t;

/* consumer: the handle whose offsets are stored (borrowed); NULL stores nothing (tests).
 * @remark the caller frees with sc_offsets_free(). */
sc_status_t sc_offsets_new(rd_kafka_t *consumer, const char *topic, sc_offsets_t **out);
void sc_offsets_free(sc_offsets_t *o); /* NULL ok */

/* What this process already did with a message it consumes again (its partition was taken away
 * and given back, say after a broker outage past the session timeout). */
typedef enum {
    SC_OFFSETS_NEW,       /* not seen: process it */
    SC_OFFSETS_PUBLISHED, /* its result is published already: skip it; it counts as done */
    SC_OFFSETS_IN_FLIGHT, /* an older epoch is still working on it: skip it; it counts as done
                           * when that copy is acknowledged */
} sc_offsets_seen_t;

/* Record a consumed message (offsets of one partition arrive in increasing order). Returns the
 * epoch to hand back to sc_offsets_done(); *seen (NULL ok) says whether the caller is to process
 * the message, or skip it because this process published it or is publishing it. */
uint64_t sc_offsets_add(sc_offsets_t *o, int32_t partition, int64_t offset,
                        sc_offsets_seen_t *seen);

/* The message is acknowledged. Stores partition's new watermark when it moved. Returns the
 * stored offset (next to consume), or -1 when the watermark did not move or the epoch is stale. */
int64_t sc_offsets_done(sc_offsets_t *o, int32_t partition, int64_t offset, uint64_t epoch);

/* A rebalance: the messages recorded so far are no longer stored for commit. Later
 * sc_offsets_done() calls of older epochs still move the acked offsets and complete the copies
 * that sc_offsets_add() reported IN_FLIGHT. */
void sc_offsets_reset(sc_offsets_t *o);

/* The offset after the last one of partition whose message, and every earlier one this process
 * consumed there, was acknowledged (published): where this process may go on after the partition
 * comes back to it, whatever resets came between. -1 when it acknowledged nothing there. */
int64_t sc_offsets_acked(sc_offsets_t *o, int32_t partition);

/* Messages recorded and not yet acknowledged. */
size_t sc_offsets_pending(sc_offsets_t *o);

#endif
