/*
 * test_config.c — the config table, the INI reader, the environment
 * overrides, the messages (exact FILE:LINE: KEY: text), the generated docs,
 * man page and sample.
 *
 * Runs from the repository root (make unit): reads the .ini files in
 * tests/unit/config/, docs/CONFIG.md and man/rtmd.conf.5.
 *
 *   build/tests/test_config --print-reference   the generated part of docs/CONFIG.md
 *   build/tests/test_config --print-man         man/rtmd.conf.5
 *   build/tests/test_config --print-sample      a first-run sample config
 * (scripts/regen-config-doc writes the first two into the repository.)
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/config_internal.h"
/* The writer's statics (roff escaping) are tested too; the archive
 * supplies the table and the reader. */
#include "core/config_write.c"

#define options      rtmd_config_options
#define N_OPTS       rtmd_config_n_options
#define opt_slot     rtmd_config_opt_slot
#define OBJ_KEYS_MAX RTMD_CONFIG_OBJ_KEYS_MAX

#define CONFIG_DIR   "tests/unit/config/"

extern char **environ;

static char err[1024];

static struct rtmd_config *load_ok(const char *path)
{
    struct rtmd_config *cfg = rtmd_config_load(path, err, sizeof(err));
    if (!cfg)
        fail_msg("%s did not load: %s", path, err);
    return cfg;
}

static struct rtmd_config *str_ok(const char *text)
{
    struct rtmd_config *cfg = rtmd_config_load_string("t.ini", text, err, sizeof(err));
    if (!cfg)
        fail_msg("did not load: %s\n--- text:\n%s", err, text);
    return cfg;
}

static void str_bad(const char *text, const char *expected)
{
    struct rtmd_config *cfg = rtmd_config_load_string("t.ini", text, err, sizeof(err));
    if (cfg) {
        rtmd_config_free(cfg);
        fail_msg("loaded, expected error: %s", expected);
    }
    assert_string_equal(err, expected);
}

/* ---- the documented sample must work as written --------------------------- */

static void test_spec_sample(void **state)
{
    (void)state;
    struct rtmd_config *cfg = load_ok(CONFIG_DIR "good_spec_sample.ini");
    assert_string_equal(cfg->path, CONFIG_DIR "good_spec_sample.ini");

    assert_int_equal(cfg->n_listeners, 2);
    assert_string_equal(cfg->listeners[0].host, "127.0.0.1");
    assert_int_equal(cfg->listeners[0].port, 8443);
    assert_string_equal(cfg->listeners[0].region, "default");
    assert_int_equal(cfg->listeners[0].region_index, 0);
    assert_string_equal(cfg->listeners[1].host, "127.0.0.1");
    assert_int_equal(cfg->listeners[1].port, 8444);
    assert_string_equal(cfg->listeners[1].region, "eu");
    assert_int_equal(cfg->listeners[1].region_index, 1);
    assert_int_equal(cfg->n_regions, 2);
    assert_string_equal(cfg->regions[0], "default");
    assert_string_equal(cfg->regions[1], "eu");
    assert_int_equal(rtmd_config_region(cfg, "eu"), 1);
    assert_int_equal(rtmd_config_region(cfg, "default"), 0);
    assert_int_equal(rtmd_config_region(cfg, "us"), -1);

    assert_true(cfg->tls);
    assert_string_equal(cfg->tls_cert, "/path/cert.pem");
    assert_string_equal(cfg->tls_key, "/path/key.pem");
    assert_string_equal(cfg->data_dir, "./rtmd-data");
    assert_int_equal(cfg->node_id, 1);
    assert_null(cfg->ready_file);
    assert_int_equal(cfg->log_level, RTMD_LOG_INFO);

    assert_int_equal(cfg->backend, RTMD_STORE_EMBEDDED);
    assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379");
    assert_int_equal(cfg->sync, RTMD_SYNC_FULL);

    const struct rtmd_limits *l = &cfg->limits;
    assert_int_equal(l->events_retain, 2000);
    assert_int_equal(l->events_max_pull, 1000);
    assert_int_equal(l->events_qps, 10);
    assert_int_equal(l->history_qps, 100);
    assert_int_equal(l->send_qps, 500);
    assert_int_equal(l->history_retention_s, 604800);
    assert_int_equal(l->heartbeat_timeout_s, 30);
    assert_int_equal(l->max_channels_per_user, 20);
    assert_int_equal(l->max_payload, 32768);

    assert_int_equal(cfg->n_customers, 1);
    struct rtmd_customer *c = rtmd_config_customer(cfg, RTMD_STR_LIT("ck_demo"));
    assert_non_null(c);
    assert_ptr_equal(c, cfg->customers[0]);
    assert_string_equal(c->secret, "4d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1f");
    assert_int_equal(c->n_apps, 2);

    assert_int_equal(cfg->n_apps, 2);
    struct rtmd_app *a = rtmd_config_app(cfg, RTMD_STR_LIT("970CA35de60c44645bbae8a215061b33"));
    struct rtmd_app *b = rtmd_config_app(cfg, RTMD_STR_LIT("0123456789abcdef0123456789abcdef"));
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_equal(c->apps[0], a);
    assert_ptr_equal(c->apps[1], b);
    assert_int_equal(a->index, 0);
    assert_int_equal(b->index, 1);
    assert_ptr_equal(cfg->apps[0], a);
    assert_ptr_equal(cfg->apps[1], b);
    assert_true(a->has_certificate);
    assert_string_equal(a->certificate, "5CFd2fd1755d40ecb72977518be15d3b");
    assert_false(b->has_certificate);
    assert_string_equal(b->certificate, "");
    assert_int_equal(a->n_owners, 1);
    assert_ptr_equal(a->owners[0], c);
    assert_int_equal(b->n_owners, 1);
    assert_ptr_equal(b->owners[0], c);
    /* Lookups are exact: App IDs are case-sensitive. */
    assert_null(rtmd_config_app(cfg, RTMD_STR_LIT("970ca35de60c44645bbae8a215061b33")));
    assert_null(rtmd_config_customer(cfg, RTMD_STR_LIT("ck_dem")));
    rtmd_config_free(cfg);
}

/* The defaults, checked against the numbers in config.h's comments. */
static void test_defaults(void **state)
{
    (void)state;
    struct rtmd_config *cfg = str_ok("");
    assert_string_equal(cfg->path, "t.ini");
    assert_int_equal(cfg->n_listeners, 1);
    assert_string_equal(cfg->listeners[0].host, "0.0.0.0");
    assert_int_equal(cfg->listeners[0].port, 8443);
    assert_string_equal(cfg->listeners[0].region, "default");
    assert_int_equal(cfg->n_regions, 1);
    assert_true(cfg->tls);
    assert_null(cfg->tls_cert);
    assert_null(cfg->tls_key);
    assert_string_equal(cfg->data_dir, "./rtmd-data");
    assert_int_equal(cfg->node_id, 1);
    assert_null(cfg->ready_file);
    assert_int_equal(cfg->log_level, RTMD_LOG_INFO);
    assert_int_equal(cfg->backend, RTMD_STORE_EMBEDDED);
    assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379");
    assert_int_equal(cfg->sync, RTMD_SYNC_FULL);
    const struct rtmd_limits *l = &cfg->limits;
    assert_int_equal(l->events_retain, 2000);
    assert_int_equal(l->events_max_pull, 1000);
    assert_int_equal(l->events_qps, 10);
    assert_int_equal(l->history_qps, 100);
    assert_int_equal(l->send_qps, 500);
    assert_int_equal(l->history_retention_s, 604800);
    assert_int_equal(l->heartbeat_timeout_s, 30);
    assert_int_equal(l->login_timeout_s, 10);
    assert_int_equal(l->max_channels_per_user, 20);
    assert_int_equal(l->max_payload, 32768);
    assert_int_equal(l->http_max_head, 16384);
    assert_int_equal(l->http_max_headers, 100);
    assert_int_equal(l->http_max_body, 1048576);
    assert_int_equal(l->http_header_timeout_ms, 10000);
    assert_int_equal(l->http_idle_timeout_s, 60);
    assert_int_equal(l->ws_max_message, 262144);
    assert_int_equal(l->ws_output_budget, 1048576);
    assert_int_equal(l->max_connections, 19000);
    assert_int_equal(l->store_timeout_ms, 5000);
    assert_int_equal(cfg->n_apps, 0);
    assert_int_equal(cfg->n_customers, 0);
    rtmd_config_free(cfg);

    /* Comments and blank lines only: still the defaults. */
    cfg = str_ok("; nothing\n# here\n\n   \n");
    assert_int_equal(cfg->n_listeners, 1);
    rtmd_config_free(cfg);
}

/* Every [limits] key of the table has its struct field: setting each to a
 * distinct in-bounds value must land in the field of the same name. */
