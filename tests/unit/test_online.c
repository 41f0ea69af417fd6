/*
 * Unit tests for who is online on one node (presence/online.c and the uid
 * order presence.c keeps per channel): cursors, the uid order, sorting
 * status uids, and a channel's by_uid staying the sorted list of its members
 * through random joins, leaves and session ends (against a store that
 * accepts every call and answers none: presence changes its state when the
 * call is made).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "presence/online.h"
#include "presence/presence.h"

/* ---- cursors and order ------------------------------------------------------------ */

static void test_cursor_round_trip(void **state)
{
    (void)state;
    const char *uids[] = {"a", "alice", "A b%c", "~",
                          "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof(uids) / sizeof(uids[0]); i++) {
        char enc[RTMD_CURSOR_MAX + 1], dec[RTMD_ID_MAX];
        size_t n = rtmd_online_cursor_encode(rtmd_str_cstr(uids[i]), enc), len = 0;
        assert_int_equal(n, 2 * strlen(uids[i]));
        assert_true(rtmd_online_cursor_decode(rtmd_str_make(enc, n), dec, &len));
        assert_int_equal(len, strlen(uids[i]));
        assert_memory_equal(dec, uids[i], len);
    }
}

static void test_cursor_refuses_what_is_not_one(void **state)
{
    (void)state;
    const char *bad[] = {"", "6", "616", "zz", "0a", "6e756c6c" /* "null" */, "61 62", "2f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char dec[RTMD_ID_MAX];
        size_t len;
        assert_false(rtmd_online_cursor_decode(rtmd_str_cstr(bad[i]), dec, &len));
    }
    char long_cursor[2 * RTMD_ID_MAX + 3];
    memset(long_cursor, '6', sizeof(long_cursor) - 1);
    long_cursor[sizeof(long_cursor) - 1] = '\0';
    char dec[RTMD_ID_MAX];
    size_t len;
    assert_false(rtmd_online_cursor_decode(rtmd_str_cstr(long_cursor), dec, &len));
}

static void test_uid_order_is_bytewise_prefix_first(void **state)
{
    (void)state;
    assert_true(rtmd_online_uid_cmp(RTMD_STR_LIT("B"), RTMD_STR_LIT("a")) < 0);
    assert_true(rtmd_online_uid_cmp(RTMD_STR_LIT("ab"), RTMD_STR_LIT("abc")) < 0);
    assert_true(rtmd_online_uid_cmp(RTMD_STR_LIT("abc"), RTMD_STR_LIT("ab")) > 0);
    assert_int_equal(rtmd_online_uid_cmp(RTMD_STR_LIT("x"), RTMD_STR_LIT("x")), 0);
    struct rtmd_str u[] = {RTMD_STR_LIT("b"), RTMD_STR_LIT("a"), RTMD_STR_LIT("b"),
                           RTMD_STR_LIT("ab"), RTMD_STR_LIT("a")};
    size_t n = rtmd_online_sort_uids(u, 5);
    assert_int_equal(n, 3);
    assert_true(rtmd_str_eq_cstr(u[0], "a") && rtmd_str_eq_cstr(u[1], "ab") &&
                rtmd_str_eq_cstr(u[2], "b"));
}

/* ---- by_uid through churn ---------------------------------------------------------- */

static struct {
    rtmd_store_cb cb;
    void *arg;
} pending_[1 << 14];
static size_t n_pending_;

static int fake_presence(struct rtmd_store *s, const struct rtmd_app *app,
                         const struct rtmd_presence_op *ops, size_t n, rtmd_store_cb cb, void *arg)
{
    (void)s, (void)app, (void)ops, (void)n;
    if (n_pending_ == sizeof(pending_) / sizeof(pending_[0]))
        return -EAGAIN;
    pending_[n_pending_].cb = cb; /* answered at the end of the test */
    pending_[n_pending_++].arg = arg;
    return 0;
}

static const struct rtmd_store_type fake_type_ = {.name = "fake", .presence = fake_presence};

