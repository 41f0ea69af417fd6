/*
 * Unit tests for the embedded store's message history and query handles
 * (store/embedded.c, store/msgdb.c, store/handles.c): a real libuv loop, a
 * real SQLite file in a temp dir under /tmp, a real worker.
 *
 * RTMD_BENCH=1 also runs test_bench_history (throughput and latencies,
 * printed; skipped otherwise; RTMD_PRUNE_BATCH=n sets its prune step).
 * RTMD_PLANS=1 prints the query plans test_query_plans checks.
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
#include <time.h>
#include <unistd.h>

#include "store/embedded.c"
#include "store_fixture.h"

#define DAY 86400000ULL

static int setup(void **state)
{
    return fixture_setup(state, "history", message_config, T0 + 60000);
}

static void open_store(struct fixture *f)
{
    assert_int_equal(rtmd_store_open(&f->store, f->cfg, &f->loop), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the prune made at open */
}

/* Smaller prune steps, so a few thousand rows take many of them. */
static void set_prune_batch(struct fixture *f, uint32_t rows)
{
    uv_mutex_lock(&impl(f)->mu);
    impl(f)->prune_batch = rows;
    uv_mutex_unlock(&impl(f)->mu);
}

/* ---- synchronous wrappers ---- */

/* recipients: NULL-terminated uids (CHANNEL), or NULL. */
static struct rtmd_message msg_make(enum rtmd_message_type type, const char *src, const char *dst,
                                    const char *payload, uint64_t ms)
{
    struct rtmd_message m = {type, rtmd_str_cstr(src), rtmd_str_cstr(dst), rtmd_str_cstr(payload),
                             ms};
    return m;
}

static size_t to_strs(const char *const *uids, struct rtmd_str *out, size_t max)
{
    size_t n = 0;
    for (; uids && uids[n] && n < max; n++)
        out[n] = rtmd_str_cstr(uids[n]);
    return n;
}

static int put_submit(struct fixture *f, int app, enum rtmd_message_type type, const char *src,
                      const char *dst, const char *payload, uint64_t ms,
                      const char *const *recipients, struct result *r)
{
    struct rtmd_message m = msg_make(type, src, dst, payload, ms);
    struct rtmd_str to[16];
    size_t n = to_strs(recipients, to, 16);
    return rtmd_store_history_put(f->store, &f->apps[app], &m, n ? to : NULL, n, on_done, r);
}

static int put(struct fixture *f, int app, enum rtmd_message_type type, const char *src,
               const char *dst, const char *payload, uint64_t ms, const char *const *recipients)
{
    struct result r = {0, 0};
    return await_callback(f, put_submit(f, app, type, src, dst, payload, ms, recipients, &r),
                          &r.calls, &r.status);
}

/* What a query returned: "p|c src>dst @ms payload" per message. */
static void on_messages(void *arg, int status, const struct rtmd_message_batch *b)
{
    got_batch(arg, status, b, true);
}

static struct rtmd_history_query q_make(const char *src, const char *dst, uint64_t start,
                                        uint64_t end)
{
    struct rtmd_history_query q;
    memset(&q, 0, sizeof(q));
    q.source = src ? rtmd_str_cstr(src) : RTMD_STR_NULL;
    q.destination = dst ? rtmd_str_cstr(dst) : RTMD_STR_NULL;
    q.start_ms = start;
    q.end_ms = end;
    q.limit = 100;
    return q;
}

static int query(struct fixture *f, int app, const struct rtmd_history_query *q, struct got *g)
{
    memset(g, 0, sizeof(*g));
    return await_callback(f, rtmd_store_history_query(f->store, &f->apps[app], q, on_messages, g),
                          &g->calls, &g->status);
}

struct counted {
    int calls;
    int status;
    uint64_t count;
};

static void on_count(void *arg, int status, uint64_t count)
{
    struct counted *c = arg;
    c->calls++;
    c->status = status;
    c->count = count;
}

static uint64_t count(struct fixture *f, int app, const struct rtmd_history_query *q)
{
    struct counted c = {0, 0, 0};
    int rc = rtmd_store_history_count(f->store, &f->apps[app], q, on_count, &c);
    assert_int_equal(rc, 0);
    assert_int_equal(await_callback(f, rc, &c.calls, &c.status), 0);
    return c.count;
}

/*
 * Runs q (asc, offset 0, limit 100) and checks it returns want (NULL-ended),
 * that desc returns the reverse, and that count agrees.
 */
