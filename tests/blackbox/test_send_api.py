"""Sending from the backend (docs/API.md "Sending messages"): POST rtm/users/{user_id}/peer_messages[?wait_for_ack=] and
rtm/users/{user_id}/channel_messages with Agora's bodies and answers."""
import json
import threading
import time

import pytest

from harness import APP, APP_NOCERT, Http, assert_error, basic, now_ms, token, wait_until
from msgutil import (FAST, assert_answer, assert_channel_push, assert_peer_push, channel_body,
                     channel_path, member, online, peer_body, peer_path, push, pushes, readable,
                     request, send_channel, send_peer, silent)


@pytest.fixture
def fast(make_rtmd):
    return make_rtmd(limits=FAST)


def open_request(rtmd, method, path, body, headers=None):
    """Sends a request without reading its answer; returns the connection."""
    h = rtmd.http()
    hd = {"Authorization": basic()}
    hd.update(headers or {})
    h.send(Http.build(method, path, hd, json.dumps(body) if body is not None else None))
    return h


# ---- peer_messages --------------------------------------------------------------------------

def test_peer_message_to_an_online_user_is_message_sent(fast):
    bob = online(fast, "bob")
    t0 = now_ms()
    assert_answer(send_peer(fast, "alice", "bob", "from the backend"), "message_sent")
    assert_peer_push(push(bob), "alice", "from the backend", t0, now_ms())
    silent(bob)


def test_peer_message_to_a_user_not_online_is_message_offline_without_result(fast):
    d = assert_answer(send_peer(fast, "alice", "bob", "nobody home"), "message_offline")
    assert "result" not in d
    # not kept without enable_offline_messaging
    bob = online(fast, "bob")
    assert bob.call("ping")["ok"] is True
    silent(bob)


def test_peer_message_reaches_only_its_receiver_in_its_app(fast):
    bob = online(fast, "bob")
    bob_app = online(fast, "bob", app=APP)
    carol = online(fast, "carol")
    for i in range(5):
        assert_answer(send_peer(fast, "alice", "bob", "n%d" % i), "message_sent")
    got = pushes(bob, 5)
    assert [m["payload"] for m in got] == ["n%d" % i for i in range(5)]
    assert len({m["mid"] for m in got}) == 5
    silent(carol, 0.1)
    silent(bob_app, 0.1)
    silent(bob, 0.1)


def test_wait_for_ack_answers_message_delivered_once_the_client_acks(fast):
    bob = online(fast, "bob")
    h = open_request(fast, "POST", peer_path("alice", wait="true"), peer_body("bob", "ack this"))
    m = push(bob)
    assert_peer_push(m, "alice", "ack this")
    assert not readable(h.sock, 0.3), "answered before the client acked"
    assert bob.call("ack", mid=m["mid"]) == {"op": "reply", "id": 2, "ok": True}
    assert_answer(h.read_response(), "message_delivered")
    h.close()


def test_wait_for_ack_without_an_ack_is_408_after_peer_ack_timeout_ms(make_rtmd):
    r = make_rtmd(limits={"peer_ack_timeout_ms": 300})
    bob = online(r, "bob")
    t0 = time.monotonic()
    resp = send_peer(r, "alice", "bob", "never acked", wait="true")
    took = time.monotonic() - t0
    assert_error(resp, 408)
    assert 0.28 <= took < 5, took
    m = push(bob)
    assert_peer_push(m, "alice", "never acked")  # delivered all the same
    # an ack that comes too late changes nothing and is harmless
    assert bob.call("ack", mid=m["mid"]) == {"op": "reply", "id": 2, "ok": True}
    r.healthy()


def test_wait_for_ack_ignores_other_users_acks_and_wrong_mids(make_rtmd):
    r = make_rtmd(limits={"peer_ack_timeout_ms": 600})
    bob, carol = online(r, "bob"), online(r, "carol")
    h = open_request(r, "POST", peer_path("alice", wait="true"), peer_body("bob", "mine"))
    mid = push(bob)["mid"]
    assert carol.call("ack", mid=mid)["ok"] is True      # not the receiver
    assert bob.call("ack", mid=mid + 1)["ok"] is True    # not this message
    assert_error(h.read_response(), 408)
    h.close()


