/* limits.c - per-model limits of the Gemini client: request / token buckets, AIMD throttling on
 * 429, the circuit breaker on sustained 5xx, and the FIFO dispatch they gate (gemini-api.md §8). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/log.h"
#include "host/core/util.h"
#include "host/gemini/gemini.h"
#include "host/gemini/gemini_internal.h"

/* ---- limits ---- */

#define SC_GEMINI_RATE_LIMIT 1e9 /* upper bound accepted for rpm and tpm */
#define SC_GEMINI_MS_PER_MIN 60000.0
/* Bucket capacity: this much time of the rate (and at least one request / one request's
 * tokens), so an idle model can burst rate/60 requests, not a whole minute's worth. */
#define SC_GEMINI_BUCKET_BURST_MS 1000.0
#define SC_GEMINI_BUCKET_EPSILON 1e-9 /* float slack when comparing tokens */
/* AIMD on 429 (gemini-api.md §8): a 429 cuts the model's request rate to DECREASE times the
 * lower of the observed rate and the limit in force (not below FLOOR), at most once per
 * CUT_GAP_MS, only for an attempt started after the last cut, and only when at least
 * MIN_SAMPLES attempts were started in the window (below that our own rate did not cause the
 * 429 and the model-wide pause alone answers it); every success adds INCREASE_RPM. After
 * QUIET_MS without a 429 (counted from the end of the pause) the adaptive limit is dropped:
 * back to the configured rpm, or unlimited. */
#define SC_GEMINI_AIMD_DECREASE 0.5
#define SC_GEMINI_AIMD_FLOOR_RPM 1.0
#define SC_GEMINI_AIMD_INCREASE_RPM 2.0
#define SC_GEMINI_AIMD_INCREASE_FRACTION 0.05 /* and at least this share of the rate per success */
#define SC_GEMINI_AIMD_CUT_GAP_MS 1000L
#define SC_GEMINI_AIMD_MIN_SAMPLES 10u
#define SC_GEMINI_AIMD_QUIET_MS 5000L
#define SC_GEMINI_THROTTLE_LOG_STEP 1.5     /* log a recovering rate each time it grows this much */
#define SC_GEMINI_THROTTLE_LOG_GAP_MS 1000L /* a pause without a rate change: one line per this */
#define SC_GEMINI_BREAKER_WINDOW_MS 10000L  /* the consecutive failures must fall within this */

/* ---- observed request rate ---- */

/* Count an attempt start in the model's observed-rate ring. */
void sc_gemini_rate_note(sc_gem_model_t *m, int64_t now)
{
    int64_t slot = now / SC_GEMINI_RATE_SLOT_MS;
    size_t i = (size_t)(slot % SC_GEMINI_RATE_SLOTS);
    if (m->slot_id[i] != slot) {
        m->slot_id[i] = slot;
        m->slot_count[i] = 0;
    }
    m->slot_count[i]++;
}

/* Attempts started in the last SC_GEMINI_RATE_SLOTS slots. */
static uint32_t sc_gemini_rate_window(const sc_gem_model_t *m, int64_t now)
{
    int64_t slot = now / SC_GEMINI_RATE_SLOT_MS;
    uint32_t n = 0;
    for (size_t i = 0; i < SC_GEMINI_RATE_SLOTS; i++)
        if (m->slot_id[i] > slot - SC_GEMINI_RATE_SLOTS && m->slot_id[i] <= slot)
            n += m->slot_count[i];
    return n;
}

/* ---- per-model limits: buckets, AIMD throttle, breaker, FIFO dispatch ---- */

static double sc_gemini_bucket_cap(const sc_gem_bucket_t *b)
{
    double cap = b->rate * SC_GEMINI_BUCKET_BURST_MS / SC_GEMINI_MS_PER_MIN;
    return cap < 1.0 ? 1.0 : cap;
}

static void sc_gemini_bucket_refill(sc_gem_bucket_t *b, int64_t now)
{
    if (b->rate > 0 && now > b->last_ms) {
        double cap = sc_gemini_bucket_cap(b);
        b->tokens += b->rate * (double)(now - b->last_ms) / SC_GEMINI_MS_PER_MIN;
        if (b->tokens > cap)
            b->tokens = cap;
    }
    b->last_ms = now;
}

