/* guards.c - look-alike guards of the semantic cache: extracts numbers, quoted strings,
 * identifiers, negation, names, content words and the word order the order guards read
 * (guards_order.c) from two prompts (stack only) and refuses a cache hit when they disagree. */
#include "host/cache/guards.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

/* ---- bounds ---- */

/* Items kept per category per text; a text with more is treated as differing (conservative). */
#define SC_GUARD_MAX_ITEMS 128
/* Words kept per text (content words, and plain words for the sentence-start name rule). */
#define SC_GUARD_MAX_WORDS 512
/* A word longer than this is hashed in full but never looked up in the word lists. */
#define SC_GUARD_WORD_MAX 64
/* Normalised digits of one number (longer numbers are hashed from their first bytes plus length).
 */
#define SC_GUARD_NUM_MAX 64

/* The strict band refuses when the Jaccard distance of the content-word sets exceeds this. Chosen
 * on MSRP train/val by bench/bench_cache_quality.c (see bench/results/cache-quality.md);
 * overridable at compile time for calibration sweeps. */
/* 1: a capitalised first word of a sentence that is not a common opener ("Alice asked…") counts as
 * a name the other text must mention too; 0: it is ignored (chosen on MSRP train/val). */
#ifndef SC_GUARD_START_NAMES
#define SC_GUARD_START_NAMES 1
#endif

#ifndef SC_GUARD_STRICT_MAX_DIST
#define SC_GUARD_STRICT_MAX_DIST 0.6
#endif
/* … or when one text has more than this many content words the other lacks (an added clause: the
 * look-alike that MSRP's near-copies are made of). */
#ifndef SC_GUARD_STRICT_MAX_EXTRA
#define SC_GUARD_STRICT_MAX_EXTRA 2
#endif
/* … or when the two texts are the same words in the same order but for one span on each side, at
 * most this many words long and holding a content word on both sides: one detail swapped for
 * another ("a red light" / "an amber light", "in prod-eu" / "in prod-us", "the user service" /
 * "the payments gateway", "Enable …" / "Disable …"), the look-alike that template-made prompts
 * produce and that neither the set distance nor the one-sided count sees. 0: off. The span was set
 * by what a detail is, not on MSRP, which it does not move (cache-quality.md). */
#ifndef SC_GUARD_SWAP_SPAN
#define SC_GUARD_SWAP_SPAN 2
#endif
/* 1: the parts of a hyphenated compound are content words even when they are function words on
 * their own ("prod-us", "opt-in" / "opt-out", "sign-up"); 0: as on their own. */
#ifndef SC_GUARD_COMPOUND_PARTS
#define SC_GUARD_COMPOUND_PARTS 1
#endif

/* ---- word lists ---- */

/* Function words: never names (even capitalised), never content words. */
static const char *const stop_words[] = {
    "a",          "about",    "above",     "after",   "again",     "all",      "also",
    "am",         "an",       "and",       "any",     "are",       "as",       "at",
    "be",         "because",  "been",      "before",  "being",     "between",  "both",
    "but",        "by",       "can",       "could",   "d",         "did",      "do",
    "does",       "doing",    "done",      "down",    "during",    "each",     "else",
    "every",      "few",      "for",       "from",    "further",   "get",      "gets",
    "getting",    "got",      "had",       "has",     "have",      "having",   "he",
    "her",        "here",     "hers",      "herself", "hey",       "hi",       "him",
    "himself",    "his",      "how",       "i",       "if",        "in",       "into",
    "is",         "it",       "its",       "itself",  "just",      "kindly",   "let",
    "lets",       "ll",       "m",         "may",     "me",        "might",    "mine",
    "more",       "most",     "much",      "must",    "my",        "myself",   "of",
    "off",        "ok",       "okay",      "on",      "once",      "one",      "only",
    "or",         "other",    "our",       "ours",    "ourselves", "out",      "over",
    "own",        "please",   "pls",       "re",      "s",         "same",     "shall",
    "she",        "should",   "so",        "some",    "such",      "t",        "than",
    "thank",      "thanks",   "that",      "the",     "their",     "theirs",   "them",
    "themselves", "then",     "there",     "these",   "they",      "this",     "those",
    "through",    "to",       "too",       "under",   "until",     "up",       "us",
    "ve",         "very",     "was",       "we",      "were",      "what",     "when",
    "where",      "which",    "while",     "who",     "whom",      "whose",    "why",
    "will",       "with",     "would",     "yes",     "you",       "your",     "yours",
    "yourself",   "i'm",      "i've",      "i'd",     "i'll",      "it's",     "that's",
    "there's",    "what's",   "where's",   "how's",   "who's",     "let's",    "you're",
    "we're",      "they're",  "hello",     "dear",    "regarding", "quick",    "question",
    "again",      "anyone",   "anybody",   "someone", "something", "somebody", "way",
    "really",     "actually", "currently", "now",     "pm",        "etc",      "vs"};

