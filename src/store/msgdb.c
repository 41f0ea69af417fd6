/*
 * msgdb.c — history and offline messages in SQLite (see msgdb.h).
 *
 * The five filter shapes of a history query (store.h) become three SQL
 * shapes, because a destination names a user and a channel at once and the
 * dst column of a message holds the receiver uid (peer) or the channel name:
 *
 *   source + destination  messages WHERE app, src, dst, ms range
 *                         (peer source→dest and channel source→dest alike)
 *                         → index messages_pair
 *   source only           messages WHERE app, src, ms range
 *                         → index messages_src
 *   destination only      inbox WHERE app, uid, ms range       (the user)
 *                         UNION
 *                         messages WHERE app, type=1, dst, ms range
 *                                                         (the channel)
 *                         → inbox's key and index messages_channel, merged
 *
 * The UNION is on (ms, id): both sides deliver in that order from their
 * index, SQLite merges them (MERGE (UNION) in EXPLAIN QUERY PLAN), drops a
 * message both sides return (a channel message delivered to a member whose
 * uid equals the channel's name), and stops after offset + limit rows; the
 * payloads of at most limit messages are then read by id.
 */
#include "store/msgdb.h"

#include "core/alloc.h"
#include "core/buf.h"

/* Bytes a query or a take may hand back at most (payloads are ≤ 1 MB each,
 * queries ≤ 100 rows; only a take of a very large offline cap gets near). */
#define ROWS_BYTES_MAX ((size_t)1 << 30)

