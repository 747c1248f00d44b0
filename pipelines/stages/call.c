/* call.c - stage: the upstream call of every forwarded request (the summary call first when
 * pruning needs one), and the main call's body with the prompt cache applied, which the calls
 * after a summary or a promotion reuse. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "host/core/genreq.h"
#include "host/core/util.h"
#include "pipelines/stages/stages.h"

/* ---- the main call's body (prompt cache) ---- */

/* body with the system instruction moved into cachedContent name. New string or NULL. */
static char *with_prompt_cache(const char *body, const char *name, size_t *len)
{
    json_t *doc = json_loads(body, 0, NULL); /* new */
    char *out = NULL;
    if (json_is_object(doc)) { /* the cache holds them: a 400 beside cachedContent */
        json_object_del(doc, "tools");
        json_object_del(doc, "toolConfig");
    }
    if (json_is_object(doc) && json_object_del(doc, "systemInstruction") == 0 &&
        json_object_set_new(doc, "cachedContent", json_string(name)) == 0)
        out = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (out)
        *len = strlen(out);
    return out;
}

/* The prefix a request in Gemini's own shape caches: its systemInstruction, tools and
 * toolConfig as canonical JSON. @remark the caller frees with free(); NULL when it has no system
 * instruction (the cache would hold tools alone: not worth it) or on allocation failure. */
static char *native_prefix(const sc_request_t *req)
{
    static const char *const keys[] = {"systemInstruction", "tools", "toolConfig"};
    json_t *f = json_object(); /* new */
    char *out = NULL;
    if (!f || !json_object_get(req->native, "systemInstruction"))
        goto out;
    for (size_t i = 0; i < SC_ARRAY_LEN(keys); i++) {
        json_t *v = json_object_get(req->native, keys[i]);
        if (v && json_object_set(f, keys[i], v) != 0)
            goto out;
    }
    out = sc_genreq_canonical(f);
out:
    json_decref(f);
    return out;
}

/* The main call's body: the (pruned) plain body, with the system prompt moved into an explicit
 * cache when one is live for (model, system prompt). */
char *sc_opt_main_body(sc_optimizer_t *o, sc_item_t *it, size_t *len)
{
    if (!it->body_plain) {
        it->body_plain = sc_gemini_body_from_request(it->req, len);
        if (!it->body_plain)
            return NULL;
    }
    *len = strlen(it->body_plain);
    it->prompt_cache[0] = '\0';
    if (o->pcache && it->req->system && !it->promoted) {
        double charge = 0;
        long est = sc_tokens_estimate(o->tokens, it->model, it->req->system, strlen(it->req->system));
        sc_status_t got;
        if (it->req->native) {
            char *prefix = native_prefix(it->req);
            if (prefix) /* tools count too, at about the same characters per token */
                est += (long)(strlen(prefix) - strlen(it->req->system)) / SC_CHARS_PER_TOKEN;
            got = prefix ? sc_prompt_cache_acquire_fields(o->pcache, it->model, prefix,
                                                          strlen(prefix), est, it->prompt_cache,
                                                          sizeof it->prompt_cache, &charge)
                         : SC_ERR_INVALID;
            free(prefix);
        } else {
            got = sc_prompt_cache_acquire(o->pcache, it->model, it->req->system,
                                          strlen(it->req->system), est, it->prompt_cache,
                                          sizeof it->prompt_cache, &charge);
        }
        if (got == SC_OK) {
            char *b = with_prompt_cache(it->body_plain, it->prompt_cache, len);
            if (b) {
                it->storage_usd += charge;
                return b;
            }
        }
        it->prompt_cache[0] = '\0';
    }
    return strdup(it->body_plain);
}

/* ---- the calls ---- */

static sc_gemini_call_t *new_call(sc_item_t *it, const char *model, char *body, size_t len)
{
    sc_gemini_call_t *c = sc_gemini_call_new(model, body, len);
    if (!c)
        return NULL;
    c->opaque = it;
    c->deadline_ms = it->deadline_ms;
    c->est_tokens = (long)(len / SC_CHARS_PER_TOKEN);
    return c;
}

int sc_opt_resubmit(sc_item_t *it, const char *model, char *body, size_t len)
{
    sc_gemini_call_t *c = body ? new_call(it, model, body, len) : NULL;
    if (!c)
        return 0; /* the old call stays: its outcome is the item's */
    sc_gemini_call_free(it->call);
    it->call = c;
    return 1;
}

void sc_stage_call(sc_optimizer_t *o, sc_batch_t *batch)
{
    for (size_t i = 0; i < batch->n; i++) {
        sc_item_t *it = batch->items[i];
        if (it->state != SC_ITEM_FORWARD)
            continue;
        size_t len;
        if (it->summary_body) {
            /* the cheapest tier writes summaries (flash-lite does not think by default) */
            it->call = new_call(it, o->tiers[0], strdup(it->summary_body),
                                strlen(it->summary_body));
        } else {
            char *body = sc_opt_main_body(o, it, &len);
            it->call = body ? new_call(it, it->model, body, len) : NULL;
        }
        if (!it->call)
            sc_opt_fail_item(it, SC_ERR_NOMEM, "out of memory building the upstream call");
    }
}
