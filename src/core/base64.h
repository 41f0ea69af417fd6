/*
 * base64.h — Base64 (RFC 4648) on top of OpenSSL's EVP_EncodeBlock and
 * EVP_DecodeBlock. rtmd never hand-writes the transformation; this module
 * adds what the library leaves out: strict validation, exact decoded lengths
 * and bounded output.
 *
 * All functions APPEND to `out` (they do not reset it) and respect out->max.
 * On failure `out` is left exactly as it was (same len; its allocation may
 * have grown).
 */
#ifndef RTMD_CORE_BASE64_H
#define RTMD_CORE_BASE64_H

#include <stddef.h>

#include "core/buf.h"
#include "core/common.h"

/* Encoded length of n bytes in standard padded base64 (4 * ceil(n / 3)). */
#define RTMD_BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
/* Largest possible decoded length of m base64 characters. */
#define RTMD_BASE64_DECODED_MAX(m) (((m) / 4) * 3)

/* Standard alphabet (A-Z a-z 0-9 + /), padded with '='.
 * 0, RTMD_ELIMIT (would pass out->max) or -ENOMEM. */
int rtmd_base64_encode(struct rtmd_buf *out, const void *p, size_t n);

/*
 * Strict standard base64. Accepts exactly the strings rtmd_base64_encode()
 * produces: the length is a multiple of 4, every character is in the
 * standard alphabet except for one or two '=' that may end the last quantum,
 * and the bits the padding discards are zero (so each byte string has one
 * encoding). No whitespace, no line breaks, no URL-safe characters.
 * The empty string decodes to nothing.
 * 0, -EINVAL (not strict base64), RTMD_ELIMIT or -ENOMEM.
 */
int rtmd_base64_decode(struct rtmd_buf *out, struct rtmd_str in);

/* URL-safe alphabet (A-Z a-z 0-9 - _) without padding (RFC 4648 §5).
 * 0, RTMD_ELIMIT or -ENOMEM. */
int rtmd_base64url_encode(struct rtmd_buf *out, const void *p, size_t n);

#endif
