/*
 * redis_slots.h — Redis Cluster routing, and nothing else: a key's hash slot,
 * the slot map built from a CLUSTER SLOTS reply, and the cluster's
 * redirection and state errors (MOVED, ASK, TRYAGAIN, CLUSTERDOWN).
 *
 * The module does no I/O, reads no clock and knows no loop: it turns bytes and
 * hiredis reply trees into decisions, and the connection layer
 * (redis_conn.c) acts on them: which node a command goes to, when to send
 * ASKING, when to refresh the map.
 *
 * Contract
 * - Every reply is hostile. No type, count, length or number in a reply is
 *   trusted. A call that meets anything malformed fails (RTMD_EPARSE, or
 *   RTMD_ELIMIT past a bound) and changes nothing: a map is rebuilt aside and
 *   swapped in only whole.
 * - Bounds: RTMD_REDIS_SLOTS slots, at most RTMD_REDIS_NODES_MAX nodes in a
 *   map (primaries and replicas), hosts of 1..RTMD_REDIS_HOST_MAX bytes. A
 *   map is 36 KiB plus 264 bytes a node (306 KiB at most), twice that for
 *   the moment an update builds the next one.
 * - Hosts are what Redis announces: an IPv4 or IPv6 address (IPv6 without
 *   brackets, "::1"), or a hostname. They must be printable ASCII without
 *   spaces (0x21-0x7e) and are compared byte for byte. This module resolves
 *   no names; whether a hostname may be used is the connection layer's call.
 * - Endpoints Redis 7 writes instead of an address:
 *     ""   (and a nil host in CLUSTER SLOTS): "the address you sent this
 *          command to" — the node's IP is unknown to itself, or the cluster
 *          runs with cluster-preferred-endpoint-type unknown-endpoint. Every
 *          call that reads endpoints takes `origin`, the host the caller
 *          sent the command to, and uses it there (with the port Redis gave).
 *          Without a valid origin such an endpoint fails the call (-EINVAL).
 *     "?"  the node has no address to give (hostname endpoints configured,
 *          no hostname announced: a server misconfiguration). It is NOT the
 *          origin. Slots whose primary is "?" are marked
 *          RTMD_REDIS_NODE_UNKNOWN (lookups fail with -EDESTADDRREQ), a "?"
 *          replica is left out, and a MOVED to "?" parses (host_unknown) but
 *          cannot be applied.
 * - Ownership: a map owns its node table. Reply trees stay the caller's:
 *   read during the call, never kept, never freed here. A redirect is a
 *   value with its host copied in.
 * - Node indices are stable until the next successful
 *   rtmd_redis_slots_update(), which numbers the nodes afresh; between
 *   updates, rtmd_redis_slots_apply_moved() only appends. Compare
 *   rtmd_redis_slot_map.version to notice any change.
 * - Threads: a map belongs to one thread (the loop thread). The functions
 *   without a map are pure and reentrant.
 */
#ifndef RTMD_STORE_REDIS_SLOTS_H
#define RTMD_STORE_REDIS_SLOTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/common.h"

struct redisReply; /* <hiredis/hiredis.h> */

#define RTMD_REDIS_SLOTS     16384u /* hash slots of a Redis Cluster */
#define RTMD_REDIS_NODES_MAX 1024u  /* nodes one map holds, replicas included */
#define RTMD_REDIS_HOST_MAX  255u   /* bytes of a host, as a DNS name */

/* What a slot maps to when it is not a node index. */
#define RTMD_REDIS_NODE_NONE    0xffffu /* no node serves the slot */
#define RTMD_REDIS_NODE_UNKNOWN 0xfffeu /* its primary's address is "?" */

/* ---- keys --------------------------------------------------------------------------- */

/* CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection), Redis
 * Cluster's key hash: rtmd_redis_crc16("123456789", 9) == 0x31C3. */
uint16_t rtmd_redis_crc16(const void *p, size_t len);

