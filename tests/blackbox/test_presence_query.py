"""Who is online (docs/API.md "Who is online"): REST members pages, counts and
statuses; the join reply's members; the members and status ops; correct
through takeovers, heartbeat timeouts, restarts and (redis) several nodes.
"""
import json
import time

from harness import APP, APP_NOCERT, assert_error, basic, token, wait_until

BASE = "/dev/v2/project/%s/rtm" % APP_NOCERT
FAST = {"presence_qps": 1000000}


def members_path(channel, app=APP_NOCERT, **q):
    path = "/dev/v2/project/%s/rtm/channels/%s/members" % (app, channel)
    if q:
        path += "?" + "&".join("%s=%s" % kv for kv in q.items())
    return path


def get(r, path, auth=None):
    return r.get(path, headers={"Authorization": auth or basic()})


def ok_json(resp):
    st, hd, body = resp
    assert st == 200, (st, body)
    out = json.loads(body)
    assert out["result"] == "success" and out["request_id"] == hd["x-request-id"]
    return out


def all_members(r, channel, limit=None):
    """Pages through the channel; returns (members in page order, pages)."""
    got, pages, cursor = [], 0, None
    while True:
        q = {}
        if limit:
            q["limit"] = limit
        if cursor:
            q["cursor"] = cursor
        page = ok_json(get(r, members_path(channel, **q)))
        pages += 1
        assert list(page) == (["count", "cursor", "members", "request_id", "result"] if "cursor" in page
                              else ["count", "members", "request_id", "result"]), list(page)
        got += page["members"]
        cursor = page.get("cursor")
        if not cursor:
            return got, pages


def count(r, channel):
    return ok_json(get(r, "%s/channels/%s/count" % (BASE, channel)))["count"]


def status(r, uids, app=APP_NOCERT):
    st, _, body = r.get("/dev/v2/project/%s/rtm/users/status" % app, method="POST",
                        headers={"Authorization": basic()}, body=json.dumps({"uids": uids}))
    return st, body


def statuses(r, uids):
    st, body = status(r, uids)
    assert st == 200, (st, body)
    out = json.loads(body)
    assert list(out) == ["request_id", "result", "statuses"]
    return out["statuses"]


def open_members(r, channel, uids):
    """Logs uids in and joins them to channel, pipelined; returns the sockets."""
    socks = []
    for u in uids:
        ws = r.ws()
        ws.send({"op": "login", "id": 1, "appid": APP_NOCERT, "uid": u})
        ws.send({"op": "join", "id": 2, "channel": channel})
        socks.append(ws)
    for ws in socks:
        assert ws.reply(1)["ok"] is True
        assert ws.reply(2)["ok"] is True
    return socks


def close_all(socks):
    for ws in socks:
        ws.close_socket()


# ---- REST -----------------------------------------------------------------------------


def test_members_pages_250_in_uid_order_and_count(make_rtmd):
    r = make_rtmd(limits=FAST)
    uids = ["u%03d" % i for i in range(250)]
    socks = open_members(r, "big", uids)
    got, pages = all_members(r, "big")
    assert got == sorted(uids) and pages == 3  # default limit 100
    got, pages = all_members(r, "big", limit=7)
    assert got == sorted(uids) and pages == 36
    got, pages = all_members(r, "big", limit=1000)
    assert got == sorted(uids) and pages == 1
    first = ok_json(get(r, members_path("big", limit=250)))
    assert first["count"] == 250 and "cursor" not in first
    assert count(r, "big") == 250
    # an empty or unknown channel: no members, no cursor
    assert ok_json(get(r, members_path("nobody"))) ["members"] == []
    assert count(r, "nobody") == 0
    close_all(socks)
    wait_until(lambda: count(r, "big") == 0, what="members gone after disconnect")


