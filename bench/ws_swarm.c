/*
 * ws_swarm.c — plain WebSocket clients of rtmd that exchange messages: the
 * load generator of bench/fanout and bench/peer-rtt. It needs nothing beyond
 * libc and, for --tls, OpenSSL (it ignores librtmd.a).
 *
 *   build/bench/ws_swarm --mode members|publisher|pairs --port P --app APPID
 *       [--count N] [--sources A,B,...] [--host 127.0.0.1] [--inflight N]
 *       [--uid-prefix PFX] [--channel NAME] [--payload-bytes N] [--timeout S]
 *       [--tls] [--quiet]
 *
 * Modes:
 *   members    --count connections log in (uid PFX<i>) and join --channel;
 *              each then counts the channel_message pushes it receives and
 *              their publish-to-receive latency.
 *   publisher  --count connections log in and join --channel; a run then
 *              publishes at a fixed total rate, message k from connection
 *              k mod count, without waiting for the replies.
 *   pairs      --count pairs: connection 2j logs in as PFX a<j>, 2j+1 as
 *              PFX b<j>. A run sends peer messages a<j> -> b<j> at a fixed
 *              total rate (message k from pair k mod count); b<j> sends each
 *              one back to a<j> as soon as it arrives, and a<j> measures the
 *              round trip (b<j> the one-way time).
 *
 * A sent payload is "<run>:<seq>:<send time>:" padded with 'x' to
 * --payload-bytes; the send time is CLOCK_MONOTONIC ns, which every process
 * of the machine shares, so a receiver subtracts it from its own clock (read
 * once per recv(), i.e. when this process read the bytes). Members also ask
 * the kernel for the time the bytes reached their socket (SO_TIMESTAMPNS; on
 * loopback, when rtmd's write() handed them over), so a run splits each
 * latency into "arrival" (send -> in the member's socket: rtmd and the
 * kernel) and "read_lag" (in the socket -> read by this tool: the load
 * generator's own delay).
 *
 * Setup: connections are bound to the --sources addresses in turn (bind()
 * with IP_BIND_ADDRESS_NO_PORT before a non-blocking connect()); at most
 * --inflight of them are in setup at once; each sends the upgrade for
 * /v1/rtm, then login, then (members, publisher) join, each after the reply
 * to the previous one. Pushes that are not measured (member_joined,
 * member_left) are counted and dropped.
 *
 * Control: lines on stdin; output: one line each on stdout, flushed, ending
 * in one JSON object:
 *   (start)             setup -> "READY {...}"
 *   go RUN T0 RATE DUR  starts run RUN: receivers reset their counts; senders
 *                       send RATE messages/s from time T0 (CLOCK_MONOTONIC
 *                       ns) for DUR seconds, then wait for every reply ->
 *                       "SENT {...}" (publisher, pairs)
 *   stop SENT GRACE_MS  receivers (members, pairs) end the run when every
 *                       receiver has all SENT messages (pairs: every round
 *                       trip came back), or when nothing arrived for
 *                       GRACE_MS -> "RESULT {...}"
 *   quit, or EOF        closes every socket -> "BYE {...}", exits
 * Latencies are histograms, "hist":[[low_us,width_us,count],...], exact
 * below 128 us and within 1/64 above, plus the exact maximum.
 *
 * --tls: every connection is wss://: a full TLS handshake (no certificate
 * check, no resumption) after the TCP connect, then the same upgrade and
 * frames inside TLS; the kernel receive time (arrival, read_lag) is then not
 * taken, only the latency.
 *
 * --read-interval-us N (members): during a run, sleep N us before each
 * epoll_wait(), so the process reads its sockets in batches instead of
 * being woken by each write (read_lag then includes up to N us).
 *
 * Exit status: 0 when every connection was set up and none was lost, 1
 * otherwise, 2 on bad arguments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "wsload.h"

#define MAX_SOURCES 64
#define RBUF_SIZE   (256 * 1024) /* one read buffer for every connection */
#define CARRY_EXTRA 1024         /* a partial frame kept: payload + this */
/* ... and at least this: a join's reply lists up to 512 members (uids of
 * this tool's prefixes: under 24 bytes each). */
#define CARRY_MIN  (16 * 1024)
#define MAX_EVENTS 1024
#define STDIN_TAG  UINT32_MAX
#define TIMER_TAG  (UINT32_MAX - 1)
#define HIST_EXACT 128 /* microseconds counted one by one */
#define HIST_SUB   64  /* buckets per power of two above that */
#define HIST_N     (HIST_EXACT + 36 * HIST_SUB)

enum mode { MODE_MEMBERS, MODE_PUBLISHER, MODE_PAIRS };

enum state {
    ST_IDLE,       /* not started */
    ST_CONNECTING, /* connect() in progress */
    ST_TLS,        /* --tls: TLS handshake in progress */
    ST_HANDSHAKE,  /* upgrade request sent, waiting for the 101 */
    ST_LOGIN,      /* login sent */
    ST_JOIN,       /* join sent */
    ST_READY,      /* set up: measuring */
    ST_FAILED,     /* setup failed, or lost afterwards */
    ST_DONE,       /* closed by us at the end */
};

enum failure {
    F_SOCKET,    /* socket()/bind() failed */
    F_CONNECT,   /* connect() failed */
    F_HANDSHAKE, /* not a 101, or closed during the handshake */
    F_LOGIN,     /* login not answered ok */
    F_JOIN,      /* join not answered ok */
    F_TIMEOUT,   /* setup not finished in --timeout */
    F_LOST,      /* closed by rtmd (or a close frame) after setup */
    F_PROTOCOL,  /* a frame this tool cannot take (too large, 64-bit length) */
    F_COUNT
};

static const char *const failure_names[F_COUNT] = {
    "socket", "connect", "handshake", "login", "join", "timeout", "lost", "protocol",
};

struct conn {
    int fd;
    uint8_t state;
    uint8_t src;
    bool want_out;      /* EPOLLOUT is registered */
    uint16_t carry_len; /* bytes of a partial frame kept in carry */
    uint32_t next_id;   /* request ids */
    uint32_t got;       /* this run: messages (members), round trips (pairs a), echoes (b) */
    int64_t last_seq;   /* this run: the last sequence number seen */
    int64_t t_setup;    /* when its setup began */
    char *carry;
    SSL *ssl;  /* --tls only */
    char *out; /* unsent bytes (only after EAGAIN) */
    size_t out_len, out_cap;
};

