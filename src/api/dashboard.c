/*
 * dashboard.c — the live dashboard (see dashboard.h): the page, the JSON
 * of an app at a glance, and the live tail as Server-Sent Events.
 */
#include "api/dashboard.h"

#include <cjson/cJSON.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/internal.h"
#include "core/alloc.h"
#include "core/json.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/url.h"
#include "presence/online.h"
#include "presence/presence.h"
#include "presence/tap.h"

#define PREFIX     "/dashboard/"
#define API_PREFIX "/dashboard/api/"
/* Seconds between the comments that keep an idle tail open (and find dead peers). */
#define KEEPALIVE_S 15
/* Seconds between this node's reports to a shared store (its connections, sessions). */
#define REPORT_S 5

/* Other nodes' rates (the redis backend): while some node's viewer watches
 * an app's live tail, every node publishes its counts of the app's last
 * minute there once a second, and the viewers' nodes keep the newest of
 * each node's so the overview adds up the cluster. Bounded: at most
 * REMOTE_RATES_MAX (app, node) pairs, each counted only while fresh. */
#define REMOTE_RATES_MAX      256
#define REMOTE_RATES_FRESH_MS 3000
struct remote_rates {
    const struct rtmd_app *app;
    char node[RTMD_NODE_ID_MAX];
    uint64_t ms; /* the node's clock when it counted */
    uint32_t r[RTMD_TAP_RATES][RTMD_TAP_SECONDS];
};

/* The rates' names in the overview and between nodes, in alphabetical order. */
static const char *const rate_names[RTMD_TAP_RATES] = {"joins", "logins", "messages", "requests"};
static const int rate_order[RTMD_TAP_RATES] = {RTMD_TAP_JOINS, RTMD_TAP_LOGINS, RTMD_TAP_MESSAGES,
                                               RTMD_TAP_REQUESTS};

/* One live tail: an HTTP connection taken over after its answer's head. */
struct viewer {
    struct rtmd_list link;
    struct rtmd_conn *conn;
    const struct rtmd_app *app;
    uint64_t dropped; /* events not sent: over the budget */
    uint64_t told;    /* dropped as last told to the viewer */
};

struct rtmd_dashboard {
    struct rtmd_api *api;
    struct rtmd_list viewers;
    size_t n_viewers;
    uint64_t dropped;                 /* every viewer's, for the overview */
    struct rtmd_timeout_queue ticker; /* one entry, re-armed every second */
    struct rtmd_timeout tick;
    uint64_t ticks;
    /* Each viewer's connection timeout: re-armed at every tick that finds
     * nothing unsent, so it passes only for a viewer that read nothing
     * for DASH_VIEWER_STUCK_S while owing it something. */
    struct rtmd_timeout_queue idle;
    struct rtmd_buf event;       /* one event, formatted once for every viewer */
    struct remote_rates *remote; /* REMOTE_RATES_MAX of them once one came */
    size_t n_remote;
};

/* Headers every dashboard answer carries. */
#define DASH_HEADERS                                                                               \
    "Cache-Control: no-store\r\n"                                                                  \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "X-Frame-Options: DENY\r\n"                                                                    \
    "Referrer-Policy: no-referrer\r\n"                                                             \
    "Content-Security-Policy: default-src 'self'; connect-src 'self'; img-src 'self' data:\r\n"

/* ---- answers and credentials ------------------------------------------------------------ */

static void respond(struct rtmd_api *api, struct rtmd_http_request *req, int status,
                    const char *type, struct rtmd_str body)
{
    api_count_status(api, status);
    rtmd_http_respond(req, status, type, RTMD_STR_LIT(DASH_HEADERS), body);
}

static void respond_error(struct rtmd_api *api, struct rtmd_http_request *req, int status,
                          const char *code, const char *message)
{
    api_count_status(api, status);
    rtmd_http_respond_error_headers(req, status, code, message, RTMD_STR_LIT(DASH_HEADERS));
}

/* The customer of req's Basic credentials, or NULL once answered 401 with
 * the challenge that makes a browser ask for them (for /dashboard/ only). */
static const struct rtmd_customer *authenticate(struct rtmd_api *api, struct rtmd_http_request *req)
{
    const char *why = "the dashboard takes a customer's Basic auth";
    struct rtmd_str auth = rtmd_http_header(req, "Authorization");
    const struct rtmd_customer *cu = auth.p ? rtmd_auth_customer(api->cfg, auth, &why) : NULL;
    if (cu)
        return cu;
    req->error = why;
    api_count_status(api, 401);
    rtmd_http_respond_error_headers(
        req, 401, "unauthorized", why,
        RTMD_STR_LIT(DASH_HEADERS "WWW-Authenticate: Basic realm=\"rtmd dashboard\", "
                                  "charset=\"UTF-8\"\r\n"));
    return NULL;
}

