/* test_kernels_gpu.c - every CUDA op of kernels/ against its CPU twin in host/ops/ops_cpu.c, on seeded
 * random inputs rounded to fp16 first (both sides see the same values): per op the max absolute
 * error and pass/fail under |gpu − ref| <= tol + |ref|·eps. Plain C (no cmocka): it builds on a
 * bare GPU machine. Exit 0 all pass, 1 any fail, 77 no CUDA device. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "host/ops/ops_cpu.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "tests/gpu_test_util.h"
#include "models/encoder_backend.h"

#define SKIP   77
#define EPS_LN 1e-12f

static int failures;

/* n random values in [lo, hi), rounded to fp16: h gets the bits, f the same values as floats */
static void rand_half(size_t n, float lo, float hi, uint16_t *h, float *f)
{
    for (size_t i = 0; i < n; i++) {
        h[i] = sc_half_from_float(rng_uniform(lo, hi));
        f[i] = sc_half_to_float(h[i]);
    }
}

static void rand_float(size_t n, float lo, float hi, float *f)
{
    for (size_t i = 0; i < n; i++)
        f[i] = rng_uniform(lo, hi);
}

/* ---- device helpers ---- */

static void *to_dev(const void *src, size_t bytes)
{
    void *d = NULL;
    CK(cudaMalloc(&d, bytes ? bytes : 1));
    if (bytes)
        CK(cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice));
    return d;
}

static void from_dev_half(const void *d, size_t n, float *out)
{
    uint16_t *h = xmalloc(n * sizeof *h);
    CK(cudaMemcpy(h, d, n * sizeof *h, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++)
        out[i] = sc_half_to_float(h[i]);
    free(h);
}

/* ---- comparison ---- */

static void compare(const char *op, const float *gpu, const float *ref, size_t n, float tol,
                    float eps)
{
    double max_abs = 0.0;
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)gpu[i] - (double)ref[i]);
        if (!(d <= tol + fabs((double)ref[i]) * eps)) { /* NaN fails too */
            if (!bad)
                first_bad = i;
            bad++;
        }
        if (d > max_abs || d != d)
            max_abs = d;
    }
    printf("%-44s n=%-8zu max_abs_err=%-12.3g tol=%g+|ref|*%g  %s\n", op, n, max_abs, (double)tol,
           (double)eps, bad ? "FAIL" : "pass");
    if (bad) {
        printf("    %zu bad, first at %zu: gpu %.6g ref %.6g\n", bad, first_bad,
               (double)gpu[first_bad], (double)ref[first_bad]);
        failures++;
    }
}

/* ---- ops ---- */

static void test_embed_layernorm(int dim, int n_tokens)
{
    const int vocab = 1000, max_pos = 512;
    uint16_t *wh = xmalloc((size_t)vocab * dim * 2), *ph = xmalloc((size_t)max_pos * dim * 2);
    uint16_t *th = xmalloc((size_t)2 * dim * 2);
    float *wf = xmalloc((size_t)vocab * dim * 4), *pf = xmalloc((size_t)max_pos * dim * 4);
    float *tf = xmalloc((size_t)2 * dim * 4), *g = xmalloc((size_t)dim * 4);
    float *b = xmalloc((size_t)dim * 4), *ref = xmalloc((size_t)n_tokens * dim * 4);
    float *got = xmalloc((size_t)n_tokens * dim * 4);
    int32_t *ids = xmalloc((size_t)n_tokens * 4), *pos = xmalloc((size_t)n_tokens * 4);
    rand_half((size_t)vocab * dim, -1.f, 1.f, wh, wf);
    rand_half((size_t)max_pos * dim, -0.5f, 0.5f, ph, pf);
    rand_half((size_t)2 * dim, -0.2f, 0.2f, th, tf);
    rand_float((size_t)dim, 0.5f, 1.5f, g);
    rand_float((size_t)dim, -0.3f, 0.3f, b);
    for (int t = 0; t < n_tokens; t++) {
        ids[t] = (int32_t)(rng_u32() % (uint32_t)vocab);
        pos[t] = (int32_t)(rng_u32() % (uint32_t)max_pos);
    }
    void *d_w = to_dev(wh, (size_t)vocab * dim * 2), *d_p = to_dev(ph, (size_t)max_pos * dim * 2);
    void *d_t = to_dev(th, (size_t)2 * dim * 2), *d_g = to_dev(g, (size_t)dim * 4);
    void *d_b = to_dev(b, (size_t)dim * 4), *d_ids = to_dev(ids, (size_t)n_tokens * 4);
    void *d_pos = to_dev(pos, (size_t)n_tokens * 4), *d_out = NULL;
    CK(cudaMalloc(&d_out, (size_t)n_tokens * dim * 2));
    CK(sc_embed_layernorm(d_ids, d_pos, n_tokens, d_w, d_p, d_t, d_g, d_b, dim, EPS_LN, d_out, 0));
    CK(cudaDeviceSynchronize());
    from_dev_half(d_out, (size_t)n_tokens * dim, got);
    sc_embed_layernorm_cpu(ids, pos, n_tokens, wf, pf, tf, g, b, dim, EPS_LN, ref);
    char name[64];
    snprintf(name, sizeof name, "embed_layernorm dim=%d", dim);
    /* outputs of a few units; the fp16 output alone is 2^-11 relative */
    compare(name, got, ref, (size_t)n_tokens * dim, 2e-3f, 2e-3f);
    void *dev[] = {d_w, d_p, d_t, d_g, d_b, d_ids, d_pos, d_out};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        CK(cudaFree(dev[i]));
    free(wh), free(ph), free(th), free(wf), free(pf), free(tf), free(g), free(b), free(ref);
    free(got), free(ids), free(pos);
}

