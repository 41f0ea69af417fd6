"""Shared helpers of rtmd's benchmark scripts (bench/ws-hold, bench/rest-pull,
bench/fanout, bench/peer-rtt).

Runs the real build/rtmd with a generated config on 127.0.0.1:0, reads its
ready file, measures its memory from /proc, speaks the vendor REST API over
plain HTTP or HTTPS, drives build/bench/ws_swarm processes and merges their
latency histograms, and samples the CPU time of groups of processes. Standard
library only; run with /usr/bin/python3.
"""
import base64
import http.client
import ipaddress
import json
import os
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
BUILD = os.environ.get("RTMD_BUILD") or os.path.join(ROOT, "build")
RTMD_BIN = os.environ.get("RTMD_BIN") or os.path.join(BUILD, "rtmd")

CUSTOMER = "ck_bench"
SECRET = "bench-secret-0123456789abcdef"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def build(targets):
    """make -j2 the given targets (relative to the repo); fails loudly."""
    if os.environ.get("RTMD_NO_BUILD"):
        return
    r = subprocess.run(["make", "-j2", "--no-print-directory"] + targets, cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit("make failed:\n" + r.stdout[-4000:])


def make_cert(d):
    """A self-signed P-256 certificate and key in d (for rtmd and nginx alike)."""
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days",
                        "2", "-subj", "/CN=127.0.0.1"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        sys.exit("openssl req failed:\n" + r.stdout)
    os.chmod(key, 0o644)
    return cert, key


def parse_sources(text):
    """'127.0.0.2-127.0.0.5,127.0.0.9' -> a list of addresses."""
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = (ipaddress.IPv4Address(x.strip()) for x in part.split("-", 1))
            out.extend(str(ipaddress.IPv4Address(i)) for i in range(int(a), int(b) + 1))
        elif part.strip():
            out.append(str(ipaddress.IPv4Address(part.strip())))
    return out


def app_id(i):
    """The i-th benchmark App ID: 32 characters [0-9a-f]."""
    return "b%031x" % i


def basic_auth():
    return "Basic " + base64.b64encode(("%s:%s" % (CUSTOMER, SECRET)).encode()).decode()


def wait_until(cond, timeout, what, interval=0.01):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(interval)


# ---- the store: embedded (default) or a Redis for cluster mode ----------------------

sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))
from harness import RedisServer, free_port  # noqa: E402,F401  (the test suite's)

_redis_url = None  # set by open_store(): every Rtmd made afterwards is a node on it
_node_count = 0


def add_store_args(ap):
    """--redis / --redis-url / --appendfsync: run the bench on the redis backend."""
    ap.add_argument("--redis", action="store_true",
                    help="backend = redis: start a redis-server (AOF, --appendfsync) for the run "
                    "and make every rtmd a node on it")
    ap.add_argument("--redis-url", help="backend = redis on this running Redis instead")
    ap.add_argument("--appendfsync", default="always", choices=["always", "everysec", "no"],
                    help="the started redis-server's AOF policy (default always: an "
                    "acknowledged event survives kill -9 of Redis)")


def open_store(args, tmp_parent=None):
    """Starts what the store arguments ask for; returns the RedisServer to stop, or None."""
    global _redis_url
    if args.redis_url:
        _redis_url = args.redis_url
        return None
    if not args.redis:
        return None
    d = tempfile.mkdtemp(prefix="rtmd-bench-redis-", dir=tmp_parent)
    srv = RedisServer(d, extra=["--appendonly", "yes", "--appendfsync", args.appendfsync])
    srv.start()
    _redis_url = srv.url
    return srv


def close_store(srv):
    global _redis_url
    _redis_url = None
    if srv:
        srv.stop()
        subprocess.run(["rm", "-rf", srv.dir])


def store_line():
    """What the bench ran on, for the headers."""
    if not _redis_url:
        return "embedded store"
    return "redis backend on %s" % _redis_url


def redis_version(srv):
    if not srv:
        return ""
    info = srv.command("INFO", "server")
    for line in info.splitlines():
        if line.startswith("redis_version:"):
            return line.split(":", 1)[1].strip()
    return "?"


def commandstats(srv):
    """{command: calls} from INFO commandstats (EVALSHA, XADD, ... as Redis counts them:
    a script's own calls are counted too)."""
    out = {}
    for line in srv.command("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line[8:].partition(":")
            for kv in rest.split(","):
                k, _, v = kv.partition("=")
                if k == "calls":
                    out[name] = int(v)
    return out


def commands_between(before, after):
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) -
            before.get(k, 0) > 0}


