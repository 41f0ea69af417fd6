/*
 * token.c — Agora RTM token 006/007 parsing, verification and building.
 * The rules are written down in token.h; the byte layouts follow
 * AgoraIO/Tools DynamicKey/AgoraDynamicKey (cpp/src/AccessToken.h,
 * AccessToken2.h, python3/src/AccessToken2.py).
 *
 * Everything a token contains is read through `struct reader`, which never
 * trusts a length: each read checks the bytes that remain and a failed read
 * poisons the reader, so a parse is checked once at its end.
 */
#include "auth/token.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#include "core/base64.h"

#define SIG_LEN    32
#define PREFIX_LEN 3
#define APPID_LEN  32

/* Largest base64-decoded token body. */
#define DECODED_MAX RTMD_BASE64_DECODED_MAX(RTMD_TOKEN_MAX)

/* 007 service types Agora defines (AccessToken2 kServiceCreator). */
enum {
    SERVICE_RTC = 1,
    SERVICE_RTM = 2,
    SERVICE_STREAMING = 3,
    SERVICE_FPA = 4,
    SERVICE_CHAT = 5,
    SERVICE_FCDN = 6,
    SERVICE_APAAS = 7,
    SERVICE_RTM2 = 8,
};

/* ---- little-endian reader and writer ------------------------------------ */

struct reader {
    const unsigned char *p;
    size_t len;
    size_t pos;
    bool bad;
};

static void reader_init(struct reader *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
    r->bad = false;
}

static bool reader_take(struct reader *r, size_t n, const unsigned char **at)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = true;
        return false;
    }
    *at = r->p + r->pos;
    r->pos += n;
    return true;
}

static uint16_t get_u16(struct reader *r)
{
    const unsigned char *b;
    if (!reader_take(r, 2, &b))
        return 0;
    return (uint16_t)(b[0] | (unsigned)b[1] << 8);
}

static uint32_t get_u32(struct reader *r)
{
    const unsigned char *b;
    if (!reader_take(r, 4, &b))
        return 0;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* str = u16 len || bytes; the view points into the reader's bytes. */
static struct rtmd_str get_str(struct reader *r)
{
    uint16_t n = get_u16(r);
    const unsigned char *b;
    if (!reader_take(r, n, &b))
        return RTMD_STR_NULL;
    return rtmd_str_make((const char *)b, n);
}

/* Reads map<u16,u32> and reports the value of `key`. A key that appears twice
 * poisons the reader (Agora's C++ keeps the first copy, Python the last). */
static void get_map_find(struct reader *r, uint16_t key, bool *found, uint32_t *value)
{
    *found = false;
    *value = 0;
    uint16_t count = get_u16(r);
    for (uint16_t i = 0; i < count && !r->bad; i++) {
        uint16_t k = get_u16(r);
        uint32_t v = get_u32(r);
        if (r->bad || k != key)
            continue;
        if (*found) {
            r->bad = true;
            return;
        }
        *found = true;
        *value = v;
    }
}

/* Reads a map<u16,u32> of a service rtmd does not look into. */
static void skip_map(struct reader *r)
{
    uint16_t count = get_u16(r);
    const unsigned char *b;
    if (count > 0)
        reader_take(r, (size_t)count * 6, &b);
}

static void put_u16(unsigned char *b, uint16_t v)
{
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
    b[2] = (unsigned char)(v >> 16);
    b[3] = (unsigned char)(v >> 24);
}

static int append_u16(struct rtmd_buf *b, uint16_t v)
{
    unsigned char t[2];
    put_u16(t, v);
    return rtmd_buf_append(b, t, sizeof(t));
}

static int append_u32(struct rtmd_buf *b, uint32_t v)
{
    unsigned char t[4];
    put_u32(t, v);
    return rtmd_buf_append(b, t, sizeof(t));
}

static int append_pstr(struct rtmd_buf *b, const void *p, size_t n)
{
    if (n > UINT16_MAX)
        return -EINVAL;
    int rc = append_u16(b, (uint16_t)n);
    return rc ? rc : rtmd_buf_append(b, p, n);
}

/* ---- HMAC ---------------------------------------------------------------- */

static int hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                       unsigned char out[SIG_LEN])
{
    unsigned int n = 0;
    static const unsigned char empty;
    if (keylen > INT32_MAX)
        return -EINVAL;
    if (!HMAC(EVP_sha256(), keylen ? key : &empty, (int)keylen, msglen ? msg : &empty, msglen, out,
              &n) ||
        n != SIG_LEN)
        return -EINVAL;
    return 0;
}

