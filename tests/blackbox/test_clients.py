"""Agora's REST API as real clients use it: what public code written for
Agora sends that the documents do not name (times without a zone, empty
filter fields, count-driven paging, credentials as clients write them,
token times, wait_for_ack spellings, content types, history handles, user IDs
in paths), and the switch that keeps client tokens off the vendor's read
endpoints. Each test names the client behaviour it pins.
"""
import base64
import json
import time
import urllib.parse

import pytest

from harness import (APP, APP_NOCERT, CERT, CUSTOMER, SECRET, assert_error,
                     assert_events_envelope, basic, event_path, token, tokens, wait_until)
from msgutil import (FAST, HANDLE_RE, assert_answer, assert_location, assert_messages,
                     assert_peer_push, assert_reply_ok, base, channel_body, count, count_path,
                     hist_body, hist_get, hist_post, history, iso, now_ms, online, peer_body,
                     peer_path, push, readable, request, send_peer, silent)
from harness import Http


def local_iso(ms):
    """A LocalDateTime-style time: no zone, no fraction (what Java's
    LocalDateTime.toString() and many PHP/Go formats give)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000))


def open_request(r, method, path, body):
    """Sends a request without reading its answer; returns the connection."""
    h = r.http()
    h.send(Http.build(method, path, {"Authorization": basic()}, json.dumps(body)))
    return h


@pytest.fixture
def fast(make_rtmd):
    return make_rtmd(limits=FAST)


# ---- 1. times without a zone are UTC --------------------------------------------------------

def test_times_without_a_zone_are_utc_in_query_and_count(fast):
    t0 = now_ms()
    for i in range(3):
        assert_answer(send_peer(fast, "a", "b", "m%d" % i, history=True), "message_offline")
    t1 = now_ms()
    start, end = local_iso(t0 - 2000), local_iso(t1 + 2000)
    assert [m["payload"] for m in history(fast, "a", None, start=start, end=end)] == \
        ["m0", "m1", "m2"]
    assert count(fast, source="a", start_time=start, end_time=end) == 3
    # read as UTC, not as some local time: a window an hour later holds nothing
    later = local_iso(t0 + 3600000), local_iso(t1 + 3600000 + 2000)
    assert history(fast, "a", None, start=later[0], end=later[1]) == []
    assert count(fast, source="a", start_time=later[0], end_time=later[1]) == 0
    # with a fraction and no zone too
    frac = iso(t0 - 2000)[:-1], iso(t1 + 2000)[:-1]
    assert count(fast, source="a", start_time=frac[0], end_time=frac[1]) == 3
    # other zones stay refused: the API's times are UTC
    d = assert_error(hist_post(fast, hist_body("a", None, start=start + "+08:00", end=end)), 400)
    assert "start_time" in d["message"]


# ---- 2. empty filter fields mean "not given" --------------------------------------------------

def test_empty_source_or_destination_means_not_given(fast):
    assert_answer(send_peer(fast, "a", "b", "a to b", history=True), "message_offline")
    assert_answer(send_peer(fast, "c", "b", "c to b", history=True), "message_offline")
    assert_answer(send_peer(fast, "a", "d", "a to d", history=True), "message_offline")
    assert [m["payload"] for m in history(fast, "", "b")] == ["a to b", "c to b"]
    assert [m["payload"] for m in history(fast, "a", "")] == ["a to b", "a to d"]
    assert count(fast, source="", destination="b") == 2
    assert count(fast, source="a", destination="") == 2
    # the documented quotes around an empty value: still not given
    assert count(fast, source='""', destination="b") == 2
    for body in (hist_body("", ""), hist_body(None, "")):
        d = assert_error(hist_post(fast, body), 400)
        assert "cannot both be empty" in d["message"], d
    d = assert_error(request(fast, "GET", count_path(source="", destination="")), 400)
    assert "cannot both be empty" in d["message"], d
    # a present but bad ID is still refused
    d = assert_error(hist_post(fast, hist_body("null", "b")), 400)
    assert "source" in d["message"], d


# ---- 3. count agrees with the pages ------------------------------------------------------------

def page_through(r, source, start, end, total):
    """What a client written against Agora does: limit=100, offset until it has
    read `total` messages (bounded here so a disagreement fails, not hangs)."""
    got = []
    for _ in range(total // 100 + 3):
        if len(got) >= total:
            break
        page = history(r, source, None, start=start, end=end, limit=100, offset=len(got))
        if not page:
            break
        got.extend(page)
    return got


def test_count_and_pages_agree_at_the_edges_and_across_retention_expiry(make_rtmd):
    r = make_rtmd(limits=dict(FAST, history_retention_s=6))
    for i in range(5):
        assert_answer(send_peer(r, "a", "b", "old%d" % i, history=True), "message_offline")
    t_old = now_ms()
    wait_until(lambda: now_ms() > t_old + 3000, 10, interval=0.05, what="3 s to pass")
    for i in range(205):
        assert_answer(send_peer(r, "a", "b", "new%03d" % i, history=True), "message_offline")
    everything = page_through(r, "a", iso(t_old - 60000), iso(now_ms() + 60000), 210)
    assert len(everything) == 210
    # the window's edges are exactly the first and the last message (inclusive)
    start, end = iso(everything[0]["ms"]), iso(everything[-1]["ms"])
    n = count(r, source="a", start_time=start, end_time=end)
    assert n == 210
    # the old messages expire between the count and the pages...
    wait_until(lambda: now_ms() > t_old + 6200, 10, interval=0.05, what="retention to pass")
    assert count(r, source="a", start_time=iso(everything[0]["ms"] - 1), end_time=end) == 205
    # ...and still the pages of that filter give what its count said
    pages = page_through(r, "a", start, end, n)
    assert len(pages) == n
    assert [m["payload"] for m in pages] == [m["payload"] for m in everything]
    assert count(r, source="a", start_time=start, end_time=end) == n
    # descending pages agree too
    desc = []
    while len(desc) < n:
        page = history(r, "a", None, start=start, end=end, limit=100, offset=len(desc),
                       order="desc")
        assert page, "a page came up short"
        desc.extend(page)
    assert [m["payload"] for m in desc] == [m["payload"] for m in reversed(everything)]


# ---- 4. credentials as clients send them ------------------------------------------------------

def events_with(r, headers):
    return r.get(event_path("user", APP), headers=headers)


@pytest.mark.parametrize("value", ["agora token= {t}", "agora token=\"{t}\"", "agora token = {t}",
                                   "Agora Token={t}", "agora  token=\"{t}\"  "])
def test_agora_token_spellings_clients_send(rtmd, value):
    t = token("alice")
    assert_events_envelope(events_with(rtmd, {"Authorization": value.format(t=t)}))


def test_several_credentials_succeed_when_any_verifies(rtmd):
    t7, t6 = token("alice"), token("alice", v="006")
    ok = [
        # the token headers and an Authorization header that repeats the token
        {"x-agora-token": t7, "Authorization": "agora token=" + t7},
        {"x-agora-token": t6, "x-agora-uid": "alice", "Authorization": "agora token=" + t6},
        # an Authorization scheme rtmd does not know, beside token headers that verify
        {"x-agora-token": t6, "x-agora-uid": "alice", "Authorization": "Bearer abc.def.ghi"},
        {"x-agora-token": t7, "Authorization": "Digest username=\"x\""},
        # a bare base64 value with no scheme, beside them
        {"x-agora-token": t7, "Authorization": base64.b64encode(b"junk:junk").decode()},
        # a bare base64 value that is the customer's key and secret
        {"Authorization": base64.b64encode(("%s:%s" % (CUSTOMER, SECRET)).encode()).decode()},
        # a bare token as the Authorization value
        {"Authorization": t7},
        # a wrong Basic beside a good token, and a good Basic beside a wrong token
        {"Authorization": basic(secret="0" * 32), "x-agora-token": t7},
        {"Authorization": basic(), "x-agora-token": t7[:-4] + "AAAA"},
        # token in quotes in x-agora-token
        {"x-agora-token": '"%s"' % t7},
    ]
    for h in ok:
        assert_events_envelope(events_with(rtmd, h))
    bad = [
        {"Authorization": "Bearer abc"},
        {"Authorization": base64.b64encode(b"junk:junk").decode()},
        {"x-agora-token": t7[:-4] + "AAAA", "Authorization": "Bearer abc"},
        {"Authorization": "agora token=", "x-agora-token": ""},
        {"Authorization": "agora token=" + t6},  # 006 needs its uid
    ]
    for h in bad:
        assert_error(events_with(rtmd, h), 401)


def test_006_inside_agora_token_with_x_agora_uid_verifies_as_006(rtmd):
    t6 = token("alice", v="006")
    assert_events_envelope(events_with(rtmd, {"Authorization": "agora token=" + t6,
                                              "x-agora-uid": "alice"}))
    assert_events_envelope(events_with(rtmd, {"Authorization": "agora token=\"%s\"" % t6,
                                              "x-agora-uid": "alice"}))
    assert_error(events_with(rtmd, {"Authorization": "agora token=" + t6, "x-agora-uid": "bob"}),
                 401)
    # the token's user sends as itself over the send API, and only as itself
    bob = online(rtmd, "bob", app=APP)
    path = "/dev/v2/project/%s/rtm/users/alice/peer_messages" % APP
    auth = {"Authorization": "agora token=" + t6, "x-agora-uid": "alice"}
    assert_answer(request(rtmd, "POST", path, peer_body("bob", "hi"), auth=auth), "message_sent")
    assert_peer_push(push(bob), "alice", "hi")
    path = "/dev/v2/project/%s/rtm/users/carol/peer_messages" % APP
    assert_error(request(rtmd, "POST", path, peer_body("bob", "hi"), auth=auth), 401)


# ---- 5. token times -------------------------------------------------------------------------

def t006(uid, ts=None, privilege_ts=None):
    r = {"v": "006", "appid": APP, "cert": CERT, "uid": uid, "expire": 0}
    if ts is not None:
        r["ts"] = ts
    if privilege_ts is not None:
        r["privilege_ts"] = privilege_ts
    return tokens([r])[0]


def t007(uid, issue_ts, expire):
    return tokens([{"v": "007", "appid": APP, "cert": CERT, "uid": uid, "expire": expire,
                    "issue_ts": issue_ts}])[0]


def ws_login(r, uid, tok):
    with r.ws() as ws:
        return ws.login(uid, app=APP, token=tok)


def test_006_privilege_expiry_0_means_the_token_ts_governs(rtmd):
    now = int(time.time())
    t = t006("alice", ts=now + 3600, privilege_ts=0)
    assert_events_envelope(events_with(rtmd, {"x-agora-token": t, "x-agora-uid": "alice"}))
    assert ws_login(rtmd, "alice", t)["ok"] is True
    gone = t006("alice", ts=now - 10, privilege_ts=0)
    assert_error(events_with(rtmd, {"x-agora-token": gone, "x-agora-uid": "alice"}), 401,
                 "token_expired")
    m = ws_login(rtmd, "alice", gone)
    assert m["ok"] is False and m["error"] == "token_expired", m


def test_007_expire_given_as_an_absolute_time_is_capped_not_refused(rtmd):
    now = int(time.time())
    # now + 60 days passed where seconds-from-issue belong
    t = t007("alice", now, now + 60 * 86400)
    assert_events_envelope(events_with(rtmd, {"Authorization": "agora token=" + t}))
    assert ws_login(rtmd, "alice", t)["ok"] is True
    # the cap is 24 h from issue: issued 25 h ago, it is expired
    old = t007("alice", now - 25 * 3600, now + 60 * 86400)
    assert_error(events_with(rtmd, {"Authorization": "agora token=" + old}), 401, "token_expired")
    # issued 23 h ago, it still lives
    young = t007("alice", now - 23 * 3600, now + 60 * 86400)
    assert_events_envelope(events_with(rtmd, {"Authorization": "agora token=" + young}))


def test_tokens_from_a_clock_in_the_future_are_refused(make_rtmd):
    """A 006 whose ts is more than 24 h (+ skew) ahead, a 007 issued more than
    token_clock_skew_s in the future: refused on REST and at login."""
    r = make_rtmd(limits={"token_clock_skew_s": 300})
    now = int(time.time())
    refused = [
        ({"x-agora-token": t006("alice", ts=now + 2 * 86400, privilege_ts=0),
          "x-agora-uid": "alice"}, t006("alice", ts=now + 2 * 86400, privilege_ts=0)),
        ({"Authorization": "agora token=" + t007("alice", now + 3600, 600)},
         t007("alice", now + 3600, 600)),
    ]
    for headers, tok in refused:
        d = assert_error(events_with(r, headers), 401, "unauthorized")
        assert "future" in d["message"], d
        m = ws_login(r, "alice", tok)
        assert m["ok"] is False and m["error"] == "invalid_token", m
        assert "future" in m["message"], m
    # within the skew: accepted
    accepted = [t006("alice", ts=now + 86400 + 60, privilege_ts=0), t007("alice", now + 60, 600)]
    assert_events_envelope(events_with(r, {"x-agora-token": accepted[0], "x-agora-uid": "alice"}))
    assert_events_envelope(events_with(r, {"Authorization": "agora token=" + accepted[1]}))
    assert ws_login(r, "alice", accepted[1])["ok"] is True


def test_token_clock_skew_s_0_refuses_any_future_issue(make_rtmd):
    r = make_rtmd(limits={"token_clock_skew_s": 0})
    now = int(time.time())
    assert_error(events_with(r, {"Authorization": "agora token=" + t007("alice", now + 30, 600)}),
                 401)
    assert_events_envelope(events_with(r, {"Authorization": "agora token=" +
                                           t007("alice", now - 1, 600)}))


# ---- 6. wait_for_ack as clients spell it --------------------------------------------------------

@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1"])
def test_wait_for_ack_true_spellings_wait_for_the_ack(fast, value):
    bob = online(fast, "bob")
    h = open_request(fast, "POST", peer_path("alice", wait=value), peer_body("bob", "ack me"))
    m = push(bob)
    assert not readable(h.sock, 0.2), "answered before the ack"
    assert_reply_ok(bob.call("ack", mid=m["mid"]))
    assert_answer(h.read_response(), "message_delivered")
    h.close()


@pytest.mark.parametrize("value", ["false", "FALSE", "False", "0", ""])
def test_wait_for_ack_false_spellings_and_empty_do_not_wait(fast, value):
    bob = online(fast, "bob")
    assert_answer(send_peer(fast, "alice", "bob", "x", wait=value), "message_sent")
    push(bob)
    path = "%s/rtm/users/alice/peer_messages?wait_for_ack" % base()
    assert_answer(request(fast, "POST", path, peer_body("bob", "y")), "message_sent")


@pytest.mark.parametrize("value", ["yes", "2", "truee", "%20true"])
def test_wait_for_ack_other_values_are_400(fast, value):
    d = assert_error(send_peer(fast, "alice", "bob", "x", wait=value), 400)
    assert "wait_for_ack" in d["message"]


# ---- 7. content types ------------------------------------------------------------------------

@pytest.mark.parametrize("ctype", ["text/plain", "application/json; charset=utf-8",
                                   "application/json;charset=UTF-8", "text/plain;charset=UTF-8",
                                   "application/json"])
def test_json_bodies_whatever_the_content_type_says(fast, ctype):
    bob = online(fast, "bob", channels=["room"])
    hd = {"Content-Type": ctype}
    assert_answer(request(fast, "POST", peer_path("alice"), peer_body("bob", "p"), headers=hd),
                  "message_sent")
    assert_peer_push(push(bob), "alice", "p")
    resp = request(fast, "POST", base() + "/rtm/users/alice/channel_messages",
                   channel_body("room", "c"), headers=hd)
    assert_answer(resp, "message_sent")
    assert_location(request(fast, "POST", base() + "/rtm/message/history/query",
                            hist_body("alice", None), headers=hd))


def test_bodyless_get_with_a_json_content_type(fast):
    hd = {"Content-Type": "application/json;charset=utf-8", "Authorization": basic()}
    assert_events_envelope(fast.get(event_path("user", APP_NOCERT), headers=hd))
    assert count(fast, source="a") == 0


# ---- 8. history handles --------------------------------------------------------------------------

def test_history_handles_survive_how_clients_cut_them(fast):
    assert_answer(send_peer(fast, "a", "b", "kept", history=True), "message_offline")
    prefix = "~/rtm/message/history/query/"
    seen = set()
    for _ in range(100):
        st, hd, body = hist_post(fast, hist_body("a", None))
        loc = json.loads(body)["location"]
        assert loc.startswith(prefix), loc
        handle = loc[len(prefix):]
        assert HANDLE_RE.match(handle), loc
        # the last '/'-separated part, or split on '+' / '=': always the whole handle
        assert loc.rsplit("/", 1)[-1] == handle
        assert loc.split("+")[0] == loc and loc.split("=")[0] == loc
        assert urllib.parse.quote(handle, safe="") == handle
        assert handle not in seen
        seen.add(handle)
    # one of them, taken the way a client that strips "~/" does, answers
    assert [m["payload"] for m in assert_messages(hist_get(fast, handle))] == ["kept"]


# ---- 9. user IDs in paths ----------------------------------------------------------------------

@pytest.mark.parametrize("raw,uid", [("user%40example.com", "user@example.com"),
                                     ("%25abc", "%abc"), ("a%b", "a%b"), ("100%", "100%")])
def test_user_ids_in_paths_are_percent_decoded(fast, raw, uid):
    bob = online(fast, "bob")
    path = "%s/rtm/users/%s/peer_messages" % (base(), raw)
    assert_answer(request(fast, "POST", path, peer_body("bob", "hi")), "message_sent")
    assert_peer_push(push(bob), uid, "hi")
    # decoded IDs are validated like any other
    path = "%s/rtm/users/a%%0Ab/peer_messages" % base()
    assert "user_id" in assert_error(request(fast, "POST", path, peer_body("bob", "x")),
                                     400)["message"]
    silent(bob)


# ---- vendor_token_access ---------------------------------------------------------------------

def test_vendor_token_access_on_by_default_as_agora(rtmd):
    auth = {"Authorization": "agora token=" + token("alice")}
    assert_events_envelope(events_with(rtmd, auth))
    assert_location(hist_post(rtmd, hist_body("alice", None), app=APP, auth=auth))


def test_vendor_token_access_off_keeps_client_tokens_off_the_read_endpoints(make_rtmd):
    r = make_rtmd(limits=FAST, app_extra="vendor_token_access = off\n")
    bob = online(r, "bob", app=APP)
    for auth in ({"Authorization": "agora token=" + token("alice")},
                 {"x-agora-token": token("alice", v="006"), "x-agora-uid": "alice"}):
        for kind in ("user", "channel"):
            d = assert_error(r.get(event_path(kind, APP), headers=auth), 401, "unauthorized")
            assert "vendor_token_access" in d["message"], d
        assert_error(hist_post(r, hist_body("alice", None), app=APP, auth=auth), 401)
        assert_error(request(r, "GET", count_path(app=APP, source="alice"), auth=auth), 401)
        assert_error(hist_get(r, "A" * 22, app=APP, auth=auth), 401)
        # sending as the token's own user still works
        path = "/dev/v2/project/%s/rtm/users/alice/peer_messages" % APP
        assert_answer(request(r, "POST", path, peer_body("bob", "hi"), auth=auth),
                      "message_sent")
        assert_peer_push(push(bob), "alice", "hi")
    # Basic still reads everything, and the Login is there (nothing was drained)
    ev = assert_events_envelope(events_with(r, {"Authorization": basic()}))
    assert [(e["type"], e["user_id"]) for e in ev] == [("Login", "bob")]
    # the other app is untouched by the switch
    assert_events_envelope(r.get(event_path("user", APP_NOCERT), headers={"Authorization": basic()}))
