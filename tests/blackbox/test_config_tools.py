"""Config tooling: `rtmd --check-config FILE`, RTMD_<SECTION>_<KEY>
environment overrides, `rtmd token --config FILE --app A`, and the
rtmd.conf(5) man page (rendered by groff without a warning)."""
import os
import re
import shutil
import subprocess

import pytest

from harness import APP, APP_NOCERT, CERT, HERE, RTMD_BIN, rtmd_env
from test_lifecycle import BAD_CONFIGS, SANITIZER_WORDS

ROOT = os.path.join(HERE, "..", "..")

GOOD = """[server]
listen = 127.0.0.1:0@default
tls = off
data_dir = %(dir)s/data

[limits]
events_qps = 10

[customer:ck]
secret = 12345678abcdefgh
apps = %(app)s, %(nocert)s

[app:%(app)s]
certificate = %(cert)s
"""


def run(args, cwd=None, env=None, timeout=30):
    """rtmd with args, and env added to the environment (without the
    developer's RTMD_<SECTION>_<KEY> variables). Returns (status, stdout, stderr)."""
    p = subprocess.run([RTMD_BIN] + args, cwd=cwd, env=rtmd_env(env), capture_output=True,
                       timeout=timeout)
    out, err = p.stdout.decode(), p.stderr.decode()
    for w in SANITIZER_WORDS:
        assert w not in err, err
    return p.returncode, out, err


def good_conf(tmp_path):
    path = tmp_path / "rtmd.conf"
    path.write_text(GOOD % {"dir": tmp_path, "app": APP, "nocert": APP_NOCERT, "cert": CERT})
    return str(path)


# ---- --check-config --------------------------------------------------------------------------------

def test_check_config_of_a_good_file_exits_0_and_touches_nothing(tmp_path):
    path = good_conf(tmp_path)
    rc, out, err = run(["--check-config", path], cwd=tmp_path)
    assert (rc, out, err) == (0, "%s: ok\n" % path, "")
    # nothing made: no data_dir, no first-run directory, no TLS pair
    assert sorted(os.listdir(tmp_path)) == ["rtmd.conf"]


@pytest.mark.parametrize("text,line,key", BAD_CONFIGS, ids=["%s@%d" % (k, l) for _, l, k in BAD_CONFIGS])
def test_check_config_prints_what_a_start_prints_and_exits_2(tmp_path, text, line, key):
    path = str(tmp_path / "bad.conf")
    with open(path, "w") as f:
        f.write(text)
    checked = run(["--check-config", path], cwd=tmp_path)
    started = run(["--config", path], cwd=tmp_path)
    assert checked == started, (checked, started)
    rc, out, err = checked
    assert rc == 2 and out == "" and err.startswith("%s:%d: %s: " % (path, line, key)), checked
    assert err.count("\n") == 1


def test_check_config_of_a_missing_file_exits_2(tmp_path):
    path = str(tmp_path / "absent.conf")
    rc, out, err = run(["--check-config", path], cwd=tmp_path)
    assert (rc, out) == (2, "")
    assert err == "%s: cannot read: No such file or directory\n" % path


@pytest.mark.parametrize("args", [["--check-config"], ["--check-config", "a.conf", "--config", "b.conf"],
                                  ["--check-config", "a.conf", "extra"]])
def test_check_config_usage_errors(tmp_path, args):
    rc, out, err = run(args, cwd=tmp_path)
    assert rc == 2 and out == "" and "usage: rtmd" in err, (rc, out, err)
    assert os.listdir(tmp_path) == []


def test_help_names_check_config_and_token_config():
    rc, out, err = run(["--help"])
    assert rc == 0
    assert "--check-config FILE" in out and "token --config FILE --app" in out
    assert "RTMD_<SECTION>_<KEY>" in out


# ---- environment overrides -------------------------------------------------------------------------

