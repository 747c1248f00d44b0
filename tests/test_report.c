/* test_report.c - `scrimp report`: the tables add up a results file with known numbers (read back
 * from the printed markdown), malformed and over-long lines are counted, the SVG is balanced and
 * carries both series and the technique bars, the curve stays bounded on long inputs, and shadow
 * lines add their cost to every total (and a section of their own) but no request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pipelines/report.h"

#define TEST_PATH_MAX 512
#define TEST_CELLS    16
#define TEST_DEPTH    64

static char dir[TEST_PATH_MAX / 2]; /* leaves room for a file name under it */

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_report.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[TEST_PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in_dir(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Run the report; returns its printed text (caller frees). */
static char *run_report(const char *path, const char *svg)
{
    char err[256] = "";
    FILE *out = tmpfile();
    assert_non_null(out);
    sc_status_t st = sc_report_run(path, svg, out, err, sizeof err);
    if (st != SC_OK)
        fail_msg("sc_report_run: %s", err);
    long n = ftell(out);
    assert_true(n > 0);
    char *text = malloc((size_t)n + 1);
    assert_non_null(text);
    rewind(out);
    assert_int_equal(fread(text, 1, (size_t)n, out), (size_t)n);
    text[n] = '\0';
    fclose(out);
    return text;
}

/* The cells of the row named `name` in the table under the heading `section` ("## per tenant").
 * Cells are trimmed and written into cells[] (each up to 63 chars). Returns the cell count, 0 when
 * the row is missing. */
static int row_cells(const char *text, const char *section, const char *name,
                     char cells[TEST_CELLS][64])
{
    const char *s = strstr(text, section);
    if (!s)
        return 0;
    const char *end = strstr(s + strlen(section), "\n## ");
    for (const char *line = strchr(s, '\n'); line && (!end || line < end);
         line = strchr(line + 1, '\n')) {
        const char *p = line + 1;
        if (*p != '|')
            continue;
        int n = 0;
        while (*p == '|' && n < TEST_CELLS) {
            const char *q = p + 1;
            while (*q && *q != '|' && *q != '\n')
                q++;
            if (*q != '|')
                break;
            const char *a = p + 1, *b = q;
            while (a < b && *a == ' ')
                a++;
            while (b > a && b[-1] == ' ')
                b--;
            size_t len = (size_t)(b - a) < 63 ? (size_t)(b - a) : 63;
            memcpy(cells[n], a, len);
            cells[n][len] = '\0';
            n++;
            p = q;
        }
        if (n > 0 && strcmp(cells[0], name) == 0)
            return n;
    }
    return 0;
}

static double cell_num(const char *text, const char *section, const char *name, int col)
{
    char cells[TEST_CELLS][64];
    int n = row_cells(text, section, name, cells);
    if (n <= col)
        fail_msg("no row '%s' (column %d) under '%s'", name, col, section);
    return strtod(cells[col], NULL);
}

/* ---- a tiny XML checker: every start tag is closed in order, quotes and comments balance ---- */

static int xml_balanced(const char *s)
{
    char stack[TEST_DEPTH][32];
    int depth = 0, roots = 0;
    while ((s = strchr(s, '<')) != NULL) {
        if (strncmp(s, "<?", 2) == 0 || strncmp(s, "<!--", 4) == 0) {
            const char *e = strstr(s, s[1] == '?' ? "?>" : "-->");
            if (!e)
                return 0;
            s = e + 2;
            continue;
        }
        int closing = s[1] == '/';
        const char *n = s + 1 + closing, *p = n;
        while (*p && *p != ' ' && *p != '>' && *p != '/' && *p != '\n')
            p++;
        size_t nlen = (size_t)(p - n);
        if (nlen == 0 || nlen >= sizeof stack[0])
            return 0;
        char quote = 0; /* find the end of the tag outside quoted attribute values */
        for (; *p && (quote || *p != '>'); p++) {
            if (*p == '<' && !quote)
                return 0;
            if (*p == '"' || *p == '\'')
                quote = quote == *p ? 0 : quote ? quote : *p;
        }
        if (*p != '>')
            return 0;
        int self = p[-1] == '/';
        if (closing) {
            if (depth == 0 || strlen(stack[depth - 1]) != nlen ||
                strncmp(stack[depth - 1], n, nlen) != 0)
                return 0;
            depth--;
        } else if (!self) {
            if (depth == 0)
                roots++;
            if (depth == TEST_DEPTH)
                return 0;
            memcpy(stack[depth], n, nlen);
            stack[depth][nlen] = '\0';
            depth++;
        }
        s = p + 1;
    }
    return depth == 0 && roots == 1;
}

/* The number of "x,y" pairs in the points attribute of the element with this id. */
static int points_of(const char *svg, const char *id)
{
    char key[64];
    snprintf(key, sizeof key, "id=\"%s\"", id);
    const char *e = strstr(svg, key);
    if (!e)
        return -1;
    const char *p = strstr(e, "points=\"");
    const char *close = strchr(e, '>');
    if (!p || p > close)
        return -1;
    int n = 0;
    for (p += 8; *p && *p != '"'; p++)
        n += *p == ',';
    return n;
}

static double attr_of(const char *svg, const char *id, const char *attr)
{
    char key[64];
    snprintf(key, sizeof key, "id=\"%s\"", id);
    const char *e = strstr(svg, key);
    assert_non_null(e);
    snprintf(key, sizeof key, " %s=\"", attr);
    const char *p = strstr(e, key);
    assert_non_null(p);
    assert_true(p < strchr(e, '>'));
    return strtod(p + strlen(key), NULL);
}

/* ---- the fixture: five results with known numbers and four lines that are not results ---- */

static const char *fixture =
    "{\"id\":\"r1\",\"tenant\":\"acme\",\"agent\":\"support-bot\",\"stage\":\"answer\","
    "\"status\":\"ok\",\"model\":\"gemini-2.5-flash\",\"source\":\"llm\","
    "\"usage\":{\"prompt_tokens\":1000,\"cached_tokens\":0,\"output_tokens\":100,"
    "\"thought_tokens\":20},\"cost_usd\":0.001,\"baseline_cost_usd\":0.010,"
    "\"savings\":{\"cache_usd\":0,\"prune_usd\":0,\"route_usd\":0.009,\"prompt_cache_usd\":0,"
    "\"batch_usd\":0}}\n"
    "{\"id\":\"r2\",\"tenant\":\"acme\",\"agent\":\"support-bot\",\"stage\":\"answer\","
    "\"status\":\"ok\",\"model\":\"gemini-2.5-flash\",\"source\":\"cache-exact\","
    "\"usage\":{\"prompt_tokens\":0,\"cached_tokens\":0,\"output_tokens\":0,"
    "\"thought_tokens\":0},\"cost_usd\":0,\"baseline_cost_usd\":0.010,"
    "\"savings\":{\"cache_usd\":0.010,\"prune_usd\":0,\"route_usd\":0,\"prompt_cache_usd\":0,"
    "\"batch_usd\":0}}\n"
    "not json at all\n"
    "\n"
    "{\"id\":\"r3\",\"tenant\":\"globex\",\"agent\":\"sales\",\"stage\":\"draft\","
    "\"status\":\"ok\",\"model\":\"gemini-2.5-pro\",\"source\":\"llm\","
    "\"usage\":{\"prompt_tokens\":5000,\"cached_tokens\":2000,\"output_tokens\":300,"
    "\"thought_tokens\":0},\"cost_usd\":0.02,\"baseline_cost_usd\":0.025,"
    "\"savings\":{\"cache_usd\":0,\"prune_usd\":0.005,\"route_usd\":0,\"prompt_cache_usd\":0,"
    "\"batch_usd\":0}}\n"
    "[1,2,3]\n"
    "{\"id\":\"r4\",\"tenant\":\"globex\",\"agent\":\"sales\",\"stage\":\"draft\","
    "\"status\":\"error\",\"model\":\"gemini-2.5-pro\",\"source\":\"llm\","
    "\"error\":{\"code\":\"UPSTREAM_UNAVAILABLE\",\"message\":\"retries ran out\"},"
    "\"usage\":{\"prompt_tokens\":0,\"cached_tokens\":0,\"output_tokens\":0,"
    "\"thought_tokens\":0},\"cost_usd\":0,\"baseline_cost_usd\":0}\n"
    "{\"id\":\"no-status\",\"tenant\":\"acme\"}\n"
    "{\"id\":\"r5\",\"tenant\":\"hooli\",\"status\":\"ok\",\"model\":\"gemini-2.5-flash\","
    "\"source\":\"llm\",\"usage\":{\"prompt_tokens\":400,\"cached_tokens\":0,"
    "\"output_tokens\":50,\"thought_tokens\":0},\"cost_usd\":0.002,\"baseline_cost_usd\":0.004,"
    "\"savings\":{\"cache_usd\":0,\"prune_usd\":0,\"route_usd\":0,\"prompt_cache_usd\":0,"
    "\"batch_usd\":0.002}}\n"
    "{\"id\":\"r6\",\"tenant\":\"hooli\",\"status\":\"error\","
    "\"error\":{\"code\":\"INVALID_REQUEST\",\"message\":\"messages missing\"}}\n"
    "{\"id\":\"truncated\",\"status\":\"ok\",\"cost_u"; /* no newline at the end either */

#define EPS 1e-9

static void test_tables(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX];
    path_in_dir(path, sizeof path, "results.jsonl");
    write_file(path, fixture);
    char *t = run_report(path, NULL);

    long long results, ok, errors, malformed;
    const char *sum = strstr(t, "results: ");
    assert_non_null(sum);
    assert_int_equal(sscanf(sum, "results: %lld (ok %lld, errors %lld); malformed lines: %lld",
                            &results, &ok, &errors, &malformed),
                     4);
    assert_int_equal(results, 6);
    assert_int_equal(ok, 4);
    assert_int_equal(errors, 2);
    assert_int_equal(malformed, 4); /* not json, [1,2,3], no status, truncated; blank skipped */

    /* columns: 0 name, 1 requests, 2 ok, 3 errors, 4 prompt, 5 cached, 6 output, 7 cost,
     * 8 baseline, 9 saved, 10 saved % */
    assert_int_equal(cell_num(t, "## per tenant", "acme", 1), 2);
    assert_float_equal(cell_num(t, "## per tenant", "acme", 7), 0.001, EPS);
    assert_float_equal(cell_num(t, "## per tenant", "acme", 8), 0.020, EPS);
    assert_float_equal(cell_num(t, "## per tenant", "acme", 9), 0.019, EPS);
    assert_float_equal(cell_num(t, "## per tenant", "acme", 10), 95.0, 0.05);
    assert_int_equal(cell_num(t, "## per tenant", "acme", 6), 120); /* output + thought */
    assert_int_equal(cell_num(t, "## per tenant", "globex", 3), 1);
    assert_int_equal(cell_num(t, "## per tenant", "globex", 5), 2000);
    assert_int_equal(cell_num(t, "## per tenant", "hooli", 1), 2);
    assert_int_equal(cell_num(t, "## per tenant", "total", 1), 6);
    assert_int_equal(cell_num(t, "## per tenant", "total", 4), 6400);
    assert_float_equal(cell_num(t, "## per tenant", "total", 7), 0.023, EPS);
    assert_float_equal(cell_num(t, "## per tenant", "total", 8), 0.049, EPS);

    assert_int_equal(cell_num(t, "## per agent/stage", "support-bot/answer", 1), 2);
    assert_int_equal(cell_num(t, "## per agent/stage", "sales/draft", 1), 2);
    assert_int_equal(cell_num(t, "## per agent/stage", "(none)", 1), 2);
    assert_int_equal(cell_num(t, "## per model", "gemini-2.5-flash", 1), 3);
    assert_float_equal(cell_num(t, "## per model", "gemini-2.5-pro", 7), 0.02, EPS);
    assert_int_equal(cell_num(t, "## per model", "(none)", 1), 1);
    assert_int_equal(cell_num(t, "## per source", "llm", 1), 4);
    assert_int_equal(cell_num(t, "## per source", "cache-exact", 1), 1);

    /* technique: 0 name, 1 saved $, 2 % of baseline, 3 requests */
    assert_float_equal(cell_num(t, "## per technique", "cache", 1), 0.010, EPS);
    assert_int_equal(cell_num(t, "## per technique", "cache", 3), 1);
    assert_float_equal(cell_num(t, "## per technique", "route", 1), 0.009, EPS);
    assert_float_equal(cell_num(t, "## per technique", "prune", 2), 100.0 * 0.005 / 0.049, 0.05);
    assert_float_equal(cell_num(t, "## per technique", "batch", 1), 0.002, EPS);
    assert_int_equal(cell_num(t, "## per technique", "prompt cache", 3), 0);
    assert_float_equal(cell_num(t, "## per technique", "all techniques", 1), 0.026, EPS);
    assert_float_equal(cell_num(t, "## per technique", "baseline - cost", 1), 0.026, EPS);

    assert_int_equal(cell_num(t, "## errors by code", "UPSTREAM_UNAVAILABLE", 1), 1);
    assert_int_equal(cell_num(t, "## errors by code", "INVALID_REQUEST", 1), 1);
    free(t);
}

static void test_svg(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX], svgp[TEST_PATH_MAX];
    path_in_dir(path, sizeof path, "results.jsonl");
    path_in_dir(svgp, sizeof svgp, "chart.svg");
    write_file(path, fixture);
    free(run_report(path, svgp));
    char *svg = read_file(svgp);

    assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\""));
    assert_true(xml_balanced(svg));
    /* the origin and one point per result (6 results: no downsampling) */
    assert_int_equal(points_of(svg, "cost"), 7);
    assert_int_equal(points_of(svg, "baseline"), 7);
    assert_int_equal(points_of(svg, "saved"), 14);
    assert_non_null(strstr(svg, "id=\"legend\""));
    assert_non_null(strstr(svg, "id=\"axis-x\""));
    assert_non_null(strstr(svg, "id=\"axis-y\""));
    /* bars: cache (0.010) is the longest, prompt cache is empty, route is 0.9 of cache */
    double cache = attr_of(svg, "bar-cache", "width");
    assert_true(cache > 100);
    assert_float_equal(attr_of(svg, "bar-prompt-cache", "width"), 0, EPS);
    assert_float_equal(attr_of(svg, "bar-route", "width") / cache, 0.9, 0.01);
    assert_non_null(strstr(svg, "$0.010000 (20.4%, 1 requests)"));

    /* the checker itself catches a broken document */
    assert_false(xml_balanced("<svg><g></svg></g>"));
    assert_false(xml_balanced("<svg><rect x=\"1/></svg>"));
    assert_true(xml_balanced("<?xml?><svg><g a=\"x>y\"/><text>t</text></svg>"));
    free(svg);
}

