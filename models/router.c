/* router.c - the model router: signals, weights file, batch scoring over the CPU twin of the
 * router head kernel, tiers, and the APGR metric shared by training, benches and tests. */
#include "models/router.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/ops/ops_cpu.h"
#include "host/core/util.h"

#define ROUTER_VERSION       1
#define ROUTER_CHUNK         256 /* rows standardised at a time in sc_router_score_batch */
#define ROUTER_MAX_QUESTIONS 16.0f
#define ROUTER_MAX_OPTIONS   10.0f
#define ROUTER_MIN_STD       1e-6f

struct sc_router {
    int f, hidden;
    float *mean, *std; /* [f] each */
    float *w1, *b1;    /* [hidden × f], [hidden]; NULL when hidden = 0 */
    float *w2;         /* [hidden] or [f] */
    float b2;
    int nthr;
    float thr[SC_ROUTER_MAX_TIERS - 1];
    char tiers[SC_ROUTER_MAX_TIERS][SC_ROUTER_TIER_NAME];
    int ncurve;                                 /* operating curve points; 0: none in the file */
    float *curve_thr, *curve_share, *curve_low; /* [ncurve] each, owned */
    int has_domain;
    float dom_lo[SC_ROUTER_NSIGNALS], dom_hi[SC_ROUTER_NSIGNALS]; /* the signals' box */
};

static const char *const signal_names[SC_ROUTER_NSIGNALS] = {
    "log_tokens", "log_bytes", "log_lines", "code",     "math_density", "math_words",
    "multi_step", "questions", "options",   "negation", "log_numbers",  "mean_word_len",
};

static const char *const default_tiers[3] = {"flash-lite", "flash", "pro"};

const char *sc_router_signal_name(int i)
{
    return i >= 0 && i < SC_ROUTER_NSIGNALS ? signal_names[i] : NULL;
}

/* ---- signals ---- */

/* Occurrences of needle (lower case) in the lower-cased text; lower is text lower-cased. */
static int count_sub(const char *lower, size_t len, const char *needle)
{
    size_t m = strlen(needle);
    int c = 0;
    if (m == 0 || m > len)
        return 0;
    for (size_t i = 0; i + m <= len; i++)
        if (lower[i] == needle[0] && memcmp(lower + i, needle, m) == 0)
            c++;
    return c;
}

static int count_list(const char *lower, size_t len, const char *const *needles, size_t k)
{
    int c = 0;
    for (size_t i = 0; i < k; i++)
        c += count_sub(lower, len, needles[i]);
    return c;
}

/* Word-bounded occurrences (the characters around are not letters). */
static int count_word(const char *lower, size_t len, const char *word)
{
    size_t m = strlen(word);
    int c = 0;
    for (size_t i = 0; i + m <= len; i++) {
        if (lower[i] != word[0] || memcmp(lower + i, word, m) != 0)
            continue;
        int before = i > 0 && isalpha((unsigned char)lower[i - 1]);
        int after = i + m < len && isalpha((unsigned char)lower[i + m]);
        c += !before && !after;
    }
    return c;
}

/* Does the line starting at p (of n bytes left) begin with an answer option "A." "A)" "(A)"? */
static int is_option_line(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i < n && p[i] == '(') {
        return i + 2 < n && p[i + 1] >= 'A' && p[i + 1] <= 'J' && p[i + 2] == ')';
    }
    return i + 1 < n && p[i] >= 'A' && p[i] <= 'J' && (p[i + 1] == '.' || p[i + 1] == ')') &&
           (i + 2 >= n || p[i + 2] == ' ' || p[i + 2] == '\n');
}

