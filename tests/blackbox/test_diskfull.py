"""A full data directory: rtmd runs with data_dir on a small tmpfs this test
mounts, and a filler file takes every free byte.

While it is full, what needs a write is refused with the documented answers
(WebSocket login/join/kept messages: "unavailable"; REST sends that keep a
message and pulls whose read position cannot be written: 503 "unavailable",
nothing kept or consumed; /healthz: 503), while sessions and memberships
that end are not lost: their Leaves and Logouts are kept and written once
space is back, after the Logins and Joins they end and before anything
recorded later, once each. A kill -9 or SIGTERM while records are owed loses
none either: the next start ends those sessions from the session table.

Needs root (mount); skipped otherwise."""
import errno
import json
import os
import subprocess
import time

import pytest

from harness import APP_NOCERT, Rtmd, Ws, basic, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

TMPFS_SIZE = "16m"  # room for a 1000-page WAL and the database
APP = APP_NOCERT  # no tokens needed


class Disk:
    """A tmpfs mounted for one test, and a filler file that takes all of it."""

    def __init__(self, path):
        self.path = path
        self.filler = os.path.join(path, "filler")

    def fill(self):
        with open(self.filler, "ab", buffering=0) as f:
            for size in (1 << 20, 1 << 16, 4096, 512, 1):
                while True:
                    try:
                        f.write(b"\xa5" * size)
                    except OSError as e:
                        assert e.errno == errno.ENOSPC, e
                        break
        st = os.statvfs(self.path)
        assert st.f_bavail == 0, "the tmpfs still has %d free blocks" % st.f_bavail

    def free(self):
        os.unlink(self.filler)


@pytest.fixture
def disk(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % TMPFS_SIZE, "tmpfs",
                    str(mnt)], check=True)
    try:
        yield Disk(str(mnt))
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.fixture
def node(tmp_path, disk):
    """Starts the rtmd of the test with data_dir on the tmpfs (its log and
    config stay outside); stopped (exit 0, clean log) before the unmount."""
    started = []

    def make():
        d = tmp_path / "n"
        d.mkdir()
        r = Rtmd(d, limits={"events_qps": 1000, "heartbeat_timeout_s": 300})
        r.data_dir = os.path.join(disk.path, "data")
        r.write_config()
        started.append(r)
        return r.start()

    yield make
    for r in started:
        assert not r.died(), "rtmd died during the test (exit %s):\n%s" % (
            r.proc.returncode, r.read_log()[-6000:])
        if r.alive():
            if os.path.exists(disk.filler):
                disk.free()  # a failed test: let it stop normally
            rc = r.stop()
            assert rc == 0, "rtmd exited %s on SIGTERM:\n%s" % (rc, r.read_log()[-4000:])
        r.assert_clean_log()


# -- helpers -------------------------------------------------------------------

def health(r):
    st, hd, body = r.get("/healthz")
    return st, json.loads(body)


def metric(r, name):
    return r.metrics()[name]


def assert_unavailable(reply):
    assert reply["ok"] is False and reply["error"] == "unavailable", reply
    assert "disk is full" in reply["message"], reply


