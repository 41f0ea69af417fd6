#include "core/url.h"

int rtmd_url_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int rtmd_url_decode(struct rtmd_buf *out, struct rtmd_str s, bool plus_is_space)
{
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        int hi = c == '%' && i + 2 < s.len ? rtmd_url_hexval(s.p[i + 1]) : -1;
        int lo = hi >= 0 ? rtmd_url_hexval(s.p[i + 2]) : -1;
        if (lo >= 0) {
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        int r = rtmd_buf_append_byte(out, c);
        if (r < 0)
            return r;
    }
    return 0;
}

bool rtmd_query_param(struct rtmd_str query, const char *name, struct rtmd_str *value)
{
    size_t nlen = strlen(name), i = 0;
    while (i <= query.len) {
        size_t end = i;
        while (end < query.len && query.p[end] != '&')
            end++;
        struct rtmd_str item = rtmd_str_make(query.p + i, end - i);
        const char *eq = memchr(item.p, '=', item.len);
        size_t klen = eq ? (size_t)(eq - item.p) : item.len;
        if (klen == nlen && memcmp(item.p, name, nlen) == 0) {
            *value = eq ? rtmd_str_make(eq + 1, item.len - klen - 1) : rtmd_str_make(item.p, 0);
            return true;
        }
        i = end + 1;
    }
    return false;
}
