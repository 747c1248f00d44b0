/* sim_generate.c - the simulator's generateContent, streamGenerateContent and countTokens
 * (gemini-api.md §1-§3): request parsing and validation by the API's rules (host/core/genreq.h,
 * then contents, parts, function-call histories, generationConfig), the deterministic answers
 * (candidates, stop sequences, thought summaries), the stream's chunks and the --record lines.
 * Structured output and function calling are in sim_tools.c. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/core/genreq.h"
#include "host/core/jschema.h"
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
#define SC_SIM_THOUGHT_WORDS     3 /* words a thought summary weighs */
#define SC_SIM_RESPONSE_ID_MAX   32
#define SC_SIM_STOP_MAX          5 /* stopSequences (§1.1) */
#define SC_SIM_CHUNKS_MIN        2 /* streamGenerateContent splits a text into 2..4 chunks */
#define SC_SIM_CHUNKS_MAX        4

#define SC_SIM_REFUSAL       "I'm sorry, but I can't help with that request."
#define SC_SIM_UNKNOWN_FIELD "unknown field" /* how genreq names an unknown field */

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
bool sc_sim_json_int(const json_t *v, long long *out)
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

/* obj (borrowed) checked by the API's rules for model and normalised to camelCase: genreq's
 * reason becomes the 400's message, after "Invalid JSON payload received. " for an unknown field
 * as the API words it. @return a new reference, or NULL with the error in r. */
json_t *sc_sim_normalize(const json_t *obj, const char *model, sc_sim_reply_t *r)
{
    char err[SC_SIM_ERR_MAX] = "";
    json_t *norm = NULL; /* new, from sc_genreq_normalize */
    sc_status_t st = sc_genreq_normalize(obj, SC_GENREQ_API, &norm, err, sizeof err);
    if (st == SC_OK)
        st = sc_genreq_check_model(norm, model, err, sizeof err);
    if (st == SC_OK)
        return norm;
    json_decref(norm);
    if (st == SC_ERR_NOMEM)
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
    else if (strstr(err, SC_SIM_UNKNOWN_FIELD))
        sc_sim_reply_invalid(r, "Invalid JSON payload received. %s", err);
    else
        sc_sim_reply_invalid(r, "%s", err[0] ? err : "Request contains an invalid argument.");
    return NULL;
}

/* Bytes of v serialized compactly (how a functionCall, a functionResponse or a tool counts as
 * prompt text); 0 when out of memory. */
size_t sc_sim_json_chars(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t n = s ? strlen(s) : 0;
    free(s);
    return n;
}

/* Sum the text of a Content's parts into *chars (functionCall and functionResponse parts by their
 * JSON); hash the text parts into *hash when hash is set.
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
        json_t *call = json_object_get(part, "functionCall");
        json_t *resp = json_object_get(part, "functionResponse");
        if (call || resp)
            *chars += sc_sim_json_chars(call ? call : resp);
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

/* Does prev (a Content, borrowed; NULL for none) hold a functionCall part named name? Only a
 * model turn calls functions. */
