/*
 * fuzz_util.h — what the drivers over stub_conn.h (fuzz_http.c, fuzz_ws.c)
 * share: CHECK, the input's two leading bytes (flags and the seed of a
 * PRNG), the PRNG, and feeding bytes to a stub connection in reads of the
 * sizes the PRNG picks.
 *
 * Define FUZZ_NAME (the driver's name, for CHECK's message) before including
 * it, from exactly one .c (it includes stub_conn.h).
 */
#ifndef RTMD_FUZZ_UTIL_H
#define RTMD_FUZZ_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/common.h"
#include "core/log.h"
#include "stub_conn.h"

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including fuzz_util.h"
#endif

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, FUZZ_NAME ": check failed: %s (line %d)\n", #cond, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static uint8_t flags_; /* the input's byte 0 */
static uint32_t rng_;  /* seeded by its byte 1 */

static inline uint32_t rnd(void)
{
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 17;
    rng_ ^= rng_ << 5;
    return rng_;
}

static inline uint32_t below(uint32_t n)
{
    return rnd() % n;
}

/* Takes the flags and the PRNG's seed off the input, makes the loop (once)
 * and logs errors only. False for an input under 2 or over max bytes. */
static inline bool fuzz_begin(const uint8_t **data, size_t *size, size_t max)
{
    if (*size < 2 || *size > max)
        return false;
    flags_ = (*data)[0];
    rng_ = 0x9e3779b9u ^ ((uint32_t)(*data)[1] * 0x01000193u);
    *data += 2;
    *size -= 2;
    stub_loop_init();
    rtmd_log_level = RTMD_LOG_ERROR;
    return true;
}

/* How much of left the next read takes: 1-4, 1-32 or 1-medium bytes, or all
 * of it; at most 64 KiB. */
static inline size_t read_size(size_t left, uint32_t medium)
{
    size_t n;
    switch (rnd() & 7) {
    case 0:
    case 1: n = 1 + below(4); break;
    case 2:
    case 3: n = 1 + below(32); break;
    case 4:
    case 5: n = 1 + below(medium); break;
    default: n = left;
    }
    return RTMD_MIN(RTMD_MIN(n, left), (size_t)65536);
}

/* Picks an event between reads, 0-15, and runs its loop passes: 0-5 one
 * pass, 6-8 until the loop is idle; the driver gives 9-15 their meaning. */
static inline uint32_t loop_event(void)
{
    uint32_t e = rnd() & 15;
    if (e < 6)
        stub_run_once();
    else if (e < 9)
        stub_run_loop();
    return e;
}

/*
 * Feeds p[0, n) to *conn (NULL once freed) in reads of read_size(, medium)
 * bytes, with between(conn) after each. While reading is paused it runs the
 * loop, drain() (the writes complete) and the loop again: every deferred
 * answer and store call has completed by then, so reading must have resumed.
 * Stops early once the connection closes; returns the bytes read.
 */
static inline size_t feed(struct stub_conn **conn, const void *p, size_t n, uint32_t medium,
                          void (*drain)(void), void (*between)(struct stub_conn **))
{
    size_t off = 0;
    while (off < n && *conn) {
        if ((*conn)->c.flags & RTMD_CONN_CLOSING)
            break;
        if (!stub_reading(*conn)) {
            stub_run_loop();
            drain();
            stub_run_loop();
            CHECK(!*conn || stub_reading(*conn) || ((*conn)->c.flags & RTMD_CONN_CLOSING));
            continue;
        }
        size_t k = read_size(n - off, medium);
        stub_read(*conn, (const char *)p + off, k);
        off += k;
        between(conn);
    }
    return off;
}

#endif
