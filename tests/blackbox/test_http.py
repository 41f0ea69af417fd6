"""HTTP/1.1 of every listener (bounds, the envelope, error bodies):
keep-alive, pipelining, limits (431/413/400), timeouts, 404/405, request IDs.

Every bad request is followed by a check that the server still answers
/healthz."""
import json
import socket
import time

import pytest

from harness import (APP, APP_NOCERT, REQUEST_ID_RE, Http, assert_error, assert_events_envelope,
                     basic, compact, event_path, loads_ordered, wait_until)

FAST = {"http_header_timeout_ms": 300, "http_idle_timeout_s": 1}


def req(path, method="GET", headers=None, body=None):
    return Http.build(method, path, headers, body)


def assert_closed(h, timeout=5.0):
    assert h.wait_eof(timeout), "the server did not close the connection"


# ---- keep-alive and pipelining ------------------------------------------------------

def test_keep_alive_serves_many_requests_on_one_connection(rtmd):
    ids = []
    with rtmd.http() as h:
        for i in range(5):
            st, hd, body = h.request("GET", "/healthz")
            assert st == 200, body
            assert "connection" not in hd or hd["connection"].lower() != "close", hd
            ids.append(hd["x-request-id"])
            st, hd, body = h.request("GET", event_path("user"), headers={"Authorization": basic()})
            assert assert_events_envelope((st, hd, body)) == []
            ids.append(hd["x-request-id"])
            assert_error(h.request("GET", "/nope"), 404)
        # still open: nothing closed it
        assert not h.wait_eof(0.2)
    assert len(set(ids)) == len(ids)


def test_connection_close_and_http10_close_after_answer(rtmd):
    with rtmd.http() as h:
        st, hd, body = h.request("GET", "/healthz", headers={"Connection": "close"})
        assert st == 200
        assert hd.get("connection", "").lower() == "close"
        assert_closed(h)
    with rtmd.http() as h:
        h.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        st, hd, body = h.read_response()
        assert st == 200
        assert_closed(h)
    rtmd.healthy()


def test_half_closed_client_still_gets_its_answer(rtmd):
    with rtmd.http() as h:
        h.send(req("/healthz"))
        h.sock.shutdown(socket.SHUT_WR)
        st, hd, body = h.read_response()
        assert st == 200
        assert_closed(h)
    rtmd.healthy()


def test_pipelined_requests_are_answered_in_order(rtmd):
    with rtmd.ws() as ws:
        assert ws.login("pipe", app=APP_NOCERT)["ok"]
    auth = {"Authorization": basic()}
    batch = (req(event_path("user", APP_NOCERT), headers=auth)   # answered by the store
             + req("/healthz")
             + req("/nope")
             + req("/healthz", method="POST", body="{}")
             + req(event_path("channel", APP_NOCERT), headers=auth)
             + req(event_path("user", APP_NOCERT), headers=auth)
             + req("/dev/v2/project/%s/rtm/vendor/user_events" % APP))   # no auth: 401
    with rtmd.http() as h:
        h.send(batch)
        r = [h.read_response() for _ in range(7)]
        got = [x[0] for x in r]
        assert got == [200, 200, 404, 405, 200, 200, 401], got
        users = assert_events_envelope(r[0])
        # the session ended when the WebSocket closed; it may or may not be in yet
        assert [e["type"] for e in users][:1] == ["Login"]
        assert json.loads(r[1][2])["status"] == "ok"
        assert assert_events_envelope(r[4]) == []
        ids = [x[1]["x-request-id"] for x in r]
        assert len(set(ids)) == 7
        # the connection is still usable afterwards
        st, _, _ = h.request("GET", "/healthz")
        assert st == 200


def test_many_pipelined_requests_in_one_write(rtmd):
    n = 60
    paths = ["/healthz" if i % 3 else "/missing-%d" % i for i in range(n)]
    with rtmd.http() as h:
        h.send(b"".join(req(p) for p in paths))
        for i, p in enumerate(paths):
            st, hd, body = h.read_response()
            assert st == (200 if i % 3 else 404), (i, st)
    rtmd.healthy()


