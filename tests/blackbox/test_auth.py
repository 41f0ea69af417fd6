"""Credentials: the REST auth matrix on the event endpoints (docs/API.md
"Conventions") and the token rules of the WebSocket login ("Client protocol"), with tokens made by
Agora's own npm builders."""
import base64
import struct
import time
import zlib

import pytest

from harness import (APP, APP_NOCERT, APP_OTHER, CERT, CERT_OTHER, CUSTOMER, CUSTOMER_OTHER,
                     SECRET, SECRET_OTHER, assert_error, assert_events_envelope, basic,
                     event_path, token)

DAY = 86400


# ---- token surgery (tampering without re-signing) ----------------------------------------------

def _u16(b, off):
    return struct.unpack_from("<H", b, off)[0]


def tamper_006_expiry(tok, delta=10 * DAY):
    """Moves the privilege expiry of a 006 token without re-signing it."""
    assert tok.startswith("006")
    raw = bytearray(base64.b64decode(tok[35:]))
    off = 2 + _u16(raw, 0) + 4 + 4        # signature, crc(channel), crc(uid)
    mlen = _u16(raw, off)
    m = off + 2                           # salt u32, ts u32, map: u16 n, (u16 key, u32 value)*
    n = _u16(raw, m + 8)
    assert n >= 1 and mlen >= 10 + 6 * n
    vpos = m + 10 + 2
    old = struct.unpack_from("<I", raw, vpos)[0]
    struct.pack_into("<I", raw, vpos, old + delta)
    return tok[:35] + base64.b64encode(bytes(raw)).decode()


def tamper_006_signature(tok):
    raw = bytearray(base64.b64decode(tok[35:]))
    raw[2 + 5] ^= 0x01
    return tok[:35] + base64.b64encode(bytes(raw)).decode()


def _007_parts(tok):
    assert tok.startswith("007")
    return bytearray(zlib.decompress(base64.b64decode(tok[3:])))


def _007_build(raw):
    return "007" + base64.b64encode(zlib.compress(bytes(raw))).decode()


def tamper_007_expire(tok, delta=10 * DAY):
    raw = _007_parts(tok)
    off = 2 + _u16(raw, 0)                # signature
    off += 2 + _u16(raw, off)             # app id
    issue = struct.unpack_from("<I", raw, off)[0]
    struct.pack_into("<I", raw, off, issue + delta)   # move issue_ts into the future
    return _007_build(raw)


def tamper_007_signature(tok):
    raw = _007_parts(tok)
    raw[2 + 3] ^= 0x40
    return _007_build(raw)


def tamper_text(tok):
    """Flips one character in the middle (may also break the encoding)."""
    i = len(tok) // 2
    c = "A" if tok[i] != "A" else "B"
    return tok[:i] + c + tok[i + 1:]


def test_token_surgery_is_sound():
    """The tampering helpers only change what they claim (so a 401 below is
    the signature check, not a parse error): re-parsing works."""
    t6 = token("alice", v="006")
    assert len(base64.b64decode(tamper_006_expiry(t6)[35:])) == len(base64.b64decode(t6[35:]))
    t7 = token("alice")
    assert len(_007_parts(tamper_007_expire(t7))) == len(_007_parts(t7))


# ---- REST: the matrix ---------------------------------------------------------------------------------

def get_events(r, app=APP, headers=None, kind="user"):
    return r.get(event_path(kind, app), headers=headers or {})


def seed(r, app=APP, uid="seed"):
    """Records Login and Logout of uid; returns nothing (pull them later)."""
    with r.ws() as ws:
        kw = {} if app == APP_NOCERT else {"token": token(uid, app=app,
                                                          cert=CERT if app == APP else CERT_OTHER)}
        assert ws.login(uid, app=app, **kw)["ok"]
        assert ws.call("logout")["ok"]
        ws.expect_close()


def ok_events(resp):
    return [(e["type"], e["user_id"]) for e in assert_events_envelope(resp)]


