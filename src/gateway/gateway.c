/*
 * gateway.c — frames to ops, replies, and each connection's lifecycle.
 */
#include "gateway/gateway.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/json.h"
#include "core/log.h"
#include "gateway/internal.h"

#define QUEUE_MAX_FRAMES 64
#define QUEUE_MAX_BYTES  (512 * 1024)
#define JSON_MAX_DEPTH   8

struct queued_frame {
    struct rtmd_list link;
    size_t len;
    char data[];
};

struct op_entry {
    const char *name;
    void (*handle)(struct gw_client *c, const struct gw_request *r);
    bool needs_login;
};

static const struct op_entry ops_[] = {
    /* clang-format off */
    {"login",   gw_op_login,   false},
    {"logout",  gw_op_logout,  true},
    {"join",    gw_op_join,    true},
    {"leave",   gw_op_leave,   true},
    {"ping",    gw_op_ping,    false},
    {"peer",    gw_op_peer,    true},
    {"publish", gw_op_publish, true},
    {"ack",     gw_op_ack,     true},
    {"members", gw_op_members, true},
    {"status",  gw_op_status,  true},
    /* clang-format on */
};

/* ---- sending ------------------------------------------------------------------ */

int gw_send(struct gw_client *c, const char *p, size_t n)
{
    if (!c->conn)
        return RTMD_ECLOSED;
    /* Replies are output the client's own frames caused: past its output
     * budget ws.c stops reading it (it sends no more ops until it reads),
     * and on_timeout() cuts it off if it does not read in time. */
    return rtmd_ws_send_text(c->conn, p, n);
}

static void reply_head(struct rtmd_json *j, bool has_id, int64_t id, bool ok)
{
    rtmd_json_obj_begin(j);
    rtmd_json_key(j, "op");
    rtmd_json_cstr(j, "reply");
    rtmd_json_key(j, "id");
    if (has_id)
        rtmd_json_i64(j, id);
    else
        rtmd_json_null(j);
    rtmd_json_key(j, "ok");
    rtmd_json_bool(j, ok);
}

void gw_reply_ok(struct gw_client *c, bool has_id, int64_t id,
                 void (*fields)(struct rtmd_json *j, void *arg), void *arg)
{
    struct rtmd_buf *out = &c->gw->out;
    struct rtmd_json j;
    rtmd_buf_reset(out);
    rtmd_json_init(&j, out);
    reply_head(&j, has_id, id, true);
    if (fields)
        fields(&j, arg);
    rtmd_json_obj_end(&j);
    if (rtmd_json_finish(&j) == 0)
        gw_send(c, out->data, out->len);
}

void gw_reply_error(struct gw_client *c, bool has_id, int64_t id, const char *code,
                    const char *message)
{
    struct rtmd_buf *out = &c->gw->out;
    struct rtmd_json j;
    rtmd_buf_reset(out);
    rtmd_json_init(&j, out);
    reply_head(&j, has_id, id, false);
    rtmd_json_key(&j, "error");
    rtmd_json_cstr(&j, code);
    rtmd_json_key(&j, "message");
    rtmd_json_cstr(&j, message);
    rtmd_json_obj_end(&j);
    if (rtmd_json_finish(&j) == 0)
        gw_send(c, out->data, out->len);
}

void gw_reply_store_failure(struct gw_client *c, bool has_id, int64_t id, int status,
                            const char *what)
{
    char msg[160];
    const char *code = "unavailable";
    switch (status) {
    case -ENOSPC:
        snprintf(msg, sizeof(msg), "%s now (the server's disk is full); try again later", what);
        break;
    case -ETIMEDOUT:
    case -ENOTCONN:
    case -ECONNRESET:
    case -EAGAIN:
    case -EIO:
        snprintf(msg, sizeof(msg), "%s now (the store did not answer in time); try again later",
                 what);
        break;
    default:
        code = "store_error";
        snprintf(msg, sizeof(msg), "%s (the store failed); try again", what);
        break;
    }
    gw_reply_error(c, has_id, id, code, msg);
}

