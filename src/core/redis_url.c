/*
 * redis_url.c — parsing redis_url's seeds (redis_url.h).
 */
#include "core/redis_url.h"

#include "core/url.h"

/* Percent-decodes s into out (cap bytes with the NUL); false when it does
 * not fit, an escape is bad, or it would hold a NUL. */
static bool decode(struct rtmd_str s, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (c == '%') {
            if (i + 2 >= s.len)
                return false;
            int hi = rtmd_url_hexval(s.p[i + 1]), lo = rtmd_url_hexval(s.p[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || n + 1 >= cap)
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return true;
}

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

static bool ipv6_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
           c == '.';
}

int rtmd_redis_url_parse(struct rtmd_str url, struct rtmd_redis_seed *out, const char **why)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (url.len >= 9 && memcmp(url.p, "rediss://", 9) == 0) {
        *why = "rediss:// (TLS to Redis) is not supported";
        return -EINVAL;
    }
    if (url.len >= 7 && memcmp(url.p, "unix://", 7) == 0) {
        *why = "unix:// sockets are not supported; use redis://HOST:PORT";
        return -EINVAL;
    }
    if (url.len < sizeof(scheme) - 1 || memcmp(url.p, scheme, sizeof(scheme) - 1) != 0) {
        *why = "must start with redis://";
        return -EINVAL;
    }
    const char *p = url.p + sizeof(scheme) - 1, *end = url.p + url.len;
    /* authority ends at '/', '?' or '#' */
    const char *auth_end = p;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#')
        auth_end++;
    struct rtmd_str rest = rtmd_str_make(auth_end, (size_t)(end - auth_end));
    if (rest.len && !rtmd_str_eq_cstr(rest, "/") && !rtmd_str_eq_cstr(rest, "/0")) {
        *why = "only database 0 (a path of /0 or none) and no query are allowed";
        return -EINVAL;
    }
    /* userinfo: the last '@' of the authority */
    const char *at = NULL;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        struct rtmd_str user = rtmd_str_make(p, colon ? (size_t)(colon - p) : (size_t)(at - p));
        struct rtmd_str pass =
            colon ? rtmd_str_make(colon + 1, (size_t)(at - colon - 1)) : RTMD_STR_NULL;
        if (!colon) {
            /* redis://secret@host: the one field is the password */
            pass = user;
            user = RTMD_STR_NULL;
        }
        if (!pass.len) {
            *why = "a user needs a password (redis://USER:PASSWORD@HOST)";
            return -EINVAL;
        }
        if ((user.len && !decode(user, out->user, sizeof(out->user))) ||
            !decode(pass, out->password, sizeof(out->password))) {
            *why = "the user or password is too long, or has a bad %-escape or a NUL";
            return -EINVAL;
        }
        p = at + 1;
    }
    /* host */
    const char *host_end;
    if (p < auth_end && *p == '[') {
        host_end = memchr(p, ']', (size_t)(auth_end - p));
        if (!host_end || host_end == p + 1) {
            *why = "an IPv6 address needs its closing ]";
            return -EINVAL;
        }
        for (const char *q = p + 1; q < host_end; q++)
            if (!ipv6_char(*q)) {
                *why = "the IPv6 address has a character that cannot be in one";
                return -EINVAL;
            }
        memcpy(out->host, p + 1, (size_t)(host_end - p - 1));
        host_end++;
    } else {
        host_end = p;
        while (host_end < auth_end && *host_end != ':')
            host_end++;
        if (host_end == p) {
            *why = "the host is missing";
            return -EINVAL;
        }
        if ((size_t)(host_end - p) >= sizeof(out->host)) {
            *why = "the host is too long";
            return -EINVAL;
        }
        for (const char *q = p; q < host_end; q++)
            if (!host_char(*q)) {
                *why = "the host has a character that cannot be in a name or address";
                return -EINVAL;
            }
        memcpy(out->host, p, (size_t)(host_end - p));
    }
    if (host_end < auth_end) {
        if (*host_end != ':' || host_end + 1 == auth_end) {
            *why = "the port must follow the host after one ':'";
            return -EINVAL;
        }
        uint64_t port;
        if (rtmd_str_to_u64(rtmd_str_make(host_end + 1, (size_t)(auth_end - host_end - 1)), 65535,
                            &port) < 0 ||
            port == 0) {
            *why = "the port must be 1..65535";
            return -EINVAL;
        }
        out->port = (uint16_t)port;
    }
    return 0;
}

int rtmd_redis_urls_parse(struct rtmd_str list, struct rtmd_redis_seed *out, size_t max, size_t *n,
                          const char **why, size_t *bad)
{
    *n = 0;
    *bad = 0;
    size_t i = 0, item = 0;
    while (i <= list.len) {
        size_t j = i;
        while (j < list.len && list.p[j] != ',')
            j++;
        struct rtmd_str s = rtmd_str_trim_ows(rtmd_str_make(list.p + i, j - i));
        if (s.len) {
            *bad = item;
            if (*n == max) {
                *why = "too many URLs";
                return -EINVAL;
            }
            if (rtmd_redis_url_parse(s, &out[*n], why) < 0)
                return -EINVAL;
            (*n)++;
            item++;
        }
        i = j + 1;
    }
    if (*n == 0) {
        *why = "at least one redis:// URL is needed";
        return -EINVAL;
    }
    return 0;
}
