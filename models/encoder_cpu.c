/* encoder_cpu.c - owns the CPU forward of the BERT encoder (oneDNN or OpenBLAS GEMMs +
 * host/ops/ops_cpu.c) and its reusable activation buffers. */
#include <math.h>
#include <stdint.h>
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

/* One Linear layer's weights, as the GEMMs of the chosen precision read them. */
typedef struct {
    const float *w; /* fp32 [n, k] (PyTorch [out, in]), borrowed from the model */
    int n, k;
#ifdef SCRIMP_HAVE_DNNL
    dnnl_primitive_t mm; /* bf16: [rows, k] bf16 · weights → [rows, n] fp32, rows set per call;
                          * with gelu_b: gelu(· + gelu_b) → [rows, n] bf16 */
    dnnl_memory_t wmem;  /* bf16: the weights in the layout that primitive chose */
    dnnl_memory_t bmem;  /* bf16 with gelu_b: the bias, [1, n] fp32 */
#endif
    const float *gelu_b; /* bf16 only: the FFN's up projection, its bias and GELU fused in */
    /* int8: mm takes u8 [rows, k] · s8 weights (wmem) → s32 [rows, n], dequantised after */
    int int8;
    float *wscale;   /* int8: [n], W[c,:] ≈ wscale[c] · Wq[c,:] */
    int32_t *colsum; /* int8: [n], Σ Wq[c,:] (the zero points' share of the s32 sums) */
    /* int8 behind a LayerNorm: its gain and bias, [k], and the smoothing they give (lin_int8) */
    const float *ln_g, *ln_b;
    float *inv_smooth; /* [k] or NULL */
} enc_lin_t;

#define ENC_LINEARS 4 /* per layer: qkv, attention output, ffn up, ffn down */

