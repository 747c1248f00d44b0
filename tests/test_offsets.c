/* test_offsets.c - the completion watermark: out-of-order acknowledgements store only the end of
 * the contiguous acknowledged prefix; stale epochs are ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pipelines/offsets.h"

static void test_watermark(void **state)
{
    (void)state;
    sc_offsets_t *o;
    assert_int_equal(sc_offsets_new(NULL, "t", &o), SC_OK);
    uint64_t e = 0;
    for (int64_t off = 10; off < 15; off++)
        e = sc_offsets_add(o, 2, off, NULL);
    assert_int_equal(sc_offsets_pending(o), 5);
    assert_int_equal(sc_offsets_done(o, 2, 12, e), -1); /* 10 and 11 still open */
    assert_int_equal(sc_offsets_done(o, 2, 11, e), -1);
    assert_int_equal(sc_offsets_done(o, 2, 10, e), 13); /* 10..12 done: next to consume is 13 */
    assert_int_equal(sc_offsets_done(o, 2, 10, e), -1); /* twice: ignored */
    assert_int_equal(sc_offsets_done(o, 2, 99, e), -1); /* never consumed: ignored */
    assert_int_equal(sc_offsets_done(o, 2, 14, e), -1);
    assert_int_equal(sc_offsets_done(o, 2, 13, e), 15);
    assert_int_equal(sc_offsets_pending(o), 0);
    sc_offsets_free(o);
}

static void test_partitions_and_gaps(void **state)
{
    (void)state;
    sc_offsets_t *o;
    assert_int_equal(sc_offsets_new(NULL, "t", &o), SC_OK);
    /* offsets need not be contiguous (compaction, transactions) */
    uint64_t e = sc_offsets_add(o, 0, 5, NULL);
    sc_offsets_add(o, 0, 9, NULL);
    sc_offsets_add(o, 7, 1, NULL);
    assert_int_equal(sc_offsets_done(o, 7, 1, e), 2);
    assert_int_equal(sc_offsets_done(o, 0, 9, e), -1);
    assert_int_equal(sc_offsets_done(o, 0, 5, e), 10);
    /* many in flight, acknowledged in reverse: the ring grows and wraps */
    for (int64_t off = 100; off < 1100; off++)
        sc_offsets_add(o, 3, off, NULL);
    for (int64_t off = 1099; off > 100; off--)
        assert_int_equal(sc_offsets_done(o, 3, off, e), -1);
    assert_int_equal(sc_offsets_done(o, 3, 100, e), 1100);
    sc_offsets_free(o);
}

static void test_reset_epoch(void **state)
{
    (void)state;
    sc_offsets_t *o;
    assert_int_equal(sc_offsets_new(NULL, "t", &o), SC_OK);
    uint64_t old = sc_offsets_add(o, 0, 1, NULL);
    sc_offsets_reset(o); /* a rebalance */
    assert_int_equal(sc_offsets_pending(o), 0);
    assert_int_equal(sc_offsets_done(o, 0, 1, old), -1); /* stale: never stored */
    sc_offsets_seen_t seen;
    sc_offsets_add(o, 0, 1, &seen); /* re-delivered: this process published it already */
    assert_int_equal(seen, SC_OFFSETS_PUBLISHED);
    assert_int_equal(sc_offsets_pending(o), 0);
    uint64_t now = sc_offsets_add(o, 0, 2, &seen);
    assert_int_equal(seen, SC_OFFSETS_NEW);
    assert_true(now != old);
    assert_int_equal(sc_offsets_done(o, 0, 2, now), 3);
    assert_int_equal(sc_offsets_add(o, -1, 0, NULL), 0); /* a bad partition is not tracked */
    sc_offsets_free(o);
    sc_offsets_free(NULL);
}

/* What this process acknowledged survives a reset: a partition revoked (the broker was out of
 * reach past the session timeout) and assigned back goes on from there, not from an older commit. */
static void test_acked_survives_reset(void **state)
{
    (void)state;
    sc_offsets_t *o;
    assert_int_equal(sc_offsets_new(NULL, "t", &o), SC_OK);
    assert_int_equal(sc_offsets_acked(o, 0), -1);
    uint64_t e = 0;
    for (int64_t off = 0; off < 5; off++)
        e = sc_offsets_add(o, 0, off, NULL);
    assert_int_equal(sc_offsets_done(o, 0, 0, e), 1);
    assert_int_equal(sc_offsets_done(o, 0, 1, e), 2);
    assert_int_equal(sc_offsets_done(o, 0, 3, e), -1); /* 2 still open: 3 is not acked yet */
    assert_int_equal(sc_offsets_acked(o, 0), 2);
    sc_offsets_reset(o);
    assert_int_equal(sc_offsets_acked(o, 0), 2); /* 2..4 are re-delivered, 0..1 are not */
    sc_offsets_reset(o); /* revoke and assign: two resets in a row lose nothing */
    /* a result of the old epoch delivered after the reset (held back by a broker outage): it is
     * not stored for commit, but this process did publish 2 and 3, so it may go on from 4 */
    assert_int_equal(sc_offsets_done(o, 0, 2, e), -1);
    assert_int_equal(sc_offsets_acked(o, 0), 4);
    assert_int_equal(sc_offsets_done(o, 0, 2, e), -1); /* twice: nothing moves */
    assert_int_equal(sc_offsets_acked(o, 0), 4);
    assert_int_equal(sc_offsets_acked(o, 1), -1);
    assert_int_equal(sc_offsets_acked(o, 99), -1);
    sc_offsets_free(o);
}

