/* bias_residual_layernorm.cu - out[r,:] = LayerNorm(x[r,:] + bias + residual[r,:]) in fp16, one
 * warp per row, the row held in registers (see sc_warp_layernorm in common.cuh). */
#include "kernels/bias_residual_layernorm.cuh"

/* residual and out carry no __restrict__: they may be the same buffer. */
template <int VPL>
static __global__ void
sc_bias_residual_layernorm_kernel(const __half *__restrict__ x, const __half *__restrict__ bias,
                                  const __half *residual, const float *__restrict__ gamma,
                                  const float *__restrict__ beta, int rows, int dim, float eps,
                                  __half *out)
{
    const int row = blockIdx.x * SC_LN_WARPS + threadIdx.x / SC_WARP;
    if (row >= rows)
        return;
    const int lane = threadIdx.x % SC_WARP;
    const size_t base = (size_t)row * (size_t)dim;
    float v[VPL][8];
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        const int c = (k * SC_WARP + lane) * 8;
        if (c < dim) {
            float a[8], b[8], r[8];
            sc_load8(x + base + c, a);
            sc_load8(bias + c, b);
            sc_load8(residual + base + c, r);
#pragma unroll
            for (int i = 0; i < 8; i++)
                v[k][i] = a[i] + b[i] + r[i];
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++)
                v[k][i] = 0.f;
        }
    }
    sc_warp_layernorm<VPL>(v, dim, eps, gamma, beta, out + base);
}

extern "C" int sc_bias_residual_layernorm(const sc_half *x, const sc_half *bias,
                                          const sc_half *residual, const float *gamma,
                                          const float *beta, int rows, int dim, float eps,
                                          sc_half *out, cudaStream_t stream)
{
    SC_KERNEL_REQUIRE(rows >= 0);
    SC_KERNEL_REQUIRE(dim > 0 && dim % 8 == 0 && dim <= SC_LN_MAX_VPL * SC_WARP * 8);
    SC_KERNEL_REQUIRE(sc_aligned16(x) && sc_aligned16(bias) && sc_aligned16(residual));
    SC_KERNEL_REQUIRE(sc_aligned16(gamma) && sc_aligned16(beta) && sc_aligned16(out));
    if (rows == 0)
        return (int)cudaSuccess;
    const dim3 grid((unsigned)((rows + SC_LN_WARPS - 1) / SC_LN_WARPS));
    const dim3 block(SC_LN_WARPS * SC_WARP);
    const __half *xh = reinterpret_cast<const __half *>(x);
    const __half *bh = reinterpret_cast<const __half *>(bias);
    const __half *rh = reinterpret_cast<const __half *>(residual);
    __half *o = reinterpret_cast<__half *>(out);
    switch ((dim / 8 + SC_WARP - 1) / SC_WARP) {
    case 1:
        sc_bias_residual_layernorm_kernel<1>
            <<<grid, block, 0, stream>>>(xh, bh, rh, gamma, beta, rows, dim, eps, o);
        break;
    case 2:
        sc_bias_residual_layernorm_kernel<2>
            <<<grid, block, 0, stream>>>(xh, bh, rh, gamma, beta, rows, dim, eps, o);
        break;
    case 3:
        sc_bias_residual_layernorm_kernel<3>
            <<<grid, block, 0, stream>>>(xh, bh, rh, gamma, beta, rows, dim, eps, o);
        break;
    default:
        sc_bias_residual_layernorm_kernel<4>
            <<<grid, block, 0, stream>>>(xh, bh, rh, gamma, beta, rows, dim, eps, o);
        break;
    }
    SC_KERNEL_CHECK();
    return (int)cudaSuccess;
}
