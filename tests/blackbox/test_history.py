"""Message history (docs/API.md "Message history"):
only flagged messages are kept; POST rtm/message/history/query makes a
single-use, URL-safe handle, GET .../query/{handle} returns the messages,
GET .../count counts them; every filter row, the times, paging, the 400s,
410s and 429s, durability over kill -9 and retention."""
import json
import time
import urllib.parse

import pytest

from harness import APP, APP_NOCERT, Rtmd, assert_error, basic, token, wait_until
from msgutil import (FAST, HANDLE_RE, assert_answer, assert_location, assert_messages,
                     assert_reply_ok, base, count, count_path, hist_body, hist_get, hist_post,
                     history, iso, iso_s, member, now_ms, online, push, pushes, request,
                     send_channel, send_peer, short, window)
from harness import Ws

# ---- one shared scenario for the filter rules ---------------------------------------------------
#
#   room: alice, bob, carol (erin joins before C4)
#   P1  alice -> bob     peer, history           (bob online)
#   --  alice -> bob     peer, no history         not kept
#   C1  alice -> room    publish, history        to bob, carol
#   P3  bob -> alice     peer, history
#   P4  carol -> bob     REST peer, history
#   C2  dave -> room     REST channel, history   to alice, bob, carol (dave is no member)
#   --  alice -> room    publish, no history      not kept
#   --  REST dave -> bob enable_historical_messaging false: not kept
#   C4  bob -> room      publish, history        to alice, carol, erin
#   P5  alice -> zoe     peer, history           zoe never online
#   P6  dave -> "room"   REST peer to a USER named room, history


def expected_scenario():
    P = "peer_message"
    C = "channel_message"
    return {
        "P1": (P, "alice", "bob", "p1 hello bob"),
        "C1": (C, "alice", "room", "c1 hello room"),
        "P3": (P, "bob", "alice", "p3 hi alice"),
        "P4": (P, "carol", "bob", "p4 from carol"),
        "C2": (C, "dave", "room", "c2 from the backend"),
        "C4": (C, "bob", "room", "c4 erin is here"),
        "P5": (P, "alice", "zoe", "p5 to someone offline"),
        "P6": (P, "dave", "room", "p6 to a user named room"),
    }


ORDER = ["P1", "C1", "P3", "P4", "C2", "C4", "P5", "P6"]


def build_scenario(r):
    exp = expected_scenario()
    alice = online(r, "alice", channels=["room"])
    bob = online(r, "bob", channels=["room"])
    carol = online(r, "carol", channels=["room"])
    assert pushes(alice, 2) == [member("member_joined", "room", "bob"),
                                member("member_joined", "room", "carol")]
    assert pushes(bob, 1) == [member("member_joined", "room", "carol")]
    ms = {}

    def tick():
        # distinct milliseconds, so asc/desc order is the send order
        t = now_ms()
        wait_until(lambda: now_ms() > t, 1, interval=0.001)

    assert_reply_ok(alice.call("peer", to="bob", payload=exp["P1"][3], history=True), state="delivered")
    ms["P1"] = push(bob)["ms"]
    tick()
    assert alice.call("peer", to="bob", payload="unkept peer")["state"] == "delivered"
    push(bob)
    tick()
    assert_reply_ok(alice.call("publish", channel="room", payload=exp["C1"][3], history=True))
    ms["C1"] = push(bob)["ms"]
    assert push(carol)["ms"] == ms["C1"]
    tick()
    assert bob.call("peer", to="alice", payload=exp["P3"][3], history=True)["state"] == "delivered"
    ms["P3"] = push(alice)["ms"]
    tick()
    assert_answer(send_peer(r, "carol", "bob", exp["P4"][3], history=True), "message_sent")
    ms["P4"] = push(bob)["ms"]
    tick()
    assert_answer(send_channel(r, "dave", "room", exp["C2"][3], history=True), "message_sent")
    ms["C2"] = push(alice)["ms"]
    assert push(bob)["ms"] == ms["C2"] == push(carol)["ms"]
    tick()
    assert_reply_ok(alice.call("publish", channel="room", payload="unkept channel"))
    push(bob), push(carol)
    assert_answer(send_peer(r, "dave", "bob", "unkept rest", history=False), "message_sent")
    push(bob)
    assert_answer(send_channel(r, "dave", "room", "unkept rest channel"), "message_sent")
    push(alice), push(bob), push(carol)
    erin = online(r, "erin", channels=["room"])
    for ws in (alice, bob, carol):
        assert push(ws) == member("member_joined", "room", "erin")
    tick()
    assert_reply_ok(bob.call("publish", channel="room", payload=exp["C4"][3], history=True))
    ms["C4"] = push(alice)["ms"]
    assert push(carol)["ms"] == ms["C4"] == push(erin)["ms"]
    tick()
    t0 = now_ms()
    assert alice.call("peer", to="zoe", payload=exp["P5"][3], history=True)["state"] == "offline"
    ms["P5"] = (t0, now_ms())
    tick()
    t0 = now_ms()
    assert_answer(send_peer(r, "dave", "room", exp["P6"][3], history=True), "message_offline")
    ms["P6"] = (t0, now_ms())
    for ws in (alice, bob, carol, erin):
        ws.close()
    return exp, ms


