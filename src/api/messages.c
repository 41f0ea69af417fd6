/*
 * messages.c — POST rtm/users/{user_id}/peer_messages[?wait_for_ack=] and
 * rtm/users/{user_id}/channel_messages (SPEC §3.5).
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
#include "gateway/gateway.h"

/* One send's outstanding work: store calls and an ack. */
struct send {
    struct api_call *call;
    int outstanding;
    int status; /* first store failure */
    bool delivered;
    bool wait;
    int ack_status;
};

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
    struct rtmd_buf *b = api_body_buf();
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

static void send_done(struct send *s)
{
    if (--s->outstanding > 0)
        return;
    struct api_call *call = s->call;
    if (s->status < 0)
        api_respond_store_error(call, s->status);
    else if (!s->delivered)
        answer_code(call, "message_offline", false);
    else if (!s->wait)
        answer_code(call, "message_sent", true);
    else if (s->ack_status == 0)
        answer_code(call, "message_delivered", true);
    else
        api_respond_error(call, 408, "request_timeout",
                          "the receiver did not acknowledge the message in time");
    free(s);
}

static void on_kept(void *arg, int status)
{
    struct send *s = arg;
    if (status < 0 && s->status == 0)
        s->status = status;
    send_done(s);
}

static void on_ack(void *arg, int status)
{
    struct send *s = arg;
    s->ack_status = status;
    send_done(s);
}

/* Starts a store call on behalf of s; a synchronous failure counts as its
 * status. */
static void keep(struct send *s, int r)
{
    if (r == 0)
        s->outstanding++;
    else if (s->status == 0)
        s->status = r;
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
    struct rtmd_message m = {RTMD_MSG_PEER, sender(call), dst, payload, rtmd_now_ms()};
    struct send *s = rtmd_calloc(1, sizeof(*s));
    s->call = call;
    s->outstanding = 1; /* released at the end of this function */
    uint64_t mid = 0;
    s->delivered = rtmd_gateway_deliver_peer(call->app, m.src, dst, payload, m.ms, &mid);
    s->wait = wait && s->delivered;
    if (history)
        keep(s, rtmd_store_history_put(api_store, call->app, &m, NULL, 0, on_kept, s));
    if (!s->delivered && offline)
        keep(s, rtmd_store_offline_put(
                    api_store, call->app, &m, api_cfg->limits.offline_max_per_user,
                    (uint64_t)api_cfg->limits.offline_retention_s * 1000, on_kept, s));
    if (s->wait && rtmd_gateway_wait_ack(mid, call->app, dst, on_ack, s) == 0)
        s->outstanding++;
    cJSON_Delete(body);
    send_done(s);
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
    struct rtmd_message m = {RTMD_MSG_CHANNEL, sender(call), channel, payload, rtmd_now_ms()};
    struct send *s = rtmd_calloc(1, sizeof(*s));
    s->call = call;
    s->outstanding = 1;
    s->delivered = true;
    if (history) {
        struct rtmd_str *recipients;
        size_t n = rtmd_gateway_channel_recipients(call->app, channel, m.src, &recipients);
        keep(s, rtmd_store_history_put(api_store, call->app, &m, recipients, n, on_kept, s));
        free(recipients);
    }
    rtmd_gateway_deliver_channel(call->app, channel, m.src, payload, m.ms);
    cJSON_Delete(body);
    send_done(s);
}
