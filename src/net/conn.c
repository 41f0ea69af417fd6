/*
 * conn.c — listeners, accepted connections, TLS, and the write path. See
 * conn.h for the model. TLS runs over a BIO of rtmd's own that keeps no
 * bytes per connection: while a socket read is processed, the SSL reads its
 * ciphertext straight from the loop's read buffer, and the records it writes
 * (handshake flights, encrypted answers, alerts) go to one loop-wide staging
 * buffer that tls_flush() hands to the socket after every SSL call. (Memory
 * BIOs would keep, per connection, buffers as large as the largest flight or
 * answer ever passed through them: BIO_s_mem never shrinks.)
 */
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "core/alloc.h"
#include "core/log.h"
#include "net/http.h"

#define READ_BUF_SIZE (64 * 1024)
#define LINGER_MS     2000
/* A graceful close waits this long for the peer to read some of what is
 * queued (each completed write restarts it): long enough for a big answer
 * over a slow link, bounded for a peer that reads nothing. */
#define DRAIN_MS 30000
/* Connections a listener accepts per loop iteration. Past it the listener
 * is left unpolled until the next iteration's before-sleep hook accepts
 * again (libuv stops watching a listener whose callback did not accept), so
 * a burst of thousands of connections — a reconnect storm, each one a TLS
 * handshake of ~0.3 ms of CPU — is taken a batch per iteration and requests
 * on connections already open are served between the batches. The rest
 * waits in the kernel's accept queue (listen backlog: net.core.somaxconn). */
#define ACCEPT_BATCH 32

/* One loop-wide buffer for socket reads and one for TLS plaintext: reads are
 * processed synchronously inside the read callback, so one of each is
 * enough however many connections there are. */
static char read_buf_[READ_BUF_SIZE];
static char plain_buf_[READ_BUF_SIZE];

struct write_req {
    uv_write_t req;
    struct rtmd_conn *conn;
    size_t len;
    char data[];
};

/* A connection's buffered output may not grow past this (the gateway's
 * output budget cuts slow readers off long before). */
#define WBUF_MAX      (64u * 1024 * 1024)
#define WBUF_FLUSH_AT (32u * 1024)

static void tls_forget(struct rtmd_conn *c);

static void conn_free(struct rtmd_conn *c)
{
    if (c->ssl) {
        tls_forget(c);
        SSL_free(c->ssl);
    }
    rtmd_buf_free(&c->wbuf);
    free(c);
}

void rtmd_conn_unref(struct rtmd_conn *c)
{
    if (--c->refs == 0)
        conn_free(c);
}

static void on_closed(uv_handle_t *h)
{
    struct rtmd_conn *c = RTMD_CONTAINER_OF((uv_tcp_t *)h, struct rtmd_conn, tcp);
    rtmd_conn_unref(c);
}

void rtmd_conn_close(struct rtmd_conn *c)
{
    if (c->flags & RTMD_CONN_CLOSING)
        return;
    c->flags |= RTMD_CONN_CLOSING;
    rtmd_timeout_disarm(&c->timeout);
    rtmd_list_remove(&c->link);
    if (rtmd_list_linked(&c->flush_link))
        rtmd_list_remove(&c->flush_link);
    rtmd_buf_free(&c->wbuf);
    c->server->n_conns--;
    c->server->closed++;
    if (c->flags & RTMD_CONN_BUSY)
        c->server->n_busy--;
    if (c->flags & RTMD_CONN_ADMIN)
        c->server->n_admin--;
    if (c->proto && c->proto->on_close)
        c->proto->on_close(c);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void rtmd_conn_arm_timeout(struct rtmd_conn *c, struct rtmd_timeout_queue *q)
{
    if (c->flags & RTMD_CONN_CLOSING)
        return;
    rtmd_timeout_arm(q, &c->timeout);
}

void rtmd_conn_disarm_timeout(struct rtmd_conn *c)
{
    rtmd_timeout_disarm(&c->timeout);
}

void rtmd_conn_set_proto(struct rtmd_conn *c, const struct rtmd_proto *proto)
{
    c->proto = proto;
}

/* ---- writing ---------------------------------------------------------- */

static void update_reading(struct rtmd_conn *c);

/* A connection paused for its output reads again once all of it is written. */
static void resume_if_written(struct rtmd_conn *c)
{
    if ((c->flags & RTMD_CONN_OUTPUT_PAUSED) && c->out_pending == 0 && c->wbuf.len == 0) {
        c->flags &= ~(uint32_t)RTMD_CONN_OUTPUT_PAUSED;
        update_reading(c);
    }
}

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = RTMD_CONTAINER_OF(req, struct write_req, req);
    struct rtmd_conn *c = w->conn;
    c->out_pending -= w->len;
    free(w);
    if (status < 0 || (c->flags & RTMD_CONN_CLOSING)) {
        if (status < 0 && status != UV_ECANCELED)
            rtmd_log_debug("net", "conn=%llu write failed: %s", (unsigned long long)c->id,
                           uv_strerror(status));
        rtmd_conn_close(c);
        rtmd_conn_unref(c);
        return;
    }
    if (c->flags & RTMD_CONN_CLOSE_AFTER_WRITE) /* the peer reads: wait on */
        rtmd_conn_arm_timeout(c, &c->server->drain_timeouts);
    if (c->out_pending == 0) {
        if (c->flags & RTMD_CONN_CLOSE_AFTER_WRITE) {
            c->flags &= ~(uint32_t)RTMD_CONN_CLOSE_AFTER_WRITE;
            rtmd_conn_close_gracefully(c);
        } else {
            resume_if_written(c);
            if (c->proto && c->proto->on_drain)
                c->proto->on_drain(c);
        }
    }
    rtmd_conn_unref(c);
}

