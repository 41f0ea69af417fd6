/*
 * redis_client.h — Redis for the redis backend: one single instance or one
 * Redis Cluster, found from the seeds, on rtmd's loop thread. Built on
 * redis_conn (one connection each) and redis_slots (routing, no I/O).
 *
 * Finding the deployment. The client connects to the seeds one at a time,
 * in order, until one answers its handshake, and asks it CLUSTER SLOTS:
 *   - a slot map: a Redis Cluster. The client keeps one command connection
 *     per master of the map (replicas are not used), routes each command by
 *     its key's hash slot, and refreshes the map from any reachable node
 *     (CLUSTER SLOTS) on a MOVED, when a master's connection drops, every
 *     refresh_ms, and every 250 ms while the client is not up (a failover
 *     in progress). The nodes of the map are reached with the credentials
 *     of the seed that answered. When no node of the map answers, the seeds
 *     are tried again.
 *   - "ERR This instance has cluster support disabled": a single instance,
 *     one command connection. When it drops and does not come back within
 *     twice connect_timeout_ms, the other seeds are tried in turn (each one
 *     is asked CLUSTER SLOTS again).
 *   Hosts are used as Redis announces them; a host name is resolved by
 *   redis_conn off the loop (uv_getaddrinfo).
 *
 * Commands. rtmd_redis_client_command() sends one command to the master
 * serving its key's slot (any master for a key-less command) and calls back
 * once with the outcome, whatever happened in between:
 *   - MOVED: the slot moved for good. The map is corrected at once, a full
 *     refresh follows, and the command goes to the new owner.
 *   - ASK: the slot is being migrated and this key is at the target already:
 *     ASKING and the command go to the target together (one write).
 *     A script (EVAL, EVALSHA) is the exception: it may touch keys it did
 *     not declare, and on the importing node, under ASKING, the keys that
 *     have not moved yet look missing. A script is never sent with ASKING:
 *     it waits as for TRYAGAIN until the migration ends and the source
 *     answers MOVED. (The backend's scripts declare as their key the app's
 *     prefix "rtmd:{APPID}:", a key that never exists: the source of a
 *     migration answers ASK to every one of them, so none runs while its
 *     slot's keys are split between two nodes.)
 *   - TRYAGAIN, CLUSTERDOWN, no slot map yet, the slot unassigned, or the
 *     owner's connection down (a command that was NOT written to a
 *     connection that dropped, too): the command waits and is sent again
 *     after a short backoff (10 ms doubling to 200 ms), or as soon as a
 *     connection comes up or the map changes.
 *   - All of that happens within the command's deadline: when it passes,
 *     the callback gets -ETIMEDOUT at that moment.
 *   - At most RTMD_REDIS_CLIENT_REDIRECTS MOVED and ASK per command: past
 *     that the last redirection's error reply is the outcome (the command
 *     did not run).
 *   - A command written to a connection that dropped before answering
 *     completes with -ECONNRESET and is NEVER sent again: it may have run.
 * Status as for redis_conn: 0 with the reply (maybe an error reply),
 * -ETIMEDOUT, -ECONNRESET, RTMD_ECLOSED (rtmd_redis_client_close()), or,
 * when sending it again to another node failed, that failure (-ENOMEM,
 * -EMSGSIZE).
 *
 * Scripts. opt.scripts are loaded (SCRIPT LOAD) on every command connection
 * as soon as it is up, before anything else is sent on it, so EVALSHA finds
 * them on every master, after a reconnect or a failover as well; a NOSCRIPT
 * (a SCRIPT FLUSH) is the caller's to handle (EVAL).
 *
 * Sharded pub/sub. rtmd_redis_client_subscribe() counts references per
 * channel; the client keeps each channel with at least one subscribed at
 * the master serving the channel's slot (SSUBSCRIBE), over one subscriber
 * connection per master (opened when first needed), and subscribes again
 * after a reconnect, a failover, or a slot move (Redis 7 tells subscribers
 * with an unrequested sunsubscribe when a channel's slot moves away).
 * Messages published while a channel is being moved or resubscribed are
 * not seen. Every message goes to opt.on_message(channel, payload).
 * rtmd_redis_client_publish() is SPUBLISH, routed as a command by the
 * channel's slot. On a single instance the same commands run on the one
 * server.
 *
 * Up. rtmd_redis_client_up() — what /healthz reports — holds when every
 * slot can be served now: a single instance's connection is up, or, in a
 * Cluster, the map assigns all 16384 slots and the command connection to
 * every master of the map is up. opt.on_state() hears each change.
 * rtmd_redis_client_reachable() is weaker: some command connection is up.
 * A command issued while nothing is reachable fails at once (-ENOTCONN):
 * the client queues nothing while every server is gone. While something is
 * reachable, a command for a slot that cannot be served now is accepted and
 * waits (above).
 *
 * Bounds: at most max_pending commands accepted and not completed (beyond:
 * -EAGAIN), max_channels channels, the nodes of one slot map (plus the
 * seeds); each connection has redis_conn's bounds.
 *
 * Callback rules (libuv's): a call that fails synchronously never calls
 * back; a call that returned 0 calls back exactly once, later, on the loop
 * thread, never inside the call that made it. Callbacks may issue commands
 * and may close the client.
 */
