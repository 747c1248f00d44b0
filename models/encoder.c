/* encoder.c - owns an encoder: tokenizer, weights and the chosen backend (CPU or CUDA, DESIGN §6). */
#include "models/encoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/log.h"
#include "models/encoder_backend.h"
#include "models/minilm.h"

#ifdef _OPENMP
#define SC_OMP(directive) _Pragma(#directive)
#else
#define SC_OMP(directive)
#endif

#define ENC_DEFAULT_MODEL_DIR "models/all-MiniLM-L6-v2"
#define ENC_DEFAULT_MAX_BATCH 1024
#define ENC_MAX_BATCH         65536 /* bound on max_batch: the id buffer is max_batch × max_tokens */
#define ENC_PATH_MAX          4096
#define ENC_ERRBUF            512

struct sc_encoder {
    char *model_dir; /* owned copy */
    sc_backend_t backend; /* CPU or CUDA */
    sc_precision_t precision; /* asked for; the CPU encoder says what it uses */
    int threads, max_batch, max_tokens;
    int vocab;
    sc_tokenizer_t *tok;  /* owned */
    sc_minilm_t *m;       /* owned; NULL with CUDA once uploaded */
    sc_encoder_cpu_t *cpu; /* owned, CPU backend */
    sc_encoder_gpu_t *gpu; /* owned, CUDA backend */
    int32_t *ids;  /* [max_batch * max_tokens] token ids of one chunk */
    int32_t *lens; /* [max_batch] */
    int32_t *off;  /* [max_batch + 1] */
};

void sc_encoder_opts_default(sc_encoder_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->model_dir = ENC_DEFAULT_MODEL_DIR;
    opts->backend = SC_BACKEND_AUTO;
    opts->threads = 0;
    opts->max_batch = ENC_DEFAULT_MAX_BATCH;
    opts->max_tokens = SC_TOKENIZER_MAX_TOKENS;
}

int sc_backend_parse(const char *name, sc_backend_t *out)
{
    if (!name)
        return -1;
    if (strcmp(name, "auto") == 0)
        *out = SC_BACKEND_AUTO;
    else if (strcmp(name, "cpu") == 0)
        *out = SC_BACKEND_CPU;
    else if (strcmp(name, "cuda") == 0)
        *out = SC_BACKEND_CUDA;
    else
        return -1;
    return 0;
}

int sc_precision_parse(const char *name, sc_precision_t *out)
{
    static const char *names[] = {"auto", "fp32", "bf16", "int8"};
    for (int i = 0; name && i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (sc_precision_t)i;
            return 0;
        }
    return -1;
}

const char *sc_precision_name(sc_precision_t p)
{
    switch (p) {
    case SC_PRECISION_AUTO:
        return "auto";
    case SC_PRECISION_FP32:
        return "fp32";
    case SC_PRECISION_BF16:
        return "bf16";
    case SC_PRECISION_INT8:
        return "int8";
    }
    return "?";
}

const char *sc_backend_name(sc_backend_t b)
{
    switch (b) {
    case SC_BACKEND_AUTO:
        return "auto";
    case SC_BACKEND_CPU:
        return "cpu";
    case SC_BACKEND_CUDA:
        return "cuda";
    }
    return "?";
}

/* Build the forward of the chosen backend; m may be freed by the caller afterwards for CUDA. */
static sc_status_t pick_backend(sc_encoder_t *enc, sc_backend_t want, char *errbuf, size_t errlen)
{
    char gerr[ENC_ERRBUF] = "";
    sc_status_t rc;
    if (want != SC_BACKEND_CPU) {
        if (sc_encoder_gpu_available(gerr, sizeof gerr)) {
            rc = sc_encoder_gpu_new(enc->m, enc->max_batch, enc->max_tokens, &enc->gpu, gerr,
                                    sizeof gerr);
            if (rc == SC_OK) {
                enc->backend = SC_BACKEND_CUDA;
                return SC_OK;
            }
            if (want == SC_BACKEND_CUDA) {
                snprintf(errbuf, errlen, "backend cuda: %s", gerr);
                return rc;
            }
            sc_warn("encoder.backend", "backend=cpu requested=auto reason=\"CUDA encoder: %s\"",
                    gerr);
        } else if (want == SC_BACKEND_CUDA) {
            snprintf(errbuf, errlen, "backend cuda: no usable CUDA device: %s", gerr);
            return SC_ERR_INVALID_ARG;
        } else {
            sc_info("encoder.backend", "backend=cpu requested=auto reason=\"%s\"", gerr);
        }
    }
    rc = sc_encoder_cpu_new(enc->m, enc->threads, enc->precision, &enc->cpu, errbuf, errlen);
    if (rc)
        return rc;
    enc->backend = SC_BACKEND_CPU;
    return SC_OK;
}

