/*
 * config.c — rtmd's configuration (STYLE.md §11).
 *
 * One table, options[], names every key with its section, type, default,
 * bounds, validator and a one-line meaning. The same table applies the
 * defaults (each default is parsed from its text, exactly as if it were in
 * the file), parses the file, and writes docs/CONFIG.md's reference and the
 * first-run sample config, so the four cannot disagree.
 *
 * The INI syntax is inih's (Debian libinih r55), but inih only ever sees
 * lines that our reader has checked and normalised:
 *  - the reader counts lines, so every message is FILE:LINE: KEY: ...
 *    (Debian's header declares a handler without a line number);
 *  - it sees section headers itself: inih calls no handler for a section
 *    without keys ([app:X] with no certificate) and truncates section names
 *    to 49 bytes (a 64-character customer ID would collide);
 *  - it rejects a line longer than RTMD_CONFIG_LINE_MAX instead of letting
 *    inih cut it, which in r55 parses the tail as a line of its own;
 *  - it strips inline comments (" ;") itself, because r55 leaves them on
 *    continuation lines;
 *  - it rejects control bytes (NUL included) and anything after "]".
 * It mirrors inih's line classification (comment, continuation, section,
 * key = value) to know which key a continuation line continues. inih's
 * runtime options are set for the duration of each parse and restored.
 *
 * Parsing stops at the first error; the message names file, line and key.
 */
#include "core/config.h"
#include "core/redis_url.h"

#include <arpa/inet.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/ids.h"

#define XSTR(x)         #x
#define STR(x)          XSTR(x)

#define PATH_MAX_LEN    4095
#define SECRET_MIN      8
#define SECRET_MAX      128
#define CUSTOMER_ID_MAX 64

/* ---- the table ---------------------------------------------------------- */

enum section { SEC_NONE, SEC_SERVER, SEC_STORE, SEC_LIMITS, SEC_CUSTOMER, SEC_APP, SEC_COUNT };

struct section_info {
    const char *name;    /* as written in the file: [name] or [name:ID] */
    const char *heading; /* in docs */
    const char *doc;
};

static const struct section_info sections[SEC_COUNT] = {
    [SEC_SERVER] = {"server", "[server]", "Listeners, TLS, files and the identity of this node."},
    [SEC_STORE] = {"store", "[store]", "Where events, sessions and kept messages live."},
    [SEC_LIMITS] =
        {"limits", "[limits]",
         "Every bound rtmd enforces, with the defaults of Agora's documented limits where it "
         "has one. Rates are per app."},
    [SEC_CUSTOMER] =
        {"customer", "[customer:ID]",
         "One per vendor account, repeatable. ID (the Basic-auth user name) is 1.." STR(
             CUSTOMER_ID_MAX) " characters `[A-Za-z0-9_-]`."},
    [SEC_APP] = {"app", "[app:APPID]",
                 "One per app, repeatable. APPID is 32 characters `[0-9A-Za-z]`. A section with no "
                 "keys declares an app without certificate; so does naming the app in a customer's "
                 "`apps`."},
};

enum opt_type {
    T_U32,    /* decimal, min..max */
    T_BOOL,   /* on/off and friends */
    T_ENUM,   /* one of choices */
    T_STRING, /* min..max bytes, optional validator */
    T_LISTEN, /* list of ADDR:PORT@REGION */
    T_SECRET, /* customer secret */
    T_APPS,   /* list of App IDs */
    T_CERT,   /* App Certificate */
};

struct choice {
    const char *name;
    int value;
};

struct parser;

struct opt {
    enum section section;
    const char *name;
    enum opt_type type;
    size_t offset;     /* into struct rtmd_config ([server]/[store]/[limits]) or rtmd_app */
    const char *def;   /* the default as written in a file; NULL: none */
    uint32_t min, max; /* T_U32: value bounds; T_STRING: length bounds */
    const struct choice *choices; /* T_BOOL, T_ENUM: NULL-terminated */
    int (*validate)(struct parser *ps, const struct opt *o, struct rtmd_str v);
    const char *type_doc; /* overrides the type's name in docs */
    const char *bounds;   /* docs text where min..max does not say it */
    const char *doc;
    bool required;
};

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

static int validate_redis_url(struct parser *ps, const struct opt *o, struct rtmd_str v);
static int validate_node_id(struct parser *ps, const struct opt *o, struct rtmd_str v);

#define CFG(field) offsetof(struct rtmd_config, field)
#define LIMIT(key, dflt, lo, hi, text)                                                             \
    {                                                                                              \
        .section = SEC_LIMITS, .name = #key, .type = T_U32,                                        \
        .offset = offsetof(struct rtmd_config, limits.key), .def = #dflt, .min = lo, .max = hi,    \
        .doc = text                                                                                \
    }

static const struct opt options[] = {
    /* [server] */
    {.section = SEC_SERVER,
     .name = "listen",
     .type = T_LISTEN,
     .def = "0.0.0.0:8443@default",
     .type_doc = "list",
     .bounds =
         "ADDR is IPv4 or `[IPv6]`; PORT 0..65535 (0: any free port); REGION 1..31 characters "
         "`[A-Za-z0-9_-]`, `default` when `@REGION` is left out; at most " STR(
             RTMD_LISTENERS_MAX) " listeners and " STR(RTMD_REGIONS_MAX) " regions",
     .doc = "Where to serve, as `ADDR:PORT@REGION`; each region reads the event logs on its own"},
    {.section = SEC_SERVER,
     .name = "tls",
     .type = T_BOOL,
     .offset = CFG(tls),
     .def = "on",
     .choices = bool_choices,
     .doc = "HTTPS/WSS; `off` serves plain HTTP/WS (behind a TLS proxy, or in tests)"},
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
     .doc = "Written with the bound addresses once rtmd serves (for scripts that use port 0)"},
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
    {.section = SEC_STORE,
     .name = "bench_pull_keeps_events",
     .type = T_BOOL,
     .offset = CFG(bench_pull_keeps_events),
     .def = "off",
     .choices = bool_choices,
     .doc = "Benchmarks only, never in production: `on` makes an event pull return the oldest "
            "unread events without marking them read (the cursor write is still committed, "
            "unchanged), so bench/rest-pull can pull the same answer again and again"},

    /* [limits] — field comments in config.h give the same defaults */
    LIMIT(events_retain, 2000, 1, 1000000, "Events kept per app and log; older unread ones drop"),
    LIMIT(events_max_pull, 1000, 1, 1000000, "Events one GET of an event log returns at most"),
    LIMIT(events_qps, 10, 1, 10000000, "Requests per second over both event endpoints"),
    LIMIT(history_qps, 100, 1, 10000000, "Requests per second over the history endpoints"),
    LIMIT(send_qps, 500, 1, 10000000, "Requests per second over both send endpoints"),
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
          "Milliseconds for a whole request head to arrive"),
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
};

