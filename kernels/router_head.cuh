/* router_head.cuh - the router's head (logistic or one ReLU layer, then a sigmoid) on standardised
 * fp32 features; launcher sc_router_head() in kernels/kernels.h, CPU twin sc_router_head_cpu. */
#ifndef SC_ROUTER_HEAD_CUH
#define SC_ROUTER_HEAD_CUH

#include "kernels/common.cuh"
#include "kernels/kernels.h"

#define SC_ROUTER_HEAD_WARPS 4    /* rows per block: one warp per row */
#define SC_ROUTER_HEAD_MAX_F 1024 /* features per row held in shared memory */

#endif
