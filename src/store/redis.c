/*
 * redis.c — the cluster backend: any number of rtmd nodes share one Redis 7
 * deployment and are one service.
 *
 * Data: redis_lua.h lists every key; each step that must be atomic is one
 * Lua script on one app's keys (one hash slot, tag {APPID}).
 *
 * Presence (group commit). The presence ops of one loop iteration are sent,
 * per app, as one script call in the prepare phase: one round trip for
 * thousands of logins. A session is named "NODE|SESSION-ID"; the script
 * records an op only for the session that owns the uid (fencing: a node that
 * lost a session — taken over elsewhere, or ended for it because it was
 * taken for dead — records nothing more for it), and only once, so an op
 * whose outcome is unknown (a timeout, a dropped connection) can be sent
 * again. Such ops are kept and go first in the app's next call, retried
 * with backoff until they are answered: Leaves and Logouts are owed
 * (presence treats them as done, -EINPROGRESS); a Login or a Join fails
 * (presence forgets it) and the op that undoes it is owed instead (a Logout
 * or Leave that the script records only if the Login or Join was).
 *
 * Takeovers. A login finds uid held by another node: the script ends that
 * session (Leaves, then Logout) before the Login and tells the node (a shard
 * channel message, "K|uid|owner"), which drops the client without recording
 * anything. Nothing waits for the old node, and a late old node records
 * nothing twice (fencing).
 *
 * Nodes. Each node renews a heartbeat every second (BEAT); a node whose
 * heartbeat is older than node_timeout_s is dead: one surviving node (CLAIM,
 * a lock) ends its sessions app by app (END_NODE), then forgets it (BURIED).
 * A node taken for dead while it was only paused learns it at its next beat
 * and drops its clients (their sessions were ended for it). A node that
 * starts again under the same id ends its previous sessions before serving.
 *
 * Pulls carry their deadline on Redis's clock (the offset is measured at
 * every beat): a pull that reaches Redis after it does nothing, so a pull
 * answered 408 consumed nothing even if a stalled Redis runs it later.
 *
 * Redis: a single instance or a Redis Cluster, through one client
 * (redis_client.h), which routes every script by its first key's slot (an
 * app's keys carry {APPID}, the nodes' {nodes}), follows MOVED and ASK,
 * loads the scripts on every master, and keeps this node's shard-channel
 * subscriptions at the masters of their slots.
 *
 * History, offline messages and query handles: redis_msg.c. Delivery
 * across nodes: redis_route.c.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/loop.h"
#include "store/redis_internal.h"

static struct redis_store *from_base(struct rtmd_store *s)
{
    return (struct redis_store *)s;
}

uint64_t rtmd_redis_deadline(const struct redis_store *rs)
{
    return rtmd_now_ms() + rs->cfg->redis_timeout_ms;
}

struct app_rs *rtmd_redis_app(struct redis_store *rs, const struct rtmd_app *app)
{
    if (!app || app->index >= rs->n_apps || rs->apps[app->index]->app != app)
        return NULL;
    return rs->apps[app->index];
}

/* ---- scripts ------------------------------------------------------------------------------- */

/* A script call: EVALSHA sha 1 key args... — or EVAL with its text when
 * Redis does not have it (restarted, flushed): the reply callback sees the
 * NOSCRIPT error and the call goes again, once, as EVAL. */
struct script_call {
    struct redis_store *rs;
    enum rtmd_redis_script script;
    rtmd_redis_cb cb;
    void *arg;
    uint64_t deadline;
    bool retried;
    int argc;
    int nkeys;
    size_t bytes;
    /* argv and lengths follow, then the argument bytes */
};

static const char **sc_argv(struct script_call *sc)
{
    return (const char **)(void *)(sc + 1);
}

static size_t *sc_lens(struct script_call *sc)
{
    return (size_t *)(void *)(sc_argv(sc) + sc->argc);
}

static void on_script_reply(void *arg, int status, const redisReply *reply);

static int script_send(struct script_call *sc, bool eval)
{
    struct redis_store *rs = sc->rs;
    const char **argv = sc_argv(sc);
    size_t *lens = sc_lens(sc);
    argv[0] = eval ? "EVAL" : "EVALSHA";
    lens[0] = strlen(argv[0]);
    argv[1] = eval ? rtmd_redis_lua[sc->script] : rs->sha[sc->script];
    lens[1] = strlen(argv[1]);
    /* argv[3] is the first key: its slot is every key's. */
    int r =
        rtmd_redis_client_command(rs->client, sc->nkeys ? argv[3] : NULL, sc->nkeys ? lens[3] : 0,
                                  sc->argc, argv, lens, sc->deadline, on_script_reply, sc);
    if (r == 0)
        rs->inflight++;
    return r;
}

static void on_script_reply(void *arg, int status, const redisReply *reply)
{
    struct script_call *sc = arg;
    struct redis_store *rs = sc->rs;
    rs->inflight--;
    if (status == 0 && reply->type == REDIS_REPLY_ERROR && !sc->retried &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        sc->retried = true;
        if (script_send(sc, true) == 0)
            return;
        status = -ENOTCONN;
    }
    sc->cb(sc->arg, status, status == 0 ? reply : NULL);
    free(sc);
}

int rtmd_redis_script(struct redis_store *rs, enum rtmd_redis_script script,
                      const struct rtmd_str *keys, int nkeys, const struct rtmd_str *args,
                      int nargs, rtmd_redis_cb cb, void *arg)
{
    if (!rtmd_redis_client_reachable(rs->client))
        return -ENOTCONN;
    int argc = 3 + nkeys + nargs;
    size_t bytes = 0;
    for (int i = 0; i < nkeys; i++)
        bytes += keys[i].len;
    for (int i = 0; i < nargs; i++)
        bytes += args[i].len;
    struct script_call *sc =
        rtmd_malloc(sizeof(*sc) + (size_t)argc * (sizeof(char *) + sizeof(size_t)) + bytes + 16);
    sc->rs = rs;
    sc->script = script;
    sc->cb = cb;
    sc->arg = arg;
    sc->deadline = rtmd_redis_deadline(rs);
    sc->retried = false;
    sc->argc = argc;
    sc->nkeys = nkeys;
    const char **argv = sc_argv(sc);
    size_t *lens = sc_lens(sc);
    char *at = (char *)(lens + argc);
    int k = 2;
    snprintf(at, 16, "%d", nkeys);
    argv[k] = at;
    lens[k++] = strlen(at);
    at += 16;
    for (int i = 0; i < nkeys + nargs; i++) {
        struct rtmd_str v = i < nkeys ? keys[i] : args[i - nkeys];
        if (v.len)
            memcpy(at, v.p, v.len);
        argv[k] = at;
        lens[k++] = v.len;
        at += v.len;
    }
    /* The client loaded the scripts on every master as it connected. */
    int r = script_send(sc, false);
    if (r < 0)
        free(sc);
    return r;
}

/* A command for redis_msg.c and the routing: the store counts it in flight. */
struct cmd_call {
    struct redis_store *rs;
    rtmd_redis_cb cb;
    void *arg;
};

static void on_cmd_reply(void *arg, int status, const redisReply *reply)
{
    struct cmd_call k = *(struct cmd_call *)arg;
    free(arg);
    k.rs->inflight--;
    k.cb(k.arg, status, reply);
    rtmd_redis_call_done(k.rs);
}

int rtmd_redis_command(struct redis_store *rs, struct rtmd_str key, int argc, const char **argv,
                       const size_t *argvlen, rtmd_redis_cb cb, void *arg)
{
    if (rs->closing)
        return RTMD_ECLOSED;
    if (!cb)
        return -EINVAL;
    struct cmd_call *k = rtmd_malloc(sizeof(*k));
    *k = (struct cmd_call){rs, cb, arg};
    int r = rtmd_redis_client_command(rs->client, key.p, key.p ? key.len : 0, argc, argv, argvlen,
                                      rtmd_redis_deadline(rs), on_cmd_reply, k);
    if (r < 0) {
        free(k);
        return r;
    }
    rs->inflight++;
    return 0;
}

int rtmd_redis_publish(struct redis_store *rs, struct rtmd_str channel, struct rtmd_str payload,
                       rtmd_redis_cb cb, void *arg)
{
    const char *argv[] = {"SPUBLISH", channel.p, payload.len ? payload.p : ""};
    size_t lens[] = {8, channel.len, payload.len};
    if (!channel.p || channel.len == 0 || (payload.len && !payload.p))
        return -EINVAL;
    return rtmd_redis_command(rs, channel, 3, argv, lens, cb, arg);
}

int rtmd_redis_subscribe(struct redis_store *rs, struct rtmd_str channel)
{
    if (rs->closing)
        return RTMD_ECLOSED;
    return rtmd_redis_client_subscribe(rs->client, channel);
}

void rtmd_redis_unsubscribe(struct redis_store *rs, struct rtmd_str channel)
{
    if (rs->client)
        rtmd_redis_client_unsubscribe(rs->client, channel);
}

