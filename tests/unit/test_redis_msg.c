/*
 * Unit tests for the redis backend's message history, offline messages and
 * query handles (store/redis_msg.c and its scripts in store/redis_lua.c):
 * the real backend (rtmd_store_open with backend = redis) on a real libuv
 * loop, against a real redis-server this file starts on a free loopback
 * port in a temp dir (flushed before every test). The scenarios are those
 * of test_store_history.c and test_store_offline.c (the embedded store's
 * contract), plus what a store shared by nodes adds: two nodes on one
 * Redis, handles taken on another node, calls that reach a stalled Redis
 * after their deadline, replies read in pieces, the prune leaving no key.
 * rtmd's clock is frozen: the scripts take their times from it, not from
 * Redis. Skipped when redis-server is missing (RTMD_REDIS_SERVER names
 * another binary).
 *
 * RTMD_BENCH=1 also runs test_bench (costs of channel messages to 1,000 and
 * 10,000 members and of deep offsets, printed).
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
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/loop.h"
#include "redis_fixture.h"
#include "store/redis_internal.h"

#define APP0    "970CA35de60c44645bbae8a215061b33"
#define APP1    "0123456789abcdef0123456789abcdef"
#define T0      1578027420761ULL
#define DAY     86400000ULL
#define WEEK    (7 * DAY)
#define WAIT_MS 20000 /* the longest a callback may take (sanitizers, shared machine) */

/* ---- the redis-server of this file ---- */

static struct {
    pid_t pid;
    uint16_t port;
    char dir[64];
    char url[64];
} srv;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One command over a fresh blocking connection; the reply's first line
 * (type byte included) goes to line, and a bulk reply's data to bulk. */
static bool redis_command(int argc, const char *const *argv, char *line, size_t cap, char *bulk,
                          size_t bulk_cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(srv.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    char out[4096];
    int n = snprintf(out, sizeof(out), "*%d\r\n", argc);
    for (int i = 0; i < argc && ok; i++)
        n += snprintf(out + n, sizeof(out) - (size_t)n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    ok = ok && n < (int)sizeof(out) && write(fd, out, (size_t)n) == n;
    size_t got = 0;
    char buf[65536];
    while (ok) {
        ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (r <= 0) {
            ok = false;
            break;
        }
        got += (size_t)r;
        buf[got] = '\0';
        char *nl = strstr(buf, "\r\n");
        if (!nl)
            continue;
        if (buf[0] != '$')
            break;
        long len = strtol(buf + 1, NULL, 10);
        if (len < 0 || got >= (size_t)(nl - buf) + 2 + (size_t)len + 2)
            break;
    }
    close(fd);
    if (!ok)
        return false;
    char *nl = strstr(buf, "\r\n");
    *nl = '\0';
    size_t n_line = strlen(buf);
    if (n_line >= cap)
        n_line = cap - 1;
    memcpy(line, buf, n_line);
    line[n_line] = '\0';
    if (bulk && buf[0] == '$' && strtol(buf + 1, NULL, 10) >= 0)
        snprintf(bulk, bulk_cap, "%.*s", (int)strtol(buf + 1, NULL, 10), nl + 2);
    return true;
}

static long long redis_int(int argc, const char *const *argv)
{
    char line[256];
    assert_true(redis_command(argc, argv, line, sizeof(line), NULL, 0));
    if (line[0] != ':')
        fail_msg("%s: %s", argv[0], line);
    return strtoll(line + 1, NULL, 10);
}

/* Keys matching pattern (KEYS, in a script, so the answer is a number). */
static long long keys(const char *pattern)
{
    const char *argv[] = {"EVAL", "return #redis.call('KEYS', ARGV[1])", "0", pattern};
    return redis_int(4, argv);
}

static bool server_answers(void)
{
    char line[64];
    const char *argv[] = {"PING"};
    return redis_command(1, argv, line, sizeof(line), NULL, 0) &&
           (line[0] == '+' || line[0] == '-');
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    const char *bin = redis_server_bin();
    srv.port = free_port();
    snprintf(srv.dir, sizeof(srv.dir), "/tmp/rtmd-rmsg-XXXXXX");
    if (!mkdtemp(srv.dir))
        return -1;
    snprintf(srv.url, sizeof(srv.url), "redis://127.0.0.1:%u", (unsigned)srv.port);
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)srv.port);
    const char *argv[] = {
        bin,     "--port",       port, "--bind",    "127.0.0.1", "--save",      "",   "--dir",
        srv.dir, "--appendonly", "no", "--logfile", "r.log",     "--daemonize", "no", NULL};
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    srv.pid = pid;
    double until = mono_s() + 10;
    while (!server_answers()) {
        int st;
        if (waitpid(pid, &st, WNOHANG) != 0 || mono_s() > until)
            return -1;
        pause_ms(10);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (srv.pid > 0) {
        kill(srv.pid, SIGCONT);
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, NULL, 0);
    }
    if (srv.dir[0])
        nftw(srv.dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- nodes: a config, a store ---- */

struct node {
    struct rtmd_config cfg;
    struct rtmd_app apps[2];
    struct rtmd_app *app_ptrs[2];
    char dir[96];
    char name[16];
    struct rtmd_store *store;
};

struct fixture {
    uv_loop_t loop;
    char dir[64];
    struct node a, b; /* two nodes on the same Redis */
};

/* The limits of a real deployment (as the embedded tests use): a week of
 * history and offline messages (200 a user), 32 KiB payloads, handles for
 * 10 minutes; Redis calls time out after 5 s. */
static void node_config(struct fixture *f, struct node *n, const char *name)
{
    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof(n->name), "%s", name);
    snprintf(n->dir, sizeof(n->dir), "%s/%s", f->dir, name);
    struct rtmd_config *cfg = &n->cfg;
    cfg->data_dir = n->dir;
    cfg->node_name = n->name;
    cfg->node_id = 1;
    cfg->backend = RTMD_STORE_REDIS;
    cfg->redis_url = srv.url;
    cfg->redis_timeout_ms = 5000;
    cfg->node_timeout_s = 10;
    cfg->limits.events_retain = 2000;
    cfg->limits.events_max_pull = 1000;
    cfg->limits.history_retention_s = 604800;
    cfg->limits.max_payload = 32768;
    cfg->limits.offline_max_per_user = 200;
    cfg->limits.offline_retention_s = 604800;
    cfg->limits.history_handle_ttl_s = 600;
    cfg->limits.store_timeout_ms = 5000;
    snprintf(cfg->regions[0], RTMD_REGION_MAX, "default");
    cfg->n_regions = 1;
    cfg->apps = n->app_ptrs;
    cfg->n_apps = 2;
    rtmd_hashmap_init(&cfg->apps_by_id);
    const char *ids[2] = {APP0, APP1};
    for (uint32_t i = 0; i < 2; i++) {
        snprintf(n->apps[i].id, sizeof(n->apps[i].id), "%s", ids[i]);
        n->apps[i].index = i;
        n->app_ptrs[i] = &n->apps[i];
        rtmd_hashmap_put(&cfg->apps_by_id, rtmd_str_cstr(n->apps[i].id), &n->apps[i]);
    }
}

static struct redis_store *impl(struct node *n)
{
    return (struct redis_store *)n->store;
}

/* Opens the node's store; its prune passes start only when a test asks. */
static void node_open(struct fixture *f, struct node *n)
{
    assert_int_equal(rtmd_store_open(&n->store, &n->cfg, &f->loop), 0);
    impl(n)->msg.prune.next_ms = UINT64_MAX;
}

static void on_closed(void *arg, int status)
{
    assert_int_equal(status, 0);
    (*(int *)arg)++;
}

static void node_close(struct fixture *f, struct node *n)
{
    if (!n->store)
        return;
    int closed = 0;
    rtmd_store_close(n->store, on_closed, &closed);
    double until = mono_s() + WAIT_MS / 1000.0;
    while (!closed && mono_s() < until)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(closed, 1);
    n->store = NULL;
}

static int setup(void **state)
{
    assert_true(srv.pid > 0);
    const char *argv[] = {"FLUSHALL"};
    char line[64];
    assert_true(redis_command(1, argv, line, sizeof(line), NULL, 0));
    struct fixture *f = rtmd_calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/rtmd-rmsgt-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    node_config(f, &f->a, "na");
    node_config(f, &f->b, "nb");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(rtmd_loop_init(&f->loop), 0);
    rtmd_clock_freeze(T0 + 60000);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (!f)
        return 0;
    node_close(f, &f->a);
    node_close(f, &f->b);
    rtmd_loop_close();
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    rtmd_clock_freeze(0);
    rtmd_hashmap_free(&f->a.cfg.apps_by_id);
    rtmd_hashmap_free(&f->b.cfg.apps_by_id);
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- synchronous calls ---- */

/*
 * After a store call that returned rc: a refused call returns rc; else
 * checks its callback has not come yet (never from inside the call), runs
 * the loop until it comes (once) and returns the status it brought.
 */
static int await_cb(struct fixture *f, int rc, const int *calls, const int *status)
{
    if (rc)
        return rc;
    assert_int_equal(*calls, 0);
    double until = mono_s() + WAIT_MS / 1000.0;
    while (*calls == 0 && mono_s() < until)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(*calls, 1);
    return *status;
}

/* Runs the loop until *n reaches want. */
static void await_n(struct fixture *f, const int *n, int want)
{
    double until = mono_s() + WAIT_MS / 1000.0;
    while (*n < want && mono_s() < until)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(*n, want);
}

struct result {
    int calls;
    int status;
};

static void on_done(void *arg, int status)
{
    struct result *r = arg;
    r->calls++;
    r->status = status;
}

/* What a query or a take returned: one line a message, "src>dst @ms
 * payload" with ms counted from T0, "p " or "c " first when typed. */
struct got {
    int calls;
    int status;
    size_t n;
    char *m[300];
    bool typed;
};

static void on_messages(void *arg, int status, const struct rtmd_message_batch *b)
{
    struct got *g = arg;
    g->calls++;
    g->status = status;
    g->n = b->n;
    for (size_t i = 0; i < b->n && i < RTMD_ARRAY_SIZE(g->m); i++) {
        const struct rtmd_message *m = &b->messages[i];
        char line[2048];
        snprintf(line, sizeof(line), "%s%.*s>%.*s @%llu %.*s",
                 !g->typed                  ? ""
                 : m->type == RTMD_MSG_PEER ? "p "
                                            : "c ",
                 (int)m->src.len, m->src.p, (int)m->dst.len, m->dst.p,
                 (unsigned long long)(m->ms - T0), (int)m->payload.len, m->payload.p);
        g->m[i] = strdup(line);
    }
}

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n && i < RTMD_ARRAY_SIZE(g->m); i++)
        free(g->m[i]);
    memset(g, 0, sizeof(*g));
}

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE      ((const char *const[]){NULL})

