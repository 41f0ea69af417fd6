/*
 * tls_handshake.c — TLS handshakes per second against one server: each
 * thread connects, does the handshake, sends one
 * "GET PATH HTTP/1.1 ... Connection: close" and reads the answer to the
 * end, then closes, over and over. A load generator for bench/tls-handshake
 * (OpenSSL and libc only; it ignores librtmd.a).
 *
 *   build/bench/tls_handshake --port P [--host 127.0.0.1] [--path /healthz]
 *       [--mode full|resume] [--threads N] [--duration S] [--tls12]
 *
 * --mode full: every connection is a full handshake (no session offered).
 * --mode resume: each thread makes one full handshake, keeps the session
 * (the TLS 1.3 ticket arrives after the handshake, read with the answer),
 * then offers the newest session it holds on every connection: a
 * resumption with a ticket (PSK with (EC)DHE, as OpenSSL clients do).
 * Connections the server did not resume are counted apart (not_resumed).
 * The certificate is not verified (the client still checks the server's
 * signature, as TLS 1.3 requires); the client offers OpenSSL's default
 * groups (an X25519 key share).
 *
 * Output: one line "RESULT {json}" on stdout: connections completed,
 * resumed, not_resumed, errors, seconds, per_second. Exit 0, 1 when any
 * connection failed, 2 on bad arguments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct {
    struct sockaddr_in addr;
    const char *path;
    bool resume;
    bool tls12;
    double duration;
    int threads;
} opt = {.path = "/healthz", .duration = 5, .threads = 8};

static SSL_CTX *ctx_;
static atomic_bool stop_;
static atomic_ullong done_, resumed_, not_resumed_, errors_;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One connection: handshake, request, the answer to EOF. Returns the
 * session to offer next (a new reference), or NULL. *ok says it worked. */
static SSL_SESSION *one(SSL_SESSION *offer, bool *ok, bool *reused)
{
    *ok = false;
    *reused = false;
    SSL_SESSION *got = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    /* No TIME_WAIT on the client side: RST on close keeps the port range free. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    SSL *ssl = NULL;
    if (connect(fd, (struct sockaddr *)&opt.addr, sizeof(opt.addr)) != 0)
        goto out;
    ssl = SSL_new(ctx_);
    if (!ssl)
        goto out;
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (offer)
        SSL_set_session(ssl, offer);
    if (SSL_connect(ssl) != 1)
        goto out;
    *reused = SSL_session_reused(ssl);
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", opt.path);
    if (SSL_write(ssl, req, n) != n)
        goto out;
    char buf[16384];
    size_t total = 0;
    for (;;) {
        int r = SSL_read(ssl, buf, sizeof(buf));
        if (r > 0) {
            if (total == 0 && (r < 12 || memcmp(buf, "HTTP/1.1 200", 12) != 0))
                goto out;
            total += (size_t)r;
            continue;
        }
        int e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL)
            break; /* close_notify, or the server closed the TCP connection */
        goto out;
    }
    if (total == 0)
        goto out;
    *ok = true;
    if (opt.resume)
        got = SSL_get1_session(ssl);
out:
    if (ssl) {
        /* Marked shut down (nothing sent): SSL_free would otherwise mark the
         * session not resumable. */
        SSL_set_quiet_shutdown(ssl, 1);
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    close(fd);
    ERR_clear_error();
    return got;
}

static void *worker(void *arg)
{
    (void)arg;
    SSL_SESSION *sess = NULL;
    while (!atomic_load(&stop_)) {
        bool ok, reused;
        SSL_SESSION *got = one(sess, &ok, &reused);
        if (!ok) {
            atomic_fetch_add(&errors_, 1);
            if (got)
                SSL_SESSION_free(got);
            continue;
        }
        atomic_fetch_add(&done_, 1);
        if (opt.resume && sess)
            atomic_fetch_add(reused ? &resumed_ : &not_resumed_, 1);
        if (got && SSL_SESSION_is_resumable(got)) {
            if (sess)
                SSL_SESSION_free(sess);
            sess = got;
        } else if (got) {
            SSL_SESSION_free(got);
        }
    }
    if (sess)
        SSL_SESSION_free(sess);
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: tls_handshake --port P [--host A] [--path /healthz] "
                    "[--mode full|resume] [--threads N] [--duration S] [--tls12]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--tls12") == 0) {
            opt.tls12 = true;
            continue;
        }
        if (!v)
            return usage();
        i++;
        if (strcmp(a, "--port") == 0)
            port = strtol(v, NULL, 10);
        else if (strcmp(a, "--host") == 0)
            host = v;
        else if (strcmp(a, "--path") == 0)
            opt.path = v;
        else if (strcmp(a, "--mode") == 0 && (strcmp(v, "full") == 0 || strcmp(v, "resume") == 0))
            opt.resume = strcmp(v, "resume") == 0;
        else if (strcmp(a, "--threads") == 0)
            opt.threads = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--duration") == 0)
            opt.duration = strtod(v, NULL);
        else
            return usage();
    }
    if (port <= 0 || port > 65535 || opt.threads < 1 || opt.threads > 256 || opt.duration <= 0 ||
        strlen(opt.path) > 256)
        return usage();
    opt.addr.sin_family = AF_INET;
    opt.addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1)
        return usage();
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (!ctx_)
        return 1;
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_min_proto_version(ctx_, opt.tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    if (opt.tls12)
        SSL_CTX_set_max_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
    pthread_t th[256];
    double t0 = now_s();
    for (int i = 0; i < opt.threads; i++)
        if (pthread_create(&th[i], NULL, worker, NULL) != 0)
            return 1;
    struct timespec d = {(time_t)opt.duration,
                         (long)((opt.duration - (double)(time_t)opt.duration) * 1e9)};
    nanosleep(&d, NULL);
    unsigned long long at_stop = atomic_load(&done_);
    double secs = now_s() - t0;
    atomic_store(&stop_, true);
    for (int i = 0; i < opt.threads; i++)
        pthread_join(th[i], NULL);
    printf("RESULT {\"completed\": %llu, \"resumed\": %llu, \"not_resumed\": %llu, "
           "\"errors\": %llu, \"seconds\": %.3f, \"per_second\": %.1f}\n",
           at_stop, (unsigned long long)atomic_load(&resumed_),
           (unsigned long long)atomic_load(&not_resumed_),
           (unsigned long long)atomic_load(&errors_), secs, (double)at_stop / secs);
    fflush(stdout);
    SSL_CTX_free(ctx_);
    return atomic_load(&errors_) ? 1 : 0;
}
