/*
 * internal.h — what the API's files share.
 */
#ifndef RTMD_API_INTERNAL_H
#define RTMD_API_INTERNAL_H

#include "api/api.h"
#include "auth/request.h"
#include "core/buf.h"

#define API_MAX_PARAMS 2

/* A vendor request after routing and authentication. */
struct api_call {
    struct rtmd_http_request *req;
    const struct rtmd_app *app;
    struct rtmd_principal principal;
    struct rtmd_str params[API_MAX_PARAMS]; /* {x} segments of the route, raw */
    const struct api_route *route;
};

struct api_route {
    int method;          /* enum http_method */
    const char *pattern; /* below /dev/v2/project/{appid}/; "*" matches one segment */
    int rate_bucket;     /* enum rtmd_rate_bucket, or -1 */
    void (*handle)(struct api_call *call);
};

extern const struct rtmd_config *api_cfg;
extern struct rtmd_store *api_store;
extern struct rtmd_server *api_server;

/* Answers and frees the call. */
void api_respond_json(struct api_call *call, int status, struct rtmd_str body);
void api_respond_error(struct api_call *call, int status, const char *code, const char *message);
/* Answers a store failure: -ETIMEDOUT → 408, RTMD_ERATE → 429, else 500. */
void api_respond_store_error(struct api_call *call, int status);
/* Answers a plain request (no call yet), counting it. */
void api_respond_req_error(struct rtmd_http_request *req, int status, const char *code,
                           const char *message);
void api_count_status(int status);

/* A loop-wide scratch buffer for response bodies (answers are written at once). */
struct rtmd_buf *api_body_buf(void);

/* Endpoints. */
void api_user_events(struct api_call *call);
void api_channel_events(struct api_call *call);
void api_healthz(struct rtmd_http_request *req);
void api_metrics(struct rtmd_http_request *req);

/* Counters for /metrics: answers by status class and by these codes. */
#define API_COUNTED_CODES 11
extern const int api_counted_codes[API_COUNTED_CODES];
struct api_counters {
    uint64_t status[6]; /* by class: 1xx..5xx at [1..5] */
    uint64_t by_code[API_COUNTED_CODES];
};
extern struct api_counters api_counters;

#endif