@pytest.fixture(scope="module")
def world(tmp_path_factory, module_store):
    r = Rtmd(tmp_path_factory.mktemp("history"), limits=FAST, store=module_store()).start()
    try:
        exp, ms = build_scenario(r)
        yield r, exp, ms
    finally:
        died = r.died()
        rc = r.stop() if r.alive() else None
        assert not died, r.read_log()[-4000:]
        assert rc == 0, r.read_log()[-4000:]
        r.assert_clean_log()


ROWS = [
    # (source, destination, expected keys) -- the docs/API.md table, row by row
    (None, "bob", ["P1", "C1", "P4", "C2"]),      # all bob received: peer and channel
    (None, "carol", ["C1", "C2", "C4"]),
    (None, "alice", ["P3", "C2", "C4"]),          # not her own channel messages
    (None, "erin", ["C4"]),                       # only what came after her join
    (None, "zoe", ["P5"]),
    (None, "room", ["C1", "C2", "C4", "P6"]),     # the channel, and the user named room
    ("alice", None, ["P1", "C1", "P5"]),          # all alice sent
    ("bob", None, ["P3", "C4"]),
    ("dave", None, ["C2", "P6"]),
    ("alice", "bob", ["P1"]),                     # peer messages alice -> bob only
    ("carol", "bob", ["P4"]),
    ("bob", "alice", ["P3"]),
    ("alice", "carol", []),                       # a channel message is not a peer message
    ("alice", "room", ["C1"]),                    # what alice sent to the channel
    ("bob", "room", ["C4"]),
    ("dave", "room", ["C2", "P6"]),
    ("nobody", None, []),
    (None, "nobody", []),
    ("erin", "room", []),
]


def row_id(row):
    return "%s->%s" % (row[0] or "*", row[1] or "*")


@pytest.mark.parametrize("source,destination,keys", ROWS, ids=[row_id(r) for r in ROWS])
def test_filter_rows(world, source, destination, keys):
    r, exp, ms = world
    got = history(r, source, destination, limit=100)
    assert short(got) == [exp[k] for k in keys]
    for m, k in zip(got, keys):
        if isinstance(ms[k], tuple):
            assert ms[k][0] - 5 <= m["ms"] <= ms[k][1] + 5, (m, ms[k])
        else:
            assert m["ms"] == ms[k], (m, ms[k])  # the ms the receivers were pushed
    got_desc = history(r, source, destination, limit=100, order="desc")
    assert got_desc == list(reversed(got))
    params = {k: v for k, v in (("source", source), ("destination", destination)) if v}
    assert count(r, **params) == len(keys)


def test_unflagged_messages_are_not_kept(world):
    r, exp, ms = world
    every = history(r, None, "bob", limit=100) + history(r, "alice", None, limit=100) + \
        history(r, None, "room", limit=100) + history(r, "dave", None, limit=100)
    assert not [m for m in every if m["payload"].startswith("unkept")]


