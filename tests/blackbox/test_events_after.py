"""Lossless event reads (docs/API.md "Lossless reads"): GET user_events/channel_events with
?after=SEQ acknowledges up to SEQ for the region and answers what follows, numbered (seq,
session_id), without consuming it. On both stores; then two redis nodes in one region."""
import json

from harness import APP, basic, token, wait_until
from msgutil import Events, ctypes, utypes

FAST = {"events_qps": 1000000}


def after_raw(r, after, kind="user", app=APP, region="default"):
    path = "/dev/v2/project/%s/rtm/vendor/%s_events?after=%s" % (app, kind, after)
    return r.get(path, headers={"Authorization": basic()}, region=region)


def after(r, n, kind="user", app=APP, region="default"):
    """A pull with after=n: the whole answer, checked for its envelope."""
    st, hd, body = after_raw(r, n, kind, app, region)
    assert st == 200, (st, body)
    d = json.loads(body)
    assert list(d) == ["dropped", "events", "request_id", "result"], d
    assert d["result"] == "success" and d["request_id"] == hd["x-request-id"]
    assert body.startswith(b'{"dropped":%d,"events":[' % d["dropped"])
    return d


def seqs(events):
    return [e["seq"] for e in events]


def logins(r, uids, app=APP, channels=()):
    """Logs each uid in (and joins channels), logs it out; returns nothing."""
    for uid in uids:
        with r.ws() as ws:
            assert ws.login(uid, token=token(uid), app=app)["ok"]
            for ch in channels:
                assert ws.call("join", channel=ch)["ok"]
            assert ws.call("logout")["ok"]
            ws.expect_close()


def wait_events(r, n, kind="user", app=APP):
    """Waits until an after=0 pull answers at least n events; returns them."""
    out = []

    def enough():
        out[:] = after(r, 0, kind, app)["events"]
        return len(out) >= n
    wait_until(enough, 10, what="%d %s events" % (n, kind))
    return out


# ---- numbering, repetition, after=0 --------------------------------------------------------

def test_after_answers_numbered_events_without_consuming_them(make_rtmd):
    r = make_rtmd(limits=FAST)
    logins(r, ["alice", "bob"], channels=["room"])
    users = wait_events(r, 4)
    assert utypes(users) == [("Login", "alice"), ("Logout", "alice"), ("Login", "bob"),
                             ("Logout", "bob")]
    s = seqs(users)
    assert all(isinstance(x, int) for x in s) and s == sorted(set(s)) and s[0] >= 1, s
    # keys stay in alphabetical order, seq and session_id between ms and ts
    assert [list(e) for e in users] == [["ms", "seq", "session_id", "ts", "type",
                                         "user_id"]] * 4
    # the same after answers the same events, byte for byte but the request id
    again = after(r, 0)
    assert again["events"] == users and again["dropped"] == 0
    # nothing was consumed: a plain pull still returns them all, unnumbered
    plain = r.events("user")
    assert plain == [{k: v for k, v in e.items() if k not in ("seq", "session_id")}
                     for e in users]
    chans = wait_events(r, 4, "channel")
    assert [list(e) for e in chans] == [["channel_id", "group_id", "ms", "seq", "session_id",
                                         "ts", "type", "user_id"]] * 4
    assert seqs(chans) == sorted(set(seqs(chans)))


def test_after_seq_answers_what_follows_and_repeats_after_a_lost_response(make_rtmd):
    r = make_rtmd(limits=FAST)
    logins(r, ["u%d" % i for i in range(5)])
    ev = wait_events(r, 10)
    s = seqs(ev)
    # acknowledge the first three; the next ones come
    d = after(r, s[2])
    assert d["events"] == ev[3:] and d["dropped"] == 0
    # the response is lost: the vendor asks again with the same after, gets the same
    assert after(r, s[2])["events"] == ev[3:]
    # newer events join the answer of the same after
    logins(r, ["late"])
    wait_until(lambda: len(after(r, s[2])["events"]) == 9, 10, what="the late events")
    more = after(r, s[2])["events"]
    assert more[:7] == ev[3:] and utypes(more[7:]) == [("Login", "late"), ("Logout", "late")]
    assert seqs(more) == sorted(set(seqs(more))) and seqs(more)[7] > s[-1]
    # the newest acknowledged: nothing follows
    assert after(r, seqs(more)[-1])["events"] == []


