/*
 * ws.c — WebSocket connections over wslay (see ws.h for the memory model).
 */
#include "net/ws.h"

#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <wslay/wslay.h>

#include "core/alloc.h"
#include "core/log.h"

struct rtmd_ws_conn {
    wslay_event_context_ptr ctx; /* NULL while idle */
    struct rtmd_buf partial;     /* an incomplete frame, only while there is one */
    const char *feed;            /* complete frames being handed to wslay */
    size_t feed_len;
    bool in_message;     /* a fragmented data message is in progress */
    bool in_recv;        /* inside wslay_event_recv */
    bool dead;           /* closed during wslay_event_recv: free afterwards */
    bool heartbeat;      /* frames re-arm the heartbeat (after login); before: the login deadline */
    bool peer_closed;    /* close_code is the peer's */
    uint16_t close_code; /* of the first close frame sent or received; 0: none yet */
};

static const struct rtmd_ws_handler *handler_;
static const struct rtmd_config *cfg_;
static struct rtmd_timeout_queue heartbeat_;
static uint32_t heartbeat_s_;
static struct rtmd_timeout_queue login_;
static wslay_event_context_ptr encoder_;
static struct rtmd_buf *encoder_out_;
static int encoder_err_;

static const struct rtmd_proto ws_proto;

/* ---- frame sizes ------------------------------------------------------------ */

int rtmd_ws_frame_size(const unsigned char *p, size_t n, uint64_t *total)
{
    if (n < 2)
        return 0;
    uint64_t len = p[1] & 0x7f;
    size_t hdr = 2;
    if (len == 126) {
        hdr += 2;
        if (n < hdr)
            return 0;
        len = ((uint64_t)p[2] << 8) | p[3];
    } else if (len == 127) {
        hdr += 8;
        if (n < hdr)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | p[2 + i];
        if (len >> 63)
            return -1;
    }
    if (p[1] & 0x80)
        hdr += 4;
    *total = hdr + len;
    return 1;
}

/* ---- the wslay context of a connection --------------------------------------- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    struct rtmd_conn *c = user;
    struct rtmd_ws_conn *ws = c->p.ws;
    if (ws->feed_len == 0 || rtmd_conn_ending(c)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = RTMD_MIN(len, ws->feed_len);
    memcpy(buf, ws->feed, n);
    ws->feed += n;
    ws->feed_len -= n;
    return (ssize_t)n;
}

/* Control frames wslay writes (pongs, close replies): buffered, so the pongs
 * of a read full of pings go out as one write. */
