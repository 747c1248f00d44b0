/* metrics.c - the metrics registry (metrics.h): family table, label vocabularies, series tables,
 * observation and the Prometheus text exposition 0.0.4. One mutex guards everything but the
 * ready flag: observations are a few per result, far from contended. */
#include "host/metrics/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/util.h"

#ifndef SCRIMP_VERSION
#define SCRIMP_VERSION "unknown"
#endif

#define SC_MF_LABELS_MAX 6    /* most labels any family has */
#define SC_MF_SLOTS      4096 /* series hash slots per family: a power of two > 2 * (MAX_SERIES+1) */
#define SC_MV_SLOTS_MAX  2048  /* vocabulary hash slots: a power of two >= 2 * its largest cap */
#define SC_MR_INITIAL    16384 /* first allocation of the exposition buffer */
#define SC_M_NONE        "none"
#define SC_M_OTHER       "other"

/* ---- vocabularies ---- */

typedef enum {
    SC_MV_TENANT = 0,
    SC_MV_AGENT,
    SC_MV_STAGE,
    SC_MV_MODEL,
    SC_MV_SOURCE,
    SC_MV_STATUS,
    SC_MV_KIND,
    SC_MV_TECHNIQUE,
    SC_MV_OUTCOME,
    SC_MV_SHADOW_OUTCOME,
    SC_MV_TIER,
    SC_MV_REASON,
    SC_MV_UPSTREAM_CODE,
    SC_MV_ERROR_CODE,
    SC_MV_PIPELINE_STAGE,
    SC_MV_QUEUE,
    SC_MV_FAMILY,
    SC_MV_VERSION,
    SC_MV_COUNT,
} sc_mv_id_t;

static const char *const sc_mv_sources[] = {"llm",       "cache-exact", "cache-semantic",
                                            "coalesced", "shadow",      SC_M_NONE};
static const char *const sc_mv_statuses[] = {"ok", "error"};
static const char *const sc_mv_kinds[] = {"prompt", "cached", "output", "thought"};
static const char *const sc_mv_techniques[] = {"cache",        "prune", "route",
                                               "prompt_cache", "batch", "shadow"};
static const char *const sc_mv_outcomes[] = {"hit_exact", "hit_semantic", "miss"};
static const char *const sc_mv_shadow_outcomes[] = {"agree", "disagree", "no_evidence", "failed",
                                                    "dropped"};
/* SC_MV_FAMILY is filled from the family table at creation. */

typedef struct {
    const char *const *fixed; /* allowed values (static), or NULL for a first-come set */
    size_t nfixed;
    size_t cap;   /* first-come sets: values kept before "other" */
    char **slots; /* first-come sets: owned strings, SC_MV_SLOTS_MAX of them */
    size_t n;
} sc_mvocab_t;

/* ---- families ---- */

typedef enum { SC_MT_COUNTER = 0, SC_MT_GAUGE, SC_MT_HISTOGRAM } sc_mtype_t;

typedef struct {
    const char *name;
    sc_mv_id_t voc;
} sc_mlabel_t;

typedef struct {
    const char *name; /* full metric name; counters end in _total */
    const char *help;
    sc_mtype_t type;
    size_t nlabels;
    sc_mlabel_t labels[SC_MF_LABELS_MAX];
    const double *buckets; /* histograms: upper bounds, increasing, +Inf implied */
    size_t nbuckets;
} sc_mfdef_t;

static const double sc_m_latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,  0.25,
                                              0.5,   1.0,    2.5,   5.0,  10.0,  20.0, 30.0, 60.0};
static const double sc_m_size_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};

typedef enum {
    SC_MF_REQUESTS = 0,
    SC_MF_TOKENS,
    SC_MF_COST,
    SC_MF_BASELINE,
    SC_MF_SAVINGS,
    SC_MF_OVERSPEND,
    SC_MF_RESULT_ERRORS,
    SC_MF_REQUEST_LATENCY,
    SC_MF_CACHE,
    SC_MF_GUARD,
    SC_MF_UPSTREAM_ERRORS,
    SC_MF_RETRIES,
    SC_MF_STAGE_LATENCY,
    SC_MF_BATCH_SIZE,
    SC_MF_DEAD_LETTERS,
    SC_MF_SHADOW_CALLS,
    SC_MF_SHADOW_COST,
    SC_MF_AGREEMENT,
    SC_MF_AGREEMENT_RATE,
    SC_MF_AGREEMENT_SAMPLES,
    SC_MF_QUEUE_DEPTH,
    SC_MF_CONSUMER_LAG,
    SC_MF_INFLIGHT,
    SC_MF_CL_RESTORE_S,
    SC_MF_CL_RESTORE_RECORDS,
    SC_MF_CL_BYTES,
    SC_MF_CL_PUBLISHED,
    SC_MF_CL_APPLIED,
    SC_MF_CL_LAG,
    SC_MF_CL_BATCHES,
    SC_MF_CACHE_ENTRIES,
    SC_MF_READY,
    SC_MF_BUILD_INFO,
    SC_MF_OVERFLOW,
    SC_MF_COUNT,
} sc_mf_id_t;

/* clang-format off */
#define SC_ML_TENANT {"tenant", SC_MV_TENANT}
#define SC_ML_LEDGER                                                                               \
    {"tenant", SC_MV_TENANT}, {"agent", SC_MV_AGENT}, {"stage", SC_MV_STAGE},                      \
    {"model", SC_MV_MODEL}, {"source", SC_MV_SOURCE}