def test_wait_for_ack_to_a_user_not_online_is_message_offline_at_once(fast):
    # the default peer_ack_timeout_ms is 10 s: nothing may wait for it
    t0 = time.monotonic()
    d = assert_answer(send_peer(fast, "alice", "bob", "x", wait="true"), "message_offline")
    assert time.monotonic() - t0 < 2
    assert "result" not in d
    t0 = time.monotonic()
    assert_answer(send_peer(fast, "alice", "bob", "x", offline=True, wait="true"), "message_offline")
    assert time.monotonic() - t0 < 2
    bob = online(fast, "bob")
    assert_peer_push(push(bob), "alice", "x")  # only the one kept for it
    silent(bob)


def test_wait_for_ack_when_the_receiver_disconnects_is_408(make_rtmd):
    r = make_rtmd(limits={"peer_ack_timeout_ms": 500})
    bob = online(r, "bob")
    h = open_request(r, "POST", peer_path("alice", wait="true"), peer_body("bob", "bye"))
    push(bob)
    bob.close_socket()
    assert_error(h.read_response(), 408)
    h.close()
    r.healthy()


def test_wait_for_ack_false_answers_at_once(fast):
    bob = online(fast, "bob")
    t0 = time.monotonic()
    assert_answer(send_peer(fast, "alice", "bob", "x", wait="false"), "message_sent")
    assert time.monotonic() - t0 < 2
    assert_peer_push(push(bob), "alice", "x")


def test_pipelined_requests_behind_a_wait_for_ack_are_answered_in_order(fast):
    bob, carol = online(fast, "bob"), online(fast, "carol")
    h = fast.http()
    h.send(Http.build("POST", peer_path("alice", wait="true"), {"Authorization": basic()},
                      json.dumps(peer_body("bob", "first"))) +
           Http.build("POST", peer_path("alice"), {"Authorization": basic()},
                      json.dumps(peer_body("carol", "second"))))
    mid = push(bob)["mid"]
    assert not readable(h.sock, 0.3), "an answer came before the ack"
    assert bob.call("ack", mid=mid)["ok"] is True
    assert_answer(h.read_response(), "message_delivered")
    assert_answer(h.read_response(), "message_sent")
    assert_peer_push(push(carol), "alice", "second")
    h.close()


def test_the_sender_hanging_up_before_the_ack_is_harmless(make_rtmd):
    r = make_rtmd(limits={"peer_ack_timeout_ms": 400})
    bob = online(r, "bob")
    # acked after the HTTP client left
    h = open_request(r, "POST", peer_path("alice", wait="true"), peer_body("bob", "a"))
    mid = push(bob)["mid"]
    h.close()
    assert bob.call("ack", mid=mid)["ok"] is True
    # timing out after the HTTP client left
    h = open_request(r, "POST", peer_path("alice", wait="true"), peer_body("bob", "b"))
    push(bob)
    h.close()
    t = time.monotonic()
    wait_until(lambda: time.monotonic() > t + 0.6, 2, interval=0.05, what="the ack timeout to pass")
    r.healthy()
    assert_answer(send_peer(r, "alice", "bob", "still fine"), "message_sent")
    assert_peer_push(push(bob), "alice", "still fine")


@pytest.mark.parametrize("value", ["yes", "TRUEISH", "2", "truefalse"])
def test_wait_for_ack_must_be_a_boolean(fast, value):
    bob = online(fast, "bob")
    d = assert_error(send_peer(fast, "alice", "bob", "x", wait=value), 400, "bad_request")
    assert "wait_for_ack" in d["message"], d
    silent(bob)


def test_many_waiters_each_get_their_own_ack(fast):
    bob = online(fast, "bob")
    conns = [open_request(fast, "POST", peer_path("alice", wait="true"), peer_body("bob", "w%d" % i))
             for i in range(10)]
    got = pushes(bob, 10)
    by_payload = {m["payload"]: m["mid"] for m in got}
    for i in reversed(range(10)):  # ack in the reverse order
        assert bob.call("ack", mid=by_payload["w%d" % i])["ok"] is True
        assert_answer(conns[i].read_response(), "message_delivered")
    for c in conns:
        c.close()


