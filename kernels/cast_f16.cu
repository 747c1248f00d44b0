/* cast_f16.cu - out[i] = half(in[i]), round to nearest even (__float2half_rn: overflow to
 * infinity, subnormals kept, NaN stays NaN), bit for bit what sc_half_from_float gives on the
 * host; elementwise, grid-stride. Moves the conversion of a query batch off the host, where the
 * portable C conversion cost more than the search of a 10k-entry index. */
#include "kernels/cast_f16.cuh"

static __global__ void sc_cast_f16_kernel(const float *__restrict__ in, __half *__restrict__ out,
                                            size_t n)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = __float2half_rn(in[i]);
}

extern "C" int sc_cast_f16(const float *in, sc_half *out, size_t n, cudaStream_t stream)
{
    if (n == 0)
        return (int)cudaSuccess;
    SC_KERNEL_REQUIRE(in && out);
    size_t blocks = (n + SC_CVT_THREADS - 1) / SC_CVT_THREADS;
    if (blocks > SC_CVT_MAX_BLOCKS)
        blocks = SC_CVT_MAX_BLOCKS;
    sc_cast_f16_kernel<<<(unsigned)blocks, SC_CVT_THREADS, 0, stream>>>(
        in, reinterpret_cast<__half *>(out), n);
    SC_KERNEL_CHECK();
    return (int)cudaSuccess;
}
