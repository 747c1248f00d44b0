/* test_metrics.c - the metrics registry and its HTTP endpoint: the exposition parsed back line by
 * line, label escaping, histograms, cardinality bounds, concurrent observation, /metrics,
 * /healthz and /readyz over libcurl. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>

#include "host/metrics/metrics.h"
#include "host/metrics/http.h"
#include "host/core/util.h"

#define T_LABELS_MAX   8
#define T_VALUE_MAX    512
#define T_NAME_MAX     128
#define T_FAMILIES_MAX 64
#define T_RESP_MAX     ((size_t)64 * 1024 * 1024)
#define T_THREADS      8
#define T_PER_THREAD   5000

/* ---- a parser for the text format, written from the spec ---- */

typedef struct {
    char name[T_NAME_MAX];
    size_t nlabels;
    char lname[T_LABELS_MAX][T_NAME_MAX];
    char lval[T_LABELS_MAX][T_VALUE_MAX];
    double value;
} t_sample_t;

static int t_name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Parse one sample line; 0 on success, -1 when it breaks the format. */
static int t_parse_sample(const char *line, t_sample_t *s)
{
    const char *p = line;
    size_t n = 0;
    memset(s, 0, sizeof *s);
    while (t_name_char(*p, n == 0) && n < T_NAME_MAX - 1)
        s->name[n++] = *p++;
    if (n == 0)
        return -1;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            if (s->nlabels == T_LABELS_MAX)
                return -1;
            size_t k = 0;
            while (t_name_char(*p, k == 0) && k < T_NAME_MAX - 1)
                s->lname[s->nlabels][k++] = *p++;
            if (k == 0 || p[0] != '=' || p[1] != '"')
                return -1;
            p += 2;
            size_t v = 0;
            while (*p != '"') {
                if (!*p || *p == '\n' || v >= T_VALUE_MAX - 1)
                    return -1;
                if (*p == '\\') {
                    p++;
                    if (*p == 'n')
                        s->lval[s->nlabels][v++] = '\n';
                    else if (*p == '\\' || *p == '"')
                        s->lval[s->nlabels][v++] = *p;
                    else
                        return -1; /* no other escapes exist */
                    p++;
                    continue;
                }
                s->lval[s->nlabels][v++] = *p++;
            }
            p++;
            s->nlabels++;
            if (*p == ',')
                p++;
            else if (*p != '}')
                return -1;
        }
        p++;
    }
    if (*p != ' ')
        return -1;
    p++;
    char *end;
    if (strcmp(p, "+Inf") == 0)
        s->value = INFINITY;
    else {
        s->value = strtod(p, &end);
        if (end == p || *end)
            return -1;
    }
    return 0;
}

static const char *t_label(const t_sample_t *s, const char *name)
{
    for (size_t i = 0; i < s->nlabels; i++)
        if (strcmp(s->lname[i], name) == 0)
            return s->lval[i];
    return NULL;
}

/* Labels other than le, joined, to group histogram lines by series. */
static void t_series_key(const t_sample_t *s, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < s->nlabels; i++)
        if (strcmp(s->lname[i], "le") != 0)
            o +=
                (size_t)snprintf(buf + o, o < len ? len - o : 0, "%s=%s;", s->lname[i], s->lval[i]);
}

typedef struct {
    char name[T_NAME_MAX];
    char type[16];
    int help;
} t_family_t;

typedef struct {
    t_family_t fam[T_FAMILIES_MAX];
    size_t nfam;
    /* the histogram series being read */
    char hkey[4096];
    char hname[T_NAME_MAX];
    double last_le, last_cum, inf_cum;
    int in_hist, saw_inf;
    size_t hist_series;
} t_check_t;

static t_family_t *t_family(t_check_t *c, const char *name)
{
    for (size_t i = 0; i < c->nfam; i++)
        if (strcmp(c->fam[i].name, name) == 0)
            return &c->fam[i];
    return NULL;
}

static int t_has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/*
 * Check a whole exposition: every line is HELP, TYPE or a sample; HELP and TYPE of a family come
 * before its samples, once each; histogram buckets rise with le, are cumulative, end at +Inf,
 * and _count equals the +Inf bucket. Calls visit for each sample.
 */