const char rtmd_msgdb_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS app_keys(key INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS messages(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " app INTEGER NOT NULL, type INTEGER NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL,"
    " ms INTEGER NOT NULL, payload TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS messages_src ON messages(app, src, ms);"
    "CREATE INDEX IF NOT EXISTS messages_pair ON messages(app, src, dst, ms);"
    "CREATE INDEX IF NOT EXISTS messages_channel ON messages(app, dst, ms) WHERE type=1;"
    "CREATE INDEX IF NOT EXISTS messages_ms ON messages(ms);"
    "CREATE TABLE IF NOT EXISTS inbox(app INTEGER NOT NULL, uid TEXT NOT NULL,"
    " ms INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY(app, uid, ms, id)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS inbox_ms ON inbox(ms);"
    "CREATE TABLE IF NOT EXISTS offline(id INTEGER PRIMARY KEY, app INTEGER NOT NULL,"
    " uid TEXT NOT NULL, src TEXT NOT NULL, ms INTEGER NOT NULL, expire_ms INTEGER NOT NULL,"
    " payload TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS offline_uid ON offline(app, uid, ms);"
    "CREATE INDEX IF NOT EXISTS offline_expire ON offline(expire_ms);";

/* Query parameters, the same for every shape: ?1 app, ?2 source (pair,
 * source) or destination, ?3 destination (pair), ?4..?5 the ms range,
 * ?6 limit, ?7 offset. */
#define COLUMNS "m.id, m.type, m.src, m.dst, m.ms, m.payload"
#define DST_KEYS                                                                                   \
    "SELECT ms, id FROM inbox WHERE app=?1 AND uid=?2 AND ms BETWEEN ?4 AND ?5"                    \
    " UNION SELECT ms, id FROM messages WHERE app=?1 AND type=1 AND dst=?2"                        \
    " AND ms BETWEEN ?4 AND ?5"

const char *const rtmd_msgdb_sql[MSGDB_STMT_COUNT] = {
    [MSGDB_APP_INSERT] = "INSERT OR IGNORE INTO app_keys(name) VALUES(?1)",
    [MSGDB_APP_SELECT] = "SELECT key FROM app_keys WHERE name=?1",
    [MSGDB_MSG_INSERT] =
        "INSERT INTO messages(app,type,src,dst,ms,payload) VALUES(?1,?2,?3,?4,?5,?6)",
    [MSGDB_INBOX_INSERT] = "INSERT OR IGNORE INTO inbox(app,uid,ms,id) VALUES(?1,?2,?3,?4)",
    [MSGDB_QUERY_PAIR_ASC] = "SELECT " COLUMNS " FROM messages AS m WHERE app=?1 AND src=?2"
                             " AND dst=?3 AND ms BETWEEN ?4 AND ?5 ORDER BY ms, id"
                             " LIMIT ?6 OFFSET ?7",
    [MSGDB_QUERY_PAIR_DESC] = "SELECT " COLUMNS " FROM messages AS m WHERE app=?1 AND src=?2"
                              " AND dst=?3 AND ms BETWEEN ?4 AND ?5 ORDER BY ms DESC, id DESC"
                              " LIMIT ?6 OFFSET ?7",
    [MSGDB_QUERY_SRC_ASC] = "SELECT " COLUMNS " FROM messages AS m WHERE app=?1 AND src=?2"
                            " AND ms BETWEEN ?4 AND ?5 ORDER BY ms, id LIMIT ?6 OFFSET ?7",
    [MSGDB_QUERY_SRC_DESC] = "SELECT " COLUMNS " FROM messages AS m WHERE app=?1 AND src=?2"
                             " AND ms BETWEEN ?4 AND ?5 ORDER BY ms DESC, id DESC"
                             " LIMIT ?6 OFFSET ?7",
    [MSGDB_QUERY_DST_ASC] = "SELECT " COLUMNS " FROM (" DST_KEYS " ORDER BY ms, id"
                            " LIMIT ?6 OFFSET ?7) AS k JOIN messages AS m ON m.id=k.id"
                            " ORDER BY k.ms, k.id",
    [MSGDB_QUERY_DST_DESC] = "SELECT " COLUMNS " FROM (" DST_KEYS " ORDER BY ms DESC, id DESC"
                             " LIMIT ?6 OFFSET ?7) AS k JOIN messages AS m ON m.id=k.id"
                             " ORDER BY k.ms DESC, k.id DESC",
    [MSGDB_COUNT_PAIR] = "SELECT COUNT(*) FROM messages WHERE app=?1 AND src=?2 AND dst=?3"
                         " AND ms BETWEEN ?4 AND ?5",
    [MSGDB_COUNT_SRC] = "SELECT COUNT(*) FROM messages WHERE app=?1 AND src=?2"
                        " AND ms BETWEEN ?4 AND ?5",
    /* ORDER BY makes SQLite merge the two ordered sides instead of
     * deduplicating through a temporary b-tree. */
    [MSGDB_COUNT_DST] = "SELECT COUNT(*) FROM (" DST_KEYS " ORDER BY ms, id)",
    [MSGDB_OFFLINE_INSERT] = "INSERT INTO offline(app,uid,src,ms,expire_ms,payload)"
                             " VALUES(?1,?2,?3,?4,?5,?6)",
    [MSGDB_OFFLINE_COUNT] = "SELECT COUNT(*) FROM offline WHERE app=?1 AND uid=?2",
    [MSGDB_OFFLINE_EXPIRE_USER] = "DELETE FROM offline WHERE app=?1 AND uid=?2 AND expire_ms<=?3",
    [MSGDB_OFFLINE_DROP] = "DELETE FROM offline WHERE id IN (SELECT id FROM offline"
                           " WHERE app=?1 AND uid=?2 ORDER BY ms, id LIMIT ?3)",
    [MSGDB_OFFLINE_SELECT] = "SELECT src, ms, payload FROM offline WHERE app=?1 AND uid=?2"
                             " AND expire_ms>?3 ORDER BY ms, id",
    [MSGDB_OFFLINE_DELETE_USER] = "DELETE FROM offline WHERE app=?1 AND uid=?2",
    [MSGDB_PRUNE_MESSAGES] = "DELETE FROM messages WHERE id IN (SELECT id FROM messages"
                             " WHERE ms<?1 ORDER BY ms LIMIT ?2)",
    [MSGDB_PRUNE_INBOX] = "DELETE FROM inbox WHERE (app,uid,ms,id) IN (SELECT app,uid,ms,id"
                          " FROM inbox WHERE ms<?1 ORDER BY ms LIMIT ?2)",
    [MSGDB_PRUNE_OFFLINE] = "DELETE FROM offline WHERE id IN (SELECT id FROM offline"
                            " WHERE expire_ms<=?1 ORDER BY expire_ms LIMIT ?2)",
};

int rtmd_msgdb_prepare(struct rtmd_msgdb *m, sqlite3 *db)
{
    m->db = db;
    for (int i = 0; i < MSGDB_STMT_COUNT; i++) {
        int rc = sqlite3_prepare_v3(db, rtmd_msgdb_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &m->stmt[i], NULL);
        if (rc != SQLITE_OK) {
            rtmd_msgdb_finalize(m);
            return rc;
        }
    }
    return 0;
}

void rtmd_msgdb_finalize(struct rtmd_msgdb *m)
{
    for (int i = 0; i < MSGDB_STMT_COUNT; i++) {
        sqlite3_finalize(m->stmt[i]);
        m->stmt[i] = NULL;
    }
}

/* ---- helpers ---- */

static sqlite3_int64 to_i64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static void bind_str(sqlite3_stmt *st, int i, struct rtmd_str v)
{
    sqlite3_bind_text(st, i, v.p, (int)v.len, SQLITE_STATIC);
}

/* Steps a statement that returns no rows (or one to ignore) and resets it. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : rc;
}

/* Steps a statement returning one integer, resets it. */
static int run_int(sqlite3_stmt *st, int64_t *out)
{
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : rc;
}

static struct rtmd_str column_str(sqlite3_stmt *st, int i)
{
    const char *p = (const char *)sqlite3_column_text(st, i);
    return rtmd_str_make(p ? p : "", p ? (size_t)sqlite3_column_bytes(st, i) : 0);
}

/* Rows collected while stepping: strings go to one growing buffer, and
 * their offsets become pointers once it stops moving. */
struct rows_builder {
    struct rtmd_message *v;
    size_t (*off)[3];
    size_t n, cap;
    struct rtmd_buf bytes;
};

static int rows_add(struct rows_builder *b, int type, struct rtmd_str src, struct rtmd_str dst,
                    uint64_t ms, struct rtmd_str payload)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 16;
        struct rtmd_message *v = rtmd_try_realloc(b->v, cap * sizeof(*v));
        if (!v)
            return SQLITE_NOMEM;
        b->v = v;
        size_t(*off)[3] = rtmd_try_realloc(b->off, cap * sizeof(*off));
        if (!off)
            return SQLITE_NOMEM;
        b->off = off;
        b->cap = cap;
    }
    size_t at = b->bytes.len;
    struct rtmd_str parts[3] = {src, dst, payload};
    for (int i = 0; i < 3; i++) {
        b->off[b->n][i] = b->bytes.len;
        if (rtmd_buf_append(&b->bytes, parts[i].p, parts[i].len) != 0) {
            b->bytes.len = at;
            return SQLITE_NOMEM;
        }
    }
    struct rtmd_message *m = &b->v[b->n++];
    memset(m, 0, sizeof(*m));
    m->type = type == RTMD_MSG_CHANNEL ? RTMD_MSG_CHANNEL : RTMD_MSG_PEER;
    m->src.len = src.len;
    m->dst.len = dst.len;
    m->payload.len = payload.len;
    m->ms = ms;
    return 0;
}

