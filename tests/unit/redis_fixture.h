/*
 * redis_fixture.h — what the unit tests that start real redis-server
 * processes share: the binary, a free loopback port, a monotonic clock in
 * ms, a pause. Include after <cmocka.h> and the socket headers.
 */
#ifndef RTMD_TESTS_REDIS_FIXTURE_H
#define RTMD_TESTS_REDIS_FIXTURE_H

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REDIS_SERVER_DEFAULT "/usr/bin/redis-server"

/* redis-server ($RTMD_REDIS_SERVER or Debian's), or NULL when missing. */
static inline const char *redis_server_bin(void)
{
    const char *p = getenv("RTMD_REDIS_SERVER");
    if (!p)
        p = REDIS_SERVER_DEFAULT;
    return access(p, X_OK) == 0 ? p : NULL;
}

static inline uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static inline uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void pause_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#endif