/* Many results: the curve stays within its bound and still ends at the totals; a time axis
 * appears when every result carries ts_ms. */
static void test_downsample(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX], svgp[TEST_PATH_MAX];
    path_in_dir(path, sizeof path, "many.jsonl");
    path_in_dir(svgp, sizeof svgp, "many.svg");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    const int n = 20001;
    for (int i = 0; i < n; i++)
        fprintf(f,
                "{\"id\":\"m%d\",\"tenant\":\"t%d\",\"status\":\"ok\",\"ts_ms\":%d,"
                "\"cost_usd\":0.001,\"baseline_cost_usd\":0.003,"
                "\"savings\":{\"route_usd\":0.002}}\n",
                i, i % 100, 1700000000 + 10 * i);
    fclose(f);
    char *t = run_report(path, svgp);
    /* 100 tenants: 64 named rows, the rest in "(other)" */
    assert_int_equal(cell_num(t, "## per tenant", "t0", 1), 201);
    assert_int_equal(cell_num(t, "## per tenant", "(other)", 1), 36 * 200);
    assert_float_equal(cell_num(t, "## per tenant", "total", 8), 0.003 * n, 1e-6);
    assert_float_equal(cell_num(t, "## per technique", "route", 1), 0.002 * n, 1e-6);
    assert_int_equal(cell_num(t, "## per technique", "route", 3), n);
    free(t);

    char *svg = read_file(svgp);
    assert_true(xml_balanced(svg));
    int pts = points_of(svg, "cost");
    assert_true(pts > SC_REPORT_CURVE_MAX / 4);
    assert_true(pts <= SC_REPORT_CURVE_MAX + 2);
    assert_non_null(strstr(svg, "seconds since the first result"));
    free(svg);
}

