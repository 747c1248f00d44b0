/* http.c - the /metrics, /healthz and /readyz endpoint on libmicrohttpd (http.h).
 * The server owns its daemon; the registry it serves is borrowed. */
#include "host/metrics/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host/core/log.h"
#include "host/core/util.h"

#define SC_MH_THREADS            2u /* a scraper or two and a health probe */
#define SC_MH_CONNECTION_LIMIT   64u
#define SC_MH_CONNECTION_TIMEOUT 10u /* seconds an idle connection is kept */
#define SC_MH_CTYPE_METRICS      "text/plain; version=0.0.4; charset=utf-8"
#define SC_MH_CTYPE_TEXT         "text/plain; charset=utf-8"

struct sc_metrics_server {
    struct MHD_Daemon *daemon;
    sc_metrics_t *m; /* borrowed */
    int port;
};

static int sc_mh_conn_marker; /* the per-connection state: nothing but "headers seen" */

/* ---- requests ---- */

static enum MHD_Result sc_mh_reply(struct MHD_Connection *conn, unsigned code, const char *ctype,
                                   char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (ret == MHD_YES && code == MHD_HTTP_METHOD_NOT_ALLOWED)
        ret = MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (ret == MHD_YES)
        ret = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp); /* the queued response keeps its own reference */
    return ret;
}

static enum MHD_Result sc_mh_text(struct MHD_Connection *conn, unsigned code, const char *text)
{
    return sc_mh_reply(conn, code, SC_MH_CTYPE_TEXT, (char *)text, strlen(text),
                       MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result sc_mh_access(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    (void)version;
    (void)upload_data;
    sc_metrics_server_t *srv = cls;
    if (!*con_cls) { /* headers only: answer once the (ignored) body is in */
        *con_cls = &sc_mh_conn_marker;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return sc_mh_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/metrics") == 0) {
        char *body = NULL;
        size_t len = 0;
        sc_status_t st = sc_metrics_render(srv->m, &body, &len);
        if (st != SC_OK) {
            sc_warn("metrics.render_failed", "status=%s", sc_status_code(st));
            return sc_mh_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed\n");
        }
        return sc_mh_reply(conn, MHD_HTTP_OK, SC_MH_CTYPE_METRICS, body, len,
                           MHD_RESPMEM_MUST_FREE);
    }
    if (strcmp(url, "/healthz") == 0)
        return sc_mh_text(conn, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0)
        return sc_metrics_ready(srv->m)
                   ? sc_mh_text(conn, MHD_HTTP_OK, "ready\n")
                   : sc_mh_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
    return sc_mh_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* ---- lifecycle ---- */

/* Bind a throwaway socket to learn why the address is unusable (MHD does not say). */
static void sc_mh_probe_bind(const struct sockaddr *sa, socklen_t salen, char *why, size_t len)
{
    sc_strlcpy(why, "unknown reason", len);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sc_strlcpy(why, strerror(errno), len);
        return;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, sa, salen) != 0)
        sc_strlcpy(why, strerror(errno), len);
    close(fd);
}

sc_status_t sc_metrics_server_start(sc_metrics_t *m, const char *listen, sc_metrics_server_t **out,
                                    char *errbuf, size_t errlen)
{
    sc_status_t st;
    sc_metrics_server_t *srv = NULL;
    char host[SC_METRICS_HOST_MAX];
    int port = 0, loopback;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!m || !out) {
        snprintf(errbuf, errlen, "metrics: registry or out is NULL");
        return SC_ERR_INVALID_ARG;
    }
    *out = NULL;
    st = sc_metrics_listen_parse(listen, host, sizeof host, &port, errbuf, errlen);
    if (st != SC_OK)
        goto out;

    struct sockaddr_storage ss;
    socklen_t sslen;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        sslen = sizeof *sin;
        loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    } else {
        (void)inet_pton(AF_INET6, host, &sin6->sin6_addr); /* checked by the parse */
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        sslen = sizeof *sin6;
        flags |= MHD_USE_IPv6;
        loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
    }

    srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(errbuf, errlen, "metrics: out of memory");
        st = SC_ERR_NOMEM;
        goto out;
    }
    srv->m = m;
    srv->daemon =
        MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, sc_mh_access, srv, MHD_OPTION_SOCK_ADDR,
                         (const struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, SC_MH_THREADS,
                         MHD_OPTION_CONNECTION_LIMIT, SC_MH_CONNECTION_LIMIT,
                         MHD_OPTION_CONNECTION_TIMEOUT, SC_MH_CONNECTION_TIMEOUT, MHD_OPTION_END);
    if (!srv->daemon) {
        char why[128];
        sc_mh_probe_bind((const struct sockaddr *)&ss, sslen, why, sizeof why);
        snprintf(errbuf, errlen, "metrics: cannot listen on %s: %s", listen, why);
        st = SC_ERR_HTTP_SERVER;
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info && info->port ? (int)info->port : port;
    if (srv->port == 0) {
        snprintf(errbuf, errlen, "metrics: cannot learn the bound port");
        st = SC_ERR_HTTP_SERVER;
        goto out;
    }
    if (!loopback)
        sc_warn("metrics.public", "host=%s port=%d (metrics.listen is not a loopback address)",
                host, srv->port);
    sc_info("metrics.start", "host=%s port=%d", host, srv->port);
    *out = srv;
    srv = NULL;
out:
    sc_metrics_server_stop(srv);
    return st;
}

int sc_metrics_server_port(const sc_metrics_server_t *srv)
{
    return srv ? srv->port : -1;
}

void sc_metrics_server_stop(sc_metrics_server_t *srv)
{
    if (!srv)
        return;
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon);
    free(srv);
}
