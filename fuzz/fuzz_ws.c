/*
 * fuzz_ws.c — libFuzzer driver for WebSocket connections (net/ws.c: the
 * frame-size scan, partial frames, the wslay hand-off, close/ping handling,
 * the 1009 limit) and the client protocol on top (gateway: JSON, op
 * dispatch, error replies, the op queue, presence).
 *
 * Everything runs over the link-time conn stubs of stub_conn.h (no
 * sockets). Each connection is opened through http.c with a real upgrade
 * request and rtmd_ws_accept(), so the handshake and its leftover bytes are
 * on the path too. The store is a stub whose calls complete through
 * rtmd_defer (status 0 unless the flags say otherwise). Input:
 *
 *   byte 0  flags
 *           bit 0  wrap mode: the rest are lines, each made into frames (below);
 *                  else the rest are raw bytes on one connection
 *           bit 1  small limits (message 256, payload 64, 3 channels, 512-byte
 *                  output budget); else message 8192, payload 4096, 20 channels
 *           bit 2  backpressure: writes stay queued until a drain event
 *           bit 3  a write on the first connection fails after 0-15 writes
 *           bit 4  store calls may complete with an error status
 *           bit 5  store calls may fail synchronously (-EAGAIN)
 *           bit 6  offline_take returns a message
 *           bit 7  timeouts may fire between reads
 *   byte 1  seed of the PRNG that picks read sizes, masks, splits and events
 *
 * Wrap mode: lines end with '\n'. A line is sent as one masked text frame on
 * connection A, unless its first byte is a directive below 0x20:
 *   0x01 connection B, 0x02 fragmented (2-3 frames, maybe a ping between),
 *   0x04 binary, 0x08 unmasked (a protocol error);        combinable
 *   0x10|k special, k: 0/1 ping A/B (payload = rest), 2/3 close A/B (rest:
 *     2-byte code + reason), 4/5 raw bytes A/B, 6/7 pong A/B, 8/9 EOF A/B,
 *     10/11 timeout A/B, 12 drain writes, 13 run the loop, 14/15 reset A/B.
 * A line for a connection that is gone opens a new one (up to 16).
 *
 * Checked: presence events reach the store in an order that makes sense per
 * user (Login, then Joins/Leaves of joined channels, Leaves before Logout,
 * nobody online at the end); every server frame is unmasked, final, and a
 * text frame holds one JSON object with an "op"; nothing follows a close
 * frame; reading never stays paused once the loop is idle; every connection
 * and session ends. Leaks show under ASan.
 *
 * Inputs that still make this driver fail are kept in fuzz/known_bugs/ until
 * their bug is fixed (see the README there).
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/hashmap.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/loop.h"
#include "gateway/gateway.h"
#include "net/http.h"
#include "net/ws.h"
#include "presence/presence.h"
#include "store/store.h"
#include "stub_conn.h"

#define FUZZ_NAME "fuzz_ws"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX (256 * 1024)
#define OUT_MAX   (16u * 1024 * 1024)
#define SLOTS     2
#define OPENS_MAX 16

#define APP0      "970CA35de60c44645bbae8a215061b33"
#define APP1      "0123456789abcdef0123456789abcdef"
#define CERT1     "5CFd2fd1755d40ecb72977518be15d3b"

static const char upgrade_request[] = "GET /v1/rtm HTTP/1.1\r\n"
                                      "Host: rtmd\r\n"
                                      "Upgrade: websocket\r\n"
                                      "Connection: Upgrade\r\n"
                                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                      "Sec-WebSocket-Version: 13\r\n\r\n";

struct slot {
    struct stub_conn *conn; /* NULL once freed */
    struct rtmd_buf out;    /* what the client received */
    struct rtmd_buf in;     /* what the client sent and the server did not read yet */
    bool used;
};

static struct rtmd_config cfg_;
static struct rtmd_app apps_[2];
static struct rtmd_app *app_list_[2];
static struct rtmd_server server_;
static struct rtmd_listener listener_;
static struct slot slots_[SLOTS];
static int opens_;

/* ---- a model of what presence must record ------------------------------------------ */

