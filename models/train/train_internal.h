/* train_internal.h - internal to models/train/{train_router,data,mt_bench,fit,report,classify}.c:
 * the data set, head and curve structs, the limits they share and the tr_ helpers. */
#ifndef SC_TRAIN_INTERNAL_H
#define SC_TRAIN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "host/core/status.h"
#include "models/encoder.h"
#include "models/router.h"

/* ---- limits shared by the split files ---- */

#define TR_ERRBUF       (TR_PATH + 1024)
#define TR_PATH         1024
#define TR_MAX_SUBJECTS 1024
#define TR_EMBED_BATCH  256
#define TR_CURVE_POINTS 21 /* cost 0, 0.05, …, 1 */
#define TR_FOLDS        5
#define TR_CV_REPEATS   3 /* fold assignments (of subjects) averaged: one is noisy */
#define TR_SPEED_BATCH  256
#define TR_SPEED_REPS   200
#define TR_OP_POINTS    201 /* operating curve: strong shares 0, 0.005, …, 1 */
#define TR_WEAK_COL     "mistralai/Mixtral-8x7B-Instruct-v0.1"
#define TR_STRONG_COL   "gpt-4-1106-preview"
#define TR_DEFAULT_OUT  "models/router/router.json"

/* ---- the data set ---- */

/* the task families: MMLU (multiple choice, right or wrong) and MT-Bench (open two-turn chat,
 * GPT-4 judge scores 1..10) */
typedef enum { TR_FAM_MMLU = 0, TR_FAM_MT_BENCH, TR_NFAMILIES } tr_family_t;

typedef struct {
    char *text; /* owned */
    size_t len;
    uint64_t hash;
    int subject; /* the group a split keeps together: an MMLU subject or an MT-Bench question */
    unsigned char weak_ok, strong_ok, y;
    unsigned char family; /* tr_family_t */
    float wq, sq; /* the weak / strong model's quality in [0, 1]: MMLU right = 1, wrong = 0;
                   * MT-Bench (judge score - 1) / 9 */
} tr_item_t;

typedef struct {
    tr_item_t *items; /* owned, [cap] */
    size_t n, cap;
    char *subjects[TR_MAX_SUBJECTS]; /* owned names */
    unsigned char subj_family[TR_MAX_SUBJECTS];
    int nsubj;
    uint64_t *contaminated; /* sorted hashes, owned */
    size_t ncontaminated;
    size_t dropped;
    float *feat; /* n × SC_ROUTER_NFEATURES raw features: embedding, then signals; owned */
} tr_data_t;

/* ---- the head ---- */

/* the inputs a head sees (the others are masked: their weights stay 0, the file's shape is the
 * same): ALL; SIGNALS (embedding masked); EMBEDDING (signals masked); EMBEDDING_LEN_NEG
 * (the embedding + log_bytes + negation, the two signals whose pooled correlation with the gain
 * is highest on the training subjects) */
typedef enum {
    TR_FEAT_ALL = 0,
    TR_FEAT_SIGNALS,
    TR_FEAT_EMBEDDING,
    TR_FEAT_EMBEDDING_LEN_NEG
} tr_feat_t;
/* what the head fits: GAIN 1 when weak wrong and strong right (classes balanced); WEAK_WRONG 1
 * when the weak model failed (balanced); GAIN3 (strong − weak + 1) / 2 ∈ {0, ½, 1}, unweighted,
 * so prompts that the strong model gets wrong and the weak right push the score down: the score
 * is then (1 + the expected gain of the strong model's answer over the weak one's) / 2 */
/* SIGN (sign(strong − weak) + 1) / 2 ∈ {0, ½, 1}: GAIN3 for MMLU; for a graded family (MT-Bench)
 * which model the judge preferred, not by how much, so its targets spread as MMLU's do (a judge
 * gain / 9 stays near 0) */
typedef enum {
    TR_TARGET_GAIN = 0,
    TR_TARGET_WEAK_WRONG,
    TR_TARGET_GAIN3,
    TR_TARGET_SIGN,
    TR_NTARGETS
} tr_target_t;

typedef struct {
    const char *name;
    int hidden; /* 0 = logistic */
    float l2;
    float lr;
    int epochs;
    tr_feat_t feat;
    tr_target_t target;
    int decay; /* 1: the learning rate falls linearly to 0 over the epochs (the last steps
                * average out the minibatch noise, which a strongly regularised head's small
                * weights would otherwise drown in) */
    float fam_w; /* loss weight of an MT-Bench row against an MMLU row's 1 (0: 1) */
    float l2_sig; /* L2 on the signals' weights as a multiple of l2 (0: 1): a weaker pull on the
                   * dozen signals (length, structure, code / math / reasoning cues, which mean
                   * the same in every family) than on the 384 embedding weights */
} tr_cfg_t;

typedef struct {
    int hidden;
    float *w1, *b1, *w2; /* owned; w1/b1 NULL when hidden = 0 */
    float b2;
} tr_head_t;

/* ---- the operating curve and speed ---- */

/* The operating curve (see models/router.h): thresholds at strong shares 0, 1/(P-1), …, 1 of the
 * CV predictions of the training rows (all repeats pooled); at each, the quality ratio of the
 * pooled predictions and its (1 - confidence) quantile over the TR_CV_REPEATS × TR_FOLDS folds
 * (each fold's rows routed by the same threshold). */
typedef struct {
    float thr[TR_OP_POINTS], share[TR_OP_POINTS], ratio[TR_OP_POINTS], low[TR_OP_POINTS];
} tr_opcurve_t;

typedef struct {
    double head_ms, signals_ms, embed_head_ms;
} tr_speed_t;

/* ---- data.c: files, the data set, the embedding cache ---- */

