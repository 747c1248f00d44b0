/* test_router.c - the router: the committed weights load, signals on crafted prompts, batch vs
 * one-by-one scoring, tiers monotone in the score, the operating point from a quality target, the
 * domain box, APGR on synthetic routers (0/1 and graded qualities), the CSV reader, the MT-Bench
 * loader. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "models/router.h"
#include "models/train/train_internal.h"
#include "models/train/train_router.h"
#include <unistd.h>

#define ERRLEN  1024
#define PATHLEN 1024
#define NSYN    2000

static const char *source_dir(void)
{
    const char *d = getenv("SCRIMP_SOURCE_DIR");
    return d && *d ? d : ".";
}

static sc_router_t *load_committed(void)
{
    char path[PATHLEN], err[ERRLEN] = "";
    sc_router_t *r = NULL;
    snprintf(path, sizeof path, "%s/models/router/router.json", source_dir());
    sc_status_t st = sc_router_load(path, &r, err, sizeof err);
    if (st)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(st, SC_OK);
    assert_non_null(r);
    return r;
}

/* A router built in place: zero weights, unit scaling, thresholds 0.3 and 0.7, no curve, no
 * domain box. */
static sc_router_t *plain_router(void)
{
    float mean[SC_ROUTER_NFEATURES] = {0}, std[SC_ROUTER_NFEATURES], w2[SC_ROUTER_NFEATURES] = {0};
    float thr[2] = {0.3f, 0.7f};
    for (int i = 0; i < SC_ROUTER_NFEATURES; i++)
        std[i] = 1.0f;
    sc_router_t *r = NULL;
    assert_int_equal(sc_router_new(mean, std, 0, NULL, NULL, w2, 0.0f, thr, 2, NULL, &r), SC_OK);
    return r;
}

static uint64_t rng = 88172645463325252ull;

static float uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1u << 24);
}

/* ---- weights ---- */

static void test_load_committed(void **state)
{
    (void)state;
    sc_router_t *r = load_committed();
    assert_true(sc_router_hidden(r) >= 0);
    assert_int_equal(sc_router_nthresholds(r), 2);
    assert_true(sc_router_threshold(r, 0) <= sc_router_threshold(r, 1));
    assert_string_equal(sc_router_tier(r, 0.0f, NULL, 0), "flash-lite");
    assert_string_equal(sc_router_tier(r, 1.0f, NULL, 0), "pro");
    sc_router_free(r);
    sc_router_free(NULL);
}

static void test_load_errors(void **state)
{
    (void)state;
    char err[ERRLEN] = "", path[] = "/tmp/scrimp_test_router_XXXXXX";
    sc_router_t *r = NULL;
    assert_int_not_equal(sc_router_load("/nonexistent/router.json", &r, err, sizeof err), SC_OK);
    assert_null(r);
    assert_non_null(strstr(err, "/nonexistent/router.json"));
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("{\"version\":1,\"features\":{\"embedding\":384,\"signals\":[\"x\"]}}", f);
    fclose(f);
    assert_int_not_equal(sc_router_load(path, &r, err, sizeof err), SC_OK);
    assert_null(r);
    remove(path);
}

/* ---- signals ---- */

static void signals_of(const char *text, float *s)
{
    sc_router_signals(text, strlen(text), 10, s);
}

