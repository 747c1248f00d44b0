/* tokens.h - local estimate of Gemini prompt tokens, calibrated online per model against
 * usageMetadata.promptTokenCount (moving average), with its running error. */
#ifndef SC_TOKENS_H
#define SC_TOKENS_H

#include <stddef.h>

#include "host/core/status.h"

#define SC_TOKENS_MAX_MODELS 64   /* models tracked; later ones use the factor 1 */
#define SC_TOKENS_MODEL_MAX  128  /* bytes of a model id, NUL included */
#define SC_TOKENS_ALPHA      0.1  /* weight of one observation in the moving averages */
#define SC_TOKENS_FACTOR_MIN 0.25 /* a correction factor stays within [MIN, MAX] */
#define SC_TOKENS_FACTOR_MAX 4.0

typedef struct sc_tokens sc_tokens_t;

/* @remark the caller frees with sc_tokens_free(). NULL on allocation failure. */
sc_tokens_t *sc_tokens_new(void);
void sc_tokens_free(sc_tokens_t *t); /* NULL ok */

/*
 * The uncalibrated estimate of text (len bytes of UTF-8), tuned on English prose and agent
 * traffic for a SentencePiece vocabulary like Gemini's: a short letter run is one token, a long
 * one a token per ~5 further letters; every digit is a token (Gemini splits numbers into
 * digits); punctuation and symbols a token each; a run of newlines one token; a 3- or 4-byte
 * UTF-8 character (CJK, emoji) a token each. At least 1 for non-empty text, 0 for empty.
 */
long sc_tokens_base(const char *text, size_t len);

/* sc_tokens_base() × the model's correction factor (1 before any observation), rounded.
 * t may be NULL (factor 1). Thread-safe. */
long sc_tokens_estimate(const sc_tokens_t *t, const char *model, const char *text, size_t len);

/* The model's correction factor now (1 when unknown). Thread-safe. */
double sc_tokens_factor(const sc_tokens_t *t, const char *model);

/*
 * Feed back one call: estimated is what sc_tokens_estimate() said for the prompt when the call
 * was made (with the factor then in force), actual is usageMetadata.promptTokenCount. The factor
 * moves by factor *= (1 - ALPHA) + ALPHA * actual / estimated (clamped), whose fixed point is
 * the factor that makes estimate == actual; so late observations made with a stale factor still
 * converge. Ignored when estimated or actual is <= 0. Thread-safe.
 */
void sc_tokens_observe(sc_tokens_t *t, const char *model, long estimated, long actual);

/* The model's estimate error: an exponential moving average (ALPHA, seeded by the first
 * observation) of |estimated - actual| / actual, and the number of observations. Both 0 for a
 * model never observed. Thread-safe. */
void sc_tokens_error(const sc_tokens_t *t, const char *model, double *mean_abs_rel_err,
                     long *samples);

#endif
