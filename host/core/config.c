/* config.c - defaults, JSON file, -X overrides and environment secrets, merged into one jansson
 * tree that every component reads through typed getters. */
#include "host/core/config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/listen.h"
#include "host/core/util.h"

struct sc_config {
    json_t *root; /* owned */
};

#define SC_CONFIG_KEY_MAX 256
#define SC_CONFIG_SECRET_MASK "********"

/*
 * Built-in defaults (DESIGN §4.4). Prices: USD per 1M tokens from gemini-api.md §7.1/§7.2,
 * the 2026-03 snapshot ("as_of"); batch_factor 0.5 is Batch Mode's 50%; cache_storage_per_hour
 * is explicit-cache storage per 1M tokens per hour (§4.6; 0 where caching is not available).
 */
static const char *config_defaults =
    "{"
    "\"kafka\": {\"bootstrap.servers\": \"127.0.0.1:9092\", \"group.id\": \"scrimp\"},"
    "\"topics\": {\"requests\": \"scrimp.requests\", \"results\": \"scrimp.results\","
    "             \"dlq\": \"scrimp.dlq\", \"cache\": \"scrimp.cache\", \"shadow\": \"scrimp.shadow\"},"
    "\"batch\": {\"max_messages\": 256, \"max_wait_ms\": 10, \"priority_enabled\": true,"
    "            \"priority_max_wait_ms\": 60000},"
    "\"pipeline\": {\"queue_capacity\": 4096, \"compute_chunk\": 64, \"drain_timeout_ms\": 30000,"
    "               \"startup_timeout_ms\": 8000},"
    "\"limits\": {\"max_message_bytes\": 1048576, \"max_messages\": 1000, \"max_id_bytes\": 256},"
    "\"request\": {\"default_deadline_ms\": 120000},"
    "\"gemini\": {\"base_url\": \"https://generativelanguage.googleapis.com\", \"api_key\": \"\","
    "             \"max_inflight\": 256, \"connect_timeout_ms\": 5000,"
    "             \"request_timeout_ms\": 60000, \"max_attempts\": 5,"
    "             \"backoff_initial_ms\": 1000, \"backoff_max_ms\": 60000,"
    "             \"backoff_jitter_ms\": 1000, \"http2\": true,"
    "             \"breaker_failures\": 20, \"breaker_cooldown_ms\": 5000,"
    "             \"breaker_max_cooldown_ms\": 60000},"
    "\"rate_limits\": {},"
    "\"backfill\": {\"mode\": \"online\", \"batch_max_requests\": 1000,"
    "               \"batch_max_bytes\": 19000000, \"poll_initial_ms\": 1000,"
    "               \"poll_max_ms\": 30000, \"max_batch_retries\": 3,"
    "               \"progress_every_ms\": 2000},"
    "\"models\": {\"lite\": \"gemini-2.5-flash-lite\", \"cheap\": \"gemini-2.5-flash\","
    "             \"strong\": \"gemini-2.5-pro\", \"default\": \"auto\","
    "             \"embedding\": \"models/all-MiniLM-L6-v2\"},"
    "\"cache\": {\"enabled\": true, \"threshold\": 0.93, \"path\": \"var/cache\","
    "            \"max_bytes\": 1073741824, \"ttl_s\": 604800, \"strict_band\": 0.10,"
    "            \"guards\": true, \"temperature_max\": 1.0, \"index\": \"flat\","
    "            \"ann_min\": 20000, \"hnsw_m\": 32, \"hnsw_ef_search\": 96,"
    "            \"hnsw_ef_construction\": 80, \"ivf_nlist\": 1024, \"ivf_nprobe\": 16,"
    "            \"gpu\": true, \"index_save\": true, \"checkpoint_s\": 600,"
    "            \"changelog\": false, \"changelog_restore_ms\": 30000},"
    "\"prune\": {\"enabled\": true, \"max_tokens\": 4000, \"keep_last\": 3, \"agents\": {},"
    "            \"summaries\": true, \"path\": \"var/summaries\", \"turn_vectors\": 8192},"
    "\"router\": {\"enabled\": true, \"path\": \"models/router/router.json\","
    "             \"quality_target\": 0.95, \"lite_share\": 0.5, \"outside_tier\": \"strong\","
    "             \"shadow_rate\": 0.02, \"shadow_path\": \"var/shadow\", \"shadow_window\": 1000,"
    "             \"shadow_z\": 1.645, \"shadow_min_samples\": 30, \"shadow_max_inflight\": 16,"
    "             \"shadow_seed\": 0},"
    "\"ledger\": {\"strong_thought_tokens\": 1000},"
    "\"cascade\": {\"enabled\": true},"
    "\"coalesce\": {\"enabled\": true},"
    "\"prompt_cache\": {\"enabled\": true, \"min_tokens\": 1024, \"min_tokens_pro\": 4096, \"ttl_s\": 300,"
    "                  \"idle_s\": 600, \"max_caches\": 256},"
    "\"metrics\": {\"listen\": \"127.0.0.1:9464\", \"max_tenants\": 50},"
    "\"backend\": \"auto\","
    "\"encoder\": {\"precision\": \"auto\"},"
    "\"prices\": {"
    "  \"gemini-2.5-pro\": {\"input\": 1.25, \"output\": 10.0, \"cached_input\": 0.125,"
    "     \"input_long\": 2.5, \"output_long\": 15.0, \"cached_input_long\": 0.25,"
    "     \"long_threshold\": 200000, \"batch_factor\": 0.5, \"cache_storage_per_hour\": 4.50,"
    "     \"as_of\": \"2026-03\"},"
    "  \"gemini-2.5-flash\": {\"input\": 0.30, \"output\": 2.50, \"cached_input\": 0.03,"
    "     \"input_long\": 0.30, \"output_long\": 2.50, \"cached_input_long\": 0.03,"
    "     \"long_threshold\": 0, \"batch_factor\": 0.5, \"cache_storage_per_hour\": 1.00,"
    "     \"as_of\": \"2026-03\"},"
    "  \"gemini-2.5-flash-lite\": {\"input\": 0.10, \"output\": 0.40, \"cached_input\": 0.01,"
    "     \"input_long\": 0.10, \"output_long\": 0.40, \"cached_input_long\": 0.01,"
    "     \"long_threshold\": 0, \"batch_factor\": 0.5, \"cache_storage_per_hour\": 1.00,"
    "     \"as_of\": \"2026-03\"},"
    "  \"gemini-2.0-flash\": {\"input\": 0.10, \"output\": 0.40, \"cached_input\": 0.025,"
    "     \"input_long\": 0.10, \"output_long\": 0.40, \"cached_input_long\": 0.025,"
    "     \"long_threshold\": 0, \"batch_factor\": 0.5, \"cache_storage_per_hour\": 1.00,"
    "     \"as_of\": \"2026-03\"},"
    "  \"gemini-2.0-flash-lite\": {\"input\": 0.075, \"output\": 0.30, \"cached_input\": 0.075,"
    "     \"input_long\": 0.075, \"output_long\": 0.30, \"cached_input_long\": 0.075,"
    "     \"long_threshold\": 0, \"batch_factor\": 0.5, \"cache_storage_per_hour\": 0,"
    "     \"as_of\": \"2026-03\"}"
    "}"
    "}";