def test_a_sigterm_answers_pending_waiters(make_rtmd):
    r = make_rtmd()
    bob = online(r, "bob")
    h = open_request(r, "POST", peer_path("alice", wait="true"), peer_body("bob", "x"))
    push(bob)
    t0 = time.monotonic()
    rc_holder = []
    t = threading.Thread(target=lambda: rc_holder.append(r.stop()))
    t.start()
    st, hd, body = h.read_response()
    assert st == 408, (st, body)
    t.join(20)
    assert rc_holder == [0]
    assert time.monotonic() - t0 < 9  # did not wait for the 10 s ack timeout


# ---- channel_messages --------------------------------------------------------------------------

def test_channel_message_reaches_every_current_member(fast):
    a = online(fast, "a", channels=["room"])
    b = online(fast, "b", channels=["room"])
    c = online(fast, "c", channels=["other"])
    assert push(a) == member("member_joined", "room", "b")
    t0 = now_ms()
    d = assert_answer(send_channel(fast, "boss", "room", "all hands"), "message_sent")
    assert list(d) == ["code", "request_id", "result"]
    for ws in (a, b):
        assert_channel_push(push(ws), "room", "boss", "all hands", t0, now_ms())
    silent(c, 0.1)


def test_channel_message_skips_the_senders_own_session(fast):
    a = online(fast, "a", channels=["room"])
    b = online(fast, "b", channels=["room"])
    assert push(a) == member("member_joined", "room", "b")
    assert_answer(send_channel(fast, "a", "room", "from a's backend"), "message_sent")
    assert_channel_push(push(b), "room", "a", "from a's backend")
    silent(a)


def test_channel_message_to_an_empty_channel_is_message_sent(fast):
    assert_answer(send_channel(fast, "boss", "nobody-here", "echo"), "message_sent")
    late = online(fast, "late", channels=["nobody-here"])
    silent(late)


def test_channel_message_stays_inside_its_app(fast):
    a = online(fast, "a", channels=["room"])
    other = online(fast, "a", app=APP, channels=["room"])
    assert_answer(send_channel(fast, "boss", "room", "app1"), "message_sent")
    assert_channel_push(push(a), "room", "boss", "app1")
    silent(other)


# ---- authentication ------------------------------------------------------------------------------

def test_basic_may_send_as_any_user(fast):
    bob = online(fast, "bob", app=APP, channels=["room"])
    for sender in ("alice", "zed", "bob"):
        assert_answer(send_peer(fast, sender, "bob", "as " + sender, app=APP), "message_sent")
        assert_peer_push(push(bob), sender, "as " + sender)
    assert_answer(send_channel(fast, "zed", "room", "chan", app=APP), "message_sent")
    assert_channel_push(push(bob), "room", "zed", "chan")


TOKEN_AUTHS = {
    "006": lambda uid: {"x-agora-token": token(uid, v="006"), "x-agora-uid": uid},
    "007": lambda uid: {"Authorization": "agora token=" + token(uid)},
    "007-x-agora-token": lambda uid: {"x-agora-token": token(uid)},
    "007-x-agora-token-uid": lambda uid: {"x-agora-token": token(uid), "x-agora-uid": uid},
}


@pytest.mark.parametrize("scheme", sorted(TOKEN_AUTHS))
def test_a_token_sends_only_as_its_own_user(fast, scheme):
    bob = online(fast, "bob", app=APP, channels=["room"])
    auth = TOKEN_AUTHS[scheme]("alice")
    assert_answer(send_peer(fast, "alice", "bob", "mine", app=APP, auth=auth), "message_sent")
    assert_peer_push(push(bob), "alice", "mine")
    assert_answer(send_channel(fast, "alice", "room", "chan", app=APP, auth=auth), "message_sent")
    assert_channel_push(push(bob), "room", "alice", "chan")
    # as anybody else: 401 and nothing is sent
    assert_error(send_peer(fast, "mallory", "bob", "forged", app=APP, auth=auth), 401)
    assert_error(send_channel(fast, "mallory", "room", "forged", app=APP, auth=auth), 401)
    assert_error(send_peer(fast, "bob", "bob", "forged", app=APP, auth=auth), 401)
    silent(bob)


def test_send_without_credentials_is_401(fast):
    bob = online(fast, "bob")
    assert_error(send_peer(fast, "alice", "bob", "x", auth=None), 401)
    assert_error(send_channel(fast, "alice", "room", "x", auth=None), 401)
    assert_error(send_peer(fast, "alice", "bob", "x",
                           auth={"Authorization": basic("ck_demo", "wrongwrongwrong")}), 401)
    silent(bob)


