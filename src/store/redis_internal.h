/*
 * redis_internal.h — what the redis backend's files share (not for other
 * modules): redis.c (connection, presence, pulls, rates, nodes) and
 * redis_msg.c (history, offline messages, query handles).
 */
#ifndef RTMD_STORE_REDIS_INTERNAL_H
#define RTMD_STORE_REDIS_INTERNAL_H

#include <uv.h>

#include "core/config.h"
#include "core/hashmap.h"
#include "core/loop.h"
#include "core/redis_url.h"
#include "store/redis_client.h"
#include "store/redis_conn.h"
#include "store/redis_lua.h"
#include "store/store.h"

#define PREFIX_MAX     48 /* "rtmd:{" APPID(32) "}:" */
#define BEAT_MS        1000
#define OPEN_WAIT_MS   10000 /* how long the start waits for Redis */
#define RETRY_MIN_MS   100
#define RETRY_MAX_MS   2000
#define BATCH_OPS_MAX  4096 /* presence ops in one script call */
#define ARGS_PER_OP    5
#define PENDING_MAX    65536 /* presence calls waiting for Redis, all apps */
#define NODES_HB       "rtmd:{nodes}:hb"
#define NODES_REAPED   "rtmd:{nodes}:reaped"
#define NODES_SINCE    "rtmd:{nodes}:since"
#define NODES_LOCK     "rtmd:{nodes}:lock:"
#define SESSION_ID_MAX 21 /* digits of a u64, with the NUL */

/* One presence op, its strings copied. */
struct pop {
    enum rtmd_event_type type;
    bool undo;  /* owed: undoes a Login or Join whose outcome is unknown */
    bool owed;  /* replayed after a failure (no caller waits for it) */
    char *uid;  /* owned */
    char *chan; /* owned, or NULL */
    uint64_t ms;
    uint64_t session;
};

/* A presence call: its ops [first, first + n) in its app's batch. */
struct pcall {
    rtmd_store_cb cb;
    void *arg;
    size_t first, n;
    uint64_t deadline; /* not sent by then (Redis slow or gone): it gives up (rtmd_now_ms()) */
};

/* An app's ops waiting for the next flush, and those owed. */
struct app_rs {
    const struct rtmd_app *app;
    char prefix[PREFIX_MAX];
    size_t prefix_len;
    struct pop *ops; /* owed ones first */
    size_t n_ops, cap_ops;
    struct pcall *calls;
    size_t n_calls, cap_calls;
    bool in_flight; /* a script call of this app is out: the next waits (order) */
    uint32_t retry_ms;
    uv_timer_t retry;
    struct redis_store *rs;
    uint32_t tail_viewers;     /* this node's viewers of the live tail (redis_dash.c) */
    bool tail_elsewhere;       /* another node has some */
    uint64_t es_first[2];      /* per log kind: es's element 0 was numbered this + 1, last seen */
    struct rtmd_hashmap pages; /* first member pages being read (redis_online.c) */
};

/* A presence script call in flight: the ops and calls it carries. */
struct flight {
    struct app_rs *a;
    struct pop *ops;
    size_t n_ops;
    struct pcall *calls;
    size_t n_calls;
    uint64_t sent_ns; /* uv_hrtime() when its script was sent */
};

/* The state of redis_msg.c: the prune of expired history and offline
 * messages (a pass over every app, one bounded step in flight at a time). */
struct redis_msg_state {
    size_t reply_bytes; /* message bytes one reply carries, about (0: the default) */
    struct redis_msg_prune {
        bool running;
        size_t app;                          /* the app the next step prunes */
        uint64_t next_ms;                    /* rtmd_mono_ms() when the next pass may start */
        uint64_t before_ms;                  /* history messages with an older ms go */
        uint64_t now_ms;                     /* offline messages expired by then go */
        uint32_t budget;                     /* keys a step touches, about (0: the default) */
        uint64_t messages, receivers, steps; /* this pass */
    } prune;
};

