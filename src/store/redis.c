/*
 * redis.c — the cluster backend (SPEC §6). Not built yet: opening it fails
 * with -ENOTSUP so a config asking for it stops at start with a clear error.
 */
#include "store/store.h"

static int redis_open(struct rtmd_store **out, const struct rtmd_config *cfg, uv_loop_t *loop)
{
    (void)cfg;
    (void)loop;
    *out = NULL;
    return -ENOTSUP;
}

const struct rtmd_store_type rtmd_store_redis = {
    .name = "redis",
    .open = redis_open,
};
