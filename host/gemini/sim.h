/* sim.h - a local server that speaks the Gemini REST API (gemini-api.md) for the demo,
 * the tests and the benchmarks, with seeded fault injection. */
#ifndef SC_GEMINI_SIM_H
#define SC_GEMINI_SIM_H

#include <stddef.h>

#include "host/core/status.h"

typedef struct sc_gemini_sim sc_gemini_sim_t;

typedef struct {
    const char *host;    /* listen address, default "127.0.0.1" when NULL */
    int port;            /* 0 = any free port */
    const char *api_key; /* NULL: any non-empty key is accepted; else only this one */
    const char *faults;  /* fault spec (see below), NULL or "" for none */
    unsigned threads;    /* HTTP worker threads, 0 = default (4) */
    /* Batch Mode (gemini-api.md §5): a batch is PENDING for batch_pending_ms after its creation,
     * then RUNNING for batch_running_ms, then terminal. 0 = the default (200 and 500 ms); at most
     * SC_GEMINI_SIM_BATCH_DELAY_MS_MAX each. */
    unsigned batch_pending_ms;
    unsigned batch_running_ms;
    /* Context caching (gemini-api.md §4): the smallest cachedContents accepted, in tokens, for
     * every model; smaller ones get the 400 "Cached content is too small. total_token_count=N,
     * min_total_token_count=M". 0 = per model: 4096 for the pro models, 1024 for the others
     * (the Dec 2025 - Mar 2026 table of §4.5). At most SC_GEMINI_SIM_CACHE_MIN_TOKENS_MAX. */
    unsigned cache_min_tokens;
} sc_gemini_sim_opts_t;

#define SC_GEMINI_SIM_BATCH_DELAY_MS_MAX 172800000u /* 48 h: when real batches expire */
#define SC_GEMINI_SIM_CACHE_MIN_TOKENS_MAX 1048576u /* 1M tokens: the largest context */

/*
 * Fault spec: comma-separated key=value pairs, e.g.
 *   "429=0.1,503=0.05,500=0.02,malformed=0.01,delay=0.2,delay_ms=50,seed=7,retry_delay=0.2s"
 * 429/500/503/malformed: the share of generateContent requests answered that way;
 * delay: share delayed by delay_ms; seed: the PRNG seed; retry_delay: RetryInfo.retryDelay on
 * 429s; max_per_request=N: one request body is failed at most N times (default 2), so faults are
 * transient as real ones are. Unknown keys or rates outside 0..1 are an error.
 * Batch Mode keys, all decided at batch creation with the same seeded PRNG:
 *   batch_error=RATE   share of the requests in a batch answered with an error entry (500
 *                      INTERNAL) instead of a response;
 *   batch_fail=RATE    share of batches that end BATCH_STATE_FAILED with a top-level error;
 *   batch_expire=RATE  share of batches that end BATCH_STATE_EXPIRED (batch_fail+batch_expire
 *                      at most 1);
 *   job_state_prefix=1 states are written JOB_STATE_* (as in the docs) instead of BATCH_STATE_*.
 */
sc_status_t sc_gemini_sim_start(const sc_gemini_sim_opts_t *opts, sc_gemini_sim_t **out,
                                char *errbuf, size_t errlen);

/* The port the server listens on. */
int sc_gemini_sim_port(const sc_gemini_sim_t *sim);

/* Counters as JSON (the same document GET /sim/stats serves): requests, responses by HTTP
 * status, faults injected by kind, batches_created, batch_requests, duplicate_batch_keys (request
 * keys, metadata.key, seen in more than one created batch) and batch_keys_overflow (keys not
 * remembered because the key set was full); context caching: caches_created, caches_deleted
 * (by DELETE), caches_expired, caches_live, caches_too_small (creates refused for size),
 * cached_tokens_served (sum of cachedContentTokenCount answered) and storage_token_seconds (sum
 * over caches of tokens x seconds alive, create to delete or expiry, live ones up to now: what
 * storage is billed on). @remark the caller frees the string with free(). */
char *sc_gemini_sim_stats_json(sc_gemini_sim_t *sim);

/* Stop the server and free it. NULL ok. */
void sc_gemini_sim_stop(sc_gemini_sim_t *sim);

#endif
