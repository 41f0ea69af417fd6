/*
 * Unit tests for core/json.c's writer, and the exact bytes of the JSON that
 * other modules build with it: rtmd_event_format() (store/store.c, a presence
 * event) and rtmd_http_error_body() (net/http.c, the REST error body).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/json.h"
#include "net/http.h"
#include "store/store.h"

#define T0 1578027420761ULL

struct fixture {
    struct rtmd_buf b;
    struct rtmd_json j;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    rtmd_buf_init(&f->b, 1 << 20);
    rtmd_json_init(&f->j, &f->b);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rtmd_buf_free(&f->b);
    free(f);
    return 0;
}

/* The buffer's contents equal s (which has no NUL). */
static void assert_buf(const struct rtmd_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len != n || memcmp(b->data, s, n) != 0)
        fail_msg("got  %.*s\nwant %s", (int)b->len, b->data ? b->data : "", s);
}

/* ---- structure -------------------------------------------------------------------------- */

static void test_empty_containers(void **state)
{
    struct fixture *f = *state;
    rtmd_json_arr_begin(&f->j);
    rtmd_json_obj_begin(&f->j);
    rtmd_json_obj_end(&f->j);
    rtmd_json_arr_begin(&f->j);
    rtmd_json_arr_end(&f->j);
    rtmd_json_obj_begin(&f->j);
    rtmd_json_key(&f->j, "e");
    rtmd_json_arr_begin(&f->j);
    rtmd_json_arr_end(&f->j);
    rtmd_json_obj_end(&f->j);
    rtmd_json_arr_end(&f->j);
    assert_int_equal(rtmd_json_finish(&f->j), 0);
    assert_buf(&f->b, "[{},[],{\"e\":[]}]");
}

static void test_nesting_and_commas(void **state)
{
    struct fixture *f = *state;
    struct rtmd_json *j = &f->j;
    rtmd_json_obj_begin(j);
    rtmd_json_key(j, "a");
    rtmd_json_arr_begin(j);
    rtmd_json_i64(j, 1);
    rtmd_json_i64(j, 2);
    rtmd_json_obj_begin(j);
    rtmd_json_key(j, "b");
    rtmd_json_null(j);
    rtmd_json_key(j, "c");
    rtmd_json_bool(j, false);
    rtmd_json_obj_end(j);
    rtmd_json_arr_begin(j);
    rtmd_json_arr_end(j);
    rtmd_json_u64(j, 3);
    rtmd_json_arr_end(j);
    rtmd_json_key(j, "d");
    rtmd_json_bool(j, true);
    rtmd_json_key(j, "e");
    rtmd_json_obj_begin(j);
    rtmd_json_key(j, "f");
    rtmd_json_arr_begin(j);
    rtmd_json_arr_begin(j);
    rtmd_json_cstr(j, "x");
    rtmd_json_arr_end(j);
    rtmd_json_arr_begin(j);
    rtmd_json_cstr(j, "y");
    rtmd_json_cstr(j, "z");
    rtmd_json_arr_end(j);
    rtmd_json_arr_end(j);
    rtmd_json_obj_end(j);
    rtmd_json_key(j, "g");
    rtmd_json_raw(j, "{\"kept\":1}", 10);
    rtmd_json_obj_end(j);
    assert_int_equal(rtmd_json_finish(j), 0);
    assert_buf(&f->b, "{\"a\":[1,2,{\"b\":null,\"c\":false},[],3],\"d\":true,"
                      "\"e\":{\"f\":[[\"x\"],[\"y\",\"z\"]]},\"g\":{\"kept\":1}}");
}

static void test_raw_values_in_array(void **state)
{
    struct fixture *f = *state;
    rtmd_json_arr_begin(&f->j);
    rtmd_json_raw(&f->j, "{\"ms\":1}", 8);
    rtmd_json_raw(&f->j, "{\"ms\":2}", 8);
    rtmd_json_raw(&f->j, "3", 1);
    rtmd_json_arr_end(&f->j);
    assert_int_equal(rtmd_json_finish(&f->j), 0);
    assert_buf(&f->b, "[{\"ms\":1},{\"ms\":2},3]");
}