static void test_every_limit_key(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 1 << 16);
    assert_int_equal(rtmd_buf_append_cstr(&b, "[limits]\n"), 0);
    size_t n = 0;
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &options[i];
        if (o->section != SEC_LIMITS)
            continue;
        assert_int_equal(o->type, T_U32);
        assert_non_null(o->def);
        assert_int_equal(rtmd_buf_printf(&b, "%s = %" PRIu32 "\n", o->name, o->min + 1), 0);
        n++;
    }
    assert_int_equal(n * sizeof(uint32_t), sizeof(struct rtmd_limits));
    /* [customer:]/[app:] keys fit their per-object line slots. */
    for (size_t i = 0; i < N_OPTS; i++)
        if (options[i].section >= SEC_CUSTOMER)
            assert_true(opt_slot(&options[i]) < OBJ_KEYS_MAX);
    /* The rules need room: events_max_pull <= events_retain,
     * ws_max_message >= max_payload + 1024 (its minimum + 1 is 2049). */
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    struct rtmd_config *cfg = str_ok(b.data);
    const struct rtmd_limits *l = &cfg->limits;
    assert_int_equal(l->events_retain, 2);
    assert_int_equal(l->events_max_pull, 2);
    assert_int_equal(l->max_payload, 2);
    assert_int_equal(l->ws_max_message, 2049);
    assert_int_equal(l->store_timeout_ms, 11);
    rtmd_config_free(cfg);
    rtmd_buf_free(&b);
}

static void test_lists(void **state)
{
    (void)state;
    struct rtmd_config *cfg = load_ok(CONFIG_DIR "good_lists.ini");
    assert_int_equal(cfg->n_listeners, 3);
    assert_string_equal(cfg->listeners[0].host, "127.0.0.1");
    assert_int_equal(cfg->listeners[0].port, 0);
    assert_string_equal(cfg->listeners[1].host, "::1");
    assert_int_equal(cfg->listeners[1].port, 0);
    assert_string_equal(cfg->listeners[1].region, "eu");
    assert_int_equal(cfg->listeners[1].region_index, 1);
    assert_string_equal(cfg->listeners[2].host, "0.0.0.0");
    assert_int_equal(cfg->listeners[2].port, 9000);
    assert_string_equal(cfg->listeners[2].region, "default");
    assert_int_equal(cfg->listeners[2].region_index, 0);
    assert_int_equal(cfg->n_regions, 2);
    assert_false(cfg->tls);
    assert_int_equal(cfg->node_id, 42);
    assert_string_equal(cfg->node_name, "42");
    assert_int_equal(cfg->redis_timeout_ms, 1000);
    assert_int_equal(cfg->node_timeout_s, 10);
    assert_string_equal(cfg->ready_file, "/tmp/rtmd.ready");
    assert_int_equal(cfg->log_level, RTMD_LOG_DEBUG);
    assert_int_equal(cfg->backend, RTMD_STORE_REDIS);
    assert_non_null(strstr(cfg->redis_url, "redis://:pw@cache.example:6380/0"));
    assert_non_null(strstr(cfg->redis_url, "redis://[::1]:7001"));
    assert_int_equal(cfg->sync, RTMD_SYNC_NORMAL);

    struct rtmd_customer *c1 = rtmd_config_customer(cfg, RTMD_STR_LIT("c1"));
    struct rtmd_customer *c2 = rtmd_config_customer(cfg, RTMD_STR_LIT("c2"));
    assert_non_null(c1);
    assert_non_null(c2);
    assert_string_equal(c1->secret, "s3cr3t!#pass");
    assert_int_equal(c1->n_apps, 4); /* the repeated 0001 is ignored */
    assert_int_equal(c2->n_apps, 2);
    /* 1..4 from c1, 5 from c2, 9 from its own section; 2 has a certificate. */
    assert_int_equal(cfg->n_apps, 6);
    const char *ids[] = {"00000000000000000000000000000001", "00000000000000000000000000000002",
                         "00000000000000000000000000000003", "00000000000000000000000000000004",
                         "00000000000000000000000000000005", "00000000000000000000000000000009"};
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(ids); i++) {
        assert_string_equal(cfg->apps[i]->id, ids[i]);
        assert_int_equal(cfg->apps[i]->index, i);
        assert_ptr_equal(rtmd_config_app(cfg, rtmd_str_cstr(ids[i])), cfg->apps[i]);
        assert_int_equal(cfg->apps[i]->has_certificate, i == 1);
    }
    assert_string_equal(cfg->apps[1]->certificate, "0123456789ABCDEF0123456789abcdef");
    struct rtmd_app *shared = cfg->apps[2];
    assert_int_equal(shared->n_owners, 2);
    assert_ptr_equal(shared->owners[0], c1);
    assert_ptr_equal(shared->owners[1], c2);
    assert_int_equal(cfg->apps[5]->n_owners, 0);
    rtmd_config_free(cfg);
}

/* Hundreds of apps: one per continuation line, several per line, and by
 * repeating the key, over several customers. */
static void test_many_apps(void **state)
{
    (void)state;
    enum { N = 600 };
    struct rtmd_buf b;
    rtmd_buf_init(&b, RTMD_CONFIG_FILE_MAX);
    assert_int_equal(rtmd_buf_append_cstr(&b, "[customer:a]\nsecret = aaaaaaaa\napps =\n"), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(rtmd_buf_printf(&b, "    %032d,\n", i), 0);
    assert_int_equal(rtmd_buf_append_cstr(&b, "[customer:b]\nsecret = bbbbbbbb\n"), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(rtmd_buf_printf(&b, "apps = %032d\n", i + N / 2), 0);
    assert_int_equal(rtmd_buf_append_cstr(&b, "[customer:c]\nsecret = cccccccc\napps = "), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(rtmd_buf_printf(&b, "%032d%s", i, i % 10 == 9 ? ",\n    " : ", "), 0);
    assert_int_equal(rtmd_buf_append_cstr(&b, "\n"), 0);
    for (int i = 0; i < N; i += 7)
        assert_int_equal(rtmd_buf_printf(&b, "[app:%032d]\ncertificate = %032x\n", i, (unsigned)i),
                         0);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);

    struct rtmd_config *cfg = str_ok(b.data);
    assert_int_equal(cfg->n_customers, 3);
    assert_int_equal(cfg->n_apps, N + N / 2);
    assert_int_equal(cfg->customers[0]->n_apps, N);
    assert_int_equal(cfg->customers[1]->n_apps, N);
    assert_int_equal(cfg->customers[2]->n_apps, N);
    for (size_t i = 0; i < cfg->n_apps; i++) {
        struct rtmd_app *a = cfg->apps[i];
        assert_int_equal(a->index, i);
        assert_ptr_equal(rtmd_config_app(cfg, rtmd_str_make(a->id, 32)), a);
        size_t owners = 2 + (i >= N / 2 && i < N);
        if (i >= N)
            owners = 1;
        assert_int_equal(a->n_owners, owners);
        assert_int_equal(a->has_certificate, i < N && i % 7 == 0);
    }
    rtmd_config_free(cfg);
    rtmd_buf_free(&b);
}

/* ---- bad files: exact messages ------------------------------------------ */

static const struct {
    const char *file;
    const char *message; /* after "tests/unit/config/<file>" */
} bad_files[] = {
    {"bad_port.ini", ":2: listen: \"127.0.0.1:99999@eu\": port must be 0..65535"},
    {"bad_unknown_key.ini", ":3: colour: unknown key in [server]"},
    {"bad_wrong_section.ini",
     ":3: events_retain: unknown key in [server] (it belongs in [limits])"},
    {"bad_cert_hex.ini",
     ":2: certificate: must be 32 hex characters (character 31 is not [0-9a-fA-F])"},
    {"bad_cert_length.ini", ":2: certificate: must be 32 hex characters (got 20)"},
    {"bad_appid_list.ini", ":4: apps: \"970CA35de60c44645bbae8a2150-1b33\" is not an App ID (32 "
                           "characters [0-9A-Za-z])"},
    {"bad_appid_section.ini", ":4: [app:not-an-app-id]: App ID must be 32 characters [0-9A-Za-z]"},
    {"bad_long_line.ini", ":3: apps: line is longer than 4096 bytes"},
    {"bad_duplicate_key.ini", ":4: tls: set twice in [server] (first at line 2)"},
    {"bad_tls_pair.ini", ":3: tls_cert: tls_key is missing (give both or neither)"},
    {"bad_no_secret.ini", ":4: [customer:ck_demo]: missing required key secret"},
    {"bad_max_pull.ini", ":3: events_max_pull: must be at most events_retain (2000)"},
    {"bad_retain_below_pull.ini", ":2: events_retain: must be at least events_max_pull (1000)"},
    {"bad_ws_message.ini", ":2: max_payload: must be at most ws_max_message - 1024 (261120)"},
    {"bad_duplicate_section.ini", ":7: [server]: section appears twice (first at line 1)"},
    {"bad_unknown_section.ini", ":3: [sever]: unknown section (expected [server], [store], "
                                "[limits], [customer:ID], [app:APPID] or [webhook:NAME])"},
    {"bad_continuation_scalar.ini",
     ":3: data_dir: unexpected continuation line (only lists continue on indented lines)"},
    {"bad_ipv6_brackets.ini",
     ":2: listen: \"::1:8443@default\": an IPv6 address goes in brackets, as [::1]:8443"},
    {"bad_bool.ini", ":2: tls: must be one of on, off, true, false, yes, no, 1, 0 (got \"maybe\")"},
    {"bad_syntax.ini", ":2: [server]: expected \"key = value\", got \"listen 127.0.0.1:8443\""},
    {"bad_secret.ini",
     ":2: secret: must be 8..128 printable ASCII characters without spaces (got 5 bytes)"},
    {"bad_customer_id.ini",
     ":1: [customer:ck demo]: customer ID must be 1..64 characters [A-Za-z0-9_-]"},
    {"bad_region.ini",
     ":2: listen: \"127.0.0.1:8443@eu.west\": region must be 1..31 characters [A-Za-z0-9_-]"},
    {"bad_number.ini", ":2: max_payload: must be a whole number (got \"32k\")"},
    {"bad_key_before_section.ini",
     ":2: events_qps: key before any [section] (it belongs in [limits])"},
    {"bad_section_text.ini", ":1: [server]: text after ']' (comments start with \" ;\")"},
    {"bad_empty_value.ini", ":2: data_dir: missing value"},
    {"bad_backend.ini", ":2: backend: must be one of embedded, redis (got \"postgres\")"},
    {"bad_redis_url.ini", ":3: redis_url: URL 1: must start with redis://"},
    {"bad_empty_listen.ini", ":2: listen: no listener given"},
    {"bad_control_char.ini", ":2: data_dir: control character \\x01 in line"},
    {"bad_dup_listener.ini", ":3: listen: \"127.0.0.1:8443@b\": address and port listed twice"},
};

static void test_bad_files(void **state)
{
    (void)state;
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(bad_files); i++) {
        char path[256], expected[512];
        snprintf(path, sizeof(path), CONFIG_DIR "%s", bad_files[i].file);
        snprintf(expected, sizeof(expected), "%s%s", path, bad_files[i].message);
        struct rtmd_config *cfg = rtmd_config_load(path, err, sizeof(err));
        if (cfg) {
            rtmd_config_free(cfg);
            fail_msg("%s loaded; expected %s", path, expected);
        }
        if (strcmp(err, expected) != 0)
            fail_msg("%s:\n  got      %s\n  expected %s", path, err, expected);
    }
}

/* Every bad_*.ini in the directory has an expected message above. */
static void test_bad_files_all_listed(void **state)
{
    (void)state;
    DIR *d = opendir(CONFIG_DIR);
    assert_non_null(d);
    struct dirent *e;
    size_t seen = 0;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        if (strncmp(name, "bad_", 4) != 0)
            continue;
        bool listed = false;
        for (size_t i = 0; i < RTMD_ARRAY_SIZE(bad_files); i++)
            listed |= strcmp(bad_files[i].file, name) == 0;
        if (!listed)
            fail_msg("%s%s has no expected message in test_config.c", CONFIG_DIR, name);
        seen++;
    }
    closedir(d);
    assert_int_equal(seen, RTMD_ARRAY_SIZE(bad_files));
}

