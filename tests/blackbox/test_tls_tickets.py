"""TLS session tickets with rtmd's own keys (tls_ticket_rotate_s): a ticket
resumes (no full handshake), across a reload, during the period it was
issued in and the next one but not after; on the redis backend a ticket one
node issued resumes on another node and after a restart; 0 issues no
tickets. Real clients: Python's ssl (OpenSSL) sessions."""
import signal
import socket
import ssl
import time

import pytest

from harness import wait_until


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def healthz(sock):
    """One GET /healthz; reading the answer also reads the tickets (TLS 1.3
    sends them after the handshake)."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf or not buf.endswith(b"}"):
        chunk = sock.recv(65536)
        assert chunk, "closed before the response"
        buf += chunk
    assert buf.startswith(b"HTTP/1.1 200"), buf[:200]


def connect(ctx, port, session=None):
    """A TLS connection that made one request; (reused, session)."""
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                        server_hostname="localhost", session=session)
    try:
        healthz(s)
        return s.session_reused, s.session
    finally:
        s.close()


def test_ticket_resumes_and_survives_a_reload(make_rtmd):
    r = make_rtmd(tls=True)
    ctx = client_ctx()
    reused, sess = connect(ctx, r.port())
    assert not reused
    assert sess.has_ticket
    reused, sess2 = connect(ctx, r.port(), sess)
    assert reused
    assert sess2.has_ticket  # a new ticket with each resumption
    # A reload makes a new TLS context (the certificate is read again): the
    # ticket keys are the process's and stay.
    r.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: " reload reloaded " in r.read_log(), timeout=10, what="the reload")
    reused, _ = connect(ctx, r.port(), sess)
    assert reused
    r.healthy()


def test_tickets_off(make_rtmd):
    r = make_rtmd(tls=True, server={"tls_ticket_rotate_s": 0})
    ctx = client_ctx()
    reused, sess = connect(ctx, r.port())
    assert not reused
    assert not sess.has_ticket
    reused, _ = connect(ctx, r.port(), sess)
    assert not reused


def wait_for_phase(period, lo, hi):
    """Sleeps until the wall clock is between lo and hi seconds into a period
    of `period` seconds; returns that period's number."""
    while True:
        now = time.time()
        into = now % period
        if lo <= into < hi:
            return int(now // period)
        time.sleep(min(0.05, ((lo - into) % period) or 0.01))


def wait_for_period(period, e, into=0.2):
    """Sleeps until `into` seconds into period e."""
    t = e * period + into
    while time.time() < t:
        time.sleep(min(0.05, t - time.time()))


def test_ticket_key_rotation(make_rtmd):
    """Period 2 s: a ticket issued at the end of period e resumes in e + 1
    (0.5 s old) and not in e + 2 (2.5 s old: well within its 4 s lifetime,
    so the key's rotation is what refuses it)."""
    period = 2
    r = make_rtmd(tls=True, server={"tls_ticket_rotate_s": period})
    ctx = client_ctx()
    connect(ctx, r.port())  # warm: the first key is made
    e = wait_for_phase(period, 1.6, 1.8)
    reused, sess = connect(ctx, r.port())
    assert not reused
    assert int(time.time() // period) == e, "the machine was too slow for the test's timing"
    wait_for_period(period, e + 1, 0.3)
    reused, _ = connect(ctx, r.port(), sess)
    assert reused, "a ticket of the previous period must still resume"
    wait_for_period(period, e + 2, 0.3)
    reused, fresh = connect(ctx, r.port(), sess)
    assert not reused, "a ticket two periods old must not resume"
    reused, _ = connect(ctx, r.port(), fresh)
    assert reused, "the new ticket of the full handshake resumes"
    r.healthy()


def test_ticket_resumes_on_another_node_and_after_a_restart(make_rtmd, store_backend):
    if store_backend != "redis":
        pytest.skip("nodes share ticket keys through the redis backend only")
    a = make_rtmd("a", tls=True)
    # The same certificate on both nodes, as behind one name.
    cert = "%s/tls-cert.pem" % a.data_dir
    key = "%s/tls-key.pem" % a.data_dir
    b = make_rtmd("b", tls=True, server={"tls_cert": cert, "tls_key": key})
    ctx = client_ctx()

    def resumes_on_b():
        # Until both nodes have the shared key of this period (asked of Redis
        # at start), a node issues with its own key.
        _, sess = connect(ctx, a.port())
        reused, _ = connect(ctx, b.port(), sess)
        return reused

    wait_until(resumes_on_b, timeout=10, what="a ticket of node a resuming on node b")
    _, sess = connect(ctx, b.port())
    reused, _ = connect(ctx, a.port(), sess)
    assert reused
    # The keys live in Redis: a restarted node still accepts the tickets.
    assert a.stop() == 0
    a.restart()
    reused, _ = connect(ctx, a.port(), sess)
    assert reused
