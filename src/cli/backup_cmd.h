/*
 * backup_cmd.h — `rtmd backup FILE`: an online copy of the embedded store.
 *
 *   rtmd backup [--config FILE | --data-dir DIR] [--quiet] OUT
 *
 * Copies DATA_DIR/rtmd.db to OUT with SQLite's backup API while rtmd may be
 * running and writing. The copy is one consistent snapshot: a read
 * transaction held on the live database for the whole copy, so everything
 * committed before the backup started is in it (every event rtmd had
 * acknowledged), and nothing half-written is. OUT is written next to itself
 * (OUT.tmp), checked with PRAGMA integrity_check, switched to the rollback
 * journal (one self-contained file), fsynced, then renamed into place.
 *
 * Without --config or --data-dir the default first-run config
 * (./rtmd-data/rtmd.conf) names the data directory. A config with
 * `[store] backend = redis` is refused: Redis's own persistence (RDB
 * snapshots, AOF) is that store's backup.
 */
#ifndef RTMD_CLI_BACKUP_CMD_H
#define RTMD_CLI_BACKUP_CMD_H

/* argv[0] is "backup". Returns 0 when OUT holds a checked copy; 2 for bad
 * usage or a bad config (a message on stderr); 1 when the copy failed (OUT
 * is left untouched). */
int rtmd_cli_backup(int argc, char **argv);

#endif