static void test_cannot_read(void **state)
{
    (void)state;
    assert_null(rtmd_config_load(CONFIG_DIR "does-not-exist.ini", err, sizeof(err)));
    assert_string_equal(err,
                        CONFIG_DIR "does-not-exist.ini: cannot read: No such file or directory");
    assert_null(rtmd_config_load(CONFIG_DIR, err, sizeof(err)));
    assert_string_equal(err, CONFIG_DIR ": cannot read: Is a directory");
}

static void test_too_large(void **state)
{
    (void)state;
    char path[] = "/tmp/rtmd-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    for (int i = 0; i < RTMD_CONFIG_FILE_MAX / 32 + 1; i++)
        fputs("; padding padding padding paddi\n", f);
    fclose(f);
    assert_null(rtmd_config_load(path, err, sizeof(err)));
    char expected[128];
    snprintf(expected, sizeof(expected), "%s: cannot read: larger than 1048576 bytes", path);
    assert_string_equal(err, expected);
    unlink(path);

    /* A string gets the same bound. */
    char *big = rtmd_malloc(RTMD_CONFIG_FILE_MAX + 2);
    memset(big, ';', RTMD_CONFIG_FILE_MAX + 1);
    big[RTMD_CONFIG_FILE_MAX + 1] = '\0';
    str_bad(big, "t.ini: (file): larger than 1048576 bytes");
    rtmd_free(big);
}

/* ---- syntax details ----------------------------------------------------- */

static void test_comments(void **state)
{
    (void)state;
    /* " ;" starts a comment anywhere, also on continuation lines and after
     * section headers; ';' without a space before it is part of the value;
     * '#' only starts a line. */
    struct rtmd_config *cfg = str_ok("[server]   ; the server\n"
                                     "data_dir = ./a;b ; comment\n"
                                     "ready_file = ./r#x\n"
                                     "listen = 127.0.0.1:1@x ; one\n"
                                     "   127.0.0.1:2@y ; two, with a comma, in the comment\n"
                                     "\t; an indented comment line is not a continuation\n"
                                     "   # neither is this\n"
                                     "   127.0.0.1:3@z\n"
                                     "[app:0123456789abcdef0123456789abcdef]\t;tab then comment\n");
    assert_string_equal(cfg->data_dir, "./a;b");
    assert_string_equal(cfg->ready_file, "./r#x");
    assert_int_equal(cfg->n_listeners, 3);
    assert_string_equal(cfg->listeners[1].region, "y");
    assert_string_equal(cfg->listeners[2].region, "z");
    assert_int_equal(cfg->n_apps, 1);
    rtmd_config_free(cfg);
}

/* An indented key right after a section header is a key (there is no
 * previous key to continue); blank and comment lines do not end a list. */
static void test_indented_key(void **state)
{
    (void)state;
    struct rtmd_config *cfg = str_ok("[server]\n"
                                     "\ttls = off\n"
                                     "listen = 10.0.0.1:1@a\n"
                                     "  10.0.0.2:1@a\n"
                                     "\n"
                                     "; a comment between continuation lines\n"
                                     "  [::]:1@b\n");
    assert_false(cfg->tls);
    assert_int_equal(cfg->n_listeners, 3);
    assert_string_equal(cfg->listeners[2].host, "::");
    rtmd_config_free(cfg);
    /* A second indented key continues the first. */
    str_bad("[server]\n\ttls = off\n  data_dir = x\n",
            "t.ini:3: tls: unexpected continuation line (only lists continue on indented lines)");
}

static void test_crlf_bom_tabs(void **state)
{
    (void)state;
    struct rtmd_config *cfg = str_ok("\xef\xbb\xbf[server]\r\n"
                                     "tls\t=\toff\r\n"
                                     "listen = 127.0.0.1:1@a,\r\n"
                                     "\t127.0.0.1:2@b\r\n"
                                     "[limits]\r\n"
                                     "max_payload = 7\r\n");
    assert_false(cfg->tls);
    assert_int_equal(cfg->n_listeners, 2);
    assert_int_equal(cfg->limits.max_payload, 7);
    rtmd_config_free(cfg);
    /* No newline at the end of the last line. */
    cfg = str_ok("[limits]\nmax_payload = 9");
    assert_int_equal(cfg->limits.max_payload, 9);
    rtmd_config_free(cfg);
}

static void test_bool_spellings(void **state)
{
    (void)state;
    const char *on[] = {"on", "ON", "true", "Yes", "1"}, *off[] = {"off", "False", "no", "0"};
    char text[64];
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(on); i++) {
        snprintf(text, sizeof(text), "[server]\ntls = %s\n", on[i]);
        struct rtmd_config *cfg = str_ok(text);
        assert_true(cfg->tls);
        rtmd_config_free(cfg);
    }
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(off); i++) {
        snprintf(text, sizeof(text), "[server]\ntls = %s\n", off[i]);
        struct rtmd_config *cfg = str_ok(text);
        assert_false(cfg->tls);
        rtmd_config_free(cfg);
    }
}

