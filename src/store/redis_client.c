/*
 * redis_client.c — a single Redis instance or a Redis Cluster, behind one
 * client (see redis_client.h for what a caller sees).
 *
 * Pieces:
 *   - nodes: one per server the client talks to (host:port), in a list and
 *     a hash map by name, each with a command connection and, when a channel
 *     is subscribed there, a subscriber connection. A node is a master when
 *     the slot map gives it slots (or it is the single instance); a node
 *     that is none of master, seed being asked, target of a waiting ASK,
 *     owner of subscriptions or of commands in flight is retired (its
 *     connections closed, then freed);
 *   - the slot map (redis_slots.c), with by_index[] turning the map's node
 *     indices into nodes, rebuilt whenever the map changes;
 *   - commands: each accepted command is formatted once; it is either in
 *     flight on one connection, or in the waiting list (backoff); one timer
 *     serves the waiting list (its earliest retry or deadline);
 *   - channels: a hash map by name, each with its references and where it
 *     is subscribed (pending or confirmed); "reconcile" walks them and puts
 *     each where the map says its slot is;
 *   - work: one deferred call per iteration at most, for what follows a
 *     change (retire idle nodes, reconcile channels, send waiting commands
 *     again, tell the owner up/down), so that no callback of the owner runs
 *     inside a call of the owner.
 *
 * Lifetime: `handles` counts the timers, each open connection and the close
 * step; when the client is closing and it reaches 0 everything is freed,
 * then done runs.
 */
#include "store/redis_client.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/hashmap.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"
#include "store/redis_slots.h"

#define RETRY_MIN_MS        10
#define RETRY_MAX_MS        200
#define REFRESH_MIN_MS      100 /* CLUSTER SLOTS at most this often (MOVEDs during a reshard) */
#define REFRESH_DEGRADED_MS 250 /* ...and this often while not up */
#define SUB_RETRY_MS        100 /* a subscription refused: tried again after */
#define SUB_PING_MS         1000
#define CHANNEL_MAX         1024
#define COMMAND_MAX         ((size_t)512 << 20) /* bytes of one command in RESP */
#define NODES_MAX           (RTMD_REDIS_NODES_MAX + RTMD_REDIS_SEEDS_MAX + 16)
#define NAME_MAX_BYTES      (RTMD_REDIS_HOST_MAX + 8) /* "host:port" */

enum {
    W_MAINT = 1,     /* retire idle nodes */
    W_RECONCILE = 2, /* channels to where their slot is */
    W_KICK = 4,      /* every waiting command is due */
    W_RETRY = 8,     /* the waiting commands that are due */
    W_STATE = 16,    /* tell the owner up/down if it changed */
};

struct node {
    struct rtmd_redis_client *c;
    struct rtmd_list link; /* c->nodes, while not retired */
    char name[NAME_MAX_BYTES];
    struct rtmd_redis_endpoint ep;
    struct rtmd_redis_conn *cmd;
    struct rtmd_redis_conn *sub;
    bool cmd_up, sub_up;
    bool loaded; /* the scripts were sent on this command connection */
    bool master;
    bool was_master;   /* before the map changed (for the log) */
    bool seed;         /* a seed the client is asking about the deployment */
    bool retired;      /* out of the list and the map; freed when opened == 0 and refs == 0 */
    uint32_t opened;   /* connections not yet done */
    uint32_t refs;     /* waiting commands that will ASK here */
    uint32_t channels; /* channels subscribed or being subscribed here */
};

struct ccmd {
    struct rtmd_list link; /* c->waiting */
    struct rtmd_redis_client *c;
    rtmd_redis_cb cb;
    void *arg;
    uint64_t deadline;
    uint64_t retry_at;
    int32_t slot; /* -1: any master */
    uint8_t redirects;
    uint8_t tries;
    bool script;
    struct node *ask;  /* send there, after ASKING (a reference) */
    struct node *sent; /* where it is in flight */
    char *bytes;       /* the command in RESP (hiredis's allocation) */
    size_t len;
};

enum chan_state { CH_OFF, CH_PENDING, CH_ON };

struct chan {
    uint32_t refs;
    uint16_t slot;
    uint8_t state;
    struct node *at; /* where it is subscribed (pending or on), NULL when off */
    uint32_t len;
    char name[]; /* len bytes, then a NUL */
};

struct subreq { /* an SSUBSCRIBE in flight */
    struct node *n;
    uint32_t len;
    char name[];
};

struct rtmd_redis_client {
    uv_loop_t *loop;
    struct rtmd_redis_client_options opt;
    struct rtmd_redis_seed seeds[RTMD_REDIS_SEEDS_MAX];
    size_t n_seeds;
    size_t seed_next;
    char user[RTMD_REDIS_USER_MAX]; /* the credentials of the seed that answered */
    char password[RTMD_REDIS_PASSWORD_MAX];
    enum rtmd_redis_mode mode;
    struct node *single; /* the single instance */
    struct node *probe;  /* the seed being asked, or NULL */
    struct rtmd_redis_slot_map *map;
    struct node **by_index;
    uint32_t by_index_n, by_index_cap;
    struct rtmd_list nodes;
    struct rtmd_hashmap by_name;
    uint32_t n_nodes;
    uint32_t any_rr;
    uint32_t masters;    /* in the map, as last counted */
    uint32_t masters_up; /* of which the command connection is up (recount()) */
    bool up_told;        /* what the owner was last told */
    bool closing;
    /* commands */
    struct rtmd_list waiting;
    uint32_t n_waiting;
    uint32_t pending;
    uv_timer_t retry_timer;
    uint64_t retry_due; /* what retry_timer is armed for, 0 if not */
    /* the slot map */
    uv_timer_t refresh_timer;
    uint64_t refresh_due;
    uint64_t refresh_last;
    bool refreshing;
    bool refresh_wanted;
    uint32_t refresh_rr;
    uv_timer_t probe_timer;
    /* channels */
    struct rtmd_hashmap channels;
    uint32_t channels_on;
    uv_timer_t chan_timer;
    /* deferred work */
    struct rtmd_deferred work;
    unsigned work_flags;
    uint32_t handles;
    void (*done)(void *arg);
    void *done_arg;
    char last_log[160];
    struct rtmd_redis_client_stats stats;
};

static void schedule(struct rtmd_redis_client *c, unsigned flags);
static void refresh_request(struct rtmd_redis_client *c);
static void refresh_start(struct rtmd_redis_client *c);
static void start_probe(struct rtmd_redis_client *c);
static void maybe_finish(struct rtmd_redis_client *c);

/* Logs what is not the line logged last (a failure repeated at every retry
 * costs one line). */
