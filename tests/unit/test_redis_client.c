/*
 * Unit tests for store/redis_client.c against real redis-server processes
 * started by the tests, in temp dirs, without persistence: single instances,
 * and one Redis Cluster of 3 masters and 3 replicas (made with redis-cli
 * --cluster create, shared by the cluster tests, which read its topology
 * rather than assume it: they reshard, migrate, fail over and kill). Skipped
 * when redis-server or redis-cli is missing (RTMD_REDIS_SERVER and
 * RTMD_REDIS_CLI name other binaries).
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

#include <openssl/evp.h>

#include "core/log.h"
#include "core/loop.h"
#include "redis_fixture.h"
#include "store/redis_client.h"
#include "store/redis_slots.h"

#define MARGIN_MS 150 /* how late a timeout may come (the machine is shared) */
#define N_CLUSTER 6

/* ---- processes ---- */

static const char *bin(const char *env, const char *def)
{
    const char *p = getenv(env);
    if (!p)
        p = def;
    return access(p, X_OK) == 0 ? p : NULL;
}

static const char *server_bin(void)
{
    return bin("RTMD_REDIS_SERVER", "/usr/bin/redis-server");
}

static const char *cli_bin(void)
{
    return bin("RTMD_REDIS_CLI", "/usr/bin/redis-cli");
}

/* Runs argv (NULL-terminated), its stdout into out (NUL-terminated, cut at
 * cap); returns its exit status, or -1. */
static int run(char *out, size_t cap, const char *const *argv)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(fds[1], 1);
        dup2(null, 2);
        close(fds[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    char sink[4096];
    for (;;) {
        char *at = out && n + 1 < cap ? out + n : sink;
        size_t room = out && n + 1 < cap ? cap - 1 - n : sizeof(sink);
        ssize_t r = read(fds[0], at, room);
        if (r <= 0)
            break;
        if (at != sink)
            n += (size_t)r;
    }
    close(fds[0]);
    if (out && cap)
        out[n] = '\0';
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* redis-cli -p port ARGS... (NULL-terminated); its output in out. */
static int cli(uint16_t port, char *out, size_t cap, ...)
{
    const char *argv[32];
    char p[8];
    snprintf(p, sizeof(p), "%u", (unsigned)port);
    int n = 0;
    argv[n++] = cli_bin();
    argv[n++] = "-p";
    argv[n++] = p;
    va_list ap;
    va_start(ap, cap);
    const char *s;
    while ((s = va_arg(ap, const char *)) && n < 31)
        argv[n++] = s;
    va_end(ap);
    argv[n] = NULL;
    return run(out, cap, argv);
}

static bool port_free(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* A port P with P and its cluster bus port P + 10000 free (below the
 * ephemeral range, so that the bus port exists). */
static uint16_t free_cluster_port(void)
{
    for (int i = 0; i < 1000; i++) {
        uint16_t p = (uint16_t)(20000 + (unsigned)rand() % 10000);
        if (port_free(p) && port_free((uint16_t)(p + 10000)))
            return p;
    }
    fail_msg("no free port pair");
    return 0;
}

struct server {
    pid_t pid;
    uint16_t port;
    char dir[64];
    bool cluster;
};

static bool answers(uint16_t port)
{
    char out[64];
    return cli(port, out, sizeof(out), "PING", NULL) == 0 && strncmp(out, "PONG", 4) == 0;
}

static void server_start(struct server *s)
{
    if (!s->port)
        s->port = free_port();
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof(s->dir), "/tmp/rtmd-rclient-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
    }
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)s->port);
    const char *argv[32] = {server_bin(), "--port",    port,           "--bind",      "127.0.0.1",
                            "--save",     "",          "--appendonly", "no",          "--dir",
                            s->dir,       "--logfile", "redis.log",    "--daemonize", "no"};
    int argc = 15;
    if (s->cluster) {
        const char *more[] = {
            "--cluster-enabled",      "yes",  "--cluster-config-file",           "nodes.conf",
            "--cluster-node-timeout", "1500", "--cluster-require-full-coverage", "no"};
        for (size_t i = 0; i < RTMD_ARRAY_SIZE(more); i++)
            argv[argc++] = more[i];
    }
    argv[argc] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    uint64_t until = mono_ms() + 5000;
    while (!answers(s->port)) {
        int st;
        assert_int_equal(waitpid(pid, &st, WNOHANG), 0);
        assert_true(mono_ms() < until);
        pause_ms(20);
    }
}

static void server_kill(struct server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGCONT);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

