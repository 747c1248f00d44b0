/* test_agreement.c - the tier agreement store: Wilson bounds, decay, persistence, purge, bounds. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "host/cache/agreement.h"
#include "host/core/util.h"

#define EPS 1e-9

/* ---- helpers ---- */

static void make_dir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/sc_agreement_XXXXXX");
    assert_non_null(mkdtemp(dir));
}

/* Remove the store's files and its directory; fails the test when something else was left. */
static void remove_dir(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    assert_int_equal(rmdir(dir), 0);
}

static sc_agreement_t *open_ok(const char *path, double window)
{
    char err[256] = "";
    sc_agreement_t *a = NULL;
    sc_status_t st = sc_agreement_open(path, window, &a, err, sizeof err);
    if (st != SC_OK)
        fail_msg("open %s: %s", path ? path : "(memory)", err);
    assert_non_null(a);
    return a;
}

static void add_ok(sc_agreement_t *a, const char *tenant, const char *agent, const char *stage,
                   const char *tier, int agree)
{
    assert_int_equal(sc_agreement_add(a, tenant, agent, stage, tier, agree, NULL), SC_OK);
}

/* ---- Wilson bounds ---- */

static void test_wilson_values(void **state)
{
    (void)state;
    /* no data: the widest interval */
    assert_true(sc_wilson_lower(0, 0, 1.96) == 0);
    assert_true(sc_wilson_upper(0, 0, 1.96) == 1);
    assert_true(sc_wilson_lower(3, -1, 1.96) == 0);
    assert_true(sc_wilson_upper(3, -1, 1.96) == 1);
    /* all agree: lower = n / (n + z^2), upper = 1 */
    assert_true(fabs(sc_wilson_lower(50, 50, 1.96) - 50.0 / (50.0 + 3.8416)) < EPS);
    assert_true(fabs(sc_wilson_lower(50, 50, 1.96) - 0.928649965826) < EPS);
    assert_true(fabs(sc_wilson_lower(50, 50, 1.645) - 0.948658146768) < EPS);
    assert_true(fabs(sc_wilson_upper(50, 50, 1.96) - 1.0) < EPS);
    /* p = 0.9 (hand-computed: center 0.871461, half 0.085065) */
    assert_true(fabs(sc_wilson_lower(45, 50, 1.96) - 0.786395096652) < EPS);
    assert_true(fabs(sc_wilson_upper(45, 50, 1.96) - 0.956524876008) < EPS);
    /* none agree: lower 0, upper z^2 / (n + z^2) */
    assert_true(sc_wilson_lower(0, 50, 1.96) == 0);
    assert_true(fabs(sc_wilson_upper(0, 50, 1.96) - 3.8416 / 53.8416) < EPS);
    /* fractional (decayed) counts */
    assert_true(fabs(sc_wilson_lower(9.5, 10.0, 1.645) - 0.715234830373) < EPS);
    assert_true(fabs(sc_wilson_upper(9.5, 10.0, 1.645) - 0.993090550696) < EPS);
    assert_true(fabs(sc_wilson_lower(0.5, 0.5, 1.96) - 0.115164916160) < EPS);

    /* the interval holds p, stays in [0, 1], and moves up with k and in with n */
    double prev_lo = -1, prev_hi = -1;
    for (int k = 0; k <= 40; k++) {
        double lo = sc_wilson_lower(k, 40, 1.645), hi = sc_wilson_upper(k, 40, 1.645);
        double p = k / 40.0;
        assert_true(lo >= 0 && hi <= 1);
        assert_true(lo <= p + EPS && hi >= p - EPS);
        assert_true(lo > prev_lo);
        assert_true(hi > prev_hi);
        prev_lo = lo;
        prev_hi = hi;
    }
    assert_true(sc_wilson_lower(90, 100, 1.645) > sc_wilson_lower(9, 10, 1.645));
    assert_true(sc_wilson_upper(90, 100, 1.645) < sc_wilson_upper(9, 10, 1.645));
    /* a wider z widens the interval */
    assert_true(sc_wilson_lower(45, 50, 2.576) < sc_wilson_lower(45, 50, 1.645));
}

/* ---- add / get ---- */

