"""Signals that operators and their tools send (logrotate and `systemctl
reload` send SIGHUP; SIGUSR1/SIGUSR2 are common "reopen"/"dump" signals) must
never kill rtmd: until they mean something, they are logged and ignored."""
import os
import signal

import pytest

from harness import APP_NOCERT, Rtmd, wait_until


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2])
def test_hup_usr1_usr2_are_logged_and_ignored(make_rtmd, sig):
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
