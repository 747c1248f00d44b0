/* verdict.c - the checkable forms of answers and their comparison, the judge call's body and the
 * parsing of its verdict, for the shadow evaluation (verdict.h). Pure functions: no I/O. */
#include "pipelines/stages/verdict.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "host/core/util.h"

#define SC_VERDICT_FNV_OFFSET 0xcbf29ce484222325ULL
#define SC_VERDICT_FNV_PRIME  0x100000001b3ULL
#define SC_VERDICT_HASH_MAX   24 /* "h:" + 16 hex digits + NUL, with room */
#define SC_VERDICT_FINAL      "final answer"
#define SC_VERDICT_ANSWER     "answer"
#define SC_VERDICT_FENCE      "```"
/* integral reals up to 2^53 in magnitude are written as integers: every one is exact */
#define SC_VERDICT_EXACT_INT  9007199254740992.0
#define SC_VERDICT_WORD_PUNCT ".,;:!?"

#define SC_JUDGE_INSTRUCTION                                                                       \
    SC_JUDGE_PREFIX                                                                                \
    "\nYou compare two answers to one prompt. The user turn is a JSON object with the members "    \
    "\"prompt\", \"answer_a\" and \"answer_b\": answer_a is the strong model's answer, answer_b "  \
    "the candidate's. Decide whether answer_a answers the prompt correctly (a_correct), whether "  \
    "answer_b does (b_correct), and whether the two agree: the same final answer, or the same "    \
    "substance when there is no single final answer (agree). Judge only what the prompt asks; "    \
    "ignore style, length and formatting. Reply with JSON only, no prose and no code fence: "      \
    "{\"a_correct\": true|false, \"b_correct\": true|false, \"agree\": true|false}."

/* ---- bytes ---- */

