/*
 * Unit tests for the embedded store's webhook outbox (store.h outbox_*,
 * docs/WEBHOOKS.md): events a webhook wants are written in the commit of
 * the event, in commit order, with app, log, seq, time, JSON and session;
 * a read returns rows after the webhook's durable position without moving
 * it; the next read's ack moves it (never back) and prunes; a webhook new
 * to the database starts after the rows already there; pulls and outbox
 * reads do not consume each other; kill -9 loses nothing acknowledged and
 * recovery's Leaves and Logouts enter the outbox; notify brings the newest
 * id. Real SQLite in a temp dir, a real loop.
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

static struct rtmd_webhook_config hook_user = {.name = "users", .events = RTMD_WEBHOOK_USER};
static struct rtmd_webhook_config hook_all = {.name = "all",
                                              .events = RTMD_WEBHOOK_USER | RTMD_WEBHOOK_CHANNEL};
static struct rtmd_webhook_config *hooks_[2] = {&hook_user, &hook_all};

/* fixture_config() with two webhooks: "users" (user events) and "all". */
static struct rtmd_config *make_config(struct fixture *f)
{
    struct rtmd_config *cfg = fixture_config(f);
    cfg->webhooks = hooks_;
    cfg->n_webhooks = 2;
    return cfg;
}

static int setup(void **state)
{
    return fixture_setup(state, "outbox", make_config, T0);
}

static void open_store(struct fixture *f)
{
    assert_int_equal(rtmd_store_open(&f->store, f->cfg, &f->loop), 0);
}

static struct rtmd_presence_op op_make(enum rtmd_event_type type, const char *uid,
                                       const char *channel, uint64_t ms)
{
    struct rtmd_presence_op op = {type, rtmd_str_cstr(uid), rtmd_str_cstr(channel), ms, 3};
    return op;
}

static int presence_n(struct fixture *f, int app, const struct rtmd_presence_op *ops, size_t n)
{
    struct result r = {0, 0};
    return await_callback(f, rtmd_store_presence(f->store, &f->apps[app], ops, n, on_done, &r),
                          &r.calls, &r.status);
}

/* What a read returned: one line a row, "ID APP4 K SEQ +MS TYPE", APP4 the
 * App ID's first 4 characters, K u or c, MS counted from T0. */
struct read {
    int calls;
    int status;
    size_t n;
    uint64_t position, newest, last_id;
    char rows[64][96];
    char json0[512];
    char session0[64];
};

static void on_rows(void *arg, int status, const struct rtmd_outbox_batch *b)
{
    struct read *r = arg;
    r->calls++;
    r->status = status;
    r->n = b->n;
    r->position = b->position;
    r->newest = b->newest;
    for (size_t i = 0; i < b->n && i < 64; i++) {
        const struct rtmd_outbox_row *w = &b->rows[i];
        const char *type = strstr(w->json.p, "\"type\":\"");
        assert_non_null(type);
        type += 8;
        snprintf(r->rows[i], sizeof(r->rows[i]), "%llu %.4s %c %llu +%llu %.*s",
                 (unsigned long long)w->id, w->app.p,
                 w->kind == RTMD_EVLOG_USER      ? 'u'
                 : w->kind == RTMD_EVLOG_CHANNEL ? 'c'
                                                 : 'm',
                 (unsigned long long)w->seq, (unsigned long long)(w->ms - T0),
                 (int)(strchr(type, '"') - type), type);
        r->last_id = w->id;
    }
    if (b->n) {
        snprintf(r->json0, sizeof(r->json0), "%.*s", (int)b->rows[0].json.len, b->rows[0].json.p);
        snprintf(r->session0, sizeof(r->session0), "%.*s", (int)b->rows[0].session.len,
                 b->rows[0].session.p);
    }
}

static int read_outbox(struct fixture *f, const char *hook, uint64_t ack, uint64_t prune,
                       uint32_t max, struct read *r)
{
    memset(r, 0, sizeof(*r));
    return await_callback(
        f, rtmd_store_outbox_read(f->store, rtmd_str_cstr(hook), ack, prune, max, on_rows, r),
        &r->calls, &r->status);
}

