/* safetensors.c - owns the read-only mapping of one .safetensors file and its checked tensor table. */
#include "models/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads little-endian data with memcpy: a big-endian host needs byte swaps"
#endif

#define ST_MAX_HEADER   (100u * 1024u * 1024u) /* the format's own limit on the JSON header */
#define ST_MAX_TENSORS  65536                  /* far above any BERT checkpoint */

struct sc_safetensors {
    char *path;          /* owned copy, for error messages */
    void *map;           /* owned mapping of the whole file */
    size_t map_len;
    const uint8_t *data; /* the data section, inside map */
    size_t data_len;
    sc_tensor_t *tensors; /* owned, n entries, in header order */
    size_t n;
};

/* ---- half and bfloat16 ---- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float sc_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: man · 2^-24 is exact in f32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) /* inf, or nan with its payload kept */
        return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t sc_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        if (ax == 0x7f800000u)
            return (uint16_t)(sign | 0x7c00u);
        /* nan: keep the top payload bits and force quiet, so it never becomes inf */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    }
    if (ax >= 0x477ff000u) /* >= 65520: rounds (to even) beyond the largest half, 65504 */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {
        /* below 2^-14: a half subnormal (or zero), mantissa = round(|f| · 2^24) */
        if (ax <= 0x33000000u) /* <= 2^-25: the tie at 2^-25 goes to even, 0 */
            return sign;
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* |f| = m · 2^(e-150) */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u)))
            q++; /* may carry into the smallest normal, which is the right encoding */
        return (uint16_t)(sign | q);
    }
    /* normal: rebias the exponent, then round the 13 dropped bits to nearest even */
    uint32_t r = ax - (112u << 23);
    r += 0xfffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

float sc_bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

/* ---- dtypes ---- */

typedef struct {
    const char *name;
    sc_dtype_t dtype;
    size_t size; /* bytes per element */
} st_dtype_info_t;

static const st_dtype_info_t st_dtypes[] = {
    {"F32", SC_DTYPE_F32, 4},   {"F16", SC_DTYPE_F16, 2},      {"BF16", SC_DTYPE_BF16, 2},
    {"I64", SC_DTYPE_I64, 8},   {"F64", SC_DTYPE_OTHER, 8},    {"I32", SC_DTYPE_OTHER, 4},
    {"I16", SC_DTYPE_OTHER, 2}, {"I8", SC_DTYPE_OTHER, 1},     {"U64", SC_DTYPE_OTHER, 8},
    {"U32", SC_DTYPE_OTHER, 4}, {"U16", SC_DTYPE_OTHER, 2},    {"U8", SC_DTYPE_OTHER, 1},
    {"BOOL", SC_DTYPE_OTHER, 1}, {"F8_E4M3", SC_DTYPE_OTHER, 1}, {"F8_E5M2", SC_DTYPE_OTHER, 1},
};

/* The element size, or 0 for a dtype this reader does not know (its size is not checked). */
static const st_dtype_info_t *dtype_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0)
            return &st_dtypes[i];
    return NULL;
}

static const char *dtype_name(sc_dtype_t d)
{
    switch (d) {
    case SC_DTYPE_F32:
        return "F32";
    case SC_DTYPE_F16:
        return "F16";
    case SC_DTYPE_BF16:
        return "BF16";
    case SC_DTYPE_I64:
        return "I64";
    case SC_DTYPE_OTHER:
        return "other";
    }
    return "?";
}

/* ---- header ---- */

typedef struct {
    size_t begin, end, index;
} st_range_t;

