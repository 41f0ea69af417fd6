/*
 * online_ops.c — who is online, for clients: the members a join's reply
 * carries, and the ops members {channel, cursor, limit} and status {uids}.
 * Each waits for presence/online.h (the store, with the redis backend);
 * later ops of the connection wait behind it, as behind any store call.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "core/json.h"
#include "gateway/gateway.h"
#include "gateway/internal.h"
#include "presence/online.h"

/* A join's reply lists at most this many members (Agora SDK's channel limit). */
#define JOIN_MEMBERS_MAX 512

/* A query in flight for the op that made the client busy. The session is
 * held until it answers. */
struct query {
    struct rtmd_session *s;
    const char *what; /* for a store failure: "the members could not be read"; NULL for a
                         join's members, whose reply is ok without them then */
    size_t n;
    uint8_t len[RTMD_STATUS_MAX];
    char uid[RTMD_STATUS_MAX][RTMD_ID_MAX]; /* status only */
};

/* The client still waiting for the answer (entered), or NULL. */
static struct gw_client *query_client(struct query *q)
{
    struct gw_client *c = gw_owner_enter(q->s);
    if (c && !c->op_open) {
        /* The close answered the op already: resume only. */
        gw_op_done(c);
        gw_leave(c);
        return NULL;
    }
    if (c)
        c->op_open = false;
    return c;
}

static void query_end(struct query *q, struct gw_client *c)
{
    if (c) {
        gw_op_done(c);
        gw_leave(c);
    }
    struct rtmd_session *s = q->s;
    free(q);
    rtmd_session_unhold(s);
}

static void page_fields(struct rtmd_json *j, void *arg)
{
    const struct rtmd_member_page *page = arg;
    rtmd_json_key(j, "count");
    rtmd_json_u64(j, page->count);
    if (page->more && page->n > 0) {
        char cursor[RTMD_CURSOR_MAX + 1];
        size_t n = rtmd_online_cursor_encode(page->uids[page->n - 1], cursor);
        rtmd_json_key(j, "cursor");
        rtmd_json_str(j, rtmd_str_make(cursor, n));
    }
    rtmd_json_key(j, "members");
    rtmd_json_arr_begin(j);
    for (size_t i = 0; i < page->n; i++)
        rtmd_json_str(j, page->uids[i]);
    rtmd_json_arr_end(j);
}

static void on_page(void *arg, int status, const struct rtmd_member_page *page)
{
    struct query *q = arg;
    struct gw_client *c = query_client(q);
    if (c) {
        if (status < 0 && !q->what) /* a join: recorded all the same */
            gw_reply_ok(c, c->has_op_id, c->op_id, NULL, NULL);
        else if (status < 0)
            gw_reply_store_failure(c, c->has_op_id, c->op_id, status, q->what);
        else
            gw_reply_ok(c, c->has_op_id, c->op_id, page_fields, (void *)page);
        if (!q->what)
            gw_client_ready(c); /* the pushes held since the join */
    }
    query_end(q, c);
}

/* Starts a members query for the op c is busy with; false when it could
 * not start (nothing held). */
static bool start_page(struct gw_client *c, struct rtmd_str channel, struct rtmd_str after,
                       uint32_t limit, const char *what)
{
    struct query *q = rtmd_malloc(sizeof(*q));
    q->s = c->session;
    q->what = what;
    q->n = 0;
    rtmd_session_hold(q->s);
    int r = rtmd_online_members(c->gw->store, c->session->app, channel, after, limit, on_page, q);
    if (r < 0) {
        free(q);
        rtmd_session_unhold(c->session);
        return false;
    }
    return true;
}

void gw_join_recorded(struct rtmd_session *s, int status, void *arg)
{
    struct join_channel *jc = arg;
    struct gw_client *c = gw_owner_enter(s);
    if (!c) {
        free(jc);
        return;
    }
    if (status == 0 && c->op_open && s->state == RTMD_SESSION_ONLINE &&
        start_page(c, rtmd_str_make(jc->name, jc->len), RTMD_STR_NULL, JOIN_MEMBERS_MAX, NULL)) {
        free(jc);
        gw_leave(c); /* the op stays open until the page comes */
        return;
    }
    free(jc);
    gw_reply_recorded(c, status);
    gw_client_ready(c);
    gw_op_done(c);
    gw_leave(c);
}