/* The customer's app named id, or NULL: a customer cannot tell another's
 * app from one that does not exist. */
static const struct rtmd_app *customer_app(const struct rtmd_customer *cu, struct rtmd_str id)
{
    for (size_t i = 0; i < cu->n_apps; i++)
        if (!cu->apps[i]->retired && rtmd_str_eq_cstr(id, cu->apps[i]->id))
            return cu->apps[i];
    return NULL;
}

/* ---- GET /dashboard/api/apps ------------------------------------------------------------ */

static void list_apps(struct rtmd_api *api, struct rtmd_http_request *req,
                      const struct rtmd_customer *cu)
{
    struct rtmd_json j;
    rtmd_json_init(&j, api_body_buf(api));
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "apps");
    rtmd_json_arr_begin(&j);
    for (size_t i = 0; i < cu->n_apps; i++) {
        if (cu->apps[i]->retired)
            continue;
        rtmd_json_obj_begin(&j);
        rtmd_json_key(&j, "app_id");
        rtmd_json_cstr(&j, cu->apps[i]->id);
        rtmd_json_obj_end(&j);
    }
    rtmd_json_arr_end(&j);
    rtmd_json_key(&j, "customer_id");
    rtmd_json_cstr(&j, cu->id);
    api_json_tail(&j, req);
    if (rtmd_json_finish(&j) < 0) {
        respond_error(api, req, 500, "internal_error", "the answer could not be made");
        return;
    }
    respond(api, req, 200, "application/json;charset=utf-8",
            rtmd_str_make(api->body.data, api->body.len));
}

/* ---- GET /dashboard/api/apps/{appid} ---------------------------------------------------- */

struct overview_req {
    struct rtmd_api *api;
    struct rtmd_http_request *req;
    const struct rtmd_app *app;
    struct rtmd_buf head;  /* the app's keys before "live", the object left open */
    struct rtmd_buf users; /* the value of "users", the last key */
};

static void node_name(const struct rtmd_config *cfg, char *out, size_t cap)
{
    if (cfg->node_name)
        snprintf(out, cap, "%s", cfg->node_name);
    else
        snprintf(out, cap, "%u", cfg->node_id);
}

static struct rtmd_node_report this_node(struct rtmd_api *api, char *name, size_t cap)
{
    node_name(api->cfg, name, cap);
    return (struct rtmd_node_report){
        .node = rtmd_str_cstr(name),
        .connections = api->server->n_conns,
        .sessions = rtmd_presence_session_count(),
        .ms = rtmd_now_ms(),
        .alive = true,
        .self = true,
    };
}

/* This node's counts of app's last minute plus every fresh report of the
 * other nodes, each placed by its own clock's second. */
static void cluster_rates(struct rtmd_dashboard *d, const struct rtmd_app *app, uint64_t now,
                          uint64_t out[RTMD_TAP_RATES][RTMD_TAP_SECONDS])
{
    uint32_t mine[RTMD_TAP_RATES][RTMD_TAP_SECONDS];
    rtmd_tap_rates(app, now, mine);
    for (int k = 0; k < RTMD_TAP_RATES; k++)
        for (int s = 0; s < RTMD_TAP_SECONDS; s++)
            out[k][s] = mine[k][s];
    for (size_t i = 0; i < d->n_remote; i++) {
        const struct remote_rates *rr = &d->remote[i];
        if (rr->app != app || rr->ms + REMOTE_RATES_FRESH_MS < now || rr->ms > now + 60000)
            continue;
        /* Its slot s is second rr->ms / 1000 - 60 + s; ours, now / 1000 - 60 + s. */
        int64_t shift = (int64_t)(rr->ms / 1000) - (int64_t)(now / 1000);
        for (int s = 0; s < RTMD_TAP_SECONDS; s++) {
            int64_t at = s + shift;
            if (at < 0 || at >= RTMD_TAP_SECONDS)
                continue;
            for (int k = 0; k < RTMD_TAP_RATES; k++)
                out[k][at] += rr->r[k][s];
        }
    }
}

static void write_rates(struct rtmd_dashboard *d, struct rtmd_json *j, const struct rtmd_app *app)
{
    uint64_t rates[RTMD_TAP_RATES][RTMD_TAP_SECONDS];
    cluster_rates(d, app, rtmd_now_ms(), rates);
    rtmd_json_key(j, "rates");
    rtmd_json_obj_begin(j);
    for (int i = 0; i < RTMD_TAP_RATES; i++) {
        const uint64_t *r = rates[rate_order[i]];
        uint64_t sum = 0;
        rtmd_json_key(j, rate_names[i]);
        rtmd_json_obj_begin(j);
        rtmd_json_key(j, "last_minute");
        for (int s = 0; s < RTMD_TAP_SECONDS; s++)
            sum += r[s];
        rtmd_json_u64(j, sum);
        rtmd_json_key(j, "per_second");
        rtmd_json_arr_begin(j);
        for (int s = 0; s < RTMD_TAP_SECONDS; s++)
            rtmd_json_u64(j, r[s]);
        rtmd_json_arr_end(j);
        rtmd_json_obj_end(j);
    }
    rtmd_json_obj_end(j);
}

