# SPDX-License-Identifier: BSD-3-Clause
"""The transfer story both remote stores' batch tests tell
(test_pg_transfers.py, test_redis_transfers.py): clients move amounts
between the same few accounts with MULTI/EXEC, in opposite orders, through
two tallyd instances on one store while one instance is SIGKILLed and
started again; each transaction also counts itself in its client's own
counter "done:N".  The store-specific tests read the result back their own
way and check it with check_exactly_once().
"""
import random
import threading
import time

import redis

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
                # Unavailable or unknown outcome: the bounds allow both.
                time.sleep(0.05)
            except redis.ResponseError as e:
                msg = str(e)
                if "TRYAGAIN" in msg:
                    self.gave_up += 1
                elif "outcome unknown" not in msg:
                    self.errors.append(msg)


def transfer_across_a_sigkill(ds, clients=8):
    """Seed the accounts, run the movers through ds (two instances) while
    ds[1] is SIGKILLed and started again; returns the joined movers."""
    ds[0].redis().mset({a: START for a in ACCOUNTS})
    stop = threading.Event()
    movers = [Mover(n, ds, stop) for n in range(clients)]
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
    return movers


def check_exactly_once(movers, values, done_of):
    """No transaction refused for another reason, the accounts' values sum
    to what they started with, hardly any transaction gave up, and each
    client's counter (done_of(n)) is between its acknowledged and its sent
    EXECs: every acknowledged EXEC is there, none twice."""
    assert not [e for m in movers for e in m.errors], movers[0].errors[:3]
    assert sum(values) == START * len(ACCOUNTS), values
    acked = sum(m.acked for m in movers)
    assert acked > 50, f"too few transactions to prove much: {acked}"
    # Conflicts are re-run, so hardly any transaction gives up.
    gave_up = sum(m.gave_up for m in movers)
    assert gave_up * 20 <= acked, (gave_up, acked)
    for m in movers:
        done = done_of(m.n)
        assert m.acked <= done <= m.sent, (m.n, m.acked, done, m.sent)
