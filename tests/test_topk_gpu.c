/* test_topk_gpu.c - the scoped top-k kernel (kernels/topk_ip.cu) against its twin sc_topk_ip_cpu,
 * exactly, and the GPU flat index (host/cache/gpu_flat.c) against a brute-force CPU search, through
 * add / search / remove / slot reuse, with a tolerance for fp16 near-ties. Plain C (no cmocka): it
 * builds on a bare GPU machine. Exit 0 all pass, 1 any fail, 77 no CUDA device. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "host/cache/gpu_flat.h"
#include "host/ops/ops_cpu.h"
#include "kernels/kernels.h"
#include "tests/gpu_test_util.h"

#define SKIP 77
/* fp16 rounding of a unit query and a unit vector moves their inner product by at most about
 * 2·2^-11·|q||v| ≈ 1e-3; two such errors separate a GPU rank from the exact one. */
#define FLAT_TOL 2.5e-3
#define ID_BASE  1000000 /* ids of the flat test: ID_BASE + reference row */

#define SK(call)                                                                                   \
    do {                                                                                           \
        sc_status_t sk_st_ = (call);                                                               \
        if (sk_st_ != SC_OK) {                                                                     \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, sc_strerror(sk_st_));    \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int failures;

static void expect(int ok, const char *what)
{
    printf("%-60s %s\n", what, ok ? "pass" : "FAIL");
    if (!ok)
        failures++;
}

static float rng_normal(void)
{
    const float u = rng_uniform(1e-7f, 1.f), v = rng_uniform(0.f, 1.f);
    return sqrtf(-2.f * logf(u)) * cosf(6.2831853f * v);
}

static void *to_dev(const void *src, size_t bytes)
{
    void *d = NULL;
    CK(cudaMalloc(&d, bytes ? bytes : 1));
    if (bytes)
        CK(cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice));
    return d;
}

/* ---- the kernel against its twin ----
 * dim 2: a product of two floats is exact in double, so the score matrix computed here and the
 * twin's scores are the same floats whatever the compiler contracts, and the comparison can be
 * exact (ranks, ties and all). */

static void test_kernel(const char *name, int nq, int n, int k, int distinct, int rare_scope)
{
    const int dim = 2;
    float *qv = xmalloc((size_t)nq * dim * sizeof *qv);
    float *base = xmalloc((size_t)n * dim * sizeof *base);
    float *proto = xmalloc((size_t)(distinct > 0 ? distinct : 1) * dim * sizeof *proto);
    uint64_t *qs = xmalloc((size_t)nq * sizeof *qs), *bs = xmalloc((size_t)n * sizeof *bs);
    for (int i = 0; i < nq * dim; i++)
        qv[i] = rng_uniform(-1.f, 1.f);
    for (int i = 0; i < distinct * dim; i++)
        proto[i] = rng_uniform(-1.f, 1.f);
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < dim; d++)
            base[i * dim + d] = distinct > 0
                                    ? proto[(int)(rng_u32() % (uint32_t)distinct) * dim + d]
                                    : rng_uniform(-1.f, 1.f);
        bs[i] = 1 + rng_u32() % 3;
    }
    if (rare_scope) /* scope 7: fewer members than k */
        for (int i = 0; i < n && i < 3 * 37; i += 37)
            bs[i] = 7;
    for (int q = 0; q < nq; q++)
        qs[q] = q % 6 == 4 ? 7 : q % 6 == 5 ? 99 : 1 + (uint64_t)(q % 3); /* 99: no member */

    float *scores = xmalloc((size_t)nq * (size_t)n * sizeof *scores);
    for (int q = 0; q < nq; q++)
        for (int i = 0; i < n; i++)
            scores[(size_t)q * (size_t)n + (size_t)i] =
                (float)((double)qv[q * dim] * (double)base[i * dim] +
                        (double)qv[q * dim + 1] * (double)base[i * dim + 1]);

    const size_t nk = (size_t)nq * (size_t)k;
    float *ref_s = xmalloc(nk * sizeof *ref_s), *got_s = xmalloc(nk * sizeof *got_s);
    int64_t *ref_i = xmalloc(nk * sizeof *ref_i), *got_i = xmalloc(nk * sizeof *got_i);
    sc_topk_ip_cpu(qv, qs, nq, base, bs, n, dim, k, ref_s, ref_i);

    float *d_scores = to_dev(scores, (size_t)nq * (size_t)n * sizeof *scores);
    uint64_t *d_qs = to_dev(qs, (size_t)nq * sizeof *qs),
             *d_bs = to_dev(bs, (size_t)n * sizeof *bs);
    float *d_os = NULL;
    int64_t *d_oi = NULL;
    CK(cudaMalloc((void **)&d_os, nk * sizeof(float)));
    CK(cudaMalloc((void **)&d_oi, nk * sizeof(int64_t)));
    CK(cudaMemset(d_os, 0x7f, nk * sizeof(float))); /* garbage: every slot must be written */
    CK(cudaMemset(d_oi, 0x7f, nk * sizeof(int64_t)));
    CK(sc_topk_ip(d_scores, d_qs, d_bs, nq, n, k, d_os, d_oi, 0));
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(got_s, d_os, nk * sizeof(float), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(got_i, d_oi, nk * sizeof(int64_t), cudaMemcpyDeviceToHost));

    size_t bad = 0, first = 0, filled = 0;
    double max_err = 0.0;
    for (size_t i = 0; i < nk; i++) {
        const int same_s = got_s[i] == ref_s[i] ||
                           (isinf(got_s[i]) && isinf(ref_s[i]) && got_s[i] < 0 && ref_s[i] < 0);
        if (ref_i[i] >= 0) {
            filled++;
            const double e = fabs((double)got_s[i] - (double)ref_s[i]);
            max_err = e > max_err || e != e ? e : max_err;
        }
        if (got_i[i] != ref_i[i] || !same_s) {
            if (!bad)
                first = i;
            bad++;
        }
    }
    printf("topk_ip %-24s nq=%-4d n=%-7d k=%-2d filled %zu/%zu max_abs_err=%g  %s\n", name, nq, n,
           k, filled, nk, max_err, bad ? "FAIL" : "pass");
    if (bad) {
        printf("    %zu bad, first (query %zu rank %zu): gpu (%.9g, %lld) ref (%.9g, %lld)\n", bad,
               first / (size_t)k, first % (size_t)k, (double)got_s[first], (long long)got_i[first],
               (double)ref_s[first], (long long)ref_i[first]);
        failures++;
    }

    CK(cudaFree(d_scores));
    CK(cudaFree(d_qs));
    CK(cudaFree(d_bs));
    CK(cudaFree(d_os));
    CK(cudaFree(d_oi));
    free(qv);
    free(base);
    free(proto);
    free(qs);
    free(bs);
    free(scores);
    free(ref_s);
    free(got_s);
    free(ref_i);
    free(got_i);
}

