#include "core/loop.h"

#include <time.h>

#include "core/log.h"

static uv_loop_t *loop_;
static uv_check_t check_;
static uv_idle_t idle_;
static uv_prepare_t prepare_;
static uv_timer_t tick_;
static struct rtmd_list deferred_ = {&deferred_, &deferred_};
static struct rtmd_list prepare_hooks_ = {&prepare_hooks_, &prepare_hooks_};
static struct rtmd_list timeout_queues_ = {&timeout_queues_, &timeout_queues_};
static int64_t wall_offset_; /* wall ms - uv_now */
static uint64_t frozen_ms_;

#define TICK_MS 100

static uint64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void clock_sync(void)
{
    /* Both clocks read now: the loop's cached time may be from the start of
     * an iteration a busy (or preempted) process began long ago, and an
     * offset against it would put rtmd's time ahead by that much. */
    uv_update_time(loop_);
    wall_offset_ = (int64_t)realtime_ms() - (int64_t)uv_now(loop_);
}

uint64_t rtmd_now_ms(void)
{
    if (frozen_ms_)
        return frozen_ms_;
    if (!loop_)
        return realtime_ms();
    /* Never backwards: re-syncing the offset to the wall clock (every tick)
     * may step it back a millisecond, and events of one log must carry
     * non-decreasing times. A wall clock set back makes times stand still
     * until it catches up. */
    static uint64_t last;
    uint64_t now = (uint64_t)((int64_t)uv_now(loop_) + wall_offset_);
    if (now < last)
        now = last;
    last = now;
    return now;
}

uint64_t rtmd_mono_ms(void)
{
    if (!loop_) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    }
    return uv_now(loop_);
}

void rtmd_clock_freeze(uint64_t ms)
{
    frozen_ms_ = ms;
}

uv_loop_t *rtmd_loop(void)
{
    return loop_;
}

static void run_deferred(void)
{
    /* Only what was queued before this pass runs now; what those callbacks
     * defer runs in the next pass of the same phase (bounded work). */
    struct rtmd_list batch;
    rtmd_list_init(&batch);
    if (rtmd_list_empty(&deferred_))
        return;
    batch.next = deferred_.next;
    batch.prev = deferred_.prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    rtmd_list_init(&deferred_);
    struct rtmd_list *n;
    while ((n = rtmd_list_first(&batch))) {
        rtmd_list_remove(n);
        struct rtmd_deferred *d = RTMD_CONTAINER_OF(n, struct rtmd_deferred, link);
        d->cb(d);
    }
}

static void on_check(uv_check_t *h)
{
    (void)h;
    run_deferred();
    if (rtmd_list_empty(&deferred_))
        uv_idle_stop(&idle_);
}

static void on_idle(uv_idle_t *h)
{
    /* Only keeps poll from blocking while deferred work waits. */
    (void)h;
}

static void on_prepare(uv_prepare_t *h)
{
    (void)h;
    struct rtmd_list *n, *tmp;
    rtmd_list_foreach_safe(n, tmp, &prepare_hooks_)
    {
        struct rtmd_loop_hook *hook = RTMD_CONTAINER_OF(n, struct rtmd_loop_hook, link);
        hook->cb(hook);
    }
    rtmd_log_flush(); /* the lines of this iteration, hooks' included */
}

static void on_tick(uv_timer_t *h)
{
    (void)h;
    clock_sync();
    rtmd_timeouts_run();
}

int rtmd_loop_init(uv_loop_t *loop)
{
    loop_ = loop;
    rtmd_log_buffer_here();
    clock_sync();
    uv_check_init(loop, &check_);
    uv_check_start(&check_, on_check);
    uv_unref((uv_handle_t *)&check_);
    uv_idle_init(loop, &idle_);
    uv_prepare_init(loop, &prepare_);
    uv_prepare_start(&prepare_, on_prepare);
    uv_unref((uv_handle_t *)&prepare_);
    uv_timer_init(loop, &tick_);
    uv_timer_start(&tick_, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&tick_);
    return 0;
}

void rtmd_loop_close(void)
{
    if (!loop_)
        return;
    uv_close((uv_handle_t *)&check_, NULL);
    uv_close((uv_handle_t *)&idle_, NULL);
    uv_close((uv_handle_t *)&prepare_, NULL);
    uv_close((uv_handle_t *)&tick_, NULL);
}

void rtmd_defer(struct rtmd_deferred *d, void (*cb)(struct rtmd_deferred *d))
{
    d->cb = cb;
    rtmd_list_insert_tail(&deferred_, &d->link);
    if (loop_ && !uv_is_active((uv_handle_t *)&idle_))
        uv_idle_start(&idle_, on_idle);
}

bool rtmd_defer_pending(void)
{
    return !rtmd_list_empty(&deferred_);
}

void rtmd_defer_cancel(struct rtmd_deferred *d)
{
    if (d->link.next)
        rtmd_list_remove(&d->link);
}

void rtmd_loop_on_prepare(struct rtmd_loop_hook *h, void (*cb)(struct rtmd_loop_hook *h))
{
    h->cb = cb;
    rtmd_list_insert_tail(&prepare_hooks_, &h->link);
}

void rtmd_loop_hook_remove(struct rtmd_loop_hook *h)
{
    if (h->link.next)
        rtmd_list_remove(&h->link);
}

void rtmd_timeout_queue_init(struct rtmd_timeout_queue *q, uint64_t duration_ms,
                             void (*expire)(struct rtmd_timeout *t))
{
    rtmd_list_init(&q->head);
    q->duration_ms = duration_ms;
    q->expire = expire;
    rtmd_list_insert_tail(&timeout_queues_, &q->link);
}

void rtmd_timeout_queue_close(struct rtmd_timeout_queue *q)
{
    struct rtmd_list *n, *tmp;
    rtmd_list_foreach_safe(n, tmp, &q->head) rtmd_list_remove(n);
    if (q->link.next)
        rtmd_list_remove(&q->link);
}

void rtmd_timeout_arm(struct rtmd_timeout_queue *q, struct rtmd_timeout *t)
{
    if (rtmd_list_linked(&t->link))
        rtmd_list_remove(&t->link);
    t->deadline = rtmd_mono_ms() + q->duration_ms;
    rtmd_list_insert_tail(&q->head, &t->link);
}

void rtmd_timeout_disarm(struct rtmd_timeout *t)
{
    if (rtmd_list_linked(&t->link))
        rtmd_list_remove(&t->link);
}

void rtmd_timeouts_run(void)
{
    uint64_t now = rtmd_mono_ms();
    struct rtmd_list *qn, *qtmp;
    rtmd_list_foreach_safe(qn, qtmp, &timeout_queues_)
    {
        struct rtmd_timeout_queue *q = RTMD_CONTAINER_OF(qn, struct rtmd_timeout_queue, link);
        for (int i = 0; i < RTMD_TIMEOUT_BATCH; i++) {
            struct rtmd_list *n = rtmd_list_first(&q->head);
            if (!n)
                break;
            struct rtmd_timeout *t = RTMD_CONTAINER_OF(n, struct rtmd_timeout, link);
            if (t->deadline > now)
                break;
            rtmd_list_remove(n);
            q->expire(t);
        }
    }
}
