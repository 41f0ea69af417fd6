/*
 * ws_hold.c — opens N plain WebSocket connections to rtmd, logs each in as
 * a distinct uid, holds them idle, then exits. A load generator for
 * bench/ws-hold; it needs libc and, for --tls, OpenSSL (it ignores
 * librtmd.a).
 *
 *   build/bench/ws_hold --port P --app APPID[,APPID...] [--count N] [--sources A,B,...]
 *       [--host 127.0.0.1] [--rate CONNECTS_PER_S] [--inflight N]
 *       [--hold-seconds S] [--uid-prefix PFX] [--timeout S] [--logout]
 *       [--tls] [--control-stdin] [--quiet]
 *
 * With --tls every connection is wss://: a TLS handshake (any protocol
 * version rtmd offers, the certificate not verified, no session resumption)
 * after the TCP connect, then the same upgrade and frames inside TLS. The
 * client keeps its own TLS memory small (SSL_MODE_RELEASE_BUFFERS) so that
 * 19,000 connections fit in two generators.
 *
 * Phases, each bounded by --timeout:
 *   1. connect: sockets bound to the --sources addresses in turn (bind()
 *      before connect(), IP_BIND_ADDRESS_NO_PORT so that the 4-tuple, not
 *      the source address alone, must be unique), at most --inflight
 *      handshakes at once, optionally paced at --rate connects per second;
 *      each sends the upgrade request for /v1/rtm and waits for 101.
 *   2. login: when every connection is upgraded or failed (with
 *      --control-stdin: when a line "go" arrives on stdin), every
 *      connection i sends {"op":"login","id":1,"appid":APP,"uid":PFX<i>}
 *      (APP: the (i mod n)-th of the n App IDs of --app) and
 *      waits for its reply ({"ok":true} is sent by rtmd once the Login
 *      event is durable).
 *   3. hold: the connections stay open and idle (nothing is sent, nothing
 *      answered) for --hold-seconds (with --control-stdin also until a line
 *      "stop" or EOF on stdin). Connections rtmd closes meanwhile are
 *      counted.
 *   4. with --logout: each sends {"op":"logout","id":2} and waits for the
 *      reply; then every socket is closed and the process exits (rtmd
 *      records a Logout for each session either way).
 *
 * Output (stdout, one line each, flushed): "READY {...}" after phase 1,
 * "LOGGED_IN {...}" after phase 2, "RESULT {...}" at the end; the {...} is
 * one JSON object. Times are CLOCK_MONOTONIC nanoseconds (comparable
 * between processes of one machine) so a driver can aggregate several
 * generators. A human summary goes to stderr unless --quiet.
 *
 * Exit status: 0 when every connection logged in (and held), 1 otherwise,
 * 2 on bad arguments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "wsload.h"

#define MAX_SOURCES 64
#define CONN_BUF    256 /* a 101 head is ~130 bytes, a reply frame ~40 */
#define STDIN_TAG   UINT32_MAX
#define MAX_EVENTS  1024

enum state {
    ST_IDLE,       /* not started */
    ST_CONNECTING, /* connect() in progress */
    ST_TLS,        /* --tls: TLS handshake in progress */
    ST_HANDSHAKE,  /* upgrade request sent, waiting for the 101 */
    ST_UPGRADED,   /* waiting for the login phase */
    ST_LOGIN,      /* login sent, waiting for the reply */
    ST_HELD,       /* logged in, idle */
    ST_LOGOUT,     /* logout sent, waiting for the reply */
    ST_DONE,       /* finished (closed by us at the end) */
    ST_FAILED,
};

enum failure {
    F_SOCKET,     /* socket()/bind() failed (EMFILE, EADDRNOTAVAIL...) */
    F_CONNECT,    /* connect() failed or was refused/reset */
    F_HANDSHAKE,  /* not a 101, or closed during the handshake */
    F_LOGIN_EOF,  /* closed before the login reply */
    F_LOGIN_ERR,  /* {"ok":false} */
    F_TIMEOUT,    /* still pending at the phase deadline */
    F_HOLD_CLOSE, /* rtmd closed (or sent something) while held */
    F_LOGOUT,     /* logout not answered ok */
    F_COUNT
};

