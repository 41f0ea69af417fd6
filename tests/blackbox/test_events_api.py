"""The presence event logs over REST (docs/API.md "Presence events"): exact envelope and fields,
per app x {user, channel}, per-region read positions, events_max_pull,
events_retain and the drop counters."""
import json

from harness import (APP, APP_NOCERT, APP_OTHER, CERT_OTHER, CUSTOMER_OTHER, SECRET_OTHER, Ws,
                     assert_events_envelope, basic, now_ms, token)


def pull_raw(r, kind="user", app=APP, region="default"):
    return r.events_raw(kind, app=app, region=region, headers={"Authorization": basic()})


def channel_ops(ws, ops, first_id=100):
    """Sends join/leave ops pipelined in one write; asserts every reply ok."""
    frames = []
    for i, (op, ch) in enumerate(ops):
        frames.append(Ws.frame(json.dumps({"op": op, "id": first_id + i, "channel": ch})))
    ws.send_raw(b"".join(frames))
    for i in range(len(ops)):
        m = ws.recv(30)
        if ops[i][0] == "join":  # a join's reply carries the members
            m = {k: v for k, v in m.items() if k not in ("count", "members", "cursor")}
        assert m == {"op": "reply", "id": first_id + i, "ok": True}, m


def join_leave(n_pairs, start=0):
    ops = []
    for i in range(start, start + n_pairs):
        ops.append(("join", "c%05d" % i))
        ops.append(("leave", "c%05d" % i))
    return ops


def expected_channel_events(ops, uid):
    return [("Join" if op == "join" else "Leave", uid, ch) for op, ch in ops]


def ctypes(events):
    return [(e["type"], e["user_id"], e["channel_id"]) for e in events]


def metric(r, region, log):
    return r.metrics()['rtmd_events_dropped_total{region="%s",log="%s"}' % (region, log)]


# ---- envelope and fields --------------------------------------------------------------------

def test_empty_log_answer_is_exact(rtmd):
    for kind in ("user", "channel"):
        st, hd, body = pull_raw(rtmd, kind)
        assert st == 200
        rid = hd["x-request-id"]
        assert body == b'{"events":[],"request_id":"%s","result":"success"}' % rid.encode()
        assert hd["content-type"] == "application/json;charset=utf-8"


def test_events_have_both_field_styles_in_alphabetical_order(rtmd):
    t0 = now_ms()
    with rtmd.ws() as ws:
        assert ws.login("alice", token=token("alice"))["ok"]
        assert ws.call("join", channel="room 1")["ok"]
        assert ws.call("leave", channel="room 1")["ok"]
        assert ws.call("logout")["ok"]
        ws.expect_close()
    t1 = now_ms()
    st, hd, body = pull_raw(rtmd, "user")
    users = assert_events_envelope((st, hd, body))
    assert [list(e) for e in users] == [["ms", "ts", "type", "user_id"]] * 2
    assert [(e["type"], e["user_id"]) for e in users] == [("Login", "alice"), ("Logout", "alice")]
    for e in users:
        assert isinstance(e["ms"], int) and e["ms"] == e["ts"] and t0 - 5 <= e["ms"] <= t1 + 5, e
    # the whole body, byte for byte
    expect = '{"events":[%s],"request_id":"%s","result":"success"}' % (
        ",".join('{"ms":%d,"ts":%d,"type":"%s","user_id":"alice"}' % (e["ms"], e["ms"], e["type"])
                 for e in users), hd["x-request-id"])
    assert body == expect.encode()

    st, hd, body = pull_raw(rtmd, "channel")
    chans = assert_events_envelope((st, hd, body))
    assert [list(e) for e in chans] == [["channel_id", "group_id", "ms", "ts", "type", "user_id"]] * 2
    expect = '{"events":[%s],"request_id":"%s","result":"success"}' % (
        ",".join('{"channel_id":"room 1","group_id":"room 1","ms":%d,"ts":%d,"type":"%s",'
                 '"user_id":"alice"}' % (e["ms"], e["ms"], e["type"]) for e in chans),
        hd["x-request-id"])
    assert body == expect.encode()
    assert users[0]["ms"] <= chans[0]["ms"] <= chans[1]["ms"] <= users[1]["ms"]


def test_ids_with_every_allowed_character_come_back_unchanged(rtmd):
    uid = "abcXYZ019 !#$%&()+-:;<=.>?@[]^_{}|~,'"
    ch = "<ch> & 'q' {x} [y] | ~"
    with rtmd.ws() as ws:
        assert ws.login(uid, app=APP_NOCERT)["ok"]
        assert ws.call("join", channel=ch)["ok"]
    users = rtmd.pull_until(2, app=APP_NOCERT)
    assert [(e["type"], e["user_id"]) for e in users] == [("Login", uid), ("Logout", uid)]
    chans = rtmd.pull_until(2, kind="channel", app=APP_NOCERT)
    assert ctypes(chans) == [("Join", uid, ch), ("Leave", uid, ch)]
    assert chans[0]["group_id"] == ch


