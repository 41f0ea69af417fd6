"""Redis faults under one rtmd node (backend = redis): a Redis killed and
restarted from its append-only file loses nothing rtmd acknowledged; a
stalled (SIGSTOP) or gone Redis makes every call that needs it fail within
redis_timeout_ms (REST 408, WebSocket "unavailable"), /healthz says 503, and
nothing hangs; a pull answered 408 consumed nothing; rtmd reconnects by
itself; AUTH with a password, a user and password, a wrong one.
"""
import json
import os
import select
import signal
import time

import pytest

from harness import (APP_NOCERT, RTMD_BIN, RedisServer, Rtmd, assert_error, basic, event_path,
                     wait_until)
from msgutil import Events, ctypes, utypes

pytestmark = pytest.mark.own_store

FAST = {"events_qps": 1000000, "history_qps": 1000000, "send_qps": 1000000}
TIMEOUT_MS = 400


def _sanitized():
    try:
        with open(RTMD_BIN, "rb") as f:
            data = f.read()
        return b"__asan_init" in data or b"__tsan_init" in data
    except OSError:
        return False


# What a call may take beyond redis_timeout_ms: scheduling on a shared
# machine, more under a sanitizer.
MARGIN_S = 2.0 if _sanitized() else 1.0


def node(make_rtmd, redis, name="na", timeout_ms=TIMEOUT_MS, url=None, **store):
    st = {"backend": "redis", "redis_url": url or redis.url, "redis_timeout_ms": timeout_ms}
    st.update(store)
    return make_rtmd(name=name, store=st, server={"node_id": name}, limits=FAST)


def login(r, uid, channels=()):
    ws = r.ws()
    m = ws.login(uid, app=APP_NOCERT)
    assert m.get("ok") is True, m
    for ch in channels:
        j = ws.call("join", channel=ch)
        assert j.get("ok") is True, j
    return ws


def timed(f):
    t0 = time.monotonic()
    v = f()
    return v, time.monotonic() - t0


def pull(r, kind, region="default"):
    return r.get(event_path(kind, APP_NOCERT), headers={"Authorization": basic()}, region=region)


def healthz(r):
    return r.get("/healthz")[0]


def settled(r):
    """True once rtmd owes no Leave or Logout to the store."""
    return r.metrics()["rtmd_store_owed_records"] == 0


def replies(socks, rid, until):
    """Polls the sockets until `until` (monotonic) for the reply `rid` on each;
    returns {ws: (monotonic time it arrived, reply)} for those that came."""
    got = {}
    while len(got) < len(socks):
        left = until - time.monotonic()
        if left <= 0:
            break
        waiting = [w for w in socks if w not in got]
        rd, _, _ = select.select([w.sock for w in waiting], [], [], min(left, 0.05))
        for w in waiting:
            if w.sock not in rd:
                continue
            try:
                w._fill()
            except EOFError:
                got[w] = (time.monotonic(), None)
                continue
            while True:
                m = w.take_frame()
                if m is None:
                    break
                if m.get("op") == "reply" and m.get("id") == rid:
                    got[w] = (time.monotonic(), m)
                    break
                w.pushes.append(m)
    return got


def by_uid(events):
    out = {}
    for e in events:
        out.setdefault(e["user_id"], []).append(e["type"])
    return out


# ---- a Redis restarted from its append-only file ---------------------------------------------------

@pytest.fixture
def aof_redis(tmp_path):
    r = RedisServer(tmp_path / "redis-aof", extra=["--appendonly", "yes",
                                                    "--appendfsync", "always"]).start()
    yield r
    r.resume()
    r.stop()


def test_acknowledged_logins_and_joins_survive_a_kill_9_of_redis_with_aof(make_rtmd, aof_redis):
    r = node(make_rtmd, aof_redis)
    socks = [login(r, "u%02d" % i, ["c%d" % (i % 3), "all"]) for i in range(20)]
    aof_redis.kill9()  # right after the last acknowledgement
    wait_until(lambda: healthz(r) == 503, 10, what="healthz 503 with Redis gone")
    aof_redis.start()
    wait_until(lambda: healthz(r) == 200, 15, what="rtmd to reconnect by itself")
    users = r.pull_until(20, app=APP_NOCERT)
    assert utypes(users) == [("Login", "u%02d" % i) for i in range(20)]
    chans = r.pull_until(40, kind="channel", app=APP_NOCERT)
    assert ctypes(chans) == [("Join", "u%02d" % i, ch) for i in range(20)
                             for ch in ("c%d" % (i % 3), "all")]
    # the sessions are still there: their ends are recorded once, after the restart
    for ws in socks:
        ws.close()
    u, c = Events(r, "user"), Events(r, "channel")
    u.wait_for(lambda got: len(got) >= 20)
    c.wait_for(lambda got: len(got) >= 40)
    assert sorted(utypes(u.got)) == [("Logout", "u%02d" % i) for i in range(20)]
    assert sorted(ctypes(c.got)) == sorted(("Leave", "u%02d" % i, ch) for i in range(20)
                                           for ch in ("c%d" % (i % 3), "all"))
    wait_until(lambda: settled(r), 5, what="nothing owed")
    time.sleep(0.2)
    assert u.pull() == u.got[:20] and c.pull() == c.got[:40]  # nothing twice


