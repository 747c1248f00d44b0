/* bench_cache.c - the semantic cache at 10k, 100k and 1M entries in one scope: lookups/s and
 * latency (single, two threads, batched), recall@1 of HNSW and IVF against flat, bulk and durable
 * insert throughput, and restart time: reopen with the index rebuilt from the store, and reopen
 * with the saved HNSW/IVF index (index.scx). Writes bench/results/cache.md. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "host/cache/cache.h"
#include "host/cache/gpu_flat.h"
#include "host/core/log.h"
#include "host/core/util.h"

#define BENCH_DIM 384
#define BENCH_SCOPE 0x5eedull
#define BENCH_CHUNK 10000          /* entries per bulk transaction */
#define BENCH_QUERIES 1000         /* recall queries */
#define BENCH_BATCH 64
#define BENCH_BUDGET_US 8000000    /* per single-lookup measurement */
#define BENCH_MIN_SINGLE 20
#define BENCH_DURABLE_INSERTS 200
#define BENCH_QUERY_COS 0.95       /* a paraphrase of a stored prompt */
#define BENCH_CLUSTER_SIZE 50      /* entries per centroid in the clustered set */
#define BENCH_CLUSTER_NOISE 0.6    /* |noise| / |centroid| before normalising */
#define BENCH_MAX_SIZES 8
#define BENCH_MAX_ROWS 128
#define BENCH_ROW_MAX 512
#define BENCH_CMD_MAX 1024
#define BENCH_RESP_LEN 160
#define BENCH_MAX_EF 8

static uint64_t rng_s = 0x243f6a8885a308d3ull;

static inline uint64_t rng(void)
{
    uint64_t x = rng_s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_s = x;
}

static void rng_normals(float *out, size_t n)
{
    for (size_t i = 0; i < n; i += 2) {
        double u = ((double)(rng() >> 11) + 1.0) / 9007199254740993.0;
        double v = (double)(rng() >> 11) / 9007199254740992.0;
        double r = sqrt(-2.0 * log(u));
        out[i] = (float)(r * cos(6.283185307179586 * v));
        if (i + 1 < n)
            out[i + 1] = (float)(r * sin(6.283185307179586 * v));
    }
}

static void normalize(float *v, int d)
{
    double s = 0;
    for (int i = 0; i < d; i++)
        s += (double)v[i] * v[i];
    s = 1.0 / sqrt(s);
    for (int i = 0; i < d; i++)
        v[i] = (float)(v[i] * s);
}

enum { DATA_UNIFORM, DATA_CLUSTERED, DATA_FILE };
static const char *data_names[] = {"uniform", "clustered", "embeddings"};
static const char *vec_path;  /* --vectors: raw float32 rows of BENCH_DIM (scrimp embed --format f32) */
static size_t vec_rows;

/* The first n rows of the --vectors file, normalised. */
static float *load_vectors(size_t n)
{
    float *x = malloc(n * BENCH_DIM * sizeof(float));
    FILE *f = fopen(vec_path, "rb");
    if (!x || !f || fread(x, sizeof(float) * BENCH_DIM, n, f) != n) {
        fprintf(stderr, "bench_cache: %s: cannot read %zu rows of %d floats\n", vec_path, n,
                BENCH_DIM);
        exit(1);
    }
    fclose(f);
    for (size_t i = 0; i < n; i++)
        normalize(x + i * BENCH_DIM, BENCH_DIM);
    return x;
}

/* n unit vectors: uniform on the sphere, around random centroids, or the --vectors file. */
static float *make_data(size_t n, int kind)
{
    const int d = BENCH_DIM;
    if (kind == DATA_FILE)
        return load_vectors(n);
    float *x = malloc(n * d * sizeof(float));
    if (!x)
        return NULL;
    rng_normals(x, n * d);
    if (kind == DATA_CLUSTERED) {
        size_t nc = n / BENCH_CLUSTER_SIZE ? n / BENCH_CLUSTER_SIZE : 1;
        float *cen = malloc(nc * d * sizeof(float));
        if (!cen) {
            free(x);
            return NULL;
        }
        rng_normals(cen, nc * d);
        for (size_t c = 0; c < nc; c++)
            normalize(cen + c * d, d);
        for (size_t i = 0; i < n; i++) {
            float *v = x + i * d;
            const float *c = cen + (rng() % nc) * d;
            normalize(v, d);
            for (int j = 0; j < d; j++)
                v[j] = c[j] + (float)BENCH_CLUSTER_NOISE * v[j];
        }
        free(cen);
    }
    for (size_t i = 0; i < n; i++)
        normalize(x + i * d, d);
    return x;
}

