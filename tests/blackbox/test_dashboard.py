"""The live dashboard (docs/API.md "Dashboard"): /dashboard/ behind a
customer's Basic auth (the browser's prompt), each customer's own apps only;
an app at a glance (users, channels and member counts, each region's unread
backlog and drops, last-minute rates, the nodes); the live tail of presence
events and messages (Server-Sent Events) that consumes nothing and drops, and
counts, what a slow viewer cannot take.
"""
import json
import socket
import threading
import time

from harness import (APP, APP_NOCERT, APP_OTHER, CUSTOMER, CUSTOMER_OTHER, SECRET, SECRET_OTHER,
                     basic, token, wait_until)

ME = basic()
OTHER = basic(CUSTOMER_OTHER, SECRET_OTHER)


def get(r, path, auth=ME, region="default"):
    headers = {"Authorization": auth} if auth else {}
    return r.get(path, headers=headers, region=region)


def ok_json(resp):
    st, hd, body = resp
    assert st == 200, (st, body)
    assert hd["content-type"] == "application/json;charset=utf-8"
    out = json.loads(body)
    assert out["result"] == "success" and out["request_id"] == hd["x-request-id"]
    return out


def overview(r, app=APP_NOCERT, region="default"):
    out = ok_json(get(r, "/dashboard/api/apps/" + app, region=region))
    assert list(out) == sorted(out), list(out)  # keys in alphabetical order, as every answer
    return out


def login(r, uid, channels=(), app=APP_NOCERT):
    ws = r.ws()
    tok = token(uid) if app == APP else None
    assert ws.login(uid, app=app, token=tok)["ok"] is True
    for ch in channels:
        assert ws.call("join", channel=ch)["ok"] is True
    return ws