void gw_reply_recorded_fields(struct gw_client *c, int status,
                              void (*fields)(struct rtmd_json *j, void *arg), void *arg)
{
    if (!c->op_open)
        return;
    c->op_open = false;
    if (status == 0)
        gw_reply_ok(c, c->has_op_id, c->op_id, fields, arg);
    else
        gw_reply_store_failure(c, c->has_op_id, c->op_id, status,
                               "the event could not be recorded");
}

void gw_reply_recorded(struct gw_client *c, int status)
{
    gw_reply_recorded_fields(c, status, NULL, NULL);
}

void gw_on_recorded(struct rtmd_session *s, int status, void *arg)
{
    (void)arg;
    struct gw_client *c = gw_owner_enter(s);
    if (!c)
        return;
    gw_reply_recorded(c, status);
    gw_op_done(c);
    gw_leave(c);
}

/* ---- requests -------------------------------------------------------------------- */

struct rtmd_str gw_string(const cJSON *root, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!cJSON_IsString(v) || !v->valuestring)
        return RTMD_STR_NULL;
    return rtmd_str_cstr(v->valuestring);
}

/* A request's "id": an integer JSON can carry exactly. */
static bool request_id(const cJSON *root, int64_t *out)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (!cJSON_IsNumber(id) || id->valuedouble < -9007199254740991.0 ||
        id->valuedouble > 9007199254740991.0 || id->valuedouble != (double)(int64_t)id->valuedouble)
        return false;
    *out = (int64_t)id->valuedouble;
    return true;
}

static void handle_frame(struct gw_client *c, const char *p, size_t n)
{
    struct gw_request r = {0};
    const char *why;
    r.root = rtmd_json_parse_object(p, n, JSON_MAX_DEPTH, &why, &r.had_nul);
    if (!r.root) {
        char msg[128];
        snprintf(msg, sizeof(msg), "a frame %s", why);
        gw_reply_error(c, false, 0, "bad_request", msg);
        return;
    }
    r.has_id = request_id(r.root, &r.id);
    struct rtmd_str op = gw_string(r.root, "op");
    if (!r.has_id) {
        gw_reply_error(c, false, 0, "bad_request", "\"id\" must be an integer");
    } else if (!op.p) {
        gw_reply_error(c, true, r.id, "bad_request", "\"op\" must be a string");
    } else {
        const struct op_entry *e = NULL;
        for (size_t i = 0; i < RTMD_ARRAY_SIZE(ops_); i++)
            if (rtmd_str_eq_cstr(op, ops_[i].name))
                e = &ops_[i];
        if (!e)
            gw_reply_error(c, true, r.id, "unknown_op", "unknown op");
        else if (e->needs_login && c->session->state != RTMD_SESSION_ONLINE)
            gw_reply_error(c, true, r.id, "not_logged_in", "log in first");
        else
            e->handle(c, &r);
    }
    cJSON_Delete(r.root);
}

/* Runs queued frames until one makes the client busy again. */
static void drain_queue(struct gw_client *c)
{
    struct rtmd_list *n;
    while (!c->busy && c->conn && !c->closing && (n = rtmd_list_first(&c->queue))) {
        rtmd_list_remove(n);
        struct queued_frame *f = RTMD_CONTAINER_OF(n, struct queued_frame, link);
        c->queued--;
        c->queued_bytes -= f->len;
        handle_frame(c, f->data, f->len);
        free(f);
    }
    if (c->conn && !c->busy && c->queued < QUEUE_MAX_FRAMES / 2)
        rtmd_conn_resume_read(c->conn);
}

void gw_op_begin(struct gw_client *c, const struct gw_request *r)
{
    c->busy = true;
    c->op_open = true;
    c->has_op_id = r->has_id;
    c->op_id = r->id;
}

void gw_op_done(struct gw_client *c)
{
    c->busy = false;
    if (c->going_away && !c->closing && c->conn) {
        gw_close(c, GW_CLOSE_SHUTDOWN); /* its queued frames are answered "closing" */
        return;
    }
    drain_queue(c);
}

static void clear_queue(struct gw_client *c)
{
    struct rtmd_list *n;
    while ((n = rtmd_list_first(&c->queue))) {
        rtmd_list_remove(n);
        free(RTMD_CONTAINER_OF(n, struct queued_frame, link));
    }
    c->queued = 0;
    c->queued_bytes = 0;
}

