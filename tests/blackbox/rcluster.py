"""A real Redis Cluster on loopback for the black-box tests: redis-server
processes with cluster-enabled (harness.RedisServer, each with its own bus
port), joined by hand (CLUSTER MEET, ADDSLOTSRANGE, REPLICATE) so that a
chosen slot starts a master's range: `redis-cli --cluster reshard` moves the
lowest slots of a source first, so the test can move exactly the slot of
its app. Stopped at the end by the fixture that made it.
"""
import os
import subprocess
import time

from harness import RedisServer, free_port, wait_until

REDIS_CLI = "/usr/bin/redis-cli"
SLOTS = 16384


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xffff
    return crc


def slot_of(key):
    """Redis Cluster's hash slot of key (hash tags as Redis has them)."""
    k = key.encode() if isinstance(key, str) else key
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    return crc16(k) % SLOTS


def available():
    return os.access(REDIS_CLI, os.X_OK) and os.access("/usr/bin/redis-server", os.X_OK)


class RedisCluster:
    """masters x (1 + replicas) servers. first_slot: the slot that starts
    the second master's range (the first master gets the slots below it and
    more, the third the rest)."""

    def __init__(self, tmpdir, masters=3, replicas=0, first_slot=0, node_timeout_ms=1000):
        assert masters == 3
        self.tmpdir = str(tmpdir)
        self.n_masters, self.n_replicas = masters, replicas
        self.first_slot = first_slot
        self.node_timeout_ms = node_timeout_ms
        self.servers = []

    # -- life ---------------------------------------------------------------------------------
    def start(self):
        n = self.n_masters * (1 + self.n_replicas)
        for i in range(n):
            bus = free_port()
            s = RedisServer(os.path.join(self.tmpdir, "rc%d" % i), extra=[
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(bus), "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-require-full-coverage", "no"])
            s.bus_port = bus
            self.servers.append(s.start())
        masters = self.servers[:self.n_masters]
        for i, m in enumerate(masters):
            m.command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
        for i, ranges in enumerate(self._layout()):
            args = []
            for lo, hi in ranges:
                args += [lo, hi]
            masters[i].command("CLUSTER", "ADDSLOTSRANGE", *args)
        first = self.servers[0]
        for s in self.servers[1:]:
            first.command("CLUSTER", "MEET", "127.0.0.1", s.port, s.bus_port)
        wait_until(lambda: all(len(self.nodes(s)) == n for s in self.servers), 20,
                   interval=0.05, what="every node to know every other")
        for i, s in enumerate(self.servers[self.n_masters:]):
            m = masters[i % self.n_masters]
            wait_until(lambda: self._try(s, "CLUSTER", "REPLICATE", self.id(m)) == "OK", 20,
                       interval=0.1, what="a replica to attach")
        self.wait_ok()
        return self

    def _try(self, s, *args):
        try:
            return s.command(*args)
        except RuntimeError:
            return None

    def _layout(self):
        """Slot ranges per master: the second starts at first_slot."""
        size = SLOTS // 3 + 1
        lo = self.first_slot
        hi = min(lo + size - 1, SLOTS - 1)
        rest = [x for x in range(SLOTS) if x < lo or x > hi]
        half = len(rest) // 2

        def ranges(xs):
            out = []
            for x in xs:
                if out and out[-1][1] == x - 1:
                    out[-1][1] = x
                else:
                    out.append([x, x])
            return [tuple(r) for r in out]
        return [ranges(rest[:half]), [(lo, hi)], ranges(rest[half:])]

    def stop(self):
        for s in self.servers:
            s.resume()
            s.stop()

    @property
    def url(self):
        """Every master as a seed."""
        return ", ".join("redis://127.0.0.1:%d" % s.port for s in self.servers[:self.n_masters])

    # -- topology -------------------------------------------------------------------------------
    def alive(self):
        return [s for s in self.servers if s.proc and s.proc.poll() is None]

    def nodes(self, via=None):
        """CLUSTER NODES as a list of dicts (id, port, flags, master, slots)."""
        for s in ([via] if via else self.alive()):
            try:
                text = s.command("CLUSTER", "NODES")
            except (OSError, RuntimeError):
                continue
            out = []
            for line in text.splitlines():
                f = line.split()
                if len(f) < 8:
                    continue
                slots = []
                for r in f[8:]:
                    if r.startswith("["):
                        continue
                    a, _, b = r.partition("-")
                    slots.append((int(a), int(b or a)))
                out.append({"id": f[0], "port": int(f[1].split("@")[0].rsplit(":", 1)[1]),
                            "flags": f[2].split(","), "master": f[3], "slots": slots})
            return out
        return []

    def id(self, server):
        return server.command("CLUSTER", "MYID")

    def server(self, port):
        return next(s for s in self.servers if s.port == port)

    def master_of(self, slot):
        for n in self.nodes():
            if "master" in n["flags"] and "fail" not in n["flags"] and any(
                    lo <= slot <= hi for lo, hi in n["slots"]):
                return self.server(n["port"])
        raise AssertionError("no master serves slot %d" % slot)

    def replica_of(self, master):
        mid = self.id(master)
        for n in self.nodes():
            if n["master"] == mid and "slave" in n["flags"]:
                return self.server(n["port"])
        raise AssertionError("no replica of %d" % master.port)

    def ok(self):
        try:
            for s in self.alive():
                info = s.command("CLUSTER", "INFO")
                if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
                    return False
                repl = s.command("INFO", "replication")
                if "role:slave" in repl and "master_link_status:up" not in repl:
                    return False
            return not any("fail" in n["flags"] for n in self.nodes())
        except (OSError, RuntimeError):
            return False

    def wait_ok(self, timeout=30):
        wait_until(self.ok, timeout, interval=0.1, what="the cluster to be ok")

    # -- changes --------------------------------------------------------------------------------
    def reshard_lowest(self, source, target, pipeline=10):
        """redis-cli --cluster reshard: source's lowest slot to target, its
        keys `pipeline` per MIGRATE. Returns the Popen (the caller waits: it
        runs under load)."""
        return subprocess.Popen(
            [REDIS_CLI, "--cluster", "reshard", "127.0.0.1:%d" % source.port,
             "--cluster-from", self.id(source), "--cluster-to", self.id(target),
             "--cluster-slots", "1", "--cluster-pipeline", str(pipeline), "--cluster-yes"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def failover(self, master, timeout=20):
        """CLUSTER FAILOVER on master's replica; waits until it is master."""
        r = self.replica_of(master)
        assert r.command("CLUSTER", "FAILOVER") == "OK"
        wait_until(lambda: "master" in r.command("ROLE")[0], timeout, interval=0.05,
                   what="the replica to take over")
        return r
