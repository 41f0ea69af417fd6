/*
 * redis_outbox.c — the webhook outbox on the redis backend (store.h
 * outbox_*, docs/WEBHOOKS.md).
 *
 * Each app has its own outbox list (P wo, redis_lua.h), appended by the
 * presence and END_NODE scripts in the same script as the event itself (so
 * an acknowledged event is in it), and by OUTBOX_MESSAGE for message
 * events. Ids count per app. A webhook's position is per app (P wp), so a
 * read returns rows of one app: this node goes through the apps in turn,
 * starting after the app it served last, until one has rows (at most one
 * pass: an empty answer means every app is delivered up to date). The
 * acknowledgement of a batch goes to the app it came from, with the read of
 * that app (one script). Order per app holds: one batch of a webhook is in
 * flight at a time, and one node at a time delivers a webhook — the node
 * holding its lease (rtmd:{webhooks}:lease:HOOK, node_timeout_s long, taken
 * or renewed before every read and renewed at every heartbeat while the
 * webhook is in this node's config, so a batch waiting out its backoff
 * keeps it; a node that does not hold it answers empty and its webhook
 * polls again later; a dead node's lease expires with its heartbeat).
 *
 * Loop thread only.
 */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/redis_internal.h"

#define MODULE "store"

/* What this node knows of a webhook it delivers. */
struct ob_hook {
    char name[RTMD_WEBHOOK_NAME_MAX + 1];
    size_t next_app; /* where the next round starts */
    size_t last_app; /* the app of the last batch (where its ack goes) */
    bool has_last;
    bool held;     /* this node holds its lease (as of the last answer) */
    bool renewing; /* a renewal is out */
};

struct ob_call {
    struct redis_store *rs;
    struct ob_hook *h;
    uint64_t ack;
    uint32_t max;
    size_t app;   /* the app being read */
    size_t tried; /* apps read in this call */
    rtmd_store_outbox_cb cb;
    void *arg;
};

/* The webhook's state; made at its first read, kept until the store closes
 * (each its own allocation: calls in flight point to it). */
static struct ob_hook *hook_of(struct redis_store *rs, struct rtmd_str name)
{
    for (size_t i = 0; i < rs->n_ob_hooks; i++)
        if (rtmd_str_eq_cstr(name, rs->ob_hooks[i]->name))
            return rs->ob_hooks[i];
    rs->ob_hooks = rtmd_realloc(rs->ob_hooks, (rs->n_ob_hooks + 1) * sizeof(*rs->ob_hooks));
    struct ob_hook *h = rtmd_calloc(1, sizeof(*h));
    memcpy(h->name, name.p, name.len);
    rs->ob_hooks[rs->n_ob_hooks++] = h;
    return h;
}

void rtmd_redis_outbox_free(struct redis_store *rs)
{
    for (size_t i = 0; i < rs->n_ob_hooks; i++)
        free(rs->ob_hooks[i]);
    free(rs->ob_hooks);
    rs->ob_hooks = NULL;
    rs->n_ob_hooks = 0;
}

static void done(struct ob_call *c, int status, const struct rtmd_outbox_batch *b)
{
    struct rtmd_outbox_batch empty = {NULL, 0, 0, 0};
    c->cb(c->arg, status, status == 0 ? (b ? b : &empty) : NULL);
    free(c);
}

/* "ID\nKIND\nNUMBER\nMS\nSESSION\nJSON" → a row (views into the reply). */
static bool parse_row(const redisReply *e, const struct app_rs *a, struct rtmd_outbox_row *r)
{
    if (e->type != REDIS_REPLY_STRING)
        return false;
    struct rtmd_str rest = rtmd_str_make(e->str, e->len);
    struct rtmd_str f[5];
    for (int i = 0; i < 5; i++) {
        const char *nl = memchr(rest.p, '\n', rest.len);
        if (!nl)
            return false;
        f[i] = rtmd_str_make(rest.p, (size_t)(nl - rest.p));
        rest = rtmd_str_make(nl + 1, rest.len - f[i].len - 1);
    }
    uint64_t id, num, ms;
    if (rtmd_str_to_u64(f[0], UINT64_MAX, &id) || rtmd_str_to_u64(f[2], UINT64_MAX, &num) ||
        rtmd_str_to_u64(f[3], UINT64_MAX, &ms) || f[1].len != 1)
        return false;
    r->id = id;
    r->kind = f[1].p[0] == 'u'   ? RTMD_EVLOG_USER
              : f[1].p[0] == 'c' ? RTMD_EVLOG_CHANNEL
                                 : RTMD_OUTBOX_MESSAGES;
    r->seq = num;
    r->ms = ms;
    r->session = f[4];
    r->json = rest;
    r->app = rtmd_str_cstr(a->app->id);
    return true;
}