def test_send_qps_limits_both_endpoints_per_app(make_rtmd):
    r = make_rtmd(limits={"send_qps": 4})
    bob = online(r, "bob", channels=["room"])
    bob_app = online(r, "bob", app=APP)
    statuses = []
    t0 = time.monotonic()
    with r.http() as h:
        for i in range(12):
            if i % 2:
                path, body = channel_path("alice"), channel_body("room", "c%d" % i)
            else:
                path, body = peer_path("alice"), peer_body("bob", "p%d" % i)
            st, hd, b = h.request("POST", path, {"Authorization": basic()}, json.dumps(body))
            statuses.append((st, b))
            if st == 429:
                assert_error((st, hd, b), 429)
    took = time.monotonic() - t0
    ok = [i for i, (st, _) in enumerate(statuses) if st == 200]
    assert all(st in (200, 429) for st, _ in statuses), statuses
    # a bucket of 4 that refills at 4/s: 4 at once, one more per 250 ms spent
    assert 4 <= len(ok) <= 4 + int(took * 4) + 1, (ok, took)
    assert ok[:4] == [0, 1, 2, 3], statuses
    # the 429s sent nothing
    got = pushes(bob, len(ok))
    exp = ["p%d" % i if i % 2 == 0 else "c%d" % i for i in ok]
    assert [m["payload"] for m in got] == exp
    silent(bob, 0.1)
    # another app has its own bucket
    assert_answer(send_peer(r, "alice", "bob", "other app", app=APP), "message_sent")
    assert_peer_push(push(bob_app), "alice", "other app")
    # and the bucket refills
    def sent():
        st, hd, b = send_peer(r, "alice", "bob", "later")
        return st == 200
    wait_until(sent, 3, interval=0.05, what="a send after the refill")
    assert_peer_push(push(bob), "alice", "later")


# ---- bodies ----------------------------------------------------------------------------------------

DOC_PEER_BODY = """{
    "destination": "userB",
    "enable_offline_messaging": false,
    "enable_historical_messaging": false,
    "payload": "Hello"
}"""

DOC_CHANNEL_BODY = """{
    "channel_name": "channelA",
    "enable_historical_messaging": false,
    "payload": "Hello"
}"""


@pytest.mark.parametrize("ctype", ["application/json;charset=utf-8", "application/json",
                                   "application/json; charset=UTF-8"])
def test_bodies_as_the_docs_and_clients_send_them(fast, ctype):
    b = online(fast, "userB", channels=["channelA"])
    h = {"Authorization": basic(), "Content-Type": ctype}
    for body in (DOC_PEER_BODY,
                 DOC_PEER_BODY.replace("\n", "\r\n"),
                 json.dumps(json.loads(DOC_PEER_BODY)),                      # Python: ", " and ": "
                 json.dumps(json.loads(DOC_PEER_BODY), separators=(",", ":")),  # JSON.stringify
                 '{"payload":"Hello","destination":"userB"}',                # only the required
                 '{"enable_historical_messaging":true,"payload":"Hello","destination":"userB",'
                 '"enable_offline_messaging":true}'):
        assert_answer(fast.get(peer_path("alice"), headers=h, method="POST", body=body), "message_sent")
        assert_peer_push(push(b), "alice", "Hello")
    for body in (DOC_CHANNEL_BODY, '{"channel_name":"channelA","payload":"Hello"}'):
        assert_answer(fast.get(channel_path("alice"), headers=h, method="POST", body=body),
                      "message_sent")
        assert_channel_push(push(b), "channelA", "alice", "Hello")


def test_utf8_and_escaped_payloads_arrive_as_sent(fast):
    b = online(fast, "b", channels=["room"])
    for p in ("héllo wörld 中文 😀", "quote \" backslash \\ nl \n tab \t", "</script>", "\u2028"):
        raw = json.dumps(peer_body("b", p), ensure_ascii=False).encode()
        assert_answer(fast.get(peer_path("a"), headers={"Authorization": basic()}, method="POST",
                               body=raw), "message_sent")
        assert_peer_push(push(b), "a", p)
        assert_answer(send_channel(fast, "a", "room", p), "message_sent")
        assert_channel_push(push(b), "room", "a", p)


