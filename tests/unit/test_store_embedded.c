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
    struct rtmd_presence_op op = {type, rtmd_str_cstr(uid), rtmd_str_cstr(channel), ms, 0};
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
    return await_callback(
        f,
        rtmd_store_pull(f->store, &f->apps[app], kind, region, max, RTMD_PULL_DRAIN, on_pulled, p),
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

/* The redis backend is tested against real redis-server processes in the
 * black-box suite (test_cluster.py); here only that a bad URL fails at once. */
static void test_redis_bad_url(void **state)
{
    struct fixture *f = *state;
    struct rtmd_store *s = (struct rtmd_store *)f;
    f->cfg->backend = RTMD_STORE_REDIS;
    char *url = f->cfg->redis_url;
    f->cfg->redis_url = (char *)"http://127.0.0.1:1";
    assert_int_equal(rtmd_store_open(&s, f->cfg, &f->loop), -EINVAL);
    assert_null(s);
    f->cfg->redis_url = url;
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
    assert_int_equal(rtmd_store_pull(f->store, &f->apps[0], RTMD_EVLOG_USER, 2, 10, RTMD_PULL_DRAIN,
                                     on_pulled, &p),
                     -EINVAL);
    assert_int_equal(rtmd_store_pull(f->store, &f->apps[0], RTMD_EVLOG_USER, 0, 0, RTMD_PULL_DRAIN,
                                     on_pulled, &p),
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
    assert_int_equal(impl(f)->apps[0]->logs[RTMD_EVLOG_USER].log.last_seq, 1);
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
    assert_int_equal(rtmd_store_pull(f->store, &f->apps[0], RTMD_EVLOG_CHANNEL, 0, 3,
                                     RTMD_PULL_DRAIN, on_pulled, &a),
                     0);
    assert_int_equal(rtmd_store_pull(f->store, &f->apps[0], RTMD_EVLOG_CHANNEL, 0, 3,
                                     RTMD_PULL_DRAIN, on_pulled, &b),
                     0);
    assert_int_equal(rtmd_store_pull(f->store, &f->apps[0], RTMD_EVLOG_CHANNEL, 0, 3,
                                     RTMD_PULL_DRAIN, on_pulled, &c),
                     0);
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
    assert_int_equal(impl(f)->apps[0]->logs[RTMD_EVLOG_USER].log.last_seq, 3);
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
    child_record_and_die(&c, ops, RTMD_ARRAY_SIZE(ops));
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
    assert_int_equal(rtmd_evlog_unread(&impl(f)->apps[0]->logs[0].log, 0), 1);

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

/* ---- a full disk ---- */

/*
 * A VFS over the default one whose writes fail with SQLITE_FULL while
 * disk_full is set, as SQLite's own unix VFS fails them on ENOSPC: every
 * commit then fails where a full disk makes it fail, deterministically.
 * Registered as the default before the tests run (the store opens with it).
 */
static int disk_full;
static sqlite3_vfs *real_vfs;
static sqlite3_vfs full_vfs;
static sqlite3_io_methods full_io;

struct full_file {
    sqlite3_file base;
    sqlite3_file *real; /* right after this struct, in the same allocation */
};

static sqlite3_file *real_file(sqlite3_file *f)
{
    return ((struct full_file *)f)->real;
}

static void set_disk_full(bool full)
{
    __atomic_store_n(&disk_full, full, __ATOMIC_SEQ_CST);
}

static int full_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    if (__atomic_load_n(&disk_full, __ATOMIC_SEQ_CST))
        return SQLITE_FULL;
    return real_file(f)->pMethods->xWrite(real_file(f), p, n, off);
}

#define FORWARD(name, params, args)                                                                \
    static int full_##name params                                                                  \
    {                                                                                              \
        return real_file(f)->pMethods->name args;                                                  \
    }
FORWARD(xRead, (sqlite3_file * f, void *p, int n, sqlite3_int64 off), (real_file(f), p, n, off))
FORWARD(xTruncate, (sqlite3_file * f, sqlite3_int64 size), (real_file(f), size))
FORWARD(xSync, (sqlite3_file * f, int flags), (real_file(f), flags))
FORWARD(xFileSize, (sqlite3_file * f, sqlite3_int64 *size), (real_file(f), size))
FORWARD(xLock, (sqlite3_file * f, int lock), (real_file(f), lock))
FORWARD(xUnlock, (sqlite3_file * f, int lock), (real_file(f), lock))
FORWARD(xCheckReservedLock, (sqlite3_file * f, int *out), (real_file(f), out))
FORWARD(xFileControl, (sqlite3_file * f, int op, void *arg), (real_file(f), op, arg))
FORWARD(xSectorSize, (sqlite3_file * f), (real_file(f)))
FORWARD(xDeviceCharacteristics, (sqlite3_file * f), (real_file(f)))
FORWARD(xShmMap, (sqlite3_file * f, int pg, int size, int extend, void volatile **out),
        (real_file(f), pg, size, extend, out))
FORWARD(xShmLock, (sqlite3_file * f, int off, int n, int flags), (real_file(f), off, n, flags))
FORWARD(xShmUnmap, (sqlite3_file * f, int del), (real_file(f), del))
FORWARD(xFetch, (sqlite3_file * f, sqlite3_int64 off, int n, void **out),
        (real_file(f), off, n, out))
FORWARD(xUnfetch, (sqlite3_file * f, sqlite3_int64 off, void *p), (real_file(f), off, p))
#undef FORWARD

static void full_xShmBarrier(sqlite3_file *f)
{
    real_file(f)->pMethods->xShmBarrier(real_file(f));
}

static int full_close(sqlite3_file *f)
{
    int rc = real_file(f)->pMethods ? real_file(f)->pMethods->xClose(real_file(f)) : SQLITE_OK;
    f->pMethods = NULL;
    return rc;
}

static int full_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    struct full_file *ff = (struct full_file *)f;
    ff->real = (sqlite3_file *)&ff[1];
    memset(ff->real, 0, (size_t)real_vfs->szOsFile);
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out_flags);
    f->pMethods = ff->real->pMethods ? &full_io : NULL;
    return rc;
}

