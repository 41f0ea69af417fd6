/*
 * deliver.c — pushing to this node's clients: peer messages and channel
 * fan-out (the delivery table messaging/ calls), member_joined/member_left,
 * and the one path that cuts a client off for its output.
 *
 * Fan-out: a push is framed once (one WebSocket frame for all receivers)
 * and shared by reference. A channel of at most FANOUT_DIRECT_MAX receivers
 * with nothing queued is written at once with rtmd_conn_write_buffered(),
 * so a connection that gets several pushes in one loop iteration costs one
 * write. A larger one becomes a job: the receivers are snapshotted
 * (connection references) and a cursor sweeps them round and round, at most
 * FANOUT_PASS writes per pass of the check phase, so a 10,000-member
 * channel never holds the loop for long. A message for the same channel and
 * membership joins the job at the cursor, wherever the cursor is; each
 * receiver, when the cursor reaches it, gets in one write every message that
 * joined since its previous turn, and a message leaves the job once the
 * cursor has gone round once since it joined. So a message waits at most one
 * sweep, not the rest of the sweep in progress and then its own, and every
 * receiver sees a channel's messages in the order they were sent. A receiver
 * whose unsent output passes ws_output_budget is disconnected (its session
 * ends as for any disconnect) instead of being buffered for.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "core/hashmap.h"
#include "core/json.h"
#include "core/log.h"
#include "core/loop.h"
#include "gateway/gateway.h"
#include "gateway/internal.h"

#ifndef FANOUT_PASS
/* Writes (receivers reached) per check-phase pass. Between passes the loop
 * reads its sockets, so this also bounds how long a new message waits to be
 * read before it joins a sweep: 512 writes are ~5 ms here, 4096 were ~40 ms
 * (p99 at 10,000 members x 100 msg/s: ~108 -> ~85 ms; 128-1024 alike).
 * -DFANOUT_PASS=N overrides it for benchmarks. */
#define FANOUT_PASS 512
#endif
#define FANOUT_DIRECT_MAX 4096 /* receivers written at once when nothing is queued */
#define SNAPSHOT_STACK    64
#define JOB_FRAMES_MAX    64 /* messages in one job at once (a ring) */

struct frame {
    uint32_t refs;
    uint64_t made_ns; /* uv_hrtime() when the message reached delivery */
    size_t len;
    char data[];
};

/* One message of a job, the receiver it must skip (its sender), and the
 * job's turn count when it joined: it goes to turns [turn, turn + n). */
struct job_frame {
    struct frame *frame;
    const struct rtmd_conn *skip;
    uint64_t turn;
};

/* Receivers snapshotted once, swept round and round by a cursor, and the
 * messages for exactly that set (a ring, oldest first): a message for a
 * channel whose membership has not changed since the job began (same
 * generation) joins it while it is the last job queued. */
struct fanout_job {
    struct rtmd_list link;
    const struct rtmd_channel *ch;
    uint64_t gen;
    struct job_frame frames[JOB_FRAMES_MAX];
    size_t head, n_frames;
    uint64_t turns; /* receivers reached so far */
    struct rtmd_conn **conns;
    size_t n, next; /* next: the cursor */
};

/* ---- frames --------------------------------------------------------------- */

static struct frame *frame_make(struct rtmd_gateway *gw)
{
    rtmd_buf_reset(&gw->framed);
    if (rtmd_ws_frame_text(&gw->framed, gw->json.data, gw->json.len) < 0)
        return NULL;
    struct frame *f = rtmd_malloc(sizeof(*f) + gw->framed.len);
    f->refs = 1;
    f->made_ns = uv_hrtime();
    f->len = gw->framed.len;
    memcpy(f->data, gw->framed.data, gw->framed.len);
    return f;
}

static void frame_release(struct frame *f)
{
    if (--f->refs == 0)
        free(f);
}

/* Writes one push; true when the receiver is over its budget. A client
 * whose login is not answered yet gets it after the answer (and after its
 * offline messages), so nothing overtakes them. now_ns: the time, for
 * rtmd_push_duration_seconds (the push is written to the socket before the
 * loop sleeps next). */
