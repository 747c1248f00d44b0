/* attention.cuh - multi-head self-attention over packed sequences (no padding, no mask), the
 * q/k/v bias added on load; launcher sc_attention() in kernels/kernels.h, CPU twin
 * sc_attention_cpu. */
#ifndef SC_ATTENTION_CUH
#define SC_ATTENTION_CUH

#include "kernels/common.cuh"
#include "kernels/kernels.h"

#define SC_ATTN_HEAD_DIM 32  /* one lane per output dimension */
#define SC_ATTN_MAX_LEN  256 /* longest sequence: bounds shared memory and the scores per lane */
#define SC_ATTN_WARPS    4   /* warps per block */
#define SC_ATTN_THREADS  (SC_ATTN_WARPS * SC_WARP)
#define SC_ATTN_ROWS     64 /* query rows per block (SC_ATTN_ROWS / SC_ATTN_WARPS per warp) */
/* K rows padded to 34 halves = 17 words: lane j reads row j, and 17·j mod 32 differs for every
 * lane, so the score loop is free of bank conflicts. V rows are read across the row (lane = d). */
#define SC_ATTN_KSTRIDE (SC_ATTN_HEAD_DIM + 2)
#define SC_ATTN_SLOTS   (SC_ATTN_MAX_LEN / SC_WARP) /* keys (scores) per lane */

/* Shared memory of one block for sequences of at most max_len tokens: V then padded K. */
static inline size_t sc_attention_smem_bytes(int max_len)
{
    return (size_t)max_len * (SC_ATTN_HEAD_DIM + SC_ATTN_KSTRIDE) * sizeof(uint16_t);
}

#endif
