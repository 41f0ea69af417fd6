/*
 * fuzz_util.h — what the drivers over stub_conn.h (fuzz_http.c, fuzz_ws.c,
 * fuzz_api.c) share: CHECK, the input's two leading bytes (flags and the
 * seed of a PRNG), the PRNG, feeding bytes to a stub connection in reads of
 * the sizes the PRNG picks, ending it, and checking the HTTP responses it
 * received.
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
#include <string.h>

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

/* Opens *conn on s (stub_conn_open) with what flags bits 2 and 3 say, as
 * both HTTP drivers use them: backpressure, and a write that fails after
 * 0-5 writes. */
static inline void fuzz_conn_open(struct rtmd_server *s, struct rtmd_listener *l,
                                  struct rtmd_buf *out, struct stub_conn **conn)
{
    stub_conn_open(s, l, out, conn);
    (*conn)->backpressure = (flags_ & 0x04) != 0;
    if (flags_ & 0x08)
        (*conn)->writes_left = (long)below(6);
}

/* Between reads (feed's `between`): what loop_event() picks happens; 9 fires
 * the connection's timeout if timeouts are on, 10-12 complete its writes. */
static inline void fuzz_loop_events(struct stub_conn **conn, bool timeouts)
{
    uint32_t e = loop_event();
    if (!*conn)
        return;
    if (e == 9 && timeouts)
        stub_fire_timeout(*conn);
    else if (e >= 10 && e <= 12)
        stub_drain(*conn);
}

/* After the input: ends *conn as `how` says (0-1 EOF, 2 the peer resets,
 * 3 silence), then runs the loop until the connection is freed and busy()
 * (may be NULL) is false — only a timeout may be needed for that — and once
 * more, so nothing is left for the next input. */
static inline void fuzz_end_conn(struct stub_conn **conn, unsigned how, bool (*busy)(void))
{
    if (*conn) {
        if (how <= 1)
            stub_eof(*conn);
        else if (how == 2)
            rtmd_conn_close(&(*conn)->c);
    }
    for (int round = 0; *conn || (busy && busy()); round++) {
        CHECK(round < 50);
        stub_run_loop();
        if (!*conn)
            continue;
        stub_drain(*conn);
        stub_run_loop();
        if (!*conn || ((*conn)->c.flags & RTMD_CONN_CLOSING))
            continue;
        /* Alive, idle and not closing: only a timeout can end it now. */
        CHECK(stub_fire_timeout(*conn));
    }
    stub_run_loop();
}

/* ---- what the client received: HTTP/1.1 responses ---------------------------------- */

static inline const char *fuzz_find(const char *p, size_t n, const char *s)
{
    size_t m = strlen(s);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(p + i, s, m) == 0)
            return p + i;
    return NULL;
}

/* The decimal number at p (at most n bytes), or -1 if there is none. */
static inline long long fuzz_number(const char *p, size_t n)
{
    long long v = -1;
    for (size_t i = 0; i < n && i < 18 && p[i] >= '0' && p[i] <= '9'; i++)
        v = (v < 0 ? 0 : v * 10) + (p[i] - '0');
    return v;
}

/* Value of header name (with ": ") in the head [p, p+n), or NULL. */
static inline const char *fuzz_head_value(const char *p, size_t n, const char *name)
{
    const char *h = fuzz_find(p, n, name);
    return h ? h + strlen(name) : NULL;
}

/* Checks that out is a sequence of well-formed responses (status line,
 * Content-Length within the output, X-Request-ID), nothing after one with
 * "Connection: close", until a 101 (frames follow) or an event stream (the
 * dashboard's live tail: events follow); on_body sees each. A
 * response without Content-Length (the answer to a HEAD request) has no
 * body; the driver's on_body checks it answers a HEAD. */
static inline void fuzz_check_responses(const struct rtmd_buf *out,
                                        void (*on_body)(const char *head, size_t head_len,
                                                        const char *body, size_t body_len))
{
    if (out->len == out->max)
        return; /* truncated: not checkable */
    const char *p = out->data;
    size_t n = out->len, pos = 0;
    bool closed = false;
    while (pos < n) {
        CHECK(!closed);
        const char *r = p + pos;
        size_t left = n - pos;
        CHECK(left >= 12 && memcmp(r, "HTTP/1.1 ", 9) == 0);
        int status = (r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0');
        CHECK(status >= 100 && status <= 599);
        const char *end = fuzz_find(r, left, "\r\n\r\n");
        CHECK(end != NULL);
        size_t head_len = (size_t)(end - r) + 4;
        if (status == 101 || fuzz_find(r, head_len, "\r\nContent-Type: text/event-stream"))
            return; /* frames, or the dashboard's live tail, follow */
        const char *cl = fuzz_head_value(r, head_len, "\r\nContent-Length: ");
        CHECK(fuzz_head_value(r, head_len, "\r\nX-Request-ID: ") != NULL);
        long long content_length = cl ? fuzz_number(cl, (size_t)(r + head_len - cl)) : 0;
        CHECK(content_length >= 0 && (size_t)content_length <= left - head_len);
        on_body(r, head_len, r + head_len, (size_t)content_length);
        if (fuzz_find(r, head_len, "\r\nConnection: close\r\n"))
            closed = true;
        pos += head_len + (size_t)content_length;
    }
}

#endif
