/*
 * Unit tests for store/redis_conn.c: one Redis connection on a real libuv
 * loop, against real redis-server processes (each on a free loopback port,
 * in a temp dir, no persistence; stopped, continued, killed and restarted by
 * the tests), and, for what a real server never sends, a scripted server on
 * the test's own loop. Tests that need redis-server skip when it is missing
 * (RTMD_REDIS_SERVER names another binary).
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_fixture.h"
#include "store/redis_conn.c"

/* How late a timeout may come after its deadline (the machine is shared). */
#define MARGIN_MS 100

/* ---- redis-server processes ---- */

struct server {
    pid_t pid;
    uint16_t port;
    char dir[64];
    const char *password; /* --requirepass, or NULL */
};

/* Whether something on port answers an inline PING (+PONG, or -NOAUTH). */
static bool server_answers(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    bool ok = false;
    char b[64];
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && write(fd, "PING\r\n", 6) == 6 &&
        read(fd, b, sizeof(b)) > 0)
        ok = b[0] == '+' || b[0] == '-';
    close(fd);
    return ok;
}

/* Starts redis-server on s->port (a free one if 0) in s->dir (made if
 * empty) and waits until it answers (5 s at most). */
static void server_start(struct server *s)
{
    const char *bin = redis_server_bin();
    assert_non_null(bin);
    if (!s->port)
        s->port = free_port();
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof(s->dir), "/tmp/rtmd-redis-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
    }
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)s->port);
    const char *argv[24] = {bin,      "--port",    port,           "--bind",      "127.0.0.1",
                            "--save", "",          "--appendonly", "no",          "--dir",
                            s->dir,   "--logfile", "redis.log",    "--daemonize", "no"};
    int argc = 15;
    if (s->password) {
        argv[argc++] = "--requirepass";
        argv[argc++] = s->password;
    }
    argv[argc] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    uint64_t until = mono_ms() + 5000;
    while (!server_answers(s->port)) {
        int st;
        assert_int_equal(waitpid(pid, &st, WNOHANG), 0); /* it did not exit */
        assert_true(mono_ms() < until);
        pause_ms(10);
    }
}

