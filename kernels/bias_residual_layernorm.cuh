/* bias_residual_layernorm.cuh - LayerNorm(x + bias + residual) after each attention output and
 * FFN output GEMM; launcher in kernels/kernels.h, CPU twin sc_bias_residual_layernorm_cpu. */
#ifndef SC_BIAS_RESIDUAL_LAYERNORM_CUH
#define SC_BIAS_RESIDUAL_LAYERNORM_CUH

#include "kernels/common.cuh"
#include "kernels/kernels.h"

/* One warp per row, SC_LN_WARPS rows per block; dim % 8 == 0, dim <= 1024, every pointer 16-byte
 * aligned. out may alias residual (each lane reads its elements before it writes them). */

#endif
