/*
 * redis_conn.h — one asynchronous connection to one Redis server, on rtmd's
 * loop thread (no second loop, no threads).
 *
 * rtmd speaks to Redis through its own libuv TCP connection; hiredis 0.14 is
 * used for the protocol only: redisFormatCommandArgv() builds commands, a
 * redisReader parses replies (RESP2), freeReplyObject() frees them.
 *
 * The connection, in short:
 *   - It connects by itself and keeps reconnecting (jittered exponential
 *     backoff, backoff_min_ms doubling to backoff_max_ms) after EOF, an error,
 *     a failed AUTH, a timeout or a stuck server. Numeric IPv4/IPv6 hosts are
 *     used directly; a host name is resolved through uv_getaddrinfo (on
 *     libuv's thread pool, never on the loop) at every attempt, and the
 *     attempts rotate through the addresses it returns. Each attempt must get
 *     through TCP connect and a handshake — AUTH [user] password when a
 *     password is configured, PING otherwise — within connect_timeout_ms.
 *     Only a connection that answered its handshake is up; on_state() says so,
 *     and says when it goes down (for /healthz).
 *   - Commands are refused while the connection is not up: they fail
 *     synchronously with -ENOTCONN (never sent, no callback). rtmd never
 *     queues calls for a server it cannot reach.
 *   - Pipelining: commands are buffered and written together once per loop
 *     iteration (after the I/O callbacks of that iteration: a deferred call),
 *     one write for all of them. Replies are matched to commands in FIFO order.
 *   - Deadlines: every command carries an absolute deadline in rtmd_now_ms()
 *     time. When it passes, the callback gets -ETIMEDOUT from a timer at that
 *     moment; the command stays in the FIFO as a placeholder, so its late
 *     reply is read and discarded. When the oldest command is still
 *     unanswered stuck_grace_ms after its deadline, the server is taken to be
 *     stuck: the connection is dropped and re-established.
 *   - Pub/sub (RESP2): SUBSCRIBE, SSUBSCRIBE (Redis 7 sharded pub/sub) and
 *     PSUBSCRIBE, and their UNSUBSCRIBE forms, take one confirmation per
 *     channel named; the command's callback runs once, with the last one.
 *     While the connection holds subscriptions, ["message", channel, payload],
 *     ["smessage", channel, payload], ["pmessage", pattern, channel, payload]
 *     and confirmations nobody asked for (Redis 7 sends ["sunsubscribe",
 *     channel, count] when a shard channel's slot moves away) go to on_push().
 *     A push is an array of at least 3 elements whose first is a string;
 *     check the others' types, they are the server's. Subscriptions belong to
 *     one TCP connection: after a reconnect (on_state(up) again) there are
 *     none, and the owner subscribes again.
 *   - Bounds: at most max_pending commands in the FIFO and max_output unsent
 *     bytes (beyond: -EAGAIN, synchronously); a reply over max_reply bytes
 *     (its data and the objects built for it), a status, error, integer or
 *     array-length line over 64 KiB, a bulk-length line over 24 bytes, or
 *     input that does not parse drops the connection. A hostile or broken server cannot make rtmd
 * allocate without bound: the reader is fed only what was read, and every length the server
 * announces is checked against max_reply before anything of that size is allocated.
 *
 * Callback rules (libuv's): a call that fails synchronously never calls back;
 * a call that returned 0 calls back exactly once, later, on the loop thread,
 * never inside the call that made it. Callbacks may issue new commands and
 * may close the connection.
 *
 * Ownership: the endpoint and options are copied at open. A reply handed to a
 * callback belongs to the connection and is valid only during the callback.
 * After rtmd_redis_conn_close() the connection's memory is freed just before
 * its done callback runs: done(arg) is the last thing the connection does.
 *
 * The loop must be rtmd's loop (rtmd_loop_init() ran on it): commands are
 * flushed through rtmd_defer().
 */
#ifndef RTMD_STORE_REDIS_CONN_H
#define RTMD_STORE_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/common.h"

#define RTMD_REDIS_HOST_MAX     255u /* bytes of a host name (as redis_slots.h has it) */
#define RTMD_REDIS_USER_MAX     128
#define RTMD_REDIS_PASSWORD_MAX 256

/* Where to connect. host is a numeric IPv4 or IPv6 address (no brackets) or
 * a host name; user and password are empty when not used (a user without a
 * password is an error). Each field is NUL-terminated within its array. */
struct rtmd_redis_endpoint {
    char host[RTMD_REDIS_HOST_MAX + 1];
    uint16_t port;
    char user[RTMD_REDIS_USER_MAX];
    char password[RTMD_REDIS_PASSWORD_MAX];
};

/*
 * A command's completion. status is:
 *   0             reply holds the server's answer — which may be an error
 *                 reply (reply->type == REDIS_REPLY_ERROR);
 *   -ETIMEDOUT    no answer by the deadline (the command may still run);
 *   -ECONNRESET   the connection failed after the command was handed to the
 *                 kernel: it MAY have run;
 *   -ENOTCONN     the connection failed before the command was written: it
 *                 did not run;
 *   RTMD_ECLOSED  rtmd_redis_conn_close() was called (it may have run).
 * reply is NULL unless status is 0, and valid only during the callback.
 */
typedef void (*rtmd_redis_cb)(void *arg, int status, const redisReply *reply);

