/*
 * store.h — the one interface between rtmd's logic and its state.
 *
 * Presence, gateway and API code call only these functions; they never know
 * which backend runs under them. A backend is a const table of
 * functions (struct rtmd_store_type) plus an opaque context, chosen by name
 * at start: "embedded" (SQLite in WAL mode on a worker thread, one node) or
 * "redis" (Redis 7 lists and hashes, any number of nodes: docs/CLUSTER.md).
 *
 * Asynchrony (libuv's rule): every call either fails synchronously — returns
 * a negative error and never calls its callback — or returns 0 and later
 * calls its callback exactly once, on the loop thread, never from inside the
 * call itself. Callbacks of calls that need the backend (presence, and pulls
 * that return events) run in the order the calls were made for one app;
 * rate() and pulls answered from memory may complete earlier.
 * A callback's status is 0, -ETIMEDOUT (the backend did not answer within
 * limits.store_timeout_ms: the API answers 408, and the backend guarantees
 * nothing was consumed — callers never give up on a call themselves),
 * RTMD_ERATE (rate limit), -ENOSPC (nothing was written: the backend is out
 * of space; clients are told to retry later), -EINPROGRESS (presence only,
 * below), or another negative error.
 *
 * Synchronous errors: -ENOTSUP (the backend lacks this operation), -EINVAL (unknown app, n == 0, an
 * ID that is not 1..64 bytes, a bad kind/region/bucket, max == 0), -EAGAIN (the backend's queue is
 * full, or the handle table), RTMD_ECLOSED (after close). A qps of 0 means no limit. Messages:
 * -EINVAL for a query limit outside 1..100, a non-PEER offline message, max_per_user or ttl_ms
 * of 0, or recipients given for a PEER message; -EIO when no randomness is left for a handle.
 *
 * Ownership: arguments (strings, op arrays) are copied or consumed before the
 * call returns; the caller may free them at once. Data handed to a callback
 * is valid only during that callback.
 */
#ifndef RTMD_STORE_STORE_H
#define RTMD_STORE_STORE_H

#include <uv.h>

#include "core/common.h"
#include "core/config.h"
#include "core/metrics.h"

/* The presence events of the event logs (Login/Logout, Join/Leave). */
enum rtmd_event_type { RTMD_EVENT_LOGIN, RTMD_EVENT_LOGOUT, RTMD_EVENT_JOIN, RTMD_EVENT_LEAVE };

/* The two event logs each app has. */
enum rtmd_evlog_kind { RTMD_EVLOG_USER = 0, RTMD_EVLOG_CHANNEL = 1, RTMD_EVLOG_KINDS = 2 };

/* Per-app rate-limit buckets (events_qps, history_qps, send_qps). */
enum rtmd_rate_bucket {
    RTMD_RATE_EVENTS = 0,
    RTMD_RATE_HISTORY = 1,
    RTMD_RATE_SEND = 2,
    RTMD_RATE_PRESENCE = 3, /* who is online: members, counts, statuses */
    RTMD_RATE_BUCKETS = 4
};

/*
 * One presence change. LOGIN starts the session of (app, uid) on this node;
 * JOIN/LEAVE add/remove one channel membership; LOGOUT ends the session and
 * forgets its memberships. Each op also appends its event to the app's user
 * log (LOGIN/LOGOUT) or channel log (JOIN/LEAVE).
 */
struct rtmd_presence_op {
    enum rtmd_event_type type;
    struct rtmd_str uid;
    struct rtmd_str channel; /* JOIN and LEAVE only */
    uint64_t ms;             /* event time, wall-clock milliseconds */
    uint64_t session;        /* the session on this node (rtmd_session.id): with the node's
                                id it names the session across nodes (cluster fencing) */
};

/* The events a pull returned, oldest first: `joined` holds each event's
 * JSON object, separated by commas — the inside of a JSON array, ready to be
 * wrapped in the answer with one copy. A pull with `after` returns each
 * event in its numbered form (rtmd_event_numbered) and sets dropped: the
 * numbers above `after` of events retention removed before they were read
 * (0 for a draining pull). */
struct rtmd_event_batch {
    size_t n;
    struct rtmd_str joined;
    uint64_t dropped;
};

/* The `after` of a draining pull (the Agora-compatible one). */
#define RTMD_PULL_DRAIN UINT64_MAX
/* The largest `after` accepted: JSON numbers are exact up to 2^53 - 1. */
#define RTMD_PULL_AFTER_MAX 9007199254740991ULL

typedef void (*rtmd_store_cb)(void *arg, int status);
typedef void (*rtmd_store_pull_cb)(void *arg, int status, const struct rtmd_event_batch *batch);

/* One row of the webhook outbox: an event as its log keeps it. Views valid
 * during the callback only. */
