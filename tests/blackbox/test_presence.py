"""Presence over WebSocket and its events over REST (docs/API.md)."""
import json

from harness import APP, APP_NOCERT, CERT, basic, token, wait_until


def types(events):
    return [(e["type"], e["user_id"], e.get("channel_id")) for e in events]


def test_login_join_leave_logout_events(rtmd):
    with rtmd.ws() as ws:
        assert ws.login("alice", token=token("alice"))["ok"] is True
        assert ws.call("join", channel="c1")["ok"] is True
        assert ws.call("join", channel="c2")["ok"] is True
        assert ws.call("leave", channel="c1")["ok"] is True
        assert ws.call("logout")["ok"] is True
        code, _ = ws.expect_close()
        assert code == 1000
    users = rtmd.events("user")
    assert types(users) == [("Login", "alice", None), ("Logout", "alice", None)]
    chans = rtmd.events("channel")
    assert types(chans) == [("Join", "alice", "c1"), ("Join", "alice", "c2"),
                            ("Leave", "alice", "c1"), ("Leave", "alice", "c2")]
    # both field styles, keys in alphabetical order
    e = chans[0]
    assert list(e.keys()) == ["channel_id", "group_id", "ms", "ts", "type", "user_id"]
    assert e["channel_id"] == e["group_id"] == "c1" and e["ms"] == e["ts"]
    assert list(users[0].keys()) == ["ms", "ts", "type", "user_id"]
    # read once per region
    assert rtmd.events("user") == []
    assert types(rtmd.events("user", region="eu")) == types(users)
    assert rtmd.events("user", region="eu") == []


def test_disconnect_records_leaves_then_logout(rtmd):
    ws = rtmd.ws()
    assert ws.login("bob", app=APP_NOCERT)["ok"]
    assert ws.call("join", channel="room")["ok"]
    ws.close_socket()
    got = []
    wait_until(lambda: got.extend(rtmd.events("user", app=APP_NOCERT)) or len(got) >= 2,
               what="Logout after disconnect")
    assert types(got) == [("Login", "bob", None), ("Logout", "bob", None)]
    assert types(rtmd.events("channel", app=APP_NOCERT)) == [("Join", "bob", "room"), ("Leave", "bob", "room")]


# ---- added: takeover, heartbeat, order ---------------------------------------------------

import select  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402

from harness import Ws, WsClosed, now_ms  # noqa: E402

KICKED = {"op": "kicked", "reason": "remote_login"}


def utypes(events):
    return [(e["type"], e["user_id"]) for e in events]


def ctypes(events):
    return [(e["type"], e["user_id"], e["channel_id"]) for e in events]


def assert_kicked(ws):
    """The first thing the old session gets is the kicked push, then a close."""
    m = ws.recv()
    assert m == KICKED and list(m) == ["op", "reason"], m
    code, reason = ws.expect_close()
    assert code == 1000, (code, reason)
    assert ws.pushes == [], ws.pushes
    assert ws.wait_eof(5)
    ws.close_socket()


def test_takeover_kicks_the_old_session_and_records_its_end_first(rtmd):
    old = rtmd.ws()
    assert old.login("alice", token=token("alice"))["ok"]
    assert old.call("join", channel="c1")["ok"]
    assert old.call("join", channel="c2")["ok"]
    new = rtmd.ws(region="eu")  # any listener of the node
    t0 = now_ms()
    assert new.login("alice", token=token("alice", v="006")) == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 30}
    assert_kicked(old)
    # the new session works; the old one's channels are gone
    assert new.call("join", channel="c1")["ok"] is True
    m = new.call("leave", channel="c2")
    assert m["ok"] is False and m["error"] == "not_joined", m
    users = rtmd.pull_until(3)
    assert utypes(users) == [("Login", "alice"), ("Logout", "alice"), ("Login", "alice")]
    chans = rtmd.pull_until(5, kind="channel")
    assert ctypes(chans[:2]) == [("Join", "alice", "c1"), ("Join", "alice", "c2")]
    assert sorted(ctypes(chans[2:4])) == [("Leave", "alice", "c1"), ("Leave", "alice", "c2")]
    assert ctypes(chans[4:]) == [("Join", "alice", "c1")]
    # Leaves and Logout of the old session are not later than the new Login
    new_login = users[2]["ms"]
    assert users[1]["ms"] <= new_login and all(e["ms"] <= new_login for e in chans[2:4])
    assert new_login >= t0 - 5
    new.call("logout")
    assert utypes(rtmd.pull_until(1)) == [("Logout", "alice")]


