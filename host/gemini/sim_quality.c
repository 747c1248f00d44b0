/* sim_quality.c - the simulator's quality mode (sim.h, "Quality spec"): the spec, the truth file,
 * each prompt's difficulty and final answer, right or wrong per tier, the judge's verdicts, the
 * summaries that keep identifiers, the counters and GET /sim/difficulty. Off unless a spec is
 * given. */
#include <ctype.h>
#include <errno.h>
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

/* the truth file (sim.h, "Truth file") */
#define SC_SIM_TRUTH_LINE_MAX     ((size_t)8 * 1024 * 1024) /* a 1 MiB text escaped, and more */
#define SC_SIM_TRUTH_BYTES_MAX    ((size_t)1 << 30)         /* normalised text held, all entries */
#define SC_SIM_TRUTH_SLOTS_MIN    ((size_t)1024)            /* first table size; a power of two */
#define SC_SIM_TRUTH_LINE_INITIAL ((size_t)4096)            /* first line buffer */

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

/* A reader of N of sim.h (lower-cased A-Z, whitespace runs collapsed to one space, none leading
 * or trailing) over a text, one byte at a time: the one definition the difficulty, the truth file
 * and its lookups share. */
typedef struct {
    const unsigned char *p, *end;
    bool any; /* a byte of N was given */
    bool gap; /* whitespace seen since */
} sc_sim_q_norm_t;

static sc_sim_q_norm_t sc_sim_q_norm(const char *text, size_t len)
{
    sc_sim_q_norm_t n = {(const unsigned char *)text, (const unsigned char *)text + len, false,
                         false};
    return n;
}

/* The next byte of N, or -1 at its end. */
static int sc_sim_q_norm_next(sc_sim_q_norm_t *n)
{
    while (n->p < n->end) {
        unsigned char c = *n->p;
        if (sc_sim_q_space(c)) {
            n->gap = n->any;
            n->p++;
            continue;
        }
        if (n->gap) {
            n->gap = false;
            return ' ';
        }
        n->p++;
        n->any = true;
        return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
    }
    return -1;
}

/* H of sim.h: FNV-1a 64 of N. */
static uint64_t sc_sim_q_hash(const char *text, size_t len)
{
    uint64_t h = SC_SIM_FNV_OFFSET;
    sc_sim_q_norm_t n = sc_sim_q_norm(text, len);
    for (int c = sc_sim_q_norm_next(&n); c >= 0; c = sc_sim_q_norm_next(&n)) {
        unsigned char b = (unsigned char)c;
        h = sc_sim_fnv(h, &b, 1);
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

/* ---- the truth file (sim.h, "Truth file") ---- */

/* One distinct normalised text of the file. */
typedef struct {
    uint64_t hash;                        /* H of sim.h, of text */
    char *text;                           /* owned N, not NUL-terminated; NULL: an empty slot */
    size_t len;                           /* bytes of text */
    size_t line;                          /* first line of the file that gave it */
    signed char right[SC_SIM_TIER_COUNT]; /* 1 right, 0 wrong, -1 the capability rule */
} sc_sim_truth_entry_t;

/* Open addressing with linear probing, at most half full. */
struct sc_sim_truth {
    sc_sim_truth_entry_t *slots; /* cap entries, owned */
    size_t cap;                  /* a power of two */
    size_t len;                  /* entries held */
    size_t bytes;                /* text held over all entries */
};

void sc_sim_truth_free(sc_sim_truth_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].text);
    free(t->slots);
    free(t);
}

size_t sc_sim_truth_lines(const sc_sim_truth_t *t)
{
    return t ? t->len : 0;
}

/* Does text (len bytes, not normalised) normalise to e's text? */
static bool sc_sim_truth_same(const sc_sim_truth_entry_t *e, const char *text, size_t len)
{
    sc_sim_q_norm_t n = sc_sim_q_norm(text, len);
    size_t i = 0;
    for (int c = sc_sim_q_norm_next(&n); c >= 0; c = sc_sim_q_norm_next(&n), i++)
        if (i >= e->len || (unsigned char)e->text[i] != (unsigned)c)
            return false;
    return i == e->len;
}

