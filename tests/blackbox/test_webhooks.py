"""Webhooks (docs/WEBHOOKS.md): [webhook:NAME] sections POST presence events (and messages,
with events = message) in signed batches
from a durable outbox to a real HTTP receiver (a Python http.server in this process on a free
port): delivered in order per app, signatures verify, retried through a receiver that is down,
slow or answering 500, and through kill -9 of rtmd meanwhile — everything arrives, a duplicate
carries the same event_id. Filtering by events and apps; reload; metrics; independence from the
vendor's pulls; config errors."""
import base64
import hashlib
import hmac
import http.server
import json
import os
import signal
import ssl
import subprocess
import threading
import time

import pytest

from harness import (APP, APP_NOCERT, APP_OTHER, CERT_OTHER, RTMD_BIN, basic, free_port, token,
                     wait_until)

HOOK_SECRET = "whsec_0123456789abcdef"


class Receiver:
    """A webhook receiver on a fixed free port. mode(): "ok" (204), "500", "slow" (answers
    after `delay` s), or stop() for a receiver that is down (connection refused)."""

    def __init__(self, secret=HOOK_SECRET, tls=None):
        self.port = free_port()
        self.tls = tls  # (cert file, key file): serve HTTPS
        self.secret = secret.encode()
        self.lock = threading.Lock()
        self.posts = []          # every request: (headers, body bytes, status answered)
        self.accepted = []       # bodies answered 2xx, in order
        self._mode = "ok"
        self.delay = 0.0
        self.server = None
        self.start()

    def url(self, path="/hook"):
        return "%s://127.0.0.1:%d%s" % ("https" if self.tls else "http", self.port, path)

    def mode(self, m, delay=0.0):
        with self.lock:
            self._mode = m
            self.delay = delay

    def start(self):
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with rec.lock:
                    mode, delay = rec._mode, rec.delay
                if mode == "slow":
                    time.sleep(delay)
                status = 500 if mode == "500" else 204
                with rec.lock:
                    rec.posts.append((dict(self.headers), body, status))
                    if status < 300:
                        rec.accepted.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.server.daemon_threads = True
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self):
        """Every event of every acknowledged batch, in arrival order."""
        with self.lock:
            bodies = list(self.accepted)
        out = []
        for b in bodies:
            out.extend(json.loads(b)["events"])
        return out

    def all_posts(self):
        with self.lock:
            return list(self.posts)

    def verify(self, headers, body, tolerance=600):
        sig = headers.get("X-Rtmd-Signature")
        assert sig, headers
        parts = dict(p.split("=", 1) for p in sig.split(","))
        t = parts["t"]
        assert abs(int(t) - time.time()) < tolerance
        want = hmac.new(self.secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(want, parts["v1"]), sig


def hook_section(name, rec, **keys):
    keys.setdefault("url", rec.url())
    keys.setdefault("secret", HOOK_SECRET)
    return "\n[webhook:%s]\n%s" % (name, "".join("%s = %s\n" % kv for kv in keys.items()))


def logins(r, uids, app=APP, channels=(), cert_token=True):
    for uid in uids:
        with r.ws() as ws:
            kw = {"token": token(uid)} if app == APP else \
                {"token": token(uid, app=APP_OTHER, cert=CERT_OTHER)}
            assert ws.login(uid, app=app, **kw)["ok"]
            for ch in channels:
                assert ws.call("join", channel=ch)["ok"]
            assert ws.call("logout")["ok"]
            ws.expect_close()


def expected(uids, channels=()):
    """The (type, uid) sequence logins() records, user and channel events merged in order."""
    out = []
    for u in uids:
        out.append(("Login", u))
        for ch in channels:
            out.append(("Join", u))
        for ch in channels:
            out.append(("Leave", u))
        out.append(("Logout", u))
    return out


def first_seen(events):
    """Events without repeats (the first delivery of each event_id), in arrival order."""
    seen, out = set(), []
    for e in events:
        if e["event_id"] not in seen:
            seen.add(e["event_id"])
            out.append(e)
    return out


def check_order(events):
    """Per app and log, seq strictly increases in first-delivery order; event_ids match."""
    last = {}
    for e in first_seen(events):
        log = "u" if e["type"] in ("Login", "Logout") else "m" if "Message" in e["type"] else "c"
        assert e["event_id"] == "%s-%s-%d" % (e["app_id"], log, e["seq"]), e
        k = (e["app_id"], log)
        assert e["seq"] > last.get(k, 0), (e, last)
        last[k] = e["seq"]


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.stop()


DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "WEBHOOKS.md")


