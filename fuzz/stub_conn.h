/*
 * stub_conn.h — link-time stubs for net/conn.c (Mosquitto's approach), so
 * http.c, ws.c and the gateway run over memory: no sockets, no file
 * descriptors, no kernel buffers, and every run of an input is the same.
 *
 * A binary that includes this file (from exactly one .c) defines every
 * rtmd_conn_* function the protocols call, so the linker never pulls conn.o
 * out of librtmd.a; if a protocol starts calling a conn.c function this file
 * does not define, the link fails with duplicate definitions instead of
 * silently mixing the two.
 *
 * The stubs follow conn.c's semantics closely, because a bug found through
 * them must be a bug over real sockets too:
 *   - a failed write marks the connection (RTMD_CONN_FAILED: no more I/O)
 *     and returns an error; it is closed in the prepare phase, as conn.c's
 *     fail_later() does — never inside the write;
 *   - buffered output is written at once when 32 KiB collect (WBUF_FLUSH_AT);
 *   - with `backpressure` set, writes are "queued" (out_pending grows, each
 *     queued write holds a reference) until stub_drain(), which runs what
 *     on_write() runs: CLOSE_AFTER_WRITE → close_gracefully, else on_drain;
 *   - rtmd_conn_close() calls the protocol's on_close at once and drops the
 *     base reference later (the uv_close callback, via rtmd_defer); queued
 *     writes are cancelled first, as libuv does;
 *   - rtmd_conn_close_gracefully() lingers (input discarded) after a
 *     deferred "shutdown" that arms the linger timeout;
 *   - rtmd_conn_write_buffered() buffers until the loop's prepare phase, and
 *     so does rtmd_conn_writev() while a write is queued;
 *   - rtmd_conn_pause_output() stops reading until out_pending and the
 *     buffered output are both empty (stub_drain(), a flush);
 *   - a graceful close waiting for its output arms the drain timeout;
 *   - timeouts are armed on the real rtmd_timeout_queues; stub_fire_timeout()
 *     expires one as rtmd_timeouts_run() would, without waiting.
 * What the peer receives is appended to a buffer the caller owns, which
 * outlives the connection.
 */
#ifndef RTMD_FUZZ_STUB_CONN_H
#define RTMD_FUZZ_STUB_CONN_H

#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/loop.h"
#include "net/conn.h"
#include "net/http.h"

#define STUB_WBUF_MAX   (64u * 1024 * 1024)
#define STUB_PASSES_MAX 100000 /* loop passes before deferred work counts as a hang */

struct stub_conn {
    struct rtmd_conn c;
    struct stub_conn **self; /* set to NULL when the memory is freed */
    struct rtmd_buf *out;    /* the caller's: every byte the peer would read */
    struct rtmd_timeout_queue *armed;
    struct rtmd_deferred closed; /* uv_close's callback */
    struct rtmd_deferred shut;   /* uv_shutdown's callback */
    size_t queued_writes;        /* uv_writes in flight, each holding a reference */
    bool backpressure;           /* writes stay queued until stub_drain() */
    long writes_left;            /* < 0: writes never fail; else successes before one fails */
};

static uv_loop_t stub_loop_;
static uv_idle_t stub_idle_;
static struct rtmd_loop_hook stub_flush_hook_;
static struct rtmd_list stub_flush_ = {&stub_flush_, &stub_flush_};
static struct rtmd_list stub_doomed_ = {&stub_doomed_, &stub_doomed_};
static size_t stub_live_; /* stub connections not yet freed */

static inline struct stub_conn *stub_of(struct rtmd_conn *c)
{
    return RTMD_CONTAINER_OF(c, struct stub_conn, c);
}

/* ---- conn.c's functions ------------------------------------------------------ */

void rtmd_conn_unref(struct rtmd_conn *c)
{
    if (c->refs == 0) {
        fprintf(stderr, "stub_conn: unref of conn %llu without a reference\n",
                (unsigned long long)c->id);
        abort();
    }
    if (--c->refs > 0)
        return;
    struct stub_conn *sc = stub_of(c);
    rtmd_buf_free(&c->wbuf);
    if (sc->self)
        *sc->self = NULL;
    stub_live_--;
    free(sc);
}