/* Writes "nodes":[...] of the nodes given (sorted by the store: newest
 * heartbeat first) and closes the answer. */
static void overview_finish(struct overview_req *o, const struct rtmd_node_report *nodes, size_t n)
{
    struct rtmd_api *api = o->api;
    struct rtmd_dashboard *d = api->dashboard;
    struct rtmd_json j;
    struct rtmd_buf *b = api_body_buf(api);
    rtmd_buf_append(b, o->head.data, o->head.len);
    rtmd_json_init(&j, b);
    j.depth = 1; /* inside the object head began */
    j.comma = 1u << 1;
    rtmd_json_key(&j, "live");
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "dropped");
    rtmd_json_u64(&j, d->dropped);
    rtmd_json_key(&j, "scope");
    rtmd_json_cstr(&j, rtmd_store_has_tail(api->store) ? "cluster" : "node");
    rtmd_json_key(&j, "viewers");
    rtmd_json_u64(&j, d->n_viewers);
    rtmd_json_obj_end(&j);
    rtmd_json_key(&j, "ms");
    rtmd_json_u64(&j, rtmd_now_ms());
    rtmd_json_key(&j, "nodes");
    rtmd_json_arr_begin(&j);
    for (size_t i = 0; i < n; i++) {
        rtmd_json_obj_begin(&j);
        rtmd_json_key(&j, "alive");
        rtmd_json_bool(&j, nodes[i].alive);
        rtmd_json_key(&j, "connections");
        rtmd_json_u64(&j, nodes[i].connections);
        rtmd_json_key(&j, "node");
        rtmd_json_str(&j, nodes[i].node);
        rtmd_json_key(&j, "seen_ms");
        rtmd_json_u64(&j, nodes[i].ms);
        rtmd_json_key(&j, "self");
        rtmd_json_bool(&j, nodes[i].self);
        rtmd_json_key(&j, "sessions");
        rtmd_json_u64(&j, nodes[i].sessions);
        rtmd_json_obj_end(&j);
    }
    rtmd_json_arr_end(&j);
    write_rates(d, &j, o->app);
    rtmd_json_key(&j, "request_id");
    rtmd_json_str(&j, rtmd_str_make(o->req->request_id, o->req->request_id_len));
    rtmd_json_key(&j, "result");
    rtmd_json_cstr(&j, "success");
    rtmd_json_key(&j, "users");
    rtmd_json_raw(&j, o->users.data, o->users.len);
    rtmd_json_obj_end(&j);
    if (rtmd_json_finish(&j) < 0)
        respond_error(api, o->req, 500, "internal_error", "the answer could not be made");
    else
        respond(api, o->req, 200, "application/json;charset=utf-8", rtmd_str_make(b->data, b->len));
    rtmd_buf_free(&o->head);
    rtmd_buf_free(&o->users);
    free(o);
}

static void on_nodes(void *arg, int status, const struct rtmd_node_report *nodes, size_t n)
{
    struct overview_req *o = arg;
    if (status < 0) {
        /* The nodes are a part of the page: this node still speaks for itself. */
        char name[RTMD_NODE_ID_MAX];
        struct rtmd_node_report me = this_node(o->api, name, sizeof(name));
        overview_finish(o, &me, 1);
        return;
    }
    overview_finish(o, nodes, n);
}

/* The app's part of the answer: the keys before "live" into o->head (the
 * object left open), the value of "users" into o->users. */