static void test_listen_forms(void **state)
{
    (void)state;
    struct rtmd_config *cfg =
        str_ok("[server]\nlisten = [2001:db8::1]:65535@r-1, 10.0.0.1:0, 10.0.0.1:0, [::]:80@r_2\n");
    assert_int_equal(cfg->n_listeners, 4);
    assert_string_equal(cfg->listeners[0].host, "2001:db8::1");
    assert_int_equal(cfg->listeners[0].port, 65535);
    assert_string_equal(cfg->listeners[0].region, "r-1");
    assert_int_equal(cfg->listeners[1].port, 0); /* port 0 may repeat */
    assert_string_equal(cfg->listeners[3].host, "::");
    assert_int_equal(cfg->n_regions, 3);
    assert_string_equal(cfg->regions[1], "default");
    rtmd_config_free(cfg);

    str_bad("[server]\nlisten = localhost:80\n",
            "t.ini:2: listen: \"localhost:80\": not a numeric IPv4 (or [IPv6]) address");
    str_bad("[server]\nlisten = [::1:80\n",
            "t.ini:2: listen: \"[::1:80\": expected [IPV6]:PORT@REGION");
    str_bad("[server]\nlisten = [1.2.3.4]:80\n",
            "t.ini:2: listen: \"[1.2.3.4]:80\": not a numeric IPv6 address");
    str_bad("[server]\nlisten = 1.2.3.4\n",
            "t.ini:2: listen: \"1.2.3.4\": expected ADDR:PORT@REGION");
    str_bad("[server]\nlisten = 1.2.3.4:80@\n",
            "t.ini:2: listen: \"1.2.3.4:80@\": region must be 1..31 characters [A-Za-z0-9_-]");
    str_bad("[server]\nlisten = 1.2.3.4:-1\n",
            "t.ini:2: listen: \"1.2.3.4:-1\": port must be 0..65535");
    str_bad("[server]\nlisten = 1.2.3.4:\n",
            "t.ini:2: listen: \"1.2.3.4:\": port must be 0..65535");
    str_bad(
        "[server]\nlisten = 1.2.3.4:80@abcdefghijabcdefghijabcdefghij12\n",
        "t.ini:2: listen: \"1.2.3.4:80@abcdefghijabcdefghijabcdefghij12\": region must be 1..31 "
        "characters [A-Za-z0-9_-]");

    /* At most RTMD_LISTENERS_MAX listeners and RTMD_REGIONS_MAX regions. */
    struct rtmd_buf b;
    rtmd_buf_init(&b, 1 << 16);
    assert_int_equal(rtmd_buf_append_cstr(&b, "[server]\nlisten ="), 0);
    for (int i = 0; i < RTMD_LISTENERS_MAX; i++)
        assert_int_equal(rtmd_buf_printf(&b, "\n  127.0.0.1:%d@r%d", 1000 + i, i), 0);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    cfg = str_ok(b.data);
    assert_int_equal(cfg->n_listeners, RTMD_LISTENERS_MAX);
    assert_int_equal(cfg->n_regions, RTMD_REGIONS_MAX);
    assert_int_equal(cfg->listeners[15].region_index, 15);
    rtmd_config_free(cfg);
    b.len--;
    assert_int_equal(rtmd_buf_append_cstr(&b, "\n  127.0.0.1:2000@r0"), 0);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    str_bad(b.data, "t.ini:19: listen: \"127.0.0.1:2000@r0\": more than 16 listeners");
    /* With RTMD_REGIONS_MAX == RTMD_LISTENERS_MAX the region bound cannot
     * be reached first; config.c checks it all the same. */
    rtmd_buf_free(&b);
}

/* listen's /tls and /plain; the tls key is the default of the others,
 * wherever it stands in the section. */
static void test_listen_tls_suffix(void **state)
{
    (void)state;
    struct rtmd_config *cfg = str_ok("[server]\nlisten = 0.0.0.0:443@pub/tls, 10.0.0.1:8080/plain,"
                                     " [::1]:9000@x/TLS, 10.0.0.1:8081\ntls = off\n");
    assert_int_equal(cfg->n_listeners, 4);
    assert_true(cfg->listeners[0].tls);
    assert_string_equal(cfg->listeners[0].region, "pub");
    assert_false(cfg->listeners[1].tls);
    assert_string_equal(cfg->listeners[1].region, "default");
    assert_int_equal(cfg->listeners[1].port, 8080);
    assert_true(cfg->listeners[2].tls);
    assert_string_equal(cfg->listeners[2].host, "::1");
    assert_false(cfg->listeners[3].tls); /* tls = off, written after listen */
    assert_true(cfg->any_tls);
    rtmd_config_free(cfg);

    cfg = str_ok("[server]\nlisten = 127.0.0.1:1/plain, 127.0.0.1:2\n");
    assert_false(cfg->listeners[0].tls);
    assert_true(cfg->listeners[1].tls); /* tls defaults to on */
    rtmd_config_free(cfg);

    cfg = str_ok("[server]\nlisten = 127.0.0.1:1/plain\n");
    assert_false(cfg->any_tls); /* no certificate needed */
    rtmd_config_free(cfg);

    str_bad("[server]\nlisten = 127.0.0.1:1@eu/ssl\n",
            "t.ini:2: listen: \"127.0.0.1:1@eu/ssl\": after '/' comes tls or plain");
    str_bad("[server]\nlisten = 127.0.0.1:1/\n",
            "t.ini:2: listen: \"127.0.0.1:1/\": after '/' comes tls or plain");
    str_bad("[server]\nlisten = 127.0.0.1:1/tls/plain\n",
            "t.ini:2: listen: \"127.0.0.1:1/tls/plain\": after '/' comes tls or plain");
    str_bad("[server]\nlisten = 127.0.0.1:1/tls@eu\n",
            "t.ini:2: listen: \"127.0.0.1:1/tls@eu\": after '/' comes tls or plain");
}

static void test_admin_listen(void **state)
{
    (void)state;
    struct rtmd_config *cfg = str_ok("[server]\nlisten = 127.0.0.1:1\n");
    assert_false(cfg->admin_enabled); /* off by default */
    rtmd_config_free(cfg);
    cfg = str_ok("[server]\nadmin_listen = 127.0.0.1:9464\n");
    assert_true(cfg->admin_enabled);
    assert_string_equal(cfg->admin.host, "127.0.0.1");
    assert_int_equal(cfg->admin.port, 9464);
    rtmd_config_free(cfg);
    cfg = str_ok("[server]\nadmin_listen = [::1]:0\n");
    assert_true(cfg->admin_enabled);
    assert_string_equal(cfg->admin.host, "::1");
    rtmd_config_free(cfg);
    cfg = str_ok("[server]\nadmin_listen = OFF\n");
    assert_false(cfg->admin_enabled);
    rtmd_config_free(cfg);

    str_bad("[server]\nadmin_listen = 127.0.0.1:9464@eu\n",
            "t.ini:2: admin_listen: \"127.0.0.1:9464@eu\": expected ADDR:PORT (no region; always "
            "plain HTTP)");
    str_bad("[server]\nadmin_listen = 127.0.0.1:9464/tls\n",
            "t.ini:2: admin_listen: \"127.0.0.1:9464/tls\": expected ADDR:PORT (no region; "
            "always plain HTTP)");
    str_bad("[server]\nadmin_listen = localhost:9464\n",
            "t.ini:2: admin_listen: \"localhost:9464\": not a numeric IPv4 (or [IPv6]) address");
    str_bad("[server]\nadmin_listen = 127.0.0.1\n",
            "t.ini:2: admin_listen: \"127.0.0.1\": expected ADDR:PORT");
    str_bad("[server]\nadmin_listen = 127.0.0.1:70000\n",
            "t.ini:2: admin_listen: \"127.0.0.1:70000\": port must be 0..65535");
    str_bad("[server]\nlisten = 127.0.0.1:8443\nadmin_listen = 127.0.0.1:8443\n",
            "t.ini:3: admin_listen: 127.0.0.1:8443 is also in listen");
    str_bad("[server]\nadmin_listen = 127.0.0.1:1\nadmin_listen = 127.0.0.1:2\n",
            "t.ini:3: admin_listen: set twice in [server] (first at line 2)");
}

