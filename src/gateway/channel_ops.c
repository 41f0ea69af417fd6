/*
 * channel_ops.c — join and leave.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "core/ids.h"
#include "gateway/gateway.h"
#include "gateway/internal.h"

static bool channel_arg(struct gw_client *c, const struct gw_request *r, struct rtmd_str *out)
{
    *out = gw_string(r->root, "channel");
    if (!rtmd_id_valid(*out)) {
        gw_reply_error(c, true, r->id, "invalid_channel",
                       "channel must be 1-64 printable ASCII characters of the allowed set");
        return false;
    }
    return true;
}

void gw_op_join(struct gw_client *c, const struct gw_request *r)
{
    struct rtmd_str channel;
    if (!channel_arg(c, r, &channel))
        return;
    struct join_channel *jc = rtmd_malloc(sizeof(*jc));
    jc->len = (uint8_t)channel.len;
    memcpy(jc->name, channel.p, channel.len);
    /* Its pushes wait behind the reply: a member event sent before it would
     * be undone by a client that takes the reply's members (read after the
     * join is recorded) as the list. gw_join_recorded and the members page
     * let them go; held before the call, whenever its answer comes. */
    c->ready = false;
    int pr = rtmd_presence_join(c->session, channel, gw_join_recorded, jc);
    if (pr < 0) {
        free(jc);
        gw_client_ready(c);
    }
    switch (pr) {
    case 0: gw_op_begin(c, r); return;
    case -EALREADY:
        gw_reply_error(c, true, r->id, "already_joined", "already in this channel");
        return;
    case RTMD_ELIMIT:
        gw_reply_error(c, true, r->id, "too_many_channels", "channel limit reached");
        return;
    default: gw_reply_store_failure(c, true, r->id, pr, "the join could not be recorded"); return;
    }
}

void gw_op_leave(struct gw_client *c, const struct gw_request *r)
{
    struct rtmd_str channel;
    if (!channel_arg(c, r, &channel))
        return;
    int pr = rtmd_presence_leave(c->session, channel, gw_on_recorded, NULL);
    switch (pr) {
    case 0: gw_op_begin(c, r); return;
    case -ENOENT: gw_reply_error(c, true, r->id, "not_joined", "not in this channel"); return;
    default: gw_reply_store_failure(c, true, r->id, pr, "the leave could not be recorded"); return;
    }
}
