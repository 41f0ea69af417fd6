/*
 * redis_online.c — who is online with the redis backend, for every node:
 * a channel's members from P cm:CHANNEL (the MEMBERS script: a page by
 * ZRANGEBYLEX after the cursor's uid, and HLEN of P ch:CHANNEL), statuses
 * from P sess (one HMGET). Reads only; answered by Redis's state, which
 * every node's presence script writes.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "presence/online.h"
#include "store/redis_internal.h"
#include "store/redis_lua.h"

struct online_call {
    struct redis_store *rs;
    union {
        rtmd_store_members_cb members;
        rtmd_store_status_cb status;
    } cb;
    void *arg;
    size_t n; /* status: uids asked */
};

static void on_members_reply(void *arg, int status, const redisReply *reply)
{
    struct online_call *c = arg;
    struct redis_store *rs = c->rs;
    long long count = 0, more = 0;
    if (status == 0 && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
                        reply->elements - 2 > RTMD_MEMBERS_PAGE_MAX ||
                        !rtmd_redis_reply_int(reply->element[0], &count) ||
                        !rtmd_redis_reply_int(reply->element[1], &more) || count < 0))
        status = RTMD_ESTORE;
    struct rtmd_str uids[RTMD_MEMBERS_PAGE_MAX];
    size_t n = 0;
    for (size_t i = 2; status == 0 && i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_STRING) {
            status = RTMD_ESTORE;
            break;
        }
        uids[n++] = rtmd_str_make(e->str, e->len);
    }
    struct rtmd_member_page page = {(uint64_t)count, n, uids, more != 0};
    c->cb.members(c->arg, status, status == 0 ? &page : NULL);
    free(c);
    rtmd_redis_call_done(rs);
}

int rtmd_redis_members(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str channel,
                       struct rtmd_str after, uint32_t limit, rtmd_store_members_cb cb, void *arg)
{
    struct redis_store *rs = (struct redis_store *)s;
    struct app_rs *a = rtmd_redis_app(rs, app);
    if (rs->closing)
        return RTMD_ECLOSED;
    if (!a || !cb || !rtmd_id_valid(channel) || limit > RTMD_MEMBERS_PAGE_MAX)
        return -EINVAL;
    char slimit[16];
    snprintf(slimit, sizeof(slimit), "%u", limit);
    struct rtmd_str key = rtmd_redis_app_key(a);
    struct rtmd_str args[] = {channel, after.p ? after : RTMD_STR_LIT(""), rtmd_str_cstr(slimit)};
    struct online_call *c = rtmd_malloc(sizeof(*c));
    *c = (struct online_call){.rs = rs, .cb.members = cb, .arg = arg};
    int r = rtmd_redis_script(rs, RTMD_LUA_MEMBERS, &key, 1, args, 3, on_members_reply, c);
    if (r < 0)
        free(c);
    return r == -ENOTCONN ? -ETIMEDOUT : r;
}

static void on_status_reply(void *arg, int status, const redisReply *reply)
{
    struct online_call *c = arg;
    struct redis_store *rs = c->rs;
    bool online[RTMD_STATUS_MAX] = {false};
    if (status == 0 && (reply->type != REDIS_REPLY_ARRAY || reply->elements != c->n))
        status = RTMD_ESTORE;
    for (size_t i = 0; status == 0 && i < c->n; i++)
        online[i] = reply->element[i]->type == REDIS_REPLY_STRING;
    c->cb.status(c->arg, status, online, status == 0 ? c->n : 0);
    free(c);
    rtmd_redis_call_done(rs);
}

int rtmd_redis_status(struct rtmd_store *s, const struct rtmd_app *app, const struct rtmd_str *uids,
                      size_t n, rtmd_store_status_cb cb, void *arg)
{
    struct redis_store *rs = (struct redis_store *)s;
    struct app_rs *a = rtmd_redis_app(rs, app);
    if (rs->closing)
        return RTMD_ECLOSED;
    if (!a || !cb || n == 0 || n > RTMD_STATUS_MAX)
        return -EINVAL;
    /* HMGET P sess uid...: a uid holds a session on some node when it has an owner. */
    struct rtmd_str prefix = rtmd_redis_app_key(a);
    char key[128];
    int kn = snprintf(key, sizeof(key), "%.*ssess", (int)prefix.len, prefix.p);
    if (kn < 0 || (size_t)kn >= sizeof(key))
        return -EINVAL;
    const char *argv[2 + RTMD_STATUS_MAX];
    size_t lens[2 + RTMD_STATUS_MAX];
    argv[0] = "HMGET";
    lens[0] = 5;
    argv[1] = key;
    lens[1] = (size_t)kn;
    for (size_t i = 0; i < n; i++) {
        argv[2 + i] = uids[i].p;
        lens[2 + i] = uids[i].len;
    }
    struct online_call *c = rtmd_malloc(sizeof(*c));
    *c = (struct online_call){.rs = rs, .cb.status = cb, .arg = arg, .n = n};
    int r = rtmd_redis_command(rs, rtmd_str_make(key, (size_t)kn), (int)(2 + n), argv, lens,
                               on_status_reply, c);
    if (r < 0)
        free(c);
    return r == -ENOTCONN ? -ETIMEDOUT : r;
}
