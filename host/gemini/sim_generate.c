/* sim_generate.c - the simulator's generateContent and countTokens (gemini-api.md §1, §3):
 * request parsing and validation (contents, parts, systemInstruction, generationConfig), the
 * deterministic answers, thinking tokens, the GenerateContentResponse and the --record lines. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/core/log.h"
#include "host/core/util.h"
#include "host/gemini/sim_internal.h"

/* ---- limits ---- */

#define SC_SIM_MAX_OUTPUT_TOKENS 65536 /* largest accepted maxOutputTokens */
#define SC_SIM_TEMPERATURE_MAX   2.0
#define SC_SIM_WORDS_MIN         10 /* answer length range, in words */
#define SC_SIM_WORDS_MAX         120
#define SC_SIM_TEXT_MAX          4096 /* holds SC_SIM_WORDS_MAX words plus the header */
#define SC_SIM_THOUGHTS_MIN      64
#define SC_SIM_THOUGHTS_MAX      1024
#define SC_SIM_RESPONSE_ID_MAX   32

#define SC_SIM_REFUSAL "I'm sorry, but I can't help with that request."

static const char *const sc_sim_words[] = {
    "amber",   "basil",   "cedar",   "delta",   "ember",   "fjord",   "garnet", "harbor",
    "indigo",  "jasper",  "kelp",    "lumen",   "maple",   "nectar",  "onyx",   "pebble",
    "quartz",  "raven",   "saffron", "tundra",  "umber",   "velvet",  "willow", "xenon",
    "yarrow",  "zephyr",  "anchor",  "beacon",  "canyon",  "dune",    "echo",   "falcon",
    "glacier", "heron",   "island",  "juniper", "kestrel", "lagoon",  "meadow", "nimbus",
    "orchid",  "prairie", "quill",   "ridge",   "summit",  "thistle", "upland", "valley",
    "wren",    "yonder",  "zenith",  "aurora",  "breeze",  "coral",   "drift",  "estuary",
    "fern",    "grove",   "hollow",  "iris",    "jade",    "knoll",   "larch",  "mesa",
};

static const char *const sc_sim_mime_types[] = {
    "text/plain", "application/json", "application/xml", "application/yaml", "text/x.enum",
};

/* ---- request parsing (§1.1, §3) ---- */

/* An integer given as a JSON integer, an integral real, or a decimal string (proto3 JSON). */
static bool sc_sim_json_int(const json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d != floor(d) || fabs(d) > 1e15)
            return false;
        *out = (long long)d;
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (errno || end == s || *end)
            return false;
        *out = x;
        return true;
    }
    return false;
}

