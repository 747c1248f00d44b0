/* router.h - the model router: prompt features (embedding + hand-made signals), a small head
 * (logistic or one-hidden-layer MLP) loaded from models/router/router.json, and score → tier. */
#ifndef SC_ROUTER_H
#define SC_ROUTER_H

#include <stddef.h>

#include "host/core/status.h"
#include "models/encoder.h"

/* The hand-made signals, in this fixed order (sc_router_signal_name gives the names that the
 * weights file lists; a file whose list differs is refused). */
enum {
    SC_SIG_LOG_TOKENS = 0, /* log(1 + WordPiece tokens) */
    SC_SIG_LOG_BYTES,      /* log(1 + bytes) */
    SC_SIG_LOG_LINES,      /* log(1 + newlines) */
    SC_SIG_CODE,           /* log(1 + code markers: ``` ` { } ; "def " "SELECT" "#include" …) */
    SC_SIG_MATH_DENSITY,   /* share of bytes that are digits or arithmetic operators */
    SC_SIG_MATH_WORDS,     /* log(1 + LaTeX / math words: \frac $ solve calculate prove …) */
    SC_SIG_MULTI_STEP, /* log(1 + "step by step", "first … then", "explain why", "compare" …) */
    SC_SIG_QUESTIONS,  /* number of '?' (capped) */
    SC_SIG_OPTIONS,    /* answer options present: lines starting "A." "B)" "(C)" … */
    SC_SIG_NEGATION,   /* log(1 + "not" "except" "least" "false" "incorrect" …) */
    SC_SIG_LOG_NUMBERS, /* log(1 + runs of digits) */
    SC_SIG_WORD_LEN,    /* mean word length in bytes */
    SC_ROUTER_NSIGNALS
};

#define SC_ROUTER_NFEATURES    (SC_EMBED_DIM + SC_ROUTER_NSIGNALS)
#define SC_ROUTER_MAX_HIDDEN   256 /* the largest MLP hidden layer a weights file may declare */
#define SC_ROUTER_MAX_TIERS    8
#define SC_ROUTER_TIER_NAME    64   /* bytes per tier name, NUL included */
#define SC_ROUTER_COUNT_TOKENS 4096 /* tokens counted for SC_SIG_LOG_TOKENS (beyond: capped) */

typedef struct sc_router sc_router_t;

/* The name of signal i (0 <= i < SC_ROUTER_NSIGNALS), as written in the weights file. */
const char *sc_router_signal_name(int i);

/* The signals of one prompt (len bytes of text, n_tokens WordPiece tokens) into out[0..S). */
void sc_router_signals(const char *text, size_t len, int n_tokens, float *out);

/* Load a weights file written by `scrimp train-router`. A missing file, bad JSON, a wrong version,
 * a feature list that is not this build's, or arrays of the wrong length are errors with the
 * detail in errbuf. @remark the caller frees *out with sc_router_free(). */
sc_status_t sc_router_load(const char *path, sc_router_t **out, char *errbuf, size_t errlen);
void sc_router_free(sc_router_t *r); /* NULL ok */

/* Build a router from parts (training does this; sc_router_load does it from the file). Copies
 * everything. hidden = 0: logistic, w2 has SC_ROUTER_NFEATURES entries and w1/b1 are NULL;
 * hidden > 0: w1 [hidden × F], b1 [hidden], w2 [hidden]. thresholds: nthr ascending values,
 * tiers: nthr + 1 names (NULL: flash-lite, flash, pro when nthr = 2).
 * @remark the caller frees *out with sc_router_free(). */
sc_status_t sc_router_new(const float *mean, const float *std, int hidden, const float *w1,
                          const float *b1, const float *w2, float b2, const float *thresholds,
                          int nthr, const char *const *tiers, sc_router_t **out);

/* score[i] = estimated probability that prompt i needs the strong model.
 * emb: n × SC_EMBED_DIM (from sc_encoder_embed), signals: n × SC_ROUTER_NSIGNALS (from
 * sc_router_signals), scores: n. SC_ERR_NOMEM is the only failure. */
sc_status_t sc_router_score_batch(const sc_router_t *r, const float *emb, const float *signals,
                                  size_t n, float *scores);

/* The tier for a score: tier k where k = the number of the file's thresholds <= score (so the
 * cheapest below t1, the middle below t2, the strongest above), clamped to ntiers - 1.
 * tiers = NULL (or ntiers <= 0) uses the names stored in the file. Borrowed string. */
