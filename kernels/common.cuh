/* common.cuh - what every kernels/<op>.cu shares: the launch check (file and line, as in llm.c),
 * warp reductions and 16-byte fp16 vector helpers. Device code only; no public entry points. */
#ifndef SC_KERNELS_COMMON_CUH
#define SC_KERNELS_COMMON_CUH

#include <stdint.h>
#include <stdio.h>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/kernels.h"

#define SC_WARP      32
#define SC_FULL_MASK 0xffffffffu

/* Launch-time failures (bad configuration, no device) surface here; asynchronous faults surface
 * at the caller's next synchronising call. The launcher returns the error, never exits. */
#define SC_KERNEL_CHECK()                                                                          \
    do {                                                                                           \
        cudaError_t sc_err_ = cudaGetLastError();                                                  \
        if (sc_err_ != cudaSuccess) {                                                              \
            fprintf(stderr, "[CUDA ERROR] at file %s:%d: %s\n", __FILE__, __LINE__,                \
                    cudaGetErrorString(sc_err_));                                                  \
            return (int)sc_err_;                                                                   \
        }                                                                                          \
    } while (0)

/* Argument checks of a launcher: a broken contract is cudaErrorInvalidValue, with the reason. */
#define SC_KERNEL_REQUIRE(cond)                                                                    \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "[CUDA ERROR] at file %s:%d: requirement failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                                              \
            return (int)cudaErrorInvalidValue;                                                     \
        }                                                                                          \
    } while (0)

static inline bool sc_aligned16(const void *p)
{
    return ((uintptr_t)p & 15u) == 0;
}

static __device__ __forceinline__ float sc_warp_sum(float v)
{
#pragma unroll
    for (int o = SC_WARP / 2; o > 0; o >>= 1)
        v += __shfl_xor_sync(SC_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ float sc_warp_max(float v)
{
#pragma unroll
    for (int o = SC_WARP / 2; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(SC_FULL_MASK, v, o));
    return v;
}

/* 8 halves <-> 8 floats through one 16-byte access; p must be 16-byte aligned. */
static __device__ __forceinline__ void sc_load8(const __half *p, float f[8])
{
    uint4 u = *reinterpret_cast<const uint4 *>(p);
    const __half2 *h = reinterpret_cast<const __half2 *>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __half22float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

static __device__ __forceinline__ void sc_store8(__half *p, const float f[8])
{
    uint4 u;
    __half2 *h = reinterpret_cast<__half2 *>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++)
        h[i] = __floats2half2_rn(f[2 * i], f[2 * i + 1]);
    *reinterpret_cast<uint4 *>(p) = u;
}

/* 8 floats from fp32 memory through two 16-byte accesses; p must be 16-byte aligned. */
static __device__ __forceinline__ void sc_load8f(const float *p, float f[8])
{
    float4 a = *reinterpret_cast<const float4 *>(p);
    float4 b = *reinterpret_cast<const float4 *>(p + 4);
    f[0] = a.x;
    f[1] = a.y;
    f[2] = a.z;
    f[3] = a.w;
    f[4] = b.x;
    f[5] = b.y;
    f[6] = b.z;
    f[7] = b.w;
}

/* ---- LayerNorm of one row by one warp ----
 * Lane l holds the 8-wide vectors k*32 + l (k < VPL) of the row, those with (k*32 + l)*8 < dim
 * (dim % 8 == 0, so a vector is whole or absent). Two passes over the registers (mean, then the
 * mean square of v - mean) in fp32: no cancellation, no second read of memory. */
#define SC_LN_MAX_VPL 4 /* dim <= SC_LN_MAX_VPL * 32 * 8 = 1024 */
#define SC_LN_WARPS   4 /* rows (warps) per block */

template <int VPL>
static __device__ __forceinline__ void sc_warp_layernorm(float (&v)[VPL][8], int dim, float eps,
                                                         const float *gamma, const float *beta,
                                                         __half *out_row)
{
    const int lane = threadIdx.x % SC_WARP;
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < VPL; k++)
        if ((k * SC_WARP + lane) * 8 < dim)
#pragma unroll
            for (int i = 0; i < 8; i++)
                s += v[k][i];
    const float mean = sc_warp_sum(s) / (float)dim;
    float q = 0.f;
#pragma unroll
    for (int k = 0; k < VPL; k++)
        if ((k * SC_WARP + lane) * 8 < dim)
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const float d = v[k][i] - mean;
                q += d * d;
            }
    const float rstd = rsqrtf(sc_warp_sum(q) / (float)dim + eps);
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        const int c = (k * SC_WARP + lane) * 8;
        if (c < dim) {
            float g[8], b[8], o[8];
            sc_load8f(gamma + c, g);
            sc_load8f(beta + c, b);
#pragma unroll
            for (int i = 0; i < 8; i++)
                o[i] = (v[k][i] - mean) * rstd * g[i] + b[i];
            sc_store8(out_row + c, o);
        }
    }
}

#endif
