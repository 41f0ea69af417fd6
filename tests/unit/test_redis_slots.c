/*
 * Unit tests for store/redis_slots.c: key slots, the slot map built from
 * CLUSTER SLOTS, and MOVED/ASK/TRYAGAIN/CLUSTERDOWN.
 *
 * Reply trees are made the way the connection layer makes them: RESP bytes
 * parsed by hiredis's redisReader. The replies marked "redis 7.0.15" are the
 * exact bytes a redis-server 7.0.15 (Debian 12) sent to a cluster of three
 * nodes on loopback (ports 50697, 33591 and ::1 47117; another run with a
 * replica: 52021, its replica 53729, and 50633), under each
 * cluster-preferred-endpoint-type; the slot vectors are what its
 * CLUSTER KEYSLOT answered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "core/buf.h"
#include "store/redis_slots.c"

#define ORIGIN RTMD_STR_LIT("10.1.2.3")

/* Parses bytes that must hold exactly one complete reply. */
static redisReply *parse_n(const char *bytes, size_t len)
{
    redisReader *r = redisReaderCreate();
    assert_non_null(r);
    r->maxbuf = 0; /* keep the buffer: big test replies are fed at once */
    assert_int_equal(redisReaderFeed(r, bytes, len), REDIS_OK);
    void *reply = NULL;
    assert_int_equal(redisReaderGetReply(r, &reply), REDIS_OK);
    assert_non_null(reply);
    void *more = NULL;
    assert_int_equal(redisReaderGetReply(r, &more), REDIS_OK);
    assert_null(more);
    redisReaderFree(r);
    return reply;
}
#define RESP(lit) parse_n((lit), sizeof(lit) - 1)

/* ---- replies a redis-server 7.0.15 sent ------------------------------------------- */

/* cluster-preferred-endpoint-type ip: 0-8000, 8001-12000 on 127.0.0.1,
 * 12001-16383 on ::1. */
static const char slots_ip[] = "*3\r\n"
                               "*3\r\n:0\r\n:8000\r\n*4\r\n$9\r\n127.0.0.1\r\n:50697\r\n"
                               "$40\r\nde65a7f0d76ef88078bcebfb94c38d8faea58254\r\n*0\r\n"
                               "*3\r\n:8001\r\n:12000\r\n*4\r\n$9\r\n127.0.0.1\r\n:33591\r\n"
                               "$40\r\n9e756c39b192392ab1f693ae695fc4fd672c6788\r\n*0\r\n"
                               "*3\r\n:12001\r\n:16383\r\n*4\r\n$3\r\n::1\r\n:47117\r\n"
                               "$40\r\n6a14004b2862d5d4bb147b312492c18cc25e5be6\r\n*0\r\n";

/* The same cluster, endpoint type unknown-endpoint: nil hosts. */
static const char slots_unknown_endpoint[] =
    "*3\r\n"
    "*3\r\n:0\r\n:8000\r\n*4\r\n$-1\r\n:50697\r\n"
    "$40\r\nde65a7f0d76ef88078bcebfb94c38d8faea58254\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n"
    "*3\r\n:8001\r\n:12000\r\n*4\r\n$-1\r\n:33591\r\n"
    "$40\r\n9e756c39b192392ab1f693ae695fc4fd672c6788\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n"
    "*3\r\n:12001\r\n:16383\r\n*4\r\n$-1\r\n:47117\r\n"
    "$40\r\n6a14004b2862d5d4bb147b312492c18cc25e5be6\r\n*2\r\n$2\r\nip\r\n$3\r\n::1\r\n";

/* Endpoint type hostname, two nodes announcing one, the third not ("?"). */
static const char slots_hostname[] =
    "*3\r\n"
    "*3\r\n:0\r\n:8000\r\n*4\r\n$14\r\nnode-a.example\r\n:50697\r\n"
    "$40\r\nde65a7f0d76ef88078bcebfb94c38d8faea58254\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n"
    "*3\r\n:8001\r\n:12000\r\n*4\r\n$14\r\nnode-b.example\r\n:33591\r\n"
    "$40\r\n9e756c39b192392ab1f693ae695fc4fd672c6788\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n"
    "*3\r\n:12001\r\n:16383\r\n*4\r\n$1\r\n?\r\n:47117\r\n"
    "$40\r\n6a14004b2862d5d4bb147b312492c18cc25e5be6\r\n*2\r\n$2\r\nip\r\n$3\r\n::1\r\n";

/* Endpoint type ip with hostnames announced: they come as metadata. */
static const char slots_ip_metadata[] =
    "*3\r\n"
    "*3\r\n:0\r\n:8000\r\n*4\r\n$9\r\n127.0.0.1\r\n:50697\r\n"
    "$40\r\nde65a7f0d76ef88078bcebfb94c38d8faea58254\r\n"
    "*2\r\n$8\r\nhostname\r\n$14\r\nnode-a.example\r\n"
    "*3\r\n:8001\r\n:12000\r\n*4\r\n$9\r\n127.0.0.1\r\n:33591\r\n"
    "$40\r\n9e756c39b192392ab1f693ae695fc4fd672c6788\r\n"
    "*2\r\n$8\r\nhostname\r\n$14\r\nnode-b.example\r\n"
    "*3\r\n:12001\r\n:16383\r\n*4\r\n$3\r\n::1\r\n:47117\r\n"
    "$40\r\n6a14004b2862d5d4bb147b312492c18cc25e5be6\r\n*0\r\n";

/* A node alone, before CLUSTER MEET: it does not know its own IP. */
static const char slots_alone[] = "*1\r\n*3\r\n:0\r\n:8000\r\n*4\r\n$0\r\n\r\n:50697\r\n"
                                  "$40\r\nde65a7f0d76ef88078bcebfb94c38d8faea58254\r\n*0\r\n";

/* 0-100 and 200-16383 on :52021 with its replica :53729, 101-199 on :50633. */
static const char slots_replica[] =
    "*3\r\n"
    "*4\r\n:0\r\n:100\r\n*4\r\n$9\r\n127.0.0.1\r\n:52021\r\n"
    "$40\r\nc5c57a0d445bf129f611ba7118a5a525ea2b1eca\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:53729\r\n$40\r\n9bc55b4bda0d83b70f7f94c36a3169bb8973205f\r\n*0\r\n"
    "*3\r\n:101\r\n:199\r\n*4\r\n$9\r\n127.0.0.1\r\n:50633\r\n"
    "$40\r\n01724113eb937ddb337049e1154bb25ddfeb6695\r\n*0\r\n"
    "*4\r\n:200\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:52021\r\n"
    "$40\r\nc5c57a0d445bf129f611ba7118a5a525ea2b1eca\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:53729\r\n$40\r\n9bc55b4bda0d83b70f7f94c36a3169bb8973205f\r\n*0\r\n";

/* ---- helpers ------------------------------------------------------------------------ */

static int update(struct rtmd_redis_slot_map *m, const char *bytes, size_t len,
                  struct rtmd_str origin)
{
    redisReply *r = parse_n(bytes, len);
    const char *why = NULL;
    int rc = rtmd_redis_slots_update(m, r, origin, &why);
    assert_true(rc == 0 ? why == NULL : why != NULL);
    freeReplyObject(r);
    return rc;
}
#define UPDATE(m, lit, origin) update((m), (lit), sizeof(lit) - 1, (origin))

