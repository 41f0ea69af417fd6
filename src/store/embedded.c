/*
 * embedded.c — the single-node store: SQLite in WAL mode behind one worker
 * thread, with the event logs served from memory.
 *
 * Threading. The loop thread owns everything in memory: the per-app event
 * logs (store/evlog.h), rate-limit buckets and counters. One worker thread
 * runs the sqlite3 connection's transactions; the two threads share only the
 * inbox (ops to run), the outbox (ops done) and a few counters, all under one
 * mutex (mu); the worker wakes on a condition variable, the loop on a
 * uv_async_t. The connection itself is guarded by a second mutex (db_mu),
 * held by whichever thread runs a transaction: the worker, or — for one kind
 * of batch only — the loop (below, "Read positions on the loop thread").
 *
 * Group commit. Calls made during one loop iteration are appended to a batch;
 * the before-sleep hook (rtmd_loop_on_prepare) moves the batch to the inbox.
 * The worker takes everything in the inbox — one batch, or several if the
 * previous commit took long — and runs it as ONE transaction (BEGIN
 * IMMEDIATE ... COMMIT, prepared statements reused), so one fsync covers every
 * op that arrived meanwhile: under load a commit carries thousands of ops, and
 * the loop keeps filling the next batch while the worker writes this one.
 * Finished ops go to the outbox; the loop thread applies their in-memory
 * effects and runs their callbacks in the order the calls were made.
 *
 * What is durable when a callback runs. A presence callback with status 0
 * runs after the transaction holding its events, session and membership
 * changes has committed: with sync=full the WAL was fsynced (survives power
 * loss); with sync=normal it was written to the OS (survives kill -9 of rtmd,
 * not a power cut). Only then are the events appended to the in-memory logs,
 * so a pull never returns an event that is not durable. A failed commit rolls
 * back the whole transaction and every op in it fails (logged): -ENOSPC when
 * the data directory is full, RTMD_ESTORE for any other failure — except the
 * Leaves and Logouts among them, which are kept (below).
 *
 * Failed writes (a full disk). A Leave or a Logout records that something
 * ended; lost, it would leave the user online, or in the channel, in the
 * vendor's log for good. So when a transaction fails, the worker moves the
 * Leaves and Logouts of its presence ops into owed ops of its own (w_owed,
 * oldest first) and retries them, alone in one transaction, RETRY_FIRST_MS
 * later, then after waits doubling up to RETRY_MAX_MS, until they commit. A
 * call whose records all moved completes at once with -EINPROGRESS (done, as
 * far as its caller goes: the store owes the records); a call that also held
 * a Login or a Join fails with the commit's error, and that Login or Join is
 * never recorded (a takeover's Leaves and Logout still are).
 * While records are owed, presence ops are held back, not run: a Login or a
 * Join fails at once with the last error, a Leave or a Logout joins the tail
 * of w_owed. Nothing recorded later can thus overtake an owed record — a
 * retried Logout never lands after a later Login of the same uid — and the
 * sequence numbers the owed records reserved at their call stay below those
 * of everything committed after them, as the in-memory logs require.
 * Messages and read positions are not held back: they touch no event log.
 * A Leave or a Logout records its event only if it ends something: with no
 * membership row (its Join failed) or no session row (its Login failed) it
 * records nothing (item->noop), so no Leave ever lacks its Join.
 * From a failed write until a write commits (w_failing) the store says so
 * (stats: write_error, owed_records; /healthz answers 503) and the worker
 * keeps trying on that schedule: the owed records, or with none a probe
 * that rewrites the schema version (one page), so it sees space return with
 * no traffic at all. A commit that writes pages (db_wrote, from the WAL
 * hook) ends the state when nothing is owed, and brings the retry forward
 * when something is. A read position that fails to commit on the loop
 * hands its failure to the worker (loop_failed).
 * Memory: while anything is owed, Logins and Joins fail, so every owed record
 * ends a session, or a membership, that existed before: at most one Logout
 * and max_channels_per_user Leaves per session of that time.
 * Owed records that rtmd stops before writing (close makes one last attempt,
 * kill -9 none) are not lost either: their session and membership rows are
 * still in the tables, so the next open() records those Leaves and Logouts.
 * Only a retry failing with an error that is not transient (not a full disk,
 * I/O, out of memory or busy: a bug, since the same records committed alone
 * fail) drops them, logged as lost, so that they cannot block every later
 * Login.
 *
 * kill -9. Nothing acknowledged is lost: every callback with status 0 follows
 * its commit. What a kill can lose is only what was never acknowledged: ops
 * still in the batch, the inbox or an uncommitted transaction (their callers
 * never heard back), and in-memory read positions of pulls whose cursor
 * write had not committed (those events are returned again after restart,
 * which is right: their pull was never answered). Sessions alive at the kill
 * are ended at the next open() with Leave (in join order) and Logout events.
 *
 * Read positions alone (a group of pulls, no event) commit without an fsync
 * even with sync=full (set_sync_for): kill -9 cannot lose them; a power cut
 * can, and then answers those events again — never loses one.
 *
 * Read positions on the loop thread. Such a batch is a few page writes to
 * the WAL (no fsync), cheaper than handing it to the worker and back: two
 * thread switches, a futex and an eventfd per iteration, 14% of a 100-event
 * pull when both threads share a CPU. So the before-sleep hook commits a
 * batch of cursor writes itself when nothing else is owed (no op in flight,
 * so completions stay in call order) and db_mu is free at once (trylock:
 * the loop never waits for a worker's fsync). Its callbacks run right
 * there: this hook runs before the server's, which then writes the answers
 * in the same iteration (main.c opens the store before it starts the
 * server). Ops those callbacks start join a new batch, committed the same
 * way (a few rounds at most) or handed to the worker, so nothing is left
 * for after the sleep. The loop never checkpoints: the WAL hook (on_wal)
 * notes a long WAL and the worker checkpoints it.
 *
 * Why a pull awaits its cursor commit. A pull takes events from memory at
 * once and moves the in-memory read position (so a second pull in flight
 * cannot return them again), but its callback — the HTTP answer — waits for
 * the new position to be committed. Answering first would let a crash right
 * after the answer bring the delivered events back after restart, and the
 * same region would read them twice; a region never does. The
 * remaining window (commit done, answer lost) errs on the side of at most
 * once. If the cursor commit fails, the read position is moved back unless a
 * later pull of that region has since committed a position of its own.
 *
 * Pulls with nothing to return, rate checks and query handles touch no disk:
 * they complete through rtmd_defer() in the same iteration's check phase.
 *
 * Messages (history, offline; tables and SQL in store/msgdb.c). history_put,
 * offline_put and offline_take are ops like presence: they join the
 * iteration's batch and commit in the same group transaction, and their
 * callbacks (status 0) run after that commit — so an acknowledged message is
 * durable exactly as a presence event is (sync=full: fsynced; normal:
 * survives kill -9). history_query and history_count are ops too and run in
 * that transaction in call order: a query made after a put was acknowledged
 * always sees it. A read that fails fails alone; a transaction that fails
 * fails every op in it, reads included (they may have seen its writes).
 *
 * offline_take selects and deletes the receiver's messages in the group
 * transaction, and hands them to its callback only after the commit. After a
 * crash they are therefore either still stored (the commit did not happen;
 * the take was never answered and the next one returns them) or were handed
 * to the callback (at most once; a crash between the commit and the caller's
 * delivery loses them). An offline_put made after the take runs after its
 * delete and is kept for the next take.
 *
 * Retention. A history message lives limits.history_retention_s after its
 * ms, an offline message until its ms + ttl_ms. Queries and takes hide what
 * has expired by the clock of the call (rtmd_now_ms()), so nothing expired is
 * ever returned — except that a history query may carry an older cut-off
 * the API pinned for its filter (q->min_ms, at most 2 x history_handle_ttl_s
 * old), so that a count and its pages agree; removing the rows is the
 * prune's job, and it lags retention by that much. A uv_timer enqueues one
 * prune op every PRUNE_INTERVAL_MS (and one at open). The worker does not run
 * it inside the group commit: it runs it as separate transactions of at most
 * PRUNE_BATCH_ROWS deleted rows each (messages, inbox rows, offline messages,
 * oldest first by index), one step at a time, alternating with the group
 * commits while calls keep arriving, so a backlog of expired rows never
 * holds a presence commit for longer than one step. Close stops a prune
 * after its current step; the next run carries on.
 *
 * Query handles (handle_put/handle_take) live in memory on the loop thread
 * (store/handles.c): random, single use, bound to the app, at most
 * HANDLES_MAX at once; they do not survive a restart.
 *
 * Schema (PRAGMA user_version = 3; version 1 databases gain the message
 * tables at open, versions 1 and 2 the session columns, '' in old rows):
 *   events(app, kind, seq, json, session)   PK(app,kind,seq), WITHOUT ROWID;
 *                                           session: the event's session_id
 *   cursors(app, kind, region, seq)         PK(app,kind,region): last seq read
 *   sessions(app, uid, node, login_ms,      PK(app,uid); session: its
 *            session)                       session_id ("NODE|NUMBER")
 *   memberships(app, uid, channel, since)   PK(app,uid,channel); since = the
 *                                           Join event's seq (join order)
 *   app_keys, messages, inbox, offline      see store/msgdb.h
 * app is the App ID, kind 0 = user log, 1 = channel log, region the region's
 * name (config order may change between runs). Each log keeps its newest
 * events_retain rows (by seq; after a failed commit the skipped numbers
 * leave a few rows fewer until the log moves on).
 *
 * One rtmd per data_dir: open() takes an exclusive flock() on
 * data_dir/rtmd.lock, held until close, so a second rtmd on the same
 * data_dir fails at open (-EBUSY) instead of corrupting the sessions. The
 * database itself uses SQLite's normal locking (the WAL index in the
 * rtmd.db-shm file), so that another process can read it while rtmd writes:
 * `rtmd backup` copies it online (cli/backup_cmd.c).
 */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/ratelimit.h"
#include "store/evlog.h"
#include "store/handles.h"
#include "store/msgdb.h"
#include "store/store.h"

#define MODULE         "store"
#define SCHEMA_VERSION 3
/* Ops (events, cursor writes, message ops) submitted and not yet called
 * back; more fail synchronously with -EAGAIN. */
#define MAX_PENDING 1000000
/* Ops completed per loop wakeup; the rest wait for the next iteration. */
#define COMPLETIONS_PER_WAKEUP 8192
/* SQLite's own autocheckpoint threshold, kept, but run by the worker only. */
#define WAL_CHECKPOINT_PAGES 1000
/* Batches of cursor writes committed on the loop in one prepare phase (the
 * callbacks of one may start the next); the rest goes to the worker. */
#define LOOP_COMMIT_ROUNDS 4
/* Bytes of one event's JSON: 64-byte IDs, escaped at most 6x. */
#define EVENT_JSON_MAX  4096
#define BUSY_TIMEOUT_MS 500 /* another process holding the database: fail fast */
#define NO_REWIND       UINT64_MAX
/* Expired messages are removed this often, and once at open. */
#define PRUNE_INTERVAL_MS 60000
/* Rows one prune transaction deletes at most: about 30 ms of work, which a
 * group commit waiting behind it pays at most once (measured). */
#define PRUNE_BATCH_ROWS 5000
/* Live query handles per store; more fail with -EAGAIN. */
#define HANDLES_MAX 100000
/* Messages one history query returns at most. */
#define HISTORY_LIMIT_MAX 100
/* After a failed write: the first retry of the owed records (or probe), and
 * the longest wait between two (the wait doubles from the first). */
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS   3200

struct app_state;

struct log_state {
    struct rtmd_evlog log;
    struct app_state *app;
    int kind;
    uint32_t inflight[RTMD_REGIONS_MAX]; /* pulls awaiting their cursor commit */
    uint64_t rewind[RTMD_REGIONS_MAX];   /* position to restore after failures */
    /* Under db_mu: logs written by the current transaction, and its last
     * cursor write per region (earlier ones are not executed). */
    struct rtmd_list w_touched;
    uint64_t w_max_seq;
    const struct op *w_last_cursor[RTMD_REGIONS_MAX];
};

struct app_state {
    const struct rtmd_app *app;
    int64_t key; /* the app's key in the message tables */
    struct log_state logs[RTMD_EVLOG_KINDS];
    struct rtmd_ratelimit rate[RTMD_RATE_BUCKETS];
};

enum op_kind {
    OP_PRESENCE,
    OP_CURSOR,
    OP_HISTORY_PUT,
    OP_HISTORY_QUERY,
    OP_HISTORY_COUNT,
    OP_OFFLINE_PUT,
    OP_OFFLINE_TAKE,
    OP_PRUNE,
    OP_OUTBOX_READ,
    OP_OUTBOX_MESSAGE
};

struct item {
    enum rtmd_event_type type;
    bool noop;               /* set by the worker: this Leave/Logout ended nothing, no event */
    struct rtmd_str uid;     /* bytes in the op's arena */
    struct rtmd_str channel; /* JOIN and LEAVE */
    uint64_t ms;
    struct rtmd_evrec *rec; /* the event; the op owns one reference (NULL: moved to an owed op) */
};

/* One call waiting for a commit. One allocation: header, then items (a
 * presence op), records and views (a pull) or recipients (a history put),
 * then string bytes. */