def test_members_paging_under_joins_and_leaves_returns_each_stayer_once(make_rtmd):
    r = make_rtmd(limits=FAST)
    stay = ["s%02d" % i for i in range(30)]
    go = ["g%02d" % i for i in range(10)]
    socks = open_members(r, "room", stay)
    leavers = open_members(r, "room", go)
    page = ok_json(get(r, members_path("room", limit=10)))
    seen = list(page["members"])
    cursor = page["cursor"]
    close_all(leavers)
    late = open_members(r, "room", ["a-late", "z-late"])
    while cursor:
        page = ok_json(get(r, members_path("room", limit=10, cursor=cursor)))
        seen += page["members"]
        cursor = page.get("cursor")
    assert len(seen) == len(set(seen)), seen
    assert set(stay) <= set(seen)
    assert "z-late" in seen and "a-late" not in seen  # joined behind / before the cursor
    close_all(socks + late)


def test_members_bad_input_is_400(make_rtmd):
    r = make_rtmd(limits=FAST)
    for q in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"cursor": "zz"},
              {"cursor": "616"}, {"cursor": "0a"}):
        assert_error(get(r, members_path("room", **q)), 400, "bad_request")
    # a channel name that is no ID
    assert_error(get(r, members_path("%20room")), 400, "bad_request")
    assert_error(get(r, members_path("a" * 65)), 400, "bad_request")
    assert_error(get(r, "%s/channels/%s/count" % (BASE, "b" * 65)), 400, "bad_request")
    # percent-encoded names are decoded
    assert ok_json(get(r, members_path("a%40b")))["count"] == 0


def test_status_online_offline_unknown_and_the_256_limit(make_rtmd):
    r = make_rtmd(limits=FAST)
    socks = open_members(r, "room", ["alice", "bob"])
    st = statuses(r, ["bob", "alice", "carol", "alice"])
    assert st == {"alice": "online", "bob": "online", "carol": "offline"}
    assert list(st) == ["alice", "bob", "carol"]
    socks[1].call("logout")
    wait_until(lambda: statuses(r, ["bob"]) == {"bob": "offline"}, what="bob offline")
    many = ["x%03d" % i for i in range(256)]
    assert len(statuses(r, many)) == 256
    st, body = status(r, many + ["one-more"])
    assert st == 400, body
    for bad in ({"uids": []}, {"uids": "alice"}, {"uids": [1]}, {"uids": ["a" * 65]}, {}):
        st, _, body = r.get(BASE + "/users/status", method="POST",
                            headers={"Authorization": basic()}, body=json.dumps(bad))
        assert st == 400, (bad, body)
    close_all(socks)


def test_auth_and_methods(make_rtmd):
    r = make_rtmd(limits=FAST)
    assert_error(get(r, members_path("room"), auth="Basic eDp5"), 401)
    assert_error(r.get(members_path("room")), 401)
    # a client token of the app works (vendor_token_access defaults to on)
    tok = token("alice")
    st, _, _ = r.get(members_path("room", app=APP), headers={"Authorization": "agora token=" + tok})
    assert st == 200
    st, hd, _ = r.get(members_path("room"), method="POST", headers={"Authorization": basic()}, body="{}")
    assert st == 405 and hd["allow"] == "GET"
    st, hd, _ = r.get(BASE + "/users/status", headers={"Authorization": basic()})
    assert st == 405 and hd["allow"] == "POST"


def test_vendor_token_access_off_refuses_client_tokens(make_rtmd):
    r = make_rtmd(limits=FAST, app_extra="vendor_token_access = off\n")
    tok = token("alice")
    st, _, _ = r.get(members_path("room", app=APP), headers={"Authorization": "agora token=" + tok})
    assert st == 401


def test_presence_qps_is_its_own_bucket(make_rtmd):
    r = make_rtmd(limits={"presence_qps": 3})
    with r.http() as h:
        got = [h.request("GET", members_path("room"), headers={"Authorization": basic()})[0]
               for _ in range(3)]
        got.append(h.request("POST", BASE + "/users/status", headers={"Authorization": basic()},
                             body='{"uids":["a"]}')[0])
        assert got == [200, 200, 200, 429], got
        # the events bucket is another one
        st, _, _ = h.request("GET", BASE + "/vendor/user_events", headers={"Authorization": basic()})
        assert st == 200


