/*
 * config_read.c — the one reader of rtmd's configuration.
 *
 * A config is built in four steps, each from the table (config_table.c):
 *   1. the defaults, each parsed from its text as if it were in a file;
 *   2. the INI file, line by line;
 *   3. the environment: RTMD_<SECTION>_<KEY> for the keys of [server],
 *      [store] and [limits], each replacing the file's value;
 *   4. the checks that need the whole config (key pairs, required keys).
 * Parsing stops at the first error, whose message names where the value
 * came from: "FILE:LINE: KEY: what is wrong", or "environment VAR: KEY: ...".
 *
 * The INI syntax is rtmd's own reader's (it used to hand lines to inih, and
 * then had to check that inih read them the same way):
 *  - a line is a comment (first non-blank ';' or '#'), blank, a [section],
 *    key = value, or an indented continuation of the previous key (lists);
 *  - " ;" (a space or tab, then ';') starts an inline comment anywhere;
 *  - lines longer than RTMD_CONFIG_LINE_MAX and control bytes (NUL
 *    included, tab excepted) are errors, never cut or skipped; a UTF-8
 *    byte-order mark and CRLF line ends are accepted.
 *
 * Loading has no side effect: it reads the file and the environment it is
 * given and returns a new config (or NULL), so a reload can build a new
 * config beside the running one. Nothing here is global.
 */
#include "core/config_internal.h"
#include "core/redis_url.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/ids.h"

#define N_OPTS   rtmd_config_n_options
#define ENV_NAME 64 /* bytes of an RTMD_<SECTION>_<KEY> name, with the NUL */

extern char **environ;

/* ---- parser state ------------------------------------------------------- */

struct obj_lines {
    int section;                        /* line of the [customer:]/[app:] header; 0: implicit */
    int keys[RTMD_CONFIG_OBJ_KEYS_MAX]; /* line each key was first set */
};

struct parser {
    struct rtmd_config *cfg;
    const char *name; /* file name in messages */
    char *err;
    size_t errlen;
    bool failed;

    const char *p, *end; /* unread text */
    int lineno;          /* line being read; 0 while applying defaults */
    const char *env_var; /* the variable being applied (messages name it), or NULL */
    char line[RTMD_CONFIG_LINE_MAX + 1]; /* the current line or variable, NUL-terminated */

    bool have_prev;             /* an indented line continues the previous key */
    const struct opt *prev_opt; /* key of the last key = value line */

    enum section sect;
    char heading[160]; /* "[server]", "[customer:ID]", ... (escaped) for messages */
    struct rtmd_customer *cust;
    struct obj_lines *cust_lines; /* parallel to cfg->customers */
    struct rtmd_app *app;
    struct obj_lines *app_lines; /* parallel to cfg->apps */
    struct rtmd_webhook_config *hook;
    struct obj_lines *hook_lines; /* parallel to cfg->webhooks */
    int sect_line[SEC_COUNT];
    int *opt_line;        /* [N_OPTS], fixed sections: line of first setting, 0: default */
    const char **opt_env; /* [N_OPTS]: the variable that set the key, or NULL */
};

/* ---- small helpers ------------------------------------------------------ */

