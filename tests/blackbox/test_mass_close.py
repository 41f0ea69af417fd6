"""Regression: many members of one channel disconnecting at once.

Each departure pushes member_left to the members still there; writing to a
member that has already gone fails. That failed write used to close the
connection on the spot, ending its session inside the fan-out that was
removing another membership of the same channel — a use-after-free once the
channel emptied (found by bench/fanout). A failed write now only marks the
connection, which is closed from the loop.
"""
import socket
import struct

from harness import APP_NOCERT, wait_until

N = 1000
# Long names make each member_left push ~170 bytes, so one iteration's
# departures pass the 32 KiB at which a member's buffered output is written
# inside the fan-out (where the bug was).
CHANNEL = "c" * 64


def uid(i):
    return ("m%d-" % i).ljust(64, "x")


def login_all(rtmd, n):
    clients = []
    for i in range(n):
        ws = rtmd.ws()
        ws.send({"op": "login", "id": 1, "appid": APP_NOCERT, "uid": uid(i)})
        ws.send({"op": "join", "id": 2, "channel": CHANNEL})
        clients.append(ws)
    for ws in clients:
        assert ws.reply(1)["ok"] is True
        assert ws.reply(2)["ok"] is True
    return clients


def test_all_members_reset_at_once(make_rtmd):
    rtmd = make_rtmd(limits={"heartbeat_timeout_s": 600})
    clients = login_all(rtmd, N)
    # Abortive close (RST): the server's later writes to them fail.
    for ws in clients:
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.close()
    assert rtmd.healthy()
    got = []

    def all_ended():
        got.extend(rtmd.events("channel", app=APP_NOCERT))
        return sum(1 for e in got if e["type"] == "Leave") >= N

    wait_until(all_ended, timeout=60, what="a Leave for every member")
    leaves = sorted(e["user_id"] for e in got if e["type"] == "Leave")
    assert leaves == sorted(uid(i) for i in range(N))
    users = []
    wait_until(lambda: users.extend(rtmd.events("user", app=APP_NOCERT)) or
               sum(1 for e in users if e["type"] == "Logout") >= N, timeout=60, what="Logouts")
    assert sum(1 for e in users if e["type"] == "Logout") == N
    assert rtmd.healthy()


def test_members_leave_while_a_big_channel_floods(make_rtmd):
    rtmd = make_rtmd(limits={"heartbeat_timeout_s": 600})
    clients = login_all(rtmd, 300)
    sender = clients[0]
    for k in range(50):
        sender.send({"op": "publish", "id": 100 + k, "channel": CHANNEL, "payload": "x" * 2000})
    for ws in clients[1:]:
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.close()
    for k in range(50):
        assert sender.reply(100 + k)["ok"] is True
    assert rtmd.healthy()