#define N_OPTS       RTMD_ARRAY_SIZE(options)
#define OBJ_KEYS_MAX 4 /* keys of a [customer:] or [app:] section */

/*
 * Bounds between two [limits] keys: key <= other + add (LE) or
 * key >= other + add (GE). The docs show them as key's bounds.
 */
enum rule_op { RULE_LE, RULE_GE };
struct rule {
    const char *key;
    enum rule_op op;
    const char *other;
    uint32_t add;
};

static const struct rule rules[] = {
    {"events_max_pull", RULE_LE, "events_retain", 0},
    {"ws_max_message", RULE_GE, "max_payload", 1024},
};

/* ---- parser state ------------------------------------------------------- */

struct obj_lines {
    int section;            /* line of the [customer:]/[app:] header; 0: implicit app */
    int keys[OBJ_KEYS_MAX]; /* line each key was first set */
};

struct parser {
    struct rtmd_config *cfg;
    const char *name; /* file name in messages */
    char *err;
    size_t errlen;
    bool failed;

    const char *p, *end; /* unread text */
    int lineno;          /* line most recently handed to inih; 0 while applying defaults */

    /* Mirror of inih's state, for continuation lines. */
    bool have_prev;             /* inih's prev_name is set */
    bool continuation;          /* the current line continues prev_opt */
    const struct opt *prev_opt; /* key of the last key = value line */
    bool expect_call;           /* inih must call handler() for the current line */
    struct rtmd_str line_name;  /* the key of the current key = value line */

    enum section sect;
    char heading[160]; /* "[server]", "[customer:ID]", ... (escaped) for messages */
    struct rtmd_customer *cust;
    struct obj_lines *cust_lines; /* parallel to cfg->customers */
    struct rtmd_app *app;
    struct obj_lines *app_lines; /* parallel to cfg->apps */
    int sect_line[SEC_COUNT];
    int opt_line[N_OPTS]; /* [server]/[store]/[limits]: line of first setting, 0: default */
};

/* ---- small helpers ------------------------------------------------------ */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static struct rtmd_str trim(struct rtmd_str s)
{
    while (s.len && is_space(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len && is_space(s.p[s.len - 1]))
        s.len--;
    return s;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* 1..max characters [A-Za-z0-9_-]: customer IDs, region names. */
static bool name_valid(struct rtmd_str s, size_t max)
{
    if (s.len == 0 || s.len > max)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!name_char(s.p[i]))
            return false;
    return true;
}

static bool ascii_ieq(struct rtmd_str a, const char *b)
{
    return rtmd_str_ieq(a, rtmd_str_cstr(b));
}

static bool has_prefix(struct rtmd_str s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.len >= n && memcmp(s.p, prefix, n) == 0;
}

/* file text echoed in messages, bytes outside printable ASCII as \xNN */
static const char *esc(char *out, size_t outlen, struct rtmd_str s)
{
    return rtmd_escape(out, outlen, s, "");
}

/* A quoted, escaped copy of file text for messages. */
#define QUOTE_MAX 72
static const char *quote(char *out, struct rtmd_str s)
{
    return rtmd_log_quote(out, QUOTE_MAX, s);
}

/* Grows an array that is about to receive element n (capacity doubles at
 * powers of two, starting at 4). */
static void *grow_for(void *p, size_t n, size_t elem)
{
    if (n == 0)
        return rtmd_realloc(p, 4 * elem);
    if (n >= 4 && (n & (n - 1)) == 0)
        return rtmd_realloc(p, 2 * n * elem);
    return p;
}

__attribute__((format(printf, 4, 5))) static int config_fail(struct parser *ps, int line,
                                                             const char *key, const char *fmt, ...)
{
    if (ps->failed)
        return -EINVAL;
    ps->failed = true;
    if (!ps->err || ps->errlen == 0)
        return -EINVAL;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(ps->err, ps->errlen, "%s:%d: %s: %s", ps->name, line, key, msg);
    else
        snprintf(ps->err, ps->errlen, "%s: %s: %s", ps->name, key, msg);
    return -EINVAL;
}

static size_t opt_index(const struct opt *o)
{
    return (size_t)(o - options);
}

/* Position of o among the keys of its section (per-object line slots). */
static size_t opt_slot(const struct opt *o)
{
    size_t n = 0;
    for (const struct opt *q = options; q < o; q++)
        if (q->section == o->section)
            n++;
    return n;
}

static const struct opt *find_opt(enum section sect, const char *name)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (options[i].section == sect && strcmp(options[i].name, name) == 0)
            return &options[i];
    return NULL;
}

static const struct opt *find_opt_anywhere(const char *name)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(options[i].name, name) == 0)
            return &options[i];
    return NULL;
}

static bool opt_is_list(const struct opt *o)
{
    return o->type == T_LISTEN || o->type == T_APPS;
}

static uint32_t *u32_field(struct rtmd_config *cfg, const struct opt *o)
{
    return (uint32_t *)(void *)((char *)cfg + o->offset);
}

/* ---- values ------------------------------------------------------------- */

static int validate_redis_url(struct parser *ps, const struct opt *o, struct rtmd_str v)
{
    struct rtmd_redis_seed seeds[RTMD_REDIS_SEEDS_MAX];
    size_t n, bad;
    const char *why;
    if (rtmd_redis_urls_parse(v, seeds, RTMD_ARRAY_SIZE(seeds), &n, &why, &bad) == 0)
        return 0;
    /* The URL may hold a password: name its position, not its text. */
    return config_fail(ps, ps->lineno, o->name, "URL %zu: %s", bad + 1, why);
}

static int validate_node_id(struct parser *ps, const struct opt *o, struct rtmd_str v)
{
    for (size_t i = 0; i < v.len; i++) {
        char c = v.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-')) {
            char q[QUOTE_MAX];
            return config_fail(ps, ps->lineno, o->name, "must be characters [A-Za-z0-9_-] (got %s)",
                               quote(q, v));
        }
    }
    return 0;
}

