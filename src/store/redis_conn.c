/*
 * redis_conn.c — one Redis connection on the loop (see redis_conn.h for the
 * model and the rules a caller sees).
 *
 * Pieces:
 *   - the FIFO: a ring of commands in the order they were sent, indexed by a
 *     sequence number (seq & mask), that grows by doubling up to
 *     max_pending; a reply completes the oldest (the head);
 *   - deadlines: a command issued with a deadline no earlier than every
 *     waiting command's before it (the usual case: now + a fixed timeout)
 *     joins the "chain", whose waiting commands have non-decreasing
 *     deadlines in FIFO order, so the earliest is the first of them still
 *     waiting (found by a cursor that only moves forward: O(1) amortized);
 *     any other goes into a binary min-heap by deadline (each command knows
 *     its index in it, so an answered one leaves in O(log n)). One uv timer
 *     is armed for the earliest of the two and of the head's deadline +
 *     stuck_grace_ms;
 *   - output: commands are appended to `out`; a deferred call writes it
 *     (uv_try_write, the rest with one uv_write from a second buffer that
 *     the two swap, so steady traffic allocates nothing);
 *   - input: each read is fed to hiredis's reader, built with our own reply
 *     object functions that count every byte they allocate against
 *     max_reply (hiredis's defaults would calloc an array of any length a
 *     server announces); lines and partial replies are bounded after every
 *     feed;
 *   - a link: one TCP connection attempt (its handle, requests and in-flight
 *     buffer), freed in its uv_close callback, so a dropped attempt never
 *     touches the next one;
 *   - the epoch: +1 at every drop; a loop that runs callbacks (replies,
 *     timeouts) stops as soon as the epoch changed or close() was called.
 *
 * Lifetime: refs counts the owner (until close), the two timers, each open
 * link and each name resolution in flight; the last release, always in a
 * libuv callback after close(), completes what is left with RTMD_ECLOSED,
 * frees everything and calls done.
 */
#include "store/redis_conn.h"

#include <hiredis/read.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"

#define READ_BUF_SIZE (64 * 1024)
/* A status, error or integer line, or an aggregate's length, longer than
 * this is not Redis: drop before hiredis rescans it at every read. */
#define LINE_MAX_BYTES (64 * 1024)
/* A bulk string's length line: "-1" or at most 20 digits, then CRLF. */
#define BULK_HEAD_MAX 24
/* An empty output buffer larger than this is freed, not kept for reuse. */
#define SHRINK_AT (1024 * 1024)
/* A connection up at least this long starts the backoff afresh when it
 * drops; one that drops sooner keeps doubling it (a server that accepts and
 * closes at once is not hammered). */
#define UP_STABLE_MS 1000
#define NO_DEADLINE  UINT64_MAX
#define NOT_IN_HEAP  UINT32_MAX
#define LIMIT_1G     ((size_t)1 << 30)

enum state {
    ST_WAITING,    /* down, the backoff timer armed */
    ST_RESOLVING,  /* uv_getaddrinfo in flight */
    ST_CONNECTING, /* uv_tcp_connect in flight */
    ST_HANDSHAKE,  /* connected, AUTH or PING sent */
    ST_UP,
    ST_CLOSED,
};

/* What a command's replies look like: one ordinary reply, or one
 * confirmation per channel of a pub/sub command. */
enum kind {
    K_PLAIN,
    K_SUBSCRIBE,
    K_SSUBSCRIBE,
    K_PSUBSCRIBE,
    K_UNSUBSCRIBE,
    K_SUNSUBSCRIBE,
    K_PUNSUBSCRIBE,
    K_MESSAGE, /* a message push (classification of replies only) */
};

static const char *const kind_names[] = {
    [K_SUBSCRIBE] = "subscribe",       [K_SSUBSCRIBE] = "ssubscribe",
    [K_PSUBSCRIBE] = "psubscribe",     [K_UNSUBSCRIBE] = "unsubscribe",
    [K_SUNSUBSCRIBE] = "sunsubscribe", [K_PUNSUBSCRIBE] = "punsubscribe",
};

struct cmd {
    rtmd_redis_cb cb; /* NULL once completed: a placeholder for a reply still owed */
    void *arg;
    uint64_t deadline;
    uint32_t heap_index; /* in the deadline heap, or NOT_IN_HEAP */
    bool in_chain;       /* its deadline is in FIFO order (see above) */
    uint32_t expect;     /* replies still owed (confirmations of a pub/sub command) */
    enum kind kind;
    /* Pub/sub: the channels named, in order, each as a 4-byte length and
     * its bytes; the confirmations must name them in this order. */
    char *channels;
    size_t channels_off; /* the next expected */
};

struct link {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    struct rtmd_redis_conn *c;
    struct rtmd_buf inflight; /* handed to uv_write from inflight_off on */
    size_t inflight_off;
    bool writing;
    bool connected;
};

struct resolve {
    uv_getaddrinfo_t req;
    struct rtmd_redis_conn *c;
    uint64_t attempt;
};

struct rtmd_redis_conn {
    uv_loop_t *loop;
    struct rtmd_redis_endpoint ep;
    struct rtmd_redis_conn_options opt;
    char name[RTMD_REDIS_HOST_MAX + 96]; /* "host:port (label)" for logs */
    enum state state;
    bool closing;
    uint32_t refs;
    uint64_t epoch;
    uint64_t attempt;
    uint64_t up_since;
    uint32_t backoff_ms; /* the ceiling of the next reconnect delay */
    uint32_t rng;
    uv_timer_t retry; /* backoff, connect timeout, idle ping */
    uv_timer_t deadline_timer;
    uint64_t deadline_due; /* what deadline_timer is armed for, 0 if not */
    struct link *link;
    struct resolve *resolve;
    struct rtmd_deferred flush;
    struct rtmd_buf out; /* commands not yet handed to the socket */
    /* The FIFO: commands head..tail-1; those from unsent on have their bytes
     * still in out (never handed to the kernel). */
    struct cmd *ring;
    uint32_t ring_cap; /* a power of two */
    uint64_t head, tail, unsent;
    uint64_t *heap;
    uint32_t heap_n;
    uint64_t chain_next; /* no chain command before it is still waiting */
    uint64_t chain_last; /* the latest deadline in the chain, 0 when none waits */
    redisReader *reader;
    size_t building;               /* bytes allocated for the reply being parsed */
    bool over_reply;               /* ...and they would have passed max_reply */
    int64_t sub_global, sub_shard; /* subscriptions, as the server last counted them */
    uint64_t bytes_at_tick;        /* idle ping: bytes_in at the last tick */
    char last_error[200];          /* the last failure logged; a repeat is not logged */
    void (*done)(void *arg);
    void *done_arg;
    struct rtmd_redis_conn_stats stats;
};

