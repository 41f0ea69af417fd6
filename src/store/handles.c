/*
 * handles.c — history query handles in memory (see handles.h).
 */
#include "store/handles.h"

#include <openssl/rand.h>

#include "core/alloc.h"
#include "core/base64.h"
#include "core/buf.h"

/* Expired entries a put frees from the head of the age list at most. */
#define SWEEP_PER_PUT 16
/* Attempts at a name not in use (a 128-bit collision never happens). */
#define NAME_ATTEMPTS 4

void rtmd_handles_init(struct rtmd_handles *h, size_t max)
{
    rtmd_hashmap_init(&h->map);
    rtmd_list_init(&h->age);
    h->max = max;
}

static void drop(struct rtmd_handles *h, struct rtmd_handle *e)
{
    rtmd_hashmap_remove(&h->map, rtmd_str_make(e->key, RTMD_HANDLE_LEN));
    rtmd_list_remove(&e->link);
    rtmd_handle_free(e);
}

void rtmd_handles_free(struct rtmd_handles *h)
{
    struct rtmd_list *n;
    while ((n = rtmd_list_first(&h->age)))
        drop(h, RTMD_CONTAINER_OF(n, struct rtmd_handle, link));
    rtmd_hashmap_free(&h->map);
}

void rtmd_handle_free(struct rtmd_handle *e)
{
    rtmd_free(e);
}

/* Frees expired entries: at most limit from the head of the age list, or
 * (limit == 0) every one in the table. */
static void sweep(struct rtmd_handles *h, uint64_t now, size_t limit)
{
    struct rtmd_list *n, *tmp;
    size_t seen = 0;
    rtmd_list_foreach_safe(n, tmp, &h->age)
    {
        struct rtmd_handle *e = RTMD_CONTAINER_OF(n, struct rtmd_handle, link);
        if (e->deadline <= now)
            drop(h, e);
        else if (limit)
            break;
        if (limit && ++seen == limit)
            break;
    }
}

static int make_name(char key[RTMD_HANDLE_LEN + 1])
{
    unsigned char raw[RTMD_HANDLE_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -EIO;
    struct rtmd_buf b;
    rtmd_buf_init(&b, RTMD_BASE64_ENCODED_LEN(RTMD_HANDLE_BYTES));
    int rc = rtmd_base64url_encode(&b, raw, sizeof(raw));
    if (rc == 0 && b.len == RTMD_HANDLE_LEN) {
        memcpy(key, b.data, RTMD_HANDLE_LEN);
        key[RTMD_HANDLE_LEN] = '\0';
    } else if (rc == 0) {
        rc = -EIO;
    }
    rtmd_buf_free(&b);
    return rc;
}

static struct rtmd_str copy_str(char **at, struct rtmd_str s)
{
    if (!s.p)
        return RTMD_STR_NULL;
    memcpy(*at, s.p, s.len);
    struct rtmd_str out = rtmd_str_make(*at, s.len);
    *at += s.len;
    return out;
}

int rtmd_handles_put(struct rtmd_handles *h, const void *owner, const struct rtmd_history_query *q,
                     uint64_t now, uint64_t ttl_ms, char key[RTMD_HANDLE_LEN + 1])
{
    sweep(h, now, SWEEP_PER_PUT);
    if (rtmd_handles_count(h) >= h->max) {
        sweep(h, now, 0);
        if (rtmd_handles_count(h) >= h->max)
            return -EAGAIN;
    }
    int rc = -EIO;
    for (int i = 0; i < NAME_ATTEMPTS && rc != 0; i++) {
        if ((rc = make_name(key)))
            return rc;
        if (rtmd_hashmap_get(&h->map, rtmd_str_make(key, RTMD_HANDLE_LEN)))
            rc = -EIO;
    }
    if (rc)
        return rc;

    size_t extra = (q->source.p ? q->source.len : 0) + (q->destination.p ? q->destination.len : 0);
    struct rtmd_handle *e = rtmd_malloc(sizeof(*e) + extra);
    memset(e, 0, sizeof(*e));
    e->owner = owner;
    e->deadline = ttl_ms > UINT64_MAX - now ? UINT64_MAX : now + ttl_ms;
    e->query = *q;
    char *at = e->bytes;
    e->query.source = copy_str(&at, q->source);
    e->query.destination = copy_str(&at, q->destination);
    memcpy(e->key, key, sizeof(e->key));
    rtmd_hashmap_put(&h->map, rtmd_str_make(e->key, RTMD_HANDLE_LEN), e);
    rtmd_list_insert_tail(&h->age, &e->link);
    return 0;
}

struct rtmd_handle *rtmd_handles_take(struct rtmd_handles *h, const void *owner,
                                      struct rtmd_str key, uint64_t now)
{
    if (key.len != RTMD_HANDLE_LEN || !key.p)
        return NULL;
    struct rtmd_handle *e = rtmd_hashmap_get(&h->map, key);
    if (!e || e->owner != owner)
        return NULL;
    if (e->deadline <= now) {
        drop(h, e);
        return NULL;
    }
    rtmd_hashmap_remove(&h->map, key);
    rtmd_list_remove(&e->link);
    return e;
}
