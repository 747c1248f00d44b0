/* fuzz_index_file.c - libFuzzer harness: the cache's saved index (index.scx) through the loader
 * the cache uses at open (sc_cache_ix_read), on a real cache opened once. The first byte picks the
 * mode. Even: the rest is the whole file as it is (garbage must be refused cleanly, before FAISS
 * sees it). Odd: a file with a header stamped for this cache and checksums that hold, whose
 * payload is built from the rest: chunks of [template byte][partition record][deleted ids], each
 * followed by one of the FAISS indexes made at start (HNSW, IVF, flat, HNSW of another dimension),
 * so that the records, the deleted ids and every check after FAISS's reader see the input. FAISS's
 * reader itself only ever gets an index FAISS wrote: it is not scrimp's parser, and the FAISS 1.7
 * Debian ships leaks what it had built when a garbled index makes it throw. Bits 1-2 of the first
 * byte are the header's partition count. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "host/cache/cache.h"
#include "host/cache/cache_internal.h"
#include "tests/fuzz/fuzz_util.h"

#define FUZZ_ERR_MAX 512
#define FUZZ_DIM 8            /* the cache's vectors, and the templates' but one */
#define FUZZ_HNSW_M 4
#define FUZZ_ANN_MIN 16
#define FUZZ_MAX_BYTES ((size_t)16 << 20)
#define FUZZ_PARTS_MAX 4      /* n_parts a stamped header may claim: 0..3 */
#define FUZZ_DEAD_MAX 64      /* deleted ids one chunk carries */
#define FUZZ_TEMPLATE_N 40    /* vectors in each template index */
#define FUZZ_FILE_MAX ((size_t)1 << 20)

/* The FAISS indexes a stamped payload is made of: what the cache's partitions save, and two it
 * must refuse (a flat one has no search parameters to set, the other dimension is not the
 * cache's). */
static const struct {
    const char *desc;
    int dim;
} templates[] = {
    {"IDMap,HNSW4,Flat", FUZZ_DIM},
    {"IVF1,Flat", FUZZ_DIM},
    {"IDMap,Flat", FUZZ_DIM},
    {"IDMap,HNSW4,Flat", FUZZ_DIM / 2},
};
#define FUZZ_TEMPLATES (sizeof templates / sizeof templates[0])

static char *blob[FUZZ_TEMPLATES]; /* owned: faiss_write_index of each template */
static size_t blob_len[FUZZ_TEMPLATES];

static sc_cache_t *cache;
static const char *ix_path;

static void close_cache(void)
{
    sc_cache_close(cache);
    cache = NULL;
    for (size_t i = 0; i < FUZZ_TEMPLATES; i++) {
        free(blob[i]);
        blob[i] = NULL;
    }
}

/* Template i holding FUZZ_TEMPLATE_N vectors with ids 1.., as FAISS writes it. Dies on failure. */
static void make_template(size_t i)
{
    int d = templates[i].dim;
    float *x = malloc((size_t)FUZZ_TEMPLATE_N * (size_t)d * sizeof(float));
    idx_t ids[FUZZ_TEMPLATE_N];
    FaissIndex *ix = NULL;
    SC_FUZZ_CHECK(x != NULL);
    for (int v = 0; v < FUZZ_TEMPLATE_N; v++) {
        ids[v] = v + 1;
        for (int k = 0; k < d; k++)
            x[v * d + k] = (float)((v * 7 + k * 3) % 11) - 5.0f;
    }
    SC_FUZZ_CHECK(faiss_index_factory(&ix, d, templates[i].desc, METRIC_INNER_PRODUCT) == 0);
    if (!faiss_Index_is_trained(ix))
        SC_FUZZ_CHECK(faiss_Index_train(ix, FUZZ_TEMPLATE_N, x) == 0);
    SC_FUZZ_CHECK(faiss_Index_add_with_ids(ix, FUZZ_TEMPLATE_N, x, ids) == 0);
    FILE *f = open_memstream(&blob[i], &blob_len[i]);
    SC_FUZZ_CHECK(f != NULL);
    SC_FUZZ_CHECK(faiss_write_index(ix, f) == 0);
    SC_FUZZ_CHECK(fclose(f) == 0);
    faiss_Index_free(ix);
    free(x);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[FUZZ_ERR_MAX];
    sc_cache_opts_t o;
    (void)argc;
    (void)argv;
    sc_fuzz_init();
    /* the cache lives in the scratch folder itself, so its files go with it */
    (void)sc_fuzz_path("data.mdb");
    (void)sc_fuzz_path("lock.mdb");
    (void)sc_fuzz_path(SC_CACHE_IX_TMP);
    ix_path = sc_fuzz_path(SC_CACHE_IX_FILE);
    sc_cache_opts_default(&o);
    o.path = sc_fuzz_dir;
    o.max_bytes = FUZZ_MAX_BYTES;
    o.index = "hnsw";
    o.hnsw_m = FUZZ_HNSW_M;
    o.ann_min = FUZZ_ANN_MIN;
    o.dim = FUZZ_DIM;
    o.use_gpu = 0;
    o.index_save = 1;
    o.checkpoint_s = 0;
    if (sc_cache_open(&o, &cache, err, sizeof err) != SC_OK) {
        fprintf(stderr, "fuzz_index_file: cache open: %s\n", err);
        abort();
    }
    atexit(close_cache);
    for (size_t i = 0; i < FUZZ_TEMPLATES; i++)
        make_template(i);
    return 0;
}

