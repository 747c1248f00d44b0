/* jschema.c - check, validate and instantiate Gemini response and parameter schemas (jschema.h). */
#include "host/core/jschema.h"

#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "host/core/util.h"

#define SC_JSCHEMA_PATH_MAX     512  /* bytes of a keyword or instance path in an error */
#define SC_JSCHEMA_REASON_MAX   256  /* bytes of the reason after the path */
#define SC_JSCHEMA_KW_MAX       32   /* keywords of the larger dialect table */
#define SC_JSCHEMA_COUNT_DIGITS 18   /* digits of an int64 count sent as a string (fits in int64) */
#define SC_JSCHEMA_PATTERN_MAX  1024 /* bytes of a pattern, after translation, that is compiled */
/* what regcomp may be given (pattern_cost_ok), about 10 MB and 30 ms at most: the nodes it
 * builds, its epsilon-closure work, repetitions nested over something that can match "" */
#define SC_JSCHEMA_PATTERN_COST_MAX       16384u
#define SC_JSCHEMA_PATTERN_CLOSURE_MAX    4000000u
#define SC_JSCHEMA_PATTERN_EMPTY_REPS_MAX 1u
/* subschemas applied in one chain: $ref, allOf, anyOf and oneOf hops do not nest the instance,
 * so a chain may be longer than the instance is deep */
#define SC_JSCHEMA_APPLY_MAX      (4 * SC_JSCHEMA_DEPTH_MAX)
#define SC_JSCHEMA_STEPS_MAX      1000000L /* subschema applications of one validation */
#define SC_JSCHEMA_GEN_NODES_MAX  100000L  /* subschemas visited while making one instance */
#define SC_JSCHEMA_GEN_REFS_FULL  4        /* $ref hops after which only what is required is made */
#define SC_JSCHEMA_GEN_TRIES      16       /* attempts at a string that matches a pattern */
#define SC_JSCHEMA_GEN_STRING_MAX 4096     /* longest string made */
#define SC_JSCHEMA_GEN_SPAN       100      /* width of a number range with an open end */
#define SC_JSCHEMA_GEN_GRID       10000.0  /* a number is made at one of these steps of its range */
#define SC_JSCHEMA_INT_LIMIT      9007199254740992.0 /* 2^53: integers made stay exact as doubles */

/* ---- types ---- */

enum {
    SC_JT_STRING = 1u << 0,
    SC_JT_NUMBER = 1u << 1,
    SC_JT_INTEGER = 1u << 2,
    SC_JT_BOOLEAN = 1u << 3,
    SC_JT_ARRAY = 1u << 4,
    SC_JT_OBJECT = 1u << 5,
    SC_JT_NULL = 1u << 6,
};

static const struct {
    const char *name;  /* JSON Schema spelling */
    const char *upper; /* Gemini Schema spelling, as the API echoes it */
    const char *phrase;
    unsigned bit;
} sc_jschema_types[] = {
    {"string", "STRING", "a string", SC_JT_STRING},
    {"number", "NUMBER", "a number", SC_JT_NUMBER},
    {"integer", "INTEGER", "an integer", SC_JT_INTEGER},
    {"boolean", "BOOLEAN", "a boolean", SC_JT_BOOLEAN},
    {"array", "ARRAY", "an array", SC_JT_ARRAY},
    {"object", "OBJECT", "an object", SC_JT_OBJECT},
    {"null", "NULL", "null", SC_JT_NULL},
};

/* The type's index in sc_jschema_types, or -1. */
static int type_index(const char *name, int icase)
{
    for (size_t i = 0; i < SC_ARRAY_LEN(sc_jschema_types); i++)
        if ((icase ? strcasecmp : strcmp)(name, sc_jschema_types[i].name) == 0)
            return (int)i;
    return -1;
}

/* The types a "type" value (string or array, any case) allows; 0 when it names none. */
static unsigned type_mask(const json_t *t)
{
    unsigned m = 0;
    if (json_is_string(t)) {
        int i = type_index(json_string_value(t), 1);
        return i < 0 ? 0 : sc_jschema_types[i].bit;
    }
    size_t k;
    const json_t *e;
    json_array_foreach(t, k, e) {
        int i = json_is_string(e) ? type_index(json_string_value(e), 1) : -1;
        if (i >= 0)
            m |= sc_jschema_types[i].bit;
    }
    return m;
}

static int is_integral(const json_t *v)
{
    if (json_is_integer(v))
        return 1;
    double x = json_real_value(v);
    return json_is_real(v) && isfinite(x) && floor(x) == x;
}

static int type_accepts(unsigned mask, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return (mask & SC_JT_OBJECT) != 0;
    case JSON_ARRAY:
        return (mask & SC_JT_ARRAY) != 0;
    case JSON_STRING:
        return (mask & SC_JT_STRING) != 0;
    case JSON_INTEGER:
    case JSON_REAL:
        return (mask & SC_JT_NUMBER) || ((mask & SC_JT_INTEGER) && is_integral(v));
    case JSON_TRUE:
    case JSON_FALSE:
        return (mask & SC_JT_BOOLEAN) != 0;
    case JSON_NULL:
        return (mask & SC_JT_NULL) != 0;
    }
    return 0;
}

/* "a string" or "one of string, null" into buf. */
static const char *type_phrase(unsigned mask, char *buf, size_t cap)
{
    size_t n = 0, count = 0;
    for (size_t i = 0; i < SC_ARRAY_LEN(sc_jschema_types); i++)
        if (mask & sc_jschema_types[i].bit)
            count++;
    for (size_t i = 0; i < SC_ARRAY_LEN(sc_jschema_types); i++) {
        if (!(mask & sc_jschema_types[i].bit))
            continue;
        if (count == 1)
            return sc_jschema_types[i].phrase;
        int w = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "one of ", sc_jschema_types[i].name);
        if (w < 0 || (size_t)w >= cap - n)
            break;
        n += (size_t)w;
    }
    return buf;
}

/* ---- shared helpers ---- */

/* Append to a path buffer of SC_JSCHEMA_PATH_MAX bytes (truncating); the length before. */
__attribute__((format(printf, 3, 4))) static size_t path_push(char *buf, size_t *len,
                                                              const char *fmt, ...)
{
    size_t old = *len;
    if (old + 1 < SC_JSCHEMA_PATH_MAX) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf + old, SC_JSCHEMA_PATH_MAX - old, fmt, ap);
        va_end(ap);
        if (n > 0)
            *len = old + (size_t)n < SC_JSCHEMA_PATH_MAX - 1 ? old + (size_t)n
                                                             : SC_JSCHEMA_PATH_MAX - 1;
    }
    return old;
}

static void path_pop(char *buf, size_t *len, size_t old)
{
    *len = old;
    buf[old] = '\0';
}

/* A property name in an instance path: ".name", or ["name"] when it is not identifier-like. */
static size_t path_push_name(char *buf, size_t *len, const char *name)
{
    int plain = isalpha((unsigned char)name[0]) || name[0] == '_';
    for (const char *p = name; plain && *p; p++)
        plain = isalnum((unsigned char)*p) || *p == '_';
    return plain ? path_push(buf, len, ".%s", name) : path_push(buf, len, "[\"%s\"]", name);
}

/* A string of 1 to SC_JSCHEMA_COUNT_DIGITS digits into *n; 1 when it is one. */
static int parse_digits(const char *p, size_t len, long long *n)
{
    if (len == 0 || len > SC_JSCHEMA_COUNT_DIGITS)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)p[i]))
            return 0;
    *n = strtoll(p, NULL, 10);
    return 1;
}

/* A count keyword of s (a non-negative integer, or a string of digits) into *n; 1 when there. */
static int get_count(const json_t *s, const char *key, long long *n)
{
    const json_t *v = json_object_get(s, key);
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *n = (long long)json_integer_value(v);
        return 1;
    }
    return json_is_string(v) && parse_digits(json_string_value(v), json_string_length(v), n);
}

/* A number keyword of s into *x; 1 when there. */
static int get_number(const json_t *s, const char *key, double *x)
{
    const json_t *v = json_object_get(s, key);
    if (!json_is_number(v))
        return 0;
    *x = json_number_value(v);
    return 1;
}

/* JSON Schema equality: 1 and 1.0 are equal, objects compare without order. */
static int values_equal(const json_t *a, const json_t *b, int depth)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (depth > SC_JSCHEMA_DEPTH_MAX)
        return json_equal(a, b);
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY: {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!values_equal(json_array_get(a, i), json_array_get(b, i), depth + 1))
                return 0;
        return 1;
    }
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v) {
            const json_t *w = json_object_get(b, k);
            if (!w || !values_equal(v, w, depth + 1))
                return 0;
        }
        return 1;
    }
    default:
        return 1; /* true, false, null: the type is the value */
    }
}

/* Code points of a UTF-8 string (jansson strings are valid UTF-8). */
static size_t utf8_len(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            n++;
    return n;
}

/* The schema "#" or "#/$defs/NAME" names inside root (borrowed), or NULL. bad: set when ref
 * does not have that form. */
static const json_t *resolve_ref(const json_t *root, const char *ref, int *bad)
{
    static const char prefix[] = "#/$defs/";
    char name[SC_JSCHEMA_PATH_MAX];
    size_t n = 0;
    *bad = 0;
    if (strcmp(ref, "#") == 0)
        return root;
    if (strncmp(ref, prefix, sizeof prefix - 1) != 0 || !ref[sizeof prefix - 1]) {
        *bad = 1;
        return NULL;
    }
    /* JSON Pointer escapes: ~1 is '/', ~0 is '~' */
    for (const char *p = ref + sizeof prefix - 1; *p; p++) {
        char c = *p;
        if (c == '/') {
            *bad = 1;
            return NULL;
        }
        if (c == '~') {
            if (p[1] != '0' && p[1] != '1') {
                *bad = 1;
                return NULL;
            }
            c = p[1] == '1' ? '/' : '~';
            p++;
        }
        if (n + 1 >= sizeof name)
            return NULL;
        name[n++] = c;
    }
    name[n] = '\0';
    return json_object_get(json_object_get(root, "$defs"), name);
}