/* @return a new reference to the body's top-level object, or NULL with a 400 in r. */
json_t *sc_sim_parse_body(const sc_sim_call_t *c, sc_sim_reply_t *r)
{
    json_error_t jerr;
    json_t *root = json_loadb(c->body ? c->body : "", c->body_len, 0, &jerr);
    if (!root) {
        sc_sim_reply_invalid(r, "Invalid JSON payload received. %s at line %d column %d.",
                             jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        sc_sim_reply_invalid(r, "Invalid JSON payload received. Expected an object at the top "
                                "level.");
        return NULL;
    }
    return root;
}

/* Sum the text of a Content's parts into *chars; hash it into *hash when hash is set.
 * @return false with a 400 in r when the Content is not a valid shape. */
static bool sc_sim_parse_parts(const json_t *content, const char *where, size_t *chars,
                               uint64_t *hash, sc_sim_reply_t *r)
{
    json_t *parts = json_object_get(content, "parts");
    if (!json_is_array(parts) || json_array_size(parts) == 0) {
        sc_sim_reply_invalid(r,
                             "* GenerateContentRequest.%s.parts: contents.parts must not be "
                             "empty.",
                             where);
        return false;
    }
    size_t i;
    json_t *part;
    json_array_foreach(parts, i, part)
    {
        if (!json_is_object(part)) {
            sc_sim_reply_invalid(r, "Invalid value at '%s.parts[%zu]': expected a Part object.",
                                 where, i);
            return false;
        }
        json_t *text = json_object_get(part, "text");
        if (!text)
            continue; /* inlineData, fileData...: not counted */
        if (!json_is_string(text)) {
            sc_sim_reply_invalid(r, "Invalid value at '%s.parts[%zu].text': expected a string.",
                                 where, i);
            return false;
        }
        size_t n = json_string_length(text);
        *chars += n;
        if (hash) {
            *hash = sc_sim_fnv(*hash, json_string_value(text), n);
            *hash = sc_sim_fnv(*hash, "\n", 1);
        }
    }
    return true;
}

static bool sc_sim_parse_config(const json_t *root, sc_sim_gen_req_t *g, sc_sim_reply_t *r)
{
    json_t *cfg = sc_sim_get2(root, "generationConfig", "generation_config");
    if (!cfg)
        return true;
    if (!json_is_object(cfg)) {
        sc_sim_reply_invalid(r, "Invalid value at 'generation_config': expected an object.");
        return false;
    }
    json_t *temp = json_object_get(cfg, "temperature");
    if (temp) {
        double t = json_is_number(temp) ? json_number_value(temp) : NAN;
        if (!(t >= 0.0 && t <= SC_SIM_TEMPERATURE_MAX)) {
            sc_sim_reply_invalid(r, "* GenerateContentRequest.generation_config.temperature: "
                                    "temperature must be in the range [0.0, 2.0].");
            return false;
        }
    }
    json_t *mot = sc_sim_get2(cfg, "maxOutputTokens", "max_output_tokens");
    if (mot) {
        long long v = 0;
        if (!sc_sim_json_int(mot, &v)) {
            sc_sim_reply_invalid(r, "Invalid value at 'generation_config.max_output_tokens' "
                                    "(TYPE_INT32).");
            return false;
        }
        if (v < 0 || v > SC_SIM_MAX_OUTPUT_TOKENS) {
            sc_sim_reply_invalid(r,
                                 "The specified maxOutputTokens value %lld is out of range; "
                                 "supported range is [1, %d)",
                                 v, SC_SIM_MAX_OUTPUT_TOKENS + 1);
            return false;
        }
        g->max_output = v; /* 0 is the proto3 default: unset */
    }
    json_t *mime = sc_sim_get2(cfg, "responseMimeType", "response_mime_type");
    if (mime) {
        bool ok = false;
        for (size_t i = 0; json_is_string(mime) && i < SC_ARRAY_LEN(sc_sim_mime_types); i++)
            ok = ok || strcmp(json_string_value(mime), sc_sim_mime_types[i]) == 0;
        if (!ok) {
            sc_sim_reply_invalid(r, "* GenerateContentRequest.generation_config.response_mime_"
                                    "type: allowed mimetypes are `text/plain`, "
                                    "`application/json`, `application/xml`, `application/yaml` "
                                    "and `text/x.enum`.");
            return false;
        }
        g->json_mime = strcmp(json_string_value(mime), "application/json") == 0;
    }
    json_t *tc = sc_sim_get2(cfg, "thinkingConfig", "thinking_config");
    if (tc) {
        if (!json_is_object(tc)) {
            sc_sim_reply_invalid(r, "Invalid value at 'generation_config.thinking_config': "
                                    "expected an object.");
            return false;
        }
        json_t *tb = sc_sim_get2(tc, "thinkingBudget", "thinking_budget");
        if (tb) {
            long long b = 0;
            if (!sc_sim_json_int(tb, &b) || b < -1 || b > INT32_MAX) {
                sc_sim_reply_invalid(r, "Invalid value at 'generation_config.thinking_config."
                                        "thinking_budget' (TYPE_INT32).");
                return false;
            }
            g->have_budget = true;
            g->budget = b;
        }
    }
    return true;
}

/* Validate a contents array (required: it must be there and not be empty) and add its text to
 * g. @return false with a 400 in r. */
bool sc_sim_parse_contents(const json_t *root, bool required, sc_sim_gen_req_t *g,
                           sc_sim_reply_t *r)
{
    json_t *contents = json_object_get(root, "contents");
    if (!contents && !required)
        return true;
    if (!json_is_array(contents) || (required && json_array_size(contents) == 0)) {
        sc_sim_reply_invalid(r, "* GenerateContentRequest.contents: contents is not specified");
        return false;
    }
    size_t i;
    json_t *content;
    json_array_foreach(contents, i, content)
    {
        char where[64];
        snprintf(where, sizeof where, "contents[%zu]", i);
        if (!json_is_object(content)) {
            sc_sim_reply_invalid(r, "Invalid value at '%s': expected a Content object.", where);
            return false;
        }
        json_t *role = json_object_get(content, "role");
        bool user = true;
        if (role) {
            const char *rs = json_is_string(role) ? json_string_value(role) : NULL;
            if (!rs || (rs[0] && strcmp(rs, "user") != 0 && strcmp(rs, "model") != 0)) {
                sc_sim_reply_invalid(r, "Please use a valid role: user, model.");
                return false;
            }
            user = strcmp(rs, "model") != 0;
        }
        uint64_t h = SC_SIM_FNV_OFFSET;
        if (!sc_sim_parse_parts(content, where, &g->prompt_chars, &h, r))
            return false;
        if (user)
            g->last_user_hash = h;
    }
    return true;
}

/* Add the text of systemInstruction (either spelling, optional) to g. @return false with a 400
 * in r. */
bool sc_sim_parse_system(const json_t *root, sc_sim_gen_req_t *g, sc_sim_reply_t *r)
{
    json_t *sys = sc_sim_get2(root, "systemInstruction", "system_instruction");
    if (!sys)
        return true;
    if (!json_is_object(sys)) {
        sc_sim_reply_invalid(r, "Invalid value at 'system_instruction': expected a Content "
                                "object.");
        return false;
    }
    return sc_sim_parse_parts(sys, "system_instruction", &g->prompt_chars, NULL, r);
}

/* Validate a GenerateContentRequest-shaped object. with_system: count systemInstruction (a
 * countTokens body with plain contents does not carry one). @return false with a 400 in r. */
bool sc_sim_parse_gen(const json_t *root, bool with_system, sc_sim_gen_req_t *g,
                      sc_sim_reply_t *r)
{
    memset(g, 0, sizeof *g);
    g->last_user_hash = SC_SIM_FNV_OFFSET;
    if (!sc_sim_parse_contents(root, true, g, r))
        return false;
    if (with_system && !sc_sim_parse_system(root, g, r))
        return false;
    return sc_sim_parse_config(root, g, r);
}

/* ---- --record (sim.h, "Record") ---- */

/* s (len bytes) as a JSON string literal; when s is not UTF-8, its bytes above 0x7f become '?'.
 * @return malloc'd (the caller frees it), or NULL when out of memory. */
static char *sc_sim_record_string(const char *s, size_t len)
{
    char *copy = NULL, *out = NULL;
    json_t *v = json_stringn(s, len); /* new reference; NULL when not UTF-8 (or no memory) */
    if (!v) {
        copy = malloc(len ? len : 1);
        if (!copy)
            return NULL;
        for (size_t i = 0; i < len; i++)
            copy[i] = (unsigned char)s[i] > 0x7f ? '?' : s[i];
        v = json_stringn(copy, len);
    }
    out = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    free(copy);
    return out;
}

/* Write len bytes of valid JSON with its line breaks as spaces: JSON strings cannot hold a raw
 * CR or LF, so they are insignificant whitespace and the value is unchanged.
 * @return false on a write error. */
static bool sc_sim_record_json(FILE *f, const char *s, size_t len)
{
    size_t from = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '\n' && s[i] != '\r')
            continue;
        if (i > from && fwrite(s + from, 1, i - from, f) != i - from)
            return false;
        if (i < len && fputc(' ', f) == EOF)
            return false;
        from = i + 1;
    }
    return true;
}

