/*
 * config_reload.c — a reload (SIGHUP): the config just loaded from the same
 * file is merged into the running one in place (config.h says what changes
 * live and what needs a restart). Objects never move: a removed app is
 * retired, not freed, so whatever still points at it stays valid.
 */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/config_internal.h"
#include "core/ids.h"

static void *grow(void *p, size_t n, size_t elem)
{
    if (n == 0)
        return rtmd_realloc(p, 4 * elem);
    if (n >= 4 && (n & (n - 1)) == 0)
        return rtmd_realloc(p, 2 * n * elem);
    return p;
}

/* Keys outside [limits] that change live; everything else needs a restart
 * (tls_ticket_rotate_s among them: the ticket key ring and its timer are set
 * up once, at start). */
static const char *const live_keys[] = {"log_level",       "log_format",  "log_file",
                                        "drain_s",         "tls_cert",    "tls_key",
                                        "allowed_origins", "cors_origins"};
/* [limits] that need a restart: sizes and durations fixed when the rings,
 * timeout queues and pins were made. */
static const char *const restart_limits[] = {
    "events_retain",          "heartbeat_timeout_s",      "login_timeout_s",
    "http_header_timeout_ms", "tls_handshake_timeout_ms", "http_idle_timeout_s",
    "history_handle_ttl_s",   "peer_ack_timeout_ms"};

static bool name_in(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

static bool opt_is_live(const struct opt *o)
{
    if (o->section == SEC_LIMITS)
        return !name_in(o->name, restart_limits, RTMD_ARRAY_SIZE(restart_limits));
    return name_in(o->name, live_keys, RTMD_ARRAY_SIZE(live_keys));
}

static bool opt_differs(const struct rtmd_config *a, const struct rtmd_config *b,
                        const struct opt *o)
{
    const char *pa = (const char *)a + o->offset, *pb = (const char *)b + o->offset;
    switch (o->type) {
    case T_U32: return memcmp(pa, pb, sizeof(uint32_t)) != 0;
    case T_BOOL: return *(const bool *)pa != *(const bool *)pb;
    case T_ENUM: return memcmp(pa, pb, sizeof(int)) != 0;
    case T_STRING: {
        const char *sa = *(char *const *)pa, *sb = *(char *const *)pb;
        return (sa == NULL) != (sb == NULL) || (sa && strcmp(sa, sb) != 0);
    }
    case T_LISTEN:
        return a->n_listeners != b->n_listeners ||
               memcmp(a->listeners, b->listeners, a->n_listeners * sizeof(a->listeners[0])) != 0;
    case T_ORIGINS: {
        const struct rtmd_origins *oa = (const void *)pa, *ob = (const void *)pb;
        if (oa->any != ob->any || oa->n != ob->n)
            return true;
        for (size_t i = 0; i < oa->n; i++)
            if (strcmp(oa->items[i], ob->items[i]) != 0)
                return true;
        return false;
    }
    case T_SECRET:
    case T_APPS:
    case T_EVENTS:
    case T_CERT: return false; /* customer, app and webhook keys: merged below */
    }
    return false;
}

/* Takes b's value of o (strings are swapped: b frees the old one). */
static void opt_take(struct rtmd_config *a, struct rtmd_config *b, const struct opt *o)
{
    char *pa = (char *)a + o->offset, *pb = (char *)b + o->offset;
    switch (o->type) {
    case T_U32: memcpy(pa, pb, sizeof(uint32_t)); break;
    case T_BOOL: memcpy(pa, pb, sizeof(bool)); break;
    case T_ENUM: memcpy(pa, pb, sizeof(int)); break;
    case T_STRING: {
        char *t = *(char **)pa;
        *(char **)pa = *(char **)pb;
        *(char **)pb = t;
        break;
    }
    case T_ORIGINS: { /* swapped too: b frees the old list */
        struct rtmd_origins t = *(struct rtmd_origins *)(void *)pa;
        *(struct rtmd_origins *)(void *)pa = *(struct rtmd_origins *)(void *)pb;
        *(struct rtmd_origins *)(void *)pb = t;
        break;
    }
    case T_LISTEN:
    case T_SECRET:
    case T_APPS:
    case T_EVENTS:
    case T_CERT: break; /* never live */
    }
}

void rtmd_config_retire_app(struct rtmd_config *cfg, struct rtmd_app *app)
{
    if (app->retired)
        return;
    rtmd_hashmap_remove(&cfg->apps_by_id, rtmd_str_make(app->id, RTMD_APPID_LEN));
    app->retired = true;
    rtmd_free(app->owners);
    app->owners = NULL;
    app->n_owners = 0;
}

static struct rtmd_app *find_any_app(struct rtmd_config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_apps; i++)
        if (memcmp(cfg->apps[i]->id, id, RTMD_APPID_LEN) == 0)
            return cfg->apps[i];
    return NULL;
}

