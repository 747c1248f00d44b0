/* ops_cpu.c - the CPU twins of the encoder kernels: exact reference ops, OpenMP over rows. */
#include "host/ops/ops_cpu.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* OpenMP pragmas only when compiled with OpenMP, so the file builds (serially) without it. */
#ifdef _OPENMP
#define SC_OMP(directive) _Pragma(#directive)
#else
#define SC_OMP(directive)
#endif

/* The loops below are cloned for AVX-512 (x86-64-v4) and AVX2 + FMA (x86-64-v3), the clone
 * picked at load time by the CPU's features, with the baseline build as the fallback (not under
 * ThreadSanitizer: a clone's resolver runs at relocation, before the sanitizer's runtime is up,
 * and crashes instrumented). */
#if defined(__x86_64__) && defined(__GLIBC__) && !defined(__SANITIZE_THREAD__)
#define OPS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define OPS_CLONES
#endif
#define OPS_INLINE static inline __attribute__((always_inline))

/* AVX-512 and AVX2 attention kernels, chosen at run time (attention_task), where the compiler
 * has the intrinsics. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define OPS_X86_KERNELS 1
#endif

/* ---- vector math: e^x and erf in plain arithmetic, so that a loop of them vectorises ---- */

/* e^x for x <= 0 (larger x is not asked for: softmax after its maximum, erf's e^(-x^2)), within
 * 2 ulp; x below -87 gives e^-87 (about 1.6e-38) instead of a denormal or 0, which no sum here
 * can tell from 0. x = k ln2 + r, |r| <= ln2/2 (ln2 split in two for an exact r), e^r by the
 * degree-7 minimax polynomial of the Cephes library, 2^k by the exponent bits. */
#define OPS_EXP_MIN   -87.0f
#define OPS_LOG2E     1.44269504088896341f
#define OPS_LN2_HI    0.693359375f /* ln2 = OPS_LN2_HI + OPS_LN2_LO */
#define OPS_LN2_LO    -2.12194440e-4f
#define OPS_EXP_C5    1.9875691500e-4f /* e^r = 1 + r + r^2 (C0 + C1 r + ... + C5 r^5) */
#define OPS_EXP_C4    1.3981999507e-3f
#define OPS_EXP_C3    8.3334519073e-3f
#define OPS_EXP_C2    4.1665795894e-2f
#define OPS_EXP_C1    1.6666665459e-1f
#define OPS_EXP_C0    5.0000001201e-1f

OPS_INLINE float ops_exp_neg(float x)
{
    x = x > OPS_EXP_MIN ? x : OPS_EXP_MIN; /* the form that is one max instruction */
    float k = x * OPS_LOG2E + 12582912.0f; /* + 1.5 * 2^23: rounds to an integer */
    k -= 12582912.0f;
    float r = x - k * OPS_LN2_HI;
    r -= k * OPS_LN2_LO;
    float p = OPS_EXP_C5;
    p = p * r + OPS_EXP_C4;
    p = p * r + OPS_EXP_C3;
    p = p * r + OPS_EXP_C2;
    p = p * r + OPS_EXP_C1;
    p = p * r + OPS_EXP_C0;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)k + 127) * (1 << 23); /* k in [-126, 0] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* erf(x) within 1.5e-7 absolute (Abramowitz and Stegun 7.1.26): 1 - t P(t) e^(-x^2),
 * t = 1 / (1 + 0.3275911 |x|), the sign restored. */
OPS_INLINE float ops_erf(float x)
{
    float a = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    float y = 1.0f - p * t * ops_exp_neg(-a * a);
    return copysignf(y, x); /* not a branch: AVX2 has no masks to if-convert one with */
}

/* ---- layer norm ---- */

/* out[c] = (v[c] - mean) / sqrt(var + eps) * g[c] + b[c], v already in out (in place).
 * Mean and variance are accumulated in double, two-pass, so a row with a large common offset
 * loses nothing to cancellation. */
OPS_CLONES static void layernorm_row(float *v, const float *g, const float *b, int dim, float eps)
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

/* x[c] = gelu(x[c] + bias[c]), c < n: the erf form, as torch's nn.GELU(). */
OPS_CLONES static void bias_gelu_row(float *x, const float *bias, int n)
{
    SC_OMP(omp simd)
    for (int c = 0; c < n; c++) {
        float v = x[c] + bias[c];
        x[c] = 0.5f * v * (1.0f + ops_erf(v * 0.70710678118654752440f));
    }
}

