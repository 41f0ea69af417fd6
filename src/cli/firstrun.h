/*
 * firstrun.h — `rtmd` with no arguments: a working embedded default.
 *
 * The first time, it makes ./rtmd-data with a config (rtmd.conf), a demo
 * app (App ID + certificate), a demo customer (ID + secret) and, at start,
 * a self-signed TLS pair; it prints them with a ready curl line. Later runs
 * reuse ./rtmd-data/rtmd.conf.
 */
#ifndef RTMD_CLI_FIRSTRUN_H
#define RTMD_CLI_FIRSTRUN_H

#include <stddef.h>

#include "core/config.h"

#define RTMD_DEFAULT_DATA_DIR "rtmd-data"
#define RTMD_DEFAULT_CONFIG   "rtmd-data/rtmd.conf"
#define RTMD_FIRSTRUN_LISTEN  "127.0.0.1:8443@default" /* written into the first config */

/* Creates the default data dir and config unless they exist. Sets *created
 * when it made them. 0, or -1 with a message in err. */
int rtmd_firstrun_prepare(bool *created, char *err, size_t errlen);
/* Prints the demo credentials and a curl line for cfg (after it loaded),
 * for the first listener: bound is its address, tls whether it serves TLS. */
void rtmd_firstrun_banner(const struct rtmd_config *cfg, const char *bound, bool tls, bool created);
/* mkdir -p with mode 0700. */
int rtmd_mkdirs(const char *path);

#endif