static void t_check_exposition(const char *text, void (*visit)(const t_sample_t *, void *),
                               void *arg)
{
    t_check_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    char *copy = strdup(text), *save = NULL;
    assert_non_null(copy);
    assert_true(text[0] && text[strlen(text) - 1] == '\n'); /* the last line ends too */
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
            char name[T_NAME_MAX];
            const char *p = line + 7;
            size_t n = 0;
            while (*p && *p != ' ' && n < sizeof name - 1)
                name[n++] = *p++;
            name[n] = '\0';
            assert_int_equal(*p, ' ');
            t_family_t *f = t_family(c, name);
            if (!f) {
                assert_true(c->nfam < T_FAMILIES_MAX);
                f = &c->fam[c->nfam++];
                sc_strlcpy(f->name, name, sizeof f->name);
            }
            if (line[2] == 'H') {
                assert_false(f->help);
                assert_int_equal(f->type[0], '\0'); /* HELP first, as we write it */
                f->help = 1;
            } else {
                assert_int_equal(f->type[0], '\0');
                sc_strlcpy(f->type, p + 1, sizeof f->type);
                assert_true(strcmp(f->type, "counter") == 0 || strcmp(f->type, "gauge") == 0 ||
                            strcmp(f->type, "histogram") == 0);
            }
            continue;
        }
        assert_int_not_equal(line[0], '#');
        t_sample_t s;
        if (t_parse_sample(line, &s) != 0)
            fail_msg("not a sample line: %s", line);
        char base[T_NAME_MAX];
        sc_strlcpy(base, s.name, sizeof base);
        t_family_t *f = t_family(c, base);
        if (!f) { /* a histogram's _bucket, _sum or _count */
            static const char *const sufs[] = {"_bucket", "_sum", "_count"};
            for (size_t i = 0; i < 3 && !f; i++)
                if (t_has_suffix(s.name, sufs[i])) {
                    base[strlen(base) - strlen(sufs[i])] = '\0';
                    f = t_family(c, base);
                    if (f)
                        assert_string_equal(f->type, "histogram");
                }
        }
        if (!f)
            fail_msg("sample before its HELP/TYPE: %s", line);
        assert_true(f->help);
        assert_true(f->type[0]);
        assert_true(strncmp(s.name, "scrimp_", 7) == 0);
        if (strcmp(f->type, "counter") == 0)
            assert_true(t_has_suffix(s.name, "_total") && s.value >= 0);
        if (strcmp(f->type, "histogram") == 0) {
            char key[4096];
            t_series_key(&s, key, sizeof key);
            if (t_has_suffix(s.name, "_bucket")) {
                const char *le = t_label(&s, "le");
                assert_non_null(le);
                double lev = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
                if (!c->in_hist || strcmp(key, c->hkey) || strcmp(base, c->hname)) {
                    assert_false(c->in_hist && !c->saw_inf); /* previous one was complete */
                    c->in_hist = 1;
                    c->saw_inf = 0;
                    c->last_le = -INFINITY;
                    c->last_cum = 0;
                    sc_strlcpy(c->hkey, key, sizeof c->hkey);
                    sc_strlcpy(c->hname, base, sizeof c->hname);
                    c->hist_series++;
                }
                assert_true(lev > c->last_le);
                assert_true(s.value >= c->last_cum);
                c->last_le = lev;
                c->last_cum = s.value;
                if (isinf(lev)) {
                    c->saw_inf = 1;
                    c->inf_cum = s.value;
                }
            } else {
                assert_true(c->in_hist && c->saw_inf);
                assert_string_equal(key, c->hkey);
                if (t_has_suffix(s.name, "_count")) {
                    assert_true(s.value == c->inf_cum);
                    c->in_hist = 0;
                }
            }
        }
        if (visit)
            visit(&s, arg);
    }
    assert_false(c->in_hist);
    for (size_t i = 0; i < c->nfam; i++)
        assert_true(c->fam[i].help && c->fam[i].type[0]);
    free(copy);
    free(c);
}

static char *t_render(sc_metrics_t *m)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(sc_metrics_render(m, &out, &len), SC_OK);
    assert_non_null(out);
    assert_int_equal(strlen(out), len);
    return out;
}

/* Sum of the samples of one name whose labels match every given pair ("k", "v", …, NULL). */
typedef struct {
    const char *name;
    const char *want[2 * T_LABELS_MAX + 1];
    double sum;
    size_t n;
} t_sum_t;

static void t_sum_visit(const t_sample_t *s, void *arg)
{
    t_sum_t *q = arg;
    if (strcmp(s->name, q->name) != 0)
        return;
    for (size_t i = 0; q->want[i]; i += 2) {
        const char *v = t_label(s, q->want[i]);
        if (!v || strcmp(v, q->want[i + 1]) != 0)
            return;
    }
    q->sum += s->value;
    q->n++;
}

static double t_sum(const char *text, size_t *n, const char *name, ...)
{
    t_sum_t q = {.name = name};
    va_list ap;
    va_start(ap, name);
    for (size_t i = 0; i < 2 * T_LABELS_MAX; i++) {
        const char *a = va_arg(ap, const char *);
        q.want[i] = a;
        if (!a)
            break;
    }
    va_end(ap);
    t_check_exposition(text, t_sum_visit, &q);
    if (n)
        *n = q.n;
    return q.sum;
}

static sc_result_t t_result(const char *tenant, const char *agent, const char *stage)
{
    sc_result_t r;
    sc_result_init(&r);
    r.id = "req-1";
    r.tenant = tenant;
    r.agent = agent;
    r.stage = stage;
    r.ok = 1;
    r.model = "gemini-2.5-flash";
    r.source = "llm";
    r.usage.prompt_tokens = 812;
    r.usage.cached_tokens = 12;
    r.usage.output_tokens = 96;
    r.usage.thought_tokens = 7;
    r.cost_usd = 0.000484;
    r.baseline_cost_usd = 0.00598;
    r.savings.prune_usd = 0.0041;
    r.savings.route_usd = 0.0013;
    r.latency_ms = 842;
    return r;
}

/* ---- exposition ---- */

