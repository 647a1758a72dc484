# SPDX-License-Identifier: BSD-3-Clause
"""Two and three tallyd instances on one PostgreSQL database, as behind a
load balancer: several clients each (they reconnect to any instance)
increment one hot counter and many cold ones while instances are SIGKILLed
and restarted one after another.  At the end, per counter, acknowledged <=
final <= attempted: every acknowledged increment is there and nothing is
counted twice.  The composite operations that make this safe are the
store's; this file only counts.
"""

import os
import random
import time

import pytest

from pg_util import (check_bounds, on_pg, read_all, run_load, store_errors)

pytestmark = [pytest.mark.own_server, pytest.mark.needs_store]

KILLS = int(os.environ.get("TALLY_TEST_PG_KILLS", "8"))


@pytest.mark.parametrize("n", [2, 3])
def test_instances_on_one_database_lose_nothing_and_count_nothing_twice(
        tallyd_factory, pg_db, n):
    server, db = pg_db
    # Given n instances on one database
    ds = [on_pg(tallyd_factory, server, db) for _ in range(n)]
    rng = random.Random(n)

    # When 4 clients per instance increment while instances are SIGKILLed
    # and restarted, one at a time, the others serving on
    def storm():
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.1, 0.4))
            victim = rng.choice(ds)
            victim.kill()
            time.sleep(rng.uniform(0, 0.2))
            victim.start()
    workers = run_load(ds, storm, clients=4 * n, cold=50)

    # Then no request failed (PostgreSQL never went away), and both bounds
    # hold for the hot counter and every cold one, read through each
    # instance alike
    assert not store_errors(workers), store_errors(workers)[:5]
    acked, final = check_bounds(workers, read_all(ds[0]))
    hot_acked = sum(w.acked.get("hot", 0) for w in workers)
    assert hot_acked > 100, f"too little traffic to prove much: {hot_acked}"
    values = {int(d.redis().get("hot")) for d in ds}
    assert len(values) == 1, f"instances disagree on the hot counter: {values}"
    # And nobody wrote a counter the clients did not
    names = {k for w in workers for k in w.attempted}
    assert set(ds[1].redis().scan_iter(count=1000)) <= names
