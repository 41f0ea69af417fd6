"""HTTP/1.1 at its hostile edges: a client that pipelines without reading its
answers, HEAD, connections over max_connections, and the strictness of
RFC 9112 that http-parser leaves to us (Host, obs-fold, transfer codings,
absolute-form targets). Plain and TLS where the transport matters."""
import json
import re
import select
import socket
import ssl
import time

import pytest

from harness import (APP_NOCERT, Http, assert_error, assert_events_envelope, basic, connect,
                     event_path, wait_until)
from msgutil import is_sanitizer_build, rss_kb


METRICS_AUTH = {"Authorization": basic()}


def req(path, method="GET", headers=None, body=None):
    """One request's bytes; /metrics carries a customer's Basic auth (which
    it needs on the main listeners) unless headers are given."""
    if headers is None and path == "/metrics":
        headers = METRICS_AUTH
    return Http.build(method, path, headers, body)


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return status, headers


def read_head_only(h):
    """The next response of a HEAD request: status line and headers, no body."""
    while b"\r\n\r\n" not in h.buf:
        h._fill()
    head, h.buf = h.buf.split(b"\r\n\r\n", 1)
    return parse_head(head)


def metrics_on(h):
    """The /metrics samples, asked on connection h."""
    st, hd, body = h.request("GET", "/metrics", headers=METRICS_AUTH)
    assert st == 200, (st, body)
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


# ---- 1. a client that pipelines and never reads ------------------------------------------------

class Pipe:
    """A client connection driven by select() from one thread, with TLS over
    memory BIOs, so it can write without reading, then read while it writes
    (an ssl.SSLSocket cannot be read and written by two threads at once)."""

    def __init__(self, port, tls):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tls = None
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.rbio, self.wbio = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = ctx.wrap_bio(self.rbio, self.wbio, server_hostname="localhost")
            self._handshake()
        self.sock.setblocking(False)
        self.out = bytearray()  # bytes for the socket (ciphertext with TLS)
        self.inbuf = bytearray()  # plaintext received

    def _handshake(self):
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.wbio.read())
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("closed during the TLS handshake")
                self.rbio.write(chunk)
        self.sock.sendall(self.wbio.read())

    def close(self):
        self.sock.close()

    def queue(self, data):
        if self.tls:
            self.tls.write(data)
            self.out += self.wbio.read()
        else:
            self.out += data

    def pump(self, read, timeout):
        """One select() round: writes what it can, reads if asked. True if
        anything moved."""
        r = [self.sock] if read else []
        w = [self.sock] if self.out else []
        if not r and not w:
            time.sleep(timeout)  # nothing to wait for on the socket: a poll interval
            return False
        rr, ww, _ = select.select(r, w, [], timeout)
        moved = False
        if ww:
            try:
                n = self.sock.send(self.out[:1 << 18])
            except BlockingIOError:
                n = 0
            del self.out[:n]
            moved = n > 0
        if rr:
            chunk = self.sock.recv(1 << 18)
            if not chunk:
                raise EOFError("the server closed the connection")
            moved = True
            if not self.tls:
                self.inbuf += chunk
            else:
                self.rbio.write(chunk)
                while True:
                    try:
                        self.inbuf += self.tls.read(1 << 18)
                    except ssl.SSLWantReadError:
                        break
        return moved

    def responses(self):
        """The complete responses at the front of what was received, taken off."""
        got, pos, buf = [], 0, self.inbuf
        while True:
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                break
            status, headers = parse_head(bytes(buf[pos:end]))
            n = int(headers.get("content-length", "0"))
            if len(buf) < end + 4 + n:
                break
            got.append((status, headers, bytes(buf[end + 4:end + 4 + n])))
            pos = end + 4 + n
        del buf[:pos]
        return got


PIPELINE_PATHS = ["/metrics", "/healthz", "/metrics", "/nope", "/metrics"]
PIPELINE_N = 36000  # ~60 MB of answers (/metrics is ~2.6 KB)
RSS_BOUND_KB = 40 * 1024
WAIT_LOG = "does not read its answers"


