/*
 * Unit tests for core/hashmap.c: put/get/replace/remove, iteration, and
 * backward-shift deletion under heavy collisions. Keys whose hashes share
 * their low bits are searched for with rtmd_hash_bytes(), so every key of a
 * set lands in the same home slot at any capacity up to 1024; random
 * insert/remove sequences are then checked against a plain array, and the
 * table itself against linear probing's invariant after every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/hashmap.h"

#define KEYS_MAX 400

struct key {
    char s[24];
    size_t len;
    bool present;
    void *value;
};

static uint64_t rng_ = 0x2545f4914f6cdd1dull;

static uint32_t rnd(void)
{
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return (uint32_t)(rng_ >> 32);
}

static struct rtmd_str key_str(const struct key *k)
{
    return rtmd_str_make(k->s, k->len);
}

/* n keys whose hashes agree on the low `bits` bits with `low` (-1: any). */
static void make_keys(struct key *keys, size_t n, unsigned bits, long low)
{
    uint32_t mask = (1u << bits) - 1;
    size_t found = 0;
    for (uint32_t i = 0; found < n; i++) {
        struct key *k = &keys[found];
        k->len = (size_t)snprintf(k->s, sizeof(k->s), "k%u", i);
        if (low >= 0 && (rtmd_hash_bytes(k->s, k->len) & mask) != (uint32_t)low)
            continue;
        k->present = false;
        k->value = NULL;
        found++;
    }
}

/* Every occupied slot is reachable from its home slot without crossing an
 * empty one (what find() relies on), and the count is right. */
static void check_table(const struct rtmd_hashmap *m)
{
    if (!m->slots) {
        assert_int_equal(m->count, 0);
        return;
    }
    size_t cap = m->mask + 1, used = 0;
    assert_true(m->count * 4 <= cap * 3); /* load factor at most 3/4 */
    for (size_t i = 0; i < cap; i++) {
        const struct rtmd_hashmap_slot *s = &m->slots[i];
        if (!s->key)
            continue;
        used++;
        assert_int_equal(s->hash, rtmd_hash_bytes(s->key, s->keylen));
        for (size_t j = s->hash & m->mask; j != i; j = (j + 1) & m->mask)
            if (!m->slots[j].key)
                fail_msg("slot %zu (home %zu) cut off by the empty slot %zu", i,
                         (size_t)(s->hash & m->mask), j);
    }
    assert_int_equal(used, m->count);
}

/* The map holds exactly the present keys, with their values. */
static void check_against(const struct rtmd_hashmap *m, const struct key *keys, size_t n)
{
    size_t present = 0;
    for (size_t i = 0; i < n; i++) {
        void *v = rtmd_hashmap_get(m, key_str(&keys[i]));
        if (keys[i].present) {
            present++;
            assert_ptr_equal(v, keys[i].value);
        } else {
            assert_null(v);
        }
    }
    assert_int_equal(rtmd_hashmap_count(m), present);
    check_table(m);
}

static void *value_of(size_t i, unsigned gen)
{
    return (void *)(uintptr_t)(((uintptr_t)gen << 16) | (i + 1));
}

/* ---- basics -------------------------------------------------------------------------- */

static void test_empty_map(void **state)
{
    (void)state;
    struct rtmd_hashmap m;
    rtmd_hashmap_init(&m);
    assert_null(rtmd_hashmap_get(&m, RTMD_STR_LIT("a")));
    assert_null(rtmd_hashmap_remove(&m, RTMD_STR_LIT("a")));
    assert_int_equal(rtmd_hashmap_count(&m), 0);
    size_t it = 0;
    assert_false(rtmd_hashmap_next(&m, &it, NULL, NULL));
    rtmd_hashmap_free(&m);
    rtmd_hashmap_free(&m);
}

