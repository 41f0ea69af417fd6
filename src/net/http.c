/*
 * http.c — HTTP/1.1 on a connection, over http-parser (see http.h).
 *
 * State machine per connection:
 *
 *   IDLE ──first byte──▶ READING ──message complete──▶ HANDLING ──respond──▶ IDLE
 *     ▲                                                                        │
 *     └──────── (deferred) parse the pipelined bytes kept in `pending` ◀───────┘
 *
 * While a request is HANDLING, input is not parsed but appended to
 * `pending` (bounded; reading pauses when it is full), so answers leave in
 * request order. The parser is paused in on_message_complete so that one
 * http_parser_execute() call never runs past the end of one request.
 */
#include "net/http.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/json.h"
#include "core/log.h"

/* Pipelined input kept while a request is handled; reading pauses above it. */
#define PENDING_MAX     (256 * 1024)
#define PENDING_PAUSE   (128 * 1024)
#define HEADERS_INITIAL 16

enum http_state { ST_IDLE, ST_READING, ST_HANDLING, ST_DONE };
enum last_cb { CB_NONE, CB_URL, CB_FIELD, CB_VALUE };

struct rtmd_http_conn {
    http_parser parser;
    struct rtmd_conn *conn;
    struct rtmd_http_request *req;
    struct rtmd_buf pending;
    enum http_state state;
    enum last_cb last;
    int error_status; /* set by a callback that fails: 413 or 431 */
    size_t head_bytes;
    struct rtmd_deferred resume;
    bool resume_scheduled;
    bool line_checked;    /* the current request's request line was checked */
    struct rtmd_buf line; /* a request line split across reads */
};

/* A request whose connection closed while it was handled. */
#define REQ_ORPHANED(req) ((req)->conn == NULL)

static const struct rtmd_proto http_proto;
static http_parser_settings settings_;
static void parse_pending(struct rtmd_http_conn *hc);

const char *rtmd_http_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* ---- requests ------------------------------------------------------------ */

/* Answered requests are kept for reuse (with their head buffer and header
 * array), so a keep-alive client costs no allocation per request. */
#define REQUEST_POOL_MAX 64
static struct rtmd_http_request *pool_[REQUEST_POOL_MAX];
static size_t pool_n_;

static struct rtmd_http_request *request_new(struct rtmd_http_conn *hc)
{
    const struct rtmd_limits *lim = &hc->conn->server->cfg->limits;
    struct rtmd_http_request *req;
    if (pool_n_ > 0) {
        req = pool_[--pool_n_];
        struct rtmd_buf head = req->head;
        struct rtmd_http_header *headers = req->headers;
        size_t cap = req->headers_cap;
        memset(req, 0, sizeof(*req));
        req->head = head;
        rtmd_buf_reset(&req->head);
        req->headers = headers;
        req->headers_cap = cap;
    } else {
        req = rtmd_calloc(1, sizeof(*req));
        /* Reserved at its maximum up front, so views into it stay valid. The
         * untouched part costs address space, not memory. */
        rtmd_buf_init(&req->head, lim->http_max_head);
        if (rtmd_buf_reserve(&req->head, lim->http_max_head) < 0) {
            free(req);
            return NULL;
        }
    }
    req->conn = hc->conn;
    req->region = hc->conn->listener->region;
    rtmd_buf_init(&req->body_buf, lim->http_max_body);
    return req;
}

static void request_free(struct rtmd_http_request *req)
{
    rtmd_buf_free(&req->body_buf);
    if (pool_n_ < REQUEST_POOL_MAX) {
        pool_[pool_n_++] = req;
        return;
    }
    rtmd_buf_free(&req->head);
    free(req->headers);
    free(req);
}

void rtmd_http_shutdown(void)
{
    while (pool_n_ > 0) {
        struct rtmd_http_request *req = pool_[--pool_n_];
        rtmd_buf_free(&req->head);
        free(req->headers);
        free(req);
    }
}

struct rtmd_str rtmd_http_header(const struct rtmd_http_request *req, const char *name)
{
    struct rtmd_str n = rtmd_str_cstr(name);
    for (size_t i = 0; i < req->n_headers; i++)
        if (rtmd_str_ieq(req->headers[i].name, n))
            return req->headers[i].value;
    return RTMD_STR_NULL;
}