static void test_counts_without_decay(void **state)
{
    (void)state;
    sc_agreement_t *a = open_ok(NULL, 0);
    sc_agreement_est_t e, now;

    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "flash", &e), 0);
    assert_true(e.n == 0 && e.k == 0 && e.updated_ms == 0);
    int64_t before = sc_wall_ms();
    for (int i = 0; i < 10; i++)
        assert_int_equal(sc_agreement_add(a, "acme", "bot", "triage", "flash", i < 7, &now), SC_OK);
    int64_t after = sc_wall_ms();
    assert_true(now.n == 10 && now.k == 7);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "flash", &e), 1);
    assert_true(e.n == 10 && e.k == 7);
    assert_true(e.updated_ms >= before && e.updated_ms <= after);
    assert_int_equal(sc_agreement_count(a), 1);
    /* any nonzero agree counts as agreeing */
    add_ok(a, "acme", "bot", "triage", "flash", 5);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "flash", &e), 1);
    assert_true(e.n == 11 && e.k == 8);
    /* get with no out still answers */
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "flash", NULL), 1);
    sc_agreement_close(a);
    sc_agreement_close(NULL);
}

static void test_decay(void **state)
{
    (void)state;
    sc_agreement_t *a = open_ok("", 10);
    sc_agreement_est_t e;

    /* each add multiplies by 1 - 1/10 first */
    assert_int_equal(sc_agreement_add(a, "acme", NULL, NULL, "flash", 1, &e), SC_OK);
    assert_true(fabs(e.n - 1) < EPS && fabs(e.k - 1) < EPS);
    assert_int_equal(sc_agreement_add(a, "acme", NULL, NULL, "flash", 0, &e), SC_OK);
    assert_true(fabs(e.n - 1.9) < EPS && fabs(e.k - 0.9) < EPS);
    assert_int_equal(sc_agreement_add(a, "acme", NULL, NULL, "flash", 1, &e), SC_OK);
    assert_true(fabs(e.n - 2.71) < EPS && fabs(e.k - 1.81) < EPS);

    /* n tends to the window (the sum of 0.9^i): within 1e-6 of 10 after 1000 adds; k == n when
     * all agree */
    for (int i = 0; i < 1000; i++)
        add_ok(a, "acme", NULL, NULL, "lite", 1);
    assert_int_equal(sc_agreement_get(a, "acme", NULL, NULL, "lite", &e), 1);
    assert_true(fabs(e.n - 10) < 1e-6);
    assert_true(e.n <= 10 + EPS);
    assert_true(e.k == e.n);
    /* and after 1000 disagreements k falls back towards 0 while n stays at the window */
    for (int i = 0; i < 1000; i++)
        add_ok(a, "acme", NULL, NULL, "lite", 0);
    assert_int_equal(sc_agreement_get(a, "acme", NULL, NULL, "lite", &e), 1);
    assert_true(fabs(e.n - 10) < 1e-6 && e.k < 1e-6 && e.k >= 0);
    sc_agreement_close(a);

    /* window 1: only the last comparison counts */
    a = open_ok(NULL, 1);
    add_ok(a, "acme", NULL, NULL, "flash", 1);
    assert_int_equal(sc_agreement_add(a, "acme", NULL, NULL, "flash", 0, &e), SC_OK);
    assert_true(e.n == 1 && e.k == 0);
    sc_agreement_close(a);
}

/* ---- isolation ---- */

typedef struct {
    int visits;
    int saw_null_agent;
    double n_total;
} visit_t;

static void visit(const char *tenant, const char *agent, const char *stage, const char *tier,
                  const sc_agreement_est_t *e, void *arg)
{
    visit_t *v = arg;
    v->visits++;
    v->n_total += e->n;
    if (strcmp(tenant, "acme") == 0 && strcmp(agent, "") == 0 && strcmp(stage, "triage") == 0 &&
        strcmp(tier, "flash") == 0)
        v->saw_null_agent = 1;
}