static void test_long_line_and_errors(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX], err[256] = "";
    path_in_dir(path, sizeof path, "long.jsonl");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"id\":\"big\",\"status\":\"ok\",\"text\":\"", f);
    for (long i = 0; i < SC_REPORT_LINE_MAX / 64 + 10; i++)
        fputs("0123456789012345678901234567890123456789012345678901234567890123", f);
    fputs("\",\"cost_usd\":1}\n", f);
    fputs("{\"id\":\"small\",\"tenant\":\"a\",\"status\":\"ok\",\"cost_usd\":0.5,"
          "\"baseline_cost_usd\":1}\n",
          f);
    fclose(f);
    char *t = run_report(path, NULL);
    assert_non_null(strstr(t, "results: 1 (ok 1, errors 0); malformed lines: 1"));
    assert_float_equal(cell_num(t, "## per tenant", "total", 7), 0.5, EPS);
    assert_int_equal(cell_num(t, "## errors by code", "(none)", 1), 0);
    free(t);

    path_in_dir(path, sizeof path, "missing.jsonl");
    assert_int_equal(sc_report_run(path, NULL, stdout, err, sizeof err), SC_ERR_IO);
    assert_non_null(strstr(err, "missing.jsonl"));
}

/* ---- shadow evaluation ---- */

