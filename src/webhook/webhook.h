/*
 * webhook.h — delivery of presence events to [webhook:NAME] receivers
 * (docs/WEBHOOKS.md).
 *
 * The store writes every event some webhook wants into a durable outbox in
 * the commit of the event itself (store.h, outbox_*). This module reads each
 * webhook's next rows, keeps those its `events` and `apps` select, POSTs
 * them as one signed batch with libcurl (its multi-socket API driven by
 * this loop: no thread, no blocking call), and on a 2xx moves the webhook's
 * durable position past them. A failed batch is POSTed again, unchanged,
 * after a jittered exponential backoff, until retry_s after its first try;
 * then it is dropped (counted as failed) and the position moves on. One
 * batch per webhook is in flight at a time, so each webhook receives the
 * outbox — every app's events — in commit order.
 *
 * Loop thread only. main owns the context.
 */
#ifndef RTMD_WEBHOOK_WEBHOOK_H
#define RTMD_WEBHOOK_WEBHOOK_H

#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "store/store.h"

struct rtmd_webhooks;

/* Starts delivery for cfg's webhooks (none: a context that does nothing
 * until a reload adds one). cfg is the running config (it must outlive the
 * context); store must have an outbox when cfg has webhooks. 0 or a
 * negative error (libcurl failed to start). */
int rtmd_webhooks_start(struct rtmd_webhooks **out, const struct rtmd_config *cfg,
                        struct rtmd_store *store, uv_loop_t *loop);
/* After rtmd_config_merge(): webhooks added start, removed ones stop (a
 * POST in flight is abandoned: its batch is delivered again should the
 * webhook come back), changed ones take their new settings from their next
 * POST on. */
void rtmd_webhooks_reload(struct rtmd_webhooks *w);
/* Stops: transfers in flight are abandoned (their batches are POSTed again
 * at the next start), handles closed; cb runs once everything is freed.
 * Call before closing the store. */
void rtmd_webhooks_stop(struct rtmd_webhooks *w, void (*cb)(void *arg), void *arg);
/* Appends the Prometheus lines of /metrics: per webhook pending, delivered,
 * failed, oldest pending age. */
int rtmd_webhooks_write_metrics(const struct rtmd_webhooks *w, struct rtmd_buf *out);

#endif
