"""Running rtmd: the first run with no arguments, --help,
--version, bad config (FILE:LINE: KEY: ..., exit 2), `rtmd token`, SIGTERM."""
import json
import os
import re
import shlex
import signal
import stat
import subprocess
import threading

import pytest

from harness import (APP, APP_NOCERT, CERT, HERE, RTMD_BIN, Ws, assert_events_envelope, connect,
                     rtmd_env, wait_until)

SANITIZER_WORDS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def run(args, cwd=None, timeout=30):
    p = subprocess.run([RTMD_BIN] + args, cwd=cwd, env=rtmd_env(), capture_output=True,
                       timeout=timeout)
    out, err = p.stdout.decode(), p.stderr.decode()
    for w in SANITIZER_WORDS:
        assert w not in err, err
    return p.returncode, out, err


def version():
    with open(os.path.join(HERE, "..", "..", "VERSION")) as f:
        return f.read().strip()


# ---- --help, --version, arguments --------------------------------------------------------------

def test_help_exits_0_with_usage_on_stdout():
    rc, out, err = run(["--help"])
    assert rc == 0
    assert out.startswith("usage: rtmd")
    assert "--config" in out and "rtmd token" in out and "--version" in out
    assert err == ""


def test_version_prints_the_version():
    rc, out, err = run(["--version"])
    assert rc == 0
    assert out == "rtmd %s\n" % version()
    assert err == ""


def test_unknown_argument_is_a_usage_error(tmp_path):
    rc, out, err = run(["--bogus"], cwd=tmp_path)
    assert rc == 2
    assert "usage: rtmd" in err
    rc, out, err = run(["extra"], cwd=tmp_path)
    assert rc == 2
    assert not os.path.exists(tmp_path / "rtmd-data"), "a usage error must not start a first run"


# ---- bad config ----------------------------------------------------------------------------------

BAD_CONFIGS = [
    # (file text, line, key)
    ("[server]\nlisten = 127.0.0.1:99999@eu\n", 2, "listen"),
    ("[server]\nlisten = 127.0.0.1:0@bad/region\n", 2, "listen"),
    ("[server]\ntls = maybe\n", 2, "tls"),
    ("[server]\nevents_retain = 5\n", 2, "events_retain"),
    ("[server]\nnope = 1\n", 2, "nope"),
    ("; comment\n\n[limits]\nevents_retain = 0\n", 4, "events_retain"),
    ("[limits]\nevents_retain = 10\nevents_max_pull = 20\n", 3, "events_max_pull"),
    ("[limits]\nheartbeat_timeout_s = 99999\n", 2, "heartbeat_timeout_s"),
    ("[limits]\nmax_channels_per_user = abc\n", 2, "max_channels_per_user"),
    ("[limits]\nevents_qps = -1\n", 2, "events_qps"),
    ("[server]\ndata_dir = \n", 2, "data_dir"),
    ("[server]\ntls_cert = /x.pem\n", 2, "tls_cert"),
    ("[store]\nbackend = mysql\n", 2, "backend"),
    ("[customer:ck_x]\napps = %s\n" % APP, 1, "[customer:ck_x]"),
    ("[customer:ck_x]\nsecret = 12345678\n[customer:ck_x]\nsecret = 12345678\n", 3, "[customer:ck_x]"),
    ("[app:short]\n", 1, "[app:short]"),
    ("[foo]\nx = 1\n", 1, "[foo]"),
    ("[server]\n[server]\n", 2, "[server]"),
    ("x = 1\n", 1, "x"),
    ("[server]\ntls = on\ntls = off\n", 3, "tls"),
]


@pytest.mark.parametrize("text,line,key", BAD_CONFIGS, ids=["%s@%d" % (k, l) for _, l, k in BAD_CONFIGS])
def test_bad_config_names_file_line_key_and_exits_2(tmp_path, text, line, key):
    path = str(tmp_path / "bad.conf")
    with open(path, "w") as f:
        f.write(text)
    rc, out, err = run(["--config", path], cwd=tmp_path)
    assert rc == 2, (rc, err)
    assert out == ""
    assert err.count("\n") == 1, err
    prefix = "%s:%d: %s: " % (path, line, key)
    assert err.startswith(prefix), (prefix, err)
    assert len(err) > len(prefix) + 3
    assert not os.path.exists(tmp_path / "rtmd-data")


def test_missing_config_file_exits_2(tmp_path):
    path = str(tmp_path / "absent.conf")
    rc, out, err = run(["--config", path], cwd=tmp_path)
    assert rc == 2
    assert err.startswith(path + ": ") and err.count("\n") == 1, err