void sc_router_signals(const char *text, size_t len, int n_tokens, float *out)
{
    static const char *const code_marks[] = {"```",     "{",        "}",        ";",  "def ",
                                             "select ", "#include", "return ",  "==", "print(",
                                             "=>",      "function", "int main", "</"};
    static const char *const math_words[] = {"\\frac",   "\\sqrt",     "$",           "solve",
                                             "calculat", "prove",      "compute",     "equation",
                                             "integral", "derivative", "probability", "\\sum",
                                             "matrix",   "log(",       "sqrt"};
    static const char *const multi_step[] = {
        "step by step",   "explain why", "compare", "which of the following", "statement 1",
        "if and only if", "suppose",     "assume",  "following information",  "passage"};
    static const char *const negations[] = {"not",       "except", "least",   "false",
                                            "incorrect", "never",  "neither", "unlikely"};
    char small[4096];
    char *lower = len < sizeof small ? small : malloc(len + 1);
    int lines = 0, questions = 0, options = 0, numbers = 0, words = 0, wordbytes = 0;
    size_t mathc = 0;
    memset(out, 0, sizeof(float) * SC_ROUTER_NSIGNALS);
    out[SC_SIG_LOG_TOKENS] = logf(1.0f + (float)(n_tokens > 0 ? n_tokens : 0));
    out[SC_SIG_LOG_BYTES] = logf(1.0f + (float)len);
    int in_num = 0, in_word = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (lower)
            lower[i] = (char)tolower(c);
        if (c == '\n')
            lines++;
        if (c == '?')
            questions++;
        if (i == 0 || text[i - 1] == '\n')
            options += is_option_line(text + i, len - i);
        int digit = isdigit(c) != 0;
        if (digit || c == '+' || c == '*' || c == '/' || c == '=' || c == '^' || c == '<' ||
            c == '>' || (c == '-' && i + 1 < len && isdigit((unsigned char)text[i + 1])))
            mathc++;
        numbers += digit && !in_num;
        in_num = digit;
        int alpha = isalpha(c) != 0;
        words += alpha && !in_word;
        wordbytes += alpha;
        in_word = alpha;
    }
    out[SC_SIG_LOG_LINES] = logf(1.0f + (float)lines);
    out[SC_SIG_MATH_DENSITY] = len ? (float)mathc / (float)len : 0.0f;
    out[SC_SIG_QUESTIONS] = fminf((float)questions, ROUTER_MAX_QUESTIONS);
    out[SC_SIG_OPTIONS] = fminf((float)options, ROUTER_MAX_OPTIONS);
    out[SC_SIG_LOG_NUMBERS] = logf(1.0f + (float)numbers);
    out[SC_SIG_WORD_LEN] = words ? (float)wordbytes / (float)words : 0.0f;
    if (!lower) /* out of memory for a long text: the lexical counts stay 0 */
        return;
    lower[len] = '\0';
    int code = count_list(lower, len, code_marks, SC_ARRAY_LEN(code_marks));
    int math = count_list(lower, len, math_words, SC_ARRAY_LEN(math_words));
    int multi = count_list(lower, len, multi_step, SC_ARRAY_LEN(multi_step));
    /* "first … then" counts once when both appear */
    multi += count_word(lower, len, "first") > 0 && count_word(lower, len, "then") > 0;
    int neg = 0;
    for (size_t k = 0; k < SC_ARRAY_LEN(negations); k++)
        neg += count_word(lower, len, negations[k]);
    out[SC_SIG_CODE] = logf(1.0f + (float)code);
    out[SC_SIG_MATH_WORDS] = logf(1.0f + (float)math);
    out[SC_SIG_MULTI_STEP] = logf(1.0f + (float)multi);
    out[SC_SIG_NEGATION] = logf(1.0f + (float)neg);
    if (lower != small)
        free(lower);
}

/* ---- construction and loading ---- */