static bool sc_sim_called(const json_t *prev, const char *name)
{
    const char *role = json_string_value(json_object_get(prev, "role"));
    if (!name || !role || strcmp(role, "model") != 0)
        return false;
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(prev, "parts"), i, part)
    {
        const char *n =
            json_string_value(json_object_get(json_object_get(part, "functionCall"), "name"));
        if (n && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

/* Every functionResponse part of contents[index] answers a functionCall of the same name in the
 * model turn just before it, as the API demands. @return false with a 400 in r. */
static bool sc_sim_check_responses(const json_t *content, const json_t *prev, size_t index,
                                   sc_sim_reply_t *r)
{
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(content, "parts"), i, part)
    {
        json_t *fr = json_object_get(part, "functionResponse");
        if (!fr)
            continue;
        const char *name = json_string_value(json_object_get(fr, "name"));
        if (sc_sim_called(prev, name))
            continue;
        sc_sim_reply_invalid(r,
                             "Please ensure that function response turn comes immediately after "
                             "a function call turn: contents[%zu].parts[%zu].functionResponse "
                             "\"%.*s\" follows no functionCall of that name (function response "
                             "parts must follow function call parts of the model turn before "
                             "them).",
                             index, i, SC_SIM_FN_NAME_MAX, name ? name : "");
        return false;
    }
    return true;
}

static bool sc_sim_parse_config(const json_t *root, sc_sim_gen_req_t *g, sc_sim_reply_t *r)
{
    g->candidates = 1;
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
    json_t *cc = json_object_get(cfg, "candidateCount");
    if (cc) {
        long long v = 0;
        if (!sc_sim_json_int(cc, &v) || v < 0 || v > SC_SIM_CANDIDATES_MAX) {
            sc_sim_reply_invalid(r,
                                 "* GenerateContentRequest.generation_config.candidate_count: "
                                 "candidate_count must be in the range [1, %d].",
                                 SC_SIM_CANDIDATES_MAX);
            return false;
        }
        g->candidates = v > 0 ? (unsigned)v : 1; /* 0 is the proto3 default: one */
    }
    json_t *stop = json_object_get(cfg, "stopSequences");
    if (stop) {
        size_t i;
        json_t *s;
        bool ok = json_is_array(stop) && json_array_size(stop) <= SC_SIM_STOP_MAX;
        json_array_foreach(stop, i, s) ok = ok && json_is_string(s) && json_string_length(s) > 0;
        if (!ok) {
            sc_sim_reply_invalid(r,
                                 "* GenerateContentRequest.generation_config.stop_sequences: at "
                                 "most %d stop sequences, each a non-empty string.",
                                 SC_SIM_STOP_MAX);
            return false;
        }
        g->stop = json_array_size(stop) > 0;
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
        g->enum_mime = strcmp(json_string_value(mime), "text/x.enum") == 0;
    }
    sc_jschema_dialect_t d;
    const char *path;
    const json_t *schema = sc_sim_response_schema(cfg, &d, &path);
    if (schema) {
        if (json_object_get(cfg, "responseSchema") && json_object_get(cfg, "responseJsonSchema")) {
            sc_sim_reply_invalid(r, "* GenerateContentRequest.generation_config: response_schema "
                                    "and response_json_schema cannot both be set.");
            return false;
        }
        if (!g->json_mime && !(g->enum_mime && d == SC_JSCHEMA_OPENAPI)) {
            sc_sim_reply_invalid(r, "* GenerateContentRequest.generation_config.response_mime_"
                                    "type: When response_schema is set, response_mime_type must "
                                    "be one of the following: [application/json, text/x.enum]. "
                                    "(response_json_schema needs application/json.)");
            return false;
        }
        if (!sc_sim_check_schema(schema, d, path, r))
            return false;
        g->schema = true;
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
        g->include_thoughts = json_is_true(json_object_get(tc, "includeThoughts"));
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
    json_t *content, *prev = NULL;
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
        if (!sc_sim_check_responses(content, prev, i, r))
            return false;
        if (user)
            g->last_user_hash = h;
        prev = content;
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

/* Validate a normalised GenerateContentRequest. with_system: count systemInstruction and tools
 * (a countTokens body with plain contents, or a request through a cache, does not carry its
 * own). @return false with a 400 in r. */
bool sc_sim_parse_gen(const json_t *root, bool with_system, sc_sim_gen_req_t *g, sc_sim_reply_t *r)
{
    memset(g, 0, sizeof *g);
    g->last_user_hash = SC_SIM_FNV_OFFSET;
    g->candidates = 1;
    if (!sc_sim_parse_contents(root, true, g, r))
        return false;
    if (with_system && !sc_sim_parse_system(root, g, r))
        return false;
    if (!sc_sim_parse_config(root, g, r))
        return false;
    return sc_sim_parse_tools(root, with_system, g, r);
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

void sc_sim_record_line(sc_gemini_sim_t *sim, const char *line)
{
    if (!sim->record)
        return;
    pthread_mutex_lock(&sim->record_mu);
    bool ok = fputs(line, sim->record) != EOF && fputc('\n', sim->record) != EOF;
    ok = fflush(sim->record) == 0 && ok;
    pthread_mutex_unlock(&sim->record_mu);
    if (!ok)
        sc_warn("sim.record", "error=write_failed");
}

/* ---- answers ---- */

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

/* The largest n' <= n that does not cut a UTF-8 sequence of s in two. */
size_t sc_sim_utf8_floor(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* Append to a bounded text buffer; silently stops at the bound (never inside a UTF-8 sequence). */
void sc_sim_append(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n >= cap)
        n = sc_sim_utf8_floor(s, cap - 1 - *len);
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

/* Append n words of the answer vocabulary drawn from the splitmix64 stream *state, each after a
 * space. */
void sc_sim_append_words(char *buf, size_t cap, size_t *len, uint64_t *state, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sc_sim_append(buf, cap, len, " ");
        sc_sim_append(buf, cap, len,
                      sc_sim_words[sc_sim_splitmix64(state) % SC_ARRAY_LEN(sc_sim_words)]);
    }
}

/* The seed of candidate index's answer: the last user turn's hash itself for the first, so that a
 * request without candidateCount is answered as it always was. */
uint64_t sc_sim_variant(uint64_t h, unsigned index)
{
    if (index == 0)
        return h;
    uint64_t s = h ^ ((uint64_t)index * 0x63616e6469646174ull); /* "candidat" */
    return sc_sim_splitmix64(&s);
}

/* The deterministic answer for (model, last user turn), from the word stream of seed. Writes
 * text into buf (cap bytes). */
static size_t sc_sim_answer(const char *model, const sc_sim_gen_req_t *g, uint64_t seed, char *buf,
                            size_t cap)
{
    uint64_t state = seed;
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

/* The thought summary part of includeThoughts. @return a new reference or NULL. */
static json_t *sc_sim_thought_part(const char *model, uint64_t seed)
{
    uint64_t state = seed ^ 0x73756d6d617279ull; /* "summary" */
    const char *w[SC_SIM_THOUGHT_WORDS];
    for (size_t i = 0; i < SC_SIM_THOUGHT_WORDS; i++)
        w[i] = sc_sim_words[sc_sim_splitmix64(&state) % SC_ARRAY_LEN(sc_sim_words)];
    char text[SC_SIM_ID_MAX + 128];
    snprintf(text, sizeof text,
             "**Weighing the question**\n\nSimulated thought summary from %s: weighing %s, %s "
             "and %s before answering.",
             model, w[0], w[1], w[2]);
    return json_pack("{s:s, s:b}", "text", text, "thought", 1);
}

/* Cut text (len bytes, NUL-terminated, writable) at the first occurrence of any stop sequence of
 * generationConfig. @return the new length. */
static size_t sc_sim_apply_stop(const json_t *req, char *text, size_t len)
{
    json_t *stops = json_object_get(json_object_get(req, "generationConfig"), "stopSequences");
    size_t cut = len, i;
    json_t *s;
    json_array_foreach(stops, i, s)
    {
        const char *hit = json_is_string(s) && json_string_length(s) > 0
                              ? strstr(text, json_string_value(s))
                              : NULL;
        if (hit && (size_t)(hit - text) < cut)
            cut = (size_t)(hit - text);
    }
    text[cut] = '\0';
    return cut;
}

/* ---- the GenerateContentResponse ---- */

/* The text of candidate index before stop sequences and maxOutputTokens: the words after
 * function results, the quality mode's text (the first candidate only), an instance of the
 * response schema, or the plain answer. @return malloc'd (*len bytes), or NULL when out of
 * memory. */
static char *sc_sim_candidate_text(sc_gemini_sim_t *sim, const sc_sim_model_t *m,
                                   const sc_sim_gen_req_t *g, const json_t *req, unsigned index,
                                   size_t *len)
{
    char plain[SC_SIM_TEXT_MAX];
    char *out = NULL;
    uint64_t seed = sc_sim_variant(g->last_user_hash, index);
    if (g->tool_result && req) {
        out = sc_sim_tool_result_text(m->name, g, req, index);
    } else if (sim->quality.on && req && index == 0) {
        size_t n = sc_sim_answer(m->name, g, seed, plain, sizeof plain);
        return sc_sim_quality_text(sim, m, g, req, plain, n, len);
    } else if (g->schema && req) {
        out = sc_sim_schema_text(g, req, seed);
    } else {
        size_t n = sc_sim_answer(m->name, g, seed, plain, sizeof plain);
        out = malloc(n + 1);
        if (out)
            memcpy(out, plain, n + 1);
    }
    if (out)
        *len = strlen(out);
    return out;
}

/* Candidate index of the answer: a thought summary first when thought is set, then the function
 * call for decl (borrowed; NULL: a text answer) or the text, cut by stop sequences (STOP) and
 * maxOutputTokens (MAX_TOKENS). *tokens gets its visible tokens.
 * @return a new reference, or NULL when out of memory. */
static json_t *sc_sim_candidate(sc_gemini_sim_t *sim, const sc_sim_model_t *m,
                                const sc_sim_gen_req_t *g, const json_t *req, unsigned index,
                                const json_t *decl, const char *user, bool thought, size_t *tokens)
{
    json_t *parts = json_array();
    char *text = NULL; /* owned */
    const char *finish = "STOP";
    uint64_t seed = sc_sim_variant(g->last_user_hash, index);
    bool ok = parts != NULL;
    *tokens = 0;
    if (ok && thought)
        ok = json_array_append_new(parts, sc_sim_thought_part(m->name, seed)) == 0;
    if (ok && decl) {
        json_t *call = sc_sim_call_part(decl, user, seed); /* new or NULL */
        *tokens = call ? sc_sim_tokens(sc_sim_json_chars(call)) : 0;
        ok = json_array_append_new(parts, call) == 0;
    } else if (ok) {
        size_t len = 0;
        text = sc_sim_candidate_text(sim, m, g, req, index, &len);
        ok = text != NULL;
        if (ok && g->stop && req)
            len = sc_sim_apply_stop(req, text, len);
        size_t cap = (size_t)g->max_output * SC_SIM_CHARS_PER_TOKEN;
        if (ok && g->max_output > 0 && len > cap) {
            len = sc_sim_utf8_floor(text, cap);
            text[len] = '\0';
            finish = "MAX_TOKENS";
        }
        *tokens = sc_sim_tokens(len);
        ok = ok && json_array_append_new(parts, json_pack("{s:s#}", "text", text, (int)len)) == 0;
    }
    json_t *cand = NULL;
    if (ok) /* "o" steals parts even when json_pack fails */
        cand = json_pack("{s:{s:s, s:o}, s:s, s:i}", "content", "role", "model", "parts", parts,
                         "finishReason", finish, "index", (int)index);
    else
        json_decref(parts);
    free(text);
    return cand;
}

/* The GenerateContentResponse for a validated request: candidateCount deterministic answers,
 * usage and a fresh responseId. Shared by generateContent, streamGenerateContent and Batch Mode.
 * req: the normalised request (borrowed), or NULL for a plain answer.
 * @return a new reference, or NULL when out of memory. */
json_t *sc_sim_gen_doc(sc_gemini_sim_t *sim, const sc_sim_model_t *m, const sc_sim_gen_req_t *g,
                       const json_t *req)
{
    json_t *cands = json_array(), *doc = NULL;
    char *user = NULL; /* owned: the last user text, for a function call */
    const json_t *decl = NULL;
    size_t thoughts = sc_sim_thoughts(m, g), cand = 0;
    unsigned n = g->candidates ? g->candidates : 1;
    bool ok = cands != NULL;
    if (ok && g->calls && req) {
        user = sc_sim_last_user_text(req);
        ok = user != NULL;
        decl = ok ? sc_sim_pick_function(req, user) : NULL;
    }
    for (unsigned i = 0; ok && i < n; i++) {
        size_t t = 0;
        json_t *c = sc_sim_candidate(sim, m, g, req, i, decl, user,
                                     g->include_thoughts && thoughts > 0, &t);
        ok = json_array_append_new(cands, c) == 0;
        cand += t;
    }
    if (!ok)
        goto out;
    size_t prompt = sc_sim_tokens(g->prompt_chars);
    if (prompt < 1)
        prompt = 1;
    prompt += g->cached_tokens; /* promptTokenCount includes the cached prefix (§4.4) */
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
    /* "o" steals cands and usage even when json_pack fails; NULL usage makes it fail */
    doc = json_pack("{s:o, s:o, s:s, s:s}", "candidates", cands, "usageMetadata", usage,
                    "modelVersion", m->name, "responseId", rid);
    cands = NULL;
out:
    json_decref(cands);
    free(user);
    return doc;
}

/* ---- generateContent and streamGenerateContent ---- */

static void sc_sim_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The first text part of the first candidate that is not a thought (borrowed), or NULL. */
/* The refuse fault (a cheaper model's bad answer, the kind a cascade must catch): a text answer
 * becomes a refusal, a schema-bound one "[]" (no instance of an object schema), a function call
 * names an undeclared function (every other draw) or gets arguments of the wrong type (every
 * value an array). */
static void sc_sim_spoil(json_t *doc, json_t *text_part, const sc_sim_gen_req_t *g)
{
    static unsigned flip;
    if (!g->calls) {
        json_object_set_new(text_part, "text", json_string(g->schema ? "[]" : SC_SIM_REFUSAL));
        return;
    }
    json_t *cand = json_array_get(json_object_get(doc, "candidates"), 0);
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(json_object_get(cand, "content"), "parts"), i, part)
    {
        json_t *fc = json_object_get(part, "functionCall");
        if (!fc)
            continue;
        json_t *args = json_object_get(fc, "args");
        if ((__atomic_fetch_add(&flip, 1u, __ATOMIC_RELAXED) & 1u) || json_object_size(args) == 0) {
            const char *name = json_string_value(json_object_get(fc, "name"));
            char bad[160];
            snprintf(bad, sizeof bad, "%s_unlisted", name ? name : "f");
            json_object_set_new(fc, "name", json_string(bad));
        } else {
            const char *key;
            json_t *v;
            json_object_foreach(args, key, v)
                json_object_set_new(args, key, json_array());
        }
    }
}

static json_t *sc_sim_answer_part(json_t *doc)
{
    json_t *cand = json_array_get(json_object_get(doc, "candidates"), 0);
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(json_object_get(cand, "content"), "parts"), i, part)
    {
        if (json_is_string(json_object_get(part, "text")) &&
            !json_is_true(json_object_get(part, "thought")))
            return part;
    }
    return NULL;
}

/* Everything generateContent and streamGenerateContent share (method names the call in the
 * 404): the record line, the model, the validation by the API's rules on the normalised body, a
 * cache, the injected faults. @return the GenerateContentResponse (a new reference) with *fault
 * SC_SIM_F_NONE, SC_SIM_F_MALFORMED or SC_SIM_F_TRUNCATE, or NULL with the reply in r (the reset
 * fault: r->send SC_SIM_SEND_NOTHING). */
static json_t *sc_sim_generate_doc(sc_sim_call_t *c, sc_sim_reply_t *r, const char *method,
                                   size_t *model_index, size_t *cached_tokens, int *fault)
{
    json_t *root = NULL, *norm = NULL, *doc = NULL;
    *fault = SC_SIM_F_NONE;
    sc_sim_record(c->sim, c);
    const sc_sim_model_t *m = sc_sim_model_find(c->id, model_index);
    if (!m) {
        sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                           "models/%s is not found for API version v1beta, or is not supported "
                           "for %s. Call ListModels to see the list of available models and "
                           "their supported methods.",
                           c->id, method);
        goto out;
    }
    atomic_fetch_add(&c->sim->generate_by_model[*model_index], 1);
    root = sc_sim_parse_body(c, r);
    if (!root)
        goto out;
    norm = sc_sim_normalize(root, c->id, r);
    if (!norm)
        goto out;
    json_t *cached = json_object_get(norm, "cachedContent"); /* borrowed */
    sc_sim_gen_req_t g;
    if (!sc_sim_parse_gen(norm, cached == NULL, &g, r))
        goto out;
    if (cached && !sc_sim_cache_use(c->sim, norm, cached, *model_index, &g, r))
        goto out;

    bool delay = false;
    uint64_t body_hash = sc_sim_fnv(SC_SIM_FNV_OFFSET, c->id, strlen(c->id) + 1);
    body_hash = sc_sim_fnv(body_hash, c->body, c->body_len);
    int f = sc_sim_fault_draw(c->sim, body_hash, &delay);
    if (delay)
        sc_sim_sleep_ms(c->sim->faults.delay_ms);
    if (f == SC_SIM_F_429 || f == SC_SIM_F_500 || f == SC_SIM_F_503) {
        sc_sim_reply_fault(c->sim, f, m->name, r);
        goto out;
    }
    if (f == SC_SIM_F_RESET) { /* nothing is computed, nothing billed: no answer left */
        r->fault = sc_sim_fault_names[f];
        r->send = SC_SIM_SEND_NOTHING;
        goto out;
    }
    doc = sc_sim_gen_doc(c->sim, m, &g, norm);
    if (!doc) {
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        goto out;
    }
    json_t *part = sc_sim_answer_part(doc); /* borrowed */
    if ((part || g.calls) && sc_sim_refuses(c->sim, m)) {
        sc_sim_spoil(doc, part, &g);
        atomic_fetch_add(&c->sim->refusals, 1);
    }
    *fault = f;
    *cached_tokens = g.cached_tokens;
out:
    json_decref(norm);
    json_decref(root);
    return doc;
}

/* Count an answer given whole (not the malformed or truncate fault) in billed_tokens and
 * cached_tokens_served. */
static void sc_sim_bill(sc_gemini_sim_t *sim, size_t model_index, const json_t *doc,
                        size_t cached_tokens)
{
    json_t *u = json_object_get(doc, "usageMetadata"); /* borrowed */
    static const char *const keys[4] = {"promptTokenCount", "cachedContentTokenCount",
                                        "candidatesTokenCount", "thoughtsTokenCount"};
    for (int k = 0; k < 4; k++)
        atomic_fetch_add(&sim->billed_tokens[model_index][k],
                         (uint64_t)json_integer_value(json_object_get(u, keys[k])));
    if (cached_tokens > 0) {
        pthread_mutex_lock(&sim->cache_mu);
        sim->cached_tokens_served += cached_tokens;
        pthread_mutex_unlock(&sim->cache_mu);
    }
}

/* The answer spoilt by fault (SC_SIM_F_NONE: left whole). malformed: 200 with the body cut in
 * half and a Content-Length that matches the cut, what a proxy that buffered half an answer looks
 * like; truncate: 200 with the whole answer's Content-Length, half of the body, then the
 * connection closed, what an upstream dropping the connection mid-answer looks like. */
static void sc_sim_cut(sc_sim_reply_t *r, int fault)
{
    if (fault == SC_SIM_F_MALFORMED) {
        if (r->body)
            r->len /= 2;
    } else if (fault == SC_SIM_F_TRUNCATE) {
        r->send = SC_SIM_SEND_CUT;
    } else {
        return;
    }
    r->fault = sc_sim_fault_names[fault];
}

/* Whether the client gets the answer whole, so that it is billed. */
static bool sc_sim_whole(int fault)
{
    return fault != SC_SIM_F_MALFORMED && fault != SC_SIM_F_TRUNCATE;
}

void sc_sim_generate(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    size_t model_index = 0, cached_tokens = 0;
    int fault = SC_SIM_F_NONE;
    json_t *doc =
        sc_sim_generate_doc(c, r, "generateContent", &model_index, &cached_tokens, &fault);
    if (!doc)
        return;
    if (sc_sim_whole(fault))
        sc_sim_bill(c->sim, model_index, doc, cached_tokens);
    sc_sim_reply_json(r, 200, doc);
    sc_sim_cut(r, fault);
}

/* Piece j of k of s (len bytes): [*from, *to), never inside a UTF-8 sequence. */
static void sc_sim_piece(const char *s, size_t len, size_t k, size_t j, size_t *from, size_t *to)
{
    *from = j == 0 ? 0 : sc_sim_utf8_floor(s, len * j / k);
    *to = j + 1 == k ? len : sc_sim_utf8_floor(s, len * (j + 1) / k);
}

/* The parts of candidate cand (borrowed) in chunk j of k: the thought summary in the first, a
 * piece of each text, function calls in the last. @return a new reference or NULL. */
static json_t *sc_sim_chunk_parts(const json_t *cand, size_t k, size_t j)
{
    json_t *out = json_array();
    size_t i;
    json_t *part;
    bool ok = out != NULL;
    json_array_foreach(json_object_get(json_object_get(cand, "content"), "parts"), i, part)
    {
        json_t *text = json_object_get(part, "text");
        if (!ok)
            break;
        if (json_is_true(json_object_get(part, "thought"))) {
            if (j == 0)
                ok = json_array_append(out, part) == 0;
        } else if (json_is_string(text)) {
            size_t from, to;
            const char *s = json_string_value(text);
            sc_sim_piece(s, json_string_length(text), k, j, &from, &to);
            ok = json_array_append_new(
                     out, json_pack("{s:s#}", "text", s + from, (int)(to - from))) == 0;
        } else if (j + 1 == k) {
            ok = json_array_append(out, part) == 0;
        }
    }
    if (ok && json_array_size(out) == 0)
        ok = json_array_append_new(out, json_pack("{s:s}", "text", "")) == 0;
    if (!ok) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* doc (borrowed) as the chunks of a stream (§2): the texts in SC_SIM_CHUNKS_MIN..MAX pieces
 * (fewer when too short; a function call in one chunk, after one holding the thought summary),
 * finishReason and the whole usageMetadata only on the last chunk, the others carrying the prompt
 * count; modelVersion and responseId on every one. @return a new array reference or NULL. */
static json_t *sc_sim_stream_chunks(const json_t *doc)
{
    json_t *cands = json_object_get(doc, "candidates"),
           *usage = json_object_get(doc, "usageMetadata");
    size_t longest = 0, i, p;
    bool calls = false, thought = false;
    uint64_t h = SC_SIM_FNV_OFFSET;
    json_t *cand, *part;
    json_array_foreach(cands, i, cand)
    {
        json_array_foreach(json_object_get(json_object_get(cand, "content"), "parts"), p, part)
        {
            json_t *text = json_object_get(part, "text");
            if (json_is_true(json_object_get(part, "thought")))
                thought = true;
            else if (json_is_string(text)) {
                h = sc_sim_fnv(h, json_string_value(text), json_string_length(text));
                if (json_string_length(text) > longest)
                    longest = json_string_length(text);
            } else
                calls = true;
        }
    }
    size_t k;
    if (calls) {
        k = thought ? 2 : 1;
    } else {
        k = SC_SIM_CHUNKS_MIN +
            (size_t)(sc_sim_splitmix64(&h) % (SC_SIM_CHUNKS_MAX - SC_SIM_CHUNKS_MIN + 1));
        if (k > longest)
            k = longest > 0 ? longest : 1;
    }
    json_int_t prompt = json_integer_value(json_object_get(usage, "promptTokenCount"));
    json_t *chunks = json_array();
    bool ok = chunks != NULL;
    for (size_t j = 0; ok && j < k; j++) {
        bool last = j + 1 == k;
        json_t *list = json_array();
        ok = list != NULL;
        json_array_foreach(cands, i, cand)
        {
            json_t *parts = ok ? sc_sim_chunk_parts(cand, k, j) : NULL; /* new or NULL */
            json_t *c = parts ? json_pack("{s:{s:o, s:s}, s:O}", "content", "parts", parts, "role",
                                          "model", "index", json_object_get(cand, "index"))
                              : NULL;
            if (c && last)
                ok = json_object_set(c, "finishReason", json_object_get(cand, "finishReason")) == 0;
            ok = ok && json_array_append_new(list, c) == 0;
        }
        json_t *u =
            last ? json_incref(usage)
                 : json_pack("{s:I, s:I}", "promptTokenCount", prompt, "totalTokenCount", prompt);
        /* "o" steals list and u even when json_pack fails */
        json_t *chunk = json_pack("{s:o, s:o, s:O, s:O}", "candidates", list, "usageMetadata", u,
                                  "modelVersion", json_object_get(doc, "modelVersion"),
                                  "responseId", json_object_get(doc, "responseId"));
        ok = ok && json_array_append_new(chunks, chunk) == 0;
    }
    if (!ok) {
        json_decref(chunks);
        return NULL;
    }
    return chunks;
}

/* The body of a stream: each chunk as "data: <json>\r\n\r\n" (sse), else one JSON array of them.
 * @return malloc'd (*len bytes; the caller frees), or NULL when out of memory. */
static char *sc_sim_stream_body(const json_t *chunks, bool sse, size_t *len)
{
    size_t n = json_array_size(chunks), total = 2, i;
    char **dumps = calloc(n ? n : 1, sizeof *dumps);
    char *out = NULL;
    if (!dumps)
        return NULL;
    for (i = 0; i < n; i++) {
        dumps[i] = json_dumps(json_array_get(chunks, i), JSON_COMPACT);
        if (!dumps[i])
            goto out;
        total += strlen(dumps[i]) + 10; /* "data: " and "\r\n\r\n", or ",\r\n" */
    }
    out = malloc(total + 1);
    if (!out)
        goto out;
    size_t o = 0;
    if (!sse)
        out[o++] = '[';
    for (i = 0; i < n; i++) {
        size_t dl = strlen(dumps[i]);
        if (sse) {
            memcpy(out + o, "data: ", 6);
            o += 6;
        } else if (i > 0) {
            memcpy(out + o, ",\r\n", 3);
            o += 3;
        }
        memcpy(out + o, dumps[i], dl);
        o += dl;
        if (sse) {
            memcpy(out + o, "\r\n\r\n", 4);
            o += 4;
        }
    }
    if (!sse)
        out[o++] = ']';
    out[o] = '\0';
    *len = o;
out:
    for (i = 0; i < n; i++)
        free(dumps[i]);
    free(dumps);
    return out;
}

/* POST /v1beta/models/{model}:streamGenerateContent[?alt=sse] (§2): generateContent's
 * validation and answer, sent as chunks. */
void sc_sim_stream_generate(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    size_t model_index = 0, cached_tokens = 0, len = 0;
    int fault = SC_SIM_F_NONE;
    json_t *doc =
        sc_sim_generate_doc(c, r, "streamGenerateContent", &model_index, &cached_tokens, &fault);
    if (!doc)
        return;
    const char *alt = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "alt");
    bool sse = alt && strcmp(alt, "sse") == 0;
    json_t *chunks = sc_sim_stream_chunks(doc);
    char *body = chunks ? sc_sim_stream_body(chunks, sse, &len) : NULL;
    json_decref(chunks);
    if (!body) {
        json_decref(doc);
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
        return;
    }
    if (sc_sim_whole(fault))
        sc_sim_bill(c->sim, model_index, doc, cached_tokens);
    json_decref(doc);
    free(r->body);
    r->code = 200;
    r->body = body;
    r->len = len;
    r->ctype = sse ? "text/event-stream" : NULL;
    sc_sim_cut(r, fault);
}

/* ---- countTokens ---- */

/* Every key of body (borrowed) is one of the n names; where (may be "") names body in the 400 that
 * names the first other key, as the API words it. @return false with the 400 in r. */
bool sc_sim_known_keys(const json_t *body, const char *const *names, size_t n, const char *where,
                       sc_sim_reply_t *r)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)body, key, val)
    {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = strcmp(key, names[i]) == 0;
        if (!ok) {
            sc_sim_reply_invalid(r,
                                 "Invalid JSON payload received. Unknown name \"%.64s\"%s%s%s: "
                                 "Cannot find field.",
                                 key, where[0] ? " at '" : "", where, where[0] ? "'" : "");
            return false;
        }
    }
    return true;
}