/* ---- parser callbacks ------------------------------------------------------ */

static struct rtmd_http_conn *hc_of(http_parser *p)
{
    return p->data;
}

static int head_append(struct rtmd_http_conn *hc, const char *at, size_t len, size_t overhead)
{
    const struct rtmd_limits *lim = &hc->conn->server->cfg->limits;
    hc->head_bytes += len + overhead;
    if (hc->head_bytes > lim->http_max_head) {
        hc->error_status = 431;
        return -1;
    }
    if (rtmd_buf_append(&hc->req->head, at, len) < 0) {
        hc->error_status = 431;
        return -1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct rtmd_http_conn *hc = hc_of(p);
    hc->req = request_new(hc);
    if (!hc->req) {
        hc->error_status = 500;
        return -1;
    }
    hc->state = ST_READING;
    hc->last = CB_NONE;
    hc->head_bytes = 0;
    rtmd_conn_arm_timeout(hc->conn, &hc->conn->server->request_timeouts);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct rtmd_http_conn *hc = hc_of(p);
    if (head_append(hc, at, len, 0) < 0)
        return -1;
    hc->req->url.len += len;
    hc->last = CB_URL;
    return 0;
}

/* RFC 9110 token characters (header names, methods). */
static bool tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct rtmd_http_conn *hc = hc_of(p);
    struct rtmd_http_request *req = hc->req;
    if (hc->last != CB_FIELD) {
        const struct rtmd_limits *lim = &hc->conn->server->cfg->limits;
        if (req->n_headers >= lim->http_max_headers) {
            hc->error_status = 431;
            return -1;
        }
        if (req->n_headers == req->headers_cap) {
            size_t cap = req->headers_cap ? req->headers_cap * 2 : HEADERS_INITIAL;
            if (cap > lim->http_max_headers)
                cap = lim->http_max_headers;
            req->headers = rtmd_realloc(req->headers, cap * sizeof(*req->headers));
            req->headers_cap = cap;
        }
        struct rtmd_http_header *h = &req->headers[req->n_headers++];
        h->name = rtmd_str_make(req->head.data + req->head.len, 0);
        h->value = rtmd_str_make(NULL, 0);
        if (head_append(hc, "", 0, 4) < 0) /* ": " and CRLF */
            return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (!tchar((unsigned char)at[i])) {
            hc->error_status = 400;
            return -1;
        }
    }
    if (head_append(hc, at, len, 0) < 0)
        return -1;
    req->headers[req->n_headers - 1].name.len += len;
    hc->last = CB_FIELD;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct rtmd_http_conn *hc = hc_of(p);
    struct rtmd_http_request *req = hc->req;
    struct rtmd_http_header *h = &req->headers[req->n_headers - 1];
    if (hc->last != CB_VALUE)
        h->value = rtmd_str_make(req->head.data + req->head.len, 0);
    if (head_append(hc, at, len, 0) < 0)
        return -1;
    h->value.len += len;
    hc->last = CB_VALUE;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct rtmd_http_conn *hc = hc_of(p);
    struct rtmd_http_request *req = hc->req;
    const struct rtmd_limits *lim = &hc->conn->server->cfg->limits;
    req->url.p = req->head.data;
    const char *q = memchr(req->url.p, '?', req->url.len);
    if (q) {
        req->path = rtmd_str_make(req->url.p, (size_t)(q - req->url.p));
        req->query = rtmd_str_make(q + 1, req->url.len - req->path.len - 1);
    } else {
        req->path = req->url;
        req->query = rtmd_str_make(req->url.p + req->url.len, 0);
    }
    req->method = (int)p->method;
    req->http_major = p->http_major;
    req->http_minor = p->http_minor;
    if (p->content_length != ULLONG_MAX && p->content_length > 0 &&
        p->content_length > lim->http_max_body) {
        hc->error_status = 413;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct rtmd_http_conn *hc = hc_of(p);
    if (rtmd_buf_append(&hc->req->body_buf, at, len) < 0) {
        hc->error_status = 413;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct rtmd_http_conn *hc = hc_of(p);
    struct rtmd_http_request *req = hc->req;
    req->body = rtmd_str_make(req->body_buf.data, req->body_buf.len);
    req->keep_alive = http_should_keep_alive(p) != 0;
    req->upgrade = p->upgrade != 0;
    hc->state = ST_HANDLING;
    hc->line_checked = false;
    http_parser_pause(p, 1);
    return 0;
}

/* ---- responses -------------------------------------------------------------- */

int rtmd_http_error_body(struct rtmd_buf *out, const char *code, const char *message,
                         const char *request_id)
{
    struct rtmd_json j;
    rtmd_json_init(&j, out);
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "code");
    rtmd_json_cstr(&j, code);
    rtmd_json_key(&j, "message");
    rtmd_json_cstr(&j, message);
    rtmd_json_key(&j, "request_id");
    rtmd_json_cstr(&j, request_id);
    rtmd_json_key(&j, "result");
    rtmd_json_cstr(&j, "failed");
    rtmd_json_obj_end(&j);
    return rtmd_json_finish(&j);
}

/* Writes one complete response on c. */
#define BODY_PARTS_MAX 4

/* Writes one complete response on c: head, extra header lines, and the body
 * given in parts (written as they are, not joined). */
static void write_response(struct rtmd_conn *c, int status, const char *content_type,
                           struct rtmd_str extra_headers, const struct rtmd_str *parts,
                           size_t nparts, const char *request_id, bool close)
{
    size_t body_len = 0;
    for (size_t i = 0; i < nparts; i++)
        body_len += parts[i].len;
    char head[512];
    struct rtmd_buf h = {head, 0, sizeof(head), sizeof(head) - 2};
    const char *text = rtmd_http_status_text(status);
    rtmd_buf_append(&h, "HTTP/1.1 ", 9);
    rtmd_buf_append_u64(&h, (uint64_t)status);
    rtmd_buf_append_byte(&h, ' ');
    rtmd_buf_append_cstr(&h, text);
    rtmd_buf_append(&h, "\r\nContent-Type: ", 16);
    rtmd_buf_append_cstr(&h, content_type);
    rtmd_buf_append(&h, "\r\nContent-Length: ", 18);
    rtmd_buf_append_u64(&h, body_len);
    rtmd_buf_append(&h, "\r\nX-Request-ID: ", 16);
    rtmd_buf_append_cstr(&h, request_id);
    int hr = rtmd_buf_append(&h, "\r\n", 2);
    if (close)
        hr = rtmd_buf_append(&h, "Connection: close\r\n", 19);
    if (hr < 0 || nparts > BODY_PARTS_MAX)
        return;
    int n = (int)h.len;
    uv_buf_t bufs[3 + BODY_PARTS_MAX]; /* head, extra headers, blank line, body parts */
    size_t nb = 0;
    bufs[nb++] = uv_buf_init(head, (unsigned)n);
    if (extra_headers.len)
        bufs[nb++] = uv_buf_init((char *)extra_headers.p, (unsigned)extra_headers.len);
    /* The blank line goes with the head (or alone). */
    static const char crlf[] = "\r\n";
    if (nb == 1) {
        memcpy(head + n, crlf, 2);
        bufs[0].len += 2;
    } else {
        bufs[nb++] = uv_buf_init((char *)crlf, 2);
    }
    for (size_t i = 0; i < nparts; i++)
        if (parts[i].len)
            bufs[nb++] = uv_buf_init((char *)parts[i].p, (unsigned)parts[i].len);
    rtmd_conn_writev(c, bufs, nb);
}

static void schedule_resume(struct rtmd_http_conn *hc);

static void respond(struct rtmd_http_request *req, int status, const char *content_type,
                    struct rtmd_str extra_headers, const struct rtmd_str *parts, size_t nparts);

void rtmd_http_respond(struct rtmd_http_request *req, int status, const char *content_type,
                       struct rtmd_str extra_headers, struct rtmd_str body)
{
    respond(req, status, content_type, extra_headers, &body, 1);
}

void rtmd_http_respond_parts(struct rtmd_http_request *req, int status, const char *content_type,
                             const struct rtmd_str *parts, size_t nparts)
{
    respond(req, status, content_type, RTMD_STR_NULL, parts, nparts);
}

static void respond(struct rtmd_http_request *req, int status, const char *content_type,
                    struct rtmd_str extra_headers, const struct rtmd_str *parts, size_t nparts)
{
    if (req->responded) {
        rtmd_log_error("http", "request %s answered twice", req->request_id);
        return;
    }
    req->responded = true;
    struct rtmd_conn *c = req->conn;
    if (REQ_ORPHANED(req)) {
        request_free(req);
        return;
    }
    struct rtmd_http_conn *hc = c->p.http;
    /* An upgrade request that was not upgraded leaves unknown bytes behind. */
    bool close = !req->keep_alive || req->upgrade || c->server->stopping;
    /* Detach the request before writing: a failed write closes the
     * connection, and on_close must then neither orphan this request nor
     * drop the dispatch reference; it frees hc. */
    hc->req = NULL;
    hc->state = close ? ST_DONE : ST_IDLE;
    write_response(c, status, content_type, extra_headers, parts, nparts, req->request_id, close);
    request_free(req);
    if (!(c->flags & (RTMD_CONN_CLOSING | RTMD_CONN_FAILED))) {
        if (close)
            rtmd_conn_close_gracefully(c);
        else
            schedule_resume(hc);
    }
    rtmd_conn_unref(c); /* taken at dispatch; c is not used after this */
}

void rtmd_http_respond_json(struct rtmd_http_request *req, int status, struct rtmd_str body)
{
    rtmd_http_respond(req, status, "application/json;charset=utf-8", RTMD_STR_NULL, body);
}

void rtmd_http_respond_error(struct rtmd_http_request *req, int status, const char *code,
                             const char *message)
{
    rtmd_http_respond_error_headers(req, status, code, message, RTMD_STR_NULL);
}

void rtmd_http_respond_error_headers(struct rtmd_http_request *req, int status, const char *code,
                                     const char *message, struct rtmd_str extra_headers)
{
    struct rtmd_buf b;
    rtmd_buf_init(&b, 4096);
    rtmd_http_error_body(&b, code, message, req->request_id);
    rtmd_http_respond(req, status, "application/json;charset=utf-8", extra_headers,
                      rtmd_str_make(b.data, b.len));
    rtmd_buf_free(&b);
}

/* An error found while parsing: answer it and close (the stream may be out
 * of sync, so no further request is read). */
static void fail(struct rtmd_http_conn *hc, int status, const char *code, const char *message)
{
    struct rtmd_conn *c = hc->conn;
    char id[RTMD_REQUEST_ID_MAX];
    rtmd_request_id_next(id);
    /* Done with HTTP before writing: a failed write closes the connection,
     * and on_close then frees hc. */
    hc->state = ST_DONE;
    rtmd_buf_free(&hc->pending);
    if (hc->req) {
        request_free(hc->req);
        hc->req = NULL;
    }
    struct rtmd_buf b;
    rtmd_buf_init(&b, 4096);
    rtmd_http_error_body(&b, code, message, id);
    struct rtmd_str body = rtmd_str_make(b.data, b.len);
    write_response(c, status, "application/json;charset=utf-8", RTMD_STR_NULL, &body, 1, id, true);
    rtmd_buf_free(&b);
    rtmd_conn_close_gracefully(c); /* nothing if the write closed it */
}

/* ---- driving the parser ------------------------------------------------------ */

static void dispatch(struct rtmd_http_conn *hc)
{
    struct rtmd_http_request *req = hc->req;
    struct rtmd_conn *c = hc->conn;
    rtmd_conn_disarm_timeout(c);
    req->request_id_len = rtmd_request_id_next(req->request_id);
    rtmd_conn_ref(c);
    c->server->on_request(req);
}

/* Parses n bytes at p; returns how many were consumed. On a complete
 * request, dispatches it (the parser is then paused). */
/* The request line, checked strictly: http-parser (built lenient) lets
 * "HTTX/1.1" or a missing version through. METHOD SP target SP HTTP/1.x. */
static bool request_line_ok(const char *p, size_t n)
{
    if (n && p[n - 1] == '\r')
        n--;
    size_t i = 0;
    while (i < n && tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i >= n || p[i] != ' ')
        return false;
    size_t t = ++i;
    while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f)
        i++;
    if (i == t || i >= n || p[i] != ' ')
        return false;
    struct rtmd_str version = rtmd_str_make(p + i + 1, n - i - 1);
    return rtmd_str_eq_cstr(version, "HTTP/1.1") || rtmd_str_eq_cstr(version, "HTTP/1.0");
}