def test_logins_racing_a_kill_9_of_redis_are_recorded_if_acknowledged_else_undone(make_rtmd,
                                                                                  aof_redis):
    r = node(make_rtmd, aof_redis)
    socks = [r.ws() for _ in range(40)]
    t0 = time.monotonic()
    for i, ws in enumerate(socks):
        while time.monotonic() < t0 + i * 0.01:
            time.sleep(0.002)
        ws.send({"op": "login", "id": 1, "appid": APP_NOCERT, "uid": "r%02d" % i})
        if i == 15:
            aof_redis.kill9()
    early = replies(socks, 1, time.monotonic() + 3)
    aof_redis.start()
    wait_until(lambda: healthz(r) == 200, 15, what="rtmd to reconnect by itself")
    got = dict(early)
    got.update(replies([w for w in socks if w not in early], 1, time.monotonic() + 10))
    assert len(got) == len(socks), "logins never answered: %d" % (len(socks) - len(got))
    acked = {"r%02d" % i for i, w in enumerate(socks) if got[w][1] and got[w][1]["ok"]}
    failed = {"r%02d" % i for i, w in enumerate(socks) if not (got[w][1] and got[w][1]["ok"])}
    for w in socks:
        m = got[w][1]
        assert m is not None and (m["ok"] or m["error"] == "unavailable"), m
    assert acked, "no login before the kill was acknowledged"
    wait_until(lambda: settled(r), 10, what="the undoing Logouts written")
    seen = by_uid(Events(r, "user").pull())
    for uid in acked:
        assert seen.get(uid) == ["Login"], (uid, seen.get(uid))
    for uid in failed:
        assert seen.get(uid) in (None, ["Login", "Logout"]), (uid, seen.get(uid))
    for w in socks:
        w.close()


# ---- a stalled Redis ----------------------------------------------------------------------------

def test_every_rest_call_is_408_within_the_timeout_while_redis_is_stalled_and_consumes_nothing(
        make_rtmd, redis_server):
    r = node(make_rtmd, redis_server)
    w = login(r, "alice", ["room"])
    b = login(r, "bob", ["room"])
    app = "/dev/v2/project/%s" % APP_NOCERT
    h = {"Authorization": basic()}
    calls = [
        ("user_events", lambda: pull(r, "user")),
        ("channel_events", lambda: pull(r, "channel")),
        ("user_events eu", lambda: pull(r, "user", "eu")),
        ("channel_events eu", lambda: pull(r, "channel", "eu")),
        ("peer message", lambda: r.get(app + "/rtm/users/x/peer_messages", headers=h, method="POST",
                                       body=json.dumps({"destination": "bob", "payload": "hi"}))),
        ("channel message", lambda: r.get(app + "/rtm/users/x/channel_messages", headers=h,
                                          method="POST",
                                          body=json.dumps({"channel_name": "room", "payload": "hi"}))),
        ("history query", lambda: r.get(app + "/rtm/message/history/query", headers=h, method="POST",
                                        body=json.dumps({"filter": {"source": "alice"},
                                                         "start_time": "2020-01-01T00:00:00Z",
                                                         "end_time": "2030-01-01T00:00:00Z"}))),
        ("history count", lambda: r.get(app + "/rtm/message/history/count?source=alice&start_time="
                                        "2020-01-01T00:00:00Z&end_time=2030-01-01T00:00:00Z",
                                        headers=h)),
    ]
    redis_server.pause()
    try:
        for what, call in calls:
            resp, took = timed(call)
            assert took < TIMEOUT_MS / 1000 + MARGIN_S, (what, took)
            assert resp[0] == 408, (what, resp)
            assert_error(resp, 408, "request_timeout")
        wait_until(lambda: healthz(r) == 503, 10, what="healthz 503 while Redis is stalled")
        st, hd, body = r.get("/healthz")
        assert_error((st, hd, body), 503, "unavailable")
    finally:
        redis_server.resume()
    wait_until(lambda: healthz(r) == 200, 15, what="healthz 200 once Redis answers")
    # the pulls answered 408 read nothing, though the stalled Redis ran the first later
    for region in ("default", "eu"):
        st, hd, body = pull(r, "user", region)
        assert st == 200, body
        assert utypes(json.loads(body)["events"]) == [("Login", "alice"), ("Login", "bob")]
        st, hd, body = pull(r, "channel", region)
        assert st == 200, body
        assert ctypes(json.loads(body)["events"]) == [("Join", "alice", "room"), ("Join", "bob", "room")]
    # and the service is back: logins, sends
    login(r, "carol").close()
    st, hd, body = calls[4][1]()
    assert st == 200, body
    w.close()
    b.close()


