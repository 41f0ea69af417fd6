/*
 * request.h — who is calling the REST API (Basic auth or a token).
 *
 * Any one of: Basic (a customer that owns the app), AccessToken 006 in
 * x-agora-token + x-agora-uid, AccessToken2 007 in `Authorization: agora
 * token=...` or x-agora-token (x-agora-uid optional; when given it must be
 * the token's user). An app with no certificate accepts no token.
 */
#ifndef RTMD_AUTH_REQUEST_H
#define RTMD_AUTH_REQUEST_H

#include "core/common.h"
#include "core/config.h"
#include "core/ids.h"

enum rtmd_principal_kind { RTMD_PRINCIPAL_CUSTOMER, RTMD_PRINCIPAL_USER };

struct rtmd_principal {
    enum rtmd_principal_kind kind;
    const struct rtmd_customer *customer; /* CUSTOMER */
    char uid[RTMD_ID_MAX + 1];            /* USER: the token's user */
    size_t uid_len;
};

/* The three headers that can carry credentials (views; may be empty). */
struct rtmd_credentials {
    struct rtmd_str authorization;
    struct rtmd_str x_agora_token;
    struct rtmd_str x_agora_uid;
};

/* 0 and *out filled, or a negative error with *why set to a static message:
 * RTMD_EAUTH (missing or wrong credentials, wrong app), RTMD_EEXPIRED or
 * RTMD_EFUTURE (a token's clock is ahead by more than token_clock_skew_s).
 *
 * Every credential presented is tried, the first that verifies wins:
 * `Authorization: Basic ...`; `Authorization: agora token=<t>` (spaces
 * around `=` and double quotes around the token allowed; a 006 token there
 * takes its user from x-agora-uid); an Authorization value with no scheme,
 * as a token when it starts 006/007, else as base64(id:secret); and
 * x-agora-token (+ x-agora-uid). An Authorization scheme rtmd does not know
 * fails only when nothing else verifies. When a Basic credential names a
 * customer and its secret matches, out->customer is set even on failure (the
 * router tells such a caller that an App ID does not exist). */
int rtmd_auth_request(const struct rtmd_config *cfg, const struct rtmd_app *app,
                      const struct rtmd_credentials *cred, uint64_t now_s,
                      struct rtmd_principal *out, const char **why);

/* The customer that `Authorization: Basic ...` (header, the header's value)
 * names with its secret, whichever apps it has (GET /metrics on the main
 * listeners), or NULL with *why set to a static message. */
const struct rtmd_customer *rtmd_auth_customer(const struct rtmd_config *cfg,
                                               struct rtmd_str header, const char **why);

#endif