#define SC_ML_SCOPE                                                                                \
    {"tenant", SC_MV_TENANT}, {"agent", SC_MV_AGENT}, {"stage", SC_MV_STAGE}
/* clang-format on */

static const sc_mfdef_t sc_mf_defs[SC_MF_COUNT] = {
    [SC_MF_REQUESTS] = {"scrimp_requests_total",
                        "Results published, by status.",
                        SC_MT_COUNTER,
                        6,
                        {SC_ML_LEDGER, {"status", SC_MV_STATUS}},
                        NULL,
                        0},
    [SC_MF_TOKENS] = {"scrimp_tokens_total",
                      "Tokens of published results as Gemini counted them (prompt includes "
                      "cached).",
                      SC_MT_COUNTER,
                      6,
                      {SC_ML_LEDGER, {"kind", SC_MV_KIND}},
                      NULL,
                      0},
    [SC_MF_COST] = {"scrimp_cost_usd_total",
                    "What the published results cost, USD.",
                    SC_MT_COUNTER,
                    5,
                    {SC_ML_LEDGER},
                    NULL,
                    0},
    [SC_MF_BASELINE] = {"scrimp_baseline_cost_usd_total",
                        "What the naive requests (strong model, full context, no cache) would "
                        "have cost, USD.",
                        SC_MT_COUNTER,
                        5,
                        {SC_ML_LEDGER},
                        NULL,
                        0},
    [SC_MF_SAVINGS] = {"scrimp_savings_usd_total",
                       "What each technique saved, USD.",
                       SC_MT_COUNTER,
                       6,
                       {SC_ML_LEDGER, {"technique", SC_MV_TECHNIQUE}},
                       NULL,
                       0},
    [SC_MF_OVERSPEND] = {"scrimp_overspend_usd_total",
                         "What a technique cost beyond what it saved (a negative saving), USD.",
                         SC_MT_COUNTER,
                         6,
                         {SC_ML_LEDGER, {"technique", SC_MV_TECHNIQUE}},
                         NULL,
                         0},
    [SC_MF_RESULT_ERRORS] = {"scrimp_result_errors_total",
                             "Results published with status error.",
                             SC_MT_COUNTER,
                             2,
                             {SC_ML_TENANT, {"code", SC_MV_ERROR_CODE}},
                             NULL,
                             0},
    [SC_MF_REQUEST_LATENCY] = {"scrimp_request_latency_seconds",
                               "From consumption to result, per request.",
                               SC_MT_HISTOGRAM,
                               5,
                               {SC_ML_LEDGER},
                               sc_m_latency_buckets,
                               SC_ARRAY_LEN(sc_m_latency_buckets)},
    [SC_MF_CACHE] = {"scrimp_cache_lookups_total",
                     "Cache lookups by outcome.",
                     SC_MT_COUNTER,
                     2,
                     {SC_ML_TENANT, {"outcome", SC_MV_OUTCOME}},
                     NULL,
                     0},
    [SC_MF_GUARD] = {"scrimp_cache_guard_refusals_total",
                     "Semantic cache hits refused by a guard.",
                     SC_MT_COUNTER,
                     1,
                     {{"reason", SC_MV_REASON}},
                     NULL,
                     0},
    [SC_MF_UPSTREAM_ERRORS] = {"scrimp_upstream_errors_total",
                               "Failed upstream attempts.",
                               SC_MT_COUNTER,
                               2,
                               {{"model", SC_MV_MODEL}, {"code", SC_MV_UPSTREAM_CODE}},
                               NULL,
                               0},
    [SC_MF_RETRIES] = {"scrimp_upstream_retries_total",
                       "Upstream attempts after the first.",
                       SC_MT_COUNTER,
                       1,
                       {{"model", SC_MV_MODEL}},
                       NULL,
                       0},
    [SC_MF_STAGE_LATENCY] = {"scrimp_stage_latency_seconds",
                             "Time a pipeline stage took for one micro-batch.",
                             SC_MT_HISTOGRAM,
                             1,
                             {{"pipeline_stage", SC_MV_PIPELINE_STAGE}},
                             sc_m_latency_buckets,
                             SC_ARRAY_LEN(sc_m_latency_buckets)},
    [SC_MF_BATCH_SIZE] = {"scrimp_batch_size",
                          "Messages per consumed micro-batch.",
                          SC_MT_HISTOGRAM,
                          0,
                          {{0}},
                          sc_m_size_buckets,
                          SC_ARRAY_LEN(sc_m_size_buckets)},
    [SC_MF_DEAD_LETTERS] = {"scrimp_dead_letters_total",
                            "Messages sent to the dead-letter topic.",
                            SC_MT_COUNTER,
                            1,
                            {{"code", SC_MV_ERROR_CODE}},
                            NULL,
                            0},
    [SC_MF_SHADOW_CALLS] = {"scrimp_shadow_calls_total",
                            "Shadow comparisons of a cheaper tier against the strong one, by "
                            "outcome.",
                            SC_MT_COUNTER,
                            5,
                            {SC_ML_SCOPE, {"tier", SC_MV_TIER}, {"outcome", SC_MV_SHADOW_OUTCOME}},
                            NULL,
                            0},
    [SC_MF_SHADOW_COST] = {"scrimp_shadow_cost_usd_total",
                           "What the shadow and judge calls cost, USD (also in "
                           "scrimp_cost_usd_total with source=\"shadow\").",
                           SC_MT_COUNTER,
                           4,
                           {SC_ML_SCOPE, {"model", SC_MV_MODEL}},
                           NULL,
                           0},
    [SC_MF_AGREEMENT] = {"scrimp_route_agreement",
                         "Wilson lower bound of how often a cheaper tier agreed with the strong "
                         "one.",
                         SC_MT_GAUGE,
                         4,
                         {SC_ML_SCOPE, {"tier", SC_MV_TIER}},
                         NULL,
                         0},
    [SC_MF_AGREEMENT_RATE] = {"scrimp_route_agreement_rate",
                              "Share of shadow comparisons in which a cheaper tier agreed (k/n).",
                              SC_MT_GAUGE,
                              4,
                              {SC_ML_SCOPE, {"tier", SC_MV_TIER}},
                              NULL,
                              0},
    [SC_MF_AGREEMENT_SAMPLES] = {"scrimp_route_agreement_samples",
                                 "Shadow comparisons behind the agreement estimate (decayed).",
                                 SC_MT_GAUGE,
                                 4,
                                 {SC_ML_SCOPE, {"tier", SC_MV_TIER}},
                                 NULL,
                                 0},
    [SC_MF_QUEUE_DEPTH] = {"scrimp_queue_depth",
                           "Items in a bounded queue between stages.",
                           SC_MT_GAUGE,
                           1,
                           {{"queue", SC_MV_QUEUE}},
                           NULL,
                           0},
    [SC_MF_CONSUMER_LAG] = {"scrimp_consumer_lag",
                            "Messages behind the high watermark, all assigned partitions.",
                            SC_MT_GAUGE,
                            0,
                            {{0}},
                            NULL,
                            0},
    [SC_MF_INFLIGHT] = {"scrimp_upstream_inflight",
                        "Upstream calls running or waiting to retry.",
                        SC_MT_GAUGE,
                        0,
                        {{0}},
                        NULL,
                        0},
    [SC_MF_CL_RESTORE_S] = {"scrimp_changelog_restore_seconds",
                            "How long this replica's restore from the cache changelog took.",
                            SC_MT_GAUGE, 0, {{0}}, NULL, 0},
    [SC_MF_CL_RESTORE_RECORDS] = {"scrimp_changelog_restore_records",
                                  "Changelog records read by the restore at start.",
                                  SC_MT_GAUGE, 0, {{0}}, NULL, 0},
    [SC_MF_CL_BYTES] = {"scrimp_changelog_read_bytes",
                        "Bytes of changelog records read since start (restore included).",
                        SC_MT_GAUGE, 0, {{0}}, NULL, 0},
    [SC_MF_CL_PUBLISHED] = {"scrimp_changelog_published",
                            "Cache entries this replica published to the changelog.",
                            SC_MT_GAUGE, 0, {{0}}, NULL, 0},
    [SC_MF_CL_APPLIED] = {"scrimp_changelog_applied",
                          "Other replicas' cache entries applied to this replica's store.",
                          SC_MT_GAUGE, 0, {{0}}, NULL, 0},
    [SC_MF_CL_LAG] = {"scrimp_changelog_lag_records",
                      "Changelog records written that this replica has not read yet.",
                      SC_MT_GAUGE, 0, {{0}}, NULL, 0},
    [SC_MF_CL_BATCHES] = {"scrimp_changelog_batches_in_flight",
                          "Other replicas' Batch Mode requests in flight, known from the changelog.",
                          SC_MT_GAUGE, 0, {{0}}, NULL, 0},
    [SC_MF_CACHE_ENTRIES] = {"scrimp_cache_entries",
                             "Entries in this replica's cache store.",
                             SC_MT_GAUGE, 0, {{0}}, NULL, 0},
    [SC_MF_READY] = {"scrimp_ready",
                     "1 when the service is ready (what /readyz says).",
                     SC_MT_GAUGE,
                     0,
                     {{0}},
                     NULL,
                     0},
    [SC_MF_BUILD_INFO] = {"scrimp_build_info",
                          "Always 1; the version is a label.",
                          SC_MT_GAUGE,
                          1,
                          {{"version", SC_MV_VERSION}},
                          NULL,
                          0},
    [SC_MF_OVERFLOW] = {"scrimp_metrics_overflow_total",
                        "Observations folded into a family's all-\"other\" series because the "
                        "family held its maximum of label sets.",
                        SC_MT_COUNTER,
                        1,
                        {{"family", SC_MV_FAMILY}},
                        NULL,
                        0},
};

