"""What an operator watches: the log (text or JSON, to stderr or a file
reopened on SIGUSR1; one access line per REST request and per WebSocket end,
auth failures at warn with the reason and never a credential) and /metrics
(Prometheus text: every family with HELP and TYPE, histograms of REST,
store-commit and push latency, rtmd_build_info, process metrics)."""
import json
import os
import re
import signal
import struct

from harness import (APP, APP_NOCERT, CUSTOMER, Rtmd, basic, event_path, token, wait_until)

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SECRET_TRY = "wr0ngS3cretThatMustNeverBeLogged"


# ---- the Prometheus exposition -----------------------------------------------------

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_labels(text):
    out, pos = {}, 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        assert m, "bad labels %r" % text
        out[m.group(1)] = m.group(2)
        pos = m.end()
    return out


def parse_exposition(text):
    """Checks the whole text (every sample's family has HELP and TYPE before
    it; histograms are cumulative, end in +Inf and have _sum and _count) and
    returns {family: {"type", "help", "samples": [(name, labels, value)]}}."""
    fams = {}
    current = None
    assert text.endswith("\n")
    for line in text.splitlines():
        assert line, "empty line in /metrics"
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            assert help_, line
            assert name not in fams or "help" not in fams[name], "HELP twice: " + line
            fams.setdefault(name, {"samples": []})["help"] = help_
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped"), line
            f = fams.setdefault(name, {"samples": []})
            assert "help" in f, "TYPE before HELP: " + line
            assert "type" not in f, "TYPE twice: " + line
            f["type"] = typ
            current = name
            continue
        assert not line.startswith("#"), line
        m = SAMPLE_RE.match(line)
        assert m, "not a sample: %r" % line
        name, labels, value = m.group(1), parse_labels(m.group(3) or ""), float(m.group(4))
        family = name
        if current and fams[current]["type"] == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                if name == current + suffix:
                    family = current
        assert family == current, "sample %s outside its family's block (%s)" % (name, current)
        assert "type" in fams[family] and "help" in fams[family], name
        fams[family]["samples"].append((name, labels, value))
    for fam, f in fams.items():
        assert f["samples"], "a family with no sample: " + fam
        if f["type"] == "counter":
            assert fam.endswith("_total"), fam
        if f["type"] == "histogram":
            check_histogram(fam, f["samples"])
    return fams


def check_histogram(fam, samples):
    series = {}
    for name, labels, value in samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if name == fam + "_bucket":
            s["buckets"].append((labels["le"], value))
        elif name == fam + "_sum":
            s["sum"] = value
        else:
            s["count"] = value
    assert series, fam
    for key, s in series.items():
        assert s["sum"] is not None and s["count"] is not None, (fam, key)
        les = [le for le, _ in s["buckets"]]
        assert les[-1] == "+Inf", (fam, key, les)
        bounds = [float(le) for le in les[:-1]]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), (fam, les)
        counts = [v for _, v in s["buckets"]]
        assert counts == sorted(counts), "not cumulative: %s %s %s" % (fam, key, counts)
        assert counts[-1] == s["count"], (fam, key)
        assert s["sum"] >= 0


def hist_count(fams, fam, **labels):
    for name, lab, value in fams[fam]["samples"]:
        if name == fam + "_count" and all(lab.get(k) == v for k, v in labels.items()):
            return value
    raise AssertionError("no %s_count with %s" % (fam, labels))


def test_metrics_exposition_is_valid_and_complete(rtmd):
    # Some work for every histogram: a pull, a login (a commit), a push.
    st, hd, body = rtmd.get(event_path("user"), headers={"Authorization": basic()})
    assert st == 200, body
    with rtmd.ws() as a, rtmd.ws() as b:
        assert a.login("obs-a", app=APP_NOCERT)["ok"] and b.login("obs-b", app=APP_NOCERT)["ok"]
        assert a.call("peer", to="obs-b", payload="hi")["ok"]
        assert b.recv()["op"] == "peer_message"
    fams = parse_exposition(rtmd.metrics_text())
    for fam in ("rtmd_http_request_duration_seconds", "rtmd_store_commit_duration_seconds",
                "rtmd_push_duration_seconds"):
        assert fams[fam]["type"] == "histogram", fam
    assert hist_count(fams, "rtmd_http_request_duration_seconds",
                      route="/dev/v2/project/{appid}/rtm/vendor/user_events") >= 1
    assert hist_count(fams, "rtmd_store_commit_duration_seconds") >= 1
    assert hist_count(fams, "rtmd_push_duration_seconds") >= 1
    # every route has its series, unknown paths one of their own
    routes = {lab["route"] for name, lab, _ in fams["rtmd_http_request_duration_seconds"]["samples"]}
    assert {"other", "/v1/rtm", "/healthz", "/readyz", "/metrics", "static", "/dashboard"} <= routes
    assert len(routes) == 17, routes
    (name, labels, value), = fams["rtmd_build_info"]["samples"]
    assert value == 1 and re.match(r"^\d+\.\d+\.\d+", labels["version"]), labels
    assert labels["libuv"] and labels["openssl"]
    for fam in ("process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total",
                "process_start_time_seconds", "process_max_fds", "process_virtual_memory_bytes"):
        assert fams[fam]["samples"], fam
    assert fams["process_resident_memory_bytes"]["samples"][0][2] > 1 << 20
    assert fams["process_open_fds"]["samples"][0][2] >= 5  # listeners, store, this connection
    assert fams["process_cpu_seconds_total"]["type"] == "counter"


