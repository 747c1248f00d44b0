/* thinking.h - how much a model thinks per call, learned from the calls it answers, per scope
 * (tenant × agent × stage): the ledger prices the naive request's thinking with it when the answer
 * came from a model that thinks less (a cheaper tier) or from no model at all (the cache). */
#ifndef SC_THINKING_H
#define SC_THINKING_H

#include <stddef.h>

#define SC_THINKING_MAX_MODELS 16   /* models observed; more are estimated from the default */
#define SC_THINKING_MAX_SCOPES 4096 /* scopes kept per process; more fall back to the model's mean */
#define SC_THINKING_MIN_SCOPE  3    /* observations before a scope's own mean is trusted */
#define SC_THINKING_MODEL_MAX  64

typedef struct sc_thinking sc_thinking_t;

/* Where an estimate came from. */
typedef enum {
    SC_THINKING_SCOPE = 0, /* the scope's own mean (>= SC_THINKING_MIN_SCOPE calls) */
    SC_THINKING_MODEL,     /* the model's mean over every scope */
    SC_THINKING_DEFAULT,   /* no call of the model seen yet: the configured default */
} sc_thinking_basis_t;

/* default_model and default_tokens: the estimate for that model before any observation (for any
 * other model it is 0, the conservative answer). default_model is copied.
 * @remark the caller frees with sc_thinking_free(). NULL on allocation failure. */
sc_thinking_t *sc_thinking_new(const char *default_model, double default_tokens);
void sc_thinking_free(sc_thinking_t *t); /* NULL ok */

/* One answered call of model in the scope (tenant, agent, stage: NULL = none) billed
 * thought_tokens (0 counts: a call that did not think). Thread-safe. */
void sc_thinking_observe(sc_thinking_t *t, const char *model, const char *tenant,
                         const char *agent, const char *stage, long thought_tokens);

/* The expected thought tokens of one call of model in the scope; *basis (may be NULL) says which
 * mean answered. t NULL: 0. Thread-safe. */
double sc_thinking_estimate(sc_thinking_t *t, const char *model, const char *tenant,
                            const char *agent, const char *stage, sc_thinking_basis_t *basis);

#endif