static void test_origins(void **state)
{
    (void)state;
    struct rtmd_config *cfg = str_ok("[server]\nlisten = 127.0.0.1:1\n");
    assert_true(cfg->allowed_origins.any); /* default: any */
    assert_int_equal(cfg->allowed_origins.n, 0);
    assert_false(cfg->cors_origins.any); /* default: none */
    assert_int_equal(cfg->cors_origins.n, 0);
    assert_null(rtmd_origins_match(&cfg->cors_origins, RTMD_STR_LIT("https://a.example")));
    assert_string_equal(rtmd_origins_match(&cfg->allowed_origins, RTMD_STR_LIT("https://x")), "*");
    rtmd_config_free(cfg);

    /* The file's list replaces the default; items are kept in lower case
     * without a default port; repeats count once; lists continue. */
    cfg = str_ok("[server]\nallowed_origins = HTTPS://App.Example.com:443, http://localhost:3000,\n"
                 "  http://[::1]:80, https://app.example.com\n"
                 "allowed_origins = chrome-extension://abcdef\n"
                 "cors_origins = https://a.example:8443\n");
    assert_false(cfg->allowed_origins.any);
    assert_int_equal(cfg->allowed_origins.n, 4);
    assert_string_equal(cfg->allowed_origins.items[0], "https://app.example.com");
    assert_string_equal(cfg->allowed_origins.items[1], "http://localhost:3000");
    assert_string_equal(cfg->allowed_origins.items[2], "http://[::1]");
    assert_string_equal(cfg->allowed_origins.items[3], "chrome-extension://abcdef");
    assert_string_equal(
        rtmd_origins_match(&cfg->allowed_origins, RTMD_STR_LIT("https://APP.example.com")),
        "https://app.example.com");
    assert_null(rtmd_origins_match(&cfg->allowed_origins, RTMD_STR_LIT("https://app.example.co")));
    assert_null(
        rtmd_origins_match(&cfg->allowed_origins, RTMD_STR_LIT("https://app.example.com:443")));
    assert_null(rtmd_origins_match(&cfg->allowed_origins, RTMD_STR_LIT("http://localhost:3001")));
    assert_null(rtmd_origins_match(&cfg->allowed_origins, RTMD_STR_LIT("null")));
    assert_int_equal(cfg->cors_origins.n, 1);
    assert_string_equal(cfg->cors_origins.items[0], "https://a.example:8443");
    rtmd_config_free(cfg);

    /* An empty list: no page at all; `*` with others: any. */
    cfg = str_ok("[server]\nallowed_origins =\ncors_origins = https://a.b, *\n");
    assert_false(cfg->allowed_origins.any);
    assert_int_equal(cfg->allowed_origins.n, 0);
    assert_null(rtmd_origins_match(&cfg->allowed_origins, RTMD_STR_LIT("https://a.b")));
    assert_true(cfg->cors_origins.any);
    rtmd_config_free(cfg);

    static const char *const bad[] = {
        "https://a.example/", "https://a.example/path", "a.example",   "https://", "://a.b",
        "https://a.b:0",      "https://a.b:65536",      "https://a b", "null",     "https://[zz]",
        "1http://a.b",        "https://a.b:",
    };
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(bad); i++) {
        char text[256], want[512];
        snprintf(text, sizeof(text), "[server]\ncors_origins = %s\n", bad[i]);
        snprintf(want, sizeof(want),
                 "t.ini:2: cors_origins: \"%s\": an origin is scheme://host[:port] of at most 255 "
                 "bytes, with no path or trailing '/' (or * for any)",
                 bad[i]);
        str_bad(text, want);
    }

    /* At most RTMD_ORIGINS_MAX. */
    struct rtmd_buf b;
    rtmd_buf_init(&b, 1 << 16);
    assert_int_equal(rtmd_buf_append_cstr(&b, "[server]\nallowed_origins ="), 0);
    for (int i = 0; i <= RTMD_ORIGINS_MAX; i++)
        assert_int_equal(rtmd_buf_printf(&b, "\n  https://h%d.example", i), 0);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    str_bad(b.data, "t.ini:67: allowed_origins: \"https://h64.example\": more than 64 origins");
    rtmd_buf_free(&b);
}

static void test_node_numbers(void **state)
{
    (void)state;
    assert_int_equal(rtmd_config_node_number(NULL), 1);
    assert_int_equal(rtmd_config_node_number("7"), 7);
    assert_int_equal(rtmd_config_node_number("999999"), 999999);
    uint32_t a = rtmd_config_node_number("n1"), b = rtmd_config_node_number("n2");
    assert_true(a >= 1 && a <= 999999 && b >= 1 && b <= 999999 && a != b);
    assert_int_equal(rtmd_config_node_number("n1"), a); /* stable */
    uint32_t big = rtmd_config_node_number("1000000");
    assert_true(big >= 1 && big <= 999999);
}

static void test_more_errors(void **state)
{
    (void)state;
    str_bad("[server]\nnode_id = n.1\n",
            "t.ini:2: node_id: must be characters [A-Za-z0-9_-] (got \"n.1\")");
    str_bad("[server]\nnode_id = 123456789012345678901234567890123\n",
            "t.ini:2: node_id: must be 1..32 bytes");
    str_bad("[server]\nnode_id = 1 2\n",
            "t.ini:2: node_id: must be characters [A-Za-z0-9_-] (got \"1 2\")");
    str_bad("[server]\nreuse_port = on\n",
            "t.ini:2: reuse_port: needs backend = redis (the embedded store is one node: one "
            "database, one process)");
    str_bad("[store]\nbackend = redis\nredis_url = redis://a, rediss://b\n",
            "t.ini:3: redis_url: URL 2: rediss:// (TLS to Redis) is not supported");
    str_bad("[store]\nredis_url = redis://:secret@h:99999\n",
            "t.ini:2: redis_url: URL 1: the port must be 1..65535");
    str_bad("[server]\nlog_level = verbose\n",
            "t.ini:2: log_level: must be one of error, warn, info, debug (got \"verbose\")");
    str_bad("[store]\nsync = always\n",
            "t.ini:2: sync: must be one of full, normal (got \"always\")");
    str_bad("[server]\ntls_key = k.pem\n",
            "t.ini:2: tls_key: tls_cert is missing (give both or neither)");
    str_bad("[limits]\nws_max_message = 4096\n",
            "t.ini:2: ws_max_message: must be at least max_payload + 1024 (33792)");
    str_bad("[limits]\nevents_retain = 10\nevents_max_pull = 11\n",
            "t.ini:3: events_max_pull: must be at most events_retain (10)");
    str_bad("[limits]\nmax_payload=0\n", "t.ini:2: max_payload: must be 1..1048576 (got \"0\")");
    str_bad("[server]\n= x\n", "t.ini:2: [server]: expected \"key = value\", got \"= x\"");
    str_bad("[server]\ntls: off\n",
            "t.ini:2: [server]: expected \"key = value\", got \"tls: off\"");
    str_bad("[server\n", "t.ini:1: (before any section): \"[server\": missing ']'");
    str_bad("[server]\n[store\n", "t.ini:2: [server]: \"[store\": missing ']'");
    str_bad("[]\n", "t.ini:1: []: unknown section (expected [server], [store], [limits], "
                    "[customer:ID], [app:APPID] or [webhook:NAME])");
    str_bad("[customer:]\n",
            "t.ini:1: [customer:]: customer ID must be 1..64 characters [A-Za-z0-9_-]");
    str_bad("[customer:a]\nsecret = 12345678\n[customer:a]\n",
            "t.ini:3: [customer:a]: section appears twice (first at line 1)");
    str_bad("[app:0123456789abcdef0123456789abcdef]\n\n[app:0123456789abcdef0123456789abcdef]\n",
            "t.ini:3: [app:0123456789abcdef0123456789abcdef]: section appears twice (first at line "
            "1)");
    str_bad(
        "[app:0123456789abcdef0123456789abcdef]\ncertificate = 0123456789abcdef0123456789abcdef\n"
        "certificate = 0123456789abcdef0123456789abcdef\n",
        "t.ini:3: certificate: set twice in [app:0123456789abcdef0123456789abcdef] (first at "
        "line 2)");
    str_bad("[app:0123456789abcdef0123456789abcdef]\nsecret = 12345678\n",
            "t.ini:2: secret: unknown key in [app:0123456789abcdef0123456789abcdef] (it belongs in "
            "[customer:ID])");
    str_bad("[customer:a]\nsecret = 12345678\nsecret = 12345678\n",
            "t.ini:3: secret: set twice in [customer:a] (first at line 2)");
    str_bad("[customer:a]\nsecret = 1234567 8\n",
            "t.ini:2: secret: must be 8..128 printable ASCII characters without spaces (got 9 "
            "bytes)");
    str_bad(
        "[customer:a]\nsecret = 12345678\n    9\n",
        "t.ini:3: secret: unexpected continuation line (only lists continue on indented lines)");
    str_bad("[server]\ndata_dir = ./\xc3\xa9\x7f\n",
            "t.ini:2: data_dir: control character \\x7f in line");
    str_bad("[server]\nda\xc3\xa9ta = 1\n",
            "t.ini:2: [server]: expected \"key = value\", got \"da\\xc3\\xa9ta = 1\"");
    str_bad("[se\xffrver]\n",
            "t.ini:1: [se\\xffrver]: unknown section (expected [server], [store], [limits], "
            "[customer:ID], [app:APPID] or [webhook:NAME])");
    str_bad("[customer:a]\nsecret = 12345678\n[customer:b]\nsecret = 12345678\n[customer:c]\n",
            "t.ini:5: [customer:c]: missing required key secret");
    /* An indented section header after a key continues that key. */
    str_bad(
        "[server]\ndata_dir = ./d\n  [store]\n",
        "t.ini:3: data_dir: unexpected continuation line (only lists continue on indented lines)");
    /* Keys are case-sensitive. */
    str_bad("[server]\nTLS = off\n", "t.ini:2: TLS: unknown key in [server]");
    str_bad("[Server]\n", "t.ini:1: [Server]: unknown section (expected [server], [store], "
                          "[limits], [customer:ID], [app:APPID] or [webhook:NAME])");
}