/* Words that often open a prompt or a sentence and are not names when capitalised there. */
static const char *const starter_words[] = {
    "add",        "according",   "after",       "also",     "although",  "analyze",    "analyse",
    "another",    "answer",      "apply",       "approve",  "ask",       "assuming",   "book",
    "build",      "calculate",   "cancel",      "change",   "check",     "clean",      "compare",
    "compute",    "confirm",     "convert",     "count",    "create",    "currently",  "debug",
    "define",     "delete",      "describe",    "design",   "determine", "draft",      "during",
    "earlier",    "edit",        "email",       "estimate", "even",      "explain",    "export",
    "extract",    "fetch",       "fill",        "find",     "fix",       "follow",     "format",
    "generate",   "give",        "go",          "good",     "great",     "guess",      "help",
    "however",    "i",           "identify",    "imagine",  "implement", "import",     "in",
    "include",    "instead",     "is",          "it",       "keep",      "later",      "list",
    "load",       "look",        "make",        "many",     "meanwhile", "merge",      "migrate",
    "move",       "name",        "new",         "next",     "note",      "now",        "open",
    "optimize",   "order",       "outline",     "parse",    "pick",      "plan",       "plus",
    "prepare",    "print",       "provide",     "pull",     "put",       "quickly",    "rank",
    "read",       "recently",    "refactor",    "remind",   "remove",    "rename",     "reply",
    "report",     "request",     "reset",       "respond",  "restart",   "retrieve",   "return",
    "review",     "rewrite",     "run",         "save",     "say",       "schedule",   "search",
    "see",        "select",      "send",        "set",      "share",     "show",       "since",
    "sort",       "start",       "still",       "stop",     "suggest",   "summarise",  "summarize",
    "suppose",    "sure",        "take",        "tell",     "test",      "today",      "tomorrow",
    "translate",  "try",         "turn",        "unless",   "update",    "upgrade",    "use",
    "validate",   "verify",      "want",        "whats",    "whether",   "write",      "yesterday",
    "yet",        "given",       "assume",      "hey",      "sorry",     "urgent",     "hmm",
    "well",       "so",          "ok",          "accept",   "adjust",    "allocate",   "archive",
    "arrange",    "assign",      "attach",      "audit",    "block",     "brainstorm", "bump",
    "call",       "classify",    "close",       "collect",  "comment",   "complete",   "compose",
    "configure",  "connect",     "continue",    "copy",     "correct",   "cut",        "decline",
    "decrease",   "deploy",      "detect",      "disable",  "download",  "drop",       "duplicate",
    "enable",     "ensure",      "enter",       "escalate", "evaluate",  "expand",     "filter",
    "flag",       "forward",     "grant",       "group",    "handle",    "highlight",  "increase",
    "insert",     "install",     "investigate", "invite",   "issue",     "join",       "label",
    "launch",     "limit",       "lock",        "log",      "map",       "mark",       "measure",
    "message",    "modify",      "monitor",     "notify",   "offer",     "organize",   "organise",
    "paraphrase", "pause",       "pay",         "ping",     "place",     "port",       "post",
    "predict",    "prioritize",  "process",     "produce",  "propose",   "publish",    "push",
    "query",      "raise",       "rate",        "rebuild",  "recommend", "record",     "reduce",
    "refund",     "register",    "reject",      "release",  "reorder",   "repair",     "replace",
    "reproduce",  "reserve",     "resolve",     "restore",  "resume",    "revert",     "revoke",
    "rotate",     "scan",        "scrape",      "sign",     "simplify",  "split",      "submit",
    "swap",       "switch",      "sync",        "tag",      "terminate", "track",      "trigger",
    "unlock",     "unsubscribe", "upload",      "walk",     "warn",      "withdraw",   "sum",
    "shorten",    "proofread",   "polish",      "tidy",     "transfer",  "ship",       "grab",
    "hand",       "hold",        "host",        "lookup",   "draft",     "first",      "finally",
    "based",      "using",       "for",         "on",       "at",        "by",         "from",
    "to",         "any",         "every",       "each",     "all",       "some",       "as",
    "once",       "this",        "that",        "these",    "those",     "there",      "our",
    "your",       "my",          "their",       "his",      "her",       "its",        "we",
    "they",       "he",          "she",         "you",      "then",      "here",       "maybe",
    "perhaps",    "why",         "where",       "which",    "who",       "what",       "when",
    "how",        "will",        "would",       "can",      "could",     "should",     "do",
    "does",       "did",         "is",          "are",      "was",       "were",       "has",
    "have",       "had",         "a",           "an",       "the",       "if",         "and",
    "but",        "or",          "not",         "no",       "with",      "without",    "about",
    "before",     "after",       "because",     "while",    "only",      "just",       "again",
    "thanks",     "please"};

/* Abbreviations whose '.' does not end a sentence ("Mr. Nakamura" keeps its capital a name). */
static const char *const abbreviations[] = {
    "mr",   "mrs", "ms",  "dr",   "prof",   "st",  "jr",   "sr",  "inc", "corp", "ltd",
    "co",   "vs",  "etc", "no",   "gen",    "sen", "rep",  "gov", "lt",  "col",  "sgt",
    "capt", "mt",  "ft",  "dept", "approx", "e.g", "i.e",  "cf",  "fig", "jan",  "feb",
    "mar",  "apr", "jun", "jul",  "aug",    "sep", "sept", "oct", "nov", "dec"};

/* Whole words that negate (the "n't" contractions are recognised by their ending). */
static const char *const negation_words[] = {
    "not",    "no",      "never",  "none",    "nobody",  "nothing",  "nowhere", "neither",
    "nor",    "without", "cannot", "dont",    "doesnt",  "didnt",    "isnt",    "arent",
    "wasnt",  "werent",  "cant",   "couldnt", "wouldnt", "shouldnt", "wont",    "hasnt",
    "havent", "hadnt",   "aint",   "mustnt",  "neednt"};

typedef struct {
    const char *word;
    int value;
} num_word_t;

/* Spelled numbers; "one" is left out on its own (mostly a pronoun: "which one") but joins tens. */
static const num_word_t num_words[] = {
    {"two", 2},        {"three", 3},     {"four", 4},      {"five", 5},     {"six", 6},
    {"seven", 7},      {"eight", 8},     {"nine", 9},      {"ten", 10},     {"eleven", 11},
    {"twelve", 12},    {"thirteen", 13}, {"fourteen", 14}, {"fifteen", 15}, {"sixteen", 16},
    {"seventeen", 17}, {"eighteen", 18}, {"nineteen", 19}, {"twenty", 20},  {"thirty", 30},
    {"forty", 40},     {"fifty", 50},    {"sixty", 60},    {"seventy", 70}, {"eighty", 80},
    {"ninety", 90},    {"zero", 0}};

static const num_word_t scale_words[] = {
    {"hundred", 100}, {"thousand", 1000}, {"million", 1000000}, {"billion", 1000000000}};

static int in_list(const char *w, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(w, list[i]) == 0)
            return 1;
    return 0;
}

#define IN_LIST(w, list) in_list((w), (list), sizeof(list) / sizeof((list)[0]))

static int num_word_value(const char *w, const num_word_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(w, list[i].word) == 0)
            return list[i].value;
    return -1;
}

/* ---- hashing and bags ---- */

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME  1099511628211ULL

static uint64_t fnv_bytes(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= FNV_PRIME;
    }
    return h;
}

typedef struct {
    uint64_t *v;
    int n, cap, overflow;
} bag_t;

static void bag_add(bag_t *b, uint64_t h)
{
    if (b->n < b->cap)
        b->v[b->n++] = h;
    else
        b->overflow = 1;
}

static int bag_has(const bag_t *b, uint64_t h)
{
    for (int i = 0; i < b->n; i++)
        if (b->v[i] == h)
            return 1;
    return 0;
}

/* Shell sort: qsort may allocate. */
static void bag_sort(bag_t *b)
{
    static const int gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        int gap = gaps[g];
        for (int i = gap; i < b->n; i++) {
            uint64_t t = b->v[i];
            int j = i;
            for (; j >= gap && b->v[j - gap] > t; j -= gap)
                b->v[j] = b->v[j - gap];
            b->v[j] = t;
        }
    }
}

/* Both sorted. */
static int bag_equal(const bag_t *a, const bag_t *b)
{
    if (a->overflow || b->overflow || a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++)
        if (a->v[i] != b->v[i])
            return 0;
    return 1;
}

