/* bias_gelu.cu - x[r,c] = gelu(x[r,c] + bias[c]) in place, fp32 arithmetic, exact erf GELU;
 * elementwise, 8 halves per 16-byte access, grid-stride. */
#include "kernels/bias_gelu.cuh"

static __device__ __forceinline__ float sc_gelu(float v)
{
    return 0.5f * v * (1.f + erff(v * 0.70710678118654752440f)); /* v·Φ(v) */
}

static __global__ void sc_bias_gelu_kernel_vec8(__half *__restrict__ x,
                                                const __half *__restrict__ bias, size_t n_vec,
                                                int cols)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_vec; i += stride) {
        const size_t e = i * 8;
        const int c = (int)(e % (size_t)cols); /* cols % 8 == 0: a vector never crosses a row */
        float v[8], b[8];
        sc_load8(x + e, v);
        sc_load8(bias + c, b);
#pragma unroll
        for (int k = 0; k < 8; k++)
            v[k] = sc_gelu(v[k] + b[k]);
        sc_store8(x + e, v);
    }
}

static __global__ void sc_bias_gelu_kernel_scalar(__half *__restrict__ x,
                                                  const __half *__restrict__ bias, size_t n,
                                                  int cols)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int c = (int)(i % (size_t)cols);
        x[i] = __float2half_rn(sc_gelu(__half2float(x[i]) + __half2float(bias[c])));
    }
}

extern "C" int sc_bias_gelu(sc_half *x, const sc_half *bias, int rows, int cols,
                            cudaStream_t stream)
{
    SC_KERNEL_REQUIRE(rows >= 0 && cols > 0);
    if (rows == 0)
        return (int)cudaSuccess;
    __half *xh = reinterpret_cast<__half *>(x);
    const __half *bh = reinterpret_cast<const __half *>(bias);
    const size_t n = (size_t)rows * (size_t)cols;
    const bool vec = cols % 8 == 0 && sc_aligned16(x) && sc_aligned16(bias);
    const size_t work = vec ? n / 8 : n;
    size_t blocks = (work + SC_GELU_THREADS - 1) / SC_GELU_THREADS;
    if (blocks > SC_GELU_MAX_BLOCKS)
        blocks = SC_GELU_MAX_BLOCKS;
    if (vec)
        sc_bias_gelu_kernel_vec8<<<(unsigned)blocks, SC_GELU_THREADS, 0, stream>>>(xh, bh, work,
                                                                                   cols);
    else
        sc_bias_gelu_kernel_scalar<<<(unsigned)blocks, SC_GELU_THREADS, 0, stream>>>(xh, bh, work,
                                                                                     cols);
    SC_KERNEL_CHECK();
    return (int)cudaSuccess;
}