/* The y of the last "x,y" pair in the points attribute of the element with this id. */
static double last_y_of(const char *svg, const char *id)
{
    char key[64];
    snprintf(key, sizeof key, "id=\"%s\"", id);
    const char *e = strstr(svg, key);
    assert_non_null(e);
    const char *p = strstr(e, "points=\""), *end = p ? strchr(p + 8, '"') : NULL;
    assert_non_null(end);
    const char *comma = NULL;
    for (const char *q = p + 8; q < end; q++)
        if (*q == ',')
            comma = q;
    assert_non_null(comma);
    return strtod(comma + 1, NULL);
}

/* Three results and two shadow lines in one file (shadow cost: 0.004 + 0.001). */
static const char *shadow_fixture =
    "{\"id\":\"r1\",\"tenant\":\"acme\",\"agent\":\"faq\",\"stage\":\"answer\",\"status\":\"ok\","
    "\"model\":\"gemini-2.5-flash-lite\",\"source\":\"llm\",\"usage\":{\"prompt_tokens\":1000,"
    "\"cached_tokens\":0,\"output_tokens\":100,\"thought_tokens\":0},\"cost_usd\":0.001,"
    "\"baseline_cost_usd\":0.010,\"savings\":{\"cache_usd\":0,\"prune_usd\":0,\"route_usd\":0.009,"
    "\"prompt_cache_usd\":0,\"batch_usd\":0}}\n"
    "{\"kind\":\"shadow\",\"id\":\"r1\",\"tenant\":\"acme\",\"agent\":\"faq\",\"stage\":\"answer\","
    "\"tier\":\"lite\",\"model\":\"gemini-2.5-pro\",\"answered_by\":\"gemini-2.5-pro\","
    "\"compare\":\"final-answer\",\"outcome\":\"agree\",\"usage\":{\"prompt_tokens\":812,"
    "\"cached_tokens\":0,\"output_tokens\":96,\"thought_tokens\":0},\"judge_model\":null,"
    "\"judge_usage\":null,\"cost_usd\":0.004,\"baseline_cost_usd\":0,"
    "\"savings\":{\"shadow_usd\":-0.004}}\n"
    "{\"id\":\"r2\",\"tenant\":\"acme\",\"agent\":\"faq\",\"stage\":\"answer\",\"status\":\"ok\","
    "\"model\":\"gemini-2.5-flash-lite\",\"source\":\"cache-exact\",\"cost_usd\":0,"
    "\"baseline_cost_usd\":0.010,\"savings\":{\"cache_usd\":0.010}}\n"
    "{\"id\":\"r3\",\"tenant\":\"globex\",\"status\":\"ok\",\"model\":\"gemini-2.5-pro\","
    "\"source\":\"llm\",\"usage\":{\"prompt_tokens\":5000,\"cached_tokens\":0,"
    "\"output_tokens\":300,\"thought_tokens\":0},\"cost_usd\":0.02,\"baseline_cost_usd\":0.025,"
    "\"savings\":{\"prune_usd\":0.005}}\n"
    "{\"kind\":\"shadow\",\"id\":\"r3\",\"tenant\":\"globex\",\"agent\":null,\"stage\":null,"
    "\"tier\":\"flash\",\"model\":\"gemini-2.5-pro\",\"answered_by\":\"gemini-2.5-pro\","
    "\"compare\":\"judge\",\"outcome\":\"disagree\",\"usage\":{\"prompt_tokens\":400,"
    "\"cached_tokens\":0,\"output_tokens\":30,\"thought_tokens\":0},"
    "\"judge_model\":\"gemini-2.5-flash\",\"judge_usage\":{\"prompt_tokens\":600,"
    "\"cached_tokens\":0,\"output_tokens\":5,\"thought_tokens\":0},\"cost_usd\":0.001,"
    "\"baseline_cost_usd\":0,\"savings\":{\"shadow_usd\":-0.001}}\n";

