/*
 * api.h — the vendor REST API (Agora-compatible) and the operational endpoints.
 *
 *   GET  /healthz                                          health.c
 *   GET  /readyz                                           health.c
 *   GET  /metrics  (Basic auth; none on admin_listen)      health.c
 *   OPTIONS on a REST path (CORS preflight)                cors.c
 *   GET  /v1/rtm  (WebSocket upgrade)                      → gateway
 *   GET  /dev/v2/project/{appid}/rtm/vendor/user_events    events.c
 *   GET  /dev/v2/project/{appid}/rtm/vendor/channel_events events.c
 *   POST .../rtm/users/{uid}/peer_messages[?wait_for_ack=]   messages.c
 *   POST .../rtm/users/{uid}/channel_messages                messages.c
 *   POST .../rtm/message/history/query                       history.c
 *   GET  .../rtm/message/history/query/{handle}              history.c
 *   GET  .../rtm/message/history/count?...                   history.c
 *   GET  /dashboard/...  (the live dashboard; dashboard.h)   dashboard.c
 *
 * Every vendor request goes: route (404/405) → app (400 malformed, 404
 * unknown) → credentials (401) → the endpoint's rate bucket through the
 * store (429; nothing consumed) → the endpoint. The admin listener serves
 * /healthz, /readyz and /metrics only. Every JSON answer has its
 * keys in alphabetical order and carries request_id (also X-Request-ID).
 */
#ifndef RTMD_API_API_H
#define RTMD_API_API_H

#include "api/pins.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/metrics.h"
#include "gateway/gateway.h"
#include "messaging/messaging.h"
#include "net/conn.h"
#include "net/http.h"
#include "store/store.h"

struct rtmd_webhooks;

/* Answers counted for /metrics, by these codes. */
#define RTMD_API_COUNTED_CODES 14
/* Routes timed for /metrics: the vendor routes, /v1/rtm, /healthz,
 * /readyz, /metrics, the static files, the dashboard and everything else. */
#define RTMD_API_ROUTES 17

/* The API's context: what its files share, passed explicitly (each call
 * points to it; rtmd_api_handle finds it in server->request_ctx, which main
 * gives rtmd_server_start()). Owned by main. */
struct rtmd_api {
    const struct rtmd_config *cfg;
    struct rtmd_store *store;
    struct rtmd_server *server;
    struct rtmd_messaging *messaging;
    const struct rtmd_gateway *gateway; /* its counters, for /metrics */
    struct rtmd_history_pins pins;      /* retention cut-offs per history filter */
    struct rtmd_buf body;               /* answers are written at once */
    uint64_t status[6];                 /* answers by class: 1xx..5xx at [1..5] */
    uint64_t by_code[RTMD_API_COUNTED_CODES];
    struct rtmd_histogram latency[RTMD_API_ROUTES]; /* by route: dispatch to answer */
    struct rtmd_dashboard *dashboard;               /* api/dashboard.c's */
    /* The webhooks, for /metrics; NULL: none (main sets it after init). */
    const struct rtmd_webhooks *webhooks;
};

int rtmd_api_init(struct rtmd_api *api, const struct rtmd_config *cfg, struct rtmd_store *store,
                  struct rtmd_server *server, struct rtmd_messaging *messaging,
                  const struct rtmd_gateway *gateway);
void rtmd_api_shutdown(struct rtmd_api *api);
/* The server's request handler (the API is server->request_ctx). */
void rtmd_api_handle(struct rtmd_http_request *req);

#endif
