/*
 * config_write.c — what the config table writes: docs/CONFIG.md's
 * reference (Markdown), the rtmd.conf(5) man page (roff) and the first-run
 * sample config (INI). scripts/regen-config-doc puts the first two in the
 * repository; test_config checks that the committed files are current.
 *
 * Docs text in the table is Markdown with `code` spans only; the man page
 * shows a code span in bold, the sample config drops the backticks.
 */
#include "core/config_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"

#define N_OPTS rtmd_config_n_options

/* Said in both generated references, so the two cannot drift. */
static const char env_doc[] =
    "Every key of `[server]`, `[store]` and `[limits]` may also be given by an environment "
    "variable `RTMD_<SECTION>_<KEY>`, in upper case: `RTMD_SERVER_LOG_LEVEL=debug`, "
    "`RTMD_LIMITS_EVENTS_QPS=5`. It replaces the file's value (a list too: "
    "`RTMD_SERVER_LISTEN` replaces every listener) and is checked like a line of the file, "
    "except that the whole value is taken (no comments); a bad value, or an `RTMD_SERVER_`, "
    "`RTMD_STORE_` or `RTMD_LIMITS_` variable that names no key, stops rtmd with "
    "`environment VAR: KEY: what is wrong` and status 2. The keys of `[customer:ID]` and "
    "`[app:APPID]` come from the file only (they are many, and named by IDs): an "
    "`RTMD_CUSTOMER_` or `RTMD_APP_` variable is an error. Other `RTMD_` variables are not "
    "read. Variables are read wherever the file is (a start, `rtmd --check-config FILE`, which "
    "names the variables it used, `rtmd token --config FILE`, a reload); a process's "
    "environment does not change, so a key set by a variable keeps that value across "
    "reloads.";

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