static char read_buf_[READ_BUF_SIZE];

static void drop(struct rtmd_redis_conn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void flush(struct rtmd_redis_conn *c);
static void deadline_rearm(struct rtmd_redis_conn *c);
static void start_attempt(struct rtmd_redis_conn *c);

static inline uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static inline struct cmd *cmd_at(const struct rtmd_redis_conn *c, uint64_t seq)
{
    return &c->ring[seq & (c->ring_cap - 1)];
}

/* ---- logs ------------------------------------------------------------------ */

/* Logs a failure, unless it is the one logged last (a server that stays
 * down costs one line, not one per attempt). */
static void report(struct rtmd_redis_conn *c, enum rtmd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(struct rtmd_redis_conn *c, enum rtmd_log_level level, const char *fmt, ...)
{
    char msg[sizeof(c->last_error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (strcmp(msg, c->last_error) == 0) {
        rtmd_log_debug("redis", "%s: %s", c->name, msg);
        return;
    }
    snprintf(c->last_error, sizeof(c->last_error), "%s", msg);
    rtmd_log(level, "redis", "%s: %s", c->name, msg);
}

/* ---- the deadline heap ------------------------------------------------------- */

static bool heap_before(const struct rtmd_redis_conn *c, uint64_t a, uint64_t b)
{
    uint64_t da = cmd_at(c, a)->deadline, db = cmd_at(c, b)->deadline;
    return da < db || (da == db && a < b);
}

static void heap_set(struct rtmd_redis_conn *c, uint32_t i, uint64_t seq)
{
    c->heap[i] = seq;
    cmd_at(c, seq)->heap_index = i;
}

static void heap_up(struct rtmd_redis_conn *c, uint32_t i)
{
    uint64_t seq = c->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!heap_before(c, seq, c->heap[parent]))
            break;
        heap_set(c, i, c->heap[parent]);
        i = parent;
    }
    heap_set(c, i, seq);
}

static void heap_down(struct rtmd_redis_conn *c, uint32_t i)
{
    uint64_t seq = c->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1;
        if (l >= c->heap_n)
            break;
        uint32_t m = l;
        if (l + 1 < c->heap_n && heap_before(c, c->heap[l + 1], c->heap[l]))
            m = l + 1;
        if (!heap_before(c, c->heap[m], seq))
            break;
        heap_set(c, i, c->heap[m]);
        i = m;
    }
    heap_set(c, i, seq);
}

static void heap_push(struct rtmd_redis_conn *c, uint64_t seq)
{
    c->heap[c->heap_n] = seq;
    heap_up(c, c->heap_n++);
}

static void heap_remove(struct rtmd_redis_conn *c, uint32_t i)
{
    cmd_at(c, c->heap[i])->heap_index = NOT_IN_HEAP;
    uint64_t last = c->heap[--c->heap_n];
    if (i == c->heap_n)
        return;
    heap_set(c, i, last);
    heap_up(c, i);
    heap_down(c, cmd_at(c, last)->heap_index);
}

/* ---- the FIFO ------------------------------------------------------------------ */

static int fifo_grow(struct rtmd_redis_conn *c)
{
    uint32_t cap = c->ring_cap ? c->ring_cap * 2 : 16;
    struct cmd *ring = rtmd_try_malloc(sizeof(*ring) * cap);
    uint64_t *heap = rtmd_try_realloc(c->heap, sizeof(*heap) * cap);
    if (!ring || !heap) {
        free(ring);
        if (heap)
            c->heap = heap;
        return -ENOMEM;
    }
    for (uint64_t seq = c->head; seq < c->tail; seq++)
        ring[seq & (cap - 1)] = *cmd_at(c, seq);
    free(c->ring);
    c->ring = ring;
    c->ring_cap = cap;
    c->heap = heap;
    return 0;
}

/* Takes the head off the FIFO; returns its callback and argument. */
static rtmd_redis_cb pop_head(struct rtmd_redis_conn *c, void **arg)
{
    struct cmd *m = cmd_at(c, c->head);
    rtmd_redis_cb cb = m->cb;
    *arg = m->arg;
    if (m->heap_index != NOT_IN_HEAP)
        heap_remove(c, m->heap_index);
    free(m->channels);
    c->head++;
    if (c->unsent < c->head)
        c->unsent = c->head;
    return cb;
}

/* The first chain command still waiting for its callback (tail if none). */
static uint64_t chain_first(struct rtmd_redis_conn *c)
{
    uint64_t seq = RTMD_MAX(c->chain_next, c->head);
    while (seq < c->tail && !(cmd_at(c, seq)->in_chain && cmd_at(c, seq)->cb))
        seq++;
    c->chain_next = seq;
    if (seq == c->tail)
        c->chain_last = 0;
    return seq;
}

/* The command whose deadline comes first among those waiting for their
 * callback, or tail if none. */
static uint64_t first_deadline(struct rtmd_redis_conn *c)
{
    uint64_t seq = chain_first(c);
    if (c->heap_n > 0 && (seq == c->tail || heap_before(c, c->heap[0], seq)))
        seq = c->heap[0];
    return seq;
}

static size_t unsent_bytes(const struct rtmd_redis_conn *c)
{
    size_t n = c->out.len;
    if (c->link && c->link->writing)
        n += c->link->inflight.len - c->link->inflight_off;
    return n;
}

/* Room for one more command of len bytes: 0, -EAGAIN or -EMSGSIZE. */
static int room_for(const struct rtmd_redis_conn *c, size_t len)
{
    if (len > c->opt.max_output)
        return -EMSGSIZE;
    if (c->tail - c->head >= c->opt.max_pending || unsent_bytes(c) + len > c->opt.max_output)
        return -EAGAIN;
    return 0;
}

static void on_flush(struct rtmd_deferred *d)
{
    flush(RTMD_CONTAINER_OF(d, struct rtmd_redis_conn, flush));
}

/* Appends one command; on success it owns channels. */
static int enqueue(struct rtmd_redis_conn *c, const char *bytes, size_t len, uint64_t deadline,
                   rtmd_redis_cb cb, void *arg, enum kind kind, uint32_t expect, char *channels)
{
    int r = room_for(c, len);
    if (r < 0)
        return r;
    if (c->tail - c->head == c->ring_cap && fifo_grow(c) < 0)
        return -ENOMEM;
    r = rtmd_buf_append(&c->out, bytes, len);
    if (r < 0)
        return r == RTMD_ELIMIT ? -EAGAIN : r;
    bool chain = false;
    if (deadline != NO_DEADLINE) {
        chain_first(c); /* forgets chain_last when no chain command waits */
        chain = deadline >= c->chain_last;
    }
    uint64_t seq = c->tail++;
    struct cmd *m = cmd_at(c, seq);
    m->cb = cb;
    m->arg = arg;
    m->deadline = deadline;
    m->heap_index = NOT_IN_HEAP;
    m->in_chain = false;
    m->expect = expect;
    m->kind = kind;
    m->channels = channels;
    m->channels_off = 0;
    if (chain) {
        m->in_chain = true;
        c->chain_last = deadline;
    } else if (deadline != NO_DEADLINE) {
        heap_push(c, seq);
    }
    c->stats.commands++;
    if (!rtmd_list_linked(&c->flush.link))
        rtmd_defer(&c->flush, on_flush);
    deadline_rearm(c);
    return 0;
}

/* ---- writing -------------------------------------------------------------------- */

static void buf_shrink(struct rtmd_buf *b)
{
    if (b->len == 0 && b->cap > SHRINK_AT)
        rtmd_buf_free(b);
}

static void on_written(uv_write_t *req, int status)
{
    struct link *l = RTMD_CONTAINER_OF(req, struct link, write_req);
    struct rtmd_redis_conn *c = l->c;
    l->writing = false;
    if (l != c->link)
        return; /* dropped or closed: the link's close callback frees it */
    if (status < 0) {
        drop(c, status, "write failed: %s", uv_strerror(status));
        return;
    }
    c->stats.bytes_out += l->inflight.len - l->inflight_off;
    rtmd_buf_reset(&l->inflight);
    l->inflight_off = 0;
    buf_shrink(&l->inflight);
    flush(c);
}

/* Writes everything buffered: one write call for all the commands of the
 * iteration; what the kernel does not take goes out with one uv_write. */
static void flush(struct rtmd_redis_conn *c)
{
    struct link *l = c->link;
    if (!l) {
        /* Nothing can be buffered without a link, except in the fuzz driver,
         * which runs "up" without a socket: the bytes go nowhere. */
        c->unsent = c->tail;
        rtmd_buf_reset(&c->out);
        return;
    }
    if (!l->connected || l->writing || c->out.len == 0)
        return;
    c->unsent = c->tail;
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    int r = uv_try_write((uv_stream_t *)&l->tcp, &b, 1);
    c->stats.writes++;
    if (r < 0 && r != UV_EAGAIN) {
        drop(c, r, "write failed: %s", uv_strerror(r));
        return;
    }
    size_t done = r > 0 ? (size_t)r : 0;
    c->stats.bytes_out += done;
    if (done == c->out.len) {
        rtmd_buf_reset(&c->out);
        buf_shrink(&c->out);
        return;
    }
    struct rtmd_buf spare = l->inflight;
    l->inflight = c->out;
    l->inflight_off = done;
    c->out = spare;
    rtmd_buf_reset(&c->out);
    b = uv_buf_init(l->inflight.data + done, (unsigned)(l->inflight.len - done));
    r = uv_write(&l->write_req, (uv_stream_t *)&l->tcp, &b, 1, on_written);
    if (r < 0) {
        drop(c, r, "write failed: %s", uv_strerror(r));
        return;
    }
    l->writing = true;
    c->stats.writes++;
}

/* ---- replies ----------------------------------------------------------------------- */

/* hiredis's reply object functions, with every allocation counted against
 * max_reply first. task->privdata is the connection. */
static bool account(const redisReadTask *t, size_t n)
{
    struct rtmd_redis_conn *c = t->privdata;
    if (n > c->opt.max_reply - c->building) {
        c->over_reply = true;
        return false;
    }
    c->building += n;
    return true;
}

static void *attach(const redisReadTask *t, redisReply *r)
{
    if (t->parent) {
        redisReply *parent = t->parent->obj;
        parent->element[t->idx] = r;
    }
    return r;
}

static void *create_string(const redisReadTask *t, char *str, size_t len)
{
    if (len > LIMIT_1G || !account(t, sizeof(redisReply) + len + 1))
        return NULL;
    redisReply *r = calloc(1, sizeof(*r));
    char *s = rtmd_try_malloc(len + 1);
    if (!r || !s) {
        free(r);
        free(s);
        return NULL;
    }
    memcpy(s, str, len);
    s[len] = '\0';
    r->type = t->type;
    r->str = s;
    r->len = len;
    return attach(t, r);
}

static void *create_array(const redisReadTask *t, int elements)
{
    if (elements < 0 || !account(t, sizeof(redisReply) + (size_t)elements * sizeof(redisReply *)))
        return NULL;
    redisReply *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->type = REDIS_REPLY_ARRAY;
    if (elements > 0) {
        r->element = calloc((size_t)elements, sizeof(redisReply *));
        if (!r->element) {
            free(r);
            return NULL;
        }
    }
    r->elements = (size_t)elements;
    return attach(t, r);
}

static void *create_integer(const redisReadTask *t, long long value)
{
    if (!account(t, sizeof(redisReply)))
        return NULL;
    redisReply *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->type = REDIS_REPLY_INTEGER;
    r->integer = value;
    return attach(t, r);
}

static void *create_nil(const redisReadTask *t)
{
    if (!account(t, sizeof(redisReply)))
        return NULL;
    redisReply *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->type = REDIS_REPLY_NIL;
    return attach(t, r);
}

static redisReplyObjectFunctions reply_functions = {
    create_string, create_array, create_integer, create_nil, freeReplyObject,
};

/*
 * The limit an incomplete line in the reader has passed, or 0. hiredis 0.14
 * rescans an incomplete line from its start at every feed, so a server
 * sending one endless line would cost quadratic time; the reader's state
 * (public in read.h) tells which item it is in.
 */
static size_t line_too_long(const redisReader *r)
{
    if (r->ridx < 0)
        return 0;
    size_t pending = r->len - r->pos;
    if (r->rstack[r->ridx].type == REDIS_REPLY_STRING) {
        /* Its length line, or its data once that line is complete. */
        const char *p = r->buf + r->pos;
        for (size_t i = 0; i + 1 < pending && i + 1 < BULK_HEAD_MAX; i++)
            if (p[i] == '\r' && p[i + 1] == '\n')
                return 0;
        return pending >= BULK_HEAD_MAX ? BULK_HEAD_MAX : 0;
    }
    return pending > LINE_MAX_BYTES ? LINE_MAX_BYTES : 0;
}

static bool is_string(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING;
}

static bool str_is(const redisReply *r, const char *lit)
{
    size_t n = strlen(lit);
    return r->len == n && memcmp(r->str, lit, n) == 0;
}

/* A pub/sub-shaped array: K_MESSAGE for a message, a confirmation's kind,
 * or K_PLAIN. */
static enum kind reply_kind(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_string(r->element[0]))
        return K_PLAIN;
    const redisReply *k = r->element[0];
    if (r->elements == 3 && (str_is(k, "message") || str_is(k, "smessage")))
        return K_MESSAGE;
    if (r->elements == 4 && str_is(k, "pmessage"))
        return K_MESSAGE;
    if (r->elements != 3 || !r->element[2] || r->element[2]->type != REDIS_REPLY_INTEGER)
        return K_PLAIN;
    for (enum kind i = K_SUBSCRIBE; i <= K_PUNSUBSCRIBE; i++)
        if (str_is(k, kind_names[i]))
            return i;
    return K_PLAIN;
}

