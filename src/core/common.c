#include "core/common.h"

#include <string.h>

const char *rtmd_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case RTMD_EAUTH: return "authentication failed";
    case RTMD_EEXPIRED: return "token expired";
    case RTMD_ELIMIT: return "limit exceeded";
    case RTMD_ERATE: return "rate limit exceeded";
    case RTMD_ESTORE: return "store failure";
    case RTMD_ECLOSED: return "closed";
    case RTMD_EPARSE: return "malformed input";
    case RTMD_EFUTURE: return "token issued in the future";
    default: break;
    }
    if (err < 0 && err > RTMD_EBASE)
        return strerror(-err);
    return "unknown error";
}

bool rtmd_str_ieq(struct rtmd_str a, struct rtmd_str b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++) {
        unsigned char x = (unsigned char)a.p[i], y = (unsigned char)b.p[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

int rtmd_str_to_u64(struct rtmd_str s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (s.len == 0 || s.len > 20)
        return -EINVAL;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned char)s.p[i] - '0';
        if (d > 9)
            return -EINVAL;
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

struct rtmd_str rtmd_str_trim_ows(struct rtmd_str s)
{
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
        s.len--;
    return s;
}
