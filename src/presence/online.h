/*
 * online.h — who is online: a channel's members (paged, in uid order), their
 * count, and whether uids hold a session.
 *
 * A backend shared by several nodes answers for every node (the store's
 * members/status calls); otherwise this node's presence state is the whole
 * truth (the embedded store: one node) and is read here, when the callback
 * runs. Either way the callback runs later, on the loop, never inside the
 * call (it fails synchronously or calls back once).
 *
 * Paging: a page is the uids that sort after the cursor's uid (bytewise, a
 * prefix before the longer uid), first `limit` of them. So a uid that stays
 * a member from the first page to the last is returned exactly once; one
 * that joins or leaves meanwhile appears at most once.
 */
#ifndef RTMD_PRESENCE_ONLINE_H
#define RTMD_PRESENCE_ONLINE_H

#include "core/common.h"
#include "core/config.h"
#include "core/ids.h"
#include "store/store.h"

/* A page holds at most this many uids (the REST limit's maximum). */
#define RTMD_MEMBERS_PAGE_MAX 1000
/* A status call names at most this many uids. */
#define RTMD_STATUS_MAX 256
/* A cursor is the hex of a uid: at most this many characters. */
#define RTMD_CURSOR_MAX (2 * RTMD_ID_MAX)

/* Up to limit (0..RTMD_MEMBERS_PAGE_MAX; 0: the count alone) of channel's
 * members after uid `after` (empty: from the first). -EINVAL for a bad
 * channel, uid or limit; else the store's error. */
int rtmd_online_members(struct rtmd_store *store, const struct rtmd_app *app,
                        struct rtmd_str channel, struct rtmd_str after, uint32_t limit,
                        rtmd_store_members_cb cb, void *arg);
/* Whether each of uids[0..n) (1..RTMD_STATUS_MAX valid uids) is online. */
int rtmd_online_status(struct rtmd_store *store, const struct rtmd_app *app,
                       const struct rtmd_str *uids, size_t n, rtmd_store_status_cb cb, void *arg);

/* The app at a glance (store.h's struct rtmd_store_overview): the store's
 * backlog and drops, and who is online with the channels and their member
 * counts — from a store that answers who is online, else from this node's
 * presence (the first RTMD_OVERVIEW_MAX users and channels in name order;
 * n_users and n_channels count all). */
int rtmd_online_overview(struct rtmd_store *store, const struct rtmd_app *app,
                         rtmd_store_overview_cb cb, void *arg);

/* The order of pages: bytewise, a prefix before the longer uid (as Redis's
 * ZRANGEBYLEX). <0, 0, >0. */
int rtmd_online_uid_cmp(struct rtmd_str a, struct rtmd_str b);
/* Sorts uids[0..n) in that order and drops repeats; returns how many are left. */
size_t rtmd_online_sort_uids(struct rtmd_str *uids, size_t n);

/* Cursors: the hex of the page's last uid (opaque to clients). encode
 * writes RTMD_CURSOR_MAX + 1 bytes at most (NUL-terminated) and returns the
 * length; decode returns false for anything that is not a cursor. */
size_t rtmd_online_cursor_encode(struct rtmd_str uid, char *out);
bool rtmd_online_cursor_decode(struct rtmd_str cursor, char out[RTMD_ID_MAX], size_t *len);

#endif
