/* price.h - the cost of a call from its usage and the price table of the configuration
 * ("prices": per model, USD per 1M tokens, dated; defaults from gemini-api.md §7). */
#ifndef SC_PRICE_H
#define SC_PRICE_H

#include "host/core/config.h"
#include "host/core/message.h"

typedef struct {
    double input, output, cached_input;             /* USD per 1M tokens */
    double input_long, output_long, cached_input_long; /* above long_threshold prompt tokens */
    long long long_threshold;                       /* 0: not tiered */
    double batch_factor;                            /* Batch Mode multiplier on input/output */
} sc_price_t;

/* Look up a model's prices. Versioned ids ("gemini-2.5-flash-001") fall back to the longest
 * listed prefix. SC_ERR_NOT_FOUND when the model has no price. */
sc_status_t sc_price_lookup(const sc_config_t *cfg, const char *model, sc_price_t *out);

/* USD for one call: uncached input, cached input, output + thinking (gemini-api.md §1.3).
 * batch: apply batch_factor to input and output. */
double sc_price_cost(const sc_price_t *p, const sc_usage_t *u, int batch);

#endif