static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)flags;
    struct rtmd_conn *c = user;
    if (rtmd_conn_write_buffered(c, data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void on_msg_recv(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                        void *user)
{
    (void)ctx;
    struct rtmd_conn *c = user;
    if (rtmd_conn_ending(c))
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
        handler_->on_message(c, (const char *)arg->msg, arg->msg_length);
}

static const struct wslay_event_callbacks conn_callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .on_msg_recv_callback = on_msg_recv,
};

static int ensure_ctx(struct rtmd_conn *c)
{
    struct rtmd_ws_conn *ws = c->p.ws;
    if (ws->ctx)
        return 0;
    if (wslay_event_context_server_init(&ws->ctx, &conn_callbacks, c) != 0) {
        ws->ctx = NULL;
        return -ENOMEM;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, cfg_->limits.ws_max_message);
    return 0;
}

static void release_ctx_if_idle(struct rtmd_ws_conn *ws)
{
    if (ws->ctx && !ws->in_message && wslay_event_get_queued_msg_count(ws->ctx) == 0) {
        wslay_event_context_free(ws->ctx);
        ws->ctx = NULL;
    }
}

/* Output the peer's own frames caused (pongs, replies) counts against
 * ws_output_budget like any other: past it the peer is not read until it
 * has read everything (so it makes no more), and if its deadline (login or
 * heartbeat: nothing it sends is read meanwhile) passes first, the handler
 * cuts it off (rtmd_conn_output_paused() tells it why). */
static void check_output(struct rtmd_conn *c)
{
    if (rtmd_conn_output_paused(c) || rtmd_conn_ending(c) ||
        rtmd_conn_unsent(c) <= cfg_->limits.ws_output_budget)
        return;
    rtmd_log_debug("ws", "conn=%llu %zu bytes unsent, over its output budget: not reading",
                   (unsigned long long)c->id, rtmd_conn_unsent(c));
    rtmd_conn_pause_output(c);
}

static void ws_free(struct rtmd_ws_conn *ws)
{
    if (ws->ctx)
        wslay_event_context_free(ws->ctx);
    rtmd_buf_free(&ws->partial);
    free(ws);
}

/* Hands complete frames to wslay and acts on what it decided. */
static void feed(struct rtmd_conn *c, const char *p, size_t n)
{
    struct rtmd_ws_conn *ws = c->p.ws;
    if (ensure_ctx(c) < 0) {
        rtmd_conn_close(c);
        return;
    }
    rtmd_ws_touch(c);
    ws->feed = p;
    ws->feed_len = n;
    /* in_recv brackets every wslay call on ctx: a write that fails inside
     * wslay_event_send() closes the connection too, and ctx must outlive
     * that call as well. */
    ws->in_recv = true;
    int r = wslay_event_recv(ws->ctx);
    ws->feed = NULL;
    ws->feed_len = 0;
    int sr = 0;
    if (!rtmd_conn_ending(c))
        sr = wslay_event_send(ws->ctx); /* pongs, close replies, the close for a violation */
    ws->in_recv = false;
    if (!ws->close_code && wslay_event_get_close_received(ws->ctx)) {
        ws->close_code = wslay_event_get_status_code_received(ws->ctx);
        ws->peer_closed = true;
    } else if (!ws->close_code && wslay_event_get_close_sent(ws->ctx)) {
        ws->close_code = wslay_event_get_status_code_sent(ws->ctx);
    }
    if (ws->dead) {
        ws_free(ws);
        c->p.ws = NULL;
        return;
    }
    if (rtmd_conn_ending(c))
        return;
    if ((r != 0 || sr != 0) && !wslay_event_get_close_sent(ws->ctx)) {
        rtmd_ws_close(c, RTMD_WS_CLOSE_PROTOCOL, "protocol error");
        return;
    }
    if (r != 0 || wslay_event_get_close_received(ws->ctx) || wslay_event_get_close_sent(ws->ctx) ||
        !wslay_event_want_read(ws->ctx)) {
        /* The peer closed, or broke the protocol and wslay sent a close. */
        rtmd_conn_close_gracefully(c);
        return;
    }
    release_ctx_if_idle(ws);
    check_output(c);
}

/* Updates in_message from the frame headers of p (complete frames only) and
 * returns how many bytes of whole frames precede the first control frame
 * that breaks RFC 6455 §5.5 (fragmented, over 125 bytes, or a close with a
 * 1-byte body); that frame is answered with close 1002. */
static size_t track_fragments(struct rtmd_ws_conn *ws, const unsigned char *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        uint64_t total;
        if (rtmd_ws_frame_size(p + off, n - off, &total) != 1)
            return n;
        unsigned op = p[off] & 0x0f;
        bool fin = (p[off] & 0x80) != 0;
        unsigned len7 = p[off + 1] & 0x7f;
        if (op >= 8 && (!fin || len7 > 125 || (op == 8 && len7 == 1)))
            return off;
        if (op < 8) /* data or continuation frame */
            ws->in_message = !fin;
        off += (size_t)total;
    }
    return n;
}

static void too_big(struct rtmd_conn *c)
{
    rtmd_ws_close(c, RTMD_WS_CLOSE_TOO_BIG, "message too big");
}

static void ws_on_data(struct rtmd_conn *c, const char *p, size_t n)
{
    struct rtmd_ws_conn *ws = c->p.ws;
    uint64_t max_frame = (uint64_t)cfg_->limits.ws_max_message + 14;
    uint64_t total;
    int r;

    /* First complete a frame left partial by an earlier read. */
    while (ws->partial.len > 0 && n > 0) {
        r = rtmd_ws_frame_size((const unsigned char *)ws->partial.data, ws->partial.len, &total);
        if (r < 0 || (r == 1 && total > max_frame)) {
            too_big(c);
            return;
        }
        size_t want = r == 0 ? 1 : (size_t)(total - ws->partial.len);
        size_t take = RTMD_MIN(want, n);
        if (rtmd_buf_append(&ws->partial, p, take) < 0) {
            too_big(c);
            return;
        }
        p += take;
        n -= take;
        if (r == 1 && ws->partial.len == total) {
            if (track_fragments(ws, (const unsigned char *)ws->partial.data, ws->partial.len) <
                ws->partial.len) {
                rtmd_ws_close(c, RTMD_WS_CLOSE_PROTOCOL, "bad control frame");
                return;
            }
            struct rtmd_buf frame = ws->partial;
            rtmd_buf_init(&ws->partial, max_frame);
            feed(c, frame.data, frame.len);
            rtmd_buf_free(&frame);
            if (rtmd_conn_ending(c) || c->p.ws != ws)
                return;
        }
    }
    if (n == 0)
        return;

    /* Then every complete frame in this read, handed over at once. */
    size_t complete = 0;
    for (;;) {
        r = rtmd_ws_frame_size((const unsigned char *)p + complete, n - complete, &total);
        if (r < 0 || (r == 1 && total > max_frame)) {
            /* Feed what came before, then refuse this frame. */
            n = complete;
            break;
        }
        if (r == 0 || total > n - complete)
            break;
        complete += (size_t)total;
    }
    if (complete > 0) {
        size_t good = track_fragments(ws, (const unsigned char *)p, complete);
        if (good > 0)
            feed(c, p, good);
        if (good < complete) {
            if (!rtmd_conn_ending(c) && c->p.ws == ws)
                rtmd_ws_close(c, RTMD_WS_CLOSE_PROTOCOL, "bad control frame");
            return;
        }
        if (rtmd_conn_ending(c) || c->p.ws != ws)
            return;
    }
    if (r < 0 || (r == 1 && total > max_frame)) {
        too_big(c);
        return;
    }
    if (complete < n && rtmd_buf_append(&ws->partial, p + complete, n - complete) < 0)
        too_big(c);
}

