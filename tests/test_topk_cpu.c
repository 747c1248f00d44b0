/* test_topk_cpu.c - sc_topk_ip_cpu (the twin of kernels/topk_ip.cu) against a brute force: score
 * every row of the query's scope, sort by (score desc, row asc), keep k. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "host/ops/ops_cpu.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* Uniform in [-1, 1): a fixed xorshift, so a failure reproduces. */
static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

typedef struct {
    float s;
    int64_t i;
} cand_t;

static int cand_cmp(const void *a, const void *b)
{
    const cand_t *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return x->i < y->i ? -1 : (x->i > y->i);
}

/* Checks the twin on one case; returns how many (query, rank) had a real match. */
static int check_case(const float *qv, const uint64_t *qs, int nq, const float *base,
                      const uint64_t *bs, int n, int dim, int k)
{
    float *got_s = malloc((size_t)(nq * k) * sizeof *got_s);
    int64_t *got_i = malloc((size_t)(nq * k) * sizeof *got_i);
    cand_t *c = malloc((size_t)(n > 0 ? n : 1) * sizeof *c);
    assert_non_null(got_s);
    assert_non_null(got_i);
    assert_non_null(c);
    sc_topk_ip_cpu(qv, qs, nq, base, bs, n, dim, k, got_s, got_i);
    int real = 0;
    for (int q = 0; q < nq; q++) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (bs[i] != qs[q])
                continue;
            double acc = 0.0;
            for (int d = 0; d < dim; d++)
                acc += (double)qv[(size_t)q * (size_t)dim + (size_t)d] *
                       (double)base[(size_t)i * (size_t)dim + (size_t)d];
            c[m].s = (float)acc;
            c[m].i = i;
            m++;
        }
        qsort(c, (size_t)m, sizeof *c, cand_cmp);
        for (int r = 0; r < k; r++) {
            const size_t at = (size_t)q * (size_t)k + (size_t)r;
            if (r < m) {
                if (got_i[at] != c[r].i || got_s[at] != c[r].s)
                    fail_msg("query %d rank %d: got (%.9g, %lld), want (%.9g, %lld)", q, r,
                             (double)got_s[at], (long long)got_i[at], (double)c[r].s,
                             (long long)c[r].i);
                real++;
            } else {
                assert_int_equal(got_i[at], -1);
                assert_true(isinf(got_s[at]) && got_s[at] < 0);
            }
        }
    }
    free(got_s);
    free(got_i);
    free(c);
    return real;
}

static float *rand_vecs(int n, int dim)
{
    float *v = malloc((size_t)(n > 0 ? n : 1) * (size_t)dim * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < (size_t)n * (size_t)dim; i++)
        v[i] = frand();
    return v;
}

/* Several scopes; one with fewer members than k; a query scope with no member at all. */
static void test_scopes(void **state)
{
    (void)state;
    enum { N = 700, NQ = 24, DIM = 16, K = 8 };
    float *base = rand_vecs(N, DIM), *qv = rand_vecs(NQ, DIM);
    uint64_t bs[N], qs[NQ];
    for (int i = 0; i < N; i++)
        bs[i] = 1 + (uint64_t)(i % 3);
    bs[10] = bs[400] = bs[699] = 7; /* scope 7: 3 members < K */
    for (int q = 0; q < NQ; q++)
        qs[q] = q % 5 == 3 ? 7 : q % 5 == 4 ? 99 : 1 + (uint64_t)(q % 3); /* 99: none */
    int real = check_case(qv, qs, NQ, base, bs, N, DIM, K);
    assert_true(real > 0 && real < NQ * K);
    printf("  scopes: %d of %d ranks filled\n", real, NQ * K);
    free(base);
    free(qv);
}

/* Many rows share a vector: equal scores must come back by increasing row. */
static void test_ties(void **state)
{
    (void)state;
    enum { N = 300, NQ = 8, DIM = 8, K = 32, DISTINCT = 4 };
    float *proto = rand_vecs(DISTINCT, DIM), *qv = rand_vecs(NQ, DIM);
    float *base = malloc((size_t)N * DIM * sizeof *base);
    assert_non_null(base);
    uint64_t bs[N], qs[NQ];
    for (int i = 0; i < N; i++) {
        for (int d = 0; d < DIM; d++)
            base[i * DIM + d] = proto[(i * 7 % DISTINCT) * DIM + d];
        bs[i] = 5 + (uint64_t)(i % 2);
    }
    for (int q = 0; q < NQ; q++)
        qs[q] = 5 + (uint64_t)(q % 2);
    assert_int_equal(check_case(qv, qs, NQ, base, bs, N, DIM, K), NQ * K);
    /* spot check of the rule itself: rank 0 and 1 have one score, the lower row first */
    float s[K];
    int64_t ix[K];
    sc_topk_ip_cpu(qv, qs, 1, base, bs, N, DIM, K, s, ix);
    assert_true(s[0] == s[1] && ix[0] < ix[1]);
    free(proto);
    free(qv);
    free(base);
}

/* k = 1, k above every scope's size, and an empty base. */
static void test_edges(void **state)
{
    (void)state;
    enum { N = 50, NQ = 6, DIM = 4 };
    float *base = rand_vecs(N, DIM), *qv = rand_vecs(NQ, DIM);
    uint64_t bs[N], qs[NQ];
    for (int i = 0; i < N; i++)
        bs[i] = 1 + (uint64_t)(i % 4);
    for (int q = 0; q < NQ; q++)
        qs[q] = 1 + (uint64_t)(q % 4);
    assert_int_equal(check_case(qv, qs, NQ, base, bs, N, DIM, 1), NQ);
    /* 12 or 13 members per scope, k = 32 */
    int real = check_case(qv, qs, NQ, base, bs, N, DIM, 32);
    assert_true(real >= NQ * 12 && real <= NQ * 13);
    assert_int_equal(check_case(qv, qs, NQ, base, bs, 0, DIM, 4), 0);
    free(base);
    free(qv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
