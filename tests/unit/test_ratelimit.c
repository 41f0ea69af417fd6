/* Unit tests for core/ratelimit.c: a token bucket driven by a hand clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/ratelimit.c"

static void test_burst_of_qps(void **state)
{
    (void)state;
    struct rtmd_ratelimit r;
    rtmd_ratelimit_init(&r);
    for (int i = 0; i < 10; i++)
        assert_true(rtmd_ratelimit_take(&r, 10, 5000));
    assert_false(rtmd_ratelimit_take(&r, 10, 5000));
    assert_int_equal(rtmd_ratelimit_available(&r, 10, 5000), 0);
}

static void test_refused_takes_nothing(void **state)
{
    (void)state;
    struct rtmd_ratelimit r;
    rtmd_ratelimit_init(&r);
    for (int i = 0; i < 10; i++)
        assert_true(rtmd_ratelimit_take(&r, 10, 1000));
    /* Many refusals in a row: none of them takes a token, so exactly one
     * token is back 100 ms later. */
    for (int i = 0; i < 50; i++)
        assert_false(rtmd_ratelimit_take(&r, 10, 1000 + (uint64_t)i));
    assert_false(rtmd_ratelimit_take(&r, 10, 1099));
    assert_true(rtmd_ratelimit_take(&r, 10, 1100));
    assert_false(rtmd_ratelimit_take(&r, 10, 1100));
}

static void test_refill_over_time(void **state)
{
    (void)state;
    struct rtmd_ratelimit r;
    rtmd_ratelimit_init(&r);
    for (int i = 0; i < 10; i++)
        assert_true(rtmd_ratelimit_take(&r, 10, 0));
    /* 10 qps: one token per 100 ms, exactly. */
    assert_int_equal(rtmd_ratelimit_available(&r, 10, 99), 0);
    assert_int_equal(rtmd_ratelimit_available(&r, 10, 100), 1);
    assert_int_equal(rtmd_ratelimit_available(&r, 10, 550), 5);
    /* Capacity is qps: a long pause refills no more than a burst of 10. */
    assert_int_equal(rtmd_ratelimit_available(&r, 10, 60000), 10);
    int taken = 0;
    while (rtmd_ratelimit_take(&r, 10, 60000))
        taken++;
    assert_int_equal(taken, 10);
    /* Steady state: 1 request every 100 ms always passes; one more fails. */
    for (uint64_t t = 60100; t < 70000; t += 100) {
        assert_true(rtmd_ratelimit_take(&r, 10, t));
        assert_false(rtmd_ratelimit_take(&r, 10, t));
    }
}

static void test_fractional_refill(void **state)
{
    (void)state;
    /* 3 qps: a token every 333.3 ms, accumulated without rounding loss. */
    struct rtmd_ratelimit r;
    rtmd_ratelimit_init(&r);
    for (int i = 0; i < 3; i++)
        assert_true(rtmd_ratelimit_take(&r, 3, 0));
    int passed = 0;
    for (uint64_t t = 1; t <= 3000; t++)
        passed += rtmd_ratelimit_take(&r, 3, t);
    assert_int_equal(passed, 9);
}

static void test_clock_backwards_and_qps_change(void **state)
{
    (void)state;
    struct rtmd_ratelimit r;
    rtmd_ratelimit_init(&r);
    assert_true(rtmd_ratelimit_take(&r, 2, 10000));
    assert_true(rtmd_ratelimit_take(&r, 2, 10000));
    assert_false(rtmd_ratelimit_take(&r, 2, 5000)); /* backwards: no refill */
    assert_false(rtmd_ratelimit_take(&r, 2, 10000));
    assert_true(rtmd_ratelimit_take(&r, 2, 10500));
    /* Lowering qps caps the tokens held at the new capacity. */
    struct rtmd_ratelimit q;
    rtmd_ratelimit_init(&q);
    assert_true(rtmd_ratelimit_take(&q, 100, 0));
    assert_int_equal(rtmd_ratelimit_available(&q, 5, 0), 5);
    /* qps 0 is no limit. */
    for (int i = 0; i < 1000; i++)
        assert_true(rtmd_ratelimit_take(&q, 0, 0));
    /* Huge qps and long gaps do not overflow. */
    struct rtmd_ratelimit h;
    rtmd_ratelimit_init(&h);
    assert_true(rtmd_ratelimit_take(&h, UINT32_MAX, UINT64_MAX - 1));
    assert_int_equal(rtmd_ratelimit_available(&h, UINT32_MAX, UINT64_MAX - 1), UINT32_MAX - 1);
    assert_int_equal(rtmd_ratelimit_available(&h, UINT32_MAX, UINT64_MAX), UINT32_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_of_qps),
        cmocka_unit_test(test_refused_takes_nothing),
        cmocka_unit_test(test_refill_over_time),
        cmocka_unit_test(test_fractional_refill),
        cmocka_unit_test(test_clock_backwards_and_qps_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