static int write_head(struct overview_req *o, const struct rtmd_store_overview *ov)
{
    const struct rtmd_config *cfg = o->api->cfg;
    struct rtmd_json j;
    rtmd_json_init(&j, &o->head);
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "app_id");
    rtmd_json_cstr(&j, o->app->id);
    rtmd_json_key(&j, "backlog");
    rtmd_json_arr_begin(&j);
    for (size_t r = 0; r < cfg->n_regions && r < RTMD_REGIONS_MAX; r++) {
        rtmd_json_obj_begin(&j);
        rtmd_json_key(&j, "channel_events");
        rtmd_json_obj_begin(&j);
        rtmd_json_key(&j, "dropped");
        rtmd_json_u64(&j, ov->dropped[r][RTMD_EVLOG_CHANNEL]);
        rtmd_json_key(&j, "unread");
        rtmd_json_u64(&j, ov->unread[r][RTMD_EVLOG_CHANNEL]);
        rtmd_json_obj_end(&j);
        rtmd_json_key(&j, "region");
        rtmd_json_cstr(&j, cfg->regions[r]);
        rtmd_json_key(&j, "user_events");
        rtmd_json_obj_begin(&j);
        rtmd_json_key(&j, "dropped");
        rtmd_json_u64(&j, ov->dropped[r][RTMD_EVLOG_USER]);
        rtmd_json_key(&j, "unread");
        rtmd_json_u64(&j, ov->unread[r][RTMD_EVLOG_USER]);
        rtmd_json_obj_end(&j);
        rtmd_json_obj_end(&j);
    }
    rtmd_json_arr_end(&j);
    rtmd_json_key(&j, "channels");
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "count");
    rtmd_json_u64(&j, ov->n_channels);
    rtmd_json_key(&j, "listed");
    rtmd_json_arr_begin(&j);
    for (size_t i = 0; i < ov->n_listed; i++) {
        rtmd_json_obj_begin(&j);
        rtmd_json_key(&j, "channel");
        rtmd_json_str(&j, ov->channels[i]);
        rtmd_json_key(&j, "members");
        rtmd_json_u64(&j, ov->members[i]);
        rtmd_json_obj_end(&j);
    }
    rtmd_json_arr_end(&j);
    rtmd_json_obj_end(&j);
    int r = rtmd_json_finish(&j);
    rtmd_json_init(&j, &o->users);
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "count");
    rtmd_json_u64(&j, ov->n_users);
    rtmd_json_key(&j, "listed");
    rtmd_json_arr_begin(&j);
    for (size_t i = 0; i < ov->n_uids; i++)
        rtmd_json_str(&j, ov->uids[i]);
    rtmd_json_arr_end(&j);
    rtmd_json_obj_end(&j);
    return r < 0 ? r : rtmd_json_finish(&j);
}

static void on_overview(void *arg, int status, const struct rtmd_store_overview *ov)
{
    struct overview_req *o = arg;
    if (status == 0 && write_head(o, ov) < 0)
        status = -ENOMEM;
    if (status < 0) {
        struct api_call *call = rtmd_calloc(1, sizeof(*call));
        call->api = o->api;
        call->req = o->req;
        rtmd_buf_free(&o->head);
        rtmd_buf_free(&o->users);
        free(o);
        api_respond_store_error(call, status);
        return;
    }
    char name[RTMD_NODE_ID_MAX];
    struct rtmd_node_report me = this_node(o->api, name, sizeof(name));
    if (rtmd_store_nodes(o->api->store, &me, on_nodes, o) < 0)
        overview_finish(o, &me, 1);
}

static void app_overview(struct rtmd_api *api, struct rtmd_http_request *req,
                         const struct rtmd_app *app)
{
    struct overview_req *o = rtmd_calloc(1, sizeof(*o));
    o->api = api;
    o->req = req;
    o->app = app;
    rtmd_buf_init(&o->head, 1u << 20);
    rtmd_buf_init(&o->users, 1u << 20);
    int r = rtmd_online_overview(api->store, app, on_overview, o);
    if (r < 0) {
        rtmd_buf_free(&o->head);
        rtmd_buf_free(&o->users);
        free(o);
        struct api_call *call = rtmd_calloc(1, sizeof(*call));
        call->api = api;
        call->req = req;
        api_respond_store_error(call, r);
    }
}

/* ---- the live tail ------------------------------------------------------------------------ */

static void viewer_write(struct rtmd_dashboard *d, struct viewer *v, struct rtmd_str ev)
{
    struct rtmd_conn *c = v->conn;
    if (rtmd_conn_ending(c))
        return;
    if (rtmd_conn_unsent(c) + ev.len > DASH_VIEWER_BUDGET) {
        v->dropped++;
        d->dropped++;
        return;
    }
    if (v->dropped != v->told) {
        char note[96];
        int n = snprintf(note, sizeof(note), "event: dropped\ndata: {\"dropped\":%llu}\n\n",
                         (unsigned long long)v->dropped);
        v->told = v->dropped;
        rtmd_conn_write_buffered(c, note, (size_t)n);
    }
    rtmd_conn_write_buffered(c, ev.p, ev.len);
}

static void broadcast_str(struct rtmd_dashboard *d, const struct rtmd_app *app, struct rtmd_str ev)
{
    struct rtmd_list *it, *next;
    rtmd_list_foreach_safe(it, next, &d->viewers)
    {
        struct viewer *v = RTMD_CONTAINER_OF(it, struct viewer, link);
        if (v->app == app)
            viewer_write(d, v, ev);
    }
}

static void broadcast(struct rtmd_dashboard *d, const struct rtmd_app *app)
{
    broadcast_str(d, app, rtmd_str_make(d->event.data, d->event.len));
}

static bool watched(struct rtmd_dashboard *d, const struct rtmd_app *app)
{
    struct rtmd_list *it, *next;
    rtmd_list_foreach_safe(it, next, &d->viewers)
    {
        if (RTMD_CONTAINER_OF(it, struct viewer, link)->app == app)
            return true;
    }
    return false;
}