/* Sections whose keys are free: anything under kafka goes to librdkafka, and the price table may
 * list new models (each entry shaped like the defaults' entries). */
static int free_section(const char *name)
{
    return strcmp(name, "kafka") == 0 || strcmp(name, "prices") == 0 ||
           strcmp(name, "rate_limits") == 0 || strcmp(name, "prune.agents") == 0;
}

/* Secrets that only the environment may set. */
static int secret_key(const char *dotted)
{
    return strcmp(dotted, "gemini.api_key") == 0;
}

/* Values never shown by a dump (the Gemini key, and librdkafka's SASL/SSL passwords). */
static int masked_key(const char *dotted)
{
    return secret_key(dotted) || strstr(dotted, "password") != NULL ||
           strstr(dotted, "secret") != NULL;
}

sc_status_t sc_config_new(sc_config_t **out)
{
    json_error_t jerr;
    sc_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return SC_ERR_NOMEM;
    cfg->root = json_loads(config_defaults, 0, &jerr);
    if (!cfg->root) { /* a broken literal above: caught by the unit tests */
        free(cfg);
        return SC_ERR_CONFIG;
    }
    *out = cfg;
    return SC_OK;
}

void sc_config_free(sc_config_t *cfg)
{
    if (!cfg)
        return;
    json_decref(cfg->root);
    free(cfg);
}