static void expect(struct fixture *f, const char *src, const char *dst, uint64_t start,
                   uint64_t end, const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    struct rtmd_history_query q = q_make(src, dst, start, end);
    struct got g;
    assert_int_equal(query(f, 0, &q, &g), 0);
    if (g.n != n) {
        for (size_t i = 0; i < g.n; i++)
            print_message("got %s\n", g.m[i]);
        fail_msg("src=%s dst=%s: %zu messages, want %zu", src ? src : "-", dst ? dst : "-", g.n, n);
    }
    for (size_t i = 0; i < n; i++)
        assert_string_equal(g.m[i], want[i]);
    got_free(&g);
    q.desc = true;
    assert_int_equal(query(f, 0, &q, &g), 0);
    assert_int_equal(g.n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(g.m[i], want[n - 1 - i]);
    got_free(&g);
    assert_int_equal(count(f, 0, &q), n);
}

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE      ((const char *const[]){NULL})

/*
 * The data set: users alice, bob, carol and a user named "news"; channels
 * "news" and "sports". m5 and m6 share a millisecond.
 */
static const char *const M1 = "p alice>bob @1 a>b 1";
static const char *const M2 = "p bob>alice @2 b>a";
static const char *const M3 = "c alice>news @3 a#news";
static const char *const M4 = "p carol>news @4 c>news";
static const char *const M5 = "c bob>sports @5 b#sports";
static const char *const M6 = "p alice>bob @5 a>b 2";
static const char *const M7 = "c alice>sports @6 a#sports";
static const char *const M8 = "p alice>news @7 a>news";
static const char *const M9 = "c carol>news @8 c#news";

static void put_data_set(struct fixture *f)
{
    assert_int_equal(put(f, 0, RTMD_MSG_PEER, "alice", "bob", "a>b 1", T0 + 1, NULL), 0);
    assert_int_equal(put(f, 0, RTMD_MSG_PEER, "bob", "alice", "b>a", T0 + 2, NULL), 0);
    assert_int_equal(put(f, 0, RTMD_MSG_CHANNEL, "alice", "news", "a#news", T0 + 3,
                         LIST("bob", "news", "carol")),
                     0);
    assert_int_equal(put(f, 0, RTMD_MSG_PEER, "carol", "news", "c>news", T0 + 4, NULL), 0);
    /* m5 and m6 in one iteration: one commit, arrival order kept. */
    struct result r5 = {0, 0}, r6 = {0, 0};
    assert_int_equal(put_submit(f, 0, RTMD_MSG_CHANNEL, "bob", "sports", "b#sports", T0 + 5,
                                LIST("alice", "carol"), &r5),
                     0);
    assert_int_equal(put_submit(f, 0, RTMD_MSG_PEER, "alice", "bob", "a>b 2", T0 + 5, NULL, &r6),
                     0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r5.calls + r6.calls, 2);
    assert_int_equal(r5.status | r6.status, 0);
    assert_int_equal(
        put(f, 0, RTMD_MSG_CHANNEL, "alice", "sports", "a#sports", T0 + 6, LIST("bob")), 0);
    assert_int_equal(put(f, 0, RTMD_MSG_PEER, "alice", "news", "a>news", T0 + 7, NULL), 0);
    /* A recipient listed twice gets one inbox row. */
    assert_int_equal(put(f, 0, RTMD_MSG_CHANNEL, "carol", "news", "c#news", T0 + 8,
                         LIST("alice", "bob", "news", "bob")),
                     0);
    /* The other app's messages never show. */
    assert_int_equal(put(f, 1, RTMD_MSG_PEER, "alice", "bob", "other app", T0 + 1, NULL), 0);
    assert_int_equal(
        put(f, 1, RTMD_MSG_CHANNEL, "alice", "news", "other app", T0 + 3, LIST("news")), 0);
}

/* ---- tests ---- */

static void test_filter_shapes(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    put_data_set(f);
    const uint64_t lo = T0, hi = T0 + 100;

    /* Destination only: what the user received, and the channel's. */
    expect(f, NULL, "bob", lo, hi, LIST(M1, M3, M6, M7, M9));
    expect(f, NULL, "alice", lo, hi, LIST(M2, M5, M9));
    expect(f, NULL, "carol", lo, hi, LIST(M3, M5));
    expect(f, NULL, "sports", lo, hi, LIST(M5, M7));
    /* "news" is a user and a channel: m3 and m9 match both ways, once. */
    expect(f, NULL, "news", lo, hi, LIST(M3, M4, M8, M9));
    expect(f, NULL, "nobody", lo, hi, NONE);

    /* Source only: everything sent, peer and channel. */
    expect(f, "alice", NULL, lo, hi, LIST(M1, M3, M6, M7, M8));
    expect(f, "bob", NULL, lo, hi, LIST(M2, M5));
    expect(f, "news", NULL, lo, hi, NONE);

    /* Source + user: peer messages only (m3/m7 reached bob via channels). */
    expect(f, "alice", "bob", lo, hi, LIST(M1, M6));
    expect(f, "bob", "carol", lo, hi, NONE);
    /* Source + channel: what the source sent to it. */
    expect(f, "alice", "sports", lo, hi, LIST(M7));
    expect(f, "bob", "sports", lo, hi, LIST(M5));
    /* Source + a name that is both: the peer messages and the channel's. */
    expect(f, "alice", "news", lo, hi, LIST(M3, M8));
    expect(f, "carol", "news", lo, hi, LIST(M4, M9));

    struct rtmd_store_stats st;
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.history_kept, 11);
}

static void test_time_bounds_inclusive(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    put_data_set(f);
    expect(f, NULL, "bob", T0 + 3, T0 + 6, LIST(M3, M6, M7));
    expect(f, NULL, "bob", T0 + 4, T0 + 5, LIST(M6));
    expect(f, NULL, "alice", T0 + 5, T0 + 5, LIST(M5));
    expect(f, "alice", NULL, T0 + 1, T0 + 1, LIST(M1));
    expect(f, "alice", "news", T0 + 3, T0 + 7, LIST(M3, M8));
    expect(f, "alice", "news", T0 + 4, T0 + 6, NONE);
    expect(f, NULL, "news", T0 + 8, T0 + 8, LIST(M9));
    expect(f, NULL, "news", T0 + 9, UINT64_MAX, NONE);
    /* An empty range (start after end) matches nothing. */
    expect(f, NULL, "bob", T0 + 6, T0 + 3, NONE);
}

/* One page of q; want: NULL-ended. */
static void expect_page(struct fixture *f, struct rtmd_history_query q, uint32_t offset,
                        uint32_t limit, bool desc, const char *const *want)
{
    q.offset = offset;
    q.limit = limit;
    q.desc = desc;
    struct got g;
    assert_int_equal(query(f, 0, &q, &g), 0);
    size_t n = 0;
    for (; want[n]; n++) {
        assert_true(n < g.n);
        assert_string_equal(g.m[n], want[n]);
    }
    assert_int_equal(g.n, n);
    got_free(&g);
}