#define RTMD_OUTBOX_MESSAGES 2 /* an outbox row's kind for a message (after the two logs) */
struct rtmd_outbox_row {
    uint64_t id; /* the outbox's order: increasing in commit order */
    struct rtmd_str app;
    int kind;     /* enum rtmd_evlog_kind, or RTMD_OUTBOX_MESSAGES */
    uint64_t seq; /* the event's number in its log (as pulls with `after` show it); a
                     message's: its id */
    uint64_t ms;  /* the event's time */
    struct rtmd_str json;
    struct rtmd_str session;
};
/* Rows an outbox read returns at most. */
#define RTMD_OUTBOX_READ_MAX 10000
/* What an outbox read returns: rows after the webhook's position, the
 * position itself, and the newest id the outbox ever gave (so newest -
 * position rows wait, those the webhook will skip included). */
struct rtmd_outbox_batch {
    const struct rtmd_outbox_row *rows;
    size_t n;
    uint64_t position;
    uint64_t newest;
};
typedef void (*rtmd_store_outbox_cb)(void *arg, int status, const struct rtmd_outbox_batch *b);

/* Counters for /metrics, per region and log kind. */
struct rtmd_store_stats {
    uint64_t events_recorded[RTMD_EVLOG_KINDS];
    uint64_t events_dropped[RTMD_REGIONS_MAX][RTMD_EVLOG_KINDS]; /* overwritten unread */
    uint64_t commits;                                            /* group commits (both backends) */
    uint64_t commit_ops;                                         /* ops in those commits */
    /* How long commits took: the embedded store's transactions (BEGIN to
     * COMMIT, its fsync included), the redis backend's presence scripts
     * (sent to answered). */
    struct rtmd_histogram commit_duration;
    uint64_t sessions;        /* live sessions recorded */
    uint64_t history_kept;    /* messages put into history */
    uint64_t history_pruned;  /* messages removed after history_retention_s */
    uint64_t offline_kept;    /* offline messages stored */
    uint64_t offline_dropped; /* offline messages replaced by newer ones (over the cap) */
    uint64_t owed_records;    /* Leaves and Logouts kept after a failed write, not yet written */
    int write_error; /* 0, or the status of a failed write while none has succeeded since */
    /* The redis backend's Redis (0 with the embedded store). */
    uint8_t redis_mode;          /* 0 none yet, 1 a single instance, 2 a Redis Cluster */
    uint32_t redis_masters;      /* masters (1 for a single instance) */
    uint32_t redis_masters_up;   /* of which the command connection is up */
    uint64_t redis_redirections; /* MOVED and ASK met */
    uint64_t redis_reconnects;   /* Redis connections that dropped while up */
    /* Lossless reads the full pull script answered: es did not hold their
     * events as this rtmd writes them (an older rtmd's entries), or moved
     * under the read twice. */
    uint64_t redis_after_full;
};

/* ---- messages (history, offline delivery) ---- */

enum rtmd_message_type { RTMD_MSG_PEER = 0, RTMD_MSG_CHANNEL = 1 };

/* A message to keep: in history, or for an offline receiver. */
struct rtmd_message {
    enum rtmd_message_type type;
    struct rtmd_str src;     /* sender uid */
    struct rtmd_str dst;     /* receiver uid (PEER) or channel name (CHANNEL) */
    struct rtmd_str payload; /* UTF-8 text, 1..max_payload bytes */
    uint64_t ms;             /* send time, wall-clock milliseconds */
};

/*
 * A history filter (docs/API.md, history queries). At least one of source and
 * destination is set (p != NULL). A destination names a user or a channel —
 * the API cannot tell which, so it matches both: the messages that user
 * received (peer messages to it, and channel messages delivered to it as a
 * member) and the messages sent to a channel of that name.
 *   destination only  → all the user received, and all sent to the channel
 *   source only       → all the user sent (peer and channel)
 *   source + dest     → peer messages source→dest, and what source sent to
 *                       the channel dest
 * Times are inclusive, in ms. Results are ordered by (ms, then arrival).
 */
struct rtmd_history_query {
    struct rtmd_str source;
    struct rtmd_str destination;
    uint64_t start_ms;
    uint64_t end_ms;
    uint32_t offset;
    uint32_t limit; /* 20, 50 or 100 */
    bool desc;
    /* The oldest ms shown, 0 for the store's retention cut-off at the call
     * (history_retention_s before now). The API pins it per filter so that a
     * count and the pages of a query agree (api/pins.h); the store keeps
     * expired rows for 2 x history_handle_ttl_s so a pinned cut-off finds them. */
    uint64_t min_ms;
};

/* Messages handed to a callback, oldest first unless the query said desc. */
struct rtmd_message_batch {
    size_t n;
    const struct rtmd_message *messages;
};