static int sc_verdict_is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static int sc_verdict_is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int sc_verdict_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int sc_verdict_is_letter(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char sc_verdict_lower(unsigned char c)
{
    return (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
}

/* 1 when p[0..n) starts with word (lower-case ASCII), case-insensitively. */
static int sc_verdict_ci_at(const char *p, size_t n, const char *word)
{
    size_t w = strlen(word);
    if (n < w)
        return 0;
    for (size_t i = 0; i < w; i++)
        if (sc_verdict_lower((unsigned char)p[i]) != word[i])
            return 0;
    return 1;
}

static void sc_verdict_trim_ws(const char **p, size_t *n)
{
    while (*n && sc_verdict_is_ws((unsigned char)**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n && sc_verdict_is_ws((unsigned char)(*p)[*n - 1]))
        (*n)--;
}

/* Whitespace and a ``` fence (with or without a language tag) around p[0..n). */
static void sc_verdict_unfence(const char **p, size_t *n)
{
    size_t f = strlen(SC_VERDICT_FENCE);
    sc_verdict_trim_ws(p, n);
    if (*n < f || memcmp(*p, SC_VERDICT_FENCE, f) != 0)
        return;
    const char *nl = memchr(*p, '\n', *n);
    if (nl) {
        *n -= (size_t)(nl + 1 - *p);
        *p = nl + 1;
    } else {
        *p += f;
        *n -= f;
        if (sc_verdict_ci_at(*p, *n, "json")) {
            *p += 4;
            *n -= 4;
        }
    }
    sc_verdict_trim_ws(p, n);
    if (*n >= f && memcmp(*p + *n - f, SC_VERDICT_FENCE, f) == 0)
        *n -= f;
    sc_verdict_trim_ws(p, n);
}

static uint64_t sc_verdict_fnv(const char *s, size_t n)
{
    uint64_t h = SC_VERDICT_FNV_OFFSET;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= SC_VERDICT_FNV_PRIME;
    }
    return h;
}

/* s[0..n) into canon, or its hash when it does not fit. */
static void sc_verdict_put(char *canon, size_t canon_len, const char *s, size_t n)
{
    if (!canon || canon_len == 0)
        return;
    if (n < canon_len) {
        memcpy(canon, s, n);
        canon[n] = '\0';
        return;
    }
    char h[SC_VERDICT_HASH_MAX];
    snprintf(h, sizeof h, "h:%016" PRIx64, sc_verdict_fnv(s, n));
    sc_strlcpy(canon, h, canon_len);
}

/* ---- the final answer line ---- */

/* The answer in one line (l[0..n)) into *x, *xn: after its last "final answer" followed by ':'
 * or " is", else after a leading "Answer:". @return 1 when the line is a final answer line. */
static int sc_verdict_line(const char *l, size_t n, const char **x, size_t *xn)
{
    size_t fl = strlen(SC_VERDICT_FINAL);
    int found = 0;
    for (size_t i = 0; i + fl <= n; i++) {
        if (!sc_verdict_ci_at(l + i, n - i, SC_VERDICT_FINAL))
            continue;
        size_t j = i + fl;
        while (j < n && l[j] == '*') /* "**Final answer**: 42" */
            j++;
        if (j < n && l[j] == ':') {
            j++;
        } else if (j + 3 <= n && l[j] == ' ' && sc_verdict_ci_at(l + j + 1, n - j - 1, "is") &&
                   (j + 3 == n || !sc_verdict_is_alnum((unsigned char)l[j + 3]))) {
            j += 3;
            size_t k = j; /* "The final answer is: 5" */
            while (k < n && (l[k] == ' ' || l[k] == '*'))
                k++;
            if (k < n && l[k] == ':')
                j = k + 1;
        } else {
            continue;
        }
        *x = l + j;
        *xn = n - j;
        found = 1;
    }
    if (found)
        return 1;
    size_t i = 0;
    while (i < n && (l[i] == ' ' || l[i] == '\t' || l[i] == '*' || l[i] == '#'))
        i++;
    if (!sc_verdict_ci_at(l + i, n - i, SC_VERDICT_ANSWER))
        return 0;
    i += strlen(SC_VERDICT_ANSWER);
    while (i < n && l[i] == '*')
        i++;
    if (i >= n || l[i] != ':')
        return 0;
    *x = l + i + 1;
    *xn = n - i - 1;
    return 1;
}

/* The last final answer line of t[0..n): its answer into *x, *xn. @return 1 when there is one. */
static int sc_verdict_final_line(const char *t, size_t n, const char **x, size_t *xn)
{
    int found = 0;
    size_t start = 0;
    while (start <= n) {
        const char *nl = memchr(t + start, '\n', n - start);
        size_t end = nl ? (size_t)(nl - t) : n;
        if (sc_verdict_line(t + start, end - start, x, xn))
            found = 1;
        start = end + 1;
    }
    return found;
}

/* The index of the bracket closing the one at p[0], or n when none. */
static size_t sc_verdict_closing(const char *p, size_t n)
{
    char open = p[0], close = open == '(' ? ')' : ']';
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == open)
            depth++;
        else if (p[i] == close && --depth == 0)
            return i;
    }
    return n;
}

/* Trim X of whitespace, '*', backticks, surrounding quotes, a trailing '.' and surrounding
 * parentheses or brackets, until nothing changes. */
static void sc_verdict_trim_x(const char **p, size_t *n)
{
    size_t before;
    do {
        before = *n;
        while (*n && (sc_verdict_is_ws((unsigned char)**p) || **p == '*' || **p == '`')) {
            (*p)++;
            (*n)--;
        }
        while (*n && (sc_verdict_is_ws((unsigned char)(*p)[*n - 1]) || (*p)[*n - 1] == '*' ||
                      (*p)[*n - 1] == '`'))
            (*n)--;
        if (*n && (*p)[*n - 1] == '.')
            (*n)--;
        if (*n >= 2 &&
            ((**p == '"' && (*p)[*n - 1] == '"') || (**p == '\'' && (*p)[*n - 1] == '\''))) {
            (*p)++;
            *n -= 2;
        }
        if (*n >= 2 && (**p == '(' || **p == '[') && sc_verdict_closing(*p, *n) == *n - 1) {
            (*p)++;
            *n -= 2;
        }
    } while (*n != before);
}

/* ---- classifying X ---- */

/* A number's canonical form into out (SC_ANSWER_FORM_MAX bytes). @return its length, or 0 when x
 * is not a number. */
