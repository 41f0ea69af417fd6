/*
 * messages.c — POST rtm/users/{user_id}/peer_messages[?wait_for_ack=] and
 * rtm/users/{user_id}/channel_messages, through messaging/ (the one send
 * path, shared with the client ops).
 *
 * Answers (keys alphabetical):
 *   {"code":"message_sent","request_id":"..","result":"success"}       accepted
 *   {"code":"message_delivered","request_id":"..","result":"success"}  wait_for_ack: acked
 *   {"code":"message_offline","request_id":".."}                        receiver not online
 * A wait_for_ack the receiver does not ack within peer_ack_timeout_ms is 408.
 * Kept messages (history, offline storage) are durable before the answer.
 * The sender need not be online or in the channel; with token auth it may
 * send only as the token's user.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "api/internal.h"
#include "core/alloc.h"
#include "core/loop.h"
#include "core/url.h"

bool api_authorize_sender(struct api_call *call)
{
    struct rtmd_buf b;
    rtmd_buf_init(&b, RTMD_ID_MAX);
    int r = rtmd_url_decode(&b, call->params[0], false);
    struct rtmd_str uid = rtmd_str_make(b.data, b.len);
    if (r < 0 || !rtmd_id_valid_in_path(uid)) {
        rtmd_buf_free(&b);
        api_respond_error(call, 400, "bad_request",
                          "user_id must be 1-64 allowed characters, without leading or trailing "
                          "spaces");
        return false;
    }
    memcpy(call->sender, uid.p, uid.len);
    call->sender[uid.len] = '\0';
    call->sender_len = uid.len;
    rtmd_buf_free(&b);
    if (call->principal.kind == RTMD_PRINCIPAL_USER &&
        !rtmd_str_eq(rtmd_str_make(call->principal.uid, call->principal.uid_len),
                     rtmd_str_make(call->sender, call->sender_len))) {
        api_respond_error(call, 401, "unauthorized", "a token may send only as its own user");
        return false;
    }
    return true;
}

static struct rtmd_str sender(const struct api_call *call)
{
    return rtmd_str_make(call->sender, call->sender_len);
}

static void answer_code(struct api_call *call, const char *code, bool with_result)
{
    struct rtmd_buf *b = api_body_buf(call->api);
    struct rtmd_json j;
    rtmd_json_init(&j, b);
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "code");
    rtmd_json_cstr(&j, code);
    rtmd_json_key(&j, "request_id");
    rtmd_json_str(&j, rtmd_str_make(call->req->request_id, call->req->request_id_len));
    if (with_result) {
        rtmd_json_key(&j, "result");
        rtmd_json_cstr(&j, "success");
    }
    rtmd_json_obj_end(&j);
    api_respond_json(call, 200, rtmd_str_make(b->data, b->len));
}

/* The answer to a send, from its result. */
static void answer(struct api_call *call, bool wait, const struct rtmd_send_result *r)
{
    if (r->status < 0)
        api_respond_store_error(call, r->status);
    else if (!r->delivered)
        answer_code(call, "message_offline", false);
    else if (!wait)
        answer_code(call, "message_sent", true);
    else if (r->ack_status == 0)
        answer_code(call, "message_delivered", true);
    else
        api_respond_error(call, 408, "request_timeout",
                          "the receiver did not acknowledge the message in time");
}

static void on_sent_nowait(void *arg, const struct rtmd_send_result *r)
{
    answer(arg, false, r);
}

static void on_sent_wait(void *arg, const struct rtmd_send_result *r)
{
    answer(arg, true, r);
}

static void send_message(struct api_call *call, const struct rtmd_send_request *rq)
{
    struct rtmd_send_result now;
    int rc = rtmd_messaging_send(call->api->messaging, rq, &now,
                                 rq->wait_ack ? on_sent_wait : on_sent_nowait, call);
    if (rc < 0)
        api_respond_error(call, 400, "bad_request", "the message could not be sent");
    else if (rc == 1)
        answer(call, rq->wait_ack, &now);
}

static bool wait_for_ack_param(struct api_call *call, bool *wait)
{
    struct rtmd_str v;
    *wait = false;
    if (!rtmd_query_param(call->req->query, "wait_for_ack", &v) || v.len == 0)
        return true;
    /* Any case, and 1/0 (PHP's http_build_query writes booleans so). */
    if (rtmd_str_ieq(v, RTMD_STR_LIT("true")) || rtmd_str_eq_cstr(v, "1")) {
        *wait = true;
        return true;
    }
    if (rtmd_str_ieq(v, RTMD_STR_LIT("false")) || rtmd_str_eq_cstr(v, "0"))
        return true;
    api_respond_error(call, 400, "bad_request", "wait_for_ack must be true, false, 1 or 0");
    return false;
}

void api_peer_messages(struct api_call *call)
{
    bool wait, offline, history;
    if (!wait_for_ack_param(call, &wait))
        return;
    cJSON *body = api_parse_body(call);
    if (!body)
        return;
    struct rtmd_str dst, payload;
    if (!api_id_field(call, body, "destination", true, &dst) ||
        !api_bool_field(call, body, "enable_offline_messaging", &offline) ||
        !api_bool_field(call, body, "enable_historical_messaging", &history) ||
        !api_payload_field(call, body, &payload)) {
        cJSON_Delete(body);
        return;
    }
    struct rtmd_send_request rq = {
        .type = RTMD_MSG_PEER,
        .app = call->app,
        .from = sender(call),
        .to = dst,
        .payload = payload,
        .ms = rtmd_now_ms(),
        .history = history,
        .offline = offline,
        .wait_ack = wait,
    };
    send_message(call, &rq);
    cJSON_Delete(body);
}

void api_channel_messages(struct api_call *call)
{
    bool history;
    cJSON *body = api_parse_body(call);
    if (!body)
        return;
    struct rtmd_str channel, payload;
    if (!api_id_field(call, body, "channel_name", true, &channel) ||
        !api_bool_field(call, body, "enable_historical_messaging", &history) ||
        !api_payload_field(call, body, &payload)) {
        cJSON_Delete(body);
        return;
    }
    /* Resolved once: the channel here, and the sender's own session in it
     * (it gets no copy), if the sender is online here and a member. */
    struct rtmd_channel *ch = rtmd_presence_channel(call->app, channel);
    struct rtmd_session *own = rtmd_presence_find(call->app, sender(call));
    struct rtmd_send_request rq = {
        .type = RTMD_MSG_CHANNEL,
        .app = call->app,
        .from = sender(call),
        .to = channel,
        .payload = payload,
        .ms = rtmd_now_ms(),
        .channel = ch,
        .sender = own && ch && rtmd_session_channel(own, channel) == ch ? own : NULL,
        .history = history,
    };
    send_message(call, &rq);
    cJSON_Delete(body);
}