static void test_signals(void **state)
{
    (void)state;
    float plain[SC_ROUTER_NSIGNALS], code[SC_ROUTER_NSIGNALS], math[SC_ROUTER_NSIGNALS];
    float multi[SC_ROUTER_NSIGNALS], opts[SC_ROUTER_NSIGNALS];
    signals_of("Tell me a nice story about a cat", plain);
    signals_of("Why does this fail? ```def f(x):\n    return x;``` and SELECT * FROM t;", code);
    signals_of("Solve 3x^2 + 4x - 7 = 0 and calculate $\\frac{1}{2}$ of 12/4", math);
    signals_of("Explain why the sky is blue. What is light? How does it scatter? Compare step by "
               "step.",
               multi);
    signals_of("Which is right?\nA. one\nB. two\nC. three\nD. four\nAnswer:", opts);

    assert_float_equal(plain[SC_SIG_CODE], 0.0f, 1e-6f);
    assert_true(code[SC_SIG_CODE] > 1.0f);
    assert_true(math[SC_SIG_MATH_WORDS] > plain[SC_SIG_MATH_WORDS]);
    assert_true(math[SC_SIG_MATH_DENSITY] > plain[SC_SIG_MATH_DENSITY] + 0.1f);
    assert_float_equal(multi[SC_SIG_QUESTIONS], 2.0f, 0.0f);
    assert_float_equal(plain[SC_SIG_QUESTIONS], 0.0f, 0.0f);
    assert_true(multi[SC_SIG_MULTI_STEP] > 0.5f);
    assert_float_equal(opts[SC_SIG_OPTIONS], 4.0f, 0.0f);
    assert_float_equal(plain[SC_SIG_OPTIONS], 0.0f, 0.0f);
    assert_float_equal(plain[SC_SIG_LOG_TOKENS], logf(11.0f), 1e-6f);
    for (int i = 0; i < SC_ROUTER_NSIGNALS; i++)
        assert_non_null(sc_router_signal_name(i));
    assert_null(sc_router_signal_name(SC_ROUTER_NSIGNALS));
}

/* ---- scoring ---- */

static void test_batch_equals_single(void **state)
{
    (void)state;
    sc_router_t *r = load_committed();
    enum { N = 300 }; /* more than one internal chunk */
    float *emb = malloc(sizeof(float) * N * SC_EMBED_DIM);
    float *sig = malloc(sizeof(float) * N * SC_ROUTER_NSIGNALS);
    float batch[N], one;
    assert_non_null(emb);
    assert_non_null(sig);
    for (size_t i = 0; i < (size_t)N * SC_EMBED_DIM; i++)
        emb[i] = uniform() * 0.2f - 0.1f;
    for (int i = 0; i < N; i++)
        signals_of(i % 2 ? "What is 2+2?" : "Write a haiku about the sea, then explain why.",
                   sig + (size_t)i * SC_ROUTER_NSIGNALS);
    assert_int_equal(sc_router_score_batch(r, emb, sig, N, batch), SC_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(sc_router_score_batch(r, emb + (size_t)i * SC_EMBED_DIM,
                                               sig + (size_t)i * SC_ROUTER_NSIGNALS, 1, &one),
                         SC_OK);
        assert_float_equal(one, batch[i], 0.0f);
        assert_true(batch[i] >= 0.0f && batch[i] <= 1.0f);
    }
    free(emb);
    free(sig);
    sc_router_free(r);
}

static void test_tiers_monotone(void **state)
{
    (void)state;
    sc_router_t *r = load_committed();
    static const char *const names[] = {"lite", "mid", "strong"};
    int last = 0;
    for (int k = 0; k <= 1000; k++) {
        const char *t = sc_router_tier(r, (float)k / 1000.0f, names, 3);
        int idx = strcmp(t, "lite") == 0 ? 0 : strcmp(t, "mid") == 0 ? 1 : 2;
        assert_true(idx >= last);
        last = idx;
    }
    assert_int_equal(last, 2);
    assert_string_equal(sc_router_tier(r, -1.0f, names, 3), "lite");
    /* a built router: thresholds 0.3, 0.7 */
    sc_router_t *b = plain_router();
    assert_string_equal(sc_router_tier(b, 0.29f, NULL, 0), "flash-lite");
    assert_string_equal(sc_router_tier(b, 0.3f, NULL, 0), "flash");
    assert_string_equal(sc_router_tier(b, 0.69f, NULL, 0), "flash");
    assert_string_equal(sc_router_tier(b, 0.7f, NULL, 0), "pro");
    sc_router_free(b);
    sc_router_free(r);
}

/* ---- operating point ---- */

