/*
 * router.c — routing, the app, credentials and rate limits for every vendor
 * request, and the shared answer helpers.
 */
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/dashboard.h"
#include "api/internal.h"
#include "core/alloc.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/loop.h"
#include "net/ws.h"
#include "presence/tap.h"

/* Distinct history filters pinned at once (~200 bytes each). */
#define API_PINS_MAX 16384

static const char project_prefix[] = "/dev/v2/project/";

/* In the order of their labels in api_route_labels (from ROUTE_VENDOR). */
static const struct api_route routes_[] = {
    {HTTP_GET, "rtm/vendor/user_events", RTMD_RATE_EVENTS, true, NULL, api_user_events},
    {HTTP_GET, "rtm/vendor/channel_events", RTMD_RATE_EVENTS, true, NULL, api_channel_events},
    {HTTP_POST, "rtm/users/*/peer_messages", RTMD_RATE_SEND, false, api_authorize_sender,
     api_peer_messages},
    {HTTP_POST, "rtm/users/*/channel_messages", RTMD_RATE_SEND, false, api_authorize_sender,
     api_channel_messages},
    {HTTP_POST, "rtm/message/history/query", RTMD_RATE_HISTORY, true, NULL, api_history_create},
    {HTTP_GET, "rtm/message/history/query/*", RTMD_RATE_HISTORY, true, NULL, api_history_get},
    {HTTP_GET, "rtm/message/history/count", RTMD_RATE_HISTORY, true, NULL, api_history_count},
    {HTTP_GET, "rtm/channels/*/members", RTMD_RATE_PRESENCE, true, NULL, api_channel_members},
    {HTTP_GET, "rtm/channels/*/count", RTMD_RATE_PRESENCE, true, NULL, api_channel_count},
    {HTTP_POST, "rtm/users/status", RTMD_RATE_PRESENCE, true, NULL, api_users_status},
};

/* Route indexes (rtmd_http_request.route) below the vendor routes'. */
enum {
    ROUTE_OTHER = 0,
    ROUTE_WS,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_METRICS,
    ROUTE_ASSET,
    ROUTE_DASHBOARD,
    ROUTE_VENDOR
};
_Static_assert(ROUTE_VENDOR + RTMD_ARRAY_SIZE(routes_) == RTMD_API_ROUTES, "RTMD_API_ROUTES");

const char *const api_route_labels[RTMD_API_ROUTES] = {
    "other",
    "/v1/rtm",
    "/healthz",
    "/readyz",
    "/metrics",
    "static",
    "/dashboard",
    "/dev/v2/project/{appid}/rtm/vendor/user_events",
    "/dev/v2/project/{appid}/rtm/vendor/channel_events",
    "/dev/v2/project/{appid}/rtm/users/{uid}/peer_messages",
    "/dev/v2/project/{appid}/rtm/users/{uid}/channel_messages",
    "/dev/v2/project/{appid}/rtm/message/history/query",
    "/dev/v2/project/{appid}/rtm/message/history/query/{handle}",
    "/dev/v2/project/{appid}/rtm/message/history/count",
    "/dev/v2/project/{appid}/rtm/channels/{channel}/members",
    "/dev/v2/project/{appid}/rtm/channels/{channel}/count",
    "/dev/v2/project/{appid}/rtm/users/status",
};

/* Stands in for an App ID that does not exist, so that the caller's
 * credentials are checked exactly as for a real app that grants nothing:
 * the answer cannot tell a missing app from wrong credentials. */
static const struct rtmd_app unknown_app_ = {
    .id = "", /* no token names it, so none verifies */
    .certificate = "00000000000000000000000000000000",
    .has_certificate = true,
};

const int api_counted_codes[RTMD_API_COUNTED_CODES] = {200, 204, 400, 401, 403, 404, 405,
                                                       408, 410, 413, 429, 431, 500, 503};

void api_count_status(struct rtmd_api *api, int status)
{
    if (status >= 100 && status < 600)
        api->status[status / 100]++;
    for (size_t i = 0; i < RTMD_API_COUNTED_CODES; i++)
        if (api_counted_codes[i] == status)
            api->by_code[i]++;
}

struct rtmd_buf *api_body_buf(struct rtmd_api *api)
{
    rtmd_buf_reset(&api->body);
    return &api->body;
}

void api_respond_req_error(struct rtmd_api *api, struct rtmd_http_request *req, int status,
                           const char *code, const char *message)
{
    api_count_status(api, status);
    rtmd_http_respond_error(req, status, code, message);
}