static struct rtmd_message msg_make(enum rtmd_message_type type, const char *src, const char *dst,
                                    const char *payload, uint64_t ms)
{
    struct rtmd_message m = {type, rtmd_str_cstr(src), rtmd_str_cstr(dst), rtmd_str_cstr(payload),
                             ms};
    return m;
}

static size_t to_strs(const char *const *uids, struct rtmd_str *out, size_t max)
{
    size_t n = 0;
    for (; uids && uids[n] && n < max; n++)
        out[n] = rtmd_str_cstr(uids[n]);
    return n;
}

static int put_submit(struct node *n, int app, enum rtmd_message_type type, const char *src,
                      const char *dst, const char *payload, uint64_t ms,
                      const char *const *recipients, struct result *r)
{
    struct rtmd_message m = msg_make(type, src, dst, payload, ms);
    struct rtmd_str to[16];
    size_t k = to_strs(recipients, to, 16);
    return rtmd_store_history_put(n->store, &n->apps[app], &m, k ? to : NULL, k, on_done, r);
}

static int put(struct fixture *f, struct node *n, int app, enum rtmd_message_type type,
               const char *src, const char *dst, const char *payload, uint64_t ms,
               const char *const *recipients)
{
    struct result r = {0, 0};
    return await_cb(f, put_submit(n, app, type, src, dst, payload, ms, recipients, &r), &r.calls,
                    &r.status);
}

static struct rtmd_history_query q_make(const char *src, const char *dst, uint64_t start,
                                        uint64_t end)
{
    struct rtmd_history_query q;
    memset(&q, 0, sizeof(q));
    q.source = src ? rtmd_str_cstr(src) : RTMD_STR_NULL;
    q.destination = dst ? rtmd_str_cstr(dst) : RTMD_STR_NULL;
    q.start_ms = start;
    q.end_ms = end;
    q.limit = 100;
    return q;
}

static int query(struct fixture *f, struct node *n, int app, const struct rtmd_history_query *q,
                 struct got *g)
{
    memset(g, 0, sizeof(*g));
    g->typed = true;
    return await_cb(f, rtmd_store_history_query(n->store, &n->apps[app], q, on_messages, g),
                    &g->calls, &g->status);
}

struct counted {
    int calls;
    int status;
    uint64_t count;
};

static void on_count(void *arg, int status, uint64_t count)
{
    struct counted *c = arg;
    c->calls++;
    c->status = status;
    c->count = count;
}

static uint64_t count(struct fixture *f, struct node *n, int app,
                      const struct rtmd_history_query *q)
{
    struct counted c = {0, 0, 0};
    int rc = rtmd_store_history_count(n->store, &n->apps[app], q, on_count, &c);
    assert_int_equal(rc, 0);
    assert_int_equal(await_cb(f, rc, &c.calls, &c.status), 0);
    return c.count;
}

/* Runs q (asc, offset 0, limit 100) on node n and checks it returns want,
 * that desc returns the reverse, and that count agrees. */
static void expect_on(struct fixture *f, struct node *n, const char *src, const char *dst,
                      uint64_t start, uint64_t end, const char *const *want)
{
    size_t k = 0;
    while (want[k])
        k++;
    struct rtmd_history_query q = q_make(src, dst, start, end);
    struct got g;
    assert_int_equal(query(f, n, 0, &q, &g), 0);
    if (g.n != k) {
        for (size_t i = 0; i < g.n; i++)
            print_message("got %s\n", g.m[i]);
        fail_msg("src=%s dst=%s: %zu messages, want %zu", src ? src : "-", dst ? dst : "-", g.n, k);
    }
    for (size_t i = 0; i < k; i++)
        assert_string_equal(g.m[i], want[i]);
    got_free(&g);
    q.desc = true;
    assert_int_equal(query(f, n, 0, &q, &g), 0);
    assert_int_equal(g.n, k);
    for (size_t i = 0; i < k; i++)
        assert_string_equal(g.m[i], want[k - 1 - i]);
    got_free(&g);
    assert_int_equal(count(f, n, 0, &q), k);
}

static void expect(struct fixture *f, const char *src, const char *dst, uint64_t start,
                   uint64_t end, const char *const *want)
{
    expect_on(f, &f->a, src, dst, start, end, want);
}

/* ---- history: the embedded store's scenarios ---- */

/*
 * The data set: users alice, bob, carol and a user named "news"; channels
 * "news" and "sports". m5 and m6 share a millisecond.
 */
static const char *const M1 = "p alice>bob @1 a>b 1";
static const char *const M2 = "p bob>alice @2 b>a";
static const char *const M3 = "c alice>news @3 a#news";
static const char *const M4 = "p carol>news @4 c>news";
static const char *const M5 = "c bob>sports @5 b#sports";
static const char *const M6 = "p alice>bob @5 a>b 2";
static const char *const M7 = "c alice>sports @6 a#sports";
static const char *const M8 = "p alice>news @7 a>news";
static const char *const M9 = "c carol>news @8 c#news";

static void put_data_set(struct fixture *f, struct node *n)
{
    assert_int_equal(put(f, n, 0, RTMD_MSG_PEER, "alice", "bob", "a>b 1", T0 + 1, NULL), 0);
    assert_int_equal(put(f, n, 0, RTMD_MSG_PEER, "bob", "alice", "b>a", T0 + 2, NULL), 0);
    assert_int_equal(put(f, n, 0, RTMD_MSG_CHANNEL, "alice", "news", "a#news", T0 + 3,
                         LIST("bob", "news", "carol")),
                     0);
    assert_int_equal(put(f, n, 0, RTMD_MSG_PEER, "carol", "news", "c>news", T0 + 4, NULL), 0);
    /* m5 and m6 in one iteration: arrival order kept. */
    struct result r5 = {0, 0}, r6 = {0, 0};
    assert_int_equal(put_submit(n, 0, RTMD_MSG_CHANNEL, "bob", "sports", "b#sports", T0 + 5,
                                LIST("alice", "carol"), &r5),
                     0);
    assert_int_equal(put_submit(n, 0, RTMD_MSG_PEER, "alice", "bob", "a>b 2", T0 + 5, NULL, &r6),
                     0);
    await_n(f, &r6.calls, 1);
    assert_int_equal(r5.calls, 1);
    assert_int_equal(r5.status | r6.status, 0);
    assert_int_equal(
        put(f, n, 0, RTMD_MSG_CHANNEL, "alice", "sports", "a#sports", T0 + 6, LIST("bob")), 0);
    assert_int_equal(put(f, n, 0, RTMD_MSG_PEER, "alice", "news", "a>news", T0 + 7, NULL), 0);
    /* A recipient listed twice gets one entry. */
    assert_int_equal(put(f, n, 0, RTMD_MSG_CHANNEL, "carol", "news", "c#news", T0 + 8,
                         LIST("alice", "bob", "news", "bob")),
                     0);
    /* The other app's messages never show. */
    assert_int_equal(put(f, n, 1, RTMD_MSG_PEER, "alice", "bob", "other app", T0 + 1, NULL), 0);
    assert_int_equal(
        put(f, n, 1, RTMD_MSG_CHANNEL, "alice", "news", "other app", T0 + 3, LIST("news")), 0);
}

static void test_filter_shapes(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    put_data_set(f, &f->a);
    const uint64_t lo = T0, hi = T0 + 100;

    /* Destination only: what the user received, and the channel's. */
    expect(f, NULL, "bob", lo, hi, LIST(M1, M3, M6, M7, M9));
    expect(f, NULL, "alice", lo, hi, LIST(M2, M5, M9));
    expect(f, NULL, "carol", lo, hi, LIST(M3, M5));
    expect(f, NULL, "sports", lo, hi, LIST(M5, M7));
    /* "news" is a user and a channel: m3 and m9 match both ways, once. */
    expect(f, NULL, "news", lo, hi, LIST(M3, M4, M8, M9));
    expect(f, NULL, "nobody", lo, hi, NONE);

    /* Source only: everything sent, peer and channel. */
    expect(f, "alice", NULL, lo, hi, LIST(M1, M3, M6, M7, M8));
    expect(f, "bob", NULL, lo, hi, LIST(M2, M5));
    expect(f, "news", NULL, lo, hi, NONE);

    /* Source + user: peer messages only (m3/m7 reached bob via channels). */
    expect(f, "alice", "bob", lo, hi, LIST(M1, M6));
    expect(f, "bob", "carol", lo, hi, NONE);
    /* Source + channel: what the source sent to it. */
    expect(f, "alice", "sports", lo, hi, LIST(M7));
    expect(f, "bob", "sports", lo, hi, LIST(M5));
    /* Source + a name that is both: the peer messages and the channel's. */
    expect(f, "alice", "news", lo, hi, LIST(M3, M8));
    expect(f, "carol", "news", lo, hi, LIST(M4, M9));

    struct rtmd_store_stats st;
    rtmd_store_stats(f->a.store, &st);
    assert_int_equal(st.history_kept, 11);
}