struct op {
    struct rtmd_list link; /* batch, inbox, outbox or done */
    enum op_kind kind;
    int status;            /* set by the worker */
    int32_t session_delta; /* set by the worker: sessions begun - ended */
    bool owed;             /* records the worker owes (no caller waits): see "Failed writes" */
    bool held;             /* set by the worker: not run in this transaction (records owed) */
    struct app_state *app;
    rtmd_store_cb cb;
    rtmd_store_pull_cb pull_cb;
    void *arg;
    size_t n; /* items, or records pulled */
    /* OP_CURSOR */
    enum rtmd_evlog_kind log;
    uint32_t region;
    uint64_t from_seq;      /* read position before this pull */
    uint64_t seq;           /* read position after it */
    uint64_t dropped;       /* a pull with after: rtmd_event_batch.dropped */
    struct rtmd_buf joined; /* the pulled events, comma-separated */
    /* Message ops: strings point into the op's own bytes. */
    rtmd_store_messages_cb messages_cb;
    rtmd_store_count_cb count_cb;
    rtmd_store_outbox_cb outbox_cb;
    union {
        struct {
            struct rtmd_message m;
            const struct rtmd_str *recipients;
            size_t n_recipients;
        } put; /* OP_HISTORY_PUT */
        struct {
            struct rtmd_history_query q;
            uint64_t min_ms; /* retention cut-off at the call */
            uint64_t count;  /* set by the worker */
        } query;             /* OP_HISTORY_QUERY, OP_HISTORY_COUNT */
        struct {
            struct rtmd_message m;
            uint32_t max;
            uint32_t dropped; /* set by the worker */
            uint64_t expire_ms;
            uint64_t now;
        } offline; /* OP_OFFLINE_PUT */
        struct {
            struct rtmd_str uid;
            uint64_t now;
        } take; /* OP_OFFLINE_TAKE */
        struct {
            struct rtmd_str hook; /* the webhook's name, in the op's bytes */
            uint32_t max;         /* rows at most */
            uint64_t ack;         /* first the hook's position moves to this (0: stays) */
            uint64_t prune_upto;  /* and rows up to this id go (every hook passed them) */
            /* read, set by the worker: rows (views into op->joined once done) */
            struct rtmd_outbox_row *rows;
            size_t n;
            uint64_t position, newest;
            /* OP_OUTBOX_MESSAGE: the event, in the op's bytes */
            struct rtmd_str json;
            uint64_t ms;
        } outbox; /* OP_OUTBOX_READ, OP_OUTBOX_MESSAGE */
        struct {
            uint64_t before_ms; /* history older than this goes */
            uint64_t now;       /* offline messages expired by this go */
            /* Set by the worker. */
            uint64_t messages, inbox, offline;
            uint32_t steps;
        } prune; /* OP_PRUNE */
    } u;
    struct rtmd_msgdb_rows rows; /* query and take results, set by the worker */
    struct item items[];
};

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_EVENT_INSERT,
    ST_EVENT_TRIM,
    ST_SESSION_INSERT,
    ST_SESSION_UPDATE,
    ST_SESSION_DELETE,
    ST_MEMBERS_CLEAR,
    ST_MEMBER_INSERT,
    ST_MEMBER_DELETE,
    ST_CURSOR_PUT,
    ST_SYNC_FULL,
    ST_SYNC_NORMAL,
    ST_PROBE,
    ST_OUTBOX_INSERT, /* the outbox's statements, from here on: prepared with its tables */
    ST_OUTBOX_START,
    ST_OUTBOX_POSITION,
    ST_OUTBOX_READ,
    ST_OUTBOX_ACK,
    ST_OUTBOX_PRUNE,
    ST_OUTBOX_NEWEST,
    ST_COUNT
};

#define ST_BASE_COUNT ST_OUTBOX_INSERT /* statements prepared at open */

#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x)

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_EVENT_INSERT] = "INSERT INTO events(app,kind,seq,json,session) VALUES(?1,?2,?3,?4,?5)",
    [ST_EVENT_TRIM] = "DELETE FROM events WHERE app=?1 AND kind=?2 AND seq<=?3",
    [ST_SESSION_INSERT] =
        "INSERT OR IGNORE INTO sessions(app,uid,node,login_ms,session) VALUES(?1,?2,?3,?4,?5)",
    [ST_SESSION_UPDATE] =
        "UPDATE sessions SET node=?3, login_ms=?4, session=?5 WHERE app=?1 AND uid=?2",
    [ST_SESSION_DELETE] = "DELETE FROM sessions WHERE app=?1 AND uid=?2",
    [ST_MEMBERS_CLEAR] = "DELETE FROM memberships WHERE app=?1 AND uid=?2",
    [ST_MEMBER_INSERT] =
        "INSERT OR IGNORE INTO memberships(app,uid,channel,since) VALUES(?1,?2,?3,?4)",
    [ST_MEMBER_DELETE] = "DELETE FROM memberships WHERE app=?1 AND uid=?2 AND channel=?3",
    [ST_CURSOR_PUT] = ("INSERT INTO cursors(app,kind,region,seq) VALUES(?1,?2,?3,?4)"
                       " ON CONFLICT(app,kind,region) DO UPDATE SET seq=excluded.seq"),
    [ST_SYNC_FULL] = "PRAGMA synchronous=FULL",
    [ST_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
    /* A write of one page that changes nothing (see "Failed writes"). */
    [ST_PROBE] = "PRAGMA user_version=" STRINGIFY(SCHEMA_VERSION),
    [ST_OUTBOX_INSERT] =
        "INSERT INTO webhook_outbox(app,kind,seq,ms,json,session) VALUES(?1,?2,?3,?4,?5,?6)",
    /* A webhook seen for the first time starts after what the outbox holds. */
    [ST_OUTBOX_START] = "INSERT OR IGNORE INTO webhook_positions(hook,id)"
                        " VALUES(?1,(SELECT COALESCE(MAX(id),0) FROM webhook_outbox))",
    [ST_OUTBOX_POSITION] = "SELECT id FROM webhook_positions WHERE hook=?1",
    [ST_OUTBOX_READ] = "SELECT id,app,kind,seq,ms,json,session FROM webhook_outbox WHERE id>?1"
                       " ORDER BY id LIMIT ?2",
    [ST_OUTBOX_ACK] = "UPDATE webhook_positions SET id=?2 WHERE hook=?1 AND id<?2",
    [ST_OUTBOX_PRUNE] = "DELETE FROM webhook_outbox WHERE id<=?1",
    [ST_OUTBOX_NEWEST] = "SELECT seq FROM sqlite_sequence WHERE name='webhook_outbox'",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS events(app TEXT NOT NULL, kind INTEGER NOT NULL,"
    " seq INTEGER NOT NULL, json TEXT NOT NULL, session TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY(app,kind,seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS cursors(app TEXT NOT NULL, kind INTEGER NOT NULL,"
    " region TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(app,kind,region)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS sessions(app TEXT NOT NULL, uid TEXT NOT NULL,"
    " node INTEGER NOT NULL, login_ms INTEGER NOT NULL, session TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY(app,uid)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS memberships(app TEXT NOT NULL, uid TEXT NOT NULL,"
    " channel TEXT NOT NULL, since INTEGER NOT NULL, PRIMARY KEY(app,uid,channel)) WITHOUT ROWID;";

/* Webhooks (docs/WEBHOOKS.md): every event some webhook wants, written in
 * the transaction of the event itself; AUTOINCREMENT so an id is never
 * reused, even once the table was emptied. Made the first time a webhook
 * needs them (outbox_tables), so a database never used with webhooks keeps
 * the schema it had. */
static const char outbox_sql[] =
    "CREATE TABLE IF NOT EXISTS webhook_outbox(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " app TEXT NOT NULL, kind INTEGER NOT NULL, seq INTEGER NOT NULL, ms INTEGER NOT NULL,"
    " json TEXT NOT NULL, session TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS webhook_positions(hook TEXT PRIMARY KEY, id INTEGER NOT NULL)"
    " WITHOUT ROWID;";

struct embedded {
    struct rtmd_store base;
    const struct rtmd_config *cfg;
    int lock_fd; /* data_dir/rtmd.lock, flock()ed; -1 */
    uv_loop_t *loop;
    struct app_state **apps; /* by rtmd_app.index; grown by add_app (a reload), never moved */
    size_t n_apps;

    /* Loop thread. */
    struct rtmd_list batch; /* ops made during this iteration */
    struct rtmd_list done;  /* completed ops not yet called back */
    size_t pending;         /* ops (events, cursors) submitted, not called back */
    struct rtmd_loop_hook hook;
    uv_async_t async;
    struct rtmd_buf scratch;
    char node[RTMD_NODE_ID_MAX]; /* the NODE of session_ids */
    bool closing;
    bool finishing;
    struct rtmd_deferred finish;
    rtmd_store_cb close_cb;
    void *close_arg;
    int open_handles; /* async and timer, until both close callbacks ran */
    bool async_ref;   /* the async handle keeps the loop alive */
    uint64_t recorded[RTMD_EVLOG_KINDS];
    uint64_t sessions;
    uv_timer_t prune_timer;
    bool prune_inflight;  /* a prune op is queued or running */
    uint64_t prune_steps; /* prune transactions done (tests, logs) */
    struct rtmd_handles handles;
    uint64_t history_kept;
    uint64_t offline_kept;
    uint64_t offline_dropped;
    void (*outbox_notify)(void *ctx, uint64_t newest); /* events entered the outbox */
    void *outbox_ctx;
    bool outbox_new; /* since the last notify */

    size_t batch_n;   /* ops in batch */
    bool batch_other; /* batch holds an op other than a cursor write */

    /* Shared, under mu. */
    uv_mutex_t mu;
    uv_cond_t cond;
    struct rtmd_list inbox;
    struct rtmd_list outbox;
    bool stop;
    bool prune_halt;      /* closing: end the running prune after its step */
    uint32_t prune_batch; /* rows per prune transaction (PRUNE_BATCH_ROWS) */
    uint64_t commits;
    uint64_t commit_ops;
    struct rtmd_histogram commit_duration; /* BEGIN to COMMIT done, fsync included */
    uint64_t history_pruned;
    bool checkpoint_due;   /* the loop committed and the WAL is long */
    int loop_failed;       /* a commit on the loop failed with this status */
    uint64_t owed_records; /* copies of the worker's state, for stats */
    /* Log kinds (bit 1 << kind) some webhook wants: their events also go
     * into the outbox. Set by the loop (outbox_watch), read by the worker. */
    _Atomic uint32_t outbox_kinds;
    /* The newest outbox id committed (the worker writes it after a commit;
     * the loop passes it to notify). */
    _Atomic uint64_t outbox_newest;
    int write_error;

    /* Worker thread. */
    uv_thread_t thread;
    /* Worker thread only: failed writes (see "Failed writes"). */
    struct rtmd_list w_owed; /* owed ops, oldest first */
    uint64_t w_owed_n;       /* records (items) in them */
    bool w_failing;          /* a write failed and none has committed since */
    int w_error;             /* the status it failed with */
    uint64_t w_retry_at;     /* uv_hrtime() of the next retry or probe */
    uint32_t w_backoff_ms;   /* the wait before it */
    bool w_last_tried;       /* stopping: the last attempt was made */

    /* The connection and what goes with it, under db_mu (open() and close
     * run without it: no other thread is there). */
    uv_mutex_t db_mu;
    bool db_on_loop;        /* the loop thread runs this transaction */
    bool wal_long;          /* a commit left WAL_CHECKPOINT_PAGES or more in the WAL */
    bool w_sync_full;       /* the connection's synchronous level is FULL now */
    bool outbox_ready;      /* the outbox's tables and statements exist (outbox_tables) */
    uint64_t w_outbox_last; /* the id of the last outbox row written */
    int db_status;          /* the status of the last failed transaction */
    bool db_wrote;          /* set by on_wal: a commit wrote pages to the WAL */
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT];
    struct rtmd_msgdb msgdb;
    struct rtmd_list w_touched;
};

/* Deferred completion of a rate check or an empty pull. */
struct quick {
    struct rtmd_deferred d;
    rtmd_store_cb cb;
    rtmd_store_pull_cb pull_cb;
    void *arg;
    int status;
};

/* Deferred completion of a handle put (put_cb, handle) or take (take_cb;
 * entry, or NULL for -ENOENT). */
struct handle_done {
    struct rtmd_deferred d;
    rtmd_store_handle_cb put_cb;
    rtmd_store_query_cb take_cb;
    void *arg;
    struct rtmd_handle *entry;
    char handle[RTMD_HANDLE_LEN + 1];
};

/* Moves every node of from to the tail of to. */
static void list_splice_tail(struct rtmd_list *to, struct rtmd_list *from)
{
    if (rtmd_list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    rtmd_list_init(from);
}

static struct embedded *from_base(struct rtmd_store *s)
{
    return (struct embedded *)s;
}

static struct app_state *app_state(struct embedded *s, const struct rtmd_app *app)
{
    if (!app || app->index >= s->n_apps)
        return NULL;
    struct app_state *as = s->apps[app->index];
    if (as->app != app && strcmp(as->app->id, app->id) != 0)
        return NULL;
    return as;
}

/* ---- SQLite helpers (open() and the worker) ---- */

static int db_fail(struct embedded *s, const char *what)
{
    rtmd_log_error(MODULE, "%s: %s", what, sqlite3_errmsg(s->db));
    return RTMD_ESTORE;
}

/* Steps a statement that returns no rows and resets it; SQLITE_DONE → 0. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : rc;
}

static void bind_str(sqlite3_stmt *st, int i, struct rtmd_str v)
{
    sqlite3_bind_text(st, i, v.p, (int)v.len, SQLITE_STATIC);
}

static void bind_app(sqlite3_stmt *st, const struct app_state *as)
{
    sqlite3_bind_text(st, 1, as->app->id, -1, SQLITE_STATIC);
}

static int trim_log(struct embedded *s, const struct app_state *as, int kind, uint64_t max_seq)
{
    uint32_t retain = as->logs[kind].log.retain;
    if (max_seq <= retain)
        return 0;
    sqlite3_stmt *st = s->stmt[ST_EVENT_TRIM];
    bind_app(st, as);
    sqlite3_bind_int(st, 2, kind);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)(max_seq - retain));
    return run(st);
}

static void db_close(struct embedded *s)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(s->stmt[i]);
        s->stmt[i] = NULL;
    }
    rtmd_msgdb_finalize(&s->msgdb);
    if (s->db)
        sqlite3_close(s->db);
    s->db = NULL;
}

/* ---- the worker ---- */

/* Inserts the item's event into its log and notes the log for the trim. */
/* The event's outbox row, when some webhook wants its kind (same
 * transaction as the event: an acknowledged event is in the outbox). */
static int outbox_put(struct embedded *s, const struct app_state *as, int kind, uint64_t seq,
                      uint64_t ms, struct rtmd_str json, struct rtmd_str session)
{
    if (!(atomic_load_explicit(&s->outbox_kinds, memory_order_relaxed) & (1u << kind)) ||
        !s->outbox_ready)
        return 0; /* not wanted; or wanted since this transaction began (not yet made) */
    sqlite3_stmt *st = s->stmt[ST_OUTBOX_INSERT];
    bind_app(st, as);
    sqlite3_bind_int(st, 2, kind);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)seq);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)ms);
    bind_str(st, 5, json);
    bind_str(st, 6, session);
    int rc = run(st);
    if (rc == 0)
        s->w_outbox_last = (uint64_t)sqlite3_last_insert_rowid(s->db);
    return rc;
}