struct sc_encoder_cpu {
    const sc_minilm_t *m; /* borrowed */
    int threads;
    sc_precision_t precision; /* FP32, BF16 or INT8 */
    enc_lin_t *lin;           /* [layers * ENC_LINEARS] */
#ifdef SCRIMP_HAVE_DNNL
    dnnl_engine_t eng; /* bf16 and int8 */
    dnnl_stream_t stream;
#endif
    /* activations, owned, grown to the largest pass seen (cap_tokens rows, at most
     * ENC_CPU_MAX_TOKENS) and reused */
    int cap_tokens, cap_seqs;
    float *x;     /* [tokens, hidden] the hidden state */
    float *qkv;   /* [tokens, 3*hidden] */
    float *ctx;   /* [tokens, hidden] attention output */
    float *tmp;   /* [tokens, hidden] output of the attention and FFN projections */
    float *h;     /* [tokens, ffn] (fp32 only) */
    int32_t *pos; /* [tokens] */
    int32_t *off; /* [seqs+1] offsets of the current pass, rebased to 0 */
    /* bf16, int8: the GEMM input converted, [tokens, hidden], and the FFN's activations as the
     * up projection writes them, [tokens, ffn] (NULL for fp32) */
    uint16_t *abf, *hbf;
    /* int8: a GEMM input quantised, [tokens, hidden], with its rows' scales and zero points
     * [tokens], and the s32 products, [tokens, ffn] (NULL otherwise) */
    uint8_t *aq;
    float *rscale;
    int32_t *rzero, *acc;
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
    free(e->abf);
    free(e->hbf);
    free(e->aq);
    free(e->rscale);
    free(e->rzero);
    free(e->acc);
    e->x = e->qkv = e->ctx = e->tmp = e->h = e->rscale = NULL;
    e->pos = e->off = e->rzero = e->acc = NULL;
    e->abf = e->hbf = NULL;
    e->aq = NULL;
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
        free(e->abf);
        free(e->hbf);
        free(e->aq);
        free(e->rscale);
        free(e->rzero);
        free(e->acc);
        e->h = e->rscale = NULL;
        e->abf = e->hbf = NULL;
        e->aq = NULL;
        e->rzero = e->acc = NULL;
        e->x = alloc_aligned(t * hd * sizeof(float));
        e->qkv = alloc_aligned(3 * t * hd * sizeof(float));
        e->ctx = alloc_aligned(t * hd * sizeof(float));
        e->tmp = alloc_aligned(t * hd * sizeof(float));
        e->pos = alloc_aligned(t * sizeof(int32_t));
        /* the FFN's activations: fp32, or bf16 with the GEMM input converted beside them, and
         * for int8 the quantised input and the s32 products */
        int ffn_ok = e->precision != SC_PRECISION_FP32
                         ? (e->abf = alloc_aligned(t * hd * sizeof(uint16_t))) != NULL &&
                               (e->hbf = alloc_aligned(t * f * sizeof(uint16_t))) != NULL
                         : (e->h = alloc_aligned(t * f * sizeof(float))) != NULL;
        if (ffn_ok && e->precision == SC_PRECISION_INT8)
            ffn_ok = (e->aq = alloc_aligned(t * hd)) != NULL &&
                     (e->rscale = alloc_aligned(t * sizeof(float))) != NULL &&
                     (e->rzero = alloc_aligned(t * sizeof(int32_t))) != NULL &&
                     (e->acc = alloc_aligned(t * f * sizeof(int32_t))) != NULL;
        if (!e->x || !e->qkv || !e->ctx || !e->tmp || !e->pos || !ffn_ok) {
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

#ifdef SCRIMP_HAVE_DNNL
static sc_status_t dnnl_status(dnnl_status_t st)
{
    return st == dnnl_success ? SC_OK : st == dnnl_out_of_memory ? SC_ERR_NOMEM
                                                                 : SC_ERR_INVALID_ARG;
}

/* Whether oneDNN runs bf16 GEMMs on this CPU with its own instructions (AVX512-BF16, AMX), not
 * emulated. The ISA values are nested bit sets. */
static int cpu_has_bf16(void)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

/* The weights (user: how they lie in data) reordered into the layout that the matmul pd picked,
 * in *wmem (allocated). */
static dnnl_status_t weights_reorder(sc_encoder_cpu_t *e, const_dnnl_primitive_desc_t pd,
                                     const dnnl_memory_desc_t *user, void *data,
                                     dnnl_memory_t *wmem)
{
    const dnnl_memory_desc_t *chosen = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t from = NULL;
    dnnl_status_t st;
    if (!(st = dnnl_memory_create(wmem, chosen, e->eng, DNNL_MEMORY_ALLOCATE)) &&
        !(st = dnnl_memory_create(&from, user, e->eng, data)) &&
        !(st = dnnl_reorder_primitive_desc_create(&rpd, user, e->eng, chosen, e->eng, NULL)) &&
        !(st = dnnl_primitive_create(&reorder, rpd))) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, *wmem}};
        if (!(st = dnnl_primitive_execute(reorder, e->stream, 2, args)))
            st = dnnl_stream_wait(e->stream);
    }
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(from);
    return st;
}

/* bf16: a matmul primitive with the rows left to each call, and the weights converted once into
 * the layout it picked. */