static void stub_on_closed(struct rtmd_deferred *d)
{
    struct stub_conn *sc = RTMD_CONTAINER_OF(d, struct stub_conn, closed);
    /* libuv cancels queued writes (their callbacks see UV_ECANCELED and
     * drop their references) before the close callback runs. */
    size_t n = sc->queued_writes;
    sc->queued_writes = 0;
    sc->c.out_pending = 0;
    for (size_t i = 0; i < n; i++)
        rtmd_conn_unref(&sc->c);
    rtmd_conn_unref(&sc->c);
}

void rtmd_conn_close(struct rtmd_conn *c)
{
    if (c->flags & RTMD_CONN_CLOSING)
        return;
    c->flags |= RTMD_CONN_CLOSING;
    rtmd_timeout_disarm(&c->timeout);
    stub_of(c)->armed = NULL;
    rtmd_list_remove(&c->link);
    if (rtmd_list_linked(&c->flush_link))
        rtmd_list_remove(&c->flush_link);
    rtmd_buf_free(&c->wbuf);
    c->server->n_conns--;
    c->server->closed++;
    if (c->flags & RTMD_CONN_BUSY)
        c->server->n_busy--;
    if (c->proto && c->proto->on_close)
        c->proto->on_close(c);
    rtmd_defer(&stub_of(c)->closed, stub_on_closed);
}

void rtmd_conn_arm_timeout(struct rtmd_conn *c, struct rtmd_timeout_queue *q)
{
    if (c->flags & RTMD_CONN_CLOSING)
        return;
    rtmd_timeout_arm(q, &c->timeout);
    stub_of(c)->armed = q;
}

void rtmd_conn_disarm_timeout(struct rtmd_conn *c)
{
    rtmd_timeout_disarm(&c->timeout);
    stub_of(c)->armed = NULL;
}

void rtmd_conn_set_proto(struct rtmd_conn *c, const struct rtmd_proto *proto)
{
    c->proto = proto;
}

static void stub_fail_later(struct rtmd_conn *c)
{
    if (c->flags & (RTMD_CONN_CLOSING | RTMD_CONN_FAILED))
        return;
    c->flags |= RTMD_CONN_FAILED;
    rtmd_buf_free(&c->wbuf);
    if (rtmd_list_linked(&c->flush_link))
        rtmd_list_remove(&c->flush_link);
    rtmd_list_insert_tail(&stub_doomed_, &c->flush_link);
}

static int stub_direct_writev(struct rtmd_conn *c, const uv_buf_t *bufs, size_t nbufs)
{
    struct stub_conn *sc = stub_of(c);
    if (c->flags & (RTMD_CONN_CLOSING | RTMD_CONN_LINGER | RTMD_CONN_FAILED))
        return RTMD_ECLOSED;
    size_t total = 0;
    for (size_t i = 0; i < nbufs; i++)
        total += bufs[i].len;
    if (total == 0)
        return 0;
    if (sc->writes_left == 0) {
        /* The kernel refused (EPIPE, ECONNRESET): doomed, closed later. */
        stub_fail_later(c);
        return UV_EPIPE;
    }
    if (sc->writes_left > 0)
        sc->writes_left--;
    for (size_t i = 0; i < nbufs; i++)
        rtmd_buf_append(sc->out, bufs[i].base, bufs[i].len); /* beyond its max: dropped */
    if (sc->backpressure) {
        c->out_pending += total;
        sc->queued_writes++;
        rtmd_conn_ref(c);
    }
    return 0;
}

static void stub_resume_if_written(struct rtmd_conn *c)
{
    if (c->out_pending == 0 && c->wbuf.len == 0)
        c->flags &= ~(uint32_t)RTMD_CONN_OUTPUT_PAUSED;
}

static void stub_flush_one(struct rtmd_conn *c)
{
    rtmd_list_remove(&c->flush_link);
    struct rtmd_buf b = c->wbuf;
    rtmd_buf_init(&c->wbuf, STUB_WBUF_MAX);
    uv_buf_t ub = uv_buf_init(b.data, (unsigned)b.len);
    stub_direct_writev(c, &ub, 1);
    rtmd_buf_free(&b);
    stub_resume_if_written(c);
}