struct hist {
    uint64_t n[HIST_N];
    uint64_t count;
    int64_t max_ns;
};

static struct {
    enum mode mode;
    const char *host;
    unsigned port;
    unsigned peer_port; /* pairs: where b<j> connect (another node); 0: --port */
    uint32_t count;
    struct in_addr sources[MAX_SOURCES];
    unsigned n_sources;
    uint32_t inflight;
    char uid_prefix[40];
    char app[33];
    char channel[65];
    uint32_t payload_bytes;
    double timeout_s;
    uint32_t read_interval_us; /* members, during a run: pause between polls */
    bool tls;
    bool quiet;
} opt;
static SSL_CTX *ssl_ctx_; /* --tls */

static struct conn *conns_;
static uint32_t n_conns_; /* sockets: count, or 2 x count for pairs */
static int ep_, timer_fd_;
static struct sockaddr_in dst_, peer_dst_;
static char request_[512];
static size_t request_len_;
static char *rbuf_;
static char *sbuf_; /* one frame being built */
static size_t carry_cap_, sbuf_cap_;
static uint64_t failures_[F_COUNT];
static volatile sig_atomic_t interrupted_;

/* setup */
static uint32_t n_started_, n_in_setup_, n_ready_;
static int64_t t_start_, t_ready_;
static struct hist setup_lat_; /* connect to ready, per connection */
static bool ready_printed_;

/* traffic outside runs, and totals */
static uint64_t frames_other_, bytes_in_, stale_;

/* the current run */
static uint32_t run_;
static bool in_run_, sending_, stopping_;
static int64_t t0_, t_half_;
static double rate_;
static uint64_t to_send_, sent_, replies_ok_, replies_err_, delivered_, offline_;
static int64_t t_last_sent_;
static struct hist late_; /* sender: actual send time minus the scheduled one */
static uint64_t send_blocked_;
static size_t out_max_;
static uint64_t expect_, got_total_, order_errors_, lost_in_run_, echoes_;
static uint32_t n_complete_;
static int64_t t_first_recv_, t_last_recv_, t_stop_;
static int64_t grace_ns_;
static uint32_t alive_at_go_;
static struct hist lat_, lat_half_, oneway_;
/* members: the kernel's receive time of the bytes being handled (CLOCK_MONOTONIC
 * ns, converted from its CLOCK_REALTIME stamp with mono_off_), 0 if none */
static int64_t arrived_ns_, mono_off_;
static struct hist arrival_, read_lag_;

/* ---- helpers ------------------------------------------------------------------ */

static void die_usage(const char *msg)
{
    fprintf(stderr, "ws_swarm: %s\n", msg);
    fprintf(stderr,
            "usage: ws_swarm --mode members|publisher|pairs --port P --app APPID [--count N]\n"
            "                [--sources A,B,..] [--host H] [--inflight N] [--uid-prefix PFX]\n"
            "                [--channel NAME] [--payload-bytes N] [--timeout S]\n"
            "                [--peer-port P] [--read-interval-us N] [--tls] [--quiet]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    opt.host = "127.0.0.1";
    opt.count = 100;
    opt.inflight = 1000;
    opt.payload_bytes = 64;
    opt.timeout_s = 300;
    snprintf(opt.channel, sizeof(opt.channel), "bench");
    snprintf(opt.uid_prefix, sizeof(opt.uid_prefix), "s%ld-", (long)getpid());
    bool have_mode = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quiet")) {
            opt.quiet = true;
            continue;
        }
        if (!strcmp(a, "--tls")) {
            opt.tls = true;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            die_usage("help");
        if (!v)
            die_usage("missing value");
        i++;
        if (!strcmp(a, "--mode")) {
            have_mode = true;
            if (!strcmp(v, "members"))
                opt.mode = MODE_MEMBERS;
            else if (!strcmp(v, "publisher"))
                opt.mode = MODE_PUBLISHER;
            else if (!strcmp(v, "pairs"))
                opt.mode = MODE_PAIRS;
            else
                die_usage("--mode is members, publisher or pairs");
        } else if (!strcmp(a, "--host")) {
            opt.host = v;
        } else if (!strcmp(a, "--port")) {
            opt.port = (unsigned)parse_ulong(v, 65535, "--port");
        } else if (!strcmp(a, "--peer-port")) {
            opt.peer_port = (unsigned)parse_ulong(v, 65535, "--peer-port");
        } else if (!strcmp(a, "--count")) {
            opt.count = (uint32_t)parse_ulong(v, 100000, "--count");
        } else if (!strcmp(a, "--sources")) {
            parse_sources(v, opt.sources, &opt.n_sources, MAX_SOURCES);
        } else if (!strcmp(a, "--inflight")) {
            opt.inflight = (uint32_t)parse_ulong(v, 1000000, "--inflight");
        } else if (!strcmp(a, "--uid-prefix")) {
            if (strlen(v) > 24)
                die_usage("--uid-prefix too long (24 at most)");
            snprintf(opt.uid_prefix, sizeof(opt.uid_prefix), "%s", v);
        } else if (!strcmp(a, "--app")) {
            if (strlen(v) != 32)
                die_usage("--app takes a 32-character App ID");
            memcpy(opt.app, v, 33);
        } else if (!strcmp(a, "--channel")) {
            if (strlen(v) < 1 || strlen(v) > 64 || strpbrk(v, "\"\\"))
                die_usage("bad --channel");
            snprintf(opt.channel, sizeof(opt.channel), "%s", v);
        } else if (!strcmp(a, "--payload-bytes")) {
            opt.payload_bytes = (uint32_t)parse_ulong(v, 32768, "--payload-bytes");
        } else if (!strcmp(a, "--read-interval-us")) {
            opt.read_interval_us = (uint32_t)parse_ulong(v, 100000, "--read-interval-us");
        } else if (!strcmp(a, "--timeout")) {
            char *end;
            opt.timeout_s = strtod(v, &end);
            if (end == v || *end || opt.timeout_s <= 0)
                die_usage("bad --timeout");
        } else {
            die_usage("unknown option");
        }
    }
    if (!have_mode || !opt.port || !opt.app[0])
        die_usage("--mode, --port and --app are required");
    if (opt.payload_bytes < 48)
        opt.payload_bytes = 48; /* room for "<run>:<seq>:<time>:" */
    if (opt.inflight == 0)
        opt.inflight = 1;
    if (opt.count == 0)
        die_usage("--count must be at least 1");
    if (opt.n_sources == 0)
        parse_sources("127.0.0.1", opt.sources, &opt.n_sources, MAX_SOURCES);
    if (inet_pton(AF_INET, opt.host, &dst_.sin_addr) != 1)
        die_usage("--host must be an IPv4 address");
    dst_.sin_family = AF_INET;
    dst_.sin_port = htons((uint16_t)opt.port);
    peer_dst_ = dst_;
    if (opt.peer_port)
        peer_dst_.sin_port = htons((uint16_t)opt.peer_port);
}