/* Answers the op in flight (if not answered yet) and every queued one with
 * `error`, in order, without running them; the queue is left empty. */
static void answer_unanswered(struct gw_client *c, const char *error, const char *message)
{
    if (c->busy && c->op_open && c->conn) {
        c->op_open = false;
        gw_reply_error(c, c->has_op_id, c->op_id, error, message);
    }
    struct rtmd_list *n;
    while (c->conn && (n = rtmd_list_first(&c->queue))) {
        rtmd_list_remove(n);
        struct queued_frame *f = RTMD_CONTAINER_OF(n, struct queued_frame, link);
        c->queued--;
        c->queued_bytes -= f->len;
        const char *why;
        bool had_nul;
        int64_t id = 0;
        cJSON *root = rtmd_json_parse_object(f->data, f->len, JSON_MAX_DEPTH, &why, &had_nul);
        bool has_id = root && request_id(root, &id);
        cJSON_Delete(root);
        free(f);
        gw_reply_error(c, has_id, id, error, message);
    }
    clear_queue(c);
}

/* ---- connection lifecycle --------------------------------------------------------- */

static void end_session(struct gw_client *c)
{
    if (c->session->state == RTMD_SESSION_ONLINE)
        rtmd_presence_end(c->session, NULL, NULL);
}

static const struct {
    uint16_t code;
    const char *reason;  /* of the close frame */
    const char *error;   /* for the ops not answered yet */
    const char *message; /* ... and its message */
} close_whys_[] = {
    [GW_CLOSE_LOGOUT] = {RTMD_WS_CLOSE_NORMAL, "logout", "closing",
                         "the connection closes after the logout"},
    [GW_CLOSE_KICKED] = {RTMD_WS_CLOSE_NORMAL, "remote_login", "superseded",
                         "another login of this uid took over the session"},
    [GW_CLOSE_HEARTBEAT] = {RTMD_WS_CLOSE_GOING_AWAY, "heartbeat timeout", "closing",
                            "the connection closes: no frame within heartbeat_timeout_s"},
    [GW_CLOSE_LOGIN_TIMEOUT] = {RTMD_WS_CLOSE_POLICY, "login timeout", "closing",
                                "the connection closes: no login within login_timeout_s"},
    [GW_CLOSE_NODE_LOST] = {RTMD_WS_CLOSE_GOING_AWAY, "node_lost", "closing",
                            "this node lost its sessions (the cluster took it for dead); log in "
                            "again"},
    [GW_CLOSE_SHUTDOWN] = {RTMD_WS_CLOSE_GOING_AWAY, "going away", "closing",
                           "the server is shutting down"},
    [GW_CLOSE_APP_REMOVED] = {RTMD_WS_CLOSE_POLICY, "app_removed", "closing",
                              "the app was removed from the server's configuration"},
};

void gw_close(struct gw_client *c, enum gw_close_why why)
{
    static const char kicked[] = "{\"op\":\"kicked\",\"reason\":\"remote_login\"}";
    static const char removed[] = "{\"op\":\"kicked\",\"reason\":\"app_removed\"}";
    c->closing = true;
    answer_unanswered(c, close_whys_[why].error, close_whys_[why].message);
    gw_client_ready(c); /* pushes held behind that answer go before the close */
    if (why == GW_CLOSE_KICKED)
        gw_send(c, kicked, sizeof(kicked) - 1);
    else if (why == GW_CLOSE_APP_REMOVED)
        gw_send(c, removed, sizeof(removed) - 1);
    end_session(c);
    if (c->conn)
        rtmd_ws_close(c->conn, close_whys_[why].code, close_whys_[why].reason);
}

static void client_free(struct gw_client *c)
{
    rtmd_buf_free(&c->held);
    rtmd_session_release(c->session);
    free(c);
}

void gw_enter(struct gw_client *c)
{
    c->depth++;
}

struct gw_client *gw_owner_enter(struct rtmd_session *s)
{
    struct gw_client *c = s->owner;
    if (c)
        gw_enter(c);
    return c;
}

void gw_leave(struct gw_client *c)
{
    if (--c->depth == 0 && c->dead)
        client_free(c);
}