static void test_offset_limit_order(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    put_data_set(f);
    struct rtmd_history_query src = q_make("alice", NULL, T0, T0 + 100);
    expect_page(f, src, 1, 2, false, LIST(M3, M6));
    expect_page(f, src, 1, 2, true, LIST(M7, M6));
    expect_page(f, src, 4, 20, false, LIST(M8));
    expect_page(f, src, 5, 20, false, NONE);
    expect_page(f, src, 0, 1, true, LIST(M8));

    /* The union pages after merging and de-duplicating. */
    struct rtmd_history_query dst = q_make(NULL, "news", T0, T0 + 100);
    expect_page(f, dst, 0, 2, false, LIST(M3, M4));
    expect_page(f, dst, 1, 2, false, LIST(M4, M8));
    expect_page(f, dst, 2, 2, false, LIST(M8, M9));
    expect_page(f, dst, 3, 2, false, LIST(M9));
    expect_page(f, dst, 4, 2, false, NONE);
    expect_page(f, dst, 0, 3, true, LIST(M9, M8, M4));
    expect_page(f, dst, 3, 3, true, LIST(M3));

    struct rtmd_history_query pair = q_make("alice", "bob", T0, T0 + 100);
    expect_page(f, pair, 1, 1, false, LIST(M6));
    expect_page(f, pair, 1, 1, true, LIST(M1));

    /* count ignores offset and limit. */
    dst.offset = 3;
    dst.limit = 1;
    assert_int_equal(count(f, 0, &dst), 4);
    src.offset = 100;
    assert_int_equal(count(f, 0, &src), 5);

    /* 150 messages to one user, paged by 100 in both orders. */
    for (int i = 0; i < 150; i++) {
        char payload[16];
        snprintf(payload, sizeof(payload), "n%d", i);
        struct result r = {0, 0};
        assert_int_equal(put_submit(f, 0, RTMD_MSG_PEER, "zed", "yan", payload,
                                    T0 + 10 + (uint64_t)i / 3, NULL, &r),
                         0);
        if (i == 149)
            uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    struct rtmd_history_query many = q_make(NULL, "yan", T0, T0 + 1000);
    struct got g;
    assert_int_equal(query(f, 0, &many, &g), 0);
    assert_int_equal(g.n, 100);
    assert_string_equal(g.m[0], "p zed>yan @10 n0");
    assert_string_equal(g.m[99], "p zed>yan @43 n99");
    got_free(&g);
    many.offset = 100;
    assert_int_equal(query(f, 0, &many, &g), 0);
    assert_int_equal(g.n, 50);
    assert_string_equal(g.m[49], "p zed>yan @59 n149");
    got_free(&g);
    many.offset = 0;
    many.desc = true;
    assert_int_equal(query(f, 0, &many, &g), 0);
    assert_string_equal(g.m[0], "p zed>yan @59 n149");
    assert_string_equal(g.m[1], "p zed>yan @59 n148");
    got_free(&g);
    assert_int_equal(count(f, 0, &many), 150);
}

static void test_invalid_calls_fail_synchronously(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct result r = {0, 0};
    struct rtmd_str rcpt = RTMD_STR_LIT("bob");
    struct rtmd_message m = msg_make(RTMD_MSG_PEER, "alice", "bob", "hi", T0);
    struct rtmd_app *app = &f->apps[0];
    /* A peer message has no recipients list. */
    assert_int_equal(rtmd_store_history_put(f->store, app, &m, &rcpt, 1, on_done, &r), -EINVAL);
    m.payload = RTMD_STR_LIT("");
    assert_int_equal(rtmd_store_history_put(f->store, app, &m, NULL, 0, on_done, &r), -EINVAL);
    char big[40000];
    memset(big, 'x', sizeof(big));
    m.payload = rtmd_str_make(big, sizeof(big));
    assert_int_equal(rtmd_store_history_put(f->store, app, &m, NULL, 0, on_done, &r), -EINVAL);
    m = msg_make(RTMD_MSG_CHANNEL, "alice", "c", "hi", T0);
    struct rtmd_str bad = RTMD_STR_LIT("");
    assert_int_equal(rtmd_store_history_put(f->store, app, &m, &bad, 1, on_done, &r), -EINVAL);
    m.type = 7;
    assert_int_equal(rtmd_store_history_put(f->store, app, &m, NULL, 0, on_done, &r), -EINVAL);
    struct rtmd_app stranger = f->apps[0];
    stranger.index = 5;
    m.type = RTMD_MSG_PEER;
    assert_int_equal(rtmd_store_history_put(f->store, &stranger, &m, NULL, 0, on_done, &r),
                     -EINVAL);

    struct got g = {0};
    struct counted c = {0, 0, 0};
    struct rtmd_history_query q = q_make(NULL, NULL, T0, T0 + 1);
    assert_int_equal(rtmd_store_history_query(f->store, app, &q, on_messages, &g), -EINVAL);
    assert_int_equal(rtmd_store_history_count(f->store, app, &q, on_count, &c), -EINVAL);
    q = q_make("", NULL, T0, T0 + 1);
    assert_int_equal(rtmd_store_history_query(f->store, app, &q, on_messages, &g), -EINVAL);
    q = q_make("alice", NULL, T0, T0 + 1);
    q.limit = 0;
    assert_int_equal(rtmd_store_history_query(f->store, app, &q, on_messages, &g), -EINVAL);
    q.limit = 101;
    assert_int_equal(rtmd_store_history_query(f->store, app, &q, on_messages, &g), -EINVAL);
    /* count does not page. */
    assert_int_equal(rtmd_store_history_count(f->store, app, &q, on_count, &c), 0);
    impl(f)->pending = MAX_PENDING;
    q.limit = 20;
    assert_int_equal(rtmd_store_history_query(f->store, app, &q, on_messages, &g), -EAGAIN);
    m = msg_make(RTMD_MSG_PEER, "alice", "bob", "hi", T0);
    assert_int_equal(rtmd_store_history_put(f->store, app, &m, NULL, 0, on_done, &r), -EAGAIN);
    impl(f)->pending = 1;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 0);
    assert_int_equal(g.calls, 0);
    assert_int_equal(c.calls, 1);
}

