/* report.h - `scrimp report`: savings tables from a results JSONL file. */
#ifndef SC_REPORT_H
#define SC_REPORT_H

#include <stdio.h>

#include "host/status.h"

/* Read results (one JSON object per line; "-" = stdin) and print the summary and per-tenant
 * tables to out. Lines that are not results are counted and reported, not fatal. */
sc_status_t sc_report_run(const char *path, FILE *out, char *errbuf, size_t errlen);

#endif