/* A unit vector at cosine cosv from the unit vector base. */
static void near_vec(const float *base, double cosv, float *out)
{
    const int d = BENCH_DIM;
    float r[BENCH_DIM];
    rng_normals(r, d);
    double dot = 0;
    for (int i = 0; i < d; i++)
        dot += (double)r[i] * base[i];
    for (int i = 0; i < d; i++)
        r[i] = (float)(r[i] - dot * base[i]);
    normalize(r, d);
    double s = sqrt(1 - cosv * cosv);
    for (int i = 0; i < d; i++)
        out[i] = (float)(cosv * base[i] + s * r[i]);
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what, sc_status_t st)
{
    fprintf(stderr, "bench_cache: %s: %s\n", what, sc_strerror(st));
    exit(1);
}

static int hnsw_m = 32, hnsw_efc = 80;
static int hnsw_efs[BENCH_MAX_EF] = {64};
static size_t n_efs = 1;

static void bench_opts(sc_cache_opts_t *o, const char *dir, const char *index, int gpu)
{
    sc_cache_opts_default(o);
    o->hnsw_m = hnsw_m;
    o->hnsw_ef_construction = hnsw_efc;
    o->hnsw_ef_search = hnsw_efs[0];
    o->checkpoint_s = 0; /* saved at close only: no save while measuring */
    o->path = dir;
    o->dim = BENCH_DIM;
    o->max_bytes = (size_t)64 << 30;
    o->ttl_s = 0;
    o->guards = 0;
    o->threshold = -1.0; /* every lookup answers with its top-1: that is what recall measures */
    o->index = index;
    o->ann_min = BENCH_CHUNK;
    o->use_gpu = gpu;
}

static sc_cache_t *bench_open(const sc_cache_opts_t *o, double *open_ms)
{
    sc_cache_t *c;
    char err[256];
    int64_t t0 = sc_now_us();
    sc_status_t st = sc_cache_open(o, &c, err, sizeof(err));
    if (st) {
        fprintf(stderr, "bench_cache: open %s: %s\n", o->path, err);
        exit(1);
    }
    *open_ms = (double)(sc_now_us() - t0) / 1000.0;
    return c;
}

/* Bulk-load n entries (one scope) in BENCH_CHUNK transactions; returns entries/s. */
static double bulk_load(const char *dir, const float *x, size_t n)
{
    sc_cache_opts_t o;
    double ms;
    bench_opts(&o, dir, "flat", 0);
    o.ann_min = (size_t)1 << 40; /* flat while loading; the index is rebuilt at each open */
    sc_cache_t *c = bench_open(&o, &ms);
    sc_cache_item_t *items = calloc(BENCH_CHUNK, sizeof(*items));
    char *texts = malloc((size_t)BENCH_CHUNK * 32);
    char resp[BENCH_RESP_LEN + 1];
    memset(resp, 'a', BENCH_RESP_LEN);
    resp[BENCH_RESP_LEN] = 0;
    if (!items || !texts)
        die("bulk", SC_ERR_NOMEM);
    int64_t t0 = sc_now_us();
    for (size_t at = 0; at < n; at += BENCH_CHUNK) {
        size_t m = n - at < BENCH_CHUNK ? n - at : BENCH_CHUNK;
        for (size_t i = 0; i < m; i++) {
            char *t = texts + i * 32;
            int len = snprintf(t, 32, "prompt number %zu", at + i);
            items[i].q.scope = BENCH_SCOPE;
            items[i].q.tenant = "bench";
            items[i].q.text = t;
            items[i].q.len = (size_t)len;
            items[i].q.vec = x + (at + i) * BENCH_DIM;
            items[i].response = resp;
            items[i].response_len = BENCH_RESP_LEN;
            items[i].model = "gemini-2.5-flash";
        }
        sc_status_t st = sc_cache_insert_many(c, items, m, NULL);
        if (st)
            die("insert_many", st);
    }
    double s = (double)(sc_now_us() - t0) / 1e6;
    sc_cache_close(c);
    free(items);
    free(texts);
    return (double)n / s;
}