const char *sc_router_tier(const sc_router_t *r, float score, const char *const *tiers, int ntiers);

/* ---- operating point: the strong-tier threshold from a quality target ----
 *
 * train-router stores an operating curve from the subject-grouped cross-validation predictions of
 * the training subjects: for npoints score thresholds (descending; share[k] of the CV prompts score
 * at or above threshold[k], share ascending from 0 to 1), quality_low[k] is the quality ratio
 * (accuracy when prompts at or above the threshold get the strong model's answer and the others
 * the weak one's, over the all-strong accuracy) that the CV folds reach with at least the curve's
 * confidence (a low quantile over the folds). */
#define SC_ROUTER_MAX_CURVE 1001

/* The thresholds for a quality target: the strong tier takes the smallest share of prompts from
 * which on quality_low stays >= target (the last point, everything strong, when none does; *met
 * says which); of the prompts left, the cheapest tier takes the easiest lite_share, the middle the
 * rest. thr[0] <= thr[1] (lite below thr[0], strong at or above thr[1]); *strong_share: the share
 * at the chosen point (on the CV prompts). -1 when the arguments are out of range
 * (target in (0, 1], lite_share in [0, 1], npoints >= 2), else 0. */
int sc_router_pick_thresholds(const float *threshold, const float *share, const float *quality_low,
                              int npoints, double target, double lite_share, float thr[2],
                              double *strong_share, int *met);

/* Replace r's two thresholds by those for a quality target (sc_router_pick_thresholds on the
 * file's operating curve). SC_ERR_INVALID_ARG: arguments out of range; SC_ERR_NOT_FOUND: the
 * file has no operating curve or not two thresholds. *strong_share and *met as above (may be
 * NULL). */
sc_status_t sc_router_set_quality_target(sc_router_t *r, double target, double lite_share,
                                         double *strong_share, int *met);

/* ---- domain: the prompts the head was fitted on ----
 *
 * train-router stores the range (min, max) of each signal over the training prompts. A prompt
 * whose signals leave that box (a free-form chat message where the training prompts were all
 * multiple-choice questions, say) is unlike anything the head has seen: its score says nothing
 * and the caller routes it by its own default (scrimp serve: router.outside_tier). */

/* 1 when the signals (SC_ROUTER_NSIGNALS of them) lie inside the file's box, or the file has no
 * box; 0 outside. */
int sc_router_in_domain(const sc_router_t *r, const float *signals);

/* Set the box (lo, hi: SC_ROUTER_NSIGNALS values each; NULL clears it). train-router uses it. */
sc_status_t sc_router_set_domain(sc_router_t *r, const float *lo, const float *hi);
int sc_router_has_domain(const sc_router_t *r);

/* Read-only views for tools and tests. */
int sc_router_hidden(const sc_router_t *r);
int sc_router_nthresholds(const sc_router_t *r);
float sc_router_threshold(const sc_router_t *r, int k);
int sc_router_curve_points(const sc_router_t *r); /* 0: the file has no operating curve */

/* The whole path for text: signals (tokens counted with tok) + embeddings from enc + scores.
 * texts[i] of lens[i] bytes; scores: n; in_domain (optional, n): sc_router_in_domain of each. */
sc_status_t sc_router_score_texts(const sc_router_t *r, sc_encoder_t *enc, const char *const *texts,
                                  const size_t *lens, size_t n, float *scores,
                                  unsigned char *in_domain);

/* APGR of a router on labelled prompts (RouteLLM's metric): prompts are sent to the strong model
 * in decreasing order of score; at cost c (share sent to strong) quality = mean correctness when
 * each prompt gets the answer of the model it went to; PGR(c) = (quality − weak quality) /
 * (strong quality − weak quality); APGR = ∫₀¹ PGR(c) dc (trapezoids; ties are split evenly).
 * weak_ok/strong_ok: n 0/1 values. curve (optional): npoints PGR values at costs k/(npoints-1),
 * quality (optional): the same points as accuracy. Returns NaN when strong quality == weak. */
double sc_router_apgr(const float *scores, const unsigned char *weak_ok,
                      const unsigned char *strong_ok, size_t n, double *curve, double *quality,
                      int npoints);

/* The same metric on graded qualities (weak_q, strong_q: n values each, e.g. judge scores scaled to
 * [0, 1]); for 0/1 values it is sc_router_apgr. quality (optional) as the mean graded quality. */
double sc_router_apgr_graded(const float *scores, const double *weak_q, const double *strong_q,
                             size_t n, double *curve, double *quality, int npoints);

#endif