/* 006: HMAC-SHA256(certificate, app_id || channel || uid || m). RTM tokens
 * put the user in `channel` and leave `uid` empty; the two are only
 * concatenated, so RTC tokens (vectors 3 and 4) are signed the same way. */
static int sign_006(struct rtmd_str app_id, struct rtmd_str certificate, struct rtmd_str channel,
                    struct rtmd_str uid, struct rtmd_str m, unsigned char out[SIG_LEN])
{
    struct rtmd_buf msg;
    rtmd_buf_init(&msg, APPID_LEN + 4 * RTMD_ID_MAX + DECODED_MAX);
    int rc = rtmd_buf_append_str(&msg, app_id);
    if (!rc)
        rc = rtmd_buf_append_str(&msg, channel);
    if (!rc)
        rc = rtmd_buf_append_str(&msg, uid);
    if (!rc)
        rc = rtmd_buf_append_str(&msg, m);
    if (!rc)
        rc = hmac_sha256(certificate.p, certificate.len, msg.data, msg.len, out);
    rtmd_buf_free(&msg);
    return rc;
}

/* 007: k1 = HMAC(u32le(issue_ts), certificate); signing = HMAC(u32le(salt), k1). */
static int signing_key_007(struct rtmd_str certificate, uint32_t issue_ts, uint32_t salt,
                           unsigned char k1[SIG_LEN], unsigned char signing[SIG_LEN])
{
    unsigned char key[4];
    put_u32(key, issue_ts);
    int rc = hmac_sha256(key, sizeof(key), certificate.p, certificate.len, k1);
    if (rc)
        return rc;
    put_u32(key, salt);
    return hmac_sha256(key, sizeof(key), k1, SIG_LEN, signing);
}

static int sign_007(struct rtmd_str certificate, uint32_t issue_ts, uint32_t salt,
                    const void *signing_info, size_t len, unsigned char out[SIG_LEN])
{
    unsigned char k1[SIG_LEN], signing[SIG_LEN];
    int rc = signing_key_007(certificate, issue_ts, salt, k1, signing);
    if (!rc)
        rc = hmac_sha256(signing, SIG_LEN, signing_info, len, out);
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(signing, sizeof(signing));
    return rc;
}

static bool sig_equal(struct rtmd_str given, const unsigned char want[SIG_LEN])
{
    return given.len == SIG_LEN && CRYPTO_memcmp(given.p, want, SIG_LEN) == 0;
}

static uint32_t crc32_of(struct rtmd_str s)
{
    return (uint32_t)crc32(0L, (const Bytef *)s.p, (uInt)s.len);
}

/* ---- 006 ----------------------------------------------------------------- */

struct token_006 {
    struct rtmd_str app_id;
    struct rtmd_str signature;
    uint32_t crc_channel;
    uint32_t crc_uid;
    struct rtmd_str m; /* the raw signed bytes */
    uint32_t salt;
    uint32_t ts;
    bool has_login;
    uint32_t login; /* privilege 1000 */
};

/* Parses `content` (the base64-decoded part); t's views point into it. */
static int parse_006_content(const void *content, size_t len, struct token_006 *t)
{
    struct reader r;
    reader_init(&r, content, len);
    t->signature = get_str(&r);
    t->crc_channel = get_u32(&r);
    t->crc_uid = get_u32(&r);
    t->m = get_str(&r);
    if (r.bad || r.pos != r.len || t->signature.len != SIG_LEN)
        return RTMD_EPARSE;

    struct reader mr;
    reader_init(&mr, t->m.p, t->m.len);
    t->salt = get_u32(&mr);
    t->ts = get_u32(&mr);
    get_map_find(&mr, RTMD_TOKEN_006_PRIV_RTM_LOGIN, &t->has_login, &t->login);
    if (mr.bad || mr.pos != mr.len)
        return RTMD_EPARSE;
    return 0;
}

static int verify_006(struct rtmd_str token, struct rtmd_str app_id, struct rtmd_str certificate,
                      struct rtmd_str uid, uint64_t now_s, uint32_t skew_s,
                      struct rtmd_token_info *out)
{
    if (token.len < PREFIX_LEN + APPID_LEN)
        return RTMD_EPARSE;
    struct token_006 t;
    t.app_id = rtmd_str_make(token.p + PREFIX_LEN, APPID_LEN);
    struct rtmd_str body =
        rtmd_str_make(token.p + PREFIX_LEN + APPID_LEN, token.len - PREFIX_LEN - APPID_LEN);
    struct rtmd_buf content;
    rtmd_buf_init(&content, DECODED_MAX);
    int rc = rtmd_base64_decode(&content, body);
    if (rc) {
        rc = rc == -ENOMEM ? rc : RTMD_EPARSE;
        goto out;
    }
    rc = parse_006_content(content.data, content.len, &t);
    if (rc)
        goto out;