static void test_time_bounds_inclusive(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    put_data_set(f, &f->a);
    expect(f, NULL, "bob", T0 + 3, T0 + 6, LIST(M3, M6, M7));
    expect(f, NULL, "bob", T0 + 4, T0 + 5, LIST(M6));
    expect(f, NULL, "alice", T0 + 5, T0 + 5, LIST(M5));
    expect(f, "alice", NULL, T0 + 1, T0 + 1, LIST(M1));
    expect(f, "alice", "news", T0 + 3, T0 + 7, LIST(M3, M8));
    expect(f, "alice", "news", T0 + 4, T0 + 6, NONE);
    expect(f, NULL, "news", T0 + 8, T0 + 8, LIST(M9));
    expect(f, NULL, "news", T0 + 9, UINT64_MAX, NONE);
    /* An empty range (start after end) matches nothing. */
    expect(f, NULL, "bob", T0 + 6, T0 + 3, NONE);
}

/* One page of q; want: NULL-ended. */
static void expect_page(struct fixture *f, struct rtmd_history_query q, uint32_t offset,
                        uint32_t limit, bool desc, const char *const *want)
{
    q.offset = offset;
    q.limit = limit;
    q.desc = desc;
    struct got g;
    assert_int_equal(query(f, &f->a, 0, &q, &g), 0);
    size_t n = 0;
    for (; want[n]; n++) {
        assert_true(n < g.n);
        assert_string_equal(g.m[n], want[n]);
    }
    assert_int_equal(g.n, n);
    got_free(&g);
}

static void test_offset_limit_order(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    put_data_set(f, &f->a);
    struct rtmd_history_query src = q_make("alice", NULL, T0, T0 + 100);
    expect_page(f, src, 1, 2, false, LIST(M3, M6));
    expect_page(f, src, 1, 2, true, LIST(M7, M6));
    expect_page(f, src, 4, 20, false, LIST(M8));
    expect_page(f, src, 5, 20, false, NONE);
    expect_page(f, src, 0, 1, true, LIST(M8));

    /* The union pages after merging. */
    struct rtmd_history_query dst = q_make(NULL, "news", T0, T0 + 100);
    expect_page(f, dst, 0, 2, false, LIST(M3, M4));
    expect_page(f, dst, 1, 2, false, LIST(M4, M8));
    expect_page(f, dst, 2, 2, false, LIST(M8, M9));
    expect_page(f, dst, 3, 2, false, LIST(M9));
    expect_page(f, dst, 4, 2, false, NONE);
    expect_page(f, dst, 0, 3, true, LIST(M9, M8, M4));
    expect_page(f, dst, 3, 3, true, LIST(M3));
    expect_page(f, dst, 4000000000u, 3, true, NONE);

    struct rtmd_history_query pair = q_make("alice", "bob", T0, T0 + 100);
    expect_page(f, pair, 1, 1, false, LIST(M6));
    expect_page(f, pair, 1, 1, true, LIST(M1));

    /* count ignores offset and limit. */
    dst.offset = 3;
    dst.limit = 1;
    assert_int_equal(count(f, &f->a, 0, &dst), 4);
    src.offset = 100;
    assert_int_equal(count(f, &f->a, 0, &src), 5);

    /* 150 messages to one user, paged by 100 in both orders. */
    struct result r[150];
    for (int i = 0; i < 150; i++) {
        char payload[16];
        snprintf(payload, sizeof(payload), "n%d", i);
        memset(&r[i], 0, sizeof(r[i]));
        assert_int_equal(put_submit(&f->a, 0, RTMD_MSG_PEER, "zed", "yan", payload,
                                    T0 + 10 + (uint64_t)i / 3, NULL, &r[i]),
                         0);
    }
    await_n(f, &r[149].calls, 1);
    struct rtmd_history_query many = q_make(NULL, "yan", T0, T0 + 1000);
    struct got g;
    assert_int_equal(query(f, &f->a, 0, &many, &g), 0);
    assert_int_equal(g.n, 100);
    assert_string_equal(g.m[0], "p zed>yan @10 n0");
    assert_string_equal(g.m[99], "p zed>yan @43 n99");
    got_free(&g);
    many.offset = 100;
    assert_int_equal(query(f, &f->a, 0, &many, &g), 0);
    assert_int_equal(g.n, 50);
    assert_string_equal(g.m[49], "p zed>yan @59 n149");
    got_free(&g);
    many.offset = 0;
    many.desc = true;
    assert_int_equal(query(f, &f->a, 0, &many, &g), 0);
    assert_string_equal(g.m[0], "p zed>yan @59 n149");
    assert_string_equal(g.m[1], "p zed>yan @59 n148");
    got_free(&g);
    assert_int_equal(count(f, &f->a, 0, &many), 150);
}

/* ---- paging against a model ---- */

enum { MODEL_MSGS = 300, MODEL_USERS = 6 };

struct model_msg {
    enum rtmd_message_type type;
    char src[8], dst[8];
    uint64_t ms;
    bool to[MODEL_USERS]; /* recipients of a channel message */
    char payload[16];
};

static uint64_t rng_state;