static int region_index(struct parser *ps, const struct opt *o, struct rtmd_str item,
                        struct rtmd_str region, uint32_t *out)
{
    struct rtmd_config *cfg = ps->cfg;
    for (size_t i = 0; i < cfg->n_regions; i++) {
        if (rtmd_str_eq_cstr(region, cfg->regions[i])) {
            *out = (uint32_t)i;
            return 0;
        }
    }
    if (cfg->n_regions == RTMD_REGIONS_MAX) {
        char q[QUOTE_MAX];
        return config_fail(ps, ps->lineno, o->name, "%s: more than %d regions", quote(q, item),
                           RTMD_REGIONS_MAX);
    }
    memcpy(cfg->regions[cfg->n_regions], region.p, region.len);
    cfg->regions[cfg->n_regions][region.len] = '\0';
    *out = (uint32_t)cfg->n_regions++;
    return 0;
}

/* One ADDR:PORT@REGION item of listen. */
static int add_listener(struct parser *ps, const struct opt *o, struct rtmd_str item)
{
    struct rtmd_config *cfg = ps->cfg;
    char q[QUOTE_MAX];
    int line = ps->lineno;
    struct rtmd_str region = RTMD_STR_LIT("default");
    struct rtmd_str hostport = item;
    const char *at = memchr(item.p, '@', item.len);
    if (at) {
        hostport.len = (size_t)(at - item.p);
        region = rtmd_str_make(at + 1, item.len - hostport.len - 1);
        if (!name_valid(region, RTMD_REGION_MAX - 1))
            return config_fail(ps, line, o->name,
                               "%s: region must be 1..%d characters [A-Za-z0-9_-]", quote(q, item),
                               RTMD_REGION_MAX - 1);
    }

    struct rtmd_str host, port;
    int family;
    if (hostport.len && hostport.p[0] == '[') {
        const char *rb = memchr(hostport.p, ']', hostport.len);
        const char *end = hostport.p + hostport.len;
        if (!rb || rb + 1 >= end || rb[1] != ':')
            return config_fail(ps, line, o->name, "%s: expected [IPV6]:PORT@REGION",
                               quote(q, item));
        host = rtmd_str_make(hostport.p + 1, (size_t)(rb - hostport.p - 1));
        port = rtmd_str_make(rb + 2, (size_t)(end - rb - 2));
        family = AF_INET6;
    } else {
        size_t colon = hostport.len;
        while (colon > 0 && hostport.p[colon - 1] != ':')
            colon--;
        if (colon == 0)
            return config_fail(ps, line, o->name, "%s: expected ADDR:PORT@REGION", quote(q, item));
        host = rtmd_str_make(hostport.p, colon - 1);
        port = rtmd_str_make(hostport.p + colon, hostport.len - colon);
        if (memchr(host.p, ':', host.len))
            return config_fail(ps, line, o->name,
                               "%s: an IPv6 address goes in brackets, as [::1]:8443",
                               quote(q, item));
        family = AF_INET;
    }

    struct rtmd_listener_config l;
    memset(&l, 0, sizeof(l));
    unsigned char addr[16];
    if (host.len == 0 || host.len >= sizeof(l.host))
        return config_fail(ps, line, o->name, "%s: not a numeric IPv4 or [IPv6] address",
                           quote(q, item));
    memcpy(l.host, host.p, host.len);
    l.host[host.len] = '\0';
    if (inet_pton(family, l.host, addr) != 1)
        return config_fail(ps, line, o->name, "%s: not a numeric %s address", quote(q, item),
                           family == AF_INET ? "IPv4 (or [IPv6])" : "IPv6");
    uint64_t pn;
    if (rtmd_str_to_u64(port, 65535, &pn) != 0)
        return config_fail(ps, line, o->name, "%s: port must be 0..65535", quote(q, item));
    l.port = (uint16_t)pn;
    memcpy(l.region, region.p, region.len);
    l.region[region.len] = '\0';

    for (size_t i = 0; i < cfg->n_listeners; i++)
        if (l.port != 0 && cfg->listeners[i].port == l.port &&
            strcmp(cfg->listeners[i].host, l.host) == 0)
            return config_fail(ps, line, o->name, "%s: address and port listed twice",
                               quote(q, item));
    if (cfg->n_listeners == RTMD_LISTENERS_MAX)
        return config_fail(ps, line, o->name, "%s: more than %d listeners", quote(q, item),
                           RTMD_LISTENERS_MAX);
    int rc = region_index(ps, o, item, region, &l.region_index);
    if (rc)
        return rc;
    cfg->listeners[cfg->n_listeners++] = l;
    return 0;
}

/* Finds or creates the app; a new app has no certificate and no section. */
static struct rtmd_app *app_get(struct parser *ps, struct rtmd_str id)
{
    struct rtmd_config *cfg = ps->cfg;
    struct rtmd_app *a = rtmd_hashmap_get(&cfg->apps_by_id, id);
    if (a)
        return a;
    a = rtmd_calloc(1, sizeof(*a));
    memcpy(a->id, id.p, RTMD_APPID_LEN);
    a->vendor_token_access = true; /* the table's default */
    a->index = (uint32_t)cfg->n_apps;
    cfg->apps = grow_for(cfg->apps, cfg->n_apps, sizeof(*cfg->apps));
    ps->app_lines = grow_for(ps->app_lines, cfg->n_apps, sizeof(*ps->app_lines));
    memset(&ps->app_lines[cfg->n_apps], 0, sizeof(*ps->app_lines));
    cfg->apps[cfg->n_apps++] = a;
    rtmd_hashmap_put(&cfg->apps_by_id, rtmd_str_make(a->id, RTMD_APPID_LEN), a);
    return a;
}

/* One App ID of a customer's apps. Repeats are ignored. */
static int add_app(struct parser *ps, const struct opt *o, struct rtmd_str item)
{
    char q[QUOTE_MAX];
    if (!rtmd_appid_valid(item))
        return config_fail(ps, ps->lineno, o->name,
                           "%s is not an App ID (32 characters [0-9A-Za-z])", quote(q, item));
    struct rtmd_customer *c = ps->cust;
    struct rtmd_app *a = app_get(ps, item);
    /* A customer's apps all come from its own section, so a repeat is always
     * the app's latest owner: O(1) instead of a scan. */
    if (a->n_owners && a->owners[a->n_owners - 1] == c)
        return 0;
    a->owners = grow_for(a->owners, a->n_owners, sizeof(*a->owners));
    a->owners[a->n_owners++] = c;
    c->apps = grow_for(c->apps, c->n_apps, sizeof(*c->apps));
    c->apps[c->n_apps++] = a;
    return 0;
}

static int set_list(struct parser *ps, const struct opt *o, struct rtmd_str v)
{
    size_t i = 0;
    while (i < v.len) {
        size_t j = i;
        while (j < v.len && v.p[j] != ',')
            j++;
        struct rtmd_str item = trim(rtmd_str_make(v.p + i, j - i));
        if (item.len) {
            int rc = o->type == T_LISTEN ? add_listener(ps, o, item) : add_app(ps, o, item);
            if (rc)
                return rc;
        }
        i = j + 1;
    }
    return 0;
}