def test_takeover_chain_every_login_has_exactly_one_logout(rtmd):
    socks = []
    for i in range(4):
        ws = rtmd.ws()
        assert ws.login("bob", app=APP_NOCERT)["ok"]
        assert ws.call("join", channel="room%d" % i)["ok"]
        if socks:
            assert_kicked(socks[-1])
        socks.append(ws)
    socks[-1].close_socket()
    users = rtmd.pull_until(8, app=APP_NOCERT)
    assert utypes(users) == [("Login", "bob"), ("Logout", "bob")] * 4
    chans = rtmd.pull_until(8, kind="channel", app=APP_NOCERT)
    assert ctypes(chans) == sum(([("Join", "bob", "room%d" % i), ("Leave", "bob", "room%d" % i)]
                                 for i in range(4)), [])


def test_no_takeover_across_uids_or_apps(rtmd):
    a = rtmd.ws()
    assert a.login("same", app=APP_NOCERT)["ok"]
    b = rtmd.ws()
    assert b.login("same", token=token("same"))["ok"]   # same uid, other app
    c = rtmd.ws()
    assert c.login("Same", app=APP_NOCERT)["ok"]         # uids are case-sensitive
    for ws in (a, b, c):
        ws.assert_silent(0.2)
        assert ws.call("ping")["ok"]
    assert utypes(rtmd.pull_until(2, app=APP_NOCERT)) == [("Login", "same"), ("Login", "Same")]


def test_takeover_of_a_session_in_many_channels(rtmd):
    old = rtmd.ws()
    assert old.login("carol", app=APP_NOCERT)["ok"]
    names = ["ch%02d" % i for i in range(20)]
    for n in names:
        assert old.call("join", channel=n)["ok"]
    new = rtmd.ws()
    assert new.login("carol", app=APP_NOCERT)["ok"]
    assert_kicked(old)
    chans = rtmd.pull_until(40, kind="channel", app=APP_NOCERT)
    assert ctypes(chans[:20]) == [("Join", "carol", n) for n in names]
    assert sorted(ctypes(chans[20:])) == [("Leave", "carol", n) for n in names]
    assert utypes(rtmd.pull_until(3, app=APP_NOCERT)) == [("Login", "carol"), ("Logout", "carol"),
                                                         ("Login", "carol")]


def test_old_session_ops_after_takeover_are_not_recorded(rtmd):
    old = rtmd.ws()
    assert old.login("dave", app=APP_NOCERT)["ok"]
    new = rtmd.ws()
    assert new.login("dave", app=APP_NOCERT)["ok"]
    # whatever the old connection sends now is not recorded
    try:
        old.send({"op": "join", "id": 50, "channel": "late"})
    except OSError:
        pass
    m = old.recv()
    assert m == KICKED
    try:
        while True:
            m = old.recv(5)
            assert not (m.get("op") == "reply" and m.get("ok")), m
    except (WsClosed, EOFError):
        pass
    new.call("logout")
    assert utypes(rtmd.pull_until(4, app=APP_NOCERT)) == [("Login", "dave"), ("Logout", "dave")] * 2
    assert rtmd.events("channel", app=APP_NOCERT) == []


HB = {"heartbeat_timeout_s": 1}


def test_heartbeat_timeout_ends_the_session_leave_then_logout(make_rtmd):
    r = make_rtmd(limits=HB)
    ws = r.ws()
    assert ws.login("sleepy", app=APP_NOCERT)["ok"]
    assert ws.call("join", channel="a")["ok"]
    assert ws.call("join", channel="b")["ok"]
    t0 = time.monotonic()
    code, reason = ws.expect_close(timeout=10)
    took = time.monotonic() - t0
    assert code == 1001, (code, reason)
    assert 0.8 < took < 3.5, took
    assert ws.wait_eof(5)
    users = r.pull_until(2, app=APP_NOCERT)
    assert utypes(users) == [("Login", "sleepy"), ("Logout", "sleepy")]
    chans = r.pull_until(4, kind="channel", app=APP_NOCERT)
    assert sorted(ctypes(chans[2:])) == [("Leave", "sleepy", "a"), ("Leave", "sleepy", "b")]
    assert all(e["ms"] <= users[1]["ms"] for e in chans[2:])


def test_a_connection_that_never_logs_in_is_closed_at_its_login_deadline(make_rtmd):
    """Before a login only login_timeout_s counts (test_ws_hostile.py has more)."""
    r = make_rtmd(limits=dict(HB, login_timeout_s=1))
    ws = r.ws()
    code, reason = ws.expect_close(timeout=10)
    assert (code, reason) == (1008, "login timeout")
    assert r.events("user", app=APP_NOCERT) == []


