/* test_encoder_gpu.c - the CUDA forward end to end against sentence-transformers: the 320 fixture
 * sentences (tests/fixtures/minilm/embeddings.jsonl, token ids included) embedded from their ids
 * in batches of 64 and in one batch of 320 must each reach cosine >= 0.9995 with the fp32
 * embeddings that sentence-transformers wrote (embeddings.f32). Plain C + jansson, no cmocka.
 * Exit 0 pass, 1 fail, 77 no CUDA device. Files are found under env SCRIMP_SOURCE_DIR (set by
 * ctest), else ".". */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "models/encoder_backend.h"
#include "models/minilm.h"

#define SKIP         77
#define N_SENT       320
#define DIM          384
#define MAX_LEN      256
#define MIN_COSINE   0.9995
#define PATH_MAX_LEN 4096

static void die(const char *what)
{
    fprintf(stderr, "test_encoder_gpu: %s\n", what);
    exit(1);
}

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* ids of every sentence, packed; off[i] .. off[i+1] is sentence i. */
static void read_fixture_ids(const char *path, int32_t **ids_out, int32_t *off)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot open embeddings.jsonl");
    size_t cap = 1 << 14, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    char *line = NULL;
    size_t linecap = 0;
    int i = 0;
    off[0] = 0;
    while (ids && getline(&line, &linecap, f) > 0) {
        if (line[0] == '\n')
            continue;
        if (i >= N_SENT)
            die("embeddings.jsonl has more than 320 lines");
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);             /* new reference */
        json_t *arr = o ? json_object_get(o, "ids") : NULL; /* borrowed */
        if (!o || !json_is_array(arr) || json_integer_value(json_object_get(o, "i")) != i)
            die("a line of embeddings.jsonl is not {\"i\": <line>, \"ids\": [...]}");
        size_t k;
        json_t *v;
        json_array_foreach(arr, k, v)
        {
            if (n == cap) {
                cap *= 2;
                int32_t *grown = realloc(ids, cap * sizeof *ids);
                if (!grown)
                    die("out of memory");
                ids = grown;
            }
            ids[n++] = (int32_t)json_integer_value(v);
        }
        json_decref(o);
        if (n - (size_t)off[i] > MAX_LEN)
            die("a fixture sentence is longer than 256 tokens");
        off[++i] = (int32_t)n;
    }
    free(line);
    fclose(f);
    if (!ids)
        die("out of memory");
    if (i != N_SENT)
        die("embeddings.jsonl does not have 320 lines");
    *ids_out = ids;
}

/* Cosine of every sentence against the reference; returns the number under MIN_COSINE. */
static int check(const char *label, const float *got, const float *ref)
{
    double worst = 2.0, max_diff = 0.0, worst_norm_err = 0.0;
    int worst_i = -1, bad = 0;
    for (int i = 0; i < N_SENT; i++) {
        const float *a = got + (size_t)i * DIM, *b = ref + (size_t)i * DIM;
        double dot = 0.0, na = 0.0, nb = 0.0;
        for (int c = 0; c < DIM; c++) {
            dot += (double)a[c] * b[c];
            na += (double)a[c] * a[c];
            nb += (double)b[c] * b[c];
            double d = fabs((double)a[c] - b[c]);
            if (d > max_diff || d != d)
                max_diff = d;
        }
        double cosv = dot / (sqrt(na) * sqrt(nb));
        if (!(cosv >= MIN_COSINE))
            bad++;
        if (!(cosv >= worst)) {
            worst = cosv;
            worst_i = i;
        }
        if (fabs(sqrt(na) - 1.0) > worst_norm_err)
            worst_norm_err = fabs(sqrt(na) - 1.0);
    }
    printf("%-22s worst cosine %.6f (sentence %d)  max |diff| %.3g  max |norm-1| %.2g  %s\n", label,
           worst, worst_i, max_diff, worst_norm_err, bad ? "FAIL" : "pass");
    if (bad)
        printf("    %d of %d sentences under cosine %.4f\n", bad, N_SENT, MIN_COSINE);
    return bad + (worst_norm_err > 1e-3);
}

