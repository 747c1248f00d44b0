/* pipeline.h - what travels between the stages of DESIGN §1: one item per consumed message, and
 * the shared context of a running pipeline. */
#ifndef SC_PIPELINE_H
#define SC_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "host/config.h"
#include "host/gemini.h"
#include "host/message.h"
#include "host/metrics.h"
#include "host/status.h"
#include "models/encoder.h"

#define SC_ITEM_ID_MAX 257
#define SC_ITEM_ERR_MAX 512
#define SC_MODEL_MAX 128

typedef enum {
    SC_ITEM_NEW = 0,  /* consumed, not yet parsed */
    SC_ITEM_INVALID,  /* goes to the dead-letter topic */
    SC_ITEM_FORWARD,  /* goes upstream */
    SC_ITEM_DONE,     /* has its result (ok or error) */
} sc_item_state_t;

/* One consumed message on its way to exactly one result or dead letter. */
typedef struct sc_item {
    /* source coordinates */
    int32_t partition;
    int64_t offset;
    uint64_t epoch;          /* assignment epoch of the offset tracker when consumed */
    void *raw;               /* owned copy of the message value */
    size_t raw_len;
    int64_t consumed_ms;     /* sc_now_ms() when consumed */
    sc_item_state_t state;
    /* parse stage */
    sc_request_t *req;       /* owned; NULL when invalid */
    sc_status_t error;       /* why invalid, or why the upstream failed */
    char id[SC_ITEM_ID_MAX]; /* from the request, also for dead letters */
    char errmsg[SC_ITEM_ERR_MAX];
    /* embed stage */
    float *vec;              /* owned: SC_EMBED_DIM floats of the last user turn, or NULL */
    /* route stage */
    char model[SC_MODEL_MAX];
    const char *route;       /* "pinned" or "default" (static strings) */
    /* forward stage */
    int batch;               /* answered through Batch Mode (batch prices) */
    int retries;             /* resubmissions in later batches */
    sc_gemini_call_t *call;  /* owned once back from the client */
} sc_item_t;

/* @remark frees the item and everything it owns; NULL ok. */
void sc_item_free(sc_item_t *item);

/* A micro-batch: the unit each stage takes. */
typedef struct {
    sc_item_t **items; /* owned array; the items too */
    size_t n;
} sc_batch_t;

void sc_batch_free(sc_batch_t *batch); /* frees the items still in it; NULL ok */

/* A rough local token estimate for budgets (the simulator and Gemini's English text average about
 * 4 characters per token). */
#define SC_CHARS_PER_TOKEN 4

/* ---- shared set-up (upstream.c) ---- */

/* The Gemini client from gemini.* and rate_limits.* (@remark the caller frees it). */
sc_status_t sc_upstream_from_config(const sc_config_t *cfg, sc_gemini_t **out, char *errbuf,
                                    size_t errlen);
/* limits.* into lim. */
void sc_limits_from_config(const sc_config_t *cfg, sc_limits_t *lim);

/* ---- stages (one file each) ---- */

/* parse.c: parse and validate every NEW item: FORWARD, or INVALID with a reason. */
void sc_stage_parse(sc_batch_t *batch, const sc_limits_t *lim);

/* embed_stage.c: embed the last user turn of every FORWARD item (one encoder call for the
 * batch); on failure the items go on without a vector. */
sc_status_t sc_stage_embed(sc_batch_t *batch, sc_encoder_t *enc);

/* route.c: choose the model of every FORWARD item (pinned wins; else models.default, where
 * "auto" means models.strong until a router is configured). */
void sc_stage_route(sc_batch_t *batch, const sc_config_t *cfg);

/* ledger.c: the result of a DONE item as JSON, with usage, cost and baseline cost.
 * @remark the caller frees the returned buffer with free(). */
char *sc_stage_ledger(const sc_item_t *item, const sc_config_t *cfg, sc_metrics_t *metrics,
                      size_t *len);

#endif