def test_messages_have_exactly_the_documented_fields(world):
    r, exp, ms = world
    st, hd, body = hist_get(r, assert_location(hist_post(r, hist_body("alice", None))))
    assert st == 200
    d = json.loads(body)
    assert list(d) == ["code", "messages", "request_id", "result"]
    assert d["messages"][0] == {"dst": "bob", "message_type": "peer_message", "ms": ms["P1"],
                                "payload": exp["P1"][3], "src": "alice"}
    assert list(d["messages"][0]) == ["dst", "message_type", "ms", "payload", "src"]
    assert d["messages"][1]["message_type"] == "channel_message" and d["messages"][1]["dst"] == "room"


def test_neither_source_nor_destination_is_400(world):
    r, exp, ms = world
    for f in (hist_body(), hist_body() | {"filter": dict(hist_body()["filter"], source=None,
                                                           destination=None)}):
        assert_error(hist_post(r, f), 400, "bad_request")
    s, e = window()
    assert_error(request(r, "GET", count_path(raw="start_time=%s&end_time=%s" % (s, e))), 400)
    assert_error(request(r, "GET", count_path(raw="source=&destination=&start_time=%s&end_time=%s"
                                              % (s, e))), 400)


# ---- the query resource ---------------------------------------------------------------------------

def test_post_answer_is_exact_and_echoes_paging(world):
    r, exp, ms = world
    st, hd, body = hist_post(r, hist_body("alice", None))
    h = assert_location((st, hd, body))
    keys = [k for k, _ in json.loads(body, object_pairs_hook=list)]
    assert keys == ["limit", "location", "offset", "order", "request_id", "result"]
    assert HANDLE_RE.match(h)
    for limit in (20, 50, 100):
        for order in ("asc", "desc"):
            assert_location(hist_post(r, hist_body("alice", None, limit=limit, offset=3, order=order)),
                            limit=limit, offset=3, order=order)
    # defaults
    assert_location(hist_post(r, hist_body("alice", None)), limit=20, offset=0, order="asc")
    assert_location(hist_post(r, hist_body("alice", None, limit=None, offset=None, order=None)),
                    limit=20, offset=0, order="asc")


def test_handles_are_url_safe_and_distinct(world):
    r, exp, ms = world
    handles = [assert_location(hist_post(r, hist_body("alice", None))) for _ in range(40)]
    assert len(set(handles)) == 40
    assert all(HANDLE_RE.match(h) and urllib.parse.quote(h, safe="") == h for h in handles)


def test_a_handle_is_single_use(world):
    r, exp, ms = world
    h = assert_location(hist_post(r, hist_body("alice", "bob")))
    assert short(assert_messages(hist_get(r, h))) == [exp["P1"]]
    assert_error(hist_get(r, h), 410)
    assert_error(hist_get(r, h), 410)


def test_unknown_and_malformed_handles_are_410(world):
    r, exp, ms = world
    for h in ("doesnotexist", "A" * 64, "abc%2B%2F%3D", "MjIzMDA3OjEyODA5MzkyOQ==", "x" * 300):
        assert_error(hist_get(r, h), 410)


def test_handles_taken_from_location_both_ways_real_clients_do(world):
    r, exp, ms = world
    # flat (Android/desktop): everything after "/query/"
    st, hd, body = hist_post(r, hist_body("bob", "alice"))
    loc = json.loads(body)["location"]
    handle = loc.split("/query/", 1)[1]
    assert short(assert_messages(hist_get(r, handle))) == [exp["P3"]]
    # React client: location.slice(1) appended to the project base URL
    st, hd, body = hist_post(r, hist_body("bob", "alice"))
    loc = json.loads(body)["location"]
    assert loc.startswith("~/")
    resp = request(r, "GET", base(APP_NOCERT) + loc[1:])
    assert short(assert_messages(resp)) == [exp["P3"]]


def test_a_handle_belongs_to_its_app(world):
    r, exp, ms = world
    h = assert_location(hist_post(r, hist_body("alice", "bob")))
    assert_error(hist_get(r, h, app=APP), 410)  # same customer, other app
    assert short(assert_messages(hist_get(r, h))) == [exp["P1"]]


def test_handle_expires_after_history_handle_ttl_s(make_rtmd):
    r = make_rtmd(limits=dict(FAST, history_handle_ttl_s=1))
    alice = online(r, "alice")
    assert alice.call("peer", to="bob", payload="x", history=True)["state"] == "offline"
    fresh = assert_location(hist_post(r, hist_body("alice", None)))
    t = now_ms()
    old = assert_location(hist_post(r, hist_body("alice", None)))
    assert [m["payload"] for m in assert_messages(hist_get(r, fresh))] == ["x"]
    wait_until(lambda: now_ms() > t + 1100, 5, interval=0.02, what="the handle's ttl to pass")
    assert_error(hist_get(r, old), 410)


