/*
 * Unit tests for store/embedded.c (and store/store.c's event JSON): a real
 * libuv loop, a real SQLite file in a temp dir under /tmp, a real worker.
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

/* ---- config and the store ---- */

/* Two regions; no message limits (these tests store no messages). */
static struct rtmd_config *make_config(struct fixture *f)
{
    struct rtmd_config *cfg = fixture_config(f);
    snprintf(cfg->regions[1], RTMD_REGION_MAX, "eu");
    cfg->n_regions = 2;
    return cfg;
}

static int setup(void **state)
{
    return fixture_setup(state, "store", make_config, T0);
}

static void open_store(struct fixture *f)
{
    assert_int_equal(rtmd_store_open(&f->store, f->cfg, &f->loop), 0);
    assert_non_null(f->store);
    assert_string_equal(f->store->type->name, "embedded");
}

/* ---- synchronous wrappers ---- */

static struct rtmd_presence_op op_make(enum rtmd_event_type type, const char *uid,
                                       const char *channel, uint64_t ms)
{
    struct rtmd_presence_op op = {type, rtmd_str_cstr(uid), rtmd_str_cstr(channel), ms};
    return op;
}

static int presence_n(struct fixture *f, int app, const struct rtmd_presence_op *ops, size_t n)
{
    struct result r = {0, 0};
    return await_callback(f, rtmd_store_presence(f->store, &f->apps[app], ops, n, on_done, &r),
                          &r.calls, &r.status);
}

static int presence1(struct fixture *f, int app, enum rtmd_event_type type, const char *uid,
                     const char *channel, uint64_t ms)
{
    struct rtmd_presence_op op = op_make(type, uid, channel, ms);
    return presence_n(f, app, &op, 1);
}

struct pulled {
    int calls;
    int status;
    size_t n;
    size_t bytes;
    char *ev[2100];
};

static void on_pulled(void *arg, int status, const struct rtmd_event_batch *b)
{
    struct pulled *p = arg;
    p->calls++;
    p->status = status;
    p->n = b->n;
    p->bytes = b->joined.len;
    /* Split the joined run at the commas between objects ("},{"; no ID in
     * these tests contains that sequence). */
    size_t start = 0, k = 0;
    for (size_t i = 0; i <= b->joined.len && k < RTMD_ARRAY_SIZE(p->ev); i++) {
        if (i == b->joined.len || (b->joined.p[i] == ',' && i > 0 && b->joined.p[i - 1] == '}' &&
                                   i + 1 < b->joined.len && b->joined.p[i + 1] == '{')) {
            if (i > start)
                p->ev[k++] = strndup(b->joined.p + start, i - start);
            start = i + 1;
        }
    }
    assert_int_equal(k, b->n < RTMD_ARRAY_SIZE(p->ev) ? b->n : RTMD_ARRAY_SIZE(p->ev));
}

static void pulled_free(struct pulled *p)
{
    for (size_t i = 0; i < p->n && i < RTMD_ARRAY_SIZE(p->ev); i++)
        free(p->ev[i]);
    memset(p, 0, sizeof(*p));
}

/* Pulls into p (cleared first); returns the callback's status. */
static int pull(struct fixture *f, int app, enum rtmd_evlog_kind kind, uint32_t region,
                uint32_t max, struct pulled *p)
{
    memset(p, 0, sizeof(*p));
    return await_callback(f,
                          rtmd_store_pull(f->store, &f->apps[app], kind, region, max, on_pulled, p),
                          &p->calls, &p->status);
}

static void expect_user_event(const char *json, const char *type, const char *uid, uint64_t ms)
{
    char want[256];
    snprintf(want, sizeof(want), "{\"ms\":%llu,\"ts\":%llu,\"type\":\"%s\",\"user_id\":\"%s\"}",
             (unsigned long long)ms, (unsigned long long)ms, type, uid);
    assert_string_equal(json, want);
}

