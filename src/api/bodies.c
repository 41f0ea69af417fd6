/*
 * bodies.c — reading JSON request bodies: every field checked, every error a
 * 400 whose message names the field (the error body of docs/API.md).
 */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "api/internal.h"

/* Agora's bodies nest two levels (the history filter); leave room. */
#define BODY_MAX_DEPTH 8

cJSON *api_parse_body(struct api_call *call)
{
    struct rtmd_str b = call->req->body;
    const char *why;
    cJSON *root = rtmd_json_parse_object(b.p, b.len, BODY_MAX_DEPTH, &why, &call->body_had_nul);
    if (!root) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the body %s", why);
        api_respond_error(call, 400, "bad_request", msg);
    }
    return root;
}

static void field_error(struct api_call *call, const char *name, const char *what)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "%s %s", name, what);
    api_respond_error(call, 400, "bad_request", msg);
}

bool api_id_field(struct api_call *call, const cJSON *obj, const char *name, bool required,
                  struct rtmd_str *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = RTMD_STR_NULL;
    if (!v || cJSON_IsNull(v)) {
        if (required)
            field_error(call, name, "is required");
        return !required;
    }
    if (!cJSON_IsString(v) || !v->valuestring) {
        field_error(call, name, "must be a string");
        return false;
    }
    *out = rtmd_str_cstr(v->valuestring);
    if (!rtmd_id_valid(*out)) {
        field_error(call, name, "must be 1-64 characters of the allowed set, not \"null\"");
        return false;
    }
    return true;
}

bool api_payload_field(struct api_call *call, const cJSON *obj, struct rtmd_str *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "payload");
    if (!cJSON_IsString(v) || !v->valuestring) {
        field_error(call, "payload", "is required and must be a string");
        return false;
    }
    *out = rtmd_str_cstr(v->valuestring);
    if (out->len == 0 || out->len > call->api->cfg->limits.max_payload ||
        !rtmd_utf8_valid(out->p, out->len) || (call->body_had_nul && memchr(out->p, 1, out->len))) {
        field_error(call, "payload", "must be 1 to max_payload bytes of UTF-8 text");
        return false;
    }
    return true;
}

bool api_bool_field(struct api_call *call, const cJSON *obj, const char *name, bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = false;
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsBool(v)) {
        field_error(call, name, "must be true or false");
        return false;
    }
    *out = cJSON_IsTrue(v);
    return true;
}

void api_json_tail(struct rtmd_json *j, const struct rtmd_http_request *req)
{
    rtmd_json_key(j, "request_id");
    rtmd_json_str(j, rtmd_str_make(req->request_id, req->request_id_len));
    rtmd_json_key(j, "result");
    rtmd_json_cstr(j, "success");
    rtmd_json_obj_end(j);
}