static void test_exposition_format(void **state)
{
    (void)state;
    sc_metrics_t *m = NULL;
    assert_int_equal(sc_metrics_new(&m), SC_OK);
    const char *tricky = "a\"b\\c\nd";
    sc_result_t r = t_result(tricky, "support-bot", NULL);
    sc_metrics_observe_result(m, &r);
    sc_metrics_observe_result(m, &r);
    r.ok = 0;
    r.error_code = "UPSTREAM_UNAVAILABLE";
    r.latency_ms = 70000; /* beyond the last bucket: only +Inf */
    sc_metrics_observe_result(m, &r);
    r.savings.route_usd = -0.002; /* a promotion that cost more */
    sc_metrics_observe_result(m, &r);
    sc_metrics_cache(m, tricky, "hit_exact");
    sc_metrics_cache(m, tricky, "miss");
    sc_metrics_cache(m, tricky, "bogus");
    sc_metrics_guard_refusal(m, "temperature");
    sc_metrics_upstream_error(m, "gemini-2.5-flash", "429");
    sc_metrics_retry(m, "gemini-2.5-flash");
    sc_metrics_retries(m, "gemini-2.5-flash", 3);
    sc_metrics_retries(m, "gemini-2.5-flash", -1);
    sc_metrics_upstream_http_error(m, "gemini-2.5-pro", 503);
    sc_metrics_upstream_http_error(m, "gemini-2.5-pro", 0);
    for (int i = 0; i < 20; i++)
        sc_metrics_stage_latency(m, "embed", 0.0005 * i);
    sc_metrics_batch_size(m, 64);
    sc_metrics_dead_letter(m, "INVALID_JSON");
    assert_int_equal(sc_metrics_gauge_set(m, "consumer_lag", 17), SC_OK);
    assert_int_equal(sc_metrics_gauge_set(m, "upstream_inflight", 3), SC_OK);
    assert_int_equal(sc_metrics_gauge_set(m, "queue_depth:compute", 5), SC_OK);
    sc_metrics_queue_depth(m, "upstream", 9);
    assert_int_equal(sc_metrics_gauge_set(m, "no_such_gauge", 1), SC_ERR_INVALID_ARG);

    char *text = t_render(m);
    t_check_exposition(text, NULL, NULL);
    /* the escaped tenant comes back as it went in */
    assert_non_null(strstr(text, "tenant=\"a\\\"b\\\\c\\nd\""));
    size_t n;
    assert_true(t_sum(text, &n, "scrimp_requests_total", "tenant", tricky, "agent", "support-bot",
                      "stage", "none", "model", "gemini-2.5-flash", "source", "llm", "status", "ok",
                      NULL) == 2);
    assert_int_equal(n, 1);
    assert_true(t_sum(text, NULL, "scrimp_requests_total", "status", "error", NULL) == 2);
    assert_true(t_sum(text, NULL, "scrimp_tokens_total", "kind", "prompt", NULL) == 4 * 812);
    assert_true(t_sum(text, NULL, "scrimp_tokens_total", "kind", "thought", NULL) == 4 * 7);
    assert_true(fabs(t_sum(text, NULL, "scrimp_cost_usd_total", NULL) - 4 * 0.000484) < 1e-15);
    assert_true(fabs(t_sum(text, NULL, "scrimp_baseline_cost_usd_total", NULL) - 4 * 0.00598) <
                1e-15);
    assert_true(fabs(t_sum(text, NULL, "scrimp_savings_usd_total", "technique", "route", NULL) -
                     3 * 0.0013) < 1e-15);
    assert_true(t_sum(text, &n, "scrimp_savings_usd_total", "technique", "cache", NULL) == 0);
    assert_int_equal(n, 0); /* nothing saved: no series */
    assert_true(fabs(t_sum(text, NULL, "scrimp_overspend_usd_total", "technique", "route", NULL) -
                     0.002) < 1e-15);
    assert_true(
        t_sum(text, NULL, "scrimp_result_errors_total", "code", "UPSTREAM_UNAVAILABLE", NULL) == 2);
    assert_true(t_sum(text, NULL, "scrimp_cache_lookups_total", "outcome", "hit_exact", NULL) == 1);
    assert_true(t_sum(text, NULL, "scrimp_cache_lookups_total", "outcome", "other", NULL) == 1);
    assert_true(
        t_sum(text, NULL, "scrimp_cache_guard_refusals_total", "reason", "temperature", NULL) == 1);
    assert_true(t_sum(text, NULL, "scrimp_upstream_errors_total", "code", "429", NULL) == 1);
    assert_true(t_sum(text, NULL, "scrimp_upstream_retries_total", NULL) == 4);
    assert_true(t_sum(text, NULL, "scrimp_upstream_errors_total", "model", "gemini-2.5-pro", "code",
                      "503", NULL) == 1);
    assert_true(t_sum(text, NULL, "scrimp_upstream_errors_total", "code", "transport", NULL) == 1);
    assert_true(t_sum(text, NULL, "scrimp_dead_letters_total", "code", "INVALID_JSON", NULL) == 1);
    assert_true(t_sum(text, NULL, "scrimp_consumer_lag", NULL) == 17);
    assert_true(t_sum(text, NULL, "scrimp_upstream_inflight", NULL) == 3);
    assert_true(t_sum(text, NULL, "scrimp_queue_depth", "queue", "compute", NULL) == 5);
    assert_true(t_sum(text, NULL, "scrimp_queue_depth", "queue", "upstream", NULL) == 9);
    assert_true(t_sum(text, NULL, "scrimp_ready", NULL) == 0);
    assert_true(t_sum(text, NULL, "scrimp_build_info", NULL) == 1);
    /* histograms: 0.842 s lands in le=1 (and not le=0.5); 70 s only in +Inf */
    assert_true(t_sum(text, NULL, "scrimp_request_latency_seconds_bucket", "le", "0.5", NULL) == 0);
    assert_true(t_sum(text, NULL, "scrimp_request_latency_seconds_bucket", "le", "1", NULL) == 2);
    assert_true(t_sum(text, NULL, "scrimp_request_latency_seconds_bucket", "le", "60", NULL) == 2);
    assert_true(t_sum(text, NULL, "scrimp_request_latency_seconds_bucket", "le", "+Inf", NULL) ==
                4);
    assert_true(t_sum(text, NULL, "scrimp_request_latency_seconds_count", NULL) == 4);
    assert_true(fabs(t_sum(text, NULL, "scrimp_request_latency_seconds_sum", NULL) -
                     (2 * 0.842 + 2 * 70.0)) < 1e-9);
    /* 0, 0.0005 and 0.001 are <= 0.001 (le is inclusive) */
    assert_true(t_sum(text, NULL, "scrimp_stage_latency_seconds_bucket", "pipeline_stage", "embed",
                      "le", "0.001", NULL) == 3);
    assert_true(t_sum(text, NULL, "scrimp_stage_latency_seconds_count", NULL) == 20);
    assert_true(t_sum(text, NULL, "scrimp_batch_size_bucket", "le", "32", NULL) == 0);
    assert_true(t_sum(text, NULL, "scrimp_batch_size_bucket", "le", "64", NULL) == 1);
    assert_non_null(strstr(text, "# TYPE scrimp_request_latency_seconds histogram\n"));
    assert_non_null(strstr(text, "# TYPE scrimp_requests_total counter\n"));
    free(text);

    sc_metrics_set_ready(m, 1);
    assert_int_equal(sc_metrics_ready(m), 1);
    text = t_render(m);
    assert_true(t_sum(text, NULL, "scrimp_ready", NULL) == 1);
    free(text);
    sc_metrics_free(m);
    sc_metrics_free(NULL);
}

