/* test_report.c - `scrimp report`: the tables add up a results file with known numbers (read back
 * from the printed markdown), malformed and over-long lines are counted, the SVG is balanced and
 * carries both series and the technique bars, and the curve stays bounded on long inputs. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_svg),
        cmocka_unit_test(test_downsample),
        cmocka_unit_test(test_long_line_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