static const char *const failure_names[F_COUNT] = {
    "socket",      "connect", "handshake",   "login_eof",
    "login_error", "timeout", "hold_closed", "logout",
};

struct conn {
    SSL *ssl; /* --tls only */
    int fd;
    uint8_t state;
    uint8_t src;
    uint16_t in_len;
    uint32_t out_off; /* bytes of the current request already written */
    int64_t t_sent;   /* when the login went out */
    char in[CONN_BUF];
};

static struct {
    const char *host;
    unsigned port;
    uint32_t count;
    struct in_addr sources[MAX_SOURCES];
    unsigned n_sources;
    double rate;
    uint32_t inflight;
    double hold_s;
    char uid_prefix[48];
    const char *apps; /* comma-separated App IDs; connection i uses app i % n_apps */
    uint32_t n_apps;
    double timeout_s;
    bool logout;
    bool tls;
    bool control_stdin;
    bool quiet;
} opt;

static struct conn *conns_;
static SSL_CTX *ssl_ctx_; /* --tls */
static int ep_;
static struct sockaddr_in dst_;
static char request_[512];
static size_t request_len_;
static uint64_t failures_[F_COUNT];
static uint32_t n_started_, n_pending_hs_, n_upgraded_, n_login_ok_, n_logout_ok_;
static uint32_t n_open_;      /* sockets still open */
static uint32_t n_wait_;      /* logins or logouts sent and not yet answered */
static int64_t t_last_reply_; /* when the last ok reply arrived */
static int64_t *latencies_;
static uint32_t n_latencies_;
static volatile sig_atomic_t interrupted_;

/* ---- helpers ------------------------------------------------------------------ */

static void die_usage(const char *msg)
{
    fprintf(stderr, "ws_hold: %s\n", msg);
    fprintf(stderr,
            "usage: ws_hold --port P --app APPID[,..] [--count N] [--sources A,B,..] [--host H]\n"
            "               [--rate CONNECTS_PER_S] [--inflight N] [--hold-seconds S]\n"
            "               [--uid-prefix PFX] [--timeout S] [--logout] [--tls] [--control-stdin]\n"
            "               [--quiet]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    opt.host = "127.0.0.1";
    opt.count = 1000;
    opt.inflight = 1000;
    opt.hold_s = 10;
    opt.timeout_s = 120;
    snprintf(opt.uid_prefix, sizeof(opt.uid_prefix), "u%ld-", (long)getpid());
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (!strcmp(a, "--logout")) {
            opt.logout = true;
            takes = false;
        } else if (!strcmp(a, "--tls")) {
            opt.tls = true;
            takes = false;
        } else if (!strcmp(a, "--control-stdin")) {
            opt.control_stdin = true;
            takes = false;
        } else if (!strcmp(a, "--quiet")) {
            opt.quiet = true;
            takes = false;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            die_usage("help");
        } else if (!v) {
            die_usage("missing value");
        } else if (!strcmp(a, "--host")) {
            opt.host = v;
        } else if (!strcmp(a, "--port")) {
            opt.port = (unsigned)parse_ulong(v, 65535, "--port");
        } else if (!strcmp(a, "--count")) {
            opt.count = (uint32_t)parse_ulong(v, 1000000, "--count");
        } else if (!strcmp(a, "--sources")) {
            parse_sources(v, opt.sources, &opt.n_sources, MAX_SOURCES);
        } else if (!strcmp(a, "--rate")) {
            opt.rate = parse_double(v, "--rate");
        } else if (!strcmp(a, "--inflight")) {
            opt.inflight = (uint32_t)parse_ulong(v, 1000000, "--inflight");
        } else if (!strcmp(a, "--hold-seconds")) {
            opt.hold_s = parse_double(v, "--hold-seconds");
        } else if (!strcmp(a, "--timeout")) {
            opt.timeout_s = parse_double(v, "--timeout");
        } else if (!strcmp(a, "--uid-prefix")) {
            if (strlen(v) >= sizeof(opt.uid_prefix) - 8)
                die_usage("--uid-prefix too long");
            snprintf(opt.uid_prefix, sizeof(opt.uid_prefix), "%s", v);
        } else if (!strcmp(a, "--app")) {
            opt.apps = v;
        } else {
            die_usage("unknown option");
        }
        if (takes)
            i++;
    }
    if (!opt.port || !opt.apps)
        die_usage("--port and --app are required");
    for (const char *p = opt.apps; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len != 32)
            die_usage("--app takes 32-character App IDs, comma-separated");
        opt.n_apps++;
        p += len + (comma ? 1 : 0);
    }
    if (opt.inflight == 0)
        opt.inflight = 1;
    if (opt.n_sources == 0)
        parse_sources("127.0.0.1", opt.sources, &opt.n_sources, MAX_SOURCES);
    if (inet_pton(AF_INET, opt.host, &dst_.sin_addr) != 1)
        die_usage("--host must be an IPv4 address");
    dst_.sin_family = AF_INET;
    dst_.sin_port = htons((uint16_t)opt.port);
}

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
        n_open_--;
    }
    c->state = state;
}