/* Whether confirmation r is the next one command m waits for (then it is
 * consumed). */
static bool confirms(struct cmd *m, enum kind kind, const redisReply *r)
{
    if (m->kind != kind || !m->channels || !is_string(r->element[1]))
        return false;
    uint32_t n;
    memcpy(&n, m->channels + m->channels_off, sizeof(n));
    const char *name = m->channels + m->channels_off + sizeof(n);
    if (r->element[1]->len != n || memcmp(r->element[1]->str, name, n) != 0)
        return false;
    m->channels_off += sizeof(n) + n;
    return true;
}

static void push(struct rtmd_redis_conn *c, const redisReply *r)
{
    c->stats.pushes++;
    if (c->opt.on_push)
        c->opt.on_push(c->opt.arg, r);
}

/* Completes the head with reply r (a placeholder's late reply is dropped). */
static void complete_head(struct rtmd_redis_conn *c, const redisReply *r)
{
    void *arg;
    rtmd_redis_cb cb = pop_head(c, &arg);
    c->stats.replies++;
    if (!cb) {
        c->stats.late++;
        return;
    }
    cb(arg, 0, r);
}

/* One reply from the server: to the head of the FIFO, or a push. Returns
 * false when it fits nothing (the caller drops the connection). */
static bool dispatch(struct rtmd_redis_conn *c, const redisReply *r)
{
    bool subscribed = c->sub_global > 0 || c->sub_shard > 0;
    struct cmd *m = c->head < c->tail ? cmd_at(c, c->head) : NULL;
    enum kind kind = reply_kind(r);
    if (kind >= K_SUBSCRIBE && kind <= K_PUNSUBSCRIBE) {
        bool mine = m && confirms(m, kind, r);
        if (mine || subscribed) {
            long long count = r->element[2]->integer;
            int64_t *n =
                (kind == K_SSUBSCRIBE || kind == K_SUNSUBSCRIBE) ? &c->sub_shard : &c->sub_global;
            *n = count > 0 ? count : 0;
            if (!mine) {
                push(c, r); /* e.g. Redis 7 unsubscribing a shard channel whose slot moved */
                return true;
            }
            if (--m->expect == 0)
                complete_head(c, r);
            return true;
        }
    } else if (kind == K_MESSAGE && subscribed) {
        push(c, r);
        return true;
    }
    if (!m)
        return false;
    if (m->kind != K_PLAIN && r->type != REDIS_REPLY_ERROR)
        return false; /* a pub/sub command answered with something else */
    complete_head(c, r);
    return true;
}