def test_check_config_names_the_variables_it_applied(tmp_path):
    path = good_conf(tmp_path)
    rc, out, err = run(["--check-config", path], cwd=tmp_path,
                       env={"RTMD_LIMITS_EVENTS_QPS": "5", "RTMD_SERVER_LOG_LEVEL": "debug",
                            "RTMD_UNRELATED": "x"})
    assert (rc, err) == (0, "")
    # in the table's order: [server] keys before [limits] keys
    assert out == "%s: ok (from the environment: RTMD_SERVER_LOG_LEVEL, RTMD_LIMITS_EVENTS_QPS)\n" % path


ENV_ERRORS = [
    ({"RTMD_LIMITS_EVENTS_QPS": "0"},
     'environment RTMD_LIMITS_EVENTS_QPS: events_qps: must be 1..10000000 (got "0")'),
    ({"RTMD_SERVER_LOG_LEVEL": "loud"},
     'environment RTMD_SERVER_LOG_LEVEL: log_level: must be one of error, warn, info, debug (got "loud")'),
    ({"RTMD_SERVER_LISTEN": "localhost:80"},
     'environment RTMD_SERVER_LISTEN: listen: "localhost:80": not a numeric IPv4 (or [IPv6]) address'),
    ({"RTMD_STORE_BACKEND": ""}, "environment RTMD_STORE_BACKEND: backend: missing value"),
    ({"RTMD_LIMITS_EVENT_QPS": "5"}, "environment RTMD_LIMITS_EVENT_QPS: event_qps: unknown key in [limits]"),
    ({"RTMD_LIMITS_EVENTS_MAX_PULL": "5000"},
     "environment RTMD_LIMITS_EVENTS_MAX_PULL: events_max_pull: must be at most events_retain (2000)"),
    ({"RTMD_APP_%s_CERTIFICATE" % APP: CERT},
     "environment RTMD_APP_%s_CERTIFICATE: [app:APPID]: keys of repeatable sections are read from the "
     "file only (the environment sets [server], [store] and [limits] keys)" % APP),
    ({"RTMD_CUSTOMER_CK_SECRET": "abcdefgh12345678"},
     "environment RTMD_CUSTOMER_CK_SECRET: [customer:ID]: keys of repeatable sections are read from the "
     "file only (the environment sets [server], [store] and [limits] keys)"),
]


@pytest.mark.parametrize("env,message", ENV_ERRORS, ids=[list(e)[0] for e, _ in ENV_ERRORS])
def test_a_bad_variable_exits_2_naming_it(tmp_path, env, message):
    path = good_conf(tmp_path)
    for args in (["--check-config", path], ["--config", path]):
        rc, out, err = run(args, cwd=tmp_path, env=env)
        assert (rc, out, err) == (2, "", message + "\n"), args
    assert not os.path.exists(tmp_path / "data"), "a bad variable must stop rtmd before it starts"


def test_a_password_in_a_variable_is_not_echoed(tmp_path):
    path = good_conf(tmp_path)
    rc, out, err = run(["--check-config", path], cwd=tmp_path,
                       env={"RTMD_STORE_REDIS_URL": "redis://:hunter2@h:99999"})
    assert rc == 2 and "hunter2" not in err and err.startswith("environment RTMD_STORE_REDIS_URL: "), err