def check_pipelined_answer(i, resp, last_id):
    st, hd, body = resp
    path = PIPELINE_PATHS[i % len(PIPELINE_PATHS)]
    rid = int(hd["x-request-id"].split("_")[1])
    assert rid > last_id, (i, hd, last_id)  # answers in request order
    if path == "/metrics":
        assert st == 200 and hd["content-type"].startswith("text/plain"), (i, st, hd)
        assert body.startswith(b"# HELP rtmd_connections ") and body.endswith(b"\n"), (i, body[:80])
    elif path == "/healthz":
        assert st == 200, (i, st, body)
        assert json.loads(body) == {"request_id": hd["x-request-id"], "result": "success",
                                    "status": "ok"}, (i, body)
    else:
        assert st == 404 and json.loads(body)["code"] == "not_found", (i, st, body)
    return rid


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_pipelined_requests_from_a_client_that_does_not_read_keep_memory_bounded(make_rtmd, tls):
    r = make_rtmd(tls=tls)
    pid = r.proc.pid
    r.healthy()
    rss0 = rss_kb(pid)
    batch = b"".join(req(PIPELINE_PATHS[i % len(PIPELINE_PATHS)]) for i in range(PIPELINE_N))
    c = Pipe(r.port(), tls)
    c.queue(batch)
    sanitized = is_sanitizer_build()  # (ASan keeps freed memory in quarantine)
    try:
        # 1. Upload without reading, until the server said it waits for us and
        # takes no more (the kernel's buffers may hold the whole upload).
        deadline = time.monotonic() + 60
        peak = rss0
        while True:
            assert time.monotonic() < deadline, "the server never stopped for the reader"
            moved = c.pump(False, 0.2)
            peak = max(peak, rss_kb(pid))
            if not sanitized:
                assert peak - rss0 < RSS_BOUND_KB, (rss0, peak)
            if not moved and r.log_has(WAIT_LOG):
                break
        # the server stopped; another client is served meanwhile
        r.healthy()
        with r.http() as other:
            assert_error(other.request("GET", "/nope"), 404)
        peak = max(peak, rss_kb(pid))
        if not sanitized:
            assert peak - rss0 < RSS_BOUND_KB, (rss0, peak)

        # 2. Read everything (while sending the rest): complete, in order.
        got, last_id = 0, 0
        deadline = time.monotonic() + 180
        while got < PIPELINE_N:
            assert time.monotonic() < deadline, "only %d of %d answers" % (got, PIPELINE_N)
            c.pump(True, 1.0)
            for resp in c.responses():
                last_id = check_pipelined_answer(got, resp, last_id)
                got += 1
            if got % 1000 == 0:
                peak = max(peak, rss_kb(pid))
        assert not c.out and not c.inbuf
        # and the connection is still usable
        c.queue(req("/healthz"))
        last = []
        while not last:
            assert time.monotonic() < deadline, "no answer after the pipeline"
            c.pump(True, 1.0)
            last = c.responses()
        assert [x[0] for x in last] == [200]
    finally:
        c.close()
    # said once, for this connection
    assert r.read_log().count(WAIT_LOG) == 1, r.read_log()[-3000:]
    if not sanitized:
        hwm = vm_hwm_kb(pid)
        assert hwm - rss0 < RSS_BOUND_KB, "peak RSS %d KiB, %d KiB at the start" % (hwm, rss0)
    r.healthy()


def test_half_closed_pipelining_client_gets_every_answer(rtmd):
    """EOF arrives while most of the pipelined requests wait their turn (one
    is parsed per loop pass): each is still answered, then the connection
    ends."""
    paths = ["/healthz", "/nope", "/metrics"] * 20
    with rtmd.http() as h:
        h.send(b"".join(req(p) for p in paths))
        h.sock.shutdown(socket.SHUT_WR)
        got = [h.read_response() for _ in paths]
        assert [g[0] for g in got] == [404 if p == "/nope" else 200 for p in paths]
        # only the last answer may say it closes
        assert all("connection" not in g[1] for g in got[:-1])
        assert h.wait_eof(5)
        assert h.buf == b""
    rtmd.healthy()


# ---- 2. HEAD ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_head_then_get_on_one_connection_reads_exactly_two_answers(rtmd, path):
    with rtmd.http() as h:
        h.send(req(path, method="HEAD"))
        st, hd = read_head_only(h)
        assert st == 200, hd
        assert "content-length" not in hd, hd
        want_type = "text/plain" if path == "/metrics" else "application/json"
        assert hd["content-type"].startswith(want_type), hd
        assert re.match(r"^1_[0-9]+$", hd["x-request-id"])
        # nothing follows the head: the next bytes are the GET's answer
        st2, hd2, body2 = h.request("GET", path, headers=METRICS_AUTH)
        assert st2 == 200 and body2, (st2, body2[:100])
        if path == "/healthz":
            assert json.loads(body2)["status"] == "ok"
        else:
            assert body2.startswith(b"# HELP rtmd_connections ")
        assert h.buf == b""
        assert not h.wait_eof(0.2)  # still open


