"""Fan-out to a channel larger than one pass of the fan-out queue (4096
pushes): messages go through queued jobs, and messages sent while a job
waits join it, so each member gets several in one write. Every member must
still get every message once, in each sender's order, and never its own."""
import selectors

from harness import APP_NOCERT, Ws

MEMBERS = 4200
PER_SENDER = 6


def test_queued_and_merged_fanout_reaches_everyone_in_order(make_rtmd):
    rtmd = make_rtmd(limits={"heartbeat_timeout_s": 600})
    port = rtmd.port()
    members = []
    for i in range(MEMBERS):
        ws = Ws(port, handshake=False)
        members.append(ws)
    for ws in members:
        ws.handshake()
    for i, ws in enumerate(members):
        ws.send({"op": "login", "id": 1, "appid": APP_NOCERT, "uid": "f%d" % i})
        ws.send({"op": "join", "id": 2, "channel": "huge"})
    for ws in members:
        assert ws.reply(1)["ok"] is True
        assert ws.reply(2)["ok"] is True
    a, b = members[0], members[1]
    # Interleaved bursts from two senders: the first becomes a queued job,
    # the rest join it or queue behind it.
    for k in range(PER_SENDER):
        a.send({"op": "publish", "id": 100 + k, "channel": "huge", "payload": "a%d" % k})
        b.send({"op": "publish", "id": 100 + k, "channel": "huge", "payload": "b%d" % k})
    got = {i: [] for i in range(MEMBERS)}
    sel = selectors.DefaultSelector()
    for i, ws in enumerate(members):
        for m in ws.pushes:
            if m.get("op") == "channel_message":
                got[i].append(m["payload"])
        ws.pushes = []
        ws.sock.setblocking(False)
        sel.register(ws.sock, selectors.EVENT_READ, i)
    want = {i: 2 * PER_SENDER - (PER_SENDER if i in (0, 1) else 0) for i in range(MEMBERS)}
    replies = {0: 0, 1: 0}
    import time
    deadline = time.monotonic() + 60
    while any(len(got[i]) < want[i] for i in got) or replies[0] < PER_SENDER or replies[1] < PER_SENDER:
        assert time.monotonic() < deadline, "fan-out incomplete"
        for key, _ in sel.select(timeout=1):
            i = key.data
            ws = members[i]
            try:
                chunk = ws.sock.recv(65536)
            except BlockingIOError:
                continue
            assert chunk, "member %d was disconnected" % i
            ws.buf += chunk
            while True:
                frame = ws.take_frame()
                if frame is None:
                    break
                m = frame
                if m.get("op") == "channel_message":
                    got[i].append(m["payload"])
                elif m.get("op") == "reply" and i in (0, 1):
                    assert m["ok"] is True
                    replies[i] += 1
    for i in range(MEMBERS):
        seq = got[i]
        for sender in ("a", "b"):
            mine = [p for p in seq if p[0] == sender]
            expect = [] if (sender == "a" and i == 0) or (sender == "b" and i == 1) else \
                ["%s%d" % (sender, k) for k in range(PER_SENDER)]
            assert mine == expect, (i, sender, seq)
    for ws in members:
        ws.close()
