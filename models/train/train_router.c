/* train_router.c - `scrimp train-router`: routing data of two task families (MMLU, MT-Bench) →
 * embeddings (cached) + signals → a head chosen by grouped cross-validation → APGR on held-out
 * MMLU subjects, on MT-Bench questions (CV) and leave-one-family-out → router.json, the bench
 * report and its SVG curve. The pieces: data.c, mt_bench.c, fit.c, report.c; `scrimp classify`:
 * classify.c. */
#include "models/train/train_router.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host/core/log.h"
#include "host/core/util.h"
#include "models/encoder.h"
#include "models/router.h"
#include "models/train/train_internal.h"

#define TR_CMDLINE        4096
#define TR_MAX_DIRS       16
#define TR_RANDOM_SEEDS   20
#define TR_TARGET_APGR    0.65 /* the acceptance numbers, reported against: MMLU */
#define TR_TARGET_APGR_MT 0.60 /* MT-Bench */
#define TR_TARGET_MS      0.1
#define TR_DEFAULT_CACHE  "var/router/embeddings.bin"
#define TR_DEFAULT_REPORT "bench/results"

static const char *const tr_tier_names[3] = {"flash-lite", "flash", "pro"};

static const char *const tr_target_names[TR_NTARGETS] = {"needs-strong", "weak-wrong", "gain",
                                                                "gain-sign"};
static const char *const tr_feat_names[] = {"embedding + signals", "signals", "embedding",
                                            "embedding + log_bytes + negation"};

/* The candidates, scored by subject-grouped CV on the training subjects (the best is chosen).
 * The first two were the best of the earlier grid (target: needs the strong model); the gain
 * target fits the expected gain of the strong model over the weak one instead, which also learns
 * where the strong model is the worse of the two; it needs a much stronger L2. */
/* With MT-Bench in the data (~1% of the rows) a head may weight an MT-Bench row more (the last
 * field); the signals-only head is the one whose inputs are most alike across families. The
 * MLPs of the earlier grid (never chosen, CV APGR 0.52..0.54 on MMLU) are left out: CPU time;
 * one small MLP (8 hidden units) stays to check that an interaction of family and embedding does
 * not beat the logistic heads. The choice: see pick_head(). */
static const tr_cfg_t tr_grid[] = {
    {"logistic-needs-strong-l2-1e-1", 0, 1e-1f, 3e-3f, 20, TR_FEAT_ALL, TR_TARGET_GAIN, 0, 0, 0},
    {"logistic-gain-l2-0.3", 0, 0.3f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1, 0, 0},
    {"logistic-gain-l2-1", 0, 1.0f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1, 0, 0},
    {"logistic-gain-l2-3", 0, 3.0f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1, 0, 0},
    {"logistic-gain-emb-l2-1", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING, TR_TARGET_GAIN3, 1, 0, 0},
    {"logistic-gain-emb-len-neg-l2-1", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING_LEN_NEG,
     TR_TARGET_GAIN3, 1, 0, 0},
    {"logistic-gain-emb-len-neg-l2-1-mt10", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING_LEN_NEG,
     TR_TARGET_GAIN3, 1, 10.0f, 0},
    {"logistic-gain-emb-len-neg-l2-1-mt30", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING_LEN_NEG,
     TR_TARGET_GAIN3, 1, 30.0f, 0},
    {"logistic-gain-l2-1-mt10", 0, 1.0f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1, 10.0f, 0},
    {"logistic-gain-signals-l2-1-mt10", 0, 1.0f, 1e-3f, 30, TR_FEAT_SIGNALS, TR_TARGET_GAIN3, 1,
     10.0f, 0},
    /* the signals' weights pulled less than the embedding's (the last field: their L2 as a
     * multiple of the head's), so the cues that mean the same in both families carry more */
    {"logistic-gain-l2-1-sig0.1-mt10", 0, 1.0f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1, 10.0f,
     0.1f},
    {"logistic-gain-l2-1-sig0.1-mt30", 0, 1.0f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1, 30.0f,
     0.1f},
    {"logistic-gain-l2-1-sig0.01-mt10", 0, 1.0f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1,
     10.0f, 0.01f},
    {"logistic-gain-l2-1-sig0.01-mt30", 0, 1.0f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1,
     30.0f, 0.01f},
    {"logistic-gain-l2-3-sig0.03-mt30", 0, 3.0f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1,
     30.0f, 0.03f},
    {"logistic-gain-l2-0.3-sig0.3-mt30", 0, 0.3f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1,
     30.0f, 0.3f},
    {"logistic-gain-emb-len-neg-l2-1-mt20", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING_LEN_NEG,
     TR_TARGET_GAIN3, 1, 20.0f, 0},
    {"logistic-gain-emb-len-neg-l2-3-mt30", 0, 3.0f, 1e-3f, 30, TR_FEAT_EMBEDDING_LEN_NEG,
     TR_TARGET_GAIN3, 1, 30.0f, 0},
    {"logistic-gain-emb-len-neg-l2-0.3-mt30", 0, 0.3f, 1e-3f, 30, TR_FEAT_EMBEDDING_LEN_NEG,
     TR_TARGET_GAIN3, 1, 30.0f, 0},
    {"logistic-gain-emb-len-neg-l2-1-mt15", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING_LEN_NEG,
     TR_TARGET_GAIN3, 1, 15.0f, 0},
    {"logistic-gain-emb-len-neg-l2-1-mt10-ep60", 0, 1.0f, 1e-3f, 60, TR_FEAT_EMBEDDING_LEN_NEG,
     TR_TARGET_GAIN3, 1, 10.0f, 0},
    {"logistic-gain-emb-l2-1-mt10", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING, TR_TARGET_GAIN3, 1,
     10.0f, 0},
    {"logistic-gain-emb-l2-1-mt20", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING, TR_TARGET_GAIN3, 1,
     20.0f, 0},
    {"logistic-gain-l2-1-mt20", 0, 1.0f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_GAIN3, 1, 20.0f, 0},
    {"logistic-weak-wrong-emb-len-neg-l2-1-mt30", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING_LEN_NEG,
     TR_TARGET_WEAK_WRONG, 1, 30.0f, 0},
    /* MT-Bench's target on MMLU's scale: which model the judge preferred */
    {"logistic-sign-emb-len-neg-l2-1-mt3", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING_LEN_NEG,
     TR_TARGET_SIGN, 1, 3.0f, 0},
    {"logistic-sign-emb-len-neg-l2-1-mt5", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING_LEN_NEG,
     TR_TARGET_SIGN, 1, 5.0f, 0},
    {"logistic-sign-emb-len-neg-l2-1-mt10", 0, 1.0f, 1e-3f, 30, TR_FEAT_EMBEDDING_LEN_NEG,
     TR_TARGET_SIGN, 1, 10.0f, 0},
    {"logistic-sign-l2-1-mt5", 0, 1.0f, 1e-3f, 30, TR_FEAT_ALL, TR_TARGET_SIGN, 1, 5.0f, 0},
    {"mlp8-gain-l2-0.3-sig0.1-mt30", 8, 0.3f, 1e-3f, 10, TR_FEAT_ALL, TR_TARGET_GAIN3, 1, 30.0f,
     0.1f},
};

static const char *const tr_family_names[TR_NFAMILIES] = {"MMLU", "MT-Bench"};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- options ---- */

typedef struct {
    const char *dirs[TR_MAX_DIRS];
    int ndirs;
    const char *out, *model_dir, *cache, *report_dir;
    double holdout_frac, lite_share, quality_target, confidence;
    uint64_t seed;
    int threads, cv_only;
    char cmdline[TR_CMDLINE];
} tr_opts_t;

static void train_usage(FILE *f)
{
    fprintf(
        f,
        "usage: scrimp train-router DATA_DIR... -o FILE [--model DIR] [--holdout-frac F]\n"
        "         [--seed N] [--cache FILE] [--report-dir DIR] [--quality-target Q]\n"
        "         [--confidence C] [--lite-share S] [--threads N] [--cv-only]\n"
        "  DATA_DIR holds mmlu/mmlu_<subject>.csv and mmlu-contaminated_prompts.jsonl, and/or\n"
        "  mt_bench/{question,judgements,contaminated_prompts}.jsonl (a second task family)\n"
        "  --quality-target: the file's thresholds send the strong tier the fewest prompts that\n"
        "  keep quality >= Q x all-strong in a share C of the CV folds; --lite-share: the\n"
        "  share of the other prompts (the easiest) that go to the cheapest tier;\n"
        "  --cv-only: model selection and operating curve on the training subjects only\n"
        "  (the held-out subjects are not scored, nothing is written)\n"
        "  (defaults: -o %s, --holdout-frac 0.2, --seed 1, --cache %s,\n"
        "   --report-dir %s, --quality-target 0.95, --confidence 0.8, --lite-share 0.5)\n",
        TR_DEFAULT_OUT, TR_DEFAULT_CACHE, TR_DEFAULT_REPORT);
}