static int atoi_safe(const char *p)
{
    return (int)strtol(p, NULL, 10);
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

/* ---- the cluster and its topology ---- */

static struct server cluster_[N_CLUSTER];
static bool cluster_ok_;

struct cnode {
    char id[48];
    uint16_t port;
    bool master, fail;
    char master_id[48];
    int n_ranges;
    int lo[16], hi[16]; /* its slots */
};

/* CLUSTER NODES as the first live node sees it; the number of nodes. */
static int topology(struct cnode *out, int max)
{
    static char buf[16384];
    for (int i = 0; i < N_CLUSTER; i++) {
        if (cluster_[i].pid <= 0 ||
            cli(cluster_[i].port, buf, sizeof(buf), "CLUSTER", "NODES", NULL) != 0 || !buf[0])
            continue;
        int n = 0;
        char *save = NULL;
        for (char *line = strtok_r(buf, "\n", &save); line && n < max;
             line = strtok_r(NULL, "\n", &save)) {
            struct cnode *c = &out[n];
            memset(c, 0, sizeof(*c));
            char addr[64], flags[96];
            int used = 0;
            if (sscanf(line, "%47s %63s %95s %47s %*s %*s %*s %*s%n", c->id, addr, flags,
                       c->master_id, &used) < 4 ||
                !strchr(addr, ':'))
                continue;
            c->port = (uint16_t)strtoul(strchr(addr, ':') + 1, NULL, 10);
            c->master = strstr(flags, "master") != NULL;
            c->fail = strstr(flags, "fail") != NULL && strstr(flags, "fail?") == NULL;
            const char *r = line + used;
            while (*r && c->n_ranges < 16) {
                while (*r == ' ')
                    r++;
                if (*r < '0' || *r > '9')
                    break; /* "[slot->-id]": a migration in progress */
                char *end;
                int lo = (int)strtol(r, &end, 10), hi = lo;
                if (*end == '-')
                    hi = (int)strtol(end + 1, &end, 10);
                c->lo[c->n_ranges] = lo;
                c->hi[c->n_ranges++] = hi;
                r = end;
            }
            n++;
        }
        return n;
    }
    return 0;
}

static bool serves(const struct cnode *c, int slot)
{
    for (int i = 0; i < c->n_ranges; i++)
        if (slot >= c->lo[i] && slot <= c->hi[i])
            return true;
    return false;
}

/* The master serving slot, as the cluster says. */
static struct cnode master_of(int slot)
{
    struct cnode t[N_CLUSTER + 2];
    int n = topology(t, N_CLUSTER + 2);
    for (int i = 0; i < n; i++)
        if (t[i].master && !t[i].fail && serves(&t[i], slot))
            return t[i];
    fail_msg("no master serves slot %d", slot);
    return t[0];
}

/* Another master than `not`. */
static struct cnode other_master(const char *not_id)
{
    struct cnode t[N_CLUSTER + 2];
    int n = topology(t, N_CLUSTER + 2);
    for (int i = 0; i < n; i++)
        if (t[i].master && !t[i].fail && t[i].n_ranges > 0 && strcmp(t[i].id, not_id) != 0)
            return t[i];
    fail_msg("no other master");
    return t[0];
}

static int lowest_slot(const struct cnode *c)
{
    int lo = RTMD_REDIS_SLOTS;
    for (int i = 0; i < c->n_ranges; i++)
        lo = RTMD_MIN(lo, c->lo[i]);
    return lo;
}

/* A key "PREFIX{tagN}" whose slot is `slot`. */
static void key_for_slot(char *out, size_t cap, const char *prefix, int slot)
{
    char tag[12];
    for (unsigned i = 0;; i++) {
        int n = snprintf(tag, sizeof(tag), "t%u", i % 100000000u);
        if ((int)rtmd_redis_slot_of(tag, (size_t)n) == slot)
            break;
    }
    assert_true(strlen(prefix) + strlen(tag) + 3 <= cap);
    snprintf(out, cap, "%s{%s}", prefix, tag);
}

/* Every node agrees on a full, healthy cluster. */
static bool cluster_healthy(void)
{
    char out[2048];
    for (int i = 0; i < N_CLUSTER; i++) {
        if (cluster_[i].pid <= 0)
            continue;
        if (cli(cluster_[i].port, out, sizeof(out), "CLUSTER", "INFO", NULL) != 0 ||
            !strstr(out, "cluster_state:ok") || !strstr(out, "cluster_slots_ok:16384"))
            return false;
        /* Every replica in sync with its master (the failover tests need it). */
        if (cli(cluster_[i].port, out, sizeof(out), "INFO", "replication", NULL) != 0 ||
            (strstr(out, "role:slave") && !strstr(out, "master_link_status:up")) ||
            (strstr(out, "role:master") && !strstr(out, "connected_slaves:1")))
            return false;
    }
    struct cnode t[N_CLUSTER + 2];
    int n = topology(t, N_CLUSTER + 2), masters = 0;
    for (int i = 0; i < n; i++) {
        if (t[i].fail)
            return false;
        masters += t[i].master && t[i].n_ranges > 0;
    }
    return masters == 3;
}

static void wait_healthy(void)
{
    uint64_t until = mono_ms() + 30000;
    while (!cluster_healthy()) {
        assert_true(mono_ms() < until);
        pause_ms(100);
    }
}

static int cluster_up(void **state)
{
    (void)state;
    if (!server_bin() || !cli_bin())
        return 0;
    srand((unsigned)getpid() ^ (unsigned)mono_ms());
    for (int i = 0; i < N_CLUSTER; i++) {
        cluster_[i].cluster = true;
        cluster_[i].port = free_cluster_port();
        server_start(&cluster_[i]);
    }
    char addrs[N_CLUSTER][24];
    const char *argv[N_CLUSTER + 8];
    int n = 0;
    argv[n++] = cli_bin();
    argv[n++] = "--cluster";
    argv[n++] = "create";
    for (int i = 0; i < N_CLUSTER; i++) {
        snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%u", (unsigned)cluster_[i].port);
        argv[n++] = addrs[i];
    }
    argv[n++] = "--cluster-replicas";
    argv[n++] = "1";
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    if (run(NULL, 0, argv) != 0)
        return -1;
    wait_healthy();
    cluster_ok_ = true;
    return 0;
}

static int cluster_down(void **state)
{
    (void)state;
    for (int i = 0; i < N_CLUSTER; i++)
        server_cleanup(&cluster_[i]);
    return 0;
}

static void need_cluster(void)
{
    if (!cluster_ok_) {
        print_message("redis-server or redis-cli not found (set RTMD_REDIS_SERVER, "
                      "RTMD_REDIS_CLI): skipped\n");
        skip();
    }
    wait_healthy();
}

/* Moves the lowest slot of `from` to `to` with redis-cli --cluster reshard. */
static void reshard_one(const struct cnode *from, const struct cnode *to)
{
    char addr[24];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)from->port);
    const char *argv[] = {cli_bin(),         "--cluster", "reshard",       addr,
                          "--cluster-from",  from->id,    "--cluster-to",  to->id,
                          "--cluster-slots", "1",         "--cluster-yes", NULL};
    assert_int_equal(run(NULL, 0, argv), 0);
}

/* ---- the loop and the client ---- */

struct msg {
    char channel[64], payload[64];
};

struct cx {
    struct rtmd_redis_client *c;
    bool up;
    int ups, downs, done;
    struct msg msgs[64];
    int n_msgs;
};

struct fx {
    uv_loop_t loop;
    uv_timer_t watchdog;
    bool expired;
    struct server s1, s2;
    struct cx a;
};

static int in_call_;

