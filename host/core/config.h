/* config.h - the effective configuration: built-in defaults, then a JSON file, then
 * -X dotted.key=value overrides, then secrets from the environment (DESIGN §4.4). */
#ifndef SC_CONFIG_H
#define SC_CONFIG_H

#include <stddef.h>

#include <jansson.h>

#include "host/core/status.h"

/* The upper bound of metrics.max_tenants: one series per tenant in a family of at most
 * SC_METRICS_MAX_SERIES (host/metrics/metrics.h, which checks that the two agree). */
#define SC_CONFIG_MAX_TENANTS 1000

typedef struct sc_config sc_config_t;

/* A configuration holding the defaults. @remark the caller frees with sc_config_free(). */
sc_status_t sc_config_new(sc_config_t **out);
void sc_config_free(sc_config_t *cfg); /* NULL ok */

/* Merge a JSON file over the current values. Unknown keys, wrong types and secrets in the file
 * are errors naming the key (SC_ERR_CONFIG); an unreadable or malformed file names the file and
 * the line. */
sc_status_t sc_config_load_file(sc_config_t *cfg, const char *path, char *errbuf, size_t errlen);

/* Apply one "dotted.key=value" override. Keys under "kafka." are passed to librdkafka as they
 * are (any key); every other key must exist, and the value must parse as its type. */
sc_status_t sc_config_set(sc_config_t *cfg, const char *kv, char *errbuf, size_t errlen);

/* Read secrets from the environment: GEMINI_API_KEY -> gemini.api_key. */
void sc_config_load_env(sc_config_t *cfg);

/* Check ranges and relations (e.g. batch.max_messages >= 1); names the bad key. */
sc_status_t sc_config_validate(const sc_config_t *cfg, char *errbuf, size_t errlen);

/* Typed getters by dotted key. The key must exist (a missing key is a programming error and
 * returns "" / 0). Strings are borrowed from the configuration. */
const char *sc_config_str(const sc_config_t *cfg, const char *key);
long long sc_config_int(const sc_config_t *cfg, const char *key);
double sc_config_num(const sc_config_t *cfg, const char *key);
int sc_config_bool(const sc_config_t *cfg, const char *key);
/* The node at key (object, array or scalar), borrowed; NULL when absent. */
json_t *sc_config_node(const sc_config_t *cfg, const char *key);

/* The effective configuration as indented JSON with secrets masked.
 * @remark the caller frees with free(). */
char *sc_config_dump(const sc_config_t *cfg);

#endif
