/*
 * presence.c — the presence rules (see presence.h).
 */
#include "presence/presence.h"

#include <stdlib.h>

#include "core/alloc.h"
#include "core/hashmap.h"
#include "core/log.h"
#include "core/loop.h"
#include "presence/online.h"
#include "presence/tap.h"

struct app_state {
    struct rtmd_hashmap sessions; /* uid → session */
    struct rtmd_hashmap channels; /* name → channel */
};

/* One store call in flight. A join's also names its channel (to undo it):
 * a separate shape, so that the calls of a login burst stay 24 bytes. */
struct call {
    struct rtmd_session *s;
    rtmd_presence_cb cb;
    void *arg;
};

struct join_call {
    struct call c; /* first: freeing the call frees all of it */
    uint8_t len;
    char channel[];
};

static const struct rtmd_config *cfg_;
static struct rtmd_store *store_;
static const struct rtmd_presence_hooks *hooks_;
static void *hooks_ctx_;
static struct app_state
    *apps_; /* by rtmd_app.index; a reload appends (no pointer into it is kept) */
static size_t n_apps_;
static size_t n_sessions_;
static uint64_t gen_; /* channel generations: never reused, so (pointer, gen) names one state */
/* Session ids: unique on this node across restarts (they start from the
 * clock in microseconds), so a backend can name a session by node + id. */
static uint64_t next_session_id_;

static struct app_state *state_of(const struct rtmd_app *app)
{
    return &apps_[app->index];
}

static struct rtmd_str uid_of(const struct rtmd_session *s)
{
    return rtmd_str_make(s->uid, s->uid_len);
}

static struct rtmd_str name_of(const struct rtmd_channel *ch)
{
    return rtmd_str_make(ch->name, ch->name_len);
}

static void forget(struct rtmd_session *s);

/* Ends s on this node only: its records are another node's (it took s over,
 * or took this node for dead and ended s). */
static void drop(struct rtmd_session *s, const char *reason)
{
    forget(s);
    if (hooks_ && hooks_->kicked)
        hooks_->kicked(hooks_ctx_, s, reason);
}

static void on_session_taken(void *ctx, const struct rtmd_app *app, struct rtmd_str uid,
                             uint64_t session)
{
    (void)ctx;
    struct rtmd_session *s = rtmd_presence_find(app, uid);
    if (s && s->id == session && s->state == RTMD_SESSION_ONLINE)
        drop(s, "remote_login");
}

static void collect(struct rtmd_session *s, void *arg)
{
    struct rtmd_session ***at = arg;
    *(*at)++ = s;
}

static void on_sessions_lost(void *ctx)
{
    (void)ctx;
    size_t n = n_sessions_;
    if (n == 0)
        return;
    struct rtmd_session **all = rtmd_malloc(n * sizeof(*all)), **at = all;
    rtmd_presence_foreach(collect, &at);
    for (struct rtmd_session **i = all; i < at; i++)
        if ((*i)->state == RTMD_SESSION_ONLINE)
            drop(*i, "node_lost");
    free(all);
}

static const struct rtmd_store_hooks store_hooks_ = {
    .session_taken = on_session_taken,
    .sessions_lost = on_sessions_lost,
};

int rtmd_presence_init(const struct rtmd_config *cfg, struct rtmd_store *store,
                       const struct rtmd_presence_hooks *hooks, void *hooks_ctx)
{
    cfg_ = cfg;
    store_ = store;
    hooks_ = hooks;
    hooks_ctx_ = hooks_ctx;
    rtmd_store_set_hooks(store, &store_hooks_, NULL);
    if (next_session_id_ == 0)
        next_session_id_ = rtmd_now_ms() * 1000 + 1;
    apps_ = NULL;
    n_apps_ = 0;
    for (size_t i = 0; i < cfg->n_apps; i++)
        rtmd_presence_add_app(cfg->apps[i]);
    return 0;
}