/* The node serving slot, which must exist. */
static const struct rtmd_redis_node *node_at(const struct rtmd_redis_slot_map *m, unsigned slot)
{
    int i = rtmd_redis_slots_node_of(m, slot);
    assert_true(i >= 0);
    const struct rtmd_redis_node *n = rtmd_redis_slots_node(m, (unsigned)i);
    assert_non_null(n);
    return n;
}

static void assert_node(const struct rtmd_redis_node *n, const char *host, unsigned port)
{
    assert_string_equal(n->host, host);
    assert_int_equal(n->host_len, strlen(host));
    assert_int_equal(n->port, port);
}

/* A deep copy, to show that a failed call changed nothing. */
struct snapshot {
    struct rtmd_redis_slot_map m;
    struct rtmd_redis_node nodes[RTMD_REDIS_NODES_MAX];
};

static void take(struct snapshot *s, const struct rtmd_redis_slot_map *m)
{
    s->m = *m;
    if (m->node_count)
        memcpy(s->nodes, m->nodes, m->node_count * sizeof(*m->nodes));
}

static void assert_unchanged(const struct snapshot *s, const struct rtmd_redis_slot_map *m)
{
    assert_ptr_equal(m->nodes, s->m.nodes);
    assert_int_equal(m->node_count, s->m.node_count);
    assert_int_equal(m->node_cap, s->m.node_cap);
    assert_int_equal(m->served_slots, s->m.served_slots);
    assert_int_equal(m->unknown_slots, s->m.unknown_slots);
    assert_int_equal(m->version, s->m.version);
    assert_memory_equal(m->slot_node, s->m.slot_node, sizeof(m->slot_node));
    assert_memory_equal(m->index, s->m.index, sizeof(m->index));
    if (m->node_count)
        assert_memory_equal(m->nodes, s->nodes, m->node_count * sizeof(*m->nodes));
}

/* What every map must be: each slot a node or a marker, counts that add
 * up, hosts valid, every node found at its own index, replicas of primaries. */
static void assert_consistent(const struct rtmd_redis_slot_map *m)
{
    uint32_t per_node[RTMD_REDIS_NODES_MAX] = {0}, served = 0, unknown = 0;
    assert_true(m->node_count <= m->node_cap && m->node_cap <= RTMD_REDIS_NODES_MAX);
    for (unsigned s = 0; s < RTMD_REDIS_SLOTS; s++) {
        uint16_t v = m->slot_node[s];
        if (v == RTMD_REDIS_NODE_UNKNOWN) {
            unknown++;
        } else if (v != RTMD_REDIS_NODE_NONE) {
            assert_true(v < m->node_count);
            per_node[v]++;
            served++;
        }
    }
    assert_int_equal(served, m->served_slots);
    assert_int_equal(unknown, m->unknown_slots);
    for (unsigned i = 0; i < m->node_count; i++) {
        const struct rtmd_redis_node *n = &m->nodes[i];
        assert_int_equal(per_node[i], n->slots);
        assert_true(host_ok(n->host, n->host_len));
        assert_int_equal(strlen(n->host), n->host_len);
        assert_true(n->port >= 1);
        assert_int_equal(rtmd_redis_slots_find(m, rtmd_str_make(n->host, n->host_len), n->port),
                         (int)i);
        if (n->replica) {
            assert_int_equal(n->slots, 0);
            assert_true(n->replica_of == RTMD_REDIS_NODE_NONE || n->replica_of < m->node_count);
        } else {
            assert_int_equal(n->replica_of, RTMD_REDIS_NODE_NONE);
        }
    }
}

/* ---- key -> slot -------------------------------------------------------------------- */

static uint16_t crc16_bitwise(const unsigned char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

static void crc16_check_value(void **state)
{
    (void)state;
    /* The check value of CRC16/XMODEM, as the Redis Cluster spec gives it. */
    assert_int_equal(rtmd_redis_crc16("123456789", 9), 0x31C3);
    assert_int_equal(rtmd_redis_crc16(NULL, 0), 0);
    assert_int_equal(rtmd_redis_crc16("A", 1), 0x58e5);
}

static void crc16_matches_bitwise(void **state)
{
    (void)state;
    unsigned char buf[300];
    uint32_t x = 12345;
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(round % 300);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (unsigned char)(x >> 16);
        }
        assert_int_equal(rtmd_redis_crc16(buf, n), crc16_bitwise(buf, n));
    }
}

static void slot_of_redis_keyslot_vectors(void **state)
{
    (void)state;
    /* Each one as redis-server 7.0.15's CLUSTER KEYSLOT answered it. */
    static const struct {
        const char *key;
        unsigned slot;
    } v[] = {
        {"123456789", 12739}, /* 0x31C3 & 16383 */
        {"foo", 12182},
        {"bar", 5061},
        {"{user1000}.following", 3443},
        {"{user1000}.followers", 3443},
        {"{user1000}", 3443},
        {"user1000", 3443},
        {"foo{}{bar}", 8363},    /* empty first tag: the whole key */
        {"foo{{bar}}zap", 4015}, /* the tag is "{bar" */
        {"{{bar}}", 4015},
        {"{bar", 4015},          /* no '}': the whole key, which is "{bar" */
        {"foo{bar}{zap}", 5061}, /* the first tag, "bar" */
        {"bar}", 6624},
        {"{}", 15257},
        {"", 0},
        {"{", 4092},
        {"{{}}", 4092}, /* the tag is "{" */
        {"}", 12090},
        {"a{b}c", 3300},
        {"{a}", 15495},
        {"ab{}cd", 13199},
        {"{APP1}:ev", 11819},
        {"APP1", 11819},
        {"\xc3\xa9t\xc3\xa9", 10087},
    };
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(v); i++) {
        unsigned got = rtmd_redis_slot_of(v[i].key, strlen(v[i].key));
        if (got != v[i].slot)
            fail_msg("slot of \"%s\": %u, Redis says %u", v[i].key, got, v[i].slot);
    }
    /* Binary bytes: the tag is one NUL byte. */
    assert_int_equal(rtmd_redis_slot_of("\x00\xff{\x00}\x01", 6), 0);
    char x300[300];
    memset(x300, 'x', sizeof(x300));
    assert_int_equal(rtmd_redis_slot_of(x300, sizeof(x300)), 11216);
    assert_int_equal(rtmd_redis_slot_of(NULL, 0), 0);
}

static void slot_of_hash_tag_rule(void **state)
{
    (void)state;
#define SLOT(s) rtmd_redis_slot_of((s), sizeof(s) - 1)
#define CRC(s)  (rtmd_redis_crc16((s), sizeof(s) - 1) & 16383u)
    assert_int_equal(SLOT("{user1000}.following"), CRC("user1000"));
    assert_int_equal(SLOT("{user1000}.following"), SLOT("{user1000}.followers"));
    assert_int_equal(SLOT("foo{}{bar}"), CRC("foo{}{bar}"));
    assert_int_equal(SLOT("foo{{bar}}zap"), CRC("{bar"));
    assert_int_equal(SLOT("foo{bar}{zap}"), CRC("bar"));
    assert_int_equal(SLOT("}{x}"), CRC("x"));      /* a '}' before the '{' does not count */
    assert_int_equal(SLOT("a{b"), CRC("a{b"));     /* unclosed */
    assert_int_equal(SLOT("a{}b}"), CRC("a{}b}")); /* the first '}' after '{' decides */
    assert_int_equal(SLOT("x{a b}y"), CRC("a b")); /* any bytes in a tag */
    assert_int_equal(SLOT("k{\0}"), CRC("\0"));
    assert_int_equal(SLOT("{APP1}:cursor"), SLOT("{APP1}:events:user"));
#undef SLOT
#undef CRC
    /* The key's length is what counts, not a NUL: the tag's '}' is past it. */
    assert_int_equal(rtmd_redis_slot_of("a{b}", 3), rtmd_redis_crc16("a{b", 3) & 16383u);
}