static void test_bias_residual_layernorm(int dim, int rows, int alias)
{
    const size_t n = (size_t)rows * dim;
    uint16_t *xh = xmalloc(n * 2), *rh = xmalloc(n * 2), *bh = xmalloc((size_t)dim * 2);
    float *xf = xmalloc(n * 4), *rf = xmalloc(n * 4), *bf = xmalloc((size_t)dim * 4);
    float *g = xmalloc((size_t)dim * 4), *b = xmalloc((size_t)dim * 4);
    float *ref = xmalloc(n * 4), *got = xmalloc(n * 4);
    rand_half(n, -3.f, 3.f, xh, xf);
    rand_half(n, -2.f, 2.f, rh, rf);
    rand_half((size_t)dim, -0.5f, 0.5f, bh, bf);
    rand_float((size_t)dim, 0.5f, 1.5f, g);
    rand_float((size_t)dim, -0.3f, 0.3f, b);
    /* rows with a large common offset: the two-pass variance must not cancel */
    for (int c = 0; c < dim && rows > 1; c++) {
        xh[(size_t)dim + c] = sc_half_from_float(100.f + xf[(size_t)dim + c]);
        xf[(size_t)dim + c] = sc_half_to_float(xh[(size_t)dim + c]);
    }
    void *d_x = to_dev(xh, n * 2), *d_r = to_dev(rh, n * 2), *d_bias = to_dev(bh, (size_t)dim * 2);
    void *d_g = to_dev(g, (size_t)dim * 4), *d_b = to_dev(b, (size_t)dim * 4), *d_out = d_r;
    if (!alias)
        CK(cudaMalloc(&d_out, n * 2));
    CK(sc_bias_residual_layernorm(d_x, d_bias, d_r, d_g, d_b, rows, dim, EPS_LN, d_out, 0));
    CK(cudaDeviceSynchronize());
    from_dev_half(d_out, n, got);
    sc_bias_residual_layernorm_cpu(xf, bf, rf, g, b, rows, dim, EPS_LN, ref);
    char name[64];
    snprintf(name, sizeof name, "bias_residual_layernorm dim=%d%s", dim,
             alias ? " (out=residual)" : "");
    compare(name, got, ref, n, 2e-3f, 2e-3f);
    CK(cudaFree(d_x));
    CK(cudaFree(d_r));
    CK(cudaFree(d_bias));
    CK(cudaFree(d_g));
    CK(cudaFree(d_b));
    if (!alias)
        CK(cudaFree(d_out));
    free(xh), free(rh), free(bh), free(xf), free(rf), free(bf), free(g), free(b), free(ref);
    free(got);
}

