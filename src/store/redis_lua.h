/*
 * redis_lua.h — the Lua scripts the redis backend runs (redis_lua.c), each
 * one atomic step on one app's keys (one hash slot: they all carry the tag
 * {APPID}) or on the nodes' keys (tag {nodes}).
 *
 * Keys of an app A (P = "rtmd:{A}:"):
 *   P ev:u, P ev:c    Lists: the user and channel event logs, each element
 *                     an event's JSON, trimmed to the newest events_retain
 *   P es:u, P es:c    Lists: "NUMBER:NODE|SESSION", each event's number and
 *                     session_id, pushed and trimmed with it (an event an
 *                     older rtmd recorded has none: readers match by number)
 *   P evn             hash u|c → events ever added: element i of a log is
 *                     event evn - LLEN + i (0-based; its number, seq, is one more)
 *   P cur             hash REGION:u|c:n → events the region has read
 *   P drop            hash REGION:u|c → events dropped unread
 *   P sess            hash uid → "NODE|SESSION": who holds uid's session
 *   P node:NODE       set of the uids NODE holds
 *   P sch:UID         set of the channels uid's session is in
 *   P ch:CHANNEL      hash uid → NODE: the channel's members
 *   P cm:CHANNEL      sorted set of the same uids, score 0 (uid order: the members
 *                     pages), changed with ch:CHANNEL by the same scripts
 *   P r:BUCKET        rate-limit log (sorted set of request times)
 *   P meta            hash of counters: rseq (rate-limit entries), mseq and oseq
 *                     (the last history and offline message numbers given)
 * History (redis_msg.c). ID: a message's number, 14 hex digits, so that the
 * members of one score sort in arrival order.
 *   P m:ID            string "TYPE\nMS\nSRC\nDST\nPAYLOAD" (TYPE p|c): the message,
 *                     stored once
 *   P mr:ID           string: the recipients of channel message ID, one a line
 *                     (read only by the prune)
 *   P hm              sorted set ID by ms: every message (the prune's timeline)
 *   P hs:SRC          sorted set ID by ms: what SRC sent
 *   P hp:SRC/DST      sorted set ID by ms: what SRC sent to user or channel DST
 *   P hr:UID          sorted set ID by ms: what UID received (peer messages to
 *                     it; channel messages delivered to it, except those of a
 *                     channel named UID, which hc:UID holds)
 *   P hc:CHANNEL      sorted set ID by ms: what was sent to CHANNEL
 *   P q:HANDLE        string: a history query kept under a handle (PX ttl)
 * Offline messages (redis_msg.c), IDs as above:
 *   P o:UID           sorted set ID by ms: the messages kept for UID
 *   P oe:UID          sorted set ID by expiry ms
 *   P ob:UID          hash ID → "EXPIRE\nMS\nSRC\nPAYLOAD"
 *   P oq              sorted set UID by the latest expiry of its messages (the
 *                     prune drops a receiver whose every message expired)
 * IDs (core/ids.h) hold neither '/' nor a newline, so the names and strings
 * above split without ambiguity.
 * Shard channels (messages are fields separated by "\n", the last may hold
 * anything): P to:NODE, for NODE about this app — "K\nUID\nNODE|SESSION"
 * (another node took uid's session over), "P\nWAIT\nORIGIN\nFROM\nTO\nMS\n
 * PAYLOAD" (a peer message; WAIT 0 or the wait id the ack names),
 * "A\nWAIT" (an ack); rtmd:c:{APPID:CHANNEL}, for the nodes with members in
 * CHANNEL — "M\nORIGIN\nFROM\nMS\nPAYLOAD" (a channel message),
 * "J\nORIGIN\nUID" / "L\nORIGIN\nUID" (a member joined / left).
 * Webhooks (docs/WEBHOOKS.md):
 *   P wk              kinds some node's webhooks want (1 user, 2 channel, 4 message),
 *                     OR-ed, expiring 10 min after the last outbox read
 *   P wo              List: the outbox, "ID\nKIND\nNUMBER\nMS\nSESSION\nJSON" (KIND u,
 *                     c or m; a message's NUMBER is its ID), oldest first; P evn's
 *                     field wo counts the IDs given
 *   P wp, P wt        hashes hook → position (last ID acknowledged), → last read (ms)
 *   rtmd:{webhooks}:lease:HOOK  the node delivering HOOK now (PX)
 * Nodes: rtmd:{nodes}:hb (sorted set NODE → last heartbeat, Redis ms),
 * rtmd:{nodes}:reaped (hash NODE → 1: its sessions were ended for it),
 * rtmd:{nodes}:since (hash NODE → when its heartbeats last began without a gap),
 * rtmd:{nodes}:lock:NODE (who ends a dead node's sessions),
 * rtmd:{nodes}:info (hash NODE → "CONNECTIONS SESSIONS MS": what it said of
 * itself last, for the dashboard),
 * rtmd:{nodes}:tail (hash APPID|NODE → until when NODE has viewers of the
 * app's live tail, Redis ms), rtmd:{APPID}:tail (the shard channel the
 * app's tail events go over: "NODE\n" and the event).
 */
