/*
 * deliver.c — pushing messages to clients: peer messages, channel fan-out,
 * member_joined/member_left, and waiting for a peer message's ack.
 *
 * Fan-out: a push is framed once (one WebSocket frame for all receivers)
 * and written with rtmd_conn_write_buffered(), so a connection that gets
 * several pushes in one loop iteration costs one write. The receivers are
 * snapshotted (connection references) when the message is sent; the writes
 * then run from a FIFO of jobs, at most FANOUT_BUDGET per pass of the
 * check phase, so a 10,000-member channel never holds the loop for long and
 * every receiver sees a channel's messages in the order they were sent. A
 * receiver whose unsent output passes ws_output_budget is disconnected (its
 * session ends as for any disconnect) instead of being buffered for.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "core/hashmap.h"
#include "core/json.h"
#include "core/log.h"
#include "core/loop.h"
#include "gateway/gateway.h"
#include "gateway/internal.h"

#define FANOUT_BUDGET  4096 /* deliveries per check-phase pass */
#define SNAPSHOT_STACK 64
#define JOB_FRAMES_MAX 64 /* messages one job carries to the same receivers */

struct frame {
    uint32_t refs;
    size_t len;
    char data[];
};

/* One message of a job, and the receiver it must skip (its sender). */
struct job_frame {
    struct frame *frame;
    const struct rtmd_conn *skip;
};

/* Receivers snapshotted once, and every message queued for exactly that
 * set: a message for a channel whose membership has not changed since the
 * last queued job (same generation) joins that job, so each receiver gets
 * all of them in one write instead of one write each. */
struct fanout_job {
    struct rtmd_list link;
    const struct rtmd_channel *ch;
    uint64_t gen;
    struct job_frame frames[JOB_FRAMES_MAX];
    size_t n_frames;
    struct rtmd_conn **conns;
    size_t n, next;
};

struct ack_wait {
    uint64_t mid;
    char key[8]; /* the hash-map key: mid's bytes */
    const struct rtmd_app *app;
    char uid[RTMD_ID_MAX + 1];
    uint8_t uid_len;
    struct rtmd_timeout timeout;
    void (*cb)(void *arg, int status);
    void *arg;
};

static struct rtmd_list jobs_ = {&jobs_, &jobs_};
static struct rtmd_deferred run_;
static bool run_scheduled_;
static uint64_t next_mid_ = 1;
static struct rtmd_hashmap acks_;
static struct rtmd_timeout_queue ack_timeouts_;
static struct rtmd_buf json_, framed_;
static bool initialized_;

uint64_t deliver_stats_pushed;
static uint64_t cut_offs_;

/* ---- frames --------------------------------------------------------------- */

static struct frame *frame_make(const struct rtmd_buf *json)
{
    rtmd_buf_reset(&framed_);
    if (rtmd_ws_frame_text(&framed_, json->data, json->len) < 0)
        return NULL;
    struct frame *f = rtmd_malloc(sizeof(*f) + framed_.len);
    f->refs = 1;
    f->len = framed_.len;
    memcpy(f->data, framed_.data, framed_.len);
    return f;
}

static void frame_release(struct frame *f)
{
    if (--f->refs == 0)
        free(f);
}

/* Writes one push; true when the receiver is over its budget. A client
 * whose login is not answered yet gets it after the answer (and after its
 * offline messages), so nothing overtakes them. */
static bool push(struct rtmd_conn *conn, const struct frame *f)
{
    struct gw_client *c = conn->user;
    if (rtmd_conn_closing(conn))
        return false;
    deliver_stats_pushed++;
    if (c && !c->ready) {
        if (rtmd_buf_append(&c->held, f->data, f->len) < 0)
            return true;
        return c->held.len > gw_cfg->limits.ws_output_budget;
    }
    if (rtmd_conn_write_buffered(conn, f->data, f->len) < 0)
        return false;
    return rtmd_conn_unsent(conn) > gw_cfg->limits.ws_output_budget;
}

void gw_client_ready(struct gw_client *c)
{
    if (c->ready)
        return;
    c->ready = true;
    if (c->held.len && c->conn)
        rtmd_conn_write_buffered(c->conn, c->held.data, c->held.len);
    rtmd_buf_free(&c->held);
}

struct cut {
    struct rtmd_deferred d;
    struct rtmd_conn *conn;
};

static void on_cut(struct rtmd_deferred *d)
{
    struct cut *k = RTMD_CONTAINER_OF(d, struct cut, d);
    if (!rtmd_conn_closing(k->conn))
        rtmd_conn_close(k->conn);
    rtmd_conn_unref(k->conn);
    free(k);
}

/* Closes a receiver that is over its output budget -- later, from the loop:
 * closing ends its session, and that must not happen inside the presence
 * or fan-out code that is running now (it may be removing the very
 * channel membership whose member_left is being pushed). */
