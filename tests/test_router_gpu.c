/* test_router_gpu.c - the router head kernel (kernels/router_head.cu) against its CPU twin
 * sc_router_head_cpu on seeded random weights and features: logistic and MLP heads, row counts
 * that do and do not fill a block, hidden sizes that do and do not fill a warp. Plain C (no
 * cmocka). Exit 0 all pass, 1 any fail, 77 no CUDA device. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#define GPU_TEST_SEED 0x2545f4914f6cdd1dull
#include "tests/gpu_test_util.h"
#include "host/ops/ops_cpu.h"
#include "kernels/kernels.h"
#include "models/encoder_backend.h"
#include "models/router.h"

#define SKIP    77
#define TOL_ABS 2e-6f /* probabilities: fp32 sums in another order, device expf */
#define TOL_REL 1e-4f

static int failures;

static float *rand_vec(size_t n, float lo, float hi)
{
    float *v = xmalloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = rng_uniform(lo, hi);
    return v;
}

static float *to_dev(const float *src, size_t n)
{
    void *d = NULL;
    CK(cudaMalloc(&d, (n ? n : 1) * sizeof(float)));
    if (n)
        CK(cudaMemcpy(d, src, n * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}

static void test_head(int n, int f, int hidden)
{
    size_t nw2 = hidden ? (size_t)hidden : (size_t)f;
    float *x = rand_vec((size_t)n * (size_t)f, -2.f, 2.f);
    float *w1 = rand_vec((size_t)hidden * (size_t)f, -0.1f, 0.1f);
    float *b1 = rand_vec((size_t)hidden, -0.5f, 0.5f);
    float *w2 = rand_vec(nw2, -0.3f, 0.3f);
    float b2 = -0.7f;
    float *ref = rand_vec((size_t)n, 0.f, 0.f), *got = rand_vec((size_t)n, 0.f, 0.f);
    sc_router_head_cpu(x, n, f, w1, b1, hidden, w2, b2, ref);

    float *dx = to_dev(x, (size_t)n * (size_t)f), *dw1 = to_dev(w1, (size_t)hidden * (size_t)f);
    float *db1 = to_dev(b1, (size_t)hidden), *dw2 = to_dev(w2, nw2), *dout = NULL;
    CK(cudaMalloc((void **)&dout, (size_t)(n ? n : 1) * sizeof(float)));
    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    CK(sc_router_head(dx, n, f, hidden ? dw1 : NULL, hidden ? db1 : NULL, hidden, dw2, b2, dout,
                      s));
    CK(cudaStreamSynchronize(s));
    CK(cudaMemcpy(got, dout, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost));

    double max_abs = 0.0;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= TOL_ABS + fabs((double)ref[i]) * TOL_REL))
            bad++;
        if (d > max_abs || d != d)
            max_abs = d;
    }
    printf("router_head n=%-6d f=%-5d hidden=%-4d max_abs_err=%-10.3g %s\n", n, f, hidden, max_abs,
           bad ? "FAIL" : "pass");
    failures += bad != 0;
    CK(cudaStreamDestroy(s));
    CK(cudaFree(dx));
    CK(cudaFree(dw1));
    CK(cudaFree(db1));
    CK(cudaFree(dw2));
    CK(cudaFree(dout));
    free(x), free(w1), free(b1), free(w2), free(ref), free(got);
}

int main(void)
{
    char err[512] = "";
    if (!sc_encoder_gpu_available(err, sizeof err)) {
        printf("test_router_gpu: skipped, no CUDA device (%s)\n", err);
        return SKIP;
    }
    const int f = SC_ROUTER_NFEATURES;
    test_head(256, f, 0);
    test_head(1, f, 0);
    test_head(257, f, 32);  /* the shipped MLP shape, a last block with one row */
    test_head(1000, f, 40); /* lanes with two hidden units and lanes with one */
    test_head(7, 33, 5);
    test_head(0, f, 32);
    printf("test_router_gpu: %s\n", failures ? "FAIL" : "all pass");
    return failures ? 1 : 0;
}
