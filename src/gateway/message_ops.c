/*
 * message_ops.c — peer, publish, ack.
 *
 * Both sends go through messaging/ (the one send path, shared with the REST
 * API). A message is pushed at once; when it must also be kept (history,
 * or offline storage for a receiver that is not online), the reply waits
 * until the store has it durably, and the connection's later ops wait
 * behind it.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "core/ids.h"
#include "core/json.h"
#include "core/loop.h"
#include "gateway/gateway.h"
#include "gateway/internal.h"

static void state_field(struct rtmd_json *j, void *arg)
{
    const char *state = arg;
    rtmd_json_key(j, "state");
    rtmd_json_cstr(j, state);
}

/* The reply to a peer or publish: "delivered"/"offline" for peer. */
static void answer(struct gw_client *c, bool has_id, int64_t id, int type,
                   const struct rtmd_send_result *r)
{
    const char *state = type == RTMD_MSG_PEER ? (r->delivered ? "delivered" : "offline") : NULL;
    if (r->status < 0)
        gw_reply_store_failure(c, has_id, id, r->status, "the message could not be kept");
    else
        gw_reply_ok(c, has_id, id, state ? state_field : NULL, (void *)state);
}

/* An op whose message had to be kept first: the session waits for it (the
 * answer is given unless the connection's close answered the op already). */
struct pending {
    struct rtmd_session *s;
    int type;
};

static void on_sent(void *arg, const struct rtmd_send_result *r)
{
    struct pending *p = arg;
    struct rtmd_session *s = p->s;
    struct gw_client *c = gw_owner_enter(s);
    if (c) {
        if (c->op_open) {
            c->op_open = false;
            answer(c, c->has_op_id, c->op_id, p->type, r);
        }
        gw_op_done(c);
        gw_leave(c);
    }
    free(p);
    rtmd_session_unhold(s);
}

/* Sends rq for the op r: answers now when nothing had to be kept, else
 * once it is (later ops wait behind it). */
static void send_message(struct gw_client *c, const struct gw_request *r,
                         struct rtmd_send_request *rq)
{
    struct pending *p = rtmd_malloc(sizeof(*p));
    p->s = c->session;
    p->type = rq->type;
    struct rtmd_send_result now;
    int rc = rtmd_messaging_send(c->gw->messaging, rq, &now, on_sent, p);
    if (rc == 0) {
        rtmd_session_hold(p->s);
        gw_op_begin(c, r);
        return;
    }
    free(p);
    if (rc < 0)
        gw_reply_error(c, true, r->id, "bad_request", "the message could not be sent");
    else
        answer(c, true, r->id, rq->type, &now);
}

/* Reads "payload": a string of 1..max_payload bytes of UTF-8. */
static bool payload_arg(struct gw_client *c, const struct gw_request *r, struct rtmd_str *out)
{
    *out = gw_string(r->root, "payload");
    if (!out->p || out->len == 0 || out->len > c->gw->cfg->limits.max_payload ||
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
    struct rtmd_send_request rq = {
        .type = RTMD_MSG_PEER,
        .app = s->app,
        .from = rtmd_str_make(s->uid, s->uid_len),
        .to = to,
        .payload = payload,
        .ms = rtmd_now_ms(),
        .history = history,
        .offline = offline,
    };
    send_message(c, r, &rq);
}

void gw_op_publish(struct gw_client *c, const struct gw_request *r)
{
    struct rtmd_str channel = gw_string(r->root, "channel"), payload;
    bool history;
    if (!rtmd_id_valid(channel)) {
        gw_reply_error(c, true, r->id, "invalid_channel", "\"channel\" must be a valid name");
        return;
    }
    /* The membership check resolves the channel too: it is passed down. */
    struct rtmd_channel *ch = rtmd_session_channel(c->session, channel);
    if (!ch) {
        gw_reply_error(c, true, r->id, "not_joined", "join the channel before publishing");
        return;
    }
    if (!payload_arg(c, r, &payload) || !bool_arg(c, r, "history", &history))
        return;
    struct rtmd_session *s = c->session;
    struct rtmd_send_request rq = {
        .type = RTMD_MSG_CHANNEL,
        .app = s->app,
        .from = rtmd_str_make(s->uid, s->uid_len),
        .to = channel,
        .payload = payload,
        .ms = rtmd_now_ms(),
        .channel = ch,
        .sender = s,
        .history = history,
    };
    send_message(c, r, &rq);
}

void gw_op_ack(struct gw_client *c, const struct gw_request *r)
{
    const cJSON *mid = cJSON_GetObjectItemCaseSensitive(r->root, "mid");
    if (!cJSON_IsNumber(mid) || mid->valuedouble < 1 || mid->valuedouble > 9007199254740991.0 ||
        mid->valuedouble != (double)(uint64_t)mid->valuedouble) {
        gw_reply_error(c, true, r->id, "bad_request", "\"mid\" must be a positive integer");
        return;
    }
    rtmd_messaging_ack(c->gw->messaging, c->session, (uint64_t)mid->valuedouble);
    gw_reply_ok(c, true, r->id, NULL, NULL);
}