/* The entry whose N equals the N of text (len bytes, hash h = its H), or NULL. NULL t ok. */
static const sc_sim_truth_entry_t *sc_sim_truth_find(const sc_sim_truth_t *t, const char *text,
                                                     size_t len, uint64_t h)
{
    if (!t)
        return NULL;
    for (size_t i = (size_t)h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        const sc_sim_truth_entry_t *e = &t->slots[i];
        if (!e->text)
            return NULL;
        if (e->hash == h && sc_sim_truth_same(e, text, len))
            return e;
    }
}

/* The slot for (h, norm) in slots (cap of them): its entry, or the empty slot it goes to. */
static sc_sim_truth_entry_t *sc_sim_truth_slot(sc_sim_truth_entry_t *slots, size_t cap, uint64_t h,
                                               const char *norm, size_t len)
{
    for (size_t i = (size_t)h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        sc_sim_truth_entry_t *e = &slots[i];
        if (!e->text || (e->hash == h && e->len == len && memcmp(e->text, norm, len) == 0))
            return e;
    }
}

/* Double the table. @return false when out of memory (the table is unchanged). */
static bool sc_sim_truth_grow(sc_sim_truth_t *t)
{
    size_t cap = t->cap * 2;
    sc_sim_truth_entry_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].text)
            *sc_sim_truth_slot(slots, cap, t->slots[i].hash, t->slots[i].text, t->slots[i].len) =
                t->slots[i];
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return true;
}

/* Read one line, without its '\n', into *buf (*cap bytes, grown up to SC_SIM_TRUTH_LINE_MAX + 1).
 * @return false at the end of the file (or on a read error: see ferror); *too_long when the line
 * is longer than the bound (the rest of it is read and dropped). */
static bool sc_sim_truth_read_line(FILE *f, char **buf, size_t *cap, size_t *len, bool *too_long)
{
    int c = EOF;
    bool any = false;
    *len = 0;
    *too_long = false;
    while ((c = getc_unlocked(f)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (*too_long)
            continue;
        if (*len >= SC_SIM_TRUTH_LINE_MAX) {
            *too_long = true;
            continue;
        }
        if (*len + 1 >= *cap) {
            size_t ncap = *cap ? *cap * 2 : SC_SIM_TRUTH_LINE_INITIAL;
            if (ncap > SC_SIM_TRUTH_LINE_MAX + 1)
                ncap = SC_SIM_TRUTH_LINE_MAX + 1;
            char *nb = realloc(*buf, ncap);
            if (!nb) {
                *too_long = true; /* no memory for it: refused as too long */
                continue;
            }
            *buf = nb;
            *cap = ncap;
        }
        (*buf)[(*len)++] = (char)c;
    }
    return any;
}

/* Parse one line (len bytes at s) into text (borrowed from *doc) and right[].
 * @return false with the reason in why (whylen bytes). @remark the caller frees *doc. */
static bool sc_sim_truth_parse_line(const char *s, size_t len, json_t **doc, const char **text,
                                    size_t *text_len, signed char right[SC_SIM_TIER_COUNT],
                                    char *why, size_t whylen)
{
    json_error_t jerr;
    *doc = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr); /* new reference */
    if (!*doc) {
        snprintf(why, whylen, "not JSON: %s (column %d)", jerr.text, jerr.column);
        return false;
    }
    json_t *t = json_object_get(*doc, "text"), *r = json_object_get(*doc, "right"); /* borrowed */
    if (!json_is_object(*doc) || !json_is_string(t) || !json_is_object(r) ||
        json_object_size(*doc) != 2) {
        snprintf(why, whylen,
                 "expected an object with exactly the members \"text\" (a string) and \"right\" "
                 "(an object)");
        return false;
    }
    if (json_string_length(t) > SC_GEMINI_SIM_TRUTH_TEXT_MAX) {
        snprintf(why, whylen, "text longer than %u bytes", SC_GEMINI_SIM_TRUTH_TEXT_MAX);
        return false;
    }
    const char *key;
    json_t *v;
    for (int i = 0; i < SC_SIM_TIER_COUNT; i++)
        right[i] = -1;
    json_object_foreach(r, key, v)
    {
        int tier = -1;
        for (int i = 0; i < SC_SIM_TIER_COUNT; i++)
            if (strcmp(key, sc_sim_q_tier_names[i]) == 0)
                tier = i;
        if (tier < 0) {
            snprintf(why, whylen, "right: unknown tier \"%.64s\" (known: lite, cheap, strong)",
                     key);
            return false;
        }
        if (!json_is_boolean(v)) {
            snprintf(why, whylen, "right.%s: expected true or false", key);
            return false;
        }
        right[tier] = json_is_true(v) ? 1 : 0;
    }
    *text = json_string_value(t);
    *text_len = json_string_length(t);
    return true;
}