static void slots_same_for_scripts(void **state)
{
    (void)state;
    struct rtmd_str tagged[] = {RTMD_STR_LIT("{A1}:log:user"), RTMD_STR_LIT("{A1}:log:chan"),
                                RTMD_STR_LIT("{A1}:cursor:eu"), RTMD_STR_LIT("A1")};
    assert_int_equal(rtmd_redis_slots_same(tagged, 4), (int)rtmd_redis_slot_of("A1", 2));
    assert_int_equal(rtmd_redis_slots_same(tagged, 1), (int)rtmd_redis_slot_of("A1", 2));
    struct rtmd_str mixed[] = {RTMD_STR_LIT("{A1}:log"), RTMD_STR_LIT("{A2}:log")};
    assert_int_equal(rtmd_redis_slots_same(mixed, 2), -EXDEV);
    /* foo (12182) and bar (5061) differ; bar and foo{bar}{zap} share 5061 */
    struct rtmd_str fb[] = {RTMD_STR_LIT("bar"), RTMD_STR_LIT("foo{bar}{zap}"),
                            RTMD_STR_LIT("foo")};
    assert_int_equal(rtmd_redis_slots_same(fb, 2), 5061);
    assert_int_equal(rtmd_redis_slots_same(fb, 3), -EXDEV);
    assert_int_equal(rtmd_redis_slots_same(fb, 0), -EINVAL);
}

/* ---- CLUSTER SLOTS ------------------------------------------------------------------ */

static void update_real_cluster(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    assert_int_equal(rtmd_redis_slots_node_of(&m, 0), -ENOENT);
    assert_int_equal(UPDATE(&m, slots_ip, ORIGIN), 0);
    assert_consistent(&m);
    assert_int_equal(m.node_count, 3);
    assert_int_equal(m.served_slots, RTMD_REDIS_SLOTS);
    assert_int_equal(m.version, 1);
    assert_node(node_at(&m, 0), "127.0.0.1", 50697);
    assert_node(node_at(&m, 8000), "127.0.0.1", 50697);
    assert_node(node_at(&m, 8001), "127.0.0.1", 33591);
    assert_node(node_at(&m, 12000), "127.0.0.1", 33591);
    assert_node(node_at(&m, 12001), "::1", 47117);
    assert_node(node_at(&m, rtmd_redis_slot_of("foo", 3)), "::1", 47117);
    assert_node(node_at(&m, 16383), "::1", 47117);
    assert_int_equal(node_at(&m, 0)->slots, 8001);
    assert_false(node_at(&m, 0)->replica);
    assert_int_equal(rtmd_redis_slots_node_of(&m, 16384), -EINVAL);
    assert_null(rtmd_redis_slots_node(&m, 3));
    assert_int_equal(rtmd_redis_slots_find(&m, RTMD_STR_LIT("::1"), 47117),
                     rtmd_redis_slots_node_of(&m, 16383));
    assert_int_equal(rtmd_redis_slots_find(&m, RTMD_STR_LIT("::1"), 47118), -ENOENT);
    assert_int_equal(rtmd_redis_slots_find(&m, RTMD_STR_LIT("127.0.0.2"), 50697), -ENOENT);
    assert_int_equal(rtmd_redis_slots_find(&m, RTMD_STR_LIT(""), 50697), -ENOENT);
    assert_int_equal(rtmd_redis_slots_find(&m, RTMD_STR_LIT("::1"), 0), -ENOENT);

    /* The metadata of Redis 7 (an array in RESP2) is ignored. */
    assert_int_equal(UPDATE(&m, slots_ip_metadata, ORIGIN), 0);
    assert_consistent(&m);
    assert_int_equal(m.node_count, 3);
    assert_int_equal(m.version, 2);
    assert_node(node_at(&m, 8001), "127.0.0.1", 33591);
    rtmd_redis_slots_free(&m);
    assert_int_equal(m.version, 2);
    assert_int_equal(m.node_count, 0);
    assert_int_equal(rtmd_redis_slots_node_of(&m, 5), -ENOENT);
}

static void update_replicas_and_split_ranges(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    assert_int_equal(UPDATE(&m, slots_replica, ORIGIN), 0);
    assert_consistent(&m);
    /* :52021 is listed twice (two ranges) and is one node; so is its replica. */
    assert_int_equal(m.node_count, 3);
    const struct rtmd_redis_node *a = node_at(&m, 0);
    assert_node(a, "127.0.0.1", 52021);
    assert_ptr_equal(node_at(&m, 200), a);
    assert_ptr_equal(node_at(&m, 16383), a);
    assert_int_equal(a->slots, 101 + 16184);
    assert_node(node_at(&m, 101), "127.0.0.1", 50633);
    assert_node(node_at(&m, 199), "127.0.0.1", 50633);
    int ri = rtmd_redis_slots_find(&m, RTMD_STR_LIT("127.0.0.1"), 53729);
    assert_true(ri >= 0);
    const struct rtmd_redis_node *replica = rtmd_redis_slots_node(&m, (unsigned)ri);
    assert_true(replica->replica);
    assert_int_equal(replica->replica_of, rtmd_redis_slots_node_of(&m, 0));
    assert_int_equal(replica->slots, 0);
    rtmd_redis_slots_free(&m);
}

/* Redis never lists a node as a primary and as a replica; a hostile reply
 * may. Serving slots wins, whichever range comes first. */
static void update_primary_listed_as_replica(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    assert_int_equal(UPDATE(&m,
                            "*2\r\n*4\r\n:0\r\n:9\r\n*2\r\n$1\r\np\r\n:1\r\n"
                            "*2\r\n$1\r\nr\r\n:1\r\n"
                            "*4\r\n:10\r\n:19\r\n*2\r\n$1\r\nr\r\n:1\r\n"
                            "*2\r\n$1\r\np\r\n:1\r\n",
                            ORIGIN),
                     0);
    assert_consistent(&m);
    assert_int_equal(m.node_count, 2);
    assert_false(m.nodes[0].replica);
    assert_false(m.nodes[1].replica);
    assert_int_equal(m.nodes[0].slots, 10);
    assert_int_equal(m.nodes[1].slots, 10);
    /* A primary listed as its own replica stays a primary. */
    assert_int_equal(UPDATE(&m,
                            "*1\r\n*4\r\n:0\r\n:9\r\n*2\r\n$1\r\np\r\n:1\r\n"
                            "*2\r\n$1\r\np\r\n:1\r\n",
                            ORIGIN),
                     0);
    assert_consistent(&m);
    assert_int_equal(m.node_count, 1);
    assert_false(m.nodes[0].replica);
    rtmd_redis_slots_free(&m);
}