void rtmd_presence_add_app(const struct rtmd_app *app)
{
    if (app->index != n_apps_)
        abort(); /* apps are added in index order */
    apps_ = rtmd_realloc(apps_, (n_apps_ + 1) * sizeof(*apps_));
    rtmd_hashmap_init(&apps_[n_apps_].sessions);
    rtmd_hashmap_init(&apps_[n_apps_].channels);
    n_apps_++;
}

void rtmd_presence_shutdown(void)
{
    if (!apps_)
        return;
    for (size_t i = 0; i < n_apps_; i++) {
        struct rtmd_str k;
        void *v;
        for (size_t it = 0; rtmd_hashmap_next(&apps_[i].channels, &it, &k, &v);) {
            struct rtmd_channel *ch = v;
            free(ch->members);
            free(ch->by_uid);
            free(ch);
        }
        rtmd_hashmap_free(&apps_[i].sessions);
        rtmd_hashmap_free(&apps_[i].channels);
    }
    free(apps_);
    apps_ = NULL;
    n_apps_ = 0;
}

/* ---- sessions ------------------------------------------------------------------- */

struct rtmd_session *rtmd_session_new(void *owner)
{
    struct rtmd_session *s = rtmd_calloc(1, sizeof(*s));
    s->owner = owner;
    s->state = RTMD_SESSION_NEW;
    return s;
}

static void session_free_if_done(struct rtmd_session *s)
{
    if (s->released && s->pending == 0) {
        free(s->channels);
        free(s);
    }
}

void rtmd_session_hold(struct rtmd_session *s)
{
    s->pending++;
}

void rtmd_session_unhold(struct rtmd_session *s)
{
    s->pending--;
    session_free_if_done(s);
}

void rtmd_session_release(struct rtmd_session *s)
{
    s->owner = NULL;
    s->released = true;
    session_free_if_done(s);
}

size_t rtmd_presence_session_count(void)
{
    return n_sessions_;
}

struct rtmd_session *rtmd_presence_find(const struct rtmd_app *app, struct rtmd_str uid)
{
    return rtmd_hashmap_get(&state_of(app)->sessions, uid);
}

struct rtmd_channel *rtmd_presence_channel(const struct rtmd_app *app, struct rtmd_str name)
{
    return rtmd_hashmap_get(&state_of(app)->channels, name);
}

size_t rtmd_presence_app_sessions(const struct rtmd_app *app, struct rtmd_session **out, size_t max)
{
    size_t k = 0;
    struct rtmd_str key;
    void *v;
    for (size_t it = 0; k < max && rtmd_hashmap_next(&state_of(app)->sessions, &it, &key, &v);)
        out[k++] = v;
    return k;
}

size_t rtmd_presence_app_channel_count(const struct rtmd_app *app)
{
    return rtmd_hashmap_count(&state_of(app)->channels);
}

size_t rtmd_presence_app_session_count(const struct rtmd_app *app)
{
    return rtmd_hashmap_count(&state_of(app)->sessions);
}

void rtmd_presence_app_foreach(const struct rtmd_app *app,
                               void (*session)(const struct rtmd_session *s, void *arg),
                               void (*channel)(const struct rtmd_channel *ch, void *arg), void *arg)
{
    struct rtmd_str key;
    void *v;
    for (size_t it = 0; session && rtmd_hashmap_next(&state_of(app)->sessions, &it, &key, &v);)
        session(v, arg);
    for (size_t it = 0; channel && rtmd_hashmap_next(&state_of(app)->channels, &it, &key, &v);)
        channel(v, arg);
}

void rtmd_presence_foreach(void (*fn)(struct rtmd_session *s, void *arg), void *arg)
{
    for (size_t i = 0; i < n_apps_; i++) {
        struct rtmd_str k;
        void *v;
        for (size_t it = 0; rtmd_hashmap_next(&apps_[i].sessions, &it, &k, &v);)
            fn(v, arg);
    }
}

static int find_membership(const struct rtmd_session *s, struct rtmd_str channel)
{
    for (int i = 0; i < s->n_channels; i++)
        if (rtmd_str_eq(name_of(s->channels[i].channel), channel))
            return i;
    return -1;
}

