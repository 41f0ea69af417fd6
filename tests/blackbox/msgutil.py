"""Helpers for the messaging black-box tests (WebSocket peer/publish/ack,
REST send, offline messages, history, back-pressure).

Everything speaks raw bytes through harness.Http / harness.Ws. Nothing
sleeps for a fixed time except where a test asserts that nothing happens
(assert_silent-style windows).
"""
import json
import re
import select
import socket
import time
import urllib.parse

from harness import (APP, APP_NOCERT, REQUEST_ID_RE, RTMD_BIN, Ws, basic,
                     compact, loads_ordered, token, wait_until)

# Rates high enough that a test that is not about them never meets a 429.
FAST = {"send_qps": 1000000, "history_qps": 1000000}

OK_KEYS = ["op", "id", "ok"]
HANDLE_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def base(app=APP_NOCERT):
    return "/dev/v2/project/%s" % app


def iso(ms):
    """What JavaScript's new Date(ms).toISOString() gives: 2026-11-26T05:22:46.039Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def iso_s(ms):
    """yyyy-MM-dd'T'HH:mm:ss'Z' (the seconds containing ms)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def now_ms():
    return int(time.time() * 1000)


def is_sanitizer_build():
    try:
        with open(RTMD_BIN, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# ---- WebSocket ----------------------------------------------------------------------------

def online(rtmd, uid, app=APP_NOCERT, channels=(), region="default"):
    """A logged-in Ws (token for APP), joined to `channels`; every reply ok."""
    ws = rtmd.ws(region=region)
    m = ws.login(uid, app=app, token=token(uid) if app == APP else None)
    assert list(m) == ["op", "id", "ok", "heartbeat_timeout_s"] and m["ok"] is True, m
    for ch in channels:
        assert_join_ok(ws.call("join", channel=ch))
    return ws


def assert_join_ok(m, rid=None):
    """A join's ok reply: {"op","id","ok":true} then the channel's members
    (count, members, and cursor when more than 512)."""
    assert list(m)[:3] == ["op", "id", "ok"] and m["op"] == "reply" and m["ok"] is True, m
    assert rid is None or m["id"] == rid, m
    assert set(m) - {"op", "id", "ok"} <= {"count", "members", "cursor"}, m
    return m


def push(ws, timeout=5.0):
    """The next pushed message (one kept in ws.pushes first)."""
    if ws.pushes:
        return ws.pushes.pop(0)
    m = ws.recv(timeout)
    assert m.get("op") != "reply", "expected a push, got a reply %r" % (m,)
    return m


def pushes(ws, n, timeout=10.0, skip=()):
    """The next n pushes whose op is not in skip (those are dropped)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        assert left > 0, "got only %d of %d pushes: %r" % (len(out), n, out[-3:])
        m = push(ws, left)
        if m.get("op") not in skip:
            out.append(m)
    return out


def silent(ws, seconds=0.3):
    """Asserts no push is kept and none arrives within `seconds`."""
    assert ws.pushes == [], ws.pushes
    ws.assert_silent(seconds)


def assert_reply_ok(m, rid=None, **fields):
    """{"op":"reply","id":N,"ok":true[,fields...]} exactly, keys in that order."""
    exp = {"op": "reply", "id": m.get("id") if rid is None else rid, "ok": True}
    exp.update(fields)
    assert m == exp and list(m) == list(exp), m


def assert_reply_err(m, error, rid=None):
    assert list(m) == ["op", "id", "ok", "error", "message"], m
    assert m["op"] == "reply" and m["ok"] is False and m["error"] == error, m
    if rid is not None:
        assert m["id"] == rid, m
    assert isinstance(m["message"], str) and m["message"], m


def assert_peer_push(m, frm, payload, t0=None, t1=None):
    assert list(m) == ["op", "mid", "from", "payload", "ms"], m
    assert m["op"] == "peer_message" and m["from"] == frm and m["payload"] == payload, m
    assert isinstance(m["mid"], int) and m["mid"] >= 1, m
    check_ms(m["ms"], t0, t1)


def assert_channel_push(m, channel, frm, payload, t0=None, t1=None):
    assert list(m) == ["op", "channel", "from", "payload", "ms"], m
    assert (m["op"], m["channel"], m["from"], m["payload"]) == \
        ("channel_message", channel, frm, payload), m
    check_ms(m["ms"], t0, t1)


def check_ms(ms, t0=None, t1=None):
    assert isinstance(ms, int), ms
    if t0 is not None:
        assert t0 - 5 <= ms, (t0, ms)
    if t1 is not None:
        assert ms <= t1 + 5, (ms, t1)


def member(op, channel, uid):
    return {"op": op, "channel": channel, "uid": uid}


def frame(obj):
    return Ws.frame(json.dumps(obj))


class SlowWs(Ws):
    """A WebSocket client on a socket with a tiny receive buffer: it logs in
    and joins normally, then the test simply never reads from it again."""

    def __init__(self, port, rcvbuf=4096, timeout=10.0):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        self.buf = b""
        self.next_id = 1
        self.pushes = []
        self.handshake()

    def drain_to_eof(self, timeout=10.0):
        """Reads everything; True once the server has closed (EOF/reset)."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
        return False


# ---- REST ------------------------------------------------------------------------------------

def request(rtmd, method, path, body=None, auth="basic", headers=None, region="default"):
    """One request; auth "basic" (ck_demo), None, or a dict of headers."""
    h = {}
    if auth == "basic":
        h["Authorization"] = basic()
    elif isinstance(auth, dict):
        h.update(auth)
    h.update(headers or {})
    if isinstance(body, (dict, list)):
        body = compact(body)
    return rtmd.get(path, headers=h, method=method, body=body, region=region)


def peer_body(dst, payload, offline=None, history=None):
    """The body in the order Agora's docs (and clients copying them) send it."""
    b = {"destination": dst}
    if offline is not None:
        b["enable_offline_messaging"] = offline
    if history is not None:
        b["enable_historical_messaging"] = history
    b["payload"] = payload
    return b


def channel_body(channel, payload, history=None):
    b = {"channel_name": channel}
    if history is not None:
        b["enable_historical_messaging"] = history
    b["payload"] = payload
    return b


def peer_path(src, app=APP_NOCERT, wait=None, quote=True):
    u = urllib.parse.quote(src, safe="") if quote else src
    p = "%s/rtm/users/%s/peer_messages" % (base(app), u)
    if wait is not None:
        p += "?wait_for_ack=%s" % wait
    return p


def channel_path(src, app=APP_NOCERT, quote=True):
    u = urllib.parse.quote(src, safe="") if quote else src
    return "%s/rtm/users/%s/channel_messages" % (base(app), u)


def send_peer(rtmd, src, dst, payload, offline=None, history=None, wait=None, app=APP_NOCERT,
              auth="basic"):
    return request(rtmd, "POST", peer_path(src, app, wait), peer_body(dst, payload, offline, history),
                   auth=auth)


def send_channel(rtmd, src, channel, payload, history=None, app=APP_NOCERT, auth="basic"):
    return request(rtmd, "POST", channel_path(src, app), channel_body(channel, payload, history),
                   auth=auth)


def assert_answer(resp, code):
    """A send answer: exactly {"code":code,"request_id":..,"result":"success"}
    (message_offline: no result key), compact, X-Request-ID = request_id."""
    st, hd, body = resp
    assert st == 200, (st, body)
    pairs = loads_ordered(body)
    keys = ["code", "request_id"] + ([] if code == "message_offline" else ["result"])
    assert [k for k, _ in pairs] == keys, body
    d = dict(pairs)
    assert body == compact(d).encode(), body
    assert d["code"] == code, body
    if "result" in d:
        assert d["result"] == "success", body
    assert REQUEST_ID_RE.match(d["request_id"]), body
    assert hd.get("x-request-id") == d["request_id"], hd
    assert hd.get("content-type") == "application/json;charset=utf-8", hd
    return d


def assert_success(resp, keys):
    """A 200 with exactly these keys (alphabetical, compact) plus request_id/result."""
    st, hd, body = resp
    assert st == 200, (st, body)
    pairs = loads_ordered(body)
    assert [k for k, _ in pairs] == keys, body
    d = json.loads(body)
    assert body == compact(d).encode(), body
    assert d["result"] == "success", body
    assert REQUEST_ID_RE.match(d["request_id"]), body
    assert hd.get("x-request-id") == d["request_id"], hd
    assert hd.get("content-type") == "application/json;charset=utf-8", hd
    return d


def readable(sock, seconds):
    r, _, _ = select.select([sock], [], [], seconds)
    return bool(r)


# ---- history ------------------------------------------------------------------------------

WIDE = 120000  # ms either side of now for a time window that holds every test message


def window(t0=None, t1=None):
    t0 = now_ms() - WIDE if t0 is None else t0
    t1 = now_ms() + WIDE if t1 is None else t1
    return iso(t0), iso(t1)


def hist_body(source=None, destination=None, start=None, end=None, **paging):
    s, e = window()
    f = {}
    if source is not None:
        f["source"] = source
    if destination is not None:
        f["destination"] = destination
    f["start_time"] = s if start is None else start
    f["end_time"] = e if end is None else end
    b = {"filter": f}
    b.update(paging)
    return b


def hist_post(rtmd, body, app=APP_NOCERT, auth="basic"):
    return request(rtmd, "POST", base(app) + "/rtm/message/history/query", body, auth=auth)


def assert_location(resp, limit=20, offset=0, order="asc"):
    """The POST answer, exact; returns the handle."""
    d = assert_success(resp, ["limit", "location", "offset", "order", "request_id", "result"])
    assert (d["limit"], d["offset"], d["order"]) == (limit, offset, order), d
    loc = d["location"]
    prefix = "~/rtm/message/history/query/"
    assert loc.startswith(prefix), loc
    handle = loc[len(prefix):]
    assert HANDLE_RE.match(handle) and len(handle) <= 64, loc
    return handle


def hist_get(rtmd, handle, app=APP_NOCERT, auth="basic"):
    return request(rtmd, "GET", base(app) + "/rtm/message/history/query/" + handle, auth=auth)


def assert_messages(resp):
    d = assert_success(resp, ["code", "messages", "request_id", "result"])
    assert d["code"] == "ok", d
    for m in d["messages"]:
        assert list(m) == ["dst", "message_type", "ms", "payload", "src"], m
        assert m["message_type"] in ("peer_message", "channel_message"), m
        assert isinstance(m["ms"], int), m
    return d["messages"]


def history(rtmd, source=None, destination=None, app=APP_NOCERT, auth="basic", start=None,
            end=None, **paging):
    """POST a query, GET its handle; returns the messages."""
    h = assert_location(hist_post(rtmd, hist_body(source, destination, start, end, **paging), app,
                                  auth),
                        limit=paging.get("limit", 20), offset=paging.get("offset", 0),
                        order=paging.get("order", "asc"))
    return assert_messages(hist_get(rtmd, h, app, auth))


def short(msgs):
    """Messages as (message_type, src, dst, payload) tuples."""
    return [(m["message_type"], m["src"], m["dst"], m["payload"]) for m in msgs]


def count_path(app=APP_NOCERT, raw=None, **params):
    if raw is not None:
        return base(app) + "/rtm/message/history/count?" + raw
    s, e = window()
    params.setdefault("start_time", s)
    params.setdefault("end_time", e)
    return base(app) + "/rtm/message/history/count?" + urllib.parse.urlencode(params)


def count(rtmd, app=APP_NOCERT, auth="basic", raw=None, **params):
    d = assert_success(request(rtmd, "GET", count_path(app, raw, **params), auth=auth),
                       ["code", "count", "request_id", "result"])
    assert d["code"] == "ok", d
    assert isinstance(d["count"], int), d
    return d["count"]


# ---- presence events ------------------------------------------------------------------------

class Events:
    """Accumulates one event log of one app (region default) across pulls."""

    def __init__(self, rtmd, kind, app=APP_NOCERT):
        self.rtmd, self.kind, self.app, self.got = rtmd, kind, app, []

    def pull(self):
        st, hd, body = self.rtmd.get(
            "%s/rtm/vendor/%s_events" % (base(self.app), self.kind),
            headers={"Authorization": basic()})
        if st == 429:
            return self.got
        assert st == 200, (st, body)
        self.got.extend(json.loads(body)["events"])
        return self.got

    def wait_for(self, pred, timeout=10.0, what="events"):
        wait_until(lambda: pred(self.pull()), timeout, interval=0.12, what=what)
        return self.got


def utypes(events):
    return [(e["type"], e["user_id"]) for e in events]


def ctypes(events):
    return [(e["type"], e["user_id"], e["channel_id"]) for e in events]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

