/*
 * test_token.c — RTM tokens 006/007 (the test vectors Agora publishes with its
 * token builders in AgoraIO/Tools),
 * strict base64, Basic credentials, secret comparison and `rtmd token`.
 *
 * token.c is included so its statics (parsers, signers, inflate) can be
 * checked against the intermediate values of those vectors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/basic.h"
#include "auth/token.c"
#include "cli/token_cmd.h"
#include "core/base64.h"

/* ---- fixtures ------------------------------------------------------------ */

#define APP         "970CA35de60c44645bbae8a215061b33"
#define CERT        "5CFd2fd1755d40ecb72977518be15d3b"
#define OTHER_CERT  "5CFd2fd1755d40ecb72977518be15d3c"
#define RTC_CHANNEL "7d72365eb983485397e3e3f9d460bdda"
#define ISSUE       1111111u
#define SKEW        300u /* token_clock_skew_s */

#define V1                                                                                         \
    "006970CA35de60c44645bbae8a215061b33IAAsR0qgiCxv0vrpRcpkz5BrbfEWCBZ6kvR6t7qG/"                 \
    "wJIQob86ogAAAAAEAABAAAAR/QQAAEA6AOvKDdW"
#define V2                                                                                         \
    "006970CA35de60c44645bbae8a215061b33IABR8ywaENKv6kia6iUU6P54g017Bi6Ym9sIGdt9f3sLLYb86ogAAAAAE" \
    "AABAAAAR/QQAAEA6ANkAAAA"
#define V3                                                                                         \
    "006970CA35de60c44645bbae8a215061b33IACV0fZUBw+"                                               \
    "72cVoL9eyGGh3Q6Poi8bgjwVLnyKSJyOXR7dIfRBXoFHlEAABAAAAR/QQAAEAAQCvKDdW"
#define V4                                                                                         \
    "006970CA35de60c44645bbae8a215061b33IACw1o7htY6ISdNRtku3p9tjTPi0jCKf9t49UHJhzCmL6bdIfRAAAAAAE" \
    "AABAAAAR/QQAAEAAQCvKDdW"
#define V5                                                                                         \
    "007eJxTYEhuZrAR/XT+XPihI+6t4t5F9RtUltw9em3Pwi2sr6P/"                                          \
    "lAspMFiaGzg7GpumpJoZJJuYmJmYJiUlplokGhmaGpgZJhkbu38RYIhgYmBgZABhJiBmBPO5GIwsLIyMTQyNzI0BndAd" \
    "Kg=="
#define V6                                                                                         \
    "007eJxSYOCdJftjyTM2zxW6Xhm/5T0j5LdcUt/"                                                       \
    "xYVt48fb5Mp3PX9coMFiaGzg7GpumpJoZJJuYmJmYJiUlplokGhmaGpgZJhkbu38RYIhgYmBgZABhJgZGBkYwn5OhJLW" \
    "4JL60OLUIEAAA//9ZVh6A"
#define V6B                                                                                        \
    "007eJxTYOCdJftjyTM2zxW6Xhm/5T0j5LdcUt/"                                                       \
    "xYVt48fb5Mp3PX9coMFiaGzg7GpumpJoZJJuYmJmYJiUlplokGhmaGpgZJhkbu38RYIhgYmBgZABhJiBmBPM5GUpSi0v" \
    "iS4tTiwBZVh6A"
#define V7                                                                                         \
    "007eJxTYOAQsrQ5s3TfH+"                                                                        \
    "1tvy8zZZ46EpCc0V43JXdGd2jS8porKo4KDJbmBs6OxqYpqWYGySYmZiamSUmJqRaJRoamBmaGScbG7l8EGCKYGBgYGR" \
    "gYmIAkCxCD+ExgkhlMsoBJBQbzFHMjYzPT1CRLC2MTC1NjS/"                                             \
    "NU41TjNMsUEzODpJSURC4GIwsLI2MTQyNzY5BZEJM4GUpSi0viS4tTiwAipyp4"
#define V7B                                                                                        \
    "007eJxTYOAQsrQ5s3TfH+"                                                                        \
    "1tvy8zZZ46EpCc0V43JXdGd2jS8porKo4KDJbmBs6OxqYpqWYGySYmZiamSUmJqRaJRoamBmaGScbG7l8EGCKYGBgYGR" \
    "gYmBgYGVgYGMF8JjDJDCZZwKQCg3mKuZGxmWlqkqWFsYmFqbGleapxqnGaZYqJmUFSSkoiF4ORhYWRsYmhkbkxyCyISZ" \
    "wMJanFJfGlxalFACKnKng="

static const struct rtmd_str app = RTMD_STR_LIT(APP);
static const struct rtmd_str cert = RTMD_STR_LIT(CERT);

static struct rtmd_str S(const char *s) {
    return rtmd_str_cstr(s);
}

static size_t
hex_to_bytes(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        assert_int_equal(sscanf(p, "%2x", &v), 1);
        assert_true(n < cap);
        out[n++] = (unsigned char)v;
        p += 2;
    }
    return n;
}

static void assert_hex(const void *p, size_t len, const char *hex)
{
    unsigned char want[512];
    size_t n = hex_to_bytes(hex, want, sizeof(want));
    assert_int_equal(len, n);
    assert_memory_equal(p, want, n);
}

static int verify(const char *token, const char *uid, uint64_t now, struct rtmd_token_info *info)
{
    struct rtmd_token_info scratch;
    return rtmd_token_verify(S(token), app, cert, S(uid), now, SKEW, info ? info : &scratch);
}

/* token verifies for uid at `at`, which is its expire_ts, and no longer a
 * second later. */
static void expect_expiry(const char *token, const char *uid, uint64_t at)
{
    struct rtmd_token_info info;
    assert_int_equal(verify(token, uid, at, &info), 0);
    assert_int_equal(info.expire_ts, at);
    assert_int_equal(verify(token, uid, at + 1, NULL), RTMD_EEXPIRED);
}

static int verify_len(const char *token, size_t len, const char *uid, uint64_t now)
{
    struct rtmd_token_info info;
    return rtmd_token_verify(rtmd_str_make(token, len), app, cert, S(uid), now, SKEW, &info);
}

/* Inflates a 007 token into out; returns the length. */
static size_t inflate_token(const char *token, unsigned char out[RTMD_TOKEN_INFLATED_MAX])
{
    struct rtmd_buf packed;
    rtmd_buf_init(&packed, DECODED_MAX);
    assert_memory_equal(token, "007", 3);
    assert_int_equal(rtmd_base64_decode(&packed, S(token + 3)), 0);
    size_t n = 0;
    assert_int_equal(inflate_bounded(packed.data, packed.len, out, &n), 0);
    rtmd_buf_free(&packed);
    return n;
}

/* Decodes the base64 part of a 006 token. */
static size_t decode_006(const char *token, unsigned char *out, size_t cap)
{
    struct rtmd_buf b;
    rtmd_buf_init(&b, cap);
    assert_int_equal(rtmd_base64_decode(&b, S(token + 35)), 0);
    size_t n = b.len;
    memcpy(out, b.data, n);
    rtmd_buf_free(&b);
    return n;
}

/* "006" + app + base64(content), NUL-terminated; caller frees. */
static char *wrap_006(const char *app_id, const void *content, size_t len)
{
    struct rtmd_buf b;
    rtmd_buf_init(&b, 4 * RTMD_TOKEN_MAX);
    assert_int_equal(rtmd_buf_append_cstr(&b, "006"), 0);
    assert_int_equal(rtmd_buf_append_cstr(&b, app_id), 0);
    assert_int_equal(rtmd_base64_encode(&b, content, len), 0);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    return rtmd_buf_steal(&b, NULL);
}

/* A signed 006 content for `user` with the given m, crc fields as given. */
static char *make_006(const char *user, const void *m, size_t mlen, uint32_t crc_channel,
                      uint32_t crc_uid, const char *sign_cert)
{
    unsigned char sig[SIG_LEN];
    assert_int_equal(
        sign_006(app, S(sign_cert), S(user), S(""), rtmd_str_make((const char *)m, mlen), sig), 0);
    struct rtmd_buf c;
    rtmd_buf_init(&c, 4096);
    assert_int_equal(append_pstr(&c, sig, SIG_LEN), 0);
    assert_int_equal(append_u32(&c, crc_channel), 0);
    assert_int_equal(append_u32(&c, crc_uid), 0);
    assert_int_equal(append_pstr(&c, m, mlen), 0);
    char *t = wrap_006(APP, c.data, c.len);
    rtmd_buf_free(&c);
    return t;
}

/* "007" + base64(zlib(plain)) at the given level; caller frees. */
static char *wrap_007_level(const void *plain, size_t len, int level)
{
    unsigned char packed[8192];
    uLongf n = sizeof(packed);
    assert_int_equal(compress2(packed, &n, plain, (uLong)len, level), Z_OK);
    struct rtmd_buf b;
    rtmd_buf_init(&b, 16384);
    assert_int_equal(rtmd_buf_append_cstr(&b, "007"), 0);
    assert_int_equal(rtmd_base64_encode(&b, packed, n), 0);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    return rtmd_buf_steal(&b, NULL);
}

static char *wrap_007(const void *plain, size_t len)
{
    return wrap_007_level(plain, len, Z_DEFAULT_COMPRESSION);
}