#ifndef RTMD_STORE_REDIS_CLIENT_H
#define RTMD_STORE_REDIS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/common.h"
#include "core/redis_url.h"
#include "store/redis_conn.h"

#define RTMD_REDIS_CLIENT_REDIRECTS 5 /* MOVED and ASK followed per command */

struct rtmd_redis_client_options {
    /* Every field may be 0 for its default (in brackets). */
    uint32_t connect_timeout_ms; /* of each connection (redis_conn) [1000] */
    uint32_t stuck_grace_ms;     /* of each connection (redis_conn) [2000] */
    uint32_t refresh_ms;         /* a Cluster's slot map is read again this often [10000] */
    uint32_t max_pending;        /* commands accepted, not completed [65536] */
    uint32_t max_channels;       /* channels subscribed [65536] */
    /* SCRIPT LOADed on every command connection when it comes up. The
     * array and the strings must outlive the client. */
    const char *const *scripts;
    size_t n_scripts;
    /* Up or down (see above). Not called after close. May be NULL. */
    void (*on_state)(void *arg, bool up);
    /* A message on a subscribed channel; the bytes are valid during the
     * call. May be NULL. */
    void (*on_message)(void *arg, struct rtmd_str channel, struct rtmd_str payload);
    void *arg;
};

enum rtmd_redis_mode {
    RTMD_REDIS_MODE_UNKNOWN = 0, /* no seed has answered yet */
    RTMD_REDIS_MODE_SINGLE = 1,
    RTMD_REDIS_MODE_CLUSTER = 2,
};

struct rtmd_redis_client;

/*
 * Creates the client and starts connecting to seeds[0] (asynchronously: no
 * callback runs inside this call). The seeds and options are copied.
 * 0, or -EINVAL (no seed, more than RTMD_REDIS_SEEDS_MAX, a seed redis_conn
 * refuses, loop not rtmd's).
 */
int rtmd_redis_client_open(struct rtmd_redis_client **out, uv_loop_t *loop,
                           const struct rtmd_redis_seed *seeds, size_t n_seeds,
                           const struct rtmd_redis_client_options *opt);

