/*
 * gateway.h — the client protocol of SPEC §4 over WebSocket.
 *
 * One JSON object per frame; every request has an "op" and an integer "id"
 * and gets exactly one reply, {"op":"reply","id":N,"ok":true,...} or
 * {"op":"reply","id":N,"ok":false,"error":"<code>","message":"..."} — a bad
 * request gets an error reply, never a dropped connection. Ops run one at a
 * time per connection in arrival order: while one waits for the store (a
 * login is answered only once its Login event is durable), later frames wait
 * in a small queue and reading pauses when it fills. When rtmd closes a
 * connection (logout, takeover, timeouts, a protocol error), the ops not
 * answered yet get error replies first ("superseded" after a takeover,
 * "closing" otherwise), then the close frame.
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
/* Shutdown, first step: answers every pending wait for an ack (408) while
 * the connections can still carry the answers. */
void rtmd_gateway_stop(void);
void rtmd_gateway_shutdown(void);
/* The WebSocket handler to pass to rtmd_ws_init(). */
extern const struct rtmd_ws_handler rtmd_gateway_ws_handler;

/*
 * Delivery to clients on this node (deliver.c), for the REST send API and
 * the client ops alike.
 */
uint64_t rtmd_gateway_next_mid(void);
/* Pushes {"op":"peer_message","mid":..} to `to` if it is online here; false
 * when it is not (the caller decides about offline storage). */
bool rtmd_gateway_deliver_peer(const struct rtmd_app *app, struct rtmd_str from, struct rtmd_str to,
                               struct rtmd_str payload, uint64_t ms, uint64_t *mid_out);
/* Pushes {"op":"channel_message",..} to every member except `from`'s
 * session; returns how many receivers it is sent to. */
size_t rtmd_gateway_deliver_channel(const struct rtmd_app *app, struct rtmd_str channel,
                                    struct rtmd_str from, struct rtmd_str payload, uint64_t ms);
/* The uids a channel message from `from` goes to, as views into the
 * sessions (valid until the caller returns to the loop); *out is freed by
 * the caller. */
size_t rtmd_gateway_channel_recipients(const struct rtmd_app *app, struct rtmd_str channel,
                                       struct rtmd_str from, struct rtmd_str **out);
/* Calls cb(arg, 0) when receiver acks mid, or cb(arg, -ETIMEDOUT) after
 * limits.peer_ack_timeout_ms. */
int rtmd_gateway_wait_ack(uint64_t mid, const struct rtmd_app *app, struct rtmd_str receiver,
                          void (*cb)(void *arg, int status), void *arg);
/* Pushes delivered by fan-out and peer delivery (for /metrics). */
uint64_t rtmd_gateway_pushes(void);
/* Clients disconnected for passing ws_output_budget (for /metrics). */
uint64_t rtmd_gateway_cut_offs(void);

#endif
