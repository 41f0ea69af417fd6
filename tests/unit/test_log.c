/*
 * Unit tests for core/log.c and core/metrics.c: every record is one line
 * (valid JSON in the json format) whatever bytes its fields hold, values
 * are cut with "...", the file is reopened in place; histograms are
 * cumulative and end in +Inf.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"

static char path_[] = "/tmp/rtmd-test-log-XXXXXX";

static int setup(void **state)
{
    (void)state;
    int fd = mkstemp(path_);
    if (fd < 0)
        return -1;
    close(fd);
    rtmd_log_level = RTMD_LOG_DEBUG;
    return rtmd_log_open(path_);
}

static int teardown(void **state)
{
    (void)state;
    rtmd_log_close();
    unlink(path_);
    rtmd_log_format = RTMD_LOG_TEXT;
    return 0;
}

/* The log file's lines, from the start; the file emptied afterwards. */
static char *take_log(void)
{
    FILE *f = fopen(path_, "r");
    assert_non_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_int_equal(truncate(path_, 0), 0);
    return text;
}

static const char hostile_[] = "a\"b\\c\nd\re\x01\x7f\xff\xc3\xa9 k=v";

static void write_records(void)
{
    struct rtmd_log_rec r;
    rtmd_log_begin(&r, RTMD_LOG_INFO, "http", "request");
    rtmd_log_str(&r, "path", rtmd_str_make(hostile_, sizeof(hostile_) - 1));
    rtmd_log_u64(&r, "status", 200);
    rtmd_log_i64(&r, "delta", -7);
    rtmd_log_ms(&r, "duration_ms", 1234567);
    rtmd_log_cstr(&r, "empty", "");
    rtmd_log_end(&r);
    /* A value far longer than a line: cut, and every later field left out
     * whole once nothing fits. */
    static char big[3 * RTMD_LOG_LINE_MAX];
    memset(big, '"', sizeof(big));
    rtmd_log_begin(&r, RTMD_LOG_WARN, "gateway", "big");
    for (int i = 0; i < 20; i++)
        rtmd_log_str(&r, "v", rtmd_str_make(big, sizeof(big)));
    rtmd_log_u64(&r, "last", 1);
    rtmd_log_end(&r);
    rtmd_log(RTMD_LOG_ERROR, "main", "printf %s \"quoted\" \x02 %s", "style", "two\nlines");
    rtmd_log(RTMD_LOG_DEBUG, "main", "debug line");
}

static void test_json_lines_parse(void **state)
{
    (void)state;
    rtmd_log_format = RTMD_LOG_JSON;
    write_records();
    char *text = take_log();
    int lines = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save), lines++) {
        assert_true(strlen(line) < RTMD_LOG_LINE_MAX);
        cJSON *j = cJSON_Parse(line);
        if (!j)
            fail_msg("not JSON: %s", line);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "time");
        assert_true(cJSON_IsString(t) && strlen(t->valuestring) == 24);
        assert_true(t->valuestring[23] == 'Z' && t->valuestring[19] == '.');
        assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "level")));
        assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "module")));
        assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "msg")));
        if (lines == 0) {
            /* Valid UTF-8 stays, other bytes come back as U+00XX. */
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "path");
            assert_string_equal(p->valuestring, "a\"b\\c\nd\re\x01\x7f\xc3\xbf\xc3\xa9 k=v");
            assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "status")->valuedouble, 200);
            /* (not assert_int_equal: it converts to an unsigned type) */
            assert_true(cJSON_GetObjectItemCaseSensitive(j, "delta")->valuedouble == -7);
            assert_true(cJSON_GetObjectItemCaseSensitive(j, "duration_ms")->valuedouble == 1.234);
            assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "empty")->valuestring, "");
        }
        if (lines == 1) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "v");
            size_t n = strlen(v->valuestring);
            assert_int_equal(n, RTMD_LOG_VALUE_MAX + 3);
            assert_string_equal(v->valuestring + n - 3, "...");
            assert_null(cJSON_GetObjectItemCaseSensitive(j, "last"));
        }
        if (lines == 2)
            assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "msg")->valuestring,
                                "printf style \"quoted\" \x02 two\nlines");
        cJSON_Delete(j);
    }
    assert_int_equal(lines, 4);
}

static void test_text_lines(void **state)
{
    (void)state;
    rtmd_log_format = RTMD_LOG_TEXT;
    rtmd_log_level = RTMD_LOG_INFO;
    write_records();
    rtmd_log_level = RTMD_LOG_DEBUG;
    char *text = take_log();
    char *first = strtok(text, "\n");
    assert_non_null(strstr(first, " info http request path=\"a\\x22b\\x5cc\\x0ad\\x0de\\x01\\x7f"
                                  "\\xff\\xc3\\xa9 k=v\" status=200 delta=-7 "
                                  "duration_ms=1.234 empty=\"\""));
    char *second = strtok(NULL, "\n");
    assert_non_null(strstr(second, " warn gateway big v=\"\\x22\\x22"));
    assert_true(strlen(second) < RTMD_LOG_LINE_MAX);
    char *third = strtok(NULL, "\n");
    assert_non_null(strstr(third, " error main printf style \"quoted\" \\x02 two\\x0alines"));
    assert_null(strtok(NULL, "\n")); /* the debug line is below the level */
}