# ---- times ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def timed(tmp_path_factory, module_store):
    """Three kept peer messages u1 -> u2, each in its own millisecond, with
    their exact ms (from the receiver's pushes)."""
    r = Rtmd(tmp_path_factory.mktemp("times"), limits=FAST, store=module_store()).start()
    try:
        u1, u2 = online(r, "u1"), online(r, "u2")
        ms = []
        for i in range(3):
            if ms:
                wait_until(lambda: now_ms() > ms[-1] + 2, 1, interval=0.001)
            assert u1.call("peer", to="u2", payload="t%d" % i, history=True)["state"] == "delivered"
            ms.append(push(u2)["ms"])
        u1.close()
        u2.close()
        yield r, ms
    finally:
        died = r.died()
        rc = r.stop() if r.alive() else None
        assert not died and rc == 0, r.read_log()[-4000:]
        r.assert_clean_log()


def payloads(r, start, end, source="u1", destination="u2"):
    return [m["payload"] for m in history(r, source, destination, start=start, end=end)]


def test_times_as_javascript_toisostring_makes_them_bound_inclusively(timed):
    r, ms = timed
    assert payloads(r, iso(ms[0]), iso(ms[2])) == ["t0", "t1", "t2"]
    assert payloads(r, iso(ms[1]), iso(ms[1])) == ["t1"]
    assert payloads(r, iso(ms[0] + 1), iso(ms[2] - 1)) == ["t1"]
    assert payloads(r, iso(ms[2] + 1), iso(ms[2] + 1000)) == []
    assert payloads(r, iso(ms[0] - 1000), iso(ms[0] - 1)) == []
    # count agrees
    assert count(r, source="u1", start_time=iso(ms[1]), end_time=iso(ms[2])) == 2
    assert count(r, destination="u2", start_time=iso(ms[1]), end_time=iso(ms[1])) == 1


def test_times_without_fraction(timed):
    r, ms = timed
    # whole seconds around them (the Android client's yyyy-MM-dd'T'HH:mm:ss'Z')
    assert payloads(r, iso_s(ms[0]), iso_s(ms[2] + 1000)) == ["t0", "t1", "t2"]
    assert payloads(r, iso_s(ms[2] + 1000), iso_s(ms[2] + 2000)) == []
    assert count(r, source="u1", start_time=iso_s(ms[0]), end_time=iso_s(ms[2] + 1000)) == 3


@pytest.mark.parametrize("fmt", ["%s.5Z", "%s.12Z", "%s.123456Z", "%s.000000001Z"])
def test_other_fraction_lengths_are_accepted(timed, fmt):
    r, ms = timed
    start = fmt % time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms[0] // 1000 - 1))
    end = fmt % time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms[2] // 1000 + 1))
    assert payloads(r, start, end) == ["t0", "t1", "t2"]


BAD_TIMES = ["2026-11-26 05:22:46Z", "2026-11-26T05:22:46+08:00",
             "2026-11-26", "1795671918267", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
             "2026-11-26T24:00:00Z", "2026-11-26T05:60:00Z", "2026-11-26T05:22:46.Z", "",
             "2026-11-26T05:22:46.039Zjunk", "yesterday", "2026-11-26T05:22:46.1234567890Z"]


@pytest.mark.parametrize("bad", BAD_TIMES)
@pytest.mark.parametrize("which", ["start_time", "end_time"])
def test_bad_times_are_400_naming_the_field(timed, which, bad):
    r, ms = timed
    body = hist_body("u1", None)
    body["filter"][which] = bad
    d = assert_error(hist_post(r, body), 400, "bad_request")
    assert which in d["message"], d
    params = {"source": "u1", "start_time": iso(ms[0] - 1000), "end_time": iso(ms[2] + 1000)}
    params[which] = bad
    d = assert_error(request(r, "GET", count_path(raw=urllib.parse.urlencode(params))), 400)
    assert which in d["message"], d