typedef struct {
    char *key; /* owned: the label values, each followed by a NUL */
    size_t keylen;
    const char *vals[SC_MF_LABELS_MAX]; /* point into key */
    double value;                       /* counters and gauges */
    uint64_t *counts;                   /* histograms: owned, nbuckets+1 (last: +Inf), not
                                           cumulative */
    double sum;
    uint64_t count;
} sc_mseries_t;

typedef struct {
    const sc_mfdef_t *def;
    sc_mseries_t **series; /* owned, in creation order; SC_METRICS_MAX_SERIES + 1 (overflow) */
    size_t n;
    uint32_t *slots; /* SC_MF_SLOTS indexes into series, +1; 0 = empty */
} sc_mfamily_t;

struct sc_metrics {
    pthread_mutex_t mu;
    sc_mvocab_t voc[SC_MV_COUNT];
    sc_mfamily_t fam[SC_MF_COUNT];
    const char *family_names[SC_MF_COUNT];
    atomic_int ready;
};

/* ---- helpers ---- */

static uint64_t sc_m_hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Length of the valid UTF-8 character at s (n bytes available), or 0 when invalid. */
static size_t sc_m_utf8_char(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2;
        cp = s[0] & 0x1Fu;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = s[0] & 0x0Fu;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/*
 * The value a raw label value stands for before its vocabulary: "none" when missing or empty,
 * "other" when not UTF-8, else the value cut at a character boundary to SC_METRICS_VALUE_MAX
 * bytes into buf (which holds SC_METRICS_VALUE_MAX + 1). Returns a static string or buf.
 */
static const char *sc_m_clean(const char *raw, char *buf)
{
    if (!raw || !raw[0])
        return SC_M_NONE;
    size_t n = strlen(raw), i = 0;
    while (i < n) {
        size_t c = sc_m_utf8_char((const unsigned char *)raw + i, n - i);
        if (!c)
            return SC_M_OTHER;
        if (i + c > SC_METRICS_VALUE_MAX)
            break;
        i += c;
    }
    memcpy(buf, raw, i);
    buf[i] = '\0';
    return buf;
}

/* The vocabulary's word for v (already clean): a stable string (static or vocabulary-owned). */
static const char *sc_m_vocab_map(sc_mvocab_t *voc, const char *v)
{
    if (strcmp(v, SC_M_OTHER) == 0)
        return SC_M_OTHER;
    if (voc->fixed) {
        for (size_t i = 0; i < voc->nfixed; i++)
            if (strcmp(voc->fixed[i], v) == 0)
                return voc->fixed[i];
        return SC_M_OTHER;
    }
    size_t mask = SC_MV_SLOTS_MAX - 1, i = (size_t)sc_m_hash(v, strlen(v)) & mask;
    while (voc->slots[i]) {
        if (strcmp(voc->slots[i], v) == 0)
            return voc->slots[i];
        i = (i + 1) & mask;
    }
    if (voc->n >= voc->cap)
        return SC_M_OTHER;
    char *copy = strdup(v);
    if (!copy)
        return SC_M_OTHER;
    voc->slots[i] = copy;
    voc->n++;
    return copy;
}

static void sc_m_series_free(sc_mseries_t *s)
{
    if (!s)
        return;
    free(s->key);
    free(s->counts);
    free(s);
}

/* Find the series whose key is key[0..keylen), or make it. NULL when the family is full (the
 * caller falls back to the overflow series) or on allocation failure (*oom set). */
static sc_mseries_t *sc_m_series_find(sc_mfamily_t *f, const char *key, size_t keylen, size_t limit,
                                      int *oom)
{
    size_t mask = SC_MF_SLOTS - 1, i = (size_t)sc_m_hash(key, keylen) & mask;
    while (f->slots[i]) {
        sc_mseries_t *s = f->series[f->slots[i] - 1];
        if (s->keylen == keylen && memcmp(s->key, key, keylen) == 0)
            return s;
        i = (i + 1) & mask;
    }
    if (f->n >= limit)
        return NULL;
    sc_mseries_t *s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    s->key = malloc(keylen ? keylen : 1);
    if (!s->key)
        goto oom;
    memcpy(s->key, key, keylen);
    s->keylen = keylen;
    const char *p = s->key, *end = s->key + keylen;
    for (size_t l = 0; l < f->def->nlabels && p < end; l++) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        s->vals[l] = p;
        p = nul ? nul + 1 : end;
    }
    if (f->def->type == SC_MT_HISTOGRAM) {
        s->counts = calloc(f->def->nbuckets + 1, sizeof *s->counts);
        if (!s->counts)
            goto oom;
    }
    f->series[f->n] = s;
    f->n++;
    f->slots[i] = (uint32_t)f->n;
    return s;
oom:
    sc_m_series_free(s);
    *oom = 1;
    return NULL;
}