/* The event formatted in d->event: to this node's viewers of app, and to the
 * other nodes' (the store publishes it only when some node watches app). */
static void tap_out(struct rtmd_dashboard *d, const struct rtmd_app *app)
{
    rtmd_store_tail_publish(d->api->store, app, rtmd_str_make(d->event.data, d->event.len));
    broadcast(d, app);
}

static void tap_presence(void *ctx, const struct rtmd_app *app, const struct rtmd_presence_op *op)
{
    struct rtmd_dashboard *d = ctx;
    if (!watched(d, app) && !rtmd_store_tail_wanted(d->api->store, app))
        return;
    rtmd_buf_reset(&d->event);
    rtmd_buf_append_cstr(&d->event, "event: presence\ndata: ");
    if (rtmd_event_format(&d->event, op) < 0)
        return;
    rtmd_buf_append_cstr(&d->event, "\n\n");
    tap_out(d, app);
}

/* At most max bytes of a UTF-8 text, not cutting a character. */
static struct rtmd_str utf8_prefix(struct rtmd_str s, size_t max)
{
    if (s.len <= max)
        return s;
    size_t n = max;
    while (n > 0 && ((unsigned char)s.p[n] & 0xC0) == 0x80)
        n--;
    return rtmd_str_make(s.p, n);
}

static void tap_message(void *ctx, const struct rtmd_app *app, enum rtmd_message_type type,
                        struct rtmd_str from, struct rtmd_str to, struct rtmd_str payload,
                        uint64_t ms)
{
    struct rtmd_dashboard *d = ctx;
    if (!watched(d, app) && !rtmd_store_tail_wanted(d->api->store, app))
        return;
    rtmd_buf_reset(&d->event);
    rtmd_buf_append_cstr(&d->event, "event: message\ndata: ");
    struct rtmd_json j;
    rtmd_json_init(&j, &d->event);
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "bytes");
    rtmd_json_u64(&j, payload.len);
    rtmd_json_key(&j, "from");
    rtmd_json_str(&j, from);
    rtmd_json_key(&j, "ms");
    rtmd_json_u64(&j, ms);
    rtmd_json_key(&j, "payload");
    rtmd_json_str(&j, utf8_prefix(payload, DASH_PAYLOAD_SHOWN));
    rtmd_json_key(&j, "to");
    rtmd_json_str(&j, to);
    rtmd_json_key(&j, "type");
    rtmd_json_cstr(&j, type == RTMD_MSG_PEER ? "peer" : "channel");
    rtmd_json_obj_end(&j);
    if (rtmd_json_finish(&j) < 0)
        return;
    rtmd_buf_append_cstr(&d->event, "\n\n");
    tap_out(d, app);
}

/* The rates event of this node's counts of app (rates_event()): "event:
 * rates", data {"joins":[60],"logins":[60],"messages":[60],"ms":MS,
 * "node":NODE,"requests":[60]}, in d->event; false when all are 0. */
static bool rates_event(struct rtmd_dashboard *d, const struct rtmd_app *app, uint64_t now,
                        const char *node)
{
    uint32_t r[RTMD_TAP_RATES][RTMD_TAP_SECONDS];
    rtmd_tap_rates(app, now, r);
    bool any = false;
    for (int k = 0; k < RTMD_TAP_RATES && !any; k++)
        for (int s = 0; s < RTMD_TAP_SECONDS && !any; s++)
            any = r[k][s] != 0;
    if (!any)
        return false;
    rtmd_buf_reset(&d->event);
    rtmd_buf_append_cstr(&d->event, "event: rates\ndata: ");
    struct rtmd_json j;
    rtmd_json_init(&j, &d->event);
    rtmd_json_obj_begin(&j);
    for (int i = 0; i < RTMD_TAP_RATES; i++) {
        if (i == 3) {
            rtmd_json_key(&j, "ms");
            rtmd_json_u64(&j, now);
            rtmd_json_key(&j, "node");
            rtmd_json_cstr(&j, node);
        }
        rtmd_json_key(&j, rate_names[i]);
        rtmd_json_arr_begin(&j);
        for (int s = 0; s < RTMD_TAP_SECONDS; s++)
            rtmd_json_u64(&j, r[rate_order[i]][s]);
        rtmd_json_arr_end(&j);
    }
    rtmd_json_obj_end(&j);
    if (rtmd_json_finish(&j) < 0)
        return false;
    rtmd_buf_append_cstr(&d->event, "\n\n");
    return true;
}

