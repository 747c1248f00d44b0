/* encoder_cpu.c - owns the CPU forward of the BERT encoder (OpenBLAS GEMMs + host/ops/ops_cpu.c) and its
 * reusable activation buffers. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "host/ops/ops_cpu.h"
#include "models/encoder_backend.h"

/* Tokens per internal pass: a larger call is split at sequence boundaries, so the activation
 * buffers never exceed this many rows (the FFN buffer is the largest: tokens × ffn floats). */
#define ENC_CPU_MAX_TOKENS 8192
#define ENC_CPU_MAX_THREADS 1024
#define ENC_CPU_ALIGN 64
#define ENC_CPU_MIN_ROWS_PER_THREAD 16 /* below this a GEMM is not worth splitting */

#ifdef _OPENMP
#define SC_OMP(directive) _Pragma(#directive)
#else
#define SC_OMP(directive)
#endif

struct sc_encoder_cpu {
    const sc_minilm_t *m; /* borrowed */
    int threads;
    /* activations, owned, grown to the largest pass seen (cap_tokens rows, at most
     * ENC_CPU_MAX_TOKENS) and reused */
    int cap_tokens, cap_seqs;
    float *x;     /* [tokens, hidden] the hidden state */
    float *qkv;   /* [tokens, 3*hidden] */
    float *ctx;   /* [tokens, hidden] attention output */
    float *tmp;   /* [tokens, hidden] output of the attention and FFN projections */
    float *h;     /* [tokens, ffn] */
    int32_t *pos; /* [tokens] */
    int32_t *off; /* [seqs+1] offsets of the current pass, rebased to 0 */
};

static void *alloc_aligned(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, ENC_CPU_ALIGN, bytes ? bytes : ENC_CPU_ALIGN) != 0)
        return NULL;
    return p;
}

static void free_buffers(sc_encoder_cpu_t *e)
{
    free(e->x);
    free(e->qkv);
    free(e->ctx);
    free(e->tmp);
    free(e->h);
    free(e->pos);
    free(e->off);
    e->x = e->qkv = e->ctx = e->tmp = e->h = NULL;
    e->pos = e->off = NULL;
    e->cap_tokens = e->cap_seqs = 0;
}

/* Grow a capacity geometrically (so a slowly rising batch size does not reallocate on every
 * call), never beyond the bound. */
static int grow(int cap, int need)
{
    int want = cap > ENC_CPU_MAX_TOKENS / 2 ? ENC_CPU_MAX_TOKENS : 2 * cap;
    return want > need ? want : need;
}

/* Make room for a pass of tokens rows and seqs sequences (both <= ENC_CPU_MAX_TOKENS). */
static sc_status_t reserve(sc_encoder_cpu_t *e, int tokens, int seqs)
{
    if (tokens > e->cap_tokens) {
        tokens = grow(e->cap_tokens, tokens);
        size_t t = (size_t)tokens, hd = (size_t)e->m->hidden, f = (size_t)e->m->ffn;
        free(e->x);
        free(e->qkv);
        free(e->ctx);
        free(e->tmp);
        free(e->h);
        free(e->pos);
        e->x = alloc_aligned(t * hd * sizeof(float));
        e->qkv = alloc_aligned(3 * t * hd * sizeof(float));
        e->ctx = alloc_aligned(t * hd * sizeof(float));
        e->tmp = alloc_aligned(t * hd * sizeof(float));
        e->h = alloc_aligned(t * f * sizeof(float));
        e->pos = alloc_aligned(t * sizeof(int32_t));
        if (!e->x || !e->qkv || !e->ctx || !e->tmp || !e->h || !e->pos) {
            free_buffers(e);
            return SC_ERR_NOMEM;
        }
        e->cap_tokens = tokens;
    }
    if (seqs > e->cap_seqs) {
        seqs = grow(e->cap_seqs, seqs);
        free(e->off);
        e->off = alloc_aligned(((size_t)seqs + 1) * sizeof(int32_t));
        if (!e->off) {
            free_buffers(e);
            return SC_ERR_NOMEM;
        }
        e->cap_seqs = seqs;
    }
    return SC_OK;
}

sc_status_t sc_encoder_cpu_new(const sc_minilm_t *m, int threads, sc_encoder_cpu_t **out,
                               char *errbuf, size_t errlen)
{
    *out = NULL;
    if (!m || threads < 0 || threads > ENC_CPU_MAX_THREADS) {
        snprintf(errbuf, errlen, "CPU encoder: threads must be 0..%d", ENC_CPU_MAX_THREADS);
        return SC_ERR_INVALID_ARG;
    }
    if (m->max_pos > ENC_CPU_MAX_TOKENS) {
        snprintf(errbuf, errlen, "CPU encoder: max_position_embeddings %d above the %d tokens of "
                 "one pass", m->max_pos, ENC_CPU_MAX_TOKENS);
        return SC_ERR_INVALID_ARG;
    }
    sc_encoder_cpu_t *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(errbuf, errlen, "CPU encoder: out of memory");
        return SC_ERR_NOMEM;
    }
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > ENC_CPU_MAX_THREADS ? ENC_CPU_MAX_THREADS : (int)n;
    }
    e->m = m;
    e->threads = threads;
