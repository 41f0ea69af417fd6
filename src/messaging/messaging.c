/*
 * messaging.c — the send path and the waits for acks (messaging.h).
 */
#include "messaging/messaging.h"

#include <stdlib.h>

#include "core/alloc.h"
#include "core/ids.h"
#include "presence/tap.h"

/* One send's outstanding work: store calls and an ack. */
struct send {
    struct rtmd_messaging *m;
    rtmd_send_cb cb;
    void *arg;
    int outstanding;
    struct rtmd_send_result r;
    const struct rtmd_app *app_for_route; /* a peer message routed to another node */
};

/* A wait for an ack, by id (a hash-map key of its 8 bytes):
 *   LOCAL    a message this node delivered (id = its mid) to its client
 *            `uid`, for a send here that waits;
 *   REMOTE   a message another node delivered for a send here that waits
 *            (id = the wait id that node sends back);
 *   FORWARD  a message from another node's send that waits, delivered here
 *            (id = its mid): the client's ack goes back to that node. */
enum wait_kind { WAIT_LOCAL, WAIT_REMOTE, WAIT_FORWARD };

struct ack_wait {
    uint64_t id;
    char key[8];
    enum wait_kind kind;
    const struct rtmd_app *app;
    char uid[RTMD_ID_MAX + 1];
    uint8_t uid_len;
    struct rtmd_timeout timeout;
    struct rtmd_messaging *m;
    struct send *send; /* LOCAL, REMOTE */
    char *ack_ctx;     /* FORWARD: where the ack goes (owned) */
    size_t ack_ctx_len;
};

static void send_done(struct send *s)
{
    if (--s->outstanding > 0)
        return;
    s->cb(s->arg, &s->r);
    free(s);
}

static void on_kept(void *arg, int status)
{
    struct send *s = arg;
    if (status < 0 && s->r.status == 0)
        s->r.status = status;
    send_done(s);
}

/* Counts a store call made on behalf of s; a synchronous failure is its
 * status. */
static void keep(struct send *s, int r)
{
    if (r == 0)
        s->outstanding++;
    else if (s->r.status == 0)
        s->r.status = r;
}

/* ---- acks ---------------------------------------------------------------------------------- */

static void wait_free(struct ack_wait *w)
{
    rtmd_hashmap_remove(&w->m->acks, rtmd_str_make(w->key, sizeof(w->key)));
    rtmd_timeout_disarm(&w->timeout);
    free(w->ack_ctx);
    free(w);
}

static void ack_done(struct ack_wait *w, int status)
{
    struct send *s = w->send;
    wait_free(w);
    if (s) {
        s->r.ack_status = status;
        send_done(s);
    }
}

static void on_ack_timeout(struct rtmd_timeout *t)
{
    ack_done(RTMD_CONTAINER_OF(t, struct ack_wait, timeout), -ETIMEDOUT);
}

static struct ack_wait *wait_new(struct rtmd_messaging *m, enum wait_kind kind, uint64_t id,
                                 const struct rtmd_app *app, struct rtmd_str receiver)
{
    struct ack_wait *w = rtmd_calloc(1, sizeof(*w));
    w->id = id;
    memcpy(w->key, &id, sizeof(w->key));
    w->kind = kind;
    w->app = app;
    memcpy(w->uid, receiver.p, receiver.len);
    w->uid_len = (uint8_t)receiver.len;
    w->m = m;
    rtmd_timeout_init(&w->timeout);
    rtmd_timeout_arm(&m->ack_timeouts, &w->timeout);
    rtmd_hashmap_put(&m->acks, rtmd_str_make(w->key, sizeof(w->key)), w);
    return w;
}

static struct ack_wait *wait_find(struct rtmd_messaging *m, uint64_t id)
{
    char key[8];
    memcpy(key, &id, sizeof(key));
    return rtmd_hashmap_get(&m->acks, rtmd_str_make(key, sizeof(key)));
}

static void wait_ack(struct send *s, enum wait_kind kind, uint64_t id, const struct rtmd_app *app,
                     struct rtmd_str receiver)
{
    struct ack_wait *w = wait_new(s->m, kind, id, app, receiver);
    w->send = s;
    s->outstanding++;
}