static void test_put_get_replace_remove(void **state)
{
    (void)state;
    struct rtmd_hashmap m;
    rtmd_hashmap_init(&m);
    int a = 1, b = 2, c = 3;
    assert_null(rtmd_hashmap_put(&m, RTMD_STR_LIT("alpha"), &a));
    assert_null(rtmd_hashmap_put(&m, RTMD_STR_LIT("alp"), &b));
    assert_null(rtmd_hashmap_put(&m, RTMD_STR_LIT(""), &c)); /* the empty key is a key */
    assert_int_equal(rtmd_hashmap_count(&m), 3);
    assert_ptr_equal(rtmd_hashmap_get(&m, RTMD_STR_LIT("alpha")), &a);
    assert_ptr_equal(rtmd_hashmap_get(&m, RTMD_STR_LIT("alp")), &b);
    assert_ptr_equal(rtmd_hashmap_get(&m, RTMD_STR_LIT("")), &c);
    assert_null(rtmd_hashmap_get(&m, RTMD_STR_LIT("alph")));
    assert_null(rtmd_hashmap_get(&m, RTMD_STR_LIT("Alpha")));
    /* a key is compared by its bytes, not its address */
    char copy[] = "alpha";
    assert_ptr_equal(rtmd_hashmap_get(&m, rtmd_str_make(copy, 5)), &a);
    /* replacing returns the old value and keeps the count */
    assert_ptr_equal(rtmd_hashmap_put(&m, rtmd_str_make(copy, 5), &c), &a);
    assert_int_equal(rtmd_hashmap_count(&m), 3);
    assert_ptr_equal(rtmd_hashmap_get(&m, RTMD_STR_LIT("alpha")), &c);
    /* removing */
    assert_ptr_equal(rtmd_hashmap_remove(&m, RTMD_STR_LIT("alp")), &b);
    assert_null(rtmd_hashmap_remove(&m, RTMD_STR_LIT("alp")));
    assert_null(rtmd_hashmap_get(&m, RTMD_STR_LIT("alp")));
    assert_int_equal(rtmd_hashmap_count(&m), 2);
    assert_ptr_equal(rtmd_hashmap_remove(&m, RTMD_STR_LIT("")), &c);
    assert_ptr_equal(rtmd_hashmap_remove(&m, RTMD_STR_LIT("alpha")), &c);
    assert_int_equal(rtmd_hashmap_count(&m), 0);
    check_table(&m);
    rtmd_hashmap_free(&m);
}

static void test_growth(void **state)
{
    (void)state;
    static struct key keys[KEYS_MAX];
    make_keys(keys, KEYS_MAX, 0, -1);
    struct rtmd_hashmap m;
    rtmd_hashmap_init(&m);
    for (size_t i = 0; i < KEYS_MAX; i++) {
        keys[i].present = true;
        keys[i].value = value_of(i, 0);
        assert_null(rtmd_hashmap_put(&m, key_str(&keys[i]), keys[i].value));
        if ((i & 31) == 0)
            check_against(&m, keys, KEYS_MAX);
    }
    check_against(&m, keys, KEYS_MAX);
    assert_int_equal(m.mask + 1, 1024); /* 400 keys at a load of at most 3/4 */
    rtmd_hashmap_free(&m);
}

static void test_iteration(void **state)
{
    (void)state;
    static struct key keys[100];
    make_keys(keys, 100, 0, -1);
    struct rtmd_hashmap m;
    rtmd_hashmap_init(&m);
    for (size_t i = 0; i < 100; i++)
        rtmd_hashmap_put(&m, key_str(&keys[i]), value_of(i, 0));
    for (size_t i = 0; i < 100; i += 3)
        rtmd_hashmap_remove(&m, key_str(&keys[i]));
    int seen[100] = {0};
    size_t visits = 0;
    struct rtmd_str k;
    void *v;
    for (size_t it = 0; rtmd_hashmap_next(&m, &it, &k, &v);) {
        size_t i = ((uintptr_t)v & 0xffff) - 1;
        assert_true(i < 100);
        assert_true(rtmd_str_eq(k, key_str(&keys[i])));
        seen[i]++;
        visits++;
    }
    assert_int_equal(visits, rtmd_hashmap_count(&m));
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(seen[i], i % 3 == 0 ? 0 : 1);
    /* the key and value outputs are optional; the end stays the end */
    size_t it = 0, n = 0;
    while (rtmd_hashmap_next(&m, &it, NULL, NULL))
        n++;
    assert_int_equal(n, visits);
    assert_false(rtmd_hashmap_next(&m, &it, NULL, NULL));
    rtmd_hashmap_free(&m);
}

