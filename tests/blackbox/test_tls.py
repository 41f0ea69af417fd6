"""The same flows over TLS (tls = on): the self-signed pair made
in data_dir, an explicit tls_cert/tls_key, HTTPS and WSS, and bad TLS input."""
import json
import os
import socket
import ssl
import stat
import subprocess
import threading
import time

from harness import (APP_NOCERT, Http, Ws, assert_error, assert_events_envelope, basic,
                     connect, event_path, token, wait_until)


def peer_cert(r, region="default"):
    s = connect(r.port(region), True)
    try:
        return s.getpeercert(binary_form=True)
    finally:
        s.close()


def pem_to_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def utypes(events):
    return [(e["type"], e["user_id"]) for e in events]


def test_self_signed_pair_is_made_in_data_dir_and_reused(make_rtmd):
    r = make_rtmd(tls=True)
    cert, key = os.path.join(r.data_dir, "tls-cert.pem"), os.path.join(r.data_dir, "tls-key.pem")
    assert os.path.exists(cert) and os.path.exists(key)
    assert stat.S_IMODE(os.stat(key).st_mode) & 0o077 == 0, "the private key is readable by others"
    der = pem_to_der(cert)
    assert peer_cert(r) == der and peer_cert(r, "eu") == der
    assert r.stop() == 0
    r.restart()
    assert pem_to_der(cert) == der and peer_cert(r) == der


def test_explicit_certificate_and_key_are_used(make_rtmd, tmp_path):
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=rtmd-test"],
                   check=True, capture_output=True, timeout=60)
    r = make_rtmd(tls=True, server={"tls_cert": cert, "tls_key": key})
    assert peer_cert(r) == pem_to_der(cert)
    assert not os.path.exists(os.path.join(r.data_dir, "tls-cert.pem"))
    with r.ws() as ws:
        assert ws.login("x", app=APP_NOCERT)["ok"]


def test_rest_over_tls(make_rtmd):
    r = make_rtmd(tls=True)
    with r.ws() as ws:
        assert ws.login("t", app=APP_NOCERT)["ok"]
    users = r.pull_until(2, app=APP_NOCERT)
    assert utypes(users) == [("Login", "t"), ("Logout", "t")]
    with r.http() as h:
        # keep-alive and pipelining over one TLS connection
        h.send(Http.build("GET", event_path("user", APP_NOCERT), {"Authorization": basic()})
               + Http.build("GET", "/nope") + Http.build("GET", "/healthz")
               + Http.build("GET", event_path("channel"), {"x-agora-token": token("t"), "x-agora-uid": "t"}))
        assert assert_events_envelope(h.read_response()) == []
        assert_error(h.read_response(), 404)
        assert h.read_response()[0] == 200
        assert assert_events_envelope(h.read_response()) == []
        assert_error(h.request("GET", event_path("user"), headers={"Authorization": basic("x", "y")}), 401)
        assert h.request("GET", "/healthz")[0] == 200
    # the eu listener is TLS too, and has its own read position
    assert utypes(r.events("user", app=APP_NOCERT, region="eu")) == utypes(users)


def test_http_limits_over_tls(make_rtmd):
    r = make_rtmd(tls=True)
    with r.http() as h:
        h.send(Http.build("GET", "/healthz", {"X-Big": "a" * (200 * 1024)}))
        assert_error(h.read_response(), 431)
        assert h.wait_eof(5)
    with r.http() as h:
        h.send(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
        assert_error(h.read_response(), 413)
    with r.http() as h:
        h.send(b"FOO / HTTP/1.1\r\n\r\n")
        assert_error(h.read_response(), 400)
    r.healthy()


def test_ws_flows_over_tls(make_rtmd):
    r = make_rtmd(tls=True)
    ws = r.ws()
    assert ws.login("alice", token=token("alice")) == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 30}
    assert ws.call("join", channel="c1")["ok"]
    assert ws.call("join", channel="c2")["ok"]
    assert ws.call("leave", channel="c1")["ok"]
    assert ws.call("ping")["ok"]
    ws.send_frame(b"pp", opcode=9)
    assert ws.recv_frame() == (10, b"pp")
    # fragmented message and many frames in one write
    text = json.dumps({"op": "ping", "id": 50})
    ws.send_raw(Ws.frame(text[:4], fin=False) + Ws.frame(text[4:], opcode=0)
                + Ws.frame(json.dumps({"op": "ping", "id": 51})))
    assert ws.recv()["id"] == 50 and ws.recv()["id"] == 51
    ws.close_socket()
    assert utypes(r.pull_until(2)) == [("Login", "alice"), ("Logout", "alice")]
    chans = r.pull_until(4, kind="channel")
    assert [(e["type"], e["channel_id"]) for e in chans] == [("Join", "c1"), ("Join", "c2"),
                                                            ("Leave", "c1"), ("Leave", "c2")]


def test_logout_over_tls(make_rtmd):
    """The logout op answers, the server closes, and rtmd stays up -
    repeatedly (the client closes as soon as it has the reply)."""
    r = make_rtmd(tls=True)
    for i in range(20):
        try:
            ws = r.ws()
            assert ws.login("lo%d" % i, app=APP_NOCERT)["ok"]
            assert ws.call("join", channel="c")["ok"]
            assert ws.call("logout") == {"op": "reply", "id": 3, "ok": True}
            ws.close_socket()
        except (OSError, EOFError) as e:
            # give a dying server the time to exit, then say what happened
            try:
                wait_until(r.died, timeout=10, what="exit")
            except AssertionError:
                raise AssertionError("logout #%d over TLS: %r, rtmd still up" % (i, e))
            raise AssertionError("rtmd died after logout #%d over TLS:\n%s" % (i, r.read_log()[-6000:]))
    r.healthy()
    users = r.pull_until(40, app=APP_NOCERT)
    assert utypes(users) == sum(([("Login", "lo%d" % i), ("Logout", "lo%d" % i)] for i in range(20)), [])


