/* ops_cpu.c - the CPU twins of the encoder kernels: exact reference ops, OpenMP over rows. */
#include "host/ops/ops_cpu.h"

#include <math.h>
#include <stddef.h>

/* OpenMP pragmas only when compiled with OpenMP, so the file builds (serially) without it. */
#ifdef _OPENMP
#define SC_OMP(directive) _Pragma(#directive)
#else
#define SC_OMP(directive)
#endif

/* glibc's vector math (libmvec, glibc >= 2.35 for erff): the 4-lane SSE entry points, which
 * dispatch at run time to the best implementation the CPU has. erff and expf dominate the
 * non-GEMM time of the forward; the scalar calls stay for the tails and other platforms. */
#if defined(__x86_64__) && defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#include <emmintrin.h>
#define OPS_LIBMVEC 1
__m128 _ZGVbN4v_erff(__m128 x);
__m128 _ZGVbN4v_expf(__m128 x);
/* the attention loops are short dot products: an AVX2 clone, picked at load time (not under
 * ThreadSanitizer: the clone's resolver runs at relocation, before the sanitizer's runtime is up,
 * and crashes instrumented) */
#if defined(__SANITIZE_THREAD__)
#define OPS_CLONES
#else
#define OPS_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#else
#define OPS_CLONES
#endif

/* Scores of one query row are computed this many keys at a time (online softmax), so no buffer
 * grows with the sequence length. */
#define ATTN_BLOCK 64

/* ---- layer norm ---- */

/* out[c] = (v[c] - mean) / sqrt(var + eps) * g[c] + b[c], v already in out (in place).
 * Mean and variance are accumulated in double, two-pass, so a row with a large common offset
 * loses nothing to cancellation. */
static void layernorm_row(float *v, const float *g, const float *b, int dim, float eps)
{
    double sum = 0.0;
    SC_OMP(omp simd reduction(+ : sum))
    for (int c = 0; c < dim; c++)
        sum += v[c];
    double mean = sum / dim;
    double sq = 0.0;
    SC_OMP(omp simd reduction(+ : sq))
    for (int c = 0; c < dim; c++) {
        double d = v[c] - mean;
        sq += d * d;
    }
    float inv = (float)(1.0 / sqrt(sq / dim + (double)eps));
    float meanf = (float)mean;
    for (int c = 0; c < dim; c++)
        v[c] = (v[c] - meanf) * inv * g[c] + b[c];
}

void sc_embed_layernorm_cpu(const int32_t *ids, const int32_t *pos, int n_tokens,
                            const float *word, const float *pos_emb, const float *type_emb,
                            const float *gamma, const float *beta, int dim, float eps, float *out)
{
    SC_OMP(omp parallel for schedule(static))
    for (int t = 0; t < n_tokens; t++) {
        const float *w = word + (size_t)ids[t] * (size_t)dim;
        const float *p = pos_emb + (size_t)pos[t] * (size_t)dim;
        float *o = out + (size_t)t * (size_t)dim;
        for (int c = 0; c < dim; c++)
            o[c] = w[c] + p[c] + type_emb[c];
        layernorm_row(o, gamma, beta, dim, eps);
    }
}

void sc_bias_residual_layernorm_cpu(const float *x, const float *bias, const float *residual,
                                    const float *gamma, const float *beta, int rows, int dim,
                                    float eps, float *out)
{
    SC_OMP(omp parallel for schedule(static))
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * (size_t)dim;
        const float *rr = residual + (size_t)r * (size_t)dim;
        float *o = out + (size_t)r * (size_t)dim;
        /* element c of residual is read before element c of out is written: aliasing is safe */
        for (int c = 0; c < dim; c++)
            o[c] = xr[c] + bias[c] + rr[c];
        layernorm_row(o, gamma, beta, dim, eps);
    }
}

/* ---- GELU ---- */

void sc_bias_gelu_cpu(float *x, const float *bias, int rows, int cols)
{
    const float inv_sqrt2 = 0.70710678118654752440f;
    SC_OMP(omp parallel for schedule(static))
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * (size_t)cols;
        int c = 0;
#ifdef OPS_LIBMVEC
        const __m128 half = _mm_set1_ps(0.5f), one = _mm_set1_ps(1.0f);
        const __m128 k = _mm_set1_ps(inv_sqrt2);
        for (; c + 4 <= cols; c += 4) {
            __m128 v = _mm_add_ps(_mm_loadu_ps(xr + c), _mm_loadu_ps(bias + c));
            __m128 e = _ZGVbN4v_erff(_mm_mul_ps(v, k));
            _mm_storeu_ps(xr + c, _mm_mul_ps(_mm_mul_ps(half, v), _mm_add_ps(one, e)));
        }
#endif
        for (; c < cols; c++) {
            float v = xr[c] + bias[c];
            xr[c] = 0.5f * v * (1.0f + erff(v * inv_sqrt2));
        }
    }
}