def test_rest_latency_is_timed_per_route(rtmd):
    def count(route):
        return hist_count(parse_exposition(rtmd.metrics_text()),
                          "rtmd_http_request_duration_seconds", route=route)
    other, healthz = count("other"), count("/healthz")
    assert rtmd.get("/no/such/path")[0] == 404
    rtmd.healthy()
    assert count("other") == other + 1
    assert count("/healthz") == healthz + 1


# ---- the log ------------------------------------------------------------------------

def log_lines(r):
    return [l for l in r.read_log().splitlines() if l.strip()]


def exercise(r):
    """Requests an operator's log must show: success, 401s, a 404, logins
    (good and refused) and WebSocket ends, some with hostile bytes."""
    assert r.get(event_path("user"), headers={"Authorization": basic()})[0] == 200
    assert r.get(event_path("user") + "?secret=x",
                 headers={"Authorization": basic(secret=SECRET_TRY)})[0] == 401
    assert r.get(event_path("user", app="A" * 32),
                 headers={"Authorization": basic(secret=SECRET_TRY)})[0] == 401
    assert r.get("/nope/\"quote\\back%ff")[0] == 404
    with r.http() as h:
        h.send_raw(b"GET /bad\xff\xfe\"path HTTP/1.1\r\nHost: x\r\n\r\n")
        h.read_response()
    bad = token("mallory", expire=3600)[:-4] + "AAAA"
    with r.ws() as w:
        assert w.login("mallory", token=bad)["ok"] is False
    with r.ws() as w:
        rep = w.login('ev"il\\\n\x01\u00e9', app="B" * 32)
        assert rep["ok"] is False
    with r.ws() as w:
        assert w.login("obs-carol", app=APP_NOCERT)["ok"]
        w.call("logout")
    with r.ws() as w:
        assert w.login("obs-dave", app=APP_NOCERT)["ok"]
        w.send_frame(struct.pack("!H", 4001) + b"bye", opcode=8)  # the client closes
        w.wait_eof()
    wait_until(lambda: r.log_has("obs-dave") and r.read_log().count("websocket closed") >= 4, 5,
               what="every WebSocket's end in the log")
    return bad


def test_json_log_every_line_parses(tmp_path, rtmd_store):
    r = Rtmd(tmp_path, store=rtmd_store, server={"log_format": "json"}).start()
    try:
        bad_token = exercise(r)
    finally:
        r.stop()
    recs = []
    for line in log_lines(r):
        rec = json.loads(line)  # every line, start-up and shutdown included
        assert isinstance(rec, dict), line
        assert TIME_RE.match(rec["time"]), rec
        assert rec["level"] in ("error", "warn", "info", "debug"), rec
        assert rec["module"] and isinstance(rec["msg"], str), rec
        recs.append(rec)
    text = r.read_log()
    assert SECRET_TRY not in text and bad_token not in text and bad_token[3:40] not in text
    reqs = [x for x in recs if x["msg"] == "request" and x["module"] == "http"]
    ok = [x for x in reqs if x["status"] == 200 and x["path"].endswith("/user_events")]
    assert ok, reqs
    x = ok[0]
    assert x["method"] == "GET" and x["app"] == APP and x["bytes"] > 0
    assert isinstance(x["duration_ms"], float) and x["request_id"] and x["remote"].startswith("127.")
    assert "?" not in x["path"]
    not_found = [x for x in reqs if x["status"] == 404]
    assert not_found and not_found[0]["path"].startswith("/nope/")
    auth = [x for x in recs if x["msg"] == "authentication failed"]
    assert {x["level"] for x in auth} == {"warn"} and len(auth) == 2, auth
    assert {x["reason"] for x in auth} == {"invalid customer ID or secret", "unknown app"}
    refused = [x for x in recs if x["msg"] == "request refused"]
    assert refused and refused[0]["status"] == 400
    logins = [x for x in recs if x["msg"] == "login refused"]
    assert {x["reason"] for x in logins} == {"token does not verify for this app and uid",
                                             "unknown app"}, logins
    assert all(x["level"] == "warn" for x in logins)
    evil = [x for x in logins if x["reason"] == "unknown app"][0]
    # the client's bytes, escaped in the line, come back whole (valid UTF-8 as it is)
    assert evil["uid"] == 'ev"il\\\n\x01\u00e9' and evil["app"] == "B" * 32, evil
    ends = [x for x in recs if x["msg"] == "websocket closed"]
    carol = [x for x in ends if x["uid"] == "obs-carol"][0]
    assert carol["app"] == APP_NOCERT and carol["close_code"] == 1000
    assert carol["closed_by"] == "server" and carol["duration_ms"] >= 0
    assert any(x["msg"] == "login" and x["level"] == "debug" and x["uid"] == "obs-carol"
               for x in recs)
    dave = [x for x in ends if x["uid"] == "obs-dave"][0]
    assert dave["close_code"] == 4001 and dave["closed_by"] == "client", dave
    dropped = [x for x in ends if x["uid"] == ""]
    assert dropped and all(x["close_code"] == 1006 and x["closed_by"] == "none" for x in dropped)