typedef void (*rtmd_store_messages_cb)(void *arg, int status, const struct rtmd_message_batch *b);
typedef void (*rtmd_store_count_cb)(void *arg, int status, uint64_t count);
/* handle: NUL-terminated, URL-safe; valid during the callback. */
typedef void (*rtmd_store_handle_cb)(void *arg, int status, const char *handle);
/* q is NULL unless status is 0. */
typedef void (*rtmd_store_query_cb)(void *arg, int status, const struct rtmd_history_query *q);

/* ---- who is online ---- */

/* One page of a channel's members, in uid order (bytewise, a prefix before
 * the longer uid): at most the limit asked, the uids after the one given.
 * more: members follow the last one here. count: the channel's members now,
 * on every node. The uids are valid during the callback. */
struct rtmd_member_page {
    uint64_t count;
    size_t n;
    const struct rtmd_str *uids;
    bool more;
};
typedef void (*rtmd_store_members_cb)(void *arg, int status, const struct rtmd_member_page *page);
/* online[i] for uids[i] of the call; valid during the callback. */
typedef void (*rtmd_store_status_cb)(void *arg, int status, const bool *online, size_t n);

/* ---- the dashboard's view of an app and of the nodes ---- */

/* At most this many users and channels in an overview. */
#define RTMD_OVERVIEW_MAX 200

/*
 * An app at a glance. The event logs' unread backlog and drops per region
 * (indexed like cfg->regions) come from every backend. users and channels
 * only from a backend that answers who is online (rtmd_store_has_members);
 * presence fills them otherwise (presence/online.h). Users: how many hold a
 * session (n_users), and up to RTMD_OVERVIEW_MAX of them in uid order.
 * Channels: up to RTMD_OVERVIEW_MAX with their member counts; with the redis
 * backend those of the users listed (n_channels counts them). Views valid
 * during the callback.
 */
struct rtmd_store_overview {
    uint64_t unread[RTMD_REGIONS_MAX][RTMD_EVLOG_KINDS];
    uint64_t dropped[RTMD_REGIONS_MAX][RTMD_EVLOG_KINDS];
    bool has_online; /* users and channels below are filled */
    uint64_t n_users;
    size_t n_uids;
    const struct rtmd_str *uids;
    uint64_t n_channels;
    size_t n_listed;
    const struct rtmd_str *channels;
    const uint64_t *members; /* members[i] of channels[i] */
};
typedef void (*rtmd_store_overview_cb)(void *arg, int status, const struct rtmd_store_overview *ov);

/* What one node says of itself, and when it said it. */
struct rtmd_node_report {
    struct rtmd_str node;
    uint64_t connections;
    uint64_t sessions;
    uint64_t ms; /* when reported (wall clock); for the nodes read, their last heartbeat */
    bool alive;  /* read: its heartbeat is younger than node_timeout_s */
    bool self;   /* read: this node */
};
typedef void (*rtmd_store_nodes_cb)(void *arg, int status, const struct rtmd_node_report *nodes,
                                    size_t n);
/* Nodes a nodes() answer lists at most. */
#define RTMD_NODES_MAX 256

/* The dashboard's live tail across nodes: an event (one Server-Sent Event,
 * at most RTMD_TAIL_EVENT_MAX bytes) another node published for app. */
typedef void (*rtmd_store_tail_fn)(void *ctx, const struct rtmd_app *app, struct rtmd_str event);
#define RTMD_TAIL_EVENT_MAX 4096

struct rtmd_store;

/*
 * What a backend shared by several nodes tells this node (the embedded store
 * never calls them). ctx is the one given to rtmd_store_set_hooks().
 */
struct rtmd_store_hooks {
    /* Another node ended this node's session `session` of app/uid (a login
     * of uid there took it over): forget it, recording nothing more. */
    void (*session_taken)(void *ctx, const struct rtmd_app *app, struct rtmd_str uid,
                          uint64_t session);
    /* This node was taken for dead and another ended every session it held:
     * forget them all, recording nothing more. */
    void (*sessions_lost)(void *ctx);
};

/*
 * Delivery across nodes (a backend that several nodes share; the embedded
 * store has none of it: one node). What other nodes send this node arrives
 * through these hooks, which messaging registers (rtmd_store_set_routes).
 */
struct rtmd_store_route_hooks {
    /* A peer message for `to`, whose session the backend says is on this
     * node. wait: the sender waits for the ack; ack_ctx (opaque) then goes
     * back with rtmd_store_route_ack. Returns false when this node holds no
     * session of `to` after all (the sender is then told: not delivered). */
    bool (*peer)(void *ctx, const struct rtmd_app *app, struct rtmd_str from, struct rtmd_str to,
                 struct rtmd_str payload, uint64_t ms, bool wait, struct rtmd_str ack_ctx);
    /* A channel message sent on another node, for this node's members. */
    void (*channel)(void *ctx, const struct rtmd_app *app, struct rtmd_str channel,
                    struct rtmd_str from, struct rtmd_str payload, uint64_t ms);
    /* A member joined or left a channel on another node. */
    void (*member)(void *ctx, const struct rtmd_app *app, struct rtmd_str channel,
                   struct rtmd_str uid, bool joined);
    /* The receiver acked a peer message this node sent with wait (wait_id
     * as given to route_peer). */
    void (*acked)(void *ctx, uint64_t wait_id);
};

