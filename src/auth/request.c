#include "auth/request.h"

#include "auth/basic.h"
#include "auth/token.h"

#include <openssl/crypto.h>

static bool starts_with_ci(struct rtmd_str s, const char *prefix, struct rtmd_str *rest)
{
    size_t n = strlen(prefix);
    if (s.len < n || !rtmd_str_ieq(rtmd_str_make(s.p, n), rtmd_str_make(prefix, n)))
        return false;
    *rest = rtmd_str_make(s.p + n, s.len - n);
    return true;
}

const struct rtmd_customer *rtmd_auth_customer(const struct rtmd_config *cfg,
                                               struct rtmd_str header, const char **why)
{
    char id[128], secret[256];
    if (rtmd_auth_basic_parse(header, id, sizeof(id), secret, sizeof(secret)) < 0) {
        *why = "malformed Basic credentials";
        return NULL;
    }
    const struct rtmd_customer *cust = rtmd_config_customer(cfg, rtmd_str_cstr(id));
    /* Compare even for an unknown customer, so timing does not tell which IDs exist. */
    bool ok = rtmd_auth_secret_equal(rtmd_str_cstr(secret), cust ? cust->secret : "");
    OPENSSL_cleanse(secret, sizeof(secret));
    if (!cust || !ok) {
        *why = "invalid customer ID or secret";
        return NULL;
    }
    return cust;
}

/* Basic credentials in header (`Basic <b64>`). A customer whose secret
 * matches is reported in out->customer even when it does not own the app. */
static int basic(const struct rtmd_config *cfg, const struct rtmd_app *app, struct rtmd_str header,
                 struct rtmd_principal *out, const char **why)
{
    const struct rtmd_customer *cust = rtmd_auth_customer(cfg, header, why);
    if (!cust)
        return RTMD_EAUTH;
    out->customer = cust;
    for (size_t i = 0; i < cust->n_apps; i++) {
        if (cust->apps[i] == app) {
            out->kind = RTMD_PRINCIPAL_CUSTOMER;
            return 0;
        }
    }
    *why = "these credentials do not grant this app";
    return RTMD_EAUTH;
}

/* A bare value with no scheme is tried as the base64 of Basic's id:secret. */
static int bare_basic(const struct rtmd_config *cfg, const struct rtmd_app *app,
                      struct rtmd_str value, struct rtmd_principal *out, const char **why)
{
    char header[RTMD_AUTH_BASIC_HEADER_MAX + 1];
    static const char scheme[] = "Basic ";
    if (value.len > sizeof(header) - sizeof(scheme)) {
        *why = "malformed Basic credentials";
        return RTMD_EAUTH;
    }
    memcpy(header, scheme, sizeof(scheme) - 1);
    memcpy(header + sizeof(scheme) - 1, value.p, value.len);
    return basic(cfg, app, rtmd_str_make(header, sizeof(scheme) - 1 + value.len), out, why);
}

static int token(const struct rtmd_config *cfg, const struct rtmd_app *app, struct rtmd_str tok,
                 struct rtmd_str uid, uint64_t now_s, struct rtmd_principal *out, const char **why)
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
                              now_s, cfg->limits.token_clock_skew_s, &info);
    if (r == RTMD_EEXPIRED) {
        *why = "token expired";
        return r;
    }
    if (r == RTMD_EFUTURE) {
        *why = "token issued in the future (check the issuing server's clock)";
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
    memcpy(out->uid, info.user_id, n + 1);
    out->uid_len = n;
    return 0;
}

/* A token as clients quote it: `"<t>"` → <t>. */
static struct rtmd_str unquote(struct rtmd_str s)
{
    s = rtmd_str_trim_ows(s);
    if (s.len >= 2 && s.p[0] == '"' && s.p[s.len - 1] == '"')
        s = rtmd_str_trim_ows(rtmd_str_make(s.p + 1, s.len - 2));
    return s;
}

/* `agora token=<t>`, `agora token = "<t>"`: the token, or p NULL. */
static struct rtmd_str agora_token(struct rtmd_str a)
{
    struct rtmd_str rest;
    if (!starts_with_ci(a, "agora ", &rest))
        return RTMD_STR_NULL;
    rest = rtmd_str_trim_ows(rest);
    if (!starts_with_ci(rest, "token", &rest))
        return RTMD_STR_NULL;
    rest = rtmd_str_trim_ows(rest);
    if (!rest.len || rest.p[0] != '=')
        return RTMD_STR_NULL;
    return unquote(rtmd_str_make(rest.p + 1, rest.len - 1));
}

static bool is_token(struct rtmd_str s)
{
    return s.len >= 3 && (memcmp(s.p, "006", 3) == 0 || memcmp(s.p, "007", 3) == 0);
}

static const char unsupported_[] = "unsupported Authorization scheme";

/* The failure that says most wins the answer: expired or future over "bad
 * credentials", and anything over an Authorization scheme rtmd ignores. */
static int worse(int have, const char *have_why, int r, const char *r_why, const char **why)
{
    if (have == 0 || (have == RTMD_EAUTH && r != RTMD_EAUTH) || have_why == unsupported_) {
        *why = r_why;
        return r;
    }
    *why = have_why;
    return have;
}

int rtmd_auth_request(const struct rtmd_config *cfg, const struct rtmd_app *app,
                      const struct rtmd_credentials *cred, uint64_t now_s,
                      struct rtmd_principal *out, const char **why)
{
    struct rtmd_str rest;
    struct rtmd_str uid = unquote(cred->x_agora_uid);
    int result = 0, r;
    const char *r_why = NULL;
    *why = "missing credentials";
    memset(out, 0, sizeof(*out));

    /* Every credential presented is tried; the first that verifies wins
     * (clients send the token headers and an Authorization that repeats
     * them, or one with a scheme rtmd does not know). */
    struct rtmd_str a = rtmd_str_trim_ows(cred->authorization);
    if (a.len) {
        struct rtmd_str tok = agora_token(a);
        if (starts_with_ci(a, "basic ", &rest))
            r = basic(cfg, app, a, out, &r_why);
        else if (tok.p)
            r = token(cfg, app, tok, uid, now_s, out, &r_why);
        else if (!memchr(a.p, ' ', a.len) && is_token(unquote(a)))
            r = token(cfg, app, unquote(a), uid, now_s, out, &r_why);
        else if (!memchr(a.p, ' ', a.len))
            r = bare_basic(cfg, app, a, out, &r_why);
        else {
            r = RTMD_EAUTH;
            r_why = unsupported_;
        }
        if (r == 0)
            return 0;
        result = worse(result, *why, r, r_why, why);
    }
    struct rtmd_str x = unquote(cred->x_agora_token);
    if (x.len) {
        r = token(cfg, app, x, uid, now_s, out, &r_why);
        if (r == 0)
            return 0;
        result = worse(result, *why, r, r_why, why);
    }
    return result ? result : RTMD_EAUTH;
}