static void bag_dedupe(bag_t *b) /* sorted */
{
    int k = 0;
    for (int i = 0; i < b->n; i++)
        if (k == 0 || b->v[k - 1] != b->v[i])
            b->v[k++] = b->v[i];
    b->n = k;
}

/* ---- features of one text ---- */

typedef struct {
    uint64_t num_v[SC_GUARD_MAX_ITEMS], quo_v[SC_GUARD_MAX_ITEMS], id_v[SC_GUARD_MAX_ITEMS];
    uint64_t name_v[SC_GUARD_MAX_ITEMS], uname_v[SC_GUARD_MAX_ITEMS];
    uint64_t plain_v[SC_GUARD_MAX_WORDS], content_v[SC_GUARD_MAX_WORDS];
    bag_t num, quo, id, name, uname, plain, content;
    /* the words in text order (stemmed when content words; numbers and identifiers left out, the
     * hard guards compare those) and which of them are content words: for the swap rule */
    uint64_t seq_v[SC_GUARD_MAX_WORDS];
    unsigned char seq_content[SC_GUARD_MAX_WORDS];
    int seq_n, seq_overflow;
    int neg;
    int compound; /* inside a hyphenated compound (SC_GUARD_COMPOUND_PARTS) */
    /* every word in text order with its clause, numbers and identifiers included, and the antonym
     * poles counted: for guards_order.c */
    sc_guard_word_t ord_v[SC_GUARD_ORDER_MAX_WORDS];
    int ord_n, ord_overflow;
    uint16_t clause, pend_clause; /* pend_clause: where the pending number began */
    unsigned char poles[SC_GUARD_POLE_SLOTS];
    /* a spelled or scaled number being assembled ("two hundred", "2.5 million") */
    int pend_active, pend_modified, pend_neg;
    double pend_value;
    int pend_spelled, pend_numeric; /* numeric: pend_value means something */
    char pend_str[SC_GUARD_NUM_MAX];
    size_t pend_len;
} feat_t;

static void feat_init(feat_t *f)
{
    memset(f, 0, sizeof *f);
    f->num = (bag_t){f->num_v, 0, SC_GUARD_MAX_ITEMS, 0};
    f->quo = (bag_t){f->quo_v, 0, SC_GUARD_MAX_ITEMS, 0};
    f->id = (bag_t){f->id_v, 0, SC_GUARD_MAX_ITEMS, 0};
    f->name = (bag_t){f->name_v, 0, SC_GUARD_MAX_ITEMS, 0};
    f->uname = (bag_t){f->uname_v, 0, SC_GUARD_MAX_ITEMS, 0};
    f->plain = (bag_t){f->plain_v, 0, SC_GUARD_MAX_WORDS, 0};
    f->content = (bag_t){f->content_v, 0, SC_GUARD_MAX_WORDS, 0};
}

static void ord_add(feat_t *f, uint64_t h, uint8_t kind, uint16_t clause)
{
    if (f->ord_n < SC_GUARD_ORDER_MAX_WORDS)
        f->ord_v[f->ord_n++] = (sc_guard_word_t){h, clause, kind};
    else
        f->ord_overflow = 1;
}

/* ---- UTF-8 helpers ---- */

/* Decode one code point at s[0..n); invalid bytes read as U+FFFD of width 1. */
static utf8proc_int32_t decode(const char *s, size_t n, size_t *width)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t w =
        utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)(n > 4 ? 4 : n), &cp);
    if (w <= 0) {
        *width = 1;
        return 0xFFFD;
    }
    *width = (size_t)w;
    return cp;
}

