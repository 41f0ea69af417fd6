/* Unit tests: core/ratelimit.c — at most qps requests in any 1000 ms window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/ratelimit.h"

static void test_burst_of_qps(void **state)
{
    (void)state;
    struct rtmd_ratelimit r;
    rtmd_ratelimit_init(&r);
    for (int i = 0; i < 10; i++)
        assert_true(rtmd_ratelimit_take(&r, 10, 5000));
    assert_false(rtmd_ratelimit_take(&r, 10, 5000));
    assert_int_equal(rtmd_ratelimit_available(&r, 10, 5000), 0);
    rtmd_ratelimit_free(&r);
}

static void test_refused_takes_nothing(void **state)
{
    (void)state;
    struct rtmd_ratelimit r;
    rtmd_ratelimit_init(&r);
    for (int i = 0; i < 10; i++)
        assert_true(rtmd_ratelimit_take(&r, 10, 1000));
    /* Refusals record nothing: the window frees exactly when the first
     * allowed request is 1000 ms old. */
    for (int i = 0; i < 999; i++)
        assert_false(rtmd_ratelimit_take(&r, 10, 1000 + (uint64_t)i));
    for (int i = 0; i < 10; i++)
        assert_true(rtmd_ratelimit_take(&r, 10, 2000));
    assert_false(rtmd_ratelimit_take(&r, 10, 2000));
    rtmd_ratelimit_free(&r);
}

/* The property itself: spread requests over time, never more than qps in
 * any window of 1000 ms. */
static void test_no_window_holds_more_than_qps(void **state)
{
    (void)state;
    struct rtmd_ratelimit r;
    rtmd_ratelimit_init(&r);
    uint64_t allowed[4000];
    size_t n = 0;
    for (uint64_t t = 0; t < 4000; t += 7)
        if (rtmd_ratelimit_take(&r, 10, t))
            allowed[n++] = t;
    for (size_t i = 0; i < n; i++) {
        size_t in_window = 0;
        for (size_t j = i; j < n && allowed[j] < allowed[i] + 1000; j++)
            in_window++;
        assert_true(in_window <= 10);
    }
    /* and it is not stingier than that: 4 windows of 10 */
    assert_true(n >= 40);
    rtmd_ratelimit_free(&r);
}

static void test_clock_backwards_and_qps_change(void **state)
{
    (void)state;
    struct rtmd_ratelimit r;
    rtmd_ratelimit_init(&r);
    assert_true(rtmd_ratelimit_take(&r, 2, 10000));
    assert_true(rtmd_ratelimit_take(&r, 2, 10000));
    assert_false(rtmd_ratelimit_take(&r, 2, 5000)); /* backwards: stands still */
    assert_false(rtmd_ratelimit_take(&r, 2, 10999));
    assert_true(rtmd_ratelimit_take(&r, 2, 11000));
    /* A new qps starts the window over. */
    assert_true(rtmd_ratelimit_take(&r, 3, 11000));
    /* qps 0 is no limit. */
    for (int i = 0; i < 1000; i++)
        assert_true(rtmd_ratelimit_take(&r, 0, 0));
    rtmd_ratelimit_free(&r);
}

static void test_large_qps_uses_a_bucket(void **state)
{
    (void)state;
    struct rtmd_ratelimit r;
    rtmd_ratelimit_init(&r);
    uint32_t qps = RTMD_RATELIMIT_EXACT_MAX + 1;
    for (uint32_t i = 0; i < qps; i++)
        assert_true(rtmd_ratelimit_take(&r, qps, 0));
    assert_false(rtmd_ratelimit_take(&r, qps, 0));
    assert_null(r.stamps); /* constant memory */
    /* refills continuously: one token per ~1 ms at this rate */
    assert_true(rtmd_ratelimit_take(&r, qps, 2));
    /* huge values do not overflow */
    assert_true(rtmd_ratelimit_take(&r, UINT32_MAX, UINT64_MAX - 1));
    rtmd_ratelimit_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_of_qps),
        cmocka_unit_test(test_refused_takes_nothing),
        cmocka_unit_test(test_no_window_holds_more_than_qps),
        cmocka_unit_test(test_clock_backwards_and_qps_change),
        cmocka_unit_test(test_large_qps_uses_a_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