/* The SHA1 Redis names a script by, in hex. */
static void sha1_hex(const char *p, size_t n, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(p, n, md, &len, EVP_sha1(), NULL);
    for (unsigned int i = 0; i < len && i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[40] = '\0';
}

struct rtmd_str rtmd_redis_app_key(const struct app_rs *a)
{
    return rtmd_str_make(a->prefix, a->prefix_len);
}

bool rtmd_redis_reply_int(const redisReply *r, long long *out)
{
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return false;
    *out = r->integer;
    return true;
}

/* ---- presence -------------------------------------------------------------------------------- */

static const char op_letter[] = {[RTMD_EVENT_LOGIN] = 'I',
                                 [RTMD_EVENT_LOGOUT] = 'O',
                                 [RTMD_EVENT_JOIN] = 'J',
                                 [RTMD_EVENT_LEAVE] = 'L'};

static void pop_free(struct pop *o)
{
    free(o->uid);
    free(o->chan);
}

static void flush_app(struct app_rs *a);

static void on_retry(uv_timer_t *t)
{
    struct app_rs *a = t->data;
    flush_app(a);
}

static void schedule_retry(struct app_rs *a)
{
    a->retry_ms = a->retry_ms ? RTMD_MIN(a->retry_ms * 2, RETRY_MAX_MS) : RETRY_MIN_MS;
    uv_timer_start(&a->retry, on_retry, a->retry_ms, 0);
}

/* Keeps the ops of a failed flight that must still happen, in order, ahead
 * of what is queued: Leaves and Logouts as they are; for a Login or a Join,
 * the Logout or Leave that undoes it if it was recorded. */
static void owe_flight(struct app_rs *a, struct flight *f)
{
    size_t keep = 0;
    for (size_t i = 0; i < f->n_ops; i++) {
        struct pop *o = &f->ops[i];
        if (o->type == RTMD_EVENT_LOGIN) {
            o->type = RTMD_EVENT_LOGOUT;
            o->undo = true;
        } else if (o->type == RTMD_EVENT_JOIN) {
            o->type = RTMD_EVENT_LEAVE;
            o->undo = true;
        }
        if (!o->owed)
            a->rs->stats.owed_records++; /* until a flight holding it is answered */
        o->owed = true;
        f->ops[keep++] = *o;
    }
    if (a->n_ops + keep > a->cap_ops) {
        a->cap_ops = a->n_ops + keep + 16;
        a->ops = rtmd_realloc(a->ops, a->cap_ops * sizeof(*a->ops));
    }
    memmove(a->ops + keep, a->ops, a->n_ops * sizeof(*a->ops));
    memcpy(a->ops, f->ops, keep * sizeof(*a->ops));
    a->n_ops += keep;
    for (size_t i = 0; i < a->n_calls; i++)
        a->calls[i].first += keep;
}

/* "REGION:u|c" and a count: events this node's writes overwrote before that
 * region read them (for the regions this node serves). */
static void count_drops(struct redis_store *rs, const redisReply *rk, const redisReply *n)
{
    long long count;
    if (rk->type != REDIS_REPLY_STRING || rk->len < 3 || rk->str[rk->len - 2] != ':' ||
        !rtmd_redis_reply_int(n, &count) || count <= 0)
        return;
    enum rtmd_evlog_kind kind = rk->str[rk->len - 1] == 'u' ? RTMD_EVLOG_USER : RTMD_EVLOG_CHANNEL;
    struct rtmd_str region = rtmd_str_make(rk->str, rk->len - 2);
    for (size_t r = 0; r < rs->cfg->n_regions; r++)
        if (rtmd_str_eq_cstr(region, rs->cfg->regions[r]))
            rs->stats.events_dropped[r][kind] += (uint64_t)count;
}

static void on_presence_reply(void *arg, int status, const redisReply *reply)
{
    struct flight *f = arg;
    struct app_rs *a = f->a;
    struct redis_store *rs = a->rs;
    a->in_flight = false;
    /* One result per op, then (region:kind, count) for events overwritten
     * unread by these ops. */
    bool ok = status == 0 && reply->type == REDIS_REPLY_ARRAY && reply->elements >= f->n_ops &&
              (reply->elements - f->n_ops) % 2 == 0;
    if (status == 0 && !ok) {
        rtmd_log_error("store", "redis: presence script failed: %s",
                       reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        status = RTMD_ESTORE;
    }
    if (ok) {
        a->retry_ms = 0;
        rs->stats.commits++; /* one script call: this node's group commit */
        rs->stats.commit_ops += f->n_ops;
        rtmd_histogram_observe(&rs->stats.commit_duration, uv_hrtime() - f->sent_ns);
        for (size_t i = 0; i < f->n_ops; i++) {
            long long done = 0;
            if (rtmd_redis_reply_int(reply->element[i], &done) && done == 1)
                rs->stats.events_recorded[rtmd_event_log_kind(f->ops[i].type)]++;
            /* Fenced: another node holds uid now. Its message telling this
             * node may have been lost (a subscription moving): drop the
             * session here too (presence ignores a session already gone). */
            if (done == 2 && !f->ops[i].owed && f->ops[i].type != RTMD_EVENT_LOGOUT && rs->hooks &&
                rs->hooks->session_taken)
                rs->hooks->session_taken(rs->hooks_ctx, a->app, rtmd_str_cstr(f->ops[i].uid),
                                         f->ops[i].session);
            if (f->ops[i].owed)
                rs->stats.owed_records--;
            pop_free(&f->ops[i]);
        }
        for (size_t i = f->n_ops; i + 1 < reply->elements; i += 2)
            count_drops(rs, reply->element[i], reply->element[i + 1]);
    } else {
        rtmd_log_warn("store",
                      "redis: %zu presence ops of app %s not confirmed (%s); kept to retry",
                      f->n_ops, a->app->id, rtmd_strerror(status));
        owe_flight(a, f);
    }
    for (size_t i = 0; i < f->n_calls; i++) {
        struct pcall *c = &f->calls[i];
        int st = 0;
        if (!ok) {
            /* Did the call hold a Login or a Join? Then it failed (undone
             * later); else its ends are owed, done for presence. */
            st = -EINPROGRESS;
            for (size_t k = c->first; k < c->first + c->n; k++)
                if (f->ops[k].undo)
                    st = status == -ETIMEDOUT ? -ETIMEDOUT : -EIO;
        }
        rs->pending--;
        c->cb(c->arg, st);
    }
    free(f->ops);
    free(f->calls);
    free(f);
    if (a->n_ops && ok) {
        flush_app(a); /* closing too: the shutdown's Leaves and Logouts go */
    } else if (a->n_ops && !rs->closing) {
        schedule_retry(a);
    } else if (a->n_ops) {
        rtmd_log_warn("store",
                      "redis: %zu presence records of app %s not written; this node's next "
                      "start ends its sessions",
                      a->n_ops, a->app->id);
    }
    rtmd_redis_call_done(rs);
}

/* Sends the app's queued ops (owed ones first) as one script call. */
static void flush_app(struct app_rs *a)
{
    struct redis_store *rs = a->rs;
    if (a->in_flight || a->n_ops == 0 || uv_is_active((uv_handle_t *)&a->retry))
        return;
    size_t n = RTMD_MIN(a->n_ops, (size_t)BATCH_OPS_MAX);
    /* Never split a call: take whole calls (owed ops belong to none). */
    size_t owed = 0;
    while (owed < a->n_ops && a->ops[owed].owed)
        owed++;
    size_t n_calls = 0;
    /* Closing: the calls were answered already; whatever is queued goes. */
    if (n > owed && !rs->closing) {
        n = owed;
        while (n_calls < a->n_calls && (n_calls == 0 || n + a->calls[n_calls].n <= BATCH_OPS_MAX))
            n += a->calls[n_calls++].n;
    }
    if (n == 0)
        return;
    struct rtmd_str *args = rtmd_malloc((3 + n * ARGS_PER_OP) * sizeof(*args));
    char(*nums)[2][SESSION_ID_MAX] = rtmd_malloc(n * sizeof(*nums));
    char retain[16], count[24];
    snprintf(retain, sizeof(retain), "%u", rs->cfg->limits.events_retain);
    snprintf(count, sizeof(count), "%zu", n);
    args[0] = rtmd_str_cstr(rs->node);
    args[1] = rtmd_str_cstr(retain);
    args[2] = rtmd_str_cstr(count);
    for (size_t i = 0; i < n; i++) {
        const struct pop *o = &a->ops[i];
        struct rtmd_str *x = &args[3 + i * ARGS_PER_OP];
        snprintf(nums[i][0], SESSION_ID_MAX, "%llu", (unsigned long long)o->ms);
        snprintf(nums[i][1], SESSION_ID_MAX, "%llu", (unsigned long long)o->session);
        x[0] = rtmd_str_make(&op_letter[o->type], 1);
        x[1] = rtmd_str_cstr(o->uid);
        x[2] = o->chan ? rtmd_str_cstr(o->chan) : RTMD_STR_LIT("");
        x[3] = rtmd_str_cstr(nums[i][0]);
        x[4] = rtmd_str_cstr(nums[i][1]);
    }
    struct flight *f = rtmd_malloc(sizeof(*f));
    f->a = a;
    f->n_ops = n;
    f->ops = rtmd_malloc(n * sizeof(*f->ops));
    memcpy(f->ops, a->ops, n * sizeof(*f->ops));
    f->n_calls = n_calls;
    f->sent_ns = uv_hrtime();
    f->calls = rtmd_malloc((n_calls ? n_calls : 1) * sizeof(*f->calls));
    memcpy(f->calls, a->calls, n_calls * sizeof(*f->calls));
    struct rtmd_str key = rtmd_redis_app_key(a);
    int r = rtmd_redis_script(rs, RTMD_LUA_PRESENCE, &key, 1, args, (int)(3 + n * ARGS_PER_OP),
                              on_presence_reply, f);
    free(args);
    free(nums);
    if (r < 0) {
        /* Not sent (Redis is not reachable): it stays queued for a retry. */
        free(f->ops);
        free(f->calls);
        free(f);
        schedule_retry(a);
        return;
    }
    a->in_flight = true;
    memmove(a->ops, a->ops + n, (a->n_ops - n) * sizeof(*a->ops));
    a->n_ops -= n;
    memmove(a->calls, a->calls + n_calls, (a->n_calls - n_calls) * sizeof(*a->calls));
    a->n_calls -= n_calls;
    for (size_t i = 0; i < a->n_calls; i++)
        a->calls[i].first -= n;
}

static void on_flush(struct rtmd_loop_hook *h)
{
    struct redis_store *rs = RTMD_CONTAINER_OF(h, struct redis_store, flush_hook);
    for (size_t i = 0; i < rs->n_apps; i++)
        if (rs->apps[i]->n_calls)
            flush_app(rs->apps[i]);
}

static void on_expire(uv_timer_t *t);

static void arm_expire(struct redis_store *rs, uint64_t deadline)
{
    uint64_t now = rtmd_now_ms();
    if (uv_is_active((uv_handle_t *)&rs->expire))
        return;
    uv_timer_start(&rs->expire, on_expire, deadline > now ? deadline - now : 0, 0);
}

/* Calls still queued at their deadline give up: Redis is too slow or gone.
 * Nothing of them was sent: their Logins and Joins are dropped (the call
 * fails with -ETIMEDOUT and presence forgets them), their Leaves and
 * Logouts stay queued, owed, ahead of what comes later (the call is done for
 * presence: -EINPROGRESS). */
static void expire_calls(struct redis_store *rs)
{
    uint64_t now = rtmd_now_ms(), next = UINT64_MAX;
    for (size_t i = 0; i < rs->n_apps; i++) {
        struct app_rs *a = rs->apps[i];
        while (a->n_calls > 0 && a->calls[0].deadline <= now) {
            struct pcall c = a->calls[0];
            bool begins = false;
            size_t keep = 0;
            for (size_t k = c.first; k < c.first + c.n; k++) {
                struct pop o = a->ops[k];
                if (o.type == RTMD_EVENT_LOGIN || o.type == RTMD_EVENT_JOIN) {
                    begins = true;
                    pop_free(&o);
                    continue;
                }
                o.owed = true;
                rs->stats.owed_records++;
                a->ops[c.first + keep++] = o;
            }
            size_t gone = c.n - keep;
            memmove(a->ops + c.first + keep, a->ops + c.first + c.n,
                    (a->n_ops - c.first - c.n) * sizeof(*a->ops));
            a->n_ops -= gone;
            memmove(a->calls, a->calls + 1, (a->n_calls - 1) * sizeof(*a->calls));
            a->n_calls--;
            for (size_t k = 0; k < a->n_calls; k++)
                a->calls[k].first -= gone;
            rs->pending--;
            c.cb(c.arg, begins ? -ETIMEDOUT : -EINPROGRESS);
        }
        if (a->n_calls)
            next = RTMD_MIN(next, a->calls[0].deadline);
        if (a->n_ops && !a->in_flight && !uv_is_active((uv_handle_t *)&a->retry))
            schedule_retry(a);
    }
    if (next != UINT64_MAX && !rs->closing)
        arm_expire(rs, next);
}

static void on_expire(uv_timer_t *t)
{
    expire_calls(t->data);
}

static int redis_presence(struct rtmd_store *base, const struct rtmd_app *app,
                          const struct rtmd_presence_op *ops, size_t n, rtmd_store_cb cb, void *arg)
{
    struct redis_store *rs = from_base(base);
    struct app_rs *a = rtmd_redis_app(rs, app);
    if (rs->closing)
        return RTMD_ECLOSED;
    if (!a || n == 0 || !cb)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        bool chan = ops[i].type == RTMD_EVENT_JOIN || ops[i].type == RTMD_EVENT_LEAVE;
        if (!rtmd_id_valid(ops[i].uid) || (chan && !rtmd_id_valid(ops[i].channel)) ||
            ops[i].type > RTMD_EVENT_LEAVE)
            return -EINVAL;
    }
    bool has_begin = false;
    for (size_t i = 0; i < n; i++)
        has_begin |= ops[i].type == RTMD_EVENT_LOGIN || ops[i].type == RTMD_EVENT_JOIN;
    /* Ends are never refused (they are owed if they cannot go now); a Login
     * or a Join is, when Redis is unreachable or too much waits. */
    bool reachable = rtmd_redis_client_reachable(rs->client);
    if (has_begin && (!reachable || rs->pending >= PENDING_MAX))
        return reachable ? -EAGAIN : -ENOTCONN;
    if (a->n_ops + n > a->cap_ops) {
        a->cap_ops = (a->n_ops + n) * 2;
        a->ops = rtmd_realloc(a->ops, a->cap_ops * sizeof(*a->ops));
    }
    if (a->n_calls == a->cap_calls) {
        a->cap_calls = a->cap_calls ? a->cap_calls * 2 : 16;
        a->calls = rtmd_realloc(a->calls, a->cap_calls * sizeof(*a->calls));
    }
    uint64_t dl = rtmd_redis_deadline(rs);
    a->calls[a->n_calls++] = (struct pcall){cb, arg, a->n_ops, n, dl};
    arm_expire(rs, dl);
    for (size_t i = 0; i < n; i++) {
        struct pop *o = &a->ops[a->n_ops++];
        bool chan = ops[i].type == RTMD_EVENT_JOIN || ops[i].type == RTMD_EVENT_LEAVE;
        *o = (struct pop){ops[i].type,
                          false,
                          false,
                          rtmd_strndup(ops[i].uid.p, ops[i].uid.len),
                          chan ? rtmd_strndup(ops[i].channel.p, ops[i].channel.len) : NULL,
                          ops[i].ms,
                          ops[i].session};
    }
    rs->pending++;
    return 0;
}

/* ---- pulls and rates ---------------------------------------------------------------------------
 */

struct pull_call {
    struct redis_store *rs;
    struct app_rs *a;
    rtmd_store_pull_cb cb;
    void *arg;
    uint32_t region, max;
    enum rtmd_evlog_kind kind;
    uint64_t after; /* RTMD_PULL_DRAIN for a draining pull */
    /* A lossless read (on_after_numbers(), on_after_range()): the script and an LRANGE of
     * es go out together; what came back of them. */
    uint8_t owed;      /* replies still to come */
    uint8_t ranges;    /* LRANGEs of es sent */
    int status;        /* the numbers' script's */
    uint64_t skipped;  /* numbers above after that retention removed */
    uint64_t from1, n; /* the events to answer: from1 .. from1 + n - 1 */
    uint64_t es_first; /* es's element i is numbered es_first + i + 1 */
    struct rtmd_buf joined;
};

/* The next line of *rest (up to a newline or the end); moves *rest past it. */
static struct rtmd_str next_line(struct rtmd_str *rest)
{
    const char *nl = memchr(rest->p, '\n', rest->len);
    size_t len = nl ? (size_t)(nl - rest->p) : rest->len;
    struct rtmd_str line = rtmd_str_make(rest->p, len);
    rest->p += nl ? len + 1 : len;
    rest->len -= nl ? len + 1 : len;
    return line;
}

/* The next es entry "NUMBER:SESSION_ID" of *rest numbered seq, or "" (none:
 * the event was recorded by an rtmd that kept no session_ids). Entries come
 * in increasing number; those below seq are skipped. */
/* An es entry's first line "NUMBER:SESSION_ID": false when line is not one
 * (an event's JSON line). */
static bool es_head(struct rtmd_str line, uint64_t *num, struct rtmd_str *sid)
{
    const char *colon = memchr(line.p, ':', line.len);
    if (!colon ||
        rtmd_str_to_u64(rtmd_str_make(line.p, (size_t)(colon - line.p)), UINT64_MAX, num) != 0)
        return false;
    *sid = rtmd_str_make(colon + 1, line.len - (size_t)(colon - line.p) - 1);
    return true;
}

static struct rtmd_str session_of(struct rtmd_str *rest, uint64_t seq)
{
    while (rest->len > 0) {
        struct rtmd_str save = *rest, e = next_line(rest), sid;
        uint64_t num;
        if (!es_head(e, &num, &sid))
            continue;
        if (num == seq)
            return sid;
        if (num > seq) {
            *rest = save; /* a later event's */
            break;
        }
    }
    return RTMD_STR_LIT("");
}

/* The numbered form of the events of a lossless read's full script reply
 * after its first element: {numbers dropped, first number, n, the n events'
 * JSON joined by newlines, the es entries "NUMBER:SESSION_ID[\nJSON]" joined
 * alike (session_of() skips the JSON lines)}. */
static int numbered_events(const redisReply *reply, struct rtmd_buf *joined,
                           struct rtmd_event_batch *b)
{
    long long dropped, first, n;
    if (reply->elements != 6 || !rtmd_redis_reply_int(reply->element[1], &dropped) ||
        !rtmd_redis_reply_int(reply->element[2], &first) ||
        !rtmd_redis_reply_int(reply->element[3], &n) || dropped < 0 || first < 1 || n < 0 ||
        reply->element[4]->type != REDIS_REPLY_STRING ||
        reply->element[5]->type != REDIS_REPLY_STRING)
        return RTMD_ESTORE;
    struct rtmd_str events = rtmd_str_make(reply->element[4]->str, reply->element[4]->len);
    struct rtmd_str sids = rtmd_str_make(reply->element[5]->str, reply->element[5]->len);
    for (size_t i = 0; i < (size_t)n; i++) {
        if (events.len == 0)
            return RTMD_ESTORE; /* fewer events than n */
        struct rtmd_str json = next_line(&events);
        uint64_t seq = (uint64_t)first + i;
        if ((i > 0 && rtmd_buf_append_byte(joined, ',') < 0) ||
            rtmd_event_numbered(joined, json, seq, session_of(&sids, seq)) != 0)
            return -ENOMEM;
    }
    b->n = (size_t)n;
    b->dropped = (uint64_t)dropped;
    return 0;
}

static void on_pull_reply(void *arg, int status, const redisReply *reply)
{
    struct pull_call *p = arg;
    struct redis_store *rs = p->rs;
    long long dropped = 0;
    if (status == 0 && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
                        !rtmd_redis_reply_int(reply->element[0], &dropped)))
        status = RTMD_ESTORE;
    if (status == 0 && dropped == -1)
        status = -ETIMEDOUT; /* it reached Redis after its deadline: nothing read */
    else if (status == 0 && dropped == -2)
        status = -ERANGE; /* after is above the newest event: nothing done */
    else if (status == 0 && dropped < 0)
        status = RTMD_ESTORE;
    struct rtmd_buf joined;
    rtmd_buf_init(&joined, SIZE_MAX);
    struct rtmd_event_batch b = {0, RTMD_STR_NULL, 0};
    if (status == 0) {
        rs->stats.events_dropped[p->region][p->kind] += (uint64_t)dropped;
        if (p->after != RTMD_PULL_DRAIN) {
            status = numbered_events(reply, &joined, &b);
        } else {
            for (size_t i = 1; i < reply->elements; i++) {
                const redisReply *e = reply->element[i];
                if (e->type != REDIS_REPLY_STRING)
                    continue;
                if (b.n++)
                    rtmd_buf_append_byte(&joined, ',');
                rtmd_buf_append(&joined, e->str, e->len);
            }
        }
    }
    b.joined = rtmd_str_make(joined.data ? joined.data : "", joined.len);
    p->cb(p->arg, status, status < 0 ? NULL : &b);
    rtmd_buf_free(&joined);
    rtmd_buf_free(&p->joined);
    free(p);
    rtmd_redis_call_done(rs);
}