bool rtmd_session_in_channel(const struct rtmd_session *s, struct rtmd_str channel)
{
    return find_membership(s, channel) >= 0;
}

struct rtmd_channel *rtmd_session_channel(const struct rtmd_session *s, struct rtmd_str channel)
{
    int i = find_membership(s, channel);
    return i >= 0 ? s->channels[i].channel : NULL;
}

/* ---- channel membership ------------------------------------------------------------ */

/* The first position in ch->by_uid[0..n) whose uid sorts after `after`
 * (inclusive: at or after). */
static uint32_t lower_bound(struct rtmd_session *const *by_uid, uint32_t n, struct rtmd_str uid,
                            bool inclusive)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = rtmd_online_uid_cmp(uid_of(by_uid[mid]), uid);
        if (c < 0 || (c == 0 && !inclusive))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint32_t rtmd_channel_after(const struct rtmd_channel *ch, struct rtmd_str after)
{
    return after.len ? lower_bound(ch->by_uid, ch->n_members, after, false) : 0;
}

static void add_membership(struct rtmd_session *s, struct rtmd_str name)
{
    struct app_state *st = state_of(s->app);
    struct rtmd_channel *ch = rtmd_hashmap_get(&st->channels, name);
    if (!ch) {
        ch = rtmd_calloc(1, sizeof(*ch));
        ch->app = s->app;
        memcpy(ch->name, name.p, name.len);
        ch->name_len = (uint8_t)name.len;
        rtmd_hashmap_put(&st->channels, name_of(ch), ch);
        /* This node has members here now: messages for the channel must
         * reach it (a backend shared by nodes subscribes). */
        rtmd_store_interest(store_, ch->app, name_of(ch), true);
    }
    if (ch->n_members == ch->cap_members) {
        ch->cap_members = ch->cap_members ? ch->cap_members * 2 : 4;
        ch->members = rtmd_realloc(ch->members, ch->cap_members * sizeof(*ch->members));
        ch->by_uid = rtmd_realloc(ch->by_uid, ch->cap_members * sizeof(*ch->by_uid));
    }
    if (s->n_channels == s->cap_channels) {
        s->cap_channels = (uint8_t)(s->cap_channels ? s->cap_channels * 2 : 2);
        s->channels = rtmd_realloc(s->channels, s->cap_channels * sizeof(*s->channels));
    }
    ch->gen = ++gen_;
    s->channels[s->n_channels].channel = ch;
    s->channels[s->n_channels].pos = ch->n_members;
    s->n_channels++;
    uint32_t at = lower_bound(ch->by_uid, ch->n_members, uid_of(s), true);
    memmove(ch->by_uid + at + 1, ch->by_uid + at, (ch->n_members - at) * sizeof(*ch->by_uid));
    ch->by_uid[at] = s;
    ch->members[ch->n_members++] = s;
    if (hooks_ && hooks_->member)
        hooks_->member(hooks_ctx_, ch, s, true);
}

static void remove_membership(struct rtmd_session *s, int idx)
{
    struct rtmd_channel *ch = s->channels[idx].channel;
    uint32_t pos = s->channels[idx].pos;
    /* Out of the uid order (one uid is in a channel once: a takeover ends the
     * old session first). */
    uint32_t at = lower_bound(ch->by_uid, ch->n_members, uid_of(s), true);
    while (at < ch->n_members && ch->by_uid[at] != s)
        at++; /* never taken: kept for safety, not speed */
    if (at < ch->n_members)
        memmove(ch->by_uid + at, ch->by_uid + at + 1,
                (ch->n_members - at - 1) * sizeof(*ch->by_uid));
    /* Swap-remove from the channel; fix the moved member's recorded position. */
    struct rtmd_session *moved = ch->members[--ch->n_members];
    ch->members[pos] = moved;
    if (moved != s) {
        for (int i = 0; i < moved->n_channels; i++) {
            if (moved->channels[i].channel == ch) {
                moved->channels[i].pos = pos;
                break;
            }
        }
    }
    ch->gen = ++gen_;
    s->channels[idx] = s->channels[--s->n_channels];
    if (hooks_ && hooks_->member)
        hooks_->member(hooks_ctx_, ch, s, false);
    if (ch->n_members == 0) {
        rtmd_store_interest(store_, ch->app, name_of(ch), false);
        rtmd_hashmap_remove(&state_of(ch->app)->channels, name_of(ch));
        free(ch->members);
        free(ch->by_uid);
        free(ch);
    }
}

