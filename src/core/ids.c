#include "core/ids.h"

/* The ID alphabet: a-z A-Z 0-9, space and ! # $ % & ( ) + - : ; < = . > ? @ [ ] ^ _ { } | ~ , ' */
static bool id_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case ' ':
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '(':
    case ')':
    case '+':
    case '-':
    case ':':
    case ';':
    case '<':
    case '=':
    case '.':
    case '>':
    case '?':
    case '@':
    case '[':
    case ']':
    case '^':
    case '_':
    case '{':
    case '}':
    case '|':
    case '~':
    case ',':
    case '\'': return true;
    default: return false;
    }
}

bool rtmd_id_valid(struct rtmd_str id)
{
    if (id.len == 0 || id.len > RTMD_ID_MAX || !id.p)
        return false;
    for (size_t i = 0; i < id.len; i++)
        if (!id_char((unsigned char)id.p[i]))
            return false;
    return !rtmd_str_eq_cstr(id, "null");
}

bool rtmd_id_valid_in_path(struct rtmd_str id)
{
    return rtmd_id_valid(id) && id.p[0] != ' ' && id.p[id.len - 1] != ' ';
}

bool rtmd_appid_valid(struct rtmd_str id)
{
    if (id.len != RTMD_APPID_LEN || !id.p)
        return false;
    for (size_t i = 0; i < id.len; i++) {
        unsigned char c = (unsigned char)id.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

bool rtmd_certificate_valid(struct rtmd_str s)
{
    if (s.len != 32 || !s.p)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (!((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

size_t rtmd_utf8_char_len(const char *p, size_t len)
{
    const unsigned char *s = (const unsigned char *)p;
    if (len == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 1;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 2;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len <= n)
        return 0;
    for (size_t k = 1; k <= n; k++) {
        unsigned char cc = s[k];
        if ((cc & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n + 1;
}

bool rtmd_utf8_valid(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t n = rtmd_utf8_char_len(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}