static int set_choice(struct parser *ps, const struct opt *o, struct rtmd_str v)
{
    for (const struct choice *c = o->choices; c->name; c++) {
        if (!ascii_ieq(v, c->name))
            continue;
        /* Keys of an [app:] section are fields of that app. */
        char *base = o->section == SEC_APP ? (char *)ps->app : (char *)ps->cfg;
        if (o->type == T_BOOL) {
            *(bool *)(base + o->offset) = c->value != 0;
        } else {
            int value = c->value;
            memcpy(base + o->offset, &value, sizeof(value));
        }
        return 0;
    }
    char q[QUOTE_MAX], list[160];
    size_t n = 0;
    for (const struct choice *c = o->choices; c->name && n < sizeof(list) - 16; c++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", n ? ", " : "", c->name);
    return config_fail(ps, ps->lineno, o->name, "must be one of %s (got %s)", list, quote(q, v));
}

/* The line that records where o was first set, for duplicate detection. */
static int *line_slot(struct parser *ps, const struct opt *o)
{
    if (o->section == SEC_CUSTOMER)
        return &ps->cust_lines[ps->cfg->n_customers - 1].keys[opt_slot(o)];
    if (o->section == SEC_APP)
        return &ps->app_lines[ps->app->index].keys[opt_slot(o)];
    return &ps->opt_line[opt_index(o)];
}

/* Applies one value (a key = value line, a continuation line, or a default). */
static int set_value(struct parser *ps, const struct opt *o, struct rtmd_str v, bool continuation)
{
    struct rtmd_config *cfg = ps->cfg;
    int *first = line_slot(ps, o);
    char q[QUOTE_MAX];

    if (!opt_is_list(o)) {
        if (continuation)
            return config_fail(
                ps, ps->lineno, o->name,
                "unexpected continuation line (only lists continue on indented lines)");
        if (*first)
            return config_fail(ps, ps->lineno, o->name, "set twice in %s (first at line %d)",
                               ps->heading, *first);
        if (v.len == 0)
            return config_fail(ps, ps->lineno, o->name, "missing value");
    } else if (!continuation && *first == 0 && o->type == T_LISTEN) {
        /* The file's listen replaces the default; later lines add to it. */
        cfg->n_listeners = 0;
        cfg->n_regions = 0;
    }
    if (*first == 0)
        *first = ps->lineno;

    switch (o->type) {
    case T_U32: {
        uint64_t n;
        int rc = rtmd_str_to_u64(v, UINT32_MAX, &n);
        if (rc == -EINVAL && v.len > 0 && strspn(v.p, "0123456789") == v.len)
            rc = -ERANGE; /* too many digits */
        if (rc == -EINVAL)
            return config_fail(ps, ps->lineno, o->name, "must be a whole number (got %s)",
                               quote(q, v));
        if (rc || n < o->min || n > o->max)
            return config_fail(ps, ps->lineno, o->name, "must be %" PRIu32 "..%" PRIu32 " (got %s)",
                               o->min, o->max, quote(q, v));
        *u32_field(cfg, o) = (uint32_t)n;
        return 0;
    }
    case T_BOOL:
    case T_ENUM: return set_choice(ps, o, v);
    case T_STRING: {
        if (v.len < o->min || v.len > o->max)
            return config_fail(ps, ps->lineno, o->name, "must be %" PRIu32 "..%" PRIu32 " bytes",
                               o->min, o->max);
        if (o->validate) {
            int rc = o->validate(ps, o, v);
            if (rc)
                return rc;
        }
        char **field = (char **)(void *)((char *)cfg + o->offset);
        rtmd_free(*field);
        *field = rtmd_strndup(v.p, v.len);
        return 0;
    }
    case T_LISTEN:
    case T_APPS: return set_list(ps, o, v);
    case T_SECRET: {
        bool ok = v.len >= SECRET_MIN && v.len <= SECRET_MAX;
        for (size_t i = 0; ok && i < v.len; i++)
            ok = v.p[i] > 0x20 && v.p[i] < 0x7f;
        /* The secret itself is never echoed. */
        if (!ok)
            return config_fail(ps, ps->lineno, o->name,
                               "must be %d..%d printable ASCII characters without spaces (got %zu "
                               "bytes)",
                               SECRET_MIN, SECRET_MAX, v.len);
        ps->cust->secret = rtmd_strndup(v.p, v.len);
        return 0;
    }
    case T_CERT: {
        /* Like the secret, the certificate is never echoed. */
        if (v.len != 32)
            return config_fail(ps, ps->lineno, o->name, "must be 32 hex characters (got %zu)",
                               v.len);
        if (!rtmd_certificate_valid(v)) {
            size_t bad = strspn(v.p, "0123456789abcdefABCDEF");
            return config_fail(ps, ps->lineno, o->name,
                               "must be 32 hex characters (character %zu is not [0-9a-fA-F])",
                               bad + 1);
        }
        memcpy(ps->app->certificate, v.p, 32);
        ps->app->certificate[32] = '\0';
        ps->app->has_certificate = true;
        return 0;
    }
    }
    return config_fail(ps, ps->lineno, o->name, "internal error: bad type");
}

/* ---- sections ----------------------------------------------------------- */

static int open_section(struct parser *ps, struct rtmd_str name)
{
    struct rtmd_config *cfg = ps->cfg;
    int line = ps->lineno;
    char e[128];
    snprintf(ps->heading, sizeof(ps->heading), "[%s]", esc(e, sizeof(e), name));
    ps->sect = SEC_NONE;
    ps->cust = NULL;
    ps->app = NULL;
    ps->prev_opt = NULL;

    for (int s = SEC_SERVER; s <= SEC_LIMITS; s++) {
        if (!rtmd_str_eq_cstr(name, sections[s].name))
            continue;
        if (ps->sect_line[s])
            return config_fail(ps, line, ps->heading, "section appears twice (first at line %d)",
                               ps->sect_line[s]);
        ps->sect_line[s] = line;
        ps->sect = (enum section)s;
        return 0;
    }

    if (has_prefix(name, "customer:")) {
        struct rtmd_str id = rtmd_str_make(name.p + 9, name.len - 9);
        if (!name_valid(id, CUSTOMER_ID_MAX))
            return config_fail(ps, line, ps->heading,
                               "customer ID must be 1..%d characters [A-Za-z0-9_-]",
                               CUSTOMER_ID_MAX);
        struct rtmd_customer *c = rtmd_hashmap_get(&cfg->customers_by_id, id);
        if (c) {
            size_t i = 0;
            while (cfg->customers[i] != c)
                i++;
            return config_fail(ps, line, ps->heading, "section appears twice (first at line %d)",
                               ps->cust_lines[i].section);
        }
        c = rtmd_calloc(1, sizeof(*c));
        c->id = rtmd_strndup(id.p, id.len);
        cfg->customers = grow_for(cfg->customers, cfg->n_customers, sizeof(*cfg->customers));
        ps->cust_lines = grow_for(ps->cust_lines, cfg->n_customers, sizeof(*ps->cust_lines));
        memset(&ps->cust_lines[cfg->n_customers], 0, sizeof(*ps->cust_lines));
        ps->cust_lines[cfg->n_customers].section = line;
        cfg->customers[cfg->n_customers++] = c;
        rtmd_hashmap_put(&cfg->customers_by_id, rtmd_str_make(c->id, id.len), c);
        ps->cust = c;
        ps->sect = SEC_CUSTOMER;
        return 0;
    }

    if (has_prefix(name, "app:")) {
        struct rtmd_str id = rtmd_str_make(name.p + 4, name.len - 4);
        if (!rtmd_appid_valid(id))
            return config_fail(ps, line, ps->heading, "App ID must be 32 characters [0-9A-Za-z]");
        struct rtmd_app *a = app_get(ps, id);
        if (ps->app_lines[a->index].section)
            return config_fail(ps, line, ps->heading, "section appears twice (first at line %d)",
                               ps->app_lines[a->index].section);
        ps->app_lines[a->index].section = line;
        ps->app = a;
        ps->sect = SEC_APP;
        return 0;
    }

    return config_fail(ps, line, ps->heading,
                       "unknown section (expected [server], [store], [limits], [customer:ID] or "
                       "[app:APPID])");
}

/* ---- the reader and the handler that inih calls ------------------------- */

/* The KEY of a message about a whole line: the key it sets, the key it
 * continues, or the section it is in. */
static const char *line_key(struct parser *ps, const char *s, size_t len, char *out, size_t outlen)
{
    size_t i = 0;
    while (i < len && is_space(s[i]))
        i++;
    bool indented = i > 0;
    if (indented && ps->have_prev && ps->prev_opt)
        return ps->prev_opt->name;
    size_t k = i;
    while (k < len && k - i < 48 && (name_char(s[k]) || s[k] == '.'))
        k++;
    size_t kend = k;
    while (k < len && (s[k] == ' ' || s[k] == '\t'))
        k++;
    if (kend > i && k < len && (s[k] == '=' || s[k] == ':'))
        return esc(out, outlen, rtmd_str_make(s + i, kend - i));
    return ps->heading;
}

/* Classifies a normalised line the way inih will (comment, continuation,
 * [section], key = value), opening sections and catching syntax errors. */
static int classify(struct parser *ps, const char *line, size_t len)
{
    char q[QUOTE_MAX];
    size_t i = 0, e = len;
    while (i < len && is_space(line[i]))
        i++;
    while (e > i && is_space(line[e - 1]))
        e--;
    if (i == e || line[i] == ';' || line[i] == '#')
        return 0;
    if (ps->have_prev && i > 0) {
        ps->continuation = true;
        ps->expect_call = true;
        return 0;
    }
    struct rtmd_str text = rtmd_str_make(line + i, e - i);
    if (line[i] == '[') {
        const char *rb = memchr(text.p, ']', text.len);
        if (!rb)
            return config_fail(ps, ps->lineno, ps->heading, "%s: missing ']'", quote(q, text));
        if (rb != text.p + text.len - 1) {
            char e2[128];
            return config_fail(
                ps, ps->lineno,
                esc(e2, sizeof(e2), rtmd_str_make(text.p, (size_t)(rb - text.p) + 1)),
                "text after ']' (comments start with \" ;\")");
        }
        ps->have_prev = false;
        return open_section(ps, rtmd_str_make(text.p + 1, text.len - 2));
    }
    /* inih splits at the first '=' or ':'; rtmd's syntax is key = value
     * with a plain key, so "key: value" and "key value" fail here clearly. */
    size_t sep = 0;
    while (sep < text.len && text.p[sep] != '=' && text.p[sep] != ':')
        sep++;
    struct rtmd_str key = trim(rtmd_str_make(text.p, sep));
    bool plain = key.len > 0 && sep < text.len && text.p[sep] == '=';
    for (size_t k = 0; plain && k < key.len; k++)
        plain = name_char(key.p[k]) || key.p[k] == '.';
    if (!plain)
        return config_fail(ps, ps->lineno, ps->heading, "expected \"key = value\", got %s",
                           quote(q, text));
    ps->have_prev = true;
    ps->expect_call = true;
    ps->line_name = key;
    return 0;
}

/* The mirror of inih's line classification must agree with inih: a line
 * that should have reached handler() and did not is an internal error
 * (it would mean another inih version reads lines differently). */
static int check_called(struct parser *ps)
{
    if (!ps->expect_call)
        return 0;
    return config_fail(ps, ps->lineno, ps->heading,
                       "internal error: inih did not read this line as expected");
}

/* inih's fgets-like reader: hands over the next line, checked and with its
 * inline comment removed, or NULL at the end or after an error. */
static char *reader(char *str, int num, void *stream)
{
    struct parser *ps = stream;
    if (ps->failed || check_called(ps) || ps->p >= ps->end || num < 3)
        return NULL;
    const char *s = ps->p;
    const char *nl = memchr(s, '\n', (size_t)(ps->end - s));
    size_t len = nl ? (size_t)(nl - s) : (size_t)(ps->end - s);
    ps->p = nl ? nl + 1 : ps->end;
    ps->lineno++;
    ps->continuation = false;
    if (len && s[len - 1] == '\r')
        len--;

    char k[64];
    /* inih's buffer holds num bytes: the line, '\n' and NUL. */
    size_t max = RTMD_MIN((size_t)RTMD_CONFIG_LINE_MAX, (size_t)num - 2);
    if (len > max) {
        config_fail(ps, ps->lineno, line_key(ps, s, RTMD_MIN(len, (size_t)64), k, sizeof(k)),
                    "line is longer than %zu bytes", max);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            config_fail(ps, ps->lineno, line_key(ps, s, i, k, sizeof(k)),
                        "control character \\x%02x in line", c);
            return NULL;
        }
    }
    /* Inline comment: ';' after whitespace, as inih defines it. */
    size_t cut = len;
    for (size_t i = 1; i < len; i++) {
        if (s[i] == ';' && (s[i - 1] == ' ' || s[i - 1] == '\t')) {
            cut = i;
            break;
        }
    }
    memcpy(str, s, cut);
    str[cut] = '\n';
    str[cut + 1] = '\0';
    if (classify(ps, str, cut))
        return NULL;
    if (ps->expect_call && !ps->continuation) /* inih will overwrite str */
        ps->line_name = rtmd_str_make(s + (ps->line_name.p - str), ps->line_name.len);
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parser *ps = user;
    (void)section; /* truncated by inih; ps->sect is the truth */
    if (ps->failed)
        return 0;
    bool expected =
        ps->expect_call && (ps->continuation ? ps->prev_opt && strcmp(name, ps->prev_opt->name) == 0
                                             : rtmd_str_eq_cstr(ps->line_name, name));
    ps->expect_call = false;
    if (!expected)
        return config_fail(ps, ps->lineno, ps->heading,
                           "internal error: inih did not read this line as expected") == 0;
    struct rtmd_str v = rtmd_str_cstr(value ? value : "");
    if (ps->continuation)
        return set_value(ps, ps->prev_opt, v, true) == 0;
    ps->prev_opt = NULL;
    char e[64];
    const char *key = esc(e, sizeof(e), rtmd_str_cstr(name));
    const struct opt *o = ps->sect == SEC_NONE ? NULL : find_opt(ps->sect, name);
    if (!o) {
        const struct opt *elsewhere = find_opt_anywhere(name);
        if (ps->sect == SEC_NONE)
            return config_fail(ps, ps->lineno, key, "key before any [section]%s%s%s",
                               elsewhere ? " (it belongs in " : "",
                               elsewhere ? sections[elsewhere->section].heading : "",
                               elsewhere ? ")" : "") == 0;
        return config_fail(ps, ps->lineno, key, "unknown key in %s%s%s%s", ps->heading,
                           elsewhere ? " (it belongs in " : "",
                           elsewhere ? sections[elsewhere->section].heading : "",
                           elsewhere ? ")" : "") == 0;
    }
    ps->prev_opt = o;
    return set_value(ps, o, v, false) == 0;
}