sc_status_t sc_encoder_new(const sc_encoder_opts_t *opts, sc_encoder_t **out, char *errbuf,
                           size_t errlen)
{
    sc_status_t rc = SC_OK;
    char path[ENC_PATH_MAX];
    *out = NULL;
    sc_encoder_t *enc = calloc(1, sizeof *enc);
    if (!enc) {
        snprintf(errbuf, errlen, "encoder: out of memory");
        return SC_ERR_NOMEM;
    }
    const char *dir = opts->model_dir ? opts->model_dir : ENC_DEFAULT_MODEL_DIR;
    enc->threads = opts->threads;
    enc->precision = opts->precision;
    enc->max_batch = opts->max_batch;
    enc->max_tokens = opts->max_tokens ? opts->max_tokens : SC_TOKENIZER_MAX_TOKENS;
    if (enc->max_batch < 1 || enc->max_batch > ENC_MAX_BATCH || enc->threads < 0 ||
        enc->max_tokens < 2) {
        snprintf(errbuf, errlen, "encoder: max_batch must be 1..%d, threads >= 0, max_tokens "
                 ">= 2 (got %d, %d, %d)", ENC_MAX_BATCH, opts->max_batch, opts->threads,
                 opts->max_tokens);
        rc = SC_ERR_INVALID_ARG;
        goto out;
    }
    if (!(enc->model_dir = strdup(dir))) {
        rc = SC_ERR_NOMEM;
        snprintf(errbuf, errlen, "encoder: out of memory");
        goto out;
    }
    if ((size_t)snprintf(path, sizeof path, "%s/vocab.txt", dir) >= sizeof path) {
        snprintf(errbuf, errlen, "%s: model directory path too long", dir);
        rc = SC_ERR_INVALID_ARG;
        goto out;
    }
    if ((rc = sc_tokenizer_load(path, &enc->tok, errbuf, errlen)))
        goto out;
    if ((rc = sc_minilm_load(dir, &enc->m, errbuf, errlen)))
        goto out;
    enc->vocab = enc->m->vocab;
    if (enc->m->hidden != SC_EMBED_DIM) {
        snprintf(errbuf, errlen, "%s/config.json: hidden_size %d, this build embeds into %d", dir,
                 enc->m->hidden, SC_EMBED_DIM);
        rc = SC_ERR_INVALID;
        goto out;
    }
    if (sc_tokenizer_vocab_size(enc->tok) > enc->vocab) {
        snprintf(errbuf, errlen, "%s: %d tokens, more than the model's vocab_size %d", path,
                 (int)sc_tokenizer_vocab_size(enc->tok), enc->vocab);
        rc = SC_ERR_INVALID;
        goto out;
    }
    if (enc->max_tokens > enc->m->max_pos) {
        snprintf(errbuf, errlen, "encoder: max_tokens %d above the model's %d positions",
                 enc->max_tokens, enc->m->max_pos);
        rc = SC_ERR_INVALID_ARG;
        goto out;
    }
    enc->ids = malloc((size_t)enc->max_batch * (size_t)enc->max_tokens * sizeof *enc->ids);
    enc->lens = malloc((size_t)enc->max_batch * sizeof *enc->lens);
    enc->off = malloc(((size_t)enc->max_batch + 1) * sizeof *enc->off);
    if (!enc->ids || !enc->lens || !enc->off) {
        snprintf(errbuf, errlen, "encoder: out of memory for a batch of %d × %d tokens",
                 enc->max_batch, enc->max_tokens);
        rc = SC_ERR_NOMEM;
        goto out;
    }
    if ((rc = pick_backend(enc, opts->backend, errbuf, errlen)))
        goto out;
    if (enc->backend == SC_BACKEND_CUDA) { /* the weights live on the device now */
        sc_minilm_free(enc->m);
        enc->m = NULL;
    }
    sc_info("encoder.ready", "model=%s backend=%s precision=%s max_batch=%d max_tokens=%d", dir,
            sc_backend_name(enc->backend),
            enc->backend == SC_BACKEND_CUDA ? "fp16" : sc_precision_name(sc_encoder_precision(enc)),
            enc->max_batch, enc->max_tokens);
out:
    if (rc) {
        sc_encoder_free(enc);
        return rc;
    }
    *out = enc;
    return SC_OK;
}

