# SPDX-License-Identifier: BSD-3-Clause
"""Over HTTP, a graceful shutdown (SIGTERM) takes no new work but finishes
what it holds: once tallyd says it is shutting down, a new HTTP connection is
refused and a request on a connection already open is answered 503
`shutting-down` (nothing run, the connection closed), while a response
already waiting for its fsync is still sent, and the process exits 0
(docs/threading.md, "Shutdown").

The server's syncs are slowed with the LD_PRELOAD shim of test_faults.py, so
the held response keeps tallyd in its shutdown for a known while."""

import json
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sse_util import RawSSE
from test_faults import faulty, wait_change_pending  # noqa: F401 (fixture)
from test_http_util import (TIMEOUT, assert_problem, counter_url, get_value,
                            session)

pytestmark = pytest.mark.own_server

SLOW_S = 2.0  # one sync; the checks below take a few ms of it


def wait_log(d, text, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in d.run_log():
            return
        time.sleep(0.005)
    pytest.fail(f"{text!r} not logged within {timeout}s\n{d.run_log()}")


def stop_holding_an_increment(d, faults, pool):
    """Slow the syncs, send an increment of x from pool that waits for its
    sync, SIGTERM tallyd and wait until it says it is shutting down; returns
    the increment's future."""
    faults.slow(SLOW_S)
    held = pool.submit(session(d).post, counter_url(d, "x", "increment"),
                       timeout=TIMEOUT)
    wait_change_pending(d)
    d.proc.send_signal(signal.SIGTERM)
    wait_log(d, "shutting down")
    return held


@pytest.mark.engine_files("the fsync shim on the engine's log")
def test_after_sigterm_new_http_connections_and_requests_are_refused_and_held_ones_answered(
        faulty):  # noqa: F811 (the fixture imported above)
    # Given x = 1, a keep-alive connection that was served, slow syncs, and
    # an increment of x waiting for its sync
    d, faults = faulty()
    kept = session(d)
    assert kept.put(counter_url(d, "x"), json={"value": 1},
                    timeout=TIMEOUT).status_code == 200
    with ThreadPoolExecutor(1) as pool:
        # When tallyd is told to stop and says it is shutting down
        held = stop_holding_an_increment(d, faults, pool)
        # Then a new connection is refused
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((d.host, d.http_port), TIMEOUT).close()
        # and a request on the open connection is not run: 503, and the
        # server closes that connection
        r = kept.post(counter_url(d, "x", "increment"), timeout=TIMEOUT)
        assert_problem(r, 503, "shutting-down")
        assert r.headers["Connection"].lower() == "close"
        # and the increment that was waiting still gets its answer
        r = held.result()
        assert r.status_code == 200, r.text
        assert r.json() == {"key": "x", "value": 2}
    # and tallyd exits 0 with only the held increment applied
    assert d.wait_exit() == 0, d.run_log()
    faults.clear()
    d.start()
    assert get_value(session(d), d, "x") == 2


def read_response(f):
    """(status, headers, body) of the next response on the file f, or None
    if the connection closed before one began."""
    first = f.readline()
    if not first:
        return None
    status = int(first.split()[1])
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = f.read(int(headers["content-length"]))
    return status, headers, body


@pytest.mark.engine_files("the fsync shim on the engine's log")
def test_after_sigterm_responses_not_yet_written_are_sent_whole_before_exit(
        faulty):  # noqa: F811 (the fixture imported above)
    # Given listings of about 1 MB each asked for, pipelined before the
    # SIGTERM on a connection whose client does not read yet: more than the
    # kernel's buffers take (at most 4 MB here), so tallyd still holds the
    # rest; slow syncs, and an increment waiting for its sync
    d, faults = faulty()
    keys = [f"{i:04d}".ljust(1000, "k") for i in range(1000)]
    client = d.redis()
    for i in range(0, len(keys), 100):
        client.mset({k: 1 for k in keys[i:i + 100]})
    n = 8
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.settimeout(TIMEOUT)
    reader.connect((d.host, d.http_port))
    reader.sendall(n * (b"GET /v1/counters?limit=1000 HTTP/1.1\r\n"
                        b"Host: %s:%d\r\n\r\n" % (d.host.encode(),
                                                   d.http_port)))
    time.sleep(0.5)  # tallyd fills the socket's buffers and keeps the rest
    with ThreadPoolExecutor(1) as pool:
        # When tallyd is told to stop, and the increment is answered
        held = stop_holding_an_increment(d, faults, pool)
        assert held.result().status_code == 200
        time.sleep(0.2)  # many of tallyd's 10 ms ticks while it stops
    # Then no answer is cut short once the client reads: each is a whole
    # listing if tallyd read its request before the SIGTERM, else a 503.
    # (A pipelined request tallyd has not read yet when nothing else is
    # left may find the connection closed, like one sent after the exit.)
    f = reader.makefile("rb")
    got = []
    for _ in range(n):
        resp = read_response(f)
        if resp is None:
            break
        status, headers, body = resp
        got.append(status)
        assert len(body) == int(headers["content-length"]), \
            f"response {len(got)} cut after {len(body)} bytes"
        if status == 200:
            assert len(json.loads(body)["items"]) == 1000
        else:
            assert json.loads(body)["type"].endswith(":shutting-down")
            assert headers["connection"].lower() == "close"
            break
    f.close()
    reader.close()
    # more than the kernel's buffers held when the increment was answered
    assert got[:2] == [200, 200] and set(got) <= {200, 503}, got
    assert d.wait_exit() == 0, d.run_log()


def test_a_change_stream_its_client_closed_does_not_hold_up_a_graceful_stop(
        tallyd_factory):
    # Given a change stream that was open and that its client has closed,
    # and a second one still open
    d = tallyd_factory()
    gone = RawSSE(d, "/v1/events")
    assert gone.wait_for(b"retry:", TIMEOUT)
    gone.close()
    still = RawSSE(d, "/v1/events")
    assert still.wait_for(b"retry:", TIMEOUT)
    time.sleep(0.2)  # tallyd sees the first one close
    # When tallyd is told to stop
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    # Then the open stream is ended and tallyd exits 0 at once: the closed
    # stream's request was counted as unanswered for good, and the stop
    # waited the whole 10 s grace for it
    assert still.closed_within(5)
    assert d.wait_exit() == 0, d.run_log()
    assert time.monotonic() - t0 < 3, d.run_log()
    still.close()
