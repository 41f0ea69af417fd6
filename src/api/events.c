/*
 * events.c — GET rtm/vendor/user_events and rtm/vendor/channel_events
 * (the presence event logs; docs/API.md "Presence events").
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
    /* The events are written straight from the store's joined bytes, between
     * a prefix and a suffix: no copy of the (up to 100 KB) body. */
    char suffix[RTMD_REQUEST_ID_MAX + 48];
    struct rtmd_buf tail = {suffix, 0, sizeof(suffix), sizeof(suffix)};
    rtmd_buf_append(&tail, "],\"request_id\":\"", 16);
    rtmd_buf_append(&tail, call->req->request_id, call->req->request_id_len);
    rtmd_buf_append(&tail, "\",\"result\":\"success\"}", 21);
    struct rtmd_str parts[3] = {RTMD_STR_LIT("{\"events\":["), batch->joined,
                                rtmd_str_make(suffix, tail.len)};
    api_respond_json_parts(call, 200, parts, 3);
}

static void pull(struct api_call *call, enum rtmd_evlog_kind kind)
{
    if (!call->req->conn) {
        /* The caller is gone: read nothing on its behalf. */
        api_respond_error(call, 408, "request_timeout", "client went away");
        return;
    }
    int r = rtmd_store_pull(call->api->store, call->app, kind, call->req->region,
                            call->api->cfg->limits.events_max_pull, on_pulled, call);
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