def test_text_log_at_debug_shows_401_404_and_logins(rtmd):
    exercise(rtmd)
    text = rtmd.read_log()
    assert SECRET_TRY not in text
    lines = log_lines(rtmd)
    for line in lines:
        assert TIME_RE.match(line.split(" ", 1)[0]), line
    assert any(" warn http authentication failed " in l and 'reason="unknown app"' in l
               for l in lines)
    # a value with a quote or a backslash is quoted, those bytes escaped
    assert any(' info http request method=GET path="/nope/\\x22quote\\x5cback%ff" status=404 '
               in l for l in lines)
    assert any(" debug gateway login app=%s uid=obs-carol " % APP_NOCERT in l for l in lines)
    ends = [l for l in lines if "gateway websocket closed" in l and "uid=obs-carol" in l]
    assert ends and "close_code=1000" in ends[0] and "duration_ms=" in ends[0]
    # the client's bytes never break a line
    assert not any(l.startswith("il") or "\x01" in l for l in lines)


def test_log_file_is_reopened_on_sigusr1(tmp_path, rtmd_store):
    path = os.path.join(str(tmp_path), "logs", "rtmd.log")
    os.makedirs(os.path.dirname(path))
    r = Rtmd(tmp_path, store=rtmd_store, server={"log_file": path}).start()
    try:
        assert r.get("/healthz?first")[0] == 200
        wait_until(lambda: "path=/healthz" in open(path).read(), 5, what="the first line")
        os.rename(path, path + ".1")
        assert r.get("/nope-before")[0] == 404  # still written to the moved file
        os.kill(r.proc.pid, signal.SIGUSR1)
        wait_until(lambda: os.path.exists(path) and "log file reopened" in open(path).read(), 5,
                   what="the reopened log file")
        assert r.get("/nope-after")[0] == 404
        wait_until(lambda: "/nope-after" in open(path).read(), 5, what="a line in the new file")
        old = open(path + ".1").read()
        assert "/nope-before" in old and "/nope-after" not in old
        assert "listening on" in old
        # stderr holds nothing of it
        assert "path=/healthz" not in r.read_log()
        # a file that cannot be reopened keeps the old one
        os.rename(os.path.dirname(path), os.path.dirname(path) + ".gone")
        os.kill(r.proc.pid, signal.SIGUSR1)
        moved = os.path.join(os.path.dirname(path) + ".gone", "rtmd.log")
        wait_until(lambda: "cannot reopen" in open(moved).read(), 5, what="the failure logged")
        assert r.alive() and r.get("/nope-last")[0] == 404
        wait_until(lambda: "/nope-last" in open(moved).read(), 5, what="the old file kept")
    finally:
        r.stop()


def test_access_log_is_off_below_info(tmp_path, rtmd_store):
    r = Rtmd(tmp_path, store=rtmd_store)
    r.write_config()
    with open(r.conf_path) as f:
        conf = f.read().replace("log_level = debug", "log_level = warn")
    with open(r.conf_path, "w") as f:
        f.write(conf)
    r.start()
    try:
        assert r.get(event_path("user"), headers={"Authorization": basic()})[0] == 200
        assert r.get(event_path("user"), headers={"Authorization": basic(secret="x")})[0] == 401
    finally:
        r.stop()
    lines = log_lines(r)
    assert not any(" info " in l for l in lines), lines
    assert sum(" warn http authentication failed " in l for l in lines) == 1, lines
