/* response.c - parsing Gemini answers: a GenerateContentResponse into a call's outputs, an error
 * body into err_status / err_message and its RetryInfo delay (gemini-api.md §1, §6). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "host/gemini/gemini.h"
#include "host/gemini/gemini_internal.h"

#define SC_GEMINI_RETRY_DELAY_MAX_S 86400L /* parsed RetryInfo clamp, before cap */

/* ---- error text and durations ---- */

static const char *sc_gemini_reason(long http)
{
    switch (http) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "HTTP error";
    }
}

/*
 * Parse a protobuf Duration string ("26s", "0.2s", "57.238747106s") into milliseconds, rounded
 * up. Returns -1 when s is not one.
 */
static long sc_gemini_duration_ms(const char *s)
{
    long secs = 0, frac_ms = 0;
    int digits = 0, frac_digits = 0, frac_rest = 0;
    const char *p = s;

    while (*p >= '0' && *p <= '9') {
        if (secs < SC_GEMINI_RETRY_DELAY_MAX_S)
            secs = secs * 10 + (*p - '0');
        digits++;
        p++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (frac_digits < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
            else if (*p != '0')
                frac_rest = 1;
            frac_digits++;
            p++;
        }
        for (int i = frac_digits; i < 3; i++)
            frac_ms *= 10;
    }
    if ((digits == 0 && frac_digits == 0) || p[0] != 's' || p[1] != '\0')
        return -1;
    if (secs > SC_GEMINI_RETRY_DELAY_MAX_S)
        secs = SC_GEMINI_RETRY_DELAY_MAX_S;
    return secs * 1000 + frac_ms + (frac_rest ? 1 : 0);
}

/* ---- response parsing ---- */

static char *sc_gemini_json_strdup(json_t *v) /* v borrowed; result owned or NULL */
{
    return json_is_string(v) ? sc_gemini_strndup(json_string_value(v), json_string_length(v))
                             : NULL;
}

static long sc_gemini_json_long(json_t *obj, const char *key) /* obj borrowed */
{
    json_t *v = json_object_get(obj, key); /* borrowed */
    return json_is_integer(v) ? (long)json_integer_value(v) : 0;
}

char *sc_gemini_candidate_text(const json_t *cand)
{
    json_t *parts = json_object_get(json_object_get(cand, "content"), "parts"), *part;
    size_t total = 0, off = 0, i;
    char *text;

    json_array_foreach(parts, i, part) {
        json_t *t = json_object_get(part, "text");
        if (json_is_true(json_object_get(part, "thought")) || !json_is_string(t))
            continue;
        total += json_string_length(t);
    }
    text = malloc(total + 1);
    if (!text)
        return NULL;
    json_array_foreach(parts, i, part) {
        json_t *t = json_object_get(part, "text");
        if (json_is_true(json_object_get(part, "thought")) || !json_is_string(t))
            continue;
        memcpy(text + off, json_string_value(t), json_string_length(t));
        off += json_string_length(t);
    }
    text[off] = '\0';
    return text;
}

int sc_gemini_has_function_call(const json_t *cands)
{
    size_t i, j;
    json_t *c, *p;
    json_array_foreach(cands, i, c) {
        json_t *parts = json_object_get(json_object_get(c, "content"), "parts");
        json_array_foreach(parts, j, p)
            if (json_object_get(p, "functionCall"))
                return 1;
    }
    return 0;
}

/* Fill the call's outputs from a GenerateContentResponse object (borrowed). 0, or -1 when it is
 * not a usable response. */
