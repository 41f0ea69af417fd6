"""Black-box harness: runs the real rtmd binary on free ports with a generated
config, and speaks raw HTTP/1.1 and WebSocket (RFC 6455) bytes to it.

Nothing here sleeps for a fixed time: every wait polls a condition until a
deadline.
"""
import base64
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RTMD_BIN = os.environ.get("RTMD_BIN") or os.path.join(HERE, "..", "..", "build", "rtmd")

APP = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"
APP_NOCERT = "0123456789abcdef0123456789abcdef"
APP_OTHER = "fedcba9876543210fedcba9876543210"  # owned by the other customer
CERT_OTHER = "00112233445566778899aabbccddeeff"
CUSTOMER = "ck_demo"
SECRET = "4d1f0c7e9a2b4c6d8e0f1a3b5c7d9e1f"
CUSTOMER_OTHER = "ck_other"
SECRET_OTHER = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"

DEFAULT_LIMITS = {}

_node_seq = [0]


def next_node_id():
    """A node_id no other Rtmd on the same Redis has: 1, 2, ... from the last
    reset_node_ids() (so the first node of a test is 1, as on the embedded
    store, and request IDs read the same)."""
    _node_seq[0] += 1
    return str(_node_seq[0])


def reset_node_ids():
    """For a new, empty Redis."""
    _node_seq[0] = 0


