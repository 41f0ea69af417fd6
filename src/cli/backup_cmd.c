/*
 * backup_cmd.c — the `rtmd backup` subcommand (see backup_cmd.h).
 *
 * Why this is safe while rtmd writes: rtmd keeps its database in WAL mode,
 * where readers never block the writer nor see its uncommitted pages. The
 * copy opens the live database read-only and holds ONE read transaction
 * across every sqlite3_backup_step(): all steps then read the same snapshot,
 * so the writer's commits meanwhile neither restart the copy nor end up half
 * in it. The steps are chunks (STEP_PAGES) only so that a busy lock is
 * retried between them; rtmd never waits for the copy (its checkpoints just
 * stop short of the snapshot until the copy ends, and the WAL grows by what
 * is written meanwhile).
 */
#include "cli/backup_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/firstrun.h"
#include "core/config.h"

#define STEP_PAGES      256  /* pages copied per sqlite3_backup_step() */
#define BUSY_WAIT_MS    5000 /* a lock held longer than this fails the backup */
#define BUSY_RETRY_MS   10
#define BUSY_RETRIES    (BUSY_WAIT_MS / BUSY_RETRY_MS)
#define BACKUP_PATH_MAX 4096

static const char usage[] =
    "usage: rtmd backup [--config FILE | --data-dir DIR] OUT\n"
    "\n"
    "Copies the embedded store (DATA_DIR/rtmd.db) to OUT while rtmd runs: one\n"
    "consistent snapshot holding everything committed before the copy started,\n"
    "checked with PRAGMA integrity_check. Without --config or --data-dir,\n"
    "./rtmd-data/rtmd.conf names the data directory. With backend = redis,\n"
    "back up Redis itself (RDB or AOF) instead.\n"
    "\n"
    "  --config FILE   the server's config: its data_dir and backend\n"
    "  --data-dir DIR  the data directory itself\n"
    "  --help          this text\n";

/* "rtmd backup: PATH: WHAT: DETAIL" on stderr; returns 1. */
static int fail(const char *path, const char *what, const char *detail)
{
    fprintf(stderr, "rtmd backup: %s: %s: %s\n", path, what, detail);
    return 1;
}

/* Runs sql on db (no result rows wanted); on failure writes SQLite's message
 * into err. */
static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc;
}

/* PRAGMA integrity_check on the copy: "ok", or the first problem. */
static int check_copy(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        snprintf(err, errlen, "integrity_check: %s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    const char *res = (const char *)sqlite3_column_text(st, 0);
    int ok = res && strcmp(res, "ok") == 0;
    if (!ok)
        snprintf(err, errlen, "integrity_check: %s", res ? res : "(null)");
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Copies src (open, read transaction held) into the new file tmp. */
static int copy_into(sqlite3 *src, const char *tmp, int *pages, char *err, size_t errlen)
{
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s", dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        sqlite3_close(dst);
        return -1;
    }
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(dst));
        sqlite3_close(dst);
        return -1;
    }
    int busy = 0;
    do {
        rc = sqlite3_backup_step(b, STEP_PAGES);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
            if (++busy > BUSY_RETRIES)
                break;
            sqlite3_sleep(BUSY_RETRY_MS);
            rc = SQLITE_OK;
        } else {
            busy = 0;
        }
    } while (rc == SQLITE_OK);
    *pages = sqlite3_backup_pagecount(b);
    int frc = sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE || frc != SQLITE_OK) {
        snprintf(err, errlen, "copy: %s",
                 rc == SQLITE_BUSY || rc == SQLITE_LOCKED
                     ? "locked for too long"
                     : sqlite3_errstr(rc != SQLITE_DONE ? rc : frc));
        sqlite3_close(dst);
        return -1;
    }
    /* The copy carries the live file's WAL flag; one self-contained file is
     * what a backup should be. */
    if (check_copy(dst, err, errlen) < 0 ||
        exec(dst, "PRAGMA journal_mode=DELETE", err, errlen) != SQLITE_OK) {
        sqlite3_close(dst);
        return -1;
    }
    if (sqlite3_close(dst) != SQLITE_OK) {
        snprintf(err, errlen, "closing the copy failed");
        return -1;
    }
    return 0;
}

