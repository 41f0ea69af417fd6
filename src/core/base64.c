/*
 * base64.c — strict, bounded wrappers around OpenSSL's base64 block codec.
 *
 * EVP_EncodeBlock/EVP_DecodeBlock take an int length and write a trailing
 * NUL (encode) or padding bytes (decode), so both are driven here through a
 * small stack chunk: the library never writes into the caller's buffer and
 * no length ever reaches an int conversion. EVP_DecodeBlock is lenient (it
 * skips surrounding whitespace and returns the '=' positions as zero bytes),
 * so the input is validated here first and the padding is subtracted.
 */
#include "core/base64.h"

#include <string.h>

#include <openssl/evp.h>

/* Input bytes per encode chunk (a multiple of 3) and characters per decode
 * chunk (a multiple of 4); they correspond to each other. */
#define CHUNK_BYTES 48
#define CHUNK_CHARS 64

static bool alphabet_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Encodes n <= CHUNK_BYTES bytes into out (CHUNK_CHARS + 1 bytes); returns
 * the number of characters, without the NUL the library appends. */
static size_t encode_chunk(char out[CHUNK_CHARS + 1], const unsigned char *p, size_t n)
{
    int k = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return k > 0 ? (size_t)k : 0;
}

static int encode(struct rtmd_buf *out, const void *p, size_t n, bool url)
{
    if (n > (SIZE_MAX / 4 - 1) * 3)
        return RTMD_ELIMIT;
    size_t need = RTMD_BASE64_ENCODED_LEN(n);
    int rc = rtmd_buf_reserve(out, need);
    if (rc)
        return rc;
    const unsigned char *in = p;
    char chunk[CHUNK_CHARS + 1];
    while (n > 0) {
        size_t take = RTMD_MIN(n, (size_t)CHUNK_BYTES);
        size_t k = encode_chunk(chunk, in, take);
        if (url) {
            while (k > 0 && chunk[k - 1] == '=')
                k--;
            for (size_t i = 0; i < k; i++) {
                if (chunk[i] == '+')
                    chunk[i] = '-';
                else if (chunk[i] == '/')
                    chunk[i] = '_';
            }
        }
        /* Cannot fail: the space was reserved above. */
        memcpy(out->data + out->len, chunk, k);
        out->len += k;
        in += take;
        n -= take;
    }
    return 0;
}

int rtmd_base64_encode(struct rtmd_buf *out, const void *p, size_t n)
{
    return encode(out, p, n, false);
}

int rtmd_base64url_encode(struct rtmd_buf *out, const void *p, size_t n)
{
    return encode(out, p, n, true);
}

/* Checks the shape of strict padded base64 and returns the number of '='
 * (0..2), or -EINVAL. */
static int check_shape(struct rtmd_str in)
{
    if (in.len % 4 != 0)
        return -EINVAL;
    if (in.len == 0)
        return 0;
    const unsigned char *s = (const unsigned char *)in.p;
    int pad = 0;
    if (s[in.len - 1] == '=') {
        pad = 1;
        if (s[in.len - 2] == '=')
            pad = 2;
    }
    for (size_t i = 0; i < in.len - (size_t)pad; i++)
        if (!alphabet_char(s[i]))
            return -EINVAL;
    return pad;
}

int rtmd_base64_decode(struct rtmd_buf *out, struct rtmd_str in)
{
    int pad = check_shape(in);
    if (pad < 0)
        return pad;
    if (in.len == 0)
        return 0;
    size_t need = RTMD_BASE64_DECODED_MAX(in.len) - (size_t)pad;
    int rc = rtmd_buf_reserve(out, need);
    if (rc)
        return rc;

    size_t start = out->len;
    unsigned char chunk[CHUNK_BYTES];
    for (size_t off = 0; off < in.len; off += CHUNK_CHARS) {
        size_t take = RTMD_MIN(in.len - off, (size_t)CHUNK_CHARS);
        int k = EVP_DecodeBlock(chunk, (const unsigned char *)in.p + off, (int)take);
        size_t full = take / 4 * 3;
        size_t keep = full;
        if (off + take == in.len)
            keep -= (size_t)pad;
        /* OpenSSL returns the padding as zero bytes; accept a library that
         * strips them as well. */
        if (k < 0 || ((size_t)k != full && (size_t)k != keep))
            goto invalid;
        memcpy(out->data + out->len, chunk, keep);
        out->len += keep;
    }

    /* The last quantum must be the canonical encoding of its bytes: the bits
     * that padding throws away are zero. Re-encoding with the library is
     * the check. */
    if (pad > 0) {
        size_t tail = 3 - (size_t)pad;
        char again[CHUNK_CHARS + 1];
        if (encode_chunk(again, (const unsigned char *)out->data + out->len - tail, tail) != 4 ||
            memcmp(again, in.p + in.len - 4, 4) != 0)
            goto invalid;
    }
    return 0;

invalid:
    out->len = start;
    return -EINVAL;
}