def test_config_errors_do_not_echo_secrets(tmp_path):
    secret_bad = "s3cret with space"
    cert_bad = "Z" * 32
    for text, value in (("[customer:ck]\nsecret = %s\n" % secret_bad, secret_bad),
                        ("[app:%s]\ncertificate = %s\n" % (APP, cert_bad), cert_bad)):
        path = str(tmp_path / "s.conf")
        with open(path, "w") as f:
            f.write(text)
        rc, out, err = run(["--config", path], cwd=tmp_path)
        assert rc == 2 and err.startswith(path + ":2: ")
        assert value not in err, err


def test_sample_config_of_the_spec_works_as_written(tmp_path):
    """The documented sample file, with only the ports, data_dir and tls changed."""
    ready = tmp_path / "ready"
    text = """[server]
listen = 127.0.0.1:0@default, 127.0.0.1:0@eu   ; ADDR:PORT@REGION, comma separated
tls = off                    ; on | off (plain HTTP/WS, for use behind a TLS proxy or in tests)
data_dir = %s
ready_file = %s

[store]
backend = embedded           ; embedded | redis
redis_url = redis://127.0.0.1:6379

[limits]
events_retain = 2000
events_max_pull = 1000
events_qps = 10              ; per app, both event endpoints together
history_qps = 100
send_qps = 500
history_retention_s = 604800
heartbeat_timeout_s = 30
max_channels_per_user = 20
max_payload = 32768

[customer:ck_demo]
secret = 4d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1f
apps = 970CA35de60c44645bbae8a215061b33, 0123456789abcdef0123456789abcdef

[app:970CA35de60c44645bbae8a215061b33]
certificate = 5CFd2fd1755d40ecb72977518be15d3b

[app:0123456789abcdef0123456789abcdef]   ; no certificate: clients log in with no token
""" % (tmp_path / "data", ready)
    conf = tmp_path / "spec.conf"
    conf.write_text(text)
    p = subprocess.Popen([RTMD_BIN, "--config", str(conf)], env=rtmd_env(), stdout=subprocess.DEVNULL,
                         stderr=open(tmp_path / "log", "wb"))
    try:
        wait_until(lambda: ready.exists() or p.poll() is not None, 20, what="ready file")
        assert p.poll() is None, (tmp_path / "log").read_text()
        ports = {l.split()[1]: int(l.split()[2].rsplit(":", 1)[1])
                 for l in ready.read_text().splitlines() if l.startswith("listen")}
        assert set(ports) == {"default", "eu"}
        ws = Ws(ports["eu"])
        assert ws.login("spec", token=token_cli(APP, CERT, "spec"))["ok"]
        ws.close()
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
    for w in SANITIZER_WORDS:
        assert w not in (tmp_path / "log").read_text()


# ---- rtmd token -----------------------------------------------------------------------------------

def token_cli(appid, cert, uid, *more):
    rc, out, err = run(["token", "--appid", appid, "--certificate", cert, "--uid", uid] + list(more))
    assert rc == 0, err
    assert out.endswith("\n") and out.count("\n") == 1
    return out.strip()


def test_token_command_prints_tokens_that_log_in(rtmd):
    t7 = token_cli(APP, CERT, "alice")
    t6 = token_cli(APP, CERT, "bob", "--v", "006")
    t7b = token_cli(APP, CERT, "carol", "--expire", "60", "--v", "007")
    assert t7.startswith("007") and t6.startswith("006") and t7b.startswith("007")
    for uid, t in (("alice", t7), ("bob", t6), ("carol", t7b)):
        with rtmd.ws() as ws:
            assert ws.login(uid, token=t) == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 30}
            # a token is for its user only
        with rtmd.ws() as ws:
            m = ws.login("mallory", token=t)
            assert m["ok"] is False and m["error"] == "invalid_token"
    rtmd.pull_until(6, region="eu")  # all six are recorded (read in the other region)
    # and as REST credentials
    st, hd, body = rtmd.get("/dev/v2/project/%s/rtm/vendor/user_events" % APP,
                            headers={"x-agora-token": t6, "x-agora-uid": "bob"})
    assert [(e["type"], e["user_id"]) for e in assert_events_envelope((st, hd, body))] == [
        ("Login", "alice"), ("Logout", "alice"), ("Login", "bob"), ("Logout", "bob"),
        ("Login", "carol"), ("Logout", "carol")]


@pytest.mark.parametrize("args", [
    ["--certificate", CERT, "--uid", "u"],
    ["--appid", APP, "--uid", "u"],
    ["--appid", APP, "--certificate", CERT],
    ["--appid", "short", "--certificate", CERT, "--uid", "u"],
    ["--appid", APP, "--certificate", "nothex" * 4 + "zzzz", "--uid", "u"],
    ["--appid", APP, "--certificate", CERT, "--uid", "null"],
    ["--appid", APP, "--certificate", CERT, "--uid", "a/b"],
    ["--appid", APP, "--certificate", CERT, "--uid", "u", "--v", "008"],
    ["--appid", APP, "--certificate", CERT, "--uid", "u", "--expire", "abc"],
    ["--appid", APP, "--certificate", CERT, "--uid", "u", "--bogus", "1"],
])
def test_token_command_refuses_bad_arguments(args):
    rc, out, err = run(["token"] + args)
    assert rc == 2, (rc, out, err)
    assert out == "" and err.startswith("rtmd token: "), err