struct redis_store {
    struct rtmd_store base;
    const struct rtmd_config *cfg;
    uv_loop_t *loop;
    struct rtmd_redis_client *client; /* a single instance or a Cluster */
    char node[RTMD_NODE_ID_MAX];
    struct start_wait *starting; /* open()'s wait for its first calls (redis.c), NULL after */
    char sha[RTMD_LUA_COUNT][41];
    int64_t offset_ms;    /* Redis time - rtmd_now_ms() */
    bool up;              /* rtmd_redis_client_up(): every slot can be served */
    struct app_rs **apps; /* by rtmd_app.index; add_app (a reload) appends, never moves */
    size_t n_apps;
    struct rtmd_loop_hook flush_hook;
    uv_timer_t beat;
    uv_timer_t expire; /* presence calls still queued at their deadline */
    bool beat_busy;
    uint32_t pending;  /* presence calls not completed */
    uint32_t inflight; /* every command out */
    const struct rtmd_store_hooks *hooks;
    void *hooks_ctx;
    const struct rtmd_store_route_hooks *routes; /* messaging's, for what other nodes send */
    void *routes_ctx;
    bool closing;
    rtmd_store_cb close_cb;
    void *close_arg;
    uint32_t handles_open;
    uint32_t beats; /* heartbeats sent (the prune runs every 60th) */
    rtmd_store_tail_fn tail;
    void *tail_ctx;
    bool tail_busy; /* a TAIL script is out */
    struct rtmd_store_stats stats;
    struct redis_msg_state msg;
    /* Webhooks (redis_outbox.c). */
    uint32_t outbox_kinds; /* bit 1 << kind: this node's webhooks want them */
    void (*outbox_notify)(void *ctx, uint64_t newest);
    void *outbox_ctx;
    struct ob_hook **ob_hooks; /* the webhooks this node read for */
    size_t n_ob_hooks;
};

/* The deadline of a call made now (rtmd_now_ms() time). */
uint64_t rtmd_redis_deadline(const struct redis_store *rs);
/* The app's state, or NULL for an app that is not the config's. */
struct app_rs *rtmd_redis_app(struct redis_store *rs, const struct rtmd_app *app);
/* "rtmd:{APPID}:", the start of every key of the app (one hash slot). */
struct rtmd_str rtmd_redis_app_key(const struct app_rs *a);
/*
 * Runs script with KEYS = keys[0..nkeys) and ARGV = args[0..nargs) (copied),
 * by the store's deadline, on the master serving keys[0]'s slot (every key
 * of a script shares one slot: the app's {APPID} or {nodes}): EVALSHA, or
 * EVAL once more when Redis does not have the script. Fails synchronously
 * (-ENOTCONN while Redis is not reachable; no callback) or calls cb exactly
 * once: status as for rtmd_redis_client_command(), reply valid during the
 * call.
 * A script that touches keys it does not declare must declare as keys[0]
 * the app's prefix (rtmd_redis_app_key()), a key that never exists: while
 * its slot migrates between two masters, the source then answers ASK and
 * the client holds the script until the migration ends (redis_client.h), so
 * it never runs on half of the slot's keys. A script that declares every
 * key it touches needs nothing more.
 */
int rtmd_redis_script(struct redis_store *rs, enum rtmd_redis_script script,
                      const struct rtmd_str *keys, int nkeys, const struct rtmd_str *args,
                      int nargs, rtmd_redis_cb cb, void *arg);
/*
 * One command (argv copied) on the master serving key's slot (key.p NULL:
 * any master), by the store's deadline; the same rules as a script. For
 * what is not a script (a script is one atomic step; prefer it).
 */
int rtmd_redis_command(struct redis_store *rs, struct rtmd_str key, int argc, const char **argv,
                       const size_t *argvlen, rtmd_redis_cb cb, void *arg);
/*
 * Sharded pub/sub for this node (refcounted per channel; kept across
 * reconnects, failovers and slot moves). Every message on a subscribed
 * channel goes to the store's push handler in redis.c. subscribe: 0,
 * -EINVAL, -EAGAIN (too many channels), RTMD_ECLOSED.
 */
int rtmd_redis_subscribe(struct redis_store *rs, struct rtmd_str channel);
void rtmd_redis_unsubscribe(struct redis_store *rs, struct rtmd_str channel);
/* SPUBLISH channel payload (routed by the channel's slot), by the store's
 * deadline; the reply is the number of subscribers reached. As a command. */
int rtmd_redis_publish(struct redis_store *rs, struct rtmd_str channel, struct rtmd_str payload,
                       rtmd_redis_cb cb, void *arg);
/* An integer reply. */
bool rtmd_redis_reply_int(const redisReply *r, long long *out);
/* A store call completed: a close waiting for it may go on. */
void rtmd_redis_call_done(struct redis_store *rs);

/* redis_route.c: delivery across nodes (the store type's route_* and
 * interest), and every message that arrives on a shard channel. */
int rtmd_redis_route_peer(struct rtmd_store *s, const struct rtmd_app *app,
                          const struct rtmd_message *m, bool wait, uint64_t wait_id,
                          rtmd_store_routed_cb cb, void *arg);
int rtmd_redis_route_channel(struct rtmd_store *s, const struct rtmd_app *app,
                             const struct rtmd_message *m);
int rtmd_redis_route_member(struct rtmd_store *s, const struct rtmd_app *app,
                            struct rtmd_str channel, struct rtmd_str uid, bool joined);