static int is_space_cp(utf8proc_int32_t cp)
{
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\v' || cp == '\f')
        return 1;
    if (cp < 0x80)
        return 0;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

static int is_letter_cp(utf8proc_int32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_MN; /* letters and marks */
}

static int is_upper_cp(utf8proc_int32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z';
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT;
}

static int is_lower_cp(utf8proc_int32_t cp)
{
    if (cp < 0x80)
        return cp >= 'a' && cp <= 'z';
    return utf8proc_category(cp) == UTF8PROC_CATEGORY_LL;
}

static int is_digit_cp(utf8proc_int32_t cp)
{
    return cp >= '0' && cp <= '9';
}

static int is_apos_cp(utf8proc_int32_t cp)
{
    return cp == '\'' || cp == 0x2019;
}

static int is_wordch_cp(utf8proc_int32_t cp)
{
    return is_letter_cp(cp) || is_digit_cp(cp) || cp == '_' ||
           (cp >= 0x80 && utf8proc_category(cp) >= UTF8PROC_CATEGORY_ND &&
            utf8proc_category(cp) <= UTF8PROC_CATEGORY_NO);
}

/* Lower-case s[0..n) into out (at most outlen-1 bytes, terminated) and hash the full lower-cased
 * text into *h. Returns 1 when it fit in out. */
static int lower_hash(const char *s, size_t n, char *out, size_t outlen, uint64_t *h)
{
    uint64_t hh = FNV_OFFSET;
    size_t o = 0, i = 0;
    int fit = 1;
    while (i < n) {
        size_t w;
        utf8proc_int32_t cp = decode(s + i, n - i, &w);
        i += w;
        utf8proc_uint8_t buf[4];
        utf8proc_ssize_t bl = utf8proc_encode_char(utf8proc_tolower(cp), buf);
        hh = fnv_bytes(hh, (const char *)buf, (size_t)bl);
        if (o + (size_t)bl < outlen) {
            memcpy(out + o, buf, (size_t)bl);
            o += (size_t)bl;
        } else {
            fit = 0;
        }
    }
    out[o] = '\0';
    *h = hh;
    return fit;
}

static uint64_t tagged(uint64_t h, char tag)
{
    return fnv_bytes(h, &tag, 1);
}

/* ---- numbers ---- */

static void num_emit_str(feat_t *f, const char *s, size_t n, int neg)
{
    uint64_t h = fnv_bytes(fnv_bytes(FNV_OFFSET, neg ? "-" : "+", 1), s, n);
    bag_add(&f->num, h);
    ord_add(f, h, SC_GUARD_KIND_ENTITY, f->pend_clause);
}

static void pend_flush(feat_t *f)
{
    if (!f->pend_active)
        return;
    if (!f->pend_modified) {
        num_emit_str(f, f->pend_str, f->pend_len, f->pend_neg);
    } else {
        char buf[SC_GUARD_NUM_MAX];
        double v = f->pend_value;
        int n;
        if (fabs(v) < 1e15 && v == floor(v))
            n = snprintf(buf, sizeof buf, "%.0f", v);
        else
            n = snprintf(buf, sizeof buf, "%.6f", v);
        if (n < 0)
            n = 0;
        size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
        if (memchr(buf, '.', len)) { /* drop trailing zeros of the fraction */
            while (len > 0 && buf[len - 1] == '0')
                len--;
            if (len > 0 && buf[len - 1] == '.')
                len--;
        }
        num_emit_str(f, buf, len, f->pend_neg);
    }
    f->pend_active = 0;
}

/* One digit group s[0..n) (digits and single '.' between digits), normalised: leading zeros and a
 * fraction's trailing zeros dropped when there is at most one dot. */
static void num_digits(feat_t *f, const char *s, size_t n, int neg)
{
    pend_flush(f);
    int dots = 0;
    for (size_t i = 0; i < n; i++)
        dots += s[i] == '.';
    size_t a = 0, b = n;
    if (dots <= 1) {
        while (a + 1 < b && s[a] == '0' && s[a + 1] != '.')
            a++;
        if (dots == 1) {
            while (b > a && s[b - 1] == '0')
                b--;
            if (b > a && s[b - 1] == '.')
                b--;
        }
    }
    f->pend_active = 1;
    f->pend_clause = f->clause;
    f->pend_modified = 0;
    f->pend_spelled = 0;
    f->pend_neg = neg;
    size_t len = b - a;
    if (len >= sizeof f->pend_str) { /* an absurdly long number: keep a hash of it instead */
        uint64_t h = fnv_bytes(FNV_OFFSET, s + a, len);
        len = (size_t)snprintf(f->pend_str, sizeof f->pend_str, "#%016llx", (unsigned long long)h);
        f->pend_value = 0;
        f->pend_numeric = 0;
    } else {
        memcpy(f->pend_str, s + a, len);
        f->pend_str[len] = '\0';
        f->pend_numeric = dots <= 1;
        f->pend_value = dots <= 1 ? strtod(f->pend_str, NULL) : 0;
    }
    f->pend_len = len;
}

/* A run of digits, ',' and '.' (between digits): a ',' followed by exactly three digits (then the
 * end, a '.' or another ',') is a thousands separator; any other ',' separates two numbers. */
static void num_group(feat_t *f, const char *s, size_t n, int neg)
{
    char buf[SC_GUARD_NUM_MAX];
    size_t o = 0;
    int overlong = 0, seen_dot = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',') {
            seen_dot |= s[i] == '.';
            if (o + 1 < sizeof buf)
                buf[o++] = s[i];
            else
                overlong = 1;
            continue;
        }
        if (i < n) {
            size_t d = 0;
            while (i + 1 + d < n && s[i + 1 + d] >= '0' && s[i + 1 + d] <= '9')
                d++;
            size_t k = i + 1 + d;
            if (d == 3 && !seen_dot && o > 0 && (k == n || s[k] == '.' || s[k] == ','))
                continue; /* thousands separator: keep collecting */
        }
        if (overlong)
            num_digits(f, s, n, neg); /* hashed whole */
        else if (o > 0)
            num_digits(f, buf, o, neg);
        if (overlong)
            return;
        o = 0;
        seen_dot = 0;
        neg = 0;
    }
}

/* Spelled numbers and scales; returns 1 when the word was a number word. */
static int num_word(feat_t *f, const char *w)
{
    int v = num_word_value(w, scale_words, sizeof scale_words / sizeof scale_words[0]);
    if (v > 0) {
        if (f->pend_active && f->pend_numeric) {
            f->pend_value *= v;
            f->pend_modified = 1;
            return 1;
        }
        pend_flush(f);
        f->pend_active = 1;
        f->pend_clause = f->clause;
        f->pend_spelled = 1;
        f->pend_modified = 1;
        f->pend_neg = 0;
        f->pend_numeric = 1;
        f->pend_value = v;
        return 1;
    }
    v = num_word_value(w, num_words, sizeof num_words / sizeof num_words[0]);
    if (v < 0 && strcmp(w, "one") == 0)
        v = 1;
    if (v < 0)
        return 0;
    if (f->pend_active && f->pend_spelled) {
        double p = f->pend_value;
        int tens = p >= 20 && p < 100 && fmod(p, 10) == 0 && v < 10 && v > 0;
        int hundreds = p >= 100 && fmod(p, 100) == 0 && v < 100 && v > 0;
        if (tens || hundreds) {
            f->pend_value += v;
            return 1;
        }
    }
    if (v == 1) /* "one" alone is a pronoun more often than a count */
        return 0;
    pend_flush(f);
    f->pend_active = 1;
    f->pend_clause = f->clause;
    f->pend_spelled = 1;
    f->pend_modified = 1;
    f->pend_neg = 0;
    f->pend_numeric = 1;
    f->pend_value = v;
    return 1;
}

/* ---- words ---- */

static uint64_t stem_hash(const char *w)
{
    size_t n = strlen(w);
    if (n > 4 && strcmp(w + n - 3, "ies") == 0)
        n -= 2; /* policies -> polic(y) ~ polici: both sides stem alike */
    else if (n > 4 && strcmp(w + n - 3, "ing") == 0)
        n -= 3;
    else if (n > 4 && strcmp(w + n - 2, "ed") == 0)
        n -= 2;
    else if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's' && w[n - 2] != 'u' && w[n - 2] != 'i')
        n -= 1;
    return fnv_bytes(FNV_OFFSET, w, n);
}