static void test_numbers(void **state)
{
    struct fixture *f = *state;
    rtmd_json_arr_begin(&f->j);
    rtmd_json_i64(&f->j, 0);
    rtmd_json_i64(&f->j, -1);
    rtmd_json_i64(&f->j, INT64_MIN);
    rtmd_json_i64(&f->j, INT64_MAX);
    rtmd_json_u64(&f->j, 0);
    rtmd_json_u64(&f->j, UINT64_MAX);
    rtmd_json_u64(&f->j, T0);
    rtmd_json_arr_end(&f->j);
    assert_int_equal(rtmd_json_finish(&f->j), 0);
    assert_buf(&f->b, "[0,-1,-9223372036854775808,9223372036854775807,0,18446744073709551615,"
                      "1578027420761]");
}

static void test_depth_limit(void **state)
{
    struct fixture *f = *state;
    /* RTMD_JSON_MAX_DEPTH - 2 levels fit (the comma bits and the pending-value
     * bit share one uint32_t)... */
    int fit = RTMD_JSON_MAX_DEPTH - 2;
    for (int i = 0; i < fit; i++)
        rtmd_json_arr_begin(&f->j);
    rtmd_json_i64(&f->j, 7);
    rtmd_json_i64(&f->j, 8);
    for (int i = 0; i < fit; i++)
        rtmd_json_arr_end(&f->j);
    assert_int_equal(rtmd_json_finish(&f->j), 0);
    assert_int_equal(f->b.len, 2 * (size_t)fit + 3);
    assert_memory_equal(f->b.data + fit, "7,8", 3);

    /* ... one more is refused, and the error sticks. */
    rtmd_buf_reset(&f->b);
    rtmd_json_init(&f->j, &f->b);
    for (int i = 0; i < fit; i++) {
        rtmd_json_obj_begin(&f->j);
        rtmd_json_key(&f->j, "k");
    }
    size_t before = f->b.len;
    rtmd_json_arr_begin(&f->j);
    assert_int_equal(rtmd_json_finish(&f->j), RTMD_ELIMIT);
    rtmd_json_cstr(&f->j, "ignored");
    rtmd_json_arr_end(&f->j);
    assert_int_equal(f->b.len, before);
    assert_int_equal(rtmd_json_finish(&f->j), RTMD_ELIMIT);
}

/* ---- strings ------------------------------------------------------------------------------ */

static void test_escaping(void **state)
{
    struct fixture *f = *state;
    rtmd_json_arr_begin(&f->j);
    rtmd_json_cstr(&f->j, "quote\" backslash\\ slash/");
    rtmd_json_cstr(&f->j, "\n\r\t\b\f");
    rtmd_json_cstr(&f->j, "\x01\x1f\x7f del");
    rtmd_json_str(&f->j, rtmd_str_make("nul\0here", 8));
    rtmd_json_cstr(&f->j, "");
    rtmd_json_arr_end(&f->j);
    assert_int_equal(rtmd_json_finish(&f->j), 0);
    assert_buf(&f->b, "[\"quote\\\" backslash\\\\ slash/\",\"\\n\\r\\t\\b\\f\","
                      "\"\\u0001\\u001f\\u007f del\",\"nul\\u0000here\",\"\"]");
}

static void test_every_control_char(void **state)
{
    struct fixture *f = *state;
    for (int c = 0; c < 0x80; c++) {
        char in = (char)c;
        rtmd_buf_reset(&f->b);
        assert_int_equal(rtmd_json_append_escaped(&f->b, rtmd_str_make(&in, 1)), 0);
        char want[16];
        switch (c) {
        case '"': snprintf(want, sizeof(want), "\"\\\"\""); break;
        case '\\': snprintf(want, sizeof(want), "\"\\\\\""); break;
        case '\n': snprintf(want, sizeof(want), "\"\\n\""); break;
        case '\r': snprintf(want, sizeof(want), "\"\\r\""); break;
        case '\t': snprintf(want, sizeof(want), "\"\\t\""); break;
        case '\b': snprintf(want, sizeof(want), "\"\\b\""); break;
        case '\f': snprintf(want, sizeof(want), "\"\\f\""); break;
        default:
            if (c < 0x20 || c == 0x7f)
                snprintf(want, sizeof(want), "\"\\u%04x\"", c);
            else
                snprintf(want, sizeof(want), "\"%c\"", c);
        }
        assert_buf(&f->b, want);
    }
}