def test_client_ops_while_redis_is_stalled_answer_within_the_timeout(make_rtmd, redis_server):
    """Every op answers within redis_timeout_ms: those that need Redis to
    begin something fail ("unavailable"), ends are owed (ok, recorded when
    Redis answers again), the rest does not need Redis."""
    r = node(make_rtmd, redis_server)
    a = login(r, "a", ["room"])
    b = login(r, "b", ["room"])
    d = login(r, "d", ["room"])
    e = login(r, "e", ["room"])
    c = r.ws()
    ops = [
        (c, {"op": "login", "appid": APP_NOCERT, "uid": "c"}, "unavailable"),
        (a, {"op": "join", "channel": "hall"}, "unavailable"),
        (b, {"op": "leave", "channel": "room"}, None),
        (d, {"op": "logout"}, None),
        (e, {"op": "ping"}, None),
    ]
    redis_server.pause()
    try:
        t0 = time.monotonic()
        for ws, op, _ in ops:  # all in one loop iteration, as far as rtmd can tell
            ws.send(dict(op, id=50))
        got = replies([ws for ws, _, _ in ops], 50, t0 + TIMEOUT_MS / 1000 + MARGIN_S)
        for ws, op, error in ops:
            assert ws in got, "no answer to %r within the timeout" % op
            m = got[ws][1]
            if error:
                assert m["ok"] is False and m["error"] == error, (op, m)
            else:
                assert m["ok"] is True, (op, m)
        # a peer message and a publish need no Redis (no history, receiver online)
        m, took = timed(lambda: e.call("peer", to="a", payload="x"))
        assert m["ok"] is True and m["state"] == "delivered", m
        m = e.call("publish", channel="room", payload="y")
        assert m["ok"] is True, m
    finally:
        redis_server.resume()
    wait_until(lambda: healthz(r) == 200, 15, what="healthz 200 once Redis answers")
    wait_until(lambda: settled(r), 10, what="the owed Leave and Logout written")
    u, ch = Events(r, "user"), Events(r, "channel")
    u.wait_for(lambda got: len(got) >= 5)
    ch.wait_for(lambda got: len(got) >= 6)
    # what was owed is recorded once; what failed left nothing, or (the
    # stalled Redis ran it late) was undone
    users = by_uid(u.got)
    assert users.pop("c", None) in (None, ["Login", "Logout"]), u.got
    assert users == {"a": ["Login"], "b": ["Login"], "d": ["Login", "Logout"], "e": ["Login"]}, u.got
    chans = {}
    for t, uid, chan in ctypes(ch.got):
        chans.setdefault((uid, chan), []).append(t)
    assert chans.pop(("a", "hall"), None) in (None, ["Join", "Leave"]), ch.got
    assert chans == {("a", "room"): ["Join"], ("b", "room"): ["Join", "Leave"],
                     ("d", "room"): ["Join", "Leave"], ("e", "room"): ["Join"]}, ch.got
    assert login(r, "c").call("join", channel="hall")["ok"] is True
    for ws in (a, b, c, d, e):
        ws.close()