/* A word of letters (apostrophes inside allowed). start: first word of a sentence or a quote. */
static void plain_word(feat_t *f, const char *s, size_t n, int start)
{
    /* strip a possessive 's / ’s */
    if (n > 2 && s[n - 2] == '\'' && (s[n - 1] == 's' || s[n - 1] == 'S'))
        n -= 2;
    else if (n > 4 && (unsigned char)s[n - 4] == 0xE2 && (unsigned char)s[n - 3] == 0x80 &&
             (unsigned char)s[n - 2] == 0x99 && (s[n - 1] == 's' || s[n - 1] == 'S'))
        n -= 4;
    if (n == 0)
        return;
    char lw[SC_GUARD_WORD_MAX];
    uint64_t h;
    int fit = lower_hash(s, n, lw, sizeof lw, &h);
    /* normalise the typographic apostrophe for the lists */
    char ascii[SC_GUARD_WORD_MAX];
    size_t ao = 0;
    for (size_t i = 0; fit && lw[i] && ao + 1 < sizeof ascii; i++) {
        if ((unsigned char)lw[i] == 0xE2 && (unsigned char)lw[i + 1] == 0x80 &&
            (unsigned char)lw[i + 2] == 0x99) {
            ascii[ao++] = '\'';
            i += 2;
        } else {
            ascii[ao++] = lw[i];
        }
    }
    ascii[ao] = '\0';
    if (fit) {
        size_t an = strlen(ascii);
        if ((an >= 3 && strcmp(ascii + an - 3, "n't") == 0) || IN_LIST(ascii, negation_words)) {
            pend_flush(f);
            f->neg++;
            return;
        }
        if (f->pend_active && f->pend_spelled && f->pend_value >= 100 && strcmp(ascii, "and") == 0)
            return; /* "two hundred and fifty" */
        if (num_word(f, ascii))
            return;
    }
    pend_flush(f);
    int stop = fit && IN_LIST(ascii, stop_words);

    /* case shape */
    size_t i = 0, w;
    int first_upper = 0, nletters = 0, nupper = 0, camel = 0, prev_lower = 0, first = 1;
    while (i < n) {
        utf8proc_int32_t cp = decode(s + i, n - i, &w);
        i += w;
        if (!is_letter_cp(cp))
            continue;
        int up = is_upper_cp(cp);
        if (first)
            first_upper = up;
        first = 0;
        nletters++;
        nupper += up;
        if (up && prev_lower)
            camel = 1;
        prev_lower = is_lower_cp(cp);
    }
    int all_caps = nletters >= 2 && nupper == nletters;
    int is_name = 0;
    if (!stop && first_upper) {
        if (all_caps || camel || !start) {
            bag_add(&f->name, tagged(h, 'n'));
            is_name = 1;
        } else if (!(fit && IN_LIST(ascii, starter_words))) {
            bag_add(&f->uname, tagged(h, 'n'));
            is_name = 1;
        }
    } else if (!first_upper && camel) { /* iPhone, getUserById: code-ish identifiers */
        bag_add(&f->id, tagged(h, 'i'));
        ord_add(f, tagged(h, 'i'), SC_GUARD_KIND_ENTITY, f->clause);
        return;
    }
    if (!is_name)
        bag_add(&f->plain, tagged(h, 'n'));
    int content = 0;
    uint64_t sh = h;
    if ((!stop || (SC_GUARD_COMPOUND_PARTS && f->compound)) && fit && ao >= 2) {
        sh = stem_hash(ascii);
        bag_add(&f->content, sh);
        content = 1;
    } else if (!stop && !fit) {
        bag_add(&f->content, h);
        content = 1;
    }
    if (f->seq_n < SC_GUARD_MAX_WORDS) {
        f->seq_v[f->seq_n] = sh;
        f->seq_content[f->seq_n++] = (unsigned char)content;
    } else {
        f->seq_overflow = 1;
    }
    if (fit && !f->ord_overflow) {
        ord_add(f, sh, sc_guard_word_kind(ascii, content), f->clause);
        sc_guard_pole_count(ascii, f->poles);
    } else {
        ord_add(f, sh, content ? SC_GUARD_KIND_ENTITY : SC_GUARD_KIND_OTHER, f->clause);
    }
}

static void ident(feat_t *f, const char *s, size_t n)
{
    char lw[SC_GUARD_WORD_MAX];
    uint64_t h;
    pend_flush(f);
    lower_hash(s, n, lw, sizeof lw, &h);
    bag_add(&f->id, tagged(h, 'i'));
    ord_add(f, tagged(h, 'i'), SC_GUARD_KIND_ENTITY, f->clause);
}

/* A sub-word: letters, digits, '_', and '-' / apostrophes between word characters, '.' / ','
 * between digits. */
static void sub_word(feat_t *f, const char *s, size_t n, int start, int neg)
{
    int has_letter = 0, has_digit = 0, has_us = 0, has_hyph = 0;
    size_t i = 0, w;
    while (i < n) {
        utf8proc_int32_t cp = decode(s + i, n - i, &w);
        i += w;
        if (is_digit_cp(cp))
            has_digit = 1;
        else if (cp == '_')
            has_us = 1;
        else if (cp == '-')
            has_hyph = 1;
        else if (is_letter_cp(cp))
            has_letter = 1;
    }
    if (has_digit && !has_letter && !has_us) { /* 2024-01-15, 10-20, 1,234.5 */
        size_t a = 0;
        for (size_t k = 0; k <= n; k++)
            if (k == n || s[k] == '-') {
                if (k > a)
                    num_group(f, s + a, k - a, neg && a == 0);
                a = k + 1;
            }
        return;
    }
    if (has_digit && !has_us && !has_hyph) {
        /* 5kg, 10am, 2nd, 1990s: a number and a unit word; anything else mixing is an id */
        size_t k = 0;
        while (k < n && ((s[k] >= '0' && s[k] <= '9') || s[k] == '.' || s[k] == ','))
            k++;
        int unit = k > 0;
        for (size_t j = k; unit && j < n; j++)
            if (!((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z')))
                unit = 0;
        if (unit && k < n && !(s[k - 1] == '0' && k == 1 && (s[k] == 'x' || s[k] == 'X'))) {
            num_group(f, s, k, neg);
            pend_flush(f);
            plain_word(f, s + k, n - k, 0);
            return;
        }
    }
    if (has_us && !has_digit && !has_letter)
        return; /* "_" used as a dash */
    if (has_digit || has_us) {
        ident(f, s, n);
        return;
    }
    if (has_hyph) { /* well-known, Jean-Luc: each part is a word */
        size_t a = 0;
        f->compound = 1;
        for (size_t k = 0; k <= n; k++)
            if (k == n || s[k] == '-') {
                if (k > a)
                    plain_word(f, s + a, k - a, start && a == 0);
                a = k + 1;
            }
        f->compound = 0;
        return;
    }
    plain_word(f, s, n, start);
}

/* ---- tokens ---- */

static int is_opener(utf8proc_int32_t cp)
{
    return cp == '(' || cp == '[' || cp == '{' || cp == '<' || cp == '"' || cp == '\'' ||
           cp == '`' || cp == '*' || cp == 0x201C || cp == 0x2018 || cp == 0x00AB || cp == 0x201E ||
           cp == 0x00BF || cp == 0x00A1;
}

static int is_quote_cp(utf8proc_int32_t cp)
{
    return cp == '"' || cp == '\'' || cp == '`' || cp == 0x201C || cp == 0x2018 || cp == 0x00AB ||
           cp == 0x201E;
}

/* *ends: 1 for '.', 2 for the other sentence ends (kept as the strongest seen). */
static int is_closer(utf8proc_int32_t cp, int *ends)
{
    if (cp == '.') {
        *ends = *ends ? *ends : 1;
        return 1;
    }
    if (cp == '!' || cp == '?' || cp == ':' || cp == 0x2026 || cp == 0x3002) {
        *ends = 2;
        return 1;
    }
    return cp == ')' || cp == ']' || cp == '}' || cp == '>' || cp == '"' || cp == '\'' ||
           cp == '`' || cp == '*' || cp == ',' || cp == ';' || cp == 0x201D || cp == 0x2019 ||
           cp == 0x00BB;
}

/* Byte length of the last code point of s[0..n). */
static size_t last_cp(const char *s, size_t n, utf8proc_int32_t *cp)
{
    size_t k = n - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80 && n - k < 4)
        k--;
    size_t w;
    *cp = decode(s + k, n - k, &w);
    if (k + w != n) { /* not a clean code point: treat the last byte alone */
        *cp = 0xFFFD;
        return 1;
    }
    return n - k;
}

static int ascii_prefix_ci(const char *s, size_t n, const char *p)
{
    size_t pn = strlen(p);
    if (n < pn)
        return 0;
    for (size_t i = 0; i < pn; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != p[i])
            return 0;
    }
    return 1;
}

static const char *memfind(const char *s, size_t n, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= n; i++)
        if (memcmp(s + i, needle, nl) == 0)
            return s + i;
    return NULL;
}