#define VFS_FORWARD(name, params, args)                                                            \
    static int full_##name params                                                                  \
    {                                                                                              \
        (void)vfs;                                                                                 \
        return real_vfs->name args;                                                                \
    }
VFS_FORWARD(xDelete, (sqlite3_vfs * vfs, const char *name, int sync), (real_vfs, name, sync))
VFS_FORWARD(xAccess, (sqlite3_vfs * vfs, const char *name, int flags, int *out),
            (real_vfs, name, flags, out))
VFS_FORWARD(xFullPathname, (sqlite3_vfs * vfs, const char *name, int n, char *out),
            (real_vfs, name, n, out))
VFS_FORWARD(xRandomness, (sqlite3_vfs * vfs, int n, char *out), (real_vfs, n, out))
VFS_FORWARD(xSleep, (sqlite3_vfs * vfs, int us), (real_vfs, us))
VFS_FORWARD(xCurrentTime, (sqlite3_vfs * vfs, double *out), (real_vfs, out))
VFS_FORWARD(xGetLastError, (sqlite3_vfs * vfs, int n, char *out), (real_vfs, n, out))
VFS_FORWARD(xCurrentTimeInt64, (sqlite3_vfs * vfs, sqlite3_int64 *out), (real_vfs, out))
#undef VFS_FORWARD

static void install_full_vfs(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    full_io = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = full_close,
        .xRead = full_xRead,
        .xWrite = full_write,
        .xTruncate = full_xTruncate,
        .xSync = full_xSync,
        .xFileSize = full_xFileSize,
        .xLock = full_xLock,
        .xUnlock = full_xUnlock,
        .xCheckReservedLock = full_xCheckReservedLock,
        .xFileControl = full_xFileControl,
        .xSectorSize = full_xSectorSize,
        .xDeviceCharacteristics = full_xDeviceCharacteristics,
        .xShmMap = full_xShmMap,
        .xShmLock = full_xShmLock,
        .xShmBarrier = full_xShmBarrier,
        .xShmUnmap = full_xShmUnmap,
        .xFetch = full_xFetch,
        .xUnfetch = full_xUnfetch,
    };
    full_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct full_file) + real_vfs->szOsFile,
        .mxPathname = real_vfs->mxPathname,
        .zName = "rtmd-test-full",
        .xOpen = full_open,
        .xDelete = full_xDelete,
        .xAccess = full_xAccess,
        .xFullPathname = full_xFullPathname,
        .xRandomness = full_xRandomness,
        .xSleep = full_xSleep,
        .xCurrentTime = full_xCurrentTime,
        .xGetLastError = full_xGetLastError,
        .xCurrentTimeInt64 = full_xCurrentTimeInt64,
    };
    sqlite3_vfs_register(&full_vfs, 1);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void on_tick_closed(uv_handle_t *h)
{
    (void)h;
}

/* Runs the loop until cond(f) holds (the worker retries on its own clock;
 * a 1 ms timer keeps the loop alive, as a server's listeners do): fails
 * after 10 s. */