/* A write failed: no more I/O; the connection is closed in the prepare phase
 * (see rtmd_conn_write()). */
static void fail_later(struct rtmd_conn *c)
{
    if (c->flags & (RTMD_CONN_CLOSING | RTMD_CONN_FAILED))
        return;
    c->flags |= RTMD_CONN_FAILED;
    rtmd_buf_free(&c->wbuf);
    if (c->ssl)
        tls_forget(c); /* records staged for it are not sent */
    if (rtmd_list_linked(&c->flush_link))
        rtmd_list_remove(&c->flush_link);
    rtmd_list_insert_tail(&c->server->doomed, &c->flush_link);
    update_reading(c);
}

/* Writes bytes to the socket: directly when nothing is queued, the rest
 * copied into one queued write. */
static int raw_writev(struct rtmd_conn *c, const uv_buf_t *bufs, size_t nbufs)
{
    size_t total = 0, done = 0;
    for (size_t i = 0; i < nbufs; i++)
        total += bufs[i].len;
    if (total == 0)
        return 0;
    if (c->out_pending == 0) {
        int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned)nbufs);
        if (r >= 0)
            done = (size_t)r;
        else if (r != UV_EAGAIN) {
            fail_later(c);
            return r;
        }
        if (done == total)
            return 0;
    }
    struct write_req *w = rtmd_try_malloc(sizeof(*w) + (total - done));
    if (!w) {
        fail_later(c);
        return -ENOMEM;
    }
    size_t off = 0, skip = done;
    for (size_t i = 0; i < nbufs; i++) {
        size_t len = bufs[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(w->data + off, bufs[i].base + skip, len - skip);
        off += len - skip;
        skip = 0;
    }
    w->conn = c;
    w->len = off;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)off);
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r < 0) {
        free(w);
        fail_later(c);
        return r;
    }
    c->out_pending += off;
    rtmd_conn_ref(c);
    return 0;
}

/* ---- the TLS BIO ----------------------------------------------------------- */

/* What the SSL of tls_in_conn_ may read: the rest of the socket read being
 * processed (tls_read()); any other SSL reads nothing. */
static struct rtmd_conn *tls_in_conn_;
static const char *tls_in_;
static size_t tls_in_len_;

/* Records written by the SSL of tls_out_conn_ and not yet handed to its
 * socket. Every SSL call is followed by tls_flush() of its connection, so
 * only one connection's records are ever here; a write from another
 * connection's SSL would first flush these (it does not happen). A flight
 * that does not fit goes to the socket in pieces. */
#define TLS_STAGE_SIZE (64 * 1024)
static struct rtmd_conn *tls_out_conn_;
static size_t tls_out_len_;
static char tls_out_[TLS_STAGE_SIZE];
static BIO_METHOD *tls_bio_method_;

/* Moves whatever c's SSL wrote (records) to the socket. */
static int tls_flush(struct rtmd_conn *c)
{
    if (tls_out_conn_ != c || tls_out_len_ == 0)
        return 0;
    uv_buf_t b = uv_buf_init(tls_out_, (unsigned)tls_out_len_);
    tls_out_conn_ = NULL;
    tls_out_len_ = 0;
    return raw_writev(c, &b, 1);
}