static double durable_inserts(const char *dir)
{
    sc_cache_opts_t o;
    double ms;
    bench_opts(&o, dir, "flat", 0);
    sc_cache_t *c = bench_open(&o, &ms);
    float *x = make_data(BENCH_DURABLE_INSERTS, 0);
    int64_t t0 = sc_now_us();
    for (int i = 0; i < BENCH_DURABLE_INSERTS; i++) {
        char t[32];
        int len = snprintf(t, sizeof(t), "durable %d", i);
        sc_cache_query_t q = {BENCH_SCOPE, "bench", t, (size_t)len, x + (size_t)i * BENCH_DIM};
        sc_status_t st = sc_cache_insert(c, &q, "answer", 6, "m", NULL, 0, NULL);
        if (st)
            die("insert", st);
    }
    double s = (double)(sc_now_us() - t0) / 1e6;
    sc_cache_close(c);
    free(x);
    return BENCH_DURABLE_INSERTS / s;
}

typedef struct {
    sc_cache_t *c;
    const float *qv;
    size_t from, to, done;
    int64_t deadline_us;
} bench_thr_t;

static void *thr_lookups(void *p)
{
    bench_thr_t *a = p;
    for (size_t i = a->from; i < a->to; i++) {
        sc_cache_query_t q = {BENCH_SCOPE, "bench", "a probe", 7, a->qv + i * BENCH_DIM};
        sc_cache_result_t r;
        if (sc_cache_lookup(a->c, &q, 1, &r) == SC_OK)
            free(r.response);
        a->done++;
        if (a->done >= BENCH_MIN_SINGLE && sc_now_us() > a->deadline_us)
            break;
    }
    return NULL;
}

typedef struct {
    double single_qps, p50_ms, p99_ms, thr2_qps, batch_qps;
    size_t single_n;
} bench_lat_t;

/* Batched lookups of all nq queries; top-1 entry ids into top (0: none). Returns lookups/s. */
static double batched(sc_cache_t *c, const float *qv, size_t nq, uint64_t *top)
{
    sc_cache_query_t q[BENCH_BATCH];
    sc_cache_result_t r[BENCH_BATCH];
    int64_t t0 = sc_now_us();
    for (size_t at = 0; at < nq; at += BENCH_BATCH) {
        size_t m = nq - at < BENCH_BATCH ? nq - at : BENCH_BATCH;
        for (size_t i = 0; i < m; i++) {
            q[i].scope = BENCH_SCOPE;
            q[i].tenant = "bench";
            q[i].text = "a probe";
            q[i].len = 7;
            q[i].vec = qv + (at + i) * BENCH_DIM;
        }
        sc_status_t st = sc_cache_lookup(c, q, m, r);
        if (st)
            die("lookup", st);
        for (size_t i = 0; i < m; i++) {
            top[at + i] = r[i].hit ? r[i].entry : 0;
            free(r[i].response);
        }
    }
    return (double)nq / ((double)(sc_now_us() - t0) / 1e6);
}