static void test_isolation(void **state)
{
    (void)state;
    sc_agreement_t *a = open_ok(NULL, 0);
    sc_agreement_est_t e;

    add_ok(a, "acme", "bot", "triage", "flash", 1);
    add_ok(a, "globex", "bot", "triage", "flash", 0);
    add_ok(a, "acme", "bob", "triage", "flash", 0);
    add_ok(a, "acme", "bot", "answer", "flash", 0);
    add_ok(a, "acme", "bot", "triage", "lite", 0);
    add_ok(a, "acm", "ebot", "triage", "flash", 0); /* the fields are kept apart */
    add_ok(a, "acme", "bot", "triagef", "lash", 0);
    assert_int_equal(sc_agreement_count(a), 7);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "flash", &e), 1);
    assert_true(e.n == 1 && e.k == 1);
    assert_int_equal(sc_agreement_get(a, "acm", "ebot", "triage", "flash", &e), 1);
    assert_true(e.n == 1 && e.k == 0);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "pro", &e), 0);

    /* NULL agent and stage are "" */
    add_ok(a, "acme", NULL, "triage", "flash", 1);
    add_ok(a, "acme", "", "triage", "flash", 1);
    assert_int_equal(sc_agreement_get(a, "acme", NULL, "triage", "flash", &e), 1);
    assert_true(e.n == 2 && e.k == 2);
    add_ok(a, "acme", NULL, NULL, "flash", 0);
    assert_int_equal(sc_agreement_get(a, "acme", "", "", "flash", &e), 1);
    assert_true(e.n == 1 && e.k == 0);
    assert_int_equal(sc_agreement_count(a), 9);

    visit_t v = {0};
    sc_agreement_foreach(a, visit, &v);
    assert_int_equal(v.visits, 9);
    assert_true(v.saw_null_agent);
    assert_true(fabs(v.n_total - 10) < EPS);
    sc_agreement_foreach(a, NULL, &v); /* no callback: nothing happens */
    assert_int_equal(v.visits, 9);

    /* purge in memory: only acme's entries go, the others answer as before */
    assert_int_equal(sc_agreement_purge_tenant(a, "acme"), 7);
    assert_int_equal(sc_agreement_count(a), 2);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "flash", &e), 0);
    assert_int_equal(sc_agreement_get(a, "globex", "bot", "triage", "flash", &e), 1);
    assert_int_equal(sc_agreement_get(a, "acm", "ebot", "triage", "flash", &e), 1);
    assert_int_equal(sc_agreement_purge_tenant(a, "acme"), 0);
    add_ok(a, "acme", "bot", "triage", "flash", 1);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "flash", &e), 1);
    assert_true(e.n == 1);
    sc_agreement_close(a);
}

/* ---- argument errors and bounds ---- */

static void test_argument_errors(void **state)
{
    (void)state;
    char err[256] = "";
    char name[SC_AGREEMENT_FIELD_MAX + 2];
    sc_agreement_t *sentinel = (sc_agreement_t *)(uintptr_t)1; /* never dereferenced */
    sc_agreement_t *a = sentinel; /* a failed open must reset it to NULL */
    sc_agreement_est_t e;

    assert_int_equal(sc_agreement_open(NULL, 0.5, &a, err, sizeof err), SC_ERR_INVALID_ARG);
    assert_null(a);
    assert_true(strlen(err) > 0);
    assert_int_equal(sc_agreement_open(NULL, -1, &a, err, sizeof err), SC_ERR_INVALID_ARG);
    assert_int_equal(sc_agreement_open(NULL, NAN, &a, err, sizeof err), SC_ERR_INVALID_ARG);
    assert_int_equal(sc_agreement_open(NULL, 0, NULL, err, sizeof err), SC_ERR_INVALID_ARG);

    /* a directory that cannot be made: SC_ERR_IO with the reason */
    err[0] = '\0';
    assert_int_equal(sc_agreement_open("/proc/self/status/agreement", 0, &a, err, sizeof err),
                     SC_ERR_IO);
    assert_null(a);
    assert_true(strlen(err) > 0);

    a = open_ok(NULL, 0);
    assert_int_equal(sc_agreement_add(a, "", "bot", "triage", "flash", 1, NULL),
                     SC_ERR_INVALID_ARG);
    assert_int_equal(sc_agreement_add(a, NULL, "bot", "triage", "flash", 1, NULL),
                     SC_ERR_INVALID_ARG);
    assert_int_equal(sc_agreement_add(a, "acme", "bot", "triage", "", 1, NULL), SC_ERR_INVALID_ARG);
    assert_int_equal(sc_agreement_add(a, "acme", "bot", "triage", NULL, 1, NULL),
                     SC_ERR_INVALID_ARG);
    assert_int_equal(sc_agreement_add(NULL, "acme", "bot", "triage", "flash", 1, NULL),
                     SC_ERR_INVALID_ARG);

    /* SC_AGREEMENT_FIELD_MAX bytes fit in every field; one more does not */
    memset(name, 'x', sizeof name);
    name[SC_AGREEMENT_FIELD_MAX] = '\0';
    add_ok(a, name, name, name, name, 1);
    assert_int_equal(sc_agreement_get(a, name, name, name, name, &e), 1);
    name[SC_AGREEMENT_FIELD_MAX] = 'x';
    name[SC_AGREEMENT_FIELD_MAX + 1] = '\0';
    assert_int_equal(sc_agreement_add(a, name, "bot", "triage", "flash", 1, NULL),
                     SC_ERR_INVALID_ARG);
    assert_int_equal(sc_agreement_add(a, "acme", name, "triage", "flash", 1, NULL),
                     SC_ERR_INVALID_ARG);
    assert_int_equal(sc_agreement_add(a, "acme", "bot", name, "flash", 1, NULL),
                     SC_ERR_INVALID_ARG);
    assert_int_equal(sc_agreement_add(a, "acme", "bot", "triage", name, 1, NULL),
                     SC_ERR_INVALID_ARG);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", name, &e), 0);
    assert_int_equal(sc_agreement_get(a, "", "bot", "triage", "flash", &e), 0);
    assert_int_equal(sc_agreement_count(a), 1);
    assert_int_equal(sc_agreement_count(NULL), 0);
    assert_int_equal(sc_agreement_purge_tenant(a, ""), 0);
    assert_int_equal(sc_agreement_purge_tenant(NULL, "acme"), 0);
    sc_agreement_close(a);
}