static void check_channel(const struct rtmd_app *app, const bool *in, size_t n_uids)
{
    struct rtmd_channel *ch = rtmd_presence_channel(app, RTMD_STR_LIT("room"));
    size_t want = 0;
    for (size_t i = 0; i < n_uids; i++)
        want += in[i];
    if (want == 0) {
        assert_null(ch);
        return;
    }
    assert_non_null(ch);
    assert_int_equal(ch->n_members, want);
    for (uint32_t i = 0; i + 1 < ch->n_members; i++)
        assert_true(rtmd_online_uid_cmp(
                        rtmd_str_make(ch->by_uid[i]->uid, ch->by_uid[i]->uid_len),
                        rtmd_str_make(ch->by_uid[i + 1]->uid, ch->by_uid[i + 1]->uid_len)) < 0);
    for (uint32_t i = 0; i < ch->n_members; i++) {
        const struct rtmd_session *s = ch->by_uid[i];
        unsigned k = (unsigned)strtoul(s->uid + 1, NULL, 10);
        assert_true(k < n_uids && in[k]);
        /* the page after this uid starts at the next one */
        assert_int_equal(rtmd_channel_after(ch, rtmd_str_make(s->uid, s->uid_len)), i + 1);
    }
    assert_int_equal(rtmd_channel_after(ch, RTMD_STR_NULL), 0);
}

static void test_by_uid_follows_joins_leaves_and_ends(void **state)
{
    (void)state;
    struct rtmd_app app = {.id = "0123456789abcdef0123456789abcdef", .index = 0};
    struct rtmd_app *apps[] = {&app};
    struct rtmd_config cfg = {0};
    cfg.apps = apps;
    cfg.n_apps = 1;
    cfg.limits.max_channels_per_user = 20;
    struct rtmd_store store = {&fake_type_};
    assert_int_equal(rtmd_presence_init(&cfg, &store, NULL, NULL), 0);

    enum { N = 300 };
    struct rtmd_session *s[N], *all[4 * N];
    size_t n_all = 0;
    bool in[N] = {false};
    char uid[16];
    srand(7);
    for (int i = 0; i < N; i++) {
        s[i] = all[n_all++] = rtmd_session_new(NULL);
        int n = snprintf(uid, sizeof(uid), "u%d", i);
        assert_int_equal(rtmd_presence_login(s[i], &app, rtmd_str_make(uid, (size_t)n), NULL, NULL),
                         0);
    }
    for (int step = 0; step < 4000; step++) {
        int k = rand() % N;
        if (s[k]->state != RTMD_SESSION_ONLINE) {
            /* a new session of the same uid (the old one ended) */
            if (n_all == sizeof(all) / sizeof(all[0]))
                continue;
            s[k] = all[n_all++] = rtmd_session_new(NULL);
            int n = snprintf(uid, sizeof(uid), "u%d", k);
            assert_int_equal(
                rtmd_presence_login(s[k], &app, rtmd_str_make(uid, (size_t)n), NULL, NULL), 0);
        } else if (!in[k]) {
            assert_int_equal(rtmd_presence_join(s[k], RTMD_STR_LIT("room"), NULL, NULL), 0);
            in[k] = true;
        } else if (rand() % 4) {
            assert_int_equal(rtmd_presence_leave(s[k], RTMD_STR_LIT("room"), NULL, NULL), 0);
            in[k] = false;
        } else {
            rtmd_presence_end(s[k], NULL, NULL);
            in[k] = false;
        }
        if (step % 97 == 0)
            check_channel(&app, in, N);
    }
    check_channel(&app, in, N);
    /* a takeover ends the old session's memberships */
    for (int k = 0; k < N; k++)
        if (in[k]) {
            struct rtmd_session *t = all[n_all++] = rtmd_session_new(NULL);
            int n = snprintf(uid, sizeof(uid), "u%d", k);
            assert_int_equal(
                rtmd_presence_login(t, &app, rtmd_str_make(uid, (size_t)n), NULL, NULL), 0);
            in[k] = false;
            break;
        }
    check_channel(&app, in, N);
    /* the end: every session ends and is released, the store answers every call */
    for (size_t i = 0; i < n_all; i++) {
        if (all[i]->state == RTMD_SESSION_ONLINE)
            assert_int_equal(rtmd_presence_end(all[i], NULL, NULL), 0);
        rtmd_session_release(all[i]);
    }
    for (size_t i = 0; i < n_pending_; i++)
        pending_[i].cb(pending_[i].arg, 0);
    assert_null(rtmd_presence_channel(&app, RTMD_STR_LIT("room")));
    rtmd_presence_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_cursor_refuses_what_is_not_one),
        cmocka_unit_test(test_uid_order_is_bytewise_prefix_first),
        cmocka_unit_test(test_by_uid_follows_joins_leaves_and_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