/* c's SSL is about to be freed: nothing of it stays staged. */
static void tls_forget(struct rtmd_conn *c)
{
    if (tls_out_conn_ == c) {
        tls_out_conn_ = NULL;
        tls_out_len_ = 0;
    }
    if (tls_in_conn_ == c) {
        tls_in_conn_ = NULL;
        tls_in_len_ = 0;
    }
}

static int tls_bio_write(BIO *b, const char *p, int n)
{
    struct rtmd_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (n <= 0)
        return 0;
    if (tls_out_conn_ && tls_out_conn_ != c)
        tls_flush(tls_out_conn_);
    if (tls_out_len_ + (size_t)n > sizeof(tls_out_))
        tls_flush(c);
    if ((size_t)n > sizeof(tls_out_)) {
        uv_buf_t ub = uv_buf_init((char *)p, (unsigned)n);
        raw_writev(c, &ub, 1); /* a failure marks c failed */
        return n;
    }
    memcpy(tls_out_ + tls_out_len_, p, (size_t)n);
    tls_out_len_ += (size_t)n;
    tls_out_conn_ = c;
    return n;
}

static int tls_bio_read(BIO *b, char *p, int n)
{
    BIO_clear_retry_flags(b);
    if (BIO_get_data(b) != tls_in_conn_ || tls_in_len_ == 0 || n <= 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t k = (size_t)n < tls_in_len_ ? (size_t)n : tls_in_len_;
    memcpy(p, tls_in_, k);
    tls_in_ += k;
    tls_in_len_ -= k;
    return (int)k;
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* Records are handed on as they come: a flush has nothing to do. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int tls_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO *tls_bio_new(struct rtmd_conn *c)
{
    if (!tls_bio_method_) {
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "rtmd");
        if (!m || !BIO_meth_set_write(m, tls_bio_write) || !BIO_meth_set_read(m, tls_bio_read) ||
            !BIO_meth_set_ctrl(m, tls_bio_ctrl) || !BIO_meth_set_create(m, tls_bio_create)) {
            BIO_meth_free(m);
            return NULL;
        }
        tls_bio_method_ = m; /* one for the process, never freed */
    }
    BIO *b = BIO_new(tls_bio_method_);
    if (b)
        BIO_set_data(b, c);
    return b;
}

static void flush_one(struct rtmd_conn *c);

int rtmd_conn_write_buffered(struct rtmd_conn *c, const void *p, size_t n)
{
    if (rtmd_conn_ending(c))
        return RTMD_ECLOSED;
    int r = rtmd_buf_append(&c->wbuf, p, n);
    if (r < 0) {
        fail_later(c);
        return r;
    }
    if (!rtmd_list_linked(&c->flush_link))
        rtmd_list_insert_tail(&c->server->flush, &c->flush_link);
    /* Enough for one write: send it now, so what counts as unsent is what
     * the kernel would not take, not what this iteration produced. */
    if (c->wbuf.len >= WBUF_FLUSH_AT)
        flush_one(c);
    return 0;
}

static int direct_writev(struct rtmd_conn *c, const uv_buf_t *bufs, size_t nbufs);

/* Writes what a connection buffered during this iteration. */
static void flush_one(struct rtmd_conn *c)
{
    rtmd_list_remove(&c->flush_link);
    struct rtmd_buf b = c->wbuf;
    rtmd_buf_init(&c->wbuf, WBUF_MAX);
    uv_buf_t ub = uv_buf_init(b.data, (unsigned)b.len);
    direct_writev(c, &ub, 1);
    rtmd_buf_free(&b);
    resume_if_written(c);
}

static void on_connection(uv_stream_t *ls, int status);

/* A new iteration: each listener may accept ACCEPT_BATCH again; one that
 * stopped at the batch accepts the connection libuv holds for it (which
 * also makes libuv watch it again). */
static void accept_again(struct rtmd_server *s)
{
    for (size_t i = 0; i < s->n_listeners; i++) {
        struct rtmd_listener *l = &s->listeners[i];
        l->accepted_pass = 0;
        if (l->held && !s->stopping) {
            l->held = false;
            on_connection((uv_stream_t *)&l->tcp, 0);
        }
    }
}

static void on_flush(struct rtmd_loop_hook *h)
{
    struct rtmd_server *s = RTMD_CONTAINER_OF(h, struct rtmd_server, flush_hook);
    struct rtmd_list *n;
    /* First: what accepting writes (a 503 to a connection over the limit)
     * goes out in this pass. */
    accept_again(s);
    /* Closing a doomed connection ends its session, which may push to others
     * (member_left): flush again, a few rounds at most. */
    for (int round = 0; round < 8; round++) {
        while ((n = rtmd_list_first(&s->flush)))
            flush_one(RTMD_CONTAINER_OF(n, struct rtmd_conn, flush_link));
        if (rtmd_list_empty(&s->doomed))
            break;
        while ((n = rtmd_list_first(&s->doomed)))
            rtmd_conn_close(RTMD_CONTAINER_OF(n, struct rtmd_conn, flush_link));
    }
}

int rtmd_conn_writev(struct rtmd_conn *c, const uv_buf_t *bufs, size_t nbufs)
{
    if (rtmd_conn_ending(c))
        return RTMD_ECLOSED;
    if (c->wbuf.len > 0 || c->out_pending > 0) {
        /* Keep order behind what is buffered; and while the kernel does not
         * take what is queued, join the rest into one later write instead
         * of queueing a write request (~200 bytes) per piece. */
        for (size_t i = 0; i < nbufs; i++) {
            int r = rtmd_conn_write_buffered(c, bufs[i].base, bufs[i].len);
            if (r < 0)
                return r;
        }
        return 0;
    }
    return direct_writev(c, bufs, nbufs);
}

/* TLS: small pieces are joined first, so an answer is one record. */
#define TLS_JOIN_MAX (16 * 1024)

static int direct_writev(struct rtmd_conn *c, const uv_buf_t *bufs, size_t nbufs)
{
    if (c->flags & (RTMD_CONN_CLOSING | RTMD_CONN_LINGER | RTMD_CONN_FAILED))
        return RTMD_ECLOSED;
    if (!c->ssl)
        return raw_writev(c, bufs, nbufs);
    static char join[TLS_JOIN_MAX];
    size_t total = 0;
    for (size_t i = 0; i < nbufs; i++)
        total += bufs[i].len;
    if (nbufs > 1 && total > TLS_JOIN_MAX) {
        /* One SSL_write (OpenSSL cuts full records) rather than a record per
         * piece: the small pieces around a large body would each cost one. */
        char *all = rtmd_try_malloc(total);
        if (!all) {
            fail_later(c);
            return -ENOMEM;
        }
        size_t off = 0;
        for (size_t i = 0; i < nbufs; i++) {
            memcpy(all + off, bufs[i].base, bufs[i].len);
            off += bufs[i].len;
        }
        int r = SSL_write(c->ssl, all, (int)off);
        free(all);
        if (r <= 0) {
            fail_later(c);
            return RTMD_ECLOSED;
        }
        return tls_flush(c);
    }
    if (nbufs > 1 && total <= TLS_JOIN_MAX) {
        size_t off = 0;
        for (size_t i = 0; i < nbufs; i++) {
            memcpy(join + off, bufs[i].base, bufs[i].len);
            off += bufs[i].len;
        }
        if (SSL_write(c->ssl, join, (int)off) <= 0) {
            fail_later(c);
            return RTMD_ECLOSED;
        }
        return tls_flush(c);
    }
    for (size_t i = 0; i < nbufs; i++) {
        if (bufs[i].len == 0)
            continue;
        int r = SSL_write(c->ssl, bufs[i].base, (int)bufs[i].len);
        if (r <= 0) {
            fail_later(c);
            return RTMD_ECLOSED;
        }
    }
    return tls_flush(c);
}

int rtmd_conn_write(struct rtmd_conn *c, const void *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    return rtmd_conn_writev(c, &b, 1);
}

/* ---- reading ---------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf_, sizeof(read_buf_));
}

static void deliver(struct rtmd_conn *c, const char *p, size_t n)
{
    if (c->flags & (RTMD_CONN_LINGER | RTMD_CONN_CLOSE_AFTER_WRITE))
        return; /* discard */
    c->proto->on_data(c, p, n);
}