int tr_parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end || errno || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_train_opts(int argc, char **argv, tr_opts_t *o)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"holdout-frac", required_argument, NULL, 'f'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"cache", required_argument, NULL, 'c'},
                                         {"report-dir", required_argument, NULL, 'r'},
                                         {"lite-share", required_argument, NULL, 'l'},
                                         {"quality-target", required_argument, NULL, 'q'},
                                         {"confidence", required_argument, NULL, 'C'},
                                         {"cv-only", no_argument, NULL, 'V'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    sc_encoder_opts_t eo;
    sc_encoder_opts_default(&eo);
    memset(o, 0, sizeof *o);
    o->out = TR_DEFAULT_OUT;
    o->model_dir = eo.model_dir;
    o->cache = TR_DEFAULT_CACHE;
    o->report_dir = TR_DEFAULT_REPORT;
    o->holdout_frac = 0.2;
    o->lite_share = 0.5;
    o->quality_target = 0.95;
    o->confidence = 0.8;
    o->seed = 1;
    size_t used = (size_t)snprintf(o->cmdline, sizeof o->cmdline, "scrimp");
    for (int k = 0; k < argc && used < sizeof o->cmdline; k++)
        used += (size_t)snprintf(o->cmdline + used, sizeof o->cmdline - used, " %s", argv[k]);
    int opt;
    double v;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            o->out = optarg;
            break;
        case 'm':
            o->model_dir = optarg;
            break;
        case 'c':
            o->cache = optarg;
            break;
        case 'r':
            o->report_dir = optarg;
            break;
        case 'f':
            if (tr_parse_double(optarg, 0.01, 0.9, &o->holdout_frac))
                return 2;
            break;
        case 'l':
            if (tr_parse_double(optarg, 0.0, 1.0, &o->lite_share))
                return 2;
            break;
        case 'q':
            if (tr_parse_double(optarg, 1e-6, 1.0, &o->quality_target))
                return 2;
            break;
        case 'C':
            if (tr_parse_double(optarg, 0.0, 1.0, &o->confidence))
                return 2;
            break;
        case 'V':
            o->cv_only = 1;
            break;
        case 's':
            if (tr_parse_double(optarg, 0, 1e15, &v))
                return 2;
            o->seed = (uint64_t)v;
            break;
        case 't':
            if (tr_parse_double(optarg, 0, 1024, &v))
                return 2;
            o->threads = (int)v;
            break;
        case 'h':
            train_usage(stdout);
            return 1;
        default:
            return 2;
        }
    }
    for (int k = optind; k < argc; k++) {
        if (o->ndirs == TR_MAX_DIRS)
            return 2;
        o->dirs[o->ndirs++] = argv[k];
    }
    if (o->ndirs == 0)
        return 2;
    return 0;
}

/* ---- evaluation per family ---- */

/* One scored set of rows: APGR and its curve, random routing on the same rows, the all-weak /
 * all-strong qualities, and (LOFO) how many rows lie outside the training rows' signal box. */
typedef struct {
    double apgr, rnd, qw, qs;
    double curve[TR_CURVE_POINTS], quality[TR_CURVE_POINTS];
    size_t n, outside;
} tr_eval_t;

/* scratch: n floats */
static void eval_rows(const tr_data_t *d, const size_t *rows, size_t n, const float *scores,
                      uint64_t seed, float *scratch, tr_eval_t *e)
{
    e->n = n;
    e->apgr = tr_apgr_rows(d, rows, n, scores, e->curve, e->quality);
    e->qw = e->qs = 0.0;
    for (size_t k = 0; k < n; k++) {
        e->qw += d->items[rows[k]].wq;
        e->qs += d->items[rows[k]].sq;
    }
    e->qw /= n ? (double)n : 1.0;
    e->qs /= n ? (double)n : 1.0;
    double sum = 0.0;
    uint64_t rr = seed + 1000;
    for (int t = 0; t < TR_RANDOM_SEEDS; t++) {
        for (size_t k = 0; k < n; k++)
            scratch[k] = (float)tr_rng_unit(&rr);
        sum += tr_apgr_rows(d, rows, n, scratch, NULL, NULL);
    }
    e->rnd = sum / TR_RANDOM_SEEDS;
}

/* X[rows of d] standardised by the mean and std of rows tr[0..ntr) into X (n × F); mean, std: F. */
static void standardise(const tr_data_t *d, const size_t *tr, size_t ntr, float *mean, float *std,
                        float *X)
{
    const size_t F = SC_ROUTER_NFEATURES;
    for (size_t j = 0; j < F; j++) {
        double s1 = 0.0, s2 = 0.0;
        for (size_t k = 0; k < ntr; k++) {
            double v = d->feat[tr[k] * F + j];
            s1 += v;
            s2 += v * v;
        }
        double mu = s1 / (double)ntr, var = s2 / (double)ntr - mu * mu;
        mean[j] = (float)mu;
        std[j] = (float)sqrt(var > 1e-12 ? var : 1e-12);
    }
    for (size_t i = 0; i < d->n; i++)
        for (size_t j = 0; j < F; j++)
            X[i * F + j] = (d->feat[i * F + j] - mean[j]) / std[j];
}

/* Leave one family out: c fitted on every row of family fam (standardised on them alone),
 * scored on every row of the other family. Xl: n × F scratch; rows_tr, rows_te: n; scores,
 * scratch: n floats. */
static sc_status_t lofo(const tr_cfg_t *c, const tr_data_t *d, const float *y, int fam,
                        uint64_t seed, float *Xl, size_t *rows_tr, size_t *rows_te, float *scores,
                        float *scratch, tr_eval_t *e)
{
    const size_t F = SC_ROUTER_NFEATURES;
    size_t all_n = d->n, a = 0, b = 0;
    memset(e, 0, sizeof *e);
    e->apgr = e->rnd = NAN;
    for (size_t i = 0; i < all_n; i++) {
        if (d->items[i].family == fam)
            rows_tr[a++] = i;
        else
            rows_te[b++] = i;
    }
    if (a == 0 || b == 0)
        return SC_OK;
    float mean[SC_ROUTER_NFEATURES], std[SC_ROUTER_NFEATURES];
    standardise(d, rows_tr, a, mean, std, Xl);
    tr_head_t h;
    sc_status_t st = tr_fit(c, d, Xl, y, rows_tr, a, seed, &h);
    if (st == SC_OK)
        st = tr_predict(&h, Xl, rows_te, b, scores);
    tr_head_free(&h);
    if (st)
        return st;
    eval_rows(d, rows_te, b, scores, seed, scratch, e);
    float lo[SC_ROUTER_NSIGNALS], hi[SC_ROUTER_NSIGNALS];
    for (int j = 0; j < SC_ROUTER_NSIGNALS; j++) {
        lo[j] = INFINITY;
        hi[j] = -INFINITY;
        for (size_t k = 0; k < a; k++) {
            float v = d->feat[rows_tr[k] * F + SC_EMBED_DIM + (size_t)j];
            lo[j] = v < lo[j] ? v : lo[j];
            hi[j] = v > hi[j] ? v : hi[j];
        }
    }
    for (size_t k = 0; k < b; k++) {
        const float *sg = d->feat + rows_te[k] * F + SC_EMBED_DIM;
        int in = 1;
        for (int j = 0; j < SC_ROUTER_NSIGNALS; j++)
            in &= sg[j] >= lo[j] && sg[j] <= hi[j];
        e->outside += !in;
    }
    return SC_OK;
}

/* The selection score of a head: the mean of its families' CV APGRs (those with rows). */
static double selection_score(const double cv[TR_NFAMILIES])
{
    double s = 0.0;
    int n = 0;
    for (int f = 0; f < TR_NFAMILIES; f++)
        if (cv[f] == cv[f]) {
            s += cv[f];
            n++;
        }
    return n ? s / n : NAN;
}

/* Does a head's MT-Bench CV APGR meet the family's target (or is there no MT-Bench)? */
static int mt_bench_ok(const double cv[TR_NFAMILIES])
{
    double m = cv[TR_FAM_MT_BENCH];
    return m != m || m >= TR_TARGET_APGR_MT;
}

/* The chosen head, from the CV figures alone: the best MMLU CV APGR among the heads whose
 * MT-Bench CV APGR meets its target (each family is held to its own target, so the spare
 * MT-Bench margin is not traded for MMLU); when none does, the best selection score. */
static size_t pick_head(const double (*cv_fam)[TR_NFAMILIES], const double *sel, size_t ng)
{
    size_t best = ng;
    for (size_t g = 0; g < ng; g++) {
        double m = cv_fam[g][TR_FAM_MMLU];
        if (mt_bench_ok(cv_fam[g]) && m == m && (best == ng || m > cv_fam[best][TR_FAM_MMLU]))
            best = g;
    }
    if (best < ng)
        return best;
    best = 0;
    for (size_t g = 1; g < ng; g++)
        if (sel[g] > sel[best] || sel[best] != sel[best])
            best = g;
    return best;
}