static bool starts_with(const char *p, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && memcmp(p, prefix, k) == 0;
}

/* ---- histograms ------------------------------------------------------------------ */

static unsigned hist_bucket(int64_t ns)
{
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
    if (us < HIST_EXACT)
        return (unsigned)us;
    unsigned e = 63 - (unsigned)__builtin_clzll(us); /* >= 7 */
    unsigned b = HIST_EXACT + (e - 7) * HIST_SUB + (unsigned)((us >> (e - 6)) & (HIST_SUB - 1));
    return b < HIST_N ? b : HIST_N - 1;
}

static void hist_bounds(unsigned b, uint64_t *low, uint64_t *width)
{
    if (b < HIST_EXACT) {
        *low = b;
        *width = 1;
        return;
    }
    unsigned e = (b - HIST_EXACT) / HIST_SUB + 7, sub = (b - HIST_EXACT) % HIST_SUB;
    *low = (uint64_t)(HIST_SUB + sub) << (e - 6);
    *width = (uint64_t)1 << (e - 6);
}

static void hist_add(struct hist *h, int64_t ns)
{
    h->n[hist_bucket(ns)]++;
    h->count++;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

static void hist_print(const char *name, const struct hist *h)
{
    printf("\"%s\":{\"count\":%llu,\"max_ns\":%lld,\"hist\":[", name, (unsigned long long)h->count,
           (long long)h->max_ns);
    bool first = true;
    for (unsigned b = 0; b < HIST_N; b++) {
        if (!h->n[b])
            continue;
        uint64_t low, width;
        hist_bounds(b, &low, &width);
        printf("%s[%llu,%llu,%llu]", first ? "" : ",", (unsigned long long)low,
               (unsigned long long)width, (unsigned long long)h->n[b]);
        first = false;
    }
    printf("]}");
}

/* ---- connections ------------------------------------------------------------------ */

static void note_failure(enum failure f, uint32_t i, int err, const char *what)
{
    failures_[f]++;
    keep_first_error(i, err, what);
}

static void close_conn(uint32_t i, uint8_t state)
{
    struct conn *c = &conns_[i];
    if (c->ssl) {
        SSL_free(c->ssl); /* no close_notify: the bench closes abruptly, like plain */
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd); /* also removes it from the epoll set */
        c->fd = -1;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_cap = 0;
    c->state = state;
}

static void fail(uint32_t i, enum failure f, int err, const char *what)
{
    struct conn *c = &conns_[i];
    if (c->state == ST_FAILED || c->state == ST_DONE)
        return;
    if (c->state == ST_READY) {
        n_ready_--;
        if (in_run_)
            lost_in_run_++;
    } else if (c->state != ST_IDLE) {
        n_in_setup_--;
    }
    note_failure(f, i, err, what);
    close_conn(i, ST_FAILED);
}

static void set_out_interest(uint32_t i, bool want)
{
    struct conn *c = &conns_[i];
    if (c->want_out == want)
        return;
    c->want_out = want;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), .data.u32 = i};
    epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
}

/* One send of up to n bytes, in TLS with --tls: bytes taken, or -1 with
 * errno (EAGAIN: try again with the same bytes, as SSL_write wants). */
static ssize_t send_some(struct conn *c, const char *p, size_t n)
{
    if (!c->ssl)
        return send(c->fd, p, n, MSG_NOSIGNAL);
    int r = SSL_write(c->ssl, p, (int)n);
    if (r > 0)
        return r;
    int e = SSL_get_error(c->ssl, r);
    ERR_clear_error();
    errno = e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? EAGAIN : EPROTO;
    return -1;
}

/* Sends n bytes: at once when nothing waits, the rest kept for EPOLLOUT. */
static void conn_send(uint32_t i, const char *p, size_t n)
{
    struct conn *c = &conns_[i];
    if (c->fd < 0)
        return;
    if (c->out_len == 0) {
        ssize_t w = send_some(c, p, n);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            fail(i, c->state == ST_READY ? F_LOST : F_CONNECT, errno, "send");
            return;
        }
        if (w == (ssize_t)n)
            return;
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
        send_blocked_++;
    }
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        char *grown = realloc(c->out, cap);
        if (!grown) {
            fprintf(stderr, "ws_swarm: out of memory\n");
            exit(1);
        }
        c->out = grown;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    if (c->out_len > out_max_)
        out_max_ = c->out_len;
    set_out_interest(i, true);
}

static void on_writable(uint32_t i)
{
    struct conn *c = &conns_[i];
    if (c->out_len == 0) {
        set_out_interest(i, false);
        return;
    }
    ssize_t w = send_some(c, c->out, c->out_len);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            fail(i, F_LOST, errno, "send");
        return;
    }
    memmove(c->out, c->out + w, c->out_len - (size_t)w);
    c->out_len -= (size_t)w;
    if (c->out_len == 0)
        set_out_interest(i, false);
}

/* The uid of connection i (pairs: a<j> / b<j>). */
static int uid_of(uint32_t i, char *out, size_t cap)
{
    if (opt.mode == MODE_PAIRS)
        return snprintf(out, cap, "%s%c%u", opt.uid_prefix, i % 2 ? 'b' : 'a', i / 2);
    return snprintf(out, cap, "%s%u", opt.uid_prefix, i);
}

