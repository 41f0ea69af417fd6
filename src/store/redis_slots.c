/*
 * redis_slots.c — Redis Cluster routing: hash slots, the slot map, MOVED/ASK.
 * The contract (hostile replies, bounds, "" and "?" endpoints, ownership) is
 * in redis_slots.h.
 *
 * A map is a flat slot -> node-index table beside a node table that grows by
 * doubling; nodes are found by (host, port) through a small open-addressing
 * index that is never more than half full, so a CLUSTER SLOTS reply of 16384
 * ranges over 1024 nodes costs one probe or so per endpoint, not a scan of
 * the table. A map never removes a node: only a whole new map does.
 */
#include "store/redis_slots.h"

#include <hiredis/hiredis.h>

#include "core/alloc.h"

_Static_assert(RTMD_REDIS_NODES_MAX < RTMD_REDIS_NODE_UNKNOWN, "node indices fit below markers");
_Static_assert((2 * RTMD_REDIS_NODES_MAX & (2 * RTMD_REDIS_NODES_MAX - 1)) == 0,
               "the node index is a power of two");
_Static_assert(RTMD_REDIS_HOST_MAX <= UINT8_MAX, "host_len fits a byte");

/* ---- keys --------------------------------------------------------------------------- */

/* CRC16/XMODEM four bits at a time: entry i is what the register's top
 * nibble i turns into after four shifts through the polynomial 0x1021. */
static const uint16_t crc16_nibble[16] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
    0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
};

uint16_t rtmd_redis_crc16(const void *p, size_t len)
{
    const unsigned char *b = p;
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc = ((crc << 4) & 0xffffu) ^ crc16_nibble[(crc >> 12) ^ (b[i] >> 4)];
        crc = ((crc << 4) & 0xffffu) ^ crc16_nibble[(crc >> 12) ^ (b[i] & 0x0fu)];
    }
    return (uint16_t)crc;
}

unsigned rtmd_redis_slot_of(const void *key, size_t len)
{
    const char *k = key;
    const char *open = len ? memchr(k, '{', len) : NULL;
    if (open) {
        size_t after = (size_t)(open - k) + 1;
        const char *close = after < len ? memchr(k + after, '}', len - after) : NULL;
        if (close && close > k + after)
            return rtmd_redis_crc16(k + after, (size_t)(close - (k + after))) &
                   (RTMD_REDIS_SLOTS - 1);
    }
    return rtmd_redis_crc16(k, len) & (RTMD_REDIS_SLOTS - 1);
}

int rtmd_redis_slots_same(const struct rtmd_str *keys, size_t n)
{
    if (n == 0)
        return -EINVAL;
    unsigned slot = rtmd_redis_slot_of(keys[0].p, keys[0].len);
    for (size_t i = 1; i < n; i++)
        if (rtmd_redis_slot_of(keys[i].p, keys[i].len) != slot)
            return -EXDEV;
    return (int)slot;
}

/* ---- hosts and endpoints ------------------------------------------------------------ */

static bool host_ok(const char *p, size_t len)
{
    if (len == 0 || len > RTMD_REDIS_HOST_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x21 || c > 0x7e)
            return false;
    }
    return true;
}

enum { ENDPOINT_KNOWN = 0, ENDPOINT_UNKNOWN = 1 };

/*
 * Resolves the host Redis announced (p, len) into out (RTMD_REDIS_HOST_MAX + 1
 * bytes, NUL-terminated, length in *out_len): "" is origin's host, "?" is
 * ENDPOINT_UNKNOWN (out empty), anything else must be a valid host. Returns
 * ENDPOINT_KNOWN, ENDPOINT_UNKNOWN, RTMD_EPARSE (invalid host) or -EINVAL
 * ("" and origin is not a valid host).
 */