/* ---- patterns ---- */

static int rx_put(char *dst, size_t cap, size_t *n, const char *s, size_t len)
{
    if (*n + len >= cap)
        return -1;
    memcpy(dst + *n, s, len);
    *n += len;
    dst[*n] = '\0';
    return 0;
}

/* The ECMA-262 bracket expression at q ('[') as a POSIX one appended to dst; the position
 * after it, or NULL. POSIX brackets have no escapes, and ']', '^' and '-' are literal only in
 * certain places, so the literal ones are gathered and put where they stay literal. */
static const char *rx_bracket(const char *q, char *dst, size_t cap, size_t *n)
{
    char body[SC_JSCHEMA_PATTERN_MAX];
    size_t bn = 0;
    int neg = 0, dash = 0, rbr = 0, caret = 0;
    const char *r = q + 1;
    body[0] = '\0';
    if (*r == '^') {
        neg = 1;
        r++;
    }
    if (*r == ']') {
        rbr = 1;
        r++;
    }
    while (*r && *r != ']') {
        int rc = 0;
        if (*r == '[' && (r[1] == ':' || r[1] == '.' || r[1] == '=')) {
            const char *close = r + 2;
            while (*close && !(close[0] == r[1] && close[1] == ']'))
                close++;
            if (!*close)
                return NULL;
            rc = rx_put(body, sizeof body, &bn, r, (size_t)(close + 2 - r));
            r = close + 2;
        } else if (*r == '\\' && r[1]) {
            char c = r[1];
            r += 2;
            if (c == 'd')
                rc = rx_put(body, sizeof body, &bn, "0-9", 3);
            else if (c == 's')
                rc = rx_put(body, sizeof body, &bn, "[:space:]", 9);
            else if (c == 'w')
                rc = rx_put(body, sizeof body, &bn, "[:alnum:]_", 10);
            else if (c == '-')
                dash = 1;
            else if (c == ']')
                rbr = 1;
            else if (c == '^')
                caret = 1;
            else
                rc = rx_put(body, sizeof body, &bn, &c, 1);
        } else if (*r == '^') {
            caret = 1;
            r++;
        } else if (*r == '-' && (bn == 0 || r[1] == ']')) {
            dash = 1;
            r++;
        } else {
            rc = rx_put(body, sizeof body, &bn, r, 1);
            r++;
        }
        if (rc != 0)
            return NULL;
    }
    if (*r != ']')
        return NULL;
    if (rx_put(dst, cap, n, "[", 1) || (neg && rx_put(dst, cap, n, "^", 1)) ||
        (rbr && rx_put(dst, cap, n, "]", 1)) || rx_put(dst, cap, n, body, bn) ||
        (caret && rx_put(dst, cap, n, "^", 1)) || (dash && rx_put(dst, cap, n, "-", 1)) ||
        rx_put(dst, cap, n, "]", 1))
        return NULL;
    return r + 1;
}

/* src (a JSON Schema pattern, ECMA-262 flavoured) as a POSIX extended regular expression: the
 * shorthands \d \s \w and their negations, escapes in brackets, (?: groups. 0, or -1 when it
 * does not fit in cap or is malformed. */
