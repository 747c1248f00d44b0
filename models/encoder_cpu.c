/* encoder_cpu.c - owns the CPU forward of the BERT encoder (oneDNN or OpenBLAS GEMMs +
 * host/ops/ops_cpu.c) and its reusable activation buffers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef SCRIMP_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#else
#include <cblas.h>
#endif

#include "host/core/log.h"
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

/* ---- GEMM library ---- */

#ifdef SCRIMP_HAVE_DNNL
static const char *dnnl_isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other"; /* an enum of the library's: a newer one may add ISAs */
    }
}

/* Which library runs the GEMMs, and the ISA oneDNN dispatched to on this CPU. */
static void log_gemm_library(int threads)
{
    const dnnl_version_t *v = dnnl_version();
    sc_info("encoder.gemm", "library=onednn version=%d.%d.%d isa=%s threads=%d", v->major,
            v->minor, v->patch, dnnl_isa_name(dnnl_get_effective_cpu_isa()), threads);
}
#else
/* OpenBLAS runs a CPU that its build does not recognise on its generic "Prescott" kernels (SSE3),
 * several times slower than the AVX2/AVX-512 kernels it has; the other pre-AVX cores named here
 * are as slow on a CPU that has AVX2. */
static int openblas_core_is_pre_avx(const char *core)
{
    static const char *const pre_avx[] = {"Prescott", "Core2", "Penryn", "Dunnington",
                                          "Nehalem", "Atom"};
    for (size_t i = 0; i < sizeof pre_avx / sizeof pre_avx[0]; i++)
        if (strcasecmp(core, pre_avx[i]) == 0)
            return 1;
    return 0;
}

static void log_gemm_library(int threads)
{
    const char *core = openblas_get_corename();
    if (!core)
        core = "unknown";
    sc_info("encoder.gemm", "library=openblas core=%s threads=%d", core, threads);
#if defined(__x86_64__) || defined(__i386__)
    const char *isa = __builtin_cpu_supports("avx512f") ? "avx512f"
                      : __builtin_cpu_supports("avx2") ? "avx2"
                                                        : NULL;
    if (isa && openblas_core_is_pre_avx(core))
        sc_warn("encoder.gemm", "library=openblas core=%s cpu=%s reason=\"OpenBLAS does not know "
                "this CPU and runs its generic kernels, several times slower; set "
                "OPENBLAS_CORETYPE=%s (or build with oneDNN, libdnnl-dev)\"", core, isa,
                strcmp(isa, "avx512f") == 0 ? "SkylakeX" : "Haswell");
#endif
}
#endif

/* ---- create, destroy ---- */

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
    const char *omp = getenv("OMP_NUM_THREADS"); /* the OpenMP convention, when set */
    if (threads == 0 && omp && atoi(omp) >= 1)
        threads = atoi(omp) > ENC_CPU_MAX_THREADS ? ENC_CPU_MAX_THREADS : atoi(omp);
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > ENC_CPU_MAX_THREADS ? ENC_CPU_MAX_THREADS : (int)n;
    }
    e->m = m;
    e->threads = threads;
#ifndef SCRIMP_HAVE_DNNL
#ifdef _OPENMP
    openblas_set_num_threads(1); /* the threads are OpenMP's: see linear() */
#else
    openblas_set_num_threads(threads);
#endif
#endif
    log_gemm_library(threads);
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

/* ---- forward ---- */

/* C[rows, n] = A[rows, k] · W[n, k]ᵀ (PyTorch Linear weights are [out, in]), on one thread. */
static sc_status_t gemm_rows(const float *a, const float *w, float *c, int rows, int n, int k)
{
#ifdef SCRIMP_HAVE_DNNL
    dnnl_status_t st = dnnl_sgemm('N', 'T', rows, n, k, 1.0f, a, k, w, k, 0.0f, c, n);
    return st == dnnl_success ? SC_OK : st == dnnl_out_of_memory ? SC_ERR_NOMEM
                                                                 : SC_ERR_INVALID_ARG;
#else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, k, 1.0f, a, k, w, k, 0.0f, c, n);
    return SC_OK;
#endif
}