static bool push(struct rtmd_gateway *gw, struct rtmd_conn *conn, const struct frame *f,
                 uint64_t now_ns)
{
    struct gw_client *c = conn->user;
    if (rtmd_conn_closing(conn))
        return false;
    gw->pushes++;
    rtmd_histogram_observe(&gw->push_duration, now_ns > f->made_ns ? now_ns - f->made_ns : 0);
    if (c && !c->ready) {
        if (rtmd_buf_append(&c->held, f->data, f->len) < 0)
            return true;
        return c->held.len > gw->cfg->limits.ws_output_budget;
    }
    if (rtmd_conn_write_buffered(conn, f->data, f->len) < 0)
        return false;
    return rtmd_conn_unsent(conn) > gw->cfg->limits.ws_output_budget;
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

void gw_cut_off(struct rtmd_gateway *gw, struct rtmd_conn *conn, const char *why)
{
    struct gw_client *c = conn->user;
    if (rtmd_conn_closing(conn) || (c && c->cut))
        return;
    if (c)
        c->cut = true; /* one cut, counted once, however many pushes found it */
    gw->cut_offs++;
    rtmd_log_info("gateway", "conn=%llu over its output budget (%zu bytes unsent) and %s: closing",
                  (unsigned long long)conn->id, rtmd_conn_unsent(conn), why);
    rtmd_conn_pause_read(conn);
    struct cut *k = rtmd_malloc(sizeof(*k));
    k->conn = conn;
    rtmd_conn_ref(conn);
    rtmd_defer(&k->d, on_cut);
}

/* ---- the fan-out queue ------------------------------------------------------ */

static void run_jobs(struct rtmd_deferred *d);

static void schedule(struct rtmd_gateway *gw)
{
    if (!gw->run_scheduled) {
        gw->run_scheduled = true;
        rtmd_defer(&gw->run, run_jobs);
    }
}

static void job_free(struct fanout_job *job)
{
    for (size_t i = 0; i < job->n; i++)
        rtmd_conn_unref(job->conns[i]);
    for (size_t i = 0; i < job->n_frames; i++)
        frame_release(job->frames[(job->head + i) % JOB_FRAMES_MAX].frame);
    free(job->conns);
    free(job);
}

static void job_add(struct fanout_job *job, struct frame *f, const struct rtmd_conn *skip)
{
    f->refs++;
    job->frames[(job->head + job->n_frames++) % JOB_FRAMES_MAX] =
        (struct job_frame){f, skip, job->turns};
}

/* Writes a job's live messages to the receiver at the cursor, in one write
 * (frames shared, not copied, when nothing is buffered before them); true
 * when it went over budget. */
static bool push_frames(struct rtmd_gateway *gw, struct rtmd_conn *conn,
                        const struct fanout_job *job)
{
    struct gw_client *c = conn->user;
    uint64_t now = uv_hrtime();
    if (rtmd_conn_closing(conn))
        return false;
    if (c && !c->ready) {
        bool over = false;
        for (size_t i = 0; i < job->n_frames; i++) {
            const struct job_frame *jf = &job->frames[(job->head + i) % JOB_FRAMES_MAX];
            if (jf->skip != conn)
                over |= push(gw, conn, jf->frame, now);
        }
        return over;
    }
    uv_buf_t bufs[JOB_FRAMES_MAX];
    unsigned nb = 0;
    for (size_t i = 0; i < job->n_frames; i++) {
        const struct job_frame *jf = &job->frames[(job->head + i) % JOB_FRAMES_MAX];
        if (jf->skip == conn)
            continue;
        gw->pushes++;
        rtmd_histogram_observe(&gw->push_duration,
                               now > jf->frame->made_ns ? now - jf->frame->made_ns : 0);
        bufs[nb++] = uv_buf_init(jf->frame->data, (unsigned)jf->frame->len);
    }
    if (nb == 0 || rtmd_conn_writev(conn, bufs, nb) < 0)
        return false;
    return rtmd_conn_unsent(conn) > gw->cfg->limits.ws_output_budget;
}

static void run_jobs(struct rtmd_deferred *d)
{
    struct rtmd_gateway *gw = RTMD_CONTAINER_OF(d, struct rtmd_gateway, run);
    gw->run_scheduled = false;
    size_t budget = FANOUT_PASS;
    struct rtmd_list *n;
    while (budget > 0 && (n = rtmd_list_first(&gw->jobs))) {
        struct fanout_job *job = RTMD_CONTAINER_OF(n, struct fanout_job, link);
        for (; budget > 0; budget--) {
            /* Messages that have been round once leave. */
            while (job->n_frames && job->frames[job->head].turn + job->n <= job->turns) {
                frame_release(job->frames[job->head].frame);
                job->head = (job->head + 1) % JOB_FRAMES_MAX;
                job->n_frames--;
            }
            if (job->n_frames == 0)
                break;
            struct rtmd_conn *conn = job->conns[job->next];
            job->next = (job->next + 1) % job->n;
            job->turns++;
            if (push_frames(gw, conn, job))
                gw_cut_off(gw, conn, "does not read its pushes");
        }
        if (job->n_frames == 0) {
            rtmd_list_remove(&job->link);
            job_free(job);
        }
    }
    if (!rtmd_list_empty(&gw->jobs))
        schedule(gw);
}

/* Sends f to every member of ch but skip (may be NULL); returns how many
 * receivers it goes to. */
static size_t fan_out(struct rtmd_gateway *gw, struct rtmd_channel *ch, struct frame *f,
                      const struct rtmd_conn *skip)
{
    struct rtmd_list *tail = gw->jobs.prev;
    if (tail != &gw->jobs) {
        struct fanout_job *job = RTMD_CONTAINER_OF(tail, struct fanout_job, link);
        if (job->ch == ch && job->gen == ch->gen && job->n_frames < JOB_FRAMES_MAX) {
            job_add(job, f, skip);
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
    if (rtmd_list_empty(&gw->jobs) && n <= FANOUT_DIRECT_MAX) {
        /* Nothing queued ahead of it and small enough: deliver now. Receivers
         * over budget are cut off after the loop. */
        size_t slow = 0, sent = 0;
        uint64_t now = uv_hrtime();
        for (size_t i = 0; i < n; i++) {
            bool over = conns[i] != skip && (sent++, push(gw, conns[i], f, now));
            if (over)
                conns[slow++] = conns[i];
            else
                rtmd_conn_unref(conns[i]);
        }
        for (size_t i = 0; i < slow; i++) {
            gw_cut_off(gw, conns[i], "does not read its pushes");
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
    job_add(job, f, skip);
    rtmd_list_insert_tail(&gw->jobs, &job->link);
    schedule(gw);
    return n;
}

/* A message push: {"op":op,<key>:<channel or mid>,"from":..,"payload":..,"ms":..}
 * (the key order of the client protocol), framed once. */
static struct frame *message_frame(struct rtmd_gateway *gw, const char *op, const char *key,
                                   struct rtmd_str channel, uint64_t mid, struct rtmd_str from,
                                   struct rtmd_str payload, uint64_t ms)
{
    struct rtmd_json j;
    rtmd_buf_reset(&gw->json);
    rtmd_json_init(&j, &gw->json);
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
    return rtmd_json_finish(&j) == 0 ? frame_make(gw) : NULL;
}

/* The connection of a session on this node, or NULL. */
static const struct rtmd_conn *session_conn(const struct rtmd_session *s)
{
    const struct gw_client *c = s ? s->owner : NULL;
    return c ? c->conn : NULL;
}

/* ---- the delivery table messaging calls ---------------------------------------------------- */

static size_t deliver_channel(void *ctx, struct rtmd_channel *ch, const struct rtmd_session *skip,
                              struct rtmd_str from, struct rtmd_str payload, uint64_t ms)
{
    struct rtmd_gateway *gw = ctx;
    struct frame *f = message_frame(gw, "channel_message", "channel",
                                    rtmd_str_make(ch->name, ch->name_len), 0, from, payload, ms);
    if (!f)
        return 0;
    size_t n = fan_out(gw, ch, f, session_conn(skip));
    frame_release(f);
    return n;
}

bool gw_push_peer(struct rtmd_gateway *gw, const struct rtmd_app *app, struct rtmd_str from,
                  struct rtmd_str to, struct rtmd_str payload, uint64_t ms, uint64_t mid)
{
    struct rtmd_session *s = rtmd_presence_find(app, to);
    struct gw_client *c = s ? s->owner : NULL;
    if (!c || !c->conn || rtmd_conn_closing(c->conn))
        return false;
    struct frame *f =
        message_frame(gw, "peer_message", "mid", RTMD_STR_NULL, mid, from, payload, ms);
    if (!f)
        return false;
    struct rtmd_conn *conn = c->conn;
    rtmd_conn_ref(conn);
    if (push(gw, conn, f, f->made_ns))
        gw_cut_off(gw, conn, "does not read its pushes");
    rtmd_conn_unref(conn);
    frame_release(f);
    return true;
}

static bool deliver_peer(void *ctx, const struct rtmd_app *app, struct rtmd_str from,
                         struct rtmd_str to, struct rtmd_str payload, uint64_t ms, uint64_t mid)
{
    return gw_push_peer(ctx, app, from, to, payload, ms, mid);
}

/* ---- member events ------------------------------------------------------------------------- */

/* member_joined / member_left of uid to ch's members here but skip. */
static void member_push(struct rtmd_gateway *gw, struct rtmd_channel *ch, struct rtmd_str uid,
                        bool joined, const struct rtmd_conn *skip)
{
    /* As Agora's SDKs: no member events in big channels (they cost members²). */
    if (ch->n_members > gw->cfg->limits.member_events_max)
        return;
    struct rtmd_json j;
    rtmd_buf_reset(&gw->json);
    rtmd_json_init(&j, &gw->json);
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "op");
    rtmd_json_cstr(&j, joined ? "member_joined" : "member_left");
    rtmd_json_key(&j, "channel");
    rtmd_json_str(&j, rtmd_str_make(ch->name, ch->name_len));
    rtmd_json_key(&j, "uid");
    rtmd_json_str(&j, uid);
    rtmd_json_obj_end(&j);
    struct frame *f = rtmd_json_finish(&j) == 0 ? frame_make(gw) : NULL;
    if (!f)
        return;
    fan_out(gw, ch, f, skip);
    frame_release(f);
}

/* The presence hook: s joined or left ch here. Its other members here are
 * told, and (through messaging) those on other nodes. */
void gw_member_changed(void *ctx, struct rtmd_channel *ch, struct rtmd_session *s, bool joined)
{
    struct rtmd_gateway *gw = ctx;
    struct rtmd_str uid = rtmd_str_make(s->uid, s->uid_len);
    rtmd_messaging_member_changed(gw->messaging, ch, uid, joined);
    if (ch->n_members == 0 || (ch->n_members == 1 && ch->members[0] == s))
        return;
    member_push(gw, ch, uid, joined, session_conn(s));
}

/* A member on another node joined or left (the delivery table). */
static void deliver_member(void *ctx, struct rtmd_channel *ch, struct rtmd_str uid, bool joined)
{
    if (ch->n_members)
        member_push(ctx, ch, uid, joined, NULL);
}

static const struct rtmd_delivery delivery_ = {
    .peer = deliver_peer,
    .channel = deliver_channel,
    .member = deliver_member,
};

/* ---- setup ------------------------------------------------------------------------------ */

void gw_deliver_init(struct rtmd_gateway *gw)
{
    gw->initialized = true;
    rtmd_list_init(&gw->jobs);
    rtmd_buf_init(&gw->json, SIZE_MAX);
    rtmd_buf_init(&gw->framed, SIZE_MAX);
    rtmd_messaging_set_local(gw->messaging, &delivery_, gw);
}

void gw_deliver_shutdown(struct rtmd_gateway *gw)
{
    gw->initialized = false;
    struct rtmd_list *n;
    while ((n = rtmd_list_first(&gw->jobs))) {
        rtmd_list_remove(n);
        job_free(RTMD_CONTAINER_OF(n, struct fanout_job, link));
    }
    if (gw->run_scheduled)
        rtmd_defer_cancel(&gw->run);
    gw->run_scheduled = false;
    rtmd_messaging_set_local(gw->messaging, NULL, NULL);
    rtmd_buf_free(&gw->json);
    rtmd_buf_free(&gw->framed);
}
