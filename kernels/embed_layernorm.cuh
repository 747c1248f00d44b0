/* embed_layernorm.cuh - the embedding sum (word + position + token type 0) fused with its
 * LayerNorm; launcher sc_embed_layernorm() in kernels/kernels.h, CPU twin sc_embed_layernorm_cpu.
 */
#ifndef SC_EMBED_LAYERNORM_CUH
#define SC_EMBED_LAYERNORM_CUH

#include "kernels/common.cuh"
#include "kernels/kernels.h"

/* One warp per token row of SC_LN_WARPS rows per block; dim % 8 == 0, dim <= 1024, every
 * pointer 16-byte aligned. ids and pos must index inside their tables (the caller checks). */

#endif
