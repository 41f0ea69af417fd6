"""The WebSocket gateway at /v1/rtm (docs/API.md "Client protocol"; RFC 6455
framing; the ID and size bounds): replies, error replies that keep the connection, framing rules
and size limits (close codes)."""
import json
import struct
import threading

import pytest

from harness import APP_NOCERT, Ws, WsClosed, now_ms, token


def ok(rid):
    return {"op": "reply", "id": rid, "ok": True}


def assert_ok_reply(m, rid):
    assert m == ok(rid), m
    assert list(m) == ["op", "id", "ok"], m


def assert_login_reply(m, rid, heartbeat_s=30):
    """A login's ok reply: ok(rid) and the heartbeat timeout the client must ping within."""
    assert m == dict(ok(rid), heartbeat_timeout_s=heartbeat_s), m
    assert list(m) == ["op", "id", "ok", "heartbeat_timeout_s"], m


def assert_join_reply(m, rid):
    """A join's ok reply: ok(rid), then the channel's members (docs/API.md)."""
    assert list(m) == ["op", "id", "ok", "count", "members"], m
    assert m["op"] == "reply" and m["id"] == rid and m["ok"] is True, m
    assert m["count"] == len(m["members"]) >= 1, m


def assert_err(m, rid, error):
    assert list(m) == ["op", "id", "ok", "error", "message"], m
    assert m["op"] == "reply" and m["id"] == rid and m["ok"] is False, m
    assert m["error"] == error, m
    assert isinstance(m["message"], str) and m["message"], m


def logged_in(rtmd, uid="u1", app=APP_NOCERT, **kw):
    ws = rtmd.ws(**kw)
    assert_login_reply(ws.login(uid, app=app, token=None if app == APP_NOCERT else token(uid)), 1)
    return ws


def still_alive(ws):
    """The connection still answers: a ping op gets its reply."""
    m = ws.call("ping")
    assert m["op"] == "reply" and m["ok"] is True, m


def send_text(ws, text):
    """Sends one raw text frame and returns the next message."""
    ws.send_frame(text)
    return ws.recv()


# ---- replies ---------------------------------------------------------------------------

def test_login_join_leave_ping_logout_replies(rtmd):
    ws = rtmd.ws()
    assert_login_reply(ws.login("alice", token=token("alice")), 1)
    assert_join_reply(ws.call("join", channel="c1"), 2)
    assert_ok_reply(ws.call("leave", channel="c1"), 3)
    t0 = now_ms()
    m = ws.call("ping")
    assert list(m)[:3] == ["op", "id", "ok"] and m["op"] == "reply" and m["id"] == 4 and m["ok"] is True, m
    if "ms" in m:  # rtmd adds its clock
        assert t0 - 5 <= m["ms"] <= now_ms() + 5, m
    assert_ok_reply(ws.call("logout"), 5)
    code, reason = ws.expect_close()
    assert code == 1000, (code, reason)
    assert ws.wait_eof(5)
    assert ws.pushes == []


def test_reply_ids_echo_any_integer(rtmd):
    ws = rtmd.ws()
    for rid in (0, -5, 2 ** 53 - 1, 123456789012):
        ws.send({"op": "ping", "id": rid})
        m = ws.recv()
        assert m["id"] == rid and m["ok"] is True, m


def test_logout_then_the_server_closes(rtmd):
    ws = logged_in(rtmd)
    ws.send({"op": "logout", "id": 9})
    assert_ok_reply(ws.recv(), 9)
    with pytest.raises(WsClosed) as e:
        ws.recv()
    assert e.value.code == 1000
    assert ws.wait_eof(5)
    rtmd.healthy()


# ---- error replies (the connection stays) ------------------------------------------------

@pytest.mark.parametrize("text", [
    "hello", "{", "{\"op\":\"ping\",\"id\":1", "", " ", "{\"op\":\"ping\",\"id\":1}}",
    "[1,2]", "42", "\"str\"", "null", "true", "[{\"op\":\"ping\",\"id\":1}]",
])
def test_frame_that_is_not_one_json_object_gets_an_error_reply(rtmd, text):
    ws = rtmd.ws()
    assert_err(send_text(ws, text), None, "bad_request")
    still_alive(ws)
    ws = logged_in(rtmd)
    assert_err(send_text(ws, text), None, "bad_request")
    still_alive(ws)