static void expect_channel_event(const char *json, const char *type, const char *uid,
                                 const char *channel, uint64_t ms)
{
    char want[256];
    snprintf(want, sizeof(want),
             "{\"channel_id\":\"%s\",\"group_id\":\"%s\",\"ms\":%llu,\"ts\":%llu,"
             "\"type\":\"%s\",\"user_id\":\"%s\"}",
             channel, channel, (unsigned long long)ms, (unsigned long long)ms, type, uid);
    assert_string_equal(json, want);
}

/* ---- store.c ---- */

static void test_event_format(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 1024);
    struct rtmd_presence_op op = op_make(RTMD_EVENT_LOGIN, "u1", "", T0);
    assert_int_equal(rtmd_event_format(&b, &op), 0);
    assert_int_equal(
        b.len,
        strlen(
            "{\"ms\":1578027420761,\"ts\":1578027420761,\"type\":\"Login\",\"user_id\":\"u1\"}"));
    assert_memory_equal(
        b.data, "{\"ms\":1578027420761,\"ts\":1578027420761,\"type\":\"Login\",\"user_id\":\"u1\"}",
        b.len);
    rtmd_buf_reset(&b);
    op = op_make(RTMD_EVENT_LEAVE, "a b", "c\"h\\", 5);
    assert_int_equal(rtmd_event_format(&b, &op), 0);
    const char *want =
        "{\"channel_id\":\"c\\\"h\\\\\",\"group_id\":\"c\\\"h\\\\\",\"ms\":5,\"ts\":5,"
        "\"type\":\"Leave\",\"user_id\":\"a b\"}";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    /* A failed format leaves the buffer as it was. */
    struct rtmd_buf small;
    rtmd_buf_init(&small, 20);
    assert_int_equal(rtmd_buf_append_cstr(&small, "xyz"), 0);
    assert_int_equal(rtmd_event_format(&small, &op), RTMD_ELIMIT);
    assert_int_equal(small.len, 3);
    rtmd_buf_free(&small);
    rtmd_buf_free(&b);

    assert_string_equal(rtmd_event_type_name(RTMD_EVENT_LOGIN), "Login");
    assert_string_equal(rtmd_event_type_name(RTMD_EVENT_LOGOUT), "Logout");
    assert_string_equal(rtmd_event_type_name(RTMD_EVENT_JOIN), "Join");
    assert_string_equal(rtmd_event_type_name(RTMD_EVENT_LEAVE), "Leave");
    assert_int_equal(rtmd_event_log_kind(RTMD_EVENT_LOGIN), RTMD_EVLOG_USER);
    assert_int_equal(rtmd_event_log_kind(RTMD_EVENT_LOGOUT), RTMD_EVLOG_USER);
    assert_int_equal(rtmd_event_log_kind(RTMD_EVENT_JOIN), RTMD_EVLOG_CHANNEL);
    assert_int_equal(rtmd_event_log_kind(RTMD_EVENT_LEAVE), RTMD_EVLOG_CHANNEL);
}

static void test_redis_stub(void **state)
{
    struct fixture *f = *state;
    struct rtmd_store *s = (struct rtmd_store *)f;
    f->cfg->backend = RTMD_STORE_REDIS;
    assert_int_equal(rtmd_store_open(&s, f->cfg, &f->loop), -ENOTSUP);
    assert_null(s);
}

/* ---- embedded ---- */