static void run_until(struct fixture *f, bool (*cond)(struct fixture *f))
{
    uv_timer_t tick;
    uv_timer_init(&f->loop, &tick);
    uv_timer_start(&tick, on_tick, 1, 1);
    uint64_t deadline = uv_hrtime() + 10000000000ull;
    while (!cond(f)) {
        assert_true(uv_hrtime() < deadline);
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&tick, on_tick_closed);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static struct rtmd_store_stats stats_of(struct fixture *f)
{
    struct rtmd_store_stats st;
    rtmd_store_stats(f->store, &st);
    return st;
}

/* Nothing owed, no write failing, and what the worker finished is called
 * back. */
static bool nothing_owed(struct fixture *f)
{
    struct embedded *s = impl(f);
    struct rtmd_store_stats st = stats_of(f);
    uv_mutex_lock(&s->mu);
    bool posted = rtmd_list_empty(&s->outbox);
    uv_mutex_unlock(&s->mu);
    return st.owed_records == 0 && st.write_error == 0 && posted && rtmd_list_empty(&s->done);
}

/* Each test starts with room on the disk, whatever the last one left. */
static int full_setup(void **state)
{
    set_disk_full(false);
    return setup(state);
}

static bool store_failing(struct fixture *f)
{
    return stats_of(f).write_error != 0;
}

static int history_put1(struct fixture *f, const char *src, const char *dst)
{
    struct rtmd_message m = {RTMD_MSG_PEER, rtmd_str_cstr(src), rtmd_str_cstr(dst),
                             rtmd_str_cstr("hi"), T0};
    struct result r = {0, 0};
    return await_callback(f,
                          rtmd_store_history_put(f->store, &f->apps[0], &m, NULL, 0, on_done, &r),
                          &r.calls, &r.status);
}

static void test_full_disk_keeps_leaves_and_logouts_in_order(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "a", NULL, T0), 0);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_JOIN, "a", "x", T0 + 1), 0);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "b", NULL, T0 + 2), 0);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "d", NULL, T0 + 3), 0);

    set_disk_full(true);
    /* a's session ends: not written, but kept; the call is done. */
    struct rtmd_presence_op end_a[2] = {
        op_make(RTMD_EVENT_LEAVE, "a", "x", T0 + 10),
        op_make(RTMD_EVENT_LOGOUT, "a", NULL, T0 + 10),
    };
    assert_int_equal(presence_n(f, 0, end_a, 2), -EINPROGRESS);
    struct rtmd_store_stats st = stats_of(f);
    assert_int_equal(st.owed_records, 2);
    assert_int_equal(st.write_error, -ENOSPC);
    /* While records are owed: a Login fails at once, a Logout is owed after
     * them, and a takeover's Login fails while its Logout is owed. */
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "c", NULL, T0 + 11), -ENOSPC);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGOUT, "b", NULL, T0 + 12), -EINPROGRESS);
    struct rtmd_presence_op takeover[2] = {
        op_make(RTMD_EVENT_LOGOUT, "d", NULL, T0 + 13),
        op_make(RTMD_EVENT_LOGIN, "d", NULL, T0 + 13),
    };
    assert_int_equal(presence_n(f, 0, takeover, 2), -ENOSPC);
    assert_int_equal(stats_of(f).owed_records, 4);
    /* A pull whose read position cannot be written fails and consumes
     * nothing; a message to keep fails. */
    struct pulled p;
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), -ENOSPC);
    assert_int_equal(p.n, 0);
    assert_int_equal(rtmd_evlog_unread(&impl(f)->apps[0]->logs[RTMD_EVLOG_USER].log, 0), 3);
    assert_int_equal(history_put1(f, "a", "b"), -ENOSPC);

    set_disk_full(false);
    run_until(f, nothing_owed); /* with no call made: the retry comes by itself */
    /* Written once, in call order, after the Logins they end; no Login of c,
     * no second Login of d. */
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 6);
    expect_user_event(p.ev[0], "Login", "a", T0);
    expect_user_event(p.ev[1], "Login", "b", T0 + 2);
    expect_user_event(p.ev[2], "Login", "d", T0 + 3);
    expect_user_event(p.ev[3], "Logout", "a", T0 + 10);
    expect_user_event(p.ev[4], "Logout", "b", T0 + 12);
    expect_user_event(p.ev[5], "Logout", "d", T0 + 13);
    pulled_free(&p);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_CHANNEL, 0, 1000, &p), 0);
    assert_int_equal(p.n, 2);
    expect_channel_event(p.ev[1], "Leave", "a", "x", T0 + 10);
    pulled_free(&p);
    st = stats_of(f);
    assert_int_equal(st.sessions, 0);
    assert_int_equal(st.events_recorded[RTMD_EVLOG_USER], 6);
    /* And writes go on as before. */
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "c", NULL, T0 + 20), 0);
    assert_int_equal(history_put1(f, "c", "b"), 0);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 1);
    expect_user_event(p.ev[0], "Login", "c", T0 + 20);
    pulled_free(&p);
    /* The other region reads the same log, each event once. */
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 1, 1000, &p), 0);
    assert_int_equal(p.n, 7);
    pulled_free(&p);
}

