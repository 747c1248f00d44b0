/* encoder_gpu_none.c - the GPU half of encoder_backend.h for builds without CUDA: never available. */
#include <stdio.h>

#include "models/encoder_backend.h"

int sc_encoder_gpu_available(char *errbuf, size_t errlen)
{
    snprintf(errbuf, errlen, "built without CUDA");
    return 0;
}

sc_status_t sc_encoder_gpu_new(const sc_minilm_t *m, int max_seqs, int max_len,
                               sc_encoder_gpu_t **out, char *errbuf, size_t errlen)
{
    (void)m;
    (void)max_seqs;
    (void)max_len;
    *out = NULL;
    snprintf(errbuf, errlen, "CUDA encoder: built without CUDA");
    return SC_ERR_INVALID_ARG;
}

sc_status_t sc_encoder_gpu_forward(sc_encoder_gpu_t *e, const int32_t *ids,
                                   const int32_t *offsets, size_t n, float *out)
{
    (void)e;
    (void)ids;
    (void)offsets;
    (void)n;
    (void)out;
    return SC_ERR_INVALID_ARG;
}

void sc_encoder_gpu_free(sc_encoder_gpu_t *e)
{
    (void)e;
}
