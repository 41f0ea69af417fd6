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