/* The SSL reads p[0, n) through its BIO; what it does not read (the
 * connection closed meanwhile) is dropped. */
/* A handshake leaves freed OpenSSL memory behind between allocations that
 * live on: glibc keeps those pages (several KB of RSS per connection at
 * 19,000 wss connections) until malloc_trim() gives whole free pages back.
 * Run at most once a second, while handshakes complete. */
#define TRIM_DELAY_MS 1000

static void on_trim(uv_timer_t *timer)
{
    struct rtmd_server *s = RTMD_CONTAINER_OF(timer, struct rtmd_server, trim_timer);
#ifdef __GLIBC__
    uint64_t t0 = uv_hrtime();
    malloc_trim(0);
    rtmd_log_debug("net", "malloc_trim after %u TLS handshakes: %.1f ms", (unsigned)s->trim_pending,
                   (double)(uv_hrtime() - t0) / 1e6);
#endif
    s->trim_pending = 0;
}

static void handshake_done(struct rtmd_conn *c)
{
    struct rtmd_server *s = c->server;
    c->flags |= RTMD_CONN_TLS_DONE;
    /* The handshake had tls_handshake_timeout_ms from accept (as nginx's
     * ssl_handshake_timeout: in a reconnect storm a client can wait seconds in
     * the queue of handshakes); the request head's http_header_timeout_ms
     * counts from here. Until now the only timeout a connection can have
     * armed is the handshake's, or a busy connection's (over max_connections),
     * which gets the request head's again: it is answered 503 at once. */
    if (rtmd_list_linked(&c->timeout.link))
        rtmd_conn_arm_timeout(c, &s->request_timeouts);
    s->trim_pending++;
    if (!uv_is_active((uv_handle_t *)&s->trim_timer))
        uv_timer_start(&s->trim_timer, on_trim, TRIM_DELAY_MS, 0);
}