def test_logout_over_plain_ws_repeatedly(rtmd):
    for i in range(20):
        ws = rtmd.ws()
        assert ws.login("lp%d" % i, app=APP_NOCERT)["ok"]
        assert ws.call("logout")["ok"]
        ws.close_socket()
    rtmd.healthy()
    assert len(rtmd.pull_until(40, app=APP_NOCERT)) == 40


def test_takeover_over_tls(make_rtmd):
    r = make_rtmd(tls=True)
    old = r.ws()
    assert old.login("bob", token=token("bob"))["ok"]
    assert old.call("join", channel="c")["ok"]
    new = r.ws(region="eu")
    assert new.login("bob", token=token("bob", v="006"))["ok"]
    assert old.recv() == {"op": "kicked", "reason": "remote_login"}
    code, _ = old.expect_close()
    assert code == 1000
    assert utypes(r.pull_until(3)) == [("Login", "bob"), ("Logout", "bob"), ("Login", "bob")]


def test_ws_limits_over_tls(make_rtmd):
    r = make_rtmd(tls=True)
    ws = r.ws()
    assert ws.login("big", app=APP_NOCERT)["ok"]
    data = Ws.frame(b'{"op":"ping","id":2,"pad":"' + b"p" * (2 * 1024 * 1024) + b'"}')

    def send():
        try:
            ws.sock.sendall(data)
        except (OSError, ssl.SSLError):
            pass
    # The close is read only once the send is over: one SSL object must not be
    # used by two threads at once (a failed SSL_write in one, as the server
    # closes, could end the SSL_read of the other before it returns the close
    # frame). rtmd discards what follows the refused frame header, so the
    # send ends either way.
    t = threading.Thread(target=send, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "rtmd stopped reading the refused frame"
    code, _ = ws.expect_close()
    assert code == 1009
    ws2 = r.ws()
    ws2.send_frame(b"\xff\xfe")
    code, _ = ws2.expect_close()
    assert code == 1007
    ws3 = r.ws()
    ws3.send_frame(b'{"op":"ping","id":1}', mask=False)
    code, _ = ws3.expect_close()
    assert code == 1002
    r.healthy()


def test_plain_http_on_a_tls_port_is_dropped(make_rtmd):
    r = make_rtmd(tls=True)
    s = connect(r.port(), False)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    s.close()
    assert b"HTTP/1.1 200" not in data
    r.healthy()


def test_garbage_and_truncated_tls_records_are_dropped(make_rtmd):
    r = make_rtmd(tls=True)
    for junk in (os.urandom(4096), b"\x16\x03\x01\x40\x00" + b"\x01" * 100, b"\x16\x03\x01\x00\x05abc",
                 b"\x17\x03\x03\x00\x10" + os.urandom(16)):
        s = connect(r.port(), False)
        s.sendall(junk)
        s.shutdown(1)
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except (ConnectionResetError, TimeoutError):
            pass
        s.close()
        r.healthy()


def test_tls_client_that_never_handshakes_is_closed(make_rtmd):
    """It is closed at tls_handshake_timeout_ms, whatever http_header_timeout_ms is."""
    r = make_rtmd(tls=True, limits={"tls_handshake_timeout_ms": 300, "http_header_timeout_ms": 60000})
    s = connect(r.port(), False)
    s.settimeout(5)
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    s.close()
    r.healthy()


def test_header_timeout_counts_from_the_end_of_the_handshake(make_rtmd):
    """A client whose handshake came late (a reconnect storm queues them)
    still has the whole http_header_timeout_ms for its request (the handshake
    has tls_handshake_timeout_ms, 60 s by default)."""
    r = make_rtmd(tls=True, limits={"http_header_timeout_ms": 1000})
    raw = socket.create_connection(("127.0.0.1", r.port()), timeout=10)
    t0 = time.monotonic()
    time.sleep(0.7)  # the delay under test: the handshake starts late
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    time.sleep(0.7)  # and the request comes 1.4 s after accept
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    assert time.monotonic() - t0 > 1.0
    assert data.startswith(b"HTTP/1.1 200"), data[:100]
    s.close()


def test_sigterm_with_tls_sessions(make_rtmd):
    r = make_rtmd(tls=True)
    socks = []
    for i in range(3):
        ws = r.ws()
        assert ws.login("s%d" % i, app=APP_NOCERT)["ok"]
        assert ws.call("join", channel="room")["ok"]
        socks.append(ws)
    assert r.stop() == 0
    r.restart()
    users = r.pull_until(6, app=APP_NOCERT)
    assert utypes(users[:3]) == [("Login", "s%d" % i) for i in range(3)]
    assert sorted(utypes(users[3:])) == [("Logout", "s%d" % i) for i in range(3)]
    chans = r.pull_until(6, kind="channel", app=APP_NOCERT)
    assert sorted((e["type"], e["user_id"]) for e in chans) == sorted(
        [("Join", "s%d" % i) for i in range(3)] + [("Leave", "s%d" % i) for i in range(3)])