/* A fresh registry is a valid exposition: label-less gauges at 0, other families HELP/TYPE only. */
static void test_exposition_empty(void **state)
{
    (void)state;
    sc_metrics_t *m = NULL;
    assert_int_equal(sc_metrics_new(&m), SC_OK);
    char *text = t_render(m);
    t_check_exposition(text, NULL, NULL);
    assert_non_null(strstr(text, "\nscrimp_consumer_lag 0\n"));
    assert_non_null(strstr(text, "# HELP scrimp_requests_total "));
    assert_null(strstr(text, "\nscrimp_requests_total{"));
    free(text);
    sc_metrics_free(m);
}

/* ---- shadow evaluation ---- */

/* How many times needle occurs in text. */
/* not inlined: gcc 12 at -O3 then sees a dangling pointer where there is none */
__attribute__((noinline)) static size_t t_count(const char *text, const char *needle)
{
    size_t n = 0;
    for (size_t at = 0;; n++) {
        const char *hit = strstr(text + at, needle);
        if (!hit)
            return n;
        at = (size_t)(hit - text) + 1;
    }
}

/* Shadow comparisons: their own families, and their cost in the ledger under source "shadow"
 * (cost and overspend, technique "shadow"; the baseline untouched). Costs are powers of two so
 * that sums print exactly. */