void sc_bias_gelu_cpu(float *x, const float *bias, int rows, int cols)
{
    SC_OMP(omp parallel for schedule(static))
    for (int r = 0; r < rows; r++)
        bias_gelu_row(x + (size_t)r * (size_t)cols, bias, cols);
}

/* ---- int8 GEMM operands and results ---- */

/* v clamped to [lo, hi], as compares (fminf and fmaxf, with their NaN rules, are calls in GCC) */
OPS_INLINE float ops_clamp(float v, float lo, float hi)
{
    v = v > lo ? v : lo;
    return v < hi ? v : hi;
}

/* q[c] = round(v[c] · inv + z) clamped to [0, 255], v[c] = x[c] (· m[c] where m is given). */
OPS_INLINE void quantize_u8_store(const float *restrict x, const float *restrict m, int n,
                                  float inv, float z, uint8_t *restrict q)
{
    if (m) {
        SC_OMP(omp simd)
        for (int c = 0; c < n; c++)
            q[c] = (uint8_t)(int32_t)(ops_clamp(x[c] * m[c] * inv + z, 0.0f, 255.0f) + 0.5f);
    } else {
        SC_OMP(omp simd)
        for (int c = 0; c < n; c++)
            q[c] = (uint8_t)(int32_t)(ops_clamp(x[c] * inv + z, 0.0f, 255.0f) + 0.5f);
    }
}

/* lo = min(0, min v), hi = max(0, max v), v[c] = x[c] (· m[c] where m is given): 16 lanes of
 * their own, so the loop is element-wise (clang does not vectorise a min/max reduction of
 * floats without -ffast-math); the compares, not fminf/fmaxf, which GCC calls in libm. */
#define OPS_MINMAX_LANES 16
OPS_INLINE void minmax_row(const float *restrict x, const float *restrict m, int n, float *lo,
                           float *hi)
{
    float l[OPS_MINMAX_LANES] = {0}, h[OPS_MINMAX_LANES] = {0};
    int c = 0;
    for (; c + OPS_MINMAX_LANES <= n; c += OPS_MINMAX_LANES) {
        SC_OMP(omp simd)
        for (int j = 0; j < OPS_MINMAX_LANES; j++) {
            float v = m ? x[c + j] * m[c + j] : x[c + j];
            l[j] = v < l[j] ? v : l[j];
            h[j] = v > h[j] ? v : h[j];
        }
    }
    for (; c < n; c++) {
        float v = m ? x[c] * m[c] : x[c];
        l[0] = v < l[0] ? v : l[0];
        h[0] = v > h[0] ? v : h[0];
    }
    for (int j = 1; j < OPS_MINMAX_LANES; j++) {
        l[0] = l[j] < l[0] ? l[j] : l[0];
        h[0] = h[j] > h[0] ? h[j] : h[0];
    }
    *lo = l[0];
    *hi = h[0];
}

/* One row to u8: its range [lo, hi] widened to hold 0, so that 0 is exact; x ≈ s (q - z). */
OPS_CLONES static void quantize_u8_row(const float *restrict x, const float *restrict inv_smooth,
                                       int n, uint8_t *restrict q, float *scale, int32_t *zero)
{
    float lo, hi;
    minmax_row(x, inv_smooth, n, &lo, &hi);
    float s = (hi - lo) / 255.0f;
    if (!(s > 0.0f)) /* a row of zeros */
        s = 1.0f;
    const float inv = 1.0f / s, z = nearbyintf(-lo * inv);
    quantize_u8_store(x, inv_smooth, n, inv, z, q); /* v >= 0 after the clamp: + 0.5 rounds */
    *scale = s;
    *zero = (int32_t)z;
}

void sc_quantize_u8_rows_cpu(const float *x, const float *inv_smooth, int rows, int cols,
                             uint8_t *q, float *scale, int32_t *zero)
{
    SC_OMP(omp parallel for schedule(static))
    for (int r = 0; r < rows; r++)
        quantize_u8_row(x + (size_t)r * (size_t)cols, inv_smooth, cols,
                        q + (size_t)r * (size_t)cols, scale + r, zero + r);
}