@pytest.mark.parametrize("how", ["stalled", "killed"])
def test_a_leave_and_a_logout_while_redis_is_unreachable_answer_at_once(make_rtmd, redis_server,
                                                                       how):
    """Ends are never refused: owed, they answer ok and are written when
    Redis is back."""
    r = node(make_rtmd, redis_server)
    a = login(r, "a", ["room"])
    b = login(r, "b", ["room"])
    if how == "stalled":
        redis_server.pause()
    else:
        redis_server.kill9()
    try:
        wait_until(lambda: healthz(r) == 503, 10, what="rtmd to see Redis gone")
        t0 = time.monotonic()
        a.send({"op": "leave", "id": 60, "channel": "room"})
        b.send({"op": "logout", "id": 60})
        got = replies([a, b], 60, t0 + TIMEOUT_MS / 1000 + MARGIN_S)
    finally:
        if how == "stalled":
            redis_server.resume()
        else:
            redis_server.start()
    assert a in got and got[a][1] == {"op": "reply", "id": 60, "ok": True}, got.get(a)
    assert b in got and got[b][1] == {"op": "reply", "id": 60, "ok": True}, got.get(b)
    wait_until(lambda: healthz(r) == 200, 15, what="rtmd to reconnect")
    wait_until(lambda: settled(r), 10, what="the owed Leave and Logout written")
    a.close()
    b.close()


def test_sigterm_writes_the_logouts_queued_behind_a_write_in_flight(make_rtmd, redis_server):
    """SIGTERM while a presence write waits for a slow Redis and more
    Logouts are queued behind it: all of them are written before rtmd exits
    (they were dropped once the write in flight came back)."""
    r = node(make_rtmd, redis_server, timeout_ms=5000, node_timeout_s=120)
    first = [login(r, "f%d" % i) for i in range(10)]
    then = [login(r, "t%d" % i) for i in range(10)]
    redis_server.pause()
    try:
        for ws in first:
            ws.close_socket()  # their Logouts: one write, unanswered while Redis is stopped
        time.sleep(0.2)  # nothing to poll for: the write waits in Redis's socket
        for ws in then:
            ws.close_socket()  # queued behind it
        time.sleep(0.2)
        r.expect_exit = True
        r.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
    finally:
        redis_server.resume()
    assert r.proc.wait(20) == 0
    # A survivor would end na's sessions only after node_timeout_s: none here.
    other = node(make_rtmd, redis_server, name="nb", node_timeout_s=120)
    got = by_uid(other.events("user", app=APP_NOCERT))
    assert got == {u: ["Login", "Logout"] for u in ["f%d" % i for i in range(10)] +
                   ["t%d" % i for i in range(10)]}


@pytest.mark.parametrize("timeout_ms", [300, 1500])
def test_redis_timeout_ms_bounds_a_login_during_a_stall(make_rtmd, redis_server, timeout_ms):
    r = node(make_rtmd, redis_server, timeout_ms=timeout_ms)
    login(r, "warm").close()
    ws = r.ws()
    redis_server.pause()
    try:
        m, took = timed(lambda: ws.login("alice", app=APP_NOCERT))
    finally:
        redis_server.resume()
    assert m["ok"] is False and m["error"] == "unavailable", m
    # it waited for Redis (the call could still have succeeded), then no longer
    assert timeout_ms / 1000 * 0.9 <= took < timeout_ms / 1000 + MARGIN_S, took
    wait_until(lambda: healthz(r) == 200, 15, what="healthz 200 once Redis answers")
    assert ws.login("alice", app=APP_NOCERT)["ok"] is True
    ws.close()


def test_logins_queued_behind_a_stalled_call_answer_within_the_timeout(make_rtmd, redis_server):
    r = node(make_rtmd, redis_server)
    socks = [r.ws() for _ in range(24)]
    redis_server.pause()
    sent = {}
    try:
        t0 = time.monotonic()
        for i, ws in enumerate(socks):  # one every 50 ms: while calls are in flight, and after
            while time.monotonic() < t0 + i * 0.05:
                time.sleep(0.002)
            ws.send({"op": "login", "id": 1, "appid": APP_NOCERT, "uid": "q%02d" % i})
            sent[ws] = time.monotonic()
        got = replies(socks, 1, time.monotonic() + TIMEOUT_MS / 1000 + MARGIN_S)
    finally:
        redis_server.resume()
    late = ["q%02d" % i for i, ws in enumerate(socks)
            if ws not in got or got[ws][0] - sent[ws] > TIMEOUT_MS / 1000 + MARGIN_S]
    assert not late, "logins not answered within the timeout: %s" % late
    for ws in socks:
        ws.close()


# ---- a Redis that is gone ----------------------------------------------------------------------

def test_healthz_is_503_while_redis_is_down_and_200_once_it_is_back(make_rtmd, redis_server):
    r = node(make_rtmd, redis_server)
    assert healthz(r) == 200
    redis_server.kill9()
    wait_until(lambda: healthz(r) == 503, 10, what="healthz 503")
    d = assert_error(r.get("/healthz"), 503, "unavailable")
    assert "store" in d["message"], d
    # a REST call and a login fail at once, not after a timeout
    resp, took = timed(lambda: pull(r, "user"))
    assert_error(resp, 408, "request_timeout")
    ws = r.ws()
    m, took = timed(lambda: ws.login("bob", app=APP_NOCERT))
    assert m["ok"] is False and m["error"] == "unavailable", m
    assert took < TIMEOUT_MS / 1000 + MARGIN_S, took
    redis_server.start()
    wait_until(lambda: healthz(r) == 200, 15, what="rtmd to reconnect by itself")
    assert ws.login("bob", app=APP_NOCERT)["ok"] is True
    ws.close()


