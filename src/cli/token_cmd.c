/*
 * token_cmd.c — the `rtmd token` subcommand.
 */
#include "cli/token_cmd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "auth/token.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/ids.h"

#define SALT_MAX 99999999u

static const char usage[] =
    "usage: rtmd token --appid A --certificate C --uid U [--expire S] [--v 006|007]\n"
    "       rtmd token --config FILE --app A --uid U [--expire S] [--v 006|007]\n"
    "\n"
    "Prints an Agora-compatible RTM token for user U of app A, signed with\n"
    "the app certificate C, or with app A's certificate in the config FILE\n"
    "(which keeps the certificate off the command line).\n"
    "\n"
    "  --appid A, --app A  App ID: 32 characters [0-9A-Za-z]\n"
    "  --certificate C  App Certificate: 32 hex characters\n"
    "  --config FILE    take the certificate from FILE's [app:A] section (the file\n"
    "                   and RTMD_* variables are read as rtmd reads them)\n"
    "  --uid U          user ID: 1..64 allowed characters, not \"null\"\n"
    "  --expire S       lifetime in seconds, 0..86400 (default 86400; 0 = 24 h)\n"
    "  --v 006|007      token version (default 007)\n"
    "  --help           this text\n";

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("rtmd token: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'rtmd token --help'.\n", stderr);
    return 2;
}

/* A salt in 1..99999999, as Agora's Python and Node builders draw it. */
static int random_salt(uint32_t *out)
{
    uint32_t v;
    /* Rejection sampling keeps the draw uniform. */
    const uint32_t limit = UINT32_MAX - UINT32_MAX % SALT_MAX;
    do {
        if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
            return -EIO;
    } while (v >= limit);
    *out = 1 + v % SALT_MAX;
    return 0;
}

struct options {
    const char *appid;
    const char *certificate;
    const char *uid;
    const char *expire;
    const char *version;
    const char *config;
};

/* The certificate of app appid in the config file path (and the
 * environment), copied into cert[33]. Prints why not and returns 2. */
static int certificate_from_config(const char *path, const char *appid, char *cert)
{
    char err[1024];
    struct rtmd_config *cfg = rtmd_config_load(path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return RTMD_CONFIG_EXIT;
    }
    int rc = 0;
    const struct rtmd_app *app = rtmd_config_app(cfg, rtmd_str_cstr(appid));
    if (!app) {
        fprintf(stderr, "rtmd token: %s: no app %s\n", path, appid);
        rc = 2;
    } else if (!app->has_certificate) {
        fprintf(stderr,
                "rtmd token: %s: app %s has no certificate (its clients log in without a "
                "token)\n",
                path, appid);
        rc = 2;
    } else {
        memcpy(cert, app->certificate, sizeof(app->certificate));
    }
    rtmd_config_free(cfg);
    return rc;
}

int rtmd_cli_token(int argc, char **argv)
{
    struct options o = {0};
    const struct {
        const char *name;
        const char **slot;
    } table[] = {
        {"appid", &o.appid},   {"app", &o.appid}, {"certificate", &o.certificate}, {"uid", &o.uid},
        {"expire", &o.expire}, {"v", &o.version}, {"config", &o.config},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0)
            return bad_usage("unexpected argument '%s'", a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const char **slot = NULL;
        for (size_t k = 0; k < RTMD_ARRAY_SIZE(table); k++)
            if (strlen(table[k].name) == nlen && memcmp(table[k].name, name, nlen) == 0)
                slot = table[k].slot;
        if (!slot)
            return bad_usage("unknown option '%s'", a);
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return bad_usage("option '%s' needs a value", a);
        }
        *slot = value;
    }

    if (!o.appid)
        return bad_usage("%s is required", "--appid");
    if (o.config && o.certificate)
        return bad_usage("give %s or %s, not both", "--certificate", "--config");
    if (!o.certificate && !o.config)
        return bad_usage("%s (or --config) is required", "--certificate");
    if (!o.uid)
        return bad_usage("%s is required", "--uid");
    if (!rtmd_appid_valid(rtmd_str_cstr(o.appid)))
        return bad_usage("%s: an App ID is 32 characters [0-9A-Za-z]", "--appid");
    if (o.certificate && !rtmd_certificate_valid(rtmd_str_cstr(o.certificate)))
        return bad_usage("%s: an App Certificate is 32 hex characters", "--certificate");
    if (!rtmd_id_valid(rtmd_str_cstr(o.uid)))
        return bad_usage("%s: a user ID is 1..64 of a-z A-Z 0-9 space and "
                         "!#$%%&()+-:;<=.>?@[]^_{}|~,' and not \"null\"",
                         "--uid");
    uint64_t expire = RTMD_TOKEN_LIFETIME_S;
    if (o.expire && rtmd_str_to_u64(rtmd_str_cstr(o.expire), RTMD_TOKEN_LIFETIME_S, &expire) != 0)
        return bad_usage("%s: seconds, 0..86400", "--expire");
    int version = 7;
    if (o.version) {
        if (strcmp(o.version, "006") == 0 || strcmp(o.version, "6") == 0)
            version = 6;
        else if (strcmp(o.version, "007") == 0 || strcmp(o.version, "7") == 0)
            version = 7;
        else
            return bad_usage("%s: 006 or 007", "--v");
    }

    char cert[33];
    if (o.config) {
        int rc = certificate_from_config(o.config, o.appid, cert);
        if (rc)
            return rc;
        o.certificate = cert;
    }

    uint32_t salt;
    if (random_salt(&salt) != 0) {
        fputs("rtmd token: no random bytes for the salt\n", stderr);
        return 1;
    }
    time_t t = time(NULL);
    if (t < 0 || (uint64_t)t + 2 * RTMD_TOKEN_LIFETIME_S > UINT32_MAX) {
        fputs("rtmd token: the clock is outside what a token can hold\n", stderr);
        return 1;
    }
    uint32_t now = (uint32_t)t;

    struct rtmd_buf out;
    rtmd_buf_init(&out, RTMD_TOKEN_MAX);
    int rc;
    if (version == 6)
        rc = rtmd_token_build_006(&out, rtmd_str_cstr(o.appid), rtmd_str_cstr(o.certificate),
                                  rtmd_str_cstr(o.uid), salt, now + RTMD_TOKEN_LIFETIME_S,
                                  expire ? now + (uint32_t)expire : 0);
    else
        rc = rtmd_token_build_007(&out, rtmd_str_cstr(o.appid), rtmd_str_cstr(o.certificate),
                                  rtmd_str_cstr(o.uid), now, (uint32_t)expire, salt);
    if (rc) {
        fprintf(stderr, "rtmd token: %s\n", rtmd_strerror(rc));
        rtmd_buf_free(&out);
        return 1;
    }
    fwrite(out.data, 1, out.len, stdout);
    fputc('\n', stdout);
    rtmd_buf_free(&out);
    return fflush(stdout) == 0 ? 0 : 1;
}