sc_status_t sc_router_new(const float *mean, const float *std, int hidden, const float *w1,
                          const float *b1, const float *w2, float b2, const float *thresholds,
                          int nthr, const char *const *tiers, sc_router_t **out)
{
    const int f = SC_ROUTER_NFEATURES;
    *out = NULL;
    if (hidden < 0 || hidden > SC_ROUTER_MAX_HIDDEN || nthr < 1 || nthr > SC_ROUTER_MAX_TIERS - 1 ||
        (hidden > 0 && (!w1 || !b1)) || (!tiers && nthr != 2))
        return SC_ERR_INVALID_ARG;
    sc_router_t *r = calloc(1, sizeof *r);
    if (!r)
        return SC_ERR_NOMEM;
    r->f = f;
    r->hidden = hidden;
    size_t nw2 = hidden ? (size_t)hidden : (size_t)f;
    r->mean = malloc(sizeof(float) * (size_t)f);
    r->std = malloc(sizeof(float) * (size_t)f);
    r->w2 = malloc(sizeof(float) * nw2);
    if (hidden) {
        r->w1 = malloc(sizeof(float) * (size_t)hidden * (size_t)f);
        r->b1 = malloc(sizeof(float) * (size_t)hidden);
    }
    if (!r->mean || !r->std || !r->w2 || (hidden && (!r->w1 || !r->b1))) {
        sc_router_free(r);
        return SC_ERR_NOMEM;
    }
    memcpy(r->mean, mean, sizeof(float) * (size_t)f);
    for (int i = 0; i < f; i++)
        r->std[i] = std[i] > ROUTER_MIN_STD ? std[i] : ROUTER_MIN_STD;
    memcpy(r->w2, w2, sizeof(float) * nw2);
    if (hidden) {
        memcpy(r->w1, w1, sizeof(float) * (size_t)hidden * (size_t)f);
        memcpy(r->b1, b1, sizeof(float) * (size_t)hidden);
    }
    r->b2 = b2;
    r->nthr = nthr;
    for (int k = 0; k < nthr; k++)
        r->thr[k] = thresholds[k];
    for (int k = 0; k <= nthr; k++)
        sc_strlcpy(r->tiers[k], tiers ? tiers[k] : default_tiers[k], SC_ROUTER_TIER_NAME);
    *out = r;
    return SC_OK;
}

void sc_router_free(sc_router_t *r)
{
    if (!r)
        return;
    free(r->mean);
    free(r->std);
    free(r->w1);
    free(r->b1);
    free(r->w2);
    free(r->curve_thr);
    free(r->curve_share);
    free(r->curve_low);
    free(r);
}

/* Copy a JSON array of exactly n numbers into dst (allocated here; the caller frees). */
static int json_floats(const json_t *arr, size_t n, float **dst)
{
    *dst = NULL;
    if (!json_is_array(arr) || json_array_size(arr) != n)
        return -1;
    float *v = malloc(sizeof(float) * (n ? n : 1));
    if (!v)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(arr, i); /* borrowed */
        if (!json_is_number(x)) {
            free(v);
            return -1;
        }
        v[i] = (float)json_number_value(x);
    }
    *dst = v;
    return 0;
}