def test_head_and_get_pipelined_in_one_write(rtmd):
    with rtmd.http() as h:
        h.send(req("/healthz", method="HEAD") + req("/healthz") + req("/nope", method="HEAD")
               + req("/healthz"))
        assert read_head_only(h)[0] == 200
        st, hd, body = h.read_response()
        assert st == 200 and json.loads(body)["status"] == "ok"
        st, hd = read_head_only(h)
        assert st == 404 and "content-length" not in hd, hd
        st, hd, body = h.read_response()
        assert st == 200 and json.loads(body)["status"] == "ok"
        assert h.buf == b""


VENDOR_GETS = [
    event_path("user", APP_NOCERT),
    event_path("channel", APP_NOCERT),
    "/dev/v2/project/%s/rtm/message/history/count?source=a&destination=b" % APP_NOCERT,
    "/dev/v2/project/%s/rtm/message/history/query/abc" % APP_NOCERT,
]


@pytest.mark.parametrize("path", VENDOR_GETS)
def test_head_of_a_vendor_route_is_405_without_body_and_consumes_nothing(rtmd, path):
    with rtmd.ws() as ws:
        assert ws.login("head-u", app=APP_NOCERT)["ok"]
        assert ws.call("join", channel="head-c")["ok"]
    with rtmd.http() as h:
        h.send(req(path, method="HEAD", headers={"Authorization": basic()}))
        st, hd = read_head_only(h)
        assert st == 405, hd
        assert hd["allow"] == "GET", hd
        assert "content-length" not in hd, hd
        # the connection goes on: the next answer is read whole
        assert h.request("GET", "/healthz")[0] == 200
        assert h.buf == b""
    # nothing was consumed: the events are all still there
    users = rtmd.pull_until(2, app=APP_NOCERT)
    assert [e["type"] for e in users] == ["Login", "Logout"]
    chans = rtmd.pull_until(2, kind="channel", app=APP_NOCERT)
    assert [e["type"] for e in chans] == ["Join", "Leave"]


@pytest.mark.parametrize("method,path,allow", [
    ("POST", event_path("user"), "GET"),
    ("DELETE", event_path("channel"), "GET"),
    ("GET", "/dev/v2/project/%s/rtm/message/history/query" % APP_NOCERT, "POST"),
    ("GET", "/dev/v2/project/%s/rtm/users/u/peer_messages" % APP_NOCERT, "POST"),
    ("PUT", "/dev/v2/project/%s/rtm/users/u/channel_messages" % APP_NOCERT, "POST"),
    ("POST", "/dev/v2/project/%s/rtm/message/history/count" % APP_NOCERT, "GET"),
    ("POST", "/healthz", "GET, HEAD"),
    ("DELETE", "/metrics", "GET, HEAD"),
    ("POST", "/v1/rtm", "GET"),
    ("HEAD", "/v1/rtm", "GET"),
])
def test_every_405_carries_allow(rtmd, method, path, allow):
    body = "{}" if method in ("POST", "PUT") else None
    with rtmd.http() as h:
        h.send(req(path, method=method, body=body, headers={"Authorization": basic()}))
        if method == "HEAD":
            st, hd = read_head_only(h)
            assert st == 405 and "content-length" not in hd
        else:
            st, hd, b = h.read_response()
            assert_error((st, hd, b), 405, "method_not_allowed")
        assert hd["allow"] == allow, hd
        assert h.request("GET", "/healthz")[0] == 200


# ---- 3. over max_connections ----------------------------------------------------------------------