static void test_shadow(void **state)
{
    (void)state;
    sc_metrics_t *m = NULL;
    assert_int_equal(sc_metrics_new(&m), SC_OK);
    assert_int_equal(sc_metrics_set_max_tenants(m, 1), SC_OK);
    sc_result_t r = t_result("acme", "faq", "answer");
    sc_metrics_observe_result(m, &r);
    const char *pro = "gemini-2.5-pro";
    sc_metrics_shadow(m, "acme", "faq", "answer", "lite", pro, "agree", 0.0009765625);
    sc_metrics_shadow(m, "acme", "faq", "answer", "lite", pro, "agree", 0.0009765625);
    sc_metrics_shadow(m, "acme", "faq", "answer", "lite", pro, "disagree", 0.0009765625);
    sc_metrics_shadow(m, "acme", "faq", "answer", "lite", pro, "no_evidence", 0.001953125);
    sc_metrics_shadow(m, "acme", NULL, NULL, "lite", pro, "failed", 0.00048828125);
    sc_metrics_shadow(m, "acme", "faq", "answer", "lite", pro, "dropped", 0);
    sc_metrics_shadow(m, "acme", "faq", "answer", "lite", pro, "made-up", 0);
    sc_metrics_shadow(m, "globex", "faq", "answer", "lite", pro, "agree", 0.25); /* beyond K */
    sc_metrics_shadow(NULL, "acme", "faq", "answer", "lite", pro, "agree", 1.0);

    char *text = t_render(m);
    t_check_exposition(text, NULL, NULL);
    static const char *const lines[] = {
        "\nscrimp_shadow_calls_total{tenant=\"acme\",agent=\"faq\",stage=\"answer\",tier=\"lite\","
        "outcome=\"agree\"} 2\n",
        "\nscrimp_shadow_calls_total{tenant=\"acme\",agent=\"faq\",stage=\"answer\",tier=\"lite\","
        "outcome=\"disagree\"} 1\n",
        "\nscrimp_shadow_calls_total{tenant=\"acme\",agent=\"faq\",stage=\"answer\",tier=\"lite\","
        "outcome=\"no_evidence\"} 1\n",
        "\nscrimp_shadow_calls_total{tenant=\"acme\",agent=\"none\",stage=\"none\",tier=\"lite\","
        "outcome=\"failed\"} 1\n",
        "\nscrimp_shadow_calls_total{tenant=\"acme\",agent=\"faq\",stage=\"answer\",tier=\"lite\","
        "outcome=\"dropped\"} 1\n",
        "\nscrimp_shadow_calls_total{tenant=\"acme\",agent=\"faq\",stage=\"answer\",tier=\"lite\","
        "outcome=\"other\"} 1\n",
        "\nscrimp_shadow_calls_total{tenant=\"other\",agent=\"faq\",stage=\"answer\",tier=\"lite\","
        "outcome=\"agree\"} 1\n",
        /* 3 * 2^-10 + 2^-9 */
        "\nscrimp_shadow_cost_usd_total{tenant=\"acme\",agent=\"faq\",stage=\"answer\","
        "model=\"gemini-2.5-pro\"} 0.0048828125\n",
        "\nscrimp_shadow_cost_usd_total{tenant=\"acme\",agent=\"none\",stage=\"none\","
        "model=\"gemini-2.5-pro\"} 0.00048828125\n",
        "\nscrimp_shadow_cost_usd_total{tenant=\"other\",agent=\"faq\",stage=\"answer\","
        "model=\"gemini-2.5-pro\"} 0.25\n",
        "\nscrimp_cost_usd_total{tenant=\"acme\",agent=\"faq\",stage=\"answer\","
        "model=\"gemini-2.5-pro\",source=\"shadow\"} 0.0048828125\n",
        "\nscrimp_cost_usd_total{tenant=\"acme\",agent=\"none\",stage=\"none\","
        "model=\"gemini-2.5-pro\",source=\"shadow\"} 0.00048828125\n",
        "\nscrimp_cost_usd_total{tenant=\"other\",agent=\"faq\",stage=\"answer\","
        "model=\"gemini-2.5-pro\",source=\"shadow\"} 0.25\n",
        "\nscrimp_cost_usd_total{tenant=\"acme\",agent=\"faq\",stage=\"answer\","
        "model=\"gemini-2.5-flash\",source=\"llm\"} 0.000484\n",
        "\nscrimp_overspend_usd_total{tenant=\"acme\",agent=\"faq\",stage=\"answer\","
        "model=\"gemini-2.5-pro\",source=\"shadow\",technique=\"shadow\"} 0.0048828125\n",
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(lines); i++)
        if (!strstr(text, lines[i]))
            fail_msg("missing:%s", lines[i]);
    size_t n;
    assert_true(t_sum(text, &n, "scrimp_shadow_calls_total", NULL) == 8);
    assert_int_equal(n, 7);
    /* every dollar of the ledger: the result's and the shadows' */
    assert_true(fabs(t_sum(text, NULL, "scrimp_cost_usd_total", NULL) -
                     (0.000484 + 0.0048828125 + 0.00048828125 + 0.25)) < 1e-15);
    assert_true(t_sum(text, &n, "scrimp_cost_usd_total", "source", "shadow", NULL) ==
                0.0048828125 + 0.00048828125 + 0.25);
    assert_int_equal(n, 3);
    assert_true(t_sum(text, &n, "scrimp_baseline_cost_usd_total", "source", "shadow", NULL) == 0);
    assert_int_equal(n, 0);
    assert_true(t_sum(text, &n, "scrimp_savings_usd_total", "technique", "shadow", NULL) == 0);
    assert_int_equal(n, 0);
    assert_true(fabs(t_sum(text, NULL, "scrimp_baseline_cost_usd_total", NULL) - 0.00598) < 1e-15);
    /* the request count is the result's only */
    assert_true(t_sum(text, NULL, "scrimp_requests_total", NULL) == 1);
    static const struct {
        const char *name, *type;
    } families[] = {{"scrimp_shadow_calls_total", "counter"},
                    {"scrimp_shadow_cost_usd_total", "counter"},
                    {"scrimp_route_agreement", "gauge"},
                    {"scrimp_route_agreement_rate", "gauge"},
                    {"scrimp_route_agreement_samples", "gauge"}};
    char want[T_NAME_MAX];
    for (size_t i = 0; i < SC_ARRAY_LEN(families); i++) {
        snprintf(want, sizeof want, "# HELP %s ", families[i].name);
        assert_int_equal(t_count(text, want), 1);
        snprintf(want, sizeof want, "# TYPE %s %s\n", families[i].name, families[i].type);
        assert_int_equal(t_count(text, want), 1);
    }
    free(text);
    sc_metrics_free(m);
}

