/*
 * reload.h — SIGHUP: the config file read again and applied to the running
 * server without dropping a connection.
 *
 * The file the process started with is loaded beside the running config
 * (rtmd_config_load has no side effects); a file that does not load is
 * logged with its FILE:LINE message and nothing changes. So is a TLS
 * certificate or key that does not load: with tls on, the certificate
 * files are read again on every reload (a certificate renewed in place
 * needs no restart), and new handshakes use them while connections already
 * made keep theirs. Then the new config is merged into the running one
 * (rtmd_config_merge: keys that need a restart are logged and keep their
 * running values), apps it adds are set up in the store and presence, and
 * every session of an app it removes ends (Leave and Logout recorded; the
 * client gets {"op":"kicked","reason":"app_removed"} and close 1008).
 */
#ifndef RTMD_SERVER_RELOAD_H
#define RTMD_SERVER_RELOAD_H

#include "core/config.h"
#include "gateway/gateway.h"
#include "net/conn.h"
#include "store/store.h"
#include "webhook/webhook.h"

/* What a reload touches; main owns all of it. */
struct rtmd_reload {
    struct rtmd_config *cfg; /* the running config */
    struct rtmd_server *server;
    struct rtmd_store *store;
    struct rtmd_gateway *gateway;
    struct rtmd_webhooks *webhooks; /* NULL: none running */
};

/* Reloads (loop thread). 0, or -1 when the file (or a certificate) did
 * not load and nothing changed. */
int rtmd_reload(struct rtmd_reload *r);

#endif
