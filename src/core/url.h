/*
 * url.h — the small URL pieces the REST API needs: percent-decoding and
 * query parameters.
 */
#ifndef RTMD_CORE_URL_H
#define RTMD_CORE_URL_H

#include "core/buf.h"
#include "core/common.h"

/* The value of a hex digit, or -1. */
int rtmd_url_hexval(char c);

/* Appends the percent-decoded s to out. In query values '+' is a space
 * (plus_is_space); in paths it stays '+'. A '%' not followed by two hex
 * digits stays a '%' (as browsers' URL parsers do: IDs may contain '%', and
 * clients put them in paths unencoded). 0, or RTMD_ELIMIT when out is full. */
int rtmd_url_decode(struct rtmd_buf *out, struct rtmd_str s, bool plus_is_space);

/* Finds `name` in a query string (a=1&b=2, empty items allowed); *value is
 * the raw (still encoded) value, empty for `name` or `name=`. */
bool rtmd_query_param(struct rtmd_str query, const char *name, struct rtmd_str *value);

#endif