/* ---- key lookup ---- */

/*
 * Find the child of obj named by a prefix of path: keys may contain dots ("bootstrap.servers",
 * "gemini-2.5-flash"), so the longest key that equals path or is followed by '.' wins.
 * Returns the child (borrowed) and sets *rest to what follows, or NULL.
 */
static json_t *child_by_prefix(json_t *obj, const char *path, const char **rest)
{
    const char *key;
    json_t *val, *best = NULL;
    size_t best_len = 0;
    json_object_foreach(obj, key, val) {
        size_t kl = strlen(key);
        if (strncmp(path, key, kl) == 0 && (path[kl] == '\0' || path[kl] == '.') &&
            kl > best_len) {
            best = val;
            best_len = kl;
        }
    }
    if (best)
        *rest = path[best_len] ? path + best_len + 1 : path + best_len;
    return best;
}

json_t *sc_config_node(const sc_config_t *cfg, const char *key)
{
    json_t *node = cfg->root;
    const char *p = key;
    while (*p) {
        if (!json_is_object(node))
            return NULL;
        node = child_by_prefix(node, p, &p);
        if (!node)
            return NULL;
    }
    return node;
}

const char *sc_config_str(const sc_config_t *cfg, const char *key)
{
    const char *s = json_string_value(sc_config_node(cfg, key));
    return s ? s : "";
}

long long sc_config_int(const sc_config_t *cfg, const char *key)
{
    json_t *n = sc_config_node(cfg, key);
    if (json_is_integer(n))
        return json_integer_value(n);
    if (json_is_real(n))
        return (long long)json_real_value(n);
    if (json_is_boolean(n))
        return json_is_true(n);
    return 0;
}

double sc_config_num(const sc_config_t *cfg, const char *key)
{
    return json_number_value(sc_config_node(cfg, key));
}

int sc_config_bool(const sc_config_t *cfg, const char *key)
{
    return json_is_true(sc_config_node(cfg, key));
}

/* ---- merging ---- */

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

static int same_type(const json_t *want, const json_t *got)
{
    if (json_is_boolean(want))
        return json_is_boolean(got);
    if (json_is_real(want))
        return json_is_number(got);
    return json_typeof(want) == json_typeof(got);
}

static void join_key(char *buf, size_t len, const char *prefix, const char *key)
{
    if (prefix[0])
        snprintf(buf, len, "%s.%s", prefix, key);
    else
        snprintf(buf, len, "%s", key);
}

/*
 * Merge src over dst (both objects). Keys must exist in dst with the same type, except in free
 * sections. prefix is the dotted path of dst, for messages.
 */
static sc_status_t merge_object(json_t *dst, json_t *src, const char *prefix, int in_free,
                                char *errbuf, size_t errlen)
{
    const char *key;
    json_t *val;
    json_object_foreach(src, key, val) {
        char path[SC_CONFIG_KEY_MAX];
        join_key(path, sizeof path, prefix, key);
        if (secret_key(path)) {
            snprintf(errbuf, errlen, "%s: secrets are read from the environment (GEMINI_API_KEY), "
                     "not from configuration", path);
            return SC_ERR_CONFIG;
        }
        json_t *cur = json_object_get(dst, key); /* borrowed */
        int child_free = in_free || free_section(path);
        if (!cur) {
            if (!in_free) {
                snprintf(errbuf, errlen, "%s: unknown configuration key", path);
                return SC_ERR_CONFIG;
            }
            if (strcmp(prefix, "kafka") == 0 && !json_is_string(val) && !json_is_number(val) &&
                !json_is_boolean(val)) {
                snprintf(errbuf, errlen, "%s: must be a string, number or boolean", path);
                return SC_ERR_CONFIG;
            }
            if (json_object_set(dst, key, val) != 0) /* set: dst takes its own reference */
                return SC_ERR_NOMEM;
            continue;
        }
        if (json_is_object(cur)) {
            if (!json_is_object(val)) {
                snprintf(errbuf, errlen, "%s: must be an object, got %s", path, type_name(val));
                return SC_ERR_CONFIG;
            }
            sc_status_t st = merge_object(cur, val, path, child_free, errbuf, errlen);
            if (st)
                return st;
            continue;
        }
        if (!same_type(cur, val) && !(in_free && strncmp(path, "kafka.", 6) == 0)) {
            snprintf(errbuf, errlen, "%s: must be %s, got %s", path, type_name(cur),
                     type_name(val));
            return SC_ERR_CONFIG;
        }
        if (json_object_set(dst, key, val) != 0)
            return SC_ERR_NOMEM;
    }
    return SC_OK;
}

