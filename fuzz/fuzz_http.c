/*
 * fuzz_http.c — libFuzzer driver for the HTTP/1.1 request path (net/http.c):
 * parsing, the 431/413/400 limits, pipelining, keep-alive, the
 * request/response cycle and the WebSocket upgrade hand-off.
 *
 * http.c runs over the link-time conn stubs of stub_conn.h (no sockets): one
 * connection gets the input in reads of arbitrary sizes, with loop passes,
 * write completions and timeouts in between, exactly as often as the input
 * says. Input:
 *
 *   byte 0  flags
 *           bits 0-1  limits: 0 defaults (head 16384, 100 headers, body 1 MiB),
 *                     1 tiny (128, 4, 32), 2 small (1024, 10, 512),
 *                     3 default head with a 64-byte body
 *           bit 2     backpressure: writes stay queued until a drain event
 *           bit 3     a write fails (the connection is reset) after 0-5 writes
 *           bit 4     the server starts stopping at the first request
 *           bits 5-6  the end: 0-1 EOF, 2 the peer resets, 3 silence (timeouts)
 *           bit 7     timeouts may also fire between reads
 *   byte 1  seed of the PRNG that picks read sizes and events
 *   rest    the bytes the client sends
 *
 * The handler answers by the second byte of the path: n now, d deferred one
 * loop pass, D deferred several, e an error answer, x a large answer with
 * extra headers, h echoes the Host header, w upgrades to WebSocket at once,
 * W upgrades later, c the client disconnects while the answer is deferred;
 * anything else now or deferred by the PRNG. After an upgrade the rest of
 * the input are WebSocket frames for an echo handler.
 *
 * Checked: every request handed to the handler is within the limits and its
 * views are consistent (an absolute-form target arrives in origin form, an
 * HTTP/1.1 request has exactly one Host); the output is a sequence of
 * well-formed responses (status line, Content-Length, X-Request-ID), answers
 * leave in request order, an answer to HEAD has no body nor Content-Length,
 * nothing follows "Connection: close"; no request is parsed while more than
 * 64 KiB of answers are unsent; the connection always ends (freed) with no
 * request left unanswered, and while alive and idle it has a timeout armed.
 * Leaks show under ASan.
 *
 * Inputs that still make this driver fail are kept in fuzz/known_bugs/ until
 * their bug is fixed (see the README there).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "net/http.h"
#include "net/ws.h"
#include "stub_conn.h"

#define FUZZ_NAME "fuzz_http"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX (512 * 1024)
#define OUT_MAX   (16u * 1024 * 1024)

static struct rtmd_config cfg_;
static struct rtmd_server server_;
static struct rtmd_listener listener_;
static struct stub_conn *conn_; /* NULL once freed */
static struct rtmd_buf out_;
static uint64_t seq_; /* requests handed to the handler */
#define HEADS_TRACKED 4096
static bool is_head_[HEADS_TRACKED]; /* request seq was a HEAD */
static size_t answers_pending_;      /* deferred answers not yet given */
static size_t ws_open_, ws_closed_;

/* ---- the WebSocket side: an echo handler ----------------------------------------- */

static void ws_open(void *ctx, struct rtmd_conn *c)
{
    (void)c;
    ws_open_++;
}

static void ws_message(struct rtmd_conn *c, const char *p, size_t n)
{
    if (n == 5 && memcmp(p, "close", 5) == 0)
        rtmd_ws_close(c, RTMD_WS_CLOSE_NORMAL, "bye");
    else
        rtmd_ws_send_text(c, p, n);
}

static void ws_timeout(struct rtmd_conn *c)
{
    rtmd_ws_close(c, RTMD_WS_CLOSE_GOING_AWAY, "heartbeat timeout");
}

static void ws_closed(struct rtmd_conn *c)
{
    (void)c;
    ws_closed_++;
}

static const struct rtmd_ws_handler echo_handler = {
    .on_open = ws_open,
    .on_message = ws_message,
    .on_drain = NULL,
    .on_timeout = ws_timeout,
    .on_close = ws_closed,
};

/* ---- the request handler ------------------------------------------------------------ */

struct answer {
    struct rtmd_deferred d;
    struct rtmd_http_request *req;
    int passes; /* loop passes still to wait */
    char action;
};

static bool inside(const struct rtmd_http_request *req, struct rtmd_str s)
{
    if (s.len == 0)
        return true;
    return s.p >= req->head.data && s.p + s.len <= req->head.data + req->head.len;
}