static void cut_off(struct rtmd_conn *conn)
{
    if (rtmd_conn_closing(conn))
        return;
    cut_offs_++;
    rtmd_log_info("gateway", "conn=%llu over its output budget (%zu bytes unsent): closing",
                  (unsigned long long)conn->id, rtmd_conn_unsent(conn));
    rtmd_conn_pause_read(conn);
    struct cut *k = rtmd_malloc(sizeof(*k));
    k->conn = conn;
    rtmd_conn_ref(conn);
    rtmd_defer(&k->d, on_cut);
}

void gw_cut_off_now(struct rtmd_conn *conn)
{
    if (rtmd_conn_closing(conn))
        return;
    cut_offs_++;
    rtmd_log_info("gateway",
                  "conn=%llu over its output budget (%zu bytes unsent) and not reading in time: "
                  "closing",
                  (unsigned long long)conn->id, rtmd_conn_unsent(conn));
    rtmd_conn_close(conn);
}

/* ---- the fan-out queue ------------------------------------------------------ */

static void run_jobs(struct rtmd_deferred *d);

static void schedule(void)
{
    if (!run_scheduled_) {
        run_scheduled_ = true;
        rtmd_defer(&run_, run_jobs);
    }
}

static void job_free(struct fanout_job *job)
{
    for (size_t i = job->next; i < job->n; i++)
        rtmd_conn_unref(job->conns[i]);
    for (size_t i = 0; i < job->n_frames; i++)
        frame_release(job->frames[i].frame);
    free(job->conns);
    free(job);
}

/* Writes a job's messages to one receiver; true when it went over budget. */
static bool push_frames(struct rtmd_conn *conn, const struct job_frame *frames, size_t n)
{
    bool over = false;
    for (size_t i = 0; i < n; i++)
        if (frames[i].skip != conn)
            over |= push(conn, frames[i].frame);
    return over;
}

static void run_jobs(struct rtmd_deferred *d)
{
    (void)d;
    run_scheduled_ = false;
    size_t budget = FANOUT_BUDGET;
    struct rtmd_list *n;
    while (budget > 0 && (n = rtmd_list_first(&jobs_))) {
        struct fanout_job *job = RTMD_CONTAINER_OF(n, struct fanout_job, link);
        while (budget > 0 && job->next < job->n) {
            struct rtmd_conn *conn = job->conns[job->next++];
            budget -= RTMD_MIN(budget, job->n_frames);
            if (push_frames(conn, job->frames, job->n_frames))
                cut_off(conn);
            rtmd_conn_unref(conn);
        }
        if (job->next == job->n) {
            rtmd_list_remove(&job->link);
            job_free(job);
        }
    }
    if (!rtmd_list_empty(&jobs_))
        schedule();
}

/* Sends f to every member of ch but skip (may be NULL); returns how many
 * receivers it goes to. */
static size_t fan_out(struct rtmd_channel *ch, struct frame *f, const struct rtmd_conn *skip)
{
    struct rtmd_list *tail = jobs_.prev;
    if (tail != &jobs_) {
        struct fanout_job *job = RTMD_CONTAINER_OF(tail, struct fanout_job, link);
        if (job->next == 0 && job->ch == ch && job->gen == ch->gen &&
            job->n_frames < JOB_FRAMES_MAX) {
            f->refs++;
            job->frames[job->n_frames++] = (struct job_frame){f, skip};
            return job->n;
        }
    }
    struct rtmd_conn *stack[SNAPSHOT_STACK];
    struct rtmd_conn **conns =
        ch->n_members <= SNAPSHOT_STACK ? stack : rtmd_malloc(ch->n_members * sizeof(*conns));
    size_t n = 0;
    for (uint32_t i = 0; i < ch->n_members; i++) {
        struct gw_client *c = ch->members[i]->owner;
        /* Everyone, the sender too: a later message merged into this job
         * may come from another member and be for the sender. */
        if (!c || !c->conn)
            continue;
        rtmd_conn_ref(c->conn);
        conns[n++] = c->conn;
    }
    if (n == 0) {
        if (conns != stack)
            free(conns);
        return 0;
    }
    if (rtmd_list_empty(&jobs_) && n <= FANOUT_BUDGET) {
        /* Nothing queued ahead of it and small enough: deliver now. Receivers
         * over budget are cut off after the loop. */
        size_t slow = 0, sent = 0;
        for (size_t i = 0; i < n; i++) {
            bool over = conns[i] != skip && (sent++, push(conns[i], f));
            if (over)
                conns[slow++] = conns[i];
            else
                rtmd_conn_unref(conns[i]);
        }
        for (size_t i = 0; i < slow; i++) {
            cut_off(conns[i]);
            rtmd_conn_unref(conns[i]);
        }
        if (conns != stack)
            free(conns);
        return sent;
    }
    struct fanout_job *job = rtmd_calloc(1, sizeof(*job));
    if (conns == stack) {
        conns = rtmd_malloc(n * sizeof(*conns));
        memcpy(conns, stack, n * sizeof(*conns));
    }
    job->ch = ch;
    job->gen = ch->gen;
    job->conns = conns;
    job->n = n;
    f->refs++;
    job->frames[job->n_frames++] = (struct job_frame){f, skip};
    rtmd_list_insert_tail(&jobs_, &job->link);
    schedule();
    return n;
}