sc_status_t sc_router_load(const char *path, sc_router_t **out, char *errbuf, size_t errlen)
{
    const int f = SC_ROUTER_NFEATURES;
    sc_status_t st = SC_ERR_INVALID;
    json_error_t jerr;
    float *mean = NULL, *std = NULL, *w1 = NULL, *b1 = NULL, *w2 = NULL, *thr = NULL;
    float *cthr = NULL, *cshare = NULL, *clow = NULL, *dom_lo = NULL, *dom_hi = NULL;
    const char *tiers[SC_ROUTER_MAX_TIERS];
    *out = NULL;
    json_t *root = json_load_file(path, 0, &jerr); /* new reference */
    if (!root) {
        snprintf(errbuf, errlen, "%s: %s (line %d)", path, jerr.text, jerr.line);
        return SC_ERR_IO;
    }
    /* all below are borrowed from root */
    if (json_integer_value(json_object_get(root, "version")) != ROUTER_VERSION) {
        snprintf(errbuf, errlen, "%s: version is not %d", path, ROUTER_VERSION);
        goto out;
    }
    const json_t *feat = json_object_get(root, "features");
    const json_t *sig = json_object_get(feat, "signals");
    if (json_integer_value(json_object_get(feat, "embedding")) != SC_EMBED_DIM ||
        json_array_size(sig) != SC_ROUTER_NSIGNALS) {
        snprintf(errbuf, errlen, "%s: features are not embedding %d + %d signals", path,
                 SC_EMBED_DIM, SC_ROUTER_NSIGNALS);
        goto out;
    }
    for (int i = 0; i < SC_ROUTER_NSIGNALS; i++) {
        const char *name = json_string_value(json_array_get(sig, (size_t)i));
        if (!name || strcmp(name, signal_names[i]) != 0) {
            snprintf(errbuf, errlen, "%s: signal %d is \"%s\", this build has \"%s\"", path, i,
                     name ? name : "?", signal_names[i]);
            goto out;
        }
    }
    const json_t *head = json_object_get(root, "head");
    json_int_t hidden = json_integer_value(json_object_get(head, "hidden"));
    if (hidden < 0 || hidden > SC_ROUTER_MAX_HIDDEN) {
        snprintf(errbuf, errlen, "%s: head.hidden out of 0..%d", path, SC_ROUTER_MAX_HIDDEN);
        goto out;
    }
    const json_t *tarr = json_object_get(root, "thresholds");
    const json_t *narr = json_object_get(root, "tiers");
    size_t nthr = json_array_size(tarr);
    if (nthr < 1 || nthr > SC_ROUTER_MAX_TIERS - 1 || json_array_size(narr) != nthr + 1) {
        snprintf(errbuf, errlen, "%s: need 1..%d thresholds and one more tier name", path,
                 SC_ROUTER_MAX_TIERS - 1);
        goto out;
    }
    for (size_t k = 0; k <= nthr; k++) {
        tiers[k] = json_string_value(json_array_get(narr, k));
        if (!tiers[k] || strlen(tiers[k]) >= SC_ROUTER_TIER_NAME) {
            snprintf(errbuf, errlen, "%s: tier %zu is not a name under %d bytes", path, k,
                     SC_ROUTER_TIER_NAME);
            goto out;
        }
    }
    size_t h = (size_t)hidden;
    if (json_floats(json_object_get(root, "mean"), (size_t)f, &mean) ||
        json_floats(json_object_get(root, "std"), (size_t)f, &std) ||
        json_floats(json_object_get(head, "w2"), h ? h : (size_t)f, &w2) ||
        (h && json_floats(json_object_get(head, "w1"), h * (size_t)f, &w1)) ||
        (h && json_floats(json_object_get(head, "b1"), h, &b1)) || json_floats(tarr, nthr, &thr) ||
        !json_is_number(json_object_get(head, "b2"))) {
        snprintf(errbuf, errlen, "%s: mean/std/head/thresholds missing or of the wrong length",
                 path);
        goto out;
    }
    for (size_t k = 1; k < nthr; k++)
        if (thr[k] < thr[k - 1]) {
            snprintf(errbuf, errlen, "%s: thresholds are not ascending", path);
            goto out;
        }
    /* the operating curve is optional (files before it have none); when present it is whole */
    const json_t *oc = json_object_get(root, "operating_curve");
    size_t nc = json_array_size(json_object_get(oc, "threshold"));
    if (oc && (nc < 2 || nc > SC_ROUTER_MAX_CURVE ||
               json_floats(json_object_get(oc, "threshold"), nc, &cthr) ||
               json_floats(json_object_get(oc, "share"), nc, &cshare) ||
               json_floats(json_object_get(oc, "quality_ratio_low"), nc, &clow))) {
        snprintf(errbuf, errlen,
                 "%s: operating_curve needs threshold, share and quality_ratio_low of 2..%d "
                 "points each",
                 path, SC_ROUTER_MAX_CURVE);
        goto out;
    }
    /* the domain box is optional too */
    const json_t *dom = json_object_get(root, "domain");
    if (dom && (json_floats(json_object_get(dom, "signals_min"), SC_ROUTER_NSIGNALS, &dom_lo) ||
                json_floats(json_object_get(dom, "signals_max"), SC_ROUTER_NSIGNALS, &dom_hi))) {
        snprintf(errbuf, errlen, "%s: domain needs signals_min and signals_max of %d values", path,
                 SC_ROUTER_NSIGNALS);
        goto out;
    }
    for (size_t k = 1; oc && k < nc; k++)
        if (cthr[k] > cthr[k - 1] || cshare[k] < cshare[k - 1]) {
            snprintf(errbuf, errlen,
                     "%s: operating_curve thresholds must descend and shares ascend", path);
            goto out;
        }
    st = sc_router_new(mean, std, (int)hidden, w1, b1, w2,
                       (float)json_number_value(json_object_get(head, "b2")), thr, (int)nthr, tiers,
                       out);
    if (st)
        snprintf(errbuf, errlen, "%s: %s", path, sc_strerror(st));
    else if (dom_lo && sc_router_set_domain(*out, dom_lo, dom_hi) != SC_OK) {
        snprintf(errbuf, errlen, "%s: domain: a signals_min above its signals_max", path);
        sc_router_free(*out);
        *out = NULL;
        st = SC_ERR_INVALID;
    }
    if (!st && oc) {
        (*out)->ncurve = (int)nc;
        (*out)->curve_thr = cthr;
        (*out)->curve_share = cshare;
        (*out)->curve_low = clow;
        cthr = cshare = clow = NULL; /* owned by the router now */
    }
out:
    json_decref(root);
    free(mean);
    free(std);
    free(w1);
    free(b1);
    free(w2);
    free(thr);
    free(cthr);
    free(cshare);
    free(clow);
    free(dom_lo);
    free(dom_hi);
    return st;
}