# ---- AUTH -------------------------------------------------------------------------------------------

PASSWORD = "s3cret-pw"


@pytest.fixture
def redis_with_password(tmp_path):
    r = RedisServer(tmp_path / "redis-auth", extra=["--requirepass", PASSWORD],
                    password=PASSWORD).start()
    yield r
    r.resume()
    r.stop()


@pytest.mark.parametrize("user", ["", "rtmd"])
def test_a_password_in_redis_url_authenticates(make_rtmd, redis_with_password, user):
    """redis://:PASSWORD@host:port (the default user) and
    redis://USER:PASSWORD@host:port (an ACL user)."""
    rs = redis_with_password
    password = PASSWORD
    if user:
        password = "p%40ss:w0rd"  # %-decoded: p@ss:w0rd
        assert rs.command("ACL", "SETUSER", user, "on", ">p@ss:w0rd", "~*", "&*", "+@all") == "OK"
    url = "redis://%s:%s@127.0.0.1:%d" % (user, password, rs.port)
    r = node(make_rtmd, rs, url=url)
    ws = login(r, "alice", ["room"])
    assert utypes(Events(r, "user").wait_for(lambda got: len(got) >= 1)) == [("Login", "alice")]
    if user:  # the commands did run as that user
        clients = rs.command("CLIENT", "LIST")
        assert "user=rtmd" in clients, clients
    ws.close()
    r.stop()
    log = r.read_log()
    assert PASSWORD not in log and "p@ss" not in log and "p%40ss" not in log


def test_a_wrong_or_missing_password_keeps_rtmd_from_starting(make_rtmd, redis_with_password,
                                                               tmp_path):
    """rtmd does not serve without its store: it retries for a while (the
    start waits 10 s for Redis), then exits 1 with the reason in its log."""
    rs = redis_with_password
    started = []
    for name, url in (("wrong", "redis://:not-the-password@127.0.0.1:%d" % rs.port),
                      ("missing", "redis://127.0.0.1:%d" % rs.port)):
        d = tmp_path / name
        d.mkdir()
        r = Rtmd(d, store={"backend": "redis", "redis_url": url}, server={"node_id": name})
        started.append((name, r.launch()))  # both at once: they wait together
    t0 = time.monotonic()
    for name, r in started:
        try:
            rc = r.proc.wait(10 + 10)
        finally:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
            r.log.close()
        assert rc == 1, (name, rc, r.read_log()[-2000:])
        assert not os.path.exists(r.ready_path), name
        log = r.read_log()
        if name == "wrong":
            assert "AUTH failed" in log and "WRONGPASS" in log, log[-2000:]
            assert "not-the-password" not in log
        else:
            assert "NOAUTH" in log and "password" in log, log[-2000:]
        assert "cannot open the redis store" in log, log[-2000:]
        r.assert_clean_log()
    assert time.monotonic() - t0 < 10 + 10


def test_a_password_changed_under_a_running_rtmd_makes_it_unavailable_until_it_matches_again(
        make_rtmd, redis_with_password):
    rs = redis_with_password
    r = node(make_rtmd, rs, url="redis://:%s@127.0.0.1:%d" % (PASSWORD, rs.port))
    w = login(r, "alice")
    assert rs.command("CONFIG", "SET", "requirepass", "rotated") == "OK"
    rs.password = "rotated"
    rs.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")  # rtmd must authenticate again
    wait_until(lambda: healthz(r) == 503, 10, what="healthz 503 with AUTH refused")
    ws = r.ws()
    m = ws.login("bob", app=APP_NOCERT)
    assert m["ok"] is False and m["error"] == "unavailable", m
    wait_until(lambda: r.log_has("AUTH failed"), 5, what="AUTH failed in the log")
    assert rs.command("CONFIG", "SET", "requirepass", PASSWORD) == "OK"
    rs.password = PASSWORD
    wait_until(lambda: healthz(r) == 200, 15, what="rtmd to authenticate again by itself")
    assert ws.login("bob", app=APP_NOCERT)["ok"] is True
    ws.close()
    w.close()