sc_status_t sc_config_load_file(sc_config_t *cfg, const char *path, char *errbuf, size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr); /* new reference */
    if (!doc) {
        snprintf(errbuf, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return SC_ERR_CONFIG;
    }
    sc_status_t st = SC_OK;
    if (!json_is_object(doc)) {
        snprintf(errbuf, errlen, "%s: the configuration must be a JSON object", path);
        st = SC_ERR_CONFIG;
        goto out;
    }
    st = merge_object(cfg->root, doc, "", 0, errbuf, errlen);
out:
    json_decref(doc);
    return st;
}

/* Turn an -X value into JSON shaped like the current value `like` (NULL: a string). */
static json_t *parse_value(const json_t *like, const char *s)
{
    char *end;
    if (!like || json_is_string(like))
        return json_string(s);
    if (json_is_boolean(like)) {
        if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0 || strcmp(s, "on") == 0)
            return json_true();
        if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0 || strcmp(s, "off") == 0)
            return json_false();
        return NULL;
    }
    if (json_is_integer(like)) {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || end == s || *end)
            return NULL;
        return json_integer(v);
    }
    if (json_is_real(like)) {
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || *end || !isfinite(v))
            return NULL;
        return json_real(v);
    }
    return NULL;
}

static const char *rate_limit_fields[] = {"rpm", "tpm", "max_concurrency"};

/* -X rate_limits.<model>.<rpm|tpm|max_concurrency>=N creates the entry when needed. */
static sc_status_t set_rate_limit(sc_config_t *cfg, const char *key, const char *val,
                                  char *errbuf, size_t errlen)
{
    const char *model = key + 12, *dot = strrchr(model, '.');
    char name[SC_CONFIG_KEY_MAX];
    int known = 0;
    for (size_t i = 0; dot && i < SC_ARRAY_LEN(rate_limit_fields); i++)
        known |= strcmp(dot + 1, rate_limit_fields[i]) == 0;
    if (!dot || dot == model || !known) {
        snprintf(errbuf, errlen, "%s: expected rate_limits.<model>.<rpm|tpm|max_concurrency>", key);
        return SC_ERR_CONFIG;
    }
    char *end;
    double v = strtod(val, &end);
    if (end == val || *end || !isfinite(v) || v < 0) {
        snprintf(errbuf, errlen, "%s: \"%s\" is not a number >= 0", key, val);
        return SC_ERR_CONFIG;
    }
    snprintf(name, sizeof name, "%.*s", (int)(dot - model), model);
    json_t *limits = json_object_get(cfg->root, "rate_limits"); /* borrowed */
    json_t *entry = json_object_get(limits, name);
    if (!entry) {
        entry = json_object();
        if (json_object_set_new(limits, name, entry) != 0)
            return SC_ERR_NOMEM;
    }
    return json_object_set_new(entry, dot + 1, json_real(v)) == 0 ? SC_OK : SC_ERR_NOMEM;
}

