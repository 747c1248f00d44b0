/* encoder.h - sentence embeddings with all-MiniLM-L6-v2: tokenize, encode (CPU or CUDA, chosen at
 * run time, DESIGN §6), mean-pool, L2-normalise. */
#ifndef SC_ENCODER_H
#define SC_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "host/core/status.h"
#include "models/tokenizer.h"

#define SC_EMBED_DIM 384

typedef enum { SC_BACKEND_AUTO = 0, SC_BACKEND_CPU, SC_BACKEND_CUDA } sc_backend_t;

/* The arithmetic of the CPU encoder's GEMMs (the CUDA encoder is fp16 whatever this says):
 * fp32; bf16 weights and activations with fp32 sums (oneDNN); int8: u8 activations quantised
 * per row and s8 weights per output column with s32 sums (oneDNN, on a CPU with VNNI) for the
 * QKV, attention-output and FFN-up projections, the FFN's down projection in bf16; AUTO: int8
 * where the CPU has bf16 instructions (and so VNNI), else fp32 (sc_encoder_cpu_new()). */
typedef enum {
    SC_PRECISION_AUTO = 0,
    SC_PRECISION_FP32,
    SC_PRECISION_BF16,
    SC_PRECISION_INT8
} sc_precision_t;

typedef struct {
    const char *model_dir; /* holds config.json, model.safetensors, vocab.txt */
    sc_backend_t backend;  /* AUTO: CUDA when a device initialises, else CPU */
    int threads;           /* CPU threads, 0 = all online cores */
    int max_batch;         /* most sentences per call (GPU buffers are sized once for it) */
    int max_tokens;        /* per sentence, [CLS]/[SEP] included; 0 = 256 */
    sc_precision_t precision; /* CPU GEMMs; AUTO by default */
} sc_encoder_opts_t;

void sc_encoder_opts_default(sc_encoder_opts_t *opts); /* models/all-MiniLM-L6-v2, AUTO, 1024 */

/* Parse "auto", "cpu" or "cuda" (also read from env SCRIMP_BACKEND by callers). -1 if unknown. */
int sc_backend_parse(const char *name, sc_backend_t *out);
const char *sc_backend_name(sc_backend_t b);
/* Parse "auto", "fp32" or "bf16". -1 if unknown. */
int sc_precision_parse(const char *name, sc_precision_t *out);
const char *sc_precision_name(sc_precision_t p);

typedef struct sc_encoder sc_encoder_t;

/* Load the model and prepare the backend. Missing or corrupt files are errors naming the file;
 * backend CUDA without a usable device is an error, AUTO falls back to CPU (and logs it).
 * @remark the caller frees with sc_encoder_free(). */
sc_status_t sc_encoder_new(const sc_encoder_opts_t *opts, sc_encoder_t **out, char *errbuf,
                           size_t errlen);
void sc_encoder_free(sc_encoder_t *enc); /* NULL ok */

sc_backend_t sc_encoder_backend(const sc_encoder_t *enc); /* CPU or CUDA, never AUTO */
/* The CPU GEMMs' precision in use (never AUTO); FP32 names the CUDA encoder's fp16 too. */
sc_precision_t sc_encoder_precision(const sc_encoder_t *enc);
const sc_tokenizer_t *sc_encoder_tokenizer(const sc_encoder_t *enc);

/* Embed n texts (texts[i] of lens[i] bytes) into out: n*SC_EMBED_DIM floats, L2-normalised.
 * n may exceed max_batch (it is split). */
sc_status_t sc_encoder_embed(sc_encoder_t *enc, const char *const *texts, const size_t *lens,
                             size_t n, float *out);

/* The same with each text cut to its first max_tokens WordPiece tokens ([CLS]/[SEP] included;
 * 0, or more than the encoder's max_tokens: the encoder's): cheaper, for texts of which the start
 * is enough (pruning's relevance of long conversation turns). */
sc_status_t sc_encoder_embed_max(sc_encoder_t *enc, const char *const *texts, const size_t *lens,
                                 size_t n, int max_tokens, float *out);

/* The same from token ids: sequence i is ids[offsets[i] .. offsets[i+1]) ([CLS]…[SEP]). */
sc_status_t sc_encoder_embed_ids(sc_encoder_t *enc, const int32_t *ids, const int32_t *offsets,
                                 size_t n, float *out);

#endif