/* Finds the data directory (and refuses the redis backend). */
static int find_data_dir(const char *config, const char *data_dir, char *out, size_t outlen)
{
    if (data_dir) {
        if ((size_t)snprintf(out, outlen, "%s", data_dir) >= outlen)
            return fail(data_dir, "path", "too long");
        return 0;
    }
    if (!config)
        config = RTMD_DEFAULT_CONFIG;
    char err[1024];
    struct rtmd_config *cfg = rtmd_config_load(config, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return RTMD_CONFIG_EXIT;
    }
    int rc = 0;
    if (cfg->backend == RTMD_STORE_REDIS) {
        fprintf(stderr,
                "rtmd backup: %s: [store] backend = redis: rtmd keeps nothing to copy; back up "
                "Redis with its own persistence (RDB snapshots or the AOF)\n",
                config);
        rc = RTMD_CONFIG_EXIT;
    } else if ((size_t)snprintf(out, outlen, "%s", cfg->data_dir) >= outlen) {
        rc = fail(cfg->data_dir, "path", "too long");
    }
    rtmd_config_free(cfg);
    return rc;
}

int rtmd_cli_backup(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"data-dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *data_dir = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+c:d:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind != argc - 1 || (config && data_dir)) {
        fputs(usage, stderr);
        return 2;
    }
    const char *out = argv[optind];
    char dir[BACKUP_PATH_MAX], db[BACKUP_PATH_MAX + 16], tmp[BACKUP_PATH_MAX + 16];
    int rc = find_data_dir(config, data_dir, dir, sizeof(dir));
    if (rc)
        return rc;
    snprintf(db, sizeof(db), "%s/rtmd.db", dir);
    if (strlen(out) >= BACKUP_PATH_MAX)
        return fail(out, "path", "too long");
    snprintf(tmp, sizeof(tmp), "%s.tmp", out);
    struct stat db_st, out_st;
    if (stat(db, &db_st) != 0 || access(db, R_OK) != 0)
        return fail(db, "cannot read the store", strerror(errno));
    if (stat(out, &out_st) == 0 && out_st.st_dev == db_st.st_dev && out_st.st_ino == db_st.st_ino)
        return fail(out, "refused", "that is the live store itself");

    umask(077); /* the copy holds what the store holds */
    sqlite3 *src = NULL;
    char err[1024];
    rc = sqlite3_open_v2(db, &src, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        fail(db, "open", src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
        sqlite3_close(src);
        return 1;
    }
    sqlite3_busy_timeout(src, BUSY_WAIT_MS);
    /* The snapshot: a read transaction for the whole copy. */
    if (exec(src, "BEGIN; SELECT count(*) FROM sqlite_schema", err, sizeof(err)) != SQLITE_OK) {
        sqlite3_close(src);
        return fail(db, "read", err);
    }
    if (unlink(tmp) != 0 && errno != ENOENT) {
        sqlite3_close(src);
        return fail(tmp, "remove", strerror(errno));
    }
    int pages = 0;
    rc = copy_into(src, tmp, &pages, err, sizeof(err));
    int page_size = 0;
    if (rc == 0) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(src, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            page_size = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    exec(src, "COMMIT", err + 512, sizeof(err) - 512);
    sqlite3_close(src);
    if (rc < 0) {
        unlink(tmp);
        return fail(out, "backup failed", err);
    }
    /* Durable before it takes the name: the file, then the directory. */
    char parent[BACKUP_PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", out);
    char *slash = strrchr(parent, '/');
    if (!slash)
        snprintf(parent, sizeof(parent), ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    if (fsync_path(tmp, O_RDONLY) != 0 || rename(tmp, out) != 0 ||
        fsync_path(parent, O_RDONLY | O_DIRECTORY) != 0) {
        int e = errno;
        unlink(tmp);
        return fail(out, "write", strerror(e));
    }
    printf("rtmd backup: %s: %d pages of %d bytes from %s, integrity_check ok\n", out, pages,
           page_size, db);
    return 0;
}
