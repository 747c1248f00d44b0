/* metrics.h - the process's metrics registry: counters, gauges and fixed-bucket histograms with
 * a fixed label schema per family, bounded cardinality, and the Prometheus text exposition. */
#ifndef SC_METRICS_H
#define SC_METRICS_H

#include <stddef.h>

#include "host/core/config.h"
#include "host/core/message.h"
#include "host/core/status.h"

typedef struct sc_metrics sc_metrics_t;

/*
 * Cardinality bounds.
 *
 * Every label value goes through a vocabulary before it names a series:
 *  - tenant: the first max_tenants distinct tenants seen are kept (first come, first kept: a
 *    tenant admitted early stays even when it goes quiet); every later tenant is "other";
 *  - agent, stage (the request's tags), model, shadow tier, guard reason, upstream error code,
 *    pipeline stage, queue and dead-letter code: the first SC_METRICS_MAX_VALUES distinct values
 *    of each, then "other";
 *  - source, status, token kind, technique, cache outcome and shadow outcome: fixed lists;
 *    anything else is "other".
 * A missing or empty value is "none"; a value that is not UTF-8 is "other"; a longer value is cut
 * at a character boundary to SC_METRICS_VALUE_MAX bytes.
 * On top of that each family holds at most SC_METRICS_MAX_SERIES label sets; an observation that
 * would make one more lands in the family's overflow series, whose every label is "other", and is
 * counted in scrimp_metrics_overflow_total{family}.
 */
#define SC_METRICS_MAX_SERIES          1000
#define SC_METRICS_MAX_VALUES          100
#define SC_METRICS_MAX_TENANTS_DEFAULT 50 /* config metrics.max_tenants */
#define SC_METRICS_MAX_TENANTS_LIMIT   SC_METRICS_MAX_SERIES
_Static_assert(SC_METRICS_MAX_TENANTS_LIMIT == SC_CONFIG_MAX_TENANTS,
               "metrics.max_tenants: the configuration's bound and the registry's differ");
#define SC_METRICS_VALUE_MAX           128
#define SC_METRICS_RENDER_MAX          ((size_t)64 * 1024 * 1024) /* largest exposition */

/* A registry with every family defined and no series yet; not ready. max_tenants starts at
 * SC_METRICS_MAX_TENANTS_DEFAULT. @remark the caller frees it with sc_metrics_free(). */
sc_status_t sc_metrics_new(sc_metrics_t **out);
void sc_metrics_free(sc_metrics_t *m); /* NULL ok */

/* The tenant bound K (config metrics.max_tenants, 1..SC_METRICS_MAX_TENANTS_LIMIT). Call it before
 * the first observation: tenants already admitted stay admitted. SC_ERR_INVALID_ARG when out of
 * range. */
sc_status_t sc_metrics_set_max_tenants(sc_metrics_t *m, size_t max_tenants);

/*
 * Everything a published result says (DESIGN §4.2), one call per result:
 *   scrimp_requests_total{tenant,agent,stage,model,source,status}
 *   scrimp_tokens_total{tenant,agent,stage,model,source,kind}   kind=prompt|cached|output|thought
 *   scrimp_cost_usd_total{tenant,agent,stage,model,source}   (source="shadow": sc_metrics_shadow)
 *   scrimp_baseline_cost_usd_total{tenant,agent,stage,model,source}
 *   scrimp_savings_usd_total{tenant,agent,stage,model,source,technique}
 *        technique=cache|prune|route|prompt_cache|batch; positive amounts only
 *   scrimp_overspend_usd_total{…same…}   negative per-technique amounts, as positive numbers
 *        (a counter never decreases; e.g. a cascade promotion that cost more than it saved);
 *        technique="shadow" comes from sc_metrics_shadow only
 *   scrimp_result_errors_total{tenant,code}   status error only, code = r->error_code
 *   scrimp_request_latency_seconds{tenant,agent,stage,model,source}   histogram of latency_ms
 * r is borrowed for the call. NULL m or r: nothing.
 */
void sc_metrics_observe_result(sc_metrics_t *m, const sc_result_t *r);

/*
 * One finished (or dropped) shadow comparison:
 *   scrimp_shadow_calls_total{tenant,agent,stage,tier,outcome}
 *        outcome=agree|disagree|no_evidence|failed|dropped
 *   scrimp_shadow_cost_usd_total{tenant,agent,stage,model}   what the shadow and judge calls cost
 * and the same cost in scrimp_cost_usd_total{tenant,agent,stage,model,source="shadow"} and in
 * scrimp_overspend_usd_total{tenant,agent,stage,model,source="shadow",technique="shadow"}, so that
 * the totals a dashboard sums include it (the baseline is unchanged: a shadow call replaces no
 * naive request). tier: the cheaper tier whose evidence the sample is; model: the shadow call's.
 * A NULL agent or stage is "none", as in every other family. cost_usd is 0 for dropped; a
 * non-positive or non-finite cost adds nothing. NULL m: nothing.
 */