/* main.c, README.md, archive.tar.gz, example.com: ASCII segments joined by dots, the first at least
 * two characters, the last one to five alphanumerics starting with a letter. */
static int is_filename(const char *s, size_t n)
{
    size_t first = 0, last = 0, seg = 0, dots = 0;
    int letter = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (seg == 0)
                return 0;
            if (dots == 0)
                first = seg;
            dots++;
            seg = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
        letter |= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        seg++;
    }
    last = seg;
    if (dots == 0 || first < 2 || last < 1 || last > 5 || !letter)
        return 0;
    char lc = s[n - last];
    return (lc >= 'a' && lc <= 'z') || (lc >= 'A' && lc <= 'Z');
}

/* U.S., e.g., a.m.: single letters joined by dots. */
static int is_dotted_acronym(const char *s, size_t n)
{
    if (n < 3)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if ((i % 2 == 0 && !letter) || (i % 2 == 1 && c != '.'))
            return 0;
    }
    return 1;
}

static void clause_next(feat_t *f)
{
    if (f->clause < UINT16_MAX)
        f->clause++;
}

/* An arrow at s: ->, =>, →, ⇒, ⟶, ⟹. */
static int is_arrow(const char *s, size_t n)
{
    if (n >= 2 && (s[0] == '-' || s[0] == '=') && s[1] == '>')
        return 1;
    size_t w;
    utf8proc_int32_t cp = decode(s, n, &w);
    return cp == 0x2192 || cp == 0x21D2 || cp == 0x27F6 || cp == 0x27F9;
}

/* An arrow is a relation word between what stands before and after it (A->B, "USD → EUR"). */
static void arrow(feat_t *f)
{
    pend_flush(f);
    ord_add(f, 0, SC_GUARD_KIND_ARROW, f->clause);
}

static void token(feat_t *f, const char *s, size_t n, int *at_start)
{
    int opened_quote = 0, ends = 0;
    size_t w;
    while (n > 0) {
        utf8proc_int32_t cp = decode(s, n, &w);
        if (!is_opener(cp))
            break;
        opened_quote |= is_quote_cp(cp);
        s += w;
        n -= w;
    }
    while (n > 0) {
        utf8proc_int32_t cp;
        size_t lw = last_cp(s, n, &cp);
        if (!is_closer(cp, &ends))
            break;
        n -= lw;
    }
    int start = *at_start || opened_quote;
    *at_start = ends != 0;
    if (n == 0)
        return;
    if (ends == 1 && n < SC_GUARD_WORD_MAX) { /* "Mr." and "J." do not end a sentence */
        char lw[SC_GUARD_WORD_MAX];
        uint64_t h;
        lower_hash(s, n, lw, sizeof lw, &h);
        if (n == 1 || IN_LIST(lw, abbreviations))
            *at_start = 0;
    }
    /* a possessive on a whole-token identifier: jane@example.com's */
    size_t full_n = n;
    if (n > 2 && s[n - 2] == '\'' && (s[n - 1] == 's' || s[n - 1] == 'S'))
        n -= 2;
    else if (n > 4 && (unsigned char)s[n - 4] == 0xE2 && (unsigned char)s[n - 3] == 0x80 &&
             (unsigned char)s[n - 2] == 0x99 && (s[n - 1] == 's' || s[n - 1] == 'S'))
        n -= 4;

    /* whole-token identifiers */
    if (memfind(s, n, "://") || ascii_prefix_ci(s, n, "www.")) {
        ident(f, s, n);
        return;
    }
    const char *at = memchr(s, '@', n);
    if (at && at > s && memchr(at, '.', n - (size_t)(at - s)) && at + 1 < s + n) {
        if (ascii_prefix_ci(s, n, "mailto:"))
            ident(f, s + 7, n - 7);
        else
            ident(f, s, n);
        return;
    }
    if (memchr(s, '/', n) || memchr(s, '\\', n)) {
        int datelike = 1, seps = 0, dot = 0;
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            seps += c == '/' || c == '\\';
            dot |= c == '.';
            if (!((c >= '0' && c <= '9') || c == '/' || c == '-' || c == '.'))
                datelike = 0;
        }
        if (!datelike && (s[0] == '/' || s[0] == '~' || s[0] == '.' || s[0] == '\\' ||
                          (n > 2 && s[1] == ':') || seps >= 2 || dot)) {
            ident(f, s, n);
            return;
        }
    }
    if (is_filename(s, n)) {
        ident(f, s, n);
        return;
    }
    if (is_dotted_acronym(s, n)) {
        char buf[SC_GUARD_WORD_MAX];
        size_t o = 0;
        for (size_t i = 0; i < n && o + 1 < sizeof buf; i += 2)
            buf[o++] = s[i];
        plain_word(f, buf, o, start);
        return;
    }

    /* sub-words */
    n = full_n;
    int neg = 0;
    if (n > 1 && s[0] == '-' && s[1] >= '0' && s[1] <= '9')
        neg = 1;
    else if (n > 3 && (unsigned char)s[0] == 0xE2 && (unsigned char)s[1] == 0x88 &&
             (unsigned char)s[2] == 0x92 && s[3] >= '0' && s[3] <= '9')
        neg = 1; /* U+2212 minus */
    size_t i = 0, a = 0;
    int in = 0, first = 1;
    utf8proc_int32_t prev = 0;
    while (i <= n) {
        utf8proc_int32_t cp = 0, next = 0;
        size_t cw = 0, nw = 0;
        if (i < n) {
            cp = decode(s + i, n - i, &cw);
            if (i + cw < n)
                next = decode(s + i + cw, n - i - cw, &nw);
        }
        int keep = 0;
        if (i < n) {
            if (is_wordch_cp(cp))
                keep = 1;
            else if (in && (cp == '-' || is_apos_cp(cp)) && is_wordch_cp(prev) &&
                     is_wordch_cp(next))
                keep = 1;
            else if (in && (cp == '.' || cp == ',') && is_digit_cp(prev) && is_digit_cp(next))
                keep = 1;
        }
        if (keep) {
            if (!in) {
                in = 1;
                a = i;
            }
        } else if (in) {
            sub_word(f, s + a, i - a, start && first, neg && first);
            first = 0;
            in = 0;
        }
        if (i == n)
            break;
        if (!keep && is_arrow(s + i, n - i))
            arrow(f);
        prev = cp;
        i += cw;
    }
}

