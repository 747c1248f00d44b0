/* gpu_flat.c - the scoped flat inner-product index on the GPU (host/cache/gpu_flat.h): fp16 vectors in
 * slots [capacity, dim] on the device with their scopes, ids and scopes mirrored on the host.
 * A search, per batch of up to SC_GPU_FLAT_QBATCH queries: the fp32 queries go up and are rounded
 * to fp16 on the device (kernels/cast_f16.cu), then for each
 * tile of SC_GPU_FLAT_TILE slots one cublasGemmEx (fp16 in, fp32 scores [batch, tile]) and
 * sc_topk_ip (the scope filter inside the selection) writing that tile's k best per query into its
 * own part of a result buffer; one copy back per batch, and the host merges the tiles' sorted
 * lists (k × tiles per query: cheap next to the GEMMs, and it keeps one sync per batch instead of
 * a device merge per tile). Free slots carry SC_GPU_FLAT_FREE_SCOPE, which no query matches. */
#include "host/cache/gpu_flat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "host/core/log.h"
#include "kernels/half.h"
#include "kernels/kernels.h"

#define SC_GPU_FLAT_TILE      65536 /* slots per GEMM + top-k pass: bounds the score scratch */
#define SC_GPU_FLAT_QBATCH    256   /* queries per pass: scratch = QBATCH × TILE fp32 = 64 MiB */
#define SC_GPU_FLAT_ADD_CHUNK 4096  /* vectors converted and uploaded per step of an add */

_Static_assert(SC_GPU_FLAT_MAX_K == SC_TOPK_MAX, "gpu_flat.h and kernels.h disagree on max k");
_Static_assert(SC_GPU_FLAT_TILE <= 0x7fffffff / 2, "a tile must fit the kernel's int n");

struct sc_gpu_flat {
    int dim;
    size_t capacity;
    size_t tile;       /* min(capacity, SC_GPU_FLAT_TILE) */
    size_t ntiles_max; /* tiles of a full index */
    size_t size;       /* live vectors */
    size_t hi;         /* slots [0, hi) have been used; searches scan only these */
    int failed;        /* a CUDA call failed: the device copy may be out of step */

    /* host, owned (free) */
    uint64_t *h_scope;  /* [capacity] mirror of d_scope */
    int64_t *h_ids;     /* [capacity] id of each used slot */
    size_t *free_slots; /* [capacity] stack of removed slots */
    size_t n_free;
    size_t *heads; /* [ntiles_max] merge cursors */
    size_t *slots; /* [ADD_CHUNK] the slots of one step of an add */

    /* pinned host staging, owned (cudaFreeHost) */
    float *h_q;         /* [QBATCH, dim] fp32 queries */
    uint64_t *h_qscope; /* [QBATCH] */
    float *h_res_s;     /* [ntiles_max, QBATCH, SC_TOPK_MAX] */
    int64_t *h_res_i;   /* same */
    sc_half *h_stage;   /* [ADD_CHUNK, dim] */

    /* device, owned (cudaFree) */
    sc_half *d_vecs;    /* [capacity, dim] */
    uint64_t *d_scope;  /* [capacity]; FREE_SCOPE on unused slots */
    float *d_qf;        /* [QBATCH, dim] fp32 queries */
    sc_half *d_q;       /* [QBATCH, dim] the same, fp16 */
    uint64_t *d_qscope; /* [QBATCH] */
    float *d_scores;    /* [QBATCH, tile] */
    float *d_res_s;     /* [ntiles_max, QBATCH, SC_TOPK_MAX]: per tile, per query, k best */
    int64_t *d_res_i;   /* same; column within the tile */

    cudaStream_t stream;
    cublasHandle_t blas;
};

/* every device failure marks the index failed: the device copy may be out of step */
#define SC_CUDA_ON_FAIL()                                                                          \
    do {                                                                                           \
        if (f)                                                                                     \
            f->failed = 1;                                                                         \
    } while (0)
#include "host/core/cuda_check.h"

/* ---- availability ---- */