/* C[rows, n] = A[rows, k] · W[n, k]ᵀ.
 * The rows are split over the OpenMP threads, each calling a single-threaded sgemm: OpenBLAS'
 * own threads would otherwise spin between GEMMs while the OpenMP ops run, and on a machine
 * with few cores the two pools steal time from each other. oneDNN's runtime is this same OpenMP:
 * inside the parallel region it runs on the calling thread only, and called outside it (too few
 * rows to split) it uses the encoder's threads itself. Letting oneDNN split every GEMM itself
 * measured the same at batch 32 (bench/results/encoder-cpu-dnnl.md); calling it from a
 * one-thread parallel region made it 10x slower at batch 1 (14 against 190 sentences/s), hence
 * parts == 1 calls it directly. */
static sc_status_t linear(const float *a, const float *w, float *c, int rows, int n, int k,
                          int threads)
{
#ifdef _OPENMP
    int parts = threads < 1 ? 1 : threads;
#else
    int parts = 1; /* OpenBLAS' own threads do the work */
    (void)threads;
#endif
    if (rows < parts * ENC_CPU_MIN_ROWS_PER_THREAD)
        parts = rows / ENC_CPU_MIN_ROWS_PER_THREAD > 0 ? rows / ENC_CPU_MIN_ROWS_PER_THREAD : 1;
    if (parts == 1)
        return gemm_rows(a, w, c, rows, n, k);
    sc_status_t first = SC_OK; /* the first failure, if any */
    SC_OMP(omp parallel for num_threads(parts) schedule(static, 1))
    for (int p = 0; p < parts; p++) {
        int r0 = (int)((int64_t)rows * p / parts), r1 = (int)((int64_t)rows * (p + 1) / parts);
        if (r1 > r0) {
            sc_status_t rc = gemm_rows(a + (size_t)r0 * (size_t)k, w, c + (size_t)r0 * (size_t)n,
                                       r1 - r0, n, k);
            if (rc) {
                SC_OMP(omp critical(enc_cpu_linear))
                if (!first)
                    first = rc;
            }
        }
    }
    return first;
}

/* One pass: seqs sequences, offsets rebased to 0 in e->off, ids of e->off[seqs] tokens. */
static sc_status_t forward_pass(sc_encoder_cpu_t *e, const int32_t *ids, int seqs, float *out)
{
    sc_status_t rc;
    const sc_minilm_t *m = e->m;
    const int hd = m->hidden, f = m->ffn, T = e->off[seqs];
    for (int s = 0; s < seqs; s++)
        for (int t = e->off[s]; t < e->off[s + 1]; t++)
            e->pos[t] = t - e->off[s];
    sc_embed_layernorm_cpu(ids, e->pos, T, m->word_emb, m->pos_emb, m->type_emb, m->emb_ln_g,
                           m->emb_ln_b, hd, m->eps, e->x);
    for (int l = 0; l < m->layers; l++) {
        const sc_minilm_layer_t *L = &m->layer[l];
        if ((rc = linear(e->x, L->qkv_w, e->qkv, T, 3 * hd, hd, e->threads)))
            return rc;
        sc_attention_cpu(e->qkv, L->qkv_b, e->off, seqs, m->heads, hd / m->heads, e->ctx);
        if ((rc = linear(e->ctx, L->o_w, e->tmp, T, hd, hd, e->threads)))
            return rc;
        sc_bias_residual_layernorm_cpu(e->tmp, L->o_b, e->x, L->ln1_g, L->ln1_b, T, hd, m->eps,
                                       e->x);
        if ((rc = linear(e->x, L->ff1_w, e->h, T, f, hd, e->threads)))
            return rc;
        sc_bias_gelu_cpu(e->h, L->ff1_b, T, f);
        if ((rc = linear(e->h, L->ff2_w, e->tmp, T, hd, f, e->threads)))
            return rc;
        sc_bias_residual_layernorm_cpu(e->tmp, L->ff2_b, e->x, L->ln2_g, L->ln2_b, T, hd, m->eps,
                                       e->x);
    }
    sc_meanpool_l2_cpu(e->x, e->off, seqs, hd, out);
    return SC_OK;
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
        rc = forward_pass(e, ids + offsets[i], seqs, out + i * (size_t)m->hidden);
        if (rc)
            return rc;
        i = j;
    }
    return SC_OK;
}
