"""TLS after the handshake, through rtmd's own BIO (OpenSSL reads the loop's
read buffer and writes into one staging buffer shared by all connections;
see docs/ARCHITECTURE.md), with real TLS clients (Python's ssl, openssl
s_client): large messages both ways split across records and reads, records
dribbled a byte at a time, KeyUpdate in both directions, close_notify, a
tampered record, session resumption, many records in a row, and TLS 1.2."""
import json
import socket
import ssl
import subprocess
import threading
import time

from harness import APP_NOCERT, Ws, wait_until
from msgutil import online, push


def client_ctx(max_version=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def healthz(sock):
    """One keep-alive GET /healthz over sock; returns the whole response."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "closed before the response"
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return head + b"\r\n\r\n" + body


class MemTls:
    """A TLS client over memory BIOs on a raw socket: the test decides which
    record bytes go out, and when. The handshake is done, except that the
    client's Finished is still in self.out unless send_finished."""

    def __init__(self, port, send_finished=True):
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = client_ctx().wrap_bio(self.inc, self.out, server_hostname="localhost")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.raw.sendall(self.out.read())
                self._fill()
        if send_finished:
            self.raw.sendall(self.out.read())

    def _fill(self):
        data = self.raw.recv(65536)
        assert data, "closed by rtmd"
        self.inc.write(data)

    def request(self, data, dribble=False):
        """Writes data as records; sends them whole, or a byte per segment."""
        self.tls.write(data)
        records = self.out.read()
        if not dribble:
            self.raw.sendall(records)
            return
        for i in range(len(records)):
            self.raw.send(records[i:i + 1])

    def answers(self, n):
        """Reads until n whole /healthz answers (JSON bodies end with '}')."""
        buf = b""
        deadline = time.monotonic() + 10
        while buf.count(b"HTTP/1.1 200") < n or not buf.endswith(b"}"):
            assert time.monotonic() < deadline, "answers: %d" % buf.count(b"HTTP/1.1 200")
            try:
                buf += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._fill()
        assert buf.count(b"HTTP/1.1 200") == n, buf
        return buf


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def test_large_messages_both_ways_split_across_records(make_rtmd):
    r = make_rtmd(tls=True)
    alice, bob = online(r, "alice"), online(r, "bob")
    assert alice.sock.version() == "TLSv1.3"
    big = "".join(chr(0x41 + i % 26) for i in range(32000))  # 2 records each way
    for i in range(3):
        assert alice.call("peer", to="bob", payload=big)["ok"]
        m = push(bob)
        assert m["op"] == "peer_message" and m["payload"] == big
    # One frame in one write: OpenSSL's client cuts it into 16 KiB records,
    # which reach rtmd split across reads.
    frame = Ws.frame(json.dumps({"op": "peer", "id": 90, "to": "alice", "payload": big}))
    bob.send_raw(frame)
    assert bob.reply(90)["ok"]
    assert push(alice)["payload"] == big
    r.healthy()


def test_records_dribbled_a_byte_at_a_time(make_rtmd):
    """Every record arrives in 1-byte TCP segments (a record header and its
    body in many reads)."""
    r = make_rtmd(tls=True)
    c = MemTls(r.port())
    c.request(HEALTHZ)
    c.answers(1)
    for _ in range(3):  # now on rtmd's record layer
        c.request(b"GET /healthz HTTP/1.1\r\nHost: y\r\nX-Pad: " + b"p" * 3000 + b"\r\n\r\n",
                  dribble=True)
        c.answers(1)
    c.raw.close()
    r.healthy()


def test_tampered_record_closes_the_connection(make_rtmd):
    r = make_rtmd(tls=True)
    c = MemTls(r.port())
    c.request(HEALTHZ)
    c.answers(1)
    c.tls.write(HEALTHZ)
    rec = bytearray(c.out.read())
    rec[10] ^= 0x40  # inside the ciphertext: authentication fails
    raw = c.raw
    raw.sendall(bytes(rec))
    raw.settimeout(10)
    try:
        while raw.recv(65536):
            pass
    except ConnectionResetError:
        pass
    raw.close()
    r.healthy()


def test_close_notify_both_ways(make_rtmd):
    r = make_rtmd(tls=True)
    s = client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", r.port()), timeout=10),
                                 server_hostname="localhost")
    for _ in range(3):
        healthz(s)
    # Our close_notify; rtmd answers with its own (unwrap waits for it).
    plain = s.unwrap()
    plain.close()
    # rtmd closes first (Connection: close): its close_notify, then EOF.
    s = client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", r.port()), timeout=10),
                                 server_hostname="localhost")
    healthz(s)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    buf = b""
    while True:
        chunk = s.recv(65536)  # a clean close_notify reads as b"", not SSLEOFError
        if not chunk:
            break
        buf += chunk
    assert buf.startswith(b"HTTP/1.1 200")
    s.close()
    r.healthy()