static sc_status_t lin_bf16(sc_encoder_cpu_t *e, enc_lin_t *L)
{
    dnnl_memory_desc_t src, wei, dst, user, bias;
    dnnl_dims_t sd = {DNNL_RUNTIME_DIM_VAL, L->k}, wd = {L->k, L->n},
                dd = {DNNL_RUNTIME_DIM_VAL, L->n}, bd = {1, L->n};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_status_t st;
    const int fused = L->gelu_b != NULL;
    if ((st = dnnl_memory_desc_init_by_tag(&src, 2, sd, dnnl_bf16, dnnl_ab)) ||
        (st = dnnl_memory_desc_init_by_tag(&wei, 2, wd, dnnl_bf16, dnnl_format_tag_any)) ||
        (st = dnnl_memory_desc_init_by_tag(&dst, 2, dd, fused ? dnnl_bf16 : dnnl_f32, dnnl_ab)) ||
        (st = dnnl_memory_desc_init_by_tag(&user, 2, wd, dnnl_f32, dnnl_ba)) || /* W[n, k] */
        (st = dnnl_memory_desc_init_by_tag(&bias, 2, bd, dnnl_f32, dnnl_ab)))
        goto out;
    if (fused && /* gelu(A·Wᵀ + b), the exact (erf) GELU, rounded to bf16 once */
        ((st = dnnl_post_ops_create(&po)) ||
         (st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f)) ||
         (st = dnnl_primitive_attr_create(&attr)) ||
         (st = dnnl_primitive_attr_set_post_ops(attr, po)) ||
         (st = dnnl_memory_create(&L->bmem, &bias, e->eng, (void *)L->gelu_b))))
        goto out;
    if ((st = dnnl_matmul_desc_init(&md, &src, &wei, fused ? &bias : NULL, &dst)) ||
        (st = dnnl_primitive_desc_create(&pd, &md, attr, e->eng, NULL)) ||
        (st = dnnl_primitive_create(&L->mm, pd)))
        goto out;
    st = weights_reorder(e, pd, &user, (void *)L->w, &L->wmem);
out:
    dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    dnnl_primitive_desc_destroy(pd);
    return dnnl_status(st);
}

/* int8: the weights quantised per output column, symmetric (W[c,:] ≈ wscale[c] · Wq[c,:], Wq in
 * [-127, 127]: with VNNI the u8 · s8 products sum in s32 and none saturates), and a matmul
 * u8 · s8 → s32 with the rows left to each call, the weights in the layout it picked.
 * Behind a LayerNorm (L->ln_g), input column i is first divided by a smoothing factor s[i] and
 * weight column i multiplied by it, which leaves the product as it is but moves the range of
 * the channels with outsized activations into the weights (SmoothQuant, alpha 0.5):
 * s[i] = sqrt(max|x[:,i]| / max|W[:,i]|), the activations' maximum estimated without data from
 * the LayerNorm's output, ENC_SMOOTH_SIGMAS·|gain[i]| + |bias[i]|. */