struct user {
    const struct rtmd_app *app;
    char uid[RTMD_ID_MAX];
    size_t uid_len;
    bool online;
    uint32_t logins; /* which session is online */
};

struct membership {
    size_t user;
    char channel[RTMD_ID_MAX];
    size_t len;
};

static struct user *users_;
static size_t n_users_;
static struct membership *members_;
static size_t n_members_;
static bool model_on_;

static size_t user_of(const struct rtmd_app *app, struct rtmd_str uid)
{
    for (size_t i = 0; i < n_users_; i++)
        if (users_[i].app == app &&
            rtmd_str_eq(rtmd_str_make(users_[i].uid, users_[i].uid_len), uid))
            return i;
    users_ = rtmd_realloc(users_, (n_users_ + 1) * sizeof(*users_));
    struct user *u = &users_[n_users_];
    u->app = app;
    memcpy(u->uid, uid.p, uid.len);
    u->uid_len = uid.len;
    u->online = false;
    u->logins = 0;
    return n_users_++;
}

static long member_of(size_t user, struct rtmd_str channel)
{
    for (size_t i = 0; i < n_members_; i++)
        if (members_[i].user == user &&
            rtmd_str_eq(rtmd_str_make(members_[i].channel, members_[i].len), channel))
            return (long)i;
    return -1;
}

static size_t channels_of(size_t user)
{
    size_t n = 0;
    for (size_t i = 0; i < n_members_; i++)
        n += members_[i].user == user;
    return n;
}

static void model_apply(const struct rtmd_app *app, const struct rtmd_presence_op *op)
{
    CHECK(rtmd_id_valid(op->uid));
    size_t u = user_of(app, op->uid);
    switch (op->type) {
    case RTMD_EVENT_LOGIN:
        CHECK(!users_[u].online);
        users_[u].online = true;
        users_[u].logins++;
        break;
    case RTMD_EVENT_JOIN:
        CHECK(rtmd_id_valid(op->channel));
        CHECK(users_[u].online && member_of(u, op->channel) < 0);
        CHECK(channels_of(u) < cfg_.limits.max_channels_per_user);
        members_ = rtmd_realloc(members_, (n_members_ + 1) * sizeof(*members_));
        members_[n_members_].user = u;
        memcpy(members_[n_members_].channel, op->channel.p, op->channel.len);
        members_[n_members_].len = op->channel.len;
        n_members_++;
        break;
    case RTMD_EVENT_LEAVE: {
        CHECK(users_[u].online);
        long m = member_of(u, op->channel);
        CHECK(m >= 0);
        members_[m] = members_[--n_members_];
        break;
    }
    case RTMD_EVENT_LOGOUT:
        CHECK(users_[u].online && channels_of(u) == 0); /* Leaves come first */
        users_[u].online = false;
        break;
    }
}

static void model_reset(void)
{
    free(users_);
    free(members_);
    users_ = NULL;
    members_ = NULL;
    n_users_ = n_members_ = 0;
}

/* ---- the store stub -------------------------------------------------------------------- */

/* How a store call answers: one of the callbacks is set. */
struct reply {
    rtmd_store_cb cb;
    rtmd_store_pull_cb pull_cb;
    rtmd_store_messages_cb messages_cb;
    rtmd_store_count_cb count_cb;
    rtmd_store_handle_cb handle_cb;
    rtmd_store_query_cb query_cb;
    bool with_message; /* messages_cb: one message (if status 0), else none */
};

struct call {
    struct rtmd_deferred d;
    int status;
    struct reply to;
    struct rtmd_history_query query;
    void *arg;
    long login_user; /* a presence call's LOGIN op: its user in the model, or -1 */
    long join_user;  /* a presence call of one JOIN: its user in the model, or -1 */
    uint32_t join_session;
    char join_channel[RTMD_ID_MAX];
    size_t join_len;
};

static struct rtmd_store store_;
static struct rtmd_messaging messaging_;
static struct rtmd_gateway gateway_;
static size_t calls_pending_;

