/* sim_quality.c - the simulator's quality mode (sim.h, "Quality spec"): the spec, each prompt's
 * difficulty and final answer, right or wrong per tier, the judge's verdicts, the summaries that
 * keep identifiers, the counters and GET /sim/difficulty. Off unless a spec is given. */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/util.h"
#include "host/gemini/sim_internal.h"

/* ---- limits and defaults ---- */

#define SC_SIM_Q_SPEC_MAX       512
#define SC_SIM_Q_LITE_DEFAULT   0.35
#define SC_SIM_Q_CHEAP_DEFAULT  0.6
#define SC_SIM_Q_STRONG_DEFAULT 0.9
#define SC_SIM_Q_SEED_DEFAULT   1u
#define SC_SIM_Q_CHOICES_MAX    26   /* A..Z */
#define SC_SIM_Q_NUMBERS        1000 /* a number answer is 0..999 */
#define SC_SIM_Q_ANSWER_MAX     32   /* longest X, NUL included */
#define SC_SIM_Q_TOKEN_MAX      128  /* longer tokens are kept whole but not deduplicated */
#define SC_SIM_Q_TOKENS_MAX     4096 /* distinct tokens a summary considers */
#define SC_SIM_Q_REASON_MAX     128

#define SC_SIM_Q_JUDGE_PREFIX   "scrimp-judge"
#define SC_SIM_Q_SUMMARY_PREFIX "You maintain a running summary"
#define SC_SIM_Q_FINAL          "Final answer:"
#define SC_SIM_Q_SUMMARY_HEAD   "Simulated summary: "
#define SC_SIM_Q_SUMMARY_NONE   "Simulated summary: (nothing kept)."

static const char *const sc_sim_q_words[] = {
    "amber",  "basil",  "cedar", "delta", "ember", "fjord",  "garnet", "harbor",
    "indigo", "jasper", "kelp",  "lumen", "maple", "nectar", "onyx",   "pebble",
};

static const char *const sc_sim_q_tier_names[SC_SIM_TIER_COUNT] = {"lite", "cheap", "strong"};

/* ---- the spec ---- */

sc_status_t sc_sim_quality_parse(const char *spec, sc_sim_quality_t *q, char *errbuf, size_t errlen)
{
    char buf[SC_SIM_Q_SPEC_MAX];
    memset(q, 0, sizeof *q);
    q->cap[SC_SIM_TIER_LITE] = SC_SIM_Q_LITE_DEFAULT;
    q->cap[SC_SIM_TIER_CHEAP] = SC_SIM_Q_CHEAP_DEFAULT;
    q->cap[SC_SIM_TIER_STRONG] = SC_SIM_Q_STRONG_DEFAULT;
    q->seed = SC_SIM_Q_SEED_DEFAULT;
    if (!spec || !spec[0])
        return SC_OK;
    if (sc_strlcpy(buf, spec, sizeof buf) >= sizeof buf) {
        sc_sim_errf(errbuf, errlen, "quality spec longer than %d bytes", SC_SIM_Q_SPEC_MAX - 1);
        return SC_ERR_INVALID_ARG;
    }
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (strcmp(item, "on") == 0)
            continue;
        char *eq = strchr(item, '=');
        if (!eq || eq == item) {
            sc_sim_errf(errbuf, errlen, "quality spec: '%s' is not key=value", item);
            return SC_ERR_INVALID_ARG;
        }
        *eq = '\0';
        const char *key = item, *val = eq + 1;
        int tier = -1;
        for (int t = 0; t < SC_SIM_TIER_COUNT; t++)
            if (strcmp(key, sc_sim_q_tier_names[t]) == 0)
                tier = t;
        if (tier >= 0 || strcmp(key, "summary_loss") == 0) {
            double *dst = tier >= 0 ? &q->cap[tier] : &q->summary_loss;
            if (!sc_sim_parse_rate(val, dst)) {
                sc_sim_errf(errbuf, errlen, "quality spec: %s=%s: expected a number in 0..1", key,
                            val);
                return SC_ERR_INVALID_ARG;
            }
        } else if (strcmp(key, "seed") == 0) {
            if (!sc_sim_parse_u64(val, UINT64_MAX, &q->seed)) {
                sc_sim_errf(errbuf, errlen, "quality spec: seed=%s: expected an unsigned integer",
                            val);
                return SC_ERR_INVALID_ARG;
            }
        } else {
            sc_sim_errf(errbuf, errlen,
                        "quality spec: unknown key '%s' (known: lite, cheap, strong, "
                        "summary_loss, seed)",
                        key);
            return SC_ERR_INVALID_ARG;
        }
    }
    q->on = true;
    return SC_OK;
}

