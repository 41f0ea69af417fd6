"""A real Redis Cluster for the black-box tests: redis-server processes with
cluster-enabled on free loopback ports (each with its own directory and bus
port), joined by `redis-cli --cluster create`, with helpers to move slots
(whole, or step by step to see ASK and MOVED), fail over, kill, pause and
restart nodes. Every wait polls with a deadline.

    c = RedisCluster(tmp_path / "cluster", masters=3, replicas=1).start()
    c.url                  # "redis://127.0.0.1:P1, redis://127.0.0.1:P2, ..." (the masters)
    c.slot_of_app(APP)     # the slot of the app's keys (hash tag {APPID})
    c.move_slot(slot, c.masters()[1])
    c.failover(c.owner(slot))   # a replica takes over (CLUSTER FAILOVER)
    c.kill_master(c.owner(slot))  # kill -9; waits for its replica to be promoted
    c.stop()

With first_slot the cluster is joined by hand instead (CLUSTER MEET,
ADDSLOTSRANGE, REPLICATE) so that first_slot starts the second master's
range: `redis-cli --cluster reshard` moves a source's lowest slots first, so
reshard_lowest() moves exactly that slot (a test puts its app there).
"""
import os
import shutil
import socket
import subprocess
import time

from harness import RedisServer, wait_until

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
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
    """Redis Cluster's hash slot of key (hash tags as Redis has them), for
    when no cluster runs yet (keyslot() asks one)."""
    k = key.encode() if isinstance(key, str) else key
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    return crc16(k) % SLOTS


def _free_port_pair():
    """Two free loopback ports (client, cluster bus)."""
    socks = []
    try:
        for _ in range(2):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return tuple(s.getsockname()[1] for s in socks)
    finally:
        for s in socks:
            s.close()


class ClusterNode(RedisServer):
    """One redis-server of the cluster. `id` is its cluster node ID."""

    def __init__(self, tmpdir, node_timeout_ms):
        port, bus = _free_port_pair()
        RedisServer.__init__(self, tmpdir, port=port, extra=[
            "--cluster-enabled", "yes", "--cluster-port", str(bus),
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            # a replica promotes itself whatever its replication lag
            "--cluster-replica-validity-factor", "0",
            # one master's slots gone must not stop the others (tests look at both)
            "--cluster-require-full-coverage", "no",
            # a replica syncs at once (not after 5 s waiting for others)
            "--repl-diskless-sync-delay", "0",
            "--appendonly", "no"])
        self.bus_port = bus
        self.id = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def info(self, section="cluster"):
        """INFO (or CLUSTER INFO for "cluster") as a dict."""
        text = self.command("CLUSTER", "INFO") if section == "cluster" else self.command("INFO", section)
        out = {}
        for line in text.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                out[k] = v.strip()
        return out

    def __repr__(self):
        return "<ClusterNode %s %s>" % (self.addr, (self.id or "?")[:8])