# ---- per app, per log, per region ---------------------------------------------------------------

def test_logs_are_per_app_and_per_kind(rtmd):
    a = rtmd.ws()
    assert a.login("ua", token=token("ua"))["ok"]
    assert a.call("join", channel="x")["ok"]
    b = rtmd.ws()
    assert b.login("ub", app=APP_NOCERT)["ok"]
    c = rtmd.ws()
    assert c.login("uc", app=APP_OTHER, token=token("uc", app=APP_OTHER, cert=CERT_OTHER))["ok"]
    assert c.call("join", channel="y")["ok"]
    # pulling the user log leaves the channel log unread, and other apps alone
    assert [e["user_id"] for e in rtmd.events("user")] == ["ua"]
    assert [e["user_id"] for e in rtmd.events("user", app=APP_NOCERT)] == ["ub"]
    assert rtmd.events("channel", app=APP_NOCERT) == []
    assert [e["channel_id"] for e in rtmd.events("channel")] == ["x"]
    other = basic(CUSTOMER_OTHER, SECRET_OTHER)
    assert [e["user_id"] for e in rtmd.events("user", app=APP_OTHER, auth=other)] == ["uc"]
    assert [e["channel_id"] for e in rtmd.events("channel", app=APP_OTHER, auth=other)] == ["y"]
    for kind in ("user", "channel"):
        for app, auth in ((APP, None), (APP_NOCERT, None), (APP_OTHER, other)):
            assert rtmd.events(kind, app=app, auth=auth) == []


def test_each_region_reads_on_its_own(rtmd):
    with rtmd.ws() as ws:
        assert ws.login("r1", app=APP_NOCERT)["ok"]
        assert ws.call("join", channel="c")["ok"]
    d = rtmd.pull_until(2, app=APP_NOCERT)
    assert rtmd.events("user", app=APP_NOCERT) == []           # read once in "default"
    eu = rtmd.events("user", app=APP_NOCERT, region="eu")       # still unread in "eu"
    assert eu == d
    assert rtmd.events("user", app=APP_NOCERT, region="eu") == []
    # the channel log of each region is untouched by the user-log pulls
    ce = rtmd.events("channel", app=APP_NOCERT, region="eu")
    assert ctypes(ce) == [("Join", "r1", "c"), ("Leave", "r1", "c")]
    assert rtmd.events("channel", app=APP_NOCERT) == ce
    # a new event is unread in both
    with rtmd.ws(region="eu") as ws:
        assert ws.login("r2", app=APP_NOCERT)["ok"]
    d2 = rtmd.pull_until(2, app=APP_NOCERT)
    assert [(e["type"], e["user_id"]) for e in d2] == [("Login", "r2"), ("Logout", "r2")]
    assert rtmd.events("user", app=APP_NOCERT, region="eu") == d2


def test_three_regions_and_two_listeners_of_one_region(make_rtmd):
    r = make_rtmd(regions=("default", "eu", "ap", "eu"))
    with r.ws() as ws:
        assert ws.login("x", app=APP_NOCERT)["ok"]
    all_events = r.pull_until(2, app=APP_NOCERT, region="ap")
    assert [e["type"] for e in all_events] == ["Login", "Logout"]
    assert r.events("user", app=APP_NOCERT, region="ap") == []
    assert r.events("user", app=APP_NOCERT, region="eu") == all_events
    assert r.events("user", app=APP_NOCERT, region="default") == all_events


# ---- events_max_pull and events_retain (small) ----------------------------------------------------

def test_a_pull_returns_at_most_events_max_pull_oldest_first(make_rtmd):
    r = make_rtmd(limits={"events_retain": 10, "events_max_pull": 4})
    ws = r.ws()
    assert ws.login("p", app=APP_NOCERT)["ok"]
    ops = [("join", "a"), ("join", "b"), ("leave", "a"), ("join", "c"), ("leave", "b"),
           ("join", "a"), ("leave", "c"), ("leave", "a"), ("join", "z")]
    channel_ops(ws, ops)
    want = expected_channel_events(ops, "p")
    got = [r.events("channel", app=APP_NOCERT) for _ in range(4)]
    assert [len(g) for g in got] == [4, 4, 1, 0]
    assert ctypes(sum(got, [])) == want
    # the other region pulls the same sequence in the same sizes
    got = [r.events("channel", app=APP_NOCERT, region="eu") for _ in range(4)]
    assert [len(g) for g in got] == [4, 4, 1, 0]
    assert ctypes(sum(got, [])) == want


