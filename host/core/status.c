/* status.c - messages and wire codes for sc_status_t (switch without default: a new code
 * without a message fails the build). */
#include "host/core/status.h"

const char *sc_strerror(sc_status_t st)
{
    switch (st) {
    case SC_OK: return "success";
    case SC_ERR_NOMEM: return "out of memory";
    case SC_ERR_INVALID_ARG: return "invalid argument";
    case SC_ERR_IO: return "input/output error";
    case SC_ERR_TIMEOUT: return "timed out";
    case SC_ERR_FULL: return "queue or buffer full";
    case SC_ERR_CLOSED: return "closed";
    case SC_ERR_NOT_FOUND: return "not found";
    case SC_ERR_CONFIG: return "invalid configuration";
    case SC_ERR_JSON: return "malformed JSON";
    case SC_ERR_INVALID: return "request breaks the contract";
    case SC_ERR_TOO_LARGE: return "message too large";
    case SC_ERR_KAFKA: return "Kafka error";
    case SC_ERR_CUDA: return "CUDA error";
    case SC_ERR_HTTP_SERVER: return "HTTP server error";
    case SC_ERR_UPSTREAM_TRANSPORT: return "upstream unreachable";
    case SC_ERR_UPSTREAM_RETRYABLE: return "upstream unavailable after retries";
    case SC_ERR_UPSTREAM_REJECTED: return "upstream rejected the request";
    case SC_ERR_UPSTREAM_BAD_RESPONSE: return "upstream sent a response that cannot be parsed";
    case SC_ERR_DEADLINE: return "request deadline exceeded";
    }
    return "unknown status";
}

const char *sc_status_code(sc_status_t st)
{
    switch (st) {
    case SC_OK: return "OK";
    case SC_ERR_NOMEM: return "INTERNAL";
    case SC_ERR_INVALID_ARG: return "INVALID_ARGUMENT";
    case SC_ERR_IO: return "INTERNAL";
    case SC_ERR_TIMEOUT: return "TIMEOUT";
    case SC_ERR_FULL: return "OVERLOADED";
    case SC_ERR_CLOSED: return "SHUTTING_DOWN";
    case SC_ERR_NOT_FOUND: return "NOT_FOUND";
    case SC_ERR_CONFIG: return "CONFIG";
    case SC_ERR_JSON: return "INVALID_JSON";
    case SC_ERR_INVALID: return "INVALID_REQUEST";
    case SC_ERR_TOO_LARGE: return "TOO_LARGE";
    case SC_ERR_KAFKA: return "KAFKA";
    case SC_ERR_CUDA: return "CUDA";
    case SC_ERR_HTTP_SERVER: return "HTTP_SERVER";
    case SC_ERR_UPSTREAM_TRANSPORT: return "UPSTREAM_UNAVAILABLE";
    case SC_ERR_UPSTREAM_RETRYABLE: return "UPSTREAM_UNAVAILABLE";
    case SC_ERR_UPSTREAM_REJECTED: return "UPSTREAM_REJECTED";
    case SC_ERR_UPSTREAM_BAD_RESPONSE: return "UPSTREAM_BAD_RESPONSE";
    case SC_ERR_DEADLINE: return "DEADLINE_EXCEEDED";
    }
    return "UNKNOWN";
}