static void latencies(sc_cache_t *c, const float *qv, size_t nq, bench_lat_t *L)
{
    double *lat = malloc(nq * sizeof(double));
    size_t n = 0;
    int64_t start = sc_now_us(), deadline = start + BENCH_BUDGET_US;
    for (; n < nq; n++) {
        sc_cache_query_t q = {BENCH_SCOPE, "bench", "a probe", 7, qv + n * BENCH_DIM};
        sc_cache_result_t r;
        int64_t t0 = sc_now_us();
        if (sc_cache_lookup(c, &q, 1, &r))
            die("lookup", SC_ERR_IO);
        lat[n] = (double)(sc_now_us() - t0) / 1000.0;
        free(r.response);
        if (n + 1 >= BENCH_MIN_SINGLE && sc_now_us() > deadline) {
            n++;
            break;
        }
    }
    double total_s = (double)(sc_now_us() - start) / 1e6;
    qsort(lat, n, sizeof(double), dcmp);
    L->single_n = n;
    L->single_qps = (double)n / total_s;
    L->p50_ms = lat[n / 2];
    L->p99_ms = lat[(size_t)((double)(n - 1) * 0.99)];
    free(lat);

    pthread_t th[2];
    bench_thr_t a[2];
    start = sc_now_us();
    for (int t = 0; t < 2; t++) {
        a[t].c = c;
        a[t].qv = qv;
        a[t].from = t * (nq / 2);
        a[t].to = (t + 1) * (nq / 2);
        a[t].done = 0;
        a[t].deadline_us = start + BENCH_BUDGET_US;
        pthread_create(&th[t], NULL, thr_lookups, &a[t]);
    }
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    L->thr2_qps = (double)(a[0].done + a[1].done) / ((double)(sc_now_us() - start) / 1e6);
}

static char rows[BENCH_MAX_ROWS][BENCH_ROW_MAX];
static int nrows;
static char ins_rows[BENCH_MAX_ROWS][BENCH_ROW_MAX];
static int nins;
static char save_rows[BENCH_MAX_ROWS][BENCH_ROW_MAX];
static int nsave;

static void row(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void row(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (nrows < BENCH_MAX_ROWS)
        vsnprintf(rows[nrows++], BENCH_ROW_MAX, fmt, ap);
    va_end(ap);
    printf("%s\n", rows[nrows - 1]);
    fflush(stdout);
}

static int write_md(void);

static void rm_store(const char *dir)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/lock.mdb", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/index.scx", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/index.scx.tmp", dir);
    unlink(p);
    rmdir(dir);
}

static long long file_mib(const char *dir, const char *name)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long long mb = ftell(f) >> 20;
    fclose(f);
    return mb;
}

/* ---- the results file, rewritten after every row (a long run leaves what it measured) ---- */

typedef struct {
    const char *out;
    char cmd[BENCH_CMD_MAX];
    char gpu_note[256];
    int gpu_ok, done;
    double durable_per_s;
    char load0[64];
    int64_t t0_us;
} bench_md_t;

static bench_md_t md;

static void read_loadavg(char *buf, size_t len)
{
    buf[0] = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (!la)
        return;
    if (!fgets(buf, (int)len, la))
        buf[0] = 0;
    buf[strcspn(buf, "\n")] = 0;
    fclose(la);
}