static int insert_event(struct embedded *s, struct app_state *as, const struct item *it)
{
    int kind = (int)rtmd_event_log_kind(it->type);
    sqlite3_stmt *st = s->stmt[ST_EVENT_INSERT];
    int rc;
    bind_app(st, as);
    sqlite3_bind_int(st, 2, kind);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)it->rec->seq);
    sqlite3_bind_text(st, 4, it->rec->json, (int)it->rec->len, SQLITE_STATIC);
    bind_str(st, 5, rtmd_evrec_session(it->rec));
    if ((rc = run(st)))
        return rc;
    if ((rc = outbox_put(s, as, kind, it->rec->seq, it->ms, rtmd_evrec_str(it->rec),
                         rtmd_evrec_session(it->rec))))
        return rc;
    struct log_state *ls = &as->logs[kind];
    ls->w_max_seq = it->rec->seq;
    if (!rtmd_list_linked(&ls->w_touched))
        rtmd_list_insert_tail(&s->w_touched, &ls->w_touched);
    return 0;
}

/* One presence change and its event. A Leave or a Logout that finds nothing
 * to end (no membership or session row: its Join or Login was never
 * recorded) records no event: it->noop. */
static int exec_item(struct embedded *s, struct op *op, struct item *it)
{
    struct app_state *as = op->app;
    sqlite3_stmt *st;
    int rc;

    it->noop = false;
    switch (it->type) {
    case RTMD_EVENT_LOGIN:
        if ((rc = insert_event(s, as, it)))
            return rc;
        /* A new session starts with no channels. */
        st = s->stmt[ST_MEMBERS_CLEAR];
        bind_app(st, as);
        bind_str(st, 2, it->uid);
        if ((rc = run(st)))
            return rc;
        st = s->stmt[ST_SESSION_INSERT];
        bind_app(st, as);
        bind_str(st, 2, it->uid);
        sqlite3_bind_int64(st, 3, s->cfg->node_id);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)it->ms);
        bind_str(st, 5, rtmd_evrec_session(it->rec));
        if ((rc = run(st)))
            return rc;
        if (sqlite3_changes(s->db) > 0) {
            op->session_delta++;
            return 0;
        }
        st = s->stmt[ST_SESSION_UPDATE];
        bind_app(st, as);
        bind_str(st, 2, it->uid);
        sqlite3_bind_int64(st, 3, s->cfg->node_id);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)it->ms);
        bind_str(st, 5, rtmd_evrec_session(it->rec));
        return run(st);
    case RTMD_EVENT_LOGOUT:
        st = s->stmt[ST_SESSION_DELETE];
        bind_app(st, as);
        bind_str(st, 2, it->uid);
        if ((rc = run(st)))
            return rc;
        if (sqlite3_changes(s->db) > 0)
            op->session_delta--;
        else
            it->noop = true;
        st = s->stmt[ST_MEMBERS_CLEAR];
        bind_app(st, as);
        bind_str(st, 2, it->uid);
        if ((rc = run(st)))
            return rc;
        return it->noop ? 0 : insert_event(s, as, it);
    case RTMD_EVENT_JOIN:
        if ((rc = insert_event(s, as, it)))
            return rc;
        st = s->stmt[ST_MEMBER_INSERT];
        bind_app(st, as);
        bind_str(st, 2, it->uid);
        bind_str(st, 3, it->channel);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)it->rec->seq);
        return run(st);
    case RTMD_EVENT_LEAVE:
        st = s->stmt[ST_MEMBER_DELETE];
        bind_app(st, as);
        bind_str(st, 2, it->uid);
        bind_str(st, 3, it->channel);
        if ((rc = run(st)))
            return rc;
        it->noop = sqlite3_changes(s->db) == 0;
        return it->noop ? 0 : insert_event(s, as, it);
    }
    return SQLITE_MISUSE;
}

static int query_int(struct embedded *s, sqlite3_stmt *st, int64_t *out);

/* A webhook's position (created after the rows already there when the
 * webhook is new) moves to ack, never back; rows every webhook passed go. */
static int outbox_ack(struct embedded *s, struct op *op)
{
    if (!s->outbox_ready)
        return SQLITE_ERROR; /* its tables could not be made (logged) */
    sqlite3_stmt *st = s->stmt[ST_OUTBOX_START];
    bind_str(st, 1, op->u.outbox.hook);
    int rc = run(st);
    if (rc)
        return rc;
    if (!op->u.outbox.ack)
        return 0;
    st = s->stmt[ST_OUTBOX_ACK];
    bind_str(st, 1, op->u.outbox.hook);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)op->u.outbox.ack);
    if ((rc = run(st)))
        return rc;
    if (!op->u.outbox.prune_upto)
        return 0;
    st = s->stmt[ST_OUTBOX_PRUNE];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)op->u.outbox.prune_upto);
    return run(st);
}

/* A webhook's next rows: up to max after its position (a webhook seen for
 * the first time starts after the rows already there). Row bytes go to
 * op->joined; the views are made on the loop (complete_outbox). */
static int outbox_read(struct embedded *s, struct op *op)
{
    int rc = outbox_ack(s, op);
    if (rc)
        return rc;
    sqlite3_stmt *st = s->stmt[ST_OUTBOX_POSITION];
    bind_str(st, 1, op->u.outbox.hook);
    int64_t from = 0, newest = 0;
    if ((rc = query_int(s, st, &from)) || (rc = query_int(s, s->stmt[ST_OUTBOX_NEWEST], &newest)))
        return rc;
    op->u.outbox.position = (uint64_t)from;
    op->u.outbox.newest = (uint64_t)RTMD_MAX(from, newest);
    st = s->stmt[ST_OUTBOX_READ];
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int64(st, 2, op->u.outbox.max);
    op->u.outbox.rows = rtmd_calloc(op->u.outbox.max, sizeof(*op->u.outbox.rows));
    rtmd_buf_init(&op->joined, SIZE_MAX);
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < op->u.outbox.max) {
        struct rtmd_outbox_row *r = &op->u.outbox.rows[n++];
        r->id = (uint64_t)sqlite3_column_int64(st, 0);
        r->kind = sqlite3_column_int(st, 2);
        r->seq = r->kind == RTMD_OUTBOX_MESSAGES ? r->id : (uint64_t)sqlite3_column_int64(st, 3);
        r->ms = (uint64_t)sqlite3_column_int64(st, 4);
        /* Offsets into joined for now (it may move while it grows). */
        static const int cols[3] = {1, 5, 6};
        struct rtmd_str *out[3] = {&r->app, &r->json, &r->session};
        for (int c = 0; c < 3; c++) {
            const char *t = (const char *)sqlite3_column_text(st, cols[c]);
            size_t len = (size_t)sqlite3_column_bytes(st, cols[c]);
            out[c]->p = (const char *)(uintptr_t)op->joined.len;
            out[c]->len = len;
            rtmd_buf_append(&op->joined, t ? t : "", len);
        }
    }
    sqlite3_reset(st);
    op->u.outbox.n = n;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : rc;
}

/* A read that fails fails alone, unless SQLite ended the transaction. */
static int read_failed(struct embedded *s, struct op *op, int rc, const char *what)
{
    rtmd_log_error(MODULE, "%s failed: %s (%d)", what, sqlite3_errmsg(s->db), rc);
    op->status = RTMD_ESTORE;
    return sqlite3_get_autocommit(s->db) ? rc : 0;
}

static int exec_op(struct embedded *s, struct op *op)
{
    int rc;
    struct rtmd_msgdb *m = &s->msgdb;
    switch (op->kind) {
    case OP_PRESENCE:
        for (size_t i = 0; i < op->n; i++)
            if (op->items[i].rec && (rc = exec_item(s, op, &op->items[i])))
                return rc;
        return 0;
    case OP_CURSOR: {
        if (op->app->logs[op->log].w_last_cursor[op->region] != op)
            return 0; /* a later pull of this region in this transaction writes its position */
        sqlite3_stmt *st = s->stmt[ST_CURSOR_PUT];
        bind_app(st, op->app);
        sqlite3_bind_int(st, 2, (int)op->log);
        sqlite3_bind_text(st, 3, s->cfg->regions[op->region], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)op->seq);
        return run(st);
    }
    case OP_HISTORY_PUT:
        return rtmd_msgdb_history_put(m, op->app->key, &op->u.put.m, op->u.put.recipients,
                                      op->u.put.n_recipients);
    case OP_HISTORY_QUERY:
        rc = rtmd_msgdb_history_query(m, op->app->key, &op->u.query.q, op->u.query.min_ms,
                                      &op->rows);
        return rc ? read_failed(s, op, rc, "history query") : 0;
    case OP_HISTORY_COUNT:
        rc = rtmd_msgdb_history_count(m, op->app->key, &op->u.query.q, op->u.query.min_ms,
                                      &op->u.query.count);
        return rc ? read_failed(s, op, rc, "history count") : 0;
    case OP_OFFLINE_PUT:
        return rtmd_msgdb_offline_put(m, op->app->key, &op->u.offline.m, op->u.offline.max,
                                      op->u.offline.expire_ms, op->u.offline.now,
                                      &op->u.offline.dropped);
    case OP_OFFLINE_TAKE:
        return rtmd_msgdb_offline_take(m, op->app->key, op->u.take.uid, op->u.take.now, &op->rows);
    case OP_PRUNE: break; /* never part of a group commit */
    case OP_OUTBOX_READ:
        rc = outbox_read(s, op);
        return rc ? read_failed(s, op, rc, "webhook outbox read") : 0;
    case OP_OUTBOX_MESSAGE:
        return outbox_put(s, op->app, RTMD_OUTBOX_MESSAGES, 0, op->u.outbox.ms, op->u.outbox.json,
                          rtmd_str_make("", 0));
    }
    return SQLITE_MISUSE;
}

/* Units an op counts in pending, commit_ops and the completion budget. */
static size_t op_units(const struct op *op)
{
    return op->kind == OP_PRESENCE ? op->n : 1;
}

/*
 * With sync=full, a transaction that holds only read positions (pulls) and
 * reads is committed without an fsync (synchronous=NORMAL, WAL): it still
 * survives kill -9 (the OS has it), and the next fsynced commit makes it
 * durable against power loss too, in order. What a power cut can cost is a
 * read position of the last moments: those events are answered again after
 * the restart, never lost. Events, sessions and kept messages always commit
 * with an fsync. Measured: the fsync was 12% of a 100-event pull.
 */
static void set_sync_for(struct embedded *s, const struct rtmd_list *work)
{
    if (s->cfg->sync != RTMD_SYNC_FULL)
        return;
    bool full = false;
    const struct rtmd_list *n;
    for (n = work->next; n != work && !full; n = n->next) {
        const struct op *op = RTMD_CONTAINER_OF(n, struct op, link);
        /* Webhook positions are read positions too: a lost one delivers a
         * batch again, never loses one. */
        full = !(op->kind == OP_CURSOR || op->kind == OP_HISTORY_QUERY ||
                 op->kind == OP_HISTORY_COUNT || op->kind == OP_OUTBOX_READ);
    }
    if (full != s->w_sync_full && run(s->stmt[full ? ST_SYNC_FULL : ST_SYNC_NORMAL]) == 0)
        s->w_sync_full = full;
}

/* Notes (or, with forget, clears) the last cursor write of each log and
 * region in work: only that one is executed. Concurrent pullers of one app and
 * region (a vendor's pool of workers) share one row write per commit. */
static void mark_last_cursors(struct rtmd_list *work, bool forget)
{
    struct rtmd_list *n;
    for (n = work->next; n != work; n = n->next) {
        const struct op *op = RTMD_CONTAINER_OF(n, struct op, link);
        if (op->kind == OP_CURSOR)
            op->app->logs[op->log].w_last_cursor[op->region] = forget ? NULL : op;
    }
}

/* The status a failed transaction gives its ops: -ENOSPC when the data
 * directory is full (SQLITE_FULL, or an I/O error with ENOSPC or EDQUOT),
 * RTMD_ESTORE for anything else. Called before the rollback. */
static int failure_status(struct embedded *s, int rc)
{
    int sys = (rc & 0xff) == SQLITE_IOERR ? sqlite3_system_errno(s->db) : 0;
    if ((rc & 0xff) == SQLITE_FULL || sys == ENOSPC || sys == EDQUOT)
        return -ENOSPC;
    return RTMD_ESTORE;
}

/* Errors that the same transaction may not meet again later. */
static bool transient(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_NOMEM:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL: return true;
    default: return false;
    }
}

/* Runs every op of work but the held ones in one transaction and sets each
 * one's status. Returns 0, or the SQLite error that failed the transaction
 * (rolled back: every op that ran fails). *n_ops: the ops (events, cursor
 * writes, message ops) committed — all that ran, or 0. */
static int outbox_tables(struct embedded *s);

/* Whether work needs the outbox's tables: a webhook wants some kind, or
 * work reads the outbox. */
static bool outbox_needed(struct embedded *s, const struct rtmd_list *work)
{
    if (atomic_load_explicit(&s->outbox_kinds, memory_order_relaxed))
        return true;
    for (const struct rtmd_list *n = work->next; n != work; n = n->next)
        if (RTMD_CONTAINER_OF(n, struct op, link)->kind == OP_OUTBOX_READ)
            return true;
    return false;
}

static int run_transaction(struct embedded *s, struct rtmd_list *work, uint64_t *n_ops)
{
    uint64_t n_run = 0;
    struct rtmd_list *n, *tmp;
    const char *what = "begin";
    uint64_t start_ns = uv_hrtime();
    set_sync_for(s, work);
    mark_last_cursors(work, false);
    if (!s->outbox_ready && outbox_needed(s, work))
        outbox_tables(s); /* on failure, logged; outbox reads fail, events skip the outbox */
    int rc = run(s->stmt[ST_BEGIN]);

    rtmd_list_foreach_safe(n, tmp, work)
    {
        struct op *op = RTMD_CONTAINER_OF(n, struct op, link);
        if (op->held)
            continue;
        op->session_delta = 0;
        op->status = 0;
        n_run += op_units(op);
        if (rc == 0) {
            what = "write";
            rc = exec_op(s, op);
        }
    }
    while (rc == 0 && !rtmd_list_empty(&s->w_touched)) {
        struct log_state *ls = RTMD_CONTAINER_OF(s->w_touched.next, struct log_state, w_touched);
        rtmd_list_remove(&ls->w_touched);
        what = "trim";
        rc = trim_log(s, ls->app, ls->kind, ls->w_max_seq);
    }
    if (rc == 0) {
        what = "commit";
        rc = run(s->stmt[ST_COMMIT]);
    }
    mark_last_cursors(work, true);
    *n_ops = rc ? 0 : n_run;
    if (rc == 0) {
        uint64_t ns = uv_hrtime() - start_ns;
        atomic_store_explicit(&s->outbox_newest, s->w_outbox_last, memory_order_relaxed);
        uv_mutex_lock(&s->mu);
        rtmd_histogram_observe(&s->commit_duration, ns);
        uv_mutex_unlock(&s->mu);
        return 0;
    }
    int status = s->db_status = failure_status(s, rc);
    rtmd_log_error(MODULE, "%s failed, %llu ops not recorded: %s (%d)", what,
                   (unsigned long long)n_run, sqlite3_errmsg(s->db), rc);
    if (!sqlite3_get_autocommit(s->db))
        run(s->stmt[ST_ROLLBACK]);
    while (!rtmd_list_empty(&s->w_touched))
        rtmd_list_remove(s->w_touched.next);
    /* Every op fails, reads too: they may have seen the lost writes. */
    rtmd_list_foreach_safe(n, tmp, work)
    {
        struct op *op = RTMD_CONTAINER_OF(n, struct op, link);
        if (op->held)
            continue;
        op->status = status;
        op->session_delta = 0;
        rtmd_msgdb_rows_free(&op->rows);
    }
    return rc;
}