static void update_empty_and_partial(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    /* A fresh cluster serves nothing: every slot unassigned. */
    assert_int_equal(UPDATE(&m, "*0\r\n", ORIGIN), 0);
    assert_consistent(&m);
    assert_int_equal(m.served_slots, 0);
    assert_int_equal(m.version, 1);
    for (unsigned s = 0; s < RTMD_REDIS_SLOTS; s += 997)
        assert_int_equal(rtmd_redis_slots_node_of(&m, s), -ENOENT);
    /* Gaps between ranges stay unassigned. */
    assert_int_equal(UPDATE(&m,
                            "*2\r\n*3\r\n:5\r\n:5\r\n*2\r\n$2\r\nh1\r\n:7000\r\n"
                            "*3\r\n:16383\r\n:16383\r\n*2\r\n$2\r\nh2\r\n:7000\r\n",
                            ORIGIN),
                     0);
    assert_consistent(&m);
    assert_int_equal(m.served_slots, 2);
    assert_int_equal(rtmd_redis_slots_node_of(&m, 4), -ENOENT);
    assert_node(node_at(&m, 5), "h1", 7000);
    assert_int_equal(rtmd_redis_slots_node_of(&m, 6), -ENOENT);
    assert_int_equal(rtmd_redis_slots_node_of(&m, 16382), -ENOENT);
    assert_node(node_at(&m, 16383), "h2", 7000);
    rtmd_redis_slots_free(&m);
}

static void update_empty_and_nil_hosts_are_the_origin(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    /* A node alone answers "" for its own host: the address we asked. */
    assert_int_equal(UPDATE(&m, slots_alone, RTMD_STR_LIT("127.0.0.1")), 0);
    assert_consistent(&m);
    assert_node(node_at(&m, 0), "127.0.0.1", 50697);
    assert_int_equal(rtmd_redis_slots_node_of(&m, 8001), -ENOENT);

    /* unknown-endpoint: nil hosts, the origin with each node's own port. */
    assert_int_equal(UPDATE(&m, slots_unknown_endpoint, ORIGIN), 0);
    assert_consistent(&m);
    assert_int_equal(m.node_count, 3);
    assert_node(node_at(&m, 0), "10.1.2.3", 50697);
    assert_node(node_at(&m, 8001), "10.1.2.3", 33591);
    assert_node(node_at(&m, 16383), "10.1.2.3", 47117);

    /* Without an origin (or with an unusable one) it cannot be read. */
    struct snapshot *s = malloc(sizeof(*s));
    assert_non_null(s);
    take(s, &m);
    assert_int_equal(UPDATE(&m, slots_alone, RTMD_STR_NULL), -EINVAL);
    assert_unchanged(s, &m);
    assert_int_equal(UPDATE(&m, slots_unknown_endpoint, RTMD_STR_LIT("?")), -EINVAL);
    assert_int_equal(UPDATE(&m, slots_unknown_endpoint, RTMD_STR_LIT("a b")), -EINVAL);
    assert_unchanged(s, &m);
    free(s);
    rtmd_redis_slots_free(&m);
}

static void update_question_mark_is_unknown_not_origin(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    assert_int_equal(UPDATE(&m, slots_hostname, ORIGIN), 0);
    assert_consistent(&m);
    assert_node(node_at(&m, 0), "node-a.example", 50697);
    assert_node(node_at(&m, 12000), "node-b.example", 33591);
    /* The third announced "?": its slots have no address, and no node was
     * made up for it (not the origin). */
    assert_int_equal(m.node_count, 2);
    assert_int_equal(rtmd_redis_slots_node_of(&m, 12001), -EDESTADDRREQ);
    assert_int_equal(rtmd_redis_slots_node_of(&m, 16383), -EDESTADDRREQ);
    assert_int_equal(m.unknown_slots, 16383 - 12001 + 1);
    assert_int_equal(m.served_slots, 12001);
    assert_int_equal(rtmd_redis_slots_find(&m, ORIGIN, 47117), -ENOENT);

    /* A "?" replica is left out; its primary's slots are served. */
    assert_int_equal(UPDATE(&m,
                            "*1\r\n*5\r\n:0\r\n:16383\r\n*2\r\n$1\r\np\r\n:1\r\n"
                            "*2\r\n$1\r\n?\r\n:2\r\n*2\r\n$1\r\nr\r\n:3\r\n",
                            ORIGIN),
                     0);
    assert_consistent(&m);
    assert_int_equal(m.node_count, 2);
    assert_int_equal(m.unknown_slots, 0);
    /* A replica of a "?" primary is known but belongs to none. */
    assert_int_equal(UPDATE(&m,
                            "*1\r\n*4\r\n:0\r\n:9\r\n*2\r\n$1\r\n?\r\n:1\r\n"
                            "*2\r\n$1\r\nr\r\n:3\r\n",
                            ORIGIN),
                     0);
    assert_consistent(&m);
    assert_int_equal(m.node_count, 1);
    assert_true(m.nodes[0].replica);
    assert_int_equal(m.nodes[0].replica_of, RTMD_REDIS_NODE_NONE);
    rtmd_redis_slots_free(&m);
}

static void update_forward_and_backward_compatible(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    /* Redis 3: [host, port] only. */
    assert_int_equal(
        UPDATE(&m, "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$8\r\n10.0.0.1\r\n:6379\r\n", ORIGIN), 0);
    assert_node(node_at(&m, 16383), "10.0.0.1", 6379);
    /* Extra fields after the port, of any type, are ignored: the ID, Redis 7's
     * metadata, whatever a future version adds. */
    assert_int_equal(UPDATE(&m,
                            "*1\r\n*4\r\n:0\r\n:16383\r\n"
                            "*7\r\n$8\r\n10.0.0.2\r\n:6380\r\n$2\r\nid\r\n"
                            "*2\r\n$8\r\nhostname\r\n$1\r\nx\r\n:5\r\n$-1\r\n*1\r\n*0\r\n"
                            "*3\r\n$8\r\n10.0.0.3\r\n:6381\r\n-ERR odd\r\n",
                            ORIGIN),
                     0);
    assert_consistent(&m);
    assert_node(node_at(&m, 0), "10.0.0.2", 6380);
    assert_int_equal(m.node_count, 2);
    assert_true(m.nodes[1].replica);
    rtmd_redis_slots_free(&m);
}

/* Builds a reply of n one-slot ranges, each on its own node 10.x.y.z:7000,
 * with a distinct replica too if replicas. */
static redisReply *many_nodes(unsigned n, bool replicas)
{
    struct rtmd_buf b;
    rtmd_buf_init(&b, 1 << 20);
    rtmd_buf_printf(&b, "*%u\r\n", n);
    for (unsigned i = 0; i < n; i++) {
        char host[32];
        int len = snprintf(host, sizeof(host), "10.%u.%u.1", i / 256, i % 256);
        rtmd_buf_printf(&b, "*%u\r\n:%u\r\n:%u\r\n*2\r\n$%d\r\n%s\r\n:7000\r\n", replicas ? 4 : 3,
                        i, i, len, host);
        if (replicas)
            rtmd_buf_printf(&b, "*2\r\n$%d\r\n%s\r\n:7001\r\n", len, host);
    }
    redisReply *r = parse_n(b.data, b.len);
    rtmd_buf_free(&b);
    return r;
}

