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

/* Stop the thread, delete (DELETE) every cache this manager created, and free. NULL ok.
 * Once a share hook has been set (sc_prompt_cache_on_share, even if cleared since, so a caller
 * may stop sharing before its changelog closes), nothing is deleted: the other replicas go on
 * using the caches and the server drops each at its expireTime; one prompt_cache.leave line
 * counts them. Caches adopted from other replicas are never deleted here. */
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

/* ---- sharing caches between replicas ---- */

/* One fact about a cache, for the other replicas: made by this manager's share hook, applied by
 * another's sc_prompt_cache_adopt(). Strings borrowed (for the hook: until it returns). */
typedef struct {
    const char *model;
    int fields;         /* 1: prefix is CachedContent fields (acquire_fields); 0: text */
    const char *prefix; /* prefix_len bytes */
    size_t prefix_len;
    uint64_t hash;          /* XXH3 of the prefix, as the manager keys it */
    const char *name;       /* "cachedContents/{id}" */
    long tokens;            /* usageMetadata.totalTokenCount of the cache */
    int64_t expire_wall_ms; /* the server's expireTime, ms since the epoch */
    int gone;               /* 1: deleted, expired or found gone: forget it. Name, model, hash and
                             * fields are set; prefix may be NULL */
} sc_prompt_cache_share_t;

typedef void (*sc_prompt_cache_share_fn)(void *arg, const sc_prompt_cache_share_t *s);

/* Set (fn NULL: clear) the hook told of every cache this manager creates or extends (gone 0)
 * and of every one it deletes, sees expire, forgets or finds gone (gone 1). Caches it merely
 * drops from its table (adopted ones told gone, those left at free) are not told. The hook runs
 * on the manager's thread or on a caller's (forget), with the manager's lock held: it must not
 * block and must not call back into the manager. Thread-safe. Setting one makes
 * sc_prompt_cache_free() leave the caches to the other replicas. */
void sc_prompt_cache_on_share(sc_prompt_cache_t *pc, sc_prompt_cache_share_fn fn, void *arg);

/*
 * Apply a fact another replica shared; never blocks on the network; thread-safe. Nothing is
 * told to this manager's hook. gone 0: the prefix's entry (same model, fields flag and bytes)
 * takes the cache when it has none (new, scheduled and not yet on the wire, "too small" or
 * failed); the storage stays charged to the replica that bought it, this manager's own later
 * extensions are charged here. The same cache already live here has its expiry raised and its
 * idle clock restarted. gone 1: the idle live entry of that name is dropped (no DELETE).
 *   SC_OK              applied
 *   SC_ERR_INVALID_ARG a bad record: NULL, fields not 0/1, an empty or too long model, a name
 *                      not "cachedContents/" + [A-Za-z0-9_-], an empty or too long prefix, a
 *                      hash that is not the prefix's XXH3 (a forged record never makes one
 *                      prefix answer with another's cache), tokens < 0, an expiry beyond a year
 *   SC_ERR_TIMEOUT     the cache expires within the hand-out margin (or has): ignored
 *   SC_ERR_INVALID     the prefix has a cache of this manager's own, or one being made, extended
 *                      or deleted: left as it is (two caches for one prefix is a harmless race)
 *   SC_ERR_FULL        no slot for a new entry
 *   SC_ERR_NOT_FOUND   gone 1: no idle live entry has that name (a call on the wire for it will
 *                      find it gone itself)
 *   SC_ERR_CLOSED      the manager is being freed
 *   SC_ERR_NOMEM
 */
sc_status_t sc_prompt_cache_adopt(sc_prompt_cache_t *pc, const sc_prompt_cache_share_t *s);

typedef struct {
    uint64_t creates;             /* caches created (POST 200) */
    uint64_t create_failures;     /* POSTs that failed for another reason than "too small" */
    uint64_t too_small;           /* prefixes the server refused as too small */
    uint64_t extends;             /* TTL extensions (PATCH 200) */
    uint64_t deletes;             /* caches deleted (idle, forgotten or at free) */
    uint64_t hits;                /* acquire calls answered SC_OK */
    uint64_t misses;              /* acquire calls answered SC_ERR_NOT_FOUND */
    uint64_t adopted;             /* caches taken from other replicas (sc_prompt_cache_adopt) */
    int live;                     /* caches alive now, adopted ones included */
    int pending;                  /* creations scheduled or on the wire */
    double storage_usd;           /* storage bought so far (creates + extensions) */
    double storage_usd_unclaimed; /* of which no acquire carried (the cache went unused) */
} sc_prompt_cache_stats_t;

void sc_prompt_cache_stats(sc_prompt_cache_t *pc, sc_prompt_cache_stats_t *out);

#endif