/* The agreement gauges are set: a second estimate replaces the first, never adds to it. */
static void test_route_agreement(void **state)
{
    (void)state;
    sc_metrics_t *m = NULL;
    assert_int_equal(sc_metrics_new(&m), SC_OK);
    assert_int_equal(sc_metrics_set_max_tenants(m, 1), SC_OK);
    sc_metrics_route_agreement(m, "acme", "faq", "answer", "lite", 0.5, 0.75, 32);
    sc_metrics_route_agreement(m, "acme", "faq", "answer", "lite", 0.625, 0.875, 40.5);
    sc_metrics_route_agreement(m, "acme", "faq", "answer", "flash", 0.25, 0.5, 8);
    sc_metrics_route_agreement(m, "acme", "faq", "answer", "flash", NAN, NAN, NAN); /* kept */
    sc_metrics_route_agreement(m, "acme", NULL, NULL, "lite", 0, 0, 0);
    sc_metrics_route_agreement(m, "globex", "faq", "answer", "lite", 0.125, 0.25, 4); /* > K */
    sc_metrics_route_agreement(NULL, "acme", "faq", "answer", "lite", 1, 1, 1);

    char *text = t_render(m);
    t_check_exposition(text, NULL, NULL);
    static const char *const lines[] = {
        "\nscrimp_route_agreement{tenant=\"acme\",agent=\"faq\",stage=\"answer\",tier=\"lite\"} "
        "0.625\n",
        "\nscrimp_route_agreement_rate{tenant=\"acme\",agent=\"faq\",stage=\"answer\","
        "tier=\"lite\"} 0.875\n",
        "\nscrimp_route_agreement_samples{tenant=\"acme\",agent=\"faq\",stage=\"answer\","
        "tier=\"lite\"} 40.5\n",
        "\nscrimp_route_agreement{tenant=\"acme\",agent=\"faq\",stage=\"answer\",tier=\"flash\"} "
        "0.25\n",
        "\nscrimp_route_agreement_samples{tenant=\"acme\",agent=\"faq\",stage=\"answer\","
        "tier=\"flash\"} 8\n",
        "\nscrimp_route_agreement{tenant=\"acme\",agent=\"none\",stage=\"none\",tier=\"lite\"} 0\n",
        "\nscrimp_route_agreement_rate{tenant=\"other\",agent=\"faq\",stage=\"answer\","
        "tier=\"lite\"} 0.25\n",
    };
    for (size_t i = 0; i < SC_ARRAY_LEN(lines); i++)
        if (!strstr(text, lines[i]))
            fail_msg("missing:%s", lines[i]);
    size_t n;
    assert_true(t_sum(text, &n, "scrimp_route_agreement", "tenant", "acme", "tier", "lite", "agent",
                      "faq", NULL) == 0.625);
    assert_int_equal(n, 1);
    assert_true(t_sum(text, &n, "scrimp_route_agreement_samples", NULL) == 40.5 + 8 + 0 + 4);
    assert_int_equal(n, 4);
    assert_int_equal(t_count(text, "# TYPE scrimp_route_agreement gauge\n"), 1);
    assert_int_equal(t_count(text, "# HELP scrimp_route_agreement "), 1);
    /* gauges only: no cost or calls come from an estimate */
    assert_true(t_sum(text, &n, "scrimp_shadow_calls_total", NULL) == 0);
    assert_int_equal(n, 0);
    free(text);
    sc_metrics_free(m);
}

/* ---- label values ---- */

static void test_label_values(void **state)
{
    (void)state;
    sc_metrics_t *m = NULL;
    assert_int_equal(sc_metrics_new(&m), SC_OK);
    char longv[201];
    for (int i = 0; i < 100; i++)
        memcpy(longv + 2 * i, "\xc3\xa9", 2); /* é: 200 bytes */
    longv[200] = '\0';
    sc_result_t r = t_result("t", "\xff\xfe not utf8", longv);
    r.source = "from-mars";
    r.model = NULL;
    sc_metrics_observe_result(m, &r);
    char *text = t_render(m);
    size_t n;
    char cut[SC_METRICS_VALUE_MAX + 1];
    memcpy(cut, longv, SC_METRICS_VALUE_MAX);
    cut[SC_METRICS_VALUE_MAX] = '\0'; /* 64 whole characters */
    assert_true(t_sum(text, &n, "scrimp_requests_total", "agent", "other", "stage", cut, "model",
                      "none", "source", "other", NULL) == 1);
    assert_int_equal(n, 1);
    free(text);
    sc_metrics_free(m);
}

/* ---- cardinality ---- */

static void test_tenant_cap(void **state)
{
    (void)state;
    sc_metrics_t *m = NULL;
    assert_int_equal(sc_metrics_new(&m), SC_OK);
    assert_int_equal(sc_metrics_set_max_tenants(m, 0), SC_ERR_INVALID_ARG);
    assert_int_equal(sc_metrics_set_max_tenants(m, SC_METRICS_MAX_TENANTS_LIMIT + 1),
                     SC_ERR_INVALID_ARG);
    assert_int_equal(sc_metrics_set_max_tenants(m, 3), SC_OK);
    char name[32];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 10; i++) {
            snprintf(name, sizeof name, "tenant-%d", i);
            sc_result_t r = t_result(name, "a", "s");
            sc_metrics_observe_result(m, &r);
            sc_metrics_cache(m, name, "miss");
        }
    char *text = t_render(m);
    size_t n;
    assert_true(t_sum(text, &n, "scrimp_requests_total", NULL) == 20);
    assert_int_equal(n, 4); /* the first three, and other */
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "tenant-%d", i);
        assert_true(t_sum(text, NULL, "scrimp_requests_total", "tenant", name, NULL) == 2);
    }
    assert_true(t_sum(text, NULL, "scrimp_requests_total", "tenant", "tenant-3", NULL) == 0);
    assert_true(t_sum(text, NULL, "scrimp_requests_total", "tenant", "other", NULL) == 14);
    assert_true(t_sum(text, &n, "scrimp_cache_lookups_total", "tenant", "other", NULL) == 14);
    assert_int_equal(n, 1);
    free(text);
    sc_metrics_free(m);
}

