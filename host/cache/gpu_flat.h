/* gpu_flat.h - a flat inner-product index on the GPU (fp16 vectors, cuBLAS GEMM + the top-k kernel
 * of kernels/topk_ip.cu), scoped: each vector carries its scope and a query only sees vectors of
 * its own scope, inside the search. Built only with CUDA (host/cache/gpu_flat_none.c otherwise). */
#ifndef SC_GPU_FLAT_H
#define SC_GPU_FLAT_H

#include <stddef.h>
#include <stdint.h>

#include "host/core/status.h"

typedef struct sc_gpu_flat sc_gpu_flat_t;

/* Scope 0 is reserved: it marks a free slot, which no query ever matches. Adding a vector or
 * searching with scope 0 is SC_ERR_INVALID_ARG (sc_cache_scope never returns 0). */
#define SC_GPU_FLAT_FREE_SCOPE ((uint64_t)0)

/* An index is not thread-safe: one caller at a time (it owns one stream and its scratch). After a
 * CUDA failure every later call returns SC_ERR_CUDA (the device copy may be out of step). */

/* 1 when this build has CUDA and a device initialises (reason in errbuf when not). */
int sc_gpu_flat_available(char *errbuf, size_t errlen);

#define SC_GPU_FLAT_MAX_CAPACITY ((size_t)1 << 26) /* bounds the host mirrors and tile count */
#define SC_GPU_FLAT_MAX_DIM      4096
#define SC_GPU_FLAT_MAX_K        32 /* SC_TOPK_MAX of kernels/kernels.h */

/* capacity: vectors held at most (device memory is reserved once), 1..SC_GPU_FLAT_MAX_CAPACITY;
 * dim 1..SC_GPU_FLAT_MAX_DIM.
 * @remark the caller frees with sc_gpu_flat_free(). */
sc_status_t sc_gpu_flat_new(int dim, size_t capacity, sc_gpu_flat_t **out, char *errbuf,
                            size_t errlen);
void sc_gpu_flat_free(sc_gpu_flat_t *f); /* NULL ok */

/* Add n vectors (n*dim floats, L2-normalised) with their ids and scopes. SC_ERR_FULL beyond the
 * capacity (then nothing is added). Freed slots are filled first. Ids are not checked for
 * uniqueness: the caller keeps them unique. */
sc_status_t sc_gpu_flat_add(sc_gpu_flat_t *f, size_t n, const float *vecs, const int64_t *ids,
                            const uint64_t *scopes);
/* Remove by id (the slot is reused). SC_ERR_NOT_FOUND when absent. A scan of the used slots'
 * host mirror (no id map): O(slots), meant for evictions, not for the lookup path. */
sc_status_t sc_gpu_flat_remove(sc_gpu_flat_t *f, int64_t id);

/* For each of nq queries (nq*dim floats) and its scope: the k best (score, id) of that scope,
 * best first; ids -1 (score -inf) past the scope's size. scores/ids: nq*k; k 1..SC_GPU_FLAT_MAX_K.
 * Scores are fp32 inner products of the fp16-rounded query and vectors; equal scores go to the
 * earlier slot. */
sc_status_t sc_gpu_flat_search(sc_gpu_flat_t *f, size_t nq, const float *queries,
                               const uint64_t *scopes, int k, float *scores, int64_t *ids);

size_t sc_gpu_flat_size(const sc_gpu_flat_t *f);

#endif