/* 405 with the Allow header (RFC 9110 §15.5.6): allow is the methods the
 * resource takes, "GET, HEAD". */
static void method_not_allowed(struct rtmd_api *api, struct rtmd_http_request *req,
                               const char *allow)
{
    char line[128];
    int n = snprintf(line, sizeof(line), "Allow: %s\r\n", allow);
    api_count_status(api, 405);
    rtmd_http_respond_error_headers(req, 405, "method_not_allowed", "method not allowed here",
                                    rtmd_str_make(line, (size_t)n));
}

static void call_free(struct api_call *call)
{
    free(call);
}

void api_respond_json(struct api_call *call, int status, struct rtmd_str body)
{
    api_count_status(call->api, status);
    rtmd_http_respond_json(call->req, status, body);
    call_free(call);
}

void api_respond_json_parts(struct api_call *call, int status, const struct rtmd_str *parts,
                            size_t nparts)
{
    api_count_status(call->api, status);
    rtmd_http_respond_parts(call->req, status, "application/json;charset=utf-8", parts, nparts);
    call_free(call);
}

void api_respond_error(struct api_call *call, int status, const char *code, const char *message)
{
    api_respond_req_error(call->api, call->req, status, code, message);
    call_free(call);
}

void api_respond_store_error(struct api_call *call, int status)
{
    /* A call sent to a store that then dropped the connection (the redis
     * backend gives up on a stuck server) was not answered in time either. */
    if (status == -ETIMEDOUT || status == -ECONNRESET || status == -ENOTCONN)
        api_respond_error(call, 408, "request_timeout",
                          "the backing store did not answer in time; retry later");
    else if (status == RTMD_ERATE)
        api_respond_error(call, 429, "too_many_requests", "rate limit exceeded for this app");
    else if (status == -ENOSPC)
        api_respond_error(call, 503, "unavailable",
                          "the server cannot write now (its disk is full): nothing was kept or "
                          "consumed; retry later");
    else
        api_respond_error(call, 500, "internal_error", "the store failed");
}

/* ---- routing ------------------------------------------------------------------ */

/* Matches path (below the app) against a pattern; fills params. */
static bool match(const char *pattern, struct rtmd_str path, struct rtmd_str *params)
{
    size_t np = 0, i = 0;
    const char *p = pattern;
    while (*p) {
        const char *pe = strchr(p, '/');
        size_t plen = pe ? (size_t)(pe - p) : strlen(p);
        size_t j = i;
        while (j < path.len && path.p[j] != '/')
            j++;
        struct rtmd_str seg = rtmd_str_make(path.p + i, j - i);
        if (plen == 1 && p[0] == '*') {
            if (seg.len == 0 || np >= API_MAX_PARAMS)
                return false;
            params[np++] = seg;
        } else if (!rtmd_str_eq(seg, rtmd_str_make(p, plen))) {
            return false;
        }
        p += plen;
        if (*p == '/') {
            p++;
            if (j >= path.len)
                return false;
            i = j + 1;
        } else {
            return j == path.len;
        }
    }
    return false;
}

static void after_rate(void *arg, int status)
{
    struct api_call *call = arg;
    if (status < 0) {
        api_respond_store_error(call, status);
        return;
    }
    call->route->handle(call);
}

static uint32_t bucket_qps(const struct rtmd_api *api, int bucket)
{
    switch (bucket) {
    case RTMD_RATE_EVENTS: return api->cfg->limits.events_qps;
    case RTMD_RATE_HISTORY: return api->cfg->limits.history_qps;
    case RTMD_RATE_PRESENCE: return api->cfg->limits.presence_qps;
    default: return api->cfg->limits.send_qps;
    }
}

static void handle_project(struct rtmd_api *api, struct rtmd_http_request *req,
                           struct rtmd_str rest)
{
    const char *slash = memchr(rest.p, '/', rest.len);
    struct rtmd_str appid = rtmd_str_make(rest.p, slash ? (size_t)(slash - rest.p) : rest.len);
    struct rtmd_str below =
        slash ? rtmd_str_make(slash + 1, rest.len - appid.len - 1) : rtmd_str_make(NULL, 0);

