/* status.h - the one status enum of scrimp and its messages. */
#ifndef SC_STATUS_H
#define SC_STATUS_H

typedef enum {
    SC_OK = 0,
    /* generic */
    SC_ERR_NOMEM,
    SC_ERR_INVALID_ARG,
    SC_ERR_IO,
    SC_ERR_TIMEOUT,
    SC_ERR_FULL,     /* a bounded queue or buffer is full */
    SC_ERR_CLOSED,   /* a queue or handle was closed */
    SC_ERR_NOT_FOUND,
    /* configuration */
    SC_ERR_CONFIG,
    /* message contracts */
    SC_ERR_JSON,     /* not JSON, or not UTF-8 */
    SC_ERR_INVALID,  /* valid JSON that breaks the request contract */
    SC_ERR_TOO_LARGE,
    /* Kafka */
    SC_ERR_KAFKA,
    /* GPU */
    SC_ERR_CUDA,     /* a CUDA or cuBLAS call failed, or no usable device */
    /* HTTP server */
    SC_ERR_HTTP_SERVER,
    /* upstream (Gemini) */
    SC_ERR_UPSTREAM_TRANSPORT,   /* connect/reset/TLS: retryable */
    SC_ERR_UPSTREAM_RETRYABLE,   /* 408/429/500/502/503/504 after the last retry */
    SC_ERR_UPSTREAM_REJECTED,    /* 400/403/404 and other final 4xx */
    SC_ERR_UPSTREAM_BAD_RESPONSE,/* 200 with a body we cannot parse */
    SC_ERR_DEADLINE,             /* the request's deadline passed */
} sc_status_t;

/* A fixed English message for each status; never NULL. */
const char *sc_strerror(sc_status_t st);

/* The short upper-case code used in result and dead-letter JSON ("UPSTREAM_UNAVAILABLE"). */
const char *sc_status_code(sc_status_t st);

#endif
