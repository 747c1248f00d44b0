/* embed_layernorm.cu - out[t,:] = LayerNorm(word[ids[t]] + pos_emb[pos[t]] + type_emb[0]) in fp16,
 * one warp per token, the row held in registers (see sc_warp_layernorm in common.cuh). */
#include "kernels/embed_layernorm.cuh"

template <int VPL>
static __global__ void
sc_embed_layernorm_kernel(const int32_t *__restrict__ ids, const int32_t *__restrict__ pos,
                          int n_tokens, const __half *__restrict__ word,
                          const __half *__restrict__ pos_emb, const __half *__restrict__ type_emb,
                          const float *__restrict__ gamma, const float *__restrict__ beta, int dim,
                          float eps, __half *__restrict__ out)
{
    /* row is uniform across the warp, so a warp leaves whole and its shuffles stay full */
    const int row = blockIdx.x * SC_LN_WARPS + threadIdx.x / SC_WARP;
    if (row >= n_tokens)
        return;
    const int lane = threadIdx.x % SC_WARP;
    const __half *w = word + (size_t)ids[row] * (size_t)dim;
    const __half *p = pos_emb + (size_t)pos[row] * (size_t)dim;
    float v[VPL][8];
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        const int c = (k * SC_WARP + lane) * 8;
        if (c < dim) {
            float a[8], b[8], t[8];
            sc_load8(w + c, a);
            sc_load8(p + c, b);
            sc_load8(type_emb + c, t);
#pragma unroll
            for (int i = 0; i < 8; i++)
                v[k][i] = a[i] + b[i] + t[i];
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++)
                v[k][i] = 0.f;
        }
    }
    sc_warp_layernorm<VPL>(v, dim, eps, gamma, beta, out + (size_t)row * (size_t)dim);
}

extern "C" int sc_embed_layernorm(const int32_t *ids, const int32_t *pos, int n_tokens,
                                  const sc_half *word, const sc_half *pos_emb,
                                  const sc_half *type_emb, const float *gamma, const float *beta,
                                  int dim, float eps, sc_half *out, cudaStream_t stream)
{
    SC_KERNEL_REQUIRE(n_tokens >= 0);
    SC_KERNEL_REQUIRE(dim > 0 && dim % 8 == 0 && dim <= SC_LN_MAX_VPL * SC_WARP * 8);
    SC_KERNEL_REQUIRE(sc_aligned16(word) && sc_aligned16(pos_emb) && sc_aligned16(type_emb));
    SC_KERNEL_REQUIRE(sc_aligned16(gamma) && sc_aligned16(beta) && sc_aligned16(out));
    if (n_tokens == 0)
        return (int)cudaSuccess;
    const dim3 grid((unsigned)((n_tokens + SC_LN_WARPS - 1) / SC_LN_WARPS));
    const dim3 block(SC_LN_WARPS * SC_WARP);
    const __half *w = reinterpret_cast<const __half *>(word);
    const __half *p = reinterpret_cast<const __half *>(pos_emb);
    const __half *t = reinterpret_cast<const __half *>(type_emb);
    __half *o = reinterpret_cast<__half *>(out);
    switch ((dim / 8 + SC_WARP - 1) / SC_WARP) {
    case 1:
        sc_embed_layernorm_kernel<1>
            <<<grid, block, 0, stream>>>(ids, pos, n_tokens, w, p, t, gamma, beta, dim, eps, o);
        break;
    case 2:
        sc_embed_layernorm_kernel<2>
            <<<grid, block, 0, stream>>>(ids, pos, n_tokens, w, p, t, gamma, beta, dim, eps, o);
        break;
    case 3:
        sc_embed_layernorm_kernel<3>
            <<<grid, block, 0, stream>>>(ids, pos, n_tokens, w, p, t, gamma, beta, dim, eps, o);
        break;
    default:
        sc_embed_layernorm_kernel<4>
            <<<grid, block, 0, stream>>>(ids, pos, n_tokens, w, p, t, gamma, beta, dim, eps, o);
        break;
    }
    SC_KERNEL_CHECK();
    return (int)cudaSuccess;
}
