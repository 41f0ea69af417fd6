/*
 * tap.h — what the dashboard watches, without touching the event logs:
 * per-app counters of the last minute (logins, joins, messages, REST
 * requests; one slot per second, 60 slots), and one sink that sees every
 * presence event this node records and every message sent through it.
 *
 * Presence, messaging and the API call the rtmd_tap_*() functions; they
 * cost a few increments when nobody watches. The sink (the dashboard's
 * live feed, api/dashboard.c) is set once; its functions must not call
 * back into the code that tapped (they only queue bytes).
 *
 * Loop thread only. Process-wide, like the log. It lives beside presence
 * (the lowest layer that taps) so messaging and the API reach it downwards.
 */
#ifndef RTMD_PRESENCE_TAP_H
#define RTMD_PRESENCE_TAP_H

#include "core/common.h"
#include "core/config.h"
#include "store/store.h"

enum rtmd_tap_rate {
    RTMD_TAP_LOGINS,
    RTMD_TAP_JOINS,
    RTMD_TAP_MESSAGES,
    RTMD_TAP_REQUESTS,
    RTMD_TAP_RATES
};
#define RTMD_TAP_SECONDS 60

struct rtmd_tap_sink {
    void (*presence)(void *ctx, const struct rtmd_app *app, const struct rtmd_presence_op *op);
    void (*message)(void *ctx, const struct rtmd_app *app, enum rtmd_message_type type,
                    struct rtmd_str from, struct rtmd_str to, struct rtmd_str payload, uint64_t ms);
};

/* Sets (or, with NULL, removes) the sink. */
void rtmd_tap_set_sink(const struct rtmd_tap_sink *sink, void *ctx);
/* Presence ops this node records for app (counted: Logins, Joins). */
void rtmd_tap_presence(const struct rtmd_app *app, const struct rtmd_presence_op *ops, size_t n);
/* A message sent through this node. */
void rtmd_tap_message(const struct rtmd_app *app, enum rtmd_message_type type, struct rtmd_str from,
                      struct rtmd_str to, struct rtmd_str payload, uint64_t ms);
/* A REST request for app (counted). */
void rtmd_tap_request(const struct rtmd_app *app);
/* The counts of app's last RTMD_TAP_SECONDS whole seconds before now_ms
 * (the current second excluded: it is not over), oldest first. */
void rtmd_tap_rates(const struct rtmd_app *app, uint64_t now_ms,
                    uint32_t out[RTMD_TAP_RATES][RTMD_TAP_SECONDS]);
/* Frees the counters (at exit); later taps count nothing (sessions ended
 * after it record no rates). */
void rtmd_tap_shutdown(void);

#endif