static void test_presence_events(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "u1", NULL, T0), 0);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_JOIN, "u1", "ch1", T0 + 1), 0);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_JOIN, "u1", "ch2", T0 + 2), 0);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.sessions, 1);
    struct rtmd_presence_op end[3] = {
        op_make(RTMD_EVENT_LEAVE, "u1", "ch1", T0 + 3),
        op_make(RTMD_EVENT_LEAVE, "u1", "ch2", T0 + 3),
        op_make(RTMD_EVENT_LOGOUT, "u1", NULL, T0 + 3),
    };
    assert_int_equal(presence_n(f, 0, end, 3), 0);
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.sessions, 0);
    assert_int_equal(st.events_recorded[RTMD_EVLOG_USER], 2);
    assert_int_equal(st.events_recorded[RTMD_EVLOG_CHANNEL], 4);

    struct pulled p;
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 2);
    expect_user_event(p.ev[0], "Login", "u1", T0);
    expect_user_event(p.ev[1], "Logout", "u1", T0 + 3);
    pulled_free(&p);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_CHANNEL, 0, 1000, &p), 0);
    assert_int_equal(p.n, 4);
    expect_channel_event(p.ev[0], "Join", "u1", "ch1", T0 + 1);
    expect_channel_event(p.ev[1], "Join", "u1", "ch2", T0 + 2);
    expect_channel_event(p.ev[2], "Leave", "u1", "ch1", T0 + 3);
    expect_channel_event(p.ev[3], "Leave", "u1", "ch2", T0 + 3);
    pulled_free(&p);
    /* The other app's logs are untouched. */
    assert_int_equal(pull(f, 1, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(pull(f, 1, RTMD_EVLOG_CHANNEL, 0, 1000, &p), 0);
    assert_int_equal(p.n, 0);
}

static void test_sync_failures_never_call_back(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct result r = {0, 0};
    struct rtmd_presence_op bad = op_make(RTMD_EVENT_JOIN, "u1", "", T0);
    assert_int_equal(rtmd_store_presence(f->store, &f->apps[0], &bad, 1, on_done, &r), -EINVAL);
    struct rtmd_presence_op toolong =
        op_make(RTMD_EVENT_LOGIN,
                "0123456789012345678901234567890123456789012345678901234567890123X", NULL, T0);
    assert_int_equal(rtmd_store_presence(f->store, &f->apps[0], &toolong, 1, on_done, &r), -EINVAL);
    assert_int_equal(rtmd_store_presence(f->store, &f->apps[0], &bad, 0, on_done, &r), -EINVAL);
    struct rtmd_app stranger = f->apps[0];
    stranger.index = 9;
    struct rtmd_presence_op ok = op_make(RTMD_EVENT_LOGIN, "u1", NULL, T0);
    assert_int_equal(rtmd_store_presence(f->store, &stranger, &ok, 1, on_done, &r), -EINVAL);
    struct pulled p = {0};
    assert_int_equal(rtmd_store_pull(f->store, &f->apps[0], RTMD_EVLOG_USER, 2, 10, on_pulled, &p),
                     -EINVAL);
    assert_int_equal(rtmd_store_pull(f->store, &f->apps[0], RTMD_EVLOG_USER, 0, 0, on_pulled, &p),
                     -EINVAL);
    assert_int_equal(rtmd_store_rate(f->store, &f->apps[0], RTMD_RATE_BUCKETS, 10, on_done, &r),
                     -EINVAL);
    /* Queue bound. */
    impl(f)->pending = MAX_PENDING;
    assert_int_equal(rtmd_store_presence(f->store, &f->apps[0], &ok, 1, on_done, &r), -EAGAIN);
    impl(f)->pending = 0;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 0);
    assert_int_equal(p.calls, 0);
    /* No seq was consumed by the failed calls. */
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "u1", NULL, T0), 0);
    assert_int_equal(impl(f)->apps[0].logs[RTMD_EVLOG_USER].log.last_seq, 1);
}

static void test_pull_max_and_regions(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct rtmd_presence_op ops[25];
    char uids[25][16];
    for (int i = 0; i < 25; i++) {
        snprintf(uids[i], sizeof(uids[i]), "u%d", i);
        ops[i] = op_make(RTMD_EVENT_LOGIN, uids[i], NULL, T0 + (uint64_t)i);
    }
    assert_int_equal(presence_n(f, 0, ops, 25), 0);

    struct pulled p;
    int next = 0;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 10, &p), 0);
        assert_int_equal(p.n, round < 2 ? 10 : 5);
        for (size_t i = 0; i < p.n; i++, next++)
            expect_user_event(p.ev[i], "Login", uids[next], T0 + (uint64_t)next);
        pulled_free(&p);
    }
    /* Drained: an empty pull completes later, through the loop, no commit. */
    uint64_t commits = impl(f)->commits;
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 10, &p), 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(impl(f)->commits, commits);

    /* Region 1 still reads everything, oldest first, and its reads do not
     * show in region 0. */
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 1, 1000, &p), 0);
    assert_int_equal(p.n, 25);
    expect_user_event(p.ev[0], "Login", "u0", T0);
    expect_user_event(p.ev[24], "Login", "u24", T0 + 24);
    pulled_free(&p);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGOUT, "u0", NULL, T0 + 99), 0);
    for (uint32_t r = 0; r < 2; r++) {
        assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, r, 1000, &p), 0);
        assert_int_equal(p.n, 1);
        expect_user_event(p.ev[0], "Logout", "u0", T0 + 99);
        pulled_free(&p);
    }
}

