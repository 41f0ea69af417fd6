/*
 * Unit tests for webhook/sign.c: the X-Rtmd-Signature value against
 * HMAC-SHA256 computed independently (Python's hmac module), the retry
 * schedule's bounds, doubling and jitter, and the JSON of one delivered
 * event.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "webhook/sign.h"

/* ---- signature ------------------------------------------------------------------- */

static void test_sign_known_vector(void **state)
{
    (void)state;
    char sig[RTMD_WEBHOOK_SIG_MAX];
    /* python3: hmac.new(b"whsec_0123456789abcdef", b'1700000000.{"events":[]}',
     * hashlib.sha256).hexdigest() */
    int n = rtmd_webhook_sign(sig, rtmd_str_cstr("whsec_0123456789abcdef"), 1700000000,
                              rtmd_str_cstr("{\"events\":[]}"));
    const char *want = "t=1700000000,v1="
                       "473a4242de662e4ffdbf788af4dc5863afc5ecc969d6d7fd36377e754b00d93e";
    assert_string_equal(sig, want);
    assert_int_equal(n, (int)strlen(want));
}

static void test_sign_long_key_and_empty_body(void **state)
{
    (void)state;
    char key[200], sig[RTMD_WEBHOOK_SIG_MAX];
    memset(key, 'k', sizeof(key));
    /* A key longer than SHA-256's block is hashed first (RFC 2104). */
    int n = rtmd_webhook_sign(sig, rtmd_str_make(key, sizeof(key)), 0, rtmd_str_make("", 0));
    assert_string_equal(sig,
                        "t=0,v1=76a82ba859636cc3081c72aa270fd66ac81a202f8182404e7752795c6e7ba88f");
    assert_true(n > 0);
}

static void test_sign_fits_the_largest_timestamp(void **state)
{
    (void)state;
    char sig[RTMD_WEBHOOK_SIG_MAX];
    int n =
        rtmd_webhook_sign(sig, rtmd_str_cstr("0123456789abcdef"), UINT64_MAX, rtmd_str_cstr("x"));
    assert_int_equal(n, 2 + 20 + 4 + 64);
    assert_true(n < RTMD_WEBHOOK_SIG_MAX);
    assert_int_equal(strncmp(sig, "t=18446744073709551615,v1=", 26), 0);
}

static void test_sign_depends_on_every_input(void **state)
{
    (void)state;
    char a[RTMD_WEBHOOK_SIG_MAX], b[RTMD_WEBHOOK_SIG_MAX];
    rtmd_webhook_sign(a, rtmd_str_cstr("0123456789abcdef"), 10, rtmd_str_cstr("body"));
    rtmd_webhook_sign(b, rtmd_str_cstr("0123456789abcdeF"), 10, rtmd_str_cstr("body"));
    assert_string_not_equal(a + 5, b + 5);
    rtmd_webhook_sign(b, rtmd_str_cstr("0123456789abcdef"), 11, rtmd_str_cstr("body"));
    assert_string_not_equal(a + 5, b + 5);
    rtmd_webhook_sign(b, rtmd_str_cstr("0123456789abcdef"), 10, rtmd_str_cstr("bodY"));
    assert_string_not_equal(a + 5, b + 5);
}

/* ---- backoff --------------------------------------------------------------------- */

