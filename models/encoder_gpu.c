/* encoder_gpu.c - the CUDA forward of MiniLM (DESIGN §6): fp16 weights and activations on one
 * device, cuBLAS GEMMs with fp32 accumulation, the kernels of kernels/ for everything else, in
 * the order of the CPU forward (models/encoder_cpu.c). Every buffer is sized once in
 * sc_encoder_gpu_new(); a forward allocates nothing. An encoder is not thread-safe: one caller
 * at a time (it owns one stream and reuses its buffers). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "host/core/cuda_check.h"
#include "host/core/log.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "models/encoder_backend.h"

/* Device failures: SC_ERR_CUDA with the CUDA or cuBLAS message (and file:line) in errbuf or the
 * log (host/core/cuda_check.h). */

#define SC_GPU_HEAD_DIM 32    /* the only head size kernels/attention.cu supports */
#define SC_GPU_MAX_LEN  256   /* SC_ATTN_MAX_LEN in kernels/attention.cuh */
#define SC_GPU_MAX_SEQS 65535 /* bounds the pinned and device buffers; well above any batch */
/* device allocations: 5 embedding tensors + 12 per layer + 10 activation/index buffers */
#define SC_GPU_MAX_ALLOCS (5 + 12 * SC_MINILM_MAX_LAYERS + 10)
#define GPU_PROF_STAGES 11
#define GPU_PROF_EVENTS (3 + 8 * SC_MINILM_MAX_LAYERS)

typedef struct {
    sc_half *qkv_w, *qkv_b, *o_w, *o_b, *ff1_w, *ff1_b, *ff2_w, *ff2_b; /* fp16 */
    float *ln1_g, *ln1_b, *ln2_g, *ln2_b;                               /* fp32 */
} gpu_layer_t;

struct sc_encoder_gpu {
    int vocab, hidden, heads, ffn, layers, max_pos;
    float eps;
    int max_seqs, max_len;
    size_t max_tokens;

    cudaStream_t stream;
    cublasHandle_t blas;

    /* weights, device, owned through dev[] */
    sc_half *word, *pos_emb, *type_emb; /* fp16 */
    float *emb_g, *emb_b;               /* fp32 */
    gpu_layer_t layer[SC_MINILM_MAX_LAYERS];

    /* activations, device: [max_tokens, …] */
    sc_half *x;                     /* [T, hidden]: the residual stream */
    sc_half *qkv;                   /* [T, 3*hidden] */
    sc_half *ctx;                   /* [T, hidden] */
    sc_half *tmp;                   /* [T, hidden]: output of the o and ff2 GEMMs */
    sc_half *h;                     /* [T, ffn] */
    int32_t *d_ids, *d_pos, *d_off; /* [T], [T], [max_seqs + 1] */
    float *d_out;                   /* [max_seqs, hidden] */

    /* pinned host staging, owned (cudaFreeHost) */
    int32_t *h_ids, *h_pos, *h_off;
    float *h_out;

    void *dev[SC_GPU_MAX_ALLOCS]; /* every cudaMalloc above, freed in sc_encoder_gpu_free */
    int n_dev;

    /* SCRIMP_GPU_PROFILE=1: device time per stage (events around each launch), summed over the
     * forwards and printed to stderr by sc_encoder_gpu_free; off by default (events cost a
     * little) */
    int profile;
    cudaEvent_t ev[GPU_PROF_EVENTS];
    double prof_ms[GPU_PROF_STAGES];
    long prof_forwards;
};

/* ---- the optional per-stage profile ---- */

static const char *const gpu_prof_names[GPU_PROF_STAGES] = {
    "upload", "embed+ln", "qkv gemm", "attention", "o gemm", "bias+res+ln1", "ff1 gemm",
    "bias+gelu", "ff2 gemm", "bias+res+ln2", "pool+download"};

/* Record the event that ends a stage of kind `stage` (each event follows the one before). */
#define PROF_MARK(stage)                                                                           \
    do {                                                                                           \
        if (e->profile && n_ev < GPU_PROF_EVENTS) {                                                \
            ev_stage[n_ev] = (stage);                                                              \
            CUDA_CHECK(cudaEventRecord(e->ev[n_ev++], st_));                                       \
        }                                                                                          \
    } while (0)

/* ---- availability ---- */

