"""Offline messages (docs/API.md "Sending messages"): a peer message for a receiver
that is not online, sent with "offline": true (WebSocket) or
"enable_offline_messaging": true (REST), is kept — at most
offline_max_per_user per receiver, newest replacing oldest, for
offline_retention_s — and pushed in order right after the receiver's next
login reply, once."""
import json

from harness import APP, APP_NOCERT, Ws, now_ms, token, wait_until
from msgutil import (FAST, assert_answer, assert_peer_push, assert_reply_ok, online, push,
                     send_peer, silent)


def login_and_collect(rtmd, uid, n, app=APP_NOCERT):
    """Logs uid in with a ping in the same write; asserts the login reply
    comes first, then exactly n peer_message pushes, then the ping's reply.
    Returns the pushes."""
    ws = rtmd.ws()
    login = {"op": "login", "id": 1, "appid": app, "uid": uid}
    if app == APP:
        login["token"] = token(uid)
    ws.send_raw(Ws.frame(json.dumps(login)) + Ws.frame(json.dumps({"op": "ping", "id": 2})))
    assert ws.recv() == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 30}
    got = [ws.recv() for _ in range(n)]
    assert all(m.get("op") == "peer_message" for m in got), got
    last = ws.recv()
    assert last["op"] == "reply" and last["id"] == 2 and last["ok"] is True, last
    silent(ws, 0.2)
    return ws, got


def test_ws_offline_message_is_delivered_right_after_the_next_login(make_rtmd):
    r = make_rtmd()
    alice = online(r, "alice")
    t0 = now_ms()
    for i in range(3):
        assert_reply_ok(alice.call("peer", to="bob", payload="kept %d" % i, offline=True),
                        2 + i, state="offline")
    t1 = now_ms()
    bob, got = login_and_collect(r, "bob", 3)
    for i, m in enumerate(got):
        assert_peer_push(m, "alice", "kept %d" % i, t0, t1)  # ms: when it was sent
    assert len({m["mid"] for m in got}) == 3
    # once only
    assert bob.call("logout")["ok"]
    bob.expect_close()
    login_and_collect(r, "bob", 0)


def test_rest_offline_message_is_kept_and_delivered(make_rtmd):
    r = make_rtmd(limits=FAST)
    t0 = now_ms()
    d = assert_answer(send_peer(r, "alice", "bob", "while away", offline=True), "message_offline")
    assert "result" not in d
    assert_answer(send_peer(r, "carol", "bob", "me too", offline=True, history=False),
                  "message_offline")
    assert_answer(send_peer(r, "carol", "bob", "not kept", offline=False), "message_offline")
    t1 = now_ms()
    bob, got = login_and_collect(r, "bob", 2)
    assert_peer_push(got[0], "alice", "while away", t0, t1)
    assert_peer_push(got[1], "carol", "me too", t0, t1)


def test_ws_and_rest_offline_messages_keep_one_order(make_rtmd):
    r = make_rtmd(limits=FAST)
    alice = online(r, "alice")
    exp = []
    for i in range(6):
        if i % 2:
            assert_answer(send_peer(r, "backend", "bob", "r%d" % i, offline=True), "message_offline")
            exp.append(("backend", "r%d" % i))
        else:
            assert alice.call("peer", to="bob", payload="w%d" % i, offline=True)["state"] == "offline"
            exp.append(("alice", "w%d" % i))
    bob, got = login_and_collect(r, "bob", 6)
    assert [(m["from"], m["payload"]) for m in got] == exp


def test_offline_messages_are_per_receiver_and_per_app(make_rtmd):
    r = make_rtmd(limits=FAST)
    assert_answer(send_peer(r, "a", "bob", "for bob"), "message_offline")  # not kept
    assert_answer(send_peer(r, "a", "bob", "for bob", offline=True), "message_offline")
    assert_answer(send_peer(r, "a", "carol", "for carol", offline=True), "message_offline")
    assert_answer(send_peer(r, "a", "bob", "bob in APP", offline=True, app=APP), "message_offline")
    _, got = login_and_collect(r, "carol", 1)
    assert got[0]["payload"] == "for carol"
    _, got = login_and_collect(r, "bob", 1)
    assert got[0]["payload"] == "for bob"
    _, got = login_and_collect(r, "bob", 1, app=APP)
    assert got[0]["payload"] == "bob in APP"


