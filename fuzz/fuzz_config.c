/*
 * fuzz_config.c — feeds arbitrary bytes to rtmd_config_load_string() and
 * checks what comes back: either NULL with one "fuzz.ini:..." message, or a
 * config whose invariants hold (listeners, regions, app indexes, owners,
 * lookups). Every result is freed, so a leak shows under ASan.
 *
 * Inputs with a NUL byte are cut there for the string API, and read whole
 * (the reader refuses the NUL) with the environment overrides.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_config: invariant failed: %s (line %d)\n", #cond, __LINE__);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_config(const struct rtmd_config *cfg)
{
    CHECK(cfg->n_listeners >= 1 && cfg->n_listeners <= RTMD_LISTENERS_MAX);
    CHECK(cfg->n_regions >= 1 && cfg->n_regions <= RTMD_REGIONS_MAX);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct rtmd_listener_config *l = &cfg->listeners[i];
        CHECK(l->region_index < cfg->n_regions);
        CHECK(strcmp(cfg->regions[l->region_index], l->region) == 0);
        CHECK(rtmd_config_region(cfg, l->region) == (int)l->region_index);
        CHECK(memchr(l->host, '\0', sizeof(l->host)) != NULL);
    }
    CHECK(cfg->data_dir && cfg->redis_url);
    CHECK(!cfg->tls_cert == !cfg->tls_key);
    CHECK(cfg->limits.events_max_pull <= cfg->limits.events_retain);
    CHECK((uint64_t)cfg->limits.ws_max_message >= (uint64_t)cfg->limits.max_payload + 1024);
    CHECK(rtmd_hashmap_count(&cfg->apps_by_id) == cfg->n_apps);
    CHECK(rtmd_hashmap_count(&cfg->customers_by_id) == cfg->n_customers);
    for (size_t i = 0; i < cfg->n_apps; i++) {
        const struct rtmd_app *a = cfg->apps[i];
        CHECK(a->index == i);
        CHECK(strlen(a->id) == 32);
        CHECK(rtmd_config_app(cfg, rtmd_str_make(a->id, 32)) == a);
        CHECK(a->has_certificate ? strlen(a->certificate) == 32 : a->certificate[0] == '\0');
        for (size_t j = 0; j < a->n_owners; j++) {
            const struct rtmd_customer *c = a->owners[j];
            bool found = false;
            for (size_t k = 0; k < c->n_apps && !found; k++)
                found = c->apps[k] == a;
            CHECK(found);
        }
    }
    for (size_t i = 0; i < cfg->n_customers; i++) {
        const struct rtmd_customer *c = cfg->customers[i];
        CHECK(c->id && c->secret);
        CHECK(rtmd_config_customer(cfg, rtmd_str_cstr(c->id)) == c);
        for (size_t k = 0; k < c->n_apps; k++) {
            const struct rtmd_app *a = c->apps[k];
            CHECK(a->n_owners >= 1);
            bool found = false;
            for (size_t j = 0; j < a->n_owners && !found; j++)
                found = a->owners[j] == c;
            CHECK(found);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > RTMD_CONFIG_FILE_MAX + 1)
        return 0;
    char *text = rtmd_malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char err[256];
    struct rtmd_config *cfg = rtmd_config_load_string("fuzz.ini", text, err, sizeof(err));
    if (cfg) {
        check_config(cfg);
        /* The sample writer must accept what the parser produced, or refuse cleanly. */
        if (cfg->n_apps && cfg->n_customers) {
            struct rtmd_buf b;
            rtmd_buf_init(&b, 1 << 20);
            const struct rtmd_app *a =
                cfg->customers[0]->n_apps ? cfg->customers[0]->apps[0] : cfg->apps[0];
            int rc = rtmd_config_write_sample(&b, NULL, cfg->data_dir, cfg->customers[0]->id,
                                              cfg->customers[0]->secret, a->id,
                                              a->has_certificate ? a->certificate : NULL);
            CHECK(rc == 0 || rc == -EINVAL);
            rtmd_buf_free(&b);
        }
        rtmd_config_free(cfg);
    } else {
        CHECK(strncmp(err, "fuzz.ini:", 9) == 0);
    }
    /* The same file under environment overrides: a config whose invariants
     * hold, or one message that names the file or a variable. */
    char *env[] = {"RTMD_SERVER_LISTEN=127.0.0.1:0@a, [::1]:0@b", "RTMD_LIMITS_EVENTS_RETAIN=5",
                   "RTMD_BIN=/x", NULL};
    cfg = rtmd_config_load_text("fuzz.ini", text, size, env, err, sizeof(err));
    if (cfg) {
        check_config(cfg);
        CHECK(cfg->n_listeners == 2 && cfg->limits.events_retain == 5 && cfg->n_overrides == 2);
        rtmd_config_free(cfg);
    } else {
        CHECK(strncmp(err, "fuzz.ini:", 9) == 0 || strncmp(err, "environment RTMD_", 17) == 0);
    }
    rtmd_free(text);
    return 0;
}