/* A message push: {"op":op,<key>:<channel or mid>,"from":..,"payload":..,"ms":..}
 * (the key order of SPEC §4), framed once. */
static struct frame *message_frame(const char *op, const char *key, struct rtmd_str channel,
                                   uint64_t mid, struct rtmd_str from, struct rtmd_str payload,
                                   uint64_t ms)
{
    struct rtmd_json j;
    rtmd_buf_reset(&json_);
    rtmd_json_init(&j, &json_);
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "op");
    rtmd_json_cstr(&j, op);
    rtmd_json_key(&j, key);
    if (channel.p)
        rtmd_json_str(&j, channel);
    else
        rtmd_json_u64(&j, mid);
    rtmd_json_key(&j, "from");
    rtmd_json_str(&j, from);
    rtmd_json_key(&j, "payload");
    rtmd_json_str(&j, payload);
    rtmd_json_key(&j, "ms");
    rtmd_json_u64(&j, ms);
    rtmd_json_obj_end(&j);
    return rtmd_json_finish(&j) == 0 ? frame_make(&json_) : NULL;
}

/* ---- channel messages ---------------------------------------------------------- */

/* The connection of `uid`'s session when it is a member of ch, else NULL. */
static const struct rtmd_conn *member_conn(struct rtmd_channel *ch, struct rtmd_str uid)
{
    struct rtmd_session *s = rtmd_presence_find(ch->app, uid);
    struct gw_client *c = s ? s->owner : NULL;
    if (!c || !rtmd_session_in_channel(s, rtmd_str_make(ch->name, ch->name_len)))
        return NULL;
    return c->conn;
}

static bool same_uid(const struct rtmd_session *s, struct rtmd_str uid)
{
    return rtmd_str_eq(rtmd_str_make(s->uid, s->uid_len), uid);
}

size_t rtmd_gateway_deliver_channel(const struct rtmd_app *app, struct rtmd_str channel,
                                    struct rtmd_str from, struct rtmd_str payload, uint64_t ms)
{
    struct rtmd_channel *ch = rtmd_presence_channel(app, channel);
    if (!ch)
        return 0;
    struct frame *f = message_frame("channel_message", "channel", channel, 0, from, payload, ms);
    if (!f)
        return 0;
    size_t n = fan_out(ch, f, member_conn(ch, from));
    frame_release(f);
    return n;
}

size_t rtmd_gateway_channel_recipients(const struct rtmd_app *app, struct rtmd_str channel,
                                       struct rtmd_str from, struct rtmd_str **out)
{
    *out = NULL;
    struct rtmd_channel *ch = rtmd_presence_channel(app, channel);
    if (!ch || ch->n_members == 0)
        return 0;
    struct rtmd_str *r = rtmd_malloc(ch->n_members * sizeof(*r));
    size_t n = 0;
    for (uint32_t i = 0; i < ch->n_members; i++) {
        struct rtmd_session *s = ch->members[i];
        if (!same_uid(s, from))
            r[n++] = rtmd_str_make(s->uid, s->uid_len);
    }
    *out = r;
    return n;
}

/* member_joined / member_left to the other members (a presence hook). */
void gw_member_changed(struct rtmd_channel *ch, struct rtmd_session *s, bool joined)
{
    if (ch->n_members == 0 || (ch->n_members == 1 && ch->members[0] == s))
        return;
    /* As Agora's SDKs: no member events in big channels (they cost members²). */
    if (ch->n_members > gw_cfg->limits.member_events_max)
        return;
    struct rtmd_json j;
    rtmd_buf_reset(&json_);
    rtmd_json_init(&j, &json_);
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "op");
    rtmd_json_cstr(&j, joined ? "member_joined" : "member_left");
    rtmd_json_key(&j, "channel");
    rtmd_json_str(&j, rtmd_str_make(ch->name, ch->name_len));
    rtmd_json_key(&j, "uid");
    rtmd_json_str(&j, rtmd_str_make(s->uid, s->uid_len));
    rtmd_json_obj_end(&j);
    struct frame *f = rtmd_json_finish(&j) == 0 ? frame_make(&json_) : NULL;
    if (!f)
        return;
    struct gw_client *c = s->owner;
    fan_out(ch, f, c ? c->conn : NULL);
    frame_release(f);
}