int sc_encoder_gpu_available(char *errbuf, size_t errlen)
{
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        sc_cuda_errf(errbuf, errlen, __FILE__, __LINE__, "cudaGetDeviceCount: %s",
                 cudaGetErrorString(err));
        return 0;
    }
    if (n <= 0) {
        sc_cuda_errf(errbuf, errlen, __FILE__, __LINE__, "no CUDA device");
        return 0;
    }
    err = cudaSetDevice(0);
    if (err == cudaSuccess)
        err = cudaFree(NULL); /* forces the primary context up: the device really initialises */
    if (err != cudaSuccess) {
        sc_cuda_errf(errbuf, errlen, __FILE__, __LINE__, "device 0 does not initialise: %s",
                 cudaGetErrorString(err));
        return 0;
    }
    return 1;
}

/* ---- allocation and upload ---- */

static cudaError_t gpu_alloc(sc_encoder_gpu_t *e, size_t bytes, void **out)
{
    *out = NULL;
    if (e->n_dev >= SC_GPU_MAX_ALLOCS)
        return cudaErrorMemoryAllocation; /* a programming error: raise SC_GPU_MAX_ALLOCS */
    cudaError_t err = cudaMalloc(out, bytes ? bytes : 1);
    if (err == cudaSuccess)
        e->dev[e->n_dev++] = *out;
    return err;
}

/* n floats of host memory to a new device array of n fp16 values. */
static cudaError_t gpu_upload_half(sc_encoder_gpu_t *e, const float *src, size_t n, sc_half **out)
{
    *out = NULL;
    uint16_t *tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return cudaErrorMemoryAllocation;
    for (size_t i = 0; i < n; i++)
        tmp[i] = sc_half_from_float(src[i]);
    void *d = NULL;
    cudaError_t err = gpu_alloc(e, n * sizeof *tmp, &d);
    if (err == cudaSuccess)
        err = cudaMemcpy(d, tmp, n * sizeof *tmp, cudaMemcpyHostToDevice);
    free(tmp);
    if (err == cudaSuccess)
        *out = d;
    return err;
}

static cudaError_t gpu_upload_float(sc_encoder_gpu_t *e, const float *src, size_t n, float **out)
{
    *out = NULL;
    void *d = NULL;
    cudaError_t err = gpu_alloc(e, n * sizeof(float), &d);
    if (err == cudaSuccess)
        err = cudaMemcpy(d, src, n * sizeof(float), cudaMemcpyHostToDevice);
    if (err == cudaSuccess)
        *out = d;
    return err;
}

/* ---- create / destroy ---- */