static size_t sc_verdict_number(const char *x, size_t n, char *out)
{
    size_t i = 0, o = 0;
    int neg = 0, signed_ = 0;
    if (n + 2 >= SC_ANSWER_FORM_MAX) /* room for a leading "0" and the NUL */
        return 0;
    if (i < n && (x[i] == '+' || x[i] == '-')) {
        neg = x[i] == '-';
        signed_ = 1;
        i++;
    }
    if (i < n && x[i] == '$')
        i++;
    if (!signed_ && i < n && (x[i] == '+' || x[i] == '-')) {
        neg = x[i] == '-';
        i++;
    }
    char ip[SC_ANSWER_FORM_MAX];
    size_t in = 0, run = 0;
    int grouped = 0;
    while (i < n && sc_verdict_is_digit((unsigned char)x[i])) {
        ip[in++] = x[i++];
        run++;
        if (i < n && x[i] == ',') { /* thousands: 1-3 digits, then groups of exactly 3 */
            if ((grouped && run != 3) || (!grouped && run > 3))
                return 0;
            grouped = 1;
            run = 0;
            i++;
            if (i >= n || !sc_verdict_is_digit((unsigned char)x[i]))
                return 0;
        }
    }
    if (grouped && run != 3)
        return 0;
    const char *fp = NULL;
    size_t fn = 0;
    if (i < n && x[i] == '.') {
        i++;
        fp = x + i;
        while (i < n && sc_verdict_is_digit((unsigned char)x[i])) {
            i++;
            fn++;
        }
        if (fn == 0)
            return 0;
    }
    if (in == 0 && fn == 0)
        return 0;
    if (i < n && x[i] == '%')
        i++;
    if (i != n)
        return 0;
    size_t lead = 0;
    while (lead + 1 < in && ip[lead] == '0')
        lead++;
    while (fn && fp[fn - 1] == '0')
        fn--;
    int zero = (in == 0 || (in - lead == 1 && ip[lead] == '0')) && fn == 0;
    if (neg && !zero)
        out[o++] = '-';
    if (in == 0) {
        out[o++] = '0';
    } else {
        memcpy(out + o, ip + lead, in - lead);
        o += in - lead;
    }
    if (fn) {
        out[o++] = '.';
        memcpy(out + o, fp, fn);
        o += fn;
    }
    out[o] = '\0';
    return o;
}

/* A word's canonical form into out (SC_ANSWER_FORM_MAX bytes). @return its length, or 0 when
 * empty or longer than SC_ANSWER_WORD_MAX. */
static size_t sc_verdict_word(const char *x, size_t n, char *out)
{
    size_t o = 0;
    int space = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)x[i];
        if (sc_verdict_is_ws(c)) {
            space = o > 0;
            continue;
        }
        if (o + (size_t)space + 1 >= SC_ANSWER_FORM_MAX)
            return 0; /* far over SC_ANSWER_WORD_MAX */
        if (space)
            out[o++] = ' ';
        space = 0;
        out[o++] = sc_verdict_lower(c);
    }
    while (o && (strchr(SC_VERDICT_WORD_PUNCT, out[o - 1]) || out[o - 1] == ' '))
        o--;
    if (o == 0 || o > SC_ANSWER_WORD_MAX)
        return 0;
    out[o] = '\0';
    return o;
}

/* The form of X (already trimmed), its canonical value into out (SC_ANSWER_FORM_MAX bytes). */
static sc_answer_form_t sc_verdict_classify(const char *x, size_t n, char *out, size_t *on)
{
    *on = 0;
    out[0] = '\0';
    const char *letter = NULL;
    if (n == 1)
        letter = x;
    else if (n == 2 && (x[1] == ')' || x[1] == '.'))
        letter = x;
    else if (n == 3 && x[0] == '(' && x[2] == ')')
        letter = x + 1;
    if (letter && sc_verdict_is_letter((unsigned char)*letter)) {
        out[0] = sc_verdict_lower((unsigned char)*letter);
        out[1] = '\0';
        *on = 1;
        return SC_FORM_CHOICE;
    }
    if ((*on = sc_verdict_number(x, n, out)) > 0)
        return SC_FORM_NUMBER;
    if ((*on = sc_verdict_word(x, n, out)) > 0)
        return SC_FORM_WORD;
    out[0] = '\0';
    return SC_FORM_NONE;
}

/* The form of t[0..n) by its final answer line; short: a text without one is classified whole
 * when short enough. */
