/* train_router.h - `scrimp train-router` (fit the router head on labelled routing data, evaluate
 * on held-out subjects, write weights + metrics + the bench report) and `scrimp classify`. */
#ifndef SC_TRAIN_ROUTER_H
#define SC_TRAIN_ROUTER_H

#include <stddef.h>

#define SC_CSV_MAX_FIELD (4u << 20) /* bytes in one CSV field */

/* One RFC 4180 record from buf[*pos .. len): fields separated by ',', records by '\n' or "\r\n";
 * a field in double quotes may hold commas, newlines and "" (one quote). Up to maxf fields are
 * returned (more are read and dropped): fields[k] (NUL-terminated, lens[k] bytes) are allocated
 * here, @remark the caller frees each of fields[0 .. *nf). *pos moves past the record.
 * Returns 1 a record, 0 end of input, -1 malformed (an unterminated quote, a quote inside an
 * unquoted field, a field over SC_CSV_MAX_FIELD) or out of memory (nothing to free then). */
int sc_csv_next(const char *buf, size_t len, size_t *pos, char **fields, size_t *lens, int maxf,
                int *nf);

/* scrimp train-router DATA_DIR... -o FILE [--model DIR] [--holdout-frac F] [--seed N]
 *   [--cache FILE] [--report-dir DIR] [--quality-target Q] [--confidence C] [--lite-share S]
 *   [--threads N] [--cv-only]
 * Model selection by subject-grouped CV on the training subjects; the file's thresholds are the
 * operating point for Q (default 0.95) on the chosen head's CV predictions; the file also keeps
 * that operating curve and the signals' domain box. --cv-only stops after selection (no held-out
 * scoring, nothing written). argv[0] is "train-router". 0 done, 1 runtime error, 2 usage error. */
int sc_train_router_cli(int argc, char **argv);

/* scrimp classify [--router FILE] [--model DIR] [--tiers a,b,c] [--batch N]
 *   [--quality-target Q [--lite-share S]] < lines
 * One JSON object per input line: {"i":N,"score":S,"tier":"T"}. A line that is a JSON object
 * with a "prompt" string is a request: a "model" other than "auto" pins it (no scoring:
 * score null, "pinned":true). A prompt outside the router's domain gets the cheapest tier and
 * "in_domain":false. --quality-target: the thresholds for Q from the file's operating curve.
 * argv[0] is "classify". 0 done, 1 runtime error, 2 usage error. */
int sc_classify_cli(int argc, char **argv);

#endif