/* A message consumed again after its partition came back: published already, or still in flight
 * under the old assignment. Either way the caller skips it, and its offset completes all the same
 * (at once, or when the old copy is acknowledged), so the watermark moves past it. */
static void test_seen_again(void **state)
{
    (void)state;
    sc_offsets_t *o;
    sc_offsets_seen_t seen;
    assert_int_equal(sc_offsets_new(NULL, "t", &o), SC_OK);
    uint64_t e1 = 0;
    for (int64_t off = 0; off < 6; off++) {
        e1 = sc_offsets_add(o, 0, off, &seen);
        assert_int_equal(seen, SC_OFFSETS_NEW);
    }
    assert_int_equal(sc_offsets_done(o, 0, 0, e1), 1);
    assert_int_equal(sc_offsets_done(o, 0, 2, e1), -1); /* out of order: 1 is open */
    sc_offsets_reset(o);                                 /* revoke */
    sc_offsets_reset(o);                                 /* assign */
    /* the group's commit is behind: 0..5 come again */
    uint64_t e3 = sc_offsets_add(o, 0, 0, &seen);
    assert_int_equal(seen, SC_OFFSETS_PUBLISHED); /* below acked */
    assert_int_equal(sc_offsets_pending(o), 0);
    sc_offsets_add(o, 0, 1, &seen);
    assert_int_equal(seen, SC_OFFSETS_IN_FLIGHT);
    sc_offsets_add(o, 0, 2, &seen);
    assert_int_equal(seen, SC_OFFSETS_PUBLISHED); /* done out of order in the old epoch */
    sc_offsets_add(o, 0, 3, &seen);
    assert_int_equal(seen, SC_OFFSETS_IN_FLIGHT);
    assert_int_equal(sc_offsets_pending(o), 2);
    /* 6 is new; 4 and 5 too once the old epoch says so... they are still in flight there */
    sc_offsets_add(o, 0, 4, &seen);
    assert_int_equal(seen, SC_OFFSETS_IN_FLIGHT);
    sc_offsets_add(o, 0, 5, &seen);
    assert_int_equal(seen, SC_OFFSETS_IN_FLIGHT);
    uint64_t e = sc_offsets_add(o, 0, 6, &seen);
    assert_int_equal(seen, SC_OFFSETS_NEW);
    assert_int_equal(e, e3);
    assert_int_equal(sc_offsets_done(o, 0, 6, e), -1); /* behind 1, 3, 4, 5 */
    /* the old copies are acknowledged: they complete the current ones */
    assert_int_equal(sc_offsets_done(o, 0, 1, e1), -1);
    assert_int_equal(sc_offsets_acked(o, 0), 3);
    assert_int_equal(sc_offsets_done(o, 0, 3, e1), -1);
    assert_int_equal(sc_offsets_done(o, 0, 5, e1), -1);
    assert_int_equal(sc_offsets_acked(o, 0), 4);
    assert_int_equal(sc_offsets_pending(o), 1); /* 4 */
    /* a third reset before 4 is acknowledged: its old copy is still known */
    sc_offsets_reset(o);
    sc_offsets_add(o, 0, 4, &seen);
    assert_int_equal(seen, SC_OFFSETS_IN_FLIGHT);
    sc_offsets_add(o, 0, 5, &seen);
    assert_int_equal(seen, SC_OFFSETS_PUBLISHED);
    sc_offsets_add(o, 0, 6, &seen);
    assert_int_equal(seen, SC_OFFSETS_PUBLISHED); /* done in the second epoch */
    e = sc_offsets_add(o, 0, 7, &seen);
    assert_int_equal(seen, SC_OFFSETS_NEW);
    assert_int_equal(sc_offsets_done(o, 0, 4, e1), -1);
    assert_int_equal(sc_offsets_acked(o, 0), 7);
    assert_int_equal(sc_offsets_pending(o), 1);
    assert_int_equal(sc_offsets_done(o, 0, 7, e), 8);
    assert_int_equal(sc_offsets_pending(o), 0);
    assert_int_equal(sc_offsets_done(o, 0, 4, e1), -1); /* twice: nothing */
    sc_offsets_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watermark),
        cmocka_unit_test(test_partitions_and_gaps),
        cmocka_unit_test(test_reset_epoch),
        cmocka_unit_test(test_acked_survives_reset),
        cmocka_unit_test(test_seen_again),
    };
    return cmocka_run_group_tests_name("offsets", tests, NULL, NULL);
}
