/* fit.c - the router head: masked features, Adam on a weighted logistic loss, prediction
 * through the CPU kernel twin, APGR on graded qualities, grouped cross-validation per family and
 * the operating curve. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/ops/ops_cpu.h"
#include "models/encoder.h"
#include "models/router.h"
#include "models/train/train_internal.h"

#define TR_MINIBATCH  128
#define TR_PRED_CHUNK 256
#define TR_ADAM_B1    0.9f
#define TR_ADAM_B2    0.999f
#define TR_ADAM_EPS   1e-8f

/* ---- random numbers and sorting ---- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

double tr_rng_unit(uint64_t *s) /* [0, 1) */
{
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static float rng_normal(uint64_t *s)
{
    double u = tr_rng_unit(s), v = tr_rng_unit(s);
    return (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

void tr_shuffle(size_t *a, size_t n, uint64_t *s)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next(s) % i);
        size_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static int cmp_float_desc(const void *a, const void *b)
{
    return cmp_float(b, a);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the head: fit with Adam on weighted logistic loss ---- */

/* Is input d (0 <= d < SC_ROUTER_NFEATURES) used by a head of this feature set? */
static int feat_used(tr_feat_t f, size_t d)
{
    int emb = d < SC_EMBED_DIM;
    switch (f) {
    case TR_FEAT_SIGNALS:
        return !emb;
    case TR_FEAT_EMBEDDING:
        return emb;
    case TR_FEAT_EMBEDDING_LEN_NEG:
        return emb || d == SC_EMBED_DIM + SC_SIG_LOG_BYTES || d == SC_EMBED_DIM + SC_SIG_NEGATION;
    default:
        return 1;
    }
}

void tr_head_free(tr_head_t *h)
{
    free(h->w1);
    free(h->b1);
    free(h->w2);
    memset(h, 0, sizeof *h);
}

/* Adam state of one parameter block */
typedef struct {
    float *p, *g, *m, *v; /* p borrowed (the head's), g/m/v owned */
    size_t n;
    int decay;     /* L2 on this block */
    size_t stride; /* > 0: element i weighs input i % stride (the signals' L2 is scaled) */
} tr_param_t;

static int param_init(tr_param_t *t, float *p, size_t n, int decay, size_t stride)
{
    t->p = p;
    t->n = n;
    t->decay = decay;
    t->stride = stride;
    t->g = calloc(n, sizeof(float));
    t->m = calloc(n, sizeof(float));
    t->v = calloc(n, sizeof(float));
    return t->g && t->m && t->v ? 0 : -1;
}

static void param_free(tr_param_t *t)
{
    free(t->g);
    free(t->m);
    free(t->v);
}

/* l2_sig: the L2 of a signal's weight (input >= SC_EMBED_DIM of a block with a stride) */
static void adam_step(tr_param_t *t, float lr, float l2, float l2_sig, int step)
{
    const float c1 = 1.0f - powf(TR_ADAM_B1, (float)step);
    const float c2 = 1.0f - powf(TR_ADAM_B2, (float)step);
    for (size_t i = 0; i < t->n; i++) {
        float l = t->stride && i % t->stride >= SC_EMBED_DIM ? l2_sig : l2;
        float g = t->g[i] + (t->decay ? l * t->p[i] : 0.0f);
        t->m[i] = TR_ADAM_B1 * t->m[i] + (1.0f - TR_ADAM_B1) * g;
        t->v[i] = TR_ADAM_B2 * t->v[i] + (1.0f - TR_ADAM_B2) * g * g;
        t->p[i] -= lr * (t->m[i] / c1) / (sqrtf(t->v[i] / c2) + TR_ADAM_EPS);
        t->g[i] = 0.0f;
    }
}

/* Fit on rows[0..nrows) of the standardised X; classes weighted to equal total weight. */
sc_status_t tr_fit(const tr_cfg_t *c, const tr_data_t *ds, const float *X, const float *y,
                   const size_t *rows, size_t nrows, uint64_t seed, tr_head_t *out)
{
    const float fam_w = c->fam_w > 0.0f ? c->fam_w : 1.0f;
    const float l2_sig = c->l2 * (c->l2_sig > 0.0f ? c->l2_sig : 1.0f);
    const size_t F = SC_ROUTER_NFEATURES, H = (size_t)c->hidden;
    sc_status_t st = SC_ERR_NOMEM;
    tr_param_t pw1 = {0}, pb1 = {0}, pw2 = {0}, pb2 = {0};
    size_t *order = malloc(sizeof *order * (nrows ? nrows : 1));
    float *hbuf = malloc(sizeof(float) * (H ? H : 1));
    memset(out, 0, sizeof *out);
    out->hidden = c->hidden;
    out->w2 = calloc(H ? H : F, sizeof(float));
    if (H) {
        out->w1 = malloc(sizeof(float) * H * F);
        out->b1 = calloc(H, sizeof(float));
    }
    if (!order || !hbuf || !out->w2 || (H && (!out->w1 || !out->b1)))
        goto out;
    uint64_t rs = seed * 0x9e3779b97f4a7c15ull + 1;
    if (H) {
        const float sd1 = sqrtf(2.0f / (float)F), sd2 = sqrtf(1.0f / (float)H);
        for (size_t i = 0; i < H * F; i++)
            out->w1[i] = feat_used(c->feat, i % F) ? sd1 * rng_normal(&rs) : 0.0f;
        for (size_t j = 0; j < H; j++)
            out->w2[j] = sd2 * rng_normal(&rs);
    }
    if (param_init(&pw2, out->w2, H ? H : F, 1, H ? 0 : F) ||
        param_init(&pb2, &out->b2, 1, 0, 0) ||
        (H && (param_init(&pw1, out->w1, H * F, 1, F) || param_init(&pb1, out->b1, H, 0, 0))))
        goto out;
    size_t npos = 0;
    for (size_t k = 0; k < nrows; k++)
        npos += y[rows[k]] > 0.5f;
    double ppos = nrows ? (double)npos / (double)nrows : 0.5;
    if (ppos <= 0.0 || ppos >= 1.0)
        ppos = 0.5;
    const int balance = c->target != TR_TARGET_GAIN3 && c->target != TR_TARGET_SIGN;
    const float wpos = balance ? (float)(0.5 / ppos) : 1.0f;
    const float wneg = balance ? (float)(0.5 / (1.0 - ppos)) : 1.0f;
    for (size_t k = 0; k < nrows; k++)
        order[k] = rows[k];
    int step = 0;
    const size_t nbatch = (nrows + TR_MINIBATCH - 1) / TR_MINIBATCH;
    const double total = (double)c->epochs * (double)(nbatch ? nbatch : 1);
    for (int ep = 0; ep < c->epochs; ep++) {
        tr_shuffle(order, nrows, &rs);
        for (size_t b0 = 0; b0 < nrows; b0 += TR_MINIBATCH) {
            size_t m = nrows - b0 < TR_MINIBATCH ? nrows - b0 : TR_MINIBATCH;
            for (size_t k = 0; k < m; k++) {
                size_t r = order[b0 + k];
                const float *x = X + r * F;
                float logit = out->b2;
                if (H) {
                    for (size_t j = 0; j < H; j++) {
                        const float *w = out->w1 + j * F;
                        float h = out->b1[j];
                        for (size_t q = 0; q < F; q++)
                            h += w[q] * x[q];
                        hbuf[j] = h > 0.0f ? h : 0.0f;
                        logit += out->w2[j] * hbuf[j];
                    }
                } else {
                    for (size_t d = 0; d < F; d++)
                        logit += out->w2[d] * x[d];
                }
                float p = 1.0f / (1.0f + expf(-logit));
                float g = (y[r] > 0.5f ? wpos : wneg) * (p - y[r]) / (float)m;
                if (ds->items[r].family == TR_FAM_MT_BENCH)
                    g *= fam_w;
                pb2.g[0] += g;
                if (H) {
                    for (size_t j = 0; j < H; j++) {
                        pw2.g[j] += g * hbuf[j];
                        if (hbuf[j] <= 0.0f)
                            continue;
                        float gh = g * out->w2[j];
                        pb1.g[j] += gh;
                        float *gw = pw1.g + j * F;
                        for (size_t d = 0; d < F; d++)
                            gw[d] += gh * x[d];
                    }
                } else {
                    for (size_t d = 0; d < F; d++)
                        pw2.g[d] += g * x[d];
                }
            }
            if (c->feat != TR_FEAT_ALL) { /* masked inputs: zero weights stay zero */
                for (size_t j = 0; j < (H ? H : 1); j++)
                    for (size_t d = 0; d < F; d++)
                        if (!feat_used(c->feat, d))
                            (H ? pw1.g : pw2.g)[j * F + d] = 0.0f;
            }
            const float lr = c->decay ? c->lr * (float)(1.0 - (double)step / total) : c->lr;
            step++;
            adam_step(&pw2, lr, c->l2, l2_sig, step);
            adam_step(&pb2, lr, c->l2, l2_sig, step);
            if (H) {
                adam_step(&pw1, lr, c->l2, l2_sig, step);
                adam_step(&pb1, lr, c->l2, l2_sig, step);
            }
        }
    }
    st = SC_OK;
out:
    param_free(&pw1);
    param_free(&pb1);
    param_free(&pw2);
    param_free(&pb2);
    free(order);
    free(hbuf);
    if (st)
        tr_head_free(out);
    return st;
}

/* scores[k] for rows[k], through the CPU twin of the kernel (the same math as serving). */
sc_status_t tr_predict(const tr_head_t *h, const float *X, const size_t *rows, size_t nrows,
                       float *scores)
{
    const size_t F = SC_ROUTER_NFEATURES;
    float *x = malloc(sizeof(float) * TR_PRED_CHUNK * F);
    if (!x)
        return SC_ERR_NOMEM;
    for (size_t b0 = 0; b0 < nrows; b0 += TR_PRED_CHUNK) {
        size_t m = nrows - b0 < TR_PRED_CHUNK ? nrows - b0 : TR_PRED_CHUNK;
        for (size_t k = 0; k < m; k++)
            memcpy(x + k * F, X + rows[b0 + k] * F, sizeof(float) * F);
        sc_router_head_cpu(x, (int)m, (int)F, h->w1, h->b1, h->hidden, h->w2, h->b2, scores + b0);
    }
    free(x);
    return SC_OK;
}

/* ---- evaluation: APGR, cross-validation, the operating curve ---- */

/* Route rows[k] to the strong model when scores[k] >= t (and in_dom[k], when given: a prompt
 * outside the router's domain goes to a weak tier): the quality ratio (accuracy over the
 * all-strong accuracy) and the share routed to strong. */
void tr_ratio_at(const tr_data_t *d, const size_t *rows, size_t n, const float *scores, float t,
                 const unsigned char *in_dom, double *ratio, double *share)
{
    double got = 0.0, strong = 0.0, sel = 0.0;
    for (size_t k = 0; k < n; k++) {
        const tr_item_t *it = &d->items[rows[k]];
        int s = scores[k] >= t && (!in_dom || in_dom[k]);
        got += s ? it->sq : it->wq;
        strong += it->sq;
        sel += s;
    }
    *ratio = strong > 0.0 ? got / strong : NAN;
    *share = n ? sel / (double)n : NAN;
}

/* sc_router_apgr_graded on the rows' graded qualities wq / sq. */
double tr_apgr_rows(const tr_data_t *d, const size_t *rows, size_t nrows, const float *scores,
                    double *curve, double *quality)
{
    double *q = malloc(sizeof(double) * 2 * (nrows ? nrows : 1));
    if (!q)
        return NAN;
    for (size_t k = 0; k < nrows; k++) {
        q[k] = d->items[rows[k]].wq;
        q[nrows + k] = d->items[rows[k]].sq;
    }
    double area =
        sc_router_apgr_graded(scores, q, q + nrows, nrows, curve, quality, TR_CURVE_POINTS);
    free(q);
    return area;
}

size_t tr_rows_of_family(const tr_data_t *d, const size_t *rows, size_t n, int fam, size_t *out)
{
    size_t m = 0;
    for (size_t k = 0; k < n; k++)
        if (d->items[rows[k]].family == fam)
            out[m++] = rows[k];
    return m;
}

/* oof (optional, TR_CV_REPEATS × d->n): oof[rep · n + i] = the score of training row i by the
 * head fitted without its fold; fold_of_row (optional, the same shape): its fold. The MT-Bench
 * figure needs oof (NaN without it). */
sc_status_t tr_cross_validate(const tr_cfg_t *c, const tr_data_t *d, const float *X, const float *y,
                              const size_t *train, size_t ntr, uint64_t seed, size_t *fold_tr,
                              size_t *fold_te, float *scores, float *oof, signed char *fold_of_row,
                              double out[TR_NFAMILIES])
{
    size_t order[TR_MAX_SUBJECTS];
    int fold_of[TR_MAX_SUBJECTS], present[TR_MAX_SUBJECTS] = {0};
    size_t nsub = 0;
    double sum = 0.0, mt_sum = 0.0;
    int nfold = 0, mt_n = 0;
    for (size_t k = 0; k < ntr; k++)
        present[d->items[train[k]].subject] = 1;
    for (int s = 0; s < d->nsubj; s++)
        if (present[s])
            order[nsub++] = (size_t)s;
    for (int rep = 0; rep < TR_CV_REPEATS; rep++) {
        uint64_t rs = (seed + 101u * (uint64_t)rep) * 0x9e3779b97f4a7c15ull + 3;
        tr_shuffle(order, nsub, &rs);
        /* each family dealt round the folds on its own, so every fold holds both */
        int dealt[TR_NFAMILIES] = {0};
        for (size_t k = 0; k < nsub; k++) {
            int f = d->subj_family[order[k]];
            fold_of[order[k]] = dealt[f]++ % TR_FOLDS;
        }
        for (int fo = 0; fo < TR_FOLDS; fo++) {
            size_t a = 0, b = 0;
            for (size_t k = 0; k < ntr; k++) {
                size_t i = train[k];
                if (fold_of[d->items[i].subject] == fo)
                    fold_te[b++] = i;
                else
                    fold_tr[a++] = i;
            }
            if (b == 0 || a == 0)
                continue;
            tr_head_t h;
            sc_status_t st = tr_fit(c, d, X, y, fold_tr, a, seed + (uint64_t)fo, &h);
            if (st == SC_OK)
                st = tr_predict(&h, X, fold_te, b, scores);
            tr_head_free(&h);
            if (st)
                return st;
            for (size_t k = 0; k < b; k++) {
                if (oof)
                    oof[(size_t)rep * d->n + fold_te[k]] = scores[k];
                if (fold_of_row)
                    fold_of_row[(size_t)rep * d->n + fold_te[k]] = (signed char)fo;
            }
            /* the fold's MMLU rows (fold_tr reused: the fit is done) */
            size_t nm = 0;
            for (size_t k = 0; k < b; k++)
                if (d->items[fold_te[k]].family == TR_FAM_MMLU) {
                    fold_tr[nm] = fold_te[k];
                    scores[nm++] = scores[k];
                }
            double ap = nm ? tr_apgr_rows(d, fold_tr, nm, scores, NULL, NULL) : NAN;
            if (ap == ap) {
                sum += ap;
                nfold++;
            }
        }
        if (oof) { /* MT-Bench: its pooled out-of-fold scores of this repeat */
            size_t nm = tr_rows_of_family(d, train, ntr, TR_FAM_MT_BENCH, fold_tr);
            for (size_t k = 0; k < nm; k++)
                scores[k] = oof[(size_t)rep * d->n + fold_tr[k]];
            double ap = nm ? tr_apgr_rows(d, fold_tr, nm, scores, NULL, NULL) : NAN;
            if (ap == ap) {
                mt_sum += ap;
                mt_n++;
            }
        }
    }
    out[TR_FAM_MMLU] = nfold ? sum / nfold : NAN;
    out[TR_FAM_MT_BENCH] = mt_n ? mt_sum / mt_n : NAN;
    return SC_OK;
}

sc_status_t tr_operating_curve(const tr_data_t *d, const size_t *train, size_t ntr,
                               const float *oof, const signed char *fold_of_row, double confidence,
                               tr_opcurve_t *oc)
{
    enum { NF = TR_CV_REPEATS * TR_FOLDS };
    const size_t N = (size_t)TR_CV_REPEATS * ntr;
    float *v = malloc(sizeof(float) * (N ? N : 1));
    if (!v)
        return SC_ERR_NOMEM;
    for (int r = 0; r < TR_CV_REPEATS; r++)
        for (size_t k = 0; k < ntr; k++)
            v[(size_t)r * ntr + k] = oof[(size_t)r * d->n + train[k]];
    qsort(v, N, sizeof *v, cmp_float_desc);
    double fs[NF], fw[NF], ratios[NF];
    for (int p = 0; p < TR_OP_POINTS; p++) {
        size_t k = (size_t)floor((double)p / (TR_OP_POINTS - 1) * (double)N + 0.5);
        /* share 0: above every score (a sigmoid never exceeds 1) */
        float t = k == 0 ? 1.0f : v[k - 1];
        double ss = 0.0, sw = 0.0, nsel = 0.0;
        memset(fs, 0, sizeof fs), memset(fw, 0, sizeof fw);
        for (int r = 0; r < TR_CV_REPEATS; r++)
            for (size_t j = 0; j < ntr; j++) {
                size_t i = train[j];
                const tr_item_t *it = &d->items[i];
                int f = r * TR_FOLDS + fold_of_row[(size_t)r * d->n + i];
                int strong = oof[(size_t)r * d->n + i] >= t && k > 0;
                double got = strong ? it->sq : it->wq;
                ss += it->sq;
                sw += got;
                nsel += strong;
                fs[f] += it->sq;
                fw[f] += got;
            }
        int m = 0;
        for (int f = 0; f < NF; f++)
            if (fs[f] > 0.0)
                ratios[m++] = fw[f] / fs[f];
        qsort(ratios, (size_t)m, sizeof *ratios, cmp_double);
        double q = (1.0 - confidence) * (double)(m - 1), lo = 0.0;
        if (m > 0) {
            int a = (int)floor(q), b = a + 1 < m ? a + 1 : a;
            lo = ratios[a] + (ratios[b] - ratios[a]) * (q - a);
        }
        oc->thr[p] = t;
        oc->share[p] = (float)(nsel / (double)N);
        oc->ratio[p] = (float)(ss > 0.0 ? sw / ss : 0.0);
        oc->low[p] = (float)lo;
    }
    free(v);
    return SC_OK;
}