static uint32_t rng(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

/* Whether m matches the filter (store.h's table). */
static bool model_match(const struct model_msg *m, const char *src, const char *dst)
{
    if (src && strcmp(m->src, src) != 0)
        return false;
    if (!dst)
        return true;
    if (src)
        return strcmp(m->dst, dst) == 0;
    if (strcmp(m->dst, dst) == 0)
        return true; /* peer to dst, or channel dst */
    if (m->type == RTMD_MSG_CHANNEL && dst[0] == 'u')
        return m->to[dst[1] - '0'];
    return false;
}

/* Messages with many shared milliseconds, channels named like users
 * ("u1" is both), recipients listing the channel's own name: every query
 * shape, offset, limit and order against a list sorted the embedded way. */
static void test_paging_matches_a_model(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    static struct model_msg ms[MODEL_MSGS];
    struct result r[MODEL_MSGS];
    rng_state = 7;
    for (int i = 0; i < MODEL_MSGS; i++) {
        struct model_msg *m = &ms[i];
        memset(m, 0, sizeof(*m));
        m->type = rng() % 2 ? RTMD_MSG_CHANNEL : RTMD_MSG_PEER;
        snprintf(m->src, sizeof(m->src), "u%u", rng() % MODEL_USERS);
        if (m->type == RTMD_MSG_PEER)
            snprintf(m->dst, sizeof(m->dst), "u%u", rng() % MODEL_USERS);
        else
            snprintf(m->dst, sizeof(m->dst), "%s", rng() % 3 == 0 ? "u1" : "ch");
        m->ms = T0 + rng() % 40; /* about 7 a millisecond, out of order */
        snprintf(m->payload, sizeof(m->payload), "m%d", i);
        struct rtmd_str to[MODEL_USERS + 1];
        size_t n = 0;
        for (int u = 0; u < MODEL_USERS && m->type == RTMD_MSG_CHANNEL; u++) {
            if (rng() % 2) {
                m->to[u] = true;
                static const char *const names[] = {"u0", "u1", "u2", "u3", "u4", "u5"};
                to[n++] = rtmd_str_cstr(names[u]);
            }
        }
        if (n && rng() % 4 == 0)
            to[n++] = to[0]; /* listed twice */
        struct rtmd_message msg = msg_make(m->type, m->src, m->dst, m->payload, m->ms);
        memset(&r[i], 0, sizeof(r[i]));
        assert_int_equal(rtmd_store_history_put(f->a.store, &f->a.apps[0], &msg, n ? to : NULL, n,
                                                on_done, &r[i]),
                         0);
    }
    await_n(f, &r[MODEL_MSGS - 1].calls, 1);
    for (int i = 0; i < MODEL_MSGS; i++)
        assert_int_equal(r[i].status, 0);

    const char *srcs[] = {NULL, "u0", "u3"};
    const char *dsts[] = {NULL, "u1", "u2", "ch", "nobody"};
    const uint32_t offsets[] = {0, 1, 2, 3, 5, 8, 13, 21, 40, 77, 99, 100, 150, 299, 1000};
    const uint32_t limits[] = {1, 3, 20, 100};
    int queries = 0;
    for (size_t si = 0; si < RTMD_ARRAY_SIZE(srcs); si++) {
        for (size_t di = 0; di < RTMD_ARRAY_SIZE(dsts); di++) {
            if (!srcs[si] && !dsts[di])
                continue;
            for (int range = 0; range < 3; range++) {
                uint64_t lo = range == 0 ? T0 : T0 + 5 + (uint64_t)range * 3;
                uint64_t hi = range == 0 ? UINT64_MAX : T0 + 20 + (uint64_t)range * 5;
                /* the model: matches in (ms, arrival) order */
                int want[MODEL_MSGS], n = 0;
                for (uint64_t t = lo; t <= RTMD_MIN(hi, T0 + 40); t++)
                    for (int i = 0; i < MODEL_MSGS; i++)
                        if (ms[i].ms == t && model_match(&ms[i], srcs[si], dsts[di]))
                            want[n++] = i;
                struct rtmd_history_query q = q_make(srcs[si], dsts[di], lo, hi);
                assert_int_equal(count(f, &f->a, 0, &q), (uint64_t)n);
                for (size_t oi = 0; oi < RTMD_ARRAY_SIZE(offsets); oi++) {
                    for (size_t li = 0; li < RTMD_ARRAY_SIZE(limits); li++) {
                        for (int desc = 0; desc < 2; desc++) {
                            q.offset = offsets[oi];
                            q.limit = limits[li];
                            q.desc = desc;
                            struct got g;
                            assert_int_equal(query(f, &f->a, 0, &q, &g), 0);
                            queries++;
                            size_t k = 0;
                            for (int p = (int)q.offset; p < n && k < q.limit; p++, k++) {
                                const struct model_msg *m = &ms[want[desc ? n - 1 - p : p]];
                                char line[64];
                                snprintf(line, sizeof(line), "%s %s>%s @%llu %s",
                                         m->type == RTMD_MSG_PEER ? "p" : "c", m->src, m->dst,
                                         (unsigned long long)(m->ms - T0), m->payload);
                                if (k >= g.n || strcmp(g.m[k], line) != 0)
                                    fail_msg("src=%s dst=%s [%llu,%llu] offset %u limit %u %s: "
                                             "#%zu is %s, want %s",
                                             srcs[si] ? srcs[si] : "-", dsts[di] ? dsts[di] : "-",
                                             (unsigned long long)(lo - T0),
                                             (unsigned long long)(hi == UINT64_MAX ? 0 : hi - T0),
                                             q.offset, q.limit, desc ? "desc" : "asc", k,
                                             k < g.n ? g.m[k] : "nothing", line);
                            }
                            assert_int_equal(g.n, k);
                            got_free(&g);
                        }
                    }
                }
            }
        }
    }
    print_message("%d queries agree with the model\n", queries);
}

static void test_invalid_calls_fail_synchronously(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    struct rtmd_store *s = f->a.store;
    struct result r = {0, 0};
    struct rtmd_str rcpt = RTMD_STR_LIT("bob");
    struct rtmd_message m = msg_make(RTMD_MSG_PEER, "alice", "bob", "hi", T0);
    struct rtmd_app *app = &f->a.apps[0];
    /* A peer message has no recipients list. */
    assert_int_equal(rtmd_store_history_put(s, app, &m, &rcpt, 1, on_done, &r), -EINVAL);
    m.payload = RTMD_STR_LIT("");
    assert_int_equal(rtmd_store_history_put(s, app, &m, NULL, 0, on_done, &r), -EINVAL);
    char big[40000];
    memset(big, 'x', sizeof(big));
    m.payload = rtmd_str_make(big, sizeof(big));
    assert_int_equal(rtmd_store_history_put(s, app, &m, NULL, 0, on_done, &r), -EINVAL);
    m = msg_make(RTMD_MSG_CHANNEL, "alice", "c", "hi", T0);
    struct rtmd_str bad = RTMD_STR_LIT("");
    assert_int_equal(rtmd_store_history_put(s, app, &m, &bad, 1, on_done, &r), -EINVAL);
    struct rtmd_str slash = RTMD_STR_LIT("a/b");
    assert_int_equal(rtmd_store_history_put(s, app, &m, &slash, 1, on_done, &r), -EINVAL);
    m.type = 7;
    assert_int_equal(rtmd_store_history_put(s, app, &m, NULL, 0, on_done, &r), -EINVAL);
    struct rtmd_app stranger = f->a.apps[0];
    stranger.index = 5;
    m.type = RTMD_MSG_PEER;
    assert_int_equal(rtmd_store_history_put(s, &stranger, &m, NULL, 0, on_done, &r), -EINVAL);
    /* Another config's app object at the same index is not this store's. */
    assert_int_equal(rtmd_store_history_put(s, &f->b.apps[0], &m, NULL, 0, on_done, &r), -EINVAL);

    struct got g = {0};
    struct counted c = {0, 0, 0};
    struct rtmd_history_query q = q_make(NULL, NULL, T0, T0 + 1);
    assert_int_equal(rtmd_store_history_query(s, app, &q, on_messages, &g), -EINVAL);
    assert_int_equal(rtmd_store_history_count(s, app, &q, on_count, &c), -EINVAL);
    q = q_make("", NULL, T0, T0 + 1);
    assert_int_equal(rtmd_store_history_query(s, app, &q, on_messages, &g), -EINVAL);
    q = q_make("alice", NULL, T0, T0 + 1);
    q.limit = 0;
    assert_int_equal(rtmd_store_history_query(s, app, &q, on_messages, &g), -EINVAL);
    q.limit = 101;
    assert_int_equal(rtmd_store_history_query(s, app, &q, on_messages, &g), -EINVAL);
    /* count does not page. */
    assert_int_equal(rtmd_store_history_count(s, app, &q, on_count, &c), 0);
    await_n(f, &c.calls, 1);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(r.calls, 0);
    assert_int_equal(g.calls, 0);
    assert_int_equal(c.calls, 1);
}

static void test_read_your_writes_and_order(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    /* Put, query and count made in one iteration: the reads see the put,
     * and the callbacks come in call order. */
    struct result r = {0, 0};
    struct got g = {.typed = true};
    struct counted c = {0, 0, 0};
    struct rtmd_history_query q = q_make(NULL, "bob", T0, T0 + 10);
    assert_int_equal(put_submit(&f->a, 0, RTMD_MSG_PEER, "alice", "bob", "x", T0, NULL, &r), 0);
    assert_int_equal(rtmd_store_history_query(f->a.store, &f->a.apps[0], &q, on_messages, &g), 0);
    assert_int_equal(rtmd_store_history_count(f->a.store, &f->a.apps[0], &q, on_count, &c), 0);
    await_n(f, &c.calls, 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "p alice>bob @0 x");
    assert_int_equal(c.count, 1);
    got_free(&g);
}

/* Runs a prune pass of node n to its end. */
static void prune(struct fixture *f, struct node *n)
{
    rtmd_redis_msg_prune(impl(n));
    assert_true(impl(n)->msg.prune.running);
    double until = mono_s() + WAIT_MS / 1000.0;
    while (impl(n)->msg.prune.running && mono_s() < until)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(impl(n)->msg.prune.running);
}

/* The keys history and offline messages leave in Redis. */
static long long message_keys(void)
{
    return keys("rtmd:{*}:m:*") + keys("rtmd:{*}:mr:*") + keys("rtmd:{*}:h[msprc]:*") +
           keys("rtmd:{*}:hm") + keys("rtmd:{*}:o*");
}

/* Retention 60 s; handles live 1 s, so the prune lags retention by 2 s. */
static uint64_t open_retaining_60s(struct fixture *f, struct node *n)
{
    n->cfg.limits.history_retention_s = 60;
    n->cfg.limits.history_handle_ttl_s = 1;
    const uint64_t now = T0 + DAY;
    rtmd_clock_freeze(now);
    node_open(f, n);
    return now;
}

static void test_retention(void **state)
{
    struct fixture *f = *state;
    const uint64_t now = open_retaining_60s(f, &f->a);
    /* Two expired (older than 60 s, and than the prune's 62 s), two live;
     * channel messages with recipients on both sides of the line. */
    assert_int_equal(put(f, &f->a, 0, RTMD_MSG_PEER, "a", "b", "old1", now - 120000, NULL), 0);
    assert_int_equal(
        put(f, &f->a, 0, RTMD_MSG_CHANNEL, "a", "ch", "old2", now - 62001, LIST("b", "c")), 0);
    assert_int_equal(put(f, &f->a, 0, RTMD_MSG_CHANNEL, "a", "ch", "edge", now - 60000, LIST("b")),
                     0);
    assert_int_equal(put(f, &f->a, 0, RTMD_MSG_PEER, "a", "b", "new", now - 1000, NULL), 0);

    /* Hidden before any prune ran. */
    struct got g;
    struct rtmd_history_query q = q_make(NULL, "b", 0, UINT64_MAX);
    assert_int_equal(query(f, &f->a, 0, &q, &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.m[0], "c a>ch @86340000 edge");
    assert_string_equal(g.m[1], "p a>b @86399000 new");
    got_free(&g);
    assert_int_equal(count(f, &f->a, 0, &q), 2);
    q = q_make("a", NULL, 0, UINT64_MAX);
    assert_int_equal(count(f, &f->a, 0, &q), 2);
    q = q_make(NULL, "ch", 0, UINT64_MAX);
    assert_int_equal(count(f, &f->a, 0, &q), 1);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->a.store, &st);
    assert_int_equal(st.history_pruned, 0);
    assert_int_equal(keys("rtmd:{" APP0 "}:m:*"), 4);

    /* The prune removes them, with every entry of theirs. */
    prune(f, &f->a);
    rtmd_store_stats(f->a.store, &st);
    assert_int_equal(st.history_pruned, 2);
    assert_int_equal(keys("rtmd:{" APP0 "}:m:*"), 2);
    assert_int_equal(keys("rtmd:{" APP0 "}:mr:*"), 1);
    assert_int_equal(keys("rtmd:{" APP0 "}:hr:c"), 0);
    const char *zc[] = {"ZCARD", "rtmd:{" APP0 "}:hr:b"};
    assert_int_equal(redis_int(2, zc), 2);

    /* Time moves on: "edge" expires at once for queries... */
    rtmd_clock_freeze(now + 1);
    q = q_make(NULL, "b", 0, UINT64_MAX);
    assert_int_equal(query(f, &f->a, 0, &q, &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "p a>b @86399000 new");
    got_free(&g);
    /* ...except for a query whose cut-off was pinned before (within 2 s). */
    q.min_ms = now - 60000;
    assert_int_equal(count(f, &f->a, 0, &q), 2);
    q.min_ms = now - 70000; /* older than what the prune keeps: clamped */
    assert_int_equal(count(f, &f->a, 0, &q), 2);
    /* 2 s later the prune removes it, and then everything. */
    rtmd_clock_freeze(now + 2001);
    prune(f, &f->a);
    rtmd_store_stats(f->a.store, &st);
    assert_int_equal(st.history_pruned, 3);
    rtmd_clock_freeze(now + 2 * DAY);
    prune(f, &f->a);
    rtmd_store_stats(f->a.store, &st);
    assert_int_equal(st.history_pruned, 4);
    assert_int_equal(message_keys(), 0);
}

static void test_prune_in_steps_between_calls(void **state)
{
    struct fixture *f = *state;
    const uint64_t now = open_retaining_60s(f, &f->a);
    enum { N = 3000 };
    struct result *r = rtmd_calloc(N, sizeof(*r));
    const char *const to[] = {"b", "c", "d", NULL};
    for (int i = 0; i < N; i++)
        assert_int_equal(put_submit(&f->a, i % 2, i % 3 ? RTMD_MSG_PEER : RTMD_MSG_CHANNEL, "a",
                                    "b", "expired", now - DAY + (uint64_t)i, i % 3 ? NULL : to,
                                    &r[i]),
                         0);
    await_n(f, &r[N - 1].calls, 1);
    free(r);
    /* Steps of about 100 keys: a put made meanwhile is answered between
     * them, long before the pass ends. */
    impl(&f->a)->msg.prune.budget = 100;
    rtmd_redis_msg_prune(impl(&f->a));
    struct result live = {0, 0};
    assert_int_equal(put_submit(&f->a, 0, RTMD_MSG_PEER, "a", "b", "live", now, NULL, &live), 0);
    await_n(f, &live.calls, 1);
    assert_int_equal(live.status, 0);
    assert_true(impl(&f->a)->msg.prune.running);
    double until = mono_s() + WAIT_MS / 1000.0;
    while (impl(&f->a)->msg.prune.running && mono_s() < until)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(impl(&f->a)->msg.prune.running);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->a.store, &st);
    assert_int_equal(st.history_pruned, N);
    assert_true(impl(&f->a)->msg.prune.steps >= 5 * N / 100);
    expect(f, "a", NULL, 0, UINT64_MAX, LIST("p a>b @86400000 live"));
    assert_int_equal(keys("rtmd:{*}:m:*"), 1);
    assert_int_equal(keys("rtmd:{" APP0 "}:h*"), 4); /* hm, hs:a, hp:a/b, hr:b */
    assert_int_equal(keys("rtmd:{" APP1 "}:*"), 2);  /* meta, regions */
}

/* A pass starts by itself, from a message call, at most every minute. */
static void test_prune_starts_from_calls(void **state)
{
    struct fixture *f = *state;
    const uint64_t now = open_retaining_60s(f, &f->a);
    assert_int_equal(put(f, &f->a, 0, RTMD_MSG_PEER, "a", "b", "old", now - DAY, NULL), 0);
    impl(&f->a)->msg.prune.next_ms = 0;
    assert_int_equal(put(f, &f->a, 0, RTMD_MSG_PEER, "a", "b", "new", now, NULL), 0);
    double until = mono_s() + WAIT_MS / 1000.0;
    while (impl(&f->a)->msg.prune.running && mono_s() < until)
        uv_run(&f->loop, UV_RUN_ONCE);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->a.store, &st);
    assert_int_equal(st.history_pruned, 1);
    assert_true(impl(&f->a)->msg.prune.next_ms > rtmd_mono_ms() + 50000);
    assert_int_equal(put(f, &f->a, 0, RTMD_MSG_PEER, "a", "b", "old", now - DAY, NULL), 0);
    assert_false(impl(&f->a)->msg.prune.running);
}