UNAUTHORIZED = {
    "none": lambda: {},
    "empty_authorization": lambda: {"Authorization": ""},
    "bad_secret": lambda: {"Authorization": basic(CUSTOMER, SECRET[:-1] + "0")},
    "empty_secret": lambda: {"Authorization": basic(CUSTOMER, "")},
    "unknown_customer": lambda: {"Authorization": basic("ck_nobody", SECRET)},
    "other_customers_secret": lambda: {"Authorization": basic(CUSTOMER, SECRET_OTHER)},
    "basic_not_base64": lambda: {"Authorization": "Basic !!!not-base64!!!"},
    "basic_without_colon": lambda: {"Authorization": "Basic " + base64.b64encode(b"ck_demo").decode()},
    "bearer_scheme": lambda: {"Authorization": "Bearer " + token("alice")},
    "agora_without_token": lambda: {"Authorization": "agora token="},
    "006_without_uid": lambda: {"x-agora-token": token("alice", v="006")},
    "006_other_uid": lambda: {"x-agora-token": token("bob", v="006"), "x-agora-uid": "alice"},
    "006_expired": lambda: {"x-agora-token": token("alice", v="006", expire=-10), "x-agora-uid": "alice"},
    "006_tampered_expiry": lambda: {"x-agora-token": tamper_006_expiry(token("alice", v="006", expire=-10)),
                                    "x-agora-uid": "alice"},
    "006_tampered_signature": lambda: {"x-agora-token": tamper_006_signature(token("alice", v="006")),
                                       "x-agora-uid": "alice"},
    "006_tampered_text": lambda: {"x-agora-token": tamper_text(token("alice", v="006")), "x-agora-uid": "alice"},
    "006_other_app": lambda: {"x-agora-token": token("alice", v="006", app=APP_OTHER, cert=CERT_OTHER),
                              "x-agora-uid": "alice"},
    "006_wrong_cert": lambda: {"x-agora-token": token("alice", v="006", cert=CERT_OTHER), "x-agora-uid": "alice"},
    "007_uid_mismatch_auth": lambda: {"Authorization": "agora token=" + token("alice"), "x-agora-uid": "bob"},
    "007_uid_mismatch_x": lambda: {"x-agora-token": token("alice"), "x-agora-uid": "bob"},
    "007_expired": lambda: {"Authorization": "agora token=" + token(
        "alice", issue_ts=int(time.time()) - 2 * DAY, expire=3600)},
    "007_over_24h": lambda: {"Authorization": "agora token=" + token(
        "alice", issue_ts=int(time.time()) - DAY - 600, expire=3 * DAY)},
    "007_tampered_issue_ts": lambda: {"Authorization": "agora token=" + tamper_007_expire(token(
        "alice", issue_ts=int(time.time()) - 2 * DAY, expire=3600), 2 * DAY)},
    "007_tampered_signature": lambda: {"Authorization": "agora token=" + tamper_007_signature(token("alice"))},
    "007_tampered_text": lambda: {"Authorization": "agora token=" + tamper_text(token("alice"))},
    "007_other_app": lambda: {"Authorization": "agora token=" + token("alice", app=APP_OTHER, cert=CERT_OTHER)},
    "007_wrong_cert": lambda: {"x-agora-token": token("alice", cert=CERT_OTHER)},
    "garbage_token": lambda: {"x-agora-token": "007garbage", "x-agora-uid": "alice"},
    "token_of_version_008": lambda: {"x-agora-token": "008" + token("alice")[3:]},
}

EXPIRED = {"006_expired", "007_expired", "007_over_24h"}


@pytest.mark.parametrize("name", sorted(UNAUTHORIZED))
def test_bad_credentials_are_401_and_consume_nothing(rtmd, name):
    seed(rtmd)
    for kind in ("user", "channel"):
        d = assert_error(get_events(rtmd, headers=UNAUTHORIZED[name](), kind=kind), 401)
        assert d["code"] == ("token_expired" if name in EXPIRED else "unauthorized"), d
    rtmd.healthy()
    # nothing was read on the caller's behalf
    assert ok_events(get_events(rtmd, headers={"Authorization": basic()})) == [
        ("Login", "seed"), ("Logout", "seed")]


def test_basic_grants_only_the_customers_own_apps(rtmd):
    seed(rtmd)
    seed(rtmd, app=APP_OTHER)
    assert ok_events(get_events(rtmd, headers={"Authorization": basic()})) == [
        ("Login", "seed"), ("Logout", "seed")]
    assert ok_events(get_events(rtmd, app=APP_NOCERT, headers={"Authorization": basic()})) == []
    # ck_demo does not own APP_OTHER; ck_other does not own APP
    assert_error(get_events(rtmd, app=APP_OTHER, headers={"Authorization": basic()}), 401)
    assert_error(get_events(rtmd, app=APP, headers={"Authorization": basic(CUSTOMER_OTHER, SECRET_OTHER)}), 401)
    assert ok_events(get_events(rtmd, app=APP_OTHER,
                                headers={"Authorization": basic(CUSTOMER_OTHER, SECRET_OTHER)})) == [
        ("Login", "seed"), ("Logout", "seed")]


