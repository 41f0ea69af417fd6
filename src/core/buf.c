#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

void rtmd_buf_init(struct rtmd_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void rtmd_buf_free(struct rtmd_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

int rtmd_buf_reserve(struct rtmd_buf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return RTMD_ELIMIT;
    size_t need = b->len + n;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max)
        cap = b->max;
    char *p = rtmd_try_realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int rtmd_buf_append(struct rtmd_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = rtmd_buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int rtmd_buf_append_str(struct rtmd_buf *b, struct rtmd_str s)
{
    return rtmd_buf_append(b, s.p, s.len);
}

int rtmd_buf_append_cstr(struct rtmd_buf *b, const char *s)
{
    return rtmd_buf_append(b, s, strlen(s));
}

int rtmd_buf_append_byte(struct rtmd_buf *b, char c)
{
    if (b->len < b->cap) {
        b->data[b->len++] = c;
        return 0;
    }
    return rtmd_buf_append(b, &c, 1);
}

size_t rtmd_u64_to_dec(uint64_t v, char *out)
{
    char tmp[21];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

int rtmd_buf_append_u64(struct rtmd_buf *b, uint64_t v)
{
    char tmp[21];
    return rtmd_buf_append(b, tmp, rtmd_u64_to_dec(v, tmp));
}

int rtmd_buf_append_i64(struct rtmd_buf *b, int64_t v)
{
    char tmp[22];
    size_t n = 0;
    if (v < 0)
        tmp[n++] = '-';
    n += rtmd_u64_to_dec(v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, tmp + n);
    return rtmd_buf_append(b, tmp, n); /* all or nothing */
}

int rtmd_buf_printf(struct rtmd_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    int rc = rtmd_buf_reserve(b, (size_t)n + 1);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void rtmd_buf_consume(struct rtmd_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

char *rtmd_buf_steal(struct rtmd_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
