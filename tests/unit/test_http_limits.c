/*
 * Unit tests for net/http.c's limits and request cycle, run over the conn
 * stubs the fuzz drivers use (fuzz/stub_conn.h; conn.o is not linked): the
 * head limit and header count (431), Content-Length and chunked bodies over
 * the maximum (413), malformed requests (400), pipelined requests answered
 * in order, keep-alive by version and Connection, and the exact bytes of an
 * error answer; RFC 9112 strictness (Host, obs-fold, transfer codings: 501,
 * absolute-form targets), HEAD, pipelined requests that wait while the
 * client does not read, a half-closed client's pipelined requests, and the
 * 503 of a connection over max_connections.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "../../fuzz/stub_conn.h"
#include "core/log.h"
#include "core/reqid.h"

#define MAX_HEAD    16384
#define MAX_HEADERS 100
#define MAX_BODY    (1024 * 1024)

static const char status_431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n";
static const char status_413[] = "HTTP/1.1 413 Payload Too Large\r\n";
static const char status_400[] = "HTTP/1.1 400 Bad Request\r\n";
static const char status_200[] = "HTTP/1.1 200 OK\r\n";

struct fixture {
    struct rtmd_config cfg;
    struct rtmd_server server;
    struct rtmd_listener listener;
    struct stub_conn *conn;
    struct rtmd_buf out;
};

/* What the handler saw and does. */
static int handled_;       /* requests handed to the handler */
static char last_url_[64]; /* the url of the last one */
static size_t last_n_headers_;
static int in_handler_;     /* handed over and not answered yet */
static int max_in_handler_; /* the most at once */
static int defer_passes_[8];
static size_t last_body_len_;

struct later {
    struct rtmd_deferred d;
    struct rtmd_http_request *req;
    int passes;
};

static void answer(struct rtmd_http_request *req)
{
    char body[32];
    int n = snprintf(body, sizeof(body), "seq=%d", (int)(intptr_t)req->data);
    in_handler_--;
    rtmd_http_respond(req, 200, "text/plain", RTMD_STR_NULL, rtmd_str_make(body, (size_t)n));
}

static void on_later(struct rtmd_deferred *d)
{
    struct later *l = RTMD_CONTAINER_OF(d, struct later, d);
    if (l->passes-- > 0) {
        rtmd_defer(&l->d, on_later);
        return;
    }
    answer(l->req);
    free(l);
}

static void on_request(struct rtmd_http_request *req)
{
    int seq = handled_++;
    req->data = (void *)(intptr_t)seq;
    last_body_len_ = req->body.len;
    last_n_headers_ = req->n_headers;
    snprintf(last_url_, sizeof(last_url_), "%.*s", (int)req->url.len, req->url.p);
    if (++in_handler_ > max_in_handler_)
        max_in_handler_ = in_handler_;
    int passes = seq < 8 ? defer_passes_[seq] : 0;
    if (passes < 0) {
        answer(req);
        return;
    }
    struct later *l = calloc(1, sizeof(*l));
    l->req = req;
    l->passes = passes;
    rtmd_defer(&l->d, on_later);
}

/* ---- fixture --------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    stub_loop_init();
    rtmd_log_level = RTMD_LOG_ERROR;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    stub_loop_close();
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct rtmd_limits *l = &f->cfg.limits;
    l->http_max_head = MAX_HEAD;
    l->http_max_headers = MAX_HEADERS;
    l->http_max_body = MAX_BODY;
    l->http_header_timeout_ms = 10000;
    l->http_idle_timeout_s = 60;
    l->max_connections = 10;
    stub_server_init(&f->server, &f->listener, &f->cfg, on_request);
    rtmd_buf_init(&f->out, 1 << 20);
    rtmd_request_id_init(7, 100);
    handled_ = in_handler_ = max_in_handler_ = 0;
    for (size_t i = 0; i < 8; i++)
        defer_passes_[i] = -1; /* answer at once */
    stub_conn_open(&f->server, &f->listener, &f->out, &f->conn);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    stub_run_loop();
    if (f->conn)
        rtmd_conn_close(&f->conn->c);
    stub_run_loop();
    assert_null(f->conn);
    assert_int_equal(stub_live_, 0);
    assert_int_equal(in_handler_, 0);
    stub_server_close(&f->server);
    rtmd_buf_free(&f->out);
    free(f);
    return 0;
}