static void sc_m_counter_add_locked(sc_metrics_t *m, sc_mf_id_t id, const char *const *raw,
                                    double v);

/* The series of family id for the raw label values raw[0..nlabels) (borrowed), mapped through
 * the vocabularies; the family's overflow series when it is full. Lock held. NULL on
 * allocation failure (the observation is dropped). */
static sc_mseries_t *sc_m_series_locked(sc_metrics_t *m, sc_mf_id_t id, const char *const *raw)
{
    sc_mfamily_t *f = &m->fam[id];
    char key[SC_MF_LABELS_MAX * (SC_METRICS_VALUE_MAX + 1)];
    char buf[SC_METRICS_VALUE_MAX + 1];
    size_t keylen = 0;
    int oom = 0;
    for (size_t l = 0; l < f->def->nlabels; l++) {
        const char *v = sc_m_vocab_map(&m->voc[f->def->labels[l].voc], sc_m_clean(raw[l], buf));
        size_t vl = strlen(v) + 1;
        memcpy(key + keylen, v, vl);
        keylen += vl;
    }
    sc_mseries_t *s = sc_m_series_find(f, key, keylen, SC_METRICS_MAX_SERIES, &oom);
    if (s || oom)
        return s;
    keylen = 0;
    for (size_t l = 0; l < f->def->nlabels; l++) {
        memcpy(key + keylen, SC_M_OTHER, sizeof SC_M_OTHER);
        keylen += sizeof SC_M_OTHER;
    }
    s = sc_m_series_find(f, key, keylen, SC_METRICS_MAX_SERIES + 1, &oom);
    if (s && id != SC_MF_OVERFLOW) {
        const char *fam_name = f->def->name;
        sc_m_counter_add_locked(m, SC_MF_OVERFLOW, &fam_name, 1.0);
    }
    return s;
}

