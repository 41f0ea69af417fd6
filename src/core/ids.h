/*
 * ids.h — validation of every identifier rtmd accepts, used by both
 * the REST API and the WebSocket gateway so the rules cannot drift apart.
 */
#ifndef RTMD_CORE_IDS_H
#define RTMD_CORE_IDS_H

#include "core/common.h"

#define RTMD_ID_MAX    64
#define RTMD_APPID_LEN 32

/* uid, channel name, destination: 1..64 bytes of the allowed printable ASCII,
 * and not the string "null". */
bool rtmd_id_valid(struct rtmd_str id);
/* A uid taken from a URL path: as above, and no leading or trailing space. */
bool rtmd_id_valid_in_path(struct rtmd_str id);
/* Exactly 32 characters of [0-9A-Za-z]. */
bool rtmd_appid_valid(struct rtmd_str id);
/* Exactly 32 hex characters (an App Certificate). */
bool rtmd_certificate_valid(struct rtmd_str s);
/* Well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool rtmd_utf8_valid(const char *p, size_t len);
/* Bytes (1..4) of the valid UTF-8 character at p, or 0 when the bytes there
 * are not one (len 0 included). */
size_t rtmd_utf8_char_len(const char *p, size_t len);

#endif
