# SPDX-License-Identifier: BSD-3-Clause
"""Store batches across two tallyd instances on one Redis (src/store/
redis_xact.c): many clients move amounts between the same few accounts with
MULTI/EXEC, in opposite orders, through both instances while one is
SIGKILLed and restarted; each transaction also counts itself in its
client's own counter.  At the end the accounts' sum is what it was (no half
transaction anywhere) and, per client, acknowledged EXECs <= its counter <=
EXECs sent: every acknowledged EXEC is there, none twice.  And WATCH on one
instance aborts the EXEC when the key changed through the other.
(test_pg_transfers.py is the same story on PostgreSQL.)
"""
import signal
import threading
import time

import pytest
import redis

from test_redis_store import AOF_ALWAYS, over, redis_factory  # noqa: F401
from transfers import ACCOUNTS, check_exactly_once, transfer_across_a_sigkill

pytestmark = [pytest.mark.own_server]


def test_transfers_in_opposite_orders_on_two_instances_survive_a_sigkill(
        tallyd_factory, redis_factory):  # noqa: F811
    # Given two instances on one Redis and four accounts of 1000
    rs = redis_factory(*AOF_ALWAYS)
    ds = [over(tallyd_factory, rs) for _ in range(2)]

    # When 8 clients transfer between them through both instances, and one
    # instance is SIGKILLed mid-run and started again
    movers = transfer_across_a_sigkill(ds)

    # Then, read from Redis itself, the sum is conserved and each client's
    # EXECs are there once
    r = rs.client()
    values = [int(v) for v in r.mget(["tally:{%s}" % a for a in ACCOUNTS])]
    check_exactly_once(movers, values,
                       lambda n: int(r.get("tally:{done:%d}" % n) or 0))
    # And both instances agree with Redis
    assert [int(v) for v in ds[1].redis().mget(ACCOUNTS)] == values
    # And the transactions did meet (else this proved little): commits that
    # found a key changed since their reads, and ran again
    info = [d.redis().info("store") for d in ds]
    assert sum(int(i["store_redis_batch_conflicts"]) for i in info) > 0
    assert all(int(i["store_redis_batch_commits"]) > 0 for i in info)


def test_watch_aborts_on_a_change_made_through_the_other_instance(
        tallyd_factory, redis_factory):  # noqa: F811
    rs = redis_factory(*AOF_ALWAYS)
    a, b = over(tallyd_factory, rs), over(tallyd_factory, rs)
    a.redis().set("w", 1)
    # Given a WATCH of w on instance a
    p = a.redis().pipeline(transaction=True)
    p.watch("w")
    assert p.get("w") == "1"
    # When w changes through instance b before a's EXEC
    b.redis().incr("w")
    p.multi()
    p.incrby("w", 10)
    p.set("other", 5)
    # Then the EXEC is aborted and nothing of it applied
    with pytest.raises(redis.WatchError):
        p.execute()
    assert a.redis().get("w") == "2"
    assert a.redis().get("other") is None
    # And without a change in between the same transaction goes through
    p = a.redis().pipeline(transaction=True)
    p.watch("w")
    p.multi()
    p.incrby("w", 10)
    assert p.execute() == [12]
    assert b.redis().get("w") == "12"


def test_a_script_reads_its_own_writes_and_commits_once(
        tallyd_factory, redis_factory):  # noqa: F811
    rs = redis_factory(*AOF_ALWAYS)
    a, b = over(tallyd_factory, rs), over(tallyd_factory, rs)
    script = ("redis.call('INCRBY', KEYS[1], ARGV[1]); "
              "redis.call('DECRBY', KEYS[2], ARGV[1]); "
              "return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}")
    b.redis().mset({"x": 100, "y": 100})

    def run(t, n):
        c = t.redis()
        for _ in range(n):
            c.eval(script, 2, "x", "y", 1)

    threads = [threading.Thread(target=run, args=(t, 100)) for t in (a, b)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert a.redis().mget("x", "y") == ["300", "-100"]


def test_a_connection_lost_after_the_commit_was_sent_is_unknown(
        tallyd_factory, redis_factory):  # noqa: F811
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    t.redis().set("u", 1)
    # A script that reads u (the batch's one read), spins a second in Lua,
    # then writes: its commit leaves at the end of the spin.
    script = ("redis.call('GET', KEYS[1])\n"
              "local a = redis.call('TIME'); local n\n"
              "repeat n = redis.call('TIME') until\n"
              "  (n[1] - a[1]) * 1000000 + (n[2] - a[2]) > 1000000\n"
              "return redis.call('INCR', KEYS[1])")
    got = {}

    def run():
        try:
            got["v"] = t.redis().eval(script, 1, "u")
        except redis.RedisError as e:
            got["e"] = str(e)

    th = threading.Thread(target=run)
    th.start()
    time.sleep(0.5)       # the read is in; the spin goes on
    rs.proc.send_signal(signal.SIGSTOP)
    time.sleep(2.0)       # the commit is on the wire to a stopped Redis
    rs.proc.send_signal(signal.SIGKILL)
    rs.proc.send_signal(signal.SIGCONT)
    rs.proc.wait()
    th.join(15)
    assert "v" not in got, got
    assert "unknown" in got["e"].lower(), got


def test_wait_replicas_applies_to_the_commit(tallyd_factory,
                                             redis_factory):  # noqa: F811
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs, store_wait_replicas=1)
    # No replica: WAIT 1 times out, so the EXEC applied on the primary is
    # never reported as a success
    p = t.redis().pipeline(transaction=True)
    p.incr("r")
    p.incr("s")
    with pytest.raises(redis.ResponseError, match="(?i)unknown"):
        p.execute()
    assert rs.client().mget("tally:{r}", "tally:{s}") == ["1", "1"]
