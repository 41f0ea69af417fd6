"""Cluster mode (backend = redis): several rtmd nodes on one real redis-server
are one service. Sessions across nodes (one per app+uid, takeovers fenced),
dead nodes' sessions ended by a survivor, a node restarting under its id,
pulls with a deadline against a stalled Redis, one event log per app. Then
the same on a real Redis Cluster (redis_cluster.py): two nodes, a live reshard of
the app's slot under load, a failover under load and a master killed.
"""
import json
import os
import signal
import threading
import time

import pytest

from redis_cluster import RedisCluster, slot_of
from harness import APP_NOCERT, basic, now_ms, wait_until
from msgutil import Events, utypes, ctypes

FAST = {"events_qps": 1000000, "history_qps": 1000000, "send_qps": 1000000}


def node(make_rtmd, redis_server, name, store=None, limits=None, regions=("default", "eu")):
    st = {"backend": "redis", "redis_url": redis_server.url, "redis_timeout_ms": 500,
          "node_timeout_s": 2}
    st.update(store or {})
    return make_rtmd(name=name, store=st, server={"node_id": name},
                     limits=dict(FAST, **(limits or {})), regions=regions)


def login(r, uid, channels=()):
    ws = r.ws()
    m = ws.login(uid, app=APP_NOCERT)
    assert m.get("ok") is True, m
    for ch in channels:
        j = ws.call("join", channel=ch)
        assert j.get("ok") is True, j
    return ws


