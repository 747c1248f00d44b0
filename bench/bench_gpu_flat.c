/* bench_gpu_flat.c - the GPU flat cache index (host/cache/gpu_flat.c: cuBLAS fp16 GEMM + the scoped top-k
 * of kernels/topk_ip.cu) at 10k, 100k and 1M entries: insert throughput, lookups/s and per-call
 * p50/p99 at several query batch sizes, and recall@1 against an exact fp32 scoped search on the
 * CPU. Built in both configurations with CUDA (it needs no FAISS or LMDB, so it runs on a bare GPU
 * machine: scripts/device-check). Exit 0 done, 1 failure, 77 no CUDA device.
 *
 * usage: bench_gpu_flat [--sizes 10000,100000,1000000] [--batches 1,16,256,1024,4096]
 *                       [--scopes 1000] [--min-seconds 0.5] [--out FILE]
 *
 * Data: unit vectors around 4,096 random centres (cosine to their centre ~0.7), each with a scope
 * drawn from --scopes; queries are stored vectors with noise added (cosine ~0.97 to their source),
 * asked in their source's scope, so the exact answer is usually, not always, the source. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "bench/bench_util.h"
#include "host/cache/gpu_flat.h"
#include "host/core/util.h"

#define DIM          384
#define NCENTRES     4096
#define RECALL_N     500 /* queries checked against the exact search */
#define MAX_LIST     16
#define QUERY_POOL   8192 /* distinct queries cycled through by the timed loop */
#define MAX_CALLS    100000

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t rng_u64(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

static float rng_gauss(void)
{
    double u = ((rng_u64() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double v = ((rng_u64() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static void normalise(float *v)
{
    double s = 0;
    for (int i = 0; i < DIM; i++)
        s += (double)v[i] * v[i];
    const float inv = (float)(1.0 / sqrt(s));
    for (int i = 0; i < DIM; i++)
        v[i] *= inv;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what, sc_status_t st)
{
    fprintf(stderr, "bench_gpu_flat: %s: %s\n", what, sc_strerror(st));
    exit(1);
}

int main(int argc, char **argv)
{
    int sizes[MAX_LIST] = {10000, 100000, 1000000}, batches[MAX_LIST] = {1, 16, 256, 1024, 4096};
    int nsizes = 3, nbatches = 5;
    long nscopes = 1000;
    double min_s = 0.5;
    const char *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--sizes") && v) {
            nsizes = sc_bench_parse_list(v, sizes, MAX_LIST);
            i++;
        } else if (!strcmp(a, "--batches") && v) {
            nbatches = sc_bench_parse_list(v, batches, MAX_LIST);
            i++;
        } else if (!strcmp(a, "--scopes") && v) {
            nscopes = atol(v);
            i++;
        } else if (!strcmp(a, "--min-seconds") && v) {
            min_s = atof(v);
            i++;
        } else if (!strcmp(a, "--out") && v) {
            out_path = v;
            i++;
        } else {
            fprintf(stderr, "usage: bench_gpu_flat [--sizes N,...] [--batches B,...] [--scopes S]"
                            " [--min-seconds S] [--out FILE]\n");
            return 2;
        }
    }
    if (nsizes <= 0 || nbatches <= 0 || nscopes <= 0 || min_s <= 0) {
        fprintf(stderr, "bench_gpu_flat: bad --sizes, --batches, --scopes or --min-seconds\n");
        return 2;
    }
    char err[512] = "";
    if (!sc_gpu_flat_available(err, sizeof err)) {
        fprintf(stderr, "bench_gpu_flat: no usable GPU: %s\n", err);
        return 77;
    }

    long nmax = 0, bmax = 0;
    for (int i = 0; i < nsizes; i++)
        nmax = sizes[i] > nmax ? sizes[i] : nmax;
    for (int i = 0; i < nbatches; i++)
        bmax = batches[i] > bmax ? batches[i] : bmax;

    /* the data: centres, then vectors around them */
    float *centres = malloc((size_t)NCENTRES * DIM * sizeof(float));
    float *vecs = malloc((size_t)nmax * DIM * sizeof(float));
    uint64_t *scopes = malloc((size_t)nmax * sizeof(uint64_t));
    int64_t *ids = malloc((size_t)nmax * sizeof(int64_t));
    float *queries = malloc((size_t)QUERY_POOL * DIM * sizeof(float));
    uint64_t *qscopes = malloc((size_t)QUERY_POOL * sizeof(uint64_t));
    float *res_s = malloc((size_t)(bmax > RECALL_N ? bmax : RECALL_N) * sizeof(float));
    int64_t *res_i = malloc((size_t)(bmax > RECALL_N ? bmax : RECALL_N) * sizeof(int64_t));
    double *lat = malloc((size_t)MAX_CALLS * sizeof(double));
    if (!centres || !vecs || !scopes || !ids || !queries || !qscopes || !res_s || !res_i ||
        !lat) {
        fprintf(stderr, "bench_gpu_flat: out of memory\n");
        return 1;
    }
    for (long c = 0; c < NCENTRES; c++) {
        for (int d = 0; d < DIM; d++)
            centres[c * DIM + d] = rng_gauss();
        normalise(centres + c * DIM);
    }
    const float spread = 1.0f / sqrtf((float)DIM); /* per-coordinate noise: |noise| ~ 1 */
    for (long i = 0; i < nmax; i++) {
        const float *c = centres + (rng_u64() % NCENTRES) * DIM;
        float *v = vecs + i * DIM;
        for (int d = 0; d < DIM; d++)
            v[d] = c[d] + spread * rng_gauss();
        normalise(v);
        scopes[i] = 1 + rng_u64() % (uint64_t)nscopes; /* scope 0 is reserved */
        ids[i] = i;
    }

    char cpu[256], date[64];
    sc_bench_cpu_model(cpu, sizeof cpu);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    struct cudaDeviceProp prop;
    const char *gpu = cudaGetDeviceProperties(&prop, 0) == cudaSuccess ? prop.name : "unknown GPU";
    FILE *md = out_path ? fopen(out_path, "w") : stdout;
    if (!md) {
        fprintf(stderr, "bench_gpu_flat: cannot write %s\n", out_path);
        return 1;
    }
    fprintf(md, "# GPU flat cache index: lookups, inserts, recall\n\n");
    fprintf(md, "Command: `bench_gpu_flat");
    for (int i = 1; i < argc; i++)
        fprintf(md, " %s", argv[i]);
    fprintf(md, "` (bench/bench_gpu_flat.c; scripts/device-check runs it)\n\n");
    fprintf(md, "- date: %s; host CPU: %s; GPU: %s\n", date, cpu, gpu);
    fprintf(md, "- index: host/cache/gpu_flat.c — fp16 vectors (%d-d), one cuBLAS GEMM per tile of "
                "slots and the scoped top-k kernel (kernels/topk_ip.cu), k = 1; %ld scopes, a "
                "query sees only its own scope\n",
            DIM, nscopes);
    fprintf(md, "- data: unit vectors around %d random centres; queries are stored vectors with "
                "noise (cosine ~0.97), asked in their source's scope; each batch size is timed "
                "for at least %.2g s after one warm-up call, cycling through %d distinct queries; "
                "latency is one search call (host → device → host, merge included)\n",
            NCENTRES, min_s, QUERY_POOL);
    fprintf(md, "- recall@1: %d queries against an exact fp32 search of the same scope on the CPU "
                "(the same vector found, or a vector scoring within 2.5e-3 of the exact best: "
                "fp16 rounding)\n\n",
            RECALL_N);
    fprintf(md, "| entries | insert vectors/s | recall@1 | batch | lookups/s | call p50 ms | call "
                "p99 ms |\n|---:|---:|---:|---:|---:|---:|---:|\n");
    fflush(md);

    for (int si = 0; si < nsizes; si++) {
        const long n = sizes[si];
        sc_gpu_flat_t *f = NULL;
        sc_status_t st = sc_gpu_flat_new(DIM, (size_t)n, &f, err, sizeof err);
        if (st != SC_OK) {
            fprintf(stderr, "bench_gpu_flat: new: %s\n", err);
            return 1;
        }
        int64_t t0 = sc_now_us();
        const long chunk = 65536;
        for (long i = 0; i < n; i += chunk) {
            const long m = n - i < chunk ? n - i : chunk;
            if ((st = sc_gpu_flat_add(f, (size_t)m, vecs + i * DIM, ids + i, scopes + i)) != SC_OK)
                die("add", st);
        }
        const double insert_s = (sc_now_us() - t0) / 1e6;
        if (sc_gpu_flat_size(f) != (size_t)n) {
            fprintf(stderr, "bench_gpu_flat: size %zu after adding %ld\n", sc_gpu_flat_size(f), n);
            return 1;
        }

        /* queries: noisy copies of stored vectors, in their scope */
        for (long q = 0; q < QUERY_POOL; q++) {
            const long src = (long)(rng_u64() % (uint64_t)n);
            float *v = queries + q * DIM;
            for (int d = 0; d < DIM; d++)
                v[d] = vecs[src * DIM + d] + 0.25f * spread * rng_gauss();
            normalise(v);
            qscopes[q] = scopes[src];
        }

        /* recall@1 against the exact scoped search */
        if ((st = sc_gpu_flat_search(f, RECALL_N, queries, qscopes, 1, res_s, res_i)) != SC_OK)
            die("search", st);
        int found = 0;
        for (long q = 0; q < RECALL_N; q++) {
            const float *qv = queries + q * DIM;
            double best = -2;
            long best_i = -1;
            for (long i = 0; i < n; i++) {
                if (scopes[i] != qscopes[q])
                    continue;
                double s = 0;
                for (int d = 0; d < DIM; d++)
                    s += (double)qv[d] * vecs[i * DIM + d];
                if (s > best) {
                    best = s;
                    best_i = i;
                }
            }
            double got = -2;
            if (res_i[q] >= 0 && res_i[q] < n && scopes[res_i[q]] == qscopes[q]) {
                got = 0;
                for (int d = 0; d < DIM; d++)
                    got += (double)qv[d] * vecs[res_i[q] * DIM + d];
            }
            if (res_i[q] == best_i || (got > -2 && best - got <= 2.5e-3))
                found++;
        }
        const double recall = (double)found / RECALL_N;

        for (int bi = 0; bi < nbatches; bi++) {
            const long b = batches[bi];
            if (b > QUERY_POOL) {
                fprintf(stderr, "bench_gpu_flat: batch %ld > %d, skipped\n", b, QUERY_POOL);
                continue;
            }
            if ((st = sc_gpu_flat_search(f, (size_t)b, queries, qscopes, 1, res_s, res_i)) != SC_OK)
                die("search", st); /* warm-up */
            long calls = 0, off = 0;
            int64_t start = sc_now_us(), dt;
            do {
                if (off + b > QUERY_POOL)
                    off = 0;
                int64_t c0 = sc_now_us();
                st = sc_gpu_flat_search(f, (size_t)b, queries + off * DIM, qscopes + off, 1, res_s,
                                        res_i);
                if (st != SC_OK)
                    die("search", st);
                if (calls < MAX_CALLS)
                    lat[calls] = (sc_now_us() - c0) / 1e3;
                calls++;
                off += b;
                dt = sc_now_us() - start;
            } while (dt < (int64_t)(min_s * 1e6) && calls < MAX_CALLS);
            qsort(lat, (size_t)calls, sizeof(double), cmp_double);
            const double qps = (double)b * calls / (dt / 1e6);
            const double p50 = lat[calls / 2], p99 = lat[(size_t)(calls * 0.99)];
            fprintf(md, "| %ld | %.0f | %.3f | %ld | %.0f | %.3f | %.3f |\n", n, n / insert_s,
                    recall, b, qps, p50, p99);
            fflush(md);
            fprintf(stderr, "bench_gpu_flat: n %ld batch %ld: %.0f lookups/s, p50 %.3f ms, p99 "
                            "%.3f ms, recall %.3f\n",
                    n, b, qps, p50, p99, recall);
        }
        sc_gpu_flat_free(f);
    }
    if (out_path)
        fclose(md);
    free(centres);
    free(vecs);
    free(scopes);
    free(ids);
    free(queries);
    free(qscopes);
    free(res_s);
    free(res_i);
    free(lat);
    return 0;
}