static sc_answer_form_t sc_verdict_text_form(const char *t, size_t n, int short_, char *out,
                                             size_t *on)
{
    const char *x = NULL;
    size_t xn = 0;
    *on = 0;
    out[0] = '\0';
    if (!sc_verdict_final_line(t, n, &x, &xn)) {
        if (!short_)
            return SC_FORM_NONE;
        x = t;
        xn = n;
        sc_verdict_trim_ws(&x, &xn);
        if (xn > SC_ANSWER_SHORT_MAX)
            return SC_FORM_NONE;
    }
    sc_verdict_trim_x(&x, &xn);
    return sc_verdict_classify(x, xn, out, on);
}

/* ---- JSON answers ---- */

static int sc_verdict_cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first string in v (borrowed; depth first, keys sorted) with a final answer form. */
static sc_answer_form_t sc_verdict_json_final(const json_t *v, char *out, size_t *on)
{
    sc_answer_form_t f = SC_FORM_NONE;
    if (json_is_string(v))
        return sc_verdict_text_form(json_string_value(v), json_string_length(v), 0, out, on);
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && f == SC_FORM_NONE; i++)
            f = sc_verdict_json_final(json_array_get(v, i), out, on);
        return f;
    }
    if (!json_is_object(v) || json_object_size(v) == 0)
        return SC_FORM_NONE;
    const char **keys = malloc(json_object_size(v) * sizeof(*keys));
    if (!keys) /* out of memory: no final answer found, the JSON form decides */
        return SC_FORM_NONE;
    size_t nk = 0;
    const char *key;
    json_t *member;
    json_object_foreach((json_t *)v, key, member)
    {
        keys[nk++] = key;
    }
    qsort(keys, nk, sizeof(*keys), sc_verdict_cmp_keys);
    for (size_t i = 0; i < nk && f == SC_FORM_NONE; i++)
        f = sc_verdict_json_final(json_object_get(v, keys[i]), out, on);
    free(keys);
    return f;
}

/* Integral reals in v (borrowed, changed in place) become integers, so 1.0 compares as 1.
 * @return 0, -1 on allocation failure. */
static int sc_verdict_json_ints(json_t *v)
{
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i); /* borrowed */
            if (json_is_real(e)) {
                double r = json_real_value(e);
                if (r >= -SC_VERDICT_EXACT_INT && r <= SC_VERDICT_EXACT_INT &&
                    r == (double)(json_int_t)r &&
                    json_array_set_new(v, i, json_integer((json_int_t)r)) != 0)
                    return -1;
            } else if (sc_verdict_json_ints(e) != 0) {
                return -1;
            }
        }
        return 0;
    }
    if (!json_is_object(v))
        return 0;
    const char *key;
    json_t *member; /* borrowed */
    json_object_foreach(v, key, member)
    {
        if (json_is_real(member)) {
            double r = json_real_value(member);
            /* replacing a member's value leaves the keys, and so the iteration, as they are */
            if (r >= -SC_VERDICT_EXACT_INT && r <= SC_VERDICT_EXACT_INT &&
                r == (double)(json_int_t)r &&
                json_object_set_new(v, key, json_integer((json_int_t)r)) != 0)
                return -1;
        } else if (sc_verdict_json_ints(member) != 0) {
            return -1;
        }
    }
    return 0;
}

static sc_answer_form_t sc_verdict_json_form(const char *text, char *canon, size_t canon_len)
{
    sc_answer_form_t f = SC_FORM_NONE;
    const char *p = text;
    size_t n = strlen(text);
    char *dump = NULL;
    char out[SC_ANSWER_FORM_MAX];
    size_t on = 0;
    sc_verdict_unfence(&p, &n);
    json_t *doc = json_loadb(p, n, JSON_DECODE_ANY, NULL); /* new reference, released at out */
    if (!doc)
        goto out;
    f = sc_verdict_json_final(doc, out, &on);
    if (f != SC_FORM_NONE) {
        sc_verdict_put(canon, canon_len, out, on);
        goto out;
    }
    if (json_is_real(doc)) { /* a bare real cannot be replaced in place */
        double r = json_real_value(doc);
        if (r >= -SC_VERDICT_EXACT_INT && r <= SC_VERDICT_EXACT_INT && r == (double)(json_int_t)r) {
            json_decref(doc);
            doc = json_integer((json_int_t)r);
            if (!doc)
                goto out;
        }
    } else if (sc_verdict_json_ints(doc) != 0) {
        goto out;
    }
    dump = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    if (!dump)
        goto out;
    sc_verdict_put(canon, canon_len, dump, strlen(dump));
    f = SC_FORM_JSON;
out:
    free(dump);
    json_decref(doc);
    return f;
}