/*
 * A lossless read without Lua touching the events. Since every event's es
 * entry is "NUMBER:SESSION_ID\nJSON", the pull script is asked for the
 * numbers only (the read position moved, dropped counted, which events to
 * answer, es_first) and, sent with it, an LRANGE of es at where this node
 * last found es to start: Redis copies the entries to the reply, no Lua
 * string is made per event (its string hash over every byte was a quarter
 * of Redis's time for an after read). The entries carry their numbers, so
 * what the LRANGE answered is checked event by event against the script's
 * numbers: the events are immutable once numbered, and the two need not run
 * back to back. When the range missed (es trimmed in between, the guess
 * stale) it is asked again once where the script found es to start; when
 * es does not hold them as such (entries an older rtmd wrote: no JSON, or
 * none) the full script answers, as it did before es held the events.
 */
static int after_range(struct pull_call *p, uint64_t at);
static void after_full(struct pull_call *p);

/* The n events numbered from from1 in an LRANGE of es, numbered, into
 * joined (empty): 0, 1 when the range does not hold every one of them with
 * its JSON, -ENOMEM. */
static int es_events(const redisReply *r, uint64_t from1, uint64_t n, struct rtmd_buf *joined)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return 1;
    uint64_t got = 0;
    for (size_t i = 0; i < r->elements && got < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING)
            return 1;
        struct rtmd_str json = rtmd_str_make(e->str, e->len), sid;
        uint64_t num;
        if (!es_head(next_line(&json), &num, &sid))
            return 1;
        if (num < from1 && got == 0)
            continue; /* before the events asked: the range started early */
        if (num != from1 + got || json.len == 0 || json.p[0] != '{')
            return 1;
        if ((got > 0 && rtmd_buf_append_byte(joined, ',') < 0) ||
            rtmd_event_numbered(joined, json, num, sid) != 0)
            return -ENOMEM;
        got++;
    }
    return got == n ? 0 : 1;
}

