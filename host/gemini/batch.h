/* batch.h - Gemini Batch Mode (gemini-api.md §5): create an inline batch, poll it, read its
 * results by metadata.key, cancel, delete, and find a batch by display name. Blocking calls on
 * their own curl handle: a backfill makes a few of them a minute. */
#ifndef SC_GEMINI_BATCH_H
#define SC_GEMINI_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "host/gemini/gemini.h"
#include "host/core/status.h"

#define SC_BATCH_NAME_MAX 160

typedef enum {
    SC_BATCH_UNSPECIFIED = 0,
    SC_BATCH_PENDING,
    SC_BATCH_RUNNING,
    SC_BATCH_SUCCEEDED,
    SC_BATCH_FAILED,
    SC_BATCH_CANCELLED,
    SC_BATCH_EXPIRED,
} sc_batch_state_t;

/* 1 for SUCCEEDED, FAILED, CANCELLED, EXPIRED. */
int sc_batch_state_terminal(sc_batch_state_t s);
const char *sc_batch_state_name(sc_batch_state_t s);
/* "BATCH_STATE_RUNNING" or "JOB_STATE_RUNNING" (both prefixes are seen on the wire). */
sc_batch_state_t sc_batch_state_parse(const char *s);

typedef struct sc_batch_client sc_batch_client_t;

/* base_url and api_key are copied. timeout_ms bounds each HTTP call.
 * @remark the caller frees with sc_batch_client_free(). */
sc_status_t sc_batch_client_new(const char *base_url, const char *api_key, long timeout_ms,
                                sc_batch_client_t **out, char *errbuf, size_t errlen);
void sc_batch_client_free(sc_batch_client_t *c); /* NULL ok */

/* One request of a batch: its key (echoed back in metadata.key) and its generateContent body. */
typedef struct {
    const char *key;
    const char *body; /* JSON object text */
    size_t body_len;
} sc_batch_item_t;

/* The size in bytes of the create request for these items (for the 20 MB inline limit). */
size_t sc_batch_request_size(const char *display_name, const sc_batch_item_t *items, size_t n);

/*
 * POST models/{model}:batchGenerateContent. On success name gets "batches/…". Creation is not
 * idempotent: SC_ERR_UPSTREAM_TRANSPORT or a 5xx means the outcome is unknown — look the batch up
 * by display name (sc_batch_find) before creating it again. Not retried here.
 */
sc_status_t sc_batch_create(sc_batch_client_t *c, const char *model, const char *display_name,
                            const sc_batch_item_t *items, size_t n, char *name, size_t namelen,
                            char *errbuf, size_t errlen);

typedef struct {
    sc_batch_state_t state;
    int done;
    long long requests, succeeded, failed, pending; /* batchStats, 0 when absent */
    char error[512];                                /* the batch's own error, when FAILED */
} sc_batch_status_t;

/* For each result of a finished batch: its key and the outcome in call's out fields (status
 * SC_OK with text/usage, or SC_ERR_UPSTREAM_REJECTED/RETRYABLE with err_status/err_message). */
typedef void (*sc_batch_result_cb)(const char *key, sc_gemini_call_t *call, void *arg);

/* GET batches/{id}. When done with results, each is passed to cb (cb may be NULL). */
sc_status_t sc_batch_get(sc_batch_client_t *c, const char *name, sc_batch_status_t *st,
                         sc_batch_result_cb cb, void *arg, char *errbuf, size_t errlen);

/* The body of GET batches/{id} (len bytes; a batch Operation) into *st; when it is done and
 * SUCCEEDED, each of its inlined results is passed to cb (cb may be NULL). SC_OK, or
 * SC_ERR_UPSTREAM_BAD_RESPONSE when the body is not a JSON object. */
sc_status_t sc_batch_parse_operation(const char *body, size_t len, sc_batch_status_t *st,
                                     sc_batch_result_cb cb, void *arg);

/* One result of a batch, r (borrowed): an element of inlinedResponses, {"metadata": {"key"},
 * "response" | "error"}. *key gets its key (borrowed from r). NULL when it has no key (it cannot
 * be matched) or on allocation failure. @remark the caller frees the call with
 * sc_gemini_call_free(). */
sc_gemini_call_t *sc_batch_parse_result(json_t *r, const char **key);

/* Find a batch by display name among the listed ones: SC_OK with name filled, SC_ERR_NOT_FOUND. */
sc_status_t sc_batch_find(sc_batch_client_t *c, const char *display_name, char *name,
                          size_t namelen, char *errbuf, size_t errlen);

sc_status_t sc_batch_cancel(sc_batch_client_t *c, const char *name, char *errbuf, size_t errlen);
sc_status_t sc_batch_delete(sc_batch_client_t *c, const char *name, char *errbuf, size_t errlen);

#endif