@pytest.mark.parametrize("frame", [
    {"op": "ping"},
    {"op": "ping", "id": "1"},
    {"op": "ping", "id": 1.5},
    {"op": "ping", "id": None},
    {"op": "ping", "id": True},
    {"op": "ping", "id": [1]},
    {"op": "ping", "id": 1e300},
])
def test_missing_or_non_integer_id_gets_an_error_reply(rtmd, frame):
    ws = logged_in(rtmd)
    assert_err(send_text(ws, json.dumps(frame)), None, "bad_request")
    still_alive(ws)


def test_missing_or_non_string_op_gets_an_error_reply(rtmd):
    ws = logged_in(rtmd)
    assert_err(send_text(ws, '{"id":3}'), 3, "bad_request")
    assert_err(send_text(ws, '{"id":4,"op":5}'), 4, "bad_request")
    assert_err(send_text(ws, '{"id":5,"op":null}'), 5, "bad_request")
    still_alive(ws)


@pytest.mark.parametrize("op", ["fly", "LOGIN", "Ping", "reply", ""])
def test_unknown_op_gets_an_error_reply(rtmd, op):
    ws = rtmd.ws()
    assert_err(ws.call(op), 1, "unknown_op")
    ws = logged_in(rtmd)
    assert_err(ws.call(op), 2, "unknown_op")
    still_alive(ws)


@pytest.mark.parametrize("op,fields", [("join", {"channel": "c"}), ("leave", {"channel": "c"}),
                                       ("logout", {})])
def test_op_before_login_gets_an_error_reply(rtmd, op, fields):
    ws = rtmd.ws()
    assert_err(ws.call(op, **fields), 1, "not_logged_in")
    # and login still works afterwards
    assert_login_reply(ws.login("late", app=APP_NOCERT), 2)
    # the refused op recorded nothing: the log holds just the Login
    ev = rtmd.pull_until(1, app=APP_NOCERT)
    assert [(e["type"], e["user_id"]) for e in ev] == [("Login", "late")]
    assert rtmd.events("channel", app=APP_NOCERT) == []


def test_second_login_on_one_connection_is_refused(rtmd):
    ws = logged_in(rtmd, "first")
    assert_err(ws.login("first", app=APP_NOCERT), 2, "already_logged_in")
    assert_err(ws.login("second", app=APP_NOCERT), 3, "already_logged_in")
    assert_join_reply(ws.call("join", channel="c"), 4)
    ws.close_socket()
    users = rtmd.pull_until(2, app=APP_NOCERT)
    assert [(e["type"], e["user_id"]) for e in users] == [("Login", "first"), ("Logout", "first")]


BAD_APPIDS = ["", "970CA35de60c44645bbae8a215061b3", "970CA35de60c44645bbae8a215061b333",
              "970CA35de60c44645bbae8a215061b3-", "970CA35de60c44645bbae8a215061b3 ",
              "970CA35de60c44645bbae8a21506\u00e9b33", None, 12, "11111111111111111111111111111111"]


@pytest.mark.parametrize("appid", BAD_APPIDS, ids=[repr(a)[:12] for a in BAD_APPIDS])
def test_invalid_or_unknown_appid_gets_an_error_reply(rtmd, appid):
    ws = rtmd.ws()
    fields = {"uid": "u"}
    if appid is not None:
        fields["appid"] = appid
    assert_err(ws.call("login", **fields), 1, "invalid_appid")
    assert_login_reply(ws.login("u", app=APP_NOCERT), 2)


ALLOWED = "abcXYZ019 !#$%&()+-:;<=.>?@[]^_{}|~,'"
BAD_IDS = ["", "a" * 65, "null", "a/b", "a\"b", "a\\b", "a*b", "a`b", "tab\tx", "new\nline",
           "caf\u00e9", "\u4e2d", "nul\u0000x", None, 7, ["a"]]