# ---- WebSocket ------------------------------------------------------------------------


def test_join_reply_carries_members_and_count(make_rtmd):
    r = make_rtmd(limits=FAST)
    a = r.ws()
    assert a.login("alice", app=APP_NOCERT)["ok"]
    j = a.call("join", channel="room")
    assert j["ok"] is True and j["count"] == 1 and j["members"] == ["alice"] and "cursor" not in j
    b = r.ws()
    assert b.login("bob", app=APP_NOCERT)["ok"]
    j = b.call("join", channel="room")
    assert j["count"] == 2 and j["members"] == ["alice", "bob"]
    a.close_socket()
    b.close_socket()


def test_member_events_come_after_the_join_reply(make_rtmd):
    """A member event pushed before the join's reply would be undone by a client that takes the
    reply's list (read before that change, on redis) as the members: rtmd holds a joiner's pushes
    until its reply is out. With 60 joins at once, each joiner's reply plus the member events that
    follow it add up to everyone, and none comes before the reply."""
    r = make_rtmd(limits=FAST)
    uids = ["u%02d" % i for i in range(60)]
    socks = []
    for u in uids:
        ws = r.ws()
        assert ws.login(u, app=APP_NOCERT)["ok"]
        socks.append(ws)
    for ws in socks:
        ws.send({"op": "join", "id": 100, "channel": "room"})
    for u, ws in zip(uids, socks):
        j = ws.reply(100)
        assert j["ok"] is True and u in j["members"], (u, j)
        early = [m for m in ws.pushes if m.get("op") in ("member_joined", "member_left")]
        assert early == [], (u, early)
        ws.view = set(j["members"])
    for u, ws in zip(uids, socks):
        def everyone():
            while len(ws.view) < len(uids):
                m = ws.recv(timeout=10.0)
                assert m.get("op") == "member_joined" and m["channel"] == "room", m
                ws.view.add(m["uid"])
            return True
        assert everyone() and ws.view == set(uids), u
    close_all(socks)


def test_join_reply_lists_512_then_the_members_op_pages(make_rtmd):
    r = make_rtmd(limits=FAST)
    uids = ["m%03d" % i for i in range(520)]
    socks = open_members(r, "huge", uids)
    me = r.ws()
    assert me.login("zz-me", app=APP_NOCERT)["ok"]
    j = me.call("join", channel="huge")
    assert j["count"] == 521 and len(j["members"]) == 512 and j["members"] == sorted(uids)[:512]
    rest = me.call("members", channel="huge", cursor=j["cursor"])
    assert rest["ok"] and rest["members"] == sorted(uids)[512:] + ["zz-me"] and "cursor" not in rest
    # a smaller page
    p = me.call("members", channel="huge", limit=5)
    assert p["members"] == sorted(uids)[:5] and p["count"] == 521 and p["cursor"]
    # errors
    assert me.call("members", channel="other")["error"] == "not_joined"
    assert me.call("members", channel="huge", cursor="nothex")["error"] == "bad_request"
    assert me.call("members", channel="huge", limit=513)["error"] == "bad_request"
    assert me.call("members", channel="")["error"] == "invalid_channel"
    close_all(socks + [me])


def test_status_op(make_rtmd):
    r = make_rtmd(limits=FAST)
    a = r.ws()
    assert a.login("alice", app=APP_NOCERT)["ok"]
    s = a.call("status", uids=["nobody", "alice"])
    assert s["ok"] and s["statuses"] == {"alice": "online", "nobody": "offline"}
    assert a.call("status", uids=[])["error"] == "bad_request"
    assert a.call("status", uids=["u%d" % i for i in range(257)])["error"] == "bad_request"
    assert a.call("status", uids=["ok", 5])["error"] == "invalid_uid"
    n = r.ws()
    assert n.call("status", uids=["alice"])["error"] == "not_logged_in"
    a.close_socket()
    n.close_socket()


