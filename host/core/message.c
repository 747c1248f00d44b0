/* message.c - the JSON contracts of DESIGN §4: parse and validate requests, serialise results
 * and dead letters. */
#include "host/core/message.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/genreq.h"
#include "host/core/util.h"

/* ---- limits and contract constants ---- */

#define SC_DEFAULT_MAX_MESSAGE_BYTES ((size_t)1 << 20)
#define SC_DEFAULT_MAX_MESSAGES      ((size_t)1000)
#define SC_DEFAULT_MAX_ID_BYTES      ((size_t)256)

#define SC_MODEL_MAX_BYTES 128 /* a model id becomes a URL path segment */
#define SC_TEMPERATURE_MAX 2.0
#define SC_DEADLINE_MAX_MS 3600000L /* one hour */
#define SC_ERR_KEY_MAX     64       /* bytes of an offending key quoted in an error */

#define SC_PARSE_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

void sc_limits_default(sc_limits_t *lim)
{
    if (!lim)
        return;
    lim->max_message_bytes = SC_DEFAULT_MAX_MESSAGE_BYTES;
    lim->max_messages = SC_DEFAULT_MAX_MESSAGES;
    lim->max_id_bytes = SC_DEFAULT_MAX_ID_BYTES;
}

/* ---- UTF-8 ---- */

/* Decode the sequence at s[0..n) (n >= 1). Returns its length and sets *cp, or 0 when it is not
 * valid UTF-8 (overlong form, surrogate, above U+10FFFF, stray or missing continuation). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len, i;
    uint32_t v;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2)
        return 0; /* continuation byte or overlong 2-byte lead */
    if (c < 0xE0) {
        len = 2;
        v = c & 0x1Fu;
    } else if (c < 0xF0) {
        len = 3;
        v = c & 0x0Fu;
    } else if (c < 0xF5) {
        len = 4;
        v = c & 0x07u;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0u) != 0x80u)
            return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    if ((len == 3 && v < 0x800) || (len == 4 && v < 0x10000))
        return 0; /* overlong */
    if ((v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF)
        return 0;
    *cp = v;
    return len;
}

/* 1 when s[0..n) is valid UTF-8 without NUL bytes. */
static int utf8_valid_nonul(const unsigned char *s, size_t n)
{
    size_t i = 0, k;
    uint32_t cp;

    while (i < n) {
        if (s[i] == 0)
            return 0;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        k = utf8_decode(s + i, n - i, &cp);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

/* Unicode general category Cc: C0, DEL, C1. */
static int is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp < 0xA0);
}

/* White space (and the invisible BOM / zero-width space) for the "not blank" rule. */
static int is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

/* s: n bytes of valid UTF-8 (jansson checked it). */
static int has_control(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k;
    uint32_t cp;

    while (i < n) {
        k = utf8_decode(u + i, n - i, &cp);
        if (k == 0 || is_control(cp))
            return 1;
        i += k;
    }
    return 0;
}

/* s: n bytes of valid UTF-8. 1 when it holds nothing but white space. */
static int is_blank(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k;
    uint32_t cp;

    while (i < n) {
        k = utf8_decode(u + i, n - i, &cp);
        if (k == 0 || !is_space(cp))
            return 0;
        i += k;
    }
    return 1;
}