static void test_full_disk_a_login_never_overtakes_an_owed_logout(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "a", NULL, T0), 0);
    set_disk_full(true);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGOUT, "a", NULL, T0 + 1), -EINPROGRESS);
    /* Space is back before the retry is due: the same user logs in again at
     * once. Its Login must not be written ahead of the owed Logout: it is
     * refused until the retry wrote that, or comes after it. */
    set_disk_full(false);
    int login = presence1(f, 0, RTMD_EVENT_LOGIN, "a", NULL, T0 + 2);
    assert_true(login == 0 || login == -ENOSPC);
    run_until(f, nothing_owed);
    if (login != 0)
        assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "a", NULL, T0 + 2), 0);
    struct pulled p;
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 3);
    expect_user_event(p.ev[0], "Login", "a", T0);
    expect_user_event(p.ev[1], "Logout", "a", T0 + 1);
    expect_user_event(p.ev[2], "Login", "a", T0 + 2);
    pulled_free(&p);
    assert_int_equal(stats_of(f).sessions, 1);
}

static void test_full_disk_ends_of_what_was_never_recorded_record_nothing(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "a", NULL, T0), 0);
    set_disk_full(true);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "e", NULL, T0 + 1), -ENOSPC);
    /* Ending what was never recorded writes nothing: it needs no space. */
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGOUT, "e", NULL, T0 + 2), 0);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGOUT, "a", NULL, T0 + 3), -EINPROGRESS);
    /* Behind a's owed Logout, the same is owed too, and ends nothing. */
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "e", NULL, T0 + 4), -ENOSPC);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGOUT, "e", NULL, T0 + 5), -EINPROGRESS);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_JOIN, "e", "y", T0 + 6), -ENOSPC);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LEAVE, "e", "y", T0 + 7), -EINPROGRESS);
    assert_int_equal(stats_of(f).owed_records, 3);
    set_disk_full(false);
    run_until(f, nothing_owed);
    struct rtmd_store_stats st = stats_of(f);
    assert_int_equal(st.events_recorded[RTMD_EVLOG_USER], 2);
    assert_int_equal(st.events_recorded[RTMD_EVLOG_CHANNEL], 0);
    struct pulled p;
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 2);
    expect_user_event(p.ev[0], "Login", "a", T0);
    expect_user_event(p.ev[1], "Logout", "a", T0 + 3);
    pulled_free(&p);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_CHANNEL, 0, 1000, &p), 0);
    assert_int_equal(p.n, 0);
}

static uint32_t backoff_ms(struct fixture *f)
{
    uv_mutex_lock(&impl(f)->db_mu); /* the worker changes it under db_mu */
    uint32_t ms = impl(f)->w_backoff_ms;
    uv_mutex_unlock(&impl(f)->db_mu);
    return ms;
}

static bool backed_off(struct fixture *f)
{
    return backoff_ms(f) >= 800;
}

static void test_full_disk_probes_back_off_and_notice_space_without_traffic(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    set_disk_full(true);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "a", NULL, T0), -ENOSPC);
    assert_true(store_failing(f));
    assert_int_equal(stats_of(f).owed_records, 0);
    assert_int_equal(backoff_ms(f), RETRY_FIRST_MS);
    /* Probes every 100, 200, 400 ms...: doubling, never past the cap. */
    uint64_t t = uv_hrtime();
    run_until(f, backed_off);
    assert_true(uv_hrtime() - t >= 600000000ull); /* 100 + 200 + 400 ms, less slack */
    assert_true(backoff_ms(f) <= RETRY_MAX_MS);
    assert_true(store_failing(f));
    set_disk_full(false);
    run_until(f, nothing_owed);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "a", NULL, T0), 0);
}

static void test_full_disk_a_pull_consumes_nothing_and_tells_the_store(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "a", NULL, T0), 0);
    set_disk_full(true);
    /* The read position is written on the loop (nothing else in flight). */
    struct pulled p;
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), -ENOSPC);
    assert_int_equal(p.n, 0);
    assert_int_equal(rtmd_evlog_unread(&impl(f)->apps[0]->logs[RTMD_EVLOG_USER].log, 0), 1);
    run_until(f, store_failing); /* the worker takes the failure over: /healthz says so */
    assert_int_equal(stats_of(f).write_error, -ENOSPC);
    set_disk_full(false);
    run_until(f, nothing_owed);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 1);
    expect_user_event(p.ev[0], "Login", "a", T0);
    pulled_free(&p);
}