static void stub_on_flush(struct rtmd_loop_hook *h)
{
    (void)h;
    struct rtmd_list *n;
    for (int round = 0; round < 8; round++) {
        while ((n = rtmd_list_first(&stub_flush_)))
            stub_flush_one(RTMD_CONTAINER_OF(n, struct rtmd_conn, flush_link));
        if (rtmd_list_empty(&stub_doomed_))
            break;
        while ((n = rtmd_list_first(&stub_doomed_)))
            rtmd_conn_close(RTMD_CONTAINER_OF(n, struct rtmd_conn, flush_link));
    }
}

int rtmd_conn_write_buffered(struct rtmd_conn *c, const void *p, size_t n)
{
    if (rtmd_conn_ending(c))
        return RTMD_ECLOSED;
    int r = rtmd_buf_append(&c->wbuf, p, n);
    if (r < 0) {
        stub_fail_later(c);
        return r;
    }
    if (!rtmd_list_linked(&c->flush_link))
        rtmd_list_insert_tail(&stub_flush_, &c->flush_link);
    if (c->wbuf.len >= 32u * 1024)
        stub_flush_one(c);
    return 0;
}

int rtmd_conn_writev(struct rtmd_conn *c, const uv_buf_t *bufs, size_t nbufs)
{
    if (rtmd_conn_ending(c))
        return RTMD_ECLOSED;
    if (c->wbuf.len > 0 || c->out_pending > 0) {
        for (size_t i = 0; i < nbufs; i++) {
            int r = rtmd_conn_write_buffered(c, bufs[i].base, bufs[i].len);
            if (r < 0)
                return r;
        }
        return 0;
    }
    return stub_direct_writev(c, bufs, nbufs);
}

int rtmd_conn_write(struct rtmd_conn *c, const void *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    return rtmd_conn_writev(c, &b, 1);
}

void rtmd_conn_pause_read(struct rtmd_conn *c)
{
    c->flags |= RTMD_CONN_READ_PAUSED;
}

void rtmd_conn_resume_read(struct rtmd_conn *c)
{
    c->flags &= ~(uint32_t)RTMD_CONN_READ_PAUSED;
}

void rtmd_conn_pause_output(struct rtmd_conn *c)
{
    if (rtmd_conn_unsent(c) > 0)
        c->flags |= RTMD_CONN_OUTPUT_PAUSED;
}

static void stub_on_shutdown(struct rtmd_deferred *d)
{
    struct stub_conn *sc = RTMD_CONTAINER_OF(d, struct stub_conn, shut);
    struct rtmd_conn *c = &sc->c;
    if (c->flags & RTMD_CONN_CLOSING)
        rtmd_conn_close(c);
    else
        rtmd_conn_arm_timeout(c, &c->server->linger_timeouts);
    rtmd_conn_unref(c);
}

void rtmd_conn_close_gracefully(struct rtmd_conn *c)
{
    if (c->flags & (RTMD_CONN_CLOSING | RTMD_CONN_LINGER))
        return;
    if (c->wbuf.len > 0)
        stub_flush_one(c);
    if (c->flags & RTMD_CONN_CLOSING)
        return;
    if (c->out_pending > 0) {
        c->flags |= RTMD_CONN_CLOSE_AFTER_WRITE;
        rtmd_conn_arm_timeout(c, &c->server->drain_timeouts);
        return;
    }
    c->flags |= RTMD_CONN_LINGER;
    c->flags &= ~(uint32_t)RTMD_CONN_READ_PAUSED;
    rtmd_conn_ref(c);
    rtmd_defer(&stub_of(c)->shut, stub_on_shutdown);
}

const char *rtmd_conn_remote(const struct rtmd_conn *c, char *out, size_t outlen)
{
    (void)c;
    snprintf(out, outlen, "-");
    return out;
}

/* ---- the server and the loop ------------------------------------------------- */

static void stub_on_proto_timeout(struct rtmd_timeout *t)
{
    struct rtmd_conn *c = RTMD_CONTAINER_OF(t, struct rtmd_conn, timeout);
    if (c->proto && c->proto->on_timeout)
        c->proto->on_timeout(c);
    else
        rtmd_conn_close(c);
}

static void stub_on_linger_timeout(struct rtmd_timeout *t)
{
    rtmd_conn_close(RTMD_CONTAINER_OF(t, struct rtmd_conn, timeout));
}