/* v[i] = expf(v[i]), i < n. */
static void exp_inplace(float *v, int n)
{
    int i = 0;
#ifdef OPS_LIBMVEC
    for (; i + 4 <= n; i += 4)
        _mm_storeu_ps(v + i, _ZGVbN4v_expf(_mm_loadu_ps(v + i)));
#endif
    for (; i < n; i++)
        v[i] = expf(v[i]);
}

/* ---- attention ---- */

/* One query row of one head: ctx = softmax(q'·K'ᵀ·scale)·V' with q' = q + bq etc., the softmax
 * computed online over blocks of keys (running max, rescaled sum), so it never overflows. The key
 * bias adds q'·bk to every score of the row; it is kept so the scores are the literal ones. The
 * value bias is added once at the end (the probabilities sum to one). */
OPS_CLONES static void attention_row(const float *q, const float *bq, const float *kbase, const float *bk,
                          const float *vbase, const float *bv, int len, size_t stride,
                          int head_dim, float scale, float *acc)
{
    float qk_bias = 0.0f;
    SC_OMP(omp simd reduction(+ : qk_bias))
    for (int d = 0; d < head_dim; d++)
        qk_bias += (q[d] + bq[d]) * bk[d];
    for (int d = 0; d < head_dim; d++)
        acc[d] = 0.0f;
    float run_max = -INFINITY, run_sum = 0.0f;
    float sc[ATTN_BLOCK];
    for (int j0 = 0; j0 < len; j0 += ATTN_BLOCK) {
        int nb = len - j0 < ATTN_BLOCK ? len - j0 : ATTN_BLOCK;
        float bmax = -INFINITY;
        for (int jj = 0; jj < nb; jj++) {
            const float *k = kbase + (size_t)(j0 + jj) * stride;
            float s = 0.0f;
            SC_OMP(omp simd reduction(+ : s))
            for (int d = 0; d < head_dim; d++)
                s += (q[d] + bq[d]) * k[d];
            s = (s + qk_bias) * scale;
            sc[jj] = s;
            bmax = s > bmax ? s : bmax;
        }
        if (bmax > run_max) {
            float f = expf(run_max - bmax); /* 0 on the first block */
            run_sum *= f;
            for (int d = 0; d < head_dim; d++)
                acc[d] *= f;
            run_max = bmax;
        }
        for (int jj = 0; jj < nb; jj++)
            sc[jj] -= run_max;
        exp_inplace(sc, nb);
        for (int jj = 0; jj < nb; jj++) {
            const float *v = vbase + (size_t)(j0 + jj) * stride;
            float p = sc[jj];
            run_sum += p;
            SC_OMP(omp simd)
            for (int d = 0; d < head_dim; d++)
                acc[d] += p * v[d];
        }
    }
    float inv = 1.0f / run_sum;
    for (int d = 0; d < head_dim; d++)
        acc[d] = acc[d] * inv + bv[d];
}

void sc_attention_cpu(const float *qkv, const float *qkv_bias, const int32_t *seq_off,
                      int n_seqs, int heads, int head_dim, float *ctx)
{
    const int hidden = heads * head_dim;
    const size_t stride = 3 * (size_t)hidden;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const int tasks = n_seqs * heads;
    SC_OMP(omp parallel for schedule(dynamic, 1))
    for (int task = 0; task < tasks; task++) {
        int s = task / heads, h = task % heads;
        int begin = seq_off[s], len = seq_off[s + 1] - seq_off[s];
        size_t col = (size_t)h * (size_t)head_dim;
        const float *bq = qkv_bias + col;
        const float *bk = qkv_bias + hidden + col;
        const float *bv = qkv_bias + 2 * (size_t)hidden + col;
        const float *kbase = qkv + (size_t)begin * stride + hidden + col;
        const float *vbase = qkv + (size_t)begin * stride + 2 * (size_t)hidden + col;
        for (int i = 0; i < len; i++) {
            const float *q = qkv + (size_t)(begin + i) * stride + col;
            float *acc = ctx + (size_t)(begin + i) * (size_t)hidden + col;
            attention_row(q, bq, kbase, bk, vbase, bv, len, stride, head_dim, scale, acc);
        }
    }
}

/* ---- pooling ---- */

