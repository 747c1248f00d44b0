/* dev_broker.h - librdkafka's mock cluster serving the Kafka protocol on loopback: the embedded
 * default broker for the demo and the tests. */
#ifndef SC_DEV_BROKER_H
#define SC_DEV_BROKER_H

#include <stdbool.h>
#include <stddef.h>

#include "host/core/status.h"

typedef struct sc_dev_broker sc_dev_broker_t;

/* Start a one-broker mock cluster with the given topics (NULL-terminated), each with
 * `partitions` partitions. port 0: the mock's own port; otherwise a listener on 127.0.0.1:port
 * that forwards to it, so clients can be given a fixed bootstrap address.
 * @remark the caller stops it with sc_dev_broker_stop(). */
sc_status_t sc_dev_broker_start(int port, int partitions, const char *const *topics,
                                sc_dev_broker_t **out, char *errbuf, size_t errlen);
/* "127.0.0.1:PORT", borrowed. */
const char *sc_dev_broker_bootstrap(const sc_dev_broker_t *b);
/* Take the broker down (every connection closed, new ones refused) or bring it back up:
 * librdkafka's mock fault injection (rd_kafka_mock_broker_set_down/up). Logged either way. */
sc_status_t sc_dev_broker_set_down(sc_dev_broker_t *b, bool down, char *errbuf, size_t errlen);
void sc_dev_broker_stop(sc_dev_broker_t *b); /* NULL ok */

#endif
