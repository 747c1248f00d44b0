/* test_ops_cpu.c - each CPU op of host/ops/ops_cpu.c against a naive double-precision formula. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host/ops/ops_cpu.h"

#define DIM   384
#define HEADS 12
#define HD    32
#define FFN   1536

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* Uniform in [-1, 1): a fixed xorshift, so a failure reproduces. */
static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *rand_array(size_t n, float scale)
{
    float *a = malloc(n * sizeof *a);
    assert_non_null(a);
    for (size_t i = 0; i < n; i++)
        a[i] = frand() * scale;
    return a;
}

/* Max over i of |got - want| / (tol_abs + tol_rel·|want|); also prints the max absolute error. */
static double check(const char *what, const float *got, const double *want, size_t n,
                    double tol_abs, double tol_rel)
{
    double worst = 0, max_abs = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        max_abs = e > max_abs ? e : max_abs;
        double r = e / (tol_abs + tol_rel * fabs(want[i]));
        worst = r > worst ? r : worst;
        if (!(r <= 1.0))
            fail_msg("%s: element %zu: got %.9g, want %.9g", what, i, (double)got[i], want[i]);
    }
    printf("  %-28s max |err| %.3g over %zu values\n", what, max_abs, n);
    return worst;
}

static void ref_layernorm(const double *v, const float *g, const float *b, int dim, double eps,
                          double *out)
{
    double mean = 0, var = 0;
    for (int c = 0; c < dim; c++)
        mean += v[c];
    mean /= dim;
    for (int c = 0; c < dim; c++)
        var += (v[c] - mean) * (v[c] - mean);
    var /= dim;
    for (int c = 0; c < dim; c++)
        out[c] = (v[c] - mean) / sqrt(var + eps) * g[c] + b[c];
}

static void test_embed_layernorm(void **state)
{
    (void)state;
    const int vocab = 100, max_pos = 64, n = 50;
    float *word = rand_array((size_t)vocab * DIM, 1.0f);
    float *pos = rand_array((size_t)max_pos * DIM, 0.5f);
    float *type = rand_array(2 * DIM, 0.1f);
    float *g = rand_array(DIM, 1.0f), *b = rand_array(DIM, 0.2f);
    int32_t ids[50], p[50];
    for (int t = 0; t < n; t++) {
        ids[t] = (int32_t)((t * 37 + 11) % vocab);
        p[t] = t % 17;
    }
    float *out = malloc((size_t)n * DIM * sizeof *out);
    double *want = malloc((size_t)n * DIM * sizeof *want), v[DIM];
    sc_embed_layernorm_cpu(ids, p, n, word, pos, type, g, b, DIM, 1e-12f, out);
    for (int t = 0; t < n; t++) {
        for (int c = 0; c < DIM; c++)
            v[c] = (double)word[ids[t] * DIM + c] + pos[p[t] * DIM + c] + type[c];
        ref_layernorm(v, g, b, DIM, 1e-12, want + (size_t)t * DIM);
    }
    check("embed_layernorm", out, want, (size_t)n * DIM, 1e-5, 1e-5);
    free(word), free(pos), free(type), free(g), free(b), free(out), free(want);
}

static void test_bias_residual_layernorm(void **state)
{
    (void)state;
    const int rows = 70;
    size_t n = (size_t)rows * DIM;
    float *x = rand_array(n, 3.0f), *res = rand_array(n, 2.0f);
    float *bias = rand_array(DIM, 0.5f), *g = rand_array(DIM, 1.0f), *b = rand_array(DIM, 0.3f);
    /* a common offset on one row: the variance must not cancel */
    for (int c = 0; c < DIM; c++)
        res[5 * DIM + c] += 1000.0f;
    double *want = malloc(n * sizeof *want), v[DIM];
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < DIM; c++)
            v[c] = (double)x[r * DIM + c] + bias[c] + res[r * DIM + c];
        ref_layernorm(v, g, b, DIM, 1e-12, want + (size_t)r * DIM);
    }
    float *out = malloc(n * sizeof *out);
    sc_bias_residual_layernorm_cpu(x, bias, res, g, b, rows, DIM, 1e-12f, out);
    check("bias_residual_layernorm", out, want, n, 2e-5, 2e-5);
    /* out aliasing residual gives the same */
    sc_bias_residual_layernorm_cpu(x, bias, res, g, b, rows, DIM, 1e-12f, res);
    check("bias_residual_layernorm (in place)", res, want, n, 2e-5, 2e-5);
    free(x), free(res), free(bias), free(g), free(b), free(want), free(out);
}