/* ---- the flat index against a brute force ---- */

typedef struct {
    int dim;
    size_t n, cap;   /* reference rows (removed ones keep their row, scope 0) */
    float *vecs;     /* [cap, dim] */
    uint64_t *scope; /* [cap] */
} ref_t;

static void unit_vec(float *v, int dim, const float *near, float noise)
{
    double sq = 0.0;
    for (int d = 0; d < dim; d++) {
        v[d] = (near ? near[d] : 0.f) + noise * rng_normal();
        sq += (double)v[d] * v[d];
    }
    const float inv = (float)(1.0 / sqrt(sq));
    for (int d = 0; d < dim; d++)
        v[d] *= inv;
}

static double dot(const float *a, const float *b, int dim)
{
    double acc = 0.0;
    for (int d = 0; d < dim; d++)
        acc += (double)a[d] * (double)b[d];
    return acc;
}

/* Adds n new random vectors with scopes drawn from 1..5 (plus 3 in scope 42 on the first call). */
static void flat_add(sc_gpu_flat_t *f, ref_t *r, size_t n, int rare)
{
    const size_t r0 = r->n, D = (size_t)r->dim;
    int64_t *ids = xmalloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        unit_vec(r->vecs + (r0 + i) * D, r->dim, NULL, 1.f);
        r->scope[r0 + i] = rare && i % 1000 == 500 && i < 3000 ? 42 : 1 + rng_u32() % 5;
        ids[i] = ID_BASE + (int64_t)(r0 + i);
    }
    SK(sc_gpu_flat_add(f, n, r->vecs + r0 * D, ids, r->scope + r0));
    r->n += n;
    free(ids);
}

/* nq queries: half near a live reference row (a clear best), half random; scopes of live rows,
 * scope 42 (3 members) and 1000 (none) mixed in. */
static void make_queries(const ref_t *r, size_t nq, float *qv, uint64_t *qs)
{
    for (size_t q = 0; q < nq; q++) {
        float *v = qv + q * (size_t)r->dim;
        if (q % 2 == 0) {
            size_t row;
            do
                row = rng_u32() % r->n;
            while (r->scope[row] == 0);
            unit_vec(v, r->dim, r->vecs + row * (size_t)r->dim, 0.05f);
            qs[q] = r->scope[row];
        } else {
            unit_vec(v, r->dim, NULL, 1.f);
            qs[q] = q % 7 == 1 ? 42 : q % 7 == 3 ? 1000 : 1 + rng_u32() % 5;
        }
    }
}

