/*
 * sign.c — webhook signature, retry schedule and event JSON (pure).
 */
#include "webhook/sign.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#include "store/store.h"

int rtmd_webhook_sign(char *out, struct rtmd_str secret, uint64_t t, struct rtmd_str body)
{
    char ts[24];
    int tlen = snprintf(ts, sizeof(ts), "%llu", (unsigned long long)t);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    int rc = -EIO;
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (!ctx || !EVP_MAC_init(ctx, (const unsigned char *)secret.p, secret.len, params) ||
        !EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)tlen) ||
        !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
        (body.len && !EVP_MAC_update(ctx, (const unsigned char *)body.p, body.len)) ||
        !EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) || mac_len != 32)
        goto out;
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    memcpy(o, "t=", 2);
    o += 2;
    memcpy(o, ts, (size_t)tlen);
    o += tlen;
    memcpy(o, ",v1=", 4);
    o += 4;
    for (size_t i = 0; i < mac_len; i++) {
        *o++ = hex[mac[i] >> 4];
        *o++ = hex[mac[i] & 15];
    }
    *o = '\0';
    rc = (int)(o - out);
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    return rc;
}

uint64_t rtmd_webhook_backoff_ms(uint32_t attempt, uint32_t random)
{
    uint64_t d = RTMD_WEBHOOK_BACKOFF_MAX_MS;
    if (attempt == 0)
        attempt = 1;
    if (attempt <= 20) {
        d = (uint64_t)RTMD_WEBHOOK_BACKOFF_FIRST_MS << (attempt - 1);
        if (d > RTMD_WEBHOOK_BACKOFF_MAX_MS)
            d = RTMD_WEBHOOK_BACKOFF_MAX_MS;
    }
    uint64_t half = d / 2;
    return half + (half ? (uint64_t)random % (half + 1) : 0);
}

int rtmd_webhook_event(struct rtmd_buf *out, struct rtmd_str app, char log, uint64_t seq,
                       struct rtmd_str json, struct rtmd_str session)
{
    if (json.len < 2 || json.p[0] != '{')
        return -EINVAL;
    size_t start = out->len;
    int rc =
        rtmd_buf_printf(out, "{\"app_id\":\"%.*s\",\"event_id\":\"%.*s-%c-%llu\",", (int)app.len,
                        app.p, (int)app.len, app.p, log, (unsigned long long)seq);
    /* The rest of the object, numbered as a pull with `after` shows it. */
    if (!rc)
        rc = rtmd_event_numbered(out, rtmd_str_make(json.p + 1, json.len - 1), seq, session);
    if (rc)
        out->len = start;
    return rc;
}