/* ---- quoted strings ---- */

static void quote_emit(feat_t *f, const char *s, size_t n)
{
    /* collapse white space, trim */
    uint64_t h = FNV_OFFSET;
    size_t i = 0, w;
    int pending_space = 0, any = 0;
    while (i < n) {
        utf8proc_int32_t cp = decode(s + i, n - i, &w);
        if (is_space_cp(cp)) {
            pending_space = any;
        } else {
            if (pending_space)
                h = fnv_bytes(h, " ", 1);
            pending_space = 0;
            h = fnv_bytes(h, s + i, w);
            any = 1;
        }
        i += w;
    }
    if (any)
        bag_add(&f->quo, tagged(h, 'q'));
}

/* Once a quote kind finds no closer after some point, none after a later point will either: the
 * fail flags keep unbalanced quotes in a long text from costing a rescan each. */
static void quotes(feat_t *f, const char *s, size_t n)
{
    size_t i = 0, w;
    utf8proc_int32_t prev = ' ';
    int dq_fail = 0, gu_fail = 0, sq_fail = 0;
    unsigned bt_fail = 0; /* bit r-1: no closing run of r backticks (r >= 8 share a bit) */
    while (i < n && !f->quo.overflow) {
        utf8proc_int32_t cp = decode(s + i, n - i, &w);
        size_t open_end = i + w, next_i = i + w;
        int found = 0;
        if ((cp == '"' || cp == 0x201C || cp == 0x201E) && !dq_fail) {
            size_t j = open_end, jw;
            for (; j < n; j += jw) {
                utf8proc_int32_t c = decode(s + j, n - j, &jw);
                if (c == '"' || c == 0x201D || c == 0x201C) {
                    quote_emit(f, s + open_end, j - open_end);
                    next_i = j + jw;
                    found = 1;
                    break;
                }
            }
            dq_fail = !found;
        } else if (cp == 0x00AB && !gu_fail) {
            size_t j = open_end, jw;
            for (; j < n; j += jw)
                if (decode(s + j, n - j, &jw) == 0x00BB) {
                    quote_emit(f, s + open_end, j - open_end);
                    next_i = j + jw;
                    found = 1;
                    break;
                }
            gu_fail = !found;
        } else if (cp == '`') {
            size_t run = 1;
            while (i + run < n && s[i + run] == '`')
                run++;
            open_end = next_i = i + run;
            unsigned bit = 1u << (run < 8 ? run - 1 : 7);
            for (size_t j = open_end; !(bt_fail & bit) && j < n; j++) {
                if (s[j] != '`')
                    continue;
                size_t r = 0;
                while (j + r < n && s[j + r] == '`')
                    r++;
                if (r == run) {
                    quote_emit(f, s + open_end, j - open_end);
                    next_i = j + run;
                    found = 1;
                    break;
                }
                j += r - 1;
            }
            if (!found)
                bt_fail |= bit;
        } else if (((cp == '\'' && !is_wordch_cp(prev)) || cp == 0x2018) && !sq_fail) {
            /* a single quote opens after a non-word character; it closes at a quote that follows
             * a non-space and is not followed by a word character (so don't / it's do not close) */
            size_t j = open_end, jw;
            utf8proc_int32_t jprev = cp;
            for (; j < n; j += jw) {
                utf8proc_int32_t c = decode(s + j, n - j, &jw);
                if ((c == '\'' || c == 0x2019) && !is_space_cp(jprev) && j > open_end) {
                    utf8proc_int32_t nx = ' ';
                    size_t nw;
                    if (j + jw < n)
                        nx = decode(s + j + jw, n - j - jw, &nw);
                    if (!is_wordch_cp(nx)) {
                        quote_emit(f, s + open_end, j - open_end);
                        next_i = j + jw;
                        found = 1;
                        break;
                    }
                }
                jprev = c;
            }
            sq_fail = !found;
        }
        prev = found ? ' ' : cp;
        i = next_i;
    }
}

/* ---- the text ---- */

static void extract(feat_t *f, const char *s, size_t n)
{
    feat_init(f);
    if (!s)
        n = 0;
    quotes(f, s, n);
    size_t i = 0, w;
    int at_start = 1;
    while (i < n) {
        utf8proc_int32_t cp = decode(s + i, n - i, &w);
        if (is_space_cp(cp)) {
            if (cp == '\n' || cp == 0x2029) {
                at_start = 1;
                clause_next(f);
            }
            i += w;
            continue;
        }
        size_t a = i;
        while (i < n) {
            cp = decode(s + i, n - i, &w);
            if (is_space_cp(cp))
                break;
            i += w;
        }
        size_t tl = i - a;
        if ((tl == 2 || tl == 3) && is_arrow(s + i - 2, 2) && (tl == 2 || s[a] == s[a + 1]))
            arrow(f); /* a standalone ->, -->, =>, ==> (token() strips the '>') */
        token(f, s + a, tl, &at_start);
        /* a clause ends at a sentence end (not "Mr.", "vs.") or a trailing ',' / ';' */
        int brk = at_start;
        for (size_t k = i; k > a && !brk; k--) {
            char c = s[k - 1];
            if (c == ',' || c == ';')
                brk = 1;
            else if (!(c == ')' || c == ']' || c == '}' || c == '"' || c == '\'' || c == '*' ||
                       c == '.' || c == '!' || c == '?' || c == ':'))
                break;
        }
        if (brk)
            clause_next(f);
    }
    pend_flush(f);
    bag_sort(&f->num);
    bag_sort(&f->quo);
    bag_sort(&f->id);
    bag_sort(&f->name);
    bag_sort(&f->uname);
    bag_sort(&f->plain);
    bag_sort(&f->content);
    bag_dedupe(&f->content);
}

