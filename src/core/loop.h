/*
 * loop.h — process-wide services around the one libuv loop.
 *
 * rtmd runs one loop on the main thread (plus the store's worker thread,
 * which never touches loop objects). This module owns the phase hooks that
 * the rest of rtmd hangs work on, in libuv's order:
 *
 *   timers   → timeouts (rtmd_timeout_queue) expire; the wall clock re-syncs
 *   poll     → I/O callbacks: reads, writes, accepts, store completions
 *   check    → deferred completions (rtmd_defer) run, in FIFO order
 *   prepare  → before-sleep hooks (rtmd_loop_on_prepare): the store hands its
 *              batch of this iteration to the worker; closed objects are freed
 *
 * The clock is read once per iteration: rtmd_now_ms() is libuv's cached
 * monotonic time plus an offset to the wall clock.
 */
#ifndef RTMD_CORE_LOOP_H
#define RTMD_CORE_LOOP_H

#include <uv.h>

#include "core/common.h"
#include "core/list.h"

int rtmd_loop_init(uv_loop_t *loop);
/* Closes the handles this module owns (the loop must then run to finish). */
void rtmd_loop_close(void);
uv_loop_t *rtmd_loop(void);

/* Wall-clock milliseconds since the epoch, as of this loop iteration, never
 * decreasing. Works without a loop too (reads the clock), for unit tests and
 * tools. */
uint64_t rtmd_now_ms(void);
/* Monotonic milliseconds (libuv's uv_now). */
uint64_t rtmd_mono_ms(void);
/* Tests only: freeze rtmd_now_ms() at ms (0 unfreezes). */
void rtmd_clock_freeze(uint64_t ms);

/*
 * Deferred calls: a completion that is known immediately (a pull served from
 * memory, a rate-limit check) is still delivered asynchronously, so callers
 * never see a callback run inside the call that started it (libuv's rule).
 * The node is embedded in the caller's object; no allocation.
 */
struct rtmd_deferred {
    struct rtmd_list link;
    void (*cb)(struct rtmd_deferred *d);
};
void rtmd_defer(struct rtmd_deferred *d, void (*cb)(struct rtmd_deferred *d));
void rtmd_defer_cancel(struct rtmd_deferred *d);
/* Deferred calls are waiting (tests and fuzz drivers that run the loop). */
bool rtmd_defer_pending(void);

/* Before-sleep hooks, run every iteration in the prepare phase, in the order
 * they were added: the store's (which may call back, and so write) before
 * the server's, which writes every connection's buffered output. */
struct rtmd_loop_hook {
    struct rtmd_list link;
    void (*cb)(struct rtmd_loop_hook *h);
};
void rtmd_loop_on_prepare(struct rtmd_loop_hook *h, void (*cb)(struct rtmd_loop_hook *h));
void rtmd_loop_hook_remove(struct rtmd_loop_hook *h);

/*
 * Timeout queues: every entry of one queue has the same duration, so arming
 * appends at the tail and the queue stays sorted by deadline; arming,
 * re-arming and disarming are O(1), and one shared timer expires the heads
 * (h2o's approach; no per-connection uv_timer_t). At most
 * RTMD_TIMEOUT_BATCH entries expire per queue per tick.
 */
#define RTMD_TIMEOUT_BATCH 512

struct rtmd_timeout {
    struct rtmd_list link;
    uint64_t deadline; /* rtmd_mono_ms() */
};
struct rtmd_timeout_queue {
    struct rtmd_list head;
    struct rtmd_list link; /* in the loop's list of queues */
    uint64_t duration_ms;
    void (*expire)(struct rtmd_timeout *t);
};
void rtmd_timeout_queue_init(struct rtmd_timeout_queue *q, uint64_t duration_ms,
                             void (*expire)(struct rtmd_timeout *t));
void rtmd_timeout_queue_close(struct rtmd_timeout_queue *q);
static inline void rtmd_timeout_init(struct rtmd_timeout *t)
{
    rtmd_list_init(&t->link);
    t->deadline = 0;
}
/* (Re)starts t on q: it expires duration_ms from now unless re-armed. */
void rtmd_timeout_arm(struct rtmd_timeout_queue *q, struct rtmd_timeout *t);
void rtmd_timeout_disarm(struct rtmd_timeout *t);
static inline bool rtmd_timeout_armed(const struct rtmd_timeout *t)
{
    return rtmd_list_linked(&t->link);
}
/* Expires due entries of every queue now (also called by the shared timer). */
void rtmd_timeouts_run(void);

#endif