static void send_json(uint32_t i, const char *json, size_t n)
{
    conn_send(i, sbuf_, frame_text(sbuf_, sbuf_cap_ + 16, json, n, i * 7919u + conns_[i].next_id));
}

static void send_login(uint32_t i)
{
    char uid[64], json[256];
    uid_of(i, uid, sizeof(uid));
    int n =
        snprintf(json, sizeof(json), "{\"op\":\"login\",\"id\":%u,\"appid\":\"%s\",\"uid\":\"%s\"}",
                 ++conns_[i].next_id, opt.app, uid);
    conns_[i].state = ST_LOGIN;
    send_json(i, json, (size_t)n);
}

static void send_join(uint32_t i)
{
    char json[160];
    int n = snprintf(json, sizeof(json), "{\"op\":\"join\",\"id\":%u,\"channel\":\"%s\"}",
                     ++conns_[i].next_id, opt.channel);
    conns_[i].state = ST_JOIN;
    send_json(i, json, (size_t)n);
}

static void became_ready(uint32_t i, int64_t now)
{
    conns_[i].state = ST_READY;
    n_in_setup_--;
    n_ready_++;
    hist_add(&setup_lat_, now - conns_[i].t_setup);
}

/* ---- setup: connect, upgrade ------------------------------------------------------ */

static void start_conn(uint32_t i)
{
    struct conn *c = &conns_[i];
    c->src = (uint8_t)(i % opt.n_sources);
    c->t_setup = now_ns();
    n_started_++;
    const char *what;
    int fd = socket_from(opt.sources[c->src], &what);
    if (fd < 0) {
        c->state = ST_FAILED;
        note_failure(F_SOCKET, i, -fd, what);
        return;
    }
    c->fd = fd;
    c->state = ST_CONNECTING;
    if (opt.mode == MODE_MEMBERS && !opt.tls) {
        int on = 1; /* the kernel's receive time of each read (read_lag) */
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
    }
    n_in_setup_++;
    /* pairs: b<j> (odd sockets) may live on another node */
    bool b_side = opt.mode == MODE_PAIRS && (i & 1);
    int r = connect_watched(ep_, fd, i, b_side ? &peer_dst_ : &dst_, &what);
    if (r)
        fail(i, strcmp(what, "connect") ? F_SOCKET : F_CONNECT, -r, what);
}

static void send_upgrade(uint32_t i);

/* --tls: drives the handshake; the upgrade request goes out once it is done. */
static void on_tls(uint32_t i)
{
    struct conn *c = &conns_[i];
    char what[128];
    int r = tls_handshake_step(ep_, c->ssl, c->fd, i, what, sizeof(what));
    if (r > 0)
        send_upgrade(i);
    else if (r < 0)
        fail(i, F_HANDSHAKE, 0, what);
}

static void on_connected(uint32_t i)
{
    struct conn *c = &conns_[i];
    int err = connect_result(c->fd);
    if (err) {
        fail(i, F_CONNECT, err, "connect");
        return;
    }
    if (opt.tls) {
        c->ssl = tls_client_new(ssl_ctx_, c->fd);
        if (!c->ssl) {
            fail(i, F_SOCKET, ENOMEM, "SSL_new");
            return;
        }
        c->state = ST_TLS;
        on_tls(i);
        return;
    }
    send_upgrade(i);
}

static void send_upgrade(uint32_t i)
{
    struct conn *c = &conns_[i];
    c->state = ST_HANDSHAKE;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = i};
    epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
    conn_send(i, request_, request_len_);
}

/* ---- frames ------------------------------------------------------------------------ */

/* Reads "<run>:<seq>:<time>:" at p; false if it is not that. */
static bool parse_stamp(const char *p, size_t n, uint64_t v[3])
{
    size_t k = 0;
    for (int f = 0; f < 3; f++) {
        uint64_t x = 0;
        size_t start = k;
        while (k < n && p[k] >= '0' && p[k] <= '9')
            x = x * 10 + (uint64_t)(p[k++] - '0');
        if (k == start || k >= n || p[k] != ':')
            return false;
        k++;
        v[f] = x;
    }
    return true;
}

/* The payload string of a message push: its bytes up to the closing quote
 * (this tool's payloads need no escapes). */
static bool payload_of(const char *json, size_t n, const char **p, size_t *len)
{
    const char *at = find_mem(json, n, "\"payload\":\"");
    if (!at)
        return false;
    at += 11;
    const char *end = memchr(at, '"', (size_t)(json + n - at));
    if (!end)
        return false;
    *p = at;
    *len = (size_t)(end - at);
    return true;
}

static void count_complete(struct conn *c)
{
    if (expect_ && c->got == expect_)
        n_complete_++;
}

/* The stamp "<run>:<seq>:<time>:" of a message of this run, in v, and its
 * payload in p and len; false (counted stale) otherwise. */
static bool stamp_of(const char *json, size_t n, const char **p, size_t *len, uint64_t v[3])
{
    if (!payload_of(json, n, p, len) || !parse_stamp(*p, *len, v) || !in_run_ || v[0] != run_) {
        stale_++;
        return false;
    }
    return true;
}

/* A message sent at ts arrived now: the round trip or publish latency. */
static void received(int64_t ts, int64_t now)
{
    hist_add(&lat_, now - ts);
    if (ts >= t_half_)
        hist_add(&lat_half_, now - ts);
    got_total_++;
    if (!t_first_recv_)
        t_first_recv_ = now;
    t_last_recv_ = now;
}

static void on_channel_message(uint32_t i, const char *json, size_t n, int64_t now)
{
    struct conn *c = &conns_[i];
    const char *p;
    size_t len;
    uint64_t v[3];
    if (!stamp_of(json, n, &p, &len, v))
        return;
    if ((int64_t)v[1] <= c->last_seq)
        order_errors_++;
    c->last_seq = (int64_t)v[1];
    c->got++;
    received((int64_t)v[2], now);
    if (arrived_ns_) {
        hist_add(&arrival_, arrived_ns_ - (int64_t)v[2]);
        hist_add(&read_lag_, now - arrived_ns_);
    }
    count_complete(c);
}

