"""Signals that operators and their tools send must never kill rtmd.
SIGUSR1/SIGUSR2 (common "reopen"/"dump" signals): logged and ignored until
they mean something. SIGTERM and SIGINT drain: close 1001 to every client,
up to drain_s for them to close, sessions ended, exit 0. (SIGHUP reloads:
test_reload.py.)"""
import json
import os
import struct
import time
import signal

import pytest

from harness import APP_NOCERT, Http, Rtmd, basic, event_path, wait_until


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGUSR2])
def test_usr1_usr2_are_logged_and_ignored(make_rtmd, sig):
    r = make_rtmd()
    ws = r.ws()
    assert ws.login("alice", app=APP_NOCERT)["ok"] is True
    for _ in range(20):
        os.kill(r.proc.pid, sig)
    wait_until(lambda: r.log_has("signal %d (" % sig), 5, what="the signal in the log")
    assert r.alive()
    # the connection and the service are untouched
    assert ws.call("ping")["ok"] is True
    r.healthy()
    ws.close()


def test_signals_during_shutdown_do_not_kill(tmp_path, rtmd_store):
    r = Rtmd(tmp_path, store=rtmd_store)
    r.start()
    ws = r.ws()
    assert ws.login("alice", app=APP_NOCERT)["ok"] is True
    pid = r.proc.pid
    os.kill(pid, signal.SIGTERM)
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2) * 20:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
    assert r.proc.wait(20) == 0


# ---- SIGTERM drains ------------------------------------------------------------------------------

def answer_close(ws, timeout=5.0):
    """Reads up to the server's close frame, answers it with a close frame (as
    a browser does) and closes the socket; returns (code, reason)."""
    code, reason = ws.expect_close(timeout)
    try:
        ws.send_frame(struct.pack("!H", code), opcode=8)
    except OSError:
        pass
    ws.close()
    return code, reason