/* The hash slot (0..16383) of a key of len bytes (any bytes; NULL with len
 * 0 is the empty key). Hash tags as Redis has them: if the key has a '{' and
 * a '}' somewhere after the first '{', and at least one byte between the two,
 * only those bytes are hashed ("{user1000}.following" hashes "user1000",
 * "foo{{bar}}" hashes "{bar"); otherwise the whole key ("foo{}{bar}"). */
unsigned rtmd_redis_slot_of(const void *key, size_t len);

/* The one slot that all n keys hash to — what a MULTI block or a Lua script
 * that touches several keys needs on a cluster. Returns the slot (>= 0),
 * -EXDEV if two keys hash to different slots (Redis would answer CROSSSLOT),
 * or -EINVAL for n == 0. */
int rtmd_redis_slots_same(const struct rtmd_str *keys, size_t n);

/* ---- the slot map ------------------------------------------------------------------- */

struct rtmd_redis_node {
    uint16_t port;                      /* 1..65535 */
    uint16_t replica_of;                /* its primary's index; RTMD_REDIS_NODE_NONE for a
                                           primary, or a replica of a "?" primary */
    bool replica;                       /* listed only as a replica in this map */
    uint8_t host_len;                   /* 1..RTMD_REDIS_HOST_MAX */
    uint16_t slots;                     /* slots it serves as primary, 0..16384 */
    char host[RTMD_REDIS_HOST_MAX + 1]; /* host_len bytes, then a NUL */
};

/*
 * Slot -> node. Read the fields, change them only through the functions
 * below. The node table grows by doubling up to RTMD_REDIS_NODES_MAX.
 */
struct rtmd_redis_slot_map {
    uint16_t slot_node[RTMD_REDIS_SLOTS]; /* node index, _NONE or _UNKNOWN */
    struct rtmd_redis_node *nodes;        /* owned; node_count used */
    uint32_t node_count;
    uint32_t node_cap;
    uint32_t served_slots;                    /* slots mapped to a node */
    uint32_t unknown_slots;                   /* slots mapped to RTMD_REDIS_NODE_UNKNOWN */
    uint64_t version;                         /* +1 on every change */
    uint16_t index[2 * RTMD_REDIS_NODES_MAX]; /* (host, port) hash -> index + 1 */
};

/* An empty map: no nodes, every slot RTMD_REDIS_NODE_NONE, version 0. */
void rtmd_redis_slots_init(struct rtmd_redis_slot_map *m);

/* Frees the node table; m is then an empty map again (version kept). */
void rtmd_redis_slots_free(struct rtmd_redis_slot_map *m);

/*
 * Replaces m with the map a CLUSTER SLOTS reply describes, read as the
 * command's documentation has it: an array of ranges [start, end, primary,
 * replica...], each endpoint [host, port, id?, metadata?, ...]. Elements after
 * the port are ignored (the ID, Redis 7's metadata, whatever future versions
 * add), so Redis 3's [host, port] reads too. Slots in no range are
 * RTMD_REDIS_NODE_NONE; a node listed under several ranges is one node.
 * origin: the host the CLUSTER SLOTS was sent to (see "" above); may be
 * RTMD_STR_NULL if the caller has none.
 *
 * Returns 0, or on failure leaves m exactly as it was and returns:
 *   RTMD_ESTORE   the reply is an error reply (cluster support disabled,
 *                 NOAUTH, LOADING...: the caller reads reply->str itself);
 *   RTMD_EPARSE   a wrong type, a missing field, a slot out of 0..16383, a
 *                 start after its end, two ranges that overlap, a port out
 *                 of 1..65535, a host that is too long or has a control
 *                 character, a space or a byte over 0x7e;
 *   RTMD_ELIMIT   more than RTMD_REDIS_NODES_MAX distinct nodes;
 *   -EINVAL       reply NULL, or an "" / nil endpoint and no valid origin;
 *   -ENOMEM.
 * If why is not NULL, a failure sets *why to a static sentence for the log.
 */