static void send_peer(uint32_t from, uint32_t to, const char *payload, size_t plen)
{
    char uid[64];
    uid_of(to, uid, sizeof(uid));
    /* sbuf_ holds the frame; build the JSON in front of it, in rbuf_'s tail
     * (rbuf_ is not in use while a frame is being handled: see on_readable) */
    char *json = rbuf_ + RBUF_SIZE - sbuf_cap_;
    int n = snprintf(json, sbuf_cap_, "{\"op\":\"peer\",\"id\":%u,\"to\":\"%s\",\"payload\":\"",
                     ++conns_[from].next_id, uid);
    memcpy(json + n, payload, plen);
    memcpy(json + n + plen, "\"}", 2);
    send_json(from, json, (size_t)n + plen + 2);
}

static void on_peer_message(uint32_t i, const char *json, size_t n, int64_t now)
{
    struct conn *c = &conns_[i];
    const char *p;
    size_t len;
    uint64_t v[3];
    if (!stamp_of(json, n, &p, &len, v))
        return;
    c->got++;
    if (i % 2) {
        /* b<j>: the one-way time, then the echo to a<j> */
        hist_add(&oneway_, now - (int64_t)v[2]);
        echoes_++;
        send_peer(i, i - 1, p, len); /* p is in rbuf_, before the part send_peer uses */
        return;
    }
    received((int64_t)v[2], now);
    if (expect_ && got_total_ == expect_)
        n_complete_ = 1;
}

static void on_reply(uint32_t i, const char *json, size_t n, int64_t now)
{
    struct conn *c = &conns_[i];
    bool ok = find_mem(json, n, "\"ok\":true") != NULL;
    if (c->state == ST_LOGIN || c->state == ST_JOIN) {
        if (!ok) {
            char what[128];
            snprintf(what, sizeof(what), "reply %.*s", (int)(n > 100 ? 100 : n), json);
            fail(i, c->state == ST_LOGIN ? F_LOGIN : F_JOIN, 0, what);
        } else if (c->state == ST_LOGIN && opt.mode != MODE_PAIRS) {
            send_join(i);
        } else {
            became_ready(i, now);
        }
        return;
    }
    if (c->state != ST_READY)
        return;
    if (!ok) {
        replies_err_++;
        if (!first_error_[0])
            snprintf(first_error_, sizeof(first_error_), "conn %u: reply %.*s", i,
                     (int)(n > 100 ? 100 : n), json);
        return;
    }
    replies_ok_++;
    if (find_mem(json, n, "\"state\":\"delivered\""))
        delivered_++;
    else if (find_mem(json, n, "\"state\":\"offline\""))
        offline_++;
}

static void on_frame(uint32_t i, unsigned op, const char *p, size_t n, int64_t now)
{
    if (op == 0x8) {
        fail(i, conns_[i].state == ST_READY ? F_LOST : F_HANDSHAKE, 0, "close frame");
        return;
    }
    if (op != 0x1) {
        frames_other_++; /* rtmd sends no pings; anything else is ignored */
        return;
    }
    if (starts_with(p, n, "{\"op\":\"channel_message\"") && opt.mode == MODE_MEMBERS)
        on_channel_message(i, p, n, now);
    else if (starts_with(p, n, "{\"op\":\"peer_message\"") && opt.mode == MODE_PAIRS)
        on_peer_message(i, p, n, now);
    else if (starts_with(p, n, "{\"op\":\"reply\""))
        on_reply(i, p, n, now);
    else
        frames_other_++;
}

/* Reads once into rbuf_ (after the connection's kept partial frame), handles
 * every complete frame, keeps the rest. */
static void on_readable(uint32_t i)
{
    struct conn *c = &conns_[i];
    size_t have = c->carry_len;
    memcpy(rbuf_, c->carry, have);
    size_t room = RBUF_SIZE - sbuf_cap_ - have;
    struct iovec iov = {.iov_base = rbuf_ + have, .iov_len = room};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(struct timespec))];
    } ctl;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (opt.mode == MODE_MEMBERS) {
        msg.msg_control = &ctl;
        msg.msg_controllen = sizeof(ctl);
    }
    ssize_t r;
    if (c->ssl) {
        /* One record at most; a record left in the socket keeps it readable. */
        int n = SSL_read(c->ssl, rbuf_ + have, (int)room);
        r = n;
        if (n <= 0) {
            int e = SSL_get_error(c->ssl, n);
            ERR_clear_error();
            r = e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !errno) ? 0 : -1;
            errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN
                    : e == SSL_ERROR_SYSCALL && errno                     ? errno
                                                                          : EPROTO;
        }
    } else {
        r = recvmsg(c->fd, &msg, 0);
    }
    arrived_ns_ = 0;
    for (struct cmsghdr *h = msg.msg_controllen ? CMSG_FIRSTHDR(&msg) : NULL; r > 0 && h;
         h = CMSG_NXTHDR(&msg, h)) {
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS &&
            h->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(h), sizeof(ts));
            arrived_ns_ = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - mono_off_;
        }
    }
    if (r < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        fail(i, c->state == ST_READY ? F_LOST : F_HANDSHAKE, errno, "recv");
        return;
    }
    if (r == 0) {
        fail(i, c->state == ST_READY ? F_LOST : F_HANDSHAKE, 0, "closed by rtmd");
        return;
    }
    int64_t now = now_ns();
    bytes_in_ += (uint64_t)r;
    have += (size_t)r;
    size_t off = 0;
    if (c->state == ST_HANDSHAKE) {
        const char *end = find_mem(rbuf_, have, "\r\n\r\n");
        if (!end) {
            if (have > carry_cap_) {
                fail(i, F_HANDSHAKE, 0, "upgrade answer too long");
                return;
            }
            memcpy(c->carry, rbuf_, have);
            c->carry_len = (uint16_t)have;
            return;
        }
        if (have < 12 || memcmp(rbuf_, "HTTP/1.1 101", 12) != 0) {
            char what[64];
            const char *eol = find_mem(rbuf_, have, "\r\n");
            snprintf(what, sizeof(what), "status line \"%.*s\"",
                     (int)(eol ? eol - rbuf_ : (have > 40 ? 40 : (long)have)), rbuf_);
            fail(i, F_HANDSHAKE, 0, what);
            return;
        }
        off = (size_t)(end - rbuf_) + 4;
        send_login(i);
        if (c->fd < 0)
            return;
    }
    while (off < have) {
        unsigned op = 0;
        const char *payload = NULL;
        size_t plen = 0;
        size_t total = parse_frame(rbuf_ + off, have - off, carry_cap_, &op, &payload, &plen);
        if (total == 0)
            break;
        if (total == SIZE_MAX) {
            fail(i, F_PROTOCOL, 0, "frame too large for this tool");
            return;
        }
        on_frame(i, op, payload, plen, now);
        if (c->fd < 0)
            return;
        off += total;
    }
    size_t rest = have - off;
    if (rest > carry_cap_) {
        fail(i, F_PROTOCOL, 0, "partial frame too large");
        return;
    }
    memcpy(c->carry, rbuf_ + off, rest);
    c->carry_len = (uint16_t)rest;
}