def test_any_frame_keeps_the_session_alive(make_rtmd):
    """heartbeat_timeout_s = 1: four sessions send a different kind of frame
    every ~0.3 s for 2.4 s and stay; a silent fifth one is ended meanwhile;
    once they all stop, each is ended."""
    r = make_rtmd(limits=HB)
    kinds = ["ping_op", "ping_frame", "pong_frame", "bad_json"]
    socks = {}
    for k in kinds + ["silent"]:
        ws = r.ws()
        assert ws.login(k, app=APP_NOCERT)["ok"]
        socks[k] = ws
    t0 = time.monotonic()
    silent_closed_at = None
    while time.monotonic() - t0 < 2.4:
        for k in kinds:
            ws = socks[k]
            if k == "ping_op":
                assert ws.call("ping")["ok"]
            elif k == "ping_frame":
                ws.send_frame(b"hb", opcode=9)
                assert ws.recv_frame() == (10, b"hb")
            elif k == "pong_frame":
                ws.send_frame(b"hb", opcode=10)
            else:
                ws.send_frame("not json")
                assert ws.recv()["error"] == "bad_request"
        # wait ~0.3 s for the silent one to be closed (an event), else go on
        if silent_closed_at is None:
            rd, _, _ = select.select([socks["silent"].sock], [], [], 0.3)
            if rd:
                code, _ = socks["silent"].expect_close()
                assert code == 1001
                silent_closed_at = time.monotonic() - t0
        else:
            socks["ping_op"].assert_silent(0.3)
    assert silent_closed_at is not None and silent_closed_at < 2.0, silent_closed_at
    for k in kinds:  # none of the active ones was closed
        assert socks[k].call("ping")["ok"], k
    for k in kinds:
        code, _ = socks[k].expect_close(timeout=10)
        assert code == 1001, k
    users = r.pull_until(10, app=APP_NOCERT)
    logins = [e["user_id"] for e in users if e["type"] == "Login"]
    logouts = [e["user_id"] for e in users if e["type"] == "Logout"]
    assert logins == kinds + ["silent"]
    assert logouts[0] == "silent" and sorted(logouts[1:]) == sorted(kinds)


def test_events_of_interleaved_sessions_are_in_acknowledged_order(rtmd):
    socks = [rtmd.ws() for _ in range(3)]
    expect_users, expect_chans = [], []
    for i, ws in enumerate(socks):
        assert ws.login("u%d" % i, app=APP_NOCERT)["ok"]
        expect_users.append(("Login", "u%d" % i))
    for step in range(12):
        i = (step * 7) % 3
        ch = "c%d" % (step % 4)
        ws = socks[i]
        m = ws.call("join", channel=ch)
        if m["ok"]:
            expect_chans.append(("Join", "u%d" % i, ch))
        else:
            assert m["error"] == "already_joined"
            assert ws.call("leave", channel=ch)["ok"]
            expect_chans.append(("Leave", "u%d" % i, ch))
    users = rtmd.pull_until(3, app=APP_NOCERT)
    assert utypes(users) == expect_users
    chans = rtmd.pull_until(len(expect_chans), kind="channel", app=APP_NOCERT)
    assert ctypes(chans) == expect_chans
    ms = [e["ms"] for e in chans]
    assert ms == sorted(ms)


def test_every_way_of_ending_records_exactly_one_logout(rtmd):
    """logout op, socket close, close frame, protocol error, takeover: each
    Login is followed by exactly one Logout, Leaves before it."""
    enders = {
        "by_logout": lambda ws: ws.call("logout"),
        "by_socket": lambda ws: ws.close_socket(),
        "by_close_frame": lambda ws: ws.send_frame(struct.pack("!H", 1000), opcode=8),
        "by_protocol_error": lambda ws: ws.send_frame(b"x", mask=False),
        "by_takeover": lambda ws: keep.append(rtmd.ws()) or keep[-1].login("by_takeover", app=APP_NOCERT),
    }
    keep = []
    socks = []
    for uid, end in enders.items():
        ws = rtmd.ws()
        assert ws.login(uid, app=APP_NOCERT)["ok"]
        assert ws.call("join", channel="room")["ok"]
        end(ws)
        socks.append(ws)
    for ws in socks:
        if ws.sock.fileno() >= 0:
            ws.wait_eof(5)
            ws.close_socket()
    users = rtmd.pull_until(11, app=APP_NOCERT)
    assert keep[0].call("ping")["ok"]  # the session that took over is alive
    per = {}
    for e in users:
        per.setdefault(e["user_id"], []).append(e["type"])
    assert per == {uid: ["Login", "Logout"] for uid in enders if uid != "by_takeover"} | {
        "by_takeover": ["Login", "Logout", "Login"]}
    chans = rtmd.pull_until(10, kind="channel", app=APP_NOCERT)
    cper = {}
    for e in chans:
        cper.setdefault(e["user_id"], []).append(e["type"])
    assert cper == {uid: ["Join", "Leave"] for uid in enders}


