"""Back-pressure and fan-out (docs/API.md: "a client that stops reading while
ws_output_budget bytes pile up is disconnected"): a member that stops
reading while a channel floods is cut off — its session ends with Leave and
Logout as for any disconnect — instead of being buffered for without bound;
the other members keep receiving every message in order, and the server
keeps answering. Fan-out to a few hundred members delivers everything to
everyone, in order."""
import json
import threading
import time

from harness import APP_NOCERT, Ws, basic
from msgutil import (FAST, Events, SlowWs, assert_answer, assert_join_ok, channel_body, channel_path, count, ctypes,
                     is_sanitizer_build, member, online, push, pushes, rss_kb, send_channel,
                     silent, utypes)

BUDGET = 65536
SIZE = 30000


def flood_count():
    """Messages of SIZE bytes that overflow what the kernel can absorb for a
    reader that never reads (its server-side send buffer at most tcp_wmem's
    maximum) and then the budget, with a margin."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem_max = int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        wmem_max = 4 << 20
    return min(600, (wmem_max + (1 << 20)) // SIZE + 20)


def slow_member(r, uid, channel):
    slow = SlowWs(r.port(), rcvbuf=4096)
    assert slow.login(uid, app=APP_NOCERT) == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 30}
    assert_join_ok(slow.call("join", channel=channel), rid=2)
    return slow


class Reader(threading.Thread):
    """Reads a Ws until `n` channel messages came (or an error)."""

    def __init__(self, ws, n, timeout=60.0):
        threading.Thread.__init__(self, daemon=True)
        self.ws, self.n, self.timeout = ws, n, timeout
        self.got, self.error = [], None

    def run(self):
        deadline = time.monotonic() + self.timeout
        try:
            while sum(1 for m in self.got if m.get("op") == "channel_message") < self.n:
                self.got.append(self.ws.recv(max(0.1, deadline - time.monotonic())))
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def channel_payloads(self):
        return [m["payload"] for m in self.got if m.get("op") == "channel_message"]


def payload(i):
    return "%05d" % i + "x" * (SIZE - 5)


def check_flood_outcome(r, good_readers, slow_uids, n, users, chans):
    for rd in good_readers:
        rd.join(120)
        assert not rd.is_alive(), "a reader is stuck after %d messages" % len(rd.got)
        assert rd.error is None, "a member that reads was cut off too: %r after %d messages\n%s" % (
            rd.error, len(rd.channel_payloads()), "\n".join(
                l for l in r.read_log().splitlines() if "budget" in l))
        assert rd.channel_payloads() == [payload(i) for i in range(n)]
        left = [m for m in rd.got if m.get("op") == "member_left"]
        assert sorted(m["uid"] for m in left) == sorted(slow_uids), left
    # each slow reader's session ended as for any disconnect: Leave, then Logout
    users.wait_for(lambda ev: all(("Logout", u) in utypes(ev) for u in slow_uids),
                   what="Logout of the slow readers")
    for u in slow_uids:
        evs = [t for t in utypes(users.got) if t[1] == u]
        assert evs == [("Login", u), ("Logout", u)], evs
        cev = [t for t in ctypes(chans.pull()) if t[1] == u]
        assert cev == [("Join", u, "flood"), ("Leave", u, "flood")], cev
    assert "over its output budget" in r.read_log()


def test_a_member_that_stops_reading_is_cut_off_and_the_others_keep_receiving(make_rtmd):
    r = make_rtmd(limits=dict(FAST, ws_output_budget=BUDGET))
    users, chans = Events(r, "user"), Events(r, "channel")
    good = online(r, "good", channels=["flood"])
    slow = slow_member(r, "slow", "flood")
    sender = online(r, "sender", channels=["flood"])
    assert pushes(good, 2) == [member("member_joined", "flood", "slow"),
                               member("member_joined", "flood", "sender")]
    n = flood_count()
    rd = Reader(good, n)
    rd.start()
    worst = 0.0
    for i in range(n):
        # one publish at a time: the sender waits for each reply
        m = sender.call("publish", channel="flood", payload=payload(i))
        assert m == {"op": "reply", "id": m["id"], "ok": True}, m
        if i % 10 == 0:
            t0 = time.monotonic()
            r.healthy()
            worst = max(worst, time.monotonic() - t0)
    assert worst < 2.0, "healthz took %.2f s during the flood" % worst
    check_flood_outcome(r, [rd], ["slow"], n, users, chans)
    # the sender is a member too: it heard the slow reader leave, and nothing else
    assert push(sender) == member("member_left", "flood", "slow")
    silent(sender, 0.1)
    assert slow.drain_to_eof(10), "the slow reader's connection is still open"
    r.healthy()
    # the cut-off user is offline now
    assert sender.call("peer", to="slow", payload="x")["state"] == "offline"
    m = r.metrics()
    assert m["rtmd_slow_consumers_closed_total"] == 1
    assert m["rtmd_pushes_total"] >= n  # every message reached the member that reads


def test_a_pipelined_flood_cuts_off_only_the_member_that_does_not_read(make_rtmd):
    """The sender pipelines its publishes (no waiting for replies), so several
    arrive in one read; a member that reads promptly must not be judged slow."""
    r = make_rtmd(limits=dict(FAST, ws_output_budget=BUDGET))
    users, chans = Events(r, "user"), Events(r, "channel")
    goods = [online(r, "good%d" % i, channels=["flood"]) for i in range(2)]
    slow = slow_member(r, "slow", "flood")
    sender = online(r, "sender", channels=["flood"])
    assert pushes(goods[0], 3) == [member("member_joined", "flood", u) for u in ("good1", "slow", "sender")]
    assert pushes(goods[1], 2) == [member("member_joined", "flood", u) for u in ("slow", "sender")]
    n = flood_count()
    readers = [Reader(g, n) for g in goods]
    for rd in readers:
        rd.start()
    worst = 0.0
    batch = 8
    for i in range(0, n, batch):
        sender.send_raw(b"".join(
            Ws.frame(json.dumps({"op": "publish", "id": 1000 + k, "channel": "flood", "payload": payload(k)}))
            for k in range(i, min(n, i + batch))))
        t0 = time.monotonic()
        r.healthy()
        worst = max(worst, time.monotonic() - t0)
    for k in range(n):
        assert sender.reply(1000 + k)["ok"] is True
    assert worst < 2.0, "healthz took %.2f s during the flood" % worst
    check_flood_outcome(r, readers, ["slow"], n, users, chans)
    assert slow.drain_to_eof(10)
    assert push(sender) == member("member_left", "flood", "slow")


def test_several_slow_readers_are_all_cut_off_and_memory_stays_bounded(make_rtmd):
    r = make_rtmd(limits=dict(FAST, ws_output_budget=BUDGET))
    users, chans = Events(r, "user"), Events(r, "channel")
    good = online(r, "good", channels=["flood"])
    slows = [slow_member(r, "slow%d" % i, "flood") for i in range(8)]
    assert [m["uid"] for m in pushes(good, 8)] == ["slow%d" % i for i in range(8)]
    rss0 = rss_kb(r.proc.pid)
    n = flood_count()
    rd = Reader(good, n)
    rd.start()
    peak = 0
    for i in range(n):
        st, hd, body = send_channel(r, "backend", "flood", payload(i))
        assert st == 200, body
        if i % 20 == 0:
            peak = max(peak, rss_kb(r.proc.pid))
    check_flood_outcome(r, [rd], ["slow%d" % i for i in range(8)], n, users, chans)
    for s in slows:
        assert s.drain_to_eof(10)
    flood_kb = n * SIZE // 1024
    if not is_sanitizer_build():  # (ASan keeps freed memory in quarantine)
        # buffered for without bound, 8 readers would hold 8 floods
        assert peak - rss0 < 2 * flood_kb, (rss0, peak, flood_kb)
    r.healthy()


def test_a_peer_flood_to_a_reader_that_does_not_read_cuts_it_off(make_rtmd):
    r = make_rtmd(limits=dict(FAST, ws_output_budget=BUDGET))
    users = Events(r, "user")
    slow = SlowWs(r.port(), rcvbuf=4096)
    assert slow.login("slow", app=APP_NOCERT)["ok"] is True
    n = flood_count()
    states = []
    with r.http() as h:
        for i in range(n):
            st, hd, body = h.request("POST", "/dev/v2/project/%s/rtm/users/backend/peer_messages" % APP_NOCERT,
                                     {"Authorization": basic()},
                                     json.dumps({"destination": "slow", "payload": payload(i)}))
            assert st == 200, body
            states.append(json.loads(body)["code"])
    assert states[0] == "message_sent"
    assert states[-1] == "message_offline", states[-5:]
    k = states.index("message_offline")
    assert set(states[k:]) == {"message_offline"} and set(states[:k]) == {"message_sent"}
    users.wait_for(lambda ev: ("Logout", "slow") in utypes(ev), what="the slow reader's Logout")
    assert utypes(users.got) == [("Login", "slow"), ("Logout", "slow")]
    assert slow.drain_to_eof(10)
    r.healthy()


def test_fan_out_to_300_members_delivers_everything_in_order(make_rtmd):
    r = make_rtmd(limits=FAST, store={"sync": "normal"})
    n_members, n_msgs = 300, 20
    socks = [r.ws() for _ in range(n_members)]
    for i, ws in enumerate(socks):
        ws.send_raw(Ws.frame(json.dumps({"op": "login", "id": 1, "appid": APP_NOCERT, "uid": "f%03d" % i}))
                    + Ws.frame(json.dumps({"op": "join", "id": 2, "channel": "big"})))
    for ws in socks:
        assert ws.reply(1) == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 30}
        assert_join_ok(ws.reply(2), rid=2)
    sender = socks[0]
    t0 = time.monotonic()
    # half from the first member over WS (pipelined), half from the backend
    sender.send_raw(b"".join(Ws.frame(json.dumps({"op": "publish", "id": 100 + k, "channel": "big",
                                                  "payload": "ws%02d" % k}))
                             for k in range(n_msgs // 2)))
    for k in range(n_msgs // 2):
        assert sender.reply(100 + k) == {"op": "reply", "id": 100 + k, "ok": True}
    with r.http() as h:
        for k in range(n_msgs // 2):
            st, hd, body = h.request("POST", channel_path("backend"), {"Authorization": basic()},
                                     json.dumps(channel_body("big", "rest%02d" % k)))
            assert_answer((st, hd, body), "message_sent")
    ws_part = ["ws%02d" % k for k in range(n_msgs // 2)]
    rest_part = ["rest%02d" % k for k in range(n_msgs // 2)]
    joined = 0
    for i, ws in enumerate(socks):
        want = (rest_part if i == 0 else ws_part + rest_part)
        got = []
        while len(got) < len(want):
            m = push(ws, 20)
            if m["op"] == "member_joined":
                assert not got, "member_joined after a message: %r" % m  # all joined before
                assert m["channel"] == "big" and m["uid"] != "f%03d" % i, m
                joined += 1
                continue
            assert m["op"] == "channel_message" and m["channel"] == "big", m
            assert m["from"] == ("f000" if m["payload"].startswith("ws") else "backend"), m
            got.append(m["payload"])
        assert got == want, (i, got[:5])
    # of every two members exactly one heard the other join
    assert joined == n_members * (n_members - 1) // 2
    took = time.monotonic() - t0
    assert took < 60, took
    for ws in socks[:5]:
        silent(ws, 0.05)
    # a kept message to the big channel is in the history of every member but its sender
    m = sender.call("publish", channel="big", payload="kept for all", history=True)
    assert m == {"op": "reply", "id": m["id"], "ok": True}, m
    for uid in ("f001", "f150", "f299"):
        assert count(r, destination=uid) == 1, uid
    assert count(r, destination="f000") == 0
    assert count(r, destination="big") == 1
    assert count(r, source="f000", destination="big") == 1
    r.healthy()
