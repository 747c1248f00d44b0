/* test_safetensors.c - the safetensors reader on hand-made valid and corrupt files, the half/bf16
 * conversions, and the real model file. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "models/safetensors.h"

#define ERRLEN 512

static char tmp_path[256];

static const char *source_dir(void)
{
    const char *d = getenv("SCRIMP_SOURCE_DIR");
    return d && *d ? d : ".";
}

/* Write [8-byte length][header][data] to a fresh file in /tmp; header_len overrides the length
 * field when not (uint64_t)-1. Returns the path (static buffer). */
static const char *write_file(const char *header, uint64_t header_len, const void *data,
                              size_t data_len)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/scrimp_test_st_%d.safetensors", (int)getpid());
    FILE *f = fopen(tmp_path, "wb");
    assert_non_null(f);
    uint64_t len = header_len != (uint64_t)-1 ? header_len : strlen(header);
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(len >> (8 * i));
    assert_int_equal(fwrite(le, 1, 8, f), 8);
    assert_int_equal(fwrite(header, 1, strlen(header), f), strlen(header));
    if (data_len)
        assert_int_equal(fwrite(data, 1, data_len, f), data_len);
    fclose(f);
    return tmp_path;
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void test_valid(void **state)
{
    (void)state;
    uint8_t data[24 + 8 + 8 + 16];
    float a[6] = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -65504.0f};
    memcpy(data, a, sizeof a);
    put_u16(data + 24, sc_f32_to_f16(1.0f));
    put_u16(data + 26, sc_f32_to_f16(-0.5f));
    put_u16(data + 28, sc_f32_to_f16(65504.0f));
    put_u16(data + 30, 0x0001); /* the smallest subnormal */
    put_u16(data + 32, 0x3f80); /* bf16 1.0 */
    put_u16(data + 34, 0xc040); /* bf16 -3.0 */
    put_u16(data + 36, 0x7f80); /* bf16 inf */
    put_u16(data + 38, 0x0000);
    for (int i = 0; i < 2; i++) { /* I64 0, 1 */
        int64_t v = i;
        memcpy(data + 40 + 8 * i, &v, 8);
    }
    const char *hdr =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
        "\"c\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[32,40]},"
        "\"d\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[40,56]},"
        "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[56,56]}}   ";
    const char *path = write_file(hdr, (uint64_t)-1, data, sizeof data);
    char err[ERRLEN] = "";
    sc_safetensors_t *st = NULL;
    assert_int_equal(sc_safetensors_open(path, &st, err, sizeof err), SC_OK);
    assert_int_equal(sc_safetensors_count(st), 5);
    const sc_tensor_t *t = sc_safetensors_find(st, "a");
    assert_non_null(t);
    assert_int_equal(t->dtype, SC_DTYPE_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->nbytes, 24);
    assert_null(sc_safetensors_find(st, "__metadata__"));
    assert_null(sc_safetensors_find(st, "zz"));

    float out[6];
    int64_t sa[2] = {2, 3};
    assert_int_equal(sc_safetensors_read_f32(st, "a", sa, 2, out, err, sizeof err), SC_OK);
    assert_memory_equal(out, a, sizeof a);
    int64_t sb[1] = {4};
    assert_int_equal(sc_safetensors_read_f32(st, "b", sb, 1, out, err, sizeof err), SC_OK);
    assert_true(out[0] == 1.0f && out[1] == -0.5f && out[2] == 65504.0f);
    assert_true(out[3] == 0x1p-24f);
    int64_t sc[2] = {2, 2};
    assert_int_equal(sc_safetensors_read_f32(st, "c", sc, 2, out, err, sizeof err), SC_OK);
    assert_true(out[0] == 1.0f && out[1] == -3.0f && isinf(out[2]) && out[3] == 0.0f);

    /* wrong shape: the message names file, tensor, both shapes */
    int64_t wrong[2] = {3, 2};
    assert_int_not_equal(sc_safetensors_read_f32(st, "a", wrong, 2, out, err, sizeof err), SC_OK);
    printf("  %s\n", err);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "tensor a: shape [2, 3], expected [3, 2]"));
    /* I64 is listed but not readable as f32 */
    int64_t sd[1] = {2};
    assert_int_not_equal(sc_safetensors_read_f32(st, "d", sd, 1, out, err, sizeof err), SC_OK);
    assert_non_null(strstr(err, "tensor d"));
    /* missing */
    assert_int_equal(sc_safetensors_read_f32(st, "nope", sd, 1, out, err, sizeof err),
                     SC_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "nope"));
    sc_safetensors_close(st);
    sc_safetensors_close(NULL);
    unlink(path);
}