static void read_app(struct ob_call *c);

static void on_read_reply(void *arg, int status, const redisReply *reply)
{
    struct ob_call *c = arg;
    struct redis_store *rs = c->rs;
    long long pos = 0, newest = 0;
    if (status == 0 && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
                        !rtmd_redis_reply_int(reply->element[0], &pos) ||
                        !rtmd_redis_reply_int(reply->element[1], &newest)))
        status = RTMD_ESTORE;
    if (status != 0) {
        done(c, status, NULL);
        rtmd_redis_call_done(rs);
        return;
    }
    c->ack = 0; /* applied */
    size_t n = reply->elements - 2;
    if (n == 0 && ++c->tried < rs->n_apps) {
        c->app = (c->app + 1) % rs->n_apps;
        read_app(c);
        rtmd_redis_call_done(rs);
        return;
    }
    struct rtmd_outbox_row *rows = n ? rtmd_calloc(n, sizeof(*rows)) : NULL;
    const struct app_rs *a = rs->apps[c->app];
    for (size_t i = 0; i < n && status == 0; i++) {
        if (!parse_row(reply->element[2 + i], a, &rows[i])) {
            /* Only this backend's scripts write there: a bug, or not ours. */
            rtmd_log_error(MODULE, "webhook outbox of app %s: a row not understood", a->app->id);
            status = RTMD_ESTORE;
        }
    }
    if (n) {
        c->h->last_app = c->app;
        c->h->has_last = true;
        c->h->next_app = (c->app + 1) % rs->n_apps;
    }
    struct rtmd_outbox_batch b = {rows, n, (uint64_t)pos, (uint64_t)newest};
    done(c, status, &b);
    free(rows);
    rtmd_redis_call_done(rs);
}

/* Reads c->app (skipping retired apps), acknowledging c->ack there. */
static void read_app(struct ob_call *c)
{
    struct redis_store *rs = c->rs;
    while (rs->apps[c->app]->app->retired && c->ack == 0 && ++c->tried < rs->n_apps)
        c->app = (c->app + 1) % rs->n_apps;
    struct app_rs *a = rs->apps[c->app];
    char ack[24], max[16], kinds[16];
    snprintf(ack, sizeof(ack), "%llu", (unsigned long long)c->ack);
    snprintf(max, sizeof(max), "%u", c->max);
    snprintf(kinds, sizeof(kinds), "%u", rs->outbox_kinds);
    struct rtmd_str key = rtmd_redis_app_key(a);
    struct rtmd_str args[] = {rtmd_str_cstr(c->h->name), rtmd_str_cstr(ack), rtmd_str_cstr(max),
                              rtmd_str_cstr(kinds)};
    int r = rtmd_redis_script(rs, RTMD_LUA_OUTBOX_READ, &key, 1, args, RTMD_ARRAY_SIZE(args),
                              on_read_reply, c);
    if (r < 0)
        done(c, r == -ENOTCONN ? -ETIMEDOUT : r, NULL);
}

/* The lease script's call for hook h: KEYS and ARGV. */
static int lease(struct redis_store *rs, struct ob_hook *h, rtmd_redis_cb cb, void *arg)
{
    char key[96], ttl[16];
    int kl = snprintf(key, sizeof(key), "rtmd:{webhooks}:lease:%s", h->name);
    snprintf(ttl, sizeof(ttl), "%u", rs->cfg->node_timeout_s * 1000);
    struct rtmd_str k = rtmd_str_make(key, (size_t)kl);
    struct rtmd_str args[] = {rtmd_str_cstr(rs->node), rtmd_str_cstr(ttl)};
    return rtmd_redis_script(rs, RTMD_LUA_WEBHOOK_LEASE, &k, 1, args, RTMD_ARRAY_SIZE(args), cb,
                             arg);
}

static void on_lease_reply(void *arg, int status, const redisReply *reply)
{
    struct ob_call *c = arg;
    struct redis_store *rs = c->rs;
    long long held = 0;
    if (status == 0 && !rtmd_redis_reply_int(reply, &held))
        status = RTMD_ESTORE;
    c->h->held = status == 0 && held;
    if (status != 0 || !held) {
        done(c, status, NULL); /* another node delivers this webhook: nothing for us */
    } else {
        c->app = c->ack && c->h->has_last ? c->h->last_app : c->h->next_app % rs->n_apps;
        if (c->ack && !c->h->has_last)
            c->ack = 0;
        read_app(c);
    }
    rtmd_redis_call_done(rs);
}

