/*
 * Unit tests for core/buf.c: a buffer that cannot grow past its maximum,
 * consume/steal, and the integer formatting every JSON number goes through.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/buf.h"

static void assert_buf(const struct rtmd_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len != n || (n && memcmp(b->data, s, n) != 0))
        fail_msg("got  %.*s\nwant %s", (int)b->len, b->data ? b->data : "", s);
}

static void test_init_and_free(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 100);
    /* Nothing is allocated until the first byte. */
    assert_int_equal(rtmd_buf_append(&b, "", 0), 0);
    assert_null(b.data);
    rtmd_buf_free(&b);
    rtmd_buf_free(&b); /* twice is harmless */
    assert_null(b.data);
    assert_int_equal(b.max, 100); /* the bound survives a free */
}

static void test_max_enforced(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 10);
    assert_int_equal(rtmd_buf_append(&b, "0123456", 7), 0);
    assert_int_equal(rtmd_buf_append(&b, "789x", 4), RTMD_ELIMIT);
    assert_buf(&b, "0123456"); /* a refused append writes nothing */
    assert_int_equal(rtmd_buf_append(&b, "789", 3), 0);
    assert_buf(&b, "0123456789");
    assert_int_equal(rtmd_buf_append_byte(&b, 'x'), RTMD_ELIMIT);
    assert_int_equal(rtmd_buf_append_cstr(&b, "y"), RTMD_ELIMIT);
    assert_int_equal(rtmd_buf_append_str(&b, RTMD_STR_LIT("z")), RTMD_ELIMIT);
    assert_int_equal(rtmd_buf_append_u64(&b, 1), RTMD_ELIMIT);
    assert_int_equal(rtmd_buf_append(&b, "", 0), 0);
    assert_buf(&b, "0123456789");
    assert_true(b.cap <= b.max);
    rtmd_buf_free(&b);

    rtmd_buf_init(&b, 0);
    assert_int_equal(rtmd_buf_append_byte(&b, 'a'), RTMD_ELIMIT);
    assert_int_equal(rtmd_buf_reserve(&b, 1), RTMD_ELIMIT);
    assert_int_equal(rtmd_buf_reserve(&b, 0), 0);
    assert_null(b.data);
    rtmd_buf_free(&b);
}

static void test_reserve_overflow(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, SIZE_MAX);
    assert_int_equal(rtmd_buf_append(&b, "abc", 3), 0);
    /* len + n would wrap around: refused, not allocated. */
    assert_int_equal(rtmd_buf_reserve(&b, SIZE_MAX), RTMD_ELIMIT);
    assert_int_equal(rtmd_buf_reserve(&b, SIZE_MAX - 2), RTMD_ELIMIT);
    assert_buf(&b, "abc");
    rtmd_buf_free(&b);
}

static void test_bounded_growth(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 1000);
    size_t last_cap = 0;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(rtmd_buf_append_byte(&b, (char)('a' + i % 26)), 0);
        assert_true(b.cap >= b.len);
        assert_true(b.cap <= b.max);
        assert_true(b.cap >= last_cap);
        last_cap = b.cap;
    }
    /* doubling from 64, clamped to the maximum */
    assert_int_equal(b.cap, 1000);
    assert_int_equal(b.len, 1000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    assert_int_equal(rtmd_buf_append_byte(&b, 'x'), RTMD_ELIMIT);
    rtmd_buf_free(&b);

    rtmd_buf_init(&b, 1 << 20);
    assert_int_equal(rtmd_buf_append(&b, "x", 1), 0);
    assert_int_equal(b.cap, 64);
    assert_int_equal(rtmd_buf_reserve(&b, 64), 0);
    assert_int_equal(b.cap, 128);
    assert_int_equal(rtmd_buf_reserve(&b, 1000), 0);
    assert_int_equal(b.cap, 1024);
    assert_int_equal(b.len, 1); /* reserve does not change the contents */
    rtmd_buf_free(&b);
}

static void test_reset_keeps_allocation(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 100);
    rtmd_buf_append_cstr(&b, "hello");
    char *p = b.data;
    size_t cap = b.cap;
    rtmd_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, p);
    assert_int_equal(b.cap, cap);
    rtmd_buf_append_cstr(&b, "bye");
    assert_buf(&b, "bye");
    rtmd_buf_free(&b);
}

static void test_consume(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 100);
    rtmd_buf_append_cstr(&b, "abcdefgh");
    rtmd_buf_consume(&b, 0);
    assert_buf(&b, "abcdefgh");
    rtmd_buf_consume(&b, 3);
    assert_buf(&b, "defgh");
    rtmd_buf_consume(&b, 4);
    assert_buf(&b, "h");
    rtmd_buf_consume(&b, 1);
    assert_int_equal(b.len, 0);
    rtmd_buf_append_cstr(&b, "xyz");
    rtmd_buf_consume(&b, 99); /* more than there is: empty */
    assert_int_equal(b.len, 0);
    /* room freed by consuming can be used again, up to max */
    char big[100];
    memset(big, 'q', sizeof(big));
    assert_int_equal(rtmd_buf_append(&b, big, 100), 0);
    rtmd_buf_consume(&b, 40);
    assert_int_equal(rtmd_buf_append(&b, big, 40), 0);
    assert_int_equal(rtmd_buf_append(&b, big, 1), RTMD_ELIMIT);
    assert_int_equal(b.len, 100);
    rtmd_buf_free(&b);
}

