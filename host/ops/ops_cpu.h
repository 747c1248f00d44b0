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

/* The int8 GEMMs' operands and results (encoder.precision = int8). A row r of x [rows, cols]
 * (times inv_smooth[c] per column, when not NULL) to u8, asymmetric: x ≈ scale[r]·(q − zero[r]),
 * its range widened to hold 0. */
void sc_quantize_u8_rows_cpu(const float *x, const float *inv_smooth, int rows, int cols,
                             uint8_t *q, float *scale, int32_t *zero);

/* From the s32 products acc = q·Wqᵀ of such rows with weights quantised per output column
 * (W ≈ wscale[c]·Wq[c,:], colsum[c] = Σ Wq[c,:]): out[r,c] = scale[r]·wscale[c]·(acc[r,c] −
 * zero[r]·colsum[c]); rows × cols. The second form adds bias[c], applies the exact GELU and
 * rounds to bf16 (to nearest even). */
void sc_dequant_rows_cpu(const int32_t *acc, const float *scale, const int32_t *zero,
                         const float *wscale, const int32_t *colsum, int rows, int cols,
                         float *out);
void sc_dequant_bias_gelu_bf16_cpu(const int32_t *acc, const float *scale, const int32_t *zero,
                                   const float *wscale, const int32_t *colsum, const float *bias,
                                   int rows, int cols, uint16_t *out);

/* Multi-head self-attention over packed sequences, no mask needed (no padding):
 * qkv: [n_tokens, 3*heads*head_dim] = [q | k | v] before bias; qkv_bias: [3*heads*head_dim];
 * ctx: [n_tokens, heads*head_dim] = softmax(q·kᵀ/√head_dim)·v per sequence and head.
 * Returns 0, or -1 when head_dim is above 256 or a thread's scratch ((head_dim + 4) × the
 * longest sequence's floats) cannot be allocated; ctx is then incomplete. With head_dim 32 on
 * a CPU with AVX-512 an intrinsics kernel runs, else the portable loops (cloned for AVX2). */
int sc_attention_cpu(const float *qkv, const float *qkv_bias, const int32_t *seq_off,
                      int n_seqs, int heads, int head_dim, float *ctx);

/* The widest hand-written kernels the ops may take, as far as this CPU has them: SC_OPS_AVX512
 * (the default) for the best it runs; lower for a test that compares them with the portable
 * loops. Not to be called while an op runs. */
typedef enum { SC_OPS_PORTABLE = 0, SC_OPS_AVX2, SC_OPS_AVX512 } sc_ops_isa_t;
void sc_ops_cpu_limit(sc_ops_isa_t max);

/* out[s,:] = L2-normalise(mean over the rows of sequence s of x); x: [n_tokens, dim]. */
void sc_meanpool_l2_cpu(const float *x, const int32_t *seq_off, int n_seqs, int dim, float *out);

/* Scoped similarity top-k (the semantic cache's flat search): for each query q (nq of them, with
 * scope qscope[q]), the k rows of base [n, dim] with the largest inner product among the rows whose
 * scope equals qscope[q], best first. scores/idx: nq*k (idx -1, score -inf past the matches). */
void sc_topk_ip_cpu(const float *queries, const uint64_t *qscope, int nq, const float *base,
                    const uint64_t *bscope, int n, int dim, int k, float *scores, int64_t *idx);

/* The router's head on standardised features x [n, f]: hidden = 0 is logistic regression
 * (logit = w2·x + b2, w2 [f]; w1, b1 unused); hidden > 0 is one ReLU layer
 * (h = relu(w1·x + b1), w1 [hidden, f], b1 [hidden]; logit = w2·h + b2, w2 [hidden]).
 * out[i] = sigmoid(logit): n probabilities. */
void sc_router_head_cpu(const float *x, int n, int f, const float *w1, const float *b1,
                        int hidden, const float *w2, float b2, float *out);

#endif