static void say(struct rtmd_redis_client *c, enum rtmd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(struct rtmd_redis_client *c, enum rtmd_log_level level, const char *fmt, ...)
{
    char msg[sizeof(c->last_log)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (level <= RTMD_LOG_WARN && strcmp(msg, c->last_log) == 0) {
        rtmd_log_debug("redis", "%s", msg);
        return;
    }
    if (level <= RTMD_LOG_WARN)
        snprintf(c->last_log, sizeof(c->last_log), "%s", msg);
    else
        c->last_log[0] = '\0';
    rtmd_log(level, "redis", "%s", msg);
}

static struct rtmd_str host_of(const struct node *n)
{
    return rtmd_str_cstr(n->ep.host);
}

/* ---- nodes ------------------------------------------------------------------------------ */

static void on_cmd_state(void *arg, bool up);
static void on_sub_state(void *arg, bool up);
static void load_scripts(struct node *n);
static void recount(struct rtmd_redis_client *c);
static void on_sub_push(void *arg, const redisReply *msg);

static void node_free(struct node *n)
{
    free(n);
}

static void node_maybe_free(struct node *n)
{
    if (n->retired && n->opened == 0 && n->refs == 0)
        node_free(n);
}

static void on_conn_done(void *arg)
{
    struct node *n = arg;
    struct rtmd_redis_client *c = n->c;
    n->opened--;
    c->handles--;
    node_maybe_free(n);
    maybe_finish(c);
}

static void node_unref(struct node *n)
{
    n->refs--;
    node_maybe_free(n);
}

static int name_of(char *out, const char *host, size_t host_len, unsigned port)
{
    return snprintf(out, NAME_MAX_BYTES, "%.*s:%u", (int)host_len, host, port);
}

static struct node *node_find(struct rtmd_redis_client *c, const char *host, size_t host_len,
                              unsigned port)
{
    char name[NAME_MAX_BYTES];
    int k = name_of(name, host, host_len, port);
    return rtmd_hashmap_get(&c->by_name, rtmd_str_make(name, (size_t)k));
}

/* The node at host:port, made if new (with the given credentials), or NULL
 * when the table is full or the host does not fit. */
static struct node *node_get(struct rtmd_redis_client *c, const char *host, size_t host_len,
                             unsigned port, const char *user, const char *password)
{
    struct node *n = node_find(c, host, host_len, port);
    if (n)
        return n;
    if (c->n_nodes >= NODES_MAX || host_len == 0 || host_len > RTMD_REDIS_HOST_MAX || port == 0 ||
        port > 65535)
        return NULL;
    n = rtmd_calloc(1, sizeof(*n));
    n->c = c;
    name_of(n->name, host, host_len, port);
    memcpy(n->ep.host, host, host_len);
    n->ep.port = (uint16_t)port;
    snprintf(n->ep.user, sizeof(n->ep.user), "%s", user);
    snprintf(n->ep.password, sizeof(n->ep.password), "%s", password);
    rtmd_list_insert_tail(&c->nodes, &n->link);
    rtmd_hashmap_put(&c->by_name, rtmd_str_cstr(n->name), n);
    c->n_nodes++;
    return n;
}

static struct rtmd_redis_conn_options conn_options(struct rtmd_redis_client *c, struct node *n,
                                                   bool sub)
{
    struct rtmd_redis_conn_options o;
    memset(&o, 0, sizeof(o));
    o.connect_timeout_ms = c->opt.connect_timeout_ms;
    o.stuck_grace_ms = c->opt.stuck_grace_ms;
    o.idle_ping_ms = sub ? SUB_PING_MS : 0;
    o.label = sub ? "redis-sub" : "redis";
    o.on_state = sub ? on_sub_state : on_cmd_state;
    o.on_push = sub ? on_sub_push : NULL;
    o.arg = n;
    return o;
}

static void node_open(struct node *n, bool sub)
{
    struct rtmd_redis_client *c = n->c;
    struct rtmd_redis_conn **slot = sub ? &n->sub : &n->cmd;
    if (*slot || n->retired || c->closing)
        return;
    struct rtmd_redis_conn_options o = conn_options(c, n, sub);
    int r = rtmd_redis_conn_open(slot, c->loop, &n->ep, &o);
    if (r < 0) {
        say(c, RTMD_LOG_ERROR, "cannot connect to %s: %s", n->name, rtmd_strerror(r));
        *slot = NULL;
        return;
    }
    n->opened++;
    c->handles++;
}

static uint32_t cmd_pending(const struct node *n)
{
    if (!n->cmd)
        return 0;
    struct rtmd_redis_conn_stats st;
    rtmd_redis_conn_stats(n->cmd, &st);
    return st.pending;
}

/* Out of the tables; its connections close, and it is freed after them. */
static void node_retire(struct node *n)
{
    struct rtmd_redis_client *c = n->c;
    rtmd_log_debug("redis", "%s: not used any more; closing its connections", n->name);
    rtmd_list_remove(&n->link);
    rtmd_hashmap_remove(&c->by_name, rtmd_str_cstr(n->name));
    c->n_nodes--;
    n->retired = true;
    n->cmd_up = n->sub_up = false;
    if (n->cmd)
        rtmd_redis_conn_close(n->cmd, on_conn_done, n);
    if (n->sub)
        rtmd_redis_conn_close(n->sub, on_conn_done, n);
    n->cmd = n->sub = NULL;
    node_maybe_free(n);
}

static bool node_needed(const struct rtmd_redis_client *c, const struct node *n)
{
    return n->master || n->seed || n == c->single || n == c->probe || n->channels > 0 ||
           n->refs > 0 || cmd_pending(n) > 0;
}

static void retire_idle(struct rtmd_redis_client *c)
{
    struct rtmd_list *l, *t;
    rtmd_list_foreach_safe(l, t, &c->nodes)
    {
        struct node *n = RTMD_CONTAINER_OF(l, struct node, link);
        if (!node_needed(c, n))
            node_retire(n);
    }
}

/* ---- routing ----------------------------------------------------------------------------- */

/* Some master whose command connection is up, in turn; NULL if none. */
static struct node *any_master(struct rtmd_redis_client *c)
{
    if (c->mode == RTMD_REDIS_MODE_SINGLE)
        return c->single && c->single->cmd_up ? c->single : NULL;
    if (c->mode != RTMD_REDIS_MODE_CLUSTER)
        return NULL;
    uint32_t up = 0;
    struct rtmd_list *l;
    for (l = c->nodes.next; l != &c->nodes; l = l->next) {
        struct node *n = RTMD_CONTAINER_OF(l, struct node, link);
        up += n->master && n->cmd_up;
    }
    if (up == 0)
        return NULL;
    uint32_t pick = c->any_rr++ % up;
    for (l = c->nodes.next; l != &c->nodes; l = l->next) {
        struct node *n = RTMD_CONTAINER_OF(l, struct node, link);
        if (n->master && n->cmd_up && pick-- == 0)
            return n;
    }
    return NULL;
}

/* The node serving slot (-1: any master), up or not; NULL if none is known. */
static struct node *owner(struct rtmd_redis_client *c, int slot)
{
    if (c->mode == RTMD_REDIS_MODE_SINGLE)
        return c->single;
    if (c->mode != RTMD_REDIS_MODE_CLUSTER)
        return NULL;
    if (slot < 0)
        return any_master(c);
    int i = rtmd_redis_slots_node_of(c->map, (unsigned)slot);
    if (i < 0 || (uint32_t)i >= c->by_index_n)
        return NULL;
    return c->by_index[i];
}

/* The map changed: masters and by_index follow it. */
static void apply_map(struct rtmd_redis_client *c)
{
    const struct rtmd_redis_slot_map *m = c->map;
    struct rtmd_list *l;
    for (l = c->nodes.next; l != &c->nodes; l = l->next) {
        struct node *n = RTMD_CONTAINER_OF(l, struct node, link);
        n->was_master = n->master;
        n->master = false;
    }
    if (m->node_count > c->by_index_cap) {
        c->by_index_cap = m->node_count;
        c->by_index = rtmd_realloc(c->by_index, c->by_index_cap * sizeof(*c->by_index));
    }
    uint32_t masters = 0;
    for (uint32_t i = 0; i < m->node_count; i++) {
        const struct rtmd_redis_node *mn = &m->nodes[i];
        struct node *n = NULL;
        if (mn->slots > 0)
            n = node_get(c, mn->host, mn->host_len, mn->port, c->user, c->password);
        c->by_index[i] = n;
        if (n) {
            n->master = true;
            masters++;
            node_open(n, false);
            load_scripts(n);
        }
    }
    c->by_index_n = m->node_count;
    recount(c);
    bool changed = masters != c->masters;
    for (l = c->nodes.next; l != &c->nodes; l = l->next) {
        struct node *n = RTMD_CONTAINER_OF(l, struct node, link);
        changed |= n->master != n->was_master;
    }
    if (changed)
        say(c, RTMD_LOG_INFO, "Redis Cluster: %u masters serve %u of %u slots", masters,
            m->served_slots, RTMD_REDIS_SLOTS);
    c->masters = masters;
    schedule(c, W_MAINT | W_RECONCILE | W_KICK | W_STATE);
}

/* A MOVED: the map learns it at once; a whole refresh follows. */
static void learn_moved(struct rtmd_redis_client *c, const struct rtmd_redis_redirect *rd)
{
    if (c->mode != RTMD_REDIS_MODE_CLUSTER)
        return;
    if (rtmd_redis_slots_apply_moved(c->map, rd) >= 0)
        apply_map(c);
    refresh_request(c);
}

static bool compute_up(const struct rtmd_redis_client *c)
{
    if (c->mode == RTMD_REDIS_MODE_SINGLE)
        return c->single && c->single->cmd_up;
    if (c->mode != RTMD_REDIS_MODE_CLUSTER || c->map->served_slots != RTMD_REDIS_SLOTS ||
        c->map->unknown_slots != 0)
        return false;
    for (uint32_t i = 0; i < c->by_index_n; i++) {
        if (c->map->nodes[i].slots == 0)
            continue;
        if (!c->by_index[i] || !c->by_index[i]->cmd_up)
            return false;
    }
    return true;
}

bool rtmd_redis_client_up(const struct rtmd_redis_client *c)
{
    return !c->closing && compute_up(c);
}

/* Counts the masters whose command connection is up, after any change to
 * either (rare: not per command). */
static void recount(struct rtmd_redis_client *c)
{
    uint32_t up = 0;
    struct rtmd_list *l;
    for (l = c->nodes.next; l != &c->nodes; l = l->next) {
        const struct node *n = RTMD_CONTAINER_OF(l, const struct node, link);
        up += n->master && n->cmd_up;
    }
    c->masters_up = up;
}

bool rtmd_redis_client_reachable(const struct rtmd_redis_client *c)
{
    return !c->closing && c->mode != RTMD_REDIS_MODE_UNKNOWN && c->masters_up > 0;
}

/* ---- commands ---------------------------------------------------------------------------- */

static void on_reply(void *arg, int status, const redisReply *r);

static void on_retry_timer(uv_timer_t *t);

/* Arms the retry timer for due, unless it is armed earlier. */
static void retry_arm(struct rtmd_redis_client *c, uint64_t due)
{
    if (c->closing || (c->retry_due != 0 && c->retry_due <= due))
        return;
    uint64_t now = rtmd_now_ms();
    c->retry_due = due;
    uv_timer_start(&c->retry_timer, on_retry_timer, due > now ? due - now : 0, 0);
}

static void complete(struct ccmd *k, int status, const redisReply *r)
{
    struct rtmd_redis_client *c = k->c;
    c->pending--;
    if (status == -ETIMEDOUT)
        c->stats.timeouts++;
    if (k->ask)
        node_unref(k->ask);
    rtmd_redis_cb cb = k->cb;
    void *arg = k->arg;
    free(k->bytes);
    free(k);
    cb(arg, status, r);
}

/* The command waits: sent again after its backoff, or sooner if a
 * connection comes up or the map changes; by its deadline at the latest. */
static void wait_cmd(struct ccmd *k)
{
    struct rtmd_redis_client *c = k->c;
    uint32_t delay = RETRY_MIN_MS << RTMD_MIN(k->tries, 5);
    if (k->tries < UINT8_MAX)
        k->tries++;
    k->retry_at = rtmd_now_ms() + RTMD_MIN(delay, RETRY_MAX_MS);
    rtmd_list_insert_tail(&c->waiting, &k->link);
    c->n_waiting++;
    retry_arm(c, RTMD_MIN(k->retry_at, k->deadline));
}

/* Sends k where it goes now: 0 sent, 1 it must wait, or a failure. */
static int send_cmd(struct ccmd *k)
{
    struct rtmd_redis_client *c = k->c;
    if (k->ask && k->ask->retired) {
        node_unref(k->ask);
        k->ask = NULL;
    }
    struct node *n = k->ask ? k->ask : owner(c, k->slot);
    if (!n || !n->cmd_up) {
        if (c->mode == RTMD_REDIS_MODE_CLUSTER)
            refresh_request(c);
        return 1;
    }
    int r = k->ask ? rtmd_redis_conn_asking(n->cmd, k->bytes, k->len, k->deadline, on_reply, k)
                   : rtmd_redis_conn_formatted(n->cmd, k->bytes, k->len, k->deadline, on_reply, k);
    if (r == -ENOTCONN)
        return 1;
    if (r < 0)
        return r;
    if (k->ask) {
        node_unref(k->ask);
        k->ask = NULL;
    }
    k->sent = n;
    return 0;
}

/* Sends again now, or waits; a failure completes it. */
static void resend(struct ccmd *k)
{
    int r = send_cmd(k);
    if (r == 1 || r == -EAGAIN)
        wait_cmd(k);
    else if (r < 0)
        complete(k, r, NULL);
}

static void on_reply(void *arg, int status, const redisReply *r)
{
    struct ccmd *k = arg;
    struct rtmd_redis_client *c = k->c;
    struct node *from = k->sent;
    k->sent = NULL;
    if (c->closing) {
        complete(k, status == -ENOTCONN ? RTMD_ECLOSED : status, r);
        return;
    }
    if (!from->master && from != c->single)
        schedule(c, W_MAINT); /* it may be idle now */
    if (status == 0 && r->type == REDIS_REPLY_ERROR && c->mode == RTMD_REDIS_MODE_CLUSTER) {
        /* An empty host in a redirection is the node that answered. */
        struct rtmd_redis_redirect rd;
        int kind = rtmd_redis_slots_classify(r, host_of(from), &rd);
        switch (kind) {
        case RTMD_REDIS_MOVED:
            c->stats.moved++;
            learn_moved(c, &rd);
            if (++k->redirects > RTMD_REDIS_CLIENT_REDIRECTS)
                break;
            resend(k);
            return;
        case RTMD_REDIS_ASK:
            c->stats.asked++;
            if (k->script) {
                wait_cmd(k); /* never under ASKING: see the header */
                return;
            }
            if (++k->redirects > RTMD_REDIS_CLIENT_REDIRECTS)
                break;
            k->ask = node_get(c, rd.host, rd.host_len, rd.port, c->user, c->password);
            if (k->ask) {
                k->ask->refs++;
                node_open(k->ask, false);
            }
            resend(k);
            return;
        case RTMD_REDIS_TRYAGAIN:
        case RTMD_REDIS_CLUSTERDOWN: wait_cmd(k); return;
        default: break;
        }
    }
    if (status == -ENOTCONN) { /* never written: it did not run */
        wait_cmd(k);
        return;
    }
    if (status == RTMD_ECLOSED)
        status = -ECONNRESET; /* a node retired under it (it may have run) */
    complete(k, status, r);
}

/* The waiting commands: those past their deadline complete, those due (all
 * of them when `all`) are sent again; the timer is armed for what is left. */
static void retry_pass(struct rtmd_redis_client *c, bool all)
{
    struct rtmd_list todo;
    rtmd_list_init(&todo);
    if (!rtmd_list_empty(&c->waiting)) {
        todo.next = c->waiting.next;
        todo.prev = c->waiting.prev;
        todo.next->prev = &todo;
        todo.prev->next = &todo;
        rtmd_list_init(&c->waiting);
    }
    uint64_t now = rtmd_now_ms();
    struct rtmd_list *l;
    while (!c->closing && (l = rtmd_list_first(&todo))) {
        rtmd_list_remove(l);
        struct ccmd *k = RTMD_CONTAINER_OF(l, struct ccmd, link);
        c->n_waiting--;
        if (k->deadline <= now) {
            complete(k, -ETIMEDOUT, NULL);
        } else if (all || k->retry_at <= now) {
            c->stats.retries++;
            resend(k);
        } else {
            rtmd_list_insert_tail(&c->waiting, &k->link);
            c->n_waiting++;
        }
    }
    /* Closing (a callback closed the client): the rest stays for the close. */
    while ((l = rtmd_list_first(&todo))) {
        rtmd_list_remove(l);
        rtmd_list_insert_tail(&c->waiting, l);
        c->n_waiting++;
    }
    if (c->closing)
        return;
    uint64_t due = 0;
    for (l = c->waiting.next; l != &c->waiting; l = l->next) {
        struct ccmd *k = RTMD_CONTAINER_OF(l, struct ccmd, link);
        uint64_t d = RTMD_MIN(k->retry_at, k->deadline);
        if (due == 0 || d < due)
            due = d;
    }
    if (due) {
        c->retry_due = 0;
        uv_timer_stop(&c->retry_timer);
        retry_arm(c, due);
    }
}

static void on_retry_timer(uv_timer_t *t)
{
    struct rtmd_redis_client *c = RTMD_CONTAINER_OF(t, struct rtmd_redis_client, retry_timer);
    c->retry_due = 0;
    if (!c->closing)
        retry_pass(c, false);
}

static bool arg_is(const char *p, size_t n, const char *lit)
{
    return rtmd_str_ieq(rtmd_str_make(p, n), rtmd_str_cstr(lit));
}

/* Commands the client does not route (see the header). */
static const char *const refused[] = {
    "SUBSCRIBE", "SSUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "SUNSUBSCRIBE", "PUNSUBSCRIBE", "MULTI",
    "EXEC",      "DISCARD",    "WATCH",      "UNWATCH",     "SELECT",       "AUTH",         "HELLO",
    "RESET",     "ASKING",     "READONLY",   "READWRITE",   "MONITOR",      "SYNC",         "PSYNC",
};
static const char *const scripts[] = {"EVAL",       "EVALSHA", "EVAL_RO",
                                      "EVALSHA_RO", "FCALL",   "FCALL_RO"};

static size_t decimal_digits(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

int rtmd_redis_client_command(struct rtmd_redis_client *c, const void *key, size_t keylen, int argc,
                              const char **argv, const size_t *argvlen, uint64_t deadline_ms,
                              rtmd_redis_cb cb, void *arg)
{
    if (c->closing)
        return RTMD_ECLOSED;
    if (argc < 1 || !argv || !cb || (!key && keylen))
        return -EINVAL;
    size_t stack_len[16], *heap_len = NULL;
    const size_t *len = argvlen;
    if (!len) {
        size_t *l = stack_len;
        if (argc > (int)RTMD_ARRAY_SIZE(stack_len))
            l = heap_len = rtmd_malloc(sizeof(*l) * (size_t)argc);
        for (int i = 0; i < argc; i++)
            l[i] = strlen(argv[i]);
        len = l;
    }
    int r = 0;
    char *bytes = NULL;
    struct ccmd *k = NULL;
    bool script = false;
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(refused); i++)
        if (arg_is(argv[0], len[0], refused[i]))
            r = -EINVAL;
    if (argc >= 2 && arg_is(argv[0], len[0], "CLIENT") && arg_is(argv[1], len[1], "REPLY"))
        r = -EINVAL;
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(scripts); i++)
        script |= arg_is(argv[0], len[0], scripts[i]);
    /* The size in RESP, bounded before hiredis counts it in an int. */
    size_t total = 3 + decimal_digits((uint64_t)argc);
    for (int i = 0; i < argc && r == 0; i++) {
        if (len[i] > COMMAND_MAX || (total += 5 + decimal_digits(len[i]) + len[i]) > COMMAND_MAX)
            r = -EMSGSIZE;
    }
    if (r < 0)
        goto out;
    if (!rtmd_redis_client_reachable(c)) {
        r = -ENOTCONN;
        goto out;
    }
    if (c->pending >= c->opt.max_pending) {
        r = -EAGAIN;
        goto out;
    }
    int n = redisFormatCommandArgv(&bytes, argc, argv, len);
    if (n < 0) {
        r = -ENOMEM;
        goto out;
    }
    k = rtmd_try_malloc(sizeof(*k));
    if (!k) {
        r = -ENOMEM;
        goto out;
    }
    memset(k, 0, sizeof(*k));
    rtmd_list_init(&k->link);
    k->c = c;
    k->cb = cb;
    k->arg = arg;
    k->deadline = deadline_ms;
    k->slot = key ? (int32_t)rtmd_redis_slot_of(key, keylen) : -1;
    k->script = script;
    k->bytes = bytes;
    k->len = (size_t)n;
    r = send_cmd(k);
    if (r < 0)
        goto out;
    bytes = NULL;
    c->pending++;
    c->stats.commands++;
    if (r == 1)
        wait_cmd(k);
    k = NULL;
    r = 0;
out:
    free(k);
    free(bytes);
    free(heap_len);
    return r;
}

int rtmd_redis_client_publish(struct rtmd_redis_client *c, struct rtmd_str channel,
                              struct rtmd_str payload, uint64_t deadline_ms, rtmd_redis_cb cb,
                              void *arg)
{
    if (channel.len == 0 || channel.len > CHANNEL_MAX || !channel.p || (payload.len && !payload.p))
        return -EINVAL;
    const char *argv[] = {"SPUBLISH", channel.p, payload.len ? payload.p : ""};
    size_t lens[] = {8, channel.len, payload.len};
    return rtmd_redis_client_command(c, channel.p, channel.len, 3, argv, lens, deadline_ms, cb,
                                     arg);
}

int rtmd_redis_client_time(struct rtmd_redis_client *c, uint64_t deadline_ms, rtmd_redis_time_cb cb,
                           void *arg)
{
    if (c->closing)
        return RTMD_ECLOSED;
    struct node *n = any_master(c);
    if (!n)
        return -ENOTCONN;
    return rtmd_redis_conn_time(n->cmd, deadline_ms, cb, arg);
}

/* ---- the deployment: seeds, the slot map ------------------------------------------------- */

static void on_refresh_timer(uv_timer_t *t);

static void refresh_arm(struct rtmd_redis_client *c, uint64_t delay_ms)
{
    if (c->closing)
        return;
    uint64_t due = rtmd_now_ms() + delay_ms;
    if (c->refresh_due != 0 && c->refresh_due <= due)
        return;
    c->refresh_due = due;
    uv_timer_start(&c->refresh_timer, on_refresh_timer, delay_ms, 0);
}

/* A refresh is wanted: now, or REFRESH_MIN_MS after the last one. */
static void refresh_request(struct rtmd_redis_client *c)
{
    c->refresh_wanted = true;
    if (c->refreshing)
        return;
    uint64_t now = rtmd_now_ms(), at = c->refresh_last + REFRESH_MIN_MS;
    refresh_arm(c, at > now ? at - now : 0);
}

/* After a refresh (or a failed one): the next, periodic or sooner. */
static void refresh_next(struct rtmd_redis_client *c)
{
    if (c->mode == RTMD_REDIS_MODE_SINGLE)
        return;
    if (c->refresh_wanted)
        refresh_request(c);
    else
        refresh_arm(c, compute_up(c) ? c->opt.refresh_ms : REFRESH_DEGRADED_MS);
}

static void on_refresh_timer(uv_timer_t *t)
{
    struct rtmd_redis_client *c = RTMD_CONTAINER_OF(t, struct rtmd_redis_client, refresh_timer);
    c->refresh_due = 0;
    if (c->closing)
        return;
    if (c->mode == RTMD_REDIS_MODE_SINGLE)
        return;
    c->refresh_wanted = true;
    refresh_start(c);
    if (!c->refreshing)
        refresh_arm(c, REFRESH_DEGRADED_MS); /* nobody to ask yet */
}

static void become_single(struct rtmd_redis_client *c, struct node *n)
{
    c->mode = RTMD_REDIS_MODE_SINGLE;
    c->single = n;
    n->master = true;
    n->seed = false;
    c->probe = NULL;
    c->masters = 1;
    recount(c);
    load_scripts(n);
    uv_timer_stop(&c->probe_timer);
    snprintf(c->user, sizeof(c->user), "%s", n->ep.user);
    snprintf(c->password, sizeof(c->password), "%s", n->ep.password);
    say(c, RTMD_LOG_INFO, "%s is a single Redis instance", n->name);
    schedule(c, W_MAINT | W_RECONCILE | W_KICK | W_STATE);
}

static void on_slots(void *arg, int status, const redisReply *r)
{
    struct node *n = arg;
    struct rtmd_redis_client *c = n->c;
    c->refreshing = false;
    if (c->closing)
        return;
    if (n->retired) {
        refresh_request(c);
        return;
    }
    const char *why = NULL;
    int rc = status;
    char q[120] = "";
    if (status == 0 && r->type == REDIS_REPLY_ERROR) {
        rtmd_log_quote(q, sizeof(q), rtmd_str_make(r->str, r->len));
        if (strstr(r->str, "cluster support disabled") ||
            strncmp(r->str, "ERR unknown command", 19) == 0) {
            if (c->mode == RTMD_REDIS_MODE_UNKNOWN) {
                become_single(c, n);
                return;
            }
            snprintf(q, sizeof(q), "it is not a Redis Cluster node");
        }
        rc = RTMD_ESTORE;
        why = q;
    } else if (status == 0) {
        if (!c->map) {
            c->map = rtmd_malloc(sizeof(*c->map));
            rtmd_redis_slots_init(c->map);
        }
        rc = rtmd_redis_slots_update(c->map, r, host_of(n), &why);
    }
    if (rc < 0) {
        say(c, RTMD_LOG_WARN, "cannot read the slot map from %s: %s", n->name,
            why ? why : rtmd_strerror(rc));
        c->refresh_rr++; /* another node next time */
        c->refresh_wanted = true;
        refresh_arm(c, REFRESH_DEGRADED_MS);
        return;
    }
    c->stats.refreshes++;
    c->refresh_last = rtmd_now_ms();
    if (c->mode != RTMD_REDIS_MODE_CLUSTER) {
        c->mode = RTMD_REDIS_MODE_CLUSTER;
        snprintf(c->user, sizeof(c->user), "%s", n->ep.user);
        snprintf(c->password, sizeof(c->password), "%s", n->ep.password);
        say(c, RTMD_LOG_INFO, "%s is a node of a Redis Cluster", n->name);
    }
    /* The map is known: the seeds are no longer needed for it. */
    uv_timer_stop(&c->probe_timer);
    c->probe = NULL;
    struct rtmd_list *l;
    for (l = c->nodes.next; l != &c->nodes; l = l->next)
        RTMD_CONTAINER_OF(l, struct node, link)->seed = false;
    apply_map(c);
    refresh_next(c);
}

/* Asks a node that is up for the slot map (CLUSTER SLOTS): the probe while
 * the deployment is unknown, else the nodes in turn. */
static void refresh_start(struct rtmd_redis_client *c)
{
    if (c->refreshing || c->closing || c->mode == RTMD_REDIS_MODE_SINGLE)
        return;
    struct node *n = NULL;
    if (c->mode == RTMD_REDIS_MODE_UNKNOWN) {
        n = c->probe && c->probe->cmd_up ? c->probe : NULL;
    } else {
        uint32_t up = 0;
        struct rtmd_list *l;
        for (l = c->nodes.next; l != &c->nodes; l = l->next)
            up += RTMD_CONTAINER_OF(l, struct node, link)->cmd_up;
        uint32_t pick = up ? c->refresh_rr % up : 0;
        for (l = c->nodes.next; up && l != &c->nodes; l = l->next) {
            struct node *x = RTMD_CONTAINER_OF(l, struct node, link);
            if (x->cmd_up && pick-- == 0) {
                n = x;
                break;
            }
        }
        if (!n && !c->probe)
            start_probe(c); /* no node of the map answers: the seeds */
    }
    if (!n)
        return;
    const char *argv[] = {"CLUSTER", "SLOTS"};
    if (rtmd_redis_conn_command(n->cmd, 2, argv, NULL, rtmd_now_ms() + c->opt.connect_timeout_ms,
                                on_slots, n) < 0)
        return;
    c->refreshing = true;
    c->refresh_wanted = false;
}

static void on_probe_timer(uv_timer_t *t);

/* Asks the next seed. */
static void start_probe(struct rtmd_redis_client *c)
{
    if (c->closing)
        return;
    const struct rtmd_redis_seed *s = &c->seeds[c->seed_next++ % c->n_seeds];
    struct node *n = node_get(c, s->host, strlen(s->host), s->port, s->user, s->password);
    if (!n)
        return;
    n->seed = true;
    c->probe = n;
    node_open(n, false);
    if (c->n_seeds > 1)
        uv_timer_start(&c->probe_timer, on_probe_timer, 2 * (uint64_t)c->opt.connect_timeout_ms, 0);
    if (n->cmd_up)
        refresh_start(c);
}

/* The seed asked did not answer in time (or the single instance is gone):
 * the next one. */
static void on_probe_timer(uv_timer_t *t)
{
    struct rtmd_redis_client *c = RTMD_CONTAINER_OF(t, struct rtmd_redis_client, probe_timer);
    if (c->closing)
        return;
    if (c->mode == RTMD_REDIS_MODE_SINGLE) {
        if (!c->single || c->single->cmd_up)
            return;
        say(c, RTMD_LOG_WARN, "%s is gone; trying the other seeds", c->single->name);
        c->single->master = false;
        c->single = NULL;
        c->mode = RTMD_REDIS_MODE_UNKNOWN;
        c->masters = 0;
        recount(c);
    } else if (c->probe && c->probe->cmd_up) {
        return; /* it answered its handshake: its CLUSTER SLOTS decides */
    }
    if (c->probe)
        c->probe->seed = false;
    c->probe = NULL;
    schedule(c, W_MAINT | W_RECONCILE | W_STATE);
    start_probe(c);
}

static void on_loaded(void *arg, int status, const redisReply *r)
{
    struct node *n = arg;
    if (status == 0 && r->type == REDIS_REPLY_ERROR) {
        char q[160];
        rtmd_log_quote(q, sizeof(q), rtmd_str_make(r->str, r->len));
        say(n->c, RTMD_LOG_ERROR, "SCRIPT LOAD on %s failed: %s", n->name, q);
    }
}

/* The scripts go to a master's command connection first: what is sent on
 * it after them runs after them. Masters only (a replica or a seed being
 * asked runs no script). */
static void load_scripts(struct node *n)
{
    struct rtmd_redis_client *c = n->c;
    if (n->loaded || !n->cmd_up || !(n->master || n == c->single))
        return;
    n->loaded = true;
    uint64_t deadline = rtmd_now_ms() + c->opt.connect_timeout_ms;
    for (size_t i = 0; i < c->opt.n_scripts; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", c->opt.scripts[i]};
        if (rtmd_redis_conn_command(n->cmd, 3, argv, NULL, deadline, on_loaded, n) < 0)
            say(c, RTMD_LOG_ERROR, "cannot send SCRIPT LOAD to %s", n->name);
    }
}

static void on_cmd_state(void *arg, bool up)
{
    struct node *n = arg;
    struct rtmd_redis_client *c = n->c;
    n->cmd_up = up;
    n->loaded = false;
    recount(c);
    if (c->closing)
        return;
    if (!up) {
        c->stats.reconnects++;
        if (c->mode == RTMD_REDIS_MODE_CLUSTER && n->master)
            refresh_request(c);
        if (c->mode == RTMD_REDIS_MODE_SINGLE && n == c->single && c->n_seeds > 1)
            uv_timer_start(&c->probe_timer, on_probe_timer, 2 * (uint64_t)c->opt.connect_timeout_ms,
                           0);
        schedule(c, W_STATE);
        return;
    }
    load_scripts(n);
    if (n == c->single)
        uv_timer_stop(&c->probe_timer);
    if (n == c->probe || (c->mode == RTMD_REDIS_MODE_CLUSTER && c->refresh_wanted))
        refresh_start(c);
    schedule(c, W_KICK | W_STATE);
}

/* ---- sharded pub/sub ---------------------------------------------------------------------- */

static void on_chan_timer(uv_timer_t *t)
{
    struct rtmd_redis_client *c = RTMD_CONTAINER_OF(t, struct rtmd_redis_client, chan_timer);
    schedule(c, W_RECONCILE);
}

static struct chan *chan_find(struct rtmd_redis_client *c, const char *p, size_t len)
{
    return rtmd_hashmap_get(&c->channels, rtmd_str_make(p, len));
}

static void on_unsubscribed(void *arg, int status, const redisReply *r)
{
    (void)arg;
    (void)status;
    (void)r; /* a confirmation, or MOVED when the slot left that node: either way, gone */
}

/* Not subscribed at its node any more (SUNSUBSCRIBE sent there if `tell`). */
static void chan_off(struct rtmd_redis_client *c, struct chan *ch, bool tell)
{
    if (ch->state == CH_OFF)
        return;
    struct node *n = ch->at;
    if (tell && n->sub_up) {
        const char *argv[] = {"SUNSUBSCRIBE", ch->name};
        size_t lens[] = {12, ch->len};
        rtmd_redis_conn_command(n->sub, 2, argv, lens, rtmd_now_ms() + c->opt.connect_timeout_ms,
                                on_unsubscribed, NULL);
    }
    if (ch->state == CH_ON)
        c->channels_on--;
    ch->state = CH_OFF;
    ch->at = NULL;
    n->channels--;
    if (n->channels == 0)
        schedule(c, W_MAINT);
}

static void on_subscribed(void *arg, int status, const redisReply *r)
{
    struct subreq *q = arg;
    struct node *n = q->n;
    struct rtmd_redis_client *c = n->c;
    struct chan *ch = c->closing ? NULL : chan_find(c, q->name, q->len);
    if (ch && ch->at == n && ch->state == CH_PENDING) {
        if (status == 0 && r->type == REDIS_REPLY_ARRAY) {
            ch->state = CH_ON;
            c->channels_on++;
        } else {
            /* Refused: MOVED (the map learns it), CLUSTERDOWN, or the
             * command failed; tried again where the map says. */
            struct rtmd_redis_redirect rd;
            if (status == 0 && r->type == REDIS_REPLY_ERROR &&
                rtmd_redis_slots_classify(r, host_of(n), &rd) == RTMD_REDIS_MOVED) {
                learn_moved(c, &rd);
            } else if (status == 0) {
                char e[120];
                rtmd_log_quote(e, sizeof(e), rtmd_str_make(r->str, r->len));
                say(c, RTMD_LOG_WARN, "SSUBSCRIBE on %s refused: %s", n->name, e);
            }
            chan_off(c, ch, false);
            uv_timer_start(&c->chan_timer, on_chan_timer, SUB_RETRY_MS, 0);
        }
    }
    free(q);
}

static void chan_on(struct rtmd_redis_client *c, struct chan *ch, struct node *n)
{
    struct subreq *q = rtmd_malloc(sizeof(*q) + ch->len);
    q->n = n;
    q->len = ch->len;
    memcpy(q->name, ch->name, ch->len);
    const char *argv[] = {"SSUBSCRIBE", ch->name};
    size_t lens[] = {10, ch->len};
    if (rtmd_redis_conn_command(n->sub, 2, argv, lens, rtmd_now_ms() + c->opt.connect_timeout_ms,
                                on_subscribed, q) < 0) {
        free(q);
        uv_timer_start(&c->chan_timer, on_chan_timer, SUB_RETRY_MS, 0);
        return;
    }
    ch->state = CH_PENDING;
    ch->at = n;
    n->channels++;
}

/* Every channel to the master of its slot. */
static void reconcile(struct rtmd_redis_client *c)
{
    size_t it = 0;
    struct rtmd_str key;
    void *v;
    while (rtmd_hashmap_next(&c->channels, &it, &key, &v)) {
        struct chan *ch = v;
        struct node *want = owner(c, ch->slot);
        if (ch->state != CH_OFF && ch->at != want)
            chan_off(c, ch, true);
        if (ch->state != CH_OFF || !want)
            continue;
        node_open(want, true);
        if (want->sub_up)
            chan_on(c, ch, want);
    }
}

static void on_sub_state(void *arg, bool up)
{
    struct node *n = arg;
    struct rtmd_redis_client *c = n->c;
    n->sub_up = up;
    if (c->closing)
        return;
    if (!up) {
        c->stats.reconnects++;
        /* Subscriptions belong to the connection: they are gone. */
        size_t it = 0;
        struct rtmd_str key;
        void *v;
        while (rtmd_hashmap_next(&c->channels, &it, &key, &v)) {
            struct chan *ch = v;
            if (ch->at == n)
                chan_off(c, ch, false);
        }
        if (c->mode == RTMD_REDIS_MODE_CLUSTER)
            refresh_request(c);
    }
    schedule(c, W_RECONCILE);
}

static bool is_str(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING;
}

static bool str_is(const redisReply *r, const char *lit)
{
    return r->len == strlen(lit) && memcmp(r->str, lit, r->len) == 0;
}

static void on_sub_push(void *arg, const redisReply *msg)
{
    struct node *n = arg;
    struct rtmd_redis_client *c = n->c;
    if (c->closing || msg->type != REDIS_REPLY_ARRAY || msg->elements != 3 ||
        !is_str(msg->element[0]) || !is_str(msg->element[1]))
        return;
    const redisReply *kind = msg->element[0], *name = msg->element[1];
    struct chan *ch = chan_find(c, name->str, name->len);
    if (str_is(kind, "smessage") && is_str(msg->element[2])) {
        if (!ch || ch->at != n)
            return;
        c->stats.messages++;
        if (c->opt.on_message)
            c->opt.on_message(c->opt.arg, rtmd_str_make(name->str, name->len),
                              rtmd_str_make(msg->element[2]->str, msg->element[2]->len));
    } else if (str_is(kind, "sunsubscribe")) {
        /* Not asked for: the channel's slot moved away (or the server
         * unsubscribed it). Subscribed again where the map says, once it
         * is read again. */
        if (ch && ch->at == n && ch->state != CH_OFF) {
            rtmd_log_info("redis", "%s dropped a subscription (its slot moved); subscribing again",
                          n->name);
            chan_off(c, ch, false);
            if (c->mode == RTMD_REDIS_MODE_CLUSTER)
                refresh_request(c);
            schedule(c, W_RECONCILE);
        }
    }
}

int rtmd_redis_client_subscribe(struct rtmd_redis_client *c, struct rtmd_str channel)
{
    if (c->closing)
        return RTMD_ECLOSED;
    if (channel.len == 0 || channel.len > CHANNEL_MAX || !channel.p)
        return -EINVAL;
    struct chan *ch = chan_find(c, channel.p, channel.len);
    if (ch) {
        if (ch->refs == UINT32_MAX)
            return -EAGAIN;
        ch->refs++;
        return 0;
    }
    if (rtmd_hashmap_count(&c->channels) >= c->opt.max_channels)
        return -EAGAIN;
    ch = rtmd_calloc(1, sizeof(*ch) + channel.len + 1);
    ch->refs = 1;
    ch->len = (uint32_t)channel.len;
    ch->slot = (uint16_t)rtmd_redis_slot_of(channel.p, channel.len);
    memcpy(ch->name, channel.p, channel.len);
    rtmd_hashmap_put(&c->channels, rtmd_str_make(ch->name, ch->len), ch);
    schedule(c, W_RECONCILE);
    return 0;
}

void rtmd_redis_client_unsubscribe(struct rtmd_redis_client *c, struct rtmd_str channel)
{
    if (c->closing || !channel.p)
        return;
    struct chan *ch = chan_find(c, channel.p, channel.len);
    if (!ch || --ch->refs > 0)
        return;
    chan_off(c, ch, true);
    rtmd_hashmap_remove(&c->channels, rtmd_str_make(ch->name, ch->len));
    free(ch);
}

/* ---- deferred work ------------------------------------------------------------------------ */

static void on_work(struct rtmd_deferred *d)
{
    struct rtmd_redis_client *c = RTMD_CONTAINER_OF(d, struct rtmd_redis_client, work);
    unsigned flags = c->work_flags;
    c->work_flags = 0;
    if (c->closing)
        return;
    if (flags & W_RECONCILE)
        reconcile(c);
    if (flags & (W_KICK | W_RETRY))
        retry_pass(c, (flags & W_KICK) != 0);
    if (c->closing)
        return;
    if (flags & W_MAINT)
        retire_idle(c);
    if (flags & W_STATE) {
        bool up = compute_up(c);
        if (up != c->up_told) {
            c->up_told = up;
            if (c->opt.on_state)
                c->opt.on_state(c->opt.arg, up);
        }
    }
}

static void schedule(struct rtmd_redis_client *c, unsigned flags)
{
    if (c->closing)
        return;
    c->work_flags |= flags;
    if (!rtmd_list_linked(&c->work.link))
        rtmd_defer(&c->work, on_work);
}

/* ---- opening and closing ------------------------------------------------------------------ */

static uint32_t or_default(uint32_t v, uint32_t def)
{
    return v ? v : def;
}

int rtmd_redis_client_open(struct rtmd_redis_client **out, uv_loop_t *loop,
                           const struct rtmd_redis_seed *seeds, size_t n_seeds,
                           const struct rtmd_redis_client_options *opt)
{
    *out = NULL;
    static const struct rtmd_redis_client_options defaults;
    if (!opt)
        opt = &defaults;
    if (!loop || loop != rtmd_loop() || !seeds || n_seeds == 0 || n_seeds > RTMD_REDIS_SEEDS_MAX ||
        (opt->n_scripts && !opt->scripts))
        return -EINVAL;
    for (size_t i = 0; i < n_seeds; i++) {
        size_t hl = strnlen(seeds[i].host, sizeof(seeds[i].host));
        if (hl == 0 || hl > RTMD_REDIS_HOST_MAX || seeds[i].port == 0 ||
            strnlen(seeds[i].user, sizeof(seeds[i].user)) >= RTMD_REDIS_USER_MAX ||
            strnlen(seeds[i].password, sizeof(seeds[i].password)) >= RTMD_REDIS_PASSWORD_MAX ||
            (seeds[i].user[0] && !seeds[i].password[0]))
            return -EINVAL;
    }
    struct rtmd_redis_client *c = rtmd_calloc(1, sizeof(*c));
    c->loop = loop;
    c->opt = *opt;
    c->opt.connect_timeout_ms = or_default(opt->connect_timeout_ms, 1000);
    c->opt.stuck_grace_ms = or_default(opt->stuck_grace_ms, 2000);
    c->opt.refresh_ms = or_default(opt->refresh_ms, 10000);
    c->opt.max_pending = or_default(opt->max_pending, 65536);
    c->opt.max_channels = or_default(opt->max_channels, 65536);
    memcpy(c->seeds, seeds, n_seeds * sizeof(*seeds));
    c->n_seeds = n_seeds;
    rtmd_list_init(&c->nodes);
    rtmd_list_init(&c->waiting);
    rtmd_hashmap_init(&c->by_name);
    rtmd_hashmap_init(&c->channels);
    uv_timer_init(loop, &c->retry_timer);
    uv_timer_init(loop, &c->refresh_timer);
    uv_timer_init(loop, &c->probe_timer);
    uv_timer_init(loop, &c->chan_timer);
    c->handles = 4;
    rtmd_list_init(&c->work.link);
    start_probe(c);
    *out = c;
    return 0;
}

static void finish(struct rtmd_redis_client *c)
{
    struct rtmd_list *l, *t;
    rtmd_list_foreach_safe(l, t, &c->nodes)
    {
        node_free(RTMD_CONTAINER_OF(l, struct node, link));
    }
    size_t it = 0;
    struct rtmd_str key;
    void *v;
    while (rtmd_hashmap_next(&c->channels, &it, &key, &v))
        free(v);
    rtmd_hashmap_free(&c->channels);
    rtmd_hashmap_free(&c->by_name);
    if (c->map) {
        rtmd_redis_slots_free(c->map);
        free(c->map);
    }
    free(c->by_index);
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    free(c);
    if (done)
        done(arg);
}

static void maybe_finish(struct rtmd_redis_client *c)
{
    if (c->closing && c->handles == 0)
        finish(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct rtmd_redis_client *c = h->data;
    c->handles--;
    maybe_finish(c);
}

/* After close() returned: the waiting commands complete. */
static void on_close_work(struct rtmd_deferred *d)
{
    struct rtmd_redis_client *c = RTMD_CONTAINER_OF(d, struct rtmd_redis_client, work);
    struct rtmd_list *l;
    while ((l = rtmd_list_first(&c->waiting))) {
        rtmd_list_remove(l);
        c->n_waiting--;
        complete(RTMD_CONTAINER_OF(l, struct ccmd, link), RTMD_ECLOSED, NULL);
    }
    c->handles--;
    maybe_finish(c);
}

void rtmd_redis_client_close(struct rtmd_redis_client *c, void (*done)(void *arg), void *arg)
{
    if (c->closing)
        return;
    c->closing = true;
    c->done = done;
    c->done_arg = arg;
    rtmd_defer_cancel(&c->work);
    c->work_flags = 0;
    uv_timer_t *timers[] = {&c->retry_timer, &c->refresh_timer, &c->probe_timer, &c->chan_timer};
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(timers); i++) {
        timers[i]->data = c;
        uv_close((uv_handle_t *)timers[i], on_timer_closed);
    }
    struct rtmd_list *l;
    for (l = c->nodes.next; l != &c->nodes; l = l->next) {
        struct node *n = RTMD_CONTAINER_OF(l, struct node, link);
        n->cmd_up = n->sub_up = false;
        if (n->cmd)
            rtmd_redis_conn_close(n->cmd, on_conn_done, n);
        if (n->sub)
            rtmd_redis_conn_close(n->sub, on_conn_done, n);
        n->cmd = n->sub = NULL;
    }
    c->handles++;
    rtmd_defer(&c->work, on_close_work);
}

void rtmd_redis_client_stats(const struct rtmd_redis_client *c, struct rtmd_redis_client_stats *out)
{
    *out = c->stats;
    out->mode = c->mode;
    out->up = rtmd_redis_client_up(c);
    out->masters = c->mode == RTMD_REDIS_MODE_UNKNOWN ? 0 : c->masters;
    out->masters_up = c->mode == RTMD_REDIS_MODE_UNKNOWN ? 0 : c->masters_up;
    out->nodes = c->n_nodes;
    out->waiting = c->n_waiting;
    out->pending = c->pending;
    out->channels = (uint32_t)rtmd_hashmap_count(&c->channels);
    out->channels_on = c->channels_on;
}