static void push_app(struct rtmd_app ***list, size_t *n, struct rtmd_app *app)
{
    *list = grow(*list, *n, sizeof(**list));
    (*list)[(*n)++] = app;
}

static void merge_apps(struct rtmd_config *live, struct rtmd_config *fresh,
                       struct rtmd_config_changes *out)
{
    for (size_t i = 0; i < fresh->n_apps; i++) {
        struct rtmd_app *f = fresh->apps[i];
        struct rtmd_app *l = find_any_app(live, f->id);
        if (!l) {
            f->index = (uint32_t)live->n_apps;
            live->apps = grow(live->apps, live->n_apps, sizeof(*live->apps));
            live->apps[live->n_apps++] = f;
            rtmd_hashmap_put(&live->apps_by_id, rtmd_str_make(f->id, RTMD_APPID_LEN), f);
            fresh->apps[i] = NULL;
            push_app(&out->added, &out->n_added, f);
            continue;
        }
        bool owners_changed = l->n_owners != f->n_owners;
        for (size_t k = 0; k < f->n_owners && !owners_changed; k++)
            owners_changed = strcmp(l->owners[k]->id, f->owners[k]->id) != 0;
        if (strcmp(l->certificate, f->certificate) != 0 ||
            l->has_certificate != f->has_certificate ||
            l->vendor_token_access != f->vendor_token_access || owners_changed)
            out->n_apps_changed++;
        /* Every [app:] key: a key added to the table is added here too. */
        memcpy(l->certificate, f->certificate, sizeof(l->certificate));
        l->has_certificate = f->has_certificate;
        l->vendor_token_access = f->vendor_token_access;
        struct rtmd_customer **owners = l->owners;
        size_t n_owners = l->n_owners;
        l->owners = f->owners; /* fresh's customers: they move to live below */
        l->n_owners = f->n_owners;
        f->owners = owners; /* freed with fresh */
        f->n_owners = n_owners;
        if (l->retired) {
            l->retired = false;
            rtmd_hashmap_put(&live->apps_by_id, rtmd_str_make(l->id, RTMD_APPID_LEN), l);
            out->n_readded++;
        }
    }
    for (size_t i = 0; i < live->n_apps; i++) {
        struct rtmd_app *l = live->apps[i];
        if (l->retired || rtmd_config_app(fresh, rtmd_str_make(l->id, RTMD_APPID_LEN)))
            continue;
        rtmd_config_retire_app(live, l);
        push_app(&out->removed, &out->n_removed, l);
    }
}

void rtmd_config_merge(struct rtmd_config *live, struct rtmd_config *fresh,
                       struct rtmd_config_changes *out)
{
    memset(out, 0, sizeof(*out));
    size_t used = 0;
    for (size_t i = 0; i < rtmd_config_n_options; i++) {
        const struct opt *o = &rtmd_config_options[i];
        if (o->section != SEC_SERVER && o->section != SEC_STORE && o->section != SEC_LIMITS)
            continue;
        if (!opt_differs(live, fresh, o))
            continue;
        if (opt_is_live(o)) {
            opt_take(live, fresh, o);
        } else if (used < sizeof(out->restart_keys)) {
            int n = snprintf(out->restart_keys + used, sizeof(out->restart_keys) - used, "%s%s",
                             used ? ", " : "", o->name);
            used += n > 0 ? (size_t)n : 0;
        }
    }
    merge_apps(live, fresh, out);
    /* Customers: fresh's, their apps pointing at live's objects. */
    for (size_t i = 0; i < fresh->n_customers; i++) {
        struct rtmd_customer *c = fresh->customers[i];
        for (size_t k = 0; k < c->n_apps; k++)
            c->apps[k] = rtmd_config_app(live, rtmd_str_make(c->apps[k]->id, RTMD_APPID_LEN));
    }
    struct rtmd_customer **customers = live->customers;
    size_t n_customers = live->n_customers;
    struct rtmd_hashmap by_id = live->customers_by_id;
    live->customers = fresh->customers;
    live->n_customers = fresh->n_customers;
    live->customers_by_id = fresh->customers_by_id;
    fresh->customers = customers;
    fresh->n_customers = n_customers;
    fresh->customers_by_id = by_id;
    /* Webhooks: fresh's (the webhook module copies what it keeps). */
    struct rtmd_webhook_config **hooks = live->webhooks;
    size_t n_hooks = live->n_webhooks;
    live->webhooks = fresh->webhooks;
    live->n_webhooks = fresh->n_webhooks;
    fresh->webhooks = hooks;
    fresh->n_webhooks = n_hooks;
    rtmd_config_free(fresh);
}

void rtmd_config_changes_free(struct rtmd_config_changes *c)
{
    rtmd_free(c->added);
    rtmd_free(c->removed);
    c->added = c->removed = NULL;
}
