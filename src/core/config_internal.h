/*
 * config_internal.h — what the config module's files share (not for other
 * modules):
 *   config_table.c  the table: sections, keys (type, default, bounds,
 *                   validator, meaning) and the rules between keys;
 *   config_read.c   the one reader: defaults, the INI file, the
 *                   RTMD_<SECTION>_<KEY> environment, the checks that need
 *                   the whole config; the loaded config's lookups and free;
 *   config_write.c  docs/CONFIG.md's reference, rtmd.conf(5) and the
 *                   first-run sample config, all from the table.
 */
#ifndef RTMD_CORE_CONFIG_INTERNAL_H
#define RTMD_CORE_CONFIG_INTERNAL_H

#include "core/config.h"

#define RTMD_CONFIG_XSTR(x)         #x
#define RTMD_CONFIG_STR(x)          RTMD_CONFIG_XSTR(x)

#define RTMD_CONFIG_PATH_MAX        4095
#define RTMD_CONFIG_SECRET_MIN      8
#define RTMD_CONFIG_SECRET_MAX      128
#define RTMD_CONFIG_CUSTOMER_ID_MAX 64
#define RTMD_CONFIG_OBJ_KEYS_MAX    8 /* keys of a [customer:], [app:] or [webhook:] section */
#define RTMD_CONFIG_ENV_PREFIX      "RTMD_"
#define RTMD_CONFIG_QUOTE_MAX       72 /* bytes of a quoted value in a message */

enum section {
    SEC_NONE,
    SEC_SERVER,
    SEC_STORE,
    SEC_LIMITS,
    SEC_CUSTOMER,
    SEC_APP,
    SEC_WEBHOOK,
    SEC_COUNT
};

/* Sections up to SEC_LIMITS appear once and are fields of struct
 * rtmd_config; their keys have defaults and environment variables. */
#define SEC_LAST_FIXED SEC_LIMITS

struct section_info {
    const char *name;    /* as written in the file: [name] or [name:ID] */
    const char *heading; /* in docs */
    const char *env;     /* RTMD_<env>_<KEY>; NULL: not read from the environment */
    const char *doc;
};

enum opt_type {
    T_U32,     /* decimal, min..max */
    T_BOOL,    /* on/off and friends */
    T_ENUM,    /* one of choices */
    T_STRING,  /* min..max bytes, optional validator */
    T_LISTEN,  /* list of ADDR:PORT@REGION[/tls|/plain] */
    T_ORIGINS, /* list of origins, or `*` */
    T_SECRET,  /* customer secret */
    T_APPS,    /* list of App IDs */
    T_CERT,    /* App Certificate */
    T_EVENTS,  /* list of webhook event kinds (choices give the bits) */
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
    size_t offset;     /* into struct rtmd_config ([server]/[store]/[limits]), rtmd_app or
                          rtmd_webhook_config */
    const char *def;   /* the default as written in a file; NULL: none */
    uint32_t min, max; /* T_U32: value bounds; T_STRING: length bounds */
    const struct choice *choices; /* T_BOOL, T_ENUM: NULL-terminated */
    /* Called after the length check; fails through rtmd_config_fail_value(). */
    int (*validate)(struct parser *ps, const struct opt *o, struct rtmd_str v);
    const char *type_doc; /* overrides the type's name in docs */
    const char *bounds;   /* docs text where min..max does not say it */
    const char *doc;
    bool required;
};

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

/* config_table.c */
extern const struct section_info rtmd_config_sections[SEC_COUNT];
extern const struct opt rtmd_config_options[];
extern const size_t rtmd_config_n_options;
extern const struct rule rtmd_config_rules[];
extern const size_t rtmd_config_n_rules;

/* The key named name in sect, or NULL. */
const struct opt *rtmd_config_find(enum section sect, const char *name);
/* The first key named name in any section, or NULL. */
const struct opt *rtmd_config_find_anywhere(const char *name);
/* Position of o among the keys of its section (per-object line slots). */
size_t rtmd_config_opt_slot(const struct opt *o);
/* The rule that bounds o, or NULL. */
const struct rule *rtmd_config_rule_of(const struct opt *o);
/* Writes o's environment variable, RTMD_<SECTION>_<KEY>, into out (NUL
 * included); "" for a key of a repeatable section. */
void rtmd_config_env_name(const struct opt *o, char *out, size_t outlen);

/* config_read.c: for a key's validator. Records the error about the value
 * of o being applied ("FILE:LINE: KEY: msg", or "environment VAR: KEY: msg")
 * and returns -EINVAL. Quote file text with rtmd_log_quote() in a buffer of
 * RTMD_CONFIG_QUOTE_MAX bytes; never echo a secret. */
__attribute__((format(printf, 3, 4))) int
rtmd_config_fail_value(struct parser *ps, const struct opt *o, const char *fmt, ...);

/* config_read.c: admin_listen's validator (it parses an address as listen
 * does, and sets cfg->admin). */
int rtmd_config_validate_admin_listen(struct parser *ps, const struct opt *o, struct rtmd_str v);

/* config_read.c: a webhook url's validator (http:// or https://, a host,
 * no spaces or control characters). */
int rtmd_config_validate_webhook_url(struct parser *ps, const struct opt *o, struct rtmd_str v);

/* config_read.c: true for the bytes that may end an INI value's trimming. */
bool rtmd_config_is_space(char c);

#endif