/* Add (text, right) of line to t. @return SC_OK, or an error with the reason in why. */
static sc_status_t sc_sim_truth_add(sc_sim_truth_t *t, const char *text, size_t len,
                                    const signed char right[SC_SIM_TIER_COUNT], size_t line,
                                    char *why, size_t whylen)
{
    char *norm = malloc(len ? len : 1); /* N is never longer than the text */
    if (!norm) {
        snprintf(why, whylen, "out of memory");
        return SC_ERR_NOMEM;
    }
    size_t n = 0;
    uint64_t h = SC_SIM_FNV_OFFSET;
    sc_sim_q_norm_t it = sc_sim_q_norm(text, len);
    for (int c = sc_sim_q_norm_next(&it); c >= 0; c = sc_sim_q_norm_next(&it)) {
        norm[n] = (char)c;
        h = sc_sim_fnv(h, &norm[n], 1);
        n++;
    }
    sc_sim_truth_entry_t *e = sc_sim_truth_slot(t->slots, t->cap, h, norm, n);
    if (e->text) {
        free(norm);
        for (int i = 0; i < SC_SIM_TIER_COUNT; i++) {
            if (right[i] >= 0 && e->right[i] >= 0 && right[i] != e->right[i]) {
                snprintf(why, whylen, "right.%s contradicts line %zu, whose text is the same",
                         sc_sim_q_tier_names[i], e->line);
                return SC_ERR_INVALID_ARG;
            }
            if (right[i] >= 0)
                e->right[i] = right[i];
        }
        return SC_OK;
    }
    if (n > SC_SIM_TRUTH_BYTES_MAX - t->bytes) {
        free(norm);
        snprintf(why, whylen, "the texts hold more than %zu bytes in all", SC_SIM_TRUTH_BYTES_MAX);
        return SC_ERR_TOO_LARGE;
    }
    if ((t->len + 1) * 2 > t->cap) {
        if (!sc_sim_truth_grow(t)) {
            free(norm);
            snprintf(why, whylen, "out of memory");
            return SC_ERR_NOMEM;
        }
        e = sc_sim_truth_slot(t->slots, t->cap, h, norm, n);
    }
    e->hash = h;
    e->text = norm;
    e->len = n;
    e->line = line;
    memcpy(e->right, right, sizeof e->right);
    t->len++;
    t->bytes += n;
    return SC_OK;
}

/* Only whitespace (or nothing)? */
static bool sc_sim_truth_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!sc_sim_q_space((unsigned char)s[i]))
            return false;
    return true;
}

sc_status_t sc_sim_truth_load(const char *path, sc_sim_truth_t **out, char *errbuf, size_t errlen)
{
    sc_status_t st = SC_OK;
    sc_sim_truth_t *t = NULL;
    char *buf = NULL, why[SC_SIM_Q_REASON_MAX * 2];
    size_t cap = 0, len = 0, line = 0, lines = 0;
    bool too_long = false;
    json_t *doc = NULL;
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        sc_sim_errf(errbuf, errlen, "quality truth file '%s': %s", path, strerror(errno));
        return SC_ERR_IO;
    }
    t = calloc(1, sizeof *t);
    if (t) {
        t->cap = SC_SIM_TRUTH_SLOTS_MIN;
        t->slots = calloc(t->cap, sizeof *t->slots);
    }
    if (!t || !t->slots) {
        sc_sim_errf(errbuf, errlen, "quality truth file '%s': out of memory", path);
        st = SC_ERR_NOMEM;
        goto out;
    }
    while (sc_sim_truth_read_line(f, &buf, &cap, &len, &too_long)) {
        line++;
        if (too_long) {
            sc_sim_errf(errbuf, errlen, "quality truth file '%s' line %zu: longer than %zu bytes",
                        path, line, SC_SIM_TRUTH_LINE_MAX);
            st = SC_ERR_TOO_LARGE;
            goto out;
        }
        if (sc_sim_truth_blank(buf, len))
            continue;
        if (++lines > SC_GEMINI_SIM_TRUTH_LINES_MAX) {
            sc_sim_errf(errbuf, errlen, "quality truth file '%s' line %zu: more than %u lines",
                        path, line, SC_GEMINI_SIM_TRUTH_LINES_MAX);
            st = SC_ERR_TOO_LARGE;
            goto out;
        }
        const char *text = NULL;
        size_t text_len = 0;
        signed char right[SC_SIM_TIER_COUNT];
        json_decref(doc);
        doc = NULL;
        if (!sc_sim_truth_parse_line(buf, len, &doc, &text, &text_len, right, why, sizeof why)) {
            sc_sim_errf(errbuf, errlen, "quality truth file '%s' line %zu: %s", path, line, why);
            st = SC_ERR_INVALID_ARG;
            goto out;
        }
        st = sc_sim_truth_add(t, text, text_len, right, line, why, sizeof why);
        if (st != SC_OK) {
            sc_sim_errf(errbuf, errlen, "quality truth file '%s' line %zu: %s", path, line, why);
            goto out;
        }
    }
    if (ferror(f)) {
        sc_sim_errf(errbuf, errlen, "quality truth file '%s' line %zu: read error", path, line + 1);
        st = SC_ERR_IO;
        goto out;
    }
    *out = t;
    t = NULL;
