/*
 * messaging.c — the send path and the waits for acks (messaging.h).
 */
#include "messaging/messaging.h"

#include <stdlib.h>

#include "core/alloc.h"
#include "core/ids.h"

/* One send's outstanding work: store calls and an ack. */
struct send {
    struct rtmd_messaging *m;
    rtmd_send_cb cb;
    void *arg;
    int outstanding;
    struct rtmd_send_result r;
};

struct ack_wait {
    uint64_t mid;
    char key[8]; /* the hash-map key: mid's bytes */
    const struct rtmd_app *app;
    char uid[RTMD_ID_MAX + 1];
    uint8_t uid_len;
    struct rtmd_timeout timeout;
    struct rtmd_messaging *m;
    struct send *send;
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

static void ack_done(struct ack_wait *w, int status)
{
    rtmd_hashmap_remove(&w->m->acks, rtmd_str_make(w->key, sizeof(w->key)));
    rtmd_timeout_disarm(&w->timeout);
    struct send *s = w->send;
    free(w);
    s->r.ack_status = status;
    send_done(s);
}

static void on_ack_timeout(struct rtmd_timeout *t)
{
    ack_done(RTMD_CONTAINER_OF(t, struct ack_wait, timeout), -ETIMEDOUT);
}

static void wait_ack(struct send *s, uint64_t mid, const struct rtmd_app *app,
                     struct rtmd_str receiver)
{
    struct rtmd_messaging *m = s->m;
    struct ack_wait *w = rtmd_calloc(1, sizeof(*w));
    w->mid = mid;
    memcpy(w->key, &mid, sizeof(w->key));
    w->app = app;
    memcpy(w->uid, receiver.p, receiver.len);
    w->uid_len = (uint8_t)receiver.len;
    w->m = m;
    w->send = s;
    rtmd_timeout_init(&w->timeout);
    rtmd_timeout_arm(&m->ack_timeouts, &w->timeout);
    rtmd_hashmap_put(&m->acks, rtmd_str_make(w->key, sizeof(w->key)), w);
    s->outstanding++;
}

void rtmd_messaging_ack(struct rtmd_messaging *m, const struct rtmd_session *s, uint64_t mid)
{
    char key[8];
    memcpy(key, &mid, sizeof(key));
    struct ack_wait *w = rtmd_hashmap_get(&m->acks, rtmd_str_make(key, sizeof(key)));
    if (w && w->app == s->app && w->uid_len == s->uid_len &&
        memcmp(w->uid, s->uid, s->uid_len) == 0)
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

static void send_peer(struct send *s, const struct rtmd_send_request *rq,
                      const struct rtmd_message *msg)
{
    struct rtmd_messaging *m = s->m;
    const struct rtmd_limits *lim = &m->cfg->limits;
    uint64_t mid;
    s->r.delivered = deliver_peer(m, rq->app, rq->from, rq->to, rq->payload, rq->ms, &mid);
    if (rq->history)
        keep(s, rtmd_store_history_put(m->store, rq->app, msg, NULL, 0, on_kept, s));
    if (!s->r.delivered && rq->offline)
        keep(s, rtmd_store_offline_put(m->store, rq->app, msg, lim->offline_max_per_user,
                                       (uint64_t)lim->offline_retention_s * 1000, on_kept, s));
    if (rq->wait_ack && s->r.delivered)
        wait_ack(s, mid, rq->app, rq->to);
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
}

int rtmd_messaging_send(struct rtmd_messaging *m, const struct rtmd_send_request *rq,
                        struct rtmd_send_result *now, rtmd_send_cb cb, void *arg)
{
    if (!rq->app || !rtmd_id_valid(rq->from) || !rtmd_id_valid(rq->to) || !rq->payload.p ||
        (rq->type != RTMD_MSG_PEER && rq->type != RTMD_MSG_CHANNEL) ||
        (rq->type == RTMD_MSG_CHANNEL && (rq->offline || rq->wait_ack)))
        return -EINVAL;
    struct rtmd_message msg = {rq->type, rq->from, rq->to, rq->payload, rq->ms};
    struct send *s = rtmd_calloc(1, sizeof(*s));
    s->m = m;
    s->cb = cb;
    s->arg = arg;
    s->outstanding = 1; /* released below */
    if (rq->type == RTMD_MSG_PEER)
        send_peer(s, rq, &msg);
    else
        send_channel(s, rq, &msg);
    if (s->outstanding > 1) {
        send_done(s);
        return 0;
    }
    *now = s->r;
    free(s);
    return 1;
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
