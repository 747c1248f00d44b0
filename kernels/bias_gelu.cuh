/* bias_gelu.cuh - x = gelu(x + bias) in place after the FFN up-projection, the exact (erf) GELU;
 * launcher sc_bias_gelu() in kernels/kernels.h, CPU twin sc_bias_gelu_cpu. */
#ifndef SC_BIAS_GELU_CUH
#define SC_BIAS_GELU_CUH

#include "kernels/common.cuh"
#include "kernels/kernels.h"

#define SC_GELU_THREADS    256
#define SC_GELU_MAX_BLOCKS 65535 /* grid-stride beyond this */

/* 16-byte path when cols % 8 == 0 and x, bias are 16-byte aligned; otherwise one half a thread. */

#endif