static void four_events(struct fixture *f, int app, const char *uid, uint64_t ms)
{
    struct rtmd_presence_op ops[4] = {
        op_make(RTMD_EVENT_LOGIN, uid, NULL, ms),
        op_make(RTMD_EVENT_JOIN, uid, "c", ms + 1),
        op_make(RTMD_EVENT_LEAVE, uid, "c", ms + 2),
        op_make(RTMD_EVENT_LOGOUT, uid, NULL, ms + 3),
    };
    assert_int_equal(presence_n(f, app, ops, 2), 0);
    assert_int_equal(presence_n(f, app, ops + 2, 2), 0);
}

/* ---- tests ---- */

static void test_rows_in_commit_order_read_again_until_acked(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    four_events(f, 0, "a", T0);
    four_events(f, 1, "b", T0 + 10);
    struct read r;
    assert_int_equal(read_outbox(f, "all", 0, 0, 100, &r), 0);
    assert_int_equal(r.n, 8);
    assert_int_equal(r.position, 0);
    assert_int_equal(r.newest, 8);
    const char *want[8] = {"1 970C u 1 +0 Login",  "2 970C c 1 +1 Join",   "3 970C c 2 +2 Leave",
                           "4 970C u 2 +3 Logout", "5 0123 u 1 +10 Login", "6 0123 c 1 +11 Join",
                           "7 0123 c 2 +12 Leave", "8 0123 u 2 +13 Logout"};
    for (int i = 0; i < 8; i++)
        assert_string_equal(r.rows[i], want[i]);
    assert_string_equal(r.json0,
                        "{\"ms\":1578027420761,\"ts\":1578027420761,\"type\":\"Login\",\"user_id\":"
                        "\"a\"}");
    assert_string_equal(r.session0, "7|3");
    /* Reading does not move the position: the same rows again, max applies. */
    assert_int_equal(read_outbox(f, "all", 0, 0, 3, &r), 0);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.rows[0], want[0]);
    /* The ack rides on the next read: after 3, rows 4.. */
    assert_int_equal(read_outbox(f, "all", 3, 0, 100, &r), 0);
    assert_int_equal(r.position, 3);
    assert_int_equal(r.n, 5);
    assert_string_equal(r.rows[0], want[3]);
    /* A position never moves back. */
    assert_int_equal(read_outbox(f, "all", 2, 0, 100, &r), 0);
    assert_int_equal(r.position, 3);
    assert_int_equal(read_outbox(f, "all", 8, 0, 100, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.position, 8);
    /* The other webhook has its own position. */
    assert_int_equal(read_outbox(f, "users", 0, 0, 100, &r), 0);
    assert_int_equal(r.n, 8);
    assert_int_equal(r.position, 0);
}

static void test_positions_and_rows_survive_a_restart_and_prune(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    four_events(f, 0, "a", T0);
    struct read r;
    assert_int_equal(read_outbox(f, "all", 2, 0, 100, &r), 0);
    close_store(f);
    assert_int_equal(db_count(f, "SELECT COUNT(*) FROM webhook_outbox"), 4);
    open_store(f);
    assert_int_equal(read_outbox(f, "all", 0, 0, 100, &r), 0);
    assert_int_equal(r.position, 2);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.rows[0], "3 970C c 2 +2 Leave");
    /* Rows up to prune_upto go (the caller passes the lowest position). */
    assert_int_equal(read_outbox(f, "users", 3, 3, 100, &r), 0);
    assert_int_equal(r.n, 1);
    close_store(f);
    assert_int_equal(db_count(f, "SELECT COUNT(*) FROM webhook_outbox"), 1);
    assert_int_equal(db_count(f, "SELECT MIN(id) FROM webhook_outbox"), 4);
    /* Ids never come back, even once the table is empty. */
    open_store(f);
    assert_int_equal(read_outbox(f, "all", 4, 4, 100, &r), 0);
    assert_int_equal(read_outbox(f, "users", 4, 4, 100, &r), 0);
    four_events(f, 0, "b", T0 + 100);
    assert_int_equal(read_outbox(f, "all", 0, 0, 100, &r), 0);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.rows[0], "5 970C u 3 +100 Login");
}

