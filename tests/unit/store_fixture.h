/*
 * store_fixture.h — what the embedded store's unit tests share
 * (test_store_embedded.c, test_store_history.c, test_store_offline.c): a
 * hand-made config with two apps, a real libuv loop, a data dir in a temp
 * dir under /tmp, the store opened and closed on that loop, the loop run
 * until a callback arrives, and forked children for the crash tests.
 *
 * Include it after "store/embedded.c" (impl() and the statement swaps reach
 * its struct embedded). Each test binary is one translation unit and uses a
 * part of this, hence static inline.
 */
#ifndef RTMD_TESTS_STORE_FIXTURE_H
#define RTMD_TESTS_STORE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <ftw.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define APP0 "970CA35de60c44645bbae8a215061b33"
#define APP1 "0123456789abcdef0123456789abcdef"
#define T0   1578027420761ULL

struct fixture {
    uv_loop_t loop;
    char dir[64];
    struct rtmd_config *cfg;
    struct rtmd_app apps[2];
    struct rtmd_store *store;
};

/* ---- config, loop and files ---- */

/* Two apps (APP0, APP1), one region ("default"), full sync, node 7, event
 * logs of 2000 (pulls of at most 1000); data_dir is f->dir. */
static inline struct rtmd_config *fixture_config(struct fixture *f)
{
    struct rtmd_config *cfg = calloc(1, sizeof(*cfg));
    cfg->data_dir = f->dir;
    cfg->sync = RTMD_SYNC_FULL;
    cfg->node_id = 7;
    cfg->limits.events_retain = 2000;
    cfg->limits.events_max_pull = 1000;
    snprintf(cfg->regions[0], RTMD_REGION_MAX, "default");
    cfg->n_regions = 1;
    cfg->apps = calloc(2, sizeof(*cfg->apps));
    cfg->n_apps = 2;
    rtmd_hashmap_init(&cfg->apps_by_id);
    const char *ids[2] = {APP0, APP1};
    for (uint32_t i = 0; i < 2; i++) {
        struct rtmd_app *a = &f->apps[i];
        memset(a, 0, sizeof(*a));
        snprintf(a->id, sizeof(a->id), "%s", ids[i]);
        a->index = i;
        cfg->apps[i] = a;
        rtmd_hashmap_put(&cfg->apps_by_id, rtmd_str_cstr(a->id), a);
    }
    return cfg;
}

/* fixture_config() with the message limits of a real deployment: a week of
 * history and offline messages (200 a user), 32 KiB payloads, handles for
 * 10 minutes, store calls timing out after 5 s. */
static inline struct rtmd_config *message_config(struct fixture *f)
{
    struct rtmd_config *cfg = fixture_config(f);
    cfg->limits.history_retention_s = 604800;
    cfg->limits.max_payload = 32768;
    cfg->limits.offline_max_per_user = 200;
    cfg->limits.offline_retention_s = 604800;
    cfg->limits.history_handle_ttl_s = 600;
    cfg->limits.store_timeout_ms = 5000;
    return cfg;
}

static inline void free_config(struct rtmd_config *cfg)
{
    if (!cfg)
        return;
    rtmd_hashmap_free(&cfg->apps_by_id);
    free(cfg->apps);
    free(cfg);
}

static inline int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/*
 * The cmocka setup: a fixture whose dir is /tmp/rtmd-<tag>-XXXXXX/data (the
 * store's open creates data/), with make_config()'s config, a running loop,
 * and the clock frozen at now.
 */
static inline int fixture_setup(void **state, const char *tag,
                                struct rtmd_config *(*make_config)(struct fixture *), uint64_t now)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/rtmd-%s-XXXXXX", tag);
    if (!mkdtemp(f->dir))
        return -1;
    size_t len = strlen(f->dir);
    snprintf(f->dir + len, sizeof(f->dir) - len, "/data");
    f->cfg = make_config(f);
    if (uv_loop_init(&f->loop) || rtmd_loop_init(&f->loop))
        return -1;
    rtmd_clock_freeze(now);
    *state = f;
    return 0;
}

/* ---- the store ---- */

static inline void on_closed(void *arg, int status)
{
    assert_int_equal(status, 0);
    (*(int *)arg)++;
}

/* Closes f->store, running the loop until close's callback; that never
 * comes from inside rtmd_store_close(). */
static inline void close_store(struct fixture *f)
{
    int closed = 0;
    rtmd_store_close(f->store, on_closed, &closed);
    assert_int_equal(closed, 0); /* never from inside close() */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    f->store = NULL;
}

/* The cmocka teardown: closes the store if open, then the loop (which must
 * have nothing left on it), and removes the temp dir. */