def test_basic_scheme_name_is_case_insensitive(rtmd):
    b = basic().split(" ", 1)[1]
    for scheme in ("Basic", "basic", "BASIC"):
        assert get_events(rtmd, headers={"Authorization": "%s %s" % (scheme, b)})[0] == 200


GOOD_TOKENS = {
    "006_x_headers": lambda: {"x-agora-token": token("alice", v="006"), "x-agora-uid": "alice"},
    "007_authorization": lambda: {"Authorization": "agora token=" + token("alice")},
    "007_authorization_with_uid": lambda: {"Authorization": "agora token=" + token("alice"),
                                           "x-agora-uid": "alice"},
    "007_x_token": lambda: {"x-agora-token": token("alice")},
    "007_x_token_with_uid": lambda: {"x-agora-token": token("alice"), "x-agora-uid": "alice"},
    "007_issued_an_hour_ago": lambda: {"x-agora-token": token(
        "alice", issue_ts=int(time.time()) - 3600, expire=7200)},
    "007_uid_with_specials": lambda: {"x-agora-token": token("a b:c@d"), "x-agora-uid": "a b:c@d"},
}


@pytest.mark.parametrize("name", sorted(GOOD_TOKENS))
def test_valid_tokens_are_accepted(rtmd, name):
    seed(rtmd)
    assert ok_events(get_events(rtmd, headers=GOOD_TOKENS[name]())) == [("Login", "seed"), ("Logout", "seed")]
    # and they read the same log, once
    assert ok_events(get_events(rtmd, headers=GOOD_TOKENS[name]())) == []


def test_app_without_certificate_accepts_no_token_but_basic(rtmd):
    seed(rtmd, app=APP_NOCERT)
    any_cert = "00000000000000000000000000000000"
    for h in ({"x-agora-token": token("alice", app=APP_NOCERT, cert=any_cert)},
              {"Authorization": "agora token=" + token("alice", app=APP_NOCERT, cert=any_cert)},
              {"x-agora-token": token("alice", v="006", app=APP_NOCERT, cert=any_cert),
               "x-agora-uid": "alice"}):
        assert_error(get_events(rtmd, app=APP_NOCERT, headers=h), 401)
    assert ok_events(get_events(rtmd, app=APP_NOCERT, headers={"Authorization": basic()})) == [
        ("Login", "seed"), ("Logout", "seed")]


@pytest.mark.parametrize("appid", [
    "970CA35de60c44645bbae8a215061b3",    # 31
    "970CA35de60c44645bbae8a215061b333",  # 33
    "970CA35de60c44645bbae8a215061b3_",
    "970CA35de60c44645bbae8a215061b3%21",
    "x",
])
def test_malformed_appid_is_400(rtmd, appid):
    d = assert_error(get_events(rtmd, app=appid, headers={"Authorization": basic()}), 400)
    assert "appid" in d["message"]
    rtmd.healthy()


def test_unknown_appid_is_401_unless_the_customer_is_authenticated(rtmd):
    """As Agora's gateway: an unauthenticated caller cannot tell an App ID that
    does not exist from credentials that are wrong for it (same status, same
    body); a customer whose secret is right learns that the App ID is unknown."""
    unknown = "00000000000000000000000000000000"
    d = assert_error(get_events(rtmd, app=unknown, headers={"Authorization": basic()}), 404)
    assert d["message"] == "unknown appid"
    # App IDs are case-sensitive
    assert_error(get_events(rtmd, app=APP.lower(), headers={"Authorization": basic()}), 404)

    def same(headers):
        known = assert_error(get_events(rtmd, app=APP, headers=headers), 401)
        missing = assert_error(get_events(rtmd, app=unknown, headers=headers), 401)
        assert (known["code"], known["message"]) == (missing["code"], missing["message"])
        return missing

    assert "secret" in same({"Authorization": basic(secret="0" * 32)})["message"]
    same({"Authorization": basic(customer="nobody")})
    same({})
    same({"x-agora-token": token("a", app=unknown), "x-agora-uid": "a"})
    same({"Authorization": "agora token=" + token("a", app=unknown)})
    # the other customer's valid secret for an app it does not own: 401, unchanged
    assert_error(get_events(rtmd, app=APP, headers={"Authorization": basic(CUSTOMER_OTHER,
                                                                            SECRET_OTHER)}), 401)
    rtmd.healthy()


# ---- WebSocket login: the token rules -----------------------------------------------------------------

def login_reply(r, uid, app=APP, tok=None, omit=False):
    with r.ws() as ws:
        fields = {"appid": app, "uid": uid}
        if not omit:
            fields["token"] = tok
        m = ws.call("login", **fields)
        if m["ok"]:
            return m
        # a refused login is an error reply, the connection stays usable
        still = ws.call("ping")
        assert still["ok"] is True
        return m


