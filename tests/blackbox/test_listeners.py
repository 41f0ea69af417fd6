"""Listeners and what a web page or an operator may reach (issue 9, item 3):
per-listener TLS (`listen = ADDR:PORT@REGION/tls|/plain`), the admin
listener (`admin_listen`: /metrics, /healthz, /readyz without credentials),
/metrics behind a customer's Basic auth on the main listeners, the WebSocket
Origin check (`allowed_origins`) and CORS on the REST API (`cors_origins`).
"""
import json
import os
import socket
import ssl

import pytest

from harness import (APP, APP_NOCERT, CUSTOMER_OTHER, SECRET_OTHER, Http, Ws, assert_error, basic,
                     event_path, wait_until)

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgrade(h, origin=None):
    """Sends a WebSocket upgrade (with Origin when given); returns the status
    and headers of the answer."""
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": WS_KEY,
               "Sec-WebSocket-Version": "13"}
    if origin is not None:
        headers["Origin"] = origin
    h.send(Http.build("GET", "/v1/rtm", headers))
    while b"\r\n\r\n" not in h.buf:
        h._fill()
    head = h.buf.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    if status != 101:
        return h.read_response()[:2]
    return status, {}


def metrics_text(body):
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


# ---- per-listener TLS --------------------------------------------------------------------------