/* One prune transaction of at most budget deleted rows. Returns true when
 * more expired rows may remain. */
static bool prune_step(struct embedded *s, struct op *op, uint32_t budget)
{
    struct rtmd_msgdb_pruned p;
    memset(&p, 0, sizeof(p));
    const char *what = "begin";
    int rc = run(s->stmt[ST_BEGIN]);
    if (rc == 0) {
        what = "delete";
        rc = rtmd_msgdb_prune(&s->msgdb, op->u.prune.before_ms, op->u.prune.now, budget, &p);
    }
    if (rc == 0) {
        what = "commit";
        rc = run(s->stmt[ST_COMMIT]);
    }
    if (rc != 0) {
        rtmd_log_error(MODULE, "prune: %s failed: %s (%d)", what, sqlite3_errmsg(s->db), rc);
        if (!sqlite3_get_autocommit(s->db))
            run(s->stmt[ST_ROLLBACK]);
        return false;
    }
    op->u.prune.messages += p.messages;
    op->u.prune.inbox += p.inbox;
    op->u.prune.offline += p.offline;
    op->u.prune.steps++;
    uv_mutex_lock(&s->mu);
    s->history_pruned += p.messages;
    uv_mutex_unlock(&s->mu);
    return p.more;
}

/* Hands done (may be empty) to the loop, with the failure state for stats
 * (see "Failed writes"): owed records that committed are in the outbox by
 * the time stats say none are owed. commits and n_ops count what
 * committed. */
static void post(struct embedded *s, struct rtmd_list *done, uint32_t commits, uint64_t n_ops)
{
    bool wake = !rtmd_list_empty(done);
    uv_mutex_lock(&s->mu);
    list_splice_tail(&s->outbox, done);
    s->commits += commits;
    s->commit_ops += n_ops;
    s->owed_records = s->w_owed_n;
    s->write_error = s->w_failing ? s->w_error : 0;
    uv_mutex_unlock(&s->mu);
    if (wake)
        uv_async_send(&s->async);
}

/* ---- failed writes: owed records, retries, the probe (worker) ---- */

static bool ends_something(enum rtmd_event_type type)
{
    return type == RTMD_EVENT_LEAVE || type == RTMD_EVENT_LOGOUT;
}

/* Moves the Leaves and Logouts of op (failed, or held back) into a new owed
 * op at the tail of w_owed: their strings copied, their event records moved.
 * op then completes with -EINPROGRESS if that was all of it; with a Login or
 * a Join in it, it keeps its failure. */
static void owe(struct embedded *s, struct op *op)
{
    size_t n = 0, bytes = 0;
    for (size_t i = 0; i < op->n; i++) {
        const struct item *it = &op->items[i];
        if (it->rec && ends_something(it->type)) {
            n++;
            bytes += it->uid.len + it->channel.len;
        }
    }
    if (n == 0)
        return;
    struct op *o = rtmd_malloc(sizeof(*o) + n * sizeof(struct item) + bytes);
    memset(o, 0, sizeof(*o));
    o->kind = OP_PRESENCE;
    o->app = op->app;
    o->owed = true;
    o->n = n;
    char *at = (char *)&o->items[n];
    size_t k = 0;
    for (size_t i = 0; i < op->n; i++) {
        struct item *it = &op->items[i];
        if (!it->rec || !ends_something(it->type))
            continue;
        struct item *to = &o->items[k++];
        *to = *it;
        to->noop = false;
        memcpy(at, it->uid.p, it->uid.len);
        to->uid = rtmd_str_make(at, it->uid.len);
        at += it->uid.len;
        if (it->channel.len) {
            memcpy(at, it->channel.p, it->channel.len);
            to->channel = rtmd_str_make(at, it->channel.len);
            at += it->channel.len;
        }
        it->rec = NULL;
    }
    rtmd_list_insert_tail(&s->w_owed, &o->link);
    s->w_owed_n += n;
    if (n == op->n)
        op->status = -EINPROGRESS;
}

/* Records are owed: the presence ops of work are not run (Logins and Joins
 * fail with the last error, Leaves and Logouts are owed after the others).
 * Returns how many ops are left to run. */
static size_t hold_back(struct embedded *s, struct rtmd_list *work)
{
    size_t left = 0;
    struct rtmd_list *n;
    for (n = work->next; n != work; n = n->next) {
        struct op *op = RTMD_CONTAINER_OF(n, struct op, link);
        if (op->kind != OP_PRESENCE) {
            left++;
            continue;
        }
        op->held = true;
        op->status = s->w_error;
        op->session_delta = 0;
        owe(s, op);
    }
    return left;
}

static void retry_in(struct embedded *s, uint32_t ms)
{
    s->w_backoff_ms = ms;
    s->w_retry_at = uv_hrtime() + (uint64_t)ms * 1000000u;
}

/* A write failed with status: the first failure starts the retries. */
static void write_failing(struct embedded *s, int status)
{
    s->w_error = status;
    if (s->w_failing)
        return;
    s->w_failing = true;
    retry_in(s, RETRY_FIRST_MS);
    rtmd_log_warn(MODULE,
                  "writes fail (%s): Logins and Joins fail, Leaves and Logouts are kept, "
                  "until a retry commits",
                  rtmd_strerror(status));
}

/* A transaction of work failed with status: its Leaves and Logouts become
 * owed. */
static void write_failed(struct embedded *s, struct rtmd_list *work, int status)
{
    struct rtmd_list *n;
    for (n = work->next; n != work; n = n->next) {
        struct op *op = RTMD_CONTAINER_OF(n, struct op, link);
        if (op->kind == OP_PRESENCE && !op->held)
            owe(s, op);
    }
    write_failing(s, status);
}

/* A commit wrote pages: the disk takes writes again. */
static void write_committed(struct embedded *s)
{
    if (!s->w_failing)
        return;
    if (rtmd_list_empty(&s->w_owed)) {
        s->w_failing = false;
        rtmd_log_info(MODULE, "writes commit again");
    } else {
        s->w_retry_at = uv_hrtime(); /* the owed records may fit now */
    }
}

/* One page written and committed, nothing changed. */
static int probe(struct embedded *s)
{
    int rc = run(s->stmt[ST_BEGIN]);
    if (rc == 0)
        rc = run(s->stmt[ST_PROBE]);
    if (rc == 0)
        rc = run(s->stmt[ST_COMMIT]);
    if (rc != 0) {
        s->db_status = failure_status(s, rc);
        if (!sqlite3_get_autocommit(s->db))
            run(s->stmt[ST_ROLLBACK]);
    }
    return rc;
}

/* The retry due after a failed write: the owed records alone, in one
 * transaction, or the probe when none are owed. Committed (or dropped) owed
 * ops go to done; *n_ops counts what committed. The failure ends with a
 * commit that wrote pages (owed records that all ended nothing write none). */
static void retry(struct embedded *s, struct rtmd_list *done, uint64_t *n_ops)
{
    uint64_t owed = s->w_owed_n;
    *n_ops = 0;
    s->db_wrote = false;
    int rc = owed ? run_transaction(s, &s->w_owed, n_ops) : probe(s);
    if (rc == 0 && owed) {
        list_splice_tail(done, &s->w_owed);
        s->w_owed_n = 0;
        rtmd_log_info(MODULE, "%llu owed records recorded", (unsigned long long)owed);
    }
    if (rc == 0 && s->db_wrote) {
        s->w_failing = false;
        rtmd_log_info(MODULE, "writes commit again");
        return;
    }
    if (rc != 0) {
        s->w_error = s->db_status;
        if (owed && !transient(rc)) {
            rtmd_log_error(MODULE, "%llu owed Leave/Logout records lost: %s (%d)",
                           (unsigned long long)owed, sqlite3_errstr(rc), rc);
            list_splice_tail(done, &s->w_owed);
            s->w_owed_n = 0;
        }
    }
    retry_in(s, RTMD_MIN(s->w_backoff_ms * 2, (uint32_t)RETRY_MAX_MS));
}

static bool retry_due(const struct embedded *s, uint64_t now)
{
    return s->w_failing && now >= s->w_retry_at;
}

/*
 * The worker: group commits of whatever the inbox holds, and, while a prune
 * op is active, one prune step after each group commit (or whenever the
 * inbox is empty) until nothing expired is left. After a failed write, the
 * retries of owed records (or probes) when due, before anything else.
 */
static void worker_main(void *arg)
{
    struct embedded *s = arg;
    struct rtmd_list work, done;
    struct op *prune = NULL;
    bool prune_due = false; /* a group commit ran since the last prune step */
    rtmd_list_init(&work);
    rtmd_list_init(&done);
    for (;;) {
        uv_mutex_lock(&s->mu);
        uint64_t now = uv_hrtime();
        while (rtmd_list_empty(&s->inbox) && !s->stop && !prune && !s->checkpoint_due &&
               !s->loop_failed && !retry_due(s, now)) {
            if (s->w_failing)
                uv_cond_timedwait(&s->cond, &s->mu, s->w_retry_at - now);
            else
                uv_cond_wait(&s->cond, &s->mu);
            now = uv_hrtime();
        }
        bool stop = s->stop;
        bool halt = s->prune_halt;
        uint32_t budget = s->prune_batch;
        bool take = !rtmd_list_empty(&s->inbox) && !(prune && prune_due);
        bool checkpoint = s->checkpoint_due;
        s->checkpoint_due = false;
        int loop_failed = s->loop_failed;
        s->loop_failed = 0;
        /* Stopping: one last attempt at owed records, and no probe. */
        bool retrying = stop ? !s->w_last_tried && !rtmd_list_empty(&s->w_owed) : retry_due(s, now);
        if (!take && !prune && !checkpoint && !retrying && !loop_failed) {
            uv_mutex_unlock(&s->mu);
            break;
        }
        if (take)
            list_splice_tail(&work, &s->inbox);
        uv_mutex_unlock(&s->mu);

        uint64_t n_ops = 0, n_retried = 0;
        uv_mutex_lock(&s->db_mu);
        if (loop_failed)
            write_failing(s, loop_failed);
        if (checkpoint)
            sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (retrying) {
            s->w_last_tried = stop;
            retry(s, &done, &n_retried);
        }
        if (take) {
            struct rtmd_list *n, *tmp;
            rtmd_list_foreach_safe(n, tmp, &work)
            {
                struct op *op = RTMD_CONTAINER_OF(n, struct op, link);
                if (op->kind != OP_PRUNE)
                    continue;
                rtmd_list_remove(&op->link);
                if (prune)
                    rtmd_list_insert_tail(&done, &op->link); /* one at a time */
                else
                    prune = op;
            }
            size_t left =
                rtmd_list_empty(&s->w_owed) ? !rtmd_list_empty(&work) : hold_back(s, &work);
            if (left) {
                s->db_wrote = false;
                int rc = run_transaction(s, &work, &n_ops);
                if (rc)
                    write_failed(s, &work, s->db_status);
                else if (s->db_wrote)
                    write_committed(s);
            }
            uv_mutex_unlock(&s->db_mu);
            list_splice_tail(&done, &work);
            prune_due = prune != NULL;
        } else if (prune) {
            prune_due = false;
            bool more = !halt && prune_step(s, prune, budget);
            uv_mutex_unlock(&s->db_mu);
            if (!more) {
                rtmd_list_insert_tail(&done, &prune->link);
                prune = NULL;
            }
        } else {
            uv_mutex_unlock(&s->db_mu);
        }
        post(s, &done, (n_ops > 0) + (n_retried > 0), n_ops + n_retried);
    }
    db_close(s);
}

/* ---- loop thread: completions ---- */

static void op_free(struct op *op)
{
    switch (op->kind) {
    case OP_PRESENCE:
        for (size_t i = 0; i < op->n; i++)
            rtmd_evrec_release(op->items[i].rec);
        break;
    case OP_CURSOR: rtmd_buf_free(&op->joined); break;
    case OP_OUTBOX_READ:
        rtmd_buf_free(&op->joined);
        rtmd_free(op->u.outbox.rows);
        break;
    case OP_OUTBOX_MESSAGE: break;
    default: rtmd_msgdb_rows_free(&op->rows); break;
    }
    rtmd_free(op);
}

/* The async handle keeps the loop alive exactly while the worker owes the
 * loop an answer: ops pending or a prune running. */
static void update_ref(struct embedded *s)
{
    bool want = s->pending > 0 || s->prune_inflight;
    if (want == s->async_ref)
        return;
    s->async_ref = want;
    if (want)
        uv_ref((uv_handle_t *)&s->async);
    else
        uv_unref((uv_handle_t *)&s->async);
}

static void pending_add(struct embedded *s, size_t n)
{
    s->pending += n;
    update_ref(s);
}

static void pending_sub(struct embedded *s, size_t n)
{
    s->pending -= n;
    update_ref(s);
}

static void on_finish(struct rtmd_deferred *d);

static void maybe_finish(struct embedded *s)
{
    if (s->closing && s->pending == 0 && !s->prune_inflight && !s->finishing) {
        s->finishing = true;
        rtmd_defer(&s->finish, on_finish);
    }
}

/* A presence op, or an owed op (no callback: the call it came from has
 * completed; status < 0: dropped, see "Failed writes"). */
static void complete_presence(struct embedded *s, struct op *op)
{
    if (op->status == 0) {
        for (size_t i = 0; i < op->n; i++) {
            struct item *it = &op->items[i];
            if (!it->rec || it->noop)
                continue;
            enum rtmd_evlog_kind kind = rtmd_event_log_kind(it->type);
            /* Seqs were reserved in call order and commits complete in call
             * order, so each append is above the log's newest. */
            if (rtmd_evlog_append(&op->app->logs[kind].log, it->rec) == 0)
                it->rec = NULL;
            s->recorded[kind]++;
            if (atomic_load_explicit(&s->outbox_kinds, memory_order_relaxed) & (1u << kind))
                s->outbox_new = true;
        }
        if (op->session_delta < 0 && s->sessions < (uint64_t)-op->session_delta)
            s->sessions = 0;
        else
            s->sessions += (uint64_t)(int64_t)op->session_delta;
    }
    if (op->owed)
        return;
    pending_sub(s, op->n);
    op->cb(op->arg, op->status);
}