static void on_watchdog(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

#define WAIT_FOR(f, cond, ms)                                                                      \
    do {                                                                                           \
        (f)->expired = false;                                                                      \
        uv_timer_start(&(f)->watchdog, on_watchdog, (ms), 0);                                      \
        while (!(cond) && !(f)->expired)                                                           \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        uv_timer_stop(&(f)->watchdog);                                                             \
    } while (0)

static void run_for(struct fx *f, unsigned ms)
{
    WAIT_FOR(f, false, ms);
}

static void on_state(void *arg, bool up)
{
    struct cx *x = arg;
    assert_false(in_call_);
    x->up = up;
    if (up)
        x->ups++;
    else
        x->downs++;
}

static void copy_str(char *out, size_t size, const char *p, size_t len)
{
    size_t n = RTMD_MIN(len, size - 1);
    if (n)
        memcpy(out, p, n);
    out[n] = '\0';
}

static void on_message(void *arg, struct rtmd_str channel, struct rtmd_str payload)
{
    struct cx *x = arg;
    assert_false(in_call_);
    assert_true(x->n_msgs < (int)RTMD_ARRAY_SIZE(x->msgs));
    struct msg *m = &x->msgs[x->n_msgs++];
    copy_str(m->channel, sizeof(m->channel), channel.p, channel.len);
    copy_str(m->payload, sizeof(m->payload), payload.p, payload.len);
}

static int count_msgs(const struct cx *x, const char *channel, const char *payload)
{
    int n = 0;
    for (int i = 0; i < x->n_msgs; i++)
        n += !strcmp(x->msgs[i].channel, channel) && !strcmp(x->msgs[i].payload, payload);
    return n;
}

static void on_done(void *arg)
{
    ((struct cx *)arg)->done++;
}

static const char *const test_scripts[] = {
    "return redis.call('INCR', KEYS[1] .. 'n')", /* the backend's way: KEYS[1] a prefix */
    "return 'two'",
};

static void sha1_hex(const char *p, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(p, strlen(p), md, &len, EVP_sha1(), NULL);
    for (unsigned int i = 0; i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void cx_open(struct fx *f, struct cx *x, const uint16_t *ports, size_t n)
{
    struct rtmd_redis_seed seeds[RTMD_REDIS_SEEDS_MAX];
    memset(seeds, 0, sizeof(seeds));
    for (size_t i = 0; i < n; i++) {
        snprintf(seeds[i].host, sizeof(seeds[i].host), "127.0.0.1");
        seeds[i].port = ports[i];
    }
    struct rtmd_redis_client_options o;
    memset(&o, 0, sizeof(o));
    o.connect_timeout_ms = 500;
    o.stuck_grace_ms = 1000;
    o.scripts = test_scripts;
    o.n_scripts = RTMD_ARRAY_SIZE(test_scripts);
    o.on_state = on_state;
    o.on_message = on_message;
    o.arg = x;
    in_call_ = 1;
    assert_int_equal(rtmd_redis_client_open(&x->c, &f->loop, seeds, n, &o), 0);
    in_call_ = 0;
}

static void cx_open_up(struct fx *f, struct cx *x, const uint16_t *ports, size_t n)
{
    cx_open(f, x, ports, n);
    WAIT_FOR(f, x->up, 10000);
    assert_true(x->up);
}

static void cx_close(struct fx *f, struct cx *x)
{
    if (!x->c)
        return;
    int done = x->done;
    in_call_ = 1;
    rtmd_redis_client_close(x->c, on_done, x);
    in_call_ = 0;
    WAIT_FOR(f, x->done > done, 10000);
    assert_int_equal(x->done, done + 1);
    memset(x, 0, sizeof(*x));
}

static struct rtmd_redis_client_stats stats_of(struct cx *x)
{
    struct rtmd_redis_client_stats s;
    rtmd_redis_client_stats(x->c, &s);
    return s;
}

struct call {
    int calls;
    int status;
    int type;
    long long integer;
    size_t elements;
    char str[128];
    uint64_t at;
};

/* The calls issued and not called back: a test that fails leaves some, on
 * its dead stack frame; teardown forgets them before closing the client,
 * and a callback for a forgotten call touches nothing. */
static struct call *live_[1024];

static bool live_take(struct call *k)
{
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(live_); i++)
        if (live_[i] == k) {
            live_[i] = NULL;
            return true;
        }
    return false;
}

static void live_add(struct call *k)
{
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(live_); i++)
        if (!live_[i]) {
            live_[i] = k;
            return;
        }
    fail_msg("too many calls in flight");
}

static void on_call(void *arg, int status, const redisReply *r)
{
    struct call *k = arg;
    if (!live_take(k))
        return; /* its test failed and returned: k is gone */
    assert_false(in_call_);
    k->calls++;
    k->status = status;
    k->at = rtmd_now_ms();
    if (r) {
        k->type = r->type;
        k->integer = r->integer;
        k->elements = r->elements;
        copy_str(k->str, sizeof(k->str), r->str ? r->str : "", r->str ? r->len : 0);
    }
}

#define SOON() (rtmd_now_ms() + 5000)

/* Issues a command given as NULL-terminated C strings, routed by key. */
static int issue(struct cx *x, struct call *k, const char *key, uint64_t deadline, ...)
{
    const char *argv[16];
    int argc = 0;
    va_list ap;
    va_start(ap, deadline);
    const char *s;
    while ((s = va_arg(ap, const char *)) && argc < 16)
        argv[argc++] = s;
    va_end(ap);
    in_call_ = 1;
    live_add(k);
    int rc = rtmd_redis_client_command(x->c, key, key ? strlen(key) : 0, argc, argv, NULL, deadline,
                                       on_call, k);
    if (rc < 0)
        live_take(k);
    in_call_ = 0;
    return rc;
}

/* SPUBLISH through the client. */
static int publish(struct cx *x, struct call *k, const char *channel, const char *payload)
{
    in_call_ = 1;
    live_add(k);
    int rc = rtmd_redis_client_publish(x->c, rtmd_str_cstr(channel), rtmd_str_cstr(payload), SOON(),
                                       on_call, k);
    if (rc < 0)
        live_take(k);
    in_call_ = 0;
    return rc;
}

static void await_call(struct fx *f, struct call *k)
{
    WAIT_FOR(f, k->calls > 0, 10000);
    assert_int_equal(k->calls, 1);
}

/* Issues and waits; asserts a reply came. */
static struct call sync_cmd(struct fx *f, struct cx *x, const char *key, const char *a0,
                            const char *a1, const char *a2)
{
    struct call k = {0};
    assert_int_equal(issue(x, &k, key, SOON(), a0, a1, a2, NULL), 0);
    await_call(f, &k);
    assert_int_equal(k.status, 0);
    return k;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (uv_loop_init(&f->loop) || rtmd_loop_init(&f->loop))
        return -1;
    uv_timer_init(&f->loop, &f->watchdog);
    f->watchdog.data = &f->expired;
    rtmd_log_level = getenv("RTMD_TEST_DEBUG") ? RTMD_LOG_DEBUG : RTMD_LOG_ERROR;
    *state = f;
    return 0;
}

/* A test that failed halfway may leave a slot migrating: closed again. */
static void close_open_slots(void)
{
    static char buf[16384];
    for (int i = 0; i < N_CLUSTER; i++) {
        if (cluster_[i].pid <= 0 ||
            cli(cluster_[i].port, buf, sizeof(buf), "CLUSTER", "NODES", NULL) != 0)
            continue;
        char *save = NULL;
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            if (!strstr(line, "myself"))
                continue;
            for (char *b = strchr(line, '['); b; b = strchr(b + 1, '[')) {
                char slot[8];
                snprintf(slot, sizeof(slot), "%d", atoi_safe(b + 1));
                cli(cluster_[i].port, NULL, 0, "CLUSTER", "SETSLOT", slot, "STABLE", NULL);
            }
        }
    }
}