sc_status_t sc_encoder_gpu_new(const sc_minilm_t *m, int max_seqs, int max_len,
                               sc_encoder_gpu_t **out, char *errbuf, size_t errlen)
{
    sc_status_t st = SC_OK;
    sc_encoder_gpu_t *e = NULL;
    if (out)
        *out = NULL;
    ARG_CHECK(m && out, "sc_encoder_gpu_new: NULL model or out");
    ARG_CHECK(max_seqs > 0 && max_seqs <= SC_GPU_MAX_SEQS, "max_seqs %d not in 1..%d", max_seqs,
              SC_GPU_MAX_SEQS);
    ARG_CHECK(max_len > 0 && max_len <= SC_GPU_MAX_LEN && max_len <= m->max_pos,
              "max_len %d not in 1..%d (and <= max_position_embeddings %d)", max_len,
              SC_GPU_MAX_LEN, m->max_pos);
    ARG_CHECK(m->layers > 0 && m->layers <= SC_MINILM_MAX_LAYERS, "%d layers", m->layers);
    ARG_CHECK(m->heads > 0 && m->hidden == m->heads * SC_GPU_HEAD_DIM,
              "the CUDA attention needs head size %d (hidden %d, heads %d)", SC_GPU_HEAD_DIM,
              m->hidden, m->heads);
    ARG_CHECK(m->hidden % 8 == 0 && m->hidden <= 1024 && m->ffn > 0 && m->ffn % 8 == 0,
              "hidden %d / ffn %d: the kernels need multiples of 8 and hidden <= 1024", m->hidden,
              m->ffn);
    ARG_CHECK(m->vocab > 0 && m->type_vocab > 0, "empty embedding tables");

    e = calloc(1, sizeof *e);
    if (!e) {
        sc_cuda_errf(errbuf, errlen, __FILE__, __LINE__, "out of host memory");
        st = SC_ERR_NOMEM;
        goto out;
    }
    e->vocab = m->vocab;
    e->hidden = m->hidden;
    e->heads = m->heads;
    e->ffn = m->ffn;
    e->layers = m->layers;
    e->max_pos = m->max_pos;
    e->eps = m->eps;
    e->max_seqs = max_seqs;
    e->max_len = max_len;
    e->max_tokens = (size_t)max_seqs * (size_t)max_len;

    CUDA_CHECK(cudaSetDevice(0));
    CUDA_CHECK(cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking));
    const char *prof = getenv("SCRIMP_GPU_PROFILE");
    e->profile = prof && prof[0] == '1';
    for (int i = 0; e->profile && i < GPU_PROF_EVENTS; i++)
        CUDA_CHECK(cudaEventCreate(&e->ev[i]));
    CUBLAS_CHECK(cublasCreate(&e->blas));
    CUBLAS_CHECK(cublasSetStream(e->blas, e->stream));
    /* default math: fp16 GEMMs run on tensor cores; the compute type (fp32) is given per call */
    CUBLAS_CHECK(cublasSetMathMode(e->blas, CUBLAS_DEFAULT_MATH));

    /* ---- weights ---- */
    const size_t H = (size_t)m->hidden, F = (size_t)m->ffn;
    CUDA_CHECK(gpu_upload_half(e, m->word_emb, (size_t)m->vocab * H, &e->word));
    CUDA_CHECK(gpu_upload_half(e, m->pos_emb, (size_t)m->max_pos * H, &e->pos_emb));
    CUDA_CHECK(gpu_upload_half(e, m->type_emb, (size_t)m->type_vocab * H, &e->type_emb));
    CUDA_CHECK(gpu_upload_float(e, m->emb_ln_g, H, &e->emb_g));
    CUDA_CHECK(gpu_upload_float(e, m->emb_ln_b, H, &e->emb_b));
    for (int l = 0; l < m->layers; l++) {
        const sc_minilm_layer_t *s = &m->layer[l];
        gpu_layer_t *d = &e->layer[l];
        CUDA_CHECK(gpu_upload_half(e, s->qkv_w, 3 * H * H, &d->qkv_w));
        CUDA_CHECK(gpu_upload_half(e, s->qkv_b, 3 * H, &d->qkv_b));
        CUDA_CHECK(gpu_upload_half(e, s->o_w, H * H, &d->o_w));
        CUDA_CHECK(gpu_upload_half(e, s->o_b, H, &d->o_b));
        CUDA_CHECK(gpu_upload_half(e, s->ff1_w, F * H, &d->ff1_w));
        CUDA_CHECK(gpu_upload_half(e, s->ff1_b, F, &d->ff1_b));
        CUDA_CHECK(gpu_upload_half(e, s->ff2_w, H * F, &d->ff2_w));
        CUDA_CHECK(gpu_upload_half(e, s->ff2_b, H, &d->ff2_b));
        CUDA_CHECK(gpu_upload_float(e, s->ln1_g, H, &d->ln1_g));
        CUDA_CHECK(gpu_upload_float(e, s->ln1_b, H, &d->ln1_b));
        CUDA_CHECK(gpu_upload_float(e, s->ln2_g, H, &d->ln2_g));
        CUDA_CHECK(gpu_upload_float(e, s->ln2_b, H, &d->ln2_b));
    }

    /* The uploads ran on the legacy default stream, which our non-blocking stream does not wait
     * for, and a pageable cudaMemcpy may return before its DMA lands: finish them here. */
    CUDA_CHECK(cudaDeviceSynchronize());

    /* ---- activations and staging, once, for max_seqs × max_len tokens ---- */
    const size_t T = e->max_tokens, S = (size_t)max_seqs;
    CUDA_CHECK(gpu_alloc(e, T * H * sizeof(sc_half), (void **)&e->x));
    CUDA_CHECK(gpu_alloc(e, T * 3 * H * sizeof(sc_half), (void **)&e->qkv));
    CUDA_CHECK(gpu_alloc(e, T * H * sizeof(sc_half), (void **)&e->ctx));
    CUDA_CHECK(gpu_alloc(e, T * H * sizeof(sc_half), (void **)&e->tmp));
    CUDA_CHECK(gpu_alloc(e, T * F * sizeof(sc_half), (void **)&e->h));
    CUDA_CHECK(gpu_alloc(e, T * sizeof(int32_t), (void **)&e->d_ids));
    CUDA_CHECK(gpu_alloc(e, T * sizeof(int32_t), (void **)&e->d_pos));
    CUDA_CHECK(gpu_alloc(e, (S + 1) * sizeof(int32_t), (void **)&e->d_off));
    CUDA_CHECK(gpu_alloc(e, S * H * sizeof(float), (void **)&e->d_out));
    CUDA_CHECK(cudaMallocHost((void **)&e->h_ids, T * sizeof(int32_t)));
    CUDA_CHECK(cudaMallocHost((void **)&e->h_pos, T * sizeof(int32_t)));
    CUDA_CHECK(cudaMallocHost((void **)&e->h_off, (S + 1) * sizeof(int32_t)));
    CUDA_CHECK(cudaMallocHost((void **)&e->h_out, S * H * sizeof(float)));

    *out = e;
    e = NULL;
