/*
 * Unit tests for core/ids.c: the identifier rules (1 to 64 bytes of the
 * characters below, not "null") and UTF-8 validation. The allowed set is
 * spelled out here again, independently of ids.c, and every byte value is checked against it; UTF-8
 * is checked against a reference decoder written from RFC 3629, exhaustively
 * for every 1-, 2- and 3-byte input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "core/ids.h"

/* IDs: a-z A-Z 0-9, space and ! # $ % & ( ) + - : ; < = . > ? @ [ ] ^ _ { } | ~ , ' */
static const char spec_punct[] = " !#$%&()+-:;<=.>?@[]^_{}|~,'";

static bool spec_allows(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && memchr(spec_punct, c, sizeof(spec_punct) - 1) != NULL;
}

static bool id_ok(const char *s)
{
    return rtmd_id_valid(rtmd_str_cstr(s));
}

static bool path_ok(const char *s)
{
    return rtmd_id_valid_in_path(rtmd_str_cstr(s));
}

/* ---- uid / channel ---------------------------------------------------------------- */

static void test_id_every_byte(void **state)
{
    (void)state;
    int allowed = 0;
    for (int c = 0; c < 256; c++) {
        char one = (char)c;
        /* alone, and between two valid characters */
        char three[3] = {'a', (char)c, 'b'};
        bool want = spec_allows((unsigned char)c);
        assert_int_equal(rtmd_id_valid(rtmd_str_make(&one, 1)), want);
        assert_int_equal(rtmd_id_valid(rtmd_str_make(three, 3)), want);
        allowed += want;
    }
    /* 62 alphanumerics and 28 punctuation characters (space included) */
    assert_int_equal(allowed, 62 + 28);
}

static void test_id_disallowed_printable(void **state)
{
    (void)state;
    /* The printable ASCII characters IDs leave out. */
    static const char out[] = "\"*/\\`";
    for (size_t i = 0; i < sizeof(out) - 1; i++) {
        char s[4] = {'u', out[i], 'v', '\0'};
        assert_false(id_ok(s));
    }
    int printable_out = 0;
    for (int c = 0x20; c < 0x7f; c++)
        printable_out += !spec_allows((unsigned char)c);
    assert_int_equal(printable_out, (int)sizeof(out) - 1);
    /* control characters, DEL, and anything above ASCII */
    assert_false(id_ok("a\tb"));
    assert_false(id_ok("a\x7f"));
    assert_false(id_ok("caf\xc3\xa9"));
    assert_false(rtmd_id_valid(rtmd_str_make("a\0b", 3)));
}

static void test_id_lengths(void **state)
{
    (void)state;
    char buf[RTMD_ID_MAX + 2];
    memset(buf, 'x', sizeof(buf));
    assert_false(rtmd_id_valid(rtmd_str_make(buf, 0)));
    assert_true(rtmd_id_valid(rtmd_str_make(buf, 1)));
    assert_true(rtmd_id_valid(rtmd_str_make(buf, 63)));
    assert_true(rtmd_id_valid(rtmd_str_make(buf, 64)));
    assert_false(rtmd_id_valid(rtmd_str_make(buf, 65)));
    assert_false(rtmd_id_valid(rtmd_str_make(buf, RTMD_ID_MAX + 2)));
    assert_false(rtmd_id_valid(RTMD_STR_NULL));
    assert_false(rtmd_id_valid(rtmd_str_make(NULL, 5)));
    /* 64 characters of every kind */
    for (int c = 0; c < 256; c++) {
        if (!spec_allows((unsigned char)c))
            continue;
        memset(buf, c, 64);
        assert_true(rtmd_id_valid(rtmd_str_make(buf, 64)));
    }
}

static void test_id_null_string(void **state)
{
    (void)state;
    assert_false(id_ok("null"));
    assert_false(path_ok("null"));
    /* only exactly "null" (case-sensitive) */
    assert_true(id_ok("Null"));
    assert_true(id_ok("NULL"));
    assert_true(id_ok("nul"));
    assert_true(id_ok("nulls"));
    assert_true(id_ok(" null"));
    assert_true(id_ok("null "));
    assert_false(rtmd_id_valid(rtmd_str_make("nullx", 4)));
}