# ---- request IDs and bodies ---------------------------------------------------------

def test_request_id_is_node_underscore_u64_and_unique(rtmd):
    seen = set()
    with rtmd.http() as h:
        for _ in range(20):
            st, hd, body = h.request("GET", "/healthz")
            assert st == 200
            rid = hd["x-request-id"]
            m = REQUEST_ID_RE.match(rid)
            assert m, rid
            assert m.group(1) == "1"  # node_id default
            assert int(m.group(2)) < 2 ** 64
            pairs = loads_ordered(body)
            assert pairs == [("request_id", rid), ("result", "success"), ("status", "ok")], body
            assert body == compact(dict(pairs)).encode()
            seen.add(rid)
    assert len(seen) == 20


def test_request_id_carries_the_configured_node_id(make_rtmd):
    r = make_rtmd(server={"node_id": 4242})
    st, hd, body = r.get("/healthz")
    assert hd["x-request-id"].startswith("4242_")
    d = assert_error(r.get("/nope"), 404)
    assert d["request_id"].startswith("4242_")


def test_healthz_and_metrics_content_types(rtmd):
    st, hd, body = rtmd.get("/healthz")
    assert st == 200 and hd["content-type"] == "application/json;charset=utf-8"
    st, hd, body = rtmd.get("/metrics", headers={"Authorization": basic()})
    assert st == 200 and hd["content-type"].startswith("text/plain")
    assert b"rtmd_http_responses_total" in body


def test_metrics_count_connections_sessions_events_and_commits(rtmd):
    """The gauges follow what is open; the counters move with the work done."""
    before = rtmd.metrics()
    with rtmd.ws() as a, rtmd.ws() as b:
        assert a.login("m-alice", app=APP_NOCERT)["ok"] and b.login("m-bob", app=APP_NOCERT)["ok"]
        m = rtmd.metrics()
        # the two WebSockets and the connection that asks
        assert m["rtmd_connections"] == before["rtmd_connections"] + 2
        assert m["rtmd_connections_accepted_total"] >= before["rtmd_connections_accepted_total"] + 3
        assert m["rtmd_sessions"] == before["rtmd_sessions"] + 2
        assert m['rtmd_events_recorded_total{log="user"}'] == \
            before['rtmd_events_recorded_total{log="user"}'] + 2
        assert m["rtmd_store_commits_total"] > before["rtmd_store_commits_total"]
    users = 'rtmd_events_recorded_total{log="user"}'
    # the Logouts are counted once durable, a moment after the sockets close
    def settled():
        m = rtmd.metrics()
        return m[users] >= before[users] + 4 and m["rtmd_connections"] == before["rtmd_connections"]
    wait_until(settled, what="two Logouts recorded and both connections closed")
    m = rtmd.metrics()
    assert m[users] == before[users] + 4
    assert m["rtmd_sessions"] == before["rtmd_sessions"]
    assert m['rtmd_http_responses_total{code="200"}'] > before['rtmd_http_responses_total{code="200"}']


# ---- 404 / 405 --------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/",
    "/nope",
    "/healthz/",
    "/dev/v2/project/%s" % APP,
    "/dev/v2/project/%s/" % APP,
    "/dev/v2/project/%s/rtm/vendor/nope" % APP,
    "/dev/v2/project/%s/rtm/vendor/user_events/extra" % APP,
    "/dev/v2/project/%s/rtm/vendor/User_events" % APP,  # paths are case-sensitive
    "/DEV/v2/project/%s/rtm/vendor/user_events" % APP,
    "/v1/rtm/x",
])
def test_unknown_path_is_404(rtmd, path):
    d = assert_error(rtmd.get(path, headers={"Authorization": basic()}), 404)
    assert d["code"] == "not_found"
    rtmd.healthy()


@pytest.mark.parametrize("method,path", [
    ("POST", event_path("user")),
    ("PUT", event_path("channel")),
    ("DELETE", event_path("user")),
    ("POST", "/healthz"),
    ("DELETE", "/metrics"),
    ("POST", "/v1/rtm"),
])
def test_wrong_method_is_405(rtmd, method, path):
    body = "{}" if method in ("POST", "PUT") else None
    d = assert_error(rtmd.get(path, method=method, body=body, headers={"Authorization": basic()}), 405)
    assert d["code"] == "method_not_allowed"
    rtmd.healthy()