def commands_line(diff, per, what):
    """'12.0 commands per login (evalsha 1.0, ...)' from a commandstats difference."""
    if not per:
        return ""
    total = sum(diff.values())
    top = sorted(diff.items(), key=lambda kv: -kv[1])[:6]
    return "%.2f Redis commands per %s (%s)" % (total / per, what, ", ".join(
        "%s %.2f" % (k, v / per) for k, v in top))


class Nodes:
    """Several rtmd nodes seen as one for memory and fd figures (bench/fanout, ws-hold)."""

    def __init__(self, nodes):
        self.nodes = nodes

    @property
    def pid(self):
        return self.nodes[0].pid

    @property
    def pids(self):
        return [n.pid for n in self.nodes]

    def memory(self):
        out = {}
        for n in self.nodes:
            for k, v in n.memory().items():
                out[k] = out.get(k, 0) + v
        return out

    def open_fds(self):
        return sum(n.open_fds() for n in self.nodes)

    def exited(self):
        """The first exit status of a node that exited, or None."""
        return next((n.proc.returncode for n in self.nodes if n.proc.poll() is not None), None)


class Rtmd:
    """One rtmd process with its own temporary data dir and config; with open_store()'s
    Redis, a node of its own (node_id bench-<n>) on that Redis."""

    def __init__(self, apps, limits=None, tls=False, sync="full", tls_cert=None, tls_key=None,
                 taskset=None, keep=False, tmp_parent=None):
        self.dir = tempfile.mkdtemp(prefix="rtmd-bench-", dir=tmp_parent)
        self.keep = keep
        self.apps = list(apps)
        self.tls = tls
        self.taskset = taskset
        self.conf = os.path.join(self.dir, "rtmd.conf")
        self.ready = os.path.join(self.dir, "ready")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "rtmd.log")
        lim = "".join("%s = %s\n" % kv for kv in (limits or {}).items())
        tls_lines = ""
        if tls_cert:
            tls_lines = "tls_cert = %s\ntls_key = %s\n" % (tls_cert, tls_key)
        # The customer's app list may span lines (CONFIG.md): 8 apps a line.
        app_lines = ",\n       ".join(", ".join(self.apps[i:i + 8])
                                     for i in range(0, len(self.apps), 8))
        store = ""
        if _redis_url:
            global _node_count
            _node_count += 1
            self.node_id = "bench-%d" % _node_count
            tls_lines += "node_id = %s\n" % self.node_id
            store = "backend = redis\nredis_url = %s\n" % _redis_url
        text = ("[server]\nlisten = 127.0.0.1:0@default\ntls = %s\n%sdata_dir = %s\n"
                "ready_file = %s\nlog_level = warn\n\n[store]\n%ssync = %s\n\n[limits]\n%s\n"
                "[customer:%s]\nsecret = %s\napps = %s\n"
                % ("on" if tls else "off", tls_lines, self.data, self.ready, store, sync, lim,
                   CUSTOMER, SECRET, app_lines))
        with open(self.conf, "w") as f:
            f.write(text)
        self.proc = None
        self.port = None

    def start(self, timeout=60):
        cmd = [getattr(self, "binary", None) or RTMD_BIN, "--config", self.conf]
        if self.taskset is not None:
            cmd = ["taskset", "-c", str(self.taskset)] + cmd
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("rtmd exited with %s:\n%s" % (self.proc.returncode,
                                                                 self.read_log()))
            if not os.path.exists(self.ready):
                return False
            with open(self.ready) as f:
                for line in f:
                    p = line.split()
                    if len(p) >= 3 and p[0] == "listen":
                        return int(p[2].rsplit(":", 1)[1])
            return False

        self.port = wait_until(ready, timeout, "rtmd's ready file")
        return self

    @property
    def pid(self):
        return self.proc.pid

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=120):
        """SIGTERM (sessions end with Logout, the store closes); returns the exit code."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                log("rtmd did not exit within %d s of SIGTERM; killed" % timeout)
        self.logf.close()
        return self.proc.returncode

    def cleanup(self):
        if self.keep:
            log("kept", self.dir)
            return
        subprocess.run(["rm", "-rf", self.dir])

    # -- memory ------------------------------------------------------------------
    def memory(self):
        return memory_of(self.pid)

    def open_fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def fd_limit(self):
        with open("/proc/%d/limits" % self.pid) as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        return None

    # -- REST --------------------------------------------------------------------
    def connection(self, timeout=30):
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)


def memory_of(pid):
    """VmRSS/VmHWM from status and Rss/Pss/Private from smaps_rollup, in KiB."""
    m = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                m[k] = int(v.split()[0])
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Rss", "Pss", "Pss_Anon", "Private_Clean", "Private_Dirty"):
                m[k] = int(v.split()[0])
    m["Private"] = m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)
    return m


def get_json(conn, path, headers=None):
    """One GET on a keep-alive connection: (status, parsed body or None, raw bytes)."""
    h = {"Authorization": basic_auth()}
    h.update(headers or {})
    conn.request("GET", path, headers=h)
    r = conn.getresponse()
    raw = r.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    return r.status, body, raw, r.getheaders()


def metrics(rtmd):
    """GET /metrics as {name{labels}: value}; {} when rtmd does not serve it.
    Asked with the customer's Basic auth, which /metrics takes on the main
    listeners."""
    try:
        conn = rtmd.connection(timeout=10)
        conn.request("GET", "/metrics", headers={"Authorization": basic_auth()})
        r = conn.getresponse()
        text = r.read().decode("utf-8", "replace")
        conn.close()
    except OSError:
        return {}
    out = {}
    if r.status != 200:
        return out
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def events_path(app):
    return "/dev/v2/project/%s/rtm/vendor/user_events" % app


def pull_all(rtmd, app, expect=None, idle_timeout=10.0, max_time=300.0):
    """Pulls user_events (1000 a pull) until `expect` events were read and a
    further pull is empty, or until nothing new arrived for idle_timeout
    seconds. Returns (events, pulls, answers_by_size)."""
    conn = rtmd.connection()
    events, pulls = [], 0
    last_new = time.monotonic()
    start = time.monotonic()
    while True:
        status, body, raw, _ = get_json(conn, events_path(app))
        pulls += 1
        if status == 429:
            time.sleep(0.1)
            continue
        if status != 200 or body is None:
            raise RuntimeError("pull: HTTP %d %r" % (status, raw[:200]))
        got = body["events"]
        events.extend(got)
        now = time.monotonic()
        if got:
            last_new = now
            continue
        if expect is not None and len(events) >= expect:
            break
        if now - last_new > idle_timeout or now - start > max_time:
            break
        time.sleep(0.05)
    conn.close()
    return events, pulls


def _cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v[:8]), idle


def busy_fraction(seconds=0.5):
    """Share of all CPUs busy over `seconds` (0..1), whoever uses them."""
    t0, i0 = _cpu_times()
    time.sleep(seconds)
    t1, i1 = _cpu_times()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def proc_jiffies(pids):
    """utime + stime (all threads) of these processes, in clock ticks."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