static int teardown(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < N_CLUSTER; i++)
        if (cluster_[i].pid > 0)
            kill(cluster_[i].pid, SIGCONT);
    close_open_slots();
    memset(live_, 0, sizeof(live_));
    cx_close(f, &f->a);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    rtmd_loop_close();
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    server_cleanup(&f->s1);
    server_cleanup(&f->s2);
    free(f);
    return 0;
}

static void need_redis(void)
{
    if (!server_bin() || !cli_bin()) {
        print_message("redis-server or redis-cli not found: skipped\n");
        skip();
    }
}

/* ---- a single instance ---- */

/* The first seed is dead: the second answers, and is a single instance.
 * Commands, scripts loaded at connect, sharded pub/sub, TIME. */
static void test_single_instance(void **state)
{
    struct fx *f = *state;
    need_redis();
    server_start(&f->s1);
    uint16_t ports[] = {free_port(), f->s1.port};
    cx_open_up(f, &f->a, ports, 2);
    struct rtmd_redis_client_stats s = stats_of(&f->a);
    assert_int_equal(s.mode, RTMD_REDIS_MODE_SINGLE);
    assert_int_equal(s.masters, 1);
    assert_int_equal(s.masters_up, 1);
    assert_true(rtmd_redis_client_reachable(f->a.c));

    struct call set = {0}, get = {0};
    assert_int_equal(issue(&f->a, &set, "k", SOON(), "SET", "k", "v", NULL), 0);
    assert_int_equal(issue(&f->a, &get, "k", SOON(), "GET", "k", NULL), 0);
    assert_int_equal(set.calls + get.calls, 0); /* later, never inside */
    await_call(f, &get);
    assert_string_equal(get.str, "v");

    /* The scripts were loaded before anything else went out: EVALSHA works
     * from the first command on. */
    char sha[41];
    sha1_hex(test_scripts[0], sha);
    struct call ev2 = {0};
    assert_int_equal(issue(&f->a, &ev2, "p:", SOON(), "EVALSHA", sha, "1", "p:", NULL), 0);
    await_call(f, &ev2);
    assert_int_equal(ev2.type, REDIS_REPLY_INTEGER);
    assert_int_equal(ev2.integer, 1);

    /* Sharded pub/sub on the one server. */
    assert_int_equal(rtmd_redis_client_subscribe(f->a.c, RTMD_STR_LIT("ch1")), 0);
    assert_int_equal(rtmd_redis_client_subscribe(f->a.c, RTMD_STR_LIT("ch1")), 0);
    WAIT_FOR(f, stats_of(&f->a).channels_on == 1, 5000);
    struct call pub = {0};
    assert_int_equal(publish(&f->a, &pub, "ch1", "hello"), 0);
    await_call(f, &pub);
    assert_int_equal(pub.integer, 1);
    WAIT_FOR(f, f->a.n_msgs >= 1, 5000);
    assert_int_equal(count_msgs(&f->a, "ch1", "hello"), 1);
    /* Two references: one unsubscribe keeps it. */
    rtmd_redis_client_unsubscribe(f->a.c, RTMD_STR_LIT("ch1"));
    struct call p2 = {0};
    assert_int_equal(publish(&f->a, &p2, "ch1", "again"), 0);
    await_call(f, &p2);
    assert_int_equal(p2.integer, 1);
    rtmd_redis_client_unsubscribe(f->a.c, RTMD_STR_LIT("ch1"));
    run_for(f, 50);
    struct call p3 = {0};
    assert_int_equal(publish(&f->a, &p3, "ch1", "gone"), 0);
    await_call(f, &p3);
    assert_int_equal(p3.integer, 0);
    assert_int_equal(stats_of(&f->a).channels, 0);
}

/* The single instance dies: the client goes down, finds the other seed (a
 * single instance too), and is up there with its subscriptions. */
static void test_single_other_seed_on_failure(void **state)
{
    struct fx *f = *state;
    need_redis();
    server_start(&f->s1);
    server_start(&f->s2);
    uint16_t ports[] = {f->s1.port, f->s2.port};
    cx_open_up(f, &f->a, ports, 2);
    assert_int_equal(rtmd_redis_client_subscribe(f->a.c, RTMD_STR_LIT("news")), 0);
    WAIT_FOR(f, stats_of(&f->a).channels_on == 1, 5000);
    sync_cmd(f, &f->a, "where", "SET", "where", "one");

    server_kill(&f->s1);
    WAIT_FOR(f, !f->a.up, 5000);
    assert_int_equal(f->a.downs, 1);
    /* Nothing reachable: refused at once, not queued. */
    struct call k = {0};
    WAIT_FOR(f, !rtmd_redis_client_reachable(f->a.c), 5000);
    assert_int_equal(issue(&f->a, &k, "where", SOON(), "GET", "where", NULL), -ENOTCONN);

    WAIT_FOR(f, f->a.up, 10000);
    assert_true(f->a.up);
    struct call get = sync_cmd(f, &f->a, "where", "GET", "where", NULL);
    assert_int_equal(get.type, REDIS_REPLY_NIL); /* the other server */
    WAIT_FOR(f, stats_of(&f->a).channels_on == 1, 5000);
    char out[64];
    assert_int_equal(cli(f->s2.port, out, sizeof(out), "SPUBLISH", "news", "from-two", NULL), 0);
    WAIT_FOR(f, f->a.n_msgs >= 1, 5000);
    assert_int_equal(count_msgs(&f->a, "news", "from-two"), 1);
    assert_int_equal(k.calls, 0);
}

