/*
 * presence.c — who is online, for the vendor:
 *   GET  rtm/channels/{channel}/members?limit=&cursor=  → a page of members, the count
 *   GET  rtm/channels/{channel}/count                   → the count
 *   POST rtm/users/status {"uids":[...]}                → online / offline per uid
 * All three share the presence_qps bucket. The answers come from
 * presence/online.h (every node's members with the redis backend).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "api/internal.h"
#include "core/alloc.h"
#include "core/url.h"
#include "presence/online.h"

#define MEMBERS_LIMIT_DEFAULT 100

/* The {channel} of the path, percent-decoded like a {user_id}; answers 400. */
static bool channel_param(struct api_call *call, char out[RTMD_ID_MAX], size_t *len)
{
    struct rtmd_buf b;
    rtmd_buf_init(&b, RTMD_ID_MAX);
    int r = rtmd_url_decode(&b, call->params[0], false);
    struct rtmd_str ch = rtmd_str_make(b.data, b.len);
    bool ok = r == 0 && rtmd_id_valid_in_path(ch);
    if (ok) {
        memcpy(out, ch.p, ch.len);
        *len = ch.len;
    }
    rtmd_buf_free(&b);
    if (!ok)
        api_respond_error(call, 400, "bad_request",
                          "channel must be 1-64 allowed characters, without leading or trailing "
                          "spaces");
    return ok;
}

static void write_members(struct rtmd_json *j, const struct rtmd_member_page *page)
{
    rtmd_json_key(j, "members");
    rtmd_json_arr_begin(j);
    for (size_t i = 0; i < page->n; i++)
        rtmd_json_str(j, page->uids[i]);
    rtmd_json_arr_end(j);
}

static void on_members(void *arg, int status, const struct rtmd_member_page *page)
{
    struct api_call *call = arg;
    if (status < 0) {
        api_respond_store_error(call, status);
        return;
    }
    struct rtmd_buf *b = api_body_buf(call->api);
    struct rtmd_json j;
    rtmd_json_init(&j, b);
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "count");
    rtmd_json_u64(&j, page->count);
    if (call->route->handle == api_channel_count) {
        /* the count alone */
    } else if (page->more && page->n > 0) {
        char cursor[RTMD_CURSOR_MAX + 1];
        size_t n = rtmd_online_cursor_encode(page->uids[page->n - 1], cursor);
        rtmd_json_key(&j, "cursor");
        rtmd_json_str(&j, rtmd_str_make(cursor, n));
    }
    if (call->route->handle != api_channel_count)
        write_members(&j, page);
    api_json_tail(&j, call->req);
    api_respond_json(call, 200, rtmd_str_make(b->data, b->len));
}

void api_channel_members(struct api_call *call)
{
    char channel[RTMD_ID_MAX], after[RTMD_ID_MAX];
    size_t channel_len, after_len = 0;
    if (!channel_param(call, channel, &channel_len))
        return;
    uint64_t limit = MEMBERS_LIMIT_DEFAULT;
    struct rtmd_str raw;
    if (rtmd_query_param(call->req->query, "limit", &raw) && raw.len &&
        (rtmd_str_to_u64(raw, RTMD_MEMBERS_PAGE_MAX, &limit) < 0 || limit == 0)) {
        api_respond_error(call, 400, "bad_request", "limit must be an integer 1-1000");
        return;
    }
    if (rtmd_query_param(call->req->query, "cursor", &raw) && raw.len &&
        !rtmd_online_cursor_decode(raw, after, &after_len)) {
        api_respond_error(call, 400, "bad_request",
                          "cursor must be one a previous page of this endpoint returned");
        return;
    }
    int r = rtmd_online_members(call->api->store, call->app, rtmd_str_make(channel, channel_len),
                                rtmd_str_make(after, after_len), (uint32_t)limit, on_members, call);
    if (r < 0)
        api_respond_store_error(call, r);
}

void api_channel_count(struct api_call *call)
{
    char channel[RTMD_ID_MAX];
    size_t channel_len;
    if (!channel_param(call, channel, &channel_len))
        return;
    int r = rtmd_online_members(call->api->store, call->app, rtmd_str_make(channel, channel_len),
                                RTMD_STR_NULL, 0, on_members, call);
    if (r < 0)
        api_respond_store_error(call, r);
}

/* ---- POST users/status ------------------------------------------------------------ */

struct status_call {
    struct api_call *call;
    cJSON *root; /* the body: uids point into it */
    size_t n;
    struct rtmd_str uids[RTMD_STATUS_MAX];
};

static void on_status(void *arg, int status, const bool *online, size_t n)
{
    struct status_call *sc = arg;
    struct api_call *call = sc->call;
    if (status < 0) {
        api_respond_store_error(call, status);
    } else {
        struct rtmd_buf *b = api_body_buf(call->api);
        struct rtmd_json j;
        rtmd_json_init(&j, b);
        rtmd_json_obj_begin(&j);
        rtmd_json_key(&j, "request_id");
        rtmd_json_str(&j, rtmd_str_make(call->req->request_id, call->req->request_id_len));
        rtmd_json_key(&j, "result");
        rtmd_json_cstr(&j, "success");
        rtmd_json_key(&j, "statuses");
        rtmd_json_obj_begin(&j);
        for (size_t i = 0; i < n && i < sc->n; i++) {
            rtmd_json_key_str(&j, sc->uids[i]);
            rtmd_json_cstr(&j, online[i] ? "online" : "offline");
        }
        rtmd_json_obj_end(&j);
        rtmd_json_obj_end(&j);
        api_respond_json(call, 200, rtmd_str_make(b->data, b->len));
    }
    cJSON_Delete(sc->root);
    free(sc);
}

void api_users_status(struct api_call *call)
{
    cJSON *root = api_parse_body(call);
    if (!root)
        return;
    const cJSON *uids = cJSON_GetObjectItemCaseSensitive(root, "uids");
    int n = cJSON_IsArray(uids) ? cJSON_GetArraySize(uids) : -1;
    if (n < 1 || n > RTMD_STATUS_MAX) {
        cJSON_Delete(root);
        api_respond_error(call, 400, "bad_request", "uids must be an array of 1-256 user IDs");
        return;
    }
    struct status_call *sc = rtmd_calloc(1, sizeof(*sc));
    sc->call = call;
    sc->root = root;
    const cJSON *v;
    cJSON_ArrayForEach(v, uids)
    {
        struct rtmd_str uid =
            cJSON_IsString(v) && v->valuestring ? rtmd_str_cstr(v->valuestring) : RTMD_STR_NULL;
        if (!rtmd_id_valid(uid)) {
            cJSON_Delete(root);
            free(sc);
            api_respond_error(call, 400, "bad_request",
                              "each of uids must be 1-64 characters of the allowed set");
            return;
        }
        sc->uids[sc->n++] = uid;
    }
    sc->n = rtmd_online_sort_uids(sc->uids, sc->n); /* keys in order, each once */
    int r = rtmd_online_status(call->api->store, call->app, sc->uids, sc->n, on_status, sc);
    if (r < 0) {
        cJSON_Delete(root);
        free(sc);
        api_respond_store_error(call, r);
    }
}