class ForeignCpu:
    """How much CPU processes other than ours used meanwhile, as a share of all CPUs:
    start(), run a child to completion, stop() -> 0..1. Ours: `pids` (read from /proc)
    plus every child reaped meanwhile (getrusage), and all softirq time (loopback TCP)."""

    def __init__(self, pids):
        self.pids = list(pids)

    @staticmethod
    def _stat():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return v[0] + v[1] + v[2] + v[7], sum(v)  # user nice system steal; everything

    @staticmethod
    def _children_ticks():
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (ru.ru_utime + ru.ru_stime) * os.sysconf("SC_CLK_TCK")

    def start(self):
        self.b0, self.t0 = self._stat()
        self.p0 = proc_jiffies(self.pids)
        self.c0 = self._children_ticks()

    def stop(self):
        b1, t1 = self._stat()
        ours = proc_jiffies(self.pids) - self.p0 + self._children_ticks() - self.c0
        return max(0.0, ((b1 - self.b0) - ours) / max(1, t1 - self.t0))


def wait_quiet(threshold=0.10, max_wait=120.0):
    """Waits (up to max_wait s) until the machine is idle before a measurement: other
    work on a 2-core machine moves every figure. Returns the busy share last seen."""
    deadline = time.monotonic() + max_wait
    while True:
        b = busy_fraction()
        if b <= threshold or time.monotonic() > deadline:
            return b
        time.sleep(1.0)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=0):
    if x is None:
        return "-"
    if digits == 0:
        return "{:,.0f}".format(x)
    return "{:,.{}f}".format(x, digits)