static void rows_finish(struct rows_builder *b, struct rtmd_msgdb_rows *out)
{
    size_t len;
    out->bytes = rtmd_buf_steal(&b->bytes, &len);
    out->messages = b->v;
    out->n = b->n;
    for (size_t i = 0; i < b->n; i++) {
        struct rtmd_message *m = &b->v[i];
        m->src.p = out->bytes + b->off[i][0];
        m->dst.p = out->bytes + b->off[i][1];
        m->payload.p = out->bytes + b->off[i][2];
    }
    rtmd_free(b->off);
    memset(b, 0, sizeof(*b));
}

static void rows_abandon(struct rows_builder *b)
{
    rtmd_free(b->v);
    rtmd_free(b->off);
    rtmd_buf_free(&b->bytes);
    memset(b, 0, sizeof(*b));
}

void rtmd_msgdb_rows_free(struct rtmd_msgdb_rows *r)
{
    rtmd_free(r->messages);
    rtmd_free(r->bytes);
    memset(r, 0, sizeof(*r));
}

/* ---- app keys ---- */

int rtmd_msgdb_app_key(struct rtmd_msgdb *m, const char *app_id, int64_t *key)
{
    sqlite3_stmt *st = m->stmt[MSGDB_APP_INSERT];
    sqlite3_bind_text(st, 1, app_id, -1, SQLITE_STATIC);
    int rc = run(st);
    if (rc)
        return rc;
    st = m->stmt[MSGDB_APP_SELECT];
    sqlite3_bind_text(st, 1, app_id, -1, SQLITE_STATIC);
    return run_int(st, key);
}

/* ---- history ---- */