static void after_finish(struct pull_call *p, int status)
{
    struct rtmd_event_batch b = {(size_t)p->n, RTMD_STR_NULL, p->skipped};
    b.joined = rtmd_str_make(p->joined.data ? p->joined.data : "", p->joined.len);
    p->cb(p->arg, status, status < 0 ? NULL : &b);
    rtmd_buf_free(&p->joined);
    free(p);
}

/* Both answers are in and the range did not do: ask es again, or the full
 * script. */
static void after_again(struct pull_call *p)
{
    rtmd_buf_reset(&p->joined);
    if (p->rs->closing) {
        after_finish(p, RTMD_ECLOSED);
        return;
    }
    if (p->ranges < 2 && p->es_first < p->from1 && after_range(p, p->from1 - 1 - p->es_first) == 0)
        return;
    after_full(p);
}

static void on_after_range(void *arg, int status, const redisReply *reply)
{
    struct pull_call *p = arg;
    if (--p->owed > 0)
        return; /* before the numbers: those ask es again */
    if (p->status < 0 || p->n == 0) {
        after_finish(p, p->status);
        return;
    }
    int r = status == 0 ? es_events(reply, p->from1, p->n, &p->joined) : 1;
    if (r <= 0)
        after_finish(p, r);
    else
        after_again(p);
}

static void on_after_numbers(void *arg, int status, const redisReply *reply)
{
    struct pull_call *p = arg;
    struct redis_store *rs = p->rs;
    long long v[5];
    if (status == 0 && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
                        !rtmd_redis_reply_int(reply->element[0], &v[0])))
        status = RTMD_ESTORE;
    if (status == 0 && v[0] == -1)
        status = -ETIMEDOUT; /* it reached Redis after its deadline: nothing read */
    else if (status == 0 && v[0] == -2)
        status = -ERANGE; /* after is above the newest event: nothing done */
    else if (status == 0) {
        /* {dropped, skipped, the first number, n, es_first}, none negative */
        for (size_t i = 0; i < 5 && status == 0; i++)
            if (reply->elements != 5 || !rtmd_redis_reply_int(reply->element[i], &v[i]) || v[i] < 0)
                status = RTMD_ESTORE;
        if (status == 0 && v[2] < 1)
            status = RTMD_ESTORE;
    }
    p->status = status;
    if (status == 0) {
        rs->stats.events_dropped[p->region][p->kind] += (uint64_t)v[0];
        p->skipped = (uint64_t)v[1];
        p->from1 = (uint64_t)v[2];
        p->n = (uint64_t)v[3];
        p->es_first = p->a->es_first[p->kind] = (uint64_t)v[4];
    }
    if (--p->owed == 0) {
        if (status < 0 || p->n == 0)
            after_finish(p, status);
        else
            after_again(p); /* the range came first, unchecked */
    }
    rtmd_redis_call_done(rs);
}