/* ---- connection hooks ------------------------------------------------------- */

static void ws_on_eof(struct rtmd_conn *c)
{
    rtmd_conn_close(c);
}

static void ws_on_drain(struct rtmd_conn *c)
{
    if (handler_->on_drain)
        handler_->on_drain(c);
}

static void ws_on_close(struct rtmd_conn *c)
{
    struct rtmd_ws_conn *ws = c->p.ws;
    handler_->on_close(c);
    if (ws->in_recv) {
        ws->dead = true; /* freed when wslay_event_recv returns */
        return;
    }
    ws_free(ws);
    c->p.ws = NULL;
}

static void ws_on_timeout(struct rtmd_conn *c)
{
    handler_->on_timeout(c);
}

static void ws_on_going_away(struct rtmd_conn *c)
{
    if (handler_->on_going_away)
        handler_->on_going_away(c);
    else
        rtmd_ws_close(c, RTMD_WS_CLOSE_GOING_AWAY, "going away");
}

static const struct rtmd_proto ws_proto = {
    .name = "ws",
    .on_data = ws_on_data,
    .on_eof = ws_on_eof,
    .on_drain = ws_on_drain,
    .on_close = ws_on_close,
    .on_timeout = ws_on_timeout,
    .on_going_away = ws_on_going_away,
};

static void on_deadline(struct rtmd_timeout *t)
{
    struct rtmd_conn *c = RTMD_CONTAINER_OF(t, struct rtmd_conn, timeout);
    if (c->proto && c->proto->on_timeout)
        c->proto->on_timeout(c);
}

void rtmd_ws_touch(struct rtmd_conn *c)
{
    struct rtmd_ws_conn *ws = c->p.ws;
    if (ws && ws->heartbeat && !rtmd_conn_ending(c))
        rtmd_conn_arm_timeout(c, &heartbeat_);
}

uint32_t rtmd_ws_heartbeat_timeout_s(void)
{
    return heartbeat_s_;
}

bool rtmd_ws_heartbeat_started(const struct rtmd_conn *c)
{
    return c->p.ws && c->p.ws->heartbeat;
}

void rtmd_ws_start_heartbeat(struct rtmd_conn *c)
{
    struct rtmd_ws_conn *ws = c->p.ws;
    if (!ws || ws->heartbeat)
        return;
    ws->heartbeat = true;
    rtmd_ws_touch(c);
}

/* ---- the handshake ----------------------------------------------------------- */

/* Whether the comma-separated list v (spaces around items) holds token;
 * ASCII case ignored when icase. */
static bool list_has_token(struct rtmd_str v, const char *token, bool icase)
{
    struct rtmd_str t = rtmd_str_cstr(token);
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
            i++;
        size_t start = i;
        while (i < v.len && v.p[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v.p[end - 1] == ' ' || v.p[end - 1] == '\t'))
            end--;
        struct rtmd_str item = rtmd_str_make(v.p + start, end - start);
        if (icase ? rtmd_str_ieq(item, t) : rtmd_str_eq(item, t))
            return true;
    }
    return false;
}

static bool header_has_token(struct rtmd_str v, const char *token)
{
    return list_has_token(v, token, true);
}

int rtmd_ws_subprotocol(const struct rtmd_http_request *req)
{
    struct rtmd_str name = RTMD_STR_LIT("Sec-WebSocket-Protocol");
    int offered = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        if (!rtmd_str_ieq(req->headers[i].name, name))
            continue;
        if (list_has_token(req->headers[i].value, RTMD_WS_SUBPROTOCOL, false))
            return 1;
        offered = -1;
    }
    return offered;
}

