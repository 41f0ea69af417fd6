#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum rtmd_log_level rtmd_log_level = RTMD_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void rtmd_log(enum rtmd_log_level level, const char *module, const char *fmt, ...)
{
    if (level > rtmd_log_level)
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], module);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : RTMD_MIN((size_t)m, sizeof(line) - (size_t)n - 2));
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

int rtmd_log_level_parse(const char *s, enum rtmd_log_level *out)
{
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum rtmd_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *rtmd_escape(char *out, size_t outlen, struct rtmd_str s, const char *also)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (o + 8 >= outlen) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && !strchr(also, c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

const char *rtmd_log_quote(char *out, size_t outlen, struct rtmd_str s)
{
    out[0] = '"';
    rtmd_escape(out + 1, outlen - 2, s, "\"\\");
    size_t n = strlen(out);
    out[n] = '"';
    out[n + 1] = '\0';
    return out;
}
