/* client.c - librdkafka set-up from the configuration (client.h): the kafka.* keys, scrimp's
 * defaults, the settings at-least-once depends on, logging into scrimp's log. */
#include "host/kafka/client.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "host/core/log.h"
#include "host/core/util.h"

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    sc_log(level <= 3 ? SC_LOG_ERROR : level <= 4 ? SC_LOG_WARN : SC_LOG_DEBUG, "kafka.log",
           "fac=%s msg=\"%s\"", fac, buf);
}

static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    sc_error("kafka.error", "code=%s reason=\"%s\"", rd_kafka_err2name((rd_kafka_resp_err_t)err),
             reason);
}

/* Consumer-only properties, not handed to the producer (librdkafka would warn about each). */
static int consumer_only(const char *key)
{
    static const char *keys[] = {"group.", "enable.auto.", "auto.offset.reset", "auto.commit.",
                                 "session.timeout.ms", "heartbeat.interval.ms",
                                 "max.poll.interval.ms", "partition.assignment.strategy",
                                 "fetch.", "isolation.level", "enable.partition.eof",
                                 "check.crcs", "queued.", "allow.auto.create.topics"};
    for (size_t i = 0; i < SC_ARRAY_LEN(keys); i++)
        if (strncmp(key, keys[i], strlen(keys[i])) == 0)
            return 1;
    return 0;
}

rd_kafka_conf_t *sc_kafka_conf_new(const sc_config_t *cfg, int consumer, char *errbuf, size_t errlen)
{
    char kerr[SC_KAFKA_ERRSTR];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (consumer) { /* defaults the user may override */
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", kerr, sizeof kerr);
        rd_kafka_conf_set(conf, "enable.auto.commit", "true", kerr, sizeof kerr);
        /* librdkafka's 500 ms default is how long an idle fetch may be held; the dev broker holds
         * it that long even when data arrives, which would dominate end-to-end latency. */
        rd_kafka_conf_set(conf, "fetch.wait.max.ms", "50", kerr, sizeof kerr);
    } else {
        rd_kafka_conf_set(conf, "linger.ms", "5", kerr, sizeof kerr);
        rd_kafka_conf_set(conf, "acks", "all", kerr, sizeof kerr);
    }
    const char *key;
    json_t *val;
    json_object_foreach(sc_config_node(cfg, "kafka"), key, val) {
        if (!consumer && consumer_only(key))
            continue;
        char sval[SC_KAFKA_ERRSTR];
        if (json_is_string(val))
            sc_strlcpy(sval, json_string_value(val), sizeof sval);
        else if (json_is_integer(val))
            snprintf(sval, sizeof sval, "%lld", (long long)json_integer_value(val));
        else if (json_is_real(val))
            snprintf(sval, sizeof sval, "%g", json_real_value(val));
        else
            sc_strlcpy(sval, json_is_true(val) ? "true" : "false", sizeof sval);
        if (rd_kafka_conf_set(conf, key, sval, kerr, sizeof kerr) != RD_KAFKA_CONF_OK) {
            snprintf(errbuf, errlen, "kafka.%s: %s", key, kerr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (consumer) { /* what at-least-once depends on: not overridable */
        size_t n = sizeof kerr;
        if (rd_kafka_conf_get(conf, "enable.auto.offset.store", kerr, &n) == RD_KAFKA_CONF_OK &&
            strcmp(kerr, "false") != 0 && json_object_get(sc_config_node(cfg, "kafka"),
                                                          "enable.auto.offset.store")) {
            snprintf(errbuf, errlen, "kafka.enable.auto.offset.store: must stay false; scrimp "
                     "stores offsets itself once results are acknowledged");
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", kerr, sizeof kerr);
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
    return conf;
}

sc_status_t sc_kafka_check(rd_kafka_t *rk, const sc_config_t *cfg, const char *const *topics,
                           size_t ntopics, char *errbuf, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    int timeout = (int)sc_config_int(cfg, "pipeline.startup_timeout_ms");
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, timeout);
    if (err) {
        snprintf(errbuf, errlen, "cannot reach Kafka at %s within %d ms: %s",
                 sc_config_str(cfg, "kafka.bootstrap.servers"), timeout, rd_kafka_err2str(err));
        return SC_ERR_KAFKA;
    }
    sc_status_t st = SC_OK;
    for (size_t i = 0; i < ntopics && !st; i++) {
        int found = 0;
        for (int t = 0; t < md->topic_cnt; t++)
            if (strcmp(md->topics[t].topic, topics[i]) == 0 && !md->topics[t].err)
                found = 1;
        if (!found) {
            snprintf(errbuf, errlen, "Kafka topic \"%s\" does not exist on %s", topics[i],
                     sc_config_str(cfg, "kafka.bootstrap.servers"));
            st = SC_ERR_KAFKA;
        }
    }
    rd_kafka_metadata_destroy(md);
    return st;
}