sc_status_t sc_config_set(sc_config_t *cfg, const char *kv, char *errbuf, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        snprintf(errbuf, errlen, "-X %s: expected dotted.key=value", kv);
        return SC_ERR_CONFIG;
    }
    char key[SC_CONFIG_KEY_MAX];
    size_t klen = (size_t)(eq - kv);
    if (klen >= sizeof key) {
        snprintf(errbuf, errlen, "-X: key too long");
        return SC_ERR_CONFIG;
    }
    memcpy(key, kv, klen);
    key[klen] = '\0';
    const char *val = eq + 1;
    if (secret_key(key)) {
        snprintf(errbuf, errlen, "%s: secrets are read from the environment (GEMINI_API_KEY), "
                 "not from -X", key);
        return SC_ERR_CONFIG;
    }
    if (strncmp(key, "kafka.", 6) == 0 && key[6]) { /* passed to librdkafka as it is */
        json_t *kafka = json_object_get(cfg->root, "kafka");
        if (json_object_set_new(kafka, key + 6, json_string(val)) != 0)
            return SC_ERR_NOMEM;
        return SC_OK;
    }
    if (strncmp(key, "rate_limits.", 12) == 0) /* model ids contain dots: the field is last */
        return set_rate_limit(cfg, key, val, errbuf, errlen);
    if (strncmp(key, "prune.agents.", 13) == 0 && key[13]) { /* a budget for one agent */
        char *end;
        long long v = strtoll(val, &end, 10);
        if (end == val || *end || v < 1) {
            snprintf(errbuf, errlen, "%s: \"%s\" is not a token budget >= 1", key, val);
            return SC_ERR_CONFIG;
        }
        json_t *agents = sc_config_node(cfg, "prune.agents");
        return json_object_set_new(agents, key + 13, json_integer(v)) == 0 ? SC_OK : SC_ERR_NOMEM;
    }
    /* Walk to the parent object and the leaf name. */
    json_t *node = cfg->root, *parent = NULL;
    const char *p = key, *leaf = NULL;
    char leafbuf[SC_CONFIG_KEY_MAX];
    while (*p) {
        if (!json_is_object(node)) {
            snprintf(errbuf, errlen, "%s: unknown configuration key", key);
            return SC_ERR_CONFIG;
        }
        const char *before = p;
        json_t *next = child_by_prefix(node, p, &p);
        if (!next) {
            snprintf(errbuf, errlen, "%s: unknown configuration key", key);
            return SC_ERR_CONFIG;
        }
        size_t ll = (size_t)(p - before);
        if (*p)
            ll--; /* drop the '.' */
        memcpy(leafbuf, before, ll);
        leafbuf[ll] = '\0';
        leaf = leafbuf;
        parent = node;
        node = next;
    }
    if (!parent || json_is_object(node) || json_is_array(node)) {
        snprintf(errbuf, errlen, "%s: is a section; set one of its keys", key);
        return SC_ERR_CONFIG;
    }
    json_t *nv = parse_value(node, val); /* new reference */
    if (!nv) {
        snprintf(errbuf, errlen, "%s: \"%s\" is not %s", key, val, type_name(node));
        return SC_ERR_CONFIG;
    }
    if (json_object_set_new(parent, leaf, nv) != 0)
        return SC_ERR_NOMEM;
    return SC_OK;
}

void sc_config_load_env(sc_config_t *cfg)
{
    const char *key = getenv("GEMINI_API_KEY");
    if (key && key[0])
        json_object_set_new(json_object_get(cfg->root, "gemini"), "api_key", json_string(key));
}

/* ---- validation ---- */

static sc_status_t check_int(const sc_config_t *cfg, const char *key, long long lo, long long hi,
                             char *errbuf, size_t errlen)
{
    json_t *n = sc_config_node(cfg, key);
    if (!json_is_integer(n)) {
        snprintf(errbuf, errlen, "%s: must be an integer", key);
        return SC_ERR_CONFIG;
    }
    long long v = json_integer_value(n);
    if (v < lo || v > hi) {
        snprintf(errbuf, errlen, "%s: %lld is out of range [%lld, %lld]", key, v, lo, hi);
        return SC_ERR_CONFIG;
    }
    return SC_OK;
}

static sc_status_t check_nonempty(const sc_config_t *cfg, const char *key, char *errbuf,
                                  size_t errlen)
{
    if (!sc_config_str(cfg, key)[0]) {
        snprintf(errbuf, errlen, "%s: must not be empty", key);
        return SC_ERR_CONFIG;
    }
    return SC_OK;
}

