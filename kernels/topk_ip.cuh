/* topk_ip.cuh - scoped top-k over a precomputed similarity matrix (the flat search of the semantic
 * cache, after its GEMM); launcher sc_topk_ip() in kernels/kernels.h, CPU twin sc_topk_ip_cpu. */
#ifndef SC_TOPK_IP_CUH
#define SC_TOPK_IP_CUH

#include "kernels/common.cuh"
#include "kernels/kernels.h"

#define SC_TOPK_THREADS 128 /* one block per query; a thread owns the columns t, t+128, … */
#define SC_TOPK_UNROLL  4   /* columns a thread loads per step before using any */

/* k in 1..SC_TOPK_MAX (kernels.h); n <= INT_MAX - SC_TOPK_UNROLL * SC_TOPK_THREADS. Ties go to the
 * lower column, NaN scores are dropped, as in the twin. */

#endif
