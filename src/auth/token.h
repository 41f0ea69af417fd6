/*
 * token.h — Agora RTM tokens: AccessToken "006" and AccessToken2 "007"
 * (client logins, and the vendor REST API's token credentials). Verification
 * accepts exactly what Agora's public builders (npm agora-access-token /
 * agora-token, and the C++/Python/Go versions in AgoraIO/Tools) produce,
 * including their published test vectors; the builders reproduce those
 * vectors.
 *
 * Formats (all integers little-endian, str = u16 len || bytes,
 * map = u16 count || (u16 key || u32 value)*):
 *
 *   006: "006" || appId(32) || base64(str(sig) || u32 crc32(user) || u32 crc32("") || str(m))
 *        m   = u32 salt || u32 ts || map{1000 (kRtmLogin): privilege_expire_ts}
 *        sig = HMAC-SHA256(certificate, appId || user || "" || m)
 *   007: "007" || base64(zlib(str(sig) || signing_info))
 *        signing_info = str(appId) || u32 issue_ts || u32 expire || u32 salt
 *                       || u16 n || services (RTM: u16 2 || map{1 (login): expire} || str(user))
 *        sig = HMAC(HMAC(u32 salt, HMAC(u32 issue_ts, certificate)), signing_info)
 *
 * The App ID and certificate are used as their ASCII bytes, case kept.
 *
 * VERIFICATION RULES (rtmd_token_verify), checked in this order so that a
 * forged token never learns more than "bad credentials":
 *  1. Shape (RTMD_EPARSE): at most RTMD_TOKEN_MAX bytes; prefix "006" or
 *     "007"; strict standard base64 (rtmd_base64_decode); for 007 a complete
 *     zlib stream (any deflate encoder; only the inflated bytes matter)
 *     inflating to at most RTMD_TOKEN_INFLATED_MAX bytes with nothing after
 *     it; every length-prefixed field inside the bytes; a 32-byte signature.
 *     006 content must end exactly after str(m), and m exactly after its map.
 *     007 services are read in order; a type Agora does not define (not 1..8)
 *     stops reading, as Agora's C++ and Python parsers do, and the bytes after
 *     it are covered by the signature but ignored. A second RTM (type 2)
 *     service, or a second entry for the privilege that is checked (006: 1000;
 *     007 RTM: 1), is RTMD_EPARSE: Agora's parsers disagree on which copy wins.
 *  2. App (RTMD_EAUTH): the token's App ID equals app_id byte for byte; the
 *     certificate is not empty (an app without one accepts no token).
 *  3. Signature (RTMD_EAUTH): recomputed over the raw bytes in the token
 *     (never re-packed), compared with CRYPTO_memcmp.
 *  4. User and privilege (RTMD_EAUTH):
 *     006 — uid is required (the token carries only its crc32): uid must be a
 *           valid ID (core/ids.h); the token's crc fields must be crc32(uid) and 0
 *           (an RTM token has an empty RTC uid); privilege 1000 must be present.
 *           user_id = uid.
 *     007 — an RTM service (type 2) holding privilege 1 (login) must have been
 *           read; its user must be a valid ID (core/ids.h); if uid.len > 0 it must
 *           equal that user. user_id = the token's user.
 *  5. Expiry (RTMD_EEXPIRED); a token is valid while now_s <= expire_ts:
 *     006 — expire_ts = ts, lowered to privilege 1000's value when that is
 *           non-zero. (006 carries no issue time, so there is no 24 h cap
 *           beyond what the builder put in ts, normally issue + 24 h.)
 *     007 — expire_ts = issue_ts + (expire ? expire : 86400), lowered to
 *           issue_ts + priv[1] when priv[1] != 0, and never beyond
 *           issue_ts + 86400 (the 24 h cap). `expire` is read as seconds after
 *           issue_ts, as every Agora builder writes it; a token built with an
 *           absolute time there (as one Agora doc page suggests) therefore
 *           lives the 24 h cap (a common mistake: now + 60 days passed as
 *           the relative value), computed in 64 bits.
 *     expire_ts saturates at UINT32_MAX.
 *  6. Issue time (RTMD_EFUTURE): a token made by a clock ahead of ours by
 *     more than skew_s (token_clock_skew_s) is refused, so that no token
 *     lives longer than 24 h from now:
 *     006 — ts (its expiry) more than 24 h + skew_s after now_s;
 *     007 — issue_ts more than skew_s after now_s.
 *
 * On success *out is filled; on failure its contents are unspecified.
 */
#ifndef RTMD_AUTH_TOKEN_H
#define RTMD_AUTH_TOKEN_H

#include <stdint.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/ids.h"

/* Longest token accepted (bytes, prefix included). */
#define RTMD_TOKEN_MAX 2048
/* Largest inflated 007 payload accepted. */
#define RTMD_TOKEN_INFLATED_MAX 4096
/* Lifetime of an RTM token: 007 cap, 007 `expire` 0, 006 builder default. */
#define RTMD_TOKEN_LIFETIME_S 86400u

/* Privilege and service numbers used by RTM tokens. */
#define RTMD_TOKEN_006_PRIV_RTM_LOGIN 1000
#define RTMD_TOKEN_007_SERVICE_RTM    2
#define RTMD_TOKEN_007_PRIV_LOGIN     1

struct rtmd_token_info {
    int version;                   /* 6 or 7 */
    char user_id[RTMD_ID_MAX + 1]; /* NUL-terminated, a valid ID (core/ids.h) */
    uint32_t issue_ts;             /* 007: issue time; 006: 0 (not in the token) */
    uint32_t expire_ts;            /* last second (absolute unix time) it is valid */
    uint32_t salt;
};

/*
 * Verifies an RTM token for app_id (signed with certificate) at time now_s;
 * see the rules above. uid: 006 — the x-agora-uid header, required;
 * 007 — optional, must equal the token's user when given.
 * skew_s: how far in the future the issuer's clock may be.
 * Returns 0, RTMD_EPARSE, RTMD_EAUTH, RTMD_EEXPIRED or RTMD_EFUTURE.
 */
int rtmd_token_verify(struct rtmd_str token, struct rtmd_str app_id, struct rtmd_str certificate,
                      struct rtmd_str uid, uint64_t now_s, uint32_t skew_s,
                      struct rtmd_token_info *out);

/*
 * Builds a 006 RTM token exactly as Agora's RtmTokenBuilder does
 * (channelName = user, uid = "", privileges {1000: privilege_expire_ts}).
 * ts is the token's expiry (the builders use now + 24 h). Appends to out.
 * 0, -EINVAL (app_id, certificate or user not valid per core/ids.h),
 * RTMD_ELIMIT or -ENOMEM.
 */
int rtmd_token_build_006(struct rtmd_buf *out, struct rtmd_str app_id, struct rtmd_str certificate,
                         struct rtmd_str user, uint32_t salt, uint32_t ts,
                         uint32_t privilege_expire_ts);

/*
 * Builds a 007 RTM token as Agora's RtmTokenBuilder2 does: one RTM service for
 * user with privilege login = expire; expire is seconds after issue_ts.
 * Compressed with zlib's default level. Appends to out.
 * 0, -EINVAL, RTMD_ELIMIT or -ENOMEM.
 */
int rtmd_token_build_007(struct rtmd_buf *out, struct rtmd_str app_id, struct rtmd_str certificate,
                         struct rtmd_str user, uint32_t issue_ts, uint32_t expire, uint32_t salt);

#endif