static void call_done(struct rtmd_deferred *d)
{
    struct call *k = RTMD_CONTAINER_OF(d, struct call, d);
    calls_pending_--;
    /* A login the store failed to record is forgotten by the server (no
     * Logout will follow): the model forgets it too. */
    if (k->status < 0 && k->login_user >= 0 && model_on_)
        users_[k->login_user].online = false;
    /* A join it failed to record is undone (no Leave will follow) if that
     * session is still there. */
    if (k->status < 0 && k->join_user >= 0 && model_on_ && users_[k->join_user].online &&
        users_[k->join_user].logins == k->join_session) {
        long m = member_of((size_t)k->join_user, rtmd_str_make(k->join_channel, k->join_len));
        if (m >= 0)
            members_[m] = members_[--n_members_];
    }
    if (k->to.cb) {
        k->to.cb(k->arg, k->status);
    } else if (k->to.pull_cb) {
        struct rtmd_event_batch b = {0, RTMD_STR_NULL, 0};
        k->to.pull_cb(k->arg, k->status, &b);
    } else if (k->to.messages_cb) {
        struct rtmd_message m = {RTMD_MSG_PEER, RTMD_STR_LIT("alice"), RTMD_STR_LIT("bob"),
                                 RTMD_STR_LIT("kept for you"), 1700000000000ull};
        struct rtmd_message_batch b = {k->to.with_message && k->status == 0 ? 1u : 0u, &m};
        k->to.messages_cb(k->arg, k->status, &b);
    } else if (k->to.count_cb) {
        k->to.count_cb(k->arg, k->status, 0);
    } else if (k->to.handle_cb) {
        k->to.handle_cb(k->arg, k->status, "h1");
    } else if (k->to.query_cb) {
        k->to.query_cb(k->arg, k->status, &k->query);
    }
    free(k);
}

/* Starts a call that answers arg through `to` from the loop: with status 0,
 * or an error if the flags say so; or refuses it synchronously (-EAGAIN). */
static struct call *last_call_;

static int call_start(void *arg, struct reply to)
{
    if ((flags_ & 0x20) && (rnd() & 3) == 0)
        return -EAGAIN;
    struct call *k = rtmd_calloc(1, sizeof(*k));
    k->arg = arg;
    k->login_user = -1;
    k->join_user = -1;
    last_call_ = k;
    if ((flags_ & 0x10) && (rnd() & 3) == 0)
        k->status = (rnd() & 1) ? -ETIMEDOUT : RTMD_ESTORE;
    k->to = to;
    calls_pending_++;
    rtmd_defer(&k->d, call_done);
    return 0;
}

static int st_presence(struct rtmd_store *s, const struct rtmd_app *app,
                       const struct rtmd_presence_op *ops, size_t n, rtmd_store_cb cb, void *arg)
{
    CHECK(app && n > 0 && cb);
    int err = call_start(arg, (struct reply){.cb = cb});
    if (err)
        return err;
    struct rtmd_buf ev;
    rtmd_buf_init(&ev, 4096);
    for (size_t i = 0; i < n; i++) {
        CHECK(rtmd_event_format(&ev, &ops[i]) == 0);
        if (model_on_) {
            model_apply(app, &ops[i]);
            if (ops[i].type == RTMD_EVENT_LOGIN)
                last_call_->login_user = (long)user_of(app, ops[i].uid);
            if (ops[i].type == RTMD_EVENT_JOIN && n == 1) {
                size_t u = user_of(app, ops[i].uid);
                last_call_->join_user = (long)u;
                last_call_->join_session = users_[u].logins;
                memcpy(last_call_->join_channel, ops[i].channel.p, ops[i].channel.len);
                last_call_->join_len = ops[i].channel.len;
            }
        }
    }
    rtmd_buf_free(&ev);
    return 0;
}

static int st_pull(struct rtmd_store *s, const struct rtmd_app *app, enum rtmd_evlog_kind kind,
                   uint32_t region, uint32_t max, uint64_t after, rtmd_store_pull_cb cb, void *arg)
{
    return call_start(arg, (struct reply){.pull_cb = cb});
}

static int st_rate(struct rtmd_store *s, const struct rtmd_app *app, enum rtmd_rate_bucket bucket,
                   uint32_t qps, rtmd_store_cb cb, void *arg)
{
    return call_start(arg, (struct reply){.cb = cb});
}