PEER_BAD = [
    ("destination", {"payload": "x"}),
    ("destination", {"destination": "", "payload": "x"}),
    ("destination", {"destination": "d" * 65, "payload": "x"}),
    ("destination", {"destination": "null", "payload": "x"}),
    ("destination", {"destination": "a/b", "payload": "x"}),
    ("destination", {"destination": "caf\u00e9", "payload": "x"}),
    ("destination", {"destination": 42, "payload": "x"}),
    ("destination", {"destination": ["bob"], "payload": "x"}),
    ("destination", {"destination": "bob\u0000x", "payload": "x"}),
    ("payload", {"destination": "bob"}),
    ("payload", {"destination": "bob", "payload": ""}),
    ("payload", {"destination": "bob", "payload": 5}),
    ("payload", {"destination": "bob", "payload": None}),
    ("payload", {"destination": "bob", "payload": {"text": "x"}}),
    ("payload", {"destination": "bob", "payload": "p" * 32769}),
    ("enable_offline_messaging", {"destination": "bob", "payload": "x", "enable_offline_messaging": "true"}),
    ("enable_offline_messaging", {"destination": "bob", "payload": "x", "enable_offline_messaging": 1}),
    ("enable_offline_messaging", {"destination": "bob", "payload": "x", "enable_offline_messaging": "false"}),
    ("enable_historical_messaging", {"destination": "bob", "payload": "x", "enable_historical_messaging": "true"}),
    ("enable_historical_messaging", {"destination": "bob", "payload": "x", "enable_historical_messaging": 0}),
]


@pytest.mark.parametrize("field,body", PEER_BAD, ids=["%s-%d" % (f, i) for i, (f, _) in enumerate(PEER_BAD)])
def test_bad_peer_fields_are_400_naming_the_field(fast, field, body):
    bob = online(fast, "bob")
    d = assert_error(request(fast, "POST", peer_path("alice"), body), 400, "bad_request")
    assert field in d["message"], d
    silent(bob)


CHANNEL_BAD = [
    ("channel_name", {"payload": "x"}),
    ("channel_name", {"channel_name": "", "payload": "x"}),
    ("channel_name", {"channel_name": "c" * 65, "payload": "x"}),
    ("channel_name", {"channel_name": "null", "payload": "x"}),
    ("channel_name", {"channel_name": 3, "payload": "x"}),
    ("channel_name", {"channel_name": "room\u0000x", "payload": "x"}),
    ("payload", {"channel_name": "room"}),
    ("payload", {"channel_name": "room", "payload": ""}),
    ("payload", {"channel_name": "room", "payload": ["x"]}),
    ("payload", {"channel_name": "room", "payload": "p" * 32769}),
    ("enable_historical_messaging", {"channel_name": "room", "payload": "x", "enable_historical_messaging": "no"}),
]


@pytest.mark.parametrize("field,body", CHANNEL_BAD, ids=["%s-%d" % (f, i) for i, (f, _) in enumerate(CHANNEL_BAD)])
def test_bad_channel_fields_are_400_naming_the_field(fast, field, body):
    room = online(fast, "member", channels=["room"])
    d = assert_error(request(fast, "POST", channel_path("alice"), body), 400, "bad_request")
    assert field in d["message"], d
    silent(room)


@pytest.mark.parametrize("body", ["", "not json", "[1,2]", '"str"', "null", '{"destination":"bob",',
                                  '{"destination":"bob","payload":"x"} trailing'])
def test_a_body_that_is_not_a_json_object_is_400(fast, body):
    bob = online(fast, "bob", channels=["room"])
    for path in (peer_path("alice"), channel_path("alice")):
        assert_error(fast.get(path, headers={"Authorization": basic()}, method="POST", body=body),
                     400, "bad_request")
    silent(bob)