/* Keeps another node's rates event (bounded; anything malformed is ignored). */
static void take_rates(struct rtmd_dashboard *d, const struct rtmd_app *app, struct rtmd_str data)
{
    cJSON *root = cJSON_ParseWithLength(data.p, data.len);
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(root, "node");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "ms");
    struct remote_rates in = {.app = app};
    bool ok = cJSON_IsString(node) && node->valuestring[0] &&
              strlen(node->valuestring) < sizeof(in.node) && cJSON_IsNumber(ms) &&
              ms->valuedouble >= 0 && ms->valuedouble < 9007199254740992.0; /* 2^53 */
    for (int i = 0; ok && i < RTMD_TAP_RATES; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, rate_names[i]);
        ok = cJSON_IsArray(a) && cJSON_GetArraySize(a) == RTMD_TAP_SECONDS;
        if (!ok)
            break;
        int s = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, a)
        {
            if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble <= UINT32_MAX)) {
                ok = false;
                break;
            }
            in.r[rate_order[i]][s++] = (uint32_t)e->valuedouble;
        }
    }
    if (ok) {
        memcpy(in.node, node->valuestring, strlen(node->valuestring) + 1);
        in.ms = (uint64_t)ms->valuedouble;
    }
    cJSON_Delete(root);
    if (!ok)
        return;
    /* Its entry, else a free one, else one gone stale; else it waits for room. */
    uint64_t now = rtmd_now_ms();
    struct remote_rates *slot = NULL;
    for (size_t i = 0; i < d->n_remote && !slot; i++)
        if (d->remote[i].app == app && strcmp(d->remote[i].node, in.node) == 0)
            slot = &d->remote[i];
    if (!slot && d->n_remote < REMOTE_RATES_MAX) {
        if (!d->remote)
            d->remote = rtmd_malloc(REMOTE_RATES_MAX * sizeof(*d->remote));
        slot = &d->remote[d->n_remote++];
    }
    for (size_t i = 0; i < d->n_remote && !slot; i++)
        if (d->remote[i].ms + REMOTE_RATES_FRESH_MS < now)
            slot = &d->remote[i];
    if (slot)
        *slot = in;
}

/* An event another node published (the redis backend): one Server-Sent
 * Event, as this node would write it; anything else is not passed on. A
 * rates event is kept for the overview, not passed on. */
static void on_remote_tail(void *ctx, const struct rtmd_app *app, struct rtmd_str ev)
{
    struct rtmd_dashboard *d = ctx;
    static const char rates[] = "event: rates\ndata: {";
    if (ev.len > sizeof(rates) + 1 && !memcmp(ev.p, rates, sizeof(rates) - 1) &&
        ev.p[ev.len - 1] == '\n' && ev.p[ev.len - 2] == '\n') {
        size_t at = sizeof(rates) - 2; /* the '{' */
        take_rates(d, app, rtmd_str_make(ev.p + at, ev.len - at - 2));
        return;
    }
    static const char presence[] = "event: presence\ndata: {",
                      message[] = "event: message\ndata: {";
    bool kind = (ev.len > sizeof(presence) && !memcmp(ev.p, presence, sizeof(presence) - 1)) ||
                (ev.len > sizeof(message) && !memcmp(ev.p, message, sizeof(message) - 1));
    /* One event: its only blank line ends it, right after the JSON. */
    for (size_t i = 0; kind && i + 2 < ev.len; i++)
        if (ev.p[i] == '\n' && ev.p[i + 1] == '\n')
            return;
    if (!kind || ev.p[ev.len - 1] != '\n' || ev.p[ev.len - 2] != '\n' || ev.p[ev.len - 3] != '}')
        return;
    broadcast_str(d, app, ev);
}

static const struct rtmd_tap_sink sink_ = {tap_presence, tap_message};

/* A viewer sends nothing we read: input is discarded (its bytes are not kept). */
static void sse_on_data(struct rtmd_conn *c, const char *p, size_t n)
{
    (void)c;
    (void)p;
    (void)n;
}

static void sse_on_eof(struct rtmd_conn *c)
{
    rtmd_conn_close(c);
}

static struct rtmd_dashboard *dashboard_of(const struct rtmd_conn *c)
{
    const struct rtmd_api *api = c->server->request_ctx;
    return api ? api->dashboard : NULL;
}

/* Everything owed was written: a viewer that missed events is told now. */
static void sse_on_drain(struct rtmd_conn *c)
{
    struct viewer *v = c->user;
    struct rtmd_dashboard *d = dashboard_of(c);
    if (v && d && v->dropped != v->told && !rtmd_conn_ending(c))
        viewer_write(d, v, RTMD_STR_LIT(": caught up\n\n"));
}

static void sse_on_close(struct rtmd_conn *c)
{
    struct viewer *v = c->user;
    if (!v)
        return;
    struct rtmd_dashboard *d = dashboard_of(c);
    rtmd_list_remove(&v->link);
    if (d) {
        d->n_viewers--;
        rtmd_store_tail_watch(d->api->store, v->app, false);
    }
    c->user = NULL;
    free(v);
}