OPS_CLONES static void dequant_row(const int32_t *restrict acc, float s, int32_t z,
                                   const float *restrict wscale, const int32_t *restrict colsum,
                                   int n, float *restrict out)
{
    SC_OMP(omp simd)
    for (int c = 0; c < n; c++)
        out[c] = s * wscale[c] * (float)(acc[c] - z * colsum[c]);
}

void sc_dequant_rows_cpu(const int32_t *acc, const float *scale, const int32_t *zero,
                         const float *wscale, const int32_t *colsum, int rows, int cols,
                         float *out)
{
    SC_OMP(omp parallel for schedule(static))
    for (int r = 0; r < rows; r++)
        dequant_row(acc + (size_t)r * (size_t)cols, scale[r], zero[r], wscale, colsum, cols,
                    out + (size_t)r * (size_t)cols);
}

/* fp32 to bf16, rounded to nearest even (the values are finite). */
OPS_INLINE uint16_t ops_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

OPS_CLONES static void dequant_gelu_row(const int32_t *restrict acc, float s, int32_t z,
                                        const float *restrict wscale,
                                        const int32_t *restrict colsum,
                                        const float *restrict bias, int n,
                                        uint16_t *restrict out)
{
    SC_OMP(omp simd)
    for (int c = 0; c < n; c++) {
        float v = s * wscale[c] * (float)(acc[c] - z * colsum[c]) + bias[c];
        out[c] = ops_bf16(0.5f * v * (1.0f + ops_erf(v * 0.70710678118654752440f)));
    }
}

void sc_dequant_bias_gelu_bf16_cpu(const int32_t *acc, const float *scale, const int32_t *zero,
                                   const float *wscale, const int32_t *colsum, const float *bias,
                                   int rows, int cols, uint16_t *out)
{
    SC_OMP(omp parallel for schedule(static))
    for (int r = 0; r < rows; r++)
        dequant_gelu_row(acc + (size_t)r * (size_t)cols, scale[r], zero[r], wscale, colsum,
                         bias, cols, out + (size_t)r * (size_t)cols);
}

/* v[i] = e^(v[i] - mx), i < n; every v[i] <= mx. */
OPS_INLINE void exp_shifted(float *v, int n, float mx)
{
    SC_OMP(omp simd)
    for (int i = 0; i < n; i++)
        v[i] = ops_exp_neg(v[i] - mx);
}

/* ---- attention ---- */

/* Keys per score block: the scores of ATTN_ROWS query rows against ATTN_KEYS keys stay in
 * registers while the head_dim products are summed (ATTN_ROWS independent sums, so the adds do
 * not wait on each other, and each K' row loaded serves them all). K' is stored transposed with
 * its rows padded to a multiple of ATTN_KEYS (zeros), so every block is whole. */
#define ATTN_KEYS 16
#define ATTN_ROWS 4
#define ATTN_MAX_HEAD_DIM 256 /* the bound of the per-row buffers below */

static inline int attn_padded(int len)
{
    return (len + ATTN_KEYS - 1) / ATTN_KEYS * ATTN_KEYS;
}

/* K' = K + bk transposed into kt, [head_dim, attn_padded(len)], the padding columns zero. */
OPS_INLINE void attn_transpose_k(const float *kbase, const float *bk, int len, size_t stride,
                                 const int head_dim, float *restrict kt)
{
    const int lp = attn_padded(len);
    for (int d = 0; d < head_dim; d++)
        for (int j = len; j < lp; j++)
            kt[(size_t)d * (size_t)lp + (size_t)j] = 0.0f;
    for (int j = 0; j < len; j++) {
        const float *k = kbase + (size_t)j * stride;
        for (int d = 0; d < head_dim; d++)
            kt[(size_t)d * (size_t)lp + (size_t)j] = k[d] + bk[d];
    }
}

/* One (sequence, head): for each query row i, ctx_i = softmax(q'_i·K'ᵀ·scale)·V' + bv, with
 * q' = q + bq and K' = K + bk (the key bias shifts a row's scores by one constant, which softmax
 * ignores; it is kept so the scores are the literal ones). K' is copied transposed, [head_dim,
 * padded len]; the query rows go ATTN_ROWS at a time (the last group padded with copies of its
 * first row, computed and not stored); the softmax is the two-pass one over the whole row (len
 * <= the model's positions); the probabilities then sum the value rows into head_dim
 * accumulators per row, each value row loaded once for the group. kt and sc are the caller's
 * scratch: head_dim × attn_padded(len) and ATTN_ROWS × attn_padded(len) floats. Inlined with a
 * constant head_dim (attention_head), the loops over it unroll into registers. */