static void tls_read(struct rtmd_conn *c, const char *p, size_t n)
{
    tls_in_conn_ = c;
    tls_in_ = p;
    tls_in_len_ = n;
    while (!(c->flags & RTMD_CONN_CLOSING)) {
        int r = SSL_read(c->ssl, plain_buf_, sizeof(plain_buf_));
        /* Records the read produced (handshake flights, tickets, alerts)
         * go out before the protocol sees the data and writes others. */
        tls_flush(c);
        if (r > 0) {
            if (!(c->flags & RTMD_CONN_TLS_DONE))
                handshake_done(c);
            deliver(c, plain_buf_, (size_t)r);
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
            if (SSL_is_init_finished(c->ssl) && !(c->flags & RTMD_CONN_TLS_DONE))
                handshake_done(c);
            break;
        }
        if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify */
            if (c->proto->on_eof && !(c->flags & RTMD_CONN_LINGER))
                c->proto->on_eof(c);
            else
                rtmd_conn_close(c);
            break;
        }
        unsigned long err = ERR_peek_error();
        rtmd_log_debug("tls", "conn=%llu TLS error: %s", (unsigned long long)c->id,
                       err ? ERR_reason_error_string(err) : "syscall");
        ERR_clear_error();
        rtmd_conn_close(c); /* after the alert, if any */
        break;
    }
    if (tls_in_conn_ == c) {
        tls_in_conn_ = NULL;
        tls_in_len_ = 0;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct rtmd_conn *c = RTMD_CONTAINER_OF((uv_tcp_t *)s, struct rtmd_conn, tcp);
    if (c->flags & RTMD_CONN_CLOSING)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && !(c->flags & RTMD_CONN_LINGER) && c->proto->on_eof)
            c->proto->on_eof(c);
        else
            rtmd_conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    rtmd_conn_ref(c);
    c->flags |= RTMD_CONN_IN_READ;
    if (c->flags & RTMD_CONN_LINGER) {
        /* Discarding input until EOF; the linger timeout bounds how long. */
    } else if (c->ssl) {
        tls_read(c, buf->base, (size_t)nread);
    } else {
        deliver(c, buf->base, (size_t)nread);
    }
    c->flags &= ~(uint32_t)RTMD_CONN_IN_READ;
    rtmd_conn_unref(c);
}

static void update_reading(struct rtmd_conn *c)
{
    bool want = !(c->flags & (RTMD_CONN_CLOSING | RTMD_CONN_FAILED)) &&
                (!(c->flags & (RTMD_CONN_READ_PAUSED | RTMD_CONN_OUTPUT_PAUSED)) ||
                 (c->flags & RTMD_CONN_LINGER));
    if (want && !(c->flags & RTMD_CONN_READING)) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->flags |= RTMD_CONN_READING;
    } else if (!want && (c->flags & RTMD_CONN_READING)) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->flags &= ~(uint32_t)RTMD_CONN_READING;
    }
}

void rtmd_conn_pause_read(struct rtmd_conn *c)
{
    c->flags |= RTMD_CONN_READ_PAUSED;
    update_reading(c);
}

void rtmd_conn_resume_read(struct rtmd_conn *c)
{
    c->flags &= ~(uint32_t)RTMD_CONN_READ_PAUSED;
    update_reading(c);
}

void rtmd_conn_pause_output(struct rtmd_conn *c)
{
    if (rtmd_conn_unsent(c) == 0)
        return;
    c->flags |= RTMD_CONN_OUTPUT_PAUSED;
    update_reading(c);
}