/* Finds the request line at the start of p (across reads); false when it
 * is complete and malformed. */
static bool check_request_line(struct rtmd_http_conn *hc, const char *p, size_t n)
{
    while (!hc->line_checked && n > 0) {
        const char *lf = memchr(p, '\n', n);
        size_t take = lf ? (size_t)(lf - p) + 1 : n;
        if (rtmd_buf_append(&hc->line, p, take) < 0) {
            /* Longer than the head limit: the parser's own limits answer. */
            hc->line_checked = true;
            rtmd_buf_free(&hc->line);
            return true;
        }
        p += take;
        n -= take;
        if (!lf)
            return true;
        size_t len = hc->line.len - 1; /* without the LF */
        if (len > 0 && hc->line.data[len - 1] == '\r')
            len--;
        if (len == 0) { /* empty lines before a request are allowed */
            rtmd_buf_reset(&hc->line);
            continue;
        }
        bool ok = request_line_ok(hc->line.data, hc->line.len - 1);
        rtmd_buf_free(&hc->line);
        hc->line_checked = true;
        return ok;
    }
    return true;
}

static size_t parse(struct rtmd_http_conn *hc, const char *p, size_t n)
{
    if (!check_request_line(hc, p, n)) {
        fail(hc, 400, "bad_request", "malformed request line");
        return n;
    }
    size_t done = http_parser_execute(&hc->parser, &settings_, p, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&hc->parser);
    if (e == HPE_PAUSED || (hc->state == ST_HANDLING && e == HPE_OK)) {
        http_parser_pause(&hc->parser, 0);
        return done;
    }
    if (e != HPE_OK) {
        if (hc->error_status == 413)
            fail(hc, 413, "payload_too_large", "request body too large");
        else if (hc->error_status == 431 || e == HPE_HEADER_OVERFLOW)
            fail(hc, 431, "header_too_large", "request head too large or too many headers");
        else if (hc->error_status == 400)
            fail(hc, 400, "bad_request", "malformed header name");
        else if (hc->error_status == 500)
            fail(hc, 500, "internal_error", "out of memory");
        else
            fail(hc, 400, "bad_request", http_errno_description(e));
        return n;
    }
    return done;
}