def test_205_offline_messages_keep_the_newest_200_in_order(make_rtmd):
    r = make_rtmd(limits=FAST)
    alice = online(r, "alice")
    n = 205
    alice.send_raw(b"".join(
        Ws.frame(json.dumps({"op": "peer", "id": 100 + i, "to": "bob", "payload": "o%03d" % i,
                             "offline": True}))
        for i in range(n)))
    for i in range(n):
        assert_reply_ok(alice.recv(), 100 + i, state="offline")
    bob, got = login_and_collect(r, "bob", 200)
    assert [m["payload"] for m in got] == ["o%03d" % i for i in range(5, 205)]
    assert all(m["from"] == "alice" for m in got)
    assert [m["ms"] for m in got] == sorted(m["ms"] for m in got)
    assert bob.call("logout")["ok"]
    bob.expect_close()
    login_and_collect(r, "bob", 0)


def test_offline_max_per_user_follows_the_config(make_rtmd):
    r = make_rtmd(limits=dict(FAST, offline_max_per_user=3))
    for i in range(5):
        assert_answer(send_peer(r, "a", "bob", "m%d" % i, offline=True), "message_offline")
    for i in range(2):
        assert_answer(send_peer(r, "a", "carol", "c%d" % i, offline=True), "message_offline")
    _, got = login_and_collect(r, "bob", 3)
    assert [m["payload"] for m in got] == ["m2", "m3", "m4"]
    _, got = login_and_collect(r, "carol", 2)
    assert [m["payload"] for m in got] == ["c0", "c1"]
    # the cap is per receiver, whoever the senders are
    for i in range(6):
        assert_answer(send_peer(r, "s%d" % (i % 2), "dan", "d%d" % i, offline=True), "message_offline")
    _, got = login_and_collect(r, "dan", 3)
    assert [(m["from"], m["payload"]) for m in got] == [("s1", "d3"), ("s0", "d4"), ("s1", "d5")]


def test_offline_messages_expire_after_offline_retention_s(make_rtmd):
    r = make_rtmd(limits=dict(FAST, offline_retention_s=1))
    t_old = now_ms()
    assert_answer(send_peer(r, "a", "bob", "too old", offline=True), "message_offline")
    assert_answer(send_peer(r, "a", "carol", "too old too", offline=True), "message_offline")
    # let the retention pass (a deadline, not a guess)
    wait_until(lambda: now_ms() > t_old + 1000 + 50, 5, interval=0.02, what="retention to pass")
    assert_answer(send_peer(r, "a", "bob", "fresh", offline=True), "message_offline")
    _, got = login_and_collect(r, "bob", 1)
    assert got[0]["payload"] == "fresh"
    login_and_collect(r, "carol", 0)


def test_offline_messages_kept_within_retention_are_delivered(make_rtmd):
    r = make_rtmd(limits=dict(FAST, offline_retention_s=30))
    assert_answer(send_peer(r, "a", "bob", "in time", offline=True), "message_offline")
    _, got = login_and_collect(r, "bob", 1)
    assert got[0]["payload"] == "in time"


def test_offline_messages_survive_kill9(make_rtmd):
    r = make_rtmd(limits=FAST)
    alice = online(r, "alice")
    for i in range(3):
        assert alice.call("peer", to="bob", payload="ws%d" % i, offline=True)["state"] == "offline"
    assert_answer(send_peer(r, "backend", "bob", "rest", offline=True), "message_offline")
    r.kill9()
    r.restart()
    _, got = login_and_collect(r, "bob", 4)
    assert [(m["from"], m["payload"]) for m in got] == \
        [("alice", "ws0"), ("alice", "ws1"), ("alice", "ws2"), ("backend", "rest")]


