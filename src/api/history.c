/*
 * history.c — message history, as Agora RTM's REST API has it (docs/API.md
 * "Message history"):
 *
 *   POST rtm/message/history/query        → a single-use handle in "location"
 *   GET  rtm/message/history/query/{h}    → the messages (then the handle is gone: 410)
 *   GET  rtm/message/history/count?...    → how many messages match
 *
 * The filter: start_time and end_time required (ISO-8601 UTC, optional
 * fraction), at least one of source and destination; limit ∈ {20, 50, 100}
 * (default 20), offset ≥ 0 (default 0), order asc|desc (default asc). Every
 * violation is a 400 naming the field. What each source/destination shape
 * matches is the store's contract (store.h, struct rtmd_history_query).
 * Empty source/destination are "not given"; a count and the pages of the
 * same filter see the same messages (the retention cut-off is pinned per
 * filter, api/pins.h).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/internal.h"
#include "core/alloc.h"
#include "core/loop.h"
#include "core/timefmt.h"
#include "core/url.h"

#define LOCATION_PREFIX "~/rtm/message/history/query/"
#define HANDLE_MAX      64

/* A query with its own copies of the IDs (the request body may be gone). */
struct query_call {
    struct api_call *call;
    struct rtmd_history_query q;
    char source[RTMD_ID_MAX + 1];
    char destination[RTMD_ID_MAX + 1];
};

static void bad(struct api_call *call, const char *msg)
{
    api_respond_error(call, 400, "bad_request", msg);
}

static void set_id(char *dst, struct rtmd_str *view, struct rtmd_str v)
{
    if (!v.p) {
        *view = RTMD_STR_NULL;
        return;
    }
    memcpy(dst, v.p, v.len);
    dst[v.len] = '\0';
    *view = rtmd_str_make(dst, v.len);
}

/* Checks and stores source/destination/times; false after answering 400. */
static bool set_filter(struct api_call *call, struct query_call *qc, struct rtmd_str source,
                       struct rtmd_str destination, struct rtmd_str start, struct rtmd_str end)
{
    if (source.p && !rtmd_id_valid(source)) {
        bad(call, "filter.source must be a valid user ID");
        return false;
    }
    if (destination.p && !rtmd_id_valid(destination)) {
        bad(call, "filter.destination must be a valid user ID or channel name");
        return false;
    }
    if (!source.p && !destination.p) {
        bad(call, "filter.source and filter.destination cannot both be empty");
        return false;
    }
    if (!start.p || rtmd_iso8601_parse(start, &qc->q.start_ms) < 0) {
        bad(call, "filter.start_time must be an ISO-8601 UTC time such as 2019-08-01T01:22:10Z");
        return false;
    }
    if (!end.p || rtmd_iso8601_parse(end, &qc->q.end_ms) < 0) {
        bad(call, "filter.end_time must be an ISO-8601 UTC time such as 2019-08-01T01:32:10Z");
        return false;
    }
    if (qc->q.start_ms > qc->q.end_ms) {
        bad(call, "filter.start_time must not be after filter.end_time");
        return false;
    }
    set_id(qc->source, &qc->q.source, source);
    set_id(qc->destination, &qc->q.destination, destination);
    qc->q.min_ms =
        rtmd_history_pins_cutoff(&call->api->pins, call->app->index, &qc->q, rtmd_now_ms(),
                                 (uint64_t)call->api->cfg->limits.history_retention_s * 1000);
    return true;
}

static struct query_call *query_call_new(struct api_call *call)
{
    struct query_call *qc = rtmd_calloc(1, sizeof(*qc));
    qc->call = call;
    qc->q.limit = 20;
    return qc;
}

/* ---- POST query ------------------------------------------------------------------- */

/* A string member of the filter; *wrong names the first that is not one.
 * Absent, null and "" are all "not given" (clients send "" for a filter they
 * do not use). */
static struct rtmd_str json_string(const cJSON *obj, const char *name, const char **wrong)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v))
        return RTMD_STR_NULL;
    if (!cJSON_IsString(v) || !v->valuestring) {
        if (!*wrong)
            *wrong = name;
        return RTMD_STR_NULL;
    }
    if (v->valuestring[0] == '\0')
        return RTMD_STR_NULL;
    return rtmd_str_cstr(v->valuestring);
}

