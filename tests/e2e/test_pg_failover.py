# SPDX-License-Identifier: BSD-3-Clause
"""Failover: a primary with a synchronous streaming standby, both on
loopback; tallyd's --store names both hosts with
target_session_attrs=read-write.  Clients increment under load; the primary
is SIGKILLed and the standby promoted.  tallyd reconnects by itself, every
increment acknowledged before, during and after the failover is on the new
primary (the old one stays dead, so every read after it comes from the new
one), and INCRBY.ONCE ids retried across it replay instead of counting
twice.
"""

import threading
import time

import pytest

from pg_util import (OnceClient, check_bounds, eventually, on_pg, read_all,
                     run_load)

pytestmark = [pytest.mark.own_server, pytest.mark.needs_store]


def test_failover_to_a_synchronous_standby_loses_no_acknowledged_increment(
        tallyd_factory, pg_factory):
    # Given a primary and a synchronous standby
    primary = pg_factory("primary")
    primary.create_db("tally")
    standby = primary.standby("standby1", synchronous=True)
    # and tallyd on both hosts, writing only to the one that takes writes
    store = (f"postgresql://postgres@{primary.host}:{primary.port},"
             f"{standby.host}:{standby.port}/tally"
             "?target_session_attrs=read-write&connect_timeout=2")
    d = on_pg(tallyd_factory, primary, "tally", store=store)
    # and INFO saying the standby is synchronous and attached (refreshed
    # every few seconds), as an operator would check before trusting it
    def attached():
        # Parsed here: redis-py's info() trips over store_durability's text.
        with d.raw() as c:
            text = c.cmd("INFO", "store").decode()
        assert "store_pg_sync_standbys_attached:1\r\n" in text, text
    eventually(attached, timeout=15, what="INFO's synchronous standby")
    stop = threading.Event()
    once = OnceClient(d, stop, "f")
    once.start()
    promoted = []

    # When, under load, the primary is SIGKILLed and the standby promoted
    def failover():
        time.sleep(0.7)
        primary.kill()
        time.sleep(0.2)  # clients meet the dead primary for a moment
        standby.promote()
        promoted.append(time.monotonic())
        # tallyd finds the new primary by itself
        eventually(lambda: d.redis().incr("probe"), what="an INCR after "
                   "the failover")
        time.sleep(0.7)  # and traffic goes on after it
    try:
        workers = run_load([d], failover, clients=8)
    finally:
        stop.set()
        once.join(90)
    assert not once.is_alive() and once.failed is None, once.failed
    assert promoted and not primary.running()

    # Then every acknowledged increment is on the new primary, none twice
    acked, final = check_bounds(workers, read_all(d))
    # And every INCRBY.ONCE id counted exactly once, however often it was
    # retried: the ids are 1 each, all acknowledged in the end
    n = len(once.replies)
    assert n > 0 and once.replies == list(range(1, n + 1)), once.replies[:20]
    assert int(d.redis().get("once")) == n
    # And ids from before the failover replay their first answer
    for i in range(0, n, max(1, n // 10)):
        assert d.redis().execute_command("INCRBY.ONCE", "once", 1,
                                         f"f-{i}") == once.replies[i]
    assert int(d.redis().get("once")) == n
    # And the new primary commits alone: no standby is configured on it
    assert standby.psql("SHOW synchronous_standby_names") == ""
