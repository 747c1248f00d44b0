/* test_queue.c - the bounded queue: FIFO order, bounds, timeouts, close, and a producer/consumer
 * pair that must move every item exactly once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "host/core/queue.h"
#include "host/core/util.h"

#define N_ITEMS 200000

static void test_fifo_and_bound(void **state)
{
    (void)state;
    sc_queue_t *q;
    assert_int_equal(sc_queue_new(0, &q), SC_ERR_INVALID_ARG);
    assert_int_equal(sc_queue_new(3, &q), SC_OK);
    for (intptr_t i = 1; i <= 3; i++)
        assert_int_equal(sc_queue_push(q, (void *)i, 0), SC_OK);
    assert_int_equal(sc_queue_push(q, (void *)4, 0), SC_ERR_TIMEOUT);
    int64_t t0 = sc_now_ms();
    assert_int_equal(sc_queue_push(q, (void *)4, 50), SC_ERR_TIMEOUT);
    assert_true(sc_now_ms() - t0 >= 45);
    assert_int_equal(sc_queue_len(q), 3);
    void *p;
    for (intptr_t i = 1; i <= 3; i++) {
        assert_int_equal(sc_queue_pop(q, &p, 0), SC_OK);
        assert_int_equal((intptr_t)p, i);
    }
    assert_int_equal(sc_queue_pop(q, &p, 10), SC_ERR_TIMEOUT);
    /* wrap around the ring */
    for (intptr_t round = 0; round < 10; round++) {
        assert_int_equal(sc_queue_push(q, (void *)(round + 100), 0), SC_OK);
        assert_int_equal(sc_queue_push(q, (void *)(round + 200), 0), SC_OK);
        void *many[4];
        assert_int_equal(sc_queue_pop_many(q, many, 4, 0), 2);
        assert_int_equal((intptr_t)many[0], round + 100);
        assert_int_equal((intptr_t)many[1], round + 200);
    }
    sc_queue_free(q);
}

static void test_close(void **state)
{
    (void)state;
    sc_queue_t *q;
    assert_int_equal(sc_queue_new(4, &q), SC_OK);
    assert_int_equal(sc_queue_push(q, (void *)1, 0), SC_OK);
    sc_queue_close(q);
    assert_int_equal(sc_queue_push(q, (void *)2, 0), SC_ERR_CLOSED);
    assert_false(sc_queue_closed(q)); /* one item left to drain */
    void *p;
    assert_int_equal(sc_queue_pop(q, &p, -1), SC_OK);
    assert_int_equal((intptr_t)p, 1);
    assert_true(sc_queue_closed(q));
    assert_int_equal(sc_queue_pop(q, &p, -1), SC_ERR_CLOSED); /* does not block */
    sc_queue_free(q);
    sc_queue_free(NULL);
}

static void *producer(void *arg)
{
    sc_queue_t *q = arg;
    for (intptr_t i = 1; i <= N_ITEMS; i++)
        if (sc_queue_push(q, (void *)i, -1) != SC_OK)
            return (void *)1;
    sc_queue_close(q);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    sc_queue_t *q;
    assert_int_equal(sc_queue_new(16, &q), SC_OK); /* small: the producer blocks often */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer, q), 0);
    intptr_t expect = 1;
    void *items[7];
    size_t n;
    while ((n = sc_queue_pop_many(q, items, 7, 1000)) > 0 || !sc_queue_closed(q)) {
        for (size_t i = 0; i < n; i++)
            assert_int_equal((intptr_t)items[i], expect++);
        assert_true(sc_queue_len(q) <= 16);
    }
    void *rc;
    pthread_join(t, &rc);
    assert_null(rc);
    assert_int_equal(expect - 1, N_ITEMS);
    sc_queue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_bound),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("queue", tests, NULL, NULL);
}
