/*
 * messaging.h — sending a message, the one path for the client ops (peer,
 * publish) and the REST send API alike:
 *
 *   resolve the recipients → deliver to this node's clients (and, where the
 *   backend routes across nodes, to the others) → keep what must be kept
 *   (history; offline storage for a receiver not online) → wait for the
 *   receiver's ack when asked → one completion.
 *
 * Layers: api/ and gateway/ call messaging; messaging calls the store (to
 * keep messages) and, for this node's clients, a delivery table the gateway
 * registers (struct rtmd_delivery) — so neither api nor messaging includes
 * gateway code. Acks, which a receiver sends through the gateway and a REST
 * send may wait for, are matched here.
 *
 * Ownership: a request's strings are the caller's; everything kept is copied
 * before rtmd_messaging_send() returns.
 */
#ifndef RTMD_MESSAGING_MESSAGING_H
#define RTMD_MESSAGING_MESSAGING_H

#include "core/common.h"
#include "core/config.h"
#include "core/hashmap.h"
#include "core/loop.h"
#include "presence/presence.h"
#include "store/store.h"

/*
 * Delivery to the clients this node holds, implemented by the gateway.
 * Both are synchronous: the pushes are queued on the connections before
 * they return.
 */
struct rtmd_delivery {
    /* Pushes {"op":"peer_message","mid":mid,...} to the session of `to` on
     * this node; false when it holds none (or it is closing). */
    bool (*peer)(void *ctx, const struct rtmd_app *app, struct rtmd_str from, struct rtmd_str to,
                 struct rtmd_str payload, uint64_t ms, uint64_t mid);
    /* Pushes {"op":"channel_message",...} to every member of ch on this
     * node but `skip` (the sender's own session, or NULL); returns how many
     * it goes to. */
    size_t (*channel)(void *ctx, struct rtmd_channel *ch, const struct rtmd_session *skip,
                      struct rtmd_str from, struct rtmd_str payload, uint64_t ms);
    /* Pushes member_joined/member_left of `uid` (a member on another node)
     * to ch's members on this node. */
    void (*member)(void *ctx, struct rtmd_channel *ch, struct rtmd_str uid, bool joined);
};

struct rtmd_messaging {
    const struct rtmd_config *cfg;
    struct rtmd_store *store;
    const struct rtmd_delivery *local;
    void *local_ctx;
    uint64_t next_mid;
    struct rtmd_hashmap acks; /* mid → struct ack_wait */
    struct rtmd_timeout_queue ack_timeouts;
    bool initialized;
};

/* One message to send. */
struct rtmd_send_request {
    enum rtmd_message_type type;
    const struct rtmd_app *app;
    struct rtmd_str from;    /* sender uid */
    struct rtmd_str to;      /* PEER: receiver uid; CHANNEL: channel name */
    struct rtmd_str payload; /* already validated */
    uint64_t ms;
    /* CHANNEL: the channel as this node knows it (NULL: no member here),
     * resolved once by the caller. */
    struct rtmd_channel *channel;
    /* The sender's session on this node when it is a member of the channel
     * (it gets no copy of its own message), or NULL. */
    const struct rtmd_session *sender;
    bool history;  /* keep it in the app's history */
    bool offline;  /* PEER: keep it for a receiver not online */
    bool wait_ack; /* PEER: complete only once the receiver acked (or timed out) */
};

struct rtmd_send_result {
    int status;     /* 0, or the first store failure (nothing more is kept) */
    bool delivered; /* PEER: the receiver was online; CHANNEL: always true */
    int ack_status; /* with wait_ack and delivered: 0 acked, -ETIMEDOUT */
};

typedef void (*rtmd_send_cb)(void *arg, const struct rtmd_send_result *r);

int rtmd_messaging_init(struct rtmd_messaging *m, const struct rtmd_config *cfg,
                        struct rtmd_store *store);
/* The gateway's delivery to this node's clients. */
void rtmd_messaging_set_local(struct rtmd_messaging *m, const struct rtmd_delivery *local,
                              void *ctx);
/* Answers every wait for an ack now (-ETIMEDOUT): at shutdown, while the
 * connections can still carry the answers. */
void rtmd_messaging_abort_waits(struct rtmd_messaging *m);
void rtmd_messaging_shutdown(struct rtmd_messaging *m);

/*
 * Sends rq. Returns:
 *   1  completed now: *now holds the result, cb is never called (nothing
 *      had to be kept or waited for — the common case stays synchronous so
 *      a burst of ops costs no extra loop pass);
 *   0  cb(arg, result) runs later, exactly once, on the loop thread;
 *   <0 nothing was sent (-EINVAL: a bad request).
 */
int rtmd_messaging_send(struct rtmd_messaging *m, const struct rtmd_send_request *rq,
                        struct rtmd_send_result *now, rtmd_send_cb cb, void *arg);

/* Pushes a peer message to `to`'s client on this node with a fresh mid,
 * nothing kept, no ack awaited (offline messages handed out at a login);
 * false when this node holds no session of `to`. */
bool rtmd_messaging_deliver_local(struct rtmd_messaging *m, const struct rtmd_app *app,
                                  struct rtmd_str from, struct rtmd_str to, struct rtmd_str payload,
                                  uint64_t ms);

/* uid joined or left ch on this node: the members on other nodes are told
 * (when the backend routes across nodes). */
void rtmd_messaging_member_changed(struct rtmd_messaging *m, const struct rtmd_channel *ch,
                                   struct rtmd_str uid, bool joined);

/* A client acked mid: completes the wait for it if `s` is its receiver (or
 * sends the ack back to the node the message came from). */
void rtmd_messaging_ack(struct rtmd_messaging *m, const struct rtmd_session *s, uint64_t mid);

/* The uids a channel message from `from` goes to: ch's members but the
 * sender, as views into the sessions (valid until the caller returns to
 * the loop); *out is freed by the caller. */
size_t rtmd_messaging_channel_recipients(const struct rtmd_channel *ch, struct rtmd_str from,
                                         struct rtmd_str **out);

#endif