static void check_message(const struct rtmd_message *m)
{
    CHECK(rtmd_id_valid(m->src));
    CHECK(rtmd_id_valid(m->dst));
    CHECK(m->payload.len >= 1 && m->payload.len <= cfg_.limits.max_payload);
    CHECK(rtmd_utf8_valid(m->payload.p, m->payload.len));
}

static int st_history_put(struct rtmd_store *s, const struct rtmd_app *app,
                          const struct rtmd_message *m, const struct rtmd_str *recipients,
                          size_t n_recipients, rtmd_store_cb cb, void *arg)
{
    check_message(m);
    for (size_t i = 0; i < n_recipients; i++)
        CHECK(rtmd_id_valid(recipients[i]));
    return call_start(arg, (struct reply){.cb = cb});
}

static int st_history_query(struct rtmd_store *s, const struct rtmd_app *app,
                            const struct rtmd_history_query *q, rtmd_store_messages_cb cb,
                            void *arg)
{
    return call_start(arg, (struct reply){.messages_cb = cb}); /* always an empty page */
}

static int st_history_count(struct rtmd_store *s, const struct rtmd_app *app,
                            const struct rtmd_history_query *q, rtmd_store_count_cb cb, void *arg)
{
    return call_start(arg, (struct reply){.count_cb = cb});
}

static int st_handle_put(struct rtmd_store *s, const struct rtmd_app *app,
                         const struct rtmd_history_query *q, uint64_t ttl_ms,
                         rtmd_store_handle_cb cb, void *arg)
{
    return call_start(arg, (struct reply){.handle_cb = cb});
}

static int st_handle_take(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str handle,
                          rtmd_store_query_cb cb, void *arg)
{
    return call_start(arg, (struct reply){.query_cb = cb});
}

static int st_offline_put(struct rtmd_store *s, const struct rtmd_app *app,
                          const struct rtmd_message *m, uint32_t max_per_user, uint64_t ttl_ms,
                          rtmd_store_cb cb, void *arg)
{
    check_message(m);
    return call_start(arg, (struct reply){.cb = cb});
}

static int st_offline_take(struct rtmd_store *s, const struct rtmd_app *app, struct rtmd_str uid,
                           rtmd_store_messages_cb cb, void *arg)
{
    CHECK(rtmd_id_valid(uid));
    return call_start(arg, (struct reply){.messages_cb = cb, .with_message = (flags_ & 0x40) != 0});
}

static void st_stats(struct rtmd_store *s, struct rtmd_store_stats *out)
{
    memset(out, 0, sizeof(*out));
}

static const struct rtmd_store_type stub_store_type = {
    .name = "stub",
    .open = NULL,
    .presence = st_presence,
    .pull = st_pull,
    .rate = st_rate,
    .history_put = st_history_put,
    .history_query = st_history_query,
    .history_count = st_history_count,
    .handle_put = st_handle_put,
    .handle_take = st_handle_take,
    .offline_put = st_offline_put,
    .offline_take = st_offline_take,
    .stats = st_stats,
    .close = NULL,
};

/* ---- configuration ------------------------------------------------------------------------ */