void rtmd_messaging_ack(struct rtmd_messaging *m, const struct rtmd_session *s, uint64_t mid)
{
    struct ack_wait *w = wait_find(m, mid);
    if (!w || w->kind == WAIT_REMOTE || w->app != s->app || w->uid_len != s->uid_len ||
        memcmp(w->uid, s->uid, s->uid_len) != 0)
        return;
    if (w->kind == WAIT_FORWARD) {
        /* The sender is on another node: the ack goes there. */
        if (m->store->type->route_ack)
            m->store->type->route_ack(m->store, w->app, rtmd_str_make(w->ack_ctx, w->ack_ctx_len));
        wait_free(w);
        return;
    }
    ack_done(w, 0);
}

void rtmd_messaging_abort_waits(struct rtmd_messaging *m)
{
    struct rtmd_str k;
    void *v;
    size_t it = 0;
    while (rtmd_hashmap_next(&m->acks, &it, &k, &v)) {
        ack_done(v, -ETIMEDOUT);
        it = 0;
    }
}

/* ---- sending ------------------------------------------------------------------------------- */

size_t rtmd_messaging_channel_recipients(const struct rtmd_channel *ch, struct rtmd_str from,
                                         struct rtmd_str **out)
{
    *out = NULL;
    if (!ch || ch->n_members == 0)
        return 0;
    struct rtmd_str *r = rtmd_malloc(ch->n_members * sizeof(*r));
    size_t n = 0;
    for (uint32_t i = 0; i < ch->n_members; i++) {
        const struct rtmd_session *s = ch->members[i];
        if (!rtmd_str_eq(rtmd_str_make(s->uid, s->uid_len), from))
            r[n++] = rtmd_str_make(s->uid, s->uid_len);
    }
    *out = r;
    return n;
}

/* Delivers to this node's client of `to`; *mid is the message's id (taken
 * only when it was delivered). */
static bool deliver_peer(struct rtmd_messaging *m, const struct rtmd_app *app, struct rtmd_str from,
                         struct rtmd_str to, struct rtmd_str payload, uint64_t ms, uint64_t *mid)
{
    *mid = m->next_mid;
    if (!m->local || !m->local->peer(m->local_ctx, app, from, to, payload, ms, *mid))
        return false;
    m->next_mid++;
    return true;
}

bool rtmd_messaging_deliver_local(struct rtmd_messaging *m, const struct rtmd_app *app,
                                  struct rtmd_str from, struct rtmd_str to, struct rtmd_str payload,
                                  uint64_t ms)
{
    uint64_t mid;
    return deliver_peer(m, app, from, to, payload, ms, &mid);
}

/* A peer message routed to another node: its answer says whether that
 * node held the receiver's session. */
struct routed {
    struct send *s;
    struct rtmd_message msg; /* strings follow */
    uint64_t wait_id;        /* 0: no wait */
    bool offline;
    char bytes[];
};

static void on_routed(void *arg, int status, bool delivered)
{
    struct routed *rt = arg;
    struct send *s = rt->s;
    struct rtmd_messaging *m = s->m;
    const struct rtmd_limits *lim = &m->cfg->limits;
    if (status < 0 && s->r.status == 0)
        s->r.status = status;
    s->r.delivered = status == 0 && delivered;
    struct ack_wait *w = rt->wait_id ? wait_find(m, rt->wait_id) : NULL;
    if (w && !s->r.delivered) {
        /* Nobody will ack what was not delivered. */
        wait_free(w);
        s->outstanding--;
    }
    if (!s->r.delivered && rt->offline && status == 0)
        keep(s,
             rtmd_store_offline_put(m->store, s->app_for_route, &rt->msg, lim->offline_max_per_user,
                                    (uint64_t)lim->offline_retention_s * 1000, on_kept, s));
    free(rt);
    send_done(s);
}