static void test_shadow(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX], svgp[TEST_PATH_MAX];
    path_in_dir(path, sizeof path, "shadow.jsonl");
    path_in_dir(svgp, sizeof svgp, "shadow.svg");
    write_file(path, shadow_fixture);
    char *t = run_report(path, svgp);

    /* no request, and no malformed line, comes from a shadow line */
    assert_non_null(strstr(t, "results: 3 (ok 3, errors 0); malformed lines: 0\n"));
    assert_non_null(strstr(t, "cost: $0.026000; baseline: $0.045000; saved: $0.019000 (42.2%)"));
    /* columns: 0 name, 1 requests, 2 ok, 3 errors, 4 prompt, 5 cached, 6 output, 7 cost,
     * 8 baseline, 9 saved */
    assert_int_equal(cell_num(t, "## per tenant", "total", 1), 3);
    assert_int_equal(cell_num(t, "## per tenant", "total", 4), 6000); /* results' tokens only */
    assert_float_equal(cell_num(t, "## per tenant", "total", 7), 0.026, EPS);
    assert_float_equal(cell_num(t, "## per tenant", "total", 8), 0.045, EPS);
    assert_int_equal(cell_num(t, "## per tenant", "acme", 1), 2);
    assert_float_equal(cell_num(t, "## per tenant", "acme", 7), 0.005, EPS);
    assert_float_equal(cell_num(t, "## per tenant", "globex", 7), 0.021, EPS);
    assert_float_equal(cell_num(t, "## per agent/stage", "faq/answer", 7), 0.005, EPS);
    assert_float_equal(cell_num(t, "## per agent/stage", "(none)", 7), 0.021, EPS);
    assert_int_equal(cell_num(t, "## per agent/stage", "total", 1), 3);
    /* per model: the shadow call's model, not the tier it stands in for */
    assert_int_equal(cell_num(t, "## per model", "gemini-2.5-pro", 1), 1);
    assert_float_equal(cell_num(t, "## per model", "gemini-2.5-pro", 7), 0.025, EPS);
    assert_float_equal(cell_num(t, "## per model", "gemini-2.5-flash-lite", 7), 0.001, EPS);
    assert_float_equal(cell_num(t, "## per model", "total", 7), 0.026, EPS);
    assert_int_equal(cell_num(t, "## per source", "shadow", 1), 0);
    assert_float_equal(cell_num(t, "## per source", "shadow", 7), 0.005, EPS);
    assert_float_equal(cell_num(t, "## per source", "shadow", 8), 0, EPS);
    assert_float_equal(cell_num(t, "## per source", "llm", 7), 0.021, EPS);
    assert_float_equal(cell_num(t, "## per source", "total", 7), 0.026, EPS);

    /* technique rows, shadow included, add up to baseline - cost */
    static const char *const techs[] = {"cache",        "prune", "route",
                                        "prompt cache", "batch", "shadow"};
    double sum = 0;
    for (size_t i = 0; i < sizeof techs / sizeof techs[0]; i++)
        sum += cell_num(t, "## per technique", techs[i], 1);
    assert_float_equal(cell_num(t, "## per technique", "shadow", 1), -0.005, EPS);
    assert_int_equal(cell_num(t, "## per technique", "shadow", 3), 2);
    assert_float_equal(sum, 0.045 - 0.026, EPS);
    assert_float_equal(cell_num(t, "## per technique", "all techniques", 1), 0.019, EPS);
    assert_float_equal(cell_num(t, "## per technique", "baseline - cost", 1), 0.019, EPS);

    /* the section: calls, outcomes, cost and share, k/n per scope */
    const char *sec = strstr(t, "\n## shadow evaluation\n");
    assert_non_null(sec);
    assert_non_null(
        strstr(sec, "shadow calls: 2 (agree 1, disagree 1, no_evidence 0, failed 0)\n"));
    assert_non_null(strstr(sec, "shadow cost: $0.005000 (19.2% of the total cost $0.026000)\n"));
    char cells[TEST_CELLS][64];
    /* columns: 0 scope, 1 calls, 2 agree, 3 disagree, 4 no_evidence, 5 failed, 6 k/n, 7 agree %,
     * 8 cost */
    assert_int_equal(row_cells(t, "## shadow evaluation", "acme/faq/answer/lite", cells), 9);
    assert_string_equal(cells[6], "1/1");
    assert_string_equal(cells[7], "100.0%");
    assert_float_equal(strtod(cells[8], NULL), 0.004, EPS);
    assert_int_equal(row_cells(t, "## shadow evaluation", "globex/-/-/flash", cells), 9);
    assert_string_equal(cells[1], "1");
    assert_string_equal(cells[3], "1");
    assert_string_equal(cells[6], "0/1");
    free(t);

    /* the chart: the cost curve ends at the total with shadow cost, the shadow bar is a cost */
    char *svg = read_file(svgp);
    assert_true(xml_balanced(svg));
    assert_int_equal(points_of(svg, "cost"), 4); /* the origin and the three results */
    assert_non_null(strstr(svg, "cost: $0.0260"));
    /* y axis up to $0.05 over 242 px: 0.026 sits at 320 - 242 * 0.52 */
    assert_float_equal(last_y_of(svg, "cost"), 320.0 - 242.0 * 0.026 / 0.05, 0.06);
    assert_float_equal(attr_of(svg, "bar-shadow", "width") / attr_of(svg, "bar-cache", "width"),
                       0.5, 0.01);
    assert_non_null(strstr(svg, "$-0.005000 (-11.1%, 2 shadow calls)"));
    free(svg);

    /* without shadow lines nothing of it shows, in the text or the chart */
    path_in_dir(path, sizeof path, "results.jsonl");
    write_file(path, fixture);
    t = run_report(path, svgp);
    assert_null(strstr(t, "shadow"));
    free(t);
    svg = read_file(svgp);
    assert_null(strstr(svg, "shadow"));
    free(svg);
}

