/*
 * pins.h — the retention cut-off of a history filter, pinned for a while so
 * that a count and the query pages of the same filter agree.
 *
 * A client pages through history with limit and offset until it has read
 * the number `count` gave it. If a message of the window expired between the
 * count and a page (retention hides messages older than
 * history_retention_s), the pages would come up short and such a client
 * would loop forever. So the first count or query of a filter (app, source,
 * destination, start and end time) fixes the oldest ms that filter shows,
 * and every count and query of the same filter uses it until the pin is
 * `ttl_ms` old; the store removes expired rows only 2 x ttl_ms late (a query
 * handle made under a pin may be read up to one TTL later).
 *
 * Bounded: at most `max` pins; past that the oldest goes first. Pure: the
 * clock is an argument.
 */
#ifndef RTMD_API_PINS_H
#define RTMD_API_PINS_H

#include <stddef.h>
#include <stdint.h>

#include "core/hashmap.h"
#include "core/list.h"
#include "store/store.h"

struct rtmd_history_pins {
    struct rtmd_hashmap map; /* key bytes → struct pin */
    struct rtmd_list age;    /* oldest first */
    size_t max;
    uint64_t ttl_ms;
};

void rtmd_history_pins_init(struct rtmd_history_pins *p, size_t max, uint64_t ttl_ms);
void rtmd_history_pins_free(struct rtmd_history_pins *p);

/* The oldest ms the filter of q (in app app_index) may show: the pinned one,
 * or now_ms - retention_ms pinned from now on. */
uint64_t rtmd_history_pins_cutoff(struct rtmd_history_pins *p, uint32_t app_index,
                                  const struct rtmd_history_query *q, uint64_t now_ms,
                                  uint64_t retention_ms);

static inline size_t rtmd_history_pins_count(const struct rtmd_history_pins *p)
{
    return rtmd_hashmap_count(&p->map);
}

#endif