def test_a_file_error_comes_before_the_environment(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text("[server]\ntls = maybe\n")
    rc, out, err = run(["--check-config", str(path)], cwd=tmp_path, env={"RTMD_LIMITS_EVENTS_QPS": "0"})
    assert rc == 2 and err.startswith("%s:2: tls: " % path), err


def test_variables_override_the_file_in_a_running_server(make_rtmd):
    """The file says 20 channels and debug logging; the environment says 2
    channels, then warn: the server runs with what the environment says."""
    r = make_rtmd(limits={"max_channels_per_user": 20},
                  env={"RTMD_LIMITS_MAX_CHANNELS_PER_USER": "2"})
    ws = r.ws()
    assert ws.login("u", app=APP_NOCERT)["ok"]
    assert ws.call("join", channel="c1")["ok"]
    assert ws.call("join", channel="c2")["ok"]
    m = ws.call("join", channel="c3")
    assert m["ok"] is False and m["error"] == "too_many_channels", m
    ws.close()
    assert "RTMD_LIMITS_MAX_CHANNELS_PER_USER overrides the config file" in r.read_log()

    quiet = make_rtmd("quiet", env={"RTMD_SERVER_LOG_LEVEL": "warn"})
    with quiet.ws() as ws:
        assert ws.login("u", app=APP_NOCERT)["ok"]
    log = quiet.read_log()
    assert "listening on" in r.read_log() and "listening on" not in log, log[-2000:]
    assert "overrides the config file" not in log


# ---- rtmd token --config ---------------------------------------------------------------------------

def test_token_takes_the_certificate_from_the_config(rtmd):
    rc, out, err = run(["token", "--config", rtmd.conf_path, "--app", APP, "--uid", "alice"])
    assert rc == 0 and err == "", err
    assert out.startswith("007") and out.count("\n") == 1
    with rtmd.ws() as ws:
        assert ws.login("alice", token=out.strip()) == {"op": "reply", "id": 1, "ok": True, "heartbeat_timeout_s": 30}
    # 006 too, and --appid is the same option
    rc, out, err = run(["token", "--config", rtmd.conf_path, "--appid", APP, "--uid", "bob", "--v", "006"])
    assert rc == 0 and out.startswith("006"), err
    with rtmd.ws() as ws:
        assert ws.login("bob", token=out.strip())["ok"] is True


def test_token_from_config_refusals(tmp_path):
    path = good_conf(tmp_path)
    other = "f" * 32
    cases = [
        (["--app", APP_NOCERT], "rtmd token: %s: app %s has no certificate (its clients log in without a "
                                "token)\n" % (path, APP_NOCERT)),
        (["--app", other], "rtmd token: %s: no app %s\n" % (path, other)),
    ]
    for more, message in cases:
        rc, out, err = run(["token", "--config", path, "--uid", "u"] + more)
        assert (rc, out, err) == (2, "", message)
    # the config is read as rtmd reads it: a bad file, a bad variable
    bad = tmp_path / "bad.conf"
    bad.write_text("[server]\nlisten = 127.0.0.1:99999\n")
    rc, out, err = run(["token", "--config", str(bad), "--app", APP, "--uid", "u"])
    assert (rc, out) == (2, "") and err == '%s:2: listen: "127.0.0.1:99999": port must be 0..65535\n' % bad
    rc, out, err = run(["token", "--config", path, "--app", APP, "--uid", "u"],
                       env={"RTMD_LIMITS_EVENTS_QPS": "x"})
    assert rc == 2 and err.startswith("environment RTMD_LIMITS_EVENTS_QPS: "), err
    # --certificate and --config together, or neither
    rc, out, err = run(["token", "--config", path, "--certificate", CERT, "--app", APP, "--uid", "u"])
    assert rc == 2 and err.startswith("rtmd token: give --certificate or --config, not both"), err
    rc, out, err = run(["token", "--app", APP, "--uid", "u"])
    assert rc == 2 and err.startswith("rtmd token: --certificate (or --config) is required"), err
    rc, out, err = run(["token", "--config", path, "--uid", "u"])
    assert rc == 2 and err.startswith("rtmd token: --appid is required"), err


# ---- rtmd.conf(5) ----------------------------------------------------------------------------------

def test_man_page_renders_without_warnings():
    page = os.path.join(ROOT, "man", "rtmd.conf.5")
    groff = shutil.which("groff")
    assert groff, "groff is needed (scripts/install-deps --test installs groff-base)"
    p = subprocess.run([groff, "-man", "-Tutf8", "-ww", page], capture_output=True, timeout=30)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()
    text = re.sub(r".\x08", "", p.stdout.decode())  # no bold by overstriking
    for word in ("RTMD.CONF(5)", "NAME", "ENVIRONMENT", "SECTIONS AND KEYS", "events_qps",
                 "RTMD_LIMITS_EVENTS_QPS", "[customer:ID]", "--check-config"):
        assert word in text, word
