/* report.c - `scrimp report`: streams results JSONL once and prints what was spent and saved per
 * tenant, agent/stage, model, source, technique and error code, and what shadow evaluation cost
 * and found; optionally draws an SVG chart. */
#include "pipelines/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "host/core/util.h"

#define REPORT_NAME_MAX     96   /* a row name longer than this is cut */
#define REPORT_CHUNK        4096 /* fgets step of the line reader */
#define REPORT_NTECH        5
#define REPORT_DECIMALS_MAX 8 /* tick labels never get more decimals than this */
/* The technique row after the REPORT_NTECH a result's "savings" carries: shadow evaluation's
 * cost, as a negative amount. */
#define REPORT_SHADOW REPORT_NTECH

/* ---- groups: one row of a table ---- */

typedef struct {
    char name[REPORT_NAME_MAX];
    long long requests, ok, errors, prompt, cached, output;
    double cost, baseline;
} group_t;

/* A table of at most SC_REPORT_MAX_GROUPS named rows plus one "(other)" row for the rest. */
typedef struct {
    const char *title, *key;
    group_t rows[SC_REPORT_MAX_GROUPS + 1];
    size_t n;
} table_t;

static const char *tech_keys[REPORT_NTECH] = {"cache_usd", "prune_usd", "route_usd",
                                              "prompt_cache_usd", "batch_usd"};
static const char *tech_names[REPORT_NTECH + 1] = {"cache",        "prune", "route",
                                                   "prompt cache", "batch", "shadow"};
static const char *tech_ids[REPORT_NTECH + 1] = {"cache",        "prune", "route",
                                                 "prompt-cache", "batch", "shadow"};
static const char *tech_colors[REPORT_NTECH + 1] = {"#4e79a7", "#f28e2b", "#59a14f",
                                                    "#b07aa1", "#9c755f", "#e15759"};

/* What a shadow line's "outcome" says; anything else is counted as SHADOW_OTHER. */
typedef enum {
    SHADOW_AGREE = 0,
    SHADOW_DISAGREE,
    SHADOW_NO_EVIDENCE,
    SHADOW_FAILED,
    SHADOW_OTHER,
    SHADOW_NOUTCOMES,
} shadow_outcome_t;

static const char *shadow_outcomes[SHADOW_OTHER] = {"agree", "disagree", "no_evidence", "failed"};

static group_t *table_row(table_t *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->rows[i].name, name) == 0)
            return &t->rows[i];
    if (t->n > SC_REPORT_MAX_GROUPS) /* full: everything new shares the "(other)" row */
        return &t->rows[SC_REPORT_MAX_GROUPS];
    if (t->n == SC_REPORT_MAX_GROUPS)
        name = "(other)";
    group_t *g = &t->rows[t->n++];
    memset(g, 0, sizeof *g);
    sc_strlcpy(g->name, name, sizeof g->name);
    return g;
}

/* ---- shadow scopes: one row per (tenant, agent, stage, tier) ---- */

typedef struct {
    char name[REPORT_NAME_MAX]; /* tenant/agent/stage/tier */
    long long outcomes[SHADOW_NOUTCOMES];
    long long calls;
    double cost;
} scope_t;

/* The shadow lines: totals, and at most SC_REPORT_MAX_GROUPS scopes plus one "(other)". */
typedef struct {
    long long calls;
    long long outcomes[SHADOW_NOUTCOMES];
    double cost;
    scope_t rows[SC_REPORT_MAX_GROUPS + 1];
    size_t n;
} shadow_t;

static scope_t *scope_row(shadow_t *sh, const char *name)
{
    for (size_t i = 0; i < sh->n; i++)
        if (strcmp(sh->rows[i].name, name) == 0)
            return &sh->rows[i];
    if (sh->n > SC_REPORT_MAX_GROUPS) /* full: everything new shares the "(other)" row */
        return &sh->rows[SC_REPORT_MAX_GROUPS];
    if (sh->n == SC_REPORT_MAX_GROUPS)
        name = "(other)";
    scope_t *g = &sh->rows[sh->n++];
    memset(g, 0, sizeof *g);
    sc_strlcpy(g->name, name, sizeof g->name);
    return g;
}

