"""Fixtures of the black-box suite.

Every test that starts rtmd through `make_rtmd`/`rtmd` (or asks for
`rtmd_store`) runs twice: on the embedded store (`[embedded]`) and on
`backend = redis` against a real redis-server (`[redis]`): one per pytest
session, FLUSHALL before each test, so tests stay independent; each rtmd is
its own node (a node_id of its own). RTMD_TEST_BACKENDS=embedded (or redis)
runs one of them only.

The two tables below are the one place that says which tests do not run on
redis, and why.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import RedisServer, Rtmd, reset_node_ids  # noqa: E402
from redis_cluster import RedisCluster  # noqa: E402

# Tests that cannot apply to the redis backend ("file.py" for a whole file,
# "file.py::test_name" for one test, all its parameters): they run once, on
# the embedded store.
EMBEDDED_ONLY = {
    "test_diskfull.py": "the embedded store's SQLite database on a full tmpfs data_dir",
}

# Tests that fail on redis today because the backend lacks a feature: strict
# xfails, so each turns into a failure the moment the feature lands (then
# remove its line here).
# Tests that fail on the redis backend for a feature it does not have yet:
# "file.py" or "file.py::test" → what is missing (strict xfail: the line must
# go the moment the feature lands). Empty: the redis backend meets the whole
# contract.
REDIS_NOT_YET = {
}

BACKENDS = ("embedded", "redis")


def pytest_configure(config):
    config.addinivalue_line("markers", "own_store: the test configures the store itself "
                            "(not run once per backend)")


def _wanted_backends():
    raw = os.environ.get("RTMD_TEST_BACKENDS", "")
    names = [b for b in raw.replace(",", " ").split() if b]
    for b in names:
        if b not in BACKENDS:
            raise pytest.UsageError("RTMD_TEST_BACKENDS: unknown backend %r (%s)" % (b, ", ".join(BACKENDS)))
    return tuple(names) or BACKENDS


def _lookup(table, filename, name):
    return table.get("%s::%s" % (filename, name), table.get(filename))


def pytest_generate_tests(metafunc):
    if "store_backend" not in metafunc.fixturenames:
        return  # does not start rtmd: nothing to run twice
    if ({"redis_server", "redis_cluster", "make_redis_cluster"} & set(metafunc.fixturenames)
            or metafunc.definition.get_closest_marker("own_store")):
        return  # a cluster-mode or Redis fault test: it sets up its own Redis
    backends = _wanted_backends()
    if _lookup(EMBEDDED_ONLY, metafunc.definition.path.name, metafunc.definition.originalname):
        backends = tuple(b for b in backends if b == "embedded")
    # module scope: a module-scoped fixture can start its rtmd on either
    metafunc.parametrize("store_backend", backends, indirect=True, scope="module")


def pytest_collection_modifyitems(config, items):
    _check_tables(items)
    for item in items:
        cs = getattr(item, "callspec", None)
        if not cs or cs.params.get("store_backend") != "redis":
            continue
        what = _lookup(REDIS_NOT_YET, item.path.name, item.originalname)
        if what:
            item.add_marker(pytest.mark.xfail(strict=True, reason="not implemented on redis yet: " + what))


def _check_tables(items):
    """Every key of the tables names a file or test that exists (among the
    files collected), so a renamed test does not leave a stale line."""
    files = {i.path.name for i in items}
    names = files | {"%s::%s" % (i.path.name, i.originalname) for i in items}
    for table in ("EMBEDDED_ONLY", "REDIS_NOT_YET"):
        for key in globals()[table]:
            if key.split("::")[0] in files and key not in names:
                raise pytest.UsageError("conftest.py %s: no test %s" % (table, key))


@pytest.fixture(scope="module")
def store_backend(request):
    """The store the module's rtmds run on: "embedded" or "redis"."""
    return getattr(request, "param", "embedded")


@pytest.fixture(scope="session")
def redis_session(tmp_path_factory):
    """The redis-server of the [redis] runs (one per pytest session)."""
    r = RedisServer(tmp_path_factory.mktemp("redis-session")).start()
    yield r
    r.resume()
    r.stop()


@pytest.fixture
def rtmd_store(request, store_backend):
    """The [store] keys of this test's rtmds; on redis, an empty Redis."""
    if store_backend != "redis":
        return {}
    r = request.getfixturevalue("redis_session")
    assert r.proc.poll() is None, "the session's redis-server exited (%s)" % r.proc.returncode
    r.resume()  # in case a test left it stopped
    assert r.command("FLUSHALL") == "OK"
    reset_node_ids()
    return {"backend": "redis", "redis_url": r.url}


@pytest.fixture(scope="module")
def module_store(store_backend, tmp_path_factory):
    """For module-scoped rtmds: module_store() gives [store] keys; on redis,
    a redis-server of its own for each call (stopped after the module), so
    the module's rtmd is not flushed by the tests that run meanwhile."""
    servers = []

    def make():
        if store_backend != "redis":
            return {}
        r = RedisServer(tmp_path_factory.mktemp("redis-module")).start()
        servers.append(r)
        return {"backend": "redis", "redis_url": r.url}

    yield make
    for r in servers:
        r.resume()
        r.stop()


@pytest.fixture
def make_rtmd(tmp_path, rtmd_store):
    """Factory: make_rtmd(tls=False, limits={...}) starts rtmd; all are stopped
    with SIGTERM at the end, which must exit 0 with a clean log. [store] keys
    given add to (and override) the backend's."""
    started = []

    def make(name="n", **kw):
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        store = dict(rtmd_store)
        store.update(kw.pop("store", None) or {})
        r = Rtmd(d, store=store, **kw)
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
def make_redis_cluster(tmp_path):
    """Factory: make_redis_cluster(masters=3, replicas=0) starts a real Redis
    Cluster (tests/blackbox/redis_cluster.py: seeds, url, slot_of_app,
    move_slot, begin_migration, reshard, failover, kill_master, pause, ...);
    all are stopped at the end."""
    made = []

    def make(masters=3, replicas=0, **kw):
        c = RedisCluster(tmp_path / ("cluster%d" % len(made)), masters, replicas, **kw)
        made.append(c)
        return c.start()

    yield make
    for c in made:
        c.stop()


@pytest.fixture
def redis_cluster(make_redis_cluster):
    """A started 3-master Redis Cluster without replicas."""
    return make_redis_cluster()


@pytest.fixture
def redis_server(tmp_path):
    """One real redis-server for the test (stopped at the end)."""
    r = RedisServer(tmp_path / "redis").start()
    yield r
    r.resume()
    r.stop()
