/* cast_f16.cuh - fp32 -> IEEE half, round to nearest even (the cache index's query upload);
 * launcher sc_cast_f16() in kernels/kernels.h, CPU twin sc_half_from_float (kernels/half.h). */
#ifndef SC_CAST_F16_CUH
#define SC_CAST_F16_CUH

#include "kernels/common.cuh"
#include "kernels/kernels.h"

#define SC_CVT_THREADS    256
#define SC_CVT_MAX_BLOCKS 65535 /* grid-stride beyond this */

#endif