void rtmd_ws_accept(struct rtmd_http_request *req)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    struct rtmd_str upgrade = rtmd_http_header(req, "Upgrade");
    struct rtmd_str connection = rtmd_http_header(req, "Connection");
    struct rtmd_str key = rtmd_http_header(req, "Sec-WebSocket-Key");
    struct rtmd_str version = rtmd_http_header(req, "Sec-WebSocket-Version");

    if (!upgrade.p || !header_has_token(upgrade, "websocket") ||
        !header_has_token(connection, "upgrade")) {
        rtmd_http_respond_error_headers(req, 426, "upgrade_required", "connect with WebSocket",
                                        RTMD_STR_LIT("Upgrade: websocket\r\n"));
        return;
    }
    if (req->method != HTTP_GET || req->http_major != 1 || req->http_minor < 1) {
        rtmd_http_respond_error(req, 400, "bad_request", "WebSocket needs GET over HTTP/1.1");
        return;
    }
    if (!rtmd_str_eq_cstr(version, "13")) {
        rtmd_http_respond_error_headers(req, 400, "bad_request", "unsupported WebSocket version",
                                        RTMD_STR_LIT("Sec-WebSocket-Version: 13\r\n"));
        return;
    }
    if (req->conn && req->conn->server->stopping) { /* draining: no new sessions */
        rtmd_http_respond_error_headers(req, 503, "unavailable", "the server is shutting down",
                                        RTMD_STR_LIT("Retry-After: 1\r\n"));
        return;
    }
    /* The key is 16 random bytes in base64: 24 characters. */
    unsigned char raw[32];
    if (key.len != 24 || EVP_DecodeBlock(raw, (const unsigned char *)key.p, 24) != 18) {
        rtmd_http_respond_error(req, 400, "bad_request", "bad Sec-WebSocket-Key");
        return;
    }
    /* A page that offers subprotocols fails its own handshake when the
     * answer names none of them: say why instead. */
    int subprotocol = rtmd_ws_subprotocol(req);
    if (subprotocol < 0) {
        rtmd_http_respond_error(req, 400, "unsupported_subprotocol",
                                "this server speaks the WebSocket subprotocol " RTMD_WS_SUBPROTOCOL
                                " only: offer it (Sec-WebSocket-Protocol: " RTMD_WS_SUBPROTOCOL
                                ") or none");
        return;
    }
    /* A browser names the page that opens the socket; a page of another
     * site could otherwise open sessions in the user's name. Clients that
     * are not browsers send no Origin. */
    struct rtmd_str origin = rtmd_http_header(req, "Origin");
    if (origin.p && !rtmd_origins_match(&cfg_->allowed_origins, origin)) {
        char q[96];
        rtmd_log_warn("ws", "conn=%llu upgrade refused: Origin %s is not in allowed_origins",
                      (unsigned long long)req->conn->id, rtmd_log_quote(q, sizeof(q), origin));
        rtmd_http_respond_error(req, 403, "origin_not_allowed",
                                "pages of this origin may not open a session (it is not in "
                                "[server] allowed_origins)");
        return;
    }
    char material[24 + sizeof(guid)];
    memcpy(material, key.p, 24);
    memcpy(material + 24, guid, sizeof(guid) - 1);
    unsigned char digest[SHA_DIGEST_LENGTH];
    unsigned int dlen = 0;
    EVP_Digest(material, 24 + sizeof(guid) - 1, digest, &dlen, EVP_sha1(), NULL);
    char accept[32];
    EVP_EncodeBlock((unsigned char *)accept, digest, SHA_DIGEST_LENGTH);

    char response[256];
    int rn = snprintf(response, sizeof(response),
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                      accept,
                      subprotocol > 0 ? "Sec-WebSocket-Protocol: " RTMD_WS_SUBPROTOCOL "\r\n" : "");
    struct rtmd_conn *c = req->conn;
    struct rtmd_buf leftover;
    rtmd_buf_init(&leftover, 0);
    if (rtmd_http_upgrade(req, rtmd_str_make(response, (size_t)rn), &leftover) < 0) {
        rtmd_buf_free(&leftover);
        return;
    }
    struct rtmd_ws_conn *ws = rtmd_calloc(1, sizeof(*ws));
    rtmd_buf_init(&ws->partial, (size_t)cfg_->limits.ws_max_message + 14);
    c->p.ws = ws;
    rtmd_conn_set_proto(c, &ws_proto);
    rtmd_conn_arm_timeout(c, &login_); /* frames do not extend it */
    rtmd_conn_ref(c);
    handler_->on_open(handler_->ctx, c);
    if (!rtmd_conn_closing(c) && leftover.len)
        ws_on_data(c, leftover.data, leftover.len);
    rtmd_conn_unref(c);
    rtmd_buf_free(&leftover);
}

