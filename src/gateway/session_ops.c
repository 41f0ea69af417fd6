/*
 * session_ops.c — login, logout, ping.
 */
#include <stdio.h>
#include <stdlib.h>

#include "auth/token.h"
#include "core/alloc.h"
#include "core/ids.h"
#include "core/json.h"
#include "core/log.h"
#include "core/loop.h"
#include "gateway/gateway.h"
#include "gateway/internal.h"
#include "net/ws.h"

/* A login's take of its offline messages. */
struct offline_take {
    struct rtmd_gateway *gw;
    struct rtmd_session *s;
};

/* Offline messages kept for this user arrive right after its login reply,
 * oldest first, before the answers to any later op. */
static void on_offline_taken(void *arg, int status, const struct rtmd_message_batch *b)
{
    struct offline_take *t = arg;
    struct rtmd_gateway *gw = t->gw;
    struct rtmd_session *s = t->s;
    free(t);
    struct gw_client *c = gw_owner_enter(s);
    /* Offline messages are older than anything held during the login: they
     * go first, then the held pushes. */
    struct rtmd_buf held = {0};
    if (c) {
        held = c->held;
        rtmd_buf_init(&c->held, SIZE_MAX);
        c->ready = true;
    }
    if (status == 0 && s->state == RTMD_SESSION_ONLINE) {
        struct rtmd_str uid = rtmd_str_make(s->uid, s->uid_len);
        for (size_t i = 0; i < b->n; i++)
            rtmd_messaging_deliver_local(gw->messaging, s->app, b->messages[i].src, uid,
                                         b->messages[i].payload, b->messages[i].ms);
    }
    if (c) {
        if (held.len && c->conn)
            rtmd_conn_write_buffered(c->conn, held.data, held.len);
        gw_op_done(c);
        gw_leave(c);
    }
    rtmd_buf_free(&held);
    rtmd_session_unhold(s);
}

static int take_offline(struct rtmd_gateway *gw, struct rtmd_session *s)
{
    struct offline_take *t = rtmd_malloc(sizeof(*t));
    t->gw = gw;
    t->s = s;
    int r = rtmd_store_offline_take(gw->store, s->app, rtmd_str_make(s->uid, s->uid_len),
                                    on_offline_taken, t);
    if (r < 0)
        free(t);
    return r;
}

/* A login's line: at debug when it succeeded, at warn (with the reason,
 * never the token) when its credentials were refused. */
static void log_login(const struct gw_client *c, enum rtmd_log_level level, const char *msg,
                      struct rtmd_str appid, struct rtmd_str uid, const char *reason)
{
    if (!rtmd_log_enabled(level) || !c->conn)
        return;
    char remote[RTMD_CONN_REMOTE_MAX];
    struct rtmd_log_rec r;
    rtmd_log_begin(&r, level, "gateway", msg);
    if (reason)
        rtmd_log_cstr(&r, "reason", reason);
    rtmd_log_str(&r, "app", appid);
    rtmd_log_str(&r, "uid", uid);
    rtmd_log_cstr(&r, "remote", rtmd_conn_remote(c->conn, remote, sizeof(remote)));
    rtmd_log_u64(&r, "conn", c->conn->id);
    rtmd_log_end(&r);
}

/* The login reply names the heartbeat timeout, so that a client (a browser
 * page cannot send WebSocket pings) knows how often to send something. */
static void login_fields(struct rtmd_json *j, void *arg)
{
    (void)arg;
    rtmd_json_key(j, "heartbeat_timeout_s");
    rtmd_json_u64(j, rtmd_ws_heartbeat_timeout_s());
}

static void on_login_recorded(struct rtmd_session *s, int status, void *arg)
{
    (void)arg;
    struct gw_client *c = gw_owner_enter(s);
    if (!c)
        return;
    if (status == 0 && s->state == RTMD_SESSION_ONLINE)
        log_login(c, RTMD_LOG_DEBUG, "login", rtmd_str_cstr(s->app->id),
                  rtmd_str_make(s->uid, s->uid_len), NULL);
    /* unless a takeover answered it (superseded) */
    gw_reply_recorded_fields(c, status, login_fields, NULL);
    if (status < 0)
        rtmd_presence_abandon_login(s);
    else if (s->state == RTMD_SESSION_ONLINE && c->conn)
        rtmd_ws_start_heartbeat(c->conn);
    if (status < 0 && c->login_late) {
        /* Its deadline passed while it was recorded: no second chance. */
        c->busy = false;
        gw_close(c, GW_CLOSE_LOGIN_TIMEOUT);
    } else if (status == 0 && s->state == RTMD_SESSION_ONLINE && !c->closing &&
               take_offline(c->gw, s) == 0) {
        rtmd_session_hold(s); /* busy until the offline messages are out */
    } else {
        gw_client_ready(c);
        gw_op_done(c);
    }
    gw_leave(c);
}

