/*
 * reload.c — SIGHUP (see reload.h).
 */
#include "server/reload.h"

#include <string.h>

#include "core/log.h"
#include "net/tls.h"
#include "presence/presence.h"

#define MODULE "reload"

/* The new TLS context, from fresh's certificate paths (data_dir, which
 * needs a restart, stays the running one). NULL when the files do not load
 * (logged). */
static SSL_CTX *load_tls(const struct rtmd_config *live, const struct rtmd_config *fresh)
{
    struct rtmd_config view = *fresh; /* a shallow copy, read only */
    view.data_dir = live->data_dir;
    return rtmd_tls_ctx_from_config(&view);
}

static void set_up_added(struct rtmd_reload *r, const struct rtmd_config_changes *ch)
{
    for (size_t i = 0; i < ch->n_added; i++) {
        struct rtmd_app *app = ch->added[i];
        /* Presence and the store keep a slot for every index, in order. */
        rtmd_presence_add_app(app);
        int rc = rtmd_store_add_app(r->store, app);
        if (rc < 0) {
            rtmd_log_error(MODULE,
                           "app %s: the store cannot serve it (%s); it stays out until "
                           "a restart",
                           app->id, rtmd_strerror(rc));
            rtmd_config_retire_app(r->cfg, app);
        } else {
            rtmd_log_info(MODULE, "app %s added", app->id);
        }
    }
}

int rtmd_reload(struct rtmd_reload *r)
{
    char err[1024];
    struct rtmd_config *fresh = rtmd_config_load(r->cfg->path, err, sizeof(err));
    if (!fresh) {
        rtmd_log_error(MODULE, "%s; the running configuration is kept", err);
        return -1;
    }
    SSL_CTX *ssl_ctx = NULL;
    if (r->cfg->tls && !(ssl_ctx = load_tls(r->cfg, fresh))) {
        rtmd_log_error(MODULE,
                       "%s: the TLS certificate or key does not load; the running "
                       "configuration is kept",
                       r->cfg->path);
        rtmd_config_free(fresh);
        return -1;
    }
    struct rtmd_config_changes ch;
    rtmd_config_merge(r->cfg, fresh, &ch); /* frees fresh */
    if (ssl_ctx)
        rtmd_server_set_tls(r->server, ssl_ctx);
    rtmd_log_level = r->cfg->log_level;
    rtmd_log_format = r->cfg->log_format;
    /* Opened again even when unchanged, as SIGUSR1 does; on failure the log
     * stays where it was (rtmd_log_open says so there). */
    int lr = rtmd_log_open(r->cfg->log_file);
    if (lr < 0)
        rtmd_log_error(MODULE, "log_file %s: %s; logging goes on where it was",
                       r->cfg->log_file ? r->cfg->log_file : "(stderr)", strerror(-lr));
    if (ch.restart_keys[0])
        rtmd_log_warn(MODULE, "%s: changed, but needs a restart (the running values stay): %s",
                      r->cfg->path, ch.restart_keys);
    set_up_added(r, &ch);
    if (r->webhooks)
        rtmd_webhooks_reload(r->webhooks);
    size_t ended = 0;
    for (size_t i = 0; i < ch.n_removed; i++) {
        size_t n = rtmd_gateway_end_app(r->gateway, ch.removed[i]);
        rtmd_log_info(MODULE, "app %s removed: %zu sessions on this node ended", ch.removed[i]->id,
                      n);
        ended += n;
    }
    rtmd_log_info(MODULE,
                  "reloaded %s: %zu apps added, %zu back, %zu removed (%zu sessions ended), %zu "
                  "changed; %zu customers%s",
                  r->cfg->path, ch.n_added, ch.n_readded, ch.n_removed, ended, ch.n_apps_changed,
                  r->cfg->n_customers, ssl_ctx ? "; TLS certificate read again" : "");
    rtmd_config_changes_free(&ch);
    return 0;
}