/* ---- graceful close ----------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct rtmd_conn *c = req->data;
    free(req);
    if (status < 0 || (c->flags & RTMD_CONN_CLOSING)) {
        rtmd_conn_close(c);
    } else {
        rtmd_conn_arm_timeout(c, &c->server->linger_timeouts);
        update_reading(c);
    }
    rtmd_conn_unref(c);
}

void rtmd_conn_close_gracefully(struct rtmd_conn *c)
{
    if (c->flags & (RTMD_CONN_CLOSING | RTMD_CONN_LINGER))
        return;
    if (c->wbuf.len > 0)
        flush_one(c);
    if (c->flags & RTMD_CONN_CLOSING)
        return;
    if (c->out_pending > 0) {
        c->flags |= RTMD_CONN_CLOSE_AFTER_WRITE;
        rtmd_conn_arm_timeout(c, &c->server->drain_timeouts);
        return;
    }
    if (c->ssl && (c->flags & RTMD_CONN_TLS_DONE) && !(c->flags & RTMD_CONN_TLS_SHUT)) {
        /* close_notify first; the TCP shutdown follows once it is written. */
        c->flags |= RTMD_CONN_TLS_SHUT;
        SSL_shutdown(c->ssl);
        tls_flush(c);
        if (c->flags & RTMD_CONN_CLOSING)
            return;
        if (c->out_pending > 0) {
            c->flags |= RTMD_CONN_CLOSE_AFTER_WRITE;
            rtmd_conn_arm_timeout(c, &c->server->drain_timeouts);
            return;
        }
    }
    c->flags |= RTMD_CONN_LINGER;
    c->flags &= ~(uint32_t)RTMD_CONN_READ_PAUSED;
    uv_shutdown_t *req = rtmd_malloc(sizeof(*req));
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        free(req);
        rtmd_conn_close(c);
        return;
    }
    rtmd_conn_ref(c);
}

/* ---- timeouts ------------------------------------------------------------ */

static void on_proto_timeout(struct rtmd_timeout *t)
{
    struct rtmd_conn *c = RTMD_CONTAINER_OF(t, struct rtmd_conn, timeout);
    if (c->proto && c->proto->on_timeout)
        c->proto->on_timeout(c);
    else
        rtmd_conn_close(c);
}

/* Lingering, or waiting for output to drain: close now. */
static void on_linger_timeout(struct rtmd_timeout *t)
{
    rtmd_conn_close(RTMD_CONTAINER_OF(t, struct rtmd_conn, timeout));
}

/* ---- accepting ----------------------------------------------------------- */

/* Connections over max_connections that are answered 503 at one time; past
 * them, a connection over the limit is closed at once, unanswered. Each
 * costs a connection (with TLS, a handshake) for at most
 * http_header_timeout_ms and the linger after the answer. */
#define BUSY_MAX           32
#define FULL_LOG_PERIOD_MS 10000

static int tls_start(struct rtmd_conn *c)
{
    if (!c->server->ssl_ctx)
        return -EINVAL;
    c->ssl = SSL_new(c->server->ssl_ctx);
    BIO *bio = c->ssl ? tls_bio_new(c) : NULL;
    if (!bio)
        return -ENOMEM;
    SSL_set_bio(c->ssl, bio, bio); /* one BIO both ways: one reference */
    SSL_set_accept_state(c->ssl);
    return 0;
}

/* Whether a new connection is over max_connections (busy ones do not count:
 * they are on their way out). */
static bool over_limit(struct rtmd_server *s)
{
    if (s->n_conns - s->n_busy - s->n_admin <= s->cfg->limits.max_connections)
        return false;
    uint64_t now = rtmd_now_ms();
    if (s->full_logged_ms == 0 || now - s->full_logged_ms >= FULL_LOG_PERIOD_MS) {
        s->full_logged_ms = now;
        rtmd_log_warn("net",
                      "max_connections (%u) reached: new connections are answered 503 (%llu so "
                      "far)",
                      (unsigned)s->cfg->limits.max_connections,
                      (unsigned long long)s->rejected_full + 1);
    }
    return true;
}

/* Appends v in decimal at p; returns the end. */
static char *put_decimal(char *p, unsigned v)
{
    char d[10];
    size_t n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = d[--n];
    return p;
}

