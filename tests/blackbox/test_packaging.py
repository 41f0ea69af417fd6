"""What the Debian package ships (debian/, docs/OPERATIONS.md "Install"):
the packaged /etc/rtmd/rtmd.conf starts a server as it is (no app: /healthz
answers, a login is refused) and with its commented examples enabled (the
example customer reads the example app's events); the unit keeps its
hardening; the package builds from the same -dev packages that
scripts/install-deps installs. scripts/deb-check (CI) builds, installs and
starts the package itself."""
import base64
import json
import os
import re
import signal
import subprocess

from harness import RTMD_BIN, Http, Ws, wait_until

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def read(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


def packaged_config(tmp_path, examples=False):
    """debian/rtmd.conf with only data_dir and the port moved into tmp_path
    (and a ready file added); with examples, its commented customer and app
    sections enabled."""
    text = read("debian/rtmd.conf")
    assert "\ndata_dir = /var/lib/rtmd\n" in text
    assert "\nlisten = 127.0.0.1:8443@default\n" in text
    text = text.replace("\ndata_dir = /var/lib/rtmd\n",
                        "\ndata_dir = %s\nready_file = %s\n" % (tmp_path / "data", tmp_path / "ready"))
    text = text.replace("\nlisten = 127.0.0.1:8443@default\n", "\nlisten = 127.0.0.1:0@default\n")
    if examples:
        text = re.sub(r"(?m)^;(\[(customer|app):|secret = |apps = |certificate = )", r"\1", text)
    path = tmp_path / "rtmd.conf"
    path.write_text(text)
    return path, text


def start(tmp_path, conf):
    log = open(tmp_path / "rtmd.log", "wb")
    proc = subprocess.Popen([RTMD_BIN, "--config", str(conf)], stdout=log, stderr=subprocess.STDOUT)

    def ready():
        assert proc.poll() is None, (tmp_path / "rtmd.log").read_text()
        return (tmp_path / "ready").exists()

    wait_until(ready, 20, what="the ready file")
    for line in (tmp_path / "ready").read_text().splitlines():
        parts = line.split()
        if parts[0] == "listen" and parts[1] == "default":
            return proc, int(parts[2].rsplit(":", 1)[1])
    raise AssertionError("no listener in the ready file")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


def test_packaged_config_starts_with_tls_and_no_app(tmp_path):
    conf, _ = packaged_config(tmp_path)
    proc, port = start(tmp_path, conf)
    try:
        with Http(port, tls=True) as h:
            st, _, body = h.request("GET", "/healthz")
            assert st == 200 and json.loads(body)["status"] == "ok", body
        # the self-signed pair, made in data_dir
        assert (tmp_path / "data" / "tls-cert.pem").exists()
        assert oct((tmp_path / "data" / "tls-key.pem").stat().st_mode & 0o777) == "0o600"
        ws = Ws(port, tls=True)
        m = ws.login("alice", app="0123456789abcdef0123456789abcdef")
        assert m.get("ok") is False, m
    finally:
        stop(proc)


def test_packaged_config_examples_work_once_uncommented(tmp_path):
    conf, text = packaged_config(tmp_path, examples=True)
    customer = re.search(r"(?m)^\[customer:([^\]]+)\]", text).group(1)
    secret = re.search(r"(?m)^secret = (\S+)", text).group(1)
    app = re.search(r"(?m)^\[app:([^\]]+)\]", text).group(1)
    proc, port = start(tmp_path, conf)
    try:
        auth = "Basic " + base64.b64encode(("%s:%s" % (customer, secret)).encode()).decode()
        with Http(port, tls=True) as h:
            st, _, body = h.request("GET", "/dev/v2/project/%s/rtm/vendor/user_events" % app,
                                    headers={"Authorization": auth})
            assert st == 200, body
    finally:
        stop(proc)


def test_unit_is_hardened_and_checks_the_config_first():
    unit = read("debian/rtmd.service")
    lines = {l.strip() for l in unit.splitlines()}
    for want in ("Type=simple", "User=rtmd",
                 "ExecStartPre=/usr/sbin/rtmd --check-config /etc/rtmd/rtmd.conf",
                 "ExecStart=/usr/sbin/rtmd --config /etc/rtmd/rtmd.conf",
                 "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/rtmd",
                 "ProtectHome=yes", "PrivateTmp=yes", "LimitNOFILE=65536",
                 "CapabilityBoundingSet=", "WantedBy=multi-user.target"):
        assert want in lines, want


def test_build_depends_are_what_install_deps_installs():
    control = read("debian/control")
    field = re.search(r"(?ms)^Build-Depends:(.*?)^\S", control).group(1)
    build_depends = {re.sub(r"\(.*?\)", "", d).strip() for d in field.split(",")} - {""}
    m = re.search(r'(?s)\nBUILD="([^"]*)"', read("scripts/install-deps"))
    install_deps = set(m.group(1).split())
    assert build_depends - {"debhelper-compat"} == install_deps - {"build-essential"}
