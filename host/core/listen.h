/* listen.h - listen addresses ("host:port") as the configuration names them: checked when the
 * configuration loads (config.c) and bound by the metrics endpoint (host/metrics/http.c). */
#ifndef SC_LISTEN_H
#define SC_LISTEN_H

#include <stddef.h>

#include "host/core/status.h"

#define SC_METRICS_HOST_MAX 64 /* longest numeric listen address */

/*
 * Split a listen address: "127.0.0.1:9464", "[::1]:9464" or "localhost:9464" (= 127.0.0.1).
 * The host must be numeric (or localhost); the port 0..65535, 0 = any free port. host gets the
 * numeric address (hostlen >= SC_METRICS_HOST_MAX). SC_ERR_INVALID_ARG with a reason in errbuf.
 */
sc_status_t sc_metrics_listen_parse(const char *listen, char *host, size_t hostlen, int *port,
                                    char *errbuf, size_t errlen);

#endif