@pytest.mark.parametrize("uid", BAD_IDS, ids=[repr(u)[:12] for u in BAD_IDS])
def test_invalid_uid_gets_an_error_reply(rtmd, uid):
    ws = rtmd.ws()
    fields = {"appid": APP_NOCERT}
    if uid is not None:
        fields["uid"] = uid
    assert_err(ws.call("login", **fields), 1, "invalid_uid")
    assert_login_reply(ws.login("fine", app=APP_NOCERT), 2)
    assert rtmd.pull_until(1, app=APP_NOCERT)[0]["user_id"] == "fine"


@pytest.mark.parametrize("uid", ["a" * 64, ALLOWED, "NULL", "nul", "nulll", " x ", "Null"])
def test_valid_uid_edge_cases_log_in(rtmd, uid):
    ws = rtmd.ws()
    assert_login_reply(ws.login(uid, app=APP_NOCERT), 1)
    ev = rtmd.pull_until(1, app=APP_NOCERT)
    assert ev[0]["user_id"] == uid


@pytest.mark.parametrize("channel", BAD_IDS, ids=[repr(u)[:12] for u in BAD_IDS])
def test_invalid_channel_gets_an_error_reply(rtmd, channel):
    ws = logged_in(rtmd)
    fields = {} if channel is None else {"channel": channel}
    assert_err(ws.call("join", **fields), 2, "invalid_channel")
    assert_err(ws.call("leave", **fields), 3, "invalid_channel")
    assert_join_reply(ws.call("join", channel="ok"), 4)
    assert [e["channel_id"] for e in rtmd.pull_until(1, kind="channel", app=APP_NOCERT)] == ["ok"]


@pytest.mark.parametrize("channel", ["c" * 64, ALLOWED, "NULL", " lead"])
def test_valid_channel_edge_cases_join(rtmd, channel):
    ws = logged_in(rtmd)
    assert_join_reply(ws.call("join", channel=channel), 2)
    assert_ok_reply(ws.call("leave", channel=channel), 3)
    ev = rtmd.pull_until(2, kind="channel", app=APP_NOCERT)
    assert [(e["type"], e["channel_id"]) for e in ev] == [("Join", channel), ("Leave", channel)]


def test_already_joined_and_not_joined(rtmd):
    ws = logged_in(rtmd)
    assert_join_reply(ws.call("join", channel="c"), 2)
    assert_err(ws.call("join", channel="c"), 3, "already_joined")
    assert_err(ws.call("leave", channel="other"), 4, "not_joined")
    assert_ok_reply(ws.call("leave", channel="c"), 5)
    assert_err(ws.call("leave", channel="c"), 6, "not_joined")
    assert_join_reply(ws.call("join", channel="c"), 7)
    ev = rtmd.pull_until(3, kind="channel", app=APP_NOCERT)
    # the refused ops recorded nothing
    assert [e["type"] for e in ev] == ["Join", "Leave", "Join"]
    assert rtmd.events("channel", app=APP_NOCERT) == []


def test_20_channels_then_too_many_channels(rtmd):
    ws = logged_in(rtmd)
    for i in range(20):
        assert_join_reply(ws.call("join", channel="ch%02d" % i), 2 + i)
    assert_err(ws.call("join", channel="ch20"), 22, "too_many_channels")
    assert_err(ws.call("join", channel="ch21"), 23, "too_many_channels")
    # already_joined still wins for a channel it is in
    m = ws.call("join", channel="ch00")
    assert m["ok"] is False and m["error"] in ("already_joined",), m
    assert_ok_reply(ws.call("leave", channel="ch05"), 25)
    assert_join_reply(ws.call("join", channel="ch20"), 26)
    assert_err(ws.call("join", channel="ch21"), 27, "too_many_channels")
    ev = rtmd.pull_until(22, kind="channel", app=APP_NOCERT)
    assert [(e["type"], e["channel_id"]) for e in ev] == (
        [("Join", "ch%02d" % i) for i in range(20)] + [("Leave", "ch05"), ("Join", "ch20")])