static void on_open(void *ctx, struct rtmd_conn *conn)
{
    struct gw_client *c = rtmd_calloc(1, sizeof(*c));
    c->gw = ctx;
    c->conn = conn;
    c->session = rtmd_session_new(c);
    c->opened_ns = uv_hrtime();
    rtmd_list_init(&c->queue);
    rtmd_buf_init(&c->held, SIZE_MAX); /* bounded by ws_output_budget in push() */
    conn->user = c;
}

static void on_message(struct rtmd_conn *conn, const char *p, size_t n)
{
    struct gw_client *c = conn->user;
    if (c->closing)
        return;
    if (c->gw->draining && !c->busy) {
        gw_enter(c);
        gw_close(c, GW_CLOSE_SHUTDOWN);
        gw_leave(c);
        return;
    }
    if (!c->busy) {
        gw_enter(c);
        handle_frame(c, p, n);
        gw_leave(c);
        return;
    }
    struct queued_frame *f = rtmd_malloc(sizeof(*f) + n);
    f->len = n;
    if (n)
        memcpy(f->data, p, n);
    rtmd_list_insert_tail(&c->queue, &f->link);
    c->queued++;
    c->queued_bytes += n;
    if (c->queued >= QUEUE_MAX_FRAMES || c->queued_bytes >= QUEUE_MAX_BYTES)
        rtmd_conn_pause_read(conn);
}

/* The login deadline or the heartbeat passed. */
static void on_timeout(struct rtmd_conn *conn)
{
    struct gw_client *c = conn->user;
    gw_enter(c);
    if (rtmd_conn_output_paused(conn)) {
        /* It stopped reading what its own frames caused, and did not read
         * it in time: cut off, like a receiver over budget. */
        gw_cut_off(c->gw, conn, "did not read its own answers in time");
    } else if (rtmd_ws_heartbeat_started(conn)) {
        rtmd_log_debug("gateway", "conn=%llu heartbeat timeout", (unsigned long long)conn->id);
        gw_close(c, GW_CLOSE_HEARTBEAT);
    } else if (c->busy && c->session->state == RTMD_SESSION_ONLINE) {
        /* The login came in time and is being recorded: its answer decides
         * (a failed one closes); the heartbeat runs meanwhile. */
        c->login_late = true;
        rtmd_ws_start_heartbeat(conn);
    } else {
        rtmd_log_debug("gateway", "conn=%llu login timeout", (unsigned long long)conn->id);
        gw_close(c, GW_CLOSE_LOGIN_TIMEOUT);
    }
    gw_leave(c);
}

/* rtmd closes the connection for a reason of the WebSocket layer (1002,
 * 1009, ...) or its own (gw_close, which answered everything already): ops
 * not answered yet are answered first. */
static void on_closing(struct rtmd_conn *conn, uint16_t code, const char *reason)
{
    (void)code;
    struct gw_client *c = conn->user;
    if (!c)
        return;
    gw_enter(c);
    c->closing = true;
    char msg[128];
    snprintf(msg, sizeof(msg), "the connection closes: %s", reason ? reason : "closed by rtmd");
    answer_unanswered(c, "closing", msg);
    gw_leave(c);
}

/* The access-log line of a WebSocket connection's end: its app and uid
 * (empty if it never logged in), how long it lasted, and the first close
 * frame's code, sent or received (1006: none, the connection dropped). */
static void log_end(const struct gw_client *c, const struct rtmd_conn *conn)
{
    if (!rtmd_log_enabled(RTMD_LOG_INFO))
        return;
    bool by_peer;
    uint16_t code = rtmd_ws_close_code(conn, &by_peer);
    const struct rtmd_session *s = c->session;
    char remote[RTMD_CONN_REMOTE_MAX];
    struct rtmd_log_rec r;
    rtmd_log_begin(&r, RTMD_LOG_INFO, "gateway", "websocket closed");
    rtmd_log_cstr(&r, "app", s->app ? s->app->id : "");
    rtmd_log_str(&r, "uid", rtmd_str_make(s->uid, s->app ? s->uid_len : 0));
    rtmd_log_ms(&r, "duration_ms", uv_hrtime() - c->opened_ns);
    rtmd_log_u64(&r, "close_code", code);
    rtmd_log_cstr(&r, "closed_by",
                  code == RTMD_WS_CLOSE_ABNORMAL ? "none"
                  : by_peer                      ? "client"
                                                 : "server");
    rtmd_log_cstr(&r, "remote", rtmd_conn_remote(conn, remote, sizeof(remote)));
    rtmd_log_u64(&r, "conn", conn->id);
    rtmd_log_end(&r);
}

