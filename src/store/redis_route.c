/*
 * redis_route.c — the redis backend's delivery across nodes (store.h,
 * "Delivery across nodes"): peer messages to the node that holds the
 * receiver's session, channel messages and member events to the nodes with
 * members in the channel, acks back to the sender's node, and what arrives
 * from other nodes, handed to messaging's hooks.
 *
 * Transport: Redis 7 sharded pub/sub. Each node listens on
 * rtmd:{APPID}:to:NODE for every app (peer messages, acks, takeovers), and
 * on rtmd:c:{APPID:CHANNEL} for every channel it has members in (interest,
 * from presence). A peer message is one script call: it looks up the
 * receiver's node and publishes to it in the same step (delivered = that
 * node listens). Message formats: redis_lua.h.
 *
 * Delivery across nodes is at most once: a node that is down, or that lost
 * the receiver in between, drops what reaches it (a peer message it could
 * not deliver was already answered "delivered" on the sender's node).
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/ids.h"
#include "core/log.h"
#include "store/redis_internal.h"

#define CHANNEL_NAME_MAX (16 + RTMD_APPID_LEN + RTMD_ID_MAX)

/* rtmd:c:{APPID:CHANNEL} */
static struct rtmd_str channel_topic(char *buf, size_t cap, const struct rtmd_app *app,
                                     struct rtmd_str channel)
{
    int n = snprintf(buf, cap, "rtmd:c:{%s:%.*s}", app->id, (int)channel.len, channel.p);
    return rtmd_str_make(buf, (size_t)n);
}

/* ---- sending ------------------------------------------------------------------------------- */

struct route_call {
    struct redis_store *rs;
    rtmd_store_routed_cb cb;
    void *arg;
};

static void on_routed(void *arg, int status, const redisReply *reply)
{
    struct route_call *c = arg;
    struct redis_store *rs = c->rs;
    long long n = 0;
    if (status == 0 && !rtmd_redis_reply_int(reply, &n))
        status = RTMD_ESTORE;
    c->cb(c->arg, status, status == 0 && n > 0);
    free(c);
    rtmd_redis_call_done(rs);
}

int rtmd_redis_route_peer(struct rtmd_store *base, const struct rtmd_app *app,
                          const struct rtmd_message *m, bool wait, uint64_t wait_id,
                          rtmd_store_routed_cb cb, void *arg)
{
    struct redis_store *rs = (struct redis_store *)base;
    struct app_rs *a = rtmd_redis_app(rs, app);
    if (rs->closing)
        return RTMD_ECLOSED;
    if (!a || !cb || m->type != RTMD_MSG_PEER)
        return -EINVAL;
    struct rtmd_buf msg;
    rtmd_buf_init(&msg, SIZE_MAX);
    rtmd_buf_printf(&msg, "P\n%llu\n%s\n%.*s\n%.*s\n%llu\n",
                    (unsigned long long)(wait ? wait_id : 0), rs->node, (int)m->src.len, m->src.p,
                    (int)m->dst.len, m->dst.p, (unsigned long long)m->ms);
    rtmd_buf_append(&msg, m->payload.p, m->payload.len);
    struct route_call *c = rtmd_malloc(sizeof(*c));
    *c = (struct route_call){rs, cb, arg};
    struct rtmd_str key = rtmd_redis_app_key(a);
    struct rtmd_str args[] = {m->dst, rtmd_str_cstr(rs->node), rtmd_str_make(msg.data, msg.len)};
    int r = rtmd_redis_script(rs, RTMD_LUA_ROUTE_PEER, &key, 1, args, 3, on_routed, c);
    rtmd_buf_free(&msg);
    if (r < 0)
        free(c);
    return r == -ENOTCONN ? -ETIMEDOUT : r;
}

static void on_published(void *arg, int status, const redisReply *reply)
{
    struct redis_store *rs = arg;
    if (status < 0 || reply->type == REDIS_REPLY_ERROR)
        rtmd_log_warn("store", "redis: a message for other nodes was not sent: %s",
                      status < 0 ? rtmd_strerror(status) : reply->str);
    rtmd_redis_call_done(rs);
}

static int publish(struct redis_store *rs, struct rtmd_str topic, struct rtmd_buf *msg)
{
    int r = rtmd_redis_publish(rs, topic, rtmd_str_make(msg->data, msg->len), on_published, rs);
    rtmd_buf_free(msg);
    return r;
}