/* signing_info builder for crafted 007 tokens. */
static void info_begin(struct rtmd_buf *b, const char *app_id, uint32_t issue, uint32_t expire,
                       uint32_t salt, uint16_t services)
{
    rtmd_buf_init(b, 4096);
    assert_int_equal(append_pstr(b, app_id, strlen(app_id)), 0);
    assert_int_equal(append_u32(b, issue), 0);
    assert_int_equal(append_u32(b, expire), 0);
    assert_int_equal(append_u32(b, salt), 0);
    assert_int_equal(append_u16(b, services), 0);
}

static void info_map(struct rtmd_buf *b, size_t n, const uint16_t *keys, const uint32_t *values)
{
    assert_int_equal(append_u16(b, (uint16_t)n), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(append_u16(b, keys[i]), 0);
        assert_int_equal(append_u32(b, values[i]), 0);
    }
}

static void info_rtm(struct rtmd_buf *b, const char *user, size_t nprivs, const uint16_t *keys,
                     const uint32_t *values)
{
    assert_int_equal(append_u16(b, SERVICE_RTM), 0);
    info_map(b, nprivs, keys, values);
    assert_int_equal(append_pstr(b, user, strlen(user)), 0);
}

static void info_rtm_login(struct rtmd_buf *b, const char *user, uint32_t login)
{
    static const uint16_t k[] = {RTMD_TOKEN_007_PRIV_LOGIN};
    info_rtm(b, user, 1, k, &login);
}

/* Signs signing_info with cert (issue/salt as written in it) and wraps it. */
static char *seal_007(struct rtmd_buf *info, const char *sign_cert, uint32_t issue, uint32_t salt)
{
    unsigned char sig[SIG_LEN];
    assert_int_equal(sign_007(S(sign_cert), issue, salt, info->data, info->len, sig), 0);
    struct rtmd_buf plain;
    rtmd_buf_init(&plain, 8192);
    assert_int_equal(append_pstr(&plain, sig, SIG_LEN), 0);
    assert_int_equal(rtmd_buf_append(&plain, info->data, info->len), 0);
    char *t = wrap_007(plain.data, plain.len);
    rtmd_buf_free(&plain);
    rtmd_buf_free(info);
    return t;
}

/* A standard RTM-only 007 token with explicit expire and login values. */
static char *make_007(const char *user, uint32_t issue, uint32_t expire, uint32_t login)
{
    struct rtmd_buf info;
    info_begin(&info, APP, issue, expire, 1, 1);
    info_rtm_login(&info, user, login);
    return seal_007(&info, CERT, issue, 1);
}

/* ---- §8.3 vectors: 006 ---------------------------------------------------- */

/* rtmd_token_build_006() for test_user (salt 1, ts ISSUE, login) makes want. */
static void expect_build_006(const char *want, uint32_t login)
{
    struct rtmd_buf b;
    rtmd_buf_init(&b, RTMD_TOKEN_MAX);
    assert_int_equal(rtmd_token_build_006(&b, app, cert, S("test_user"), 1, ISSUE, login), 0);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    rtmd_buf_free(&b);
}

static void test_vector1_verifies(void **state)
{
    struct rtmd_token_info info;
    assert_int_equal(verify(V1, "test_user", ISSUE, &info), 0);
    assert_int_equal(info.version, 6);
    assert_string_equal(info.user_id, "test_user");
    assert_int_equal(info.expire_ts, ISSUE); /* ts, lower than kRtmLogin 1446455471 */
    assert_int_equal(info.salt, 1);
    assert_int_equal(info.issue_ts, 0);
    /* ts may lie at most 24 h + token_clock_skew_s ahead of now. */
    assert_int_equal(verify(V1, "test_user", ISSUE - 86400 - SKEW, NULL), 0);
    assert_int_equal(verify(V1, "test_user", ISSUE - 86400 - SKEW - 1, NULL), RTMD_EFUTURE);
    assert_int_equal(verify(V1, "test_user", 1, NULL), RTMD_EFUTURE);
    assert_int_equal(verify(V1, "test_user", ISSUE + 1, NULL), RTMD_EEXPIRED);
}

static void test_vector1_builds_byte_for_byte(void **state)
{
    expect_build_006(V1, 1446455471);
}

static void test_vector1_intermediate_values(void **state)
{
    unsigned char content[256];
    size_t n = decode_006(V1, content, sizeof(content));
    assert_hex(content, n,
               "2000 2c474aa0882c6fd2fae945ca64cf906b6df11608167a92f47ab7ba86ff024842"
               "86fcea88 00000000 1000 01000000 47f41000 0100 e803 af283756");
    struct token_006 t;
    assert_int_equal(parse_006_content(content, n, &t), 0);
    assert_int_equal(t.salt, 1);
    assert_int_equal(t.ts, ISSUE);
    assert_true(t.has_login);
    assert_int_equal(t.login, 1446455471u);
    assert_int_equal(t.crc_channel, crc32_of(S("test_user")));
    assert_int_equal(t.crc_channel, 0x88eafc86u);
    assert_int_equal(t.crc_uid, 0);
    unsigned char sig[SIG_LEN];
    assert_int_equal(sign_006(app, cert, S("test_user"), S(""), t.m, sig), 0);
    assert_hex(sig, SIG_LEN, "2c474aa0882c6fd2fae945ca64cf906b6df11608167a92f47ab7ba86ff024842");
}

static void test_vector2_verifies(void **state)
{
    /* kRtmLogin = 100 is non-zero, so it ends the token at t = 100; its ts
     * (1111111) lies 12 days later, so until then it is refused as made by
     * a clock in the future. */
    assert_int_equal(verify(V2, "test_user", 100, NULL), RTMD_EFUTURE);
    assert_int_equal(verify(V2, "test_user", 101, NULL), RTMD_EEXPIRED);
    assert_int_equal(verify(V2, "test_user", ISSUE, NULL), RTMD_EEXPIRED);
}

static void test_vector2_builds_byte_for_byte(void **state)
{
    expect_build_006(V2, 100);
}

/* Vectors 3 and 4 are RTC tokens (joinChannel only). Their signatures check
 * (over app || channel || uid || m); rtmd rejects them for lack of the RTM
 * login privilege 1000, or earlier for their crc fields. */
static void test_vector3_rtc_signature_checks_but_rejected(void **state)
{
    unsigned char content[256];
    size_t n = decode_006(V3, content, sizeof(content));
    struct token_006 t;
    assert_int_equal(parse_006_content(content, n, &t), 0);
    assert_false(t.has_login);
    assert_int_equal(t.crc_channel, crc32_of(S(RTC_CHANNEL)));
    assert_int_equal(t.crc_uid, crc32_of(S("2882341273")));
    unsigned char sig[SIG_LEN];
    assert_int_equal(sign_006(app, cert, S(RTC_CHANNEL), S("2882341273"), t.m, sig), 0);
    assert_memory_equal(sig, t.signature.p, SIG_LEN);
    /* Through the public API: the concatenation channel||uid signs the same
     * bytes, so the signature passes; crc_uid != 0 and the missing
     * privilege 1000 still make it EAUTH. */
    assert_int_equal(verify(V3, RTC_CHANNEL "2882341273", ISSUE, NULL), RTMD_EAUTH);
    assert_int_equal(verify(V3, RTC_CHANNEL, ISSUE, NULL), RTMD_EAUTH);
    assert_int_equal(verify(V3, "2882341273", ISSUE, NULL), RTMD_EAUTH);
}

static void test_vector4_rtc_no_rtm_privilege(void **state)
{
    unsigned char content[256];
    size_t n = decode_006(V4, content, sizeof(content));
    struct token_006 t;
    assert_int_equal(parse_006_content(content, n, &t), 0);
    assert_false(t.has_login);
    /* uid 0 -> "": signature, crc_channel and crc_uid all match uid =
     * channel, so the only failing rule is the missing privilege 1000. */
    assert_int_equal(t.crc_channel, crc32_of(S(RTC_CHANNEL)));
    assert_int_equal(t.crc_uid, 0);
    unsigned char sig[SIG_LEN];
    assert_int_equal(sign_006(app, cert, S(RTC_CHANNEL), S(""), t.m, sig), 0);
    assert_memory_equal(sig, t.signature.p, SIG_LEN);
    assert_int_equal(verify(V4, RTC_CHANNEL, ISSUE, NULL), RTMD_EAUTH);
    /* The same token with a privilege 1000 added and re-signed verifies:
     * the privilege really is the deciding rule. */
    unsigned char m[16];
    put_u32(m, t.salt);
    put_u32(m + 4, t.ts);
    put_u16(m + 8, 1);
    put_u16(m + 10, 1000);
    put_u32(m + 12, 0);
    char *fixed = make_006(RTC_CHANNEL, m, sizeof(m), crc32_of(S(RTC_CHANNEL)), 0, CERT);
    assert_int_equal(verify(fixed, RTC_CHANNEL, ISSUE, NULL), 0);
    free(fixed);
}

/* ---- §8.3 vectors: 007 ---------------------------------------------------- */

static void check_007_vector(const char *token, const char *user)
{
    struct rtmd_token_info info;
    memset(&info, 0x55, sizeof(info));
    assert_int_equal(verify(token, user, ISSUE + 1, &info), 0);
    assert_int_equal(info.version, 7);
    assert_string_equal(info.user_id, user);
    assert_int_equal(info.issue_ts, ISSUE);
    assert_int_equal(info.expire_ts, ISSUE + 600);
    assert_int_equal(info.salt, 1);
    /* uid is optional for 007. */
    assert_int_equal(verify(token, "", ISSUE + 1, &info), 0);
    assert_string_equal(info.user_id, user);
    assert_int_equal(verify(token, "", ISSUE + 600, NULL), 0);
    assert_int_equal(verify(token, user, ISSUE + 601, NULL), RTMD_EEXPIRED);
    assert_int_equal(verify(token, "", ISSUE + 601, NULL), RTMD_EEXPIRED);
}

