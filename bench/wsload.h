/*
 * wsload.h — what the WebSocket load generators (ws_hold.c, ws_swarm.c)
 * share: the clock, argument parsing, a socket bound to a source address,
 * client frames out and server frames in, control lines on stdin, and the
 * first error kept for the report. libc only, like the generators.
 *
 * Include it from exactly one .c, which defines die_usage() (declared here).
 */
#ifndef RTMD_BENCH_WSLOAD_H
#define RTMD_BENCH_WSLOAD_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* Prints msg and the generator's usage, exits 2. */
static void die_usage(const char *msg);

static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline unsigned long parse_ulong(const char *s, unsigned long max, const char *what)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > max) {
        char msg[128];
        snprintf(msg, sizeof(msg), "bad %s: %s", what, s);
        die_usage(msg);
    }
    return v;
}

static inline double parse_double(const char *s, const char *what)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "bad %s: %s", what, s);
        die_usage(msg);
    }
    return v;
}

/* Appends the comma-separated IPv4 addresses of list to out[*n], at most
 * max in all. */
static inline void parse_sources(const char *list, struct in_addr *out, unsigned *n, unsigned max)
{
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char addr[64];
        if (len == 0 || len >= sizeof(addr) || *n >= max)
            die_usage("bad --sources");
        memcpy(addr, p, len);
        addr[len] = '\0';
        if (inet_pton(AF_INET, addr, &out[*n]) != 1)
            die_usage("bad address in --sources");
        (*n)++;
        p += len;
        if (*p == ',')
            p++;
    }
}

static inline const char *find_mem(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, k) == 0)
            return hay + i;
    return NULL;
}

/* A non-blocking TCP socket bound to src (IP_BIND_ADDRESS_NO_PORT: the port
 * is picked at connect(), so only the 4-tuple must be unique), with
 * TCP_NODELAY. The fd, or -errno with *what naming the call that failed. */
static inline int socket_from(struct in_addr src, const char **what)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *what = "socket";
        return -errno;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr = src};
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = errno;
        close(fd);
        *what = "bind";
        return -e;
    }
    return fd;
}

/* Starts a non-blocking connect() of fd to dst, watched on ep for
 * writability under tag. 0, or -errno with *what naming the call. */
static inline int connect_watched(int ep, int fd, uint32_t tag, const struct sockaddr_in *dst,
                                  const char **what)
{
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        *what = "epoll_ctl";
        return -errno;
    }
    if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0 && errno != EINPROGRESS) {
        *what = "connect";
        return -errno;
    }
    return 0;
}

/* How the connect() of fd ended, once it is writable: 0 or an errno. */
static inline int connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    return err;
}

/* Writes a masked text frame of payload[0, n) into out (client frames must
 * be masked, RFC 6455 §5.3); its length, or 0 if cap is too small. */
static inline size_t frame_text(char *out, size_t cap, const char *payload, size_t n, uint32_t seed)
{
    size_t h = 0;
    if (n > 65535 || cap < n + 8)
        return 0;
    out[h++] = (char)0x81; /* FIN + text */
    if (n < 126) {
        out[h++] = (char)(0x80 | n);
    } else {
        out[h++] = (char)(0x80 | 126);
        out[h++] = (char)(n >> 8);
        out[h++] = (char)(n & 0xff);
    }
    unsigned char mask[4] = {(unsigned char)(seed * 2654435761u >> 24), (unsigned char)(seed >> 3),
                             (unsigned char)(seed * 40503u), 0x5a};
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t k = 0; k < n; k++)
        out[h + k] = (char)(payload[k] ^ mask[k & 3]);
    return h + n;
}

/* The server frame at buf[0, n): its total length with *op, *payload and
 * *plen set; 0 while incomplete; SIZE_MAX if it would exceed max bytes
 * (these benchmarks never get a frame of 64 KiB). */
static inline size_t parse_frame(const char *buf, size_t n, size_t max, unsigned *op,
                                 const char **payload, size_t *plen)
{
    const unsigned char *p = (const unsigned char *)buf;
    if (n < 2)
        return 0;
    size_t len = p[1] & 0x7f, h = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = ((size_t)p[2] << 8) | p[3];
        h = 4;
    } else if (len == 127) {
        return SIZE_MAX;
    }
    if (p[1] & 0x80)
        h += 4; /* servers do not mask, but be lenient */
    if (h + len > max)
        return SIZE_MAX;
    if (n < h + len)
        return 0;
    *op = p[0] & 0x0f;
    *payload = buf + h;
    *plen = len;
    return h + len;
}

/* Control lines from the driver. */
struct lines {
    char buf[512];
    size_t len;
};

/* Reads what fd has and calls on_line with each complete line (without its
 * '\n'); a line longer than the buffer is dropped. 0, or -1 at EOF or on an
 * error (the driver is gone). */
static inline int read_lines(struct lines *l, int fd, void (*on_line)(char *line))
{
    ssize_t n = read(fd, l->buf + l->len, sizeof(l->buf) - 1 - l->len);
    if (n <= 0)
        return n < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    l->len += (size_t)n;
    l->buf[l->len] = '\0';
    char *nl;
    while ((nl = strchr(l->buf, '\n'))) {
        *nl = '\0';
        on_line(l->buf);
        size_t used = (size_t)(nl - l->buf) + 1;
        memmove(l->buf, nl + 1, l->len - used + 1);
        l->len -= used;
    }
    if (l->len == sizeof(l->buf) - 1)
        l->len = 0;
    return 0;
}

/* The first error of the run, for the report. */
static char first_error_[160];

static inline void keep_first_error(uint32_t i, int err, const char *what)
{
    if (!first_error_[0])
        snprintf(first_error_, sizeof(first_error_), "conn %u: %s: %s", i, what,
                 err ? strerror(err) : "-");
}

/* The benches' client TLS context: no certificate check (the server's is
 * self-signed), buffers released while idle (as a held client would), no
 * session cache (each connection a full handshake), plus mode. NULL on
 * failure. */
static inline SSL_CTX *tls_client_ctx(long mode)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | mode);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

/* A client SSL on the connected fd, or NULL. */
static inline SSL *tls_client_new(SSL_CTX *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl && SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    if (ssl)
        SSL_set_connect_state(ssl);
    return ssl;
}

/* One step of a client's TLS handshake on fd, watched in ep under tag:
 * 1 done, 0 under way (the watch now waits for what OpenSSL wants), -1
 * failed, with the reason in what. */
static inline int tls_handshake_step(int ep, SSL *ssl, int fd, uint32_t tag, char *what,
                                     size_t whatlen)
{
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        struct epoll_event ev = {.events =
                                     (e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT) | EPOLLRDHUP,
                                 .data.u32 = tag};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        return 0;
    }
    unsigned long err = ERR_peek_error();
    snprintf(what, whatlen, "TLS handshake: %s",
             err ? ERR_reason_error_string(err) : "closed or reset");
    ERR_clear_error();
    return -1;
}

#endif