int rtmd_redis_route_channel(struct rtmd_store *base, const struct rtmd_app *app,
                             const struct rtmd_message *m)
{
    struct redis_store *rs = (struct redis_store *)base;
    if (rs->closing)
        return RTMD_ECLOSED;
    if (!rtmd_redis_app(rs, app) || m->type != RTMD_MSG_CHANNEL)
        return -EINVAL;
    char name[CHANNEL_NAME_MAX];
    struct rtmd_buf msg;
    rtmd_buf_init(&msg, SIZE_MAX);
    rtmd_buf_printf(&msg, "M\n%s\n%.*s\n%llu\n", rs->node, (int)m->src.len, m->src.p,
                    (unsigned long long)m->ms);
    rtmd_buf_append(&msg, m->payload.p, m->payload.len);
    return publish(rs, channel_topic(name, sizeof(name), app, m->dst), &msg);
}

/* "J|L\nNODE\nUID" on the channel's topic: every node but NODE tells its
 * members of the channel. */
static int member_changed(struct redis_store *rs, const struct rtmd_app *app, const char *node,
                          struct rtmd_str channel, struct rtmd_str uid, bool joined)
{
    if (rs->closing)
        return RTMD_ECLOSED;
    if (!rtmd_redis_app(rs, app))
        return -EINVAL;
    char name[CHANNEL_NAME_MAX];
    struct rtmd_buf msg;
    rtmd_buf_init(&msg, SIZE_MAX);
    rtmd_buf_printf(&msg, "%c\n%s\n%.*s", joined ? 'J' : 'L', node, (int)uid.len, uid.p);
    return publish(rs, channel_topic(name, sizeof(name), app, channel), &msg);
}

int rtmd_redis_route_member(struct rtmd_store *base, const struct rtmd_app *app,
                            struct rtmd_str channel, struct rtmd_str uid, bool joined)
{
    struct redis_store *rs = (struct redis_store *)base;
    return member_changed(rs, app, rs->node, channel, uid, joined);
}

void rtmd_redis_route_ended(struct redis_store *rs, const struct rtmd_app *app, const char *node,
                            struct rtmd_str channel, struct rtmd_str uid)
{
    if (rtmd_id_valid(channel) && rtmd_id_valid(uid))
        member_changed(rs, app, node, channel, uid, false);
}

/* ack_ctx is "ORIGIN\nWAIT", as the peer message carried them. */
int rtmd_redis_route_ack(struct rtmd_store *base, const struct rtmd_app *app,
                         struct rtmd_str ack_ctx)
{
    struct redis_store *rs = (struct redis_store *)base;
    struct app_rs *a = rtmd_redis_app(rs, app);
    if (rs->closing)
        return RTMD_ECLOSED;
    const char *nl = ack_ctx.p ? memchr(ack_ctx.p, '\n', ack_ctx.len) : NULL;
    if (!a || !nl)
        return -EINVAL;
    char topic[PREFIX_MAX + 4 + RTMD_NODE_ID_MAX];
    int n =
        snprintf(topic, sizeof(topic), "%sto:%.*s", a->prefix, (int)(nl - ack_ctx.p), ack_ctx.p);
    struct rtmd_buf msg;
    rtmd_buf_init(&msg, SIZE_MAX);
    rtmd_buf_printf(&msg, "A\n%.*s", (int)(ack_ctx.len - (size_t)(nl - ack_ctx.p) - 1), nl + 1);
    return publish(rs, rtmd_str_make(topic, (size_t)n), &msg);
}

void rtmd_redis_interest(struct rtmd_store *base, const struct rtmd_app *app,
                         struct rtmd_str channel, bool on)
{
    struct redis_store *rs = (struct redis_store *)base;
    if (rs->closing || !rtmd_redis_app(rs, app))
        return;
    char name[CHANNEL_NAME_MAX];
    struct rtmd_str topic = channel_topic(name, sizeof(name), app, channel);
    if (on)
        rtmd_redis_subscribe(rs, topic);
    else
        rtmd_redis_unsubscribe(rs, topic);
}

/* ---- receiving ------------------------------------------------------------------------------ */

/* Splits s at its first n-1 newlines into f[0..n): the last field keeps the
 * rest. False when there are fewer fields. */
static bool fields(struct rtmd_str s, struct rtmd_str *f, int n)
{
    for (int i = 0; i < n - 1; i++) {
        const char *nl = memchr(s.p, '\n', s.len);
        if (!nl)
            return false;
        f[i] = rtmd_str_make(s.p, (size_t)(nl - s.p));
        s = rtmd_str_make(nl + 1, s.len - f[i].len - 1);
    }
    f[n - 1] = s;
    return true;
}

