#include "core/ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

#define WINDOW_MS 1000

void rtmd_ratelimit_init(struct rtmd_ratelimit *r)
{
    memset(r, 0, sizeof(*r));
}

void rtmd_ratelimit_free(struct rtmd_ratelimit *r)
{
    free(r->stamps);
    rtmd_ratelimit_init(r);
}

/* ---- exact: a ring of the last qps allowed times ---------------------------- */

static uint64_t clamp_now(const struct rtmd_ratelimit *r, uint64_t now_ms)
{
    /* Backwards clocks stand still. */
    return r->started && now_ms < r->last_ms ? r->last_ms : now_ms;
}

static uint32_t exact_available(const struct rtmd_ratelimit *r, uint32_t qps, uint64_t now)
{
    if (r->cap != qps)
        return qps;
    /* Entries are in time order from head; count those inside the window. */
    uint32_t inside = 0;
    for (uint32_t i = 0; i < r->count; i++) {
        uint64_t t = r->stamps[(r->head + i) % r->cap];
        if (now - t < WINDOW_MS)
            inside = r->count - i;
        if (inside)
            break;
    }
    return qps - inside;
}

static bool exact_take(struct rtmd_ratelimit *r, uint32_t qps, uint64_t now_ms)
{
    uint64_t now = clamp_now(r, now_ms);
    if (r->cap != qps) {
        free(r->stamps);
        r->stamps = rtmd_malloc(qps * sizeof(*r->stamps));
        r->cap = qps;
        r->head = 0;
        r->count = 0;
    }
    if (r->count == r->cap) {
        if (now - r->stamps[r->head] < WINDOW_MS)
            return false;
        r->head = (r->head + 1) % r->cap;
        r->count--;
    }
    r->stamps[(r->head + r->count) % r->cap] = now;
    r->count++;
    r->last_ms = now;
    r->started = true;
    return true;
}

/* ---- approximate: a token bucket ------------------------------------------------ */

static uint64_t level(const struct rtmd_ratelimit *r, uint32_t qps, uint64_t now_ms)
{
    uint64_t cap = (uint64_t)qps * 1000;
    if (!r->started || r->cap != 0)
        return cap;
    uint64_t have = RTMD_MIN(r->milli_tokens, cap);
    if (now_ms <= r->last_ms)
        return have;
    /* A full refill takes 1000 ms whatever qps is; capping the elapsed time
     * there keeps elapsed * qps far from overflow. */
    uint64_t elapsed = now_ms - r->last_ms;
    if (elapsed >= WINDOW_MS)
        return cap;
    uint64_t refill = elapsed * qps;
    return have + refill >= cap ? cap : have + refill;
}

static bool bucket_take(struct rtmd_ratelimit *r, uint32_t qps, uint64_t now_ms)
{
    if (r->cap != 0) { /* switching from exact mode */
        free(r->stamps);
        r->stamps = NULL;
        r->cap = 0;
        r->started = false;
    }
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

bool rtmd_ratelimit_take(struct rtmd_ratelimit *r, uint32_t qps, uint64_t now_ms)
{
    if (qps == 0)
        return true;
    if (qps <= RTMD_RATELIMIT_EXACT_MAX)
        return exact_take(r, qps, now_ms);
    return bucket_take(r, qps, now_ms);
}

uint32_t rtmd_ratelimit_available(const struct rtmd_ratelimit *r, uint32_t qps, uint64_t now_ms)
{
    if (qps == 0)
        return UINT32_MAX;
    if (qps <= RTMD_RATELIMIT_EXACT_MAX)
        return exact_available(r, qps, clamp_now(r, now_ms));
    return (uint32_t)(level(r, qps, now_ms) / 1000);
}