def test_channel_limit_follows_the_config(make_rtmd):
    r = make_rtmd(limits={"max_channels_per_user": 3})
    ws = logged_in(r)
    for i in range(3):
        assert_join_reply(ws.call("join", channel="c%d" % i), 2 + i)
    assert_err(ws.call("join", channel="c3"), 5, "too_many_channels")
    # the limit is per user: another user has its own 3
    ws2 = logged_in(r, "u2")
    for i in range(3):
        assert_join_reply(ws2.call("join", channel="c%d" % i), 2 + i)
    assert_err(ws2.call("join", channel="c9"), 5, "too_many_channels")


def test_errors_do_not_close_the_connection(rtmd):
    ws = rtmd.ws()
    for text in ["nope", "[]", '{"op":"x","id":1}', '{"op":"join","id":2,"channel":"c"}']:
        ws.send_frame(text)
        assert ws.recv()["ok"] is False
    assert_login_reply(ws.login("u", app=APP_NOCERT), 1)
    for text in ["nope", '{"op":"login","id":3,"appid":"%s","uid":"u"}' % APP_NOCERT,
                 '{"op":"leave","id":4,"channel":"zz"}']:
        ws.send_frame(text)
        assert ws.recv()["ok"] is False
    still_alive(ws)


def test_deep_json_nesting_is_refused_not_crashing(rtmd):
    ws = logged_in(rtmd)
    deep = '{"op":"ping","id":1,"x":' + "[" * 100000 + "]" * 100000 + "}"
    assert_err(send_text(ws, deep), None, "bad_request")
    deep_obj = '{"op":"ping","id":1,"x":' + '{"a":' * 5000 + "1" + "}" * 5000 + "}"
    assert_err(send_text(ws, deep_obj), None, "bad_request")
    # moderate nesting is fine
    m = send_text(ws, '{"op":"ping","id":2,"x":[[[1]]]}')
    assert m["id"] == 2 and m["ok"] is True
    rtmd.healthy()


def test_unknown_fields_are_ignored(rtmd):
    ws = rtmd.ws()
    assert_login_reply(ws.call("login", appid=APP_NOCERT, uid="u", extra={"a": [1]}, token=None), 1)
    assert_join_reply(ws.call("join", channel="c", more="x"), 2)


# ---- framing ---------------------------------------------------------------------------

def test_many_frames_in_one_tcp_write(rtmd):
    ws = rtmd.ws()
    frames = [
        {"op": "login", "id": 1, "appid": APP_NOCERT, "uid": "batch"},
        {"op": "join", "id": 2, "channel": "a"},
        {"op": "join", "id": 3, "channel": "b"},
        {"op": "ping", "id": 4},
        {"op": "join", "id": 5, "channel": "a"},
        {"op": "leave", "id": 6, "channel": "a"},
        {"op": "nope", "id": 7},
    ] + [{"op": "ping", "id": 8 + i} for i in range(100)]
    ws.send_raw(b"".join(Ws.frame(json.dumps(f)) for f in frames))
    got = [ws.recv() for _ in frames]
    assert [m["id"] for m in got] == [f["id"] for f in frames]
    assert [m["ok"] for m in got[:7]] == [True, True, True, True, False, True, False]
    assert got[4]["error"] == "already_joined" and got[6]["error"] == "unknown_op"
    ev = rtmd.pull_until(3, kind="channel", app=APP_NOCERT)
    assert [(e["type"], e["channel_id"]) for e in ev] == [("Join", "a"), ("Join", "b"), ("Leave", "a")]


