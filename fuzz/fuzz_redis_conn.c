/*
 * fuzz_redis_conn.c — libFuzzer driver for the reply side of
 * store/redis_conn.c: what a hostile or broken Redis server sends, matched
 * against a FIFO of commands, pub/sub confirmations and pushes, deadlines
 * expiring, and callbacks that issue commands or close the connection.
 *
 * The connection runs without a socket: the driver includes redis_conn.c,
 * makes one with conn_new(), puts it up as a handshake would (a fresh
 * reader), issues the commands the input chooses (their bytes go nowhere),
 * and hands the server's bytes to process_input() — the function a socket
 * read calls — in reads of the sizes the input picks. rtmd's clock is frozen
 * and moved forward by the input; on_deadline() runs as the timer would.
 * Input:
 *
 *   byte 0  flags
 *           bits 0-1  max_reply: 0 64 KiB, 1 256 bytes, 2 4 KiB, 3 1 MiB
 *           bit 2     callbacks may close the connection
 *           bit 3     callbacks may issue commands
 *           bit 4     max_pending 4 (else 64)
 *           bit 5     the connection is closed with commands pending at the end
 *                     (else the remaining input is fed first)
 *   byte 1  seed of the PRNG that picks read sizes, commands and events
 *   rest    the bytes the server sends
 *
 * Checked: every command accepted gets exactly one callback, never inside
 * the call that made it, with a documented status, and a reply only with
 * status 0; a reply or push is a well-formed tree (strings NUL-terminated at
 * their length, every element of an array present, depth at most 8); a
 * timeout comes at or after its deadline; the deadline heap is a heap and
 * holds exactly the commands waiting for a callback outside the in-order
 * chain, whose waiting commands' deadlines do not decrease; the reader never
 * holds more than max_reply bytes unparsed; once dropped, nothing more is
 * read; close completes the rest with RTMD_ECLOSED and frees everything
 * before its done callback (leaks show under ASan).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis_conn.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX (1u << 20)
#define CMDS_MAX  512

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_redis_conn: check failed: %s (line %d)\n", #cond, __LINE__);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static uv_loop_t loop_;
static bool loop_ready_;
static uint32_t rng_;
static uint8_t flags_;
static uint64_t now_;
static bool in_call_;
static struct rtmd_redis_conn *conn_;
static bool closing_, done_;

struct record {
    int calls;
    int status;
    bool time; /* a TIME helper call */
    uint64_t deadline;
};
static struct record records_[CMDS_MAX];
static int n_records_;

static uint32_t rnd(void)
{
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 17;
    rng_ ^= rng_ << 5;
    return rng_;
}

static void check_reply(const redisReply *r, int depth)
{
    CHECK(r != NULL && depth <= 8);
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR: CHECK(r->str != NULL && r->str[r->len] == '\0'); break;
    case REDIS_REPLY_ARRAY:
        CHECK(r->elements == 0 || r->element != NULL);
        for (size_t i = 0; i < r->elements; i++)
            check_reply(r->element[i], depth + 1);
        break;
    case REDIS_REPLY_INTEGER:
    case REDIS_REPLY_NIL: break;
    default: CHECK(!"reply type");
    }
}

static void check_heap(void)
{
    struct rtmd_redis_conn *c = conn_;
    uint32_t waiting = 0;
    uint64_t chain_deadline = 0;
    for (uint64_t seq = c->head; seq < c->tail; seq++) {
        struct cmd *m = cmd_at(c, seq);
        bool in_heap = m->heap_index != NOT_IN_HEAP;
        CHECK(!(in_heap && m->in_chain));
        if (m->in_chain && m->cb) { /* waiting chain commands: deadlines in FIFO order */
            CHECK(seq >= c->chain_next);
            CHECK(m->deadline >= chain_deadline && m->deadline <= c->chain_last);
            chain_deadline = m->deadline;
        }
        CHECK(in_heap == (m->cb != NULL && m->deadline != NO_DEADLINE && !m->in_chain));
        if (in_heap) {
            CHECK(m->heap_index < c->heap_n && c->heap[m->heap_index] == seq);
            waiting++;
        }
    }
    CHECK(waiting == c->heap_n);
    for (uint32_t i = 1; i < c->heap_n; i++)
        CHECK(!heap_before(c, c->heap[i], c->heap[(i - 1) / 2]));
}

static void on_done(void *arg)
{
    (void)arg;
    CHECK(!done_);
    done_ = true;
}

static void do_close(void)
{
    if (closing_)
        return;
    closing_ = true;
    rtmd_redis_conn_close(conn_, on_done, NULL);
}

static void issue_one(void);

static void on_reply(void *arg, int status, const redisReply *r)
{
    struct record *rec = arg;
    CHECK(!in_call_);
    CHECK(rec->calls == 0);
    rec->calls++;
    rec->status = status;
    CHECK(status == 0 || status == -ETIMEDOUT || status == -ECONNRESET || status == -ENOTCONN ||
          status == RTMD_ECLOSED);
    CHECK((status == 0) == (r != NULL));
    if (r)
        check_reply(r, 0);
    if (status == -ETIMEDOUT)
        CHECK(rec->deadline <= now_);
    if ((flags_ & 0x08) && (rnd() & 3) == 0)
        issue_one();
    if ((flags_ & 0x04) && (rnd() & 15) == 0)
        do_close();
}

static void on_time_reply(void *arg, int status, int64_t offset, uint64_t rtt)
{
    struct record *rec = arg;
    (void)offset;
    (void)rtt;
    CHECK(!in_call_);
    CHECK(rec->calls == 0);
    rec->calls++;
    rec->status = status;
    CHECK(status == 0 || status == -ETIMEDOUT || status == -ECONNRESET || status == -ENOTCONN ||
          status == RTMD_ECLOSED || status == RTMD_ESTORE || status == -EPROTO);
}