int rtmd_redis_slots_update(struct rtmd_redis_slot_map *m, const struct redisReply *reply,
                            struct rtmd_str origin, const char **why);

/* The index of the node serving slot as primary; -ENOENT if no node serves
 * it, -EDESTADDRREQ if its primary's address is "?", -EINVAL if slot is not
 * below RTMD_REDIS_SLOTS. */
int rtmd_redis_slots_node_of(const struct rtmd_redis_slot_map *m, unsigned slot);

/* Node i, or NULL if i >= node_count. The pointer is valid until the next
 * change to m. */
const struct rtmd_redis_node *rtmd_redis_slots_node(const struct rtmd_redis_slot_map *m,
                                                    unsigned i);

/* The index of the node at host:port, or -ENOENT. */
int rtmd_redis_slots_find(const struct rtmd_redis_slot_map *m, struct rtmd_str host, unsigned port);

/* ---- redirections and cluster errors ------------------------------------------------ */

enum rtmd_redis_cluster_error {
    RTMD_REDIS_NOT_CLUSTER = 0, /* a reply, or an error, that is none below */
    RTMD_REDIS_MOVED,           /* the slot moved for good: apply, resend there */
    RTMD_REDIS_ASK,             /* this one command: ASKING + resend there */
    RTMD_REDIS_TRYAGAIN,        /* multi-key command while the slot migrates */
    RTMD_REDIS_CLUSTERDOWN,     /* the cluster (or this slot) is not served */
};

/* A parsed redirection. slot, port and host are set for MOVED and ASK. */
struct rtmd_redis_redirect {
    enum rtmd_redis_cluster_error kind;
    uint16_t slot;
    uint16_t port;
    bool host_unknown; /* Redis wrote "?": host is empty and unusable */
    uint8_t host_len;
    char host[RTMD_REDIS_HOST_MAX + 1]; /* host_len bytes, then a NUL */
};

/*
 * Classifies an error reply's text (hiredis's reply->str: no '-', no CRLF) by
 * its first word, which must match exactly:
 *   "MOVED <slot> <host>:<port>" and "ASK <slot> <host>:<port>", exactly so:
 *       one space each, slot 0..16383, port 1..65535, nothing after; the
 *       LAST ':' ends the host, so IPv6 reads as Redis writes it,
 *       "MOVED 12182 ::1:7000" is ::1 port 7000. An empty host is origin's.
 *   "TRYAGAIN ...", "CLUSTERDOWN ..." (any text after the word, or none).
 * Returns the kind (RTMD_REDIS_NOT_CLUSTER for any other error: ERR,
 * CROSSSLOT, WRONGTYPE, ...), RTMD_EPARSE for a MOVED or ASK that is not
 * exactly of that form, or -EINVAL for an empty host and no valid origin.
 * On success *out is written whole (slot, port and host are zero but for
 * MOVED and ASK); on failure it is left alone.
 */
int rtmd_redis_slots_parse_error(struct rtmd_str text, struct rtmd_str origin,
                                 struct rtmd_redis_redirect *out);

/* The same for a whole reply: any reply that is not an error reply is
 * RTMD_REDIS_NOT_CLUSTER. reply must not be NULL. */
int rtmd_redis_slots_classify(const struct redisReply *reply, struct rtmd_str origin,
                              struct rtmd_redis_redirect *out);

/*
 * Applies a MOVED: from now on its slot maps to its node, added to the table
 * if new (a replica found there becomes a primary: that is a failover).
 * Returns the node's index, or on failure leaves m as it was and returns
 * -EINVAL (not a MOVED), -EDESTADDRREQ (host "?"), RTMD_ELIMIT (the table
 * is full: refresh the whole map with CLUSTER SLOTS), -ENOMEM. An ASK
 * changes no map: it redirects one command.
 */
int rtmd_redis_slots_apply_moved(struct rtmd_redis_slot_map *m,
                                 const struct rtmd_redis_redirect *moved);

#endif
