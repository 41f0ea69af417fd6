/*
 * events.c — GET rtm/vendor/user_events and rtm/vendor/channel_events
 * (the presence event logs; docs/API.md "Presence events").
 *
 * The store returns the region's oldest unread events, each already JSON
 * (made once when recorded), and marks them read for this region only; the
 * answer is those bytes joined into the envelope
 *   {"events":[...],"request_id":"...","result":"success"}
 * A caller that disconnects before the pull starts consumes nothing.
 *
 * ?after=SEQ (a lossless read, docs/API.md "Lossless reads"): the store marks
 * every event up to SEQ read and returns those numbered above it, numbered,
 * without marking them; the answer adds how many numbers retention removed:
 *   {"dropped":D,"events":[...],"request_id":"...","result":"success"}
 * Without `after` the answer is byte for byte the Agora-compatible one.
 */
#include "api/internal.h"
#include "core/url.h"

/* Answers head, the store's joined events, then the envelope's tail. The
 * events are written straight from the store's bytes: no copy of the (up to
 * 100 KB) body. */
static void answer(struct api_call *call, struct rtmd_str head, const struct rtmd_event_batch *b)
{
    char suffix[RTMD_REQUEST_ID_MAX + 48];
    struct rtmd_buf tail = {suffix, 0, sizeof(suffix), sizeof(suffix)};
    rtmd_buf_append(&tail, "],\"request_id\":\"", 16);
    rtmd_buf_append(&tail, call->req->request_id, call->req->request_id_len);
    rtmd_buf_append(&tail, "\",\"result\":\"success\"}", 21);
    struct rtmd_str parts[3] = {head, b->joined, rtmd_str_make(suffix, tail.len)};
    api_respond_json_parts(call, 200, parts, 3);
}

static void on_pulled(void *arg, int status, const struct rtmd_event_batch *batch)
{
    struct api_call *call = arg;
    if (status < 0)
        api_respond_store_error(call, status);
    else
        answer(call, RTMD_STR_LIT("{\"events\":["), batch);
}

static void after_beyond_newest(struct api_call *call)
{
    api_respond_error(call, 400, "invalid_after",
                      "after is above the newest event of this log (was its store reset?); "
                      "pull with after=0");
}

/* A numbered pull: "dropped" goes before the events. */
static void on_pulled_after(void *arg, int status, const struct rtmd_event_batch *batch)
{
    struct api_call *call = arg;
    if (status == -ERANGE) {
        after_beyond_newest(call);
        return;
    }
    if (status < 0) {
        api_respond_store_error(call, status);
        return;
    }
    char head[48];
    int k = snprintf(head, sizeof(head), "{\"dropped\":%llu,\"events\":[",
                     (unsigned long long)batch->dropped);
    answer(call, rtmd_str_make(head, (size_t)k), batch);
}

static void pull(struct api_call *call, enum rtmd_evlog_kind kind)
{
    if (!call->req->conn) {
        /* The caller is gone: read nothing on its behalf. */
        api_respond_error(call, 408, "request_timeout", "client went away");
        return;
    }
    uint64_t after = RTMD_PULL_DRAIN;
    struct rtmd_str raw;
    if (rtmd_query_param(call->req->query, "after", &raw) &&
        rtmd_str_to_u64(raw, RTMD_PULL_AFTER_MAX, &after) != 0) {
        api_respond_error(call, 400, "invalid_after",
                          "after must be a decimal integer from 0 to 9007199254740991");
        return;
    }
    bool numbered = after != RTMD_PULL_DRAIN;
    int r = rtmd_store_pull(call->api->store, call->app, kind, call->req->region,
                            call->api->cfg->limits.events_max_pull, after,
                            numbered ? on_pulled_after : on_pulled, call);
    if (r == -ERANGE)
        after_beyond_newest(call);
    else if (r < 0)
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