static int endpoint_host(const char *p, size_t len, struct rtmd_str origin, char *out,
                         uint8_t *out_len)
{
    if (len == 0) {
        if (!host_ok(origin.p, origin.len) || (origin.len == 1 && origin.p[0] == '?'))
            return -EINVAL;
        p = origin.p;
        len = origin.len;
    } else if (len == 1 && p[0] == '?') {
        out[0] = '\0';
        *out_len = 0;
        return ENDPOINT_UNKNOWN;
    } else if (!host_ok(p, len)) {
        return RTMD_EPARSE;
    }
    memcpy(out, p, len);
    out[len] = '\0';
    *out_len = (uint8_t)len;
    return ENDPOINT_KNOWN;
}

/* ---- the node table ----------------------------------------------------------------- */

#define INDEX_MASK (2 * RTMD_REDIS_NODES_MAX - 1)

/* FNV-1a over the host's bytes and the port's two. */
static uint32_t node_hash(const char *host, size_t len, unsigned port)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)host[i]) * 16777619u;
    h = (h ^ (port & 0xffu)) * 16777619u;
    h = (h ^ (port >> 8)) * 16777619u;
    return h;
}

/* The index of the node at host:port, or -ENOENT with *pos the free index
 * entry where it would go. Ends: the index is never more than half full. */
static int lookup(const struct rtmd_redis_slot_map *m, const char *host, size_t len, unsigned port,
                  size_t *pos)
{
    size_t i = node_hash(host, len, port) & INDEX_MASK;
    for (;;) {
        uint16_t e = m->index[i];
        if (e == 0) {
            *pos = i;
            return -ENOENT;
        }
        const struct rtmd_redis_node *n = &m->nodes[e - 1];
        if (n->port == port && n->host_len == len && memcmp(n->host, host, len) == 0)
            return e - 1;
        i = (i + 1) & INDEX_MASK;
    }
}

/* The index of the node at host:port (a valid host, port 1..65535), added
 * as a primary serving no slot if new. RTMD_ELIMIT or -ENOMEM leave m as it
 * was. */
static int node_get(struct rtmd_redis_slot_map *m, const char *host, size_t len, unsigned port)
{
    size_t pos;
    int found = lookup(m, host, len, port, &pos);
    if (found >= 0)
        return found;
    if (m->node_count >= RTMD_REDIS_NODES_MAX)
        return RTMD_ELIMIT;
    if (m->node_count == m->node_cap) {
        uint32_t cap = RTMD_MIN(m->node_cap ? 2 * m->node_cap : 8u, RTMD_REDIS_NODES_MAX);
        struct rtmd_redis_node *nodes = rtmd_try_realloc(m->nodes, cap * sizeof(*nodes));
        if (!nodes)
            return -ENOMEM;
        m->nodes = nodes;
        m->node_cap = cap;
    }
    struct rtmd_redis_node *n = &m->nodes[m->node_count];
    memset(n, 0, sizeof(*n));
    n->port = (uint16_t)port;
    n->replica_of = RTMD_REDIS_NODE_NONE;
    n->host_len = (uint8_t)len;
    memcpy(n->host, host, len);
    n->host[len] = '\0';
    m->index[pos] = (uint16_t)(m->node_count + 1);
    return (int)m->node_count++;
}

void rtmd_redis_slots_init(struct rtmd_redis_slot_map *m)
{
    memset(m, 0, sizeof(*m));
    memset(m->slot_node, 0xff, sizeof(m->slot_node)); /* RTMD_REDIS_NODE_NONE */
}

void rtmd_redis_slots_free(struct rtmd_redis_slot_map *m)
{
    uint64_t version = m->version;
    rtmd_free(m->nodes);
    rtmd_redis_slots_init(m);
    m->version = version;
}

int rtmd_redis_slots_node_of(const struct rtmd_redis_slot_map *m, unsigned slot)
{
    if (slot >= RTMD_REDIS_SLOTS)
        return -EINVAL;
    uint16_t v = m->slot_node[slot];
    if (v == RTMD_REDIS_NODE_NONE)
        return -ENOENT;
    if (v == RTMD_REDIS_NODE_UNKNOWN)
        return -EDESTADDRREQ;
    return v;
}

