/* agreement.h - how often a cheaper tier's answer was as good as the strong tier's, per scope
 * (tenant × agent × stage) and tier: decayed counts and their Wilson bounds, kept in LMDB. */
#ifndef SC_AGREEMENT_H
#define SC_AGREEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "host/core/status.h"

#define SC_AGREEMENT_FIELD_MAX   128   /* longest tenant, agent, stage or tier name (bytes) */
#define SC_AGREEMENT_MAX_ENTRIES 65536 /* scopes × tiers held; an add beyond is SC_ERR_FULL */
#define SC_AGREEMENT_DEFAULT_MAP (64UL << 20)

typedef struct sc_agreement sc_agreement_t;
typedef struct {
    double n;           /* comparisons (decayed) */
    double k;           /* of them, agreeing (decayed); 0 <= k <= n */
    int64_t updated_ms; /* wall clock (sc_wall_ms) of the last add */
} sc_agreement_est_t;

/* Open (creating the directory when missing) the store at path and load every stored estimate
 * into memory; path NULL or "": memory only. window: each add first multiplies n and k by
 * (1 - 1/window), an exponential window of about `window` comparisons; 0 = no decay; must be 0 or
 * >= 1 (else SC_ERR_INVALID_ARG). @remark the caller closes with sc_agreement_close(). SC_ERR_IO
 * with the reason in errbuf. */
sc_status_t sc_agreement_open(const char *path, double window, sc_agreement_t **out, char *errbuf,
                              size_t errlen);
void sc_agreement_close(sc_agreement_t *a); /* NULL ok */

/* One comparison in (tenant, agent, stage, tier): agree 1 or 0. agent and stage may be NULL
 * (stored as ""). Written through to LMDB (one transaction) before it returns. *now (may be NULL)
 * gets the estimate after the add. SC_ERR_INVALID_ARG for a NULL/empty tenant or tier or a name
 * longer than SC_AGREEMENT_FIELD_MAX; SC_ERR_FULL beyond SC_AGREEMENT_MAX_ENTRIES; SC_ERR_IO when
 * the write fails (the in-memory estimate is then unchanged). Thread-safe. */
sc_status_t sc_agreement_add(sc_agreement_t *a, const char *tenant, const char *agent,
                             const char *stage, const char *tier, int agree,
                             sc_agreement_est_t *now);

/* The estimate of (tenant, agent, stage, tier): 1 and *out set when there is one, 0 (out zeroed)
 * when none. Thread-safe; takes only the in-memory lock. */
int sc_agreement_get(sc_agreement_t *a, const char *tenant, const char *agent, const char *stage,
                     const char *tier, sc_agreement_est_t *out);

size_t sc_agreement_count(sc_agreement_t *a); /* estimates held */

/* Every estimate, under the store's lock (fn must not call back into a). */
typedef void (*sc_agreement_fn)(const char *tenant, const char *agent, const char *stage,
                                const char *tier, const sc_agreement_est_t *e, void *arg);
void sc_agreement_foreach(sc_agreement_t *a, sc_agreement_fn fn, void *arg);

/* Remove every estimate of tenant (memory and LMDB); returns how many were removed, or -1 on an I/O
 * error. */
long sc_agreement_purge_tenant(sc_agreement_t *a, const char *tenant);

/* The Wilson score interval of k successes in n trials at z (e.g. 1.645 for a one-sided 95%):
 * lower bound (0 when n <= 0) and upper bound (1 when n <= 0); both clamped to [0, 1]; valid for
 * fractional (decayed) n and k. */
double sc_wilson_lower(double k, double n, double z);
double sc_wilson_upper(double k, double n, double z);

#endif