bool rtmd_config_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static struct rtmd_str trim(struct rtmd_str s)
{
    while (s.len && rtmd_config_is_space(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len && rtmd_config_is_space(s.p[s.len - 1]))
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

static bool has_prefix(struct rtmd_str s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.len >= n && memcmp(s.p, prefix, n) == 0;
}

/* Bytes at the start of s that are in set (s need not end in a NUL). */
static size_t span(struct rtmd_str s, const char *set)
{
    size_t n = 0;
    while (n < s.len && s.p[n] != '\0' && strchr(set, s.p[n]))
        n++;
    return n;
}

/* file text echoed in messages, bytes outside printable ASCII as \xNN */
static const char *esc(char *out, size_t outlen, struct rtmd_str s)
{
    return rtmd_escape(out, outlen, s, "");
}

/* A quoted, escaped copy of file text for messages. */
#define QUOTE_MAX RTMD_CONFIG_QUOTE_MAX
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

/* Records the first error: "FILE:LINE: KEY: msg" (no line: "FILE: KEY: msg";
 * while applying a variable: "environment VAR: KEY: msg"). */
__attribute__((format(printf, 4, 0))) static int
config_vfail(struct parser *ps, int line, const char *key, const char *fmt, va_list ap)
{
    if (ps->failed)
        return -EINVAL;
    ps->failed = true;
    if (!ps->err || ps->errlen == 0)
        return -EINVAL;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (ps->env_var)
        snprintf(ps->err, ps->errlen, "environment %s: %s: %s", ps->env_var, key, msg);
    else if (line > 0)
        snprintf(ps->err, ps->errlen, "%s:%d: %s: %s", ps->name, line, key, msg);
    else
        snprintf(ps->err, ps->errlen, "%s: %s: %s", ps->name, key, msg);
    return -EINVAL;
}

__attribute__((format(printf, 4, 5))) static int config_fail(struct parser *ps, int line,
                                                             const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = config_vfail(ps, line, key, fmt, ap);
    va_end(ap);
    return rc;
}

int rtmd_config_fail_value(struct parser *ps, const struct opt *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = config_vfail(ps, ps->lineno, o->name, fmt, ap);
    va_end(ap);
    return rc;
}

static size_t opt_index(const struct opt *o)
{
    return (size_t)(o - rtmd_config_options);
}

/* Where a fixed-section key was set, for a message about it: returns its
 * line and makes config_fail() name its variable when the environment set
 * it (the environment wins over the file). */
static int origin(struct parser *ps, const struct opt *o)
{
    ps->env_var = ps->opt_env[opt_index(o)];
    return ps->opt_line[opt_index(o)];
}

static bool was_set(const struct parser *ps, const struct opt *o)
{
    return ps->opt_line[opt_index(o)] || ps->opt_env[opt_index(o)];
}

static bool opt_is_list(const struct opt *o)
{
    return o->type == T_LISTEN || o->type == T_APPS || o->type == T_ORIGINS || o->type == T_EVENTS;
}

/* The struct a key's offset is into: the section's object, or the config. */
static char *field_base(struct parser *ps, const struct opt *o)
{
    if (o->section == SEC_APP)
        return (char *)ps->app;
    if (o->section == SEC_WEBHOOK)
        return (char *)ps->hook;
    return (char *)ps->cfg;
}

static uint32_t *u32_field(struct rtmd_config *cfg, const struct opt *o)
{
    return (uint32_t *)(void *)((char *)cfg + o->offset);
}

/* ---- values ------------------------------------------------------------- */

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

static bool ascii_ieq(struct rtmd_str a, const char *b)
{
    return rtmd_str_ieq(a, rtmd_str_cstr(b));
}

/* ADDR:PORT (ADDR numeric IPv4 or [IPv6]) into l's host and port; item
 * (the whole list item) and form ("ADDR:PORT@REGION") are for messages. */
static int parse_addr(struct parser *ps, const struct opt *o, struct rtmd_str item,
                      struct rtmd_str hostport, const char *form, struct rtmd_listener_config *l)
{
    char q[QUOTE_MAX];
    int line = ps->lineno;
    struct rtmd_str host, port;
    int family;
    if (hostport.len && hostport.p[0] == '[') {
        const char *rb = memchr(hostport.p, ']', hostport.len);
        const char *end = hostport.p + hostport.len;
        if (!rb || rb + 1 >= end || rb[1] != ':')
            return config_fail(ps, line, o->name, "%s: expected [IPV6]:PORT%s", quote(q, item),
                               form);
        host = rtmd_str_make(hostport.p + 1, (size_t)(rb - hostport.p - 1));
        port = rtmd_str_make(rb + 2, (size_t)(end - rb - 2));
        family = AF_INET6;
    } else {
        size_t colon = hostport.len;
        while (colon > 0 && hostport.p[colon - 1] != ':')
            colon--;
        if (colon == 0)
            return config_fail(ps, line, o->name, "%s: expected ADDR:PORT%s", quote(q, item), form);
        host = rtmd_str_make(hostport.p, colon - 1);
        port = rtmd_str_make(hostport.p + colon, hostport.len - colon);
        if (memchr(host.p, ':', host.len))
            return config_fail(ps, line, o->name,
                               "%s: an IPv6 address goes in brackets, as [::1]:8443",
                               quote(q, item));
        family = AF_INET;
    }
    unsigned char addr[16];
    if (host.len == 0 || host.len >= sizeof(l->host))
        return config_fail(ps, line, o->name, "%s: not a numeric IPv4 or [IPv6] address",
                           quote(q, item));
    memcpy(l->host, host.p, host.len);
    l->host[host.len] = '\0';
    if (inet_pton(family, l->host, addr) != 1)
        return config_fail(ps, line, o->name, "%s: not a numeric %s address", quote(q, item),
                           family == AF_INET ? "IPv4 (or [IPv6])" : "IPv6");
    uint64_t pn;
    if (rtmd_str_to_u64(port, 65535, &pn) != 0)
        return config_fail(ps, line, o->name, "%s: port must be 0..65535", quote(q, item));
    l->port = (uint16_t)pn;
    return 0;
}

/* One ADDR:PORT@REGION[/tls|/plain] item of listen. Whether a listener
 * without /tls or /plain serves TLS is settled once the file is read
 * (finish()): [server] tls may come after listen. */
static int add_listener(struct parser *ps, const struct opt *o, struct rtmd_str item)
{
    struct rtmd_config *cfg = ps->cfg;
    char q[QUOTE_MAX];
    int line = ps->lineno;
    struct rtmd_listener_config l;
    memset(&l, 0, sizeof(l));
    struct rtmd_str rest = item;
    const char *slash = memchr(item.p, '/', item.len);
    if (slash) {
        rest.len = (size_t)(slash - item.p);
        struct rtmd_str suffix = rtmd_str_make(slash + 1, item.len - rest.len - 1);
        if (ascii_ieq(suffix, "tls"))
            l.tls = true;
        else if (!ascii_ieq(suffix, "plain"))
            return config_fail(ps, line, o->name, "%s: after '/' comes tls or plain",
                               quote(q, item));
        l.tls_given = true;
    }
    struct rtmd_str region = RTMD_STR_LIT("default");
    struct rtmd_str hostport = rest;
    const char *at = memchr(rest.p, '@', rest.len);
    if (at) {
        hostport.len = (size_t)(at - rest.p);
        region = rtmd_str_make(at + 1, rest.len - hostport.len - 1);
        if (!name_valid(region, RTMD_REGION_MAX - 1))
            return config_fail(ps, line, o->name,
                               "%s: region must be 1..%d characters [A-Za-z0-9_-]", quote(q, item),
                               RTMD_REGION_MAX - 1);
    }
    int rc = parse_addr(ps, o, item, hostport, "@REGION", &l);
    if (rc)
        return rc;
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
    rc = region_index(ps, o, item, region, &l.region_index);
    if (rc)
        return rc;
    cfg->listeners[cfg->n_listeners++] = l;
    return 0;
}

int rtmd_config_validate_admin_listen(struct parser *ps, const struct opt *o, struct rtmd_str v)
{
    struct rtmd_config *cfg = ps->cfg;
    memset(&cfg->admin, 0, sizeof(cfg->admin));
    cfg->admin_enabled = false;
    if (ascii_ieq(v, "off"))
        return 0;
    if (memchr(v.p, '@', v.len) || memchr(v.p, '/', v.len)) {
        char q[QUOTE_MAX];
        return config_fail(ps, ps->lineno, o->name,
                           "%s: expected ADDR:PORT (no region; always plain HTTP)", quote(q, v));
    }
    int rc = parse_addr(ps, o, v, v, "", &cfg->admin);
    if (rc)
        return rc;
    snprintf(cfg->admin.region, sizeof(cfg->admin.region), "admin");
    cfg->admin_enabled = true;
    return 0;
}

static bool scheme_char(char c, bool first)
{
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    return alpha || (!first && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* One item of allowed_origins or cors_origins: `*`, or an origin as a
 * browser sends it in Origin (scheme://host[:port], no path), kept in lower
 * case with a default port (http 80, https 443) left out, as browsers do. */
static int add_origin(struct parser *ps, const struct opt *o, struct rtmd_str item)
{
    struct rtmd_origins *list = (struct rtmd_origins *)(void *)((char *)ps->cfg + o->offset);
    char q[QUOTE_MAX];
    if (rtmd_str_eq_cstr(item, "*")) {
        list->any = true;
        return 0;
    }
    size_t i = 0;
    while (i < item.len && scheme_char(item.p[i], i == 0))
        i++;
    bool ok = i > 0 && item.len - i > 3 && memcmp(item.p + i, "://", 3) == 0;
    struct rtmd_str scheme = rtmd_str_make(item.p, i);
    size_t host_at = i + 3, h = host_at;
    if (ok && item.p[h] == '[') {
        h++;
        while (h < item.len && item.p[h] && strchr("0123456789abcdefABCDEF:.", item.p[h]))
            h++;
        ok = h < item.len && item.p[h] == ']' && h > host_at + 1;
        h++;
    } else {
        while (ok && h < item.len && (name_char(item.p[h]) || item.p[h] == '.'))
            h++;
        ok = ok && h > host_at;
    }
    size_t host_end = h;
    uint64_t port = 0;
    if (ok && h < item.len) {
        ok = item.p[h] == ':' &&
             rtmd_str_to_u64(rtmd_str_make(item.p + h + 1, item.len - h - 1), 65535, &port) == 0 &&
             port > 0;
    }
    if (!ok || item.len > RTMD_ORIGIN_MAX)
        return config_fail(ps, ps->lineno, o->name,
                           "%s: an origin is scheme://host[:port] of at most %d bytes, with no "
                           "path or trailing '/' (or * for any)",
                           quote(q, item), RTMD_ORIGIN_MAX);
    bool default_port =
        (port == 80 && ascii_ieq(scheme, "http")) || (port == 443 && ascii_ieq(scheme, "https"));
    size_t len = default_port ? host_end : item.len;
    char *canon = rtmd_malloc(len + 1);
    for (size_t k = 0; k < len; k++)
        canon[k] = ascii_lower(item.p[k]);
    canon[len] = '\0';
    for (size_t k = 0; k < list->n; k++) {
        if (strcmp(list->items[k], canon) == 0) { /* listed twice: counts once */
            rtmd_free(canon);
            return 0;
        }
    }
    if (list->n == RTMD_ORIGINS_MAX) {
        rtmd_free(canon);
        return config_fail(ps, ps->lineno, o->name, "%s: more than %d origins", quote(q, item),
                           RTMD_ORIGINS_MAX);
    }
    list->items = grow_for(list->items, list->n, sizeof(*list->items));
    list->items[list->n++] = canon;
    return 0;
}

static void origins_clear(struct rtmd_origins *list)
{
    for (size_t i = 0; i < list->n; i++)
        rtmd_free(list->items[i]);
    rtmd_free(list->items);
    memset(list, 0, sizeof(*list));
}

const char *rtmd_origins_match(const struct rtmd_origins *list, struct rtmd_str origin)
{
    if (list->any)
        return "*";
    for (size_t i = 0; i < list->n; i++)
        if (rtmd_str_ieq(origin, rtmd_str_cstr(list->items[i])))
            return list->items[i];
    return NULL;
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

/* One App ID of a customer's apps (or of a webhook's). Repeats are ignored. */
static int add_app(struct parser *ps, const struct opt *o, struct rtmd_str item)
{
    char q[QUOTE_MAX];
    if (!rtmd_appid_valid(item))
        return config_fail(ps, ps->lineno, o->name,
                           "%s is not an App ID (32 characters [0-9A-Za-z])", quote(q, item));
    if (o->section == SEC_WEBHOOK) {
        struct rtmd_webhook_config *h = ps->hook;
        for (size_t i = 0; i < h->n_apps; i++)
            if (rtmd_str_eq_cstr(item, h->apps[i]))
                return 0;
        h->apps = grow_for(h->apps, h->n_apps, sizeof(*h->apps));
        h->apps[h->n_apps++] = rtmd_strndup(item.p, item.len);
        return 0;
    }
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

/* One event kind of a webhook's events: its bit. */
static int add_event(struct parser *ps, const struct opt *o, struct rtmd_str item)
{
    for (const struct choice *c = o->choices; c->name; c++) {
        if (rtmd_str_ieq(item, rtmd_str_cstr(c->name))) {
            *(uint32_t *)(void *)(field_base(ps, o) + o->offset) |= (uint32_t)c->value;
            return 0;
        }
    }
    char q[QUOTE_MAX];
    return config_fail(ps, ps->lineno, o->name, "%s is not user, channel or message",
                       quote(q, item));
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
            int rc = o->type == T_LISTEN    ? add_listener(ps, o, item)
                     : o->type == T_ORIGINS ? add_origin(ps, o, item)
                     : o->type == T_EVENTS  ? add_event(ps, o, item)
                                            : add_app(ps, o, item);
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
        if (!rtmd_str_ieq(v, rtmd_str_cstr(c->name)))
            continue;
        /* Keys of an [app:] section are fields of that app. */
        char *base = field_base(ps, o);
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
        return &ps->cust_lines[ps->cfg->n_customers - 1].keys[rtmd_config_opt_slot(o)];
    if (o->section == SEC_APP)
        return &ps->app_lines[ps->app->index].keys[rtmd_config_opt_slot(o)];
    if (o->section == SEC_WEBHOOK)
        return &ps->hook_lines[ps->cfg->n_webhooks - 1].keys[rtmd_config_opt_slot(o)];
    return &ps->opt_line[opt_index(o)];
}

/* Applies one value: a key = value line, a continuation line, a default, or
 * (ps->env_var set) a variable, which replaces whatever the file gave. */
static int set_value(struct parser *ps, const struct opt *o, struct rtmd_str v, bool continuation)
{
    struct rtmd_config *cfg = ps->cfg;
    int *first = line_slot(ps, o);
    char q[QUOTE_MAX];

    if (ps->env_var) {
        if (!opt_is_list(o) && v.len == 0)
            return config_fail(ps, 0, o->name, "missing value");
        if (o->type == T_LISTEN) {
            cfg->n_listeners = 0;
            cfg->n_regions = 0;
        } else if (o->type == T_ORIGINS) {
            origins_clear((struct rtmd_origins *)(void *)((char *)cfg + o->offset));
        }
        ps->opt_env[opt_index(o)] = ps->env_var;
    } else if (!opt_is_list(o)) {
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
    } else if (!continuation && *first == 0 && o->type == T_ORIGINS) {
        origins_clear((struct rtmd_origins *)(void *)((char *)cfg + o->offset));
    } else if (!continuation && *first == 0 && o->type == T_EVENTS) {
        /* The file's events replace the default. */
        *(uint32_t *)(void *)(field_base(ps, o) + o->offset) = 0;
    }
    if (*first == 0 && !ps->env_var)
        *first = ps->lineno;

    switch (o->type) {
    case T_U32: {
        uint64_t n;
        int rc = rtmd_str_to_u64(v, UINT32_MAX, &n);
        if (rc == -EINVAL && v.len > 0 && span(v, "0123456789") == v.len)
            rc = -ERANGE; /* too many digits */
        if (rc == -EINVAL)
            return config_fail(ps, ps->lineno, o->name, "must be a whole number (got %s)",
                               quote(q, v));
        if (rc || n < o->min || n > o->max)
            return config_fail(ps, ps->lineno, o->name, "must be %" PRIu32 "..%" PRIu32 " (got %s)",
                               o->min, o->max, quote(q, v));
        *(uint32_t *)(void *)(field_base(ps, o) + o->offset) = (uint32_t)n;
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
        char **field = (char **)(void *)(field_base(ps, o) + o->offset);
        rtmd_free(*field);
        *field = rtmd_strndup(v.p, v.len);
        return 0;
    }
    case T_LISTEN:
    case T_ORIGINS:
    case T_APPS:
    case T_EVENTS: return set_list(ps, o, v);
    case T_SECRET: {
        bool ok = v.len >= RTMD_CONFIG_SECRET_MIN && v.len <= RTMD_CONFIG_SECRET_MAX;
        for (size_t i = 0; ok && i < v.len; i++)
            ok = v.p[i] > 0x20 && v.p[i] < 0x7f;
        /* The secret itself is never echoed. */
        if (!ok)
            return config_fail(ps, ps->lineno, o->name,
                               "must be %d..%d printable ASCII characters without spaces (got %zu "
                               "bytes)",
                               RTMD_CONFIG_SECRET_MIN, RTMD_CONFIG_SECRET_MAX, v.len);
        ps->cust->secret = rtmd_strndup(v.p, v.len);
        return 0;
    }
    case T_CERT: {
        /* Like the secret, the certificate is never echoed. */
        if (v.len != 32)
            return config_fail(ps, ps->lineno, o->name, "must be 32 hex characters (got %zu)",
                               v.len);
        if (!rtmd_certificate_valid(v)) {
            size_t bad = span(v, "0123456789abcdefABCDEF");
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

static int set_value(struct parser *ps, const struct opt *o, struct rtmd_str v, bool continuation);

/* [webhook:NAME]: a new webhook with the table's defaults. */
static int open_webhook(struct parser *ps, struct rtmd_str name)
{
    struct rtmd_config *cfg = ps->cfg;
    int line = ps->lineno;
    if (!name_valid(name, RTMD_WEBHOOK_NAME_MAX))
        return config_fail(ps, line, ps->heading,
                           "webhook name must be 1..%d characters [A-Za-z0-9_-]",
                           RTMD_WEBHOOK_NAME_MAX);
    for (size_t i = 0; i < cfg->n_webhooks; i++)
        if (rtmd_str_eq_cstr(name, cfg->webhooks[i]->name))
            return config_fail(ps, line, ps->heading, "section appears twice (first at line %d)",
                               ps->hook_lines[i].section);
    struct rtmd_webhook_config *h = rtmd_calloc(1, sizeof(*h));
    h->name = rtmd_strndup(name.p, name.len);
    cfg->webhooks = grow_for(cfg->webhooks, cfg->n_webhooks, sizeof(*cfg->webhooks));
    ps->hook_lines = grow_for(ps->hook_lines, cfg->n_webhooks, sizeof(*ps->hook_lines));
    memset(&ps->hook_lines[cfg->n_webhooks], 0, sizeof(*ps->hook_lines));
    ps->hook_lines[cfg->n_webhooks].section = line;
    cfg->webhooks[cfg->n_webhooks++] = h;
    ps->hook = h;
    ps->sect = SEC_WEBHOOK;
    /* Defaults, applied as at start (line 0: not "set"). */
    ps->lineno = 0;
    for (size_t i = 0; i < N_OPTS && !ps->failed; i++) {
        const struct opt *o = &rtmd_config_options[i];
        if (o->section == SEC_WEBHOOK && o->def)
            set_value(ps, o, rtmd_str_cstr(o->def), false);
    }
    ps->lineno = line;
    return ps->failed ? -EINVAL : 0;
}

int rtmd_config_validate_webhook_url(struct parser *ps, const struct opt *o, struct rtmd_str v)
{
    size_t scheme = has_prefix(v, "http://") ? 7 : has_prefix(v, "https://") ? 8 : 0;
    if (!scheme)
        return rtmd_config_fail_value(ps, o, "must start with http:// or https://");
    if (scheme == v.len || v.p[scheme] == '/')
        return rtmd_config_fail_value(ps, o, "has no host");
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.p[i] <= 0x20 || (unsigned char)v.p[i] >= 0x7f)
            return rtmd_config_fail_value(ps, o, "has a space or a byte outside printable ASCII");
    return 0;
}

static int open_section(struct parser *ps, struct rtmd_str name)
{
    struct rtmd_config *cfg = ps->cfg;
    int line = ps->lineno;
    char e[128];
    snprintf(ps->heading, sizeof(ps->heading), "[%s]", esc(e, sizeof(e), name));
    ps->sect = SEC_NONE;
    ps->cust = NULL;
    ps->app = NULL;
    ps->hook = NULL;
    ps->prev_opt = NULL;
    ps->have_prev = false;

    for (int s = SEC_SERVER; s <= SEC_LAST_FIXED; s++) {
        if (!rtmd_str_eq_cstr(name, rtmd_config_sections[s].name))
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
        if (!name_valid(id, RTMD_CONFIG_CUSTOMER_ID_MAX))
            return config_fail(ps, line, ps->heading,
                               "customer ID must be 1..%d characters [A-Za-z0-9_-]",
                               RTMD_CONFIG_CUSTOMER_ID_MAX);
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

    if (has_prefix(name, "webhook:"))
        return open_webhook(ps, rtmd_str_make(name.p + 8, name.len - 8));

    return config_fail(ps, line, ps->heading,
                       "unknown section (expected [server], [store], [limits], [customer:ID], "
                       "[app:APPID] or [webhook:NAME])");
}

/* ---- the file ----------------------------------------------------------- */

/* The KEY of a message about a whole line: the key it sets, the key it
 * continues, or the section it is in. */
static const char *line_key(struct parser *ps, const char *s, size_t len, char *out, size_t outlen)
{
    size_t i = 0;
    while (i < len && rtmd_config_is_space(s[i]))
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

/* A key = value line: the key must be in the current section. */
static int key_line(struct parser *ps, struct rtmd_str key, struct rtmd_str value)
{
    ps->have_prev = true;
    ps->prev_opt = NULL;
    char name[64], e[64];
    /* Longer than any key: unknown, and named by its escaped start. */
    snprintf(name, sizeof(name), "%.*s", (int)RTMD_MIN(key.len, sizeof(name) - 1), key.p);
    const char *shown = esc(e, sizeof(e), key);
    const struct opt *o =
        ps->sect == SEC_NONE || key.len >= sizeof(name) ? NULL : rtmd_config_find(ps->sect, name);
    if (!o) {
        const struct opt *elsewhere =
            key.len < sizeof(name) ? rtmd_config_find_anywhere(name) : NULL;
        const char *in = elsewhere ? rtmd_config_sections[elsewhere->section].heading : "";
        if (ps->sect == SEC_NONE)
            return config_fail(ps, ps->lineno, shown, "key before any [section]%s%s%s",
                               elsewhere ? " (it belongs in " : "", in, elsewhere ? ")" : "");
        return config_fail(ps, ps->lineno, shown, "unknown key in %s%s%s%s", ps->heading,
                           elsewhere ? " (it belongs in " : "", in, elsewhere ? ")" : "");
    }
    ps->prev_opt = o;
    return set_value(ps, o, value, false);
}

/* One line, checked, without its inline comment, NUL-terminated in ps->line. */
static int parse_line(struct parser *ps, size_t len)
{
    const char *line = ps->line;
    char q[QUOTE_MAX];
    size_t i = 0, e = len;
    while (i < len && rtmd_config_is_space(line[i]))
        i++;
    while (e > i && rtmd_config_is_space(line[e - 1]))
        e--;
    ps->line[e] = '\0'; /* every value below ends at e: a NUL follows it */
    if (i == e || line[i] == ';' || line[i] == '#')
        return 0; /* blank or comment: a list may go on after it */
    struct rtmd_str text = rtmd_str_make(line + i, e - i);
    if (ps->have_prev && i > 0)
        return set_value(ps, ps->prev_opt, text, true);
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
        return open_section(ps, rtmd_str_make(text.p + 1, text.len - 2));
    }
    /* key = value with a plain key: "key: value" (inih's other form) and
     * "key value" fail here, clearly. */
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
    return key_line(ps, key, trim(rtmd_str_make(text.p + sep + 1, text.len - sep - 1)));
}

/* Reads every line of the text; stops at the first error. */
static int read_file(struct parser *ps)
{
    char k[64];
    while (ps->p < ps->end && !ps->failed) {
        const char *s = ps->p;
        const char *nl = memchr(s, '\n', (size_t)(ps->end - s));
        size_t len = nl ? (size_t)(nl - s) : (size_t)(ps->end - s);
        ps->p = nl ? nl + 1 : ps->end;
        ps->lineno++;
        if (len && s[len - 1] == '\r')
            len--;
        if (len > RTMD_CONFIG_LINE_MAX)
            return config_fail(ps, ps->lineno,
                               line_key(ps, s, RTMD_MIN(len, (size_t)64), k, sizeof(k)),
                               "line is longer than %d bytes", RTMD_CONFIG_LINE_MAX);
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)s[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return config_fail(ps, ps->lineno, line_key(ps, s, i, k, sizeof(k)),
                                   "control character \\x%02x in line", c);
        }
        /* Inline comment: ';' after a space or tab. */
        size_t cut = len;
        for (size_t i = 1; i < len; i++) {
            if (s[i] == ';' && (s[i - 1] == ' ' || s[i - 1] == '\t')) {
                cut = i;
                break;
            }
        }
        memcpy(ps->line, s, cut);
        ps->line[cut] = '\0';
        int rc = parse_line(ps, cut);
        if (rc)
            return rc;
    }
    return ps->failed ? -EINVAL : 0;
}

/* ---- the environment ---------------------------------------------------- */

/* The value of variable name in env ("NAME=value" strings), or NULL; the
 * first one when it is there twice, as getenv() does. */
static const char *env_get(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = env; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

/* Every RTMD_<SECTION>_... variable of a known SECTION names a key of it:
 * a misspelt variable fails like an unknown key in the file. Variables of
 * other names (RTMD_ anything else) are not rtmd's config and are left. */
static int env_check_names(struct parser *ps, char *const *env)
{
    const size_t plen = strlen(RTMD_CONFIG_ENV_PREFIX);
    for (char *const *e = env; *e; e++) {
        const char *s = *e;
        const char *eq = strchr(s, '=');
        if (!eq || strncmp(s, RTMD_CONFIG_ENV_PREFIX, plen) != 0)
            continue;
        struct rtmd_str rest = rtmd_str_make(s + plen, (size_t)(eq - s) - plen);
        const char *us = memchr(rest.p, '_', rest.len);
        if (!us)
            continue;
        struct rtmd_str sect = rtmd_str_make(rest.p, (size_t)(us - rest.p));
        struct rtmd_str key = rtmd_str_make(us + 1, rest.len - sect.len - 1);
        int found = SEC_NONE;
        for (int k = SEC_SERVER; k < SEC_COUNT; k++) {
            char upper[32];
            snprintf(upper, sizeof(upper), "%s", rtmd_config_sections[k].name);
            for (char *c = upper; *c; c++)
                *c = (char)(*c - 'a' + 'A');
            if (rtmd_str_eq_cstr(sect, upper))
                found = k;
        }
        if (found == SEC_NONE)
            continue;
        char var[ENV_NAME + 16], ek[ENV_NAME];
        esc(var, sizeof(var), rtmd_str_make(s, (size_t)(eq - s)));
        ps->env_var = var;
        if (!rtmd_config_sections[found].env)
            return config_fail(ps, 0, rtmd_config_sections[found].heading,
                               "keys of repeatable sections are read from the file only (the "
                               "environment sets [server], [store] and [limits] keys)");
        bool known = false;
        for (size_t i = 0; i < N_OPTS && !known; i++) {
            char name[ENV_NAME];
            rtmd_config_env_name(&rtmd_config_options[i], name, sizeof(name));
            known = rtmd_config_options[i].section == (enum section)found &&
                    rtmd_str_eq_cstr(rtmd_str_make(s, (size_t)(eq - s)), name);
        }
        if (!known) {
            /* Named as the key would be in the file. */
            esc(ek, sizeof(ek), key);
            for (char *c = ek; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c - 'A' + 'a');
            return config_fail(ps, 0, ek, "unknown key in %s", rtmd_config_sections[found].heading);
        }
        ps->env_var = NULL;
    }
    return 0;
}

/* Applies RTMD_<SECTION>_<KEY> variables in the table's order, each checked
 * like a line of the file (length, control bytes, the key's bounds). The
 * value is taken as it is, but for surrounding spaces: no comments. */
static int read_env(struct parser *ps, char *const *env)
{
    int rc = env_check_names(ps, env);
    for (size_t i = 0; i < N_OPTS && !rc; i++) {
        const struct opt *o = &rtmd_config_options[i];
        char name[ENV_NAME];
        rtmd_config_env_name(o, name, sizeof(name));
        const char *value = name[0] ? env_get(env, name) : NULL;
        if (!value)
            continue;
        /* The name is kept in the config, for messages and --check-config. */
        struct rtmd_config *cfg = ps->cfg;
        cfg->overrides = grow_for(cfg->overrides, cfg->n_overrides, sizeof(*cfg->overrides));
        cfg->overrides[cfg->n_overrides++] = rtmd_strdup(name);
        ps->env_var = cfg->overrides[cfg->n_overrides - 1];
        size_t len = strlen(value);
        if (len > RTMD_CONFIG_LINE_MAX)
            return config_fail(ps, 0, o->name, "value is longer than %d bytes",
                               RTMD_CONFIG_LINE_MAX);
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)value[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return config_fail(ps, 0, o->name, "control character \\x%02x in value", c);
        }
        memcpy(ps->line, value, len + 1);
        struct rtmd_str v = trim(rtmd_str_make(ps->line, len));
        ps->line[v.p - ps->line + v.len] = '\0';
        rc = set_value(ps, o, v, false);
        ps->env_var = NULL;
    }
    return rc;
}

/* ---- the whole config --------------------------------------------------- */

static void apply_defaults(struct parser *ps)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &rtmd_config_options[i];
        if (o->def && o->section <= SEC_LAST_FIXED)
            set_value(ps, o, rtmd_str_cstr(o->def), false);
    }
}

static const struct opt *opt_by_name(const char *name)
{
    const struct opt *o = rtmd_config_find_anywhere(name);
    if (!o)
        abort(); /* a rule names a key that is not in the table */
    return o;
}

/* Checks that need the whole config. */
static void finish(struct parser *ps)
{
    struct rtmd_config *cfg = ps->cfg;
    const struct opt *listen = rtmd_config_find(SEC_SERVER, "listen");
    if (cfg->n_listeners == 0) {
        config_fail(ps, origin(ps, listen), listen->name, "no listener given");
        return;
    }

    cfg->any_tls = false;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        struct rtmd_listener_config *l = &cfg->listeners[i];
        if (!l->tls_given)
            l->tls = cfg->tls;
        cfg->any_tls |= l->tls;
    }
    if (cfg->admin_enabled) {
        for (size_t i = 0; i < cfg->n_listeners; i++) {
            const struct rtmd_listener_config *l = &cfg->listeners[i];
            if (l->port == cfg->admin.port && l->port != 0 &&
                strcmp(l->host, cfg->admin.host) == 0) {
                const struct opt *al = rtmd_config_find(SEC_SERVER, "admin_listen");
                config_fail(ps, origin(ps, al), al->name, "%s:%u is also in listen", l->host,
                            (unsigned)l->port);
                return;
            }
        }
    }

    const struct opt *cert = rtmd_config_find(SEC_SERVER, "tls_cert");
    const struct opt *key = rtmd_config_find(SEC_SERVER, "tls_key");
    if (cfg->tls_cert && !cfg->tls_key) {
        config_fail(ps, origin(ps, cert), cert->name, "tls_key is missing (give both or neither)");
        return;
    }
    if (cfg->tls_key && !cfg->tls_cert) {
        config_fail(ps, origin(ps, key), key->name, "tls_cert is missing (give both or neither)");
        return;
    }

    if (cfg->reuse_port && cfg->backend != RTMD_STORE_REDIS) {
        const struct opt *rp = rtmd_config_find(SEC_SERVER, "reuse_port");
        config_fail(ps, origin(ps, rp), rp->name,
                    "needs backend = redis (the embedded store is one node: one database, one "
                    "process)");
        return;
    }
    cfg->node_id = rtmd_config_node_number(cfg->node_name);

    for (size_t i = 0; i < rtmd_config_n_rules; i++) {
        const struct rule *r = &rtmd_config_rules[i];
        const struct opt *a = opt_by_name(r->key), *b = opt_by_name(r->other);
        uint64_t av = *u32_field(cfg, a), bv = *u32_field(cfg, b);
        uint64_t bound = bv + r->add;
        bool ok = r->op == RULE_LE ? av <= bound : av >= bound;
        if (ok)
            continue;
        char plus[24] = "";
        if (r->add)
            snprintf(plus, sizeof(plus), " + %" PRIu32, r->add);
        if (was_set(ps, a) || !was_set(ps, b)) {
            config_fail(ps, origin(ps, a), a->name, "must be %s %s%s (%" PRIu64 ")",
                        r->op == RULE_LE ? "at most" : "at least", b->name, plus, bound);
        } else {
            /* Only the other key was set: say what it must be instead. */
            char minus[24] = "";
            if (r->add)
                snprintf(minus, sizeof(minus), " - %" PRIu32, r->add);
            uint64_t need = av >= r->add ? av - r->add : 0;
            config_fail(ps, origin(ps, b), b->name, "must be %s %s%s (%" PRIu64 ")",
                        r->op == RULE_LE ? "at least" : "at most", a->name, minus, need);
        }
        return;
    }

    for (size_t i = 0; i < cfg->n_customers; i++) {
        struct rtmd_customer *c = cfg->customers[i];
        for (size_t j = 0; j < N_OPTS; j++) {
            const struct opt *o = &rtmd_config_options[j];
            if (o->section != SEC_CUSTOMER || !o->required ||
                ps->cust_lines[i].keys[rtmd_config_opt_slot(o)])
                continue;
            char e[128], h[160];
            snprintf(h, sizeof(h), "[customer:%s]", esc(e, sizeof(e), rtmd_str_cstr(c->id)));
            config_fail(ps, ps->cust_lines[i].section, h, "missing required key %s", o->name);
            return;
        }
    }
    for (size_t i = 0; i < cfg->n_webhooks; i++) {
        const struct rtmd_webhook_config *w = cfg->webhooks[i];
        char h[160];
        snprintf(h, sizeof(h), "[webhook:%s]", w->name);
        for (size_t j = 0; j < N_OPTS; j++) {
            const struct opt *o = &rtmd_config_options[j];
            if (o->section != SEC_WEBHOOK || !o->required ||
                ps->hook_lines[i].keys[rtmd_config_opt_slot(o)])
                continue;
            config_fail(ps, ps->hook_lines[i].section, h, "missing required key %s", o->name);
            return;
        }
        if (w->events == 0) {
            config_fail(ps, ps->hook_lines[i].section, h,
                        "events: name at least one of user, channel, message");
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

struct rtmd_config *rtmd_config_load_text(const char *name, const char *text, size_t len,
                                          char *const *env, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    struct rtmd_config *cfg = rtmd_calloc(1, sizeof(*cfg));
    cfg->path = rtmd_strdup(name);
    rtmd_hashmap_init(&cfg->apps_by_id);
    rtmd_hashmap_init(&cfg->customers_by_id);

    struct parser *ps = rtmd_calloc(1, sizeof(*ps));
    ps->cfg = cfg;
    ps->name = name;
    ps->err = err;
    ps->errlen = errlen;
    ps->opt_line = rtmd_calloc(N_OPTS, sizeof(*ps->opt_line));
    ps->opt_env = rtmd_calloc(N_OPTS, sizeof(*ps->opt_env));
    snprintf(ps->heading, sizeof(ps->heading), "(before any section)");
    apply_defaults(ps);

    if (!ps->failed && len > RTMD_CONFIG_FILE_MAX)
        config_fail(ps, 0, "(file)", "larger than %d bytes", RTMD_CONFIG_FILE_MAX);
    if (!ps->failed) {
        if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) { /* UTF-8 BOM */
            text += 3;
            len -= 3;
        }
        ps->p = text;
        ps->end = text + len;
        read_file(ps);
    }
    if (!ps->failed && env)
        read_env(ps, env);
    if (!ps->failed)
        finish(ps);
    bool failed = ps->failed;
    rtmd_free(ps->cust_lines);
    rtmd_free(ps->app_lines);
    rtmd_free(ps->hook_lines);
    rtmd_free(ps->opt_line);
    rtmd_free(ps->opt_env);
    rtmd_free(ps);
    if (failed) {
        rtmd_config_free(cfg);
        return NULL;
    }
    return cfg;
}

struct rtmd_config *rtmd_config_load_string(const char *name, const char *text, char *err,
                                            size_t errlen)
{
    return rtmd_config_load_text(name, text, strlen(text), NULL, err, errlen);
}

struct rtmd_config *rtmd_config_load_file(const char *path, char *const *env, char *err,
                                          size_t errlen)
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
        cfg = rtmd_config_load_text(path, b.data ? b.data : "", b.len, env, err, errlen);
    }
    rtmd_buf_free(&b);
    return cfg;
}

struct rtmd_config *rtmd_config_load(const char *path, char *err, size_t errlen)
{
    return rtmd_config_load_file(path, environ, err, errlen);
}

void rtmd_config_webhooks_free(struct rtmd_webhook_config **hooks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct rtmd_webhook_config *h = hooks[i];
        rtmd_free(h->name);
        rtmd_free(h->url);
        rtmd_free(h->secret);
        rtmd_free(h->ca_file);
        for (size_t k = 0; k < h->n_apps; k++)
            rtmd_free(h->apps[k]);
        rtmd_free(h->apps);
        rtmd_free(h);
    }
    rtmd_free(hooks);
}

void rtmd_config_free(struct rtmd_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_apps; i++) {
        if (!cfg->apps[i])
            continue; /* moved into the running config by a reload */
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
    rtmd_config_webhooks_free(cfg->webhooks, cfg->n_webhooks);
    for (size_t i = 0; i < cfg->n_overrides; i++)
        rtmd_free(cfg->overrides[i]);
    rtmd_free(cfg->overrides);
    rtmd_hashmap_free(&cfg->apps_by_id);
    rtmd_hashmap_free(&cfg->customers_by_id);
    rtmd_free(cfg->path);
    rtmd_free(cfg->tls_cert);
    rtmd_free(cfg->tls_key);
    rtmd_free(cfg->data_dir);
    rtmd_free(cfg->ready_file);
    rtmd_free(cfg->log_file);
    rtmd_free(cfg->admin_listen);
    origins_clear(&cfg->allowed_origins);
    origins_clear(&cfg->cors_origins);
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
