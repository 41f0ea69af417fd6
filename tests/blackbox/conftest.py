import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import RedisServer, Rtmd  # noqa: E402


@pytest.fixture
def make_rtmd(tmp_path):
    """Factory: make_rtmd(tls=False, limits={...}) starts rtmd; all are stopped
    with SIGTERM at the end, which must exit 0 with a clean log."""
    started = []

    def make(name="n", **kw):
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        r = Rtmd(d, **kw)
        started.append(r)
        return r.start()

    yield make
    for r in started:
        assert not r.died(), "rtmd died during the test (exit %s):\n%s" % (
            r.proc.returncode, r.read_log()[-6000:])
        if r.alive():
            rc = r.stop()
            assert rc == 0, "rtmd exited %s on SIGTERM:\n%s" % (rc, r.read_log()[-4000:])
        r.assert_clean_log()


@pytest.fixture
def rtmd(make_rtmd):
    return make_rtmd()


@pytest.fixture
def redis_server(tmp_path):
    """One real redis-server for the test (stopped at the end)."""
    r = RedisServer(tmp_path / "redis").start()
    yield r
    r.resume()
    r.stop()