static void process_input(struct rtmd_redis_conn *c, const char *p, size_t n)
{
    uint64_t epoch = c->epoch;
    redisReader *reader = c->reader;
    c->stats.bytes_in += n;
    if (redisReaderFeed(reader, p, n) != REDIS_OK) {
        drop(c, -ENOMEM, "out of memory reading a reply");
        return;
    }
    for (;;) {
        void *obj = NULL;
        if (redisReaderGetReply(reader, &obj) != REDIS_OK) {
            if (c->over_reply)
                drop(c, RTMD_ELIMIT, "a reply is over max_reply (%zu bytes)", c->opt.max_reply);
            else
                drop(c, -EPROTO, "protocol error: %s", reader->errstr);
            return;
        }
        if (!obj)
            break;
        c->building = 0;
        bool ok = dispatch(c, obj);
        freeReplyObject(obj);
        if (!ok) {
            drop(c, -EPROTO, "protocol error: a reply no command waits for");
            return;
        }
        if (c->closing || c->epoch != epoch)
            return;
    }
    size_t pending = reader->len - reader->pos;
    if (pending > c->opt.max_reply - c->building) {
        drop(c, RTMD_ELIMIT, "a reply is over max_reply (%zu bytes)", c->opt.max_reply);
        return;
    }
    size_t limit = line_too_long(reader);
    if (limit) {
        drop(c, -EPROTO, "protocol error: a line over %zu bytes", limit);
        return;
    }
    deadline_rearm(c);
}

/* ---- deadlines ----------------------------------------------------------------------- */

static void on_deadline(uv_timer_t *t)
{
    struct rtmd_redis_conn *c = RTMD_CONTAINER_OF(t, struct rtmd_redis_conn, deadline_timer);
    c->deadline_due = 0;
    if (c->closing)
        return;
    uint64_t now = rtmd_now_ms(), epoch = c->epoch;
    for (;;) {
        uint64_t seq = first_deadline(c);
        if (seq == c->tail || cmd_at(c, seq)->deadline > now)
            break;
        struct cmd *m = cmd_at(c, seq);
        if (m->heap_index != NOT_IN_HEAP)
            heap_remove(c, m->heap_index);
        rtmd_redis_cb cb = m->cb;
        void *arg = m->arg;
        m->cb = NULL; /* stays as a placeholder: its reply is still owed */
        c->stats.timeouts++;
        cb(arg, -ETIMEDOUT, NULL);
        if (c->closing || c->epoch != epoch)
            return;
    }
    if (c->head < c->tail) {
        uint64_t deadline = cmd_at(c, c->head)->deadline;
        if (now >= sat_add(deadline, c->opt.stuck_grace_ms)) {
            drop(c, -ETIMEDOUT, "no answer %llu ms after a command's deadline: server stuck",
                 (unsigned long long)(now - deadline));
            return;
        }
    }
    deadline_rearm(c);
}

