/*
 * basic.c — `Authorization: Basic` parsing and constant-time secret checks.
 */
#include "auth/basic.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "core/base64.h"
#include "core/buf.h"

#define DIGEST_LEN 32

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static void clear_out(char *id, size_t idlen, char *secret, size_t secretlen)
{
    if (id && idlen > 0)
        id[0] = '\0';
    if (secret && secretlen > 0)
        secret[0] = '\0';
}

/* Copies a view into a C string of outlen bytes; false if it cannot fit or
 * holds a NUL. */
static bool copy_part(char *out, size_t outlen, const char *p, size_t len)
{
    if (!out || len >= outlen || memchr(p, '\0', len))
        return false;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

int rtmd_auth_basic_parse(struct rtmd_str header_value, char *id, size_t idlen, char *secret,
                          size_t secretlen)
{
    clear_out(id, idlen, secret, secretlen);
    struct rtmd_str v = header_value;
    if (!v.p || v.len > RTMD_AUTH_BASIC_HEADER_MAX)
        return RTMD_EPARSE;
    while (v.len > 0 && is_space(v.p[0])) {
        v.p++;
        v.len--;
    }
    while (v.len > 0 && is_space(v.p[v.len - 1]))
        v.len--;

    static const char scheme[] = "Basic";
    size_t slen = sizeof(scheme) - 1;
    if (v.len <= slen || !rtmd_str_ieq(rtmd_str_make(v.p, slen), rtmd_str_make(scheme, slen)) ||
        v.p[slen] != ' ')
        return RTMD_EPARSE;
    v.p += slen;
    v.len -= slen;
    while (v.len > 0 && v.p[0] == ' ') {
        v.p++;
        v.len--;
    }

    struct rtmd_buf plain;
    rtmd_buf_init(&plain, RTMD_BASE64_DECODED_MAX(RTMD_AUTH_BASIC_HEADER_MAX));
    int rc = rtmd_base64_decode(&plain, v);
    if (rc) {
        rc = rc == -ENOMEM ? rc : RTMD_EPARSE;
        goto out;
    }
    rc = RTMD_EPARSE;
    const char *colon = plain.len ? memchr(plain.data, ':', plain.len) : NULL;
    if (!colon)
        goto out;
    size_t id_n = (size_t)(colon - plain.data);
    size_t secret_n = plain.len - id_n - 1;
    if (id_n == 0 || secret_n == 0 || !copy_part(id, idlen, plain.data, id_n) ||
        !copy_part(secret, secretlen, colon + 1, secret_n)) {
        clear_out(id, idlen, secret, secretlen);
        goto out;
    }
    rc = 0;
out:
    if (plain.data)
        OPENSSL_cleanse(plain.data, plain.cap);
    rtmd_buf_free(&plain);
    return rc;
}

/* Secrets are compared over this many bytes whatever their lengths (the
 * config allows at most 128; a longer given secret cannot match). */
#define SECRET_CMP_MAX 128

/* Copies n bytes of s into a zeroed block of SECRET_CMP_MAX bytes. The time
 * depends on n, which is no secret: the given secret's length is the
 * client's own, and the expected one's has just been measured (strlen). */
static void pad(uint64_t out[SECRET_CMP_MAX / 8], const char *s, size_t n)
{
    memset(out, 0, SECRET_CMP_MAX);
    memcpy(out, s, n < SECRET_CMP_MAX ? n : SECRET_CMP_MAX);
}

bool rtmd_auth_secret_equal(struct rtmd_str given, const char *expected)
{
    /* Constant time in the secret's bytes: both sides are padded to one
     * block, every word of which is compared, with no early exit (the empty
     * asm keeps the compiler from adding one); the lengths are compared
     * after, whatever the bytes said. An HMAC of each side, as at first, cost
     * a fifth of an empty event pull; CRYPTO_memcmp's byte loop, 2% of a
     * 100-event pull. */
    uint64_t a[SECRET_CMP_MAX / 8], b[SECRET_CMP_MAX / 8];
    size_t elen = expected ? strlen(expected) : 0;
    size_t glen = given.p ? given.len : 0;
    pad(a, given.p ? given.p : "", glen);
    pad(b, expected ? expected : "", elen);
    uint64_t diff = 0;
    for (size_t i = 0; i < SECRET_CMP_MAX / 8; i++) {
        diff |= a[i] ^ b[i];
        __asm__ volatile("" : "+r"(diff));
    }
    OPENSSL_cleanse(b, sizeof(b));
    return diff == 0 && glen == elen && elen > 0 && glen <= SECRET_CMP_MAX;
}