/* LRANGE es from index at, as many as the pull may answer. */
static int after_range(struct pull_call *p, uint64_t at)
{
    char key[PREFIX_MAX + 8], from[24], to[24];
    struct rtmd_str pre = rtmd_redis_app_key(p->a);
    int kl = snprintf(key, sizeof(key), "%.*ses:%c", (int)pre.len, pre.p,
                      p->kind == RTMD_EVLOG_USER ? 'u' : 'c');
    snprintf(from, sizeof(from), "%llu", (unsigned long long)at);
    snprintf(to, sizeof(to), "%llu", (unsigned long long)(at + p->max - 1));
    const char *argv[] = {"LRANGE", key, from, to};
    size_t lens[] = {6, (size_t)kl, strlen(from), strlen(to)};
    int r =
        rtmd_redis_command(p->rs, rtmd_str_make(key, (size_t)kl), 4, argv, lens, on_after_range, p);
    if (r == 0) {
        p->owed++;
        p->ranges++;
    }
    return r;
}

/* Sends the pull script for p: a draining pull, a lossless read's numbers
 * only (mode m), or its full answer; cb gets the reply. */
static int pull_script(struct pull_call *p, const char *mode, rtmd_redis_cb cb)
{
    struct redis_store *rs = p->rs;
    char smax[16], dl[24], safter[24] = "";
    snprintf(smax, sizeof(smax), "%u", p->max);
    /* The deadline on Redis's clock: run later, the script does nothing. */
    snprintf(dl, sizeof(dl), "%lld", (long long)((int64_t)rtmd_redis_deadline(rs) + rs->offset_ms));
    if (p->after != RTMD_PULL_DRAIN)
        snprintf(safter, sizeof(safter), "%llu", (unsigned long long)p->after);
    struct rtmd_str key = rtmd_redis_app_key(p->a);
    struct rtmd_str args[] = {p->kind == RTMD_EVLOG_USER ? RTMD_STR_LIT("u") : RTMD_STR_LIT("c"),
                              rtmd_str_cstr(rs->cfg->regions[p->region]),
                              rtmd_str_cstr(smax),
                              rtmd_str_cstr(dl),
                              rtmd_str_cstr(safter),
                              rtmd_str_cstr(mode)};
    int r = rtmd_redis_script(rs, RTMD_LUA_PULL, &key, 1, args, RTMD_ARRAY_SIZE(args), cb, p);
    return r == -ENOTCONN ? -ETIMEDOUT : r;
}

/* The full script (the events and es entries joined by Lua, matched by
 * number here), for what es does not hold as this rtmd writes it. */
static void after_full(struct pull_call *p)
{
    p->rs->stats.redis_after_full++;
    int r = pull_script(p, "", on_pull_reply);
    if (r < 0)
        after_finish(p, r);
}

static int redis_pull(struct rtmd_store *base, const struct rtmd_app *app,
                      enum rtmd_evlog_kind kind, uint32_t region, uint32_t max, uint64_t after,
                      rtmd_store_pull_cb cb, void *arg)
{
    struct redis_store *rs = from_base(base);
    struct app_rs *a = rtmd_redis_app(rs, app);
    if (rs->closing)
        return RTMD_ECLOSED;
    if (!a || !cb || max == 0 || region >= rs->cfg->n_regions ||
        (kind != RTMD_EVLOG_USER && kind != RTMD_EVLOG_CHANNEL) ||
        (after != RTMD_PULL_DRAIN && after > RTMD_PULL_AFTER_MAX))
        return -EINVAL;
    bool lossless = after != RTMD_PULL_DRAIN;
    struct pull_call *p = rtmd_malloc(sizeof(*p));
    *p = (struct pull_call){.rs = rs,
                            .a = a,
                            .cb = cb,
                            .arg = arg,
                            .region = region,
                            .max = max,
                            .kind = kind,
                            .after = after};
    rtmd_buf_init(&p->joined, SIZE_MAX);
    int r = pull_script(p, lossless ? "m" : "", lossless ? on_after_numbers : on_pull_reply);
    if (r < 0) {
        free(p);
        return r;
    }
    if (lossless) {
        /* es's range, sent at once behind the script: where es started last time */
        uint64_t g = a->es_first[kind];
        p->owed = 1;
        if (after_range(p, after > g ? after - g : 0) < 0)
            p->ranges = 1; /* not sent: asked once the script says where */
    }
    return 0;
}

struct rate_call {
    struct redis_store *rs;
    rtmd_store_cb cb;
    void *arg;
};

static void on_rate_reply(void *arg, int status, const redisReply *reply)
{
    struct rate_call *c = arg;
    long long ok = 0;
    if (status == 0 && !rtmd_redis_reply_int(reply, &ok))
        status = RTMD_ESTORE;
    c->cb(c->arg, status < 0 ? status : ok ? 0 : RTMD_ERATE);
    struct redis_store *rs = c->rs;
    free(c);
    rtmd_redis_call_done(rs);
}

static const char *const bucket_names[RTMD_RATE_BUCKETS] = {"events", "history", "send",
                                                            "presence"};

static int redis_rate(struct rtmd_store *base, const struct rtmd_app *app,
                      enum rtmd_rate_bucket bucket, uint32_t qps, rtmd_store_cb cb, void *arg)
{
    struct redis_store *rs = from_base(base);
    struct app_rs *a = rtmd_redis_app(rs, app);
    if (rs->closing)
        return RTMD_ECLOSED;
    if (!a || !cb || bucket >= RTMD_RATE_BUCKETS)
        return -EINVAL;
    struct rate_call *c = rtmd_malloc(sizeof(*c));
    *c = (struct rate_call){rs, cb, arg};
    if (qps == 0) {
        /* No limit: answered without Redis, still never inside the call. */
        free(c);
        return -EINVAL;
    }
    char sqps[16];
    snprintf(sqps, sizeof(sqps), "%u", qps);
    struct rtmd_str key = rtmd_redis_app_key(a);
    struct rtmd_str args[] = {rtmd_str_cstr(bucket_names[bucket]), rtmd_str_cstr(sqps)};
    int r = rtmd_redis_script(rs, RTMD_LUA_RATE, &key, 1, args, 2, on_rate_reply, c);
    if (r < 0)
        free(c);
    return r == -ENOTCONN ? -ETIMEDOUT : r;
}

/* ---- nodes: heartbeats, the dead, the taken for dead ---------------------------------------- */

struct reap {
    struct redis_store *rs;
    char dead[RTMD_NODE_ID_MAX];
    size_t next_app;
};

static void reap_step(struct reap *r);

static void on_buried(void *arg, int status, const redisReply *reply)
{
    (void)reply;
    struct reap *r = arg;
    if (status == 0)
        rtmd_log_info("store", "redis: node %s is gone; its sessions are ended", r->dead);
    struct redis_store *rs = r->rs;
    free(r);
    rtmd_redis_call_done(rs);
}

/* END_NODE's reply, {ended, then uid and channel of each Leave}: the
 * channels' members on every node are told; false when it is not one. */
static bool end_node_reply(struct app_rs *a, const char *node, const redisReply *reply,
                           long long *n)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 || reply->elements % 2 != 1 ||
        !rtmd_redis_reply_int(reply->element[0], n))
        return false;
    for (size_t i = 1; i + 1 < reply->elements; i += 2) {
        const redisReply *u = reply->element[i], *c = reply->element[i + 1];
        if (u->type == REDIS_REPLY_STRING && c->type == REDIS_REPLY_STRING)
            rtmd_redis_route_ended(a->rs, a->app, node, rtmd_str_make(c->str, c->len),
                                   rtmd_str_make(u->str, u->len));
    }
    return true;
}

static void on_app_reaped(void *arg, int status, const redisReply *reply)
{
    struct reap *r = arg;
    long long n = 0;
    if (status < 0 || !end_node_reply(r->rs->apps[r->next_app], r->dead, reply, &n)) {
        /* The claim expires; this node or another tries again later. */
        struct redis_store *rs = r->rs;
        free(r);
        rtmd_redis_call_done(rs);
        return;
    }
    if (n > 0)
        rtmd_log_info("store", "redis: ended %lld sessions of dead node %s in app %s", n, r->dead,
                      r->rs->apps[r->next_app]->app->id);
    r->next_app++;
    reap_step(r);
}

static struct rtmd_str node_lock(char *buf, size_t cap, const char *node)
{
    int n = snprintf(buf, cap, NODES_LOCK "%s", node);
    return rtmd_str_make(buf, (size_t)n);
}