def test_retain_keeps_the_newest_and_counts_drops_per_region(make_rtmd):
    r = make_rtmd(limits={"events_retain": 5, "events_max_pull": 5})
    ws = r.ws()
    assert ws.login("q", app=APP_NOCERT)["ok"]
    first = [("join", "c%d" % i) for i in range(5)]
    channel_ops(ws, first)
    # "default" reads all five; "eu" reads nothing
    assert ctypes(r.events("channel", app=APP_NOCERT)) == expected_channel_events(first, "q")
    more = [("leave", "c%d" % i) for i in range(3)]
    channel_ops(ws, more, first_id=200)
    both = expected_channel_events(first + more, "q")
    # "default" lost nothing (the overwritten ones were read), "eu" lost 3
    assert ctypes(r.events("channel", app=APP_NOCERT)) == both[5:]
    assert ctypes(r.events("channel", app=APP_NOCERT, region="eu")) == both[3:]
    assert r.events("channel", app=APP_NOCERT, region="eu") == []
    assert metric(r, "default", "channel") == 0
    assert metric(r, "eu", "channel") == 3
    assert metric(r, "default", "user") == 0 and metric(r, "eu", "user") == 0


def test_retain_applies_to_the_user_log_too(make_rtmd):
    r = make_rtmd(limits={"events_retain": 3, "events_max_pull": 2})
    for i in range(3):  # 6 user events: Login/Logout x 3
        with r.ws() as ws:
            assert ws.login("v%d" % i, app=APP_NOCERT)["ok"]
            assert ws.call("logout")["ok"]
            ws.expect_close()
    # each logout reply came after its Logout was recorded
    got = r.events("user", app=APP_NOCERT) + r.events("user", app=APP_NOCERT)
    assert [(e["type"], e["user_id"]) for e in got] == [("Logout", "v1"), ("Login", "v2"),
                                                         ("Logout", "v2")]
    assert metric(r, "default", "user") == 3
    assert metric(r, "eu", "user") == 3


# ---- the real defaults: events_retain 2000, events_max_pull 1000 ------------------------------------

def test_default_retain_2000_and_max_pull_1000(rtmd):
    ws = rtmd.ws()
    assert ws.login("bulk", app=APP_NOCERT)["ok"]
    ops1 = join_leave(500)               # events 1..1000
    channel_ops(ws, ops1)
    got = rtmd.events("channel", app=APP_NOCERT)
    assert ctypes(got) == expected_channel_events(ops1, "bulk")   # default reads all 1000
    ops2 = join_leave(550, start=500)    # events 1001..2100: 1..100 overwritten
    channel_ops(ws, ops2, first_id=5000)
    want = expected_channel_events(ops1 + ops2, "bulk")
    d = [rtmd.events("channel", app=APP_NOCERT) for _ in range(3)]
    assert [len(x) for x in d] == [1000, 100, 0]
    assert ctypes(d[0] + d[1]) == want[1000:]
    e = [rtmd.events("channel", app=APP_NOCERT, region="eu") for _ in range(3)]
    assert [len(x) for x in e] == [1000, 1000, 0]
    assert ctypes(e[0] + e[1]) == want[100:]            # only the newest 2000
    ms = [x["ms"] for x in e[0] + e[1]]
    assert ms == sorted(ms)
    # the user log is its own log: one Login, untouched by the channel traffic
    assert [(x["type"], x["user_id"]) for x in rtmd.events("user", app=APP_NOCERT)] == [("Login", "bulk")]
    # drops: only "eu" had unread events overwritten
    assert metric(rtmd, "default", "channel") == 0
    assert metric(rtmd, "eu", "channel") == 100


def test_unread_events_over_retain_in_both_regions(rtmd):
    ws = rtmd.ws()
    assert ws.login("bulk2", app=APP_NOCERT)["ok"]
    ops = join_leave(1025)  # 2050 events, none read
    channel_ops(ws, ops)
    want = expected_channel_events(ops, "bulk2")
    for region in ("default", "eu"):
        a = rtmd.events("channel", app=APP_NOCERT, region=region)
        b = rtmd.events("channel", app=APP_NOCERT, region=region)
        assert (len(a), len(b)) == (1000, 1000)
        assert ctypes(a + b) == want[50:]
        assert rtmd.events("channel", app=APP_NOCERT, region=region) == []
    assert metric(rtmd, "default", "channel") == 50
    assert metric(rtmd, "eu", "channel") == 50