static void test_series_cap(void **state)
{
    (void)state;
    sc_metrics_t *m = NULL;
    assert_int_equal(sc_metrics_new(&m), SC_OK);
    char agent[32], stage[32];
    const int total = 3000;
    for (int i = 0; i < total; i++) { /* 100 agents x 30 stages: 3000 label sets */
        snprintf(agent, sizeof agent, "agent-%d", i % 100);
        snprintf(stage, sizeof stage, "stage-%d", i / 100);
        sc_result_t r = t_result("acme", agent, stage);
        sc_metrics_observe_result(m, &r);
    }
    char *text = t_render(m);
    size_t n, n_other;
    assert_true(t_sum(text, &n, "scrimp_requests_total", NULL) == total);
    assert_int_equal(n, SC_METRICS_MAX_SERIES + 1);
    double other =
        t_sum(text, &n_other, "scrimp_requests_total", "tenant", "other", "agent", "other", "stage",
              "other", "model", "other", "source", "other", "status", "other", NULL);
    assert_int_equal(n_other, 1);
    assert_true(other == total - SC_METRICS_MAX_SERIES);
    assert_true(t_sum(text, NULL, "scrimp_metrics_overflow_total", "family",
                      "scrimp_requests_total", NULL) == total - SC_METRICS_MAX_SERIES);
    /* tokens has four kinds per label set: it fills up four times sooner */
    assert_true(t_sum(text, &n, "scrimp_tokens_total", NULL) == total * (812.0 + 12 + 96 + 7));
    assert_int_equal(n, SC_METRICS_MAX_SERIES + 1);
    /* agents beyond SC_METRICS_MAX_VALUES distinct values are "other" */
    for (int i = 0; i < 2 * SC_METRICS_MAX_VALUES; i++) {
        snprintf(agent, sizeof agent, "guard-%d", i);
        sc_metrics_guard_refusal(m, agent);
    }
    free(text);
    text = t_render(m);
    assert_true(t_sum(text, &n, "scrimp_cache_guard_refusals_total", NULL) ==
                2 * SC_METRICS_MAX_VALUES);
    assert_int_equal(n, SC_METRICS_MAX_VALUES + 1);
    assert_true(t_sum(text, NULL, "scrimp_cache_guard_refusals_total", "reason", "other", NULL) ==
                SC_METRICS_MAX_VALUES);
    free(text);
    sc_metrics_free(m);
}

/* ---- threads ---- */

typedef struct {
    sc_metrics_t *m;
    int idx;
} t_worker_t;

static void *t_worker(void *arg)
{
    t_worker_t *w = arg;
    char tenant[16];
    for (int i = 0; i < T_PER_THREAD; i++) {
        snprintf(tenant, sizeof tenant, "t%d", (w->idx + i) % 5);
        sc_result_t r = t_result(tenant, "bot", "triage");
        sc_metrics_observe_result(w->m, &r);
        sc_metrics_stage_latency(w->m, "upstream", 0.01);
        sc_metrics_retry(w->m, "gemini-2.5-pro");
        sc_metrics_queue_depth(w->m, "compute", (double)i);
    }
    return NULL;
}

static void *t_reader(void *arg)
{
    sc_metrics_t *m = arg;
    for (int i = 0; i < 20; i++) {
        char *out = NULL;
        size_t len;
        if (sc_metrics_render(m, &out, &len) != SC_OK)
            return (void *)1;
        free(out);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    sc_metrics_t *m = NULL;
    assert_int_equal(sc_metrics_new(&m), SC_OK);
    pthread_t th[T_THREADS], rd;
    t_worker_t w[T_THREADS];
    assert_int_equal(pthread_create(&rd, NULL, t_reader, m), 0);
    for (int i = 0; i < T_THREADS; i++) {
        w[i] = (t_worker_t){m, i};
        assert_int_equal(pthread_create(&th[i], NULL, t_worker, &w[i]), 0);
    }
    for (int i = 0; i < T_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    void *rv;
    assert_int_equal(pthread_join(rd, &rv), 0);
    assert_null(rv);
    char *text = t_render(m);
    const double n = (double)T_THREADS * T_PER_THREAD;
    size_t series;
    assert_true(t_sum(text, &series, "scrimp_requests_total", NULL) == n);
    assert_int_equal(series, 5);
    assert_true(t_sum(text, NULL, "scrimp_tokens_total", "kind", "output", NULL) == n * 96);
    assert_true(t_sum(text, NULL, "scrimp_upstream_retries_total", NULL) == n);
    assert_true(t_sum(text, NULL, "scrimp_stage_latency_seconds_count", NULL) == n);
    assert_true(t_sum(text, NULL, "scrimp_request_latency_seconds_count", NULL) == n);
    free(text);
    sc_metrics_free(m);
}

/* ---- HTTP ---- */

typedef struct {
    char *data;
    size_t len;
} t_buf_t;

static size_t t_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    t_buf_t *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > T_RESP_MAX)
        return 0;
    char *nd = realloc(b->data, b->len + n + 1);
    if (!nd)
        return 0;
    memcpy(nd + b->len, ptr, n);
    b->data = nd;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* GET (or another method) http://127.0.0.1:port/path; the body is returned, caller frees. */
static char *t_http(int port, const char *method, const char *path, long *status, char *ctype,
                    size_t ctlen)
{
    char url[128];
    t_buf_t b = {0};
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, t_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ctype)
        sc_strlcpy(ctype, ct ? ct : "", ctlen);
    curl_easy_cleanup(c);
    return b.data ? b.data : strdup("");
}