sc_sim_tier_t sc_sim_tier(const char *model)
{
    if (strstr(model, "flash-lite"))
        return SC_SIM_TIER_LITE;
    if (strstr(model, "flash"))
        return SC_SIM_TIER_CHEAP;
    return SC_SIM_TIER_STRONG;
}

/* ---- difficulty and the final answer ---- */

static bool sc_sim_q_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* H of sim.h: FNV-1a 64 of the lower-cased, whitespace-collapsed text. */
static uint64_t sc_sim_q_hash(const char *text, size_t len)
{
    uint64_t h = SC_SIM_FNV_OFFSET;
    bool any = false, gap = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (sc_sim_q_space(c)) {
            gap = any;
            continue;
        }
        if (gap) {
            h = sc_sim_fnv(h, " ", 1);
            gap = false;
        }
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h = sc_sim_fnv(h, &c, 1);
        any = true;
    }
    return h;
}

static double sc_sim_q_unit_of(uint64_t h)
{
    return (double)(h >> 11) * 0x1.0p-53;
}

double sc_gemini_sim_difficulty(const char *text, size_t len)
{
    return sc_sim_q_unit_of(sc_sim_q_hash(text ? text : "", text ? len : 0));
}

typedef enum { SC_SIM_Q_CHOICE, SC_SIM_Q_NUMBER, SC_SIM_Q_WORD } sc_sim_q_kind_t;

static const char *const sc_sim_q_kind_names[] = {"choice", "number", "word"};