static void test_operating_point(void **state)
{
    (void)state;
    /* a curve whose low quantile dips at share 0.75: a target it reaches at 0.5 but not at 0.75
     * must take the last point, where it stays reached */
    const float thr[] = {1.0f, 0.8f, 0.6f, 0.4f, 0.2f}, share[] = {0.0f, 0.25f, 0.5f, 0.75f, 1.0f};
    const float low[] = {0.80f, 0.90f, 0.96f, 0.94f, 1.0f};
    float t[2];
    double sh = -1.0;
    int met = -1;
    assert_int_equal(sc_router_pick_thresholds(thr, share, low, 5, 0.95, 0.5, t, &sh, &met), 0);
    assert_float_equal(t[1], 0.2f, 0.0f);
    assert_float_equal(sh, 1.0, 1e-9);
    assert_int_equal(met, 1);
    assert_int_equal(sc_router_pick_thresholds(thr, share, low, 5, 0.93, 0.5, t, &sh, &met), 0);
    assert_float_equal(t[1], 0.6f, 0.0f); /* share 0.5 */
    assert_float_equal(sh, 0.5, 1e-9);
    assert_float_equal(t[0], 0.4f, 0.0f); /* the easiest half of the other 0.5 */
    assert_int_equal(sc_router_pick_thresholds(thr, share, low, 5, 0.93, 0.0, t, NULL, NULL), 0);
    assert_float_equal(t[0], 0.2f, 0.0f); /* lite_share 0: below every CV score */
    assert_int_equal(sc_router_pick_thresholds(thr, share, low, 5, 0.93, 1.0, t, NULL, NULL), 0);
    assert_float_equal(t[0], t[1], 0.0f); /* lite_share 1: no middle tier */
    assert_int_equal(sc_router_pick_thresholds(thr, share, low, 5, 0.5, 1.0, t, &sh, &met), 0);
    assert_float_equal(sh, 0.0, 1e-9); /* reached with nothing strong */
    const float low2[] = {0.80f, 0.90f, 0.96f, 0.97f, 0.99f};
    assert_int_equal(sc_router_pick_thresholds(thr, share, low2, 5, 1.0, 0.5, t, &sh, &met), 0);
    assert_int_equal(met, 0); /* not reachable: everything strong */
    assert_float_equal(t[1], 0.2f, 0.0f);
    assert_int_equal(sc_router_pick_thresholds(thr, share, low, 5, 1.01, 0.5, t, &sh, &met), -1);
    assert_int_equal(sc_router_pick_thresholds(thr, share, low, 5, 0.0, 0.5, t, &sh, &met), -1);
    assert_int_equal(sc_router_pick_thresholds(thr, share, low, 5, 0.9, 1.5, t, &sh, &met), -1);
    assert_int_equal(sc_router_pick_thresholds(thr, share, low, 1, 0.9, 0.5, t, &sh, &met), -1);

    /* the committed file: a higher target never sends fewer prompts to the strong tier */
    sc_router_t *r = load_committed();
    assert_true(sc_router_curve_points(r) >= 2);
    double s90 = 0.0, s98 = 0.0;
    assert_int_equal(sc_router_set_quality_target(r, 0.90, 0.5, &s90, NULL), SC_OK);
    float t90 = sc_router_threshold(r, 1);
    assert_true(sc_router_threshold(r, 0) <= t90);
    assert_int_equal(sc_router_set_quality_target(r, 0.98, 0.5, &s98, NULL), SC_OK);
    assert_true(sc_router_threshold(r, 1) <= t90);
    assert_true(s98 >= s90);
    assert_int_equal(sc_router_set_quality_target(r, 2.0, 0.5, NULL, NULL), SC_ERR_INVALID_ARG);
    sc_router_free(r);
    /* a router built without a curve */
    sc_router_t *b = plain_router();
    assert_int_equal(sc_router_curve_points(b), 0);
    assert_int_equal(sc_router_set_quality_target(b, 0.95, 0.5, NULL, NULL), SC_ERR_NOT_FOUND);
    sc_router_free(b);
}

/* ---- domain ---- */

