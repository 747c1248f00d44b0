/* cascade.c - after a call: is a cheap tier's answer good enough to keep? If not, the item is
 * promoted to the next tier and called again; the failed attempt's cost stays in its ledger. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "host/core/genreq.h"
#include "host/core/jschema.h"
#include "host/core/log.h"
#include "host/core/util.h"
#include "pipelines/stages/stages.h"

/* Openings of a refusal: a cheap answer that starts so is promoted (lower-cased compare). */
static const char *const refusals[] = {"i'm sorry", "i am sorry", "i cannot", "i can't",
                                       "i can not", "i'm unable", "i am unable", "as an ai",
                                       "sorry, i"};

static int is_refusal(const char *text)
{
    while (*text && isspace((unsigned char)*text))
        text++;
    for (size_t i = 0; i < SC_ARRAY_LEN(refusals); i++)
        if (strncasecmp(text, refusals[i], strlen(refusals[i])) == 0)
            return 1;
    return 0;
}

/* The declaration of function name among the request's tools (borrowed), or NULL. */
static const json_t *declared(const json_t *native, const char *name)
{
    json_t *tools = json_object_get(native, "tools"), *t, *d;
    size_t i, j;
    json_array_foreach(tools, i, t) {
        json_t *decls = json_object_get(t, "functionDeclarations");
        json_array_foreach(decls, j, d) {
            const char *n = json_string_value(json_object_get(d, "name"));
            if (n && name && strcmp(n, name) == 0)
                return d;
        }
    }
    return NULL;
}

/* A function call of the answer: it names a declared function (among allowedFunctionNames when
 * the request lists them) and its arguments validate against the declared parameters. */
static int call_valid(const sc_item_t *it, const json_t *fc)
{
    const json_t *native = it->req->native;
    const char *name = json_string_value(json_object_get(fc, "name"));
    const json_t *decl = declared(native, name);
    char why[256];
    if (!decl) {
        sc_info("cascade.invalid", "id=%s function call %s names no declared function", it->id,
                name ? name : "(none)");
        return 0;
    }
    json_t *allowed = json_object_get(
        json_object_get(json_object_get(native, "toolConfig"), "functionCallingConfig"),
        "allowedFunctionNames");
    if (json_array_size(allowed) > 0) {
        int ok = 0;
        size_t i;
        json_t *a;
        json_array_foreach(allowed, i, a)
            ok |= json_is_string(a) && strcmp(json_string_value(a), name) == 0;
        if (!ok)
            return 0;
    }
    json_t *args = json_object_get(fc, "args");
    json_t *empty = args ? NULL : json_object(); /* new: no args are an empty object */
    const json_t *inst = args ? args : empty;
    const json_t *schema = json_object_get(decl, "parameters");
    int valid = 1;
    if (schema)
        valid = sc_jschema_validate(schema, SC_JSCHEMA_OPENAPI, inst, why, sizeof why);
    else if ((schema = json_object_get(decl, "parametersJsonSchema")))
        valid = sc_jschema_validate(schema, SC_JSCHEMA_JSON, inst, why, sizeof why);
    json_decref(empty);
    if (!valid)
        sc_info("cascade.invalid", "id=%s arguments of %s: %s", it->id, name, why);
    return valid;
}

/* A cheap answer to a request in Gemini's own shape, candidate by candidate: its function calls
 * valid (call_valid), else its text not blank, not a refusal, and valid against responseSchema /
 * responseJsonSchema (or at least JSON) when JSON was asked; with functionCallingConfig mode ANY
 * a call is required. */