static int write_md(void)
{
    const char *out = md.out, *cmd = md.cmd, *eb = md.gpu_note;
    const char *load0 = md.load0;
    int gpu_ok = md.gpu_ok;
    double dur = md.durable_per_s;
    double total_s = (double)(sc_now_us() - md.t0_us) / 1e6;
    char load1[64];
    read_loadavg(load1, sizeof(load1));
    struct utsname u;
    uname(&u);
    char cpu[256];
    sc_bench_cpu_model(cpu, sizeof(cpu));
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    FILE *f = fopen(out, "w");
    if (!f) {
        perror(out);
        return -1;
    }
    fprintf(f, "# Semantic cache benchmark\n\n");
    fprintf(f, "- machine: %s, %ld CPUs online, %s %s\n", cpu, sysconf(_SC_NPROCESSORS_ONLN),
            u.sysname, u.release);
    fprintf(f, "- date: %s\n- command: `%s`\n- run time: %.0f s%s\n", date, cmd, total_s,
            md.done ? "" : " (still running: rows so far)");
    fprintf(f, "- GPU: %s\n", gpu_ok ? "available (gpu-flat rows)" : eb);
    fprintf(f, "- /proc/loadavg at start: `%s`, at end: `%s` (other work shared the machine "
               "when the load exceeds the CPU count; the numbers are then lower bounds)\n\n",
            load0, load1);
    fprintf(f, "All entries in one scope, dim %d, vectors L2-normalised. *uniform*: uniform on the "
               "sphere; *clustered*: around random centroids (%d entries per centroid, noise %.1f). "
               "Queries: %d paraphrase-like vectors at cosine %.2f from a random stored entry "
               "(the cache-hit case). Guards off, threshold below every score, so each lookup "
               "returns its top-1 entry: recall@1 is agreement with flat on those queries; "
               "\"far recall\" is the same on %d uniform random queries that are near no entry "
               "(cache misses, where the top-1 never answers). HNSW: M=%d, efConstruction=%d, "
               "efSearch as in the index column; the graph is FAISS's, searched by "
               "host/cache/faiss_c_compat.cpp's loop (a half-precision copy of the vectors, prefetched, "
               "the best 2k scored again in float). IVF: nlist=min(1024, n/39), nprobe=16. "
               "Restart = "
               "sc_cache_open: LMDB open + reading every entry + the index, *built* from the "
               "store (no saved index) or loaded from the *saved index* (index.scx, written at "
               "the previous close); \"rebuild ms\" is the index part the cache reports (for "
               "a saved index: reading and checking it). Single lookups: one thread, each an "
               "exact-layer probe in "
               "LMDB, a search of the scope's partition and a record read; time-bounded at %d s "
               "(n = lookups measured). 2 threads: two threads of single lookups. Batch: %d "
               "queries per sc_cache_lookup call.\n\n",
            BENCH_DIM, BENCH_CLUSTER_SIZE, BENCH_CLUSTER_NOISE, BENCH_QUERIES, BENCH_QUERY_COS,
            BENCH_QUERIES, hnsw_m, hnsw_efc, BENCH_BUDGET_US / 1000000, BENCH_BATCH);
    if (vec_path)
        fprintf(f, "*embeddings*: the first rows of `%s` (%zu rows), real all-MiniLM-L6-v2 "
                   "embeddings of text (`scrimp embed --format f32`).\n\n",
                vec_path, vec_rows);
    fprintf(f, "| data | entries | index | restart ms | rebuild ms | single lookups/s | p50 ms | "
               "p99 ms | lookups/s, 2 threads | recall@1 | far recall@1 | batch-%d lookups/s |\n",
            BENCH_BATCH);
    fprintf(f, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < nrows; i++)
        fprintf(f, "%s\n", rows[i]);
    if (nsave) {
        fprintf(f, "\n## Restart with the saved index\n\nThe first open of an HNSW/IVF store "
                   "builds the index from the store; the close saves it (index.scx next to "
                   "data.mdb, stamped with the store's identity and index generation); the next "
                   "open loads it when the stamp matches. \"top-1 as before\": the %d recall "
                   "queries answered by the reloaded index, against the same queries before the "
                   "close (same efSearch).\n\n", BENCH_QUERIES);
        fprintf(f, "| data | entries | index | restart ms, index built | close ms (saves) | "
                   "index.scx MiB | restart ms, saved index | of which index ms | "
                   "top-1 as before |\n|---|---:|---|---:|---:|---:|---:|---:|---:|\n");
        for (int i = 0; i < nsave; i++)
            fprintf(f, "%s\n", save_rows[i]);
    }
    fprintf(f, "\n## Inserts\n\nDurable single inserts (one LMDB commit with fsync each): "
               "**%.0f/s**.\n\n", dur);
    fprintf(f, "| data | entries | bulk load entries/s (sc_cache_insert_many, %d per commit) | "
               "store MiB |\n|---|---:|---:|---:|\n", BENCH_CHUNK);
    for (int i = 0; i < nins; i++)
        fprintf(f, "%s\n", ins_rows[i]);
    fclose(f);
    return 0;
}

static size_t hnsw_max = 100000; /* HNSW rows up to this size (its 1M build takes long) */
static int kind_on[4] = {1, 1, 1, 1};   /* flat (always: the reference), hnsw, ivf, gpu-flat */