/* A peer message routed: delivered to the receiver's node (it holds the
 * receiver's session), or not (nobody holds one). */
typedef void (*rtmd_store_routed_cb)(void *arg, int status, bool delivered);
/* A ticket key: key (len bytes) is valid during the call. */
typedef void (*rtmd_store_ticket_cb)(void *arg, int status, uint64_t epoch, const uint8_t *key,
                                     size_t len);

struct rtmd_store_type {
    const char *name;
    /*
     * Opens the backend. Runs before the loop serves anything and may block.
     * It ends the sessions a previous incarnation of this node left behind
     * (a crash or kill -9): Leave for each membership, then Logout, recorded
     * durably before it returns.
     */
    int (*open)(struct rtmd_store **out, const struct rtmd_config *cfg, uv_loop_t *loop);
    /*
     * Records ops of one app atomically and in order; cb runs once they are
     * durable (embedded: committed to SQLite; redis: acknowledged by every
     * region's deployment or queued in the local outbox).
     * Leaves and Logouts are never lost: when they cannot be written, the
     * backend keeps them and retries until they are, ahead of anything
     * recorded later; a call of nothing else then completes with
     * -EINPROGRESS (the change is done; its events follow). A Login or a
     * Join that cannot be written fails, and is never recorded; when the
     * call also held Leaves and a Logout (a takeover), those are kept as
     * above. While records are owed, Logins and Joins fail at once. A Leave
     * or a Logout of a membership or session that was never recorded (its
     * Join or Login failed) records nothing. Calls of Leaves and Logouts
     * alone are never refused with -EAGAIN.
     */
    int (*presence)(struct rtmd_store *s, const struct rtmd_app *app,
                    const struct rtmd_presence_op *ops, size_t n, rtmd_store_cb cb, void *arg);
    /*
     * after == RTMD_PULL_DRAIN: returns up to max of the oldest events of
     * (app, kind) that region has not read, and marks them read for that
     * region only.
     * Otherwise (a lossless read, after <= RTMD_PULL_AFTER_MAX): marks every
     * event numbered up to `after` read for region (a read position never
     * moves back) and returns up to max of the oldest events numbered above
     * `after` that the log holds, numbered (seq, session_id), without marking
     * them read: the same `after` answers the same events again. Numbers are
     * strictly increasing per app and log, starting at 1. An `after` above the
     * newest event's number fails with -ERANGE (the log was reset: nothing
     * is marked).
     * cb runs once the new read position is durable.
     */
    int (*pull)(struct rtmd_store *s, const struct rtmd_app *app, enum rtmd_evlog_kind kind,
                uint32_t region, uint32_t max, uint64_t after, rtmd_store_pull_cb cb, void *arg);
    /* Takes one request from (app, bucket), allowing qps per second: cb gets
     * 0, or RTMD_ERATE when the bucket is empty (nothing taken). */
    int (*rate)(struct rtmd_store *s, const struct rtmd_app *app, enum rtmd_rate_bucket bucket,
                uint32_t qps, rtmd_store_cb cb, void *arg);
    /*
     * Keeps m in the app's history for limits.history_retention_s; cb runs
     * once it is durable. recipients: the uids a CHANNEL message was
     * delivered to (the members at send time, sender excluded); for PEER
     * messages the receiver is m->dst and recipients is NULL.
     */
    int (*history_put)(struct rtmd_store *s, const struct rtmd_app *app,
                       const struct rtmd_message *m, const struct rtmd_str *recipients,
                       size_t n_recipients, rtmd_store_cb cb, void *arg);
    /* Runs a history query (offset/limit/order applied). */
    int (*history_query)(struct rtmd_store *s, const struct rtmd_app *app,
                         const struct rtmd_history_query *q, rtmd_store_messages_cb cb, void *arg);
    /* Counts what a query would match (offset/limit ignored). */
    int (*history_count)(struct rtmd_store *s, const struct rtmd_app *app,
                         const struct rtmd_history_query *q, rtmd_store_count_cb cb, void *arg);
    /*
     * Query handles: keeps q under a new URL-safe handle for
     * ttl_ms; take returns it once and forgets it. A handle that is unknown,
     * used or expired answers -ENOENT (the API's 410).
     */
    int (*handle_put)(struct rtmd_store *s, const struct rtmd_app *app,
                      const struct rtmd_history_query *q, uint64_t ttl_ms, rtmd_store_handle_cb cb,
                      void *arg);
    int (*handle_take)(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str handle,
                       rtmd_store_query_cb cb, void *arg);
    /*
     * Offline messages: keeps a PEER message for m->dst, at most
     * max_per_user per receiver (the newest replace the oldest), until
     * m->ms + ttl_ms; cb runs once it is durable. take removes and returns
     * every unexpired one of uid, oldest first.
     */
    int (*offline_put)(struct rtmd_store *s, const struct rtmd_app *app,
                       const struct rtmd_message *m, uint32_t max_per_user, uint64_t ttl_ms,
                       rtmd_store_cb cb, void *arg);
    int (*offline_take)(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str uid,
                        rtmd_store_messages_cb cb, void *arg);
    void (*stats)(struct rtmd_store *s, struct rtmd_store_stats *out);
    /* Optional (backends that several nodes share). */
    void (*set_hooks)(struct rtmd_store *s, const struct rtmd_store_hooks *hooks, void *ctx);
    void (*set_routes)(struct rtmd_store *s, const struct rtmd_store_route_hooks *hooks, void *ctx);
    /*
     * Delivery across nodes (optional; NULL for the embedded store):
     * route_peer sends m (PEER) to the node holding m->dst's session, if
     * any other does (wait: the receiver's ack comes back as acked(wait_id));
     * route_channel sends m (CHANNEL) to every other node with members in
     * the channel; route_member tells them that uid joined or left (members
     * is how many the channel has now, everywhere); route_ack sends an ack
     * back to the node a peer message came from. interest says that this
     * node has members in a channel (on) or no longer (off), so messages
     * for it reach this node from now on (a join waits for it).
     */
    int (*route_peer)(struct rtmd_store *s, const struct rtmd_app *app,
                      const struct rtmd_message *m, bool wait, uint64_t wait_id,
                      rtmd_store_routed_cb cb, void *arg);
    int (*route_channel)(struct rtmd_store *s, const struct rtmd_app *app,
                         const struct rtmd_message *m);
    int (*route_member)(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str channel,
                        struct rtmd_str uid, bool joined);
    int (*route_ack)(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str ack_ctx);
    void (*interest)(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str channel,
                     bool on);
    /*
     * Who is online, on every node (optional: NULL where this node's own
     * presence state is the whole truth — the embedded store, one node —
     * and presence answers from it). members: up to limit (0..1000; 0 for
     * the count alone) of channel's members whose uid sorts after `after`
     * (empty: from the first), with the count. status: whether each of
     * uids[0..n) (n <= 256) holds a session now.
     */
    int (*members)(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str channel,
                   struct rtmd_str after, uint32_t limit, rtmd_store_members_cb cb, void *arg);
    int (*status)(struct rtmd_store *s, const struct rtmd_app *app, const struct rtmd_str *uids,
                  size_t n, rtmd_store_status_cb cb, void *arg);
    /* Finishes every call already made (their callbacks run), flushes, then
     * calls cb; after cb the context is freed. No call may follow close. */
    void (*close)(struct rtmd_store *s, rtmd_store_cb cb, void *arg);
    /*
     * A reload added app (its index is the next one: apps are never removed
     * from the store, a removed app's state stays until exit). Sets up its
     * state at once, synchronously: what an earlier run left of it (events,
     * read positions) is read, and sessions a crashed run left are ended, as
     * at open(). Negative: the app cannot be served (its slot exists anyway).
     */
    int (*add_app)(struct rtmd_store *s, const struct rtmd_app *app);
    /*
     * TLS session ticket keys shared by the nodes (optional; NULL for the
     * embedded store, whose node keeps its own): the key of period epoch
     * (periods of period_s seconds) kept in the backend, or, when there is
     * none yet, proposal (len bytes), which becomes it. Kept for three
     * periods and a minute. cb gets the key (valid during the call).
     */
    int (*ticket_key)(struct rtmd_store *s, uint64_t epoch, uint32_t period_s,
                      const uint8_t *proposal, size_t len, rtmd_store_ticket_cb cb, void *arg);
    /* The app at a glance (struct rtmd_store_overview). Reads only. */
    int (*overview)(struct rtmd_store *s, const struct rtmd_app *app, rtmd_store_overview_cb cb,
                    void *arg);
    /* Optional (backends that several nodes share): records what this node
     * says of itself (me), then lists every node known, with what each said
     * last; cb may be NULL (a report alone). */
    int (*nodes)(struct rtmd_store *s, const struct rtmd_node_report *me, rtmd_store_nodes_cb cb,
                 void *arg);
    /*
     * The live tail across nodes (optional; backends that several nodes
     * share). tail_set: what other nodes publish goes to fn. tail_watch:
     * this node has viewers of app (on), or no longer; calls are counted
     * (every on is matched by an off). tail_publish: hands this node's event
     * to the other nodes' viewers of app, when some node other than this one
     * watches it (else does nothing); never blocks, never calls back.
     */
    void (*tail_set)(struct rtmd_store *s, rtmd_store_tail_fn fn, void *ctx);
    void (*tail_watch)(struct rtmd_store *s, const struct rtmd_app *app, bool on);
    void (*tail_publish)(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str event);
    /* Whether another node watches app's tail now (what tail_publish checks):
     * lets the caller skip making an event nobody will see. */
    bool (*tail_wanted)(struct rtmd_store *s, const struct rtmd_app *app);
    /*
     * The webhook outbox (optional; docs/WEBHOOKS.md). Every event of a log
     * kind in `kinds` (bit 1 << rtmd_evlog_kind) is also written, in the
     * same commit as the event, to one outbox; outbox ids increase in
     * commit order. Each webhook (by name) has a durable position (a name
     * seen for the first time starts after the rows already there). read
     * first moves it to ack (0: stays; never back) and removes the rows up
     * to prune_upto (0: none; the caller passes the lowest position of its
     * webhooks), then returns up to max rows after it. One op: a webhook
     * acknowledges a batch and reads the next in one commit. notify runs on the loop after
     * events entered the outbox (at most once per store wakeup), with the
     * newest outbox id committed.
     * Reads and acks are independent of pulls: neither moves the other.
     */
    void (*outbox_watch)(struct rtmd_store *s, uint32_t kinds,
                         void (*notify)(void *ctx, uint64_t newest), void *ctx);
    int (*outbox_read)(struct rtmd_store *s, struct rtmd_str hook, uint64_t ack,
                       uint64_t prune_upto, uint32_t max, rtmd_store_outbox_cb cb, void *arg);
    /* Writes a message event (rtmd_message_event_format) of app to the
     * outbox; cb runs once it is durable. Only while kinds (outbox_watch)
     * has RTMD_OUTBOX_MESSAGES (rtmd_store_outbox_wants). */
    int (*outbox_message)(struct rtmd_store *s, const struct rtmd_app *app,
                          const struct rtmd_message *m, rtmd_store_cb cb, void *arg);
    /* Whether events of kind go to the outbox now. */
    bool (*outbox_wants)(const struct rtmd_store *s, int kind);
};

