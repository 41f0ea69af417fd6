/*
 * main.c — rtmd's entry point: arguments, start-up in dependency order, the
 * loop, and shutdown on SIGTERM/SIGINT.
 *
 * Start: config → loop services → TLS context → store (which ends sessions a
 * crashed run left behind) → presence/gateway → WebSocket → API → listeners
 * → webhooks → ready file → loop.
 * SIGHUP: server/reload.c.
 * Shutdown (SIGTERM/SIGINT): stop accepting → drain (close 1001 to every
 * client, REST answers finish; up to drain_s) → close every connection left
 * (each session ends with Leave/Logout) → stop the webhooks (a POST in flight
 * is abandoned) → close the store (everything submitted is committed) → close the loop's handles →
 * exit 0.
 */
#include <getopt.h>
#include <malloc.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "cli/backup_cmd.h"
#include "cli/firstrun.h"
#include "cli/token_cmd.h"
#include "core/config.h"
#include "core/hashmap.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/reqid.h"
#include "gateway/gateway.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/tls.h"
#include "net/ws.h"
#include "server/reload.h"
#include "store/store.h"
#include "webhook/webhook.h"

static struct rtmd_server server_;
static struct rtmd_store *store_;
static struct rtmd_messaging messaging_;
static struct rtmd_gateway gateway_;
static struct rtmd_api api_;
static struct rtmd_webhooks *webhooks_;
static uv_signal_t sigterm_, sigint_;
static uv_signal_t sighup_;
static struct rtmd_reload reload_;
static uv_signal_t sigusr1_; /* reopens log_file */
/* Signals that must never kill rtmd: logged and ignored. SIGHUP (sent by
 * `systemctl reload` and logrotate) reloads; SIGUSR1 reopens the log file;
 * both are ignored too until the loop runs and while rtmd stops. */
static const int ignored_signals_[] = {SIGUSR1, SIGUSR2};
static uv_signal_t ignored_[RTMD_ARRAY_SIZE(ignored_signals_)];
static bool shutting_down_;
static bool draining_;
static uv_timer_t drain_timer_;
static uint64_t drain_deadline_; /* rtmd_mono_ms() */

static void usage(FILE *f)
{
    fprintf(f, "usage: rtmd [--config FILE]\n"
               "       rtmd --check-config FILE\n"
               "       rtmd token --appid A --certificate C --uid U [--expire S] [--v 006|007]\n"
               "       rtmd token --config FILE --app A --uid U [--expire S] [--v 006|007]\n"
               "       rtmd --help | --version\n"
               "       rtmd backup [--config FILE | --data-dir DIR] OUT\n"
               "\n"
               "With no arguments rtmd uses ./rtmd-data/rtmd.conf, creating it (with a demo\n"
               "app, a demo customer and a self-signed certificate) on the first run.\n"
               "Configuration keys: rtmd.conf(5), docs/CONFIG.md; RTMD_<SECTION>_<KEY>\n"
               "environment variables override [server], [store] and [limits] keys.\n"
               "A bad config exits with status 2; --check-config only reads it (and the\n"
               "environment) and prints \"FILE: ok\" or the same error.\n");
}

/* rtmd --check-config FILE: reads the file and the environment as a start
 * does; creates, binds and opens nothing else. */
static int check_config(const char *path)
{
    char err[1024];
    struct rtmd_config *cfg = rtmd_config_load(path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return RTMD_CONFIG_EXIT;
    }
    printf("%s: ok", path);
    for (size_t i = 0; i < cfg->n_overrides; i++)
        printf("%s%s", i ? ", " : " (from the environment: ", cfg->overrides[i]);
    printf("%s\n", cfg->n_overrides ? ")" : "");
    rtmd_config_free(cfg);
    return fflush(stdout) == 0 ? 0 : 1;
}

static void ignore_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(ignored_signals_); i++)
        sigaction(ignored_signals_[i], &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static void on_ignored_signal(uv_signal_t *h, int signum)
{
    (void)h;
    rtmd_log_info("main", "signal %d (%s) ignored", signum, strsignal(signum));
}

/* SIGUSR1: log_file is opened again (after logrotate moved it). */
static void on_reopen_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (rtmd_log_reopen() == 0)
        rtmd_log_info("main", "signal %d (%s): log file reopened", signum, strsignal(signum));
}