/* What the client refuses, and what fails at once when nothing answers. */
static void test_refused(void **state)
{
    struct fx *f = *state;
    uint16_t ports[] = {free_port()};
    cx_open(f, &f->a, ports, 1);
    struct call k = {0};
    const char *bad[][3] = {
        {"SUBSCRIBE", "x", NULL},   {"ssubscribe", "x", NULL}, {"MULTI", NULL, NULL},
        {"exec", NULL, NULL},       {"ASKING", NULL, NULL},    {"select", "1", NULL},
        {"CLIENT", "REPLY", "OFF"}, {"HELLO", "3", NULL},      {"auth", "x", NULL},
        {"WATCH", "k", NULL},       {"READONLY", NULL, NULL},  {"MONITOR", NULL, NULL},
    };
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(bad); i++)
        assert_int_equal(issue(&f->a, &k, "k", SOON(), bad[i][0], bad[i][1], bad[i][2], NULL),
                         -EINVAL);
    assert_int_equal(issue(&f->a, &k, "k", SOON(), "GET", "k", NULL), -ENOTCONN);
    in_call_ = 1;
    assert_int_equal(rtmd_redis_client_command(f->a.c, "k", 1, 0, NULL, NULL, SOON(), on_call, &k),
                     -EINVAL);
    assert_int_equal(rtmd_redis_client_subscribe(f->a.c, RTMD_STR_NULL), -EINVAL);
    in_call_ = 0;
    assert_int_equal(rtmd_redis_client_time(f->a.c, SOON(), NULL, NULL), -ENOTCONN);
    /* A subscription is kept while nothing answers. */
    assert_int_equal(rtmd_redis_client_subscribe(f->a.c, RTMD_STR_LIT("later")), 0);
    run_for(f, 100);
    struct rtmd_redis_client_stats s = stats_of(&f->a);
    assert_int_equal(s.mode, RTMD_REDIS_MODE_UNKNOWN);
    assert_false(s.up);
    assert_int_equal(s.channels, 1);
    assert_int_equal(s.channels_on, 0);
    assert_int_equal(k.calls, 0);

    struct rtmd_redis_seed seed;
    memset(&seed, 0, sizeof(seed));
    struct rtmd_redis_client *c = NULL;
    assert_int_equal(rtmd_redis_client_open(&c, &f->loop, &seed, 1, NULL), -EINVAL);
    assert_int_equal(rtmd_redis_client_open(&c, &f->loop, &seed, 0, NULL), -EINVAL);
    assert_null(c);
}

/* ---- a Redis Cluster ---- */

static void open_cluster(struct fx *f, int seed)
{
    uint16_t port = 0;
    for (int i = 0; i < N_CLUSTER && !port; i++)
        if (cluster_[(seed + i) % N_CLUSTER].pid > 0)
            port = cluster_[(seed + i) % N_CLUSTER].port;
    cx_open_up(f, &f->a, &port, 1);
    struct rtmd_redis_client_stats s = stats_of(&f->a);
    assert_int_equal(s.mode, RTMD_REDIS_MODE_CLUSTER);
    assert_int_equal(s.masters, 3);
    assert_int_equal(s.masters_up, 3);
}

static pid_t pid_of(uint16_t port)
{
    for (int i = 0; i < N_CLUSTER; i++)
        if (cluster_[i].port == port)
            return cluster_[i].pid;
    fail_msg("no server on port %u", port);
    return 0;
}

static bool all_called(const struct call *k, int n)
{
    for (int i = 0; i < n; i++)
        if (!k[i].calls)
            return false;
    return true;
}

/* Keys on every master, each where CLUSTER NODES says its slot is. */
static void test_cluster_routing(void **state)
{
    struct fx *f = *state;
    need_cluster();
    open_cluster(f, 5); /* a replica, probably: it knows the map as well */
    enum { N = 300 };
    struct call k[N];
    memset(k, 0, sizeof(k));
    char keys[N][24], vals[N][24];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "route:%d", i);
        snprintf(vals[i], sizeof(vals[i]), "v%d", i);
        assert_int_equal(issue(&f->a, &k[i], keys[i], SOON(), "SET", keys[i], vals[i], NULL), 0);
    }
    WAIT_FOR(f, all_called(k, N), 10000);
    struct cnode t[N_CLUSTER + 2];
    int n = topology(t, N_CLUSTER + 2);
    int per_master[N_CLUSTER + 2] = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(k[i].calls, 1);
        assert_int_equal(k[i].status, 0);
        assert_string_equal(k[i].str, "OK");
        int slot = (int)rtmd_redis_slot_of(keys[i], strlen(keys[i]));
        for (int m = 0; m < n; m++)
            if (t[m].master && serves(&t[m], slot)) {
                /* there, asked directly (no redirection) */
                if (per_master[m]++ == 0) {
                    char out[64];
                    assert_int_equal(cli(t[m].port, out, sizeof(out), "GET", keys[i], NULL), 0);
                    assert_int_equal(strncmp(out, vals[i], strlen(vals[i])), 0);
                }
            }
    }
    int masters_used = 0;
    for (int m = 0; m < n; m++)
        masters_used += per_master[m] > 0;
    assert_int_equal(masters_used, 3);
    memset(k, 0, sizeof(k));
    for (int i = 0; i < N; i++)
        assert_int_equal(issue(&f->a, &k[i], keys[i], SOON(), "GET", keys[i], NULL), 0);
    WAIT_FOR(f, all_called(k, N), 10000);
    for (int i = 0; i < N; i++)
        assert_string_equal(k[i].str, vals[i]);
    struct rtmd_redis_client_stats s = stats_of(&f->a);
    assert_int_equal(s.moved, 0);
    assert_int_equal(s.asked, 0);
    assert_int_equal(s.timeouts, 0);
    assert_true(s.refreshes >= 1);
    /* A key-less command goes to some master. */
    struct call ping = {0};
    assert_int_equal(issue(&f->a, &ping, NULL, SOON(), "PING", NULL), 0);
    await_call(f, &ping);
    assert_string_equal(ping.str, "PONG");
}