static inline __attribute__((always_inline)) void
attention_head_n(const float *qbase, const float *bq, const float *kbase, const float *bk,
                 const float *vbase, const float *bv, int len, size_t stride, size_t ctx_stride,
                 const int head_dim, float scale, float *restrict kt, float *restrict sc,
                 float *ctx)
{
    const int lp = attn_padded(len);
    attn_transpose_k(kbase, bk, len, stride, head_dim, kt);
    float qs[ATTN_ROWS][ATTN_MAX_HEAD_DIM], acc[ATTN_ROWS][ATTN_MAX_HEAD_DIM];
    for (int i0 = 0; i0 < len; i0 += ATTN_ROWS) {
        const int nr = len - i0 < ATTN_ROWS ? len - i0 : ATTN_ROWS;
        for (int r = 0; r < ATTN_ROWS; r++) {
            const float *q = qbase + (size_t)(i0 + (r < nr ? r : 0)) * stride;
            for (int d = 0; d < head_dim; d++)
                qs[r][d] = (q[d] + bq[d]) * scale;
        }
        for (int j0 = 0; j0 < lp; j0 += ATTN_KEYS) {
            float blk[ATTN_ROWS][ATTN_KEYS] = {{0}};
            for (int d = 0; d < head_dim; d++) {
                const float *row = kt + (size_t)d * (size_t)lp + (size_t)j0;
                for (int r = 0; r < ATTN_ROWS; r++)
                    for (int jj = 0; jj < ATTN_KEYS; jj++)
                        blk[r][jj] += qs[r][d] * row[jj];
            }
            for (int r = 0; r < ATTN_ROWS; r++)
                for (int jj = 0; jj < ATTN_KEYS; jj++)
                    sc[(size_t)r * (size_t)lp + (size_t)(j0 + jj)] = blk[r][jj];
        }
        float inv[ATTN_ROWS];
        for (int r = 0; r < ATTN_ROWS; r++) {
            float *sr = sc + (size_t)r * (size_t)lp, mx = -INFINITY, sum = 0.0f;
            for (int j = 0; j < len; j++)
                mx = sr[j] > mx ? sr[j] : mx;
            exp_shifted(sr, len, mx);
            SC_OMP(omp simd reduction(+ : sum))
            for (int j = 0; j < len; j++)
                sum += sr[j];
            inv[r] = 1.0f / sum;
            for (int d = 0; d < head_dim; d++)
                acc[r][d] = 0.0f;
        }
        for (int j = 0; j < len; j++) {
            const float *v = vbase + (size_t)j * stride;
            for (int r = 0; r < ATTN_ROWS; r++) {
                const float p = sc[(size_t)r * (size_t)lp + (size_t)j];
                for (int d = 0; d < head_dim; d++)
                    acc[r][d] += p * v[d];
            }
        }
        for (int r = 0; r < nr; r++) {
            float *out = ctx + (size_t)(i0 + r) * ctx_stride;
            for (int d = 0; d < head_dim; d++)
                out[d] = acc[r][d] * inv[r] + bv[d];
        }
    }
}

/* attention_head_n with head_dim a constant where it is MiniLM's (32), else as given. */
OPS_CLONES static void attention_head(const float *qbase, const float *bq, const float *kbase,
                                      const float *bk, const float *vbase, const float *bv,
                                      int len, size_t stride, size_t ctx_stride, int head_dim,
                                      float scale, float *kt, float *sc, float *ctx)
{
    if (head_dim == 32)
        attention_head_n(qbase, bq, kbase, bk, vbase, bv, len, stride, ctx_stride, 32, scale, kt,
                         sc, ctx);
    else
        attention_head_n(qbase, bq, kbase, bk, vbase, bv, len, stride, ctx_stride, head_dim,
                         scale, kt, sc, ctx);
}