class Log:
    """Everything pulled from both event logs of APP in the default region."""

    def __init__(self, r):
        self.r = r
        self.users = []
        self.chans = []
        self.refused = 0  # pulls answered 503 (nothing consumed)

    def pull(self):
        for kind, into in (("user", self.users), ("channel", self.chans)):
            st, hd, body = self.r.events_raw(kind, app=APP, headers={"Authorization": basic()})
            if st == 503:
                d = json.loads(body)
                assert d["code"] == "unavailable" and d["result"] == "failed", body
                self.refused += 1
                continue
            assert st == 200, (st, body)
            into.extend(json.loads(body)["events"])

    def per_user(self):
        out = {}
        for e in self.users:
            out.setdefault(e["user_id"], []).append(e["type"])
        return out

    def per_membership(self):
        out = {}
        for e in self.chans:
            out.setdefault((e["user_id"], e["channel_id"]), []).append(e["type"])
        return out

    def still_open(self):
        """Pulls, then returns (uids whose last event is a Login, memberships
        whose last is a Join). A sequence other than Login, Logout, Login...
        (or Join, Leave, ...) — a doubled or a lost record — fails at once."""
        self.pull()
        users, members = set(), set()
        for uid, types in self.per_user().items():
            want = ["Login", "Logout"] * (len(types) // 2) + ["Login"] * (len(types) % 2)
            assert types == want, (uid, types)
            if len(types) % 2:
                users.add(uid)
        for key, types in self.per_membership().items():
            want = ["Join", "Leave"] * (len(types) // 2) + ["Join"] * (len(types) % 2)
            assert types == want, (key, types)
            if len(types) % 2:
                members.add(key)
        return users, members

    def balanced(self, online=(), joined=()):
        """True once every Login has its Logout and every Join its Leave, but
        for the sessions in online and the memberships in joined."""
        return self.still_open() == (set(online), set(joined))


def open_session(r, uid, channels):
    ws = r.ws()
    assert ws.login(uid, app=APP) == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 300}
    for ch in channels:
        assert ws.call("join", channel=ch)["ok"]
    return ws


def login_until_refused(r, prefix, timeout=20.0):
    """With the disk full, SQLite may still write a few commits into WAL space
    it already has: logs in new users until one is refused. Returns the
    sessions that got in meanwhile and the uid that was refused."""
    got = {}
    deadline = time.monotonic() + timeout
    for i in range(100000):
        assert time.monotonic() < deadline, "no login was refused with the disk full"
        uid = "%s%d" % (prefix, i)
        ws = r.ws()
        m = ws.login(uid, app=APP)
        if m["ok"]:
            got[uid] = ws
            continue
        assert_unavailable(m)
        ws.close_socket()
        return got, uid


# -- tests ----------------------------------------------------------------------

def churn(ws, pairs):
    """pairs Join/Leave of one channel, sent at once: a WAL of a few thousand
    pages, checkpointed (and so reused from its start) on the way."""
    ops = [{"op": op, "id": 1000 + 2 * i + k, "channel": "churn"}
           for i in range(pairs) for k, op in enumerate(("join", "leave"))]
    ws.send_raw(b"".join(Ws.frame(json.dumps(o)) for o in ops))
    for o in ops:
        m = ws.reply(o["id"])
        if o["op"] == "join":  # a join's reply carries the members
            m = {k: v for k, v in m.items() if k not in ("count", "members")}
        assert m == {"op": "reply", "id": o["id"], "ok": True}


# warm: the disk fills while the WAL has room it already took (after a
# checkpoint, SQLite writes it again from its start), so writes first go on
# and then fail in the checkpoint as well as in the commit.
@pytest.mark.parametrize("warm", [0, 600])
def test_full_disk_refuses_writes_keeps_every_end_and_writes_them_when_space_returns(
        node, disk, warm):
    r = node()
    log = Log(r)
    sessions = {uid: open_session(r, uid, ["c-" + uid, "shared"])
                for uid in ("stay", "bye", "leaver", "gone", "taken")}
    churn(sessions["stay"], warm)
    assert health(r)[0] == 200

    disk.fill()
    probes, refused = login_until_refused(r, "probe")
    # the store says so
    st, body = health(r)
    assert st == 503 and body["code"] == "unavailable" and "disk full" in body["message"], body
    assert metric(r, "rtmd_store_unavailable") == 1

    # sessions end while nothing can be written: answered, and owed
    bye = sessions.pop("bye")
    assert bye.call("logout")["ok"] is True
    bye.expect_close()
    leaver = sessions["leaver"]
    assert leaver.call("leave", channel="shared")["ok"]
    leaver.close_socket()  # and then its session ends
    sessions.pop("leaver")
    sessions.pop("gone").close_socket()
    for ws in probes.values():
        ws.close_socket()
    wait_until(lambda: metric(r, "rtmd_store_owed_records") >= 3, what="owed records")

    # what needs a write is refused while records are owed
    ws = r.ws()
    assert_unavailable(ws.login("late", app=APP))
    ws.close_socket()
    # a takeover: the new login is refused, the old session still ends
    old = sessions.pop("taken")
    ws = r.ws()
    assert_unavailable(ws.login("taken", app=APP))
    ws.close_socket()
    assert old.expect_close()[0] == 1000
    assert {"op": "kicked", "reason": "remote_login"} in old.pushes
    # a join is refused and undone: the session is not in the channel
    stay = sessions["stay"]
    assert_unavailable(stay.call("join", channel="new"))
    m = stay.call("publish", channel="new", payload="x")
    assert m["ok"] is False and m["error"] == "not_joined", m
    # a message that must be kept is refused; one that needs no disk is not
    assert_unavailable(stay.call("peer", to="nobody", payload="x", offline=True))
    st, hd, body = r.get("/dev/v2/project/%s/rtm/users/stay/peer_messages" % APP, method="POST",
                         headers={"Authorization": basic()},
                         body=json.dumps({"destination": "nobody", "payload": "hi",
                                          "enable_offline_messaging": True}))
    assert st == 503 and json.loads(body)["code"] == "unavailable", (st, body)
    st, hd, body = r.get("/dev/v2/project/%s/rtm/users/x/channel_messages" % APP, method="POST",
                         headers={"Authorization": basic()},
                         body=json.dumps({"channel_name": "shared", "payload": "hi"}))
    assert st == 200, (st, body)
    # history reads need no write
    st, hd, body = r.get("/dev/v2/project/%s/rtm/message/history/count?source=stay"
                         "&start_time=2020-01-01T00:00:00Z&end_time=2099-01-01T00:00:00Z" % APP,
                         headers={"Authorization": basic()})
    assert st == 200 and json.loads(body)["count"] == 0, (st, body)
    # pulls answer what was written before (or 503: nothing consumed); no
    # Logout or Leave can be among them yet
    users, members = log.still_open()
    # (the churn's Joins and Leaves were all written before the disk filled: a pull that
    # commits its read position into WAL space SQLite already had returns them)
    assert users == set(log.per_user())
    assert members == set(log.per_membership()) - {("stay", "churn")}

    disk.free()
    started = time.monotonic()
    wait_until(lambda: log.balanced(online={"stay"}, joined={("stay", "c-stay"), ("stay", "shared")}),
               timeout=20, interval=0.05, what="every Logout and Leave written")
    took = time.monotonic() - started
    wait_until(lambda: health(r)[0] == 200, what="/healthz back to 200")
    assert metric(r, "rtmd_store_owed_records") == 0
    assert metric(r, "rtmd_store_unavailable") == 0

    users = log.per_user()
    assert set(users) == {"stay", "bye", "leaver", "gone", "taken"} | set(probes), users
    assert refused not in users and "late" not in users
    assert users["stay"] == ["Login"]
    assert users["taken"] == ["Login", "Logout"]  # the refused takeover recorded no Login
    chans = log.per_membership()
    assert ("stay", "new") not in chans  # the refused join recorded nothing
    assert chans[("leaver", "shared")] == ["Join", "Leave"]

    # writes work again, in order after the owed records
    assert stay.call("join", channel="new")["ok"]
    ws = r.ws()
    assert ws.login("bye", app=APP)["ok"]
    wait_until(lambda: log.balanced(online={"stay", "bye"},
                                    joined={("stay", "c-stay"), ("stay", "shared"), ("stay", "new")}),
               what="the new Login and Join")
    assert log.per_user()["bye"] == ["Login", "Logout", "Login"]
    assert r.log_has("owed records recorded")
    print("owed records written %.2f s after space returned" % took)


@pytest.mark.parametrize("how", ["kill9", "sigterm"])
def test_stop_with_records_owed_then_restart_with_space_back(node, disk, how):
    r = node()
    socks = {uid: open_session(r, uid, ["c-" + uid, "shared"]) for uid in ("k0", "k1", "k2", "k3")}
    disk.fill()
    probes, refused = login_until_refused(r, "kp")
    for uid in ("k1", "k2", "k3"):
        socks.pop(uid).close_socket()
    for ws in probes.values():
        ws.close_socket()
    wait_until(lambda: metric(r, "rtmd_store_owed_records") >= 2, what="owed records")
    if how == "kill9":
        r.kill9()
    else:
        assert r.stop() == 0
        assert r.log_has("owed Leave/Logout records not written")
    for ws in socks.values():
        ws.close_socket()
    disk.free()
    r.restart()
    log = Log(r)
    wait_until(lambda: log.balanced(), timeout=10, interval=0.05, what="every session ended once")
    users = log.per_user()
    assert set(users) == {"k0", "k1", "k2", "k3"} | set(probes) and refused not in users
    assert all(types == ["Login", "Logout"] for types in users.values()), users
    chans = log.per_membership()
    assert set(chans) == {(u, c) for u in ("k0", "k1", "k2", "k3") for c in ("c-" + u, "shared")}
    assert all(types == ["Join", "Leave"] for types in chans.values()), chans
    # nothing more comes, and nothing is left to end at the next start
    log.pull()
    assert len(log.users) == 2 * len(users) and len(log.chans) == 2 * len(chans)
    assert r.stop() == 0
    r.restart()
    log.pull()
    assert len(log.users) == 2 * len(users) and len(log.chans) == 2 * len(chans)