/* kill -9 (continued first if stopped) and reaped. */
static void server_kill(struct server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGCONT);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void server_cleanup(struct server *s)
{
    server_kill(s);
    if (s->dir[0])
        nftw(s->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = '\0';
}

/* ---- the loop, connections, calls ---- */

struct push {
    char kind[16], channel[32], payload[32];
};

struct rc { /* one connection under test and what it reported */
    struct rtmd_redis_conn *c;
    bool up;
    int ups, downs, done;
    struct push pushes[32];
    int n_pushes;
    bool close_on_down;
};

struct fx {
    uv_loop_t loop;
    uv_timer_t watchdog;
    bool expired;
    struct server srv;
    struct rc a, b;
};

static int in_call_; /* set while a test calls into redis_conn: a callback then is a bug */

static void on_watchdog(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop until cond holds or ms pass; the caller asserts cond. */
#define WAIT_FOR(f, cond, ms)                                                                      \
    do {                                                                                           \
        (f)->expired = false;                                                                      \
        uv_timer_start(&(f)->watchdog, on_watchdog, (ms), 0);                                      \
        while (!(cond) && !(f)->expired)                                                           \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        uv_timer_stop(&(f)->watchdog);                                                             \
    } while (0)

/* Runs the loop for ms. */
static void run_for(struct fx *f, unsigned ms)
{
    WAIT_FOR(f, false, ms);
}

static void on_conn_done(void *arg)
{
    ((struct rc *)arg)->done++;
}

static void on_state(void *arg, bool up)
{
    struct rc *r = arg;
    assert_false(in_call_);
    r->up = up;
    if (up) {
        r->ups++;
        return;
    }
    r->downs++;
    if (r->close_on_down)
        rtmd_redis_conn_close(r->c, on_conn_done, r);
}

static void copy_str(char *out, size_t size, const redisReply *r)
{
    size_t n = r && r->str ? RTMD_MIN(r->len, size - 1) : 0;
    if (n)
        memcpy(out, r->str, n);
    out[n] = '\0';
}

static void on_push(void *arg, const redisReply *msg)
{
    struct rc *r = arg;
    assert_false(in_call_);
    assert_true(r->n_pushes < (int)RTMD_ARRAY_SIZE(r->pushes));
    struct push *p = &r->pushes[r->n_pushes++];
    assert_int_equal(msg->type, REDIS_REPLY_ARRAY);
    copy_str(p->kind, sizeof(p->kind), msg->element[0]);
    copy_str(p->channel, sizeof(p->channel), msg->element[msg->elements == 4 ? 2 : 1]);
    copy_str(p->payload, sizeof(p->payload), msg->element[msg->elements - 1]);
}

static void expect_push(struct rc *r, int i, const char *kind, const char *channel,
                        const char *payload)
{
    assert_true(i < r->n_pushes);
    assert_string_equal(r->pushes[i].kind, kind);
    assert_string_equal(r->pushes[i].channel, channel);
    assert_string_equal(r->pushes[i].payload, payload);
}

static struct rtmd_redis_conn_options options(struct rc *r)
{
    struct rtmd_redis_conn_options o;
    memset(&o, 0, sizeof(o));
    o.on_state = on_state;
    o.on_push = on_push;
    o.arg = r;
    return o;
}

static void rc_open(struct fx *f, struct rc *r, const char *host, uint16_t port, const char *user,
                    const char *password, const struct rtmd_redis_conn_options *o)
{
    struct rtmd_redis_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    snprintf(ep.host, sizeof(ep.host), "%s", host);
    ep.port = port;
    snprintf(ep.user, sizeof(ep.user), "%s", user ? user : "");
    snprintf(ep.password, sizeof(ep.password), "%s", password ? password : "");
    struct rtmd_redis_conn_options def = options(r);
    in_call_ = 1;
    assert_int_equal(rtmd_redis_conn_open(&r->c, &f->loop, &ep, o ? o : &def), 0);
    in_call_ = 0;
    assert_non_null(r->c);
}

/* Opens r on the test's server and waits until it is up. */
static void rc_open_up(struct fx *f, struct rc *r, const struct rtmd_redis_conn_options *o)
{
    rc_open(f, r, "127.0.0.1", f->srv.port, NULL, f->srv.password, o);
    WAIT_FOR(f, r->up, 5000);
    assert_true(r->up);
}

static void rc_close(struct fx *f, struct rc *r)
{
    if (!r->c)
        return;
    int done = r->done;
    if (!r->close_on_down || !r->done) {
        in_call_ = 1;
        rtmd_redis_conn_close(r->c, on_conn_done, r);
        in_call_ = 0;
    }
    WAIT_FOR(f, r->done > done, 5000);
    assert_int_equal(r->done, done + 1);
    memset(r, 0, sizeof(*r));
}

static struct rtmd_redis_conn_stats stats_of(struct rc *r)
{
    struct rtmd_redis_conn_stats s;
    rtmd_redis_conn_stats(r->c, &s);
    return s;
}

struct call {
    int calls;
    int status;
    int type;
    long long integer;
    size_t elements;
    size_t len;
    char str[64];
    char el[4][32]; /* the first elements of an array, as strings */
    uint64_t at;    /* rtmd_now_ms() when called back */
    /* what the callback does, for the re-entrancy tests */
    struct rc *rc;
    int then; /* 0 nothing, 1 close rc, 2 issue `next` on rc, 3 INCR chain */
    struct call *next;
    int next_status; /* what issuing `next` returned */
    int chain;       /* INCRs left to chain */
};

static int issue(struct rc *r, struct call *k, uint64_t deadline, ...);

static void on_call(void *arg, int status, const redisReply *rp)
{
    struct call *k = arg;
    assert_false(in_call_); /* never inside the call that made it */
    k->calls++;
    k->status = status;
    k->at = rtmd_now_ms();
    if (rp) {
        k->type = rp->type;
        k->integer = rp->integer;
        k->elements = rp->elements;
        k->len = rp->len;
        copy_str(k->str, sizeof(k->str), rp);
        for (size_t i = 0; rp->type == REDIS_REPLY_ARRAY && i < rp->elements && i < 4; i++) {
            if (rp->element[i]->type == REDIS_REPLY_INTEGER)
                snprintf(k->el[i], sizeof(k->el[i]), ":%lld", rp->element[i]->integer);
            else
                copy_str(k->el[i], sizeof(k->el[i]), rp->element[i]);
        }
    }
    if (k->then == 1) {
        rtmd_redis_conn_close(k->rc->c, on_conn_done, k->rc);
    } else if (k->then == 2) {
        k->next_status = issue(k->rc, k->next, rtmd_now_ms() + 5000, "GET", "k2", NULL);
    } else if (k->then == 3 && status == 0 && k->chain > 0) {
        k->chain--;
        k->calls = 0;
        k->next_status = issue(k->rc, k, rtmd_now_ms() + 5000, "INCR", "chain", NULL);
        if (k->next_status < 0)
            k->calls = 1;
    }
}

/* Issues a command given as NULL-terminated C strings. */
static int issue(struct rc *r, struct call *k, uint64_t deadline, ...)
{
    const char *argv[16];
    int argc = 0;
    va_list ap;
    va_start(ap, deadline);
    const char *s;
    while ((s = va_arg(ap, const char *)) && argc < 16)
        argv[argc++] = s;
    va_end(ap);
    int saved = in_call_;
    in_call_ = 1;
    int rc = rtmd_redis_conn_command(r->c, argc, argv, NULL, deadline, on_call, k);
    in_call_ = saved;
    return rc;
}

#define SOON() (rtmd_now_ms() + 5000)

static void await_call(struct fx *f, struct call *k)
{
    WAIT_FOR(f, k->calls > 0, 5000);
    assert_int_equal(k->calls, 1);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (uv_loop_init(&f->loop) || rtmd_loop_init(&f->loop))
        return -1;
    uv_timer_init(&f->loop, &f->watchdog);
    f->watchdog.data = &f->expired;
    rtmd_log_level = RTMD_LOG_ERROR;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->srv.pid > 0)
        kill(f->srv.pid, SIGCONT);
    rc_close(f, &f->a);
    rc_close(f, &f->b);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    rtmd_loop_close();
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    server_cleanup(&f->srv);
    free(f);
    return 0;
}

/* Starts the test's redis-server, or skips the test. */
static void need_redis(struct fx *f, const char *password)
{
    if (!redis_server_bin()) {
        print_message("redis-server not found (%s; set RTMD_REDIS_SERVER or install redis-server): "
                      "skipped\n",
                      REDIS_SERVER_DEFAULT);
        skip();
    }
    f->srv.password = password;
    server_start(&f->srv);
}

/* ---- commands and replies ---- */

struct big {
    int calls, status;
    size_t len;
    bool same;
    const char *want;
};

static void on_big(void *arg, int status, const redisReply *r)
{
    struct big *b = arg;
    b->calls++;
    b->status = status;
    if (r && r->type == REDIS_REPLY_STRING) {
        b->len = r->len;
        b->same = memcmp(r->str, b->want, r->len) == 0;
    }
}

struct time_result {
    int calls, status;
    int64_t offset;
    uint64_t rtt;
};

static void on_time_result(void *arg, int status, int64_t offset, uint64_t rtt)
{
    struct time_result *t = arg;
    t->calls++;
    t->status = status;
    t->offset = offset;
    t->rtt = rtt;
}

static void test_commands_and_replies(void **state)
{
    struct fx *f = *state;
    need_redis(f, NULL);
    rc_open_up(f, &f->a, NULL);
    assert_true(rtmd_redis_conn_up(f->a.c));

    /* A binary value (NUL, CR, LF) goes through argvlen. */
    const char *argv[3] = {"SET", "bin", "a\0b\r\nc"};
    size_t argvlen[3] = {3, 3, 7};
    struct call set = {0}, get = {0}, err = {0}, nil = {0}, list = {0}, push = {0};
    in_call_ = 1;
    assert_int_equal(rtmd_redis_conn_command(f->a.c, 3, argv, argvlen, SOON(), on_call, &set), 0);
    in_call_ = 0;
    assert_int_equal(issue(&f->a, &get, SOON(), "GET", "bin", NULL), 0);
    assert_int_equal(issue(&f->a, &err, SOON(), "INCR", "bin", NULL), 0);
    assert_int_equal(issue(&f->a, &nil, SOON(), "GET", "nothing-here", NULL), 0);
    assert_int_equal(issue(&f->a, &push, SOON(), "RPUSH", "l", "x", "y", NULL), 0);
    assert_int_equal(issue(&f->a, &list, SOON(), "LRANGE", "l", "0", "-1", NULL), 0);
    assert_int_equal(set.calls + get.calls + err.calls, 0); /* later, never inside */
    await_call(f, &list);
    assert_int_equal(set.status, 0);
    assert_int_equal(set.type, REDIS_REPLY_STATUS);
    assert_string_equal(set.str, "OK");
    assert_int_equal(get.type, REDIS_REPLY_STRING);
    assert_int_equal(get.len, 7);
    assert_memory_equal(get.str, "a\0b\r\nc", 7);
    assert_int_equal(err.status, 0); /* an error reply is a reply */
    assert_int_equal(err.type, REDIS_REPLY_ERROR);
    assert_int_equal(nil.type, REDIS_REPLY_NIL);
    assert_int_equal(push.integer, 2);
    assert_int_equal(list.type, REDIS_REPLY_ARRAY);
    assert_int_equal(list.elements, 2);
    assert_string_equal(list.el[1], "y");

    /* 1 MiB each way. */
    size_t n = 1 << 20;
    char *value = malloc(n);
    for (size_t i = 0; i < n; i++)
        value[i] = (char)(i * 7);
    const char *bargv[3] = {"SET", "big", value};
    size_t blen[3] = {3, 3, n};
    struct call bset = {0};
    struct big bget = {0, 0, 0, false, value};
    assert_int_equal(rtmd_redis_conn_command(f->a.c, 3, bargv, blen, SOON(), on_call, &bset), 0);
    const char *gargv[2] = {"GET", "big"};
    assert_int_equal(rtmd_redis_conn_command(f->a.c, 2, gargv, NULL, SOON(), on_big, &bget), 0);
    WAIT_FOR(f, bget.calls > 0, 5000);
    assert_int_equal(bset.type, REDIS_REPLY_STATUS);
    assert_int_equal(bget.status, 0);
    assert_int_equal(bget.len, n);
    assert_true(bget.same);
    free(value);

    /* Redis's clock: the same machine's, so the offset is within the
     * round trip (and rtmd's clock, read once per iteration). */
    struct time_result t = {0};
    assert_int_equal(rtmd_redis_conn_time(f->a.c, SOON(), on_time_result, &t), 0);
    WAIT_FOR(f, t.calls > 0, 5000);
    assert_int_equal(t.status, 0);
    assert_true(t.rtt < 1000);
    assert_true(t.offset <= (int64_t)t.rtt + 20 && t.offset >= -(int64_t)t.rtt - 20);
    struct rtmd_redis_conn_stats s = stats_of(&f->a);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.unsent, 0);
    assert_int_equal(s.timeouts, 0);
}

