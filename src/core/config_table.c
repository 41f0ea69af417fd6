/*
 * config_table.c — the table of rtmd's configuration: one entry per key, from which everything else
 * is made.
 *
 * options[] names every key with its section, type, default, bounds,
 * validator and a one-line meaning; rules[] bounds one [limits] key by
 * another. The same table applies the defaults (each default is parsed from
 * its text, exactly as if it were in the file), reads the file and the
 * environment (config_read.c), and writes docs/CONFIG.md's reference,
 * rtmd.conf(5) and the first-run sample config (config_write.c), so none of
 * them can disagree. A new key is one entry here, a field in struct
 * rtmd_config, and `scripts/regen-config-doc`.
 */
#include "core/config_internal.h"
#include "core/redis_url.h"

#include <stdio.h>
#include <string.h>

/* Short names for the table's entries. */
#define STR(x)          RTMD_CONFIG_STR(x)
#define PATH_MAX_LEN    RTMD_CONFIG_PATH_MAX
#define SECRET_MIN      RTMD_CONFIG_SECRET_MIN
#define SECRET_MAX      RTMD_CONFIG_SECRET_MAX
#define CUSTOMER_ID_MAX RTMD_CONFIG_CUSTOMER_ID_MAX

const struct section_info rtmd_config_sections[SEC_COUNT] = {
    [SEC_SERVER] = {"server", "[server]", "SERVER",
                    "Listeners, TLS, files and the identity of this node."},
    [SEC_STORE] = {"store", "[store]", "STORE", "Where events, sessions and kept messages live."},
    [SEC_LIMITS] =
        {"limits", "[limits]", "LIMITS",
         "Every bound rtmd enforces, with the defaults of Agora's documented limits where it "
         "has one. Rates are per app."},
    [SEC_CUSTOMER] =
        {"customer", "[customer:ID]", NULL,
         "One per vendor account, repeatable. ID (the Basic-auth user name) is 1.." STR(
             CUSTOMER_ID_MAX) " characters `[A-Za-z0-9_-]`."},
    [SEC_APP] = {"app", "[app:APPID]", NULL,
                 "One per app, repeatable. APPID is 32 characters `[0-9A-Za-z]`. A section with no "
                 "keys declares an app without certificate; so does naming the app in a customer's "
                 "`apps`."},
    [SEC_WEBHOOK] = {"webhook", "[webhook:NAME]", NULL,
                     "One per receiver of presence events, repeatable. NAME is 1..64 characters "
                     "`[A-Za-z0-9_-]` and names the webhook's place in the outbox: renaming it "
                     "starts it afresh. Events are POSTed in signed batches from a durable outbox "
                     "(docs/WEBHOOKS.md); with the redis backend, give every node the same "
                     "sections: one node at a time delivers each."},
};

static const struct choice event_choices[] = {{"user", RTMD_WEBHOOK_USER},
                                              {"channel", RTMD_WEBHOOK_CHANNEL},
                                              {"message", RTMD_WEBHOOK_MESSAGE},
                                              {NULL, 0}};

static const struct choice bool_choices[] = {{"on", 1},    {"off", 0}, {"true", 1},
                                             {"false", 0}, {"yes", 1}, {"no", 0},
                                             {"1", 1},     {"0", 0},   {NULL, 0}};
static const struct choice log_choices[] = {{"error", RTMD_LOG_ERROR},
                                            {"warn", RTMD_LOG_WARN},
                                            {"info", RTMD_LOG_INFO},
                                            {"debug", RTMD_LOG_DEBUG},
                                            {NULL, 0}};
static const struct choice log_format_choices[] = {
    {"text", RTMD_LOG_TEXT}, {"json", RTMD_LOG_JSON}, {NULL, 0}};
static const struct choice backend_choices[] = {
    {"embedded", RTMD_STORE_EMBEDDED}, {"redis", RTMD_STORE_REDIS}, {NULL, 0}};
static const struct choice sync_choices[] = {
    {"full", RTMD_SYNC_FULL}, {"normal", RTMD_SYNC_NORMAL}, {NULL, 0}};

_Static_assert(RTMD_REGION_MAX == 32, "listen's bounds text says 1..31");
_Static_assert(sizeof(enum rtmd_log_level) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum rtmd_log_format) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum rtmd_store_backend) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum rtmd_store_sync) == sizeof(int), "enum fields are stored as int");

/* ---- validators: checks of one value beyond its type's -------------------- */