static void on_push_msg(void *arg, const redisReply *msg)
{
    (void)arg;
    CHECK(!in_call_);
    check_reply(msg, 0);
    CHECK(msg->type == REDIS_REPLY_ARRAY && msg->elements >= 3);
}

/* Issues a command the PRNG picks; a synchronous failure must be one of
 * those documented, and calls nothing back. */
static void issue_one(void)
{
    if (n_records_ >= CMDS_MAX)
        return;
    struct record *rec = &records_[n_records_];
    memset(rec, 0, sizeof(*rec));
    rec->deadline = now_ + 1 + rnd() % 1000;
    static const char *const cmds[][3] = {
        {"GET", "k", NULL},          {"SSUBSCRIBE", "a", "b"}, {"SSUBSCRIBE", "a", NULL},
        {"SUNSUBSCRIBE", "a", NULL}, {"SUBSCRIBE", "a", NULL}, {"PSUBSCRIBE", "a*", NULL},
        {"UNSUBSCRIBE", "a", NULL},  {"PING", NULL, NULL},
    };
    uint32_t pick = rnd() % (RTMD_ARRAY_SIZE(cmds) + 1);
    int r;
    in_call_ = true;
    if (pick == RTMD_ARRAY_SIZE(cmds)) {
        rec->time = true;
        r = rtmd_redis_conn_time(conn_, rec->deadline, on_time_reply, rec);
    } else {
        const char **argv = (const char **)cmds[pick];
        int argc = argv[1] == NULL ? 1 : argv[2] == NULL ? 2 : 3;
        r = rtmd_redis_conn_command(conn_, argc, argv, NULL, rec->deadline, on_reply, rec);
    }
    in_call_ = false;
    CHECK(r == 0 || r == -EAGAIN || r == -ENOTCONN || r == RTMD_ECLOSED);
    CHECK(rec->calls == 0);
    if (r == 0)
        n_records_++;
}

static size_t read_size(size_t left)
{
    size_t n;
    switch (rnd() & 7) {
    case 0:
    case 1: n = 1 + rnd() % 4; break;
    case 2:
    case 3: n = 1 + rnd() % 64; break;
    case 4: n = 1 + rnd() % 4096; break;
    default: n = left;
    }
    return RTMD_MIN(RTMD_MIN(n, left), (size_t)READ_BUF_SIZE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > INPUT_MAX)
        return 0;
    if (!loop_ready_) {
        uv_loop_init(&loop_);
        rtmd_loop_init(&loop_);
        rtmd_log_level = RTMD_LOG_ERROR;
        loop_ready_ = true;
    }
    flags_ = data[0];
    rng_ = 0x9e3779b9u ^ ((uint32_t)data[1] * 0x01000193u);
    data += 2;
    size -= 2;
    now_ = 1600000000000ull;
    rtmd_clock_freeze(now_);
    n_records_ = 0;
    closing_ = done_ = false;

    static const size_t replies[4] = {64 << 10, 256, 4 << 10, 1 << 20};
    struct rtmd_redis_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    snprintf(ep.host, sizeof(ep.host), "127.0.0.1");
    ep.port = 1;
    struct rtmd_redis_conn_options opt;
    memset(&opt, 0, sizeof(opt));
    opt.max_reply = replies[flags_ & 3];
    opt.max_pending = (flags_ & 0x10) ? 4 : 64;
    opt.stuck_grace_ms = 500;
    opt.backoff_min_ms = opt.backoff_max_ms = 600000; /* no reconnect within a run */
    opt.on_push = on_push_msg;
    conn_ = conn_new(&loop_, &ep, &opt);
    CHECK(session_begin(conn_) == 0);
    conn_->state = ST_UP; /* as the handshake's answer would */

    size_t off = 0;
    bool fed_all = !(flags_ & 0x20);
    while (!closing_ && conn_->state == ST_UP) {
        uint32_t e = rnd() & 7;
        if (e <= 2) {
            issue_one();
        } else if (e == 3) {
            now_ += rnd() % 400;
            rtmd_clock_freeze(now_);
            on_deadline(&conn_->deadline_timer);
        } else if (e == 4) {
            uv_run(&loop_, UV_RUN_NOWAIT); /* deferred flushes */
        } else {
            if (off == size)
                break;
            size_t k = read_size(size - off);
            uint64_t before = conn_->stats.bytes_in;
            process_input(conn_, (const char *)data + off, k);
            CHECK(conn_->stats.bytes_in == before + k);
            off += k;
            if (!closing_ && conn_->state == ST_UP) {
                CHECK(conn_->reader->len - conn_->reader->pos <= conn_->opt.max_reply);
                CHECK(conn_->building <= conn_->opt.max_reply);
            }
        }
        if (!closing_ && conn_->state == ST_UP)
            check_heap();
        if (!fed_all && off * 2 >= size)
            break;
    }
    if (!closing_ && conn_->state != ST_UP) {
        /* Dropped: every command completed, nothing waits. */
        CHECK(conn_->head == conn_->tail);
        for (int i = 0; i < n_records_; i++)
            CHECK(records_[i].calls == 1);
    }
    do_close();
    for (int round = 0; !done_; round++) {
        CHECK(round < 1000);
        uv_run(&loop_, UV_RUN_NOWAIT);
    }
    for (int i = 0; i < n_records_; i++)
        CHECK(records_[i].calls == 1);
    uv_run(&loop_, UV_RUN_NOWAIT);
    rtmd_clock_freeze(0);
    return 0;
}