static void reap_step(struct reap *r)
{
    struct redis_store *rs = r->rs;
    char ms[24], retain[16], lock[96];
    int rc;
    if (r->next_app < rs->n_apps) {
        snprintf(ms, sizeof(ms), "%llu", (unsigned long long)rtmd_now_ms());
        snprintf(retain, sizeof(retain), "%u", rs->cfg->limits.events_retain);
        struct rtmd_str key = rtmd_redis_app_key(rs->apps[r->next_app]);
        struct rtmd_str args[] = {rtmd_str_cstr(r->dead), rtmd_str_cstr(ms), rtmd_str_cstr(retain)};
        rc = rtmd_redis_script(rs, RTMD_LUA_END_NODE, &key, 1, args, 3, on_app_reaped, r);
    } else {
        char timeout[16];
        snprintf(timeout, sizeof(timeout), "%u", rs->cfg->node_timeout_s * 1000);
        struct rtmd_str keys[] = {RTMD_STR_LIT(NODES_HB), node_lock(lock, sizeof(lock), r->dead)};
        struct rtmd_str args[] = {rtmd_str_cstr(r->dead), rtmd_str_cstr(rs->node),
                                  rtmd_str_cstr(timeout)};
        rc = rtmd_redis_script(rs, RTMD_LUA_BURIED, keys, 2, args, 3, on_buried, r);
    }
    if (rc < 0)
        free(r);
}

static void on_claimed(void *arg, int status, const redisReply *reply)
{
    struct reap *r = arg;
    long long won = 0;
    if (status == 0 && rtmd_redis_reply_int(reply, &won) && won == 1 && !r->rs->closing) {
        rtmd_log_warn("store", "redis: node %s missed its heartbeats for %u s: ending its sessions",
                      r->dead, r->rs->cfg->node_timeout_s);
        reap_step(r);
        return;
    }
    struct redis_store *rs = r->rs;
    free(r);
    rtmd_redis_call_done(rs);
}

static void claim(struct redis_store *rs, const char *dead, size_t len)
{
    if (len == 0 || len >= RTMD_NODE_ID_MAX ||
        (len == strlen(rs->node) && !memcmp(dead, rs->node, len)))
        return;
    struct reap *r = rtmd_calloc(1, sizeof(*r));
    r->rs = rs;
    memcpy(r->dead, dead, len);
    char lock[96], timeout[16];
    snprintf(timeout, sizeof(timeout), "%u", rs->cfg->node_timeout_s * 1000);
    struct rtmd_str keys[] = {RTMD_STR_LIT(NODES_HB), RTMD_STR_LIT(NODES_REAPED),
                              node_lock(lock, sizeof(lock), r->dead)};
    struct rtmd_str args[] = {rtmd_str_cstr(r->dead), rtmd_str_cstr(rs->node),
                              rtmd_str_cstr(timeout)};
    if (rtmd_redis_script(rs, RTMD_LUA_CLAIM, keys, 3, args, 3, on_claimed, r) < 0)
        free(r);
}

static void on_beat(void *arg, int status, const redisReply *reply)
{
    struct redis_store *rs = arg;
    rs->beat_busy = false;
    long long reaped = 0, now = 0;
    if (status < 0 || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        !rtmd_redis_reply_int(reply->element[0], &reaped) ||
        !rtmd_redis_reply_int(reply->element[1], &now)) {
        rtmd_redis_call_done(rs);
        return;
    }
    if (reaped && rs->hooks && rs->hooks->sessions_lost) {
        rtmd_log_warn("store", "redis: this node was taken for dead and its sessions ended for "
                               "it: dropping its clients");
        rs->hooks->sessions_lost(rs->hooks_ctx);
    }
    for (size_t i = 2; i < reply->elements && !rs->closing; i++)
        if (reply->element[i]->type == REDIS_REPLY_STRING)
            claim(rs, reply->element[i]->str, reply->element[i]->len);
    rtmd_redis_call_done(rs);
}

static void on_time(void *arg, int status, int64_t offset_ms, uint64_t rtt_ms)
{
    struct redis_store *rs = arg;
    rs->inflight--;
    if (status == 0 && rtt_ms < 1000)
        rs->offset_ms = offset_ms;
    rtmd_redis_call_done(rs);
}

static void beat(struct redis_store *rs)
{
    /* Beats go on while any master answers: a failover elsewhere must not
     * make the other nodes take this one for dead. */
    if (!rtmd_redis_client_reachable(rs->client) || rs->beat_busy || rs->closing)
        return;
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%u", rs->cfg->node_timeout_s * 1000);
    struct rtmd_str keys[] = {RTMD_STR_LIT(NODES_HB), RTMD_STR_LIT(NODES_REAPED),
                              RTMD_STR_LIT(NODES_SINCE)};
    struct rtmd_str args[] = {rtmd_str_cstr(rs->node), rtmd_str_cstr(timeout)};
    if (rtmd_redis_script(rs, RTMD_LUA_BEAT, keys, 3, args, 2, on_beat, rs) == 0)
        rs->beat_busy = true;
    if (rtmd_redis_client_time(rs->client, rtmd_redis_deadline(rs), on_time, rs) == 0)
        rs->inflight++;
    rtmd_redis_outbox_renew(rs);
}

static void on_beat_timer(uv_timer_t *t)
{
    struct redis_store *rs = t->data;
    beat(rs);
    rtmd_redis_tail_tick(rs);
    /* Expired history and offline messages go in steps, once a minute. */
    if (++rs->beats % 60 == 0 && rs->up && !rs->closing)
        rtmd_redis_msg_prune(rs);
}

/* ---- subscriptions: messages for this node ------------------------------------------------- */

/* Every message on a channel this node listens on: redis_route.c reads it. */
static void on_push(void *arg, struct rtmd_str channel, struct rtmd_str payload)
{
    rtmd_redis_route_push(arg, channel, payload);
}