static void fail(uint32_t i, enum failure f, int err, const char *what)
{
    if (conns_[i].state == ST_CONNECTING || conns_[i].state == ST_TLS ||
        conns_[i].state == ST_HANDSHAKE)
        n_pending_hs_--;
    if (conns_[i].state == ST_LOGIN || conns_[i].state == ST_LOGOUT)
        n_wait_--;
    note_failure(f, i, err, what);
    close_conn(i, ST_FAILED);
}

/* Sends all of buf (these requests are tiny; a short write on a fresh,
 * empty socket buffer would mean something is badly wrong). */
static int send_all(struct conn *c, const char *buf, size_t n)
{
    int fd = c->fd;
    if (c->ssl) {
        /* Without partial writes SSL_write takes all or nothing. */
        int r = SSL_write(c->ssl, buf, (int)n);
        if (r > 0)
            return 0;
        int e = SSL_get_error(c->ssl, r);
        ERR_clear_error();
        return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? EAGAIN : EPROTO;
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? EAGAIN : errno;
        }
        off += (size_t)w;
    }
    return 0;
}

/* ---- phase 1: connect and upgrade ------------------------------------------------ */

static void start_conn(uint32_t i)
{
    struct conn *c = &conns_[i];
    c->src = (uint8_t)(i % opt.n_sources);
    n_started_++;
    const char *what;
    int fd = socket_from(opt.sources[c->src], &what);
    if (fd < 0) {
        c->state = ST_FAILED;
        note_failure(F_SOCKET, i, -fd, what);
        return;
    }
    c->fd = fd;
    n_open_++;
    c->state = ST_CONNECTING;
    n_pending_hs_++;
    int r = connect_watched(ep_, fd, i, &dst_, &what);
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
    int r = send_all(c, request_, request_len_);
    if (r) {
        fail(i, F_CONNECT, r, "send upgrade");
        return;
    }
    c->state = ST_HANDSHAKE;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = i};
    epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Reads what is there into c->in; returns bytes read, 0 on EOF, -1 when
 * nothing was there (EAGAIN), -2 on error (errno kept in *err). */
