"""SIGHUP reloads the config file the process started with, in place: apps
(added ones are usable at once; a removed one's sessions end with Leave and
Logout, its clients get a kicked push and close 1008), customers, limits,
log settings and the TLS certificate, without dropping a connection. A file
that does not load is logged with its FILE:LINE message and changes nothing.
Keys that need a restart are named in the log and keep their running values.
"""
import json
import os
import signal
import ssl
import subprocess

from harness import APP, APP_NOCERT, CUSTOMER, SECRET, Ws, basic, connect, event_path, wait_until

GONE = "9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a"  # an app the reload removes
NEW = "5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b"   # an app the reload adds
THIRD = "ck_third"
THIRD_SECRET = "third-secret-0123456789"


def third_customer(app):
    return "\n[customer:%s]\nsecret = %s\napps = %s\n" % (THIRD, THIRD_SECRET, app)


def reload(r, n):
    """SIGHUP; waits for the n-th reload's summary line in the log."""
    os.kill(r.proc.pid, signal.SIGHUP)
    wait_until(lambda: r.read_log().count(" reload reloaded ") >= n, 10,
               what="reload %d in the log" % n)


def reload_refused(r, n):
    os.kill(r.proc.pid, signal.SIGHUP)
    wait_until(lambda: r.read_log().count("the running configuration is kept") >= n, 10,
               what="refused reload %d in the log" % n)


def pull_third(r, n, app, kind="user"):
    """Pulls app's events (owned by the third customer) until n came."""
    got = []

    def enough():
        st, _, body = r.events_raw(kind, app=app,
                                   headers={"Authorization": basic(THIRD, THIRD_SECRET)})
        if st == 429:
            return False
        assert st == 200, (st, body)
        got.extend(json.loads(body)["events"])
        return len(got) >= n

    wait_until(enough, 10, interval=0.05, what="%d %s events of %s" % (n, kind, app))
    return got


def utypes(events):
    return [(e["type"], e["user_id"]) for e in events]


def assert_untouched(ws, channel=None):
    """The connection is open, logged in and served."""
    assert ws.call("ping")["ok"] is True
    if channel:
        assert ws.call("publish", channel=channel, payload="still here")["ok"] is True


def test_a_new_app_is_usable_at_once(make_rtmd):
    r = make_rtmd()
    bob = r.ws()
    assert bob.login("bob", app=APP_NOCERT)["ok"] is True
    assert bob.call("join", channel="ch")["ok"] is True
    early = r.ws()
    assert early.login("carol", app=NEW)["error"] == "invalid_appid"
    assert r.events_raw(app=NEW, headers={"Authorization": basic(THIRD, THIRD_SECRET)})[0] == 401

    r.extra = third_customer(NEW)
    r.write_config()
    reload(r, 1)
    assert r.log_has("app %s added" % NEW)
    carol = r.ws()
    assert carol.login("carol", app=NEW)["ok"] is True
    assert carol.call("join", channel="room")["ok"] is True
    got = pull_third(r, 1, NEW)
    assert utypes(got) == [("Login", "carol")]
    st, _, _ = r.events_raw(app=NEW, headers={"Authorization": basic(THIRD, THIRD_SECRET)})
    assert st == 200
    # the first customer does not own it
    assert r.events_raw(app=NEW, headers={"Authorization": basic()})[0] == 401
    assert_untouched(bob, "ch")
    carol.close()
    bob.close()


def test_a_removed_app_ends_its_sessions_and_leaves_the_others(make_rtmd):
    r = make_rtmd(extra=third_customer(GONE))
    alice = r.ws()
    assert alice.login("alice", app=GONE)["ok"] is True
    assert alice.call("join", channel="ch")["ok"] is True
    bob = r.ws()
    assert bob.login("bob", app=APP_NOCERT)["ok"] is True
    assert bob.call("join", channel="ch")["ok"] is True

    r.extra = ""
    r.write_config()
    reload(r, 1)
    code, reason = alice.expect_close(5)
    assert (code, reason) == (1008, "app_removed")
    assert {"op": "kicked", "reason": "app_removed"} in alice.pushes
    assert r.log_has("app %s removed: 1 sessions on this node ended" % GONE)
    # the app and its customer are gone
    again = r.ws()
    assert again.login("alice", app=GONE)["error"] == "invalid_appid"
    st, _, _ = r.events_raw(app=GONE, headers={"Authorization": basic(THIRD, THIRD_SECRET)})
    assert st == 401
    # the other app's session never noticed
    assert_untouched(bob, "ch")
    assert bob.pushes == [] or all(p.get("op") != "kicked" for p in bob.pushes)

    # back again: its event log holds the session's end
    r.extra = third_customer(GONE)
    r.write_config()
    reload(r, 2)
    assert r.log_has("1 back")
    users = pull_third(r, 2, GONE)
    assert utypes(users) == [("Login", "alice"), ("Logout", "alice")]
    chans = pull_third(r, 2, GONE, kind="channel")
    assert utypes(chans) == [("Join", "alice"), ("Leave", "alice")]
    assert again.login("alice2", app=GONE)["ok"] is True
    assert_untouched(bob, "ch")
    bob.close()
    again.close()