static void sse_on_going_away(struct rtmd_conn *c)
{
    rtmd_conn_close_gracefully(c);
}

static const struct rtmd_proto sse_proto = {
    .name = "sse",
    .on_data = sse_on_data,
    .on_eof = sse_on_eof,
    .on_drain = sse_on_drain,
    .on_close = sse_on_close,
    .on_going_away = sse_on_going_away,
};

static void live(struct rtmd_api *api, struct rtmd_http_request *req, const struct rtmd_app *app)
{
    struct rtmd_dashboard *d = api->dashboard;
    if (d->n_viewers >= DASH_VIEWERS_MAX) {
        respond_error(api, req, 503, "unavailable", "too many live viewers on this node");
        return;
    }
    char head[1024];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\n"
                      "Content-Type: text/event-stream;charset=utf-8\r\n" DASH_HEADERS
                      "X-Request-ID: %.*s\r\n"
                      "Connection: close\r\n\r\n"
                      ": rtmd live tail\n\n",
                      (int)req->request_id_len, req->request_id);
    struct rtmd_conn *c = req->conn;
    api_count_status(api, 200);
    struct rtmd_buf leftover;
    rtmd_buf_init(&leftover, 0);
    if (rtmd_http_upgrade(req, rtmd_str_make(head, (size_t)hn), &leftover) < 0) {
        rtmd_buf_free(&leftover);
        return;
    }
    rtmd_buf_free(&leftover); /* nothing a viewer sends is read */
    /* The kernel's share is bounded too: autotuned, a socket's send buffer
     * grows to megabytes for a peer that reads nothing. */
    int sndbuf = DASH_VIEWER_BUDGET;
    uv_send_buffer_size((uv_handle_t *)&c->tcp, &sndbuf);
    struct viewer *v = rtmd_calloc(1, sizeof(*v));
    v->conn = c;
    v->app = app;
    c->user = v;
    rtmd_conn_set_proto(c, &sse_proto);
    rtmd_list_insert_tail(&d->viewers, &v->link);
    d->n_viewers++;
    rtmd_store_tail_watch(api->store, app, true);
    rtmd_conn_arm_timeout(c, &d->idle);
}

/* ---- the timer: keepalives, stuck viewers, this node's report ---------------------------- */

static void on_viewer_timeout(struct rtmd_timeout *t)
{
    struct rtmd_conn *c = RTMD_CONTAINER_OF(t, struct rtmd_conn, timeout);
    rtmd_log_info("dashboard", "conn=%llu live viewer closed: it read nothing for %d s",
                  (unsigned long long)c->id, DASH_VIEWER_STUCK_S);
    rtmd_conn_close(c); /* on_close unlinks it */
}

static void on_tick(struct rtmd_timeout *t)
{
    struct rtmd_dashboard *d = RTMD_CONTAINER_OF(t, struct rtmd_dashboard, tick);
    rtmd_timeout_arm(&d->ticker, &d->tick);
    d->ticks++;
    struct rtmd_list *it, *next;
    rtmd_list_foreach_safe(it, next, &d->viewers)
    {
        struct viewer *v = RTMD_CONTAINER_OF(it, struct viewer, link);
        if (rtmd_conn_ending(v->conn))
            continue;
        if (rtmd_conn_unsent(v->conn) == 0)
            rtmd_conn_arm_timeout(v->conn, &d->idle);
        if (d->ticks % KEEPALIVE_S == 0 || v->dropped != v->told)
            viewer_write(d, v, RTMD_STR_LIT(": keepalive\n\n"));
    }
    /* This node's rates of the apps other nodes' viewers watch, to them. */
    const struct rtmd_config *cfg = d->api->cfg;
    char node[RTMD_NODE_ID_MAX];
    node_name(cfg, node, sizeof(node));
    for (size_t i = 0; rtmd_store_has_tail(d->api->store) && i < cfg->n_apps; i++)
        if (rtmd_store_tail_wanted(d->api->store, cfg->apps[i]) &&
            rates_event(d, cfg->apps[i], rtmd_now_ms(), node))
            rtmd_store_tail_publish(d->api->store, cfg->apps[i],
                                    rtmd_str_make(d->event.data, d->event.len));
    if (d->ticks % REPORT_S == 0 && d->api->store->type->nodes) {
        char name[RTMD_NODE_ID_MAX];
        struct rtmd_node_report me = this_node(d->api, name, sizeof(name));
        rtmd_store_nodes(d->api->store, &me, NULL, NULL);
    }
}

/* ---- routing ---------------------------------------------------------------------------- */