#ifdef OPS_X86_KERNELS
/* e^x, x <= 0, 16 lanes: ops_exp_neg's steps (the rounding by roundscale, 2^k by scalef). */
__attribute__((target("avx512f"))) static inline __m512 exp_neg16(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(OPS_EXP_MIN));
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(OPS_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(OPS_LN2_HI), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(OPS_LN2_LO), r);
    __m512 p = _mm512_set1_ps(OPS_EXP_C5);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(OPS_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(OPS_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(OPS_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(OPS_EXP_C1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(OPS_EXP_C0));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, k);
}

/* The mask of the lanes j0 + l < len of a block of 16. */
static inline __mmask16 attn_lanes(int len, int j0)
{
    int n = len - j0;
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

/* attention_head_n for head_dim 32 in AVX-512 registers: the scores of ATTN_ROWS query rows
 * against 16 keys at a time (one register per row), the softmax over whole registers (the
 * padding lanes masked off), and the probabilities times the value rows into two registers per
 * query row. Same scratch and results as attention_head_n. */
__attribute__((target("avx512f"))) static void
attention_head32_avx512(const float *qbase, const float *bq, const float *kbase, const float *bk,
                        const float *vbase, const float *bv, int len, size_t stride,
                        size_t ctx_stride, float scale, float *restrict kt, float *restrict sc,
                        float *ctx)
{
    const int lp = attn_padded(len);
    attn_transpose_k(kbase, bk, len, stride, 32, kt);
    const __m512 scl = _mm512_set1_ps(scale);
    const __m512 bq0 = _mm512_loadu_ps(bq), bq1 = _mm512_loadu_ps(bq + 16);
    const __m512 bv0 = _mm512_loadu_ps(bv), bv1 = _mm512_loadu_ps(bv + 16);
    float qs[ATTN_ROWS][32];
    for (int i0 = 0; i0 < len; i0 += ATTN_ROWS) {
        const int nr = len - i0 < ATTN_ROWS ? len - i0 : ATTN_ROWS;
        for (int r = 0; r < ATTN_ROWS; r++) {
            const float *q = qbase + (size_t)(i0 + (r < nr ? r : 0)) * stride;
            _mm512_storeu_ps(qs[r], _mm512_mul_ps(_mm512_add_ps(_mm512_loadu_ps(q), bq0), scl));
            _mm512_storeu_ps(qs[r] + 16,
                             _mm512_mul_ps(_mm512_add_ps(_mm512_loadu_ps(q + 16), bq1), scl));
        }
        for (int j0 = 0; j0 < lp; j0 += ATTN_KEYS) {
            __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
            const float *col = kt + j0;
            for (int d = 0; d < 32; d++) {
                __m512 kv = _mm512_loadu_ps(col + (size_t)d * (size_t)lp);
                s0 = _mm512_fmadd_ps(_mm512_set1_ps(qs[0][d]), kv, s0);
                s1 = _mm512_fmadd_ps(_mm512_set1_ps(qs[1][d]), kv, s1);
                s2 = _mm512_fmadd_ps(_mm512_set1_ps(qs[2][d]), kv, s2);
                s3 = _mm512_fmadd_ps(_mm512_set1_ps(qs[3][d]), kv, s3);
            }
            _mm512_storeu_ps(sc + j0, s0);
            _mm512_storeu_ps(sc + (size_t)lp + (size_t)j0, s1);
            _mm512_storeu_ps(sc + 2 * (size_t)lp + (size_t)j0, s2);
            _mm512_storeu_ps(sc + 3 * (size_t)lp + (size_t)j0, s3);
        }
        float inv[ATTN_ROWS];
        for (int r = 0; r < ATTN_ROWS; r++) {
            float *sr = sc + (size_t)r * (size_t)lp;
            __m512 mx = _mm512_set1_ps(-INFINITY);
            for (int j0 = 0; j0 < lp; j0 += ATTN_KEYS)
                mx = _mm512_mask_max_ps(mx, attn_lanes(len, j0), mx, _mm512_loadu_ps(sr + j0));
            const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
            __m512 sum = _mm512_setzero_ps();
            for (int j0 = 0; j0 < lp; j0 += ATTN_KEYS) {
                __m512 e = _mm512_maskz_mov_ps(attn_lanes(len, j0),
                                               exp_neg16(_mm512_sub_ps(_mm512_loadu_ps(sr + j0), m)));
                _mm512_storeu_ps(sr + j0, e);
                sum = _mm512_add_ps(sum, e);
            }
            inv[r] = 1.0f / _mm512_reduce_add_ps(sum);
        }
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
               a30 = a00, a31 = a00;
        for (int j = 0; j < len; j++) {
            const float *v = vbase + (size_t)j * stride;
            const __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
            __m512 p = _mm512_set1_ps(sc[j]);
            a00 = _mm512_fmadd_ps(p, v0, a00);
            a01 = _mm512_fmadd_ps(p, v1, a01);
            p = _mm512_set1_ps(sc[(size_t)lp + (size_t)j]);
            a10 = _mm512_fmadd_ps(p, v0, a10);
            a11 = _mm512_fmadd_ps(p, v1, a11);
            p = _mm512_set1_ps(sc[2 * (size_t)lp + (size_t)j]);
            a20 = _mm512_fmadd_ps(p, v0, a20);
            a21 = _mm512_fmadd_ps(p, v1, a21);
            p = _mm512_set1_ps(sc[3 * (size_t)lp + (size_t)j]);
            a30 = _mm512_fmadd_ps(p, v0, a30);
            a31 = _mm512_fmadd_ps(p, v1, a31);
        }
        const __m512 lo[ATTN_ROWS] = {a00, a10, a20, a30}, hi[ATTN_ROWS] = {a01, a11, a21, a31};
        for (int r = 0; r < nr; r++) {
            float *out = ctx + (size_t)(i0 + r) * ctx_stride;
            const __m512 iv = _mm512_set1_ps(inv[r]);
            _mm512_storeu_ps(out, _mm512_fmadd_ps(lo[r], iv, bv0));
            _mm512_storeu_ps(out + 16, _mm512_fmadd_ps(hi[r], iv, bv1));
        }
    }
}

/* e^x, x <= 0, 8 lanes: ops_exp_neg's steps (2^k built in the exponent bits). */
__attribute__((target("avx2,fma"))) static inline __m256 exp_neg8(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(OPS_EXP_MIN));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(OPS_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(OPS_LN2_HI), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(OPS_LN2_LO), r);
    __m256 p = _mm256_set1_ps(OPS_EXP_C5);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(OPS_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(OPS_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(OPS_EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(OPS_EXP_C1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(OPS_EXP_C0));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)),
                                  23); /* k in [-126, 0] */
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* All ones in the lanes j0 + l < len of a block of 8, zeros after. */
__attribute__((target("avx2"))) static inline __m256 attn_lanes8(int len, int j0)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(len - j0), lane));
}

