/* kernels.h - plain-C launchers of the CUDA kernels (one op per kernels/<op>.cu + .cuh). Each takes
 * a stream, launches, checks cudaGetLastError() and returns it (0 = cudaSuccess). Activations are
 * IEEE half (sc_half, bit pattern) with fp32 arithmetic inside; LayerNorm parameters and pooled
 * outputs are fp32. The CPU twins with the same names and a _cpu suffix are in host/ops/ops_cpu.h. */
#ifndef SC_KERNELS_H
#define SC_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint16_t sc_half; /* IEEE binary16 bit pattern */

/* see sc_embed_layernorm_cpu; word/pos_emb/type_emb fp16, gamma/beta fp32, out fp16 */
int sc_embed_layernorm(const int32_t *ids, const int32_t *pos, int n_tokens, const sc_half *word,
                       const sc_half *pos_emb, const sc_half *type_emb, const float *gamma,
                       const float *beta, int dim, float eps, sc_half *out, cudaStream_t stream);

/* see sc_bias_residual_layernorm_cpu; out may alias residual */
int sc_bias_residual_layernorm(const sc_half *x, const sc_half *bias, const sc_half *residual,
                               const float *gamma, const float *beta, int rows, int dim,
                               float eps, sc_half *out, cudaStream_t stream);

/* see sc_bias_gelu_cpu */
int sc_bias_gelu(sc_half *x, const sc_half *bias, int rows, int cols, cudaStream_t stream);

/* see sc_attention_cpu; seq_off on the device; max_len = the longest sequence */
int sc_attention(const sc_half *qkv, const sc_half *qkv_bias, const int32_t *seq_off, int n_seqs,
                 int max_len, int heads, int head_dim, sc_half *ctx, cudaStream_t stream);

/* see sc_meanpool_l2_cpu; out fp32 */
int sc_meanpool_l2(const sc_half *x, const int32_t *seq_off, int n_seqs, int dim, float *out,
                   cudaStream_t stream);

/* out[i] = sc_half_from_float(in[i]) (kernels/half.h), bit for bit; device pointers. */
int sc_cast_f16(const float *in, sc_half *out, size_t n, cudaStream_t stream);

#define SC_TOPK_MAX 32 /* the largest k of sc_topk_ip (its per-thread lists live in registers) */

/* see sc_topk_ip_cpu, here on a precomputed score matrix: scores [nq, n] fp32 (row-major),
 * qscope [nq], bscope [n]; out_scores/out_idx [nq, k], column indices in 0..n-1 (-1 and -inf past
 * the scope's members); 1 <= k <= SC_TOPK_MAX. All pointers on the device. */
int sc_topk_ip(const float *scores, const uint64_t *qscope, const uint64_t *bscope, int nq, int n,
               int k, float *out_scores, int64_t *out_idx, cudaStream_t stream);

/* see sc_router_head_cpu; x [n, f] standardised fp32 features (f <= 1024), w1 [hidden, f],
 * b1 [hidden] (unused when hidden = 0), w2 [hidden or f], out [n] probabilities. All pointers on
 * the device; b2 by value. */
int sc_router_head(const float *x, int n, int f, const float *w1, const float *b1, int hidden,
                   const float *w2, float b2, float *out, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