/* The letter a line opens with ("A." "A)" "(A)", then a space, a tab or the end), or 0. */
static char sc_sim_q_line_letter(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    char letter = 0;
    if (end - p >= 3 && p[0] == '(' && p[1] >= 'A' && p[1] <= 'Z' && p[2] == ')') {
        letter = p[1];
        p += 3;
    } else if (end - p >= 2 && p[0] >= 'A' && p[0] <= 'Z' && (p[1] == '.' || p[1] == ')')) {
        letter = p[0];
        p += 2;
    } else {
        return 0;
    }
    return (p == end || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') ? letter : 0;
}

/* The kind of a prompt and its number of options. */
static sc_sim_q_kind_t sc_sim_q_kind(const char *text, size_t len, size_t *options)
{
    bool seen[SC_SIM_Q_CHOICES_MAX] = {false}, digit = false;
    const char *end = text + len;
    for (const char *line = text; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *le = nl ? nl : end;
        char l = sc_sim_q_line_letter(line, le);
        if (l)
            seen[l - 'A'] = true;
        line = nl ? nl + 1 : end;
    }
    for (size_t i = 0; i < len && !digit; i++)
        digit = text[i] >= '0' && text[i] <= '9';
    size_t k = 0;
    while (k < SC_SIM_Q_CHOICES_MAX && seen[k])
        k++;
    if (k >= 2) {
        *options = k;
        return SC_SIM_Q_CHOICE;
    }
    *options = digit ? SC_SIM_Q_NUMBERS : SC_ARRAY_LEN(sc_sim_q_words);
    return digit ? SC_SIM_Q_NUMBER : SC_SIM_Q_WORD;
}

static void sc_sim_q_option(sc_sim_q_kind_t kind, size_t index, char out[SC_SIM_Q_ANSWER_MAX])
{
    if (kind == SC_SIM_Q_CHOICE)
        snprintf(out, SC_SIM_Q_ANSWER_MAX, "%c", (char)('A' + index));
    else if (kind == SC_SIM_Q_NUMBER)
        snprintf(out, SC_SIM_Q_ANSWER_MAX, "%zu", index);
    else
        snprintf(out, SC_SIM_Q_ANSWER_MAX, "%s", sc_sim_q_words[index]);
}

/* What the simulator knows of a prompt text. */
typedef struct {
    uint64_t h;
    double difficulty;
    sc_sim_q_kind_t kind;
    size_t options;
    size_t right; /* index of the right option */
    char right_x[SC_SIM_Q_ANSWER_MAX];
} sc_sim_q_prompt_t;

static void sc_sim_q_prompt(const char *text, size_t len, sc_sim_q_prompt_t *p)
{
    p->h = sc_sim_q_hash(text, len);
    p->difficulty = sc_sim_q_unit_of(p->h);
    p->kind = sc_sim_q_kind(text, len, &p->options);
    uint64_t s = p->h;
    p->right = (size_t)(sc_sim_splitmix64(&s) % p->options);
    sc_sim_q_option(p->kind, p->right, p->right_x);
}

/* The final answer model gives: right when capable enough, else its own wrong option. */
static bool sc_sim_q_final(const sc_gemini_sim_t *sim, const char *model,
                           const sc_sim_q_prompt_t *p, char out[SC_SIM_Q_ANSWER_MAX])
{
    bool right = sim->quality.cap[sc_sim_tier(model)] >= p->difficulty;
    if (right) {
        memcpy(out, p->right_x, SC_SIM_Q_ANSWER_MAX);
        return true;
    }
    uint64_t s = sc_sim_fnv(p->h, model, strlen(model));
    size_t shift = 1 + (size_t)(sc_sim_splitmix64(&s) % (p->options - 1));
    sc_sim_q_option(p->kind, (p->right + shift) % p->options, out);
    return false;
}

/* ---- request text ---- */

/* The text parts of a Content joined by "\n". @return malloc'd (the caller frees), *len bytes;
 * "" when it has none; NULL when out of memory. */
static char *sc_sim_q_join(const json_t *content, size_t *len)
{
    json_t *parts = json_object_get(content, "parts");
    size_t cap = 1, i, n = 0;
    json_t *part;
    json_array_foreach(parts, i, part)
    {
        json_t *t = json_object_get(part, "text");
        if (json_is_string(t))
            cap += json_string_length(t) + 1;
    }
    char *out = malloc(cap);
    if (!out)
        return NULL;
    bool first = true;
    json_array_foreach(parts, i, part)
    {
        json_t *t = json_object_get(part, "text");
        if (!json_is_string(t))
            continue;
        if (!first)
            out[n++] = '\n';
        memcpy(out + n, json_string_value(t), json_string_length(t));
        n += json_string_length(t);
        first = false;
    }
    out[n] = '\0';
    *len = n;
    return out;
}

/* The last user turn of req (P of sim.h). @return as sc_sim_q_join. */
static char *sc_sim_q_last_user(const json_t *req, size_t *len)
{
    json_t *contents = json_object_get(req, "contents"), *content, *last = NULL;
    size_t i;
    json_array_foreach(contents, i, content)
    {
        const char *role = json_string_value(json_object_get(content, "role"));
        if (!role || strcmp(role, "model") != 0)
            last = content;
    }
    return sc_sim_q_join(last, len);
}

/* ---- the judge ---- */

/* The final answer in an answer text: the [A-Za-z0-9]+ run after its last "Final answer:". */
static bool sc_sim_q_read_final(const char *text, char out[SC_SIM_Q_ANSWER_MAX])
{
    const char *at = NULL;
    for (const char *p = strstr(text, SC_SIM_Q_FINAL); p; p = strstr(p + 1, SC_SIM_Q_FINAL))
        at = p;
    if (!at)
        return false;
    at += strlen(SC_SIM_Q_FINAL);
    while (*at == ' ' || *at == '\t')
        at++;
    size_t n = 0;
    while (n + 1 < SC_SIM_Q_ANSWER_MAX && isalnum((unsigned char)at[n]))
        n++;
    memcpy(out, at, n);
    out[n] = '\0';
    return n > 0;
}

/* The verdict text for a judge request, or the malformed text. @return malloc'd, or NULL when
 * out of memory. */
static char *sc_sim_q_judge(sc_gemini_sim_t *sim, const sc_sim_gen_req_t *g, const char *user)
{
    char reason[SC_SIM_Q_REASON_MAX] = "";
    char *out = NULL;
    json_t *doc = NULL;
    atomic_fetch_add(&sim->q_judge, 1);
    if (!g->json_mime) {
        sc_strlcpy(reason, "responseMimeType is not application/json", sizeof reason);
        goto out;
    }
    doc = json_loads(user, 0, NULL);
    if (!json_is_object(doc)) {
        sc_strlcpy(reason, "the user turn is not a JSON object", sizeof reason);
        goto out;
    }
    const char *prompt = json_string_value(json_object_get(doc, "prompt"));
    const char *a = json_string_value(json_object_get(doc, "answer_a"));
    const char *b = json_string_value(json_object_get(doc, "answer_b"));
    if (!prompt || !a || !b || json_object_size(doc) != 3) {
        sc_strlcpy(reason, "expected exactly the string members prompt, answer_a, answer_b",
                   sizeof reason);
        goto out;
    }
    sc_sim_q_prompt_t p;
    sc_sim_q_prompt(prompt, json_string_length(json_object_get(doc, "prompt")), &p);
    char fa[SC_SIM_Q_ANSWER_MAX], fb[SC_SIM_Q_ANSWER_MAX];
    bool ha = sc_sim_q_read_final(a, fa), hb = sc_sim_q_read_final(b, fb);
    bool ac = ha && strcmp(fa, p.right_x) == 0, bc = hb && strcmp(fb, p.right_x) == 0;
    bool agree = ha && hb && strcmp(fa, fb) == 0;
    char verdict[96];
    snprintf(verdict, sizeof verdict, "{\"a_correct\":%s,\"b_correct\":%s,\"agree\":%s}",
             ac ? "true" : "false", bc ? "true" : "false", agree ? "true" : "false");
    out = strdup(verdict);
out:
    if (reason[0]) {
        atomic_fetch_add(&sim->q_judge_malformed, 1);
        char text[SC_SIM_Q_REASON_MAX + 64];
        snprintf(text, sizeof text, "Verdict unavailable: malformed judge request (%s).", reason);
        out = strdup(text);
    }
    json_decref(doc);
    return out;
}

/* ---- summaries ---- */

static bool sc_sim_q_token_byte(const char *s, size_t i, size_t len)
{
    unsigned char c = (unsigned char)s[i];
    if (isalnum(c) || c >= 0x80 || strchr("@._+-/:", c))
        return c != '\0';
    return c == ',' && i > 0 && i + 1 < len && isdigit((unsigned char)s[i - 1]) &&
           isdigit((unsigned char)s[i + 1]);
}

/* Does the token at s[from..to) qualify (sim.h, "Summaries")? */
static bool sc_sim_q_identifier(const char *s, size_t from, size_t to)
{
    size_t n = to - from;
    for (size_t i = from; i < to; i++)
        if (isdigit((unsigned char)s[i]) || s[i] == '@' ||
            (i > from && isupper((unsigned char)s[i])))
            return true;
    if (n < 2 || !isupper((unsigned char)s[from]))
        return false;
    size_t j = from;
    while (j > 0 && (s[j - 1] == ' ' || s[j - 1] == '\t'))
        j--;
    return !(j == 0 || s[j - 1] == '\n' || s[j - 1] == '.' || s[j - 1] == '!' || s[j - 1] == '?');
}

/* The summary text of the user turn. @return malloc'd, or NULL when out of memory. */
static char *sc_sim_q_summary(sc_gemini_sim_t *sim, const char *s, size_t len)
{
    static const char trim[] = ".:-/";
    uint64_t *seen = calloc(SC_SIM_Q_TOKENS_MAX, sizeof *seen);
    char *out = malloc(sizeof SC_SIM_Q_SUMMARY_NONE + sizeof SC_SIM_Q_SUMMARY_HEAD + 2 * len + 2);
    size_t n = 0, nseen = 0, kept = 0;
    if (!seen || !out) {
        free(seen);
        free(out);
        return NULL;
    }
    atomic_fetch_add(&sim->q_summaries, 1);
    n = strlen(SC_SIM_Q_SUMMARY_HEAD);
    memcpy(out, SC_SIM_Q_SUMMARY_HEAD, n);
    for (size_t i = 0; i < len;) {
        if (!sc_sim_q_token_byte(s, i, len)) {
            i++;
            continue;
        }
        size_t from = i, to = i;
        while (to < len && sc_sim_q_token_byte(s, to, len))
            to++;
        i = to;
        while (from < to && strchr(trim, s[from]))
            from++;
        while (to > from && strchr(trim, s[to - 1]))
            to--;
        if (from == to || !sc_sim_q_identifier(s, from, to))
            continue;
        uint64_t h = sc_sim_fnv(SC_SIM_FNV_OFFSET, s + from, to - from);
        bool dup = false;
        for (size_t k = 0; k < nseen && !dup; k++)
            dup = seen[k] == h;
        if (dup)
            continue;
        if (nseen < SC_SIM_Q_TOKENS_MAX)
            seen[nseen++] = h;
        uint64_t st = sim->quality.seed ^ h;
        if (sc_sim_q_unit_of(sc_sim_splitmix64(&st)) < sim->quality.summary_loss) {
            atomic_fetch_add(&sim->q_tokens_dropped, 1);
            continue;
        }
        atomic_fetch_add(&sim->q_tokens_kept, 1);
        if (kept++ > 0) {
            memcpy(out + n, "; ", 2);
            n += 2;
        }
        memcpy(out + n, s + from, to - from);
        n += to - from;
    }
    free(seen);
    if (kept == 0) {
        memcpy(out, SC_SIM_Q_SUMMARY_NONE, sizeof SC_SIM_Q_SUMMARY_NONE);
        return out;
    }
    out[n++] = '.';
    out[n] = '\0';
    return out;
}

/* ---- the answer ---- */

/* The ordinary answer: plain with its final answer line. @return malloc'd, or NULL. */
static char *sc_sim_q_ordinary(sc_gemini_sim_t *sim, const sc_sim_model_t *m,
                               const sc_sim_gen_req_t *g, const char *user, size_t user_len,
                               const char *plain, size_t plain_len)
{
    sc_sim_q_prompt_t p;
    sc_sim_q_prompt(user, user_len, &p);
    char x[SC_SIM_Q_ANSWER_MAX];
    bool right = sc_sim_q_final(sim, m->name, &p, x);
    size_t index = (size_t)(m - sc_sim_models);
    atomic_fetch_add(right ? &sim->q_right[index] : &sim->q_wrong[index], 1);
    char line[SC_SIM_Q_ANSWER_MAX + 32];
    bool json = g->json_mime && plain_len >= 2 && strcmp(plain + plain_len - 2, "\"}") == 0;
    snprintf(line, sizeof line, "%s" SC_SIM_Q_FINAL " %s", json ? "\\n" : "\n", x);
    size_t keep = json ? plain_len - 2 : plain_len, ln = strlen(line);
    char *out = malloc(plain_len + ln + 3);
    if (!out)
        return NULL;
    memcpy(out, plain, keep);
    memcpy(out + keep, line, ln);
    memcpy(out + keep + ln, json ? "\"}" : "", json ? 3 : 1);
    return out;
}

char *sc_sim_quality_text(sc_gemini_sim_t *sim, const sc_sim_model_t *m, const sc_sim_gen_req_t *g,
                          const json_t *req, const char *plain, size_t plain_len, size_t *len)
{
    size_t user_len = 0, sys_len = 0;
    char *out = NULL, *sys = NULL;
    char *user = sc_sim_q_last_user(req, &user_len);
    json_t *si = sc_sim_get2(req, "systemInstruction", "system_instruction");
    if (!user)
        goto out;
    sys = si ? sc_sim_q_join(si, &sys_len) : strdup("");
    if (!sys)
        goto out;
    bool judge = strncmp(sys, SC_SIM_Q_JUDGE_PREFIX, strlen(SC_SIM_Q_JUDGE_PREFIX)) == 0;
    if (judge && sc_sim_tier(m->name) == SC_SIM_TIER_STRONG)
        out = sc_sim_q_judge(sim, g, user);
    else if (strncmp(sys, SC_SIM_Q_SUMMARY_PREFIX, strlen(SC_SIM_Q_SUMMARY_PREFIX)) == 0)
        out = sc_sim_q_summary(sim, user, user_len);
    else {
        if (judge)
            atomic_fetch_add(&sim->q_judge_declined, 1);
        out = sc_sim_q_ordinary(sim, m, g, user, user_len, plain, plain_len);
    }
    if (out)
        *len = strlen(out);
out:
    free(user);
    free(sys);
    return out;
}

/* ---- stats and GET /sim/difficulty ---- */

json_t *sc_sim_quality_stats(sc_gemini_sim_t *sim)
{
    json_t *right = json_object(), *wrong = json_object();
    bool ok = right && wrong;
    for (size_t i = 0; ok && i < SC_SIM_MODEL_COUNT; i++)
        ok = json_object_set_new(right, sc_sim_models[i].name,
                                 json_integer((json_int_t)atomic_load(&sim->q_right[i]))) == 0 &&
             json_object_set_new(wrong, sc_sim_models[i].name,
                                 json_integer((json_int_t)atomic_load(&sim->q_wrong[i]))) == 0;
    if (ok) /* "o" steals right and wrong even when json_pack fails */
        return json_pack("{s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I}", "right", right, "wrong", wrong,
                         "judge_requests", (json_int_t)atomic_load(&sim->q_judge),
                         "judge_malformed", (json_int_t)atomic_load(&sim->q_judge_malformed),
                         "judge_declined", (json_int_t)atomic_load(&sim->q_judge_declined),
                         "summaries", (json_int_t)atomic_load(&sim->q_summaries),
                         "summary_tokens_kept", (json_int_t)atomic_load(&sim->q_tokens_kept),
                         "summary_tokens_dropped", (json_int_t)atomic_load(&sim->q_tokens_dropped));
    json_decref(right);
    json_decref(wrong);
    return NULL;
}

void sc_sim_difficulty_route(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    const char *text = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "text");
    if (!text) {
        sc_sim_reply_invalid(r, "GET /sim/difficulty needs ?text=...");
        return;
    }
    sc_sim_q_prompt_t p;
    sc_sim_q_prompt(text, strlen(text), &p);
    char fnv[20];
    snprintf(fnv, sizeof fnv, "%016" PRIx64, p.h);
    const sc_sim_quality_t *q = &c->sim->quality;
    json_t *doc = json_pack("{s:f, s:s, s:s, s:I, s:s, s:b}", "difficulty", p.difficulty, "fnv",
                            fnv, "kind", sc_sim_q_kind_names[p.kind], "options",
                            (json_int_t)p.options, "right_answer", p.right_x, "quality", q->on);
    if (doc && q->on) {
        json_t *cap = json_object(), *right = json_object();
        bool ok = cap && right;
        for (int t = 0; ok && t < SC_SIM_TIER_COUNT; t++)
            ok = json_object_set_new(cap, sc_sim_q_tier_names[t], json_real(q->cap[t])) == 0 &&
                 json_object_set_new(right, sc_sim_q_tier_names[t],
                                     json_boolean(q->cap[t] >= p.difficulty)) == 0;
        ok = ok && json_object_set(doc, "capability", cap) == 0 &&
             json_object_set(doc, "right", right) == 0;
        json_decref(cap);
        json_decref(right);
        if (!ok) {
            json_decref(doc);
            doc = NULL;
        }
    }
    if (!doc) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        return;
    }
    sc_sim_reply_json(r, 200, doc);
}