static inline int fixture_teardown(void **state)
{
    struct fixture *f = *state;
    if (f->store)
        close_store(f);
    rtmd_loop_close();
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    rtmd_clock_freeze(0);
    free_config(f->cfg);
    *strrchr(f->dir, '/') = '\0';
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static inline struct embedded *impl(struct fixture *f)
{
    return (struct embedded *)f->store;
}

/* Replaces *slot, one of the worker's statements, by one made from sql and
 * returns the one it replaced, under the worker's mutex (the worker is idle,
 * waiting on its condition variable). */
static inline sqlite3_stmt *replace_statement(struct fixture *f, sqlite3_stmt **slot,
                                              const char *sql)
{
    struct embedded *s = impl(f);
    uv_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(s->db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_stmt *saved = *slot;
    *slot = st;
    uv_mutex_unlock(&s->mu);
    return saved;
}

/* Puts back what replace_statement() returned; finalizes the replacement. */
static inline void restore_statement(struct fixture *f, sqlite3_stmt **slot, sqlite3_stmt *saved)
{
    struct embedded *s = impl(f);
    uv_mutex_lock(&s->mu);
    sqlite3_finalize(*slot);
    *slot = saved;
    uv_mutex_unlock(&s->mu);
}

/* The first column of sql's first row, read from the database file with a
 * connection of its own (the store closed, or between its commits). */
static inline int64_t db_count(struct fixture *f, const char *sql)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/rtmd.db", f->dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

/* ---- synchronous calls ---- */

struct result {
    int calls;
    int status;
};

static inline void on_done(void *arg, int status)
{
    struct result *r = arg;
    r->calls++;
    r->status = status;
}

/*
 * After a store call that returned rc: a refused call (rc != 0) returns rc;
 * else checks its callback has not come yet (never from inside the call),
 * runs the loop, checks it came exactly once (*calls) and returns the
 * status it brought (*status).
 */
static inline int await_callback(struct fixture *f, int rc, const int *calls, const int *status)
{
    if (rc)
        return rc;
    assert_int_equal(*calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(*calls, 1);
    return *status;
}

/* What a history query or an offline take returned: one line a message,
 * "src>dst @ms payload" with ms counted from T0, typed: "p " or "c " first. */
struct got {
    int calls;
    int status;
    size_t n;
    char *m[300];
};

static inline void got_batch(struct got *g, int status, const struct rtmd_message_batch *b,
                             bool typed)
{
    g->calls++;
    g->status = status;
    g->n = b->n;
    for (size_t i = 0; i < b->n && i < RTMD_ARRAY_SIZE(g->m); i++) {
        const struct rtmd_message *m = &b->messages[i];
        char line[256];
        snprintf(line, sizeof(line), "%s%.*s>%.*s @%llu %.*s",
                 !typed                     ? ""
                 : m->type == RTMD_MSG_PEER ? "p "
                                            : "c ",
                 (int)m->src.len, m->src.p, (int)m->dst.len, m->dst.p,
                 (unsigned long long)(m->ms - T0), (int)m->payload.len, m->payload.p);
        g->m[i] = strdup(line);
    }
}

static inline void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n && i < RTMD_ARRAY_SIZE(g->m); i++)
        free(g->m[i]);
    memset(g, 0, sizeof(*g));
}

/* ---- crashes ---- */

/* In a forked child: c on dir with make_config()'s config, a loop of its
 * own and the store open; exits with 10 or 11 if that fails. */
static inline void child_open(struct fixture *c, const char *dir,
                              struct rtmd_config *(*make_config)(struct fixture *))
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "%s", dir);
    c->cfg = make_config(c);
    if (uv_loop_init(&c->loop) || rtmd_loop_init(&c->loop))
        _exit(10);
    if (rtmd_store_open(&c->store, c->cfg, &c->loop))
        _exit(11);
}

/* In a forked child: records ops one by one on app 0, each acknowledged
 * (else exits with 12 or 13), then dies by SIGKILL with the store open. */
static inline void child_record_and_die(struct fixture *c, const struct rtmd_presence_op *ops,
                                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct result r = {0, 0};
        if (rtmd_store_presence(c->store, &c->apps[0], &ops[i], 1, on_done, &r))
            _exit(12);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        if (r.calls != 1 || r.status != 0)
            _exit(13);
    }
    raise(SIGKILL);
    _exit(14);
}

/* Runs child(f->dir) in a forked process (child never returns: it exits or
 * dies) and returns its wait status. */
static inline int run_child(struct fixture *f, void (*child)(const char *dir))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child(f->dir);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

#endif