static void send_peer(struct send *s, const struct rtmd_send_request *rq,
                      const struct rtmd_message *msg)
{
    struct rtmd_messaging *m = s->m;
    const struct rtmd_limits *lim = &m->cfg->limits;
    uint64_t mid;
    s->r.delivered = deliver_peer(m, rq->app, rq->from, rq->to, rq->payload, rq->ms, &mid);
    if (rq->history)
        keep(s, rtmd_store_history_put(m->store, rq->app, msg, NULL, 0, on_kept, s));
    if (!s->r.delivered && rtmd_store_routes(m->store)) {
        /* Not here: the node that holds the receiver's session, if any.
         * A wait is registered first: the ack may come back before the
         * routing's own answer. */
        size_t bytes = msg->src.len + msg->dst.len + msg->payload.len;
        struct routed *rt = rtmd_malloc(sizeof(*rt) + bytes);
        rt->s = s;
        rt->offline = rq->offline;
        char *at = rt->bytes;
        rt->msg = *msg;
        rt->msg.src = rtmd_str_make(memcpy(at, msg->src.p, msg->src.len), msg->src.len);
        at += msg->src.len;
        rt->msg.dst = rtmd_str_make(memcpy(at, msg->dst.p, msg->dst.len), msg->dst.len);
        at += msg->dst.len;
        rt->msg.payload =
            rtmd_str_make(memcpy(at, msg->payload.p, msg->payload.len), msg->payload.len);
        rt->wait_id = rq->wait_ack ? m->next_mid++ : 0;
        s->app_for_route = rq->app;
        if (rt->wait_id)
            wait_ack(s, WAIT_REMOTE, rt->wait_id, rq->app, rq->to);
        int r = m->store->type->route_peer(m->store, rq->app, &rt->msg, rq->wait_ack, rt->wait_id,
                                           on_routed, rt);
        if (r == 0) {
            s->outstanding++;
            return;
        }
        if (rt->wait_id) {
            wait_free(wait_find(m, rt->wait_id));
            s->outstanding--;
        }
        free(rt);
        if (s->r.status == 0)
            s->r.status = r;
        return;
    }
    if (!s->r.delivered && rq->offline)
        keep(s, rtmd_store_offline_put(m->store, rq->app, msg, lim->offline_max_per_user,
                                       (uint64_t)lim->offline_retention_s * 1000, on_kept, s));
    if (rq->wait_ack && s->r.delivered)
        wait_ack(s, WAIT_LOCAL, mid, rq->app, rq->to);
}

static void send_channel(struct send *s, const struct rtmd_send_request *rq,
                         const struct rtmd_message *msg)
{
    struct rtmd_messaging *m = s->m;
    s->r.delivered = true;
    if (rq->history) {
        /* Who it is delivered to, before the delivery changes nothing. */
        struct rtmd_str *recipients;
        size_t n = rtmd_messaging_channel_recipients(rq->channel, rq->from, &recipients);
        keep(s, rtmd_store_history_put(m->store, rq->app, msg, recipients, n, on_kept, s));
        free(recipients);
    }
    if (rq->channel && m->local)
        m->local->channel(m->local_ctx, rq->channel, rq->sender, rq->from, rq->payload, rq->ms);
    /* The members on other nodes (their nodes fan it out). */
    if (m->store->type->route_channel)
        m->store->type->route_channel(m->store, rq->app, msg);
}

int rtmd_messaging_send(struct rtmd_messaging *m, const struct rtmd_send_request *rq,
                        struct rtmd_send_result *now, rtmd_send_cb cb, void *arg)
{
    if (!rq->app || !rtmd_id_valid(rq->from) || !rtmd_id_valid(rq->to) || !rq->payload.p ||
        (rq->type != RTMD_MSG_PEER && rq->type != RTMD_MSG_CHANNEL) ||
        (rq->type == RTMD_MSG_CHANNEL && (rq->offline || rq->wait_ack)))
        return -EINVAL;
    struct rtmd_message msg = {rq->type, rq->from, rq->to, rq->payload, rq->ms};
    rtmd_tap_message(rq->app, rq->type, rq->from, rq->to, rq->payload, rq->ms);
    struct send *s = rtmd_calloc(1, sizeof(*s));
    s->m = m;
    s->cb = cb;
    s->arg = arg;
    s->outstanding = 1; /* released below */
    if (rq->type == RTMD_MSG_PEER)
        send_peer(s, rq, &msg);
    else
        send_channel(s, rq, &msg);
    /* A webhook wants messages: the send is answered once its event is
     * durable in the outbox (docs/WEBHOOKS.md). */
    if (rtmd_store_outbox_wants(m->store, RTMD_OUTBOX_MESSAGES))
        keep(s, rtmd_store_outbox_message(m->store, rq->app, &msg, on_kept, s));
    if (s->outstanding > 1) {
        send_done(s);
        return 0;
    }
    *now = s->r;
    free(s);
    return 1;
}