#define ENC_SMOOTH_SIGMAS 4.0f
static sc_status_t lin_int8(sc_encoder_cpu_t *e, enc_lin_t *L)
{
    dnnl_memory_desc_t src, wei, dst, user;
    dnnl_dims_t sd = {DNNL_RUNTIME_DIM_VAL, L->k}, wd = {L->k, L->n},
                dd = {DNNL_RUNTIME_DIM_VAL, L->n};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st;
    const size_t n = (size_t)L->n, k = (size_t)L->k;
    int8_t *wq = malloc(n * k);
    L->wscale = malloc(n * sizeof *L->wscale);
    L->colsum = malloc(n * sizeof *L->colsum);
    if (!wq || !L->wscale || !L->colsum) {
        free(wq);
        return SC_ERR_NOMEM;
    }
    float *smooth = NULL;
    if (L->ln_g) {
        smooth = malloc(k * sizeof *smooth);
        L->inv_smooth = malloc(k * sizeof *L->inv_smooth);
        if (!smooth || !L->inv_smooth) {
            free(wq);
            free(smooth);
            return SC_ERR_NOMEM;
        }
        for (size_t i = 0; i < k; i++) {
            float wmax = 0.0f;
            for (size_t c = 0; c < n; c++)
                wmax = fabsf(L->w[c * k + i]) > wmax ? fabsf(L->w[c * k + i]) : wmax;
            float amax = ENC_SMOOTH_SIGMAS * fabsf(L->ln_g[i]) + fabsf(L->ln_b[i]);
            float sm = amax > 0.0f && wmax > 0.0f ? sqrtf(amax) / sqrtf(wmax) : 1.0f;
            smooth[i] = sm;
            L->inv_smooth[i] = 1.0f / sm;
        }
    }
    for (size_t c = 0; c < n; c++) {
        const float *w = L->w + c * k;
        float mx = 0.0f;
        for (size_t i = 0; i < k; i++) {
            float v = fabsf(w[i] * (smooth ? smooth[i] : 1.0f));
            mx = v > mx ? v : mx;
        }
        const float s = mx > 0.0f ? mx / 127.0f : 1.0f;
        int32_t sum = 0;
        for (size_t i = 0; i < k; i++) {
            long q = lrintf(w[i] * (smooth ? smooth[i] : 1.0f) / s);
            q = q < -127 ? -127 : q > 127 ? 127 : q;
            wq[c * k + i] = (int8_t)q;
            sum += (int32_t)q;
        }
        L->wscale[c] = s;
        L->colsum[c] = sum;
    }
    free(smooth);
    if ((st = dnnl_memory_desc_init_by_tag(&src, 2, sd, dnnl_u8, dnnl_ab)) ||
        (st = dnnl_memory_desc_init_by_tag(&wei, 2, wd, dnnl_s8, dnnl_format_tag_any)) ||
        (st = dnnl_memory_desc_init_by_tag(&dst, 2, dd, dnnl_s32, dnnl_ab)) ||
        (st = dnnl_memory_desc_init_by_tag(&user, 2, wd, dnnl_s8, dnnl_ba)) || /* Wq[n, k] */
        (st = dnnl_matmul_desc_init(&md, &src, &wei, NULL, &dst)) ||
        (st = dnnl_primitive_desc_create(&pd, &md, NULL, e->eng, NULL)) ||
        (st = dnnl_primitive_create(&L->mm, pd)))
        goto out;
    st = weights_reorder(e, pd, &user, wq, &L->wmem);
out:
    dnnl_primitive_desc_destroy(pd);
    free(wq);
    return dnnl_status(st);
}

#endif

static void lin_free(enc_lin_t *L)
{
#ifdef SCRIMP_HAVE_DNNL
    dnnl_primitive_destroy(L->mm);
    dnnl_memory_destroy(L->wmem);
    dnnl_memory_destroy(L->bmem);
#endif
    free(L->wscale);
    free(L->colsum);
    free(L->inv_smooth);
}

/* The precision AUTO stands for, or an error for one this build or CPU cannot run. */
static sc_status_t resolve_precision(sc_precision_t want, sc_precision_t *out, char *errbuf,
                                     size_t errlen)
{
#ifdef SCRIMP_HAVE_DNNL
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if (want == SC_PRECISION_BF16 &&
        ((unsigned)isa & dnnl_cpu_isa_avx512_core) != dnnl_cpu_isa_avx512_core) {
        snprintf(errbuf, errlen, "encoder.precision bf16: oneDNN has no bf16 GEMMs for this CPU "
                 "(isa %s; they need AVX-512, natively AVX512-BF16 or AMX): use auto or fp32",
                 dnnl_isa_name(isa));
        return SC_ERR_CONFIG;
    }
    /* u8 · s8 without VNNI sums pairs in s16 (vpmaddubsw) and saturates with 8-bit weights; the
     * down projection beside them is bf16, which wants AVX-512 too */
    if (want == SC_PRECISION_INT8 &&
        ((unsigned)isa & dnnl_cpu_isa_avx512_core_vnni) != dnnl_cpu_isa_avx512_core_vnni) {
        snprintf(errbuf, errlen, "encoder.precision int8: this CPU has no AVX512-VNNI (isa %s), "
                 "which the int8 GEMMs need: use auto or fp32", dnnl_isa_name(isa));
        return SC_ERR_CONFIG;
    }
    /* AUTO: int8 where the CPU has bf16 instructions (and so VNNI), else fp32 */
    *out = want == SC_PRECISION_AUTO ? (cpu_has_bf16() ? SC_PRECISION_INT8 : SC_PRECISION_FP32)
                                     : want;
    return SC_OK;
#else
    if (want == SC_PRECISION_BF16 || want == SC_PRECISION_INT8) {
        snprintf(errbuf, errlen, "encoder.precision %s: this build's CPU encoder has no oneDNN "
                 "(libdnnl-dev), only fp32", sc_precision_name(want));
        return SC_ERR_CONFIG;
    }
    *out = SC_PRECISION_FP32;
    return SC_OK;
#endif
}

