/*
 * msgdb.h — the message tables of the embedded store in SQLite: history
 * with one inbox row per receiver, and offline messages (docs/API.md
 * "Message history", "Sending messages"). embedded.c owns the threading,
 * the batching and the transactions; this module owns the schema, the
 * statements and the SQL.
 *
 * Schema (created with IF NOT EXISTS; embedded.c runs it and sets the
 * database's user_version):
 *   app_keys(key INTEGER PRIMARY KEY, name UNIQUE)  one small integer per App
 *            ID, so rows and index entries do not repeat 32-byte App IDs
 *   messages(id INTEGER PRIMARY KEY AUTOINCREMENT, app, type, src, dst, ms,
 *            payload)  id = rowid: arrival order, never reused
 *     messages_src(app, src, ms)             source only
 *     messages_pair(app, src, dst, ms)       source + destination
 *     messages_channel(app, dst, ms) WHERE type=1
 *                                            destination as a channel
 *     messages_ms(ms)                        pruning
 *   inbox(app, uid, ms, id) PRIMARY KEY, WITHOUT ROWID
 *            one row per receiver: the peer receiver, or each recipient of
 *            a channel message (destination as a user)
 *     inbox_ms(ms)                           pruning
 *   offline(id INTEGER PRIMARY KEY, app, uid, src, ms, expire_ms, payload)
 *     offline_uid(app, uid, ms)              take, in (ms, id) order
 *     offline_expire(expire_ms)              pruning
 * Every index ends, implicitly, with the rowid (or is the key of a WITHOUT
 * ROWID table ending in id), so an index range on (app, key, ms) delivers
 * rows in (ms, id) order in both directions: no query sorts.
 *
 * Threading: every function runs on the thread that owns the connection.
 * None begins or ends a transaction. Errors: 0, or an SQLite result code
 * (the caller logs sqlite3_errmsg()).
 */
#ifndef RTMD_STORE_MSGDB_H
#define RTMD_STORE_MSGDB_H

#include <sqlite3.h>

#include "store/store.h"

/* The schema; safe to run on a database that already has it. */
extern const char rtmd_msgdb_schema_sql[];

enum rtmd_msgdb_stmt {
    MSGDB_APP_INSERT,
    MSGDB_APP_SELECT,
    MSGDB_MSG_INSERT,
    MSGDB_INBOX_INSERT,
    MSGDB_QUERY_PAIR_ASC,
    MSGDB_QUERY_PAIR_DESC,
    MSGDB_QUERY_SRC_ASC,
    MSGDB_QUERY_SRC_DESC,
    MSGDB_QUERY_DST_ASC,
    MSGDB_QUERY_DST_DESC,
    MSGDB_COUNT_PAIR,
    MSGDB_COUNT_SRC,
    MSGDB_COUNT_DST,
    MSGDB_OFFLINE_INSERT,
    MSGDB_OFFLINE_COUNT,
    MSGDB_OFFLINE_EXPIRE_USER,
    MSGDB_OFFLINE_DROP,
    MSGDB_OFFLINE_SELECT,
    MSGDB_OFFLINE_DELETE_USER,
    MSGDB_PRUNE_MESSAGES,
    MSGDB_PRUNE_INBOX,
    MSGDB_PRUNE_OFFLINE,
    MSGDB_STMT_COUNT
};

extern const char *const rtmd_msgdb_sql[MSGDB_STMT_COUNT];

struct rtmd_msgdb {
    sqlite3 *db; /* not owned */
    sqlite3_stmt *stmt[MSGDB_STMT_COUNT];
};

/* Rows a query or a take read. Owns every byte the messages point to. */
struct rtmd_msgdb_rows {
    struct rtmd_message *messages;
    size_t n;
    char *bytes;
};

/* What one prune step removed. */
struct rtmd_msgdb_pruned {
    uint64_t messages;
    uint64_t inbox;
    uint64_t offline;
    bool more; /* the budget ran out: call again */
};

/* Prepares the statements (the schema must exist). On failure the ones
 * prepared are finalized. */
int rtmd_msgdb_prepare(struct rtmd_msgdb *m, sqlite3 *db);
void rtmd_msgdb_finalize(struct rtmd_msgdb *m);

/* The key of an App ID, made on first use. */
int rtmd_msgdb_app_key(struct rtmd_msgdb *m, const char *app_id, int64_t *key);

void rtmd_msgdb_rows_free(struct rtmd_msgdb_rows *r);

/* Inserts msg and its inbox rows: msg->dst for PEER, each recipient for
 * CHANNEL (duplicates ignored). */
int rtmd_msgdb_history_put(struct rtmd_msgdb *m, int64_t app, const struct rtmd_message *msg,
                           const struct rtmd_str *recipients, size_t n_recipients);
/*
 * The messages q matches (store.h's rules; offset, limit and order applied)
 * with ms in [max(q->start_ms, min_ms), q->end_ms]. min_ms hides what the
 * retention expired before a prune removed it. On success out owns the rows;
 * on failure out is empty.
 */
int rtmd_msgdb_history_query(struct rtmd_msgdb *m, int64_t app, const struct rtmd_history_query *q,
                             uint64_t min_ms, struct rtmd_msgdb_rows *out);
/* The number of messages q matches, offset and limit ignored. */
int rtmd_msgdb_history_count(struct rtmd_msgdb *m, int64_t app, const struct rtmd_history_query *q,
                             uint64_t min_ms, uint64_t *count);

/*
 * Keeps the PEER message msg for msg->dst until expire_ms. When the receiver
 * then holds more than max, its expired messages (expire_ms <= now) are
 * removed first, then its oldest by (ms, id); *dropped counts the latter.
 */
int rtmd_msgdb_offline_put(struct rtmd_msgdb *m, int64_t app, const struct rtmd_message *msg,
                           uint32_t max, uint64_t expire_ms, uint64_t now, uint32_t *dropped);
/* Reads every message of uid with expire_ms > now, oldest first by (ms, id),
 * and deletes all of uid's messages (expired ones too). */
int rtmd_msgdb_offline_take(struct rtmd_msgdb *m, int64_t app, struct rtmd_str uid, uint64_t now,
                            struct rtmd_msgdb_rows *out);

/*
 * Deletes at most budget rows in all: history messages with ms < before_ms,
 * inbox rows with ms < before_ms, offline messages with expire_ms <= now,
 * oldest first. out->more is set when the budget ran out.
 */
int rtmd_msgdb_prune(struct rtmd_msgdb *m, uint64_t before_ms, uint64_t now, uint32_t budget,
                     struct rtmd_msgdb_pruned *out);

#endif