/* ---- the accumulated report ---- */

typedef struct {
    double x_index, x_time, cost, baseline;
} point_t;

typedef struct {
    long long results, malformed;
    group_t total;
    table_t tenants, agents, models, sources, errors;
    double tech_usd[REPORT_NTECH + 1]; /* [REPORT_SHADOW]: minus what shadow lines cost */
    long long tech_requests[REPORT_NTECH + 1];
    shadow_t shadow;
    /* cost curve: every stride-th result, halved when full (bounded memory) */
    point_t curve[SC_REPORT_CURVE_MAX];
    size_t npoints;
    long long stride;
    point_t last;
    int all_timed; /* every result so far carried a numeric ts_ms */
    double first_ts;
} report_t;

static void group_add(group_t *g, json_t *r, int ok)
{
    json_t *u = json_object_get(r, "usage"); /* borrowed, as are all gets below */
    g->requests++;
    if (ok)
        g->ok++;
    else
        g->errors++;
    g->prompt += json_integer_value(json_object_get(u, "prompt_tokens"));
    g->cached += json_integer_value(json_object_get(u, "cached_tokens"));
    g->output += json_integer_value(json_object_get(u, "output_tokens"));
    g->output += json_integer_value(json_object_get(u, "thought_tokens"));
    g->cost += json_number_value(json_object_get(r, "cost_usd"));
    g->baseline += json_number_value(json_object_get(r, "baseline_cost_usd"));
}

static const char *str_or(json_t *r, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(r, key));
    return s && s[0] ? s : dflt;
}

/* The agent/stage row name of r: "agent/stage" with "-" for a missing half, "(none)" for both. */
static void agent_stage_name(json_t *r, char *name, size_t len)
{
    const char *agent = str_or(r, "agent", NULL), *stage = str_or(r, "stage", NULL);
    if (agent || stage)
        snprintf(name, len, "%s/%s", agent ? agent : "-", stage ? stage : "-");
    else
        sc_strlcpy(name, "(none)", len);
}

/* A cost that no request stands for (a shadow call): the money columns only. */
static void group_add_cost(group_t *g, double cost)
{
    g->cost += cost;
}

/* Technique rows the report shows: the shadow row only when shadow lines came. */
static int report_ntech(const report_t *rep)
{
    return rep->shadow.calls > 0 ? REPORT_NTECH + 1 : REPORT_NTECH;
}

static void curve_add(report_t *rep)
{
    long long i = rep->results;
    if (i % rep->stride != 0)
        return;
    if (rep->npoints == SC_REPORT_CURVE_MAX) { /* keep every second point, double the stride */
        for (size_t k = 0; k < SC_REPORT_CURVE_MAX / 2; k++)
            rep->curve[k] = rep->curve[2 * k + 1];
        rep->npoints = SC_REPORT_CURVE_MAX / 2;
        rep->stride *= 2;
        if (i % rep->stride != 0)
            return;
    }
    rep->curve[rep->npoints++] = rep->last;
}

static void report_add(report_t *rep, json_t *r)
{
    int ok = strcmp(json_string_value(json_object_get(r, "status")), "ok") == 0;
    char name[REPORT_NAME_MAX];

    rep->results++;
    group_add(&rep->total, r, ok);
    group_add(table_row(&rep->tenants, str_or(r, "tenant", "(none)")), r, ok);
    agent_stage_name(r, name, sizeof name);
    group_add(table_row(&rep->agents, name), r, ok);
    group_add(table_row(&rep->models, str_or(r, "model", "(none)")), r, ok);
    group_add(table_row(&rep->sources, str_or(r, "source", "(none)")), r, ok);
    if (!ok) {
        json_t *e = json_object_get(r, "error");
        group_add(table_row(&rep->errors, str_or(e, "code", "(none)")), r, ok);
    }
    json_t *s = json_object_get(r, "savings");
    for (int k = 0; k < REPORT_NTECH; k++) {
        double v = json_number_value(json_object_get(s, tech_keys[k]));
        rep->tech_usd[k] += v;
        if (v > 0)
            rep->tech_requests[k]++;
    }

    json_t *ts = json_object_get(r, "ts_ms");
    if (!json_is_number(ts))
        rep->all_timed = 0;
    else if (rep->results == 1)
        rep->first_ts = json_number_value(ts);
    rep->last.x_index = (double)rep->results;
    rep->last.x_time = rep->all_timed ? (json_number_value(ts) - rep->first_ts) / 1000.0 : 0;
    rep->last.cost = rep->total.cost;
    rep->last.baseline = rep->total.baseline;
    curve_add(rep);
}