/* mkdir -p of the directory part of path */
void tr_make_parent_dirs(const char *path);
/* Free what d owns (items, subject names, contaminated hashes, features), not d itself. */
void tr_data_free(tr_data_t *d);
/* Add the contamination list and every mmlu/mmlu_<subject>.csv of dir to d, and MT-Bench when
 * dir holds mt_bench/ (tr_load_mt_bench); SC_ERR_NOT_FOUND when dir holds neither. */
sc_status_t tr_load_dir(tr_data_t *d, const char *dir, char *err, size_t errlen);
/* Read a whole file (at most max bytes, NUL-terminated). @remark the caller frees *out. */
sc_status_t tr_read_file(const char *path, size_t max, char **out, size_t *len, char *err,
                         size_t errlen);
uint64_t tr_fnv1a64(const char *s, size_t n);
/* Append one prompt (text copied) to d in group subject. */
sc_status_t tr_add_item(tr_data_t *d, const char *text, size_t len, int subject, int family,
                        float wq, float sq);

/* ---- mt_bench.c: the second family ---- */

/* dir/mt_bench/{question,judgements,contaminated_prompts}.jsonl into d: one prompt per (question,
 * turn), each question its own group; the second turn's text is the first turn, the weak model's
 * first answer and the second turn; a question whose turn is contaminated is left out whole.
 * SC_ERR_NOT_FOUND when dir has no mt_bench/question.jsonl. */
sc_status_t tr_load_mt_bench(tr_data_t *d, const char *dir, char *err, size_t errlen);
/* Fill the embedding part of d->feat from the cache; embed what is missing and append it. */
sc_status_t tr_embed_all(tr_data_t *d, sc_encoder_t *enc, const char *cache_path, char *err,
                         size_t errlen);

/* ---- fit.c: random numbers, the head, fit / predict, APGR, CV, operating curve ---- */

double tr_rng_unit(uint64_t *s); /* [0, 1) */
void tr_shuffle(size_t *a, size_t n, uint64_t *s);
void tr_head_free(tr_head_t *h);
/* Fit on rows[0..nrows) of the standardised X. @remark on SC_OK the caller frees *out with
 * tr_head_free(); on failure *out holds nothing. */
sc_status_t tr_fit(const tr_cfg_t *c, const tr_data_t *d, const float *X, const float *y,
                   const size_t *rows, size_t nrows, uint64_t seed, tr_head_t *out);
/* scores[k] (nrows floats) for rows[k], through the CPU twin of the kernel. */
sc_status_t tr_predict(const tr_head_t *h, const float *X, const size_t *rows, size_t nrows,
                       float *scores);
/* The quality ratio and strong share when rows[k] with scores[k] >= t go to the strong model. */
void tr_ratio_at(const tr_data_t *d, const size_t *rows, size_t n, const float *scores, float t,
                 const unsigned char *in_dom, double *ratio, double *share);
/* APGR of scores over rows (curve, quality: TR_CURVE_POINTS doubles each, or NULL), on the rows'
 * qualities wq / sq (RouteLLM's metric, as sc_router_apgr, for graded qualities). */
double tr_apgr_rows(const tr_data_t *d, const size_t *rows, size_t nrows, const float *scores,
                    double *curve, double *quality);
/* TR_CV_REPEATS × TR_FOLDS folds of the training rows grouped by subject (MMLU) or question
 * (MT-Bench). out[f] per family f: MMLU the mean APGR of the folds' MMLU rows; MT-Bench (a
 * fold holds ~30 of its prompts) the mean over repeats of the APGR of its pooled out-of-fold
 * scores; NaN for a family without training rows. */
sc_status_t tr_cross_validate(const tr_cfg_t *c, const tr_data_t *d, const float *X, const float *y,
                              const size_t *train, size_t ntr, uint64_t seed, size_t *fold_tr,
                              size_t *fold_te, float *scores, float *oof, signed char *fold_of_row,
                              double out[TR_NFAMILIES]);
/* rows[0..n) of family fam into out (n entries); returns how many. */
size_t tr_rows_of_family(const tr_data_t *d, const size_t *rows, size_t n, int fam, size_t *out);
/* The operating curve of the CV predictions oof of the training rows. */
sc_status_t tr_operating_curve(const tr_data_t *d, const size_t *train, size_t ntr,
                               const float *oof, const signed char *fold_of_row, double confidence,
                               tr_opcurve_t *oc);

/* ---- report.c: JSON and SVG writers, machine name, speed ---- */

/* Write root (borrowed) to path, one top-level key per line. 0, or -1 on an I/O error. */
int tr_write_json_lines(const json_t *root, const char *path);
/* v[0..n) as a JSON array. @return a new reference (NULL on allocation failure). */
json_t *tr_json_floats_new(const float *v, size_t n);
/* The CPU model name from /proc/cpuinfo ("unknown CPU" without one) into buf[len]. */
void tr_machine_name(char *buf, size_t len);
/* The quality/cost chart (quality: TR_CURVE_POINTS doubles) as SVG. 0, or -1 on an I/O error. */
int tr_write_svg(const char *path, const double *quality, double qw, double qs, double apgr);
/* CPU scoring speed of r on held-out rows in batches of TR_SPEED_BATCH. */
sc_status_t tr_measure_speed(const tr_data_t *d, const size_t *rows, size_t nrows,
                             const sc_router_t *r, sc_encoder_t *enc, tr_speed_t *sp);

/* ---- train_router.c: options ---- */

/* strtod of all of s into *out when within [lo, hi]: 0, else -1. */
int tr_parse_double(const char *s, double lo, double hi, double *out);

#endif /* SC_TRAIN_INTERNAL_H */