static void test_domain(void **state)
{
    (void)state;
    static const char mcq[] = "Which of the following best describes the role of the enzyme "
                              "helicase during DNA replication?\n"
                              "A. It joins Okazaki fragments\n"
                              "B. It unwinds the double helix\n"
                              "C. It adds primers to the template\n"
                              "D. It proofreads new strands\n"
                              "Answer:";
    static const char chat[] = "My router keeps rebooting every few minutes, what should I do?";
    float s[SC_ROUTER_NSIGNALS];
    sc_router_t *r = load_committed();
    assert_true(sc_router_has_domain(r));
    sc_router_signals(mcq, strlen(mcq), 60, s);
    assert_true(sc_router_in_domain(r, s)); /* a multiple-choice question, as in training */
    sc_router_signals(chat, strlen(chat), 14, s);
    assert_false(sc_router_in_domain(r, s)); /* no answer options, one line */
    sc_router_free(r);

    float lo[SC_ROUTER_NSIGNALS], hi[SC_ROUTER_NSIGNALS];
    sc_router_t *b = plain_router();
    assert_false(sc_router_has_domain(b));
    assert_true(sc_router_in_domain(b, s)); /* no box: everything is inside */
    for (int j = 0; j < SC_ROUTER_NSIGNALS; j++) {
        lo[j] = s[j];
        hi[j] = s[j];
    }
    assert_int_equal(sc_router_set_domain(b, lo, hi), SC_OK);
    assert_true(sc_router_in_domain(b, s)); /* the bounds are inside */
    s[SC_SIG_OPTIONS] += 1.0f;
    assert_false(sc_router_in_domain(b, s));
    s[SC_SIG_OPTIONS] = NAN;
    assert_false(sc_router_in_domain(b, s));
    lo[0] = hi[0] + 1.0f;
    assert_int_equal(sc_router_set_domain(b, lo, hi), SC_ERR_INVALID_ARG);
    assert_int_equal(sc_router_set_domain(b, NULL, NULL), SC_OK);
    assert_false(sc_router_has_domain(b));
    sc_router_free(b);
}

/* ---- APGR ---- */

static void test_apgr_synthetic(void **state)
{
    (void)state;
    static unsigned char w[NSYN], s[NSYN];
    static float sc[NSYN];
    /* 10% need the strong model, 5% are the reverse, the rest agree */
    int need = 0;
    for (int i = 0; i < NSYN; i++) {
        int k = i % 20;
        w[i] = k >= 2 && k < 19 ? (k % 2) : k == 19;
        s[i] = k < 2 ? 1 : k == 19 ? 0 : w[i];
        need += !w[i] && s[i];
    }
    /* perfect: exactly the prompts that gain, most first */
    for (int i = 0; i < NSYN; i++)
        sc[i] = (float)s[i] - (float)w[i];
    double perfect = sc_router_apgr(sc, w, s, NSYN, NULL, NULL, 0);
    assert_true(perfect > 0.9);
    /* perfect with no prompts that lose: 1 − share/2 exactly, → 1 as the share shrinks */
    static unsigned char w2[NSYN], s2[NSYN];
    for (int i = 0; i < NSYN; i++) {
        w2[i] = i % 100 != 0;
        s2[i] = 1;
        sc[i] = (float)(s2[i] - w2[i]);
    }
    double p2 = sc_router_apgr(sc, w2, s2, NSYN, NULL, NULL, 0);
    assert_float_equal(p2, 1.0 - 0.01 / 2.0, 1e-9);
    /* random: ≈ 0.5 */
    double sum = 0.0;
    for (int t = 0; t < 20; t++) {
        for (int i = 0; i < NSYN; i++)
            sc[i] = uniform();
        sum += sc_router_apgr(sc, w, s, NSYN, NULL, NULL, 0);
    }
    assert_float_equal(sum / 20.0, 0.5, 0.03);
    /* constant score: one tie, the straight line, exactly 0.5 */
    double curve[11], quality[11];
    for (int i = 0; i < NSYN; i++)
        sc[i] = 0.5f;
    assert_float_equal(sc_router_apgr(sc, w, s, NSYN, curve, quality, 11), 0.5, 1e-9);
    assert_float_equal(curve[0], 0.0, 1e-12);
    assert_float_equal(curve[10], 1.0, 1e-12);
    assert_float_equal(curve[3], 0.3, 1e-9);
    /* inverted: below random */
    for (int i = 0; i < NSYN; i++)
        sc[i] = (float)w[i] - (float)s[i];
    assert_true(sc_router_apgr(sc, w, s, NSYN, NULL, NULL, 0) < 0.5);
    /* no gap between the models: undefined */
    assert_true(isnan(sc_router_apgr(sc, w, w, NSYN, NULL, NULL, 0)));
    (void)need;
}