@pytest.mark.parametrize("which", ["start_time", "end_time"])
def test_missing_or_non_string_times_are_400(timed, which):
    r, ms = timed
    for value in (KeyError, None, 1795671918267, ["2026-11-26T05:22:46Z"]):
        body = hist_body("u1", None)
        if value is KeyError:
            del body["filter"][which]
        else:
            body["filter"][which] = value
        d = assert_error(hist_post(r, body), 400, "bad_request")
        assert which in d["message"], d
    params = {"source": "u1", "start_time": iso(ms[0]), "end_time": iso(ms[2])}
    del params[which]
    d = assert_error(request(r, "GET", count_path(raw=urllib.parse.urlencode(params))), 400)
    assert which in d["message"], d


def test_start_after_end_is_400(timed):
    r, ms = timed
    d = assert_error(hist_post(r, hist_body("u1", None, start=iso(ms[1] + 1), end=iso(ms[1]))), 400)
    assert "start_time" in d["message"], d
    d = assert_error(request(r, "GET", count_path(source="u1", start_time=iso(ms[1] + 1),
                                                  end_time=iso(ms[1]))), 400)
    assert "start_time" in d["message"], d


# ---- count ------------------------------------------------------------------------------------------

def test_count_tolerates_quotes_and_an_empty_leading_parameter(timed):
    r, ms = timed
    s, e = iso(ms[0] - 1000), iso(ms[2] + 1000)
    for raw in ('source="u1"&destination="u2"&start_time=%s&end_time=%s' % (s, e),        # docs, raw
                'source=%%22u1%%22&destination=%%22u2%%22&start_time=%s&end_time=%s' % (s, e),
                '&destination="u2"&start_time=%s&end_time=%s' % (s, e),                   # "?&dest.."
                '&destination=u2&start_time=%s&end_time=%s' % (s, e),
                'source=u1&start_time=%s&end_time=%s' % (s, e),                           # Android
                'end_time=%s&start_time=%s&destination=u2' % (e, s)):
        assert count(r, raw=raw) == 3, raw


def test_count_answer_is_exact(timed):
    r, ms = timed
    st, hd, body = request(r, "GET", count_path(source="u1"))
    assert st == 200
    assert [k for k, _ in json.loads(body, object_pairs_hook=list)] == \
        ["code", "count", "request_id", "result"]
    d = json.loads(body)
    assert d["code"] == "ok" and d["count"] == 3 and d["result"] == "success"


def test_count_ignores_paging_and_counts_all(make_rtmd):
    r = make_rtmd(limits=FAST)
    for i in range(25):
        assert_answer(send_peer(r, "a", "b", "n%d" % i, history=True), "message_offline")
    assert count(r, source="a") == 25
    assert count(r, destination="b") == 25
    assert count(r, source="a", destination="b") == 25
    assert count(r, source="b") == 0


# ---- paging -----------------------------------------------------------------------------------------

def test_limit_offset_and_order_page_through(make_rtmd):
    r = make_rtmd(limits=FAST)
    alice = online(r, "alice")
    n = 25
    alice.send_raw(b"".join(
        Ws.frame(json.dumps({"op": "peer", "id": 100 + i, "to": "bob",
                                                   "payload": "n%02d" % i, "history": True}))
        for i in range(n)))
    for i in range(n):
        assert alice.recv() == {"op": "reply", "id": 100 + i, "ok": True, "state": "offline"}
    names = ["n%02d" % i for i in range(n)]

    def page(**kw):
        return [m["payload"] for m in history(r, "alice", "bob", **kw)]

    assert page() == names[:20]                                  # default limit 20
    assert page(offset=20) == names[20:]
    assert page(offset=1) == names[1:21]                         # offset 1 starts at the 2nd
    assert page(limit=50) == names
    assert page(limit=100) == names
    assert page(order="desc") == names[::-1][:20]
    assert page(order="desc", offset=20) == names[::-1][20:]
    assert page(order="asc", offset=24, limit=20) == names[24:]
    assert page(offset=25) == []
    assert page(offset=100000) == []


@pytest.mark.parametrize("field,value", [
    ("limit", 0), ("limit", 10), ("limit", 21), ("limit", 200), ("limit", "20"), ("limit", -20),
    ("limit", 20.5), ("limit", True), ("offset", -1), ("offset", 1.5), ("offset", "0"),
    ("offset", True), ("offset", [0]), ("order", "ASC"), ("order", "up"), ("order", ""),
    ("order", 1), ("order", True)])