static ssize_t read_some(struct conn *c, int *err)
{
    size_t room = sizeof(c->in) - c->in_len;
    if (room == 0) {
        *err = ENOBUFS;
        return -2;
    }
    if (c->ssl) {
        int r = SSL_read(c->ssl, c->in + c->in_len, (int)room);
        if (r > 0) {
            c->in_len = (uint16_t)(c->in_len + r);
            return r;
        }
        int e = SSL_get_error(c->ssl, r);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return -1; /* nothing, or only records without data (session tickets) */
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        *err = e == SSL_ERROR_SYSCALL && errno ? errno : EPROTO;
        return e == SSL_ERROR_SYSCALL && !errno ? 0 : -2;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return -1;
        *err = errno;
        return -2;
    }
    c->in_len = (uint16_t)(c->in_len + n);
    return n;
}

static void on_handshake_data(uint32_t i)
{
    struct conn *c = &conns_[i];
    int err = 0;
    ssize_t n = read_some(c, &err);
    if (n == -1)
        return;
    if (n <= 0) {
        fail(i, F_HANDSHAKE, n == 0 ? 0 : err, n == 0 ? "closed during handshake" : "recv");
        return;
    }
    const char *end = find_mem(c->in, c->in_len, "\r\n\r\n");
    if (!end)
        return;
    if (c->in_len < 12 || memcmp(c->in, "HTTP/1.1 101", 12) != 0) {
        char what[64];
        const char *eol = find_mem(c->in, c->in_len, "\r\n");
        snprintf(what, sizeof(what), "status line \"%.*s\"", (int)(eol - c->in), c->in);
        fail(i, F_HANDSHAKE, 0, what);
        return;
    }
    size_t head = (size_t)(end - c->in) + 4;
    memmove(c->in, c->in + head, c->in_len - head);
    c->in_len = (uint16_t)(c->in_len - head);
    c->state = ST_UPGRADED;
    n_pending_hs_--;
    n_upgraded_++;
}

/* ---- phase 2 and 4: requests and replies --------------------------------------------- */

static void send_op(uint32_t i, bool login)
{
    struct conn *c = &conns_[i];
    char payload[256], frame[300];
    int n;
    if (login)
        n = snprintf(payload, sizeof(payload),
                     "{\"op\":\"login\",\"id\":1,\"appid\":\"%.32s\",\"uid\":\"%s%u\"}",
                     opt.apps + (size_t)(i % opt.n_apps) * 33, opt.uid_prefix, i);
    else
        n = snprintf(payload, sizeof(payload), "{\"op\":\"logout\",\"id\":2}");
    size_t flen = frame_text(frame, sizeof(frame), payload, (size_t)n, i);
    c->t_sent = now_ns();
    int r = send_all(c, frame, flen);
    c->state = login ? ST_LOGIN : ST_LOGOUT;
    n_wait_++;
    if (r)
        fail(i, login ? F_LOGIN_EOF : F_LOGOUT, r, "send");
}

static void on_reply_data(uint32_t i)
{
    struct conn *c = &conns_[i];
    bool login = c->state == ST_LOGIN;
    enum failure eof_failure = login ? F_LOGIN_EOF : F_LOGOUT;
    int err = 0;
    ssize_t n = read_some(c, &err);
    if (n == -1)
        return;
    if (n <= 0) {
        fail(i, eof_failure, n == 0 ? 0 : err, n == 0 ? "closed before the reply" : "recv");
        return;
    }
    for (;;) {
        unsigned op = 0;
        const char *payload = NULL;
        size_t plen = 0;
        size_t total = parse_frame(c->in, c->in_len, sizeof(c->in), &op, &payload, &plen);
        if (total == 0)
            return;
        if (total == SIZE_MAX) {
            fail(i, eof_failure, 0, "oversized frame");
            return;
        }
        if (op == 0x8) {
            fail(i, eof_failure, 0, "close frame before the reply");
            return;
        }
        if (op == 0x1 && find_mem(payload, plen, "\"op\":\"reply\"")) {
            bool ok = find_mem(payload, plen, "\"ok\":true") != NULL;
            if (!ok) {
                char what[128];
                snprintf(what, sizeof(what), "reply %.*s", (int)(plen > 100 ? 100 : plen), payload);
                fail(i, login ? F_LOGIN_ERR : F_LOGOUT, 0, what);
                return;
            }
            t_last_reply_ = now_ns();
            n_wait_--;
            if (login) {
                latencies_[n_latencies_++] = t_last_reply_ - c->t_sent;
                n_login_ok_++;
                c->state = ST_HELD;
            } else {
                n_logout_ok_++;
                close_conn(i, ST_DONE);
                return;
            }
        }
        memmove(c->in, c->in + total, c->in_len - total);
        c->in_len = (uint16_t)(c->in_len - total);
        if (c->state == ST_HELD)
            c->in_len = 0; /* anything after the reply is ignored */
    }
}

