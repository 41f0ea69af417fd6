/*
 * redis_dash.c — the dashboard's reads with the redis backend: an app at a
 * glance (the OVERVIEW script: who holds a session, their channels with
 * member counts, every region's unread backlog and drops) and the nodes
 * (the NODES script: each node's report beside its heartbeat). Reads only,
 * but for a node's own report.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/ids.h"
#include "store/redis_internal.h"
#include "store/redis_lua.h"

#define NODES_INFO "rtmd:{nodes}:info"

struct dash_call {
    struct redis_store *rs;
    union {
        rtmd_store_overview_cb overview;
        rtmd_store_nodes_cb nodes;
    } cb;
    void *arg;
};

static bool reply_str(const redisReply *r, struct rtmd_str *out)
{
    if (r->type != REDIS_REPLY_STRING)
        return false;
    *out = rtmd_str_make(r->str, r->len);
    return true;
}

static bool reply_u64(const redisReply *r, uint64_t *out)
{
    long long v = 0;
    if (!rtmd_redis_reply_int(r, &v) || v < 0)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* Parses the OVERVIEW reply into ov (views into reply); false when it is
 * not one. */
static bool parse_overview(const redisReply *reply, size_t n_regions,
                           struct rtmd_store_overview *ov, struct rtmd_str *uids,
                           struct rtmd_str *channels, uint64_t *members)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return false;
    size_t i = 0, e = reply->elements;
    uint64_t n = 0;
    if (!reply_u64(reply->element[i++], &ov->n_users) || !reply_u64(reply->element[i++], &n) ||
        n > RTMD_OVERVIEW_MAX || e - i < n + 1)
        return false;
    for (size_t k = 0; k < n; k++)
        if (!reply_str(reply->element[i++], &uids[k]))
            return false;
    ov->n_uids = (size_t)n;
    if (!reply_u64(reply->element[i++], &n) || n > RTMD_OVERVIEW_MAX || (e - i) / 2 < n)
        return false;
    for (size_t k = 0; k < n; k++)
        if (!reply_str(reply->element[i++], &channels[k]) ||
            !reply_u64(reply->element[i++], &members[k]))
            return false;
    ov->n_channels = ov->n_listed = (size_t)n;
    if (e - i != n_regions * 2 * RTMD_EVLOG_KINDS)
        return false;
    for (size_t r = 0; r < n_regions; r++)
        for (int k = 0; k < RTMD_EVLOG_KINDS; k++)
            if (!reply_u64(reply->element[i++], &ov->unread[r][k]) ||
                !reply_u64(reply->element[i++], &ov->dropped[r][k]))
                return false;
    ov->has_online = true;
    ov->uids = uids;
    ov->channels = channels;
    ov->members = members;
    return true;
}

static void on_overview_reply(void *arg, int status, const redisReply *reply)
{
    struct dash_call *c = arg;
    struct redis_store *rs = c->rs;
    struct rtmd_store_overview ov = {0};
    struct rtmd_str *uids = rtmd_malloc(2 * RTMD_OVERVIEW_MAX * sizeof(*uids));
    uint64_t members[RTMD_OVERVIEW_MAX];
    size_t n_regions = RTMD_MIN(rs->cfg->n_regions, (size_t)RTMD_REGIONS_MAX);
    if (status == 0 &&
        !parse_overview(reply, n_regions, &ov, uids, uids + RTMD_OVERVIEW_MAX, members))
        status = RTMD_ESTORE;
    c->cb.overview(c->arg, status, status == 0 ? &ov : NULL);
    free(uids);
    free(c);
    rtmd_redis_call_done(rs);
}

int rtmd_redis_overview(struct rtmd_store *s, const struct rtmd_app *app, rtmd_store_overview_cb cb,
                        void *arg)
{
    struct redis_store *rs = (struct redis_store *)s;
    struct app_rs *a = rtmd_redis_app(rs, app);
    if (rs->closing)
        return RTMD_ECLOSED;
    if (!a || !cb)
        return -EINVAL;
    char limit[16];
    snprintf(limit, sizeof(limit), "%u", RTMD_OVERVIEW_MAX);
    struct rtmd_str args[1 + RTMD_REGIONS_MAX];
    int nargs = 0;
    args[nargs++] = rtmd_str_cstr(limit);
    for (size_t r = 0; r < rs->cfg->n_regions && r < RTMD_REGIONS_MAX; r++)
        args[nargs++] = rtmd_str_cstr(rs->cfg->regions[r]);
    struct rtmd_str key = rtmd_redis_app_key(a);
    struct dash_call *c = rtmd_malloc(sizeof(*c));
    *c = (struct dash_call){.rs = rs, .cb.overview = cb, .arg = arg};
    int r = rtmd_redis_script(rs, RTMD_LUA_OVERVIEW, &key, 1, args, nargs, on_overview_reply, c);
    if (r < 0)
        free(c);
    return r == -ENOTCONN ? -ETIMEDOUT : r;
}