/* ---- store calls --------------------------------------------------------------------- */

static void on_recorded(void *arg, int status)
{
    struct call *call = arg;
    struct rtmd_session *s = call->s;
    /* Leaves and Logouts the store could not write yet are owed: it keeps
     * them and writes them as soon as it can, so the change is done. */
    if (status == -EINPROGRESS)
        status = 0;
    if (status < 0)
        rtmd_log_error("presence", "recording an event for uid %.*s failed: %s", s->uid_len, s->uid,
                       rtmd_strerror(status));
    /* The call still holds s while its callback runs (which may release it). */
    if (call->cb)
        call->cb(s, status, call->arg);
    free(call);
    s->pending--;
    session_free_if_done(s);
}

/* A Join that was not recorded did not happen: the session leaves the
 * channel again, without a Leave (a Leave the session's end recorded for it
 * meanwhile records nothing: the store finds no membership). */
static void on_join_recorded(void *arg, int status)
{
    struct join_call *call = arg;
    struct rtmd_session *s = call->c.s;
    if (status < 0 && s->state == RTMD_SESSION_ONLINE) {
        int idx = find_membership(s, rtmd_str_make(call->channel, call->len));
        if (idx >= 0)
            remove_membership(s, idx);
    }
    on_recorded(&call->c, status);
}

static int record(struct rtmd_session *s, const struct rtmd_presence_op *ops, size_t n,
                  rtmd_presence_cb cb, void *arg)
{
    struct call *call;
    rtmd_store_cb done = on_recorded;
    if (n == 1 && ops[0].type == RTMD_EVENT_JOIN) {
        struct join_call *j = rtmd_malloc(sizeof(*j) + ops[0].channel.len);
        j->len = (uint8_t)ops[0].channel.len;
        memcpy(j->channel, ops[0].channel.p, ops[0].channel.len);
        call = &j->c;
        done = on_join_recorded;
    } else {
        call = rtmd_malloc(sizeof(*call));
    }
    call->s = s;
    call->cb = cb;
    call->arg = arg;
    int r = rtmd_store_presence(store_, s->app, ops, n, done, call);
    if (r < 0) {
        free(call);
        return r;
    }
    rtmd_tap_presence(s->app, ops, n);
    s->pending++;
    return 0;
}

/* Appends s's Leaves and Logout to ops (room for n_channels + 1). */
static size_t end_ops(const struct rtmd_session *s, struct rtmd_presence_op *ops, uint64_t ms)
{
    size_t n = 0;
    for (int i = 0; i < s->n_channels; i++)
        ops[n++] = (struct rtmd_presence_op){RTMD_EVENT_LEAVE, uid_of(s),
                                             name_of(s->channels[i].channel), ms, s->id};
    ops[n++] = (struct rtmd_presence_op){RTMD_EVENT_LOGOUT, uid_of(s), RTMD_STR_NULL, ms, s->id};
    return n;
}

/* Forgets an ended session's registry entries (after its ops were submitted). */
static void forget(struct rtmd_session *s)
{
    while (s->n_channels)
        remove_membership(s, s->n_channels - 1);
    struct app_state *st = state_of(s->app);
    if (rtmd_hashmap_get(&st->sessions, uid_of(s)) == s) {
        rtmd_hashmap_remove(&st->sessions, uid_of(s));
        n_sessions_--;
    }
    s->state = RTMD_SESSION_ENDED;
}