    const char *cors_origin = api_cors_headers(api, req); /* on every answer, errors included */
    const struct api_route *route = NULL;
    bool path_known = false;
    struct rtmd_str params[API_MAX_PARAMS] = {{0}};
    char allow[64] = "";
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(routes_); i++) {
        if (below.p && match(routes_[i].pattern, below, params)) {
            if (!path_known)
                req->route = ROUTE_VENDOR + (unsigned)i;
            path_known = true;
            if (routes_[i].method == req->method) {
                req->route = ROUTE_VENDOR + (unsigned)i;
                route = &routes_[i];
                break;
            }
            size_t at = strlen(allow);
            snprintf(allow + at, sizeof(allow) - at, "%s%s", at ? ", " : "",
                     http_method_str((enum http_method)routes_[i].method));
        }
    }
    if (!path_known) {
        api_respond_req_error(api, req, 404, "not_found", "no such endpoint");
        return;
    }
    if (req->method == HTTP_OPTIONS) {
        api_cors_preflight(api, req, allow, cors_origin);
        return;
    }
    /* HEAD of a vendor route is refused too: its GET would consume events. */
    if (!route) {
        method_not_allowed(api, req, allow);
        return;
    }
    if (!rtmd_appid_valid(appid)) {
        api_respond_req_error(api, req, 400, "invalid_appid",
                              "appid must be 32 characters [0-9A-Za-z]");
        return;
    }
    req->app = appid;
    const struct rtmd_app *app = rtmd_config_app(api->cfg, appid);
    struct api_call *call = rtmd_calloc(1, sizeof(*call));
    call->api = api;
    call->req = req;
    call->app = app;
    call->route = route;
    memcpy(call->params, params, sizeof(params));

    struct rtmd_credentials cred = {
        rtmd_http_header(req, "Authorization"),
        rtmd_http_header(req, "x-agora-token"),
        rtmd_http_header(req, "x-agora-uid"),
    };
    const char *why = "unauthorized";
    int r = rtmd_auth_request(api->cfg, app ? app : &unknown_app_, &cred, rtmd_now_ms() / 1000,
                              &call->principal, &why);
    if (!app && call->principal.customer) {
        /* An authenticated customer may learn that the App ID does not exist. */
        api_respond_error(call, 404, "not_found", "unknown appid");
        return;
    }
    if (r < 0 || !app) {
        /* The log may tell what the answer must not. */
        req->error = app ? why : "unknown app";
        api_respond_error(call, 401, r == RTMD_EEXPIRED ? "token_expired" : "unauthorized", why);
        return;
    }
    rtmd_tap_request(app); /* the dashboard's rates: authenticated requests */
    if (route->vendor_read && call->principal.kind == RTMD_PRINCIPAL_USER &&
        !app->vendor_token_access) {
        api_respond_error(call, 401, "unauthorized",
                          "this app takes no client token here (vendor_token_access = off); use "
                          "Basic auth");
        return;
    }
    if (route->authorize && !route->authorize(call))
        return;
    if (route->rate_bucket < 0) {
        route->handle(call);
        return;
    }
    r = rtmd_store_rate(api->store, app, (enum rtmd_rate_bucket)route->rate_bucket,
                        bucket_qps(api, route->rate_bucket), after_rate, call);
    if (r < 0)
        api_respond_store_error(call, r);
}

/* GET (or HEAD) /healthz, /readyz and /metrics, on every listener;
 * /metrics takes a customer's Basic auth except on the admin listener.
 * False when path is none of them. */
static bool handle_ops(struct rtmd_api *api, struct rtmd_http_request *req, bool admin)
{
    struct rtmd_str path = req->path;
    enum { HEALTHZ, READYZ, METRICS } which;
    if (rtmd_str_eq_cstr(path, "/healthz"))
        which = HEALTHZ;
    else if (rtmd_str_eq_cstr(path, "/readyz"))
        which = READYZ;
    else if (rtmd_str_eq_cstr(path, "/metrics"))
        which = METRICS;
    else
        return false;
    req->route = which == HEALTHZ ? ROUTE_HEALTHZ : which == READYZ ? ROUTE_READYZ : ROUTE_METRICS;
    /* HEAD is answered as GET (http.c leaves the body out). */
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        method_not_allowed(api, req, "GET, HEAD");
        return true;
    }
    if (which == METRICS && !admin) {
        /* No WWW-Authenticate, as on the REST API: a browser would ask for
         * the credentials and then send them with any request a page makes. */
        const char *why = "/metrics takes a customer's Basic auth here";
        struct rtmd_str auth = rtmd_http_header(req, "Authorization");
        if (!auth.p || !rtmd_auth_customer(api->cfg, auth, &why)) {
            api_respond_req_error(api, req, 401, "unauthorized", why);
            return true;
        }
    }
    switch (which) {
    case HEALTHZ: api_healthz(api, req); break;
    case READYZ: api_readyz(api, req); break;
    case METRICS: api_metrics(api, req); break;
    }
    return true;
}

