/* upstream.c - the Gemini client and the request limits as the configuration describes them,
 * shared by the online and the backfill drivers. */
#include <stdio.h>

#include <jansson.h>

#include "host/core/util.h"
#include "pipelines/pipeline.h"

sc_status_t sc_upstream_from_config(const sc_config_t *cfg, sc_gemini_t **out, char *errbuf,
                                    size_t errlen)
{
    sc_gemini_opts_t go;
    sc_gemini_opts_default(&go);
    go.base_url = sc_config_str(cfg, "gemini.base_url");
    go.api_key = sc_config_str(cfg, "gemini.api_key");
    go.connect_timeout_ms = (long)sc_config_int(cfg, "gemini.connect_timeout_ms");
    go.request_timeout_ms = (long)sc_config_int(cfg, "gemini.request_timeout_ms");
    go.max_inflight = (int)sc_config_int(cfg, "gemini.max_inflight");
    go.max_attempts = (int)sc_config_int(cfg, "gemini.max_attempts");
    go.backoff_initial_ms = (long)sc_config_int(cfg, "gemini.backoff_initial_ms");
    go.backoff_max_ms = (long)sc_config_int(cfg, "gemini.backoff_max_ms");
    go.backoff_jitter_ms = (long)sc_config_int(cfg, "gemini.backoff_jitter_ms");
    go.http2 = sc_config_bool(cfg, "gemini.http2");
    go.seed = (unsigned)sc_now_us();
    go.breaker_failures = (int)sc_config_int(cfg, "gemini.breaker_failures");
    go.breaker_cooldown_ms = (long)sc_config_int(cfg, "gemini.breaker_cooldown_ms");
    go.breaker_max_cooldown_ms = (long)sc_config_int(cfg, "gemini.breaker_max_cooldown_ms");
    sc_status_t st = sc_gemini_new(&go, out, errbuf, errlen);
    if (st != SC_OK)
        return st;
    /* rate_limits: {"<model>": {"rpm": N, "tpm": N, "max_concurrency": N}}, each key optional
     * (0 or absent = unlimited); the node and its members are borrowed from the config */
    const char *model;
    json_t *entry;
    json_object_foreach(sc_config_node(cfg, "rate_limits"), model, entry) {
        json_t *rpm = json_object_get(entry, "rpm");
        json_t *tpm = json_object_get(entry, "tpm");
        json_t *conc = json_object_get(entry, "max_concurrency");
        sc_gemini_limits_t lim = {
            .rpm = json_is_number(rpm) ? json_number_value(rpm) : 0,
            .tpm = json_is_number(tpm) ? json_number_value(tpm) : 0,
            .max_concurrency = 0,
        };
        if (json_is_number(conc)) /* above the client's bound it caps nothing: clamped */
            lim.max_concurrency = json_number_value(conc) > SC_GEMINI_CONCURRENCY_LIMIT
                                      ? SC_GEMINI_CONCURRENCY_LIMIT
                                      : (int)json_number_value(conc);
        st = sc_gemini_set_model_limits(*out, model, &lim);
        if (st != SC_OK) {
            snprintf(errbuf, errlen, "rate_limits.%s: %s", model,
                     st == SC_ERR_FULL ? "too many models" : "not a valid model id or limit");
            sc_gemini_free(*out);
            *out = NULL;
            return st;
        }
    }
    return SC_OK;
}

void sc_limits_from_config(const sc_config_t *cfg, sc_limits_t *lim)
{
    lim->max_message_bytes = (size_t)sc_config_int(cfg, "limits.max_message_bytes");
    lim->max_messages = (size_t)sc_config_int(cfg, "limits.max_messages");
    lim->max_id_bytes = (size_t)sc_config_int(cfg, "limits.max_id_bytes");
}