def s_client(port, extra=()):
    p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_3",
                          "-crlf", "-no_ign_eof"] + list(extra),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = []
    lock = threading.Lock()

    def reader():
        while True:
            chunk = p.stdout.read1(65536)
            if not chunk:
                return
            with lock:
                out.append(chunk)

    threading.Thread(target=reader, daemon=True).start()

    def text():
        with lock:
            return b"".join(out)

    return p, text


def test_key_update_both_ways_with_openssl_s_client(make_rtmd):
    """s_client's 'k' sends a KeyUpdate, 'K' one that asks for rtmd's: the
    requests after each are answered under the new keys."""
    r = make_rtmd(tls=True)
    p, text = s_client(r.port())
    try:
        req = b"GET /healthz HTTP/1.1\nHost: x\n\n"
        updates = 0
        for n, cmd in enumerate([None, b"k\n", b"K\n", b"K\n", b"k\n"], start=1):
            if cmd:
                # A command must come alone in s_client's read of stdin.
                p.stdin.write(cmd)
                p.stdin.flush()
                updates += 1
                wait_until(lambda: text().count(b"KEYUPDATE") >= updates, timeout=10,
                           what="s_client's KeyUpdate")
            p.stdin.write(req)
            p.stdin.flush()
            wait_until(lambda: text().count(b"HTTP/1.1 200") >= n, timeout=10,
                       what="answer %d" % n)
    finally:
        p.stdin.close()
        p.wait(10)
    r.healthy()


def test_resumed_session(make_rtmd):
    r = make_rtmd(tls=True)
    ctx = client_ctx()
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", r.port()), timeout=10),
                        server_hostname="localhost")
    healthz(s)  # reads the session tickets too
    session = s.session
    s.close()
    s2 = ctx.wrap_socket(socket.create_connection(("127.0.0.1", r.port()), timeout=10),
                         server_hostname="localhost", session=session)
    assert s2.session_reused
    for _ in range(3):
        healthz(s2)
    s2.close()
    r.healthy()


def test_tls12_connections_keep_working(make_rtmd):
    r = make_rtmd(tls=True)
    s = client_ctx(ssl.TLSVersion.TLSv1_2).wrap_socket(
        socket.create_connection(("127.0.0.1", r.port()), timeout=10), server_hostname="localhost")
    assert s.version() == "TLSv1.2"
    for _ in range(3):
        healthz(s)
    s.close()
    r.healthy()


def test_many_connections_hand_off_and_close(make_rtmd):
    """Connections handed off in a burst, then all closed at once: the
    malloc_trim timer and the closes leave rtmd healthy."""
    r = make_rtmd(tls=True)
    socks = []
    for i in range(50):
        s = client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", r.port()), timeout=10),
                                     server_hostname="localhost")
        healthz(s)
        socks.append(s)
    for s in socks:
        healthz(s)
    for s in socks:
        s.close()
    t0 = time.monotonic()
    ws = online(r, "after", app=APP_NOCERT)
    assert ws.call("ping")["ok"]
    assert time.monotonic() - t0 < 10
    r.healthy()


def test_finished_and_many_requests_in_one_write(make_rtmd):
    """The client's Finished and 100 pipelined requests in one write: the
    tickets and the 100 answers (each a record) all come back through the
    staging buffer, and the requests after them are answered too."""
    r = make_rtmd(tls=True)
    c = MemTls(r.port(), send_finished=False)
    c.request(HEALTHZ * 100)  # Finished + the requests
    c.answers(100)
    for _ in range(3):
        c.request(HEALTHZ)
        c.answers(1)
    c.raw.close()
    r.healthy()
