/* Unit tests: core/redis_url.c (the seeds of [store] redis_url). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/redis_url.h"

static int parse(const char *url, struct rtmd_redis_seed *s)
{
    const char *why = NULL;
    int r = rtmd_redis_url_parse(rtmd_str_cstr(url), s, &why);
    if (r < 0)
        assert_non_null(why);
    return r;
}

static void valid(void **state)
{
    (void)state;
    struct rtmd_redis_seed s;
    assert_int_equal(parse("redis://127.0.0.1:6379", &s), 0);
    assert_string_equal(s.host, "127.0.0.1");
    assert_int_equal(s.port, 6379);
    assert_string_equal(s.user, "");
    assert_string_equal(s.password, "");
    assert_int_equal(parse("redis://redis.internal", &s), 0);
    assert_string_equal(s.host, "redis.internal");
    assert_int_equal(s.port, 6379);
    assert_int_equal(parse("redis://[::1]:7001/0", &s), 0);
    assert_string_equal(s.host, "::1");
    assert_int_equal(s.port, 7001);
    assert_int_equal(parse("redis://:s3cret@h:1/", &s), 0);
    assert_string_equal(s.user, "");
    assert_string_equal(s.password, "s3cret");
    assert_int_equal(parse("redis://alice:p%40ss%3Aw@h", &s), 0);
    assert_string_equal(s.user, "alice");
    assert_string_equal(s.password, "p@ss:w");
    assert_int_equal(parse("redis://onlysecret@h", &s), 0);
    assert_string_equal(s.password, "onlysecret");
    /* a password with '@' unescaped: the last '@' ends it */
    assert_int_equal(parse("redis://:a@b@h:2", &s), 0);
    assert_string_equal(s.password, "a@b");
    assert_string_equal(s.host, "h");
}

static void invalid(void **state)
{
    (void)state;
    struct rtmd_redis_seed s;
    const char *bad[] = {
        "",
        "redis://",
        "redis://:6379",
        "http://h:1",
        "rediss://h:1",
        "unix:///tmp/r.sock",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:",
        "redis://h:12x",
        "redis://h/1",
        "redis://h/0?x=1",
        "redis://h?x",
        "redis://[::1",
        "redis://[]:1",
        "redis://[::g]:1",
        "redis://h h",
        "redis://alice:@h",
        "redis://:@h",
        "redis://:a%zzb@h",
        "redis://:a%00b@h",
        "redis://h:1:2",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse(bad[i], &s) != -EINVAL)
            fail_msg("accepted %s", bad[i]);
    char longhost[300] = "redis://";
    memset(longhost + 8, 'a', 260);
    longhost[268] = '\0';
    assert_int_equal(parse(longhost, &s), -EINVAL);
}

static void lists(void **state)
{
    (void)state;
    struct rtmd_redis_seed seeds[3];
    size_t n, bad;
    const char *why;
    assert_int_equal(rtmd_redis_urls_parse(RTMD_STR_LIT(" redis://a:1 , ,redis://b:2,"), seeds, 3,
                                           &n, &why, &bad),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(seeds[1].host, "b");
    assert_int_equal(seeds[1].port, 2);
    assert_int_equal(
        rtmd_redis_urls_parse(RTMD_STR_LIT("redis://a, redis://b:x"), seeds, 3, &n, &why, &bad),
        -EINVAL);
    assert_int_equal(bad, 1);
    assert_int_equal(rtmd_redis_urls_parse(RTMD_STR_LIT(" , "), seeds, 3, &n, &why, &bad), -EINVAL);
    assert_int_equal(rtmd_redis_urls_parse(RTMD_STR_LIT("redis://a,redis://b,redis://c,redis://d"),
                                           seeds, 3, &n, &why, &bad),
                     -EINVAL);
    assert_int_equal(bad, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid),
        cmocka_unit_test(invalid),
        cmocka_unit_test(lists),
    };
    return cmocka_run_group_tests_name("redis_url", tests, NULL, NULL);
}
