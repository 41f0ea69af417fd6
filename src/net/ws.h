/*
 * ws.h — WebSocket (RFC 6455) connections, framed by wslay.
 *
 * Memory: a wslay event context costs about 8.5 KB (two 4 KB buffers), far
 * more than rtmd's budget of 4 KB per idle connection. So a connection holds
 * a wslay context only while it has work: ws.c hands wslay complete frames
 * only (it reads the frame length from the header — 2 to 14 bytes — and
 * keeps a partial frame in a buffer of its own, allocated only while a frame
 * is partial), and frees the context again whenever wslay has nothing
 * buffered: no fragmented message in progress and nothing queued to send.
 * wslay still does all the framing work: unmasking, validation (masking,
 * opcodes, reserved bits, UTF-8 of text frames, close codes), control frames,
 * ping → pong, message size limit (close 1009).
 *
 * Outgoing messages are framed once by a loop-wide wslay context
 * (rtmd_ws_frame_text) and written as bytes, so a channel message is framed
 * once for all of its receivers.
 *
 * Frames larger than limits.ws_max_message are refused with close 1009
 * before they are buffered.
 *
 * Deadlines: a new WebSocket has login_timeout_s from its upgrade, which no
 * frame extends; once the handler calls rtmd_ws_start_heartbeat() (the
 * client logged in), any frame re-arms heartbeat_timeout_s. Either passing
 * calls the handler's on_timeout.
 *
 * Output budget: when what rtmd owes a peer (rtmd_conn_unsent) passes
 * limits.ws_output_budget after its frames were handled or a text was sent
 * to it, the peer is not read until it has read all of it; its frames (and
 * the pongs they would cause) wait in the kernel, and its deadline runs on.
 */
#ifndef RTMD_NET_WS_H
#define RTMD_NET_WS_H

#include "core/buf.h"
#include "net/conn.h"
#include "net/http.h"

#define RTMD_WS_CLOSE_NORMAL     1000
#define RTMD_WS_CLOSE_GOING_AWAY 1001
#define RTMD_WS_CLOSE_PROTOCOL   1002
#define RTMD_WS_CLOSE_POLICY     1008
#define RTMD_WS_CLOSE_TOO_BIG    1009
#define RTMD_WS_CLOSE_ERROR      1011
#define RTMD_WS_CLOSE_ABNORMAL   1006 /* no close frame (never sent on the wire) */

struct rtmd_ws_handler {
    void *ctx; /* handed to on_open (which sets c->user for the others) */
    /* The connection just became a WebSocket. */
    void (*on_open)(void *ctx, struct rtmd_conn *c);
    /* One complete text (or binary) message. */
    void (*on_message)(struct rtmd_conn *c, const char *p, size_t n);
    /* Queued output was written (backpressure relief). */
    void (*on_drain)(struct rtmd_conn *c);
    /* The login deadline or the heartbeat passed (rtmd_conn_output_paused()
     * tells whether the peer had stopped reading too). */
    void (*on_timeout)(struct rtmd_conn *c);
    /* rtmd is about to send a close frame (rtmd_ws_close, for any reason):
     * the last moment to write to the peer. May be NULL. */
    void (*on_closing)(struct rtmd_conn *c, uint16_t code, const char *reason);
    /* The connection is closing, for any reason. */
    void (*on_close)(struct rtmd_conn *c);
    /* The server drains (SIGTERM): close with 1001 once what is in flight
     * is answered. NULL: rtmd_ws_close(c, 1001, "going away") at once. */
    void (*on_going_away)(struct rtmd_conn *c);
};

void rtmd_ws_init(const struct rtmd_config *cfg, const struct rtmd_ws_handler *handler);
void rtmd_ws_shutdown(void);

/* Validates a WebSocket upgrade request and switches its connection over, or
 * answers it with 400/426. */
void rtmd_ws_accept(struct rtmd_http_request *req);

/* Frames one text message (server frames are not masked); appends to out. */
int rtmd_ws_frame_text(struct rtmd_buf *out, const char *p, size_t n);
/* Frames and sends one text message. */
int rtmd_ws_send_text(struct rtmd_conn *c, const char *p, size_t n);
/* Sends a close frame, then closes the connection gracefully. */
void rtmd_ws_close(struct rtmd_conn *c, uint16_t code, const char *reason);

/* The code of the connection's first close frame, sent or received
 * (*by_peer tells which; a peer's close without a code is 1005), or 1006
 * when none was (the connection dropped). */
uint16_t rtmd_ws_close_code(const struct rtmd_conn *c, bool *by_peer);

/* The heartbeat: any frame re-arms it, once started. */
void rtmd_ws_touch(struct rtmd_conn *c);
/* The client logged in: the login deadline gives way to the heartbeat. */
void rtmd_ws_start_heartbeat(struct rtmd_conn *c);
bool rtmd_ws_heartbeat_started(const struct rtmd_conn *c);
/* heartbeat_timeout_s in effect (fixed at start: a reload does not change it). */
uint32_t rtmd_ws_heartbeat_timeout_s(void);

/* The one subprotocol rtmd speaks (Sec-WebSocket-Protocol). */
#define RTMD_WS_SUBPROTOCOL "rtm.v1"

/* What the upgrade request offers in its Sec-WebSocket-Protocol header
 * lines (all of them, each a comma-separated list of tokens, compared
 * case-sensitively as RFC 6455 §4.1 has it): 1 when one of them is
 * RTMD_WS_SUBPROTOCOL, 0 when the request has no such header, -1 when it
 * offers only others (or an empty list). */
int rtmd_ws_subprotocol(const struct rtmd_http_request *req);

/* For tests and the fuzz driver: bytes a header announces in total
 * (header + payload). 0: need more bytes; 1: *total set; -1: invalid. */
int rtmd_ws_frame_size(const unsigned char *p, size_t n, uint64_t *total);

#endif
