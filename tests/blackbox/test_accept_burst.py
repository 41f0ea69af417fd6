"""A burst of connections larger than one loop iteration's accept batch (32):
the listener stops at the batch and accepts the rest in the next iterations,
so every connection of the burst is served, plain and TLS, and a connection
already open keeps being answered meanwhile."""
import os
import signal
import socket
import ssl

import pytest

from harness import wait_until

BURST = 300


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def request(sock):
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    read_answer(sock)


def read_answer(sock):
    buf = b""
    while not (b"\r\n\r\n" in buf and buf.endswith(b"}")):
        chunk = sock.recv(4096)
        assert chunk, "closed before the answer"
        buf += chunk
    assert buf.startswith(b"HTTP/1.1 200"), buf[:100]


@pytest.mark.parametrize("tls", [False, True])
def test_a_burst_beyond_the_accept_batch_is_served(make_rtmd, tls):
    r = make_rtmd(tls=tls)
    port = r.port()
    open_one = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls:
        open_one = client_ctx().wrap_socket(open_one, server_hostname="localhost")
    request(open_one)
    # Every connect of the burst is in the kernel's accept queue before rtmd
    # runs again: rtmd is stopped meanwhile (the kernel completes the TCP
    # handshakes), so its next iteration sees all of them at once.
    os.kill(r.proc.pid, signal.SIGSTOP)
    raw = []
    try:
        for _ in range(BURST):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            raw.append(s)
        open_one.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    finally:
        os.kill(r.proc.pid, signal.SIGCONT)
    read_answer(open_one)  # answered while the burst is being accepted
    ctx = client_ctx()
    done = 0
    for s in raw:
        s.setblocking(True)
        s.settimeout(20)
        wait_until(lambda: s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0, timeout=10,
                   what="connect")
        c = ctx.wrap_socket(s, server_hostname="localhost") if tls else s
        request(c)
        c.close()
        done += 1
    assert done == BURST
    request(open_one)
    open_one.close()
    r.healthy()