static void update_node_bound(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    redisReply *r = many_nodes(RTMD_REDIS_NODES_MAX, false);
    assert_int_equal(rtmd_redis_slots_update(&m, r, ORIGIN, NULL), 0);
    freeReplyObject(r);
    assert_consistent(&m);
    assert_int_equal(m.node_count, RTMD_REDIS_NODES_MAX);
    assert_node(node_at(&m, 1023), "10.3.255.1", 7000);

    struct snapshot *s = malloc(sizeof(*s));
    assert_non_null(s);
    take(s, &m);
    const char *why = NULL;
    r = many_nodes(RTMD_REDIS_NODES_MAX + 1, false);
    assert_int_equal(rtmd_redis_slots_update(&m, r, ORIGIN, &why), RTMD_ELIMIT);
    assert_string_equal(why, "more than 1024 nodes");
    freeReplyObject(r);
    assert_unchanged(s, &m);
    /* Replicas count against the bound too. */
    r = many_nodes(RTMD_REDIS_NODES_MAX / 2, true);
    assert_int_equal(rtmd_redis_slots_update(&m, r, ORIGIN, NULL), 0);
    freeReplyObject(r);
    assert_consistent(&m);
    assert_int_equal(m.node_count, RTMD_REDIS_NODES_MAX);
    take(s, &m);
    r = many_nodes(RTMD_REDIS_NODES_MAX / 2 + 1, true);
    assert_int_equal(rtmd_redis_slots_update(&m, r, ORIGIN, NULL), RTMD_ELIMIT);
    freeReplyObject(r);
    assert_unchanged(s, &m);
    free(s);
    rtmd_redis_slots_free(&m);
}

