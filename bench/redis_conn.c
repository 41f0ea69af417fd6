/*
 * redis_conn.c — commands/s through one rtmd Redis connection
 * (store/redis_conn.c) with a fixed number of commands in flight: each
 * reply's callback issues the next command, so the connection always has
 * --inflight outstanding and every loop iteration writes what the replies
 * of its read made, in one write. The load generator for bench/redis-conn,
 * which compares it with redis-benchmark -P 16 on the same server.
 *
 *   build/bench/redis_conn --port P [--host 127.0.0.1] [--inflight 256]
 *       [--seconds 5] [--command set|get|ping] [--password PW]
 *
 * After a 0.5 s warm-up it counts replies for --seconds and prints one line,
 * "RESULT {json}": commands, seconds, commands_per_s, writes, the commands
 * per write, timeouts and errors (all must be 0). Exit status 0 when every
 * command succeeded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/log.h"
#include "core/loop.h"
#include "store/redis_conn.h"

static struct rtmd_redis_conn *conn_;
static const char *argv_[3];
static size_t argvlen_[3];
static int argc_;
static uint64_t replies_, errors_, timeouts_, issued_;
static bool measuring_, stopping_, up_;

static void on_reply(void *arg, int status, const redisReply *r);

static void issue(void)
{
    int r = rtmd_redis_conn_command(conn_, argc_, argv_, argvlen_, rtmd_now_ms() + 5000, on_reply,
                                    NULL);
    if (r < 0) {
        fprintf(stderr, "redis_conn: command refused: %s\n", rtmd_strerror(r));
        errors_++;
        return;
    }
    issued_++;
}

static void on_reply(void *arg, int status, const redisReply *r)
{
    (void)arg;
    if (status == -ETIMEDOUT)
        timeouts_++;
    else if (status != 0 || r->type == REDIS_REPLY_ERROR)
        errors_ += status != RTMD_ECLOSED;
    else if (measuring_)
        replies_++;
    if (!stopping_ && status == 0)
        issue();
}

static void on_state(void *arg, bool up)
{
    (void)arg;
    up_ = up;
}

static void on_timer(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

static void usage(void)
{
    fprintf(stderr, "usage: redis_conn --port P [--host H] [--inflight N] [--seconds S] "
                    "[--command set|get|ping] [--password PW]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *command = "set", *password = "";
    long port = 0, inflight = 256;
    double seconds = 5;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (strcmp(a, "--port") == 0)
            port = strtol(v, NULL, 10);
        else if (strcmp(a, "--host") == 0)
            host = v;
        else if (strcmp(a, "--inflight") == 0)
            inflight = strtol(v, NULL, 10);
        else if (strcmp(a, "--seconds") == 0)
            seconds = strtod(v, NULL);
        else if (strcmp(a, "--command") == 0)
            command = v;
        else if (strcmp(a, "--password") == 0)
            password = v;
        else
            usage();
    }
    if (port <= 0 || port > 65535 || inflight < 1 || inflight > 65536 || seconds <= 0)
        usage();
    if (strcmp(command, "set") == 0) {
        argv_[0] = "SET", argv_[1] = "key:bench", argv_[2] = "xxx", argc_ = 3;
    } else if (strcmp(command, "get") == 0) {
        argv_[0] = "GET", argv_[1] = "key:bench", argc_ = 2;
    } else if (strcmp(command, "ping") == 0) {
        argv_[0] = "PING", argc_ = 1;
    } else {
        usage();
    }
    for (int i = 0; i < argc_; i++)
        argvlen_[i] = strlen(argv_[i]);

    uv_loop_t loop;
    uv_loop_init(&loop);
    rtmd_loop_init(&loop);
    rtmd_log_level = RTMD_LOG_WARN;
    struct rtmd_redis_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    snprintf(ep.host, sizeof(ep.host), "%s", host);
    ep.port = (uint16_t)port;
    snprintf(ep.password, sizeof(ep.password), "%s", password);
    struct rtmd_redis_conn_options opt;
    memset(&opt, 0, sizeof(opt));
    opt.on_state = on_state;
    if (rtmd_redis_conn_open(&conn_, &loop, &ep, &opt) < 0) {
        fprintf(stderr, "redis_conn: cannot open\n");
        return 2;
    }
    bool fired = false;
    uv_timer_t timer;
    uv_timer_init(&loop, &timer);
    timer.data = &fired;
    uv_timer_start(&timer, on_timer, 5000, 0);
    while (!up_ && !fired)
        uv_run(&loop, UV_RUN_ONCE);
    if (!up_) {
        fprintf(stderr, "redis_conn: no connection to %s:%ld\n", host, port);
        return 1;
    }
    for (long i = 0; i < inflight; i++)
        issue();
    fired = false;
    uv_timer_start(&timer, on_timer, 500, 0);
    while (!fired)
        uv_run(&loop, UV_RUN_ONCE);
    struct rtmd_redis_conn_stats s0, s1;
    rtmd_redis_conn_stats(conn_, &s0);
    measuring_ = true;
    fired = false;
    uint64_t t0 = uv_hrtime();
    uv_timer_start(&timer, on_timer, (uint64_t)(seconds * 1000), 0);
    while (!fired)
        uv_run(&loop, UV_RUN_ONCE);
    double elapsed = (double)(uv_hrtime() - t0) / 1e9;
    measuring_ = false;
    rtmd_redis_conn_stats(conn_, &s1);
    stopping_ = true;
    bool closed = false;
    rtmd_redis_conn_close(conn_, on_closed, &closed);
    uv_close((uv_handle_t *)&timer, NULL);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    rtmd_loop_close();
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t writes = s1.writes - s0.writes;
    printf("RESULT {\"command\":\"%s\",\"inflight\":%ld,\"commands\":%llu,\"seconds\":%.3f,"
           "\"commands_per_s\":%.0f,\"writes\":%llu,\"commands_per_write\":%.1f,"
           "\"timeouts\":%llu,\"errors\":%llu}\n",
           command, inflight, (unsigned long long)replies_, elapsed, (double)replies_ / elapsed,
           (unsigned long long)writes, writes ? (double)replies_ / (double)writes : 0.0,
           (unsigned long long)timeouts_, (unsigned long long)errors_);
    return errors_ || timeouts_ ? 1 : 0;
}