/* 2000 commands issued in one loop iteration go out in one write (the
 * kernel may take a large batch in two), and replies match in order. */
static void test_pipelining_one_write(void **state)
{
    struct fx *f = *state;
    need_redis(f, NULL);
    rc_open_up(f, &f->a, NULL);
    enum { N = 2000 };
    struct call *k = calloc(N, sizeof(*k));
    struct rtmd_redis_conn_stats before = stats_of(&f->a);
    for (int i = 0; i < N; i++)
        assert_int_equal(issue(&f->a, &k[i], SOON(), "INCR", "ctr", NULL), 0);
    assert_int_equal(stats_of(&f->a).pending, N);
    WAIT_FOR(f, k[N - 1].calls > 0, 10000);
    for (int i = 0; i < N; i++) {
        assert_int_equal(k[i].calls, 1);
        assert_int_equal(k[i].status, 0);
        assert_int_equal(k[i].integer, i + 1);
    }
    struct rtmd_redis_conn_stats after = stats_of(&f->a);
    uint64_t writes = after.writes - before.writes;
    print_message("pipelining: %d commands, %llu bytes, %llu write calls\n", N,
                  (unsigned long long)(after.bytes_out - before.bytes_out),
                  (unsigned long long)writes);
    assert_int_equal(after.bytes_out - before.bytes_out, (uint64_t)N * 23);
    assert_true(writes >= 1 && writes <= 2);
    free(k);
}

/* ---- deadlines against a stopped server ---- */

static void test_deadline_stopped_server(void **state)
{
    struct fx *f = *state;
    need_redis(f, NULL);
    struct rtmd_redis_conn_options o = options(&f->a);
    o.stuck_grace_ms = 400;
    o.connect_timeout_ms = 300;
    o.backoff_max_ms = 200;
    rc_open_up(f, &f->a, &o);
    struct call warm = {0};
    assert_int_equal(issue(&f->a, &warm, SOON(), "SET", "k", "v", NULL), 0);
    await_call(f, &warm);

    assert_int_equal(kill(f->srv.pid, SIGSTOP), 0);
    enum { N = 12 };
    struct call k[N];
    memset(k, 0, sizeof(k));
    uint64_t now = rtmd_now_ms(), deadline[N], oldest = 0;
    static const unsigned ms[3] = {250, 150, 200}; /* not in FIFO order */
    for (int i = 0; i < N; i++) {
        deadline[i] = now + ms[i % 3];
        oldest = i == 0 ? deadline[i] : oldest;
        assert_int_equal(issue(&f->a, &k[i], deadline[i], "GET", "k", NULL), 0);
    }
    WAIT_FOR(f, k[0].calls && k[1].calls && k[2].calls && k[N - 1].calls, 2000);
    uint64_t worst = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(k[i].calls, 1);
        assert_int_equal(k[i].status, -ETIMEDOUT);
        assert_true(k[i].at >= deadline[i]);
        worst = RTMD_MAX(worst, k[i].at - deadline[i]);
    }
    print_message("timeouts: at most %llu ms after their deadlines\n", (unsigned long long)worst);
    assert_true(worst <= MARGIN_MS);
    assert_true(f->a.up); /* not yet stuck */

    /* The oldest command unanswered 400 ms past its deadline: the server is
     * stuck, the connection dropped. */
    WAIT_FOR(f, f->a.downs > 0, 2000);
    assert_int_equal(f->a.downs, 1);
    uint64_t down_at = rtmd_now_ms();
    print_message("stuck: dropped %lld ms after the oldest deadline (grace 400)\n",
                  (long long)(down_at - oldest));
    assert_true(down_at >= oldest + 400 && down_at <= oldest + 400 + MARGIN_MS);
    struct call refused = {0};
    assert_int_equal(issue(&f->a, &refused, SOON(), "GET", "k", NULL), -ENOTCONN);

    /* While stopped, attempts connect (the kernel completes the handshake)
     * but never get the PING answered: not up. */
    run_for(f, 600);
    assert_false(f->a.up);
    assert_true(stats_of(&f->a).connects >= 2);

    assert_int_equal(kill(f->srv.pid, SIGCONT), 0);
    WAIT_FOR(f, f->a.up, 3000);
    assert_true(f->a.up);
    struct call after = {0};
    assert_int_equal(issue(&f->a, &after, SOON(), "GET", "k", NULL), 0);
    await_call(f, &after);
    assert_int_equal(after.status, 0);
    assert_string_equal(after.str, "v");
    assert_int_equal(refused.calls, 0);
}

/* A reply that comes after its command timed out is read and discarded;
 * the next command gets its own reply. */
static void test_late_reply_discarded(void **state)
{
    struct fx *f = *state;
    need_redis(f, NULL);
    rc_open_up(f, &f->a, NULL); /* grace 2 s */
    struct call s1 = {0}, s2 = {0}, late = {0}, next = {0};
    issue(&f->a, &s1, SOON(), "SET", "k1", "one", NULL);
    issue(&f->a, &s2, SOON(), "SET", "k2", "two", NULL);
    await_call(f, &s2);
    assert_int_equal(kill(f->srv.pid, SIGSTOP), 0);
    uint64_t deadline = rtmd_now_ms() + 100;
    assert_int_equal(issue(&f->a, &late, deadline, "GET", "k1", NULL), 0);
    await_call(f, &late);
    assert_int_equal(late.status, -ETIMEDOUT);
    assert_true(late.at >= deadline && late.at <= deadline + MARGIN_MS);
    assert_int_equal(issue(&f->a, &next, SOON(), "GET", "k2", NULL), 0);
    assert_int_equal(kill(f->srv.pid, SIGCONT), 0);
    await_call(f, &next);
    assert_int_equal(next.status, 0);
    assert_string_equal(next.str, "two");
    assert_int_equal(late.calls, 1);
    struct rtmd_redis_conn_stats s = stats_of(&f->a);
    assert_int_equal(s.late, 1);
    assert_int_equal(s.timeouts, 1);
    assert_int_equal(f->a.downs, 0);
}