static void complete_pull(struct embedded *s, struct op *op)
{
    struct log_state *ls = &op->app->logs[op->log];
    uint32_t r = op->region;
    ls->inflight[r]--;
    if (op->status == 0)
        ls->rewind[r] = NO_REWIND; /* a later position is on disk now */
    else if (op->from_seq < ls->rewind[r])
        ls->rewind[r] = op->from_seq;
    if (ls->inflight[r] == 0 && ls->rewind[r] != NO_REWIND) {
        rtmd_evlog_rewind(&ls->log, r, ls->rewind[r]);
        ls->rewind[r] = NO_REWIND;
    }
    struct rtmd_event_batch batch = {0, RTMD_STR_NULL, 0};
    if (op->status == 0) {
        batch.n = op->n;
        batch.joined = rtmd_str_make(op->joined.data ? op->joined.data : "", op->joined.len);
        batch.dropped = op->dropped;
    }
    pending_sub(s, 1);
    op->pull_cb(op->arg, op->status, &batch);
}

/* Message ops: the callback gets views into op->rows, freed after it. */
static void complete_message(struct embedded *s, struct op *op)
{
    bool ok = op->status == 0;
    pending_sub(s, 1);
    switch (op->kind) {
    case OP_HISTORY_PUT:
        s->history_kept += ok;
        op->cb(op->arg, op->status);
        break;
    case OP_OFFLINE_PUT:
        if (ok) {
            s->offline_kept++;
            s->offline_dropped += op->u.offline.dropped;
        }
        op->cb(op->arg, op->status);
        break;
    case OP_HISTORY_QUERY:
    case OP_OFFLINE_TAKE: {
        struct rtmd_message_batch b = {ok ? op->rows.n : 0, op->rows.messages};
        op->messages_cb(op->arg, op->status, &b);
        break;
    }
    case OP_HISTORY_COUNT: op->count_cb(op->arg, op->status, ok ? op->u.query.count : 0); break;
    default: break;
    }
}

static void complete_outbox(struct embedded *s, struct op *op)
{
    pending_sub(s, 1);
    if (op->kind == OP_OUTBOX_MESSAGE) {
        if (op->status == 0)
            s->outbox_new = true;
        op->cb(op->arg, op->status);
        return;
    }
    size_t n = op->status == 0 ? op->u.outbox.n : 0;
    const char *base = op->joined.data ? op->joined.data : "";
    for (size_t i = 0; i < n; i++) {
        struct rtmd_outbox_row *r = &op->u.outbox.rows[i];
        r->app.p = base + (uintptr_t)r->app.p;
        r->json.p = base + (uintptr_t)r->json.p;
        r->session.p = base + (uintptr_t)r->session.p;
    }
    struct rtmd_outbox_batch b = {op->u.outbox.rows, n, op->u.outbox.position, op->u.outbox.newest};
    op->outbox_cb(op->arg, op->status, &b);
}

static void complete_prune(struct embedded *s, struct op *op)
{
    s->prune_inflight = false;
    s->prune_steps += op->u.prune.steps;
    update_ref(s);
    if (op->u.prune.messages || op->u.prune.inbox || op->u.prune.offline)
        rtmd_log_info(MODULE,
                      "pruned %llu history messages (%llu inbox rows) and %llu offline messages"
                      " in %u steps",
                      (unsigned long long)op->u.prune.messages,
                      (unsigned long long)op->u.prune.inbox,
                      (unsigned long long)op->u.prune.offline, op->u.prune.steps);
}

/* Calls back the ops in done, in order, at most COMPLETIONS_PER_WAKEUP
 * units per call; the async handle brings the rest. */
static void drain_done(struct embedded *s)
{
    struct rtmd_list *n;
    size_t budget = COMPLETIONS_PER_WAKEUP;
    while (budget > 0 && (n = rtmd_list_first(&s->done))) {
        rtmd_list_remove(n);
        struct op *op = RTMD_CONTAINER_OF(n, struct op, link);
        budget -= RTMD_MIN(budget, op_units(op));
        switch (op->kind) {
        case OP_PRESENCE: complete_presence(s, op); break;
        case OP_CURSOR: complete_pull(s, op); break;
        case OP_PRUNE: complete_prune(s, op); break;
        case OP_OUTBOX_READ:
        case OP_OUTBOX_MESSAGE: complete_outbox(s, op); break;
        default: complete_message(s, op); break;
        }
        op_free(op);
    }
    if (!rtmd_list_empty(&s->done))
        uv_async_send(&s->async); /* the rest next iteration */
    if (s->outbox_new && s->outbox_notify) {
        s->outbox_new = false;
        s->outbox_notify(s->outbox_ctx,
                         atomic_load_explicit(&s->outbox_newest, memory_order_relaxed));
    }
    maybe_finish(s);
}

static void on_async(uv_async_t *h)
{
    struct embedded *s = RTMD_CONTAINER_OF(h, struct embedded, async);
    uv_mutex_lock(&s->mu);
    list_splice_tail(&s->done, &s->outbox);
    uv_mutex_unlock(&s->mu);
    drain_done(s);
}

/* The batch is cursor writes alone, nothing else is owed and the connection
 * is free: commit it here and call back (see "Read positions on the loop
 * thread"). */
static bool commit_on_loop(struct embedded *s)
{
    if (s->closing || s->batch_other || s->pending != s->batch_n ||
        uv_mutex_trylock(&s->db_mu) != 0)
        return false;
    s->db_on_loop = true;
    uint64_t n_ops;
    int failed = run_transaction(s, &s->batch, &n_ops) ? s->db_status : 0;
    s->db_on_loop = false;
    bool wal_long = s->wal_long;
    s->wal_long = false;
    uv_mutex_unlock(&s->db_mu);

    uv_mutex_lock(&s->mu);
    if (n_ops) {
        s->commits++;
        s->commit_ops += n_ops;
    }
    if (wal_long)
        s->checkpoint_due = true;
    if (failed)
        s->loop_failed = failed; /* the worker takes the failure over */
    if (wal_long || failed)
        uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->mu);
    list_splice_tail(&s->done, &s->batch);
    s->batch_n = 0;
    s->batch_other = false;
    drain_done(s);
    return true;
}

static void batch_add(struct embedded *s, struct op *op)
{
    rtmd_list_insert_tail(&s->batch, &op->link);
    s->batch_n++;
    s->batch_other |= op->kind != OP_CURSOR;
}

/* Before sleep: commit this iteration's batch, or hand it to the worker. */
static void on_prepare(struct rtmd_loop_hook *h)
{
    struct embedded *s = RTMD_CONTAINER_OF(h, struct embedded, hook);
    for (int round = 0; round < LOOP_COMMIT_ROUNDS && !rtmd_list_empty(&s->batch); round++)
        if (!commit_on_loop(s))
            break;
    if (rtmd_list_empty(&s->batch))
        return;
    uv_mutex_lock(&s->mu);
    list_splice_tail(&s->inbox, &s->batch);
    uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->mu);
    s->batch_n = 0;
    s->batch_other = false;
}

/* Answers known at once (rate checks, empty pulls) come often: their nodes
 * are recycled instead of allocated each time. */
#define QUICK_POOL_MAX 256
static struct quick *quick_pool_[QUICK_POOL_MAX];
static size_t quick_pool_n_;

static void quick_release(struct quick *q)
{
    if (quick_pool_n_ < QUICK_POOL_MAX)
        quick_pool_[quick_pool_n_++] = q;
    else
        rtmd_free(q);
}

static void on_quick(struct rtmd_deferred *d)
{
    struct quick q = *RTMD_CONTAINER_OF(d, struct quick, d);
    quick_release(RTMD_CONTAINER_OF(d, struct quick, d));
    if (q.pull_cb) {
        struct rtmd_event_batch batch = {0, RTMD_STR_NULL, 0};
        q.pull_cb(q.arg, 0, &batch);
    } else {
        q.cb(q.arg, q.status);
    }
}

static void defer_quick(rtmd_store_cb cb, rtmd_store_pull_cb pull_cb, void *arg, int status)
{
    struct quick *q = quick_pool_n_ ? quick_pool_[--quick_pool_n_] : rtmd_malloc(sizeof(*q));
    memset(q, 0, sizeof(*q));
    q->cb = cb;
    q->pull_cb = pull_cb;
    q->arg = arg;
    q->status = status;
    rtmd_defer(&q->d, on_quick);
}

/* ---- the calls ---- */

static bool id_ok(struct rtmd_str s)
{
    return s.p && s.len >= 1 && s.len <= RTMD_ID_MAX;
}

static int embedded_presence(struct rtmd_store *base, const struct rtmd_app *app,
                             const struct rtmd_presence_op *ops, size_t n, rtmd_store_cb cb,
                             void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return RTMD_ECLOSED;
    struct app_state *as = app_state(s, app);
    if (!as || !ops || n == 0 || !cb)
        return -EINVAL;

    size_t arena = 0;
    bool ending = true;
    for (size_t i = 0; i < n; i++) {
        const struct rtmd_presence_op *p = &ops[i];
        bool channel = rtmd_event_log_kind(p->type) == RTMD_EVLOG_CHANNEL;
        if ((unsigned)p->type > RTMD_EVENT_LEAVE || !id_ok(p->uid) ||
            (channel && !id_ok(p->channel)))
            return -EINVAL;
        arena += p->uid.len + (channel ? p->channel.len : 0);
        ending &= ends_something(p->type);
    }
    /* Leaves and Logouts are never refused for a full queue: they are
     * bounded by the sessions, and one refused would be lost. */
    if (!ending && (s->pending >= MAX_PENDING || n > MAX_PENDING - s->pending))
        return -EAGAIN;

    struct op *op = rtmd_malloc(sizeof(*op) + n * sizeof(struct item) + arena);
    memset(op, 0, sizeof(*op));
    op->kind = OP_PRESENCE;
    op->app = as;
    op->cb = cb;
    op->arg = arg;
    char *bytes = (char *)&op->items[n];
    for (size_t i = 0; i < n; i++) {
        const struct rtmd_presence_op *p = &ops[i];
        struct item *it = &op->items[i];
        memset(it, 0, sizeof(*it));
        it->type = p->type;
        it->ms = p->ms;
        memcpy(bytes, p->uid.p, p->uid.len);
        it->uid = rtmd_str_make(bytes, p->uid.len);
        bytes += p->uid.len;
        if (rtmd_event_log_kind(p->type) == RTMD_EVLOG_CHANNEL) {
            memcpy(bytes, p->channel.p, p->channel.len);
            it->channel = rtmd_str_make(bytes, p->channel.len);
            bytes += p->channel.len;
        }
        rtmd_buf_reset(&s->scratch);
        int rc = rtmd_event_format(&s->scratch, p);
        if (rc) {
            op->n = i;
            op_free(op);
            return rc;
        }
        char sid[RTMD_SESSION_ID_MAX];
        size_t sid_len = rtmd_event_session(sid, s->node, p->session);
        it->rec = rtmd_evrec_new(0, s->scratch.data, s->scratch.len, rtmd_str_make(sid, sid_len));
        op->n = i + 1;
    }
    /* Numbers are handed out only once nothing can fail. */
    for (size_t i = 0; i < n; i++) {
        enum rtmd_evlog_kind kind = rtmd_event_log_kind(op->items[i].type);
        op->items[i].rec->seq = rtmd_evlog_reserve(&as->logs[kind].log);
    }
    batch_add(s, op);
    pending_add(s, n);
    return 0;
}

/* The cursor-write op of a pull (its events are copied in by the caller). */
static struct op *pull_op(struct app_state *as, enum rtmd_evlog_kind kind, uint32_t region,
                          rtmd_store_pull_cb cb, void *arg)
{
    struct op *op = rtmd_calloc(1, sizeof(*op));
    op->kind = OP_CURSOR;
    op->app = as;
    op->pull_cb = cb;
    op->arg = arg;
    op->log = kind;
    op->region = region;
    op->from_seq = as->logs[kind].log.cursor[region];
    rtmd_buf_init(&op->joined, SIZE_MAX);
    return op;
}

/* Moves the region's read position to op->seq in memory and queues its
 * write; the answer waits for the commit. */
static void pull_submit(struct embedded *s, struct log_state *ls, struct op *op)
{
    rtmd_evlog_advance(&ls->log, op->region, op->seq);
    ls->inflight[op->region]++;
    batch_add(s, op);
    pending_add(s, 1);
}

/*
 * A lossless read (after != RTMD_PULL_DRAIN): acknowledges up to after,
 * answers what follows it without consuming it. The read position moves to
 * after when that is ahead of it, through the same cursor write as a
 * draining pull (so a later draining pull goes on after it); an answer with
 * events and no move still writes the position, unchanged, so both kinds of
 * pull cost the same.
 */
static int pull_after(struct embedded *s, struct log_state *ls, uint32_t region, uint32_t max,
                      uint64_t after, rtmd_store_pull_cb cb, void *arg)
{
    struct rtmd_evlog *l = &ls->log;
    if (after > l->last_seq)
        return -ERANGE;
    uint64_t pos = RTMD_MAX(l->cursor[region], after);
    uint64_t dropped = rtmd_evlog_trimmed_after(l, after);
    bool some = l->count > 0 && l->last_seq > after; /* the newest record follows after */
    if (!some && pos == l->cursor[region] && dropped == 0) {
        defer_quick(NULL, cb, arg, 0);
        return 0;
    }
    if (s->pending >= MAX_PENDING)
        return -EAGAIN;
    struct op *op = pull_op(ls->app, (enum rtmd_evlog_kind)ls->kind, region, cb, arg);
    uint64_t last_seq = 0;
    op->n = rtmd_evlog_copy_after(l, after, max, &op->joined, &last_seq);
    if (some && op->n == 0) {
        rtmd_buf_free(&op->joined);
        rtmd_free(op);
        return -ENOMEM;
    }
    op->seq = pos;
    op->dropped = dropped;
    pull_submit(s, ls, op);
    return 0;
}

/* An overview is read from the in-memory logs at the call and handed back
 * from the loop's check phase (never inside the call). */
struct overview_call {
    struct rtmd_deferred d;
    struct rtmd_store_overview ov;
    rtmd_store_overview_cb cb;
    void *arg;
};