void sc_meanpool_l2_cpu(const float *x, const int32_t *seq_off, int n_seqs, int dim, float *out)
{
    SC_OMP(omp parallel for schedule(static))
    for (int s = 0; s < n_seqs; s++) {
        float *o = out + (size_t)s * (size_t)dim;
        int begin = seq_off[s], len = seq_off[s + 1] - seq_off[s];
        if (len <= 0) { /* nothing to average: a zero vector rather than 0/0 */
            for (int c = 0; c < dim; c++)
                o[c] = 0.0f;
            continue;
        }
        double sq = 0.0;
        for (int c = 0; c < dim; c++) {
            double sum = 0.0;
            for (int t = begin; t < begin + len; t++)
                sum += x[(size_t)t * (size_t)dim + (size_t)c];
            double mean = sum / len;
            o[c] = (float)mean;
            sq += mean * mean;
        }
        /* as torch.nn.functional.normalize: divide by max(norm, 1e-12) */
        double norm = sqrt(sq);
        double inv = 1.0 / (norm > 1e-12 ? norm : 1e-12);
        for (int c = 0; c < dim; c++)
            o[c] = (float)(o[c] * inv);
    }
}

/* ---- scoped top-k by inner product ---- */

/* The k best (score, row) so far of one query, best first: a sorted insertion, since k is small
 * (the kernel bounds it at 32). Rows arrive in increasing order, so a row only displaces an entry
 * with a strictly lower score: ties keep the lower row index. */
static void topk_insert(float *s, int64_t *ix, int k, int *len, float score, int64_t row)
{
    if (score != score) /* a NaN ranks nowhere (the kernel drops it too) */
        return;
    if (*len == k && !(score > s[k - 1]))
        return;
    int p = *len < k ? (*len)++ : k - 1;
    while (p > 0 && score > s[p - 1]) {
        s[p] = s[p - 1];
        ix[p] = ix[p - 1];
        p--;
    }
    s[p] = score;
    ix[p] = row;
}

void sc_topk_ip_cpu(const float *queries, const uint64_t *qscope, int nq, const float *base,
                    const uint64_t *bscope, int n, int dim, int k, float *scores, int64_t *idx)
{
    if (k <= 0)
        return;
    SC_OMP(omp parallel for schedule(dynamic, 1))
    for (int q = 0; q < nq; q++) {
        const float *qv = queries + (size_t)q * (size_t)dim;
        float *s = scores + (size_t)q * (size_t)k;
        int64_t *ix = idx + (size_t)q * (size_t)k;
        int len = 0;
        for (int i = 0; i < n; i++) {
            if (bscope[i] != qscope[q])
                continue;
            const float *b = base + (size_t)i * (size_t)dim;
            double acc = 0.0;
            for (int d = 0; d < dim; d++)
                acc += (double)qv[d] * (double)b[d];
            topk_insert(s, ix, k, &len, (float)acc, i);
        }
        for (int r = len; r < k; r++) {
            s[r] = -INFINITY;
            ix[r] = -1;
        }
    }
}

/* ---- router head ---- */

#define SC_ROUTER_HEAD_LANES 8 /* independent partial sums: the dot products vectorise */

/* Σ w[d]·x[d] as SC_ROUTER_HEAD_LANES partial sums added in a fixed order (the kernel sums in
 * another order: the test allows for it). */
static float router_dot(const float *w, const float *x, int f)
{
    float acc[SC_ROUTER_HEAD_LANES] = {0};
    int d = 0;
    for (; d + SC_ROUTER_HEAD_LANES <= f; d += SC_ROUTER_HEAD_LANES)
        for (int l = 0; l < SC_ROUTER_HEAD_LANES; l++)
            acc[l] += w[d + l] * x[d + l];
    for (; d < f; d++)
        acc[0] += w[d] * x[d];
    float s = 0.0f;
    for (int l = 0; l < SC_ROUTER_HEAD_LANES; l++)
        s += acc[l];
    return s;
}

void sc_router_head_cpu(const float *x, int n, int f, const float *w1, const float *b1,
                        int hidden, const float *w2, float b2, float *out)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * (size_t)f;
        float logit = b2;
        if (hidden == 0) {
            logit += router_dot(w2, xi, f);
        } else {
            for (int j = 0; j < hidden; j++) {
                float h = b1[j] + router_dot(w1 + (size_t)j * (size_t)f, xi, f);
                logit += w2[j] * (h > 0.0f ? h : 0.0f);
            }
        }
        out[i] = 1.0f / (1.0f + expf(-logit));
    }
}
