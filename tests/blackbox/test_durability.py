"""The store across kill -9 and SIGTERM of rtmd (docs/ARCHITECTURE.md):
acknowledged events survive, sessions of a dead process end with Leave then
Logout at the next start, answered pulls stay answered. On redis the node
restarts under its node_id and ends its previous sessions itself."""
import json

from harness import APP, APP_NOCERT, Ws, token


def utypes(events):
    return [(e["type"], e["user_id"]) for e in events]


def ctypes(events):
    return [(e["type"], e["user_id"], e["channel_id"]) for e in events]


def open_sessions(r, n=5):
    """n sessions (APP with tokens, APP_NOCERT without), each in 2-3
    channels, every op acknowledged. Returns (sockets, expected)."""
    socks, exp = [], {"users": {APP: [], APP_NOCERT: []}, "chans": {APP: [], APP_NOCERT: []},
                      "joined": {}}
    for i in range(n):
        app = APP if i % 2 == 0 else APP_NOCERT
        uid = "d%d" % i
        ws = r.ws()
        m = ws.login(uid, app=app, token=token(uid) if app == APP else None)
        assert m == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 30}
        exp["users"][app].append(("Login", uid))
        chans = ["x%d" % i, "shared", "y%d" % i]
        for ch in chans:
            assert ws.call("join", channel=ch)["ok"]
            exp["chans"][app].append(("Join", uid, ch))
        assert ws.call("leave", channel=chans[2])["ok"]
        exp["chans"][app].append(("Leave", uid, chans[2]))
        exp["joined"][(app, uid)] = chans[:2]
        socks.append(ws)
    return socks, exp


def test_kill9_keeps_every_acknowledged_event_and_ends_the_sessions(make_rtmd):
    r = make_rtmd()
    socks, exp = open_sessions(r)
    r.kill9()
    for ws in socks:
        ws.close_socket()
    r.restart()
    for app in (APP, APP_NOCERT):
        n_logins = len(exp["users"][app])
        users = r.pull_until(2 * n_logins, app=app)
        # every acknowledged Login, in order, then one Logout per session
        assert utypes(users[:n_logins]) == exp["users"][app]
        assert sorted(utypes(users[n_logins:])) == sorted(("Logout", u) for _, u in exp["users"][app])
        n_chans = len(exp["chans"][app])
        n_leaves = sum(len(v) for (a, _), v in exp["joined"].items() if a == app)
        chans = r.pull_until(n_chans + n_leaves, kind="channel", app=app)
        assert ctypes(chans[:n_chans]) == exp["chans"][app]
        assert sorted(ctypes(chans[n_chans:])) == sorted(
            ("Leave", u, ch) for (a, u), v in exp["joined"].items() if a == app for ch in v)
        # each ended session: its Leaves are not later than its Logout
        logout_ms = {e["user_id"]: e["ms"] for e in users[n_logins:]}
        for e in chans[n_chans:]:
            assert e["ms"] <= logout_ms[e["user_id"]], (e, logout_ms)
        # nothing more
        assert r.events("user", app=app) == [] and r.events("channel", app=app) == []
        # and the other region sees the same sequences
        assert ctypes(r.events("channel", app=app, region="eu")) == ctypes(chans)
        assert utypes(r.events("user", app=app, region="eu")) == utypes(users)
    # the users are free to log in again, with no takeover of a ghost
    ws = r.ws()
    assert ws.login("d1", app=APP_NOCERT)["ok"]
    assert ws.call("join", channel="x1")["ok"]
    assert utypes(r.pull_until(1, app=APP_NOCERT)) == [("Login", "d1")]


def test_recovery_happens_once(make_rtmd):
    r = make_rtmd()
    ws = r.ws()
    assert ws.login("once", app=APP_NOCERT)["ok"]
    assert ws.call("join", channel="c")["ok"]
    r.kill9()
    ws.close_socket()
    r.restart()
    assert utypes(r.pull_until(2, app=APP_NOCERT)) == [("Login", "once"), ("Logout", "once")]
    # another crash with no session open, and a clean stop: no new events
    r.kill9()
    r.restart()
    assert r.stop() == 0
    r.restart()
    assert r.events("user", app=APP_NOCERT) == []
    assert ctypes(r.events("channel", app=APP_NOCERT)) == [("Join", "once", "c"), ("Leave", "once", "c")]
    assert r.events("channel", app=APP_NOCERT) == []
    assert len(r.events("user", app=APP_NOCERT, region="eu")) == 2


def test_a_pull_answered_before_kill9_is_not_answered_again(make_rtmd):
    r = make_rtmd()
    with r.ws() as ws:
        assert ws.login("p", app=APP_NOCERT)["ok"]
        assert ws.call("join", channel="c")["ok"]
        assert ws.call("logout")["ok"]
        ws.expect_close()
    first = r.events("user", app=APP_NOCERT)
    assert utypes(first) == [("Login", "p"), ("Logout", "p")]
    r.kill9()
    r.restart()
    assert r.events("user", app=APP_NOCERT) == []
    # what was not pulled is still there, in both regions
    assert ctypes(r.events("channel", app=APP_NOCERT)) == [("Join", "p", "c"), ("Leave", "p", "c")]
    assert r.events("user", app=APP_NOCERT, region="eu") == first


