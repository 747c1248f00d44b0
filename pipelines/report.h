/* report.h - `scrimp report`: savings tables (and an SVG chart) from results JSONL files. */
#ifndef SC_REPORT_H
#define SC_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "host/core/status.h"

/* Read results (DESIGN §4.2, one JSON object per line; "-" = stdin) in one streaming pass and
 * print markdown tables to out: a summary, then per tenant, agent/stage, model, source,
 * technique (USD saved, share of baseline, requests affected) and error code. Lines that are not
 * results (not JSON, not an object, no "status" of "ok"/"error", longer than the line limit) are
 * counted and reported, never fatal.
 *
 * Shadow lines ({"kind": "shadow", ...}, the scrimp.shadow topic's records) are not requests:
 * they count in no request, ok, error, token or baseline column, but their cost_usd is in every
 * cost total (overall, per tenant, per agent/stage, per model under the shadow call's "model",
 * and per source under a "shadow" row), and the technique table gains a "shadow" row of minus
 * their cost, so that the technique rows still add up to baseline - cost. A "shadow evaluation"
 * section then gives the calls, their outcomes, the shadow cost and its share of the total cost,
 * and per (tenant, agent, stage, tier) the agreement k/n (n: agree + disagree). Without shadow
 * lines none of that is printed.
 *
 * svg_path: NULL for none, else an SVG (900x600, self-contained) is written there with the
 * cumulative cost against the cumulative baseline over the results in order (downsampled to a
 * bounded number of points) and the savings by technique as horizontal bars.
 *
 * Memory is bounded: one line at a time (at most SC_REPORT_LINE_MAX bytes), a bounded number of
 * rows per table (the rest is one "(other)" row) and of curve points.
 * Errors (SC_ERR_IO, SC_ERR_NOMEM) leave a message in errbuf. */
sc_status_t sc_report_run(const char *path, const char *svg_path, FILE *out, char *errbuf,
                          size_t errlen);

/* The same over npaths files read in order as one stream (results files and shadow files side by
 * side): paths[0..npaths), 1 <= npaths <= SC_REPORT_FILES_MAX, "-" at most once. A file that
 * cannot be opened or read stops the report before anything is printed (SC_ERR_IO);
 * SC_ERR_INVALID_ARG for a bad npaths or "-" twice. */
sc_status_t sc_report_run_files(const char *const *paths, size_t npaths, const char *svg_path,
                                FILE *out, char *errbuf, size_t errlen);

#define SC_REPORT_LINE_MAX   (8 << 20) /* longer lines are counted as malformed */
#define SC_REPORT_MAX_GROUPS 64        /* distinct rows per table before "(other)" */
#define SC_REPORT_CURVE_MAX  512       /* points kept for the cost curve (even) */
#define SC_REPORT_FILES_MAX  256       /* input files of one report */

#endif