/* ---- the answer's form and the comparison ---- */

sc_answer_form_t sc_answer_form(const char *text, int json, char *canon, size_t canon_len)
{
    sc_verdict_put(canon, canon_len, "", 0);
    if (!text)
        return SC_FORM_NONE;
    if (json)
        return sc_verdict_json_form(text, canon, canon_len);
    char out[SC_ANSWER_FORM_MAX];
    size_t on = 0;
    sc_answer_form_t f = sc_verdict_text_form(text, strlen(text), 1, out, &on);
    if (f != SC_FORM_NONE)
        sc_verdict_put(canon, canon_len, out, on);
    return f;
}

sc_compare_t sc_answers_compare(const char *reference, const char *candidate, int json,
                                const char **kind)
{
    char a[SC_ANSWER_FORM_MAX], b[SC_ANSWER_FORM_MAX];
    sc_answer_form_t fa = sc_answer_form(reference, json, a, sizeof a);
    sc_answer_form_t fb = sc_answer_form(candidate, json, b, sizeof b);
    if (fa == SC_FORM_NONE || fa != fb) {
        if (kind)
            *kind = "judge";
        return SC_COMPARE_UNCHECKABLE;
    }
    if (kind)
        *kind = fa == SC_FORM_JSON ? "json" : "final-answer";
    return strcmp(a, b) == 0 ? SC_COMPARE_SAME : SC_COMPARE_DIFFERENT;
}

/* ---- the judge ---- */

char *sc_judge_body(const char *prompt, size_t prompt_len, const char *reference, size_t ref_len,
                    const char *candidate, size_t cand_len, size_t *len)
{
    json_t *pair = NULL, *root = NULL;
    char *user = NULL, *out = NULL;
    if ((!prompt && prompt_len) || (!reference && ref_len) || (!candidate && cand_len))
        goto out;
    /* new reference, released at out; json_pack checks the UTF-8 of the s% strings */
    pair = json_pack("{s:s%, s:s%, s:s%}", "prompt", prompt ? prompt : "", prompt_len, "answer_a",
                     reference ? reference : "", ref_len, "answer_b", candidate ? candidate : "",
                     cand_len);
    if (!pair)
        goto out;
    user = json_dumps(pair, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!user)
        goto out;
    /* new reference, released at out */
    root =
        json_pack("{s:{s:[{s:s}]}, s:[{s:s, s:[{s:s}]}], s:{s:s, s:{s:s, s:{s:{s:s}, s:{s:s}, "
                  "s:{s:s}}, s:[s, s, s]}, s:f}}",
                  "systemInstruction", "parts", "text", SC_JUDGE_INSTRUCTION, "contents", "role",
                  "user", "parts", "text", user, "generationConfig", "responseMimeType",
                  "application/json", "responseSchema", "type", "OBJECT", "properties", "a_correct",
                  "type", "BOOLEAN", "b_correct", "type", "BOOLEAN", "agree", "type", "BOOLEAN",
                  "required", "a_correct", "b_correct", "agree", "temperature", 0.0);
    if (!root)
        goto out;
    out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (out && len)
        *len = strlen(out);
out:
    json_decref(root);
    json_decref(pair);
    free(user);
    return out;
}

int sc_judge_verdict(const char *text, int *a_ok, int *b_ok, int *agree)
{
    int rc = -1;
    if (!text)
        return -1;
    const char *p = text;
    size_t n = strlen(text);
    sc_verdict_unfence(&p, &n);
    json_t *doc = json_loadb(p, n, 0, NULL); /* new reference, released at out */
    if (!json_is_object(doc))
        goto out;
    json_t *a = json_object_get(doc, "a_correct"); /* borrowed, all three */
    json_t *b = json_object_get(doc, "b_correct");
    json_t *g = json_object_get(doc, "agree");
    if (!json_is_boolean(a) || !json_is_boolean(b) || !json_is_boolean(g))
        goto out;
    if (a_ok)
        *a_ok = json_is_true(a);
    if (b_ok)
        *b_ok = json_is_true(b);
    if (agree)
        *agree = json_is_true(g);
    rc = 0;
out:
    json_decref(doc);
    return rc;
}