#ifdef _OPENMP
    openblas_set_num_threads(1); /* the threads are OpenMP's: see linear() */
#else
    openblas_set_num_threads(threads);
#endif
    *out = e;
    return SC_OK;
}

void sc_encoder_cpu_free(sc_encoder_cpu_t *e)
{
    if (!e)
        return;
    free_buffers(e);
    free(e);
}

/* C[rows, n] = A[rows, k] · W[n, k]ᵀ (PyTorch Linear weights are [out, in]).
 * The rows are split over the OpenMP threads, each calling a single-threaded sgemm: OpenBLAS'
 * own threads would otherwise spin between GEMMs while the OpenMP ops run, and on a machine
 * with few cores the two pools steal time from each other. */
static void linear(const float *a, const float *w, float *c, int rows, int n, int k, int threads)
{
#ifdef _OPENMP
    int parts = threads < 1 ? 1 : threads;
#else
    int parts = 1; /* OpenBLAS' own threads do the work */
    (void)threads;
#endif
    if (rows < parts * ENC_CPU_MIN_ROWS_PER_THREAD)
        parts = rows / ENC_CPU_MIN_ROWS_PER_THREAD > 0 ? rows / ENC_CPU_MIN_ROWS_PER_THREAD : 1;
    SC_OMP(omp parallel for num_threads(parts) schedule(static, 1))
    for (int p = 0; p < parts; p++) {
        int r0 = (int)((int64_t)rows * p / parts), r1 = (int)((int64_t)rows * (p + 1) / parts);
        if (r1 > r0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, n, k, 1.0f,
                        a + (size_t)r0 * (size_t)k, k, w, k, 0.0f, c + (size_t)r0 * (size_t)n, n);
    }
}

/* One pass: seqs sequences, offsets rebased to 0 in e->off, ids of e->off[seqs] tokens. */
static void forward_pass(sc_encoder_cpu_t *e, const int32_t *ids, int seqs, float *out)
{
    const sc_minilm_t *m = e->m;
    const int hd = m->hidden, f = m->ffn, T = e->off[seqs];
    for (int s = 0; s < seqs; s++)
        for (int t = e->off[s]; t < e->off[s + 1]; t++)
            e->pos[t] = t - e->off[s];
    sc_embed_layernorm_cpu(ids, e->pos, T, m->word_emb, m->pos_emb, m->type_emb, m->emb_ln_g,
                           m->emb_ln_b, hd, m->eps, e->x);
    for (int l = 0; l < m->layers; l++) {
        const sc_minilm_layer_t *L = &m->layer[l];
        linear(e->x, L->qkv_w, e->qkv, T, 3 * hd, hd, e->threads);
        sc_attention_cpu(e->qkv, L->qkv_b, e->off, seqs, m->heads, hd / m->heads, e->ctx);
        linear(e->ctx, L->o_w, e->tmp, T, hd, hd, e->threads);
        sc_bias_residual_layernorm_cpu(e->tmp, L->o_b, e->x, L->ln1_g, L->ln1_b, T, hd, m->eps,
                                       e->x);
        linear(e->x, L->ff1_w, e->h, T, f, hd, e->threads);
        sc_bias_gelu_cpu(e->h, L->ff1_b, T, f);
        linear(e->h, L->ff2_w, e->tmp, T, hd, f, e->threads);
        sc_bias_residual_layernorm_cpu(e->tmp, L->ff2_b, e->x, L->ln2_g, L->ln2_b, T, hd, m->eps,
                                       e->x);
    }
    sc_meanpool_l2_cpu(e->x, e->off, seqs, hd, out);
}

sc_status_t sc_encoder_cpu_forward(sc_encoder_cpu_t *e, const int32_t *ids,
                                   const int32_t *offsets, size_t n, float *out)
{
    const sc_minilm_t *m = e->m;
    if (n == 0)
        return SC_OK;
    /* the contract of the caller (encoder.c checks ids and lengths); checked again because an id
     * out of range would read outside the embedding table */
    if (offsets[0] < 0)
        return SC_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++) {
        int64_t len = (int64_t)offsets[i + 1] - offsets[i];
        if (len < 1 || len > m->max_pos)
            return SC_ERR_INVALID_ARG;
        for (int32_t t = offsets[i]; t < offsets[i + 1]; t++)
            if (ids[t] < 0 || ids[t] >= m->vocab)
                return SC_ERR_INVALID_ARG;
    }
#ifdef _OPENMP
    omp_set_num_threads(e->threads); /* per calling thread: set on every call */
#endif
    size_t i = 0;
    while (i < n) {
        /* the longest run of whole sequences within the token bound (one always fits) */
        size_t j = i + 1;
        while (j < n && offsets[j + 1] - offsets[i] <= ENC_CPU_MAX_TOKENS)
            j++;
        int seqs = (int)(j - i), tokens = offsets[j] - offsets[i];
        sc_status_t rc = reserve(e, tokens, seqs);
        if (rc)
            return rc;
        for (int s = 0; s <= seqs; s++)
            e->off[s] = offsets[i + (size_t)s] - offsets[i];
        forward_pass(e, ids + offsets[i], seqs, out + i * (size_t)m->hidden);
        i = j;
    }
    return SC_OK;
}