static int range_cmp(const void *a, const void *b)
{
    const st_range_t *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

/* A JSON integer within [0, max]: 0 on success. */
static int json_size(const json_t *v, size_t max, size_t *out)
{
    if (!json_is_integer(v))
        return -1;
    json_int_t i = json_integer_value(v);
    if (i < 0 || (unsigned long long)i > (unsigned long long)max)
        return -1;
    *out = (size_t)i;
    return 0;
}

/* Fill t from one header entry (obj borrowed). Errors name the file and the tensor. */
static sc_status_t parse_tensor(const sc_safetensors_t *st, const char *name, const json_t *obj,
                                sc_tensor_t *t, st_range_t *range, char *errbuf, size_t errlen)
{
    if (strlen(name) >= SC_TENSOR_NAME_MAX) {
        snprintf(errbuf, errlen, "%s: tensor name \"%.40s…\" longer than %d bytes", st->path,
                 name, SC_TENSOR_NAME_MAX - 1);
        return SC_ERR_INVALID;
    }
    memcpy(t->name, name, strlen(name) + 1);
    if (!json_is_object(obj)) {
        snprintf(errbuf, errlen, "%s: tensor %s: header entry is not an object", st->path, name);
        return SC_ERR_INVALID;
    }
    const json_t *jd = json_object_get(obj, "dtype");       /* borrowed */
    const json_t *js = json_object_get(obj, "shape");       /* borrowed */
    const json_t *jo = json_object_get(obj, "data_offsets"); /* borrowed */
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo)) {
        snprintf(errbuf, errlen, "%s: tensor %s: needs \"dtype\" (string), \"shape\" and "
                 "\"data_offsets\" (arrays)", st->path, name);
        return SC_ERR_INVALID;
    }
    const st_dtype_info_t *di = dtype_lookup(json_string_value(jd));
    t->dtype = di ? di->dtype : SC_DTYPE_OTHER;

    size_t ndim = json_array_size(js);
    if (ndim > SC_TENSOR_MAX_DIMS) {
        snprintf(errbuf, errlen, "%s: tensor %s: %zu dimensions, at most %d supported", st->path,
                 name, ndim, SC_TENSOR_MAX_DIMS);
        return SC_ERR_INVALID;
    }
    t->ndim = (int)ndim;
    size_t count = 1;
    for (size_t d = 0; d < ndim; d++) {
        size_t dim;
        if (json_size(json_array_get(js, d), (size_t)INT64_MAX, &dim) != 0) {
            snprintf(errbuf, errlen, "%s: tensor %s: shape entry %zu is not a non-negative "
                     "integer", st->path, name, d);
            return SC_ERR_INVALID;
        }
        t->shape[d] = (int64_t)dim;
        if (dim != 0 && count > SIZE_MAX / dim) {
            snprintf(errbuf, errlen, "%s: tensor %s: shape overflows", st->path, name);
            return SC_ERR_INVALID;
        }
        count *= dim;
    }
    size_t begin, end;
    if (json_array_size(jo) != 2 || json_size(json_array_get(jo, 0), SIZE_MAX, &begin) != 0 ||
        json_size(json_array_get(jo, 1), SIZE_MAX, &end) != 0 || end < begin) {
        snprintf(errbuf, errlen, "%s: tensor %s: data_offsets must be [begin, end] with "
                 "0 <= begin <= end", st->path, name);
        return SC_ERR_INVALID;
    }
    if (end > st->data_len) {
        snprintf(errbuf, errlen, "%s: tensor %s: data_offsets [%zu, %zu] beyond the %zu bytes of "
                 "data (truncated file?)", st->path, name, begin, end, st->data_len);
        return SC_ERR_INVALID;
    }
    if (di) {
        if (count > SIZE_MAX / di->size || count * di->size != end - begin) {
            snprintf(errbuf, errlen, "%s: tensor %s: %zu bytes of data, but %s shape needs %zu "
                     "elements of %zu bytes", st->path, name, end - begin, di->name, count,
                     di->size);
            return SC_ERR_INVALID;
        }
    }
    t->data = st->data + begin;
    t->nbytes = end - begin;
    range->begin = begin;
    range->end = end;
    return SC_OK;
}

/* Parse and check the JSON header (len bytes at hdr). */
static sc_status_t parse_header(sc_safetensors_t *st, const char *hdr, size_t len, char *errbuf,
                                size_t errlen)
{
    sc_status_t rc = SC_OK;
    json_error_t jerr;
    st_range_t *ranges = NULL;
    json_t *root = json_loadb(hdr, len, JSON_REJECT_DUPLICATES, &jerr); /* new reference */
    if (!root) {
        snprintf(errbuf, errlen, "%s: header is not valid JSON: %s (at byte %d)", st->path,
                 jerr.text, jerr.position);
        rc = SC_ERR_INVALID;
        goto out;
    }
    if (!json_is_object(root)) {
        snprintf(errbuf, errlen, "%s: header is not a JSON object", st->path);
        rc = SC_ERR_INVALID;
        goto out;
    }
    size_t total = json_object_size(root);
    if (total > ST_MAX_TENSORS) {
        snprintf(errbuf, errlen, "%s: header lists %zu entries, at most %d", st->path, total,
                 ST_MAX_TENSORS);
        rc = SC_ERR_INVALID;
        goto out;
    }
    st->tensors = calloc(total ? total : 1, sizeof *st->tensors);
    ranges = calloc(total ? total : 1, sizeof *ranges);
    if (!st->tensors || !ranges) {
        snprintf(errbuf, errlen, "%s: out of memory for %zu tensors", st->path, total);
        rc = SC_ERR_NOMEM;
        goto out;
    }
    const char *key;
    json_t *val; /* borrowed */
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        rc = parse_tensor(st, key, val, &st->tensors[st->n], &ranges[st->n], errbuf, errlen);
        if (rc)
            goto out;
        ranges[st->n].index = st->n;
        st->n++;
    }
    qsort(ranges, st->n, sizeof *ranges, range_cmp);
    for (size_t i = 1; i < st->n; i++) {
        const st_range_t *a = &ranges[i - 1], *b = &ranges[i];
        /* empty tensors occupy no bytes and cannot overlap anything */
        if (b->begin < a->end && a->begin < a->end && b->begin < b->end) {
            snprintf(errbuf, errlen, "%s: tensor %s: data [%zu, %zu) overlaps tensor %s "
                     "[%zu, %zu)", st->path, st->tensors[b->index].name, b->begin, b->end,
                     st->tensors[a->index].name, a->begin, a->end);
            rc = SC_ERR_INVALID;
            goto out;
        }
    }
