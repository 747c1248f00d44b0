/* pipeline.h - what travels between the stages of DESIGN §1: one item per consumed message, and
 * the shared context of a running pipeline. */
#ifndef SC_PIPELINE_H
#define SC_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "host/core/config.h"
#include "host/gemini/gemini.h"
#include "host/core/message.h"
#include "host/metrics/metrics.h"
#include "host/core/status.h"
#include "models/encoder.h"
#include "pipelines/stages/prune.h"

#define SC_ITEM_ID_MAX 257
#define SC_ITEM_CACHE_NAME_MAX 128
#define SC_ITEM_ERR_MAX 512
#define SC_MODEL_MAX 128

typedef enum {
    SC_ITEM_NEW = 0,  /* consumed, not yet parsed */
    SC_ITEM_INVALID,  /* goes to the dead-letter topic */
    SC_ITEM_FORWARD,  /* goes upstream */
    SC_ITEM_FOLLOWING,/* coalesced: published with the answer of an item in flight */
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
    int64_t deadline_ms;     /* sc_now_ms() clock: when its upstream calls give up */
    sc_item_state_t state;
    /* parse stage */
    sc_request_t *req;       /* owned; NULL when invalid */
    sc_status_t error;       /* why invalid, or why the upstream failed */
    char id[SC_ITEM_ID_MAX]; /* from the request, also for dead letters */
    char errmsg[SC_ITEM_ERR_MAX];
    /* embed stage */
    float *vec;              /* owned: SC_EMBED_DIM floats of the last user turn, or NULL */
    long est_prompt_tokens;  /* local estimate of the whole prompt (system + every turn) */
    /* cache and coalescing (pipelines/stages/cache.c, coalesce.c) */
    uint64_t scope;          /* cache scope; 0: not cacheable */
    int cache_store;         /* store the answer when it is ok and finished with STOP */
    int adopted;             /* carried by a Batch Mode batch created before a crash: its answer
                              * (paid) comes from that batch, never from the cache or a leader */
    const char *source;      /* NULL = "llm"; "cache-exact", "cache-semantic", "coalesced" */
    double similarity;       /* of a cache hit; -1: none */
    char *shared_text;       /* owned: the answer taken from the cache or the coalescing leader */
    sc_usage_t shared_usage; /* the usage of the call that produced shared_text */
    char shared_model[SC_MODEL_MAX];
    struct sc_item *leader;  /* coalesced: the in-flight item whose answer this one shares */
    struct sc_item *followers; /* on a leader: items waiting for its answer (linked) */
    struct sc_item *next_follower;
    /* route stage */
    char model[SC_MODEL_MAX];
    const char *route;       /* "pinned", "default" or the tier ("lite", "cheap", "strong") */
    double route_score;      /* router score; -1: none */
    int tier;                /* index into the tiers; -1: pinned */
    const char *route_basis; /* why that tier (sc_result_t.route_basis); NULL: not routed */
    int router_tier;         /* the router's own cheaper pick inside its domain; -1: none */
    /* prune stage */
    sc_prune_plan_t plan;    /* owned (sc_prune_plan_clear) */
    long pruned_tokens;
    char *body_plain;        /* owned: the (pruned) body without a prompt cache, for promotion */
    char *summary_body;      /* owned: the summary call to make first, or NULL */
    double summary_cost_usd; /* what the summary call cost */
    /* prompt cache */
    char prompt_cache[SC_ITEM_CACHE_NAME_MAX]; /* cachedContents used; "" none */
    double storage_usd;      /* storage charge carried by this request */
    /* cascade */
    int promoted;
    double extra_cost_usd;   /* the failed attempts of a promoted request */
    sc_usage_t extra_usage;
    /* forward stage */
    int batch;               /* answered through Batch Mode (batch prices) */
    int retries;             /* resubmissions in later batches */
    sc_gemini_call_t *call;  /* owned once back from the client */
    /* ledger */
    double base_thoughts;    /* the naive request's thought tokens, estimated (thinking.h) when
                              * the answer did not come from the baseline model; -1: its own */
} sc_item_t;

/* A new item (the nullable numbers set to "none"). @remark the caller frees it with
 * sc_item_free(). NULL on allocation failure. */
sc_item_t *sc_item_new(void);
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

/* ---- stages (one file each, in pipelines/stages/) ---- */

/* The optimizer's stages (estimate, exact cache, embed, cache, coalesce, route, prune, call,
 * cascade) are internal: pipelines/stages/stages.h, run by pipelines/optimizer.c. */

/* stages/parse.c: parse and validate every NEW item: FORWARD, or INVALID with a reason. */
void sc_stage_parse(sc_batch_t *batch, const sc_limits_t *lim);

/* stages/ledger.c: the result of a DONE item as JSON: usage, cost, the baseline (the naive request:
 * the strong model, or the pinned one, on the full prompt, uncached, standard prices) and what
 * each technique saved, attributed in order: prune, route (failed cascade attempts count
 * against it), prompt cache (storage included), batch; a cache hit or a coalesced answer saves
 * its whole baseline (cache). The savings add up to baseline − cost.
 * @remark the caller frees the returned buffer with free(). */
char *sc_stage_ledger(const sc_item_t *item, const sc_config_t *cfg, sc_metrics_t *metrics,
                      size_t *len);

#endif
