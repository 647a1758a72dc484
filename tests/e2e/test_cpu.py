# SPDX-License-Identifier: BSD-3-Clause
"""What tallyd burns while it waits for an fsync (issue 15).

Under --fsync always every reply waits for an fdatasync that takes hundreds
of microseconds on a disk.  Waiting must cost (next to) nothing: tallyd used
to poll through every sync, the loop for up to 1 ms and the sync thread for
150 us after it, so one client at a modest rate kept a core a third busy.
It polls now only when its measured model says durable is a few
microseconds away (docs/threading.md, "Waiting for durable").  The fsync is
slowed with the shim of test_faults.py, so the wait is long enough to see
whatever is spent in it.
"""

import os
import time

import pytest

from test_faults import faulty  # noqa: F401 (a fixture)
from test_http_util import TIMEOUT, counter_url, session

pytestmark = pytest.mark.own_server

SLOW_S = 0.002  # each fdatasync takes at least this long
REQUESTS = 250


def cpu_seconds(pid):
    """utime + stime of every thread of pid, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.engine_files("the engine's wait for a slowed fsync of its log")
def test_waiting_for_a_slow_fsync_burns_no_cpu(faulty):  # noqa: F811
    # Given tallyd under --fsync always with its default --spin on, and an
    # fdatasync that takes 2 ms
    d, faults = faulty()
    r = d.redis()
    r.incr("warm")
    faults.slow(SLOW_S)
    r.incr("warm")
    # When one client sends INCRs one after the other, each awaiting its reply
    c0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
    for _ in range(REQUESTS):
        r.incr("k")
    c1, t1 = cpu_seconds(d.proc.pid), time.monotonic()
    # Then every reply was held for its sync
    assert t1 - t0 >= REQUESTS * SLOW_S
    # and tallyd used a small share of one core meanwhile: polling through
    # each 2 ms sync, as it did, took half of one
    share = (c1 - c0) / (t1 - t0)
    assert share < 0.15, f"tallyd used {share:.0%} of a core waiting for syncs"
    assert int(r.get("k")) == REQUESTS


def inline_syncs(d):
    """tally_inline_syncs from INFO, on a connection closed again at once
    (an open RESP connection is a second client), once tallyd saw it go.
    Skips the test on a disk too slow for the inline path: over an average
    of 10 ms per fdatasync the sync thread keeps them (conn.c
    CONN_INLINE_MAX_US), and half of that is near enough to flip."""
    r = d.redis()
    info = r.info("persistence")
    n = int(info["tally_inline_syncs"])
    if int(info["tally_avg_sync_us"]) > 5000:
        pytest.skip(f"fdatasync averages {info['tally_avg_sync_us']} us "
                    "here: the loop leaves it to the sync thread")
    before = int(r.info("clients")["connected_clients"])
    assert before >= 1
    r.connection_pool.disconnect()  # close() keeps the socket in the pool
    time.sleep(0.1)
    return n


@pytest.mark.engine_files("the engine's own fsync counts")
def test_one_http_client_alone_has_the_loop_sync_and_two_hand_over(
        tallyd_factory):
    # Given tallyd under --fsync always and one HTTP client on a keep-alive
    # connection
    d = tallyd_factory(fsync="always")
    a = session(d)
    url = counter_url(d, "k", "increment")
    assert a.post(url, timeout=TIMEOUT).status_code == 200
    # When it sends 20 increments, one after the other, alone
    n0 = inline_syncs(d)
    for _ in range(20):
        assert a.post(url, timeout=TIMEOUT).status_code == 200
    # Then the loop fdatasynced them itself (docs/threading.md, "With one
    # client"), but for one or two a snapshot or a rotation may take
    n1 = inline_syncs(d)
    assert n1 - n0 >= 18
    # When a second client has sent a request and stays connected
    b = session(d)
    assert b.get(d.url + "/healthz", timeout=TIMEOUT).status_code == 200
    for _ in range(20):
        assert a.post(url, timeout=TIMEOUT).status_code == 200
    # Then every sync was the sync thread's: durable reads of the second
    # client are answered while a change syncs (test_hold.py)
    n2 = inline_syncs(d)
    assert n2 == n1
    # When the second client closes its connection, the first is alone
    # again: tallyd saw it go
    b.close()
    time.sleep(0.1)
    for _ in range(20):
        assert a.post(url, timeout=TIMEOUT).status_code == 200
    assert inline_syncs(d) - n2 >= 18
    assert int(d.redis().get("k")) == 61
