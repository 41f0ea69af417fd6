/*
 * redis_url.h — the seeds of [store] redis_url: a comma-separated list of
 *
 *   redis://[[USER]:PASSWORD@]HOST[:PORT][/0]
 *
 * HOST is a name, an IPv4 address or an [IPv6] address in brackets; PORT
 * defaults to 6379. USER and PASSWORD are percent-decoded (a password may
 * hold any byte but NUL that way); with a password rtmd sends AUTH [USER]
 * PASSWORD first. Only database 0 exists in a Redis Cluster, so a path other
 * than "/0" (or none) is refused, as are query strings, "rediss://" (TLS to
 * Redis: hiredis 0.14 has none) and "unix://" sockets. One instance or any
 * nodes of a Cluster may be given; which it is, is found when connecting.
 *
 * Pure: no I/O, no allocation.
 */
#ifndef RTMD_CORE_REDIS_URL_H
#define RTMD_CORE_REDIS_URL_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

#define RTMD_REDIS_SEEDS_MAX       16
#define RTMD_REDIS_SEED_HOST_MAX   256 /* bytes with the NUL */
#define RTMD_REDIS_SEED_USER_MAX   128
#define RTMD_REDIS_SEED_SECRET_MAX 256

struct rtmd_redis_seed {
    char host[RTMD_REDIS_SEED_HOST_MAX]; /* without brackets */
    uint16_t port;
    char user[RTMD_REDIS_SEED_USER_MAX];       /* "" when not given */
    char password[RTMD_REDIS_SEED_SECRET_MAX]; /* "" when not given */
};

/* One URL. 0, or -EINVAL with *why naming what is wrong (a static string). */
int rtmd_redis_url_parse(struct rtmd_str url, struct rtmd_redis_seed *out, const char **why);

/* A comma-separated list (spaces around items ignored, empty items
 * skipped); at least one, at most max. 0 and *n, or -EINVAL with *why and
 * *bad the index of the item that is wrong (0-based). */
int rtmd_redis_urls_parse(struct rtmd_str list, struct rtmd_redis_seed *out, size_t max, size_t *n,
                          const char **why, size_t *bad);

#endif
