/*
 * fuzz_redis_slots.c — libFuzzer driver for store/redis_slots.c: Redis
 * Cluster routing from hostile Redis replies.
 *
 * Input: byte 0 is flags (bit 0: the caller knows the address it asked, the
 * origin; bit 1: start from a map of a real three-node cluster instead of an
 * empty one); the rest is a stream of RESP replies, parsed by hiredis's
 * redisReader as the connection layer parses them, with a bound on the
 * elements that arrays may claim (hiredis allocates a claimed count up front).
 * Every reply is
 *   - classified: MOVED/ASK must come back well-formed and parse again to the
 *     same redirect from its own rendering; a MOVED is applied to the map;
 *   - given to rtmd_redis_slots_update(): success must give a consistent map,
 *     failure must leave the map byte for byte as it was.
 * The whole input is also a key: rtmd_redis_slot_of() must agree with a
 * bitwise CRC16 and a plain reading of the hash-tag rule, and its lines with
 * rtmd_redis_slots_same().
 *
 * Build for fuzzing: make fuzz CC=clang; build-fuzz/fuzz_redis_slots fuzz/corpus/redis_slots
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "store/redis_slots.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_redis_slots: check failed: %s (line %d)\n", #cond, __LINE__);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define INPUT_MAX   (256 * 1024)
#define REPLIES_MAX 64
#define KEYS_MAX    16

static const struct rtmd_str origin_host = RTMD_STR_LIT("10.1.2.3");

/* A three-node cluster's CLUSTER SLOTS (redis 7.0.15, one node on ::1). */
static const char cluster_slots[] =
    "*3\r\n"
    "*3\r\n:0\r\n:8000\r\n*3\r\n$9\r\n127.0.0.1\r\n:50697\r\n$1\r\na\r\n"
    "*3\r\n:8001\r\n:12000\r\n*3\r\n$9\r\n127.0.0.1\r\n:33591\r\n$1\r\nb\r\n"
    "*3\r\n:12001\r\n:16383\r\n*3\r\n$3\r\n::1\r\n:47117\r\n$1\r\nc\r\n";

/* ---- the reference ------------------------------------------------------------------ */