static void test_reopen_follows_the_path(void **state)
{
    (void)state;
    rtmd_log_format = RTMD_LOG_TEXT;
    char moved[sizeof(path_) + 4];
    snprintf(moved, sizeof(moved), "%s.1", path_);
    rtmd_log(RTMD_LOG_WARN, "t", "before");
    assert_int_equal(rename(path_, moved), 0);
    rtmd_log(RTMD_LOG_WARN, "t", "moved");
    assert_int_equal(rtmd_log_reopen(), 0);
    rtmd_log(RTMD_LOG_WARN, "t", "after");
    char *now = take_log();
    assert_non_null(strstr(now, " after"));
    assert_null(strstr(now, " moved"));
    FILE *f = fopen(moved, "r");
    char old[512];
    size_t n = fread(old, 1, sizeof(old) - 1, f);
    fclose(f);
    old[n] = '\0';
    assert_non_null(strstr(old, " before"));
    assert_non_null(strstr(old, " moved"));
    unlink(moved);
}

/* A reload may point the log elsewhere: the same descriptor then writes to
 * the new file (another thread may be writing through it meanwhile). */
static void test_open_another_file(void **state)
{
    (void)state;
    rtmd_log_format = RTMD_LOG_TEXT;
    char other[sizeof(path_) + 4];
    snprintf(other, sizeof(other), "%s.2", path_);
    rtmd_log(RTMD_LOG_WARN, "t", "first");
    assert_int_equal(rtmd_log_open(other), 0);
    rtmd_log(RTMD_LOG_WARN, "t", "second");
    assert_int_equal(rtmd_log_open(path_), 0);
    rtmd_log(RTMD_LOG_WARN, "t", "third");
    char *text = take_log();
    assert_non_null(strstr(text, " first"));
    assert_null(strstr(text, " second"));
    assert_non_null(strstr(text, " third"));
    FILE *f = fopen(other, "r");
    assert_non_null(f);
    char buf[512];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_non_null(strstr(buf, " second"));
    assert_null(strstr(buf, " third"));
    unlink(other);
    assert_int_equal(rtmd_log_open("/nonexistent-dir/x.log"), -ENOENT);
    rtmd_log(RTMD_LOG_WARN, "t", "still here");
    assert_non_null(strstr(take_log(), " still here"));
}

static void test_histogram(void **state)
{
    (void)state;
    struct rtmd_histogram h;
    memset(&h, 0, sizeof(h));
    rtmd_histogram_observe(&h, 50000);              /* 50 us: the first bucket */
    rtmd_histogram_observe(&h, 100000);             /* on the bound: still the first */
    rtmd_histogram_observe_n(&h, 3000000, 2);       /* 3 ms: le 0.005 */
    rtmd_histogram_observe(&h, 20 * 1000000000ULL); /* 20 s: +Inf only */
    struct rtmd_buf b;
    rtmd_buf_init(&b, SIZE_MAX);
    assert_int_equal(rtmd_histogram_write(&b, "x_seconds", "route=\"/a\"", &h), 0);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    const char *t = b.data;
    assert_non_null(strstr(t, "x_seconds_bucket{route=\"/a\",le=\"0.0001\"} 2\n"));
    assert_non_null(strstr(t, "x_seconds_bucket{route=\"/a\",le=\"0.0025\"} 2\n"));
    assert_non_null(strstr(t, "x_seconds_bucket{route=\"/a\",le=\"0.005\"} 4\n"));
    assert_non_null(strstr(t, "x_seconds_bucket{route=\"/a\",le=\"10\"} 4\n"));
    assert_non_null(strstr(t, "x_seconds_bucket{route=\"/a\",le=\"+Inf\"} 5\n"));
    assert_non_null(strstr(t, "x_seconds_sum{route=\"/a\"} 20.006150000\n"));
    assert_non_null(strstr(t, "x_seconds_count{route=\"/a\"} 5\n"));
    rtmd_buf_reset(&b);
    assert_int_equal(rtmd_histogram_write(&b, "y_seconds", NULL, &h), 0);
    assert_int_equal(rtmd_buf_append_byte(&b, '\0'), 0);
    assert_non_null(strstr(b.data, "y_seconds_bucket{le=\"+Inf\"} 5\ny_seconds_sum 20.0"));
    assert_non_null(strstr(b.data, "\ny_seconds_count 5\n"));
    rtmd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_lines_parse),
        cmocka_unit_test(test_text_lines),
        cmocka_unit_test(test_reopen_follows_the_path),
        cmocka_unit_test(test_open_another_file),
        cmocka_unit_test(test_histogram),
    };
    return cmocka_run_group_tests_name("log", tests, setup, teardown);
}
