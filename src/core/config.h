/*
 * config.h — rtmd's configuration: one table of keys (config_table.c)
 * drives parsing, defaults, bounds, validation, the environment overrides,
 * docs/CONFIG.md, rtmd.conf(5) and the sample config. The
 * INI file is read by rtmd's own reader (config_read.c).
 *
 * Sections: [server], [store], [limits], [customer:<ID>] (repeatable),
 * [app:<APPID>] (repeatable). See docs/CONFIG.md for every key. Each key of
 * [server], [store] and [limits] may be overridden by an environment
 * variable RTMD_<SECTION>_<KEY> (RTMD_LIMITS_EVENTS_QPS=5).
 *
 * Ownership: rtmd_config_load() returns a new config the caller frees with
 * rtmd_config_free(). Loading has no side effect (no global state is read
 * but the environment, none is written), so a second config may be loaded
 * beside the running one. Everything inside is owned by the config; other
 * modules keep pointers into the running one for the process's life, so it
 * changes only through rtmd_config_merge() (a reload, on the loop thread),
 * which never frees an app.
 */
#ifndef RTMD_CORE_CONFIG_H
#define RTMD_CORE_CONFIG_H

#include <stdint.h>

#include "core/common.h"
#include "core/hashmap.h"
#include "core/log.h"

#define RTMD_REGION_MAX      32 /* bytes in a region name */
#define RTMD_REGIONS_MAX     16 /* distinct regions per node */
#define RTMD_LISTENERS_MAX   16
#define RTMD_CONFIG_FILE_MAX (1024 * 1024) /* bytes in a config file */
#define RTMD_CONFIG_LINE_MAX 4096          /* bytes in one line, without its newline */
#define RTMD_CONFIG_EXIT     2             /* exit status for a bad config */
#define RTMD_NODE_ID_MAX     33            /* bytes in a node id, with the NUL */
#define RTMD_NODE_ID_MAX_STR 32
#define RTMD_ORIGINS_MAX     64  /* origins in allowed_origins or cors_origins */
#define RTMD_ORIGIN_MAX      255 /* bytes in one origin */

struct rtmd_customer;

struct rtmd_app {
    char id[33];          /* 32 chars [0-9A-Za-z] + NUL */
    char certificate[33]; /* 32 hex chars + NUL, or "" */
    bool has_certificate;
    bool vendor_token_access; /* tokens accepted on event and history endpoints */
    uint32_t index;           /* 0..n_apps-1; indexes per-app runtime arrays */
    bool retired;             /* a reload removed it: not found by id any more; its index stays */
    /* Customers that own this app (Basic auth grants access). */
    struct rtmd_customer **owners;
    size_t n_owners;
};

struct rtmd_customer {
    char *id;
    char *secret;
    struct rtmd_app **apps;
    size_t n_apps;
};

/* What a webhook receives (rtmd_webhook_config.events). */
#define RTMD_WEBHOOK_USER     1u /* Login, Logout */
#define RTMD_WEBHOOK_CHANNEL  2u /* Join, Leave */
#define RTMD_WEBHOOK_MESSAGE  4u /* PeerMessage, ChannelMessage (messages sent) */
#define RTMD_WEBHOOK_NAME_MAX 64

/* One [webhook:NAME] section (docs/WEBHOOKS.md). */
struct rtmd_webhook_config {
    char *name;
    char *url; /* http:// or https:// */
    char *secret;
    uint32_t events; /* RTMD_WEBHOOK_* bits */
    char **apps;     /* App IDs; none: every app */
    size_t n_apps;
    uint32_t batch_max;  /* events per POST */
    uint32_t timeout_ms; /* one POST, connect included */
    uint32_t retry_s;    /* a batch not acknowledged this long after its first try is dropped */
    char *ca_file;       /* https: the CAs to verify the receiver against; NULL: the system's */
};

struct rtmd_listener_config {
    char host[64]; /* numeric IPv4 or IPv6 address (IPv6 without brackets) */
    uint16_t port; /* 0: any free port (the bound port goes to ready_file) */
    char region[RTMD_REGION_MAX];
    uint32_t region_index; /* index into rtmd_config.regions */
    bool tls;              /* serves TLS: its /tls or /plain, else [server] tls */
    bool tls_given;        /* /tls or /plain was written */
};

/* A list of origins (scheme://host[:port], scheme and host in lower case,
 * a default port left out) or `*`. */
struct rtmd_origins {
    char **items;
    size_t n;
    bool any; /* `*` was listed */
};