void sc_encoder_free(sc_encoder_t *enc)
{
    if (!enc)
        return;
    sc_encoder_cpu_free(enc->cpu);
    sc_encoder_gpu_free(enc->gpu);
    sc_minilm_free(enc->m);
    sc_tokenizer_free(enc->tok);
    free(enc->ids);
    free(enc->lens);
    free(enc->off);
    free(enc->model_dir);
    free(enc);
}

sc_backend_t sc_encoder_backend(const sc_encoder_t *enc)
{
    return enc->backend;
}

sc_precision_t sc_encoder_precision(const sc_encoder_t *enc)
{
    return enc->cpu ? sc_encoder_cpu_precision(enc->cpu) : SC_PRECISION_FP32;
}

const sc_tokenizer_t *sc_encoder_tokenizer(const sc_encoder_t *enc)
{
    return enc->tok;
}

/* n <= max_batch sequences with offsets starting at 0, already checked. */
static sc_status_t forward(sc_encoder_t *enc, const int32_t *ids, const int32_t *off, size_t n,
                           float *out)
{
    if (enc->backend == SC_BACKEND_CUDA)
        return sc_encoder_gpu_forward(enc->gpu, ids, off, n, out);
    return sc_encoder_cpu_forward(enc->cpu, ids, off, n, out);
}

sc_status_t sc_encoder_embed(sc_encoder_t *enc, const char *const *texts, const size_t *lens,
                             size_t n, float *out)
{
    return sc_encoder_embed_max(enc, texts, lens, n, 0, out);
}

sc_status_t sc_encoder_embed_max(sc_encoder_t *enc, const char *const *texts, const size_t *lens,
                                 size_t n, int max_tokens, float *out)
{
    const int mt = max_tokens >= 2 && max_tokens < enc->max_tokens ? max_tokens : enc->max_tokens;
    for (size_t c = 0; c < n; c += (size_t)enc->max_batch) {
        int k = n - c < (size_t)enc->max_batch ? (int)(n - c) : enc->max_batch;
        int bad = 0;
        /* the tokenizer is thread-safe: each text goes to its own max_tokens slot */
        SC_OMP(omp parallel for schedule(dynamic, 8) reduction(| : bad))
        for (int i = 0; i < k; i++) {
            int got = sc_tokenizer_encode(enc->tok, texts[c + (size_t)i], lens[c + (size_t)i],
                                          enc->ids + (size_t)i * (size_t)mt, mt);
            enc->lens[i] = got;
            bad |= got < 1 || got > mt;
        }
        if (bad)
            return SC_ERR_INVALID;
        /* pack the slots (a slot never moves up, so the copy is safe in place) */
        enc->off[0] = 0;
        for (int i = 0; i < k; i++) {
            if (enc->off[i] != i * mt)
                memmove(enc->ids + enc->off[i], enc->ids + (size_t)i * (size_t)mt,
                        (size_t)enc->lens[i] * sizeof *enc->ids);
            enc->off[i + 1] = enc->off[i] + enc->lens[i];
        }
        sc_status_t rc = forward(enc, enc->ids, enc->off, (size_t)k, out + c * SC_EMBED_DIM);
        if (rc)
            return rc;
    }
    return SC_OK;
}

sc_status_t sc_encoder_embed_ids(sc_encoder_t *enc, const int32_t *ids, const int32_t *offsets,
                                 size_t n, float *out)
{
    if (n == 0)
        return SC_OK;
    if (!ids || !offsets || !out || offsets[0] < 0)
        return SC_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++) {
        int64_t len = (int64_t)offsets[i + 1] - offsets[i];
        if (len < 1 || len > enc->max_tokens)
            return SC_ERR_INVALID_ARG;
        for (int32_t t = offsets[i]; t < offsets[i + 1]; t++)
            if (ids[t] < 0 || ids[t] >= enc->vocab)
                return SC_ERR_INVALID_ARG;
    }
    for (size_t c = 0; c < n; c += (size_t)enc->max_batch) {
        size_t k = n - c < (size_t)enc->max_batch ? n - c : (size_t)enc->max_batch;
        for (size_t i = 0; i <= k; i++)
            enc->off[i] = offsets[c + i] - offsets[c];
        sc_status_t rc = forward(enc, ids + offsets[c], enc->off, k, out + c * SC_EMBED_DIM);
        if (rc)
            return rc;
    }
    return SC_OK;
}