/* ---- loading ------------------------------------------------------------ */

/* inih's runtime options (Debian's build exposes its compile-time options
 * as globals), set for one parse and restored after it. */
struct ini_options {
    int max_line;
    bool use_stack, multiline, inline_comments, stop_on_first_error, no_value, bom;
    char *start_prefixes, *inline_prefixes;
};

static void ini_options_swap(struct ini_options *o)
{
    struct ini_options cur = {ini_max_line,
                              ini_use_stack,
                              ini_allow_multiline,
                              ini_allow_inline_comments,
                              ini_stop_on_first_error,
                              ini_allow_no_value,
                              ini_allow_bom,
                              ini_start_comment_prefixes,
                              ini_inline_comment_prefixes};
    ini_max_line = o->max_line;
    ini_use_stack = o->use_stack;
    ini_allow_multiline = o->multiline;
    ini_allow_inline_comments = o->inline_comments;
    ini_stop_on_first_error = o->stop_on_first_error;
    ini_allow_no_value = o->no_value;
    ini_allow_bom = o->bom;
    ini_start_comment_prefixes = o->start_prefixes;
    ini_inline_comment_prefixes = o->inline_prefixes;
    *o = cur;
}

static void apply_defaults(struct parser *ps)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &options[i];
        if (o->def && o->section <= SEC_LIMITS)
            set_value(ps, o, rtmd_str_cstr(o->def), false);
    }
}