static void test_vector5_verifies(void **state)
{
    check_007_vector(V5, "2882341273");
}

static void test_vector6_verifies(void **state)
{
    check_007_vector(V6, "test_user");
}

static void test_vector6b_verifies(void **state)
{
    check_007_vector(V6B, "test_user");
}

static void test_vector7_verifies(void **state)
{
    check_007_vector(V7, "test_user");
}

static void test_vector7b_verifies(void **state)
{
    check_007_vector(V7B, "test_user");
}

static void test_vector5_intermediate_values(void **state)
{
    unsigned char k1[SIG_LEN], signing[SIG_LEN];
    assert_int_equal(signing_key_007(cert, ISSUE, 1, k1, signing), 0);
    assert_hex(k1, SIG_LEN, "e0f6141e54329d72102500478ec18e0020a5eeef53bbcccc442c6c2f7f178251");
    assert_hex(signing, SIG_LEN,
               "cee2fa8dcbe868c30ca8c959d97fad4a5049c634da48449f1b8f59c14fa61073");

    unsigned char plain[RTMD_TOKEN_INFLATED_MAX];
    size_t n = inflate_token(V5, plain);
    struct token_007 t;
    assert_int_equal(parse_007_content(plain, n, &t), 0);
    unsigned char want_info[256];
    size_t wn = hex_to_bytes("2000", want_info, sizeof(want_info));
    memcpy(want_info + wn, APP, 32);
    wn += 32;
    wn += hex_to_bytes("47f41000 58020000 01000000 0100 0200 0100 0100 58020000 0a00",
                       want_info + wn, sizeof(want_info) - wn);
    memcpy(want_info + wn, "2882341273", 10);
    wn += 10;
    assert_int_equal(t.signing_info.len, wn);
    assert_memory_equal(t.signing_info.p, want_info, wn);
    assert_hex(t.signature.p, t.signature.len,
               "6383003c15f2cfce57c2c44785174b727fb024a4ddc5d6bca1b405eb5bfc7712");
    unsigned char sig[SIG_LEN];
    assert_int_equal(sign_007(cert, ISSUE, 1, want_info, wn, sig), 0);
    assert_hex(sig, SIG_LEN, "6383003c15f2cfce57c2c44785174b727fb024a4ddc5d6bca1b405eb5bfc7712");
    assert_int_equal(t.issue_ts, ISSUE);
    assert_int_equal(t.expire, 600);
    assert_int_equal(t.salt, 1);
    assert_true(t.has_rtm && t.has_login);
    assert_int_equal(t.login, 600);
    assert_true(rtmd_str_eq_cstr(t.user, "2882341273"));
    assert_true(rtmd_str_eq_cstr(t.app_id, APP));
}

static void test_vector6_signature(void **state)
{
    unsigned char plain[RTMD_TOKEN_INFLATED_MAX];
    size_t n = inflate_token(V6, plain);
    assert_int_equal(n, 103); /* §8.3 */
    struct token_007 t;
    assert_int_equal(parse_007_content(plain, n, &t), 0);
    assert_hex(t.signature.p, t.signature.len,
               "0d9a1df8a4e60649a82d4a68fb1f49581fb4d227b8f0b65773b79f1c89e7eb7c");
}

/* Different deflate encoders, same inflated bytes. */
static void test_vectors_same_content_different_deflate(void **state)
{
    unsigned char a[RTMD_TOKEN_INFLATED_MAX], b[RTMD_TOKEN_INFLATED_MAX];
    assert_string_not_equal(V6, V6B);
    size_t na = inflate_token(V6, a), nb = inflate_token(V6B, b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    assert_string_not_equal(V7, V7B);
    na = inflate_token(V7, a);
    nb = inflate_token(V7B, b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
}

static void check_build_007_matches(const char *vector, const char *user)
{
    struct rtmd_buf out;
    rtmd_buf_init(&out, RTMD_TOKEN_MAX);
    assert_int_equal(rtmd_token_build_007(&out, app, cert, S(user), ISSUE, 600, 1), 0);
    assert_int_equal(rtmd_buf_append_byte(&out, '\0'), 0);
    unsigned char a[RTMD_TOKEN_INFLATED_MAX], b[RTMD_TOKEN_INFLATED_MAX];
    size_t na = inflate_token(out.data, a), nb = inflate_token(vector, b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    assert_int_equal(verify(out.data, user, ISSUE + 1, NULL), 0);
    rtmd_buf_free(&out);
}

static void test_build_007_matches_vector5(void **state)
{
    check_build_007_matches(V5, "2882341273");
}

static void test_build_007_matches_vector6(void **state)
{
    check_build_007_matches(V6, "test_user");
    /* C zlib at the default level: 6b is that computation. */
    struct rtmd_buf out;
    rtmd_buf_init(&out, RTMD_TOKEN_MAX);
    assert_int_equal(rtmd_token_build_007(&out, app, cert, S("test_user"), ISSUE, 600, 1), 0);
    if (strcmp(zlibVersion(), "1.2.13") == 0) {
        assert_int_equal(out.len, strlen(V6B));
        assert_memory_equal(out.data, V6B, out.len);
    }
    rtmd_buf_free(&out);
}

static void test_build_rejects_bad_inputs(void **state)
{
    struct rtmd_buf out;
    rtmd_buf_init(&out, RTMD_TOKEN_MAX);
    assert_int_equal(rtmd_token_build_006(&out, S("short"), cert, S("u"), 1, 1, 1), -EINVAL);
    assert_int_equal(
        rtmd_token_build_006(&out, app, S("zzzz2fd1755d40ecb72977518be15d3b"), S("u"), 1, 1, 1),
        -EINVAL);
    assert_int_equal(rtmd_token_build_006(&out, app, cert, S(""), 1, 1, 1), -EINVAL);
    assert_int_equal(rtmd_token_build_007(&out, app, cert, S("null"), 1, 1, 1), -EINVAL);
    assert_int_equal(rtmd_token_build_007(&out, app, cert, S("a\"b"), 1, 1, 1), -EINVAL);
    assert_int_equal(out.len, 0);
    /* Output bound respected, nothing left behind. */
    struct rtmd_buf small;
    rtmd_buf_init(&small, 40);
    assert_int_equal(rtmd_token_build_006(&small, app, cert, S("u"), 1, 1, 1), RTMD_ELIMIT);
    assert_int_equal(small.len, 0);
    assert_int_equal(rtmd_token_build_007(&small, app, cert, S("u"), 1, 1, 1), RTMD_ELIMIT);
    assert_int_equal(small.len, 0);
    rtmd_buf_free(&small);
    rtmd_buf_free(&out);
}

static void test_build_roundtrip_max_user(void **state)
{
    char user[RTMD_ID_MAX + 1];
    memset(user, 'u', RTMD_ID_MAX);
    user[RTMD_ID_MAX] = '\0';
    struct rtmd_buf out;
    rtmd_buf_init(&out, RTMD_TOKEN_MAX);
    assert_int_equal(rtmd_token_build_006(&out, app, cert, S(user), 7, 5000, 4000), 0);
    assert_int_equal(rtmd_buf_append_byte(&out, '\0'), 0);
    struct rtmd_token_info info;
    assert_int_equal(verify(out.data, user, 4000, &info), 0);
    assert_string_equal(info.user_id, user);
    assert_int_equal(info.expire_ts, 4000);
    assert_int_equal(info.salt, 7);
    assert_int_equal(verify(out.data, user, 4001, NULL), RTMD_EEXPIRED);
    rtmd_buf_reset(&out);
    assert_int_equal(rtmd_token_build_007(&out, app, cert, S(user), 5000, 100, 99999999), 0);
    assert_int_equal(rtmd_buf_append_byte(&out, '\0'), 0);
    assert_int_equal(verify(out.data, "", 5100, &info), 0);
    assert_string_equal(info.user_id, user);
    assert_int_equal(info.salt, 99999999);
    assert_int_equal(verify(out.data, user, 5101, NULL), RTMD_EEXPIRED);
    rtmd_buf_free(&out);
}

/* ---- tampering and wrong credentials ------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";

/* Replaces every character of the token with a few others; nothing may
 * verify unless (007) it inflates to exactly the original bytes. */
static void check_every_char_flip(const char *token, const char *uid, uint64_t now)
{
    size_t len = strlen(token);
    char *t = malloc(len + 1);
    unsigned char orig[RTMD_TOKEN_INFLATED_MAX];
    size_t orig_n = token[2] == '7' ? inflate_token(token, orig) : 0;
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < 5; k++) {
            memcpy(t, token, len + 1);
            char c = b64_alphabet[(i * 7 + k * 13) % (sizeof(b64_alphabet) - 1)];
            if (c == token[i])
                continue;
            t[i] = c;
            int rc = verify(t, uid, now, NULL);
            if (rc == 0) {
                unsigned char got[RTMD_TOKEN_INFLATED_MAX];
                assert_true(token[2] == '7');
                size_t n = inflate_token(t, got);
                assert_int_equal(n, orig_n);
                assert_memory_equal(got, orig, n);
                continue;
            }
            assert_true(rc == RTMD_EPARSE || rc == RTMD_EAUTH);
            if (i >= 3 && i < 35 && token[2] == '6')
                assert_int_equal(rc, RTMD_EAUTH); /* the App ID */
        }
    }
    free(t);
}

static void test_tamper_every_char_006(void **state)
{
    check_every_char_flip(V1, "test_user", ISSUE);
}

static void test_tamper_every_char_007(void **state)
{
    check_every_char_flip(V5, "", ISSUE + 1);
    check_every_char_flip(V6, "", ISSUE + 1);
}

static void test_tamper_signature_byte(void **state)
{
    /* 006: flip one signature bit and re-encode. */
    unsigned char content[256];
    size_t n = decode_006(V1, content, sizeof(content));
    for (size_t i = 2; i < 2 + SIG_LEN; i++) {
        content[i] ^= 0x01;
        char *t = wrap_006(APP, content, n);
        assert_int_equal(verify(t, "test_user", ISSUE, NULL), RTMD_EAUTH);
        free(t);
        content[i] ^= 0x01;
    }
    char *same = wrap_006(APP, content, n);
    assert_string_equal(same, V1);
    free(same);

    /* 007: flip one signature bit and recompress. */
    unsigned char plain[RTMD_TOKEN_INFLATED_MAX];
    n = inflate_token(V6, plain);
    for (size_t i = 2; i < 2 + SIG_LEN; i++) {
        plain[i] ^= 0x80;
        char *t = wrap_007(plain, n);
        assert_int_equal(verify(t, "test_user", ISSUE + 1, NULL), RTMD_EAUTH);
        free(t);
        plain[i] ^= 0x80;
    }
    /* Recompressed at any level, the untouched bytes still verify. */
    for (int level = 0; level <= 9; level++) {
        char *t = wrap_007_level(plain, n, level);
        assert_int_equal(verify(t, "test_user", ISSUE + 1, NULL), 0);
        free(t);
    }
}

static void test_tamper_app_id(void **state)
{
    /* 006: the App ID in the token no longer matches the app. */
    char t[sizeof(V1)];
    memcpy(t, V1, sizeof(V1));
    t[3] = '8';
    assert_int_equal(verify(t, "test_user", ISSUE, NULL), RTMD_EAUTH);
    /* ... and when the app is that other App ID, the signature fails. */
    struct rtmd_token_info info;
    assert_int_equal(
        rtmd_token_verify(S(t), rtmd_str_make(t + 3, 32), cert, S("test_user"), ISSUE, SKEW, &info),
        RTMD_EAUTH);

    /* 007: change the packed App ID, keep the signature. */
    unsigned char plain[RTMD_TOKEN_INFLATED_MAX];
    size_t n = inflate_token(V6, plain);
    size_t at = 2 + SIG_LEN + 2; /* first App ID byte */
    assert_int_equal(plain[at], '9');
    plain[at] = '8';
    char *t7 = wrap_007(plain, n);
    assert_int_equal(verify(t7, "test_user", ISSUE + 1, NULL), RTMD_EAUTH);
    char other_app[33];
    memcpy(other_app, APP, 33);
    other_app[0] = '8';
    assert_int_equal(rtmd_token_verify(S(t7), S(other_app), cert, S(""), ISSUE + 1, SKEW, &info),
                     RTMD_EAUTH);
    free(t7);
}

static void test_wrong_certificate(void **state)
{
    struct rtmd_token_info info;
    const char *tokens[] = {V1, V5, V6, V6B, V7, V7B};
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(tokens); i++) {
        const char *uid = i == 0 ? "test_user" : "";
        uint64_t now = i == 0 ? ISSUE : ISSUE + 1;
        assert_int_equal(
            rtmd_token_verify(S(tokens[i]), app, S(OTHER_CERT), S(uid), now, SKEW, &info),
            RTMD_EAUTH);
        /* Case matters: the certificate is used as ASCII. */
        assert_int_equal(rtmd_token_verify(S(tokens[i]), app, S("5cfd2fd1755d40ecb72977518be15d3b"),
                                           S(uid), now, SKEW, &info),
                         RTMD_EAUTH);
        /* An app without a certificate accepts no token. */
        assert_int_equal(rtmd_token_verify(S(tokens[i]), app, S(""), S(uid), now, SKEW, &info),
                         RTMD_EAUTH);
    }
}

