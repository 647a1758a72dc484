# SPDX-License-Identifier: BSD-3-Clause
"""POST /v1/batch with an Idempotency-Key on a Redis Cluster (issue 12;
src/store/redis_xact.c, docs/redis-store.md "Key layout").

A batch on a cluster lives in one hash slot, and its id's record lives
there too: `tally:{FIRST}:batch:ID`, beside the batch's first counter, so
the commit script writes it with the counters and once_answer reads it on
that slot's master.  The stories of test_http_batch_once.py, told on three
masters: a retry is the first answer byte for byte and applies nothing;
copies sent at once apply it once; the key with another batch is a 422; a
failed batch records nothing; two tallyd instances apply it once.  With a
replica per master and --store-wait-replicas 1: a batch acknowledged
before its master is SIGKILLed replays on the promoted replica, and no
replay is acknowledged before a replica has the record (as a single id's).
"""
import concurrent.futures
import time
import uuid

import pytest
from test_http_batch_once import batch, move, new_key, send_on_both
from test_http_idempotency import (REPLAYED, assert_applied_once,
                                   assert_first, assert_replay)
from test_http_util import assert_problem, session
from test_redis_cluster import Cluster, pytestmark  # noqa: F401
from test_redis_store import AOF_ALWAYS, over, redis_factory  # noqa: F401