static void on_overview(struct rtmd_deferred *d)
{
    struct overview_call *c = RTMD_CONTAINER_OF(d, struct overview_call, d);
    c->cb(c->arg, 0, &c->ov);
    free(c);
}

static int embedded_overview(struct rtmd_store *base, const struct rtmd_app *app,
                             rtmd_store_overview_cb cb, void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return RTMD_ECLOSED;
    struct app_state *as = app_state(s, app);
    if (!as || !cb)
        return -EINVAL;
    struct overview_call *c = rtmd_calloc(1, sizeof(*c));
    c->cb = cb;
    c->arg = arg;
    for (uint32_t r = 0; r < s->cfg->n_regions && r < RTMD_REGIONS_MAX; r++)
        for (int k = 0; k < RTMD_EVLOG_KINDS; k++) {
            c->ov.unread[r][k] = rtmd_evlog_unread(&as->logs[k].log, r);
            c->ov.dropped[r][k] = rtmd_evlog_dropped(&as->logs[k].log, r);
        }
    rtmd_defer(&c->d, on_overview);
    return 0;
}

static int embedded_pull(struct rtmd_store *base, const struct rtmd_app *app,
                         enum rtmd_evlog_kind kind, uint32_t region, uint32_t max, uint64_t after,
                         rtmd_store_pull_cb cb, void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return RTMD_ECLOSED;
    struct app_state *as = app_state(s, app);
    if (!as || (unsigned)kind >= RTMD_EVLOG_KINDS || region >= s->cfg->n_regions || max == 0 ||
        !cb || (after != RTMD_PULL_DRAIN && after > RTMD_PULL_AFTER_MAX))
        return -EINVAL;
    struct log_state *ls = &as->logs[kind];
    if (after != RTMD_PULL_DRAIN)
        return pull_after(s, ls, region, max, after, cb, arg);
    size_t n = RTMD_MIN(rtmd_evlog_unread(&ls->log, region), max);
    if (n == 0) {
        defer_quick(NULL, cb, arg, 0);
        return 0;
    }
    if (s->pending >= MAX_PENDING)
        return -EAGAIN;

    /* The events are copied out now, joined as the answer wants them: one
     * copy, and nothing of the ring stays referenced while the cursor write
     * commits. */
    struct op *op = pull_op(as, kind, region, cb, arg);
    uint64_t last_seq = 0;
    op->n = rtmd_evlog_copy(&ls->log, region, (uint32_t)n, &op->joined, &last_seq);
    if (op->n == 0) {
        rtmd_buf_free(&op->joined);
        rtmd_free(op);
        return -ENOMEM;
    }
#ifdef RTMD_BENCH_PULL_KEEPS
    /* Benchmark builds only (bench/rest-pull --compare-plain): the same cursor
     * row is written, unchanged, so the next pull answers the same events. */
    op->seq = op->from_seq;
#else
    op->seq = last_seq;
#endif
    pull_submit(s, ls, op);
    return 0;
}

static int embedded_rate(struct rtmd_store *base, const struct rtmd_app *app,
                         enum rtmd_rate_bucket bucket, uint32_t qps, rtmd_store_cb cb, void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return RTMD_ECLOSED;
    struct app_state *as = app_state(s, app);
    if (!as || (unsigned)bucket >= RTMD_RATE_BUCKETS || !cb)
        return -EINVAL;
    bool ok = rtmd_ratelimit_take(&as->rate[bucket], qps, rtmd_mono_ms());
    defer_quick(cb, NULL, arg, ok ? 0 : RTMD_ERATE);
    return 0;
}

/* ---- message calls ---- */

static bool payload_ok(const struct embedded *s, struct rtmd_str p)
{
    uint32_t max = s->cfg->limits.max_payload;
    return p.p && p.len >= 1 && (max == 0 || p.len <= max);
}

static bool message_ok(const struct embedded *s, const struct rtmd_message *m)
{
    return m && (m->type == RTMD_MSG_PEER || m->type == RTMD_MSG_CHANNEL) && id_ok(m->src) &&
           id_ok(m->dst) && payload_ok(s, m->payload);
}

/* A source, a destination or both; need_page: a limit of 1..100 too. */
static bool query_ok(const struct rtmd_history_query *q, bool need_page)
{
    if (!q || (!q->source.p && !q->destination.p))
        return false;
    if ((q->source.p && !id_ok(q->source)) || (q->destination.p && !id_ok(q->destination)))
        return false;
    return !need_page || (q->limit >= 1 && q->limit <= HISTORY_LIMIT_MAX);
}

/* Copies v to *at (advancing it); a NULL view stays NULL. */
static struct rtmd_str copy_to(char **at, struct rtmd_str v)
{
    if (!v.p)
        return RTMD_STR_NULL;
    memcpy(*at, v.p, v.len);
    struct rtmd_str out = rtmd_str_make(*at, v.len);
    *at += v.len;
    return out;
}

static struct rtmd_message copy_message(char **at, const struct rtmd_message *m)
{
    struct rtmd_message c = *m;
    c.src = copy_to(at, m->src);
    c.dst = copy_to(at, m->dst);
    c.payload = copy_to(at, m->payload);
    return c;
}

static size_t message_bytes(const struct rtmd_message *m)
{
    return m->src.len + m->dst.len + m->payload.len;
}

/* A message op with extra bytes after its header (in items[]). */
static struct op *op_new(struct app_state *as, enum op_kind kind, size_t extra)
{
    struct op *op = rtmd_malloc(sizeof(*op) + extra);
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->app = as;
    return op;
}

static void op_submit(struct embedded *s, struct op *op)
{
    batch_add(s, op);
    pending_add(s, 1);
}

/* The oldest ms a history query may return by default, and, `grace` later,
 * what the prune removes: 2 x history_handle_ttl_s, the longest a cut-off
 * pinned by the API (q->min_ms) is used. */
static uint64_t history_min_ms(const struct embedded *s, bool grace)
{
    uint64_t keep = (uint64_t)s->cfg->limits.history_retention_s * 1000;
    if (grace)
        keep += 2 * (uint64_t)s->cfg->limits.history_handle_ttl_s * 1000;
    uint64_t now = rtmd_now_ms();
    return now > keep ? now - keep : 0;
}

static uint64_t query_min_ms(const struct embedded *s, const struct rtmd_history_query *q)
{
    if (q->min_ms == 0)
        return history_min_ms(s, false);
    return RTMD_MAX(q->min_ms, history_min_ms(s, true));
}

static int embedded_history_put(struct rtmd_store *base, const struct rtmd_app *app,
                                const struct rtmd_message *m, const struct rtmd_str *recipients,
                                size_t n_recipients, rtmd_store_cb cb, void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return RTMD_ECLOSED;
    struct app_state *as = app_state(s, app);
    if (!as || !cb || !message_ok(s, m))
        return -EINVAL;
    if (m->type == RTMD_MSG_PEER ? n_recipients != 0 : (n_recipients && !recipients))
        return -EINVAL;
    size_t bytes = message_bytes(m);
    for (size_t i = 0; i < n_recipients; i++) {
        if (!id_ok(recipients[i]))
            return -EINVAL;
        bytes += recipients[i].len;
    }
    if (s->pending >= MAX_PENDING)
        return -EAGAIN;

    size_t array = n_recipients * sizeof(struct rtmd_str);
    struct op *op = op_new(as, OP_HISTORY_PUT, array + bytes);
    struct rtmd_str *to = (struct rtmd_str *)(void *)op->items;
    char *at = (char *)op->items + array;
    op->u.put.m = copy_message(&at, m);
    for (size_t i = 0; i < n_recipients; i++)
        to[i] = copy_to(&at, recipients[i]);
    op->u.put.recipients = to;
    op->u.put.n_recipients = n_recipients;
    op->cb = cb;
    op->arg = arg;
    op_submit(s, op);
    return 0;
}

static struct op *query_op(struct embedded *s, struct app_state *as, enum op_kind kind,
                           const struct rtmd_history_query *q)
{
    size_t bytes = (q->source.p ? q->source.len : 0) + (q->destination.p ? q->destination.len : 0);
    struct op *op = op_new(as, kind, bytes);
    char *at = (char *)op->items;
    op->u.query.q = *q;
    op->u.query.q.source = copy_to(&at, q->source);
    op->u.query.q.destination = copy_to(&at, q->destination);
    op->u.query.min_ms = query_min_ms(s, q);
    return op;
}

static int embedded_history_query(struct rtmd_store *base, const struct rtmd_app *app,
                                  const struct rtmd_history_query *q, rtmd_store_messages_cb cb,
                                  void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return RTMD_ECLOSED;
    struct app_state *as = app_state(s, app);
    if (!as || !cb || !query_ok(q, true))
        return -EINVAL;
    if (s->pending >= MAX_PENDING)
        return -EAGAIN;
    struct op *op = query_op(s, as, OP_HISTORY_QUERY, q);
    op->messages_cb = cb;
    op->arg = arg;
    op_submit(s, op);
    return 0;
}

static int embedded_history_count(struct rtmd_store *base, const struct rtmd_app *app,
                                  const struct rtmd_history_query *q, rtmd_store_count_cb cb,
                                  void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return RTMD_ECLOSED;
    struct app_state *as = app_state(s, app);
    if (!as || !cb || !query_ok(q, false))
        return -EINVAL;
    if (s->pending >= MAX_PENDING)
        return -EAGAIN;
    struct op *op = query_op(s, as, OP_HISTORY_COUNT, q);
    op->count_cb = cb;
    op->arg = arg;
    op_submit(s, op);
    return 0;
}

static int embedded_offline_put(struct rtmd_store *base, const struct rtmd_app *app,
                                const struct rtmd_message *m, uint32_t max_per_user,
                                uint64_t ttl_ms, rtmd_store_cb cb, void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return RTMD_ECLOSED;
    struct app_state *as = app_state(s, app);
    if (!as || !cb || !message_ok(s, m) || m->type != RTMD_MSG_PEER || max_per_user == 0 ||
        ttl_ms == 0)
        return -EINVAL;
    if (s->pending >= MAX_PENDING)
        return -EAGAIN;
    struct op *op = op_new(as, OP_OFFLINE_PUT, message_bytes(m));
    char *at = (char *)op->items;
    op->u.offline.m = copy_message(&at, m);
    op->u.offline.max = max_per_user;
    op->u.offline.expire_ms = ttl_ms > UINT64_MAX - m->ms ? UINT64_MAX : m->ms + ttl_ms;
    op->u.offline.now = rtmd_now_ms();
    op->cb = cb;
    op->arg = arg;
    op_submit(s, op);
    return 0;
}

static int embedded_offline_take(struct rtmd_store *base, const struct rtmd_app *app,
                                 struct rtmd_str uid, rtmd_store_messages_cb cb, void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return RTMD_ECLOSED;
    struct app_state *as = app_state(s, app);
    if (!as || !cb || !id_ok(uid))
        return -EINVAL;
    if (s->pending >= MAX_PENDING)
        return -EAGAIN;
    struct op *op = op_new(as, OP_OFFLINE_TAKE, uid.len);
    char *at = (char *)op->items;
    op->u.take.uid = copy_to(&at, uid);
    op->u.take.now = rtmd_now_ms();
    op->messages_cb = cb;
    op->arg = arg;
    op_submit(s, op);
    return 0;
}

/* ---- query handles (memory, loop thread) ---- */

static void on_handle_done(struct rtmd_deferred *d)
{
    struct handle_done *h = RTMD_CONTAINER_OF(d, struct handle_done, d);
    if (h->put_cb)
        h->put_cb(h->arg, 0, h->handle);
    else if (h->entry)
        h->take_cb(h->arg, 0, &h->entry->query);
    else
        h->take_cb(h->arg, -ENOENT, NULL);
    if (h->entry)
        rtmd_handle_free(h->entry);
    rtmd_free(h);
}

static int embedded_handle_put(struct rtmd_store *base, const struct rtmd_app *app,
                               const struct rtmd_history_query *q, uint64_t ttl_ms,
                               rtmd_store_handle_cb cb, void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return RTMD_ECLOSED;
    struct app_state *as = app_state(s, app);
    if (!as || !cb || !query_ok(q, true) || ttl_ms == 0)
        return -EINVAL;
    struct handle_done *h = rtmd_calloc(1, sizeof(*h));
    int rc = rtmd_handles_put(&s->handles, as, q, rtmd_mono_ms(), ttl_ms, h->handle);
    if (rc) {
        rtmd_free(h);
        return rc;
    }
    h->put_cb = cb;
    h->arg = arg;
    rtmd_defer(&h->d, on_handle_done);
    return 0;
}

static int embedded_handle_take(struct rtmd_store *base, const struct rtmd_app *app,
                                struct rtmd_str handle, rtmd_store_query_cb cb, void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return RTMD_ECLOSED;
    struct app_state *as = app_state(s, app);
    if (!as || !cb)
        return -EINVAL;
    struct handle_done *h = rtmd_calloc(1, sizeof(*h));
    h->entry = rtmd_handles_take(&s->handles, as, handle, rtmd_mono_ms());
    h->take_cb = cb;
    h->arg = arg;
    rtmd_defer(&h->d, on_handle_done);
    return 0;
}

/* ---- pruning (loop thread side) ---- */

/* Queues a prune op unless one is queued or running. */
static void schedule_prune(struct embedded *s)
{
    if (s->closing || s->prune_inflight)
        return;
    struct op *op = op_new(NULL, OP_PRUNE, 0);
    op->u.prune.before_ms = history_min_ms(s, true);
    op->u.prune.now = rtmd_now_ms();
    batch_add(s, op);
    s->prune_inflight = true;
    update_ref(s);
}

static void on_prune_timer(uv_timer_t *t)
{
    schedule_prune(RTMD_CONTAINER_OF(t, struct embedded, prune_timer));
}

/* ---- webhook outbox ----------------------------------------------------- */

static void embedded_outbox_watch(struct rtmd_store *base, uint32_t kinds,
                                  void (*notify)(void *ctx, uint64_t newest), void *ctx)
{
    struct embedded *s = from_base(base);
    atomic_store(&s->outbox_kinds, kinds);
    s->outbox_notify = notify;
    s->outbox_ctx = ctx;
}

static struct op *outbox_op(enum op_kind kind, struct rtmd_str hook)
{
    struct op *op = op_new(NULL, kind, hook.len);
    char *at = (char *)op->items;
    op->u.outbox.hook = copy_to(&at, hook);
    return op;
}