/* training's APGR on graded qualities: the library's on 0/1 ones, and 0.5 / 1 where it must be */
static void test_apgr_graded(void **state)
{
    (void)state;
    static unsigned char w[NSYN], s[NSYN];
    static float sc[NSYN];
    static size_t rows[NSYN];
    static tr_item_t items[NSYN];
    tr_data_t d = {0};
    d.items = items;
    d.n = NSYN;
    for (int i = 0; i < NSYN; i++) {
        int k = i % 20;
        w[i] = k >= 2 && k < 19 ? (k % 2) : k == 19;
        s[i] = k < 2 ? 1 : k == 19 ? 0 : w[i];
        items[i].wq = w[i];
        items[i].sq = s[i];
        rows[i] = (size_t)i;
        sc[i] = uniform();
    }
    double c1[21], c2[21], q1[21], q2[21];
    double a = sc_router_apgr(sc, w, s, NSYN, c1, q1, 21);
    double b = tr_apgr_rows(&d, rows, NSYN, sc, c2, q2);
    assert_float_equal(a, b, 1e-12);
    for (int p = 0; p < 21; p++) {
        assert_float_equal(c1[p], c2[p], 1e-12);
        assert_float_equal(q1[p], q2[p], 1e-12);
    }
    /* graded: the gain itself as the score recovers the whole gap early (APGR > 0.5), its
     * negation less than random, a constant exactly 0.5 */
    for (int i = 0; i < NSYN; i++) {
        items[i].wq = (float)(i % 7) / 9.0f;
        items[i].sq = (float)(i % 10) / 9.0f;
        sc[i] = items[i].sq - items[i].wq;
    }
    double up = tr_apgr_rows(&d, rows, NSYN, sc, NULL, q2);
    assert_true(up > 0.6);
    double mw = 0.0, ms = 0.0;
    for (int i = 0; i < NSYN; i++) {
        mw += items[i].wq;
        ms += items[i].sq;
    }
    assert_float_equal(q2[0], mw / NSYN, 1e-6);  /* cost 0: all weak */
    assert_float_equal(q2[20], ms / NSYN, 1e-6); /* cost 1: all strong */
    for (int i = 0; i < NSYN; i++)
        sc[i] = -sc[i];
    assert_true(tr_apgr_rows(&d, rows, NSYN, sc, NULL, NULL) < 0.5);
    for (int i = 0; i < NSYN; i++)
        sc[i] = 0.25f;
    assert_float_equal(tr_apgr_rows(&d, rows, NSYN, sc, NULL, NULL), 0.5, 1e-9);
}

/* ---- MT-Bench loader ---- */

