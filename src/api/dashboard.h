/*
 * dashboard.h — the live dashboard at /dashboard/ (a page and its JSON),
 * for customers: Basic auth with the browser's prompt, each customer sees
 * its own apps only.
 *
 *   GET /dashboard                       308 to /dashboard/ (no challenge)
 *   GET /dashboard/                      the page (HTML)
 *   GET /dashboard/dashboard.js, .css    its script and style
 *   GET /dashboard/api/apps              the customer's apps
 *   GET /dashboard/api/apps/{appid}      the app at a glance (users, channels, backlog, rates,
 *                                        nodes)
 *   GET /dashboard/api/live?app={appid}  the live tail: Server-Sent Events of presence events
 *                                        and messages, from the tap (presence/tap.h) of this
 *                                        node and, with the redis backend, of the others
 *
 * Everything lives below /dashboard/ on purpose: a browser sends the
 * credentials it was given after a challenge to the challenged directory
 * only, so they never go with requests to the REST API.
 *
 * The live tail never reads the event logs (nothing is consumed). Each
 * viewer's queue is its connection's unsent output, bounded: an event that
 * would pass DASH_VIEWER_BUDGET is dropped and counted, and the viewer is
 * told how many it missed once it caught up; a viewer owed bytes it did not
 * read for DASH_VIEWER_STUCK_S is closed.
 */
#ifndef RTMD_API_DASHBOARD_H
#define RTMD_API_DASHBOARD_H

#include "api/api.h"

/* Unsent bytes a viewer may owe before events are dropped for it. */
#define DASH_VIEWER_BUDGET (64 * 1024)
/* Seconds a viewer may leave what it is owed unread before it is closed. */
#define DASH_VIEWER_STUCK_S 60
/* Viewers at once, on this node. */
#define DASH_VIEWERS_MAX 64
/* Bytes of a message's payload the tail shows. */
#define DASH_PAYLOAD_SHOWN 200

struct rtmd_api;

/* Starts the dashboard (its timer, the tap's sink) for api. */
void rtmd_dashboard_init(struct rtmd_api *api);
/* Closes the viewers and the timer. */
void rtmd_dashboard_shutdown(struct rtmd_api *api);
/* Serves req when its path is below /dashboard; false otherwise. */
bool rtmd_dashboard_handle(struct rtmd_api *api, struct rtmd_http_request *req);

/* The page's files, compiled in (assets.c). */
struct dash_asset {
    const char *path; /* below /dashboard/ ("" for the page) */
    const char *content_type;
    const char *start;
    const char *end;
};
extern const struct dash_asset dash_assets[];
extern const size_t dash_n_assets;

#endif