static void test_bias_gelu(int rows, int cols)
{
    const size_t n = (size_t)rows * cols;
    uint16_t *xh = xmalloc(n * 2), *bh = xmalloc((size_t)cols * 2);
    float *xf = xmalloc(n * 4), *bf = xmalloc((size_t)cols * 4), *got = xmalloc(n * 4);
    rand_half(n, -5.f, 5.f, xh, xf);
    rand_half((size_t)cols, -1.f, 1.f, bh, bf);
    void *d_x = to_dev(xh, n * 2), *d_b = to_dev(bh, (size_t)cols * 2);
    CK(sc_bias_gelu(d_x, d_b, rows, cols, 0));
    CK(cudaDeviceSynchronize());
    from_dev_half(d_x, n, got);
    sc_bias_gelu_cpu(xf, bf, rows, cols); /* in place: xf is now the reference */
    char name[64];
    snprintf(name, sizeof name, "bias_gelu %dx%d%s", rows, cols, cols % 8 ? " (scalar path)" : "");
    compare(name, got, xf, n, 1e-3f, 1e-3f);
    CK(cudaFree(d_x));
    CK(cudaFree(d_b));
    free(xh), free(bh), free(xf), free(bf), free(got);
}

static void test_attention(const int *lens, int n_seqs, int heads)
{
    const int head_dim = 32, hidden = heads * head_dim;
    int32_t *off = xmalloc(((size_t)n_seqs + 1) * 4);
    int max_len = 0;
    off[0] = 0;
    for (int s = 0; s < n_seqs; s++) {
        off[s + 1] = off[s] + lens[s];
        if (lens[s] > max_len)
            max_len = lens[s];
    }
    const int T = off[n_seqs];
    const size_t nq = (size_t)T * 3 * hidden, nc = (size_t)T * hidden;
    uint16_t *qh = xmalloc(nq * 2), *bh = xmalloc((size_t)3 * hidden * 2);
    float *qf = xmalloc(nq * 4), *bf = xmalloc((size_t)3 * hidden * 4);
    float *ref = xmalloc(nc * 4), *got = xmalloc(nc * 4);
    /* scores of a few units: peaked enough to test the max subtraction, not degenerate */
    rand_half(nq, -2.f, 2.f, qh, qf);
    rand_half((size_t)3 * hidden, -0.5f, 0.5f, bh, bf);
    void *d_q = to_dev(qh, nq * 2), *d_b = to_dev(bh, (size_t)3 * hidden * 2);
    void *d_off = to_dev(off, ((size_t)n_seqs + 1) * 4), *d_c = NULL;
    CK(cudaMalloc(&d_c, nc * 2));
    CK(cudaMemset(d_c, 0xff, nc * 2)); /* NaN: a row the kernel misses fails */
    CK(sc_attention(d_q, d_b, d_off, n_seqs, max_len, heads, head_dim, d_c, 0));
    CK(cudaDeviceSynchronize());
    from_dev_half(d_c, nc, got);
    if (sc_attention_cpu(qf, bf, off, n_seqs, heads, head_dim, ref) != 0) {
        printf("attention: the CPU reference ran out of memory\n");
        failures++;
    }
    char name[64];
    snprintf(name, sizeof name, "attention %d seqs, %d tokens, max_len %d", n_seqs, T, max_len);
    /* K and V are rounded to fp16 after the bias, the output too: ~1e-3 relative */
    compare(name, got, ref, nc, 3e-3f, 5e-3f);
    CK(cudaFree(d_q));
    CK(cudaFree(d_b));
    CK(cudaFree(d_off));
    CK(cudaFree(d_c));
    free(off), free(qh), free(bh), free(qf), free(bf), free(ref), free(got);
}

static void test_meanpool_l2(const int *lens, int n_seqs, int dim)
{
    int32_t *off = xmalloc(((size_t)n_seqs + 1) * 4);
    off[0] = 0;
    for (int s = 0; s < n_seqs; s++)
        off[s + 1] = off[s] + lens[s];
    const int T = off[n_seqs];
    const size_t n = (size_t)T * dim, no = (size_t)n_seqs * dim;
    uint16_t *xh = xmalloc(n * 2);
    float *xf = xmalloc(n * 4), *ref = xmalloc(no * 4), *got = xmalloc(no * 4);
    rand_half(n, -1.f, 1.5f, xh, xf); /* a non-zero mean, as real activations have */
    void *d_x = to_dev(xh, n * 2), *d_off = to_dev(off, ((size_t)n_seqs + 1) * 4), *d_o = NULL;
    CK(cudaMalloc(&d_o, no * 4));
    CK(sc_meanpool_l2(d_x, d_off, n_seqs, dim, d_o, 0));
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(got, d_o, no * 4, cudaMemcpyDeviceToHost));
    sc_meanpool_l2_cpu(xf, off, n_seqs, dim, ref);
    char name[64];
    snprintf(name, sizeof name, "meanpool_l2 %d seqs, dim %d", n_seqs, dim);
    compare(name, got, ref, no, 1e-5f, 1e-4f);
    CK(cudaFree(d_x));
    CK(cudaFree(d_off));
    CK(cudaFree(d_o));
    free(off), free(xh), free(xf), free(ref), free(got);
}