static void test_read_your_writes_and_order(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    /* Put, query and count made in one iteration: the reads see the put,
     * and the callbacks come in call order. */
    struct result r = {0, 0};
    struct got g = {0};
    struct counted c = {0, 0, 0};
    struct rtmd_history_query q = q_make(NULL, "bob", T0, T0 + 10);
    assert_int_equal(put_submit(f, 0, RTMD_MSG_PEER, "alice", "bob", "x", T0, NULL, &r), 0);
    assert_int_equal(rtmd_store_history_query(f->store, &f->apps[0], &q, on_messages, &g), 0);
    assert_int_equal(rtmd_store_history_count(f->store, &f->apps[0], &q, on_count, &c), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "p alice>bob @0 x");
    assert_int_equal(c.count, 1);
    got_free(&g);
}

static void test_commit_failure_loses_the_whole_message(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    /* The inbox insert fails: the message row goes with it, and the query
     * made in the same transaction fails too. */
    sqlite3_stmt **slot = &impl(f)->msgdb.stmt[MSGDB_INBOX_INSERT];
    sqlite3_stmt *saved =
        replace_statement(f, slot, "INSERT INTO inbox(app,uid,ms,id) VALUES(NULL,?2,?3,?4)");
    struct result r = {0, 0};
    struct got g = {0};
    struct rtmd_history_query q = q_make("alice", NULL, T0, T0 + 10);
    assert_int_equal(put_submit(f, 0, RTMD_MSG_PEER, "alice", "bob", "lost", T0, NULL, &r), 0);
    assert_int_equal(rtmd_store_history_query(f->store, &f->apps[0], &q, on_messages, &g), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.status, RTMD_ESTORE);
    assert_int_equal(g.status, RTMD_ESTORE);
    assert_int_equal(g.n, 0);

    restore_statement(f, slot, saved);
    assert_int_equal(put(f, 0, RTMD_MSG_PEER, "alice", "bob", "kept", T0 + 1, NULL), 0);
    expect(f, "alice", NULL, T0, T0 + 10, LIST("p alice>bob @1 kept"));
    expect(f, NULL, "bob", T0, T0 + 10, LIST("p alice>bob @1 kept"));
    struct rtmd_store_stats stats;
    rtmd_store_stats(f->store, &stats);
    assert_int_equal(stats.history_kept, 1);
}

/* Opens the store keeping history 60 s, a day after T0; returns that time. */
/* Retention 60 s; handles live 1 s, so the prune lags retention by 2 s
 * (a cut-off pinned by the API is used at most that long). */
static uint64_t open_store_retaining_60s(struct fixture *f)
{
    f->cfg->limits.history_retention_s = 60;
    f->cfg->limits.history_handle_ttl_s = 1;
    const uint64_t now = T0 + DAY;
    rtmd_clock_freeze(now);
    open_store(f);
    return now;
}

/* Closes the store; the file then holds that many messages and inbox rows. */
static void close_and_count(struct fixture *f, int64_t messages, int64_t inbox)
{
    close_store(f);
    assert_int_equal(db_count(f, "SELECT COUNT(*) FROM messages"), messages);
    assert_int_equal(db_count(f, "SELECT COUNT(*) FROM inbox"), inbox);
}

static void test_retention(void **state)
{
    struct fixture *f = *state;
    const uint64_t now = open_store_retaining_60s(f);
    /* Two expired (older than 60 s, and than the prune's 62 s), two live;
     * channel messages with inbox rows on both sides of the line. */
    assert_int_equal(put(f, 0, RTMD_MSG_PEER, "a", "b", "old1", now - 120000, NULL), 0);
    assert_int_equal(put(f, 0, RTMD_MSG_CHANNEL, "a", "ch", "old2", now - 62001, LIST("b", "c")),
                     0);
    assert_int_equal(put(f, 0, RTMD_MSG_CHANNEL, "a", "ch", "edge", now - 60000, LIST("b")), 0);
    assert_int_equal(put(f, 0, RTMD_MSG_PEER, "a", "b", "new", now - 1000, NULL), 0);

    /* Hidden before any prune ran. */
    struct got g;
    struct rtmd_history_query q = q_make(NULL, "b", 0, UINT64_MAX);
    assert_int_equal(query(f, 0, &q, &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.m[0], "c a>ch @86340000 edge");
    assert_string_equal(g.m[1], "p a>b @86399000 new");
    got_free(&g);
    assert_int_equal(count(f, 0, &q), 2);
    q = q_make("a", NULL, 0, UINT64_MAX);
    assert_int_equal(count(f, 0, &q), 2);
    q = q_make(NULL, "ch", 0, UINT64_MAX);
    assert_int_equal(count(f, 0, &q), 1);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.history_pruned, 0);

    /* The timer's prune removes them. */
    schedule_prune(impl(f));
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_false(impl(f)->prune_inflight);
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.history_pruned, 2);

    /* Time moves on: "edge" expires at once for queries... */
    rtmd_clock_freeze(now + 1);
    q = q_make(NULL, "b", 0, UINT64_MAX);
    assert_int_equal(query(f, 0, &q, &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "p a>b @86399000 new");
    got_free(&g);
    /* ...except for a query whose cut-off was pinned before (within 2 s). */
    q.min_ms = now - 60000;
    assert_int_equal(count(f, 0, &q), 2);
    q.min_ms = now - 70000; /* older than what the prune keeps: clamped */
    assert_int_equal(count(f, 0, &q), 2);
    close_and_count(f, 2, 2);
    /* The prune made at the next open, 2 s later, removes it. */
    rtmd_clock_freeze(now + 2001);
    open_store(f);
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.history_pruned, 1);
    close_and_count(f, 1, 1);
}