static void test_wrong_app_id(void **state)
{
    struct rtmd_token_info info;
    struct rtmd_str other = S("0123456789abcdef0123456789abcdef");
    assert_int_equal(rtmd_token_verify(S(V1), other, cert, S("test_user"), ISSUE, SKEW, &info),
                     RTMD_EAUTH);
    assert_int_equal(rtmd_token_verify(S(V6), other, cert, S(""), ISSUE + 1, SKEW, &info),
                     RTMD_EAUTH);
    /* Case matters. */
    assert_int_equal(rtmd_token_verify(S(V6), S("970ca35de60c44645bbae8a215061b33"), cert, S(""),
                                       ISSUE + 1, SKEW, &info),
                     RTMD_EAUTH);
    assert_int_equal(rtmd_token_verify(S(V1), S(""), cert, S("test_user"), ISSUE, SKEW, &info),
                     RTMD_EAUTH);
}

static void test_wrong_uid_006(void **state)
{
    assert_int_equal(verify(V1, "test_user2", ISSUE, NULL), RTMD_EAUTH);
    assert_int_equal(verify(V1, "Test_user", ISSUE, NULL), RTMD_EAUTH);
    assert_int_equal(verify(V1, "", ISSUE, NULL), RTMD_EAUTH);     /* uid required */
    assert_int_equal(verify(V1, "null", ISSUE, NULL), RTMD_EAUTH); /* not a valid ID */
    /* A uid past 64 bytes is refused before it reaches the HMAC. */
    char longuid[100];
    memset(longuid, 'a', 99);
    longuid[99] = '\0';
    assert_int_equal(verify(V1, longuid, ISSUE, NULL), RTMD_EAUTH);
}

static void test_uid_mismatch_007(void **state)
{
    assert_int_equal(verify(V6, "test_user2", ISSUE + 1, NULL), RTMD_EAUTH);
    assert_int_equal(verify(V6, "2882341273", ISSUE + 1, NULL), RTMD_EAUTH);
    assert_int_equal(verify(V5, "test_user", ISSUE + 1, NULL), RTMD_EAUTH);
    /* A bad signature is reported before expiry, so a forger learns nothing. */
    assert_int_equal(verify(V6, "test_user2", ISSUE + 9999, NULL), RTMD_EAUTH);
}

static void test_truncated_every_length(void **state)
{
    const char *tokens[] = {V1, V2, V3, V4, V5, V6, V6B, V7, V7B};
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(tokens); i++) {
        size_t len = strlen(tokens[i]);
        const char *uid = tokens[i][2] == '6' ? "test_user" : "";
        for (size_t n = 0; n < len; n++) {
            /* An exact-size copy so ASan catches reads past the end. */
            char *t = malloc(n ? n : 1);
            memcpy(t, tokens[i], n);
            assert_int_equal(verify_len(t, n, uid, 100), RTMD_EPARSE);
            free(t);
        }
    }
}

static void test_overlong_token(void **state)
{
    size_t n = RTMD_TOKEN_MAX + 1;
    char *t = malloc(n + 1);
    memset(t, 'A', n);
    memcpy(t, V6, strlen(V6));
    t[n] = '\0';
    assert_int_equal(verify_len(t, n, "", ISSUE + 1), RTMD_EPARSE);
    /* V1 with extra valid base64 appended, over the limit. */
    memcpy(t, V1, strlen(V1));
    assert_int_equal(verify_len(t, n, "test_user", ISSUE), RTMD_EPARSE);
    /* Exactly the limit is parsed (and rejected as malformed, not as too long). */
    assert_int_equal(verify_len(t, RTMD_TOKEN_MAX, "test_user", ISSUE), RTMD_EPARSE);
    free(t);
    /* The longest possible real token fits far below the limit. */
    assert_true(strlen(V7) < RTMD_TOKEN_MAX / 4);
}

static void test_bad_prefix_and_empty(void **state)
{
    struct rtmd_token_info info;
    assert_int_equal(verify("", "u", 1, NULL), RTMD_EPARSE);
    assert_int_equal(verify("00", "u", 1, NULL), RTMD_EPARSE);
    assert_int_equal(verify("006", "u", 1, NULL), RTMD_EPARSE);
    assert_int_equal(verify("007", "u", 1, NULL), RTMD_EPARSE);
    assert_int_equal(verify("005" APP "IAAs", "u", 1, NULL), RTMD_EPARSE);
    assert_int_equal(verify("008eJxTYEhu", "u", 1, NULL), RTMD_EPARSE);
    assert_int_equal(rtmd_token_verify(RTMD_STR_NULL, app, cert, S("u"), 1, SKEW, &info),
                     RTMD_EPARSE);
    /* 006 whose base64 is URL-safe or unpadded. */
    char t[sizeof(V3)];
    memcpy(t, V3, sizeof(V3));
    char *plus = strchr(t + 35, '+');
    assert_non_null(plus);
    *plus = '-';
    assert_int_equal(verify(t, RTC_CHANNEL, ISSUE, NULL), RTMD_EPARSE);
    assert_int_equal(verify_len(V5, strlen(V5) - 2, "", ISSUE + 1), RTMD_EPARSE);
}

/* ---- crafted 006 ---------------------------------------------------------- */

