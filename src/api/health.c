/*
 * health.c — GET /healthz, GET /readyz and GET /metrics (Prometheus text
 * format).
 */
#include <openssl/crypto.h>
#include <stdio.h>

#include "api/internal.h"
#include "core/loop.h"
#include "gateway/gateway.h"
#include "presence/presence.h"
#include "webhook/webhook.h"

/* 200 while the store writes; 503 from a failed write (a full disk) until
 * one succeeds again, or, with the redis backend, while Redis cannot serve
 * every slot (a master unreachable, slots unassigned), naming the cause and
 * the records it owes. */
/* Answers 503 and returns true when the store cannot write. */
static bool store_unavailable(struct rtmd_api *api, struct rtmd_http_request *req)
{
    struct rtmd_store_stats st;
    memset(&st, 0, sizeof(st));
    rtmd_store_stats(api->store, &st);
    if (st.write_error) {
        char msg[192];
        if (st.redis_mode == 2)
            snprintf(msg, sizeof(msg),
                     "Redis Cluster cannot serve every slot (%u of %u masters reachable); %llu "
                     "Leave/Logout records owed",
                     st.redis_masters_up, st.redis_masters, (unsigned long long)st.owed_records);
        else
            snprintf(msg, sizeof(msg),
                     "the store cannot write (%s); %llu Leave/Logout records owed",
                     st.write_error == -ENOSPC ? "disk full" : rtmd_strerror(st.write_error),
                     (unsigned long long)st.owed_records);
        api_respond_req_error(api, req, 503, "unavailable", msg);
        return true;
    }
    return false;
}

static void respond_status(struct rtmd_api *api, struct rtmd_http_request *req, const char *status)
{
    struct rtmd_buf *b = api_body_buf(api);
    rtmd_buf_printf(b, "{\"request_id\":\"%s\",\"result\":\"success\",\"status\":\"%s\"}",
                    req->request_id, status);
    api_count_status(api, 200);
    rtmd_http_respond_json(req, 200, rtmd_str_make(b->data, b->len));
}

void api_healthz(struct rtmd_api *api, struct rtmd_http_request *req)
{
    if (!store_unavailable(api, req))
        respond_status(api, req, "ok");
}

/* /healthz's answer, and 503 once the server stopped accepting (a drain or
 * a shutdown), so a load balancer takes the node out before it goes. */
void api_readyz(struct rtmd_api *api, struct rtmd_http_request *req)
{
    if (api->server->stopping) {
        api_respond_req_error(api, req, 503, "unavailable",
                              "shutting down: this node accepts no new connections");
        return;
    }
    if (!store_unavailable(api, req))
        respond_status(api, req, "ready");
}

static const char *const log_names[RTMD_EVLOG_KINDS] = {"user", "channel"};

static void write_histograms(struct rtmd_buf *b, const struct rtmd_api *api,
                             const struct rtmd_store_stats *st)
{
    rtmd_metric_head(b, "rtmd_http_request_duration_seconds", "histogram",
                     "REST requests from complete request to answer written, by route.");
    for (size_t i = 0; i < RTMD_API_ROUTES; i++) {
        char labels[128];
        snprintf(labels, sizeof(labels), "route=\"%s\"", api_route_labels[i]);
        rtmd_histogram_write(b, "rtmd_http_request_duration_seconds", labels, &api->latency[i]);
    }
    rtmd_metric_head(b, "rtmd_store_commit_duration_seconds", "histogram",
                     "Store commits: the embedded store's transactions (BEGIN to COMMIT, fsync "
                     "included), the redis backend's presence scripts (sent to answered).");
    rtmd_histogram_write(b, "rtmd_store_commit_duration_seconds", NULL, &st->commit_duration);
    rtmd_metric_head(b, "rtmd_push_duration_seconds", "histogram",
                     "Pushes to this node's clients, from the message reaching delivery to its "
                     "frame queued on the receiver's connection (written before the loop sleeps).");
    rtmd_histogram_write(b, "rtmd_push_duration_seconds", NULL, &api->gateway->push_duration);
}