def crc16(data):
    """CRC16-XMODEM, Redis Cluster's key hash."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def slot_of(name):
    """The slot of counter name (no braces or '%' in it): its hash tag."""
    return crc16(name.encode()) % 16384


def same_slot(base):
    """Two counter names, base-a and base-b..., in one hash slot."""
    a = base + "-a"
    want = slot_of(a)
    for i in range(1_000_000):
        b = f"{base}-b{i}"
        if slot_of(b) == want:
            return a, b
    raise AssertionError("no second name in the slot")


def other_slot(a):
    return next(f"{a}-x{i}" for i in range(100)
                if slot_of(f"{a}-x{i}") != slot_of(a))


def counters(cluster, *names):
    return [None if v is None else int(v)
            for v in (cluster.get("tally:{%s}" % n) for n in names)]


@pytest.fixture(scope="module")
def masters3(tmp_path_factory):
    """Three masters without replicas, shared by this module's stories
    (each uses counters and ids of its own)."""
    c = Cluster(str(tmp_path_factory.mktemp("cluster") / "c"), replicas=0)
    yield c
    c.stop()


def test_cluster_batch_retry_is_the_first_answer_and_applies_nothing(
        tallyd_factory, masters3):
    t = tallyd_factory(store=masters3.uri)
    s, idem = session(t), new_key()
    a, b = same_slot(f"r{uuid.uuid4().hex[:8]}")
    t.redis().set(a, 100)
    # Given a transfer between two counters of one slot, sent with a key
    first = batch(s, t, move(a, b, 30), idem)
    assert_first(first)
    assert [x["value"] for x in first.json()["results"]] == [70, 30, 70, 30]
    # Its record is beside the first counter, in that slot, and nowhere else
    rec = masters3.get("tally:{%s}:batch:%s" % (a, idem))
    assert rec is not None and rec.startswith("B ")
    assert masters3.slot("tally:{%s}:batch:%s" % (a, idem)) == slot_of(a)
    assert masters3.get("tally:batch:" + idem) is None
    # When it is sent again after the counters moved on
    t.redis().incrby(a, 1000)
    for _ in range(10):
        # Then each retry is the first answer, byte for byte, and nothing ran
        assert_replay(batch(s, t, move(a, b, 30), idem), first)
    assert counters(masters3, a, b) == [1070, 30]
    # A batch over one counter is one slot too
    c, idem1 = f"one-{uuid.uuid4().hex[:8]}", new_key()
    one = batch(s, t, [{"op": "increment", "key": c, "by": 2},
                       {"op": "get", "key": c}], idem1)
    assert_first(one)
    assert_replay(batch(s, t, [{"op": "increment", "key": c, "by": 2},
                               {"op": "get", "key": c}], idem1), one)
    assert counters(masters3, c) == [2]
    # SCAN and DBSIZE do not take the records for counters
    assert t.redis().exists(a, b, c) == 3
    assert sorted(t.redis().scan_iter(f"{a[:9]}*")) == sorted([a, b])
    # And after a tallyd restart the record still replays
    t.restart(crash=True)
    assert_replay(batch(session(t), t, move(a, b, 30), idem), first)
    assert counters(masters3, a, b) == [1070, 30]


def test_cluster_concurrent_batch_retries_apply_once(tallyd_factory,
                                                     masters3):
    t = tallyd_factory(store=masters3.uri)
    a, b = same_slot(f"c{uuid.uuid4().hex[:8]}")
    idem, n = new_key(), 16

    def one(_):
        with session(t) as s:
            return batch(s, t, move(a, b, 3), idem)
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(one, range(n)))
    first = assert_applied_once(answers)
    assert counters(masters3, a, b) == [-3, 3]
    assert_replay(batch(session(t), t, move(a, b, 3), idem), first)


def test_cluster_batch_key_with_another_batch_is_422_and_slots_are_kept(
        tallyd_factory, masters3):
    t = tallyd_factory(store=masters3.uri)
    s, idem = session(t), new_key()
    a, b = same_slot(f"k{uuid.uuid4().hex[:8]}")
    assert_first(batch(s, t, move(a, b, 1), idem))
    # Another amount, or decrement for increment by minus: another batch
    for ops in (move(a, b, 2),
                [{"op": "increment", "key": a, "by": -1}] + move(a, b, 1)[1:]):
        assert_problem(batch(s, t, ops, idem), 422, "idempotency-key-reused")
    assert counters(masters3, a, b) == [-1, 1]
    # Counters of two slots: refused at the second one (CROSSSLOT),
    # nothing applied or recorded, as a batch without a key is
    x, idem2 = other_slot(a), new_key()
    r = batch(s, t, move(a, x, 1), idem2)
    assert_problem(r, 501)
    assert "operation 1 (increment)" in r.json()["detail"]
    assert counters(masters3, a, x) == [-1, None]
    assert masters3.get("tally:{%s}:batch:%s" % (a, idem2)) is None
    # The same key with a batch in one slot is then a first attempt
    assert_first(batch(s, t, move(a, b, 1), idem2))
    assert counters(masters3, a, b) == [-2, 2]


def test_cluster_failed_batch_records_nothing(tallyd_factory, masters3):
    t = tallyd_factory(store=masters3.uri)
    s, idem = session(t), new_key()
    a, big = same_slot(f"f{uuid.uuid4().hex[:8]}")
    t.redis().set(big, 2**63 - 1)
    ops = [{"op": "increment", "key": a}, {"op": "increment", "key": big}]
    assert_problem(batch(s, t, ops, idem), 409, "overflow")
    assert masters3.get("tally:{%s}:batch:%s" % (a, idem)) is None
    t.redis().set(big, 0)
    assert_first(batch(s, t, ops, idem))
    assert counters(masters3, a, big) == [1, 1]


def test_cluster_same_keyed_batch_on_two_instances_applies_once(
        tallyd_factory, masters3):
    one, two = (tallyd_factory(store=masters3.uri) for _ in range(2))
    a, b = same_slot(f"i{uuid.uuid4().hex[:8]}")
    rounds = 15
    send_on_both(one, two, a, b, rounds)
    assert counters(masters3, a, b) == [-rounds, rounds]


def test_cluster_batch_replays_after_its_master_fails_over(tallyd_factory,
                                                           tmp_path):
    cluster = Cluster(str(tmp_path / "cluster"))
    try:
        t = tallyd_factory(store=cluster.uri, store_wait_replicas=1)
        s = session(t)
        a, b = same_slot(f"fo{uuid.uuid4().hex[:8]}")
        # Given keyed transfers acknowledged (a replica has each)
        firsts = {}
        for i in range(5):
            idem = new_key()
            firsts[idem] = batch(s, t, move(a, b, i + 1), idem)
            assert_first(firsts[idem])
        assert counters(cluster, a, b) == [-15, 15]
        # When their master is SIGKILLed and its replica takes over
        master = cluster.master_of(slot_of(a))
        cluster.kill(master)
        deadline = time.monotonic() + 20
        while cluster.master_of(slot_of(a)) == master:
            assert time.monotonic() < deadline, "no failover"
            time.sleep(0.1)
        # Then a retry is not acknowledged while the new master has no
        # replica (the record may be on it alone), and runs nothing again
        for i, (idem, first) in enumerate(firsts.items()):
            assert batch(s, t, move(a, b, i + 1), idem).status_code == 503
        # A new batch is applied on the new master alone: outcome unknown,
        # and so is its replay
        idem = new_key()
        for _ in range(2):
            assert_problem(batch(s, t, move(a, b, 100), idem), 503,
                           "outcome-unknown")
        assert counters(cluster, a, b) == [-115, 115]
        # When the old master is back, as the new one's replica
        cluster.start(master)
        cluster.wait(cluster.healthy, 60)
        assert cluster.master_of(slot_of(a)) != master
        # Then every retry is its first answer, byte for byte, from the
        # promoted replica, and each batch counted once
        for i, (idem1, first) in enumerate(firsts.items()):
            assert_replay(batch(s, t, move(a, b, i + 1), idem1), first)
        r = batch(s, t, move(a, b, 100), idem)
        assert r.status_code == 200 and r.headers.get(REPLAYED) == "true", \
            r.text
        assert [x["value"] for x in r.json()["results"]] == \
            [-115, 115, -115, 115]
        assert counters(cluster, a, b) == [-115, 115]
    finally:
        cluster.stop()


def test_one_redis_keeps_the_batch_record_where_older_versions_wrote_it(
        tallyd_factory, redis_factory):  # noqa: F811
    """One Redis is unchanged: Pbatch:ID, one id space for every batch of
    the prefix (a key reused with a batch on other counters is still a
    422 there), and records written before the cluster layout replay."""
    primary = redis_factory(*AOF_ALWAYS)
    replica = redis_factory("--replicaof", "127.0.0.1", str(primary.port))
    Cluster.wait(lambda: replica.client().info("replication").get(
        "master_link_status") == "up")
    t = over(tallyd_factory, primary, store_wait_replicas=1)
    s, idem = session(t), new_key()
    first = batch(s, t, move("a", "b", 2), idem)
    assert_first(first)
    rec = primary.client().get("tally:batch:" + idem)
    assert rec is not None and rec.startswith("B ")
    assert not primary.client().keys("tally:{*}:batch:*")
    assert_problem(batch(s, t, move("c", "d", 2), idem), 422,
                   "idempotency-key-reused")
    # A record as an older tallyd wrote it, under another id: replayed
    old = new_key()
    primary.client().set("tally:batch:" + old, rec, px=60000)
    r = batch(s, t, move("a", "b", 2), old)
    assert_replay(r, first)
    # Without the replica a replay is not acknowledged (the record may be
    # on the primary alone), as a single id's replay is not
    replica.kill()
    assert_problem(batch(s, t, move("a", "b", 2), idem), 503,
                   "outcome-unknown")
    assert primary.client().mget("tally:{a}", "tally:{b}") == ["-2", "2"]
