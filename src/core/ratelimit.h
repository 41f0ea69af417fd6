/*
 * ratelimit.h — a token bucket (SPEC §3.3–3.5 request limits).
 *
 * The bucket holds at most qps tokens and refills at qps tokens per second;
 * a request takes one token. A fresh bucket is full, so a burst of qps
 * requests passes at once. Tokens are counted in thousandths so refill is
 * exact integer arithmetic at millisecond resolution (qps/1000 tokens per ms).
 *
 * The module is pure: it never reads a clock. Callers pass a monotonic
 * millisecond time (rtmd_mono_ms()), so tests can drive it by hand. It keeps
 * no pointers and needs no cleanup; a zeroed struct is a valid, full bucket.
 */
#ifndef RTMD_CORE_RATELIMIT_H
#define RTMD_CORE_RATELIMIT_H

#include "core/common.h"

struct rtmd_ratelimit {
    uint64_t milli_tokens; /* tokens * 1000 */
    uint64_t last_ms;      /* time of the last refill */
    bool started;          /* false: full on first use */
};

/* Makes r a full bucket (same as zeroing it). */
void rtmd_ratelimit_init(struct rtmd_ratelimit *r);

/*
 * Refills r up to now_ms at qps tokens per second (capacity qps), then takes
 * one token. Returns true when a token was taken; false when the bucket is
 * empty, and then nothing is taken. qps 0 means "no limit" (always true).
 * When qps differs from the previous call, the capacity changes to the new
 * qps at once (tokens above it are dropped). A clock that goes backwards
 * refills nothing.
 */
bool rtmd_ratelimit_take(struct rtmd_ratelimit *r, uint32_t qps, uint64_t now_ms);

/* Whole tokens r would hold at now_ms (for tests and metrics); no change. */
uint32_t rtmd_ratelimit_available(const struct rtmd_ratelimit *r, uint32_t qps, uint64_t now_ms);

#endif
