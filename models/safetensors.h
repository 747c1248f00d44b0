/* safetensors.h - read-only access to a .safetensors file (mmap): header parsed with jansson,
 * every dtype, shape and offset checked, so a truncated or corrupted file is a clear error. */
#ifndef SC_SAFETENSORS_H
#define SC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "host/core/status.h"

#define SC_TENSOR_NAME_MAX 160
#define SC_TENSOR_MAX_DIMS 8

typedef enum { SC_DTYPE_F32 = 0, SC_DTYPE_F16, SC_DTYPE_BF16, SC_DTYPE_I64, SC_DTYPE_OTHER } sc_dtype_t;

typedef struct {
    char name[SC_TENSOR_NAME_MAX];
    sc_dtype_t dtype;
    int ndim;
    int64_t shape[SC_TENSOR_MAX_DIMS];
    const void *data; /* borrowed from the mapping; lives until sc_safetensors_close() */
    size_t nbytes;
} sc_tensor_t;

typedef struct sc_safetensors sc_safetensors_t;

/* Map and validate the file. Errors name the file and what is wrong (SC_ERR_IO for a missing or
 * unreadable file, SC_ERR_INVALID for a bad header, overlapping or out-of-range data).
 * @remark the caller closes with sc_safetensors_close(). */
sc_status_t sc_safetensors_open(const char *path, sc_safetensors_t **out, char *errbuf,
                                size_t errlen);
void sc_safetensors_close(sc_safetensors_t *st); /* NULL ok */

size_t sc_safetensors_count(const sc_safetensors_t *st);
const sc_tensor_t *sc_safetensors_at(const sc_safetensors_t *st, size_t i);
const sc_tensor_t *sc_safetensors_find(const sc_safetensors_t *st, const char *name); /* NULL */

/* Copy a tensor into dst as f32 (from F32, F16 or BF16), after checking that its shape is
 * exactly shape[0..ndim). n = product of the shape floats are written. Errors name the tensor
 * and the file. */
sc_status_t sc_safetensors_read_f32(const sc_safetensors_t *st, const char *name,
                                    const int64_t *shape, int ndim, float *dst, char *errbuf,
                                    size_t errlen);

/* IEEE half / bfloat16 <-> float conversions (round to nearest even). */
float sc_f16_to_f32(uint16_t h);
uint16_t sc_f32_to_f16(float f);
float sc_bf16_to_f32(uint16_t h);

#endif