static void on_held_data(uint32_t i)
{
    struct conn *c = &conns_[i];
    int err = 0;
    c->in_len = 0;
    ssize_t n = read_some(c, &err);
    if (n == -1)
        return;
    /* rtmd closed it or pushed something at an idle session: either way it
     * did not hold the connection as asked. */
    fail(i, F_HOLD_CLOSE, n < 0 ? err : 0, n == 0 ? "closed while held" : "data while held");
}

static void on_event(uint32_t i, uint32_t events)
{
    struct conn *c = &conns_[i];
    if (c->fd < 0)
        return;
    /* TLS may hold decrypted bytes the socket no longer signals: go on
     * while it does (and the state reads). */
    for (;;) {
        uint8_t st = c->state;
        switch (st) {
        case ST_CONNECTING: on_connected(i); break;
        case ST_TLS: on_tls(i); break;
        case ST_HANDSHAKE: on_handshake_data(i); break;
        case ST_UPGRADED:
        case ST_HELD: on_held_data(i); break;
        case ST_LOGIN:
        case ST_LOGOUT: on_reply_data(i); break;
        default: break;
        }
        if (c->fd < 0 || !c->ssl || SSL_pending(c->ssl) == 0 || c->state == ST_TLS ||
            c->state == ST_CONNECTING)
            break;
    }
    (void)events;
}

/* ---- stdin control ----------------------------------------------------------------- */

static struct lines stdin_;
static bool stdin_go_, stdin_stop_;

static void on_control(char *line)
{
    if (!strcmp(line, "go"))
        stdin_go_ = true;
    else if (!strcmp(line, "stop"))
        stdin_go_ = stdin_stop_ = true;
}

static void on_stdin(void)
{
    if (read_lines(&stdin_, STDIN_FILENO, on_control) < 0) {
        stdin_go_ = stdin_stop_ = true; /* EOF: the driver is gone */
        epoll_ctl(ep_, EPOLL_CTL_DEL, STDIN_FILENO, NULL);
    }
}

/* ---- the loop ---------------------------------------------------------------------- */