static void stub_on_idle(uv_idle_t *h)
{
    (void)h;
}

/* The one loop (created once per process; libFuzzer never ends it). */
static inline uv_loop_t *stub_loop_init(void)
{
    static bool done;
    if (!done) {
        if (uv_loop_init(&stub_loop_) != 0)
            abort();
        rtmd_loop_init(&stub_loop_);
        uv_idle_init(&stub_loop_, &stub_idle_);
        rtmd_loop_on_prepare(&stub_flush_hook_, stub_on_flush);
        done = true;
    }
    return &stub_loop_;
}

/* Closes the loop's handles and the loop (unit tests; fuzzers never do). */
static inline void stub_loop_close(void)
{
    rtmd_loop_hook_remove(&stub_flush_hook_);
    uv_close((uv_handle_t *)&stub_idle_, NULL);
    rtmd_loop_close();
    uv_run(&stub_loop_, UV_RUN_DEFAULT);
    if (uv_loop_close(&stub_loop_) != 0)
        abort();
}

/* Runs loop passes (prepare: buffered writes; check: deferred calls) until
 * nothing is left to do. Work that never ends is a hang: abort. A store
 * with a thread (fuzz_api.c's embedded one) keeps the loop alive while it
 * owes answers: then, with nothing else to do, the pass waits for it in
 * poll instead of spinning. */
static inline void stub_run_loop(void)
{
    for (int i = 0;; i++) {
        /* With stub_idle_ stopped, the loop is alive only while deferred
         * calls wait (rtmd's own idle handle) or a store owes answers. */
        bool alive = uv_loop_alive(&stub_loop_) != 0;
        bool writes = !rtmd_list_empty(&stub_flush_) || !rtmd_list_empty(&stub_doomed_);
        if (i > 0 && !alive && !writes)
            return;
        if (i > STUB_PASSES_MAX) {
            fprintf(stderr, "stub_conn: deferred work does not end\n");
            abort();
        }
        if (alive && !writes && !rtmd_defer_pending()) {
            uv_run(&stub_loop_, UV_RUN_ONCE);
            continue;
        }
        uv_idle_start(&stub_idle_, stub_on_idle);
        uv_run(&stub_loop_, UV_RUN_NOWAIT);
        uv_idle_stop(&stub_idle_);
    }
}

/* One loop pass only (what was deferred so far runs; what that defers waits). */
static inline void stub_run_once(void)
{
    uv_idle_start(&stub_idle_, stub_on_idle);
    uv_run(&stub_loop_, UV_RUN_NOWAIT);
    uv_idle_stop(&stub_idle_);
}

/* Sets up s as rtmd_server_start() would, without listening. */
static inline void stub_server_init(struct rtmd_server *s, struct rtmd_listener *l,
                                    const struct rtmd_config *cfg, rtmd_http_handler on_request)
{
    memset(s, 0, sizeof(*s));
    memset(l, 0, sizeof(*l));
    s->cfg = cfg;
    s->on_request = on_request;
    rtmd_list_init(&s->conns);
    rtmd_list_init(&s->flush);
    rtmd_timeout_queue_init(&s->request_timeouts, cfg->limits.http_header_timeout_ms,
                            stub_on_proto_timeout);
    rtmd_timeout_queue_init(&s->idle_timeouts, (uint64_t)cfg->limits.http_idle_timeout_s * 1000,
                            stub_on_proto_timeout);
    rtmd_timeout_queue_init(&s->linger_timeouts, 2000, stub_on_linger_timeout);
    rtmd_timeout_queue_init(&s->drain_timeouts, 30000, stub_on_linger_timeout);
    l->server = s;
    l->region = 0;
}

static inline void stub_server_close(struct rtmd_server *s)
{
    rtmd_timeout_queue_close(&s->request_timeouts);
    rtmd_timeout_queue_close(&s->idle_timeouts);
    rtmd_timeout_queue_close(&s->linger_timeouts);
    rtmd_timeout_queue_close(&s->drain_timeouts);
}

/* Accepts a connection as on_connection() does and starts HTTP on it. *self
 * holds the connection until its memory is freed, then NULL. */
