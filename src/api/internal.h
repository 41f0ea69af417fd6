/*
 * internal.h — what the API's files share.
 */
#ifndef RTMD_API_INTERNAL_H
#define RTMD_API_INTERNAL_H

#include "api/api.h"
#include "auth/request.h"
#include "core/buf.h"
#include "core/ids.h"
#include "core/json.h"

#define API_MAX_PARAMS 2

/* A vendor request after routing and authentication. */
struct api_call {
    struct rtmd_api *api;
    struct rtmd_http_request *req;
    const struct rtmd_app *app;
    struct rtmd_principal principal;
    struct rtmd_str params[API_MAX_PARAMS]; /* {x} segments of the route, raw */
    const struct api_route *route;
    char sender[RTMD_ID_MAX + 1]; /* the send APIs' decoded {user_id} */
    size_t sender_len;
    bool body_had_nul; /* see rtmd_json_parse_object */
};

struct api_route {
    int method;          /* enum http_method */
    const char *pattern; /* below /dev/v2/project/{appid}/; "*" matches one segment */
    int rate_bucket;     /* enum rtmd_rate_bucket, or -1 */
    bool vendor_read;    /* reads every user's data: client tokens only with vendor_token_access */
    /* Optional: checks what the caller may do before the rate limit is
     * charged; false when it has answered (and freed the call). */
    bool (*authorize)(struct api_call *call);
    void (*handle)(struct api_call *call);
};

/* Answers and frees the call. */
void api_respond_json(struct api_call *call, int status, struct rtmd_str body);
/* A JSON body in parts (see rtmd_http_respond_parts). */
void api_respond_json_parts(struct api_call *call, int status, const struct rtmd_str *parts,
                            size_t nparts);
void api_respond_error(struct api_call *call, int status, const char *code, const char *message);
/* Answers a store failure: -ETIMEDOUT → 408, RTMD_ERATE → 429, else 500. */
void api_respond_store_error(struct api_call *call, int status);
/* Answers a plain request (no call yet), counting it. */
void api_respond_req_error(struct rtmd_api *api, struct rtmd_http_request *req, int status,
                           const char *code, const char *message);
void api_count_status(struct rtmd_api *api, int status);

/* The API's scratch buffer for response bodies, emptied (answers are
 * written at once). */
struct rtmd_buf *api_body_buf(struct rtmd_api *api);

/* Endpoints. */
void api_user_events(struct api_call *call);
void api_channel_events(struct api_call *call);
bool api_authorize_sender(struct api_call *call);
void api_peer_messages(struct api_call *call);
void api_channel_messages(struct api_call *call);
void api_history_create(struct api_call *call);
void api_history_get(struct api_call *call);
void api_history_count(struct api_call *call);
void api_channel_members(struct api_call *call);
void api_channel_count(struct api_call *call);
void api_users_status(struct api_call *call);

/* Request-body helpers (bodies.c) — each answers 400 itself and returns
 * NULL/false on bad input. */
struct cJSON;
struct cJSON *api_parse_body(struct api_call *call);
bool api_id_field(struct api_call *call, const struct cJSON *obj, const char *name, bool required,
                  struct rtmd_str *out);
bool api_payload_field(struct api_call *call, const struct cJSON *obj, struct rtmd_str *out);
bool api_bool_field(struct api_call *call, const struct cJSON *obj, const char *name, bool *out);
/* Writes the §3.3-style success envelope tail: ,"request_id":"..","result":"success"} */
void api_json_tail(struct rtmd_json *j, const struct rtmd_http_request *req);
void api_healthz(struct rtmd_api *api, struct rtmd_http_request *req);
/* 200 while rtmd takes work: the store writes and the server is not
 * stopping (draining); else 503 naming why. */
void api_readyz(struct rtmd_api *api, struct rtmd_http_request *req);
/* CORS (cors.c): adds the headers every REST answer carries; returns the
 * listed origin that matched req's Origin, or NULL (none, or not listed). */
const char *api_cors_headers(struct rtmd_api *api, struct rtmd_http_request *req);
/* Answers OPTIONS on a REST path whose methods are allow ("GET", "POST");
 * listed: what api_cors_headers() returned for it. */
void api_cors_preflight(struct rtmd_api *api, struct rtmd_http_request *req, const char *allow,
                        const char *listed);
void api_metrics(struct rtmd_api *api, struct rtmd_http_request *req);
/* Serves the file compiled in for req->path (assets.c); false when no file
 * has that path. */
bool api_asset(struct rtmd_api *api, struct rtmd_http_request *req);

/* The route labels of rtmd_api.latency (RTMD_API_ROUTES), by index. */
extern const char *const api_route_labels[RTMD_API_ROUTES];

/* The codes counted in rtmd_api.by_code, in order. */
extern const int api_counted_codes[RTMD_API_COUNTED_CODES];

#endif