/* ---- create, destroy ---- */

sc_status_t sc_encoder_cpu_new(const sc_minilm_t *m, int threads, sc_precision_t precision,
                               sc_encoder_cpu_t **out, char *errbuf, size_t errlen)
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
    sc_precision_t prec;
    sc_status_t rc = resolve_precision(precision, &prec, errbuf, errlen);
    if (rc)
        return rc;
    sc_encoder_cpu_t *e = calloc(1, sizeof *e);
    if (!e || !(e->lin = calloc((size_t)m->layers * ENC_LINEARS, sizeof *e->lin))) {
        free(e);
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
    e->precision = prec;
    for (int l = 0; l < m->layers; l++) {
        const sc_minilm_layer_t *L = &m->layer[l];
        enc_lin_t *lin = e->lin + (size_t)l * ENC_LINEARS;
        lin[0] = (enc_lin_t){.w = L->qkv_w, .n = 3 * m->hidden, .k = m->hidden};
        lin[1] = (enc_lin_t){.w = L->o_w, .n = m->hidden, .k = m->hidden};
        lin[2] = (enc_lin_t){.w = L->ff1_w, .n = m->ffn, .k = m->hidden};
        lin[3] = (enc_lin_t){.w = L->ff2_w, .n = m->hidden, .k = m->ffn};
        /* int8: the FFN's down projection stays bf16 (alone in int8 it cost the most accuracy:
         * its input, GELU's output, is the widest and least even); the up projection is smoothed
         * by the LayerNorm before it (smoothing the QKV projection's input measured worse) */
        for (int i = 0; prec == SC_PRECISION_INT8 && i < ENC_LINEARS - 1; i++)
            lin[i].int8 = 1;
        if (prec == SC_PRECISION_INT8) {
            lin[2].ln_g = L->ln1_g;
            lin[2].ln_b = L->ln1_b;
        }
        /* bf16 for the up projection: its bias and GELU fused into the matmul */
        if (prec != SC_PRECISION_FP32 && !lin[2].int8)
            lin[2].gelu_b = L->ff1_b;
    }
#ifdef SCRIMP_HAVE_DNNL
#ifdef _OPENMP
    omp_set_num_threads(threads); /* the reorders below run on oneDNN's (OpenMP's) threads */
#endif
    if (prec != SC_PRECISION_FP32 &&
        ((rc = dnnl_status(dnnl_engine_create(&e->eng, dnnl_cpu, 0))) ||
         (rc = dnnl_status(dnnl_stream_create(&e->stream, e->eng, dnnl_stream_default_flags)))))
        goto fail;
    for (size_t i = 0; prec != SC_PRECISION_FP32 && i < (size_t)m->layers * ENC_LINEARS; i++)
        if ((rc = e->lin[i].int8 ? lin_int8(e, &e->lin[i]) : lin_bf16(e, &e->lin[i])))
            goto fail;
#else
#ifdef _OPENMP
    openblas_set_num_threads(1); /* the threads are OpenMP's: see linear() */
#else
    openblas_set_num_threads(threads);
#endif
#endif
    log_gemm_library(threads);
    sc_info("encoder.precision", "precision=%s requested=%s", sc_precision_name(prec),
            sc_precision_name(precision));
    *out = e;
    return SC_OK;
#ifdef SCRIMP_HAVE_DNNL
fail:
    snprintf(errbuf, errlen, "CPU encoder: preparing the %s GEMMs failed: %s",
             sc_precision_name(prec), sc_strerror(rc));
    sc_encoder_cpu_free(e);
    return rc;
#endif
}