static int embedded_outbox_read(struct rtmd_store *base, struct rtmd_str hook, uint64_t ack,
                                uint64_t prune_upto, uint32_t max, rtmd_store_outbox_cb cb,
                                void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return RTMD_ECLOSED;
    if (max == 0 || max > RTMD_OUTBOX_READ_MAX || hook.len == 0)
        return -EINVAL;
    struct op *op = outbox_op(OP_OUTBOX_READ, hook);
    op->u.outbox.max = max;
    op->u.outbox.ack = ack;
    op->u.outbox.prune_upto = prune_upto;
    op->outbox_cb = cb;
    op->arg = arg;
    op_submit(s, op);
    return 0;
}

static bool embedded_outbox_wants(const struct rtmd_store *base, int kind)
{
    const struct embedded *s = (const struct embedded *)base;
    return kind >= 0 && kind < 32 &&
           (atomic_load_explicit(&s->outbox_kinds, memory_order_relaxed) & (1u << kind));
}

static int embedded_outbox_message(struct rtmd_store *base, const struct rtmd_app *app,
                                   const struct rtmd_message *m, rtmd_store_cb cb, void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return RTMD_ECLOSED;
    struct app_state *as = app_state(s, app);
    if (!as || !cb || !message_ok(s, m))
        return -EINVAL;
    if (s->pending >= MAX_PENDING)
        return -EAGAIN;
    /* The event is made here, on the loop (escaping at most 6x). */
    struct rtmd_buf json;
    rtmd_buf_init(&json, 6 * message_bytes(m) + 256);
    int rc = rtmd_message_event_format(&json, m);
    if (rc) {
        rtmd_buf_free(&json);
        return rc;
    }
    struct op *op = op_new(as, OP_OUTBOX_MESSAGE, json.len);
    char *at = (char *)op->items;
    op->u.outbox.json = copy_to(&at, rtmd_str_make(json.data, json.len));
    op->u.outbox.ms = m->ms;
    rtmd_buf_free(&json);
    op->cb = cb;
    op->arg = arg;
    op_submit(s, op);
    return 0;
}

static void embedded_stats(struct rtmd_store *base, struct rtmd_store_stats *out)
{
    struct embedded *s = from_base(base);
    memset(out, 0, sizeof(*out));
    for (int k = 0; k < RTMD_EVLOG_KINDS; k++)
        out->events_recorded[k] = s->recorded[k];
    for (size_t a = 0; a < s->n_apps; a++)
        for (int k = 0; k < RTMD_EVLOG_KINDS; k++)
            for (uint32_t r = 0; r < s->cfg->n_regions && r < RTMD_REGIONS_MAX; r++)
                out->events_dropped[r][k] += rtmd_evlog_dropped(&s->apps[a]->logs[k].log, r);
    out->sessions = s->sessions;
    out->history_kept = s->history_kept;
    out->offline_kept = s->offline_kept;
    out->offline_dropped = s->offline_dropped;
    uv_mutex_lock(&s->mu);
    out->commits = s->commits;
    out->commit_ops = s->commit_ops;
    out->commit_duration = s->commit_duration;
    out->history_pruned = s->history_pruned;
    out->owed_records = s->owed_records;
    out->write_error = s->write_error;
    uv_mutex_unlock(&s->mu);
}

/* ---- open and close ---- */

/* Frees the ops of list (owed ops a stopped worker left). */
static void free_ops(struct rtmd_list *list)
{
    struct rtmd_list *n;
    while ((n = rtmd_list_first(list))) {
        rtmd_list_remove(n);
        op_free(RTMD_CONTAINER_OF(n, struct op, link));
    }
}

/* Frees everything; the worker must be stopped (it closed the database). */
static void destroy(struct embedded *s)
{
    db_close(s);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    if (s->w_owed_n)
        rtmd_log_warn(MODULE,
                      "%llu owed Leave/Logout records not written; the next start records them",
                      (unsigned long long)s->w_owed_n);
    free_ops(&s->w_owed);
    free_ops(&s->outbox);
    free_ops(&s->done);
    for (size_t a = 0; a < s->n_apps; a++) {
        for (int k = 0; k < RTMD_EVLOG_KINDS; k++)
            rtmd_evlog_free(&s->apps[a]->logs[k].log);
        for (int b = 0; b < RTMD_RATE_BUCKETS; b++)
            rtmd_ratelimit_free(&s->apps[a]->rate[b]);
        rtmd_free(s->apps[a]);
    }
    rtmd_free(s->apps);
    rtmd_buf_free(&s->scratch);
    rtmd_handles_free(&s->handles);
    uv_mutex_destroy(&s->mu);
    uv_mutex_destroy(&s->db_mu);
    uv_cond_destroy(&s->cond);
    rtmd_free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct embedded *s = h->data;
    if (--s->open_handles > 0)
        return;
    rtmd_store_cb cb = s->close_cb;
    void *arg = s->close_arg;
    destroy(s);
    if (cb)
        cb(arg, 0);
}

static void on_finish(struct rtmd_deferred *d)
{
    struct embedded *s = RTMD_CONTAINER_OF(d, struct embedded, finish);
    rtmd_loop_hook_remove(&s->hook);
    uv_mutex_lock(&s->mu);
    s->stop = true;
    uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->mu);
    uv_thread_join(&s->thread); /* idle: nothing is pending */
    s->open_handles = 2;
    uv_close((uv_handle_t *)&s->prune_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->async, on_handle_closed);
}

static void embedded_close(struct rtmd_store *base, rtmd_store_cb cb, void *arg)
{
    struct embedded *s = from_base(base);
    if (s->closing)
        return;
    s->closing = true;
    s->close_cb = cb;
    s->close_arg = arg;
    uv_mutex_lock(&s->mu);
    s->prune_halt = true; /* a running prune stops after its step */
    uv_mutex_unlock(&s->mu);
    maybe_finish(s);
}

/* mkdir -p with mode 0700 for the directories it creates. */
static int make_dirs(const char *path)
{
    char *p = rtmd_strdup(path);
    int rc = 0;
    for (char *q = p + 1;; q++) {
        if (*q != '/' && *q != '\0')
            continue;
        char c = *q;
        *q = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            rc = -errno;
            rtmd_log_error(MODULE, "cannot create %s: %s", p, strerror(errno));
            break;
        }
        *q = c;
        if (c == '\0')
            break;
    }
    rtmd_free(p);
    if (rc == 0) {
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
            rtmd_log_error(MODULE, "data_dir %s is not a directory", path);
            rc = -ENOTDIR;
        }
    }
    return rc;
}

static int exec_sql(struct embedded *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    rtmd_log_error(MODULE, "%s: %s", sql, msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return RTMD_ESTORE;
}

static sqlite3_stmt *prepare(struct embedded *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        db_fail(s, sql);
        return NULL;
    }
    return st;
}

/* Runs a statement returning one integer (a PRAGMA, a MAX()); *out = 0 when
 * it returns no row or NULL. */
static int query_int(struct embedded *s, sqlite3_stmt *st, int64_t *out)
{
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(s, sqlite3_sql(st));
    return 0;
}

/* Replaces SQLite's autocheckpoint (which runs in the committing thread):
 * the same threshold, but a commit on the loop thread only notes it. SQLite
 * calls it after each commit that wrote pages: db_wrote. */
static int on_wal(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct embedded *s = arg;
    s->db_wrote = true;
    if (pages < WAL_CHECKPOINT_PAGES)
        return SQLITE_OK;
    if (s->db_on_loop)
        s->wal_long = true;
    else
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

/* One rtmd per data_dir: an exclusive flock() on data_dir/rtmd.lock. */
static int lock_data_dir(struct embedded *s)
{
    struct rtmd_buf path;
    rtmd_buf_init(&path, 4096);
    int rc = rtmd_buf_printf(&path, "%s/rtmd.lock", s->cfg->data_dir);
    if (rc) {
        rtmd_buf_free(&path);
        return rc;
    }
    s->lock_fd = open(path.data, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        rc = -errno;
        rtmd_log_error(MODULE, "cannot open %s: %s", path.data, strerror(errno));
    } else if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        if (rc == -EBUSY)
            rtmd_log_error(MODULE, "%s/rtmd.db is in use by another process", s->cfg->data_dir);
        else
            rtmd_log_error(MODULE, "cannot lock %s: %s", path.data, strerror(errno));
    }
    rtmd_buf_free(&path);
    return rc;
}

/* Versions 1 and 2 lack the session columns: adds table's when missing. */
static int add_session_column(struct embedded *s, const char *table)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT session FROM %s LIMIT 0", table);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        return 0;
    snprintf(sql, sizeof(sql), "ALTER TABLE %s ADD COLUMN session TEXT NOT NULL DEFAULT ''", table);
    return exec_sql(s, sql);
}

static int configure(struct embedded *s)
{
    int rc;
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    bool wal =
        rc == SQLITE_ROW && sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        rtmd_log_error(MODULE, "%s/rtmd.db is in use by another process", s->cfg->data_dir);
        return -EBUSY;
    }
    if (!wal) {
        rtmd_log_error(MODULE, "cannot switch %s/rtmd.db to WAL mode: %s", s->cfg->data_dir,
                       sqlite3_errmsg(s->db));
        return RTMD_ESTORE;
    }
    sqlite3_wal_hook(s->db, on_wal, s);
    s->w_sync_full = s->cfg->sync == RTMD_SYNC_FULL;
    if ((rc = exec_sql(s, s->cfg->sync == RTMD_SYNC_FULL ? "PRAGMA synchronous=FULL"
                                                         : "PRAGMA synchronous=NORMAL")))
        return rc;

    if (!(st = prepare(s, "PRAGMA user_version")))
        return RTMD_ESTORE;
    int64_t version;
    rc = query_int(s, st, &version);
    sqlite3_finalize(st);
    if (rc)
        return rc;
    if (version > SCHEMA_VERSION) {
        rtmd_log_error(MODULE, "%s/rtmd.db has schema %lld, newer than this rtmd's %d",
                       s->cfg->data_dir, (long long)version, SCHEMA_VERSION);
        return RTMD_ESTORE;
    }
    if (version < SCHEMA_VERSION) {
        /* Every statement is IF NOT EXISTS: version 1 gains the message
         * tables, an empty database gets everything. */
        char set_version[64];
        snprintf(set_version, sizeof(set_version), "PRAGMA user_version=%d", SCHEMA_VERSION);
        if ((rc = exec_sql(s, "BEGIN IMMEDIATE")))
            return rc;
        if ((rc = exec_sql(s, schema_sql)) || (rc = exec_sql(s, rtmd_msgdb_schema_sql)) ||
            (rc = add_session_column(s, "events")) || (rc = add_session_column(s, "sessions")) ||
            (rc = exec_sql(s, set_version))) {
            exec_sql(s, "ROLLBACK");
            return rc;
        }
        if ((rc = exec_sql(s, "COMMIT")))
            return rc;
    }
    for (int i = 0; i < ST_BASE_COUNT; i++)
        if (!(s->stmt[i] = prepare(s, stmt_sql[i])))
            return RTMD_ESTORE;
    if (rtmd_msgdb_prepare(&s->msgdb, s->db) != SQLITE_OK)
        return db_fail(s, "prepare message statements");
    return 0;
}

/* Inserts one event made by open() (recovery) into app's log; session: the
 * session_id of the session it ends. */
static int record_event(struct embedded *s, struct app_state *as, const struct rtmd_presence_op *p,
                        struct rtmd_str session)
{
    enum rtmd_evlog_kind kind = rtmd_event_log_kind(p->type);
    rtmd_buf_reset(&s->scratch);
    int rc = rtmd_event_format(&s->scratch, p);
    if (rc)
        return rc;
    uint64_t seq = rtmd_evlog_reserve(&as->logs[kind].log);
    sqlite3_stmt *st = s->stmt[ST_EVENT_INSERT];
    bind_app(st, as);
    sqlite3_bind_int(st, 2, (int)kind);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)seq);
    sqlite3_bind_text(st, 4, s->scratch.data, (int)s->scratch.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, session.p ? session.p : "", (int)session.len, SQLITE_STATIC);
    if (run(st))
        return db_fail(s, "recovery: insert event");
    if (outbox_put(s, as, (int)kind, seq, p->ms, rtmd_str_make(s->scratch.data, s->scratch.len),
                   session))
        return db_fail(s, "recovery: webhook outbox");
    s->recorded[kind]++;
    return 0;
}

/*
 * Ends the sessions of as a previous incarnation left: for each (oldest
 * login first), Leave for every membership in join order, then Logout, all
 * at now. Runs inside open()'s transaction.
 */
static int recover_app(struct embedded *s, struct app_state *as, uint64_t now,
                       sqlite3_stmt *q_sessions, sqlite3_stmt *q_members, size_t *ended)
{
    int rc = 0, step;
    sqlite3_bind_text(q_sessions, 1, as->app->id, -1, SQLITE_STATIC);
    while (rc == 0 && (step = sqlite3_step(q_sessions)) == SQLITE_ROW) {
        struct rtmd_str uid = rtmd_str_make((const char *)sqlite3_column_text(q_sessions, 0),
                                            (size_t)sqlite3_column_bytes(q_sessions, 0));
        struct rtmd_str session = rtmd_str_make((const char *)sqlite3_column_text(q_sessions, 1),
                                                (size_t)sqlite3_column_bytes(q_sessions, 1));
        struct rtmd_presence_op p = {RTMD_EVENT_LEAVE, uid, RTMD_STR_NULL, now, 0};
        sqlite3_bind_text(q_members, 1, as->app->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q_members, 2, uid.p, (int)uid.len, SQLITE_STATIC);
        while (rc == 0 && (step = sqlite3_step(q_members)) == SQLITE_ROW) {
            p.channel = rtmd_str_make((const char *)sqlite3_column_text(q_members, 0),
                                      (size_t)sqlite3_column_bytes(q_members, 0));
            rc = record_event(s, as, &p, session);
        }
        if (rc == 0 && step != SQLITE_DONE)
            rc = db_fail(s, "recovery: memberships");
        sqlite3_reset(q_members);
        p.type = RTMD_EVENT_LOGOUT;
        p.channel = RTMD_STR_NULL;
        if (rc == 0)
            rc = record_event(s, as, &p, session);
        (*ended)++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_fail(s, "recovery: sessions");
    sqlite3_reset(q_sessions);
    return rc;
}

/* Reads the newest events_retain events of each log and the read positions. */
static int load_app(struct embedded *s, struct app_state *as, sqlite3_stmt *q_events,
                    sqlite3_stmt *q_cursors)
{
    int step;
    for (int k = 0; k < RTMD_EVLOG_KINDS; k++) {
        struct rtmd_evlog *l = &as->logs[k].log;
        uint64_t next = l->next_seq;
        sqlite3_bind_text(q_events, 1, as->app->id, -1, SQLITE_STATIC);
        sqlite3_bind_int(q_events, 2, k);
        sqlite3_bind_int64(q_events, 3, l->retain);
        while ((step = sqlite3_step(q_events)) == SQLITE_ROW) {
            uint64_t seq = (uint64_t)sqlite3_column_int64(q_events, 0);
            struct rtmd_evrec *rec =
                rtmd_evrec_new(seq, (const char *)sqlite3_column_text(q_events, 1),
                               (size_t)sqlite3_column_bytes(q_events, 1),
                               rtmd_str_make((const char *)sqlite3_column_text(q_events, 2),
                                             (size_t)sqlite3_column_bytes(q_events, 2)));
            if (rtmd_evlog_restore(l, rec) != 0)
                rtmd_evrec_release(rec);
        }
        sqlite3_reset(q_events);
        if (step != SQLITE_DONE)
            return db_fail(s, "load events");
        rtmd_evlog_restore_next_seq(l, next);
        rtmd_evlog_restore_trimmed(l);
    }
    sqlite3_bind_text(q_cursors, 1, as->app->id, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(q_cursors)) == SQLITE_ROW) {
        int64_t kind = sqlite3_column_int64(q_cursors, 0);
        const char *region = (const char *)sqlite3_column_text(q_cursors, 1);
        int64_t seq = sqlite3_column_int64(q_cursors, 2);
        if (kind < 0 || kind >= RTMD_EVLOG_KINDS || !region || seq < 0)
            continue;
        for (uint32_t r = 0; r < s->cfg->n_regions && r < RTMD_REGIONS_MAX; r++)
            if (strcmp(s->cfg->regions[r], region) == 0)
                rtmd_evlog_restore_cursor(&as->logs[kind].log, r, (uint64_t)seq);
    }
    sqlite3_reset(q_cursors);
    if (step != SQLITE_DONE)
        return db_fail(s, "load cursors");
    return 0;
}