static void test_pulls_in_flight_do_not_overlap(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct rtmd_presence_op ops[5];
    for (int i = 0; i < 5; i++)
        ops[i] = op_make(RTMD_EVENT_JOIN, "u", i % 2 ? "odd" : "even", T0);
    assert_int_equal(presence_n(f, 0, ops, 5), 0);
    /* Three pulls made in the same iteration: 3 + 2 + nothing. */
    struct pulled a = {0}, b = {0}, c = {0};
    assert_int_equal(
        rtmd_store_pull(f->store, &f->apps[0], RTMD_EVLOG_CHANNEL, 0, 3, on_pulled, &a), 0);
    assert_int_equal(
        rtmd_store_pull(f->store, &f->apps[0], RTMD_EVLOG_CHANNEL, 0, 3, on_pulled, &b), 0);
    assert_int_equal(
        rtmd_store_pull(f->store, &f->apps[0], RTMD_EVLOG_CHANNEL, 0, 3, on_pulled, &c), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls + b.calls + c.calls, 3);
    assert_int_equal(a.n, 3);
    assert_int_equal(b.n, 2);
    assert_int_equal(c.n, 0);
    pulled_free(&a);
    pulled_free(&b);
}

static void test_retain_and_drops(void **state)
{
    struct fixture *f = *state;
    f->cfg->limits.events_retain = 5;
    open_store(f);
    char uid[16];
    for (int i = 1; i <= 3; i++) {
        snprintf(uid, sizeof(uid), "u%d", i);
        assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, uid, NULL, T0 + (uint64_t)i), 0);
    }
    struct pulled p;
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 2, &p), 0); /* region 0 read u1, u2 */
    pulled_free(&p);
    for (int i = 4; i <= 9; i++) {
        snprintf(uid, sizeof(uid), "u%d", i);
        assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, uid, NULL, T0 + (uint64_t)i), 0);
    }
    /* 9 events, 5 kept (u5..u9): u1..u4 overwritten. Region 0 had read two
     * of them, region 1 none. */
    struct rtmd_store_stats st;
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.events_dropped[0][RTMD_EVLOG_USER], 2);
    assert_int_equal(st.events_dropped[1][RTMD_EVLOG_USER], 4);
    assert_int_equal(st.events_dropped[0][RTMD_EVLOG_CHANNEL], 0);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 5);
    expect_user_event(p.ev[0], "Login", "u5", T0 + 5);
    pulled_free(&p);

    /* The disk keeps the same bound. */
    close_store(f);
    char path[128];
    snprintf(path, sizeof(path), "%s/rtmd.db", f->dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT COUNT(*), MIN(seq) FROM events WHERE kind=0", -1, &q, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 5);
    assert_int_equal(sqlite3_column_int(q, 1), 5);
    sqlite3_finalize(q);
    sqlite3_close(db);
    /* The restart ends the 9 sessions (oldest login first); the log then
     * holds the newest 5 of those Logouts. */
    open_store(f);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 1, 1000, &p), 0);
    assert_int_equal(p.n, 5);
    expect_user_event(p.ev[0], "Logout", "u5", T0);
    expect_user_event(p.ev[4], "Logout", "u9", T0);
    pulled_free(&p);
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.events_dropped[1][RTMD_EVLOG_USER], 0); /* counted per run */
}