static void check_request(const struct rtmd_http_request *req)
{
    const struct rtmd_limits *lim = &cfg_.limits;
    CHECK(!req->responded);
    CHECK(req->url.len > 0 && req->url.len <= lim->http_max_head);
    CHECK(req->url.p == req->head.data && inside(req, req->url));
    CHECK(req->path.p == req->url.p && req->path.len <= req->url.len);
    CHECK(!memchr(req->path.p, '?', req->path.len));
    if (req->path.len < req->url.len)
        CHECK(req->query.p == req->url.p + req->path.len + 1 &&
              req->query.len == req->url.len - req->path.len - 1);
    else
        CHECK(req->query.len == 0);
    CHECK(req->n_headers <= lim->http_max_headers);
    CHECK(req->head.len <= lim->http_max_head);
    for (size_t i = 0; i < req->n_headers; i++)
        CHECK(inside(req, req->headers[i].name) && inside(req, req->headers[i].value));
    CHECK(req->body.len <= lim->http_max_body);
    CHECK(req->request_id_len > 0 && req->request_id[req->request_id_len] == '\0');
    /* absolute form was rewritten; HTTP/1.1 has its one Host */
    CHECK(!(req->url.len >= 7 &&
            rtmd_str_ieq(rtmd_str_make(req->url.p, 7), RTMD_STR_LIT("http://"))));
    CHECK(!(req->url.len >= 8 &&
            rtmd_str_ieq(rtmd_str_make(req->url.p, 8), RTMD_STR_LIT("https://"))));
    size_t hosts = 0;
    for (size_t i = 0; i < req->n_headers; i++)
        hosts += rtmd_str_ieq(req->headers[i].name, RTMD_STR_LIT("Host"));
    CHECK(hosts <= 1 && (req->http_minor == 0 || hosts == 1));
    /* pipelined requests wait while the client does not read */
    CHECK(req->conn->out_pending <= 64 * 1024);
}

static void answer_now(struct rtmd_http_request *req, char action)
{
    char body[64];
    uint64_t seq = (uint64_t)(uintptr_t)req->data;
    int n = snprintf(body, sizeof(body), "seq=%llu", (unsigned long long)seq);
    switch (action) {
    case 'e': rtmd_http_respond_error(req, 404, "not_found", "no such endpoint"); return;
    case 'w': rtmd_ws_accept(req); return;
    case 'x': {
        struct rtmd_buf b;
        rtmd_buf_init(&b, 8192);
        rtmd_buf_append(&b, body, (size_t)n);
        for (int i = 0; i < 4000; i++)
            rtmd_buf_append_byte(&b, 'x');
        rtmd_http_respond(req, 200, "text/plain",
                          RTMD_STR_LIT("X-Fuzz: 1\r\nCache-Control: no-store\r\n"),
                          rtmd_str_make(b.data, b.len));
        rtmd_buf_free(&b);
        return;
    }
    case 'h': {
        struct rtmd_buf b;
        rtmd_buf_init(&b, 1 << 20);
        rtmd_buf_append_cstr(&b, "host=");
        rtmd_buf_append_str(&b, rtmd_http_header(req, "Host"));
        rtmd_http_respond(req, 200, "text/plain", RTMD_STR_NULL, rtmd_str_make(b.data, b.len));
        rtmd_buf_free(&b);
        return;
    }
    default:
        rtmd_http_respond(req, 200, "text/plain", RTMD_STR_NULL, rtmd_str_make(body, (size_t)n));
        return;
    }
}

static void on_answer(struct rtmd_deferred *d)
{
    struct answer *a = RTMD_CONTAINER_OF(d, struct answer, d);
    if (a->passes-- > 0) {
        rtmd_defer(&a->d, on_answer);
        return;
    }
    answer_now(a->req, a->action);
    answers_pending_--;
    free(a);
}

static void defer_answer(struct rtmd_http_request *req, char action, int passes)
{
    struct answer *a = rtmd_calloc(1, sizeof(*a));
    a->req = req;
    a->action = action;
    a->passes = passes;
    answers_pending_++;
    rtmd_defer(&a->d, on_answer);
}

/* The client goes away while its request is being handled. */
static void on_disconnect(struct rtmd_deferred *d)
{
    free(d);
    if (conn_)
        rtmd_conn_close(&conn_->c);
}

