/*
 * message_ops.c — peer, publish, ack (SPEC §4).
 *
 * A message is pushed at once; when it must also be kept (history, or
 * offline storage for a receiver that is not online), the reply waits until
 * the store has it durably, and the connection's later ops wait behind it.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "core/ids.h"
#include "core/json.h"
#include "core/loop.h"
#include "gateway/gateway.h"
#include "gateway/internal.h"

/* Store calls of one op still outstanding. */
struct pending {
    struct rtmd_session *s;
    int outstanding;
    int status;
    const char *state; /* "delivered" / "offline" for peer, NULL for publish */
};

static void state_field(struct rtmd_json *j, void *arg)
{
    const char *state = arg;
    rtmd_json_key(j, "state");
    rtmd_json_cstr(j, state);
}

static void answer(struct gw_client *c, bool has_id, int64_t id, int status, const char *state)
{
    if (status == -ENOSPC)
        gw_reply_error(c, has_id, id, "unavailable",
                       "the server cannot keep messages now (its disk is full); try again later");
    else if (status < 0)
        gw_reply_error(c, has_id, id, "store_error", "the message could not be kept; try again");
    else
        gw_reply_ok(c, has_id, id, state ? state_field : NULL, (void *)state);
}

static void on_kept(void *arg, int status)
{
    struct pending *p = arg;
    if (status < 0 && p->status == 0)
        p->status = status;
    if (--p->outstanding > 0)
        return;
    struct rtmd_session *s = p->s;
    struct gw_client *c = gw_owner_enter(s);
    if (c) {
        if (c->op_open) { /* else answered when the connection closed */
            c->op_open = false;
            answer(c, c->has_op_id, c->op_id, p->status, p->state);
        }
        gw_op_done(c);
        gw_leave(c);
    }
    free(p);
    rtmd_session_unhold(s);
}

/* Reads "payload": a string of 1..max_payload bytes of UTF-8. */
static bool payload_arg(struct gw_client *c, const struct gw_request *r, struct rtmd_str *out)
{
    *out = gw_string(r->root, "payload");
    if (!out->p || out->len == 0 || out->len > gw_cfg->limits.max_payload ||
        !rtmd_utf8_valid(out->p, out->len) || (r->had_nul && memchr(out->p, 1, out->len))) {
        gw_reply_error(c, true, r->id, "invalid_payload",
                       "payload must be 1 to max_payload bytes of UTF-8 text");
        return false;
    }
    return true;
}

/* Reads an optional boolean member; false (and an error reply) if present
 * and not a boolean. */
static bool bool_arg(struct gw_client *c, const struct gw_request *r, const char *name, bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, name);
    *out = false;
    if (!v)
        return true;
    if (!cJSON_IsBool(v)) {
        gw_reply_error(c, true, r->id, "bad_request", "a flag must be true or false");
        return false;
    }
    *out = cJSON_IsTrue(v);
    return true;
}

static struct pending *pending_new(struct gw_client *c, const char *state)
{
    struct pending *p = rtmd_calloc(1, sizeof(*p));
    p->s = c->session;
    p->state = state;
    p->outstanding = 1; /* released by finish() */
    rtmd_session_hold(p->s);
    return p;
}

/* Called once every store call of the op was made: replies now if none
 * was needed, else when the last completes. */
static void finish(struct gw_client *c, const struct gw_request *r, struct pending *p)
{
    if (p->outstanding == 1) {
        answer(c, true, r->id, p->status, p->state);
        rtmd_session_unhold(p->s);
        free(p);
        return;
    }
    gw_op_begin(c, r);
    on_kept(p, 0);
}

static void keep(struct pending *p, int r)
{
    if (r == 0)
        p->outstanding++;
    else if (p->status == 0)
        p->status = r;
}

void gw_op_peer(struct gw_client *c, const struct gw_request *r)
{
    struct rtmd_str to = gw_string(r->root, "to"), payload;
    bool offline, history;
    if (!rtmd_id_valid(to)) {
        gw_reply_error(c, true, r->id, "invalid_uid", "\"to\" must be a valid uid");
        return;
    }
    if (!payload_arg(c, r, &payload) || !bool_arg(c, r, "offline", &offline) ||
        !bool_arg(c, r, "history", &history))
        return;
    struct rtmd_session *s = c->session;
    struct rtmd_str from = rtmd_str_make(s->uid, s->uid_len);
    struct rtmd_message m = {RTMD_MSG_PEER, from, to, payload, rtmd_now_ms()};
    bool delivered = rtmd_gateway_deliver_peer(s->app, from, to, payload, m.ms, NULL);
    struct pending *p = pending_new(c, delivered ? "delivered" : "offline");
    if (history)
        keep(p, rtmd_store_history_put(gw_store, s->app, &m, NULL, 0, on_kept, p));
    if (!delivered && offline)
        keep(p, rtmd_store_offline_put(gw_store, s->app, &m, gw_cfg->limits.offline_max_per_user,
                                       (uint64_t)gw_cfg->limits.offline_retention_s * 1000, on_kept,
                                       p));
    finish(c, r, p);
}

void gw_op_publish(struct gw_client *c, const struct gw_request *r)
{
    struct rtmd_str channel = gw_string(r->root, "channel"), payload;
    bool history;
    if (!rtmd_id_valid(channel)) {
        gw_reply_error(c, true, r->id, "invalid_channel", "\"channel\" must be a valid name");
        return;
    }
    if (!rtmd_session_in_channel(c->session, channel)) {
        gw_reply_error(c, true, r->id, "not_joined", "join the channel before publishing");
        return;
    }
    if (!payload_arg(c, r, &payload) || !bool_arg(c, r, "history", &history))
        return;
    struct rtmd_session *s = c->session;
    struct rtmd_str from = rtmd_str_make(s->uid, s->uid_len);
    struct rtmd_message m = {RTMD_MSG_CHANNEL, from, channel, payload, rtmd_now_ms()};
    struct pending *p = pending_new(c, NULL);
    if (history) {
        struct rtmd_str *recipients;
        size_t n = rtmd_gateway_channel_recipients(s->app, channel, from, &recipients);
        keep(p, rtmd_store_history_put(gw_store, s->app, &m, recipients, n, on_kept, p));
        free(recipients);
    }
    rtmd_gateway_deliver_channel(s->app, channel, from, payload, m.ms);
    finish(c, r, p);
}

void gw_op_ack(struct gw_client *c, const struct gw_request *r)
{
    const cJSON *mid = cJSON_GetObjectItemCaseSensitive(r->root, "mid");
    if (!cJSON_IsNumber(mid) || mid->valuedouble < 1 || mid->valuedouble > 9007199254740991.0 ||
        mid->valuedouble != (double)(uint64_t)mid->valuedouble) {
        gw_reply_error(c, true, r->id, "bad_request", "\"mid\" must be a positive integer");
        return;
    }
    gw_ack(c->session, (uint64_t)mid->valuedouble);
    gw_reply_ok(c, true, r->id, NULL, NULL);
}