/* ---- what other nodes send ------------------------------------------------------------------ */

static bool on_route_peer(void *ctx, const struct rtmd_app *app, struct rtmd_str from,
                          struct rtmd_str to, struct rtmd_str payload, uint64_t ms, bool wait,
                          struct rtmd_str ack_ctx)
{
    struct rtmd_messaging *m = ctx;
    uint64_t mid;
    if (!rtmd_id_valid(from) || !rtmd_id_valid(to) ||
        !deliver_peer(m, app, from, to, payload, ms, &mid))
        return false;
    if (wait && ack_ctx.len) {
        struct ack_wait *w = wait_new(m, WAIT_FORWARD, mid, app, to);
        w->ack_ctx = rtmd_strndup(ack_ctx.p, ack_ctx.len);
        w->ack_ctx_len = ack_ctx.len;
    }
    return true;
}

static void on_route_channel(void *ctx, const struct rtmd_app *app, struct rtmd_str channel,
                             struct rtmd_str from, struct rtmd_str payload, uint64_t ms)
{
    struct rtmd_messaging *m = ctx;
    struct rtmd_channel *ch = rtmd_presence_channel(app, channel);
    if (ch && m->local)
        m->local->channel(m->local_ctx, ch, NULL, from, payload, ms);
}

static void on_route_member(void *ctx, const struct rtmd_app *app, struct rtmd_str channel,
                            struct rtmd_str uid, bool joined)
{
    struct rtmd_messaging *m = ctx;
    struct rtmd_channel *ch = rtmd_presence_channel(app, channel);
    if (ch && m->local && m->local->member)
        m->local->member(m->local_ctx, ch, uid, joined);
}

static void on_route_acked(void *ctx, uint64_t wait_id)
{
    struct ack_wait *w = wait_find(ctx, wait_id);
    if (w && w->kind == WAIT_REMOTE)
        ack_done(w, 0);
}

static const struct rtmd_store_route_hooks route_hooks_ = {
    .peer = on_route_peer,
    .channel = on_route_channel,
    .member = on_route_member,
    .acked = on_route_acked,
};

void rtmd_messaging_member_changed(struct rtmd_messaging *m, const struct rtmd_channel *ch,
                                   struct rtmd_str uid, bool joined)
{
    if (m->store->type->route_member)
        m->store->type->route_member(m->store, ch->app, rtmd_str_make(ch->name, ch->name_len), uid,
                                     joined);
}

/* ---- setup --------------------------------------------------------------------------------- */

int rtmd_messaging_init(struct rtmd_messaging *m, const struct rtmd_config *cfg,
                        struct rtmd_store *store)
{
    memset(m, 0, sizeof(*m));
    m->cfg = cfg;
    m->store = store;
    m->next_mid = 1;
    rtmd_hashmap_init(&m->acks);
    rtmd_timeout_queue_init(&m->ack_timeouts, cfg->limits.peer_ack_timeout_ms, on_ack_timeout);
    rtmd_store_set_routes(store, &route_hooks_, m);
    m->initialized = true;
    return 0;
}

void rtmd_messaging_set_local(struct rtmd_messaging *m, const struct rtmd_delivery *local,
                              void *ctx)
{
    m->local = local;
    m->local_ctx = ctx;
}

void rtmd_messaging_shutdown(struct rtmd_messaging *m)
{
    if (!m->initialized)
        return;
    m->initialized = false;
    rtmd_messaging_abort_waits(m);
    rtmd_hashmap_free(&m->acks);
    rtmd_timeout_queue_close(&m->ack_timeouts);
}