def test_bad_paging_is_400_naming_the_field(world, field, value):
    r, exp, ms = world
    d = assert_error(hist_post(r, hist_body("alice", None, **{field: value})), 400, "bad_request")
    assert field in d["message"], d


@pytest.mark.parametrize("filt", ["x", [], None, 5, True, KeyError])
def test_filter_must_be_an_object(world, filt):
    r, exp, ms = world
    body = {"offset": 0, "limit": 20, "order": "asc"}
    if filt is not KeyError:
        body["filter"] = filt
    d = assert_error(hist_post(r, body), 400, "bad_request")
    assert "filter" in d["message"], d


@pytest.mark.parametrize("field,value", [("source", "a/b"), ("source", "s" * 65), ("source", 5),
                                         ("source", "null"), ("destination", "d" * 65),
                                         ("destination", ["bob"]), ("destination", "caf\u00e9"),
                                         ("source", "alice\u0000x")])
def test_bad_ids_are_400(world, field, value):
    r, exp, ms = world
    body = hist_body("alice", None) if field == "destination" else hist_body(None, "bob")
    body["filter"][field] = value
    d = assert_error(hist_post(r, body), 400, "bad_request")
    assert field in d["message"], d


@pytest.mark.parametrize("body", ["", "not json", "[1]", "null", '{"filter":', '"filter"'])
def test_a_body_that_is_not_a_json_object_is_400(world, body):
    r, exp, ms = world
    assert_error(r.get(base(APP_NOCERT) + "/rtm/message/history/query", method="POST", body=body,
                       headers={"Authorization": basic()}), 400, "bad_request")


def test_body_exactly_as_the_docs_show_it(world):
    r, exp, ms = world
    s, e = window()
    doc = """{
  "filter": {
    "source": "alice",
    "destination": "bob",
    "start_time": "%s",
    "end_time": "%s"
  },
  "offset": 0,
  "limit": 20,
  "order": "asc"
}""" % (s, e)
    resp = r.get(base(APP_NOCERT) + "/rtm/message/history/query", method="POST", body=doc,
                 headers={"Authorization": basic(), "Content-Type": "application/json;charset=utf-8"})
    assert short(assert_messages(hist_get(r, assert_location(resp)))) == [exp["P1"]]


# ---- auth and rate ---------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["006", "007"])
def test_token_auth_as_real_clients_use_it(make_rtmd, scheme):
    r = make_rtmd(limits=FAST)
    alice = online(r, "alice", app=APP, channels=["class"])
    assert_reply_ok(alice.call("publish", channel="class", payload="lesson", history=True))
    if scheme == "006":
        auth = {"x-agora-token": token("alice", v="006"), "x-agora-uid": "alice"}
    else:
        auth = {"Authorization": "agora token=" + token("alice")}
    got = history(r, None, "class", app=APP, auth=auth, order="desc")
    assert short(got) == [("channel_message", "alice", "class", "lesson")]
    assert count(r, app=APP, auth=auth, destination="class") == 1
    assert_error(hist_post(r, hist_body(None, "class"), app=APP, auth=None), 401)
    assert_error(request(r, "GET", count_path(app=APP, destination="class"), auth=None), 401)
    h = assert_location(hist_post(r, hist_body(None, "class"), app=APP))
    assert_error(hist_get(r, h, app=APP, auth=None), 401)
    assert short(assert_messages(hist_get(r, h, app=APP))) == [("channel_message", "alice", "class", "lesson")]