    rc = RTMD_EAUTH;
    if (!rtmd_str_eq(t.app_id, app_id) || certificate.len == 0 || !rtmd_id_valid(uid))
        goto out;
    unsigned char want[SIG_LEN];
    if (sign_006(t.app_id, certificate, uid, RTMD_STR_LIT(""), t.m, want) ||
        !sig_equal(t.signature, want))
        goto out;
    if (t.crc_channel != crc32_of(uid) || t.crc_uid != 0 || !t.has_login)
        goto out;

    uint32_t expire_ts = t.ts;
    if (t.login != 0 && t.login < expire_ts)
        expire_ts = t.login;
    rc = RTMD_EEXPIRED;
    if (now_s > expire_ts)
        goto out;
    /* ts is the builder's now + its lifetime (24 h at most): one further
     * ahead was made by a clock in the future. */
    rc = RTMD_EFUTURE;
    if ((uint64_t)t.ts > now_s + RTMD_TOKEN_LIFETIME_S + skew_s)
        goto out;

    out->version = 6;
    memcpy(out->user_id, uid.p, uid.len);
    out->user_id[uid.len] = '\0';
    out->issue_ts = 0;
    out->expire_ts = expire_ts;
    out->salt = t.salt;
    rc = 0;
out:
    rtmd_buf_free(&content);
    return rc;
}

/* ---- 007 ----------------------------------------------------------------- */

struct token_007 {
    struct rtmd_str signature;
    struct rtmd_str signing_info; /* the raw signed bytes */
    struct rtmd_str app_id;
    uint32_t issue_ts;
    uint32_t expire;
    uint32_t salt;
    bool has_rtm;
    struct rtmd_str user;
    bool has_login;
    uint32_t login; /* RTM privilege 1 */
};

/* Inflates a complete zlib stream into out (RTMD_TOKEN_INFLATED_MAX bytes).
 * Anything but one whole stream that fits, followed by nothing: RTMD_EPARSE. */
static int inflate_bounded(const void *in, size_t inlen, unsigned char *out, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit(&zs) != Z_OK)
        return -ENOMEM;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)inlen;
    zs.next_out = out;
    zs.avail_out = RTMD_TOKEN_INFLATED_MAX;
    int zrc = inflate(&zs, Z_FINISH);
    int rc = RTMD_EPARSE;
    if (zrc == Z_STREAM_END && zs.avail_in == 0) {
        *outlen = RTMD_TOKEN_INFLATED_MAX - zs.avail_out;
        rc = 0;
    } else if (zrc == Z_MEM_ERROR) {
        rc = -ENOMEM;
    }
    inflateEnd(&zs);
    return rc;
}

/* Reads one service body of `type` (the type is already read). Returns
 * false when `type` is not one Agora defines: parsing stops there. */
static bool read_service(struct reader *r, uint16_t type, struct token_007 *t)
{
    switch (type) {
    case SERVICE_RTM: {
        bool found;
        uint32_t login;
        get_map_find(r, RTMD_TOKEN_007_PRIV_LOGIN, &found, &login);
        struct rtmd_str user = get_str(r);
        if (t->has_rtm)
            r->bad = true; /* two RTM services: ambiguous */
        t->has_rtm = true;
        t->has_login = found;
        t->login = login;
        t->user = user;
        return true;
    }
    case SERVICE_FPA: skip_map(r); return true;
    case SERVICE_CHAT:
        skip_map(r);
        get_str(r);
        return true;
    case SERVICE_RTC:
    case SERVICE_STREAMING:
    case SERVICE_FCDN:
        skip_map(r);
        get_str(r);
        get_str(r);
        return true;
    case SERVICE_APAAS:
        skip_map(r);
        get_str(r);
        get_str(r);
        get_u16(r); /* int16 role */
        return true;
    case SERVICE_RTM2: {
        skip_map(r);
        get_str(r);
        uint16_t resources = get_u16(r);
        for (uint16_t i = 0; i < resources && !r->bad; i++) {
            get_u16(r);
            uint16_t perms = get_u16(r);
            for (uint16_t j = 0; j < perms && !r->bad; j++) {
                get_u16(r);
                uint16_t n = get_u16(r);
                for (uint16_t k = 0; k < n && !r->bad; k++)
                    get_str(r);
            }
        }
        return true;
    }
    default: return false;
    }
}

