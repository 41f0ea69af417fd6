/*
 * timefmt.h — ISO-8601 UTC times as the history API takes them:
 * YYYY-MM-DDTHH:MM:SSZ with optional fractional seconds (1 to 9 digits,
 * JavaScript's toISOString() gives 3), e.g. 2022-02-12T09:22:46.039Z.
 * "+00:00" is accepted for Z, and a time with no zone at all is UTC (clients
 * that format a LocalDateTime send 2026-12-05T16:39:12); other offsets are
 * not accepted (the API's times are UTC).
 */
#ifndef RTMD_CORE_TIMEFMT_H
#define RTMD_CORE_TIMEFMT_H

#include "core/common.h"

/* Milliseconds since the epoch (fractions below 1 ms are dropped); -EINVAL
 * for anything else, including impossible dates and years before 1970. */
int rtmd_iso8601_parse(struct rtmd_str s, uint64_t *ms);

#endif