/* This node's channel of every app, kept subscribed by the client. */
static int subscribe_all(struct redis_store *rs)
{
    for (size_t i = 0; i < rs->n_apps; i++) {
        char name[PREFIX_MAX + 4 + RTMD_NODE_ID_MAX];
        int k = snprintf(name, sizeof(name), "%sto:%s", rs->apps[i]->prefix, rs->node);
        int r = rtmd_redis_subscribe(rs, rtmd_str_make(name, (size_t)k));
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- connection ------------------------------------------------------------------------------ */

/* Up: every slot can be served (healthz); down: not (calls for the slots
 * that can be served still go). */
static void on_state(void *arg, bool up)
{
    struct redis_store *rs = arg;
    rs->up = up;
    if (!up) {
        rtmd_log_warn("store", "redis: not every slot can be served; waiting for Redis");
        return;
    }
    rtmd_log_info("store", "redis: every slot can be served");
    for (size_t i = 0; i < rs->n_apps; i++)
        flush_app(rs->apps[i]);
    beat(rs);
}

/* ---- the rest of the interface ------------------------------------------------------------------
 */

static void redis_stats(struct rtmd_store *base, struct rtmd_store_stats *out)
{
    struct redis_store *rs = from_base(base);
    *out = rs->stats;
    out->write_error = rs->up ? 0 : -ENOTCONN;
    struct rtmd_redis_client_stats cs;
    memset(&cs, 0, sizeof(cs));
    if (rs->client) /* NULL once closing */
        rtmd_redis_client_stats(rs->client, &cs);
    out->redis_mode = (uint8_t)cs.mode;
    out->redis_masters = cs.masters;
    out->redis_masters_up = cs.masters_up;
    out->redis_redirections = cs.moved + cs.asked;
    out->redis_reconnects = cs.reconnects;
}

static void redis_set_hooks(struct rtmd_store *base, const struct rtmd_store_hooks *hooks,
                            void *ctx)
{
    struct redis_store *rs = from_base(base);
    rs->hooks = hooks;
    rs->hooks_ctx = ctx;
}

static void redis_set_routes(struct rtmd_store *base, const struct rtmd_store_route_hooks *hooks,
                             void *ctx)
{
    struct redis_store *rs = from_base(base);
    rs->routes = hooks;
    rs->routes_ctx = ctx;
}

static void store_free(struct redis_store *rs)
{
    for (size_t i = 0; i < rs->n_apps; i++) {
        struct app_rs *a = rs->apps[i];
        for (size_t k = 0; k < a->n_ops; k++)
            pop_free(&a->ops[k]);
        free(a->ops);
        free(a->calls);
        rtmd_hashmap_free(&a->pages); /* empty: every read was answered */
        free(a);
    }
    free(rs->apps);
    rtmd_redis_outbox_free(rs);
    free(rs);
}

/* One of the store's handles or connections is closed; the last frees the
 * store and calls the close's callback. */
static void closed_one(struct redis_store *rs)
{
    if (--rs->handles_open > 0)
        return;
    rtmd_store_cb cb = rs->close_cb;
    void *arg = rs->close_arg;
    store_free(rs);
    if (cb)
        cb(arg, 0);
}

static void on_timer_closed(uv_handle_t *h)
{
    closed_one(h->data);
}

static void on_retry_closed(uv_handle_t *h)
{
    closed_one(((struct app_rs *)h->data)->rs);
}

static void on_client_closed(void *arg)
{
    closed_one(arg);
}

static void close_handles(struct redis_store *rs)
{
    rtmd_loop_hook_remove(&rs->flush_hook);
    struct rtmd_redis_client *client = rs->client;
    rs->client = NULL;
    rs->handles_open = 2 + (uint32_t)rs->n_apps + (client != NULL);
    uv_close((uv_handle_t *)&rs->beat, on_timer_closed);
    uv_close((uv_handle_t *)&rs->expire, on_timer_closed);
    for (size_t i = 0; i < rs->n_apps; i++)
        uv_close((uv_handle_t *)&rs->apps[i]->retry, on_retry_closed);
    /* Its done callback comes after every pending command completed. */
    if (client)
        rtmd_redis_client_close(client, on_client_closed, rs);
}

/* Closing: once nothing of ours waits for Redis (owed ops get one last
 * chance in the close's own flush), the connections and handles close. */
void rtmd_redis_call_done(struct redis_store *rs)
{
    if (!rs->closing || rs->inflight > 0 || rs->beat_busy || !rs->client)
        return;
    for (size_t i = 0; i < rs->n_apps; i++)
        if (rs->apps[i]->in_flight)
            return;
    close_handles(rs);
}

static void redis_close(struct rtmd_store *base, rtmd_store_cb cb, void *arg)
{
    struct redis_store *rs = from_base(base);
    rs->close_cb = cb;
    rs->close_arg = arg;
    rs->closing = true;
    for (size_t i = 0; i < rs->n_apps; i++) {
        /* What the shutdown just ended, and anything owed or queued behind a
         * flight: flush_app sends it all, now or as each flight returns. */
        uv_timer_stop(&rs->apps[i]->retry);
        flush_app(rs->apps[i]);
    }
    uv_timer_stop(&rs->beat);
    uv_timer_stop(&rs->expire);
    for (size_t i = 0; i < rs->n_apps; i++) {
        struct app_rs *a = rs->apps[i];
        /* Not sent (Redis down): the next start of this node ends them. */
        for (size_t k = 0; k < a->n_calls; k++) {
            rs->pending--;
            a->calls[k].cb(a->calls[k].arg, -EINPROGRESS);
        }
        a->n_calls = 0;
        if (a->n_ops && !a->in_flight)
            rtmd_log_warn("store",
                          "redis: %zu presence records of app %s not written; this "
                          "node's next start ends its sessions",
                          a->n_ops, a->app->id);
    }
    rtmd_redis_call_done(rs);
}

/* ---- apps ----------------------------------------------------------------------------------- */

/* Appends app's state (its index must be n_apps). */
static struct app_rs *app_rs_new(struct redis_store *rs, const struct rtmd_app *app)
{
    struct app_rs *a = rtmd_calloc(1, sizeof(*a));
    a->app = app;
    a->rs = rs;
    a->prefix_len = (size_t)snprintf(a->prefix, sizeof(a->prefix), "rtmd:{%s}:", app->id);
    rtmd_hashmap_init(&a->pages);
    uv_timer_init(rs->loop, &a->retry);
    a->retry.data = a;
    rs->apps = rtmd_realloc(rs->apps, (rs->n_apps + 1) * sizeof(*rs->apps));
    rs->apps[rs->n_apps++] = a;
    return a;
}

static void on_app_added_step(void *arg, int status, const redisReply *reply)
{
    struct app_rs *a = arg;
    long long n;
    if (status < 0 ||
        (!rtmd_redis_reply_int(reply, &n) && !end_node_reply(a, a->rs->node, reply, &n)))
        rtmd_log_warn("store", "redis: setting up app %s added by a reload: %s", a->app->id,
                      rtmd_strerror(status < 0 ? status : RTMD_ESTORE));
}

/* A reload added app: as open() does for each app, this node's channel of
 * it is subscribed, its regions join the app's list, and sessions a
 * previous run of this node left in it are ended (in this order on the
 * app's slot, before any presence call of the app, which come later). */
static int redis_add_app(struct rtmd_store *base, const struct rtmd_app *app)
{
    struct redis_store *rs = from_base(base);
    if (app->index != rs->n_apps || rs->closing)
        return -EINVAL;
    struct app_rs *a = app_rs_new(rs, app);
    char name[PREFIX_MAX + 4 + RTMD_NODE_ID_MAX];
    int k = snprintf(name, sizeof(name), "%sto:%s", a->prefix, rs->node);
    int r = rtmd_redis_subscribe(rs, rtmd_str_make(name, (size_t)k));
    if (r < 0)
        return r;
    const struct rtmd_config *cfg = rs->cfg;
    char key[PREFIX_MAX + 8];
    int klen = snprintf(key, sizeof(key), "%sregions", a->prefix);
    const char *argv[2 + RTMD_REGIONS_MAX] = {"SADD", key};
    size_t lens[2 + RTMD_REGIONS_MAX] = {4, (size_t)klen};
    for (size_t g = 0; g < cfg->n_regions; g++) {
        argv[2 + g] = cfg->regions[g];
        lens[2 + g] = strlen(cfg->regions[g]);
    }
    r = rtmd_redis_command(rs, rtmd_redis_app_key(a), 2 + (int)cfg->n_regions, argv, lens,
                           on_app_added_step, a);
    if (r < 0)
        return r;
    char ms[24], retain[16];
    snprintf(ms, sizeof(ms), "%llu", (unsigned long long)rtmd_now_ms());
    snprintf(retain, sizeof(retain), "%u", cfg->limits.events_retain);
    struct rtmd_str akey = rtmd_redis_app_key(a);
    struct rtmd_str args[] = {rtmd_str_cstr(rs->node), rtmd_str_cstr(ms), rtmd_str_cstr(retain)};
    return rtmd_redis_script(rs, RTMD_LUA_END_NODE, &akey, 1, args, 3, on_app_added_step, a);
}

/* ---- open ----------------------------------------------------------------------------------- */

/* This node's id: [server] node_id, else the one made at the first start
 * and kept in data_dir/node_id. */
static int node_id(const struct rtmd_config *cfg, char *out)
{
    if (cfg->node_name) {
        snprintf(out, RTMD_NODE_ID_MAX, "%s", cfg->node_name);
        return 0;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/node_id", cfg->data_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        char line[RTMD_NODE_ID_MAX + 2] = "";
        bool ok = fgets(line, sizeof(line), f) != NULL;
        fclose(f);
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        for (size_t i = 0; ok && i < n; i++)
            ok = (line[i] >= 'a' && line[i] <= 'z') || (line[i] >= '0' && line[i] <= '9');
        if (!ok || n == 0 || n >= RTMD_NODE_ID_MAX) {
            rtmd_log_error("store", "%s does not hold a node id", path);
            return -EINVAL;
        }
        memcpy(out, line, n + 1);
        return 0;
    }
    unsigned char raw[6];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -EIO;
    snprintf(out, RTMD_NODE_ID_MAX, "n%02x%02x%02x%02x%02x%02x", raw[0], raw[1], raw[2], raw[3],
             raw[4], raw[5]);
    mkdir(cfg->data_dir, 0700);
    f = fopen(path, "w");
    if (!f || fprintf(f, "%s\n", out) < 0 || fclose(f) != 0) {
        rtmd_log_error("store", "cannot write %s", path);
        return -EIO;
    }
    rtmd_log_info("store", "this node's id is %s (kept in %s)", out, path);
    return 0;
}

struct start_wait {
    int left;
    int status;
};

static void start_step(struct start_wait *w, int status, bool ok)
{
    if ((status < 0 || !ok) && w->status == 0)
        w->status = status < 0 ? status : RTMD_ESTORE;
    w->left--;
}

static void on_start_step(void *arg, int status, const redisReply *reply)
{
    long long n;
    start_step(arg, status, status == 0 && rtmd_redis_reply_int(reply, &n));
}

/* END_NODE of one app at start (arg: the app); rs->starting counts. */
static void on_start_ended(void *arg, int status, const redisReply *reply)
{
    struct app_rs *a = arg;
    long long n;
    start_step(a->rs->starting, status, status == 0 && end_node_reply(a, a->rs->node, reply, &n));
}

/* Runs the loop until cond(rs) or timeout_ms passed. */
static bool run_until(struct redis_store *rs, bool (*cond)(struct redis_store *, void *), void *arg,
                      uint64_t timeout_ms)
{
    uint64_t end = rtmd_mono_ms() + timeout_ms;
    while (!cond(rs, arg)) {
        if (rtmd_mono_ms() > end)
            return false;
        uv_run(rs->loop, UV_RUN_ONCE);
    }
    return true;
}

/* Every slot served, and this node's channels subscribed. */
static bool is_up(struct redis_store *rs, void *arg)
{
    (void)arg;
    struct rtmd_redis_client_stats st;
    rtmd_redis_client_stats(rs->client, &st);
    return st.up && st.channels_on == st.channels;
}

static bool start_done(struct redis_store *rs, void *arg)
{
    (void)rs;
    return ((struct start_wait *)arg)->left == 0;
}

static void on_open_failed_closed(void *arg, int status)
{
    (void)status;
    *(bool *)arg = true;
}

static int redis_open(struct rtmd_store **out, const struct rtmd_config *cfg, uv_loop_t *loop)
{
    *out = NULL;
    struct rtmd_redis_seed seeds[RTMD_REDIS_SEEDS_MAX];
    size_t n_seeds, bad;
    const char *why;
    if (rtmd_redis_urls_parse(rtmd_str_cstr(cfg->redis_url), seeds, RTMD_ARRAY_SIZE(seeds),
                              &n_seeds, &why, &bad) < 0)
        return -EINVAL;
    struct redis_store *rs = rtmd_calloc(1, sizeof(*rs));
    rs->base.type = &rtmd_store_redis;
    rs->cfg = cfg;
    rs->loop = loop;
    int r = node_id(cfg, rs->node);
    if (r < 0) {
        free(rs);
        return r;
    }
    for (size_t i = 0; i < cfg->n_apps; i++)
        app_rs_new(rs, cfg->apps[i]);
    for (int i = 0; i < RTMD_LUA_COUNT; i++)
        sha1_hex(rtmd_redis_lua[i], strlen(rtmd_redis_lua[i]), rs->sha[i]);
    uv_timer_init(loop, &rs->beat);
    uv_timer_init(loop, &rs->expire);
    rs->expire.data = rs;
    rs->beat.data = rs;
    rtmd_loop_on_prepare(&rs->flush_hook, on_flush);

    struct rtmd_redis_client_options opt = {
        .connect_timeout_ms = cfg->redis_timeout_ms,
        .stuck_grace_ms = cfg->redis_timeout_ms,
        .scripts = rtmd_redis_lua,
        .n_scripts = RTMD_LUA_COUNT,
        .on_state = on_state,
        .on_message = on_push,
        .arg = rs,
    };
    r = rtmd_redis_client_open(&rs->client, loop, seeds, n_seeds, &opt);
    if (r == 0)
        r = subscribe_all(rs);
    if (r < 0) {
        rtmd_log_error("store", "redis: cannot start the client: %s", rtmd_strerror(r));
        goto fail;
    }
    if (!run_until(rs, is_up, NULL, OPEN_WAIT_MS)) {
        rtmd_log_error("store",
                       "redis: not ready within %d s (seeds from %s:%u on; ready is every slot "
                       "served and this node's channels subscribed; an AUTH refused or a server "
                       "not answering is logged above)",
                       OPEN_WAIT_MS / 1000, seeds[0].host, seeds[0].port);
        r = -ETIMEDOUT;
        goto fail_started;
    }
    /* A previous run of this node id left sessions: end them before serving.
     * And the regions this node serves join each app's list, so that events
     * overwritten unread count against them. */
    struct start_wait w = {2 * (int)cfg->n_apps, 0};
    rs->starting = &w;
    for (size_t i = 0; i < cfg->n_apps; i++) {
        char key[PREFIX_MAX + 8];
        int klen = snprintf(key, sizeof(key), "%sregions", rs->apps[i]->prefix);
        const char *argv[2 + RTMD_REGIONS_MAX] = {"SADD", key};
        size_t lens[2 + RTMD_REGIONS_MAX] = {4, (size_t)klen};
        for (size_t g = 0; g < cfg->n_regions; g++) {
            argv[2 + g] = cfg->regions[g];
            lens[2 + g] = strlen(cfg->regions[g]);
        }
        if (rtmd_redis_command(rs, rtmd_redis_app_key(rs->apps[i]), 2 + (int)cfg->n_regions, argv,
                               lens, on_start_step, &w) < 0) {
            w.left--;
            w.status = -ENOTCONN;
        }
    }
    char ms[24], retain[16];
    snprintf(ms, sizeof(ms), "%llu", (unsigned long long)rtmd_now_ms());
    snprintf(retain, sizeof(retain), "%u", cfg->limits.events_retain);
    for (size_t i = 0; i < cfg->n_apps; i++) {
        struct rtmd_str key = rtmd_redis_app_key(rs->apps[i]);
        struct rtmd_str args[] = {rtmd_str_cstr(rs->node), rtmd_str_cstr(ms),
                                  rtmd_str_cstr(retain)};
        if (rtmd_redis_script(rs, RTMD_LUA_END_NODE, &key, 1, args, 3, on_start_ended,
                              rs->apps[i]) < 0) {
            w.left--;
            w.status = -ENOTCONN;
        }
    }
    if (!run_until(rs, start_done, &w, OPEN_WAIT_MS) || w.status < 0) {
        rtmd_log_error("store",
                       "redis: could not end the sessions a previous run of node %s "
                       "left",
                       rs->node);
        r = w.status < 0 ? w.status : -ETIMEDOUT;
        goto fail_started;
    }
    rs->starting = NULL;
    uv_timer_start(&rs->beat, on_beat_timer, BEAT_MS, BEAT_MS);
    rtmd_log_info("store", "redis: node %s serving", rs->node);
    *out = &rs->base;
    return 0;

fail_started:
fail:
    /* Everything closes; the store frees itself with its last handle. */
    rs->closing = true;
    bool freed = false;
    rs->close_cb = on_open_failed_closed;
    rs->close_arg = &freed;
    close_handles(rs);
    while (!freed)
        uv_run(loop, UV_RUN_ONCE);
    return r;
}

/* ---- TLS session ticket keys ------------------------------------------------------------------
 */

struct ticket_call {
    rtmd_store_ticket_cb cb;
    void *arg;
    uint64_t epoch;
    size_t len;
    uint8_t proposal[128];
};

static void on_ticket_reply(void *arg, int status, const redisReply *reply)
{
    struct ticket_call *c = arg;
    const uint8_t *key = c->proposal; /* nil: the proposal was stored */
    size_t len = c->len;
    if (status == 0 && reply->type == REDIS_REPLY_STRING) {
        key = (const uint8_t *)reply->str;
        len = reply->len;
    } else if (status == 0 && reply->type != REDIS_REPLY_NIL) {
        status = RTMD_ESTORE;
    }
    c->cb(c->arg, status, c->epoch, status == 0 ? key : NULL, status == 0 ? len : 0);
    free(c);
}

/* One key per period under one hash tag: SET NX GET answers the key a node
 * stored first, or nil when this proposal became it (Redis 7). */
static int redis_ticket_key(struct rtmd_store *base, uint64_t epoch, uint32_t period_s,
                            const uint8_t *proposal, size_t len, rtmd_store_ticket_cb cb, void *arg)
{
    struct redis_store *rs = from_base(base);
    if (!cb || len == 0 || len > sizeof(((struct ticket_call *)0)->proposal) || period_s == 0)
        return -EINVAL;
    char key[64], ttl[24];
    snprintf(key, sizeof(key), "rtmd:{tls}:ticket:%u:%llu", period_s, (unsigned long long)epoch);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)period_s * 3 + 60);
    struct ticket_call *c = rtmd_malloc(sizeof(*c));
    *c = (struct ticket_call){.cb = cb, .arg = arg, .epoch = epoch, .len = len};
    memcpy(c->proposal, proposal, len);
    const char *argv[] = {"SET", key, (const char *)c->proposal, "NX", "GET", "EX", ttl};
    size_t lens[] = {3, strlen(key), len, 2, 3, 2, strlen(ttl)};
    int r = rtmd_redis_command(rs, rtmd_str_cstr(key), 7, argv, lens, on_ticket_reply, c);
    if (r < 0)
        free(c);
    return r;
}