/* Remove one occurrence of h from b (unsorted afterwards is fine for membership). */
static int bag_take(bag_t *b, uint64_t h)
{
    for (int i = 0; i < b->n; i++)
        if (b->v[i] == h) {
            b->v[i] = b->v[--b->n];
            return 1;
        }
    return 0;
}

/* Is the unmatched name h of one side in the other text: as a sentence-initial capital there, or as
 * an ordinary word (a case difference: "Node" / "node", "SELECT" / "select")? */
static int name_found(feat_t *other, uint64_t h)
{
    if (bag_take(&other->uname, h))
        return 1;
    return !other->plain.overflow && bag_has(&other->plain, h);
}

/* Names: capitalised words inside a sentence (and all-caps words) of each text must occur in the
 * other; a capitalised first word of a sentence ("Alice asked…") may stand in for one, and unless
 * it is a common opener it must occur in the other text too (SC_GUARD_START_NAMES). */
static int names_differ(feat_t *a, feat_t *b)
{
    if (a->name.overflow || b->name.overflow || a->uname.overflow || b->uname.overflow)
        return 1;
    int i = 0, j = 0;
    while (i < a->name.n || j < b->name.n) {
        if (j >= b->name.n || (i < a->name.n && a->name.v[i] < b->name.v[j])) {
            if (!name_found(b, a->name.v[i]))
                return 1;
            i++;
        } else if (i >= a->name.n || b->name.v[j] < a->name.v[i]) {
            if (!name_found(a, b->name.v[j]))
                return 1;
            j++;
        } else {
            i++;
            j++;
        }
    }
    if (!SC_GUARD_START_NAMES)
        return 0;
    for (int k = 0; k < a->uname.n; k++) {
        uint64_t h = a->uname.v[k];
        if (bag_take(&b->uname, h))
            continue; /* both open a sentence with it */
        if (b->plain.overflow || !bag_has(&b->plain, h))
            return 1;
    }
    for (int k = 0; k < b->uname.n; k++)
        if (a->plain.overflow || !bag_has(&a->plain, b->uname.v[k]))
            return 1;
    return 0;
}

/* Jaccard distance of two sorted, deduped sets; *extra: the larger one-sided difference. */
static double jaccard_dist(const bag_t *a, const bag_t *b, int *extra)
{
    int i = 0, j = 0, inter = 0;
    while (i < a->n && j < b->n) {
        if (a->v[i] == b->v[j]) {
            inter++;
            i++;
            j++;
        } else if (a->v[i] < b->v[j]) {
            i++;
        } else {
            j++;
        }
    }
    int uni = a->n + b->n - inter;
    *extra = a->n - inter > b->n - inter ? a->n - inter : b->n - inter;
    return uni == 0 ? 0.0 : 1.0 - (double)inter / uni;
}

/* Are the two word sequences the same but for one span on each side (after the longest common
 * prefix and suffix), both spans holding a content word and neither longer than SC_GUARD_SWAP_SPAN
 * words? A pure insertion or deletion (one span empty) is left to the extra-words rule. */
static int one_detail_swapped(const feat_t *a, const feat_t *b)
{
    if (SC_GUARD_SWAP_SPAN <= 0 || a->seq_overflow || b->seq_overflow)
        return 0;
    int na = a->seq_n, nb = b->seq_n, p = 0, q = 0;
    while (p < na && p < nb && a->seq_v[p] == b->seq_v[p])
        p++;
    while (q < na - p && q < nb - p && a->seq_v[na - 1 - q] == b->seq_v[nb - 1 - q])
        q++;
    int la = na - p - q, lb = nb - p - q;
    if (la <= 0 || lb <= 0 || la > SC_GUARD_SWAP_SPAN || lb > SC_GUARD_SWAP_SPAN)
        return 0;
    int ca = 0, cb = 0;
    for (int i = p; i < na - q; i++)
        ca |= a->seq_content[i];
    for (int i = p; i < nb - q; i++)
        cb |= b->seq_content[i];
    return ca && cb;
}

sc_guard_reason_t sc_guard_check(const char *query, size_t qlen, const char *cached, size_t clen,
                                 double sim, double threshold, double strict_band)
{
    if (!query)
        qlen = 0;
    if (!cached)
        clen = 0;
    if (qlen == clen && (qlen == 0 || memcmp(query, cached, qlen) == 0))
        return SC_GUARD_OK; /* the same prompt */
    feat_t fa, fb;
    extract(&fa, query, qlen);
    extract(&fb, cached, clen);
    if (!bag_equal(&fa.num, &fb.num))
        return SC_GUARD_NUMBER;
    if (!bag_equal(&fa.quo, &fb.quo))
        return SC_GUARD_QUOTED;
    if (!bag_equal(&fa.id, &fb.id))
        return SC_GUARD_IDENTIFIER;
    if ((fa.neg > 0) != (fb.neg > 0) || (fa.neg % 2) != (fb.neg % 2))
        return SC_GUARD_NEGATION;
    if (names_differ(&fa, &fb))
        return SC_GUARD_NAME;
    /* below the threshold counts as inside the band: the caller asked anyway */
    if (strict_band > 0 && sim < threshold + strict_band) {
        int extra = 0;
        double d = jaccard_dist(&fa.content, &fb.content, &extra);
        if (fa.content.overflow || fb.content.overflow || d > SC_GUARD_STRICT_MAX_DIST ||
            extra > SC_GUARD_STRICT_MAX_EXTRA || one_detail_swapped(&fa, &fb))
            return SC_GUARD_STRICT;
        if (fa.ord_overflow || fb.ord_overflow)
            return SC_GUARD_ORDER; /* too long to read the order of: conservative */
        sc_guard_reason_t r =
            sc_guard_order_check(fa.ord_v, fa.ord_n, fb.ord_v, fb.ord_n, fa.poles, fb.poles);
        if (r != SC_GUARD_OK)
            return r;
    }
    return SC_GUARD_OK;
}

const char *sc_guard_reason_name(sc_guard_reason_t r)
{
    switch (r) {
    case SC_GUARD_OK:
        return "ok";
    case SC_GUARD_NUMBER:
        return "number";
    case SC_GUARD_QUOTED:
        return "quoted";
    case SC_GUARD_IDENTIFIER:
        return "identifier";
    case SC_GUARD_NEGATION:
        return "negation";
    case SC_GUARD_NAME:
        return "name";
    case SC_GUARD_STRICT:
        return "strict";
    case SC_GUARD_ORDER:
        return "order";
    case SC_GUARD_POLARITY:
        return "polarity";
    case SC_GUARD_COUNT:
        return "count";
    }
    return "unknown";
}