static void on_store_closed(void *arg, int status)
{
    (void)arg;
    if (status < 0)
        rtmd_log_error("main", "closing the store: %s", rtmd_strerror(status));
    uv_close((uv_handle_t *)&sigterm_, NULL);
    uv_close((uv_handle_t *)&sigint_, NULL);
    uv_close((uv_handle_t *)&drain_timer_, NULL);
    if (uv_is_active((uv_handle_t *)&sighup_))
        uv_close((uv_handle_t *)&sighup_, NULL); /* not made when the start failed */
    if (uv_is_active((uv_handle_t *)&sigusr1_))
        uv_close((uv_handle_t *)&sigusr1_, NULL);
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(ignored_); i++)
        if (uv_is_active((uv_handle_t *)&ignored_[i]))
            uv_close((uv_handle_t *)&ignored_[i], NULL);
    ignore_signals(); /* libuv put back the default action */
    rtmd_ws_shutdown();
    rtmd_loop_close();
}

/* The TLS ticket keys through the store (tls.h's rtmd_tls_ticket_fetch_fn). */
static int fetch_ticket_key(void *ctx, uint64_t epoch, uint32_t period_s, const uint8_t *proposal,
                            size_t len, rtmd_tls_ticket_key_cb cb, void *arg)
{
    return rtmd_store_ticket_key(ctx, epoch, period_s, proposal, len, cb, arg);
}

static void on_webhooks_stopped(void *arg)
{
    (void)arg;
    webhooks_ = NULL;
    api_.webhooks = NULL;
    reload_.webhooks = NULL;
    rtmd_store_close(store_, on_store_closed, NULL);
}

static void shutdown_server(void)
{
    if (shutting_down_)
        return;
    shutting_down_ = true;
    rtmd_tls_tickets_stop();
    uv_timer_stop(&drain_timer_);
    rtmd_log_info("main", "shutting down: ending %zu connections", server_.n_conns);
    rtmd_server_stop_listening(&server_);
    rtmd_gateway_stop(&gateway_);
    rtmd_server_close_all(&server_);
    if (webhooks_) /* the store closes once no webhook call is in flight */
        rtmd_webhooks_stop(webhooks_, on_webhooks_stopped, NULL);
    else
        rtmd_store_close(store_, on_store_closed, NULL);
}

static void on_sighup(uv_signal_t *h, int signum)
{
    (void)h;
    if (draining_ || shutting_down_) {
        rtmd_log_info("main", "signal %d (%s) ignored: shutting down", signum, strsignal(signum));
        return;
    }
    rtmd_log_info("main", "signal %d (%s): reloading %s", signum, strsignal(signum),
                  reload_.cfg->path);
    rtmd_reload(&reload_);
}

static void on_drain_tick(uv_timer_t *t)
{
    (void)t;
    if (server_.n_conns == 0) {
        shutdown_server();
    } else if (rtmd_mono_ms() >= drain_deadline_) {
        rtmd_log_info("main", "drain_s passed: cutting %zu connections", server_.n_conns);
        shutdown_server();
    }
}

/* SIGTERM and SIGINT drain: no new connections; idle HTTP connections
 * close, REST requests in flight are answered (then their connection
 * closes), every WebSocket client gets close 1001 once its op in flight is
 * answered (its session ends: Leave and Logout recorded). Once every
 * connection is gone, or drain_s passed, the rest are cut and rtmd stops.
 * A second signal ends the drain at once. */
static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (shutting_down_)
        return;
    if (draining_) {
        rtmd_log_info("main", "signal %d (%s) again: ending the drain now", signum,
                      strsignal(signum));
        shutdown_server();
        return;
    }
    draining_ = true;
    rtmd_log_info("main", "signal %d (%s): draining %zu connections (up to %u s)", signum,
                  strsignal(signum), server_.n_conns, server_.cfg->drain_s);
    rtmd_server_stop_listening(&server_);
    rtmd_server_go_away(&server_);
    drain_deadline_ = rtmd_mono_ms() + (uint64_t)server_.cfg->drain_s * 1000;
    if (server_.n_conns == 0)
        shutdown_server();
    else /* the first check after the close frames were written */
        uv_timer_start(&drain_timer_, on_drain_tick, 50, 50);
}