enum {
    Q_MAXSEQ,
    Q_SESSIONS,
    Q_MEMBERS,
    Q_END_MEMBERS,
    Q_END_SESSIONS,
    Q_EVENTS,
    Q_CURSORS,
    Q_COUNT
};

static const char *const open_sql[Q_COUNT] = {
    [Q_MAXSEQ] = "SELECT MAX(seq) FROM events WHERE app=?1 AND kind=?2",
    [Q_SESSIONS] = "SELECT uid, session FROM sessions WHERE app=?1 ORDER BY login_ms, uid",
    [Q_MEMBERS] = "SELECT channel FROM memberships WHERE app=?1 AND uid=?2 ORDER BY since, channel",
    [Q_END_MEMBERS] = "DELETE FROM memberships WHERE app=?1",
    [Q_END_SESSIONS] = "DELETE FROM sessions WHERE app=?1",
    [Q_EVENTS] = ("SELECT seq, json, session FROM (SELECT seq, json, session FROM events"
                  " WHERE app=?1 AND kind=?2 ORDER BY seq DESC LIMIT ?3) ORDER BY seq"),
    [Q_CURSORS] = "SELECT kind, region, seq FROM cursors WHERE app=?1",
};

/* Recovery and loading of apps [from, to), synchronously on the calling
 * thread (open(), before the worker starts; add_app, holding db_mu). */
static int restore(struct embedded *s, size_t from, size_t to)
{
    sqlite3_stmt *q[Q_COUNT] = {0};
    int rc = 0;
    size_t ended = 0;
    uint64_t now = rtmd_now_ms();

    for (int i = 0; i < Q_COUNT; i++)
        if (!(q[i] = prepare(s, open_sql[i]))) {
            rc = RTMD_ESTORE;
            goto out;
        }
    if (run(s->stmt[ST_BEGIN])) {
        rc = sqlite3_errcode(s->db) == SQLITE_BUSY ? -EBUSY : db_fail(s, "begin");
        goto out;
    }
    for (size_t a = from; a < to && rc == 0; a++) {
        struct app_state *as = s->apps[a];
        if (rtmd_msgdb_app_key(&s->msgdb, as->app->id, &as->key)) {
            rc = db_fail(s, "app key");
            break;
        }
        for (int k = 0; k < RTMD_EVLOG_KINDS && rc == 0; k++) {
            int64_t max;
            sqlite3_bind_text(q[Q_MAXSEQ], 1, as->app->id, -1, SQLITE_STATIC);
            sqlite3_bind_int(q[Q_MAXSEQ], 2, k);
            if ((rc = query_int(s, q[Q_MAXSEQ], &max)))
                break;
            rtmd_evlog_restore_next_seq(&as->logs[k].log, (uint64_t)max + 1);
        }
        if (rc == 0)
            rc = recover_app(s, as, now, q[Q_SESSIONS], q[Q_MEMBERS], &ended);
        for (int i = Q_END_MEMBERS; i <= Q_END_SESSIONS && rc == 0; i++) {
            sqlite3_bind_text(q[i], 1, as->app->id, -1, SQLITE_STATIC);
            if (run(q[i]))
                rc = db_fail(s, open_sql[i]);
        }
        for (int k = 0; k < RTMD_EVLOG_KINDS && rc == 0; k++)
            if (trim_log(s, as, k, as->logs[k].log.next_seq - 1))
                rc = db_fail(s, "trim");
    }
    if (rc == 0 && run(s->stmt[ST_COMMIT]))
        rc = db_fail(s, "commit");
    if (rc != 0) {
        if (!sqlite3_get_autocommit(s->db))
            run(s->stmt[ST_ROLLBACK]);
        goto out;
    }
    if (ended)
        rtmd_log_warn(MODULE, "ended %zu sessions left by the previous run", ended);
    for (size_t a = from; a < to && rc == 0; a++)
        rc = load_app(s, s->apps[a], q[Q_EVENTS], q[Q_CURSORS]);
out:
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(q[i]);
    return rc;
}

/* Appends app's state (its index must be n_apps). Loop thread; the worker
 * never reads s->apps. */
static struct app_state *app_state_new(struct embedded *s, const struct rtmd_app *app)
{
    struct app_state *as = rtmd_calloc(1, sizeof(*as));
    as->app = app;
    for (int k = 0; k < RTMD_EVLOG_KINDS; k++) {
        struct log_state *ls = &as->logs[k];
        rtmd_evlog_init(&ls->log, s->cfg->limits.events_retain, (uint32_t)s->cfg->n_regions);
        ls->app = as;
        ls->kind = k;
        rtmd_list_init(&ls->w_touched);
        for (int r = 0; r < RTMD_REGIONS_MAX; r++)
            ls->rewind[r] = NO_REWIND;
    }
    s->apps = rtmd_realloc(s->apps, (s->n_apps + 1) * sizeof(*s->apps));
    s->apps[s->n_apps++] = as;
    return as;
}

/* A reload added app: its state, and what the database holds of it from an
 * earlier run (events, read positions; sessions a crashed run left are
 * ended), read on the loop thread while it holds the connection: the
 * worker waits meanwhile (one transaction of one app, as at open()). */
static int embedded_add_app(struct rtmd_store *base, const struct rtmd_app *app)
{
    struct embedded *s = from_base(base);
    if (app->index != s->n_apps)
        return -EINVAL;
    app_state_new(s, app);
    uv_mutex_lock(&s->db_mu);
    int rc = restore(s, s->n_apps - 1, s->n_apps);
    uv_mutex_unlock(&s->db_mu);
    return rc;
}

/* The log kinds a set of webhooks wants (bit 1 << rtmd_evlog_kind). */
static uint32_t outbox_kinds_of(const struct rtmd_config *cfg)
{
    uint32_t kinds = 0;
    for (size_t i = 0; i < cfg->n_webhooks; i++) {
        if (cfg->webhooks[i]->events & RTMD_WEBHOOK_USER)
            kinds |= 1u << RTMD_EVLOG_USER;
        if (cfg->webhooks[i]->events & RTMD_WEBHOOK_CHANNEL)
            kinds |= 1u << RTMD_EVLOG_CHANNEL;
        if (cfg->webhooks[i]->events & RTMD_WEBHOOK_MESSAGE)
            kinds |= 1u << RTMD_OUTBOX_MESSAGES;
    }
    return kinds;
}

/* The outbox's tables and statements, the first time a webhook needs them;
 * outside any transaction (at open, or on the worker before a BEGIN). */
static int outbox_tables(struct embedded *s)
{
    if (s->outbox_ready)
        return 0;
    int rc = exec_sql(s, outbox_sql);
    for (int i = ST_BASE_COUNT; i < ST_COUNT && !rc; i++)
        if (!(s->stmt[i] = prepare(s, stmt_sql[i])))
            rc = RTMD_ESTORE;
    if (rc) {
        rtmd_log_error(MODULE, "cannot make the webhook outbox's tables: %s",
                       sqlite3_errmsg(s->db));
        for (int i = ST_BASE_COUNT; i < ST_COUNT; i++) {
            sqlite3_finalize(s->stmt[i]);
            s->stmt[i] = NULL;
        }
        return rc;
    }
    s->outbox_ready = true;
    return 0;
}

/* Before recovery writes its events: the configured webhooks' kinds, their
 * tables, and a position for each webhook seen for the first time (after
 * the rows already there), so the Leaves and Logouts recovery records reach
 * them. */
static int outbox_open(struct embedded *s)
{
    if (s->cfg->n_webhooks == 0)
        return 0;
    int rc = outbox_tables(s);
    if (rc)
        return rc;
    atomic_store(&s->outbox_kinds, outbox_kinds_of(s->cfg));
    for (size_t i = 0; i < s->cfg->n_webhooks; i++) {
        sqlite3_stmt *st = s->stmt[ST_OUTBOX_START];
        bind_str(st, 1, rtmd_str_cstr(s->cfg->webhooks[i]->name));
        if (run(st))
            return db_fail(s, "webhook positions");
    }
    return 0;
}

static int embedded_open(struct rtmd_store **out, const struct rtmd_config *cfg, uv_loop_t *loop)
{
    int rc;
    *out = NULL;
    if (!cfg->data_dir || !*cfg->data_dir || cfg->n_regions > RTMD_REGIONS_MAX)
        return -EINVAL;
    if (!sqlite3_threadsafe()) {
        rtmd_log_error(MODULE, "SQLite was built without thread support");
        return -ENOTSUP;
    }

    struct embedded *s = rtmd_calloc(1, sizeof(*s));
    s->base.type = &rtmd_store_embedded;
    s->cfg = cfg;
    s->loop = loop;
    s->lock_fd = -1;
    rtmd_list_init(&s->batch);
    rtmd_list_init(&s->done);
    rtmd_list_init(&s->inbox);
    rtmd_list_init(&s->outbox);
    rtmd_list_init(&s->w_touched);
    rtmd_list_init(&s->w_owed);
    rtmd_buf_init(&s->scratch, EVENT_JSON_MAX);
    /* session_ids name the node as the redis backend does: node_id, or
     * without one the number of request IDs. */
    if (cfg->node_name)
        snprintf(s->node, sizeof(s->node), "%s", cfg->node_name);
    else
        snprintf(s->node, sizeof(s->node), "%u", cfg->node_id);
    rtmd_handles_init(&s->handles, HANDLES_MAX);
    s->prune_batch = PRUNE_BATCH_ROWS;
    uv_mutex_init(&s->mu);
    uv_mutex_init(&s->db_mu);
    uv_cond_init(&s->cond);
    for (size_t a = 0; a < cfg->n_apps; a++)
        app_state_new(s, cfg->apps[a]);

    if ((rc = make_dirs(cfg->data_dir)) || (rc = lock_data_dir(s)))
        goto fail;
    struct rtmd_buf path;
    rtmd_buf_init(&path, 4096);
    if ((rc = rtmd_buf_printf(&path, "%s/rtmd.db", cfg->data_dir))) {
        rtmd_buf_free(&path);
        goto fail;
    }
    int src = sqlite3_open_v2(
        path.data, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rtmd_log_error(MODULE, "cannot open %s: %s", path.data,
                       s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src));
        rtmd_buf_free(&path);
        rc = RTMD_ESTORE;
        goto fail;
    }
    rtmd_buf_free(&path);
    if ((rc = configure(s)) || (rc = outbox_open(s)) || (rc = restore(s, 0, s->n_apps)))
        goto fail;

    /* The worker owns the connection from here on. It touches the async
     * handle only after the loop hands it work, so starting it first lets
     * every later failure be undone by stopping it. */
    if ((rc = uv_thread_create(&s->thread, worker_main, s))) {
        rtmd_log_error(MODULE, "cannot start the store thread: %s", uv_strerror(rc));
        goto fail;
    }
    if ((rc = uv_async_init(loop, &s->async, on_async))) {
        uv_mutex_lock(&s->mu);
        s->stop = true;
        uv_cond_signal(&s->cond);
        uv_mutex_unlock(&s->mu);
        uv_thread_join(&s->thread);
        destroy(s);
        return rc;
    }
    s->async.data = s;
    uv_unref((uv_handle_t *)&s->async);   /* referenced only while work is owed */
    uv_timer_init(loop, &s->prune_timer); /* cannot fail */
    s->prune_timer.data = s;
    uv_timer_start(&s->prune_timer, on_prune_timer, PRUNE_INTERVAL_MS, PRUNE_INTERVAL_MS);
    uv_unref((uv_handle_t *)&s->prune_timer);
    rtmd_loop_on_prepare(&s->hook, on_prepare);
    schedule_prune(s); /* what expired while rtmd was down */
    rtmd_log_info(MODULE, "embedded store %s/rtmd.db open (sync=%s)", cfg->data_dir,
                  cfg->sync == RTMD_SYNC_FULL ? "full" : "normal");
    *out = &s->base;
    return 0;

fail:
    destroy(s);
    return rc;
}

const struct rtmd_store_type rtmd_store_embedded = {
    .name = "embedded",
    .open = embedded_open,
    .presence = embedded_presence,
    .outbox_watch = embedded_outbox_watch,
    .outbox_read = embedded_outbox_read,
    .outbox_message = embedded_outbox_message,
    .outbox_wants = embedded_outbox_wants,
    .pull = embedded_pull,
    .rate = embedded_rate,
    .history_put = embedded_history_put,
    .history_query = embedded_history_query,
    .history_count = embedded_history_count,
    .handle_put = embedded_handle_put,
    .handle_take = embedded_handle_take,
    .offline_put = embedded_offline_put,
    .offline_take = embedded_offline_take,
    .stats = embedded_stats,
    .close = embedded_close,
    .add_app = embedded_add_app,
    .overview = embedded_overview,
};