/* One shadow line (kind "shadow"): not a request, so no request, token or baseline counts; its
 * cost goes into every cost total (under its shadow model and the source "shadow"), into the
 * shadow technique row as a negative amount, and into the curve's running cost. */
static void report_add_shadow(report_t *rep, json_t *r)
{
    double cost = json_number_value(json_object_get(r, "cost_usd")); /* borrowed, as below */
    char name[REPORT_NAME_MAX], scope[REPORT_NAME_MAX];
    const char *outcome = str_or(r, "outcome", "");
    int o = SHADOW_OTHER;
    for (int i = 0; i < SHADOW_OTHER; i++)
        if (strcmp(outcome, shadow_outcomes[i]) == 0)
            o = i;

    group_add_cost(&rep->total, cost);
    const char *tenant = str_or(r, "tenant", "(none)");
    group_add_cost(table_row(&rep->tenants, tenant), cost);
    agent_stage_name(r, name, sizeof name);
    group_add_cost(table_row(&rep->agents, name), cost);
    group_add_cost(table_row(&rep->models, str_or(r, "model", "(none)")), cost);
    group_add_cost(table_row(&rep->sources, "shadow"), cost);
    rep->tech_usd[REPORT_SHADOW] -= cost;
    rep->tech_requests[REPORT_SHADOW]++;

    shadow_t *sh = &rep->shadow;
    sh->calls++;
    sh->outcomes[o]++;
    sh->cost += cost;
    snprintf(scope, sizeof scope, "%s/%s/%s/%s", tenant, str_or(r, "agent", "-"),
             str_or(r, "stage", "-"), str_or(r, "tier", "(none)"));
    scope_t *row = scope_row(sh, scope);
    row->calls++;
    row->outcomes[o]++;
    row->cost += cost;

    /* the curve has no point of its own for it: the next (or the last) point carries it */
    rep->last.cost = rep->total.cost;
    if (rep->npoints > 0 && rep->curve[rep->npoints - 1].x_index == rep->last.x_index)
        rep->curve[rep->npoints - 1].cost = rep->total.cost;
}

/* ---- input: bounded lines ---- */

/* Read one line into *buf (grown up to SC_REPORT_LINE_MAX + REPORT_CHUNK bytes). Returns 1 with
 * *len set, 0 at end of file; *too_long is set (and the rest of the line skipped) when the line
 * is longer than SC_REPORT_LINE_MAX. */