/* The bounds column: min..max, a rule, the choices, or the table's text. */
static int write_bounds(struct rtmd_buf *out, const struct opt *o)
{
    if (o->bounds)
        return rtmd_buf_append_cstr(out, o->bounds);
    switch (o->type) {
    case T_U32: {
        const struct rule *r = rtmd_config_rule_of(o);
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

/* The environment variables of a section, as docs text. */
static int write_section_env(struct rtmd_buf *out, int s)
{
    if (!rtmd_config_sections[s].env)
        return rtmd_buf_append_cstr(out, "Read from the file only (not from the environment).");
    return rtmd_buf_printf(out, "Environment: `" RTMD_CONFIG_ENV_PREFIX "%s_<KEY>`.",
                           rtmd_config_sections[s].env);
}

/* ---- docs/CONFIG.md ----------------------------------------------------- */

int rtmd_config_write_reference(struct rtmd_buf *out)
{
    int rc = rtmd_buf_printf(out,
                             "<!-- BEGIN generated reference: from the table in "
                             "src/core/config_table.c; regenerate with "
                             "`scripts/regen-config-doc` -->\n\n### Environment variables\n\n%s\n",
                             env_doc);
    for (int s = SEC_SERVER; s < SEC_COUNT && !rc; s++) {
        rc = rtmd_buf_printf(out, "\n### `%s`\n\n%s ", rtmd_config_sections[s].heading,
                             rtmd_config_sections[s].doc);
        if (!rc)
            rc = write_section_env(out, s);
        if (!rc)
            rc = rtmd_buf_append_cstr(out, "\n\n| key | type | default | bounds | meaning |\n"
                                           "|---|---|---|---|---|\n");
        for (size_t i = 0; i < N_OPTS && !rc; i++) {
            const struct opt *o = &rtmd_config_options[i];
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

/* ---- rtmd.conf(5) ------------------------------------------------------- */

/* Appends docs text as roff: `code` in bold, backslashes and hyphens
 * escaped, a leading '.' or '\'' made plain text. Only ASCII is written. */
static int roff_text(struct rtmd_buf *out, const char *text, size_t len)
{
    int rc = 0;
    bool code = false;
    for (size_t i = 0; i < len && !rc; i++) {
        char c = text[i];
        if ((unsigned char)c >= 0x80 || ((unsigned char)c < 0x20 && c != '\n'))
            return -EINVAL;
        if (c == '`') {
            code = !code;
            rc = rtmd_buf_append_cstr(out, code ? "\\fB" : "\\fR");
        } else if (c == '\\') {
            rc = rtmd_buf_append_cstr(out, "\\e");
        } else if (c == '-') {
            rc = rtmd_buf_append_cstr(out, "\\-");
        } else if ((c == '.' || c == '\'') && (out->len == 0 || out->data[out->len - 1] == '\n')) {
            rc = rtmd_buf_append_cstr(out, "\\&");
            if (!rc)
                rc = rtmd_buf_append_byte(out, c);
        } else {
            rc = rtmd_buf_append_byte(out, c);
        }
    }
    if (!rc && code)
        rc = rtmd_buf_append_cstr(out, "\\fR");
    return rc;
}

static int roff(struct rtmd_buf *out, const char *text)
{
    return roff_text(out, text, strlen(text));
}

/* The parts of the page that are prose, not the table. Each string is one
 * roff line (a request, or text in the docs' Markdown-lite). */
static const char *const man_head[] = {
    ".SH NAME",
    "rtmd.conf - configuration file of rtmd, a real-time messaging server",
    ".SH SYNOPSIS",
    ".BI \"rtmd \\-\\-config \" FILE",
    ".br",
    ".BI \"rtmd \\-\\-check\\-config \" FILE",
    ".SH DESCRIPTION",
    "rtmd reads one INI file: the one given by `--config`, or `./rtmd-data/rtmd.conf` (created "
    "with a demo app and customer on the first run) without it. Every key has a default except "
    "a customer's `secret`, so a file only needs the keys it changes. A bad file stops rtmd "
    "before it binds anything.",
    ".PP",
    "The file has the sections `[server]`, `[store]` and `[limits]` (each at most once) and any "
    "number of `[customer:ID]` and `[app:APPID]` sections (one per customer and per app). Every "
    "key belongs in a section. An unknown section or key, a section given twice or a "
    "single-valued key given twice is an error. Section and key names are case-sensitive; "
    "values such as `on` or `info` are not.",
    ".PP",
    "A key is set with `key = value`; spaces around the key and the value are dropped, and "
    "there is no quoting. A line whose first non-blank character is `;` or `#` is a comment; on "
    "other lines ` ;` (a space or tab, then `;`) starts a comment that runs to the end of the "
    "line. An empty value is an error, except for a list.",
    ".PP",
    "Lists (`listen`, `apps`) are comma-separated and may go on over the following indented "
    "lines, or the key may be repeated; all of it adds up. A `listen` in the file replaces the "
    "default listener. Any indented line right after a `key = value` line continues that key, so "
    "do not indent other keys or section headers.",
    ".PP",
    "An app is created by its `[app:APPID]` section, which may have no keys (then it has no "
    "certificate), or by being named in a customer's `apps`. Several customers may share an "
    "app. A customer must have a `secret`.",
    ".PP",
    "The file is at most 1 MiB, with lines of at most 4096 bytes and no control characters "
    "other than tab; CRLF line ends and a UTF-8 byte-order mark are accepted. Paths are used as "
    "written, relative ones from rtmd's working directory, and are not opened at load time.",
};

static const char *const man_tail[] = {
    ".SH DIAGNOSTICS",
    "A bad file prints one line naming the file, the line and the key, and rtmd exits with "
    "status 2:",
    ".PP",
    ".nf",
    "rtmd.conf:2: listen: \"127.0.0.1:99999@eu\": port must be 0..65535",
    "rtmd.conf:3: events_retain: unknown key in [server] (it belongs in [limits])",
    "rtmd.conf:12: [customer:ck_demo]: missing required key secret",
    "environment RTMD_LIMITS_EVENTS_QPS: events_qps: must be 1..10000000 (got \"0\")",
    ".fi",
    ".PP",
    "Secrets and certificates are never echoed in messages. `rtmd --check-config FILE` reads the "
    "file and the environment the same way and prints `FILE: ok`, or the message "
    "(status 2).",
    ".SH EXAMPLE",
    ".nf",
    "[server]",
    "listen = 127.0.0.1:8443@default, 127.0.0.1:8444@eu   ; comment",
    "tls = on",
    "",
    "[customer:ck_demo]",
    "secret = 4d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1f",
    "apps = 970CA35de60c44645bbae8a215061b33,",
    "       0123456789abcdef0123456789abcdef",
    "",
    "[app:970CA35de60c44645bbae8a215061b33]",
    "certificate = 5CFd2fd1755d40ecb72977518be15d3b",
    "",
    "[app:0123456789abcdef0123456789abcdef]   ; no certificate: clients log in with no token",
    ".fi",
    ".SH SEE ALSO",
    ".BR rtmd (8);",
    "docs/CONFIG.md in rtmd's source, whose reference is generated from the same table as this "
    "page.",
};

static int man_lines(struct rtmd_buf *out, const char *const *lines, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *l = lines[i];
        /* Requests and preformatted lines are written as they are. */
        rc = l[0] == '.' ? rtmd_buf_append_cstr(out, l) : roff(out, l);
        if (!rc)
            rc = rtmd_buf_append_byte(out, '\n');
    }
    return rc;
}

static int man_key(struct rtmd_buf *out, const struct opt *o)
{
    struct rtmd_buf bounds;
    rtmd_buf_init(&bounds, 1024);
    int rc = write_bounds(&bounds, o);
    if (!rc)
        rc = rtmd_buf_append_cstr(out, ".TP\n.B ");
    if (!rc)
        rc = roff(out, o->name);
    if (!rc)
        rc = rtmd_buf_append_byte(out, '\n');
    if (!rc)
        rc = roff(out, o->doc);
    if (!rc)
        rc = rtmd_buf_append_cstr(out, ".\n.br\n");
    if (!rc)
        rc = rtmd_buf_printf(out, "\\fI%s\\fR; ", type_name(o));
    if (!rc && o->def) {
        rc = rtmd_buf_append_cstr(out, "default ");
        if (!rc)
            rc = roff(out, "`");
        if (!rc)
            rc = roff(out, o->def);
        if (!rc)
            rc = roff(out, "`");
    } else if (!rc) {
        rc = rtmd_buf_append_cstr(out, o->required ? "required" : "no default");
    }
    if (!rc)
        rc = rtmd_buf_append_cstr(out, "; ");
    if (!rc)
        rc = roff_text(out, bounds.data ? bounds.data : "", bounds.len);
    rtmd_buf_free(&bounds);
    char env[64];
    rtmd_config_env_name(o, env, sizeof(env));
    if (!rc && env[0]) {
        rc = rtmd_buf_append_cstr(out, "; environment ");
        if (!rc)
            rc = rtmd_buf_printf(out, "\\fB%s\\fR", env);
    }
    return rc ? rc : rtmd_buf_append_cstr(out, ".\n");
}

int rtmd_config_write_man(struct rtmd_buf *out)
{
    int rc =
        rtmd_buf_append_cstr(out, ".\\\" Generated from the table in src/core/config_table.c by "
                                  "scripts/regen-config-doc: do not edit.\n"
                                  ".TH RTMD.CONF 5 \"\" \"rtmd\" \"File Formats\"\n"
                                  ".nh\n.ad l\n"); /* long names neither hyphenated nor stretched */
    if (!rc)
        rc = man_lines(out, man_head, RTMD_ARRAY_SIZE(man_head));
    if (!rc)
        rc = rtmd_buf_append_cstr(out, ".SH ENVIRONMENT\n");
    if (!rc)
        rc = roff(out, env_doc);
    if (!rc)
        rc = rtmd_buf_append_cstr(out, "\n.SH SECTIONS AND KEYS\n");
    for (int s = SEC_SERVER; s < SEC_COUNT && !rc; s++) {
        rc = rtmd_buf_printf(out, ".SS %s\n", rtmd_config_sections[s].heading);
        if (!rc)
            rc = roff(out, rtmd_config_sections[s].doc);
        if (!rc)
            rc = rtmd_buf_append_byte(out, ' ');
        if (!rc) {
            struct rtmd_buf env;
            rtmd_buf_init(&env, 256);
            rc = write_section_env(&env, s);
            if (!rc)
                rc = roff_text(out, env.data, env.len);
            rtmd_buf_free(&env);
        }
        if (!rc)
            rc = rtmd_buf_append_byte(out, '\n');
        for (size_t i = 0; i < N_OPTS && !rc; i++)
            if (rtmd_config_options[i].section == (enum section)s)
                rc = man_key(out, &rtmd_config_options[i]);
    }
    if (!rc)
        rc = man_lines(out, man_tail, RTMD_ARRAY_SIZE(man_tail));
    return rc;
}

/* ---- the sample config -------------------------------------------------- */

/* A value can be written into an INI line only if it reads back the same:
 * not empty, no control bytes, no surrounding spaces, no " ;" comment. */
static bool ini_writable(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > RTMD_CONFIG_LINE_MAX - 64 || rtmd_config_is_space(v[0]) ||
        rtmd_config_is_space(v[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
        if (c == ';' && i > 0 && rtmd_config_is_space(v[i - 1]))
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
    for (int s = SEC_SERVER; s <= SEC_LAST_FIXED && !rc; s++) {
        rc = rtmd_buf_printf(out, "\n[%s]\n", rtmd_config_sections[s].name);
        if (!rc)
            rc = write_comment(out, "# ", rtmd_config_sections[s].doc,
                               strlen(rtmd_config_sections[s].doc));
        for (size_t i = 0; i < N_OPTS && !rc; i++) {
            const struct opt *o = &rtmd_config_options[i];
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
    /* The sample must load: IDs, addresses and paths are checked by the
     * reader (without the environment: the file must stand alone). */
    struct rtmd_config *check =
        rtmd_config_load_text("(sample)", out->data + start, out->len - start, NULL, NULL, 0);
    if (!check) {
        out->len = start;
        return -EINVAL;
    }
    rtmd_config_free(check);
    return 0;
}
