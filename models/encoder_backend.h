/* encoder_backend.h - the two forwards behind models/encoder.c: CPU (oneDNN or OpenBLAS +
 * host/ops/ops_cpu.c) and CUDA (cuBLAS + kernels/). Both take packed token ids and write
 * L2-normalised embeddings. */
#ifndef SC_ENCODER_BACKEND_H
#define SC_ENCODER_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "host/core/status.h"
#include "models/encoder.h"
#include "models/minilm.h"

/* ---- CPU: models/encoder_cpu.c ---- */
typedef struct sc_encoder_cpu sc_encoder_cpu_t;
/* m is borrowed and must outlive the encoder. threads: 0 = all cores. precision AUTO: bf16 when
 * oneDNN finds the CPU's bf16 instructions (AVX512-BF16 or AMX), else fp32; bf16 needs a build
 * with oneDNN (an error otherwise). */
sc_status_t sc_encoder_cpu_new(const sc_minilm_t *m, int threads, sc_precision_t precision,
                               sc_encoder_cpu_t **out, char *errbuf, size_t errlen);
sc_precision_t sc_encoder_cpu_precision(const sc_encoder_cpu_t *e); /* never AUTO */
/* ids[offsets[i]..offsets[i+1]) is sequence i; out: n × hidden floats. */
sc_status_t sc_encoder_cpu_forward(sc_encoder_cpu_t *e, const int32_t *ids,
                                   const int32_t *offsets, size_t n, float *out);
void sc_encoder_cpu_free(sc_encoder_cpu_t *e);

/* ---- CUDA: models/encoder_gpu.c (models/encoder_gpu_none.c when built without CUDA) ---- */
typedef struct sc_encoder_gpu sc_encoder_gpu_t;
/* 1 when this build has CUDA and a device initialises. */
int sc_encoder_gpu_available(char *errbuf, size_t errlen);
/* Uploads m as fp16 and sizes every device buffer once for max_seqs sequences of at most
 * max_len tokens (no allocation per call). m may be freed afterwards. */
sc_status_t sc_encoder_gpu_new(const sc_minilm_t *m, int max_seqs, int max_len,
                               sc_encoder_gpu_t **out, char *errbuf, size_t errlen);
/* n <= max_seqs, each sequence <= max_len tokens. */
sc_status_t sc_encoder_gpu_forward(sc_encoder_gpu_t *e, const int32_t *ids,
                                   const int32_t *offsets, size_t n, float *out);
void sc_encoder_gpu_free(sc_encoder_gpu_t *e);

#endif