out:
    sc_encoder_gpu_free(e);
    return st;
}

void sc_encoder_gpu_free(sc_encoder_gpu_t *e)
{
    if (!e)
        return;
    if (e->stream)
        cudaStreamSynchronize(e->stream); /* nothing may still be reading what we free */
    if (e->profile && e->prof_forwards > 0) {
        double total = 0;
        for (int i = 0; i < GPU_PROF_STAGES; i++)
            total += e->prof_ms[i];
        for (int i = 0; i < GPU_PROF_STAGES; i++)
            fprintf(stderr, "encoder_gpu profile: %-14s %9.4f ms per forward  %5.1f%%  (%ld forwards)\n",
                    gpu_prof_names[i], e->prof_ms[i] / (double)e->prof_forwards,
                    total > 0 ? 100.0 * e->prof_ms[i] / total : 0.0, e->prof_forwards);
    }
    for (int i = 0; e->profile && i < GPU_PROF_EVENTS; i++)
        if (e->ev[i])
            cudaEventDestroy(e->ev[i]);
    if (e->blas)
        cublasDestroy(e->blas);
    for (int i = 0; i < e->n_dev; i++)
        cudaFree(e->dev[i]);
    cudaFreeHost(e->h_ids); /* NULL is a no-op */
    cudaFreeHost(e->h_pos);
    cudaFreeHost(e->h_off);
    cudaFreeHost(e->h_out);
    if (e->stream)
        cudaStreamDestroy(e->stream);
    free(e);
}

/* ---- forward ---- */

/* Y = X · Wᵀ for row-major activations X [tokens, in] and a PyTorch weight W [out, in] (row-major),
 * giving row-major Y [tokens, out]; fp16 in and out, fp32 accumulation.
 *
 * cuBLAS is column-major. A row-major r×c matrix with leading dimension c is, read column-major,
 * the c×r matrix — its transpose. So, column-major: X is Xᶜ = Xᵀ (in × tokens, ld in), W is
 * Wᶜ = Wᵀ (in × out, ld in), and we want Yᶜ = Yᵀ (out × tokens, ld out). Since
 * Yᵀ = (X·Wᵀ)ᵀ = W·Xᵀ = (Wᶜ)ᵀ·Xᶜ, the call is C = op(A)·op(B) with A = Wᶜ, op(A) = Aᵀ
 * (CUBLAS_OP_T, lda = in), B = Xᶜ, op(B) = B (CUBLAS_OP_N, ldb = in), m = out, n = tokens,
 * k = in, ldc = out. */