int rtmd_msgdb_history_put(struct rtmd_msgdb *m, int64_t app, const struct rtmd_message *msg,
                           const struct rtmd_str *recipients, size_t n_recipients)
{
    sqlite3_stmt *st = m->stmt[MSGDB_MSG_INSERT];
    sqlite3_bind_int64(st, 1, app);
    sqlite3_bind_int(st, 2, (int)msg->type);
    bind_str(st, 3, msg->src);
    bind_str(st, 4, msg->dst);
    sqlite3_bind_int64(st, 5, to_i64(msg->ms));
    bind_str(st, 6, msg->payload);
    int rc = run(st);
    if (rc)
        return rc;
    sqlite3_int64 id = sqlite3_last_insert_rowid(m->db);

    const struct rtmd_str *to = msg->type == RTMD_MSG_PEER ? &msg->dst : recipients;
    size_t n = msg->type == RTMD_MSG_PEER ? 1 : n_recipients;
    st = m->stmt[MSGDB_INBOX_INSERT];
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, app);
        bind_str(st, 2, to[i]);
        sqlite3_bind_int64(st, 3, to_i64(msg->ms));
        sqlite3_bind_int64(st, 4, id);
        if ((rc = run(st)))
            return rc;
    }
    return 0;
}

enum shape { SHAPE_PAIR, SHAPE_SRC, SHAPE_DST };

static enum shape shape_of(const struct rtmd_history_query *q)
{
    if (q->source.p && q->destination.p)
        return SHAPE_PAIR;
    return q->source.p ? SHAPE_SRC : SHAPE_DST;
}

/* Binds ?1..?5; false when the time range is empty. */
static bool bind_filter(sqlite3_stmt *st, int64_t app, const struct rtmd_history_query *q,
                        uint64_t min_ms)
{
    uint64_t lo = RTMD_MAX(q->start_ms, min_ms);
    if (lo > q->end_ms)
        return false;
    sqlite3_bind_int64(st, 1, app);
    switch (shape_of(q)) {
    case SHAPE_PAIR:
        bind_str(st, 2, q->source);
        bind_str(st, 3, q->destination);
        break;
    case SHAPE_SRC: bind_str(st, 2, q->source); break;
    case SHAPE_DST: bind_str(st, 2, q->destination); break;
    }
    sqlite3_bind_int64(st, 4, to_i64(lo));
    sqlite3_bind_int64(st, 5, to_i64(q->end_ms));
    return true;
}

int rtmd_msgdb_history_query(struct rtmd_msgdb *m, int64_t app, const struct rtmd_history_query *q,
                             uint64_t min_ms, struct rtmd_msgdb_rows *out)
{
    static const enum rtmd_msgdb_stmt ids[3][2] = {
        [SHAPE_PAIR] = {MSGDB_QUERY_PAIR_ASC, MSGDB_QUERY_PAIR_DESC},
        [SHAPE_SRC] = {MSGDB_QUERY_SRC_ASC, MSGDB_QUERY_SRC_DESC},
        [SHAPE_DST] = {MSGDB_QUERY_DST_ASC, MSGDB_QUERY_DST_DESC},
    };
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = m->stmt[ids[shape_of(q)][q->desc ? 1 : 0]];
    if (!bind_filter(st, app, q, min_ms))
        return 0;
    sqlite3_bind_int64(st, 6, q->limit);
    sqlite3_bind_int64(st, 7, q->offset);

    struct rows_builder b;
    memset(&b, 0, sizeof(b));
    rtmd_buf_init(&b.bytes, ROWS_BYTES_MAX);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int type = sqlite3_column_int(st, 1);
        int64_t ms = sqlite3_column_int64(st, 4);
        rc = rows_add(&b, type, column_str(st, 2), column_str(st, 3), ms < 0 ? 0 : (uint64_t)ms,
                      column_str(st, 5));
        if (rc)
            break;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        rows_abandon(&b);
        return rc == SQLITE_ROW || rc == SQLITE_OK ? SQLITE_ERROR : rc;
    }
    rows_finish(&b, out);
    return 0;
}

int rtmd_msgdb_history_count(struct rtmd_msgdb *m, int64_t app, const struct rtmd_history_query *q,
                             uint64_t min_ms, uint64_t *count)
{
    static const enum rtmd_msgdb_stmt ids[3] = {
        [SHAPE_PAIR] = MSGDB_COUNT_PAIR,
        [SHAPE_SRC] = MSGDB_COUNT_SRC,
        [SHAPE_DST] = MSGDB_COUNT_DST,
    };
    *count = 0;
    sqlite3_stmt *st = m->stmt[ids[shape_of(q)]];
    if (!bind_filter(st, app, q, min_ms))
        return 0;
    int64_t n;
    int rc = run_int(st, &n);
    if (rc == 0)
        *count = n < 0 ? 0 : (uint64_t)n;
    return rc;
}

/* ---- offline ---- */