/* The largest, and the sum, of the 8 lanes (AVX2 has no reduce instructions). */
__attribute__((target("avx2"))) static inline float hmax8(__m256 v)
{
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_shuffle_ps(h, h, 1)));
}

__attribute__((target("avx2"))) static inline float hsum8(__m256 v)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}

/* attention_head_n for head_dim 32 in AVX2 registers: the scores of ATTN_ROWS query rows against
 * 16 keys at a time (two registers per row), the softmax over whole registers (the padding lanes
 * blended out), and the probabilities times the value rows, half the head at a time (two
 * registers per query row, so the 16 registers hold it). Same scratch and results as
 * attention_head_n. */
__attribute__((target("avx2,fma"))) static void
attention_head32_avx2(const float *qbase, const float *bq, const float *kbase, const float *bk,
                      const float *vbase, const float *bv, int len, size_t stride,
                      size_t ctx_stride, float scale, float *restrict kt, float *restrict sc,
                      float *ctx)
{
    const int lp = attn_padded(len);
    attn_transpose_k(kbase, bk, len, stride, 32, kt);
    const __m256 scl = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
    float qs[ATTN_ROWS][32];
    for (int i0 = 0; i0 < len; i0 += ATTN_ROWS) {
        const int nr = len - i0 < ATTN_ROWS ? len - i0 : ATTN_ROWS;
        for (int r = 0; r < ATTN_ROWS; r++) {
            const float *q = qbase + (size_t)(i0 + (r < nr ? r : 0)) * stride;
            for (int d = 0; d < 32; d += 8)
                _mm256_storeu_ps(qs[r] + d, _mm256_mul_ps(_mm256_add_ps(_mm256_loadu_ps(q + d),
                                                                        _mm256_loadu_ps(bq + d)),
                                                          scl));
        }
        for (int j0 = 0; j0 < lp; j0 += ATTN_KEYS) {
            __m256 s00 = _mm256_setzero_ps(), s01 = s00, s10 = s00, s11 = s00, s20 = s00,
                   s21 = s00, s30 = s00, s31 = s00;
            const float *col = kt + j0;
            for (int d = 0; d < 32; d++) {
                const float *kr = col + (size_t)d * (size_t)lp;
                const __m256 k0 = _mm256_loadu_ps(kr), k1 = _mm256_loadu_ps(kr + 8);
                __m256 q = _mm256_set1_ps(qs[0][d]);
                s00 = _mm256_fmadd_ps(q, k0, s00);
                s01 = _mm256_fmadd_ps(q, k1, s01);
                q = _mm256_set1_ps(qs[1][d]);
                s10 = _mm256_fmadd_ps(q, k0, s10);
                s11 = _mm256_fmadd_ps(q, k1, s11);
                q = _mm256_set1_ps(qs[2][d]);
                s20 = _mm256_fmadd_ps(q, k0, s20);
                s21 = _mm256_fmadd_ps(q, k1, s21);
                q = _mm256_set1_ps(qs[3][d]);
                s30 = _mm256_fmadd_ps(q, k0, s30);
                s31 = _mm256_fmadd_ps(q, k1, s31);
            }
            float *o = sc + j0;
            _mm256_storeu_ps(o, s00);
            _mm256_storeu_ps(o + 8, s01);
            _mm256_storeu_ps(o + lp, s10);
            _mm256_storeu_ps(o + lp + 8, s11);
            _mm256_storeu_ps(o + 2 * (size_t)lp, s20);
            _mm256_storeu_ps(o + 2 * (size_t)lp + 8, s21);
            _mm256_storeu_ps(o + 3 * (size_t)lp, s30);
            _mm256_storeu_ps(o + 3 * (size_t)lp + 8, s31);
        }
        float inv[ATTN_ROWS];
        for (int r = 0; r < ATTN_ROWS; r++) {
            float *sr = sc + (size_t)r * (size_t)lp;
            __m256 mx = ninf;
            for (int j0 = 0; j0 < lp; j0 += 8)
                mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, _mm256_loadu_ps(sr + j0),
                                                        attn_lanes8(len, j0)));
            const __m256 m = _mm256_set1_ps(hmax8(mx));
            __m256 sum = _mm256_setzero_ps();
            for (int j0 = 0; j0 < lp; j0 += 8) {
                __m256 e = _mm256_and_ps(exp_neg8(_mm256_sub_ps(_mm256_loadu_ps(sr + j0), m)),
                                         attn_lanes8(len, j0));
                _mm256_storeu_ps(sr + j0, e);
                sum = _mm256_add_ps(sum, e);
            }
            inv[r] = 1.0f / hsum8(sum);
        }
        for (int h = 0; h < 32; h += 16) { /* the value rows' dims h .. h+15 */
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00,
                   a21 = a00, a30 = a00, a31 = a00;
            for (int j = 0; j < len; j++) {
                const float *v = vbase + (size_t)j * stride + h;
                const __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8);
                __m256 p = _mm256_set1_ps(sc[j]);
                a00 = _mm256_fmadd_ps(p, v0, a00);
                a01 = _mm256_fmadd_ps(p, v1, a01);
                p = _mm256_set1_ps(sc[(size_t)lp + (size_t)j]);
                a10 = _mm256_fmadd_ps(p, v0, a10);
                a11 = _mm256_fmadd_ps(p, v1, a11);
                p = _mm256_set1_ps(sc[2 * (size_t)lp + (size_t)j]);
                a20 = _mm256_fmadd_ps(p, v0, a20);
                a21 = _mm256_fmadd_ps(p, v1, a21);
                p = _mm256_set1_ps(sc[3 * (size_t)lp + (size_t)j]);
                a30 = _mm256_fmadd_ps(p, v0, a30);
                a31 = _mm256_fmadd_ps(p, v1, a31);
            }
            const __m256 lo[ATTN_ROWS] = {a00, a10, a20, a30}, hi[ATTN_ROWS] = {a01, a11, a21, a31};
            const __m256 b0 = _mm256_loadu_ps(bv + h), b1 = _mm256_loadu_ps(bv + h + 8);
            for (int r = 0; r < nr; r++) {
                float *out = ctx + (size_t)(i0 + r) * ctx_stride + h;
                const __m256 iv = _mm256_set1_ps(inv[r]);
                _mm256_storeu_ps(out, _mm256_fmadd_ps(lo[r], iv, b0));
                _mm256_storeu_ps(out + 8, _mm256_fmadd_ps(hi[r], iv, b1));
            }
        }
    }
}
#endif