def test_one_frame_split_over_many_writes(rtmd):
    ws = rtmd.ws()
    data = Ws.frame(json.dumps({"op": "login", "id": 1, "appid": APP_NOCERT, "uid": "slow"}))
    for i in range(len(data)):
        ws.send_raw(data[i:i + 1])
        if i < 8:
            ws.assert_silent(0.005)  # separate reads for the header bytes
    assert_login_reply(ws.recv(), 1)
    # a 16-bit-length frame split inside its extended length and mask key
    big = Ws.frame(json.dumps({"op": "ping", "id": 2, "pad": "p" * 300}))
    pieces = [big[:1], big[1:3], big[3:5], big[5:7], big[7:100], big[100:]]
    for p in pieces[:-1]:
        ws.send_raw(p)
        ws.assert_silent(0.005)
    ws.send_raw(pieces[-1])
    m = ws.recv()
    assert m["id"] == 2 and m["ok"] is True


def test_frame_split_across_writes_together_with_whole_frames(rtmd):
    ws = rtmd.ws()
    f1 = Ws.frame(json.dumps({"op": "login", "id": 1, "appid": APP_NOCERT, "uid": "mix"}))
    f2 = Ws.frame(json.dumps({"op": "join", "id": 2, "channel": "x"}))
    f3 = Ws.frame(json.dumps({"op": "ping", "id": 3}))
    stream = f1 + f2 + f3
    ws.send_raw(stream[:len(f1) + 3])
    assert_login_reply(ws.recv(), 1)
    ws.send_raw(stream[len(f1) + 3:len(f1) + len(f2) + 1])
    ws.send_raw(stream[len(f1) + len(f2) + 1:])
    assert [ws.recv()["id"] for _ in range(2)] == [2, 3]


def test_handshake_and_first_frame_in_one_write(rtmd):
    ws = rtmd.ws(handshake=False)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    req = ("GET /v1/rtm HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode()
    ws.send_raw(req + Ws.frame(json.dumps({"op": "login", "id": 1, "appid": APP_NOCERT, "uid": "early"})))
    while b"\r\n\r\n" not in ws.buf:
        ws._fill()
    head, ws.buf = ws.buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101")
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # RFC 6455's example key/accept
    assert_login_reply(ws.recv(), 1)


def test_fragmented_message_is_reassembled(rtmd):
    ws = logged_in(rtmd)
    text = json.dumps({"op": "join", "id": 7, "channel": "frag"})
    parts = [text[:5], text[5:12], text[12:13], text[13:]]
    ws.send_frame(parts[0], opcode=1, fin=False)
    ws.send_frame(parts[1], opcode=0, fin=False)
    # a control frame may come between fragments
    ws.send_frame(b"mid", opcode=9)
    ws.send_frame(parts[2], opcode=0, fin=False)
    ws.send_frame(parts[3], opcode=0, fin=True)
    op, payload = ws.recv_frame()
    assert (op, payload) == (10, b"mid")
    assert_join_reply(ws.recv(), 7)
    # all fragments in one write
    text = json.dumps({"op": "leave", "id": 8, "channel": "frag"})
    ws.send_raw(Ws.frame(text[:3], opcode=1, fin=False) + Ws.frame(text[3:], opcode=0, fin=True))
    assert_ok_reply(ws.recv(), 8)


def test_ping_control_frame_gets_pong_with_same_payload(rtmd):
    ws = rtmd.ws()
    for payload in (b"", b"hello", bytes(range(125))):
        ws.send_frame(payload, opcode=9)
        assert ws.recv_frame() == (10, payload)
    # unsolicited pong is ignored
    ws.send_frame(b"x", opcode=10)
    still_alive(ws)


def test_binary_frame_is_not_a_crash(rtmd):
    ws = logged_in(rtmd)
    ws.send_frame(json.dumps({"op": "ping", "id": 5}).encode(), opcode=2)
    m = ws.recv()
    # the protocol speaks of text frames; a binary frame is either served or refused with a reply
    assert m["op"] == "reply", m
    still_alive(ws)


def test_client_close_gets_a_close_reply_then_eof(rtmd):
    ws = logged_in(rtmd)
    assert_join_reply(ws.call("join", channel="c"), 2)
    ws.send_frame(struct.pack("!H", 1000) + b"bye", opcode=8)
    op, payload = ws.recv_frame()
    assert op == 8
    assert struct.unpack("!H", payload[:2])[0] == 1000
    assert ws.wait_eof(5)
    ws.close_socket()
    users = rtmd.pull_until(2, app=APP_NOCERT)
    assert [e["type"] for e in users] == ["Login", "Logout"]
    assert [e["type"] for e in rtmd.events("channel", app=APP_NOCERT)] == ["Join", "Leave"]


def test_client_close_without_code_gets_a_close_reply(rtmd):
    ws = rtmd.ws()
    ws.send_frame(b"", opcode=8)
    op, payload = ws.recv_frame()
    assert op == 8
    assert ws.wait_eof(5)


# ---- protocol violations: close with a code, server stays up -------------------------------

def expect_close_code(ws, code):
    got, reason = ws.expect_close()
    assert got == code, (got, reason)
    assert ws.wait_eof(5), "no TCP close after the close frame"
    ws.close_socket()


def test_unmasked_client_frame_is_closed_1002(rtmd):
    ws = logged_in(rtmd)
    ws.send_frame(json.dumps({"op": "ping", "id": 2}), mask=False)
    expect_close_code(ws, 1002)
    users = rtmd.pull_until(2, app=APP_NOCERT)
    assert [e["type"] for e in users] == ["Login", "Logout"]
    rtmd.healthy()


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"{\"op\":\"ping\",\"id\":1,\"x\":\"\xc3\x28\"}",
                                     b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"abc\xe2\x82"])