static int validate_redis_url(struct parser *ps, const struct opt *o, struct rtmd_str v)
{
    struct rtmd_redis_seed seeds[RTMD_REDIS_SEEDS_MAX];
    size_t n, bad;
    const char *why;
    if (rtmd_redis_urls_parse(v, seeds, RTMD_ARRAY_SIZE(seeds), &n, &why, &bad) == 0)
        return 0;
    /* The URL may hold a password: name its position, not its text. */
    return rtmd_config_fail_value(ps, o, "URL %zu: %s", bad + 1, why);
}

static int validate_node_id(struct parser *ps, const struct opt *o, struct rtmd_str v)
{
    for (size_t i = 0; i < v.len; i++) {
        char c = v.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-')) {
            char q[RTMD_CONFIG_QUOTE_MAX];
            return rtmd_config_fail_value(ps, o, "must be characters [A-Za-z0-9_-] (got %s)",
                                          rtmd_log_quote(q, sizeof(q), v));
        }
    }
    return 0;
}

/* ---- the keys ------------------------------------------------------------ */

#define CFG(field) offsetof(struct rtmd_config, field)
#define LIMIT(key, dflt, lo, hi, text)                                                             \
    {                                                                                              \
        .section = SEC_LIMITS, .name = #key, .type = T_U32,                                        \
        .offset = offsetof(struct rtmd_config, limits.key), .def = #dflt, .min = lo, .max = hi,    \
        .doc = text                                                                                \
    }