static void test_http(void **state)
{
    (void)state;
    sc_metrics_t *m = NULL;
    sc_metrics_server_t *srv = NULL;
    char err[256], ctype[128];
    long status = 0;
    assert_int_equal(sc_metrics_new(&m), SC_OK);
    assert_int_equal(sc_metrics_server_start(m, "127.0.0.1:0", &srv, err, sizeof err), SC_OK);
    int port = sc_metrics_server_port(srv);
    assert_true(port > 0);
    sc_result_t r = t_result("acme", "bot", "triage");
    sc_metrics_observe_result(m, &r);

    char *body = t_http(port, "GET", "/metrics", &status, ctype, sizeof ctype);
    assert_int_equal(status, 200);
    assert_true(strncmp(ctype, "text/plain; version=0.0.4", 25) == 0);
    assert_true(t_sum(body, NULL, "scrimp_requests_total", "tenant", "acme", NULL) == 1);
    free(body);
    body = t_http(port, "GET", "/healthz", &status, NULL, 0);
    assert_int_equal(status, 200);
    assert_string_equal(body, "ok\n");
    free(body);
    body = t_http(port, "GET", "/readyz", &status, NULL, 0);
    assert_int_equal(status, 503);
    free(body);
    sc_metrics_set_ready(m, 1);
    body = t_http(port, "GET", "/readyz", &status, NULL, 0);
    assert_int_equal(status, 200);
    free(body);
    sc_metrics_set_ready(m, 0);
    body = t_http(port, "GET", "/readyz", &status, NULL, 0);
    assert_int_equal(status, 503);
    free(body);
    body = t_http(port, "GET", "/nothing", &status, NULL, 0);
    assert_int_equal(status, 404);
    free(body);
    body = t_http(port, "DELETE", "/metrics", &status, NULL, 0);
    assert_int_equal(status, 405);
    free(body);

    /* the same port again: taken */
    char listen[64];
    sc_metrics_server_t *dup = NULL;
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    assert_int_equal(sc_metrics_server_start(m, listen, &dup, err, sizeof err), SC_ERR_HTTP_SERVER);
    assert_null(dup);
    assert_non_null(strstr(err, "cannot listen"));
    sc_metrics_server_stop(srv);
    sc_metrics_server_stop(NULL);
    sc_metrics_free(m);
}

static void test_listen_parse(void **state)
{
    (void)state;
    char host[SC_METRICS_HOST_MAX], err[256];
    int port = -1;
    assert_int_equal(
        sc_metrics_listen_parse("127.0.0.1:9464", host, sizeof host, &port, err, sizeof err),
        SC_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9464);
    assert_int_equal(sc_metrics_listen_parse("[::1]:0", host, sizeof host, &port, err, sizeof err),
                     SC_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(
        sc_metrics_listen_parse("localhost:80", host, sizeof host, &port, err, sizeof err), SC_OK);
    assert_string_equal(host, "127.0.0.1");
    static const char *const bad[] = {"",
                                      "127.0.0.1",
                                      "127.0.0.1:",
                                      "127.0.0.1:65536",
                                      "127.0.0.1:x",
                                      "::1:9464",
                                      "example.com:9464",
                                      "[::1]9464",
                                      ":9464"};
    for (size_t i = 0; i < SC_ARRAY_LEN(bad); i++)
        if (sc_metrics_listen_parse(bad[i], host, sizeof host, &port, err, sizeof err) !=
            SC_ERR_INVALID_ARG)
            fail_msg("accepted \"%s\"", bad[i]);
    sc_metrics_t *m = NULL;
    sc_metrics_server_t *srv = NULL;
    assert_int_equal(sc_metrics_new(&m), SC_OK);
    assert_int_equal(sc_metrics_server_start(m, "nowhere:1", &srv, err, sizeof err),
                     SC_ERR_INVALID_ARG);
    assert_null(srv);
    sc_metrics_free(m);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition_format),
        cmocka_unit_test(test_exposition_empty),
        cmocka_unit_test(test_shadow),
        cmocka_unit_test(test_route_agreement),
        cmocka_unit_test(test_label_values),
        cmocka_unit_test(test_tenant_cap),
        cmocka_unit_test(test_series_cap),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_listen_parse),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