static uint16_t crc16_bitwise(const uint8_t *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

static unsigned ref_slot(const uint8_t *k, size_t n)
{
    size_t open = 0;
    while (open < n && k[open] != '{')
        open++;
    if (open < n) {
        size_t close = open + 1;
        while (close < n && k[close] != '}')
            close++;
        if (close < n && close > open + 1)
            return crc16_bitwise(k + open + 1, close - open - 1) & 16383u;
    }
    return crc16_bitwise(k, n) & 16383u;
}

static bool ref_host_ok(const char *p, size_t n)
{
    if (n < 1 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
            return false;
    return true;
}

/* ---- a bounded reader --------------------------------------------------------------- */

static redisReplyObjectFunctions *hiredis_fns;
static redisReplyObjectFunctions bounded_fns;
static long long elements_left;

/* hiredis callocs an array's claimed count at once: "*2147483647\r\n" would
 * be 16 GiB. Claims past the budget fail the reader (as out of memory). */
static void *bounded_array(const redisReadTask *task, int elements)
{
    if (elements > elements_left)
        return NULL;
    elements_left -= elements;
    return hiredis_fns->createArray(task, elements);
}

static redisReader *reader_new(size_t input)
{
    redisReader *r = redisReaderCreate();
    CHECK(r);
    if (!hiredis_fns) {
        hiredis_fns = r->fn;
        bounded_fns = *r->fn;
        bounded_fns.createArray = bounded_array;
    }
    r->fn = &bounded_fns;
    r->maxbuf = 0;
    elements_left = 64 + 4 * (long long)input; /* ":1\r\n" is 4 bytes an element */
    return r;
}

/* ---- map checks --------------------------------------------------------------------- */

static struct {
    struct rtmd_redis_slot_map m;
    struct rtmd_redis_node nodes[RTMD_REDIS_NODES_MAX];
} snap;

static void take(const struct rtmd_redis_slot_map *m)
{
    snap.m = *m;
    if (m->node_count)
        memcpy(snap.nodes, m->nodes, m->node_count * sizeof(*m->nodes));
}

static void check_unchanged(const struct rtmd_redis_slot_map *m)
{
    CHECK(m->nodes == snap.m.nodes && m->node_count == snap.m.node_count);
    CHECK(m->node_cap == snap.m.node_cap && m->version == snap.m.version);
    CHECK(m->served_slots == snap.m.served_slots && m->unknown_slots == snap.m.unknown_slots);
    CHECK(memcmp(m->slot_node, snap.m.slot_node, sizeof(m->slot_node)) == 0);
    CHECK(memcmp(m->index, snap.m.index, sizeof(m->index)) == 0);
    CHECK(!m->node_count || memcmp(m->nodes, snap.nodes, m->node_count * sizeof(*m->nodes)) == 0);
}

static void check_map(const struct rtmd_redis_slot_map *m)
{
    static uint32_t per_node[RTMD_REDIS_NODES_MAX];
    uint32_t served = 0, unknown = 0;
    CHECK(m->node_count <= m->node_cap && m->node_cap <= RTMD_REDIS_NODES_MAX);
    memset(per_node, 0, sizeof(per_node));
    for (unsigned s = 0; s < RTMD_REDIS_SLOTS; s++) {
        uint16_t v = m->slot_node[s];
        int i = rtmd_redis_slots_node_of(m, s);
        if (v == RTMD_REDIS_NODE_UNKNOWN) {
            CHECK(i == -EDESTADDRREQ);
            unknown++;
        } else if (v == RTMD_REDIS_NODE_NONE) {
            CHECK(i == -ENOENT);
        } else {
            CHECK(v < m->node_count && i == v);
            per_node[v]++;
            served++;
        }
    }
    CHECK(served == m->served_slots && unknown == m->unknown_slots);
    for (unsigned i = 0; i < m->node_count; i++) {
        const struct rtmd_redis_node *n = rtmd_redis_slots_node(m, i);
        CHECK(n == &m->nodes[i]);
        CHECK(per_node[i] == n->slots);
        CHECK(ref_host_ok(n->host, n->host_len) && n->host[n->host_len] == '\0');
        CHECK(n->port >= 1);
        CHECK(rtmd_redis_slots_find(m, rtmd_str_make(n->host, n->host_len), n->port) == (int)i);
        if (n->replica)
            CHECK(n->slots == 0 &&
                  (n->replica_of == RTMD_REDIS_NODE_NONE || n->replica_of < m->node_count));
        else
            CHECK(n->replica_of == RTMD_REDIS_NODE_NONE);
    }
    CHECK(rtmd_redis_slots_node(m, m->node_count) == NULL);
}

/* ---- replies ------------------------------------------------------------------------ */

static void check_redirect(const redisReply *reply, struct rtmd_str origin,
                           struct rtmd_redis_slot_map *m)
{
    struct rtmd_redis_redirect r, again;
    int rc = rtmd_redis_slots_classify(reply, origin, &r);
    if (reply->type != REDIS_REPLY_ERROR) {
        CHECK(rc == RTMD_REDIS_NOT_CLUSTER && r.kind == RTMD_REDIS_NOT_CLUSTER);
        return;
    }
    if (rc < 0) {
        CHECK(rc == RTMD_EPARSE || (rc == -EINVAL && origin.len == 0));
        return;
    }
    CHECK(rc == (int)r.kind && rc <= RTMD_REDIS_CLUSTERDOWN);
    if (r.kind != RTMD_REDIS_MOVED && r.kind != RTMD_REDIS_ASK) {
        CHECK(r.slot == 0 && r.port == 0 && r.host_len == 0);
        return;
    }
    CHECK(r.slot < RTMD_REDIS_SLOTS && r.port >= 1);
    if (r.host_unknown)
        CHECK(r.host_len == 0 && r.host[0] == '\0');
    else
        CHECK(ref_host_ok(r.host, r.host_len) && strlen(r.host) == r.host_len);

    /* Rendered the way Redis writes it, it parses to the same redirect. */
    char text[300];
    int n =
        snprintf(text, sizeof(text), "%s %u %s:%u", r.kind == RTMD_REDIS_MOVED ? "MOVED" : "ASK",
                 (unsigned)r.slot, r.host_unknown ? "?" : r.host, (unsigned)r.port);
    CHECK(n > 0 && (size_t)n < sizeof(text));
    CHECK(rtmd_redis_slots_parse_error(rtmd_str_make(text, (size_t)n), origin, &again) == rc);
    CHECK(memcmp(&r, &again, sizeof(r)) == 0);

    if (r.kind != RTMD_REDIS_MOVED)
        return;
    take(m);
    int i = rtmd_redis_slots_apply_moved(m, &r);
    if (r.host_unknown) {
        CHECK(i == -EDESTADDRREQ);
    } else if (i == RTMD_ELIMIT) {
        CHECK(snap.m.node_count == RTMD_REDIS_NODES_MAX);
    } else {
        CHECK(i >= 0);
        CHECK(rtmd_redis_slots_node_of(m, r.slot) == i);
        const struct rtmd_redis_node *node = rtmd_redis_slots_node(m, (unsigned)i);
        CHECK(node->port == r.port && node->host_len == r.host_len &&
              memcmp(node->host, r.host, r.host_len) == 0 && !node->replica);
        CHECK(m->version == snap.m.version + (snap.m.slot_node[r.slot] != i));
        CHECK((unsigned)i <= snap.m.node_count); /* only appends */
        check_map(m);
        return;
    }
    check_unchanged(m);
}

static void check_update(const redisReply *reply, struct rtmd_str origin,
                         struct rtmd_redis_slot_map *m)
{
    take(m);
    const char *why = NULL;
    int rc = rtmd_redis_slots_update(m, reply, origin, &why);
    if (rc == 0) {
        CHECK(reply->type == REDIS_REPLY_ARRAY);
        CHECK(m->version == snap.m.version + 1);
        check_map(m);
        return;
    }
    CHECK(why != NULL);
    CHECK(rc == RTMD_EPARSE || rc == RTMD_ELIMIT || rc == -ENOMEM ||
          (rc == RTMD_ESTORE && reply->type == REDIS_REPLY_ERROR) ||
          (rc == -EINVAL && origin.len == 0));
    check_unchanged(m);
}

/* ---- keys --------------------------------------------------------------------------- */

static void check_keys(const uint8_t *data, size_t size)
{
    unsigned slot = rtmd_redis_slot_of(data, size);
    CHECK(slot == ref_slot(data, size));
    CHECK(rtmd_redis_crc16(data, size) == crc16_bitwise(data, size));

    struct rtmd_str keys[KEYS_MAX];
    size_t n = 0, from = 0;
    for (size_t i = 0; i <= size && n < KEYS_MAX; i++) {
        if (i == size || data[i] == '\n') {
            keys[n++] = rtmd_str_make((const char *)data + from, i - from);
            from = i + 1;
        }
    }
    int same = rtmd_redis_slots_same(keys, n);
    unsigned first = ref_slot((const uint8_t *)keys[0].p, keys[0].len);
    bool all = true;
    for (size_t i = 1; i < n; i++)
        all = all && ref_slot((const uint8_t *)keys[i].p, keys[i].len) == first;
    CHECK(all ? same == (int)first : same == -EXDEV);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > INPUT_MAX)
        return 0;
    check_keys(data, size);
    uint8_t flags = data[0];
    struct rtmd_str origin = flags & 1 ? origin_host : RTMD_STR_NULL;

    struct rtmd_redis_slot_map m;
    rtmd_redis_slots_init(&m);
    if (flags & 2) {
        redisReader *r = reader_new(sizeof(cluster_slots));
        void *reply = NULL;
        CHECK(redisReaderFeed(r, cluster_slots, sizeof(cluster_slots) - 1) == REDIS_OK);
        CHECK(redisReaderGetReply(r, &reply) == REDIS_OK && reply);
        CHECK(rtmd_redis_slots_update(&m, reply, origin, NULL) == 0);
        freeReplyObject(reply);
        redisReaderFree(r);
        check_map(&m);
    }

    redisReader *r = reader_new(size);
    if (size > 1)
        CHECK(redisReaderFeed(r, (const char *)data + 1, size - 1) == REDIS_OK);
    for (int n = 0; n < REPLIES_MAX; n++) {
        void *reply = NULL;
        if (redisReaderGetReply(r, &reply) != REDIS_OK || !reply)
            break;
        check_redirect(reply, origin, &m);
        check_update(reply, origin, &m);
        freeReplyObject(reply);
    }
    redisReaderFree(r);
    rtmd_redis_slots_free(&m);
    return 0;
}