const struct opt rtmd_config_options[] = {
    /* [server] */
    {.section = SEC_SERVER,
     .name = "listen",
     .type = T_LISTEN,
     .def = "0.0.0.0:8443@default",
     .type_doc = "list",
     .bounds =
         "ADDR is IPv4 or `[IPv6]`; PORT 0..65535 (0: any free port); REGION 1..31 characters "
         "`[A-Za-z0-9_-]`, `default` when `@REGION` is left out; `/tls` or `/plain`, or "
         "neither (then `tls` decides); at most " STR(RTMD_LISTENERS_MAX) " listeners and " STR(
             RTMD_REGIONS_MAX) " regions",
     .doc = "Where to serve, as `ADDR:PORT@REGION/tls` or `ADDR:PORT@REGION/plain`; each region "
            "reads the event logs on its own. A listener serves HTTPS/WSS with `/tls`, plain "
            "HTTP/WS with `/plain`, and as `tls` says without either, so one process can serve a "
            "public `wss://` listener and an internal plain one (with one certificate, "
            "`tls_cert`)"},
    {.section = SEC_SERVER,
     .name = "tls",
     .type = T_BOOL,
     .offset = CFG(tls),
     .def = "on",
     .choices = bool_choices,
     .doc = "HTTPS/WSS on the listeners that say neither `/tls` nor `/plain`; `off` serves "
            "them plain HTTP/WS (behind a TLS proxy, or in tests)"},
    {.section = SEC_SERVER,
     .name = "tls_cert",
     .type = T_STRING,
     .offset = CFG(tls_cert),
     .min = 1,
     .max = PATH_MAX_LEN,
     .type_doc = "path",
     .bounds = "1.." STR(PATH_MAX_LEN) " bytes; with `tls_key`",
     .doc = "PEM certificate chain; with neither `tls_cert` nor `tls_key`, a self-signed pair is "
            "made in `data_dir`"},
    {.section = SEC_SERVER,
     .name = "tls_key",
     .type = T_STRING,
     .offset = CFG(tls_key),
     .min = 1,
     .max = PATH_MAX_LEN,
     .type_doc = "path",
     .bounds = "1.." STR(PATH_MAX_LEN) " bytes; with `tls_cert`",
     .doc = "PEM private key of `tls_cert`"},
    {.section = SEC_SERVER,
     .name = "tls_ticket_rotate_s",
     .type = T_U32,
     .offset = CFG(tls_ticket_rotate_s),
     .def = "3600",
     .min = 0,
     .max = 604800,
     .type_doc = "seconds",
     .doc = "TLS session tickets (resumption without a full handshake, no 0-RTT): a new ticket "
            "key every this many seconds, on the wall clock's multiples of it; a ticket resumes "
            "during the period it was issued in and the next one. With the redis backend every "
            "node uses the same keys, kept in Redis, so a ticket resumes on any node and across "
            "restarts; with the embedded store they live in memory and a restart ends them. "
            "`0` issues no tickets (every connection does a full handshake)"},
    {.section = SEC_SERVER,
     .name = "admin_listen",
     .type = T_STRING,
     .offset = CFG(admin_listen),
     .min = 1,
     .max = 64,
     .validate = rtmd_config_validate_admin_listen,
     .type_doc = "address",
     .bounds = "`ADDR:PORT` (ADDR IPv4 or `[IPv6]`, PORT 0..65535), or `off`",
     .doc = "An operators' listener serving only `GET /metrics`, `/healthz` and `/readyz`, in "
            "plain HTTP and without credentials (on the main listeners `/metrics` takes a "
            "customer's Basic auth). Keep it on loopback or an internal network, e.g. "
            "`127.0.0.1:9464`. Off by default, so that two processes on one host never fight "
            "over its port"},
    {.section = SEC_SERVER,
     .name = "allowed_origins",
     .type = T_ORIGINS,
     .offset = CFG(allowed_origins),
     .def = "*",
     .type_doc = "list",
     .bounds = "`*`, or 1.." STR(RTMD_ORIGINS_MAX) " origins `scheme://host[:port]` of 1.." STR(
         RTMD_ORIGIN_MAX) " bytes (no path)",
     .doc = "Web pages that may open a WebSocket session: an upgrade whose `Origin` header is "
            "not listed is answered 403; one without `Origin` (a native app, a server) is "
            "allowed. Compared exactly, ASCII case aside (a default port may be written or "
            "not); `*` allows any"},
    {.section = SEC_SERVER,
     .name = "cors_origins",
     .type = T_ORIGINS,
     .offset = CFG(cors_origins),
     .type_doc = "list",
     .bounds = "`*`, or 1.." STR(RTMD_ORIGINS_MAX) " origins `scheme://host[:port]` of 1.." STR(
         RTMD_ORIGIN_MAX) " bytes (no path)",
     .doc = "Web pages that may call the REST API (CORS): their answers carry "
            "`Access-Control-Allow-Origin`, and their preflight `OPTIONS` is answered 204; a "
            "preflight from another origin is answered 403. None by default"},
    {.section = SEC_SERVER,
     .name = "data_dir",
     .type = T_STRING,
     .offset = CFG(data_dir),
     .def = "./rtmd-data",
     .min = 1,
     .max = PATH_MAX_LEN,
     .type_doc = "path",
     .doc = "Embedded store, self-signed TLS pair and first-run files; relative to the working "
            "directory"},
    {.section = SEC_SERVER,
     .name = "node_id",
     .type = T_STRING,
     .offset = CFG(node_name),
     .min = 1,
     .max = RTMD_NODE_ID_MAX - 1,
     .validate = validate_node_id,
     .type_doc = "name",
     .bounds = "1.." STR(RTMD_NODE_ID_MAX_STR) " characters `[A-Za-z0-9_-]`",
     .doc = "This node's name, unique among the nodes sharing a store. Without it: `1` with the "
            "embedded store; with `redis`, a name made at the first start and kept in "
            "`data_dir/node_id`. The `<node>` of request IDs is node_id when it is a number "
            "1..999999, else a number made from it"},
    {.section = SEC_SERVER,
     .name = "reuse_port",
     .type = T_BOOL,
     .offset = CFG(reuse_port),
     .def = "off",
     .choices = bool_choices,
     .doc = "`on` lets several nodes on one machine listen on the same ports (SO_REUSEPORT; the "
            "kernel spreads connections over them): one node per core. Only with "
            "`backend = redis` (the embedded store is one node)"},
    {.section = SEC_SERVER,
     .name = "ready_file",
     .type = T_STRING,
     .offset = CFG(ready_file),
     .min = 1,
     .max = PATH_MAX_LEN,
     .type_doc = "path",
     .doc = "Written once rtmd serves (for scripts that use port 0), one line each: `pid PID`, "
            "`listen REGION ADDR:PORT tls` (or `plain`) per listener, `admin ADDR:PORT` for "
            "`admin_listen`"},
    {.section = SEC_SERVER,
     .name = "drain_s",
     .type = T_U32,
     .offset = CFG(drain_s),
     .def = "5",
     .min = 0,
     .max = 300,
     .type_doc = "seconds",
     .doc = "On SIGTERM or SIGINT: seconds the clients get to close after rtmd sent each of them "
            "close 1001 (going away) and REST requests in flight get to finish; connections still "
            "open then are cut"},
    {.section = SEC_SERVER,
     .name = "log_level",
     .type = T_ENUM,
     .offset = CFG(log_level),
     .def = "info",
     .choices = log_choices,
     .doc = "Least severe level that is logged. `info` adds one access-log line per REST "
            "request and per WebSocket connection's end; `debug` adds logins and more"},
    {.section = SEC_SERVER,
     .name = "log_format",
     .type = T_ENUM,
     .offset = CFG(log_format),
     .def = "text",
     .choices = log_format_choices,
     .doc = "`text`: `TIME LEVEL MODULE message key=value ...`; `json`: one JSON object a line "
            "(`time`, `level`, `module`, `msg` and the record's fields)"},
    {.section = SEC_SERVER,
     .name = "log_file",
     .type = T_STRING,
     .offset = CFG(log_file),
     .min = 1,
     .max = PATH_MAX_LEN,
     .type_doc = "path",
     .doc = "Append the log to this file instead of stderr; SIGUSR1 reopens it (rotation: "
            "`mv` the file, then `kill -USR1`)"},

    /* [store] */
    {.section = SEC_STORE,
     .name = "backend",
     .type = T_ENUM,
     .offset = CFG(backend),
     .def = "embedded",
     .choices = backend_choices,
     .doc = "`embedded`: one node, local disk; `redis`: Redis 7 or Valkey, any number of nodes"},
    {.section = SEC_STORE,
     .name = "redis_url",
     .type = T_STRING,
     .offset = CFG(redis_url),
     .def = "redis://127.0.0.1:6379",
     .min = 1,
     .max = PATH_MAX_LEN,
     .validate = validate_redis_url,
     .type_doc = "list",
     .bounds = "1.." STR(RTMD_REDIS_SEEDS_MAX) " URLs `redis://[[USER]:PASSWORD@]HOST[:PORT][/0]`",
     .doc = "Where the `redis` backend connects, comma separated: one instance, or any nodes of "
            "a Redis Cluster. The seeds are tried in order and the first that answers tells "
            "which (CLUSTER SLOTS); a Cluster's other nodes are found from its slot map and "
            "reached with that seed's credentials; a single instance that stays unreachable "
            "makes rtmd try the other seeds. With a password rtmd sends AUTH first; user and "
            "password are %-decoded"},
    {.section = SEC_STORE,
     .name = "redis_timeout_ms",
     .type = T_U32,
     .offset = CFG(redis_timeout_ms),
     .def = "1000",
     .min = 10,
     .max = 600000,
     .doc = "A Redis call not answered by then fails: REST answers 408, a client op "
            "`unavailable`; such a call did nothing, even if Redis runs it later (a pull or a "
            "history handle consumed nothing, offline messages were not taken, a message was "
            "not kept)"},
    {.section = SEC_STORE,
     .name = "node_timeout_s",
     .type = T_U32,
     .offset = CFG(node_timeout_s),
     .def = "10",
     .min = 2,
     .max = 3600,
     .doc = "`redis`: a node whose heartbeat is older than this is dead, and another node ends "
            "its sessions (Leave, Logout)"},
    {.section = SEC_STORE,
     .name = "sync",
     .type = T_ENUM,
     .offset = CFG(sync),
     .def = "full",
     .choices = sync_choices,
     .doc = "`embedded` only: `full` fsyncs each group commit holding events, sessions or kept "
            "messages before acknowledging (read positions alone are left to the OS); `normal` "
            "leaves all flushing to the OS (faster; a power loss may lose the last moments)"},

    /* [limits] — field comments in config.h give the same defaults */
    LIMIT(events_retain, 2000, 1, 1000000, "Events kept per app and log; older unread ones drop"),
    LIMIT(events_max_pull, 1000, 1, 1000000, "Events one GET of an event log returns at most"),
    LIMIT(events_qps, 10, 1, 10000000, "Requests per second over both event endpoints"),
    LIMIT(history_qps, 100, 1, 10000000, "Requests per second over the history endpoints"),
    LIMIT(send_qps, 500, 1, 10000000, "Requests per second over both send endpoints"),
    LIMIT(presence_qps, 100, 1, 10000000,
          "Requests per second over the who-is-online endpoints (members, count, status)"),
    LIMIT(history_retention_s, 604800, 1, 315360000, "Seconds a kept message stays queryable"),
    LIMIT(heartbeat_timeout_s, 30, 1, 3600,
          "Seconds without a frame before a session is ended (Leave/Logout)"),
    LIMIT(login_timeout_s, 10, 1, 3600,
          "Seconds a WebSocket has from its upgrade to log in, whatever it sends meanwhile "
          "(else close 1008); `heartbeat_timeout_s` applies from the login on"),
    LIMIT(max_channels_per_user, 20, 1, 10000, "Channels one user may be in at once"),
    LIMIT(max_payload, 32768, 1, 1048576, "Bytes of one message payload"),
    LIMIT(http_max_head, 16384, 1024, 1048576, "Bytes of request line plus headers (else 431)"),
    LIMIT(http_max_headers, 100, 8, 10000, "Headers in one request (else 431)"),
    LIMIT(http_max_body, 1048576, 1024, 67108864, "Bytes of one request body (else 413)"),
    LIMIT(http_header_timeout_ms, 10000, 100, 600000,
          "Milliseconds for a whole request head to arrive (over TLS, from the handshake's end)"),
    LIMIT(tls_handshake_timeout_ms, 60000, 100, 600000,
          "Milliseconds for a TLS handshake to finish (from accept)"),
    LIMIT(http_idle_timeout_s, 60, 1, 86400, "Seconds a keep-alive connection may wait idle"),
    LIMIT(ws_max_message, 262144, 2048, 67108864,
          "Bytes of one WebSocket frame or message (else close 1009)"),
    LIMIT(ws_output_budget, 1048576, 65536, 1073741824,
          "Unsent bytes to one client before the slow reader is disconnected"),
    LIMIT(max_connections, 19000, 1, 1000000, "Open client connections on this node"),
    LIMIT(store_timeout_ms, 5000, 10, 600000,
          "Milliseconds a store call may take before the request answers 408"),
    LIMIT(offline_max_per_user, 200, 1, 10000,
          "Offline messages kept per receiver; the newest replace the oldest"),
    LIMIT(offline_retention_s, 604800, 1, 315360000, "Seconds an offline message is kept"),
    LIMIT(history_handle_ttl_s, 600, 1, 86400,
          "Seconds a history query handle stays valid (then 410)"),
    LIMIT(member_events_max, 512, 0, 1000000,
          "Channels with more members send no member_joined/member_left (0: never)"),
    LIMIT(peer_ack_timeout_ms, 10000, 10, 600000,
          "Milliseconds a wait_for_ack send waits for the receiver's ack (then 408)"),
    LIMIT(token_clock_skew_s, 300, 0, 86400,
          "Seconds a token's issue time may lie in the future (clock skew); a 007 token issued "
          "later, or a 006 token whose `ts` is more than 24 h plus this ahead, is refused"),

    /* [customer:ID] */
    {.section = SEC_CUSTOMER,
     .name = "secret",
     .type = T_SECRET,
     .type_doc = "string",
     .bounds = STR(SECRET_MIN) ".." STR(SECRET_MAX) " printable ASCII characters, no spaces",
     .doc = "The Customer Secret of Basic auth",
     .required = true},
    {.section = SEC_CUSTOMER,
     .name = "apps",
     .type = T_APPS,
     .type_doc = "list",
     .bounds = "App IDs; an app without its own section has no certificate",
     .doc = "Apps this customer reaches with Basic auth"},

    /* [app:APPID] */
    {.section = SEC_APP,
     .name = "certificate",
     .type = T_CERT,
     .type_doc = "hex",
     .bounds = "32 hex characters",
     .doc = "App Certificate that signs tokens; without one the app takes no token, and clients "
            "log in with none"},
    {.section = SEC_APP,
     .name = "vendor_token_access",
     .type = T_BOOL,
     .offset = offsetof(struct rtmd_app, vendor_token_access),
     .def = "on",
     .choices = bool_choices,
     .doc = "Whether client tokens (006/007) are accepted on the vendor's read endpoints (event "
            "logs and history), as Agora does. With `on` any logged-in user's token can drain "
            "the app's event logs, spend its `events_qps` and read every user's kept messages; "
            "`off` leaves those endpoints to Basic auth (send endpoints still take a token, as "
            "its own user only)"},

    /* [webhook:NAME] */
    {.section = SEC_WEBHOOK,
     .name = "url",
     .type = T_STRING,
     .offset = offsetof(struct rtmd_webhook_config, url),
     .min = 8,
     .max = 2048,
     .validate = rtmd_config_validate_webhook_url,
     .bounds = "an `http://` or `https://` URL, at most 2048 bytes",
     .doc = "Where the batches are POSTed (https: the receiver's certificate is verified against "
            "the system's CAs)",
     .required = true},
    {.section = SEC_WEBHOOK,
     .name = "secret",
     .type = T_STRING,
     .offset = offsetof(struct rtmd_webhook_config, secret),
     .min = 16,
     .max = 256,
     .doc = "Key of the `X-Rtmd-Signature` HMAC-SHA256; never logged",
     .required = true},
    {.section = SEC_WEBHOOK,
     .name = "events",
     .type = T_EVENTS,
     .type_doc = "list",
     .offset = offsetof(struct rtmd_webhook_config, events),
     .def = "user, channel",
     .choices = event_choices,
     .bounds = "any of `user` (Login, Logout), `channel` (Join, Leave), `message` (peer and "
               "channel messages sent; each send is then answered once its event is durable)",
     .doc = "Which events the webhook receives"},
    {.section = SEC_WEBHOOK,
     .name = "apps",
     .type = T_APPS,
     .type_doc = "list",
     .bounds = "App IDs",
     .doc = "Apps whose events the webhook receives; not set: every app"},
    {.section = SEC_WEBHOOK,
     .name = "batch_max",
     .type = T_U32,
     .offset = offsetof(struct rtmd_webhook_config, batch_max),
     .def = "1000",
     .min = 1,
     .max = 10000,
     .doc = "Events in one POST at most"},
    {.section = SEC_WEBHOOK,
     .name = "timeout_ms",
     .type = T_U32,
     .offset = offsetof(struct rtmd_webhook_config, timeout_ms),
     .def = "10000",
     .min = 100,
     .max = 600000,
     .doc = "Milliseconds one POST may take, connecting included; then it counts as failed"},
    {.section = SEC_WEBHOOK,
     .name = "ca_file",
     .type = T_STRING,
     .offset = offsetof(struct rtmd_webhook_config, ca_file),
     .min = 1,
     .max = PATH_MAX_LEN,
     .doc = "PEM file of the CAs an `https://` receiver's certificate is verified against, "
            "instead of the system's (a private CA); read at each connection"},
    {.section = SEC_WEBHOOK,
     .name = "retry_s",
     .type = T_U32,
     .offset = offsetof(struct rtmd_webhook_config, retry_s),
     .def = "86400",
     .min = 1,
     .max = 604800,
     .doc = "Seconds a batch is retried (jittered exponential backoff, 0.5 s doubling to 5 min) "
            "from its first try; then its events are dropped and counted as failed"},
};