const struct rtmd_redis_node *rtmd_redis_slots_node(const struct rtmd_redis_slot_map *m, unsigned i)
{
    return i < m->node_count ? &m->nodes[i] : NULL;
}

int rtmd_redis_slots_find(const struct rtmd_redis_slot_map *m, struct rtmd_str host, unsigned port)
{
    size_t pos;
    if (!host_ok(host.p, host.len) || port == 0 || port > 65535)
        return -ENOENT;
    return lookup(m, host.p, host.len, port, &pos);
}

/* ---- CLUSTER SLOTS ------------------------------------------------------------------ */

struct endpoint {
    uint16_t port;
    uint8_t host_len;
    char host[RTMD_REDIS_HOST_MAX + 1];
};

/* Reads [host, port, ...] (elements after the port ignored). Returns
 * ENDPOINT_KNOWN, ENDPOINT_UNKNOWN ("?"), or an error with *why set. */
static int read_endpoint(const redisReply *r, struct rtmd_str origin, struct endpoint *ep,
                         const char **why)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !r->element[0] || !r->element[1]) {
        *why = "a node is not an array of at least host and port";
        return RTMD_EPARSE;
    }
    const redisReply *host = r->element[0], *port = r->element[1];
    if (port->type != REDIS_REPLY_INTEGER || port->integer < 1 || port->integer > 65535) {
        *why = "a node's port is not an integer in 1..65535";
        return RTMD_EPARSE;
    }
    const char *p = NULL;
    size_t len = 0;
    if (host->type == REDIS_REPLY_STRING && (host->str || host->len == 0)) {
        p = host->str;
        len = host->len;
    } else if (host->type != REDIS_REPLY_NIL) {
        *why = "a node's host is not a string";
        return RTMD_EPARSE;
    }
    int rc = endpoint_host(p, len, origin, ep->host, &ep->host_len);
    if (rc == RTMD_EPARSE)
        *why = "a node's host is over 255 bytes or has a byte outside 0x21-0x7e";
    else if (rc == -EINVAL)
        *why = "a node's host is empty (the address asked) and no origin was given";
    ep->port = (uint16_t)port->integer;
    return rc;
}

static bool is_integer(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_INTEGER;
}

/* Adds one [start, end, primary, replica...] to the map being built. */
static int add_range(struct rtmd_redis_slot_map *m, const redisReply *r, struct rtmd_str origin,
                     const char **why)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
        *why = "a slot range is not an array of start, end and primary";
        return RTMD_EPARSE;
    }
    if (!is_integer(r->element[0]) || !is_integer(r->element[1])) {
        *why = "a slot range's start or end is not an integer";
        return RTMD_EPARSE;
    }
    long long start = r->element[0]->integer, end = r->element[1]->integer;
    if (start < 0 || end >= (long long)RTMD_REDIS_SLOTS || start > end) {
        *why = "a slot range is outside 0..16383 or starts after its end";
        return RTMD_EPARSE;
    }

    struct endpoint ep;
    int rc = read_endpoint(r->element[2], origin, &ep, why);
    if (rc < 0)
        return rc;
    uint16_t primary = RTMD_REDIS_NODE_UNKNOWN;
    if (rc == ENDPOINT_KNOWN) {
        int i = node_get(m, ep.host, ep.host_len, ep.port);
        if (i < 0) {
            *why = i == RTMD_ELIMIT ? "more than 1024 nodes" : "out of memory";
            return i;
        }
        primary = (uint16_t)i;
        m->nodes[i].replica = false;
        m->nodes[i].replica_of = RTMD_REDIS_NODE_NONE;
    }
    for (long long s = start; s <= end; s++) {
        if (m->slot_node[s] != RTMD_REDIS_NODE_NONE) {
            *why = "two slot ranges overlap";
            return RTMD_EPARSE;
        }
        m->slot_node[s] = primary;
    }
    uint16_t count = (uint16_t)(end - start + 1);
    if (primary == RTMD_REDIS_NODE_UNKNOWN) {
        m->unknown_slots += count;
    } else {
        m->nodes[primary].slots += count;
        m->served_slots += count;
    }

    for (size_t j = 3; j < r->elements; j++) {
        rc = read_endpoint(r->element[j], origin, &ep, why);
        if (rc < 0)
            return rc;
        if (rc == ENDPOINT_UNKNOWN)
            continue; /* nothing to reach it by */
        int i = node_get(m, ep.host, ep.host_len, ep.port);
        if (i < 0) {
            *why = i == RTMD_ELIMIT ? "more than 1024 nodes" : "out of memory";
            return i;
        }
        struct rtmd_redis_node *n = &m->nodes[i];
        if (n->slots == 0) { /* a node that is a primary somewhere stays one */
            n->replica = true;
            n->replica_of = primary == RTMD_REDIS_NODE_UNKNOWN ? RTMD_REDIS_NODE_NONE : primary;
        }
    }
    return 0;
}

