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

/* The page of a MEMBERS reply (uids point into reply, room for
 * RTMD_MEMBERS_PAGE_MAX): 0, or a failure status. */
static int page_of(int status, const redisReply *reply, struct rtmd_str *uids,
                   struct rtmd_member_page *page)
{
    long long count = 0, more = 0;
    if (status == 0 && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
                        reply->elements - 2 > RTMD_MEMBERS_PAGE_MAX ||
                        !rtmd_redis_reply_int(reply->element[0], &count) ||
                        !rtmd_redis_reply_int(reply->element[1], &more) || count < 0))
        status = RTMD_ESTORE;
    size_t n = 0;
    for (size_t i = 2; status == 0 && i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_STRING)
            return RTMD_ESTORE;
        uids[n++] = rtmd_str_make(e->str, e->len);
    }
    *page = (struct rtmd_member_page){(uint64_t)count, n, uids, more != 0};
    return status;
}

static void on_members_reply(void *arg, int status, const redisReply *reply)
{
    struct online_call *c = arg;
    struct redis_store *rs = c->rs;
    struct rtmd_str uids[RTMD_MEMBERS_PAGE_MAX];
    struct rtmd_member_page page;
    status = page_of(status, reply, uids, &page);
    c->cb.members(c->arg, status, status == 0 ? &page : NULL);
    free(c);
    rtmd_redis_call_done(rs);
}

static int members_script(struct app_rs *a, struct rtmd_str channel, struct rtmd_str after,
                          uint32_t limit, rtmd_redis_cb cb, void *arg)
{
    char slimit[16];
    snprintf(slimit, sizeof(slimit), "%u", limit);
    struct rtmd_str key = rtmd_redis_app_key(a);
    struct rtmd_str args[] = {channel, after.p ? after : RTMD_STR_LIT(""), rtmd_str_cstr(slimit)};
    int r = rtmd_redis_script(a->rs, RTMD_LUA_MEMBERS, &key, 1, args, 3, cb, arg);
    return r == -ENOTCONN ? -ETIMEDOUT : r;
}

/*
 * First pages (no cursor) of one channel and limit asked while one is being
 * read share the read after it: each of them asked after that read went
 * out, so the next read sees what it did before asking (a join's own
 * membership). A join storm on a big channel then costs Redis a page per
 * round trip instead of a page per join (a join's reply carries the first
 * 512 members).
 */
struct page_waiter {
    rtmd_store_members_cb cb;
    void *arg;
};

struct page_share {
    struct app_rs *a;
    uint32_t limit;
    char key[RTMD_ID_MAX + 16]; /* "LIMIT:CHANNEL", the map's key */
    size_t key_len, channel_at; /* the channel: key from channel_at on */
    struct page_waiter *sent;   /* answered by the read in flight */
    size_t n_sent;
    struct page_waiter *next; /* asked since: the next read's */
    size_t n_next, cap_next;
};

static void on_shared_page(void *arg, int status, const redisReply *reply);

/* Answers the read's waiters; then sends the next read for whoever asked
 * meanwhile (answering them at once if it cannot go), or forgets sh. */
static void share_answer(struct page_share *sh, int status, const redisReply *reply)
{
    struct app_rs *a = sh->a;
    for (;;) {
        struct rtmd_str uids[RTMD_MEMBERS_PAGE_MAX];
        struct rtmd_member_page page;
        if (reply)
            status = page_of(status, reply, uids, &page);
        struct page_waiter *w = sh->sent;
        size_t n = sh->n_sent;
        sh->sent = NULL;
        sh->n_sent = 0;
        for (size_t i = 0; i < n; i++) /* may ask again: into next */
            w[i].cb(w[i].arg, status, status == 0 ? &page : NULL);
        free(w);
        if (sh->n_next == 0) {
            rtmd_hashmap_remove(&a->pages, rtmd_str_make(sh->key, sh->key_len));
            free(sh->next);
            free(sh);
            return;
        }
        sh->sent = sh->next;
        sh->n_sent = sh->n_next;
        sh->next = NULL;
        sh->n_next = sh->cap_next = 0;
        status = a->rs->closing
                     ? RTMD_ECLOSED
                     : members_script(
                           a, rtmd_str_make(sh->key + sh->channel_at, sh->key_len - sh->channel_at),
                           RTMD_STR_NULL, sh->limit, on_shared_page, sh);
        if (status == 0)
            return;
        reply = NULL;
    }
}

static void on_shared_page(void *arg, int status, const redisReply *reply)
{
    struct page_share *sh = arg;
    struct redis_store *rs = sh->a->rs;
    share_answer(sh, status, reply);
    rtmd_redis_call_done(rs);
}

static int shared_first_page(struct app_rs *a, struct rtmd_str channel, uint32_t limit,
                             rtmd_store_members_cb cb, void *arg)
{
    char key[RTMD_ID_MAX + 16];
    int kl = snprintf(key, sizeof(key), "%u:%.*s", limit, (int)channel.len, channel.p);
    struct page_share *sh = rtmd_hashmap_get(&a->pages, rtmd_str_make(key, (size_t)kl));
    if (sh) {
        if (sh->n_next == sh->cap_next) {
            sh->cap_next = sh->cap_next ? 2 * sh->cap_next : 8;
            sh->next = rtmd_realloc(sh->next, sh->cap_next * sizeof(*sh->next));
        }
        sh->next[sh->n_next++] = (struct page_waiter){cb, arg};
        return 0;
    }
    sh = rtmd_calloc(1, sizeof(*sh));
    sh->a = a;
    sh->limit = limit;
    memcpy(sh->key, key, (size_t)kl);
    sh->key_len = (size_t)kl;
    sh->channel_at = (size_t)kl - channel.len;
    int r = members_script(a, channel, RTMD_STR_NULL, limit, on_shared_page, sh);
    if (r < 0) {
        free(sh);
        return r;
    }
    sh->sent = rtmd_malloc(sizeof(*sh->sent));
    sh->sent[0] = (struct page_waiter){cb, arg};
    sh->n_sent = 1;
    rtmd_hashmap_put(&a->pages, rtmd_str_make(sh->key, sh->key_len), sh);
    return 0;
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
    if (after.len == 0)
        return shared_first_page(a, channel, limit, cb, arg);
    struct online_call *c = rtmd_malloc(sizeof(*c));
    *c = (struct online_call){.rs = rs, .cb.members = cb, .arg = arg};
    int r = members_script(a, channel, after, limit, on_members_reply, c);
    if (r < 0)
        free(c);
    return r;
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
