/*
 * fuzz_token.c — libFuzzer driver for RTM token verification (006 and 007)
 * and Basic credentials parsing.
 *
 * The input's first byte picks how deep it goes:
 *   0x01  the rest is a 006 `m` (salt, ts, privileges): the driver signs it
 *         for the fixed app/certificate/uid and wraps it into a 006 token;
 *   0x02  the rest is a 007 signing_info: the driver signs it (with the
 *         issue_ts and salt found at their offsets), prepends the signature,
 *         compresses and wraps it into a 007 token;
 *   0x03  the rest is a whole inflated 007 payload: compressed and wrapped;
 *   else  the input is the token itself (and a Basic header value).
 * The signing modes let the fuzzer reach the privilege, service and expiry
 * logic that a random signature never passes. Every input is also fed to
 * rtmd_auth_basic_parse and rtmd_auth_secret_equal.
 *
 * Build for fuzzing: make fuzz CC=clang; build-fuzz/fuzz_token fuzz/corpus/token
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#include "auth/basic.h"
#include "auth/token.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/ids.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define APP  "970CA35de60c44645bbae8a215061b33"
#define CERT "5CFd2fd1755d40ecb72977518be15d3b"
#define UID  "test_user"
#define NOW  1111111u
/* Larger inputs only make longer-than-allowed tokens. */
#define BODY_MAX 3000

static void hmac(const void *key, size_t keylen, const void *msg, size_t msglen,
                 unsigned char out[32])
{
    unsigned int n = 32;
    static const unsigned char empty;
    if (!HMAC(EVP_sha256(), key, (int)keylen, msglen ? msg : &empty, msglen, out, &n))
        memset(out, 0, 32);
}

static void put_u16(struct rtmd_buf *b, size_t v)
{
    unsigned char t[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    rtmd_buf_append(b, t, 2);
}

static void put_u32(struct rtmd_buf *b, uint32_t v)
{
    unsigned char t[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    rtmd_buf_append(b, t, 4);
}

static void le32(unsigned char out[4], uint32_t v)
{
    out[0] = (unsigned char)v;
    out[1] = (unsigned char)(v >> 8);
    out[2] = (unsigned char)(v >> 16);
    out[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Verifies the token three ways and checks what a success promises. */
static void check(struct rtmd_str token)
{
    struct rtmd_token_info info;
    static const struct rtmd_str app = RTMD_STR_LIT(APP), cert = RTMD_STR_LIT(CERT);

    /* With a uid, success means the user is that uid, for both versions. */
    int rc = rtmd_token_verify(token, app, cert, RTMD_STR_LIT(UID), NOW, 300, &info);
    if (rc == 0 && (strcmp(info.user_id, UID) != 0 || NOW > info.expire_ts ||
                    (info.version == 7 && info.expire_ts > (uint64_t)info.issue_ts + 86400)))
        __builtin_trap();

    /* Without one, only a 007 token can pass, and its user is a valid ID. */
    rc = rtmd_token_verify(token, app, cert, RTMD_STR_NULL, NOW, 300, &info);
    if (rc == 0 && (info.version != 7 || !rtmd_id_valid(rtmd_str_cstr(info.user_id))))
        __builtin_trap();

    /* Nothing is valid forever. */
    if (rtmd_token_verify(token, app, cert, RTMD_STR_LIT(UID), UINT64_MAX, 300, &info) == 0)
        __builtin_trap();
}

static void wrap_and_check(const char *prefix, const void *body, size_t n, bool deflate)
{
    struct rtmd_buf tok;
    rtmd_buf_init(&tok, 4 * RTMD_TOKEN_MAX);
    rtmd_buf_append_cstr(&tok, prefix);
    if (deflate) {
        unsigned char packed[2 * BODY_MAX + 128];
        uLongf pn = sizeof(packed);
        if (compress2(packed, &pn, body, (uLong)n, Z_DEFAULT_COMPRESSION) != Z_OK) {
            rtmd_buf_free(&tok);
            return;
        }
        rtmd_base64_encode(&tok, packed, pn);
    } else {
        rtmd_base64_encode(&tok, body, n);
    }
    check(rtmd_str_make(tok.data, tok.len));
    rtmd_buf_free(&tok);
}

/* 0x01: sign m as an RTM 006 token for UID. */
static void mode_006(const uint8_t *m, size_t n)
{
    struct rtmd_buf msg, content;
    rtmd_buf_init(&msg, 2 * BODY_MAX);
    rtmd_buf_init(&content, 2 * BODY_MAX);
    rtmd_buf_append_cstr(&msg, APP UID);
    rtmd_buf_append(&msg, m, n);
    unsigned char sig[32];
    hmac(CERT, 32, msg.data, msg.len, sig);
    put_u16(&content, 32);
    rtmd_buf_append(&content, sig, 32);
    put_u32(&content, (uint32_t)crc32(0L, (const Bytef *)UID, 9));
    put_u32(&content, 0);
    put_u16(&content, n);
    rtmd_buf_append(&content, m, n);
    wrap_and_check("006" APP, content.data, content.len, false);
    rtmd_buf_free(&msg);
    rtmd_buf_free(&content);
}

/* 0x02: sign a 007 signing_info, reading issue_ts and salt where the parser
 * will. */
static void mode_007(const uint8_t *info, size_t n)
{
    uint32_t issue = 0, salt = 0;
    if (n >= 2) {
        size_t at = 2 + ((size_t)info[0] | (size_t)info[1] << 8);
        if (n >= at + 4)
            issue = get_u32(info + at);
        if (n >= at + 12)
            salt = get_u32(info + at + 8);
    }
    unsigned char key[4], k1[32], signing[32], sig[32];
    le32(key, issue);
    hmac(key, 4, CERT, 32, k1);
    le32(key, salt);
    hmac(key, 4, k1, 32, signing);
    hmac(signing, 32, info, n, sig);
    struct rtmd_buf plain;
    rtmd_buf_init(&plain, 2 * BODY_MAX);
    put_u16(&plain, 32);
    rtmd_buf_append(&plain, sig, 32);
    rtmd_buf_append(&plain, info, n);
    wrap_and_check("007", plain.data, plain.len, true);
    rtmd_buf_free(&plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rtmd_str whole = rtmd_str_make((const char *)data, size);
    char id[65], secret[129];
    if (rtmd_auth_basic_parse(whole, id, sizeof(id), secret, sizeof(secret)) == 0) {
        if (!rtmd_auth_secret_equal(rtmd_str_cstr(secret), secret) || id[0] == '\0' ||
            strchr(id, ':'))
            __builtin_trap();
    }
    rtmd_auth_secret_equal(whole, "4d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1f");

    if (size == 0) {
        check(whole);
        return 0;
    }
    const uint8_t *rest = data + 1;
    size_t n = RTMD_MIN(size - 1, (size_t)BODY_MAX);
    switch (data[0]) {
    case 0x01: mode_006(rest, n); break;
    case 0x02: mode_007(rest, n); break;
    case 0x03: wrap_and_check("007", rest, n, true); break;
    default: check(whole); break;
    }
    return 0;
}