static const char *token_error(int r)
{
    return r == RTMD_EEXPIRED ? "token_expired" : "invalid_token";
}

void gw_op_login(struct gw_client *c, const struct gw_request *r)
{
    if (c->session->state != RTMD_SESSION_NEW) {
        gw_reply_error(c, true, r->id, "already_logged_in", "this connection is logged in");
        return;
    }
    struct rtmd_str appid = gw_string(r->root, "appid");
    struct rtmd_str uid = gw_string(r->root, "uid");
    struct rtmd_str token = gw_string(r->root, "token");
    if (!rtmd_appid_valid(appid)) {
        gw_reply_error(c, true, r->id, "invalid_appid", "appid must be 32 characters [0-9A-Za-z]");
        return;
    }
    const struct rtmd_app *app = rtmd_config_app(c->gw->cfg, appid);
    if (!app) {
        log_login(c, RTMD_LOG_WARN, "login refused", appid, uid, "unknown app");
        gw_reply_error(c, true, r->id, "invalid_appid", "unknown appid");
        return;
    }
    if (!rtmd_id_valid(uid)) {
        gw_reply_error(c, true, r->id, "invalid_uid",
                       "uid must be 1-64 printable ASCII characters of the allowed set");
        return;
    }
    if (app->has_certificate) {
        if (!token.p || token.len == 0) {
            log_login(c, RTMD_LOG_WARN, "login refused", appid, uid, "no token");
            gw_reply_error(c, true, r->id, "invalid_token", "this app requires a token");
            return;
        }
        struct rtmd_token_info info;
        int tr =
            rtmd_token_verify(token, rtmd_str_cstr(app->id), rtmd_str_cstr(app->certificate), uid,
                              rtmd_now_ms() / 1000, c->gw->cfg->limits.token_clock_skew_s, &info);
        if (tr < 0) {
            const char *why = tr == RTMD_EEXPIRED  ? "token expired"
                              : tr == RTMD_EFUTURE ? "token issued in the future (check the "
                                                     "issuing server's clock)"
                                                   : "token does not verify for this app and uid";
            log_login(c, RTMD_LOG_WARN, "login refused", appid, uid, why);
            gw_reply_error(c, true, r->id, token_error(tr), why);
            return;
        }
    }
    int pr = rtmd_presence_login(c->session, app, uid, on_login_recorded, NULL);
    if (pr < 0) {
        gw_reply_store_failure(c, true, r->id, pr, "the login could not be recorded");
        return;
    }
    gw_op_begin(c, r);
}

static void on_logout_recorded(struct rtmd_session *s, int status, void *arg)
{
    (void)arg;
    struct gw_client *c = gw_owner_enter(s);
    if (!c)
        return;
    gw_reply_recorded(c, status);
    c->busy = false;
    gw_close(c, GW_CLOSE_LOGOUT);
    gw_leave(c);
}

void gw_op_logout(struct gw_client *c, const struct gw_request *r)
{
    int pr = rtmd_presence_end(c->session, on_logout_recorded, NULL);
    if (pr < 0) {
        gw_reply_store_failure(c, true, r->id, pr, "the logout could not be recorded");
        gw_close(c, GW_CLOSE_LOGOUT);
        return;
    }
    gw_op_begin(c, r);
}

static void ping_fields(struct rtmd_json *j, void *arg)
{
    (void)arg;
    rtmd_json_key(j, "ms");
    rtmd_json_u64(j, rtmd_now_ms());
}

void gw_op_ping(struct gw_client *c, const struct gw_request *r)
{
    gw_reply_ok(c, true, r->id, ping_fields, NULL);
}