int rtmd_redis_slots_update(struct rtmd_redis_slot_map *m, const struct redisReply *reply,
                            struct rtmd_str origin, const char **why)
{
    const char *ignored;
    if (!why)
        why = &ignored;
    if (!reply) {
        *why = "no reply";
        return -EINVAL;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        *why = "CLUSTER SLOTS answered an error";
        return RTMD_ESTORE;
    }
    if (reply->type != REDIS_REPLY_ARRAY) {
        *why = "the reply is not an array";
        return RTMD_EPARSE;
    }
    if (reply->elements > RTMD_REDIS_SLOTS) {
        *why = "more slot ranges than slots";
        return RTMD_EPARSE;
    }

    /* Built aside (~37 KiB), swapped in only whole. */
    struct rtmd_redis_slot_map *next = rtmd_try_malloc(sizeof(*next));
    if (!next) {
        *why = "out of memory";
        return -ENOMEM;
    }
    rtmd_redis_slots_init(next);
    int rc = 0;
    for (size_t i = 0; i < reply->elements && rc == 0; i++)
        rc = add_range(next, reply->element[i], origin, why);
    if (rc == 0) {
        next->version = m->version + 1;
        rtmd_free(m->nodes);
        *m = *next; /* m now owns next's node table */
    } else {
        rtmd_free(next->nodes);
    }
    rtmd_free(next);
    return rc;
}

/* ---- redirections ------------------------------------------------------------------- */

/* True if text's first word is w; *args is what follows the word and its
 * one space (empty, *spaced false, when the text is the word alone). */
static bool first_word(struct rtmd_str text, const char *w, struct rtmd_str *args, bool *spaced)
{
    size_t n = strlen(w);
    if (text.len < n || memcmp(text.p, w, n) != 0 || (text.len > n && text.p[n] != ' '))
        return false;
    *spaced = text.len > n;
    *args = *spaced ? rtmd_str_make(text.p + n + 1, text.len - n - 1) : RTMD_STR_NULL;
    return true;
}