static void on_event(uint32_t i, uint32_t events)
{
    struct conn *c = &conns_[i];
    if (c->fd < 0)
        return;
    if (c->state == ST_CONNECTING) {
        on_connected(i);
        return;
    }
    if (c->state == ST_TLS) {
        on_tls(i);
        return;
    }
    if (events & EPOLLOUT) {
        on_writable(i);
        if (c->fd < 0)
            return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        on_readable(i);
}

/* ---- sending runs ---------------------------------------------------------------- */

static int64_t due_of(uint64_t k)
{
    return t0_ + (int64_t)((double)k * 1e9 / rate_);
}

static void arm_timer(int64_t at)
{
    struct itimerspec its = {{0, 0}, {at / 1000000000, at % 1000000000}};
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1;
    timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &its, NULL);
}

/* The sender of message k, or UINT32_MAX when none is ready. */
static uint32_t sender_of(uint64_t k)
{
    uint32_t senders = opt.mode == MODE_PAIRS ? opt.count : n_conns_;
    for (uint32_t tries = 0; tries < senders; tries++) {
        uint32_t s = (uint32_t)((k + tries) % senders);
        uint32_t i = opt.mode == MODE_PAIRS ? 2 * s : s;
        if (conns_[i].state == ST_READY)
            return i;
    }
    return UINT32_MAX;
}

static void send_due(void)
{
    int64_t now = now_ns();
    char payload[32768 + 64];
    while (sent_ < to_send_ && due_of(sent_) <= now) {
        uint32_t i = sender_of(sent_);
        if (i == UINT32_MAX) {
            to_send_ = sent_; /* every sender is gone */
            break;
        }
        int64_t t = now_ns();
        int n = snprintf(payload, sizeof(payload), "%u:%llu:%lld:", run_, (unsigned long long)sent_,
                         (long long)t);
        if ((uint32_t)n < opt.payload_bytes) {
            memset(payload + n, 'x', opt.payload_bytes - (size_t)n);
            n = (int)opt.payload_bytes;
        }
        hist_add(&late_, t - due_of(sent_));
        if (opt.mode == MODE_PAIRS) {
            send_peer(i, i + 1, payload, (size_t)n);
        } else {
            char *json = rbuf_ + RBUF_SIZE - sbuf_cap_;
            int h = snprintf(json, sbuf_cap_,
                             "{\"op\":\"publish\",\"id\":%u,\"channel\":\"%s\","
                             "\"payload\":\"",
                             ++conns_[i].next_id, opt.channel);
            memcpy(json + h, payload, (size_t)n);
            memcpy(json + h + n, "\"}", 2);
            send_json(i, json, (size_t)h + (size_t)n + 2);
        }
        sent_++;
        t_last_sent_ = t;
    }
    if (sent_ < to_send_)
        arm_timer(due_of(sent_));
}

/* ---- control and output ------------------------------------------------------------- */

static void print_failures(void)
{
    printf("{");
    for (int k = 0; k < F_COUNT; k++)
        printf("%s\"%s\":%llu", k ? "," : "", failure_names[k], (unsigned long long)failures_[k]);
    printf("}");
}