static void update_rejects_malformed(void **state)
{
    (void)state;
#define HOST255                                                                                    \
    "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh" \
    "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh" \
    "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
#define R1(body)         "*1\r\n*3\r\n" body
#define NODE(host, port) "*2\r\n" host port
#define BAD(what, lit, rc)                                                                         \
    {                                                                                              \
        what, lit, sizeof(lit) - 1, rc                                                             \
    }
    static const struct {
        const char *what;
        const char *resp;
        size_t len;
        int rc;
    } bad[] = {
        BAD("a string", "$3\r\nabc\r\n", RTMD_EPARSE),
        BAD("an integer", ":1\r\n", RTMD_EPARSE),
        BAD("nil", "$-1\r\n", RTMD_EPARSE),
        BAD("nil array", "*-1\r\n", RTMD_EPARSE),
        BAD("a status", "+OK\r\n", RTMD_EPARSE),
        BAD("an error", "-ERR This instance has cluster support disabled\r\n", RTMD_ESTORE),
        BAD("range not an array", "*1\r\n:0\r\n", RTMD_EPARSE),
        BAD("range nil", "*1\r\n*-1\r\n", RTMD_EPARSE),
        BAD("range of two", "*1\r\n*2\r\n:0\r\n:1\r\n", RTMD_EPARSE),
        BAD("range empty", "*1\r\n*0\r\n", RTMD_EPARSE),
        BAD("start a string", R1("$1\r\n0\r\n:1\r\n" NODE("$1\r\nh\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("end a string", R1(":0\r\n$1\r\n1\r\n" NODE("$1\r\nh\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("start nil", R1("$-1\r\n:1\r\n" NODE("$1\r\nh\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("start negative", R1(":-1\r\n:1\r\n" NODE("$1\r\nh\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("end 16384", R1(":0\r\n:16384\r\n" NODE("$1\r\nh\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("start 16384", R1(":16384\r\n:16384\r\n" NODE("$1\r\nh\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("huge end", R1(":0\r\n:9223372036854775807\r\n" NODE("$1\r\nh\r\n", ":1\r\n")),
            RTMD_EPARSE),
        BAD("start after end", R1(":10\r\n:9\r\n" NODE("$1\r\nh\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("primary not an array", R1(":0\r\n:1\r\n$1\r\nh\r\n"), RTMD_EPARSE),
        BAD("primary nil", R1(":0\r\n:1\r\n*-1\r\n"), RTMD_EPARSE),
        BAD("primary of one", R1(":0\r\n:1\r\n*1\r\n$1\r\nh\r\n"), RTMD_EPARSE),
        BAD("primary empty", R1(":0\r\n:1\r\n*0\r\n"), RTMD_EPARSE),
        BAD("host an integer", R1(":0\r\n:1\r\n" NODE(":1\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("host a status", R1(":0\r\n:1\r\n" NODE("+h\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("host an array", R1(":0\r\n:1\r\n" NODE("*1\r\n$1\r\nh\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("host 256 bytes", R1(":0\r\n:1\r\n" NODE("$256\r\n" HOST255 "h\r\n", ":1\r\n")),
            RTMD_EPARSE),
        BAD("host with NUL", R1(":0\r\n:1\r\n" NODE("$3\r\na\0b\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("host with \\x01",
            R1(":0\r\n:1\r\n" NODE("$3\r\na\x01"
                                   "b\r\n",
                                   ":1\r\n")),
            RTMD_EPARSE),
        BAD("host with CR LF", R1(":0\r\n:1\r\n" NODE("$4\r\na\r\nb\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("host with a space", R1(":0\r\n:1\r\n" NODE("$3\r\na b\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("host with a tab", R1(":0\r\n:1\r\n" NODE("$3\r\na\tb\r\n", ":1\r\n")), RTMD_EPARSE),
        BAD("host with DEL",
            R1(":0\r\n:1\r\n" NODE("$3\r\na\x7f"
                                   "b\r\n",
                                   ":1\r\n")),
            RTMD_EPARSE),
        BAD("host with UTF-8", R1(":0\r\n:1\r\n" NODE("$3\r\n\xc3\xa9x\r\n", ":1\r\n")),
            RTMD_EPARSE),
        BAD("port a string", R1(":0\r\n:1\r\n" NODE("$1\r\nh\r\n", "$4\r\n7000\r\n")), RTMD_EPARSE),
        BAD("port nil", R1(":0\r\n:1\r\n" NODE("$1\r\nh\r\n", "$-1\r\n")), RTMD_EPARSE),
        BAD("port 0", R1(":0\r\n:1\r\n" NODE("$1\r\nh\r\n", ":0\r\n")), RTMD_EPARSE),
        BAD("port 65536", R1(":0\r\n:1\r\n" NODE("$1\r\nh\r\n", ":65536\r\n")), RTMD_EPARSE),
        BAD("port -1", R1(":0\r\n:1\r\n" NODE("$1\r\nh\r\n", ":-1\r\n")), RTMD_EPARSE),
        BAD("port 2^32+1", R1(":0\r\n:1\r\n" NODE("$1\r\nh\r\n", ":4294967297\r\n")), RTMD_EPARSE),
        BAD("overlap",
            "*2\r\n*3\r\n:0\r\n:10\r\n" NODE("$1\r\nh\r\n", ":1\r\n") "*3\r\n:10\r\n:20\r\n" NODE(
                "$1\r\ng\r\n", ":1\r\n"),
            RTMD_EPARSE),
        BAD("same range twice",
            "*2\r\n*3\r\n:0\r\n:0\r\n" NODE("$1\r\nh\r\n", ":1\r\n") "*3\r\n:0\r\n:0\r\n" NODE(
                "$1\r\nh\r\n", ":1\r\n"),
            RTMD_EPARSE),
        BAD("bad second range", "*2\r\n*3\r\n:0\r\n:10\r\n" NODE("$1\r\nh\r\n", ":1\r\n") ":5\r\n",
            RTMD_EPARSE),
        BAD("replica not an array",
            "*1\r\n*4\r\n:0\r\n:1\r\n" NODE("$1\r\nh\r\n", ":1\r\n") "$1\r\nr\r\n", RTMD_EPARSE),
        BAD("replica port 0",
            "*1\r\n*4\r\n:0\r\n:1\r\n" NODE("$1\r\nh\r\n", ":1\r\n") NODE("$1\r\nr\r\n", ":0\r\n"),
            RTMD_EPARSE),
        BAD("replica host bad",
            "*1\r\n*4\r\n:0\r\n:1\r\n" NODE("$1\r\nh\r\n", ":1\r\n")
                NODE("$2\r\nr\x01\r\n", ":1\r\n"),
            RTMD_EPARSE),
        BAD("replica nil", "*1\r\n*4\r\n:0\r\n:1\r\n" NODE("$1\r\nh\r\n", ":1\r\n") "*-1\r\n",
            RTMD_EPARSE),
    };
#undef R1
#undef NODE
#undef BAD
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    assert_int_equal(UPDATE(&m, slots_replica, ORIGIN), 0);
    struct snapshot *s = malloc(sizeof(*s));
    assert_non_null(s);
    take(s, &m);
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(bad); i++) {
        int rc = update(&m, bad[i].resp, bad[i].len, ORIGIN);
        if (rc != bad[i].rc)
            fail_msg("%s: %d (%s), expected %d", bad[i].what, rc, rtmd_strerror(rc), bad[i].rc);
        assert_unchanged(s, &m);
    }
    /* The sentence for the log names what was wrong. */
    redisReply *r = RESP("*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n");
    const char *why = NULL;
    assert_int_equal(rtmd_redis_slots_update(&m, r, ORIGIN, &why), RTMD_EPARSE);
    assert_string_equal(why, "a slot range is outside 0..16383 or starts after its end");
    freeReplyObject(r);
    r = RESP("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n");
    assert_int_equal(rtmd_redis_slots_update(&m, r, ORIGIN, &why), RTMD_EPARSE);
    assert_string_equal(why, "a node's port is not an integer in 1..65535");
    freeReplyObject(r);
    assert_unchanged(s, &m);
    /* 255 bytes is a host. */
    assert_int_equal(
        UPDATE(&m, "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$255\r\n" HOST255 "\r\n:65535\r\n", ORIGIN), 0);
    assert_consistent(&m);
    assert_int_equal(node_at(&m, 1)->host_len, 255);
    assert_int_equal(node_at(&m, 1)->port, 65535);
#undef HOST255
    assert_int_equal(rtmd_redis_slots_update(&m, NULL, ORIGIN, NULL), -EINVAL);
    free(s);
    rtmd_redis_slots_free(&m);
}

/* Trees hiredis never makes, by hand: NULL elements, more ranges than slots. */
static void update_rejects_odd_trees(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    redisReply *elements[1] = {NULL};
    redisReply top = {.type = REDIS_REPLY_ARRAY, .elements = 1, .element = elements};
    assert_int_equal(rtmd_redis_slots_update(&m, &top, ORIGIN, NULL), RTMD_EPARSE);
    top.elements = RTMD_REDIS_SLOTS + 1; /* refused before any element is read */
    const char *why = NULL;
    assert_int_equal(rtmd_redis_slots_update(&m, &top, ORIGIN, &why), RTMD_EPARSE);
    assert_string_equal(why, "more slot ranges than slots");
    redisReply start = {.type = REDIS_REPLY_INTEGER}, end = {.type = REDIS_REPLY_INTEGER};
    redisReply *range_el[3] = {&start, &end, NULL};
    redisReply range = {.type = REDIS_REPLY_ARRAY, .elements = 3, .element = range_el};
    elements[0] = &range;
    top.elements = 1;
    assert_int_equal(rtmd_redis_slots_update(&m, &top, ORIGIN, NULL), RTMD_EPARSE);
    assert_int_equal(m.version, 0);
    rtmd_redis_slots_free(&m);
}

static void update_replaces_and_renumbers(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    assert_int_equal(UPDATE(&m, slots_ip, ORIGIN), 0);
    assert_int_equal(rtmd_redis_slots_find(&m, RTMD_STR_LIT("::1"), 47117), 2);
    /* The same nodes listed in another order: numbered afresh. */
    assert_int_equal(UPDATE(&m,
                            "*2\r\n*3\r\n:0\r\n:99\r\n*2\r\n$3\r\n::1\r\n:47117\r\n"
                            "*3\r\n:100\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:50697\r\n",
                            ORIGIN),
                     0);
    assert_consistent(&m);
    assert_int_equal(m.version, 2);
    assert_int_equal(m.node_count, 2);
    assert_int_equal(rtmd_redis_slots_find(&m, RTMD_STR_LIT("::1"), 47117), 0);
    assert_int_equal(rtmd_redis_slots_find(&m, RTMD_STR_LIT("127.0.0.1"), 33591), -ENOENT);
    assert_int_equal(m.unknown_slots, 0);
    rtmd_redis_slots_free(&m);
}

/* ---- redirections ------------------------------------------------------------------- */

static int classify_text(const char *text, struct rtmd_str origin, struct rtmd_redis_redirect *out)
{
    return rtmd_redis_slots_parse_error(rtmd_str_cstr(text), origin, out);
}

static void redirect_moved_and_ask(void **state)
{
    (void)state;
    struct rtmd_redis_redirect r;
    /* redis 7.0.15, as hiredis hands them over (no '-', no CRLF) */
    assert_int_equal(classify_text("MOVED 5061 127.0.0.1:50697", ORIGIN, &r), RTMD_REDIS_MOVED);
    assert_int_equal(r.kind, RTMD_REDIS_MOVED);
    assert_int_equal(r.slot, 5061);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.host_len, 9);
    assert_int_equal(r.port, 50697);
    assert_false(r.host_unknown);
    /* IPv6: Redis writes no brackets; the last ':' starts the port. */
    assert_int_equal(classify_text("MOVED 12182 ::1:47117", ORIGIN, &r), RTMD_REDIS_MOVED);
    assert_int_equal(r.slot, 12182);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 47117);
    assert_int_equal(classify_text("ASK 5061 127.0.0.1:33591", ORIGIN, &r), RTMD_REDIS_ASK);
    assert_int_equal(r.kind, RTMD_REDIS_ASK);
    assert_int_equal(r.slot, 5061);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 33591);
    assert_int_equal(classify_text("MOVED 5061 node-a.example:50697", ORIGIN, &r),
                     RTMD_REDIS_MOVED);
    assert_string_equal(r.host, "node-a.example");
    assert_int_equal(classify_text("ASK 0 2001:db8::7:1:65535", ORIGIN, &r), RTMD_REDIS_ASK);
    assert_string_equal(r.host, "2001:db8::7:1");
    assert_int_equal(r.port, 65535);
    assert_int_equal(r.slot, 0);
    assert_int_equal(classify_text("MOVED 16383 fe80::1%eth0:7000", ORIGIN, &r), RTMD_REDIS_MOVED);
    assert_string_equal(r.host, "fe80::1%eth0");
    assert_int_equal(r.slot, 16383);
}

static void redirect_empty_and_unknown_hosts(void **state)
{
    (void)state;
    struct rtmd_redis_redirect r;
    /* unknown-endpoint (redis 7.0.15): the address we sent the command to */
    assert_int_equal(classify_text("MOVED 12182 :47117", ORIGIN, &r), RTMD_REDIS_MOVED);
    assert_string_equal(r.host, "10.1.2.3");
    assert_int_equal(r.port, 47117);
    assert_false(r.host_unknown);
    assert_int_equal(classify_text("ASK 1 :7000", RTMD_STR_LIT("::1"), &r), RTMD_REDIS_ASK);
    assert_string_equal(r.host, "::1");
    memset(&r, 0x5a, sizeof(r));
    assert_int_equal(classify_text("MOVED 12182 :47117", RTMD_STR_NULL, &r), -EINVAL);
    assert_int_equal(r.port, 0x5a5a); /* untouched */
    assert_int_equal(classify_text("MOVED 12182 :47117", RTMD_STR_LIT("?"), &r), -EINVAL);
    /* hostname endpoints but none announced (redis 7.0.15): no address */
    assert_int_equal(classify_text("MOVED 12182 ?:47117", ORIGIN, &r), RTMD_REDIS_MOVED);
    assert_true(r.host_unknown);
    assert_int_equal(r.host_len, 0);
    assert_string_equal(r.host, "");
    assert_int_equal(r.slot, 12182);
    assert_int_equal(r.port, 47117);
}

static void redirect_state_errors(void **state)
{
    (void)state;
    struct rtmd_redis_redirect r;
    assert_int_equal(
        classify_text("TRYAGAIN Multiple keys request during rehashing of slot", ORIGIN, &r),
        RTMD_REDIS_TRYAGAIN);
    assert_int_equal(r.kind, RTMD_REDIS_TRYAGAIN);
    assert_int_equal(r.slot, 0);
    assert_int_equal(r.host_len, 0);
    assert_int_equal(classify_text("TRYAGAIN", ORIGIN, &r), RTMD_REDIS_TRYAGAIN);
    assert_int_equal(classify_text("CLUSTERDOWN Hash slot not served", ORIGIN, &r),
                     RTMD_REDIS_CLUSTERDOWN);
    assert_int_equal(classify_text("CLUSTERDOWN The cluster is down", ORIGIN, &r),
                     RTMD_REDIS_CLUSTERDOWN);
    assert_int_equal(classify_text("CLUSTERDOWN", ORIGIN, &r), RTMD_REDIS_CLUSTERDOWN);
    static const char *other[] = {
        "CROSSSLOT Keys in request don't hash to the same slot",
        "ERR unknown command",
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "MOVEDX 1 h:1",
        "ASKING",
        "moved 1 h:1",
        "TRYAGAINX",
        "CLUSTERDOWNX y",
        " MOVED 1 h:1",
        "",
        "MOVE 1 h:1",
    };
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(other); i++) {
        memset(&r, 0x5a, sizeof(r));
        if (classify_text(other[i], ORIGIN, &r) != RTMD_REDIS_NOT_CLUSTER)
            fail_msg("\"%s\" is not a cluster error", other[i]);
        assert_int_equal(r.kind, RTMD_REDIS_NOT_CLUSTER);
        assert_int_equal(r.host_len, 0);
    }
    assert_int_equal(rtmd_redis_slots_parse_error(RTMD_STR_NULL, ORIGIN, &r),
                     RTMD_REDIS_NOT_CLUSTER);
    assert_int_equal(rtmd_redis_slots_parse_error(rtmd_str_make(NULL, 5), ORIGIN, &r), -EINVAL);
}

static void redirect_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "MOVED",
        "MOVED ",
        "MOVED 1",
        "MOVED 1 ",
        "MOVED  1 h:1",
        "MOVED 1  h:1",
        "MOVED 1 h:1 ",
        "MOVED 1 h:1 extra",
        "MOVED 1 h:1\r\n",
        "MOVED 16384 h:1",
        "MOVED 99999999999999999999999 h:1",
        "MOVED -1 h:1",
        "MOVED +1 h:1",
        "MOVED 1x h:1",
        "MOVED 0x10 h:1",
        "MOVED 1 h",
        "MOVED 1 h:",
        "MOVED 1 :",
        "MOVED 1 h:0",
        "MOVED 1 h:65536",
        "MOVED 1 h:99999999999999999999999",
        "MOVED 1 h:+1",
        "MOVED 1 h:-1",
        "MOVED 1 h:1x",
        "MOVED 1 [::1]:x",
        "MOVED 1 a\tb:1",
        "MOVED 1 a\x7f:1",
        "MOVED 1 \xc3\xa9:1",
        "MOVED 1 a b:1",
        "ASK",
        "ASK 1",
        "ASK h:1",
        "ASK 1 h:0",
        "ASK 16384 h:1",
        "ASK 1 ??:1x",
    };
    struct rtmd_redis_redirect r;
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(bad); i++) {
        memset(&r, 0x5a, sizeof(r));
        int rc = classify_text(bad[i], ORIGIN, &r);
        if (rc != RTMD_EPARSE)
            fail_msg("\"%s\": %d, expected RTMD_EPARSE", bad[i], rc);
        assert_int_equal(r.port, 0x5a5a);
    }
    /* A NUL inside the text is a byte like any other, and not a host's. */
    assert_int_equal(rtmd_redis_slots_parse_error(RTMD_STR_LIT("MOVED 1 a\0b:1"), ORIGIN, &r),
                     RTMD_EPARSE);
    assert_int_equal(rtmd_redis_slots_parse_error(RTMD_STR_LIT("MOVED 1 h:1\0"), ORIGIN, &r),
                     RTMD_EPARSE);
    /* Host length: 255 is fine, 256 is not. */
    char text[400];
    char host[257];
    memset(host, 'h', 256);
    host[256] = '\0';
    snprintf(text, sizeof(text), "MOVED 7 %s:1", host);
    assert_int_equal(classify_text(text, ORIGIN, &r), RTMD_EPARSE);
    host[255] = '\0';
    snprintf(text, sizeof(text), "MOVED 7 %s:1", host);
    assert_int_equal(classify_text(text, ORIGIN, &r), RTMD_REDIS_MOVED);
    assert_int_equal(r.host_len, 255);
    assert_string_equal(r.host, host);
}

static void classify_replies(void **state)
{
    (void)state;
    struct rtmd_redis_redirect r;
    static const struct {
        const char *resp;
        int kind;
    } v[] = {
        {"-MOVED 12182 ::1:47117\r\n", RTMD_REDIS_MOVED},
        {"-ASK 5061 127.0.0.1:33591\r\n", RTMD_REDIS_ASK},
        {"-TRYAGAIN Multiple keys request during rehashing of slot\r\n", RTMD_REDIS_TRYAGAIN},
        {"-CLUSTERDOWN Hash slot not served\r\n", RTMD_REDIS_CLUSTERDOWN},
        {"-CROSSSLOT Keys in request don't hash to the same slot\r\n", RTMD_REDIS_NOT_CLUSTER},
        {"-MOVED 1\r\n", RTMD_EPARSE},
        /* Not error replies, whatever they say. */
        {"+MOVED 1 h:1\r\n", RTMD_REDIS_NOT_CLUSTER},
        {"$11\r\nMOVED 1 h:1\r\n", RTMD_REDIS_NOT_CLUSTER},
        {"$-1\r\n", RTMD_REDIS_NOT_CLUSTER},
        {":5\r\n", RTMD_REDIS_NOT_CLUSTER},
        {"*1\r\n-MOVED 1 h:1\r\n", RTMD_REDIS_NOT_CLUSTER},
    };
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(v); i++) {
        redisReply *reply = parse_n(v[i].resp, strlen(v[i].resp));
        int rc = rtmd_redis_slots_classify(reply, ORIGIN, &r);
        if (rc != v[i].kind)
            fail_msg("%s: %d, expected %d", v[i].resp, rc, v[i].kind);
        freeReplyObject(reply);
    }
}

/* ---- MOVED applied to the map ------------------------------------------------------- */

static struct rtmd_redis_redirect moved(const char *text)
{
    struct rtmd_redis_redirect r;
    assert_int_equal(classify_text(text, ORIGIN, &r), RTMD_REDIS_MOVED);
    return r;
}

static void apply_moved_updates_the_map(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    assert_int_equal(UPDATE(&m, slots_ip, ORIGIN), 0);
    uint64_t v = m.version;

    /* To a known node: the slot moves, counts follow, no node is added. */
    struct rtmd_redis_redirect r = moved("MOVED 5061 127.0.0.1:33591");
    int b = rtmd_redis_slots_apply_moved(&m, &r);
    assert_int_equal(b, rtmd_redis_slots_find(&m, RTMD_STR_LIT("127.0.0.1"), 33591));
    assert_int_equal(rtmd_redis_slots_node_of(&m, 5061), b);
    assert_int_equal(m.node_count, 3);
    assert_int_equal(m.version, v + 1);
    assert_int_equal(node_at(&m, 0)->slots, 8000);
    assert_int_equal(node_at(&m, 5061)->slots, 4001);
    assert_consistent(&m);
    /* Again: nothing changes, not even the version. */
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), b);
    assert_int_equal(m.version, v + 1);

    /* To a new node: added at the end, indices of the others kept. */
    r = moved("MOVED 16383 ::2:7000");
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), 3);
    assert_int_equal(m.node_count, 4);
    assert_node(node_at(&m, 16383), "::2", 7000);
    assert_node(node_at(&m, 16382), "::1", 47117);
    assert_int_equal(m.version, v + 2);
    assert_consistent(&m);

    /* A MOVED with the empty host: the origin's address. */
    r = moved("MOVED 0 :47117");
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), 4);
    assert_node(node_at(&m, 0), "10.1.2.3", 47117);
    assert_consistent(&m);
    rtmd_redis_slots_free(&m);
}

static void apply_moved_fills_unassigned_and_unknown(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    struct rtmd_redis_redirect r = moved("MOVED 9 h:1");
    /* Onto an empty map. */
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), 0);
    assert_int_equal(m.served_slots, 1);
    assert_int_equal(m.version, 1);
    assert_consistent(&m);
    /* Onto a slot whose primary was "?". */
    assert_int_equal(UPDATE(&m, slots_hostname, ORIGIN), 0);
    r = moved("MOVED 12001 ::1:47117");
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), 2);
    assert_int_equal(m.unknown_slots, 16383 - 12001);
    assert_int_equal(m.served_slots, 12002);
    assert_consistent(&m);
    rtmd_redis_slots_free(&m);
}

static void apply_moved_promotes_a_replica(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    assert_int_equal(UPDATE(&m, slots_replica, ORIGIN), 0);
    int ri = rtmd_redis_slots_find(&m, RTMD_STR_LIT("127.0.0.1"), 53729);
    assert_true(m.nodes[ri].replica);
    /* A failover: the replica answers for its primary's slot now. */
    struct rtmd_redis_redirect r = moved("MOVED 0 127.0.0.1:53729");
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), ri);
    assert_false(m.nodes[ri].replica);
    assert_int_equal(m.nodes[ri].replica_of, RTMD_REDIS_NODE_NONE);
    assert_int_equal(m.nodes[ri].slots, 1);
    assert_int_equal(m.node_count, 3);
    assert_consistent(&m);
    rtmd_redis_slots_free(&m);
}

static void apply_moved_refusals(void **state)
{
    (void)state;
    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    assert_int_equal(UPDATE(&m, slots_ip, ORIGIN), 0);
    struct snapshot *s = malloc(sizeof(*s));
    assert_non_null(s);
    take(s, &m);
    struct rtmd_redis_redirect r;
    assert_int_equal(classify_text("ASK 5061 127.0.0.1:33591", ORIGIN, &r), RTMD_REDIS_ASK);
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), -EINVAL);
    assert_int_equal(classify_text("TRYAGAIN", ORIGIN, &r), RTMD_REDIS_TRYAGAIN);
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), -EINVAL);
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, NULL), -EINVAL);
    r = moved("MOVED 12182 ?:47117");
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), -EDESTADDRREQ);
    /* A hand-made redirect is checked like a parsed one. */
    r = moved("MOVED 1 h:1");
    r.slot = RTMD_REDIS_SLOTS;
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), -EINVAL);
    r = moved("MOVED 1 h:1");
    r.port = 0;
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), -EINVAL);
    r = moved("MOVED 1 h:1");
    r.host[0] = ' ';
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), -EINVAL);
    assert_unchanged(s, &m);

    /* A full table takes no new node (refresh with CLUSTER SLOTS instead),
     * but a MOVED to a node it has still applies. */
    redisReply *full = many_nodes(RTMD_REDIS_NODES_MAX, false);
    assert_int_equal(rtmd_redis_slots_update(&m, full, ORIGIN, NULL), 0);
    freeReplyObject(full);
    take(s, &m);
    r = moved("MOVED 5 10.9.9.9:7000");
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), RTMD_ELIMIT);
    assert_unchanged(s, &m);
    r = moved("MOVED 5 10.0.0.1:7000");
    assert_int_equal(rtmd_redis_slots_apply_moved(&m, &r), 0);
    assert_int_equal(rtmd_redis_slots_node_of(&m, 5), 0);
    assert_consistent(&m);
    free(s);
    rtmd_redis_slots_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc16_check_value),
        cmocka_unit_test(crc16_matches_bitwise),
        cmocka_unit_test(slot_of_redis_keyslot_vectors),
        cmocka_unit_test(slot_of_hash_tag_rule),
        cmocka_unit_test(slots_same_for_scripts),
        cmocka_unit_test(update_real_cluster),
        cmocka_unit_test(update_replicas_and_split_ranges),
        cmocka_unit_test(update_primary_listed_as_replica),
        cmocka_unit_test(update_empty_and_partial),
        cmocka_unit_test(update_empty_and_nil_hosts_are_the_origin),
        cmocka_unit_test(update_question_mark_is_unknown_not_origin),
        cmocka_unit_test(update_forward_and_backward_compatible),
        cmocka_unit_test(update_node_bound),
        cmocka_unit_test(update_rejects_malformed),
        cmocka_unit_test(update_rejects_odd_trees),
        cmocka_unit_test(update_replaces_and_renumbers),
        cmocka_unit_test(redirect_moved_and_ask),
        cmocka_unit_test(redirect_empty_and_unknown_hosts),
        cmocka_unit_test(redirect_state_errors),
        cmocka_unit_test(redirect_malformed),
        cmocka_unit_test(classify_replies),
        cmocka_unit_test(apply_moved_updates_the_map),
        cmocka_unit_test(apply_moved_fills_unassigned_and_unknown),
        cmocka_unit_test(apply_moved_promotes_a_replica),
        cmocka_unit_test(apply_moved_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
