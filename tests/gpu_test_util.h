/* gpu_test_util.h - what the plain-C GPU tests (tests/test_*_gpu.c) share: a fatal CUDA check with
 * file and line, seeded random numbers (xorshift64*; a test may set GPU_TEST_SEED before including)
 * and a malloc that dies on failure. Tests may die: a CUDA failure here is fatal. */
#ifndef SC_GPU_TEST_UTIL_H
#define SC_GPU_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t ck_err_ = (cudaError_t)(call);                                                 \
        if (ck_err_ != cudaSuccess) {                                                              \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,                          \
                    cudaGetErrorString(ck_err_));                                                  \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#ifndef GPU_TEST_SEED
#define GPU_TEST_SEED 0x9e3779b97f4a7c15ull
#endif

static uint64_t rng_state = GPU_TEST_SEED;

static inline uint32_t rng_u32(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

/* uniform in [lo, hi), 24 bits */
static inline float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rng_u32() >> 8) / (float)(1u << 24);
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

#endif
