/* report.c - `scrimp report`: reads results JSONL and prints what was spent and saved, in total
 * and per tenant. */
#include "pipelines/report.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "host/util.h"

#define REPORT_LINE_MAX (8 << 20)
#define REPORT_MAX_GROUPS 64
#define REPORT_NAME_MAX 64

typedef struct {
    char name[REPORT_NAME_MAX];
    long long requests, ok, errors, prompt, cached, output, thought;
    double cost, baseline;
    double save[5];
} group_t;

static const char *save_keys[5] = {"cache_usd", "prune_usd", "route_usd", "prompt_cache_usd",
                                   "batch_usd"};

static void add(group_t *g, json_t *r)
{
    g->requests++;
    const char *status = json_string_value(json_object_get(r, "status"));
    if (status && strcmp(status, "ok") == 0)
        g->ok++;
    else
        g->errors++;
    json_t *u = json_object_get(r, "usage"); /* borrowed */
    g->prompt += json_integer_value(json_object_get(u, "prompt_tokens"));
    g->cached += json_integer_value(json_object_get(u, "cached_tokens"));
    g->output += json_integer_value(json_object_get(u, "output_tokens"));
    g->thought += json_integer_value(json_object_get(u, "thought_tokens"));
    g->cost += json_number_value(json_object_get(r, "cost_usd"));
    g->baseline += json_number_value(json_object_get(r, "baseline_cost_usd"));
    json_t *s = json_object_get(r, "savings");
    for (int i = 0; i < 5; i++)
        g->save[i] += json_number_value(json_object_get(s, save_keys[i]));
}

static group_t *group_for(group_t *groups, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(groups[i].name, name) == 0)
            return &groups[i];
    if (*n == REPORT_MAX_GROUPS) /* bounded: the rest is one row */
        return group_for(groups, n, "(other)");
    group_t *g = &groups[(*n)++];
    memset(g, 0, sizeof *g);
    sc_strlcpy(g->name, name, sizeof g->name);
    return g;
}

static void print_row(FILE *out, const group_t *g)
{
    double saved = g->baseline - g->cost;
    fprintf(out, "| %-16s | %8lld | %6lld | %6lld | %10lld | %8lld | %10lld | %11.6f | %11.6f | %6.1f%% |\n",
            g->name, g->requests, g->ok, g->errors, g->prompt, g->cached, g->output + g->thought,
            g->cost, g->baseline, g->baseline > 0 ? 100.0 * saved / g->baseline : 0.0);
}

sc_status_t sc_report_run(const char *path, FILE *out, char *errbuf, size_t errlen)
{
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!in) {
        snprintf(errbuf, errlen, "%s: cannot open", path);
        return SC_ERR_IO;
    }
    group_t total = {.name = "total"};
    group_t *tenants = calloc(REPORT_MAX_GROUPS + 1, sizeof *tenants);
    size_t ntenants = 0;
    long long bad = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    if (!tenants) {
        if (in != stdin)
            fclose(in);
        return SC_ERR_NOMEM;
    }
    while ((len = getline(&line, &cap, in)) > 0) {
        if (len > REPORT_LINE_MAX) {
            bad++;
            continue;
        }
        json_t *r = json_loadb(line, (size_t)len, 0, NULL); /* new reference */
        if (!json_is_object(r) || !json_is_string(json_object_get(r, "id"))) {
            bad++;
            json_decref(r);
            continue;
        }
        add(&total, r);
        const char *tenant = json_string_value(json_object_get(r, "tenant"));
        add(group_for(tenants, &ntenants, tenant ? tenant : "(none)"), r);
        json_decref(r);
    }
    free(line);
    if (in != stdin)
        fclose(in);

    fprintf(out, "| %-16s | %8s | %6s | %6s | %10s | %8s | %10s | %11s | %11s | %7s |\n", "tenant",
            "requests", "ok", "errors", "prompt tok", "cached", "output tok", "cost $",
            "baseline $", "saved");
    fprintf(out, "|%s|\n", "------------------|----------|--------|--------|------------|----------|"
                           "------------|-------------|-------------|---------");
    for (size_t i = 0; i < ntenants; i++)
        print_row(out, &tenants[i]);
    print_row(out, &total);
    fprintf(out, "\nsavings by technique (USD): cache %.6f, prune %.6f, route %.6f, "
                 "prompt cache %.6f, batch %.6f; total saved %.6f of %.6f baseline\n",
            total.save[0], total.save[1], total.save[2], total.save[3], total.save[4],
            total.baseline - total.cost, total.baseline);
    if (bad)
        fprintf(out, "(%lld lines were not results and were skipped)\n", bad);
    free(tenants);
    return SC_OK;
}
