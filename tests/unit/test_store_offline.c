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
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/embedded.c"
#include "store_fixture.h"

#define WEEK (7 * 86400000ULL)

static int setup(void **state)
{
    return fixture_setup(state, "offline", message_config, T0 + 60000);
}

static void open_store(struct fixture *f)
{
    assert_int_equal(rtmd_store_open(&f->store, f->cfg, &f->loop), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the prune made at open */
}

/* ---- synchronous wrappers ---- */

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
    return await_callback(f, put_submit(f, app, src, dst, payload, ms, max, ttl_ms, &r), &r.calls,
                          &r.status);
}

/* What a take returned: "src>dst @ms payload" per message. */
static void on_taken(void *arg, int status, const struct rtmd_message_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        assert_int_equal(b->messages[i].type, RTMD_MSG_PEER);
    got_batch(arg, status, b, false);
}

static int take_submit(struct fixture *f, int app, const char *uid, struct got *g)
{
    memset(g, 0, sizeof(*g));
    return rtmd_store_offline_take(f->store, &f->apps[app], rtmd_str_cstr(uid), on_taken, g);
}

static int take(struct fixture *f, int app, const char *uid, struct got *g)
{
    return await_callback(f, take_submit(f, app, uid, g), &g->calls, &g->status);
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
    sqlite3_stmt **slot = &impl(f)->msgdb.stmt[MSGDB_OFFLINE_DELETE_USER];
    sqlite3_stmt *saved = replace_statement(f, slot,
                                            "INSERT INTO offline(app,uid,src,ms,expire_ms,payload)"
                                            " VALUES(NULL,?2,'',0,0,'')");
    struct got g;
    assert_int_equal(take(f, 0, "u", &g), RTMD_ESTORE);
    assert_int_equal(g.n, 0);
    restore_statement(f, slot, saved);
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
    child_open(&c, dir, message_config);
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
    int status = run_child(f, crash_child);
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
#define T(name) cmocka_unit_test_setup_teardown(name, setup, fixture_teardown)
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