/* The scripts are on every master, loaded when its connection came up. */
static void test_cluster_scripts_on_every_master(void **state)
{
    struct fx *f = *state;
    need_cluster();
    char sha[2][41];
    sha1_hex(test_scripts[0], sha[0]);
    sha1_hex(test_scripts[1], sha[1]);
    /* None has them before. */
    for (int i = 0; i < N_CLUSTER; i++) {
        char out[16];
        assert_int_equal(cli(cluster_[i].port, out, sizeof(out), "SCRIPT", "FLUSH", NULL), 0);
    }
    open_cluster(f, 0);
    run_for(f, 100);
    struct cnode t[N_CLUSTER + 2];
    int n = topology(t, N_CLUSTER + 2), masters = 0;
    for (int m = 0; m < n; m++) {
        if (!t[m].master || t[m].n_ranges == 0)
            continue;
        masters++;
        char out[64];
        assert_int_equal(cli(t[m].port, out, sizeof(out), "SCRIPT", "EXISTS", sha[0], sha[1], NULL),
                         0);
        assert_string_equal(out, "1\n1\n");
        /* EVALSHA through the client, on a key of that master. */
        char prefix[32];
        key_for_slot(prefix, sizeof(prefix), "sc:", lowest_slot(&t[m]));
        struct call ev = {0};
        assert_int_equal(issue(&f->a, &ev, prefix, SOON(), "EVALSHA", sha[0], "1", prefix, NULL),
                         0);
        await_call(f, &ev);
        assert_int_equal(ev.status, 0);
        assert_int_equal(ev.type, REDIS_REPLY_INTEGER);
    }
    assert_int_equal(masters, 3);
}

/* redis-cli --cluster reshard moves a slot behind the client's back: the
 * next command meets MOVED, follows it, and the map is corrected. */
static void test_cluster_moved_after_reshard(void **state)
{
    struct fx *f = *state;
    need_cluster();
    open_cluster(f, 1);
    struct cnode from = master_of((int)rtmd_redis_slot_of("x", 1));
    struct cnode to = other_master(from.id);
    int slot = lowest_slot(&from);
    char key[32];
    key_for_slot(key, sizeof(key), "mv:", slot);
    sync_cmd(f, &f->a, key, "SET", key, "moved-value");

    reshard_one(&from, &to);
    assert_int_equal(master_of(slot).port, to.port);

    uint64_t moved = stats_of(&f->a).moved;
    struct call get = sync_cmd(f, &f->a, key, "GET", key, NULL);
    assert_string_equal(get.str, "moved-value");
    assert_int_equal(stats_of(&f->a).moved, moved + 1);
    /* Learnt: no redirection the second time. */
    get = sync_cmd(f, &f->a, key, "GET", key, NULL);
    assert_string_equal(get.str, "moved-value");
    assert_int_equal(stats_of(&f->a).moved, moved + 1);
    char out[64];
    assert_int_equal(cli(to.port, out, sizeof(out), "GET", key, NULL), 0);
    assert_string_equal(out, "moved-value\n");
}

static void setslot_all(int slot, const char *how, const char *id)
{
    char s[8];
    snprintf(s, sizeof(s), "%d", slot);
    struct cnode t[N_CLUSTER + 2];
    int n = topology(t, N_CLUSTER + 2);
    for (int m = 0; m < n; m++)
        if (t[m].master && !t[m].fail)
            assert_int_equal(cli(t[m].port, NULL, 0, "CLUSTER", "SETSLOT", s, how, id, NULL), 0);
}

/* A slot being migrated by hand: a key already at the target is reached
 * with ASKING, one still at the source there; a multi-key command over
 * both is retried (TRYAGAIN) until its deadline; a script waits for the
 * end of the migration and then runs once, at the new owner. */
static void test_cluster_ask_during_migration(void **state)
{
    struct fx *f = *state;
    need_cluster();
    open_cluster(f, 2);
    const char *a = "{ask}a", *b = "{ask}b", *prefix = "{ask}:";
    int slot = (int)rtmd_redis_slot_of(a, strlen(a));
    char s[8];
    snprintf(s, sizeof(s), "%d", slot);
    struct cnode src = master_of(slot);
    struct cnode dst = other_master(src.id);
    char dport[8];
    snprintf(dport, sizeof(dport), "%u", (unsigned)dst.port);
    sync_cmd(f, &f->a, a, "SET", a, "va");
    sync_cmd(f, &f->a, b, "SET", b, "vb");
    sync_cmd(f, &f->a, prefix, "DEL", "{ask}:n", NULL);

    char out[64];
    assert_int_equal(
        cli(dst.port, out, sizeof(out), "CLUSTER", "SETSLOT", s, "IMPORTING", src.id, NULL), 0);
    assert_int_equal(
        cli(src.port, out, sizeof(out), "CLUSTER", "SETSLOT", s, "MIGRATING", dst.id, NULL), 0);
    assert_int_equal(
        cli(src.port, out, sizeof(out), "MIGRATE", "127.0.0.1", dport, a, "0", "5000", NULL), 0);
    assert_string_equal(out, "OK\n");

    uint64_t asked = stats_of(&f->a).asked;
    struct call ga = sync_cmd(f, &f->a, a, "GET", a, NULL);
    assert_string_equal(ga.str, "va");
    assert_true(stats_of(&f->a).asked > asked);
    struct call gb = sync_cmd(f, &f->a, b, "GET", b, NULL);
    assert_string_equal(gb.str, "vb");

    /* Over both: TRYAGAIN, retried, until the deadline. */
    uint64_t retries = stats_of(&f->a).retries;
    struct call mget = {0};
    uint64_t deadline = rtmd_now_ms() + 300;
    assert_int_equal(issue(&f->a, &mget, a, deadline, "MGET", a, b, NULL), 0);
    await_call(f, &mget);
    assert_int_equal(mget.status, -ETIMEDOUT);
    assert_true(mget.at >= deadline && mget.at <= deadline + MARGIN_MS);
    assert_true(stats_of(&f->a).retries > retries + 2);

    /* A script whose declared key never exists: ASK at the source, and it
     * is never sent with ASKING; it waits. */
    char sha[41];
    sha1_hex(test_scripts[0], sha);
    struct call ev = {0};
    asked = stats_of(&f->a).asked;
    assert_int_equal(issue(&f->a, &ev, prefix, SOON(), "EVALSHA", sha, "1", prefix, NULL), 0);
    run_for(f, 300);
    assert_int_equal(ev.calls, 0);
    assert_true(stats_of(&f->a).asked > asked);
    assert_int_equal(cli(dst.port, out, sizeof(out), "CLUSTER", "COUNTKEYSINSLOT", s, NULL), 0);
    assert_string_equal(out, "1\n"); /* {ask}a only: it did not run at the target either */

    /* The migration ends: the source answers MOVED, the script runs once,
     * at the new owner. */
    assert_int_equal(
        cli(src.port, out, sizeof(out), "MIGRATE", "127.0.0.1", dport, b, "0", "5000", NULL), 0);
    assert_int_equal(cli(dst.port, NULL, 0, "CLUSTER", "SETSLOT", s, "NODE", dst.id, NULL), 0);
    setslot_all(slot, "NODE", dst.id);
    await_call(f, &ev);
    assert_int_equal(ev.status, 0);
    assert_int_equal(ev.type, REDIS_REPLY_INTEGER);
    assert_int_equal(ev.integer, 1);
    assert_int_equal(cli(dst.port, out, sizeof(out), "GET", "{ask}:n", NULL), 0);
    assert_string_equal(out, "1\n");
    struct call after = sync_cmd(f, &f->a, b, "GET", b, NULL);
    assert_string_equal(after.str, "vb");
}