static void test_utf8_passthrough(void **state)
{
    struct fixture *f = *state;
    /* Multi-byte UTF-8 is copied as is (no \u escapes), including U+2028. */
    static const char s[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8";
    rtmd_json_cstr(&f->j, s);
    assert_int_equal(rtmd_json_finish(&f->j), 0);
    assert_int_equal(f->b.len, sizeof(s) + 1);
    assert_int_equal(f->b.data[0], '"');
    assert_memory_equal(f->b.data + 1, s, sizeof(s) - 1);
    assert_int_equal(f->b.data[f->b.len - 1], '"');
}

/* ---- errors -------------------------------------------------------------------------------- */

static void test_sticky_error_at_max(void **state)
{
    (void)state;
    /* Every prefix length of a document: the writer either finishes it
     * whole or reports RTMD_ELIMIT, never overruns the maximum, and writes
     * nothing after its first failure. */
    static const char whole[] = "{\"id\":-42,\"name\":\"a\\\"b\",\"list\":[true,null,7]}";
    for (size_t max = 0; max <= sizeof(whole) + 2; max++) {
        struct rtmd_buf b;
        struct rtmd_json j;
        rtmd_buf_init(&b, max);
        rtmd_json_init(&j, &b);
        rtmd_json_obj_begin(&j);
        rtmd_json_key(&j, "id");
        rtmd_json_i64(&j, -42);
        rtmd_json_key(&j, "name");
        rtmd_json_cstr(&j, "a\"b");
        rtmd_json_key(&j, "list");
        rtmd_json_arr_begin(&j);
        size_t at_list = b.len;
        int err_at_list = j.err;
        rtmd_json_bool(&j, true);
        rtmd_json_null(&j);
        rtmd_json_u64(&j, 7);
        rtmd_json_arr_end(&j);
        rtmd_json_obj_end(&j);
        int rc = rtmd_json_finish(&j);
        assert_true(b.len <= max);
        if (max >= sizeof(whole) - 1) {
            assert_int_equal(rc, 0);
            assert_buf(&b, whole);
        } else {
            assert_int_equal(rc, RTMD_ELIMIT);
            if (err_at_list)
                assert_int_equal(b.len, at_list); /* nothing after the failure */
            /* what was written is a prefix of the document */
            assert_memory_equal(b.data ? b.data : "", whole, b.len);
        }
        rtmd_buf_free(&b);
    }
}

static void test_escaped_growth_over_max(void **state)
{
    (void)state;
    /* Escapes grow the text: 4 control bytes become 24; with room for fewer
     * the append fails and stays within the maximum. */
    struct rtmd_buf b;
    rtmd_buf_init(&b, 20);
    assert_int_equal(rtmd_json_append_escaped(&b, RTMD_STR_LIT("\x01\x02\x03\x04")), RTMD_ELIMIT);
    assert_true(b.len <= 20);
    rtmd_buf_free(&b);
    rtmd_buf_init(&b, 26);
    assert_int_equal(rtmd_json_append_escaped(&b, RTMD_STR_LIT("\x01\x02\x03\x04")), 0);
    assert_buf(&b, "\"\\u0001\\u0002\\u0003\\u0004\"");
    rtmd_buf_free(&b);
}

/* ---- event JSON (store.c) ------------------------------------------------------------------- */

static void event(struct rtmd_buf *b, enum rtmd_event_type type, const char *uid,
                  const char *channel, uint64_t ms)
{
    struct rtmd_presence_op op = {type, rtmd_str_cstr(uid),
                                  channel ? rtmd_str_cstr(channel) : RTMD_STR_NULL, ms, 0};
    assert_int_equal(rtmd_event_format(b, &op), 0);
}

static void test_event_format_each_type(void **state)
{
    struct fixture *f = *state;
    event(&f->b, RTMD_EVENT_LOGIN, "alice", NULL, T0);
    assert_buf(&f->b, "{\"ms\":1578027420761,\"ts\":1578027420761,\"type\":\"Login\","
                      "\"user_id\":\"alice\"}");
    rtmd_buf_reset(&f->b);
    event(&f->b, RTMD_EVENT_LOGOUT, "alice", NULL, T0 + 1);
    assert_buf(&f->b, "{\"ms\":1578027420762,\"ts\":1578027420762,\"type\":\"Logout\","
                      "\"user_id\":\"alice\"}");
    rtmd_buf_reset(&f->b);
    event(&f->b, RTMD_EVENT_JOIN, "alice", "lobby 1", T0);
    assert_buf(&f->b, "{\"channel_id\":\"lobby 1\",\"group_id\":\"lobby 1\",\"ms\":1578027420761,"
                      "\"ts\":1578027420761,\"type\":\"Join\",\"user_id\":\"alice\"}");
    rtmd_buf_reset(&f->b);
    event(&f->b, RTMD_EVENT_LEAVE, "bob's", "{room}", 0);
    assert_buf(&f->b, "{\"channel_id\":\"{room}\",\"group_id\":\"{room}\",\"ms\":0,\"ts\":0,"
                      "\"type\":\"Leave\",\"user_id\":\"bob's\"}");
    /* A channel given to a user event is not written. */
    rtmd_buf_reset(&f->b);
    event(&f->b, RTMD_EVENT_LOGIN, "u", "ignored", UINT64_MAX);
    assert_buf(&f->b, "{\"ms\":18446744073709551615,\"ts\":18446744073709551615,"
                      "\"type\":\"Login\",\"user_id\":\"u\"}");
}

static void test_event_format_escapes_and_appends(void **state)
{
    struct fixture *f = *state;
    rtmd_buf_append_cstr(&f->b, "[");
    event(&f->b, RTMD_EVENT_JOIN, "q\"b\\s", "c\x01", 5);
    assert_buf(&f->b, "[{\"channel_id\":\"c\\u0001\",\"group_id\":\"c\\u0001\",\"ms\":5,\"ts\":5,"
                      "\"type\":\"Join\",\"user_id\":\"q\\\"b\\\\s\"}");
}

static void test_event_format_failure_leaves_buffer(void **state)
{
    (void)state;
    static const char prefix[] = "kept";
    struct rtmd_presence_op op = {RTMD_EVENT_JOIN, RTMD_STR_LIT("alice"), RTMD_STR_LIT("lobby"), T0,
                                  0};
    /* The whole event is 111 bytes; every smaller room fails cleanly. */
    for (size_t max = sizeof(prefix) - 1; max < 128; max++) {
        struct rtmd_buf b;
        rtmd_buf_init(&b, max);
        rtmd_buf_append_cstr(&b, prefix);
        int rc = rtmd_event_format(&b, &op);
        if (rc == 0) {
            assert_int_equal(b.len - (sizeof(prefix) - 1), 111);
        } else {
            assert_int_equal(rc, RTMD_ELIMIT);
            assert_int_equal(b.len, sizeof(prefix) - 1);
            assert_memory_equal(b.data, prefix, b.len);
            assert_true(max - (sizeof(prefix) - 1) < 111);
        }
        rtmd_buf_free(&b);
    }
}

/* ---- the §3.2 error body (http.c) --------------------------------------------------------------
 */

static void test_http_error_body(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(rtmd_http_error_body(&f->b, "not_found", "no such endpoint", "7_100"), 0);
    assert_buf(&f->b, "{\"code\":\"not_found\",\"message\":\"no such endpoint\","
                      "\"request_id\":\"7_100\",\"result\":\"failed\"}");
    rtmd_buf_reset(&f->b);
    assert_int_equal(rtmd_http_error_body(&f->b, "bad_request", "a \"quoted\"\nline\\", "1_0"), 0);
    assert_buf(&f->b, "{\"code\":\"bad_request\",\"message\":\"a \\\"quoted\\\"\\nline\\\\\","
                      "\"request_id\":\"1_0\",\"result\":\"failed\"}");
    rtmd_buf_reset(&f->b);
    assert_int_equal(rtmd_http_error_body(&f->b, "c", "", ""), 0);
    assert_buf(&f->b,
               "{\"code\":\"c\",\"message\":\"\",\"request_id\":\"\",\"result\":\"failed\"}");
}

static void test_http_error_body_too_small(void **state)
{
    (void)state;
    struct rtmd_buf b;
    rtmd_buf_init(&b, 32);
    assert_int_equal(rtmd_http_error_body(&b, "not_found", "no such endpoint", "7_100"),
                     RTMD_ELIMIT);
    assert_true(b.len <= 32);
    rtmd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty_containers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nesting_and_commas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_values_in_array, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_control_char, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8_passthrough, setup, teardown),
        cmocka_unit_test(test_sticky_error_at_max),
        cmocka_unit_test(test_escaped_growth_over_max),
        cmocka_unit_test_setup_teardown(test_event_format_each_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_format_escapes_and_appends, setup, teardown),
        cmocka_unit_test(test_event_format_failure_leaves_buffer),
        cmocka_unit_test_setup_teardown(test_http_error_body, setup, teardown),
        cmocka_unit_test(test_http_error_body_too_small),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
