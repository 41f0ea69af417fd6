/*
 * tap.c — the dashboard's counters and its one sink (see tap.h).
 */
#include "presence/tap.h"

#include <stdlib.h>

#include "core/alloc.h"
#include "core/loop.h"

/* An app's last minute: slot s % 60 holds second s when sec[s % 60] == s. */
struct rates {
    uint64_t sec[RTMD_TAP_SECONDS];
    uint32_t n[RTMD_TAP_SECONDS][RTMD_TAP_RATES];
};

static struct rates **rates_; /* by app->index, grown as apps appear */
static size_t n_rates_;
static bool closed_; /* after rtmd_tap_shutdown(): nothing more is counted */
static const struct rtmd_tap_sink *sink_;
static void *sink_ctx_;

void rtmd_tap_set_sink(const struct rtmd_tap_sink *sink, void *ctx)
{
    sink_ = sink;
    sink_ctx_ = ctx;
}

static struct rates *rates_of(const struct rtmd_app *app)
{
    if (app->index >= n_rates_) {
        size_t n = (size_t)app->index + 1;
        rates_ = rtmd_realloc(rates_, n * sizeof(*rates_));
        memset(rates_ + n_rates_, 0, (n - n_rates_) * sizeof(*rates_));
        n_rates_ = n;
    }
    if (!rates_[app->index])
        rates_[app->index] = rtmd_calloc(1, sizeof(struct rates));
    return rates_[app->index];
}

static void count(const struct rtmd_app *app, enum rtmd_tap_rate what)
{
    if (closed_)
        return;
    struct rates *r = rates_of(app);
    uint64_t sec = rtmd_now_ms() / 1000;
    size_t slot = sec % RTMD_TAP_SECONDS;
    if (r->sec[slot] != sec) {
        r->sec[slot] = sec;
        memset(r->n[slot], 0, sizeof(r->n[slot]));
    }
    r->n[slot][what]++;
}

void rtmd_tap_presence(const struct rtmd_app *app, const struct rtmd_presence_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type == RTMD_EVENT_LOGIN)
            count(app, RTMD_TAP_LOGINS);
        else if (ops[i].type == RTMD_EVENT_JOIN)
            count(app, RTMD_TAP_JOINS);
        if (sink_)
            sink_->presence(sink_ctx_, app, &ops[i]);
    }
}

void rtmd_tap_message(const struct rtmd_app *app, enum rtmd_message_type type, struct rtmd_str from,
                      struct rtmd_str to, struct rtmd_str payload, uint64_t ms)
{
    count(app, RTMD_TAP_MESSAGES);
    if (sink_)
        sink_->message(sink_ctx_, app, type, from, to, payload, ms);
}

void rtmd_tap_request(const struct rtmd_app *app)
{
    count(app, RTMD_TAP_REQUESTS);
}

void rtmd_tap_rates(const struct rtmd_app *app, uint64_t now_ms,
                    uint32_t out[RTMD_TAP_RATES][RTMD_TAP_SECONDS])
{
    memset(out, 0, sizeof(uint32_t) * RTMD_TAP_RATES * RTMD_TAP_SECONDS);
    if (app->index >= n_rates_ || !rates_[app->index])
        return;
    const struct rates *r = rates_[app->index];
    uint64_t now = now_ms / 1000;
    for (size_t i = 0; i < RTMD_TAP_SECONDS; i++) {
        uint64_t sec = now - RTMD_TAP_SECONDS + i; /* oldest first, now excluded */
        size_t slot = sec % RTMD_TAP_SECONDS;
        if (r->sec[slot] != sec)
            continue;
        for (int k = 0; k < RTMD_TAP_RATES; k++)
            out[k][i] = r->n[slot][k];
    }
}

void rtmd_tap_shutdown(void)
{
    for (size_t i = 0; i < n_rates_; i++)
        free(rates_[i]);
    free(rates_);
    rates_ = NULL;
    n_rates_ = 0;
    sink_ = NULL;
    closed_ = true;
}