def test_limits_customers_and_log_level_follow_the_file(make_rtmd):
    r = make_rtmd()
    bob = r.ws()
    assert bob.login("bob", app=APP_NOCERT)["ok"] is True
    assert bob.call("join", channel="a")["ok"] is True
    assert r.get(event_path(app=APP_NOCERT), headers={"Authorization": basic()})[0] == 200

    r.limits = {"max_channels_per_user": 2, "heartbeat_timeout_s": 50, "events_qps": 1}
    r.write_config()
    with open(r.conf_path) as f:
        text = f.read()
    text = text.replace("secret = %s" % SECRET, "secret = a-brand-new-secret-42")
    text = text.replace("log_level = debug", "log_level = info")
    with open(r.conf_path, "w") as f:
        f.write(text)
    reload(r, 1)
    # a restart-only key is named, and keeps its running value
    assert r.log_has("needs a restart (the running values stay): heartbeat_timeout_s")
    # the new limit applies to the session that was already there
    assert bob.call("join", channel="b")["ok"] is True
    assert bob.call("join", channel="c")["error"] == "too_many_channels"
    # the customer's new secret, and only it, is accepted
    assert r.get(event_path(app=APP_NOCERT), headers={"Authorization": basic()})[0] == 401
    new = basic(CUSTOMER, "a-brand-new-secret-42")
    # (a pull made under the old limit may still count in this second's window)
    wait_until(lambda: r.get(event_path(app=APP_NOCERT), headers={"Authorization": new})[0] == 200,
               5, interval=0.1, what="a pull with the new secret")
    # the rate limiter follows events_qps = 1: a second pull in the same second is refused
    assert r.get(event_path(app=APP_NOCERT), headers={"Authorization": new})[0] == 429
    # log_level = info: a debug line no longer appears
    before = r.read_log().count(" debug ")
    probe = r.ws()
    probe.close()
    assert_untouched(bob, "a")
    wait_until(lambda: r.log_has(" reload reloaded "), 2)
    assert r.read_log().count(" debug ") == before
    bob.close()


def test_a_bad_file_is_logged_and_the_running_config_kept(make_rtmd):
    r = make_rtmd()
    bob = r.ws()
    assert bob.login("bob", app=APP_NOCERT)["ok"] is True
    good = open(r.conf_path).read()
    bad = good + third_customer(NEW) + "\n[app:%s]\nvendor_token_access = maybe\n" % NEW
    with open(r.conf_path, "w") as f:
        f.write(bad)
    line = bad.count("\n")  # the last line
    reload_refused(r, 1)
    assert r.log_has("%s:%d: vendor_token_access" % (r.conf_path, line)), r.read_log()[-2000:]
    assert r.alive()
    # nothing of the bad file applies
    ws = r.ws()
    assert ws.login("carol", app=NEW)["error"] == "invalid_appid"
    assert_untouched(bob)
    # fixed: the next SIGHUP applies it
    with open(r.conf_path, "w") as f:
        f.write(good + third_customer(NEW))
    reload(r, 1)
    assert ws.login("carol", app=NEW)["ok"] is True
    assert_untouched(bob)
    ws.close()
    bob.close()


def peer_cert(r):
    s = connect(r.port(), True)
    try:
        return s.getpeercert(binary_form=True)
    finally:
        s.close()


def make_pair(d, cn):
    cert, key = os.path.join(d, cn + "-cert.pem"), os.path.join(d, cn + "-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + cn], check=True, capture_output=True)
    return cert, key


def test_a_renewed_certificate_is_used_by_new_connections(make_rtmd, tmp_path):
    r = make_rtmd(tls=True)
    old_der = peer_cert(r)
    bob = r.ws()
    assert bob.login("bob", app=APP_NOCERT)["ok"] is True
    cert, key = make_pair(str(tmp_path), "renewed")
    # renewed in place, as certbot does
    os.replace(cert, os.path.join(r.data_dir, "tls-cert.pem"))
    os.replace(key, os.path.join(r.data_dir, "tls-key.pem"))
    reload(r, 1)
    assert r.log_has("TLS certificate read again")
    new_der = peer_cert(r)
    assert new_der != old_der
    with open(os.path.join(r.data_dir, "tls-cert.pem")) as f:
        assert new_der == ssl.PEM_cert_to_DER_cert(f.read())
    assert_untouched(bob)  # made with the old certificate, still served
    # a key that does not load: refused, the renewed certificate stays
    with open(os.path.join(r.data_dir, "tls-key.pem"), "w") as f:
        f.write("not a key\n")
    reload_refused(r, 1)
    assert peer_cert(r) == new_der
    assert_untouched(bob)
    ws = Ws(r.port(), tls=True)
    assert ws.login("carol", app=APP_NOCERT)["ok"] is True
    ws.close()
    bob.close()


def test_a_burst_of_sighup_with_the_same_file_changes_nothing(make_rtmd):
    r = make_rtmd()
    bob = r.ws()
    assert bob.login("bob", app=APP_NOCERT)["ok"] is True
    assert bob.call("join", channel="ch")["ok"] is True
    for _ in range(20):
        os.kill(r.proc.pid, signal.SIGHUP)
    # signals may coalesce: at least one reload, each a no-op
    wait_until(lambda: r.log_has(" reload reloaded "), 10, what="a reload")
    assert_untouched(bob, "ch")
    log = r.read_log()
    assert "needs a restart" not in log
    assert " 0 apps added, 0 back, 0 removed (0 sessions ended), 0 changed" in log
    assert " 1 apps added" not in log and "kicked" not in log
    r.healthy()
    bob.close()


def test_allowed_and_cors_origins_follow_the_file(make_rtmd):
    from test_listeners import preflight, upgrade
    r = make_rtmd(server={"allowed_origins": "https://a.example"})
    with r.http() as h:
        assert upgrade(h, "https://b.example")[0] == 403
    assert preflight(r, "https://b.example")[0] == 403
    r.server = dict(r.server, allowed_origins="https://b.example", cors_origins="https://b.example")
    r.write_config()
    reload(r, 1)
    assert not r.log_has("needs a restart")
    with r.http() as h:
        assert upgrade(h, "https://b.example")[0] == 101
    with r.http() as h:
        assert upgrade(h, "https://a.example")[0] == 403
    assert preflight(r, "https://b.example")[0] == 204