static int read_line(FILE *in, char **buf, size_t *cap, size_t *len, int *too_long, int *oom)
{
    *len = 0;
    *too_long = 0;
    for (;;) {
        if (*cap - *len < REPORT_CHUNK) {
            size_t ncap = *cap ? *cap * 2 : REPORT_CHUNK * 4;
            if (ncap > SC_REPORT_LINE_MAX + REPORT_CHUNK)
                ncap = SC_REPORT_LINE_MAX + REPORT_CHUNK;
            if (ncap <= *cap) { /* at the limit: drop what we have, skip to the newline */
                *too_long = 1;
                *len = 0;
            } else {
                char *nb = realloc(*buf, ncap);
                if (!nb) {
                    *oom = 1;
                    return 0;
                }
                *buf = nb;
                *cap = ncap;
            }
        }
        if (!fgets(*buf + *len, (int)(*cap - *len), in))
            break;
        *len += strlen(*buf + *len);
        if (*len > 0 && (*buf)[*len - 1] == '\n')
            break;
    }
    if (*len > SC_REPORT_LINE_MAX)
        *too_long = 1;
    return *len > 0 || *too_long;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

static int is_result(json_t *r)
{
    const char *st = json_string_value(json_object_get(r, "status"));
    return json_is_object(r) && st && (strcmp(st, "ok") == 0 || strcmp(st, "error") == 0);
}

/* A shadow evaluation's line (published on scrimp.shadow): {"kind": "shadow", ...}. */
static int is_shadow(json_t *r)
{
    const char *kind = json_string_value(json_object_get(r, "kind"));
    return json_is_object(r) && kind && strcmp(kind, "shadow") == 0;
}

/* ---- tables ---- */

static double pct(double part, double whole)
{
    return whole > 0 ? 100.0 * part / whole : 0.0;
}

static void print_group_header(FILE *out, const char *key)
{
    fprintf(out, "| %-28s | %8s | %6s | %6s | %11s | %10s | %11s | %12s | %12s | %12s | %7s |\n",
            key, "requests", "ok", "errors", "prompt tok", "cached tok", "output tok", "cost $",
            "baseline $", "saved $", "saved %");
    fprintf(out, "|------------------------------|----------|--------|--------|-------------|"
                 "------------|-------------|--------------|--------------|--------------|"
                 "---------|\n");
}

static void print_group(FILE *out, const group_t *g)
{
    double saved = g->baseline - g->cost;
    fprintf(out,
            "| %-28s | %8lld | %6lld | %6lld | %11lld | %10lld | %11lld | %12.6f | %12.6f | "
            "%12.6f | %6.1f%% |\n",
            g->name, g->requests, g->ok, g->errors, g->prompt, g->cached, g->output, g->cost,
            g->baseline, saved, pct(saved, g->baseline));
}

static void print_table(FILE *out, const table_t *t, const group_t *total)
{
    fprintf(out, "\n## %s\n\n", t->title);
    print_group_header(out, t->key);
    for (size_t i = 0; i < t->n; i++)
        print_group(out, &t->rows[i]);
    if (total)
        print_group(out, total);
}

static void print_techniques(FILE *out, const report_t *rep)
{
    double sum = 0, base = rep->total.baseline;
    fprintf(out, "\n## per technique\n\n");
    fprintf(out, "| %-28s | %12s | %13s | %8s |\n", "technique", "saved $", "% of baseline",
            "requests");
    fprintf(out, "|------------------------------|--------------|---------------|----------|\n");
    for (int k = 0; k < report_ntech(rep); k++) {
        sum += rep->tech_usd[k];
        fprintf(out, "| %-28s | %12.6f | %12.1f%% | %8lld |\n", tech_names[k], rep->tech_usd[k],
                pct(rep->tech_usd[k], base), rep->tech_requests[k]);
    }
    fprintf(out, "| %-28s | %12.6f | %12.1f%% | %8s |\n", "all techniques", sum, pct(sum, base),
            "");
    /* baseline - cost differs from the sum when a promotion or an error changed the bill */
    fprintf(out, "| %-28s | %12.6f | %12.1f%% | %8s |\n", "baseline - cost", base - rep->total.cost,
            pct(base - rep->total.cost, base), "");
}

static void print_errors(FILE *out, const report_t *rep)
{
    fprintf(out, "\n## errors by code\n\n");
    fprintf(out, "| %-28s | %8s |\n", "code", "count");
    fprintf(out, "|------------------------------|----------|\n");
    for (size_t i = 0; i < rep->errors.n; i++)
        fprintf(out, "| %-28s | %8lld |\n", rep->errors.rows[i].name, rep->errors.rows[i].requests);
    if (rep->errors.n == 0)
        fprintf(out, "| %-28s | %8d |\n", "(none)", 0);
}

/* Nothing at all when no shadow line came, so a report without shadow evaluation reads as before.
 * k/n per scope: agreeing comparisons over comparisons that gave evidence (agree + disagree). */
static void print_shadow(FILE *out, const report_t *rep)
{
    const shadow_t *sh = &rep->shadow;
    if (sh->calls == 0)
        return;
    fprintf(out, "\n## shadow evaluation\n\n");
    fprintf(out, "shadow calls: %lld (agree %lld, disagree %lld, no_evidence %lld, failed %lld",
            sh->calls, sh->outcomes[SHADOW_AGREE], sh->outcomes[SHADOW_DISAGREE],
            sh->outcomes[SHADOW_NO_EVIDENCE], sh->outcomes[SHADOW_FAILED]);
    if (sh->outcomes[SHADOW_OTHER] > 0)
        fprintf(out, ", other %lld", sh->outcomes[SHADOW_OTHER]);
    fprintf(out, ")\nshadow cost: $%.6f (%.1f%% of the total cost $%.6f)\n\n", sh->cost,
            pct(sh->cost, rep->total.cost), rep->total.cost);
    fprintf(out, "| %-36s | %6s | %6s | %8s | %11s | %6s | %11s | %7s | %12s |\n",
            "tenant/agent/stage/tier", "calls", "agree", "disagree", "no_evidence", "failed", "k/n",
            "agree %", "cost $");
    fprintf(out, "|--------------------------------------|--------|--------|----------|"
                 "-------------|--------|-------------|---------|--------------|\n");
    for (size_t i = 0; i < sh->n; i++) {
        const scope_t *g = &sh->rows[i];
        long long k = g->outcomes[SHADOW_AGREE], n = k + g->outcomes[SHADOW_DISAGREE];
        char kn[32];
        snprintf(kn, sizeof kn, "%lld/%lld", k, n);
        fprintf(out,
                "| %-36s | %6lld | %6lld | %8lld | %11lld | %6lld | %11s | %6.1f%% | %12.6f |\n",
                g->name, g->calls, k, g->outcomes[SHADOW_DISAGREE], g->outcomes[SHADOW_NO_EVIDENCE],
                g->outcomes[SHADOW_FAILED], kn, pct((double)k, (double)n), g->cost);
    }
}

static void print_report(FILE *out, const char *const *paths, size_t npaths, const report_t *rep)
{
    const group_t *t = &rep->total;
    double saved = t->baseline - t->cost;
    fprintf(out, "# scrimp report: ");
    for (size_t i = 0; i < npaths; i++)
        fprintf(out, "%s%s", i ? ", " : "", paths[i]);
    fprintf(out, "\n\n");
    fprintf(out, "results: %lld (ok %lld, errors %lld); malformed lines: %lld\n", rep->results,
            t->ok, t->errors, rep->malformed);
    fprintf(out, "cost: $%.6f; baseline: $%.6f; saved: $%.6f (%.1f%%)\n", t->cost, t->baseline,
            saved, pct(saved, t->baseline));
    print_table(out, &rep->tenants, t);
    print_table(out, &rep->agents, t);
    print_table(out, &rep->models, t);
    print_table(out, &rep->sources, t);
    print_techniques(out, rep);
    print_errors(out, rep);
    print_shadow(out, rep);
}

/* ---- SVG ---- */

#define SVG_W     900
#define SVG_H     600
#define SVG_TICKS 5 /* about this many ticks per axis */
#define SVG_FONT  "font-family=\"Helvetica,Arial,sans-serif\""
/* panel (a): the curve */
#define CURVE_X0 95.0
#define CURVE_X1 870.0
#define CURVE_Y0 78.0  /* top */
#define CURVE_Y1 320.0 /* bottom */
/* panel (b): the bars */
#define BARS_X0  190.0
#define BARS_X1  660.0
#define BARS_Y0  400.0
#define BARS_ROW 30.0
#define BARS_H   20.0

/* A round step (1, 2 or 5 times a power of ten) giving about SVG_TICKS ticks up to max. */
static double nice_step(double max, int integer)
{
    if (!(max > 0))
        max = 1;
    double raw = max / SVG_TICKS, mag = pow(10, floor(log10(raw))), r = raw / mag;
    double step = (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
    return integer && step < 1 ? 1 : step;
}

static int decimals_for(double step)
{
    int d = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    return d > REPORT_DECIMALS_MAX ? REPORT_DECIMALS_MAX : d;
}

static double curve_x(const report_t *rep, const point_t *p)
{
    return rep->all_timed ? p->x_time : p->x_index;
}

static void svg_curve(FILE *f, const report_t *rep)
{
    /* the points: origin, the kept samples, and the final totals */
    point_t origin = {0, 0, 0, 0};
    double xmax = curve_x(rep, &rep->last), ymax = rep->last.baseline;
    if (rep->last.cost > ymax)
        ymax = rep->last.cost;
    for (size_t i = 0; i < rep->npoints; i++) { /* a time axis need not be monotonic */
        if (curve_x(rep, &rep->curve[i]) > xmax)
            xmax = curve_x(rep, &rep->curve[i]);
    }
    double xstep = nice_step(xmax, !rep->all_timed), ystep = nice_step(ymax, 0);
    double xtop = ceil(xmax / xstep - 1e-9) * xstep, ytop = ceil(ymax / ystep - 1e-9) * ystep;
    if (xtop <= 0)
        xtop = xstep;
    if (ytop <= 0)
        ytop = ystep;
#define PX(v) (CURVE_X0 + (CURVE_X1 - CURVE_X0) * (v) / xtop)
#define PY(v) (CURVE_Y1 - (CURVE_Y1 - CURVE_Y0) * (v) / ytop)

    fprintf(f,
            "<text x=\"%d\" y=\"30\" font-size=\"15\" font-weight=\"bold\">"
            "(a) cumulative cost against cumulative baseline</text>\n",
            (int)CURVE_X0 - 60);
    /* grid and ticks */
    fprintf(f, "<g id=\"axis-y\" font-size=\"11\" text-anchor=\"end\">\n");
    int yd = decimals_for(ystep);
    for (double v = 0; v <= ytop + ystep / 2; v += ystep) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n",
                CURVE_X0, PY(v), CURVE_X1, PY(v));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">$%.*f</text>\n", CURVE_X0 - 6, PY(v) + 4, yd, v);
    }
    fprintf(f, "</g>\n<g id=\"axis-x\" font-size=\"11\" text-anchor=\"middle\">\n");
    int xd = decimals_for(xstep);
    for (double v = 0; v <= xtop + xstep / 2; v += xstep) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\"/>\n",
                PX(v), CURVE_Y1, PX(v), CURVE_Y1 + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%.*f</text>\n", PX(v), CURVE_Y1 + 18, xd, v);
    }
    fprintf(f, "</g>\n");
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\"/>\n",
            CURVE_X0, CURVE_Y1, CURVE_X1, CURVE_Y1);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\"/>\n",
            CURVE_X0, CURVE_Y0, CURVE_X0, CURVE_Y1);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n",
            (CURVE_X0 + CURVE_X1) / 2, CURVE_Y1 + 36,
            rep->all_timed ? "seconds since the first result" : "results, in order");
    fprintf(f,
            "<text x=\"20\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 20 %.1f)\">cumulative USD</text>\n",
            (CURVE_Y0 + CURVE_Y1) / 2, (CURVE_Y0 + CURVE_Y1) / 2);

    /* the saved area between the two curves, then the curves */
    const point_t *pts[SC_REPORT_CURVE_MAX + 2];
    size_t n = 0;
    pts[n++] = &origin;
    for (size_t i = 0; i < rep->npoints; i++)
        pts[n++] = &rep->curve[i];
    if (rep->results > 0 &&
        (rep->npoints == 0 || rep->curve[rep->npoints - 1].x_index < rep->last.x_index))
        pts[n++] = &rep->last;
    fprintf(f, "<polygon id=\"saved\" fill=\"#59a14f\" fill-opacity=\"0.18\" stroke=\"none\" "
               "points=\"");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%.1f,%.1f ", PX(curve_x(rep, pts[i])), PY(pts[i]->baseline));
    for (size_t i = n; i-- > 0;)
        fprintf(f, "%.1f,%.1f ", PX(curve_x(rep, pts[i])), PY(pts[i]->cost));
    fprintf(f, "\"/>\n");
    fprintf(f, "<polyline id=\"baseline\" fill=\"none\" stroke=\"#e15759\" stroke-width=\"2\" "
               "stroke-dasharray=\"6 3\" points=\"");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%.1f,%.1f ", PX(curve_x(rep, pts[i])), PY(pts[i]->baseline));
    fprintf(f, "\"/>\n<polyline id=\"cost\" fill=\"none\" stroke=\"#4e79a7\" "
               "stroke-width=\"2.5\" points=\"");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%.1f,%.1f ", PX(curve_x(rep, pts[i])), PY(pts[i]->cost));
    fprintf(f, "\"/>\n");