int main(void)
{
    char err[1024] = "";
    if (!sc_encoder_gpu_available(err, sizeof err)) {
        printf("test_encoder_gpu: skipped, no CUDA device (%s)\n", err);
        return SKIP;
    }
    const char *src = getenv("SCRIMP_SOURCE_DIR") ? getenv("SCRIMP_SOURCE_DIR") : ".";
    char model_dir[PATH_MAX_LEN], path[PATH_MAX_LEN];
    snprintf(model_dir, sizeof model_dir, "%s/models/all-MiniLM-L6-v2", src);
    if (!is_dir(model_dir))
        snprintf(model_dir, sizeof model_dir, "%s/models/all-MiniLM-L6-v2-fp16", src);
    printf("test_encoder_gpu: model %s\n", model_dir);

    sc_minilm_t *m = NULL;
    if (sc_minilm_load(model_dir, &m, err, sizeof err) != SC_OK) {
        fprintf(stderr, "test_encoder_gpu: %s (run scripts/fetch-model)\n", err);
        return 1;
    }
    sc_encoder_gpu_t *enc = NULL;
    if (sc_encoder_gpu_new(m, N_SENT, MAX_LEN, &enc, err, sizeof err) != SC_OK) {
        fprintf(stderr, "test_encoder_gpu: sc_encoder_gpu_new: %s\n", err);
        return 1;
    }
    sc_minilm_free(m); /* the encoder holds its own device copy */

    int32_t *ids = NULL, off[N_SENT + 1];
    snprintf(path, sizeof path, "%s/tests/fixtures/minilm/embeddings.jsonl", src);
    read_fixture_ids(path, &ids, off);

    float *ref = malloc((size_t)N_SENT * DIM * sizeof *ref);
    float *got = malloc((size_t)N_SENT * DIM * sizeof *got);
    float *got_all = malloc((size_t)N_SENT * DIM * sizeof *got_all);
    if (!ref || !got || !got_all)
        die("out of memory");
    snprintf(path, sizeof path, "%s/tests/fixtures/minilm/embeddings.f32", src);
    FILE *f = fopen(path, "rb");
    if (!f || fread(ref, sizeof *ref, (size_t)N_SENT * DIM, f) != (size_t)N_SENT * DIM)
        die("cannot read embeddings.f32 (320 x 384 float32)");
    fclose(f); /* little-endian file, read on a little-endian host */

    int failed = 0;

    /* batches of 64: offsets of each batch point into the same packed ids */
    const int batch = 64;
    for (int s = 0; s < N_SENT; s += batch) {
        int nb = N_SENT - s < batch ? N_SENT - s : batch;
        if (sc_encoder_gpu_forward(enc, ids, off + s, (size_t)nb, got + (size_t)s * DIM) != SC_OK)
            die("sc_encoder_gpu_forward failed (batch of 64)");
    }
    failed += check("batches of 64", got, ref);

    if (sc_encoder_gpu_forward(enc, ids, off, N_SENT, got_all) != SC_OK)
        die("sc_encoder_gpu_forward failed (batch of 320)");
    failed += check("one batch of 320", got_all, ref);

    /* a sentence alone must not depend on its neighbours (packing has no cross-talk) */
    float one[DIM];
    if (sc_encoder_gpu_forward(enc, ids, off + 5, 1, one) != SC_OK)
        die("sc_encoder_gpu_forward failed (batch of 1)");
    double d1 = 0.0;
    for (int c = 0; c < DIM; c++)
        d1 = fmax(d1, fabs((double)one[c] - got_all[5 * DIM + c]));
    printf("%-22s max |diff| vs the same sentence in the batch of 320: %.3g  %s\n", "batch of 1",
           d1, d1 <= 2e-3 ? "pass" : "FAIL");
    failed += d1 > 2e-3;

    /* a bad batch is refused, not run */
    int32_t bad_off[2] = {0, MAX_LEN + 1};
    if (sc_encoder_gpu_forward(enc, ids, bad_off, 1, one) == SC_OK) {
        printf("a 257-token sequence was accepted: FAIL\n");
        failed++;
    }

    sc_encoder_gpu_free(enc);
    free(ids), free(ref), free(got), free(got_all);
    printf("test_encoder_gpu: %s\n", failed ? "FAIL" : "pass");
    return failed ? 1 : 0;
}