/* Every backend's context starts with this header. */
struct rtmd_store {
    const struct rtmd_store_type *type;
};

extern const struct rtmd_store_type rtmd_store_embedded;
extern const struct rtmd_store_type rtmd_store_redis;

/* Opens the backend cfg->backend names. */
int rtmd_store_open(struct rtmd_store **out, const struct rtmd_config *cfg, uv_loop_t *loop);

static inline int rtmd_store_presence(struct rtmd_store *s, const struct rtmd_app *app,
                                      const struct rtmd_presence_op *ops, size_t n,
                                      rtmd_store_cb cb, void *arg)
{
    return s->type->presence(s, app, ops, n, cb, arg);
}
static inline int rtmd_store_pull(struct rtmd_store *s, const struct rtmd_app *app,
                                  enum rtmd_evlog_kind kind, uint32_t region, uint32_t max,
                                  uint64_t after, rtmd_store_pull_cb cb, void *arg)
{
    return s->type->pull(s, app, kind, region, max, after, cb, arg);
}
static inline int rtmd_store_rate(struct rtmd_store *s, const struct rtmd_app *app,
                                  enum rtmd_rate_bucket bucket, uint32_t qps, rtmd_store_cb cb,
                                  void *arg)
{
    return s->type->rate(s, app, bucket, qps, cb, arg);
}
static inline void rtmd_store_stats(struct rtmd_store *s, struct rtmd_store_stats *out)
{
    s->type->stats(s, out);
}
static inline int rtmd_store_ticket_key(struct rtmd_store *s, uint64_t epoch, uint32_t period_s,
                                        const uint8_t *proposal, size_t len,
                                        rtmd_store_ticket_cb cb, void *arg)
{
    if (!s->type->ticket_key)
        return -ENOTSUP;
    return s->type->ticket_key(s, epoch, period_s, proposal, len, cb, arg);
}
static inline int rtmd_store_history_put(struct rtmd_store *s, const struct rtmd_app *app,
                                         const struct rtmd_message *m,
                                         const struct rtmd_str *recipients, size_t n_recipients,
                                         rtmd_store_cb cb, void *arg)
{
    if (!s->type->history_put)
        return -ENOTSUP;
    return s->type->history_put(s, app, m, recipients, n_recipients, cb, arg);
}
static inline int rtmd_store_history_query(struct rtmd_store *s, const struct rtmd_app *app,
                                           const struct rtmd_history_query *q,
                                           rtmd_store_messages_cb cb, void *arg)
{
    if (!s->type->history_query)
        return -ENOTSUP;
    return s->type->history_query(s, app, q, cb, arg);
}
static inline int rtmd_store_history_count(struct rtmd_store *s, const struct rtmd_app *app,
                                           const struct rtmd_history_query *q,
                                           rtmd_store_count_cb cb, void *arg)
{
    if (!s->type->history_count)
        return -ENOTSUP;
    return s->type->history_count(s, app, q, cb, arg);
}
static inline int rtmd_store_handle_put(struct rtmd_store *s, const struct rtmd_app *app,
                                        const struct rtmd_history_query *q, uint64_t ttl_ms,
                                        rtmd_store_handle_cb cb, void *arg)
{
    if (!s->type->handle_put)
        return -ENOTSUP;
    return s->type->handle_put(s, app, q, ttl_ms, cb, arg);
}
static inline int rtmd_store_handle_take(struct rtmd_store *s, const struct rtmd_app *app,
                                         struct rtmd_str handle, rtmd_store_query_cb cb, void *arg)
{
    if (!s->type->handle_take)
        return -ENOTSUP;
    return s->type->handle_take(s, app, handle, cb, arg);
}
static inline int rtmd_store_offline_put(struct rtmd_store *s, const struct rtmd_app *app,
                                         const struct rtmd_message *m, uint32_t max_per_user,
                                         uint64_t ttl_ms, rtmd_store_cb cb, void *arg)
{
    if (!s->type->offline_put)
        return -ENOTSUP;
    return s->type->offline_put(s, app, m, max_per_user, ttl_ms, cb, arg);
}
static inline int rtmd_store_offline_take(struct rtmd_store *s, const struct rtmd_app *app,
                                          struct rtmd_str uid, rtmd_store_messages_cb cb, void *arg)
{
    if (!s->type->offline_take)
        return -ENOTSUP;
    return s->type->offline_take(s, app, uid, cb, arg);
}
static inline void rtmd_store_set_hooks(struct rtmd_store *s, const struct rtmd_store_hooks *hooks,
                                        void *ctx)
{
    if (s->type->set_hooks)
        s->type->set_hooks(s, hooks, ctx);
}
static inline void rtmd_store_set_routes(struct rtmd_store *s,
                                         const struct rtmd_store_route_hooks *hooks, void *ctx)
{
    if (s->type->set_routes)
        s->type->set_routes(s, hooks, ctx);
}
/* True when the backend delivers across nodes. */
static inline bool rtmd_store_routes(const struct rtmd_store *s)
{
    return s->type->route_peer != NULL;
}
static inline void rtmd_store_interest(struct rtmd_store *s, const struct rtmd_app *app,
                                       struct rtmd_str channel, bool on)
{
    if (s->type->interest)
        s->type->interest(s, app, channel, on);
}
/* True when the backend answers who is online (else presence does). */
static inline bool rtmd_store_has_members(const struct rtmd_store *s)
{
    return s->type->members != NULL && s->type->status != NULL;
}
static inline int rtmd_store_members(struct rtmd_store *s, const struct rtmd_app *app,
                                     struct rtmd_str channel, struct rtmd_str after, uint32_t limit,
                                     rtmd_store_members_cb cb, void *arg)
{
    if (!s->type->members)
        return -ENOTSUP;
    return s->type->members(s, app, channel, after, limit, cb, arg);
}
static inline int rtmd_store_status(struct rtmd_store *s, const struct rtmd_app *app,
                                    const struct rtmd_str *uids, size_t n, rtmd_store_status_cb cb,
                                    void *arg)
{
    if (!s->type->status)
        return -ENOTSUP;
    return s->type->status(s, app, uids, n, cb, arg);
}
static inline bool rtmd_store_has_outbox(const struct rtmd_store *s)
{
    return s->type->outbox_read != NULL;
}
static inline void rtmd_store_outbox_watch(struct rtmd_store *s, uint32_t kinds,
                                           void (*notify)(void *ctx, uint64_t newest), void *ctx)
{
    if (s->type->outbox_watch)
        s->type->outbox_watch(s, kinds, notify, ctx);
}
static inline int rtmd_store_outbox_read(struct rtmd_store *s, struct rtmd_str hook, uint64_t ack,
                                         uint64_t prune_upto, uint32_t max, rtmd_store_outbox_cb cb,
                                         void *arg)
{
    if (!s->type->outbox_read)
        return -ENOTSUP;
    return s->type->outbox_read(s, hook, ack, prune_upto, max, cb, arg);
}
static inline bool rtmd_store_outbox_wants(const struct rtmd_store *s, int kind)
{
    return s->type->outbox_wants && s->type->outbox_wants(s, kind);
}
static inline int rtmd_store_outbox_message(struct rtmd_store *s, const struct rtmd_app *app,
                                            const struct rtmd_message *m, rtmd_store_cb cb,
                                            void *arg)
{
    if (!s->type->outbox_message)
        return -ENOTSUP;
    return s->type->outbox_message(s, app, m, cb, arg);
}
static inline int rtmd_store_add_app(struct rtmd_store *s, const struct rtmd_app *app)
{
    return s->type->add_app(s, app);
}
static inline int rtmd_store_overview(struct rtmd_store *s, const struct rtmd_app *app,
                                      rtmd_store_overview_cb cb, void *arg)
{
    if (!s->type->overview)
        return -ENOTSUP;
    return s->type->overview(s, app, cb, arg);
}
static inline int rtmd_store_nodes(struct rtmd_store *s, const struct rtmd_node_report *me,
                                   rtmd_store_nodes_cb cb, void *arg)
{
    if (!s->type->nodes)
        return -ENOTSUP;
    return s->type->nodes(s, me, cb, arg);
}
/* True when the backend carries the live tail across nodes. */
static inline bool rtmd_store_has_tail(const struct rtmd_store *s)
{
    return s->type->tail_publish != NULL;
}
static inline bool rtmd_store_tail_wanted(struct rtmd_store *s, const struct rtmd_app *app)
{
    return s->type->tail_wanted && s->type->tail_wanted(s, app);
}
static inline void rtmd_store_tail_set(struct rtmd_store *s, rtmd_store_tail_fn fn, void *ctx)
{
    if (s->type->tail_set)
        s->type->tail_set(s, fn, ctx);
}
static inline void rtmd_store_tail_watch(struct rtmd_store *s, const struct rtmd_app *app, bool on)
{
    if (s->type->tail_watch)
        s->type->tail_watch(s, app, on);
}
static inline void rtmd_store_tail_publish(struct rtmd_store *s, const struct rtmd_app *app,
                                           struct rtmd_str event)
{
    if (s->type->tail_publish)
        s->type->tail_publish(s, app, event);
}
static inline void rtmd_store_close(struct rtmd_store *s, rtmd_store_cb cb, void *arg)
{
    s->type->close(s, cb, arg);
}