static void test_reopen_keeps_events_and_cursors(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct rtmd_presence_op ops[4] = {
        op_make(RTMD_EVENT_LOGIN, "a", NULL, T0),
        op_make(RTMD_EVENT_JOIN, "a", "c", T0 + 1),
        op_make(RTMD_EVENT_LEAVE, "a", "c", T0 + 2),
        op_make(RTMD_EVENT_LOGOUT, "a", NULL, T0 + 3),
    };
    assert_int_equal(presence_n(f, 0, ops, 4), 0);
    struct pulled p;
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1, &p), 0); /* default read Login */
    pulled_free(&p);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_CHANNEL, 1, 5, &p), 0); /* eu read both */
    pulled_free(&p);
    close_store(f);

    /* Region order changes between runs: cursors follow the names. */
    snprintf(f->cfg->regions[0], RTMD_REGION_MAX, "eu");
    snprintf(f->cfg->regions[1], RTMD_REGION_MAX, "default");
    open_store(f);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 1, 1000, &p), 0); /* default */
    assert_int_equal(p.n, 1);
    expect_user_event(p.ev[0], "Logout", "a", T0 + 3);
    pulled_free(&p);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_CHANNEL, 0, 1000, &p), 0); /* eu: nothing */
    assert_int_equal(p.n, 0);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), 0); /* eu: both */
    assert_int_equal(p.n, 2);
    pulled_free(&p);
    /* A region new to this run reads everything retained. */
    snprintf(f->cfg->regions[2], RTMD_REGION_MAX, "ap");
    f->cfg->n_regions = 3;
    close_store(f);
    open_store(f);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_CHANNEL, 2, 1000, &p), 0);
    assert_int_equal(p.n, 2);
    pulled_free(&p);
    /* Sequence numbers continue after the restart. */
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "b", NULL, T0 + 4), 0);
    assert_int_equal(impl(f)->apps[0].logs[RTMD_EVLOG_USER].log.last_seq, 3);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 1, 1000, &p), 0);
    assert_int_equal(p.n, 1);
    expect_user_event(p.ev[0], "Login", "b", T0 + 4);
    pulled_free(&p);
}

static void test_second_open_is_refused(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct rtmd_store *other = NULL;
    assert_int_equal(rtmd_store_open(&other, f->cfg, &f->loop), -EBUSY);
    assert_null(other);
}

/* The child: Login, then 2 Joins (each acknowledged), then a second user,
 * then SIGKILL with the store open. Exits with a code on any failure. */
static void crash_child(const char *dir)
{
    struct fixture c;
    child_open(&c, dir, make_config);
    struct rtmd_presence_op ops[] = {
        op_make(RTMD_EVENT_LOGIN, "u1", NULL, T0),
        op_make(RTMD_EVENT_JOIN, "u1", "zeta", T0 + 1),
        op_make(RTMD_EVENT_JOIN, "u1", "alpha", T0 + 2),
    };
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(ops); i++) {
        struct result r = {0, 0};
        if (rtmd_store_presence(c.store, &c.apps[0], &ops[i], 1, on_done, &r))
            _exit(12);
        uv_run(&c.loop, UV_RUN_DEFAULT);
        if (r.calls != 1 || r.status != 0)
            _exit(13);
    }
    raise(SIGKILL);
    _exit(14);
}

static void test_crash_recovery(void **state)
{
    struct fixture *f = *state;
    int status = run_child(f, crash_child);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    const uint64_t t1 = T0 + 60000;
    rtmd_clock_freeze(t1);
    open_store(f);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.sessions, 0);
    struct pulled p;
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 2);
    expect_user_event(p.ev[0], "Login", "u1", T0);
    expect_user_event(p.ev[1], "Logout", "u1", t1);
    pulled_free(&p);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_CHANNEL, 0, 1000, &p), 0);
    assert_int_equal(p.n, 4);
    expect_channel_event(p.ev[0], "Join", "u1", "zeta", T0 + 1);
    expect_channel_event(p.ev[1], "Join", "u1", "alpha", T0 + 2);
    expect_channel_event(p.ev[2], "Leave", "u1", "zeta", t1); /* join order */
    expect_channel_event(p.ev[3], "Leave", "u1", "alpha", t1);
    pulled_free(&p);

    /* Recovered once: a clean restart adds nothing, and the other region
     * sees each event exactly once too. */
    close_store(f);
    open_store(f);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_CHANNEL, 0, 1000, &p), 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 1, 1000, &p), 0);
    assert_int_equal(p.n, 2);
    pulled_free(&p);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_CHANNEL, 1, 1000, &p), 0);
    assert_int_equal(p.n, 4);
    pulled_free(&p);
}