int rtmd_msgdb_offline_put(struct rtmd_msgdb *m, int64_t app, const struct rtmd_message *msg,
                           uint32_t max, uint64_t expire_ms, uint64_t now, uint32_t *dropped)
{
    *dropped = 0;
    sqlite3_stmt *st = m->stmt[MSGDB_OFFLINE_INSERT];
    sqlite3_bind_int64(st, 1, app);
    bind_str(st, 2, msg->dst);
    bind_str(st, 3, msg->src);
    sqlite3_bind_int64(st, 4, to_i64(msg->ms));
    sqlite3_bind_int64(st, 5, to_i64(expire_ms));
    bind_str(st, 6, msg->payload);
    int rc = run(st);
    if (rc)
        return rc;

    int64_t n;
    st = m->stmt[MSGDB_OFFLINE_COUNT];
    sqlite3_bind_int64(st, 1, app);
    bind_str(st, 2, msg->dst);
    if ((rc = run_int(st, &n)) || n <= (int64_t)max)
        return rc;
    /* Over the cap: what expired goes first (not counted as dropped). */
    st = m->stmt[MSGDB_OFFLINE_EXPIRE_USER];
    sqlite3_bind_int64(st, 1, app);
    bind_str(st, 2, msg->dst);
    sqlite3_bind_int64(st, 3, to_i64(now));
    if ((rc = run(st)))
        return rc;
    n -= sqlite3_changes(m->db);
    if (n <= (int64_t)max)
        return 0;
    st = m->stmt[MSGDB_OFFLINE_DROP];
    sqlite3_bind_int64(st, 1, app);
    bind_str(st, 2, msg->dst);
    sqlite3_bind_int64(st, 3, n - (int64_t)max);
    if ((rc = run(st)))
        return rc;
    *dropped = (uint32_t)sqlite3_changes(m->db);
    return 0;
}

int rtmd_msgdb_offline_take(struct rtmd_msgdb *m, int64_t app, struct rtmd_str uid, uint64_t now,
                            struct rtmd_msgdb_rows *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = m->stmt[MSGDB_OFFLINE_SELECT];
    sqlite3_bind_int64(st, 1, app);
    bind_str(st, 2, uid);
    sqlite3_bind_int64(st, 3, to_i64(now));

    struct rows_builder b;
    memset(&b, 0, sizeof(b));
    rtmd_buf_init(&b.bytes, ROWS_BYTES_MAX);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t ms = sqlite3_column_int64(st, 1);
        rc = rows_add(&b, RTMD_MSG_PEER, column_str(st, 0), uid, ms < 0 ? 0 : (uint64_t)ms,
                      column_str(st, 2));
        if (rc)
            break;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        st = m->stmt[MSGDB_OFFLINE_DELETE_USER];
        sqlite3_bind_int64(st, 1, app);
        bind_str(st, 2, uid);
        rc = run(st);
    } else if (rc == SQLITE_ROW || rc == SQLITE_OK) {
        rc = SQLITE_ERROR;
    }
    if (rc) {
        rows_abandon(&b);
        return rc;
    }
    rows_finish(&b, out);
    return 0;
}

/* ---- pruning ---- */

/* Runs one bounded DELETE; takes what it removed from *budget. */
static int prune_one(struct rtmd_msgdb *m, enum rtmd_msgdb_stmt id, uint64_t bound,
                     uint32_t *budget, uint64_t *removed)
{
    if (*budget == 0)
        return 0;
    sqlite3_stmt *st = m->stmt[id];
    sqlite3_bind_int64(st, 1, to_i64(bound));
    sqlite3_bind_int64(st, 2, *budget);
    int rc = run(st);
    if (rc)
        return rc;
    uint32_t n = (uint32_t)sqlite3_changes(m->db);
    *removed += n;
    *budget -= RTMD_MIN(n, *budget);
    return 0;
}

int rtmd_msgdb_prune(struct rtmd_msgdb *m, uint64_t before_ms, uint64_t now, uint32_t budget,
                     struct rtmd_msgdb_pruned *out)
{
    memset(out, 0, sizeof(*out));
    int rc;
    if ((rc = prune_one(m, MSGDB_PRUNE_MESSAGES, before_ms, &budget, &out->messages)) ||
        (rc = prune_one(m, MSGDB_PRUNE_INBOX, before_ms, &budget, &out->inbox)) ||
        (rc = prune_one(m, MSGDB_PRUNE_OFFLINE, now, &budget, &out->offline)))
        return rc;
    out->more = budget == 0;
    return 0;
}