/* ---- sending ------------------------------------------------------------------- */

static ssize_t encoder_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                               int flags, void *user)
{
    (void)ctx;
    (void)flags;
    (void)user;
    if (!encoder_err_)
        encoder_err_ = rtmd_buf_append(encoder_out_, data, len);
    return (ssize_t)len;
}

static ssize_t encoder_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                               void *user)
{
    (void)buf;
    (void)len;
    (void)flags;
    (void)user;
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
}

static const struct wslay_event_callbacks encoder_callbacks = {
    .recv_callback = encoder_recv_cb,
    .send_callback = encoder_send_cb,
};

int rtmd_ws_frame_text(struct rtmd_buf *out, const char *p, size_t n)
{
    struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)p, n};
    encoder_out_ = out;
    encoder_err_ = 0;
    if (wslay_event_queue_msg(encoder_, &msg) != 0)
        return -ENOMEM;
    if (wslay_event_send(encoder_) != 0)
        return -EIO;
    return encoder_err_;
}

int rtmd_ws_send_text(struct rtmd_conn *c, const char *p, size_t n)
{
    static struct rtmd_buf frame = {NULL, 0, 0, SIZE_MAX};
    if (rtmd_conn_ending(c))
        return RTMD_ECLOSED;
    rtmd_buf_reset(&frame);
    int r = rtmd_ws_frame_text(&frame, p, n);
    if (r == 0)
        r = rtmd_conn_write(c, frame.data, frame.len);
    if (frame.cap > 256 * 1024) /* do not keep a huge buffer around */
        rtmd_buf_free(&frame);
    if (r == 0)
        check_output(c);
    return r;
}

uint16_t rtmd_ws_close_code(const struct rtmd_conn *c, bool *by_peer)
{
    const struct rtmd_ws_conn *ws = c->proto == &ws_proto ? c->p.ws : NULL;
    *by_peer = ws && ws->close_code && ws->peer_closed;
    return ws && ws->close_code ? ws->close_code : RTMD_WS_CLOSE_ABNORMAL;
}

void rtmd_ws_close(struct rtmd_conn *c, uint16_t code, const char *reason)
{
    if (rtmd_conn_ending(c))
        return;
    if (c->proto == &ws_proto && c->p.ws && !c->p.ws->close_code)
        c->p.ws->close_code = code;
    if (handler_->on_closing) {
        rtmd_conn_ref(c);
        handler_->on_closing(c, code, reason);
        bool gone = rtmd_conn_ending(c);
        rtmd_conn_unref(c);
        if (gone)
            return;
    }
    /* A throwaway context frames the close; the connection's own context (if
     * any) may be inside wslay_event_recv right now. */
    wslay_event_context_ptr ctx;
    static struct rtmd_buf frame = {NULL, 0, 0, 256};
    rtmd_buf_reset(&frame);
    if (wslay_event_context_server_init(&ctx, &encoder_callbacks, NULL) == 0) {
        encoder_out_ = &frame;
        encoder_err_ = 0;
        wslay_event_queue_close(ctx, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
        wslay_event_send(ctx);
        wslay_event_context_free(ctx);
        if (!encoder_err_)
            rtmd_conn_write(c, frame.data, frame.len);
    }
    rtmd_conn_close_gracefully(c);
}

/* ---- setup -------------------------------------------------------------------------- */

void rtmd_ws_init(const struct rtmd_config *cfg, const struct rtmd_ws_handler *handler)
{
    cfg_ = cfg;
    handler_ = handler;
    heartbeat_s_ = cfg->limits.heartbeat_timeout_s;
    rtmd_timeout_queue_init(&heartbeat_, (uint64_t)cfg->limits.heartbeat_timeout_s * 1000,
                            on_deadline);
    rtmd_timeout_queue_init(&login_, (uint64_t)cfg->limits.login_timeout_s * 1000, on_deadline);
    if (wslay_event_context_server_init(&encoder_, &encoder_callbacks, NULL) != 0)
        abort();
}

void rtmd_ws_shutdown(void)
{
    rtmd_timeout_queue_close(&heartbeat_);
    rtmd_timeout_queue_close(&login_);
    if (encoder_) {
        wslay_event_context_free(encoder_);
        encoder_ = NULL;
    }
}