@pytest.mark.parametrize("default_tls", [False, True], ids=["tls-off", "tls-on"])
def test_one_process_serves_a_tls_and_a_plain_listener(make_rtmd, default_tls):
    """`tls` is the default; /tls and /plain override it per listener. Both
    listeners serve REST and WebSocket, each in its own protocol, from one
    store."""
    suffix = "plain" if default_tls else "tls"
    r = make_rtmd(tls=default_tls, regions=("default",),
                  server={"listen": "127.0.0.1:0@eu/%s" % suffix})
    assert r.tls_of == {"default": default_tls, "eu": not default_tls}
    log = r.read_log()
    assert "region default, %s)" % ("TLS" if default_tls else "plain") in log, log
    assert "region eu, %s)" % ("plain" if default_tls else "TLS") in log, log
    for region in ("default", "eu"):
        r.healthy(region)
        with r.ws(region) as ws:
            assert ws.login("u-" + region, app=APP_NOCERT)["ok"]
    # a session on one listener is seen by the REST API on the other
    got = r.pull_until(4, app=APP_NOCERT, region="default")
    assert sorted((e["type"], e["user_id"]) for e in got) == [
        ("Login", "u-default"), ("Login", "u-eu"), ("Logout", "u-default"), ("Logout", "u-eu")]
    # each listener speaks only its own protocol
    tls_region = "default" if default_tls else "eu"
    plain_region = "eu" if default_tls else "default"
    with pytest.raises((OSError, ssl.SSLError)):
        Http(r.port(plain_region), tls=True).request("GET", "/healthz")
    s = socket.create_connection(("127.0.0.1", r.port(tls_region)), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    assert not data.startswith(b"HTTP/1.1 200"), data


def test_plain_listeners_only_need_no_certificate(make_rtmd):
    """With every listener /plain, tls = on loads (and makes) no certificate."""
    r = make_rtmd(tls=True, regions=(), server={"listen": "127.0.0.1:0@eu/plain"})
    assert r.tls_of == {"eu": False}
    r.healthy("eu")
    assert not os.path.exists(os.path.join(r.data_dir, "tls-cert.pem"))
    assert "self-signed" not in r.read_log()


# ---- the admin listener and /metrics -------------------------------------------------------------

def test_admin_listener_serves_metrics_healthz_readyz_without_credentials(make_rtmd):
    r = make_rtmd(server={"admin_listen": "127.0.0.1:0"})
    assert r.admin_port and r.admin_port not in r.ports.values()
    assert "admin endpoints (/metrics, /healthz, /readyz) on 127.0.0.1:%d" % r.admin_port \
        in r.read_log()
    with r.admin() as h:
        st, hd, body = h.request("GET", "/metrics")
        assert st == 200 and hd["content-type"].startswith("text/plain"), (st, body)
        assert "rtmd_connections" in metrics_text(body)
        st, hd, body = h.request("GET", "/healthz")
        assert st == 200 and json.loads(body)["status"] == "ok"
        st, hd, body = h.request("GET", "/readyz")
        assert st == 200 and json.loads(body)["status"] == "ready"
        st, hd, body = h.request("HEAD", "/readyz")
        assert st == 200 and body == b"", (st, body)
        # nothing else is served there: no REST API, no WebSocket
        for path in (event_path("user", APP_NOCERT), "/v1/rtm", "/", "/metrics/"):
            d = assert_error(h.request("GET", path, headers={"Authorization": basic()}), 404)
            assert "admin listener" in d["message"], d
        d = assert_error(h.request("POST", "/metrics", body="{}"), 405)
        assert d["code"] == "method_not_allowed"
    # the admin listener is plain HTTP even when the main ones serve TLS
    t = make_rtmd(name="t", tls=True, server={"admin_listen": "127.0.0.1:0"})
    with t.admin() as h:
        assert h.request("GET", "/metrics")[0] == 200
    t.healthy()


def test_metrics_on_the_main_listeners_needs_a_customers_basic_auth(make_rtmd):
    r = make_rtmd()
    assert_error(r.get("/metrics"), 401, "unauthorized")
    st, hd, body = r.get("/metrics")
    assert "www-authenticate" not in hd, hd  # a browser would prompt, then send it anywhere
    assert_error(r.get("/metrics", headers={"Authorization": basic(secret="wrong-secret")}),
                 401, "unauthorized")
    assert_error(r.get("/metrics", headers={"Authorization": basic(customer="nobody")}),
                 401, "unauthorized")
    # a token is not a customer's credential
    assert_error(r.get("/metrics", headers={"Authorization": "agora token=007abc"}),
                 401, "unauthorized")
    # any customer, whatever apps it has
    for auth in (basic(), basic(CUSTOMER_OTHER, SECRET_OTHER)):
        st, hd, body = r.get("/metrics", headers={"Authorization": auth})
        assert st == 200 and hd["content-type"].startswith("text/plain"), (st, body)
        assert "rtmd_sessions" in metrics_text(body)
    # /healthz and /readyz stay open for load balancers
    assert r.get("/healthz")[0] == 200
    st, hd, body = r.get("/readyz")
    assert st == 200 and json.loads(body)["status"] == "ready", body
    # the refusals are counted
    m = r.metrics()
    assert m['rtmd_http_responses_total{code="401"}'] >= 4


def test_the_admin_listener_answers_when_max_connections_is_reached(make_rtmd):
    """Its connections do not count against max_connections: a full node can
    still be watched."""
    r = make_rtmd(server={"admin_listen": "127.0.0.1:0"}, limits={"max_connections": 2})
    held = [r.ws(), r.ws()]
    for i, ws in enumerate(held):
        assert ws.login("full-%d" % i, app=APP_NOCERT)["ok"]
    st, hd, body = r.get("/healthz")
    assert st == 503, (st, body)  # the main listener is full
    with r.admin() as h:
        st, hd, body = h.request("GET", "/metrics")
        assert st == 200, (st, body)
        assert metrics_text(body)["rtmd_sessions"] == 2
    for ws in held:
        ws.close()


def test_readyz_is_503_while_the_store_cannot_write(make_rtmd, redis_server):
    r = make_rtmd(store={"backend": "redis", "redis_url": redis_server.url,
                         "redis_timeout_ms": 300},
                  server={"admin_listen": "127.0.0.1:0"})

    def readyz():
        with r.admin() as h:
            return h.request("GET", "/readyz")

    assert readyz()[0] == 200
    redis_server.kill9()
    wait_until(lambda: readyz()[0] == 503, 10, what="readyz 503 with Redis gone")
    d = assert_error(readyz(), 503, "unavailable")
    assert "Redis" in d["message"] or "store" in d["message"], d
    assert r.get("/readyz")[0] == 503  # the main listeners say the same
    redis_server.start()
    wait_until(lambda: readyz()[0] == 200, 15, what="readyz 200 once Redis is back")


# ---- WebSocket Origin ------------------------------------------------------------------------

def test_websocket_origin_check(make_rtmd):
    r = make_rtmd(server={"allowed_origins": "https://app.example.com, http://localhost:3000"})
    for origin, want in ((None, 101),  # not a browser
                         ("https://app.example.com", 101),
                         ("HTTPS://App.Example.COM", 101),  # hosts are case-insensitive
                         ("http://localhost:3000", 101),
                         ("https://evil.example", 403),
                         ("https://app.example.com:8443", 403),
                         ("http://app.example.com", 403),
                         ("null", 403)):
        with r.http() as h:
            st, hd = upgrade(h, origin)
            assert st == want, (origin, st, hd)
    with r.http() as h:
        h.send(Http.build("GET", "/v1/rtm", {
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": WS_KEY,
            "Sec-WebSocket-Version": "13", "Origin": "https://evil.example"}))
        d = assert_error(h.read_response(), 403, "origin_not_allowed")
        assert "allowed_origins" in d["message"], d
    wait_until(lambda: r.log_has('Origin "https://evil.example" is not in allowed_origins'),
               5, what="the refusal logged")
    # an allowed page's session works
    with Ws(r.port(), handshake=False) as ws:
        ws.sock.sendall(Http.build("GET", "/v1/rtm", {
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": WS_KEY,
            "Sec-WebSocket-Version": "13", "Origin": "http://localhost:3000"}))
        while b"\r\n\r\n" not in ws.buf:
            ws._fill()
        assert ws.buf.startswith(b"HTTP/1.1 101 "), ws.buf
        ws.buf = ws.buf.split(b"\r\n\r\n", 1)[1]
        assert ws.login("page-user", app=APP_NOCERT)["ok"]


def test_any_origin_by_default(make_rtmd):
    r = make_rtmd()
    with r.http() as h:
        assert upgrade(h, "https://anywhere.example")[0] == 101


# ---- CORS --------------------------------------------------------------------------------------

PAGE = "https://app.example.com"


def preflight(r, origin, path=None, method="GET"):
    headers = {"Access-Control-Request-Method": method,
               "Access-Control-Request-Headers": "authorization"}
    if origin:
        headers["Origin"] = origin
    return r.get(path or event_path("user", APP_NOCERT), method="OPTIONS", headers=headers)


def test_cors_preflight_from_a_listed_origin(make_rtmd):
    r = make_rtmd(server={"cors_origins": "%s, http://localhost:3000" % PAGE})
    st, hd, body = preflight(r, PAGE)
    assert st == 204 and body == b"", (st, hd, body)
    assert hd["access-control-allow-origin"] == PAGE
    assert hd["access-control-allow-methods"] == "GET"
    assert hd["access-control-allow-headers"] == \
        "Authorization, Content-Type, x-agora-token, x-agora-uid"
    assert int(hd["access-control-max-age"]) > 0
    assert hd["vary"] == "Origin"
    assert "content-length" not in hd and "content-type" not in hd, hd
    assert "access-control-allow-credentials" not in hd
    # the send endpoints are POST
    st, hd, body = preflight(r, "http://localhost:3000",
                             "/dev/v2/project/%s/rtm/users/u/peer_messages" % APP_NOCERT, "POST")
    assert st == 204 and hd["access-control-allow-methods"] == "POST", hd
    assert hd["access-control-allow-origin"] == "http://localhost:3000"
    # a preflight of an unknown path is 404
    assert preflight(r, PAGE, "/dev/v2/project/%s/rtm/nope" % APP_NOCERT)[0] == 404


def test_cors_headers_on_real_requests(make_rtmd):
    r = make_rtmd(server={"cors_origins": PAGE})
    st, hd, body = r.events_raw("user", app=APP_NOCERT,
                                headers={"Authorization": basic(), "Origin": PAGE})
    assert st == 200, body
    assert hd["access-control-allow-origin"] == PAGE
    assert hd["access-control-expose-headers"] == "X-Request-ID"
    assert hd["vary"] == "Origin"
    # errors carry them too, so the page can read why
    st, hd, body = r.events_raw("user", app=APP_NOCERT, headers={"Origin": PAGE})
    assert st == 401 and hd["access-control-allow-origin"] == PAGE, (st, hd)
    # another origin: answered, without the header (the browser hides it)
    st, hd, body = r.events_raw("user", app=APP_NOCERT,
                                headers={"Authorization": basic(), "Origin": "https://evil.example"})
    assert st == 200 and "access-control-allow-origin" not in hd, hd
    assert hd["vary"] == "Origin"
    # no Origin: no CORS header
    st, hd, body = r.events_raw("user", app=APP_NOCERT, headers={"Authorization": basic()})
    assert st == 200 and "access-control-allow-origin" not in hd, hd
    # not on the operators' endpoints
    st, hd, body = r.get("/healthz", headers={"Origin": PAGE})
    assert "access-control-allow-origin" not in hd and "vary" not in hd, hd


def test_cors_preflight_from_an_unlisted_origin_is_403(make_rtmd):
    r = make_rtmd(server={"cors_origins": PAGE})
    st, hd, body = preflight(r, "https://evil.example")
    d = assert_error((st, hd, body), 403, "origin_not_allowed")
    assert "cors_origins" in d["message"], d
    assert "access-control-allow-origin" not in hd
    # by default no origin is listed
    d2 = make_rtmd(name="d")
    st, hd, body = preflight(d2, PAGE)
    assert_error((st, hd, body), 403, "origin_not_allowed")
    assert "vary" not in hd and "access-control-allow-origin" not in hd, hd


def test_options_without_origin_lists_the_methods(make_rtmd):
    r = make_rtmd()
    st, hd, body = r.get(event_path("user", APP), method="OPTIONS")
    assert st == 204 and hd["allow"] == "GET, OPTIONS", (st, hd)
    st, hd, body = r.get("/dev/v2/project/%s/rtm/message/history/query" % APP, method="OPTIONS")
    assert st == 204 and hd["allow"] == "POST, OPTIONS", (st, hd)
    # the same connection goes on after a 204 (no body, no Content-Length)
    with r.http() as h:
        assert h.request("OPTIONS", event_path("user", APP))[0] == 204
        assert h.request("GET", "/healthz")[0] == 200


def test_cors_any_origin(make_rtmd):
    r = make_rtmd(server={"cors_origins": "*"})
    st, hd, body = preflight(r, "https://whatever.example")
    assert st == 204 and hd["access-control-allow-origin"] == "*", hd