# ---- correctness through takeovers, timeouts, restarts ----------------------------------


def test_takeover_keeps_one_membership(make_rtmd):
    r = make_rtmd(limits=FAST)
    old = open_members(r, "room", ["alice", "bob"])
    new = r.ws()
    assert new.login("alice", app=APP_NOCERT)["ok"]
    # the takeover ended the old session's memberships
    assert all_members(r, "room")[0] == ["bob"]
    j = new.call("join", channel="room")
    assert j["members"] == ["alice", "bob"] and j["count"] == 2
    assert count(r, "room") == 2
    close_all(old + [new])


def test_heartbeat_timeout_removes_the_member(make_rtmd):
    r = make_rtmd(limits=dict(FAST, heartbeat_timeout_s=1))
    sleepy = open_members(r, "room", ["sleepy"])[0]
    assert count(r, "room") == 1
    sleepy.expect_close(timeout=10)
    wait_until(lambda: count(r, "room") == 0, what="member gone after the heartbeat timeout")
    assert statuses(r, ["sleepy"]) == {"sleepy": "offline"}
    sleepy.close_socket()


def test_restart_forgets_the_members_of_the_previous_run(make_rtmd):
    r = make_rtmd(limits=FAST)
    socks = open_members(r, "room", ["a", "b", "c"])
    assert count(r, "room") == 3
    r.kill9()
    close_all(socks)
    r.start()
    assert count(r, "room") == 0
    assert all_members(r, "room")[0] == []
    assert statuses(r, ["a"]) == {"a": "offline"}
    again = open_members(r, "room", ["b"])
    assert all_members(r, "room")[0] == ["b"]
    close_all(again)


def test_two_nodes_on_one_redis_see_every_member(make_rtmd, store_backend):
    if store_backend != "redis":
        return  # one node: the rest of the file covers it
    a = make_rtmd(name="na", limits=FAST)
    b = make_rtmd(name="nb", limits=FAST)
    on_a = open_members(a, "room", ["a%02d" % i for i in range(20)])
    on_b = open_members(b, "room", ["b%02d" % i for i in range(20)])
    want = sorted(["a%02d" % i for i in range(20)] + ["b%02d" % i for i in range(20)])
    for node in (a, b):
        assert all_members(node, "room", limit=9)[0] == want
        assert count(node, "room") == 40
        assert statuses(node, ["a00", "b00", "c00"]) == {"a00": "online", "b00": "online",
                                                         "c00": "offline"}
    j = on_a[0].call("members", channel="room")
    assert j["members"] == want
    # a takeover on the other node, and a node that dies: the lists follow
    t = b.ws()
    assert t.login("a00", app=APP_NOCERT)["ok"]
    wait_until(lambda: "a00" not in all_members(a, "room")[0], what="a00 left with the takeover")
    close_all(on_b)
    wait_until(lambda: count(a, "room") == 19, what="b's members gone")
    assert all_members(a, "room")[0] == want[1:20]
    close_all(on_a + [t])


def test_redis_members_index_is_made_again_from_the_channel_hash(make_rtmd, store_backend, request):
    """A channel written without the sorted set (an older version) pages all the same."""
    if store_backend != "redis":
        return
    r = make_rtmd(limits=FAST)
    socks = open_members(r, "room", ["c", "a", "b"])
    redis = request.getfixturevalue("redis_session")
    assert redis.command("DEL", "rtmd:{%s}:cm:room" % APP_NOCERT) == 1
    assert all_members(r, "room", limit=2)[0] == ["a", "b", "c"]
    assert redis.command("ZCARD", "rtmd:{%s}:cm:room" % APP_NOCERT) == 3
    close_all(socks)
    wait_until(lambda: count(r, "room") == 0, what="members gone")
    assert redis.command("EXISTS", "rtmd:{%s}:cm:room" % APP_NOCERT) == 0