/* ---- reconnecting ---- */

static void test_kill9_and_restart(void **state)
{
    struct fx *f = *state;
    need_redis(f, NULL);
    rc_open_up(f, &f->a, NULL);
    /* Commands sent to a stopped server, then kill -9: they may have run. */
    assert_int_equal(kill(f->srv.pid, SIGSTOP), 0);
    enum { N = 5 };
    struct call k[N];
    memset(k, 0, sizeof(k));
    for (int i = 0; i < N; i++)
        assert_int_equal(issue(&f->a, &k[i], SOON(), "INCR", "n", NULL), 0);
    WAIT_FOR(f, stats_of(&f->a).unsent == 0, 2000);
    assert_int_equal(stats_of(&f->a).unsent, 0);
    run_for(f, 20);
    /* SIGKILL while stopped (continuing it first would let it answer). */
    assert_int_equal(kill(f->srv.pid, SIGKILL), 0);
    waitpid(f->srv.pid, NULL, 0);
    f->srv.pid = 0;
    WAIT_FOR(f, f->a.downs > 0, 2000);
    assert_int_equal(f->a.downs, 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(k[i].calls, 1);
        assert_int_equal(k[i].status, -ECONNRESET);
    }
    /* Down: refused at once. */
    struct call refused = {0};
    assert_int_equal(issue(&f->a, &refused, SOON(), "GET", "n", NULL), -ENOTCONN);
    run_for(f, 300);
    assert_false(f->a.up);

    /* The same port again: reconnects by itself. */
    uint64_t t0 = mono_ms();
    server_start(&f->srv);
    WAIT_FOR(f, f->a.up, 5000);
    assert_true(f->a.up);
    print_message("reconnected %llu ms after the restart (backoff at most 2 s)\n",
                  (unsigned long long)(mono_ms() - t0));
    assert_int_equal(f->a.ups, 2);
    struct call again = {0};
    assert_int_equal(issue(&f->a, &again, SOON(), "INCR", "n", NULL), 0);
    await_call(f, &again);
    assert_int_equal(again.status, 0);
    assert_int_equal(again.integer, 1); /* a new, empty server */
    assert_int_equal(refused.calls, 0);
}

/* Nothing listening: never up, attempts back off (50 ms doubling, jittered);
 * then a server appears on the port. */
static void test_backoff_until_server_appears(void **state)
{
    struct fx *f = *state;
    if (!redis_server_bin())
        skip();
    f->srv.port = free_port();
    rc_open(f, &f->a, "127.0.0.1", f->srv.port, NULL, NULL, NULL);
    struct call k = {0};
    assert_int_equal(issue(&f->a, &k, SOON(), "PING", NULL), -ENOTCONN);
    run_for(f, 1000);
    struct rtmd_redis_conn_stats s = stats_of(&f->a);
    print_message("backoff: %llu attempts in 1 s\n", (unsigned long long)s.connects);
    assert_true(s.connects >= 3 && s.connects <= 7);
    assert_int_equal(f->a.ups + f->a.downs, 0);
    server_start(&f->srv);
    WAIT_FOR(f, f->a.up, 3000);
    assert_true(f->a.up);
}

/* A host name goes through uv_getaddrinfo (the attempts rotate through its
 * addresses: "localhost" may give ::1 first, where nothing listens). */
static void test_host_name(void **state)
{
    struct fx *f = *state;
    need_redis(f, NULL);
    rc_open(f, &f->a, "localhost", f->srv.port, NULL, NULL, NULL);
    WAIT_FOR(f, f->a.up, 5000);
    assert_true(f->a.up);
    struct call k = {0};
    issue(&f->a, &k, SOON(), "PING", NULL);
    await_call(f, &k);
    assert_string_equal(k.str, "PONG");
    rc_close(f, &f->a);
    rc_open(f, &f->a, "no-such-host.invalid", f->srv.port, NULL, NULL, NULL);
    run_for(f, 300);
    assert_false(f->a.up);
}

static void test_open_refuses_bad_endpoints(void **state)
{
    struct fx *f = *state;
    struct rtmd_redis_endpoint ep;
    struct rtmd_redis_conn *c = (struct rtmd_redis_conn *)1;
    memset(&ep, 0, sizeof(ep));
    ep.port = 6379;
    assert_int_equal(rtmd_redis_conn_open(&c, &f->loop, &ep, NULL), -EINVAL); /* no host */
    assert_null(c);
    snprintf(ep.host, sizeof(ep.host), "127.0.0.1");
    snprintf(ep.user, sizeof(ep.user), "alice");
    assert_int_equal(rtmd_redis_conn_open(&c, &f->loop, &ep, NULL), -EINVAL); /* no password */
    memset(ep.user, 'u', sizeof(ep.user));
    snprintf(ep.password, sizeof(ep.password), "pw");
    assert_int_equal(rtmd_redis_conn_open(&c, &f->loop, &ep, NULL), -EINVAL); /* unterminated */
    memset(ep.user, 0, sizeof(ep.user));
    ep.port = 0;
    assert_int_equal(rtmd_redis_conn_open(&c, &f->loop, &ep, NULL), -EINVAL);
}

/* ---- AUTH ---- */

static void test_auth(void **state)
{
    struct fx *f = *state;
    need_redis(f, "s3cret pass");
    /* AUTH <password> */
    rc_open_up(f, &f->a, NULL);
    struct call k = {0};
    issue(&f->a, &k, SOON(), "SET", "a", "1", NULL);
    await_call(f, &k);
    assert_string_equal(k.str, "OK");
    rc_close(f, &f->a);
    memset(&f->a, 0, sizeof(f->a));

    /* AUTH <user> <password> */
    rc_open(f, &f->a, "127.0.0.1", f->srv.port, "default", "s3cret pass", NULL);
    WAIT_FOR(f, f->a.up, 5000);
    assert_true(f->a.up);
    rc_close(f, &f->a);
    memset(&f->a, 0, sizeof(f->a));

    /* A wrong password: an error is logged, the connection stays down and
     * retries with backoff. */
    rc_open(f, &f->a, "127.0.0.1", f->srv.port, NULL, "wrong", NULL);
    run_for(f, 700);
    struct rtmd_redis_conn_stats s = stats_of(&f->a);
    assert_false(f->a.up);
    assert_int_equal(s.ups, 0);
    assert_true(s.connects >= 2);
    assert_string_equal(f->a.c->last_error,
                        "AUTH failed: \"WRONGPASS invalid username-password pair or user is "
                        "disabled.\"");
    assert_int_equal(issue(&f->a, &k, SOON(), "GET", "a", NULL), -ENOTCONN);
    rc_close(f, &f->a);
    memset(&f->a, 0, sizeof(f->a));

    /* No password for a server that wants one: the PING is refused. */
    rc_open(f, &f->a, "127.0.0.1", f->srv.port, NULL, NULL, NULL);
    run_for(f, 300);
    assert_false(f->a.up);
    assert_non_null(strstr(f->a.c->last_error, "NOAUTH"));
}