def test_websocket_path_without_upgrade_is_an_error_with_request_id(rtmd):
    # A plain GET of the WebSocket endpoint is refused with the standard
    # error body (every error body carries request_id).
    assert_error(rtmd.get("/v1/rtm"), 426)
    rtmd.healthy()


def test_websocket_bad_version_is_400_with_request_id(rtmd):
    headers = {"Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "8"}
    assert_error(rtmd.get("/v1/rtm", headers=headers), 400)
    rtmd.healthy()


def test_websocket_bad_key_is_400(rtmd):
    headers = {"Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Key": "short", "Sec-WebSocket-Version": "13"}
    assert_error(rtmd.get("/v1/rtm", headers=headers), 400)
    rtmd.healthy()


# ---- head limits: 431 --------------------------------------------------------------------

def big_header_request(size):
    return req("/healthz", headers={"X-Big": "a" * size})


@pytest.mark.parametrize("size", [17 * 1024, 200 * 1024])
def test_request_head_over_16k_is_431(rtmd, size):
    with rtmd.http() as h:
        h.send(big_header_request(size))
        assert_error(h.read_response(), 431)
        assert_closed(h)
    rtmd.healthy()


def test_long_request_line_is_431(rtmd):
    with rtmd.http() as h:
        h.send(req("/healthz?" + "q" * (20 * 1024)))
        assert_error(h.read_response(), 431)
        assert_closed(h)
    rtmd.healthy()


def test_request_head_under_16k_is_served(rtmd):
    with rtmd.http() as h:
        st, hd, body = h.request("GET", "/healthz", headers={"X-Big": "a" * (15 * 1024)})
        assert st == 200
        # and the connection stays usable
        assert h.request("GET", "/healthz")[0] == 200


def headers_request(n_total):
    """A request with exactly n_total header lines (Host included)."""
    h = {"X-H%03d" % i: "v" for i in range(n_total - 1)}
    return req("/healthz", headers=h)


def test_100_headers_are_served_101_are_431(rtmd):
    with rtmd.http() as h:
        h.send(headers_request(100))
        st, hd, body = h.read_response()
        assert st == 200, body
    with rtmd.http() as h:
        h.send(headers_request(101))
        assert_error(h.read_response(), 431)
        assert_closed(h)
    rtmd.healthy()


def test_head_limits_follow_the_config(make_rtmd):
    r = make_rtmd(limits={"http_max_head": 2048, "http_max_headers": 10})
    with r.http() as h:
        assert h.request("GET", "/healthz", headers={"X-A": "a" * 1500})[0] == 200
    with r.http() as h:
        h.send(big_header_request(2100))
        assert_error(h.read_response(), 431)
    with r.http() as h:
        h.send(headers_request(10))
        assert h.read_response()[0] == 200
    with r.http() as h:
        h.send(headers_request(11))
        assert_error(h.read_response(), 431)
    r.healthy()


# ---- body limits: 413 --------------------------------------------------------------------

def test_content_length_over_1mib_is_413_without_reading_the_body(rtmd):
    with rtmd.http() as h:
        h.send(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 1048577\r\n\r\n")
        assert_error(h.read_response(), 413)
        assert_closed(h)
    rtmd.healthy()


def test_content_length_exactly_1mib_is_read(rtmd):
    body = b"x" * (1024 * 1024)
    with rtmd.http() as h:
        h.send(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert_error(h.read_response(), 404)
        assert h.request("GET", "/healthz")[0] == 200


def test_huge_content_length_is_413(rtmd):
    with rtmd.http() as h:
        h.send(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n")
        assert_error(h.read_response(), 413)
    rtmd.healthy()


def chunked(body, size=64 * 1024):
    out = b""
    for i in range(0, len(body), size):
        c = body[i:i + size]
        out += b"%x\r\n" % len(c) + c + b"\r\n"
    return out + b"0\r\n\r\n"


def test_chunked_body_over_1mib_is_413(rtmd):
    body = b"y" * (1024 * 1024 + 1)
    with rtmd.http() as h:
        h.send(b"POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            h.send(chunked(body))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading once it answered
        assert_error(h.read_response(), 413)
        assert_closed(h)
    rtmd.healthy()


def test_chunked_body_under_1mib_is_read(rtmd):
    body = b"y" * (512 * 1024)
    with rtmd.http() as h:
        h.send(b"POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body))
        assert_error(h.read_response(), 404)
        assert h.request("GET", "/healthz")[0] == 200


# ---- malformed input: 400 ------------------------------------------------------------------

BAD_REQUESTS = {
    "garbage_line": b"GARBAGE\r\n\r\n",
    "no_version": b"GET /healthz\r\n\r\n",
    "bad_method": b"FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "lowercase_method": b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_version": b"GET /healthz HTTX/1.1\r\nHost: x\r\n\r\n",
    "binary": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(256)) + b"\r\n\r\n",
    "nul_bytes": b"\x00" * 64 + b"\r\n\r\n",
    "header_without_colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    "space_in_header_name": b"GET /healthz HTTP/1.1\r\nHo st: x\r\n\r\n",
    "bad_content_length": b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "two_content_lengths": b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "bad_chunk_size": b"POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_malformed_request_is_400_and_closed(rtmd, name):
    with rtmd.http() as h:
        h.send(BAD_REQUESTS[name])
        d = assert_error(h.read_response(), 400)
        assert d["code"] == "bad_request"
        assert_closed(h)
    rtmd.healthy()


def test_bad_request_after_a_good_one_on_the_same_connection(rtmd):
    with rtmd.http() as h:
        h.send(req("/healthz") + b"FOO / HTTP/1.1\r\n\r\n")
        assert h.read_response()[0] == 200
        assert_error(h.read_response(), 400)
        assert_closed(h)
    rtmd.healthy()


# ---- timeouts -------------------------------------------------------------------------------

def timed_eof(h, timeout=5.0):
    t0 = time.monotonic()
    assert h.wait_eof(timeout), "not closed within %ss" % timeout
    return time.monotonic() - t0


def test_silent_client_is_closed_after_the_header_timeout(make_rtmd):
    r = make_rtmd(limits=FAST)
    with r.http() as h:
        assert h.wait_eof(0.15) is False  # not at once
        took = timed_eof(h, 5)
        assert took < 2.0, took
    r.healthy()


def test_partial_head_is_closed_after_the_header_timeout(make_rtmd):
    r = make_rtmd(limits=FAST)
    with r.http() as h:
        h.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        took = timed_eof(h, 5)
        assert 0.15 < took < 2.0, took
    r.healthy()


def test_trickled_head_is_closed_after_the_header_timeout(make_rtmd):
    """A slowloris client sends a byte every 50 ms: the head timeout covers
    the whole head, so it is closed although it never stays silent long."""
    r = make_rtmd(limits=FAST)
    data = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
    with r.http() as h:
        t0 = time.monotonic()
        closed = False
        for b in data:
            try:
                h.send(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if h.wait_eof(0.05):
                closed = True
                break
        took = time.monotonic() - t0
        assert closed, "a trickling client was never closed"
        assert took < 2.0, took
    r.healthy()


def test_idle_keep_alive_connection_is_closed_after_the_idle_timeout(make_rtmd):
    r = make_rtmd(limits=FAST)
    with r.http() as h:
        assert h.request("GET", "/healthz")[0] == 200
        # well past the 300 ms head timeout, the idle connection is still open
        assert h.wait_eof(0.6) is False
        assert h.request("GET", "/healthz")[0] == 200
        took = timed_eof(h, 5)
        assert 0.7 < took < 3.0, took
    r.healthy()


def test_default_timeouts_do_not_close_a_prompt_client(rtmd):
    with rtmd.http() as h:
        h.send(b"GET /healthz HTTP/1.1\r\n")
        assert h.wait_eof(0.4) is False
        h.send(b"Host: x\r\n\r\n")
        assert h.read_response()[0] == 200
