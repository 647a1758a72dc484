# SPDX-License-Identifier: BSD-3-Clause
"""Over HTTP, a graceful shutdown (SIGTERM) takes no new work but finishes
what it holds: once tallyd says it is shutting down, a new HTTP connection is
refused and a request on a connection already open is answered 503
`shutting-down` (nothing run, the connection closed), while a response
already waiting for its fsync is still sent, and the process exits 0
(docs/threading.md, "Shutdown").

The server's syncs are slowed with the LD_PRELOAD shim of test_faults.py, so
the held response keeps tallyd in its shutdown for a known while."""

import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

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


def test_after_sigterm_new_http_connections_and_requests_are_refused_and_held_ones_answered(
        faulty):  # noqa: F811 (the fixture imported above)
    # Given x = 1, a keep-alive connection that was served, slow syncs, and
    # an increment of x waiting for its sync
    d, faults = faulty()
    kept = session(d)
    assert kept.put(counter_url(d, "x"), json={"value": 1},
                    timeout=TIMEOUT).status_code == 200
    faults.slow(SLOW_S)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(session(d).post, counter_url(d, "x", "increment"),
                           timeout=TIMEOUT)
        wait_change_pending(d)
        # When tallyd is told to stop and says it is shutting down
        d.proc.send_signal(signal.SIGTERM)
        wait_log(d, "shutting down")
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