/* ---- scoring ---- */

sc_status_t sc_router_score_batch(const sc_router_t *r, const float *emb, const float *signals,
                                  size_t n, float *scores)
{
    const int f = r->f;
    size_t chunk = n < ROUTER_CHUNK ? n : ROUTER_CHUNK;
    float *x = malloc(sizeof(float) * (chunk ? chunk : 1) * (size_t)f);
    if (!x)
        return SC_ERR_NOMEM;
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t m = n - i0 < chunk ? n - i0 : chunk;
        for (size_t i = 0; i < m; i++) {
            const float *e = emb + (i0 + i) * SC_EMBED_DIM;
            const float *s = signals + (i0 + i) * SC_ROUTER_NSIGNALS;
            float *row = x + i * (size_t)f;
            for (int j = 0; j < SC_EMBED_DIM; j++)
                row[j] = (e[j] - r->mean[j]) / r->std[j];
            for (int j = 0; j < SC_ROUTER_NSIGNALS; j++)
                row[SC_EMBED_DIM + j] =
                    (s[j] - r->mean[SC_EMBED_DIM + j]) / r->std[SC_EMBED_DIM + j];
        }
        sc_router_head_cpu(x, (int)m, f, r->w1, r->b1, r->hidden, r->w2, r->b2, scores + i0);
    }
    free(x);
    return SC_OK;
}

