/* meanpool_l2.cuh - the sentence embedding: mean of a sequence's rows, L2-normalised, fp32 out;
 * launcher sc_meanpool_l2() in kernels/kernels.h, CPU twin sc_meanpool_l2_cpu. */
#ifndef SC_MEANPOOL_L2_CUH
#define SC_MEANPOOL_L2_CUH

#include "kernels/common.cuh"
#include "kernels/kernels.h"

#define SC_POOL_THREADS  128    /* one block per sequence; a thread owns column pairs */
#define SC_POOL_NORM_EPS 1e-12f /* as torch.nn.functional.normalize: x / max(‖x‖, eps) */

/* dim even, x 4-byte aligned. An empty sequence gives a zero vector. */

#endif