int sc_gpu_flat_available(char *errbuf, size_t errlen)
{
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        snprintf(errbuf, errlen, "cudaGetDeviceCount: %s", cudaGetErrorString(err));
        return 0;
    }
    if (n <= 0) {
        snprintf(errbuf, errlen, "no CUDA device");
        return 0;
    }
    err = cudaSetDevice(0);
    if (err == cudaSuccess)
        err = cudaFree(NULL); /* forces the primary context up: the device really initialises */
    if (err != cudaSuccess) {
        snprintf(errbuf, errlen, "device 0 does not initialise: %s", cudaGetErrorString(err));
        return 0;
    }
    return 1;
}

/* ---- create / destroy ---- */

sc_status_t sc_gpu_flat_new(int dim, size_t capacity, sc_gpu_flat_t **out, char *errbuf,
                            size_t errlen)
{
    sc_status_t st = SC_OK;
    sc_gpu_flat_t *f = NULL;
    if (out)
        *out = NULL;
    ARG_CHECK(out, "sc_gpu_flat_new: NULL out");
    ARG_CHECK(dim > 0 && dim <= SC_GPU_FLAT_MAX_DIM, "dim %d not in 1..%d", dim,
              SC_GPU_FLAT_MAX_DIM);
    ARG_CHECK(capacity > 0 && capacity <= SC_GPU_FLAT_MAX_CAPACITY, "capacity %zu not in 1..%zu",
              capacity, SC_GPU_FLAT_MAX_CAPACITY);

    f = calloc(1, sizeof *f);
    if (!f) {
        sc_cuda_errf(errbuf, errlen, __FILE__, __LINE__, "out of host memory");
        st = SC_ERR_NOMEM;
        goto out;
    }
    f->dim = dim;
    f->capacity = capacity;
    f->tile = capacity < SC_GPU_FLAT_TILE ? capacity : SC_GPU_FLAT_TILE;
    f->ntiles_max = (capacity + f->tile - 1) / f->tile;

    const size_t D = (size_t)dim, Q = SC_GPU_FLAT_QBATCH;
    const size_t res = f->ntiles_max * Q * SC_TOPK_MAX;
    f->h_scope = calloc(capacity, sizeof *f->h_scope);
    f->h_ids = calloc(capacity, sizeof *f->h_ids);
    f->free_slots = malloc(capacity * sizeof *f->free_slots);
    f->heads = malloc(f->ntiles_max * sizeof *f->heads);
    f->slots = malloc(SC_GPU_FLAT_ADD_CHUNK * sizeof *f->slots);
    if (!f->h_scope || !f->h_ids || !f->free_slots || !f->heads || !f->slots) {
        sc_cuda_errf(errbuf, errlen, __FILE__, __LINE__, "out of host memory (capacity %zu)",
                  capacity);
        st = SC_ERR_NOMEM;
        goto out;
    }

    CUDA_CHECK(cudaSetDevice(0));
    CUDA_CHECK(cudaStreamCreateWithFlags(&f->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&f->blas));
    CUBLAS_CHECK(cublasSetStream(f->blas, f->stream));
    CUBLAS_CHECK(cublasSetMathMode(f->blas, CUBLAS_DEFAULT_MATH)); /* fp16 on tensor cores */

    CUDA_CHECK(cudaMalloc((void **)&f->d_vecs, capacity * D * sizeof(sc_half)));
    CUDA_CHECK(cudaMalloc((void **)&f->d_scope, capacity * sizeof(uint64_t)));
    CUDA_CHECK(cudaMalloc((void **)&f->d_qf, Q * D * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void **)&f->d_q, Q * D * sizeof(sc_half)));
    CUDA_CHECK(cudaMalloc((void **)&f->d_qscope, Q * sizeof(uint64_t)));
    CUDA_CHECK(cudaMalloc((void **)&f->d_scores, Q * f->tile * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void **)&f->d_res_s, res * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void **)&f->d_res_i, res * sizeof(int64_t)));
    CUDA_CHECK(cudaMallocHost((void **)&f->h_q, Q * D * sizeof(float)));
    CUDA_CHECK(cudaMallocHost((void **)&f->h_qscope, Q * sizeof(uint64_t)));
    CUDA_CHECK(cudaMallocHost((void **)&f->h_res_s, res * sizeof(float)));
    CUDA_CHECK(cudaMallocHost((void **)&f->h_res_i, res * sizeof(int64_t)));
    CUDA_CHECK(cudaMallocHost((void **)&f->h_stage, SC_GPU_FLAT_ADD_CHUNK * D * sizeof(sc_half)));

    /* every slot free (FREE_SCOPE is 0); free slots' vectors are never read into a result, but
     * zeros keep their (discarded) GEMM scores finite */
    CUDA_CHECK(cudaMemsetAsync(f->d_scope, 0, capacity * sizeof(uint64_t), f->stream));
    CUDA_CHECK(cudaMemsetAsync(f->d_vecs, 0, capacity * D * sizeof(sc_half), f->stream));
    CUDA_CHECK(cudaStreamSynchronize(f->stream));

    *out = f;
    f = NULL;
