/*
 * gateway.h — the client protocol (docs/API.md) over WebSocket.
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
 * session_ops.c (login, logout, ping), channel_ops.c (join, leave),
 * message_ops.c (peer, publish, ack: through messaging/), deliver.c (pushes
 * to this node's clients: the delivery table messaging calls, member
 * events, fan-out).
 */
#ifndef RTMD_GATEWAY_GATEWAY_H
#define RTMD_GATEWAY_GATEWAY_H

#include "core/buf.h"
#include "core/config.h"
#include "core/list.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "messaging/messaging.h"
#include "net/ws.h"
#include "store/store.h"

/* The gateway's context: what its files share, passed explicitly (each
 * client points to it). Owned by main. */
struct rtmd_gateway {
    const struct rtmd_config *cfg;
    struct rtmd_store *store;
    struct rtmd_messaging *messaging;
    struct rtmd_ws_handler ws_handler; /* to pass to rtmd_ws_init() */
    struct rtmd_buf out;               /* replies are written at once */
    /* deliver.c: pushes framed once, fan-out jobs run in bounded passes */
    struct rtmd_buf json, framed;
    struct rtmd_list jobs;
    struct rtmd_deferred run;
    bool run_scheduled;
    bool initialized;
    bool draining; /* SIGTERM: clients are being closed with 1001 */
    /* for /metrics */
    uint64_t pushes;   /* pushes written by fan-out and peer delivery */
    uint64_t cut_offs; /* clients disconnected for passing ws_output_budget */
    /* from a message reaching delivery to its push written to a receiver's
     * connection (one observation per push) */
    struct rtmd_histogram push_duration;
};

/* Sets up gw (and presence); registers this node's delivery with messaging. */
int rtmd_gateway_init(struct rtmd_gateway *gw, const struct rtmd_config *cfg,
                      struct rtmd_store *store, struct rtmd_messaging *messaging);
/* Shutdown, first step: answers every pending wait for an ack (408) while
 * the connections can still carry the answers. */
void rtmd_gateway_stop(struct rtmd_gateway *gw);
void rtmd_gateway_shutdown(struct rtmd_gateway *gw);
/* A reload removed app: ends every session of it on this node (Leave and
 * Logout recorded; the client gets {"op":"kicked","reason":"app_removed"}
 * and close 1008). Returns how many. */
size_t rtmd_gateway_end_app(struct rtmd_gateway *gw, const struct rtmd_app *app);

#endif