static void test_table_is_bounded(void **state)
{
    (void)state;
    sc_agreement_t *a = open_ok(NULL, 0);
    sc_agreement_est_t e;
    char tenant[32];

    for (int i = 0; i < SC_AGREEMENT_MAX_ENTRIES; i++) {
        snprintf(tenant, sizeof tenant, "t%d", i);
        add_ok(a, tenant, NULL, NULL, "flash", i & 1);
    }
    assert_int_equal(sc_agreement_count(a), SC_AGREEMENT_MAX_ENTRIES);
    assert_int_equal(sc_agreement_add(a, "one-more", NULL, NULL, "flash", 1, &e), SC_ERR_FULL);
    assert_int_equal(sc_agreement_get(a, "one-more", NULL, NULL, "flash", &e), 0);
    /* existing estimates still take adds */
    add_ok(a, "t7", NULL, NULL, "flash", 1);
    assert_int_equal(sc_agreement_get(a, "t7", NULL, NULL, "flash", &e), 1);
    assert_true(e.n == 2 && e.k == 2);
    assert_int_equal(sc_agreement_get(a, "t65535", NULL, NULL, "flash", &e), 1);
    assert_true(e.n == 1 && e.k == 1);
    /* a purge makes room */
    assert_int_equal(sc_agreement_purge_tenant(a, "t100"), 1);
    add_ok(a, "one-more", NULL, NULL, "flash", 1);
    assert_int_equal(sc_agreement_count(a), SC_AGREEMENT_MAX_ENTRIES);
    assert_int_equal(sc_agreement_get(a, "t65535", NULL, NULL, "flash", &e), 1);
    sc_agreement_close(a);
}

/* ---- persistence ---- */

