/*
 * store.c — backend dispatch and the event JSON shared by every backend.
 */
#include "store/store.h"

#include "core/buf.h"
#include "core/json.h"

int rtmd_store_open(struct rtmd_store **out, const struct rtmd_config *cfg, uv_loop_t *loop)
{
    *out = NULL;
    switch (cfg->backend) {
    case RTMD_STORE_EMBEDDED: return rtmd_store_embedded.open(out, cfg, loop);
    case RTMD_STORE_REDIS: return rtmd_store_redis.open(out, cfg, loop);
    }
    return -EINVAL;
}

enum rtmd_evlog_kind rtmd_event_log_kind(enum rtmd_event_type type)
{
    return type == RTMD_EVENT_JOIN || type == RTMD_EVENT_LEAVE ? RTMD_EVLOG_CHANNEL
                                                               : RTMD_EVLOG_USER;
}

const char *rtmd_event_type_name(enum rtmd_event_type type)
{
    switch (type) {
    case RTMD_EVENT_LOGIN: return "Login";
    case RTMD_EVENT_LOGOUT: return "Logout";
    case RTMD_EVENT_JOIN: return "Join";
    case RTMD_EVENT_LEAVE: return "Leave";
    }
    return "Unknown";
}

/* On failure out is left as it was (no partial event). */
int rtmd_event_format(struct rtmd_buf *out, const struct rtmd_presence_op *op)
{
    size_t start = out->len;
    struct rtmd_json j;
    rtmd_json_init(&j, out);
    rtmd_json_obj_begin(&j);
    if (rtmd_event_log_kind(op->type) == RTMD_EVLOG_CHANNEL) {
        rtmd_json_key(&j, "channel_id");
        rtmd_json_str(&j, op->channel);
        rtmd_json_key(&j, "group_id");
        rtmd_json_str(&j, op->channel);
    }
    rtmd_json_key(&j, "ms");
    rtmd_json_u64(&j, op->ms);
    rtmd_json_key(&j, "ts");
    rtmd_json_u64(&j, op->ms);
    rtmd_json_key(&j, "type");
    rtmd_json_cstr(&j, rtmd_event_type_name(op->type));
    rtmd_json_key(&j, "user_id");
    rtmd_json_str(&j, op->uid);
    rtmd_json_obj_end(&j);
    int rc = rtmd_json_finish(&j);
    if (rc)
        out->len = start;
    return rc;
}

int rtmd_message_event_format(struct rtmd_buf *out, const struct rtmd_message *m)
{
    size_t start = out->len;
    bool peer = m->type == RTMD_MSG_PEER;
    struct rtmd_json j;
    rtmd_json_init(&j, out);
    rtmd_json_obj_begin(&j);
    if (!peer) {
        rtmd_json_key(&j, "channel_id");
        rtmd_json_str(&j, m->dst);
    }
    rtmd_json_key(&j, "ms");
    rtmd_json_u64(&j, m->ms);
    rtmd_json_key(&j, "payload");
    rtmd_json_str(&j, m->payload);
    if (peer) {
        rtmd_json_key(&j, "to");
        rtmd_json_str(&j, m->dst);
    }
    rtmd_json_key(&j, "ts");
    rtmd_json_u64(&j, m->ms);
    rtmd_json_key(&j, "type");
    rtmd_json_cstr(&j, peer ? "PeerMessage" : "ChannelMessage");
    rtmd_json_key(&j, "user_id");
    rtmd_json_str(&j, m->src);
    rtmd_json_obj_end(&j);
    int rc = rtmd_json_finish(&j);
    if (rc)
        out->len = start;
    return rc;
}

size_t rtmd_event_ts_offset(struct rtmd_str json)
{
    static const char ts[] = ",\"ts\":";
    size_t klen = sizeof(ts) - 1;
    for (size_t i = 0; i + klen <= json.len; i++) {
        const char *c = memchr(json.p + i, ',', json.len - klen + 1 - i);
        if (!c)
            break;
        i = (size_t)(c - json.p);
        if (memcmp(c, ts, klen) == 0)
            return i;
    }
    /* Not an event of ours: the fields go before the closing brace. */
    return json.len ? json.len - 1 : 0;
}

char *rtmd_event_numbered_put(char *o, struct rtmd_str json, size_t ts_at, uint64_t seq,
                              struct rtmd_str session)
{
    memcpy(o, json.p, ts_at);
    o += ts_at;
    memcpy(o, ",\"seq\":", 7);
    o += 7;
    o += rtmd_u64_to_dec(seq, o);
    memcpy(o, ",\"session_id\":\"", 15);
    o += 15;
    if (session.len)
        memcpy(o, session.p, session.len);
    o += session.len;
    *o++ = '"';
    memcpy(o, json.p + ts_at, json.len - ts_at);
    return o + json.len - ts_at;
}

int rtmd_event_numbered(struct rtmd_buf *out, struct rtmd_str json, uint64_t seq,
                        struct rtmd_str session)
{
    int rc = rtmd_buf_reserve(out, json.len + session.len + RTMD_EVENT_NUMBERED_EXTRA);
    if (rc < 0)
        return rc;
    char *end = rtmd_event_numbered_put(out->data + out->len, json, rtmd_event_ts_offset(json), seq,
                                        session);
    out->len = (size_t)(end - out->data);
    return 0;
}

size_t rtmd_event_session(char *out, const char *node, uint64_t session)
{
    int k = snprintf(out, RTMD_SESSION_ID_MAX, "%s|%llu", node, (unsigned long long)session);
    return k < 0 ? 0 : RTMD_MIN((size_t)k, (size_t)RTMD_SESSION_ID_MAX - 1);
}