bool rtmd_dashboard_handle(struct rtmd_api *api, struct rtmd_http_request *req)
{
    struct rtmd_str path = req->path;
    if (rtmd_str_eq_cstr(path, "/dashboard")) {
        /* No challenge here: a browser would send the credentials to every
         * path below "/" from then on. */
        char loc[512];
        int n = snprintf(loc, sizeof(loc), "Location: /dashboard/\r\n");
        bool plain = req->query.len > 0 && req->query.len < 256;
        for (size_t i = 0; plain && i < req->query.len; i++)
            plain = req->query.p[i] > 0x20 && req->query.p[i] < 0x7f;
        if (plain) /* the query goes along (?app=...); printable bytes only, in a header */
            n = snprintf(loc, sizeof(loc), "Location: /dashboard/?%.*s\r\n", (int)req->query.len,
                         req->query.p);
        api_count_status(api, 308);
        rtmd_http_respond(req, 308, "text/plain;charset=utf-8", rtmd_str_make(loc, (size_t)n),
                          RTMD_STR_LIT("see /dashboard/\n"));
        return true;
    }
    if (path.len < sizeof(PREFIX) - 1 || memcmp(path.p, PREFIX, sizeof(PREFIX) - 1) != 0)
        return false;
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        api_count_status(api, 405);
        rtmd_http_respond_error_headers(req, 405, "method_not_allowed", "method not allowed here",
                                        RTMD_STR_LIT("Allow: GET, HEAD\r\n"));
        return true;
    }
    const struct rtmd_customer *cu = authenticate(api, req);
    if (!cu)
        return true;
    struct rtmd_str below =
        rtmd_str_make(path.p + sizeof(PREFIX) - 1, path.len - (sizeof(PREFIX) - 1));
    for (size_t i = 0; i < dash_n_assets; i++)
        if (rtmd_str_eq_cstr(below, dash_assets[i].path)) {
            respond(api, req, 200, dash_assets[i].content_type,
                    rtmd_str_make(dash_assets[i].start,
                                  (size_t)(dash_assets[i].end - dash_assets[i].start)));
            return true;
        }
    if (rtmd_str_eq_cstr(path, API_PREFIX "apps")) {
        list_apps(api, req, cu);
        return true;
    }
    static const char apps[] = API_PREFIX "apps/";
    if (path.len > sizeof(apps) - 1 && memcmp(path.p, apps, sizeof(apps) - 1) == 0) {
        const struct rtmd_app *app = customer_app(
            cu, rtmd_str_make(path.p + sizeof(apps) - 1, path.len - (sizeof(apps) - 1)));
        if (!app) {
            respond_error(api, req, 404, "not_found", "no such app among this customer's");
            return true;
        }
        app_overview(api, req, app); /* not counted among the app's requests: it is no vendor's */
        return true;
    }
    if (rtmd_str_eq_cstr(path, API_PREFIX "live")) {
        struct rtmd_str id = {0};
        const struct rtmd_app *app =
            rtmd_query_param(req->query, "app", &id) ? customer_app(cu, id) : NULL;
        if (!app) {
            respond_error(api, req, 404, "not_found", "?app= names no app among this customer's");
            return true;
        }
        if (req->method == HTTP_HEAD) {
            respond(api, req, 200, "text/event-stream;charset=utf-8", RTMD_STR_LIT(""));
            return true;
        }
        live(api, req, app);
        return true;
    }
    respond_error(api, req, 404, "not_found", "no such dashboard path");
    return true;
}

void rtmd_dashboard_init(struct rtmd_api *api)
{
    struct rtmd_dashboard *d = rtmd_calloc(1, sizeof(*d));
    d->api = api;
    rtmd_list_init(&d->viewers);
    rtmd_buf_init(&d->event, 64 * 1024);
    rtmd_timeout_queue_init(&d->ticker, 1000, on_tick);
    rtmd_timeout_queue_init(&d->idle, DASH_VIEWER_STUCK_S * 1000ull, on_viewer_timeout);
    rtmd_timeout_init(&d->tick);
    rtmd_timeout_arm(&d->ticker, &d->tick);
    api->dashboard = d;
    rtmd_tap_set_sink(&sink_, d);
    rtmd_store_tail_set(api->store, on_remote_tail, d);
}

void rtmd_dashboard_shutdown(struct rtmd_api *api)
{
    struct rtmd_dashboard *d = api->dashboard;
    if (!d)
        return;
    rtmd_tap_set_sink(NULL, NULL); /* the store, closed before, took its tail hook along */
    /* Viewers left (none after the server closed every connection) forget it. */
    struct rtmd_list *it, *next;
    rtmd_list_foreach_safe(it, next, &d->viewers)
    {
        rtmd_list_remove(it);
    }
    rtmd_timeout_disarm(&d->tick);
    rtmd_timeout_queue_close(&d->ticker);
    rtmd_timeout_queue_close(&d->idle);
    rtmd_buf_free(&d->event);
    free(d->remote);
    api->dashboard = NULL;
    free(d);
}
