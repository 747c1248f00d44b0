/* sim_faults.c - the simulator's fault injection (sim.h, "Fault spec"): the spec parser, the
 * seeded draws for generateContent (error, delay, refusal, with the per-body cap) and the error
 * replies of an injected fault. Batch Mode draws its own faults in sim_batches.c. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/util.h"
#include "host/gemini/sim_internal.h"

/* ---- limits and defaults ---- */

#define SC_SIM_FAULT_SPEC_MAX          1024
#define SC_SIM_FAULT_PROBE             32u /* linear-probe window in the fault_slots table */
#define SC_SIM_MAX_PER_REQUEST_DEFAULT 2u
#define SC_SIM_MAX_PER_REQUEST_MAX     1000000u
#define SC_SIM_DELAY_MS_DEFAULT        50u
#define SC_SIM_DELAY_MS_MAX            60000u
#define SC_SIM_RETRY_DELAY_DEFAULT     "0.2s"
#define SC_SIM_SEED_DEFAULT            1u

#define SC_SIM_MSG_429                                                                             \
    "You exceeded your current quota, please check your plan and billing details. For more "       \
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
#define SC_SIM_MSG_503 "The model is overloaded. Please try again later."

const char *const sc_sim_fault_names[SC_SIM_F_COUNT] = {"429",   "500",      "503",  "malformed",
                                                        "reset", "truncate", "delay"};

/* ---- fault injection ---- */

/* A refusal instead of the answer? Only the cheaper models refuse (a cascade's first tiers). */
bool sc_sim_refuses(sc_gemini_sim_t *sim, const sc_sim_model_t *m)
{
    if (sim->faults.refuse <= 0.0 || strstr(m->name, "-pro"))
        return false;
    pthread_mutex_lock(&sim->fault_mu);
    bool r = sc_sim_unit(&sim->rng) < sim->faults.refuse;
    pthread_mutex_unlock(&sim->fault_mu);
    return r;
}

/* Decide the fate of one generateContent (429, 500, 503, malformed, reset or truncate, all from
 * one draw over their summed shares). @return a failing sc_sim_fault_t or SC_SIM_F_NONE;
 * *delay says whether to sleep first. Both draws happen for every request so that a seed gives
 * the same sequence whatever the outcomes. */
int sc_sim_fault_draw(sc_gemini_sim_t *sim, uint64_t body_hash, bool *delay)
{
    const sc_sim_faults_t *f = &sim->faults;
    int kind = SC_SIM_F_NONE;
    *delay = false;
    if (!f->any)
        return kind;
    pthread_mutex_lock(&sim->fault_mu);
    double u_delay = sc_sim_unit(&sim->rng);
    double u = sc_sim_unit(&sim->rng);
    *delay = u_delay < f->share[SC_SIM_F_DELAY];
    double acc = 0.0;
    for (int k = SC_SIM_F_429; k < SC_SIM_F_DELAY; k++) {
        acc += f->share[k];
        if (u < acc) {
            kind = k;
            break;
        }
    }
    if (kind != SC_SIM_F_NONE && sim->fault_slots) {
        uint64_t key = body_hash ? body_hash : 1;
        size_t home = (size_t)(key & (SC_SIM_FAULT_SLOTS - 1));
        sc_sim_fault_slot_t *slot = NULL, *victim = NULL;
        for (size_t p = 0; p < SC_SIM_FAULT_PROBE && !slot; p++) {
            sc_sim_fault_slot_t *s = &sim->fault_slots[(home + p) & (SC_SIM_FAULT_SLOTS - 1)];
            if (s->key == key || s->key == 0)
                slot = s;
            else if (!victim || s->count > victim->count)
                victim = s; /* the most-failed body is the likeliest to be finished */
        }
        if (!slot) {
            slot = victim;
            slot->key = 0;
            atomic_fetch_add(&sim->fault_evictions, 1);
        }
        if (slot->key != key) {
            slot->key = key;
            slot->count = 0;
        }
        if (slot->count >= f->max_per_request)
            kind = SC_SIM_F_NONE;
        else
            slot->count++;
    }
    pthread_mutex_unlock(&sim->fault_mu);
    if (kind != SC_SIM_F_NONE)
        atomic_fetch_add(&sim->faults_by_kind[kind], 1);
    if (*delay)
        atomic_fetch_add(&sim->faults_by_kind[SC_SIM_F_DELAY], 1);
    return kind;
}