void sc_sim_record(sc_gemini_sim_t *sim, const sc_sim_call_t *c)
{
    if (!sim->record)
        return;
    const char *body = c->body ? c->body : "";
    json_t *parsed = json_loadb(body, c->body_len, JSON_DECODE_ANY, NULL); /* new reference */
    bool is_json = parsed != NULL;
    json_decref(parsed);
    char *model = sc_sim_record_string(c->id, strlen(c->id));
    char *raw = is_json ? NULL : sc_sim_record_string(body, c->body_len);
    if (!model || (!is_json && !raw)) {
        sc_warn("sim.record", "model=%s error=out_of_memory", c->id);
        goto out;
    }
    pthread_mutex_lock(&sim->record_mu);
    bool ok = fputs("{\"model\":", sim->record) != EOF && fputs(model, sim->record) != EOF &&
              fputs(",\"body\":", sim->record) != EOF &&
              (is_json ? sc_sim_record_json(sim->record, body, c->body_len)
                       : fputs(raw, sim->record) != EOF) &&
              fputs("}\n", sim->record) != EOF;
    ok = fflush(sim->record) == 0 && ok;
    pthread_mutex_unlock(&sim->record_mu);
    if (!ok)
        sc_warn("sim.record", "model=%s error=write_failed", c->id);
out:
    free(model);
    free(raw);
}