static void test_unknown_dtype(void **state)
{
    (void)state;
    uint8_t data[6] = {0};
    const char *hdr = "{\"x\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,3],\"data_offsets\":[0,6]}}";
    const char *path = write_file(hdr, (uint64_t)-1, data, sizeof data);
    char err[ERRLEN] = "";
    sc_safetensors_t *st = NULL;
    assert_int_equal(sc_safetensors_open(path, &st, err, sizeof err), SC_OK);
    assert_int_equal(sc_safetensors_find(st, "x")->dtype, SC_DTYPE_OTHER);
    float out[6];
    int64_t s[2] = {2, 3};
    assert_int_equal(sc_safetensors_read_f32(st, "x", s, 2, out, err, sizeof err),
                     SC_ERR_INVALID);
    printf("  %s\n", err);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "tensor x"));
    sc_safetensors_close(st);
    unlink(path);
}

/* Open a file that must be rejected; the message must name the file (and name_too when set). */
static void expect_bad(const char *what, const char *path, const char *name_too)
{
    char err[ERRLEN] = "";
    sc_safetensors_t *st = (sc_safetensors_t *)&err; /* must be reset to NULL */
    sc_status_t rc = sc_safetensors_open(path, &st, err, sizeof err);
    printf("  %-22s -> %s\n", what, err);
    if (rc == SC_OK)
        fail_msg("%s: accepted", what);
    assert_null(st);
    if (!strstr(err, path))
        fail_msg("%s: message does not name the file: %s", what, err);
    if (name_too && !strstr(err, name_too))
        fail_msg("%s: message does not name %s: %s", what, name_too, err);
}

static void test_corrupt(void **state)
{
    (void)state;
    uint8_t data[64] = {0};
    const char *one = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";

    expect_bad("truncated data", write_file(one, (uint64_t)-1, data, 10), "tensor w");
    expect_bad("header past the end", write_file(one, 5000, data, 16), NULL);
    expect_bad("huge header length", write_file(one, UINT64_MAX / 2, data, 16), NULL);
    expect_bad("bad JSON", write_file("{\"w\":{\"dtype\":\"F32\",", (uint64_t)-1, data, 16),
               NULL);
    expect_bad("header not an object", write_file("[1,2]", (uint64_t)-1, data, 16), NULL);
    expect_bad("offsets out of range",
               write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[48,64]}}",
                          (uint64_t)-1, data, 32),
               "tensor w");
    expect_bad("offsets reversed",
               write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,0]}}",
                          (uint64_t)-1, data, 32),
               "tensor w");
    expect_bad("overlap",
               write_file("{\"u\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                          "\"v\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                          (uint64_t)-1, data, 32),
               "overlaps");
    expect_bad("shape/size mismatch",
               write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,16]}}",
                          (uint64_t)-1, data, 32),
               "tensor w");
    expect_bad("F16 size mismatch",
               write_file("{\"w\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                          (uint64_t)-1, data, 32),
               "tensor w");
    expect_bad("negative shape",
               write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}",
                          (uint64_t)-1, data, 32),
               "tensor w");
    expect_bad("shape overflow",
               write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                          "\"data_offsets\":[0,16]}}",
                          (uint64_t)-1, data, 32),
               "tensor w");
    expect_bad("too many dims",
               write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,4],"
                          "\"data_offsets\":[0,16]}}",
                          (uint64_t)-1, data, 32),
               "tensor w");
    expect_bad("missing fields", write_file("{\"w\":{\"dtype\":\"F32\"}}", (uint64_t)-1, data, 32),
               "tensor w");
    expect_bad("dtype not a string",
               write_file("{\"w\":{\"dtype\":7,\"shape\":[4],\"data_offsets\":[0,16]}}",
                          (uint64_t)-1, data, 32),
               "tensor w");
    expect_bad("duplicate key",
               write_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                          "\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}",
                          (uint64_t)-1, data, 32),
               NULL);

    /* fewer than 8 bytes, and nothing at all */
    FILE *f = fopen(tmp_path, "wb");
    assert_non_null(f);
    fwrite("abc", 1, 3, f);
    fclose(f);
    expect_bad("3-byte file", tmp_path, NULL);
    f = fopen(tmp_path, "wb");
    assert_non_null(f);
    fclose(f);
    expect_bad("empty file", tmp_path, NULL);
    unlink(tmp_path);

    char err[ERRLEN];
    sc_safetensors_t *st = NULL;
    assert_int_equal(sc_safetensors_open("/nonexistent/x.safetensors", &st, err, sizeof err),
                     SC_ERR_IO);
    assert_non_null(strstr(err, "/nonexistent/x.safetensors"));
}