def assert_login_error(m, error):
    assert m["ok"] is False and m["error"] == error, m
    assert list(m) == ["op", "id", "ok", "error", "message"], m


def test_login_with_006_and_007_tokens(rtmd):
    assert login_reply(rtmd, "alice", tok=token("alice")) == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 30}
    assert login_reply(rtmd, "bob", tok=token("bob", v="006")) == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 30}
    users = rtmd.pull_until(4)
    assert [(e["type"], e["user_id"]) for e in users] == [
        ("Login", "alice"), ("Logout", "alice"), ("Login", "bob"), ("Logout", "bob")]


BAD_LOGINS = {
    "missing": (lambda: None, "invalid_token"),
    "empty": (lambda: "", "invalid_token"),
    "not_a_string": (lambda: 12345, "invalid_token"),
    "garbage": (lambda: "hello", "invalid_token"),
    "006_wrong_uid": (lambda: token("mallory", v="006"), "invalid_token"),
    "007_wrong_uid": (lambda: token("mallory"), "invalid_token"),
    "007_uid_case": (lambda: token("Alice"), "invalid_token"),
    "006_expired": (lambda: token("alice", v="006", expire=-10), "token_expired"),
    "007_expired": (lambda: token("alice", issue_ts=int(time.time()) - 2 * DAY, expire=3600), "token_expired"),
    "007_over_24h": (lambda: token("alice", issue_ts=int(time.time()) - DAY - 600, expire=3 * DAY),
                     "token_expired"),
    "006_tampered_expiry": (lambda: tamper_006_expiry(token("alice", v="006", expire=-10)), "invalid_token"),
    "006_tampered_signature": (lambda: tamper_006_signature(token("alice", v="006")), "invalid_token"),
    "006_tampered_text": (lambda: tamper_text(token("alice", v="006")), "invalid_token"),
    "007_tampered_issue_ts": (lambda: tamper_007_expire(token(
        "alice", issue_ts=int(time.time()) - 2 * DAY, expire=3600), 2 * DAY), "invalid_token"),
    "007_tampered_signature": (lambda: tamper_007_signature(token("alice")), "invalid_token"),
    "007_tampered_text": (lambda: tamper_text(token("alice")), "invalid_token"),
    "006_other_app": (lambda: token("alice", v="006", app=APP_OTHER, cert=CERT_OTHER), "invalid_token"),
    "007_other_app": (lambda: token("alice", app=APP_OTHER, cert=CERT_OTHER), "invalid_token"),
    "007_wrong_cert": (lambda: token("alice", cert=CERT_OTHER), "invalid_token"),
    "truncated": (lambda: token("alice")[:40], "invalid_token"),
    "huge": (lambda: "007" + "A" * 100000, "invalid_token"),
}


@pytest.mark.parametrize("name", sorted(BAD_LOGINS))
def test_login_with_a_bad_token_is_refused(rtmd, name):
    make, error = BAD_LOGINS[name]
    tok = make()
    m = login_reply(rtmd, "alice", tok=tok, omit=tok is None)
    assert_login_error(m, error)
    # nothing recorded, and a good login still works
    assert login_reply(rtmd, "alice", tok=token("alice"))["ok"] is True
    assert [(e["type"]) for e in rtmd.pull_until(2)] == ["Login", "Logout"]
    rtmd.healthy()


def test_refused_login_then_good_login_on_the_same_connection(rtmd):
    with rtmd.ws() as ws:
        assert_login_error(ws.login("alice", token=token("bob")), "invalid_token")
        assert_login_error(ws.login("alice"), "invalid_token")
        assert ws.login("alice", token=token("alice")) == {"op": "reply", "id": 3, "ok": True, "heartbeat_timeout_s": 30}
        assert ws.call("join", channel="c")["ok"]


def test_app_without_certificate_logs_in_without_token(rtmd):
    assert login_reply(rtmd, "free", app=APP_NOCERT, omit=True) == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 30}
    users = rtmd.pull_until(2, app=APP_NOCERT)
    assert [(e["type"], e["user_id"]) for e in users] == [("Login", "free"), ("Logout", "free")]


def test_the_token_is_for_one_app(rtmd):
    """A token that is valid for APP_OTHER logs in there, and nowhere else."""
    t = token("eve", app=APP_OTHER, cert=CERT_OTHER)
    assert login_reply(rtmd, "eve", app=APP_OTHER, tok=t)["ok"] is True
    assert_login_error(login_reply(rtmd, "eve", app=APP, tok=t), "invalid_token")