def test_after_answers_at_most_events_max_pull(make_rtmd):
    r = make_rtmd(limits=dict(FAST, events_max_pull=3))
    logins(r, ["u%d" % i for i in range(4)])
    wait_until(lambda: len(after(r, 0)["events"]) == 3, 10, what="3 events")
    first = after(r, 0)["events"]
    nxt = after(r, first[-1]["seq"])["events"]
    assert len(nxt) == 3 and nxt[0]["seq"] > first[-1]["seq"]
    rest = after(r, nxt[-1]["seq"])["events"]
    assert utypes(first + nxt + rest) == [(t, "u%d" % i) for i in range(4)
                                          for t in ("Login", "Logout")]


def test_after_beyond_the_newest_and_bad_values_are_400(make_rtmd):
    r = make_rtmd(limits=FAST)
    # an empty log: after=0 is fine, after=1 is beyond the newest
    assert after(r, 0)["events"] == []
    st, hd, body = after_raw(r, 1)
    assert st == 400 and json.loads(body)["code"] == "invalid_after", body
    logins(r, ["alice"])
    ev = wait_events(r, 2)
    st, _, body = after_raw(r, ev[-1]["seq"] + 1)
    assert st == 400 and json.loads(body)["code"] == "invalid_after", body
    for bad in ("", "-1", "+1", "1.0", "0x10", "abc", "1%20", "%201", "9007199254740992",
                "99999999999999999999999", "1e3"):
        st, _, body = after_raw(r, bad)
        assert st == 400, (bad, st, body)
        d = json.loads(body)
        assert d["code"] == "invalid_after" and d["result"] == "failed", (bad, d)
    # nothing of that acknowledged anything: a plain pull still gets both
    assert utypes(r.events("user")) == [("Login", "alice"), ("Logout", "alice")]
    # other query parameters leave a pull plain (as before)
    logins(r, ["bob"])
    wait_until(lambda: len(after(r, 0)["events"]) == 4, 10, what="bob's events")
    st, hd, body = r.get("/dev/v2/project/%s/rtm/vendor/user_events?foo=1" % APP,
                         headers={"Authorization": basic()})
    assert st == 200 and b'"seq"' not in body and b'"dropped"' not in body
    assert utypes(json.loads(body)["events"]) == [("Login", "bob"), ("Logout", "bob")]


# ---- the read position ---------------------------------------------------------------------

def test_after_moves_the_region_position_and_a_plain_pull_goes_on_after_it(make_rtmd):
    r = make_rtmd(limits=FAST)
    logins(r, ["u%d" % i for i in range(3)])
    ev = wait_events(r, 6)
    # acknowledging up to the 2nd: a plain pull of this region starts at the 3rd
    after(r, ev[1]["seq"])
    plain = r.events("user")
    assert utypes(plain) == utypes(ev[2:])
    # the plain pull consumed the rest, after still answers them (nothing lost)
    assert after(r, ev[1]["seq"])["events"] == ev[2:]
    # an after below the position acknowledges nothing new and does not move it back
    assert after(r, 0)["events"] == ev
    assert r.events("user") == []
    # the other region has its own position
    assert utypes(r.events("user", region="eu")) == utypes(ev)


def test_after_position_survives_a_restart(make_rtmd):
    r = make_rtmd(limits=FAST)
    logins(r, ["u%d" % i for i in range(3)])
    ev = wait_events(r, 6)
    after(r, ev[3]["seq"])
    r.stop()
    r.restart()
    # the same numbers and session_ids after the restart
    again = after(r, 0)["events"]
    assert again[:6] == ev
    assert utypes(r.events("user")) == utypes(ev[4:])


# ---- session_id ----------------------------------------------------------------------------

def test_session_id_pairs_a_logout_with_its_login(make_rtmd):
    r = make_rtmd(limits=FAST)
    a1 = r.ws()
    assert a1.login("alice", token=token("alice"))["ok"]
    assert a1.call("join", channel="room")["ok"]
    b = r.ws()
    assert b.login("bob", token=token("bob"))["ok"]
    # alice again: takes the first session over
    a2 = r.ws()
    assert a2.login("alice", token=token("alice"))["ok"]
    assert a2.call("join", channel="room")["ok"]
    assert a2.call("logout")["ok"]
    assert b.call("logout")["ok"]
    users = wait_events(r, 6)
    chans = wait_events(r, 4, "channel")
    assert utypes(users) == [("Login", "alice"), ("Login", "bob"), ("Logout", "alice"),
                             ("Login", "alice"), ("Logout", "alice"), ("Logout", "bob")]
    sid = [e["session_id"] for e in users]
    assert all(isinstance(x, str) and "|" in x for x in sid), sid
    a_first, b_s, a_first_end, a_second, a_second_end, b_end = sid
    assert a_first == a_first_end and a_second == a_second_end and b_s == b_end
    assert len({a_first, a_second, b_s}) == 3
    # channel events carry the session they belong to
    assert ctypes(chans) == [("Join", "alice", "room"), ("Leave", "alice", "room"),
                             ("Join", "alice", "room"), ("Leave", "alice", "room")]
    assert [e["session_id"] for e in chans] == [a_first, a_first, a_second, a_second]
    for ws in (a1, a2, b):
        ws.close()