static void on_close(struct rtmd_conn *conn)
{
    struct gw_client *c = conn->user;
    if (!c)
        return;
    log_end(c, conn);
    conn->user = NULL;
    end_session(c);
    clear_queue(c);
    c->conn = NULL;
    c->dead = true;
    if (c->depth == 0)
        client_free(c);
}

static void on_kicked(void *ctx, struct rtmd_session *s, const char *reason)
{
    (void)ctx;
    struct gw_client *c = s->owner;
    if (!c || !c->conn)
        return;
    gw_enter(c);
    gw_close(c, strcmp(reason, "remote_login") == 0 ? GW_CLOSE_KICKED : GW_CLOSE_NODE_LOST);
    gw_leave(c);
}

/* Draining: a client with an op in flight is closed once it is answered
 * (gw_op_done); any other at once. Either way its session ends (Leave and
 * Logout recorded) and it gets close 1001. */
static void on_going_away(struct rtmd_conn *conn)
{
    struct gw_client *c = conn->user;
    if (!c) {
        rtmd_ws_close(conn, RTMD_WS_CLOSE_GOING_AWAY, "going away");
        return;
    }
    c->gw->draining = true;
    if (c->closing)
        return;
    gw_enter(c);
    if (c->busy)
        c->going_away = true;
    else
        gw_close(c, GW_CLOSE_SHUTDOWN);
    gw_leave(c);
}

/* A reload removed app: its sessions on this node end (Leave and Logout
 * recorded), their clients get a kicked push and close 1008. */
static void close_app_session(struct rtmd_session *s, void *arg)
{
    struct gw_client *c = s->owner;
    if (s->app != arg || s->state != RTMD_SESSION_ONLINE || !c || !c->conn || c->closing)
        return;
    gw_enter(c);
    gw_close(c, GW_CLOSE_APP_REMOVED);
    gw_leave(c);
}

size_t rtmd_gateway_end_app(struct rtmd_gateway *gw, const struct rtmd_app *app)
{
    (void)gw;
    /* Collect first: ending a session changes the map being walked. */
    size_t n = rtmd_presence_session_count();
    if (n == 0)
        return 0;
    struct rtmd_session **all = rtmd_malloc(n * sizeof(*all));
    size_t k = rtmd_presence_app_sessions(app, all, n);
    for (size_t i = 0; i < k; i++)
        rtmd_session_hold(all[i]);
    for (size_t i = 0; i < k; i++) {
        close_app_session(all[i], (void *)app);
        rtmd_session_unhold(all[i]);
    }
    free(all);
    return k;
}

static const struct rtmd_presence_hooks hooks_ = {.kicked = on_kicked, .member = gw_member_changed};

int rtmd_gateway_init(struct rtmd_gateway *gw, const struct rtmd_config *cfg,
                      struct rtmd_store *store, struct rtmd_messaging *messaging)
{
    memset(gw, 0, sizeof(*gw));
    gw->cfg = cfg;
    gw->store = store;
    gw->messaging = messaging;
    gw->ws_handler = (struct rtmd_ws_handler){
        .ctx = gw,
        .on_open = on_open,
        .on_message = on_message,
        .on_drain = NULL,
        .on_timeout = on_timeout,
        .on_closing = on_closing,
        .on_close = on_close,
        .on_going_away = on_going_away,
    };
    rtmd_buf_init(&gw->out, SIZE_MAX);
    gw_deliver_init(gw);
    return rtmd_presence_init(cfg, store, &hooks_, gw);
}

void rtmd_gateway_stop(struct rtmd_gateway *gw)
{
    rtmd_messaging_abort_waits(gw->messaging);
}

void rtmd_gateway_shutdown(struct rtmd_gateway *gw)
{
    if (!gw->initialized)
        return;
    gw_deliver_shutdown(gw);
    rtmd_presence_shutdown();
    rtmd_buf_free(&gw->out);
}
