/* gpu_flat_none.c - host/cache/gpu_flat.h for builds without CUDA: never available, every call fails. */
#include <stdio.h>

#include "host/cache/gpu_flat.h"

int sc_gpu_flat_available(char *errbuf, size_t errlen)
{
    snprintf(errbuf, errlen, "built without CUDA");
    return 0;
}

sc_status_t sc_gpu_flat_new(int dim, size_t capacity, sc_gpu_flat_t **out, char *errbuf,
                            size_t errlen)
{
    (void)dim;
    (void)capacity;
    if (out)
        *out = NULL;
    snprintf(errbuf, errlen, "GPU flat index: built without CUDA");
    return SC_ERR_CUDA;
}

void sc_gpu_flat_free(sc_gpu_flat_t *f)
{
    (void)f;
}

sc_status_t sc_gpu_flat_add(sc_gpu_flat_t *f, size_t n, const float *vecs, const int64_t *ids,
                            const uint64_t *scopes)
{
    (void)f;
    (void)n;
    (void)vecs;
    (void)ids;
    (void)scopes;
    return SC_ERR_CUDA;
}

sc_status_t sc_gpu_flat_remove(sc_gpu_flat_t *f, int64_t id)
{
    (void)f;
    (void)id;
    return SC_ERR_CUDA;
}

sc_status_t sc_gpu_flat_search(sc_gpu_flat_t *f, size_t nq, const float *queries,
                               const uint64_t *scopes, int k, float *scores, int64_t *ids)
{
    (void)f;
    (void)nq;
    (void)queries;
    (void)scopes;
    (void)k;
    (void)scores;
    (void)ids;
    return SC_ERR_CUDA;
}

size_t sc_gpu_flat_size(const sc_gpu_flat_t *f)
{
    (void)f;
    return 0;
}