/* Appends input to pending, pausing reads when it grows large. */
static int keep_pending(struct rtmd_http_conn *hc, const char *p, size_t n)
{
    if (rtmd_buf_append(&hc->pending, p, n) < 0) {
        fail(hc, 400, "bad_request", "too much pipelined input");
        return -1;
    }
    if (hc->pending.len >= PENDING_PAUSE)
        rtmd_conn_pause_read(hc->conn);
    return 0;
}

static void http_on_data(struct rtmd_conn *c, const char *p, size_t n)
{
    struct rtmd_http_conn *hc = c->p.http;
    if (hc->state == ST_DONE)
        return;
    if (hc->state == ST_HANDLING || hc->pending.len > 0) {
        keep_pending(hc, p, n);
        return;
    }
    size_t done = parse(hc, p, n);
    if (rtmd_conn_closing(c) || c->p.http != hc || hc->state == ST_DONE)
        return;
    if (hc->state == ST_HANDLING) {
        /* Keep what followed the request before the handler runs: the
         * handler may answer (or upgrade) at once. */
        if (done < n && keep_pending(hc, p + done, n - done) < 0)
            return;
        dispatch(hc);
    }
}

static void parse_pending(struct rtmd_http_conn *hc)
{
    struct rtmd_conn *c = hc->conn;
    while (hc->state == ST_IDLE || hc->state == ST_READING) {
        if (hc->pending.len == 0) {
            rtmd_conn_resume_read(c);
            if (hc->state == ST_IDLE)
                rtmd_conn_arm_timeout(c, &c->server->idle_timeouts);
            return;
        }
        size_t done = parse(hc, hc->pending.data, hc->pending.len);
        if (rtmd_conn_closing(c) || hc->state == ST_DONE)
            return;
        rtmd_buf_consume(&hc->pending, done);
        if (hc->state == ST_HANDLING) {
            if (hc->pending.len < PENDING_PAUSE)
                rtmd_conn_resume_read(c);
            dispatch(hc);
            return;
        }
    }
}

