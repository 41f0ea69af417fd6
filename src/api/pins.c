/*
 * pins.c — pinned retention cut-offs of history filters (pins.h).
 */
#include "api/pins.h"

#include <stdlib.h>

#include "core/alloc.h"
#include "core/ids.h"

/* app u32 || start u64 || end u64 || 2 x (u8 present+len || bytes) */
#define PIN_KEY_MAX (4 + 8 + 8 + 2 * (1 + RTMD_ID_MAX))

struct pin {
    struct rtmd_list link; /* on age */
    uint64_t created_ms;
    uint64_t cutoff_ms;
    uint32_t keylen;
    char key[];
};

void rtmd_history_pins_init(struct rtmd_history_pins *p, size_t max, uint64_t ttl_ms)
{
    rtmd_hashmap_init(&p->map);
    rtmd_list_init(&p->age);
    p->max = max;
    p->ttl_ms = ttl_ms;
}

static void pin_drop(struct rtmd_history_pins *p, struct pin *pin)
{
    rtmd_hashmap_remove(&p->map, rtmd_str_make(pin->key, pin->keylen));
    rtmd_list_remove(&pin->link);
    free(pin);
}

void rtmd_history_pins_free(struct rtmd_history_pins *p)
{
    while (!rtmd_list_empty(&p->age))
        pin_drop(p, RTMD_CONTAINER_OF(p->age.next, struct pin, link));
    rtmd_hashmap_free(&p->map);
}

static size_t put_u64(char *at, uint64_t v)
{
    memcpy(at, &v, sizeof(v));
    return sizeof(v);
}

/* An absent ID and "" differ from every real ID (IDs are 1..64 bytes). */
static size_t put_id(char *at, struct rtmd_str id)
{
    size_t len = id.p ? RTMD_MIN(id.len, (size_t)RTMD_ID_MAX) : 0;
    at[0] = (char)(id.p ? 0x80 | len : 0);
    memcpy(at + 1, id.p ? id.p : "", len);
    return 1 + len;
}

static size_t make_key(char *key, uint32_t app_index, const struct rtmd_history_query *q)
{
    size_t n = 0;
    memcpy(key, &app_index, sizeof(app_index));
    n += sizeof(app_index);
    n += put_u64(key + n, q->start_ms);
    n += put_u64(key + n, q->end_ms);
    n += put_id(key + n, q->source);
    n += put_id(key + n, q->destination);
    return n;
}

uint64_t rtmd_history_pins_cutoff(struct rtmd_history_pins *p, uint32_t app_index,
                                  const struct rtmd_history_query *q, uint64_t now_ms,
                                  uint64_t retention_ms)
{
    while (!rtmd_list_empty(&p->age)) {
        struct pin *old = RTMD_CONTAINER_OF(p->age.next, struct pin, link);
        bool young = now_ms >= old->created_ms && now_ms - old->created_ms < p->ttl_ms;
        if (young && rtmd_hashmap_count(&p->map) < p->max)
            break;
        pin_drop(p, old);
    }
    uint64_t cutoff = now_ms > retention_ms ? now_ms - retention_ms : 0;
    if (p->max == 0)
        return cutoff;
    char key[PIN_KEY_MAX];
    size_t keylen = make_key(key, app_index, q);
    struct pin *pin = rtmd_hashmap_get(&p->map, rtmd_str_make(key, keylen));
    if (pin)
        return pin->cutoff_ms;
    pin = rtmd_malloc(sizeof(*pin) + keylen);
    pin->created_ms = now_ms;
    pin->cutoff_ms = cutoff;
    pin->keylen = (uint32_t)keylen;
    memcpy(pin->key, key, keylen);
    rtmd_hashmap_put(&p->map, rtmd_str_make(pin->key, pin->keylen), pin);
    rtmd_list_insert_tail(&p->age, &pin->link);
    return cutoff;
}