def machine_line():
    """One line about the machine: CPUs, kernel, memory, fd limit."""
    try:
        with open("/proc/cpuinfo") as f:
            model = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
    except OSError:
        model = []
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    load = open("/proc/loadavg").read().split()[:3]
    return "%d x %s, kernel %s, %d MiB RAM, open files %d/%d, load average %s" % (
        len(model), model[0] if model else "?", os.uname().release, mem, soft, hard,
        " ".join(load))


# ---- ws_swarm (bench/fanout, bench/peer-rtt) --------------------------------------

WS_SWARM = os.path.join(BUILD, "bench", "ws_swarm")


class Swarm:
    """One build/bench/ws_swarm process, driven through its stdin (see ws_swarm.c):
    READY after setup; `go RUN T0 RATE DUR` -> SENT (senders); `stop SENT GRACE_MS` ->
    RESULT (receivers); `quit` -> BYE."""

    def __init__(self, mode, port, count, uid_prefix, sources, app=None, extra=(),
                 taskset=None, nice=0):
        cmd = [WS_SWARM, "--mode", mode, "--port", str(port), "--app", app or app_id(0),
               "--count", str(count), "--sources", ",".join(sources), "--uid-prefix",
               uid_prefix, "--quiet"] + [str(x) for x in extra]
        if taskset is not None:
            cmd = ["taskset", "-c", str(taskset)] + cmd
        if nice:
            cmd = ["nice", "-n", str(nice)] + cmd
        self.count = count
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines = {}
        self.eof = False
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @property
    def pid(self):
        return self.proc.pid

    def _read(self):
        for line in self.proc.stdout:
            tag, _, rest = line.partition(" ")
            try:
                obj = json.loads(rest)
            except ValueError:
                obj = {"raw": rest}
            with self.cond:
                self.lines.setdefault(tag, []).append(obj)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait(self, tag, timeout):
        """The next line with this tag (in order), as a dict."""
        with self.cond:
            ok = self.cond.wait_for(lambda: self.lines.get(tag) or self.eof, timeout)
            if not ok or not self.lines.get(tag):
                err = self.proc.stderr.read() if self.proc.poll() is not None else "running"
                raise RuntimeError("ws_swarm: no %s line within %.0f s (stderr: %s)"
                                   % (tag, timeout, err))
            return self.lines[tag].pop(0)

    def send(self, line):
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def quit(self, timeout=120):
        """quit -> BYE; returns the BYE line (or None) and waits for the exit."""
        self.send("quit")
        bye = None
        try:
            bye = self.wait("BYE", timeout)
        except RuntimeError:
            pass
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return bye

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def hist_merge(parts):
    """Merges ws_swarm histograms ({"count","max_ns","hist":[[low_us,width_us,n],..]})."""
    buckets, count, max_ns = {}, 0, 0
    for h in parts:
        if not h:
            continue
        count += h["count"]
        max_ns = max(max_ns, h["max_ns"])
        for low, width, n in h["hist"]:
            key = (low, width)
            buckets[key] = buckets.get(key, 0) + n
    return {"count": count, "max_ns": max_ns, "hist": sorted([k[0], k[1], n]
                                                             for k, n in buckets.items())}


def hist_pct(h, p):
    """The p-quantile (0..1) of a merged histogram, in ms (bucket middle); None if empty."""
    if not h or not h["count"]:
        return None
    if p >= 1.0:
        return h["max_ns"] / 1e6
    rank = p * h["count"]
    cum = 0
    for low, width, n in h["hist"]:
        cum += n
        if cum >= rank:
            return min((low + width / 2.0) / 1000.0, h["max_ns"] / 1e6)
    return h["max_ns"] / 1e6