def test_delivered_offline_messages_are_not_delivered_again_after_kill9(make_rtmd):
    r = make_rtmd(limits=FAST)
    assert_answer(send_peer(r, "a", "bob", "once", offline=True), "message_offline")
    bob, got = login_and_collect(r, "bob", 1)
    assert got[0]["payload"] == "once"
    r.kill9()
    r.restart()
    login_and_collect(r, "bob", 0)


def test_offline_messages_survive_sigterm(make_rtmd):
    r = make_rtmd(limits=FAST)
    assert_answer(send_peer(r, "a", "bob", "across a restart", offline=True), "message_offline")
    assert r.stop() == 0
    r.restart()
    _, got = login_and_collect(r, "bob", 1)
    assert got[0]["payload"] == "across a restart"


def test_offline_messages_go_to_the_first_login_only_on_takeover(make_rtmd):
    r = make_rtmd(limits=FAST)
    assert_answer(send_peer(r, "a", "bob", "one", offline=True), "message_offline")
    first, got = login_and_collect(r, "bob", 1)
    second, got2 = login_and_collect(r, "bob", 0)
    assert first.recv() == {"op": "kicked", "reason": "remote_login"}


def test_offline_message_to_an_online_user_is_just_delivered(make_rtmd):
    r = make_rtmd(limits=FAST)
    bob = online(r, "bob")
    assert_answer(send_peer(r, "a", "bob", "live", offline=True), "message_sent")
    assert_peer_push(push(bob), "a", "live")
    assert bob.call("logout")["ok"]
    bob.expect_close()
    login_and_collect(r, "bob", 0)


def test_messages_sent_while_logging_in_arrive_once_in_order_after_the_login_reply(make_rtmd):
    """One sender's messages to a receiver that is logging in (some sent
    before, some during its login, all with "offline": true): the login
    reply is the receiver's first frame; every message arrives exactly once
    (in this session, or kept for the next login), and within a session in
    the order they were sent; a reply "delivered" means this session got it."""
    r = make_rtmd(limits=FAST)
    alice = online(r, "alice")
    for i in range(20):
        alice.send({"op": "peer", "id": 100 + i, "to": "bob", "payload": "m%02d" % i, "offline": True})
    bob = r.ws()
    bob.send({"op": "login", "id": 1, "appid": APP_NOCERT, "uid": "bob"})
    for i in range(20, 40):
        alice.send({"op": "peer", "id": 100 + i, "to": "bob", "payload": "m%02d" % i, "offline": True})
    states = {"m%02d" % i: alice.reply(100 + i)["state"] for i in range(40)}
    assert set(states.values()) <= {"delivered", "offline"}, states
    first_frame = bob.recv()
    assert first_frame == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 30}, \
        "a push came before the login reply: %r" % (first_frame,)
    now = []
    try:
        while True:
            now.append(bob.recv(0.5))
    except Exception:  # noqa: BLE001 - socket.timeout: no more pushes
        pass
    assert all(m["op"] == "peer_message" for m in now), now
    assert bob.call("logout")["ok"]
    bob.expect_close()
    _, later = login_and_collect(r, "bob", 40 - len(now))
    first = [m["payload"] for m in now]
    second = [m["payload"] for m in later]
    assert sorted(first + second) == sorted(states), (first, second)
    assert all(p in first for p, st in states.items() if st == "delivered"), (states, first)
    assert first == sorted(first), "out of order: %r" % first
    assert second == sorted(second), "out of order: %r" % second


def test_an_offline_message_kept_in_history_stays_there_after_delivery(make_rtmd):
    from msgutil import count, history
    r = make_rtmd(limits=FAST)
    alice = online(r, "alice")
    assert alice.call("peer", to="bob", payload="both", offline=True, history=True)["state"] == "offline"
    assert_answer(send_peer(r, "carol", "bob", "both rest", offline=True, history=True),
                  "message_offline")
    assert count(r, destination="bob") == 2
    _, got = login_and_collect(r, "bob", 2)
    assert [m["payload"] for m in got] == ["both", "both rest"]
    assert [m["payload"] for m in history(r, None, "bob")] == ["both", "both rest"]
    assert [m["ms"] for m in history(r, None, "bob")] == [m["ms"] for m in got]