/*
 * The JSON of one event, made once when it is recorded (keys in
 * alphabetical order, both field styles):
 *   {"ms":M,"ts":M,"type":"Login","user_id":"u"}
 *   {"channel_id":"c","group_id":"c","ms":M,"ts":M,"type":"Join","user_id":"u"}
 * Appends to out; 0 or an rtmd_buf error.
 */
struct rtmd_buf;
int rtmd_event_format(struct rtmd_buf *out, const struct rtmd_presence_op *op);
/*
 * The JSON of a message event (webhooks with `events = message`), keys in
 * alphabetical order; user_id is the sender:
 *   {"ms":M,"payload":"...","to":"bob","ts":M,"type":"PeerMessage","user_id":"alice"}
 *   {"channel_id":"c","ms":M,"payload":"...","ts":M,"type":"ChannelMessage","user_id":"alice"}
 * Appends to out; 0 or an rtmd_buf error.
 */
int rtmd_message_event_format(struct rtmd_buf *out, const struct rtmd_message *m);
/*
 * The numbered form of an event (pulls with `after`): its JSON with
 * "seq":SEQ,"session_id":"SESSION" inserted before "ts" (keys stay in
 * alphabetical order). SESSION names the session the event belongs to,
 * "NODE|NUMBER" (rtmd_event_session), "" for events recorded before rtmd
 * kept it. Appends to out; 0 or an rtmd_buf error.
 */
