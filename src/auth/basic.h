/*
 * basic.h — HTTP Basic credentials (RFC 7617) for the vendor REST API
 * (`Authorization: Basic base64(customer_id:customer_secret)`),
 * and the constant-time secret comparison that checks them.
 */
#ifndef RTMD_AUTH_BASIC_H
#define RTMD_AUTH_BASIC_H

#include <stdbool.h>
#include <stddef.h>

#include "core/common.h"

/* Longest Authorization header value parsed (bytes). */
#define RTMD_AUTH_BASIC_HEADER_MAX 1024

/*
 * Parses the value of an Authorization header of the form
 * `Basic <base64(id:secret)>`: the scheme is case-insensitive and followed by
 * one or more spaces; spaces and tabs around the value are ignored; the
 * credentials are strict padded standard base64 (core/base64.h). The id is
 * the part before the first ':' and the secret the rest (which may contain
 * ':'); both must be non-empty, contain no NUL byte and fit, NUL-terminated,
 * in idlen / secretlen bytes. Header values longer than
 * RTMD_AUTH_BASIC_HEADER_MAX are rejected.
 * Returns 0 or RTMD_EPARSE (-ENOMEM if the decode buffer cannot be had). On
 * failure id and secret are set to "" (when their lengths allow). The decoded
 * copy is wiped before it is freed.
 */
int rtmd_auth_basic_parse(struct rtmd_str header_value, char *id, size_t idlen, char *secret,
                          size_t secretlen);

/*
 * True when given equals expected (a NUL-terminated secret). The time taken
 * does not depend on where the two differ, and there is no early exit on a
 * length mismatch: both sides are reduced to HMAC-SHA256 digests under a
 * random per-process key and the digests are compared with CRYPTO_memcmp.
 * (The hashing time grows with the lengths in 64-byte blocks only.)
 * A NULL or empty expected never matches (an account without a secret
 * cannot log in).
 */
bool rtmd_auth_secret_equal(struct rtmd_str given, const char *expected);

#endif