static void print_first_error(void)
{
    printf("\"first_error\":\"");
    for (const char *p = first_error_; *p; p++)
        if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
            putchar(*p);
    printf("\"");
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void print_ready(void)
{
    ready_printed_ = true;
    printf("READY {\"connections\":%u,\"ready\":%u,\"t_start\":%lld,\"t_ready\":%lld,"
           "\"frames_other\":%llu,\"bytes_in\":%llu,\"cpu_s\":%.3f,",
           n_conns_, n_ready_, (long long)t_start_, (long long)t_ready_,
           (unsigned long long)frames_other_, (unsigned long long)bytes_in_, cpu_seconds());
    hist_print("setup", &setup_lat_);
    printf(",\"failures\":");
    print_failures();
    printf(",");
    print_first_error();
    printf("}\n");
    fflush(stdout);
    if (!opt.quiet)
        fprintf(stderr, "ws_swarm: %u/%u set up in %.3f s\n", n_ready_, n_conns_,
                (double)(t_ready_ - t_start_) / 1e9);
}

static void print_sent(void)
{
    printf("SENT {\"run\":%u,\"sent\":%llu,\"t0\":%lld,\"t_last_sent\":%lld,\"replies_ok\":%llu,"
           "\"replies_error\":%llu,\"delivered\":%llu,\"offline\":%llu,\"send_blocked\":%llu,"
           "\"out_max\":%zu,\"ready\":%u,\"cpu_s\":%.3f,",
           run_, (unsigned long long)sent_, (long long)t0_, (long long)t_last_sent_,
           (unsigned long long)replies_ok_, (unsigned long long)replies_err_,
           (unsigned long long)delivered_, (unsigned long long)offline_,
           (unsigned long long)send_blocked_, out_max_, n_ready_, cpu_seconds());
    hist_print("late", &late_);
    printf(",\"failures\":");
    print_failures();
    printf(",");
    print_first_error();
    printf("}\n");
    fflush(stdout);
}

static void print_result(void)
{
    uint32_t min_got = UINT32_MAX, max_got = 0;
    for (uint32_t i = 0; i < n_conns_; i += opt.mode == MODE_PAIRS ? 2 : 1) {
        if (conns_[i].state != ST_READY)
            continue;
        if (conns_[i].got < min_got)
            min_got = conns_[i].got;
        if (conns_[i].got > max_got)
            max_got = conns_[i].got;
    }
    if (min_got == UINT32_MAX)
        min_got = 0;
    printf("RESULT {\"run\":%u,\"receivers_at_go\":%u,\"ready\":%u,\"expect_each\":%llu,"
           "\"received\":%llu,\"complete\":%u,\"min_got\":%u,\"max_got\":%u,\"echoes\":%llu,"
           "\"order_errors\":%llu,\"stale\":%llu,\"lost_in_run\":%llu,\"t0\":%lld,"
           "\"t_first_recv\":%lld,\"t_last_recv\":%lld,\"frames_other\":%llu,\"bytes_in\":%llu,"
           "\"replies_ok\":%llu,\"replies_error\":%llu,\"delivered\":%llu,\"offline\":%llu,"
           "\"cpu_s\":%.3f,",
           run_, alive_at_go_, n_ready_, (unsigned long long)expect_,
           (unsigned long long)got_total_, n_complete_, min_got, max_got,
           (unsigned long long)echoes_, (unsigned long long)order_errors_,
           (unsigned long long)stale_, (unsigned long long)lost_in_run_, (long long)t0_,
           (long long)t_first_recv_, (long long)t_last_recv_, (unsigned long long)frames_other_,
           (unsigned long long)bytes_in_, (unsigned long long)replies_ok_,
           (unsigned long long)replies_err_, (unsigned long long)delivered_,
           (unsigned long long)offline_, cpu_seconds());
    hist_print("latency", &lat_);
    printf(",");
    hist_print("latency_second_half", &lat_half_);
    printf(",");
    hist_print("oneway", &oneway_);
    printf(",");
    hist_print("arrival", &arrival_);
    printf(",");
    hist_print("read_lag", &read_lag_);
    printf(",\"failures\":");
    print_failures();
    printf(",");
    print_first_error();
    printf("}\n");
    fflush(stdout);
}

/* CLOCK_REALTIME - CLOCK_MONOTONIC in ns, from the closest of a few readings. */
static int64_t realtime_minus_monotonic(void)
{
    int64_t best = 0, best_gap = INT64_MAX;
    for (int k = 0; k < 5; k++) {
        struct timespec a, r, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        clock_gettime(CLOCK_REALTIME, &r);
        clock_gettime(CLOCK_MONOTONIC, &b);
        int64_t ma = (int64_t)a.tv_sec * 1000000000 + a.tv_nsec;
        int64_t mb = (int64_t)b.tv_sec * 1000000000 + b.tv_nsec;
        if (mb - ma < best_gap) {
            best_gap = mb - ma;
            best = (int64_t)r.tv_sec * 1000000000 + r.tv_nsec - (ma + (mb - ma) / 2);
        }
    }
    return best;
}

static void start_run(uint32_t run, int64_t t0, double rate, double dur)
{
    run_ = run;
    t0_ = t0;
    rate_ = rate > 0 ? rate : 1;
    t_half_ = t0 + (int64_t)(dur * 0.5e9);
    in_run_ = true;
    stopping_ = false;
    expect_ = 0;
    got_total_ = order_errors_ = lost_in_run_ = echoes_ = stale_ = 0;
    sent_ = replies_ok_ = replies_err_ = delivered_ = offline_ = send_blocked_ = 0;
    out_max_ = 0;
    n_complete_ = 0;
    t_first_recv_ = t_last_recv_ = t_last_sent_ = 0;
    memset(&lat_, 0, sizeof(lat_));
    memset(&lat_half_, 0, sizeof(lat_half_));
    memset(&oneway_, 0, sizeof(oneway_));
    memset(&arrival_, 0, sizeof(arrival_));
    memset(&read_lag_, 0, sizeof(read_lag_));
    memset(&late_, 0, sizeof(late_));
    mono_off_ = realtime_minus_monotonic();
    alive_at_go_ = 0;
    for (uint32_t i = 0; i < n_conns_; i++) {
        conns_[i].got = 0;
        conns_[i].last_seq = -1;
        if (conns_[i].state == ST_READY && (opt.mode != MODE_PAIRS || i % 2 == 0))
            alive_at_go_++;
    }
    if (opt.mode != MODE_MEMBERS) {
        to_send_ = (uint64_t)(rate * dur + 0.5);
        sending_ = to_send_ > 0;
        if (sending_)
            arm_timer(due_of(0));
    }
}

static void stop_run(uint64_t sent, uint64_t grace_ms)
{
    stopping_ = true;
    expect_ = sent;
    grace_ns_ = (int64_t)grace_ms * 1000000;
    t_stop_ = now_ns();
    n_complete_ = 0;
    if (opt.mode == MODE_PAIRS) {
        n_complete_ = got_total_ >= expect_ ? 1 : 0;
        return;
    }
    for (uint32_t i = 0; i < n_conns_; i++)
        if (conns_[i].state == ST_READY && conns_[i].got >= expect_)
            n_complete_++;
}

static bool run_finished(void)
{
    if (opt.mode == MODE_PAIRS) {
        if (n_complete_)
            return true;
    } else if (n_complete_ >= n_ready_) {
        return true;
    }
    int64_t last = t_last_recv_ > t_stop_ ? t_last_recv_ : t_stop_;
    return now_ns() - last > grace_ns_;
}

static struct lines stdin_;
static bool quit_;

static void on_command(char *line)
{
    unsigned run;
    long long t0;
    double rate, dur;
    unsigned long long sent, grace;
    if (sscanf(line, "go %u %lld %lf %lf", &run, &t0, &rate, &dur) == 4)
        start_run(run, t0, rate, dur);
    else if (sscanf(line, "stop %llu %llu", &sent, &grace) == 2)
        stop_run(sent, grace);
    else if (!strcmp(line, "quit"))
        quit_ = true;
    else if (line[0])
        fprintf(stderr, "ws_swarm: unknown command \"%s\"\n", line);
}

static void on_stdin(void)
{
    if (read_lines(&stdin_, STDIN_FILENO, on_command) < 0) {
        quit_ = true; /* EOF: the driver is gone */
        epoll_ctl(ep_, EPOLL_CTL_DEL, STDIN_FILENO, NULL);
    }
}

/* ---- the loop ------------------------------------------------------------------------ */

static void poll_once(int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(ep_, evs, MAX_EVENTS, timeout_ms);
    for (int k = 0; k < n; k++) {
        uint32_t tag = evs[k].data.u32;
        if (tag == STDIN_TAG) {
            on_stdin();
        } else if (tag == TIMER_TAG) {
            uint64_t expirations;
            if (read(timer_fd_, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
                perror("ws_swarm: timerfd");
            if (sending_)
                send_due();
        } else {
            on_event(tag, evs[k].events);
        }
    }
}

static void on_signal(int sig)
{
    (void)sig;
    interrupted_ = 1;
}

static uint64_t total_failures(void)
{
    uint64_t t = 0;
    for (int k = 0; k < F_COUNT; k++)
        t += failures_[k];
    return t;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    n_conns_ = opt.mode == MODE_PAIRS ? 2 * opt.count : opt.count;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        n_conns_ + 16 > rl.rlim_cur)
        fprintf(stderr,
                "ws_swarm: warning: %u connections are above this process's open-file "
                "limit %llu; run several processes\n",
                n_conns_, (unsigned long long)rl.rlim_cur);

    carry_cap_ = opt.payload_bytes + CARRY_EXTRA;
    if (carry_cap_ < CARRY_MIN)
        carry_cap_ = CARRY_MIN;
    sbuf_cap_ = opt.payload_bytes + CARRY_EXTRA;
    conns_ = calloc(n_conns_, sizeof(*conns_));
    char *carries = calloc(n_conns_, carry_cap_);
    rbuf_ = malloc(RBUF_SIZE);
    sbuf_ = malloc(sbuf_cap_ + 16); /* frame_text() is told this size */
    if (!conns_ || !carries || !rbuf_ || !sbuf_) {
        fprintf(stderr, "ws_swarm: out of memory\n");
        return 1;
    }
    for (uint32_t i = 0; i < n_conns_; i++) {
        conns_[i].fd = -1;
        conns_[i].carry = carries + (size_t)i * carry_cap_;
    }
    if (opt.tls) {
        /* Partial writes as send(): conn_send keeps the rest for EPOLLOUT. */
        ssl_ctx_ =
            tls_client_ctx(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        if (!ssl_ctx_) {
            fprintf(stderr, "ws_swarm: SSL_CTX_new failed\n");
            return 1;
        }
    }
    request_len_ = (size_t)snprintf(request_, sizeof(request_),
                                    "GET /v1/rtm HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
                                    "Connection: Upgrade\r\nSec-WebSocket-Key: "
                                    "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                                    opt.host, opt.port);

    ep_ = epoll_create1(EPOLL_CLOEXEC);
    timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (ep_ < 0 || timer_fd_ < 0) {
        perror("ws_swarm: epoll_create1/timerfd_create");
        return 1;
    }
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = TIMER_TAG};
    epoll_ctl(ep_, EPOLL_CTL_ADD, timer_fd_, &tev);
    fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
    struct epoll_event sev = {.events = EPOLLIN, .data.u32 = STDIN_TAG};
    epoll_ctl(ep_, EPOLL_CTL_ADD, STDIN_FILENO, &sev);

    /* Setup: connect, upgrade, login, join. */
    t_start_ = now_ns();
    int64_t deadline = t_start_ + (int64_t)(opt.timeout_s * 1e9);
    uint32_t next = 0;
    while (!interrupted_ && !quit_ && (next < n_conns_ || n_in_setup_ > 0) && now_ns() < deadline) {
        while (next < n_conns_ && n_in_setup_ < opt.inflight)
            start_conn(next++);
        poll_once(next < n_conns_ ? 1 : 20);
    }
    t_ready_ = now_ns();
    for (uint32_t i = 0; i < n_conns_; i++) {
        if (conns_[i].state == ST_IDLE) {
            conns_[i].state = ST_FAILED;
            note_failure(F_TIMEOUT, i, 0, "never started (timeout)");
        } else if (conns_[i].state != ST_READY && conns_[i].state != ST_FAILED) {
            fail(i, F_TIMEOUT, 0, "setup timeout");
        }
    }
    print_ready();

    /* Runs, until quit. */
    while (!interrupted_ && !quit_) {
        if (opt.read_interval_us && in_run_ && opt.mode == MODE_MEMBERS) {
            /* Reads in batches: what arrives meanwhile waits in the sockets, and
             * rtmd's writes find this process not waiting, so none of them
             * pays for waking it (see --read-interval-us in bench/fanout). */
            struct timespec pause = {0, (long)opt.read_interval_us * 1000};
            nanosleep(&pause, NULL);
        }
        poll_once(stopping_ || sending_ ? 5 : 100);
        if (sending_ && sent_ >= to_send_ &&
            (replies_ok_ + replies_err_ >= sent_ || now_ns() - t_last_sent_ > 10000000000LL)) {
            sending_ = false;
            print_sent();
        }
        if (stopping_ && !sending_ && run_finished()) {
            stopping_ = false;
            in_run_ = false;
            print_result();
        }
    }

    bool ok = n_ready_ == n_conns_ && total_failures() == 0;
    uint32_t ready_at_end = n_ready_;
    for (uint32_t i = 0; i < n_conns_; i++)
        if (conns_[i].fd >= 0)
            close_conn(i, ST_DONE);
    printf("BYE {\"ready_at_end\":%u,\"cpu_s\":%.3f,\"failures\":", ready_at_end, cpu_seconds());
    print_failures();
    printf(",");
    print_first_error();
    printf("}\n");
    fflush(stdout);
    free(carries);
    free(conns_);
    free(rbuf_);
    free(sbuf_);
    close(timer_fd_);
    SSL_CTX_free(ssl_ctx_);
    close(ep_);
    return ok ? 0 : 1;
}