/* Change a bucket's rate: refilled at the old rate up to now; a bucket that was unlimited
 * starts full; tokens above the new capacity are dropped. */
static void sc_gemini_bucket_set_rate(sc_gem_bucket_t *b, double rate, int64_t now)
{
    int was_unlimited = b->rate <= 0;
    sc_gemini_bucket_refill(b, now);
    b->rate = rate;
    if (rate <= 0) {
        b->tokens = 0;
        return;
    }
    if (was_unlimited || b->tokens > sc_gemini_bucket_cap(b))
        b->tokens = sc_gemini_bucket_cap(b);
}

/* ms until the bucket holds need tokens (0: now). need is clamped to the capacity so a request
 * larger than the bucket goes when the bucket is full. */
static long sc_gemini_bucket_wait(sc_gem_bucket_t *b, double need, int64_t now)
{
    double cap, missing;
    if (b->rate <= 0 || need <= 0)
        return 0;
    sc_gemini_bucket_refill(b, now);
    cap = sc_gemini_bucket_cap(b);
    if (need > cap)
        need = cap;
    missing = need - b->tokens;
    if (missing <= SC_GEMINI_BUCKET_EPSILON)
        return 0;
    missing = ceil(missing * SC_GEMINI_MS_PER_MIN / b->rate);
    return missing < 1.0 ? 1L : (long)missing;
}

/* The request rate in force: the lower of the configured and the adaptive limit (0: none). */
static double sc_gemini_eff_rpm(double cfg_rpm, double aimd_rpm)
{
    if (cfg_rpm > 0 && aimd_rpm > 0)
        return cfg_rpm < aimd_rpm ? cfg_rpm : aimd_rpm;
    return cfg_rpm > 0 ? cfg_rpm : aimd_rpm;
}

/* The adaptive limit still in force at now: dropped after the quiet period. */
static int sc_gemini_aimd_expired(const sc_gem_model_t *m, int64_t now)
{
    int64_t from = m->last_429_ms > m->pause_until_ms ? m->last_429_ms : m->pause_until_ms;
    return m->aimd_rpm > 0 && now - from >= SC_GEMINI_AIMD_QUIET_MS;
}

static void sc_gemini_throttle_log(sc_gem_model_t *m, int64_t now, const char *why)
{
    double rpm = sc_gemini_eff_rpm(m->cfg.rpm, m->aimd_rpm);
    long pause = m->pause_until_ms > now ? (long)(m->pause_until_ms - now) : 0;
    sc_info("gemini.throttle", "model=%s pause_ms=%ld rate_rpm=%.0f reason=%s", m->name, pause,
            rpm, why);
    m->logged_rpm = rpm;
    m->last_log_ms = now;
}

/* Apply a new adaptive limit to the request bucket. */
static void sc_gemini_aimd_set(sc_gem_model_t *m, double aimd_rpm, int64_t now)
{
    double eff;
    m->aimd_rpm = aimd_rpm;
    eff = sc_gemini_eff_rpm(m->cfg.rpm, aimd_rpm);
    sc_gemini_bucket_set_rate(&m->req, eff, now);
    if (eff > 0 && (m->rate_min <= 0 || eff < m->rate_min))
        m->rate_min = eff;
}

/* Quiet period over: drop the adaptive limit. */
void sc_gemini_aimd_tick(sc_gem_model_t *m, int64_t now)
{
    if (!sc_gemini_aimd_expired(m, now))
        return;
    sc_gemini_aimd_set(m, 0, now);
    sc_gemini_throttle_log(m, now, "recovered");
}

/* A 429 for model m on the attempt of p: pause the whole model for delay ms and (see
 * SC_GEMINI_AIMD_*) cut its request rate. */
