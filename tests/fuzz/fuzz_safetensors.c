/* fuzz_safetensors.c - libFuzzer harness: a .safetensors file of the input bytes through
 * sc_safetensors_open, then every tensor it lists read back (as f32 where it can be). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "models/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

#define FUZZ_ERR_MAX 512

static const char *st_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sc_fuzz_init();
    st_path = sc_fuzz_path("model.safetensors");
    return 0;
}

/* Read tensor t of st as a loader would: every byte, then as f32 with its own shape. */
static void read_tensor(const sc_safetensors_t *st, const sc_tensor_t *t)
{
    char err[FUZZ_ERR_MAX];
    const volatile uint8_t *p = t->data;
    uint8_t sum = 0;
    for (size_t i = 0; i < t->nbytes; i++)
        sum ^= p[i];
    (void)sum;
    if (t->dtype != SC_DTYPE_F32 && t->dtype != SC_DTYPE_F16 && t->dtype != SC_DTYPE_BF16)
        return;
    size_t count = 1;
    for (int d = 0; d < t->ndim; d++)
        count *= (size_t)t->shape[d];
    /* open checked count * element size == nbytes, so count floats is at most 2 * nbytes */
    SC_FUZZ_CHECK(count <= t->nbytes);
    float *dst = malloc(count ? count * sizeof(float) : 1);
    SC_FUZZ_CHECK(dst != NULL);
    sc_status_t rc = sc_safetensors_read_f32(st, t->name, t->shape, t->ndim, dst, err, sizeof err);
    /* a name found first elsewhere (two header keys equal up to an inner NUL) may differ in
     * shape; otherwise the read must succeed */
    SC_FUZZ_CHECK(rc == SC_OK || sc_safetensors_find(st, t->name) != t);
    free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[FUZZ_ERR_MAX];
    sc_safetensors_t *st = NULL;
    sc_fuzz_write(st_path, data, size);
    if (sc_safetensors_open(st_path, &st, err, sizeof err) != SC_OK) {
        SC_FUZZ_CHECK(st == NULL);
        return 0;
    }
    size_t n = sc_safetensors_count(st);
    for (size_t i = 0; i < n; i++) {
        const sc_tensor_t *t = sc_safetensors_at(st, i);
        SC_FUZZ_CHECK(t != NULL);
        read_tensor(st, t);
    }
    SC_FUZZ_CHECK(sc_safetensors_at(st, n) == NULL);
    sc_safetensors_close(st);
    return 0;
}