static void test_006_missing_privilege_and_crc(void **state)
{
    /* Signed, but privilege 1 (joinChannel) instead of 1000. */
    unsigned char m[16];
    put_u32(m, 1);
    put_u32(m + 4, ISSUE);
    put_u16(m + 8, 1);
    put_u16(m + 10, 1);
    put_u32(m + 12, 0);
    uint32_t crc = crc32_of(S("test_user"));
    char *t = make_006("test_user", m, sizeof(m), crc, 0, CERT);
    assert_int_equal(verify(t, "test_user", ISSUE, NULL), RTMD_EAUTH);
    free(t);
    /* No privileges at all. */
    put_u16(m + 8, 0);
    t = make_006("test_user", m, 10, crc, 0, CERT);
    assert_int_equal(verify(t, "test_user", ISSUE, NULL), RTMD_EAUTH);
    free(t);

    /* Good privilege, but the unsigned crc fields are wrong. */
    put_u16(m + 8, 1);
    put_u16(m + 10, 1000);
    t = make_006("test_user", m, sizeof(m), crc ^ 1, 0, CERT);
    assert_int_equal(verify(t, "test_user", ISSUE, NULL), RTMD_EAUTH);
    free(t);
    t = make_006("test_user", m, sizeof(m), crc, 5, CERT);
    assert_int_equal(verify(t, "test_user", ISSUE, NULL), RTMD_EAUTH);
    free(t);
    t = make_006("test_user", m, sizeof(m), crc, 0, CERT);
    assert_int_equal(verify(t, "test_user", ISSUE, NULL), 0);
    free(t);
}

static void test_006_expiry_rules(void **state)
{
    uint32_t crc = crc32_of(S("test_user"));
    unsigned char m[16];
    put_u32(m, 1);
    put_u32(m + 4, 5000); /* ts */
    put_u16(m + 8, 1);
    put_u16(m + 10, 1000);

    /* privilege 0: only ts counts. */
    put_u32(m + 12, 0);
    char *t = make_006("test_user", m, sizeof(m), crc, 0, CERT);
    expect_expiry(t, "test_user", 5000);
    free(t);

    /* privilege later than ts: ts counts. */
    put_u32(m + 12, 9000);
    t = make_006("test_user", m, sizeof(m), crc, 0, CERT);
    expect_expiry(t, "test_user", 5000);
    free(t);

    /* privilege earlier: it counts. */
    put_u32(m + 12, 3000);
    t = make_006("test_user", m, sizeof(m), crc, 0, CERT);
    expect_expiry(t, "test_user", 3000);
    /* Huge now values do not wrap. */
    assert_int_equal(verify(t, "test_user", UINT64_MAX, NULL), RTMD_EEXPIRED);
    assert_int_equal(verify(t, "test_user", (uint64_t)1 << 32, NULL), RTMD_EEXPIRED);
    free(t);
}

static void test_006_malformed_content(void **state)
{
    unsigned char content[256];
    size_t n = decode_006(V1, content, sizeof(content));
    struct token_006 t6;
    /* Every proper prefix of the content is malformed. */
    for (size_t k = 0; k < n; k++)
        assert_int_equal(parse_006_content(content, k, &t6), RTMD_EPARSE);
    /* Trailing bytes after str(m). */
    content[n] = 0;
    char *t = wrap_006(APP, content, n + 1);
    assert_int_equal(verify(t, "test_user", ISSUE, NULL), RTMD_EPARSE);
    free(t);
    /* A 31-byte signature. */
    unsigned char c2[256];
    memcpy(c2, content, n);
    c2[0] = 31;
    t = wrap_006(APP, c2, n);
    assert_int_equal(verify(t, "test_user", ISSUE, NULL), RTMD_EPARSE);
    free(t);
    /* m's length pointing past the end. */
    memcpy(c2, content, n);
    c2[2 + SIG_LEN + 8] = 0xff;
    t = wrap_006(APP, c2, n);
    assert_int_equal(verify(t, "test_user", ISSUE, NULL), RTMD_EPARSE);
    free(t);
    /* A map count that overruns m. */
    memcpy(c2, content, n);
    c2[2 + SIG_LEN + 8 + 2 + 8] = 2;
    t = wrap_006(APP, c2, n);
    assert_int_equal(verify(t, "test_user", ISSUE, NULL), RTMD_EPARSE);
    free(t);

    /* Privilege 1000 listed twice (signed): ambiguous, malformed. */
    unsigned char m[22];
    put_u32(m, 1);
    put_u32(m + 4, ISSUE);
    put_u16(m + 8, 2);
    put_u16(m + 10, 1000);
    put_u32(m + 12, 0);
    put_u16(m + 16, 1000);
    put_u32(m + 18, 5);
    t = make_006("test_user", m, sizeof(m), crc32_of(S("test_user")), 0, CERT);
    assert_int_equal(verify(t, "test_user", 1, NULL), RTMD_EPARSE);
    free(t);
}

/* ---- crafted 007 ---------------------------------------------------------- */

static void test_007_expire_zero_is_24h(void **state)
{
    struct rtmd_token_info info;
    char *t = make_007("test_user", ISSUE, 0, 0);
    expect_expiry(t, "test_user", ISSUE + 86400);
    free(t);
    /* expire 0 but login 600: login counts. */
    t = make_007("test_user", ISSUE, 0, 600);
    expect_expiry(t, "", ISSUE + 600);
    free(t);
    /* expire 600, login 0: expire counts. */
    t = make_007("test_user", ISSUE, 600, 0);
    expect_expiry(t, "", ISSUE + 600);
    free(t);
    /* login shorter than expire. */
    t = make_007("test_user", ISSUE, 600, 300);
    assert_int_equal(verify(t, "", ISSUE + 300, &info), 0);
    assert_int_equal(verify(t, "", ISSUE + 301, NULL), RTMD_EEXPIRED);
    free(t);
}

static void test_007_24h_cap(void **state)
{
    struct rtmd_token_info info;
    char *t = make_007("test_user", ISSUE, 2 * 86400, 2 * 86400);
    expect_expiry(t, "", ISSUE + 86400);
    free(t);
    /* An absolute time in `expire` (one Agora doc page) lives the cap. */
    t = make_007("test_user", ISSUE, ISSUE + 3600, ISSUE + 3600);
    assert_int_equal(verify(t, "", ISSUE + 86400, &info), 0);
    assert_int_equal(verify(t, "", ISSUE + 86401, NULL), RTMD_EEXPIRED);
    free(t);
    /* No wrap-around near the end of u32 time. */
    t = make_007("test_user", UINT32_MAX - 10, UINT32_MAX, UINT32_MAX);
    expect_expiry(t, "", UINT32_MAX);
    free(t);
    /* Issued in the future within token_clock_skew_s: accepted, capped. */
    t = make_007("test_user", ISSUE + SKEW, 600, 600);
    assert_int_equal(verify(t, "", ISSUE, &info), 0);
    assert_int_equal(info.expire_ts, ISSUE + SKEW + 600);
    free(t);
    /* Beyond it: refused, so no token lives past now + 24 h + skew. */
    t = make_007("test_user", ISSUE + SKEW + 1, 600, 600);
    assert_int_equal(verify(t, "", ISSUE, NULL), RTMD_EFUTURE);
    assert_int_equal(verify(t, "", ISSUE + 1, NULL), 0);
    free(t);
    /* expire = an absolute time 60 days ahead, as issued "now": capped at 24 h. */
    t = make_007("test_user", ISSUE, ISSUE + 60 * 86400, 0);
    expect_expiry(t, "", ISSUE + 86400);
    free(t);
}