static void sc_m_counter_add_locked(sc_metrics_t *m, sc_mf_id_t id, const char *const *raw,
                                    double v)
{
    if (!(v > 0.0) || !isfinite(v)) /* a counter only grows; NaN fails v > 0 */
        return;
    sc_mseries_t *s = sc_m_series_locked(m, id, raw);
    if (s)
        s->value += v;
}

static void sc_m_gauge_set_locked(sc_metrics_t *m, sc_mf_id_t id, const char *const *raw, double v)
{
    if (isnan(v))
        return;
    sc_mseries_t *s = sc_m_series_locked(m, id, raw);
    if (s)
        s->value = v;
}

static void sc_m_observe_locked(sc_metrics_t *m, sc_mf_id_t id, const char *const *raw, double x)
{
    if (isnan(x))
        return;
    sc_mseries_t *s = sc_m_series_locked(m, id, raw);
    if (!s)
        return;
    const sc_mfdef_t *d = m->fam[id].def;
    size_t b = 0;
    while (b < d->nbuckets && x > d->buckets[b])
        b++;
    s->counts[b]++;
    s->sum += x;
    s->count++;
}

/* ---- lifecycle ---- */

sc_status_t sc_metrics_new(sc_metrics_t **out)
{
    sc_status_t st = SC_OK;
    sc_metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return SC_ERR_NOMEM;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return SC_ERR_NOMEM;
    }
    static const struct {
        sc_mv_id_t id;
        const char *const *fixed;
        size_t nfixed;
    } fixed[] = {
        {SC_MV_SOURCE, sc_mv_sources, SC_ARRAY_LEN(sc_mv_sources)},
        {SC_MV_STATUS, sc_mv_statuses, SC_ARRAY_LEN(sc_mv_statuses)},
        {SC_MV_KIND, sc_mv_kinds, SC_ARRAY_LEN(sc_mv_kinds)},
        {SC_MV_TECHNIQUE, sc_mv_techniques, SC_ARRAY_LEN(sc_mv_techniques)},
        {SC_MV_OUTCOME, sc_mv_outcomes, SC_ARRAY_LEN(sc_mv_outcomes)},
        {SC_MV_SHADOW_OUTCOME, sc_mv_shadow_outcomes, SC_ARRAY_LEN(sc_mv_shadow_outcomes)},
    };
    for (size_t i = 0; i < SC_MF_COUNT; i++)
        m->family_names[i] = sc_mf_defs[i].name;
    for (size_t i = 0; i < SC_ARRAY_LEN(fixed); i++) {
        m->voc[fixed[i].id].fixed = fixed[i].fixed;
        m->voc[fixed[i].id].nfixed = fixed[i].nfixed;
    }
    m->voc[SC_MV_FAMILY].fixed = m->family_names;
    m->voc[SC_MV_FAMILY].nfixed = SC_MF_COUNT;
    for (size_t v = 0; v < SC_MV_COUNT; v++) {
        if (m->voc[v].fixed)
            continue;
        m->voc[v].cap = v == SC_MV_TENANT ? SC_METRICS_MAX_TENANTS_DEFAULT : SC_METRICS_MAX_VALUES;
        m->voc[v].slots = calloc(SC_MV_SLOTS_MAX, sizeof *m->voc[v].slots);
        if (!m->voc[v].slots) {
            st = SC_ERR_NOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < SC_MF_COUNT; i++) {
        sc_mfamily_t *f = &m->fam[i];
        f->def = &sc_mf_defs[i];
        f->series = calloc(SC_METRICS_MAX_SERIES + 1, sizeof *f->series);
        f->slots = calloc(SC_MF_SLOTS, sizeof *f->slots);
        if (!f->series || !f->slots) {
            st = SC_ERR_NOMEM;
            goto out;
        }
    }
    /* Families without labels show 0 from the start; build_info shows the version. */
    const char *version = SCRIMP_VERSION;
    static const sc_mf_id_t plain_gauges[] = {SC_MF_CONSUMER_LAG, SC_MF_INFLIGHT, SC_MF_READY};
    for (size_t i = 0; i < SC_ARRAY_LEN(plain_gauges); i++)
        sc_m_gauge_set_locked(m, plain_gauges[i], NULL, 0.0);
    sc_m_gauge_set_locked(m, SC_MF_BUILD_INFO, &version, 1.0);
    int oom = 0;
    if (!sc_m_series_find(&m->fam[SC_MF_BATCH_SIZE], "", 0, 1, &oom) || oom) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    *out = m;
    m = NULL;
out:
    sc_metrics_free(m);
    return st;
}