const struct rtmd_store_type rtmd_store_redis = {
    .name = "redis",
    .open = redis_open,
    .presence = redis_presence,
    .pull = redis_pull,
    .rate = redis_rate,
    .history_put = rtmd_redis_history_put,
    .history_query = rtmd_redis_history_query,
    .history_count = rtmd_redis_history_count,
    .handle_put = rtmd_redis_handle_put,
    .handle_take = rtmd_redis_handle_take,
    .offline_put = rtmd_redis_offline_put,
    .offline_take = rtmd_redis_offline_take,
    .stats = redis_stats,
    .set_hooks = redis_set_hooks,
    .set_routes = redis_set_routes,
    .route_peer = rtmd_redis_route_peer,
    .route_channel = rtmd_redis_route_channel,
    .route_member = rtmd_redis_route_member,
    .route_ack = rtmd_redis_route_ack,
    .interest = rtmd_redis_interest,
    .members = rtmd_redis_members,
    .status = rtmd_redis_status,
    .close = redis_close,
    .add_app = redis_add_app,
    .ticket_key = redis_ticket_key,
    .overview = rtmd_redis_overview,
    .nodes = rtmd_redis_nodes,
    .tail_set = rtmd_redis_tail_set,
    .tail_watch = rtmd_redis_tail_watch,
    .tail_publish = rtmd_redis_tail_publish,
    .tail_wanted = rtmd_redis_tail_wanted,
    .outbox_watch = rtmd_redis_outbox_watch,
    .outbox_read = rtmd_redis_outbox_read,
    .outbox_message = rtmd_redis_outbox_message,
    .outbox_wants = rtmd_redis_outbox_wants,
};