#ifndef RTMD_STORE_REDIS_LUA_H
#define RTMD_STORE_REDIS_LUA_H

enum rtmd_redis_script {
    RTMD_LUA_PRESENCE,   /* KEYS P; ARGV node, retain, n, n × (type, uid, channel, ms, session) */
    RTMD_LUA_PULL,       /* KEYS P; ARGV u|c, region, max, deadline (Redis ms), after|'' */
    RTMD_LUA_RATE,       /* KEYS P; ARGV bucket, qps */
    RTMD_LUA_END_NODE,   /* KEYS P; ARGV node, ms, retain, session id limit */
    RTMD_LUA_BEAT,       /* KEYS hb, reaped; ARGV node, node_timeout_ms */
    RTMD_LUA_CLAIM,      /* KEYS hb, reaped, lock; ARGV dead node, claimer, node_timeout_ms */
    RTMD_LUA_BURIED,     /* KEYS hb, lock; ARGV dead node, claimer, node_timeout_ms */
    RTMD_LUA_ROUTE_PEER, /* KEYS P; ARGV receiver uid, this node, message */
    /* KEYS P; ARGV deadline (Redis ms), p|c, src, dst, ms, payload, recipients... */
    RTMD_LUA_HISTORY_PUT,
    /* KEYS P; ARGV c|q, s|p|d, src, dst, lo, hi, offset, limit, desc, byte budget */
    RTMD_LUA_HISTORY_QUERY,
    RTMD_LUA_HISTORY_BODIES, /* KEYS P; ARGV byte budget, IDs... */
    RTMD_LUA_MSG_PRUNE,      /* KEYS P; ARGV history before ms, now, budget */
    RTMD_LUA_HANDLE_PUT,     /* KEYS P; ARGV deadline, name, query, ttl_ms */
    RTMD_LUA_HANDLE_TAKE,    /* KEYS P; ARGV deadline, name */
    RTMD_LUA_OFFLINE_PUT,    /* KEYS P; ARGV deadline, uid, src, ms, expire, payload, max, now */
    RTMD_LUA_OFFLINE_TAKE,   /* KEYS P; ARGV deadline, uid, now, byte budget */
    RTMD_LUA_MEMBERS,        /* KEYS P; ARGV channel, after, limit */
    RTMD_LUA_OVERVIEW,       /* KEYS P; ARGV limit, regions... (the dashboard) */
    RTMD_LUA_NODES,          /* KEYS hb, info; ARGV node|'', report, node_timeout_ms, max */
    RTMD_LUA_TAIL,           /* KEYS tail; ARGV node, ttl_ms, APPID... */
    RTMD_LUA_OUTBOX_READ,    /* KEYS P; ARGV hook, ack, max, kinds */
    RTMD_LUA_OUTBOX_MESSAGE, /* KEYS P; ARGV ms, json */
    RTMD_LUA_WEBHOOK_LEASE,  /* KEYS rtmd:{webhooks}:lease:HOOK; ARGV node, ttl ms */
    RTMD_LUA_COUNT
};

/* END_NODE lists at most this many Leaves (uid, channel) in its reply: the
 * members of those channels on every node are told (member_left); a bigger
 * node's other members are not, its sessions end all the same. */
#define RTMD_LUA_ENDED_MAX "16384"

extern const char *const rtmd_redis_lua[RTMD_LUA_COUNT];

#endif