static void on_request(struct rtmd_http_request *req)
{
    check_request(req);
    if (seq_ < HEADS_TRACKED)
        is_head_[seq_] = req->method == HTTP_HEAD;
    req->data = (void *)(uintptr_t)seq_++;
    if (flags_ & 0x10)
        server_.stopping = true;
    char action = req->path.len >= 2 ? req->path.p[1] : '\0';
    switch (action) {
    case 'n':
    case 'e':
    case 'x':
    case 'h':
    case 'w': answer_now(req, action); return;
    case 'd': defer_answer(req, 'n', 0); return;
    case 'D': defer_answer(req, 'n', 1 + (int)below(4)); return;
    case 'W': defer_answer(req, 'w', (int)below(2)); return;
    case 'c': {
        struct rtmd_deferred *d = rtmd_calloc(1, sizeof(*d));
        rtmd_defer(d, on_disconnect);
        defer_answer(req, 'n', 1);
        return;
    }
    default:
        if (rnd() & 1)
            answer_now(req, 'n');
        else
            defer_answer(req, 'n', (int)below(3));
    }
}

/* ---- checking what the client received ------------------------------------------------ */

static long long last_seq_;  /* of the answers checked so far */
static size_t answers_seen_; /* answers checked so far */

static void check_body(const char *head, size_t head_len, const char *body, size_t len)
{
    /* The i-th answer is that of the i-th request handed over (or, after
     * them all, the parser's error answer): only a HEAD's has no length. */
    size_t i = answers_seen_++;
    bool has_length = fuzz_head_value(head, head_len, "\r\nContent-Length: ") != NULL;
    if (i < seq_ && i < HEADS_TRACKED)
        CHECK(has_length == !is_head_[i]);
    if (len >= 4 && memcmp(body, "seq=", 4) == 0) {
        long long s = fuzz_number(body + 4, len - 4);
        CHECK(s > last_seq_); /* answers in request order */
        CHECK(s < (long long)seq_);
        last_seq_ = s;
    }
}

static void check_output(void)
{
    last_seq_ = -1;
    answers_seen_ = 0;
    fuzz_check_responses(&out_, check_body);
}

/* ---- driving ---------------------------------------------------------------------------- */

static void set_limits(unsigned profile)
{
    struct rtmd_limits *l = &cfg_.limits;
    memset(&cfg_, 0, sizeof(cfg_));
    static const uint32_t head[4] = {16384, 128, 1024, 16384};
    static const uint32_t headers[4] = {100, 4, 10, 100};
    static const uint32_t body[4] = {1048576, 32, 512, 64};
    l->http_max_head = head[profile];
    l->http_max_headers = headers[profile];
    l->http_max_body = body[profile];
    l->http_header_timeout_ms = 10000;
    l->http_idle_timeout_s = 60;
    l->ws_max_message = profile == 1 ? 64 : 65536;
    l->heartbeat_timeout_s = 30;
    l->login_timeout_s = 10;
    l->max_connections = 100;
    l->ws_output_budget = 1 << 20;
}

/* The writes so far complete. */
static void drain(void)
{
    if (conn_)
        stub_drain(conn_);
}

/* Between reads: whatever the PRNG says happens in the loop. */
static void events(struct stub_conn **conn)
{
    fuzz_loop_events(conn, (flags_ & 0x80) != 0);
}

static bool answers_owed(void)
{
    return answers_pending_ > 0;
}

/* After the input: the connection must end, with every request answered. */
static void finish(void)
{
    fuzz_end_conn(&conn_, (flags_ >> 5) & 3, answers_owed);
    CHECK(answers_pending_ == 0);
    CHECK(stub_live_ == 0);
    CHECK(server_.n_conns == 0);
    CHECK(ws_open_ == ws_closed_);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_begin(&data, &size, INPUT_MAX))
        return 0;
    set_limits(flags_ & 3);
    seq_ = 0;
    answers_pending_ = 0;
    ws_open_ = ws_closed_ = 0;
    rtmd_ws_init(&cfg_, &echo_handler);
    stub_server_init(&server_, &listener_, &cfg_, on_request);
    rtmd_buf_init(&out_, OUT_MAX);

    fuzz_conn_open(&server_, &listener_, &out_, &conn_);

    feed(&conn_, data, size, 1024, drain, events);
    finish();
    check_output();

    stub_server_close(&server_);
    rtmd_ws_shutdown();
    rtmd_buf_free(&out_);
    return 0;
}