/* "CONNECTIONS SESSIONS MS" into n; false when it is not that. */
static bool parse_report(struct rtmd_str s, struct rtmd_node_report *n)
{
    char buf[80];
    if (s.len == 0 || s.len >= sizeof(buf))
        return false;
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    unsigned long long conns = 0, sessions = 0, ms = 0;
    if (sscanf(buf, "%llu %llu %llu", &conns, &sessions, &ms) != 3)
        return false;
    n->connections = conns;
    n->sessions = sessions;
    return true;
}

static void on_nodes_reply(void *arg, int status, const redisReply *reply)
{
    struct dash_call *c = arg;
    struct redis_store *rs = c->rs;
    uint64_t now = 0;
    struct rtmd_node_report *nodes = NULL;
    size_t n = 0;
    if (status == 0 &&
        (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
         (reply->elements - 1) % 3 != 0 || (reply->elements - 1) / 3 > RTMD_NODES_MAX ||
         !reply_u64(reply->element[0], &now)))
        status = RTMD_ESTORE;
    if (status == 0) {
        nodes = rtmd_calloc((reply->elements - 1) / 3 + 1, sizeof(*nodes));
        uint64_t timeout = (uint64_t)rs->cfg->node_timeout_s * 1000;
        for (size_t i = 1; i + 2 < reply->elements; i += 3) {
            struct rtmd_node_report *nd = &nodes[n];
            struct rtmd_str info = {0};
            if (!reply_str(reply->element[i], &nd->node) ||
                !reply_u64(reply->element[i + 1], &nd->ms) ||
                !reply_str(reply->element[i + 2], &info)) {
                status = RTMD_ESTORE;
                break;
            }
            parse_report(info, nd);
            nd->alive = now < nd->ms + timeout;
            nd->self = rtmd_str_eq_cstr(nd->node, rs->node);
            n++;
        }
    }
    if (c->cb.nodes)
        c->cb.nodes(c->arg, status, status == 0 ? nodes : NULL, status == 0 ? n : 0);
    free(nodes);
    free(c);
    rtmd_redis_call_done(rs);
}

int rtmd_redis_nodes(struct rtmd_store *s, const struct rtmd_node_report *me,
                     rtmd_store_nodes_cb cb, void *arg)
{
    struct redis_store *rs = (struct redis_store *)s;
    if (rs->closing)
        return RTMD_ECLOSED;
    char report[80], timeout[16], max[16];
    int rn = 0;
    if (me)
        rn = snprintf(report, sizeof(report), "%llu %llu %llu", (unsigned long long)me->connections,
                      (unsigned long long)me->sessions, (unsigned long long)me->ms);
    snprintf(timeout, sizeof(timeout), "%u", rs->cfg->node_timeout_s * 1000);
    snprintf(max, sizeof(max), "%u", RTMD_NODES_MAX);
    struct rtmd_str keys[] = {RTMD_STR_LIT(NODES_HB), RTMD_STR_LIT(NODES_INFO)};
    struct rtmd_str args[] = {me ? rtmd_str_cstr(rs->node) : RTMD_STR_LIT(""),
                              rtmd_str_make(report, (size_t)(rn > 0 ? rn : 0)),
                              rtmd_str_cstr(timeout), rtmd_str_cstr(max)};
    struct dash_call *c = rtmd_malloc(sizeof(*c));
    *c = (struct dash_call){.rs = rs, .cb.nodes = cb, .arg = arg};
    int r = rtmd_redis_script(rs, RTMD_LUA_NODES, keys, 2, args, 4, on_nodes_reply, c);
    if (r < 0)
        free(c);
    return r == -ENOTCONN ? -ETIMEDOUT : r;
}

/* ---- the live tail across nodes ---------------------------------------------------------- */

#define NODES_TAIL "rtmd:{nodes}:tail"
/* How long a node's word that it watches an app holds (it renews it every second). */
#define TAIL_TTL_MS 5000

static int tail_channel(const struct app_rs *a, char *out, size_t cap)
{
    return snprintf(out, cap, "%.*stail", (int)a->prefix_len, a->prefix);
}

void rtmd_redis_tail_set(struct rtmd_store *s, rtmd_store_tail_fn fn, void *ctx)
{
    struct redis_store *rs = (struct redis_store *)s;
    rs->tail = fn;
    rs->tail_ctx = ctx;
}

void rtmd_redis_tail_watch(struct rtmd_store *s, const struct rtmd_app *app, bool on)
{
    struct redis_store *rs = (struct redis_store *)s;
    struct app_rs *a = rtmd_redis_app(rs, app);
    if (!a || (!on && a->tail_viewers == 0))
        return;
    char name[128];
    int n = tail_channel(a, name, sizeof(name));
    if (on && a->tail_viewers++ == 0) {
        rtmd_redis_subscribe(rs, rtmd_str_make(name, (size_t)n));
        rtmd_redis_tail_tick(rs); /* the other nodes learn it within a second */
    } else if (!on && --a->tail_viewers == 0) {
        rtmd_redis_unsubscribe(rs, rtmd_str_make(name, (size_t)n));
    }
}

bool rtmd_redis_tail_wanted(struct rtmd_store *s, const struct rtmd_app *app)
{
    struct app_rs *a = rtmd_redis_app((struct redis_store *)s, app);
    return a && a->tail_elsewhere;
}