int rtmd_event_numbered(struct rtmd_buf *out, struct rtmd_str json, uint64_t seq,
                        struct rtmd_str session);
/* Bytes the numbered form adds to an event, besides its session_id. */
#define RTMD_EVENT_NUMBERED_EXTRA 48
/* Where the fields go in json: the offset of its ,"ts": (before the
 * closing brace without one). */
size_t rtmd_event_ts_offset(struct rtmd_str json);
/* Writes the numbered form at o, which has room for json.len +
 * session.len + RTMD_EVENT_NUMBERED_EXTRA bytes; ts_at from
 * rtmd_event_ts_offset(). Returns the end of what it wrote. */
char *rtmd_event_numbered_put(char *o, struct rtmd_str json, size_t ts_at, uint64_t seq,
                              struct rtmd_str session);
/* Bytes of a session_id at most: a node id, '|', a 20-digit number. */
#define RTMD_SESSION_ID_MAX 64
/* Writes "NODE|NUMBER" (NUL-terminated) into out (RTMD_SESSION_ID_MAX
 * bytes); returns its length. */
size_t rtmd_event_session(char *out, const char *node, uint64_t session);
enum rtmd_evlog_kind rtmd_event_log_kind(enum rtmd_event_type type);
const char *rtmd_event_type_name(enum rtmd_event_type type);

#endif
