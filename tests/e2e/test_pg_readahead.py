# SPDX-License-Identifier: BSD-3-Clause
"""MULTI/EXEC's read-ahead on the remote stores, PostgreSQL and Redis
(docs/store.md, "Batches on a store that answers later"): once a queued
command waits for the store to read its counter, the commands after it hand
their counters to the batch too, so one round trip reads them all.  An EXEC
over n counters the batch has not read then costs a few PostgreSQL
transactions, not n + 1, and still gives Redis's answers; a client that goes
away while those reads are in flight leaves tallyd serving and each EXEC all
or nothing.  (Named test_pg_* so that the store passes of ./test.sh skip it:
it starts its own servers.)
"""
import socket
import time

import pytest

from pg_util import on_pg
from test_redis_store import AOF_ALWAYS, over, redis_factory  # noqa: F401

pytestmark = [pytest.mark.own_server, pytest.mark.needs_store]

N = 30


def store_info(r, name):
    return int(r.info("store")[name])


def exec_many(r, n=N):
    """MULTI; INCRBY k0 1 ... INCRBY k<n-1> n; MGET of all; EXEC."""
    p = r.pipeline(transaction=True)
    for i in range(n):
        p.incrby(f"k{i}", i + 1)
    p.mget([f"k{i}" for i in range(n)])
    return p.execute()


def expected(n=N):
    return [i + 1 for i in range(n)] + [[str(i + 1) for i in range(n)]]


def transactions_of(tallyd_factory, pg_db, fn):
    """fn(client)'s answer on a quiet tallyd over PostgreSQL, and how many
    PostgreSQL transactions it took."""
    server, db = pg_db
    r = on_pg(tallyd_factory, server, db).redis()
    r.ping()
    before = store_info(r, "store_pg_transactions")
    got = fn(r)
    return got, store_info(r, "store_pg_transactions") - before, r


def test_exec_over_many_new_counters_takes_few_transactions(tallyd_factory,
                                                            pg_db):
    # Given a quiet tallyd on PostgreSQL
    # When one EXEC increments 30 counters it has never read
    got, txns, r = transactions_of(tallyd_factory, pg_db, exec_many)
    # Then the answers are Redis's, and the counters were read together:
    # one transaction for the first read, one for the rest, one for the
    # commit (it was 31: one read each, then the commit)
    assert got == expected()
    assert txns <= 5, f"EXEC over {N} new counters took {txns} transactions"
    assert r.mget([f"k{i}" for i in range(N)]) == [str(i + 1) for i in range(N)]


def test_exec_with_read_ahead_on_redis_gives_redis_answers(tallyd_factory,
                                                           redis_factory):
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    r = t.redis()
    # Given counters some of which exist
    for i in range(0, N, 3):
        r.set(f"k{i}", 100)
    # When one EXEC increments all of them and reads them back
    got = exec_many(r)
    # Then each reply is what the counter held plus its increment
    want = [(100 if i % 3 == 0 else 0) + i + 1 for i in range(N)]
    assert got == want + [[str(v) for v in want]]
    assert rs.client().get("tally:{k1}") == "2"


def raw_exec_and_close(host, port, n):
    """Send MULTI, n INCRs and EXEC on a raw socket and close it at once,
    before any reply."""
    cmds = [b"MULTI"] + [b"INCR g%d" % i for i in range(n)] + [b"EXEC"]
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"".join(c + b"\r\n" for c in cmds))
    s.close()


@pytest.mark.parametrize("store", ["postgresql", "redis"])
def test_client_gone_while_read_ahead_is_in_flight(tallyd_factory, request,
                                                   store):
    if store == "postgresql":
        server, db = request.getfixturevalue("pg_db")
        d = on_pg(tallyd_factory, server, db)
    else:
        rs = request.getfixturevalue("redis_factory")(*AOF_ALWAYS)
        d = over(tallyd_factory, rs)
    r = d.redis()
    # Given clients that queue an EXEC over many new counters and leave
    # before its reads come back
    for _ in range(5):
        raw_exec_and_close(d.host, d.port, 40)
    # Then tallyd goes on serving, and every EXEC applied all or nothing:
    # after the last commit that was sent has answered, each counter moved
    # by the same number of EXECs
    deadline = time.monotonic() + 10
    while True:
        values = r.mget([f"g{i}" for i in range(40)])
        if len(set(values)) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(set(values)) == 1, values
    assert d.running()
    assert r.incr("alive") == 1


INCR_ALL = """
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('INCRBY', k, ARGV[1]) end
return out
"""


def test_script_over_many_new_keys_reads_its_keys_ahead(tallyd_factory,
                                                        pg_db):
    # Given a quiet tallyd on PostgreSQL
    # When a script increments 30 counters it declares and never read
    got, txns, _ = transactions_of(
        tallyd_factory, pg_db,
        lambda r: r.eval(INCR_ALL, N, *[f"s{i}" for i in range(N)], 5))
    # Then its declared KEYS were read together before it ran, and its
    # answers are Redis's (one read per key before: 31 transactions)
    assert got == [5] * N
    assert txns <= 4, f"a script over {N} new counters took {txns} transactions"