static cublasStatus_t gpu_linear(cublasHandle_t blas, const sc_half *X, const sc_half *W,
                                 sc_half *Y, int tokens, int in, int out_features)
{
    const float alpha = 1.f, beta = 0.f;
    return cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, out_features, tokens, in, &alpha, W,
                        CUDA_R_16F, in, X, CUDA_R_16F, in, &beta, Y, CUDA_R_16F, out_features,
                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

sc_status_t sc_encoder_gpu_forward(sc_encoder_gpu_t *e, const int32_t *ids, const int32_t *offsets,
                                   size_t n, float *out)
{
    sc_status_t st = SC_OK;
    char errbuf[512] = "";
    const size_t errlen = sizeof errbuf;
    ARG_CHECK(e && (n == 0 || (ids && offsets && out)), "sc_encoder_gpu_forward: NULL argument");
    if (n == 0)
        return SC_OK;
    ARG_CHECK(n <= (size_t)e->max_seqs, "batch of %zu sequences > max_seqs %d", n, e->max_seqs);

    /* ---- stage ids, positions and offsets (rebased to 0) in pinned memory, checking each ---- */
    const int32_t base = offsets[0];
    int max_len = 0;
    e->h_off[0] = 0;
    for (size_t s = 0; s < n; s++) {
        const int32_t a = offsets[s], b = offsets[s + 1], len = b - a;
        ARG_CHECK(a >= base && len >= 1 && len <= e->max_len,
                  "sequence %zu has %d tokens (1..%d allowed)", s, (int)len, e->max_len);
        for (int32_t t = 0; t < len; t++) {
            const int32_t id = ids[a + t];
            ARG_CHECK(id >= 0 && id < e->vocab, "sequence %zu: token id %d outside 0..%d", s,
                      (int)id, e->vocab - 1);
            e->h_ids[a - base + t] = id;
            e->h_pos[a - base + t] = t; /* < max_len <= max_pos */
        }
        e->h_off[s + 1] = b - base;
        if (len > max_len)
            max_len = len;
    }
    const int T = e->h_off[n], S = (int)n;
    const int H = e->hidden, F = e->ffn;
    cudaStream_t st_ = e->stream;
    int ev_stage[GPU_PROF_EVENTS], n_ev = 0;
    PROF_MARK(-1); /* the start */

    CUDA_CHECK(cudaMemcpyAsync(e->d_ids, e->h_ids, (size_t)T * sizeof(int32_t),
                               cudaMemcpyHostToDevice, st_));
    CUDA_CHECK(cudaMemcpyAsync(e->d_pos, e->h_pos, (size_t)T * sizeof(int32_t),
                               cudaMemcpyHostToDevice, st_));
    CUDA_CHECK(cudaMemcpyAsync(e->d_off, e->h_off, ((size_t)S + 1) * sizeof(int32_t),
                               cudaMemcpyHostToDevice, st_));
    PROF_MARK(0);

    /* ---- embeddings ---- */
    CUDA_CHECK(sc_embed_layernorm(e->d_ids, e->d_pos, T, e->word, e->pos_emb, e->type_emb, e->emb_g,
                                  e->emb_b, H, e->eps, e->x, st_));
    PROF_MARK(1);

    /* ---- layers ---- */
    for (int l = 0; l < e->layers; l++) {
        const gpu_layer_t *w = &e->layer[l];
        CUBLAS_CHECK(gpu_linear(e->blas, e->x, w->qkv_w, e->qkv, T, H, 3 * H));
        PROF_MARK(2);
        CUDA_CHECK(sc_attention(e->qkv, w->qkv_b, e->d_off, S, max_len, e->heads, SC_GPU_HEAD_DIM,
                                e->ctx, st_));
        PROF_MARK(3);
        CUBLAS_CHECK(gpu_linear(e->blas, e->ctx, w->o_w, e->tmp, T, H, H));
        PROF_MARK(4);
        CUDA_CHECK(sc_bias_residual_layernorm(e->tmp, w->o_b, e->x, w->ln1_g, w->ln1_b, T, H,
                                              e->eps, e->x, st_));
        PROF_MARK(5);
        CUBLAS_CHECK(gpu_linear(e->blas, e->x, w->ff1_w, e->h, T, H, F));
        PROF_MARK(6);
        CUDA_CHECK(sc_bias_gelu(e->h, w->ff1_b, T, F, st_));
        PROF_MARK(7);
        CUBLAS_CHECK(gpu_linear(e->blas, e->h, w->ff2_w, e->tmp, T, F, H));
        PROF_MARK(8);
        CUDA_CHECK(sc_bias_residual_layernorm(e->tmp, w->ff2_b, e->x, w->ln2_g, w->ln2_b, T, H,
                                              e->eps, e->x, st_));
        PROF_MARK(9);
    }

    /* ---- pooling, back to the host ---- */
    CUDA_CHECK(sc_meanpool_l2(e->x, e->d_off, S, H, e->d_out, st_));
    CUDA_CHECK(cudaMemcpyAsync(e->h_out, e->d_out, (size_t)S * (size_t)H * sizeof(float),
                               cudaMemcpyDeviceToHost, st_));
    PROF_MARK(10);
    CUDA_CHECK(cudaStreamSynchronize(st_)); /* asynchronous kernel faults surface here */
    for (int i = 1; i < n_ev; i++) {
        float ms = 0.f;
        CUDA_CHECK(cudaEventElapsedTime(&ms, e->ev[i - 1], e->ev[i]));
        e->prof_ms[ev_stage[i]] += ms;
    }
    e->prof_forwards += n_ev > 0;
    memcpy(out, e->h_out, (size_t)S * (size_t)H * sizeof(float));
out:
    if (st != SC_OK && e && e->stream)
        cudaStreamSynchronize(e->stream); /* drain: the next call reuses the staging buffers */
    if (st != SC_OK)
        sc_error("encoder_gpu_forward", "status=%s detail=\"%s\"", sc_strerror(st), errbuf);
    return st;
}
