"""Presence over WebSocket (SPEC §4) and its events over REST (SPEC §3.3)."""
import json

from harness import APP, APP_NOCERT, CERT, basic, token, wait_until


def types(events):
    return [(e["type"], e["user_id"], e.get("channel_id")) for e in events]


def test_login_join_leave_logout_events(rtmd):
    with rtmd.ws() as ws:
        assert ws.login("alice", token=token("alice"))["ok"] is True
        assert ws.call("join", channel="c1")["ok"] is True
        assert ws.call("join", channel="c2")["ok"] is True
        assert ws.call("leave", channel="c1")["ok"] is True
        assert ws.call("logout")["ok"] is True
        code, _ = ws.expect_close()
        assert code == 1000
    users = rtmd.events("user")
    assert types(users) == [("Login", "alice", None), ("Logout", "alice", None)]
    chans = rtmd.events("channel")
    assert types(chans) == [("Join", "alice", "c1"), ("Join", "alice", "c2"),
                            ("Leave", "alice", "c1"), ("Leave", "alice", "c2")]
    # both field styles, keys in alphabetical order
    e = chans[0]
    assert list(e.keys()) == ["channel_id", "group_id", "ms", "ts", "type", "user_id"]
    assert e["channel_id"] == e["group_id"] == "c1" and e["ms"] == e["ts"]
    assert list(users[0].keys()) == ["ms", "ts", "type", "user_id"]
    # read once per region
    assert rtmd.events("user") == []
    assert types(rtmd.events("user", region="eu")) == types(users)
    assert rtmd.events("user", region="eu") == []


def test_disconnect_records_leaves_then_logout(rtmd):
    ws = rtmd.ws()
    assert ws.login("bob", app=APP_NOCERT)["ok"]
    assert ws.call("join", channel="room")["ok"]
    ws.close_socket()
    got = []
    wait_until(lambda: got.extend(rtmd.events("user", app=APP_NOCERT)) or len(got) >= 2,
               what="Logout after disconnect")
    assert types(got) == [("Login", "bob", None), ("Logout", "bob", None)]
    assert types(rtmd.events("channel", app=APP_NOCERT)) == [("Join", "bob", "room"), ("Leave", "bob", "room")]