void rtmd_api_handle(struct rtmd_http_request *req)
{
    struct rtmd_api *api = req->conn->server->request_ctx;
    struct rtmd_str path = req->path;
    if (req->conn->listener->admin) {
        if (!handle_ops(api, req, true))
            api_respond_req_error(api, req, 404, "not_found",
                                  "the admin listener serves /metrics, /healthz and /readyz only");
        return;
    }
    if (path.len > sizeof(project_prefix) - 1 &&
        memcmp(path.p, project_prefix, sizeof(project_prefix) - 1) == 0) {
        handle_project(api, req,
                       rtmd_str_make(path.p + sizeof(project_prefix) - 1,
                                     path.len - (sizeof(project_prefix) - 1)));
        return;
    }
    if (rtmd_str_eq_cstr(path, "/v1/rtm")) {
        req->route = ROUTE_WS;
        if (req->method != HTTP_GET) {
            method_not_allowed(api, req, "GET");
            return;
        }
        rtmd_ws_accept(req);
        return;
    }
    if (handle_ops(api, req, false))
        return;
    req->route = ROUTE_DASHBOARD;
    if (rtmd_dashboard_handle(api, req))
        return;
    req->route = ROUTE_ASSET;
    if (api_asset(api, req))
        return;
    req->route = ROUTE_OTHER;
    api_respond_req_error(api, req, 404, "not_found", "no such endpoint");
}

/* Every answer: its latency into the route's histogram, and its
 * access-log line (at info; a 401 at warn, with the reason, never the
 * credentials). The query string is not logged: it may carry filters a
 * log should not keep. */
static void on_answered(void *ctx, const struct rtmd_http_request *req, int status, size_t body_len)
{
    struct rtmd_api *api = ctx;
    uint64_t ns = uv_hrtime() - req->start_ns;
    rtmd_histogram_observe(&api->latency[req->route < RTMD_API_ROUTES ? req->route : ROUTE_OTHER],
                           ns);
    enum rtmd_log_level level = status == 401 ? RTMD_LOG_WARN : RTMD_LOG_INFO;
    if (!rtmd_log_enabled(level))
        return;
    char remote[RTMD_CONN_REMOTE_MAX];
    struct rtmd_log_rec r;
    rtmd_log_begin(&r, level, "http", status == 401 ? "authentication failed" : "request");
    rtmd_log_cstr(&r, "method", http_method_str((enum http_method)req->method));
    rtmd_log_str(&r, "path", req->path);
    rtmd_log_u64(&r, "status", (uint64_t)status);
    rtmd_log_u64(&r, "bytes", body_len);
    rtmd_log_ms(&r, "duration_ms", ns);
    if (req->app.len)
        rtmd_log_str(&r, "app", req->app);
    if (status >= 400 && req->error)
        rtmd_log_cstr(&r, status == 401 ? "reason" : "error", req->error);
    rtmd_log_cstr(&r, "request_id", req->request_id);
    rtmd_log_cstr(&r, "remote",
                  req->conn ? rtmd_conn_remote(req->conn, remote, sizeof(remote)) : "-");
    rtmd_log_end(&r);
}

int rtmd_api_init(struct rtmd_api *api, const struct rtmd_config *cfg, struct rtmd_store *store,
                  struct rtmd_server *server, struct rtmd_messaging *messaging,
                  const struct rtmd_gateway *gateway)
{
    memset(api, 0, sizeof(*api));
    api->cfg = cfg;
    api->store = store;
    api->server = server;
    api->messaging = messaging;
    api->gateway = gateway;
    rtmd_buf_init(&api->body, SIZE_MAX);
    rtmd_http_on_answered(on_answered, api);
    rtmd_history_pins_init(&api->pins, API_PINS_MAX,
                           (uint64_t)cfg->limits.history_handle_ttl_s * 1000);
    rtmd_dashboard_init(api);
    return 0;
}

void rtmd_api_shutdown(struct rtmd_api *api)
{
    if (!api->cfg)
        return;
    rtmd_http_on_answered(NULL, NULL);
    rtmd_dashboard_shutdown(api);
    rtmd_tap_shutdown();
    rtmd_buf_free(&api->body);
    rtmd_history_pins_free(&api->pins);
    api->cfg = NULL;
}