int rtmd_redis_outbox_read(struct rtmd_store *base, struct rtmd_str hook, uint64_t ack,
                           uint64_t prune_upto, uint32_t max, rtmd_store_outbox_cb cb, void *arg)
{
    (void)prune_upto; /* each app's read script prunes its own list */
    struct redis_store *rs = (struct redis_store *)base;
    if (rs->closing)
        return RTMD_ECLOSED;
    if (!cb || max == 0 || max > RTMD_OUTBOX_READ_MAX || hook.len == 0 ||
        hook.len > RTMD_WEBHOOK_NAME_MAX)
        return -EINVAL;
    if (rs->n_apps == 0)
        return -EINVAL;
    struct ob_call *c = rtmd_calloc(1, sizeof(*c));
    *c = (struct ob_call){rs, hook_of(rs, hook), ack, max, 0, 0, cb, arg};
    int r = lease(rs, c->h, on_lease_reply, c);
    if (r < 0) {
        free(c);
        return r == -ENOTCONN ? -ETIMEDOUT : r;
    }
    return 0;
}

struct msg_call {
    struct redis_store *rs;
    rtmd_store_cb cb;
    void *arg;
};

static void on_message_reply(void *arg, int status, const redisReply *reply)
{
    struct msg_call *c = arg;
    struct redis_store *rs = c->rs;
    long long id = 0;
    if (status == 0 && !rtmd_redis_reply_int(reply, &id))
        status = RTMD_ESTORE;
    c->cb(c->arg, status);
    free(c);
    if (status == 0 && rs->outbox_notify)
        rs->outbox_notify(rs->outbox_ctx, 0);
    rtmd_redis_call_done(rs);
}

int rtmd_redis_outbox_message(struct rtmd_store *base, const struct rtmd_app *app,
                              const struct rtmd_message *m, rtmd_store_cb cb, void *arg)
{
    struct redis_store *rs = (struct redis_store *)base;
    struct app_rs *a = rtmd_redis_app(rs, app);
    if (rs->closing)
        return RTMD_ECLOSED;
    if (!a || !cb)
        return -EINVAL;
    struct rtmd_buf json;
    rtmd_buf_init(&json, 6 * (m->src.len + m->dst.len + m->payload.len) + 256);
    int rc = rtmd_message_event_format(&json, m);
    if (rc) {
        rtmd_buf_free(&json);
        return rc;
    }
    char ms[24];
    snprintf(ms, sizeof(ms), "%llu", (unsigned long long)m->ms);
    struct rtmd_str key = rtmd_redis_app_key(a);
    struct rtmd_str args[] = {rtmd_str_cstr(ms), rtmd_str_make(json.data, json.len)};
    struct msg_call *c = rtmd_malloc(sizeof(*c));
    *c = (struct msg_call){rs, cb, arg};
    int r = rtmd_redis_script(rs, RTMD_LUA_OUTBOX_MESSAGE, &key, 1, args, RTMD_ARRAY_SIZE(args),
                              on_message_reply, c);
    rtmd_buf_free(&json); /* the call copied its arguments */
    if (r < 0) {
        free(c);
        return r == -ENOTCONN ? -ETIMEDOUT : r;
    }
    return 0;
}

/* A renewal's answer (the store counts it in flight: its close waits). */
struct renew_call {
    struct redis_store *rs;
    struct ob_hook *h;
};

static void on_renewed(void *arg, int status, const redisReply *reply)
{
    struct renew_call *c = arg;
    long long held = 0;
    c->h->renewing = false;
    c->h->held = status == 0 && rtmd_redis_reply_int(reply, &held) && held;
    struct redis_store *rs = c->rs;
    free(c);
    rtmd_redis_call_done(rs);
}

void rtmd_redis_outbox_renew(struct redis_store *rs)
{
    for (size_t i = 0; i < rs->n_ob_hooks; i++) {
        struct ob_hook *h = rs->ob_hooks[i];
        bool configured = false;
        for (size_t k = 0; k < rs->cfg->n_webhooks && !configured; k++)
            configured = strcmp(rs->cfg->webhooks[k]->name, h->name) == 0;
        if (!h->held || !configured || h->renewing)
            continue;
        struct renew_call *c = rtmd_malloc(sizeof(*c));
        *c = (struct renew_call){rs, h};
        if (lease(rs, h, on_renewed, c) == 0)
            h->renewing = true;
        else
            free(c);
    }
}

void rtmd_redis_outbox_watch(struct rtmd_store *base, uint32_t kinds,
                             void (*notify)(void *ctx, uint64_t newest), void *ctx)
{
    struct redis_store *rs = (struct redis_store *)base;
    rs->outbox_kinds = kinds;
    rs->outbox_notify = notify;
    rs->outbox_ctx = ctx;
}

bool rtmd_redis_outbox_wants(const struct rtmd_store *base, int kind)
{
    const struct redis_store *rs = (const struct redis_store *)base;
    return kind >= 0 && kind < 32 && (rs->outbox_kinds & (1u << kind));
}