void sc_metrics_free(sc_metrics_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < SC_MF_COUNT; i++) {
        sc_mfamily_t *f = &m->fam[i];
        for (size_t s = 0; f->series && s < f->n; s++)
            sc_m_series_free(f->series[s]);
        free(f->series);
        free(f->slots);
    }
    for (size_t v = 0; v < SC_MV_COUNT; v++) {
        for (size_t i = 0; m->voc[v].slots && i < SC_MV_SLOTS_MAX; i++)
            free(m->voc[v].slots[i]);
        free(m->voc[v].slots);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

sc_status_t sc_metrics_set_max_tenants(sc_metrics_t *m, size_t max_tenants)
{
    if (!m || max_tenants < 1 || max_tenants > SC_METRICS_MAX_TENANTS_LIMIT)
        return SC_ERR_INVALID_ARG;
    pthread_mutex_lock(&m->mu);
    m->voc[SC_MV_TENANT].cap = max_tenants;
    pthread_mutex_unlock(&m->mu);
    return SC_OK;
}

/* ---- observations ---- */

void sc_metrics_observe_result(sc_metrics_t *m, const sc_result_t *r)
{
    if (!m || !r)
        return;
    const char *model = r->model, *status = r->ok ? "ok" : "error";
    const char *l[6] = {r->tenant, r->agent, r->stage, model, r->source, NULL};
    static const char *const kinds[] = {"prompt", "cached", "output", "thought"};
    const double tokens[] = {(double)r->usage.prompt_tokens, (double)r->usage.cached_tokens,
                             (double)r->usage.output_tokens, (double)r->usage.thought_tokens};
    static const char *const techniques[] = {"cache", "prune", "route", "prompt_cache", "batch"};
    const double saved[] = {r->savings.cache_usd, r->savings.prune_usd, r->savings.route_usd,
                            r->savings.prompt_cache_usd, r->savings.batch_usd};

    pthread_mutex_lock(&m->mu);
    l[5] = status;
    sc_m_counter_add_locked(m, SC_MF_REQUESTS, l, 1.0);
    for (size_t k = 0; k < SC_ARRAY_LEN(kinds); k++) {
        l[5] = kinds[k];
        sc_m_counter_add_locked(m, SC_MF_TOKENS, l, tokens[k]);
    }
    sc_m_counter_add_locked(m, SC_MF_COST, l, r->cost_usd);
    sc_m_counter_add_locked(m, SC_MF_BASELINE, l, r->baseline_cost_usd);
    for (size_t t = 0; t < SC_ARRAY_LEN(techniques); t++) {
        l[5] = techniques[t];
        sc_m_counter_add_locked(m, SC_MF_SAVINGS, l, saved[t]);
        sc_m_counter_add_locked(m, SC_MF_OVERSPEND, l, -saved[t]);
    }
    if (!r->ok) {
        const char *e[2] = {r->tenant, r->error_code};
        sc_m_counter_add_locked(m, SC_MF_RESULT_ERRORS, e, 1.0);
    }
    if (r->latency_ms >= 0)
        sc_m_observe_locked(m, SC_MF_REQUEST_LATENCY, l, (double)r->latency_ms / 1000.0);
    pthread_mutex_unlock(&m->mu);
}

void sc_metrics_shadow(sc_metrics_t *m, const char *tenant, const char *agent, const char *stage,
                       const char *tier, const char *model, const char *outcome, double cost_usd)
{
    if (!m)
        return;
    const char *calls[5] = {tenant, agent, stage, tier, outcome};
    const char *cost[4] = {tenant, agent, stage, model};
    /* the ledger families: the same scope and model, source and technique "shadow" */
    const char *l[6] = {tenant, agent, stage, model, "shadow", "shadow"};
    pthread_mutex_lock(&m->mu);
    sc_m_counter_add_locked(m, SC_MF_SHADOW_CALLS, calls, 1.0);
    sc_m_counter_add_locked(m, SC_MF_SHADOW_COST, cost, cost_usd);
    sc_m_counter_add_locked(m, SC_MF_COST, l, cost_usd);
    sc_m_counter_add_locked(m, SC_MF_OVERSPEND, l, cost_usd);
    pthread_mutex_unlock(&m->mu);
}

void sc_metrics_route_agreement(sc_metrics_t *m, const char *tenant, const char *agent,
                                const char *stage, const char *tier, double lower, double rate,
                                double samples)
{
    if (!m)
        return;
    const char *l[4] = {tenant, agent, stage, tier};
    pthread_mutex_lock(&m->mu);
    sc_m_gauge_set_locked(m, SC_MF_AGREEMENT, l, lower);
    sc_m_gauge_set_locked(m, SC_MF_AGREEMENT_RATE, l, rate);
    sc_m_gauge_set_locked(m, SC_MF_AGREEMENT_SAMPLES, l, samples);
    pthread_mutex_unlock(&m->mu);
}

/* One counter increment of family id with labels l (borrowed), under the lock. */
static void sc_m_inc(sc_metrics_t *m, sc_mf_id_t id, const char *const *l)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    sc_m_counter_add_locked(m, id, l, 1.0);
    pthread_mutex_unlock(&m->mu);
}

void sc_metrics_cache(sc_metrics_t *m, const char *tenant, const char *outcome)
{
    const char *l[2] = {tenant, outcome};
    sc_m_inc(m, SC_MF_CACHE, l);
}