/* Subscriptions on every master; a slot move drops one (Redis's own
 * sunsubscribe) and the client subscribes again at the new owner. */
static void test_cluster_sharded_pubsub(void **state)
{
    struct fx *f = *state;
    need_cluster();
    open_cluster(f, 3);
    struct cnode t[N_CLUSTER + 2];
    int n = topology(t, N_CLUSTER + 2), k = 0;
    char ch[3][32];
    struct cnode m[3];
    for (int i = 0; i < n && k < 3; i++) {
        if (!t[i].master || t[i].n_ranges == 0)
            continue;
        m[k] = t[i];
        key_for_slot(ch[k], sizeof(ch[k]), "chan:", lowest_slot(&t[i]));
        assert_int_equal(rtmd_redis_client_subscribe(f->a.c, rtmd_str_cstr(ch[k])), 0);
        k++;
    }
    assert_int_equal(k, 3);
    WAIT_FOR(f, stats_of(&f->a).channels_on == 3, 5000);
    assert_int_equal(stats_of(&f->a).channels_on, 3);
    struct call p[3];
    memset(p, 0, sizeof(p));
    for (int i = 0; i < 3; i++)
        assert_int_equal(publish(&f->a, &p[i], ch[i], "one"), 0);
    WAIT_FOR(f, f->a.n_msgs >= 3, 5000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(p[i].integer, 1);
        assert_int_equal(count_msgs(&f->a, ch[i], "one"), 1);
    }

    /* ch[0]'s slot moves to m[1]. */
    reshard_one(&m[0], &m[1]);
    uint64_t until = mono_ms() + 10000;
    char out[32];
    for (;;) {
        run_for(f, 50);
        assert_int_equal(cli(m[1].port, out, sizeof(out), "SPUBLISH", ch[0], "two", NULL), 0);
        if (strcmp(out, "1\n") == 0)
            break;
        assert_true(mono_ms() < until);
    }
    WAIT_FOR(f, count_msgs(&f->a, ch[0], "two") == 1, 5000);
    assert_int_equal(count_msgs(&f->a, ch[0], "two"), 1);
    assert_int_equal(stats_of(&f->a).channels_on, 3);

    /* The last reference gone: unsubscribed. */
    rtmd_redis_client_unsubscribe(f->a.c, rtmd_str_cstr(ch[2]));
    run_for(f, 50);
    struct call gone = {0};
    assert_int_equal(publish(&f->a, &gone, ch[2], "x"), 0);
    await_call(f, &gone);
    assert_int_equal(gone.integer, 0);
    assert_int_equal(stats_of(&f->a).channels, 2);
}

/* A stopped master: its commands time out at their deadline, the other
 * masters answer meanwhile. */
static void test_cluster_deadlines(void **state)
{
    struct fx *f = *state;
    need_cluster();
    open_cluster(f, 4);
    const char *key = "{dl}x";
    struct cnode m = master_of((int)rtmd_redis_slot_of(key, strlen(key)));
    char other[32];
    struct cnode om = other_master(m.id);
    key_for_slot(other, sizeof(other), "ok:", lowest_slot(&om));
    pid_t pid = pid_of(m.port);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    struct call slow = {0}, fast = {0};
    uint64_t deadline = rtmd_now_ms() + 300;
    assert_int_equal(issue(&f->a, &slow, key, deadline, "GET", key, NULL), 0);
    assert_int_equal(issue(&f->a, &fast, other, SOON(), "GET", other, NULL), 0);
    await_call(f, &fast);
    assert_int_equal(fast.status, 0);
    await_call(f, &slow);
    kill(pid, SIGCONT);
    assert_int_equal(slow.status, -ETIMEDOUT);
    assert_true(slow.at >= deadline && slow.at <= deadline + MARGIN_MS);
    struct call again = sync_cmd(f, &f->a, key, "GET", key, NULL);
    (void)again;
}

/* Closing with a command waiting (a script held by a migration): it
 * completes with RTMD_ECLOSED, once, after close returned. */