def test_session_id_of_sessions_ended_at_restart(make_rtmd):
    r = make_rtmd(limits=FAST)
    ws = r.ws()
    assert ws.login("alice", token=token("alice"))["ok"]
    assert ws.call("join", channel="room")["ok"]
    login = wait_events(r, 1)[0]
    r.kill9()
    r.restart()
    users = wait_events(r, 2)
    chans = wait_events(r, 2, "channel")
    assert utypes(users) == [("Login", "alice"), ("Logout", "alice")]
    assert users[1]["session_id"] == login["session_id"]
    assert [e["session_id"] for e in chans] == [login["session_id"]] * 2


# ---- retention -----------------------------------------------------------------------------

def test_after_events_dropped_by_retention(make_rtmd):
    r = make_rtmd(limits=dict(FAST, events_retain=4, events_max_pull=4))
    logins(r, ["u0"])
    first = wait_events(r, 2)
    logins(r, ["u%d" % i for i in range(1, 5)])  # 8 more: the log keeps the newest 4
    wait_until(lambda: after(r, 0)["events"][-1]["user_id"] == "u4", 10, what="u4's events")
    d = after(r, first[0]["seq"])
    # the answer starts at the oldest kept and says how many numbers were removed
    assert utypes(d["events"]) == [("Login", "u3"), ("Logout", "u3"), ("Login", "u4"),
                                   ("Logout", "u4")]
    assert d["dropped"] == d["events"][0]["seq"] - first[0]["seq"] - 1 > 0
    assert after(r, d["events"][0]["seq"] - 1)["dropped"] == 0
    # after=0: from the oldest kept, every number before it reported
    z = after(r, 0)
    assert z["events"] == d["events"] and z["dropped"] == d["events"][0]["seq"] - 1
    # the region's unread events that were dropped count as today
    dropped = r.metrics()['rtmd_events_dropped_total{region="default",log="user"}']
    assert dropped >= 5, dropped


# ---- two redis nodes, one region -----------------------------------------------------------

def node(make_rtmd, redis_server, name):
    st = {"backend": "redis", "redis_url": redis_server.url, "redis_timeout_ms": 500,
          "node_timeout_s": 2}
    return make_rtmd(name=name, store=st, server={"node_id": name}, limits=FAST)


def test_after_on_two_redis_nodes_of_one_region(make_rtmd, redis_server):
    a = node(make_rtmd, redis_server, "na")
    b = node(make_rtmd, redis_server, "nb")
    logins(a, ["alice"])
    logins(b, ["bob"])
    ev = wait_events(a, 4)
    # one numbering for the app's log, whichever node recorded or answers
    assert after(b, 0)["events"] == ev
    assert sorted(e["session_id"].split("|")[0] for e in ev) == ["na", "na", "nb", "nb"]
    # acknowledged on one node, the region's position moved for both
    after(a, ev[1]["seq"])
    assert utypes(Events(b, "user", APP).pull()) == utypes(ev[2:])
    # a lost answer asked again on the other node: the same events
    assert after(a, ev[1]["seq"])["events"] == after(b, ev[1]["seq"])["events"] == ev[2:]
    st, _, body = after_raw(b, ev[-1]["seq"] + 1)
    assert st == 400, body


def test_after_on_redis_events_an_older_rtmd_recorded_carry_an_empty_session_id(make_rtmd,
                                                                               redis_server):
    """Events recorded by an rtmd that kept no session_ids (a rolling upgrade) answer "";
    the others keep theirs, matched by number."""
    a = node(make_rtmd, redis_server, "na")
    logins(a, ["alice"])
    ev = wait_events(a, 2)
    es = "rtmd:{%s}:es:u" % APP
    assert redis_server.command("LLEN", es) == 2
    # an older node records a Login: the event and its number, no session_id
    old = '{"ms":1,"ts":1,"type":"Login","user_id":"old"}'
    redis_server.command("RPUSH", "rtmd:{%s}:ev:u" % APP, old)
    redis_server.command("HINCRBY", "rtmd:{%s}:evn" % APP, "u", "1")
    logins(a, ["bob"])
    got = wait_events(a, 5)
    assert utypes(got) == [("Login", "alice"), ("Logout", "alice"), ("Login", "old"),
                           ("Login", "bob"), ("Logout", "bob")]
    assert seqs(got) == [1, 2, 3, 4, 5]
    sid = [e["session_id"] for e in got]
    assert sid[:2] == [ev[0]["session_id"]] * 2 and sid[2] == ""
    assert sid[3] == sid[4] and sid[3].startswith("na|") and sid[3] != sid[0]
    # entries lost altogether: those events answer "" too
    redis_server.command("LTRIM", es, "2", "-1")
    sid = [e["session_id"] for e in after(a, 0)["events"]]
    assert sid[:3] == ["", "", ""] and sid[3] == sid[4] != ""