class CpuSampler:
    """Samples, every `interval` s, the CPU time (utime+stime, all threads) of named groups of
    processes and the machine's /proc/stat, so that the CPU use of any time window can be
    read afterwards: share(t_a, t_b) with CLOCK_MONOTONIC ns bounds."""

    def __init__(self, groups, interval=0.05):
        self.groups = groups  # name -> list of pids
        self.interval = interval
        self.samples = []
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _stat():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        # user nice system idle iowait irq softirq steal
        return {"idle": v[3] + v[4], "softirq": v[6] + v[5]}

    def _sample(self):
        s = {"t": time.monotonic_ns(), "stat": self._stat()}
        for name, pids in self.groups.items():
            s[name] = proc_jiffies(pids)
        self.samples.append(s)

    def _run(self):
        while not self.stop_ev.is_set():
            self._sample()
            self.stop_ev.wait(self.interval)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.thread.join()
        self._sample()

    def share(self, t_a, t_b):
        """{group: cores used, ..., "machine_busy": share of all CPUs, "softirq": share of all
        CPUs (irq + softirq), "window_s": the sampled window} between the samples nearest to
        t_a and t_b."""
        if len(self.samples) < 2:
            return {}
        a = min(self.samples, key=lambda s: abs(s["t"] - t_a))
        b = min(self.samples, key=lambda s: abs(s["t"] - t_b))
        if b["t"] <= a["t"]:
            return {}
        secs = (b["t"] - a["t"]) / 1e9
        tck = os.sysconf("SC_CLK_TCK")
        out = {"window_s": secs}
        for name in self.groups:
            out[name] = (b[name] - a[name]) / tck / secs
        # /proc/stat's idle time is exact, its user/system are sampled at ticks (and miss
        # short bursts on an otherwise idle CPU): measure busy as wall time less idle.
        cpus = os.cpu_count() or 1
        idle = (b["stat"]["idle"] - a["stat"]["idle"]) / tck
        out["machine_busy"] = max(0.0, 1.0 - idle / (secs * cpus))
        out["softirq"] = (b["stat"]["softirq"] - a["stat"]["softirq"]) / tck / (secs * cpus)
        return out


def wait_idle(pids, max_cores=0.03, hold=1.0, max_wait=600.0):
    """Waits until these processes together use at most max_cores for `hold` s in a row;
    returns the seconds waited."""
    t0 = time.monotonic()
    tck = os.sysconf("SC_CLK_TCK")
    quiet_since = None
    last = proc_jiffies(pids)
    while time.monotonic() - t0 < max_wait:
        time.sleep(0.25)
        now = proc_jiffies(pids)
        if (now - last) / tck / 0.25 <= max_cores:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= hold:
                break
        else:
            quiet_since = None
        last = now
    return time.monotonic() - t0


# ---- TLS handshakes (bench/tls-handshake, bench/tls-storm) ----------------------------

TLS_HANDSHAKE = os.path.join(BUILD, "bench", "tls_handshake")
HEALTHZ = '{"status":"ok"}'

TLS_NGINX_CONF = """worker_processes 1;
daemon off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    ssl_certificate %(cert)s;
    ssl_certificate_key %(key)s;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:%(port)d ssl;
        location = /healthz {
            default_type "application/json";
            return 200 '%(body)s';
        }
    }
}
"""


class HealthzNginx:
    """nginx (worker_processes 1, on CPU 0) serving GET /healthz as rtmd answers it, over
    TLS with the given certificate: the reference of bench/tls-handshake and bench/tls-storm."""

    def __init__(self, d, cert, key):
        self.dir = os.path.join(d, "nginx")
        os.makedirs(self.dir)
        self.port = free_port()
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(TLS_NGINX_CONF % {"dir": self.dir, "cert": cert, "key": key,
                                      "port": self.port, "body": HEALTHZ})
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", "nginx", "-p", self.dir, "-e",
             os.path.join(self.dir, "error.log"), "-c", os.path.join(self.dir, "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited: " + open(os.path.join(self.dir,
                                                                        "error.log")).read())
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_until(up, 20, "nginx")

    def pids(self):
        return [self.proc.pid] + children_of(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def tls_handshakes(port, mode, threads, duration, server_pids):
    """One build/bench/tls_handshake run on CPU 1 (mode full or resume): its RESULT,
    plus the server's CPU seconds meanwhile (server_cpu_s), handshakes per second of
    server CPU (per_cpu_s) and the server's busy share (server_busy)."""
    cmd = ["taskset", "-c", "1", TLS_HANDSHAKE, "--port", str(port), "--mode", mode,
           "--threads", str(threads), "--duration", str(duration)]
    j0 = proc_jiffies(server_pids)
    meter = ForeignCpu(server_pids)
    meter.start()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=duration + 60)
    foreign = meter.stop()
    j1 = proc_jiffies(server_pids)
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if not line:
        raise RuntimeError("tls_handshake failed: %s\n%s" % (" ".join(cmd), p.stdout))
    res = json.loads(line[0][7:])
    res["server_cpu_s"] = (j1 - j0) / os.sysconf("SC_CLK_TCK")
    res["per_cpu_s"] = res["completed"] / res["server_cpu_s"] if res["server_cpu_s"] else None
    res["server_busy"] = res["server_cpu_s"] / res["seconds"]
    res["foreign_cpu"] = foreign
    return res