sc_precision_t sc_encoder_cpu_precision(const sc_encoder_cpu_t *e)
{
    return e->precision;
}

void sc_encoder_cpu_free(sc_encoder_cpu_t *e)
{
    if (!e)
        return;
    for (size_t i = 0; e->lin && i < (size_t)e->m->layers * ENC_LINEARS; i++)
        lin_free(&e->lin[i]);
    free(e->lin);
#ifdef SCRIMP_HAVE_DNNL
    if (e->stream)
        dnnl_stream_destroy(e->stream);
    if (e->eng)
        dnnl_engine_destroy(e->eng);
#endif
    free_buffers(e);
    free(e);
}

/* ---- forward ---- */

/* C[rows, n] = A[rows, k] · W[n, k]ᵀ (PyTorch Linear weights are [out, in]), on one thread. */
static sc_status_t gemm_rows(const float *a, const float *w, float *c, int rows, int n, int k)
{
#ifdef SCRIMP_HAVE_DNNL
    return dnnl_status(dnnl_sgemm('N', 'T', rows, n, k, 1.0f, a, k, w, k, 0.0f, c, n));
#else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, k, 1.0f, a, k, w, k, 0.0f, c, n);
    return SC_OK;
#endif
}

/* fp32: C[rows, n] = A[rows, k] · W[n, k]ᵀ.
 * The rows are split over the OpenMP threads, each calling a single-threaded sgemm: OpenBLAS'
 * own threads would otherwise spin between GEMMs while the OpenMP ops run, and on a machine
 * with few cores the two pools steal time from each other. oneDNN's runtime is this same OpenMP:
 * inside the parallel region it runs on the calling thread only, and called outside it (too few
 * rows to split) it uses the encoder's threads itself. Letting oneDNN split every GEMM itself
 * measured the same at batch 32 (bench/results/encoder-cpu-dnnl.md); calling it from a
 * one-thread parallel region made it 10x slower at batch 1 (14 against 190 sentences/s), hence
 * parts == 1 calls it directly. */
static sc_status_t linear_fp32(const float *a, const float *w, float *c, int rows, int n, int k,
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

#ifdef SCRIMP_HAVE_DNNL
/* fp32 to bf16, rounded to nearest even (the activations are finite). */
static inline uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* One matmul of src ([rows, L->k]: bf16, or u8 for int8) over all the rows on oneDNN's threads
 * (the encoder's), into dst [rows, L->n]: fp32, bf16 for the fused up projection, s32 for int8. */
static sc_status_t matmul_dnnl(sc_encoder_cpu_t *e, const enc_lin_t *L, const void *a, void *c,
                               int rows)
{
    dnnl_memory_desc_t src, dst;
    dnnl_dims_t sd = {rows, L->k}, dd = {rows, L->n};
    dnnl_memory_t ms = NULL, md = NULL;
    dnnl_status_t st;
    if (!(st = dnnl_memory_desc_init_by_tag(&src, 2, sd, L->int8 ? dnnl_u8 : dnnl_bf16,
                                            dnnl_ab)) &&
        !(st = dnnl_memory_desc_init_by_tag(&dst, 2, dd,
                                            L->int8     ? dnnl_s32
                                            : L->gelu_b ? dnnl_bf16
                                                        : dnnl_f32,
                                            dnnl_ab)) &&
        !(st = dnnl_memory_create(&ms, &src, e->eng, (void *)a)) &&
        !(st = dnnl_memory_create(&md, &dst, e->eng, c))) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ms},
                                   {DNNL_ARG_WEIGHTS, L->wmem},
                                   {DNNL_ARG_DST, md},
                                   {DNNL_ARG_BIAS, L->bmem}};
        if (!(st = dnnl_primitive_execute(L->mm, e->stream, L->gelu_b ? 4 : 3, args)))
            st = dnnl_stream_wait(e->stream);
    }
    dnnl_memory_destroy(ms);
    dnnl_memory_destroy(md);
    return dnnl_status(st);
}