def alternates(types_by_uid, first, second):
    for uid, types in types_by_uid.items():
        want = [first, second] * (len(types) // 2 + 1)
        assert types == want[:len(types)], (uid, types)


def by_uid(events):
    out = {}
    for e in events:
        out.setdefault(e["user_id"], []).append(e["type"])
    return out


def test_one_event_log_per_app_whichever_node_records(make_rtmd, redis_server):
    a = node(make_rtmd, redis_server, "na")
    b = node(make_rtmd, redis_server, "nb")
    wa = login(a, "alice", ["room"])
    wb = login(b, "bob", ["room"])
    ev = Events(a, "user", APP_NOCERT)
    ev.wait_for(lambda got: len(got) >= 2)
    assert sorted(utypes(ev.got)) == [("Login", "alice"), ("Login", "bob")]
    # read once per region, whichever node the pull comes in on
    assert Events(b, "user", APP_NOCERT).pull() == []
    eu = b.get("/dev/v2/project/%s/rtm/vendor/user_events" % APP_NOCERT,
               headers={"Authorization": basic()}, region="eu")
    assert len(json.loads(eu[2])["events"]) == 2
    wa.close()
    wb.close()


def test_a_login_on_another_node_takes_the_session_over_and_is_recorded_once(make_rtmd,
                                                                            redis_server):
    a = node(make_rtmd, redis_server, "na")
    b = node(make_rtmd, redis_server, "nb")
    wa = login(a, "alice", ["room", "hall"])
    wb = login(b, "alice")
    # the old client is told and closed
    assert wa.recv(5) == {"op": "kicked", "reason": "remote_login"}
    u, c = Events(b, "user", APP_NOCERT), Events(b, "channel", APP_NOCERT)
    u.wait_for(lambda got: len(got) >= 3)
    c.wait_for(lambda got: len(got) >= 4)
    # the old session's Leaves and Logout come before the new Login
    assert utypes(u.got) == [("Login", "alice"), ("Logout", "alice"), ("Login", "alice")]
    assert sorted(ctypes(c.got)[:2]) == [("Join", "alice", "hall"), ("Join", "alice", "room")]
    assert sorted(ctypes(c.got)[2:]) == [("Leave", "alice", "hall"), ("Leave", "alice", "room")]
    # the old node records nothing more for it (fenced), the new one ends it once
    wa.close()
    wb.call("logout")
    u.wait_for(lambda got: len(got) >= 4)
    time.sleep(0.3)
    u.pull()
    assert utypes(u.got) == [("Login", "alice"), ("Logout", "alice"), ("Login", "alice"),
                             ("Logout", "alice")]


def test_a_dead_node_s_sessions_are_ended_by_a_survivor(make_rtmd, redis_server):
    a = node(make_rtmd, redis_server, "na")
    b = node(make_rtmd, redis_server, "nb")
    clients = [login(a, "u%d" % i, ["room"]) for i in range(5)]
    u = Events(b, "user", APP_NOCERT)
    u.wait_for(lambda got: len(got) >= 5)
    t0 = time.monotonic()
    a.kill9()
    u.wait_for(lambda got: len(got) >= 10, timeout=15)
    took = time.monotonic() - t0
    assert took < 2 + 5, took  # node_timeout_s + a few seconds
    alternates(by_uid(u.got), "Login", "Logout")
    c = Events(b, "channel", APP_NOCERT)
    c.wait_for(lambda got: len(got) >= 10)
    alternates({k: v for k, v in by_uid(c.got).items()}, "Join", "Leave")
    for w in clients:
        w.close()


def test_members_elsewhere_are_told_of_a_dead_node_s_members_leaving(make_rtmd, redis_server):
    """No node records the Leaves of a dead node's members but the survivor that ends its
    sessions: it also tells every node's members of the channels (member_left), as a leave would.
    And so does a node that ends its previous run's sessions as it starts again."""
    from msgutil import member, push
    a = node(make_rtmd, redis_server, "na")
    b = node(make_rtmd, redis_server, "nb")
    alice = login(b, "alice", ["room", "hall"])
    bob = login(a, "bob", ["room"])
    carol = login(a, "carol", ["hall"])
    assert push(alice) == member("member_joined", "room", "bob")
    assert push(alice) == member("member_joined", "hall", "carol")
    a.kill9()
    got = sorted(json.dumps(push(alice, timeout=15), sort_keys=True) for _ in range(2))
    assert got == sorted(json.dumps(m, sort_keys=True) for m in (
        member("member_left", "room", "bob"), member("member_left", "hall", "carol")))
    a.start()  # na again (its previous run's sessions were ended: nothing more)
    dave = login(a, "dave", ["room"])
    assert push(alice) == member("member_joined", "room", "dave")
    a.kill9()
    a.start()  # before node_timeout_s: na ends dave's session itself
    assert push(alice, timeout=10) == member("member_left", "room", "dave")
    alice.close()
    for w in (bob, carol, dave):
        w.close_socket()


def test_a_node_restarting_under_its_id_ends_its_previous_sessions(make_rtmd, redis_server):
    a = node(make_rtmd, redis_server, "na")
    b = node(make_rtmd, redis_server, "nb")
    login(a, "alice", ["room"])
    u = Events(b, "user", APP_NOCERT)
    u.wait_for(lambda got: len(got) >= 1)
    a.kill9()
    a.start()  # same node_id, before node_timeout_s passed
    u.wait_for(lambda got: len(got) >= 2, timeout=5)
    assert utypes(u.got) == [("Login", "alice"), ("Logout", "alice")]
    w = login(a, "alice")
    u.wait_for(lambda got: len(got) >= 3)
    w.close()


def test_a_pull_answered_408_while_redis_is_stalled_consumes_nothing(make_rtmd, redis_server):
    a = node(make_rtmd, redis_server, "na")
    w = login(a, "alice")
    path = "/dev/v2/project/%s/rtm/vendor/user_events" % APP_NOCERT
    redis_server.pause()
    try:
        t0 = time.monotonic()
        st, hd, body = a.get(path, headers={"Authorization": basic()})
        took = time.monotonic() - t0
        assert st == 408, (st, body)
        assert took < 0.5 + 1.0, took
        # /healthz says so while Redis does not answer
        wait_until(lambda: a.get("/healthz")[0] == 503, 10, what="healthz 503")
    finally:
        redis_server.resume()
    # the stalled Redis ran the queued pull when it resumed: it did nothing
    wait_until(lambda: a.get("/healthz")[0] == 200, 10, what="healthz 200")
    st, hd, body = a.get(path, headers={"Authorization": basic()})
    assert st == 200, body
    assert [(e["type"], e["user_id"]) for e in json.loads(body)["events"]] == [("Login", "alice")]
    w.close()


def test_rtmd_reconnects_after_redis_restarts(make_rtmd, redis_server, tmp_path):
    a = node(make_rtmd, redis_server, "na")
    w = login(a, "alice")
    redis_server.kill9()
    # a login while Redis is gone is refused, not hung
    ws = a.ws()
    m = ws.login("bob", app=APP_NOCERT)
    assert m["ok"] is False and m["error"] == "unavailable", m
    ws.close()
    redis_server.start()
    wait_until(lambda: a.get("/healthz")[0] == 200, 15, what="rtmd to reconnect")
    w2 = login(a, "carol")
    w2.close()
    w.close()


# ---- messages across nodes ------------------------------------------------------------------------

def test_peer_messages_reach_the_receiver_on_another_node(make_rtmd, redis_server):
    from msgutil import assert_peer_push, push, send_peer, assert_answer
    a = node(make_rtmd, redis_server, "na")
    b = node(make_rtmd, redis_server, "nb")
    alice = login(a, "alice")
    bob = login(b, "bob")
    r = alice.call("peer", to="bob", payload="hi bob")
    assert r == {"op": "reply", "id": r["id"], "ok": True, "state": "delivered"}, r
    assert_peer_push(push(bob), "alice", "hi bob")
    r = alice.call("peer", to="nobody", payload="x")
    assert r["state"] == "offline", r
    # REST on either node
    assert_answer(send_peer(a, "backend", "bob", "from a"), "message_sent")
    assert_peer_push(push(bob), "backend", "from a")
    assert_answer(send_peer(b, "backend", "alice", "from b"), "message_sent")
    assert_peer_push(push(alice), "backend", "from b")
    assert_answer(send_peer(a, "backend", "nobody", "x"), "message_offline")


def test_wait_for_ack_with_the_ack_arriving_on_another_node(make_rtmd, redis_server):
    from msgutil import assert_answer, assert_reply_ok, peer_body, peer_path, push, readable
    from harness import Http
    a = node(make_rtmd, redis_server, "na")
    b = node(make_rtmd, redis_server, "nb")
    bob = login(b, "bob")
    h = a.http()
    h.send(Http.build("POST", peer_path("backend", wait="true"), {"Authorization": basic()},
                      json.dumps(peer_body("bob", "ack me"))))
    m = push(bob)
    assert m["payload"] == "ack me"
    assert not readable(h.sock, 0.3), "answered before the ack"
    assert_reply_ok(bob.call("ack", mid=m["mid"]))
    assert_answer(h.read_response(), "message_delivered")
    h.close()


def test_channel_messages_and_member_events_reach_members_on_every_node(make_rtmd, redis_server):
    from msgutil import assert_channel_push, member, push, pushes, send_channel, assert_answer
    a = node(make_rtmd, redis_server, "na")
    b = node(make_rtmd, redis_server, "nb")
    alice = login(a, "alice", ["room"])
    bob = login(b, "bob", ["room"])
    assert push(alice) == member("member_joined", "room", "bob")
    carol = login(a, "carol", ["room"])
    assert push(alice) == member("member_joined", "room", "carol")
    assert push(bob) == member("member_joined", "room", "carol")
    r = alice.call("publish", channel="room", payload="hello room")
    assert r["ok"] is True, r
    assert_channel_push(push(bob), "room", "alice", "hello room")
    assert_channel_push(push(carol), "room", "alice", "hello room")
    assert_answer(send_channel(b, "backend", "room", "from the backend"), "message_sent")
    for w in (alice, bob, carol):
        assert_channel_push(push(w), "room", "backend", "from the backend")
    bob.call("leave", channel="room")
    assert push(alice) == member("member_left", "room", "bob")
    assert push(carol) == member("member_left", "room", "bob")
    alice.close()
    carol.close()


def test_nodes_on_one_machine_share_their_port_with_reuse_port(make_rtmd, redis_server):
    from harness import free_port
    port = free_port()
    st = {"backend": "redis", "redis_url": redis_server.url}
    # the shared port is region default's; each node's own "eu" listener tells them apart
    a = make_rtmd(name="na", store=st, server={"node_id": "na", "reuse_port": "on"}, port=port)
    b = make_rtmd(name="nb", store=st, server={"node_id": "nb", "reuse_port": "on"}, port=port)
    assert a.port() == b.port() == port
    # the kernel spreads new connections over both; they are one service
    clients = [login(a, "u%d" % i) for i in range(40)]
    u = Events(a, "user", APP_NOCERT)
    u.wait_for(lambda got: len(got) >= 40)
    assert sorted(e["user_id"] for e in u.got) == sorted("u%d" % i for i in range(40))
    sessions = [r.metrics(region="eu").get("rtmd_sessions", 0) for r in (a, b)]
    assert sum(sessions) == 40 and min(sessions) > 0, sessions
    for c in clients:
        c.close()


def test_reuse_port_is_refused_with_the_embedded_store(tmp_path):
    import subprocess
    from harness import RTMD_BIN, Rtmd
    r = Rtmd(tmp_path, server={"reuse_port": "on"})
    p = subprocess.run([RTMD_BIN, "--config", r.conf_path], capture_output=True, timeout=20)
    assert p.returncode == 2
    assert b"reuse_port: needs backend = redis" in p.stdout + p.stderr


def test_history_and_handles_are_one_across_nodes(make_rtmd, redis_server):
    from msgutil import (assert_location, assert_messages, hist_body, hist_get, hist_post,
                         history, short)
    a = node(make_rtmd, redis_server, "na")
    b = node(make_rtmd, redis_server, "nb")
    alice = login(a, "alice", ["room"])
    bob = login(b, "bob", ["room"])
    assert alice.call("publish", channel="room", payload="kept", history=True)["ok"] is True
    assert alice.call("peer", to="bob", payload="to bob", history=True)["ok"] is True
    # bob, on the other node, received both: his history says so, read on either node
    want = [("channel_message", "alice", "room", "kept"), ("peer_message", "alice", "bob", "to bob")]
    assert short(history(a, None, "bob")) == want
    assert short(history(b, None, "bob")) == want
    # a handle made on one node is read on the other, once
    h = assert_location(hist_post(a, hist_body("alice", None)))
    assert len(assert_messages(hist_get(b, h))) == 2
    st, hd, body = hist_get(a, h)
    assert st == 410, body
    alice.close()
    bob.close()


def test_offline_messages_kept_on_one_node_reach_the_receiver_on_another(make_rtmd, redis_server):
    from msgutil import assert_peer_push, push, send_peer, assert_answer
    a = node(make_rtmd, redis_server, "na")
    b = node(make_rtmd, redis_server, "nb")
    assert_answer(send_peer(a, "backend", "carol", "while away", offline=True), "message_offline")
    carol = login(b, "carol")
    assert_peer_push(push(carol), "backend", "while away")
    carol.close()


# ---- on a Redis Cluster (tests/blackbox/redis_cluster.py) ----------------------------------------

APP_SLOT = slot_of("rtmd:{%s}:" % APP_NOCERT)


@pytest.fixture
def redis_cluster(tmp_path):
    """3 masters; the app's slot is the lowest of the second master's."""
    c = RedisCluster(tmp_path / "cluster", first_slot=APP_SLOT).start()
    yield c
    c.stop()


@pytest.fixture
def redis_cluster_replicas(tmp_path):
    """3 masters with a replica each; the app's slot as above."""
    c = RedisCluster(tmp_path / "cluster", replicas=1, first_slot=APP_SLOT).start()
    yield c
    c.stop()


def cnode(make_rtmd, cluster, name, timeout_ms=1000, node_timeout_s=10):
    st = {"backend": "redis", "redis_url": cluster.url, "redis_timeout_ms": timeout_ms,
          "node_timeout_s": node_timeout_s}
    return make_rtmd(name=name, store=st, server={"node_id": name}, limits=FAST)


def metric(r, name):
    st, hd, body = r.get("/metrics", headers={"Authorization": basic()})
    assert st == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class Load:
    """Logins (and the logouts of closing) of fresh uids, one after the
    other, alternating between nodes, in a thread; every acknowledged one is
    kept."""

    def __init__(self, nodes, prefix):
        self.nodes, self.prefix = nodes, prefix
        self.acked, self.refused = [], []
        self.stop = threading.Event()
        self.error = None
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        i = 0
        try:
            while not self.stop.is_set():
                uid = "%s%d" % (self.prefix, i)
                ws = self.nodes[i % len(self.nodes)].ws()
                m = ws.login(uid, app=APP_NOCERT)
                if m.get("ok") is True:
                    self.acked.append(uid)
                else:
                    self.refused.append((uid, m))
                ws.close()
                i += 1
        except Exception as e:  # reported by finish()
            self.error = e

    def __enter__(self):
        self.t.start()
        return self

    def finish(self):
        self.stop.set()
        self.t.join(30)
        assert self.error is None, self.error
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(30)


def logins_recorded(ev, uids):
    """Every uid's Login is in the log once, followed by its Logout."""
    by = by_uid(ev)
    missing = [u for u in uids if by.get(u, [])[:1] != ["Login"]]
    assert not missing, "acknowledged logins missing from the event log: %r" % missing[:10]
    alternates({u: by[u] for u in uids}, "Login", "Logout")


def test_two_nodes_on_a_redis_cluster(make_rtmd, redis_cluster):
    """Logins, joins, a takeover and pulls with the app's keys on one
    master, the nodes' on another, the takeover's message on a shard
    channel."""
    c = redis_cluster
    assert c.owner(APP_SLOT) is c.nodes[1]
    assert c.owner(slot_of("{nodes}")) is not c.nodes[1]
    a = cnode(make_rtmd, c, "na")
    b = cnode(make_rtmd, c, "nb")
    for r in (a, b):
        assert r.get("/healthz")[0] == 200
        assert metric(r, "rtmd_redis_cluster") == 1
        assert metric(r, "rtmd_redis_masters") == 3
        assert metric(r, "rtmd_redis_masters_up") == 3
    wa = login(a, "alice", ["room"])
    wb = login(b, "bob", ["room"])
    u = Events(a, "user", APP_NOCERT)
    u.wait_for(lambda got: len(got) >= 2)
    assert sorted(utypes(u.got)) == [("Login", "alice"), ("Login", "bob")]
    # bob's join on the other node reached alice
    assert wa.recv(5) == {"op": "member_joined", "channel": "room", "uid": "bob"}
    # alice again, on b: a's client is told and closed
    wb2 = login(b, "alice")
    assert wa.recv(5) == {"op": "kicked", "reason": "remote_login"}
    u.wait_for(lambda got: len(got) >= 4)
    assert utypes(u.got)[2:] == [("Logout", "alice"), ("Login", "alice")]
    ch = Events(b, "channel", APP_NOCERT)
    ch.wait_for(lambda got: len(got) >= 3)
    assert ctypes(ch.got) == [("Join", "alice", "room"), ("Join", "bob", "room"),
                              ("Leave", "alice", "room")]
    # the app's data is where its slot is: on the second master only
    assert c.nodes[1].command("EXISTS", "rtmd:{%s}:sess" % APP_NOCERT) == 1
    assert c.nodes[0].command("CLUSTER", "COUNTKEYSINSLOT", APP_SLOT) == 0
    wa.close()
    wb.close()
    wb2.close()


def test_a_live_reshard_of_the_app_slot_loses_no_acknowledged_event(make_rtmd, redis_cluster):
    """redis-cli --cluster reshard moves the app's slot to another master
    while both nodes log users in and out: every login is acknowledged,
    every acknowledged login is in the log once, with its logout."""
    c = redis_cluster
    a = cnode(make_rtmd, c, "na")
    b = cnode(make_rtmd, c, "nb")
    src, dst = c.nodes[1], c.nodes[0]
    # users online in a channel each: hundreds of keys in the slot, migrated
    # one per MIGRATE, so the move takes a while
    online = [login((a, b)[i % 2], "on%d" % i, ["c%d" % i]) for i in range(100)]
    keys = src.command("CLUSTER", "COUNTKEYSINSLOT", APP_SLOT)
    assert keys >= 200
    with Load([a, b], "r") as load:
        wait_until(lambda: len(load.acked) >= 30, 20, what="logins before the move")
        p = c.reshard_lowest(src, dst, pipeline=1)
        out = p.communicate(timeout=60)[0]
        assert p.returncode == 0, out
        assert c.owner(APP_SLOT) is dst
        n = len(load.acked)
        wait_until(lambda: len(load.acked) >= n + 30, 20, what="logins after the move")
        load.finish()
    assert load.refused == [], load.refused[:5]
    redirections = sum(metric(r, "rtmd_redis_redirections_total") for r in (a, b))
    assert redirections >= 1
    assert src.command("CLUSTER", "COUNTKEYSINSLOT", APP_SLOT) == 0
    assert dst.command("CLUSTER", "COUNTKEYSINSLOT", APP_SLOT) >= keys
    for w in online:
        w.close()
    u = Events(a, "user", APP_NOCERT)
    want = 2 * (len(load.acked) + len(online))
    u.wait_for(lambda got: len(got) >= want, 20)
    logins_recorded(u.got, load.acked + ["on%d" % i for i in range(len(online))])
    assert len(u.got) == want
    ch = Events(b, "channel", APP_NOCERT)
    ch.wait_for(lambda got: len(got) >= 2 * len(online), 20)
    assert sorted(ctypes(ch.got)) == sorted(
        [(t, "on%d" % i, "c%d" % i) for i in range(len(online)) for t in ("Join", "Leave")])


def test_a_failover_under_load(make_rtmd, redis_cluster_replicas):
    """CLUSTER FAILOVER of the app's master under load: nothing refused,
    nothing lost. Then kill -9 of the new master: /healthz says 503 until its
    replica took over, then logins and pulls work again."""
    c = redis_cluster_replicas
    a = cnode(make_rtmd, c, "na")
    b = cnode(make_rtmd, c, "nb")
    m = c.owner(APP_SLOT)
    with Load([a, b], "f") as load:
        wait_until(lambda: len(load.acked) >= 30, 20, what="logins before the failover")
        m2 = c.failover(m)
        n = len(load.acked)
        wait_until(lambda: len(load.acked) >= n + 30, 20, what="logins after the failover")
        load.finish()
    assert load.refused == [], load.refused[:5]
    assert c.owner(APP_SLOT) is m2
    u = Events(a, "user", APP_NOCERT)
    u.wait_for(lambda got: len(got) >= 2 * len(load.acked), 20)
    logins_recorded(u.got, load.acked)

    c.wait_ok()
    m2.kill9()
    wait_until(lambda: a.get("/healthz")[0] == 503, 10, what="healthz 503")
    st, hd, body = a.get("/healthz")
    assert b"Redis Cluster cannot serve every slot" in body, body
    wait_until(lambda: a.get("/healthz")[0] == 200 and b.get("/healthz")[0] == 200, 30,
               what="the replica to take over")
    assert c.owner(APP_SLOT) is m
    w = login(b, "after")
    u.wait_for(lambda got: ("Login", "after") in utypes(got), 10)
    w.close()
    assert metric(a, "rtmd_redis_reconnects_total") >= 1


@pytest.mark.own_store
def test_a_redis_outage_longer_than_node_timeout_s_does_not_make_nodes_end_each_other(
        make_rtmd, tmp_path):
    """After Redis comes back (with its AOF) every node's last heartbeat is
    old: no node may take the others for dead before they all had time to
    beat again."""
    from harness import RedisServer
    redis = RedisServer(tmp_path / "aof", extra=["--appendonly", "yes", "--appendfsync",
                                                 "always"]).start()
    try:
        a = node(make_rtmd, redis, "na")
        b = node(make_rtmd, redis, "nb")
        wa = login(a, "alice", ["room"])
        wb = login(b, "bob", ["room"])
        assert wa.recv(5)["op"] == "member_joined"
        u = Events(a, "user", APP_NOCERT)
        u.wait_for(lambda got: len(got) >= 2)
        redis.kill9()
        t0 = time.monotonic()
        wait_until(lambda: time.monotonic() - t0 > 3.5, 10, interval=0.05, what="3.5 s without")
        redis.start()
        wait_until(lambda: a.get("/healthz")[0] == 200 and b.get("/healthz")[0] == 200, 15,
                   what="both nodes to see Redis again")
        # well past node_timeout_s (2 s) with both beating: nobody was reaped
        t1 = time.monotonic()
        wait_until(lambda: time.monotonic() - t1 > 3.0, 10, interval=0.05, what="3 s of beats")
        assert u.pull() == u.got[:2] and len(u.got) == 2, u.got
        assert wa.call("ping")["ok"] is True
        assert wb.call("ping")["ok"] is True
        wa.close()
        wb.close()
    finally:
        redis.stop()