def test_history_qps_limits_the_three_endpoints_and_a_429_consumes_nothing(make_rtmd):
    r = make_rtmd(limits={"history_qps": 2})
    hdr = {"Authorization": basic()}
    with r.http() as h:
        t0 = time.monotonic()
        st, hd, body = h.request("POST", base(APP_NOCERT) + "/rtm/message/history/query", hdr,
                                 json.dumps(hist_body("a", None)))
        handle = assert_location((st, hd, body))
        assert h.request("GET", count_path(source="a"), hdr)[0] == 200
        over = [h.request("GET", base(APP_NOCERT) + "/rtm/message/history/query/" + handle, hdr),
                h.request("GET", count_path(source="a"), hdr),
                h.request("POST", base(APP_NOCERT) + "/rtm/message/history/query", hdr,
                          json.dumps(hist_body("a", None)))]
        took = time.monotonic() - t0
    assert took < 0.45, "too slow to test a 2/s bucket: %.3f s" % took
    for resp in over:
        assert_error(resp, 429, "too_many_requests")
    # another app has its own bucket
    assert count(r, app=APP, source="a") == 0

    def answered():
        st, hd, body = hist_get(r, handle)
        assert st in (200, 429), (st, body)
        return st == 200

    wait_until(answered, 3, interval=0.05, what="the handle after the refill")  # the 429 kept it
    wait_until(lambda: hist_get(r, handle)[0] == 410, 3, interval=0.1, what="410 for the used handle")


# ---- durability and retention ----------------------------------------------------------------------

def test_kept_messages_survive_kill9(make_rtmd):
    r = make_rtmd(limits=FAST)
    alice = online(r, "alice", channels=["room"])
    bob = online(r, "bob", channels=["room"])
    push(alice)
    assert alice.call("peer", to="bob", payload="durable peer", history=True)["state"] == "delivered"
    assert push(bob)["payload"] == "durable peer"
    assert_reply_ok(alice.call("publish", channel="room", payload="durable channel", history=True))
    assert_answer(send_peer(r, "backend", "bob", "durable rest", history=True), "message_sent")
    assert_answer(send_channel(r, "backend", "room", "durable rest channel", history=True),
                  "message_sent")
    r.kill9()
    r.restart()
    assert short(history(r, None, "bob")) == [
        ("peer_message", "alice", "bob", "durable peer"),
        ("channel_message", "alice", "room", "durable channel"),
        ("peer_message", "backend", "bob", "durable rest"),
        ("channel_message", "backend", "room", "durable rest channel")]
    assert count(r, destination="room") == 2


def test_a_handle_made_before_kill9_still_answers_or_is_410(make_rtmd):
    r = make_rtmd(limits=FAST)
    assert_answer(send_peer(r, "a", "b", "x", history=True), "message_offline")
    h = assert_location(hist_post(r, hist_body("a", None)))
    r.kill9()
    r.restart()
    st, hd, body = hist_get(r, h)
    if st == 200:
        assert [m["payload"] for m in assert_messages((st, hd, body))] == ["x"]
        assert_error(hist_get(r, h), 410)
    else:
        assert_error((st, hd, body), 410)


def test_history_retention_hides_old_messages(make_rtmd):
    r = make_rtmd(limits=dict(FAST, history_retention_s=1))
    t_old = now_ms()
    assert_answer(send_peer(r, "a", "b", "old", history=True), "message_offline")
    assert count(r, source="a") == 1
    wait_until(lambda: now_ms() > t_old + 1100, 5, interval=0.02, what="the retention to pass")
    assert_answer(send_peer(r, "a", "b", "new", history=True), "message_offline")
    assert [m["payload"] for m in history(r, "a", None)] == ["new"]
    assert count(r, source="a") == 1
    assert count(r, destination="b") == 1


def test_payloads_round_trip_through_history(make_rtmd):
    r = make_rtmd(limits=FAST)
    special = ["quote \" backslash \\ / nl \n tab \t \x01", "ünïcödé 中文 😀", "</script>",
               "\u2028\u2029", "z" * 32768, '"' * 32768, "é" * 16384]
    for p in special:
        assert_answer(send_peer(r, "a", "b", p, history=True), "message_offline")
    assert [m["payload"] for m in history(r, "a", None)] == special


def test_100_full_size_messages_in_one_answer(make_rtmd):
    r = make_rtmd(limits=FAST)
    big = ["%03d" % i + "\\" * 32765 for i in range(100)]
    with r.http() as h:
        for p in big:
            st, hd, body = h.request("POST", "%s/rtm/users/a/channel_messages" % base(APP_NOCERT),
                                     {"Authorization": basic()},
                                     json.dumps({"channel_name": "big", "enable_historical_messaging": True,
                                                 "payload": p}))
            assert st == 200, body
    got = history(r, None, "big", limit=100)
    assert [m["payload"] for m in got] == big
