#define _GNU_SOURCE /* dup3 */
#include "core/log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/ids.h"

_Atomic enum rtmd_log_level rtmd_log_level = RTMD_LOG_INFO;
_Atomic enum rtmd_log_format rtmd_log_format = RTMD_LOG_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* Where lines go. While other threads run, a file once opened keeps its
 * descriptor number: a reopen (or a switch to another file, or back to
 * stderr) replaces what is behind it with dup3, which is atomic for a
 * write(2) running on another thread; it is closed only at exit. */
static _Atomic int log_fd_ = STDERR_FILENO;
static char *log_path_; /* the loop thread's */

/* The loop thread's lines wait in loop_buf_ until the loop is about to
 * sleep (rtmd_log_flush, from its prepare phase): one write per iteration
 * instead of one per request. An error line is written at once, with
 * everything before it. Other threads write each line at once. */
#define LOOP_BUF_MAX (64 * 1024)
static __thread bool buffered_;
static char loop_buf_[LOOP_BUF_MAX];
static size_t loop_len_;

/* Room kept at the end of every line: "}" (JSON), "\n" and a NUL. */
#define TAIL 3
/* The longest escape of one byte (\u00XX), and the room a cut value needs
 * after it: `..."`. */
#define ESC_MAX 6
#define CUT_LEN 4

static const char hex_[] = "0123456789abcdef";

