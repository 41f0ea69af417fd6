#include "core/hashmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

static uint64_t seed0 = 0x736f6d6570736575ULL, seed1 = 0x646f72616e646f6dULL;

void rtmd_hash_seed(uint64_t k0, uint64_t k1)
{
    seed0 ^= k0;
    seed1 ^= k1;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

/* SipHash-1-3 (as Redis and Rust use for table keys). */
uint32_t rtmd_hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t v0 = 0x736f6d6570736575ULL ^ seed0, v1 = 0x646f72616e646f6dULL ^ seed1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ seed0, v3 = 0x7465646279746573ULL ^ seed1;
    uint64_t b = (uint64_t)len << 56;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m;
        memcpy(&m, p + i, 8);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t t = 0;
    for (size_t j = 0; i + j < len; j++)
        t |= (uint64_t)p[i + j] << (8 * j);
    b |= t;
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    uint64_t h = v0 ^ v1 ^ v2 ^ v3;
    return (uint32_t)(h ^ (h >> 32));
}

void rtmd_hashmap_init(struct rtmd_hashmap *m)
{
    m->slots = NULL;
    m->mask = 0;
    m->count = 0;
}

void rtmd_hashmap_free(struct rtmd_hashmap *m)
{
    free(m->slots);
    rtmd_hashmap_init(m);
}

static size_t find(const struct rtmd_hashmap *m, struct rtmd_str key, uint32_t h, bool *found)
{
    size_t i = h & m->mask;
    for (;;) {
        const struct rtmd_hashmap_slot *s = &m->slots[i];
        if (!s->key) {
            *found = false;
            return i;
        }
        if (s->hash == h && s->keylen == key.len && memcmp(s->key, key.p, key.len) == 0) {
            *found = true;
            return i;
        }
        i = (i + 1) & m->mask;
    }
}

static void grow(struct rtmd_hashmap *m)
{
    size_t oldcap = m->slots ? m->mask + 1 : 0;
    size_t cap = oldcap ? oldcap * 2 : 16;
    struct rtmd_hashmap_slot *old = m->slots;
    m->slots = rtmd_calloc(cap, sizeof(*m->slots));
    m->mask = cap - 1;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].key)
            continue;
        size_t j = old[i].hash & m->mask;
        while (m->slots[j].key)
            j = (j + 1) & m->mask;
        m->slots[j] = old[i];
    }
    free(old);
}

void *rtmd_hashmap_get(const struct rtmd_hashmap *m, struct rtmd_str key)
{
    if (!m->count)
        return NULL;
    bool found;
    size_t i = find(m, key, rtmd_hash_bytes(key.p, key.len), &found);
    return found ? m->slots[i].value : NULL;
}

void *rtmd_hashmap_put(struct rtmd_hashmap *m, struct rtmd_str key, void *value)
{
    if (!m->slots || (m->count + 1) * 4 > (m->mask + 1) * 3)
        grow(m);
    uint32_t h = rtmd_hash_bytes(key.p, key.len);
    bool found;
    size_t i = find(m, key, h, &found);
    if (found) {
        void *old = m->slots[i].value;
        m->slots[i].key = key.p;
        m->slots[i].value = value;
        return old;
    }
    m->slots[i].key = key.p;
    m->slots[i].keylen = (uint32_t)key.len;
    m->slots[i].hash = h;
    m->slots[i].value = value;
    m->count++;
    return NULL;
}

void *rtmd_hashmap_remove(struct rtmd_hashmap *m, struct rtmd_str key)
{
    if (!m->count)
        return NULL;
    bool found;
    size_t i = find(m, key, rtmd_hash_bytes(key.p, key.len), &found);
    if (!found)
        return NULL;
    void *value = m->slots[i].value;
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (!m->slots[j].key)
            break;
        size_t home = m->slots[j].hash & m->mask;
        /* Move j back to i when i lies cyclically between home and j. */
        if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->slots[i].value = NULL;
    m->count--;
    return value;
}

bool rtmd_hashmap_next(const struct rtmd_hashmap *m, size_t *iter, struct rtmd_str *key,
                       void **value)
{
    if (!m->slots)
        return false;
    for (size_t i = *iter; i <= m->mask; i++) {
        if (m->slots[i].key) {
            if (key)
                *key = rtmd_str_make(m->slots[i].key, m->slots[i].keylen);
            if (value)
                *value = m->slots[i].value;
            *iter = i + 1;
            return true;
        }
    }
    *iter = m->mask + 1;
    return false;
}