/* Arms the timer for the earliest of the next deadline and the moment the
 * oldest command makes the server stuck, unless it is armed earlier (a
 * timer that fires for nothing only re-arms). */
static void deadline_rearm(struct rtmd_redis_conn *c)
{
    if (c->closing)
        return;
    uint64_t due = NO_DEADLINE, first = first_deadline(c);
    if (first < c->tail)
        due = cmd_at(c, first)->deadline;
    if (c->head < c->tail)
        due = RTMD_MIN(due, sat_add(cmd_at(c, c->head)->deadline, c->opt.stuck_grace_ms));
    if (due == NO_DEADLINE || (c->deadline_due != 0 && c->deadline_due <= due))
        return;
    uint64_t now = rtmd_now_ms();
    uv_timer_start(&c->deadline_timer, on_deadline, due > now ? due - now : 0, 0);
    c->deadline_due = due;
}

/* ---- connecting ----------------------------------------------------------------------- */

static void release(struct rtmd_redis_conn *c);

static void on_link_closed(uv_handle_t *h)
{
    struct link *l = RTMD_CONTAINER_OF((uv_tcp_t *)h, struct link, tcp);
    struct rtmd_redis_conn *c = l->c;
    rtmd_buf_free(&l->inflight);
    free(l);
    release(c);
}

static void close_link(struct link *l)
{
    uv_close((uv_handle_t *)&l->tcp, on_link_closed);
}

static uint32_t jitter(struct rtmd_redis_conn *c, uint32_t ceiling)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 17;
    c->rng ^= c->rng << 5;
    uint32_t half = ceiling / 2;
    return ceiling - half + c->rng % (half + 1);
}

static void on_retry(uv_timer_t *t)
{
    struct rtmd_redis_conn *c = RTMD_CONTAINER_OF(t, struct rtmd_redis_conn, retry);
    if (!c->closing && c->state == ST_WAITING)
        start_attempt(c);
}

/*
 * The connection (or the attempt) failed: every command waiting completes
 * (-ECONNRESET if it was handed to the kernel, -ENOTCONN if not), the
 * owner hears that it is down, and a new attempt is scheduled after the
 * backoff. Safe inside any callback: it frees nothing (the link is closed,
 * the reader replaced only at the next connect).
 */
static void drop(struct rtmd_redis_conn *c, int err, const char *fmt, ...)
{
    if (c->closing || c->state == ST_WAITING)
        return;
    bool was_up = c->state == ST_UP;
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    report(c, err == RTMD_EAUTH ? RTMD_LOG_ERROR : RTMD_LOG_WARN, "%s%s", why,
           was_up ? "; reconnecting" : "");
    c->epoch++;
    c->state = ST_WAITING;
    if (c->link) {
        close_link(c->link);
        c->link = NULL;
    }
    if (was_up)
        c->stats.drops++;
    rtmd_buf_reset(&c->out);
    buf_shrink(&c->out);
    for (uint64_t seq = c->head; seq < c->tail; seq++)
        cmd_at(c, seq)->heap_index = NOT_IN_HEAP;
    c->heap_n = 0;
    c->chain_last = 0;
    if (c->deadline_due) {
        uv_timer_stop(&c->deadline_timer);
        c->deadline_due = 0;
    }
    uint64_t now = rtmd_now_ms();
    if (was_up && now - c->up_since >= UP_STABLE_MS)
        c->backoff_ms = c->opt.backoff_min_ms;
    uv_timer_start(&c->retry, on_retry, jitter(c, c->backoff_ms), 0);
    c->backoff_ms = (uint32_t)RTMD_MIN((uint64_t)c->backoff_ms * 2, c->opt.backoff_max_ms);

    if (was_up && c->opt.on_state) {
        c->opt.on_state(c->opt.arg, false);
        if (c->closing)
            return;
    }
    uint64_t first_unsent = c->unsent;
    while (c->head < c->tail && !c->closing) {
        uint64_t seq = c->head;
        void *arg;
        rtmd_redis_cb cb = pop_head(c, &arg);
        if (cb)
            cb(arg, seq < first_unsent ? -ECONNRESET : -ENOTCONN, NULL);
    }
    c->unsent = c->tail;
}

static void on_connect_timeout(uv_timer_t *t)
{
    struct rtmd_redis_conn *c = RTMD_CONTAINER_OF(t, struct rtmd_redis_conn, retry);
    if (c->closing || c->state == ST_UP || c->state == ST_WAITING)
        return;
    const char *what = c->state == ST_RESOLVING    ? "resolving the host name"
                       : c->state == ST_CONNECTING ? "connecting"
                                                   : "waiting for the handshake's answer";
    drop(c, -ETIMEDOUT, "timed out %s (connect_timeout %u ms)", what,
         (unsigned)c->opt.connect_timeout_ms);
}

static void on_idle_tick(uv_timer_t *t);
static void on_ignored(void *arg, int status, const redisReply *reply)
{
    (void)arg;
    (void)status;
    (void)reply;
}

static void on_handshake(void *arg, int status, const redisReply *r)
{
    struct rtmd_redis_conn *c = arg;
    if (status != 0 || c->closing)
        return; /* dropped or closing meanwhile */
    if (r->type == REDIS_REPLY_ERROR) {
        char q[160];
        rtmd_log_quote(q, sizeof(q), rtmd_str_make(r->str, r->len));
        if (c->ep.password[0])
            drop(c, RTMD_EAUTH, "AUTH failed: %s", q);
        else
            drop(c, RTMD_EAUTH, "PING refused: %s (does the server need a password?)", q);
        return;
    }
    c->state = ST_UP;
    c->stats.ups++;
    c->up_since = rtmd_now_ms();
    uv_timer_stop(&c->retry);
    if (c->opt.idle_ping_ms) {
        c->bytes_at_tick = c->stats.bytes_in;
        uv_timer_start(&c->retry, on_idle_tick, c->opt.idle_ping_ms, c->opt.idle_ping_ms);
    }
    if (c->last_error[0])
        rtmd_log_warn("redis", "%s: connected again", c->name);
    else
        rtmd_log_info("redis", "%s: connected", c->name);
    c->last_error[0] = '\0';
    if (c->opt.on_state)
        c->opt.on_state(c->opt.arg, true);
}

