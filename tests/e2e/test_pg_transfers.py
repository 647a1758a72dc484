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
import random
import threading
import time

import pytest
import redis

from pg_util import on_pg, require_store

pytestmark = [pytest.mark.own_server, pytest.mark.needs_store]

ACCOUNTS = ["acct:%d" % i for i in range(4)]
START = 1000


class Mover(threading.Thread):
    """One client: transfers through whichever instance is up."""

    def __init__(self, n, ds, stop):
        super().__init__(daemon=True)
        self.n, self.ds, self.stop = n, ds, stop
        self.rng = random.Random(n)
        self.acked = self.sent = self.gave_up = 0
        self.errors = []          # replies that are neither OK nor retryable

    def run(self):
        mine = "done:%d" % self.n
        while not self.stop.is_set():
            d = self.rng.choice(self.ds)
            src, dst = self.rng.sample(ACCOUNTS, 2)
            amount = self.rng.randint(1, 9)
            try:
                r = redis.Redis(host="127.0.0.1", port=d.port,
                                decode_responses=True, socket_timeout=10)
                p = r.pipeline(transaction=True)
                p.decrby(src, amount)
                p.incrby(dst, amount)
                p.incr(mine)
                self.sent += 1
                p.execute()
                self.acked += 1
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.05)  # the instance is down: outcome unknown
            except redis.ResponseError as e:
                msg = str(e)
                # Unavailable or unknown outcome: the bounds allow both.
                if "TRYAGAIN" in msg:
                    self.gave_up += 1
                elif "outcome unknown" not in msg:
                    self.errors.append(msg)


def test_transfers_in_opposite_orders_on_two_instances_survive_a_sigkill(
        tallyd_factory, pg_db):
    require_store()
    server, db = pg_db
    # Given two instances on one database and four accounts of 1000
    ds = [on_pg(tallyd_factory, server, db) for _ in range(2)]
    ds[0].redis().mset({a: START for a in ACCOUNTS})

    # When 8 clients transfer between them through both instances, and one
    # instance is SIGKILLed mid-run and started again
    stop = threading.Event()
    movers = [Mover(n, ds, stop) for n in range(8)]
    for m in movers:
        m.start()
    time.sleep(1.5)
    ds[1].kill()
    time.sleep(0.5)
    ds[1].start()
    time.sleep(1.5)
    stop.set()
    for m in movers:
        m.join(timeout=30)

    # Then no transaction was refused for another reason, the sum is
    # conserved, and each client's EXECs are there exactly once
    assert not [e for m in movers for e in m.errors], movers[0].errors[:3]
    r = ds[0].redis()
    values = [int(v) for v in r.mget(ACCOUNTS)]
    assert sum(values) == START * len(ACCOUNTS), values
    acked = sum(m.acked for m in movers)
    assert acked > 50, f"too few transactions to prove much: {acked}"
    # Conflicts are re-run, so hardly any transaction gives up.
    gave_up = sum(m.gave_up for m in movers)
    assert gave_up * 20 <= acked, (gave_up, acked)
    for m in movers:
        done = int(r.get("done:%d" % m.n) or 0)
        assert m.acked <= done <= m.sent, (m.n, m.acked, done, m.sent)
    # And both instances agree
    assert [int(v) for v in ds[1].redis().mget(ACCOUNTS)] == values
    # And the transactions did meet (else this proved little): commits that
    # found a key changed since their reads, and ran again
    conflicts = sum(int(d.redis().info("store")["store_pg_batch_conflicts"])
                    for d in ds)
    assert conflicts > 0