static sc_status_t check_prices(const sc_config_t *cfg, char *errbuf, size_t errlen)
{
    static const char *fields[] = {"input", "output", "cached_input", "input_long",
                                   "output_long", "cached_input_long", "batch_factor"};
    /* optional (entries written before explicit caching lack it); a number >= 0 when present */
    static const char *optional[] = {"cache_storage_per_hour"};
    const char *model;
    json_t *entry;
    json_object_foreach(sc_config_node(cfg, "prices"), model, entry) {
        if (!json_is_object(entry)) {
            snprintf(errbuf, errlen, "prices.%s: must be an object", model);
            return SC_ERR_CONFIG;
        }
        for (size_t i = 0; i < SC_ARRAY_LEN(fields); i++) {
            json_t *v = json_object_get(entry, fields[i]);
            if (!json_is_number(v) || json_number_value(v) < 0) {
                snprintf(errbuf, errlen, "prices.%s.%s: must be a number >= 0", model, fields[i]);
                return SC_ERR_CONFIG;
            }
        }
        for (size_t i = 0; i < SC_ARRAY_LEN(optional); i++) {
            json_t *v = json_object_get(entry, optional[i]);
            if (v && (!json_is_number(v) || json_number_value(v) < 0)) {
                snprintf(errbuf, errlen, "prices.%s.%s: must be a number >= 0", model,
                         optional[i]);
                return SC_ERR_CONFIG;
            }
        }
    }
    return SC_OK;
}

static sc_status_t check_rate_limits(const sc_config_t *cfg, char *errbuf, size_t errlen)
{
    const char *model, *field;
    json_t *entry, *v;
    json_object_foreach(sc_config_node(cfg, "rate_limits"), model, entry) {
        if (!json_is_object(entry)) {
            snprintf(errbuf, errlen, "rate_limits.%s: must be an object", model);
            return SC_ERR_CONFIG;
        }
        json_object_foreach(entry, field, v) {
            int known = 0;
            for (size_t i = 0; i < SC_ARRAY_LEN(rate_limit_fields); i++)
                known |= strcmp(field, rate_limit_fields[i]) == 0;
            if (!known || !json_is_number(v) || json_number_value(v) < 0) {
                snprintf(errbuf, errlen, "rate_limits.%s.%s: %s", model, field,
                         known ? "must be a number >= 0" : "unknown (rpm, tpm, max_concurrency)");
                return SC_ERR_CONFIG;
            }
        }
    }
    return SC_OK;
}