static void on_idle_tick(uv_timer_t *t)
{
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    struct rtmd_redis_conn *c = RTMD_CONTAINER_OF(t, struct rtmd_redis_conn, retry);
    if (c->closing || c->state != ST_UP)
        return;
    if (c->head == c->tail && c->stats.bytes_in == c->bytes_at_tick)
        enqueue(c, ping, sizeof(ping) - 1, rtmd_now_ms() + c->opt.connect_timeout_ms, on_ignored,
                NULL, K_PLAIN, 1, NULL);
    c->bytes_at_tick = c->stats.bytes_in;
}

/* A new connection starts with a fresh reader and no subscriptions. */
static int session_begin(struct rtmd_redis_conn *c)
{
    if (c->reader)
        redisReaderFree(c->reader);
    c->reader = redisReaderCreateWithFunctions(&reply_functions);
    if (!c->reader)
        return -ENOMEM;
    c->reader->privdata = c;
    c->building = 0;
    c->over_reply = false;
    c->sub_global = c->sub_shard = 0;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf_, sizeof(read_buf_));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct link *l = RTMD_CONTAINER_OF((uv_tcp_t *)s, struct link, tcp);
    struct rtmd_redis_conn *c = l->c;
    if (l != c->link || nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            drop(c, -ECONNRESET, "the server closed the connection");
        else
            drop(c, (int)nread, "read failed: %s", uv_strerror((int)nread));
        return;
    }
    process_input(c, buf->base, (size_t)nread);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct link *l = RTMD_CONTAINER_OF(req, struct link, connect_req);
    struct rtmd_redis_conn *c = l->c;
    if (l != c->link)
        return;
    if (status < 0) {
        drop(c, status, "connect failed: %s", uv_strerror(status));
        return;
    }
    l->connected = true;
    uv_tcp_nodelay(&l->tcp, 1);
    uv_tcp_keepalive(&l->tcp, 1, 60);
    int r = uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
    if (r == 0)
        r = session_begin(c);
    if (r < 0) {
        drop(c, r, "cannot start reading: %s", rtmd_strerror(r));
        return;
    }
    c->state = ST_HANDSHAKE;
    const char *argv[3] = {"AUTH", c->ep.user, c->ep.password};
    int argc = 3;
    if (!c->ep.password[0]) {
        argv[0] = "PING";
        argc = 1;
    } else if (!c->ep.user[0]) {
        argv[1] = c->ep.password;
        argc = 2;
    }
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    r = len < 0 ? -ENOMEM
                : enqueue(c, cmd, (size_t)len, NO_DEADLINE, on_handshake, c, K_PLAIN, 1, NULL);
    free(cmd);
    if (r < 0)
        drop(c, r, "cannot send the handshake: %s", rtmd_strerror(r));
}

static void connect_to(struct rtmd_redis_conn *c, const struct sockaddr *sa)
{
    struct link *l = rtmd_calloc(1, sizeof(*l));
    l->c = c;
    rtmd_buf_init(&l->inflight, c->opt.max_output);
    int r = uv_tcp_init(c->loop, &l->tcp);
    if (r < 0) {
        free(l);
        drop(c, r, "cannot create a socket: %s", uv_strerror(r));
        return;
    }
    c->refs++;
    c->link = l;
    c->state = ST_CONNECTING;
    r = uv_tcp_connect(&l->connect_req, &l->tcp, sa, on_connected);
    if (r < 0)
        drop(c, r, "connect failed: %s", uv_strerror(r));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct resolve *rs = RTMD_CONTAINER_OF(req, struct resolve, req);
    struct rtmd_redis_conn *c = rs->c;
    c->resolve = NULL;
    if (!c->closing && c->state == ST_RESOLVING && rs->attempt == c->attempt) {
        size_t n = 0;
        for (struct addrinfo *a = res; status == 0 && a; a = a->ai_next)
            n += a->ai_family == AF_INET || a->ai_family == AF_INET6;
        if (status < 0 || n == 0) {
            drop(c, status < 0 ? status : -EADDRNOTAVAIL, "cannot resolve %s: %s", c->ep.host,
                 status < 0 ? uv_strerror(status) : "no IPv4 or IPv6 address");
        } else {
            /* Successive attempts rotate through the addresses. */
            size_t pick = (size_t)((c->attempt - 1) % n);
            struct sockaddr_storage ss;
            for (struct addrinfo *a = res; a; a = a->ai_next) {
                if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
                    continue;
                if (pick-- == 0) {
                    memcpy(&ss, a->ai_addr, RTMD_MIN(a->ai_addrlen, sizeof(ss)));
                    break;
                }
            }
            connect_to(c, (struct sockaddr *)&ss);
        }
    }
    uv_freeaddrinfo(res);
    free(rs);
    release(c);
}

static void start_attempt(struct rtmd_redis_conn *c)
{
    c->attempt++;
    c->stats.connects++;
    c->state = ST_CONNECTING;
    uv_timer_start(&c->retry, on_connect_timeout, c->opt.connect_timeout_ms, 0);
    struct sockaddr_storage ss;
    if (uv_ip4_addr(c->ep.host, c->ep.port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(c->ep.host, c->ep.port, (struct sockaddr_in6 *)&ss) == 0) {
        connect_to(c, (struct sockaddr *)&ss);
        return;
    }
    c->state = ST_RESOLVING;
    if (c->resolve) /* the last one has not come back: wait for it, one at a time */
        return;
    struct resolve *rs = rtmd_calloc(1, sizeof(*rs));
    rs->c = c;
    rs->attempt = c->attempt;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)c->ep.port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int r = uv_getaddrinfo(c->loop, &rs->req, on_resolved, c->ep.host, port, &hints);
    if (r < 0) {
        free(rs);
        drop(c, r, "cannot resolve %s: %s", c->ep.host, uv_strerror(r));
        return;
    }
    c->resolve = rs;
    c->refs++;
}

/* ---- opening and closing ----------------------------------------------------------------- */

static bool terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static uint32_t or_default(uint32_t v, uint32_t def, uint32_t max)
{
    return v == 0 ? def : RTMD_MIN(v, max);
}

static size_t size_or_default(size_t v, size_t def)
{
    return v == 0 ? def : RTMD_MIN(v, LIMIT_1G);
}

/* The connection with its state initialised and nothing started (the fuzz
 * driver uses it alone). */