static const struct opt *opt_by_name(const char *name)
{
    const struct opt *o = find_opt_anywhere(name);
    if (!o)
        abort(); /* a rule names a key that is not in the table */
    return o;
}

/* Checks that need the whole file. */
static void finish(struct parser *ps)
{
    struct rtmd_config *cfg = ps->cfg;
    const struct opt *listen = find_opt(SEC_SERVER, "listen");
    if (cfg->n_listeners == 0) {
        config_fail(ps, ps->opt_line[opt_index(listen)], listen->name, "no listener given");
        return;
    }

    const struct opt *cert = find_opt(SEC_SERVER, "tls_cert");
    const struct opt *key = find_opt(SEC_SERVER, "tls_key");
    if (cfg->tls_cert && !cfg->tls_key) {
        config_fail(ps, ps->opt_line[opt_index(cert)], cert->name,
                    "tls_key is missing (give both or neither)");
        return;
    }
    if (cfg->tls_key && !cfg->tls_cert) {
        config_fail(ps, ps->opt_line[opt_index(key)], key->name,
                    "tls_cert is missing (give both or neither)");
        return;
    }

    if (cfg->reuse_port && cfg->backend != RTMD_STORE_REDIS) {
        const struct opt *rp = find_opt(SEC_SERVER, "reuse_port");
        config_fail(ps, ps->opt_line[opt_index(rp)], rp->name,
                    "needs backend = redis (the embedded store is one node: one database, one "
                    "process)");
        return;
    }
    cfg->node_id = rtmd_config_node_number(cfg->node_name);

    for (size_t i = 0; i < RTMD_ARRAY_SIZE(rules); i++) {
        const struct rule *r = &rules[i];
        const struct opt *a = opt_by_name(r->key), *b = opt_by_name(r->other);
        uint64_t av = *u32_field(cfg, a), bv = *u32_field(cfg, b);
        uint64_t bound = bv + r->add;
        bool ok = r->op == RULE_LE ? av <= bound : av >= bound;
        if (ok)
            continue;
        char plus[24] = "";
        if (r->add)
            snprintf(plus, sizeof(plus), " + %" PRIu32, r->add);
        if (ps->opt_line[opt_index(a)] || !ps->opt_line[opt_index(b)]) {
            config_fail(ps, ps->opt_line[opt_index(a)], a->name, "must be %s %s%s (%" PRIu64 ")",
                        r->op == RULE_LE ? "at most" : "at least", b->name, plus, bound);
        } else {
            /* Only the other key was set: say what it must be instead. */
            char minus[24] = "";
            if (r->add)
                snprintf(minus, sizeof(minus), " - %" PRIu32, r->add);
            uint64_t need = av >= r->add ? av - r->add : 0;
            config_fail(ps, ps->opt_line[opt_index(b)], b->name, "must be %s %s%s (%" PRIu64 ")",
                        r->op == RULE_LE ? "at least" : "at most", a->name, minus, need);
        }
        return;
    }

    for (size_t i = 0; i < cfg->n_customers; i++) {
        struct rtmd_customer *c = cfg->customers[i];
        for (size_t j = 0; j < N_OPTS; j++) {
            const struct opt *o = &options[j];
            if (o->section != SEC_CUSTOMER || !o->required || ps->cust_lines[i].keys[opt_slot(o)])
                continue;
            char e[128], h[160];
            snprintf(h, sizeof(h), "[customer:%s]", esc(e, sizeof(e), rtmd_str_cstr(c->id)));
            config_fail(ps, ps->cust_lines[i].section, h, "missing required key %s", o->name);
            return;
        }
    }
}