static int regex_posix(const char *src, char *dst, size_t cap)
{
    size_t n = 0;
    dst[0] = '\0';
    for (const char *q = src; *q;) {
        int rc;
        if (*q == '\\' && q[1]) {
            const char *sub = NULL;
            switch (q[1]) {
            case 'd':
                sub = "[0-9]";
                break;
            case 'D':
                sub = "[^0-9]";
                break;
            case 's':
                sub = "[[:space:]]";
                break;
            case 'S':
                sub = "[^[:space:]]";
                break;
            case 'w':
                sub = "[[:alnum:]_]";
                break;
            case 'W':
                sub = "[^[:alnum:]_]";
                break;
            }
            rc = sub ? rx_put(dst, cap, &n, sub, strlen(sub)) : rx_put(dst, cap, &n, q, 2);
            q += 2;
        } else if (*q == '[') {
            q = rx_bracket(q, dst, cap, &n);
            rc = q ? 0 : -1;
        } else if (q[0] == '(' && q[1] == '?' && q[2] == ':') {
            rc = rx_put(dst, cap, &n, "(", 1);
            q += 3;
        } else {
            rc = rx_put(dst, cap, &n, q, 1);
            q++;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* a + b and a * b, held at SC_JSCHEMA_PATTERN_COST_MAX + 1 (past the bound is all that counts) */
static size_t cost_add(size_t a, size_t b)
{
    return a + b > SC_JSCHEMA_PATTERN_COST_MAX ? SC_JSCHEMA_PATTERN_COST_MAX + 1 : a + b;
}

static size_t cost_mul(size_t a, size_t b)
{
    return b && a > SC_JSCHEMA_PATTERN_COST_MAX / b ? SC_JSCHEMA_PATTERN_COST_MAX + 1 : a * b;
}

/* The end of the bracket expression at p (at its '['): past its ']', or at the NUL. */
static const char *bracket_end(const char *p)
{
    const char *q = p + 1;
    if (*q == '^')
        q++;
    if (*q == ']')
        q++; /* a leading ']' is a member */
    while (*q && *q != ']') {
        if (q[0] == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
            const char *e = strchr(q + 2, q[1]);
            q = e && e[1] == ']' ? e + 2 : q + 1;
        } else {
            q++;
        }
    }
    return *q ? q + 1 : q;
}

/* A unit of a pattern (an atom, a group, with its repetitions) or the sequence of a group. */
typedef struct {
    size_t cost;   /* nodes regcomp builds for it */
    int empty;     /* it can match "" */
    unsigned reps; /* repetitions nested over something that can match "" */
    size_t run;    /* a sequence: the nodes of its last units that all can match "" */
} sc_rxcost_t;

/* The closure work of a run of units that can match "": regcomp's epsilon closure of each of
 * their nodes holds the nodes after it, so the work is about the square of the run. 0 past the
 * bound. */
static int rxcost_flush(sc_rxcost_t *s, size_t *closure)
{
    *closure += s->run * s->run; /* run <= SC_JSCHEMA_PATTERN_COST_MAX + 1: no overflow */
    s->run = 0;
    return *closure <= SC_JSCHEMA_PATTERN_CLOSURE_MAX;
}

/* Add the pending unit u (when there is one) to the sequence s. 0 past a bound. */
static int rxcost_commit(sc_rxcost_t *s, sc_rxcost_t *u, int *have, size_t *closure)
{
    if (!*have)
        return 1;
    *have = 0;
    s->cost = cost_add(s->cost, u->cost);
    s->empty = s->empty && u->empty;
    s->reps = u->reps > s->reps ? u->reps : s->reps;
    if (u->empty) {
        s->run = cost_add(s->run, u->cost);
        return 1;
    }
    return rxcost_flush(s, closure);
}

/* Apply a repetition of `copies` copies (0: '?' or '*', which wrap without copying; '+' is 2)
 * that may match "" (may_skip) to the unit u. */
static void rxcost_repeat(sc_rxcost_t *u, size_t copies, int may_skip)
{
    if (u->empty)
        u->reps++;
    u->cost = cost_add(copies ? cost_mul(u->cost, copies) : u->cost, 1);
    u->empty = u->empty || may_skip;
}

/* Whether regcomp can compile posix (an ERE from regex_posix) in bounded memory and time. glibc
 * copies a repeated unit (once more for '+', m times for {n,m}, n + 1 for {n,}), so nested
 * repetitions multiply ("((a+)+)+…" of 1 KB takes gigabytes): at most SC_JSCHEMA_PATTERN_COST_MAX
 * nodes. Its epsilon closures grow with the square of a run of what can match "" (".{0,5000}"
 * takes a second) and much faster when such a thing is repeated again ("a??????+++++",
 * "((a?|b?)+){40}" take minutes): at most SC_JSCHEMA_PATTERN_CLOSURE_MAX, and at most
 * SC_JSCHEMA_PATTERN_EMPTY_REPS_MAX repetitions nested over something that can match "". */
static int pattern_cost_ok(const char *p)
{
    sc_rxcost_t seq[SC_JSCHEMA_PATTERN_MAX / 2 + 1]; /* the enclosing groups' sequences */
    int alt_empty[SC_JSCHEMA_PATTERN_MAX / 2 + 1];    /* an earlier alternative can match "" */
    sc_rxcost_t cur = {0, 1, 0, 0}, unit = {0, 0, 0, 0};
    int have = 0, alt = 0;
    size_t depth = 0, closure = 0;
    while (*p) {
        if (*p == '(') {
            if (!rxcost_commit(&cur, &unit, &have, &closure) || depth == SC_ARRAY_LEN(seq))
                return 0;
            seq[depth] = cur;
            alt_empty[depth++] = alt;
            cur = (sc_rxcost_t){0, 1, 0, 0};
            alt = 0;
            p++;
        } else if (*p == ')' && depth > 0) {
            if (!rxcost_commit(&cur, &unit, &have, &closure) || !rxcost_flush(&cur, &closure))
                return 0;
            unit = (sc_rxcost_t){cost_add(cur.cost, 1), cur.empty || alt, cur.reps, 0};
            have = 1;
            cur = seq[--depth];
            alt = alt_empty[depth];
            p++;
        } else if (*p == '|') {
            if (!rxcost_commit(&cur, &unit, &have, &closure) || !rxcost_flush(&cur, &closure))
                return 0;
            alt = alt || cur.empty;
            cur.cost = cost_add(cur.cost, 1);
            cur.empty = 1;
            p++;
        } else if (have && (*p == '*' || *p == '?' || *p == '+')) {
            rxcost_repeat(&unit, *p == '+' ? 2 : 0, *p != '+');
            p++;
        } else if (have && *p == '{' && p[1] >= '0' && p[1] <= '9') {
            size_t n = 0, m = 0;
            int comma = 0, mdigits = 0;
            for (p++; *p >= '0' && *p <= '9'; p++)
                n = cost_add(cost_mul(n, 10), (size_t)(*p - '0'));
            if (*p == ',') {
                comma = 1;
                for (p++; *p >= '0' && *p <= '9'; p++, mdigits = 1)
                    m = cost_add(cost_mul(m, 10), (size_t)(*p - '0'));
            }
            if (*p == '}')
                p++;
            size_t copies = comma ? (mdigits ? m : cost_add(n, 1)) : n;
            rxcost_repeat(&unit, copies ? copies : 1, n == 0);
        } else {
            if (!rxcost_commit(&cur, &unit, &have, &closure))
                return 0;
            /* an atom: a character, '.', an escape, a bracket expression; an anchor matches "" */
            unit = (sc_rxcost_t){1, *p == '^' || *p == '$', 0, 0};
            have = 1;
            if (*p == '\\' && p[1])
                p += 2;
            else if (*p == '[')
                p = bracket_end(p);
            else
                p++;
        }
        if (have && (unit.reps > SC_JSCHEMA_PATTERN_EMPTY_REPS_MAX ||
                     unit.cost > SC_JSCHEMA_PATTERN_COST_MAX))
            return 0;
    }
    if (!rxcost_commit(&cur, &unit, &have, &closure) || !rxcost_flush(&cur, &closure))
        return 0;
    while (depth > 0) { /* an unclosed group: regcomp built its copies before it saw the end */
        cur.cost = cost_add(seq[--depth].cost, cur.cost);
        cur.reps = seq[depth].reps > cur.reps ? seq[depth].reps : cur.reps;
    }
    return cur.cost <= SC_JSCHEMA_PATTERN_COST_MAX && cur.reps <= SC_JSCHEMA_PATTERN_EMPTY_REPS_MAX;
}

/* 1: pattern compiled into rx (the caller regfrees it), posix (SC_JSCHEMA_PATTERN_MAX bytes,
 * may be NULL) holding the translation; 0: the pattern is skipped (malformed, too long, or too
 * costly to compile: pattern_cost_ok). */
static int pattern_compile(const char *pattern, regex_t *rx, char *posix)
{
    char local[SC_JSCHEMA_PATTERN_MAX];
    char *buf = posix ? posix : local;
    if (regex_posix(pattern, buf, SC_JSCHEMA_PATTERN_MAX) != 0)
        return 0;
    if (!pattern_cost_ok(buf))
        return 0;
    return regcomp(rx, buf, REG_EXTENDED | REG_NOSUB) == 0;
}

/* ---- check ---- */

typedef enum {
    SC_KW_TYPE,
    SC_KW_PROPS, /* an object of schemas */
    SC_KW_SCHEMA,
    SC_KW_SCHEMAS, /* a non-empty array of schemas */
    SC_KW_REQUIRED,
    SC_KW_ENUM,
    SC_KW_BOOL,
    SC_KW_COUNT,
    SC_KW_NUMBER,
    SC_KW_STRINGS,
    SC_KW_STRING,
    SC_KW_REF,
    SC_KW_ANY,
    SC_KW_ARRAY,
} sc_jschema_kind_t;

typedef struct {
    const char *name;  /* camelCase: the spelling kept in the normalized copy */
    const char *snake; /* the other spelling accepted (OPENAPI), or NULL */
    sc_jschema_kind_t kind;
} sc_jschema_kw_t;

static const sc_jschema_kw_t sc_jschema_openapi_kws[] = {
    {"type", NULL, SC_KW_TYPE},
    {"format", NULL, SC_KW_STRING},
    {"title", NULL, SC_KW_STRING},
    {"description", NULL, SC_KW_STRING},
    {"nullable", NULL, SC_KW_BOOL},
    {"enum", NULL, SC_KW_ENUM},
    {"maxItems", "max_items", SC_KW_COUNT},
    {"minItems", "min_items", SC_KW_COUNT},
    {"properties", NULL, SC_KW_PROPS},
    {"required", NULL, SC_KW_REQUIRED},
    {"minProperties", "min_properties", SC_KW_COUNT},
    {"maxProperties", "max_properties", SC_KW_COUNT},
    {"minLength", "min_length", SC_KW_COUNT},
    {"maxLength", "max_length", SC_KW_COUNT},
    {"pattern", NULL, SC_KW_STRING},
    {"example", NULL, SC_KW_ANY},
    {"anyOf", "any_of", SC_KW_SCHEMAS},
    {"propertyOrdering", "property_ordering", SC_KW_STRINGS},
    {"default", NULL, SC_KW_ANY},
    {"items", NULL, SC_KW_SCHEMA},
    {"minimum", NULL, SC_KW_NUMBER},
    {"maximum", NULL, SC_KW_NUMBER},
};

static const sc_jschema_kw_t sc_jschema_json_kws[] = {
    {"type", NULL, SC_KW_TYPE},
    {"properties", NULL, SC_KW_PROPS},
    {"required", NULL, SC_KW_REQUIRED},
    {"items", NULL, SC_KW_SCHEMA},
    {"prefixItems", NULL, SC_KW_SCHEMAS},
    {"enum", NULL, SC_KW_ENUM},
    {"const", NULL, SC_KW_ANY},
    {"anyOf", NULL, SC_KW_SCHEMAS},
    {"oneOf", NULL, SC_KW_SCHEMAS},
    {"allOf", NULL, SC_KW_SCHEMAS},
    {"$ref", NULL, SC_KW_REF},
    {"$defs", NULL, SC_KW_PROPS},
    {"additionalProperties", NULL, SC_KW_SCHEMA},
    {"minimum", NULL, SC_KW_NUMBER},
    {"maximum", NULL, SC_KW_NUMBER},
    {"exclusiveMinimum", NULL, SC_KW_NUMBER},
    {"exclusiveMaximum", NULL, SC_KW_NUMBER},
    {"minItems", NULL, SC_KW_COUNT},
    {"maxItems", NULL, SC_KW_COUNT},
    {"minLength", NULL, SC_KW_COUNT},
    {"maxLength", NULL, SC_KW_COUNT},
    {"pattern", NULL, SC_KW_STRING},
    {"format", NULL, SC_KW_STRING},
    {"title", NULL, SC_KW_STRING},
    {"description", NULL, SC_KW_STRING},
    {"default", NULL, SC_KW_ANY},
    {"examples", NULL, SC_KW_ARRAY},
    {"$schema", NULL, SC_KW_STRING},
    {"$id", NULL, SC_KW_STRING},
};

_Static_assert(SC_ARRAY_LEN(sc_jschema_openapi_kws) <= SC_JSCHEMA_KW_MAX, "keyword table");
_Static_assert(SC_ARRAY_LEN(sc_jschema_json_kws) <= SC_JSCHEMA_KW_MAX, "keyword table");

/* min/max pairs whose bounds must not cross */
static const char *const sc_jschema_bounds[][2] = {
    {"minItems", "maxItems"},
    {"minLength", "maxLength"},
    {"minProperties", "maxProperties"},
    {"minimum", "maximum"},
};

typedef struct {
    sc_jschema_dialect_t d;
    const sc_jschema_kw_t *kws;
    size_t n_kws;
    const json_t *root; /* borrowed: what $ref resolves in */
    char path[SC_JSCHEMA_PATH_MAX];
    size_t plen;
    char *err;
    size_t errlen;
} sc_jcheck_t;

__attribute__((format(printf, 2, 3))) static sc_status_t check_fail(sc_jcheck_t *c, const char *fmt,
                                                                    ...)
{
    char reason[SC_JSCHEMA_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (c->err && c->errlen)
        snprintf(c->err, c->errlen, "field \"%s\": %s", c->path, reason);
    return SC_ERR_INVALID;
}

static int kw_find(const sc_jcheck_t *c, const char *key)
{
    for (size_t i = 0; i < c->n_kws; i++)
        if (strcmp(key, c->kws[i].name) == 0 ||
            (c->kws[i].snake && strcmp(key, c->kws[i].snake) == 0))
            return (int)i;
    return -1;
}

static sc_status_t check_node(sc_jcheck_t *c, const json_t *s, int depth, json_t **out);

static sc_status_t check_type(sc_jcheck_t *c, const json_t *v, json_t **nv)
{
    if (json_is_string(v)) {
        int i = type_index(json_string_value(v), c->d == SC_JSCHEMA_OPENAPI);
        if (i < 0)
            return check_fail(c, "unknown type \"%s\"", json_string_value(v));
        *nv = json_string(c->d == SC_JSCHEMA_OPENAPI ? sc_jschema_types[i].upper
                                                     : sc_jschema_types[i].name);
        return *nv ? SC_OK : SC_ERR_NOMEM;
    }
    if (c->d == SC_JSCHEMA_OPENAPI)
        return check_fail(c, "must be a string");
    if (!json_is_array(v) || json_array_size(v) == 0)
        return check_fail(c, "must be a string or a non-empty array of strings");
    unsigned seen = 0;
    size_t k;
    const json_t *e;
    json_array_foreach(v, k, e) {
        size_t old = path_push(c->path, &c->plen, "[%zu]", k);
        if (!json_is_string(e))
            return check_fail(c, "must be a string");
        int i = type_index(json_string_value(e), 0);
        if (i < 0)
            return check_fail(c, "unknown type \"%s\"", json_string_value(e));
        if (seen & sc_jschema_types[i].bit)
            return check_fail(c, "repeats \"%s\"", json_string_value(e));
        seen |= sc_jschema_types[i].bit;
        path_pop(c->path, &c->plen, old);
    }
    *nv = json_deep_copy(v);
    return *nv ? SC_OK : SC_ERR_NOMEM;
}

static sc_status_t check_count(sc_jcheck_t *c, const json_t *v, json_t **nv)
{
    long long n = -1;
    if (json_is_integer(v))
        n = (long long)json_integer_value(v);
    else if (c->d == SC_JSCHEMA_OPENAPI && json_is_string(v) &&
             !parse_digits(json_string_value(v), json_string_length(v), &n))
        n = -1; /* proto3 JSON sends int64 fields as strings of digits */
    if (n < 0)
        return check_fail(c, c->d == SC_JSCHEMA_OPENAPI
                                 ? "must be a non-negative integer or a string of digits"
                                 : "must be a non-negative integer");
    *nv = json_integer((json_int_t)n);
    return *nv ? SC_OK : SC_ERR_NOMEM;
}

/* An array of strings (what "required" and "propertyOrdering" hold). */
static sc_status_t check_strings(sc_jcheck_t *c, const json_t *v, json_t **nv)
{
    if (!json_is_array(v))
        return check_fail(c, "must be an array of strings");
    size_t k;
    const json_t *e;
    json_array_foreach(v, k, e) {
        if (!json_is_string(e)) {
            path_push(c->path, &c->plen, "[%zu]", k);
            return check_fail(c, "must be a string");
        }
    }
    *nv = json_deep_copy(v);
    return *nv ? SC_OK : SC_ERR_NOMEM;
}

static sc_status_t check_value(sc_jcheck_t *c, const sc_jschema_kw_t *kw, const json_t *v,
                               int depth, json_t **nv)
{
    sc_status_t st = SC_OK;
    *nv = NULL;
    switch (kw->kind) {
    case SC_KW_TYPE:
        return check_type(c, v, nv);
    case SC_KW_PROPS: {
        if (!json_is_object(v))
            return check_fail(c, "must be an object of schemas");
        json_t *o = json_object();
        if (!o)
            return SC_ERR_NOMEM;
        const char *name;
        json_t *ps;
        json_object_foreach((json_t *)v, name, ps) {
            size_t old = path_push(c->path, &c->plen, ".%s", name);
            json_t *np = NULL;
            st = check_node(c, ps, depth + 1, &np);
            if (st == SC_OK && json_object_set_new(o, name, np) != 0)
                st = SC_ERR_NOMEM;
            if (st != SC_OK) {
                json_decref(o);
                return st;
            }
            path_pop(c->path, &c->plen, old);
        }
        *nv = o;
        return SC_OK;
    }
    case SC_KW_SCHEMA:
        return check_node(c, v, depth + 1, nv);
    case SC_KW_SCHEMAS: {
        if (!json_is_array(v) || json_array_size(v) == 0)
            return check_fail(c, "must be a non-empty array of schemas");
        json_t *a = json_array();
        if (!a)
            return SC_ERR_NOMEM;
        size_t k;
        const json_t *e;
        json_array_foreach(v, k, e) {
            size_t old = path_push(c->path, &c->plen, "[%zu]", k);
            json_t *ne = NULL;
            st = check_node(c, e, depth + 1, &ne);
            if (st == SC_OK && json_array_append_new(a, ne) != 0)
                st = SC_ERR_NOMEM;
            if (st != SC_OK) {
                json_decref(a);
                return st;
            }
            path_pop(c->path, &c->plen, old);
        }
        *nv = a;
        return SC_OK;
    }
    case SC_KW_REQUIRED:
    case SC_KW_STRINGS:
        return check_strings(c, v, nv);
    case SC_KW_ENUM: {
        if (!json_is_array(v) || json_array_size(v) == 0)
            return check_fail(c, "must be a non-empty array");
        size_t k;
        const json_t *e;
        json_array_foreach(v, k, e) {
            if (c->d == SC_JSCHEMA_OPENAPI && !json_is_string(e)) {
                path_push(c->path, &c->plen, "[%zu]", k);
                return check_fail(c, "must be a string");
            }
        }
        break;
    }
    case SC_KW_BOOL:
        if (!json_is_boolean(v))
            return check_fail(c, "must be a boolean");
        break;
    case SC_KW_COUNT:
        return check_count(c, v, nv);
    case SC_KW_NUMBER:
        if (!json_is_number(v))
            return check_fail(c, "must be a number");
        break;
    case SC_KW_STRING:
        if (!json_is_string(v))
            return check_fail(c, "must be a string");
        break;
    case SC_KW_REF: {
        if (!json_is_string(v))
            return check_fail(c, "must be a string");
        int bad;
        if (!resolve_ref(c->root, json_string_value(v), &bad))
            return bad ? check_fail(c, "must be \"#/$defs/NAME\"")
                       : check_fail(c, "\"%s\" does not resolve in $defs", json_string_value(v));
        break;
    }
    case SC_KW_ARRAY:
        if (!json_is_array(v))
            return check_fail(c, "must be an array");
        break;
    case SC_KW_ANY:
        break;
    }
    *nv = json_deep_copy(v);
    return *nv ? SC_OK : SC_ERR_NOMEM;
}

/* What check_node tests once every keyword is known: OPENAPI's required names declared
 * properties, and no min above its max. o is the normalized node. */
static sc_status_t check_node_whole(sc_jcheck_t *c, const json_t *o,
                                    const char *const spelled[SC_JSCHEMA_KW_MAX])
{
    int rk = kw_find(c, "required");
    const json_t *req = json_object_get(o, "required");
    if (c->d == SC_JSCHEMA_OPENAPI && req) {
        const json_t *props = json_object_get(o, "properties");
        size_t k;
        const json_t *e;
        json_array_foreach(req, k, e) {
            if (!json_object_get(props, json_string_value(e))) {
                path_push(c->path, &c->plen, ".%s[%zu]", spelled[rk], k);
                return check_fail(c, "\"%s\" is not a declared property", json_string_value(e));
            }
        }
    }
    for (size_t i = 0; i < SC_ARRAY_LEN(sc_jschema_bounds); i++) {
        double lo, hi;
        if (get_number(o, sc_jschema_bounds[i][0], &lo) &&
            get_number(o, sc_jschema_bounds[i][1], &hi) && lo > hi) {
            int lk = kw_find(c, sc_jschema_bounds[i][0]), hk = kw_find(c, sc_jschema_bounds[i][1]);
            path_push(c->path, &c->plen, ".%s", spelled[hk]);
            return check_fail(c, "is less than %s", spelled[lk]);
        }
    }
    return SC_OK;
}

/* Check s at c->path; *out: a new reference to its normalized copy. */
static sc_status_t check_node(sc_jcheck_t *c, const json_t *s, int depth, json_t **out)
{
    sc_status_t st = SC_OK;
    const char *spelled[SC_JSCHEMA_KW_MAX] = {0};
    json_t *o = NULL;

    *out = NULL;
    if (depth > SC_JSCHEMA_DEPTH_MAX)
        return check_fail(c, "nested too deeply");
    if (c->d == SC_JSCHEMA_JSON && json_is_boolean(s)) {
        *out = json_boolean(json_is_true(s)); /* true: anything; false: nothing */
        return SC_OK;
    }
    if (!json_is_object(s))
        return check_fail(c, c->d == SC_JSCHEMA_JSON ? "must be a schema object or a boolean"
                                                     : "must be a schema object");
    o = json_object();
    if (!o)
        return SC_ERR_NOMEM;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)s, key, val) {
        size_t old = path_push(c->path, &c->plen, ".%s", key);
        int k = kw_find(c, key);
        if (k < 0) {
            st = check_fail(c, "unknown keyword");
            goto out;
        }
        if (spelled[k]) {
            st = check_fail(c, "repeats %s", spelled[k]);
            goto out;
        }
        spelled[k] = key;
        json_t *nv = NULL;
        st = check_value(c, &c->kws[k], val, depth, &nv);
        if (st != SC_OK)
            goto out;
        if (json_object_set_new(o, c->kws[k].name, nv) != 0) {
            st = SC_ERR_NOMEM;
            goto out;
        }
        path_pop(c->path, &c->plen, old);
    }
    st = check_node_whole(c, o, spelled);
out:
    if (st == SC_OK)
        *out = o;
    else
        json_decref(o);
    return st;
}

sc_status_t sc_jschema_check(const json_t *schema, sc_jschema_dialect_t d, const char *path,
                             json_t **normalized, char *err, size_t errlen)
{
    sc_jcheck_t c = {.d = d, .root = schema, .err = err, .errlen = errlen};
    json_t *out = NULL;

    if (normalized)
        *normalized = NULL;
    if (err && errlen)
        err[0] = '\0';
    c.kws = d == SC_JSCHEMA_OPENAPI ? sc_jschema_openapi_kws : sc_jschema_json_kws;
    c.n_kws = d == SC_JSCHEMA_OPENAPI ? SC_ARRAY_LEN(sc_jschema_openapi_kws)
                                      : SC_ARRAY_LEN(sc_jschema_json_kws);
    path_push(c.path, &c.plen, "%s", path && *path ? path : "schema");
    if (!schema) {
        check_fail(&c, "missing");
        return SC_ERR_INVALID_ARG;
    }
    sc_status_t st = check_node(&c, schema, 0, &out);
    if (st == SC_ERR_NOMEM && err && errlen)
        snprintf(err, errlen, "%s: out of memory", c.path);
    if (st == SC_OK && normalized)
        *normalized = out;
    else
        json_decref(out);
    return st;
}

/* ---- validate ---- */

typedef struct {
    const json_t *root; /* borrowed: what $ref resolves in */
    sc_jschema_dialect_t d;
    long steps;
    int quiet; /* > 0 while probing anyOf/oneOf branches: no error text */
    char path[SC_JSCHEMA_PATH_MAX];
    size_t plen;
    char *err;
    size_t errlen;
} sc_jval_t;

__attribute__((format(printf, 2, 3))) static int val_fail(sc_jval_t *v, const char *fmt, ...)
{
    if (v->quiet || !v->err || !v->errlen)
        return 0;
    char reason[SC_JSCHEMA_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    snprintf(v->err, v->errlen, "%s: %s", v->path, reason);
    return 0;
}

static void val_init(sc_jval_t *v, const json_t *root, sc_jschema_dialect_t d, int quiet, char *err,
                     size_t errlen)
{
    v->root = root;
    v->d = d;
    v->steps = 0;
    v->quiet = quiet;
    v->plen = 0;
    v->path[0] = '\0';
    path_push(v->path, &v->plen, "$");
    v->err = err;
    v->errlen = errlen;
}

static int validate_node(sc_jval_t *v, const json_t *s, const json_t *inst, int idepth, int adepth);

static int validate_number(sc_jval_t *v, const json_t *s, const json_t *inst)
{
    double x = json_number_value(inst), b;
    if (get_number(s, "minimum", &b) && x < b)
        return val_fail(v, "must be >= %g", b);
    if (get_number(s, "maximum", &b) && x > b)
        return val_fail(v, "must be <= %g", b);
    if (get_number(s, "exclusiveMinimum", &b) && x <= b)
        return val_fail(v, "must be > %g", b);
    if (get_number(s, "exclusiveMaximum", &b) && x >= b)
        return val_fail(v, "must be < %g", b);
    return 1;
}

static int validate_string(sc_jval_t *v, const json_t *s, const json_t *inst)
{
    long long n;
    size_t len = utf8_len(json_string_value(inst), json_string_length(inst));
    if (get_count(s, "minLength", &n) && (long long)len < n)
        return val_fail(v, "must be at least %lld characters long", n);
    if (get_count(s, "maxLength", &n) && (long long)len > n)
        return val_fail(v, "must be at most %lld characters long", n);
    const json_t *pat = json_object_get(s, "pattern");
    regex_t rx;
    if (json_is_string(pat) && pattern_compile(json_string_value(pat), &rx, NULL)) {
        int rc = regexec(&rx, json_string_value(inst), 0, NULL, 0);
        regfree(&rx);
        if (rc != 0)
            return val_fail(v, "does not match the pattern \"%s\"", json_string_value(pat));
    }
    return 1;
}

static int validate_array(sc_jval_t *v, const json_t *s, const json_t *inst, int idepth, int adepth)
{
    long long n;
    size_t size = json_array_size(inst);
    if (get_count(s, "minItems", &n) && (long long)size < n)
        return val_fail(v, "must have at least %lld items", n);
    if (get_count(s, "maxItems", &n) && (long long)size > n)
        return val_fail(v, "must have at most %lld items", n);
    const json_t *prefix = json_object_get(s, "prefixItems");
    const json_t *items = json_object_get(s, "items");
    size_t np = json_array_size(prefix);
    for (size_t i = 0; i < size; i++) {
        const json_t *is = i < np ? json_array_get(prefix, i) : items;
        if (!is)
            continue;
        size_t old = path_push(v->path, &v->plen, "[%zu]", i);
        int ok = validate_node(v, is, json_array_get(inst, i), idepth + 1, adepth + 1);
        path_pop(v->path, &v->plen, old);
        if (!ok)
            return 0;
    }
    return 1;
}

static int validate_object(sc_jval_t *v, const json_t *s, const json_t *inst, int idepth,
                           int adepth)
{
    long long n;
    size_t size = json_object_size(inst);
    if (get_count(s, "minProperties", &n) && (long long)size < n)
        return val_fail(v, "must have at least %lld properties", n);
    if (get_count(s, "maxProperties", &n) && (long long)size > n)
        return val_fail(v, "must have at most %lld properties", n);
    size_t k;
    const json_t *e;
    json_array_foreach(json_object_get(s, "required"), k, e) {
        if (json_is_string(e) && !json_object_get(inst, json_string_value(e)))
            return val_fail(v, "missing required property \"%s\"", json_string_value(e));
    }
    const json_t *props = json_object_get(s, "properties");
    const json_t *addl = json_object_get(s, "additionalProperties");
    const char *name;
    json_t *pv;
    json_object_foreach((json_t *)inst, name, pv) {
        const json_t *ps = json_object_get(props, name);
        size_t old = path_push_name(v->path, &v->plen, name);
        int ok = 1;
        if (ps)
            ok = validate_node(v, ps, pv, idepth + 1, adepth + 1);
        else if (json_is_false(addl))
            ok = val_fail(v, "is not a declared property (additionalProperties is false)");
        else if (json_is_object(addl))
            ok = validate_node(v, addl, pv, idepth + 1, adepth + 1);
        path_pop(v->path, &v->plen, old);
        if (!ok)
            return 0;
    }
    return 1;
}

/* anyOf, oneOf, allOf of s against inst. */
static int validate_combinators(sc_jval_t *v, const json_t *s, const json_t *inst, int idepth,
                                int adepth)
{
    size_t k;
    const json_t *b;
    json_array_foreach(json_object_get(s, "allOf"), k, b) {
        if (!validate_node(v, b, inst, idepth, adepth + 1))
            return 0;
    }
    const json_t *any = json_object_get(s, "anyOf");
    if (json_is_array(any)) {
        int ok = 0;
        v->quiet++;
        json_array_foreach(any, k, b) {
            if ((ok = validate_node(v, b, inst, idepth, adepth + 1)))
                break;
        }
        v->quiet--;
        if (!ok)
            return val_fail(v, "matches none of anyOf");
    }
    const json_t *one = json_object_get(s, "oneOf");
    if (json_is_array(one)) {
        int matched = 0;
        v->quiet++;
        json_array_foreach(one, k, b) {
            matched += validate_node(v, b, inst, idepth, adepth + 1);
            if (matched > 1)
                break;
        }
        v->quiet--;
        if (matched == 0)
            return val_fail(v, "matches none of oneOf");
        if (matched > 1)
            return val_fail(v, "matches more than one of oneOf");
    }
    return 1;
}

static int validate_node(sc_jval_t *v, const json_t *s, const json_t *inst, int idepth, int adepth)
{
    if (++v->steps > SC_JSCHEMA_STEPS_MAX)
        return val_fail(v, "too complex to validate");
    if (idepth > SC_JSCHEMA_DEPTH_MAX || adepth > SC_JSCHEMA_APPLY_MAX)
        return val_fail(v, "nested too deeply");
    if (json_is_false(s))
        return val_fail(v, "no value is allowed here");
    if (!json_is_object(s))
        return 1; /* true (or no schema): anything */
    if (json_is_null(inst) && json_is_true(json_object_get(s, "nullable")))
        return 1;
    unsigned mask = type_mask(json_object_get(s, "type"));
    if (mask && !type_accepts(mask, inst)) {
        char buf[SC_JSCHEMA_REASON_MAX];
        return val_fail(v, "must be %s", type_phrase(mask, buf, sizeof buf));
    }
    const json_t *en = json_object_get(s, "enum");
    if (json_is_array(en)) {
        int found = 0;
        size_t k;
        const json_t *e;
        json_array_foreach(en, k, e) {
            if ((found = values_equal(e, inst, 0)))
                break;
        }
        if (!found)
            return val_fail(v, "must be one of the enum values");
    }
    const json_t *cv = json_object_get(s, "const");
    if (cv && !values_equal(cv, inst, 0))
        return val_fail(v, "must equal the const value");
    const json_t *ref = json_object_get(s, "$ref");
    if (json_is_string(ref)) {
        int bad;
        const json_t *target = resolve_ref(v->root, json_string_value(ref), &bad);
        if (target && !validate_node(v, target, inst, idepth, adepth + 1))
            return 0;
    }
    if (!validate_combinators(v, s, inst, idepth, adepth))
        return 0;
    switch (json_typeof(inst)) {
    case JSON_INTEGER:
    case JSON_REAL:
        return validate_number(v, s, inst);
    case JSON_STRING:
        return validate_string(v, s, inst);
    case JSON_ARRAY:
        return validate_array(v, s, inst, idepth, adepth);
    case JSON_OBJECT:
        return validate_object(v, s, inst, idepth, adepth);
    default:
        return 1;
    }
}

int sc_jschema_validate(const json_t *schema, sc_jschema_dialect_t d, const json_t *instance,
                        char *err, size_t errlen)
{
    sc_jval_t v;
    if (err && errlen)
        err[0] = '\0';
    val_init(&v, schema, d, 0, err, errlen);
    if (!instance)
        return val_fail(&v, "no value");
    return validate_node(&v, schema, instance, 0, 0);
}

/* ---- instance: generator state ---- */

typedef struct {
    const json_t *root; /* borrowed: what $ref resolves in */
    sc_jschema_dialect_t d;
    uint64_t rng; /* splitmix64 state */
    long nodes;   /* subschemas visited, against SC_JSCHEMA_GEN_NODES_MAX */
} sc_jgen_t;

static uint64_t gen_next(sc_jgen_t *g)
{
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n); 0 when n is 0. */
static uint64_t gen_below(sc_jgen_t *g, uint64_t n)
{
    return n ? gen_next(g) % n : 0;
}

/* 1 when inst (at instance depth idepth) is valid against s. */
static int gen_valid(const sc_jgen_t *g, const json_t *s, const json_t *inst, int idepth)
{
    sc_jval_t v;
    val_init(&v, g->root, g->d, 1, NULL, 0);
    return validate_node(&v, s, inst, idepth, 0);
}

/* out when it is valid against s, else NULL (out released). */
static json_t *gen_keep_valid(const sc_jgen_t *g, const json_t *s, json_t *out, int idepth)
{
    if (out && !gen_valid(g, s, out, idepth)) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static const char sc_jschema_consonants[] = "bcdfghklmnprstvz";
static const char sc_jschema_vowels[] = "aeiou";

static char gen_letter(sc_jgen_t *g)
{
    return (char)('a' + gen_below(g, 26));
}

/* ---- instance: flattening $ref and allOf ---- */

static int is_lower_bound(const char *key)
{
    return strcmp(key, "minimum") == 0 || strcmp(key, "exclusiveMinimum") == 0 ||
           strcmp(key, "minItems") == 0 || strcmp(key, "minLength") == 0 ||
           strcmp(key, "minProperties") == 0;
}

static int is_upper_bound(const char *key)
{
    return strcmp(key, "maximum") == 0 || strcmp(key, "exclusiveMaximum") == 0 ||
           strcmp(key, "maxItems") == 0 || strcmp(key, "maxLength") == 0 ||
           strcmp(key, "maxProperties") == 0;
}

static int array_has_string(const json_t *a, const char *s)
{
    size_t k;
    const json_t *e;
    json_array_foreach(a, k, e) {
        if (json_is_string(e) && strcmp(json_string_value(e), s) == 0)
            return 1;
    }
    return 0;
}

/* Combine keyword key = val (borrowed) into dst, the merged schema: constraints that can be
 * intersected are, otherwise the first one stays (the instance is checked against the
 * original in the end). 0, or -1 when the two cannot both hold or on allocation failure. */
static int merge_key(json_t *dst, const char *key, const json_t *val)
{
    json_t *cur = json_object_get(dst, key);
    int props = strcmp(key, "properties") == 0, req = strcmp(key, "required") == 0;
    if (!cur) {
        /* properties and required are extended in place later: a copy of our own */
        json_t *nv = props || req ? json_copy((json_t *)val) : json_incref((json_t *)val);
        return nv ? json_object_set_new(dst, key, nv) : -1;
    }
    if (props && json_is_object(cur) && json_is_object(val)) {
        const char *name;
        json_t *ps;
        json_object_foreach((json_t *)val, name, ps) {
            json_t *have = json_object_get(cur, name);
            json_t *nv = have ? json_pack("{s[OO]}", "allOf", have, ps) : json_incref(ps);
            if (!nv || json_object_set_new(cur, name, nv) != 0)
                return -1;
        }
        return 0;
    }
    if (req && json_is_array(cur)) {
        size_t k;
        const json_t *e;
        json_array_foreach(val, k, e) {
            if (json_is_string(e) && !array_has_string(cur, json_string_value(e)) &&
                json_array_append(cur, (json_t *)e) != 0)
                return -1;
        }
        return 0;
    }
    if (strcmp(key, "type") == 0) {
        unsigned a = type_mask(cur), b = type_mask(val), m = a & b;
        if (((a & SC_JT_INTEGER) && (b & SC_JT_NUMBER)) ||
            ((b & SC_JT_INTEGER) && (a & SC_JT_NUMBER)))
            m |= SC_JT_INTEGER;
        if (!m)
            return -1;
        json_t *t = json_array();
        for (size_t i = 0; t && i < SC_ARRAY_LEN(sc_jschema_types); i++)
            if ((m & sc_jschema_types[i].bit) &&
                json_array_append_new(t, json_string(sc_jschema_types[i].name)) != 0) {
                json_decref(t);
                t = NULL;
            }
        return t ? json_object_set_new(dst, key, t) : -1;
    }
    if (strcmp(key, "enum") == 0) {
        json_t *both = json_array();
        size_t k, j;
        const json_t *e, *f;
        json_array_foreach(cur, k, e) {
            json_array_foreach(val, j, f) {
                if (values_equal(e, f, 0)) {
                    if (!both || json_array_append((json_t *)both, (json_t *)e) != 0) {
                        json_decref(both);
                        return -1;
                    }
                    break;
                }
            }
        }
        if (!both || json_array_size(both) == 0) {
            json_decref(both);
            return -1;
        }
        return json_object_set_new(dst, key, both);
    }
    if (strcmp(key, "const") == 0)
        return values_equal(cur, val, 0) ? 0 : -1;
    if (json_is_number(cur) && json_is_number(val) &&
        ((is_lower_bound(key) && json_number_value(val) > json_number_value(cur)) ||
         (is_upper_bound(key) && json_number_value(val) < json_number_value(cur))))
        return json_object_set(dst, key, (json_t *)val);
    if ((strcmp(key, "additionalProperties") == 0 && json_is_false(val)) ||
        (strcmp(key, "nullable") == 0 && !json_is_true(val)))
        return json_object_set(dst, key, (json_t *)val);
    return 0;
}

/* Merge src's keywords into dst, expanding its $ref and allOf; skip: a keyword of src itself
 * left out (or NULL). *refs counts the $ref hops. 0, or -1 (unsatisfiable, too deep, too big,
 * out of memory). */
static int merge_into(sc_jgen_t *g, json_t *dst, const json_t *src, const char *skip, int adepth,
                      int *refs)
{
    if (++g->nodes > SC_JSCHEMA_GEN_NODES_MAX || adepth > SC_JSCHEMA_APPLY_MAX)
        return -1;
    if (json_is_true(src))
        return 0;
    if (!json_is_object(src))
        return -1;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)src, key, val) {
        if ((skip && strcmp(key, skip) == 0) || strcmp(key, "$ref") == 0 ||
            strcmp(key, "allOf") == 0)
            continue;
        if (merge_key(dst, key, val) != 0)
            return -1;
    }
    const json_t *ref = json_object_get(src, "$ref");
    if (json_is_string(ref)) {
        int bad;
        const json_t *target = resolve_ref(g->root, json_string_value(ref), &bad);
        if (!target)
            return -1;
        (*refs)++;
        if (merge_into(g, dst, target, NULL, adepth + 1, refs) != 0)
            return -1;
    }
    size_t k;
    const json_t *b;
    json_array_foreach(json_object_get(src, "allOf"), k, b) {
        if (merge_into(g, dst, b, NULL, adepth + 1, refs) != 0)
            return -1;
    }
    return 0;
}

/* ---- instance: strings from patterns ---- */

typedef struct {
    sc_jgen_t *g;
    char *buf; /* cap bytes */
    size_t len, cap;
    long extra; /* repetitions an open quantifier may add */
    int depth;
} sc_jpat_t;

static int pat_emit(sc_jpat_t *p, char ch)
{
    if (p->len + 1 >= p->cap)
        return -1;
    p->buf[p->len++] = ch;
    return 0;
}

/* After the POSIX bracket expression that opens at b, or NULL. */
static const char *pat_bracket_end(const char *b, const char *e)
{
    const char *q = b + 1;
    if (q < e && *q == '^')
        q++;
    if (q < e && *q == ']')
        q++;
    while (q < e && *q != ']') {
        if (*q == '[' && q + 1 < e && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
            char kind = q[1];
            const char *r = q + 2;
            while (r + 1 < e && !(r[0] == kind && r[1] == ']'))
                r++;
            if (r + 1 >= e)
                return NULL;
            q = r + 2;
        } else {
            q++;
        }
    }
    return q < e ? q + 1 : NULL;
}

/* After the atom that starts at q, or NULL when it is malformed. */
static const char *pat_atom_end(const char *q, const char *e)
{
    if (*q == '\\')
        return q + 1 < e ? q + 2 : NULL;
    if (*q == '[')
        return pat_bracket_end(q, e);
    if (*q != '(')
        return q + 1;
    int level = 0;
    while (q < e) {
        if (*q == '\\') {
            q += q + 1 < e ? 2 : 1;
            continue;
        }
        if (*q == '[') {
            q = pat_bracket_end(q, e);
            if (!q)
                return NULL;
            continue;
        }
        if (*q == '(')
            level++;
        else if (*q == ')' && --level == 0)
            return q + 1;
        q++;
    }
    return NULL;
}

static int class_has(const char *name, size_t len, int c)
{
    static const struct {
        const char *name;
        int (*fn)(int);
    } classes[] = {
        {"alpha", isalpha}, {"digit", isdigit}, {"alnum", isalnum},   {"upper", isupper},
        {"lower", islower}, {"space", isspace}, {"xdigit", isxdigit}, {"punct", ispunct},
        {"blank", isblank}, {"print", isprint}, {"graph", isgraph},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(classes); i++)
        if (strlen(classes[i].name) == len && strncmp(classes[i].name, name, len) == 0)
            return classes[i].fn(c) != 0;
    return 0;
}

/* One printable ASCII character of the bracket expression [b, e) (e after ']'). */
static int pat_class(sc_jpat_t *p, const char *b, const char *e)
{
    unsigned char in[128] = {0};
    const char *q = b + 1, *end = e - 1;
    int neg = 0;
    if (*q == '^') {
        neg = 1;
        q++;
    }
    if (*q == ']') {
        in[']'] = 1;
        q++;
    }
    while (q < end) {
        if (*q == '[' && q + 1 < end && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
            char kind = q[1];
            const char *r = q + 2;
            while (r + 1 < end && !(r[0] == kind && r[1] == ']'))
                r++;
            for (int c = 0x20; c < 0x7f; c++)
                if (kind == ':' ? class_has(q + 2, (size_t)(r - q - 2), c) : c == q[2])
                    in[c] = 1;
            q = r + 2;
            continue;
        }
        unsigned char c = (unsigned char)*q;
        if (q + 2 < end && q[1] == '-') {
            for (unsigned x = c; x <= (unsigned char)q[2] && x < 128; x++)
                in[x] = 1;
            q += 3;
            continue;
        }
        if (c < 128)
            in[c] = 1;
        q++;
    }
    char members[128];
    size_t n = 0;
    /* word-like first: an alphanumeric member when there is one */
    for (int pass = 0; pass < 2 && n == 0; pass++)
        for (int c = 0x20; c < 0x7f; c++)
            if ((in[c] != 0) != neg && (pass == 1 || isalnum(c)))
                members[n++] = (char)c;
    if (n == 0)
        return -1;
    return pat_emit(p, members[gen_below(p->g, n)]);
}

static int pat_alt(sc_jpat_t *p, const char *s, const char *e);

static int pat_atom(sc_jpat_t *p, const char *q, const char *ae)
{
    switch (*q) {
    case '^':
    case '$':
        return 0;
    case '.':
        return pat_emit(p, gen_letter(p->g));
    case '(':
        return pat_alt(p, q + 1, ae - 1);
    case '[':
        return pat_class(p, q, ae);
    case '\\':
        switch (q[1]) {
        case 'b':
        case 'B':
        case '<':
        case '>':
        case '`':
        case '\'':
            return 0; /* anchors */
        case 'w':
        case 'S':
            return pat_emit(p, gen_letter(p->g));
        case 's':
            return pat_emit(p, ' ');
        case 'W':
            return pat_emit(p, '-');
        default:
            return pat_emit(p, q[1]);
        }
    default:
        return pat_emit(p, *q);
    }
}

/* Parse an interval "{n}", "{n,}", "{n,m}" at q; the position after it, or NULL. */
static const char *pat_interval(const char *q, const char *e, long *lo, long *hi, long extra)
{
    char *endp;
    if (q >= e || *q != '{' || !isdigit((unsigned char)q[1]))
        return NULL;
    long n = strtol(q + 1, &endp, 10), m = n;
    if (*endp == ',') {
        if (isdigit((unsigned char)endp[1]))
            m = strtol(endp + 1, &endp, 10);
        else {
            m = n + extra;
            endp++;
        }
    }
    if (endp >= e || *endp != '}' || m < n || n > SC_JSCHEMA_GEN_STRING_MAX)
        return NULL;
    *lo = n;
    *hi = m < n + extra ? m : n + extra;
    return endp + 1;
}

static int pat_seq(sc_jpat_t *p, const char *s, const char *e)
{
    const char *q = s;
    while (q < e) {
        const char *ae = pat_atom_end(q, e), *r;
        if (!ae)
            return -1;
        long lo = 1, hi = 1;
        r = ae;
        if (r < e && (*r == '*' || *r == '+' || *r == '?')) {
            lo = *r == '+';
            hi = *r == '?' ? 1 : lo + p->extra;
            r++;
        } else if (r < e && *r == '{') {
            const char *after = pat_interval(r, e, &lo, &hi, p->extra);
            if (after)
                r = after;
        }
        long reps = lo + (long)gen_below(p->g, (uint64_t)(hi - lo + 1));
        for (long i = 0; i < reps; i++)
            if (pat_atom(p, q, ae) != 0)
                return -1;
        q = r;
    }
    return 0;
}

/* One alternative of [s, e), chosen by the generator. */
static int pat_alt(sc_jpat_t *p, const char *s, const char *e)
{
    size_t n = 1;
    for (const char *q = s; q < e;) {
        if (*q == '|') {
            n++;
            q++;
        } else if (!(q = pat_atom_end(q, e))) {
            return -1;
        }
    }
    if (++p->depth > SC_JSCHEMA_DEPTH_MAX)
        return -1;
    size_t want = (size_t)gen_below(p->g, n), at = 0;
    const char *as = s, *q = s;
    while (q < e) {
        if (*q == '|') {
            if (at == want)
                break;
            at++;
            q++;
            as = q;
        } else {
            q = pat_atom_end(q, e);
        }
    }
    int rc = pat_seq(p, as, q);
    p->depth--;
    return rc;
}

/* ---- instance: values ---- */

static json_t *gen_node(sc_jgen_t *g, const json_t *s, int idepth, int adepth, int refs);

static json_t *gen_string(sc_jgen_t *g, const json_t *s)
{
    long long mn = 0, mx = SC_JSCHEMA_GEN_STRING_MAX;
    get_count(s, "minLength", &mn);
    int has_max = get_count(s, "maxLength", &mx);
    if (mx > SC_JSCHEMA_GEN_STRING_MAX)
        mx = SC_JSCHEMA_GEN_STRING_MAX;
    if (mn > mx)
        return NULL;
    const json_t *pat = json_object_get(s, "pattern");
    char posix[SC_JSCHEMA_PATTERN_MAX];
    regex_t rx;
    if (json_is_string(pat) && pattern_compile(json_string_value(pat), &rx, posix)) {
        json_t *out = NULL;
        char *buf = malloc(SC_JSCHEMA_GEN_STRING_MAX + 1);
        for (int t = 0; buf && !out && t < SC_JSCHEMA_GEN_TRIES; t++) {
            sc_jpat_t p = {
                .g = g, .buf = buf, .cap = SC_JSCHEMA_GEN_STRING_MAX + 1, .extra = 2 + 2L * t};
            if (pat_alt(&p, posix, posix + strlen(posix)) != 0)
                continue;
            buf[p.len] = '\0';
            long long len = (long long)utf8_len(buf, p.len);
            if (len >= mn && len <= mx && regexec(&rx, buf, 0, NULL, 0) == 0)
                out = json_string(buf);
        }
        free(buf);
        regfree(&rx);
        return out;
    }
    const char *fmt = json_string_value(json_object_get(s, "format"));
    const char *fixed = NULL;
    if (fmt && strcmp(fmt, "date-time") == 0)
        fixed = "2026-01-01T00:00:00Z";
    else if (fmt && strcmp(fmt, "date") == 0)
        fixed = "2026-01-01";
    if (fixed && (long long)strlen(fixed) >= mn && (long long)strlen(fixed) <= mx)
        return json_string(fixed);
    long long len = 4 + (long long)gen_below(g, 6);
    if (len < mn)
        len = mn;
    if (has_max && len > mx)
        len = mx;
    char *buf = malloc((size_t)len + 1);
    if (!buf)
        return NULL;
    for (long long i = 0; i < len; i++)
        buf[i] = i % 2 ? sc_jschema_vowels[gen_below(g, sizeof sc_jschema_vowels - 1)]
                       : sc_jschema_consonants[gen_below(g, sizeof sc_jschema_consonants - 1)];
    buf[len] = '\0';
    json_t *out = json_string(buf);
    free(buf);
    return out;
}

static int in_bounds(double x, double lo, int lo_x, double hi, int hi_x)
{
    return (lo_x ? x > lo : x >= lo) && (hi_x ? x < hi : x <= hi);
}

static json_t *gen_number(sc_jgen_t *g, const json_t *s, int integer)
{
    double lo = -INFINITY, hi = INFINITY, b;
    int lo_x = 0, hi_x = 0;
    if (get_number(s, "minimum", &b))
        lo = b;
    if (get_number(s, "exclusiveMinimum", &b) && b >= lo) {
        lo = b;
        lo_x = 1;
    }
    if (get_number(s, "maximum", &b))
        hi = b;
    if (get_number(s, "exclusiveMaximum", &b) && b <= hi) {
        hi = b;
        hi_x = 1;
    }
    if (integer) {
        double ilo = lo_x ? floor(lo) + 1 : ceil(lo), ihi = hi_x ? ceil(hi) - 1 : floor(hi);
        if (ilo < -SC_JSCHEMA_INT_LIMIT)
            ilo = isfinite(ihi) && ihi < SC_JSCHEMA_INT_LIMIT ? ihi - SC_JSCHEMA_GEN_SPAN : 0;
        if (ihi > SC_JSCHEMA_INT_LIMIT)
            ihi = ilo + SC_JSCHEMA_GEN_SPAN;
        if (ilo < -SC_JSCHEMA_INT_LIMIT)
            ilo = -SC_JSCHEMA_INT_LIMIT;
        if (ihi > SC_JSCHEMA_INT_LIMIT)
            ihi = SC_JSCHEMA_INT_LIMIT;
        if (ilo > ihi)
            return NULL;
        uint64_t span = (uint64_t)(ihi - ilo) + 1;
        return json_integer((json_int_t)(ilo + (double)gen_below(g, span)));
    }
    double a = lo, z = hi;
    if (!isfinite(a) && !isfinite(z)) {
        a = 0;
        z = SC_JSCHEMA_GEN_SPAN;
    } else if (!isfinite(z)) {
        z = a + SC_JSCHEMA_GEN_SPAN;
    } else if (!isfinite(a)) {
        a = z - SC_JSCHEMA_GEN_SPAN;
    }
    if (a > z || (a == z && (lo_x || hi_x)))
        return NULL;
    double u = (double)(1 + gen_below(g, SC_JSCHEMA_GEN_GRID - 1)) / SC_JSCHEMA_GEN_GRID;
    double x = a * (1 - u) + z * u;
    double r = round(x * 100) / 100;
    if (isfinite(r) && in_bounds(r, lo, lo_x, hi, hi_x))
        x = r;
    else if (!in_bounds(x, lo, lo_x, hi, hi_x))
        x = a / 2 + z / 2;
    return in_bounds(x, lo, lo_x, hi, hi_x) ? json_real(x) : NULL;
}

/* 1 when name is in s's "required". */
static int is_required(const json_t *s, const char *name)
{
    return array_has_string(json_object_get(s, "required"), name);
}

/* Add property name (schema ps, NULL: any) to o; 0, or -1 when it cannot be made. */
static int gen_prop(sc_jgen_t *g, json_t *o, const char *name, const json_t *ps, int idepth,
                    int adepth, int refs)
{
    json_t *v = gen_node(g, ps, idepth + 1, adepth + 1, refs);
    if (!v)
        return -1;
    return json_object_set_new(o, name, v);
}

static json_t *gen_object(sc_jgen_t *g, const json_t *s, int idepth, int adepth, int refs)
{
    const json_t *props = json_object_get(s, "properties");
    const json_t *addl = json_object_get(s, "additionalProperties");
    const json_t *extra_schema = json_is_object(addl) ? addl : NULL;
    int minimal = refs >= SC_JSCHEMA_GEN_REFS_FULL;
    json_t *o = json_object();
    long long mn = 0, mx = 0;
    size_t k;
    const json_t *e;
    const char *name;
    json_t *ps;

    if (!o)
        return NULL;
    /* propertyOrdering first, then the rest in the schema's order */
    json_array_foreach(json_object_get(s, "propertyOrdering"), k, e) {
        const char *pn = json_string_value(e);
        ps = pn ? json_object_get(props, pn) : NULL;
        if (!ps || json_object_get(o, pn) || (minimal && !is_required(s, pn)))
            continue;
        if (gen_prop(g, o, pn, ps, idepth, adepth, refs) != 0 && is_required(s, pn))
            goto fail;
    }
    json_object_foreach((json_t *)props, name, ps) {
        if (json_object_get(o, name) || (minimal && !is_required(s, name)))
            continue;
        if (gen_prop(g, o, name, ps, idepth, adepth, refs) != 0 && is_required(s, name))
            goto fail;
    }
    /* required names no property declares */
    json_array_foreach(json_object_get(s, "required"), k, e) {
        const char *rn = json_string_value(e);
        if (!rn || json_object_get(o, rn))
            continue;
        if (json_object_get(props, rn) || json_is_false(addl) ||
            gen_prop(g, o, rn, extra_schema, idepth, adepth, refs) != 0)
            goto fail;
    }
    if (get_count(s, "minProperties", &mn) && (long long)json_object_size(o) < mn) {
        json_object_foreach((json_t *)props, name, ps) {
            if ((long long)json_object_size(o) >= mn)
                break;
            if (!json_object_get(o, name))
                gen_prop(g, o, name, ps, idepth, adepth, refs);
        }
        for (long long i = 1; (long long)json_object_size(o) < mn; i++) {
            char extra[32];
            snprintf(extra, sizeof extra, "extra%lld", i);
            if (json_object_get(o, extra) || json_object_get(props, extra))
                continue;
            if (json_is_false(addl) ||
                gen_prop(g, o, extra, extra_schema, idepth, adepth, refs) != 0)
                goto fail;
        }
    }
    if (get_count(s, "maxProperties", &mx)) {
        while ((long long)json_object_size(o) > mx) {
            const char *last = NULL;
            json_object_foreach(o, name, ps) {
                if (!is_required(s, name))
                    last = name;
            }
            char *drop = last ? strdup(last) : NULL; /* last is the key's own storage */
            int rc = drop ? json_object_del(o, drop) : -1;
            free(drop);
            if (rc != 0)
                goto fail;
        }
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

static json_t *gen_array(sc_jgen_t *g, const json_t *s, int idepth, int adepth, int refs)
{
    const json_t *items = json_object_get(s, "items");
    const json_t *prefix = json_object_get(s, "prefixItems");
    int minimal = refs >= SC_JSCHEMA_GEN_REFS_FULL;
    long long mn = 0, mx = 0;
    int has_min = get_count(s, "minItems", &mn), has_max = get_count(s, "maxItems", &mx);
    if (has_min && has_max && mn > mx)
        return NULL;
    long long lo = has_min ? mn : (minimal ? 0 : 1);
    if (has_max && lo > mx)
        lo = mx;
    long long hi = minimal ? lo : lo + 2;
    if (has_max && hi > mx)
        hi = mx;
    long long n = lo + (long long)gen_below(g, (uint64_t)(hi - lo + 1));
    json_t *a = json_array();
    for (long long i = 0; a && i < n; i++) {
        const json_t *is =
            (size_t)i < json_array_size(prefix) ? json_array_get(prefix, (size_t)i) : items;
        json_t *v = gen_node(g, is, idepth + 1, adepth + 1, refs);
        if (!v) {
            if (i < mn) {
                json_decref(a);
                return NULL;
            }
            break;
        }
        if (json_array_append_new(a, v) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* The type a schema with no "type" most likely describes. */
static unsigned infer_mask(const json_t *s)
{
    static const struct {
        const char *key;
        unsigned bit;
    } hints[] = {
        {"properties", SC_JT_OBJECT},
        {"required", SC_JT_OBJECT},
        {"additionalProperties", SC_JT_OBJECT},
        {"minProperties", SC_JT_OBJECT},
        {"maxProperties", SC_JT_OBJECT},
        {"propertyOrdering", SC_JT_OBJECT},
        {"items", SC_JT_ARRAY},
        {"prefixItems", SC_JT_ARRAY},
        {"minItems", SC_JT_ARRAY},
        {"maxItems", SC_JT_ARRAY},
        {"minimum", SC_JT_NUMBER},
        {"maximum", SC_JT_NUMBER},
        {"exclusiveMinimum", SC_JT_NUMBER},
        {"exclusiveMaximum", SC_JT_NUMBER},
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(hints); i++)
        if (json_object_get(s, hints[i].key))
            return hints[i].bit;
    return SC_JT_STRING;
}

static json_t *gen_typed(sc_jgen_t *g, const json_t *s, int idepth, int adepth, int refs)
{
    unsigned mask = type_mask(json_object_get(s, "type"));
    if (!mask)
        mask = infer_mask(s);
    if (mask & ~SC_JT_NULL)
        mask &= ~SC_JT_NULL; /* a value is more useful than null */
    unsigned bits[SC_ARRAY_LEN(sc_jschema_types)];
    size_t n = 0;
    for (size_t i = 0; i < SC_ARRAY_LEN(sc_jschema_types); i++)
        if (mask & sc_jschema_types[i].bit)
            bits[n++] = sc_jschema_types[i].bit;
    size_t start = (size_t)gen_below(g, n);
    for (size_t k = 0; k < n; k++) {
        json_t *out = NULL;
        switch (bits[(start + k) % n]) {
        case SC_JT_STRING:
            out = gen_string(g, s);
            break;
        case SC_JT_NUMBER:
            out = gen_number(g, s, 0);
            break;
        case SC_JT_INTEGER:
            out = gen_number(g, s, 1);
            break;
        case SC_JT_BOOLEAN:
            out = json_boolean(gen_below(g, 2));
            break;
        case SC_JT_ARRAY:
            out = gen_array(g, s, idepth, adepth, refs);
            break;
        case SC_JT_OBJECT:
            out = gen_object(g, s, idepth, adepth, refs);
            break;
        case SC_JT_NULL:
            out = json_null();
            break;
        }
        if (out)
            return out;
    }
    return NULL;
}

/* A branch of s's anyOf or oneOf (key) merged with the rest of s, tried from a seeded start
 * until one makes an instance valid against s. */
static json_t *gen_branch(sc_jgen_t *g, const json_t *s, const char *key, int idepth, int adepth,
                          int refs)
{
    const json_t *branches = json_object_get(s, key);
    size_t n = json_array_size(branches), start = (size_t)gen_below(g, n);
    for (size_t k = 0; k < n; k++) {
        int r = refs;
        json_t *m = json_object(), *out = NULL;
        if (m && merge_into(g, m, s, key, adepth, &r) == 0 &&
            merge_into(g, m, json_array_get(branches, (start + k) % n), NULL, adepth, &r) == 0)
            out = gen_keep_valid(g, s, gen_node(g, m, idepth, adepth + 1, r), idepth);
        json_decref(m);
        if (out)
            return out;
    }
    return NULL;
}

/* A new instance of s (NULL: any value) at instance depth idepth, or NULL. */
static json_t *gen_node(sc_jgen_t *g, const json_t *s, int idepth, int adepth, int refs)
{
    if (++g->nodes > SC_JSCHEMA_GEN_NODES_MAX || idepth > SC_JSCHEMA_DEPTH_MAX ||
        adepth > SC_JSCHEMA_APPLY_MAX || json_is_false(s))
        return NULL;
    if (!json_is_object(s))
        return gen_string(g, NULL);
    if (json_object_get(s, "$ref") || json_object_get(s, "allOf")) {
        int r = refs;
        json_t *m = json_object(), *out = NULL;
        if (m && merge_into(g, m, s, NULL, adepth, &r) == 0)
            out = gen_keep_valid(g, s, gen_node(g, m, idepth, adepth + 1, r), idepth);
        json_decref(m);
        return out;
    }
    if (json_object_get(s, "anyOf"))
        return gen_branch(g, s, "anyOf", idepth, adepth, refs);
    if (json_object_get(s, "oneOf"))
        return gen_branch(g, s, "oneOf", idepth, adepth, refs);
    const json_t *cv = json_object_get(s, "const");
    if (cv)
        return gen_keep_valid(g, s, json_deep_copy(cv), idepth);
    const json_t *en = json_object_get(s, "enum");
    if (json_is_array(en)) {
        size_t n = json_array_size(en), start = (size_t)gen_below(g, n);
        /* a null member only when nothing else is valid */
        for (int pass = 0; pass < 2; pass++)
            for (size_t k = 0; k < n; k++) {
                const json_t *e = json_array_get(en, (start + k) % n);
                if (json_is_null(e) != pass)
                    continue;
                if (gen_valid(g, s, e, idepth))
                    return json_deep_copy(e);
            }
        return NULL;
    }
    return gen_typed(g, s, idepth, adepth, refs);
}

json_t *sc_jschema_instance(const json_t *schema, sc_jschema_dialect_t d, uint64_t seed)
{
    sc_jgen_t g = {.root = schema, .d = d, .rng = seed, .nodes = 0};
    json_t *out = gen_node(&g, schema, 0, 0, 0);
    /* the contract is a valid instance or none */
    return gen_keep_valid(&g, schema, out, 0);
}