static void flat_check(const char *name, sc_gpu_flat_t *f, const ref_t *r, size_t nq, int k)
{
    const int dim = r->dim;
    const size_t K = (size_t)k, D = (size_t)dim;
    float *qv = xmalloc(nq * D * sizeof *qv);
    uint64_t *qs = xmalloc(nq * sizeof *qs);
    make_queries(r, nq, qv, qs);
    float *got_s = xmalloc(nq * K * sizeof *got_s), *ref_s = xmalloc(nq * K * sizeof *ref_s);
    int64_t *got_i = xmalloc(nq * K * sizeof *got_i), *ref_i = xmalloc(nq * K * sizeof *ref_i);
    SK(sc_gpu_flat_search(f, nq, qv, qs, k, got_s, got_i));
    sc_topk_ip_cpu(qv, qs, (int)nq, r->vecs, r->scope, (int)r->n, dim, k, ref_s, ref_i);

    size_t top1_exact = 0, top1_tie = 0, with_match = 0, bad = 0;
    double max_score_err = 0.0, max_rank_err = 0.0;
    for (size_t q = 0; q < nq; q++) {
        const float *gs = got_s + q * K, *rs = ref_s + q * K;
        const int64_t *gi = got_i + q * K, *ri = ref_i + q * K;
        int ok = 1;
        for (size_t j = 0; j < K; j++) {
            if ((gi[j] < 0) != (ri[j] < 0)) { /* the number of matches must agree */
                ok = 0;
                continue;
            }
            if (gi[j] < 0) {
                ok &= isinf(gs[j]) && gs[j] < 0;
                continue;
            }
            const int64_t row = gi[j] - ID_BASE;
            if (row < 0 || (size_t)row >= r->n || r->scope[row] != qs[q]) {
                ok = 0; /* unknown id, removed entry or another scope */
                continue;
            }
            for (size_t j2 = 0; j2 < j; j2++)
                ok &= gi[j2] != gi[j];
            const double exact = dot(qv + q * D, r->vecs + (size_t)row * D, dim);
            const double se = fabs((double)gs[j] - exact);
            const double re = fabs(exact - (double)rs[j]);
            max_score_err = se > max_score_err ? se : max_score_err;
            max_rank_err = re > max_rank_err ? re : max_rank_err;
            ok &= se <= FLAT_TOL && re <= FLAT_TOL;
        }
        if (ri[0] >= 0) {
            with_match++;
            if (gi[0] == ID_BASE + ri[0])
                top1_exact++;
            else if (gi[0] >= 0 && dot(qv + q * D, r->vecs + (size_t)(gi[0] - ID_BASE) * D, dim) >=
                                       (double)rs[0] - FLAT_TOL)
                top1_tie++;
            else
                ok = 0;
        }
        if (!ok && bad++ == 0)
            printf("    first bad query %zu (scope %llu): gpu top (%.6f, %lld) ref (%.6f, %lld)\n",
                   q, (unsigned long long)qs[q], (double)gs[0], (long long)gi[0], (double)rs[0],
                   (long long)(ri[0] >= 0 ? ID_BASE + ri[0] : -1));
    }
    printf("gpu_flat %-28s nq=%-4zu k=%-2d size=%-6zu recall@1 %zu/%zu (+%zu ties) "
           "max_score_err=%.2g max_rank_err=%.2g  %s\n",
           name, nq, k, sc_gpu_flat_size(f), top1_exact, with_match, top1_tie, max_score_err,
           max_rank_err, bad ? "FAIL" : "pass");
    if (bad) {
        printf("    %zu bad queries\n", bad);
        failures++;
    }
    free(qv);
    free(qs);
    free(got_s);
    free(ref_s);
    free(got_i);
    free(ref_i);
}

