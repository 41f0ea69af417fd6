/*
 * conn.h — listeners and connections: TCP through libuv, optional TLS, and
 * the hand-over of plaintext to one protocol (HTTP/1.1 first, WebSocket after
 * an upgrade).
 *
 * Reading: every connection reads into one loop-wide 64 KiB buffer; bytes
 * are handed to the protocol at once and the protocol keeps only what it
 * cannot use yet (a partial request head, a partial WebSocket frame). An idle
 * connection therefore holds no buffer at all.
 *
 * Writing: rtmd_conn_write() tries a direct write first; bytes the kernel does
 * not take at once are copied into a queued uv_write. conn->out_pending
 * counts them. While a write is queued, later writes are appended to the
 * buffered output (wbuf) and go out as one write before the loop sleeps, so
 * a peer that does not read costs its bytes and one write request per loop
 * iteration, not one request per message (a ping flood answered with tiny
 * pongs). A protocol that cares (WebSocket) compares rtmd_conn_unsent() with
 * its output budget and stops reading past it (rtmd_conn_pause_output()).
 *
 * Lifetime (objects die later, never in the middle of a callback): rtmd_conn_close() marks the
 * connection closing, tells the protocol (on_close), and starts uv_close();
 * the memory is freed when the close callback has run and the last
 * reference (rtmd_conn_ref, held by async work such as a store call) is
 * dropped. Code holding a reference checks rtmd_conn_closing() before use.
 */
#ifndef RTMD_NET_CONN_H
#define RTMD_NET_CONN_H

#include <openssl/ssl.h>
#include <uv.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/list.h"
#include "core/loop.h"

struct rtmd_conn;
struct rtmd_server;
struct rtmd_http_conn;
struct rtmd_ws_conn;

/* The protocol currently driving a connection. */
struct rtmd_proto {
    const char *name;
    /* Plaintext arrived; the protocol consumes or buffers all of it. */
    void (*on_data)(struct rtmd_conn *c, const char *p, size_t n);
    /* The peer sent EOF (only while not closing). */
    void (*on_eof)(struct rtmd_conn *c);
    /* Queued output was fully written (out_pending dropped to 0). */
    void (*on_drain)(struct rtmd_conn *c);
    /* The connection is closing for any reason; release protocol state. */
    void (*on_close)(struct rtmd_conn *c);
    /* The connection's timeout expired (what it means is the protocol's). */
    void (*on_timeout)(struct rtmd_conn *c);
    /* The server drains (SIGTERM): end the connection as soon as what is in
     * flight is done. NULL: the connection ends by itself. */
    void (*on_going_away)(struct rtmd_conn *c);
};

struct rtmd_listener {
    uv_tcp_t tcp;
    struct rtmd_server *server;
    const struct rtmd_listener_config *cfg;
    uint32_t region;
    bool tls;   /* connections speak TLS (cfg->tls) */
    bool admin; /* the admin listener (admin_listen): plain, operators' endpoints only */
    bool held;  /* stopped at ACCEPT_BATCH this iteration: libuv holds a connection */
    uint32_t accepted_pass; /* connections accepted in this loop iteration */
    char bound[80];         /* "host:port" actually bound */
};

enum {
    RTMD_CONN_CLOSING = 1 << 0,     /* rtmd_conn_close() ran */
    RTMD_CONN_READING = 1 << 1,     /* uv_read_start is active */
    RTMD_CONN_READ_PAUSED = 1 << 2, /* the protocol asked to stop reading */
    RTMD_CONN_LINGER = 1 << 3,      /* write side shut; discarding input until EOF */
    RTMD_CONN_CLOSE_AFTER_WRITE = 1 << 4,
    RTMD_CONN_TLS_DONE = 1 << 5,      /* TLS handshake finished */
    RTMD_CONN_IN_READ = 1 << 6,       /* inside the read callback */
    RTMD_CONN_TLS_SHUT = 1 << 7,      /* close_notify sent */
    RTMD_CONN_FAILED = 1 << 8,        /* a write failed: closed from the loop, no more I/O */
    RTMD_CONN_OUTPUT_PAUSED = 1 << 9, /* not read until its unsent output is written */
    RTMD_CONN_BUSY = 1 << 10,         /* over max_connections: answered 503, then closed */
    RTMD_CONN_ADMIN = 1 << 11,        /* accepted on the admin listener */
};

