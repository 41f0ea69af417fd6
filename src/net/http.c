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
 *
 * A client that pipelines requests without reading the answers would make
 * every answer wait in memory: no new request starts while more than
 * UNSENT_MAX bytes of answers are unsent; parsing resumes when they are
 * written (on_drain). Its input meanwhile stays in `pending`, as above.
 *
 * http-parser is lenient where RFC 9112 is not; what it lets through is
 * checked here: the request line (request_line_ok), lines of the head that
 * start with whitespace (obs-fold), Host (missing in HTTP/1.1, repeated,
 * invalid: 400), Transfer-Encoding other than exactly "chunked" (501). An
 * absolute-form target is rewritten to its origin form.
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
/* Unsent answers above which no further pipelined request is parsed. */
#define UNSENT_MAX (64 * 1024)

enum http_state { ST_IDLE, ST_READING, ST_HANDLING, ST_DONE };
enum last_cb { CB_NONE, CB_URL, CB_FIELD, CB_VALUE };
/* Where the raw-byte check of the current head is (scan_head). */
enum scan_state {
    SCAN_LINE,        /* in the request line (or empty lines before it) */
    SCAN_LINE_START,  /* at the start of a header line */
    SCAN_IN_LINE,     /* inside a header line */
    SCAN_CR_AT_START, /* a CR started a line: the end of the head if LF follows */
    SCAN_DONE,        /* the head ended: body or next request, not scanned */
};

struct rtmd_http_conn {
    http_parser parser;
    struct rtmd_conn *conn;
    struct rtmd_http_request *req;
    struct rtmd_buf pending;
    enum http_state state;
    enum last_cb last;
    int error_status;          /* set by a callback that fails: 400, 413, 431, 500, 501 */
    const char *error_message; /* and why (a literal) */
    size_t head_bytes;
    struct rtmd_deferred resume;
    bool resume_scheduled;
    bool waiting_reader;  /* the next request waits for the client to read (UNSENT_MAX) */
    bool logged_waiting;  /* said so once in the log */
    bool eof;             /* the client sent EOF: answer what it sent, then close */
    uint8_t n_host;       /* Host headers of the current request */
    bool te_seen;         /* a Transfer-Encoding header was seen */
    bool head_complete;   /* the current request's head was parsed */
    enum scan_state scan; /* the raw-byte check of the current head */
    struct rtmd_buf line; /* a request line split across reads */
};

/* A request whose connection closed while it was handled. */
#define REQ_ORPHANED(req) ((req)->conn == NULL)

static const struct rtmd_proto http_proto;
static http_parser_settings settings_;
static void parse_pending(struct rtmd_http_conn *hc);

const int rtmd_http_error_statuses[RTMD_HTTP_ERROR_STATUSES] = {400, 413, 431, 500, 501};
static uint64_t errors_[RTMD_HTTP_ERROR_STATUSES];

uint64_t rtmd_http_errors(size_t i)
{
    return i < RTMD_HTTP_ERROR_STATUSES ? errors_[i] : 0;
}

static void count_error(int status)
{
    for (size_t i = 0; i < RTMD_HTTP_ERROR_STATUSES; i++)
        if (rtmd_http_error_statuses[i] == status)
            errors_[i]++;
}

const char *rtmd_http_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 308: return "Permanent Redirect";
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
    case 501: return "Not Implemented";
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

/* A callback refuses the request: the answer is status, message a literal. */
static int reject(struct rtmd_http_conn *hc, int status, const char *message)
{
    hc->error_status = status;
    hc->error_message = message;
    return -1;
}

#define HEAD_TOO_LARGE "request head too large or too many headers"

