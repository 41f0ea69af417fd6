/*
 * redis_lua.h — the Lua scripts the redis backend runs (redis_lua.c), each
 * one atomic step on one app's keys (one hash slot: they all carry the tag
 * {APPID}) or on the nodes' keys (tag {nodes}).
 *
 * Keys of an app A (P = "rtmd:{A}:"):
 *   P ev:u, P ev:c    Streams: the user and channel event logs, each entry
 *                     {j: the event's JSON}, trimmed to events_retain
 *   P evn             hash u|c → events ever added (dropped-event counting)
 *   P cur             hash REGION:u|c:n → events the region has read,
 *                     REGION:u|c:id → the stream ID of the last one
 *   P drop            hash REGION:u|c → events dropped unread
 *   P sess            hash uid → "NODE|SESSION": who holds uid's session
 *   P node:NODE       set of the uids NODE holds
 *   P sch:UID         set of the channels uid's session is in
 *   P ch:CHANNEL      hash uid → NODE: the channel's members
 *   P r:BUCKET        rate-limit log (sorted set of request times)
 *   P meta            hash of counters
 * Shard channels (messages are fields separated by "\n", the last may hold
 * anything): P to:NODE, for NODE about this app — "K\nUID\nNODE|SESSION"
 * (another node took uid's session over), "P\nWAIT\nORIGIN\nFROM\nTO\nMS\n
 * PAYLOAD" (a peer message; WAIT 0 or the wait id the ack names),
 * "A\nWAIT" (an ack); rtmd:c:{APPID:CHANNEL}, for the nodes with members in
 * CHANNEL — "M\nORIGIN\nFROM\nMS\nPAYLOAD" (a channel message),
 * "J\nORIGIN\nUID" / "L\nORIGIN\nUID" (a member joined / left).
 * Nodes: rtmd:{nodes}:hb (sorted set NODE → last heartbeat, Redis ms),
 * rtmd:{nodes}:reaped (hash NODE → 1: its sessions were ended for it),
 * rtmd:{nodes}:lock:NODE (who ends a dead node's sessions).
 */
#ifndef RTMD_STORE_REDIS_LUA_H
#define RTMD_STORE_REDIS_LUA_H

enum rtmd_redis_script {
    RTMD_LUA_PRESENCE,   /* KEYS P; ARGV node, retain, n, n × (type, uid, channel, ms, session) */
    RTMD_LUA_PULL,       /* KEYS P; ARGV u|c, region, max, deadline (Redis ms) */
    RTMD_LUA_RATE,       /* KEYS P; ARGV bucket, qps */
    RTMD_LUA_END_NODE,   /* KEYS P; ARGV node, ms, retain, session id limit */
    RTMD_LUA_BEAT,       /* KEYS hb, reaped; ARGV node, node_timeout_ms */
    RTMD_LUA_CLAIM,      /* KEYS hb, reaped, lock; ARGV dead node, claimer, node_timeout_ms */
    RTMD_LUA_BURIED,     /* KEYS hb, lock; ARGV dead node, claimer, node_timeout_ms */
    RTMD_LUA_ROUTE_PEER, /* KEYS P; ARGV receiver uid, this node, message */
    RTMD_LUA_COUNT
};

extern const char *const rtmd_redis_lua[RTMD_LUA_COUNT];

#endif