sc_status_t sc_router_score_texts(const sc_router_t *r, sc_encoder_t *enc, const char *const *texts,
                                  const size_t *lens, size_t n, float *scores,
                                  unsigned char *in_domain)
{
    sc_status_t st = SC_ERR_NOMEM;
    float *emb = malloc(sizeof(float) * (n ? n : 1) * SC_EMBED_DIM);
    float *sig = malloc(sizeof(float) * (n ? n : 1) * SC_ROUTER_NSIGNALS);
    int32_t *ids = malloc(sizeof(int32_t) * SC_ROUTER_COUNT_TOKENS);
    if (!emb || !sig || !ids)
        goto out;
    const sc_tokenizer_t *tok = sc_encoder_tokenizer(enc);
    for (size_t i = 0; i < n; i++) {
        int nt = sc_tokenizer_encode(tok, texts[i], lens[i], ids, SC_ROUTER_COUNT_TOKENS);
        sc_router_signals(texts[i], lens[i], nt, sig + i * SC_ROUTER_NSIGNALS);
    }
    st = sc_encoder_embed(enc, texts, lens, n, emb);
    if (st)
        goto out;
    st = sc_router_score_batch(r, emb, sig, n, scores);
    for (size_t i = 0; st == SC_OK && in_domain && i < n; i++)
        in_domain[i] = (unsigned char)sc_router_in_domain(r, sig + i * SC_ROUTER_NSIGNALS);
out:
    free(emb);
    free(sig);
    free(ids);
    return st;
}

const char *sc_router_tier(const sc_router_t *r, float score, const char *const *tiers, int ntiers)
{
    int k = 0;
    while (k < r->nthr && score >= r->thr[k])
        k++;
    if (!tiers || ntiers <= 0)
        return r->tiers[k];
    return tiers[k < ntiers ? k : ntiers - 1];
}

/* ---- operating point ---- */

int sc_router_pick_thresholds(const float *threshold, const float *share, const float *quality_low,
                              int npoints, double target, double lite_share, float thr[2],
                              double *strong_share, int *met)
{
    if (npoints < 2 || !(target > 0.0 && target <= 1.0) ||
        !(lite_share >= 0.0 && lite_share <= 1.0))
        return -1;
    /* the smallest share from which on the low quantile of the quality ratio stays >= target */
    int k = npoints;
    while (k > 0 && quality_low[k - 1] >= (float)target)
        k--;
    int ok = k < npoints;
    if (!ok)
        k = npoints - 1;
    /* the cheapest tier: the easiest lite_share of the prompts below the strong threshold, i.e.
     * the first point whose share reaches 1 - lite_share · (1 - strong share) */
    double want = 1.0 - lite_share * (1.0 - (double)share[k]);
    int j = k;
    while (j < npoints - 1 && (double)share[j] < want - 1e-9)
        j++;
    thr[1] = threshold[k];
    thr[0] = threshold[j] < thr[1] ? threshold[j] : thr[1];
    if (strong_share)
        *strong_share = share[k];
    if (met)
        *met = ok;
    return 0;
}

sc_status_t sc_router_set_quality_target(sc_router_t *r, double target, double lite_share,
                                         double *strong_share, int *met)
{
    float thr[2];
    if (r->ncurve < 2 || r->nthr != 2)
        return SC_ERR_NOT_FOUND;
    if (sc_router_pick_thresholds(r->curve_thr, r->curve_share, r->curve_low, r->ncurve, target,
                                  lite_share, thr, strong_share, met) != 0)
        return SC_ERR_INVALID_ARG;
    r->thr[0] = thr[0];
    r->thr[1] = thr[1];
    return SC_OK;
}

int sc_router_in_domain(const sc_router_t *r, const float *signals)
{
    if (!r->has_domain)
        return 1;
    for (int j = 0; j < SC_ROUTER_NSIGNALS; j++)
        if (!(signals[j] >= r->dom_lo[j] && signals[j] <= r->dom_hi[j]))
            return 0;
    return 1;
}

sc_status_t sc_router_set_domain(sc_router_t *r, const float *lo, const float *hi)
{
    if (!lo || !hi) {
        r->has_domain = 0;
        return SC_OK;
    }
    for (int j = 0; j < SC_ROUTER_NSIGNALS; j++)
        if (!(lo[j] <= hi[j]))
            return SC_ERR_INVALID_ARG;
    memcpy(r->dom_lo, lo, sizeof r->dom_lo);
    memcpy(r->dom_hi, hi, sizeof r->dom_hi);
    r->has_domain = 1;
    return SC_OK;
}