static void test_007_service_rules(void **state)
{
    struct rtmd_buf info;
    char *t;
    static const uint16_t rtc_keys[] = {1, 2, 3, 4};
    static const uint32_t rtc_vals[] = {600, 600, 600, 600};

    /* RTC only: no RTM service. */
    info_begin(&info, APP, ISSUE, 600, 1, 1);
    assert_int_equal(append_u16(&info, SERVICE_RTC), 0);
    info_map(&info, 4, rtc_keys, rtc_vals);
    assert_int_equal(append_pstr(&info, RTC_CHANNEL, 32), 0);
    assert_int_equal(append_pstr(&info, "2882341273", 10), 0);
    t = seal_007(&info, CERT, ISSUE, 1);
    assert_int_equal(verify(t, "", ISSUE + 1, NULL), RTMD_EAUTH);
    free(t);

    /* RTM without the login privilege. */
    static const uint16_t other_key[] = {2};
    static const uint32_t other_val[] = {600};
    info_begin(&info, APP, ISSUE, 600, 1, 1);
    info_rtm(&info, "test_user", 1, other_key, other_val);
    t = seal_007(&info, CERT, ISSUE, 1);
    assert_int_equal(verify(t, "", ISSUE + 1, NULL), RTMD_EAUTH);
    free(t);

    /* Every known service type before RTM is skipped correctly. */
    info_begin(&info, APP, ISSUE, 600, 1, 8);
    assert_int_equal(append_u16(&info, SERVICE_FPA), 0);
    info_map(&info, 1, other_key, other_val);
    assert_int_equal(append_u16(&info, SERVICE_CHAT), 0);
    info_map(&info, 0, NULL, NULL);
    assert_int_equal(append_pstr(&info, "chatuser", 8), 0);
    assert_int_equal(append_u16(&info, SERVICE_STREAMING), 0);
    info_map(&info, 4, rtc_keys, rtc_vals);
    assert_int_equal(append_pstr(&info, "ch", 2), 0);
    assert_int_equal(append_pstr(&info, "acct", 4), 0);
    assert_int_equal(append_u16(&info, SERVICE_FCDN), 0);
    info_map(&info, 0, NULL, NULL);
    assert_int_equal(append_pstr(&info, "", 0), 0);
    assert_int_equal(append_pstr(&info, "x", 1), 0);
    assert_int_equal(append_u16(&info, SERVICE_APAAS), 0);
    info_map(&info, 1, other_key, other_val);
    assert_int_equal(append_pstr(&info, "room", 4), 0);
    assert_int_equal(append_pstr(&info, "user", 4), 0);
    assert_int_equal(append_u16(&info, 0xffff), 0); /* role -1 */
    assert_int_equal(append_u16(&info, SERVICE_RTM2), 0);
    info_map(&info, 1, other_key, other_val);
    assert_int_equal(append_pstr(&info, "rtm2user", 8), 0);
    assert_int_equal(append_u16(&info, 1), 0); /* one resource type */
    assert_int_equal(append_u16(&info, 0), 0); /* kMessageChannels */
    assert_int_equal(append_u16(&info, 1), 0); /* one permission */
    assert_int_equal(append_u16(&info, 1), 0); /* kWrite */
    assert_int_equal(append_u16(&info, 2), 0); /* two resources */
    assert_int_equal(append_pstr(&info, "c1", 2), 0);
    assert_int_equal(append_pstr(&info, "c2", 2), 0);
    assert_int_equal(append_u16(&info, SERVICE_RTC), 0);
    info_map(&info, 4, rtc_keys, rtc_vals);
    assert_int_equal(append_pstr(&info, RTC_CHANNEL, 32), 0);
    assert_int_equal(append_pstr(&info, "", 0), 0);
    info_rtm_login(&info, "test_user", 600);
    t = seal_007(&info, CERT, ISSUE, 1);
    struct rtmd_token_info out;
    assert_int_equal(verify(t, "", ISSUE + 1, &out), 0);
    assert_string_equal(out.user_id, "test_user");
    free(t);

    /* An unknown type stops parsing: RTM after it is never seen ... */
    info_begin(&info, APP, ISSUE, 600, 1, 2);
    assert_int_equal(append_u16(&info, 9), 0);
    info_rtm_login(&info, "test_user", 600);
    t = seal_007(&info, CERT, ISSUE, 1);
    assert_int_equal(verify(t, "", ISSUE + 1, NULL), RTMD_EAUTH);
    free(t);
    /* ... but RTM before it counts, and the (signed) rest is ignored. */
    info_begin(&info, APP, ISSUE, 600, 1, 3);
    info_rtm_login(&info, "test_user", 600);
    assert_int_equal(append_u16(&info, 0), 0);
    assert_int_equal(rtmd_buf_append(&info, "\xff\xff\xff garbage", 11), 0);
    t = seal_007(&info, CERT, ISSUE, 1);
    assert_int_equal(verify(t, "test_user", ISSUE + 1, NULL), 0);
    free(t);

    /* Two RTM services: malformed. */
    info_begin(&info, APP, ISSUE, 600, 1, 2);
    info_rtm_login(&info, "test_user", 600);
    info_rtm_login(&info, "other", 600);
    t = seal_007(&info, CERT, ISSUE, 1);
    assert_int_equal(verify(t, "", ISSUE + 1, NULL), RTMD_EPARSE);
    free(t);

    /* Login privilege twice: malformed. */
    static const uint16_t dup_keys[] = {1, 1};
    static const uint32_t dup_vals[] = {600, 0};
    info_begin(&info, APP, ISSUE, 600, 1, 1);
    info_rtm(&info, "test_user", 2, dup_keys, dup_vals);
    t = seal_007(&info, CERT, ISSUE, 1);
    assert_int_equal(verify(t, "", ISSUE + 1, NULL), RTMD_EPARSE);
    free(t);

    /* A service count larger than the services present. */
    info_begin(&info, APP, ISSUE, 600, 1, 2);
    info_rtm_login(&info, "test_user", 600);
    t = seal_007(&info, CERT, ISSUE, 1);
    assert_int_equal(verify(t, "", ISSUE + 1, NULL), RTMD_EPARSE);
    free(t);

    /* Users rtmd cannot accept: empty, too long, "null". */
    const char *bad_users[] = {"", "null",
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(bad_users); i++) {
        info_begin(&info, APP, ISSUE, 600, 1, 1);
        info_rtm_login(&info, bad_users[i], 600);
        t = seal_007(&info, CERT, ISSUE, 1);
        assert_int_equal(verify(t, "", ISSUE + 1, NULL), RTMD_EAUTH);
        free(t);
    }
}

static void test_007_bad_streams(void **state)
{
    unsigned char plain[RTMD_TOKEN_INFLATED_MAX];
    size_t n = inflate_token(V6, plain);

    /* Trailing bytes after the zlib stream. */
    unsigned char packed[1024];
    uLongf pn = sizeof(packed);
    assert_int_equal(compress2(packed, &pn, plain, n, 6), Z_OK);
    packed[pn] = 0;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 4096);
    assert_int_equal(rtmd_buf_append_cstr(&b, "007"), 0);
    assert_int_equal(rtmd_base64_encode(&b, packed, pn + 1), 0);
    assert_int_equal(verify_len(b.data, b.len, "", ISSUE + 1), RTMD_EPARSE);

    /* A bad adler32. */
    rtmd_buf_reset(&b);
    packed[pn - 1] ^= 1;
    assert_int_equal(rtmd_buf_append_cstr(&b, "007"), 0);
    assert_int_equal(rtmd_base64_encode(&b, packed, pn), 0);
    assert_int_equal(verify_len(b.data, b.len, "", ISSUE + 1), RTMD_EPARSE);
    packed[pn - 1] ^= 1;

    /* Raw deflate without the zlib header. */
    rtmd_buf_reset(&b);
    assert_int_equal(rtmd_buf_append_cstr(&b, "007"), 0);
    assert_int_equal(rtmd_base64_encode(&b, packed + 2, pn - 2), 0);
    assert_int_equal(verify_len(b.data, b.len, "", ISSUE + 1), RTMD_EPARSE);

    /* Not compressed at all. */
    rtmd_buf_reset(&b);
    assert_int_equal(rtmd_buf_append_cstr(&b, "007"), 0);
    assert_int_equal(rtmd_base64_encode(&b, plain, n), 0);
    assert_int_equal(verify_len(b.data, b.len, "", ISSUE + 1), RTMD_EPARSE);
    rtmd_buf_free(&b);

    /* Inflate is bounded: exactly the cap inflates, one byte more does not. */
    unsigned char *big = calloc(1, RTMD_TOKEN_INFLATED_MAX + 1);
    unsigned char *out = malloc(RTMD_TOKEN_INFLATED_MAX);
    size_t out_n = 0;
    pn = sizeof(packed);
    assert_int_equal(compress2(packed, &pn, big, RTMD_TOKEN_INFLATED_MAX, 9), Z_OK);
    assert_int_equal(inflate_bounded(packed, pn, out, &out_n), 0);
    assert_int_equal(out_n, RTMD_TOKEN_INFLATED_MAX);
    pn = sizeof(packed);
    assert_int_equal(compress2(packed, &pn, big, RTMD_TOKEN_INFLATED_MAX + 1, 9), Z_OK);
    assert_int_equal(inflate_bounded(packed, pn, out, &out_n), RTMD_EPARSE);
    /* A much larger bomb as a token. */
    unsigned char *bomb = calloc(1, 1 << 20);
    char *t = wrap_007_level(bomb, 1 << 20, 9);
    assert_true(strlen(t) <= RTMD_TOKEN_MAX);
    assert_int_equal(verify(t, "", ISSUE + 1, NULL), RTMD_EPARSE);
    free(t);
    free(bomb);
    free(big);
    free(out);

    /* Every proper prefix of the inflated bytes is malformed (or, past the
     * RTM service, at least never valid). */
    struct token_007 t7;
    for (size_t k = 0; k < n; k++)
        assert_int_equal(parse_007_content(plain, k, &t7), RTMD_EPARSE);
}

/* ---- base64 --------------------------------------------------------------- */

static void check_b64(const char *plain, const char *std, const char *url)
{
    struct rtmd_buf b;
    rtmd_buf_init(&b, 256);
    assert_int_equal(rtmd_base64_encode(&b, plain, strlen(plain)), 0);
    assert_int_equal(b.len, strlen(std));
    assert_memory_equal(b.data, std, b.len);
    rtmd_buf_reset(&b);
    assert_int_equal(rtmd_base64url_encode(&b, plain, strlen(plain)), 0);
    assert_int_equal(b.len, strlen(url));
    assert_memory_equal(b.data, url, b.len);
    rtmd_buf_reset(&b);
    assert_int_equal(rtmd_base64_decode(&b, S(std)), 0);
    assert_int_equal(b.len, strlen(plain));
    if (b.len)
        assert_memory_equal(b.data, plain, b.len);
    rtmd_buf_free(&b);
}

static void test_base64_rfc4648_vectors(void **state)
{
    check_b64("", "", "");
    check_b64("f", "Zg==", "Zg");
    check_b64("fo", "Zm8=", "Zm8");
    check_b64("foo", "Zm9v", "Zm9v");
    check_b64("foob", "Zm9vYg==", "Zm9vYg");
    check_b64("fooba", "Zm9vYmE=", "Zm9vYmE");
    check_b64("foobar", "Zm9vYmFy", "Zm9vYmFy");
    check_b64("\xfb\xff", "+/8=", "-_8");
    check_b64("\xfb\xef\xbe", "++++", "----");
    check_b64("\xff\xff\xff", "////", "____");
}