static void test_bias_gelu(void **state)
{
    (void)state;
    const int rows = 20;
    size_t n = (size_t)rows * FFN;
    float *x = rand_array(n, 6.0f), *bias = rand_array(FFN, 1.0f);
    double *want = malloc(n * sizeof *want);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < FFN; c++) {
            double v = (double)x[r * FFN + c] + bias[c];
            want[r * FFN + c] = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
        }
    sc_bias_gelu_cpu(x, bias, rows, FFN);
    check("bias_gelu", x, want, n, 1e-6, 1e-6);
    free(x), free(bias), free(want);
}

/* Naive attention of one sequence (rows begin..begin+len) in double, one head at a time. */
/* int8 operands: rows quantised to u8 (a row of zeros, one of positives, random rows with a
 * few outsized columns and a smoothing vector) within half a step of the values, zero points in
 * range; the s32 products of those rows and random s8 weights dequantised against a double
 * formula, and again through bias, GELU and bf16 (within one bf16 rounding, 2^-8). */
static void test_int8_operands(void **state)
{
    (void)state;
    enum { R = 37, K = DIM, N = 96 };
    float *x = rand_array((size_t)R * K, 3.0f), *inv_smooth = rand_array(K, 0.5f);
    for (int c = 0; c < K; c++) {
        x[c] = 0.0f;                       /* row 0: zeros */
        x[K + c] = fabsf(x[K + c]) + 0.5f; /* row 1: all positive */
        inv_smooth[c] = 1.0f + inv_smooth[c];
    }
    for (int r = 2; r < R; r++)
        x[(size_t)r * K + (size_t)(r * 7) % K] *= 40.0f; /* an outlier per row */
    uint8_t *q = malloc((size_t)R * K);
    float scale[R];
    int32_t zero[R];
    for (int smooth = 0; smooth < 2; smooth++) {
        const float *inv = smooth ? inv_smooth : NULL;
        sc_quantize_u8_rows_cpu(x, inv, R, K, q, scale, zero);
        for (int r = 0; r < R; r++) {
            assert_true(scale[r] > 0.0f && zero[r] >= 0 && zero[r] <= 255);
            for (int c = 0; c < K; c++) {
                double v = (double)x[(size_t)r * K + c] * (inv ? inv[c] : 1.0);
                double back = scale[r] * ((double)q[(size_t)r * K + c] - zero[r]);
                if (!(fabs(back - v) <= 0.5001 * scale[r] + 1e-7))
                    fail_msg("quantise row %d col %d: %.9g back as %.9g (step %.3g)", r, c, v,
                             back, (double)scale[r]);
            }
        }
    }
    int8_t *w = malloc((size_t)N * K);
    float *wscale = rand_array(N, 0.01f), *bias = rand_array(N, 1.0f);
    int32_t *colsum = calloc(N, sizeof *colsum), *acc = malloc((size_t)R * N * sizeof *acc);
    for (int n = 0; n < N; n++) {
        wscale[n] = fabsf(wscale[n]) + 1e-3f;
        for (int c = 0; c < K; c++) {
            w[(size_t)n * K + c] = (int8_t)lrintf(frand() * 127.0f);
            colsum[n] += w[(size_t)n * K + c];
        }
    }
    for (int r = 0; r < R; r++)
        for (int n = 0; n < N; n++) {
            int32_t a = 0;
            for (int c = 0; c < K; c++)
                a += (int32_t)q[(size_t)r * K + c] * w[(size_t)n * K + c];
            acc[(size_t)r * N + n] = a;
        }
    float *out = malloc((size_t)R * N * sizeof *out);
    uint16_t *outbf = malloc((size_t)R * N * sizeof *outbf);
    double *want = malloc((size_t)R * N * sizeof *want), *want_gelu = malloc((size_t)R * N * sizeof *want_gelu);
    for (int r = 0; r < R; r++)
        for (int n = 0; n < N; n++) {
            double y = (double)scale[r] * wscale[n] *
                       ((double)acc[(size_t)r * N + n] - (double)zero[r] * colsum[n]);
            want[(size_t)r * N + n] = y;
            y += bias[n];
            want_gelu[(size_t)r * N + n] = 0.5 * y * (1.0 + erf(y / sqrt(2.0)));
        }
    sc_dequant_rows_cpu(acc, scale, zero, wscale, colsum, R, N, out);
    check("dequantise", out, want, (size_t)R * N, 1e-6, 1e-6);
    sc_dequant_bias_gelu_bf16_cpu(acc, scale, zero, wscale, colsum, bias, R, N, outbf);
    for (size_t i = 0; i < (size_t)R * N; i++) {
        uint32_t u = (uint32_t)outbf[i] << 16;
        memcpy(&out[i], &u, sizeof u);
    }
    check("dequantise, bias, GELU, bf16", out, want_gelu, (size_t)R * N, 1e-6, 1.0 / 256);
    free(x), free(inv_smooth), free(q), free(w), free(wscale), free(bias), free(colsum);
    free(acc), free(out), free(outbf), free(want), free(want_gelu);
}

