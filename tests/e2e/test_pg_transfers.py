# SPDX-License-Identifier: BSD-3-Clause
"""MULTI/EXEC across two tallyd instances on one PostgreSQL database: many
clients move amounts between the same few accounts, in opposite orders (a
to b on one client, b to a on the next, as two instances' transactions
that would deadlock on row locks taken in statement order), while one
instance is SIGKILLed and restarted.  Each transaction also counts itself
in its client's own counter.  At the end the accounts' sum is what it was
(no half transaction anywhere) and, per client, acknowledged EXECs <= its
counter <= EXECs sent: every acknowledged EXEC is there, none twice.
(src/store/pg_xact.c: batches are checked at commit and re-run when
another instance got in between.)
"""
import pytest

from pg_util import on_pg, require_store
from transfers import ACCOUNTS, check_exactly_once, transfer_across_a_sigkill

pytestmark = [pytest.mark.own_server, pytest.mark.needs_store]


def test_transfers_in_opposite_orders_on_two_instances_survive_a_sigkill(
        tallyd_factory, pg_db):
    require_store()
    server, db = pg_db
    # Given two instances on one database and four accounts of 1000
    ds = [on_pg(tallyd_factory, server, db) for _ in range(2)]

    # When 8 clients transfer between them through both instances, and one
    # instance is SIGKILLed mid-run and started again
    movers = transfer_across_a_sigkill(ds)

    # Then the sum is conserved and each client's EXECs are there once
    r = ds[0].redis()
    values = [int(v) for v in r.mget(ACCOUNTS)]
    check_exactly_once(movers, values,
                       lambda n: int(r.get("done:%d" % n) or 0))
    # And both instances agree
    assert [int(v) for v in ds[1].redis().mget(ACCOUNTS)] == values
    # And the transactions did meet (else this proved little): commits that
    # found a key changed since their reads, and ran again
    conflicts = sum(int(d.redis().info("store")["store_pg_batch_conflicts"])
                    for d in ds)
    assert conflicts > 0
