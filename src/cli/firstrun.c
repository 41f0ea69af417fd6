#include "cli/firstrun.h"

#include <errno.h>
#include <limits.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"

int rtmd_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                return -errno;
            tmp[i] = c;
        }
    }
    return 0;
}

static void random_hex(char *out, size_t bytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    RAND_bytes(raw, (int)bytes);
    for (size_t i = 0; i < bytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * bytes] = '\0';
}

int rtmd_firstrun_prepare(bool *created, char *err, size_t errlen)
{
    *created = false;
    if (access(RTMD_DEFAULT_CONFIG, F_OK) == 0)
        return 0;
    int r = rtmd_mkdirs(RTMD_DEFAULT_DATA_DIR);
    if (r < 0) {
        snprintf(err, errlen, "%s: cannot create: %s", RTMD_DEFAULT_DATA_DIR, strerror(-r));
        return -1;
    }
    char cwd[PATH_MAX], data_dir[PATH_MAX + 16];
    if (!getcwd(cwd, sizeof(cwd))) {
        snprintf(err, errlen, "getcwd: %s", strerror(errno));
        return -1;
    }
    snprintf(data_dir, sizeof(data_dir), "%s/%s", cwd, RTMD_DEFAULT_DATA_DIR);
    char app[33], cert[33], cust[20], secret[33];
    random_hex(app, 16);
    random_hex(cert, 16);
    memcpy(cust, "ck_", 3);
    random_hex(cust + 3, 8);
    random_hex(secret, 16);
    struct rtmd_buf b;
    rtmd_buf_init(&b, 1 << 20);
    /* Loopback: the demo's credentials are printed on the terminal, and the
     * server it starts is for trying rtmd on this machine. Serving other
     * machines is a choice made by editing listen. */
    if (rtmd_config_write_sample(&b, RTMD_FIRSTRUN_LISTEN, data_dir, cust, secret, app, cert) < 0) {
        rtmd_buf_free(&b);
        snprintf(err, errlen, "cannot build the default config");
        return -1;
    }
    FILE *f = fopen(RTMD_DEFAULT_CONFIG, "w");
    if (!f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0) {
        snprintf(err, errlen, "%s: cannot write: %s", RTMD_DEFAULT_CONFIG, strerror(errno));
        rtmd_buf_free(&b);
        return -1;
    }
    chmod(RTMD_DEFAULT_CONFIG, 0600);
    rtmd_buf_free(&b);
    *created = true;
    return 0;
}

void rtmd_firstrun_banner(const struct rtmd_config *cfg, const char *bound, bool tls, bool created)
{
    const struct rtmd_customer *cust = cfg->n_customers ? cfg->customers[0] : NULL;
    const struct rtmd_app *app = NULL;
    if (cust && cust->n_apps)
        app = cust->apps[0];
    else if (cfg->n_apps)
        app = cfg->apps[0];
    const char *scheme = tls ? "https" : "http";
    /* The URLs name the address bound; a wildcard one (all interfaces, after
     * an edit of listen) is reached from here on loopback. */
    char host[96];
    snprintf(host, sizeof(host), "%s", bound);
    if (strncmp(host, "0.0.0.0:", 8) == 0) {
        memmove(host + 9, host + 7, strlen(host + 7) + 1);
        memcpy(host, "127.0.0.1", 9);
    } else if (strncmp(host, "[::]:", 5) == 0) {
        memmove(host + 5, host + 4, strlen(host + 4) + 1);
        memcpy(host, "[::1]", 5);
    }
    printf("rtmd %s %s\n", RTMD_VERSION, created ? "first run: created rtmd-data/" : "");
    printf("  config       %s\n", cfg->path);
    printf("  data         %s\n", cfg->data_dir);
    if (app) {
        printf("  App ID       %s\n", app->id);
        if (app->has_certificate)
            printf("  Certificate  %s\n", app->certificate);
    }
    if (cust) {
        printf("  Customer ID  %s\n", cust->id);
        printf("  Secret       %s\n", cust->secret);
    }
    printf("  listening    %s://%s (WebSocket: %s://%s/v1/rtm)%s\n", scheme, host,
           tls ? "wss" : "ws", host, strcmp(host, bound) ? " on every interface" : "");
    if (app && cust)
        printf("Read the user events:\n  curl %s-u %s:%s %s://%s/dev/v2/project/%s/rtm/vendor/"
               "user_events\n",
               tls && !cfg->tls_cert ? "-k " : "", cust->id, cust->secret, scheme, host, app->id);
    if (app && app->has_certificate)
        printf("Make a client token:\n  rtmd token --appid %s --certificate %s --uid alice\n",
               app->id, app->certificate);
    fflush(stdout);
}