const char *rtmd_conn_remote(const struct rtmd_conn *c, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "";
    if (c->peer.sa.sa_family == AF_INET && outlen >= sizeof("255.255.255.255:65535")) {
        /* By hand: this runs for every access-log line. */
        const unsigned char *a = (const unsigned char *)&c->peer.in.sin_addr;
        char *p = out;
        for (int i = 0; i < 4; i++) {
            p = put_decimal(p, a[i]);
            *p++ = i < 3 ? '.' : ':';
        }
        p = put_decimal(p, ntohs(c->peer.in.sin_port));
        *p = '\0';
    } else if (c->peer.sa.sa_family == AF_INET6 &&
               uv_ip6_name(&c->peer.in6, host, sizeof(host)) == 0)
        snprintf(out, outlen, "[%s]:%u", host, ntohs(c->peer.in6.sin6_port));
    else
        snprintf(out, outlen, "-");
    return out;
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct rtmd_listener *l = RTMD_CONTAINER_OF((uv_tcp_t *)ls, struct rtmd_listener, tcp);
    struct rtmd_server *s = l->server;
    if (status < 0) {
        rtmd_log_warn("net", "accept on %s failed: %s", l->bound, uv_strerror(status));
        return;
    }
    if (!l->admin && l->accepted_pass >= ACCEPT_BATCH) {
        l->held = true; /* not accepted: accept_again() takes it next iteration */
        return;
    }
    l->accepted_pass++;
    struct rtmd_conn *c = rtmd_calloc(1, sizeof(*c));
    uv_tcp_init(rtmd_loop(), &c->tcp);
    c->refs = 1;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    c->server = s;
    c->listener = l;
    c->id = ++s->next_conn_id;
    int peer_len = sizeof(c->peer);
    if (uv_tcp_getpeername(&c->tcp, &c->peer.sa, &peer_len) < 0)
        c->peer.sa.sa_family = AF_UNSPEC;
    rtmd_timeout_init(&c->timeout);
    rtmd_list_init(&c->flush_link);
    rtmd_buf_init(&c->wbuf, WBUF_MAX);
    rtmd_list_insert_tail(&s->conns, &c->link);
    s->n_conns++;
    s->accepted++;
    if (l->admin) {
        if (s->n_admin >= RTMD_ADMIN_CONNS_MAX) {
            c->proto = NULL;
            rtmd_conn_close(c);
            return;
        }
        c->flags |= RTMD_CONN_ADMIN;
        s->n_admin++;
    }
    bool busy = !l->admin && (s->stopping || over_limit(s));
    if (busy) {
        s->rejected_full++;
        if (s->stopping || s->n_busy >= BUSY_MAX) {
            c->proto = NULL;
            rtmd_conn_close(c);
            return;
        }
        c->flags |= RTMD_CONN_BUSY;
        s->n_busy++;
        s->rejected_answered++;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (l->tls && tls_start(c) < 0) {
        rtmd_conn_close(c);
        return;
    }
    if (busy)
        rtmd_http_conn_busy(c);
    else
        rtmd_http_conn_start(c);
    update_reading(c);
}

static int bind_listener(struct rtmd_listener *l, char *err, size_t errlen)
{
    const struct rtmd_listener_config *lc = l->cfg;
    struct sockaddr_storage ss;
    int r;
    if (strchr(lc->host, ':'))
        r = uv_ip6_addr(lc->host, lc->port, (struct sockaddr_in6 *)&ss);
    else
        r = uv_ip4_addr(lc->host, lc->port, (struct sockaddr_in *)&ss);
    /* The socket is made at once (init_ex) so that SO_REUSEPORT can be set
     * before the bind: libuv 1.44 has no flag for it. */
    if (r == 0)
        r = uv_tcp_init_ex(rtmd_loop(), &l->tcp, ss.ss_family);
    if (r < 0) {
        snprintf(err, errlen, "bad listen address %s", lc->host);
        return r;
    }
    /* Not the admin listener: each node's own metrics, never spread. */
    if (l->server->cfg->reuse_port && !l->admin) {
        uv_os_fd_t fd;
        int on = 1;
        r = uv_fileno((uv_handle_t *)&l->tcp, &fd);
        if (r == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0)
            r = -errno;
    }
    if (r == 0)
        r = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
    if (r == 0)
        /* -1: as deep as net.core.somaxconn allows (the kernel caps it there), so a
         * reconnect storm is bounded by the sysctl, not by rtmd. */
        r = uv_listen((uv_stream_t *)&l->tcp, -1, on_connection);
    if (r < 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", lc->host, (unsigned)lc->port,
                 uv_strerror(r));
        uv_close((uv_handle_t *)&l->tcp, NULL);
        return r;
    }
    int len = sizeof(ss);
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
    char host[64];
    unsigned port;
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        snprintf(l->bound, sizeof(l->bound), "[%s]:%u", host, port);
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        snprintf(l->bound, sizeof(l->bound), "%s:%u", host, port);
    }
    return 0;
}

