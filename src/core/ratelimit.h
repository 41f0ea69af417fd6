/*
 * ratelimit.h — request limits per second (events_qps, history_qps, send_qps).
 *
 * "qps requests per second" is read strictly: in no window of 1000 ms are
 * more than qps requests allowed, and a burst of qps passes at once. Up to
 * RTMD_RATELIMIT_EXACT_MAX qps the limiter keeps the times of the last qps
 * allowed requests (a ring of qps timestamps, allocated on first use: 80
 * bytes at the default events_qps of 10) and allows a request when the
 * oldest of them is at least 1000 ms old. Above that (benchmarks lift the
 * limits to millions) a token bucket of capacity qps, refilled at qps per
 * second, approximates it in constant memory; it can allow up to 2 × qps in
 * a window that straddles a refill.
 *
 * A refused request takes nothing. The module never reads a clock: callers
 * pass a monotonic millisecond time (rtmd_mono_ms()), so tests drive it by
 * hand. A zeroed struct is a valid limiter with nothing recorded.
 */
#ifndef RTMD_CORE_RATELIMIT_H
#define RTMD_CORE_RATELIMIT_H

#include "core/common.h"

#define RTMD_RATELIMIT_EXACT_MAX 1024

struct rtmd_ratelimit {
    uint64_t *stamps; /* exact mode: ring of allowed-request times */
    uint32_t cap;     /* ring size (the qps it was made for) */
    uint32_t head;    /* oldest entry */
    uint32_t count;
    uint64_t milli_tokens; /* bucket mode: tokens * 1000 */
    uint64_t last_ms;
    bool started;
};

void rtmd_ratelimit_init(struct rtmd_ratelimit *r);
void rtmd_ratelimit_free(struct rtmd_ratelimit *r);

/* Allows one request at now_ms under qps (0 = no limit): true when allowed
 * (and recorded); false when over the limit (nothing recorded). Changing qps
 * between calls starts the window over. A clock that goes backwards is
 * treated as standing still. */
bool rtmd_ratelimit_take(struct rtmd_ratelimit *r, uint32_t qps, uint64_t now_ms);

/* How many requests would be allowed at now_ms (no change). */
uint32_t rtmd_ratelimit_available(const struct rtmd_ratelimit *r, uint32_t qps, uint64_t now_ms);

#endif