#undef PX
#undef PY

    /* legend: one row between the title and the plot, so it never hides the curves */
    double lx = CURVE_X0, ly = CURVE_Y0 - 22;
    double saved = rep->total.baseline - rep->total.cost;
    fprintf(f, "<g id=\"legend\" font-size=\"12\">\n");
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e15759\" "
            "stroke-width=\"2\" stroke-dasharray=\"6 3\"/>\n",
            lx, ly - 4, lx + 24, ly - 4);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">baseline (strong model, full context): $%.4f</text>\n",
            lx + 30, ly, rep->total.baseline);
    lx += 360;
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#4e79a7\" "
            "stroke-width=\"2.5\"/>\n",
            lx, ly - 4, lx + 24, ly - 4);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">cost: $%.4f</text>\n", lx + 30, ly, rep->total.cost);
    lx += 170;
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"24\" height=\"10\" fill=\"#59a14f\" "
            "fill-opacity=\"0.3\"/>\n",
            lx, ly - 9);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">saved: $%.4f (%.1f%%)</text>\n</g>\n", lx + 30, ly,
            saved, pct(saved, rep->total.baseline));
}

/* The shadow row, when there is one, is a cost: its bar has the length of what it cost, in its
 * own colour, and its label keeps the minus sign. The rows share the height five rows take. */