/* Bit-exact against the host conversion: random bit patterns (every exponent, subnormals, infinities
 * and NaNs among them), values near the half range's edges, and exact halfway cases. NaNs compare
 * as "both NaN" (payloads may differ). */
static void test_cast_f16(size_t n)
{
    float *in = malloc(n * sizeof *in);
    uint16_t *got = malloc(n * sizeof *got);
    if (!in || !got)
        exit(1);
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = rng_u32();
        switch (i % 4) {
        case 0: /* any float */
            break;
        case 1: /* exponents around the half range: 2^-26 .. 2^17 */
            bits = (bits & 0x807fffffu) | ((uint32_t)(101 + rng_u32() % 44) << 23);
            break;
        case 2: /* a half value plus exactly half an ulp (the tie), or a bit either side */
            bits = (bits & 0x8ffff000u) | 0x1000u | (rng_u32() % 3 == 0 ? 1u : 0u);
            bits = (bits & 0x807fffffu) | ((uint32_t)(103 + rng_u32() % 40) << 23);
            break;
        default: /* ordinary unit-vector coordinates */
            in[i] = rng_uniform(-0.2f, 0.2f);
            continue;
        }
        memcpy(&in[i], &bits, sizeof bits);
    }
    float *d_in;
    sc_half *d_out;
    CK(cudaMalloc((void **)&d_in, n * sizeof *in));
    CK(cudaMalloc((void **)&d_out, n * sizeof *got));
    CK(cudaMemcpy(d_in, in, n * sizeof *in, cudaMemcpyHostToDevice));
    CK(cudaMemset(d_out, 0xff, n * sizeof *got)); /* poison: every element must be written */
    CK(sc_cast_f16(d_in, d_out, n, 0));
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(got, d_out, n * sizeof *got, cudaMemcpyDeviceToHost));
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        const uint16_t want = sc_half_from_float(in[i]);
        const int nan_w = (want & 0x7c00u) == 0x7c00u && (want & 0x3ffu);
        const int nan_g = (got[i] & 0x7c00u) == 0x7c00u && (got[i] & 0x3ffu);
        if (nan_w ? !nan_g : got[i] != want) {
            if (!bad)
                first = i;
            bad++;
        }
    }
    printf("%-44s n=%-8zu mismatches=%-8zu %s\n", "cast_f16 (bit-exact vs host)", n, bad,
           bad ? "FAIL" : "pass");
    if (bad) {
        uint32_t b;
        memcpy(&b, &in[first], sizeof b);
        printf("    first at %zu: in 0x%08x gpu 0x%04x host 0x%04x\n", first, b, got[first],
               sc_half_from_float(in[first]));
        failures++;
    }
    CK(cudaFree(d_in));
    CK(cudaFree(d_out));
    free(in);
    free(got);
}

int main(void)
{
    char err[512] = "";
    if (!sc_encoder_gpu_available(err, sizeof err)) {
        printf("test_kernels_gpu: skipped, no CUDA device (%s)\n", err);
        return SKIP;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("test_kernels_gpu on %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);

    test_embed_layernorm(384, 517);
    test_embed_layernorm(136, 65);  /* one 8-wide vector for only some lanes */
    test_embed_layernorm(1024, 33); /* the widest row */

    test_bias_residual_layernorm(384, 517, 1);
    test_bias_residual_layernorm(384, 300, 0);
    test_bias_residual_layernorm(136, 65, 0);

    test_bias_gelu(517, 1536);
    test_bias_gelu(33, 100);

    const int mixed[] = {1, 7, 32, 33, 128, 256};
    test_attention(mixed, 6, 12);
    const int shorts[] = {32, 31, 2, 33, 17, 32, 32, 5};
    test_attention(shorts, 8, 12);
    const int one[] = {64};
    test_attention(one, 1, 2);

    test_meanpool_l2(mixed, 6, 384);
    test_meanpool_l2(shorts, 8, 384);

    test_cast_f16(1000003);

    printf("test_kernels_gpu: %s\n", failures ? "FAIL" : "all pass");
    return failures ? 1 : 0;
}