/* The attention of one (sequence, head): for head_dim 32, the AVX-512 kernel, else the AVX2 one,
 * as far as the CPU has them and sc_ops_cpu_limit allows; else attention_head. */
static sc_ops_isa_t ops_limit = SC_OPS_AVX512; /* sc_ops_cpu_limit; read before each region */

void sc_ops_cpu_limit(sc_ops_isa_t max)
{
    ops_limit = max;
}

/* The kernel attention_task takes for this head_dim. */
static sc_ops_isa_t attention_isa(int head_dim)
{
#ifdef OPS_X86_KERNELS
    if (head_dim != 32)
        return SC_OPS_PORTABLE;
    if (ops_limit >= SC_OPS_AVX512 && __builtin_cpu_supports("avx512f"))
        return SC_OPS_AVX512;
    if (ops_limit >= SC_OPS_AVX2 && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        return SC_OPS_AVX2;
#else
    (void)head_dim;
#endif
    return SC_OPS_PORTABLE;
}

static void attention_task(sc_ops_isa_t isa, const float *qbase, const float *bq,
                           const float *kbase, const float *bk, const float *vbase,
                           const float *bv, int len, size_t stride, size_t ctx_stride,
                           int head_dim, float scale, float *kt, float *sc, float *ctx)
{
#ifdef OPS_X86_KERNELS
    if (isa == SC_OPS_AVX512) {
        attention_head32_avx512(qbase, bq, kbase, bk, vbase, bv, len, stride, ctx_stride, scale,
                                kt, sc, ctx);
        return;
    }
    if (isa == SC_OPS_AVX2) {
        attention_head32_avx2(qbase, bq, kbase, bk, vbase, bv, len, stride, ctx_stride, scale,
                              kt, sc, ctx);
        return;
    }
#else
    (void)isa;
#endif
    attention_head(qbase, bq, kbase, bk, vbase, bv, len, stride, ctx_stride, head_dim, scale, kt,
                   sc, ctx);
}

int sc_attention_cpu(const float *qkv, const float *qkv_bias, const int32_t *seq_off,
                      int n_seqs, int heads, int head_dim, float *ctx)
{
    const int hidden = heads * head_dim;
    const size_t stride = 3 * (size_t)hidden;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const int tasks = n_seqs * heads;
    int longest = 0;
    for (int s = 0; s < n_seqs; s++)
        longest = seq_off[s + 1] - seq_off[s] > longest ? seq_off[s + 1] - seq_off[s] : longest;
    if (head_dim < 1 || head_dim > ATTN_MAX_HEAD_DIM)
        return -1;
    int failed = 0;
    const sc_ops_isa_t isa = attention_isa(head_dim);
    SC_OMP(omp parallel)
    {
        /* each thread's scratch: K' transposed and ATTN_ROWS rows of scores */
        const size_t lp = (size_t)attn_padded(longest > 0 ? longest : 1);
        float *kt = malloc(((size_t)head_dim + ATTN_ROWS) * lp * sizeof *kt);
        if (!kt) {
            SC_OMP(omp atomic write)
            failed = 1;
        }
        SC_OMP(omp for schedule(dynamic, 1))
        for (int task = 0; task < tasks; task++) {
            int s = task / heads, h = task % heads;
            int begin = seq_off[s], len = seq_off[s + 1] - seq_off[s];
            size_t col = (size_t)h * (size_t)head_dim;
            const float *base = qkv + (size_t)begin * stride + col;
            if (kt && len > 0)
                attention_task(isa, base, qkv_bias + col, base + hidden, qkv_bias + hidden + col,
                               base + 2 * (size_t)hidden, qkv_bias + 2 * (size_t)hidden + col,
                               len, stride, (size_t)hidden, head_dim, scale, kt,
                               kt + (size_t)head_dim * (size_t)attn_padded(len),
                               ctx + (size_t)begin * (size_t)hidden + col);
        }
        free(kt);
    }
    return failed ? -1 : 0;
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