out:
    sc_gpu_flat_free(f);
    return st;
}

void sc_gpu_flat_free(sc_gpu_flat_t *f)
{
    if (!f)
        return;
    if (f->stream)
        cudaStreamSynchronize(f->stream); /* nothing may still be reading what we free */
    if (f->blas)
        cublasDestroy(f->blas);
    cudaFree(f->d_vecs); /* NULL is a no-op */
    cudaFree(f->d_scope);
    cudaFree(f->d_qf);
    cudaFree(f->d_q);
    cudaFree(f->d_qscope);
    cudaFree(f->d_scores);
    cudaFree(f->d_res_s);
    cudaFree(f->d_res_i);
    cudaFreeHost(f->h_q);
    cudaFreeHost(f->h_qscope);
    cudaFreeHost(f->h_res_s);
    cudaFreeHost(f->h_res_i);
    cudaFreeHost(f->h_stage);
    if (f->stream)
        cudaStreamDestroy(f->stream);
    free(f->h_scope);
    free(f->h_ids);
    free(f->free_slots);
    free(f->heads);
    free(f->slots);
    free(f);
}

size_t sc_gpu_flat_size(const sc_gpu_flat_t *f)
{
    return f ? f->size : 0;
}

/* ---- add / remove ---- */

sc_status_t sc_gpu_flat_add(sc_gpu_flat_t *f, size_t n, const float *vecs, const int64_t *ids,
                            const uint64_t *scopes)
{
    sc_status_t st = SC_OK;
    char *errbuf = NULL; /* later calls report through the log */
    const size_t errlen = 0;
    ARG_CHECK(f && (n == 0 || (vecs && ids && scopes)), "sc_gpu_flat_add: NULL argument");
    if (f->failed) {
        st = SC_ERR_CUDA;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        ARG_CHECK(scopes[i] != SC_GPU_FLAT_FREE_SCOPE,
                  "sc_gpu_flat_add: vector %zu has the "
                  "reserved scope %llu",
                  i, (unsigned long long)SC_GPU_FLAT_FREE_SCOPE);
    if (n > f->n_free + (f->capacity - f->hi)) {
        st = SC_ERR_FULL;
        goto out;
    }

    const size_t D = (size_t)f->dim;
    size_t *slots = f->slots;
    for (size_t c0 = 0; c0 < n; c0 += SC_GPU_FLAT_ADD_CHUNK) {
        const size_t cn = n - c0 < SC_GPU_FLAT_ADD_CHUNK ? n - c0 : SC_GPU_FLAT_ADD_CHUNK;
        for (size_t i = 0; i < cn; i++) {
            const size_t s = f->n_free ? f->free_slots[--f->n_free] : f->hi++;
            slots[i] = s;
            f->h_scope[s] = scopes[c0 + i];
            f->h_ids[s] = ids[c0 + i];
            const float *v = vecs + (c0 + i) * D;
            sc_half *h = f->h_stage + i * D;
            for (size_t d = 0; d < D; d++)
                h[d] = sc_half_from_float(v[d]);
        }
        /* one copy per run of consecutive slots: a fresh index is one run per chunk */
        for (size_t i = 0; i < cn;) {
            size_t j = i + 1;
            while (j < cn && slots[j] == slots[j - 1] + 1)
                j++;
            const size_t s0 = slots[i], len = j - i;
            CUDA_CHECK(cudaMemcpyAsync(f->d_vecs + s0 * D, f->h_stage + i * D,
                                       len * D * sizeof(sc_half), cudaMemcpyHostToDevice,
                                       f->stream));
            CUDA_CHECK(cudaMemcpyAsync(f->d_scope + s0, f->h_scope + s0, len * sizeof(uint64_t),
                                       cudaMemcpyHostToDevice, f->stream));
            i = j;
        }
        CUDA_CHECK(cudaStreamSynchronize(f->stream)); /* h_stage is refilled next chunk */
        f->size += cn;
    }
out:
    return st;
}

sc_status_t sc_gpu_flat_remove(sc_gpu_flat_t *f, int64_t id)
{
    sc_status_t st = SC_OK;
    char *errbuf = NULL;
    const size_t errlen = 0;
    ARG_CHECK(f, "sc_gpu_flat_remove: NULL index");
    if (f->failed) {
        st = SC_ERR_CUDA;
        goto out;
    }
    size_t s = 0;
    while (s < f->hi && !(f->h_scope[s] != SC_GPU_FLAT_FREE_SCOPE && f->h_ids[s] == id))
        s++;
    if (s == f->hi) {
        st = SC_ERR_NOT_FOUND;
        goto out;
    }
    f->h_scope[s] = SC_GPU_FLAT_FREE_SCOPE;
    f->h_ids[s] = -1;
    f->free_slots[f->n_free++] = s;
    f->size--;
    CUDA_CHECK(cudaMemcpyAsync(f->d_scope + s, f->h_scope + s, sizeof(uint64_t),
                               cudaMemcpyHostToDevice, f->stream));
    CUDA_CHECK(cudaStreamSynchronize(f->stream));
out:
    return st;
}

/* ---- search ---- */

/* scores [nq, n] (row-major, ld n) = Q [nq, dim] · Vᵀ for the slots V [n, dim], fp32 out.
 * Column-major (as cuBLAS reads): V is Vᵀ (dim × n, ld dim), Q is Qᵀ (dim × nq, ld dim) and the
 * result is scoresᵀ (n × nq, ld n) = V·Qᵀ = (Vᵀ)ᵀ·Qᵀ: A = V with CUBLAS_OP_T, B = Q with
 * CUBLAS_OP_N, m = n, n = nq, k = dim. */
static cublasStatus_t flat_gemm(cublasHandle_t blas, const sc_half *V, const sc_half *Q,
                                float *scores, int n, int nq, int dim)
{
    const float alpha = 1.f, beta = 0.f;
    return cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, nq, dim, &alpha, V, CUDA_R_16F, dim, Q,
                        CUDA_R_16F, dim, &beta, scores, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT);
}

