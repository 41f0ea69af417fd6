/*
 * presence.h — sessions, channel memberships and the presence rules of
 * the client protocol, turned into ordered store calls.
 *
 * This node's view: which sessions it holds (app × uid → session) and, per
 * app, which of its sessions are in which channel (channel → members, for
 * the 20-channel limit and for fan-out). The durable record of the same —
 * events and the session table — is the store's.
 *
 * Rules kept here, and only here:
 *  - login records Login; a second login of the same app+uid takes over:
 *    the old session is kicked, and its Leaves and Logout are recorded
 *    before the new Login, in one atomic store call;
 *  - join/leave record Join/Leave (already_joined / not_joined /
 *    too_many_channels are refused before anything is recorded);
 *  - a session ends (logout, disconnect, heartbeat timeout, shutdown) with
 *    a Leave for every joined channel, then Logout — exactly once.
 *
 * A session's memberships change when the call is made, not when it is
 * durable, so later calls see them; the store applies calls in order, so
 * the log does too. When the store cannot write (a full disk), logins and
 * joins fail and leaves and ends still happen: the store owes their records. A session lives until
 * its owner released it and every store call it made has called back.
 */
#ifndef RTMD_PRESENCE_PRESENCE_H
#define RTMD_PRESENCE_PRESENCE_H

#include "core/common.h"
#include "core/config.h"
#include "core/ids.h"
#include "store/store.h"

struct rtmd_session;
struct rtmd_channel;

enum rtmd_session_state {
    RTMD_SESSION_NEW,    /* not logged in */
    RTMD_SESSION_ONLINE, /* login recorded (or being recorded) */
    RTMD_SESSION_ENDED,  /* Logout recorded (or being recorded); no further events */
};

struct rtmd_membership {
    struct rtmd_channel *channel;
    uint32_t pos; /* index in channel->members */
};

struct rtmd_session {
    const struct rtmd_app *app;
    uint64_t id; /* set at login: this session among every one of this node, ever */
    char uid[RTMD_ID_MAX + 1];
    uint8_t uid_len;
    uint8_t n_channels;
    uint8_t cap_channels;
    enum rtmd_session_state state;
    bool released;    /* the owner (gateway) let go */
    uint32_t pending; /* store calls in flight */
    struct rtmd_membership *channels;
    void *owner; /* the gateway's connection state, or NULL */
};

struct rtmd_channel {
    const struct rtmd_app *app;
    char name[RTMD_ID_MAX + 1];
    uint8_t name_len;
    struct rtmd_session **members;
    struct rtmd_session **by_uid; /* the same members in uid order (rtmd_online_uid_cmp): the
                                     pages of who is online; a join or a leave moves pointers */
    uint32_t n_members;
    uint32_t cap_members; /* of both arrays */
    uint64_t gen;         /* changes with every membership change; unique across channels */
};

/* What the gateway is told (ctx: the one given to rtmd_presence_init). */
struct rtmd_presence_hooks {
    /* s was ended without its client asking (it is already ENDED): reason
     * "remote_login" when a new login of the same uid took it over (here or
     * on another node), "node_lost" when another node took this one for
     * dead and ended its sessions. */
    void (*kicked)(void *ctx, struct rtmd_session *s, const char *reason);
    /* s joined ch, or left it (s is then no longer among ch's members). */
    void (*member)(void *ctx, struct rtmd_channel *ch, struct rtmd_session *s, bool joined);
};

/* Completion of a presence call: status from the store. 0: durable — or,
 * for a leave or an end, owed by the store, which could not write it yet and
 * writes it as soon as it can (it never loses one). A join that fails is
 * undone (the session leaves the channel again, nothing recorded); a login
 * that fails is the caller's to abandon (rtmd_presence_abandon_login). */
typedef void (*rtmd_presence_cb)(struct rtmd_session *s, int status, void *arg);

int rtmd_presence_init(const struct rtmd_config *cfg, struct rtmd_store *store,
                       const struct rtmd_presence_hooks *hooks, void *hooks_ctx);
void rtmd_presence_shutdown(void);
/* A reload added app (its index is the next one; removed apps keep theirs). */
void rtmd_presence_add_app(const struct rtmd_app *app);

struct rtmd_session *rtmd_session_new(void *owner);
/* The owner lets go; the session is freed once no store call is pending.
 * It must already be ENDED (or never logged in). */
void rtmd_session_release(struct rtmd_session *s);

/* Keeps s alive across other async work (a store call made by another
 * layer); every hold is matched by one unhold. */
void rtmd_session_hold(struct rtmd_session *s);
void rtmd_session_unhold(struct rtmd_session *s);

/* Errors returned synchronously (nothing recorded, no callback):
 * -EALREADY (already_joined), -ENOENT (not_joined), RTMD_ELIMIT
 * (too_many_channels), -EINVAL (bad state), or the store's error. */
int rtmd_presence_login(struct rtmd_session *s, const struct rtmd_app *app, struct rtmd_str uid,
                        rtmd_presence_cb cb, void *arg);
int rtmd_presence_join(struct rtmd_session *s, struct rtmd_str channel, rtmd_presence_cb cb,
                       void *arg);
int rtmd_presence_leave(struct rtmd_session *s, struct rtmd_str channel, rtmd_presence_cb cb,
                        void *arg);
/* The login of s could not be recorded: forget it without recording
 * anything, so the client may try again. */
void rtmd_presence_abandon_login(struct rtmd_session *s);
/* Leave for every channel, then Logout. cb may be NULL. */
int rtmd_presence_end(struct rtmd_session *s, rtmd_presence_cb cb, void *arg);

struct rtmd_session *rtmd_presence_find(const struct rtmd_app *app, struct rtmd_str uid);
struct rtmd_channel *rtmd_presence_channel(const struct rtmd_app *app, struct rtmd_str name);
/* The position in ch->by_uid of the first member whose uid sorts after
 * `after` (0 for an empty `after`). */
uint32_t rtmd_channel_after(const struct rtmd_channel *ch, struct rtmd_str after);
bool rtmd_session_in_channel(const struct rtmd_session *s, struct rtmd_str channel);
/* The channel of that name s is a member of, or NULL: a membership check
 * and the channel's lookup in one. */
struct rtmd_channel *rtmd_session_channel(const struct rtmd_session *s, struct rtmd_str channel);
size_t rtmd_presence_session_count(void);

/* Writes up to max of app's sessions on this node to out; returns how many. */
size_t rtmd_presence_app_sessions(const struct rtmd_app *app, struct rtmd_session **out,
                                  size_t max);
/* app's sessions and channels on this node. */
size_t rtmd_presence_app_session_count(const struct rtmd_app *app);
size_t rtmd_presence_app_channel_count(const struct rtmd_app *app);
/* Calls session() for each of app's sessions on this node, then channel()
 * for each of its channels (either may be NULL; the maps must not change). */
void rtmd_presence_app_foreach(const struct rtmd_app *app,
                               void (*session)(const struct rtmd_session *s, void *arg),
                               void (*channel)(const struct rtmd_channel *ch, void *arg),
                               void *arg);
/* Calls fn for every session this node holds (the map must not change). */
void rtmd_presence_foreach(void (*fn)(struct rtmd_session *s, void *arg), void *arg);

#endif
