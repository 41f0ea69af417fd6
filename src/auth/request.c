#include "auth/request.h"

#include "auth/basic.h"
#include "auth/token.h"

static bool starts_with_ci(struct rtmd_str s, const char *prefix, struct rtmd_str *rest)
{
    size_t n = strlen(prefix);
    if (s.len < n || !rtmd_str_ieq(rtmd_str_make(s.p, n), rtmd_str_make(prefix, n)))
        return false;
    *rest = rtmd_str_make(s.p + n, s.len - n);
    return true;
}

static struct rtmd_str trim(struct rtmd_str s)
{
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
        s.len--;
    return s;
}

static int basic(const struct rtmd_config *cfg, const struct rtmd_app *app, struct rtmd_str header,
                 struct rtmd_principal *out, const char **why)
{
    char id[128], secret[256];
    if (rtmd_auth_basic_parse(header, id, sizeof(id), secret, sizeof(secret)) < 0) {
        *why = "malformed Basic credentials";
        return RTMD_EAUTH;
    }
    const struct rtmd_customer *cust = rtmd_config_customer(cfg, rtmd_str_cstr(id));
    /* Compare even for an unknown customer, so timing does not tell which IDs exist. */
    bool ok = rtmd_auth_secret_equal(rtmd_str_cstr(secret), cust ? cust->secret : "");
    if (!cust || !ok) {
        *why = "invalid customer ID or secret";
        return RTMD_EAUTH;
    }
    for (size_t i = 0; i < cust->n_apps; i++) {
        if (cust->apps[i] == app) {
            out->kind = RTMD_PRINCIPAL_CUSTOMER;
            out->customer = cust;
            return 0;
        }
    }
    *why = "these credentials do not grant this app";
    return RTMD_EAUTH;
}

static int token(const struct rtmd_app *app, struct rtmd_str tok, struct rtmd_str uid,
                 uint64_t now_s, struct rtmd_principal *out, const char **why)
{
    if (!app->has_certificate) {
        *why = "this app has no certificate and accepts no token";
        return RTMD_EAUTH;
    }
    if (tok.len >= 3 && memcmp(tok.p, "006", 3) == 0 && uid.len == 0) {
        *why = "x-agora-uid is required with a 006 token";
        return RTMD_EAUTH;
    }
    struct rtmd_token_info info;
    int r = rtmd_token_verify(tok, rtmd_str_cstr(app->id), rtmd_str_cstr(app->certificate), uid,
                              now_s, &info);
    if (r == RTMD_EEXPIRED) {
        *why = "token expired";
        return r;
    }
    if (r < 0) {
        *why = "token does not verify for this app and user";
        return RTMD_EAUTH;
    }
    size_t n = strlen(info.user_id);
    if (!rtmd_id_valid(rtmd_str_make(info.user_id, n))) {
        *why = "token user is not a valid uid";
        return RTMD_EAUTH;
    }
    out->kind = RTMD_PRINCIPAL_USER;
    out->customer = NULL;
    memcpy(out->uid, info.user_id, n + 1);
    out->uid_len = n;
    return 0;
}

int rtmd_auth_request(const struct rtmd_config *cfg, const struct rtmd_app *app,
                      const struct rtmd_credentials *cred, uint64_t now_s,
                      struct rtmd_principal *out, const char **why)
{
    struct rtmd_str rest;
    struct rtmd_str uid = trim(cred->x_agora_uid);
    if (cred->authorization.len) {
        struct rtmd_str a = trim(cred->authorization);
        if (starts_with_ci(a, "basic ", &rest))
            return basic(cfg, app, a, out, why);
        if (starts_with_ci(a, "agora ", &rest)) {
            rest = trim(rest);
            struct rtmd_str tok;
            if (starts_with_ci(rest, "token=", &tok))
                return token(app, trim(tok), uid, now_s, out, why);
        }
        if (!cred->x_agora_token.len) {
            *why = "unsupported Authorization scheme";
            return RTMD_EAUTH;
        }
    }
    if (cred->x_agora_token.len)
        return token(app, trim(cred->x_agora_token), uid, now_s, out, why);
    *why = "missing credentials";
    return RTMD_EAUTH;
}