def wait_until(cond, timeout=10.0, interval=0.01, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def basic(customer=CUSTOMER, secret=SECRET):
    raw = ("%s:%s" % (customer, secret)).encode()
    return "Basic " + base64.b64encode(raw).decode()


def event_path(kind="user", app=APP):
    return "/dev/v2/project/%s/rtm/vendor/%s_events" % (app, kind)


def now_ms():
    return int(time.time() * 1000)


REQUEST_ID_RE = re.compile(r"^([0-9]+)_([0-9]+)$")


def loads_ordered(body):
    """JSON with its objects as lists of (key, value) pairs, to check key order."""
    return json.loads(body, object_pairs_hook=list)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def assert_error(resp, status, code=None):
    """Asserts an error response: the status, the exact body shape
    {"code","message","request_id","result":"failed"} (in that order, compact),
    X-Request-ID equal to request_id, and returns the parsed body."""
    st, hd, body = resp
    assert st == status, (st, body)
    pairs = loads_ordered(body)
    assert [k for k, _ in pairs] == ["code", "message", "request_id", "result"], body
    d = dict(pairs)
    assert body == compact(d).encode(), body
    assert d["result"] == "failed", body
    assert isinstance(d["code"], str) and re.match(r"^[a-z][a-z0-9_]*$", d["code"]), body
    if code is not None:
        assert d["code"] == code, body
    assert isinstance(d["message"], str) and d["message"], body
    assert REQUEST_ID_RE.match(d["request_id"]), body
    assert hd.get("x-request-id") == d["request_id"], (hd, body)
    assert hd.get("content-type") == "application/json;charset=utf-8", hd
    return d


def assert_events_envelope(resp):
    """Asserts a 200 event-log answer: exactly {"events":[...],"request_id":..,
    "result":"success"}, compact, keys in order, X-Request-ID = request_id.
    Returns the events (dicts)."""
    st, hd, body = resp
    assert st == 200, (st, body)
    pairs = loads_ordered(body)
    assert [k for k, _ in pairs] == ["events", "request_id", "result"], body
    d = dict(pairs)
    assert d["result"] == "success"
    assert REQUEST_ID_RE.match(d["request_id"]), body
    assert hd.get("x-request-id") == d["request_id"], hd
    assert hd.get("content-type") == "application/json;charset=utf-8", hd
    events = json.loads(body)["events"]
    assert body == compact(json.loads(body)).encode(), "not compact JSON: %r" % body[:200]
    return events


CONFIG_ENV_PREFIXES = ("RTMD_SERVER_", "RTMD_STORE_", "RTMD_LIMITS_", "RTMD_APP_", "RTMD_CUSTOMER_")


def rtmd_env(extra=None):
    """The environment of an rtmd under test: this process's without the
    RTMD_<SECTION>_<KEY> variables that would override its config file,
    plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_ENV_PREFIXES)}
    env.update(extra or {})
    return env


class Rtmd:
    """One rtmd process with its own data dir and config."""

    def __init__(self, tmpdir, tls=False, regions=("default", "eu"), limits=None, extra="",
                 server=None, store=None, app_extra="", port=0, env=None):
        self.dir = str(tmpdir)
        self.tls = tls
        self.regions = list(regions)
        self.limits = dict(limits or {})
        self.extra = extra
        self.server = dict(server or {})  # more [server] keys, e.g. {"node_id": 7}
        self.store = dict(store or {})    # [store] keys, e.g. {"sync": "normal"}
        if self.store.get("backend") == "redis" and "node_id" not in self.server:
            # Nodes on one Redis are one service: each Rtmd is its own node
            # (a restart of the same Rtmd keeps its id, as a real node does).
            self.server["node_id"] = next_node_id()
        self.app_extra = app_extra        # more lines of APP's section
        self.listen_port = port           # 0: any free port
        self.env = dict(env or {})        # more environment variables, e.g. RTMD_LIMITS_*
        self.proc = None
        self.ports = {}
        self.log_path = os.path.join(self.dir, "rtmd.log")
        self.conf_path = os.path.join(self.dir, "rtmd.conf")
        self.ready_path = os.path.join(self.dir, "ready")
        self.data_dir = os.path.join(self.dir, "data")
        self.write_config()

    def write_config(self):
        listen = ", ".join("127.0.0.1:%d@%s" % (self.listen_port if i == 0 else 0, r)
                           for i, r in enumerate(self.regions))
        limits = "".join("%s = %s\n" % kv for kv in self.limits.items())
        server = "".join("%s = %s\n" % kv for kv in self.server.items())
        store = "".join("%s = %s\n" % kv for kv in self.store.items())
        text = (
            "[server]\n"
            "listen = %s\n"
            "tls = %s\n"
            "data_dir = %s\n"
            "ready_file = %s\n"
            "log_level = debug\n"
            % (listen, "on" if self.tls else "off", self.data_dir, self.ready_path))
        text += server
        if store:
            text += "\n[store]\n" + store
        text += (
            "\n[limits]\n%s\n"
            "[customer:%s]\nsecret = %s\napps = %s, %s\n\n"
            "[customer:%s]\nsecret = %s\napps = %s\n\n"
            "[app:%s]\ncertificate = %s\n%s\n"
            "[app:%s]\ncertificate = %s\n\n"
            "[app:%s]   ; no certificate\n%s"
            % (limits,
               CUSTOMER, SECRET, APP, APP_NOCERT,
               CUSTOMER_OTHER, SECRET_OTHER, APP_OTHER,
               APP, CERT, self.app_extra, APP_OTHER, CERT_OTHER, APP_NOCERT, self.extra))
        with open(self.conf_path, "w") as f:
            f.write(text)

    # -- process -------------------------------------------------------------
    def launch(self):
        """Starts the process without waiting for it to be ready."""
        if os.path.exists(self.ready_path):
            os.unlink(self.ready_path)
        self.log = open(self.log_path, "ab")
        self.expect_exit = False  # set by stop() and kill9()
        self.proc = subprocess.Popen([RTMD_BIN, "--config", self.conf_path],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env=rtmd_env(self.env))
        return self

    def start(self, timeout=20.0):
        self.launch()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("rtmd exited with %s:\n%s" % (self.proc.returncode, self.read_log()))
            return os.path.exists(self.ready_path)

        wait_until(ready, timeout, what="rtmd ready file")
        self.ports = {}
        self.tls_of = {}        # region -> the listener serves TLS
        self.admin_port = None  # admin_listen's bound port
        with open(self.ready_path) as f:
            for line in f:
                # "listen REGION HOST:PORT tls|plain", "admin HOST:PORT"
                parts = line.split()
                if parts[0] == "listen":
                    self.ports[parts[1]] = int(parts[2].rsplit(":", 1)[1])
                    self.tls_of[parts[1]] = parts[3] == "tls"
                elif parts[0] == "admin":
                    self.admin_port = int(parts[1].rsplit(":", 1)[1])
        return self

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def port(self, region="default"):
        return self.ports[region]

    def stop(self, timeout=20.0):
        """SIGTERM; returns the exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.expect_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("rtmd did not exit on SIGTERM:\n" + self.read_log())
        self.log.close()
        return rc

    def kill9(self):
        self.expect_exit = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def died(self):
        """True when the process exited without stop() or kill9()."""
        return self.proc is not None and self.proc.poll() is not None and not self.expect_exit

    def assert_clean_log(self):
        log = self.read_log()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer"):
            assert bad not in log, "sanitizer report in rtmd log:\n" + log[-8000:]

    # -- clients -------------------------------------------------------------
    def http(self, region="default"):
        return Http(self.port(region), tls=self.tls_of.get(region, self.tls))

    def ws(self, region="default", **kw):
        return Ws(self.port(region), tls=self.tls_of.get(region, self.tls), **kw)

    def admin(self):
        """A plain HTTP connection to admin_listen."""
        assert self.admin_port, "no admin listener in the ready file"
        return Http(self.admin_port, tls=False)

    def get(self, path, headers=None, region="default", method="GET", body=None):
        with self.http(region) as h:
            return h.request(method, path, headers=headers, body=body)

    def events(self, kind="user", app=APP, region="default", auth=None):
        """One pull of an event log (a 429 from events_qps is retried: it
        consumes nothing)."""
        deadline = time.monotonic() + 5.0
        while True:
            st, hd, body = self.get("/dev/v2/project/%s/rtm/vendor/%s_events" % (app, kind),
                                    headers={"Authorization": auth or basic()}, region=region)
            if st != 429 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert st == 200, (st, body)
        return json.loads(body)["events"]

    # -- conveniences (added for the black-box suite) --------------------------
    def restart(self, timeout=20.0):
        """Starts the same node again (same config and data_dir, new ports)."""
        assert not self.alive(), "restart() of a running rtmd"
        return self.start(timeout)

    def healthy(self, region="default"):
        """Asserts the server still answers GET /healthz with 200; returns True."""
        assert self.alive(), "rtmd is not running:\n" + self.read_log()[-4000:]
        st, hd, body = self.get("/healthz", region=region)
        assert st == 200, (st, body)
        assert json.loads(body)["status"] == "ok"
        return True

    def metrics_text(self, region="default"):
        """GET /metrics: the exposition text. The one place that fetches it
        with a customer's Basic auth, which /metrics needs on the main listeners."""
        st, hd, body = self.get("/metrics", headers={"Authorization": basic()}, region=region)
        assert st == 200, (st, body)
        assert hd.get("content-type", "").startswith("text/plain"), \
            "GET /metrics is not Prometheus text: %r %r" % (hd.get("content-type"), body[:200])
        return body.decode()

    def metrics(self, region="default"):
        """The /metrics samples as {"name{labels}": float}."""
        out = {}
        for line in self.metrics_text(region).splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def events_raw(self, kind="user", app=APP, region="default", headers=None):
        """One GET of an event log: (status, headers, body bytes)."""
        return self.get(event_path(kind, app), headers=headers, region=region)

    def pull_until(self, n, kind="user", app=APP, region="default", timeout=10.0):
        """Pulls (in `region`) until n events came back in total; returns them."""
        got = []

        def enough():
            if len(got) < n:
                st, hd, body = self.events_raw(kind, app=app, region=region,
                                               headers={"Authorization": basic()})
                if st == 429:  # polling faster than events_qps: try again
                    return False
                assert st == 200, (st, body)
                got.extend(json.loads(body)["events"])
            return len(got) >= n

        wait_until(enough, timeout, interval=0.05, what="%d %s events" % (n, kind))
        return got

    def log_has(self, text):
        return text in self.read_log()


def connect(port, tls, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname="localhost")
    return s


class _Socket:
    """A client socket with a receive buffer."""

    def __init__(self, port, tls=False, timeout=10.0):
        self.sock = connect(port, tls, timeout)
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            chunk = b""
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def wait_eof(self, timeout=5.0):
        """True once the server closed the connection (EOF or reset)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        except ssl.SSLError:
            return True  # a TLS connection cut without close_notify


class Http(_Socket):
    """A raw HTTP/1.1 client connection (keep-alive)."""

    def send(self, data):
        self.sock.sendall(data)

    def read_response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    @staticmethod
    def build(method, path, headers=None, body=None):
        h = {"Host": "127.0.0.1"}
        h.update(headers or {})
        if body is not None:
            if isinstance(body, str):
                body = body.encode()
            h.setdefault("Content-Type", "application/json;charset=utf-8")
            h["Content-Length"] = str(len(body))
        req = "%s %s HTTP/1.1\r\n" % (method, path)
        req += "".join("%s: %s\r\n" % kv for kv in h.items())
        return req.encode() + b"\r\n" + (body or b"")

    def request(self, method, path, headers=None, body=None):
        self.send(self.build(method, path, headers, body))
        return self.read_response()


class WsClosed(Exception):
    def __init__(self, code, reason):
        Exception.__init__(self, "closed %s %r" % (code, reason))
        self.code = code
        self.reason = reason


class Ws(_Socket):
    """A raw WebSocket client: masked frames out, frames in."""

    def __init__(self, port, tls=False, path="/v1/rtm", timeout=10.0, handshake=True):
        _Socket.__init__(self, port, tls, timeout)
        self.next_id = 1
        self.pushes = []  # non-reply messages received while waiting for replies
        if handshake:
            self.handshake(path)

    def close_socket(self):
        self.close()

    def handshake(self, path="/v1/rtm"):
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key))
        self.sock.sendall(req.encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), head
        expect = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
        assert hdrs["sec-websocket-accept"] == expect

    @staticmethod
    def frame(payload, opcode=1, fin=True, mask=True, rsv=0):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if not mask:
            return hdr + payload
        key = os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return hdr + key + masked

    def send_frame(self, payload, opcode=1, fin=True, mask=True):
        self.sock.sendall(self.frame(payload, opcode, fin, mask))

    def recv_frame(self, timeout=10.0):
        """Returns (opcode, payload bytes)."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                n = b1 & 0x7F
                off = 2
                if n == 126:
                    if len(self.buf) < 4:
                        self._fill()
                        continue
                    n = struct.unpack("!H", self.buf[2:4])[0]
                    off = 4
                elif n == 127:
                    if len(self.buf) < 10:
                        self._fill()
                        continue
                    n = struct.unpack("!Q", self.buf[2:10])[0]
                    off = 10
                assert not (b1 & 0x80), "server frames must not be masked"
                if len(self.buf) >= off + n:
                    payload = self.buf[off:off + n]
                    self.buf = self.buf[off + n:]
                    return b0 & 0x0F, payload
            self._fill()

    def take_frame(self):
        """The next complete text message already in the buffer (parsed), or
        None; for callers that read the socket themselves."""
        while len(self.buf) >= 2:
            n = self.buf[1] & 0x7F
            off = 2
            if n == 126:
                if len(self.buf) < 4:
                    return None
                n = struct.unpack("!H", self.buf[2:4])[0]
                off = 4
            elif n == 127:
                if len(self.buf) < 10:
                    return None
                n = struct.unpack("!Q", self.buf[2:10])[0]
                off = 10
            if len(self.buf) < off + n:
                return None
            op = self.buf[0] & 0x0F
            payload = self.buf[off:off + n]
            self.buf = self.buf[off + n:]
            if op in (1, 2):
                return json.loads(payload)
        return None

    def recv(self, timeout=10.0):
        """The next JSON message; answers pings; raises WsClosed on a close frame."""
        while True:
            op, payload = self.recv_frame(timeout)
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise WsClosed(code, payload[2:].decode("utf-8", "replace"))
            if op == 9:
                self.send_frame(payload, opcode=10)
                continue
            if op in (1, 2):
                return json.loads(payload)

    def send(self, obj):
        self.send_frame(json.dumps(obj))

    def call(self, op, timeout=10.0, **fields):
        """Sends an op and returns its reply (pushes received meanwhile are kept)."""
        rid = self.next_id
        self.next_id += 1
        msg = {"op": op, "id": rid}
        msg.update(fields)
        self.send(msg)
        return self.reply(rid, timeout)

    def reply(self, rid, timeout=10.0):
        while True:
            m = self.recv(timeout)
            if m.get("op") == "reply" and m.get("id") == rid:
                return m
            self.pushes.append(m)

    def login(self, uid, app=APP, token=None, **kw):
        fields = {"appid": app, "uid": uid}
        if token is not None:
            fields["token"] = token
        fields.update(kw)
        return self.call("login", **fields)

    def assert_silent(self, seconds):
        """Waits `seconds` for anything from the server (a pushed message, a
        close, EOF) and asserts nothing came; answers pings meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                m = self.recv(left)
            except socket.timeout:
                return
            raise AssertionError("expected silence, got %r" % (m,))

    def expect_close(self, timeout=10.0):
        """Reads until the server's close frame; returns (code, reason)."""
        try:
            while True:
                m = self.recv(timeout)
                self.pushes.append(m)
        except WsClosed as e:
            return e.code, e.reason


_token_cache = {}


def tokens(requests):
    """Builds tokens with Agora's npm builders (tests/blackbox/node/mktoken.js)."""
    key = json.dumps(requests, sort_keys=True)
    if key not in _token_cache:
        out = subprocess.run(["node", os.path.join(HERE, "node", "mktoken.js"), json.dumps(requests)],
                             check=True, capture_output=True, timeout=60)
        _token_cache[key] = json.loads(out.stdout)
    return _token_cache[key]


def token(uid, v="007", app=APP, cert=CERT, expire=3600, issue_ts=None):
    r = {"v": v, "appid": app, "cert": cert, "uid": uid, "expire": expire}
    if issue_ts is not None:
        r["issue_ts"] = issue_ts
    return tokens([r])[0]


# ---- Redis -----------------------------------------------------------------------------------------

REDIS_SERVER = "/usr/bin/redis-server"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RedisServer:
    """A real redis-server on a free loopback port, in its own directory."""

    def __init__(self, tmpdir, port=None, extra=(), password=None):
        self.dir = str(tmpdir)
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.extra = list(extra)
        self.password = password  # command() sends AUTH with it first
        self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self, timeout=10.0):
        assert os.access(REDIS_SERVER, os.X_OK), \
            "%s is missing: scripts/install-deps --test installs redis-server" % REDIS_SERVER
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", self.dir, "--daemonize", "no", "--logfile", os.path.join(self.dir, "redis.log")]
        if not any(a == "--appendonly" for a in self.extra):
            args += ["--appendonly", "no"]
        self.proc = subprocess.Popen(args + self.extra, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited with %s; see %s/redis.log"
                                     % (self.proc.returncode, self.dir))
            try:
                return self.command("PING") == "PONG"
            except OSError:
                return False
            except RuntimeError as e:  # -LOADING while it reads its AOF or RDB
                if str(e).startswith("LOADING"):
                    return False
                raise
        wait_until(up, timeout, what="redis-server to answer")
        return self

    def command(self, *args, timeout=5.0):
        """One command over a fresh connection (RESP); returns the decoded reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            f = s.makefile("rb")
            if self.password is not None:
                s.sendall(_resp_command(("AUTH", self.password)))
                _resp(f)
            s.sendall(_resp_command(args))
            return _resp(f)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)


def _resp_command(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def _resp(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise RuntimeError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [_resp(f) for _ in range(n)]
    raise OSError("bad RESP line %r" % line)