enum rtmd_store_backend { RTMD_STORE_EMBEDDED = 0, RTMD_STORE_REDIS = 1 };
enum rtmd_store_sync { RTMD_SYNC_FULL = 0, RTMD_SYNC_NORMAL = 1 };

struct rtmd_limits {
    uint32_t events_retain;            /* 2000 */
    uint32_t events_max_pull;          /* 1000 */
    uint32_t events_qps;               /* 10, per app, both event endpoints */
    uint32_t history_qps;              /* 100 */
    uint32_t send_qps;                 /* 500 */
    uint32_t presence_qps;             /* 100: members, count and status (REST) */
    uint32_t history_retention_s;      /* 604800 */
    uint32_t heartbeat_timeout_s;      /* 30 */
    uint32_t login_timeout_s;          /* 10: upgrade to login, frames do not extend it */
    uint32_t max_channels_per_user;    /* 20 */
    uint32_t max_payload;              /* 32768 */
    uint32_t http_max_head;            /* 16384: request line + headers, bytes */
    uint32_t http_max_headers;         /* 100 */
    uint32_t http_max_body;            /* 1048576 */
    uint32_t http_header_timeout_ms;   /* 10000: whole request head must arrive */
    uint32_t tls_handshake_timeout_ms; /* 60000: a TLS handshake must finish */
    uint32_t http_idle_timeout_s;      /* 60: keep-alive connection with no request */
    uint32_t ws_max_message;           /* 262144: frame/message bytes, else close 1009 */
    uint32_t ws_output_budget;         /* 1048576: unsent bytes before a slow reader is cut */
    uint32_t max_connections;          /* 19000 */
    uint32_t store_timeout_ms;         /* 5000: a store call older than this answers 408 */
    uint32_t offline_max_per_user;     /* 200 */
    uint32_t offline_retention_s;      /* 604800 */
    uint32_t history_handle_ttl_s;     /* 600 */
    uint32_t peer_ack_timeout_ms;      /* 10000 */
    uint32_t token_clock_skew_s;       /* 300: a token issued this far in the future is accepted */
    uint32_t member_events_max;        /* 512 */
};

struct rtmd_config {
    char *path; /* the file read, or "(defaults)" */

    /* [server] */
    struct rtmd_listener_config listeners[RTMD_LISTENERS_MAX];
    size_t n_listeners;
    char regions[RTMD_REGIONS_MAX][RTMD_REGION_MAX]; /* distinct names, in order of first use */
    size_t n_regions;
    bool tls;       /* the default of listeners without /tls or /plain */
    bool any_tls;   /* some listener serves TLS (a certificate is loaded) */
    char *tls_cert; /* NULL: self-signed pair in data_dir */
    char *tls_key;
    uint32_t tls_ticket_rotate_s; /* ticket key period; 0: no session tickets */
    char *data_dir;
    char *node_name;  /* [server] node_id as given, or NULL (see rtmd_config_node) */
    uint32_t node_id; /* the <node> in request IDs, from node_name (1 without one) */
    bool reuse_port;  /* SO_REUSEPORT on the listeners (redis backend only) */
    char *ready_file; /* NULL, or a file written with the bound addresses once serving */
    uint32_t drain_s; /* SIGTERM: seconds clients get to close after close 1001 */
    enum rtmd_log_level log_level;
    char *admin_listen;                  /* as written, or NULL */
    bool admin_enabled;                  /* admin_listen names an address (not off) */
    struct rtmd_listener_config admin;   /* /metrics, /healthz, /readyz: plain HTTP, no auth */
    struct rtmd_origins allowed_origins; /* WebSocket upgrades: default any */
    struct rtmd_origins cors_origins;    /* REST CORS: default none */
    enum rtmd_log_format log_format;
    char *log_file; /* NULL: stderr */

    /* [store] */
    enum rtmd_store_backend backend;
    char *redis_url;           /* comma-separated seeds (core/redis_url.h) */
    uint32_t redis_timeout_ms; /* a Redis call not answered by then fails */
    uint32_t node_timeout_s;   /* a node whose heartbeat is older is dead */
    enum rtmd_store_sync sync; /* embedded: full = fsync every group commit */

    /* [limits] */
    struct rtmd_limits limits;

    /* [customer:ID] and [app:ID] */
    struct rtmd_app **apps;
    size_t n_apps;
    struct rtmd_hashmap apps_by_id;
    struct rtmd_customer **customers;
    size_t n_customers;
    struct rtmd_hashmap customers_by_id;
    /* [webhook:NAME], in file order */
    struct rtmd_webhook_config **webhooks;
    size_t n_webhooks;