static void test_mt_bench_load(void **state)
{
    (void)state;
    char dir[PATHLEN], q[PATHLEN + 64], err[ERRLEN] = "";
    snprintf(dir, sizeof dir, "%s/../shared/data/routing", source_dir());
    snprintf(q, sizeof q, "%s/mt_bench/question.jsonl", dir);
    if (access(q, R_OK) != 0)
        skip();
    tr_data_t d = {0};
    assert_int_equal(tr_load_mt_bench(&d, dir, err, sizeof err), SC_OK);
    /* 80 questions, 8 listed as contaminated: left out whole */
    assert_int_equal(d.nsubj, 72);
    assert_int_equal(d.n, 144);
    assert_int_equal(d.dropped, 16);
    for (size_t i = 0; i < d.n; i += 2) {
        const tr_item_t *t1 = &d.items[i], *t2 = &d.items[i + 1];
        assert_int_equal(t1->subject, t2->subject); /* a question's turns stay together */
        assert_int_equal(t1->family, TR_FAM_MT_BENCH);
        assert_int_equal(d.subj_family[t1->subject], TR_FAM_MT_BENCH);
        assert_true(t1->wq >= 0.0f && t1->wq <= 1.0f && t1->sq >= 0.0f && t1->sq <= 1.0f);
        /* turn 2 carries turn 1 and a first answer */
        assert_true(strncmp(t2->text, "User: ", 6) == 0);
        assert_non_null(strstr(t2->text, t1->text));
        assert_non_null(strstr(t2->text, "\n\nAssistant: "));
        assert_true(t2->len > t1->len + 20);
        assert_null(strstr(t1->text, "Compose an engaging travel blog post")); /* contaminated */
    }
    /* a directory without mt_bench/ is no error of the loader's but SC_ERR_NOT_FOUND */
    tr_data_t e = {0};
    assert_int_equal(tr_load_mt_bench(&e, "/nonexistent", err, sizeof err), SC_ERR_NOT_FOUND);
    assert_int_equal(e.n, 0);
    tr_data_free(&e);
    tr_data_free(&d);
}

/* ---- CSV ---- */

static void test_csv(void **state)
{
    (void)state;
    const char *csv = "prompt,weak,strong\r\n"
                      "\"Line one\nline \"\"two\"\", with comma\nA. x\",True,False\n"
                      "plain,False,True\n"
                      "\"\",,\"last\"";
    size_t pos = 0, lens[4], len = strlen(csv);
    char *f[4];
    int nf;
    assert_int_equal(sc_csv_next(csv, len, &pos, f, lens, 4, &nf), 1);
    assert_int_equal(nf, 3);
    assert_string_equal(f[0], "prompt");
    assert_string_equal(f[2], "strong"); /* the \r of \r\n is not part of the field */
    for (int k = 0; k < nf; k++)
        free(f[k]);
    assert_int_equal(sc_csv_next(csv, len, &pos, f, lens, 4, &nf), 1);
    assert_int_equal(nf, 3);
    assert_string_equal(f[0], "Line one\nline \"two\", with comma\nA. x");
    assert_int_equal(lens[0], strlen(f[0]));
    assert_string_equal(f[1], "True");
    assert_string_equal(f[2], "False");
    for (int k = 0; k < nf; k++)
        free(f[k]);
    assert_int_equal(sc_csv_next(csv, len, &pos, f, lens, 2, &nf), 1);
    assert_int_equal(nf, 2); /* the third field is read and dropped */
    assert_string_equal(f[0], "plain");
    for (int k = 0; k < nf; k++)
        free(f[k]);
    assert_int_equal(sc_csv_next(csv, len, &pos, f, lens, 4, &nf), 1);
    assert_int_equal(nf, 3);
    assert_string_equal(f[0], "");
    assert_string_equal(f[1], "");
    assert_string_equal(f[2], "last");
    for (int k = 0; k < nf; k++)
        free(f[k]);
    assert_int_equal(sc_csv_next(csv, len, &pos, f, lens, 4, &nf), 0);

    const char *bad = "\"never closed,True\n";
    pos = 0;
    assert_int_equal(sc_csv_next(bad, strlen(bad), &pos, f, lens, 4, &nf), -1);
    assert_int_equal(nf, 0);
    const char *bad2 = "ok,x\"y\n";
    pos = 0;
    assert_int_equal(sc_csv_next(bad2, strlen(bad2), &pos, f, lens, 4, &nf), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_committed),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_batch_equals_single),
        cmocka_unit_test(test_tiers_monotone),
        cmocka_unit_test(test_operating_point),
        cmocka_unit_test(test_domain),
        cmocka_unit_test(test_apgr_synthetic),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_apgr_graded),
        cmocka_unit_test(test_mt_bench_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