static inline struct stub_conn *stub_conn_open(struct rtmd_server *s, struct rtmd_listener *l,
                                               struct rtmd_buf *out, struct stub_conn **self)
{
    struct stub_conn *sc = rtmd_calloc(1, sizeof(*sc));
    struct rtmd_conn *c = &sc->c;
    c->refs = 1;
    c->server = s;
    c->listener = l;
    c->id = ++s->next_conn_id;
    rtmd_timeout_init(&c->timeout);
    rtmd_list_init(&c->flush_link);
    rtmd_buf_init(&c->wbuf, STUB_WBUF_MAX);
    rtmd_list_insert_tail(&s->conns, &c->link);
    s->n_conns++;
    s->accepted++;
    sc->out = out;
    sc->self = self;
    sc->writes_left = -1;
    *self = sc;
    stub_live_++;
    bool busy = s->stopping || s->n_conns - s->n_busy > s->cfg->limits.max_connections;
    if (busy) {
        s->rejected_full++;
        if (s->stopping || s->n_busy >= 32) { /* conn.c's BUSY_MAX */
            c->proto = NULL;
            rtmd_conn_close(c);
            return sc;
        }
        c->flags |= RTMD_CONN_BUSY;
        s->n_busy++;
        s->rejected_answered++;
        rtmd_http_conn_busy(c);
        return sc;
    }
    rtmd_http_conn_start(c);
    return sc;
}

/* Whether conn.c would be reading now. */
static inline bool stub_reading(const struct stub_conn *sc)
{
    uint32_t f = sc->c.flags;
    return !(f & RTMD_CONN_CLOSING) &&
           (!(f & (RTMD_CONN_READ_PAUSED | RTMD_CONN_OUTPUT_PAUSED)) || (f & RTMD_CONN_LINGER));
}

/* n bytes arrive, as in conn.c's on_read. */
static inline void stub_read(struct stub_conn *sc, const void *p, size_t n)
{
    struct rtmd_conn *c = &sc->c;
    if ((c->flags & RTMD_CONN_CLOSING) || n == 0)
        return;
    rtmd_conn_ref(c);
    c->flags |= RTMD_CONN_IN_READ;
    if (!(c->flags & (RTMD_CONN_LINGER | RTMD_CONN_CLOSE_AFTER_WRITE)))
        c->proto->on_data(c, p, n);
    c->flags &= ~(uint32_t)RTMD_CONN_IN_READ;
    rtmd_conn_unref(c);
}

/* The peer shut its write side down (UV_EOF). */
static inline void stub_eof(struct stub_conn *sc)
{
    struct rtmd_conn *c = &sc->c;
    if (c->flags & RTMD_CONN_CLOSING)
        return;
    if (!(c->flags & RTMD_CONN_LINGER) && c->proto && c->proto->on_eof)
        c->proto->on_eof(c);
    else
        rtmd_conn_close(c);
}

/* The kernel took every queued byte: the queued writes complete. */
static inline void stub_drain(struct stub_conn *sc)
{
    struct rtmd_conn *c = &sc->c;
    size_t n = sc->queued_writes;
    if (n == 0 || (c->flags & RTMD_CONN_CLOSING))
        return; /* after uv_close the writes are cancelled instead */
    sc->queued_writes = 0;
    c->out_pending = 0;
    for (size_t i = 1; i < n; i++)
        rtmd_conn_unref(c); /* the earlier writes: nothing else to do */
    if (c->flags & RTMD_CONN_CLOSE_AFTER_WRITE) {
        c->flags &= ~(uint32_t)RTMD_CONN_CLOSE_AFTER_WRITE;
        rtmd_conn_close_gracefully(c);
    } else {
        stub_resume_if_written(c);
        if (c->proto && c->proto->on_drain)
            c->proto->on_drain(c);
    }
    rtmd_conn_unref(c);
}

/* The connection's armed timeout expires now. Returns false if none was. */
static inline bool stub_fire_timeout(struct stub_conn *sc)
{
    struct rtmd_conn *c = &sc->c;
    struct rtmd_timeout_queue *q = sc->armed;
    if (!q || !rtmd_timeout_armed(&c->timeout))
        return false;
    rtmd_timeout_disarm(&c->timeout);
    sc->armed = NULL;
    q->expire(&c->timeout);
    return true;
}

#endif