static void run_size(const char *base, size_t n, int kind, int gpu_ok)
{
    const char *data = data_names[kind];
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s-%zu", base, data, n);
    rm_store(dir);
    float *x = make_data(n, kind);
    float *qv = malloc((size_t)BENCH_QUERIES * BENCH_DIM * sizeof(float));
    float *far = malloc((size_t)BENCH_QUERIES * BENCH_DIM * sizeof(float));
    uint64_t *want = calloc(BENCH_QUERIES, sizeof(uint64_t));
    uint64_t *got = calloc(BENCH_QUERIES, sizeof(uint64_t));
    uint64_t *want_far = calloc(BENCH_QUERIES, sizeof(uint64_t));
    if (!x || !qv || !far || !want || !got || !want_far)
        die("data", SC_ERR_NOMEM);
    for (size_t i = 0; i < BENCH_QUERIES; i++)
        near_vec(x + (rng() % n) * BENCH_DIM, BENCH_QUERY_COS, qv + i * BENCH_DIM);
    rng_normals(far, (size_t)BENCH_QUERIES * BENCH_DIM);
    for (size_t i = 0; i < BENCH_QUERIES; i++)
        normalize(far + i * BENCH_DIM, BENCH_DIM);

    double ins = bulk_load(dir, x, n);
    free(x);
    long long mb = 0;
    {
        char p[600];
        snprintf(p, sizeof(p), "%s/data.mdb", dir);
        FILE *f = fopen(p, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            mb = ftell(f) >> 20;
            fclose(f);
        }
    }
    if (nins < BENCH_MAX_ROWS)
        snprintf(ins_rows[nins++], BENCH_ROW_MAX, "| %s | %zu | %.0f | %lld |", data, n, ins, mb);
    printf("bulk load %s %zu: %.0f entries/s, store %lld MiB\n", data, n, ins, mb);

    const char *kinds[] = {"flat", "hnsw", "ivf", "gpu-flat"};
    uint64_t *first = calloc(BENCH_QUERIES, sizeof(uint64_t));
    if (!first)
        die("data", SC_ERR_NOMEM);
    for (int k = 0; k < 4; k++) {
        if (k && !kind_on[k])
            continue;
        if (k == 1 && n > hnsw_max) {
            row("| %s | %zu | hnsw | not run (--hnsw-max %zu) |  |  |  |  |  |  |  |  |", data, n,
                hnsw_max);
            continue;
        }
        if (k == 3 && !gpu_ok) {
            row("| %s | %zu | gpu-flat | not measured here (no GPU) |  |  |  |  |  |  |  |  |", data, n);
            continue;
        }
        int ann = k == 1 || k == 2;
        size_t runs = k == 1 ? n_efs : 1;
        double built_ms = 0, close0_ms = 0;
        long long scx_mb = -1;
        if (ann) { /* the first open builds: no saved index of an earlier kind or run */
            char p[600];
            snprintf(p, sizeof(p), "%s/index.scx", dir);
            unlink(p);
        }
        for (size_t e = 0; e < runs; e++) {
            sc_cache_opts_t o;
            double open_ms;
            bench_opts(&o, dir, k == 3 ? "flat" : kinds[k], k == 3);
            o.hnsw_ef_search = hnsw_efs[e];
            sc_cache_t *c = bench_open(&o, &open_ms);
            sc_cache_stats_t s;
            sc_cache_stats(c, &s);
            bench_lat_t L;
            double bq = batched(c, qv, BENCH_QUERIES, k == 0 ? want : got);
            char recall[32] = "(reference)", recall_far[32] = "(reference)";
            if (k == 0) {
                batched(c, far, BENCH_QUERIES, want_far);
            } else {
                size_t same = 0;
                for (size_t i = 0; i < BENCH_QUERIES; i++)
                    same += want[i] == got[i];
                snprintf(recall, sizeof(recall), "%.3f", (double)same / BENCH_QUERIES);
                if (e == 0)
                    memcpy(first, got, BENCH_QUERIES * sizeof(uint64_t));
                batched(c, far, BENCH_QUERIES, got);
                same = 0;
                for (size_t i = 0; i < BENCH_QUERIES; i++)
                    same += want_far[i] == got[i];
                snprintf(recall_far, sizeof(recall_far), "%.3f", (double)same / BENCH_QUERIES);
            }
            latencies(c, qv, BENCH_QUERIES, &L);
            char label[64];
            if (k == 1)
                snprintf(label, sizeof(label), "hnsw (efSearch %d, %s)", hnsw_efs[e],
                         s.index_loaded ? "saved index" : "built");
            else if (k == 2)
                snprintf(label, sizeof(label), "ivf (%s)", s.index_loaded ? "saved index" : "built");
            else
                snprintf(label, sizeof(label), "%s", kinds[k]);
            row("| %s | %zu | %s | %.0f | %.0f | %.0f (n=%zu) | %.2f | %.2f | %.0f | %s | %s |", data,
                n, label, open_ms, s.rebuild_ms, L.single_qps, L.single_n, L.p50_ms, L.p99_ms,
                L.thr2_qps, recall, recall_far);
            /* batched column is kept apart so the table stays readable */
            printf("  batch-%d lookups/s: %.0f\n", BENCH_BATCH, bq);
            if (nrows < BENCH_MAX_ROWS) {
                char *last = rows[nrows - 1];
                size_t len = strlen(last);
                snprintf(last + len, BENCH_ROW_MAX - len, " %.0f |", bq);
            }
            int64_t tc = sc_now_us();
            sc_cache_close(c);
            if (e == 0) {
                built_ms = open_ms;
                close0_ms = (double)(sc_now_us() - tc) / 1000.0;
                scx_mb = file_mib(dir, "index.scx");
            }
            write_md();
        }
        if (!ann)
            continue;
        /* restart with the saved index, at the first efSearch: the same answers as before */
        sc_cache_opts_t o;
        double open_ms;
        bench_opts(&o, dir, kinds[k], 0);
        sc_cache_t *c = bench_open(&o, &open_ms);
        sc_cache_stats_t s;
        sc_cache_stats(c, &s);
        batched(c, qv, BENCH_QUERIES, got);
        size_t same = 0;
        for (size_t i = 0; i < BENCH_QUERIES; i++)
            same += first[i] == got[i];
        sc_cache_close(c);
        char label[64];
        if (k == 1)
            snprintf(label, sizeof(label), "hnsw (efSearch %d)", hnsw_efs[0]);
        else
            snprintf(label, sizeof(label), "ivf");
        if (nsave < BENCH_MAX_ROWS)
            snprintf(save_rows[nsave++], BENCH_ROW_MAX,
                     "| %s | %zu | %s | %.0f | %.0f | %lld | %.0f%s | %.0f | %zu/%d |", data, n,
                     label, built_ms, close0_ms, scx_mb, open_ms,
                     s.index_loaded ? "" : " (not loaded!)", s.rebuild_ms, same, BENCH_QUERIES);
        printf("%s\n", save_rows[nsave - 1]);
        write_md();
    }
    free(first);
    rm_store(dir);
    free(qv);
    free(far);
    free(want);
    free(got);
    free(want_far);
}

