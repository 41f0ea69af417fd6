"""`rtmd backup OUT` (docs/OPERATIONS.md "Backup and restore"): an online
copy of the embedded store with SQLite's backup API, taken while rtmd writes
(logins, joins, history messages from several clients). The copy opens,
passes PRAGMA integrity_check, and holds every event acknowledged before the
backup started. With backend = redis it refuses: Redis's own persistence is
that store's backup."""
import json
import os
import sqlite3
import subprocess
import threading

from harness import APP_NOCERT, RTMD_BIN, basic, wait_until


def backup(*args):
    return subprocess.run([RTMD_BIN, "backup"] + list(args), capture_output=True, text=True,
                          timeout=60)


def write_load(r, tag, stop, acked, published, errors):
    """Sessions one after another: login, join, a history message (so the
    database grows to several backup steps), close. Each (uid, channel)
    goes to `acked` once its Join was acknowledged, and to `published` once
    its message was."""
    i = 0
    try:
        while not stop.is_set():
            uid, ch = "%s%d" % (tag, i), "c%d" % (i % 7)
            with r.ws() as ws:
                assert ws.login(uid, app=APP_NOCERT)["ok"]
                assert ws.call("join", channel=ch)["ok"]
                acked.append((uid, ch))
                assert ws.call("publish", channel=ch, payload="p" * 6000, history=True)["ok"]
                published.append((uid, ch))
            i += 1
    except Exception as e:  # reported by the test
        errors.append(e)


def events_in(path, kind):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        rows = db.execute("SELECT json FROM events WHERE app=? AND kind=? ORDER BY seq",
                          (APP_NOCERT, kind)).fetchall()
    finally:
        db.close()
    return [json.loads(j) for (j,) in rows]


def test_backup_under_write_load_holds_every_acknowledged_event(make_rtmd, store_backend, tmp_path):
    r = make_rtmd(limits={"events_retain": 1000000})
    out = str(tmp_path / "backup.db")
    if store_backend == "redis":
        res = backup("--config", r.conf_path, out)
        assert res.returncode == 2, res
        assert "backend = redis" in res.stderr and "RDB" in res.stderr, res.stderr
        assert not os.path.exists(out)
        return

    stop, acked, published, errors = threading.Event(), [], [], []
    writers = [threading.Thread(target=write_load, args=(r, t, stop, acked, published, errors))
               for t in ("a", "b", "c")]
    for w in writers:
        w.start()
    try:
        wait_until(lambda: len(acked) >= 400 or errors, timeout=60, what="400 acknowledged joins")
        before = list(acked)  # acknowledged before the backup started
        n_published = len(published)
        res = backup("--config", r.conf_path, out)
        during = len(acked) - len(before)
        wait_until(lambda: len(acked) >= len(before) + during + 20 or errors, timeout=30,
                   what="writes after the backup")
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert not errors, errors
    assert res.returncode == 0, res
    assert "integrity_check ok" in res.stdout, res.stdout
    assert not os.path.exists(out + ".tmp")
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"

    db = sqlite3.connect("file:%s?mode=ro" % out, uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] >= n_published
    finally:
        db.close()
    assert not os.path.exists(out + "-wal")
    # several backup steps' worth (256 pages of 4 KiB each)
    assert os.path.getsize(out) > 2 * 256 * 4096

    logins = {e["user_id"] for e in events_in(out, 0) if e["type"] == "Login"}
    joins = {(e["user_id"], e["channel_id"]) for e in events_in(out, 1) if e["type"] == "Join"}
    assert [u for u, _ in before if u not in logins] == []
    assert [j for j in before if j not in joins] == []
    # rtmd went on serving, and the live store has more than the copy
    assert r.alive()
    # the channel log holds each session's Leave too: pull until every Join is in
    live = []

    def all_joins():
        st, hd, body = r.events_raw("channel", app=APP_NOCERT, headers={"Authorization": basic()})
        assert st in (200, 429), (st, body)
        if st == 200:
            live.extend(e for e in json.loads(body)["events"] if e["type"] == "Join")
        return len(live) >= len(acked)
    wait_until(all_joins, 30, interval=0.05, what="%d Joins" % len(acked))
    assert len(live) == len(acked) > len(before)


def test_backup_usage_and_errors(tmp_path):
    assert backup().returncode == 2
    assert backup("--config", "a", "--data-dir", "b", "out").returncode == 2
    res = backup("--data-dir", str(tmp_path / "none"), str(tmp_path / "out.db"))
    assert res.returncode == 1 and "rtmd.db" in res.stderr, res
    assert not os.path.exists(tmp_path / "out.db")
    bad = tmp_path / "bad.conf"
    bad.write_text("[server]\nnope = 1\n")
    res = backup("--config", str(bad), str(tmp_path / "out.db"))
    assert res.returncode == 2 and "bad.conf:2" in res.stderr, res


def test_backup_never_writes_over_the_live_store(make_rtmd, store_backend):
    if store_backend == "redis":
        return  # no local store (the refusal is tested above)
    r = make_rtmd()
    with r.ws() as ws:
        assert ws.login("keep", app=APP_NOCERT)["ok"]
    live = os.path.join(r.data_dir, "rtmd.db")
    res = backup("--config", r.conf_path, live)
    assert res.returncode == 1 and "live store" in res.stderr, res
    assert not os.path.exists(live + ".tmp")
    assert [(e["type"], e["user_id"]) for e in r.pull_until(2, app=APP_NOCERT)] == [
        ("Login", "keep"), ("Logout", "keep")]