static void test_full_disk_at_close_leaves_the_ends_to_the_next_open(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "a", NULL, T0), 0);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_JOIN, "a", "x", T0 + 1), 0);
    set_disk_full(true);
    struct rtmd_presence_op end_a[2] = {
        op_make(RTMD_EVENT_LEAVE, "a", "x", T0 + 10),
        op_make(RTMD_EVENT_LOGOUT, "a", NULL, T0 + 10),
    };
    assert_int_equal(presence_n(f, 0, end_a, 2), -EINPROGRESS);
    close_store(f); /* one last attempt fails; the owed ops are freed */
    set_disk_full(false);
    rtmd_clock_freeze(T0 + 60000);
    open_store(f);
    struct pulled p;
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 2);
    expect_user_event(p.ev[1], "Logout", "a", T0 + 60000);
    pulled_free(&p);
    assert_int_equal(pull(f, 0, RTMD_EVLOG_CHANNEL, 0, 1000, &p), 0);
    assert_int_equal(p.n, 2);
    expect_channel_event(p.ev[1], "Leave", "a", "x", T0 + 60000);
    pulled_free(&p);
}

static void test_owed_records_that_can_never_commit_are_dropped(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "p", NULL, T0), 0);
    sqlite3_stmt *saved =
        replace_statement(f, &impl(f)->stmt[ST_SESSION_DELETE],
                          "INSERT INTO sessions(app,uid,node,login_ms) VALUES(NULL,?2,0,0)");
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGOUT, "p", NULL, T0 + 1), -EINPROGRESS);
    assert_int_equal(stats_of(f).write_error, RTMD_ESTORE);
    /* Its retry fails the same way (not a full disk): dropped, and the probe
     * then ends the failure; Logins are not blocked for good. */
    run_until(f, nothing_owed);
    restore_statement(f, &impl(f)->stmt[ST_SESSION_DELETE], saved);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "q", NULL, T0 + 2), 0);
    /* The session row is still there: the next open ends it. */
    close_store(f);
    open_store(f);
    struct pulled p;
    assert_int_equal(pull(f, 0, RTMD_EVLOG_USER, 0, 1000, &p), 0);
    assert_int_equal(p.n, 4);
    expect_user_event(p.ev[2], "Logout", "p", T0);
    expect_user_event(p.ev[3], "Logout", "q", T0);
    pulled_free(&p);
}

static void test_ends_are_never_refused_for_a_full_queue(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    assert_int_equal(presence1(f, 0, RTMD_EVENT_LOGIN, "a", NULL, T0), 0);
    struct result r = {0, 0}, login = {0, 0};
    struct rtmd_presence_op end = op_make(RTMD_EVENT_LOGOUT, "a", NULL, T0 + 1);
    struct rtmd_presence_op in = op_make(RTMD_EVENT_LOGIN, "b", NULL, T0 + 1);
    impl(f)->pending = MAX_PENDING;
    assert_int_equal(rtmd_store_presence(f->store, &f->apps[0], &in, 1, on_done, &login), -EAGAIN);
    assert_int_equal(rtmd_store_presence(f->store, &f->apps[0], &end, 1, on_done, &r), 0);
    assert_int_equal(impl(f)->pending, MAX_PENDING + 1);
    assert_int_equal(rtmd_store_presence(f->store, &f->apps[0], &in, 1, on_done, &login), -EAGAIN);
    impl(f)->pending = 1;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(login.calls, 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, fixture_teardown)
#define F(name) cmocka_unit_test_setup_teardown(name, full_setup, fixture_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_format),
        T(test_redis_bad_url),
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
        F(test_full_disk_keeps_leaves_and_logouts_in_order),
        F(test_full_disk_a_login_never_overtakes_an_owed_logout),
        F(test_full_disk_ends_of_what_was_never_recorded_record_nothing),
        F(test_full_disk_probes_back_off_and_notice_space_without_traffic),
        F(test_full_disk_a_pull_consumes_nothing_and_tells_the_store),
        F(test_full_disk_at_close_leaves_the_ends_to_the_next_open),
        F(test_owed_records_that_can_never_commit_are_dropped),
        F(test_ends_are_never_refused_for_a_full_queue),
    };
    rtmd_log_level = RTMD_LOG_WARN;
    install_full_vfs();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