/* ---- generateContent ---- */

static void sc_sim_response_id(sc_gemini_sim_t *sim, char *out, size_t outlen)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    /* The counter half is a bijection of the counter, so ids never repeat within one sim. */
    uint64_t n = atomic_fetch_add(&sim->id_counter, 1);
    uint64_t s1 = sim->id_nonce ^ n, s2 = n;
    uint64_t parts[2] = {sc_sim_splitmix64(&s1), sc_sim_splitmix64(&s2)};
    size_t o = 0;
    for (size_t p = 0; p < 2; p++)
        for (int b = 0; b < 11 && o + 1 < outlen; b++)
            out[o++] = alphabet[(parts[p] >> (6 * b)) & 63];
    out[o] = '\0';
}

/* Append to a bounded text buffer; silently stops at the bound. */
static void sc_sim_append(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n >= cap)
        n = cap - 1 - *len;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

/* The deterministic answer for (model, last user turn). Writes text into buf (cap bytes). */
static size_t sc_sim_answer(const char *model, const sc_sim_gen_req_t *g, char *buf, size_t cap)
{
    uint64_t state = g->last_user_hash;
    size_t words = SC_SIM_WORDS_MIN +
                   (size_t)(sc_sim_splitmix64(&state) % (SC_SIM_WORDS_MAX - SC_SIM_WORDS_MIN + 1));
    char head[SC_SIM_ID_MAX + 96];
    size_t len = 0;
    buf[0] = '\0';
    if (g->json_mime)
        snprintf(head, sizeof head,
                 "{\"model\":\"%s\",\"fingerprint\":\"%016" PRIx64 "\",\"answer\":\"", model,
                 g->last_user_hash);
    else
        snprintf(head, sizeof head, "Simulated answer from %s (fingerprint %016" PRIx64 "):", model,
                 g->last_user_hash);
    sc_sim_append(buf, cap, &len, head);
    for (size_t i = 0; i < words; i++) {
        if (!g->json_mime || i > 0)
            sc_sim_append(buf, cap, &len, " ");
        sc_sim_append(buf, cap, &len,
                      sc_sim_words[sc_sim_splitmix64(&state) % SC_ARRAY_LEN(sc_sim_words)]);
    }
    sc_sim_append(buf, cap, &len, g->json_mime ? "\"}" : ".");
    return len;
}

static size_t sc_sim_thoughts(const sc_sim_model_t *m, const sc_sim_gen_req_t *g)
{
    bool thinks;
    if (!m->can_think)
        thinks = false;
    else if (m->thinks_by_default)
        thinks = !(g->have_budget && g->budget == 0 && m->can_disable);
    else
        thinks = g->have_budget && g->budget != 0;
    if (!thinks)
        return 0;
    uint64_t state = g->last_user_hash ^ 0x7468696e6b696e67ull; /* separate stream: "thinking" */
    size_t t = SC_SIM_THOUGHTS_MIN + (size_t)(sc_sim_splitmix64(&state) %
                                              (SC_SIM_THOUGHTS_MAX - SC_SIM_THOUGHTS_MIN + 1));
    if (g->have_budget && g->budget > 0 && t > (size_t)g->budget)
        t = (size_t)g->budget;
    return t;
}