/* Parses the inflated bytes; t's views point into them. */
static int parse_007_content(const void *p, size_t len, struct token_007 *t)
{
    memset(t, 0, sizeof(*t));
    struct reader r;
    reader_init(&r, p, len);
    t->signature = get_str(&r);
    if (r.bad || t->signature.len != SIG_LEN)
        return RTMD_EPARSE;
    t->signing_info = rtmd_str_make((const char *)r.p + r.pos, r.len - r.pos);
    t->app_id = get_str(&r);
    t->issue_ts = get_u32(&r);
    t->expire = get_u32(&r);
    t->salt = get_u32(&r);
    uint16_t services = get_u16(&r);
    for (uint16_t i = 0; i < services && !r.bad; i++) {
        uint16_t type = get_u16(&r);
        if (r.bad || !read_service(&r, type, t))
            break;
    }
    return r.bad ? RTMD_EPARSE : 0;
}

static uint32_t expire_ts_007(const struct token_007 *t)
{
    uint64_t issue = t->issue_ts;
    uint64_t end = issue + (t->expire ? t->expire : RTMD_TOKEN_LIFETIME_S);
    if (t->login != 0)
        end = RTMD_MIN(end, issue + t->login);
    end = RTMD_MIN(end, issue + RTMD_TOKEN_LIFETIME_S);
    return end > UINT32_MAX ? UINT32_MAX : (uint32_t)end;
}

static int verify_007(struct rtmd_str token, struct rtmd_str app_id, struct rtmd_str certificate,
                      struct rtmd_str uid, uint64_t now_s, uint32_t skew_s,
                      struct rtmd_token_info *out)
{
    struct rtmd_buf packed;
    rtmd_buf_init(&packed, DECODED_MAX);
    unsigned char plain[RTMD_TOKEN_INFLATED_MAX];
    struct token_007 t;
    size_t plain_len = 0;
    int rc =
        rtmd_base64_decode(&packed, rtmd_str_make(token.p + PREFIX_LEN, token.len - PREFIX_LEN));
    if (rc) {
        rc = rc == -ENOMEM ? rc : RTMD_EPARSE;
        goto out;
    }
    rc = inflate_bounded(packed.data, packed.len, plain, &plain_len);
    if (!rc)
        rc = parse_007_content(plain, plain_len, &t);
    if (rc)
        goto out;

    rc = RTMD_EAUTH;
    if (!rtmd_str_eq(t.app_id, app_id) || certificate.len == 0)
        goto out;
    unsigned char want[SIG_LEN];
    if (sign_007(certificate, t.issue_ts, t.salt, t.signing_info.p, t.signing_info.len, want) ||
        !sig_equal(t.signature, want))
        goto out;
    if (!t.has_rtm || !t.has_login || !rtmd_id_valid(t.user))
        goto out;
    if (uid.len > 0 && !rtmd_str_eq(uid, t.user))
        goto out;

    uint32_t expire_ts = expire_ts_007(&t);
    rc = RTMD_EEXPIRED;
    if (now_s > expire_ts)
        goto out;
    rc = RTMD_EFUTURE;
    if ((uint64_t)t.issue_ts > now_s + skew_s)
        goto out;

    out->version = 7;
    memcpy(out->user_id, t.user.p, t.user.len);
    out->user_id[t.user.len] = '\0';
    out->issue_ts = t.issue_ts;
    out->expire_ts = expire_ts;
    out->salt = t.salt;
    rc = 0;
out:
    rtmd_buf_free(&packed);
    return rc;
}

int rtmd_token_verify(struct rtmd_str token, struct rtmd_str app_id, struct rtmd_str certificate,
                      struct rtmd_str uid, uint64_t now_s, uint32_t skew_s,
                      struct rtmd_token_info *out)
{
    if (!token.p || token.len < PREFIX_LEN || token.len > RTMD_TOKEN_MAX)
        return RTMD_EPARSE;
    if (now_s > UINT64_MAX / 2)
        now_s = UINT64_MAX / 2; /* the checks add lifetimes to it */
    if (memcmp(token.p, "006", PREFIX_LEN) == 0)
        return verify_006(token, app_id, certificate, uid, now_s, skew_s, out);
    if (memcmp(token.p, "007", PREFIX_LEN) == 0)
        return verify_007(token, app_id, certificate, uid, now_s, skew_s, out);
    return RTMD_EPARSE;
}

/* ---- builders ------------------------------------------------------------ */