void sc_metrics_shadow(sc_metrics_t *m, const char *tenant, const char *agent, const char *stage,
                       const char *tier, const char *model, const char *outcome, double cost_usd);

/*
 * The agreement estimate of one scope and tier (gauges, set, not added):
 *   scrimp_route_agreement{tenant,agent,stage,tier}          Wilson lower bound
 *   scrimp_route_agreement_rate{tenant,agent,stage,tier}     k / n
 *   scrimp_route_agreement_samples{tenant,agent,stage,tier}  n (decayed comparisons)
 * Tenants beyond max_tenants share the "other" series, which then holds the estimate set last.
 * A NaN value leaves its gauge as it was. NULL m: nothing.
 */
void sc_metrics_route_agreement(sc_metrics_t *m, const char *tenant, const char *agent,
                                const char *stage, const char *tier, double lower, double rate,
                                double samples);

/* scrimp_cache_lookups_total{tenant,outcome}; outcome "hit_exact", "hit_semantic" or "miss". */
void sc_metrics_cache(sc_metrics_t *m, const char *tenant, const char *outcome);

/* scrimp_cache_guard_refusals_total{reason}: a semantic hit a guard refused. */
void sc_metrics_guard_refusal(sc_metrics_t *m, const char *reason);

/* scrimp_upstream_errors_total{model,code}: one failed upstream attempt. code: the HTTP status
 * ("429", "503") or a word for what had none ("transport", "timeout", "bad_response"). */
void sc_metrics_upstream_error(sc_metrics_t *m, const char *model, const char *code);

/* The same for a call that ended with its last answer's HTTP status: "transport" for 0 (no
 * response), else the number. */
void sc_metrics_upstream_http_error(sc_metrics_t *m, const char *model, long http_status);

/* scrimp_upstream_retries_total{model}: one attempt after the first. */
void sc_metrics_retry(sc_metrics_t *m, const char *model);
/* n of them at once (a finished call's attempts - 1; nothing for n <= 0). */
void sc_metrics_retries(sc_metrics_t *m, const char *model, long n);

/* scrimp_stage_latency_seconds{pipeline_stage} histogram: time one pipeline stage took for one
 * micro-batch ("parse", "embed", "lookup", "prune", "route", "upstream", "publish", …). The
 * label is pipeline_stage, not stage, which is the request's own tag. */
void sc_metrics_stage_latency(sc_metrics_t *m, const char *pipeline_stage, double seconds);

/* scrimp_batch_size histogram: messages in one consumed micro-batch. */
void sc_metrics_batch_size(sc_metrics_t *m, size_t messages);

/* scrimp_dead_letters_total{code}: one message sent to the dead-letter topic. */
void sc_metrics_dead_letter(sc_metrics_t *m, const char *code);

/*
 * Set a gauge by name:
 *   "consumer_lag"        scrimp_consumer_lag: messages behind the high watermark, all partitions
 *   "upstream_inflight"   scrimp_upstream_inflight: upstream calls running or waiting to retry
 *   "queue_depth:<queue>" scrimp_queue_depth{queue="<queue>"}: items in one bounded queue
 *   "changelog_restore_seconds", "changelog_restore_records", "changelog_read_bytes",
 *   "changelog_published", "changelog_applied", "cache_entries": the cache changelog's
 *                         scrimp_changelog_* gauges and scrimp_cache_entries
 * SC_ERR_INVALID_ARG for any other name.
 */
sc_status_t sc_metrics_gauge_set(sc_metrics_t *m, const char *name, double value);

/* The same as gauge_set("queue_depth:<queue>", depth), without building the name. */
void sc_metrics_queue_depth(sc_metrics_t *m, const char *queue, double depth);

/* scrimp_ready (0/1) and what /readyz answers; sc_metrics_ready() takes no lock. */
void sc_metrics_set_ready(sc_metrics_t *m, int ready);
int sc_metrics_ready(const sc_metrics_t *m);

/*
 * The whole registry in the Prometheus text format 0.0.4. *out is a new NUL-terminated buffer,
 * *len its length without the NUL. @remark the caller frees *out with free().
 * SC_ERR_NOMEM, or SC_ERR_TOO_LARGE beyond SC_METRICS_RENDER_MAX.
 */
sc_status_t sc_metrics_render(sc_metrics_t *m, char **out, size_t *len);

#endif