/* Two nodes on one Redis are one history: what one keeps, the other
 * finds, in arrival order across them; a node that closes and opens again
 * finds it too. */
static void test_two_nodes_share_one_history(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    node_open(f, &f->b);
    put_data_set(f, &f->a);
    expect_on(f, &f->b, NULL, "news", T0, T0 + 100, LIST(M3, M4, M8, M9));
    expect_on(f, &f->b, "alice", NULL, T0, T0 + 100, LIST(M1, M3, M6, M7, M8));
    /* A message with m6's ms kept by the other node sorts after it. */
    assert_int_equal(put(f, &f->b, 0, RTMD_MSG_PEER, "alice", "bob", "a>b 3", T0 + 5, NULL), 0);
    expect_on(f, &f->a, "alice", "bob", T0, T0 + 100, LIST(M1, M6, "p alice>bob @5 a>b 3"));
    node_close(f, &f->a);
    node_open(f, &f->a);
    expect(f, "alice", "bob", T0, T0 + 100, LIST(M1, M6, "p alice>bob @5 a>b 3"));
    /* Each node counts what it kept. */
    struct rtmd_store_stats st;
    rtmd_store_stats(f->b.store, &st);
    assert_int_equal(st.history_kept, 1);
}

/* Payload i of test_query_in_pieces: 1,199 bytes. */
static void big_payload(char *out, size_t cap, int i)
{
    memset(out, 'a' + i % 26, cap - 1);
    out[cap - 1] = '\0';
    char head[8];
    snprintf(head, sizeof(head), "%03d-", i);
    memcpy(out, head, 4);
}

/* A page larger than a reply may carry comes in pieces, in order. */
static void test_query_in_pieces(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    char payload[1200];
    struct result r[60];
    for (int i = 0; i < 60; i++) {
        big_payload(payload, sizeof(payload), i);
        memset(&r[i], 0, sizeof(r[i]));
        assert_int_equal(put_submit(&f->a, 0, i % 2 ? RTMD_MSG_CHANNEL : RTMD_MSG_PEER, "s",
                                    i % 2 ? "room" : "d", payload, T0 + (uint64_t)i,
                                    i % 2 ? LIST("d") : NULL, &r[i]),
                         0);
    }
    await_n(f, &r[59].calls, 1);
    impl(&f->a)->msg.reply_bytes = 5000; /* about four messages a reply */
    for (int desc = 0; desc < 2; desc++) {
        struct rtmd_history_query q = q_make(NULL, "d", T0, T0 + 100);
        q.offset = 3;
        q.limit = 50;
        q.desc = desc;
        struct got g;
        assert_int_equal(query(f, &f->a, 0, &q, &g), 0);
        assert_int_equal(g.n, 50);
        for (int k = 0; k < 50; k++) {
            int i = desc ? 59 - 3 - k : 3 + k;
            char want[1300];
            big_payload(payload, sizeof(payload), i);
            snprintf(want, sizeof(want), "%s @%d %s", i % 2 ? "c s>room" : "p s>d", i, payload);
            assert_string_equal(g.m[k], want);
        }
        got_free(&g);
    }
}

/* ---- handles ---- */

struct handled {
    int calls;
    int status;
    char handle[64];
    struct rtmd_history_query q;
    char src[65], dst[65];
};

static void on_handle(void *arg, int status, const char *handle)
{
    struct handled *h = arg;
    h->calls++;
    h->status = status;
    snprintf(h->handle, sizeof(h->handle), "%s", handle ? handle : "");
}

static void on_taken(void *arg, int status, const struct rtmd_history_query *q)
{
    struct handled *h = arg;
    h->calls++;
    h->status = status;
    if (status == 0) {
        h->q = *q;
        snprintf(h->src, sizeof(h->src), "%.*s", (int)q->source.len,
                 q->source.p ? q->source.p : "");
        snprintf(h->dst, sizeof(h->dst), "%.*s", (int)q->destination.len,
                 q->destination.p ? q->destination.p : "");
        h->q.source.p = q->source.p ? h->src : NULL;
        h->q.destination.p = q->destination.p ? h->dst : NULL;
    }
}

static int handle_put(struct fixture *f, struct node *n, int app,
                      const struct rtmd_history_query *q, uint64_t ttl_ms, struct handled *h)
{
    memset(h, 0, sizeof(*h));
    return await_cb(f, rtmd_store_handle_put(n->store, &n->apps[app], q, ttl_ms, on_handle, h),
                    &h->calls, &h->status);
}

static int handle_take(struct fixture *f, struct node *n, int app, const char *handle,
                       struct handled *h)
{
    memset(h, 0, sizeof(*h));
    int rc = rtmd_store_handle_take(n->store, &n->apps[app], rtmd_str_cstr(handle), on_taken, h);
    return await_cb(f, rc, &h->calls, &h->status);
}