# ---- the first run --------------------------------------------------------------------------------

class DefaultRun:
    """`rtmd` with no arguments in cwd; stdout collected line by line."""

    def __init__(self, cwd):
        self.cwd = str(cwd)
        self.err_path = os.path.join(self.cwd, "stderr-%d.txt" % len(os.listdir(self.cwd)))
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen([RTMD_BIN], cwd=self.cwd, env=rtmd_env(), stdout=subprocess.PIPE,
                                  stderr=self.err)
        self.lines = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.decode().rstrip("\n"))

    def banner_done(self):
        return any(l.startswith("  rtmd token --appid") for l in self.lines)

    def wait(self):
        wait_until(lambda: self.banner_done() or self.p.poll() is not None, 30, what="the banner")
        return self.banner_done() and self.p.poll() is None

    def stderr(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.err_path) as f:
            return f.read()

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(20)
        self.t.join(5)
        self.err.close()
        for w in SANITIZER_WORDS:
            assert w not in self.stderr(), self.stderr()
        return rc

    def banner(self):
        text = "\n".join(self.lines)
        b = {}
        for key, name in (("App ID", "app"), ("Certificate", "cert"), ("Customer ID", "customer"),
                          ("Secret", "secret")):
            m = re.search(r"^  %s +(\S+)$" % key, text, re.M)
            assert m, "no %s in the banner:\n%s" % (key, text)
            b[name] = m.group(1)
        m = re.search(r"^  listening +https://(\S+):(\d+) \(WebSocket: wss://\S+/v1/rtm\)$", text, re.M)
        assert m, text
        b["host"] = m.group(1)
        b["port"] = int(m.group(2))
        curls = [l.strip() for l in self.lines if l.strip().startswith("curl ")]
        assert len(curls) == 1, text
        b["curl"] = curls[0]
        toks = [l.strip() for l in self.lines if l.strip().startswith("rtmd token ")]
        assert len(toks) == 1, text
        b["token_cmd"] = toks[0]
        b["text"] = text
        return b


def check_banner_serves(b):
    """The printed curl line and token command work against the server."""
    assert re.match(r"^[0-9A-Za-z]{32}$", b["app"]), b
    assert re.match(r"^[0-9a-fA-F]{32}$", b["cert"]), b
    assert re.match(r"^[A-Za-z0-9_-]{1,64}$", b["customer"]), b
    assert 8 <= len(b["secret"]) <= 128 and " " not in b["secret"]
    args = shlex.split(b["curl"])
    assert args[0] == "curl" and "%s:%s" % (b["customer"], b["secret"]) in args
    url = [a for a in args if a.startswith("https://")]
    assert url == ["https://127.0.0.1:%d/dev/v2/project/%s/rtm/vendor/user_events" % (b["port"], b["app"])]

    def curl():
        p = subprocess.run(args + ["-sS", "--max-time", "10", "-D", "-"], capture_output=True, timeout=20)
        assert p.returncode == 0, p.stderr
        head, body = p.stdout.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head
        return [(e["type"], e["user_id"]) for e in json.loads(body)["events"]]

    first = curl()
    # the printed token command makes a token that logs in over WSS
    targs = shlex.split(b["token_cmd"])
    assert targs[:2] == ["rtmd", "token"]
    rc, out, err = run(targs[1:])
    assert rc == 0, err
    ws = Ws(b["port"], tls=True)
    assert ws.login("alice", app=b["app"], token=out.strip()) == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 30}
    ws.close()  # (the logout op over TLS is covered by test_tls.py)
    got = []
    wait_until(lambda: got.extend(curl()) or len(got) >= 2, 10, interval=0.2, what="events via curl")
    assert got == [("Login", "alice"), ("Logout", "alice")]
    return first