static void test_flat(void)
{
    enum { DIM = 64 };
    const size_t capacity = 80000; /* two tiles of the search */
    char err[512] = "";
    sc_gpu_flat_t *f = NULL;
    if (sc_gpu_flat_new(DIM, capacity, &f, err, sizeof err) != SC_OK) {
        printf("sc_gpu_flat_new: %s\n", err);
        failures++;
        return;
    }
    ref_t r = {.dim = DIM, .n = 0, .cap = capacity + 10000};
    r.vecs = xmalloc(r.cap * DIM * sizeof *r.vecs);
    r.scope = xmalloc(r.cap * sizeof *r.scope);

    /* empty index: nothing anywhere, and no device work */
    {
        float q[DIM], s[4];
        int64_t id[4];
        uint64_t qs = 1;
        unit_vec(q, DIM, NULL, 1.f);
        SK(sc_gpu_flat_search(f, 1, q, &qs, 4, s, id));
        expect(id[0] == -1 && id[3] == -1 && isinf(s[0]), "gpu_flat empty index: no results");
    }

    flat_add(f, &r, 30000, 1);
    flat_add(f, &r, 40000, 0);
    expect(sc_gpu_flat_size(f) == 70000, "gpu_flat size after two adds");
    flat_check("two tiles, 2 query batches", f, &r, 300, 10);
    flat_check("k = 1", f, &r, 40, 1);
    flat_check("k = 32", f, &r, 40, 32);

    /* remove 3000 (every 10th of the first 30000), then again: not found */
    int removed_ok = 1;
    for (size_t row = 0; row < 30000; row += 10) {
        removed_ok &= sc_gpu_flat_remove(f, ID_BASE + (int64_t)row) == SC_OK;
        r.scope[row] = 0; /* the brute force never sees it again: no query has scope 0 */
    }
    expect(removed_ok && sc_gpu_flat_size(f) == 67000, "gpu_flat remove 3000");
    expect(sc_gpu_flat_remove(f, ID_BASE) == SC_ERR_NOT_FOUND, "gpu_flat remove twice: not found");
    expect(sc_gpu_flat_remove(f, 42) == SC_ERR_NOT_FOUND, "gpu_flat remove unknown: not found");
    flat_check("after removals", f, &r, 300, 10);

    /* 5000 more: 3000 into the freed slots, 2000 at the end */
    flat_add(f, &r, 5000, 0);
    expect(sc_gpu_flat_size(f) == 72000, "gpu_flat size after reuse");
    flat_check("after slot reuse", f, &r, 300, 10);

    /* contracts */
    {
        const size_t over = capacity - sc_gpu_flat_size(f) + 1;
        float *v = xmalloc(over * DIM * sizeof *v);
        int64_t *ids = xmalloc(over * sizeof *ids);
        uint64_t *sc = xmalloc(over * sizeof *sc);
        for (size_t i = 0; i < over; i++) {
            unit_vec(v + i * DIM, DIM, NULL, 1.f);
            ids[i] = -2 - (int64_t)i;
            sc[i] = 1;
        }
        expect(sc_gpu_flat_add(f, over, v, ids, sc) == SC_ERR_FULL && sc_gpu_flat_size(f) == 72000,
               "gpu_flat add beyond capacity: SC_ERR_FULL, nothing added");
        sc[0] = SC_GPU_FLAT_FREE_SCOPE;
        expect(sc_gpu_flat_add(f, 1, v, ids, sc) == SC_ERR_INVALID_ARG,
               "gpu_flat add with the reserved scope: invalid");
        float s[SC_GPU_FLAT_MAX_K + 1];
        int64_t id[SC_GPU_FLAT_MAX_K + 1];
        expect(sc_gpu_flat_search(f, 1, v, sc, 1, s, id) == SC_ERR_INVALID_ARG,
               "gpu_flat search with the reserved scope: invalid");
        sc[0] = 1;
        expect(sc_gpu_flat_search(f, 1, v, sc, SC_GPU_FLAT_MAX_K + 1, s, id) == SC_ERR_INVALID_ARG,
               "gpu_flat search with k > max: invalid");
        free(v);
        free(ids);
        free(sc);
    }
    /* a failed call changed nothing */
    flat_check("after the refused calls", f, &r, 40, 5);

    sc_gpu_flat_free(f);
    free(r.vecs);
    free(r.scope);
}

int main(void)
{
    char err[512] = "";
    if (!sc_gpu_flat_available(err, sizeof err)) {
        printf("test_topk_gpu: skipped, no CUDA device (%s)\n", err);
        return SKIP;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("test_topk_gpu on %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);

    test_kernel("random, rare + empty scope", 48, 5000, 10, 0, 1);
    test_kernel("ties (6 distinct rows)", 24, 3000, 32, 6, 1);
    test_kernel("n < threads", 12, 50, 32, 0, 1);
    test_kernel("k = 1", 24, 4099, 1, 0, 0);
    test_kernel("wide row", 12, 100003, 32, 0, 1);
    test_kernel("empty base", 6, 0, 4, 0, 0);

    test_flat();

    printf("test_topk_gpu: %s\n", failures ? "FAIL" : "all pass");
    return failures ? 1 : 0;
}