static struct rtmd_redis_conn *conn_new(uv_loop_t *loop, const struct rtmd_redis_endpoint *ep,
                                        const struct rtmd_redis_conn_options *opt)
{
    struct rtmd_redis_conn *c = rtmd_calloc(1, sizeof(*c));
    c->loop = loop;
    c->ep = *ep;
    c->opt = *opt;
    c->opt.connect_timeout_ms = or_default(opt->connect_timeout_ms, 1000, 600000);
    c->opt.stuck_grace_ms = or_default(opt->stuck_grace_ms, 2000, 3600000);
    c->opt.max_pending = or_default(opt->max_pending, 65536, 1u << 24);
    c->opt.max_output = size_or_default(opt->max_output, (size_t)64 << 20);
    c->opt.max_reply = size_or_default(opt->max_reply, (size_t)64 << 20);
    c->opt.backoff_min_ms = or_default(opt->backoff_min_ms, 50, 600000);
    c->opt.backoff_max_ms = or_default(opt->backoff_max_ms, 2000, 600000);
    if (c->opt.backoff_max_ms < c->opt.backoff_min_ms)
        c->opt.backoff_max_ms = c->opt.backoff_min_ms;
    c->opt.label = NULL;
    bool v6 = strchr(ep->host, ':') != NULL;
    snprintf(c->name, sizeof(c->name), "%s%s%s:%u%s%.40s%s", v6 ? "[" : "", ep->host, v6 ? "]" : "",
             (unsigned)ep->port, opt->label ? " (" : "", opt->label ? opt->label : "",
             opt->label ? ")" : "");
    c->state = ST_WAITING;
    c->refs = 3; /* the owner and the two timers */
    c->backoff_ms = c->opt.backoff_min_ms;
    c->rng = (uint32_t)((uintptr_t)c ^ uv_hrtime()) | 1;
    rtmd_buf_init(&c->out, c->opt.max_output);
    uv_timer_init(loop, &c->retry);
    uv_timer_init(loop, &c->deadline_timer);
    return c;
}

int rtmd_redis_conn_open(struct rtmd_redis_conn **out, uv_loop_t *loop,
                         const struct rtmd_redis_endpoint *ep,
                         const struct rtmd_redis_conn_options *opt)
{
    *out = NULL;
    static const struct rtmd_redis_conn_options defaults;
    if (!opt)
        opt = &defaults;
    if (!loop || loop != rtmd_loop() || !terminated(ep->host, sizeof(ep->host)) ||
        !terminated(ep->user, sizeof(ep->user)) ||
        !terminated(ep->password, sizeof(ep->password)) || !ep->host[0] || ep->port == 0 ||
        (ep->user[0] && !ep->password[0]))
        return -EINVAL;
    struct rtmd_redis_conn *c = conn_new(loop, ep, opt);
    start_attempt(c);
    *out = c;
    return 0;
}

static void finish(struct rtmd_redis_conn *c)
{
    while (c->head < c->tail) {
        void *arg;
        rtmd_redis_cb cb = pop_head(c, &arg);
        if (cb)
            cb(arg, RTMD_ECLOSED, NULL);
    }
    free(c->ring);
    free(c->heap);
    rtmd_buf_free(&c->out);
    if (c->reader)
        redisReaderFree(c->reader);
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    free(c);
    if (done)
        done(arg);
}

static void release(struct rtmd_redis_conn *c)
{
    if (--c->refs == 0)
        finish(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct rtmd_redis_conn *c = h->data;
    release(c);
}

void rtmd_redis_conn_close(struct rtmd_redis_conn *c, void (*done)(void *arg), void *arg)
{
    if (c->closing)
        return;
    c->closing = true;
    c->done = done;
    c->done_arg = arg;
    c->state = ST_CLOSED;
    rtmd_defer_cancel(&c->flush);
    if (c->link) {
        close_link(c->link);
        c->link = NULL;
    }
    if (c->resolve)
        uv_cancel((uv_req_t *)&c->resolve->req);
    c->retry.data = c;
    c->deadline_timer.data = c;
    uv_close((uv_handle_t *)&c->retry, on_timer_closed);
    uv_close((uv_handle_t *)&c->deadline_timer, on_timer_closed);
    release(c);
}

/* ---- commands ----------------------------------------------------------------------------- */

bool rtmd_redis_conn_up(const struct rtmd_redis_conn *c)
{
    return c->state == ST_UP;
}

static int usable(const struct rtmd_redis_conn *c)
{
    if (c->closing)
        return RTMD_ECLOSED;
    return c->state == ST_UP ? 0 : -ENOTCONN;
}

struct name {
    const char *s;
    size_t len;
    int kind; /* an enum kind, or -EINVAL for a command rtmd does not send */
};
#define NAME(s, kind)                                                                              \
    {                                                                                              \
        s, sizeof(s) - 1, kind                                                                     \
    }

/* Commands that break one-reply-per-command matching or RESP2, and the
 * pub/sub ones (CLIENT REPLY is checked apart). */
static const struct name names[] = {
    NAME("HELLO", -EINVAL),
    NAME("RESET", -EINVAL),
    NAME("MONITOR", -EINVAL),
    NAME("SYNC", -EINVAL),
    NAME("PSYNC", -EINVAL),
    NAME("SUBSCRIBE", K_SUBSCRIBE),
    NAME("SSUBSCRIBE", K_SSUBSCRIBE),
    NAME("PSUBSCRIBE", K_PSUBSCRIBE),
    NAME("UNSUBSCRIBE", K_UNSUBSCRIBE),
    NAME("SUNSUBSCRIBE", K_SUNSUBSCRIBE),
    NAME("PUNSUBSCRIBE", K_PUNSUBSCRIBE),
};

static bool arg_is(const char *p, size_t n, const char *lit, size_t lit_len)
{
    return n == lit_len && rtmd_str_ieq(rtmd_str_make(p, n), rtmd_str_make(lit, lit_len));
}

/* The kind of command argv is, or -EINVAL for one rtmd does not send. */
static int command_kind(int argc, const char **argv, const size_t *len)
{
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(names); i++)
        if (arg_is(argv[0], len[0], names[i].s, names[i].len))
            return names[i].kind < 0 || argc >= 2 ? names[i].kind : -EINVAL;
    if (argc >= 2 && arg_is(argv[0], len[0], "CLIENT", 6) && arg_is(argv[1], len[1], "REPLY", 5))
        return -EINVAL;
    return K_PLAIN;
}

#define ARGS_ON_STACK 16