out:
    free(ranges);
    json_decref(root);
    return rc;
}

/* ---- public ---- */

sc_status_t sc_safetensors_open(const char *path, sc_safetensors_t **out, char *errbuf,
                                size_t errlen)
{
    sc_status_t rc = SC_OK;
    int fd = -1;
    *out = NULL;
    sc_safetensors_t *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        snprintf(errbuf, errlen, "%s: out of memory", path);
        rc = SC_ERR_NOMEM;
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
        rc = SC_ERR_IO;
        goto out;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(errbuf, errlen, "%s: not a regular file", path);
        rc = SC_ERR_IO;
        goto out;
    }
    if (sb.st_size < 8) {
        snprintf(errbuf, errlen, "%s: %lld bytes, too short for a safetensors header (truncated "
                 "or empty file)", path, (long long)sb.st_size);
        rc = SC_ERR_INVALID;
        goto out;
    }
    st->map_len = (size_t)sb.st_size;
    st->map = mmap(NULL, st->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        snprintf(errbuf, errlen, "%s: mmap failed: %s", path, strerror(errno));
        rc = SC_ERR_IO;
        goto out;
    }
    const uint8_t *p = st->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen > ST_MAX_HEADER || hlen > st->map_len - 8) {
        snprintf(errbuf, errlen, "%s: header length %llu exceeds the file (%zu bytes) or the "
                 "%u-byte limit (truncated or not a safetensors file)", path,
                 (unsigned long long)hlen, st->map_len, ST_MAX_HEADER);
        rc = SC_ERR_INVALID;
        goto out;
    }
    st->data = p + 8 + hlen;
    st->data_len = st->map_len - 8 - (size_t)hlen;
    rc = parse_header(st, (const char *)p + 8, (size_t)hlen, errbuf, errlen);
out:
    if (fd >= 0)
        close(fd);
    if (rc) {
        sc_safetensors_close(st);
        return rc;
    }
    *out = st;
    return SC_OK;
}

void sc_safetensors_close(sc_safetensors_t *st)
{
    if (!st)
        return;
    if (st->map)
        munmap(st->map, st->map_len);
    free(st->tensors);
    free(st->path);
    free(st);
}

size_t sc_safetensors_count(const sc_safetensors_t *st)
{
    return st->n;
}

const sc_tensor_t *sc_safetensors_at(const sc_safetensors_t *st, size_t i)
{
    return i < st->n ? &st->tensors[i] : NULL;
}

const sc_tensor_t *sc_safetensors_find(const sc_safetensors_t *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0)
            return &st->tensors[i];
    return NULL;
}

/* "[a, b, c]" into buf. */
static void format_shape(const int64_t *shape, int ndim, char *buf, size_t len)
{
    size_t used = 0;
    int n = snprintf(buf, len, "[");
    used = n > 0 ? (size_t)n : 0;
    for (int d = 0; d < ndim && used < len; d++) {
        n = snprintf(buf + used, len - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
        used += n > 0 ? (size_t)n : 0;
    }
    if (used < len)
        snprintf(buf + used, len - used, "]");
}

sc_status_t sc_safetensors_read_f32(const sc_safetensors_t *st, const char *name,
                                    const int64_t *shape, int ndim, float *dst, char *errbuf,
                                    size_t errlen)
{
    const sc_tensor_t *t = sc_safetensors_find(st, name);
    if (!t) {
        snprintf(errbuf, errlen, "%s: tensor %s: not found", st->path, name);
        return SC_ERR_NOT_FOUND;
    }
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->shape[d] == shape[d];
    if (!same) {
        char got[128], want[128];
        format_shape(t->shape, t->ndim, got, sizeof got);
        format_shape(shape, ndim, want, sizeof want);
        snprintf(errbuf, errlen, "%s: tensor %s: shape %s, expected %s", st->path, name, got,
                 want);
        return SC_ERR_INVALID;
    }
    size_t count = 1;
    for (int d = 0; d < ndim; d++)
        count *= (size_t)shape[d]; /* cannot overflow: checked against nbytes at open */
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case SC_DTYPE_F32:
        memcpy(dst, src, count * sizeof(float));
        return SC_OK;
    case SC_DTYPE_F16:
        for (size_t i = 0; i < count; i++)
            dst[i] = sc_f16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
        return SC_OK;
    case SC_DTYPE_BF16:
        for (size_t i = 0; i < count; i++)
            dst[i] = sc_bf16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
        return SC_OK;
    case SC_DTYPE_I64:
    case SC_DTYPE_OTHER:
        break;
    }
    snprintf(errbuf, errlen, "%s: tensor %s: dtype %s cannot be read as f32 (F32, F16 or BF16 "
             "expected)", st->path, name, dtype_name(t->dtype));
    return SC_ERR_INVALID;
}