/* The tiles' sorted lists of query qi (batch of nb, ntiles tiles) into its k best, best first;
 * equal scores go to the lower slot (tiles are in slot order). */
static void flat_merge(sc_gpu_flat_t *f, size_t ntiles, size_t nb, size_t qi, int k, float *scores,
                       int64_t *ids)
{
    const size_t K = (size_t)k;
    for (size_t t = 0; t < ntiles; t++)
        f->heads[t] = 0;
    for (size_t r = 0; r < K; r++) {
        size_t bt = ntiles, bslot = 0;
        float bs = -INFINITY;
        for (size_t t = 0; t < ntiles; t++) {
            if (f->heads[t] == K)
                continue;
            const size_t at = (t * nb + qi) * K + f->heads[t];
            const int64_t col = f->h_res_i[at];
            if (col < 0)
                continue; /* this tile's list has ended */
            const size_t slot = t * f->tile + (size_t)col;
            const float s = f->h_res_s[at];
            if (bt == ntiles || s > bs || (s == bs && slot < bslot)) {
                bt = t;
                bs = s;
                bslot = slot;
            }
        }
        if (bt == ntiles) {
            for (; r < K; r++) {
                scores[r] = -INFINITY;
                ids[r] = -1;
            }
            break;
        }
        scores[r] = bs;
        ids[r] = f->h_ids[bslot];
        f->heads[bt]++;
    }
}