static void test_id_spaces(void **state)
{
    (void)state;
    /* Spaces are allowed anywhere in an ID ... */
    assert_true(id_ok(" "));
    assert_true(id_ok(" lead"));
    assert_true(id_ok("trail "));
    assert_true(id_ok("in side"));
    /* ... but not at either end of one taken from a URL path. */
    assert_false(path_ok(" "));
    assert_false(path_ok("  "));
    assert_false(path_ok(" lead"));
    assert_false(path_ok("trail "));
    assert_true(path_ok("in side"));
    assert_true(path_ok("a  b"));
    assert_true(path_ok("x"));
    /* and otherwise the same rules */
    assert_false(path_ok(""));
    assert_false(path_ok("a/b"));
    assert_false(rtmd_id_valid_in_path(RTMD_STR_NULL));
    char buf[65];
    memset(buf, 'p', sizeof(buf));
    assert_true(rtmd_id_valid_in_path(rtmd_str_make(buf, 64)));
    assert_false(rtmd_id_valid_in_path(rtmd_str_make(buf, 65)));
}

/* ---- appid and certificate ------------------------------------------------------------ */

static void test_appid(void **state)
{
    (void)state;
    assert_true(rtmd_appid_valid(RTMD_STR_LIT("970CA35de60c44645bbae8a215061b33")));
    assert_true(rtmd_appid_valid(RTMD_STR_LIT("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef")));
    assert_true(rtmd_appid_valid(RTMD_STR_LIT("ghijklmnopqrstuvwxyz012345678900")));
    assert_false(rtmd_appid_valid(RTMD_STR_LIT("970CA35de60c44645bbae8a215061b3")));
    assert_false(rtmd_appid_valid(RTMD_STR_LIT("970CA35de60c44645bbae8a215061b333")));
    assert_false(rtmd_appid_valid(RTMD_STR_LIT("")));
    assert_false(rtmd_appid_valid(RTMD_STR_NULL));
    assert_false(rtmd_appid_valid(rtmd_str_make(NULL, 32)));
    char id[33] = "970CA35de60c44645bbae8a215061b33";
    for (int c = 0; c < 256; c++) {
        id[7] = (char)c;
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        assert_int_equal(rtmd_appid_valid(rtmd_str_make(id, 32)), alnum);
    }
}

static void test_certificate(void **state)
{
    (void)state;
    assert_true(rtmd_certificate_valid(RTMD_STR_LIT("5CFd2fd1755d40ecb72977518be15d3b")));
    assert_true(rtmd_certificate_valid(RTMD_STR_LIT("0123456789abcdefABCDEF0123456789")));
    assert_false(rtmd_certificate_valid(RTMD_STR_LIT("5CFd2fd1755d40ecb72977518be15d3")));
    assert_false(rtmd_certificate_valid(RTMD_STR_LIT("5CFd2fd1755d40ecb72977518be15d3bb")));
    assert_false(rtmd_certificate_valid(RTMD_STR_NULL));
    char cert[33] = "5CFd2fd1755d40ecb72977518be15d3b";
    for (int c = 0; c < 256; c++) {
        cert[31] = (char)c;
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        assert_int_equal(rtmd_certificate_valid(rtmd_str_make(cert, 32)), hex);
    }
}

/* ---- UTF-8 ------------------------------------------------------------------------------ */

/* Reference: RFC 3629 §4's syntax, decoded the long way. */
static bool ref_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static bool utf8(const char *s)
{
    return rtmd_utf8_valid(s, strlen(s));
}

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(rtmd_utf8_valid("", 0));
    assert_true(rtmd_utf8_valid(NULL, 0));
    assert_true(utf8("plain ascii ~"));
    assert_true(rtmd_utf8_valid("nul\0inside", 10)); /* U+0000 is a character */
    assert_true(utf8("\xc2\x80"));                   /* U+0080 */
    assert_true(utf8("\xdf\xbf"));                   /* U+07FF */
    assert_true(utf8("\xe0\xa0\x80"));               /* U+0800 */
    assert_true(utf8("\xed\x9f\xbf"));               /* U+D7FF, below the surrogates */
    assert_true(utf8("\xee\x80\x80"));               /* U+E000, above them */
    assert_true(utf8("\xef\xbf\xbf"));               /* U+FFFF */
    assert_true(utf8("\xf0\x90\x80\x80"));           /* U+10000 */
    assert_true(utf8("\xf4\x8f\xbf\xbf"));           /* U+10FFFF */
    assert_true(utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
}