/* A NUL byte in a file is reported, not taken for the end of the text. */
static void test_nul_byte(void **state)
{
    (void)state;
    static const char text[] = "[server]\ntls = off\ndata_dir = a\0b\n";
    struct rtmd_config *cfg =
        rtmd_config_load_text("n.ini", text, sizeof(text) - 1, NULL, err, sizeof(err));
    assert_null(cfg);
    assert_string_equal(err, "n.ini:3: data_dir: control character \\x00 in line");
}

/* Customer IDs of 64 characters that differ after byte 49 stay two
 * customers (inih, once used, cut section names there); a 65-character ID
 * fails. */
static void test_long_customer_ids(void **state)
{
    (void)state;
    char id1[65], id2[65], text[512];
    memset(id1, 'x', 64);
    id1[64] = '\0';
    memcpy(id2, id1, sizeof(id2));
    id2[63] = 'y';
    snprintf(text, sizeof(text),
             "[customer:%s]\nsecret = 11111111\n[customer:%s]\nsecret = 22222222\n", id1, id2);
    struct rtmd_config *cfg = str_ok(text);
    assert_int_equal(cfg->n_customers, 2);
    assert_string_equal(rtmd_config_customer(cfg, rtmd_str_cstr(id1))->secret, "11111111");
    assert_string_equal(rtmd_config_customer(cfg, rtmd_str_cstr(id2))->secret, "22222222");
    rtmd_config_free(cfg);
    snprintf(text, sizeof(text), "[customer:%sz]\nsecret = 11111111\n", id1);
    char expected[256];
    snprintf(expected, sizeof(expected),
             "t.ini:1: [customer:%sz]: customer ID must be 1..64 characters [A-Za-z0-9_-]", id1);
    str_bad(text, expected);
}

/* Lines up to RTMD_CONFIG_LINE_MAX bytes work; a longer one is an error,
 * never split into a line whose tail reads as a key. */
static void test_line_length(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 1 << 16);
    assert_int_equal(rtmd_buf_append_cstr(&b, "[server]\ndata_dir = "), 0);
    size_t prefix = strlen("data_dir = ");
    for (size_t i = prefix; i < RTMD_CONFIG_LINE_MAX; i++)
        assert_int_equal(rtmd_buf_append_byte(&b, i % 50 == 0 ? '/' : 'd'), 0);
    assert_int_equal(rtmd_buf_append_cstr(&b, "\r\n"), 0); /* CR is not counted */
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    struct rtmd_config *cfg = str_ok(b.data);
    assert_int_equal(strlen(cfg->data_dir), RTMD_CONFIG_LINE_MAX - prefix);
    rtmd_config_free(cfg);
    b.len -= 3;
    assert_int_equal(rtmd_buf_append_cstr(&b, "d x = evil\n"), 0);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    str_bad(b.data, "t.ini:2: data_dir: line is longer than 4096 bytes");
    rtmd_buf_free(&b);
}

/* ---- the environment ---------------------------------------------------- */

static struct rtmd_config *env_load(const char *text, char *const *env)
{
    return rtmd_config_load_text("t.ini", text, strlen(text), env, err, sizeof(err));
}

static void env_bad(const char *text, char *const *env, const char *expected)
{
    struct rtmd_config *cfg = env_load(text, env);
    if (cfg) {
        rtmd_config_free(cfg);
        fail_msg("loaded, expected error: %s", expected);
    }
    assert_string_equal(err, expected);
}

/* One variable (and a few that are not rtmd's config) over text. */
static void env_bad1(const char *text, const char *var, const char *expected)
{
    char *env[] = {"PATH=/bin", "RTMD_BIN=/x/rtmd", "RTMD_TEST_BACKENDS=embedded", (char *)var,
                   NULL};
    env_bad(text, env, expected);
}

/* RTMD_<SECTION>_<KEY> replaces the file's value, checked like the file. */
static void test_env_overrides(void **state)
{
    (void)state;
    char *env[] = {"HOME=/root",
                   "RTMD_SERVER_LOG_LEVEL=debug",
                   "RTMD_LIMITS_EVENTS_QPS=5",
                   "RTMD_BIN=/x/rtmd", /* not a section: not rtmd's config */
                   "RTMD_TEST_BACKENDS=redis",
                   "RTMD_SERVER=1",
                   "rtmd_server_tls=off", /* names are upper case */
                   "RTMD_SERVER_LISTEN= 127.0.0.1:1@a, [::1]:2@b ",
                   "RTMD_SERVER_DATA_DIR=./d ; not a comment",
                   "RTMD_LIMITS_EVENTS_QPS=6", /* the first one counts, as for getenv() */
                   "RTMD_STORE_SYNC=NORMAL",
                   NULL};
    struct rtmd_config *cfg = env_load("[server]\nlog_level = info\nlisten = 10.0.0.1:1@x\n"
                                       "  10.0.0.2:1@y\n[limits]\nevents_qps = 50\n",
                                       env);
    if (!cfg)
        fail_msg("did not load: %s", err);
    assert_int_equal(cfg->log_level, RTMD_LOG_DEBUG);
    assert_int_equal(cfg->limits.events_qps, 5);
    assert_true(cfg->tls);
    assert_int_equal(cfg->sync, RTMD_SYNC_NORMAL);
    assert_string_equal(cfg->data_dir, "./d ; not a comment");
    assert_int_equal(cfg->n_listeners, 2); /* replaced, not added to */
    assert_string_equal(cfg->listeners[0].host, "127.0.0.1");
    assert_string_equal(cfg->listeners[1].host, "::1");
    assert_int_equal(cfg->n_regions, 2);
    assert_string_equal(cfg->regions[0], "a");
    assert_int_equal(cfg->listeners[1].region_index, 1);
    /* In the table's order. */
    const char *names[] = {"RTMD_SERVER_LISTEN", "RTMD_SERVER_DATA_DIR", "RTMD_SERVER_LOG_LEVEL",
                           "RTMD_STORE_SYNC", "RTMD_LIMITS_EVENTS_QPS"};
    assert_int_equal(cfg->n_overrides, RTMD_ARRAY_SIZE(names));
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(names); i++)
        assert_string_equal(cfg->overrides[i], names[i]);
    rtmd_config_free(cfg);

    /* Without variables, or with none of rtmd's: the file alone. */
    char *none[] = {"RTMD_BIN=/x", NULL};
    cfg = env_load("[server]\nlog_level = warn\n", none);
    assert_non_null(cfg);
    assert_int_equal(cfg->log_level, RTMD_LOG_WARN);
    assert_int_equal(cfg->n_overrides, 0);
    assert_null(cfg->overrides);
    rtmd_config_free(cfg);

    /* A variable may set what the file did not, and make it valid. */
    char *pair[] = {"RTMD_SERVER_TLS_KEY=/k.pem", "RTMD_STORE_BACKEND=redis", NULL};
    cfg = env_load("[server]\ntls_cert = /c.pem\nreuse_port = on\n", pair);
    if (!cfg)
        fail_msg("did not load: %s", err);
    assert_string_equal(cfg->tls_key, "/k.pem");
    assert_int_equal(cfg->backend, RTMD_STORE_REDIS);
    rtmd_config_free(cfg);
}