sc_status_t sc_gpu_flat_search(sc_gpu_flat_t *f, size_t nq, const float *queries,
                               const uint64_t *scopes, int k, float *scores, int64_t *ids)
{
    sc_status_t st = SC_OK;
    char *errbuf = NULL;
    const size_t errlen = 0;
    ARG_CHECK(f, "sc_gpu_flat_search: NULL index");
    ARG_CHECK(k >= 1 && k <= SC_GPU_FLAT_MAX_K, "sc_gpu_flat_search: k %d not in 1..%d", k,
              SC_GPU_FLAT_MAX_K);
    if (nq == 0)
        goto out;
    ARG_CHECK(queries && scopes && scores && ids, "sc_gpu_flat_search: NULL argument");
    if (f->failed) {
        st = SC_ERR_CUDA;
        goto out;
    }
    for (size_t q = 0; q < nq; q++)
        ARG_CHECK(scopes[q] != SC_GPU_FLAT_FREE_SCOPE,
                  "sc_gpu_flat_search: query %zu has the "
                  "reserved scope %llu",
                  q, (unsigned long long)SC_GPU_FLAT_FREE_SCOPE);

    const size_t D = (size_t)f->dim, K = (size_t)k;
    if (f->hi == 0) { /* nothing was ever added: no device work */
        for (size_t i = 0; i < nq * K; i++) {
            scores[i] = -INFINITY;
            ids[i] = -1;
        }
        goto out;
    }
    const size_t ntiles = (f->hi + f->tile - 1) / f->tile;
    for (size_t q0 = 0; q0 < nq; q0 += SC_GPU_FLAT_QBATCH) {
        const size_t nb = nq - q0 < SC_GPU_FLAT_QBATCH ? nq - q0 : SC_GPU_FLAT_QBATCH;
        memcpy(f->h_q, queries + q0 * D, nb * D * sizeof(float));
        memcpy(f->h_qscope, scopes + q0, nb * sizeof(uint64_t));
        CUDA_CHECK(cudaMemcpyAsync(f->d_qf, f->h_q, nb * D * sizeof(float), cudaMemcpyHostToDevice,
                                   f->stream));
        CUDA_CHECK(sc_cast_f16(f->d_qf, f->d_q, nb * D, f->stream));
        CUDA_CHECK(cudaMemcpyAsync(f->d_qscope, f->h_qscope, nb * sizeof(uint64_t),
                                   cudaMemcpyHostToDevice, f->stream));
        for (size_t t = 0; t < ntiles; t++) {
            const size_t r0 = t * f->tile;
            const size_t rn = f->hi - r0 < f->tile ? f->hi - r0 : f->tile;
            /* the stream orders this tile's GEMM after the previous tile's top-k read d_scores */
            CUBLAS_CHECK(flat_gemm(f->blas, f->d_vecs + r0 * D, f->d_q, f->d_scores, (int)rn,
                                   (int)nb, f->dim));
            CUDA_CHECK(sc_topk_ip(f->d_scores, f->d_qscope, f->d_scope + r0, (int)nb, (int)rn, k,
                                  f->d_res_s + t * nb * K, f->d_res_i + t * nb * K, f->stream));
        }
        CUDA_CHECK(cudaMemcpyAsync(f->h_res_s, f->d_res_s, ntiles * nb * K * sizeof(float),
                                   cudaMemcpyDeviceToHost, f->stream));
        CUDA_CHECK(cudaMemcpyAsync(f->h_res_i, f->d_res_i, ntiles * nb * K * sizeof(int64_t),
                                   cudaMemcpyDeviceToHost, f->stream));
        CUDA_CHECK(cudaStreamSynchronize(f->stream));
        for (size_t qi = 0; qi < nb; qi++)
            flat_merge(f, ntiles, nb, qi, k, scores + (q0 + qi) * K, ids + (q0 + qi) * K);
    }
out:
    return st;
}