/* Copy src into dst[dstlen] without splitting a UTF-8 sequence; always terminates. */
static void copy_utf8_bounded(char *dst, size_t dstlen, const char *src)
{
    size_t n;

    if (!dst || dstlen == 0)
        return;
    n = strlen(src);
    if (n >= dstlen) {
        n = dstlen - 1;
        /* back off over continuation bytes so the cut lands on a sequence start */
        while (n > 0 && ((unsigned char)src[n] & 0xC0u) == 0x80u)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- error text ---- */

__attribute__((format(printf, 3, 4))) static void set_err(char *errbuf, size_t errlen,
                                                          const char *fmt, ...)
{
    va_list ap;

    if (!errbuf || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* A key from the input, made safe to quote in a one-line message: control bytes become '?',
 * at most SC_ERR_KEY_MAX bytes, cut on a sequence boundary. */
static void quote_key(char *dst, size_t dstlen, const char *key)
{
    size_t i;

    copy_utf8_bounded(dst, dstlen, key);
    for (i = 0; dst[i]; i++) {
        unsigned char c = (unsigned char)dst[i];
        if (c < 0x20 || c == 0x7F || c == '"' || c == '\\')
            dst[i] = '?';
    }
}

/* ---- field validation ---- */

/* A field value, borrowed from its parent; JSON null counts as absent. */
static json_t *get_field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* id, tenant and the tags: non-empty string of at most maxlen bytes, no control characters.
 * *out is borrowed from obj (NULL when absent and optional). */
static sc_status_t get_tag(json_t *obj, const char *key, int required, size_t maxlen,
                           const char **out, char *errbuf, size_t errlen)
{
    json_t *v = get_field(obj, key);
    size_t n;

    *out = NULL;
    if (!v) {
        if (!required)
            return SC_OK;
        set_err(errbuf, errlen, "field \"%s\": required", key);
        return SC_ERR_INVALID;
    }
    if (!json_is_string(v)) {
        set_err(errbuf, errlen, "field \"%s\": must be a string", key);
        return SC_ERR_INVALID;
    }
    n = json_string_length(v);
    if (n == 0) {
        set_err(errbuf, errlen, "field \"%s\": must not be empty", key);
        return SC_ERR_INVALID;
    }
    if (n > maxlen) {
        set_err(errbuf, errlen, "field \"%s\": %zu bytes, more than the limit of %zu", key, n,
                maxlen);
        return SC_ERR_INVALID;
    }
    if (has_control(json_string_value(v), n)) {
        set_err(errbuf, errlen, "field \"%s\": must not contain control characters", key);
        return SC_ERR_INVALID;
    }
    *out = json_string_value(v);
    return SC_OK;
}

/* An optional string that must be one of the NULL-terminated list `allowed`. *idx gets its
 * position, or -1 when absent. */
static sc_status_t get_enum(json_t *obj, const char *key, const char *const *allowed,
                            const char *expect, int *idx, char *errbuf, size_t errlen)
{
    json_t *v = get_field(obj, key);
    int i;

    *idx = -1;
    if (!v)
        return SC_OK;
    if (json_is_string(v)) {
        for (i = 0; allowed[i]; i++) {
            if (strcmp(json_string_value(v), allowed[i]) == 0) {
                *idx = i;
                return SC_OK;
            }
        }
    }
    set_err(errbuf, errlen, "field \"%s\": must be %s", key, expect);
    return SC_ERR_INVALID;
}

static sc_status_t check_model(json_t *obj, const char **out, char *errbuf, size_t errlen)
{
    json_t *v = get_field(obj, "model");
    const char *s;
    size_t n, i;

    *out = "auto";
    if (!v)
        return SC_OK;
    if (!json_is_string(v)) {
        set_err(errbuf, errlen, "field \"model\": must be a string");
        return SC_ERR_INVALID;
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n > SC_MODEL_MAX_BYTES) {
        set_err(errbuf, errlen, "field \"model\": must be 1 to %d bytes", SC_MODEL_MAX_BYTES);
        return SC_ERR_INVALID;
    }
    for (i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        /* must start alphanumeric so "." and ".." can never be a path segment */
        if (!(alnum || (i > 0 && (c == '.' || c == '_' || c == '-')))) {
            set_err(errbuf, errlen,
                    "field \"model\": must be \"auto\" or a model id of [A-Za-z0-9._-] "
                    "starting with a letter or digit");
            return SC_ERR_INVALID;
        }
    }
    *out = s;
    return SC_OK;
}

static sc_status_t check_messages(json_t *root, const sc_limits_t *lim, sc_request_t *req,
                                  char *errbuf, size_t errlen)
{
    json_t *msgs = get_field(root, "messages");
    size_t n, i;

    if (!msgs) {
        set_err(errbuf, errlen, "field \"messages\": required");
        return SC_ERR_INVALID;
    }
    if (!json_is_array(msgs)) {
        set_err(errbuf, errlen, "field \"messages\": must be an array");
        return SC_ERR_INVALID;
    }
    n = json_array_size(msgs);
    if (n == 0) {
        set_err(errbuf, errlen, "field \"messages\": must have at least 1 entry");
        return SC_ERR_INVALID;
    }
    if (n > lim->max_messages) {
        set_err(errbuf, errlen, "field \"messages\": %zu entries, more than the limit of %zu", n,
                lim->max_messages);
        return SC_ERR_INVALID;
    }
    req->turns = calloc(n, sizeof(*req->turns));
    if (!req->turns) {
        set_err(errbuf, errlen, "out of memory for %zu turns", n);
        return SC_ERR_NOMEM;
    }
    req->n_turns = n;
    for (i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i); /* borrowed */
        json_t *role, *content;
        const char *r;

        if (!json_is_object(m)) {
            set_err(errbuf, errlen, "field \"messages[%zu]\": must be an object", i);
            return SC_ERR_INVALID;
        }
        role = json_object_get(m, "role");
        r = json_is_string(role) ? json_string_value(role) : NULL;
        if (!r || (strcmp(r, "user") != 0 && strcmp(r, "model") != 0)) {
            set_err(errbuf, errlen, "field \"messages[%zu].role\": must be \"user\" or \"model\"",
                    i);
            return SC_ERR_INVALID;
        }
        content = json_object_get(m, "content");
        if (!json_is_string(content)) {
            set_err(errbuf, errlen, "field \"messages[%zu].content\": must be a string", i);
            return SC_ERR_INVALID;
        }
        req->turns[i].role = r;
        req->turns[i].content = json_string_value(content);
        req->turns[i].content_len = json_string_length(content);
    }
    if (strcmp(req->turns[n - 1].role, "user") != 0) {
        set_err(errbuf, errlen,
                "field \"messages[%zu].role\": the last message must be from "
                "\"user\"",
                n - 1);
        return SC_ERR_INVALID;
    }
    if (is_blank(req->turns[n - 1].content, req->turns[n - 1].content_len)) {
        set_err(errbuf, errlen,
                "field \"messages[%zu].content\": the last user message must "
                "not be empty",
                n - 1);
        return SC_ERR_INVALID;
    }
    return SC_OK;
}

/* generation: {temperature, max_output_tokens | maxOutputTokens,
 * response_mime_type | responseMimeType}; any other key is an error so typos surface. */
static sc_status_t check_generation(json_t *root, sc_request_t *req, char *errbuf, size_t errlen)
{
    static const char *const mimes[] = {"text/plain", "application/json", "text/x.enum", NULL};
    json_t *gen = get_field(root, "generation");
    const char *key;
    json_t *v;
    int seen_max = 0, seen_mime = 0;
    char kbuf[SC_ERR_KEY_MAX + 1];

    if (!gen)
        return SC_OK;
    if (!json_is_object(gen)) {
        set_err(errbuf, errlen, "field \"generation\": must be an object");
        return SC_ERR_INVALID;
    }
    json_object_foreach(gen, key, v)
    { /* v borrowed */
        if (strcmp(key, "temperature") == 0) {
            double t;
            if (json_is_null(v))
                continue;
            t = json_number_value(v);
            if (!json_is_number(v) || !(t >= 0.0 && t <= SC_TEMPERATURE_MAX)) {
                set_err(errbuf, errlen,
                        "field \"generation.temperature\": must be a number from 0 to 2");
                return SC_ERR_INVALID;
            }
            req->has_temperature = 1;
            req->temperature = t;
        } else if (strcmp(key, "max_output_tokens") == 0 || strcmp(key, "maxOutputTokens") == 0) {
            json_int_t m;
            if (seen_max++) {
                set_err(errbuf, errlen, "field \"generation.%s\": max_output_tokens given twice",
                        key);
                return SC_ERR_INVALID;
            }
            if (json_is_null(v))
                continue;
            m = json_is_integer(v) ? json_integer_value(v) : 0;
            if (m < 1 || m > LONG_MAX) {
                set_err(errbuf, errlen, "field \"generation.%s\": must be an integer >= 1", key);
                return SC_ERR_INVALID;
            }
            req->max_output_tokens = (long)m;
        } else if (strcmp(key, "response_mime_type") == 0 || strcmp(key, "responseMimeType") == 0) {
            const char *s = json_is_string(v) ? json_string_value(v) : NULL;
            int i, ok = 0;
            if (seen_mime++) {
                set_err(errbuf, errlen, "field \"generation.%s\": response_mime_type given twice",
                        key);
                return SC_ERR_INVALID;
            }
            if (json_is_null(v))
                continue;
            for (i = 0; s && mimes[i]; i++) {
                if (strcmp(s, mimes[i]) == 0) {
                    req->response_mime_type = s; /* borrowed from root */
                    ok = 1;
                    break;
                }
            }
            if (!ok) {
                set_err(errbuf, errlen,
                        "field \"generation.%s\": must be \"text/plain\", "
                        "\"application/json\" or \"text/x.enum\"",
                        key);
                return SC_ERR_INVALID;
            }
        } else {
            quote_key(kbuf, sizeof(kbuf), key);
            set_err(errbuf, errlen,
                    "field \"generation.%s\": unknown key (allowed: temperature, "
                    "max_output_tokens, response_mime_type)",
                    kbuf);
            return SC_ERR_INVALID;
        }
    }
    return SC_OK;
}

static sc_status_t check_deadline(json_t *root, sc_request_t *req, char *errbuf, size_t errlen)
{
    json_t *v = get_field(root, "deadline_ms");
    json_int_t d;

    if (!v)
        return SC_OK;
    d = json_is_integer(v) ? json_integer_value(v) : 0;
    if (d < 1 || d > SC_DEADLINE_MAX_MS) {
        set_err(errbuf, errlen, "field \"deadline_ms\": must be an integer from 1 to %ld",
                SC_DEADLINE_MAX_MS);
        return SC_ERR_INVALID;
    }
    req->deadline_ms = (long)d;
    return SC_OK;
}

/* ---- Gemini's own request shape ---- */

/* The fields of a scrimp request, and Gemini's request fields it may carry beside them (both
 * spellings of each). */
static const char *const scrimp_keys[] = {"id",          "tenant",   "user",       "agent",
                                          "stage",       "conversation_id",        "system",
                                          "messages",    "model",    "generation", "cache",
                                          "deadline_ms", "priority", NULL};
static const char *const gemini_keys[][2] = {
    {"contents", "contents"},         {"systemInstruction", "system_instruction"},
    {"tools", "tools"},               {"toolConfig", "tool_config"},
    {"safetySettings", "safety_settings"}, {"generationConfig", "generation_config"}};

/* Which of gemini_keys the top level holds (bit i), or -1 after a refused key. A request in the
 * simple form keeps today's contract: other top-level keys are ignored (producers add their own
 * metadata); one in Gemini's shape is new and strict: any other key is refused, so a misspelt
 * Gemini field is never silently dropped. cachedContent is refused in both: scrimp manages the
 * prompt caches. */
static int top_level_keys(json_t *root, char *errbuf, size_t errlen)
{
    const char *key, *unknown = NULL;
    json_t *v;
    int bits = 0;
    char kbuf[SC_ERR_KEY_MAX + 1];

    json_object_foreach(root, key, v) {
        int known = 0;
        if (strcmp(key, "cachedContent") == 0 || strcmp(key, "cached_content") == 0) {
            quote_key(kbuf, sizeof(kbuf), key);
            set_err(errbuf, errlen,
                    "field \"%s\": not taken (scrimp caches system instructions and tools itself: "
                    "see prompt_cache.*)",
                    kbuf);
            return -1;
        }
        for (size_t i = 0; scrimp_keys[i] && !known; i++)
            known = strcmp(key, scrimp_keys[i]) == 0;
        for (size_t i = 0; i < SC_ARRAY_LEN(gemini_keys) && !known; i++)
            if (strcmp(key, gemini_keys[i][0]) == 0 || strcmp(key, gemini_keys[i][1]) == 0) {
                known = 1;
                if (!json_is_null(v))
                    bits |= 1 << i;
            }
        if (!known && !unknown)
            unknown = key;
    }
    if (bits && unknown) {
        quote_key(kbuf, sizeof(kbuf), unknown);
        set_err(errbuf, errlen,
                "field \"%s\": unknown field (a request in Gemini's shape takes id, tenant, user, "
                "agent, stage, conversation_id, system, messages, model, generation, cache, "
                "deadline_ms, priority, contents, systemInstruction, tools, toolConfig, "
                "safetySettings, generationConfig)",
                kbuf);
        return -1;
    }
    return bits;
}

/* root's value of Gemini field i in either spelling (borrowed), and which spelling. */
static json_t *gemini_field(json_t *root, size_t i, const char **name)
{
    json_t *v = get_field(root, gemini_keys[i][0]);
    *name = gemini_keys[i][0];
    if (!v) {
        v = get_field(root, gemini_keys[i][1]);
        *name = gemini_keys[i][1];
    }
    return v;
}

/* A text Content {"role"?, "parts":[{"text"}]}: new reference or NULL. */
static json_t *text_content(const char *role, const char *text, size_t len)
{
    json_t *c = json_pack("{s:[{s:s%}]}", "parts", "text", text, len);
    if (c && role && json_object_set_new(c, "role", json_string(role)) != 0) {
        json_decref(c);
        return NULL;
    }
    return c;
}

static int keep_text(sc_request_t *req, char *s)
{
    char **t = realloc(req->texts, (req->n_texts + 1) * sizeof(*t));
    if (!t) {
        free(s);
        return -1;
    }
    req->texts = t;
    req->texts[req->n_texts++] = s;
    return 0;
}

/* A request with Gemini fields: gather them (the simple fields translated), check and normalise
 * them (genreq.h), and make the text view. bits: top_level_keys(). */
static sc_status_t check_native(json_t *root, int bits, const sc_limits_t *lim, sc_request_t *req,
                                char *errbuf, size_t errlen)
{
    static const char *const pairs[][2] = {
        {"messages", "contents"}, {"system", "systemInstruction"}, {"generation", "generationConfig"}};
    json_t *gem = json_object(); /* new, released at out */
    json_t *norm = NULL, *v, *contents, *gen, *c;
    const char *name;
    sc_status_t st = SC_ERR_INVALID;
    size_t i, n;

    if (!gem)
        goto nomem;
    for (i = 0; i < SC_ARRAY_LEN(pairs); i++) {
        size_t gi = i == 0 ? 0 : i == 1 ? 1 : 5;
        if (get_field(root, pairs[i][0]) && (bits & (1 << gi))) {
            gemini_field(root, gi, &name);
            set_err(errbuf, errlen, "field \"%s\": give %s or %s, not both", name, pairs[i][0],
                    pairs[i][1]);
            goto out;
        }
    }
    for (i = 0; i < SC_ARRAY_LEN(gemini_keys); i++) {
        if (!(bits & (1 << i)))
            continue;
        v = gemini_field(root, i, &name);
        if (json_object_set(gem, name, v) != 0)
            goto nomem;
    }
    if (get_field(root, "messages")) {
        st = check_messages(root, lim, req, errbuf, errlen);
        if (st)
            goto out;
        st = SC_ERR_INVALID;
        json_t *arr = json_array();
        if (!arr || json_object_set_new(gem, "contents", arr) != 0)
            goto nomem;
        for (i = 0; i < req->n_turns; i++) {
            c = text_content(req->turns[i].role, req->turns[i].content, req->turns[i].content_len);
            if (!c || json_array_append_new(arr, c) != 0)
                goto nomem;
        }
        free(req->turns);
        req->turns = NULL;
        req->n_turns = 0;
    }
    if ((v = get_field(root, "system"))) {
        if (!json_is_string(v)) {
            set_err(errbuf, errlen, "field \"system\": must be a string");
            goto out;
        }
        c = text_content(NULL, json_string_value(v), json_string_length(v));
        if (!c || json_object_set_new(gem, "systemInstruction", c) != 0)
            goto nomem;
    }
    if (get_field(root, "generation")) {
        st = check_generation(root, req, errbuf, errlen);
        if (st)
            goto out;
        st = SC_ERR_INVALID;
        gen = json_object();
        if (!gen || json_object_set_new(gem, "generationConfig", gen) != 0)
            goto nomem;
        if (req->has_temperature && json_object_set_new(gen, "temperature",
                                                        json_real(req->temperature)))
            goto nomem;
        if (req->max_output_tokens > 0 &&
            json_object_set_new(gen, "maxOutputTokens", json_integer(req->max_output_tokens)))
            goto nomem;
        if (req->response_mime_type &&
            json_object_set_new(gen, "responseMimeType", json_string(req->response_mime_type)))
            goto nomem;
    }

    st = sc_genreq_normalize(gem, SC_GENREQ_SCRIMP, &norm, errbuf, errlen);
    if (st)
        goto out;
    st = SC_ERR_INVALID;
    contents = json_object_get(norm, "contents");
    n = json_array_size(contents);
    if (n == 0) {
        set_err(errbuf, errlen, "field \"contents\": required, with at least 1 entry");
        goto out;
    }
    if (n > lim->max_messages) {
        set_err(errbuf, errlen, "field \"contents\": %zu entries, more than the limit of %zu", n,
                lim->max_messages);
        goto out;
    }
    req->turns = calloc(n, sizeof(*req->turns));
    if (!req->turns)
        goto nomem;
    req->n_turns = n;
    json_array_foreach(contents, i, c) {
        unsigned fl = 0;
        size_t len = 0;
        char *text = sc_genreq_render(c, &fl, &len);
        json_t *role = json_object_get(c, "role");
        if (!text || keep_text(req, text) != 0)
            goto nomem;
        req->parts |= fl;
        req->turns[i].role = json_is_string(role) ? json_string_value(role) : "user";
        req->turns[i].content = text;
        req->turns[i].content_len = len;
    }
    if (strcmp(req->turns[n - 1].role, "user") != 0) {
        set_err(errbuf, errlen,
                "field \"contents[%zu].role\": the last content must be from \"user\"", n - 1);
        goto out;
    }
    if (is_blank(req->turns[n - 1].content, req->turns[n - 1].content_len)) {
        set_err(errbuf, errlen, "field \"contents[%zu]\": the last user content must not be empty",
                n - 1);
        goto out;
    }
    if ((v = json_object_get(norm, "systemInstruction"))) {
        char *text = sc_genreq_render(v, NULL, NULL);
        if (!text || keep_text(req, text) != 0)
            goto nomem;
        req->system = text;
    }
    gen = json_object_get(norm, "generationConfig");
    req->has_temperature = 0;
    if ((v = json_object_get(gen, "temperature"))) {
        req->has_temperature = 1;
        req->temperature = json_number_value(v);
    }
    v = json_object_get(gen, "maxOutputTokens");
    req->max_output_tokens = v ? (long)json_integer_value(v) : 0;
    v = json_object_get(gen, "responseMimeType");
    req->response_mime_type = v ? json_string_value(v) : NULL;
    {
        json_t *tools = json_object_get(norm, "tools"), *t;
        size_t k;
        json_array_foreach(tools, k, t)
            if (json_array_size(json_object_get(t, "functionDeclarations")) > 0)
                req->has_tools = 1;
    }
    {
        json_t *rest = json_copy(norm); /* new, shallow */
        if (!rest)
            goto nomem;
        json_object_del(rest, "contents");
        req->native_scope = sc_genreq_canonical(rest);
        json_decref(rest);
        if (!req->native_scope)
            goto nomem;
    }
    req->native = norm;
    norm = NULL;
    st = SC_OK;
    goto out;

nomem:
    set_err(errbuf, errlen, "out of memory");
    st = SC_ERR_NOMEM;
out:
    json_decref(norm);
    json_decref(gem);
    return st;
}

int sc_request_exact_only(const sc_request_t *req)
{
    return req && (req->has_tools ||
                   (req->parts & (SC_GENREQ_CALL | SC_GENREQ_RESPONSE | SC_GENREQ_MEDIA)));
}

/* ---- request ---- */

static sc_status_t validate(json_t *root, const sc_limits_t *lim, sc_request_t *req, char *errbuf,
                            size_t errlen)
{
    static const char *const caches[] = {"on", "exact", "off", NULL};
    static const char *const prios[] = {"online", "batch", NULL};
    static const sc_cache_mode_t cache_modes[] = {SC_CACHE_ON, SC_CACHE_EXACT, SC_CACHE_OFF};
    sc_status_t st;
    json_t *sys;
    int idx, bits;

    st = get_tag(root, "id", 1, lim->max_id_bytes, &req->id, errbuf, errlen);
    if (st)
        goto out;
    st = get_tag(root, "tenant", 1, lim->max_id_bytes, &req->tenant, errbuf, errlen);
    if (st)
        goto out;
    st = get_tag(root, "user", 0, lim->max_id_bytes, &req->user, errbuf, errlen);
    if (st)
        goto out;
    st = get_tag(root, "agent", 0, lim->max_id_bytes, &req->agent, errbuf, errlen);
    if (st)
        goto out;
    st = get_tag(root, "stage", 0, lim->max_id_bytes, &req->stage, errbuf, errlen);
    if (st)
        goto out;
    st = get_tag(root, "conversation_id", 0, lim->max_id_bytes, &req->conversation_id, errbuf,
                 errlen);
    if (st)
        goto out;

    bits = top_level_keys(root, errbuf, errlen);
    if (bits < 0) {
        st = SC_ERR_INVALID;
        goto out;
    }
    st = check_model(root, &req->model, errbuf, errlen);
    if (st)
        goto out;
    if (bits) {
        st = check_native(root, bits, lim, req, errbuf, errlen);
        if (st)
            goto out;
        if (strcmp(req->model, "auto") != 0) {
            st = sc_genreq_check_model(req->native, req->model, errbuf, errlen);
            if (st)
                goto out;
        }
    } else {
        sys = get_field(root, "system");
        if (sys && !json_is_string(sys)) {
            set_err(errbuf, errlen, "field \"system\": must be a string");
            st = SC_ERR_INVALID;
            goto out;
        }
        req->system = sys ? json_string_value(sys) : NULL;

        st = check_messages(root, lim, req, errbuf, errlen);
        if (st)
            goto out;
        st = check_generation(root, req, errbuf, errlen);
        if (st)
            goto out;
    }

    st = get_enum(root, "cache", caches, "\"on\", \"exact\" or \"off\"", &idx, errbuf, errlen);
    if (st)
        goto out;
    req->cache = idx < 0 ? SC_CACHE_ON : cache_modes[idx];

    st = check_deadline(root, req, errbuf, errlen);
    if (st)
        goto out;

    st = get_enum(root, "priority", prios, "\"online\" or \"batch\"", &idx, errbuf, errlen);
    if (st)
        goto out;
    req->priority = idx < 0 ? NULL : json_string_value(json_object_get(root, "priority"));
out:
    return st;
}

sc_status_t sc_request_parse(const void *buf, size_t len, const sc_limits_t *lim,
                             sc_request_t **out, char *idbuf, size_t idlen, char *errbuf,
                             size_t errlen)
{
    sc_limits_t deflim;
    sc_request_t *req = NULL;
    json_t *root = NULL; /* new reference from json_loadb until handed to req */
    json_t *idv;
    json_error_t jerr;
    sc_status_t st;

    if (idbuf && idlen > 0)
        idbuf[0] = '\0';
    if (errbuf && errlen > 0)
        errbuf[0] = '\0';
    if (!out || (!buf && len > 0)) {
        set_err(errbuf, errlen, "sc_request_parse: bad arguments");
        return SC_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (!lim) {
        sc_limits_default(&deflim);
        lim = &deflim;
    }

    /* before parsing, so an oversized message costs nothing (its id is not read) */
    if (len > lim->max_message_bytes) {
        set_err(errbuf, errlen, "message is %zu bytes, more than the limit of %zu bytes", len,
                lim->max_message_bytes);
        st = SC_ERR_TOO_LARGE;
        goto out;
    }

    root = json_loadb(buf ? (const char *)buf : "", len, SC_PARSE_FLAGS, &jerr);
    if (!root) {
        set_err(errbuf, errlen, "invalid JSON%s at line %d, column %d: %s",
                json_error_code(&jerr) == json_error_invalid_utf8 ? " (not valid UTF-8)" : "",
                jerr.line, jerr.column, jerr.text);
        st = SC_ERR_JSON;
        goto out;
    }
    if (!json_is_object(root)) {
        set_err(errbuf, errlen, "top level: must be a JSON object");
        st = SC_ERR_INVALID;
        goto out;
    }
    idv = json_object_get(root, "id"); /* borrowed */
    if (json_is_string(idv))
        copy_utf8_bounded(idbuf, idlen, json_string_value(idv));

    req = calloc(1, sizeof(*req));
    if (!req) {
        set_err(errbuf, errlen, "out of memory");
        st = SC_ERR_NOMEM;
        goto out;
    }
    st = validate(root, lim, req, errbuf, errlen);
    if (st)
        goto out;
    req->root = root; /* the request owns the document from here */
    root = NULL;
    *out = req;
    req = NULL;
out:
    sc_request_free(req); /* root is not yet the request's */
    json_decref(root);
    return st;
}

void sc_request_free(sc_request_t *req)
{
    if (!req)
        return;
    json_decref(req->root);
    json_decref(req->native);
    free(req->native_scope);
    for (size_t i = 0; i < req->n_texts; i++)
        free(req->texts[i]);
    free(req->texts);
    free(req->turns);
    free(req);
}

/* ---- result ---- */

void sc_result_init(sc_result_t *res)
{
    if (!res)
        return;
    memset(res, 0, sizeof(*res));
    res->similarity = -1.0;
    res->route_score = -1.0;
}

/* A new JSON string for s, or JSON null when s is NULL. Bytes that are not valid UTF-8 become
 * U+FFFD so a result or dead letter can always be published. NULL only on allocation failure. */
static json_t *json_str(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n, i = 0, o = 0, k;
    uint32_t cp;
    char *fixed;
    json_t *v;

    if (!s)
        return json_null();
    n = strlen(s);
    if (utf8_valid_nonul(u, n))
        return json_stringn_nocheck(s, n); /* just validated */
    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    fixed = malloc(3 * n + 1); /* worst case: every byte becomes EF BF BD */
    if (!fixed)
        return NULL;
    while (i < n) {
        k = utf8_decode(u + i, n - i, &cp);
        if (k == 0) {
            memcpy(fixed + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(fixed + o, s + i, k);
            o += k;
            i += k;
        }
    }
    v = json_stringn_nocheck(fixed, o);
    free(fixed);
    return v;
}

/* A new JSON real, or null when x is not finite (NaN/inf cannot be written as JSON). */
static json_t *json_num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* A new JSON real, or null when x < 0 (the "not applicable" marker) or not finite. */
static json_t *json_num_or_null(double x)
{
    return (isfinite(x) && x >= 0.0) ? json_real(x) : json_null();
}

/* Serialise obj compactly. Returns a malloc'ed string (jansson's default allocator is malloc;
 * the caller frees with free()); NULL on failure. */
static char *dump(const json_t *obj, size_t *len)
{
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (s && len)
        *len = strlen(s);
    return s;
}

/* json_object_set_new steals v (also when v is NULL or the set fails): nonzero on failure. */
#define SET(obj, key, v)                                                                           \
    do {                                                                                           \
        if (json_object_set_new((obj), (key), (v)))                                                \
            goto out;                                                                              \
    } while (0)

char *sc_result_to_json(const sc_result_t *res, size_t *len)
{
    json_t *o = NULL; /* new: the result object; children are stolen into it */
    json_t *sub;
    char *s = NULL;

    if (len)
        *len = 0;
    if (!res)
        return NULL;
    o = json_object();
    if (!o)
        goto out;
    SET(o, "id", json_str(res->id));
    SET(o, "tenant", json_str(res->tenant));
    SET(o, "status", json_string(res->ok ? "ok" : "error"));
    if (res->ok) {
        SET(o, "text", json_str(res->text));
        SET(o, "model", json_str(res->model));
        SET(o, "source", json_str(res->source));
        SET(o, "finish_reason", json_str(res->finish_reason));
        if (res->candidates) /* the whole answer: every part, function calls included */
            SET(o, "candidates", json_deep_copy(res->candidates));
    } else {
        SET(o, "model", json_str(res->model));
        SET(o, "source", json_str(res->source));
        sub = json_object();
        SET(o, "error", sub); /* sub stays valid: o holds the reference */
        SET(sub, "code", json_str(res->error_code));
        SET(sub, "message", json_str(res->error_message));
    }
    SET(o, "similarity", json_num_or_null(res->similarity));

    sub = json_object();
    SET(o, "usage", sub);
    SET(sub, "prompt_tokens", json_integer(res->usage.prompt_tokens));
    SET(sub, "cached_tokens", json_integer(res->usage.cached_tokens));
    SET(sub, "output_tokens", json_integer(res->usage.output_tokens));
    SET(sub, "thought_tokens", json_integer(res->usage.thought_tokens));
    if (res->usage_metadata) /* Gemini's own counts: details per modality, tool-use prompt */
        SET(sub, "metadata", json_deep_copy(res->usage_metadata));

    SET(o, "cost_usd", json_num(res->cost_usd));
    SET(o, "baseline_cost_usd", json_num(res->baseline_cost_usd));

    sub = json_object();
    SET(o, "savings", sub);
    SET(sub, "cache_usd", json_num(res->savings.cache_usd));
    SET(sub, "prune_usd", json_num(res->savings.prune_usd));
    SET(sub, "route_usd", json_num(res->savings.route_usd));
    SET(sub, "prompt_cache_usd", json_num(res->savings.prompt_cache_usd));
    SET(sub, "batch_usd", json_num(res->savings.batch_usd));

    sub = json_object();
    SET(o, "optimizations", sub);
    SET(sub, "pruned_tokens", json_integer(res->pruned_tokens));
    SET(sub, "route", json_str(res->route));
    SET(sub, "route_score", json_num_or_null(res->route_score));
    SET(sub, "route_basis", json_str(res->route_basis));
    SET(sub, "promoted", json_boolean(res->promoted));
    SET(sub, "prompt_cache", json_str(res->prompt_cache));

    SET(o, "attempts", json_integer(res->attempts));
    SET(o, "latency_ms", json_integer(res->latency_ms));
    if (res->user)
        SET(o, "user", json_str(res->user));
    if (res->agent)
        SET(o, "agent", json_str(res->agent));
    if (res->stage)
        SET(o, "stage", json_str(res->stage));
    if (res->conversation_id)
        SET(o, "conversation_id", json_str(res->conversation_id));

    s = dump(o, len);
out:
    json_decref(o);
    return s;
}

/* ---- dead letter ---- */

char *sc_base64_encode(const unsigned char *in, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, o = 0;
    char *out;

    if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    out = malloc((n + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = tbl[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int base64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

sc_status_t sc_base64_decode(const char *in, size_t n, unsigned char *out, size_t cap,
                             size_t *outlen)
{
    if (n % 4)
        return SC_ERR_INVALID_ARG;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char ch = (unsigned char)in[i + k];
            if (ch == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = base64_value(ch)) < 0) {
                return SC_ERR_INVALID_ARG;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        unsigned char b[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w};
        for (int k = 0; k < 3 - pad; k++) {
            if (o == cap)
                return SC_ERR_TOO_LARGE;
            out[o++] = b[k];
        }
    }
    *outlen = o;
    return SC_OK;
}

char *sc_deadletter_to_json(const void *orig, size_t orig_len, const char *topic, int32_t partition,
                            int64_t offset, const char *id, const char *code, const char *message,
                            size_t *len)
{
    const unsigned char *bytes = orig ? (const unsigned char *)orig : (const unsigned char *)"";
    json_t *o = NULL; /* new: the dead letter; children are stolen into it */
    json_t *sub;
    char *b64 = NULL;
    char *s = NULL;

    if (len)
        *len = 0;
    if (!orig)
        orig_len = 0;
    o = json_object();
    if (!o)
        goto out;
    if (id && id[0])
        SET(o, "id", json_str(id));
    sub = json_object();
    SET(o, "error", sub); /* borrowed from here on: o holds it */
    SET(sub, "code", json_str(code));
    SET(sub, "message", json_str(message));
    sub = json_object();
    SET(o, "source", sub);
    SET(sub, "topic", json_str(topic));
    SET(sub, "partition", json_integer(partition));
    SET(sub, "offset", json_integer(offset));
    if (utf8_valid_nonul(bytes, orig_len)) {
        SET(o, "original", json_stringn_nocheck((const char *)bytes, orig_len));
    } else {
        b64 = sc_base64_encode(bytes, orig_len);
        if (!b64)
            goto out;
        SET(o, "original_base64", json_string_nocheck(b64));
    }
    s = dump(o, len);
out:
    free(b64);
    json_decref(o);
    return s;
}