static void poll_once(int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(ep_, evs, MAX_EVENTS, timeout_ms);
    for (int k = 0; k < n; k++) {
        if (evs[k].data.u32 == STDIN_TAG)
            on_stdin();
        else
            on_event(evs[k].data.u32, evs[k].events);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(double p)
{
    if (n_latencies_ == 0)
        return 0;
    size_t k = (size_t)(p * (double)(n_latencies_ - 1) + 0.5);
    return (double)latencies_[k] / 1e6;
}

static void print_failures(FILE *f)
{
    fprintf(f, "{");
    for (int k = 0; k < F_COUNT; k++)
        fprintf(f, "%s\"%s\":%llu", k ? "," : "", failure_names[k],
                (unsigned long long)failures_[k]);
    fprintf(f, "}");
}

static uint64_t total_failures(void)
{
    uint64_t t = 0;
    for (int k = 0; k < F_COUNT; k++)
        t += failures_[k];
    return t;
}

static void on_signal(int sig)
{
    (void)sig;
    interrupted_ = 1;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        opt.count + 16 > rl.rlim_cur)
        fprintf(stderr,
                "ws_hold: warning: --count %u is above this process's open-file limit %llu; "
                "run several processes\n",
                opt.count, (unsigned long long)rl.rlim_cur);

    conns_ = calloc(opt.count ? opt.count : 1, sizeof(*conns_));
    latencies_ = calloc(opt.count ? opt.count : 1, sizeof(*latencies_));
    if (!conns_ || !latencies_) {
        fprintf(stderr, "ws_hold: out of memory\n");
        return 1;
    }
    for (uint32_t i = 0; i < opt.count; i++)
        conns_[i].fd = -1;
    if (opt.tls) {
        ssl_ctx_ = tls_client_ctx(0);
        if (!ssl_ctx_) {
            fprintf(stderr, "ws_hold: SSL_CTX_new failed\n");
            return 1;
        }
    }
    int rn = snprintf(request_, sizeof(request_),
                      "GET /v1/rtm HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n",
                      opt.host, opt.port);
    request_len_ = (size_t)rn;

    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
        perror("ws_hold: epoll_create1");
        return 1;
    }
    if (opt.control_stdin) {
        fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = STDIN_TAG};
        epoll_ctl(ep_, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
    }

    /* Phase 1: connect and upgrade. */
    int64_t t_start = now_ns();
    int64_t deadline = t_start + (int64_t)(opt.timeout_s * 1e9);
    uint32_t next = 0;
    while (!interrupted_ && (next < opt.count || n_pending_hs_ > 0) && now_ns() < deadline) {
        int64_t t = now_ns();
        uint64_t allowed = opt.count;
        if (opt.rate > 0) {
            double a = (double)(t - t_start) / 1e9 * opt.rate + 1;
            allowed = a < (double)opt.count ? (uint64_t)a : opt.count;
        }
        while (next < opt.count && next < allowed && n_pending_hs_ < opt.inflight)
            start_conn(next++);
        poll_once(opt.rate > 0 || next < opt.count ? 1 : 50);
    }
    int64_t t_upgraded = now_ns();
    for (uint32_t i = 0; i < opt.count; i++) {
        if (conns_[i].state == ST_IDLE) {
            conns_[i].state = ST_FAILED;
            note_failure(F_TIMEOUT, i, 0, "never started (timeout)");
        } else if (conns_[i].state == ST_CONNECTING || conns_[i].state == ST_TLS ||
                   conns_[i].state == ST_HANDSHAKE) {
            fail(i, F_TIMEOUT, 0, "handshake timeout");
        }
    }
    printf("READY {\"upgraded\":%u,\"t_start\":%lld,\"t_upgraded\":%lld,\"failures\":", n_upgraded_,
           (long long)t_start, (long long)t_upgraded);
    print_failures(stdout);
    printf("}\n");
    fflush(stdout);

    /* Phase 2: log in. */
    if (opt.control_stdin)
        while (!interrupted_ && !stdin_go_)
            poll_once(100);
    int64_t t_login = now_ns();
    deadline = t_login + (int64_t)(opt.timeout_s * 1e9);
    uint32_t login_sent = 0;
    t_last_reply_ = t_login;
    for (uint32_t i = 0; i < opt.count; i++) {
        if (conns_[i].state == ST_UPGRADED) {
            send_op(i, true);
            login_sent++;
        }
    }
    while (!interrupted_ && n_wait_ > 0 && now_ns() < deadline)
        poll_once(20);
    int64_t t_last_ok = t_last_reply_;
    for (uint32_t i = 0; i < opt.count; i++)
        if (conns_[i].state == ST_LOGIN)
            fail(i, F_TIMEOUT, 0, "login reply timeout");
    qsort(latencies_, n_latencies_, sizeof(*latencies_), cmp_i64);
    double login_s = (double)(t_last_ok - t_login) / 1e9;
    double all_s = (double)(t_last_ok - t_start) / 1e9;
    printf("LOGGED_IN {\"logins_ok\":%u,\"logins_sent\":%u,\"t_login\":%lld,\"t_last_ok\":%lld,"
           "\"login_phase_s\":%.6f,\"logins_per_s\":%.1f,\"overall_s\":%.6f,"
           "\"overall_logins_per_s\":%.1f,\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,"
           "\"p99\":%.3f,\"max\":%.3f},\"failures\":",
           n_login_ok_, login_sent, (long long)t_login, (long long)t_last_ok, login_s,
           login_s > 0 ? n_login_ok_ / login_s : 0.0, all_s, all_s > 0 ? n_login_ok_ / all_s : 0.0,
           pct_ms(0.5), pct_ms(0.9), pct_ms(0.99), pct_ms(1.0));
    print_failures(stdout);
    printf("}\n");
    fflush(stdout);

    /* Phase 3: hold. */
    int64_t hold_end = now_ns() + (int64_t)(opt.hold_s * 1e9);
    while (!interrupted_ && !stdin_stop_) {
        int64_t left = hold_end - now_ns();
        if (left <= 0)
            break;
        poll_once((int)(left / 1000000 > 200 ? 200 : left / 1000000 + 1));
    }
    uint32_t held_at_end = 0;
    for (uint32_t i = 0; i < opt.count; i++)
        held_at_end += conns_[i].state == ST_HELD;

    /* Phase 4: log out (optional), close. */
    int64_t t_logout = now_ns(), t_logout_end = t_logout;
    if (opt.logout) {
        for (uint32_t i = 0; i < opt.count; i++)
            if (conns_[i].state == ST_HELD)
                send_op(i, false);
        deadline = t_logout + (int64_t)(opt.timeout_s * 1e9);
        while (!interrupted_ && n_wait_ > 0 && now_ns() < deadline)
            poll_once(20);
        t_logout_end = now_ns();
        for (uint32_t i = 0; i < opt.count; i++)
            if (conns_[i].state == ST_LOGOUT)
                fail(i, F_LOGOUT, 0, "logout reply timeout");
    }
    for (uint32_t i = 0; i < opt.count; i++)
        if (conns_[i].fd >= 0)
            close_conn(i, ST_DONE);

    double logout_s = (double)(t_logout_end - t_logout) / 1e9;
    printf("RESULT {\"count\":%u,\"started\":%u,\"upgraded\":%u,\"logins_ok\":%u,"
           "\"held_at_end\":%u,\"logouts_ok\":%u,\"logout_phase_s\":%.6f,\"failures_total\":%llu,"
           "\"failures\":",
           opt.count, n_started_, n_upgraded_, n_login_ok_, held_at_end, n_logout_ok_, logout_s,
           (unsigned long long)total_failures());
    print_failures(stdout);
    printf(",\"first_error\":\"");
    for (const char *p = first_error_; *p; p++)
        if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
            putchar(*p);
    printf("\"}\n");
    fflush(stdout);

    if (!opt.quiet) {
        fprintf(stderr,
                "ws_hold: %u/%u upgraded in %.3f s; %u logins ok in %.3f s (%.0f/s; %.0f/s from "
                "the first connect); p50 %.2f ms p99 %.2f ms; %u held to the end; failures %llu",
                n_upgraded_, opt.count, (double)(t_upgraded - t_start) / 1e9, n_login_ok_, login_s,
                login_s > 0 ? n_login_ok_ / login_s : 0.0, all_s > 0 ? n_login_ok_ / all_s : 0.0,
                pct_ms(0.5), pct_ms(0.99), held_at_end, (unsigned long long)total_failures());
        if (first_error_[0])
            fprintf(stderr, " (first: %s)", first_error_);
        fprintf(stderr, "\n");
    }
    free(conns_);
    free(latencies_);
    SSL_CTX_free(ssl_ctx_);
    close(ep_);
    bool ok = n_login_ok_ == opt.count && held_at_end == opt.count && total_failures() == 0;
    return ok ? 0 : 1;
}
