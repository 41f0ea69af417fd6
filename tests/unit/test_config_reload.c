/*
 * test_config_reload.c — rtmd_config_merge(): a config loaded again merged
 * into the running one in place (SIGHUP). Public API only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"

#define A1 "11111111111111111111111111111111"
#define A2 "22222222222222222222222222222222"
#define A3 "33333333333333333333333333333333"
#define C1 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define C2 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char err[1024];

static struct rtmd_config *load(const char *text)
{
    struct rtmd_config *cfg = rtmd_config_load_string("t.ini", text, err, sizeof(err));
    if (!cfg)
        fail_msg("did not load: %s\n--- text:\n%s", err, text);
    return cfg;
}

static const char base_[] = "[server]\nlisten = 127.0.0.1:0@default\ndata_dir = /tmp/x\n"
                            "log_level = info\n"
                            "[limits]\nmax_channels_per_user = 20\nheartbeat_timeout_s = 30\n"
                            "[customer:cust]\nsecret = secret-one\napps = " A1 ", " A2 "\n"
                            "[app:" A1 "]\ncertificate = " C1 "\n";

static struct rtmd_app *app(const struct rtmd_config *cfg, const char *id)
{
    return rtmd_config_app(cfg, rtmd_str_cstr(id));
}

static void test_unchanged_file_changes_nothing(void **state)
{
    (void)state;
    struct rtmd_config *live = load(base_);
    struct rtmd_app *a1 = app(live, A1), *a2 = app(live, A2);
    struct rtmd_config_changes ch;
    rtmd_config_merge(live, load(base_), &ch);
    assert_int_equal(ch.n_added + ch.n_removed + ch.n_readded + ch.n_apps_changed, 0);
    assert_string_equal(ch.restart_keys, "");
    assert_ptr_equal(app(live, A1), a1);
    assert_ptr_equal(app(live, A2), a2);
    assert_int_equal(a1->n_owners, 1);
    assert_string_equal(a1->owners[0]->id, "cust");
    assert_ptr_equal(live->customers[0], a1->owners[0]);
    rtmd_config_changes_free(&ch);
    rtmd_config_free(live);
}

static void test_apps_added_removed_changed_and_back(void **state)
{
    (void)state;
    struct rtmd_config *live = load(base_);
    struct rtmd_app *a1 = app(live, A1), *a2 = app(live, A2);
    uint32_t i1 = a1->index, i2 = a2->index;
    /* A2 goes, A3 comes, A1 takes another certificate and a second owner. */
    struct rtmd_config_changes ch;
    rtmd_config_merge(live,
                      load("[server]\nlisten = 127.0.0.1:0@default\ndata_dir = /tmp/x\n"
                           "[customer:cust]\nsecret = secret-two\napps = " A1 ", " A3 "\n"
                           "[customer:other]\nsecret = secret-other\napps = " A1 "\n"
                           "[app:" A1 "]\ncertificate = " C2 "\nvendor_token_access = off\n"),
                      &ch);
    assert_int_equal(ch.n_added, 1);
    assert_int_equal(ch.n_removed, 1);
    assert_int_equal(ch.n_apps_changed, 1);
    assert_ptr_equal(ch.removed[0], a2);
    assert_true(a2->retired);
    assert_null(app(live, A2));
    assert_int_equal(a2->index, i2); /* the slot stays */
    struct rtmd_app *a3 = app(live, A3);
    assert_ptr_equal(ch.added[0], a3);
    assert_int_equal(a3->index, 2);
    assert_ptr_equal(live->apps[2], a3);
    assert_int_equal(live->n_apps, 3);
    assert_ptr_equal(app(live, A1), a1);
    assert_int_equal(a1->index, i1);
    assert_string_equal(a1->certificate, C2);
    assert_false(a1->vendor_token_access);
    assert_int_equal(a1->n_owners, 2);
    /* customers are the new file's, pointing at the running app objects */
    const struct rtmd_customer *c = rtmd_config_customer(live, rtmd_str_cstr("cust"));
    assert_non_null(c);
    assert_string_equal(c->secret, "secret-two");
    assert_int_equal(c->n_apps, 2);
    assert_ptr_equal(c->apps[0], a1);
    assert_ptr_equal(c->apps[1], a3);
    assert_non_null(rtmd_config_customer(live, rtmd_str_cstr("other")));
    rtmd_config_changes_free(&ch);

    /* A2 back: its old object and index */
    rtmd_config_merge(live, load(base_), &ch);
    assert_int_equal(ch.n_readded, 1);
    assert_int_equal(ch.n_added, 0);
    assert_int_equal(ch.n_removed, 1); /* A3 */
    assert_ptr_equal(app(live, A2), a2);
    assert_false(a2->retired);
    assert_int_equal(a2->index, i2);
    assert_int_equal(live->n_apps, 3);
    assert_null(rtmd_config_customer(live, rtmd_str_cstr("other")));
    rtmd_config_changes_free(&ch);
    rtmd_config_free(live);
}

static void test_live_keys_change_restart_keys_are_named(void **state)
{
    (void)state;
    struct rtmd_config *live = load(base_);
    struct rtmd_config_changes ch;
    rtmd_config_merge(live,
                      load("[server]\nlisten = 127.0.0.1:1@default\ndata_dir = /tmp/y\n"
                           "log_level = debug\ndrain_s = 9\n"
                           "[limits]\nmax_channels_per_user = 2\nheartbeat_timeout_s = 31\n"
                           "[customer:cust]\nsecret = secret-one\napps = " A1 ", " A2 "\n"
                           "[app:" A1 "]\ncertificate = " C1 "\n"),
                      &ch);
    assert_int_equal(live->log_level, RTMD_LOG_DEBUG);
    assert_int_equal(live->drain_s, 9);
    assert_int_equal(live->limits.max_channels_per_user, 2);
    assert_int_equal(live->limits.heartbeat_timeout_s, 30);
    assert_int_equal(live->listeners[0].port, 0);
    assert_string_equal(live->data_dir, "/tmp/x");
    assert_string_equal(ch.restart_keys, "listen, data_dir, heartbeat_timeout_s");
    rtmd_config_changes_free(&ch);
    rtmd_config_free(live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unchanged_file_changes_nothing),
        cmocka_unit_test(test_apps_added_removed_changed_and_back),
        cmocka_unit_test(test_live_keys_change_restart_keys_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