static int write_ready_file(const struct rtmd_config *cfg)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", cfg->ready_file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "pid %ld\n", (long)getpid());
    /* "listen REGION HOST:PORT tls|plain" per listener, "admin HOST:PORT". */
    for (size_t i = 0; i < server_.n_listeners; i++)
        fprintf(f, "listen %s %s %s\n", server_.listeners[i].cfg->region,
                server_.listeners[i].bound, server_.listeners[i].tls ? "tls" : "plain");
    if (server_.has_admin)
        fprintf(f, "admin %s\n", server_.admin.bound);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, cfg->ready_file);
}

/* Raises the open-file limit to the hard limit, and warns when
 * max_connections cannot fit: connections past the limit would be accepted
 * and dropped by libuv without rtmd seeing them. */
static void raise_fd_limit(const struct rtmd_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && cfg->limits.max_connections + 64 > rl.rlim_cur)
        rtmd_log_warn("main",
                      "max_connections = %u, but the open-file limit is %llu: keep it at most "
                      "%llu (connections past the limit are dropped unseen)",
                      cfg->limits.max_connections, (unsigned long long)rl.rlim_cur,
                      rl.rlim_cur > 64 ? (unsigned long long)rl.rlim_cur - 64 : 0ULL);
}

int main(int argc, char **argv)
{
    rtmd_metrics_start();
    ignore_signals(); /* from the start; the loop logs them once it runs */
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return rtmd_cli_token(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "backup") == 0)
        return rtmd_cli_backup(argc - 1, argv + 1);

    /* glibc gives freed heap back to the kernel (and maps big blocks anew)
     * all the time under rtmd's pattern of large short-lived answers; the
     * page faults cost about 30% of a 1000-event pull (docs/BENCHMARKS.md).
     * Keep up to 64 MiB of freed heap and serve blocks below 4 MiB from it. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);

    static const struct option long_opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *check_path = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:hV", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'k': check_path = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("rtmd %s\n", RTMD_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rtmd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (check_path && config_path) {
        fprintf(stderr, "rtmd: --check-config FILE takes the file itself, without --config\n");
        usage(stderr);
        return 2;
    }
    if (check_path)
        return check_config(check_path);

    /* Seed the table hash before anything builds a table (the config does). */
    uint64_t seeds[3];
    if (RAND_bytes((unsigned char *)seeds, sizeof(seeds)) != 1) {
        fprintf(stderr, "rtmd: no randomness\n");
        return 1;
    }
    rtmd_hash_seed(seeds[0], seeds[1]);

    char err[1024];
    int r;
    bool first_run = false, default_config = !config_path;
    if (default_config) {
        if (rtmd_firstrun_prepare(&first_run, err, sizeof(err)) < 0) {
            fprintf(stderr, "rtmd: %s\n", err);
            return 1;
        }
        config_path = RTMD_DEFAULT_CONFIG;
    }
    struct rtmd_config *cfg = rtmd_config_load(config_path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return RTMD_CONFIG_EXIT;
    }
    rtmd_log_level = cfg->log_level;
    rtmd_log_format = cfg->log_format;
    if ((r = rtmd_log_open(cfg->log_file)) < 0) {
        fprintf(stderr, "rtmd: log_file %s: %s\n", cfg->log_file, strerror(-r));
        rtmd_config_free(cfg);
        return 1;
    }
    for (size_t i = 0; i < cfg->n_overrides; i++)
        rtmd_log_info("main", "%s overrides the config file", cfg->overrides[i]);

    rtmd_request_id_init(cfg->node_id, seeds[2] >> 1);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(cfg);

    uv_loop_t *loop = uv_default_loop();
    rtmd_loop_init(loop);
    int rc = 1;
    SSL_CTX *ssl_ctx = NULL;
    r = rtmd_mkdirs(cfg->data_dir);
    if (r < 0) {
        rtmd_log_error("main", "%s: cannot create: %s", cfg->data_dir, strerror(-r));
        goto out;
    }
    rtmd_tls_tickets_init(cfg->tls_ticket_rotate_s);
    if (cfg->any_tls && !(ssl_ctx = rtmd_tls_ctx_from_config(cfg)))
        goto out;
    /* The store before the server: its before-sleep hook may answer pulls,
     * and the server's, added after it, writes those answers. */
    r = rtmd_store_open(&store_, cfg, loop);
    if (r < 0) {
        rtmd_log_error("main", "cannot open the %s store: %s",
                       cfg->backend == RTMD_STORE_REDIS ? "redis" : "embedded", rtmd_strerror(r));
        goto out;
    }
    if (cfg->any_tls) /* nodes of a shared store share the ticket keys */
        rtmd_tls_tickets_start(loop, store_->type->ticket_key ? fetch_ticket_key : NULL, store_);
    rtmd_messaging_init(&messaging_, cfg, store_);
    rtmd_gateway_init(&gateway_, cfg, store_, &messaging_);
    rtmd_ws_init(cfg, &gateway_.ws_handler);
    rtmd_api_init(&api_, cfg, store_, &server_, &messaging_, &gateway_);
    if (rtmd_server_start(&server_, cfg, ssl_ctx, rtmd_api_handle, &api_, err, sizeof(err)) < 0) {
        rtmd_log_error("main", "%s", err);
        rtmd_tls_tickets_stop();
        rtmd_store_close(store_, on_store_closed, NULL);
        uv_signal_init(loop, &sigterm_);
        uv_signal_init(loop, &sigint_);
        uv_timer_init(loop, &drain_timer_);
        uv_run(loop, UV_RUN_DEFAULT);
        goto out;
    }
    uv_timer_init(loop, &drain_timer_);
    uv_signal_init(loop, &sigterm_);
    uv_signal_start(&sigterm_, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint_);
    uv_signal_start(&sigint_, on_signal, SIGINT);
    uv_signal_init(loop, &sigusr1_);
    uv_signal_start(&sigusr1_, on_reopen_signal, SIGUSR1);
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(ignored_); i++) {
        if (ignored_signals_[i] == SIGUSR1)
            continue; /* sigusr1_'s */
        uv_signal_init(loop, &ignored_[i]);
        uv_signal_start(&ignored_[i], on_ignored_signal, ignored_signals_[i]);
    }
    r = rtmd_webhooks_start(&webhooks_, cfg, store_, loop);
    if (r < 0)
        rtmd_log_error("main", "webhooks cannot start: %s; events wait in the outbox",
                       rtmd_strerror(r));
    api_.webhooks = webhooks_;
    reload_ = (struct rtmd_reload){cfg, &server_, store_, &gateway_, webhooks_};
    uv_signal_init(loop, &sighup_);
    uv_signal_start(&sighup_, on_sighup, SIGHUP);
    if (cfg->ready_file && write_ready_file(cfg) < 0)
        rtmd_log_warn("main", "%s: cannot write the ready file", cfg->ready_file);
    for (size_t i = 0; i < server_.n_listeners; i++)
        rtmd_log_info("main", "listening on %s (region %s, %s)", server_.listeners[i].bound,
                      server_.listeners[i].cfg->region, server_.listeners[i].tls ? "TLS" : "plain");
    if (server_.has_admin)
        rtmd_log_info("main", "admin endpoints (/metrics, /healthz, /readyz) on %s, plain HTTP",
                      server_.admin.bound);
    if (default_config && server_.n_listeners)
        rtmd_firstrun_banner(cfg, server_.listeners[0].bound, server_.listeners[0].tls, first_run);

    uv_run(loop, UV_RUN_DEFAULT);
    rtmd_log_info("main", "stopped");
    rc = 0;
out:
    rtmd_api_shutdown(&api_);
    rtmd_gateway_shutdown(&gateway_);
    rtmd_messaging_shutdown(&messaging_);
    rtmd_http_shutdown();
    uv_loop_close(loop);
    if (server_.ssl_ctx) /* a reload may have replaced (and freed) ssl_ctx */
        SSL_CTX_free(server_.ssl_ctx);
    else if (ssl_ctx)
        SSL_CTX_free(ssl_ctx);
    rtmd_config_free(cfg);
    rtmd_log_close();
    return rc;
}
