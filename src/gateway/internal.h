/*
 * internal.h — what the gateway's files share (not for other modules).
 */
#ifndef RTMD_GATEWAY_INTERNAL_H
#define RTMD_GATEWAY_INTERNAL_H

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/list.h"
#include "gateway/gateway.h"
#include "net/conn.h"
#include "presence/presence.h"
#include "store/store.h"

/* One WebSocket connection's protocol state (conn->user). */
struct gw_client {
    struct rtmd_gateway *gw;
    struct rtmd_conn *conn; /* NULL once the connection is gone */
    struct rtmd_session *session;
    struct rtmd_list queue; /* frames waiting while busy */
    size_t queued_bytes;
    uint32_t queued;
    bool busy;      /* an op waits for the store */
    bool has_op_id; /* the id of the op that made us busy */
    bool op_open;   /* ... and it is not answered yet (a login waiting for offline messages is) */
    int64_t op_id;
    bool closing;         /* the gateway decided to close (logout, kick, timeout) */
    bool dead;            /* the connection closed while gateway code was running */
    bool ready;           /* pushes go straight out: login answered and offline messages out,
                             and no join waiting for its reply */
    bool login_late;      /* the login deadline passed while the login was being recorded */
    bool cut;             /* gw_cut_off() is closing it */
    bool going_away;      /* draining: close 1001 once the op in flight is answered */
    struct rtmd_buf held; /* pushes that arrived while not ready, in order */
    uint32_t depth;       /* gateway calls on the stack that use this client */
    uint64_t opened_ns;   /* uv_hrtime() at the upgrade, for the access log */
};

/* A parsed request frame. */
struct gw_request {
    cJSON *root;
    bool has_id;
    int64_t id;
    bool had_nul; /* a \u0000 was read as \u0001 (see rtmd_json_parse_object) */
};

/* Every entry into gateway code that uses a client brackets it with these:
 * a connection closing underneath (a failed write, the output budget) then
 * frees the client only when the outermost call leaves. */
void gw_enter(struct gw_client *c);
void gw_leave(struct gw_client *c);
/* For store callbacks: s's client, entered — or NULL when it is gone. */
struct gw_client *gw_owner_enter(struct rtmd_session *s);

/* Replies; `fields` (may be NULL) writes extra members after "ok". */
struct rtmd_json;
void gw_reply_ok(struct gw_client *c, bool has_id, int64_t id,
                 void (*fields)(struct rtmd_json *j, void *arg), void *arg);
void gw_reply_error(struct gw_client *c, bool has_id, int64_t id, const char *code,
                    const char *message);
/* Sends one complete JSON text (a push); applies the output budget. */
int gw_send(struct gw_client *c, const char *p, size_t n);

/* An error reply for a store call that failed with status: "unavailable"
 * when the store could not be reached or written now (a full disk, Redis
 * not answering in time), else "store_error"; what is the start of the
 * message ("the join could not be recorded"). */
void gw_reply_store_failure(struct gw_client *c, bool has_id, int64_t id, int status,
                            const char *what);
/* Answers the op that made c busy from the store's status (ok, or
 * unavailable when the store's disk is full, or store_error) — unless it
 * was answered already (the connection closed meanwhile: see gw_close). */
void gw_reply_recorded(struct gw_client *c, int status);
/* The same, with more fields in an ok reply (fields may be NULL). */
void gw_reply_recorded_fields(struct gw_client *c, int status,
                              void (*fields)(struct rtmd_json *j, void *arg), void *arg);
/* A presence callback for ops whose whole answer is that reply. */
void gw_on_recorded(struct rtmd_session *s, int status, void *arg);

/* Marks c busy with op id; gw_op_done() answers nothing but resumes the queue. */
void gw_op_begin(struct gw_client *c, const struct gw_request *r);
void gw_op_done(struct gw_client *c);

/* Reads a string member: the value, or a view with p == NULL when absent or
 * not a string. */
struct rtmd_str gw_string(const cJSON *root, const char *name);

/* Op handlers: each answers (now, or once its store call completes). */
void gw_op_login(struct gw_client *c, const struct gw_request *r);
void gw_op_logout(struct gw_client *c, const struct gw_request *r);
void gw_op_ping(struct gw_client *c, const struct gw_request *r);
void gw_op_join(struct gw_client *c, const struct gw_request *r);
void gw_op_leave(struct gw_client *c, const struct gw_request *r);
void gw_op_members(struct gw_client *c, const struct gw_request *r);
void gw_op_status(struct gw_client *c, const struct gw_request *r);

/* online_ops.c: a join's presence callback (arg: a struct join_channel the
 * callback frees); its reply carries the channel's members. */
struct join_channel {
    uint8_t len;
    char name[RTMD_ID_MAX];
};
void gw_join_recorded(struct rtmd_session *s, int status, void *arg);

void gw_op_peer(struct gw_client *c, const struct gw_request *r);
void gw_op_publish(struct gw_client *c, const struct gw_request *r);
void gw_op_ack(struct gw_client *c, const struct gw_request *r);

/* deliver.c */
void gw_deliver_init(struct rtmd_gateway *gw);
void gw_deliver_shutdown(struct rtmd_gateway *gw);
/* The presence hook: member_joined / member_left to the other members. */
void gw_member_changed(void *ctx, struct rtmd_channel *ch, struct rtmd_session *s, bool joined);
/* Pushes a peer message to uid's session on this node (see struct
 * rtmd_delivery); false when it holds none. */
bool gw_push_peer(struct rtmd_gateway *gw, const struct rtmd_app *app, struct rtmd_str from,
                  struct rtmd_str to, struct rtmd_str payload, uint64_t ms, uint64_t mid);
/* The client's login is answered and its offline messages are out: pushes
 * held meanwhile follow them, in order. */
void gw_client_ready(struct gw_client *c);
/* The one way rtmd cuts a client off for its output (pushes over
 * ws_output_budget, or its own output not read in time): counted, logged,
 * reading stopped at once, and closed from the loop — never inside the
 * presence, fan-out or op code that found it (that code may be walking the
 * very membership the close removes). */
void gw_cut_off(struct rtmd_gateway *gw, struct rtmd_conn *conn, const char *why);

/* Why the gateway closes a connection. */
enum gw_close_why {
    GW_CLOSE_LOGOUT,        /* 1000 "logout" */
    GW_CLOSE_KICKED,        /* 1000 "remote_login", after the kicked push */
    GW_CLOSE_HEARTBEAT,     /* 1001 "heartbeat timeout" */
    GW_CLOSE_LOGIN_TIMEOUT, /* 1008 "login timeout" */
    GW_CLOSE_NODE_LOST,     /* 1001 "node_lost": another node ended this node's sessions */
    GW_CLOSE_SHUTDOWN,      /* 1001 "going away": the server drains (SIGTERM) */
    GW_CLOSE_APP_REMOVED, /* 1008 "app_removed", after the kicked push: a reload removed the app */
};
/* Answers every op of c not answered yet (the one in flight, the queued
 * ones) with an error, then ends the client's session (if any) and closes:
 * each op a client sent gets exactly one reply, before the close frame. */
void gw_close(struct gw_client *c, enum gw_close_why why);

#endif