def doc_snippet(lang):
    """The verify snippet of docs/WEBHOOKS.md in lang ("python" or "js")."""
    with open(DOCS) as f:
        text = f.read()
    start = text.index("```%s\n" % lang, text.index("## Verifying the signature"))
    start = text.index("\n", start) + 1
    return text[start:text.index("```", start)]


def docs_verify(secret, header, body):
    """What the documented Python and Node snippets say of one delivery."""
    ns = {}
    exec(doc_snippet("python"), ns)
    py = ns["verify"](secret.encode(), header, body)
    js = doc_snippet("js") + (
        "\nconst [s, h, b] = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "process.stdout.write(String(verify(s, h, Buffer.from(b, 'base64'))));\n")
    p = subprocess.run(["node", "-e", js], capture_output=True, text=True, timeout=30,
                       input=json.dumps([secret, header, base64.b64encode(body).decode()]))
    assert p.returncode == 0, p.stderr
    return py, p.stdout == "true"


# ---- delivery -------------------------------------------------------------------------------

def test_events_arrive_in_batches_signed_in_commit_order(make_rtmd, receiver):
    r = make_rtmd(extra=hook_section("main", receiver))
    logins(r, ["alice", "bob"], channels=["room"])
    want = expected(["alice", "bob"], ["room"])
    wait_until(lambda: len(receiver.events()) >= len(want), 10, what="webhook events")
    ev = receiver.events()
    assert [(e["type"], e["user_id"]) for e in ev] == want
    check_order(ev)
    for e in ev:
        assert e["app_id"] == APP
        assert e["session_id"] and e["ms"] == e["ts"]
        if e["type"] in ("Join", "Leave"):
            assert e["channel_id"] == "room" and e["group_id"] == "room"
    # The body is {"events":[...]}, keys as documented, every POST signed.
    for headers, body, status in receiver.all_posts():
        receiver.verify(headers, body)
        assert headers["Content-Type"] == "application/json"
        d = json.loads(body)
        assert list(d) == ["events"]
        assert list(d["events"][0])[:2] == ["app_id", "event_id"]
    # Batches: fewer POSTs than events once events pile up.
    assert len(receiver.all_posts()) <= len(want)
    # The verify snippets of docs/WEBHOOKS.md accept a real delivery, refuse a changed one.
    headers, body, status = receiver.all_posts()[-1]
    sig = headers["X-Rtmd-Signature"]
    assert docs_verify(HOOK_SECRET, sig, body) == (True, True)
    changed = body.replace(b'"events"', b'"Events"')
    assert docs_verify(HOOK_SECRET, sig, changed) == (False, False)
    assert docs_verify("another-secret-0123", sig, body) == (False, False)


def test_vendor_pulls_and_webhooks_are_independent(make_rtmd, receiver):
    r = make_rtmd(extra=hook_section("main", receiver), limits={"events_qps": 100000})
    logins(r, ["carol"])
    pulled = r.pull_until(2)
    assert [e["type"] for e in pulled] == ["Login", "Logout"]
    wait_until(lambda: len(receiver.events()) >= 2, 10, what="webhook events")
    assert [e["type"] for e in receiver.events()] == ["Login", "Logout"]
    # Delivery consumed nothing of the vendor's log, a pull nothing of the webhook's.
    assert r.events() == []
    logins(r, ["dave"])
    wait_until(lambda: len(receiver.events()) >= 4, 10, what="more webhook events")
    assert [e["user_id"] for e in r.pull_until(2)] == ["dave", "dave"]


def test_outage_500_slow_and_kill9_lose_nothing(make_rtmd, receiver):
    """Receiver answers 500, then is down while rtmd is killed (-9) and restarted, then slow
    past timeout_ms, then fine: every acknowledged event arrives, in order per app, signed;
    repeats carry the same event_id."""
    r = make_rtmd(extra=hook_section("main", receiver, timeout_ms=500, batch_max=3))
    receiver.mode("500")
    logins(r, ["u1", "u2"], channels=["c"])
    wait_until(lambda: len(receiver.all_posts()) >= 2, 10, what="two 500s")
    receiver.stop()                       # down
    logins(r, ["u3"], channels=["c"])      # acknowledged during the outage
    r.kill9()
    r.restart()
    logins(r, ["u4"])
    receiver.mode("slow", delay=1.0)      # answers after the 500 ms timeout: failures
    receiver.start()
    wait_until(lambda: len(receiver.all_posts()) >= 3 + 2, 20, what="slow attempts")
    receiver.mode("ok")
    want = expected(["u1", "u2", "u3"], ["c"]) + expected(["u4"])
    wait_until(lambda: len(first_seen(receiver.events())) >= len(want), 30,
               what="all events after the outage")
    ev = receiver.events()
    got = first_seen(ev)
    assert [(e["type"], e["user_id"]) for e in got] == want
    check_order(ev)
    for headers, body, status in receiver.all_posts():
        receiver.verify(headers, body)
    # A slow answer that came after the timeout was a delivery rtmd did not count: the same
    # events came again, with the same event_ids.
    ids = [e["event_id"] for e in ev]
    assert len(ids) >= len(want) and set(ids) == {e["event_id"] for e in got}
    # The receiver may have every event while rtmd still owes the last batch: its slow answer
    # came after the timeout, so rtmd sends it again after its backoff (seconds, by then).
    wait_until(lambda: r.metrics()['rtmd_webhook_pending{webhook="main"}'] == 0, 60,
               what="the last batch acknowledged")
    m = r.metrics()
    assert m['rtmd_webhook_failed_total{webhook="main"}'] == 0
    assert m['rtmd_webhook_delivered_total{webhook="main"}'] >= len(expected(["u4"]))


def test_a_batch_is_dropped_after_retry_s_and_counted_failed(make_rtmd, receiver):
    r = make_rtmd(extra=hook_section("main", receiver, retry_s=1))
    receiver.mode("500")
    logins(r, ["gone"])
    wait_until(lambda: r.metrics().get('rtmd_webhook_failed_total{webhook="main"}', 0) >= 2, 15,
               what="the batch dropped")
    assert r.log_has("events dropped after")
    receiver.mode("ok")
    logins(r, ["kept"])
    wait_until(lambda: len(receiver.events()) >= 2, 10, what="the next events")
    assert [e["user_id"] for e in receiver.events()] == ["kept", "kept"]
    # the receiver has the batch a moment before rtmd has its answer
    wait_until(lambda: r.metrics()['rtmd_webhook_oldest_pending_age_seconds{webhook="main"}'] == 0,
               10, what="nothing pending")
    assert r.metrics()['rtmd_webhook_post_errors_total{webhook="main"}'] >= 2


def test_oldest_pending_age_and_pending_grow_during_an_outage(make_rtmd, receiver):
    r = make_rtmd(extra=hook_section("main", receiver))
    receiver.stop()
    logins(r, ["late"])
    wait_until(lambda: r.metrics().get('rtmd_webhook_oldest_pending_age_seconds{webhook="main"}',
                                       0) >= 1, 10, what="an age")
    assert r.metrics()['rtmd_webhook_pending{webhook="main"}'] == 2
    receiver.start()
    wait_until(lambda: len(receiver.events()) >= 2, 15, what="delivery")
    wait_until(lambda: r.metrics()['rtmd_webhook_pending{webhook="main"}'] == 0, 10,
               what="pending 0")


def test_sigterm_during_a_post_exits_cleanly_and_delivers_after_restart(make_rtmd, receiver):
    """A POST in flight at SIGTERM (a receiver that answers late) is abandoned, rtmd exits 0
    at once, and the batch is delivered after the restart, with the same event_ids."""
    r = make_rtmd(extra=hook_section("main", receiver, timeout_ms=30000))
    receiver.mode("slow", delay=3.0)
    logins(r, ["term"])
    wait_until(lambda: r.metrics().get('rtmd_webhook_posts_total{webhook="main"}', 0) >= 1, 10,
               what="a POST in flight")
    t = time.monotonic()
    assert r.stop() == 0
    assert time.monotonic() - t < 2.5, "the shutdown waited for the receiver"
    receiver.mode("ok")
    r.restart()
    wait_until(lambda: len(receiver.events()) >= 2, 15, what="delivery after the restart")
    ev = receiver.events()
    assert [(e["type"], e["user_id"]) for e in first_seen(ev)] == [("Login", "term"),
                                                                   ("Logout", "term")]
    check_order(ev)


def make_ca_and_cert(d):
    """A CA and a certificate it signed for 127.0.0.1, made with the openssl command."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=rtmd test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    return [os.path.join(d, n) for n in ("ca.pem", "srv.pem", "srv.key")]


def test_https_receiver_is_verified_against_ca_file(make_rtmd, tmp_path):
    """https:// with ca_file: delivered; without it (the system's CAs do not know the test CA)
    every attempt fails verification and nothing is delivered."""
    ca, cert, key = make_ca_and_cert(str(tmp_path))
    good, bad = Receiver(tls=(cert, key)), Receiver(tls=(cert, key))
    try:
        r = make_rtmd(extra=hook_section("good", good, ca_file=ca) + hook_section("bad", bad))
        logins(r, ["secure"])
        wait_until(lambda: len(good.events()) >= 2, 10, what="delivery over https")
        assert [e["user_id"] for e in good.events()] == ["secure", "secure"]
        for headers, body, status in good.all_posts():
            good.verify(headers, body)
        wait_until(lambda: r.metrics().get('rtmd_webhook_post_errors_total{webhook="bad"}', 0)
                   >= 1, 10, what="a failed verification")
        assert bad.all_posts() == [] and r.log_has("SSL certificate problem")
    finally:
        good.stop()
        bad.stop()


# ---- message events -------------------------------------------------------------------------

def test_message_events_are_answered_once_durable_and_delivered(make_rtmd, receiver):
    """events = message: every peer and channel message sent becomes an event in the outbox
    before its sender hears back; a kill -9 right after the replies loses none."""
    r = make_rtmd(extra=hook_section("msgs", receiver, events="message"))
    receiver.stop()
    with r.ws() as a, r.ws() as b:
        assert a.login("alice", token=token("alice"))["ok"]
        assert b.login("bob", token=token("bob"))["ok"]
        assert a.call("join", channel="room")["ok"]
        assert a.call("peer", to="bob", payload='he said "hi"\n\u00e9')["ok"]
        assert a.call("publish", channel="room", payload="all")["ok"]
        assert a.call("peer", to="nobody", payload="lost?")["ok"]
    r.kill9()
    r.restart()
    receiver.start()
    wait_until(lambda: len(receiver.events()) >= 3, 20, what="the message events")
    ev = first_seen(receiver.events())
    assert [(e["type"], e["user_id"]) for e in ev] == [("PeerMessage", "alice"),
                                                       ("ChannelMessage", "alice"),
                                                       ("PeerMessage", "alice")]
    assert ev[0]["to"] == "bob" and ev[0]["payload"] == 'he said "hi"\n\u00e9'
    assert ev[1]["channel_id"] == "room" and ev[1]["payload"] == "all"
    assert ev[2]["to"] == "nobody"
    for e in ev:
        assert e["event_id"] == "%s-m-%d" % (APP, e["seq"]) and e["ms"] == e["ts"]
    assert ev[0]["seq"] < ev[1]["seq"] < ev[2]["seq"]
    # No presence event: the webhook asked for messages only.
    assert all(e["type"].endswith("Message") for e in receiver.events())
    for headers, body, status in receiver.all_posts():
        receiver.verify(headers, body)


# ---- filtering ------------------------------------------------------------------------------

def test_events_and_apps_select_what_a_webhook_receives(make_rtmd, tmp_path):
    chan, user = Receiver(), Receiver()
    try:
        r = make_rtmd(extra=hook_section("chan", chan, events="channel", apps=APP)
                      + hook_section("user", user, events="user", apps=APP_OTHER))
        logins(r, ["a1"], channels=["x"])
        logins(r, ["o1"], app=APP_OTHER, channels=["y"])
        wait_until(lambda: len(chan.events()) >= 2 and len(user.events()) >= 2, 10,
                   what="both webhooks")
        assert [(e["type"], e["app_id"]) for e in chan.events()] == [("Join", APP), ("Leave", APP)]
        assert [(e["type"], e["app_id"]) for e in user.events()] == [("Login", APP_OTHER),
                                                                     ("Logout", APP_OTHER)]
        # Nothing else comes.
        logins(r, ["a2"])
        wait_until(lambda: len(user.events()) == 2 and len(chan.events()) == 2, 2)
    finally:
        chan.stop()
        user.stop()


# ---- reload ---------------------------------------------------------------------------------

def test_reload_adds_changes_and_removes_webhooks(make_rtmd):
    one, two = Receiver(), Receiver()
    try:
        r = make_rtmd(extra=hook_section("one", one))
        logins(r, ["before"])
        wait_until(lambda: len(one.events()) >= 2, 10, what="one's events")
        # Add "two"; "one" now takes channel events only.
        r.extra = hook_section("one", one, events="channel") + hook_section("two", two)
        r.write_config()
        r.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: r.log_has("two delivers to"), 10, what="the reload")
        logins(r, ["after"], channels=["k"])
        wait_until(lambda: len(two.events()) >= 4, 10, what="two's events")
        assert [(e["type"], e["user_id"]) for e in two.events()] == expected(["after"], ["k"])
        wait_until(lambda: len(one.events()) >= 4, 10, what="one's channel events")
        assert [e["type"] for e in one.events()[2:]] == ["Join", "Leave"]
        # Remove both: nothing more is POSTed.
        r.extra = ""
        r.write_config()
        r.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: r.log_has("two removed"), 10, what="the second reload")
        n1, n2 = len(one.all_posts()), len(two.all_posts())
        logins(r, ["later"])
        time.sleep(0.5)  # a negative check: give a wrong delivery the time to arrive
        assert (len(one.all_posts()), len(two.all_posts())) == (n1, n2)
    finally:
        one.stop()
        two.stop()


# ---- cluster mode: one node at a time delivers a webhook -----------------------------------

def cluster_node(make_rtmd, redis_server, name, rec):
    st = {"backend": "redis", "redis_url": redis_server.url, "redis_timeout_ms": 500,
          "node_timeout_s": 2}
    return make_rtmd(name=name, store=st, server={"node_id": name},
                     extra=hook_section("main", rec))


def login_nocert(r, uid, channels=()):
    ws = r.ws()
    assert ws.login(uid, app=APP_NOCERT)["ok"]
    for ch in channels:
        assert ws.call("join", channel=ch)["ok"]
    return ws


def test_two_nodes_deliver_one_outbox_once_in_order_and_fail_over(make_rtmd, redis_server,
                                                                   receiver):
    a = cluster_node(make_rtmd, redis_server, "wa", receiver)
    b = cluster_node(make_rtmd, redis_server, "wb", receiver)
    clients = [login_nocert(a if i % 2 else b, "u%d" % i, ["room"]) for i in range(6)]
    wait_until(lambda: len(receiver.events()) >= 12, 15, what="events of both nodes")
    ev = receiver.events()
    assert len(ev) == 12 and len(first_seen(ev)) == 12  # one node delivers: no repeat
    check_order(ev)
    holder = redis_server.command("GET", "rtmd:{webhooks}:lease:main")
    assert holder in ("wa", "wb"), holder
    dead, alive = (a, b) if holder == "wa" else (b, a)
    dead.kill9()
    # The survivor ends the dead node's sessions and takes the lease over once it expires.
    login_nocert(alive, "late").close()
    want = 12 + 3 * 2 + 2  # the dead node's 3 users: Leave, Logout; late: Login, Logout
    wait_until(lambda: len(first_seen(receiver.events())) >= want, 20, what="the failover")
    got = first_seen(receiver.events())
    check_order(receiver.events())
    per_user = {}
    for e in got:
        if e["type"] in ("Login", "Logout"):
            per_user.setdefault(e["user_id"], []).append(e["type"])
    assert all(t == ["Login", "Logout"] for u, t in per_user.items() if u != "late" and
               (int(u[1:]) % 2 == 1) == (dead is a)), per_user
    assert redis_server.command("GET", "rtmd:{webhooks}:lease:main") == alive.server["node_id"]
    for w in clients:
        w.close()


# ---- config ---------------------------------------------------------------------------------

def check_config(tmp_path, text):
    path = os.path.join(str(tmp_path), "c.conf")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([RTMD_BIN, "--check-config", path], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


BASE = "[server]\nlisten = 127.0.0.1:0@default\ndata_dir = %s\n"


@pytest.mark.own_store
@pytest.mark.parametrize("section, message", [
    ("[webhook:w]\nsecret = 0123456789abcdef\n", "missing required key url"),
    ("[webhook:w]\nurl = ftp://x/\nsecret = 0123456789abcdef\n", "must start with http://"),
    ("[webhook:w]\nurl = http:///x\nsecret = 0123456789abcdef\n", "has no host"),
    ("[webhook:w]\nurl = http://x/\nsecret = short\n", "secret: must be 16..256 bytes"),
    ("[webhook:w]\nurl = http://x/\nsecret = 0123456789abcdef\nevents = user, presence\n",
     "is not user, channel or message"),
    ("[webhook:w]\nurl = http://x/\nsecret = 0123456789abcdef\napps = nope\n",
     "is not an App ID"),
    ("[webhook:w]\nurl = http://x/\nsecret = 0123456789abcdef\n[webhook:w]\n",
     "section appears twice"),
    ("[webhook:a b]\n", "webhook name must be"),
    ("[webhook:w]\nurl = http://x/\nsecret = 0123456789abcdef\nevents = ,\n",
     "events: name at least one of user, channel, message"),
])
def test_config_errors_name_the_line_and_key(tmp_path, section, message):
    rc, out = check_config(tmp_path, BASE % tmp_path + section)
    assert rc == 2 and message in out, out


@pytest.mark.own_store
def test_a_good_webhook_section_checks_ok(tmp_path):
    rc, out = check_config(tmp_path, BASE % tmp_path +
                           "[webhook:crm-1]\nurl = https://hooks.example.com/rtm?x=1\n"
                           "secret = 0123456789abcdef\nevents = channel\n  user\n"
                           "apps = %s\nbatch_max = 50\ntimeout_ms = 2000\nretry_s = 3600\n" % APP)
    assert rc == 0, out