struct rtmd_conn {
    uv_tcp_t tcp;
    struct rtmd_server *server;
    struct rtmd_listener *listener;
    struct rtmd_list link; /* server->conns */
    struct rtmd_timeout timeout;
    uint64_t id;
    uint32_t refs;
    uint32_t flags;
    size_t out_pending;          /* bytes handed to uv_write and not yet written */
    struct rtmd_buf wbuf;        /* buffered output, written before the loop sleeps */
    struct rtmd_list flush_link; /* on the server's flush list while wbuf has bytes */
    SSL *ssl;                    /* NULL for plain connections */
    const struct rtmd_proto *proto;
    union {
        struct rtmd_http_conn *http;
        struct rtmd_ws_conn *ws;
    } p;
    void *user; /* the protocol's user (the gateway's session) */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer; /* the client's address, taken at accept (AF_UNSPEC if unknown) */
};

/* Bytes rtmd_conn_remote() writes at most, with the NUL. */
#define RTMD_CONN_REMOTE_MAX 64
/* The client's "ADDR:PORT" ("[ADDR]:PORT" for IPv6, "-" if unknown) into
 * out (RTMD_CONN_REMOTE_MAX bytes); returns out. */
const char *rtmd_conn_remote(const struct rtmd_conn *c, char *out, size_t outlen);

/* Request handlers the server dispatches to (the API router). */
struct rtmd_http_request;
typedef void (*rtmd_http_handler)(struct rtmd_http_request *req);

struct rtmd_server {
    const struct rtmd_config *cfg;
    SSL_CTX *ssl_ctx; /* NULL when no listener serves TLS */
    struct rtmd_listener listeners[RTMD_LISTENERS_MAX];
    size_t n_listeners;
    /* admin_listen: open from start until rtmd_server_close_all() (it stays
     * open while the server stops accepting, so /readyz can say 503). Its
     * connections do not count against max_connections (monitoring works
     * on a full node); at most RTMD_ADMIN_CONNS_MAX at once. */
    struct rtmd_listener admin;
    bool has_admin;
    size_t n_admin;
    struct rtmd_list conns;
    struct rtmd_list flush;  /* connections with buffered output */
    struct rtmd_list doomed; /* connections whose write failed: closed before sleeping */
    struct rtmd_loop_hook flush_hook;
    uv_timer_t trim_timer; /* malloc_trim() after TLS handshakes, once a second at most */
    uint32_t trim_pending;
    size_t n_conns;          /* every open connection, busy ones included */
    size_t n_busy;           /* connections over max_connections being answered 503 */
    uint64_t full_logged_ms; /* when the log last said max_connections was reached */
    uint64_t next_conn_id;
    rtmd_http_handler on_request;
    void *request_ctx; /* the request handler's context (the API) */
    /* Timeout queues: request head/body, keep-alive idle, lingering close,
     * and a graceful close waiting for its output to be written. */
    struct rtmd_timeout_queue request_timeouts;
    struct rtmd_timeout_queue handshake_timeouts; /* TLS, accept to the handshake's end */
    struct rtmd_timeout_queue idle_timeouts;
    struct rtmd_timeout_queue linger_timeouts;
    struct rtmd_timeout_queue drain_timeouts;
    bool stopping;
    /* counters for /metrics: rejected_full counts every connection over
     * max_connections, rejected_answered those of them answered 503 */
    uint64_t accepted, rejected_full, rejected_answered, closed;
};

#define RTMD_ADMIN_CONNS_MAX 64

/* Binds every listener of cfg and the admin listener (ssl_ctx: NULL when no
 * listener serves TLS). On error writes a message to err. */
int rtmd_server_start(struct rtmd_server *s, const struct rtmd_config *cfg, SSL_CTX *ssl_ctx,
                      rtmd_http_handler on_request, void *request_ctx, char *err, size_t errlen);