/* "<slot> <host>:<port>" exactly, into out's slot, port and host. */
static int parse_target(struct rtmd_str args, struct rtmd_str origin,
                        struct rtmd_redis_redirect *out)
{
    const char *sp = args.len ? memchr(args.p, ' ', args.len) : NULL;
    if (!sp)
        return RTMD_EPARSE;
    struct rtmd_str slot_text = rtmd_str_make(args.p, (size_t)(sp - args.p));
    struct rtmd_str ep = rtmd_str_make(sp + 1, args.len - slot_text.len - 1);
    uint64_t slot, port;
    if (rtmd_str_to_u64(slot_text, RTMD_REDIS_SLOTS - 1, &slot) != 0)
        return RTMD_EPARSE;
    size_t colon = ep.len; /* the last ':' ends the host: IPv6 has several */
    while (colon > 0 && ep.p[colon - 1] != ':')
        colon--;
    if (colon == 0)
        return RTMD_EPARSE;
    struct rtmd_str port_text = rtmd_str_make(ep.p + colon, ep.len - colon);
    if (rtmd_str_to_u64(port_text, 65535, &port) != 0 || port == 0)
        return RTMD_EPARSE;
    int rc = endpoint_host(ep.p, colon - 1, origin, out->host, &out->host_len);
    if (rc < 0)
        return rc;
    out->host_unknown = rc == ENDPOINT_UNKNOWN;
    out->slot = (uint16_t)slot;
    out->port = (uint16_t)port;
    return 0;
}

int rtmd_redis_slots_parse_error(struct rtmd_str text, struct rtmd_str origin,
                                 struct rtmd_redis_redirect *out)
{
    struct rtmd_redis_redirect r;
    memset(&r, 0, sizeof(r));
    struct rtmd_str args;
    bool spaced;
    if (text.len && !text.p)
        return -EINVAL;
    if (first_word(text, "MOVED", &args, &spaced) || first_word(text, "ASK", &args, &spaced)) {
        r.kind = text.p[0] == 'M' ? RTMD_REDIS_MOVED : RTMD_REDIS_ASK;
        int rc = spaced ? parse_target(args, origin, &r) : RTMD_EPARSE;
        if (rc < 0)
            return rc;
    } else if (first_word(text, "TRYAGAIN", &args, &spaced)) {
        r.kind = RTMD_REDIS_TRYAGAIN;
    } else if (first_word(text, "CLUSTERDOWN", &args, &spaced)) {
        r.kind = RTMD_REDIS_CLUSTERDOWN;
    } else {
        r.kind = RTMD_REDIS_NOT_CLUSTER;
    }
    *out = r;
    return (int)r.kind;
}

int rtmd_redis_slots_classify(const struct redisReply *reply, struct rtmd_str origin,
                              struct rtmd_redis_redirect *out)
{
    if (reply->type != REDIS_REPLY_ERROR) {
        memset(out, 0, sizeof(*out));
        out->kind = RTMD_REDIS_NOT_CLUSTER;
        return RTMD_REDIS_NOT_CLUSTER;
    }
    return rtmd_redis_slots_parse_error(rtmd_str_make(reply->str, reply->len), origin, out);
}

int rtmd_redis_slots_apply_moved(struct rtmd_redis_slot_map *m,
                                 const struct rtmd_redis_redirect *moved)
{
    if (!moved || moved->kind != RTMD_REDIS_MOVED || moved->slot >= RTMD_REDIS_SLOTS)
        return -EINVAL;
    if (moved->host_unknown)
        return -EDESTADDRREQ;
    if (!host_ok(moved->host, moved->host_len) || moved->port == 0)
        return -EINVAL;
    int i = node_get(m, moved->host, moved->host_len, moved->port);
    if (i < 0)
        return i;
    uint16_t old = m->slot_node[moved->slot];
    if (old == (uint16_t)i)
        return i; /* known already: a replica serves no slot, so it is no promotion */
    struct rtmd_redis_node *n = &m->nodes[i];
    n->replica = false; /* promoted, if it was a replica: a failover */
    n->replica_of = RTMD_REDIS_NODE_NONE;
    if (old == RTMD_REDIS_NODE_UNKNOWN)
        m->unknown_slots--;
    if (old == RTMD_REDIS_NODE_NONE || old == RTMD_REDIS_NODE_UNKNOWN)
        m->served_slots++;
    else
        m->nodes[old].slots--;
    n->slots++;
    m->slot_node[moved->slot] = (uint16_t)i;
    m->version++;
    return i;
}