static void test_base64_roundtrip_all_lengths(void **state)
{
    unsigned char data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 131 + 7);
    struct rtmd_buf enc, dec;
    rtmd_buf_init(&enc, 1024);
    rtmd_buf_init(&dec, 1024);
    for (size_t n = 0; n <= sizeof(data); n++) {
        rtmd_buf_reset(&enc);
        rtmd_buf_reset(&dec);
        assert_int_equal(rtmd_base64_encode(&enc, data, n), 0);
        assert_int_equal(enc.len, RTMD_BASE64_ENCODED_LEN(n));
        assert_int_equal(rtmd_base64_decode(&dec, rtmd_str_make(enc.data, enc.len)), 0);
        assert_int_equal(dec.len, n);
        if (n)
            assert_memory_equal(dec.data, data, n);
        rtmd_buf_reset(&enc);
        assert_int_equal(rtmd_base64url_encode(&enc, data, n), 0);
        assert_int_equal(enc.len, (n * 4 + 2) / 3);
        for (size_t i = 0; i < enc.len; i++)
            assert_true(strchr("+/=", enc.data[i]) == NULL);
    }
    rtmd_buf_free(&enc);
    rtmd_buf_free(&dec);
}

static void test_base64_decode_rejects(void **state)
{
    const char *bad[] = {
        "Zg=",    "Zg",      "Z",        "Zm9vY",    "Zg=a",
        "Z===",   "====",    "=Zg=",     "Zm=v",     "Zg==Zg==",
        "Zm9v\n", " Zm9v",   "Zm9v ",    "Zm-v",     "Zm_v",
        "Zh==",   "Zm9=",    "Zg=\n",    "Zm9v====", "Zm\tv",
        "Zm.v",   "Zm9vYg=", "Zm9vY===", "AAA\x80",  "\xc3\xa9\x41\x41",
    };
    struct rtmd_buf b;
    rtmd_buf_init(&b, 256);
    assert_int_equal(rtmd_buf_append_cstr(&b, "keep"), 0);
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(bad); i++) {
        assert_int_equal(rtmd_base64_decode(&b, S(bad[i])), -EINVAL);
        assert_int_equal(b.len, 4); /* untouched */
    }
    /* An embedded NUL. */
    assert_int_equal(rtmd_base64_decode(&b, rtmd_str_make("Zm\0v", 4)), -EINVAL);
    /* Appends after existing content. */
    assert_int_equal(rtmd_base64_decode(&b, S("Zm9v")), 0);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "keepfoo", 7);
    rtmd_buf_free(&b);
    /* Non-canonical final bits are rejected for every value. */
    rtmd_buf_init(&b, 16);
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; i++) {
        char two[5] = {'Q', alpha[i], '=', '=', 0}, one[5] = {'Q', 'Q', alpha[i], '=', 0};
        rtmd_buf_reset(&b);
        assert_int_equal(rtmd_base64_decode(&b, S(two)), (i & 15) ? -EINVAL : 0);
        rtmd_buf_reset(&b);
        assert_int_equal(rtmd_base64_decode(&b, S(one)), (i & 3) ? -EINVAL : 0);
    }
    rtmd_buf_free(&b);
}

static void test_base64_bounded(void **state)
{
    struct rtmd_buf b;
    rtmd_buf_init(&b, 7);
    assert_int_equal(rtmd_base64_encode(&b, "foobar", 6), RTMD_ELIMIT);
    assert_int_equal(b.len, 0);
    assert_int_equal(rtmd_base64url_encode(&b, "foobar", 6), RTMD_ELIMIT);
    assert_int_equal(b.len, 0);
    assert_int_equal(rtmd_base64_encode(&b, "fooba", 5), RTMD_ELIMIT);
    rtmd_buf_free(&b);
    rtmd_buf_init(&b, 8);
    assert_int_equal(rtmd_base64_encode(&b, "foobar", 6), 0); /* exactly fits */
    assert_int_equal(b.len, 8);
    rtmd_buf_free(&b);
    rtmd_buf_init(&b, 5);
    assert_int_equal(rtmd_base64_decode(&b, S("Zm9vYmFy")), RTMD_ELIMIT);
    assert_int_equal(b.len, 0);
    assert_int_equal(rtmd_base64_decode(&b, S("Zm9vYmE=")), 0); /* exact length 5 */
    assert_int_equal(b.len, 5);
    rtmd_buf_free(&b);
    /* Sizes that would overflow the encoded length. */
    rtmd_buf_init(&b, SIZE_MAX);
    assert_int_equal(rtmd_base64_encode(&b, "", SIZE_MAX), RTMD_ELIMIT);
    rtmd_buf_free(&b);
}

/* ---- Basic ------------------------------------------------------------------ */

static char *basic_header(const char *scheme_and_space, const char *creds)
{
    struct rtmd_buf b;
    rtmd_buf_init(&b, 8192);
    assert_int_equal(rtmd_buf_append_cstr(&b, scheme_and_space), 0);
    assert_int_equal(rtmd_base64_encode(&b, creds, strlen(creds)), 0);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    return rtmd_buf_steal(&b, NULL);
}

static int basic(const char *header, char *id, char *secret)
{
    return rtmd_auth_basic_parse(S(header), id, 65, secret, 129);
}

static void test_basic_good(void **state)
{
    char id[65], secret[129];
    char *h = basic_header("Basic ", "ck_demo:4d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1f");
    assert_int_equal(basic(h, id, secret), 0);
    assert_string_equal(id, "ck_demo");
    assert_string_equal(secret, "4d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1f");
    free(h);
    const char *schemes[] = {"basic ", "BASIC ", "bAsIc    ", "  Basic  "};
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(schemes); i++) {
        h = basic_header(schemes[i], "id:se:cr:et");
        assert_int_equal(basic(h, id, secret), 0);
        assert_string_equal(id, "id");
        assert_string_equal(secret, "se:cr:et");
        free(h);
    }
    /* Surrounding OWS is ignored. */
    assert_int_equal(basic("Basic aWQ6cw== \t", id, secret), 0);
    assert_string_equal(id, "id");
    assert_string_equal(secret, "s");
    /* Exactly filling the output buffers. */
    assert_int_equal(rtmd_auth_basic_parse(S("Basic aWQ6cw=="), id, 3, secret, 2), 0);
    assert_string_equal(id, "id");
    assert_string_equal(secret, "s");
}

static void test_basic_rejects(void **state)
{
    char id[65], secret[129];
    const char *bad_creds[] = {"nocolon", ":secret", "id:", ":", ""};
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(bad_creds); i++) {
        char *h = basic_header("Basic ", bad_creds[i]);
        strcpy(id, "x");
        strcpy(secret, "x");
        assert_int_equal(basic(h, id, secret), RTMD_EPARSE);
        assert_string_equal(id, "");
        assert_string_equal(secret, "");
        free(h);
    }
    const char *bad[] = {
        "",
        "Basic",
        "Basic ",
        "Basic aWQ6cw",    /* unpadded */
        "Basic aWQ6cw=",   /* bad padding */
        "Basic aWQ6c-==",  /* URL-safe */
        "Basic aWQ6 cw==", /* inner space */
        "Basicx aWQ6cw==", /* scheme glued to more letters */
        "BasicaWQ6cw==",   /* no space */
        "Basic\taWQ6cw==", /* tab instead of space */
        "Bearer aWQ6cw==", /* wrong scheme */
        "Digest aWQ6cw==",
        "agora token=007eJ",
        "aWQ6cw==",
    };
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(bad); i++)
        assert_int_equal(basic(bad[i], id, secret), RTMD_EPARSE);
    assert_int_equal(rtmd_auth_basic_parse(RTMD_STR_NULL, id, 65, secret, 129), RTMD_EPARSE);
    /* A NUL inside the credentials. */
    struct rtmd_buf b;
    rtmd_buf_init(&b, 64);
    assert_int_equal(rtmd_buf_append_cstr(&b, "Basic "), 0);
    assert_int_equal(rtmd_base64_encode(&b, "i\0d:s", 5), 0);
    assert_int_equal(rtmd_auth_basic_parse(rtmd_str_make(b.data, b.len), id, 65, secret, 129),
                     RTMD_EPARSE);
    rtmd_buf_free(&b);
    /* Outputs too small. */
    assert_int_equal(rtmd_auth_basic_parse(S("Basic aWQ6cw=="), id, 2, secret, 2), RTMD_EPARSE);
    assert_int_equal(rtmd_auth_basic_parse(S("Basic aWQ6cw=="), id, 3, secret, 1), RTMD_EPARSE);
    assert_int_equal(rtmd_auth_basic_parse(S("Basic aWQ6cw=="), NULL, 0, secret, 129), RTMD_EPARSE);
}

static void test_basic_overlong(void **state)
{
    char id[65], secret[2048];
    char creds[800];
    memset(creds, 's', sizeof(creds) - 1);
    creds[sizeof(creds) - 1] = '\0';
    creds[0] = 'i';
    creds[1] = ':';
    /* 6 + 4 * ceil(799 / 3) = 1074 > 1024. */
    char *h = basic_header("Basic ", creds);
    assert_true(strlen(h) > RTMD_AUTH_BASIC_HEADER_MAX);
    assert_int_equal(rtmd_auth_basic_parse(S(h), id, sizeof(id), secret, sizeof(secret)),
                     RTMD_EPARSE);
    free(h);
    /* Just under the limit it parses. */
    creds[760] = '\0';
    h = basic_header("Basic ", creds);
    assert_true(strlen(h) <= RTMD_AUTH_BASIC_HEADER_MAX);
    assert_int_equal(rtmd_auth_basic_parse(S(h), id, sizeof(id), secret, sizeof(secret)), 0);
    assert_string_equal(id, "i");
    assert_int_equal(strlen(secret), 758);
    free(h);
    /* Long whitespace padding counts against the limit too. */
    char pad[1100];
    memset(pad, ' ', sizeof(pad));
    memcpy(pad, "Basic aWQ6cw==", 14);
    assert_int_equal(rtmd_auth_basic_parse(rtmd_str_make(pad, sizeof(pad)), id, sizeof(id), secret,
                                           sizeof(secret)),
                     RTMD_EPARSE);
}