static void sc_sim_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The GenerateContentResponse for a validated request: the deterministic answer, usage and a
 * fresh responseId. Shared by generateContent and Batch Mode.
 * @return a new reference, or NULL when out of memory. */
json_t *sc_sim_gen_doc(sc_gemini_sim_t *sim, const sc_sim_model_t *m,
                       const sc_sim_gen_req_t *g, const json_t *req)
{
    char plain[SC_SIM_TEXT_MAX];
    char *qtext = NULL; /* owned: the quality mode's text, freed at the end */
    size_t len = sc_sim_answer(m->name, g, plain, sizeof plain);
    char *text = plain;
    if (sim->quality.on && req) {
        qtext = sc_sim_quality_text(sim, m, g, req, plain, len, &len);
        if (!qtext)
            return NULL;
        text = qtext;
    }
    const char *finish = "STOP";
    if (g->max_output > 0 && len > (size_t)g->max_output * SC_SIM_CHARS_PER_TOKEN) {
        len = (size_t)g->max_output * SC_SIM_CHARS_PER_TOKEN;
        text[len] = '\0';
        finish = "MAX_TOKENS";
    }
    size_t prompt = sc_sim_tokens(g->prompt_chars);
    if (prompt < 1)
        prompt = 1;
    prompt += g->cached_tokens; /* promptTokenCount includes the cached prefix (§4.4) */
    size_t cand = sc_sim_tokens(len);
    size_t thoughts = sc_sim_thoughts(m, g);
    char rid[SC_SIM_RESPONSE_ID_MAX];
    sc_sim_response_id(sim, rid, sizeof rid);

    json_t *usage =
        json_pack("{s:I, s:I, s:I, s:[{s:s, s:I}]}", "promptTokenCount", (json_int_t)prompt,
                  "candidatesTokenCount", (json_int_t)cand, "totalTokenCount",
                  (json_int_t)(prompt + cand + thoughts), "promptTokensDetails", "modality", "TEXT",
                  "tokenCount", (json_int_t)prompt);
    if (usage && thoughts > 0 &&
        json_object_set_new(usage, "thoughtsTokenCount", json_integer((json_int_t)thoughts))) {
        json_decref(usage);
        usage = NULL;
    }
    if (usage && g->cached_tokens > 0 &&
        (json_object_set_new(usage, "cachedContentTokenCount",
                             json_integer((json_int_t)g->cached_tokens)) ||
         json_object_set_new(usage, "cacheTokensDetails",
                             json_pack("[{s:s, s:I}]", "modality", "TEXT", "tokenCount",
                                       (json_int_t)g->cached_tokens)))) {
        json_decref(usage);
        usage = NULL;
    }
    /* "o" steals usage even when json_pack fails; NULL usage makes it fail */
    json_t *doc = json_pack("{s:[{s:{s:s, s:[{s:s#}]}, s:s, s:i}], s:o, s:s, s:s}", "candidates",
                            "content", "role", "model", "parts", "text", text, (int)len,
                            "finishReason", finish, "index", 0, "usageMetadata", usage,
                            "modelVersion", m->name, "responseId", rid);
    free(qtext);
    return doc;
}

