/* price.c - USD cost of a call from usageMetadata and the configured price table. */
#include "host/core/price.h"

#include <string.h>

static double field(json_t *entry, const char *name)
{
    return json_number_value(json_object_get(entry, name)); /* borrowed; 0 when absent */
}

sc_status_t sc_price_lookup(const sc_config_t *cfg, const char *model, sc_price_t *out)
{
    json_t *prices = sc_config_node(cfg, "prices"); /* borrowed */
    json_t *entry = json_object_get(prices, model);
    if (!entry) { /* "gemini-2.5-flash-001" → the longest listed id it starts with */
        const char *key;
        json_t *val;
        size_t best = 0;
        json_object_foreach(prices, key, val) {
            size_t kl = strlen(key);
            if (kl > best && strncmp(model, key, kl) == 0 && model[kl] == '-') {
                entry = val;
                best = kl;
            }
        }
    }
    if (!json_is_object(entry))
        return SC_ERR_NOT_FOUND;
    out->input = field(entry, "input");
    out->output = field(entry, "output");
    out->cached_input = field(entry, "cached_input");
    out->input_long = field(entry, "input_long");
    out->output_long = field(entry, "output_long");
    out->cached_input_long = field(entry, "cached_input_long");
    out->long_threshold = json_integer_value(json_object_get(entry, "long_threshold"));
    out->batch_factor = field(entry, "batch_factor");
    return SC_OK;
}

double sc_price_cost(const sc_price_t *p, const sc_usage_t *u, int batch)
{
    int tier_long = p->long_threshold > 0 && u->prompt_tokens > p->long_threshold;
    double in = tier_long ? p->input_long : p->input;
    double out = tier_long ? p->output_long : p->output;
    double cached = tier_long ? p->cached_input_long : p->cached_input;
    if (batch) {
        in *= p->batch_factor;
        out *= p->batch_factor;
    }
    long uncached = u->prompt_tokens - u->cached_tokens;
    if (uncached < 0)
        uncached = 0;
    double usd = (double)uncached * in + (double)u->cached_tokens * cached +
                 (double)(u->output_tokens + u->thought_tokens) * out;
    return usd / 1e6;
}
