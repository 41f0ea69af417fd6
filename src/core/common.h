/*
 * common.h — the few definitions every rtmd module shares.
 *
 * Error convention (every module): 0 is success, a negative errno value
 * (-EINVAL, -ENOMEM, ...) or one of the RTMD_E* codes below is failure.
 * rtmd_strerror() names either kind.
 */
#ifndef RTMD_CORE_COMMON_H
#define RTMD_CORE_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RTMD_ARRAY_SIZE(a)                  (sizeof(a) / sizeof((a)[0]))
#define RTMD_CONTAINER_OF(ptr, type, field) ((type *)((char *)(ptr)-offsetof(type, field)))
#define RTMD_MIN(a, b)                      ((a) < (b) ? (a) : (b))
#define RTMD_MAX(a, b)                      ((a) > (b) ? (a) : (b))

/* rtmd-specific error codes live below every errno value. */
enum {
    RTMD_EBASE = -10000,
    RTMD_EAUTH,    /* credentials missing or wrong */
    RTMD_EEXPIRED, /* token expired */
    RTMD_ELIMIT,   /* a configured bound was exceeded */
    RTMD_ERATE,    /* rate limit */
    RTMD_ESTORE,   /* the store failed (I/O, SQL, protocol) */
    RTMD_ECLOSED,  /* object is closing; the operation was abandoned */
    RTMD_EPARSE,   /* malformed input */
    RTMD_EFUTURE,  /* token issued in the future, beyond the allowed clock skew */
    RTMD_ELAST
};

/* Returns a static description of a negative error code. */
const char *rtmd_strerror(int err);

/*
 * A length-carrying view of bytes that rtmd does not own. Wire data is never
 * assumed to be NUL-terminated.
 */
struct rtmd_str {
    const char *p;
    size_t len;
};

#define RTMD_STR_LIT(s) ((struct rtmd_str){(s), sizeof(s) - 1})
#define RTMD_STR_NULL   ((struct rtmd_str){NULL, 0})

static inline struct rtmd_str rtmd_str_make(const char *p, size_t len)
{
    struct rtmd_str s = {p, len};
    return s;
}

static inline struct rtmd_str rtmd_str_cstr(const char *p)
{
    struct rtmd_str s = {p, p ? strlen(p) : 0};
    return s;
}

static inline bool rtmd_str_eq(struct rtmd_str a, struct rtmd_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline bool rtmd_str_eq_cstr(struct rtmd_str a, const char *b)
{
    return rtmd_str_eq(a, rtmd_str_cstr(b));
}

/* ASCII case-insensitive equality (HTTP header names, tokens). */
bool rtmd_str_ieq(struct rtmd_str a, struct rtmd_str b);

/* s without leading and trailing spaces and tabs (HTTP's OWS). */
struct rtmd_str rtmd_str_trim_ows(struct rtmd_str s);

/* Parses a decimal unsigned integer that fills the whole view; no sign, no
 * spaces. Returns 0, -EINVAL (not a number) or -ERANGE (above max). */
int rtmd_str_to_u64(struct rtmd_str s, uint64_t max, uint64_t *out);

#endif
