/* request.c - Gemini call objects (sc_gemini_call_new/free, their outputs and error text) and
 * generateContent request bodies (gemini-api.md §1.4, §4.4). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "host/core/util.h"
#include "host/gemini/gemini.h"
#include "host/gemini/gemini_internal.h"

#define SC_GEMINI_ERRMSG_MAX 1024 /* err_message kept per call */

/* @remark the caller frees the result with free(); NULL on allocation failure. */
char *sc_gemini_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* ---- calls ---- */

/* @remark takes body_owned in every case (freed here when the call cannot be made); the caller
 * frees the call with sc_gemini_call_free(). NULL on allocation failure or a model id that does
 * not fit call->model. */
sc_gemini_call_t *sc_gemini_call_new(const char *model, char *body_owned, size_t body_len)
{
    sc_gemini_call_t *call = NULL;

    if (!model || strlen(model) >= sizeof(call->model))
        goto fail;
    call = calloc(1, sizeof(*call));
    if (!call)
        goto fail;
    sc_strlcpy(call->model, model, sizeof(call->model));
    call->body = body_owned;
    call->body_len = body_len;
    call->status = SC_OK;
    return call;

fail:
    free(body_owned);
    return NULL;
}

void sc_gemini_call_clear_out(sc_gemini_call_t *call)
{
    free(call->text);
    free(call->finish_reason);
    free(call->model_version);
    free(call->response_id);
    free(call->block_reason);
    free(call->err_message);
    json_decref(call->candidates);
    json_decref(call->usage_meta);
    call->candidates = call->usage_meta = NULL;
    call->text = call->finish_reason = call->model_version = NULL;
    call->response_id = call->block_reason = call->err_message = NULL;
    call->status = SC_OK;
    call->http_status = 0;
    call->attempts = 0;
    memset(&call->usage, 0, sizeof(call->usage));
    call->err_status[0] = '\0';
    call->started_ms = call->finished_ms = 0;
}

void sc_gemini_call_free(sc_gemini_call_t *call)
{
    if (!call)
        return;
    sc_gemini_call_clear_out(call);
    free(call->body);
    sc_gem_priv_t *p = call->priv;
    if (p)
        free(p->resp);
    free(p);
    free(call);
}

void sc_gemini_set_err(sc_gemini_call_t *call, const char *status, const char *msg)
{
    sc_strlcpy(call->err_status, status ? status : "", sizeof(call->err_status));
    free(call->err_message);
    call->err_message = NULL;
    if (msg) {
        size_t n = strlen(msg);
        call->err_message = sc_gemini_strndup(msg, n < SC_GEMINI_ERRMSG_MAX ? n : SC_GEMINI_ERRMSG_MAX);
    }
}

/* ---- request body ---- */

/* A new Content {"role": role, "parts":[{"text": text}]} (no role when NULL).
 * @remark the caller owns the returned reference; NULL on allocation failure or bad UTF-8. */
static json_t *sc_gemini_content(const char *role, const char *text, size_t len)
{
    json_t *content = json_object();          /* new */
    json_t *parts = json_array();             /* new */
    json_t *part = json_object();             /* new */
    json_t *str = json_stringn(text, len);    /* new; NULL on invalid UTF-8 */
    if (!content || !parts || !part || !str)
        goto fail;
    if (json_object_set_new(part, "text", str) != 0) {
        str = NULL;
        goto fail;
    }
    str = NULL;
    if (json_array_append_new(parts, part) != 0) {
        part = NULL;
        goto fail;
    }
    part = NULL;
    if (role && json_object_set_new(content, "role", json_string(role)) != 0)
        goto fail;
    if (json_object_set_new(content, "parts", parts) != 0) {
        parts = NULL;
        goto fail;
    }
    return content;

fail:
    json_decref(str);
    json_decref(part);
    json_decref(parts);
    json_decref(content);
    return NULL;
}

/* @remark the caller frees the result with free(); NULL on allocation failure or a string that
 * is not UTF-8. */
json_t *sc_gemini_content_new(const char *role, const char *text, size_t len)
{
    return sc_gemini_content(role, text ? text : "", text ? len : 0);
}

/* The generateContent body: contents (stolen, released even on failure), generationConfig from
 * req, and either req's systemInstruction or, with cache_name, "cachedContent": cache_name and
 * no systemInstruction (the cache holds it; gemini-api.md §1.4, §4.4). */