/* Results and shadow lines in separate files give the report of the two in one; k/n leaves out
 * the comparisons that gave no evidence. */
static void test_shadow_files(void **state)
{
    (void)state;
    char results[TEST_PATH_MAX], shadows[TEST_PATH_MAX], both[TEST_PATH_MAX], err[256] = "";
    path_in_dir(results, sizeof results, "split-results.jsonl");
    path_in_dir(shadows, sizeof shadows, "split-shadow.jsonl");
    path_in_dir(both, sizeof both, "split-both.jsonl");
    static const char *res =
        "{\"id\":\"a\",\"tenant\":\"acme\",\"agent\":\"faq\",\"stage\":\"answer\","
        "\"status\":\"ok\",\"model\":\"gemini-2.5-flash-lite\",\"source\":\"llm\","
        "\"cost_usd\":0.001,\"baseline_cost_usd\":0.008,\"savings\":{\"route_usd\":0.007}}\n"
        "{\"id\":\"b\",\"tenant\":\"acme\",\"agent\":\"faq\",\"stage\":\"answer\","
        "\"status\":\"error\",\"error\":{\"code\":\"DEADLINE\"}}\n";
    static const char *sh =
        "{\"kind\":\"shadow\",\"tenant\":\"acme\",\"agent\":\"faq\",\"stage\":\"answer\","
        "\"tier\":\"lite\",\"model\":\"gemini-2.5-pro\",\"outcome\":\"agree\",\"cost_usd\":0.002}\n"
        "{\"kind\":\"shadow\",\"tenant\":\"acme\",\"agent\":\"faq\",\"stage\":\"answer\","
        "\"tier\":\"lite\",\"model\":\"gemini-2.5-pro\",\"outcome\":\"agree\",\"cost_usd\":0.002}\n"
        "{\"kind\":\"shadow\",\"tenant\":\"acme\",\"agent\":\"faq\",\"stage\":\"answer\","
        "\"tier\":\"lite\",\"model\":\"gemini-2.5-pro\",\"outcome\":\"disagree\","
        "\"cost_usd\":0.002}\n"
        "{\"kind\":\"shadow\",\"tenant\":\"acme\",\"agent\":\"faq\",\"stage\":\"answer\","
        "\"tier\":\"lite\",\"model\":\"gemini-2.5-pro\",\"outcome\":\"no_evidence\","
        "\"judge_model\":\"gemini-2.5-flash\",\"cost_usd\":0.003}\n"
        "{\"kind\":\"shadow\",\"tenant\":\"acme\",\"agent\":\"faq\",\"stage\":\"answer\","
        "\"tier\":\"lite\",\"model\":\"gemini-2.5-pro\",\"outcome\":\"failed\",\"cost_usd\":0}\n";
    write_file(results, res);
    write_file(shadows, sh);
    char *joined = malloc(strlen(res) + strlen(sh) + 1);
    assert_non_null(joined);
    memcpy(joined, res, strlen(res));
    memcpy(joined + strlen(res), sh, strlen(sh) + 1);
    write_file(both, joined);
    free(joined);

    const char *paths[] = {results, shadows};
    FILE *out = tmpfile();
    assert_non_null(out);
    assert_int_equal(sc_report_run_files(paths, 2, NULL, out, err, sizeof err), SC_OK);
    long n = ftell(out);
    char *split = malloc((size_t)n + 1);
    assert_non_null(split);
    rewind(out);
    assert_int_equal(fread(split, 1, (size_t)n, out), (size_t)n);
    split[n] = '\0';
    fclose(out);
    char *one = run_report(both, NULL);
    /* the same report but for the title line */
    assert_string_equal(strchr(split, '\n'), strchr(one, '\n'));
    assert_non_null(strstr(split, results));
    assert_non_null(strstr(split, shadows));

    assert_non_null(strstr(one, "results: 2 (ok 1, errors 1); malformed lines: 0\n"));
    assert_float_equal(cell_num(one, "## per tenant", "acme", 7), 0.01, EPS);
    assert_int_equal(cell_num(one, "## per tenant", "acme", 1), 2);
    assert_float_equal(cell_num(one, "## per technique", "shadow", 1), -0.009, EPS);
    assert_int_equal(cell_num(one, "## per technique", "shadow", 3), 5);
    assert_float_equal(cell_num(one, "## per technique", "all techniques", 1), -0.002, EPS);
    assert_float_equal(cell_num(one, "## per technique", "baseline - cost", 1), -0.002, EPS);
    assert_non_null(
        strstr(one, "shadow calls: 5 (agree 2, disagree 1, no_evidence 1, failed 1)\n"));
    assert_non_null(strstr(one, "shadow cost: $0.009000 (90.0% of the total cost $0.010000)\n"));
    char cells[TEST_CELLS][64];
    assert_int_equal(row_cells(one, "## shadow evaluation", "acme/faq/answer/lite", cells), 9);
    assert_string_equal(cells[1], "5");
    assert_string_equal(cells[4], "1");
    assert_string_equal(cells[5], "1");
    assert_string_equal(cells[6], "2/3");
    assert_string_equal(cells[7], "66.7%");
    free(one);
    free(split);

    /* a missing second file stops it before anything is printed; "-" twice and no file are refused
     */
    char missing[TEST_PATH_MAX];
    path_in_dir(missing, sizeof missing, "split-missing.jsonl");
    const char *bad[] = {results, missing};
    out = tmpfile();
    assert_non_null(out);
    assert_int_equal(sc_report_run_files(bad, 2, NULL, out, err, sizeof err), SC_ERR_IO);
    assert_non_null(strstr(err, "split-missing.jsonl"));
    assert_int_equal(ftell(out), 0);
    fclose(out);
    const char *twice[] = {"-", "-"};
    assert_int_equal(sc_report_run_files(twice, 2, NULL, stdout, err, sizeof err),
                     SC_ERR_INVALID_ARG);
    assert_int_equal(sc_report_run_files(paths, 0, NULL, stdout, err, sizeof err),
                     SC_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),     cmocka_unit_test(test_svg),
        cmocka_unit_test(test_downsample), cmocka_unit_test(test_long_line_and_errors),
        cmocka_unit_test(test_shadow),     cmocka_unit_test(test_shadow_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
