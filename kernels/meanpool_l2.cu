/* meanpool_l2.cu - out[s,:] = normalize(mean of rows seq_off[s] .. seq_off[s+1] of x), one block
 * per sequence: each thread sums its column pairs down the rows (half2, coalesced across the
 * block) in fp32, the squared norm is reduced over the block, then the means are scaled. */
#include "kernels/meanpool_l2.cuh"

static __global__ void __launch_bounds__(SC_POOL_THREADS)
    sc_meanpool_l2_kernel(const __half *__restrict__ x, const int32_t *__restrict__ seq_off,
                          int dim, float *__restrict__ out)
{
    extern __shared__ float sc_pool_smem[]; /* [dim] means, then one partial sum per warp */
    float *mean = sc_pool_smem;
    float *part = sc_pool_smem + dim;
    const int s = blockIdx.x;
    const int start = seq_off[s];
    const int len = seq_off[s + 1] - start;
    const float inv_len = len > 0 ? 1.f / (float)len : 0.f;
    const int dim2 = dim / 2;
    const __half2 *x2 = reinterpret_cast<const __half2 *>(x) + (size_t)start * (size_t)dim2;

    float sq = 0.f;
    for (int c = threadIdx.x; c < dim2; c += blockDim.x) {
        float a = 0.f, b = 0.f;
#pragma unroll 4
        for (int r = 0; r < len; r++) {
            const float2 t = __half22float2(x2[(size_t)r * dim2 + c]);
            a += t.x;
            b += t.y;
        }
        a *= inv_len;
        b *= inv_len;
        mean[2 * c] = a;
        mean[2 * c + 1] = b;
        sq += a * a + b * b;
    }
    sq = sc_warp_sum(sq);
    if (threadIdx.x % SC_WARP == 0)
        part[threadIdx.x / SC_WARP] = sq;
    __syncthreads();
    float total = 0.f;
    for (int w = 0; w < (int)(blockDim.x / SC_WARP); w++)
        total += part[w];
    const float inv_norm = 1.f / fmaxf(sqrtf(total), SC_POOL_NORM_EPS);
    for (int c = threadIdx.x; c < dim; c += blockDim.x)
        out[(size_t)s * dim + c] = mean[c] * inv_norm;
}

extern "C" int sc_meanpool_l2(const sc_half *x, const int32_t *seq_off, int n_seqs, int dim,
                              float *out, cudaStream_t stream)
{
    SC_KERNEL_REQUIRE(n_seqs >= 0 && dim > 0 && dim % 2 == 0);
    SC_KERNEL_REQUIRE(((uintptr_t)x & 3u) == 0);
    if (n_seqs == 0)
        return (int)cudaSuccess;
    const size_t smem = ((size_t)dim + SC_POOL_THREADS / SC_WARP) * sizeof(float);
    SC_KERNEL_REQUIRE(smem <= 48 * 1024);
    sc_meanpool_l2_kernel<<<(unsigned)n_seqs, SC_POOL_THREADS, smem, stream>>>(
        reinterpret_cast<const __half *>(x), seq_off, dim, out);
    SC_KERNEL_CHECK();
    return (int)cudaSuccess;
}