def login_frame(uid, rid=1, app=APP_NOCERT):
    return Ws.frame(json.dumps({"op": "login", "id": rid, "appid": app, "uid": uid}))


def test_disconnect_while_login_is_pending_still_pairs_login_and_logout(rtmd):
    for i in range(10):
        ws = rtmd.ws()
        ws.send_raw(login_frame("gone%d" % i) + Ws.frame(json.dumps({"op": "join", "id": 2, "channel": "c"})))
        ws.close_socket()
    # the loop above may have closed before rtmd read the frames: a later marker
    with rtmd.ws() as ws:
        assert ws.login("marker", app=APP_NOCERT)["ok"]
    users = rtmd.pull_until(2, app=APP_NOCERT)
    def settled():
        users.extend(rtmd.events("user", app=APP_NOCERT))
        return ("Logout", "marker") in utypes(users)
    wait_until(settled, what="the marker's Logout")
    per = {}
    for t, u in utypes(users):
        per.setdefault(u, []).append(t)
    assert all(v == ["Login", "Logout"] for v in per.values()), per
    chans = rtmd.events("channel", app=APP_NOCERT)
    cper = {}
    for t, u, c in ctypes(chans):
        cper.setdefault(u, []).append(t)
    assert all(v == ["Join", "Leave"] for v in cper.values()), cper
    assert set(cper) <= set(per)


def test_takeover_while_the_old_session_has_ops_pending(rtmd):
    old = rtmd.ws()
    assert old.login("racer", app=APP_NOCERT)["ok"]
    old.send_raw(b"".join(Ws.frame(json.dumps({"op": "join", "id": 10 + i, "channel": "r%d" % i}))
                          for i in range(30)))
    new = rtmd.ws()
    assert new.login("racer", app=APP_NOCERT)["ok"]
    # the old connection gets replies for what it sent before, then kicked, then a close
    try:
        while True:
            m = old.recv(5)
            if m == KICKED:
                break
            assert m["op"] == "reply", m
    except (WsClosed, EOFError):
        raise AssertionError("no kicked push before the close")
    code, _ = old.expect_close()
    assert code == 1000
    assert new.call("logout")["ok"]
    users = rtmd.pull_until(4, app=APP_NOCERT)
    assert utypes(users) == [("Login", "racer"), ("Logout", "racer")] * 2
    # every Join of the old session has its Leave, all before the new Login
    chans = []
    wait_until(lambda: chans.extend(rtmd.events("channel", app=APP_NOCERT)) or
               len([e for e in chans if e["type"] == "Leave"]) >= len([e for e in chans if e["type"] == "Join"]),
               what="Leaves")
    joins = [e["channel_id"] for e in chans if e["type"] == "Join"]
    leaves = [e["channel_id"] for e in chans if e["type"] == "Leave"]
    assert sorted(joins) == sorted(leaves) and len(set(joins)) == len(joins)
    new_login = users[2]["ms"]
    assert all(e["ms"] <= new_login for e in chans)
    assert rtmd.events("channel", app=APP_NOCERT) == []


def test_many_sessions_at_once_keep_the_pairing(rtmd):
    n = 100
    socks = [rtmd.ws() for _ in range(n)]
    for i, ws in enumerate(socks):
        ws.send_raw(login_frame("m%03d" % i)
                    + Ws.frame(json.dumps({"op": "join", "id": 2, "channel": "all"}))
                    + Ws.frame(json.dumps({"op": "join", "id": 3, "channel": "g%d" % (i % 7)})))
    for ws in socks:  # (member_joined pushes may come in between)
        assert [ws.reply(rid)["ok"] for rid in (1, 2, 3)] == [True, True, True]
    for i, ws in enumerate(socks):
        if i % 2:
            ws.close_socket()
        else:
            ws.send({"op": "logout", "id": 4})
    users = rtmd.pull_until(2 * n, app=APP_NOCERT)
    assert sorted(u for t, u in utypes(users) if t == "Login") == ["m%03d" % i for i in range(n)]
    per = {}
    for t, u in utypes(users):
        per.setdefault(u, []).append(t)
    assert all(v == ["Login", "Logout"] for v in per.values())
    chans = rtmd.pull_until(4 * n, kind="channel", app=APP_NOCERT)
    cper = {}
    for t, u, c in ctypes(chans):
        cper.setdefault((u, c), []).append(t)
    assert len(cper) == 2 * n and all(v == ["Join", "Leave"] for v in cper.values())
    rtmd.healthy()
