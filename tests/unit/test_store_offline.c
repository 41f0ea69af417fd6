/*
 * Unit tests for the embedded store's offline messages (store/embedded.c,
 * store/msgdb.c): a real libuv loop, a real SQLite file in a temp dir under
 * /tmp, a real worker.
 */
#define _GNU_SOURCE 1
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

#include "store/embedded.c"

#define APP0 "970CA35de60c44645bbae8a215061b33"
#define APP1 "0123456789abcdef0123456789abcdef"
#define T0   1578027420761ULL
#define WEEK (7 * 86400000ULL)

struct fixture {
    uv_loop_t loop;
    char dir[64];
    struct rtmd_config *cfg;
    struct rtmd_app apps[2];
    struct rtmd_store *store;
};

/* ---- config, loop and files ---- */

static struct rtmd_config *make_config(struct fixture *f)
{
    struct rtmd_config *cfg = calloc(1, sizeof(*cfg));
    cfg->data_dir = f->dir;
    cfg->sync = RTMD_SYNC_FULL;
    cfg->node_id = 7;
    cfg->limits.events_retain = 2000;
    cfg->limits.events_max_pull = 1000;
    cfg->limits.history_retention_s = 604800;
    cfg->limits.max_payload = 32768;
    cfg->limits.offline_max_per_user = 200;
    cfg->limits.offline_retention_s = 604800;
    cfg->limits.history_handle_ttl_s = 600;
    cfg->limits.store_timeout_ms = 5000;
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

static void free_config(struct rtmd_config *cfg)
{
    if (!cfg)
        return;
    rtmd_hashmap_free(&cfg->apps_by_id);
    free(cfg->apps);
    free(cfg);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/rtmd-offline-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    size_t len = strlen(f->dir);
    snprintf(f->dir + len, sizeof(f->dir) - len, "/data");
    f->cfg = make_config(f);
    if (uv_loop_init(&f->loop) || rtmd_loop_init(&f->loop))
        return -1;
    rtmd_clock_freeze(T0 + 60000);
    *state = f;
    return 0;
}

static void close_store(struct fixture *f);

static int teardown(void **state)
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

static void open_store(struct fixture *f)
{
    assert_int_equal(rtmd_store_open(&f->store, f->cfg, &f->loop), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the prune made at open */
}

static void on_closed(void *arg, int status)
{
    assert_int_equal(status, 0);
    (*(int *)arg)++;
}

static void close_store(struct fixture *f)
{
    int closed = 0;
    rtmd_store_close(f->store, on_closed, &closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    f->store = NULL;
}

static struct embedded *impl(struct fixture *f)
{
    return (struct embedded *)f->store;
}

static int64_t db_count(struct fixture *f, const char *sql)
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

/* ---- synchronous wrappers ---- */

struct result {
    int calls;
    int status;
};

static void on_done(void *arg, int status)
{
    struct result *r = arg;
    r->calls++;
    r->status = status;
}

static int put_submit(struct fixture *f, int app, const char *src, const char *dst,
                      const char *payload, uint64_t ms, uint32_t max, uint64_t ttl_ms,
                      struct result *r)
{
    struct rtmd_message m = {RTMD_MSG_PEER, rtmd_str_cstr(src), rtmd_str_cstr(dst),
                             rtmd_str_cstr(payload), ms};
    return rtmd_store_offline_put(f->store, &f->apps[app], &m, max, ttl_ms, on_done, r);
}

static int put(struct fixture *f, int app, const char *src, const char *dst, const char *payload,
               uint64_t ms, uint32_t max, uint64_t ttl_ms)
{
    struct result r = {0, 0};
    int rc = put_submit(f, app, src, dst, payload, ms, max, ttl_ms, &r);
    if (rc)
        return rc;
    assert_int_equal(r.calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    return r.status;
}

/* What a take returned: "src>dst @ms payload" per message. */
struct got {
    int calls;
    int status;
    size_t n;
    char *m[300];
};

static void on_taken(void *arg, int status, const struct rtmd_message_batch *b)
{
    struct got *g = arg;
    g->calls++;
    g->status = status;
    g->n = b->n;
    for (size_t i = 0; i < b->n && i < RTMD_ARRAY_SIZE(g->m); i++) {
        const struct rtmd_message *m = &b->messages[i];
        assert_int_equal(m->type, RTMD_MSG_PEER);
        char line[256];
        snprintf(line, sizeof(line), "%.*s>%.*s @%llu %.*s", (int)m->src.len, m->src.p,
                 (int)m->dst.len, m->dst.p, (unsigned long long)(m->ms - T0), (int)m->payload.len,
                 m->payload.p);
        g->m[i] = strdup(line);
    }
}

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n && i < RTMD_ARRAY_SIZE(g->m); i++)
        free(g->m[i]);
    memset(g, 0, sizeof(*g));
}

static int take_submit(struct fixture *f, int app, const char *uid, struct got *g)
{
    memset(g, 0, sizeof(*g));
    return rtmd_store_offline_take(f->store, &f->apps[app], rtmd_str_cstr(uid), on_taken, g);
}

static int take(struct fixture *f, int app, const char *uid, struct got *g)
{
    int rc = take_submit(f, app, uid, g);
    if (rc)
        return rc;
    assert_int_equal(g->calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(g->calls, 1);
    return g->status;
}

/* ---- tests ---- */

static void test_cap_newest_replace_oldest(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    /* 250 for bob in one iteration (one commit), 3 for carol, 2 for bob in
     * the other app. */
    struct result r[250];
    char payload[16];
    for (int i = 0; i < 250; i++) {
        snprintf(payload, sizeof(payload), "n%03d", i);
        memset(&r[i], 0, sizeof(r[i]));
        assert_int_equal(
            put_submit(f, 0, "alice", "bob", payload, T0 + (uint64_t)i, 200, WEEK, &r[i]), 0);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 250; i++)
        assert_int_equal(r[i].status, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(put(f, 0, "alice", "carol", "c", T0 + (uint64_t)i, 200, WEEK), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(put(f, 1, "alice", "bob", "other", T0 + (uint64_t)i, 200, WEEK), 0);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.offline_kept, 255);
    assert_int_equal(st.offline_dropped, 50);

    struct got g;
    assert_int_equal(take(f, 0, "bob", &g), 0);
    assert_int_equal(g.n, 200);
    assert_string_equal(g.m[0], "alice>bob @50 n050");
    assert_string_equal(g.m[199], "alice>bob @249 n249");
    got_free(&g);
    assert_int_equal(take(f, 0, "bob", &g), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(take(f, 0, "carol", &g), 0);
    assert_int_equal(g.n, 3);
    got_free(&g);
    assert_int_equal(take(f, 1, "bob", &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.m[0], "alice>bob @0 other");
    got_free(&g);

    /* A smaller cap on a later put trims to it. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(put(f, 0, "alice", "dave", "d", T0 + (uint64_t)i, 200, WEEK), 0);
    assert_int_equal(put(f, 0, "alice", "dave", "last", T0 + 9, 2, WEEK), 0);
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.offline_dropped, 54);
    assert_int_equal(take(f, 0, "dave", &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.m[0], "alice>dave @4 d");
    assert_string_equal(g.m[1], "alice>dave @9 last");
    got_free(&g);
    close_store(f);
    assert_int_equal(db_count(f, "SELECT COUNT(*) FROM offline"), 0);
}

static void test_order(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    /* Oldest first by ms, then in the order they were put. */
    assert_int_equal(put(f, 0, "a", "u", "first@5", T0 + 5, 200, WEEK), 0);
    assert_int_equal(put(f, 0, "b", "u", "first@3", T0 + 3, 200, WEEK), 0);
    assert_int_equal(put(f, 0, "c", "u", "second@5", T0 + 5, 200, WEEK), 0);
    assert_int_equal(put(f, 0, "d", "u", "first@1", T0 + 1, 200, WEEK), 0);
    assert_int_equal(put(f, 0, "e", "u", "second@3", T0 + 3, 200, WEEK), 0);
    struct got g;
    assert_int_equal(take(f, 0, "u", &g), 0);
    assert_int_equal(g.n, 5);
    assert_string_equal(g.m[0], "d>u @1 first@1");
    assert_string_equal(g.m[1], "b>u @3 first@3");
    assert_string_equal(g.m[2], "e>u @3 second@3");
    assert_string_equal(g.m[3], "a>u @5 first@5");
    assert_string_equal(g.m[4], "c>u @5 second@5");
    got_free(&g);

    /* Over the cap, the oldest by that order goes: here the one put at
     * ms 1, although it was put last. */
    assert_int_equal(put(f, 0, "a", "v", "x@5", T0 + 5, 2, WEEK), 0);
    assert_int_equal(put(f, 0, "a", "v", "y@5", T0 + 5, 2, WEEK), 0);
    assert_int_equal(put(f, 0, "a", "v", "old@1", T0 + 1, 2, WEEK), 0);
    assert_int_equal(take(f, 0, "v", &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.m[0], "a>v @5 x@5");
    assert_string_equal(g.m[1], "a>v @5 y@5");
    got_free(&g);
}

static void test_expiry(void **state)
{
    struct fixture *f = *state;
    const uint64_t now = T0 + WEEK;
    rtmd_clock_freeze(now);
    open_store(f);
    /* Expires at ms + ttl: one already gone, one at the edge, one live. */
    assert_int_equal(put(f, 0, "a", "u", "gone", now - 2000, 200, 1000), 0);
    assert_int_equal(put(f, 0, "a", "u", "edge", now - 1000, 200, 1000), 0);
    assert_int_equal(put(f, 0, "a", "u", "live", now - 999, 200, 1000), 0);
    assert_int_equal(put(f, 0, "a", "w", "later", now, 200, 1000), 0);
    struct got g;
    assert_int_equal(take(f, 0, "u", &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "a>u @604799001 live");
    got_free(&g);

    /* Expired messages do not count as dropped when the cap is reached:
     * they are removed first. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(put(f, 0, "a", "x", "short", now, 3, 10), 0);
    rtmd_clock_freeze(now + 10);
    assert_int_equal(put(f, 0, "a", "x", "fresh", now + 10, 3, 1000), 0);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.offline_dropped, 0);
    assert_int_equal(take(f, 0, "x", &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "a>x @604800010 fresh");
    got_free(&g);

    /* The prune removes what expired and was never taken. */
    rtmd_clock_freeze(now + 1000);
    schedule_prune(impl(f));
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(take(f, 0, "w", &g), 0);
    assert_int_equal(g.n, 0);
    close_store(f);
    assert_int_equal(db_count(f, "SELECT COUNT(*) FROM offline"), 0);
}

static void test_prune_keeps_live_messages(void **state)
{
    struct fixture *f = *state;
    const uint64_t now = T0 + WEEK;
    rtmd_clock_freeze(now);
    open_store(f);
    assert_int_equal(put(f, 0, "a", "u", "expired", now - 5000, 200, 1000), 0);
    assert_int_equal(put(f, 0, "a", "u", "live", now, 200, WEEK), 0);
    close_store(f);
    assert_int_equal(db_count(f, "SELECT COUNT(*) FROM offline"), 2);
    open_store(f); /* prunes at open */
    close_store(f);
    assert_int_equal(db_count(f, "SELECT COUNT(*) FROM offline"), 1);
    open_store(f);
    struct got g;
    assert_int_equal(take(f, 0, "u", &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "a>u @604800000 live");
    got_free(&g);
}

static void test_put_after_take(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    /* Put, take, put in one iteration (one transaction): the take gets
     * the first, the second waits for the next take. */
    struct result r1 = {0, 0}, r2 = {0, 0};
    struct got g;
    assert_int_equal(put_submit(f, 0, "a", "u", "before", T0, 200, WEEK, &r1), 0);
    assert_int_equal(take_submit(f, 0, "u", &g), 0);
    assert_int_equal(put_submit(f, 0, "a", "u", "after", T0 + 1, 200, WEEK, &r2), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r1.calls + r2.calls + g.calls, 3);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "a>u @0 before");
    got_free(&g);
    assert_int_equal(take(f, 0, "u", &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "a>u @1 after");
    got_free(&g);
    /* And across iterations, and across a restart. */
    assert_int_equal(put(f, 0, "a", "u", "third", T0 + 2, 200, WEEK), 0);
    close_store(f);
    open_store(f);
    assert_int_equal(take(f, 0, "u", &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "a>u @2 third");
    got_free(&g);
}

static void test_failed_take_consumes_nothing(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    assert_int_equal(put(f, 0, "a", "u", "one", T0, 200, WEEK), 0);
    assert_int_equal(put(f, 0, "a", "u", "two", T0 + 1, 200, WEEK), 0);
    /* The delete fails: the take fails and both stay. */
    struct embedded *s = impl(f);
    uv_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(s->db,
                                        "INSERT INTO offline(app,uid,src,ms,expire_ms,payload)"
                                        " VALUES(NULL,?2,'',0,0,'')",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_stmt *saved = s->msgdb.stmt[MSGDB_OFFLINE_DELETE_USER];
    s->msgdb.stmt[MSGDB_OFFLINE_DELETE_USER] = st;
    uv_mutex_unlock(&s->mu);
    struct got g;
    assert_int_equal(take(f, 0, "u", &g), RTMD_ESTORE);
    assert_int_equal(g.n, 0);
    uv_mutex_lock(&s->mu);
    sqlite3_finalize(s->msgdb.stmt[MSGDB_OFFLINE_DELETE_USER]);
    s->msgdb.stmt[MSGDB_OFFLINE_DELETE_USER] = saved;
    uv_mutex_unlock(&s->mu);
    assert_int_equal(take(f, 0, "u", &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.m[0], "a>u @0 one");
    assert_string_equal(g.m[1], "a>u @1 two");
    got_free(&g);
}

static void test_invalid_calls_fail_synchronously(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct result r = {0, 0};
    struct rtmd_message m = {RTMD_MSG_CHANNEL, RTMD_STR_LIT("a"), RTMD_STR_LIT("c"),
                             RTMD_STR_LIT("x"), T0};
    struct rtmd_app *app = &f->apps[0];
    assert_int_equal(rtmd_store_offline_put(f->store, app, &m, 200, WEEK, on_done, &r), -EINVAL);
    m.type = RTMD_MSG_PEER;
    assert_int_equal(rtmd_store_offline_put(f->store, app, &m, 0, WEEK, on_done, &r), -EINVAL);
    assert_int_equal(rtmd_store_offline_put(f->store, app, &m, 200, 0, on_done, &r), -EINVAL);
    m.dst = RTMD_STR_NULL;
    assert_int_equal(rtmd_store_offline_put(f->store, app, &m, 200, WEEK, on_done, &r), -EINVAL);
    struct got g = {0};
    assert_int_equal(rtmd_store_offline_take(f->store, app, RTMD_STR_NULL, on_taken, &g), -EINVAL);
    impl(f)->pending = MAX_PENDING;
    assert_int_equal(rtmd_store_offline_take(f->store, app, RTMD_STR_LIT("u"), on_taken, &g),
                     -EAGAIN);
    impl(f)->pending = 0;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 0);
    assert_int_equal(g.calls, 0);
}

/* The child: 30 messages for bob and 10 for carol, each acknowledged; then
 * carol's taken (acknowledged, 10 returned); then more puts in flight; then
 * it dies without closing anything. */
static void crash_child(const char *dir)
{
    struct fixture c;
    memset(&c, 0, sizeof(c));
    snprintf(c.dir, sizeof(c.dir), "%s", dir);
    c.cfg = make_config(&c);
    if (uv_loop_init(&c.loop) || rtmd_loop_init(&c.loop))
        _exit(10);
    if (rtmd_store_open(&c.store, c.cfg, &c.loop))
        _exit(11);
    char payload[16];
    for (int i = 0; i < 40; i++) {
        snprintf(payload, sizeof(payload), "m%02d", i);
        struct result r = {0, 0};
        if (put_submit(&c, 0, "alice", i < 30 ? "bob" : "carol", payload, T0 + (uint64_t)i, 200,
                       WEEK, &r))
            _exit(12);
        uv_run(&c.loop, UV_RUN_DEFAULT);
        if (r.calls != 1 || r.status != 0)
            _exit(13);
    }
    struct got g;
    if (take_submit(&c, 0, "carol", &g))
        _exit(14);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    if (g.calls != 1 || g.status != 0 || g.n != 10)
        _exit(15);
    for (int i = 0; i < 20; i++) {
        struct result r = {0, 0};
        if (put_submit(&c, 0, "alice", "dave", "maybe", T0 + (uint64_t)i, 200, WEEK, &r))
            _exit(16);
        if (i % 4 == 0)
            uv_run(&c.loop, UV_RUN_NOWAIT);
    }
    _exit(0);
}

static void test_crash_durability(void **state)
{
    struct fixture *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        crash_child(f->dir);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    open_store(f);
    struct got g;
    assert_int_equal(take(f, 0, "bob", &g), 0);
    assert_int_equal(g.n, 30);
    for (size_t i = 0; i < g.n; i++) {
        char want[64];
        snprintf(want, sizeof(want), "alice>bob @%zu m%02zu", i, i);
        assert_string_equal(g.m[i], want);
    }
    got_free(&g);
    /* The acknowledged take's delete is durable too. */
    assert_int_equal(take(f, 0, "carol", &g), 0);
    assert_int_equal(g.n, 0);
    /* Unacknowledged puts: some prefix of them. */
    assert_int_equal(take(f, 0, "dave", &g), 0);
    assert_true(g.n <= 20);
    for (size_t i = 0; i < g.n; i++) {
        char want[64];
        snprintf(want, sizeof(want), "alice>dave @%zu maybe", i);
        assert_string_equal(g.m[i], want);
    }
    got_free(&g);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_cap_newest_replace_oldest),
        T(test_order),
        T(test_expiry),
        T(test_prune_keeps_live_messages),
        T(test_put_after_take),
        T(test_failed_take_consumes_nothing),
        T(test_invalid_calls_fail_synchronously),
        T(test_crash_durability),
    };
    rtmd_log_level = RTMD_LOG_WARN;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