static void svg_bars(FILE *f, const report_t *rep)
{
    int ntech = report_ntech(rep);
    double max = 0, row = BARS_ROW * REPORT_NTECH / ntech, bar_h = BARS_H * REPORT_NTECH / ntech;
    for (int k = 0; k < ntech; k++) {
        double v = k == REPORT_SHADOW ? -rep->tech_usd[k] : rep->tech_usd[k];
        if (v > max)
            max = v;
    }
    double step = nice_step(max, 0), top = ceil(max / step - 1e-9) * step;
    if (top <= 0)
        top = step;
    double y1 = BARS_Y0 + ntech * row;
#define BX(v) (BARS_X0 + (BARS_X1 - BARS_X0) * (v) / top)

    fprintf(f,
            "<text x=\"%d\" y=\"%.1f\" font-size=\"15\" font-weight=\"bold\">"
            "(b) savings by technique (USD, share of baseline)</text>\n",
            (int)CURVE_X0 - 60, BARS_Y0 - 22);
    fprintf(f, "<g id=\"axis-bars\" font-size=\"11\" text-anchor=\"middle\">\n");
    int d = decimals_for(step);
    for (double v = 0; v <= top + step / 2; v += step) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n",
                BX(v), BARS_Y0 - 4, BX(v), y1);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">$%.*f</text>\n", BX(v), y1 + 16, d, v);
    }
    fprintf(f, "</g>\n");
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\"/>\n", BARS_X0,
            BARS_Y0 - 4, BARS_X0, y1);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n",
            (BARS_X0 + BARS_X1) / 2, y1 + 34,
            ntech > REPORT_NTECH ? "USD saved (shadow: USD spent)" : "USD saved");
    for (int k = 0; k < ntech; k++) {
        double y = BARS_Y0 + k * row, v = rep->tech_usd[k];
        double len = k == REPORT_SHADOW ? -v : v, w = len > 0 ? BX(len) - BARS_X0 : 0;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\">%s</text>\n",
                BARS_X0 - 8, y + bar_h - 5, tech_names[k]);
        fprintf(f,
                "<rect id=\"bar-%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                "fill=\"%s\"/>\n",
                tech_ids[k], BARS_X0, y, w, bar_h, tech_colors[k]);
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">$%.6f (%.1f%%, %lld %s)"
                "</text>\n",
                BARS_X0 + w + 6, y + bar_h - 5, v, pct(v, rep->total.baseline),
                rep->tech_requests[k], k == REPORT_SHADOW ? "shadow calls" : "requests");
    }
