# SPDX-License-Identifier: BSD-3-Clause
"""The service's three promises with tallyd on PostgreSQL, over RESP, HTTP
and memcached, across the four things that can go wrong with a stateless
tallyd: it is stopped (SIGTERM), it crashes (SIGKILL), PostgreSQL restarts
(fast shutdown), PostgreSQL crashes (SIGKILL of the postmaster and its
backends).  Then every acknowledged increment of clients under load across
each of the four is there, and none counted twice.

The promises: a counter set to 10 reads 10; 10 incremented reads 11; 10
incremented five times reads 15.  After a PostgreSQL restart or crash,
tallyd is not restarted: it must reconnect by itself.
"""

import pytest

from pg_util import (PROTOCOLS, check_bounds, eventually, on_pg, read_all,
                     run_load, store_errors)
from pgserver import PgServer, available, fresh_db

pytestmark = [pytest.mark.own_server, pytest.mark.needs_store]

DISRUPTIONS = ["tallyd-sigterm", "tallyd-sigkill", "pg-restart", "pg-sigkill"]


@pytest.fixture(scope="module")
def pg_mod():
    """A server of this module's own: its tests restart and kill it."""
    why = available()
    if why:
        pytest.skip(why)
    s = PgServer("scen").initdb()
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def pg(pg_mod):
    """(server, fresh database); the server is up even if a test before
    left it down."""
    if not pg_mod.running():
        pg_mod.start()
    return pg_mod, fresh_db(pg_mod)


def disrupt(kind, d, server):
    """Do one of DISRUPTIONS to tallyd d or its PostgreSQL server."""
    if kind == "tallyd-sigterm":
        d.restart()
    elif kind == "tallyd-sigkill":
        d.restart(crash=True)
    elif kind == "pg-restart":
        server.restart("fast")
    elif kind == "pg-sigkill":
        server.kill()
        server.start()
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("kind", DISRUPTIONS)
@pytest.mark.parametrize("proto", PROTOCOLS)
def test_counter_at_10_reads_10(tallyd_factory, pg, proto, kind):
    server, db = pg
    d = on_pg(tallyd_factory, server, db)
    # Given a counter set to 10
    proto(d).set("visits", 10)
    # When tallyd or PostgreSQL goes down and comes back
    disrupt(kind, d, server)
    # Then it reads 10 (once tallyd has reconnected by itself)
    assert eventually(lambda: proto(d).get("visits")) == 10


@pytest.mark.parametrize("kind", DISRUPTIONS)
@pytest.mark.parametrize("proto", PROTOCOLS)
def test_counter_10_incremented_reads_11(tallyd_factory, pg, proto, kind):
    server, db = pg
    d = on_pg(tallyd_factory, server, db)
    c = proto(d)
    c.set("visits", 10)
    assert c.incr("visits") == 11
    disrupt(kind, d, server)
    assert eventually(lambda: proto(d).get("visits")) == 11


@pytest.mark.parametrize("kind", DISRUPTIONS)
@pytest.mark.parametrize("proto", PROTOCOLS)
def test_counter_10_incremented_five_times_reads_15(tallyd_factory, pg, proto,
                                                    kind):
    server, db = pg
    d = on_pg(tallyd_factory, server, db)
    c = proto(d)
    c.set("visits", 10)
    assert [c.incr("visits") for _ in range(5)] == [11, 12, 13, 14, 15]
    disrupt(kind, d, server)
    assert eventually(lambda: proto(d).get("visits")) == 15
    # And it counts on from there
    assert eventually(lambda: proto(d).incr("visits")) == 16


@pytest.mark.parametrize("kind", DISRUPTIONS)
def test_acknowledged_increments_survive_under_load(tallyd_factory, pg, kind):
    server, db = pg
    d = on_pg(tallyd_factory, server, db)

    # Given eight clients incrementing a hot counter and their cold ones,
    # when tallyd or PostgreSQL goes down twice under them
    def twice():
        for _ in range(2):
            disrupt(kind, d, server)
            eventually(lambda: d.redis().incr("probe"), what="an INCR")
    workers = run_load([d], twice)

    # Then every acknowledged increment is there and none counted twice
    acked, final = check_bounds(workers, read_all(d))
    if kind.startswith("tallyd"):
        # PostgreSQL never went away: no request may have failed.
        assert not store_errors(workers), store_errors(workers)[:5]
    # And the data is PostgreSQL's: a fresh tallyd on it reads the same
    e = on_pg(tallyd_factory, server, db)
    assert int(e.redis().get("hot") or 0) == int(d.redis().get("hot") or 0)