static void test_backoff_doubles_within_equal_jitter(void **state)
{
    (void)state;
    uint64_t d = RTMD_WEBHOOK_BACKOFF_FIRST_MS;
    for (uint32_t attempt = 1; attempt <= 40; attempt++) {
        uint64_t full = d < RTMD_WEBHOOK_BACKOFF_MAX_MS ? d : RTMD_WEBHOOK_BACKOFF_MAX_MS;
        uint64_t lo = rtmd_webhook_backoff_ms(attempt, 0);
        uint64_t hi = rtmd_webhook_backoff_ms(attempt, UINT32_MAX);
        assert_int_equal(lo, full / 2);
        assert_true(hi <= full && hi >= lo);
        for (uint32_t r = 1; r < 100000; r += 997) {
            uint64_t w = rtmd_webhook_backoff_ms(attempt, r * 2654435761u);
            assert_true(w >= full / 2 && w <= full);
        }
        if (d < RTMD_WEBHOOK_BACKOFF_MAX_MS)
            d *= 2;
    }
    /* Attempt 0 is treated as the first; huge ones stay at the cap. */
    assert_int_equal(rtmd_webhook_backoff_ms(0, 0), RTMD_WEBHOOK_BACKOFF_FIRST_MS / 2);
    assert_int_equal(rtmd_webhook_backoff_ms(UINT32_MAX, 0), RTMD_WEBHOOK_BACKOFF_MAX_MS / 2);
}

static void test_backoff_spreads(void **state)
{
    (void)state;
    /* At the cap, different random values give different waits. */
    uint64_t seen[8];
    for (uint32_t i = 0; i < 8; i++)
        seen[i] = rtmd_webhook_backoff_ms(30, i * 536870911u);
    for (int i = 0; i < 8; i++)
        for (int k = i + 1; k < 8; k++)
            assert_true(seen[i] != seen[k]);
}

/* Reaching 24 h of retries takes a bounded number of attempts. */
static void test_backoff_covers_a_day_in_few_attempts(void **state)
{
    (void)state;
    uint64_t total = 0;
    uint32_t n = 0;
    while (total < 86400000u) {
        total += rtmd_webhook_backoff_ms(++n, UINT32_MAX);
        assert_true(n < 400);
    }
    assert_true(n > 280); /* a max wait of 5 min: about 288 + the first few */
}

/* ---- event JSON ------------------------------------------------------------------ */

static void test_event_json(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 4096);
    const char *join =
        "{\"channel_id\":\"c\",\"group_id\":\"c\",\"ms\":5,\"ts\":5,\"type\":\"Join\","
        "\"user_id\":\"u\"}";
    assert_int_equal(rtmd_webhook_event(&b, rtmd_str_cstr("APP"), 'c', 42, rtmd_str_cstr(join),
                                        rtmd_str_cstr("n1|9")),
                     0);
    assert_int_equal(rtmd_buf_append_byte(&b, 0), 0);
    assert_string_equal(b.data,
                        "{\"app_id\":\"APP\",\"event_id\":\"APP-c-42\",\"channel_id\":\"c\","
                        "\"group_id\":\"c\",\"ms\":5,\"seq\":42,\"session_id\":\"n1|9\",\"ts\":5,"
                        "\"type\":\"Join\",\"user_id\":\"u\"}");
    /* Not an object: refused, nothing appended. */
    rtmd_buf_reset(&b);
    assert_int_equal(
        rtmd_webhook_event(&b, rtmd_str_cstr("A"), 'u', 1, rtmd_str_cstr("[]"), rtmd_str_cstr("")),
        -EINVAL);
    assert_int_equal(b.len, 0);
    /* A bound too small leaves out nothing half-written. */
    struct rtmd_buf small;
    rtmd_buf_init(&small, 40);
    assert_int_not_equal(rtmd_webhook_event(&small, rtmd_str_cstr("APP"), 'c', 42,
                                            rtmd_str_cstr(join), rtmd_str_cstr("n1|9")),
                         0);
    assert_int_equal(small.len, 0);
    rtmd_buf_free(&small);
    rtmd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_known_vector),
        cmocka_unit_test(test_sign_long_key_and_empty_body),
        cmocka_unit_test(test_sign_fits_the_largest_timestamp),
        cmocka_unit_test(test_sign_depends_on_every_input),
        cmocka_unit_test(test_backoff_doubles_within_equal_jitter),
        cmocka_unit_test(test_backoff_spreads),
        cmocka_unit_test(test_backoff_covers_a_day_in_few_attempts),
        cmocka_unit_test(test_event_json),
    };
    return cmocka_run_group_tests_name("webhook_sign", tests, NULL, NULL);
}
