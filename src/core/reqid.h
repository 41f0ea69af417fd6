/*
 * reqid.h — request IDs `<node>_<u64>` (unique per node, sent as
 * `request_id` and `X-Request-ID`). The u64 starts at a random value at
 * process start and counts up, so IDs stay unique across restarts.
 */
#ifndef RTMD_CORE_REQID_H
#define RTMD_CORE_REQID_H

#include <stddef.h>
#include <stdint.h>

#define RTMD_REQUEST_ID_MAX 40 /* with NUL */

void rtmd_request_id_init(uint32_t node_id, uint64_t start);
/* Writes the next ID and a NUL into out (RTMD_REQUEST_ID_MAX bytes); returns its length. */
size_t rtmd_request_id_next(char *out);

#endif