static void ref_attention(const float *qkv, const float *bias, int begin, int len, double *ctx)
{
    const int H = HEADS * HD;
    double *sc = malloc((size_t)len * sizeof *sc);
    for (int h = 0; h < HEADS; h++)
        for (int i = 0; i < len; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < len; j++) {
                double s = 0;
                for (int d = 0; d < HD; d++) {
                    double q = (double)qkv[(size_t)(begin + i) * 3 * H + h * HD + d] + bias[h * HD + d];
                    double k = (double)qkv[(size_t)(begin + j) * 3 * H + H + h * HD + d] +
                               bias[H + h * HD + d];
                    s += q * k;
                }
                sc[j] = s / sqrt((double)HD);
                mx = sc[j] > mx ? sc[j] : mx;
            }
            for (int j = 0; j < len; j++)
                sum += (sc[j] = exp(sc[j] - mx));
            for (int d = 0; d < HD; d++) {
                double acc = 0;
                for (int j = 0; j < len; j++)
                    acc += sc[j] / sum *
                           ((double)qkv[(size_t)(begin + j) * 3 * H + 2 * H + h * HD + d] +
                            bias[2 * H + h * HD + d]);
                ctx[(size_t)(begin + i) * H + h * HD + d] = acc;
            }
        }
    free(sc);
}

static void test_attention_packed(void **state)
{
    (void)state;
    /* lengths around the online-softmax block (64) and 1-token sequences */
    static const int lens[] = {1, 7, 32, 64, 65, 130, 2, 200, 1, 33};
    const int ns = (int)(sizeof lens / sizeof lens[0]), H = HEADS * HD;
    int32_t off[sizeof lens / sizeof lens[0] + 1];
    off[0] = 0;
    for (int s = 0; s < ns; s++)
        off[s + 1] = off[s] + lens[s];
    int T = off[ns];
    /* large activations (scores of tens), so the softmax must subtract the row maximum */
    float *qkv = rand_array((size_t)T * 3 * H, 3.0f), *bias = rand_array(3 * (size_t)H, 1.0f);
    float *ctx = malloc((size_t)T * H * sizeof *ctx);
    double *want = malloc((size_t)T * H * sizeof *want);
    for (int s = 0; s < ns; s++)
        ref_attention(qkv, bias, off[s], lens[s], want);
    assert_int_equal(sc_attention_cpu(qkv, bias, off, ns, HEADS, HD, ctx), 0);
    check("attention (packed)", ctx, want, (size_t)T * H, 1e-5, 1e-5);
    /* the AVX2 kernel and the portable loops too, where this CPU has a wider kernel */
    sc_ops_cpu_limit(SC_OPS_AVX2);
    assert_int_equal(sc_attention_cpu(qkv, bias, off, ns, HEADS, HD, ctx), 0);
    check("attention (packed, at most AVX2)", ctx, want, (size_t)T * H, 1e-5, 1e-5);
    sc_ops_cpu_limit(SC_OPS_PORTABLE);
    assert_int_equal(sc_attention_cpu(qkv, bias, off, ns, HEADS, HD, ctx), 0);
    sc_ops_cpu_limit(SC_OPS_AVX512);
    check("attention (packed, portable loops)", ctx, want, (size_t)T * H, 1e-5, 1e-5);
    free(qkv), free(bias), free(ctx), free(want);
}

static void test_meanpool_l2(void **state)
{
    (void)state;
    static const int lens[] = {1, 5, 32, 3, 256};
    const int ns = 5;
    int32_t off[6] = {0};
    for (int s = 0; s < ns; s++)
        off[s + 1] = off[s] + lens[s];
    float *x = rand_array((size_t)off[ns] * DIM, 2.0f);
    float *out = malloc((size_t)ns * DIM * sizeof *out);
    double *want = malloc((size_t)ns * DIM * sizeof *want);
    for (int s = 0; s < ns; s++) {
        double norm = 0;
        for (int c = 0; c < DIM; c++) {
            double m = 0;
            for (int t = off[s]; t < off[s + 1]; t++)
                m += x[(size_t)t * DIM + c];
            want[s * DIM + c] = m / lens[s];
            norm += (m / lens[s]) * (m / lens[s]);
        }
        for (int c = 0; c < DIM; c++)
            want[s * DIM + c] /= sqrt(norm);
    }
    sc_meanpool_l2_cpu(x, off, ns, DIM, out);
    check("meanpool_l2", out, want, (size_t)ns * DIM, 1e-7, 1e-6);
    free(x), free(out), free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embed_layernorm),
        cmocka_unit_test(test_bias_residual_layernorm),
        cmocka_unit_test(test_bias_gelu),
        cmocka_unit_test(test_attention_packed),
        cmocka_unit_test(test_meanpool_l2),
        cmocka_unit_test(test_int8_operands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