def busy_answer(h):
    """Reads the 503 of a connection over max_connections, then its EOF."""
    st, hd, body = h.read_response()
    d = assert_error((st, hd, body), 503, "service_unavailable")
    assert hd.get("retry-after") == "1", hd
    assert hd.get("connection") == "close", hd
    assert h.wait_eof(5), "not closed after the 503"
    return d


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_connection_over_max_connections_is_answered_503_then_closed(make_rtmd, tls):
    r = make_rtmd(tls=tls, limits={"max_connections": 2})
    held = [r.http(), r.http()]
    for h in held:
        assert h.request("GET", "/healthz")[0] == 200
    with r.http() as h:
        h.send(req("/healthz"))
        busy_answer(h)
    # a WebSocket client reads the same answer instead of a 101
    with r.http() as h:
        h.send(b"GET /v1/rtm HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        busy_answer(h)
    # a held connection is still served; once one closes, a new one is too
    assert held[0].request("GET", "/healthz")[0] == 200
    held[1].close()

    def served():
        with r.http() as h:
            h.send(req("/metrics"))
            st, hd, body = h.read_response()
            return (st, body) if st == 200 else None
    st, body = wait_until(served, what="a connection served after one closed")
    m = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            m[k] = float(v)
    assert m["rtmd_connections_rejected_total"] >= 2
    assert m["rtmd_connections_rejected_answered_total"] >= 2
    assert "# HELP rtmd_connections_rejected_answered_total " in body.decode()
    held[0].close()


def test_a_flood_over_max_connections_costs_a_fixed_number_of_answers(make_rtmd):
    """32 connections over the limit are answered 503 at a time; the others
    are closed at once. The server serves its own clients throughout."""
    r = make_rtmd(limits={"max_connections": 2})
    held = r.http()
    m0 = metrics_on(held)
    flood = [connect(r.port(), False) for _ in range(100)]

    def all_taken():
        m = metrics_on(held)
        return m["rtmd_connections_accepted_total"] - m0["rtmd_connections_accepted_total"] >= 100
    wait_until(all_taken, what="the flood accepted")
    m = metrics_on(held)
    # the first takes the free slot; of the 99 over the limit, 32 wait for
    # their first bytes to be answered 503, the other 67 are gone
    assert m["rtmd_connections_rejected_total"] - m0["rtmd_connections_rejected_total"] == 99
    assert m["rtmd_connections_rejected_answered_total"] - \
        m0["rtmd_connections_rejected_answered_total"] == 32
    assert m["rtmd_connections"] == 2 + 32
    answered = served = closed = 0
    for s in flood:
        s.settimeout(5)
        try:
            s.sendall(req("/healthz", headers={"Connection": "close"}))
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        s.close()
        if data.startswith(b"HTTP/1.1 503 "):
            answered += 1
        elif data.startswith(b"HTTP/1.1 200 "):
            served += 1
        else:
            assert data == b"", data[:100]
            closed += 1
    assert (served, answered, closed) == (1, 32, 67)
    assert held.request("GET", "/healthz")[0] == 200

    def back_to_normal():
        return metrics_on(held)["rtmd_connections"] == 1
    wait_until(back_to_normal, what="every flood connection closed")
    # the busy slots were given back: the next one over the limit is answered
    with r.http() as a, r.http() as b:
        assert a.request("GET", "/healthz")[0] == 200
        b.send(req("/healthz"))
        busy_answer(b)
    held.close()


def test_silent_connection_over_max_connections_is_closed_after_the_header_timeout(make_rtmd):
    r = make_rtmd(limits={"max_connections": 1, "http_header_timeout_ms": 300})
    with r.http() as held:
        assert held.request("GET", "/healthz")[0] == 200
        with r.http() as h:
            t0 = time.monotonic()
            assert h.wait_eof(5)
            assert time.monotonic() - t0 < 3
            assert h.buf == b""


# ---- 4. RFC 9112 strictness -----------------------------------------------------------------------

def assert_refused(h, status, code):
    d = assert_error(h.read_response(), status, code)
    assert h.wait_eof(5), "the connection was not closed"
    return d


STRICT_400 = {
    "no_host_http11": b"GET /healthz HTTP/1.1\r\n\r\n",
    "no_host_with_other_headers": b"GET /healthz HTTP/1.1\r\nAccept: */*\r\n\r\n",
    "host_twice": b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
    "host_twice_other_case": b"GET /healthz HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n",
    "host_twice_http10": b"GET /healthz HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    "host_with_space": b"GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n",
    "host_with_slash": b"GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n",
    "obs_fold_space": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n",
    "obs_fold_tab": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\t2\r\n\r\n",
    "obs_fold_of_host": b"GET /healthz HTTP/1.1\r\nHost: x\r\n y\r\n\r\n",
    "space_before_first_header": b"GET /healthz HTTP/1.1\r\n Host: x\r\n\r\n",
    "absolute_form_empty_authority": b"GET http:///healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "absolute_form_userinfo": b"GET http://u:p@x/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(STRICT_400))
def test_strict_head_is_400(rtmd, name):
    with rtmd.http() as h:
        h.send(STRICT_400[name])
        assert_refused(h, 400, "bad_request")
    rtmd.healthy()


def test_obs_fold_split_across_writes_is_400(rtmd):
    with rtmd.http() as h:
        h.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n")
        assert not h.wait_eof(0.1)
        h.send(b" 2\r\n\r\n")
        assert_refused(h, 400, "bad_request")


@pytest.mark.parametrize("te", [
    b"gzip, chunked", b"identity", b"chunked, chunked", b"xchunked", b"chunked;q=1", b"gzip",
])
def test_transfer_encoding_other_than_chunked_is_501(rtmd, te):
    with rtmd.http() as h:
        h.send(b"POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te + b"\r\n\r\n0\r\n\r\n")
        assert_refused(h, 501, "not_implemented")
    rtmd.healthy()


def test_two_transfer_encoding_headers_are_501(rtmd):
    with rtmd.http() as h:
        h.send(b"POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assert_refused(h, 501, "not_implemented")


def test_transfer_encoding_chunked_in_any_case_is_read(rtmd):
    with rtmd.http() as h:
        h.send(b"POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
               b"2\r\n{}\r\n0\r\n\r\n")
        assert_error(h.read_response(), 404)
        assert h.request("GET", "/healthz")[0] == 200


def test_http10_without_host_is_served(rtmd):
    with rtmd.http() as h:
        h.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        st, hd, body = h.read_response()
        assert st == 200 and json.loads(body)["status"] == "ok"
        assert h.wait_eof(5)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_absolute_form_target_is_routed_by_its_path(make_rtmd, tls):
    r = make_rtmd(tls=tls)
    with r.ws() as ws:
        assert ws.login("abs-u", app=APP_NOCERT)["ok"]
    port = r.port()
    scheme = "https" if tls else "http"
    target = "%s://127.0.0.1:%d%s" % (scheme, port, event_path("user", APP_NOCERT))
    with r.http() as h:
        # the authority wins over Host (RFC 9112 §3.2.2)
        h.send(("GET %s HTTP/1.1\r\nHost: elsewhere.example\r\nAuthorization: %s\r\n\r\n"
                % (target, basic())).encode())
        events = assert_events_envelope(h.read_response())
        assert [e["type"] for e in events][:1] == ["Login"]
        h.send(b"GET HTTP://localhost/healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        st, hd, body = h.read_response()
        assert st == 200 and json.loads(body)["status"] == "ok"
        # no path at all is "/"
        h.send(b"GET http://localhost HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert_error(h.read_response(), 404, "not_found")
        h.send(b"GET http://localhost/nope?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert_error(h.read_response(), 404, "not_found")
        assert h.request("GET", "/healthz")[0] == 200


def test_parser_errors_are_counted_in_metrics(rtmd):
    def counts():
        m = rtmd.metrics()
        return {s: m['rtmd_http_request_errors_total{status="%d"}' % s]
                for s in (400, 413, 431, 500, 501)}
    before = counts()
    sends = [
        (400, b"GET /healthz HTTP/1.1\r\n\r\n"),
        (400, b"GARBAGE\r\n\r\n"),
        (400, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: 1\r\n 2\r\n\r\n"),
        (413, b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"),
        (431, req("/healthz", headers={"X-Big": "a" * (17 * 1024)})),
        (501, b"POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
        (501, b"POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n"),
    ]
    for status, data in sends:
        with rtmd.http() as h:
            h.send(data)
            assert h.read_response()[0] == status
    after = counts()
    assert {s: after[s] - before[s] for s in after} == {400: 3, 413: 1, 431: 1, 500: 0, 501: 2}
    # routed answers are not counted there
    assert_error(rtmd.get("/nope"), 404)
    assert counts() == after
    st, hd, body = rtmd.get("/metrics", headers=METRICS_AUTH)
    text = body.decode()
    assert "# HELP rtmd_http_request_errors_total " in text
    assert "# TYPE rtmd_http_request_errors_total counter\n" in text
