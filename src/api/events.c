/*
 * events.c — GET rtm/vendor/user_events and rtm/vendor/channel_events
 * (the seed; SPEC §3.3).
 *
 * The store returns the region's oldest unread events, each already JSON
 * (made once when recorded), and marks them read for this region only; the
 * answer is those bytes joined into the envelope
 *   {"events":[...],"request_id":"...","result":"success"}
 * A caller that disconnects before the pull starts consumes nothing.
 */
#include "api/internal.h"

static void on_pulled(void *arg, int status, const struct rtmd_event_batch *batch)
{
    struct api_call *call = arg;
    if (status < 0) {
        api_respond_store_error(call, status);
        return;
    }
    struct rtmd_buf *b = api_body_buf();
    const struct rtmd_http_request *req = call->req;
    int r = rtmd_buf_reserve(b, batch->joined.len + req->request_id_len + 64);
    if (r == 0) {
        rtmd_buf_append(b, "{\"events\":[", 11);
        rtmd_buf_append(b, batch->joined.p, batch->joined.len);
        rtmd_buf_append(b, "],\"request_id\":\"", 16);
        rtmd_buf_append(b, req->request_id, req->request_id_len);
        r = rtmd_buf_append(b, "\",\"result\":\"success\"}", 21);
    }
    if (r < 0) {
        api_respond_error(call, 500, "internal_error", "out of memory");
        return;
    }
    api_respond_json(call, 200, rtmd_str_make(b->data, b->len));
}

static void pull(struct api_call *call, enum rtmd_evlog_kind kind)
{
    if (!call->req->conn) {
        /* The caller is gone: read nothing on its behalf. */
        api_respond_error(call, 408, "request_timeout", "client went away");
        return;
    }
    int r = rtmd_store_pull(api_store, call->app, kind, call->req->region,
                            api_cfg->limits.events_max_pull, on_pulled, call);
    if (r < 0)
        api_respond_store_error(call, r);
}

void api_user_events(struct api_call *call)
{
    pull(call, RTMD_EVLOG_USER);
}

void api_channel_events(struct api_call *call)
{
    pull(call, RTMD_EVLOG_CHANNEL);
}
