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
 * before they are buffered. No frame for heartbeat_timeout_s calls the
 * handler's on_timeout.
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

struct rtmd_ws_handler {
    /* The connection just became a WebSocket. */
    void (*on_open)(struct rtmd_conn *c);
    /* One complete text (or binary) message. */
    void (*on_message)(struct rtmd_conn *c, const char *p, size_t n);
    /* Queued output was written (backpressure relief). */
    void (*on_drain)(struct rtmd_conn *c);
    /* No frame for heartbeat_timeout_s. */
    void (*on_timeout)(struct rtmd_conn *c);
    /* The connection is closing, for any reason. */
    void (*on_close)(struct rtmd_conn *c);
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

/* The heartbeat: any frame re-arms it. */
void rtmd_ws_touch(struct rtmd_conn *c);

/* For tests and the fuzz driver: bytes a header announces in total
 * (header + payload). 0: need more bytes; 1: *total set; -1: invalid. */
int rtmd_ws_frame_size(const unsigned char *p, size_t n, uint64_t *total);

#endif