static void test_env_errors(void **state)
{
    (void)state;
    env_bad1("", "RTMD_LIMITS_EVENTS_QPS=0",
             "environment RTMD_LIMITS_EVENTS_QPS: events_qps: must be 1..10000000 (got \"0\")");
    env_bad1("", "RTMD_LIMITS_EVENTS_QPS=5/s",
             "environment RTMD_LIMITS_EVENTS_QPS: events_qps: must be a whole number (got "
             "\"5/s\")");
    env_bad1("", "RTMD_SERVER_TLS=maybe",
             "environment RTMD_SERVER_TLS: tls: must be one of on, off, true, false, yes, no, 1, "
             "0 (got \"maybe\")");
    env_bad1("", "RTMD_SERVER_LOG_LEVEL=",
             "environment RTMD_SERVER_LOG_LEVEL: log_level: missing value");
    env_bad1("", "RTMD_SERVER_LOG_LEVEL=  ",
             "environment RTMD_SERVER_LOG_LEVEL: log_level: missing value");
    env_bad1("", "RTMD_SERVER_DATA_DIR=a\nb",
             "environment RTMD_SERVER_DATA_DIR: data_dir: control character \\x0a in value");
    env_bad1("", "RTMD_SERVER_LISTEN=localhost:80",
             "environment RTMD_SERVER_LISTEN: listen: \"localhost:80\": not a numeric IPv4 (or "
             "[IPv6]) address");
    env_bad1("",
             "RTMD_SERVER_LISTEN=", "environment RTMD_SERVER_LISTEN: listen: no listener given");
    env_bad1("", "RTMD_SERVER_COLOUR=red",
             "environment RTMD_SERVER_COLOUR: colour: unknown key in [server]");
    env_bad1("", "RTMD_LIMITS_EVENT_QPS=5",
             "environment RTMD_LIMITS_EVENT_QPS: event_qps: unknown key in [limits]");
    env_bad1("", "RTMD_SERVER_log_level=debug",
             "environment RTMD_SERVER_log_level: log_level: unknown key in [server]");
    env_bad1("", "RTMD_SERVER_=x", "environment RTMD_SERVER_: : unknown key in [server]");
    env_bad1("", "RTMD_APP_0123456789abcdef0123456789abcdef_CERTIFICATE=x",
             "environment RTMD_APP_0123456789abcdef0123456789abcdef_CERTIFICATE: [app:APPID]: "
             "keys of repeatable sections are read from the file only (the environment sets "
             "[server], [store] and [limits] keys)");
    env_bad1("", "RTMD_CUSTOMER_CK_SECRET=12345678",
             "environment RTMD_CUSTOMER_CK_SECRET: [customer:ID]: keys of repeatable sections are "
             "read from the file only (the environment sets [server], [store] and [limits] keys)");
    /* Rules between keys name the variable that set the key. */
    env_bad1("", "RTMD_LIMITS_EVENTS_MAX_PULL=5000",
             "environment RTMD_LIMITS_EVENTS_MAX_PULL: events_max_pull: must be at most "
             "events_retain (2000)");
    env_bad1("", "RTMD_LIMITS_EVENTS_RETAIN=10",
             "environment RTMD_LIMITS_EVENTS_RETAIN: events_retain: must be at least "
             "events_max_pull (1000)");
    env_bad1("[limits]\nevents_max_pull = 20\n", "RTMD_LIMITS_EVENTS_RETAIN=10",
             "t.ini:2: events_max_pull: must be at most events_retain (10)");
    env_bad1("", "RTMD_SERVER_TLS_CERT=/c.pem",
             "environment RTMD_SERVER_TLS_CERT: tls_cert: tls_key is missing (give both or "
             "neither)");
    env_bad1("[server]\nreuse_port = on\n[store]\nbackend = redis\n", "RTMD_STORE_BACKEND=embedded",
             "t.ini:2: reuse_port: needs backend = redis (the embedded store is one node: one "
             "database, one process)");
    /* A file error comes first; the file's messages are unchanged. */
    env_bad1("[server]\ntls = maybe\n", "RTMD_LIMITS_EVENTS_QPS=0",
             "t.ini:2: tls: must be one of on, off, true, false, yes, no, 1, 0 (got \"maybe\")");
    /* A password in a variable is never echoed. */
    env_bad1("", "RTMD_STORE_REDIS_URL=redis://:hunter2@h:99999",
             "environment RTMD_STORE_REDIS_URL: redis_url: URL 1: the port must be 1..65535");

    /* At most RTMD_CONFIG_LINE_MAX bytes, like a line. */
    size_t n = strlen("RTMD_SERVER_DATA_DIR=");
    char *big = rtmd_malloc(n + RTMD_CONFIG_LINE_MAX + 2);
    memcpy(big, "RTMD_SERVER_DATA_DIR=", n);
    memset(big + n, 'd', RTMD_CONFIG_LINE_MAX + 1);
    big[n + RTMD_CONFIG_LINE_MAX + 1] = '\0';
    env_bad1("", big,
             "environment RTMD_SERVER_DATA_DIR: data_dir: value is longer than 4096 bytes");
    big[n + RTMD_CONFIG_LINE_MAX] = '\0'; /* then the key's own bound */
    env_bad1("", big, "environment RTMD_SERVER_DATA_DIR: data_dir: must be 1..4095 bytes");
    big[n + RTMD_CONFIG_LINE_MAX - 1] = '\0';
    char *env[] = {big, NULL};
    struct rtmd_config *cfg = env_load("", env);
    assert_non_null(cfg);
    assert_int_equal(strlen(cfg->data_dir), RTMD_CONFIG_LINE_MAX - 1);
    rtmd_config_free(cfg);
    rtmd_free(big);
}

/* Every [server]/[store]/[limits] key has its variable, and no other. */
static void test_env_names(void **state)
{
    (void)state;
    char name[64];
    rtmd_config_env_name(rtmd_config_find(SEC_SERVER, "log_level"), name, sizeof(name));
    assert_string_equal(name, "RTMD_SERVER_LOG_LEVEL");
    rtmd_config_env_name(rtmd_config_find(SEC_LIMITS, "events_qps"), name, sizeof(name));
    assert_string_equal(name, "RTMD_LIMITS_EVENTS_QPS");
    rtmd_config_env_name(rtmd_config_find(SEC_APP, "certificate"), name, sizeof(name));
    assert_string_equal(name, "");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &options[i];
        rtmd_config_env_name(o, name, sizeof(name));
        assert_int_equal(name[0] != '\0', o->section <= SEC_LAST_FIXED);
        assert_true(strlen(name) < sizeof(name) - 1);
        if (!name[0])
            continue;
        /* Each variable is read: set to its default (or a path), it loads
         * and is listed among the overrides. */
        char var[160];
        const char *sample = o->def                                 ? o->def
                             : strcmp(o->name, "admin_listen") == 0 ? "127.0.0.1:9464"
                             : o->type == T_ORIGINS                 ? "https://a.example"
                             : o->validate                          ? "n1"
                                                                    : "/some/path";
        snprintf(var, sizeof(var), "%s=%s", name, sample);
        char *env[] = {var, "RTMD_SERVER_TLS_CERT=/c", "RTMD_SERVER_TLS_KEY=/k", NULL};
        struct rtmd_config *cfg = env_load("", env);
        if (!cfg)
            fail_msg("%s: %s", var, err);
        bool listed = false;
        for (size_t k = 0; k < cfg->n_overrides; k++)
            listed |= strcmp(cfg->overrides[k], name) == 0;
        assert_true(listed);
        rtmd_config_free(cfg);
    }
}

/* Loading keeps no state between calls: two configs live side by side
 * (a reload loads the new one beside the running one) and either may be
 * freed first. */
static void test_side_by_side(void **state)
{
    (void)state;
    struct rtmd_config *a = load_ok(CONFIG_DIR "good_spec_sample.ini");
    struct rtmd_config *b = load_ok(CONFIG_DIR "good_lists.ini");
    assert_null(rtmd_config_load(CONFIG_DIR "bad_port.ini", err, sizeof(err)));
    struct rtmd_config *c = load_ok(CONFIG_DIR "good_spec_sample.ini");
    assert_int_equal(a->n_apps, c->n_apps);
    assert_ptr_not_equal(a->apps[0], c->apps[0]);
    assert_string_equal(a->apps[0]->id, c->apps[0]->id);
    rtmd_config_free(a);
    assert_int_equal(b->n_apps, 6);
    assert_string_equal(c->customers[0]->secret, "4d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1f");
    rtmd_config_free(c);
    rtmd_config_free(b);
}

/* Small or missing error buffers are fine; secrets are never echoed. */
static void test_err_buffer(void **state)
{
    (void)state;
    char small[12];
    assert_null(rtmd_config_load_string("x.ini", "[nope]\n", small, sizeof(small)));
    assert_string_equal(small, "x.ini:1: [n");
    assert_null(rtmd_config_load_string("x.ini", "[nope]\n", NULL, 0));
    assert_null(rtmd_config_load("/nonexistent/x", NULL, 0));
    assert_null(
        rtmd_config_load_string("x.ini", "[customer:a]\nsecret = hunter2\n", err, sizeof(err)));
    assert_null(strstr(err, "hunter2"));
    assert_null(rtmd_config_load_string(
        "x.ini",
        "[app:0123456789abcdef0123456789abcdef]\ncertificate = 0123456789abcdef0123456789abcdeg\n",
        err, sizeof(err)));
    assert_null(strstr(err, "0123456789abcdef0123456789abcdeg"));
}

/* ---- generated docs and sample ------------------------------------------ */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(rtmd_buf_append(&b, chunk, n), 0);
    fclose(f);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    return rtmd_buf_steal(&b, len);
}

/* What write() generates from the table, NUL-terminated in out, with
 * before KEY after found for every key. */
