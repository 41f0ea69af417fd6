"""The Redis Cluster fixture (redis_cluster.py) does what cluster tests rely
on: the cluster forms with every slot served, slots move with their keys
(ASK while migrating, MOVED after), replicas take over on failover and on a
master's death, a restarted node rejoins. And rtmd on a cluster (its own
tests of slot routing live with the routing)."""
import json
import time

import pytest

from harness import APP, APP_NOCERT, APP_OTHER, Rtmd, basic, event_path, wait_until
from redis_cluster import SLOTS


def error_of(node, *cmd):
    try:
        node.command(*cmd)
    except RuntimeError as e:
        return str(e)
    return None


def test_the_cluster_forms_with_every_slot_served_and_keys_are_routed(redis_cluster):
    c = redis_cluster
    masters = c.masters()
    assert len(masters) == 3 and len(c.seeds) == 3
    assert c.url == ", ".join("redis://127.0.0.1:%d" % m.port for m in c._seeds)
    covered = sorted(r for m in c.topology() if m["role"] == "master" for r in m["slots"])
    assert covered[0][0] == 0 and covered[-1][1] == SLOTS - 1
    assert sum(b - a + 1 for a, b in covered) == SLOTS
    for key in ("a", "b", "rtmd:{%s}:u" % APP, "rtmd:{nodes}:hb"):
        owner = c.owner(c.keyslot(key))
        assert owner.command("SET", key, "v") == "OK"
        for other in masters:
            if other is not owner:
                assert error_of(other, "GET", key).startswith("MOVED %d 127.0.0.1:%d" % (
                    c.keyslot(key), owner.port))
    # one app's keys share a slot
    assert c.slot_of_app(APP) == c.keyslot("rtmd:{%s}:anything" % APP)
    assert c.dbsize() == 4


def test_a_slot_moves_with_its_keys_ask_while_migrating_moved_after(redis_cluster):
    c = redis_cluster
    slot = c.slot_of_app(APP_NOCERT)
    src = c.owner(slot)
    dst = next(m for m in c.masters() if m is not src)
    keys = ["rtmd:{%s}:k%d" % (APP_NOCERT, i) for i in range(10)]
    for k in keys:
        assert src.command("SET", k, k) == "OK"
    assert c.begin_migration(slot, dst) is src
    assert c.migrate_keys(slot, src, dst, count=3) == 3
    # the source still answers for the keys it has, and sends the others on
    moved = [k for k in keys if error_of(src, "GET", k) is not None]
    assert len(moved) == 3
    assert error_of(src, "GET", moved[0]).startswith("ASK %d 127.0.0.1:%d" % (slot, dst.port))
    c.finish_migration(slot, src, dst)
    assert c.owner(slot) is dst
    assert error_of(src, "GET", keys[0]).startswith("MOVED %d 127.0.0.1:%d" % (slot, dst.port))
    assert [dst.command("GET", k) for k in keys] == keys
    # and in bulk
    before = sum(b - a + 1 for m in c.topology() if m["id"] == src.id for a, b in m["slots"])
    c.reshard(50, src, dst)
    after = sum(b - a + 1 for m in c.topology() if m["id"] == src.id for a, b in m["slots"])
    assert after == before - 50


def test_replicas_take_over_on_failover_and_on_a_master_s_death(make_redis_cluster):
    c = make_redis_cluster(masters=3, replicas=1)
    assert len(c.nodes) == 6 and len(c.masters()) == 3
    slot = c.slot_of_app(APP)
    key = "rtmd:{%s}:u" % APP
    old = c.owner(slot)
    assert old.command("SET", key, "1") == "OK"
    c.wait_replicated()
    new = c.failover(old)
    assert new is not old and c.owner(slot) is new
    assert new.command("GET", key) == "1"
    assert old.info("replication")["role"] == "slave"
    assert new.command("SET", key, "2") == "OK"
    c.wait_replicated()
    t0 = time.monotonic()
    survivor = c.kill_master(new)
    assert survivor is old and c.owner(slot) is old  # the demoted one is promoted again
    assert old.command("GET", key) == "2"
    assert time.monotonic() - t0 < 15
    c.restart(new)
    wait_until(lambda: new.info("replication").get("role") == "slave", 15,
               what="the killed master to rejoin as a replica")
    c.wait_ok()


def test_rtmd_on_a_cluster_records_and_serves_events_whichever_master_holds_the_app(
        make_redis_cluster, tmp_path):
    c = make_redis_cluster(masters=3)
    first = c.masters()[0]
    # the apps' slots away from the first seed, on two different masters
    for app, dst in ((APP_NOCERT, c.masters()[1]), (APP, c.masters()[2]), (APP_OTHER, first)):
        if c.owner(c.slot_of_app(app)) is not dst:
            c.move_slot(c.slot_of_app(app), dst)
    (tmp_path / "n").mkdir()
    r = Rtmd(tmp_path / "n", store={"backend": "redis", "redis_url": c.url},
             server={"node_id": "n1"})
    try:
        r.start()
        ws = r.ws()
        assert ws.login("alice", app=APP_NOCERT)["ok"] is True
        j = ws.call("join", channel="room")
        assert j["ok"] is True and j["members"] == ["alice"] and j["count"] == 1, j
        st, hd, body = r.get(event_path("user", APP_NOCERT), headers={"Authorization": basic()})
        assert st == 200, body
        assert [(e["type"], e["user_id"]) for e in json.loads(body)["events"]] == [("Login", "alice")]
        # a lossless read: the script's numbers and the es range, both on the app's master
        st, hd, body = r.get(event_path("user", APP_NOCERT) + "?after=0",
                             headers={"Authorization": basic()})
        assert st == 200, body
        ev = json.loads(body)["events"]
        assert [(e["type"], e["user_id"], e["seq"]) for e in ev] == [("Login", "alice", 1)], ev
        assert ev[0]["session_id"].startswith("n1|"), ev
        assert r.metrics()["rtmd_redis_after_full_reads_total"] == 0
        # who is online: the members script and the statuses' HMGET on the app's master
        st, _, body = r.get("/dev/v2/project/%s/rtm/channels/room/members" % APP_NOCERT,
                            headers={"Authorization": basic()})
        assert st == 200 and json.loads(body)["members"] == ["alice"], body
        st, _, body = r.get("/dev/v2/project/%s/rtm/users/status" % APP_NOCERT, method="POST",
                            headers={"Authorization": basic()}, body='{"uids":["alice","bob"]}')
        assert st == 200 and json.loads(body)["statuses"] == {"alice": "online", "bob": "offline"}, body
        ws.close()
    finally:
        if r.alive():
            r.stop()
        elif r.proc is not None:
            r.log.close()