/* ---- pub/sub ---- */

static void test_sharded_pubsub(void **state)
{
    struct fx *f = *state;
    need_redis(f, NULL);
    rc_open_up(f, &f->a, NULL); /* subscriber */
    rc_open_up(f, &f->b, NULL); /* publisher, and ordinary commands */

    struct call sub = {0};
    assert_int_equal(issue(&f->a, &sub, SOON(), "SSUBSCRIBE", "ch1", "ch2", NULL), 0);
    await_call(f, &sub);
    run_for(f, 20);
    assert_int_equal(sub.calls, 1); /* once, for both confirmations */
    assert_int_equal(sub.status, 0);
    assert_string_equal(sub.el[0], "ssubscribe");
    assert_string_equal(sub.el[1], "ch2");
    assert_string_equal(sub.el[2], ":2");

    struct call p[6];
    memset(p, 0, sizeof(p));
    issue(&f->b, &p[0], SOON(), "SPUBLISH", "ch1", "m1", NULL);
    issue(&f->b, &p[1], SOON(), "SPUBLISH", "ch2", "m2", NULL);
    issue(&f->b, &p[2], SOON(), "SPUBLISH", "ch1", "m3", NULL);
    await_call(f, &p[2]);
    assert_int_equal(p[0].integer, 1);
    WAIT_FOR(f, f->a.n_pushes >= 3, 5000);
    assert_int_equal(f->a.n_pushes, 3);
    expect_push(&f->a, 0, "smessage", "ch1", "m1");
    expect_push(&f->a, 1, "smessage", "ch2", "m2");
    expect_push(&f->a, 2, "smessage", "ch1", "m3");

    /* Subscribed: PING answers ["pong", ""] to its own callback; a command
     * Redis refuses in this mode is an error reply. */
    struct call ping = {0}, get = {0};
    issue(&f->a, &ping, SOON(), "PING", NULL);
    issue(&f->a, &get, SOON(), "GET", "x", NULL);
    await_call(f, &get);
    assert_int_equal(ping.type, REDIS_REPLY_ARRAY);
    assert_string_equal(ping.el[0], "pong");
    assert_int_equal(get.type, REDIS_REPLY_ERROR);

    struct call unsub = {0};
    issue(&f->a, &unsub, SOON(), "SUNSUBSCRIBE", "ch1", NULL);
    await_call(f, &unsub);
    assert_string_equal(unsub.el[0], "sunsubscribe");
    assert_string_equal(unsub.el[1], "ch1");
    assert_string_equal(unsub.el[2], ":1");
    issue(&f->b, &p[3], SOON(), "SPUBLISH", "ch1", "lost", NULL);
    issue(&f->b, &p[4], SOON(), "SPUBLISH", "ch2", "m4", NULL);
    await_call(f, &p[4]);
    assert_int_equal(p[3].integer, 0);
    WAIT_FOR(f, f->a.n_pushes >= 4, 5000);
    expect_push(&f->a, 3, "smessage", "ch2", "m4");

    /* Classic SUBSCRIBE and PSUBSCRIBE on the same connection. */
    struct call s2 = {0}, s3 = {0};
    issue(&f->a, &s2, SOON(), "SUBSCRIBE", "news", NULL);
    issue(&f->a, &s3, SOON(), "PSUBSCRIBE", "n*", NULL);
    await_call(f, &s3);
    issue(&f->b, &p[5], SOON(), "PUBLISH", "news", "hello", NULL);
    WAIT_FOR(f, f->a.n_pushes >= 6, 5000);
    assert_int_equal(p[5].integer, 2);
    expect_push(&f->a, 4, "message", "news", "hello");
    expect_push(&f->a, 5, "pmessage", "news", "hello");

    /* A connection with no subscription: a reply shaped like a message is
     * an ordinary reply. */
    struct call rp = {0}, lr = {0};
    issue(&f->b, &rp, SOON(), "RPUSH", "l", "message", "ch", "payload", NULL);
    issue(&f->b, &lr, SOON(), "LRANGE", "l", "0", "-1", NULL);
    await_call(f, &lr);
    assert_int_equal(lr.status, 0);
    assert_int_equal(lr.elements, 3);
    assert_string_equal(lr.el[0], "message");
    assert_int_equal(f->b.n_pushes, 0);

    /* Forms that break reply matching are refused. */
    struct call no = {0};
    assert_int_equal(issue(&f->a, &no, SOON(), "SUBSCRIBE", NULL), -EINVAL);
    assert_int_equal(issue(&f->a, &no, SOON(), "sunsubscribe", NULL), -EINVAL);
    assert_int_equal(issue(&f->a, &no, SOON(), "HELLO", "3", NULL), -EINVAL);
    assert_int_equal(issue(&f->a, &no, SOON(), "client", "reply", "off", NULL), -EINVAL);

    /* Every subscription gone: ordinary commands work again. */
    struct call u1 = {0}, u2 = {0}, u3 = {0}, get2 = {0};
    issue(&f->a, &u1, SOON(), "SUNSUBSCRIBE", "ch2", NULL);
    issue(&f->a, &u2, SOON(), "UNSUBSCRIBE", "news", NULL);
    issue(&f->a, &u3, SOON(), "PUNSUBSCRIBE", "n*", NULL);
    issue(&f->a, &get2, SOON(), "LRANGE", "l", "0", "-1", NULL);
    await_call(f, &get2);
    assert_string_equal(u3.el[2], ":0");
    assert_int_equal(get2.type, REDIS_REPLY_ARRAY);
    assert_string_equal(get2.el[0], "message");
    assert_int_equal(f->a.n_pushes, 6);
    assert_int_equal(no.calls, 0);
}

/* ---- bounds ---- */

static void test_bounds(void **state)
{
    struct fx *f = *state;
    need_redis(f, NULL);
    struct rtmd_redis_conn_options o = options(&f->a);
    o.max_pending = 8;
    o.max_output = 4096;
    rc_open_up(f, &f->a, &o);
    struct call k[9];
    memset(k, 0, sizeof(k));
    for (int i = 0; i < 8; i++)
        assert_int_equal(issue(&f->a, &k[i], SOON(), "PING", NULL), 0);
    assert_int_equal(issue(&f->a, &k[8], SOON(), "PING", NULL), -EAGAIN);
    await_call(f, &k[7]);
    assert_int_equal(issue(&f->a, &k[8], SOON(), "PING", NULL), 0);
    await_call(f, &k[8]);

    char value[5000];
    memset(value, 'v', sizeof(value));
    value[sizeof(value) - 1] = '\0';
    struct call big = {0};
    assert_int_equal(issue(&f->a, &big, SOON(), "SET", "k", value, NULL), -EMSGSIZE);
    value[1000] = '\0';
    int accepted = 0, r;
    struct call sets[8];
    memset(sets, 0, sizeof(sets));
    while ((r = issue(&f->a, &sets[accepted], SOON(), "SET", "k", value, NULL)) == 0)
        accepted++;
    assert_int_equal(r, -EAGAIN); /* unsent bytes would pass 4096 */
    assert_int_equal(accepted, 3);
    assert_true(stats_of(&f->a).unsent <= 4096);
    await_call(f, &sets[2]);
    assert_int_equal(big.calls, 0);
}