def test_payload_bounds_follow_max_payload(make_rtmd):
    r = make_rtmd(limits=dict(FAST, max_payload=10))
    bob = online(r, "bob", channels=["room"])
    for p in ("x" * 10, "é" * 5, "€€€a"):
        assert_answer(send_peer(r, "a", "bob", p), "message_sent")
        assert_peer_push(push(bob), "a", p)
        assert_answer(send_channel(r, "a", "room", p), "message_sent")
        assert_channel_push(push(bob), "room", "a", p)
    for p in ("x" * 11, "é" * 5 + "a", "€" * 4):
        assert "payload" in assert_error(send_peer(r, "a", "bob", p), 400)["message"]
        assert "payload" in assert_error(send_channel(r, "a", "room", p), 400)["message"]
    silent(bob)


def test_default_payload_bound_is_32768_bytes(fast):
    bob = online(fast, "bob", channels=["room"])
    for p in ("z" * 32768, "é" * 16384, "\\" * 32768):
        assert_answer(send_peer(fast, "a", "bob", p), "message_sent")
        assert_peer_push(push(bob), "a", p)
        assert_answer(send_channel(fast, "a", "room", p), "message_sent")
        assert_channel_push(push(bob), "room", "a", p)
    for p in ("z" * 32769, "é" * 16384 + "!"):
        assert_error(send_peer(fast, "a", "bob", p), 400)
        assert_error(send_channel(fast, "a", "room", p), 400)
    silent(bob)


def test_payload_with_nul_is_refused_or_sent_whole(fast):
    bob = online(fast, "bob")
    st, hd, body = send_peer(fast, "a", "bob", "x\u0000y")
    if st == 200:
        assert_peer_push(push(bob), "a", "x\u0000y")
    else:
        assert "payload" in assert_error((st, hd, body), 400)["message"]
        silent(bob)


# ---- user_id in the path -------------------------------------------------------------------------

@pytest.mark.parametrize("raw,uid", [("user%20one", "user one"), ("a+b", "a+b"), ("a%2Bb", "a+b"),
                                     ("%21%23%24%25%26", "!#$%&"), ("x" * 64, "x" * 64),
                                     ("in%20the%20middle", "in the middle"), ("A%3a%3B", "A:;"),
                                     # Agora's own example user IDs contain '%', and clients put
                                     # them in paths unencoded: a '%' that starts no escape is kept
                                     ("user%40example", "user@example"), ("50%off", "50%off"),
                                     ("%zz", "%zz"), ("%", "%"), ("a%2", "a%2")])
def test_user_id_in_the_path_is_url_decoded(fast, raw, uid):
    bob = online(fast, "bob", channels=["room"])
    path = "/dev/v2/project/%s/rtm/users/%s/peer_messages" % (APP_NOCERT, raw)
    assert_answer(request(fast, "POST", path, peer_body("bob", "hi")), "message_sent")
    assert_peer_push(push(bob), uid, "hi")
    path = "/dev/v2/project/%s/rtm/users/%s/channel_messages" % (APP_NOCERT, raw)
    assert_answer(request(fast, "POST", path, channel_body("room", "hi")), "message_sent")
    assert_channel_push(push(bob), "room", uid, "hi")


@pytest.mark.parametrize("raw", ["%20lead", "trail%20", "%20", "a%2Fb", "x" * 65, "null",
                                 "a%00b", "caf%C3%A9", "a%09b", "%6eull", "x" * 63 + "%41%41"])
def test_bad_user_id_in_the_path_is_400(fast, raw):
    bob = online(fast, "bob", channels=["room"])
    for kind, body in (("peer_messages", peer_body("bob", "hi")),
                       ("channel_messages", channel_body("room", "hi"))):
        path = "/dev/v2/project/%s/rtm/users/%s/%s" % (APP_NOCERT, raw, kind)
        d = assert_error(request(fast, "POST", path, body), 400, "bad_request")
        assert "user_id" in d["message"], d
    silent(bob)


def test_token_sender_with_a_space_in_its_uid(fast):
    bob = online(fast, "bob", app=APP)
    auth = {"Authorization": "agora token=" + token("user one")}
    path = "/dev/v2/project/%s/rtm/users/user%%20one/peer_messages" % APP
    assert_answer(request(fast, "POST", path, peer_body("bob", "spaced"), auth=auth), "message_sent")
    assert_peer_push(push(bob), "user one", "spaced")


def test_send_endpoints_take_only_post(fast):
    for path in (peer_path("a"), channel_path("a")):
        for method in ("GET", "PUT", "DELETE"):
            assert_error(request(fast, method, path), 405)