static char *sc_gemini_body_build(const sc_request_t *req, json_t *contents,
                                  const char *cache_name, size_t *len)
{
    char *out = NULL;
    json_t *root = json_object(); /* new, released at out */
    json_t *gen = NULL;

    if (!root || !req || !contents)
        goto out;
    if (req->native) {
        /* Gemini's own shape: every field as the request gave it (normalised), these contents;
         * beside a cachedContent the cache holds the system instruction, tools and tool config
         * (a 400 otherwise, gemini-api.md §1.4) */
        const char *key;
        json_t *v;
        json_object_foreach(req->native, key, v) {
            if (strcmp(key, "contents") == 0)
                continue;
            if (cache_name && (strcmp(key, "systemInstruction") == 0 || strcmp(key, "tools") == 0 ||
                               strcmp(key, "toolConfig") == 0))
                continue;
            if (json_object_set(root, key, v) != 0)
                goto out;
        }
        if (cache_name && json_object_set_new(root, "cachedContent", json_string(cache_name)) != 0)
            goto out;
        if (json_object_set_new(root, "contents", contents) != 0) {
            contents = NULL;
            goto out;
        }
        contents = NULL;
        goto dump;
    }
    if (cache_name) {
        if (json_object_set_new(root, "cachedContent", json_string(cache_name)) != 0)
            goto out;
    } else if (req->system) {
        json_t *si = sc_gemini_content(NULL, req->system, strlen(req->system)); /* new */
        if (!si || json_object_set_new(root, "systemInstruction", si) != 0)
            goto out;
    }
    if (json_object_set_new(root, "contents", contents) != 0) {
        contents = NULL; /* set_new released it */
        goto out;
    }
    contents = NULL;

    gen = json_object(); /* new; handed to root when not empty */
    if (!gen)
        goto out;
    if (req->has_temperature && json_object_set_new(gen, "temperature", json_real(req->temperature)))
        goto out;
    if (req->max_output_tokens > 0 &&
        json_object_set_new(gen, "maxOutputTokens", json_integer(req->max_output_tokens)))
        goto out;
    if (req->response_mime_type &&
        json_object_set_new(gen, "responseMimeType", json_string(req->response_mime_type)))
        goto out;
    if (json_object_size(gen) > 0) {
        if (json_object_set_new(root, "generationConfig", gen) != 0) {
            gen = NULL;
            goto out;
        }
        gen = NULL;
    }

dump:
    out = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (out && len)
        *len = strlen(out);

out:
    json_decref(gen);
    json_decref(contents);
    json_decref(root);
    return out;
}

char *sc_gemini_body_with_contents(const sc_request_t *req, json_t *contents, size_t *len)
{
    return sc_gemini_body_build(req, contents, NULL, len);
}

/* req's turns as a contents array. @return a new reference, or NULL on allocation failure. */
static json_t *sc_gemini_turns(const sc_request_t *req)
{
    if (req->native) /* a new reference to the request's own contents */
        return json_incref(json_object_get(req->native, "contents"));
    json_t *contents = json_array(); /* new */
    if (!contents)
        return NULL;
    for (size_t i = 0; i < req->n_turns; i++) {
        const sc_turn_t *t = &req->turns[i];
        const char *text = t->content ? t->content : "";
        size_t tlen = t->content ? t->content_len : 0;
        json_t *c = sc_gemini_content(t->role ? t->role : "user", text, tlen); /* new */
        if (!c || json_array_append_new(contents, c) != 0) {
            json_decref(contents);
            return NULL;
        }
    }
    return contents;
}

char *sc_gemini_body_from_request(const sc_request_t *req, size_t *len)
{
    if (!req)
        return NULL;
    json_t *contents = sc_gemini_turns(req); /* new; handed to sc_gemini_body_build */
    return contents ? sc_gemini_body_build(req, contents, NULL, len) : NULL;
}

char *sc_gemini_body_with_cache(const sc_request_t *req, const char *cache_name, size_t *len)
{
    if (!req || !cache_name || !cache_name[0])
        return NULL;
    json_t *contents = sc_gemini_turns(req); /* new; handed to sc_gemini_body_build */
    return contents ? sc_gemini_body_build(req, contents, cache_name, len) : NULL;
}