void sc_metrics_guard_refusal(sc_metrics_t *m, const char *reason)
{
    sc_m_inc(m, SC_MF_GUARD, &reason);
}

void sc_metrics_upstream_error(sc_metrics_t *m, const char *model, const char *code)
{
    const char *l[2] = {model, code};
    sc_m_inc(m, SC_MF_UPSTREAM_ERRORS, l);
}

void sc_metrics_retry(sc_metrics_t *m, const char *model)
{
    sc_m_inc(m, SC_MF_RETRIES, &model);
}

void sc_metrics_retries(sc_metrics_t *m, const char *model, long n)
{
    if (!m || n <= 0)
        return;
    pthread_mutex_lock(&m->mu);
    sc_m_counter_add_locked(m, SC_MF_RETRIES, &model, (double)n);
    pthread_mutex_unlock(&m->mu);
}

void sc_metrics_upstream_http_error(sc_metrics_t *m, const char *model, long http_status)
{
    char code[24];
    if (http_status > 0)
        snprintf(code, sizeof code, "%ld", http_status);
    else
        sc_strlcpy(code, "transport", sizeof code);
    sc_metrics_upstream_error(m, model, code);
}

void sc_metrics_dead_letter(sc_metrics_t *m, const char *code)
{
    sc_m_inc(m, SC_MF_DEAD_LETTERS, &code);
}

void sc_metrics_stage_latency(sc_metrics_t *m, const char *pipeline_stage, double seconds)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    sc_m_observe_locked(m, SC_MF_STAGE_LATENCY, &pipeline_stage, seconds);
    pthread_mutex_unlock(&m->mu);
}

void sc_metrics_batch_size(sc_metrics_t *m, size_t messages)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    sc_m_observe_locked(m, SC_MF_BATCH_SIZE, NULL, (double)messages);
    pthread_mutex_unlock(&m->mu);
}

void sc_metrics_queue_depth(sc_metrics_t *m, const char *queue, double depth)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    sc_m_gauge_set_locked(m, SC_MF_QUEUE_DEPTH, &queue, depth);
    pthread_mutex_unlock(&m->mu);
}

sc_status_t sc_metrics_gauge_set(sc_metrics_t *m, const char *name, double value)
{
    static const char queue_prefix[] = "queue_depth:";
    if (!m || !name)
        return SC_ERR_INVALID_ARG;
    if (strncmp(name, queue_prefix, sizeof queue_prefix - 1) == 0) {
        sc_metrics_queue_depth(m, name + sizeof queue_prefix - 1, value);
        return SC_OK;
    }
    sc_mf_id_t id;
    if (strcmp(name, "consumer_lag") == 0)
        id = SC_MF_CONSUMER_LAG;
    else if (strcmp(name, "upstream_inflight") == 0)
        id = SC_MF_INFLIGHT;
    else if (strcmp(name, "changelog_restore_seconds") == 0)
        id = SC_MF_CL_RESTORE_S;
    else if (strcmp(name, "changelog_restore_records") == 0)
        id = SC_MF_CL_RESTORE_RECORDS;
    else if (strcmp(name, "changelog_read_bytes") == 0)
        id = SC_MF_CL_BYTES;
    else if (strcmp(name, "changelog_published") == 0)
        id = SC_MF_CL_PUBLISHED;
    else if (strcmp(name, "changelog_applied") == 0)
        id = SC_MF_CL_APPLIED;
    else if (strcmp(name, "changelog_lag_records") == 0)
        id = SC_MF_CL_LAG;
    else if (strcmp(name, "changelog_batches_in_flight") == 0)
        id = SC_MF_CL_BATCHES;
    else if (strcmp(name, "cache_entries") == 0)
        id = SC_MF_CACHE_ENTRIES;
    else
        return SC_ERR_INVALID_ARG;
    pthread_mutex_lock(&m->mu);
    sc_m_gauge_set_locked(m, id, NULL, value);
    pthread_mutex_unlock(&m->mu);
    return SC_OK;
}

void sc_metrics_set_ready(sc_metrics_t *m, int ready)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    atomic_store(&m->ready, ready ? 1 : 0);
    sc_m_gauge_set_locked(m, SC_MF_READY, NULL, ready ? 1.0 : 0.0);
    pthread_mutex_unlock(&m->mu);
}

int sc_metrics_ready(const sc_metrics_t *m)
{
    return m ? atomic_load(&((sc_metrics_t *)m)->ready) : 0;
}

/* ---- exposition ---- */

typedef struct {
    char *p;
    size_t len, cap;
    sc_status_t err;
} sc_mbuf_t;

static void sc_mb_reserve(sc_mbuf_t *b, size_t more)
{
    if (b->err)
        return;
    if (b->len + more + 1 > SC_METRICS_RENDER_MAX) {
        b->err = SC_ERR_TOO_LARGE;
        return;
    }
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : SC_MR_INITIAL;
    while (cap < b->len + more + 1)
        cap *= 2;
    if (cap > SC_METRICS_RENDER_MAX)
        cap = SC_METRICS_RENDER_MAX;
    char *np = realloc(b->p, cap);
    if (!np) {
        b->err = SC_ERR_NOMEM;
        return;
    }
    b->p = np;
    b->cap = cap;
}