static void test_persistence_and_purge(void **state)
{
    (void)state;
    char dir[64], path[128];
    char big[SC_AGREEMENT_FIELD_MAX + 1];
    sc_agreement_est_t e1, e2, e3, e4, got;

    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/agreement", dir); /* created by open */
    memset(big, 'b', SC_AGREEMENT_FIELD_MAX);
    big[SC_AGREEMENT_FIELD_MAX] = '\0';

    sc_agreement_t *a = open_ok(path, 20);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(sc_agreement_add(a, "acme", "bot", "triage", "flash", i % 3 != 0, &e1),
                         SC_OK);
    }
    assert_int_equal(sc_agreement_add(a, "acme", NULL, NULL, "lite", 0, &e2), SC_OK);
    assert_int_equal(sc_agreement_add(a, "globex", "bot", "triage", "flash", 1, &e3), SC_OK);
    /* four names of the longest length: more than LMDB's key limit when joined */
    assert_int_equal(sc_agreement_add(a, big, big, big, big, 1, &e4), SC_OK);
    sc_agreement_close(a);

    a = open_ok(path, 20);
    assert_int_equal(sc_agreement_count(a), 4);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "flash", &got), 1);
    assert_true(got.n == e1.n && got.k == e1.k && got.updated_ms == e1.updated_ms);
    assert_true(got.n > 10 && got.n < 20 && got.k < got.n);
    assert_int_equal(sc_agreement_get(a, "acme", "", "", "lite", &got), 1);
    assert_true(got.n == e2.n && got.k == e2.k && got.updated_ms == e2.updated_ms);
    assert_int_equal(sc_agreement_get(a, "globex", "bot", "triage", "flash", &got), 1);
    assert_true(got.n == e3.n && got.k == e3.k && got.updated_ms == e3.updated_ms);
    assert_int_equal(sc_agreement_get(a, big, big, big, big, &got), 1);
    assert_true(got.n == e4.n && got.k == e4.k);
    /* adds continue from the stored estimate */
    assert_int_equal(sc_agreement_add(a, "globex", "bot", "triage", "flash", 0, &got), SC_OK);
    assert_true(fabs(got.n - (e3.n * 0.95 + 1)) < EPS && fabs(got.k - e3.k * 0.95) < EPS);

    /* purge: only acme's two estimates go, in memory and on disk */
    assert_int_equal(sc_agreement_purge_tenant(a, "acme"), 2);
    assert_int_equal(sc_agreement_count(a), 2);
    assert_int_equal(sc_agreement_purge_tenant(a, "nobody"), 0);
    sc_agreement_close(a);

    a = open_ok(path, 0);
    assert_int_equal(sc_agreement_count(a), 2);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "flash", &got), 0);
    assert_int_equal(sc_agreement_get(a, "acme", NULL, NULL, "lite", &got), 0);
    assert_int_equal(sc_agreement_get(a, "globex", "bot", "triage", "flash", &got), 1);
    assert_true(fabs(got.n - (e3.n * 0.95 + 1)) < EPS);
    assert_int_equal(sc_agreement_get(a, big, big, big, big, &got), 1);
    sc_agreement_close(a);

    remove_dir(path);
    assert_int_equal(rmdir(dir), 0);
}

/* A record whose value contains needle, copied into *val (malloc'd) with its key into key
 * (16 bytes). Returns 1 when found. */
static int find_record(MDB_txn *txn, MDB_dbi dbi, const char *needle, unsigned char *key,
                       unsigned char **val, size_t *vlen)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int found = 0;
    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    while (!found && mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
        if (k.mv_size == 16 && memmem(v.mv_data, v.mv_size, needle, strlen(needle))) {
            memcpy(key, k.mv_data, 16);
            *val = malloc(v.mv_size);
            assert_non_null(*val);
            memcpy(*val, v.mv_data, v.mv_size);
            *vlen = v.mv_size;
            found = 1;
        }
    }
    mdb_cursor_close(cur);
    return found;
}

static void raw_put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const void *v,
                    size_t vlen)
{
    MDB_val key = {.mv_size = klen, .mv_data = (void *)k};
    MDB_val val = {.mv_size = vlen, .mv_data = (void *)v};
    assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
}