def listening_addrs(pid):
    """The (address, port) pairs process pid listens on (TCP, IPv4), from
    /proc: its socket inodes, found in /proc/net/tcp in state LISTEN."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:
                addr, port = local.split(":")
                ip = ".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0))
                out.add((ip, int(port, 16)))
    return out


def rewrite_listen(conf_path, cwd):
    """Points the generated config at a free port with a ready file."""
    text = open(conf_path).read()
    # the first run serves this machine only (loopback), and says so
    assert re.search(r"^listen = 127\.0\.0\.1:8443@default$", text, re.M), text
    ready = os.path.join(cwd, "ready")
    text = re.sub(r"^listen = .*$", "listen = 127.0.0.1:0@default\nready_file = %s" % ready, text,
                  count=1, flags=re.M)
    with open(conf_path, "w") as f:
        f.write(text)


def first_run_scenario(tmp_path, runs):
    """The first run serves HTTPS on 8443 when that port is free. On a
    shared machine where 8443 is taken, the first run must fail to bind
    (after writing its config); the test then checks the written config and
    the banner of the next run, with listen rewritten to a free port."""
    cwd = tmp_path
    data = cwd / "rtmd-data"
    first = DefaultRun(cwd)
    runs.append(first)
    served = first.wait()
    conf = data / "rtmd.conf"
    assert conf.exists(), first.stderr()
    assert stat.S_IMODE(os.stat(conf).st_mode) & 0o077 == 0, "rtmd.conf holds secrets: not private"
    conf_text = conf.read_text()
    if served:
        b = first.banner()
        assert "first run" in b["text"]
        assert b["port"] == 8443
        # it binds what it prints
        assert listening_addrs(first.p.pid) == {(b["host"], b["port"])} == {("127.0.0.1", 8443)}
        assert (data / "tls-cert.pem").exists() and (data / "tls-key.pem").exists()
        assert stat.S_IMODE(os.stat(data / "tls-key.pem").st_mode) & 0o077 == 0
        assert check_banner_serves(b) == []
        assert first.stop() == 0
    else:
        rc = first.p.wait(10)
        first.err.close()
        err = first.stderr()
        assert rc != 0 and "8443" in err and "in use" in err, (rc, err)
        b = None
    # the config holds what was printed
    m = re.search(r"^\[customer:(\S+)\]\nsecret = (\S+)\napps = (\S+)$", conf_text, re.M)
    assert m, conf_text
    m2 = re.search(r"^\[app:(\S+)\]\ncertificate = (\S+)$", conf_text, re.M)
    assert m2 and m2.group(1) == m.group(3), conf_text
    if b:
        assert (b["customer"], b["secret"], b["app"], b["cert"]) == (m.group(1), m.group(2),
                                                                      m.group(3), m2.group(2))
    # the next run reuses ./rtmd-data/rtmd.conf (listen moved to a free port)
    rewrite_listen(str(conf), str(cwd))
    second = DefaultRun(cwd)
    runs.append(second)
    assert second.wait(), second.stderr()
    b2 = second.banner()
    assert "first run" not in b2["text"]
    assert listening_addrs(second.p.pid) == {(b2["host"], b2["port"])}, b2["text"]
    assert (b2["customer"], b2["secret"], b2["app"], b2["cert"]) == (m.group(1), m.group(2),
                                                                      m.group(3), m2.group(2))
    events = check_banner_serves(b2)
    if served:
        assert events == [("Login", "alice"), ("Logout", "alice")] or events == [], events
    assert second.stop() == 0
    assert (data / "tls-cert.pem").exists() and (data / "tls-key.pem").exists()


def test_first_run_creates_config_prints_credentials_and_serves(tmp_path):
    runs = []
    try:
        first_run_scenario(tmp_path, runs)
    finally:
        for run_ in runs:
            if run_.p.poll() is None:
                run_.p.kill()
                run_.p.wait(10)


# ---- SIGTERM -----------------------------------------------------------------------------------------

def test_sigterm_with_busy_connections_exits_0(make_rtmd):
    r = make_rtmd()
    keep = []
    for i in range(5):
        ws = r.ws()
        assert ws.login("t%d" % i, app=APP_NOCERT)["ok"]
        keep.append(ws)
    # a half-sent request, a half-sent frame, an idle TCP connection
    h = r.http()
    h.send(b"GET /dev/v2/project/%s/rtm/vendor/user_events HTTP/1.1\r\nAuthorization: "
           % APP_NOCERT.encode())
    keep[0].send_raw(Ws.frame(b'{"op":"join","id":9,"channel":"x"}')[:5])
    raw = connect(r.port(), False)
    assert r.stop() == 0
    raw.close()
    for ws in keep:
        assert ws.wait_eof(5)
    r.restart()
    users = r.pull_until(10, app=APP_NOCERT)
    assert [(e["type"], e["user_id"]) for e in users[:5]] == [("Login", "t%d" % i) for i in range(5)]
    assert sorted(e["user_id"] for e in users[5:]) == ["t%d" % i for i in range(5)]
    assert {e["type"] for e in users[5:]} == {"Logout"}
    assert r.events("user", app=APP_NOCERT) == []


def test_sigterm_on_an_idle_server_is_prompt(make_rtmd):
    import time
    r = make_rtmd()
    t0 = time.monotonic()
    assert r.stop() == 0
    assert time.monotonic() - t0 < 5

