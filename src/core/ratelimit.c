#include "core/ratelimit.h"

#include <string.h>

void rtmd_ratelimit_init(struct rtmd_ratelimit *r)
{
    memset(r, 0, sizeof(*r));
}

/* The milli-tokens r holds at now_ms, capped at qps * 1000. */
static uint64_t level(const struct rtmd_ratelimit *r, uint32_t qps, uint64_t now_ms)
{
    uint64_t cap = (uint64_t)qps * 1000;
    if (!r->started)
        return cap;
    uint64_t have = RTMD_MIN(r->milli_tokens, cap);
    if (now_ms <= r->last_ms)
        return have;
    /* A full refill takes 1000 ms whatever qps is, so capping the elapsed
     * time there keeps elapsed * qps far from overflow. */
    uint64_t elapsed = now_ms - r->last_ms;
    if (elapsed >= 1000)
        return cap;
    uint64_t refill = elapsed * qps;
    return have + refill >= cap ? cap : have + refill;
}

bool rtmd_ratelimit_take(struct rtmd_ratelimit *r, uint32_t qps, uint64_t now_ms)
{
    if (qps == 0)
        return true;
    uint64_t have = level(r, qps, now_ms);
    if (!r->started || now_ms > r->last_ms)
        r->last_ms = now_ms;
    r->started = true;
    r->milli_tokens = have;
    if (have < 1000)
        return false;
    r->milli_tokens = have - 1000;
    return true;
}

uint32_t rtmd_ratelimit_available(const struct rtmd_ratelimit *r, uint32_t qps, uint64_t now_ms)
{
    return (uint32_t)(level(r, qps, now_ms) / 1000);
}