/* ---- peer messages ------------------------------------------------------------------ */

uint64_t rtmd_gateway_pushes(void)
{
    return deliver_stats_pushed;
}

uint64_t rtmd_gateway_cut_offs(void)
{
    return cut_offs_;
}

uint64_t rtmd_gateway_next_mid(void)
{
    return next_mid_++;
}

bool rtmd_gateway_deliver_peer(const struct rtmd_app *app, struct rtmd_str from, struct rtmd_str to,
                               struct rtmd_str payload, uint64_t ms, uint64_t *mid_out)
{
    struct rtmd_session *s = rtmd_presence_find(app, to);
    struct gw_client *c = s ? s->owner : NULL;
    if (!c || !c->conn || rtmd_conn_closing(c->conn))
        return false;
    uint64_t mid = rtmd_gateway_next_mid();
    struct frame *f = message_frame("peer_message", "mid", RTMD_STR_NULL, mid, from, payload, ms);
    if (!f)
        return false;
    struct rtmd_conn *conn = c->conn;
    rtmd_conn_ref(conn);
    if (push(conn, f))
        cut_off(conn);
    rtmd_conn_unref(conn);
    frame_release(f);
    if (mid_out)
        *mid_out = mid;
    return true;
}

/* ---- acks ----------------------------------------------------------------------------- */

static void ack_done(struct ack_wait *w, int status)
{
    rtmd_hashmap_remove(&acks_, rtmd_str_make(w->key, sizeof(w->key)));
    rtmd_timeout_disarm(&w->timeout);
    w->cb(w->arg, status);
    free(w);
}

static void on_ack_timeout(struct rtmd_timeout *t)
{
    ack_done(RTMD_CONTAINER_OF(t, struct ack_wait, timeout), -ETIMEDOUT);
}

int rtmd_gateway_wait_ack(uint64_t mid, const struct rtmd_app *app, struct rtmd_str receiver,
                          void (*cb)(void *arg, int status), void *arg)
{
    struct ack_wait *w = rtmd_calloc(1, sizeof(*w));
    w->mid = mid;
    memcpy(w->key, &mid, sizeof(w->key));
    w->app = app;
    memcpy(w->uid, receiver.p, receiver.len);
    w->uid_len = (uint8_t)receiver.len;
    w->cb = cb;
    w->arg = arg;
    rtmd_timeout_init(&w->timeout);
    rtmd_timeout_arm(&ack_timeouts_, &w->timeout);
    rtmd_hashmap_put(&acks_, rtmd_str_make(w->key, sizeof(w->key)), w);
    return 0;
}

/* A client acked mid: completes a waiter if that client is its receiver. */
void gw_ack(const struct rtmd_session *s, uint64_t mid)
{
    char key[8];
    memcpy(key, &mid, sizeof(key));
    struct ack_wait *w = rtmd_hashmap_get(&acks_, rtmd_str_make(key, sizeof(key)));
    if (w && w->app == s->app && w->uid_len == s->uid_len &&
        memcmp(w->uid, s->uid, s->uid_len) == 0)
        ack_done(w, 0);
}

/* ---- setup ------------------------------------------------------------------------------ */

void gw_deliver_init(void)
{
    initialized_ = true;
    rtmd_hashmap_init(&acks_);
    rtmd_timeout_queue_init(&ack_timeouts_, gw_cfg->limits.peer_ack_timeout_ms, on_ack_timeout);
    rtmd_buf_init(&json_, SIZE_MAX);
    rtmd_buf_init(&framed_, SIZE_MAX);
}

void gw_deliver_abort_waits(void)
{
    /* Waiters answer now (408): the receivers can no longer ack. */
    struct rtmd_str k;
    void *v;
    size_t it = 0;
    while (rtmd_hashmap_next(&acks_, &it, &k, &v)) {
        ack_done(v, -ETIMEDOUT);
        it = 0;
    }
}

void gw_deliver_shutdown(void)
{
    if (!initialized_)
        return;
    initialized_ = false;
    struct rtmd_list *n;
    while ((n = rtmd_list_first(&jobs_))) {
        rtmd_list_remove(n);
        job_free(RTMD_CONTAINER_OF(n, struct fanout_job, link));
    }
    if (run_scheduled_)
        rtmd_defer_cancel(&run_);
    run_scheduled_ = false;
    gw_deliver_abort_waits();
    rtmd_hashmap_free(&acks_);
    rtmd_timeout_queue_close(&ack_timeouts_);
    rtmd_buf_free(&json_);
    rtmd_buf_free(&framed_);
}