static void test_steal(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 100);
    rtmd_buf_append_cstr(&b, "stolen");
    size_t n = 0;
    char *p = rtmd_buf_steal(&b, &n);
    assert_non_null(p);
    assert_int_equal(n, 6);
    assert_memory_equal(p, "stolen", 6);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    /* the buffer is usable again, with the same bound */
    assert_int_equal(rtmd_buf_append_cstr(&b, "again"), 0);
    assert_buf(&b, "again");
    assert_int_equal(b.max, 100);
    free(p);
    /* len may be NULL; an empty buffer yields NULL */
    rtmd_buf_free(&b);
    assert_null(rtmd_buf_steal(&b, NULL));
    assert_null(rtmd_buf_steal(&b, &n));
    assert_int_equal(n, 0);
}

static void test_u64(void **state)
{
    (void)state;
    static const struct {
        uint64_t v;
        const char *s;
    } cases[] = {
        {0, "0"},
        {9, "9"},
        {10, "10"},
        {99, "99"},
        {100, "100"},
        {4294967295u, "4294967295"},
        {4294967296u, "4294967296"},
        {1578027420761ull, "1578027420761"},
        {9999999999999999999ull, "9999999999999999999"},
        {10000000000000000000ull, "10000000000000000000"},
        {UINT64_MAX, "18446744073709551615"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[21];
        size_t n = rtmd_u64_to_dec(cases[i].v, out);
        assert_int_equal(n, strlen(cases[i].s));
        assert_memory_equal(out, cases[i].s, n);
        struct rtmd_buf b;
        rtmd_buf_init(&b, 64);
        rtmd_buf_append_cstr(&b, "x=");
        assert_int_equal(rtmd_buf_append_u64(&b, cases[i].v), 0);
        char want[32];
        snprintf(want, sizeof(want), "x=%s", cases[i].s);
        assert_buf(&b, want);
        rtmd_buf_free(&b);
    }
    /* every power of ten and its neighbours, against printf */
    for (uint64_t p = 1;; p *= 10) {
        for (int d = -1; d <= 1; d++) {
            uint64_t v = p + (uint64_t)(int64_t)d;
            char out[21], want[24];
            size_t n = rtmd_u64_to_dec(v, out);
            snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
            assert_int_equal(n, strlen(want));
            assert_memory_equal(out, want, n);
        }
        if (p > UINT64_MAX / 10)
            break;
    }
}

static void test_i64(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        const char *s;
    } cases[] = {
        {0, "0"},
        {-1, "-1"},
        {1, "1"},
        {-10, "-10"},
        {-9007199254740991ll, "-9007199254740991"},
        {INT64_MAX, "9223372036854775807"},
        {INT64_MIN + 1, "-9223372036854775807"},
        {INT64_MIN, "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rtmd_buf b;
        rtmd_buf_init(&b, 64);
        assert_int_equal(rtmd_buf_append_i64(&b, cases[i].v), 0);
        assert_buf(&b, cases[i].s);
        rtmd_buf_free(&b);
    }
    /* bounded like any append: INT64_MIN takes 20 bytes */
    struct rtmd_buf b;
    rtmd_buf_init(&b, 20);
    assert_int_equal(rtmd_buf_append_i64(&b, INT64_MIN), 0);
    assert_int_equal(b.len, 20);
    rtmd_buf_free(&b);
    rtmd_buf_init(&b, 19);
    assert_int_equal(rtmd_buf_append_i64(&b, INT64_MIN), RTMD_ELIMIT);
    assert_true(b.len <= 19);
    rtmd_buf_free(&b);
    rtmd_buf_init(&b, 19);
    assert_int_equal(rtmd_buf_append_i64(&b, INT64_MAX), 0);
    assert_int_equal(b.len, 19);
    rtmd_buf_free(&b);
}

static void test_printf(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 32);
    assert_int_equal(rtmd_buf_printf(&b, "%s=%d", "n", 42), 0);
    assert_int_equal(rtmd_buf_printf(&b, ";%04x", 0xbeef), 0);
    assert_buf(&b, "n=42;beef");
    assert_int_equal(rtmd_buf_printf(&b, "%s", ""), 0);
    assert_buf(&b, "n=42;beef");
    /* too long for what is left: refused, contents kept */
    assert_int_equal(rtmd_buf_printf(&b, "%030d", 1), RTMD_ELIMIT);
    assert_buf(&b, "n=42;beef");
    rtmd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_and_free),
        cmocka_unit_test(test_max_enforced),
        cmocka_unit_test(test_reserve_overflow),
        cmocka_unit_test(test_bounded_growth),
        cmocka_unit_test(test_reset_keeps_allocation),
        cmocka_unit_test(test_consume),
        cmocka_unit_test(test_steal),
        cmocka_unit_test(test_u64),
        cmocka_unit_test(test_i64),
        cmocka_unit_test(test_printf),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