def test_invalid_utf8_text_is_closed_1007(rtmd, payload):
    ws = logged_in(rtmd)
    ws.send_frame(payload, opcode=1)
    expect_close_code(ws, 1007)
    rtmd.healthy()


def test_invalid_utf8_split_over_fragments_is_closed_1007(rtmd):
    ws = logged_in(rtmd)
    ws.send_frame(b'{"op":"ping","id":1,"x":"\xe2', opcode=1, fin=False)
    ws.send_frame(b'\x28\xa1"}', opcode=0, fin=True)
    expect_close_code(ws, 1007)
    rtmd.healthy()


def test_valid_utf8_split_over_fragments_is_fine(rtmd):
    ws = logged_in(rtmd)
    ws.send_frame(b'{"op":"ping","id":3,"x":"\xe2\x82', opcode=1, fin=False)
    ws.send_frame(b'\xac"}', opcode=0, fin=True)
    m = ws.recv()
    assert m["id"] == 3 and m["ok"] is True


PROTOCOL_ERRORS = {
    "rsv1": Ws.frame(b'{"op":"ping","id":1}', rsv=4),
    "rsv3": Ws.frame(b'{"op":"ping","id":1}', rsv=1),
    "opcode_3": Ws.frame(b"x", opcode=3),
    "opcode_11": Ws.frame(b"x", opcode=11),
    "lone_continuation": Ws.frame(b"x", opcode=0),
    "fragmented_ping": Ws.frame(b"x", opcode=9, fin=False),
    "ping_over_125": Ws.frame(b"x" * 126, opcode=9),
    "text_inside_fragmented": Ws.frame(b'{"op"', opcode=1, fin=False) + Ws.frame(b"x", opcode=1),
    "close_1_byte": Ws.frame(b"\x03", opcode=8),
}


@pytest.mark.parametrize("name", sorted(PROTOCOL_ERRORS))
def test_protocol_violation_is_closed_1002(rtmd, name):
    ws = logged_in(rtmd)
    ws.send_raw(PROTOCOL_ERRORS[name])
    expect_close_code(ws, 1002)
    users = rtmd.pull_until(2, app=APP_NOCERT)
    assert [e["type"] for e in users] == ["Login", "Logout"]
    rtmd.healthy()


# ---- size limits: close 1009 ------------------------------------------------------------------

def padded(rid, size):
    """A ping op of exactly `size` bytes."""
    base = '{"op":"ping","id":%d,"pad":""}' % rid
    return base[:-2] + "p" * (size - len(base)) + '"}'