static struct embedded *prune_probe;
static int prune_running_seen;

static void on_put_during_prune(void *arg, int status)
{
    assert_int_equal(status, 0);
    (*(int *)arg)++;
    prune_running_seen += prune_probe->prune_inflight;
}

static void test_prune_in_steps_between_commits(void **state)
{
    struct fixture *f = *state;
    const uint64_t now = open_store_retaining_60s(f);
    enum { N = 3000 };
    int done = 0;
    for (int i = 0; i < N; i++) {
        struct rtmd_message m = msg_make(RTMD_MSG_PEER, "a", "b", "expired", now - DAY + i);
        assert_int_equal(
            rtmd_store_history_put(f->store, &f->apps[0], &m, NULL, 0, on_put_during_prune, &done),
            0);
    }
    prune_probe = impl(f);
    set_prune_batch(f, 100);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(done, N);

    /* 6000 rows in steps of 100: puts made meanwhile are answered between
     * the steps, long before the prune ends. */
    schedule_prune(impl(f));
    done = 0;
    prune_running_seen = 0;
    struct rtmd_message live = msg_make(RTMD_MSG_PEER, "a", "b", "live", now);
    assert_int_equal(
        rtmd_store_history_put(f->store, &f->apps[0], &live, NULL, 0, on_put_during_prune, &done),
        0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    assert_int_equal(prune_running_seen, 1);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.history_pruned, N);
    assert_true(impl(f)->prune_steps >= 2 * N / 100); /* 3000 messages, 3000 inbox rows */
    expect(f, "a", NULL, 0, UINT64_MAX, LIST("p a>b @86400000 live"));
    close_and_count(f, 1, 1);
}