#undef BX
}

static sc_status_t write_svg(const char *path, const report_t *rep, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(errbuf, errlen, "%s: cannot create", path);
        return SC_ERR_IO;
    }
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" %s>\n",
            SVG_W, SVG_H, SVG_W, SVG_H, SVG_FONT);
    fprintf(f, "<title>scrimp report: cost against baseline, savings by technique</title>\n");
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", SVG_W, SVG_H);
    svg_curve(f, rep);
    svg_bars(f, rep);
    fprintf(f,
            "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#777\" text-anchor=\"end\">"
            "%lld results, %lld malformed lines</text>\n",
            SVG_W - 12, SVG_H - 10, rep->results, rep->malformed);
    fprintf(f, "</svg>\n");
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        snprintf(errbuf, errlen, "%s: write failed", path);
        return SC_ERR_IO;
    }
    return SC_OK;
}

/* ---- entry ---- */

/* Every line of one open input into rep. SC_ERR_NOMEM, or SC_ERR_IO on a read error. */
static sc_status_t report_read(report_t *rep, FILE *in, const char *path, char **line, size_t *cap,
                               char *errbuf, size_t errlen)
{
    size_t len;
    int too_long, oom = 0;
    while (read_line(in, line, cap, &len, &too_long, &oom)) {
        if (too_long) {
            rep->malformed++;
            continue;
        }
        if (blank(*line, len))
            continue;
        json_t *r = json_loadb(*line, len, 0, NULL); /* new reference */
        if (is_shadow(r))
            report_add_shadow(rep, r);
        else if (is_result(r))
            report_add(rep, r);
        else
            rep->malformed++;
        json_decref(r);
    }
    if (oom)
        return SC_ERR_NOMEM;
    if (ferror(in)) {
        snprintf(errbuf, errlen, "%s: read error", path);
        return SC_ERR_IO;
    }
    return SC_OK;
}