static void sc_mb_put(sc_mbuf_t *b, const char *s, size_t n)
{
    sc_mb_reserve(b, n);
    if (b->err)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sc_mb_str(sc_mbuf_t *b, const char *s)
{
    sc_mb_put(b, s, strlen(s));
}

/* s with \ and newline escaped, and " too when quoted (label values; HELP leaves " alone). */
static void sc_mb_escaped(sc_mbuf_t *b, const char *s, int quoted)
{
    for (; *s; s++) {
        if (*s == '\\')
            sc_mb_put(b, "\\\\", 2);
        else if (*s == '\n')
            sc_mb_put(b, "\\n", 2);
        else if (*s == '"' && quoted)
            sc_mb_put(b, "\\\"", 2);
        else
            sc_mb_put(b, s, 1);
    }
}

#define SC_M_NUM_MAX 40 /* "%.17g" of any double, or "+Inf" */

/* The shortest decimal that reads back as v; +Inf, -Inf, NaN as Prometheus writes them. */
static void sc_m_fmt_double(char num[SC_M_NUM_MAX], double v)
{
    if (isnan(v)) {
        sc_strlcpy(num, "NaN", SC_M_NUM_MAX);
        return;
    }
    if (isinf(v)) {
        sc_strlcpy(num, v > 0 ? "+Inf" : "-Inf", SC_M_NUM_MAX);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(num, SC_M_NUM_MAX, "%.*g", prec, v);
        if (strtod(num, NULL) == v)
            break;
    }
}

static void sc_mb_double(sc_mbuf_t *b, double v)
{
    char num[SC_M_NUM_MAX];
    sc_m_fmt_double(num, v);
    sc_mb_str(b, num);
}

static void sc_mb_u64(sc_mbuf_t *b, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    sc_mb_str(b, num);
}

/* name{labels[,le="…"]} ; le NULL: none. No braces at all when there is nothing inside. */
static void sc_mb_sample_name(sc_mbuf_t *b, const sc_mfdef_t *d, const char *suffix,
                              const sc_mseries_t *s, const char *le)
{
    sc_mb_str(b, d->name);
    sc_mb_str(b, suffix);
    if (d->nlabels == 0 && !le)
        return;
    sc_mb_put(b, "{", 1);
    for (size_t l = 0; l < d->nlabels; l++) {
        if (l)
            sc_mb_put(b, ",", 1);
        sc_mb_str(b, d->labels[l].name);
        sc_mb_put(b, "=\"", 2);
        sc_mb_escaped(b, s->vals[l], 1);
        sc_mb_put(b, "\"", 1);
    }
    if (le) {
        if (d->nlabels)
            sc_mb_put(b, ",", 1);
        sc_mb_str(b, "le=\"");
        sc_mb_str(b, le);
        sc_mb_put(b, "\"", 1);
    }
    sc_mb_put(b, "}", 1);
}

static void sc_mb_family(sc_mbuf_t *b, const sc_mfamily_t *f)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    const sc_mfdef_t *d = f->def;
    sc_mb_str(b, "# HELP ");
    sc_mb_str(b, d->name);
    sc_mb_put(b, " ", 1);
    sc_mb_escaped(b, d->help, 0);
    sc_mb_str(b, "\n# TYPE ");
    sc_mb_str(b, d->name);
    sc_mb_put(b, " ", 1);
    sc_mb_str(b, type_names[d->type]);
    sc_mb_put(b, "\n", 1);
    for (size_t i = 0; i < f->n; i++) {
        const sc_mseries_t *s = f->series[i];
        if (d->type != SC_MT_HISTOGRAM) {
            sc_mb_sample_name(b, d, "", s, NULL);
            sc_mb_put(b, " ", 1);
            sc_mb_double(b, s->value);
            sc_mb_put(b, "\n", 1);
            continue;
        }
        uint64_t cum = 0;
        for (size_t k = 0; k <= d->nbuckets; k++) {
            char le[SC_M_NUM_MAX];
            sc_m_fmt_double(le, k < d->nbuckets ? d->buckets[k] : INFINITY);
            cum += s->counts[k];
            sc_mb_sample_name(b, d, "_bucket", s, le);
            sc_mb_put(b, " ", 1);
            sc_mb_u64(b, cum);
            sc_mb_put(b, "\n", 1);
        }
        sc_mb_sample_name(b, d, "_sum", s, NULL);
        sc_mb_put(b, " ", 1);
        sc_mb_double(b, s->sum);
        sc_mb_put(b, "\n", 1);
        sc_mb_sample_name(b, d, "_count", s, NULL);
        sc_mb_put(b, " ", 1);
        sc_mb_u64(b, s->count);
        sc_mb_put(b, "\n", 1);
    }
}

sc_status_t sc_metrics_render(sc_metrics_t *m, char **out, size_t *len)
{
    if (!m || !out)
        return SC_ERR_INVALID_ARG;
    sc_mbuf_t b = {0};
    sc_mb_reserve(&b, 0);
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < SC_MF_COUNT && !b.err; i++)
        sc_mb_family(&b, &m->fam[i]);
    pthread_mutex_unlock(&m->mu);
    if (b.err) {
        free(b.p);
        *out = NULL;
        return b.err;
    }
    *out = b.p;
    if (len)
        *len = b.len;
    return SC_OK;
}