const struct rule rtmd_config_rules[] = {
    {"events_max_pull", RULE_LE, "events_retain", 0},
    {"ws_max_message", RULE_GE, "max_payload", 1024},
};

const size_t rtmd_config_n_options = RTMD_ARRAY_SIZE(rtmd_config_options);
const size_t rtmd_config_n_rules = RTMD_ARRAY_SIZE(rtmd_config_rules);

const struct opt *rtmd_config_find(enum section sect, const char *name)
{
    for (size_t i = 0; i < rtmd_config_n_options; i++)
        if (rtmd_config_options[i].section == sect &&
            strcmp(rtmd_config_options[i].name, name) == 0)
            return &rtmd_config_options[i];
    return NULL;
}

const struct opt *rtmd_config_find_anywhere(const char *name)
{
    for (size_t i = 0; i < rtmd_config_n_options; i++)
        if (strcmp(rtmd_config_options[i].name, name) == 0)
            return &rtmd_config_options[i];
    return NULL;
}

size_t rtmd_config_opt_slot(const struct opt *o)
{
    size_t n = 0;
    for (const struct opt *q = rtmd_config_options; q < o; q++)
        if (q->section == o->section)
            n++;
    return n;
}

const struct rule *rtmd_config_rule_of(const struct opt *o)
{
    for (size_t i = 0; i < rtmd_config_n_rules; i++)
        if (strcmp(rtmd_config_rules[i].key, o->name) == 0)
            return &rtmd_config_rules[i];
    return NULL;
}

void rtmd_config_env_name(const struct opt *o, char *out, size_t outlen)
{
    const char *sect = rtmd_config_sections[o->section].env;
    if (!sect) {
        snprintf(out, outlen, "%s", "");
        return;
    }
    int n = snprintf(out, outlen, RTMD_CONFIG_ENV_PREFIX "%s_%s", sect, o->name);
    size_t end = n < 0 ? 0 : RTMD_MIN((size_t)n, outlen ? outlen - 1 : 0);
    for (size_t i = 0; i < end; i++)
        if (out[i] >= 'a' && out[i] <= 'z')
            out[i] = (char)(out[i] - 'a' + 'A');
}