static void test_close_stops_a_running_prune(void **state)
{
    struct fixture *f = *state;
    open_store_retaining_60s(f);
    enum { N = 5000 };
    struct result r = {0, 0};
    for (int i = 0; i < N; i++)
        assert_int_equal(put_submit(f, 0, RTMD_MSG_PEER, "a", "b", "x", T0 + (uint64_t)i, NULL, &r),
                         0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    set_prune_batch(f, 100);
    schedule_prune(impl(f));
    uv_run(&f->loop, UV_RUN_NOWAIT); /* handed to the worker */
    close_store(f);                  /* answers without waiting for 100 steps */
    int64_t left = db_count(f, "SELECT COUNT(*) FROM messages");
    assert_true(left > 0 && left <= N);
    open_store(f); /* and the next run finishes the job */
    close_and_count(f, 0, 0);
}

static void test_persists_across_reopen(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    put_data_set(f);
    close_store(f);
    open_store(f);
    expect(f, NULL, "news", T0, T0 + 100, LIST(M3, M4, M8, M9));
    expect(f, "alice", NULL, T0, T0 + 100, LIST(M1, M3, M6, M7, M8));
    /* Arrival order goes on after the restart: a message with m6's ms
     * sorts after it. */
    assert_int_equal(put(f, 0, RTMD_MSG_PEER, "alice", "bob", "a>b 3", T0 + 5, NULL), 0);
    expect(f, "alice", "bob", T0, T0 + 100, LIST(M1, M6, "p alice>bob @5 a>b 3"));
}

static void test_upgrades_a_version_1_database(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    close_store(f);
    /* Make it look like rtmd 1's file: no message tables nor session
     * columns, version 1. */
    char path[128];
    snprintf(path, sizeof(path), "%s/rtmd.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TABLE messages; DROP TABLE inbox; DROP TABLE offline;"
                                  "DROP TABLE app_keys; ALTER TABLE events DROP COLUMN session;"
                                  "ALTER TABLE sessions DROP COLUMN session;"
                                  "PRAGMA user_version=1;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    open_store(f);
    assert_int_equal(put(f, 0, RTMD_MSG_PEER, "alice", "bob", "hi", T0, NULL), 0);
    expect(f, NULL, "bob", T0, T0, LIST("p alice>bob @0 hi"));
    close_store(f);
    assert_int_equal(db_count(f, "PRAGMA user_version"), SCHEMA_VERSION);
    assert_int_equal(db_count(f, "SELECT COUNT(session) FROM sessions"), 0);
}

/* The child: puts 40 messages, each acknowledged, then 20 more without
 * waiting for them, then dies without closing anything. */
static void crash_child(const char *dir)
{
    struct fixture c;
    child_open(&c, dir, message_config);
    for (int i = 0; i < 60; i++) {
        char payload[16];
        snprintf(payload, sizeof(payload), "m%02d", i);
        struct result r = {0, 0};
        if (put_submit(&c, 0, RTMD_MSG_CHANNEL, "alice", "news", payload, T0 + (uint64_t)i,
                       LIST("bob"), &r))
            _exit(12);
        if (i < 40) {
            uv_run(&c.loop, UV_RUN_DEFAULT);
            if (r.calls != 1 || r.status != 0)
                _exit(13);
        } else if (i % 5 == 0) {
            uv_run(&c.loop, UV_RUN_NOWAIT); /* some reach the worker */
        }
    }
    _exit(0);
}

static void test_crash_keeps_acknowledged_messages(void **state)
{
    struct fixture *f = *state;
    int status = run_child(f, crash_child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    open_store(f);
    struct rtmd_history_query q = q_make(NULL, "bob", T0, T0 + 100);
    uint64_t n = count(f, 0, &q);
    assert_true(n >= 40 && n <= 60);
    /* What is there is a prefix, in order, with its inbox rows. */
    struct got g;
    assert_int_equal(query(f, 0, &q, &g), 0);
    assert_int_equal(g.n, n);
    for (size_t i = 0; i < g.n; i++) {
        char want[64];
        snprintf(want, sizeof(want), "c alice>news @%zu m%02zu", i, i);
        assert_string_equal(g.m[i], want);
    }
    got_free(&g);
    q = q_make(NULL, "news", T0, T0 + 100);
    assert_int_equal(count(f, 0, &q), n);
}

/* ---- query plans ---- */

/* Every message statement is an index search: no full scan of a table, and
 * no sort except the destination query's final ORDER BY over its at most
 * 100 keys (k). */
static void test_query_plans(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, rtmd_msgdb_schema_sql, NULL, NULL, NULL), SQLITE_OK);
    bool show = getenv("RTMD_PLANS") != NULL;
    for (int i = 0; i < MSGDB_STMT_COUNT; i++) {
        char sql[2048];
        snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s", rtmd_msgdb_sql[i]);
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        if (show)
            print_message("%s\n", rtmd_msgdb_sql[i]);
        bool sorted = false;
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *detail = (const char *)sqlite3_column_text(st, 3);
            if (show)
                print_message("    %s\n", detail);
            if (strncmp(detail, "SCAN ", 5) == 0 && strcmp(detail, "SCAN k") != 0 &&
                strncmp(detail, "SCAN (subquery", 14) != 0 &&
                strcmp(detail, "SCAN CONSTANT ROW") != 0)
                fail_msg("%s: %s", rtmd_msgdb_sql[i], detail);
            if (strstr(detail, "TEMP B-TREE"))
                sorted = true;
        }
        bool may_sort = i == MSGDB_QUERY_DST_ASC || i == MSGDB_QUERY_DST_DESC;
        if (sorted && !may_sort)
            fail_msg("%s sorts", rtmd_msgdb_sql[i]);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

/* ---- handles ---- */

struct handled {
    int calls;
    int status;
    char handle[64];
    struct rtmd_history_query q;
    char src[65], dst[65];
};

static void on_handle(void *arg, int status, const char *handle)
{
    struct handled *h = arg;
    h->calls++;
    h->status = status;
    snprintf(h->handle, sizeof(h->handle), "%s", handle ? handle : "");
}

static void on_taken(void *arg, int status, const struct rtmd_history_query *q)
{
    struct handled *h = arg;
    h->calls++;
    h->status = status;
    if (status == 0) {
        h->q = *q;
        snprintf(h->src, sizeof(h->src), "%.*s", (int)q->source.len,
                 q->source.p ? q->source.p : "");
        snprintf(h->dst, sizeof(h->dst), "%.*s", (int)q->destination.len,
                 q->destination.p ? q->destination.p : "");
        h->q.source.p = q->source.p ? h->src : NULL;
        h->q.destination.p = q->destination.p ? h->dst : NULL;
    }
}

static int handle_put(struct fixture *f, int app, const struct rtmd_history_query *q,
                      uint64_t ttl_ms, struct handled *h)
{
    memset(h, 0, sizeof(*h));
    return await_callback(f,
                          rtmd_store_handle_put(f->store, &f->apps[app], q, ttl_ms, on_handle, h),
                          &h->calls, &h->status);
}

static int handle_take(struct fixture *f, int app, const char *handle, struct handled *h)
{
    memset(h, 0, sizeof(*h));
    int rc = rtmd_store_handle_take(f->store, &f->apps[app], rtmd_str_cstr(handle), on_taken, h);
    return await_callback(f, rc, &h->calls, &h->status);
}

static void test_handles(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct rtmd_history_query q = q_make("alice", "news", T0, T0 + 5);
    q.offset = 40;
    q.limit = 50;
    q.desc = true;
    struct handled put1, put2, got;
    assert_int_equal(handle_put(f, 0, &q, 600000, &put1), 0);
    assert_int_equal(strlen(put1.handle), RTMD_HANDLE_LEN);
    for (const char *p = put1.handle; *p; p++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    assert_int_equal(handle_put(f, 0, &q, 600000, &put2), 0);
    assert_string_not_equal(put1.handle, put2.handle);

    /* Another app cannot take it, and does not use it up. */
    assert_int_equal(handle_take(f, 1, put1.handle, &got), -ENOENT);
    /* Once, with the query as it was put. */
    assert_int_equal(handle_take(f, 0, put1.handle, &got), 0);
    assert_string_equal(got.src, "alice");
    assert_string_equal(got.dst, "news");
    assert_int_equal(got.q.start_ms, T0);
    assert_int_equal(got.q.end_ms, T0 + 5);
    assert_int_equal(got.q.offset, 40);
    assert_int_equal(got.q.limit, 50);
    assert_true(got.q.desc);
    assert_int_equal(handle_take(f, 0, put1.handle, &got), -ENOENT);
    /* Unknown names, of any length. */
    assert_int_equal(handle_take(f, 0, "AAAAAAAAAAAAAAAAAAAAAA", &got), -ENOENT);
    assert_int_equal(handle_take(f, 0, "", &got), -ENOENT);
    assert_int_equal(handle_take(f, 0, "x/y?z", &got), -ENOENT);

    /* A destination-only query keeps its source unset. */
    struct rtmd_history_query d = q_make(NULL, "bob", T0, T0);
    assert_int_equal(handle_put(f, 0, &d, 600000, &put1), 0);
    assert_int_equal(handle_take(f, 0, put1.handle, &got), 0);
    assert_null(got.q.source.p);
    assert_string_equal(got.dst, "bob");

    /* Expiry. */
    assert_int_equal(handle_put(f, 0, &q, 1, &put1), 0);
    uv_sleep(320);
    uv_update_time(&f->loop);
    assert_int_equal(handle_take(f, 0, put1.handle, &got), -ENOENT);
    assert_int_equal(handle_take(f, 0, put2.handle, &got), 0);
    assert_int_equal(rtmd_handles_count(&impl(f)->handles), 0);

    /* Bad queries fail synchronously. */
    struct handled never = {0};
    struct rtmd_history_query bad = q_make(NULL, NULL, T0, T0);
    assert_int_equal(rtmd_store_handle_put(f->store, &f->apps[0], &bad, 1000, on_handle, &never),
                     -EINVAL);
    assert_int_equal(rtmd_store_handle_put(f->store, &f->apps[0], &q, 0, on_handle, &never),
                     -EINVAL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(never.calls, 0);
}

static void test_handle_bound_and_sweep(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    impl(f)->handles.max = 3;
    struct rtmd_history_query q = q_make("alice", NULL, T0, T0 + 5);
    struct handled h[3], extra, got;
    assert_int_equal(handle_put(f, 0, &q, 600000, &h[0]), 0);
    /* Long enough to outlive the next two puts on a loaded machine. */
    assert_int_equal(handle_put(f, 0, &q, 300, &h[1]), 0);
    assert_int_equal(handle_put(f, 1, &q, 600000, &h[2]), 0);
    /* Full: -EAGAIN, synchronously. */
    assert_int_equal(rtmd_store_handle_put(f->store, &f->apps[0], &q, 1000, on_handle, &extra),
                     -EAGAIN);
    /* Once one expires, the full table is swept and there is room, even
     * though the expired one is not at the head of the age list. */
    uv_sleep(320);
    uv_update_time(&f->loop);
    assert_int_equal(handle_put(f, 0, &q, 600000, &extra), 0);
    assert_int_equal(rtmd_handles_count(&impl(f)->handles), 3);
    assert_int_equal(handle_take(f, 0, h[0].handle, &got), 0);
    assert_int_equal(handle_take(f, 1, h[2].handle, &got), 0);
    assert_int_equal(handle_take(f, 0, extra.handle, &got), 0);
    /* Close frees what is left. */
    assert_int_equal(handle_put(f, 0, &q, 600000, &h[0]), 0);
}

/* ---- measurements (RTMD_BENCH=1) ---- */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct bench {
    struct fixture *f;
    int submitted, done, total, failed;
    uint64_t rng;
};

static uint32_t bench_rand(struct bench *b)
{
    b->rng = b->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(b->rng >> 33);
}

enum { BENCH_USERS = 1000, BENCH_CHANNELS = 100, BENCH_MEMBERS = 10 };

static void bench_submit(struct bench *b);

static void on_bench_put(void *arg, int status)
{
    struct bench *b = arg;
    b->done++;
    b->failed += status != 0;
    if (b->submitted < b->total)
        bench_submit(b);
}

/* Half peer messages between random users, half channel messages to one of
 * 100 channels with 10 recipients each; 1 ms apart. */
static void bench_submit(struct bench *b)
{
    int i = b->submitted++;
    char src[16], dst[16], payload[64];
    struct rtmd_str to[BENCH_MEMBERS];
    char names[BENCH_MEMBERS][16];
    snprintf(src, sizeof(src), "user%u", bench_rand(b) % BENCH_USERS);
    snprintf(payload, sizeof(payload), "message number %d with some text", i);
    struct rtmd_message m;
    size_t n = 0;
    if (i % 2 == 0) {
        snprintf(dst, sizeof(dst), "user%u", bench_rand(b) % BENCH_USERS);
        m = msg_make(RTMD_MSG_PEER, src, dst, payload, T0 + (uint64_t)i);
    } else {
        uint32_t c = bench_rand(b) % BENCH_CHANNELS;
        snprintf(dst, sizeof(dst), "chan%u", c);
        m = msg_make(RTMD_MSG_CHANNEL, src, dst, payload, T0 + (uint64_t)i);
        for (n = 0; n < BENCH_MEMBERS; n++) {
            snprintf(names[n], sizeof(names[n]), "user%u", (c * 10 + (uint32_t)n) % BENCH_USERS);
            to[n] = rtmd_str_cstr(names[n]);
        }
    }
    assert_int_equal(
        rtmd_store_history_put(b->f->store, &b->f->apps[0], &m, n ? to : NULL, n, on_bench_put, b),
        0);
}

static double bench_puts(struct fixture *f, int total, int inflight, uint64_t seed)
{
    struct bench b = {f, 0, 0, total, 0, seed};
    double t = mono_s();
    while (b.submitted < inflight && b.submitted < total)
        bench_submit(&b);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    t = mono_s() - t;
    assert_int_equal(b.done, total);
    assert_int_equal(b.failed, 0);
    return total / t;
}

struct latency {
    int calls;
};

static void on_bench_count(void *arg, int status, uint64_t n)
{
    assert_int_equal(status, 0);
    ((struct latency *)arg)->calls++;
    (void)n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs 200 queries of one shape (a prefix NULL: that side unset), one at a
 * time; prints the median and 99th percentile latency, call to callback. */
static void bench_shape(struct fixture *f, const char *name, const char *src_prefix,
                        uint32_t src_keys, const char *dst_prefix, uint32_t dst_keys, bool desc,
                        bool counting)
{
    enum { RUNS = 200 };
    double lat[RUNS];
    uint64_t rows = 0;
    for (int i = 0; i < RUNS; i++) {
        char src[32], dst[32];
        snprintf(src, sizeof(src), "%s%u", src_prefix ? src_prefix : "",
                 (uint32_t)i * 7 % src_keys);
        snprintf(dst, sizeof(dst), "%s%u", dst_prefix ? dst_prefix : "",
                 (uint32_t)i * 13 % dst_keys);
        struct rtmd_history_query q =
            q_make(src_prefix ? src : NULL, dst_prefix ? dst : NULL, T0, T0 + 1000000);
        q.desc = desc;
        struct latency l = {0};
        struct got g = {0};
        double t = mono_s();
        if (counting)
            assert_int_equal(
                rtmd_store_history_count(f->store, &f->apps[0], &q, on_bench_count, &l), 0);
        else
            assert_int_equal(rtmd_store_history_query(f->store, &f->apps[0], &q, on_messages, &g),
                             0);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        lat[i] = (mono_s() - t) * 1e6;
        rows += g.n;
        got_free(&g);
    }
    qsort(lat, RUNS, sizeof(lat[0]), cmp_double);
    print_message("  %-30s p50 %7.0f us  p99 %7.0f us  (%.1f rows/query)\n", name, lat[RUNS / 2],
                  lat[RUNS * 99 / 100], (double)rows / RUNS);
}

static void remove_db(struct fixture *f)
{
    const char *suffix[3] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/rtmd.db%s", f->dir, suffix[i]);
        unlink(path);
    }
}

/* One presence commit, call to callback, in ms. */
static double presence_latency(struct fixture *f, int i)
{
    char uid[16];
    snprintf(uid, sizeof(uid), "p%d", i);
    struct rtmd_presence_op op = {RTMD_EVENT_LOGIN, rtmd_str_cstr(uid), RTMD_STR_NULL, T0, 0};
    struct result r = {0, 0};
    double t = mono_s();
    assert_int_equal(rtmd_store_presence(f->store, &f->apps[1], &op, 1, on_done, &r), 0);
    while (r.calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(r.status, 0);
    return (mono_s() - t) * 1e3;
}

/* Presence commits made one at a time while a prune of everything runs:
 * how long one waits at most. */
static void bench_presence_during_prune(struct fixture *f)
{
    enum { MAX = 100000, IDLE = 100 };
    double *lat = calloc(MAX, sizeof(double));
    for (int i = 0; i < IDLE; i++)
        lat[i] = presence_latency(f, i);
    qsort(lat, IDLE, sizeof(lat[0]), cmp_double);
    print_message("presence commit alone: p50 %.1f ms, p99 %.1f ms\n", lat[IDLE / 2],
                  lat[IDLE * 99 / 100]);
    int n = 0;
    schedule_prune(impl(f));
    uv_run(&f->loop, UV_RUN_NOWAIT);
    double t0 = mono_s();
    while (impl(f)->prune_inflight && n < MAX) {
        lat[n] = presence_latency(f, IDLE + n);
        n++;
    }
    double total = mono_s() - t0;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->store, &st);
    qsort(lat, (size_t)n, sizeof(lat[0]), cmp_double);
    print_message("prune of %llu messages in %llu steps: %.2f s; meanwhile %d presence commits,"
                  " p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
                  (unsigned long long)st.history_pruned, (unsigned long long)impl(f)->prune_steps,
                  total, n, n ? lat[n / 2] : 0, n ? lat[n * 99 / 100] : 0, n ? lat[n - 1] : 0);
    free(lat);
}

static void test_bench_history(void **state)
{
    if (!getenv("RTMD_BENCH"))
        skip();
    struct fixture *f = *state;
    enum { TOTAL = 100000 };
    for (int sync = 1; sync >= 0; sync--) {
        f->cfg->sync = sync ? RTMD_SYNC_NORMAL : RTMD_SYNC_FULL;
        open_store(f);
        struct rtmd_store_stats a, b;
        rtmd_store_stats(f->store, &a);
        double rate = bench_puts(f, TOTAL, 1000, 42);
        rtmd_store_stats(f->store, &b);
        print_message("history_put sync=%s, 1000 in flight: %.0f messages/s (%llu commits)\n",
                      sync ? "normal" : "full", rate, (unsigned long long)(b.commits - a.commits));
        if (sync) {
            close_store(f);
            remove_db(f);
        }
    }
    print_message("queries over %d messages (%d peer, %d channel with %d recipients each):\n",
                  TOTAL, TOTAL / 2, TOTAL / 2, BENCH_MEMBERS);
    const uint32_t U = BENCH_USERS, C = BENCH_CHANNELS;
    bench_shape(f, "destination=user", NULL, 1, "user", U, false, false);
    bench_shape(f, "destination=user desc", NULL, 1, "user", U, true, false);
    bench_shape(f, "destination=channel", NULL, 1, "chan", C, false, false);
    bench_shape(f, "destination=channel desc", NULL, 1, "chan", C, true, false);
    bench_shape(f, "source", "user", U, NULL, 1, false, false);
    bench_shape(f, "source desc", "user", U, NULL, 1, true, false);
    bench_shape(f, "source+destination=user", "user", U, "user", U, false, false);
    bench_shape(f, "source+destination=channel", "user", U, "chan", C, false, false);
    bench_shape(f, "count destination=user", NULL, 1, "user", U, false, true);
    bench_shape(f, "count destination=channel", NULL, 1, "chan", C, false, true);
    bench_shape(f, "count source", "user", U, NULL, 1, false, true);
    bench_shape(f, "count source+destination", "user", U, "user", U, false, true);

    /* Everything expires; the prune runs in steps of PRUNE_BATCH_ROWS. */
    f->cfg->limits.history_retention_s = 1;
    rtmd_clock_freeze(T0 + 10 * DAY);
    uint64_t batch;
    const char *env = getenv("RTMD_PRUNE_BATCH");
    if (env && rtmd_str_to_u64(rtmd_str_cstr(env), UINT32_MAX, &batch) == 0 && batch > 0)
        set_prune_batch(f, (uint32_t)batch);
    bench_presence_during_prune(f);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_filter_shapes),
        T(test_time_bounds_inclusive),
        T(test_offset_limit_order),
        T(test_invalid_calls_fail_synchronously),
        T(test_read_your_writes_and_order),
        T(test_commit_failure_loses_the_whole_message),
        T(test_retention),
        T(test_prune_in_steps_between_commits),
        T(test_close_stops_a_running_prune),
        T(test_persists_across_reopen),
        T(test_upgrades_a_version_1_database),
        T(test_crash_keeps_acknowledged_messages),
        cmocka_unit_test(test_query_plans),
        T(test_handles),
        T(test_handle_bound_and_sweep),
        T(test_bench_history),
    };
    rtmd_log_level = RTMD_LOG_WARN;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