static void md_curve(FILE *md, const tr_eval_t *e)
{
    fputs("| cost (share to strong) | quality | PGR | random PGR |\n|---|---|---|---|\n", md);
    for (int p = 0; p < TR_CURVE_POINTS; p++)
        fprintf(md, "| %.2f | %.4f | %.4f | %.2f |\n", (double)p / (TR_CURVE_POINTS - 1),
                e->quality[p], e->curve[p], (double)p / (TR_CURVE_POINTS - 1));
}

/* ---- train-router ---- */

int sc_train_router_cli(int argc, char **argv)
{
    const size_t F = SC_ROUTER_NFEATURES;
    const size_t NG = SC_ARRAY_LEN(tr_grid);
    tr_opts_t o;
    int rc = parse_train_opts(argc, argv, &o);
    if (rc) {
        if (rc == 2)
            train_usage(stderr);
        return rc == 1 ? 0 : 2;
    }
    char err[TR_ERRBUF] = "";
    tr_data_t d = {0};
    sc_encoder_t *enc = NULL;
    sc_router_t *router = NULL;
    tr_head_t best = {0};
    json_t *root = NULL;
    float *X = NULL, *mean = NULL, *std = NULL, *scores = NULL, *sorted = NULL;
    size_t *train = NULL, *test = NULL, *fold_tr = NULL, *fold_te = NULL, *subj_order = NULL;
    unsigned char *is_test_subj = NULL;
    float *y = NULL;   /* TR_NTARGETS × n targets */
    float *oof = NULL; /* NG × TR_CV_REPEATS × n: each head's CV scores of the training rows */
    signed char *fold_of_row = NULL; /* TR_CV_REPEATS × n */
    unsigned char *te_in_dom = NULL; /* held-out rows inside the domain box */
    tr_opcurve_t *oc = NULL;
    int32_t *ids = NULL;
    double cv_apgr[SC_ARRAY_LEN(tr_grid)], cv_fam[SC_ARRAY_LEN(tr_grid)][TR_NFAMILIES];
    tr_eval_t(*lofo_e)[TR_NFAMILIES] = NULL; /* NG × train family */
    float *Xl = NULL, *oof_mt = NULL;
    size_t *rows_a = NULL, *rows_b = NULL;
    signed char *fold_mt = NULL;
    sc_status_t st;
    rc = 1;

    for (int k = 0; k < o.ndirs; k++)
        if ((st = tr_load_dir(&d, o.dirs[k], err, sizeof err)) != SC_OK)
            goto fail;
    if (d.n == 0 || d.nsubj < 2) {
        snprintf(err, sizeof err, "no labelled prompts found");
        goto fail;
    }
    size_t fam_rows[TR_NFAMILIES] = {0}, fam_groups[TR_NFAMILIES] = {0};
    for (size_t i = 0; i < d.n; i++)
        fam_rows[d.items[i].family]++;
    for (int s = 0; s < d.nsubj; s++)
        fam_groups[d.subj_family[s]]++;
    if (fam_groups[TR_FAM_MMLU] < 2) {
        snprintf(err, sizeof err, "need MMLU prompts of at least 2 subjects (held-out subjects)");
        goto fail;
    }
    sc_info("router.data",
            "prompts=%zu subjects=%d mmlu=%zu/%zu mt_bench=%zu/%zu contaminated_dropped=%zu", d.n,
            d.nsubj, fam_rows[TR_FAM_MMLU], fam_groups[TR_FAM_MMLU], fam_rows[TR_FAM_MT_BENCH],
            fam_groups[TR_FAM_MT_BENCH], d.dropped);

    /* features: embeddings (cached) + signals */
    sc_encoder_opts_t eo;
    sc_encoder_opts_default(&eo);
    eo.model_dir = o.model_dir;
    eo.backend = SC_BACKEND_CPU;
    eo.threads = o.threads;
    eo.max_batch = TR_EMBED_BATCH;
    if ((st = sc_encoder_new(&eo, &enc, err, sizeof err)) != SC_OK)
        goto fail;
    d.feat = malloc(sizeof(float) * d.n * F);
    ids = malloc(sizeof(int32_t) * SC_ROUTER_COUNT_TOKENS);
    if (!d.feat || !ids)
        goto nomem;
    if ((st = tr_embed_all(&d, enc, o.cache, err, sizeof err)) != SC_OK)
        goto fail;
    for (size_t i = 0; i < d.n; i++) {
        int nt = sc_tokenizer_encode(sc_encoder_tokenizer(enc), d.items[i].text, d.items[i].len,
                                     ids, SC_ROUTER_COUNT_TOKENS);
        sc_router_signals(d.items[i].text, d.items[i].len, nt, d.feat + i * F + SC_EMBED_DIM);
    }

    /* split by subject: a share of the MMLU subjects is held out; the MT-Bench questions (too
     * few for a fixed held-out set) are all training rows, scored by question-grouped CV */
    subj_order = malloc(sizeof *subj_order * (size_t)d.nsubj);
    is_test_subj = calloc((size_t)d.nsubj, 1);
    if (!subj_order || !is_test_subj)
        goto nomem;
    uint64_t rs = o.seed * 0x9e3779b97f4a7c15ull + 7;
    int nmsubj = 0;
    for (int s = 0; s < d.nsubj; s++)
        if (d.subj_family[s] == TR_FAM_MMLU)
            subj_order[nmsubj++] = (size_t)s;
    tr_shuffle(subj_order, (size_t)nmsubj, &rs);
    int ntest = (int)floor(o.holdout_frac * nmsubj + 0.5);
    ntest = ntest < 1 ? 1 : ntest >= nmsubj ? nmsubj - 1 : ntest;
    for (int k = 0; k < nmsubj; k++) {
        int s = (int)subj_order[k];
        is_test_subj[s] = k < ntest;
    }
    train = malloc(sizeof *train * d.n);
    test = malloc(sizeof *test * d.n);
    fold_tr = malloc(sizeof *fold_tr * d.n);
    fold_te = malloc(sizeof *fold_te * d.n);
    y = malloc(sizeof(float) * TR_NTARGETS * d.n);
    scores = malloc(sizeof(float) * d.n);
    sorted = malloc(sizeof(float) * d.n);
    X = malloc(sizeof(float) * d.n * F);
    mean = calloc(F, sizeof(float));
    std = calloc(F, sizeof(float));
    oof = calloc(NG * TR_CV_REPEATS * d.n, sizeof(float));
    fold_of_row = calloc((size_t)TR_CV_REPEATS * d.n, 1);
    oc = malloc(sizeof *oc);
    lofo_e = calloc(NG, sizeof *lofo_e);
    Xl = malloc(sizeof(float) * d.n * F);
    oof_mt = calloc((size_t)TR_CV_REPEATS * d.n, sizeof(float));
    fold_mt = calloc((size_t)TR_CV_REPEATS * d.n, 1);
    rows_a = malloc(sizeof *rows_a * d.n);
    rows_b = malloc(sizeof *rows_b * d.n);
    if (!train || !test || !fold_tr || !fold_te || !y || !scores || !sorted || !X || !mean ||
        !std || !oof || !fold_of_row || !oc || !lofo_e || !Xl || !oof_mt || !fold_mt || !rows_a ||
        !rows_b)
        goto nomem;
    size_t ntr = 0, nte = 0, npos_tr = 0;
    for (size_t i = 0; i < d.n; i++) {
        const tr_item_t *it = &d.items[i];
        y[TR_TARGET_GAIN * d.n + i] = it->y;
        y[TR_TARGET_WEAK_WRONG * d.n + i] = !it->weak_ok;
        /* (gain + 1) / 2 with gain = strong quality − weak quality ∈ [−1, 1]: MMLU {−1, 0, 1},
         * MT-Bench (strong score − weak score) / 9 */
        y[TR_TARGET_GAIN3 * d.n + i] = 0.5f * (it->sq - it->wq + 1.0f);
        y[TR_TARGET_SIGN * d.n + i] = it->sq > it->wq ? 1.0f : it->sq < it->wq ? 0.0f : 0.5f;
        if (is_test_subj[d.items[i].subject])
            test[nte++] = i;
        else {
            train[ntr++] = i;
            npos_tr += d.items[i].y;
        }
    }

    /* standardise with the training rows' mean and std */
    standardise(&d, train, ntr, mean, std, X);

    /* model selection: subject-grouped cross-validation inside the training subjects only */
    size_t chosen = 0;
    for (size_t g = 0; g < NG; g++) {
        const float *yt = y + (size_t)tr_grid[g].target * d.n;
        if ((st = tr_cross_validate(&tr_grid[g], &d, X, yt, train, ntr, o.seed, fold_tr, fold_te,
                                    scores, oof + g * TR_CV_REPEATS * d.n, fold_of_row,
                                    cv_fam[g])) != SC_OK)
            goto fail_st;
        cv_apgr[g] = selection_score(cv_fam[g]);
        sc_info("router.cv", "config=%s cv_apgr=%.4f mmlu=%.4f mt_bench=%.4f", tr_grid[g].name,
                cv_apgr[g], cv_fam[g][TR_FAM_MMLU], cv_fam[g][TR_FAM_MT_BENCH]);
    }
    chosen = pick_head(cv_fam, cv_apgr, NG);
    sc_info("router.select", "config=%s cv_apgr=%.4f", tr_grid[chosen].name, cv_apgr[chosen]);

    /* the operating point: thresholds from the chosen head's CV scores (training subjects only) */
    if ((st = tr_operating_curve(&d, train, ntr, oof + chosen * TR_CV_REPEATS * d.n, fold_of_row,
                                 o.confidence, oc)) != SC_OK)
        goto fail_st;
    float thr[2];
    double strong_share_cv = 0.0;
    int target_met = 0;
    if (sc_router_pick_thresholds(oc->thr, oc->share, oc->low, TR_OP_POINTS, o.quality_target,
                                  o.lite_share, thr, &strong_share_cv, &target_met) != 0) {
        snprintf(err, sizeof err, "quality target or lite share out of range");
        goto fail;
    }
    sc_info("router.operating_point",
            "quality_target=%.3f confidence=%.2f t1=%.4f t2=%.4f strong_share_cv=%.3f met=%d",
            o.quality_target, o.confidence, (double)thr[0], (double)thr[1], strong_share_cv,
            target_met);
    if (o.cv_only) {
        printf("CV APGR (%d x %d folds grouped by subject / question; selection, MMLU, "
               "MT-Bench):\n",
               TR_CV_REPEATS, TR_FOLDS);
        for (size_t g = 0; g < NG; g++)
            printf("  %-40s %.4f %.4f %.4f%s\n", tr_grid[g].name, cv_apgr[g],
                   cv_fam[g][TR_FAM_MMLU], cv_fam[g][TR_FAM_MT_BENCH],
                   g == chosen ? "  chosen" : "");
        printf("operating curve of the chosen head (share, threshold, pooled ratio, fold q%.0f):\n",
               100.0 * (1.0 - o.confidence));
        for (int p = 0; p < TR_OP_POINTS; p += 10)
            printf("  %.3f %.4f %.4f %.4f\n", (double)oc->share[p], (double)oc->thr[p],
                   (double)oc->ratio[p], (double)oc->low[p]);
        printf("quality target %.3f: t1 %.4f t2 %.4f, CV strong share %.3f%s\n", o.quality_target,
               (double)thr[0], (double)thr[1], strong_share_cv, target_met ? "" : " (not met)");
        rc = 0;
        goto out;
    }

    /* final fit on all training subjects; held-out evaluation */
    if ((st = tr_fit(&tr_grid[chosen], &d, X, y + (size_t)tr_grid[chosen].target * d.n, train,
                     ntr, o.seed, &best)) != SC_OK)
        goto fail_st;
    if ((st = tr_predict(&best, X, test, nte, scores)) != SC_OK)
        goto fail_st;
    double curve[TR_CURVE_POINTS], quality[TR_CURVE_POINTS];
    double apgr = tr_apgr_rows(&d, test, nte, scores, curve, quality);
    double qw = 0.0, qs = 0.0, pos_te = 0.0;
    for (size_t k = 0; k < nte; k++) {
        qw += d.items[test[k]].wq;
        qs += d.items[test[k]].sq;
        pos_te += d.items[test[k]].y;
    }
    qw /= (double)nte;
    qs /= (double)nte;
    /* checks of the metric: random scores (≈ 0.5) and the label itself (the best a score can do) */
    float *rnd = sorted; /* scratch */
    double rnd_sum = 0.0, rnd_one = 0.0;
    uint64_t rr = o.seed + 1000;
    for (int t = 0; t < TR_RANDOM_SEEDS; t++) {
        for (size_t k = 0; k < nte; k++)
            rnd[k] = (float)tr_rng_unit(&rr);
        double a = tr_apgr_rows(&d, test, nte, rnd, NULL, NULL);
        rnd_sum += a;
        if (t == 0)
            rnd_one = a;
    }
    for (size_t k = 0; k < nte; k++)
        rnd[k] = d.items[test[k]].sq - d.items[test[k]].wq;
    double oracle = tr_apgr_rows(&d, test, nte, rnd, NULL, NULL);
    sc_info("router.heldout",
            "apgr=%.4f random_mean=%.4f oracle=%.4f weak_q=%.4f strong_q=%.4f n=%zu", apgr,
            rnd_sum / TR_RANDOM_SEEDS, oracle, qw, qs, nte);

    /* MT-Bench within the family: the chosen head's question-grouped CV scores (trained on the
     * other folds of both families), per repeat, averaged; and the same head fitted on MT-Bench
     * alone (CV inside MT-Bench) */
    tr_eval_t mt_cv = {0};
    double mt_only_cv[TR_NFAMILIES] = {NAN, NAN};
    size_t nmt = tr_rows_of_family(&d, train, ntr, TR_FAM_MT_BENCH, rows_a);
    if (nmt > 0) {
        for (int r = 0; r < TR_CV_REPEATS; r++) {
            tr_eval_t e;
            for (size_t k = 0; k < nmt; k++)
                scores[k] = oof[(chosen * TR_CV_REPEATS + (size_t)r) * d.n + rows_a[k]];
            eval_rows(&d, rows_a, nmt, scores, o.seed, sorted, &e);
            mt_cv.apgr += e.apgr / TR_CV_REPEATS;
            mt_cv.rnd = e.rnd;
            mt_cv.qw = e.qw;
            mt_cv.qs = e.qs;
            mt_cv.n = e.n;
            for (int p = 0; p < TR_CURVE_POINTS; p++) {
                mt_cv.curve[p] += e.curve[p] / TR_CV_REPEATS;
                mt_cv.quality[p] += e.quality[p] / TR_CV_REPEATS;
            }
        }
        if ((st = tr_cross_validate(&tr_grid[chosen], &d, X,
                                    y + (size_t)tr_grid[chosen].target * d.n, rows_a, nmt, o.seed,
                                    fold_tr, fold_te, scores, oof_mt, fold_mt, mt_only_cv)) !=
            SC_OK)
            goto fail_st;
        sc_info("router.mt_bench_cv", "apgr=%.4f random=%.4f mt_only_cv=%.4f n=%zu", mt_cv.apgr,
                mt_cv.rnd, mt_only_cv[TR_FAM_MT_BENCH], nmt);
    }
    /* leave one family out, both directions, for every head of the grid */
    for (size_t g = 0; g < NG; g++)
        for (int f = 0; f < TR_NFAMILIES; f++)
            lofo_e[g][f].apgr = lofo_e[g][f].rnd = NAN; /* stays so with one family */
    for (size_t g = 0; g < NG && fam_rows[TR_FAM_MT_BENCH] > 0; g++)
        for (int f = 0; f < TR_NFAMILIES; f++) {
            if ((st = lofo(&tr_grid[g], &d, y + (size_t)tr_grid[g].target * d.n, f, o.seed, Xl,
                           rows_a, rows_b, scores, sorted, &lofo_e[g][f])) != SC_OK)
                goto fail_st;
            sc_info("router.lofo", "config=%s train=%s apgr=%.4f random=%.4f outside=%zu/%zu",
                    tr_grid[g].name, tr_family_names[f], lofo_e[g][f].apgr, lofo_e[g][f].rnd,
                    lofo_e[g][f].outside, lofo_e[g][f].n);
        }
    /* scores[] was scratch above: the held-out scores again */
    if ((st = tr_predict(&best, X, test, nte, scores)) != SC_OK)
        goto fail_st;
    /* the domain: each signal's range over the training prompts */
    float dom_lo[SC_ROUTER_NSIGNALS], dom_hi[SC_ROUTER_NSIGNALS];
    for (int j = 0; j < SC_ROUTER_NSIGNALS; j++) {
        dom_lo[j] = INFINITY;
        dom_hi[j] = -INFINITY;
        for (size_t k = 0; k < ntr; k++) {
            float v = d.feat[train[k] * F + SC_EMBED_DIM + (size_t)j];
            dom_lo[j] = v < dom_lo[j] ? v : dom_lo[j];
            dom_hi[j] = v > dom_hi[j] ? v : dom_hi[j];
        }
    }
    te_in_dom = malloc(nte ? nte : 1);
    if (!te_in_dom)
        goto nomem;
    size_t te_outside = 0;
    size_t tier_n[3] = {0, 0, 0};
    for (size_t k = 0; k < nte; k++) {
        const float *sg = d.feat + test[k] * F + SC_EMBED_DIM;
        te_in_dom[k] = 1;
        for (int j = 0; j < SC_ROUTER_NSIGNALS; j++)
            te_in_dom[k] &= sg[j] >= dom_lo[j] && sg[j] <= dom_hi[j];
        te_outside += !te_in_dom[k];
        /* outside the domain: the cheapest tier (scrimp serve's default router.outside_tier) */
        tier_n[te_in_dom[k] ? (scores[k] >= thr[0]) + (scores[k] >= thr[1]) : 0]++;
    }
    /* held-out quality ratio at the operating point and at other targets (evaluation only) */
    static const double op_targets[] = {0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98};
    enum { NOP = SC_ARRAY_LEN(op_targets) };
    double op_share[NOP], op_cv_ratio[NOP], op_cv_low[NOP], op_te_ratio[NOP], op_te_share[NOP];
    float op_t2[NOP];
    for (size_t k = 0; k < NOP; k++) {
        float t[2];
        int ok = 0;
        sc_router_pick_thresholds(oc->thr, oc->share, oc->low, TR_OP_POINTS, op_targets[k],
                                  o.lite_share, t, &op_share[k], &ok);
        int p = 0;
        while (p < TR_OP_POINTS - 1 && oc->thr[p] != t[1])
            p++;
        op_t2[k] = t[1];
        op_cv_ratio[k] = oc->ratio[p];
        op_cv_low[k] = oc->low[p];
        tr_ratio_at(&d, test, nte, scores, t[1], te_in_dom, &op_te_ratio[k], &op_te_share[k]);
    }
    double te_ratio = 0.0, te_share = 0.0;
    tr_ratio_at(&d, test, nte, scores, thr[1], te_in_dom, &te_ratio, &te_share);
    sc_info("router.heldout_operating_point", "quality_ratio=%.4f strong_share=%.3f", te_ratio,
            te_share);

    if ((st = sc_router_new(mean, std, best.hidden, best.w1, best.b1, best.w2, best.b2, thr, 2,
                            tr_tier_names, &router)) != SC_OK ||
        (st = sc_router_set_domain(router, dom_lo, dom_hi)) != SC_OK)
        goto fail_st;
    /* the library's scoring path must agree with training's (same head, same features) */
    {
        float a[4], b[4];
        size_t m = nte < 4 ? nte : 4;
        float sig[4 * SC_ROUTER_NSIGNALS], emb[4 * SC_EMBED_DIM];
        for (size_t k = 0; k < m; k++) {
            memcpy(emb + k * SC_EMBED_DIM, d.feat + test[k] * F, sizeof(float) * SC_EMBED_DIM);
            memcpy(sig + k * SC_ROUTER_NSIGNALS, d.feat + test[k] * F + SC_EMBED_DIM,
                   sizeof(float) * SC_ROUTER_NSIGNALS);
            b[k] = scores[k];
        }
        sc_router_score_batch(router, emb, sig, m, a);
        for (size_t k = 0; k < m; k++)
            if (fabsf(a[k] - b[k]) > 1e-4f) {
                snprintf(err, sizeof err, "library score %g != training score %g", (double)a[k],
                         (double)b[k]);
                goto fail;
            }
    }
    tr_speed_t sp = {0, 0, 0};
    if ((st = tr_measure_speed(&d, test, nte, router, enc, &sp)) != SC_OK)
        goto fail_st;
    sc_info("router.speed", "head_ms=%.5f signals_ms=%.5f embed_head_ms=%.3f", sp.head_ms,
            sp.signals_ms, sp.embed_head_ms);

    /* held-out / training subject names, sorted */
    const char *te_names[TR_MAX_SUBJECTS], *tr_names[TR_MAX_SUBJECTS];
    int nte_s = 0, ntr_s = 0;
    for (int s = 0; s < d.nsubj; s++) {
        if (is_test_subj[s])
            te_names[nte_s++] = d.subjects[s];
        else if (d.subj_family[s] == TR_FAM_MMLU) /* MT-Bench questions: all training */
            tr_names[ntr_s++] = d.subjects[s];
    }
    qsort(te_names, (size_t)nte_s, sizeof *te_names, cmp_str);
    qsort(tr_names, (size_t)ntr_s, sizeof *tr_names, cmp_str);

    /* ---- router.json ---- */
    char rule[1024];
    snprintf(rule, sizeof rule,
             "operating point for quality target %.3f: t2 = the highest threshold on the "
             "operating curve (subject-grouped CV scores of the training subjects) from which on "
             "quality >= %.3f x all-strong quality in %.0f%% of the CV folds%s (strong share "
             "%.3f of the CV prompts); t1: the cheapest tier takes the easiest %.0f%% of the "
             "others. serve recomputes both from the curve for router.quality_target and "
             "router.lite_share",
             o.quality_target, o.quality_target, 100.0 * o.confidence,
             target_met ? "" : " (not reachable: everything strong)", strong_share_cv,
             100.0 * o.lite_share);
    root = json_object(); /* new; every *_new below steals its argument */
    json_t *sigs = json_array(), *feat = json_object(), *head = json_object();
    json_t *tr = json_object(), *met = json_object(), *cv = json_array(), *cur = json_array();
    json_t *dirs = json_array(), *jte = json_array(), *jtr = json_array();
    json_t *tiers = json_array();
    if (!root || !sigs || !feat || !head || !tr || !met || !cv || !cur || !dirs || !jte || !jtr ||
        !tiers) {
        json_decref(sigs), json_decref(feat), json_decref(head), json_decref(tr);
        json_decref(met), json_decref(cv), json_decref(cur), json_decref(dirs);
        json_decref(jte), json_decref(jtr), json_decref(tiers);
        goto nomem;
    }
    for (int i = 0; i < SC_ROUTER_NSIGNALS; i++)
        json_array_append_new(sigs, json_string(sc_router_signal_name(i)));
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(feat, "embedding", json_integer(SC_EMBED_DIM));
    json_object_set_new(feat, "encoder", json_string("all-MiniLM-L6-v2 (mean-pooled, L2)"));
    json_object_set_new(feat, "signals", sigs);
    json_object_set_new(root, "features", feat);
    for (int k = 0; k < 3; k++)
        json_array_append_new(tiers, json_string(tr_tier_names[k]));
    json_object_set_new(root, "tiers", tiers);
    json_object_set_new(root, "thresholds", tr_json_floats_new(thr, 2));
    json_object_set_new(root, "thresholds_rule", json_string(rule));
    json_object_set_new(root, "quality_target", json_real(o.quality_target));
    json_object_set_new(root, "lite_share", json_real(o.lite_share));
    json_t *jop = json_object();
    if (!jop)
        goto nomem;
    json_object_set_new(jop, "confidence", json_real(o.confidence));
    json_object_set_new(jop, "from",
                        json_string("the chosen head's scores in 3 x 5-fold subject-grouped CV on "
                                    "the training subjects (repeats pooled); quality_ratio: "
                                    "pooled; quality_ratio_low: the (1 - confidence) quantile "
                                    "over the 15 folds"));
    json_object_set_new(jop, "share", tr_json_floats_new(oc->share, TR_OP_POINTS));
    json_object_set_new(jop, "threshold", tr_json_floats_new(oc->thr, TR_OP_POINTS));
    json_object_set_new(jop, "quality_ratio", tr_json_floats_new(oc->ratio, TR_OP_POINTS));
    json_object_set_new(jop, "quality_ratio_low", tr_json_floats_new(oc->low, TR_OP_POINTS));
    json_object_set_new(root, "operating_curve", jop);
    json_object_set_new(
        root, "domain",
        json_pack("{s:s,s:o,s:o}", "rule",
                  "each signal's range over the training prompts: a prompt with a signal outside "
                  "it is unlike every prompt the head was fitted on, and scrimp serve routes it "
                  "to router.outside_tier",
                  "signals_min", tr_json_floats_new(dom_lo, SC_ROUTER_NSIGNALS), "signals_max",
                  tr_json_floats_new(dom_hi, SC_ROUTER_NSIGNALS)));
    for (int k = 0; k < o.ndirs; k++)
        json_array_append_new(dirs, json_string(o.dirs[k]));
    for (int k = 0; k < nte_s; k++)
        json_array_append_new(jte, json_string(te_names[k]));
    for (int k = 0; k < ntr_s; k++)
        json_array_append_new(jtr, json_string(tr_names[k]));
    for (size_t g = 0; g < NG; g++)
        json_array_append_new(
            cv,
            json_pack("{s:s,s:s,s:s,s:i,s:f,s:f,s:f,s:i,s:f,s:f,s:f,s:f}", "name",
                      tr_grid[g].name, "target", tr_target_names[tr_grid[g].target], "inputs",
                      tr_feat_names[tr_grid[g].feat], "hidden", tr_grid[g].hidden, "l2",
                      (double)tr_grid[g].l2, "l2_signals",
                      (double)(tr_grid[g].l2_sig > 0.0f ? tr_grid[g].l2_sig : 1.0f), "lr", (double)tr_grid[g].lr, "epochs",
                      tr_grid[g].epochs, "mt_bench_weight",
                      (double)(tr_grid[g].fam_w > 0.0f ? tr_grid[g].fam_w : 1.0f), "cv_apgr",
                      cv_apgr[g], "cv_apgr_mmlu", cv_fam[g][TR_FAM_MMLU], "cv_apgr_mt_bench",
                      cv_fam[g][TR_FAM_MT_BENCH]));
    json_object_set_new(tr, "command", json_string(o.cmdline));
    json_object_set_new(tr, "data", dirs);
    char label[512];
    snprintf(label, sizeof label,
             "target %s: %s; weak = " TR_WEAK_COL ", strong = " TR_STRONG_COL
             "; contaminated prompts dropped",
             tr_target_names[tr_grid[chosen].target],
             tr_grid[chosen].target == TR_TARGET_GAIN3
                 ? "(strong right - weak right + 1) / 2, so the score is (1 + the expected gain "
                   "of the strong model's answer) / 2"
             : tr_grid[chosen].target == TR_TARGET_SIGN
                 ? "(sign(strong quality - weak quality) + 1) / 2: MMLU (strong right - weak "
                   "right + 1) / 2, MT-Bench 1 / 0.5 / 0 when the judge scored the strong "
                   "model's answer higher / the same / lower"
             : tr_grid[chosen].target == TR_TARGET_GAIN
                 ? "1 when the weak model was wrong and the strong one right"
                 : "1 when the weak model was wrong");
    json_object_set_new(tr, "label", json_string(label));
    json_object_set_new(tr, "inputs", json_string(tr_feat_names[tr_grid[chosen].feat]));
    json_object_set_new(tr, "prompts", json_integer((json_int_t)d.n));
    json_object_set_new(tr, "prompts_mmlu", json_integer((json_int_t)fam_rows[TR_FAM_MMLU]));
    json_object_set_new(tr, "prompts_mt_bench",
                        json_integer((json_int_t)fam_rows[TR_FAM_MT_BENCH]));
    json_object_set_new(tr, "contaminated_dropped", json_integer((json_int_t)d.dropped));
    json_object_set_new(tr, "rows_train", json_integer((json_int_t)ntr));
    json_object_set_new(tr, "rows_heldout", json_integer((json_int_t)nte));
    json_object_set_new(tr, "positive_share_train", json_real((double)npos_tr / (double)ntr));
    json_object_set_new(tr, "holdout_frac", json_real(o.holdout_frac));
    json_object_set_new(tr, "seed", json_integer((json_int_t)o.seed));
    json_object_set_new(tr, "heldout_subjects", jte);
    json_object_set_new(tr, "train_subjects", jtr);
    json_object_set_new(tr, "selection",
                        json_string("3 × 5-fold cross-validation grouped by subject (MMLU) / "
                                    "question (MT-Bench), inside the training subjects: the best "
                                    "MMLU CV APGR among the heads whose MT-Bench CV APGR meets "
                                    "its target; the held-out subjects are scored once"));
    json_object_set_new(tr, "optimizer",
                        json_string("Adam, minibatch 128, L2 on weights, fixed epochs; 0/1 "
                                    "targets: classes weighted to equal total weight"));
    json_object_set_new(tr, "cv", cv);
    json_object_set_new(tr, "chosen", json_string(tr_grid[chosen].name));
    for (int p = 0; p < TR_CURVE_POINTS; p++)
        json_array_append_new(cur,
                              json_pack("{s:f,s:f,s:f}", "cost", (double)p / (TR_CURVE_POINTS - 1),
                                        "pgr", curve[p], "quality", quality[p]));
    json_object_set_new(met, "apgr_heldout", json_real(apgr));
    json_object_set_new(met, "apgr_cv", json_real(cv_apgr[chosen]));
    json_object_set_new(met, "apgr_cv_mmlu", json_real(cv_fam[chosen][TR_FAM_MMLU]));
    if (nmt > 0) {
        json_object_set_new(met, "apgr_cv_mt_bench", json_real(mt_cv.apgr));
        json_object_set_new(met, "apgr_random_mt_bench", json_real(mt_cv.rnd));
        json_object_set_new(met, "apgr_cv_mt_bench_trained_on_mt_bench_alone",
                            json_real(mt_only_cv[TR_FAM_MT_BENCH]));
        json_object_set_new(
            met, "apgr_lofo",
            json_pack("{s:f,s:f,s:f,s:f}", "train_mmlu_score_mt_bench",
                      lofo_e[chosen][TR_FAM_MMLU].apgr, "random_mt_bench",
                      lofo_e[chosen][TR_FAM_MMLU].rnd, "train_mt_bench_score_mmlu",
                      lofo_e[chosen][TR_FAM_MT_BENCH].apgr, "random_mmlu",
                      lofo_e[chosen][TR_FAM_MT_BENCH].rnd));
    }
    json_object_set_new(met, "apgr_random_heldout_mean", json_real(rnd_sum / TR_RANDOM_SEEDS));
    json_object_set_new(met, "apgr_oracle_heldout", json_real(oracle));
    json_object_set_new(met, "weak_quality_heldout", json_real(qw));
    json_object_set_new(met, "strong_quality_heldout", json_real(qs));
    json_object_set_new(met, "positive_share_heldout", json_real(pos_te / (double)nte));
    json_object_set_new(met, "tier_share_heldout",
                        json_pack("{s:f,s:f,s:f}", tr_tier_names[0],
                                  (double)tier_n[0] / (double)nte, tr_tier_names[1],
                                  (double)tier_n[1] / (double)nte, tr_tier_names[2],
                                  (double)tier_n[2] / (double)nte));
    json_object_set_new(met, "curve_heldout", cur);
    json_object_set_new(met, "quality_ratio_heldout", json_real(te_ratio));
    json_object_set_new(met, "outside_domain_share_heldout",
                        json_real((double)te_outside / (double)nte));
    json_object_set_new(met, "strong_share_heldout", json_real(te_share));
    json_object_set_new(met, "strong_share_cv", json_real(strong_share_cv));
    json_object_set_new(met, "cpu_ms_per_prompt_head", json_real(sp.head_ms));
    json_object_set_new(met, "cpu_ms_per_prompt_signals", json_real(sp.signals_ms));
    json_object_set_new(met, "cpu_ms_per_prompt_embed_and_head", json_real(sp.embed_head_ms));
    json_object_set_new(root, "training", tr);
    json_object_set_new(root, "metrics", met);
    json_object_set_new(head, "type", json_string(best.hidden ? "mlp" : "logistic"));
    json_object_set_new(head, "hidden", json_integer(best.hidden));
    if (best.hidden) {
        json_object_set_new(head, "w1", tr_json_floats_new(best.w1, (size_t)best.hidden * F));
        json_object_set_new(head, "b1", tr_json_floats_new(best.b1, (size_t)best.hidden));
    }
    json_object_set_new(head, "w2",
                        tr_json_floats_new(best.w2, best.hidden ? (size_t)best.hidden : F));
    json_object_set_new(head, "b2", json_real((double)best.b2));
    json_object_set_new(root, "mean", tr_json_floats_new(mean, F));
    json_object_set_new(root, "std", tr_json_floats_new(std, F));
    json_object_set_new(root, "head", head);
    if (tr_write_json_lines(root, o.out) != 0) {
        snprintf(err, sizeof err, "%s: cannot write", o.out);
        goto fail;
    }

    /* ---- bench/results/router.md + router-curve.svg ---- */
    char path[TR_PATH], svg[TR_PATH], host[256], date[64];
    snprintf(path, sizeof path, "%s/router.md", o.report_dir);
    snprintf(svg, sizeof svg, "%s/router-curve.svg", o.report_dir);
    tr_make_parent_dirs(path);
    if (tr_write_svg(svg, quality, qw, qs, apgr) != 0) {
        snprintf(err, sizeof err, "%s: cannot write", svg);
        goto fail;
    }
    tr_machine_name(host, sizeof host);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    FILE *md = fopen(path, "w");
    if (!md) {
        snprintf(err, sizeof err, "%s: %s", path, strerror(errno));
        goto fail;
    }
    const tr_cfg_t *ch = &tr_grid[chosen];
    fprintf(md,
            "# Router: quality vs cost on held-out MMLU subjects%s\n\n"
            "Made by `%s` on %s (%ld CPU cores), %s. Weights: `%s`%s.\n\n"
            "The router scores each prompt for how much it gains from the strong model: the weak "
            "model is Mixtral-8x7B, the strong one GPT-4-1106, with RouteLLM's recorded "
            "outcomes. The head chosen here fits %s. Sending the highest-scoring share of "
            "prompts to the strong model traces the curve below; APGR is the area under the "
            "performance gap recovered, (quality − weak) / (strong − weak), over cost 0..1 "
            "(random routing: 0.5).\n\n",
            nmt ? ", MT-Bench questions and across task families" : "", o.cmdline, host,
            sysconf(_SC_NPROCESSORS_ONLN), date, o.out,
            strcmp(o.out, TR_DEFAULT_OUT) == 0
                ? ""
                : " (not the shipped " TR_DEFAULT_OUT ": this report describes the file above)",
            ch->target == TR_TARGET_GAIN3
                ? "(strong right − weak right + 1) / 2 ∈ {0, ½, 1}, so the score estimates "
                  "(1 + the expected gain in accuracy of the strong model's answer) / 2 and it "
                  "also learns where the strong model does worse than the weak one (MT-Bench: "
                  "the same with the gain (strong judge score − weak) / 9, see *Per task "
                  "family*)"
            : ch->target == TR_TARGET_SIGN
                ? "(sign(strong quality − weak quality) + 1) / 2 ∈ {0, ½, 1}: on MMLU (strong "
                  "right − weak right + 1) / 2, so the score estimates (1 + the expected gain in "
                  "accuracy of the strong model's answer) / 2; on MT-Bench 1, ½ or 0 when GPT-4 "
                  "judged the strong model's answer better, equal or worse (which one wins, not "
                  "by how much: a judge gain / 9 stays near 0 and would hardly move the head)"
            : ch->target == TR_TARGET_GAIN
                ? "the probability that the prompt *needs the strong model* (the weak model was "
                  "wrong and the strong one right)"
                : "the probability that the weak model is wrong");
    fprintf(md,
            "| | value |\n|---|---|\n"
            "| **APGR, held-out subjects** | **%.4f** |\n"
            "| APGR of random routing (mean of %d seeds; first seed) | %.4f (%.4f) |\n"
            "| APGR of the label itself (upper bound) | %.4f |\n"
            "| APGR, subject-grouped %d × %d-fold CV on training subjects | %.4f |\n"
            "| mean CV APGR of the families in the data | %.4f |\n"
            "| head chosen by CV | %s (target %s; inputs: %s) |\n"
            "| held-out prompts / subjects | %zu / %d |\n"
            "| training prompts / subjects | %zu / %d |\n"
            "| contaminated prompts dropped | %zu |\n"
            "| weak / strong accuracy (held-out) | %.4f / %.4f |\n"
            "| share needing the strong model (held-out) | %.4f |\n\n",
            apgr, TR_RANDOM_SEEDS, rnd_sum / TR_RANDOM_SEEDS, rnd_one, oracle, TR_CV_REPEATS,
            TR_FOLDS, cv_fam[chosen][TR_FAM_MMLU], cv_apgr[chosen], ch->name,
            tr_target_names[ch->target],
            tr_feat_names[ch->feat], nte, nte_s, ntr, ntr_s, d.dropped, qw, qs,
            pos_te / (double)nte);
    fputs("## Quality/cost curve (held-out)\n\n![quality vs cost](router-curve.svg)\n\n"
          "| cost (share to strong) | quality | PGR | random PGR |\n|---|---|---|---|\n",
          md);
    for (int p = 0; p < TR_CURVE_POINTS; p++)
        fprintf(md, "| %.2f | %.4f | %.4f | %.2f |\n", (double)p / (TR_CURVE_POINTS - 1),
                quality[p], curve[p], (double)p / (TR_CURVE_POINTS - 1));
    if (nmt > 0) {
        const tr_eval_t *l0 = &lofo_e[chosen][TR_FAM_MMLU], *l1 = &lofo_e[chosen][TR_FAM_MT_BENCH];
        fprintf(md,
                "\n## Per task family\n\n"
                "Two families from the RouteLLM study (`../shared/data/routing/`): MMLU (multiple "
                "choice; quality = right 1 / wrong 0) and MT-Bench (open two-turn chat; quality = "
                "(GPT-4 judge score − 1) / 9 of the chosen model's answer, so all-weak = 0 and "
                "all-strong = 1 in PGR as for MMLU). An MT-Bench prompt is one (question, turn); "
                "the second turn is routed with the first turn and the weak model's first answer "
                "in its text (`User: … Assistant: … User: …`), the conversation a router sees "
                "when the first turn went to the cheap model; its gain is (strong score − weak "
                "score) / 9 ∈ [−1, 1], the head's target (gain + 1) / 2 as for MMLU's "
                "{0, ½, 1}. Splits keep a question's two turns together. Contaminated prompts "
                "are left out (MT-Bench: the whole question). Caveats: the MT-Bench CV figure is "
                "what the selection holds to its target (the head with the best MMLU CV "
                "among those with MT-Bench CV >= %.2f), so it is optimistic (144 prompts); the encoder reads the first 256 tokens of "
                "a prompt, so a second turn's embedding mostly sees the first turn and the start "
                "of the answer (its signals see the whole text).\n\n"
                "| family | evaluation | prompts | APGR | random routing (mean of %d seeds) | "
                "target |\n|---|---|---|---|---|---|\n"
                "| MMLU | held-out subjects (%d), head fitted on the training subjects + all "
                "MT-Bench | %zu | %.4f | %.4f | ≥ %.2f: %s |\n"
                "| MMLU | subject-grouped %d × %d-fold CV on the training subjects | %zu | %.4f | — "
                "| |\n"
                "| MT-Bench | question-grouped %d × %d-fold CV, head fitted on the other folds + "
                "the MMLU training subjects | %zu | %.4f | %.4f | ≥ %.2f: %s |\n"
                "| MT-Bench | question-grouped %d × %d-fold CV, fitted on MT-Bench alone | %zu | "
                "%.4f | %.4f | |\n"
                "| MT-Bench | leave-one-family-out: fitted on all MMLU | %zu | %.4f | %.4f | "
                "reported |\n"
                "| MMLU | leave-one-family-out: fitted on all MT-Bench | %zu | %.4f | %.4f | "
                "reported |\n\n",
                TR_TARGET_APGR_MT, TR_RANDOM_SEEDS, nte_s, nte, apgr, rnd_sum / TR_RANDOM_SEEDS,
                TR_TARGET_APGR,
                apgr >= TR_TARGET_APGR ? "met" : "**not met**", TR_CV_REPEATS, TR_FOLDS,
                fam_rows[TR_FAM_MMLU] - nte, cv_fam[chosen][TR_FAM_MMLU], TR_CV_REPEATS,
                TR_FOLDS, nmt, mt_cv.apgr, mt_cv.rnd, TR_TARGET_APGR_MT,
                mt_cv.apgr >= TR_TARGET_APGR_MT ? "met" : "**not met**", TR_CV_REPEATS,
                TR_FOLDS, nmt, mt_only_cv[TR_FAM_MT_BENCH], mt_cv.rnd, l0->n, l0->apgr, l0->rnd,
                l1->n, l1->apgr, l1->rnd);
        fprintf(md,
                "**Domain across families.** The box of the signals of one family's prompts: "
                "%zu of %zu MT-Bench prompts lie outside the MMLU prompts' box, %zu of %zu MMLU "
                "prompts outside the MT-Bench prompts' box. The weights file's box is that of "
                "all its training prompts (MMLU training subjects and MT-Bench), so it is wider "
                "than an MMLU-only router's: an MMLU-only router's box keeps out every MT-Bench "
                "prompt (free-form chat has no answer options), and scrimp serve sends such "
                "prompts to router.outside_tier.\n\n",
                l0->outside, l0->n, l1->outside, l1->n);
        fprintf(md, "### MT-Bench, question-grouped CV (mean of the %d repeats' curves)\n\n"
                    "quality: mean (judge score − 1) / 9; all-weak %.4f, all-strong %.4f "
                    "(judge scores %.2f / %.2f).\n\n",
                TR_CV_REPEATS, mt_cv.qw, mt_cv.qs, 1.0 + 9.0 * mt_cv.qw, 1.0 + 9.0 * mt_cv.qs);
        md_curve(md, &mt_cv);
        fprintf(md, "\n### Leave one family out: fitted on MMLU, scored on MT-Bench\n\n"
                    "all-weak %.4f, all-strong %.4f.\n\n",
                l0->qw, l0->qs);
        md_curve(md, l0);
        fprintf(md, "\n### Leave one family out: fitted on MT-Bench, scored on MMLU\n\n"
                    "all-weak %.4f, all-strong %.4f.\n\n",
                l1->qw, l1->qs);
        md_curve(md, l1);
    }
    fprintf(md,
            "\n## Model selection (CV inside the training subjects)\n\n"
            "Every candidate is scored by the mean APGR over %d × %d subject-grouped folds of the "
            "training subjects (the same folds for all); the best is refitted on all training "
            "subjects and scored once on the held-out subjects. Targets: *needs-strong* = 1 when "
            "the weak model was wrong and the strong one right (classes weighted to equal "
            "weight); *gain* = (strong right − weak right + 1) / 2 (unweighted). Masked inputs "
            "keep weight 0, so every head has the same shape. With MT-Bench in the data the folds "
            "hold MT-Bench questions too (each family dealt round the folds on its own); a "
            "head's MMLU figure is the mean APGR of the folds' MMLU rows, its MT-Bench figure the "
            "APGR of the pooled out-of-fold MT-Bench scores (a fold holds ~30 of them), averaged "
            "over the repeats. The chosen head is the one with the best MMLU CV APGR among "
            "those whose MT-Bench CV APGR meets its target (%.2f; the best mean of the two when "
            "none does): each family is held to its own target, and the held-out subjects play "
            "no part. *MT weight*: the loss weight of an MT-Bench row (an MMLU row: 1); *L2 "
            "signals*: the L2 on the signals' weights as a multiple of the head's. *gain-sign*: "
            "(sign(strong − weak) + 1) / 2, MMLU's gain target, on MT-Bench which answer the "
            "judge preferred. LOFO: the head fitted on all of one "
            "family (standardised on it alone) and scored on all of the other.\n\n"
            "| head | target | inputs | hidden | L2 | L2 signals | lr | epochs | MT weight | CV "
            "APGR MMLU | CV APGR MT-Bench | mean | LOFO MMLU → MT-Bench | LOFO MT-Bench → MMLU "
            "|\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
            TR_CV_REPEATS, TR_FOLDS, TR_TARGET_APGR_MT);
    for (size_t g = 0; g < NG; g++)
        fprintf(md,
                "| %s%s | %s | %s | %d | %g | %g | %g | %d | %g | %.4f | %.4f | %.4f | %.4f | "
                "%.4f |\n",
                tr_grid[g].name, g == chosen ? " (chosen)" : "",
                tr_target_names[tr_grid[g].target], tr_feat_names[tr_grid[g].feat],
                tr_grid[g].hidden, (double)tr_grid[g].l2,
                (double)(tr_grid[g].l2_sig > 0.0f ? tr_grid[g].l2_sig : 1.0f),
                (double)tr_grid[g].lr,
                tr_grid[g].epochs, (double)(tr_grid[g].fam_w > 0.0f ? tr_grid[g].fam_w : 1.0f),
                cv_fam[g][TR_FAM_MMLU], cv_fam[g][TR_FAM_MT_BENCH], cv_apgr[g],
                lofo_e[g][TR_FAM_MMLU].apgr, lofo_e[g][TR_FAM_MT_BENCH].apgr);
    fprintf(md,
            "\n## Operating point (tiers)\n\n"
            "The strong-tier threshold comes from a quality target, not a fixed share: the "
            "chosen head's CV scores of the training subjects (%d repeats × %d subject-grouped "
            "folds, pooled) give an operating curve (%d thresholds, stored in the weights file as "
            "`operating_curve`) with, at each threshold, the quality ratio (accuracy when prompts "
            "at or above it get the strong model's answer and the others the weak one's, over "
            "the all-strong accuracy) pooled and as reached by %.0f%% of the folds (its %.0f%% "
            "quantile: subjects differ, so the pooled ratio alone would be met only about half "
            "the time). The threshold for a target is the highest one from which on the fold "
            "quantile stays at or above the target. `scrimp serve` recomputes it from the curve "
            "for `router.quality_target` (default 0.95) and `router.lite_share` (default 0.5: "
            "the easiest half of the prompts kept off the strong tier go to the cheapest "
            "one).\n\n"
            "%s. Thresholds t1 = %.4f, t2 = %.4f: score < t1 → %s, < t2 → %s, else %s. Held-out "
            "shares: %.3f / %.3f / %.3f; held-out quality ratio %.4f (target %.3f).\n\n"
            "| quality target | CV strong share | t2 | CV quality ratio (pooled) | reached by "
            "%.0f%% of CV folds | held-out strong share | held-out quality ratio |\n"
            "|---|---|---|---|---|---|---|\n",
            TR_CV_REPEATS, TR_FOLDS, TR_OP_POINTS, 100.0 * o.confidence,
            100.0 * (1.0 - o.confidence), rule, (double)thr[0], (double)thr[1], tr_tier_names[0],
            tr_tier_names[1], tr_tier_names[2], (double)tier_n[0] / (double)nte,
            (double)tier_n[1] / (double)nte, (double)tier_n[2] / (double)nte, te_ratio,
            o.quality_target, 100.0 * o.confidence);
    for (size_t k = 0; k < NOP; k++)
        fprintf(md, "| %.2f%s | %.3f | %.4f | %.4f | %.4f | %.3f | %.4f |\n", op_targets[k],
                fabs(op_targets[k] - o.quality_target) < 1e-9 ? " (default)" : "", op_share[k],
                (double)op_t2[k], op_cv_ratio[k], op_cv_low[k], op_te_share[k], op_te_ratio[k]);
    fprintf(md,
            "\n**Domain.** The weights file also keeps each signal's range over the training "
            "prompts (`domain`). A prompt with a signal outside it (no answer options, one line, "
            "far longer or shorter than any training prompt, …) is unlike every prompt the head "
            "was fitted on, so its score says nothing: `scrimp serve` routes it to "
            "`router.outside_tier` (default `lite`: the cheapest tier first, the cascade behind "
            "it). Held-out prompts outside the box: %zu of %zu (%.2f%%); they are counted in the "
            "cheapest tier above (shares and quality ratios), not in the APGR, which ranks the "
            "scores alone.\n",
            te_outside, nte, 100.0 * (double)te_outside / (double)nte);
    fprintf(md,
            "\n## CPU scoring speed (batches of %d held-out prompts)\n\n"
            "| stage | ms per prompt |\n|---|---|\n"
            "| head alone (standardise + %s, `sc_router_score_batch`, %d reps) | %.5f |\n"
            "| signals (token count + text signals) | %.5f |\n"
            "| signals + head (the router's own work, target <= %.2f) | %.5f |\n"
            "| embedding (all-MiniLM-L6-v2, CPU) + signals + head | %.3f |\n\n"
            "The embedding is the shared encoder stage of the pipeline (computed once per "
            "prompt for the cache as well); on the GPU it is `scrimp embed --backend cuda`.\n\n",
            TR_SPEED_BATCH, ch->name, TR_SPEED_REPS, sp.head_ms, sp.signals_ms, TR_TARGET_MS,
            sp.head_ms + sp.signals_ms, sp.embed_head_ms);
    fprintf(md,
            "## Status against the target\n\n"
            "- Held-out APGR %.4f against the target %.2f: %s. Subject-grouped CV on the "
            "training subjects (%d fold assignments × %d folds) gives %.4f for the same head; "
            "single groups of subjects vary widely around it, so the held-out number depends on "
            "which subjects are held out.\n"
            "- Random routing on the same held-out prompts: %.4f (the metric's check: ≈ 0.5).\n"
            "- Scoring speed: %s (signals + head %.4f ms per prompt).\n"
            "%s",
            apgr, TR_TARGET_APGR, apgr >= TR_TARGET_APGR ? "met" : "**not met**", TR_CV_REPEATS,
            TR_FOLDS, cv_fam[chosen][TR_FAM_MMLU], rnd_sum / TR_RANDOM_SEEDS,
            sp.head_ms + sp.signals_ms <= TR_TARGET_MS ? "met" : "**not met**",
            sp.head_ms + sp.signals_ms,
            nmt ? "" : "- Trained on MMLU multiple-choice prompts only: scores of free-form prompts "
                       "(no answer options, other lengths) are outside what it has seen.\n");
    if (nmt > 0)
        fprintf(md,
                "- MT-Bench, question-grouped CV APGR %.4f against the target %.2f: %s (random "
                "routing on the same prompts %.4f).\n"
                "- Leave one family out (reported, no target): trained on MMLU, MT-Bench APGR "
                "%.4f (random %.4f); trained on MT-Bench, MMLU APGR %.4f (random %.4f).\n\n",
                mt_cv.apgr, TR_TARGET_APGR_MT,
                mt_cv.apgr >= TR_TARGET_APGR_MT ? "met" : "**not met**", mt_cv.rnd,
                lofo_e[chosen][TR_FAM_MMLU].apgr, lofo_e[chosen][TR_FAM_MMLU].rnd,
                lofo_e[chosen][TR_FAM_MT_BENCH].apgr, lofo_e[chosen][TR_FAM_MT_BENCH].rnd);
    else
        fputs("\n", md);
    fputs("## Split\n\nHeld-out subjects (never seen in training or selection): ", md);
    for (int k = 0; k < nte_s; k++)
        fprintf(md, "%s`%s`", k ? ", " : "", te_names[k]);
    fputs(".\n\nTraining subjects: ", md);
    for (int k = 0; k < ntr_s; k++)
        fprintf(md, "%s`%s`", k ? ", " : "", tr_names[k]);
    fputs(".\n", md);
    if (fclose(md) != 0) {
        snprintf(err, sizeof err, "%s: write failed", path);
        goto fail;
    }
    printf("held-out APGR %.4f (random %.4f, oracle %.4f; CV %.4f, head %s); quality target "
           "%.3f: thresholds %.4f %.4f (CV strong share %.3f; held-out quality ratio %.4f, "
           "strong share %.3f); head %.5f ms/prompt, signals+head %.5f ms/prompt, embed+head "
           "%.3f ms/prompt\nwrote %s, %s, %s\n",
           apgr, rnd_sum / TR_RANDOM_SEEDS, oracle, cv_apgr[chosen], tr_grid[chosen].name,
           o.quality_target, (double)thr[0], (double)thr[1], strong_share_cv, te_ratio, te_share,
           sp.head_ms, sp.head_ms + sp.signals_ms, sp.embed_head_ms, o.out, path, svg);
    rc = 0;
    goto out;
nomem:
    st = SC_ERR_NOMEM;
fail_st:
    if (!err[0])
        snprintf(err, sizeof err, "%s", sc_strerror(st));
fail:
    fprintf(stderr, "scrimp train-router: %s\n", err);
out:
    json_decref(root);
    sc_router_free(router);
    tr_head_free(&best);
    sc_encoder_free(enc);
    tr_data_free(&d);
    free(X), free(mean), free(std), free(scores), free(sorted), free(train), free(test);
    free(fold_tr), free(fold_te), free(subj_order), free(y), free(is_test_subj);
    free(oof), free(fold_of_row), free(oc), free(te_in_dom);
    free(lofo_e), free(Xl), free(oof_mt), free(fold_mt), free(rows_a), free(rows_b);
    free(ids);
    return rc;
}