/* ---- collisions and backward-shift deletion ------------------------------------------------ */

static void test_full_collision_chain(void **state)
{
    (void)state;
    /* 150 keys with one home slot at every capacity up to 1024: one probe
     * chain that wraps around the end of the table. */
    static struct key keys[150];
    make_keys(keys, 150, 10, 1023);
    struct rtmd_hashmap m;
    rtmd_hashmap_init(&m);
    for (size_t i = 0; i < 150; i++) {
        keys[i].present = true;
        keys[i].value = value_of(i, 0);
        rtmd_hashmap_put(&m, key_str(&keys[i]), keys[i].value);
    }
    check_against(&m, keys, 150);
    /* remove from the middle, the head and the tail of the chain */
    static const size_t order[] = {75, 0, 149, 1, 148, 74, 76, 2, 147};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        struct key *k = &keys[order[i]];
        assert_ptr_equal(rtmd_hashmap_remove(&m, key_str(k)), k->value);
        k->present = false;
        check_against(&m, keys, 150);
    }
    /* and everything else, every other one first */
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t i = pass; i < 150; i += 2) {
            if (!keys[i].present)
                continue;
            assert_ptr_equal(rtmd_hashmap_remove(&m, key_str(&keys[i])), keys[i].value);
            keys[i].present = false;
            check_against(&m, keys, 150);
        }
    }
    assert_int_equal(rtmd_hashmap_count(&m), 0);
    rtmd_hashmap_free(&m);
}

/* Random puts, replaces and removes over a key set; after every step the
 * map agrees with the array and the table with the probing invariant. */
static void random_ops(struct key *keys, size_t n, int steps)
{
    struct rtmd_hashmap m;
    rtmd_hashmap_init(&m);
    for (int step = 0; step < steps; step++) {
        size_t i = rnd() % n;
        struct key *k = &keys[i];
        switch (rnd() % 3) {
        case 0:
        case 1: {
            void *v = value_of(i, (unsigned)step);
            void *old = rtmd_hashmap_put(&m, key_str(k), v);
            assert_ptr_equal(old, k->present ? k->value : NULL);
            k->present = true;
            k->value = v;
            break;
        }
        default: {
            void *old = rtmd_hashmap_remove(&m, key_str(k));
            assert_ptr_equal(old, k->present ? k->value : NULL);
            k->present = false;
            k->value = NULL;
        }
        }
        check_against(&m, keys, n);
    }
    /* empty it completely, checking as it shrinks */
    for (size_t i = 0; i < n; i++) {
        if (keys[i].present) {
            rtmd_hashmap_remove(&m, key_str(&keys[i]));
            keys[i].present = false;
            check_against(&m, keys, n);
        }
    }
    rtmd_hashmap_free(&m);
}

static void test_random_against_reference(void **state)
{
    (void)state;
    static struct key keys[KEYS_MAX];
    /* any keys */
    make_keys(keys, 200, 0, -1);
    random_ops(keys, 200, 4000);
    /* all in one home slot (at every capacity the map reaches) */
    make_keys(keys, 120, 10, 5);
    random_ops(keys, 120, 3000);
    /* two clusters next to each other at the end of the table, so chains
     * from both wrap and interleave */
    make_keys(keys, 60, 10, 1022);
    make_keys(keys + 60, 60, 10, 1023); /* other hashes, so other names */
    random_ops(keys, 120, 3000);
}

static void test_many_small_clusters(void **state)
{
    (void)state;
    /* keys from 8 home slots close together */
    static struct key keys[KEYS_MAX];
    size_t n = 0;
    for (long low = 0; low < 8; low++) {
        make_keys(keys + n, 25, 10, low * 3);
        n += 25;
    }
    random_ops(keys, n, 4000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_map),
        cmocka_unit_test(test_put_get_replace_remove),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_iteration),
        cmocka_unit_test(test_full_collision_chain),
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_many_small_clusters),
    };
    return cmocka_run_group_tests_name("hashmap", tests, NULL, NULL);
}
