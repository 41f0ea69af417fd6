/*
 * sign.h — the pure parts of webhook delivery (no I/O): the signature
 * header, the retry schedule and the JSON of one delivered event.
 */
#ifndef RTMD_WEBHOOK_SIGN_H
#define RTMD_WEBHOOK_SIGN_H

#include <stdint.h>

#include "core/buf.h"
#include "core/common.h"

/* Bytes of an X-Rtmd-Signature value at most, with its NUL:
 * "t=" 20 digits ",v1=" 64 hex digits. */
#define RTMD_WEBHOOK_SIG_MAX 96

/*
 * Writes "t=<t>,v1=<hex HMAC-SHA256(secret, "<t>." body)>" (NUL-terminated)
 * into out (RTMD_WEBHOOK_SIG_MAX bytes). Returns its length, or a negative
 * error (OpenSSL failed).
 */
int rtmd_webhook_sign(char *out, struct rtmd_str secret, uint64_t t, struct rtmd_str body);

/* Retries: the first waits about RTMD_WEBHOOK_BACKOFF_FIRST_MS, each next
 * one twice as long, up to RTMD_WEBHOOK_BACKOFF_MAX_MS. */
#define RTMD_WEBHOOK_BACKOFF_FIRST_MS 500
#define RTMD_WEBHOOK_BACKOFF_MAX_MS   300000

/*
 * The wait before retry number attempt (1 for the first retry): d =
 * min(FIRST << (attempt - 1), MAX), then "equal jitter": d/2 plus a part of
 * d/2 chosen by random (any 32-bit value), so a crowd of failing senders
 * spreads out but no wait is shorter than half the schedule's.
 */
uint64_t rtmd_webhook_backoff_ms(uint32_t attempt, uint32_t random);

/*
 * Appends one delivered event: the event log's JSON object (json) with
 * "app_id" and "event_id" first, and "seq" and "session_id" before "ts" (as
 * a pull with `after` shows them):
 *   {"app_id":"A","event_id":"A-u-7","ms":M,"seq":7,"session_id":"S","ts":M,...}
 * event_id is "<app>-<u|c|m>-<seq>": u for the user log, c for the channel
 * log, m for messages (seq: the outbox id) — unique per app and stable
 * across retries and restarts. 0 or an rtmd_buf error.
 */
int rtmd_webhook_event(struct rtmd_buf *out, struct rtmd_str app, char log, uint64_t seq,
                       struct rtmd_str json, struct rtmd_str session);

#endif