bool sc_sim_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s[0])
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno || v > max)
        return false;
    *out = (uint64_t)v;
    return true;
}

bool sc_sim_parse_rate(const char *s, double *out)
{
    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '.'))
        return false;
    char *end = NULL;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || *end || !isfinite(d) || d < 0.0 || d > 1.0)
        return false;
    *out = d;
    return true;
}

/* A duration as the API writes it: digits, optionally '.' and 1..9 digits, then 's'. */
bool sc_sim_valid_duration(const char *s)
{
    size_t n = strlen(s), i = 0, frac = 0;
    if (n < 2 || n >= SC_SIM_RETRY_DELAY_MAX || s[n - 1] != 's')
        return false;
    while (i < n - 1 && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == 0)
        return false;
    if (i < n - 1 && s[i] == '.') {
        i++;
        while (i < n - 1 && s[i] >= '0' && s[i] <= '9') {
            i++;
            frac++;
        }
        if (frac == 0 || frac > 9)
            return false;
    }
    return i == n - 1;
}

/* Parse the spec of sim.h into *f. @return SC_ERR_INVALID_ARG with a message naming the
 * key in errbuf. */
sc_status_t sc_sim_faults_parse(const char *spec, sc_sim_faults_t *f, char *errbuf,
                                size_t errlen)
{
    sc_status_t st = SC_OK;
    char buf[SC_SIM_FAULT_SPEC_MAX];
    memset(f, 0, sizeof *f);
    f->delay_ms = SC_SIM_DELAY_MS_DEFAULT;
    f->seed = SC_SIM_SEED_DEFAULT;
    f->max_per_request = SC_SIM_MAX_PER_REQUEST_DEFAULT;
    sc_strlcpy(f->retry_delay, SC_SIM_RETRY_DELAY_DEFAULT, sizeof f->retry_delay);
    if (!spec || !spec[0])
        goto out;
    if (sc_strlcpy(buf, spec, sizeof buf) >= sizeof buf) {
        sc_sim_errf(errbuf, errlen, "fault spec longer than %d bytes", SC_SIM_FAULT_SPEC_MAX - 1);
        st = SC_ERR_INVALID_ARG;
        goto out;
    }
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item) {
            sc_sim_errf(errbuf, errlen, "fault spec: '%s' is not key=value", item);
            st = SC_ERR_INVALID_ARG;
            goto out;
        }
        *eq = '\0';
        const char *key = item, *val = eq + 1;
        int kind = SC_SIM_F_NONE;
        for (int k = 0; k < SC_SIM_F_COUNT; k++)
            if (strcmp(key, sc_sim_fault_names[k]) == 0)
                kind = k;
        uint64_t u = 0;
        if (kind != SC_SIM_F_NONE) {
            if (!sc_sim_parse_rate(val, &f->share[kind])) {
                sc_sim_errf(errbuf, errlen, "fault spec: %s=%s: the share must be a number in 0..1",
                            key, val);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
        } else if (strcmp(key, "delay_ms") == 0) {
            if (!sc_sim_parse_u64(val, SC_SIM_DELAY_MS_MAX, &u)) {
                sc_sim_errf(errbuf, errlen, "fault spec: delay_ms=%s: expected 0..%u", val,
                            SC_SIM_DELAY_MS_MAX);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
            f->delay_ms = (unsigned)u;
        } else if (strcmp(key, "seed") == 0) {
            if (!sc_sim_parse_u64(val, UINT64_MAX, &u)) {
                sc_sim_errf(errbuf, errlen, "fault spec: seed=%s: expected an unsigned integer",
                            val);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
            f->seed = u;
        } else if (strcmp(key, "max_per_request") == 0) {
            if (!sc_sim_parse_u64(val, SC_SIM_MAX_PER_REQUEST_MAX, &u)) {
                sc_sim_errf(errbuf, errlen, "fault spec: max_per_request=%s: expected 0..%u", val,
                            SC_SIM_MAX_PER_REQUEST_MAX);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
            f->max_per_request = (unsigned)u;
        } else if (strcmp(key, "retry_delay") == 0) {
            if (!sc_sim_valid_duration(val)) {
                sc_sim_errf(errbuf, errlen,
                            "fault spec: retry_delay=%s: expected a duration like 0.2s", val);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
            sc_strlcpy(f->retry_delay, val, sizeof f->retry_delay);
        } else if (strcmp(key, "batch_error") == 0 || strcmp(key, "batch_fail") == 0 ||
                   strcmp(key, "batch_expire") == 0 || strcmp(key, "refuse") == 0) {
            double *dst = strcmp(key, "batch_error") == 0  ? &f->batch_error
                          : strcmp(key, "batch_fail") == 0 ? &f->batch_fail
                          : strcmp(key, "refuse") == 0     ? &f->refuse
                                                           : &f->batch_expire;
            if (!sc_sim_parse_rate(val, dst)) {
                sc_sim_errf(errbuf, errlen, "fault spec: %s=%s: the share must be a number in 0..1",
                            key, val);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
        } else if (strcmp(key, "job_state_prefix") == 0) {
            if (!sc_sim_parse_u64(val, 1, &u)) {
                sc_sim_errf(errbuf, errlen, "fault spec: job_state_prefix=%s: expected 0 or 1",
                            val);
                st = SC_ERR_INVALID_ARG;
                goto out;
            }
            f->job_state_prefix = u == 1;
        } else {
            sc_sim_errf(errbuf, errlen, "fault spec: unknown key '%s'", key);
            st = SC_ERR_INVALID_ARG;
            goto out;
        }
    }
    double sum = 0.0;
    for (int k = SC_SIM_F_429; k < SC_SIM_F_DELAY; k++)
        sum += f->share[k];
    if (sum > 1.0 + 1e-9) {
        sc_sim_errf(errbuf, errlen,
                    "fault spec: 429+500+503+malformed+reset+truncate shares sum to %g, above 1",
                    sum);
        st = SC_ERR_INVALID_ARG;
        goto out;
    }
    if (f->batch_fail + f->batch_expire > 1.0 + 1e-9) {
        sc_sim_errf(errbuf, errlen, "fault spec: batch_fail+batch_expire shares sum to %g, above 1",
                    f->batch_fail + f->batch_expire);
        st = SC_ERR_INVALID_ARG;
        goto out;
    }
    for (int k = 0; k < SC_SIM_F_COUNT; k++)
        f->any = f->any || f->share[k] > 0.0;
out:
    return st;
}

/* ---- fault replies ---- */

void sc_sim_reply_fault(sc_gemini_sim_t *sim, int kind, const char *model, sc_sim_reply_t *r)
{
    r->fault = sc_sim_fault_names[kind];
    if (kind == SC_SIM_F_429) {
        json_t *details = json_pack(
            "[{s:s, s:[{s:s, s:s, s:{s:s, s:s}, s:s}]}, {s:s, s:[{s:s, s:s}]}, {s:s, s:s}]",
            "@type", "type.googleapis.com/google.rpc.QuotaFailure", "violations", "quotaMetric",
            "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
            "quotaId", "GenerateContentInputTokensPerModelPerMinute-FreeTier", "quotaDimensions",
            "location", "global", "model", model, "quotaValue", "250000", "@type",
            "type.googleapis.com/google.rpc.Help", "links", "description",
            "Learn more about Gemini API quotas", "url",
            "https://ai.google.dev/gemini-api/docs/rate-limits", "@type",
            "type.googleapis.com/google.rpc.RetryInfo", "retryDelay", sim->faults.retry_delay);
        sc_sim_reply_error(r, 429, "RESOURCE_EXHAUSTED", details, "%s", SC_SIM_MSG_429);
    } else if (kind == SC_SIM_F_500) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "%s", SC_SIM_MSG_500);
    } else {
        sc_sim_reply_error(r, 503, "UNAVAILABLE", NULL, "%s", SC_SIM_MSG_503);
    }
}