static void send_bytes(struct fixture *f, const void *p, size_t n)
{
    assert_non_null(f->conn);
    assert_true(stub_reading(f->conn));
    stub_read(f->conn, p, n);
}

static void send_str(struct fixture *f, const char *s)
{
    send_bytes(f, s, strlen(s));
}

/* The output as a NUL-terminated string (for strstr). */
static const char *out_str(struct fixture *f)
{
    rtmd_buf_append_byte(&f->out, '\0');
    f->out.len--;
    return f->out.data ? f->out.data : "";
}

static bool starts_with(struct fixture *f, const char *prefix)
{
    return f->out.len >= strlen(prefix) && memcmp(f->out.data, prefix, strlen(prefix)) == 0;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* An error answer closes: one response, "Connection: close", then the
 * connection lingers (or is gone) and nothing reached the handler. */
static void assert_error_answer(struct fixture *f, const char *status)
{
    stub_run_loop();
    const char *out = out_str(f);
    if (!starts_with(f, status))
        fail_msg("want %s, got: %.60s", status, out);
    assert_int_equal(count(out, "HTTP/1.1 "), 1);
    assert_non_null(strstr(out, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(out, "\r\nContent-Type: application/json;charset=utf-8\r\n"));
    assert_int_equal(handled_, 0);
    assert_true(!f->conn || (f->conn->c.flags & (RTMD_CONN_LINGER | RTMD_CONN_CLOSING)));
}

/* A request with Host and one header whose value makes the head exactly
 * head_bytes as http.c counts it: the URL, and name + value + 4 for each
 * header. */
static char *request_with_head(size_t head_bytes)
{
    const size_t url = 2, name = 1, host = 4 + 1 + 4; /* "/x", "H", "Host" "x" */
    size_t vlen = head_bytes - url - host - name - 4;
    struct rtmd_buf b;
    rtmd_buf_init(&b, SIZE_MAX);
    rtmd_buf_append_cstr(&b, "GET /x HTTP/1.1\r\nHost: x\r\nH: ");
    for (size_t i = 0; i < vlen; i++)
        rtmd_buf_append_byte(&b, 'v');
    rtmd_buf_append_cstr(&b, "\r\n\r\n");
    rtmd_buf_append_byte(&b, '\0');
    return b.data;
}

/* ---- 431 ------------------------------------------------------------------------------------- */

static void test_head_at_limit_accepted(void **state)
{
    struct fixture *f = *state;
    char *req = request_with_head(MAX_HEAD);
    send_str(f, req);
    free(req);
    stub_run_loop();
    assert_int_equal(handled_, 1);
    assert_true(starts_with(f, status_200));
}

static void test_head_over_limit_431(void **state)
{
    struct fixture *f = *state;
    char *req = request_with_head(MAX_HEAD + 1);
    /* in small reads, as a slow client would send it */
    for (size_t off = 0, n = strlen(req); off < n && f->conn && stub_reading(f->conn); off += 1000)
        send_bytes(f, req + off, RTMD_MIN((size_t)1000, n - off));
    free(req);
    assert_error_answer(f, status_431);
}

static void test_16k_head_431(void **state)
{
    struct fixture *f = *state;
    /* a 16 KiB request head: 16 headers of 1 KiB */
    struct rtmd_buf b;
    rtmd_buf_init(&b, SIZE_MAX);
    rtmd_buf_append_cstr(&b, "GET / HTTP/1.1\r\n");
    for (int h = 0; h < 16; h++) {
        rtmd_buf_printf(&b, "X-H%02d: ", h);
        for (int i = 0; i < 1024 - 9; i++)
            rtmd_buf_append_byte(&b, 'a');
        rtmd_buf_append_cstr(&b, "\r\n");
    }
    rtmd_buf_append_cstr(&b, "\r\n");
    assert_true(b.len >= 16 * 1024);
    send_bytes(f, b.data, b.len);
    rtmd_buf_free(&b);
    assert_error_answer(f, status_431);
}

/* A request with n headers, Host the first. */
static char *request_with_headers(int n)
{
    struct rtmd_buf b;
    rtmd_buf_init(&b, SIZE_MAX);
    rtmd_buf_append_cstr(&b, "GET /h HTTP/1.1\r\nHost: x\r\n");
    for (int i = 1; i < n; i++)
        rtmd_buf_printf(&b, "X-Header-%d: %d\r\n", i, i);
    rtmd_buf_append_cstr(&b, "\r\n");
    rtmd_buf_append_byte(&b, '\0');
    return b.data;
}

static void test_100_headers_accepted(void **state)
{
    struct fixture *f = *state;
    char *req = request_with_headers(MAX_HEADERS);
    send_str(f, req);
    free(req);
    stub_run_loop();
    assert_int_equal(handled_, 1);
    assert_true(starts_with(f, status_200));
}

static void test_101_headers_431(void **state)
{
    struct fixture *f = *state;
    char *req = request_with_headers(MAX_HEADERS + 1);
    send_str(f, req);
    free(req);
    assert_error_answer(f, status_431);
}

/* ---- 413 ------------------------------------------------------------------------------------- */

static void test_content_length_over_max_413(void **state)
{
    struct fixture *f = *state;
    /* refused as soon as the head is read, before any of the body */
    char req[128];
    snprintf(req, sizeof(req), "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
             MAX_BODY + 1);
    send_str(f, req);
    assert_error_answer(f, status_413);
}

static void test_content_length_huge_413(void **state)
{
    struct fixture *f = *state;
    send_str(f, "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551614\r\n\r\n");
    stub_run_loop();
    /* over 2^64-2 http-parser itself refuses (400); either way an error */
    assert_true(starts_with(f, status_413) || starts_with(f, status_400));
    assert_int_equal(handled_, 0);
}

static void test_content_length_at_max_accepted(void **state)
{
    struct fixture *f = *state;
    char head[128];
    snprintf(head, sizeof(head), "PUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
             MAX_BODY);
    send_str(f, head);
    char *body = malloc(MAX_BODY);
    memset(body, 'b', MAX_BODY);
    for (size_t off = 0; off < MAX_BODY; off += 65536)
        send_bytes(f, body + off, 65536);
    free(body);
    stub_run_loop();
    assert_int_equal(handled_, 1);
    assert_int_equal(last_body_len_, MAX_BODY);
    assert_true(starts_with(f, status_200));
}

/* A chunked body of `total` bytes in chunks of at most 64 KiB. */
static void send_chunked(struct fixture *f, size_t total)
{
    send_str(f, "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    char *chunk = malloc(65536);
    memset(chunk, 'c', 65536);
    for (size_t left = total; left > 0 && f->conn && stub_reading(f->conn);) {
        size_t n = RTMD_MIN(left, (size_t)65536);
        char size[32];
        snprintf(size, sizeof(size), "%zx\r\n", n);
        send_str(f, size);
        if (!f->conn || !stub_reading(f->conn))
            break;
        send_bytes(f, chunk, n);
        if (!f->conn || !stub_reading(f->conn))
            break;
        send_str(f, "\r\n");
        left -= n;
    }
    free(chunk);
    if (f->conn && stub_reading(f->conn))
        send_str(f, "0\r\n\r\n");
}

static void test_chunked_over_max_413(void **state)
{
    struct fixture *f = *state;
    send_chunked(f, MAX_BODY + 1);
    assert_error_answer(f, status_413);
}

static void test_chunked_at_max_accepted(void **state)
{
    struct fixture *f = *state;
    send_chunked(f, MAX_BODY);
    stub_run_loop();
    assert_int_equal(handled_, 1);
    assert_int_equal(last_body_len_, MAX_BODY);
    assert_true(starts_with(f, status_200));
}

/* ---- 400 ------------------------------------------------------------------------------------- */

static void test_malformed_400(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",       /* a TLS ClientHello */
        "GET / HTTP/1.1\r\nHost: x\r\nbad header: x\r\n\r\n", /* space in a header name */
        "GET / HTTX/1.1\r\nHost: x\r\n\r\n",                  /* not HTTP */
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 12a\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET /\r\n\r\n", /* no version (HTTP/0.9) */
        /* RFC 9112 strictness */
        "GET / HTTP/1.1\r\n\r\n",                             /* HTTP/1.1 without Host */
        "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",       /* Host twice */
        "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n",       /* in 1.0 too */
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",                /* invalid Host */
        "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",                /* invalid Host */
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n",  /* obs-fold */
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\t2\r\n\r\n", /* obs-fold, tab */
        "GET / HTTP/1.1\r\n Host: x\r\n\r\n",                 /* space before a field */
        "GET http:///x HTTP/1.1\r\nHost: x\r\n\r\n",          /* empty authority */
        "GET http://u@h/x HTTP/1.1\r\nHost: x\r\n\r\n",       /* user information */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        void *st;
        setup(&st);
        struct fixture *f = st;
        send_str(f, bad[i]);
        stub_run_loop();
        if (!starts_with(f, status_400))
            fail_msg("case %zu: want 400, got: %.40s", i, out_str(f));
        assert_error_answer(f, status_400);
        teardown(&st);
    }
}

/* ---- the request cycle -------------------------------------------------------------------------
 */

static void test_pipelined_answered_in_order(void **state)
{
    struct fixture *f = *state;
    /* the first answer takes longest; none may overtake it */
    defer_passes_[0] = 4;
    defer_passes_[1] = 0;
    defer_passes_[2] = 2;
    defer_passes_[3] = -1;
    send_str(f, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                "GET /d HTTP/1.1\r\nHost: x\r\n\r\n");
    /* one at a time: only the first is being handled */
    assert_int_equal(handled_, 1);
    stub_run_loop();
    assert_int_equal(handled_, 4);
    assert_int_equal(max_in_handler_, 1);
    const char *out = out_str(f);
    assert_int_equal(count(out, status_200), 4);
    assert_null(strstr(out, "Connection: close"));
    const char *s0 = strstr(out, "seq=0"), *s1 = strstr(out, "seq=1");
    const char *s2 = strstr(out, "seq=2"), *s3 = strstr(out, "seq=3");
    assert_true(s0 && s1 && s2 && s3);
    assert_true(s0 < s1 && s1 < s2 && s2 < s3);
    /* and the connection waits for more */
    assert_true(stub_reading(f->conn));
    assert_ptr_equal(f->conn->armed, &f->server.idle_timeouts);
}

static void test_pipelined_split_anywhere(void **state)
{
    (void)state;
    static const char reqs[] =
        "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        "X: 1\r\n\r\nhiGET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    /* every split point of the same three requests gives the same answers */
    for (size_t cut = 1; cut < sizeof(reqs) - 1; cut++) {
        void *st;
        setup(&st);
        struct fixture *f = st;
        defer_passes_[0] = 1;
        send_bytes(f, reqs, cut);
        stub_run_loop();
        send_bytes(f, reqs + cut, sizeof(reqs) - 1 - cut);
        stub_run_loop();
        assert_int_equal(handled_, 3);
        const char *out = out_str(f);
        assert_int_equal(count(out, status_200), 3);
        assert_true(strstr(out, "seq=0") < strstr(out, "seq=1"));
        assert_true(strstr(out, "seq=1") < strstr(out, "seq=2"));
        teardown(&st);
    }
}

struct keepalive_case {
    const char *request;
    bool keep;
};

static void test_keep_alive_and_close(void **state)
{
    (void)state;
    static const struct keepalive_case cases[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        void *st;
        setup(&st);
        struct fixture *f = st;
        send_str(f, cases[i].request);
        stub_run_loop();
        assert_int_equal(handled_, 1);
        const char *out = out_str(f);
        assert_true(starts_with(f, status_200)); /* HTTP/1.1 answers to 1.0 as well */
        bool closes = strstr(out, "\r\nConnection: close\r\n") != NULL;
        if (closes == cases[i].keep)
            fail_msg("case %zu: keep-alive %d, but the answer says close %d", i, cases[i].keep,
                     closes);
        if (cases[i].keep) {
            /* open, reading, idle timeout armed; a second request works */
            assert_non_null(f->conn);
            assert_false(f->conn->c.flags & (RTMD_CONN_LINGER | RTMD_CONN_CLOSING));
            assert_ptr_equal(f->conn->armed, &f->server.idle_timeouts);
            send_str(f, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n");
            stub_run_loop();
            assert_int_equal(handled_, 2);
        } else {
            assert_true(!f->conn || (f->conn->c.flags & (RTMD_CONN_LINGER | RTMD_CONN_CLOSING)));
            /* input after the answer is discarded */
            if (f->conn && !(f->conn->c.flags & RTMD_CONN_CLOSING))
                stub_read(f->conn, "GET / HTTP/1.0\r\n\r\n", 18);
            stub_run_loop();
            assert_int_equal(handled_, 1);
        }
        teardown(&st);
    }
}

static void test_half_close_answered_then_closed(void **state)
{
    struct fixture *f = *state;
    defer_passes_[0] = 2;
    send_str(f, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    stub_eof(f->conn); /* the client shuts its write side while we work */
    assert_non_null(f->conn);
    stub_run_loop();
    const char *out = out_str(f);
    assert_true(starts_with(f, status_200));
    assert_non_null(strstr(out, "\r\nConnection: close\r\n"));
    assert_true(!f->conn || (f->conn->c.flags & (RTMD_CONN_LINGER | RTMD_CONN_CLOSING)));
}

static void test_timeouts(void **state)
{
    struct fixture *f = *state;
    /* a new connection must send its request within the header timeout */
    assert_ptr_equal(f->conn->armed, &f->server.request_timeouts);
    send_str(f, "GET / HTTP/1.1\r\nHost: par");
    assert_ptr_equal(f->conn->armed, &f->server.request_timeouts);
    assert_true(stub_fire_timeout(f->conn));
    stub_run_loop();
    assert_null(f->conn); /* closed without an answer */
    assert_int_equal(f->out.len, 0);
    assert_int_equal(handled_, 0);
}

static void test_exact_431_bytes(void **state)
{
    struct fixture *f = *state;
    char *req = request_with_headers(MAX_HEADERS + 1);
    send_str(f, req);
    free(req);
    stub_run_loop();
    static const char body[] =
        "{\"code\":\"header_too_large\",\"message\":\"request head too large "
        "or too many headers\",\"request_id\":\"7_100\",\"result\":\"failed\"}";
    char want[512];
    int n = snprintf(want, sizeof(want),
                     "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                     "Content-Type: application/json;charset=utf-8\r\n"
                     "Content-Length: %zu\r\n"
                     "X-Request-ID: 7_100\r\n"
                     "Connection: close\r\n"
                     "\r\n%s",
                     sizeof(body) - 1, body);
    assert_int_equal(f->out.len, (size_t)n);
    assert_memory_equal(f->out.data, want, (size_t)n);
}

static void test_exact_200_bytes(void **state)
{
    struct fixture *f = *state;
    send_str(f, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    stub_run_loop();
    static const char want[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 5\r\n"
                               "X-Request-ID: 7_100\r\n"
                               "\r\n"
                               "seq=0";
    assert_int_equal(f->out.len, sizeof(want) - 1);
    assert_memory_equal(f->out.data, want, sizeof(want) - 1);
}

/* ---- RFC 9112 strictness -------------------------------------------------------------------- */

static void test_transfer_coding_other_than_chunked_501(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: identity\r\n",
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: identity\r\nContent-Length: 3\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        void *st;
        setup(&st);
        struct fixture *f = st;
        char req[256];
        snprintf(req, sizeof(req), "POST /t HTTP/1.1\r\nHost: x\r\n%s\r\n0\r\n\r\n", bad[i]);
        send_str(f, req);
        stub_run_loop();
        if (!starts_with(f, "HTTP/1.1 501 Not Implemented\r\n"))
            fail_msg("case %zu: want 501, got: %.40s", i, out_str(f));
        assert_non_null(strstr(out_str(f), "\"code\":\"not_implemented\""));
        assert_error_answer(f, "HTTP/1.1 501 ");
        teardown(&st);
    }
}

/* "chunked" in any case is read; trailer fields are dropped, not merged
 * into the headers (a second Host there is not a second Host). */
static void test_chunked_any_case_accepted_trailers_dropped(void **state)
{
    struct fixture *f = *state;
    send_str(f, "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  Chunked \r\n\r\n"
                "2\r\nab\r\n0\r\nHost: y\r\nX-T: 1\r\n\r\n");
    stub_run_loop();
    assert_int_equal(handled_, 1);
    assert_int_equal(last_body_len_, 2);
    assert_int_equal(last_n_headers_, 2);
    assert_true(starts_with(f, status_200));
}

static void test_http10_without_host_and_absolute_form_accepted(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"GET /a?b HTTP/1.0\r\n\r\n", "/a?b"},
        {"GET http://h:1/dev/v2/x?y=1 HTTP/1.1\r\nHost: other\r\n\r\n", "/dev/v2/x?y=1"},
        {"GET HTTPS://h/ HTTP/1.1\r\nHost: h\r\n\r\n", "/"},
        {"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", "/"},
        {"GET http://h?q=1 HTTP/1.0\r\n\r\n", "/?q=1"},
        {"GET /x HTTP/1.1\r\nHost:\r\n\r\n", "/x"}, /* empty Host is allowed */
        {"GET /x HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n", "/x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        void *st;
        setup(&st);
        struct fixture *f = st;
        send_str(f, cases[i][0]);
        stub_run_loop();
        if (handled_ != 1 || strcmp(last_url_, cases[i][1]) != 0)
            fail_msg("case %zu: handled %d, url %s, out %.40s", i, handled_, last_url_, out_str(f));
        teardown(&st);
    }
}

static void test_obs_fold_split_across_reads_400(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n";
    for (size_t cut = 1; cut < sizeof(req) - 1; cut++) {
        void *st;
        setup(&st);
        struct fixture *f = st;
        send_bytes(f, req, cut);
        if (f->conn && stub_reading(f->conn))
            send_bytes(f, req + cut, sizeof(req) - 1 - cut);
        assert_error_answer(f, status_400);
        teardown(&st);
    }
}

/* A body that looks like a folded header line is a body. */
static void test_body_is_not_scanned(void **state)
{
    struct fixture *f = *state;
    send_str(f, "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n\n x\r\n\t"
                "GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
    stub_run_loop();
    assert_int_equal(handled_, 2);
    assert_int_equal(count(out_str(f), status_200), 2);
}

/* ---- HEAD ----------------------------------------------------------------------------------- */

static void test_head_answer_has_no_body(void **state)
{
    struct fixture *f = *state;
    send_str(f, "HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n");
    stub_run_loop();
    assert_int_equal(handled_, 2);
    static const char want[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "X-Request-ID: 7_100\r\n"
                               "\r\n"
                               "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 5\r\n"
                               "X-Request-ID: 7_101\r\n"
                               "\r\n"
                               "seq=1";
    assert_int_equal(f->out.len, sizeof(want) - 1);
    assert_memory_equal(f->out.data, want, sizeof(want) - 1);
}

static void test_head_error_answer_has_no_body(void **state)
{
    struct fixture *f = *state;
    send_str(f, "HEAD /x HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n");
    stub_run_loop();
    static const char want[] = "HTTP/1.1 400 Bad Request\r\n"
                               "Content-Type: application/json;charset=utf-8\r\n"
                               "X-Request-ID: 7_100\r\n"
                               "Connection: close\r\n"
                               "\r\n";
    assert_int_equal(f->out.len, sizeof(want) - 1);
    assert_memory_equal(f->out.data, want, sizeof(want) - 1);
}

/* ---- a client that does not read ------------------------------------------------------------ */

static void test_pipelined_requests_wait_while_answers_are_unsent(void **state)
{
    struct fixture *f = *state;
    enum { N = 3000 };
    f->conn->backpressure = true; /* nothing is written until stub_drain() */
    static const char one[] = "GET /p HTTP/1.1\r\nHost: x\r\n\r\n";
    struct rtmd_buf b;
    rtmd_buf_init(&b, SIZE_MAX);
    for (int i = 0; i < N; i++)
        rtmd_buf_append(&b, one, sizeof(one) - 1);
    size_t sent = 0;
    int rounds = 0;
    while (handled_ < N) {
        assert_true(++rounds < 100);
        /* the client sends what the server reads, and reads nothing */
        while (sent < b.len && f->conn && stub_reading(f->conn)) {
            size_t n = RTMD_MIN(b.len - sent, (size_t)65536);
            send_bytes(f, b.data + sent, n);
            sent += n;
            stub_run_loop();
        }
        stub_run_loop();
        /* stopped: at most 64 KiB of answers wait, and one more answer */
        assert_true(f->conn->c.out_pending <= 64 * 1024 + 128);
        assert_true(handled_ == N || f->conn->c.out_pending > 64 * 1024);
        if (handled_ < N) {
            assert_ptr_equal(f->conn->armed, &f->server.idle_timeouts);
            assert_true(sent < b.len || handled_ < N);
        }
        stub_drain(f->conn); /* the client reads everything */
        stub_run_loop();
    }
    rtmd_buf_free(&b);
    assert_int_equal(sent, N * (sizeof(one) - 1));
    /* every answer, in order */
    const char *out = out_str(f);
    assert_int_equal(count(out, status_200), N);
    char want[32];
    const char *at = out;
    for (int i = 0; i < N; i++) {
        snprintf(want, sizeof(want), "\r\n\r\nseq=%d", i);
        at = strstr(at, want);
        assert_non_null(at);
    }
    assert_true(rounds >= 4); /* ~270 KiB of answers, 64 KiB at a time */
}

/* A malformed request pipelined behind one whose answer the client has not
 * read: the error answer waits to be written, with a timeout running (the
 * request's was disarmed at the dispatch before), even after EOF. */
static void test_error_answer_waiting_for_the_reader_has_a_timeout(void **state)
{
    struct fixture *f = *state;
    f->conn->backpressure = true;
    send_str(f, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTTP/1.1\r\n\r\n");
    stub_run_loop();
    assert_int_equal(handled_, 1);
    assert_non_null(strstr(out_str(f), "HTTP/1.1 400 "));
    assert_true(f->conn->c.flags & RTMD_CONN_CLOSE_AFTER_WRITE);
    stub_eof(f->conn);
    stub_run_loop();
    assert_non_null(f->conn);
    /* the graceful close waits for the output under the drain timeout */
    assert_ptr_equal(f->conn->armed, &f->server.drain_timeouts);
    assert_true(stub_fire_timeout(f->conn));
    stub_run_loop();
    assert_null(f->conn);
}

static void test_eof_after_pipelined_requests_answers_them_all(void **state)
{
    struct fixture *f = *state;
    defer_passes_[0] = 2;
    send_str(f, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
    stub_eof(f->conn);
    stub_run_loop();
    assert_int_equal(handled_, 3);
    const char *out = out_str(f);
    assert_int_equal(count(out, status_200), 3);
    /* only the last answer closes */
    const char *close = strstr(out, "\r\nConnection: close\r\n");
    assert_non_null(close);
    assert_true(close > strstr(out, "seq=1"));
    assert_true(!f->conn || (f->conn->c.flags & (RTMD_CONN_LINGER | RTMD_CONN_CLOSING)));
}

/* ---- over max_connections ------------------------------------------------------------------- */

static void test_over_max_connections_is_answered_503(void **state)
{
    struct fixture *f = *state;
    f->cfg.limits.max_connections = 1; /* f->conn is the one */
    struct rtmd_buf out2;
    rtmd_buf_init(&out2, 1 << 16);
    struct stub_conn *c2;
    stub_conn_open(&f->server, &f->listener, &out2, &c2);
    assert_non_null(c2);
    assert_int_equal(f->server.n_busy, 1);
    assert_ptr_equal(c2->armed, &f->server.request_timeouts);
    stub_read(c2, "GET /x HTTP/1.1\r\n", 17);
    stub_read(c2, "Host: x\r\n\r\n", 11); /* discarded: answered already */
    stub_run_loop();
    rtmd_buf_append_byte(&out2, '\0');
    static const char head[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Type: application/json;charset=utf-8\r\n";
    assert_memory_equal(out2.data, head, sizeof(head) - 1);
    assert_non_null(strstr(out2.data, "\r\nRetry-After: 1\r\n"));
    assert_non_null(strstr(out2.data, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(out2.data, "\r\n\r\n{\"code\":\"service_unavailable\","));
    assert_int_equal(count(out2.data, "HTTP/1.1 "), 1);
    assert_true(!c2 || (c2->c.flags & (RTMD_CONN_LINGER | RTMD_CONN_CLOSING)));
    if (c2)
        rtmd_conn_close(&c2->c);
    stub_run_loop();
    assert_null(c2);
    assert_int_equal(f->server.n_busy, 0);
    assert_int_equal(f->server.rejected_full, 1);
    assert_int_equal(f->server.rejected_answered, 1);
    /* the first connection was served all along */
    send_str(f, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    stub_run_loop();
    assert_int_equal(handled_, 1);
    rtmd_buf_free(&out2);
}

static void test_busy_answers_are_bounded(void **state)
{
    struct fixture *f = *state;
    f->cfg.limits.max_connections = 1;
    enum { N = 40 };
    struct stub_conn *cs[N];
    struct rtmd_buf outs[N];
    for (int i = 0; i < N; i++) {
        rtmd_buf_init(&outs[i], 1 << 16);
        stub_conn_open(&f->server, &f->listener, &outs[i], &cs[i]);
    }
    /* 32 are answered; the rest were closed at once */
    assert_int_equal(f->server.n_busy, 32);
    assert_int_equal(f->server.rejected_full, N);
    assert_int_equal(f->server.rejected_answered, 32);
    stub_run_loop();
    for (int i = 0; i < N; i++) {
        if (i < 32) {
            /* silent: closed at the request timeout, unanswered */
            assert_true(stub_fire_timeout(cs[i]));
            stub_run_loop();
        }
        assert_null(cs[i]);
        assert_int_equal(outs[i].len, 0);
        rtmd_buf_free(&outs[i]);
    }
    assert_int_equal(f->server.n_busy, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_head_at_limit_accepted),
        T(test_head_over_limit_431),
        T(test_16k_head_431),
        T(test_100_headers_accepted),
        T(test_101_headers_431),
        T(test_content_length_over_max_413),
        T(test_content_length_huge_413),
        T(test_content_length_at_max_accepted),
        T(test_chunked_over_max_413),
        T(test_chunked_at_max_accepted),
        cmocka_unit_test(test_malformed_400),
        T(test_pipelined_answered_in_order),
        cmocka_unit_test(test_pipelined_split_anywhere),
        cmocka_unit_test(test_keep_alive_and_close),
        T(test_half_close_answered_then_closed),
        T(test_timeouts),
        T(test_exact_431_bytes),
        T(test_exact_200_bytes),
        cmocka_unit_test(test_transfer_coding_other_than_chunked_501),
        T(test_chunked_any_case_accepted_trailers_dropped),
        cmocka_unit_test(test_http10_without_host_and_absolute_form_accepted),
        cmocka_unit_test(test_obs_fold_split_across_reads_400),
        T(test_body_is_not_scanned),
        T(test_head_answer_has_no_body),
        T(test_head_error_answer_has_no_body),
        T(test_pipelined_requests_wait_while_answers_are_unsent),
        T(test_eof_after_pipelined_requests_answers_them_all),
        T(test_error_answer_waiting_for_the_reader_has_a_timeout),
        T(test_over_max_connections_is_answered_503),
        T(test_busy_answers_are_bounded),
    };
#undef T
    return cmocka_run_group_tests_name("http_limits", tests, group_setup, group_teardown);
}