static void config_init(void)
{
    static bool done;
    if (!done) {
        const char *ids[2] = {APP0, APP1};
        rtmd_hashmap_init(&cfg_.apps_by_id);
        for (uint32_t i = 0; i < 2; i++) {
            struct rtmd_app *a = &apps_[i];
            snprintf(a->id, sizeof(a->id), "%s", ids[i]);
            a->index = i;
            app_list_[i] = a;
        }
        snprintf(apps_[1].certificate, sizeof(apps_[1].certificate), "%s", CERT1);
        apps_[1].has_certificate = true;
        cfg_.apps = app_list_;
        cfg_.n_apps = 2;
        for (uint32_t i = 0; i < 2; i++)
            rtmd_hashmap_put(&cfg_.apps_by_id, rtmd_str_cstr(apps_[i].id), &apps_[i]);
        snprintf(cfg_.regions[0], RTMD_REGION_MAX, "default");
        cfg_.n_regions = 1;
        cfg_.node_id = 1;
        done = true;
    }
    bool small = (flags_ & 0x02) != 0;
    struct rtmd_limits *l = &cfg_.limits;
    memset(l, 0, sizeof(*l));
    l->events_retain = 2000;
    l->events_max_pull = 1000;
    l->heartbeat_timeout_s = 30;
    l->login_timeout_s = 10;
    l->max_channels_per_user = small ? 3 : 20;
    l->max_payload = small ? 64 : 4096;
    l->http_max_head = 16384;
    l->http_max_headers = 100;
    l->http_max_body = 1048576;
    l->http_header_timeout_ms = 10000;
    l->http_idle_timeout_s = 60;
    l->ws_max_message = small ? 256 : 8192;
    l->ws_output_budget = small ? 512 : 1048576;
    l->max_connections = 100;
    l->store_timeout_ms = 5000;
    l->offline_max_per_user = 200;
    l->offline_retention_s = 604800;
    l->history_handle_ttl_s = 600;
    l->peer_ack_timeout_ms = 10000;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void on_request(struct rtmd_http_request *req)
{
    if (rtmd_str_eq_cstr(req->path, "/v1/rtm"))
        rtmd_ws_accept(req);
    else
        rtmd_http_respond_error(req, 404, "not_found", "no such endpoint");
}

/* Checks what a client received: the 101, then unmasked final frames; text
 * frames hold one JSON object with an "op"; nothing after a close frame. */
static void check_output(const struct rtmd_buf *out)
{
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\n";
    if (out->len == 0 || out->len == out->max)
        return; /* nothing written (a failed first write), or truncated */
    const unsigned char *p = (const unsigned char *)out->data;
    size_t n = out->len, pos = 0;
    CHECK(n >= sizeof(ok) - 1 && memcmp(p, ok, sizeof(ok) - 1) == 0);
    for (; pos + 3 < n; pos++)
        if (memcmp(p + pos, "\r\n\r\n", 4) == 0)
            break;
    CHECK(pos + 3 < n);
    pos += 4;
    bool closed = false;
    while (pos < n) {
        CHECK(!closed);
        uint64_t total;
        if (rtmd_ws_frame_size(p + pos, n - pos, &total) != 1 || total > n - pos) {
            /* wslay writes a frame's header and payload separately: a write
             * that failed may have cut the last frame. */
            CHECK(flags_ & 0x08);
            return;
        }
        unsigned op = p[pos] & 0x0f;
        CHECK((p[pos] & 0xf0) == 0x80);  /* FIN, no reserved bits */
        CHECK((p[pos + 1] & 0x80) == 0); /* servers do not mask */
        size_t len = p[pos + 1] & 0x7f, hdr = 2;
        if (len == 126) {
            len = (size_t)p[pos + 2] << 8 | p[pos + 3];
            hdr = 4;
        } else if (len == 127) {
            hdr = 10;
            len = (size_t)(total - hdr);
        }
        const char *payload = (const char *)p + pos + hdr;
        if (op == 1) {
            CHECK(rtmd_utf8_valid(payload, len));
            cJSON *root = cJSON_ParseWithLength(payload, len);
            CHECK(cJSON_IsObject(root));
            CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "op")));
            cJSON_Delete(root);
        } else if (op == 8) {
            closed = true;
        } else {
            CHECK(op == 10); /* a pong */
        }
        pos += (size_t)total;
    }
}

static struct slot *slot_open(int i)
{
    struct slot *s = &slots_[i];
    if (s->conn && !(s->conn->c.flags & RTMD_CONN_CLOSING))
        return s;
    if (s->conn || opens_ >= OPENS_MAX)
        return NULL; /* still closing, or enough connections */
    if (s->used)
        check_output(&s->out);
    rtmd_buf_reset(&s->out);
    rtmd_buf_reset(&s->in);
    s->used = true;
    opens_++;
    stub_conn_open(&server_, &listener_, &s->out, &s->conn);
    s->conn->backpressure = (flags_ & 0x04) != 0;
    if ((flags_ & 0x08) && i == 0 && opens_ == 1)
        s->conn->writes_left = (long)below(16);
    rtmd_buf_append(&s->in, upgrade_request, sizeof(upgrade_request) - 1);
    return s;
}

static void drain_all(void)
{
    for (int i = 0; i < SLOTS; i++)
        if (slots_[i].conn)
            stub_drain(slots_[i].conn);
}