/* ASKING and a command go together, both or neither; the command's callback
 * gets the command's reply (the ASKING's is consumed: a server without
 * cluster support refuses it, which does not matter here). */
static void test_asking_pair(void **state)
{
    struct fx *f = *state;
    need_redis(f, NULL);
    struct rtmd_redis_conn_options o = options(&f->a);
    o.max_pending = 3;
    rc_open_up(f, &f->a, &o);
    static const char incr[] = "*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n";
    struct call k[3];
    memset(k, 0, sizeof(k));
    struct rtmd_redis_conn_stats before = stats_of(&f->a);
    in_call_ = 1;
    assert_int_equal(rtmd_redis_conn_asking(f->a.c, incr, sizeof(incr) - 1, SOON(), on_call, &k[0]),
                     0);
    /* One slot left of max_pending 3: the pair does not fit, nothing is sent. */
    assert_int_equal(rtmd_redis_conn_asking(f->a.c, incr, sizeof(incr) - 1, SOON(), on_call, &k[1]),
                     -EAGAIN);
    assert_int_equal(stats_of(&f->a).pending, 2);
    assert_int_equal(
        rtmd_redis_conn_formatted(f->a.c, incr, sizeof(incr) - 1, SOON(), on_call, &k[2]), 0);
    in_call_ = 0;
    await_call(f, &k[2]);
    assert_int_equal(k[0].calls, 1);
    assert_int_equal(k[0].type, REDIS_REPLY_INTEGER);
    assert_int_equal(k[0].integer, 1);
    assert_int_equal(k[2].integer, 2); /* the refused pair did not run */
    assert_int_equal(k[1].calls, 0);
    struct rtmd_redis_conn_stats after = stats_of(&f->a);
    assert_int_equal(after.commands - before.commands, 3);
    assert_int_equal(after.pending, 0);
}

/* A reply over max_reply drops the connection; it comes back. */
static void test_reply_over_max(void **state)
{
    struct fx *f = *state;
    need_redis(f, NULL);
    rc_open_up(f, &f->b, NULL);
    char value[8192];
    memset(value, 'x', sizeof(value));
    value[sizeof(value) - 1] = '\0';
    struct call set = {0};
    issue(&f->b, &set, SOON(), "SET", "big", value, NULL);
    await_call(f, &set);

    struct rtmd_redis_conn_options o = options(&f->a);
    o.max_reply = 4096;
    rc_open_up(f, &f->a, &o);
    struct call get = {0}, small = {0};
    issue(&f->a, &get, SOON(), "GET", "big", NULL);
    await_call(f, &get);
    assert_int_equal(get.status, -ECONNRESET);
    assert_int_equal(f->a.downs, 1);
    assert_non_null(strstr(f->a.c->last_error, "over max_reply"));
    WAIT_FOR(f, f->a.up, 3000);
    assert_true(f->a.up);
    issue(&f->a, &small, SOON(), "STRLEN", "big", NULL);
    await_call(f, &small);
    assert_int_equal(small.integer, 8191);
}

/* ---- a scripted server for what Redis never sends ---- */

struct fake {
    uv_tcp_t listener;
    uint16_t port;
    /* Written one per read of commands after the handshake, in order. */
    const char *scripts[4];
    size_t lens[4];
    int n_scripts, next;
    int accepted;
    uv_tcp_t clients[8];
    int n_clients;
};

static void fake_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char b[65536];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(b, sizeof(b));
}

static void fake_on_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void fake_write(uv_tcp_t *t, const char *p, size_t n)
{
    uv_write_t *w = malloc(sizeof(*w));
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    assert_int_equal(uv_write(w, (uv_stream_t *)t, &b, 1, fake_on_written), 0);
}

static void fake_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct fake *fk = s->data;
    if (n <= 0)
        return;
    if (memmem(buf->base, (size_t)n, "PING", 4) && !memmem(buf->base, (size_t)n, "GET", 3)) {
        fake_write((uv_tcp_t *)s, "+PONG\r\n", 7);
        return;
    }
    if (fk->next < fk->n_scripts) {
        fake_write((uv_tcp_t *)s, fk->scripts[fk->next], fk->lens[fk->next]);
        fk->next++;
    }
}

static void fake_on_connection(uv_stream_t *l, int status)
{
    struct fake *fk = l->data;
    assert_int_equal(status, 0);
    assert_true(fk->n_clients < 8);
    uv_tcp_t *t = &fk->clients[fk->n_clients++];
    uv_tcp_init(l->loop, t);
    t->data = fk;
    assert_int_equal(uv_accept(l, (uv_stream_t *)t), 0);
    uv_read_start((uv_stream_t *)t, fake_on_alloc, fake_on_read);
    fk->accepted++;
}

static void fake_start(struct fx *f, struct fake *fk, const char *script, size_t len)
{
    memset(fk, 0, sizeof(*fk));
    fk->scripts[0] = script;
    fk->lens[0] = len;
    fk->n_scripts = 1;
    uv_tcp_init(&f->loop, &fk->listener);
    fk->listener.data = fk;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&fk->listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&fk->listener, 16, fake_on_connection), 0);
    int len_a = sizeof(a);
    uv_tcp_getsockname(&fk->listener, (struct sockaddr *)&a, &len_a);
    fk->port = ntohs(a.sin_port);
}