void api_metrics(struct rtmd_api *api, struct rtmd_http_request *req)
{
    struct rtmd_buf *b = api_body_buf(api);
    struct rtmd_store_stats st;
    memset(&st, 0, sizeof(st));
    rtmd_store_stats(api->store, &st);
    const struct rtmd_server *s = api->server;

    rtmd_buf_printf(b,
                    "# HELP rtmd_connections Open client connections.\n"
                    "# TYPE rtmd_connections gauge\nrtmd_connections %zu\n",
                    s->n_conns);
    rtmd_buf_printf(b,
                    "# HELP rtmd_connections_accepted_total Connections accepted (those over "
                    "max_connections included).\n"
                    "# TYPE rtmd_connections_accepted_total counter\n"
                    "rtmd_connections_accepted_total %llu\n"
                    "# HELP rtmd_connections_rejected_total Connections over max_connections "
                    "(or arriving during shutdown).\n"
                    "# TYPE rtmd_connections_rejected_total counter\n"
                    "rtmd_connections_rejected_total %llu\n"
                    "# HELP rtmd_connections_rejected_answered_total Connections over "
                    "max_connections answered 503 (the others were closed at once).\n"
                    "# TYPE rtmd_connections_rejected_answered_total counter\n"
                    "rtmd_connections_rejected_answered_total %llu\n",
                    (unsigned long long)s->accepted, (unsigned long long)s->rejected_full,
                    (unsigned long long)s->rejected_answered);
    rtmd_buf_printf(b,
                    "# HELP rtmd_sessions Logged-in sessions on this node.\n"
                    "# TYPE rtmd_sessions gauge\nrtmd_sessions %zu\n",
                    rtmd_presence_session_count());
    rtmd_buf_printf(b,
                    "# HELP rtmd_pushes_total Messages pushed to clients.\n"
                    "# TYPE rtmd_pushes_total counter\nrtmd_pushes_total %llu\n"
                    "# HELP rtmd_slow_consumers_closed_total Clients disconnected for not "
                    "reading (ws_output_budget).\n"
                    "# TYPE rtmd_slow_consumers_closed_total counter\n"
                    "rtmd_slow_consumers_closed_total %llu\n",
                    (unsigned long long)api->gateway->pushes,
                    (unsigned long long)api->gateway->cut_offs);
    rtmd_buf_printf(b, "# HELP rtmd_events_recorded_total Events recorded, by event log.\n"
                       "# TYPE rtmd_events_recorded_total counter\n");
    for (int k = 0; k < RTMD_EVLOG_KINDS; k++)
        rtmd_buf_printf(b, "rtmd_events_recorded_total{log=\"%s\"} %llu\n", log_names[k],
                        (unsigned long long)st.events_recorded[k]);
    rtmd_buf_printf(b, "# HELP rtmd_events_dropped_total Events overwritten before this region "
                       "read them.\n# TYPE rtmd_events_dropped_total counter\n");
    for (size_t r = 0; r < api->cfg->n_regions; r++)
        for (int k = 0; k < RTMD_EVLOG_KINDS; k++)
            rtmd_buf_printf(b, "rtmd_events_dropped_total{region=\"%s\",log=\"%s\"} %llu\n",
                            api->cfg->regions[r], log_names[k],
                            (unsigned long long)st.events_dropped[r][k]);
    rtmd_buf_printf(b,
                    "# HELP rtmd_store_commits_total Group commits: the embedded store's "
                    "transactions, the redis backend's presence scripts.\n"
                    "# TYPE rtmd_store_commits_total counter\nrtmd_store_commits_total %llu\n"
                    "# HELP rtmd_store_commit_ops_total Operations (events, read positions, "
                    "messages) in those commits.\n"
                    "# TYPE rtmd_store_commit_ops_total counter\n"
                    "rtmd_store_commit_ops_total %llu\n",
                    (unsigned long long)st.commits, (unsigned long long)st.commit_ops);
    rtmd_buf_printf(b,
                    "# HELP rtmd_store_unavailable 1 from a failed write (a full disk) until a "
                    "write succeeds.\n# TYPE rtmd_store_unavailable gauge\n"
                    "rtmd_store_unavailable %d\n"
                    "# HELP rtmd_store_owed_records Leaves and Logouts kept after a failed write, "
                    "retried until written.\n# TYPE rtmd_store_owed_records gauge\n"
                    "rtmd_store_owed_records %llu\n",
                    st.write_error != 0, (unsigned long long)st.owed_records);
    if (st.redis_mode)
        rtmd_buf_printf(
            b,
            "# HELP rtmd_redis_cluster 1 on a Redis Cluster, 0 on a single Redis instance.\n"
            "# TYPE rtmd_redis_cluster gauge\nrtmd_redis_cluster %d\n"
            "# HELP rtmd_redis_masters Redis masters (1 for a single instance).\n"
            "# TYPE rtmd_redis_masters gauge\nrtmd_redis_masters %u\n"
            "# HELP rtmd_redis_masters_up Redis masters whose connection is up.\n"
            "# TYPE rtmd_redis_masters_up gauge\nrtmd_redis_masters_up %u\n"
            "# HELP rtmd_redis_redirections_total MOVED and ASK redirections met.\n"
            "# TYPE rtmd_redis_redirections_total counter\nrtmd_redis_redirections_total %llu\n"
            "# HELP rtmd_redis_reconnects_total Redis connections that dropped while up.\n"
            "# TYPE rtmd_redis_reconnects_total counter\nrtmd_redis_reconnects_total %llu\n"
            "# HELP rtmd_redis_after_full_reads_total Lossless reads (after=) answered by the "
            "full pull script: the events were not in the session-id list as this rtmd writes "
            "them.\n# TYPE rtmd_redis_after_full_reads_total counter\n"
            "rtmd_redis_after_full_reads_total %llu\n",
            st.redis_mode == 2, st.redis_masters, st.redis_masters_up,
            (unsigned long long)st.redis_redirections, (unsigned long long)st.redis_reconnects,
            (unsigned long long)st.redis_after_full);
    rtmd_buf_printf(b, "# HELP rtmd_http_request_errors_total Requests refused by the HTTP layer "
                       "before routing: malformed (400), body too large (413), head too large "
                       "(431), out of memory (500), transfer coding not supported (501).\n"
                       "# TYPE rtmd_http_request_errors_total counter\n");
    for (size_t i = 0; i < RTMD_HTTP_ERROR_STATUSES; i++)
        rtmd_buf_printf(b, "rtmd_http_request_errors_total{status=\"%d\"} %llu\n",
                        rtmd_http_error_statuses[i], (unsigned long long)rtmd_http_errors(i));
    rtmd_buf_printf(b, "# HELP rtmd_http_responses_total Answers of the API, by status code.\n"
                       "# TYPE rtmd_http_responses_total counter\n");
    for (size_t i = 0; i < RTMD_API_COUNTED_CODES; i++)
        rtmd_buf_printf(b, "rtmd_http_responses_total{code=\"%d\"} %llu\n", api_counted_codes[i],
                        (unsigned long long)api->by_code[i]);
    rtmd_webhooks_write_metrics(api->webhooks, b);
    write_histograms(b, api, &st);
    rtmd_buf_printf(b,
                    "# HELP rtmd_build_info rtmd's version and the libraries it runs on.\n"
                    "# TYPE rtmd_build_info gauge\n"
                    "rtmd_build_info{version=\"%s\",libuv=\"%s\",openssl=\"%s\"} 1\n",
                    RTMD_VERSION, uv_version_string(), OpenSSL_version(OPENSSL_VERSION_STRING));
    rtmd_metrics_write_process(b);
    api_count_status(api, 200);
    rtmd_http_respond(req, 200, "text/plain; version=0.0.4", RTMD_STR_NULL,
                      rtmd_str_make(b->data, b->len));
}