/*
 * Sends argv (argc >= 1 arguments of argvlen bytes, or NUL-terminated when
 * argvlen is NULL) to the master serving key's slot (key NULL: any master),
 * and calls cb(arg, status, reply) once by deadline_ms (rtmd_now_ms() time).
 * The command is copied. Synchronous failures (no callback): -ENOTCONN
 * (nothing reachable), RTMD_ECLOSED (closing), -EAGAIN (max_pending, or the
 * owner's connection is full), -EMSGSIZE, -ENOMEM, -EINVAL (argc < 1, no cb,
 * and commands that hold state on one connection or break routing:
 * (S|P)(UN)SUBSCRIBE — use subscribe() —, MULTI, EXEC, DISCARD, WATCH,
 * UNWATCH, SELECT, AUTH, HELLO, RESET, ASKING, READONLY, READWRITE, MONITOR,
 * SYNC, PSYNC, CLIENT REPLY).
 */
int rtmd_redis_client_command(struct rtmd_redis_client *c, const void *key, size_t keylen, int argc,
                              const char **argv, const size_t *argvlen, uint64_t deadline_ms,
                              rtmd_redis_cb cb, void *arg);

/* Redis's clock against rtmd's, from any reachable master (as
 * rtmd_redis_conn_time()); not retried. -ENOTCONN when nothing is reachable. */
int rtmd_redis_client_time(struct rtmd_redis_client *c, uint64_t deadline_ms, rtmd_redis_time_cb cb,
                           void *arg);

/*
 * One more reference to channel (1..1024 bytes): while it has any, the
 * client keeps it subscribed (SSUBSCRIBE) and its messages go to
 * opt.on_message. 0, -EINVAL, -EAGAIN (max_channels), RTMD_ECLOSED.
 * Subscribing happens in the background: see stats.channels_on.
 */
int rtmd_redis_client_subscribe(struct rtmd_redis_client *c, struct rtmd_str channel);
/* One reference less; the last unsubscribes. A channel not subscribed is
 * ignored. */
void rtmd_redis_client_unsubscribe(struct rtmd_redis_client *c, struct rtmd_str channel);

/* SPUBLISH channel payload, routed by the channel's slot, as a command
 * (the reply is the number of subscribers reached on that shard). */
int rtmd_redis_client_publish(struct rtmd_redis_client *c, struct rtmd_str channel,
                              struct rtmd_str payload, uint64_t deadline_ms, rtmd_redis_cb cb,
                              void *arg);

bool rtmd_redis_client_up(const struct rtmd_redis_client *c);
bool rtmd_redis_client_reachable(const struct rtmd_redis_client *c);

struct rtmd_redis_client_stats {
    enum rtmd_redis_mode mode;
    bool up;
    uint32_t masters;     /* masters of the map (1 for a single instance) */
    uint32_t masters_up;  /* of which the command connection is up */
    uint32_t nodes;       /* nodes the client has connections to */
    uint32_t waiting;     /* commands waiting to be sent again */
    uint32_t pending;     /* commands accepted, not completed */
    uint32_t channels;    /* channels subscribed by the caller */
    uint32_t channels_on; /* of which confirmed by Redis on their slot's master */
    uint64_t commands;    /* accepted */
    uint64_t moved;       /* MOVED redirections followed */
    uint64_t asked;       /* ASK redirections (followed, or waited out by scripts) */
    uint64_t retries;     /* sends again after TRYAGAIN, CLUSTERDOWN, a down connection */
    uint64_t timeouts;    /* commands completed with -ETIMEDOUT */
    uint64_t refreshes;   /* slot maps read (CLUSTER SLOTS answered) */
    uint64_t reconnects;  /* connections that dropped while up */
    uint64_t messages;    /* pub/sub messages delivered */
};
void rtmd_redis_client_stats(const struct rtmd_redis_client *c,
                             struct rtmd_redis_client_stats *out);

/*
 * Closes: every command not yet completed gets RTMD_ECLOSED exactly once,
 * after this call returns; every connection closes; then done(arg) runs,
 * the last thing the client does (its memory is freed before). Call once;
 * safe from inside any callback of the client.
 */
void rtmd_redis_client_close(struct rtmd_redis_client *c, void (*done)(void *arg), void *arg);

#endif