out:
    json_decref(doc);
    free(buf);
    fclose(f);
    sc_sim_truth_free(t);
    return st;
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
    const sc_sim_truth_entry_t *truth; /* borrowed from the truth file, NULL when not in it */
} sc_sim_q_prompt_t;

static void sc_sim_q_prompt(const char *text, size_t len, sc_sim_q_prompt_t *p)
{
    p->h = sc_sim_q_hash(text, len);
    p->difficulty = sc_sim_q_unit_of(p->h);
    p->kind = sc_sim_q_kind(text, len, &p->options);
    uint64_t s = p->h;
    p->right = (size_t)(sc_sim_splitmix64(&s) % p->options);
    sc_sim_q_option(p->kind, p->right, p->right_x);
    p->truth = NULL; /* looked up only where right or wrong is decided */
}

/* Is tier's answer to p right: the truth file's word when it has one, else capability >=
 * difficulty. */
static bool sc_sim_q_right(const sc_sim_quality_t *q, sc_sim_tier_t tier,
                           const sc_sim_q_prompt_t *p)
{
    if (p->truth && p->truth->right[tier] >= 0)
        return p->truth->right[tier] == 1;
    return q->cap[tier] >= p->difficulty;
}

/* The final answer model gives: right when sc_sim_q_right says so, else its own wrong option. */
static bool sc_sim_q_final(const sc_gemini_sim_t *sim, const char *model,
                           const sc_sim_q_prompt_t *p, char out[SC_SIM_Q_ANSWER_MAX])
{
    bool right = sc_sim_q_right(&sim->quality, sc_sim_tier(model), p);
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
    p.truth = sc_sim_truth_find(sim->quality.truth, user, user_len, p.h);
    if (p.truth)
        atomic_fetch_add(&sim->q_truth_hits, 1);
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
        return json_pack("{s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "right", right,
                         "wrong", wrong, "judge_requests", (json_int_t)atomic_load(&sim->q_judge),
                         "judge_malformed", (json_int_t)atomic_load(&sim->q_judge_malformed),
                         "judge_declined", (json_int_t)atomic_load(&sim->q_judge_declined),
                         "summaries", (json_int_t)atomic_load(&sim->q_summaries),
                         "summary_tokens_kept", (json_int_t)atomic_load(&sim->q_tokens_kept),
                         "summary_tokens_dropped", (json_int_t)atomic_load(&sim->q_tokens_dropped),
                         "truth_lines", (json_int_t)sc_sim_truth_lines(sim->quality.truth),
                         "truth_hits", (json_int_t)atomic_load(&sim->q_truth_hits));
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
    p.truth = sc_sim_truth_find(c->sim->quality.truth, text, strlen(text), p.h);
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
                                     json_boolean(sc_sim_q_right(q, (sc_sim_tier_t)t, &p))) == 0;
        ok = ok && json_object_set(doc, "capability", cap) == 0 &&
             json_object_set(doc, "right", right) == 0 &&
             json_object_set_new(doc, "truth", json_boolean(p.truth != NULL)) == 0;
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