uint32_t rtmd_config_node_number(const char *name)
{
    if (!name)
        return 1;
    uint64_t n;
    if (rtmd_str_to_u64(rtmd_str_cstr(name), 999999, &n) == 0 && n >= 1)
        return (uint32_t)n;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return 1 + h % 999999;
}

static struct rtmd_config *load_text(const char *name, const char *text, size_t len, char *err,
                                     size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    struct rtmd_config *cfg = rtmd_calloc(1, sizeof(*cfg));
    cfg->path = rtmd_strdup(name);
    rtmd_hashmap_init(&cfg->apps_by_id);
    rtmd_hashmap_init(&cfg->customers_by_id);

    struct parser ps;
    memset(&ps, 0, sizeof(ps));
    ps.cfg = cfg;
    ps.name = name;
    ps.err = err;
    ps.errlen = errlen;
    snprintf(ps.heading, sizeof(ps.heading), "(before any section)");
    apply_defaults(&ps);

    if (!ps.failed && len > RTMD_CONFIG_FILE_MAX)
        config_fail(&ps, 0, "(file)", "larger than %d bytes", RTMD_CONFIG_FILE_MAX);
    if (!ps.failed) {
        if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) { /* UTF-8 BOM */
            text += 3;
            len -= 3;
        }
        ps.p = text;
        ps.end = text + len;
        static char start_prefixes[] = ";#", inline_prefixes[] = ";";
        struct ini_options opts = {RTMD_CONFIG_LINE_MAX + 3,
                                   true,  /* use_stack: the line buffer is ini_max_line */
                                   true,  /* multiline */
                                   true,  /* inline comments (already stripped) */
                                   true,  /* stop on first error */
                                   false, /* no_value */
                                   false, /* bom: stripped above */
                                   start_prefixes,
                                   inline_prefixes};
        ini_options_swap(&opts);
        int rc = ini_parse_stream(reader, &ps, handler, &ps);
        ini_options_swap(&opts);
        if (!ps.failed)
            check_called(&ps);
        if (!ps.failed && rc != 0)
            config_fail(&ps, rc > 0 ? rc : 0, ps.heading, "%s",
                        rc == -2 ? "out of memory" : "syntax error");
        if (!ps.failed)
            finish(&ps);
    }
    rtmd_free(ps.cust_lines);
    rtmd_free(ps.app_lines);
    if (ps.failed) {
        rtmd_config_free(cfg);
        return NULL;
    }
    return cfg;
}

struct rtmd_config *rtmd_config_load_string(const char *name, const char *text, char *err,
                                            size_t errlen)
{
    return load_text(name, text, strlen(text), err, errlen);
}

struct rtmd_config *rtmd_config_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    struct rtmd_buf b;
    rtmd_buf_init(&b, RTMD_CONFIG_FILE_MAX);
    char chunk[16384];
    int rc = 0;
    size_t n;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = rtmd_buf_append(&b, chunk, n);
    int read_errno = ferror(f) ? errno : 0;
    fclose(f);
    struct rtmd_config *cfg = NULL;
    if (read_errno) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(read_errno));
    } else if (rc) {
        if (err && errlen && rc == RTMD_ELIMIT)
            snprintf(err, errlen, "%s: cannot read: larger than %d bytes", path,
                     RTMD_CONFIG_FILE_MAX);
        else if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: %s", path, rtmd_strerror(rc));
    } else {
        cfg = load_text(path, b.data ? b.data : "", b.len, err, errlen);
    }
    rtmd_buf_free(&b);
    return cfg;
}

void rtmd_config_free(struct rtmd_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_apps; i++) {
        rtmd_free(cfg->apps[i]->owners);
        rtmd_free(cfg->apps[i]);
    }
    rtmd_free(cfg->apps);
    for (size_t i = 0; i < cfg->n_customers; i++) {
        struct rtmd_customer *c = cfg->customers[i];
        rtmd_free(c->id);
        rtmd_free(c->secret);
        rtmd_free(c->apps);
        rtmd_free(c);
    }
    rtmd_free(cfg->customers);
    rtmd_hashmap_free(&cfg->apps_by_id);
    rtmd_hashmap_free(&cfg->customers_by_id);
    rtmd_free(cfg->path);
    rtmd_free(cfg->tls_cert);
    rtmd_free(cfg->tls_key);
    rtmd_free(cfg->data_dir);
    rtmd_free(cfg->ready_file);
    rtmd_free(cfg->log_file);
    rtmd_free(cfg->redis_url);
    rtmd_free(cfg->node_name);
    rtmd_free(cfg);
}

struct rtmd_app *rtmd_config_app(const struct rtmd_config *cfg, struct rtmd_str id)
{
    return rtmd_hashmap_get(&cfg->apps_by_id, id);
}

struct rtmd_customer *rtmd_config_customer(const struct rtmd_config *cfg, struct rtmd_str id)
{
    return rtmd_hashmap_get(&cfg->customers_by_id, id);
}

int rtmd_config_region(const struct rtmd_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_regions; i++)
        if (strcmp(cfg->regions[i], name) == 0)
            return (int)i;
    return -1;
}

/* ---- docs/CONFIG.md and the sample config, from the table --------------- */

static const char *type_name(const struct opt *o)
{
    if (o->type_doc)
        return o->type_doc;
    switch (o->type) {
    case T_U32: return "integer";
    case T_BOOL: return "boolean";
    case T_ENUM: return "enum";
    default: return "string";
    }
}

static const struct rule *rule_of(const struct opt *o)
{
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(rules); i++)
        if (strcmp(rules[i].key, o->name) == 0)
            return &rules[i];
    return NULL;
}