void sc_sim_generate(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    json_t *root = NULL, *doc = NULL;
    size_t model_index = 0;
    sc_sim_record(c->sim, c);
    const sc_sim_model_t *m = sc_sim_model_find(c->id, &model_index);
    if (!m) {
        sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                           "models/%s is not found for API version v1beta, or is not supported "
                           "for generateContent. Call ListModels to see the list of available "
                           "models and their supported methods.",
                           c->id);
        goto out;
    }
    atomic_fetch_add(&c->sim->generate_by_model[model_index], 1);
    root = sc_sim_parse_body(c, r);
    if (!root)
        goto out;
    json_t *cached = sc_sim_get2(root, "cachedContent", "cached_content");
    sc_sim_gen_req_t g;
    if (!sc_sim_parse_gen(root, cached == NULL, &g, r))
        goto out;
    if (cached && !sc_sim_cache_use(c->sim, root, cached, model_index, &g, r))
        goto out;

    bool delay = false;
    uint64_t body_hash = sc_sim_fnv(SC_SIM_FNV_OFFSET, c->id, strlen(c->id) + 1);
    body_hash = sc_sim_fnv(body_hash, c->body, c->body_len);
    int fault = sc_sim_fault_draw(c->sim, body_hash, &delay);
    if (delay)
        sc_sim_sleep_ms(c->sim->faults.delay_ms);
    if (fault == SC_SIM_F_429 || fault == SC_SIM_F_500 || fault == SC_SIM_F_503) {
        sc_sim_reply_fault(c->sim, fault, m->name, r);
        goto out;
    }

    doc = sc_sim_gen_doc(c->sim, m, &g, root);
    if (doc && sc_sim_refuses(c->sim, m)) {
        json_t *part = json_array_get(json_object_get(json_object_get(json_array_get(
                                                          json_object_get(doc, "candidates"), 0),
                                                          "content"),
                                                      "parts"),
                                      0); /* borrowed */
        json_object_set_new(part, "text", json_string(SC_SIM_REFUSAL));
        atomic_fetch_add(&c->sim->refusals, 1);
    }
    if (fault == SC_SIM_F_MALFORMED) {
        /* 200 with the body cut in half: what a proxy dropping the connection looks like. */
        sc_sim_reply_json(r, 200, doc);
        doc = NULL;
        if (r->body)
            r->len /= 2;
        r->fault = sc_sim_fault_names[fault];
        goto out;
    }
    {
        json_t *u = json_object_get(doc, "usageMetadata"); /* borrowed */
        static const char *const keys[4] = {"promptTokenCount", "cachedContentTokenCount",
                                            "candidatesTokenCount", "thoughtsTokenCount"};
        for (int k = 0; k < 4; k++)
            atomic_fetch_add(&c->sim->billed_tokens[model_index][k],
                             (uint64_t)json_integer_value(json_object_get(u, keys[k])));
    }
    sc_sim_reply_json(r, 200, doc);
    doc = NULL;
    if (g.cached_tokens > 0) {
        pthread_mutex_lock(&c->sim->cache_mu);
        c->sim->cached_tokens_served += g.cached_tokens;
        pthread_mutex_unlock(&c->sim->cache_mu);
    }
out:
    json_decref(doc);
    json_decref(root);
}

/* ---- countTokens ---- */

void sc_sim_count_tokens(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    json_t *root = NULL;
    atomic_fetch_add(&c->sim->count_tokens, 1);
    if (!sc_sim_model_find(c->id, NULL)) {
        sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                           "models/%s is not found for API version v1beta, or is not supported "
                           "for countTokens. Call ListModels to see the list of available "
                           "models and their supported methods.",
                           c->id);
        goto out;
    }
    root = sc_sim_parse_body(c, r);
    if (!root)
        goto out;
    json_t *wrapped = sc_sim_get2(root, "generateContentRequest", "generate_content_request");
    if (wrapped && json_object_get(root, "contents")) {
        sc_sim_reply_invalid(r, "contents and generateContentRequest are mutually exclusive.");
        goto out;
    }
    if (wrapped && !json_is_object(wrapped)) {
        sc_sim_reply_invalid(r, "Invalid value at 'generate_content_request': expected an "
                                "object.");
        goto out;
    }
    sc_sim_gen_req_t g;
    if (!sc_sim_parse_gen(wrapped ? wrapped : root, wrapped != NULL, &g, r))
        goto out;
    size_t n = sc_sim_tokens(g.prompt_chars);
    if (n < 1)
        n = 1;
    sc_sim_reply_json(r, 200,
                      json_pack("{s:I, s:[{s:s, s:I}]}", "totalTokens", (json_int_t)n,
                                "promptTokensDetails", "modality", "TEXT", "tokenCount",
                                (json_int_t)n));
out:
    json_decref(root);
}

