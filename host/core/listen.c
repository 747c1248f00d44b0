/* listen.c - split and check a listen address (listen.h). */
#include "host/core/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/util.h"

#define SC_LISTEN_MAX 128 /* longest listen string */

sc_status_t sc_metrics_listen_parse(const char *listen, char *host, size_t hostlen, int *port,
                                    char *errbuf, size_t errlen)
{
    char tmp[SC_LISTEN_MAX];
    const char *h, *p;
    if (!listen || !listen[0] || strlen(listen) >= sizeof tmp) {
        snprintf(errbuf, errlen, "metrics.listen: \"%s\" must be host:port", listen ? listen : "");
        return SC_ERR_INVALID_ARG;
    }
    sc_strlcpy(tmp, listen, sizeof tmp);
    if (tmp[0] == '[') { /* [v6]:port */
        char *close = strchr(tmp, ']');
        if (!close || close[1] != ':') {
            snprintf(errbuf, errlen, "metrics.listen: \"%s\" must be [address]:port", listen);
            return SC_ERR_INVALID_ARG;
        }
        *close = '\0';
        h = tmp + 1;
        p = close + 2;
    } else {
        char *colon = strrchr(tmp, ':');
        if (!colon || strchr(tmp, ':') != colon) {
            snprintf(errbuf, errlen,
                     "metrics.listen: \"%s\" must be host:port (IPv6 as [::1]:port)", listen);
            return SC_ERR_INVALID_ARG;
        }
        *colon = '\0';
        h = tmp;
        p = colon + 1;
    }
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (!p[0] || *end || errno || v < 0 || v > 65535) {
        snprintf(errbuf, errlen, "metrics.listen: port \"%s\" must be 0..65535", p);
        return SC_ERR_INVALID_ARG;
    }
    if (strcmp(h, "localhost") == 0)
        h = "127.0.0.1";
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, h, &a4) != 1 && inet_pton(AF_INET6, h, &a6) != 1) {
        snprintf(errbuf, errlen, "metrics.listen: host \"%s\" must be a numeric IPv4/IPv6 address",
                 h);
        return SC_ERR_INVALID_ARG;
    }
    if (strlen(h) >= hostlen) {
        snprintf(errbuf, errlen, "metrics.listen: host \"%s\" is too long", h);
        return SC_ERR_INVALID_ARG;
    }
    sc_strlcpy(host, h, hostlen);
    *port = (int)v;
    return SC_OK;
}