void sc_gemini_throttle_429(sc_gem_model_t *m, const sc_gem_priv_t *p, long delay, int64_t now)
{
    int paused_before = m->pause_until_ms > now;
    uint32_t seen;
    double base, cur;

    m->throttled_429++;
    m->last_429_ms = now;
    if (now + delay > m->pause_until_ms)
        m->pause_until_ms = now + delay;
    seen = sc_gemini_rate_window(m, now);
    if ((m->last_cut_ms && now - m->last_cut_ms < SC_GEMINI_AIMD_CUT_GAP_MS) ||
        p->attempt_ms < m->last_cut_ms || seen < SC_GEMINI_AIMD_MIN_SAMPLES) {
        if (!paused_before && now - m->last_log_ms >= SC_GEMINI_THROTTLE_LOG_GAP_MS)
            sc_gemini_throttle_log(m, now, "pause");
        return;
    }
    base = seen * SC_GEMINI_MS_PER_MIN / (SC_GEMINI_RATE_SLOTS * SC_GEMINI_RATE_SLOT_MS);
    cur = sc_gemini_eff_rpm(m->cfg.rpm, m->aimd_rpm);
    if (cur > 0 && cur < base)
        base = cur;
    if (m->aimd_rpm <= 0) /* the first cut of a storm: remember where recovery ends */
        m->aimd_ceiling_rpm = base;
    base *= SC_GEMINI_AIMD_DECREASE;
    m->last_cut_ms = now;
    sc_gemini_aimd_set(m, base < SC_GEMINI_AIMD_FLOOR_RPM ? SC_GEMINI_AIMD_FLOOR_RPM : base, now);
    sc_gemini_throttle_log(m, now, "429");
}

/* A successful attempt: the adaptive limit grows back additively. */
void sc_gemini_throttle_ok(sc_gem_model_t *m, int64_t now)
{
    double next;
    if (m->aimd_rpm <= 0)
        return;
    /* Additive at low rates, proportional at high ones, so a cut from thousands of rpm recovers
     * in seconds of successes rather than minutes. */
    next = m->aimd_rpm + (m->aimd_rpm * SC_GEMINI_AIMD_INCREASE_FRACTION > SC_GEMINI_AIMD_INCREASE_RPM
                              ? m->aimd_rpm * SC_GEMINI_AIMD_INCREASE_FRACTION
                              : SC_GEMINI_AIMD_INCREASE_RPM);
    if ((m->cfg.rpm > 0 && next >= m->cfg.rpm) ||
        (m->aimd_ceiling_rpm > 0 && next >= m->aimd_ceiling_rpm)) {
        sc_gemini_aimd_set(m, 0, now); /* the configured (or unlimited) rate rules again */
        sc_gemini_throttle_log(m, now, "recovered");
        return;
    }
    sc_gemini_aimd_set(m, next, now);
    if (next >= m->logged_rpm * SC_GEMINI_THROTTLE_LOG_STEP)
        sc_gemini_throttle_log(m, now, "recovering");
}

static void sc_gemini_breaker_open(sc_gem_model_t *m, int64_t now, const char *why)
{
    m->br_state = SC_GEM_BREAKER_OPEN;
    m->br_open_until_ms = now + m->br_cooldown_ms;
    m->breaker_opens++;
    sc_warn("gemini.breaker", "model=%s state=open reason=%s failures=%d cooldown_ms=%ld",
            m->name, why, m->br_failures, m->br_cooldown_ms);
}

/* The outcome of an attempt for the breaker: failed = 500/502/503/504 or a transport error. */
void sc_gemini_breaker_result(sc_gemini_t *g, sc_gem_model_t *m, sc_gem_priv_t *p, int failed,
                              int64_t now)
{
    int was_probe = m->br_probe == p;
    if (was_probe)
        m->br_probe = NULL;
    if (m->br_state != SC_GEM_BREAKER_CLOSED) {
        if (!was_probe)
            return; /* attempts sent before the breaker opened do not decide */
        if (failed) {
            long c = m->br_cooldown_ms;
            m->br_cooldown_ms = c > g->opts.breaker_max_cooldown_ms / 2
                                    ? g->opts.breaker_max_cooldown_ms
                                    : c * 2;
            sc_gemini_breaker_open(m, now, "probe_failed");
            return;
        }
        m->br_state = SC_GEM_BREAKER_CLOSED;
        m->br_failures = 0;
        m->br_cooldown_ms = g->opts.breaker_cooldown_ms;
        sc_info("gemini.breaker", "model=%s state=closed", m->name);
        return;
    }
    if (!failed) {
        m->br_failures = 0;
        return;
    }
    if (m->br_failures == 0 || now - m->br_first_ms > SC_GEMINI_BREAKER_WINDOW_MS) {
        m->br_failures = 0;
        m->br_first_ms = now;
    }
    if (++m->br_failures >= g->opts.breaker_failures)
        sc_gemini_breaker_open(m, now, "failures");
}