def test_partial_pulls_resume_where_they_stopped_after_kill9(make_rtmd):
    r = make_rtmd(limits={"events_max_pull": 3})
    ws = r.ws()
    assert ws.login("pp", app=APP_NOCERT)["ok"]
    ops = [("join", "c%d" % i) for i in range(7)]
    ws.send_raw(b"".join(Ws.frame(json.dumps({"op": op, "id": 10 + i, "channel": ch}))
                         for i, (op, ch) in enumerate(ops)))
    for i in range(7):
        assert ws.recv()["ok"]
    assert logout_and_close(ws)
    want = [("Join", "pp", "c%d" % i) for i in range(7)]
    assert ctypes(r.events("channel", app=APP_NOCERT)) == want[:3]
    r.kill9()
    r.restart()
    pulls = [r.events("channel", app=APP_NOCERT) for _ in range(5)]
    assert [len(p) for p in pulls] == [3, 3, 3, 2, 0]
    got = sum(pulls, [])
    assert ctypes(got[:4]) == want[3:]
    assert sorted(ctypes(got[4:])) == [("Leave", "pp", "c%d" % i) for i in range(7)]


def logout_and_close(ws):
    m = ws.call("logout")
    ws.expect_close()
    return m["ok"]


def test_sigterm_ends_sessions_exits_0_and_keeps_everything(make_rtmd):
    r = make_rtmd()
    socks, exp = open_sessions(r, n=4)
    # also an HTTP keep-alive connection and a half-sent request
    h = r.http()
    assert h.request("GET", "/healthz")[0] == 200
    h2 = r.http()
    h2.send(b"GET /healthz HTTP/1.1\r\nHo")
    assert r.stop() == 0
    for ws in socks:
        assert ws.wait_eof(5), "a WebSocket client was not disconnected"
        ws.close_socket()
    assert h.wait_eof(5) and h2.wait_eof(5)
    r.restart()
    for app in (APP, APP_NOCERT):
        n = len(exp["users"][app])
        users = r.pull_until(2 * n, app=app)
        assert utypes(users[:n]) == exp["users"][app]
        assert sorted(utypes(users[n:])) == sorted(("Logout", u) for _, u in exp["users"][app])
        nc = len(exp["chans"][app])
        nl = sum(len(v) for (a, _), v in exp["joined"].items() if a == app)
        chans = r.pull_until(nc + nl, kind="channel", app=app)
        assert ctypes(chans[:nc]) == exp["chans"][app]
        assert sorted(ctypes(chans[nc:])) == sorted(
            ("Leave", u, ch) for (a, u), v in exp["joined"].items() if a == app for ch in v)
        # ended once: the restart found no session left to end
        assert r.events("user", app=app) == [] and r.events("channel", app=app) == []


def test_read_positions_survive_sigterm_per_region(make_rtmd):
    r = make_rtmd()
    with r.ws() as ws:
        assert ws.login("rp", app=APP_NOCERT)["ok"]
        assert ws.call("logout")["ok"]
        ws.expect_close()
    d = r.events("user", app=APP_NOCERT)
    assert utypes(d) == [("Login", "rp"), ("Logout", "rp")]
    assert r.stop() == 0
    r.restart()
    assert r.events("user", app=APP_NOCERT) == []
    assert r.events("user", app=APP_NOCERT, region="eu") == d
    # new events continue the same log after the restart
    with r.ws() as ws:
        assert ws.login("rp2", app=APP_NOCERT)["ok"]
    assert utypes(r.pull_until(2, app=APP_NOCERT)) == [("Login", "rp2"), ("Logout", "rp2")]
    assert utypes(r.pull_until(2, app=APP_NOCERT, region="eu")) == [("Login", "rp2"), ("Logout", "rp2")]


def test_many_acknowledged_events_survive_kill9(make_rtmd):
    r = make_rtmd()
    ws = r.ws()
    assert ws.login("many", app=APP_NOCERT)["ok"]
    ops = []
    for i in range(300):
        ops.append(("join", "m%03d" % i))
        ops.append(("leave", "m%03d" % i))
    ws.send_raw(b"".join(Ws.frame(json.dumps({"op": op, "id": 10 + i, "channel": ch}))
                         for i, (op, ch) in enumerate(ops)))
    for i in range(len(ops)):
        m = ws.recv()
        if ops[i][0] == "join":  # a join's reply carries the members
            assert m["members"] == ["many"] and m.pop("count") == 1 and m.pop("members")
        assert m == {"op": "reply", "id": 10 + i, "ok": True}
    r.kill9()
    ws.close_socket()
    r.restart()
    got = r.events("channel", app=APP_NOCERT)
    assert ctypes(got) == [("Join" if op == "join" else "Leave", "many", ch) for op, ch in ops]
    assert utypes(r.pull_until(2, app=APP_NOCERT)) == [("Login", "many"), ("Logout", "many")]
