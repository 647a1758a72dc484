# SPDX-License-Identifier: BSD-3-Clause
"""HTTP requests that arrive together: pipelined on one keep-alive
connection, or one on each of many connections in the same pass of the
server's event loop.  They are answered in order, every answer waits for the
sync of what it shows, the requests of one pass share one sync (as RESP's
do, docs/threading.md), and a pipelined answer never waits for the client's
delayed ACK.

The durability checks slow the server's fsyncs with the failsync shim (the
`faulty` fixture of test_faults.py).
"""

import json
import os
import re
import signal
import socket
import time

import pytest

from test_faults import faulty, metric  # noqa: F401
from test_http_util import TIMEOUT

pytestmark = pytest.mark.own_server

SLOW = 0.3  # seconds one slowed fsync takes
N_CONNS = 50  # connections whose requests arrive in one loop pass
N_OPS = 200  # increments in each of their batches


def post_incr(host, key):
    return (b"POST /v1/counters/%s/increment HTTP/1.1\r\nHost: %s\r\n"
            b"Content-Length: 0\r\n\r\n" % (key.encode(), host.encode()))


def post_batch(host, keys):
    body = json.dumps({"ops": [{"op": "increment", "key": k} for k in keys]})
    return (b"POST /v1/batch HTTP/1.1\r\nHost: %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (host.encode(), len(body), body.encode()))


def get(host, key):
    return (b"GET /v1/counters/%s HTTP/1.1\r\nHost: %s\r\n\r\n"
            % (key.encode(), host.encode()))


class Conn:
    """A keep-alive HTTP/1.1 connection that sends exact bytes and reads
    whole responses (every answer here has a Content-Length)."""

    def __init__(self, d):
        self.host = f"{d.host}:{d.http_port}"
        self.sock = socket.create_connection((d.host, d.http_port), TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(TIMEOUT)
        self.buf = b""
        self.bystander = None

    def send(self, data):
        self.sock.sendall(data)

    def response(self):
        """(status, JSON body or None, monotonic time it was complete)."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buf[:end].decode("latin-1")
                m = re.search(r"^content-length:\s*(\d+)", head, re.I | re.M)
                size = int(m.group(1)) if m else 0
                if len(self.buf) >= end + 4 + size:
                    break
            chunk = self.sock.recv(65536)
            assert chunk, f"closed; got {self.buf!r}"
            self.buf += chunk
        body = self.buf[end + 4:end + 4 + size]
        self.buf = self.buf[end + 4 + size:]
        status = int(head.split(" ", 2)[1])
        return status, json.loads(body) if body else None, time.monotonic()

    def close(self):
        self.sock.close()
        if self.bystander:
            self.bystander.close()


def warm_then_slow(faulty):
    """(tallyd, its fault shim, a keep-alive Conn): one GET answered on the
    connection, then every fsync slowed to SLOW.  A RESP connection stays
    open beside it (c.bystander): with its client alone the loop would run
    each sync itself and read nothing meanwhile (docs/threading.md, "With
    one client"), and these tests are about what it reads while an answer
    is held."""
    d, faults = faulty()
    bystander = socket.create_connection((d.host, d.port), TIMEOUT)
    c = Conn(d)
    c.bystander = bystander
    c.send(get(c.host, "warm"))
    assert c.response()[0] == 404
    faults.slow(SLOW)
    return d, faults, c


def settled(d, timeout=5):
    """Wait until nothing is waiting for a sync."""
    deadline = time.monotonic() + timeout
    while metric(d, "tally_log_head") > metric(d, "tally_log_durable"):
        assert time.monotonic() < deadline, "a sync never ended"
        time.sleep(0.01)


def test_pipelined_answers_do_not_wait_for_the_clients_delayed_ack(
        tallyd_factory):
    # Given a server whose answers wait for no fsync, and a keep-alive
    # connection that has been used once
    d = tallyd_factory(fsync="no")
    c = Conn(d)
    c.send(post_incr(c.host, "nagle"))
    assert c.response()[0] == 200
    # When eight increments are pipelined, a few times over
    best = None
    for _ in range(5):
        t0 = time.monotonic()
        c.send(post_incr(c.host, "nagle") * 8)
        got = [c.response() for _ in range(8)]
        took = got[-1][2] - t0
        best = took if best is None else min(best, took)
        values = [body["value"] for _, body, _ in got]
        assert values == list(range(values[0], values[0] + 8))
    c.close()
    # Then the answers come back to back: with Nagle on the server's socket
    # each answer written while the one before it was unacknowledged waited
    # for the client's delayed ACK (40 ms on Linux), every round
    assert best < 0.03, f"8 pipelined answers took at best {best * 1000:.1f} ms"


@pytest.mark.engine_files("the fsync shim on the engine's log")
def test_pipelined_requests_are_answered_in_order_after_their_syncs(faulty):
    # Given slow syncs and a keep-alive connection
    d, faults, c = warm_then_slow(faulty)
    # When three increments and a read of the same counter are pipelined
    t0 = time.monotonic()
    c.send(post_incr(c.host, "p") * 3 + get(c.host, "p"))
    got = [c.response() for _ in range(4)]
    c.close()
    # Then they are answered in order, the read showing all three, and not
    # one before a sync of the changes it shows had ended
    assert [(s, b["value"]) for s, b, _ in got] == \
        [(200, 1), (200, 2), (200, 3), (200, 3)]
    assert got[0][2] - t0 >= SLOW


@pytest.mark.engine_files("the fsync shim on the engine's log")
def test_requests_of_one_loop_pass_share_one_sync(faulty):
    # Given slow syncs and N_CONNS keep-alive connections, each used once
    d, faults = faulty()
    conns = [Conn(d) for _ in range(N_CONNS)]
    for c in conns:
        c.send(get(c.host, "warm"))
        assert c.response()[0] == 404
    settled(d)
    syncs = metric(d, "tally_syncs_total")
    faults.slow(SLOW)
    # When a batch of increments arrives on every connection while the
    # server is stopped, so that it reads them all in one pass of its loop
    # (batches, so that the pass lasts long enough for a sync thread woken
    # by its first change to start a sync of that one alone)
    os.kill(d.pid, signal.SIGSTOP)
    try:
        for i, c in enumerate(conns):
            c.send(post_batch(c.host, [f"pass{i}:{j}" for j in range(N_OPS)]))
        time.sleep(0.2)  # every request is in the server's socket buffers
        t0 = time.monotonic()
    finally:
        os.kill(d.pid, signal.SIGCONT)
    got = [c.response() for c in conns]
    for c in conns:
        c.close()
    # Then every answer is a 200 that waited for the sync, and one sync
    # covered them all: before, the first change woke the sync thread on its
    # own and the others waited for the next slow sync
    assert all(s == 200 and len(b["results"]) == N_OPS for s, b, _ in got)
    assert min(t for _, _, t in got) - t0 >= SLOW
    faults.clear()
    assert metric(d, "tally_syncs_total") - syncs == 1


@pytest.mark.engine_files("the fsync shim on the engine's log")
@pytest.mark.parametrize("version,header", [
    ("HTTP/1.1", "Connection: close\r\n"), ("HTTP/1.0", "")],
    ids=["close", "http1.0"])
def test_held_answer_on_a_closing_connection_is_sent_whole_then_closed(
        faulty, version, header):
    # Given slow syncs
    d, faults = faulty()
    faults.slow(SLOW)
    # When a change comes on a connection that closes after its answer (the
    # answer is written as the sync's release hands it over, and evhttp
    # frees the connection right then)
    c = Conn(d)
    t0 = time.monotonic()
    c.send(f"POST /v1/counters/closing/increment {version}\r\nHost: {c.host}"
           f"\r\n{header}Content-Length: 0\r\n\r\n".encode())
    got = b""
    while chunk := c.sock.recv(65536):
        got += chunk
    t = time.monotonic()
    c.close()
    # Then the whole answer comes after the sync, the connection closes
    # (an HTTP/1.0 answer has no Content-Length: its end is the close), and
    # the server goes on serving
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(f"{version} 200 ".encode()), got
    assert json.loads(body)["value"] == 1 and t - t0 >= SLOW
    faults.clear()
    c = Conn(d)
    c.send(get(c.host, "closing"))
    assert c.response()[:2] == (200, {"key": "closing", "value": 1})
    c.close()
