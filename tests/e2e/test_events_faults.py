# SPDX-License-Identifier: BSD-3-Clause
"""The durability rule for change events, under the fsync shim
(tests/fault/failsync.c, see test_faults.py): an event leaves only once its
change is durable, so it is withheld while the sync is slow, and it is never
sent for a change whose sync failed.  Both SSE and keyspace notifications
come from one hub, so one story each covers both front ends' source."""

import threading
import time

import pytest

from sse_util import RawSSE
from test_faults import SLOW_S, faulty  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.own_server,
              pytest.mark.engine_files("the fsync shim on the engine's log")]


def incr_in_background(server, key):
    """INCR on its own connection (the reply waits for the sync); returns
    (thread, result list)."""
    out = []

    def run():
        try:
            out.append(server.redis(socket_timeout=10).incr(key))
        except Exception as e:  # the failed-sync story closes it
            out.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_events_are_withheld_while_the_fsync_is_slow(faulty):
    server, faults = faulty()
    sse = RawSSE(server, "/v1/counters/k/events")
    assert sse.wait_for(b"retry:", 5)
    faults.slow(SLOW_S)
    t0 = time.monotonic()
    t, out = incr_in_background(server, "k")
    # Nothing while the sync sleeps...
    assert sse.wait_for(b"event: change", SLOW_S * 0.6) is None
    # ...and the event once it is done, not before the reply could go.
    assert sse.wait_for(b"event: change", 10) is not None
    took = time.monotonic() - t0
    t.join()
    assert out == [1]
    assert took >= SLOW_S * 0.9, took
    faults.clear()
    sse.close()


def test_no_event_is_ever_sent_for_a_change_whose_fsync_failed(faulty):
    server, faults = faulty()
    r = server.redis()
    r.incr("k")  # one durable change first
    sse = RawSSE(server, "/v1/counters/k/events")
    assert sse.wait_for(b"retry:", 5)
    sub = server.redis().pubsub()
    r.config_set("notify-keyspace-events", "KA")
    sub.subscribe("__keyspace@0__:k")
    assert sub.get_message(timeout=5)["type"] == "subscribe"
    faults.slow(SLOW_S * 2)
    t, out = incr_in_background(server, "k")
    time.sleep(SLOW_S / 2)
    faults.fail()  # the sleeping sync fails when it wakes
    t.join()
    assert isinstance(out[0], Exception), out  # the client never saw "2"
    assert sse.wait_for(b"event: change", SLOW_S * 4) is None
    assert sub.get_message(timeout=SLOW_S) is None
    faults.clear()
    sse.close()