class RedisCluster:
    def __init__(self, tmpdir, masters=3, replicas=0, node_timeout_ms=1000, first_slot=None):
        assert masters >= 3, "redis-cli --cluster create needs 3 masters"
        assert first_slot is None or masters == 3
        self.first_slot = first_slot
        self.dir = str(tmpdir)
        os.makedirs(self.dir, exist_ok=True)
        self.n_masters = masters
        self.n_replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes = [ClusterNode(os.path.join(self.dir, "n%d" % i), node_timeout_ms)
                      for i in range(masters * (1 + replicas))]
        self._seeds = []
        self._last_meet = time.monotonic()

    # -- life ------------------------------------------------------------------------------------
    def start(self, timeout=30.0):
        try:
            for n in self.nodes:
                n.start()
            if self.first_slot is None:
                self._create(timeout)
            else:
                self._join_by_hand(timeout)
            self.wait_ok(timeout)
            for n in self.nodes:
                n.id = n.command("CLUSTER", "MYID")
            wait_until(lambda: all(n.info("replication").get("master_link_status", "up") == "up"
                                   for n in self.nodes), timeout, interval=0.05,
                       what="every replica in sync with its master")
            self._seeds = [n for n in self.nodes if n.id in {m["id"] for m in self.topology()
                                                             if m["role"] == "master"}]
            return self
        except BaseException:
            self.stop()
            raise

    def _create(self, timeout):
        out = subprocess.run(
            [REDIS_CLI, "--cluster", "create"] + [n.addr for n in self.nodes] +
            ["--cluster-replicas", str(self.n_replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise AssertionError("redis-cli --cluster create failed:\n%s%s" % (out.stdout, out.stderr))

    def _join_by_hand(self, timeout):
        masters = self.nodes[:self.n_masters]
        for i, m in enumerate(masters):
            m.command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
        for m, ranges in zip(masters, self._layout()):
            m.command("CLUSTER", "ADDSLOTSRANGE", *[x for r in ranges for x in r])
        for n in self.nodes[1:]:
            self.nodes[0].command("CLUSTER", "MEET", "127.0.0.1", n.port, n.bus_port)
        try:
            wait_until(self._met_again, timeout, interval=0.05, what="every node to know every other")
        except AssertionError as e:
            views = []
            for n in self.nodes:
                try:
                    views.append("%r:\n%s" % (n, n.command("CLUSTER", "NODES")))
                except (OSError, RuntimeError) as err:
                    views.append("%r: %s" % (n, err))
            raise AssertionError("%s; each node's CLUSTER NODES:\n%s" % (e, "\n".join(views)))
        for i, n in enumerate(self.nodes[self.n_masters:]):
            mid = masters[i % self.n_masters].command("CLUSTER", "MYID")

            def replicated():
                try:
                    return n.command("CLUSTER", "REPLICATE", mid) == "OK"
                except RuntimeError:  # the master is not known as one yet
                    return False
            wait_until(replicated, timeout, interval=0.1, what="a replica to attach")

    def _met_again(self):
        """True when every node knows every other (handshakes done). Else, at
        most once a second, MEETs again what a node does not know: Redis drops
        a handshake that takes longer than the node timeout (1 s here, easily
        reached on a loaded machine) and never retries it by itself."""
        missing = []
        for n in self.nodes:
            known = {m["addr"] for m in self.topology(via=n) if "handshake" not in m["flags"]}
            missing += [(n, o) for o in self.nodes if o is not n and o.addr not in known]
        if not missing:
            return True
        now = time.monotonic()
        if now - self._last_meet >= 1.0:
            self._last_meet = now
            for n, o in missing:
                n.command("CLUSTER", "MEET", "127.0.0.1", o.port, o.bus_port)
        return False

    def _layout(self):
        """Slot ranges per master: the second's starts at first_slot."""
        lo = self.first_slot
        hi = min(lo + SLOTS // 3, SLOTS - 1)
        rest = [x for x in range(SLOTS) if x < lo or x > hi]
        half = len(rest) // 2

        def ranges(xs):
            out = []
            for x in xs:
                if out and out[-1][1] == x - 1:
                    out[-1][1] = x
                else:
                    out.append([x, x])
            return out
        return [ranges(rest[:half]), [[lo, hi]], ranges(rest[half:])]

    def stop(self):
        """kill -9 of every node: nothing of a test cluster is kept (a SIGTERM
        makes a master wait for its replicas, seconds)."""
        for n in self.nodes:
            if n.alive():
                n.kill9()

    @property
    def seeds(self):
        """The masters at creation, as redis:// URLs."""
        return ["redis://%s" % n.addr for n in self._seeds]

    @property
    def url(self):
        """redis_url for rtmd: every master at creation, comma separated."""
        return ", ".join(self.seeds)

    # -- state -----------------------------------------------------------------------------------
    def live(self):
        return [n for n in self.nodes if n.alive()]

    def any_node(self):
        for n in self.live():
            try:
                n.command("PING", timeout=1.0)
                return n
            except (OSError, RuntimeError):
                continue
        raise AssertionError("no node of the cluster answers")

    def topology(self, via=None):
        """CLUSTER NODES as dicts: id, addr, port, role, master (id or None),
        slots (list of (first, last)), flags (set)."""
        text = (via or self.any_node()).command("CLUSTER", "NODES")
        out = []
        for line in text.splitlines():
            f = line.split()
            if len(f) < 8:
                continue
            flags = set(f[2].split(","))
            addr = f[1].split("@")[0]
            slots = []
            for s in f[8:]:
                if s.startswith("["):
                    continue  # a slot being migrated or imported
                a, _, b = s.partition("-")
                slots.append((int(a), int(b or a)))
            out.append({"id": f[0], "addr": addr, "port": int(addr.rsplit(":", 1)[1]),
                        "role": "master" if "master" in flags else "replica",
                        "master": None if f[3] == "-" else f[3], "slots": slots, "flags": flags})
        return out

    def node(self, node_id):
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def masters(self):
        """Live masters that own slots, in port order."""
        t = self.topology()
        ids = {m["id"] for m in t if m["role"] == "master" and m["slots"] and "fail" not in m["flags"]}
        return sorted((n for n in self.live() if n.id in ids), key=lambda n: n.port)

    def replicas_of(self, master):
        return [self.node(m["id"]) for m in self.topology()
                if m["master"] == master.id and "fail" not in m["flags"] and self.node(m["id"]).alive()]

    def keyslot(self, key):
        return self.any_node().command("CLUSTER", "KEYSLOT", key)

    def slot_of_app(self, appid):
        """The slot of every key of one app (they carry the hash tag {APPID})."""
        return self.keyslot("rtmd:{%s}:x" % appid)

    def owner(self, slot):
        """The live master serving slot."""
        for m in self.topology():
            if m["role"] == "master" and "fail" not in m["flags"] and \
                    any(a <= slot <= b for a, b in m["slots"]):
                return self.node(m["id"])
        raise AssertionError("no master serves slot %d" % slot)

    def wait_ok(self, timeout=30.0):
        """Until every live node says cluster_state:ok, knows every live node,
        sees all slots served, and all agree on who serves them."""
        def ok():
            try:
                live = self.live()
                views = []
                for n in live:
                    i = n.info()
                    if i.get("cluster_state") != "ok" or i.get("cluster_slots_ok") != str(SLOTS):
                        return False
                    t = self.topology(via=n)
                    views.append(sorted((m["addr"], tuple(m["slots"])) for m in t
                                        if m["role"] == "master" and m["slots"]
                                        and "fail" not in m["flags"]))
                    if sum(1 for m in t if "fail" not in m["flags"]) < len(live):
                        return False
                return all(v == views[0] for v in views)
            except (OSError, RuntimeError):
                return False
        wait_until(ok, timeout, interval=0.05, what="cluster_state:ok on every node, all agreeing")
        return self

    # -- slots -----------------------------------------------------------------------------------
    def begin_migration(self, slot, dst):
        """Marks slot migrating from its owner to dst (keys not moved yet):
        clients get ASK for keys already moved, MOVED after finish_migration."""
        src = self.owner(slot)
        assert src is not dst, "slot %d is already on %r" % (slot, dst)
        assert dst.command("CLUSTER", "SETSLOT", slot, "IMPORTING", src.id) == "OK"
        assert src.command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst.id) == "OK"
        return src

    def migrate_keys(self, slot, src, dst, count=100):
        """Moves up to count keys of slot from src to dst; returns how many."""
        keys = src.command("CLUSTER", "GETKEYSINSLOT", slot, count)
        if keys:
            r = src.command("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "REPLACE", "KEYS", *keys)
            assert r in ("OK", "NOKEY"), r
        return len(keys)

    def finish_migration(self, slot, src, dst):
        while self.migrate_keys(slot, src, dst):
            pass
        # the destination first, then the source, then everyone (as redis-cli does)
        for n in [dst, src] + [m for m in self.masters() if m not in (src, dst)]:
            assert n.command("CLUSTER", "SETSLOT", slot, "NODE", dst.id) == "OK"
        self.wait_ok()

    def move_slot(self, slot, dst):
        """Moves one slot with its keys to dst (a master)."""
        src = self.begin_migration(slot, dst)
        self.finish_migration(slot, src, dst)

    def reshard(self, n_slots, src, dst, timeout=60.0):
        """Moves n_slots slots from src to dst with redis-cli --cluster reshard."""
        out = subprocess.run(
            [REDIS_CLI, "--cluster", "reshard", src.addr, "--cluster-from", src.id,
             "--cluster-to", dst.id, "--cluster-slots", str(n_slots), "--cluster-yes"],
            capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise AssertionError("reshard failed:\n%s%s" % (out.stdout, out.stderr))
        self.wait_ok()

    def reshard_lowest(self, src, dst, pipeline=10):
        """redis-cli --cluster reshard of src's lowest slot to dst, its keys
        `pipeline` per MIGRATE; returns the Popen (the caller waits: it runs
        under load)."""
        return subprocess.Popen(
            [REDIS_CLI, "--cluster", "reshard", src.addr, "--cluster-from", src.id,
             "--cluster-to", dst.id, "--cluster-slots", "1", "--cluster-pipeline", str(pipeline),
             "--cluster-yes"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    # -- failures --------------------------------------------------------------------------------
    def failover(self, master, timeout=30.0):
        """A replica of master takes over (CLUSTER FAILOVER: no writes lost);
        returns the new master."""
        reps = self.replicas_of(master)
        assert reps, "%r has no replica" % (master,)
        new = reps[0]
        assert new.command("CLUSTER", "FAILOVER") == "OK"
        wait_until(lambda: new.info("replication").get("role") == "master", timeout,
                   what="%r to become master" % (new,))
        self.wait_ok(timeout)
        return new

    def kill_master(self, master, timeout=30.0):
        """kill -9 of a master; waits until one of its replicas serves its
        slots (after cluster-node-timeout) and returns it."""
        reps = self.replicas_of(master)
        assert reps, "%r has no replica" % (master,)
        master.kill9()
        wait_until(lambda: any(r.info("replication").get("role") == "master" for r in reps),
                   timeout, interval=0.05, what="a replica of %r promoted" % (master,))
        self.wait_ok(timeout)
        return next(r for r in reps if r.info("replication").get("role") == "master")

    def kill(self, node):
        node.kill9()

    def pause(self, node):
        node.pause()

    def resume(self, node):
        node.resume()

    def restart(self, node, timeout=30.0):
        """Starts a killed or stopped node again (its nodes.conf keeps its
        identity; it rejoins, as a replica if it was failed over)."""
        assert not node.alive()
        node.start()
        self.wait_ok(timeout)
        return node

    def flushall(self):
        for n in self.masters():
            n.command("FLUSHALL")

    def dbsize(self):
        return sum(n.command("DBSIZE") for n in self.masters())

    def wait_replicated(self, timeout=10.0):
        """Until every replica has acknowledged all its master wrote."""
        def caught_up():
            for m in self.masters():
                info = m.info("replication")
                want = int(info["master_repl_offset"])
                for k, v in info.items():
                    if k.startswith("slave") and k[5:].isdigit():
                        f = dict(x.split("=", 1) for x in v.split(","))
                        if f.get("state") != "online" or int(f["offset"]) < want:
                            return False
            return True
        wait_until(caught_up, timeout, interval=0.02, what="replicas caught up")