sc_status_t sc_config_validate(const sc_config_t *cfg, char *errbuf, size_t errlen)
{
    sc_status_t st;
    static const struct {
        const char *key;
        long long lo, hi;
    } ints[] = {
        {"batch.max_messages", 1, 100000},
        {"batch.max_wait_ms", 0, 60000},
        {"batch.priority_max_wait_ms", 0, 86400000},
        {"pipeline.queue_capacity", 1, 1000000},
        {"pipeline.compute_chunk", 1, 100000},
        {"pipeline.drain_timeout_ms", 0, 3600000},
        {"pipeline.startup_timeout_ms", 100, 600000},
        {"limits.max_message_bytes", 64, 64LL << 20},
        {"limits.max_messages", 1, 100000},
        {"limits.max_id_bytes", 8, 4096},
        {"request.default_deadline_ms", 1, 3600000},
        {"gemini.max_inflight", 1, 100000},
        {"gemini.connect_timeout_ms", 1, 600000},
        {"gemini.request_timeout_ms", 1, 3600000},
        {"gemini.max_attempts", 1, 100},
        {"gemini.backoff_initial_ms", 0, 3600000},
        {"gemini.backoff_max_ms", 0, 3600000},
        {"gemini.backoff_jitter_ms", 0, 3600000},
        {"prune.max_tokens", 1, 10000000}, /* the history's budget: the system prompt is apart */
        {"prune.keep_last", 0, 1000},
        {"prune.turn_vectors", 0, 1 << 24}, /* 0: every turn embedded again each time */
        {"prompt_cache.min_tokens", 1, 1 << 20},
        {"prompt_cache.min_tokens_pro", 1, 1 << 20},
        {"prompt_cache.ttl_s", 1, 31536000},
        {"prompt_cache.idle_s", 1, 31536000},
        {"prompt_cache.max_caches", 1, 4096},
        {"cache.max_bytes", 1 << 20, 1LL << 42},
        {"cache.ttl_s", 0, 1LL << 40},
        {"cache.ann_min", 1, 1LL << 40},
        {"cache.hnsw_m", 4, 128},
        {"cache.hnsw_ef_search", 1, 4096},
        {"cache.hnsw_ef_construction", 1, 4096},
        {"cache.ivf_nlist", 1, 1 << 20},
        {"cache.ivf_nprobe", 1, 1 << 20},
        {"cache.checkpoint_s", 0, 31536000},
        {"cache.changelog_restore_ms", 0, 3600000},
        {"gemini.breaker_failures", 1, 1000000},
        {"gemini.breaker_cooldown_ms", 1, 3600000},
        {"gemini.breaker_max_cooldown_ms", 1, 3600000},
        {"backfill.batch_max_requests", 1, 100000},
        {"backfill.batch_max_bytes", 1024, 20000000},
        {"backfill.poll_initial_ms", 1, 3600000},
        {"backfill.poll_max_ms", 1, 3600000},
        {"backfill.max_batch_retries", 0, 100},
        {"backfill.progress_every_ms", 100, 3600000},
        {"metrics.max_tenants", 1, SC_CONFIG_MAX_TENANTS},
        {"ledger.strong_thought_tokens", 0, 1000000},
        {"router.shadow_min_samples", 1, 1000000},
        {"router.shadow_max_inflight", 0, 1024},
        {"router.shadow_seed", 0, INT64_MAX},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(ints); i++)
        if ((st = check_int(cfg, ints[i].key, ints[i].lo, ints[i].hi, errbuf, errlen)))
            return st;
    static const char *nonempty[] = {"kafka.bootstrap.servers", "kafka.group.id",
                                     "topics.requests", "topics.results", "topics.dlq",
                                     "topics.cache", "models.cheap", "models.strong",
                                     "models.default", "gemini.base_url"};
    for (size_t i = 0; i < SC_ARRAY_LEN(nonempty); i++)
        if ((st = check_nonempty(cfg, nonempty[i], errbuf, errlen)))
            return st;
    const char *url = sc_config_str(cfg, "gemini.base_url");
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(errbuf, errlen, "gemini.base_url: \"%s\" must start with http:// or https://",
                 url);
        return SC_ERR_CONFIG;
    }
    double th = sc_config_num(cfg, "cache.threshold");
    if (!(th > 0.0 && th <= 1.0)) {
        snprintf(errbuf, errlen, "cache.threshold: %g is out of range (0, 1]", th);
        return SC_ERR_CONFIG;
    }
    const char *index = sc_config_str(cfg, "cache.index");
    if (strcmp(index, "flat") && strcmp(index, "hnsw") && strcmp(index, "ivf")) {
        snprintf(errbuf, errlen, "cache.index: \"%s\" must be flat, hnsw or ivf", index);
        return SC_ERR_CONFIG;
    }
    double band = sc_config_num(cfg, "cache.strict_band");
    if (!(band >= 0.0 && band < 1.0)) {
        snprintf(errbuf, errlen, "cache.strict_band: %g is out of range [0, 1)", band);
        return SC_ERR_CONFIG;
    }
    double qt = sc_config_num(cfg, "router.quality_target"); /* 0: the file's thresholds */
    if (!(qt >= 0.0 && qt <= 1.0)) {
        snprintf(errbuf, errlen, "router.quality_target: %g is out of range [0, 1]", qt);
        return SC_ERR_CONFIG;
    }
    double ls = sc_config_num(cfg, "router.lite_share");
    if (!(ls >= 0.0 && ls <= 1.0)) {
        snprintf(errbuf, errlen, "router.lite_share: %g is out of range [0, 1]", ls);
        return SC_ERR_CONFIG;
    }
    double sr = sc_config_num(cfg, "router.shadow_rate");
    if (!(sr >= 0.0 && sr <= 1.0)) {
        snprintf(errbuf, errlen, "router.shadow_rate: %g is out of range [0, 1]", sr);
        return SC_ERR_CONFIG;
    }
    double sw = sc_config_num(cfg, "router.shadow_window");
    if (!(sw == 0.0 || (sw >= 1.0 && sw <= 1e9))) {
        snprintf(errbuf, errlen, "router.shadow_window: %g must be 0 (no decay) or in [1, 1e9]", sw);
        return SC_ERR_CONFIG;
    }
    double sz = sc_config_num(cfg, "router.shadow_z");
    if (!(sz > 0.0 && sz <= 10.0)) {
        snprintf(errbuf, errlen, "router.shadow_z: %g is out of range (0, 10]", sz);
        return SC_ERR_CONFIG;
    }
    const char *outside = sc_config_str(cfg, "router.outside_tier");
    if (strcmp(outside, "lite") && strcmp(outside, "cheap") && strcmp(outside, "strong") &&
        strcmp(outside, "score")) {
        snprintf(errbuf, errlen, "router.outside_tier: \"%s\" must be lite, cheap, strong or score",
                 outside);
        return SC_ERR_CONFIG;
    }
    const char *backend = sc_config_str(cfg, "backend");
    if (strcmp(backend, "auto") && strcmp(backend, "cpu") && strcmp(backend, "cuda")) {
        snprintf(errbuf, errlen, "backend: \"%s\" must be auto, cpu or cuda", backend);
        return SC_ERR_CONFIG;
    }
    const char *prec = sc_config_str(cfg, "encoder.precision");
    if (strcmp(prec, "auto") && strcmp(prec, "fp32") && strcmp(prec, "bf16") &&
        strcmp(prec, "int8")) {
        snprintf(errbuf, errlen, "encoder.precision: \"%s\" must be auto, fp32, bf16 or int8",
                 prec);
        return SC_ERR_CONFIG;
    }
    if (sc_config_int(cfg, "gemini.backoff_max_ms") < sc_config_int(cfg, "gemini.backoff_initial_ms")) {
        snprintf(errbuf, errlen, "gemini.backoff_max_ms: must be >= gemini.backoff_initial_ms");
        return SC_ERR_CONFIG;
    }
    const char *mode = sc_config_str(cfg, "backfill.mode");
    if (strcmp(mode, "online") && strcmp(mode, "batch")) {
        snprintf(errbuf, errlen, "backfill.mode: \"%s\" must be online or batch", mode);
        return SC_ERR_CONFIG;
    }
    if ((st = check_rate_limits(cfg, errbuf, errlen)))
        return st;
    const char *agent;
    json_t *budget;
    json_object_foreach(sc_config_node(cfg, "prune.agents"), agent, budget) {
        if (!json_is_integer(budget) || json_integer_value(budget) < 1) {
            snprintf(errbuf, errlen, "prune.agents.%s: must be a token budget >= 1", agent);
            return SC_ERR_CONFIG;
        }
    }
    const char *listen = sc_config_str(cfg, "metrics.listen"); /* "": no endpoint */
    if (listen[0]) {
        char host[SC_METRICS_HOST_MAX];
        int port;
        if (sc_metrics_listen_parse(listen, host, sizeof host, &port, errbuf, errlen) != SC_OK)
            return SC_ERR_CONFIG;
    }
    return check_prices(cfg, errbuf, errlen);
}

/* ---- dump ---- */

static void mask_secrets(json_t *obj, const char *prefix)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        char path[SC_CONFIG_KEY_MAX];
        join_key(path, sizeof path, prefix, key);
        if (json_is_object(val))
            mask_secrets(val, path);
        else if (masked_key(path) && json_is_string(val) && json_string_length(val) > 0)
            json_object_set_new(obj, key, json_string(SC_CONFIG_SECRET_MASK));
    }
}

char *sc_config_dump(const sc_config_t *cfg)
{
    json_t *copy = json_deep_copy(cfg->root); /* new reference */
    if (!copy)
        return NULL;
    mask_secrets(copy, "");
    char *s = json_dumps(copy, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(copy);
    return s;
}