struct rtmd_redis_conn_options {
    /* Every field may be 0 for its default (in brackets). */
    uint32_t connect_timeout_ms; /* resolve + connect + handshake [1000] */
    uint32_t stuck_grace_ms;     /* oldest command unanswered this long past its deadline:
                                    the server is stuck, reconnect [2000] */
    uint32_t max_pending;        /* commands in the FIFO, placeholders included [65536] */
    size_t max_output;           /* unsent bytes (at most 1 GiB) [64 MiB] */
    size_t max_reply;            /* bytes of one reply (at most 1 GiB) [64 MiB] */
    uint32_t backoff_min_ms;     /* first reconnect delay [50] */
    uint32_t backoff_max_ms;     /* the delay doubles up to this [2000] */
    uint32_t idle_ping_ms;       /* PING a connection idle this long, so that a dead
                                    server is noticed on a connection that only
                                    receives (pub/sub) [0: off] */
    const char *label;           /* for logs, e.g. "pubsub" (copied) [none] */
    /* The connection went up (handshake answered) or down (dropped while
     * up). Not called after rtmd_redis_conn_close(). May be NULL. */
    void (*on_state)(void *arg, bool up);
    /* A push (see above), valid during the call. May be NULL: pushes are
     * then discarded. */
    void (*on_push)(void *arg, const redisReply *msg);
    void *arg;
};

struct rtmd_redis_conn;

/*
 * Creates the connection and starts connecting (asynchronously: no callback
 * runs inside this call). 0, or -EINVAL (an endpoint field unterminated or
 * empty host, a user without password, loop is not rtmd's loop).
 */
int rtmd_redis_conn_open(struct rtmd_redis_conn **out, uv_loop_t *loop,
                         const struct rtmd_redis_endpoint *ep,
                         const struct rtmd_redis_conn_options *opt);

/*
 * Sends argv (argc >= 1 arguments of argvlen bytes; binary-safe) and calls
 * cb(arg, ...) once with the outcome, by deadline_ms (rtmd_now_ms() time).
 * Synchronous failures (no callback): -ENOTCONN (not up), RTMD_ECLOSED
 * (closing), -EAGAIN (max_pending commands waiting, or the command would
 * put more than max_output bytes unsent), -EMSGSIZE (the command alone is
 * over max_output), -EINVAL (argc < 1; an (UN)SUBSCRIBE form naming no
 * channel; commands that break one-reply-per-command matching or RESP2:
 * HELLO, RESET, MONITOR, SYNC, PSYNC, CLIENT REPLY), -ENOMEM.
 */
int rtmd_redis_conn_command(struct rtmd_redis_conn *c, int argc, const char **argv,
                            const size_t *argvlen, uint64_t deadline_ms, rtmd_redis_cb cb,
                            void *arg);

/*
 * The same for a command already in RESP form (one command, built once with
 * redisFormatCommandArgv(), for a script sent often): the bytes are copied.
 * It must be an ordinary command answered by one reply (not a pub/sub
 * command nor one of those refused above): they are not parsed.
 */
int rtmd_redis_conn_formatted(struct rtmd_redis_conn *c, const char *cmd, size_t len,
                              uint64_t deadline_ms, rtmd_redis_cb cb, void *arg);

/*
 * ASKING, then the command in RESP form (as for formatted()), sent together
 * in one write: both or neither (the same synchronous failures, checked for
 * the two at once). What a Redis Cluster's ASK redirection needs: the
 * flag ASKING sets applies to the next command on the connection only, so
 * nothing may come between them. The ASKING's own reply is consumed; cb gets
 * the command's.
 */
int rtmd_redis_conn_asking(struct rtmd_redis_conn *c, const char *cmd, size_t len,
                           uint64_t deadline_ms, rtmd_redis_cb cb, void *arg);

/* Connected and handshake answered. */
bool rtmd_redis_conn_up(const struct rtmd_redis_conn *c);

/*
 * Closes: every command not yet completed gets RTMD_ECLOSED exactly once,
 * after this call returns; the handles are closed and everything is freed;
 * then done(arg) runs (done may be NULL). Call once; the connection may not
 * be used after done. Safe from inside any callback of this connection.
 */
void rtmd_redis_conn_close(struct rtmd_redis_conn *c, void (*done)(void *arg), void *arg);

/*
 * Redis's clock against rtmd's: sends TIME and calls cb with offset_ms =
 * Redis time - rtmd_now_ms() at the middle of the round trip (add it to an
 * rtmd deadline to get the same instant on Redis's clock), and the round
 * trip rtt_ms that bounds the error (±rtt/2 plus a millisecond of
 * rounding). status as for commands; -EPROTO for a malformed answer and
 * RTMD_ESTORE for an error reply. Synchronous failures as for commands.
 */
typedef void (*rtmd_redis_time_cb)(void *arg, int status, int64_t offset_ms, uint64_t rtt_ms);
int rtmd_redis_conn_time(struct rtmd_redis_conn *c, uint64_t deadline_ms, rtmd_redis_time_cb cb,
                         void *arg);

struct rtmd_redis_conn_stats {
    uint64_t commands;  /* accepted by command()/formatted()/time() */
    uint64_t replies;   /* replies matched to a command (late ones included) */
    uint64_t late;      /* replies that came after their command timed out */
    uint64_t timeouts;  /* commands completed with -ETIMEDOUT */
    uint64_t pushes;    /* pub/sub messages and unrequested confirmations */
    uint64_t writes;    /* write calls on the socket (each carries a whole batch) */
    uint64_t bytes_out; /* bytes written */
    uint64_t bytes_in;  /* bytes read */
    uint64_t connects;  /* connection attempts */
    uint64_t ups;       /* handshakes answered */
    uint64_t drops;     /* connections dropped (lost, failed, stuck, protocol) */
    uint32_t pending;   /* commands in the FIFO now, placeholders included */
    size_t unsent;      /* bytes not yet written */
};
void rtmd_redis_conn_stats(const struct rtmd_redis_conn *c, struct rtmd_redis_conn_stats *out);

#endif