static void emit(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(log_fd_, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (at least 32 bytes); its length.
 * The part down to the second is made once a second per thread. */
static size_t format_time(char *out)
{
    static __thread time_t cached_sec = (time_t)-1;
    static __thread char cached[32];
    static __thread size_t cached_len;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        int n = snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_len = n < 0 ? 0 : RTMD_MIN((size_t)n, sizeof(cached) - 6);
        cached_sec = ts.tv_sec;
    }
    memcpy(out, cached, cached_len);
    long ms = ts.tv_nsec / 1000000;
    char *p = out + cached_len;
    p[0] = '.';
    p[1] = (char)('0' + ms / 100);
    p[2] = (char)('0' + ms / 10 % 10);
    p[3] = (char)('0' + ms % 10);
    p[4] = 'Z';
    return cached_len + 5;
}

/* ---- building a line ------------------------------------------------------------ */

static size_t room(const struct rtmd_log_rec *r)
{
    return RTMD_LOG_LINE_MAX - TAIL - r->len;
}

static bool put(struct rtmd_log_rec *r, const char *p, size_t n)
{
    if (n > room(r))
        return false;
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    return true;
}

static bool put_cstr(struct rtmd_log_rec *r, const char *s)
{
    return put(r, s, strlen(s));
}

static bool plain_byte(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* A quoted string: in JSON, valid UTF-8 as it is and JSON escapes (\" \\
 * \u00XX) for the rest; in text, \xNN for every byte outside printable
 * ASCII and for " and \. At most max bytes of s, and
 * what fits the line; a cut value ends with "...". False when not even an
 * empty string fits. */
static bool put_quoted(struct rtmd_log_rec *r, struct rtmd_str s, size_t max)
{
    if (room(r) < 2 + CUT_LEN)
        return false;
    char *b = r->buf;
    size_t o = r->len;
    const size_t lim = RTMD_LOG_LINE_MAX - TAIL - CUT_LEN;
    b[o++] = '"';
    for (size_t i = 0; i < s.len; i++) {
        if (i >= max || o + ESC_MAX > lim) {
            memcpy(b + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)s.p[i];
        size_t u;
        if (plain_byte(c)) {
            b[o++] = (char)c;
        } else if (r->json && c >= 0x80 && (u = rtmd_utf8_char_len(s.p + i, s.len - i)) > 1 &&
                   i + u <= max) {
            /* Valid UTF-8 stays as it is in JSON (at most 4 bytes: within ESC_MAX). */
            memcpy(b + o, s.p + i, u);
            o += u;
            i += u - 1;
        } else if (r->json && (c == '"' || c == '\\')) {
            b[o++] = '\\';
            b[o++] = (char)c;
        } else if (r->json) {
            memcpy(b + o, "\\u00", 4);
            b[o + 4] = hex_[c >> 4];
            b[o + 5] = hex_[c & 15];
            o += 6;
        } else {
            b[o++] = '\\';
            b[o++] = 'x';
            b[o++] = hex_[c >> 4];
            b[o++] = hex_[c & 15];
        }
    }
    b[o++] = '"';
    r->len = o;
    return true;
}

/* ` key=` (text) or `,"key":` (JSON). */
static bool put_key(struct rtmd_log_rec *r, const char *key)
{
    if (r->json)
        return put(r, ",\"", 2) && put_cstr(r, key) && put(r, "\":", 2);
    return put(r, " ", 1) && put_cstr(r, key) && put(r, "=", 1);
}

void rtmd_log_begin(struct rtmd_log_rec *r, enum rtmd_log_level level, const char *module,
                    const char *msg)
{
    char t[32];
    size_t tn = format_time(t);
    r->len = 0;
    r->level = level;
    r->json = rtmd_log_format == RTMD_LOG_JSON;
    if (r->json) {
        put(r, "{\"time\":\"", 9);
        put(r, t, tn);
        put(r, "\",\"level\":\"", 11);
        put_cstr(r, level_names[level]);
        put(r, "\",\"module\":\"", 12);
        put_cstr(r, module);
        put(r, "\",\"msg\":", 8);
        put_quoted(r, rtmd_str_cstr(msg), RTMD_LOG_LINE_MAX);
    } else {
        put(r, t, tn);
        put(r, " ", 1);
        put_cstr(r, level_names[level]);
        put(r, " ", 1);
        put_cstr(r, module);
        put(r, " ", 1);
        /* A printf-style message as it is (its client bytes went through
         * rtmd_log_quote), but for control bytes (\xNN: a line stays one
         * line whatever a library's message holds), cut to the line. */
        for (const unsigned char *m = (const unsigned char *)msg; *m && room(r) >= 4; m++) {
            if (*m >= 0x20 && *m != 0x7f) {
                r->buf[r->len++] = (char)*m;
            } else {
                char esc[4] = {'\\', 'x', hex_[*m >> 4], hex_[*m & 15]};
                put(r, esc, 4);
            }
        }
    }
}

void rtmd_log_str(struct rtmd_log_rec *r, const char *key, struct rtmd_str value)
{
    size_t at = r->len;
    bool ok = put_key(r, key);
    if (ok && !r->json && value.len > 0 && value.len <= RTMD_LOG_VALUE_MAX) {
        /* logfmt: a value of plain bytes with no space or '=' goes bare. */
        bool bare = true;
        for (size_t i = 0; i < value.len && bare; i++)
            bare = plain_byte((unsigned char)value.p[i]) && value.p[i] != ' ' && value.p[i] != '=';
        if (bare) {
            if (!put(r, value.p, value.len))
                r->len = at;
            return;
        }
    }
    if (!ok || !put_quoted(r, value, RTMD_LOG_VALUE_MAX))
        r->len = at;
}

void rtmd_log_cstr(struct rtmd_log_rec *r, const char *key, const char *value)
{
    rtmd_log_str(r, key, rtmd_str_cstr(value ? value : ""));
}

/* value in decimal, ending at end; returns where it starts. */
static char *decimal(char *end, uint64_t value)
{
    do {
        *--end = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    return end;
}

void rtmd_log_u64(struct rtmd_log_rec *r, const char *key, uint64_t value)
{
    char num[24];
    char *p = decimal(num + sizeof(num), value);
    size_t at = r->len;
    if (!put_key(r, key) || !put(r, p, (size_t)(num + sizeof(num) - p)))
        r->len = at;
}

void rtmd_log_i64(struct rtmd_log_rec *r, const char *key, int64_t value)
{
    if (value >= 0) {
        rtmd_log_u64(r, key, (uint64_t)value);
        return;
    }
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", (long long)value);
    size_t at = r->len;
    if (n < 0 || !put_key(r, key) || !put(r, num, (size_t)n))
        r->len = at;
}

void rtmd_log_ms(struct rtmd_log_rec *r, const char *key, uint64_t ns)
{
    char num[32];
    uint64_t us = ns / 1000;
    char *end = num + sizeof(num);
    end[-4] = '.';
    end[-3] = (char)('0' + us / 100 % 10);
    end[-2] = (char)('0' + us / 10 % 10);
    end[-1] = (char)('0' + us % 10);
    char *p = decimal(end - 4, us / 1000);
    size_t at = r->len;
    if (!put_key(r, key) || !put(r, p, (size_t)(end - p)))
        r->len = at;
}

void rtmd_log_end(struct rtmd_log_rec *r)
{
    /* TAIL keeps room for these two. */
    if (r->json)
        r->buf[r->len++] = '}';
    r->buf[r->len++] = '\n';
    if (!buffered_) {
        emit(r->buf, r->len);
        return;
    }
    if (loop_len_ + r->len > LOOP_BUF_MAX)
        rtmd_log_flush();
    memcpy(loop_buf_ + loop_len_, r->buf, r->len);
    loop_len_ += r->len;
    if (r->level == RTMD_LOG_ERROR)
        rtmd_log_flush();
}

void rtmd_log_buffer_here(void)
{
    buffered_ = true;
}

void rtmd_log_flush(void)
{
    if (buffered_ && loop_len_) {
        emit(loop_buf_, loop_len_);
        loop_len_ = 0;
    }
}

void rtmd_log(enum rtmd_log_level level, const char *module, const char *fmt, ...)
{
    if (level > rtmd_log_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0)
        msg[0] = '\0';
    struct rtmd_log_rec r;
    rtmd_log_begin(&r, level, module, msg);
    rtmd_log_end(&r);
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

/* ---- the destination ------------------------------------------------------------ */

static int open_log_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

int rtmd_log_open(const char *path)
{
    rtmd_log_flush();
    if (!path) {
        if (log_fd_ != STDERR_FILENO && dup3(STDERR_FILENO, log_fd_, O_CLOEXEC) < 0)
            return -errno;
        free(log_path_);
        log_path_ = NULL;
        return 0;
    }
    int fd = open_log_file(path);
    if (fd < 0)
        return fd;
    if (log_fd_ == STDERR_FILENO) {
        log_fd_ = fd;
    } else {
        int r = dup3(fd, log_fd_, O_CLOEXEC) < 0 ? -errno : 0;
        close(fd);
        if (r < 0)
            return r;
    }
    char *copy = rtmd_strdup(path);
    free(log_path_);
    log_path_ = copy;
    return 0;
}

int rtmd_log_reopen(void)
{
    if (!log_path_)
        return 0;
    rtmd_log_flush(); /* what came before the rotation goes to the old file */
    int fd = open_log_file(log_path_);
    if (fd < 0) {
        rtmd_log_error("log", "cannot reopen %s: %s; still writing to the old file", log_path_,
                       strerror(-fd));
        return fd;
    }
    int r = 0;
    if (dup3(fd, log_fd_, O_CLOEXEC) < 0) {
        r = -errno;
        rtmd_log_error("log", "cannot reopen %s: %s; still writing to the old file", log_path_,
                       strerror(-r));
    }
    close(fd);
    return r;
}

void rtmd_log_close(void)
{
    rtmd_log_flush();
    if (log_fd_ != STDERR_FILENO)
        close(log_fd_);
    log_fd_ = STDERR_FILENO;
    free(log_path_);
    log_path_ = NULL;
}

/* ---- escaping for printf-style messages ------------------------------------------ */

const char *rtmd_escape(char *out, size_t outlen, struct rtmd_str s, const char *also)
{
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
            out[o++] = hex_[c >> 4];
            out[o++] = hex_[c & 15];
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