int rtmd_presence_login(struct rtmd_session *s, const struct rtmd_app *app, struct rtmd_str uid,
                        rtmd_presence_cb cb, void *arg)
{
    if (s->state != RTMD_SESSION_NEW || !rtmd_id_valid(uid))
        return -EINVAL;
    uint64_t ms = rtmd_now_ms();
    struct app_state *st = state_of(app);
    struct rtmd_session *old = rtmd_hashmap_get(&st->sessions, uid);
    /* The old session's Leaves and Logout, then the new Login: one call. */
    size_t cap = 1 + (old ? old->n_channels + 1u : 0u);
    struct rtmd_presence_op ops_stack[32];
    struct rtmd_presence_op *ops =
        cap <= RTMD_ARRAY_SIZE(ops_stack) ? ops_stack : rtmd_malloc(cap * sizeof(*ops));
    size_t n = old ? end_ops(old, ops, ms) : 0;
    s->app = app;
    memcpy(s->uid, uid.p, uid.len);
    s->uid_len = (uint8_t)uid.len;
    s->id = next_session_id_++;
    ops[n++] = (struct rtmd_presence_op){RTMD_EVENT_LOGIN, uid_of(s), RTMD_STR_NULL, ms, s->id};
    int r = record(s, ops, n, cb, arg);
    if (ops != ops_stack)
        free(ops);
    if (r < 0) {
        s->app = NULL;
        s->uid_len = 0;
        return r;
    }
    if (old) {
        forget(old);
        if (hooks_ && hooks_->kicked)
            hooks_->kicked(hooks_ctx_, old, "remote_login");
    }
    s->state = RTMD_SESSION_ONLINE;
    rtmd_hashmap_put(&st->sessions, uid_of(s), s);
    n_sessions_++;
    return 0;
}

void rtmd_presence_abandon_login(struct rtmd_session *s)
{
    if (s->state != RTMD_SESSION_ONLINE)
        return;
    forget(s);
    s->state = RTMD_SESSION_NEW;
    s->app = NULL;
    s->uid_len = 0;
}

int rtmd_presence_join(struct rtmd_session *s, struct rtmd_str channel, rtmd_presence_cb cb,
                       void *arg)
{
    if (s->state != RTMD_SESSION_ONLINE || !rtmd_id_valid(channel))
        return -EINVAL;
    if (find_membership(s, channel) >= 0)
        return -EALREADY;
    if (s->n_channels >= cfg_->limits.max_channels_per_user || s->n_channels >= 255)
        return RTMD_ELIMIT;
    struct rtmd_presence_op op = {RTMD_EVENT_JOIN, uid_of(s), channel, rtmd_now_ms(), s->id};
    int r = record(s, &op, 1, cb, arg);
    if (r < 0)
        return r;
    add_membership(s, channel);
    return 0;
}

int rtmd_presence_leave(struct rtmd_session *s, struct rtmd_str channel, rtmd_presence_cb cb,
                        void *arg)
{
    if (s->state != RTMD_SESSION_ONLINE)
        return -EINVAL;
    int idx = find_membership(s, channel);
    if (idx < 0)
        return -ENOENT;
    struct rtmd_presence_op op = {RTMD_EVENT_LEAVE, uid_of(s), channel, rtmd_now_ms(), s->id};
    int r = record(s, &op, 1, cb, arg);
    if (r < 0)
        return r;
    remove_membership(s, idx);
    return 0;
}

int rtmd_presence_end(struct rtmd_session *s, rtmd_presence_cb cb, void *arg)
{
    if (s->state != RTMD_SESSION_ONLINE)
        return -EINVAL;
    struct rtmd_presence_op ops_stack[32];
    size_t cap = s->n_channels + 1u;
    struct rtmd_presence_op *ops =
        cap <= RTMD_ARRAY_SIZE(ops_stack) ? ops_stack : rtmd_malloc(cap * sizeof(*ops));
    size_t n = end_ops(s, ops, rtmd_now_ms());
    int r = record(s, ops, n, cb, arg);
    if (ops != ops_stack)
        free(ops);
    if (r < 0)
        rtmd_log_error("presence", "ending the session of uid %.*s failed: %s", s->uid_len, s->uid,
                       rtmd_strerror(r));
    forget(s);
    return r;
}