/* POST /v1beta/models/{model}:countTokens (§3): plain contents, or a whole request wrapped in
 * generateContentRequest (its model required), validated as generateContent validates. */
void sc_sim_count_tokens(sc_sim_call_t *c, sc_sim_reply_t *r)
{
    static const char *const keys[] = {"contents", "generateContentRequest",
                                       "generate_content_request", "model"};
    json_t *root = NULL, *obj = NULL, *norm = NULL;
    size_t model_index = 0;
    atomic_fetch_add(&c->sim->count_tokens, 1);
    if (!sc_sim_model_find(c->id, &model_index)) {
        sc_sim_reply_error(r, 404, "NOT_FOUND", NULL,
                           "models/%s is not found for API version v1beta, or is not supported "
                           "for countTokens. Call ListModels to see the list of available "
                           "models and their supported methods.",
                           c->id);
        goto out;
    }
    root = sc_sim_parse_body(c, r);
    if (!root || !sc_sim_known_keys(root, keys, SC_ARRAY_LEN(keys), "", r))
        goto out;
    json_t *wrapped = sc_sim_get2(root, "generateContentRequest", "generate_content_request");
    json_t *contents = json_object_get(root, "contents");
    if (wrapped && contents) {
        sc_sim_reply_invalid(r, "contents and generateContentRequest are mutually exclusive.");
        goto out;
    }
    if (wrapped && !json_is_object(wrapped)) {
        sc_sim_reply_invalid(r, "Invalid value at 'generate_content_request': expected an "
                                "object.");
        goto out;
    }
    if (wrapped && !json_is_string(json_object_get(wrapped, "model"))) {
        sc_sim_reply_invalid(r, "* CountTokensRequest.generate_content_request.model: model is "
                                "required (\"models/...\").");
        goto out;
    }
    obj = wrapped    ? json_incref(wrapped)
          : contents ? json_pack("{s:O}", "contents", contents)
                     : json_object();
    norm = obj ? sc_sim_normalize(obj, c->id, r) : NULL;
    if (!obj)
        sc_sim_reply_error(r, 500, "INTERNAL", NULL, "out of memory");
    if (!norm)
        goto out;
    json_t *cached = json_object_get(norm, "cachedContent"); /* borrowed */
    sc_sim_gen_req_t g;
    if (!sc_sim_parse_gen(norm, wrapped != NULL && !cached, &g, r))
        goto out;
    if (cached && !sc_sim_cache_use(c->sim, norm, cached, model_index, &g, r))
        goto out;
    size_t n = sc_sim_tokens(g.prompt_chars);
    if (n < 1)
        n = 1;
    json_t *doc =
        json_pack("{s:I, s:[{s:s, s:I}]}", "totalTokens", (json_int_t)(n + g.cached_tokens),
                  "promptTokensDetails", "modality", "TEXT", "tokenCount", (json_int_t)n);
    if (doc && g.cached_tokens > 0 &&
        json_object_set_new(doc, "cachedContentTokenCount",
                            json_integer((json_int_t)g.cached_tokens)) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    sc_sim_reply_json(r, 200, doc);
out:
    json_decref(norm);
    json_decref(obj);
    json_decref(root);
}
