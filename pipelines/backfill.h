/* backfill.h - the offline driver: `scrimp backfill IN.jsonl -o OUT.jsonl`. */
#ifndef SC_BACKFILL_H
#define SC_BACKFILL_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "host/core/config.h"
#include "host/core/status.h"

typedef struct {
    const char *in_path;
    const char *out_path;
    int batch_mode; /* 0: concurrent online calls; 1: Gemini Batch Mode */
    int resume;     /* continue an earlier run that wrote out_path (and out_path.state) */
} sc_backfill_opts_t;

/*
 * One output line per input line: a result (DESIGN §4.2) with "line": N, or an error line for a
 * malformed input line. Batch Mode journals each batch in OUT.state before polling it, so a run
 * killed at any point resumes with no batch submitted twice and no finished line paid twice.
 * Returns SC_OK when every line has its output line; SC_ERR_CLOSED when interrupted (resume later).
 */
sc_status_t sc_backfill_run(const sc_config_t *cfg, const sc_backfill_opts_t *opts,
                            volatile sig_atomic_t *running, char *errbuf, size_t errlen);

/*
 * The batches a journal (OUT.state, read from f: one JSON event per line, a torn last line
 * skipped) says were created, or may have been, and did not finish: a new object mapping each
 * display name to its "creating" event ({"model", "keys", ...}) with "name" added once the
 * journal says "created". Lines that are not such events are skipped. NULL on allocation failure.
 * @remark the caller releases the result with json_decref().
 */
json_t *sc_backfill_journal_open(FILE *f);

/* `scrimp backfill …` argument parsing around sc_backfill_run(); returns the exit status. */
int sc_backfill_cli(int argc, char **argv, volatile sig_atomic_t *running);

#endif
