/*
 * config.h — rtmd's configuration: one table of keys drives parsing,
 * defaults, bounds, validation, docs/CONFIG.md and the sample config
 * (STYLE.md §11). The INI syntax is read by inih.
 *
 * Sections: [server], [store], [limits], [customer:<ID>] (repeatable),
 * [app:<APPID>] (repeatable). See docs/CONFIG.md for every key.
 *
 * Ownership: rtmd_config_load() returns a config the caller frees with
 * rtmd_config_free(). Everything inside is owned by the config and immutable
 * after loading; other modules keep pointers into it for the process's life.
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

struct rtmd_customer;

struct rtmd_app {
    char id[33];          /* 32 chars [0-9A-Za-z] + NUL */
    char certificate[33]; /* 32 hex chars + NUL, or "" */
    bool has_certificate;
    bool vendor_token_access; /* tokens accepted on event and history endpoints */
    uint32_t index;           /* 0..n_apps-1; indexes per-app runtime arrays */
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

struct rtmd_listener_config {
    char host[64]; /* numeric IPv4 or IPv6 address (IPv6 without brackets) */
    uint16_t port; /* 0: any free port (the bound port goes to ready_file) */
    char region[RTMD_REGION_MAX];
    uint32_t region_index; /* index into rtmd_config.regions */
};

enum rtmd_store_backend { RTMD_STORE_EMBEDDED = 0, RTMD_STORE_REDIS = 1 };
enum rtmd_store_sync { RTMD_SYNC_FULL = 0, RTMD_SYNC_NORMAL = 1 };

struct rtmd_limits {
    uint32_t events_retain;          /* 2000 */
    uint32_t events_max_pull;        /* 1000 */
    uint32_t events_qps;             /* 10, per app, both event endpoints */
    uint32_t history_qps;            /* 100 */
    uint32_t send_qps;               /* 500 */
    uint32_t history_retention_s;    /* 604800 */
    uint32_t heartbeat_timeout_s;    /* 30 */
    uint32_t login_timeout_s;        /* 10: upgrade to login, frames do not extend it */
    uint32_t max_channels_per_user;  /* 20 */
    uint32_t max_payload;            /* 32768 */
    uint32_t http_max_head;          /* 16384: request line + headers, bytes */
    uint32_t http_max_headers;       /* 100 */
    uint32_t http_max_body;          /* 1048576 */
    uint32_t http_header_timeout_ms; /* 10000: whole request head must arrive */
    uint32_t http_idle_timeout_s;    /* 60: keep-alive connection with no request */
    uint32_t ws_max_message;         /* 262144: frame/message bytes, else close 1009 */
    uint32_t ws_output_budget;       /* 1048576: unsent bytes before a slow reader is cut */
    uint32_t max_connections;        /* 19000 */
    uint32_t store_timeout_ms;       /* 5000: a store call older than this answers 408 */
    uint32_t offline_max_per_user;   /* 200 */
    uint32_t offline_retention_s;    /* 604800 */
    uint32_t history_handle_ttl_s;   /* 600 */
    uint32_t peer_ack_timeout_ms;    /* 10000 */
    uint32_t token_clock_skew_s;     /* 300: a token issued this far in the future is accepted */
    uint32_t member_events_max;      /* 512 */
};

struct rtmd_config {
    char *path; /* the file read, or "(defaults)" */

    /* [server] */
    struct rtmd_listener_config listeners[RTMD_LISTENERS_MAX];
    size_t n_listeners;
    char regions[RTMD_REGIONS_MAX][RTMD_REGION_MAX]; /* distinct names, in order of first use */
    size_t n_regions;
    bool tls;
    char *tls_cert; /* NULL: self-signed pair in data_dir */
    char *tls_key;
    char *data_dir;
    char *node_name;  /* [server] node_id as given, or NULL (see rtmd_config_node) */
    uint32_t node_id; /* the <node> in request IDs, from node_name (1 without one) */
    bool reuse_port;  /* SO_REUSEPORT on the listeners (redis backend only) */
    char *ready_file; /* NULL, or a file written with the bound addresses once serving */
    enum rtmd_log_level log_level;
    enum rtmd_log_format log_format;
    char *log_file; /* NULL: stderr */

    /* [store] */
    enum rtmd_store_backend backend;
    char *redis_url;              /* comma-separated seeds (core/redis_url.h) */
    uint32_t redis_timeout_ms;    /* a Redis call not answered by then fails */
    uint32_t node_timeout_s;      /* a node whose heartbeat is older is dead */
    enum rtmd_store_sync sync;    /* embedded: full = fsync every group commit */
    bool bench_pull_keeps_events; /* benchmarks only: pulls leave the read position */

    /* [limits] */
    struct rtmd_limits limits;

    /* [customer:ID] and [app:ID] */
    struct rtmd_app **apps;
    size_t n_apps;
    struct rtmd_hashmap apps_by_id;
    struct rtmd_customer **customers;
    size_t n_customers;
    struct rtmd_hashmap customers_by_id;
};

/*
 * Reads and validates FILE. On error returns NULL and writes one message
 * "FILE:LINE: KEY: what is wrong" into err (errlen bytes); the caller prints
 * it and exits with status 2.
 */
struct rtmd_config *rtmd_config_load(const char *path, char *err, size_t errlen);
/* The same from a string (tests, fuzzing); name is used in messages. */
struct rtmd_config *rtmd_config_load_string(const char *name, const char *text, char *err,
                                            size_t errlen);
void rtmd_config_free(struct rtmd_config *cfg);

/* The <node> of request IDs for a node_id (NULL: 1): the number itself when
 * it is 1..999999, else a number 1..999999 made from the name. */
uint32_t rtmd_config_node_number(const char *name);

struct rtmd_app *rtmd_config_app(const struct rtmd_config *cfg, struct rtmd_str id);
struct rtmd_customer *rtmd_config_customer(const struct rtmd_config *cfg, struct rtmd_str id);
/* Index of a region name, or -1. */
int rtmd_config_region(const struct rtmd_config *cfg, const char *name);

/* Writes docs/CONFIG.md's key reference (Markdown) from the table to f. */
struct rtmd_buf;
int rtmd_config_write_reference(struct rtmd_buf *out);
/* Writes a complete, commented sample config to out; the first-run config. */
int rtmd_config_write_sample(struct rtmd_buf *out, const char *listen, const char *data_dir,
                             const char *customer_id, const char *customer_secret,
                             const char *app_id, const char *app_certificate);

#endif
