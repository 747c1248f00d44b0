/* dev_broker.c - the embedded development broker: librdkafka's mock cluster (a Kafka-protocol
 * broker inside this process, on loopback), plus an optional fixed-port forwarder for the
 * bootstrap address. */
#include "host/kafka/dev_broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "host/core/log.h"
#include "host/core/util.h"

#define DEV_BROKER_ADDR_MAX 64
#define DEV_BROKER_RELAY_BUF 65536
#define DEV_BROKER_POLL_MS 200

struct sc_dev_broker {
    rd_kafka_t *rk;                  /* owned: hosts the mock cluster */
    rd_kafka_mock_cluster_t *mcluster; /* owned */
    char mock_addr[DEV_BROKER_ADDR_MAX];
    char bootstrap[DEV_BROKER_ADDR_MAX];
    int listen_fd;                   /* -1 without a forwarder */
    pthread_t acceptor;
    int acceptor_started;
    atomic_int stopping;
    atomic_int relays;               /* relay threads alive */
};

/* ---- forwarder: 127.0.0.1:port → the mock broker ---- */

typedef struct {
    sc_dev_broker_t *b;
    int client, upstream;
} relay_t;

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

static void *relay_main(void *arg)
{
    relay_t *r = arg;
    char *buf = malloc(DEV_BROKER_RELAY_BUF);
    struct pollfd pf[2] = {{.fd = r->client, .events = POLLIN}, {.fd = r->upstream, .events = POLLIN}};
    while (buf && !atomic_load(&r->b->stopping)) {
        int n = poll(pf, 2, DEV_BROKER_POLL_MS);
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        int done = 0;
        for (int i = 0; i < 2 && !done; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t rd = read(pf[i].fd, buf, DEV_BROKER_RELAY_BUF);
            if (rd <= 0 || write_all(pf[1 - i].fd, buf, (size_t)rd) != 0)
                done = 1;
        }
        if (done)
            break;
    }
    free(buf);
    close(r->client);
    close(r->upstream);
    atomic_fetch_sub(&r->b->relays, 1);
    free(r);
    return NULL;
}

static int connect_mock(const char *addr)
{
    char host[DEV_BROKER_ADDR_MAX];
    sc_strlcpy(host, addr, sizeof host);
    char *colon = strrchr(host, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *acceptor_main(void *arg)
{
    sc_dev_broker_t *b = arg;
    struct pollfd pf = {.fd = b->listen_fd, .events = POLLIN};
    while (!atomic_load(&b->stopping)) {
        if (poll(&pf, 1, DEV_BROKER_POLL_MS) <= 0)
            continue;
        int c = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        int u = connect_mock(b->mock_addr);
        relay_t *r = u >= 0 ? malloc(sizeof *r) : NULL;
        pthread_t t;
        if (!r) {
            close(c);
            if (u >= 0)
                close(u);
            continue;
        }
        *r = (relay_t){.b = b, .client = c, .upstream = u};
        atomic_fetch_add(&b->relays, 1);
        if (pthread_create(&t, NULL, relay_main, r) != 0) {
            atomic_fetch_sub(&b->relays, 1);
            close(c);
            close(u);
            free(r);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

static sc_status_t start_forwarder(sc_dev_broker_t *b, int port, char *errbuf, size_t errlen)
{
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    b->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (b->listen_fd < 0 ||
        setsockopt(b->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(b->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(b->listen_fd, SOMAXCONN) != 0) {
        snprintf(errbuf, errlen, "cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
        return SC_ERR_KAFKA;
    }
    if (pthread_create(&b->acceptor, NULL, acceptor_main, b) != 0) {
        snprintf(errbuf, errlen, "cannot start the forwarder thread");
        return SC_ERR_NOMEM;
    }
    b->acceptor_started = 1;
    snprintf(b->bootstrap, sizeof b->bootstrap, "127.0.0.1:%d", port);
    return SC_OK;
}

/* ---- the mock cluster ---- */

sc_status_t sc_dev_broker_start(int port, int partitions, const char *const *topics,
                                sc_dev_broker_t **out, char *errbuf, size_t errlen)
{
    sc_status_t st = SC_OK;
    char kerr[256];
    if (partitions < 1 || port < 0 || port > 65535) {
        snprintf(errbuf, errlen, "partitions must be >= 1 and port in 0..65535");
        return SC_ERR_INVALID_ARG;
    }
    sc_dev_broker_t *b = calloc(1, sizeof *b);
    if (!b)
        return SC_ERR_NOMEM;
    b->listen_fd = -1;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", kerr, sizeof kerr);
    b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr); /* takes conf */
    if (!b->rk) {
        snprintf(errbuf, errlen, "cannot create the broker's host handle: %s", kerr);
        st = SC_ERR_KAFKA;
        goto out;
    }
    b->mcluster = rd_kafka_mock_cluster_new(b->rk, 1);
    if (!b->mcluster) {
        snprintf(errbuf, errlen, "cannot start librdkafka's mock cluster");
        st = SC_ERR_KAFKA;
        goto out;
    }
    sc_strlcpy(b->mock_addr, rd_kafka_mock_cluster_bootstraps(b->mcluster), sizeof b->mock_addr);
    for (size_t i = 0; topics && topics[i]; i++) {
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(b->mcluster, topics[i], partitions, 1);
        if (err) {
            snprintf(errbuf, errlen, "cannot create topic %s: %s", topics[i], rd_kafka_err2str(err));
            st = SC_ERR_KAFKA;
            goto out;
        }
    }
    if (port > 0)
        st = start_forwarder(b, port, errbuf, errlen);
    else
        sc_strlcpy(b->bootstrap, b->mock_addr, sizeof b->bootstrap);
    if (st)
        goto out;
    sc_info("broker.start", "bootstrap=%s mock=%s partitions=%d", b->bootstrap, b->mock_addr,
            partitions);
    *out = b;
    return SC_OK;
out:
    sc_dev_broker_stop(b);
    return st;
}

const char *sc_dev_broker_bootstrap(const sc_dev_broker_t *b)
{
    return b->bootstrap;
}

sc_status_t sc_dev_broker_set_down(sc_dev_broker_t *b, bool down, char *errbuf, size_t errlen)
{
    /* the cluster has one broker, id 1 */
    rd_kafka_resp_err_t err = down ? rd_kafka_mock_broker_set_down(b->mcluster, 1)
                                   : rd_kafka_mock_broker_set_up(b->mcluster, 1);
    if (err) {
        snprintf(errbuf, errlen, "cannot take the broker %s: %s", down ? "down" : "up",
                 rd_kafka_err2str(err));
        return SC_ERR_KAFKA;
    }
    sc_info(down ? "broker.down" : "broker.up", "bootstrap=%s", b->bootstrap);
    return SC_OK;
}

void sc_dev_broker_stop(sc_dev_broker_t *b)
{
    if (!b)
        return;
    atomic_store(&b->stopping, 1);
    if (b->acceptor_started)
        pthread_join(b->acceptor, NULL);
    if (b->listen_fd >= 0) {
        close(b->listen_fd);
        /* relays notice `stopping` within one poll interval */
        for (int i = 0; i < 50 && atomic_load(&b->relays) > 0; i++)
            usleep(DEV_BROKER_POLL_MS * 1000 / 10);
    }
    if (b->mcluster)
        rd_kafka_mock_cluster_destroy(b->mcluster);
    if (b->rk)
        rd_kafka_destroy(b->rk);
    free(b);
}
