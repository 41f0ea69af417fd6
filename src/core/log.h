/*
 * log.h — levelled, structured logs on stderr.
 *
 * One line per record: `2026-11-26T05:03:06.123Z warn http conn=12 msg...`.
 * Bytes that came from a client are printed only through rtmd_log_quote(),
 * which escapes everything outside printable ASCII and truncates.
 */
#ifndef RTMD_CORE_LOG_H
#define RTMD_CORE_LOG_H

#include "core/common.h"

enum rtmd_log_level { RTMD_LOG_ERROR = 0, RTMD_LOG_WARN, RTMD_LOG_INFO, RTMD_LOG_DEBUG };

extern enum rtmd_log_level rtmd_log_level;

void rtmd_log(enum rtmd_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define rtmd_log_error(mod, ...) rtmd_log(RTMD_LOG_ERROR, mod, __VA_ARGS__)
#define rtmd_log_warn(mod, ...)  rtmd_log(RTMD_LOG_WARN, mod, __VA_ARGS__)
#define rtmd_log_info(mod, ...)                                                                    \
    do {                                                                                           \
        if (rtmd_log_level >= RTMD_LOG_INFO)                                                       \
            rtmd_log(RTMD_LOG_INFO, mod, __VA_ARGS__);                                             \
    } while (0)
#define rtmd_log_debug(mod, ...)                                                                   \
    do {                                                                                           \
        if (rtmd_log_level >= RTMD_LOG_DEBUG)                                                      \
            rtmd_log(RTMD_LOG_DEBUG, mod, __VA_ARGS__);                                            \
    } while (0)

/* Parses "error|warn|info|debug"; -EINVAL otherwise. */
int rtmd_log_level_parse(const char *s, enum rtmd_log_level *out);

/* Writes s into out (outlen >= 12) NUL-terminated, with bytes outside
 * printable ASCII and those in `also` as \xNN, truncated with "...". */
const char *rtmd_escape(char *out, size_t outlen, struct rtmd_str s, const char *also);
/* Writes a quoted, escaped, NUL-terminated copy of s into out (outlen >= 8),
 * truncated with "..." when it does not fit. Returns out. */
const char *rtmd_log_quote(char *out, size_t outlen, struct rtmd_str s);

#endif
