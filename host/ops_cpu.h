/* ops_cpu.h - the CPU twins of the CUDA kernels in kernels/ (same names, _cpu suffix): the
 * reference the kernels are tested against, and the ops of the CPU forward. Sequences are packed
 * without padding: sequence s owns rows seq_off[s] .. seq_off[s+1] of every [tokens, …] array. */
#ifndef SC_OPS_CPU_H
#define SC_OPS_CPU_H

#include <stdint.h>

/* out[t,:] = LayerNorm(word[ids[t],:] + pos_emb[pos[t],:] + type_emb[0,:]) · gamma + beta.
 * ids, pos: n_tokens; word: [vocab, dim]; out: [n_tokens, dim]. */
void sc_embed_layernorm_cpu(const int32_t *ids, const int32_t *pos, int n_tokens,
                            const float *word, const float *pos_emb, const float *type_emb,
                            const float *gamma, const float *beta, int dim, float eps, float *out);

/* out[r,:] = LayerNorm(x[r,:] + bias + residual[r,:]) · gamma + beta; rows × dim.
 * out may alias residual. */
void sc_bias_residual_layernorm_cpu(const float *x, const float *bias, const float *residual,
                                    const float *gamma, const float *beta, int rows, int dim,
                                    float eps, float *out);

/* x[r,c] = gelu(x[r,c] + bias[c]) in place, the exact (erf) GELU; rows × cols. */
void sc_bias_gelu_cpu(float *x, const float *bias, int rows, int cols);

/* Multi-head self-attention over packed sequences, no mask needed (no padding):
 * qkv: [n_tokens, 3*heads*head_dim] = [q | k | v] before bias; qkv_bias: [3*heads*head_dim];
 * ctx: [n_tokens, heads*head_dim] = softmax(q·kᵀ/√head_dim)·v per sequence and head. */
void sc_attention_cpu(const float *qkv, const float *qkv_bias, const int32_t *seq_off,
                      int n_seqs, int heads, int head_dim, float *ctx);

/* out[s,:] = L2-normalise(mean over the rows of sequence s of x); x: [n_tokens, dim]. */
void sc_meanpool_l2_cpu(const float *x, const int32_t *seq_off, int n_seqs, int dim, float *out);

#endif
