/*
 * cors.c — the REST API for web pages: CORS ([server] cors_origins).
 *
 * Every answer to a REST request (under /dev/v2/project/) carries
 * `Vary: Origin` once cors_origins lists anything, and
 * `Access-Control-Allow-Origin` when its Origin is listed (the listed
 * string, never the request's bytes; `*` for `*`). No
 * Access-Control-Allow-Credentials: the API's credentials are explicit
 * headers (Authorization, x-agora-token), which need no cookies.
 *
 * OPTIONS on a REST path: from a listed Origin, 204 with the preflight
 * headers; from another Origin, 403 (so a refused page sees why in the
 * network log, not a silent lack of headers); without Origin (not a
 * preflight), 204 with Allow.
 */
#include <stdio.h>

#include "api/internal.h"

/* Seconds a browser may cache a preflight answer (Chromium caps it at 7200). */
#define CORS_MAX_AGE "7200"

static const char cors_allow_headers[] = "Authorization, Content-Type, x-agora-token, x-agora-uid";

const char *api_cors_headers(struct rtmd_api *api, struct rtmd_http_request *req)
{
    const struct rtmd_origins *list = &api->cfg->cors_origins;
    if (!list->any && list->n == 0)
        return NULL;
    rtmd_http_add_headers(req, RTMD_STR_LIT("Vary: Origin\r\n"));
    struct rtmd_str origin = rtmd_http_header(req, "Origin");
    if (!origin.p)
        return NULL;
    const char *listed = rtmd_origins_match(list, origin);
    if (!listed)
        return NULL;
    char line[RTMD_ORIGIN_MAX + 96];
    int n = snprintf(line, sizeof(line),
                     "Access-Control-Allow-Origin: %s\r\n"
                     "Access-Control-Expose-Headers: X-Request-ID\r\n",
                     listed);
    if (n < 0 || (size_t)n >= sizeof(line))
        return NULL;
    return rtmd_http_add_headers(req, rtmd_str_make(line, (size_t)n)) == 0 ? listed : NULL;
}

void api_cors_preflight(struct rtmd_api *api, struct rtmd_http_request *req, const char *allow,
                        const char *listed)
{
    char lines[256];
    struct rtmd_str origin = rtmd_http_header(req, "Origin");
    if (!origin.p) {
        int n = snprintf(lines, sizeof(lines), "Allow: %s, OPTIONS\r\n", allow);
        api_count_status(api, 204);
        rtmd_http_respond(req, 204, "", rtmd_str_make(lines, (size_t)n), RTMD_STR_NULL);
        return;
    }
    if (!listed) {
        api_respond_req_error(api, req, 403, "origin_not_allowed",
                              "this origin may not call the API from a web page (it is not in "
                              "[server] cors_origins)");
        return;
    }
    int n = snprintf(lines, sizeof(lines),
                     "Access-Control-Allow-Methods: %s\r\n"
                     "Access-Control-Allow-Headers: %s\r\n"
                     "Access-Control-Max-Age: " CORS_MAX_AGE "\r\n",
                     allow, cors_allow_headers);
    api_count_status(api, 204);
    rtmd_http_respond(req, 204, "", rtmd_str_make(lines, (size_t)n), RTMD_STR_NULL);
}
