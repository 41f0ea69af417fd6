/*
 * hashmap.h — an open-addressing hash map from byte-string keys to pointers.
 *
 * The map does not copy keys: each key must live as long as its entry, which
 * in rtmd is always the case because the key is a field of the value (an
 * app's ID, a session's uid). 16 bytes per slot, load factor at most 3/4,
 * linear probing, backward-shift deletion (no tombstones). The hash is
 * SipHash-1-3-like keyed with a per-process random seed so clients cannot
 * choose colliding IDs.
 */
#ifndef RTMD_CORE_HASHMAP_H
#define RTMD_CORE_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

struct rtmd_hashmap_slot {
    const char *key; /* NULL: empty slot */
    uint32_t keylen;
    uint32_t hash;
    void *value;
};

struct rtmd_hashmap {
    struct rtmd_hashmap_slot *slots;
    size_t mask; /* capacity - 1; capacity is a power of two */
    size_t count;
};

void rtmd_hashmap_init(struct rtmd_hashmap *m);
void rtmd_hashmap_free(struct rtmd_hashmap *m);
void *rtmd_hashmap_get(const struct rtmd_hashmap *m, struct rtmd_str key);
/* Inserts or replaces; returns the previous value or NULL. */
void *rtmd_hashmap_put(struct rtmd_hashmap *m, struct rtmd_str key, void *value);
/* Removes the key; returns its value or NULL. */
void *rtmd_hashmap_remove(struct rtmd_hashmap *m, struct rtmd_str key);
static inline size_t rtmd_hashmap_count(const struct rtmd_hashmap *m)
{
    return m->count;
}

/* Iteration: for (size_t i = 0; rtmd_hashmap_next(m, &i, &k, &v);) — the map
 * must not change during iteration. */
bool rtmd_hashmap_next(const struct rtmd_hashmap *m, size_t *iter, struct rtmd_str *key,
                       void **value);

uint32_t rtmd_hash_bytes(const void *p, size_t len);
/* Seeds the hash (called once at start from a random source). */
void rtmd_hash_seed(uint64_t k0, uint64_t k1);

#endif