sc_status_t sc_report_run(const char *path, const char *svg_path, FILE *out, char *errbuf,
                          size_t errlen)
{
    return sc_report_run_files(&path, 1, svg_path, out, errbuf, errlen);
}

sc_status_t sc_report_run_files(const char *const *paths, size_t npaths, const char *svg_path,
                                FILE *out, char *errbuf, size_t errlen)
{
    sc_status_t st = SC_OK;
    char *line = NULL;
    size_t cap = 0;
    int stdin_used = 0;
    report_t *rep = NULL;
    if (!paths || npaths == 0 || npaths > SC_REPORT_FILES_MAX) {
        snprintf(errbuf, errlen, "between 1 and %d results files", SC_REPORT_FILES_MAX);
        return SC_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < npaths; i++) { /* refused before any input is read */
        if (strcmp(paths[i], "-") != 0)
            continue;
        if (stdin_used) {
            snprintf(errbuf, errlen, "-: standard input given twice");
            return SC_ERR_INVALID_ARG;
        }
        stdin_used = 1;
    }
    rep = calloc(1, sizeof *rep); /* about 80 KiB: the tables, the scopes and the curve, fixed */
    if (!rep) {
        st = SC_ERR_NOMEM;
        goto out;
    }
    sc_strlcpy(rep->total.name, "total", sizeof rep->total.name);
    rep->tenants = (table_t){.title = "per tenant", .key = "tenant"};
    rep->agents = (table_t){.title = "per agent/stage", .key = "agent/stage"};
    rep->models = (table_t){.title = "per model", .key = "model"};
    rep->sources = (table_t){.title = "per source", .key = "source"};
    rep->errors = (table_t){.title = "errors by code", .key = "code"};
    rep->stride = 1;
    rep->all_timed = 1;

    /* the files in order, as one stream: the curve runs on across them */
    for (size_t i = 0; i < npaths; i++) {
        const char *path = paths[i];
        FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
        if (!in) {
            snprintf(errbuf, errlen, "%s: cannot open", path);
            st = SC_ERR_IO;
            goto out;
        }
        st = report_read(rep, in, path, &line, &cap, errbuf, errlen);
        if (in != stdin)
            fclose(in);
        if (st != SC_OK)
            goto out;
    }
    if (rep->results == 0)
        rep->all_timed = 0;
    print_report(out, paths, npaths, rep);
    if (svg_path)
        st = write_svg(svg_path, rep, errbuf, errlen);
out:
    if (st == SC_ERR_NOMEM)
        snprintf(errbuf, errlen, "out of memory");
    free(rep);
    free(line);
    return st;
}
