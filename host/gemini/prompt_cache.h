/* prompt_cache.h - explicit context caches (gemini-api.md §4) for the static prefix of requests
 * (their system prompt): one cachedContents per (model, XXH3 of the prefix), created, kept alive
 * while used, and deleted when idle by the manager's own thread, so callers never block on it. */
#ifndef SC_PROMPT_CACHE_H
#define SC_PROMPT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "host/core/config.h"
#include "host/core/status.h"

typedef struct sc_prompt_cache sc_prompt_cache_t;

#define SC_PROMPT_CACHE_MAX_CACHES_LIMIT 4096              /* largest accepted max_caches */
#define SC_PROMPT_CACHE_PREFIX_MAX       ((size_t)4 << 20) /* longest cached prefix, bytes */
#define SC_PROMPT_CACHE_NAME_MAX         128 /* "cachedContents/{id}" plus NUL fits this */
#define SC_PROMPT_CACHE_MODEL_MAX        128 /* longest model id plus NUL */

typedef struct {
    const char *base_url;    /* e.g. "https://generativelanguage.googleapis.com"; required */
    const char *api_key;     /* sent as x-goog-api-key; never logged; NULL = "" */
    long min_tokens;         /* smallest prefix worth a cache, models without "-pro" in the id */
    long min_tokens_pro;     /* the same for "-pro" models (gemini-api.md §4.5) */
    long ttl_s;              /* TTL asked at create and at each extension */
    long idle_s;             /* a cache unused this long is deleted */
    int max_caches;          /* entries held (live, being created, remembered as too small) */
    long request_timeout_ms; /* one REST call of the manager thread */
    /* Prices: prices.<model>.cache_storage_per_hour (USD per 1M tokens per hour; versioned ids
     * fall back to the longest listed prefix). Borrowed for the manager's life; NULL or a model
     * without the field: storage is charged 0. */
    const sc_config_t *prices;
} sc_prompt_cache_opts_t;

/* Defaults: min_tokens 1024, min_tokens_pro 4096, ttl_s 300, idle_s 600, max_caches 256,
 * request_timeout_ms 10000; base_url, api_key and prices NULL. */
void sc_prompt_cache_opts_default(sc_prompt_cache_opts_t *o);

/* Defaults overridden by cfg: gemini.base_url, gemini.api_key, prompt_cache.min_tokens,
 * .min_tokens_pro, .ttl_s, .idle_s, .max_caches, and prices = cfg (strings borrowed from cfg). */
void sc_prompt_cache_opts_from_config(const sc_config_t *cfg, sc_prompt_cache_opts_t *o);

/* Start a manager and its thread. SC_ERR_INVALID_ARG (reason in errbuf) on a bad option.
 * @remark the caller frees with sc_prompt_cache_free(). */
sc_status_t sc_prompt_cache_new(const sc_prompt_cache_opts_t *o, sc_prompt_cache_t **out,
                                char *errbuf, size_t errlen);

/* Stop the thread, delete (DELETE) every cache this manager created, and free. NULL ok. */
void sc_prompt_cache_free(sc_prompt_cache_t *pc);

/* The smallest prefix, in tokens, that model gets a cache for. */
long sc_prompt_cache_min_tokens(const sc_prompt_cache_t *pc, const char *model);

/*
 * The cache for (model, system[0..system_len)). est_tokens: the prefix's tokens as the caller
 * estimates them (<= 0: ceil(system_len / 4)). Never blocks on the network; thread-safe.
 *   SC_OK            a live cache: its name ("cachedContents/{id}") is in name (namelen bytes,
 *                    at least SC_PROMPT_CACHE_NAME_MAX). When less than half its TTL is left,
 *                    the manager thread extends it (PATCH) after this call returns.
 *   SC_ERR_NOT_FOUND no cache yet: send uncached. When none is being made, its creation is
 *                    scheduled (it needs est_tokens >= the model's minimum).
 *   SC_ERR_INVALID   never cached: the prefix is below the model's minimum, or the server said
 *                    "too small" for it (remembered per prefix, not retried while remembered).
 *   SC_ERR_TOO_LARGE the prefix is longer than SC_PROMPT_CACHE_PREFIX_MAX (never cached).
 *   SC_ERR_FULL      max_caches entries are busy: send uncached.
 *   SC_ERR_INVALID_ARG a NULL argument, an empty prefix or model, or namelen too small.
 * *storage_usd_charge (may be NULL): storage USD the caller's request should carry in its
 * ledger: the token-hours bought by the create or TTL extensions of this cache that no earlier
 * request has carried (each is handed out exactly once, to the first SC_OK after it); 0 else.
 */
sc_status_t sc_prompt_cache_acquire(sc_prompt_cache_t *pc, const char *model, const char *system,
                                    size_t system_len, long est_tokens, char *name, size_t namelen,
                                    double *storage_usd_charge);

/* sc_prompt_cache_acquire() for a request in Gemini's own shape: fields is a JSON object (of
 * fields_len bytes, canonical so that equal prefixes are equal bytes) of the CachedContent fields
 * the cache holds: systemInstruction, tools, toolConfig (the API refuses those beside
 * cachedContent, so they all move into the cache). SC_ERR_INVALID_ARG when fields is not a JSON
 * object; otherwise the same answers. */
sc_status_t sc_prompt_cache_acquire_fields(sc_prompt_cache_t *pc, const char *model,
                                           const char *fields, size_t fields_len, long est_tokens,
                                           char *name, size_t namelen, double *storage_usd_charge);

/* generateContent answered 404 for name (the cache expired or was deleted elsewhere): forget
 * it, so the next acquire for its prefix schedules a new one. Unknown names are ignored. */
void sc_prompt_cache_forget(sc_prompt_cache_t *pc, const char *name);

typedef struct {
    uint64_t creates;             /* caches created (POST 200) */
    uint64_t create_failures;     /* POSTs that failed for another reason than "too small" */
    uint64_t too_small;           /* prefixes the server refused as too small */
    uint64_t extends;             /* TTL extensions (PATCH 200) */
    uint64_t deletes;             /* caches deleted (idle, forgotten or at free) */
    uint64_t hits;                /* acquire calls answered SC_OK */
    uint64_t misses;              /* acquire calls answered SC_ERR_NOT_FOUND */
    int live;                     /* caches alive now */
    int pending;                  /* creations scheduled or on the wire */
    double storage_usd;           /* storage bought so far (creates + extensions) */
    double storage_usd_unclaimed; /* of which no acquire carried (the cache went unused) */
} sc_prompt_cache_stats_t;

void sc_prompt_cache_stats(sc_prompt_cache_t *pc, sc_prompt_cache_stats_t *out);

#endif