def test_frame_at_the_limit_is_served_one_over_is_closed_1009(rtmd):
    limit = 262144  # ws_max_message default
    ws = logged_in(rtmd)
    ws.send_frame(padded(2, limit))
    m = ws.recv()
    assert m["id"] == 2 and m["ok"] is True
    ws.send_frame(padded(3, limit + 1))
    expect_close_code(ws, 1009)
    rtmd.healthy()


def send_in_background(ws, data):
    def run():
        try:
            ws.sock.sendall(data)
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_2mb_frame_is_closed_1009(rtmd):
    ws = logged_in(rtmd)
    t = send_in_background(ws, Ws.frame(padded(2, 2 * 1024 * 1024)))
    expect_close_code(ws, 1009)
    t.join(10)
    users = rtmd.pull_until(2, app=APP_NOCERT)
    assert [e["type"] for e in users] == ["Login", "Logout"]
    rtmd.healthy()


def test_frame_header_announcing_2_to_62_bytes_is_closed_1009(rtmd):
    ws = logged_in(rtmd)
    ws.send_raw(struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 62) + b"\x00\x00\x00\x00" + b"{}")
    expect_close_code(ws, 1009)
    rtmd.healthy()


def test_frame_header_with_63rd_bit_is_refused(rtmd):
    ws = logged_in(rtmd)
    ws.send_raw(struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 63) + b"\x00\x00\x00\x00")
    code, _ = ws.expect_close()
    assert code in (1002, 1009), code
    assert ws.wait_eof(5)
    rtmd.healthy()


def test_fragmented_message_over_the_limit_is_closed_1009(rtmd):
    ws = logged_in(rtmd)
    piece = b"p" * 100000
    ws.send_frame(b'{"op":"ping","id":2,"pad":"' + piece, opcode=1, fin=False)
    ws.send_frame(piece, opcode=0, fin=False)
    t = send_in_background(ws, Ws.frame(piece, opcode=0, fin=False) + Ws.frame(b'"}', opcode=0))
    expect_close_code(ws, 1009)
    t.join(10)
    rtmd.healthy()


def test_fragmented_message_under_the_limit_is_served(rtmd):
    ws = logged_in(rtmd)
    piece = b"p" * 80000
    ws.send_frame(b'{"op":"ping","id":2,"pad":"' + piece, opcode=1, fin=False)
    ws.send_frame(piece, opcode=0, fin=False)
    ws.send_frame(piece + b'"}', opcode=0, fin=True)
    m = ws.recv()
    assert m["id"] == 2 and m["ok"] is True


def test_message_limit_follows_the_config(make_rtmd):
    limit = 40000
    r = make_rtmd(limits={"ws_max_message": limit})
    ws = logged_in(r)
    ws.send_frame(padded(2, limit))
    assert ws.recv()["id"] == 2
    ws.send_frame(padded(3, limit + 1))
    expect_close_code(ws, 1009)
    ws = logged_in(r, "u2")
    ws.send_frame(b'{"op":"ping","id":2,"pad":"' + b"p" * 30000, opcode=1, fin=False)
    ws.send_frame(b"p" * 30000 + b'"}', opcode=0, fin=True)
    expect_close_code(ws, 1009)
    r.healthy()


def test_frames_that_arrive_while_an_op_is_pending_are_queued_in_order(rtmd):
    """Frames pipelined behind an op that waits for the store (login, join)
    are answered in order, including empty and invalid ones."""
    ws = rtmd.ws()
    ws.send_raw(Ws.frame(json.dumps({"op": "login", "id": 1, "appid": APP_NOCERT, "uid": "q"}))
                + Ws.frame(b"") + Ws.frame(b"[]")
                + Ws.frame(json.dumps({"op": "join", "id": 2, "channel": "c"}))
                + Ws.frame(b"")
                + Ws.frame(json.dumps({"op": "ping", "id": 3})))
    got = [ws.recv() for _ in range(6)]
    assert [(m["id"], m["ok"]) for m in got] == [(1, True), (None, False), (None, False), (2, True),
                                                 (None, False), (3, True)], got
    rtmd.healthy()