static void on_resume(struct rtmd_deferred *d)
{
    struct rtmd_http_conn *hc = RTMD_CONTAINER_OF(d, struct rtmd_http_conn, resume);
    hc->resume_scheduled = false;
    parse_pending(hc);
}

static void schedule_resume(struct rtmd_http_conn *hc)
{
    if (hc->pending.len == 0) {
        /* The common case (no pipelining): nothing to parse, wait for input. */
        rtmd_conn_arm_timeout(hc->conn, &hc->conn->server->idle_timeouts);
        return;
    }
    if (!hc->resume_scheduled) {
        hc->resume_scheduled = true;
        rtmd_defer(&hc->resume, on_resume);
    }
}

/* ---- connection protocol hooks ------------------------------------------------ */

static void http_on_eof(struct rtmd_conn *c)
{
    struct rtmd_http_conn *hc = c->p.http;
    if (hc->state == ST_HANDLING) {
        /* Half-closed client: answer what it asked, then close. */
        if (hc->req)
            hc->req->keep_alive = false;
        rtmd_conn_pause_read(c);
        return;
    }
    rtmd_conn_close(c);
}

static void http_on_close(struct rtmd_conn *c)
{
    struct rtmd_http_conn *hc = c->p.http;
    if (!hc)
        return;
    if (hc->resume_scheduled)
        rtmd_defer_cancel(&hc->resume);
    if (hc->req) {
        if (hc->state == ST_HANDLING)
            hc->req->conn = NULL; /* orphaned: freed by its respond() */
        else
            request_free(hc->req);
        if (hc->state == ST_HANDLING)
            rtmd_conn_unref(c);
    }
    rtmd_buf_free(&hc->pending);
    rtmd_buf_free(&hc->line);
    free(hc);
    c->p.http = NULL;
}