void gw_op_members(struct gw_client *c, const struct gw_request *r)
{
    struct rtmd_str channel = gw_string(r->root, "channel");
    if (!rtmd_id_valid(channel)) {
        gw_reply_error(c, true, r->id, "invalid_channel",
                       "channel must be 1-64 printable ASCII characters of the allowed set");
        return;
    }
    if (!rtmd_session_in_channel(c->session, channel)) {
        gw_reply_error(c, true, r->id, "not_joined", "join the channel to list its members");
        return;
    }
    char after[RTMD_ID_MAX];
    size_t after_len = 0;
    const cJSON *cursor = cJSON_GetObjectItemCaseSensitive(r->root, "cursor");
    if (cursor && !cJSON_IsNull(cursor) &&
        (!cJSON_IsString(cursor) || !cursor->valuestring ||
         (cursor->valuestring[0] &&
          !rtmd_online_cursor_decode(rtmd_str_cstr(cursor->valuestring), after, &after_len)))) {
        gw_reply_error(c, true, r->id, "bad_request",
                       "cursor must be one a previous members reply returned");
        return;
    }
    uint32_t limit = JOIN_MEMBERS_MAX;
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(r->root, "limit");
    if (lim && !cJSON_IsNull(lim)) {
        if (!cJSON_IsNumber(lim) || lim->valuedouble < 1 || lim->valuedouble > JOIN_MEMBERS_MAX ||
            lim->valuedouble != (double)(uint32_t)lim->valuedouble) {
            gw_reply_error(c, true, r->id, "bad_request", "limit must be an integer 1-512");
            return;
        }
        limit = (uint32_t)lim->valuedouble;
    }
    if (!start_page(c, channel, rtmd_str_make(after, after_len), limit,
                    "the members could not be read")) {
        gw_reply_error(c, true, r->id, "store_error", "the members could not be read");
        return;
    }
    gw_op_begin(c, r);
}

struct status_answer {
    const struct query *q;
    const bool *online;
};

static void status_fields(struct rtmd_json *j, void *arg)
{
    const struct status_answer *a = arg;
    rtmd_json_key(j, "statuses");
    rtmd_json_obj_begin(j);
    for (size_t i = 0; i < a->q->n; i++) {
        rtmd_json_key_str(j, rtmd_str_make(a->q->uid[i], a->q->len[i]));
        rtmd_json_cstr(j, a->online[i] ? "online" : "offline");
    }
    rtmd_json_obj_end(j);
}

static void on_status(void *arg, int status, const bool *online, size_t n)
{
    struct query *q = arg;
    struct gw_client *c = query_client(q);
    if (c) {
        if (status < 0 || n != q->n) {
            gw_reply_store_failure(c, c->has_op_id, c->op_id, status < 0 ? status : RTMD_ESTORE,
                                   q->what);
        } else {
            struct status_answer a = {q, online};
            gw_reply_ok(c, c->has_op_id, c->op_id, status_fields, &a);
        }
    }
    query_end(q, c);
}

void gw_op_status(struct gw_client *c, const struct gw_request *r)
{
    const cJSON *uids = cJSON_GetObjectItemCaseSensitive(r->root, "uids");
    int n = cJSON_IsArray(uids) ? cJSON_GetArraySize(uids) : -1;
    if (n < 1 || n > RTMD_STATUS_MAX) {
        gw_reply_error(c, true, r->id, "bad_request", "uids must be an array of 1-256 user IDs");
        return;
    }
    struct rtmd_str list[RTMD_STATUS_MAX];
    size_t k = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, uids)
    {
        struct rtmd_str uid =
            cJSON_IsString(v) && v->valuestring ? rtmd_str_cstr(v->valuestring) : RTMD_STR_NULL;
        if (!rtmd_id_valid(uid)) {
            gw_reply_error(c, true, r->id, "invalid_uid",
                           "each of uids must be 1-64 characters of the allowed set");
            return;
        }
        list[k++] = uid;
    }
    k = rtmd_online_sort_uids(list, k); /* keys in order, each once */
    struct query *q = rtmd_malloc(sizeof(*q));
    q->s = c->session;
    q->what = "the statuses could not be read";
    q->n = k;
    for (size_t i = 0; i < k; i++) {
        memcpy(q->uid[i], list[i].p, list[i].len);
        q->len[i] = (uint8_t)list[i].len;
        list[i] = rtmd_str_make(q->uid[i], q->len[i]);
    }
    rtmd_session_hold(q->s);
    int rc = rtmd_online_status(c->gw->store, c->session->app, list, q->n, on_status, q);
    if (rc < 0) {
        free(q);
        rtmd_session_unhold(c->session);
        gw_reply_store_failure(c, true, r->id, rc, "the statuses could not be read");
        return;
    }
    gw_op_begin(c, r);
}