int sc_router_has_domain(const sc_router_t *r)
{
    return r->has_domain;
}

int sc_router_curve_points(const sc_router_t *r)
{
    return r->ncurve;
}

int sc_router_hidden(const sc_router_t *r)
{
    return r->hidden;
}

int sc_router_nthresholds(const sc_router_t *r)
{
    return r->nthr;
}

float sc_router_threshold(const sc_router_t *r, int k)
{
    return k >= 0 && k < r->nthr ? r->thr[k] : NAN;
}

/* ---- APGR ---- */

static int by_score_desc(const void *a, const void *b, void *keys)
{
    const float *k = keys;
    float x = k[*(const size_t *)a], y = k[*(const size_t *)b];
    return x < y ? 1 : x > y ? -1 : 0;
}

/* PGR at cost c from the breakpoints (cost[k], pgr[k]), k < m, cost ascending. */
static double interp(const double *cost, const double *pgr, size_t m, double c)
{
    size_t k = 1;
    while (k < m - 1 && cost[k] < c)
        k++;
    double dc = cost[k] - cost[k - 1];
    if (dc <= 0.0)
        return pgr[k];
    return pgr[k - 1] + (pgr[k] - pgr[k - 1]) * (c - cost[k - 1]) / dc;
}

double sc_router_apgr_graded(const float *scores, const double *weak_q, const double *strong_q,
                             size_t n, double *curve, double *quality, int npoints)
{
    double sw = 0.0, ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        sw += weak_q[i];
        ss += strong_q[i];
    }
    if (n == 0 || ss - sw == 0.0)
        return NAN;
    size_t *order = malloc(sizeof(size_t) * n);
    double *cost = malloc(sizeof(double) * (n + 1));
    double *pgr = malloc(sizeof(double) * (n + 1));
    if (!order || !cost || !pgr) {
        free(order);
        free(cost);
        free(pgr);
        return NAN;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, n, sizeof *order, by_score_desc, (void *)scores);
    /* breakpoints at the ends of groups of equal scores: a threshold cannot split a tie, so
     * between two breakpoints the curve is the straight line of routing a random part of it */
    size_t m = 0;
    double gain = 0.0;
    cost[m] = 0.0;
    pgr[m++] = 0.0;
    for (size_t i = 0; i < n; i++) {
        size_t k = order[i];
        gain += strong_q[k] - weak_q[k];
        if (i + 1 == n || scores[order[i + 1]] != scores[k]) {
            cost[m] = (double)(i + 1) / (double)n;
            pgr[m++] = gain / (ss - sw);
        }
    }
    double area = 0.0;
    for (size_t k = 1; k < m; k++)
        area += 0.5 * (pgr[k] + pgr[k - 1]) * (cost[k] - cost[k - 1]);
    for (int p = 0; p < npoints && npoints > 1; p++) {
        double c = (double)p / (double)(npoints - 1);
        double v = interp(cost, pgr, m, c);
        if (curve)
            curve[p] = v;
        if (quality)
            quality[p] = (sw + v * (ss - sw)) / (double)n;
    }
    free(order);
    free(cost);
    free(pgr);
    return area;
}

double sc_router_apgr(const float *scores, const unsigned char *weak_ok,
                      const unsigned char *strong_ok, size_t n, double *curve, double *quality,
                      int npoints)
{
    double *q = malloc(sizeof(double) * 2 * (n ? n : 1));
    if (!q)
        return NAN;
    for (size_t i = 0; i < n; i++) {
        q[i] = weak_ok[i] != 0;
        q[n + i] = strong_ok[i] != 0;
    }
    double area = sc_router_apgr_graded(scores, q, q + n, n, curve, quality, npoints);
    free(q);
    return area;
}
