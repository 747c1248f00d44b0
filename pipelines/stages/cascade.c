/* cascade.c - after a call: is a cheap tier's answer good enough to keep? If not, the item is
 * promoted to the next tier and called again; the failed attempt's cost stays in its ledger. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

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

/* Is a cheap tier's answer good enough to keep? */
static int answer_valid(const sc_item_t *it)
{
    const sc_gemini_call_t *c = it->call;
    if (!c->finish_reason || strcmp(c->finish_reason, "STOP") != 0 || !c->text)
        return 0;
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
        it->extra_cost_usd += sc_opt_cost_of(o, c->model, &c->usage, 0);
        it->extra_usage.prompt_tokens += c->usage.prompt_tokens;
        it->extra_usage.cached_tokens += c->usage.cached_tokens;
        it->extra_usage.output_tokens += c->usage.output_tokens;
        it->extra_usage.thought_tokens += c->usage.thought_tokens;
        it->promoted = 1;
        it->tier++;
        sc_strlcpy(it->model, o->tiers[it->tier], sizeof it->model);
        sc_info("cascade.promote", "id=%s to=%s finish=%s", it->id, it->model,
                c->finish_reason ? c->finish_reason : "-");
        char *body = sc_opt_main_body(o, it, &len);
        return sc_opt_resubmit(it, it->model, body, len);
    }
    return 0;
}