int main(int argc, char **argv)
{
    size_t sizes[BENCH_MAX_SIZES] = {10000, 100000, 1000000};
    size_t nsizes = 3;
    size_t clustered_max = 100000;     /* the clustered set at sizes up to this */
    size_t uniform_max = (size_t)-1;   /* the uniform set at sizes up to this */
    const char *base = "/tmp/scrimp-bench-cache";
    md.out = "bench/results/cache.md";
    for (int i = 0; i < argc; i++) {
        size_t len = strlen(md.cmd);
        snprintf(md.cmd + len, sizeof(md.cmd) - len, "%s%s", i ? " " : "", argv[i]);
    }
    for (int i = 1; i < argc; i++) {
        int nums[BENCH_MAX_SIZES], nl;
        if (!strcmp(argv[i], "--sizes") && i + 1 < argc &&
            (nl = sc_bench_parse_list(argv[i + 1], nums, BENCH_MAX_SIZES)) > 0) {
            i++;
            for (nsizes = 0; nsizes < (size_t)nl; nsizes++)
                sizes[nsizes] = (size_t)nums[nsizes];
        } else if (!strcmp(argv[i], "--clustered-max") && i + 1 < argc) {
            clustered_max = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--uniform-max") && i + 1 < argc) {
            uniform_max = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--hnsw-max") && i + 1 < argc) {
            hnsw_max = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--hnsw-m") && i + 1 < argc) {
            hnsw_m = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--hnsw-efc") && i + 1 < argc) {
            hnsw_efc = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--hnsw-ef") && i + 1 < argc &&
                   (nl = sc_bench_parse_list(argv[i + 1], hnsw_efs, BENCH_MAX_EF)) > 0) {
            i++;
            n_efs = (size_t)nl;
        } else if (!strcmp(argv[i], "--kinds") && i + 1 < argc) {
            const char *names[] = {"flat", "hnsw", "ivf", "gpu-flat"};
            char *list = argv[++i];
            for (int k = 1; k < 4; k++) {
                const char *at = strstr(list, names[k]);
                size_t len = strlen(names[k]);
                kind_on[k] = 0;
                while (at) { /* a whole item of the comma list */
                    if ((at == list || at[-1] == ',') && (at[len] == ',' || at[len] == '\0')) {
                        kind_on[k] = 1;
                        break;
                    }
                    at = strstr(at + 1, names[k]);
                }
            }
        } else if (!strcmp(argv[i], "--vectors") && i + 1 < argc) {
            vec_path = argv[++i];
            FILE *f = fopen(vec_path, "rb");
            if (!f) {
                fprintf(stderr, "bench_cache: %s: %s\n", vec_path, strerror(errno));
                return 2;
            }
            long size = fseek(f, 0, SEEK_END) ? -1 : ftell(f);
            fclose(f);
            if (size <= 0 || size % (long)(sizeof(float) * BENCH_DIM)) {
                fprintf(stderr, "bench_cache: %s: not raw float32 rows of %d (scrimp embed "
                                "--format f32)\n", vec_path, BENCH_DIM);
                return 2;
            }
            vec_rows = (size_t)size / (sizeof(float) * BENCH_DIM);
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            md.out = argv[++i];
        } else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
            base = argv[++i];
        } else {
            fprintf(stderr,
                    "usage: bench_cache [--sizes 10000,100000,1000000] [--uniform-max N] "
                    "[--clustered-max N] [--kinds flat,hnsw,ivf,gpu-flat] [--hnsw-max N]\n"
                    "                   [--hnsw-m M] [--hnsw-efc EF] [--hnsw-ef EF1,EF2,...] "
                    "[--vectors FILE.f32] [--out FILE] [--dir DIR]\n"
                    "  flat always runs (the recall reference); --hnsw-ef: one HNSW row per "
                    "efSearch, the first built, the others from the saved index;\n"
                    "  --vectors: real embeddings (scrimp embed --format f32) as a third data "
                    "set, at the sizes it holds\n");
            return 2;
        }
    }
    sc_log_set_level(SC_LOG_WARN);
    int gpu_ok = sc_gpu_flat_available(md.gpu_note, sizeof(md.gpu_note));
    md.gpu_ok = gpu_ok;
    char mk[600];
    snprintf(mk, sizeof(mk), "mkdir -p %s", base);
    if (system(mk) != 0)
        return 1;

    char dur_dir[512];
    snprintf(dur_dir, sizeof(dur_dir), "%s/durable", base);
    rm_store(dur_dir);
    read_loadavg(md.load0, sizeof(md.load0));
    md.t0_us = sc_now_us();
    md.durable_per_s = durable_inserts(dur_dir);
    rm_store(dur_dir);
    printf("durable single inserts: %.0f/s\n", md.durable_per_s);
    for (size_t i = 0; i < nsizes; i++) {
        if (sizes[i] <= uniform_max)
            run_size(base, sizes[i], DATA_UNIFORM, gpu_ok);
        if (sizes[i] <= clustered_max)
            run_size(base, sizes[i], DATA_CLUSTERED, gpu_ok);
        if (vec_path && sizes[i] <= vec_rows)
            run_size(base, sizes[i], DATA_FILE, gpu_ok);
        else if (vec_path)
            row("| embeddings | %zu | not run (%s holds %zu rows) |  |  |  |  |  |  |  |  |  |",
                sizes[i], vec_path, vec_rows);
    }
    md.done = 1;
    if (write_md())
        return 1;
    printf("wrote %s (%.0f s)\n", md.out, (double)(sc_now_us() - md.t0_us) / 1e6);
    return 0;
}