static int head_append(struct rtmd_http_conn *hc, const char *at, size_t len, size_t overhead)
{
    const struct rtmd_limits *lim = &hc->conn->server->cfg->limits;
    hc->head_bytes += len + overhead;
    if (hc->head_bytes > lim->http_max_head)
        return reject(hc, 431, HEAD_TOO_LARGE);
    if (rtmd_buf_append(&hc->req->head, at, len) < 0)
        return reject(hc, 431, HEAD_TOO_LARGE);
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct rtmd_http_conn *hc = hc_of(p);
    hc->req = request_new(hc);
    if (!hc->req)
        return reject(hc, 500, "out of memory");
    hc->state = ST_READING;
    hc->last = CB_NONE;
    hc->head_bytes = 0;
    hc->n_host = 0;
    hc->te_seen = false;
    hc->head_complete = false;
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

/* A Host value: uri-host [":" port] (RFC 9110 §7.2), possibly empty; checked
 * by its characters only (reg-name, IP literal, port). */
static bool host_ok(struct rtmd_str v)
{
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (c && strchr("-._~!$&'()*+,;=:[]%", c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

/* The header just completed (the last one) is checked: Host at most once and
 * well-formed (RFC 9112 §3.2: 400); Transfer-Encoding only as exactly
 * "chunked", once (RFC 9112 §6.1: a coding the server does not understand
 * is 501; rtmd understands none but chunked). */
static int header_done(struct rtmd_http_conn *hc)
{
    const struct rtmd_http_header *h = &hc->req->headers[hc->req->n_headers - 1];
    if (rtmd_str_ieq(h->name, RTMD_STR_LIT("Host"))) {
        if (++hc->n_host > 1)
            return reject(hc, 400, "more than one Host header");
        if (!host_ok(rtmd_str_trim_ows(h->value)))
            return reject(hc, 400, "invalid Host header");
    } else if (rtmd_str_ieq(h->name, RTMD_STR_LIT("Transfer-Encoding"))) {
        if (hc->te_seen || !rtmd_str_ieq(rtmd_str_trim_ows(h->value), RTMD_STR_LIT("chunked")))
            return reject(hc, 501, "only Transfer-Encoding: chunked is supported");
        hc->te_seen = true;
    }
    return 0;
}

/* A chunked body's trailer section is read and dropped: a trailer field may
 * not be merged into the header fields (RFC 9110 §6.5.1), and rtmd uses
 * none. Its bytes count against http_max_head like the head's. */
static int skip_trailer(struct rtmd_http_conn *hc, size_t len)
{
    hc->head_bytes += len;
    if (hc->head_bytes > hc->conn->server->cfg->limits.http_max_head)
        return reject(hc, 431, HEAD_TOO_LARGE);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct rtmd_http_conn *hc = hc_of(p);
    struct rtmd_http_request *req = hc->req;
    if (hc->head_complete)
        return skip_trailer(hc, len);
    if (hc->last != CB_FIELD) {
        const struct rtmd_limits *lim = &hc->conn->server->cfg->limits;
        /* The previous header is complete. */
        if (hc->last == CB_VALUE && header_done(hc) < 0)
            return -1;
        if (req->n_headers >= lim->http_max_headers)
            return reject(hc, 431, HEAD_TOO_LARGE);
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
    for (size_t i = 0; i < len; i++)
        if (!tchar((unsigned char)at[i]))
            return reject(hc, 400, "malformed header name");
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
    if (hc->head_complete)
        return skip_trailer(hc, len);
    struct rtmd_http_header *h = &req->headers[req->n_headers - 1];
    if (hc->last != CB_VALUE)
        h->value = rtmd_str_make(req->head.data + req->head.len, 0);
    if (head_append(hc, at, len, 0) < 0)
        return -1;
    h->value.len += len;
    hc->last = CB_VALUE;
    return 0;
}

/* Rewrites an absolute-form target ("http://host:port/path?query") to its
 * origin form in place (RFC 9112 §3.2.2: a server must accept it; the
 * authority is ignored, like Host: rtmd serves every name it is reached
 * by). The url stays at the start of the head buffer. Other forms are left
 * as they are (they match no route). -1 when the authority is empty or has
 * user information (RFC 9110 §4.2.1, §4.2.4). */
static int origin_form(struct rtmd_http_request *req)
{
    struct rtmd_str u = rtmd_str_make(req->head.data, req->url.len);
    size_t skip;
    if (u.len >= 7 && rtmd_str_ieq(rtmd_str_make(u.p, 7), RTMD_STR_LIT("http://")))
        skip = 7;
    else if (u.len >= 8 && rtmd_str_ieq(rtmd_str_make(u.p, 8), RTMD_STR_LIT("https://")))
        skip = 8;
    else
        return 0;
    size_t end = skip;
    while (end < u.len && u.p[end] != '/' && u.p[end] != '?') {
        if (u.p[end] == '@')
            return -1;
        end++;
    }
    if (end == skip)
        return -1;
    if (end == u.len || u.p[end] == '?') {
        /* No path: it is "/" (RFC 9110 §4.2.3); the byte before is free. */
        req->head.data[--end] = '/';
    }
    memmove(req->head.data, req->head.data + end, u.len - end);
    req->url.len = u.len - end;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct rtmd_http_conn *hc = hc_of(p);
    struct rtmd_http_request *req = hc->req;
    const struct rtmd_limits *lim = &hc->conn->server->cfg->limits;
    hc->head_complete = true;
    if (req->n_headers > 0 && hc->last == CB_VALUE && header_done(hc) < 0)
        return -1;
    /* HTTP/1.0 may omit Host; HTTP/1.1 must send it (RFC 9112 §3.2). */
    if (p->http_minor >= 1 && hc->n_host == 0)
        return reject(hc, 400, "missing Host header (required in HTTP/1.1)");
    if (origin_form(req) < 0)
        return reject(hc, 400, "invalid request target");
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
        p->content_length > lim->http_max_body)
        return reject(hc, 413, "request body too large");
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct rtmd_http_conn *hc = hc_of(p);
    if (rtmd_buf_append(&hc->req->body_buf, at, len) < 0)
        return reject(hc, 413, "request body too large");
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
    hc->scan = SCAN_LINE;
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

#define BODY_PARTS_MAX 4

/* Writes one complete response on c: head, extra header lines, and the body
 * given in parts (written as they are, not joined). The answer to a HEAD
 * request (head_only) has neither the body nor Content-Length (RFC 9110
 * §8.6 lets it go; without it, no client can take the length of a body it
 * will never get for the next answer's bytes). */
static void write_response(struct rtmd_conn *c, int status, const char *content_type,
                           struct rtmd_str common_headers, struct rtmd_str extra_headers,
                           const struct rtmd_str *parts, size_t nparts, const char *request_id,
                           bool close, bool head_only)
{
    size_t body_len = 0;
    for (size_t i = 0; i < nparts; i++)
        body_len += parts[i].len;
    bool no_content = status == 204 || status == 304; /* RFC 9110 §8.6, §15.4.5: no body */
    if (head_only || no_content)
        nparts = 0;
    char head[512];
    struct rtmd_buf h = {head, 0, sizeof(head), sizeof(head) - 2};
    const char *text = rtmd_http_status_text(status);
    rtmd_buf_append(&h, "HTTP/1.1 ", 9);
    rtmd_buf_append_u64(&h, (uint64_t)status);
    rtmd_buf_append_byte(&h, ' ');
    rtmd_buf_append_cstr(&h, text);
    if (!no_content) {
        rtmd_buf_append(&h, "\r\nContent-Type: ", 16);
        rtmd_buf_append_cstr(&h, content_type);
    }
    if (!head_only && !no_content) {
        rtmd_buf_append(&h, "\r\nContent-Length: ", 18);
        rtmd_buf_append_u64(&h, body_len);
    }
    rtmd_buf_append(&h, "\r\nX-Request-ID: ", 16);
    rtmd_buf_append_cstr(&h, request_id);
    int hr = rtmd_buf_append(&h, "\r\n", 2);
    if (close)
        hr = rtmd_buf_append(&h, "Connection: close\r\n", 19);
    if (hr < 0 || nparts > BODY_PARTS_MAX)
        return;
    int n = (int)h.len;
    uv_buf_t bufs[4 + BODY_PARTS_MAX]; /* head, 2 x headers, blank line, body parts */
    size_t nb = 0;
    bufs[nb++] = uv_buf_init(head, (unsigned)n);
    if (common_headers.len)
        bufs[nb++] = uv_buf_init((char *)common_headers.p, (unsigned)common_headers.len);
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

int rtmd_http_add_headers(struct rtmd_http_request *req, struct rtmd_str lines)
{
    if (lines.len > sizeof(req->common_headers) - req->common_headers_len)
        return -ENOSPC;
    memcpy(req->common_headers + req->common_headers_len, lines.p, lines.len);
    req->common_headers_len += lines.len;
    return 0;
}

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

static rtmd_http_answered_fn answered_;
static void *answered_ctx_;

void rtmd_http_on_answered(rtmd_http_answered_fn fn, void *ctx)
{
    answered_ = fn;
    answered_ctx_ = ctx;
}

static void respond(struct rtmd_http_request *req, int status, const char *content_type,
                    struct rtmd_str extra_headers, const struct rtmd_str *parts, size_t nparts)
{
    if (req->responded) {
        rtmd_log_error("http", "request %s answered twice", req->request_id);
        return;
    }
    req->responded = true;
    if (answered_) {
        size_t body_len = 0;
        for (size_t i = 0; i < nparts; i++)
            body_len += parts[i].len;
        answered_(answered_ctx_, req, status, req->method == HTTP_HEAD ? 0 : body_len);
    }
    struct rtmd_conn *c = req->conn;
    if (REQ_ORPHANED(req)) {
        request_free(req);
        return;
    }
    struct rtmd_http_conn *hc = c->p.http;
    /* An upgrade request that was not upgraded leaves unknown bytes behind.
     * After EOF, the answer to the last request the client sent closes. */
    bool close = !req->keep_alive || req->upgrade || c->server->stopping ||
                 (hc->eof && hc->pending.len == 0);
    /* Detach the request before writing: a failed write closes the
     * connection, and on_close must then neither orphan this request nor
     * drop the dispatch reference; it frees hc. */
    hc->req = NULL;
    hc->state = close ? ST_DONE : ST_IDLE;
    write_response(c, status, content_type,
                   rtmd_str_make(req->common_headers, req->common_headers_len), extra_headers,
                   parts, nparts, req->request_id, close, req->method == HTTP_HEAD);
    request_free(req);
    if (!(c->flags & (RTMD_CONN_CLOSING | RTMD_CONN_FAILED))) {
        if (close) {
            /* The answer must be read within the idle timeout. */
            rtmd_conn_arm_timeout(c, &c->server->idle_timeouts);
            rtmd_conn_close_gracefully(c);
        } else {
            schedule_resume(hc);
        }
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
    if (!req->error)
        req->error = message;
    rtmd_http_error_body(&b, code, message, req->request_id);
    rtmd_http_respond(req, status, "application/json;charset=utf-8", extra_headers,
                      rtmd_str_make(b.data, b.len));
    rtmd_buf_free(&b);
}

static const char *error_code(int status)
{
    switch (status) {
    case 413: return "payload_too_large";
    case 431: return "header_too_large";
    case 500: return "internal_error";
    case 501: return "not_implemented";
    default: return "bad_request";
    }
}

/* An error found while parsing: answer it and close (the stream may be out
 * of sync, so no further request is read). */
static void fail(struct rtmd_http_conn *hc, int status, const char *message)
{
    struct rtmd_conn *c = hc->conn;
    char id[RTMD_REQUEST_ID_MAX];
    rtmd_request_id_next(id);
    count_error(status);
    if (rtmd_log_enabled(RTMD_LOG_INFO)) {
        char remote[RTMD_CONN_REMOTE_MAX];
        struct rtmd_log_rec r;
        rtmd_log_begin(&r, RTMD_LOG_INFO, "http", "request refused");
        rtmd_log_u64(&r, "status", (uint64_t)status);
        rtmd_log_cstr(&r, "error", message);
        rtmd_log_cstr(&r, "request_id", id);
        rtmd_log_cstr(&r, "remote", rtmd_conn_remote(c, remote, sizeof(remote)));
        rtmd_log_u64(&r, "conn", c->id);
        rtmd_log_end(&r);
    }
    /* A HEAD request whose method was parsed (the URL follows it) gets no body. */
    bool head_only = hc->req && hc->req->url.len > 0 && hc->parser.method == HTTP_HEAD;
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
    rtmd_http_error_body(&b, error_code(status), message, id);
    struct rtmd_str body = rtmd_str_make(b.data, b.len);
    write_response(c, status, "application/json;charset=utf-8", RTMD_STR_NULL, RTMD_STR_NULL, &body,
                   1, id, true, head_only);
    rtmd_buf_free(&b);
    /* Nothing if the write closed it; an answer the client does not read
     * is given up under the drain timeout (conn.c). */
    rtmd_conn_close_gracefully(c);
}

/* ---- driving the parser ------------------------------------------------------ */

static void dispatch(struct rtmd_http_conn *hc)
{
    struct rtmd_http_request *req = hc->req;
    struct rtmd_conn *c = hc->conn;
    rtmd_conn_disarm_timeout(c);
    req->request_id_len = rtmd_request_id_next(req->request_id);
    req->start_ns = uv_hrtime();
    rtmd_conn_ref(c);
    c->server->on_request(req);
}

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

/* Checks the raw bytes of the current request's head before http-parser
 * sees them, across reads: the request line (request_line_ok), and that no
 * header line starts with a space or tab — obs-fold, which http-parser would
 * join to the previous value (RFC 9112 §5.2 lets a server reject it: 400).
 * The body and what follows the head are not looked at. 0, or -1 when
 * refused (error_status and error_message set). */
static int scan_head(struct rtmd_http_conn *hc, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end && hc->scan != SCAN_DONE) {
        switch (hc->scan) {
        case SCAN_LINE: {
            const char *lf = memchr(p, '\n', (size_t)(end - p));
            size_t take = lf ? (size_t)(lf - p) + 1 : (size_t)(end - p);
            if (rtmd_buf_append(&hc->line, p, take) < 0) {
                /* Longer than the head limit: the parser's own limits answer. */
                rtmd_buf_free(&hc->line);
                hc->scan = SCAN_DONE;
                return 0;
            }
            p += take;
            if (!lf)
                return 0;
            size_t len = hc->line.len - 1; /* without the LF */
            if (len > 0 && hc->line.data[len - 1] == '\r')
                len--;
            if (len == 0) { /* empty lines before a request are allowed */
                rtmd_buf_reset(&hc->line);
                continue;
            }
            bool ok = request_line_ok(hc->line.data, hc->line.len - 1);
            rtmd_buf_free(&hc->line);
            if (!ok)
                return reject(hc, 400, "malformed request line");
            hc->scan = SCAN_LINE_START;
            break;
        }
        case SCAN_LINE_START:
            if (*p == ' ' || *p == '\t')
                return reject(hc, 400, "a header line starts with whitespace (obs-fold)");
            hc->scan = *p == '\r' ? SCAN_CR_AT_START : *p == '\n' ? SCAN_DONE : SCAN_IN_LINE;
            if (hc->scan != SCAN_IN_LINE)
                p++;
            break;
        case SCAN_CR_AT_START:
            /* CR LF ends the head; anything else is the parser's to refuse. */
            hc->scan = *p == '\n' ? SCAN_DONE : SCAN_IN_LINE;
            if (hc->scan == SCAN_DONE)
                p++;
            break;
        case SCAN_IN_LINE: {
            const char *lf = memchr(p, '\n', (size_t)(end - p));
            if (!lf)
                return 0;
            p = lf + 1;
            hc->scan = SCAN_LINE_START;
            break;
        }
        case SCAN_DONE: break;
        }
    }
    return 0;
}

/* Parses n bytes at p; returns how many were consumed. On a complete
 * request the parser is paused and the state is ST_HANDLING; on an error the
 * answer is given and the state is ST_DONE. */
static size_t parse(struct rtmd_http_conn *hc, const char *p, size_t n)
{
    if (scan_head(hc, p, n) < 0) {
        fail(hc, hc->error_status, hc->error_message);
        return n;
    }
    size_t done = http_parser_execute(&hc->parser, &settings_, p, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&hc->parser);
    if (e == HPE_PAUSED || (hc->state == ST_HANDLING && e == HPE_OK)) {
        http_parser_pause(&hc->parser, 0);
        return done;
    }
    if (e != HPE_OK) {
        if (hc->error_status)
            fail(hc, hc->error_status, hc->error_message);
        else if (e == HPE_HEADER_OVERFLOW)
            fail(hc, 431, HEAD_TOO_LARGE);
        else
            fail(hc, 400, http_errno_description(e));
        return n;
    }
    return done;
}

/* Appends input to pending, pausing reads when it grows large. */
static int keep_pending(struct rtmd_http_conn *hc, const char *p, size_t n)
{
    if (rtmd_buf_append(&hc->pending, p, n) < 0) {
        fail(hc, 400, "too much pipelined input");
        return -1;
    }
    if (hc->pending.len >= PENDING_PAUSE)
        rtmd_conn_pause_read(hc->conn);
    return 0;
}

/* True when the next request must wait until the client reads: more than
 * UNSENT_MAX bytes of answers are queued (counted as out_pending alone, the
 * bytes whose write completion calls on_drain; HTTP answers are never
 * buffered in wbuf). Then the idle timeout runs: a client that reads
 * nothing for http_idle_timeout_s is closed. */
static bool must_wait_for_reader(struct rtmd_http_conn *hc)
{
    struct rtmd_conn *c = hc->conn;
    if (c->out_pending <= UNSENT_MAX)
        return false;
    hc->waiting_reader = true;
    if (!hc->logged_waiting) {
        hc->logged_waiting = true;
        rtmd_log_info("http",
                      "conn=%llu does not read its answers (%zu bytes unsent): its pipelined "
                      "requests wait",
                      (unsigned long long)c->id, c->out_pending);
    }
    rtmd_conn_arm_timeout(c, &c->server->idle_timeouts);
    return true;
}

static void http_on_data(struct rtmd_conn *c, const char *p, size_t n)
{
    struct rtmd_http_conn *hc = c->p.http;
    if (hc->state == ST_DONE)
        return;
    if (hc->state == ST_HANDLING || hc->pending.len > 0 || hc->waiting_reader ||
        (hc->state == ST_IDLE && must_wait_for_reader(hc))) {
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

/* After EOF, once every complete request was answered: the queued answers
 * are written, then the connection closes (within the idle timeout). */
static void end_after_eof(struct rtmd_http_conn *hc)
{
    struct rtmd_conn *c = hc->conn;
    hc->state = ST_DONE;
    rtmd_conn_arm_timeout(c, &c->server->idle_timeouts);
    rtmd_conn_close_gracefully(c);
}

static void parse_pending(struct rtmd_http_conn *hc)
{
    struct rtmd_conn *c = hc->conn;
    while (hc->state == ST_IDLE || hc->state == ST_READING) {
        if (hc->pending.len == 0) {
            if (hc->eof) {
                end_after_eof(hc);
                return;
            }
            rtmd_conn_resume_read(c);
            if (hc->state == ST_IDLE)
                rtmd_conn_arm_timeout(c, &c->server->idle_timeouts);
            return;
        }
        if (hc->state == ST_IDLE && must_wait_for_reader(hc))
            return;
        size_t done = parse(hc, hc->pending.data, hc->pending.len);
        if (rtmd_conn_closing(c) || hc->state == ST_DONE)
            return;
        rtmd_buf_consume(&hc->pending, done);
        if (hc->state == ST_HANDLING) {
            if (hc->pending.len < PENDING_PAUSE && !hc->eof)
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
    if (hc->pending.len == 0 && !hc->eof) {
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

/* Half-closed client: answer every request it sent, then close. */
static void http_on_eof(struct rtmd_conn *c)
{
    struct rtmd_http_conn *hc = c->p.http;
    if (hc->state == ST_DONE) {
        /* Closing once the last answer is written: let it be. */
        if (c->out_pending == 0)
            rtmd_conn_close(c);
        return;
    }
    hc->eof = true;
    rtmd_conn_pause_read(c);
    if (hc->state == ST_HANDLING) {
        if (hc->req && hc->pending.len == 0)
            hc->req->keep_alive = false; /* the answer says Connection: close */
        return;
    }
    if (hc->pending.len > 0) {
        if (!hc->waiting_reader)
            schedule_resume(hc);
        return;
    }
    if (c->out_pending > 0) {
        end_after_eof(hc); /* answers the client has not read yet */
        return;
    }
    rtmd_conn_close(c);
}

/* Queued answers were written: requests waiting for that resume. */
static void http_on_drain(struct rtmd_conn *c)
{
    struct rtmd_http_conn *hc = c->p.http;
    if (!hc || !hc->waiting_reader)
        return;
    hc->waiting_reader = false;
    schedule_resume(hc);
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

/* Draining: a connection between requests closes now; one with a request
 * closes after its answer (respond() sees the server stopping), one in the
 * middle of a head when it is answered or its header timeout passes. */
static void http_on_going_away(struct rtmd_conn *c)
{
    struct rtmd_http_conn *hc = c->p.http;
    if (hc && !hc->req && hc->state == ST_IDLE && hc->pending.len == 0)
        rtmd_conn_close(c);
}

static const struct rtmd_proto http_proto = {
    .name = "http",
    .on_data = http_on_data,
    .on_eof = http_on_eof,
    .on_drain = http_on_drain,
    .on_close = http_on_close,
    .on_timeout = http_on_timeout,
    .on_going_away = http_on_going_away,
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
    /* The first request must arrive as promptly as any request head; over
     * TLS, once the handshake has ended (conn.c re-arms it then). */
    rtmd_conn_arm_timeout(c, c->ssl && !(c->flags & RTMD_CONN_TLS_DONE)
                                 ? &c->server->handshake_timeouts
                                 : &c->server->request_timeouts);
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

/* ---- over max_connections ------------------------------------------------------ */

/* Seconds a client turned away should wait before it tries again. */
#define BUSY_HEADERS "Retry-After: 1\r\n"

/* The first bytes of the client (its request, or part of it) are answered
 * 503 at once, without parsing; then the connection closes gracefully. */
static void busy_on_data(struct rtmd_conn *c, const char *p, size_t n)
{
    (void)p;
    (void)n;
    if (rtmd_conn_ending(c))
        return;
    char id[RTMD_REQUEST_ID_MAX];
    rtmd_request_id_next(id);
    char body[256];
    struct rtmd_buf b = {body, 0, sizeof(body), sizeof(body)};
    rtmd_http_error_body(&b, "service_unavailable", "too many connections; retry later", id);
    struct rtmd_str part = rtmd_str_make(b.data, b.len);
    write_response(c, 503, "application/json;charset=utf-8", RTMD_STR_NULL,
                   RTMD_STR_LIT(BUSY_HEADERS), &part, 1, id, true, false);
    rtmd_conn_close_gracefully(c);
}

static void busy_on_eof(struct rtmd_conn *c)
{
    if (c->out_pending > 0)
        return; /* the answer is being written; the timeout still runs */
    rtmd_conn_close(c);
}

static void busy_close(struct rtmd_conn *c)
{
    rtmd_conn_close(c);
}

static const struct rtmd_proto busy_proto = {
    .name = "http-busy",
    .on_data = busy_on_data,
    .on_eof = busy_on_eof,
    .on_drain = NULL,
    .on_close = NULL,
    .on_timeout = busy_close,
};

void rtmd_http_conn_busy(struct rtmd_conn *c)
{
    c->p.http = NULL;
    rtmd_conn_set_proto(c, &busy_proto);
    rtmd_conn_arm_timeout(c, &c->server->request_timeouts);
}
