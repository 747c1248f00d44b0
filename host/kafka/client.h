/* client.h - Kafka clients as the configuration describes them, shared by serve and the tools
 * that talk to the cluster. */
#ifndef SC_KAFKA_CLIENT_H
#define SC_KAFKA_CLIENT_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "host/core/config.h"
#include "host/core/status.h"

#define SC_KAFKA_ERRSTR 512 /* librdkafka error strings and property values */

/*
 * A librdkafka configuration from the kafka.* keys (strings, numbers and booleans as their text),
 * over scrimp's defaults: for a consumer auto.offset.reset=earliest, enable.auto.commit=true,
 * fetch.wait.max.ms=50; for a producer linger.ms=5, acks=all. A consumer always gets
 * enable.auto.offset.store=false (scrimp stores offsets behind acknowledged results): setting it
 * otherwise is an error. Consumer-only keys are not handed to a producer. Logs and errors go to
 * scrimp's log. NULL with the key and librdkafka's reason in errbuf.
 * @remark the caller owns the result (rd_kafka_new() takes it, or rd_kafka_conf_destroy()).
 */
rd_kafka_conf_t *sc_kafka_conf_new(const sc_config_t *cfg, int consumer, char *errbuf,
                                   size_t errlen);

/*
 * The cluster answers metadata within pipeline.startup_timeout_ms, and each of the ntopics topics
 * exists. SC_ERR_KAFKA naming the address or the missing topic in errbuf.
 */
sc_status_t sc_kafka_check(rd_kafka_t *rk, const sc_config_t *cfg, const char *const *topics,
                           size_t ntopics, char *errbuf, size_t errlen);

#endif
