/*
 * Unit tests for api/pins.c: a history filter's retention cut-off is pinned
 * at its first use and kept for the TTL, per filter; the table stays bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api/pins.h"

#define HOUR 3600000ull
#define RET  (7 * 24 * HOUR)
#define T0   (1000 * 24 * HOUR)

static struct rtmd_history_query filter(const char *src, const char *dst, uint64_t start,
                                        uint64_t end)
{
    struct rtmd_history_query q = {0};
    q.source = src ? rtmd_str_cstr(src) : RTMD_STR_NULL;
    q.destination = dst ? rtmd_str_cstr(dst) : RTMD_STR_NULL;
    q.start_ms = start;
    q.end_ms = end;
    q.limit = 20;
    return q;
}

static void pinned_until_ttl(void **state)
{
    (void)state;
    struct rtmd_history_pins p;
    rtmd_history_pins_init(&p, 100, 600000);
    struct rtmd_history_query q = filter("u1", NULL, 0, T0);
    assert_int_equal(rtmd_history_pins_cutoff(&p, 0, &q, T0, RET), T0 - RET);
    /* later calls of the same filter (any page) keep the first cut-off */
    q.offset = 100;
    q.desc = true;
    assert_int_equal(rtmd_history_pins_cutoff(&p, 0, &q, T0 + 599999, RET), T0 - RET);
    assert_int_equal(rtmd_history_pins_count(&p), 1);
    /* at the TTL the pin is gone and the cut-off moves on */
    assert_int_equal(rtmd_history_pins_cutoff(&p, 0, &q, T0 + 600000, RET), T0 + 600000 - RET);
    rtmd_history_pins_free(&p);
}

static void filters_differ(void **state)
{
    (void)state;
    struct rtmd_history_pins p;
    rtmd_history_pins_init(&p, 100, 600000);
    struct rtmd_history_query a = filter("u1", NULL, 0, T0);
    struct rtmd_history_query b = filter(NULL, "u1", 0, T0); /* same ID, other field */
    struct rtmd_history_query c = filter("u1", NULL, 1, T0); /* other window */
    struct rtmd_history_query d = filter("u1", "", 0, T0);   /* "" is not absent here */
    rtmd_history_pins_cutoff(&p, 0, &a, T0, RET);
    assert_int_equal(rtmd_history_pins_cutoff(&p, 0, &b, T0 + 1000, RET), T0 + 1000 - RET);
    assert_int_equal(rtmd_history_pins_cutoff(&p, 0, &c, T0 + 2000, RET), T0 + 2000 - RET);
    assert_int_equal(rtmd_history_pins_cutoff(&p, 0, &d, T0 + 3000, RET), T0 + 3000 - RET);
    /* another app */
    assert_int_equal(rtmd_history_pins_cutoff(&p, 1, &a, T0 + 4000, RET), T0 + 4000 - RET);
    assert_int_equal(rtmd_history_pins_cutoff(&p, 0, &a, T0 + 5000, RET), T0 - RET);
    assert_int_equal(rtmd_history_pins_count(&p), 5);
    rtmd_history_pins_free(&p);
}

static void bounded(void **state)
{
    (void)state;
    struct rtmd_history_pins p;
    rtmd_history_pins_init(&p, 8, 600000);
    for (uint64_t i = 0; i < 100; i++) {
        struct rtmd_history_query q = filter("u1", NULL, i, T0);
        rtmd_history_pins_cutoff(&p, 0, &q, T0 + i, RET);
        assert_true(rtmd_history_pins_count(&p) <= 8);
    }
    /* the newest survive, the oldest went first */
    struct rtmd_history_query newest = filter("u1", NULL, 99, T0);
    assert_int_equal(rtmd_history_pins_cutoff(&p, 0, &newest, T0 + 200, RET), T0 + 99 - RET);
    struct rtmd_history_query oldest = filter("u1", NULL, 0, T0);
    assert_int_equal(rtmd_history_pins_cutoff(&p, 0, &oldest, T0 + 200, RET), T0 + 200 - RET);
    rtmd_history_pins_free(&p);
}

static void clock_backwards_and_early(void **state)
{
    (void)state;
    struct rtmd_history_pins p;
    rtmd_history_pins_init(&p, 8, 600000);
    struct rtmd_history_query q = filter("u1", NULL, 0, 10);
    /* before the retention has passed since the epoch: 0 */
    assert_int_equal(rtmd_history_pins_cutoff(&p, 0, &q, 1000, RET), 0);
    /* a clock that stepped back drops the pin rather than trusting it */
    struct rtmd_history_query r = filter("u2", NULL, 0, 10);
    rtmd_history_pins_cutoff(&p, 0, &r, T0, RET);
    assert_int_equal(rtmd_history_pins_cutoff(&p, 0, &r, T0 - 1, RET), T0 - 1 - RET);
    rtmd_history_pins_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pinned_until_ttl),
        cmocka_unit_test(filters_differ),
        cmocka_unit_test(bounded),
        cmocka_unit_test(clock_backwards_and_early),
    };
    return cmocka_run_group_tests_name("history pins", tests, NULL, NULL);
}
