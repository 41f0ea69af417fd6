/*
 * handles.h — history query handles kept in memory (docs/API.md "Message
 * history"): a query
 * stored under a random URL-safe name, taken once, forgotten after its ttl.
 *
 * A handle is 16 bytes from OpenSSL's RAND_bytes in base64url without
 * padding (22 characters of A-Z a-z 0-9 - _), so it cannot be guessed and
 * needs no escaping in a URL path. Each handle belongs to an owner (the
 * embedded store passes its per-app state): taking it as another owner finds
 * nothing and leaves it in place.
 *
 * Bounds: at most max live handles. Expired handles are swept lazily: a put
 * frees the expired ones at the head of the age list (a few per call; with
 * one ttl for all they expire in that order), and when the table is full it
 * sweeps all of it once before answering -EAGAIN. Nothing survives a
 * restart.
 *
 * Threading: loop thread only. Times are rtmd_mono_ms() values.
 */
#ifndef RTMD_STORE_HANDLES_H
#define RTMD_STORE_HANDLES_H

#include "core/hashmap.h"
#include "core/list.h"
#include "store/store.h"

#define RTMD_HANDLE_BYTES 16
#define RTMD_HANDLE_LEN   22 /* base64url of 16 bytes, unpadded */

/* One kept query. Its strings point into the entry itself. */
struct rtmd_handle {
    struct rtmd_list link; /* age order */
    const void *owner;
    uint64_t deadline;
    struct rtmd_history_query query;
    char key[RTMD_HANDLE_LEN + 1];
    char bytes[]; /* source, then destination */
};

struct rtmd_handles {
    struct rtmd_hashmap map; /* key → struct rtmd_handle */
    struct rtmd_list age;    /* oldest put first */
    size_t max;
};

void rtmd_handles_init(struct rtmd_handles *h, size_t max);
void rtmd_handles_free(struct rtmd_handles *h);

/*
 * Keeps a copy of q for owner until now + ttl_ms and writes its NUL-terminated
 * handle to key. 0, -EAGAIN (max live handles) or -EIO (no randomness).
 */
int rtmd_handles_put(struct rtmd_handles *h, const void *owner, const struct rtmd_history_query *q,
                     uint64_t now, uint64_t ttl_ms, char key[RTMD_HANDLE_LEN + 1]);
/*
 * Removes and returns owner's handle key if it has not expired at now; the
 * caller frees it with rtmd_handle_free(). NULL when the handle is unknown,
 * already taken, expired (then it is freed) or another owner's.
 */
struct rtmd_handle *rtmd_handles_take(struct rtmd_handles *h, const void *owner,
                                      struct rtmd_str key, uint64_t now);
void rtmd_handle_free(struct rtmd_handle *e);

static inline size_t rtmd_handles_count(const struct rtmd_handles *h)
{
    return rtmd_hashmap_count(&h->map);
}

#endif
