/* encoder_cpu_none.c - the CPU half of encoder_backend.h for the GPU-only build (no OpenBLAS). */
#include <stdio.h>

#include "models/encoder_backend.h"

sc_status_t sc_encoder_cpu_new(const sc_minilm_t *m, int threads, sc_precision_t precision,
                               sc_encoder_cpu_t **out, char *errbuf, size_t errlen)
{
    (void)m;
    (void)threads;
    (void)precision;
    *out = NULL;
    snprintf(errbuf, errlen, "built without the CPU encoder (SCRIMP_GPU_ONLY)");
    return SC_ERR_INVALID_ARG;
}

sc_status_t sc_encoder_cpu_forward(sc_encoder_cpu_t *e, const int32_t *ids,
                                   const int32_t *offsets, size_t n, float *out)
{
    (void)e;
    (void)ids;
    (void)offsets;
    (void)n;
    (void)out;
    return SC_ERR_INVALID_ARG;
}

sc_precision_t sc_encoder_cpu_precision(const sc_encoder_cpu_t *e)
{
    (void)e;
    return SC_PRECISION_FP32;
}

void sc_encoder_cpu_free(sc_encoder_cpu_t *e)
{
    (void)e;
}