def test_members_follow_random_joins_leaves_and_disconnects(make_rtmd):
    """The list is exactly the members, in uid order, after a churn of joins,
    leaves, logouts and disconnects (both of rtmd's orders of a channel's
    members must agree)."""
    import random
    rnd = random.Random(7)
    r = make_rtmd(limits=FAST)
    uids = ["r%02d" % i for i in rnd.sample(range(100), 60)]
    socks = dict(zip(uids, open_members(r, "churn", uids)))
    inside = set(uids)
    for step in range(4):
        for u in rnd.sample(sorted(inside), 12):
            how = rnd.choice(("leave", "logout", "drop"))
            ws = socks[u]
            if how == "leave":
                assert ws.call("leave", channel="churn")["ok"]
            elif how == "logout":
                ws.call("logout")
                ws.close_socket()
                del socks[u]
            else:
                ws.close_socket()
                del socks[u]
            inside.discard(u)
        back = rnd.sample(sorted(set(uids) - inside), 6)
        for u in back:
            if u in socks:
                j = socks[u].call("join", channel="churn")
            else:
                socks[u] = open_members(r, "churn", [u])[0]
                j = None
            inside.add(u)
            if j is not None:
                assert j["ok"] and u in j["members"]
        want = sorted(inside)
        wait_until(lambda: all_members(r, "churn", limit=7)[0] == want,
                   what="members after churn step %d" % step)
        assert count(r, "churn") == len(want)
    close_all(socks.values())


def test_presence_qps_holds_across_nodes_on_redis(make_rtmd, store_backend):
    if store_backend != "redis":
        return
    a = make_rtmd(name="qa", limits={"presence_qps": 4})
    b = make_rtmd(name="qb", limits={"presence_qps": 4})
    with a.http() as ha, b.http() as hb:
        got = []
        for h in (ha, hb, ha, hb, ha, hb):
            got.append(h.request("GET", members_path("room"), headers={"Authorization": basic()})[0])
        # one bucket for the app, whichever node answers (a second may have begun meanwhile)
        assert got[:4] == [200] * 4 and 429 in got[4:], got


def test_join_storm_on_redis_shares_the_member_reads(make_rtmd, redis_server):
    """Joins of one channel whose replies wait on a member read share the next one: every join's
    reply still lists its joiner (the read went out after its join was recorded), and Redis runs
    fewer member pages than there were joins."""
    r = make_rtmd(store={"backend": "redis", "redis_url": redis_server.url},
                  server={"node_id": "n1"}, limits=FAST)

    def pages():
        info = redis_server.command("INFO", "commandstats")
        info = info.decode() if isinstance(info, bytes) else info
        for line in info.splitlines():
            if line.startswith("cmdstat_zrangebylex:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0
    uids = ["u%03d" % i for i in range(300)]
    socks = []
    for u in uids:
        ws = r.ws()
        ws.send({"op": "login", "id": 1, "appid": APP_NOCERT, "uid": u})
        socks.append(ws)
    for ws in socks:
        assert ws.reply(1)["ok"] is True
    # The joins back to back (each connection's handshake would space them out by more than a
    # join takes on an idle machine: nothing would overlap to share).
    before = pages()
    for ws in socks:
        ws.send({"op": "join", "id": 2, "channel": "storm"})
    for u, ws in zip(uids, socks):
        j = ws.reply(2)
        assert j["ok"] is True and u in j["members"], (u, j)
        assert j["members"] == sorted(j["members"]) and len(j["members"]) == j["count"] <= 300
    assert pages() - before < len(uids)
    assert all_members(r, "storm")[0] == uids and count(r, "storm") == 300
    close_all(socks)