/* bf16: A (fp32) converted into e->abf, then the matmul. */
static sc_status_t linear_bf16(sc_encoder_cpu_t *e, const float *a, const enc_lin_t *L, void *c,
                               int rows)
{
    const size_t total = (size_t)rows * (size_t)L->k;
    SC_OMP(omp parallel for num_threads(e->threads) schedule(static))
    for (size_t i = 0; i < total; i++)
        e->abf[i] = to_bf16(a[i]);
    return matmul_dnnl(e, L, e->abf, c, rows);
}

/* int8: A quantised into e->aq, the matmul into e->acc. */
static sc_status_t matmul_int8(sc_encoder_cpu_t *e, const float *a, const enc_lin_t *L, int rows)
{
    sc_quantize_u8_rows_cpu(a, L->inv_smooth, rows, L->k, e->aq, e->rscale, e->rzero);
    return matmul_dnnl(e, L, e->aq, e->acc, rows);
}

/* int8: C (fp32) = the products dequantised. */
static sc_status_t linear_int8(sc_encoder_cpu_t *e, const float *a, const enc_lin_t *L, float *c,
                               int rows)
{
    sc_status_t rc = matmul_int8(e, a, L, rows);
    if (!rc)
        sc_dequant_rows_cpu(e->acc, e->rscale, e->rzero, L->wscale, L->colsum, rows, L->n, c);
    return rc;
}

#endif

/* C[rows, L->n] = A[rows, L->k] · Wᵀ in the encoder's precision. */
static sc_status_t linear(sc_encoder_cpu_t *e, const float *a, const enc_lin_t *L, float *c,
                          int rows)
{
#ifdef SCRIMP_HAVE_DNNL
    if (L->int8)
        return linear_int8(e, a, L, c, rows);
    if (e->precision != SC_PRECISION_FP32)
        return linear_bf16(e, a, L, c, rows);
#endif
    return linear_fp32(a, L->w, c, rows, L->n, L->k, e->threads);
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
        const enc_lin_t *lin = e->lin + (size_t)l * ENC_LINEARS;
        if ((rc = linear(e, e->x, &lin[0], e->qkv, T)))
            return rc;
        if (sc_attention_cpu(e->qkv, L->qkv_b, e->off, seqs, m->heads, hd / m->heads, e->ctx))
            return SC_ERR_NOMEM;
        if ((rc = linear(e, e->ctx, &lin[1], e->tmp, T)))
            return rc;
        sc_bias_residual_layernorm_cpu(e->tmp, L->o_b, e->x, L->ln1_g, L->ln1_b, T, hd, m->eps,
                                       e->x);
#ifdef SCRIMP_HAVE_DNNL
        if (e->precision != SC_PRECISION_FP32) { /* the up projection writes bf16 */
            if (lin[2].int8) {
                if ((rc = matmul_int8(e, e->x, &lin[2], T)))
                    return rc;
                sc_dequant_bias_gelu_bf16_cpu(e->acc, e->rscale, e->rzero, lin[2].wscale,
                                              lin[2].colsum, L->ff1_b, T, f, e->hbf);
            } else if ((rc = linear_bf16(e, e->x, &lin[2], e->hbf, T))) /* bias, GELU inside */
                return rc;
            if ((rc = matmul_dnnl(e, &lin[3], e->hbf, e->tmp, T)))
                return rc;
        } else
#endif
        {
            if ((rc = linear(e, e->x, &lin[2], e->h, T)))
                return rc;
            sc_bias_gelu_cpu(e->h, L->ff1_b, T, f);
            if ((rc = linear(e, e->h, &lin[3], e->tmp, T)))
                return rc;
        }
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