static void test_corrupt_values_are_skipped(void **state)
{
    (void)state;
    char dir[64];
    sc_agreement_est_t good, got;

    make_dir(dir, sizeof dir);
    sc_agreement_t *a = open_ok(dir, 0);
    assert_int_equal(sc_agreement_add(a, "acme", "bot", "triage", "flash", 1, &good), SC_OK);
    add_ok(a, "acme", "bot", "triage", "lite", 0);
    add_ok(a, "acme", "bot", "triage", "pro", 1);
    sc_agreement_close(a);

    /* tamper with the records through LMDB directly */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    unsigned char lite_key[16], pro_key[16], flash_key[16], other_key[16];
    unsigned char *lite = NULL, *pro = NULL, *flash = NULL;
    size_t lite_len, pro_len, flash_len;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    assert_int_equal(find_record(txn, dbi, "triagelite", lite_key, &lite, &lite_len), 1);
    assert_int_equal(find_record(txn, dbi, "triagepro", pro_key, &pro, &pro_len), 1);
    assert_int_equal(find_record(txn, dbi, "triageflash", flash_key, &flash, &flash_len), 1);
    /* "lite": a version this build does not know (the value starts magic u32, version u32) */
    uint32_t version = 99;
    memcpy(lite + 4, &version, 4);
    raw_put(txn, dbi, lite_key, 16, lite, lite_len);
    /* "pro": cut short */
    raw_put(txn, dbi, pro_key, 16, pro, 12);
    /* a good value under a key that is not the hash of its names, and under a key of the wrong
     * size */
    memcpy(other_key, flash_key, 16);
    other_key[0] ^= 0xff;
    raw_put(txn, dbi, other_key, 16, flash, flash_len);
    raw_put(txn, dbi, "odd", 3, flash, flash_len);
    /* and one whose name lengths do not add up to the value's size */
    flash[32] = (unsigned char)(flash[32] + 1);
    other_key[1] ^= 0xff;
    raw_put(txn, dbi, other_key, 16, flash, flash_len);
    /* garbage */
    other_key[2] ^= 0xff;
    raw_put(txn, dbi, other_key, 16, "not a record at all, just bytes", 31);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(lite);
    free(pro);
    free(flash);

    /* only the untouched record loads; the rest are skipped without harm */
    a = open_ok(dir, 0);
    assert_int_equal(sc_agreement_count(a), 1);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "flash", &got), 1);
    assert_true(got.n == good.n && got.k == good.k && got.updated_ms == good.updated_ms);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "lite", &got), 0);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "pro", &got), 0);
    /* a new add over a skipped record starts afresh and replaces it */
    assert_int_equal(sc_agreement_add(a, "acme", "bot", "triage", "lite", 1, &got), SC_OK);
    assert_true(got.n == 1 && got.k == 1);
    sc_agreement_close(a);

    a = open_ok(dir, 0);
    assert_int_equal(sc_agreement_count(a), 2);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "lite", &got), 1);
    assert_true(got.n == 1 && got.k == 1);
    sc_agreement_close(a);
    remove_dir(dir);
}

/* ---- threads ---- */

#define THREADS         4
#define ADDS_PER_THREAD 2000

typedef struct {
    sc_agreement_t *a;
    int bad; /* a read saw k outside [0, n] or an add failed */
} worker_t;

static int worker_agrees(int i, int which)
{
    return which == 0 ? 1 : i % 3 == 0;
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    sc_agreement_est_t e;
    for (int i = 0; i < ADDS_PER_THREAD; i++) {
        int which = i % 2;
        const char *tier = which == 0 ? "flash" : "lite";
        if (sc_agreement_add(w->a, "acme", "bot", "triage", tier, worker_agrees(i, which), NULL) !=
            SC_OK)
            w->bad = 1;
        if (sc_agreement_get(w->a, "acme", "bot", "triage", tier, &e) != 1 || e.k < 0 || e.k > e.n)
            w->bad = 1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    char dir[64];
    pthread_t th[THREADS];
    worker_t w[THREADS];
    sc_agreement_est_t e;
    double want_k[2] = {0, 0};

    for (int i = 0; i < ADDS_PER_THREAD; i++)
        want_k[i % 2] += worker_agrees(i, i % 2);

    make_dir(dir, sizeof dir);
    sc_agreement_t *a = open_ok(dir, 0);
    for (int t = 0; t < THREADS; t++) {
        w[t].a = a;
        w[t].bad = 0;
        assert_int_equal(pthread_create(&th[t], NULL, worker, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(w[t].bad, 0);
    }
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "flash", &e), 1);
    assert_true(e.n == THREADS * ADDS_PER_THREAD / 2 && e.k == THREADS * want_k[0]);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "lite", &e), 1);
    assert_true(e.n == THREADS * ADDS_PER_THREAD / 2 && e.k == THREADS * want_k[1]);
    sc_agreement_close(a);

    /* what is on disk matches what was in memory */
    a = open_ok(dir, 0);
    assert_int_equal(sc_agreement_get(a, "acme", "bot", "triage", "lite", &e), 1);
    assert_true(e.n == THREADS * ADDS_PER_THREAD / 2 && e.k == THREADS * want_k[1]);
    sc_agreement_close(a);
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wilson_values),
        cmocka_unit_test(test_counts_without_decay),
        cmocka_unit_test(test_decay),
        cmocka_unit_test(test_isolation),
        cmocka_unit_test(test_argument_errors),
        cmocka_unit_test(test_table_is_bounded),
        cmocka_unit_test(test_persistence_and_purge),
        cmocka_unit_test(test_corrupt_values_are_skipped),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