static int is_nan16(uint16_t h)
{
    return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
}

static void test_half(void **state)
{
    (void)state;
    /* every half survives half -> float -> half; NaNs stay NaN */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sc_f16_to_f32((uint16_t)h);
        uint16_t back = sc_f32_to_f16(f);
        if (is_nan16((uint16_t)h)) {
            assert_true(isnan(f));
            assert_true(is_nan16(back));
        } else if (back != h) {
            fail_msg("half 0x%04x -> %.9g -> 0x%04x", h, (double)f, back);
        }
    }
    /* values: subnormals, max, inf */
    assert_true(sc_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(sc_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    assert_true(sc_f16_to_f32(0x0400) == 0x1p-14f);
    assert_true(sc_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(isinf(sc_f16_to_f32(0x7c00)) && sc_f16_to_f32(0xfc00) < 0);
    assert_true(sc_f16_to_f32(0x8000) == 0.0f && signbit(sc_f16_to_f32(0x8000)));
    assert_int_equal(sc_f32_to_f16(INFINITY), 0x7c00);
    assert_int_equal(sc_f32_to_f16(-INFINITY), 0xfc00);
    assert_true(is_nan16(sc_f32_to_f16(NAN)));
    assert_int_equal(sc_f32_to_f16(1e6f), 0x7c00);
    assert_int_equal(sc_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(sc_f32_to_f16(1e-10f), 0x0000);
    assert_int_equal(sc_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(sc_f32_to_f16(65520.0f), 0x7c00);
    assert_int_equal(sc_f32_to_f16(0x1p-25f), 0x0000);                 /* tie -> even 0 */
    assert_int_equal(sc_f32_to_f16(nextafterf(0x1p-25f, 1.0f)), 0x0001);
    assert_int_equal(sc_f32_to_f16(1.5f * 0x1p-24f), 0x0002);          /* tie -> even */
    assert_int_equal(sc_f32_to_f16(2.5f * 0x1p-24f), 0x0002);
    assert_int_equal(sc_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);          /* tie -> even */
    assert_int_equal(sc_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    /* every midpoint between adjacent finite positive halves rounds to the even one, and one
     * f32 ulp either side rounds to the nearer one */
    for (uint32_t h = 0; h < 0x7bff; h++) {
        double lo = sc_f16_to_f32((uint16_t)h), hi = sc_f16_to_f32((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2);
        assert_true((double)mid == (lo + hi) / 2);
        uint16_t even = (h & 1u) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (sc_f32_to_f16(mid) != even || sc_f32_to_f16(-mid) != (even | 0x8000u))
            fail_msg("midpoint of 0x%04x/0x%04x -> 0x%04x", h, h + 1, sc_f32_to_f16(mid));
        assert_int_equal(sc_f32_to_f16(nextafterf(mid, 0.0f)), h);
        assert_int_equal(sc_f32_to_f16(nextafterf(mid, INFINITY)), h + 1);
    }
    /* bf16 */
    assert_true(sc_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(sc_bf16_to_f32(0xbfc0) == -1.5f);
    assert_true(isnan(sc_bf16_to_f32(0x7fc0)));
    assert_true(sc_bf16_to_f32(0x0001) == 0x1p-133f);
}

/* The real checkpoint (scripts/fetch-model) and its fp16 copy. */
static void check_model(const char *rel, sc_dtype_t want)
{
    char path[1024], err[ERRLEN];
    snprintf(path, sizeof path, "%s/%s/model.safetensors", source_dir(), rel);
    if (access(path, R_OK) != 0)
        fail_msg("%s missing: run scripts/fetch-model", path);
    sc_safetensors_t *st = NULL;
    if (sc_safetensors_open(path, &st, err, sizeof err) != SC_OK)
        fail_msg("%s", err);
    assert_true(sc_safetensors_count(st) >= 100);
    const sc_tensor_t *t = sc_safetensors_find(st, "embeddings.word_embeddings.weight");
    if (!t)
        t = sc_safetensors_find(st, "bert.embeddings.word_embeddings.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, want);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 30522);
    assert_int_equal(t->shape[1], 384);
    printf("  %s: %zu tensors\n", path, sc_safetensors_count(st));
    sc_safetensors_close(st);
}

static void test_real_model(void **state)
{
    (void)state;
    check_model("models/all-MiniLM-L6-v2", SC_DTYPE_F32);
    check_model("models/all-MiniLM-L6-v2-fp16", SC_DTYPE_F16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),   cmocka_unit_test(test_unknown_dtype),
        cmocka_unit_test(test_corrupt), cmocka_unit_test(test_half),
        cmocka_unit_test(test_real_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