/* Replaces the TLS context new connections use (a reload), taking
 * ownership of ctx; connections already made keep the old one (each SSL
 * holds a reference to its context), which is freed with the last of them. */
void rtmd_server_set_tls(struct rtmd_server *s, SSL_CTX *ctx);
/* Stops accepting (the listeners of `listen` closed, the admin listener
 * left open); existing connections stay. */
void rtmd_server_stop_listening(struct rtmd_server *s);
/* Asks every connection to end once what it has in flight is done (its
 * protocol's on_going_away): idle HTTP connections close now, those with a
 * request close after its answer, WebSockets get close 1001. Call after
 * rtmd_server_stop_listening(); the caller waits for n_conns to reach 0. */
void rtmd_server_go_away(struct rtmd_server *s);
/* Closes the admin listener and every connection (their protocols'
 * on_close run). */
void rtmd_server_close_all(struct rtmd_server *s);

static inline bool rtmd_conn_closing(const struct rtmd_conn *c)
{
    return (c->flags & RTMD_CONN_CLOSING) != 0;
}
/* Closing, or closing once queued output is written (close_gracefully):
 * no input is delivered and no output accepted any more. */
static inline bool rtmd_conn_ending(const struct rtmd_conn *c)
{
    return (c->flags & (RTMD_CONN_CLOSING | RTMD_CONN_LINGER | RTMD_CONN_CLOSE_AFTER_WRITE |
                        RTMD_CONN_FAILED)) != 0;
}
static inline void rtmd_conn_ref(struct rtmd_conn *c)
{
    c->refs++;
}
void rtmd_conn_unref(struct rtmd_conn *c);

/* Switches the protocol (HTTP → WebSocket); the caller sets c->p first. */
void rtmd_conn_set_proto(struct rtmd_conn *c, const struct rtmd_proto *proto);

/* Writes plaintext (encrypted first with TLS). 0, or a negative error after
 * which the connection is ending. A write never closes the connection on
 * the spot (the caller may be walking state a close would change — a
 * channel's members): a failed one marks it (rtmd_conn_ending()) and it is
 * closed from the loop before it sleeps. */
int rtmd_conn_write(struct rtmd_conn *c, const void *p, size_t n);
int rtmd_conn_writev(struct rtmd_conn *c, const uv_buf_t *bufs, size_t nbufs);
/*
 * Buffers bytes to be written before the loop next sleeps (prepare phase),
 * so many messages to one connection in one iteration — a channel's fan-out
 * — cost one write (and one TLS record) instead of one each. Later direct
 * writes are appended behind buffered bytes, so order is kept.
 */
int rtmd_conn_write_buffered(struct rtmd_conn *c, const void *p, size_t n);
/* Bytes accepted for this connection and not yet written by the kernel. */
static inline size_t rtmd_conn_unsent(const struct rtmd_conn *c)
{
    return c->out_pending + c->wbuf.len;
}

void rtmd_conn_pause_read(struct rtmd_conn *c);
void rtmd_conn_resume_read(struct rtmd_conn *c);
/* Stops reading until every unsent byte is written (out_pending and wbuf
 * both empty); reading then resumes by itself, unless the protocol paused it
 * too (rtmd_conn_pause_read). For a peer whose own input makes output it
 * does not read (pongs, replies): it makes no more until it reads. */
void rtmd_conn_pause_output(struct rtmd_conn *c);
static inline bool rtmd_conn_output_paused(const struct rtmd_conn *c)
{
    return (c->flags & RTMD_CONN_OUTPUT_PAUSED) != 0;
}

/* Closes now: queued output is dropped. */
void rtmd_conn_close(struct rtmd_conn *c);
/* Closes once queued output is written, then lingers: the write side is
 * shut down and input discarded until EOF or a short timeout, so the peer
 * reads the last response instead of a reset. A peer that reads nothing of
 * the queued output for 30 s is closed without it. */
void rtmd_conn_close_gracefully(struct rtmd_conn *c);

/* Arms the connection's single timeout on q (disarming any other). */
void rtmd_conn_arm_timeout(struct rtmd_conn *c, struct rtmd_timeout_queue *q);
void rtmd_conn_disarm_timeout(struct rtmd_conn *c);

#endif
