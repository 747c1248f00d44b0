/* scope.c - the cache's scope hash, the exact layer's text normalisation and its keys. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "host/cache/cache_internal.h"

/* ---- scope ---- */

/* Each field: a tag, a presence byte, a 64-bit length, the bytes; so no two different field
 * sequences can feed the same stream. */
static void scope_field(XXH3_state_t *st, unsigned char tag, const void *p, size_t len)
{
    unsigned char hdr[10];
    uint64_t l = len;
    hdr[0] = tag;
    hdr[1] = p != NULL;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (unsigned char)(l >> (8 * i));
    XXH3_64bits_update(st, hdr, sizeof(hdr));
    if (p && len)
        XXH3_64bits_update(st, p, len);
}

uint64_t sc_cache_scope(const sc_request_t *req, const char *tier)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    const char *t = req->tenant;
    scope_field(&st, 'T', t, t ? strlen(t) : 0);
    scope_field(&st, 'M', tier, tier ? strlen(tier) : 0);
    scope_field(&st, 'S', req->system, req->system ? strlen(req->system) : 0);
    if (req->has_temperature) {
        /* rounded to 2 decimals: 0.2 and 0.2000001 are the same setting */
        int64_t centi = (int64_t)llround(req->temperature * 100.0);
        unsigned char b[8];
        for (int i = 0; i < 8; i++)
            b[i] = (unsigned char)((uint64_t)centi >> (8 * i));
        scope_field(&st, 'P', b, sizeof(b));
    } else {
        scope_field(&st, 'P', NULL, 0);
    }
    const char *mime = req->response_mime_type;
    scope_field(&st, 'R', mime, mime ? strlen(mime) : 0);
    /* Gemini's own shape: everything besides the contents that changes the answer (tools, tool
     * config, schema, thinking, safety, every generation setting), and the media of the last
     * turn by content hash (the earlier turns' are in their text below) */
    if (req->native && req->n_turns) {
        const char *g = req->native_scope;
        scope_field(&st, 'G', g, g ? strlen(g) : 0);
        const sc_turn_t *last = &req->turns[req->n_turns - 1];
        const char *m = last->content;
        while (m && (m = strstr(m, "[media ")) != NULL) {
            const char *end = strchr(m, ']');
            if (!end)
                break;
            scope_field(&st, 'X', m, (size_t)(end - m));
            m = end;
        }
    }
    /* the earlier conversation: every turn before the last one (the embedded user turn) */
    size_t earlier = req->n_turns ? req->n_turns - 1 : 0;
    unsigned char nb[8];
    for (int i = 0; i < 8; i++)
        nb[i] = (unsigned char)((uint64_t)earlier >> (8 * i));
    scope_field(&st, 'N', nb, sizeof(nb));
    for (size_t i = 0; i < earlier; i++) {
        const sc_turn_t *tu = &req->turns[i];
        scope_field(&st, 'r', tu->role, tu->role ? strlen(tu->role) : 0);
        scope_field(&st, 'c', tu->content, tu->content ? tu->content_len : 0);
    }
    return XXH3_64bits_digest(&st);
}

/* ---- normalisation ---- */

static int is_space_cp(utf8proc_int32_t cp)
{
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || cp == 0x85)
        return 1;
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
           cat == UTF8PROC_CATEGORY_ZP;
}

/* Collapse runs of whitespace to one space and trim, in place (the text only shrinks). */
static size_t collapse_utf8(unsigned char *s, size_t n)
{
    size_t r = 0, w = 0;
    int pending_space = 0;
    while (r < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + r, (utf8proc_ssize_t)(n - r), &cp);
        if (k <= 0) { /* cannot happen after utf8proc_map; keep the byte */
            cp = -1;
            k = 1;
        }
        if (cp >= 0 && is_space_cp(cp)) {
            pending_space = w > 0;
        } else {
            if (pending_space)
                s[w++] = ' ';
            pending_space = 0;
            memmove(s + w, s + r, (size_t)k);
            w += (size_t)k;
        }
        r += (size_t)k;
    }
    return w;
}

/* Not UTF-8: lower-case ASCII and collapse ASCII whitespace, byte by byte. */
static size_t collapse_bytes(unsigned char *s, size_t n)
{
    size_t w = 0;
    int pending_space = 0;
    for (size_t r = 0; r < n; r++) {
        unsigned char ch = s[r];
        if (ch == ' ' || (ch >= 0x09 && ch <= 0x0d)) {
            pending_space = w > 0;
            continue;
        }
        if (pending_space)
            s[w++] = ' ';
        pending_space = 0;
        s[w++] = (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + 32) : ch;
    }
    return w;
}

/* The whole normalised text. @remark the caller frees the result; NULL when out of memory. */
static char *norm_dup(const char *text, size_t len, size_t *out_len)
{
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE |
                                          UTF8PROC_CASEFOLD | UTF8PROC_IGNORE);
    if (m >= 0) {
        *out_len = collapse_utf8(dst, (size_t)m);
        dst[*out_len] = '\0';
        return (char *)dst;
    }
    if (m == UTF8PROC_ERROR_NOMEM)
        return NULL;
    char *raw = malloc(len + 1);
    if (!raw)
        return NULL;
    memcpy(raw, text, len);
    *out_len = collapse_bytes((unsigned char *)raw, len);
    raw[*out_len] = '\0';
    return raw;
}

size_t sc_cache_normalize(const char *text, size_t len, char *out, size_t cap)
{
    if (!cap)
        return 0;
    size_t n = 0;
    char *s = norm_dup(text, len, &n);
    if (!s) {
        out[0] = '\0';
        return 0;
    }
    if (n > cap - 1) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) /* not inside a character */
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    free(s);
    return n;
}

sc_status_t sc_cache_exact_key(uint64_t scope, const char *text, size_t len, sc_exact_key_t *k,
                               uint64_t *lo, uint64_t *hi)
{
    size_t n;
    char *s = norm_dup(text, len, &n);
    if (!s)
        return SC_ERR_NOMEM;
    XXH128_hash_t h = XXH3_128bits(s, n);
    free(s);
    memcpy(k->b, &scope, 8);
    memcpy(k->b + 8, &h.low64, 8);
    memcpy(k->b + 16, &h.high64, 8);
    *lo = h.low64;
    *hi = h.high64;
    return SC_OK;
}
