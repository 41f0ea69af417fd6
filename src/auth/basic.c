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

/* The per-process HMAC key. Should RAND_bytes fail, the key stays all zero:
 * the comparison is then still exact and constant-time, only the digests
 * become predictable, which CRYPTO_memcmp makes harmless. */
static unsigned char secret_key[DIGEST_LEN];
static pthread_once_t secret_key_once = PTHREAD_ONCE_INIT;

static void secret_key_init(void)
{
    if (RAND_bytes(secret_key, sizeof(secret_key)) != 1)
        memset(secret_key, 0, sizeof(secret_key));
}

static bool digest(const void *p, size_t n, unsigned char out[DIGEST_LEN])
{
    static const unsigned char empty;
    unsigned int len = 0;
    return HMAC(EVP_sha256(), secret_key, (int)sizeof(secret_key), n ? p : &empty, n, out, &len) &&
           len == DIGEST_LEN;
}

bool rtmd_auth_secret_equal(struct rtmd_str given, const char *expected)
{
    unsigned char a[DIGEST_LEN], b[DIGEST_LEN];
    pthread_once(&secret_key_once, secret_key_init);
    /* Both digests are always computed, so neither a NULL nor a length
     * mismatch returns early. */
    bool given_ok = given.p != NULL || given.len == 0;
    size_t expected_len = expected ? strlen(expected) : 0;
    bool ok_a = digest(given.p, given_ok ? given.len : 0, a);
    bool ok_b = digest(expected ? expected : "", expected_len, b);
    bool same = CRYPTO_memcmp(a, b, DIGEST_LEN) == 0;
    return same && ok_a && ok_b && given_ok && expected_len > 0;
}