def user_events(r, app, n):
    """After a restart: the first n user events of app as (type, uid)."""
    return [(e["type"], e["user_id"]) for e in r.pull_until(n, app=app)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_sends_going_away_then_ends_sessions_and_exits_0(make_rtmd, sig):
    r = make_rtmd()
    a, b = r.ws(), r.ws()
    assert a.login("alice", app=APP_NOCERT)["ok"] is True
    assert b.login("bob", app=APP_NOCERT)["ok"] is True
    assert a.call("join", channel="ch")["ok"] is True
    idle = r.http()  # a keep-alive connection between requests closes at once
    assert idle.request("GET", "/healthz")[0] == 200
    t0 = time.monotonic()
    os.kill(r.proc.pid, sig)
    assert answer_close(a) == (1001, "going away")
    assert answer_close(b) == (1001, "going away")
    assert idle.wait_eof(5)
    r.expect_exit = True
    assert r.proc.wait(10) == 0
    # every client closed: rtmd did not wait for drain_s (5 s)
    assert time.monotonic() - t0 < 4
    assert r.log_has("draining 3 connections")
    r.log.close()
    r.restart()
    got = user_events(r, APP_NOCERT, 4)
    assert got[:2] == [("Login", "alice"), ("Login", "bob")]
    assert sorted(got[2:]) == [("Logout", "alice"), ("Logout", "bob")]
    chans = [(e["type"], e["user_id"]) for e in r.pull_until(2, kind="channel", app=APP_NOCERT)]
    assert chans == [("Join", "alice"), ("Leave", "alice")]


def test_drain_waits_for_clients_and_cuts_one_that_does_not_close(make_rtmd):
    r = make_rtmd(server={"drain_s": 1})
    stubborn, polite = r.ws(), r.ws()
    assert stubborn.login("stubborn", app=APP_NOCERT)["ok"] is True
    assert polite.login("polite", app=APP_NOCERT)["ok"] is True
    t0 = time.monotonic()
    os.kill(r.proc.pid, signal.SIGTERM)
    # both get 1001 at once; the stubborn one never answers or closes
    assert stubborn.expect_close(5) == (1001, "going away")
    assert answer_close(polite) == (1001, "going away")
    time.sleep(0.3)  # rtmd is still waiting for the stubborn client
    assert r.alive()
    r.expect_exit = True
    assert r.proc.wait(10) == 0
    took = time.monotonic() - t0
    assert 0.9 <= took < 3, took
    assert stubborn.wait_eof(1)
    r.log.close()
    r.restart()
    got = user_events(r, APP_NOCERT, 4)
    assert sorted(got[2:]) == [("Logout", "polite"), ("Logout", "stubborn")]


def test_drain_s_0_still_sends_going_away(make_rtmd):
    r = make_rtmd(server={"drain_s": 0})
    ws = r.ws()
    assert ws.login("alice", app=APP_NOCERT)["ok"] is True
    os.kill(r.proc.pid, signal.SIGTERM)
    assert ws.expect_close(5) == (1001, "going away")
    r.expect_exit = True
    assert r.proc.wait(5) == 0


def test_second_sigterm_ends_the_drain_at_once(make_rtmd):
    r = make_rtmd(server={"drain_s": 60})
    ws = r.ws()
    assert ws.login("alice", app=APP_NOCERT)["ok"] is True
    os.kill(r.proc.pid, signal.SIGTERM)
    assert ws.expect_close(5) == (1001, "going away")
    t0 = time.monotonic()
    os.kill(r.proc.pid, signal.SIGTERM)
    r.expect_exit = True
    assert r.proc.wait(5) == 0
    assert time.monotonic() - t0 < 2


def test_drain_answers_what_is_in_flight_first(make_rtmd, redis_server):
    """With Redis stalled, a client's join and a REST pull are in flight when
    SIGTERM comes: the client gets its join's answer, then close 1001; the
    pull is answered (Connection: close); both finish once Redis answers."""
    store = {"backend": "redis", "redis_url": redis_server.url, "redis_timeout_ms": 5000}
    r = make_rtmd(store=store)
    alice = r.ws()
    assert alice.login("alice", app=APP_NOCERT)["ok"] is True
    assert alice.call("ping")["ok"] is True  # the login's offline-message take is done
    h = r.http()
    redis_server.pause()
    try:
        alice.send({"op": "join", "id": 7, "channel": "ch"})
        h.send(Http.build("GET", event_path(app=APP_NOCERT), {"Authorization": basic()}))
        time.sleep(0.3)  # both reach rtmd and wait for Redis (nothing to poll for)
        os.kill(r.proc.pid, signal.SIGTERM)
        wait_until(lambda: r.log_has("draining 2 connections"), 5, what="the drain")
        alice.assert_silent(0.3)  # no close while its join is in flight
        assert r.alive()
    finally:
        redis_server.resume()
    m = alice.reply(7)
    assert m["ok"] is True, m
    assert answer_close(alice) == (1001, "going away")
    st, hd, body = h.read_response()
    assert st == 200, body
    assert hd.get("connection") == "close"
    # (whether the pull ran before or after the Logout is the store's order)
    users = [(e["type"], e["user_id"]) for e in json.loads(body)["events"]]
    assert users[:1] == [("Login", "alice")]
    assert h.wait_eof(5)
    r.expect_exit = True
    assert r.proc.wait(10) == 0
    r.log.close()
    r.restart()
    if len(users) == 1:
        users += user_events(r, APP_NOCERT, 1)
    assert users == [("Login", "alice"), ("Logout", "alice")]
    assert r.events("user", app=APP_NOCERT) == []
    chans = [(e["type"], e["user_id"]) for e in r.pull_until(2, kind="channel", app=APP_NOCERT)]
    assert chans == [("Join", "alice"), ("Leave", "alice")]


def test_an_upgrade_finished_during_the_drain_is_refused(make_rtmd):
    r = make_rtmd()
    h = r.http()
    head = Http.build("GET", "/v1/rtm", {"Upgrade": "websocket", "Connection": "Upgrade",
                                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                         "Sec-WebSocket-Version": "13"})
    h.send(head[:-2])  # all but the blank line that ends the head
    os.kill(r.proc.pid, signal.SIGTERM)
    wait_until(lambda: r.log_has("draining 1 connections"), 5, what="the drain")
    h.send(b"\r\n")
    st, hd, body = h.read_response()
    assert st == 503, body
    assert json.loads(body)["code"] == "unavailable"
    assert h.wait_eof(5)
    h.close()
    r.expect_exit = True
    assert r.proc.wait(10) == 0