static bool is_me(const struct redis_store *rs, struct rtmd_str node)
{
    return rtmd_str_eq_cstr(node, rs->node);
}

/* A message on rtmd:{APPID}:to:NODE (this node). */
static void to_node(struct redis_store *rs, const struct rtmd_app *app, struct rtmd_str msg)
{
    const struct rtmd_store_route_hooks *h = rs->routes;
    struct rtmd_str f[7];
    uint64_t n, ms;
    switch (msg.len ? msg.p[0] : 0) {
    case 'K': {
        /* K UID NODE|SESSION: another node took uid's session over. */
        if (!fields(msg, f, 3))
            return;
        const char *bar = NULL;
        for (size_t i = f[2].len; i-- > 0;)
            if (f[2].p[i] == '|') {
                bar = f[2].p + i;
                break;
            }
        if (!bar || rtmd_str_to_u64(rtmd_str_make(bar + 1, (size_t)(f[2].p + f[2].len - bar - 1)),
                                    UINT64_MAX, &n) < 0)
            return;
        if (rs->hooks && rs->hooks->session_taken)
            rs->hooks->session_taken(rs->hooks_ctx, app, f[1], n);
        return;
    }
    case 'P': {
        /* P WAIT ORIGIN FROM TO MS PAYLOAD */
        if (!h || !fields(msg, f, 7) || rtmd_str_to_u64(f[1], UINT64_MAX, &n) < 0 ||
            rtmd_str_to_u64(f[5], UINT64_MAX, &ms) < 0)
            return;
        /* The ack, if awaited, goes back as "ORIGIN\nWAIT". */
        char ctx[RTMD_NODE_ID_MAX + 24];
        int k =
            snprintf(ctx, sizeof(ctx), "%.*s\n%llu", (int)f[2].len, f[2].p, (unsigned long long)n);
        h->peer(rs->routes_ctx, app, f[3], f[4], f[6], ms, n != 0, rtmd_str_make(ctx, (size_t)k));
        return;
    }
    case 'A':
        /* A WAIT */
        if (h && fields(msg, f, 2) && rtmd_str_to_u64(f[1], UINT64_MAX, &n) == 0)
            h->acked(rs->routes_ctx, n);
        return;
    default: return;
    }
}

/* A message on rtmd:c:{APPID:CHANNEL}. */
static void to_channel(struct redis_store *rs, const struct rtmd_app *app, struct rtmd_str channel,
                       struct rtmd_str msg)
{
    const struct rtmd_store_route_hooks *h = rs->routes;
    struct rtmd_str f[5];
    uint64_t ms;
    if (!h || msg.len == 0)
        return;
    if (msg.p[0] == 'M' && fields(msg, f, 5) && !is_me(rs, f[1]) &&
        rtmd_str_to_u64(f[3], UINT64_MAX, &ms) == 0)
        h->channel(rs->routes_ctx, app, channel, f[2], f[4], ms);
    else if ((msg.p[0] == 'J' || msg.p[0] == 'L') && fields(msg, f, 3) && !is_me(rs, f[1]) &&
             rtmd_id_valid(f[2]))
        h->member(rs->routes_ctx, app, channel, f[2], msg.p[0] == 'J');
}

void rtmd_redis_route_push(struct redis_store *rs, struct rtmd_str channel, struct rtmd_str msg)
{
    if (rtmd_redis_tail_push(rs, channel, msg))
        return;
    /* rtmd:{APPID}:to:NODE */
    if (channel.len > 6 + RTMD_APPID_LEN + 2 && memcmp(channel.p, "rtmd:{", 6) == 0 &&
        channel.p[6 + RTMD_APPID_LEN] == '}') {
        const struct rtmd_app *app =
            rtmd_config_app(rs->cfg, rtmd_str_make(channel.p + 6, RTMD_APPID_LEN));
        if (app)
            to_node(rs, app, msg);
        return;
    }
    /* rtmd:c:{APPID:CHANNEL} */
    if (channel.len > 9 + RTMD_APPID_LEN + 1 && memcmp(channel.p, "rtmd:c:{", 8) == 0 &&
        channel.p[8 + RTMD_APPID_LEN] == ':' && channel.p[channel.len - 1] == '}') {
        const struct rtmd_app *app =
            rtmd_config_app(rs->cfg, rtmd_str_make(channel.p + 8, RTMD_APPID_LEN));
        struct rtmd_str name =
            rtmd_str_make(channel.p + 9 + RTMD_APPID_LEN, channel.len - 10 - RTMD_APPID_LEN);
        if (app && rtmd_id_valid(name))
            to_channel(rs, app, name, msg);
    }
}
