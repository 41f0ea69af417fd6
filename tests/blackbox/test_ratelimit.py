"""events_qps (docs/API.md "Presence events", 429 in "Conventions"): 10 requests per second per app over both
event endpoints; a 429 has the error body and consumes no events; other apps
are unaffected."""
import time

from harness import (APP, APP_NOCERT, Http, assert_error, assert_events_envelope, basic,
                     event_path, wait_until)

AUTH = {"Authorization": basic()}


def seed(r, app=APP_NOCERT, uid="rl"):
    with r.ws() as ws:
        assert ws.login(uid, app=app)["ok"]
        assert ws.call("join", channel="c")["ok"]
        assert ws.call("logout")["ok"]
        ws.expect_close()


def burst(r, paths):
    """Sends every request at once, each on its own connection (so none
    waits for another's answer), then reads the answers in order."""
    conns = [r.http() for _ in paths]
    try:
        reqs = [Http.build("GET", p, AUTH) for p in paths]
        for c, q in zip(conns, reqs):
            c.send(q)
        return [c.read_response() for c in conns]
    finally:
        for c in conns:
            c.close()


def pipelined(r, paths):
    """Sends every request in one write on one connection; answers in order."""
    with r.http() as h:
        h.send(b"".join(Http.build("GET", p, AUTH) for p in paths))
        return [h.read_response() for _ in paths]


def wait_for_200(r, path):
    """Polls path until it is answered 200 (the rate window passed); returns it."""
    got = []

    def ok():
        resp = r.get(path, headers=AUTH)
        if resp[0] == 200:
            got.append(resp)
            return True
        assert_error(resp, 429, "too_many_requests")
        return False

    wait_until(ok, timeout=5, interval=0.05, what="the rate window to pass")
    return got[0]


def statuses(got):
    return sorted(x[0] for x in got)


def events_of(got):
    return [(e["type"], e["user_id"], e.get("channel_id")) for x in got if x[0] == 200
            for e in assert_events_envelope(x)]


ALL_SEEDED = [("Login", "rl", None), ("Logout", "rl", None), ("Join", "rl", "c"), ("Leave", "rl", "c")]


def test_11th_request_within_a_second_is_429_over_both_endpoints(rtmd):
    seed(rtmd)
    user, chan = event_path("user", APP_NOCERT), event_path("channel", APP_NOCERT)
    # 11 requests at once, at most 6 on either endpoint: the limit is shared
    got = burst(rtmd, [chan] * 5 + [user] * 6)
    assert statuses(got) == [200] * 10 + [429], [x[0] for x in got]
    for x in got:
        if x[0] == 429:
            assert_error(x, 429, "too_many_requests")
    # whichever was refused consumed nothing: once the second has passed, both
    # logs together hold every event exactly once
    later = [wait_for_200(rtmd, user), wait_for_200(rtmd, chan)]
    assert sorted(events_of(got) + events_of(later), key=str) == sorted(ALL_SEEDED, key=str)
    rtmd.healthy()


def test_simultaneous_requests_exactly_10_pass(rtmd):
    seed(rtmd)
    paths = [event_path("user" if i % 2 else "channel", APP_NOCERT) for i in range(14)]
    got = burst(rtmd, paths)
    assert statuses(got) == [200] * 10 + [429] * 4
    for x in got:
        if x[0] == 429:
            assert_error(x, 429, "too_many_requests")
    later = [wait_for_200(rtmd, event_path("user", APP_NOCERT)),
             wait_for_200(rtmd, event_path("channel", APP_NOCERT))]
    assert sorted(events_of(got) + events_of(later), key=str) == sorted(ALL_SEEDED, key=str)


def test_a_429_consumes_no_events(make_rtmd):
    # events_qps = 1 gives the 429 a whole second of margin on a busy machine
    r = make_rtmd(limits={"events_qps": 1})
    seed(r)
    user, chan = event_path("user", APP_NOCERT), event_path("channel", APP_NOCERT)
    got = pipelined(r, [user, chan, chan, user])
    assert [x[0] for x in got] == [200, 429, 429, 429]
    assert [(e["type"], e["user_id"]) for e in assert_events_envelope(got[0])] == [
        ("Login", "rl"), ("Logout", "rl")]
    for x in got[1:]:
        assert_error(x, 429, "too_many_requests")
    resp = wait_for_200(r, chan)
    assert [(e["type"], e["channel_id"]) for e in assert_events_envelope(resp)] == [
        ("Join", "c"), ("Leave", "c")]


def test_another_app_is_unaffected(rtmd):
    got = burst(rtmd, [event_path("user", APP_NOCERT)] * 11)
    assert statuses(got) == [200] * 10 + [429]
    # APP has its own 10
    got = burst(rtmd, [event_path("channel", APP)] * 5 + [event_path("user", APP)] * 6)
    assert statuses(got) == [200] * 10 + [429]


def test_rate_is_shared_by_the_regions_of_one_node(rtmd):
    conns = [rtmd.http("eu" if i % 2 else "default") for i in range(11)]
    for c in conns:
        c.send(Http.build("GET", event_path("user", APP_NOCERT), AUTH))
    got = [c.read_response() for c in conns]
    for c in conns:
        c.close()
    assert statuses(got) == [200] * 10 + [429]


def test_the_limit_refills_within_about_a_second(rtmd):
    got = burst(rtmd, [event_path("user", APP_NOCERT)] * 11)
    assert statuses(got) == [200] * 10 + [429]
    t0 = time.monotonic()
    wait_for_200(rtmd, event_path("user", APP_NOCERT))
    assert time.monotonic() - t0 < 1.5


def test_no_more_than_10_are_served_in_any_second(rtmd):
    """'10 requests per second' (events_qps): requests spread over less than a
    second (one every ~40 ms, each answered before the next) - at most 10 of
    those answered within one second of the first are 200."""
    path = event_path("user", APP_NOCERT)
    results = []
    with rtmd.http() as h:
        t0 = time.monotonic()
        k = 0
        while True:
            target = t0 + k * 0.04
            now = time.monotonic()
            if now < target:
                # pace the stimulus: wait for "nothing" from the server until target
                assert not h.wait_eof(target - now), "server closed the connection"
            st, hd, body = h.request("GET", path, headers=AUTH)
            done = time.monotonic()
            if done - t0 >= 1.0:
                break
            results.append(st)
            k += 1
    assert len(results) >= 15, results   # the test really spread >10 requests over the second
    assert set(results) <= {200, 429}
    assert results[:10] == [200] * 10
    assert results.count(200) <= 10, "%d requests served within one second: %s" % (
        results.count(200), results)


def test_events_qps_follows_the_config(make_rtmd):
    r = make_rtmd(limits={"events_qps": 3})
    got = burst(r, [event_path("user", APP_NOCERT), event_path("channel", APP_NOCERT),
                    event_path("user", APP_NOCERT), event_path("channel", APP_NOCERT)])
    assert statuses(got) == [200, 200, 200, 429]


def test_health_and_ws_are_not_rate_limited(rtmd):
    got = burst(rtmd, [event_path("user", APP_NOCERT)] * 11)
    assert statuses(got) == [200] * 10 + [429]
    for _ in range(20):
        assert rtmd.get("/healthz")[0] == 200
    with rtmd.ws() as ws:
        assert ws.login("free", app=APP_NOCERT)["ok"]