static void http_on_timeout(struct rtmd_conn *c)
{
    rtmd_conn_close(c);
}

static const struct rtmd_proto http_proto = {
    .name = "http",
    .on_data = http_on_data,
    .on_eof = http_on_eof,
    .on_drain = NULL,
    .on_close = http_on_close,
    .on_timeout = http_on_timeout,
};

void rtmd_http_conn_start(struct rtmd_conn *c)
{
    if (!settings_.on_message_complete) {
        http_parser_settings_init(&settings_);
        settings_.on_message_begin = on_message_begin;
        settings_.on_url = on_url;
        settings_.on_header_field = on_header_field;
        settings_.on_header_value = on_header_value;
        settings_.on_headers_complete = on_headers_complete;
        settings_.on_body = on_body;
        settings_.on_message_complete = on_message_complete;
    }
    struct rtmd_http_conn *hc = rtmd_calloc(1, sizeof(*hc));
    http_parser_init(&hc->parser, HTTP_REQUEST);
    hc->parser.data = hc;
    hc->conn = c;
    hc->state = ST_IDLE;
    rtmd_buf_init(&hc->pending, PENDING_MAX);
    rtmd_buf_init(&hc->line, c->server->cfg->limits.http_max_head);
    c->p.http = hc;
    rtmd_conn_set_proto(c, &http_proto);
    /* The first request must arrive as promptly as any request head. */
    rtmd_conn_arm_timeout(c, &c->server->request_timeouts);
}

int rtmd_http_upgrade(struct rtmd_http_request *req, struct rtmd_str response,
                      struct rtmd_buf *leftover)
{
    if (req->responded)
        return RTMD_ECLOSED;
    req->responded = true;
    struct rtmd_conn *c = req->conn;
    if (REQ_ORPHANED(req)) {
        request_free(req); /* the client left while it was handled */
        return RTMD_ECLOSED;
    }
    struct rtmd_http_conn *hc = c->p.http;
    /* End HTTP before writing: a failed write closes the connection, which
     * must then find no HTTP state to release. Hand the input that followed
     * the head to the next protocol. */
    *leftover = hc->pending;
    rtmd_buf_init(&hc->pending, 0);
    rtmd_buf_free(&hc->line);
    hc->req = NULL;
    request_free(req);
    if (hc->resume_scheduled)
        rtmd_defer_cancel(&hc->resume);
    free(hc);
    c->p.http = NULL;
    c->proto = NULL;
    rtmd_conn_write(c, response.p, response.len);
    rtmd_conn_resume_read(c);
    bool closing = rtmd_conn_closing(c);
    rtmd_conn_unref(c); /* taken at dispatch */
    return closing ? RTMD_ECLOSED : 0;
}
