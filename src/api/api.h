/*
 * api.h — the vendor REST API (SPEC §3) and the operational endpoints.
 *
 *   GET  /healthz                                          health.c
 *   GET  /metrics                                          health.c
 *   GET  /v1/rtm  (WebSocket upgrade)                      → gateway
 *   GET  /dev/v2/project/{appid}/rtm/vendor/user_events    events.c
 *   GET  /dev/v2/project/{appid}/rtm/vendor/channel_events events.c
 *   POST .../rtm/users/{uid}/peer_messages[?wait_for_ack=]   messages.c
 *   POST .../rtm/users/{uid}/channel_messages                messages.c
 *   POST .../rtm/message/history/query                       history.c
 *   GET  .../rtm/message/history/query/{handle}              history.c
 *   GET  .../rtm/message/history/count?...                   history.c
 *
 * Every vendor request goes: route (404/405) → app (400 malformed, 404
 * unknown) → credentials (401) → the endpoint's rate bucket through the
 * store (429; nothing consumed) → the endpoint. Every JSON answer has its
 * keys in alphabetical order and carries request_id (also X-Request-ID).
 */
#ifndef RTMD_API_API_H
#define RTMD_API_API_H

#include "core/config.h"
#include "net/conn.h"
#include "net/http.h"
#include "store/store.h"

int rtmd_api_init(const struct rtmd_config *cfg, struct rtmd_store *store,
                  struct rtmd_server *server);
void rtmd_api_shutdown(void);
/* The server's request handler. */
void rtmd_api_handle(struct rtmd_http_request *req);

#endif