int rtmd_redis_route_ack(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str ack_ctx);
void rtmd_redis_interest(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str channel,
                         bool on);
void rtmd_redis_route_push(struct redis_store *rs, struct rtmd_str channel, struct rtmd_str msg);
/* uid left channel, ended by a script for node (a dead node, or this one's
 * previous run): the channel's members on every node but node are told. */
void rtmd_redis_route_ended(struct redis_store *rs, const struct rtmd_app *app, const char *node,
                            struct rtmd_str channel, struct rtmd_str uid);

/* redis_msg.c: the message calls of struct rtmd_store_type. */
int rtmd_redis_history_put(struct rtmd_store *s, const struct rtmd_app *app,
                           const struct rtmd_message *m, const struct rtmd_str *recipients,
                           size_t n_recipients, rtmd_store_cb cb, void *arg);
int rtmd_redis_history_query(struct rtmd_store *s, const struct rtmd_app *app,
                             const struct rtmd_history_query *q, rtmd_store_messages_cb cb,
                             void *arg);
int rtmd_redis_history_count(struct rtmd_store *s, const struct rtmd_app *app,
                             const struct rtmd_history_query *q, rtmd_store_count_cb cb, void *arg);
int rtmd_redis_handle_put(struct rtmd_store *s, const struct rtmd_app *app,
                          const struct rtmd_history_query *q, uint64_t ttl_ms,
                          rtmd_store_handle_cb cb, void *arg);
int rtmd_redis_handle_take(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str handle,
                           rtmd_store_query_cb cb, void *arg);
int rtmd_redis_offline_put(struct rtmd_store *s, const struct rtmd_app *app,
                           const struct rtmd_message *m, uint32_t max_per_user, uint64_t ttl_ms,
                           rtmd_store_cb cb, void *arg);
int rtmd_redis_offline_take(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str uid,
                            rtmd_store_messages_cb cb, void *arg);
/* redis_online.c: who is online (the store type's members and status). */
int rtmd_redis_members(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str channel,
                       struct rtmd_str after, uint32_t limit, rtmd_store_members_cb cb, void *arg);
int rtmd_redis_status(struct rtmd_store *s, const struct rtmd_app *app, const struct rtmd_str *uids,
                      size_t n, rtmd_store_status_cb cb, void *arg);
/* redis_dash.c: the dashboard's reads (the store type's overview and nodes). */
int rtmd_redis_overview(struct rtmd_store *s, const struct rtmd_app *app, rtmd_store_overview_cb cb,
                        void *arg);
int rtmd_redis_nodes(struct rtmd_store *s, const struct rtmd_node_report *me,
                     rtmd_store_nodes_cb cb, void *arg);
void rtmd_redis_tail_set(struct rtmd_store *s, rtmd_store_tail_fn fn, void *ctx);
void rtmd_redis_tail_watch(struct rtmd_store *s, const struct rtmd_app *app, bool on);
void rtmd_redis_tail_publish(struct rtmd_store *s, const struct rtmd_app *app,
                             struct rtmd_str event);
bool rtmd_redis_tail_wanted(struct rtmd_store *s, const struct rtmd_app *app);
/* Every second: says which apps this node watches, learns which others do. */
void rtmd_redis_tail_tick(struct redis_store *rs);
/* A message on an app's tail channel (rtmd:{APPID}:tail); false when channel
 * is not one. */
bool rtmd_redis_tail_push(struct redis_store *rs, struct rtmd_str channel, struct rtmd_str msg);
/* Starts a prune pass now unless one runs (tests; message calls start one
 * at most every minute by themselves). */
void rtmd_redis_msg_prune(struct redis_store *rs);

/* redis_outbox.c: the webhook outbox (store.h outbox_*). */
struct ob_hook;
int rtmd_redis_outbox_read(struct rtmd_store *base, struct rtmd_str hook, uint64_t ack,
                           uint64_t prune_upto, uint32_t max, rtmd_store_outbox_cb cb, void *arg);
int rtmd_redis_outbox_message(struct rtmd_store *base, const struct rtmd_app *app,
                              const struct rtmd_message *m, rtmd_store_cb cb, void *arg);
void rtmd_redis_outbox_watch(struct rtmd_store *base, uint32_t kinds,
                             void (*notify)(void *ctx, uint64_t newest), void *ctx);
bool rtmd_redis_outbox_wants(const struct rtmd_store *base, int kind);
void rtmd_redis_outbox_free(struct redis_store *rs);
/* At each heartbeat: renews the leases this node holds for webhooks still
 * in its config. */
void rtmd_redis_outbox_renew(struct redis_store *rs);

#endif
