/* attention.cuh - multi-head self-attention over packed sequences (no padding, no mask), the
 * q/k/v bias added on load; launcher sc_attention() in kernels/kernels.h, CPU twin
 * sc_attention_cpu. */
#ifndef SC_ATTENTION_CUH
#define SC_ATTENTION_CUH

#include "kernels/common.cuh"
#include "kernels/kernels.h"

#define SC_ATTN_HEAD_DIM 32  /* a warp's lanes cover one head's dimensions */
#define SC_ATTN_MAX_LEN  256 /* longest sequence: bounds shared memory and the scores per lane */
#define SC_ATTN_WARPS    4   /* warps per block */
#define SC_ATTN_THREADS  (SC_ATTN_WARPS * SC_WARP)
#define SC_ATTN_ROWS     64 /* query rows per block (SC_ATTN_ROWS / SC_ATTN_WARPS per warp) */
/* K rows padded to 36 halves = 18 words, read 8 bytes at a time: in each half-warp phase lane j
 * starts at word 18·j mod 32, sixteen distinct even banks, so the score loop is free of bank
 * conflicts. V rows are read across the row (a lane owns a pair of dimensions). */
#define SC_ATTN_KSTRIDE (SC_ATTN_HEAD_DIM + 4)
#define SC_ATTN_SLOTS   (SC_ATTN_MAX_LEN / SC_WARP) /* keys (scores) per lane */

/* Shared memory of one block, in order: V [max_len][D] fp16, K [max_len][KSTRIDE] fp16 (rounded
 * up to 16 bytes), the tile's queries [ROWS][D] fp32 (bias added, pre-scaled), and one row of
 * probabilities per warp [WARPS][max_len] fp32. At max_len 256: 47 104 bytes, under the 48 KB a
 * block gets without opting in. */
static inline __host__ __device__ size_t sc_attention_k_bytes(int max_len)
{
    return ((size_t)max_len * SC_ATTN_KSTRIDE * sizeof(uint16_t) + 15) & ~(size_t)15;
}

static inline __host__ __device__ size_t sc_attention_smem_bytes(int max_len)
{
    return (size_t)max_len * SC_ATTN_HEAD_DIM * sizeof(uint16_t) + sc_attention_k_bytes(max_len) +
           (size_t)SC_ATTN_ROWS * SC_ATTN_HEAD_DIM * sizeof(float) +
           (size_t)SC_ATTN_WARPS * (size_t)max_len * sizeof(float);
}

#endif