struct order {
    int next;
    int bad;
    int calls;
};

struct order_arg {
    struct order *o;
    int i;
};

static void on_ordered(void *arg, int status)
{
    struct order_arg *a = arg;
    if (status != 0 || a->i != a->o->next)
        a->o->bad++;
    a->o->next = a->i + 1;
    a->o->calls++;
}

static void test_group_commit(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct rtmd_store_stats before, after;
    rtmd_store_stats(f->store, &before);
    enum { N = 1000 };
    struct order o = {0, 0, 0};
    struct order_arg *args = calloc(N, sizeof(*args));
    for (int i = 0; i < N; i++) {
        char uid[16];
        snprintf(uid, sizeof(uid), "user%d", i);
        struct rtmd_presence_op op = op_make(RTMD_EVENT_LOGIN, uid, NULL, T0 + (uint64_t)i);
        args[i] = (struct order_arg){&o, i};
        assert_int_equal(
            rtmd_store_presence(f->store, &f->apps[i % 2], &op, 1, on_ordered, &args[i]), 0);
    }
    assert_int_equal(o.calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(o.calls, N);
    assert_int_equal(o.bad, 0);
    rtmd_store_stats(f->store, &after);
    assert_true(after.commits - before.commits <= 2);
    assert_int_equal(after.commit_ops - before.commit_ops, N);
    assert_int_equal(after.sessions, N);
    free(args);
    /* And they are all there, in order. */
    struct pulled p;
    assert_int_equal(pull(f, 1, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, N / 2);
    expect_user_event(p.ev[0], "Login", "user1", T0 + 1);
    expect_user_event(p.ev[N / 2 - 1], "Login", "user999", T0 + 999);
    pulled_free(&p);
}

static void test_close_flushes(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    enum { N = 100 };
    struct order o = {0, 0, 0};
    struct order_arg args[N];
    for (int i = 0; i < N; i++) {
        char uid[16];
        snprintf(uid, sizeof(uid), "user%d", i);
        struct rtmd_presence_op op = op_make(RTMD_EVENT_LOGIN, uid, NULL, T0);
        args[i] = (struct order_arg){&o, i};
        assert_int_equal(rtmd_store_presence(f->store, &f->apps[0], &op, 1, on_ordered, &args[i]),
                         0);
    }
    struct result r = {0, 0};
    assert_int_equal(rtmd_store_rate(f->store, &f->apps[0], RTMD_RATE_EVENTS, 10, on_done, &r), 0);
    close_store(f); /* runs the loop until close's callback */
    assert_int_equal(o.calls, N);
    assert_int_equal(o.bad, 0);
    assert_int_equal(r.calls, 1);
    /* Durable: the next run ends these sessions after their Logins. */
    open_store(f);
    struct pulled p;
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 2 * N);
    expect_user_event(p.ev[0], "Login", "user0", T0);
    pulled_free(&p);
}

static void test_close_idle(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    close_store(f);
    /* Nothing is left referencing the loop. */
    assert_int_equal(uv_run(&f->loop, UV_RUN_NOWAIT), 0);
}

static void test_rate(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct result r[12];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 12; i++)
        assert_int_equal(
            rtmd_store_rate(f->store, &f->apps[0], RTMD_RATE_EVENTS, 10, on_done, &r[i]), 0);
    struct result other = {0, 0}, other_app = {0, 0};
    assert_int_equal(rtmd_store_rate(f->store, &f->apps[0], RTMD_RATE_SEND, 10, on_done, &other),
                     0);
    assert_int_equal(
        rtmd_store_rate(f->store, &f->apps[1], RTMD_RATE_EVENTS, 10, on_done, &other_app), 0);
    assert_int_equal(r[0].calls, 0); /* never inside the call */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, i < 10 ? 0 : RTMD_ERATE);
    }
    assert_int_equal(other.status, 0);
    assert_int_equal(other_app.status, 0);
}