static bool paging(struct api_call *call, const cJSON *body, struct rtmd_history_query *q)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "limit");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) ||
            (v->valuedouble != 20 && v->valuedouble != 50 && v->valuedouble != 100)) {
            bad(call, "limit must be 20, 50 or 100");
            return false;
        }
        q->limit = (uint32_t)v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(body, "offset");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9 ||
            v->valuedouble != (double)(uint32_t)v->valuedouble) {
            bad(call, "offset must be an integer of at least 0");
            return false;
        }
        q->offset = (uint32_t)v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(body, "order");
    if (v && !cJSON_IsNull(v)) {
        if (cJSON_IsString(v) && v->valuestring && strcmp(v->valuestring, "asc") == 0)
            q->desc = false;
        else if (cJSON_IsString(v) && v->valuestring && strcmp(v->valuestring, "desc") == 0)
            q->desc = true;
        else {
            bad(call, "order must be \"asc\" or \"desc\"");
            return false;
        }
    }
    return true;
}

static void on_handle(void *arg, int status, const char *handle)
{
    struct query_call *qc = arg;
    struct api_call *call = qc->call;
    if (status < 0) {
        api_respond_store_error(call, status);
        free(qc);
        return;
    }
    struct rtmd_buf *b = api_body_buf(call->api);
    struct rtmd_json j;
    rtmd_json_init(&j, b);
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "limit");
    rtmd_json_u64(&j, qc->q.limit);
    rtmd_json_key(&j, "location");
    char loc[sizeof(LOCATION_PREFIX) + HANDLE_MAX];
    snprintf(loc, sizeof(loc), LOCATION_PREFIX "%s", handle);
    rtmd_json_cstr(&j, loc);
    rtmd_json_key(&j, "offset");
    rtmd_json_u64(&j, qc->q.offset);
    rtmd_json_key(&j, "order");
    rtmd_json_cstr(&j, qc->q.desc ? "desc" : "asc");
    api_json_tail(&j, call->req);
    free(qc);
    api_respond_json(call, 200, rtmd_str_make(b->data, b->len));
}

void api_history_create(struct api_call *call)
{
    cJSON *body = api_parse_body(call);
    if (!body)
        return;
    struct query_call *qc = query_call_new(call);
    const cJSON *filter = cJSON_GetObjectItemCaseSensitive(body, "filter");
    const char *wrong = NULL;
    if (!cJSON_IsObject(filter)) {
        bad(call, "filter is required and must be an object");
        goto fail;
    }
    struct rtmd_str source = json_string(filter, "source", &wrong);
    struct rtmd_str destination = json_string(filter, "destination", &wrong);
    struct rtmd_str start = json_string(filter, "start_time", &wrong);
    struct rtmd_str end = json_string(filter, "end_time", &wrong);
    if (wrong) {
        char msg[64];
        snprintf(msg, sizeof(msg), "filter.%s must be a string", wrong);
        bad(call, msg);
        goto fail;
    }
    if (!set_filter(call, qc, source, destination, start, end) || !paging(call, body, &qc->q))
        goto fail;
    cJSON_Delete(body);
    int r = rtmd_store_handle_put(call->api->store, call->app, &qc->q,
                                  (uint64_t)call->api->cfg->limits.history_handle_ttl_s * 1000,
                                  on_handle, qc);
    if (r < 0) {
        api_respond_store_error(call, r);
        free(qc);
    }
    return;
fail:
    cJSON_Delete(body);
    free(qc);
}

/* ---- GET query/{handle} --------------------------------------------------------------- */

static void write_message(struct rtmd_json *j, const struct rtmd_message *m)
{
    rtmd_json_obj_begin(j);
    rtmd_json_key(j, "dst");
    rtmd_json_str(j, m->dst);
    rtmd_json_key(j, "message_type");
    rtmd_json_cstr(j, m->type == RTMD_MSG_PEER ? "peer_message" : "channel_message");
    rtmd_json_key(j, "ms");
    rtmd_json_u64(j, m->ms);
    rtmd_json_key(j, "payload");
    rtmd_json_str(j, m->payload);
    rtmd_json_key(j, "src");
    rtmd_json_str(j, m->src);
    rtmd_json_obj_end(j);
}

/* {"code":"ok", ... — the start of both history answers. */
static void ok_envelope(struct rtmd_json *j, struct rtmd_buf *b)
{
    rtmd_json_init(j, b);
    rtmd_json_obj_begin(j);
    rtmd_json_key(j, "code");
    rtmd_json_cstr(j, "ok");
}