static int native_valid(const sc_item_t *it)
{
    const json_t *native = it->req->native;
    const json_t *cands = it->call->candidates;
    json_t *gen = json_object_get(native, "generationConfig");
    const char *mode = json_string_value(json_object_get(
        json_object_get(json_object_get(native, "toolConfig"), "functionCallingConfig"), "mode"));
    size_t i, j;
    json_t *cand, *p;

    if (json_array_size(cands) == 0)
        return 0;
    json_array_foreach(cands, i, cand) {
        const char *fr = json_string_value(json_object_get(cand, "finishReason"));
        if (!fr || strcmp(fr, "STOP") != 0)
            return 0;
        int calls = 0;
        json_t *parts = json_object_get(json_object_get(cand, "content"), "parts");
        json_array_foreach(parts, j, p) {
            json_t *fc = json_object_get(p, "functionCall");
            if (!fc)
                continue;
            calls++;
            if (!call_valid(it, fc))
                return 0;
        }
        if (calls)
            continue;
        if (mode && strcmp(mode, "ANY") == 0)
            return 0;
        char *text = sc_gemini_candidate_text(cand);
        const char *t = text ? text : "";
        while (*t && isspace((unsigned char)*t))
            t++;
        int ok = *t && !is_refusal(t);
        const char *mime = json_string_value(json_object_get(gen, "responseMimeType"));
        if (ok && mime && strcmp(mime, "application/json") == 0) {
            json_t *inst = json_loads(text, JSON_DECODE_ANY, NULL); /* new */
            const json_t *schema = json_object_get(gen, "responseSchema");
            const json_t *jschema = json_object_get(gen, "responseJsonSchema");
            char why[256];
            ok = inst != NULL;
            if (ok && schema)
                ok = sc_jschema_validate(schema, SC_JSCHEMA_OPENAPI, inst, why, sizeof why);
            else if (ok && jschema)
                ok = sc_jschema_validate(jschema, SC_JSCHEMA_JSON, inst, why, sizeof why);
            if (!ok)
                sc_info("cascade.invalid", "id=%s answer does not fit the response schema",
                        it->id);
            json_decref(inst);
        }
        free(text);
        if (!ok)
            return 0;
    }
    return 1;
}

/* Is a cheap tier's answer good enough to keep? */
static int answer_valid(const sc_item_t *it)
{
    const sc_gemini_call_t *c = it->call;
    if (!c->finish_reason || strcmp(c->finish_reason, "STOP") != 0 || !c->text)
        return 0;
    if (it->req->native)
        return native_valid(it);
    const char *p = c->text;
    while (*p && isspace((unsigned char)*p))
        p++;
    if (!*p || is_refusal(p))
        return 0;
    if (it->req->response_mime_type && strcmp(it->req->response_mime_type, "application/json") == 0) {
        json_t *j = json_loads(c->text, JSON_DECODE_ANY, NULL);
        if (!j)
            return 0;
        json_decref(j);
    }
    return 1;
}

int sc_stage_cascade(sc_optimizer_t *o, sc_item_t *it)
{
    sc_gemini_call_t *c = it->call;
    size_t len;
    if (c->status == SC_OK && o->cascade && it->tier >= 0 && it->tier < OPT_NTIERS - 1 &&
        !answer_valid(it)) {
        /* Promote: the failed attempt's cost stays in the ledger. */
        int next = it->tier + 1; /* the next tier whose model takes the request's settings */
        while (it->req->native && next < OPT_NTIERS &&
               sc_genreq_check_model(it->req->native, o->tiers[next], NULL, 0) != SC_OK)
            next++;
        if (next >= OPT_NTIERS)
            return 0;
        it->extra_cost_usd += sc_opt_cost_of(o, c->model, &c->usage, 0);
        it->extra_usage.prompt_tokens += c->usage.prompt_tokens;
        it->extra_usage.cached_tokens += c->usage.cached_tokens;
        it->extra_usage.output_tokens += c->usage.output_tokens;
        it->extra_usage.thought_tokens += c->usage.thought_tokens;
        it->promoted = 1;
        it->tier = next;
        sc_strlcpy(it->model, o->tiers[it->tier], sizeof it->model);
        sc_info("cascade.promote", "id=%s to=%s finish=%s", it->id, it->model,
                c->finish_reason ? c->finish_reason : "-");
        char *body = sc_opt_main_body(o, it, &len);
        return sc_opt_resubmit(it, it->model, body, len);
    }
    return 0;
}
