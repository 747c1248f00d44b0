/* test_tokens.c - the local token estimate, its per-model online calibration and error report. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host/core/tokens.h"

static const char prose[] =
    "The customer asked whether the replacement router would arrive before Friday, and the "
    "agent confirmed that the courier had already collected it from the warehouse in Utrecht.";

static void test_base_estimate(void **state)
{
    (void)state;
    assert_int_equal(sc_tokens_base("", 0), 0);
    assert_int_equal(sc_tokens_base(NULL, 0), 0);
    assert_int_equal(sc_tokens_base("hi", 2), 1);
    assert_int_equal(sc_tokens_base("hello world", 11), 2);
    /* every digit is a token, punctuation too */
    assert_int_equal(sc_tokens_base("12345", 5), 5);
    assert_int_equal(sc_tokens_base("a, b.", 5), 4);
    /* a long word costs more than a short one */
    assert_true(sc_tokens_base("internationalisation", 20) > sc_tokens_base("nation", 6));
    /* English prose: within 1 and 1.6 tokens per word (Gemini is about 1.3) */
    long words = 1;
    for (const char *p = prose; *p; p++)
        words += *p == ' ';
    long est = sc_tokens_base(prose, strlen(prose));
    assert_true(est >= words && est <= words * 16 / 10);
    /* CJK: a token per character */
    assert_int_equal(sc_tokens_base("\xe4\xbd\xa0\xe5\xa5\xbd", 6), 2);
}

static void test_uncalibrated(void **state)
{
    (void)state;
    sc_tokens_t *t = sc_tokens_new();
    assert_non_null(t);
    long base = sc_tokens_base(prose, strlen(prose));
    assert_int_equal(sc_tokens_estimate(t, "gemini-2.5-flash", prose, strlen(prose)), base);
    assert_int_equal(sc_tokens_estimate(NULL, "x", prose, strlen(prose)), base);
    assert_true(fabs(sc_tokens_factor(t, "never-seen") - 1.0) < 1e-12);
    double err = -1;
    long n = -1;
    sc_tokens_error(t, "never-seen", &err, &n);
    assert_true(err == 0.0);
    assert_int_equal(n, 0);
    sc_tokens_free(t);
    sc_tokens_free(NULL);
}

/* A model whose true count is 1.37 × the base, with ±5% noise: the factor converges near 1.37
 * and the reported error falls from ~27% to the noise level. Another model is untouched. */
static void test_calibration_converges(void **state)
{
    (void)state;
    sc_tokens_t *t = sc_tokens_new();
    const double truth = 1.37;
    unsigned seed = 7;
    double first_err = 0.0;

    for (int i = 0; i < 400; i++) {
        size_t len = 40 + (size_t)(i * 37 % (sizeof(prose) - 41));
        long est = sc_tokens_estimate(t, "m-flash", prose, len);
        long base = sc_tokens_base(prose, len);
        seed = seed * 1103515245u + 12345u;
        double noise = 1.0 + 0.05 * (((double)(seed >> 8 & 0xffff) / 65535.0) * 2.0 - 1.0);
        long actual = (long)llround((double)base * truth * noise * 10.0); /* ×10: resolution */
        est *= 10;
        sc_tokens_observe(t, "m-flash", est, actual);
        if (i == 0)
            sc_tokens_error(t, "m-flash", &first_err, NULL);
    }
    double f = sc_tokens_factor(t, "m-flash");
    assert_true(fabs(f - truth) < 0.05);
    double err;
    long n;
    sc_tokens_error(t, "m-flash", &err, &n);
    assert_int_equal(n, 400);
    assert_true(first_err > 0.2);
    assert_true(err < 0.06);
    /* the estimate now applies the factor */
    long base = sc_tokens_base(prose, strlen(prose));
    long est = sc_tokens_estimate(t, "m-flash", prose, strlen(prose));
    assert_true(labs(est - (long)llround((double)base * truth)) <= (long)(base * 0.05) + 1);
    /* per model */
    assert_true(fabs(sc_tokens_factor(t, "m-pro") - 1.0) < 1e-12);
    /* nonsense observations are ignored */
    sc_tokens_observe(t, "m-flash", 0, 10);
    sc_tokens_observe(t, "m-flash", 10, -1);
    sc_tokens_error(t, "m-flash", NULL, &n);
    assert_int_equal(n, 400);
    sc_tokens_free(t);
}

/* A wild observation cannot push the factor out of its clamp. */
static void test_clamp(void **state)
{
    (void)state;
    sc_tokens_t *t = sc_tokens_new();
    for (int i = 0; i < 200; i++)
        sc_tokens_observe(t, "m", 10, 100000);
    assert_true(sc_tokens_factor(t, "m") <= SC_TOKENS_FACTOR_MAX + 1e-9);
    for (int i = 0; i < 200; i++)
        sc_tokens_observe(t, "m", 100000, 1);
    assert_true(sc_tokens_factor(t, "m") >= SC_TOKENS_FACTOR_MIN - 1e-9);
    sc_tokens_free(t);
}

typedef struct {
    sc_tokens_t *t;
    int id;
} worker_arg_t;

static void *worker(void *p)
{
    worker_arg_t *a = p;
    for (int i = 0; i < 2000; i++) {
        sc_tokens_observe(a->t, a->id % 2 ? "odd" : "even", 100, 150);
        (void)sc_tokens_estimate(a->t, "odd", prose, 50);
    }
    return NULL;
}

/* Concurrent observers: every sample is counted. */
static void test_threads(void **state)
{
    (void)state;
    sc_tokens_t *t = sc_tokens_new();
    pthread_t th[4];
    worker_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i].t = t;
        args[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    long n_odd, n_even;
    sc_tokens_error(t, "odd", NULL, &n_odd);
    sc_tokens_error(t, "even", NULL, &n_even);
    assert_int_equal(n_odd, 4000);
    assert_int_equal(n_even, 4000);
    sc_tokens_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_estimate),
        cmocka_unit_test(test_uncalibrated),
        cmocka_unit_test(test_calibration_converges),
        cmocka_unit_test(test_clamp),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