static void put(uint8_t *file, size_t *len, const void *p, size_t n)
{
    SC_FUZZ_CHECK(*len + n <= FUZZ_FILE_MAX);
    memcpy(file + *len, p, n);
    *len += n;
}

/* index.scx = a header stamped for this cache at its generation, n_parts, and the payload built
 * from in (len bytes) as the top comment says. */
static void write_stamped(uint64_t n_parts, const uint8_t *in, size_t len)
{
    sc_ix_hdr_t h;
    size_t flen = sizeof h;
    uint8_t *file = malloc(FUZZ_FILE_MAX);
    SC_FUZZ_CHECK(file != NULL);
    while (len >= 1 + sizeof(sc_ix_part_t)) {
        size_t t = in[0] % FUZZ_TEMPLATES;
        sc_ix_part_t ph;
        memcpy(&ph, in + 1, sizeof ph);
        in += 1 + sizeof ph;
        len -= 1 + sizeof ph;
        /* the record announces exactly the ids that follow it, so that FAISS reads its index
         * where it starts */
        uint64_t nd = ph.n_dead < FUZZ_DEAD_MAX ? ph.n_dead : FUZZ_DEAD_MAX;
        if (nd > len / sizeof(int64_t))
            nd = len / sizeof(int64_t);
        ph.n_dead = nd;
        if (flen + sizeof ph + nd * sizeof(int64_t) + blob_len[t] > FUZZ_FILE_MAX)
            break; /* a longer -max_len than the default: the rest is not used */
        put(file, &flen, &ph, sizeof ph);
        put(file, &flen, in, (size_t)nd * sizeof(int64_t));
        in += nd * sizeof(int64_t);
        len -= (size_t)nd * sizeof(int64_t);
        put(file, &flen, blob[t], blob_len[t]);
    }
    sc_cache_ix_stamp(cache, cache->gen, &h);
    h.n_parts = n_parts;
    h.payload_len = flen - sizeof h;
    h.payload_hash = XXH3_64bits(file + sizeof h, flen - sizeof h);
    h.header_hash = sc_cache_ix_header_hash(&h);
    memcpy(file, &h, sizeof h);
    sc_fuzz_write(ix_path, file, flen);
    free(file);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sc_pmap_t parts = {0};
    if (size == 0)
        return 0;
    if (data[0] & 1)
        write_stamped((uint64_t)(data[0] >> 1) % FUZZ_PARTS_MAX, data + 1, size - 1);
    else
        sc_fuzz_write(ix_path, data + 1, size - 1);
    int loaded = sc_cache_ix_read(cache, cache->gen, &parts);
    if (!loaded) {
        SC_FUZZ_CHECK(parts.n == 0); /* a refused file leaves nothing behind */
    } else {
        for (size_t i = 0; i < parts.cap; i++) {
            const sc_part_t *p = parts.slot[i];
            SC_FUZZ_CHECK(!p || (p->ix != NULL && p->live > 0 &&
                                 faiss_Index_d(p->ix) == FUZZ_DIM));
        }
    }
    sc_cache_pmap_clear(&parts); /* frees the slots too */
    return 0;
}