/* The bounds column: min..max, a rule, the choices, or the table's text. */
static int write_bounds(struct rtmd_buf *out, const struct opt *o)
{
    if (o->bounds)
        return rtmd_buf_append_cstr(out, o->bounds);
    switch (o->type) {
    case T_U32: {
        const struct rule *r = rule_of(o);
        if (r && r->op == RULE_LE)
            return rtmd_buf_printf(out, "%" PRIu32 "..`%s`", o->min, r->other);
        if (r && r->add)
            return rtmd_buf_printf(out, "`%s` + %" PRIu32 "..%" PRIu32, r->other, r->add, o->max);
        if (r)
            return rtmd_buf_printf(out, "`%s`..%" PRIu32, r->other, o->max);
        return rtmd_buf_printf(out, "%" PRIu32 "..%" PRIu32, o->min, o->max);
    }
    case T_BOOL:
        return rtmd_buf_append_cstr(out, "`on`/`off`, also `true`/`false`, `yes`/`no`, `1`/`0`");
    case T_ENUM: {
        int rc = 0;
        for (const struct choice *c = o->choices; c->name && !rc; c++)
            rc = rtmd_buf_printf(out, "%s`%s`", c == o->choices ? "" : ", ", c->name);
        return rc;
    }
    case T_STRING: return rtmd_buf_printf(out, "%" PRIu32 "..%" PRIu32 " bytes", o->min, o->max);
    default: return 0;
    }
}

int rtmd_config_write_reference(struct rtmd_buf *out)
{
    int rc = rtmd_buf_append_cstr(
        out, "<!-- BEGIN generated reference: from the table in src/core/config.c; regenerate "
             "with `build/tests/test_config --print-reference` -->\n");
    for (int s = SEC_SERVER; s < SEC_COUNT && !rc; s++) {
        rc = rtmd_buf_printf(out,
                             "\n### `%s`\n\n%s\n\n| key | type | default | bounds | meaning |\n"
                             "|---|---|---|---|---|\n",
                             sections[s].heading, sections[s].doc);
        for (size_t i = 0; i < N_OPTS && !rc; i++) {
            const struct opt *o = &options[i];
            if (o->section != (enum section)s)
                continue;
            rc = rtmd_buf_printf(out, "| `%s` | %s | ", o->name, type_name(o));
            if (!rc)
                rc = o->def ? rtmd_buf_printf(out, "`%s`", o->def)
                            : rtmd_buf_append_cstr(out, o->required ? "required" : "none");
            if (!rc)
                rc = rtmd_buf_append_cstr(out, " | ");
            if (!rc)
                rc = write_bounds(out, o);
            if (!rc)
                rc = rtmd_buf_printf(out, " | %s |\n", o->doc);
        }
    }
    if (!rc)
        rc = rtmd_buf_append_cstr(out, "\n<!-- END generated reference -->\n");
    return rc;
}

/* A value can be written into an INI line only if it reads back the same:
 * not empty, no control bytes, no surrounding spaces, no " ;" comment. */
static bool ini_writable(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > RTMD_CONFIG_LINE_MAX - 64 || is_space(v[0]) || is_space(v[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
        if (c == ';' && i > 0 && is_space(v[i - 1]))
            return false;
    }
    return true;
}

/* Appends docs text as an INI comment line, without Markdown's backticks. */
static int write_comment(struct rtmd_buf *out, const char *prefix, const char *text, size_t len)
{
    int rc = rtmd_buf_append_cstr(out, prefix);
    for (size_t i = 0; i < len && !rc; i++)
        if (text[i] != '`')
            rc = rtmd_buf_append_byte(out, text[i]);
    return rc ? rc : rtmd_buf_append_byte(out, '\n');
}

/* One [server]/[store]/[limits] key: its meaning and bounds as comments,
 * then `key = value` when given, else the default commented out. */
static int write_sample_key(struct rtmd_buf *out, const struct opt *o, const char *value)
{
    struct rtmd_buf bounds;
    rtmd_buf_init(&bounds, 1024);
    int rc = write_bounds(&bounds, o);
    if (!rc)
        rc = rtmd_buf_append_byte(out, '\n');
    if (!rc)
        rc = write_comment(out, "# ", o->doc, strlen(o->doc));
    if (!rc)
        rc = write_comment(out, "# Bounds: ", bounds.data ? bounds.data : "", bounds.len);
    rtmd_buf_free(&bounds);
    if (rc)
        return rc;
    if (value)
        return rtmd_buf_printf(out, "%s = %s\n", o->name, value);
    return rtmd_buf_printf(out, ";%s =%s%s\n", o->name, o->def ? " " : "", o->def ? o->def : "");
}

int rtmd_config_write_sample(struct rtmd_buf *out, const char *listen, const char *data_dir,
                             const char *customer_id, const char *customer_secret,
                             const char *app_id, const char *app_certificate)
{
    const char *given[] = {listen, data_dir, customer_id, customer_secret, app_id, app_certificate};
    for (size_t i = 0; i < RTMD_ARRAY_SIZE(given); i++)
        if (given[i] && !ini_writable(given[i]))
            return -EINVAL;
    if (customer_id && !customer_secret)
        return -EINVAL;

    size_t start = out->len;
    int rc = rtmd_buf_append_cstr(
        out, "# rtmd configuration. Every key is described in docs/CONFIG.md.\n"
             "# Lines that start with '#' or ';' are comments, and so is the rest of a line\n"
             "# from \" ;\". A key commented out with ';' shows its default.\n"
             "# Lists are comma-separated; they may go on over indented lines.\n");
    for (int s = SEC_SERVER; s <= SEC_LIMITS && !rc; s++) {
        rc = rtmd_buf_printf(out, "\n[%s]\n", sections[s].name);
        if (!rc)
            rc = write_comment(out, "# ", sections[s].doc, strlen(sections[s].doc));
        for (size_t i = 0; i < N_OPTS && !rc; i++) {
            const struct opt *o = &options[i];
            if (o->section != (enum section)s)
                continue;
            const char *value = NULL;
            if (strcmp(o->name, "listen") == 0)
                value = listen;
            else if (strcmp(o->name, "data_dir") == 0)
                value = data_dir;
            rc = write_sample_key(out, o, value);
        }
    }
    if (!rc && customer_id) {
        rc = rtmd_buf_printf(out, "\n[customer:%s]\nsecret = %s\n", customer_id, customer_secret);
        if (!rc && app_id)
            rc = rtmd_buf_printf(out, "apps = %s\n", app_id);
    }
    if (!rc && app_id) {
        if (app_certificate)
            rc = rtmd_buf_printf(out, "\n[app:%s]\ncertificate = %s\n", app_id, app_certificate);
        else
            rc = rtmd_buf_printf(
                out, "\n[app:%s]   ; no certificate: clients log in with no token\n", app_id);
    }
    if (rc)
        return rc;
    /* The sample must load: IDs, addresses and paths are checked by the parser. */
    struct rtmd_config *check = load_text("(sample)", out->data + start, out->len - start, NULL, 0);
    if (!check) {
        out->len = start;
        return -EINVAL;
    }
    rtmd_config_free(check);
    return 0;
}