int sc_gemini_response_from_json(sc_gemini_call_t *call, json_t *root)
{
    int rc = -1;
    json_t *cands, *cand, *usage, *fb; /* borrowed from root */
    char *text = NULL;

    if (!json_is_object(root))
        goto out;
    cands = json_object_get(root, "candidates");
    fb = json_object_get(root, "promptFeedback");
    cand = json_is_array(cands) ? json_array_get(cands, 0) : NULL;
    if (cands && !json_is_array(cands))
        goto out;
    if (cand && !json_is_object(cand))
        goto out;
    if (!cand && !json_is_string(json_object_get(fb, "blockReason")))
        goto out; /* neither an answer nor a block: not a response we understand */

    text = cand ? sc_gemini_candidate_text(cand) : strdup("");
    if (!text)
        goto out;

    free(call->text);
    call->text = text;
    text = NULL;
    free(call->finish_reason);
    call->finish_reason = cand ? sc_gemini_json_strdup(json_object_get(cand, "finishReason")) : NULL;
    free(call->block_reason);
    call->block_reason = sc_gemini_json_strdup(json_object_get(fb, "blockReason"));
    free(call->model_version);
    call->model_version = sc_gemini_json_strdup(json_object_get(root, "modelVersion"));
    free(call->response_id);
    call->response_id = sc_gemini_json_strdup(json_object_get(root, "responseId"));
    usage = json_object_get(root, "usageMetadata");
    call->usage.prompt_tokens = sc_gemini_json_long(usage, "promptTokenCount");
    call->usage.cached_tokens = sc_gemini_json_long(usage, "cachedContentTokenCount");
    call->usage.output_tokens = sc_gemini_json_long(usage, "candidatesTokenCount");
    call->usage.thought_tokens = sc_gemini_json_long(usage, "thoughtsTokenCount");
    json_decref(call->candidates);
    call->candidates = json_is_array(cands) ? json_incref(cands) : NULL;
    json_decref(call->usage_meta);
    call->usage_meta = json_is_object(usage) ? json_incref(usage) : NULL;
    call->err_status[0] = '\0';
    free(call->err_message);
    call->err_message = NULL;
    rc = 0;

out:
    free(text);
    return rc;
}

/* Fill the call's outputs from a 2xx body. 0, or -1 when the body is not a usable response. */
int sc_gemini_parse_ok(sc_gemini_call_t *call, const char *body, size_t len)
{
    json_t *root = json_loadb(body, len, 0, NULL); /* new */
    int rc = sc_gemini_response_from_json(call, root);
    json_decref(root);
    return rc;
}

/* Read an error body into call->err_status / err_message. Returns the RetryInfo delay in ms,
 * or -1 when there is none. */
long sc_gemini_parse_error(sc_gemini_call_t *call, long http, const char *body, size_t len)
{
    long retry_ms = -1;
    json_t *root = body ? json_loadb(body, len, 0, NULL) : NULL; /* new, released below */
    json_t *doc = root, *err, *details, *d;                        /* borrowed */
    size_t i;

    if (json_is_array(doc) && json_array_size(doc) == 1)
        doc = json_array_get(doc, 0);
    err = json_object_get(doc, "error");
    if (!json_is_object(err)) {
        sc_gemini_set_err(call, "", sc_gemini_reason(http));
        goto out;
    }
    {
        json_t *st = json_object_get(err, "status"), *msg = json_object_get(err, "message");
        sc_gemini_set_err(call, json_is_string(st) ? json_string_value(st) : "",
                          json_is_string(msg) ? json_string_value(msg) : sc_gemini_reason(http));
    }
    details = json_object_get(err, "details");
    json_array_foreach(details, i, d) {
        json_t *type = json_object_get(d, "@type"), *rd = json_object_get(d, "retryDelay");
        const char *ts = json_is_string(type) ? json_string_value(type) : "";
        size_t tl = strlen(ts), sl = strlen("google.rpc.RetryInfo");
        if (tl >= sl && strcmp(ts + tl - sl, "google.rpc.RetryInfo") == 0 && json_is_string(rd)) {
            retry_ms = sc_gemini_duration_ms(json_string_value(rd));
            break;
        }
    }

out:
    json_decref(root);
    return retry_ms;
}