static void test_handles_across_nodes(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    node_open(f, &f->b);
    struct rtmd_history_query q = q_make("alice", "news", T0, T0 + 5);
    q.offset = 40;
    q.limit = 50;
    q.desc = true;
    q.min_ms = T0 - 7;
    struct handled put1, put2, got;
    assert_int_equal(handle_put(f, &f->a, 0, &q, 600000, &put1), 0);
    assert_int_equal(strlen(put1.handle), 22);
    for (const char *p = put1.handle; *p; p++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    assert_int_equal(handle_put(f, &f->a, 0, &q, 600000, &put2), 0);
    assert_string_not_equal(put1.handle, put2.handle);

    /* Another app cannot take it, and does not use it up. */
    assert_int_equal(handle_take(f, &f->b, 1, put1.handle, &got), -ENOENT);
    /* Once, on any node, with the query as it was put. */
    assert_int_equal(handle_take(f, &f->b, 0, put1.handle, &got), 0);
    assert_string_equal(got.src, "alice");
    assert_string_equal(got.dst, "news");
    assert_int_equal(got.q.start_ms, T0);
    assert_int_equal(got.q.end_ms, T0 + 5);
    assert_int_equal(got.q.offset, 40);
    assert_int_equal(got.q.limit, 50);
    assert_int_equal(got.q.min_ms, T0 - 7);
    assert_true(got.q.desc);
    assert_int_equal(handle_take(f, &f->a, 0, put1.handle, &got), -ENOENT);
    assert_int_equal(handle_take(f, &f->b, 0, put1.handle, &got), -ENOENT);
    /* Unknown names, of any length. */
    assert_int_equal(handle_take(f, &f->a, 0, "AAAAAAAAAAAAAAAAAAAAAA", &got), -ENOENT);
    assert_int_equal(handle_take(f, &f->a, 0, "", &got), -ENOENT);
    assert_int_equal(handle_take(f, &f->a, 0, "x/y?z", &got), -ENOENT);

    /* A destination-only query keeps its source unset. */
    struct rtmd_history_query d = q_make(NULL, "bob", T0, T0);
    assert_int_equal(handle_put(f, &f->a, 0, &d, 600000, &put1), 0);
    assert_int_equal(handle_take(f, &f->b, 0, put1.handle, &got), 0);
    assert_null(got.q.source.p);
    assert_string_equal(got.dst, "bob");
    assert_false(got.q.desc);

    /* Expiry (Redis's own, after ttl_ms). */
    assert_int_equal(handle_put(f, &f->a, 0, &q, 1, &put1), 0);
    pause_ms(30);
    assert_int_equal(handle_take(f, &f->b, 0, put1.handle, &got), -ENOENT);
    assert_int_equal(handle_take(f, &f->b, 0, put2.handle, &got), 0);
    assert_int_equal(keys("rtmd:{*}:q:*"), 0);

    /* Bad queries fail synchronously. */
    struct handled never = {0};
    struct rtmd_history_query bad = q_make(NULL, NULL, T0, T0);
    assert_int_equal(
        rtmd_store_handle_put(f->a.store, &f->a.apps[0], &bad, 1000, on_handle, &never), -EINVAL);
    assert_int_equal(rtmd_store_handle_put(f->a.store, &f->a.apps[0], &q, 0, on_handle, &never),
                     -EINVAL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(never.calls, 0);
}

/* A handle that Redis holds in a shape no node makes is a store error,
 * not a crash or a query of garbage. */
static void test_handle_malformed_in_redis(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    const char *bad[] = {"",
                         "1\n2\n3",
                         "9\n0\n1\n0\n20\n0\nx\n",
                         "1\n0\n1\n0\n0\n0\nx\n",
                         "1\n0\n1\n0\n20\n0\nx/y\n",
                         "2\n0\n1\n0\n20\n0\nx\n"};
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(bad); i++) {
        const char *argv[] = {"SET", "rtmd:{" APP0 "}:q:BBBBBBBBBBBBBBBBBBBBBB", bad[i]};
        char line[64];
        assert_true(redis_command(3, argv, line, sizeof(line), NULL, 0));
        struct handled got;
        assert_int_equal(handle_take(f, &f->a, 0, "BBBBBBBBBBBBBBBBBBBBBB", &got), RTMD_ESTORE);
    }
}

/* ---- offline messages: the embedded store's scenarios ---- */

static int oput_submit(struct node *n, int app, const char *src, const char *dst,
                       const char *payload, uint64_t ms, uint32_t max, uint64_t ttl_ms,
                       struct result *r)
{
    struct rtmd_message m = {RTMD_MSG_PEER, rtmd_str_cstr(src), rtmd_str_cstr(dst),
                             rtmd_str_cstr(payload), ms};
    return rtmd_store_offline_put(n->store, &n->apps[app], &m, max, ttl_ms, on_done, r);
}

static int oput(struct fixture *f, int app, const char *src, const char *dst, const char *payload,
                uint64_t ms, uint32_t max, uint64_t ttl_ms)
{
    struct result r = {0, 0};
    return await_cb(f, oput_submit(&f->a, app, src, dst, payload, ms, max, ttl_ms, &r), &r.calls,
                    &r.status);
}

static void on_otaken(void *arg, int status, const struct rtmd_message_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        assert_int_equal(b->messages[i].type, RTMD_MSG_PEER);
    on_messages(arg, status, b);
}

static int take_submit(struct node *n, int app, const char *uid, struct got *g)
{
    memset(g, 0, sizeof(*g));
    return rtmd_store_offline_take(n->store, &n->apps[app], rtmd_str_cstr(uid), on_otaken, g);
}

static int take_on(struct fixture *f, struct node *n, int app, const char *uid, struct got *g)
{
    return await_cb(f, take_submit(n, app, uid, g), &g->calls, &g->status);
}

static int take(struct fixture *f, int app, const char *uid, struct got *g)
{
    return take_on(f, &f->a, app, uid, g);
}

static void test_offline_cap_newest_replace_oldest(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    /* 250 for bob in one iteration, 3 for carol, 2 for bob in the other app. */
    struct result r[250];
    char payload[16];
    for (int i = 0; i < 250; i++) {
        snprintf(payload, sizeof(payload), "n%03d", i);
        memset(&r[i], 0, sizeof(r[i]));
        assert_int_equal(
            oput_submit(&f->a, 0, "alice", "bob", payload, T0 + (uint64_t)i, 200, WEEK, &r[i]), 0);
    }
    await_n(f, &r[249].calls, 1);
    for (int i = 0; i < 250; i++)
        assert_int_equal(r[i].status, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(oput(f, 0, "alice", "carol", "c", T0 + (uint64_t)i, 200, WEEK), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(oput(f, 1, "alice", "bob", "other", T0 + (uint64_t)i, 200, WEEK), 0);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->a.store, &st);
    assert_int_equal(st.offline_kept, 255);
    assert_int_equal(st.offline_dropped, 50);

    struct got g;
    assert_int_equal(take(f, 0, "bob", &g), 0);
    assert_int_equal(g.n, 200);
    assert_string_equal(g.m[0], "alice>bob @50 n050");
    assert_string_equal(g.m[199], "alice>bob @249 n249");
    got_free(&g);
    assert_int_equal(take(f, 0, "bob", &g), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(take(f, 0, "carol", &g), 0);
    assert_int_equal(g.n, 3);
    got_free(&g);
    assert_int_equal(take(f, 1, "bob", &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.m[0], "alice>bob @0 other");
    got_free(&g);

    /* A smaller cap on a later put trims to it. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(oput(f, 0, "alice", "dave", "d", T0 + (uint64_t)i, 200, WEEK), 0);
    assert_int_equal(oput(f, 0, "alice", "dave", "last", T0 + 9, 2, WEEK), 0);
    rtmd_store_stats(f->a.store, &st);
    assert_int_equal(st.offline_dropped, 54);
    assert_int_equal(take(f, 0, "dave", &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.m[0], "alice>dave @4 d");
    assert_string_equal(g.m[1], "alice>dave @9 last");
    got_free(&g);
    /* Taken: nothing of theirs is left in Redis. */
    assert_int_equal(keys("rtmd:{*}:o*"), 0);
}

static void test_offline_order(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    /* Oldest first by ms, then in the order they were put. */
    assert_int_equal(oput(f, 0, "a", "u", "first@5", T0 + 5, 200, WEEK), 0);
    assert_int_equal(oput(f, 0, "b", "u", "first@3", T0 + 3, 200, WEEK), 0);
    assert_int_equal(oput(f, 0, "c", "u", "second@5", T0 + 5, 200, WEEK), 0);
    assert_int_equal(oput(f, 0, "d", "u", "first@1", T0 + 1, 200, WEEK), 0);
    assert_int_equal(oput(f, 0, "e", "u", "second@3", T0 + 3, 200, WEEK), 0);
    struct got g;
    assert_int_equal(take(f, 0, "u", &g), 0);
    assert_int_equal(g.n, 5);
    assert_string_equal(g.m[0], "d>u @1 first@1");
    assert_string_equal(g.m[1], "b>u @3 first@3");
    assert_string_equal(g.m[2], "e>u @3 second@3");
    assert_string_equal(g.m[3], "a>u @5 first@5");
    assert_string_equal(g.m[4], "c>u @5 second@5");
    got_free(&g);

    /* Over the cap, the oldest by that order goes: here the one put at
     * ms 1, although it was put last. */
    assert_int_equal(oput(f, 0, "a", "v", "x@5", T0 + 5, 2, WEEK), 0);
    assert_int_equal(oput(f, 0, "a", "v", "y@5", T0 + 5, 2, WEEK), 0);
    assert_int_equal(oput(f, 0, "a", "v", "old@1", T0 + 1, 2, WEEK), 0);
    assert_int_equal(take(f, 0, "v", &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.m[0], "a>v @5 x@5");
    assert_string_equal(g.m[1], "a>v @5 y@5");
    got_free(&g);
}

static void test_offline_expiry_and_prune(void **state)
{
    struct fixture *f = *state;
    const uint64_t now = T0 + WEEK;
    rtmd_clock_freeze(now);
    node_open(f, &f->a);
    /* Expires at ms + ttl: one already gone, one at the edge, one live. */
    assert_int_equal(oput(f, 0, "a", "u", "gone", now - 2000, 200, 1000), 0);
    assert_int_equal(oput(f, 0, "a", "u", "edge", now - 1000, 200, 1000), 0);
    assert_int_equal(oput(f, 0, "a", "u", "live", now - 999, 200, 1000), 0);
    assert_int_equal(oput(f, 0, "a", "w", "later", now, 200, 1000), 0);
    assert_int_equal(oput(f, 0, "a", "y", "stays", now, 200, WEEK), 0);
    struct got g;
    assert_int_equal(take(f, 0, "u", &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "a>u @604799001 live");
    got_free(&g);

    /* Expired messages do not count as dropped when the cap is reached:
     * they are removed first. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(oput(f, 0, "a", "x", "short", now, 3, 10), 0);
    rtmd_clock_freeze(now + 10);
    assert_int_equal(oput(f, 0, "a", "x", "fresh", now + 10, 3, 1000), 0);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->a.store, &st);
    assert_int_equal(st.offline_dropped, 0);
    assert_int_equal(take(f, 0, "x", &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "a>x @604800010 fresh");
    got_free(&g);

    /* The prune removes a receiver whose every message expired and was
     * never taken, and keeps the others. */
    rtmd_clock_freeze(now + 1000);
    prune(f, &f->a);
    assert_int_equal(keys("rtmd:{*}:o*:w"), 0);
    assert_int_equal(keys("rtmd:{*}:o*:y"), 3);
    assert_int_equal(take(f, 0, "w", &g), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(take(f, 0, "y", &g), 0);
    assert_int_equal(g.n, 1);
    got_free(&g);
    assert_int_equal(keys("rtmd:{*}:o*"), 0);
}

static void test_offline_put_after_take(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    node_open(f, &f->b);
    /* Put, take, put in one iteration: the take gets the first, the second
     * waits for the next take. */
    struct result r1 = {0, 0}, r2 = {0, 0};
    struct got g;
    assert_int_equal(oput_submit(&f->a, 0, "a", "u", "before", T0, 200, WEEK, &r1), 0);
    assert_int_equal(take_submit(&f->a, 0, "u", &g), 0);
    assert_int_equal(oput_submit(&f->a, 0, "a", "u", "after", T0 + 1, 200, WEEK, &r2), 0);
    await_n(f, &r2.calls, 1);
    assert_int_equal(r1.calls + g.calls, 2);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "a>u @0 before");
    got_free(&g);
    /* Taken on another node. */
    assert_int_equal(take_on(f, &f->b, 0, "u", &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "a>u @1 after");
    got_free(&g);
    /* And across a close and an open. */
    assert_int_equal(oput(f, 0, "a", "u", "third", T0 + 2, 200, WEEK), 0);
    node_close(f, &f->a);
    node_open(f, &f->a);
    assert_int_equal(take(f, 0, "u", &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0], "a>u @2 third");
    got_free(&g);
}

/* A queue larger than a reply may carry is taken in pieces, all of it, in
 * order; expired messages among them are removed, not returned. */
static void test_offline_take_in_pieces(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    struct result r[120];
    for (int i = 0; i < 120; i++) {
        char payload[64];
        snprintf(payload, sizeof(payload), "message %03d with some padding to make it long", i);
        memset(&r[i], 0, sizeof(r[i]));
        assert_int_equal(oput_submit(&f->a, 0, "a", "u", payload, T0 + (uint64_t)i, 200,
                                     i % 10 == 9 ? 1 : WEEK, &r[i]),
                         0);
    }
    await_n(f, &r[119].calls, 1);
    impl(&f->a)->msg.reply_bytes = 500; /* about 6 messages a step */
    struct got g;
    assert_int_equal(take(f, 0, "u", &g), 0);
    assert_int_equal(g.n, 108);
    for (size_t k = 0, i = 0; k < g.n; k++, i++) {
        if (i % 10 == 9)
            i++;
        char want[96];
        snprintf(want, sizeof(want), "a>u @%zu message %03zu with some padding to make it long", i,
                 i);
        assert_string_equal(g.m[k], want);
    }
    got_free(&g);
    assert_int_equal(keys("rtmd:{*}:o*"), 0);
}

static void test_offline_invalid_calls(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    struct result r = {0, 0};
    struct rtmd_message m = {RTMD_MSG_CHANNEL, RTMD_STR_LIT("a"), RTMD_STR_LIT("c"),
                             RTMD_STR_LIT("x"), T0};
    struct rtmd_app *app = &f->a.apps[0];
    struct rtmd_store *s = f->a.store;
    assert_int_equal(rtmd_store_offline_put(s, app, &m, 200, WEEK, on_done, &r), -EINVAL);
    m.type = RTMD_MSG_PEER;
    assert_int_equal(rtmd_store_offline_put(s, app, &m, 0, WEEK, on_done, &r), -EINVAL);
    assert_int_equal(rtmd_store_offline_put(s, app, &m, 200, 0, on_done, &r), -EINVAL);
    m.dst = RTMD_STR_NULL;
    assert_int_equal(rtmd_store_offline_put(s, app, &m, 200, WEEK, on_done, &r), -EINVAL);
    m.dst = RTMD_STR_LIT("has\nnewline");
    assert_int_equal(rtmd_store_offline_put(s, app, &m, 200, WEEK, on_done, &r), -EINVAL);
    struct got g = {0};
    assert_int_equal(rtmd_store_offline_take(s, app, RTMD_STR_NULL, on_otaken, &g), -EINVAL);
    assert_int_equal(rtmd_store_offline_take(s, app, RTMD_STR_LIT("a/b"), on_otaken, &g), -EINVAL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(r.calls, 0);
    assert_int_equal(g.calls, 0);
    /* A ttl past what a score holds exactly is kept as long as it can be. */
    m.dst = RTMD_STR_LIT("u");
    assert_int_equal(await_cb(f, rtmd_store_offline_put(s, app, &m, 200, UINT64_MAX, on_done, &r),
                              &r.calls, &r.status),
                     0);
    assert_int_equal(take(f, 0, "u", &g), 0);
    assert_int_equal(g.n, 1);
    got_free(&g);
    /* After close: refused. */
    struct rtmd_store *closing = f->a.store;
    int closed = 0;
    rtmd_store_close(closing, on_closed, &closed);
    assert_int_equal(rtmd_store_offline_take(closing, app, RTMD_STR_LIT("u"), on_otaken, &g),
                     RTMD_ECLOSED);
    await_n(f, &closed, 1);
    f->a.store = NULL;
}

/* ---- a stalled Redis ---- */

/*
 * Calls that reach Redis after their deadline do nothing: a take answered
 * -ETIMEDOUT took nothing, a put answered -ETIMEDOUT kept nothing, a handle
 * take answered -ETIMEDOUT left the handle, even though a stopped Redis
 * runs them all once it continues.
 */
static void test_late_calls_do_nothing(void **state)
{
    struct fixture *f = *state;
    rtmd_clock_freeze(0); /* the deadlines need time to pass */
    f->a.cfg.redis_timeout_ms = 300;
    node_open(f, &f->a);
    uint64_t now = rtmd_now_ms();
    assert_int_equal(oput(f, 0, "a", "u", "kept", now, 200, WEEK), 0);
    struct rtmd_history_query q = q_make("a", NULL, 0, UINT64_MAX);
    struct handled h;
    assert_int_equal(handle_put(f, &f->a, 0, &q, 600000, &h), 0);
    char name[64];
    snprintf(name, sizeof(name), "%s", h.handle);

    kill(srv.pid, SIGSTOP);
    struct got g;
    struct result r = {0, 0}, o = {0, 0};
    assert_int_equal(take_submit(&f->a, 0, "u", &g), 0);
    assert_int_equal(put_submit(&f->a, 0, RTMD_MSG_PEER, "a", "b", "late", now, NULL, &r), 0);
    assert_int_equal(oput_submit(&f->a, 0, "a", "v", "late", now, 200, WEEK, &o), 0);
    struct handled ht = {0};
    assert_int_equal(
        rtmd_store_handle_take(f->a.store, &f->a.apps[0], rtmd_str_cstr(name), on_taken, &ht), 0);
    await_n(f, &ht.calls, 1);
    assert_int_equal(g.status, -ETIMEDOUT);
    assert_int_equal(r.status, -ETIMEDOUT);
    assert_int_equal(o.status, -ETIMEDOUT);
    assert_int_equal(ht.status, -ETIMEDOUT);
    pause_ms(200);
    kill(srv.pid, SIGCONT);
    /* Redis ran them late; the connection may have been dropped as stuck
     * meanwhile: wait for it to be up again. */
    double until = mono_s() + WAIT_MS / 1000.0;
    while (!impl(&f->a)->up && mono_s() < until)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(impl(&f->a)->up);
    /* From here on, calls that must succeed: a loaded machine may take more
     * than 300 ms right after the reconnection (the scripts load first). */
    f->a.cfg.redis_timeout_ms = 5000;
    assert_int_equal(take(f, 0, "u", &g), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.m[0] + strlen(g.m[0]) - 4, "kept");
    got_free(&g);
    assert_int_equal(take(f, 0, "v", &g), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(keys("rtmd:{*}:m:*"), 0);
    assert_int_equal(handle_take(f, &f->a, 0, name, &ht), 0);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->a.store, &st);
    assert_int_equal(st.history_kept, 0);
    assert_int_equal(st.offline_kept, 1);
}

/* Redis out of memory (maxmemory reached, nothing to evict): the writes
 * answer -ENOSPC (the API's 503) and keep nothing; reads go on. */
static void test_out_of_memory_is_enospc(void **state)
{
    struct fixture *f = *state;
    node_open(f, &f->a);
    assert_int_equal(put(f, &f->a, 0, RTMD_MSG_PEER, "a", "b", "before", T0, NULL), 0);
    const char *full[] = {"CONFIG", "SET", "maxmemory", "1"};
    const char *room[] = {"CONFIG", "SET", "maxmemory", "0"};
    char line[64];
    assert_true(redis_command(4, full, line, sizeof(line), NULL, 0));
    assert_int_equal(put(f, &f->a, 0, RTMD_MSG_CHANNEL, "a", "c", "x", T0, LIST("b")), -ENOSPC);
    assert_int_equal(oput(f, 0, "a", "b", "x", T0, 200, WEEK), -ENOSPC);
    struct rtmd_history_query q = q_make(NULL, "b", T0, T0 + 10);
    struct handled h;
    assert_int_equal(handle_put(f, &f->a, 0, &q, 1000, &h), -ENOSPC);
    assert_int_equal(count(f, &f->a, 0, &q), 1);
    assert_true(redis_command(4, room, line, sizeof(line), NULL, 0));
    assert_int_equal(keys("rtmd:{*}:m:*"), 1);
    assert_int_equal(keys("rtmd:{*}:o*"), 0);
    struct rtmd_store_stats st;
    rtmd_store_stats(f->a.store, &st);
    assert_int_equal(st.history_kept, 1);
    assert_int_equal(st.offline_kept, 0);
}

/* ---- measurements (RTMD_BENCH=1) ---- */

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* Redis's own time for the scripts since the last reset, in us per call. */
static double redis_usec_per_call(void)
{
    static const char script[] =
        "local s = redis.call('INFO', 'commandstats') "
        "local u, c = 0, 0 "
        "for cu, cc in string.gmatch(s, 'cmdstat_evalsha:calls=(%d+),usec=(%d+)') "
        "do u = u + cc c = c + cu end "
        "if c == 0 then return 0 end return math.floor(u * 10 / c)";
    const char *argv[] = {"EVAL", script, "0"};
    return (double)redis_int(3, argv) / 10;
}

/* The CPU time redis-server used so far (user + system), in us: unlike the
 * scripts' wall time, not inflated by other processes on a loaded machine. */
static double redis_cpu_us(void)
{
    static const char script[] = "local s = redis.call('INFO', 'cpu') "
                                 "local u = tonumber(string.match(s, 'used_cpu_user:([%d.]+)')) "
                                 "local y = tonumber(string.match(s, 'used_cpu_sys:([%d.]+)')) "
                                 "return math.floor((u + y) * 1000000)";
    const char *argv[] = {"EVAL", script, "0"};
    return (double)redis_int(3, argv);
}

static long long redis_used_memory(void)
{
    static const char script[] = "return tonumber(string.match(redis.call('INFO', 'memory'), "
                                 "'used_memory:(%d+)'))";
    const char *argv[] = {"EVAL", script, "0"};
    return redis_int(3, argv);
}

static void redis_reset_stats(void)
{
    const char *argv[] = {"CONFIG", "RESETSTAT"};
    char line[64];
    assert_true(redis_command(2, argv, line, sizeof(line), NULL, 0));
}

/* Puts RUNS channel messages to n members, one at a time: the median
 * latency (call to callback) and Redis's time per script. */
static void bench_channel_put(struct fixture *f, size_t n)
{
    enum { RUNS = 21 };
    char(*names)[16] = rtmd_malloc(n * sizeof(*names));
    struct rtmd_str *to = rtmd_malloc(n * sizeof(*to));
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "member%zu", i);
        to[i] = rtmd_str_cstr(names[i]);
    }
    double lat[RUNS];
    redis_reset_stats();
    double cpu = redis_cpu_us();
    for (int i = 0; i < RUNS; i++) {
        struct rtmd_message m =
            msg_make(RTMD_MSG_CHANNEL, "sender", "bigroom", "a channel message", T0 + (uint64_t)i);
        struct result r = {0, 0};
        double t = mono_s();
        assert_int_equal(
            await_cb(f, rtmd_store_history_put(f->a.store, &f->a.apps[0], &m, to, n, on_done, &r),
                     &r.calls, &r.status),
            0);
        lat[i] = (mono_s() - t) * 1e3;
    }
    double usec = redis_usec_per_call();
    cpu = (redis_cpu_us() - cpu) / RUNS;
    qsort(lat, RUNS, sizeof(lat[0]), cmp_double);
    print_message("history_put, channel message to %zu members: p50 %.2f ms, max %.2f ms "
                  "(Redis: %.0f us a script, %.0f us of CPU a put)\n",
                  n, lat[RUNS / 2], lat[RUNS - 1], usec, cpu);
    free(names);
    free(to);
}

static void bench_query(struct fixture *f, const char *what, struct rtmd_history_query q)
{
    enum { RUNS = 21 };
    double lat[RUNS];
    size_t rows = 0;
    redis_reset_stats();
    double cpu = redis_cpu_us();
    for (int i = 0; i < RUNS; i++) {
        struct got g;
        double t = mono_s();
        assert_int_equal(query(f, &f->a, 0, &q, &g), 0);
        lat[i] = (mono_s() - t) * 1e3;
        rows = g.n;
        got_free(&g);
    }
    double usec = redis_usec_per_call();
    cpu = (redis_cpu_us() - cpu) / RUNS;
    qsort(lat, RUNS, sizeof(lat[0]), cmp_double);
    print_message("  %-44s %3zu rows: p50 %.2f ms (Redis: %.0f us a script, %.0f us of CPU)\n",
                  what, rows, lat[RUNS / 2], usec, cpu);
}

static void test_bench(void **state)
{
    if (!getenv("RTMD_BENCH"))
        skip();
    struct fixture *f = *state;
    node_open(f, &f->a);
    /* 20,000 messages: half peer to "bob", half to channel "bob" (so a
     * destination query merges two sets), from "alice", 4 a millisecond. */
    enum { N = 20000, WINDOW = 2000 };
    long long mem = redis_used_memory();
    double t0 = mono_s();
    struct result *r = rtmd_calloc(N, sizeof(*r));
    const char *const to[] = {"carol", NULL};
    for (int i = 0; i < N; i++) {
        assert_int_equal(put_submit(&f->a, 0, i % 2 ? RTMD_MSG_CHANNEL : RTMD_MSG_PEER, "alice",
                                    "bob", "some message text", T0 + (uint64_t)i / 4,
                                    i % 2 ? to : NULL, &r[i]),
                         0);
        if (i % WINDOW == WINDOW - 1)
            await_n(f, &r[i].calls, 1);
    }
    double put_s = mono_s() - t0;
    for (int i = 0; i < N; i++)
        assert_int_equal(r[i].status, 0);
    free(r);
    print_message("%d puts (17-byte payloads; channel ones to 1 member), %d in flight: %.0f/s; "
                  "Redis memory %.0f bytes a message\n",
                  N, WINDOW, N / put_s, (double)(redis_used_memory() - mem) / N);
    print_message("queries over %d messages:\n", N);
    struct rtmd_history_query q = q_make(NULL, "bob", T0, T0 + DAY);
    bench_query(f, "destination (two sets), offset 0", q);
    q.offset = 10000;
    bench_query(f, "destination (two sets), offset 10000", q);
    q.desc = true;
    bench_query(f, "destination (two sets), offset 10000 desc", q);
    q = q_make("alice", NULL, T0, T0 + DAY);
    bench_query(f, "source (one set), offset 0", q);
    q.offset = 10000;
    bench_query(f, "source (one set), offset 10000", q);
    q = q_make("alice", "bob", T0, T0 + DAY);
    q.offset = 10000;
    bench_query(f, "source + destination, offset 10000", q);

    bench_channel_put(f, 1000);
    bench_channel_put(f, 10000);
    /* Everything expires (the clock only moves forward: see the deadlines). */
    rtmd_clock_freeze(T0 + 30 * DAY);
    struct rtmd_store_stats st0, st1;
    rtmd_store_stats(f->a.store, &st0);
    double t = mono_s();
    prune(f, &f->a);
    rtmd_store_stats(f->a.store, &st1);
    print_message("prune of %llu messages (%d of them to 1,000 and 10,000 members): %.0f ms in "
                  "%llu steps\n",
                  (unsigned long long)(st1.history_pruned - st0.history_pruned), 42,
                  (mono_s() - t) * 1e3, (unsigned long long)impl(&f->a)->msg.prune.steps);
    assert_int_equal(message_keys(), 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_filter_shapes),
        T(test_time_bounds_inclusive),
        T(test_offset_limit_order),
        T(test_paging_matches_a_model),
        T(test_invalid_calls_fail_synchronously),
        T(test_read_your_writes_and_order),
        T(test_retention),
        T(test_prune_in_steps_between_calls),
        T(test_prune_starts_from_calls),
        T(test_two_nodes_share_one_history),
        T(test_query_in_pieces),
        T(test_handles_across_nodes),
        T(test_handle_malformed_in_redis),
        T(test_offline_cap_newest_replace_oldest),
        T(test_offline_order),
        T(test_offline_expiry_and_prune),
        T(test_offline_put_after_take),
        T(test_offline_take_in_pieces),
        T(test_offline_invalid_calls),
        T(test_late_calls_do_nothing),
        T(test_out_of_memory_is_enospc),
        T(test_bench),
    };
    rtmd_log_level = RTMD_LOG_WARN;
    if (!redis_server_bin()) {
        printf("test_redis_msg: skipped: redis-server not found (%s; set RTMD_REDIS_SERVER or "
               "install redis-server)\n",
               REDIS_SERVER_DEFAULT);
        return 0;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