/* The model entry for name, created when create is set. NULL when absent, or the table is full
 * or memory is short (create). */
sc_gem_model_t *sc_gemini_model_get(sc_gemini_t *g, const char *name, int create)
{
    sc_gem_model_t *m;
    for (int i = 0; i < g->n_models; i++)
        if (strcmp(g->models[i]->name, name) == 0)
            return g->models[i];
    if (!create || g->n_models >= SC_GEMINI_MODELS_MAX || strlen(name) >= sizeof(m->name))
        return NULL;
    m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    sc_strlcpy(m->name, name, sizeof(m->name));
    m->br_cooldown_ms = g->opts.breaker_cooldown_ms;
    m->last_log_ms = INT64_MIN / 2;
    g->models[g->n_models++] = m;
    return m;
}

/*
 * May the head call p of model m start now? 0: yes; > 0: ms until it may (breaker cooldown,
 * pause, bucket refill); -1: not before an attempt of m ends (concurrency cap, probe on the
 * wire).
 */
static long sc_gemini_gate(sc_gem_model_t *m, const sc_gem_priv_t *p, int64_t now)
{
    long w;
    if (m->br_state == SC_GEM_BREAKER_OPEN) {
        if (now < m->br_open_until_ms)
            return (long)(m->br_open_until_ms - now);
        m->br_state = SC_GEM_BREAKER_HALF_OPEN;
        sc_debug("gemini.breaker", "model=%s state=half_open", m->name);
    }
    if (m->br_state == SC_GEM_BREAKER_HALF_OPEN && m->br_probe)
        return -1;
    if (now < m->pause_until_ms)
        return (long)(m->pause_until_ms - now);
    if (m->cfg.max_concurrency > 0 && m->n_running >= m->cfg.max_concurrency)
        return -1;
    if ((w = sc_gemini_bucket_wait(&m->req, 1.0, now)) > 0)
        return w;
    return sc_gemini_bucket_wait(&m->tok, (double)p->call->est_tokens, now);
}

const char *sc_gemini_hold_reason(sc_gem_model_t *m, const sc_gem_priv_t *p, int64_t now)
{
    if (m->br_state != SC_GEM_BREAKER_CLOSED)
        return "deadline passed while the model's circuit breaker was open (consecutive 5xx or "
               "transport failures)";
    if (now < m->pause_until_ms)
        return "deadline passed while the model was paused after a 429";
    if ((m->cfg.max_concurrency > 0 && m->n_running >= m->cfg.max_concurrency) ||
        sc_gemini_bucket_wait(&m->req, 1.0, now) > 0 ||
        sc_gemini_bucket_wait(&m->tok, (double)p->call->est_tokens, now) > 0)
        return "deadline passed while waiting for the model's rate or concurrency limit";
    return p->call->attempts > 0 ? "deadline passed before the next attempt could start"
                                 : "deadline passed before the first attempt could start";
}

/* Start the calls at the head of m's FIFO that may go. Returns ms until the head may go or its
 * deadline passes (-1: only an attempt ending can unblock it, or the FIFO is empty). */