/* Fire and forget. */
static void on_tail_published(void *arg, int status, const redisReply *reply)
{
    (void)arg;
    (void)status;
    (void)reply;
}

void rtmd_redis_tail_publish(struct rtmd_store *s, const struct rtmd_app *app,
                             struct rtmd_str event)
{
    struct redis_store *rs = (struct redis_store *)s;
    struct app_rs *a = rtmd_redis_app(rs, app);
    if (!a || !a->tail_elsewhere || rs->closing || event.len > RTMD_TAIL_EVENT_MAX)
        return;
    char name[128], msg[RTMD_NODE_ID_MAX + 1 + RTMD_TAIL_EVENT_MAX];
    int n = tail_channel(a, name, sizeof(name));
    size_t k = strlen(rs->node);
    memcpy(msg, rs->node, k);
    msg[k++] = '\n';
    memcpy(msg + k, event.p, event.len);
    /* Fire and forget: a lost tail event is a line the page misses. */
    rtmd_redis_publish(rs, rtmd_str_make(name, (size_t)n), rtmd_str_make(msg, k + event.len),
                       on_tail_published, NULL);
}

static void on_tail_reply(void *arg, int status, const redisReply *reply)
{
    struct redis_store *rs = arg;
    rs->tail_busy = false;
    if (status == 0 && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < rs->n_apps; i++)
            rs->apps[i]->tail_elsewhere = false;
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *e = reply->element[i];
            if (e->type != REDIS_REPLY_STRING)
                continue;
            struct app_rs *a =
                rtmd_redis_app(rs, rtmd_config_app(rs->cfg, rtmd_str_make(e->str, e->len)));
            if (a)
                a->tail_elsewhere = true;
        }
    }
    rtmd_redis_call_done(rs);
}

/* "P tw", set while some node watches the app (renewed every second). */
static void tail_mark(struct redis_store *rs, const struct app_rs *a, const char *ttl)
{
    char key[128];
    int n = snprintf(key, sizeof(key), "%.*stw", (int)a->prefix_len, a->prefix);
    const char *argv[] = {"SET", key, "1", "PX", ttl};
    size_t lens[] = {3, (size_t)n, 1, 2, strlen(ttl)};
    rtmd_redis_command(rs, rtmd_redis_app_key(a), 5, argv, lens, on_tail_published, NULL);
}

void rtmd_redis_tail_tick(struct redis_store *rs)
{
    if (rs->tail_busy || rs->closing || !rs->tail)
        return;
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%u", TAIL_TTL_MS);
    size_t n = 0;
    for (size_t i = 0; i < rs->n_apps; i++)
        n += rs->apps[i]->tail_viewers > 0;
    struct rtmd_str *args = rtmd_malloc((2 + n) * sizeof(*args));
    size_t k = 0;
    args[k++] = rtmd_str_cstr(rs->node);
    args[k++] = rtmd_str_cstr(ttl);
    for (size_t i = 0; i < rs->n_apps; i++)
        if (rs->apps[i]->tail_viewers > 0)
            args[k++] = rtmd_str_cstr(rs->apps[i]->app->id);
    struct rtmd_str key = RTMD_STR_LIT(NODES_TAIL);
    if (rtmd_redis_script(rs, RTMD_LUA_TAIL, &key, 1, args, (int)k, on_tail_reply, rs) == 0) {
        rs->tail_busy = true;
        /* And in each watched app's slot, for the scripts that record events
         * no node taps (a takeover's, a dead node's): they publish those. */
        for (size_t i = 0; i < rs->n_apps; i++)
            if (rs->apps[i]->tail_viewers > 0)
                tail_mark(rs, rs->apps[i], ttl);
    }
    free(args);
}

/* "rtmd:{APPID}:tail", "NODE\n" + one Server-Sent Event from another node (an empty
 * NODE: from a script, for the events no node taps; see LUA_EVENTS). */
bool rtmd_redis_tail_push(struct redis_store *rs, struct rtmd_str channel, struct rtmd_str msg)
{
    static const char suffix[] = "}:tail";
    size_t want = 6 + RTMD_APPID_LEN + sizeof(suffix) - 1;
    if (channel.len != want || memcmp(channel.p, "rtmd:{", 6) != 0 ||
        memcmp(channel.p + 6 + RTMD_APPID_LEN, suffix, sizeof(suffix) - 1) != 0)
        return false;
    const struct rtmd_app *app =
        rtmd_config_app(rs->cfg, rtmd_str_make(channel.p + 6, RTMD_APPID_LEN));
    const char *nl = memchr(msg.p, '\n', msg.len);
    if (!app || !nl || !rs->tail)
        return true;
    struct rtmd_str node = rtmd_str_make(msg.p, (size_t)(nl - msg.p));
    struct rtmd_str event = rtmd_str_make(nl + 1, msg.len - node.len - 1);
    if (rtmd_str_eq_cstr(node, rs->node) || event.len > RTMD_TAIL_EVENT_MAX)
        return true; /* this node's own: its viewers had it already */
    rs->tail(rs->tail_ctx, app, event);
    return true;
}