/* Between reads on *conn: loop passes, write completions, maybe a timeout. */
static void events(struct stub_conn **conn)
{
    uint32_t e = loop_event();
    if (e >= 9 && e < 12)
        drain_all();
    else if (e == 12 && (flags_ & 0x80) && *conn)
        stub_fire_timeout(*conn);
}

/* Delivers up to n of the slot's pending bytes, in reads of any size. */
static void deliver(struct slot *s, size_t n)
{
    size_t off = feed(&s->conn, s->in.data, RTMD_MIN(n, s->in.len), 512, drain_all, events);
    if (!s->conn || (s->conn->c.flags & RTMD_CONN_CLOSING))
        rtmd_buf_reset(&s->in); /* nobody reads it any more */
    else
        rtmd_buf_consume(&s->in, off);
}

/* ---- frames ------------------------------------------------------------------------------------
 */

static void put_frame(struct rtmd_buf *b, bool fin, unsigned op, const uint8_t *p, size_t n,
                      bool masked)
{
    uint8_t h[14];
    size_t hl = 0;
    h[hl++] = (uint8_t)((fin ? 0x80 : 0) | op);
    uint8_t m = masked ? 0x80 : 0;
    bool wide = (rnd() & 63) == 0; /* a length not in its shortest form */
    if (n < 126 && !wide) {
        h[hl++] = (uint8_t)(m | n);
    } else if (n < 65536 && !(wide && n >= 126)) {
        h[hl++] = m | 126;
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else {
        h[hl++] = m | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint8_t key[4] = {0, 0, 0, 0};
    if (masked) {
        if (rnd() & 7) {
            uint32_t r = rnd();
            memcpy(key, &r, 4);
        }
        memcpy(h + hl, key, 4);
        hl += 4;
    }
    rtmd_buf_append(b, h, hl);
    for (size_t i = 0; i < n; i++)
        rtmd_buf_append_byte(b, (char)(p[i] ^ key[i & 3]));
}

/* One message: one frame, or 2-3 fragments (with a ping between, maybe). */
static void put_message(struct rtmd_buf *b, unsigned d, const uint8_t *p, size_t n)
{
    unsigned op = (d & 0x04) ? 2 : 1;
    bool masked = !(d & 0x08);
    if (!(d & 0x02) || n < 2) {
        put_frame(b, true, op, p, n, masked);
        return;
    }
    size_t cut1 = 1 + below((uint32_t)(n - 1)), cut2 = n;
    if (n - cut1 >= 2 && (rnd() & 1))
        cut2 = cut1 + 1 + below((uint32_t)(n - cut1 - 1));
    put_frame(b, false, op, p, cut1, masked);
    if (rnd() & 3)
        put_frame(b, true, 9, (const uint8_t *)"between", 7, masked);
    put_frame(b, cut2 == n, 0, p + cut1, cut2 - cut1, masked);
    if (cut2 < n)
        put_frame(b, true, 0, p + cut2, n - cut2, masked);
}

/* After a line: deliver all, all but a tail (a partial frame waits), or nothing yet. */
static void flush_after_line(struct slot *s)
{
    uint32_t r = rnd() & 7;
    if (r < 6)
        deliver(s, s->in.len);
    else if (r == 6 && s->in.len > 1)
        deliver(s, s->in.len - 1 - below((uint32_t)RTMD_MIN(s->in.len - 1, (size_t)16)));
}

static void special(unsigned k, const uint8_t *p, size_t n)
{
    int i = (int)(k & 1);
    struct slot *s = &slots_[i];
    switch (k) {
    case 0:
    case 1:
    case 6:
    case 7:
        if ((s = slot_open(i)))
            put_frame(&s->in, true, k < 2 ? 9 : 10, p, RTMD_MIN(n, (size_t)125), true);
        break;
    case 2:
    case 3:
        if ((s = slot_open(i)))
            put_frame(&s->in, true, 8, p, RTMD_MIN(n, (size_t)125), true);
        break;
    case 4:
    case 5:
        if ((s = slot_open(i)))
            rtmd_buf_append(&s->in, p, n);
        break;
    case 8:
    case 9:
        if (s->conn) {
            deliver(s, s->in.len);
            if (s->conn)
                stub_eof(s->conn);
        }
        return;
    case 10:
    case 11:
        if (s->conn)
            stub_fire_timeout(s->conn);
        return;
    case 12: drain_all(); return;
    case 13: stub_run_loop(); return;
    default:
        if (s->conn)
            rtmd_conn_close(&s->conn->c);
        return;
    }
    if (s)
        flush_after_line(s);
}

static void run_lines(const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        const uint8_t *nl = memchr(p + off, '\n', n - off);
        size_t len = nl ? (size_t)(nl - (p + off)) : n - off;
        const uint8_t *line = p + off;
        off += len + (nl ? 1 : 0);
        unsigned d = 0;
        if (len > 0 && line[0] < 0x20) {
            d = line[0];
            line++;
            len--;
        }
        if (d & 0x10) {
            special(d & 0x0f, line, len);
            continue;
        }
        struct slot *s = slot_open((int)(d & 1));
        if (!s)
            continue;
        put_message(&s->in, d, line, len);
        flush_after_line(s);
    }
}

/* ---- the end ----------------------------------------------------------------------------------
 */

static bool any_conn(void)
{
    for (int i = 0; i < SLOTS; i++)
        if (slots_[i].conn)
            return true;
    return false;
}

static void finish(void)
{
    for (int i = 0; i < SLOTS; i++) {
        struct slot *s = &slots_[i];
        if (s->conn)
            deliver(s, s->in.len);
        if (!s->conn)
            continue;
        switch (rnd() & 3) {
        case 0:
        case 1: stub_eof(s->conn); break;
        case 2: rtmd_conn_close(&s->conn->c); break;
        default: break; /* the client goes silent: timeouts end it */
        }
    }
    for (int round = 0; any_conn() || calls_pending_; round++) {
        CHECK(round < 50);
        stub_run_loop();
        drain_all();
        stub_run_loop();
        for (int i = 0; i < SLOTS; i++) {
            struct slot *s = &slots_[i];
            if (s->conn && !(s->conn->c.flags & RTMD_CONN_CLOSING))
                CHECK(stub_fire_timeout(s->conn)); /* idle connections have a timeout */
        }
    }
    stub_run_loop();
    CHECK(calls_pending_ == 0);
    CHECK(stub_live_ == 0);
    CHECK(server_.n_conns == 0);
    CHECK(rtmd_presence_session_count() == 0);
    if (model_on_)
        for (size_t i = 0; i < n_users_; i++)
            CHECK(!users_[i].online); /* every session ended with a Logout */
    for (int i = 0; i < SLOTS; i++)
        if (slots_[i].used)
            check_output(&slots_[i].out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_begin(&data, &size, INPUT_MAX))
        return 0;
    config_init();
    store_.type = &stub_store_type;
    calls_pending_ = 0;
    model_on_ = !(flags_ & 0x20); /* a refused Logout is lost: the model cannot follow */
    opens_ = 0;
    for (int i = 0; i < SLOTS; i++) {
        rtmd_buf_init(&slots_[i].out, OUT_MAX);
        rtmd_buf_init(&slots_[i].in, 4 * INPUT_MAX);
        slots_[i].conn = NULL;
        slots_[i].used = false;
    }
    CHECK(rtmd_messaging_init(&messaging_, &cfg_, &store_) == 0);
    CHECK(rtmd_gateway_init(&gateway_, &cfg_, &store_, &messaging_) == 0);
    rtmd_ws_init(&cfg_, &gateway_.ws_handler);
    stub_server_init(&server_, &listener_, &cfg_, on_request);

    if (flags_ & 0x01) {
        run_lines(data, size);
    } else {
        struct slot *s = slot_open(0);
        rtmd_buf_append(&s->in, data, size);
        deliver(s, s->in.len);
    }
    finish();

    stub_server_close(&server_);
    rtmd_ws_shutdown();
    rtmd_gateway_shutdown(&gateway_);
    rtmd_messaging_shutdown(&messaging_);
    for (int i = 0; i < SLOTS; i++) {
        rtmd_buf_free(&slots_[i].out);
        rtmd_buf_free(&slots_[i].in);
    }
    model_reset();
    return 0;
}