static void generate(struct rtmd_buf *out, int (*write)(struct rtmd_buf *), const char *before,
                     const char *after)
{
    rtmd_buf_init(out, 1 << 20);
    assert_int_equal(write(out), 0);
    assert_int_equal(rtmd_buf_append_byte(out, '\0'), 0);
    for (size_t i = 0; i < N_OPTS; i++) {
        char entry[80];
        snprintf(entry, sizeof(entry), "%s%s%s", before, options[i].name, after);
        if (!strstr(out->data, entry))
            fail_msg("no %s in the generated text", entry);
    }
}

/* The committed file path holds text (whole: is it), byte for byte. */
static void committed(const char *path, const char *text, bool whole)
{
    size_t len;
    char *file = read_file(path, &len);
    if (!file)
        fail_msg("%s not found (run from the repository root)", path);
    if (whole ? strcmp(file, text) != 0 : !strstr(file, text))
        fail_msg("%s is not what the table makes: make && scripts/regen-config-doc", path);
    rtmd_free(file);
}

/* docs/CONFIG.md carries the reference generated from the table, byte for
 * byte, so the docs cannot drift from the code. */
static void test_reference_in_docs(void **state)
{
    (void)state;
    struct rtmd_buf ref;
    generate(&ref, rtmd_config_write_reference, "| `", "` |");
    committed("docs/CONFIG.md", ref.data, false);
    rtmd_buf_free(&ref);
}

/* man/rtmd.conf.5 is the page generated from the table, byte for byte. */
static void test_man_page(void **state)
{
    (void)state;
    struct rtmd_buf man;
    generate(&man, rtmd_config_write_man, "\n.TP\n.B ", "\n");
    assert_non_null(strstr(man.data, "\\fBRTMD_LIMITS_EVENTS_QPS\\fR"));
    committed("man/rtmd.conf.5", man.data, true);
    rtmd_buf_free(&man);

    /* Text that roff would read as a request, or could not show, is escaped or refused. */
    struct rtmd_buf b;
    rtmd_buf_init(&b, 1024);
    assert_int_equal(roff(&b, ".x 'y \\z -w `c`"), 0);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    assert_string_equal(b.data, "\\&.x 'y \\ez \\-w \\fBc\\fR");
    rtmd_buf_reset(&b);
    assert_int_equal(roff(&b, "caf\xc3\xa9"), -EINVAL);
    rtmd_buf_free(&b);
}

static void test_sample_roundtrip(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 1 << 20);
    assert_int_equal(rtmd_config_write_sample(&b, "0.0.0.0:8443@default, [::]:8443@default",
                                              "/var/lib/rtmd data", "ck_first", "Zx9!pQ:rS2#t",
                                              "970CA35de60c44645bbae8a215061b33",
                                              "5CFd2fd1755d40ecb72977518be15d3b"),
                     0);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    /* Every [limits] key is there, commented out at its default. */
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &options[i];
        if (o->section != SEC_LIMITS)
            continue;
        char line[96];
        snprintf(line, sizeof(line), "\n;%s = %s\n", o->name, o->def);
        assert_non_null(strstr(b.data, line));
    }
    struct rtmd_config *cfg = str_ok(b.data);
    assert_int_equal(cfg->n_listeners, 2);
    assert_string_equal(cfg->listeners[1].host, "::");
    assert_string_equal(cfg->data_dir, "/var/lib/rtmd data");
    assert_true(cfg->tls);
    assert_null(cfg->tls_cert);
    assert_int_equal(cfg->limits.events_retain, 2000);
    assert_int_equal(cfg->n_customers, 1);
    assert_string_equal(cfg->customers[0]->id, "ck_first");
    assert_string_equal(cfg->customers[0]->secret, "Zx9!pQ:rS2#t");
    assert_int_equal(cfg->n_apps, 1);
    assert_string_equal(cfg->apps[0]->certificate, "5CFd2fd1755d40ecb72977518be15d3b");
    assert_ptr_equal(cfg->customers[0]->apps[0], cfg->apps[0]);
    rtmd_config_free(cfg);

    /* Without listen, data_dir, customer: defaults, and an app with no
     * certificate still exists. */
    rtmd_buf_reset(&b);
    assert_int_equal(rtmd_config_write_sample(&b, NULL, NULL, NULL, NULL,
                                              "0123456789abcdef0123456789abcdef", NULL),
                     0);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    cfg = str_ok(b.data);
    assert_string_equal(cfg->listeners[0].host, "0.0.0.0");
    assert_string_equal(cfg->data_dir, "./rtmd-data");
    assert_int_equal(cfg->n_apps, 1);
    assert_false(cfg->apps[0]->has_certificate);
    rtmd_config_free(cfg);

    /* Values the file cannot carry, or that would not load, are refused
     * and leave the buffer as it was. */
    rtmd_buf_reset(&b);
    assert_int_equal(rtmd_buf_append_cstr(&b, "keep"), 0);
    assert_int_equal(rtmd_config_write_sample(&b, NULL, "./a ;b", NULL, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(rtmd_config_write_sample(&b, NULL, " ./a", NULL, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(rtmd_config_write_sample(&b, NULL, "./a\nb", NULL, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(rtmd_config_write_sample(&b, "localhost:80", NULL, NULL, NULL, NULL, NULL),
                     -EINVAL);
    assert_int_equal(rtmd_config_write_sample(&b, NULL, NULL, "ck", "short", NULL, NULL), -EINVAL);
    assert_int_equal(rtmd_config_write_sample(&b, NULL, NULL, "ck", NULL, NULL, NULL), -EINVAL);
    assert_int_equal(rtmd_config_write_sample(&b, NULL, NULL, NULL, NULL, "bad-app", NULL),
                     -EINVAL);
    assert_int_equal(rtmd_config_write_sample(&b, NULL, NULL, NULL, NULL,
                                              "0123456789abcdef0123456789abcdef", "xyz"),
                     -EINVAL);
    assert_int_equal(b.len, 4);
    rtmd_buf_free(&b);

    /* A buffer too small for the sample: RTMD_ELIMIT, never a partial success. */
    rtmd_buf_init(&b, 100);
    assert_int_equal(rtmd_config_write_sample(&b, NULL, NULL, NULL, NULL, NULL, NULL), RTMD_ELIMIT);
    rtmd_buf_free(&b);
}

static int print(int (*write)(struct rtmd_buf *))
{
    struct rtmd_buf b;
    rtmd_buf_init(&b, 1 << 20);
    int rc = write(&b);
    if (rc == 0)
        fwrite(b.data, 1, b.len, stdout);
    rtmd_buf_free(&b);
    return rc ? 1 : 0;
}

static int write_demo_sample(struct rtmd_buf *b)
{
    return rtmd_config_write_sample(
        b, "0.0.0.0:8443@default", "./rtmd-data", "ck_demo", "4d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1f",
        "970CA35de60c44645bbae8a215061b33", "5CFd2fd1755d40ecb72977518be15d3b");
}

/* rtmd_config_load() reads the process's RTMD_<SECTION>_<KEY> variables:
 * the tests run without the developer's. */
static void clear_config_env(void)
{
    static const char *const prefixes[] = {"RTMD_SERVER_", "RTMD_STORE_", "RTMD_LIMITS_",
                                           "RTMD_APP_", "RTMD_CUSTOMER_"};
    for (bool again = true; again;) {
        again = false;
        for (char **e = environ; *e && !again; e++) {
            for (size_t i = 0; i < RTMD_ARRAY_SIZE(prefixes) && !again; i++) {
                const char *eq = strchr(*e, '=');
                if (!eq || strncmp(*e, prefixes[i], strlen(prefixes[i])) != 0)
                    continue;
                char name[256];
                snprintf(name, sizeof(name), "%.*s", (int)(eq - *e), *e);
                unsetenv(name);
                again = true; /* environ changed: start over */
            }
        }
    }
}

int main(int argc, char **argv)
{
    clear_config_env();
    if (argc > 1 && strcmp(argv[1], "--print-reference") == 0)
        return print(rtmd_config_write_reference);
    if (argc > 1 && strcmp(argv[1], "--print-man") == 0)
        return print(rtmd_config_write_man);
    if (argc > 1 && strcmp(argv[1], "--print-sample") == 0)
        return print(write_demo_sample);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_sample),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_limit_key),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_many_apps),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_files_all_listed),
        cmocka_unit_test(test_cannot_read),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_indented_key),
        cmocka_unit_test(test_crlf_bom_tabs),
        cmocka_unit_test(test_bool_spellings),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_listen_tls_suffix),
        cmocka_unit_test(test_admin_listen),
        cmocka_unit_test(test_origins),
        cmocka_unit_test(test_node_numbers),
        cmocka_unit_test(test_more_errors),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_long_customer_ids),
        cmocka_unit_test(test_line_length),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_env_names),
        cmocka_unit_test(test_side_by_side),
        cmocka_unit_test(test_err_buffer),
        cmocka_unit_test(test_reference_in_docs),
        cmocka_unit_test(test_man_page),
        cmocka_unit_test(test_sample_roundtrip),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
