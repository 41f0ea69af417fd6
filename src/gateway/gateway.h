/*
 * gateway.h — the client protocol of SPEC §4 over WebSocket.
 *
 * One JSON object per frame; every request has an "op" and an integer "id"
 * and gets exactly one reply, {"op":"reply","id":N,"ok":true,...} or
 * {"op":"reply","id":N,"ok":false,"error":"<code>","message":"..."} — a bad
 * request gets an error reply, never a dropped connection. Ops run one at a
 * time per connection in arrival order: while one waits for the store (a
 * login is answered only once its Login event is durable), later frames wait
 * in a small queue and reading pauses when it fills.
 *
 * Files: gateway.c (frames → ops, replies, connection lifecycle, the queue),
 * session_ops.c (login, logout, ping), channel_ops.c (join, leave).
 */
#ifndef RTMD_GATEWAY_GATEWAY_H
#define RTMD_GATEWAY_GATEWAY_H

#include "core/config.h"
#include "net/ws.h"
#include "store/store.h"

int rtmd_gateway_init(const struct rtmd_config *cfg, struct rtmd_store *store);
void rtmd_gateway_shutdown(void);
/* The WebSocket handler to pass to rtmd_ws_init(). */
extern const struct rtmd_ws_handler rtmd_gateway_ws_handler;

#endif
