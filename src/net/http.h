/*
 * http.h — HTTP/1.1 server semantics over Debian's http-parser.
 *
 * One request at a time per connection: pipelined requests are parsed only
 * after the current one is answered, so responses leave in request order,
 * and only while the client reads its answers (at most 64 KiB of them wait
 * unsent; the input behind them is bounded too). Keep-alive by HTTP version
 * and `Connection`; a client's EOF ends the connection once every request
 * it sent is answered. Chunked and Content-Length bodies decoded by the
 * parser. Limits (config [limits]): request head (request line + headers)
 * http_max_head bytes and http_max_headers headers → 431; body
 * http_max_body → 413; malformed (bad request line, obs-fold, Host missing
 * in HTTP/1.1, repeated or invalid) → 400; a Transfer-Encoding other than
 * "chunked" → 501; the whole request must arrive within
 * http_header_timeout_ms; an idle keep-alive connection closes after
 * http_idle_timeout_s. Error answers close the connection gracefully and are
 * counted (rtmd_http_errors). An absolute-form target reaches the handler in
 * origin form (url, path). A HEAD request is answered without body and
 * without Content-Length.
 *
 * A handler receives a complete request and must answer it exactly once,
 * now or later (after a store callback), with rtmd_http_respond*(). The
 * request stays valid until then even if the client disconnects (the
 * response is then dropped).
 */
#ifndef RTMD_NET_HTTP_H
#define RTMD_NET_HTTP_H

#include "core/buf.h"
#include "core/common.h"
#include "core/reqid.h"
#include "net/conn.h"

struct rtmd_http_header {
    struct rtmd_str name;
    struct rtmd_str value;
};

#define RTMD_HTTP_COMMON_HEADERS_MAX 512

struct rtmd_http_request {
    struct rtmd_conn *conn;
    int method; /* enum http_method (http_parser.h) */
    unsigned short http_major, http_minor;
    struct rtmd_str url;   /* as sent: path and query */
    struct rtmd_str path;  /* url up to '?' (not decoded) */
    struct rtmd_str query; /* after '?', or empty */
    struct rtmd_http_header *headers;
    size_t n_headers;
    struct rtmd_str body;
    bool keep_alive;
    bool upgrade;    /* Connection: upgrade with an Upgrade header */
    uint32_t region; /* the listener's region */
    bool responded;
    char request_id[RTMD_REQUEST_ID_MAX];
    size_t request_id_len;
    uint64_t start_ns; /* uv_hrtime() when the request was complete and handed over */
    void *data;        /* the handler's */
    /* Header lines ("Name: value\r\n"...) sent with whatever answer this
     * request is given (CORS), added by the handler with rtmd_http_add_headers(). */
    char common_headers[RTMD_HTTP_COMMON_HEADERS_MAX];
    size_t common_headers_len;
    /* The handler's, for the answered hook (logs, metrics): */
    unsigned route;      /* its route's index */
    struct rtmd_str app; /* the App ID the request named (a view into path), or empty */
    /* An error answer's message (rtmd_http_respond_error sets it when the
     * handler did not): valid until the answer is given. */
    const char *error;
    /* private */
    struct rtmd_buf head; /* url and header bytes */
    struct rtmd_buf body_buf;
    size_t headers_cap;
};

/* Frees the pool of reusable requests (at exit). */
void rtmd_http_shutdown(void);

/* Starts HTTP on a newly accepted connection. */
void rtmd_http_conn_start(struct rtmd_conn *c);
/* Starts the answer of a connection over max_connections: its first bytes
 * are answered 503 (the §3.2 error body, Retry-After: 1) and it closes
 * gracefully; a client silent for http_header_timeout_ms is closed. */
void rtmd_http_conn_busy(struct rtmd_conn *c);

/* Answers http.c gave itself (refused requests), counted by status for
 * /metrics: rtmd_http_errors(i) is the count of rtmd_http_error_statuses[i]. */
#define RTMD_HTTP_ERROR_STATUSES 5
extern const int rtmd_http_error_statuses[RTMD_HTTP_ERROR_STATUSES];
uint64_t rtmd_http_errors(size_t i);

/* Called for every answer to a dispatched request (before it is written;
 * also when the client left meanwhile: then req->conn is NULL) with the
 * status and the body's length. One hook for the process (the API's access
 * log and latency histogram). */
typedef void (*rtmd_http_answered_fn)(void *ctx, const struct rtmd_http_request *req, int status,
                                      size_t body_len);
void rtmd_http_on_answered(rtmd_http_answered_fn fn, void *ctx);

/* Value of the first header named name (case-insensitive), or an empty view
 * with p == NULL. */
struct rtmd_str rtmd_http_header(const struct rtmd_http_request *req, const char *name);

/* Adds header lines (complete "Name: value\r\n" lines) to the answer this
 * request will get, whichever it is. 0, or -ENOSPC when they do not fit
 * (nothing added). */
int rtmd_http_add_headers(struct rtmd_http_request *req, struct rtmd_str lines);

/* Answers the request. extra_headers: complete "Name: value\r\n" lines or
 * empty. Adds Content-Length, X-Request-ID and, when closing, Connection:
 * close. A 204 has neither body nor Content-Type nor Content-Length. */
void rtmd_http_respond(struct rtmd_http_request *req, int status, const char *content_type,
                       struct rtmd_str extra_headers, struct rtmd_str body);
/* A body given in up to 4 parts, written as they are (no joining copy). */
void rtmd_http_respond_parts(struct rtmd_http_request *req, int status, const char *content_type,
                             const struct rtmd_str *parts, size_t nparts);
/* A JSON body (application/json;charset=utf-8). */
void rtmd_http_respond_json(struct rtmd_http_request *req, int status, struct rtmd_str body);
/* The REST API's error body (docs/API.md, "Errors"):
 * {"code":"<code>","message":"<message>","request_id":"...","result":"failed"} */
void rtmd_http_respond_error(struct rtmd_http_request *req, int status, const char *code,
                             const char *message);
/* The same with extra header lines ("Name: value\r\n"...). */
void rtmd_http_respond_error_headers(struct rtmd_http_request *req, int status, const char *code,
                                     const char *message, struct rtmd_str extra_headers);
/* Appends the §3.2 error body to out. */
int rtmd_http_error_body(struct rtmd_buf *out, const char *code, const char *message,
                         const char *request_id);

const char *rtmd_http_status_text(int status);

/*
 * For protocol upgrades (ws.c): writes response (the 101), ends HTTP on the
 * connection and moves the bytes that followed the request head into
 * *leftover (an initialised, empty buffer the caller then owns). The request
 * is answered and released; the caller installs the new protocol.
 */
int rtmd_http_upgrade(struct rtmd_http_request *req, struct rtmd_str response,
                      struct rtmd_buf *leftover);

#endif
