/* Unit tests: presence/tap.c — the last minute's counts per app (one slot per
 * second, the current second excluded, slots of older minutes not counted)
 * and the sink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/loop.h"
#include "presence/tap.h"

static const struct rtmd_presence_op login_ = {RTMD_EVENT_LOGIN, RTMD_STR_LIT("u"), {0}, 1, 1};
static const struct rtmd_presence_op join_ = {RTMD_EVENT_JOIN, RTMD_STR_LIT("u"), RTMD_STR_LIT("c"),
                                              1, 1};

static uint64_t sum(const uint32_t *r)
{
    uint64_t s = 0;
    for (int i = 0; i < RTMD_TAP_SECONDS; i++)
        s += r[i];
    return s;
}

static void test_counts_whole_seconds_of_the_last_minute(void **state)
{
    (void)state;
    struct rtmd_app a = {.index = 3}, b = {.index = 0};
    uint32_t r[RTMD_TAP_RATES][RTMD_TAP_SECONDS];
    uint64_t t0 = 1000000000000ull; /* a whole second */
    rtmd_clock_freeze(t0 + 500);
    rtmd_tap_presence(&a, &login_, 1);
    rtmd_tap_presence(&a, &join_, 1);
    rtmd_tap_presence(&a, &join_, 1);
    rtmd_tap_request(&b);
    rtmd_tap_rates(&a, t0 + 900, r);
    assert_int_equal(sum(r[RTMD_TAP_LOGINS]), 0); /* the current second is not over */
    rtmd_tap_rates(&a, t0 + 1000, r);
    assert_int_equal(r[RTMD_TAP_LOGINS][RTMD_TAP_SECONDS - 1], 1);
    assert_int_equal(r[RTMD_TAP_JOINS][RTMD_TAP_SECONDS - 1], 2);
    assert_int_equal(sum(r[RTMD_TAP_REQUESTS]), 0); /* b's */
    rtmd_tap_rates(&b, t0 + 1000, r);
    assert_int_equal(sum(r[RTMD_TAP_REQUESTS]), 1);
    /* 59 s later it is the oldest slot; 60 s later it is gone. */
    rtmd_tap_rates(&a, t0 + 60000, r);
    assert_int_equal(r[RTMD_TAP_JOINS][0], 2);
    rtmd_tap_rates(&a, t0 + 61000, r);
    assert_int_equal(sum(r[RTMD_TAP_JOINS]), 0);
    /* A slot reused a minute later starts from zero. */
    rtmd_clock_freeze(t0 + 60500);
    rtmd_tap_presence(&a, &join_, 1);
    rtmd_tap_rates(&a, t0 + 61000, r);
    assert_int_equal(sum(r[RTMD_TAP_JOINS]), 1);
    /* An app never counted reads zeros. */
    struct rtmd_app c = {.index = 9};
    rtmd_tap_rates(&c, t0 + 61000, r);
    assert_int_equal(sum(r[RTMD_TAP_MESSAGES]), 0);
    rtmd_clock_freeze(0);
}

static int presences_, messages_;

static void on_presence(void *ctx, const struct rtmd_app *app, const struct rtmd_presence_op *op)
{
    assert_ptr_equal(ctx, &presences_);
    assert_int_equal(app->index, 1);
    presences_ += op->type == RTMD_EVENT_JOIN ? 10 : 1;
}

static void on_message(void *ctx, const struct rtmd_app *app, enum rtmd_message_type type,
                       struct rtmd_str from, struct rtmd_str to, struct rtmd_str payload,
                       uint64_t ms)
{
    (void)ctx;
    (void)app;
    assert_int_equal(type, RTMD_MSG_PEER);
    assert_true(rtmd_str_eq_cstr(from, "a") && rtmd_str_eq_cstr(to, "b"));
    assert_true(rtmd_str_eq_cstr(payload, "hi") && ms == 7);
    messages_++;
}

static void test_the_sink_sees_each_op_and_message(void **state)
{
    (void)state;
    static const struct rtmd_tap_sink sink = {on_presence, on_message};
    struct rtmd_app a = {.index = 1};
    struct rtmd_presence_op ops[] = {login_, join_, join_};
    rtmd_tap_set_sink(&sink, &presences_);
    rtmd_tap_presence(&a, ops, 3);
    rtmd_tap_message(&a, RTMD_MSG_PEER, RTMD_STR_LIT("a"), RTMD_STR_LIT("b"), RTMD_STR_LIT("hi"),
                     7);
    assert_int_equal(presences_, 21);
    assert_int_equal(messages_, 1);
    rtmd_tap_set_sink(NULL, NULL);
    rtmd_tap_presence(&a, ops, 1);
    assert_int_equal(presences_, 21);
    /* After the shutdown nothing is counted (nor allocated). */
    rtmd_tap_shutdown();
    rtmd_tap_presence(&a, ops, 3);
    uint32_t r[RTMD_TAP_RATES][RTMD_TAP_SECONDS];
    rtmd_tap_rates(&a, rtmd_now_ms() + 1000, r);
    assert_int_equal(sum(r[RTMD_TAP_JOINS]), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_whole_seconds_of_the_last_minute),
        cmocka_unit_test(test_the_sink_sees_each_op_and_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
