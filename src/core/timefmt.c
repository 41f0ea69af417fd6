#include "core/timefmt.h"

static int digits(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int rtmd_iso8601_parse(struct rtmd_str s, uint64_t *ms)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s.p;
    if (s.len < 19 || p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':')
        return -EINVAL;
    int y = digits(p, 4), mo = digits(p + 5, 2), d = digits(p + 8, 2);
    int h = digits(p + 11, 2), mi = digits(p + 14, 2), sec = digits(p + 17, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 ||
        sec > 59)
        return -EINVAL;
    if (d > mdays[mo - 1] + (mo == 2 && leap(y)))
        return -EINVAL;
    size_t i = 19;
    uint64_t frac_ms = 0;
    if (i < s.len && p[i] == '.') {
        size_t start = ++i;
        while (i < s.len && p[i] >= '0' && p[i] <= '9')
            i++;
        size_t n = i - start;
        if (n < 1 || n > 9)
            return -EINVAL;
        for (size_t k = 0; k < 3; k++)
            frac_ms = frac_ms * 10 + (k < n ? (uint64_t)(p[start + k] - '0') : 0);
    }
    struct rtmd_str rest = rtmd_str_make(p + i, s.len - i);
    /* No zone at all is UTC too: real clients send LocalDateTime-style times. */
    if (rest.len && !rtmd_str_eq_cstr(rest, "Z") && !rtmd_str_eq_cstr(rest, "+00:00"))
        return -EINVAL;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *ms = ((uint64_t)days * 86400 + (uint64_t)h * 3600 + (uint64_t)mi * 60 + (uint64_t)sec) * 1000 +
          frac_ms;
    return 0;
}