class Tail:
    """A raw Server-Sent Events reader of /dashboard/api/live."""

    def __init__(self, r, app=APP_NOCERT, auth=ME, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", r.port()))
        self.sock.sendall(("GET /dashboard/api/live?app=%s HTTP/1.1\r\nHost: t\r\n"
                           "Authorization: %s\r\n\r\n" % (app, auth)).encode())
        self.buf = b""
        self.head = None

    def read_head(self, timeout=10.0):
        while b"\r\n\r\n" not in self.buf:
            self._fill(timeout)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        return self.status

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError
        self.buf += data

    def next(self, timeout=10.0):
        """The next event as (type, data); comments are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            if b"\n\n" in self.buf:
                block, self.buf = self.buf.split(b"\n\n", 1)
                kind, data = None, None
                for line in block.decode().split("\n"):
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                if kind:
                    return kind, data
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no event within %s s" % timeout)
            self._fill(left)

    def unread(self, timeout):
        """What is buffered and what arrives within timeout, not parsed."""
        self.sock.settimeout(timeout)
        try:
            return self.buf + self.sock.recv(65536)
        except socket.timeout:
            return self.buf

    def close(self):
        self.sock.close()


# ---- the page and credentials ---------------------------------------------------------


def test_page_asks_for_basic_auth_below_dashboard_only(rtmd):
    st, hd, _ = get(rtmd, "/dashboard", auth=None)
    assert st == 308 and hd["location"] == "/dashboard/" and "www-authenticate" not in hd
    st, hd, _ = get(rtmd, "/dashboard?app=" + APP, auth=None)
    assert st == 308 and hd["location"] == "/dashboard/?app=" + APP
    for path in ("/dashboard/", "/dashboard/dashboard.js", "/dashboard/api/apps",
                 "/dashboard/api/apps/" + APP, "/dashboard/api/live?app=" + APP):
        st, hd, body = get(rtmd, path, auth=None)
        assert st == 401, (path, st)
        assert hd["www-authenticate"].startswith('Basic realm="rtmd dashboard"'), hd
        st, hd, _ = get(rtmd, path, auth=basic(secret="wrong" * 4))
        assert st == 401 and "www-authenticate" in hd
    # The REST API still never challenges: the browser keeps the credentials to /dashboard/.
    st, hd, _ = get(rtmd, "/dev/v2/project/%s/rtm/vendor/user_events" % APP, auth=None)
    assert st == 401 and "www-authenticate" not in hd
    st, hd, body = get(rtmd, "/dashboard/")
    assert st == 200 and hd["content-type"] == "text/html;charset=utf-8"
    assert b'<script type="module" src="dashboard.js">' in body
    assert "frame-ancestors" in hd["content-security-policy"] or hd["x-frame-options"] == "DENY"
    assert hd["cache-control"] == "no-store"
    st, hd, body = get(rtmd, "/dashboard/dashboard.js")
    assert st == 200 and hd["content-type"] == "text/javascript;charset=utf-8"
    assert b"class LiveTail" in body
    assert get(rtmd, "/dashboard/nothing")[0] == 404
    assert rtmd.get("/dashboard/api/apps", method="POST", headers={"Authorization": ME})[0] == 405


def test_a_customer_sees_its_own_apps_only(rtmd):
    out = ok_json(get(rtmd, "/dashboard/api/apps"))
    assert out["customer_id"] == "ck_demo"
    assert [a["app_id"] for a in out["apps"]] == [APP, APP_NOCERT]
    out = ok_json(get(rtmd, "/dashboard/api/apps", auth=OTHER))
    assert [a["app_id"] for a in out["apps"]] == [APP_OTHER]
    # Another customer's app and an app that does not exist answer alike.
    for app in (APP, "0" * 32):
        st, _, body = get(rtmd, "/dashboard/api/apps/" + app, auth=OTHER)
        assert st == 404 and json.loads(body)["code"] == "not_found", body
        t = Tail(rtmd, app=app, auth=OTHER)
        assert t.read_head() == 404
        t.close()
    ok_json(get(rtmd, "/dashboard/api/apps/" + APP_OTHER, auth=OTHER))


# ---- an app at a glance -------------------------------------------------------------


def test_overview_users_channels_backlog_and_nodes(make_rtmd, store_backend):
    r = make_rtmd()
    socks = [login(r, "alice", ["lobby", "solo"]), login(r, "bob", ["lobby"]),
             login(r, "carol")]
    other = login(r, "dave", ["lobby"], app=APP)  # another app of the same customer
    ov = overview(r)
    assert ov["app_id"] == APP_NOCERT
    assert ov["users"] == {"count": 3, "listed": ["alice", "bob", "carol"]}
    assert ov["channels"] == {"count": 2, "listed": [{"channel": "lobby", "members": 2},
                                                      {"channel": "solo", "members": 1}]}
    # 3 Logins and 3 Joins unread in both regions; none dropped.
    assert [b["region"] for b in ov["backlog"]] == ["default", "eu"]
    for b in ov["backlog"]:
        assert b["user_events"] == {"dropped": 0, "unread": 3}, b
        assert b["channel_events"] == {"dropped": 0, "unread": 3}, b
    # A pull in one region empties its backlog, not the other's.
    assert len(r.events("user", app=APP_NOCERT)) == 3
    ov = overview(r)
    assert ov["backlog"][0]["user_events"]["unread"] == 0
    assert ov["backlog"][1]["user_events"]["unread"] == 3
    # This node, its connections and sessions (4 sessions over both apps).
    mine = [n for n in ov["nodes"] if n["self"]]
    assert len(mine) == 1 and mine[0]["alive"] is True
    assert mine[0]["sessions"] == 4 and mine[0]["connections"] >= 4
    scope = "cluster" if store_backend == "redis" else "node"
    assert ov["live"] == {"dropped": 0, "scope": scope, "viewers": 0}
    socks[0].close_socket()
    wait_until(lambda: overview(r)["users"]["count"] == 2, what="alice gone")
    ov = overview(r)
    assert ov["channels"]["listed"] == [{"channel": "lobby", "members": 1}]
    for ws in socks[1:] + [other]:
        ws.close_socket()


def test_backlog_counts_drops_past_retention(make_rtmd):
    r = make_rtmd(limits={"events_retain": 5, "events_max_pull": 5})
    socks = [login(r, "u%d" % i) for i in range(8)]
    ov = overview(r)
    for b in ov["backlog"]:
        # 8 Logins, 5 kept: 3 overwritten unread in each region.
        assert b["user_events"] == {"dropped": 3, "unread": 5}, b
    for ws in socks:
        ws.close_socket()


def test_rates_of_the_last_minute(make_rtmd):
    r = make_rtmd()
    a = login(r, "alice", ["lobby"])
    b = login(r, "bob", ["lobby", "side"])
    for i in range(3):
        assert a.call("publish", channel="lobby", payload="m%d" % i)["ok"] is True
    assert b.call("peer", to="alice", payload="hi")["ok"] is True
    for _ in range(4):
        assert get(r, "/dev/v2/project/%s/rtm/channels/lobby/count" % APP_NOCERT)[0] == 200

    def totals():
        rates = overview(r)["rates"]
        assert all(len(v["per_second"]) == 60 for v in rates.values())
        return {k: v["last_minute"] for k, v in rates.items()}

    # The current second is not over: counts show once it is.
    want = {"joins": 3, "logins": 2, "messages": 4, "requests": 4}
    wait_until(lambda: totals() == want, timeout=5, what="rates %r" % want)
    a.close_socket()
    b.close_socket()


def test_nodes_of_a_cluster_each_with_its_connections(make_rtmd, store_backend):
    if store_backend != "redis":
        return  # one node: the test above covers it
    n1 = make_rtmd("n1")
    n2 = make_rtmd("n2")
    socks = [login(n1, "a"), login(n2, "b"), login(n2, "c")]

    def nodes():
        return {n["node"]: n for n in overview(n1)["nodes"]}

    # n2 reports every 5 s; n1 reports at each answer.
    wait_until(lambda: nodes().get("2", {}).get("sessions") == 2, timeout=15, what="node 2")
    got = nodes()
    assert got["1"]["self"] is True and got["2"]["self"] is False
    assert got["1"]["sessions"] == 1 and got["1"]["alive"] and got["2"]["alive"]
    assert got["2"]["connections"] >= 2
    # Who is online is every node's, from either node.
    assert overview(n2)["users"] == {"count": 3, "listed": ["a", "b", "c"]}
    for ws in socks:
        ws.close_socket()


def wait_for_remote_tail(t, other, timeout):
    """Until a Login made on node other shows in tail t (a node learns
    within about a second that another watches the app): one probe user
    logged in per try, all closed after."""
    probes = []

    def seen_probe():
        probes.append(login(other, "probe%d" % len(probes)))
        try:
            while True:
                kind, data = t.next(timeout=0.3)
                if kind == "presence" and data["user_id"].startswith("probe"):
                    return True
        except (AssertionError, socket.timeout):
            return False

    wait_until(seen_probe, timeout=timeout, what="the other node's events in the tail")
    for ws in probes:
        ws.close_socket()


# ---- the live tail --------------------------------------------------------------------


def test_live_tail_shows_presence_and_messages_and_consumes_nothing(rtmd):
    t = Tail(rtmd)
    assert t.read_head() == 200
    assert t.headers["content-type"] == "text/event-stream;charset=utf-8"
    wait_until(lambda: overview(rtmd)["live"]["viewers"] == 1, what="viewer registered")
    other = Tail(rtmd, app=APP)  # the customer's other app: sees none of this
    assert other.read_head() == 200
    a = login(rtmd, "alice", ["lobby"])
    b = login(rtmd, "bob", ["lobby"])
    assert a.call("publish", channel="lobby", payload="hello ✓ " + "x" * 300)["ok"] is True
    assert b.call("peer", to="alice", payload="psst")["ok"] is True
    assert b.call("leave", channel="lobby")["ok"] is True
    b.close_socket()
    got = [t.next() for _ in range(8)]
    kinds = [(k, d.get("type"), d.get("user_id", d.get("from"))) for k, d in got]
    assert kinds == [("presence", "Login", "alice"), ("presence", "Join", "alice"),
                     ("presence", "Login", "bob"), ("presence", "Join", "bob"),
                     ("message", "channel", "alice"), ("message", "peer", "bob"),
                     ("presence", "Leave", "bob"), ("presence", "Logout", "bob")], kinds
    join = got[1][1]
    assert join["channel_id"] == "lobby" and join["ms"] > 0
    msg = got[4][1]
    assert msg["to"] == "lobby" and msg["bytes"] == len(("hello ✓ " + "x" * 300).encode())
    assert msg["payload"].startswith("hello ✓ ") and len(msg["payload"].encode()) <= 200
    assert got[5][1]["to"] == "alice" and got[5][1]["payload"] == "psst"
    # Nothing was consumed: the vendor's logs hold every event (the tail
    # shows an event when presence hands it to the store: wait for the commit).
    wait_until(lambda: [b["user_events"]["unread"] for b in overview(rtmd)["backlog"]
                        if b["region"] == "default"] == [3], what="bob's Logout committed")
    users = rtmd.events("user", app=APP_NOCERT)
    assert [(e["type"], e["user_id"]) for e in users] == [
        ("Login", "alice"), ("Login", "bob"), ("Logout", "bob")]
    assert len(rtmd.events("channel", app=APP_NOCERT)) == 3
    # The other app's viewer got nothing (a keepalive comment at most).
    assert b"event:" not in other.unread(0.3)
    a.close_socket()
    t.close()
    other.close()
    wait_until(lambda: overview(rtmd)["live"]["viewers"] == 0, what="viewers gone")


def watched_on_n1(make_rtmd):
    """Two nodes, a viewer of the live tail on n1, once n2 knows it (within about a second)."""
    n1 = make_rtmd("n1")
    n2 = make_rtmd("n2")
    t = Tail(n1)
    assert t.read_head() == 200
    wait_for_remote_tail(t, n2, timeout=10)
    return n1, n2, t


def test_live_tail_is_cluster_wide_on_redis(make_rtmd, store_backend):
    if store_backend != "redis":
        return  # one node
    n1, n2, t = watched_on_n1(make_rtmd)
    a = login(n2, "alice", ["lobby"])  # on the other node
    b = login(n1, "bob", ["lobby"])    # on the viewer's node
    assert a.call("publish", channel="lobby", payload="from n2")["ok"] is True
    want = [("presence", "Login", "alice"), ("presence", "Join", "alice"),
            ("presence", "Login", "bob"), ("presence", "Join", "bob"),
            ("message", "channel", "alice")]
    got = []
    while len(got) < len(want):
        kind, data = t.next(timeout=10)
        if data.get("user_id", "").startswith("probe"):
            continue  # the probes' Logouts
        got.append((kind, data.get("type"), data.get("user_id", data.get("from"))))
    assert got == want, got
    assert overview(n1)["live"]["scope"] == "cluster"
    # Each event once: n1's own are not echoed back through Redis.
    rest = t.unread(1.5)
    assert b"event:" not in rest, rest
    t.close()
    a.close_socket()
    b.close_socket()


def test_live_tail_on_redis_shows_what_redis_records_alone(make_rtmd, store_backend):
    """A takeover from another node ends the old session inside Redis's login script, and a dead
    node's sessions are ended by a surviving node's script: no node taps those Leaves and Logouts,
    so the script publishes them to the tail of a watched app. Each shows once."""
    if store_backend != "redis":
        return  # one node: every event is tapped where it is recorded
    n1 = make_rtmd("n1", store={"node_timeout_s": 2})
    n2 = make_rtmd("n2", store={"node_timeout_s": 2})
    t = Tail(n1)
    assert t.read_head() == 200
    wait_for_remote_tail(t, n2, timeout=10)

    def presence(n):
        got = []
        while len(got) < n:
            kind, data = t.next(timeout=15)
            if kind == "presence" and not data["user_id"].startswith("probe"):
                got.append((data["type"], data["user_id"], data.get("channel_id")))
        return got
    old = login(n2, "alice", ["lobby", "hall"])
    assert presence(3) == [("Login", "alice", None), ("Join", "alice", "lobby"),
                           ("Join", "alice", "hall")]
    new = login(n1, "alice")  # takes alice over from n2: n2 records nothing
    # n1 shows its Login as it hands it to Redis, the old session's end comes from the script
    got = presence(4)
    assert got[0] == ("Login", "alice", None) and got[1:] == [
        ("Leave", "alice", "hall"), ("Leave", "alice", "lobby"), ("Logout", "alice", None)], got
    old.expect_close()
    b = login(n2, "bob", ["lobby"])
    assert presence(2) == [("Login", "bob", None), ("Join", "bob", "lobby")]
    n2.kill9()  # n1 ends bob's session once n2's heartbeat is 2 s old
    assert presence(2) == [("Leave", "bob", "lobby"), ("Logout", "bob", None)]
    rest = t.unread(1.5)
    assert b"event: presence" not in rest, rest
    t.close()
    new.close_socket()
    b.close_socket()


def test_rates_add_up_every_node_on_redis(make_rtmd, store_backend):
    """While a viewer on n1 watches the app, n2 publishes its counts every second: n1's overview
    adds them to its own, so the rates are the cluster's."""
    if store_backend != "redis":
        return  # one node
    n1, n2, t = watched_on_n1(make_rtmd)
    socks = [login(n2, "alice", ["lobby"]), login(n2, "bob", ["lobby", "side"])]
    for i in range(3):
        assert socks[0].call("publish", channel="lobby", payload="m%d" % i)["ok"] is True

    def last_minute(r):
        return {k: v["last_minute"] for k, v in overview(r)["rates"].items() if k != "requests"}

    # n2 counts only its own (nobody watches on n2); n1 adds n2's report to its own zeros
    wait_until(lambda: last_minute(n2)["messages"] == 3 and last_minute(n2)["joins"] == 3,
               timeout=5, what="n2's own counts")
    want = last_minute(n2)
    assert want["logins"] >= 3  # alice, bob and the probes
    wait_until(lambda: last_minute(n1) == want, timeout=5, what="n2's counts on n1: %r" % want)
    per = overview(n1)["rates"]["messages"]["per_second"]
    assert len(per) == 60 and sum(per) == 3
    for ws in socks:
        ws.close_socket()
    t.close()


def test_rates_reports_of_other_nodes_are_checked(make_rtmd, store_backend, request):
    """What comes over the tail channel is another node's word, checked before it counts:
    malformed reports are ignored, a good one adds, and none reaches the viewer."""
    if store_backend != "redis":
        return  # one node
    redis = request.getfixturevalue("redis_session")
    n1 = make_rtmd("n1")
    t = Tail(n1)
    assert t.read_head() == 200
    chan = "rtmd:{%s}:tail" % APP_NOCERT

    def report(node, **over):
        d = {"joins": [0] * 60, "logins": [0] * 60, "messages": [0] * 60,
             "ms": int(time.time() * 1000), "node": node, "requests": [0] * 60}
        d.update(over)
        return "%s\nevent: rates\ndata: %s\n\n" % (node, json.dumps(d, separators=(",", ":")))

    def rates_after(*msgs):
        for m in msgs:
            redis.command("SPUBLISH", chan, m)
        return {k: v["last_minute"] for k, v in overview(n1)["rates"].items()}

    # n1 listens once a good report counts
    wait_until(lambda: rates_after(report("zz", requests=[3] + [0] * 59))["requests"] == 3,
               timeout=10, what="the first report counted")
    seven = [0] * 59 + [7]
    bad = [report("b0", messages=[7] * 59), report("b1", messages=[-1] + seven[1:]),
           report("b2", messages=[2 ** 32] + seven[1:]), report("x" * 40, messages=seven),
           report("b4", messages=seven, ms="soon"), report("b5", messages=seven, ms=-5),
           "b6\nevent: rates\ndata: {nope\n\n", report("b7", messages=seven, joins=None),
           report("b8", messages=seven, requests=["1"] * 60), report("", messages=seven),
           report("b9", messages=[7.5] * 60)[:-1]]
    # the bad ones, then a good one: once it counts, they were read (in order on the channel)
    got = {}

    def good_counted():
        got.update(rates_after(*(bad + [report("zy", joins=[5] + [0] * 59)])))
        return got["joins"] == 5
    wait_until(good_counted, timeout=10, what="the good report after the bad ones")
    assert got["messages"] == 0, got
    rest = t.unread(0.3)
    assert b"rates" not in rest, rest
    t.close()


def test_at_most_64_viewers_per_node(rtmd):
    tails = [Tail(rtmd) for _ in range(64)]
    for t in tails:
        assert t.read_head() == 200
    extra = Tail(rtmd)
    assert extra.read_head() == 503
    extra.close()
    tails.pop().close()
    wait_until(lambda: overview(rtmd)["live"]["viewers"] == 63, what="a viewer gone")
    again = Tail(rtmd)
    assert again.read_head() == 200
    for t in tails + [again]:
        t.close()
    wait_until(lambda: overview(rtmd)["live"]["viewers"] == 0, what="viewers gone")


def test_slow_viewer_is_bounded_and_told_what_it_missed(make_rtmd):
    r = make_rtmd(limits={"max_payload": 1024})
    slow = Tail(r, rcvbuf=4096)
    assert slow.read_head() == 200
    fast = Tail(r)
    assert fast.read_head() == 200
    got_fast = []
    done = threading.Event()

    def read_fast():
        try:
            while not done.is_set():
                kind, data = fast.next(timeout=20)
                if kind == "message":
                    got_fast.append(data["payload"])
                    if len(got_fast) == N:
                        return
        except Exception:
            return

    N = 6000
    reader = threading.Thread(target=read_fast)
    reader.start()
    a = login(r, "alice")
    pad = "p" * 180
    batch = 200
    for start in range(0, N, batch):
        for i in range(start, start + batch):
            a.send({"op": "peer", "id": 10 + i, "to": "nobody", "payload": "%05d%s" % (i, pad)})
        a.reply(10 + start + batch - 1, timeout=30)
        # the fast viewer keeps up (a batch is well inside its budget) even
        # when the machine is busy; the slow one reads nothing
        wait_until(lambda: len(got_fast) >= start + batch or not reader.is_alive(), 30,
                   interval=0.005, what="the fast viewer to read the batch")
    reader.join(timeout=30)
    done.set()
    # The fast viewer got every message, in order.
    assert got_fast == ["%05d%s" % (i, pad) for i in range(N)]
    ov = overview(r)
    dropped = ov["live"]["dropped"]
    assert dropped > 0, ov["live"]
    # The server held at most its budget for the slow one; now it reads all.
    got, told = [], 0
    slow.sock.settimeout(10)
    while len(got) + told < N:
        kind, data = slow.next(timeout=10)
        if kind == "message":
            got.append(int(data["payload"][:5]))
        elif kind == "dropped":
            told = data["dropped"]
    assert told == dropped and len(got) + told == N
    assert got == sorted(got) and len(got) < N
    for t in (slow, fast):
        t.close()
    a.close_socket()


# ---- in a real browser ------------------------------------------------------------------

def test_dashboard_in_headless_chromium(make_rtmd, tmp_path):
    """tests/blackbox/node/dashboard_browser_test.mjs drives Debian's chromium: Basic auth
    through the browser's prompt, the DOM's users, channels, counts and backlog, a presence
    event and a message arriving live; the screenshot goes to the test's tmp dir."""
    import os
    import subprocess
    r = make_rtmd()
    socks = [login(r, "alice", ["lobby", "solo"]), login(r, "bob", ["lobby"])]
    shot = str(tmp_path / "dashboard.png")
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
    env = dict(os.environ, RTMD_URL="http://127.0.0.1:%d" % r.port(), RTMD_APP=APP_NOCERT,
               RTMD_CUSTOMER=CUSTOMER, RTMD_SECRET=SECRET, SHOT=shot)
    proc = subprocess.Popen(["node", "dashboard_browser_test.mjs"], cwd=here, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = []
    try:
        def line_until(word, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                out.append(line)
                if line.strip().startswith(word):
                    return line.strip()
            raise AssertionError("no %s from the browser test:\n%s" % (word, "".join(out)))

        line_until("READY", 60)
        carol = login(r, "carol", ["lobby"])
        assert carol.call("publish", channel="lobby", payload="hello from carol")["ok"] is True
        proc.stdin.write("GO\n")
        proc.stdin.flush()
        shot_line = line_until("SHOT", 60)
        line_until("OK", 30)
        assert proc.wait(timeout=30) == 0, "".join(out)
        print("dashboard screenshot: " + shot_line.split(" ", 1)[1])
        assert os.path.getsize(shot) > 10000
        carol.close_socket()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for ws in socks:
        ws.close_socket()


def test_dashboard_on_a_redis_cluster_across_two_nodes(make_redis_cluster, tmp_path):
    """The overview script on the app's master, the nodes' keys on {nodes}'s, the tail's shard
    channel on the app's: each away from the first seed."""
    from harness import Rtmd
    c = make_redis_cluster(masters=3)
    if c.owner(c.slot_of_app(APP_NOCERT)) is not c.masters()[1]:
        c.move_slot(c.slot_of_app(APP_NOCERT), c.masters()[1])
    nodes = []
    try:
        for name in ("n1", "n2"):
            (tmp_path / name).mkdir()
            nodes.append(Rtmd(tmp_path / name, store={"backend": "redis", "redis_url": c.url},
                              server={"node_id": name}).start())
        n1, n2 = nodes
        t = Tail(n1)
        assert t.read_head() == 200
        wait_for_remote_tail(t, n2, timeout=15)
        a = login(n2, "alice", ["lobby"])
        b = login(n1, "bob", ["lobby"])
        wait_until(lambda: overview(n1)["users"] == {"count": 2, "listed": ["alice", "bob"]},
                   what="both users in the overview")
        ov = overview(n1)
        assert ov["channels"]["listed"] == [{"channel": "lobby", "members": 2}]
        wait_until(lambda: {n["node"] for n in overview(n1)["nodes"]} == {"n1", "n2"},
                   timeout=15, what="both nodes listed")
        seen = set()
        while ("alice", "Join") not in seen:
            kind, data = t.next(timeout=10)
            if kind == "presence":
                seen.add((data["user_id"], data["type"]))
        t.close()
        a.close_socket()
        b.close_socket()
    finally:
        for r in nodes:
            if r.alive():
                r.stop()