def full_reads(r):
    return r.metrics()["rtmd_redis_after_full_reads_total"]


def test_after_on_redis_takes_the_events_from_es_without_the_full_script(make_rtmd, redis_server):
    """Each es entry is "NUMBER:SESSION_ID\\nJSON": an after read takes its events from there with
    one LRANGE and checks each one's number; the script that joins the events is not needed."""
    a = node(make_rtmd, redis_server, "na")
    logins(a, ["alice", "bob"], channels=["c1"])
    ev = wait_events(a, 4)
    es = redis_server.command("LRANGE", "rtmd:{%s}:es:u" % APP, "0", "-1")
    log = redis_server.command("LRANGE", "rtmd:{%s}:ev:u" % APP, "0", "-1")
    assert [e.decode() if isinstance(e, bytes) else e for e in es] == [
        "%d:%s\n%s" % (e["seq"], e["session_id"], j.decode() if isinstance(j, bytes) else j)
        for e, j in zip(ev, log)]
    for n in range(4):
        assert after(a, n)["events"] == ev[n:]
    cev = wait_events(a, 4, kind="channel")
    assert after(a, cev[1]["seq"], kind="channel")["events"] == cev[2:]
    assert full_reads(a) == 0


def test_after_on_redis_es_entries_of_an_older_rtmd_take_the_full_script(make_rtmd, redis_server):
    """Entries as an older rtmd wrote them ("NUMBER:SESSION_ID", no JSON) answer the same events
    with the same session ids, through the script that joins them in Redis."""
    a = node(make_rtmd, redis_server, "na")
    logins(a, ["alice", "bob"])
    ev = wait_events(a, 4)
    es = "rtmd:{%s}:es:u" % APP
    for i, e in enumerate(ev[:2]):
        redis_server.command("LSET", es, str(i), "%d:%s" % (e["seq"], e["session_id"]))
    assert after(a, 0)["events"] == ev
    assert full_reads(a) == 1
    assert after(a, 2)["events"] == ev[2:]  # those entries are this rtmd's
    assert full_reads(a) == 1


def test_after_on_redis_es_longer_than_the_log_still_answers(make_rtmd, redis_server):
    """Entries es should not hold (more than the events ever added, numbered 0) are passed
    over by number: the read answers the log's events, not a store error."""
    a = node(make_rtmd, redis_server, "na")
    logins(a, ["alice", "bob"])
    ev = wait_events(a, 4)
    for _ in range(3):
        redis_server.command("LPUSH", "rtmd:{%s}:es:u" % APP, "0:stray\n{}")
    assert after(a, 0)["events"] == ev
    assert after(a, 2)["events"] == ev[2:]


def test_after_on_redis_trims_session_ids_with_the_events(make_rtmd, redis_server):
    st = {"backend": "redis", "redis_url": redis_server.url, "redis_timeout_ms": 500,
          "node_timeout_s": 2}
    a = make_rtmd(name="na", store=st, server={"node_id": "na"},
                  limits=dict(FAST, events_retain=3, events_max_pull=3))
    logins(a, ["u%d" % i for i in range(4)])
    wait_until(lambda: after(a, 0)["events"][-1]["user_id"] == "u3", 10, what="u3's events")
    assert redis_server.command("LLEN", "rtmd:{%s}:es:u" % APP) == 3
    d = after(a, 0)
    assert seqs(d["events"]) == [6, 7, 8] and d["dropped"] == 5
    assert all(e["session_id"].startswith("na|") for e in d["events"])
    # es trimmed since this node last read it: the range asked where es started then misses,
    # and is asked again where the script found es starting
    logins(a, ["u4"])
    wait_until(lambda: after(a, 7)["events"][-1]["seq"] == 10, 10, what="u4's events")
    d = after(a, 7)
    assert seqs(d["events"]) == [8, 9, 10] and d["dropped"] == 0
    assert [e["user_id"] for e in d["events"]] == ["u3", "u4", "u4"]
    assert d["events"][1]["session_id"] == d["events"][2]["session_id"] != d["events"][0][
        "session_id"]
    assert full_reads(a) == 0
