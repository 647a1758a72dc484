# SPDX-License-Identifier: BSD-3-Clause
"""How tallyd's event loop behaves while PostgreSQL is slow to answer.

A request waiting for its store answer costs nothing until the answer comes:
the loop sleeps (it once re-queued every waiting connection on every pass and
so never slept, which on a small machine took the CPU the database needed).
The answers of one commit come back to clients that ask again at once, and
their next increments share one transaction rather than being split in two.
"""

import os
import shutil
import subprocess
import threading
import time

import pytest

from pg_util import on_pg
from pgserver import DB_USER, PG_BIN

pytestmark = [pytest.mark.own_server, pytest.mark.needs_store]


def cpu_seconds(pid):
    """User plus system CPU time of a process so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RowLock:
    """A psql session that holds the row of counter `key` locked in an open
    transaction until release()."""

    def __init__(self, server, db, key):
        self.p = subprocess.Popen(
            [PG_BIN / "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
             "-h", server.host, "-p", str(server.port), "-U", DB_USER,
             "-d", db],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hexkey = key.encode().hex()
        self.p.stdin.write(
            "BEGIN;\n"
            f"SELECT n FROM tally_counters WHERE k = '\\x{hexkey}'::bytea "
            "FOR UPDATE;\n\\echo locked\n")
        self.p.stdin.flush()
        assert self.p.stdout.readline().strip() == "0"
        assert self.p.stdout.readline().strip() == "locked"

    def release(self):
        self.p.stdin.write("COMMIT;\n")
        self.p.stdin.close()
        self.p.wait(30)


def test_requests_waiting_on_a_locked_row_cost_no_cpu(tallyd_factory,
                                                      pg_db):
    server, db = pg_db
    d = on_pg(tallyd_factory, server, db)
    r = d.redis()
    r.set("k", 0)
    # Given the counter's row is locked by another session
    lock = RowLock(server, db, "k")
    # When a few clients increment it and wait
    replies = []

    def incr():
        replies.append(d.redis(socket_timeout=60).incr("k"))

    threads = [threading.Thread(target=incr) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    assert not replies, "the row lock did not hold the increments"
    # Then tallyd sleeps while they wait: no busy loop
    before, t0 = cpu_seconds(d.pid), time.monotonic()
    time.sleep(2)
    used = (cpu_seconds(d.pid) - before) / (time.monotonic() - t0)
    lock.release()
    for t in threads:
        t.join(60)
    assert sorted(replies) == [1, 2, 3, 4]
    assert used < 0.2, f"tallyd used {used:.0%} of a CPU waiting for the store"


def info_num(r, name):
    return int(r.info("store")[name])


@pytest.mark.skipif(shutil.which("redis-benchmark") is None,
                    reason="redis-benchmark not installed")
def test_clients_answered_by_one_commit_share_the_next(tallyd_factory,
                                                       pg_db):
    server, db = pg_db
    d = on_pg(tallyd_factory, server, db)
    r = d.redis()
    clients, n = 20, 6000
    # Given clients that each send their next INCR as soon as answered
    before = (info_num(r, "store_pg_ops"),
              info_num(r, "store_pg_transactions"))
    subprocess.run(["redis-benchmark", "-h", d.host, "-p", str(d.port),
                    "-c", str(clients), "-n", str(n), "-t", "incr", "-q"],
                   check=True, capture_output=True, timeout=300)
    ops = info_num(r, "store_pg_ops") - before[0]
    txns = info_num(r, "store_pg_transactions") - before[1]
    print(f"{ops} ops in {txns} transactions")
    # Then their increments went in transactions of about all of them: the
    # first to come back did not go alone, splitting the rest off
    assert r.get("counter:__rand_int__") == str(n)
    assert ops >= n and ops / txns > 0.65 * clients, (ops, txns)