static bool build_inputs_valid(struct rtmd_str app_id, struct rtmd_str certificate,
                               struct rtmd_str user)
{
    return rtmd_appid_valid(app_id) && rtmd_certificate_valid(certificate) && rtmd_id_valid(user);
}

int rtmd_token_build_006(struct rtmd_buf *out, struct rtmd_str app_id, struct rtmd_str certificate,
                         struct rtmd_str user, uint32_t salt, uint32_t ts,
                         uint32_t privilege_expire_ts)
{
    if (!build_inputs_valid(app_id, certificate, user))
        return -EINVAL;

    /* m = u32 salt || u32 ts || map{1000: privilege_expire_ts} */
    unsigned char m[16];
    put_u32(m, salt);
    put_u32(m + 4, ts);
    put_u16(m + 8, 1);
    put_u16(m + 10, RTMD_TOKEN_006_PRIV_RTM_LOGIN);
    put_u32(m + 12, privilege_expire_ts);

    unsigned char sig[SIG_LEN];
    int rc = sign_006(app_id, certificate, user, RTMD_STR_LIT(""),
                      rtmd_str_make((const char *)m, sizeof(m)), sig);
    if (rc)
        return rc;

    struct rtmd_buf content;
    rtmd_buf_init(&content, 256);
    rc = append_pstr(&content, sig, SIG_LEN);
    if (!rc)
        rc = append_u32(&content, crc32_of(user));
    if (!rc)
        rc = append_u32(&content, 0); /* crc32("") */
    if (!rc)
        rc = append_pstr(&content, m, sizeof(m));

    size_t start = out->len;
    if (!rc)
        rc = rtmd_buf_append(out, "006", PREFIX_LEN);
    if (!rc)
        rc = rtmd_buf_append_str(out, app_id);
    if (!rc)
        rc = rtmd_base64_encode(out, content.data, content.len);
    if (rc)
        out->len = start;
    rtmd_buf_free(&content);
    return rc;
}

/* The uncompressed 007 payload: str(signature) || signing_info. */
static int build_007_plain(struct rtmd_buf *plain, struct rtmd_str app_id,
                           struct rtmd_str certificate, struct rtmd_str user, uint32_t issue_ts,
                           uint32_t expire, uint32_t salt)
{
    struct rtmd_buf info;
    rtmd_buf_init(&info, 512);
    int rc = append_pstr(&info, app_id.p, app_id.len);
    if (!rc)
        rc = append_u32(&info, issue_ts);
    if (!rc)
        rc = append_u32(&info, expire);
    if (!rc)
        rc = append_u32(&info, salt);
    if (!rc)
        rc = append_u16(&info, 1); /* one service */
    if (!rc)
        rc = append_u16(&info, RTMD_TOKEN_007_SERVICE_RTM);
    if (!rc)
        rc = append_u16(&info, 1); /* one privilege */
    if (!rc)
        rc = append_u16(&info, RTMD_TOKEN_007_PRIV_LOGIN);
    if (!rc)
        rc = append_u32(&info, expire);
    if (!rc)
        rc = append_pstr(&info, user.p, user.len);

    unsigned char sig[SIG_LEN];
    if (!rc)
        rc = sign_007(certificate, issue_ts, salt, info.data, info.len, sig);
    if (!rc)
        rc = append_pstr(plain, sig, SIG_LEN);
    if (!rc)
        rc = rtmd_buf_append(plain, info.data, info.len);
    rtmd_buf_free(&info);
    return rc;
}

int rtmd_token_build_007(struct rtmd_buf *out, struct rtmd_str app_id, struct rtmd_str certificate,
                         struct rtmd_str user, uint32_t issue_ts, uint32_t expire, uint32_t salt)
{
    if (!build_inputs_valid(app_id, certificate, user))
        return -EINVAL;

    struct rtmd_buf plain;
    rtmd_buf_init(&plain, 512);
    unsigned char packed[1024];
    uLongf packed_len = sizeof(packed);
    size_t start = out->len;
    int rc = build_007_plain(&plain, app_id, certificate, user, issue_ts, expire, salt);
    if (!rc && compress2(packed, &packed_len, (const Bytef *)plain.data, (uLong)plain.len,
                         Z_DEFAULT_COMPRESSION) != Z_OK)
        rc = RTMD_ELIMIT;
    if (!rc)
        rc = rtmd_buf_append(out, "007", PREFIX_LEN);
    if (!rc)
        rc = rtmd_base64_encode(out, packed, packed_len);
    if (rc)
        out->len = start;
    rtmd_buf_free(&plain);
    return rc;
}
