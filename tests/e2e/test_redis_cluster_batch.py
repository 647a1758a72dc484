# SPDX-License-Identifier: BSD-3-Clause
"""Store batches on a Redis Cluster (src/store/redis_xact.c,
docs/redis-store.md): a batch's counters must share one hash slot.  With
tally's key layout every counter is its own hash tag, so a MULTI, a script
or a RENAME over two counters in different slots is refused with CROSSSLOT,
as Redis Cluster refuses a MULTI over several slots, and runs nothing; over
one counter they work, atomic with two tallyd instances on the cluster.
"""
import threading

import pytest
import redis

from test_redis_cluster import Cluster, masters, pytestmark  # noqa: F401


def two_slots(cluster):
    """Two counter names whose tally keys are in different slots."""
    a = "a"
    for i in range(100):
        b = "b%d" % i
        if cluster.slot("tally:{%s}" % a) != cluster.slot("tally:{%s}" % b):
            return a, b
    raise AssertionError("no two slots")


def test_a_batch_over_two_slots_is_refused_with_crossslot(tallyd_factory,
                                                          masters):  # noqa: F811
    t = tallyd_factory(store=masters.uri)
    r = t.redis()
    a, b = two_slots(masters)
    r.mset({a: 1})
    r.mset({b: 2})
    # A MULTI over both runs nothing and says why
    p = r.pipeline(transaction=True)
    p.incr(a)
    p.incr(b)
    with pytest.raises(redis.ResponseError, match="CROSSSLOT"):
        p.execute()
    # A script over both, a RENAME from one to the other: the same
    with pytest.raises(redis.ResponseError, match="CROSSSLOT"):
        r.eval("redis.call('INCR', KEYS[1]); return redis.call('INCR', "
               "KEYS[2])", 2, a, b)
    with pytest.raises(redis.ResponseError, match="CROSSSLOT"):
        r.rename(a, b)
    assert r.mget(a, b) == ["1", "2"]
    assert masters.get("tally:{%s}" % a) == "1"


def test_a_batch_over_one_counter_is_atomic_across_instances(
        tallyd_factory, masters):  # noqa: F811
    ts = [tallyd_factory(store=masters.uri) for _ in range(2)]
    ts[0].redis().set("n", 0)
    # WATCH, MULTI and EXEC on one counter, as on one Redis
    r = ts[0].redis()
    p = r.pipeline(transaction=True)
    p.watch("n")
    p.multi()
    p.incr("n")
    p.get("n")
    assert p.execute() == [1, "1"]
    errors = []

    # Two instances run a read-then-write script on the same counter: each
    # run counts once (a lost update would leave the sum short).
    def run(t):
        try:
            c = t.redis()
            for _ in range(100):
                c.eval("local v = tonumber(redis.call('GET', KEYS[1]))\n"
                       "redis.call('SET', KEYS[1], v + 1)\n"
                       "return v + 1", 1, "n")
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in ts * 2]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:3]
    assert masters.get("tally:{n}") == "401"