/* Replaces one of the worker's statements by one that fails (NOT NULL).
 * The worker is idle, waiting on its condition variable. */
static void break_statement(struct fixture *f, enum stmt_id id, const char *sql)
{
    sqlite3_finalize(replace_statement(f, &impl(f)->stmt[id], sql));
}

static void test_commit_failure(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "ok1", NULL, T0), 0);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "ok2", NULL, T0), 0);
    struct pulled p;
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1, &p), 0);
    pulled_free(&p);

    /* A failing cursor write: the pull fails, and the events stay unread. */
    break_statement(f, ST_CURSOR_PUT,
                    "INSERT INTO cursors(app,kind,region,seq) VALUES(NULL,?2,?3,?4)");
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 10, &p), RTMD_ESTORE);
    assert_int_equal(p.n, 0);
    assert_int_equal(rtmd_evlog_unread(&impl(f)->apps[0].logs[0].log, 0), 1);

    /* A failing event insert: the whole call fails, no event is visible,
     * and later calls work again. */
    break_statement(f, ST_EVENT_INSERT,
                    "INSERT INTO events(app,kind,seq,json) VALUES(NULL,?2,?3,?4)");
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "lost", NULL, T0), RTMD_ESTORE);
    break_statement(f, ST_EVENT_INSERT, stmt_sql[ST_EVENT_INSERT]);
    break_statement(f, ST_CURSOR_PUT, stmt_sql[ST_CURSOR_PUT]);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "ok3", NULL, T0), 0);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 10, &p), 0);
    assert_int_equal(p.n, 2);
    expect_user_event(p.ev[0], "Login", "ok2", T0);
    expect_user_event(p.ev[1], "Login", "ok3", T0);
    pulled_free(&p);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.sessions, 3);
    assert_int_equal(st.events_recorded[RTMD_EVLOG_USER], 3);
}

static void test_takeover_in_one_call(void **state)
{
    /* Presence's takeover: old session's Leave + Logout, then the new Login,
     * atomically in one call; recovery then ends only the new session. */
    struct fixture *f = *state;
    open_store(f);
    assert_int_equal(presence1(f, 1, RTMD_EVENT_LOGIN, "u", NULL, T0), 0);
    assert_int_equal(presence1(f, 1, RTMD_EVENT_JOIN, "u", "c", T0), 0);
    struct rtmd_presence_op ops[3] = {
        op_make(RTMD_EVENT_LEAVE, "u", "c", T0 + 1),
        op_make(RTMD_EVENT_LOGOUT, "u", NULL, T0 + 1),
        op_make(RTMD_EVENT_LOGIN, "u", NULL, T0 + 1),
    };
    assert_int_equal(presence_n(f, 1, ops, 3), 0);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->store, &st);
    assert_int_equal(st.sessions, 1);
    close_store(f);
    rtmd_clock_freeze(T0 + 5);
    open_store(f);
    struct pulled p;
    assert_int_equal(pull(f, 1, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 4);
    expect_user_event(p.ev[2], "Login", "u", T0 + 1);
    expect_user_event(p.ev[3], "Logout", "u", T0 + 5);
    pulled_free(&p);
    assert_int_equal(pull(f, 1, RTMD_EVLOG_CHANNEL, 0, 1000, &p), 0);
    assert_int_equal(p.n, 2); /* no second Leave */
    pulled_free(&p);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, fixture_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_format),
        T(test_redis_stub),
        T(test_presence_events),
        T(test_sync_failures_never_call_back),
        T(test_pull_max_and_regions),
        T(test_pulls_in_flight_do_not_overlap),
        T(test_retain_and_drops),
        T(test_reopen_keeps_events_and_cursors),
        T(test_second_open_is_refused),
        T(test_crash_recovery),
        T(test_group_commit),
        T(test_close_flushes),
        T(test_close_idle),
        T(test_rate),
        T(test_commit_failure),
        T(test_takeover_in_one_call),
    };
    rtmd_log_level = RTMD_LOG_WARN;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
