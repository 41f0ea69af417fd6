/*
 * log.h — levelled, structured logs, one record a line, on stderr or in
 * [server] log_file.
 *
 * Two formats ([server] log_format):
 *   text: `2026-11-26T05:03:06.123Z warn http conn=12 msg... key=value ...`
 *   json: `{"time":"2026-11-26T05:03:06.123Z","level":"warn","module":"http",
 *          "msg":"...","key":value,...}`: one object a line, always valid JSON.
 * Bytes that came from a client are printed only through rtmd_log_quote()
 * (in a printf-style message) or a string field (rtmd_log_str), which
 * escape everything outside printable ASCII and truncate: a client's bytes
 * never break a line, nor the JSON.
 *
 * A line is written whole by one write(2), so lines of the loop and the
 * store's worker thread never interleave. The loop thread's lines (access
 * lines: one per request) are gathered and written once per loop iteration,
 * before the loop sleeps; an error line at once, with those before it (a
 * flood of refused credentials, warn lines, costs no write each). A crash
 * loses at most one iteration's lines below error. rtmd_log_reopen()
 * (SIGUSR1) reopens log_file in place: a rotation is `mv rtmd.log
 * rtmd.log.1; kill -USR1 <pid>`.
 */
#ifndef RTMD_CORE_LOG_H
#define RTMD_CORE_LOG_H

#include "core/common.h"

enum rtmd_log_level { RTMD_LOG_ERROR = 0, RTMD_LOG_WARN, RTMD_LOG_INFO, RTMD_LOG_DEBUG };
enum rtmd_log_format { RTMD_LOG_TEXT = 0, RTMD_LOG_JSON = 1 };

/* Atomic: a reload (loop thread) changes them while the store's thread may
 * be logging. */
extern _Atomic enum rtmd_log_level rtmd_log_level;
extern _Atomic enum rtmd_log_format rtmd_log_format;

static inline bool rtmd_log_enabled(enum rtmd_log_level level)
{
    return level <= rtmd_log_level;
}

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

/* Sends the log to path (appended to, created 0640), or back to stderr when
 * path is NULL. 0, or a negative errno (the destination is unchanged). The
 * path is copied. Safe while the store's thread logs (a config reload may
 * call it on the loop thread). */
int rtmd_log_open(const char *path);
/* Opens the log file's path again (after a rotation moved it); the old one
 * is closed once the new one is open. 0 (also when logging to stderr), or a
 * negative errno: the old file is kept and the failure logged to it. */
int rtmd_log_reopen(void);
/* Back to stderr; the file closed (what was gathered written first). */
void rtmd_log_close(void);
/* The calling thread (the loop's) gathers its lines until rtmd_log_flush();
 * core/loop.c sets this up and flushes before the loop sleeps. */
void rtmd_log_buffer_here(void);
void rtmd_log_flush(void);

/*
 * A record with fields, built on the stack (the caller checks
 * rtmd_log_enabled(level) first, so a disabled level costs nothing):
 *
 *   struct rtmd_log_rec r;
 *   rtmd_log_begin(&r, RTMD_LOG_INFO, "http", "request");
 *   rtmd_log_cstr(&r, "method", "GET");
 *   rtmd_log_str(&r, "path", path);   // client bytes: escaped, bounded
 *   rtmd_log_u64(&r, "status", 200);
 *   rtmd_log_end(&r);                 // one write
 *
 * Keys are constant identifiers ([a-z_]). A field that no longer fits the
 * line is left out whole (the line stays valid); a string value is cut
 * at RTMD_LOG_VALUE_MAX bytes with "...".
 */
#define RTMD_LOG_LINE_MAX  2048
#define RTMD_LOG_VALUE_MAX 256

struct rtmd_log_rec {
    size_t len;
    enum rtmd_log_level level;
    bool json;
    char buf[RTMD_LOG_LINE_MAX];
};

void rtmd_log_begin(struct rtmd_log_rec *r, enum rtmd_log_level level, const char *module,
                    const char *msg);
void rtmd_log_str(struct rtmd_log_rec *r, const char *key, struct rtmd_str value);
void rtmd_log_cstr(struct rtmd_log_rec *r, const char *key, const char *value);
void rtmd_log_u64(struct rtmd_log_rec *r, const char *key, uint64_t value);
void rtmd_log_i64(struct rtmd_log_rec *r, const char *key, int64_t value);
/* A duration given in nanoseconds, written in milliseconds with 3 decimals. */
void rtmd_log_ms(struct rtmd_log_rec *r, const char *key, uint64_t ns);
void rtmd_log_end(struct rtmd_log_rec *r);

/* Writes s into out (outlen >= 12) NUL-terminated, with bytes outside
 * printable ASCII and those in `also` as \xNN, truncated with "...". */
const char *rtmd_escape(char *out, size_t outlen, struct rtmd_str s, const char *also);
/* Writes a quoted, escaped, NUL-terminated copy of s into out (outlen >= 8),
 * truncated with "..." when it does not fit. Returns out. */
const char *rtmd_log_quote(char *out, size_t outlen, struct rtmd_str s);

#endif