static void test_utf8_invalid(void **state)
{
    (void)state;
    /* overlong forms */
    assert_false(utf8("\xc0\x80"));
    assert_false(utf8("\xc0\xaf"));
    assert_false(utf8("\xc1\xbf"));
    assert_false(utf8("\xe0\x80\x80"));
    assert_false(utf8("\xe0\x9f\xbf"));
    assert_false(utf8("\xf0\x80\x80\x80"));
    assert_false(utf8("\xf0\x8f\xbf\xbf"));
    /* surrogates, alone and paired (CESU-8) */
    assert_false(utf8("\xed\xa0\x80"));
    assert_false(utf8("\xed\xbf\xbf"));
    assert_false(utf8("\xed\xa0\xbd\xed\xb8\x80"));
    /* above U+10FFFF, and lead bytes that can never appear */
    assert_false(utf8("\xf4\x90\x80\x80"));
    assert_false(utf8("\xf5\x80\x80\x80"));
    assert_false(utf8("\xf8\x88\x80\x80\x80"));
    assert_false(utf8("\xfe"));
    assert_false(utf8("\xff"));
    /* truncated sequences, at the end and before more text */
    assert_false(utf8("\xc2"));
    assert_false(utf8("\xe2\x82"));
    assert_false(utf8("\xf0\x9f\x98"));
    assert_false(utf8("ok\xe2\x82"));
    assert_false(utf8("\xe2\x82z"));
    /* continuation bytes without a lead, or a lead without them */
    assert_false(utf8("\x80"));
    assert_false(utf8("a\xbf"));
    assert_false(utf8("\xc2\x41"));
    assert_false(utf8("\xe2\x28\xa1"));
    assert_false(utf8("\xf0\x9f\x98\x28"));
    /* a length that stops inside a sequence */
    assert_false(rtmd_utf8_valid("\xc3\xa9", 1));
    assert_true(rtmd_utf8_valid("\xc3\xa9", 2));
}

static void test_utf8_exhaustive_short(void **state)
{
    (void)state;
    unsigned char b[3];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (unsigned char)x;
        assert_int_equal(rtmd_utf8_valid((char *)b, 1), ref_utf8(b, 1));
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (unsigned char)y;
            if (rtmd_utf8_valid((char *)b, 2) != ref_utf8(b, 2))
                fail_msg("2 bytes %02x %02x", x, y);
            for (unsigned z = 0; z < 256; z++) {
                b[2] = (unsigned char)z;
                if (rtmd_utf8_valid((char *)b, 3) != ref_utf8(b, 3))
                    fail_msg("3 bytes %02x %02x %02x", x, y, z);
            }
        }
    }
}

static void test_utf8_four_byte_leads(void **state)
{
    (void)state;
    /* Every 4-byte lead with every second byte, and third/fourth bytes at
     * the interesting values. */
    static const unsigned char tail[] = {0x00, 0x3f, 0x7f, 0x80, 0x8f, 0x90, 0xbf, 0xc0, 0xff};
    unsigned char b[4];
    for (unsigned x = 0xe0; x < 0x100; x++) {
        for (unsigned y = 0; y < 256; y++) {
            for (size_t k = 0; k < sizeof(tail); k++) {
                for (size_t l = 0; l < sizeof(tail); l++) {
                    b[0] = (unsigned char)x, b[1] = (unsigned char)y, b[2] = tail[k],
                    b[3] = tail[l];
                    if (rtmd_utf8_valid((char *)b, 4) != ref_utf8(b, 4))
                        fail_msg("4 bytes %02x %02x %02x %02x", b[0], b[1], b[2], b[3]);
                }
            }
        }
    }
    /* every code point U+10000..U+10FFFF encoded, and one past the end */
    for (uint32_t cp = 0x10000; cp <= 0x110000; cp += 0x3ff) {
        b[0] = (unsigned char)(0xf0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (unsigned char)(0x80 | (cp & 0x3f));
        assert_int_equal(rtmd_utf8_valid((char *)b, 4), cp <= 0x10ffff);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_every_byte),
        cmocka_unit_test(test_id_disallowed_printable),
        cmocka_unit_test(test_id_lengths),
        cmocka_unit_test(test_id_null_string),
        cmocka_unit_test(test_id_spaces),
        cmocka_unit_test(test_appid),
        cmocka_unit_test(test_certificate),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_invalid),
        cmocka_unit_test(test_utf8_exhaustive_short),
        cmocka_unit_test(test_utf8_four_byte_leads),
    };
    return cmocka_run_group_tests_name("ids", tests, NULL, NULL);
}