static void on_messages(void *arg, int status, const struct rtmd_message_batch *batch)
{
    struct api_call *call = arg;
    if (status < 0) {
        api_respond_store_error(call, status);
        return;
    }
    struct rtmd_buf *b = api_body_buf(call->api);
    struct rtmd_json j;
    ok_envelope(&j, b);
    rtmd_json_key(&j, "messages");
    rtmd_json_arr_begin(&j);
    for (size_t i = 0; i < batch->n; i++)
        write_message(&j, &batch->messages[i]);
    rtmd_json_arr_end(&j);
    api_json_tail(&j, call->req);
    if (rtmd_json_finish(&j) < 0) {
        api_respond_error(call, 500, "internal_error", "out of memory");
        return;
    }
    api_respond_json(call, 200, rtmd_str_make(b->data, b->len));
}

static void on_taken(void *arg, int status, const struct rtmd_history_query *q)
{
    struct api_call *call = arg;
    if (status == -ENOENT) {
        api_respond_error(call, 410, "gone",
                          "the query handle expired or was already used; POST the query again");
        return;
    }
    if (status < 0) {
        api_respond_store_error(call, status);
        return;
    }
    int r = rtmd_store_history_query(call->api->store, call->app, q, on_messages, call);
    if (r < 0)
        api_respond_store_error(call, r);
}

static bool handle_ok(struct rtmd_str h)
{
    if (h.len == 0 || h.len > HANDLE_MAX)
        return false;
    for (size_t i = 0; i < h.len; i++) {
        char c = h.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

void api_history_get(struct api_call *call)
{
    struct rtmd_str handle = call->params[0];
    if (!handle_ok(handle)) {
        /* Not one of ours (they are URL-safe): it cannot name a live query. */
        api_respond_error(call, 410, "gone", "no such query handle; POST the query again");
        return;
    }
    int r = rtmd_store_handle_take(call->api->store, call->app, handle, on_taken, call);
    if (r < 0)
        api_respond_store_error(call, r);
}

/* ---- GET count -------------------------------------------------------------------------- */

static void on_count(void *arg, int status, uint64_t count)
{
    struct query_call *qc = arg;
    struct api_call *call = qc->call;
    free(qc);
    if (status < 0) {
        api_respond_store_error(call, status);
        return;
    }
    struct rtmd_buf *b = api_body_buf(call->api);
    struct rtmd_json j;
    ok_envelope(&j, b);
    rtmd_json_key(&j, "count");
    rtmd_json_u64(&j, count);
    api_json_tail(&j, call->req);
    api_respond_json(call, 200, rtmd_str_make(b->data, b->len));
}

/* A query parameter, URL-decoded into buf, surrounding quotes removed (the
 * docs' examples quote values: source="userA"); absent or empty → p NULL. */
static int count_param(struct api_call *call, const char *name, struct rtmd_buf *buf,
                       struct rtmd_str *out)
{
    struct rtmd_str raw;
    *out = RTMD_STR_NULL;
    if (!rtmd_query_param(call->req->query, name, &raw) || raw.len == 0)
        return 0;
    size_t start = buf->len;
    if (rtmd_url_decode(buf, raw, true) < 0)
        return -EINVAL;
    struct rtmd_str v = rtmd_str_make(buf->data + start, buf->len - start);
    if (v.len >= 2 &&
        ((v.p[0] == '"' && v.p[v.len - 1] == '"') || (v.p[0] == '\'' && v.p[v.len - 1] == '\''))) {
        v.p++;
        v.len -= 2;
    }
    if (v.len)
        *out = v;
    return 0;
}

void api_history_count(struct api_call *call)
{
    struct query_call *qc = query_call_new(call);
    /* Reserved up front so views into it stay valid while params are added. */
    struct rtmd_buf buf;
    rtmd_buf_init(&buf, 4096);
    if (rtmd_buf_reserve(&buf, 4096) < 0) {
        api_respond_error(call, 500, "internal_error", "out of memory");
        free(qc);
        return;
    }
    struct rtmd_str source, destination, start, end;
    if (count_param(call, "source", &buf, &source) < 0 ||
        count_param(call, "destination", &buf, &destination) < 0 ||
        count_param(call, "start_time", &buf, &start) < 0 ||
        count_param(call, "end_time", &buf, &end) < 0) {
        bad(call, "a query parameter is not correctly URL-encoded or is too long");
        goto fail;
    }
    if (!set_filter(call, qc, source, destination, start, end))
        goto fail;
    rtmd_buf_free(&buf);
    int r = rtmd_store_history_count(call->api->store, call->app, &qc->q, on_count, qc);
    if (r < 0) {
        api_respond_store_error(call, r);
        free(qc);
    }
    return;
fail:
    rtmd_buf_free(&buf);
    free(qc);
}