static void test_a_new_webhook_starts_after_the_rows_there(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    four_events(f, 0, "a", T0);
    struct read r;
    assert_int_equal(read_outbox(f, "latecomer", 0, 0, 100, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.position, 4);
    assert_int_equal(r.newest, 4);
    four_events(f, 0, "b", T0 + 10);
    assert_int_equal(read_outbox(f, "latecomer", 0, 0, 100, &r), 0);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.rows[0], "5 970C u 3 +10 Login");
}

static void test_only_watched_kinds_enter_the_outbox(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    rtmd_store_outbox_watch(f->store, 1u << RTMD_EVLOG_USER, NULL, NULL);
    four_events(f, 0, "a", T0);
    rtmd_store_outbox_watch(f->store, 0, NULL, NULL);
    four_events(f, 0, "b", T0 + 10);
    struct read r;
    assert_int_equal(read_outbox(f, "all", 0, 0, 100, &r), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.rows[0], "1 970C u 1 +0 Login");
    assert_string_equal(r.rows[1], "2 970C u 2 +3 Logout");
}

struct notified {
    int calls;
    uint64_t newest;
};

static void on_notify(void *ctx, uint64_t newest)
{
    struct notified *n = ctx;
    n->calls++;
    n->newest = newest;
}

static void test_notify_brings_the_newest_id(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct notified n = {0, 0};
    rtmd_store_outbox_watch(f->store, 3, on_notify, &n);
    four_events(f, 0, "a", T0);
    assert_true(n.calls >= 1);
    assert_int_equal(n.newest, 4);
    /* A pull or an outbox read writes no outbox row: no notify. */
    int before = n.calls;
    struct read r;
    assert_int_equal(read_outbox(f, "all", 4, 0, 100, &r), 0);
    assert_int_equal(n.calls, before);
}

static void on_pulled(void *arg, int status, const struct rtmd_event_batch *b)
{
    size_t *n = arg;
    assert_int_equal(status, 0);
    *n = b->n + 1; /* + 1: called */
}