int rtmd_server_start(struct rtmd_server *s, const struct rtmd_config *cfg, SSL_CTX *ssl_ctx,
                      rtmd_http_handler on_request, void *request_ctx, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->ssl_ctx = ssl_ctx;
    s->on_request = on_request;
    s->request_ctx = request_ctx;
    rtmd_list_init(&s->conns);
    rtmd_list_init(&s->flush);
    rtmd_list_init(&s->doomed);
    rtmd_loop_on_prepare(&s->flush_hook, on_flush);
    uv_timer_init(rtmd_loop(), &s->trim_timer);
    uv_unref((uv_handle_t *)&s->trim_timer);
    rtmd_timeout_queue_init(&s->request_timeouts, cfg->limits.http_header_timeout_ms,
                            on_proto_timeout);
    rtmd_timeout_queue_init(&s->handshake_timeouts, cfg->limits.tls_handshake_timeout_ms,
                            on_linger_timeout);
    rtmd_timeout_queue_init(&s->idle_timeouts, (uint64_t)cfg->limits.http_idle_timeout_s * 1000,
                            on_proto_timeout);
    rtmd_timeout_queue_init(&s->linger_timeouts, LINGER_MS, on_linger_timeout);
    rtmd_timeout_queue_init(&s->drain_timeouts, DRAIN_MS, on_linger_timeout);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        struct rtmd_listener *l = &s->listeners[i];
        l->server = s;
        l->cfg = &cfg->listeners[i];
        l->region = cfg->listeners[i].region_index;
        l->tls = cfg->listeners[i].tls;
        int r = bind_listener(l, err, errlen);
        if (r < 0) {
            for (size_t j = 0; j < i; j++)
                uv_close((uv_handle_t *)&s->listeners[j].tcp, NULL);
            s->n_listeners = 0;
            return r;
        }
        s->n_listeners++;
    }
    if (cfg->admin_enabled) {
        struct rtmd_listener *l = &s->admin;
        l->server = s;
        l->cfg = &cfg->admin;
        l->admin = true;
        int r = bind_listener(l, err, errlen);
        if (r < 0) {
            for (size_t j = 0; j < s->n_listeners; j++)
                uv_close((uv_handle_t *)&s->listeners[j].tcp, NULL);
            s->n_listeners = 0;
            return r;
        }
        s->has_admin = true;
    }
    return 0;
}

void rtmd_server_set_tls(struct rtmd_server *s, SSL_CTX *ctx)
{
    SSL_CTX *old = s->ssl_ctx;
    s->ssl_ctx = ctx;
    if (old)
        SSL_CTX_free(old); /* our reference; each SSL made from it holds its own */
}

void rtmd_server_stop_listening(struct rtmd_server *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    for (size_t i = 0; i < s->n_listeners; i++)
        uv_close((uv_handle_t *)&s->listeners[i].tcp, NULL);
}

void rtmd_server_go_away(struct rtmd_server *s)
{
    struct rtmd_list *n, *tmp;
    rtmd_list_foreach_safe(n, tmp, &s->conns)
    {
        struct rtmd_conn *c = RTMD_CONTAINER_OF(n, struct rtmd_conn, link);
        if (!rtmd_conn_ending(c) && c->proto && c->proto->on_going_away)
            c->proto->on_going_away(c);
    }
}

void rtmd_server_close_all(struct rtmd_server *s)
{
    if (s->has_admin) {
        s->has_admin = false;
        uv_close((uv_handle_t *)&s->admin.tcp, NULL);
    }
    rtmd_loop_hook_remove(&s->flush_hook);
    uv_close((uv_handle_t *)&s->trim_timer, NULL);
    struct rtmd_list *n, *tmp;
    rtmd_list_foreach_safe(n, tmp, &s->conns)
    {
        rtmd_conn_close(RTMD_CONTAINER_OF(n, struct rtmd_conn, link));
    }
    rtmd_timeout_queue_close(&s->request_timeouts);
    rtmd_timeout_queue_close(&s->handshake_timeouts);
    rtmd_timeout_queue_close(&s->idle_timeouts);
    rtmd_timeout_queue_close(&s->linger_timeouts);
    rtmd_timeout_queue_close(&s->drain_timeouts);
}