static size_t decimal_digits(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

int rtmd_redis_conn_command(struct rtmd_redis_conn *c, int argc, const char **argv,
                            const size_t *argvlen, uint64_t deadline_ms, rtmd_redis_cb cb,
                            void *arg)
{
    int r = usable(c);
    if (r < 0)
        return r;
    if (argc < 1 || !argv || !cb)
        return -EINVAL;
    size_t stack_len[ARGS_ON_STACK], *heap_len = NULL;
    const size_t *len = argvlen;
    if (!len) {
        size_t *l = stack_len;
        if (argc > ARGS_ON_STACK)
            l = heap_len = rtmd_malloc(sizeof(*l) * (size_t)argc);
        for (int i = 0; i < argc; i++)
            l[i] = strlen(argv[i]);
        len = l;
    }
    char *channels = NULL, *cmd = NULL;
    /* The size in RESP, bounded before anything is built (hiredis counts it
     * in an int): "*<argc>\r\n", then "$<len>\r\n<bytes>\r\n" each. */
    size_t total = 3 + decimal_digits((uint64_t)argc), chan_bytes = 0;
    for (int i = 0; i < argc; i++) {
        if (len[i] > c->opt.max_output) {
            r = -EMSGSIZE;
            goto out;
        }
        total += 5 + decimal_digits(len[i]) + len[i];
        chan_bytes += i > 0 ? len[i] + sizeof(uint32_t) : 0;
        if (total > c->opt.max_output) {
            r = -EMSGSIZE;
            goto out;
        }
    }
    int kind = command_kind(argc, argv, len);
    if (kind < 0) {
        r = kind;
        goto out;
    }
    r = room_for(c, total);
    if (r < 0)
        goto out;
    if (kind != K_PLAIN) {
        channels = rtmd_try_malloc(chan_bytes);
        if (!channels) {
            r = -ENOMEM;
            goto out;
        }
        size_t off = 0;
        for (int i = 1; i < argc; i++) {
            uint32_t n = (uint32_t)len[i];
            memcpy(channels + off, &n, sizeof(n));
            memcpy(channels + off + sizeof(n), argv[i], len[i]);
            off += sizeof(n) + len[i];
        }
    }
    int n = redisFormatCommandArgv(&cmd, argc, argv, len);
    if (n < 0) {
        r = -ENOMEM;
        goto out;
    }
    r = enqueue(c, cmd, (size_t)n, deadline_ms, cb, arg, (enum kind)kind,
                kind == K_PLAIN ? 1 : (uint32_t)(argc - 1), channels);
    if (r == 0)
        channels = NULL;
out:
    free(cmd);
    free(channels);
    free(heap_len);
    return r;
}

int rtmd_redis_conn_formatted(struct rtmd_redis_conn *c, const char *cmd, size_t len,
                              uint64_t deadline_ms, rtmd_redis_cb cb, void *arg)
{
    int r = usable(c);
    if (r < 0)
        return r;
    if (!cmd || len == 0 || !cb)
        return -EINVAL;
    return enqueue(c, cmd, len, deadline_ms, cb, arg, K_PLAIN, 1, NULL);
}

int rtmd_redis_conn_asking(struct rtmd_redis_conn *c, const char *cmd, size_t len,
                           uint64_t deadline_ms, rtmd_redis_cb cb, void *arg)
{
    static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
    const size_t alen = sizeof(asking) - 1;
    int r = usable(c);
    if (r < 0)
        return r;
    if (!cmd || len == 0 || !cb)
        return -EINVAL;
    if (len > c->opt.max_output || alen > c->opt.max_output - len)
        return -EMSGSIZE;
    r = room_for(c, len + alen);
    if (r == 0 && c->tail - c->head + 2 > c->opt.max_pending)
        r = -EAGAIN;
    if (r < 0)
        return r;
    while (c->tail - c->head + 2 > c->ring_cap)
        if (fifo_grow(c) < 0)
            return -ENOMEM;
    /* Both commands' bytes go with the ASKING's entry; the command's entry
     * adds none, and with the room made above it cannot fail. */
    char *both = rtmd_try_malloc(alen + len);
    if (!both)
        return -ENOMEM;
    memcpy(both, asking, alen);
    memcpy(both + alen, cmd, len);
    r = enqueue(c, both, alen + len, deadline_ms, on_ignored, NULL, K_PLAIN, 1, NULL);
    free(both);
    if (r < 0)
        return r;
    return enqueue(c, "", 0, deadline_ms, cb, arg, K_PLAIN, 1, NULL);
}

/* ---- TIME ---------------------------------------------------------------------------------- */

struct time_call {
    rtmd_redis_time_cb cb;
    void *arg;
    uint64_t sent;
};

static void on_time(void *arg, int status, const redisReply *r)
{
    struct time_call t = *(struct time_call *)arg;
    free(arg);
    if (status < 0) {
        t.cb(t.arg, status, 0, 0);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        t.cb(t.arg, RTMD_ESTORE, 0, 0);
        return;
    }
    uint64_t sec, usec;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_string(r->element[0]) ||
        !is_string(r->element[1]) ||
        rtmd_str_to_u64(rtmd_str_make(r->element[0]->str, r->element[0]->len), UINT32_MAX * 1000ull,
                        &sec) < 0 ||
        rtmd_str_to_u64(rtmd_str_make(r->element[1]->str, r->element[1]->len), 999999, &usec) < 0) {
        t.cb(t.arg, -EPROTO, 0, 0);
        return;
    }
    uint64_t now = rtmd_now_ms(), rtt = now - t.sent;
    uint64_t redis_ms = sec * 1000 + usec / 1000;
    t.cb(t.arg, 0, (int64_t)redis_ms - (int64_t)(t.sent + rtt / 2), rtt);
}

int rtmd_redis_conn_time(struct rtmd_redis_conn *c, uint64_t deadline_ms, rtmd_redis_time_cb cb,
                         void *arg)
{
    static const char time_cmd[] = "*1\r\n$4\r\nTIME\r\n";
    int r = usable(c);
    if (r < 0)
        return r;
    if (!cb)
        return -EINVAL;
    struct time_call *t = rtmd_malloc(sizeof(*t));
    t->cb = cb;
    t->arg = arg;
    t->sent = rtmd_now_ms();
    r = enqueue(c, time_cmd, sizeof(time_cmd) - 1, deadline_ms, on_time, t, K_PLAIN, 1, NULL);
    if (r < 0)
        free(t);
    return r;
}

void rtmd_redis_conn_stats(const struct rtmd_redis_conn *c, struct rtmd_redis_conn_stats *out)
{
    *out = c->stats;
    out->pending = (uint32_t)(c->tail - c->head);
    out->unsent = unsent_bytes(c);
}