long sc_gemini_dispatch(sc_gemini_t *g, sc_gem_model_t *m, int64_t now)
{
    sc_gemini_call_t *call;
    sc_gem_priv_t *p;
    long w;

    sc_gemini_aimd_tick(m, now);
    while ((p = m->q_head) != NULL) {
        call = p->call;
        if (call->deadline_ms > 0 && call->deadline_ms - now < SC_GEMINI_MIN_ATTEMPT_MS) {
            sc_gemini_err_ended(call, sc_gemini_hold_reason(m, p, now));
            sc_gemini_finish(g, p, SC_ERR_DEADLINE);
            continue;
        }
        w = sc_gemini_gate(m, p, now);
        if (w != 0) {
            if (call->deadline_ms > 0) {
                long left = (long)(call->deadline_ms - now);
                if (w < 0 || left < w)
                    w = left;
            }
            return w;
        }
        sc_gemini_dequeue(p);
        if (m->req.rate > 0)
            m->req.tokens -= 1.0;
        if (m->tok.rate > 0 && call->est_tokens > 0)
            m->tok.tokens -= (double)call->est_tokens;
        sc_gemini_start_attempt(g, p);
        if (p->state == SC_GEM_RUNNING && m->br_state == SC_GEM_BREAKER_HALF_OPEN)
            m->br_probe = p;
    }
    return -1;
}

/* Queue a call behind its model's limits and start what may start. */
void sc_gemini_admit(sc_gemini_t *g, sc_gem_priv_t *p, int64_t now)
{
    sc_gemini_enqueue(p);
    sc_gemini_dispatch(g, p->model, now);
}

sc_status_t sc_gemini_set_model_limits(sc_gemini_t *g, const char *model,
                                       const sc_gemini_limits_t *lim)
{
    static const sc_gemini_limits_t none = {0, 0, 0};
    sc_gem_model_t *m;
    int64_t now = sc_now_ms();

    if (!g || !model || !sc_gemini_model_ok(model))
        return SC_ERR_INVALID_ARG;
    if (!lim)
        lim = &none;
    if (!isfinite(lim->rpm) || !isfinite(lim->tpm) || lim->rpm < 0 || lim->tpm < 0 ||
        lim->rpm > SC_GEMINI_RATE_LIMIT || lim->tpm > SC_GEMINI_RATE_LIMIT ||
        lim->max_concurrency < 0 || lim->max_concurrency > SC_GEMINI_CONCURRENCY_LIMIT)
        return SC_ERR_INVALID_ARG;
    if (strlen(model) >= sizeof(m->name))
        return SC_ERR_INVALID_ARG;
    m = sc_gemini_model_get(g, model, 1);
    if (!m)
        return g->n_models >= SC_GEMINI_MODELS_MAX ? SC_ERR_FULL : SC_ERR_NOMEM;
    m->cfg = *lim;
    if (m->aimd_rpm > 0 && m->cfg.rpm > 0 && m->aimd_rpm >= m->cfg.rpm)
        m->aimd_rpm = 0;
    sc_gemini_aimd_set(m, m->aimd_rpm, now);
    sc_gemini_bucket_set_rate(&m->tok, m->cfg.tpm, now);
    sc_info("gemini.limits", "model=%s rpm=%.0f tpm=%.0f max_concurrency=%d", m->name,
            m->cfg.rpm, m->cfg.tpm, m->cfg.max_concurrency);
    sc_gemini_dispatch(g, m, now); /* raised limits may let waiting calls go */
    return SC_OK;
}

void sc_gemini_model_stats(const sc_gemini_t *g, const char *model, sc_gemini_model_stats_t *out)
{
    const sc_gem_model_t *m = NULL;
    int64_t now = sc_now_ms();

    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!g || !model)
        return;
    for (int i = 0; i < g->n_models && !m; i++)
        if (strcmp(g->models[i]->name, model) == 0)
            m = g->models[i];
    if (!m)
        return;
    out->requests_started = m->requests_started;
    out->throttled_429 = m->throttled_429;
    out->breaker_opens = m->breaker_opens;
    out->rate_rpm_now =
        sc_gemini_eff_rpm(m->cfg.rpm, sc_gemini_aimd_expired(m, now) ? 0 : m->aimd_rpm);
    out->rate_rpm_min = m->rate_min;
    out->pause_ms_left = m->pause_until_ms > now ? m->pause_until_ms - now : 0;
    out->breaker_open = m->br_state != SC_GEM_BREAKER_CLOSED;
    out->waiting = m->n_waiting;
    out->running = m->n_running;
}