static void test_secret_equal(void **state)
{
    const char *secret = "4d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1f";
    assert_true(rtmd_auth_secret_equal(S(secret), secret));
    assert_false(rtmd_auth_secret_equal(S("5d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1f"), secret));
    assert_false(rtmd_auth_secret_equal(S("4d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1e"), secret));
    assert_false(rtmd_auth_secret_equal(S("4d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1"), secret));
    assert_false(rtmd_auth_secret_equal(S("4d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1ff"), secret));
    assert_false(rtmd_auth_secret_equal(S(""), secret));
    assert_false(rtmd_auth_secret_equal(RTMD_STR_NULL, secret));
    assert_false(rtmd_auth_secret_equal(S(secret), NULL));
    assert_false(rtmd_auth_secret_equal(S(""), ""));
    assert_false(rtmd_auth_secret_equal(rtmd_str_make(NULL, 5), "abcde"));
    /* The view's length is what counts, not a NUL. */
    assert_true(rtmd_auth_secret_equal(rtmd_str_make("abcdef", 3), "abc"));
    assert_false(rtmd_auth_secret_equal(rtmd_str_make("abc\0", 4), "abc"));
    /* Long secrets: up to 128 bytes compare (the config allows 128); longer
     * ones never match. */
    char a[129], b[129];
    memset(a, 'x', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memcpy(b, a, sizeof(a));
    assert_true(rtmd_auth_secret_equal(S(a), b));
    b[100] = 'y';
    assert_false(rtmd_auth_secret_equal(S(a), b));
    b[100] = 'x';
    b[127] = 'y';
    assert_false(rtmd_auth_secret_equal(S(a), b));
    char c[301];
    memset(c, 'x', sizeof(c) - 1);
    c[sizeof(c) - 1] = '\0';
    assert_false(rtmd_auth_secret_equal(S(c), c));
}

/* ---- rtmd token ------------------------------------------------------------- */

/* Runs the subcommand with stdout and stderr captured into out/err. */
static int run_cli(char *out, size_t outlen, char *err, size_t errlen, int argc, char **argv)
{
    fflush(stdout);
    fflush(stderr);
    FILE *fo = tmpfile(), *fe = tmpfile();
    assert_non_null(fo);
    assert_non_null(fe);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    int rc = rtmd_cli_token(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    rewind(fo);
    rewind(fe);
    size_t n = fread(out, 1, outlen - 1, fo);
    out[n] = '\0';
    n = fread(err, 1, errlen - 1, fe);
    err[n] = '\0';
    fclose(fo);
    fclose(fe);
    return rc;
}

#define CLI(...)                                                                                   \
    do {                                                                                           \
        char *argv_[] = {"token", __VA_ARGS__, NULL};                                              \
        cli_rc = run_cli(cli_out, sizeof(cli_out), cli_err, sizeof(cli_err),                       \
                         (int)RTMD_ARRAY_SIZE(argv_) - 1, argv_);                                  \
    } while (0)

static void test_cli_token(void **state)
{
    char cli_out[4096], cli_err[4096];
    int cli_rc;
    uint64_t now = (uint64_t)time(NULL);
    struct rtmd_token_info info;

    CLI("--appid", APP, "--certificate", CERT, "--uid", "alice");
    assert_int_equal(cli_rc, 0);
    size_t n = strlen(cli_out);
    assert_true(n > 4 && cli_out[n - 1] == '\n');
    assert_memory_equal(cli_out, "007", 3);
    assert_int_equal(
        rtmd_token_verify(rtmd_str_make(cli_out, n - 1), app, cert, S("alice"), now, SKEW, &info),
        0);
    assert_true(info.salt >= 1 && info.salt <= 99999999);
    assert_true(info.expire_ts >= now + 86400 - 5 && info.expire_ts <= now + 86400 + 5);

    CLI("--appid", APP, "--certificate", CERT, "--uid", "bob", "--expire", "60", "--v", "006");
    assert_int_equal(cli_rc, 0);
    n = strlen(cli_out);
    assert_memory_equal(cli_out, "006" APP, 35);
    assert_int_equal(
        rtmd_token_verify(rtmd_str_make(cli_out, n - 1), app, cert, S("bob"), now, SKEW, &info), 0);
    assert_true(info.expire_ts >= now + 55 && info.expire_ts <= now + 65);

    CLI("--appid=" APP, "--certificate=" CERT, "--uid=carol d", "--expire=0", "--v=007");
    assert_int_equal(cli_rc, 0);
    n = strlen(cli_out);
    assert_int_equal(
        rtmd_token_verify(rtmd_str_make(cli_out, n - 1), app, cert, S(""), now, SKEW, &info), 0);
    assert_string_equal(info.user_id, "carol d");
    assert_true(info.expire_ts >= now + 86400 - 5);

    CLI("--help");
    assert_int_equal(cli_rc, 0);
    assert_non_null(strstr(cli_out, "usage: rtmd token"));
}

static void test_cli_token_bad_usage(void **state)
{
    char cli_out[4096], cli_err[4096];
    int cli_rc;
    CLI("--certificate", CERT, "--uid", "u");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--appid"));
    assert_string_equal(cli_out, "");
    CLI("--appid", APP, "--uid", "u");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--certificate"));
    CLI("--appid", APP, "--certificate", CERT);
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--uid"));
    CLI("--appid", "970CA35de60c44645bbae8a215061b3", "--certificate", CERT, "--uid", "u");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--appid"));
    CLI("--appid", "970CA35de60c44645bbae8a215061b3!", "--certificate", CERT, "--uid", "u");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--appid"));
    CLI("--appid", APP, "--certificate", "5CFd2fd1755d40ecb72977518be15d3g", "--uid", "u");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--certificate"));
    CLI("--appid", APP, "--certificate", CERT, "--uid", "null");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--uid"));
    CLI("--appid", APP, "--certificate", CERT, "--uid", "a\"b");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--uid"));
    CLI("--appid", APP, "--certificate", CERT, "--uid", "u", "--expire", "86401");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--expire"));
    CLI("--appid", APP, "--certificate", CERT, "--uid", "u", "--expire", "-1");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--expire"));
    CLI("--appid", APP, "--certificate", CERT, "--uid", "u", "--expire", "1h");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--expire"));
    CLI("--appid", APP, "--certificate", CERT, "--uid", "u", "--v", "008");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--v"));
    CLI("--appid", APP, "--certificate", CERT, "--uid", "u", "--colour", "red");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--colour"));
    CLI("--appid", APP, "--certificate", CERT, "--uid");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "--uid"));
    CLI("--appid", APP, "stray");
    assert_int_equal(cli_rc, 2);
    assert_non_null(strstr(cli_err, "stray"));
    assert_string_equal(cli_out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector1_verifies),
        cmocka_unit_test(test_vector1_builds_byte_for_byte),
        cmocka_unit_test(test_vector1_intermediate_values),
        cmocka_unit_test(test_vector2_verifies),
        cmocka_unit_test(test_vector2_builds_byte_for_byte),
        cmocka_unit_test(test_vector3_rtc_signature_checks_but_rejected),
        cmocka_unit_test(test_vector4_rtc_no_rtm_privilege),
        cmocka_unit_test(test_vector5_verifies),
        cmocka_unit_test(test_vector6_verifies),
        cmocka_unit_test(test_vector6b_verifies),
        cmocka_unit_test(test_vector7_verifies),
        cmocka_unit_test(test_vector7b_verifies),
        cmocka_unit_test(test_vector5_intermediate_values),
        cmocka_unit_test(test_vector6_signature),
        cmocka_unit_test(test_vectors_same_content_different_deflate),
        cmocka_unit_test(test_build_007_matches_vector5),
        cmocka_unit_test(test_build_007_matches_vector6),
        cmocka_unit_test(test_build_rejects_bad_inputs),
        cmocka_unit_test(test_build_roundtrip_max_user),
        cmocka_unit_test(test_tamper_every_char_006),
        cmocka_unit_test(test_tamper_every_char_007),
        cmocka_unit_test(test_tamper_signature_byte),
        cmocka_unit_test(test_tamper_app_id),
        cmocka_unit_test(test_wrong_certificate),
        cmocka_unit_test(test_wrong_app_id),
        cmocka_unit_test(test_wrong_uid_006),
        cmocka_unit_test(test_uid_mismatch_007),
        cmocka_unit_test(test_truncated_every_length),
        cmocka_unit_test(test_overlong_token),
        cmocka_unit_test(test_bad_prefix_and_empty),
        cmocka_unit_test(test_006_missing_privilege_and_crc),
        cmocka_unit_test(test_006_expiry_rules),
        cmocka_unit_test(test_006_malformed_content),
        cmocka_unit_test(test_007_expire_zero_is_24h),
        cmocka_unit_test(test_007_24h_cap),
        cmocka_unit_test(test_007_service_rules),
        cmocka_unit_test(test_007_bad_streams),
        cmocka_unit_test(test_base64_rfc4648_vectors),
        cmocka_unit_test(test_base64_roundtrip_all_lengths),
        cmocka_unit_test(test_base64_decode_rejects),
        cmocka_unit_test(test_base64_bounded),
        cmocka_unit_test(test_basic_good),
        cmocka_unit_test(test_basic_rejects),
        cmocka_unit_test(test_basic_overlong),
        cmocka_unit_test(test_secret_equal),
        cmocka_unit_test(test_cli_token),
        cmocka_unit_test(test_cli_token_bad_usage),
    };
    return cmocka_run_group_tests_name("token", tests, NULL, NULL);
}