static void fake_stop(struct fx *f, struct fake *fk)
{
    uv_close((uv_handle_t *)&fk->listener, NULL);
    for (int i = 0; i < fk->n_clients; i++)
        uv_close((uv_handle_t *)&fk->clients[i], NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Opens f->a on a fake server with max_reply 1 MiB, sends one GET, and
 * returns its outcome once the fake wrote script: the call, how many times
 * the connection went down, and what was logged. */
static int hostile(struct fx *f, const char *script, size_t len, struct call *k, char *why,
                   size_t why_len)
{
    struct fake fk;
    fake_start(f, &fk, script, len);
    memset(&f->a, 0, sizeof(f->a));
    struct rtmd_redis_conn_options o = options(&f->a);
    o.max_reply = 1 << 20;
    o.stuck_grace_ms = 200;
    o.backoff_min_ms = 1000; /* no reconnect during the test */
    rc_open(f, &f->a, "127.0.0.1", fk.port, NULL, NULL, &o);
    WAIT_FOR(f, f->a.up, 3000);
    assert_true(f->a.up);
    assert_int_equal(issue(&f->a, k, rtmd_now_ms() + 300, "GET", "k", NULL), 0);
    WAIT_FOR(f, k->calls > 0 && f->a.downs > 0, 3000);
    int downs = f->a.downs;
    snprintf(why, why_len, "%s", f->a.c->last_error);
    rc_close(f, &f->a);
    fake_stop(f, &fk);
    return downs;
}

/* The script drops the connection, logging what. */
static void expect_dropped(struct fx *f, const char *script, size_t len, const char *what)
{
    struct call k = {0};
    char why[200];
    int downs = hostile(f, script, len, &k, why, sizeof(why));
    print_message("hostile %-16s -> %s\n", what, why);
    assert_int_equal(k.calls, 1);
    assert_int_equal(k.status, -ECONNRESET);
    assert_int_equal(downs, 1);
}

static void test_hostile_server(void **state)
{
    struct fx *f = *state;
    /* An array of 2^31-1 elements announced in 13 bytes: refused before
     * anything of that size is allocated (ASan would abort on the calloc). */
    expect_dropped(f, "*2147483647\r\n", 13, "array");
    expect_dropped(f, "*1\r\n*100000000\r\n", 17, "nested array");
    /* A bulk string announced at 1 GB: read until it passes max_reply. */
    size_t n = (2u << 20) + 16;
    char *bulk = malloc(n);
    memcpy(bulk, "$1000000000\r\n", 13);
    memset(bulk + 13, 'x', n - 13);
    expect_dropped(f, bulk, n, "bulk");
    /* One endless status line. */
    memset(bulk, 'a', n);
    bulk[0] = '+';
    expect_dropped(f, bulk, 100000, "line");
    /* A bulk length line that never ends. */
    memset(bulk, '1', 64);
    bulk[0] = '$';
    expect_dropped(f, bulk, 64, "bulk length");
    free(bulk);
    expect_dropped(f, "?", 1, "type byte");
    expect_dropped(f, "$-5\r\n", 5, "negative length");
    expect_dropped(f, ":12a\r\n", 6, "integer");
    expect_dropped(f, "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 40, "depth");
    /* A confirmation for a command that is not a subscription. */
    static const char confirm[] = "+OK\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n";
    struct call k = {0};
    char why[200];
    assert_int_equal(hostile(f, confirm, sizeof(confirm) - 1, &k, why, sizeof(why)), 1);
    assert_int_equal(k.status, 0);
    assert_string_equal(why, "protocol error: a reply no command waits for; reconnecting");

    /* A partial reply, then silence: the command times out at its deadline,
     * the connection is dropped once the grace passes. */
    memset(&k, 0, sizeof(k));
    assert_int_equal(hostile(f, "$5\r\nab", 6, &k, why, sizeof(why)), 1);
    assert_int_equal(k.status, -ETIMEDOUT);
    assert_non_null(strstr(why, "server stuck"));
}

/* A command issued from a reply's callback, then garbage in the same read:
 * the new command never left, so it fails with -ENOTCONN (not
 * -ECONNRESET). */
static void test_unsent_at_drop(void **state)
{
    struct fx *f = *state;
    struct fake fk;
    fake_start(f, &fk, "+OK\r\n?", 6);
    rc_open(f, &f->a, "127.0.0.1", fk.port, NULL, NULL, NULL);
    WAIT_FOR(f, f->a.up, 3000);
    struct call first = {0}, second = {0};
    first.then = 2;
    first.rc = &f->a;
    first.next = &second;
    assert_int_equal(issue(&f->a, &first, SOON(), "GET", "k", NULL), 0);
    WAIT_FOR(f, second.calls > 0, 3000);
    assert_int_equal(first.status, 0);
    assert_int_equal(first.next_status, 0);
    assert_int_equal(second.calls, 1);
    assert_int_equal(second.status, -ENOTCONN);
    rc_close(f, &f->a);
    fake_stop(f, &fk);
}

/* Confirmations nobody asked for (Redis 7 unsubscribes a shard channel
 * whose slot moved away) are pushes, even while a SUNSUBSCRIBE of another
 * channel waits for its own; messages between confirmations are pushes. */
static void test_unrequested_confirmations(void **state)
{
    struct fx *f = *state;
    static const char sub[] = "*3\r\n$10\r\nssubscribe\r\n$1\r\na\r\n:1\r\n"
                              "*3\r\n$8\r\nsmessage\r\n$1\r\na\r\n$5\r\nearly\r\n"
                              "*3\r\n$10\r\nssubscribe\r\n$1\r\nb\r\n:2\r\n"
                              "*3\r\n$8\r\nsmessage\r\n$1\r\nb\r\n$2\r\nhi\r\n";
    static const char unsub[] = "*3\r\n$12\r\nsunsubscribe\r\n$1\r\na\r\n:1\r\n"
                                "*3\r\n$8\r\nsmessage\r\n$1\r\nb\r\n$4\r\nlate\r\n"
                                "*3\r\n$12\r\nsunsubscribe\r\n$1\r\nb\r\n:0\r\n";
    struct fake fk;
    fake_start(f, &fk, sub, sizeof(sub) - 1);
    fk.scripts[1] = unsub;
    fk.lens[1] = sizeof(unsub) - 1;
    fk.n_scripts = 2;
    rc_open(f, &f->a, "127.0.0.1", fk.port, NULL, NULL, NULL);
    WAIT_FOR(f, f->a.up, 3000);
    struct call s1 = {0}, u1 = {0};
    assert_int_equal(issue(&f->a, &s1, SOON(), "SSUBSCRIBE", "a", "b", NULL), 0);
    await_call(f, &s1);
    assert_string_equal(s1.el[1], "b");
    assert_string_equal(s1.el[2], ":2");
    assert_int_equal(issue(&f->a, &u1, SOON(), "SUNSUBSCRIBE", "b", NULL), 0);
    await_call(f, &u1);
    assert_int_equal(u1.status, 0);
    assert_string_equal(u1.el[1], "b");
    assert_string_equal(u1.el[2], ":0");
    assert_int_equal(f->a.n_pushes, 4);
    expect_push(&f->a, 0, "smessage", "a", "early");
    expect_push(&f->a, 1, "smessage", "b", "hi");
    expect_push(&f->a, 2, "sunsubscribe", "a", "");
    expect_push(&f->a, 3, "smessage", "b", "late");
    assert_int_equal(f->a.downs, 0);
    rc_close(f, &f->a);
    fake_stop(f, &fk);
}

/* ---- closing and re-entrancy ---- */

static void on_done_checks_calls(void *arg)
{
    struct call *k = arg; /* k[0..99]: every callback ran before done */
    for (int i = 0; i < 100; i++)
        assert_int_equal(k[i].calls, 1);
    k[100].calls++;
}

static void test_close_with_commands_in_flight(void **state)
{
    struct fx *f = *state;
    need_redis(f, NULL);
    rc_open_up(f, &f->a, NULL);
    assert_int_equal(kill(f->srv.pid, SIGSTOP), 0);
    struct call k[101];
    memset(k, 0, sizeof(k));
    for (int i = 0; i < 50; i++)
        assert_int_equal(issue(&f->a, &k[i], SOON(), "GET", "k", NULL), 0);
    WAIT_FOR(f, stats_of(&f->a).unsent == 0, 2000); /* sent, unanswered */
    for (int i = 50; i < 100; i++)
        assert_int_equal(issue(&f->a, &k[i], SOON(), "GET", "k", NULL), 0); /* unsent */
    in_call_ = 1;
    rtmd_redis_conn_close(f->a.c, on_done_checks_calls, k);
    in_call_ = 0;
    assert_int_equal(issue(&f->a, &k[100], SOON(), "GET", "k", NULL), RTMD_ECLOSED);
    for (int i = 0; i < 100; i++)
        assert_int_equal(k[i].calls, 0);
    WAIT_FOR(f, k[100].calls > 0, 3000);
    assert_int_equal(k[100].calls, 1);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(k[i].calls, 1);
        assert_int_equal(k[i].status, RTMD_ECLOSED);
    }
    assert_int_equal(f->a.downs, 0); /* no state callback after close */
    f->a.c = NULL;
    /* Closing one that never came up. */
    rc_open(f, &f->b, "127.0.0.1", free_port(), NULL, NULL, NULL);
    rc_close(f, &f->b);
    assert_int_equal(f->b.ups + f->b.downs, 0);
}

static void on_closed_issue(void *arg, int status, const redisReply *r)
{
    struct call *k = arg;
    on_call(arg, status, r);
    /* From the RTMD_ECLOSED callback: refused at once. */
    k->next_status = issue(k->rc, k->next, SOON(), "PING", NULL);
}

static void test_reentrant_callbacks(void **state)
{
    struct fx *f = *state;
    need_redis(f, NULL);
    rc_open_up(f, &f->a, NULL);

    /* A chain of 100 commands, each issued from the previous callback. */
    struct call chain = {0};
    chain.then = 3;
    chain.rc = &f->a;
    chain.chain = 99;
    assert_int_equal(issue(&f->a, &chain, SOON(), "INCR", "chain", NULL), 0);
    WAIT_FOR(f, chain.chain == 0 && chain.calls > 0, 5000);
    assert_int_equal(chain.status, 0);
    assert_int_equal(chain.integer, 100);

    /* A new command from a -ETIMEDOUT callback. */
    assert_int_equal(kill(f->srv.pid, SIGSTOP), 0);
    struct call to = {0}, after = {0}, set = {0};
    to.then = 2;
    to.rc = &f->a;
    to.next = &after;
    assert_int_equal(issue(&f->a, &to, rtmd_now_ms() + 100, "SET", "k2", "v2", NULL), 0);
    await_call(f, &to);
    assert_int_equal(to.status, -ETIMEDOUT);
    assert_int_equal(to.next_status, 0);
    assert_int_equal(kill(f->srv.pid, SIGCONT), 0);
    await_call(f, &after);
    assert_string_equal(after.str, "v2"); /* the SET ran late; its reply was skipped */

    /* Close from a reply's callback: the rest get RTMD_ECLOSED, once. */
    struct call k[10];
    memset(k, 0, sizeof(k));
    k[3].then = 1;
    k[3].rc = &f->a;
    for (int i = 0; i < 10; i++)
        assert_int_equal(issue(&f->a, &k[i], SOON(), "INCR", "c", NULL), 0);
    WAIT_FOR(f, f->a.done > 0, 3000);
    assert_int_equal(f->a.done, 1);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(k[i].calls, 1);
        assert_int_equal(k[i].status, i <= 3 ? 0 : RTMD_ECLOSED);
    }
    f->a.c = NULL;

    /* A command from an RTMD_ECLOSED callback is refused synchronously. */
    memset(&f->a, 0, sizeof(f->a));
    rc_open_up(f, &f->a, NULL);
    struct call c1 = {0}, c2 = {0};
    c1.rc = &f->a;
    c1.next = &c2;
    const char *argv[2] = {"GET", "k"};
    assert_int_equal(rtmd_redis_conn_command(f->a.c, 2, argv, NULL, SOON(), on_closed_issue, &c1),
                     0);
    rc_close(f, &f->a);
    assert_int_equal(c1.status, RTMD_ECLOSED);
    assert_int_equal(c1.next_status, RTMD_ECLOSED);
    assert_int_equal(c2.calls, 0);

    /* Close from on_state(down): the commands in flight get RTMD_ECLOSED. */
    memset(&f->a, 0, sizeof(f->a));
    rc_open_up(f, &f->a, NULL);
    f->a.close_on_down = true;
    assert_int_equal(kill(f->srv.pid, SIGSTOP), 0);
    memset(k, 0, sizeof(k));
    for (int i = 0; i < 3; i++)
        issue(&f->a, &k[i], SOON(), "GET", "k", NULL);
    WAIT_FOR(f, stats_of(&f->a).unsent == 0, 2000);
    assert_int_equal(kill(f->srv.pid, SIGKILL), 0);
    waitpid(f->srv.pid, NULL, 0);
    f->srv.pid = 0;
    WAIT_FOR(f, f->a.done > 0, 3000);
    assert_int_equal(f->a.done, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(k[i].calls, 1);
        assert_int_equal(k[i].status, RTMD_ECLOSED);
    }
    f->a.c = NULL;
    (void)set;
}

/* A connection that only receives notices a stopped server through its
 * idle PING. */
static void test_idle_ping(void **state)
{
    struct fx *f = *state;
    need_redis(f, NULL);
    struct rtmd_redis_conn_options o = options(&f->a);
    o.idle_ping_ms = 100;
    o.connect_timeout_ms = 200;
    o.stuck_grace_ms = 200;
    rc_open_up(f, &f->a, &o);
    struct call sub = {0};
    issue(&f->a, &sub, SOON(), "SSUBSCRIBE", "quiet", NULL);
    await_call(f, &sub);
    run_for(f, 350);
    assert_true(f->a.up); /* pings answered */
    assert_int_equal(kill(f->srv.pid, SIGSTOP), 0);
    uint64_t t0 = mono_ms();
    WAIT_FOR(f, f->a.downs > 0, 3000);
    assert_int_equal(f->a.downs, 1);
    print_message("idle ping: a stopped server noticed after %llu ms\n",
                  (unsigned long long)(mono_ms() - t0));
    assert_int_equal(kill(f->srv.pid, SIGCONT), 0);
    WAIT_FOR(f, f->a.up, 3000);
    assert_true(f->a.up);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_refuses_bad_endpoints),
        T(test_commands_and_replies),
        T(test_pipelining_one_write),
        T(test_deadline_stopped_server),
        T(test_late_reply_discarded),
        T(test_kill9_and_restart),
        T(test_backoff_until_server_appears),
        T(test_host_name),
        T(test_auth),
        T(test_sharded_pubsub),
        T(test_bounds),
        T(test_asking_pair),
        T(test_reply_over_max),
        T(test_hostile_server),
        T(test_unsent_at_drop),
        T(test_unrequested_confirmations),
        T(test_close_with_commands_in_flight),
        T(test_reentrant_callbacks),
        T(test_idle_ping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