static void test_cluster_close_with_waiting(void **state)
{
    struct fx *f = *state;
    need_cluster();
    open_cluster(f, 0);
    const char *prefix = "{wait}:";
    int slot = (int)rtmd_redis_slot_of(prefix, strlen(prefix));
    char s[8];
    snprintf(s, sizeof(s), "%d", slot);
    struct cnode src = master_of(slot);
    struct cnode dst = other_master(src.id);
    assert_int_equal(cli(dst.port, NULL, 0, "CLUSTER", "SETSLOT", s, "IMPORTING", src.id, NULL), 0);
    assert_int_equal(cli(src.port, NULL, 0, "CLUSTER", "SETSLOT", s, "MIGRATING", dst.id, NULL), 0);
    char sha[41];
    sha1_hex(test_scripts[0], sha);
    struct call ev = {0};
    assert_int_equal(issue(&f->a, &ev, prefix, SOON(), "EVALSHA", sha, "1", prefix, NULL), 0);
    run_for(f, 100);
    assert_int_equal(ev.calls, 0);
    /* between two tries: waiting, not in flight */
    WAIT_FOR(f, stats_of(&f->a).waiting == 1, 2000);
    assert_int_equal(stats_of(&f->a).waiting, 1);
    in_call_ = 1;
    rtmd_redis_client_close(f->a.c, on_done, &f->a);
    in_call_ = 0;
    WAIT_FOR(f, f->a.done, 5000);
    assert_int_equal(ev.calls, 1);
    assert_int_equal(ev.status, RTMD_ECLOSED);
    memset(&f->a, 0, sizeof(f->a));
    assert_int_equal(cli(dst.port, NULL, 0, "CLUSTER", "SETSLOT", s, "STABLE", NULL), 0);
    assert_int_equal(cli(src.port, NULL, 0, "CLUSTER", "SETSLOT", s, "STABLE", NULL), 0);
}

/* CLUSTER FAILOVER on a replica under a stream of INCRs: every one
 * succeeds (the old master answers MOVED once demoted), none is lost or
 * applied twice. */
static void test_cluster_manual_failover(void **state)
{
    struct fx *f = *state;
    need_cluster();
    open_cluster(f, 1);
    const char *key = "{fo}ctr";
    int slot = (int)rtmd_redis_slot_of(key, strlen(key));
    struct cnode m = master_of(slot);
    struct cnode t[N_CLUSTER + 2];
    int n = topology(t, N_CLUSTER + 2);
    uint16_t replica = 0;
    for (int i = 0; i < n; i++)
        if (!t[i].master && strcmp(t[i].master_id, m.id) == 0)
            replica = t[i].port;
    assert_true(replica != 0);
    sync_cmd(f, &f->a, key, "DEL", key, NULL);
    long long done = 0;
    bool failed_over = false;
    uint64_t until = mono_ms() + 15000;
    while (mono_ms() < until) {
        if (done == 50)
            assert_int_equal(cli(replica, NULL, 0, "CLUSTER", "FAILOVER", NULL), 0);
        struct call k = {0};
        assert_int_equal(issue(&f->a, &k, key, rtmd_now_ms() + 5000, "INCR", key, NULL), 0);
        await_call(f, &k);
        assert_int_equal(k.status, 0);
        assert_int_equal(k.type, REDIS_REPLY_INTEGER);
        assert_int_equal(k.integer, ++done);
        if (done > 50 && !failed_over && done % 10 == 0)
            failed_over = master_of(slot).port == replica;
        if (failed_over && done >= 200)
            break;
    }
    assert_true(failed_over);
    assert_true(done >= 200);
    char out[32];
    assert_int_equal(cli(replica, out, sizeof(out), "GET", key, NULL), 0);
    assert_int_equal(strtoll(out, NULL, 10), done);
    WAIT_FOR(f, f->a.up && stats_of(&f->a).masters_up == 3, 5000);
}

/* kill -9 of a master: the client goes down, commands for its slots fail
 * by their deadlines, the other masters keep answering; the replica takes
 * over and the client is up again there. The killed server comes back as
 * a replica. */
static void test_cluster_master_killed(void **state)
{
    struct fx *f = *state;
    need_cluster();
    open_cluster(f, 2);
    const char *key = "{kill}x";
    int slot = (int)rtmd_redis_slot_of(key, strlen(key));
    struct cnode m = master_of(slot);
    char other[32];
    struct cnode om = other_master(m.id);
    key_for_slot(other, sizeof(other), "alive:", lowest_slot(&om));
    sync_cmd(f, &f->a, key, "SET", key, "kept");
    struct call w = sync_cmd(f, &f->a, key, "WAIT", "1", "2000");
    if (w.integer != 1)
        print_message("WAIT: type %d %lld %s\n", w.type, w.integer, w.str);
    assert_int_equal(w.integer, 1); /* the replica has it */

    struct server *victim = NULL;
    for (int i = 0; i < N_CLUSTER; i++)
        if (cluster_[i].port == m.port)
            victim = &cluster_[i];
    assert_non_null(victim);
    int downs = f->a.downs;
    server_kill(victim);
    WAIT_FOR(f, f->a.downs > downs, 5000);
    assert_false(f->a.up);
    assert_true(rtmd_redis_client_reachable(f->a.c));
    struct call alive = sync_cmd(f, &f->a, other, "SET", other, "1");
    assert_string_equal(alive.str, "OK");

    int failures = 0;
    struct call k;
    uint64_t until = mono_ms() + 20000;
    for (;;) {
        memset(&k, 0, sizeof(k));
        assert_int_equal(issue(&f->a, &k, key, rtmd_now_ms() + 500, "GET", key, NULL), 0);
        await_call(f, &k);
        if (k.status == 0 && k.type == REDIS_REPLY_STRING)
            break;
        assert_true(k.status == -ETIMEDOUT || k.status == -ECONNRESET);
        failures++;
        assert_true(mono_ms() < until);
    }
    assert_string_equal(k.str, "kept");
    assert_true(failures > 0);
    WAIT_FOR(f, f->a.up, 5000);
    assert_true(f->a.up);
    assert_int_equal(stats_of(&f->a).masters_up, 3);

    server_start(victim); /* same port and nodes.conf: it rejoins */
    wait_healthy();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_refused),
        T(test_single_instance),
        T(test_single_other_seed_on_failure),
        T(test_cluster_routing),
        T(test_cluster_scripts_on_every_master),
        T(test_cluster_moved_after_reshard),
        T(test_cluster_ask_during_migration),
        T(test_cluster_sharded_pubsub),
        T(test_cluster_deadlines),
        T(test_cluster_close_with_waiting),
        T(test_cluster_manual_failover),
        T(test_cluster_master_killed),
    };
    if (getenv("RTMD_TEST_ONLY"))
        cmocka_set_test_filter(getenv("RTMD_TEST_ONLY"));
    return cmocka_run_group_tests(tests, cluster_up, cluster_down);
}
