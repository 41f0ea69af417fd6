"""The JavaScript client (clients/js/rtm.js) and what rtmd does for it: GET /v1/rtm.js, the
WebSocket subprotocol rtm.v1, and the client itself against the real rtmd — under Node
(node/client_node_test.mjs, with the ws package) and in headless Chromium
(node/client_browser_test.mjs, with puppeteer-core). The Node scripts print "ok STEP" per
step, and "@restart" (or "@pause", "@resume") when they want rtmd restarted on the same port
and data (stopped, continued); this file answers "done restart" (...) on their stdin.
"""
import base64
import json
import os
import queue
import signal
import subprocess
import threading
import time

import pytest

from harness import (APP, CUSTOMER, HERE, SECRET, Http, free_port, loads_ordered, tokens,
                     wait_until)

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
RTM_JS = os.path.join(ROOT, "clients", "js", "rtm.js")
NODE_DIR = os.path.join(HERE, "node")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def rtm_js_bytes():
    with open(RTM_JS, "rb") as f:
        return f.read()


# ---- GET /v1/rtm.js ----------------------------------------------------------------------

def test_rtm_js_is_served_from_the_binary_with_its_etag(make_rtmd):
    r = make_rtmd()
    st, hd, body = r.get("/v1/rtm.js")
    assert st == 200, body
    assert body == rtm_js_bytes()
    assert hd["content-type"] == "text/javascript; charset=utf-8"
    assert hd["cache-control"] == "no-cache"
    etag = hd["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 18, etag
    # the same bytes whatever the working directory: nothing is read from disk
    assert r.get("/v1/rtm.js")[1]["etag"] == etag

    st, hd2, body = r.get("/v1/rtm.js", method="HEAD")
    assert st == 200 and body == b"" and hd2["etag"] == etag

    for inm in (etag, "W/" + etag, '"other", ' + etag, "*"):
        st, hd3, body = r.get("/v1/rtm.js", headers={"If-None-Match": inm})
        assert st == 304 and body == b"", (inm, st)
        assert hd3["etag"] == etag and "content-length" not in hd3
    st, _, body = r.get("/v1/rtm.js", headers={"If-None-Match": '"stale"'})
    assert st == 200 and body == rtm_js_bytes()


def test_rtm_js_other_methods_are_405_and_near_paths_404(make_rtmd):
    r = make_rtmd()
    st, hd, body = r.get("/v1/rtm.js", method="POST", body="{}")
    assert st == 405 and hd["allow"] == "GET, HEAD"
    assert json.loads(body)["code"] == "method_not_allowed"
    for path in ("/v1/rtm.js/", "/v1/rtm.jsx", "/v1/RTM.js", "/v1/rtm.js%00"):
        assert r.get(path)[0] == 404, path
    # the query string is not part of the path
    assert r.get("/v1/rtm.js?v=1")[0] == 200


def test_rtm_js_carries_cors_headers_for_listed_origins(make_rtmd):
    r = make_rtmd(server={"cors_origins": "https://app.example.com"})
    st, hd, _ = r.get("/v1/rtm.js", headers={"Origin": "https://app.example.com"})
    assert st == 200
    assert hd["access-control-allow-origin"] == "https://app.example.com"
    assert hd["vary"] == "Origin"
    st, hd, _ = r.get("/v1/rtm.js", headers={"Origin": "https://evil.example"})
    assert st == 200 and "access-control-allow-origin" not in hd


def test_rtm_js_counts_in_the_static_route_metrics(make_rtmd):
    r = make_rtmd()
    assert r.get("/v1/rtm.js")[0] == 200
    text = r.metrics_text()
    assert 'rtmd_http_request_duration_seconds_count{route="static"} 1' in text, text[-3000:]


# ---- the subprotocol rtm.v1 ---------------------------------------------------------------

def upgrade(r, protocols=None, extra=None):
    """A raw upgrade of /v1/rtm offering protocols (one header line per item of the list
    given, each a string): (status, headers, body)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /v1/rtm HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
    for p in protocols or ():
        lines.append("Sec-WebSocket-Protocol: " + p)
    lines += extra or []
    with Http(r.port()) as h:
        h.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        return h.read_response()


def test_subprotocol_rtm_v1_is_accepted_when_offered(make_rtmd):
    r = make_rtmd()
    for offer in (["rtm.v1"], ["chat, rtm.v1"], [" rtm.v1 ,x"], ["chat", "rtm.v1"]):
        st, hd, _ = upgrade(r, offer)
        assert st == 101, offer
        assert hd["sec-websocket-protocol"] == "rtm.v1", offer


def test_subprotocol_none_offered_is_answered_without_one(make_rtmd):
    r = make_rtmd()
    st, hd, _ = upgrade(r)
    assert st == 101 and "sec-websocket-protocol" not in hd


@pytest.mark.parametrize("offer", [["chat"], ["RTM.V1"], ["rtm.v2, rtm"], [""], ["rtm.v1x"]])
def test_subprotocol_offered_without_rtm_v1_is_a_clear_400(make_rtmd, offer):
    r = make_rtmd()
    st, hd, body = upgrade(r, offer)
    assert st == 400, (offer, st)
    assert "sec-websocket-protocol" not in hd and "upgrade" not in hd
    d = loads_ordered(body)
    assert dict(d)["code"] == "unsupported_subprotocol"
    assert "rtm.v1" in dict(d)["message"]
    assert r.healthy()


# ---- the client under Node and in Chromium ---------------------------------------------------

def run_node(r, script, env, timeout):
    """Runs a Node test script against r, doing to r what the script asks ("@restart": on the
    same port and data; "@pause": SIGSTOP; "@resume": SIGCONT; answered "done WHAT" on its
    stdin). Returns its output; asserts that it exited 0 within timeout."""
    p = subprocess.Popen(["node", script], cwd=NODE_DIR, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(os.environ, RTM_TEST_ENV=json.dumps(env)))
    lines = queue.Queue()

    def pump():
        for line in p.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    out = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "%s did not finish within %ss:\n%s" % (script, timeout, "".join(out))
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                break
            out.append(line)
            what = line.strip()[1:] if line.startswith("@") else None
            if what == "restart":
                assert r.stop() == 0, r.read_log()[-4000:]
                r.start()
            elif what == "pause":
                r.proc.send_signal(signal.SIGSTOP)
            elif what == "resume":
                r.proc.send_signal(signal.SIGCONT)
            if what:
                p.stdin.write("done %s\n" % what)
                p.stdin.flush()
        rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if r.alive():
            r.proc.send_signal(signal.SIGCONT)  # in case the script failed while rtmd was paused
    text = "".join(out)
    print(text)  # the steps and their times, shown with -s or a failure
    assert rc == 0, "%s failed (exit %s):\n%s" % (script, rc, text)
    assert "\nFAIL" not in "\n" + text, text
    return text


def client_env(r, uids):
    port = r.port()
    toks = tokens([{"v": "007", "appid": APP, "cert": "5CFd2fd1755d40ecb72977518be15d3b",
                    "uid": u, "expire": 3600} for u in uids])
    return {"ws": "ws://127.0.0.1:%d/v1/rtm" % port, "http": "http://127.0.0.1:%d" % port,
            "app": APP, "customer": CUSTOMER, "secret": SECRET, "tokens": dict(zip(uids, toks))}


HEARTBEAT_S = 2


def test_js_client_under_node(make_rtmd):
    r = make_rtmd(port=free_port(), limits={"heartbeat_timeout_s": HEARTBEAT_S})
    env = client_env(r, ["alice", "bob", "carol", "dave"])
    env["heartbeatMs"] = HEARTBEAT_S * 1000
    out = run_node(r, "client_node_test.mjs", env, 150)
    assert out.count("\nok ") + out.startswith("ok ") >= 12, out


def test_js_client_in_chromium(make_rtmd):
    assert os.path.exists(CHROMIUM), ("no Chromium at %s: scripts/install-deps --test installs "
                                      "Debian's chromium" % CHROMIUM)
    r = make_rtmd(port=free_port(), limits={"heartbeat_timeout_s": HEARTBEAT_S},
                  server={"cors_origins": "*"})
    env = client_env(r, ["alice", "bob"])
    env["heartbeatMs"] = HEARTBEAT_S * 1000
    out = run_node(r, "client_browser_test.mjs", env, 240)
    assert "ok an idle page stays connected" in out, out
    # the idle pages pinged: the server cut nobody for its heartbeat
    assert "heartbeat timeout" not in r.read_log()
