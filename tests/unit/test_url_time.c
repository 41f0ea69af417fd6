/* Unit tests: core/url.c (percent-decoding, query parameters) and
 * core/timefmt.c (ISO-8601 UTC times of the history API). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/timefmt.h"
#include "core/url.h"

static int decode(const char *in, bool plus, char *out, size_t outlen)
{
    struct rtmd_buf b;
    rtmd_buf_init(&b, outlen - 1);
    int r = rtmd_url_decode(&b, rtmd_str_cstr(in), plus);
    if (r == 0) {
        memcpy(out, b.data ? b.data : "", b.len);
        out[b.len] = '\0';
    }
    rtmd_buf_free(&b);
    return r;
}

static void url_decode_valid(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(decode("a%20b", false, out, sizeof(out)), 0);
    assert_string_equal(out, "a b");
    assert_int_equal(decode("a+b", false, out, sizeof(out)), 0);
    assert_string_equal(out, "a+b");
    assert_int_equal(decode("a+b", true, out, sizeof(out)), 0);
    assert_string_equal(out, "a b");
    assert_int_equal(decode("%7e%7E%41", false, out, sizeof(out)), 0);
    assert_string_equal(out, "~~A");
    assert_int_equal(decode("", false, out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

static void url_decode_stray_percent(void **state)
{
    (void)state;
    char out[8];
    /* a '%' that starts no escape is itself */
    assert_int_equal(decode("%", false, out, sizeof(out)), 0);
    assert_string_equal(out, "%");
    assert_int_equal(decode("%2", false, out, sizeof(out)), 0);
    assert_string_equal(out, "%2");
    assert_int_equal(decode("ab%g0", false, out, sizeof(out)), 0);
    assert_string_equal(out, "ab%g0");
    assert_int_equal(decode("%0g%41", false, out, sizeof(out)), 0);
    assert_string_equal(out, "%0gA");
    assert_int_equal(decode("50%%25", false, out, sizeof(out)), 0);
    assert_string_equal(out, "50%%");
    /* the output bound holds */
    assert_int_equal(decode("abcdefghij", false, out, sizeof(out)), RTMD_ELIMIT);
}

static void query_params(void **state)
{
    (void)state;
    struct rtmd_str q = RTMD_STR_LIT("&source=%22u1%22&destination=u2&empty=&flag&x=1=2");
    struct rtmd_str v;
    assert_true(rtmd_query_param(q, "source", &v));
    assert_true(rtmd_str_eq_cstr(v, "%22u1%22"));
    assert_true(rtmd_query_param(q, "destination", &v));
    assert_true(rtmd_str_eq_cstr(v, "u2"));
    assert_true(rtmd_query_param(q, "empty", &v));
    assert_int_equal(v.len, 0);
    assert_true(rtmd_query_param(q, "flag", &v));
    assert_int_equal(v.len, 0);
    assert_true(rtmd_query_param(q, "x", &v));
    assert_true(rtmd_str_eq_cstr(v, "1=2"));
    assert_false(rtmd_query_param(q, "sourc", &v));
    assert_false(rtmd_query_param(q, "dest", &v));
    assert_false(rtmd_query_param(RTMD_STR_LIT(""), "a", &v));
}

static int64_t parse(const char *s)
{
    uint64_t ms;
    return rtmd_iso8601_parse(rtmd_str_cstr(s), &ms) == 0 ? (int64_t)ms : -1;
}

static void iso8601_valid(void **state)
{
    (void)state;
    assert_int_equal(parse("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse("2019-08-01T01:22:10Z"), 1564622530000LL);
    /* JavaScript's toISOString() */
    assert_int_equal(parse("2022-02-12T09:22:46.039Z"), 1644657766039LL);
    assert_int_equal(parse("2022-02-12T09:22:46.0Z"), 1644657766000LL);
    assert_int_equal(parse("2022-02-12T09:22:46.123456789Z"), 1644657766123LL);
    assert_int_equal(parse("2022-02-12T09:22:46+00:00"), 1644657766000LL);
    /* no zone: UTC */
    assert_int_equal(parse("2022-02-12T09:22:46"), 1644657766000LL);
    assert_int_equal(parse("2022-02-12T09:22:46.039"), 1644657766039LL);
    assert_int_equal(parse("2024-02-29T23:59:59Z"), 1709251199000LL); /* leap day */
    assert_int_equal(parse("2000-02-29T00:00:00Z"), 951782400000LL);  /* 400-year leap */
}

static void iso8601_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "2019-08-01",
        "2019-08-01T01:22:10+08:00", /* not UTC */
        "2019-08-01 01:22:10Z",      /* space */
        "2019-13-01T01:22:10Z",      /* month */
        "2019-02-29T01:22:10Z",      /* not a leap year */
        "1900-02-29T00:00:00Z",      /* before 1970, and no leap day */
        "2019-04-31T01:22:10Z",      /* April has 30 */
        "2019-08-01T24:00:00Z",      /* hour */
        "2019-08-01T01:60:10Z",      /* minute */
        "2019-08-01T01:22:60Z",      /* second */
        "2019-08-01T01:22:10.Z",     /* empty fraction */
        "2019-08-01T01:22:10.1234567890Z",
        "2019-08-01T01:22:10ZZ",
        "2019-08-01T01:22:1",   /* short */
        "2019-08-01T01:22:10.", /* empty fraction, no zone */
        "2019-08-01T01:22:10 ", /* trailing space */
        "2019-08-01T01:22:10z",
        "\"2019-08-01T01:22:10Z\"",
        "2019-0a-01T01:22:10Z",
        "1969-12-31T23:59:59Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms;
        assert_int_equal(rtmd_iso8601_parse(rtmd_str_cstr(bad[i]), &ms), -EINVAL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_decode_valid), cmocka_unit_test(url_decode_stray_percent),
        cmocka_unit_test(query_params),     cmocka_unit_test(iso8601_valid),
        cmocka_unit_test(iso8601_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