    /* RTMD_<SECTION>_<KEY> variables that replaced the file's value, in the
     * table's order (names only: a value may hold a password). */
    char **overrides;
    size_t n_overrides;
};

/*
 * Reads and validates FILE, then the process's RTMD_<SECTION>_<KEY>
 * environment variables. On error returns NULL and writes one message into
 * err (errlen bytes): "FILE:LINE: KEY: what is wrong", "FILE: cannot read:
 * ..." or "environment VAR: KEY: what is wrong"; the caller prints it and
 * exits with status RTMD_CONFIG_EXIT (or, on a reload, keeps its config).
 */
struct rtmd_config *rtmd_config_load(const char *path, char *err, size_t errlen);
/* The same with the environment env ("NAME=value" strings ending with a
 * NULL; NULL: none) instead of the process's. */
struct rtmd_config *rtmd_config_load_file(const char *path, char *const *env, char *err,
                                          size_t errlen);
/* From len bytes of text (NUL bytes included, and refused); name is used
 * in messages. */
struct rtmd_config *rtmd_config_load_text(const char *name, const char *text, size_t len,
                                          char *const *env, char *err, size_t errlen);
/* From a string, without environment (tests, fuzzing, the sample check). */
struct rtmd_config *rtmd_config_load_string(const char *name, const char *text, char *err,
                                            size_t errlen);
void rtmd_config_free(struct rtmd_config *cfg);
/* Frees n webhooks and the array. */
void rtmd_config_webhooks_free(struct rtmd_webhook_config **hooks, size_t n);

/* The <node> of request IDs for a node_id (NULL: 1): the number itself when
 * it is 1..999999, else a number 1..999999 made from the name. */
uint32_t rtmd_config_node_number(const char *name);

/*
 * Reload (SIGHUP). The running config is never replaced: fresh, a config
 * just loaded from the same file, is merged into it in place, on the loop
 * thread, between callbacks, so every pointer into it stays valid:
 *  - [server]/[store]/[limits] keys that can change live (log_level,
 *    drain_s, tls_cert, tls_key, and the limits not named below) take the
 *    new values; any other key that changed keeps its running value and is
 *    named in restart_keys ("listen, data_dir");
 *  - an app in both keeps its object and index and takes the new
 *    certificate, vendor_token_access and owners;
 *  - an app only in fresh is moved over with the next index (added); an
 *    app removed earlier comes back with its old object (readded);
 *  - an app only in live is retired: no lookup finds it any more, its
 *    object stays until exit (removed);
 *  - customers are replaced by fresh's (nothing keeps a customer pointer
 *    past a request's synchronous authentication);
 *  - webhooks are replaced by fresh's (the webhook module is told at once,
 *    rtmd_webhooks_reload(), and keeps no pointer into the old ones).
 * fresh is freed. out's arrays are the caller's (rtmd_config_changes_free).
 */
struct rtmd_config_changes {
    struct rtmd_app **added, **removed;
    size_t n_added, n_removed, n_readded;
    size_t n_apps_changed; /* certificate, vendor_token_access or owners */
    char restart_keys[512];
};
void rtmd_config_merge(struct rtmd_config *live, struct rtmd_config *fresh,
                       struct rtmd_config_changes *out);
void rtmd_config_changes_free(struct rtmd_config_changes *c);
/* Retires app now (an app a reload added that the store could not set up). */
void rtmd_config_retire_app(struct rtmd_config *cfg, struct rtmd_app *app);

struct rtmd_app *rtmd_config_app(const struct rtmd_config *cfg, struct rtmd_str id);
struct rtmd_customer *rtmd_config_customer(const struct rtmd_config *cfg, struct rtmd_str id);
/* Index of a region name, or -1. */
int rtmd_config_region(const struct rtmd_config *cfg, const char *name);
/* The listed origin that equals origin (an Origin header's value; compared
 * without regard to ASCII case), "*" when the list has `*`, or NULL. The
 * answer points into the list (never to the request's bytes). */
const char *rtmd_origins_match(const struct rtmd_origins *list, struct rtmd_str origin);

/* Writes docs/CONFIG.md's key reference (Markdown) from the table to out. */
struct rtmd_buf;
int rtmd_config_write_reference(struct rtmd_buf *out);
/* Writes the rtmd.conf(5) man page (man/rtmd.conf.5, roff) from the table. */
int rtmd_config_write_man(struct rtmd_buf *out);
/* Writes a complete, commented sample config to out; the first-run config. */
int rtmd_config_write_sample(struct rtmd_buf *out, const char *listen, const char *data_dir,
                             const char *customer_id, const char *customer_secret,
                             const char *app_id, const char *app_certificate);

#endif