static void test_pulls_and_outbox_reads_are_independent(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    four_events(f, 0, "a", T0);
    size_t n = 0;
    assert_int_equal(rtmd_store_pull(f->store, &f->apps[0], RTMD_EVLOG_USER, 0, 1000,
                                     RTMD_PULL_DRAIN, on_pulled, &n),
                     0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(n, 3); /* both user events, consumed for the region */
    struct read r;
    assert_int_equal(read_outbox(f, "all", 0, 0, 100, &r), 0);
    assert_int_equal(r.n, 4); /* the outbox still has them */
    assert_int_equal(read_outbox(f, "all", 4, 4, 100, &r), 0);
    assert_int_equal(read_outbox(f, "users", 4, 4, 100, &r), 0);
    n = 0;
    assert_int_equal(rtmd_store_pull(f->store, &f->apps[0], RTMD_EVLOG_CHANNEL, 0, 1000,
                                     RTMD_PULL_DRAIN, on_pulled, &n),
                     0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(n, 3); /* the channel log is untouched by the outbox's */
}

/* The child: Login and a Join acknowledged, then SIGKILL. */
static void crash_child(const char *dir)
{
    struct fixture c;
    child_open(&c, dir, make_config);
    struct rtmd_presence_op ops[] = {
        op_make(RTMD_EVENT_LOGIN, "u1", NULL, T0),
        op_make(RTMD_EVENT_JOIN, "u1", "room", T0 + 1),
    };
    child_record_and_die(&c, ops, RTMD_ARRAY_SIZE(ops));
}

static void test_kill9_keeps_what_was_acknowledged_and_recovery_adds_its_ends(void **state)
{
    struct fixture *f = *state;
    int status = run_child(f, crash_child);
    assert_true(WIFSIGNALED(status));
    rtmd_clock_freeze(T0 + 5000);
    open_store(f);
    struct read r;
    assert_int_equal(read_outbox(f, "all", 0, 0, 100, &r), 0);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.rows[0], "1 970C u 1 +0 Login");
    assert_string_equal(r.rows[1], "2 970C c 1 +1 Join");
    assert_string_equal(r.rows[2], "3 970C c 2 +5000 Leave");
    assert_string_equal(r.rows[3], "4 970C u 2 +5000 Logout");
}

static void on_kept(void *arg, int status)
{
    struct result *r = arg;
    r->calls++;
    r->status = status;
}

static void test_message_events(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    assert_false(rtmd_store_outbox_wants(f->store, RTMD_OUTBOX_MESSAGES)); /* not configured */
    assert_true(rtmd_store_outbox_wants(f->store, RTMD_EVLOG_USER));
    rtmd_store_outbox_watch(f->store, 1u << RTMD_OUTBOX_MESSAGES, NULL, NULL);
    assert_true(rtmd_store_outbox_wants(f->store, RTMD_OUTBOX_MESSAGES));
    struct rtmd_message m = {RTMD_MSG_PEER, rtmd_str_cstr("a"), rtmd_str_cstr("b"),
                             rtmd_str_cstr("say \"hi\""), T0 + 5};
    struct result r = {0, 0};
    assert_int_equal(
        await_callback(f, rtmd_store_outbox_message(f->store, &f->apps[1], &m, on_kept, &r),
                       &r.calls, &r.status),
        0);
    m.type = RTMD_MSG_CHANNEL;
    m.dst = rtmd_str_cstr("room");
    r.calls = 0;
    assert_int_equal(
        await_callback(f, rtmd_store_outbox_message(f->store, &f->apps[1], &m, on_kept, &r),
                       &r.calls, &r.status),
        0);
    struct read rd;
    assert_int_equal(read_outbox(f, "all", 0, 0, 100, &rd), 0);
    assert_int_equal(rd.n, 2);
    assert_string_equal(rd.rows[0], "1 0123 m 1 +5 PeerMessage");
    assert_string_equal(rd.rows[1], "2 0123 m 2 +5 ChannelMessage");
    assert_string_equal(rd.json0, "{\"ms\":1578027420766,\"payload\":\"say \\\"hi\\\"\",\"to\":"
                                  "\"b\",\"ts\":1578027420766,\"type\":\"PeerMessage\","
                                  "\"user_id\":\"a\"}");
    assert_string_equal(rd.session0, "");
}

/* A database opened without webhooks gets no outbox tables; they are made
 * when a webhook first needs them (a reload adding one). */
static void test_tables_are_made_when_first_needed(void **state)
{
    struct fixture *f = *state;
    f->cfg->n_webhooks = 0;
    open_store(f);
    four_events(f, 0, "a", T0);
    close_store(f);
    assert_int_equal(db_count(f, "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'webhook%'"),
                     0);
    open_store(f);
    rtmd_store_outbox_watch(f->store, 1u << RTMD_EVLOG_USER, NULL, NULL);
    four_events(f, 0, "b", T0 + 10);
    struct read r;
    assert_int_equal(read_outbox(f, "users", 0, 0, 100, &r), 0);
    assert_int_equal(r.n, 0); /* new: starts after what is there */
    four_events(f, 0, "c", T0 + 20);
    assert_int_equal(read_outbox(f, "users", 0, 0, 100, &r), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.rows[0], "3 970C u 5 +20 Login");
    close_store(f);
    assert_int_equal(db_count(f, "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'webhook%'"),
                     2);
}

static void test_bad_reads_are_refused(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct read r;
    assert_int_equal(read_outbox(f, "all", 0, 0, 0, &r), -EINVAL);
    assert_int_equal(read_outbox(f, "all", 0, 0, RTMD_OUTBOX_READ_MAX + 1, &r), -EINVAL);
    assert_int_equal(read_outbox(f, "", 0, 0, 10, &r), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rows_in_commit_order_read_again_until_acked, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_positions_and_rows_survive_a_restart_and_prune, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_a_new_webhook_starts_after_the_rows_there, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_only_watched_kinds_enter_the_outbox, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_notify_brings_the_newest_id, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pulls_and_outbox_reads_are_independent, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(
            test_kill9_keeps_what_was_acknowledged_and_recovery_adds_its_ends, setup,
            fixture_teardown),
        cmocka_unit_test_setup_teardown(test_message_events, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tables_are_made_when_first_needed, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_reads_are_refused, setup, fixture_teardown),
    };
    return cmocka_run_group_tests_name("store_outbox", tests, NULL, NULL);
}
