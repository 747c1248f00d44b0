/* http.h - the observability endpoint (libmicrohttpd): /metrics in the Prometheus text
 * format, /healthz and /readyz, bound to one configured address (loopback by default). */
#ifndef SC_METRICS_HTTP_H
#define SC_METRICS_HTTP_H

#include <stddef.h>

#include "host/metrics/metrics.h"
#include "host/core/listen.h"
#include "host/core/status.h"

typedef struct sc_metrics_server sc_metrics_server_t;

/*
 * Serve m on listen (see sc_metrics_listen_parse), on the given address only:
 *   GET /metrics  200, Content-Type "text/plain; version=0.0.4; charset=utf-8", sc_metrics_render
 *   GET /healthz  200 "ok" while the process runs
 *   GET /readyz   200 "ready" once sc_metrics_set_ready(m, 1), else 503 "not ready"
 *   anything else 404 (405 for a method other than GET or HEAD).
 * m is borrowed and must outlive the server. A non-loopback address is served as configured and
 * logged as a warning. @remark the caller stops and frees the server with
 * sc_metrics_server_stop(). SC_ERR_INVALID_ARG for a bad address, SC_ERR_HTTP_SERVER when it
 * cannot listen (errbuf says why).
 */
sc_status_t sc_metrics_server_start(sc_metrics_t *m, const char *listen, sc_metrics_server_t **out,
                                    char *errbuf, size_t errlen);

/* The port the server listens on (useful after port 0); -1 for NULL. */
int sc_metrics_server_port(const sc_metrics_server_t *srv);

/* Stop serving (waits for requests in progress) and free. NULL ok. */
void sc_metrics_server_stop(sc_metrics_server_t *srv);

#endif
