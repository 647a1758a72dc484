# SPDX-License-Identifier: BSD-3-Clause
"""--store-wait-replicas on a Redis with WAITAOF (7.2 and later; src/store/
redis.c, docs/redis-store.md "Durability").  Debian's Redis is 7.0, so a
proxy (redis72.py) in front of a real redis-server reports 7.2 and answers
WAIT and WAITAOF itself, as the test says, relaying everything else to
Redis.  The stories: after each pipelined batch that writes, tallyd sends
WAIT N and then WAITAOF 1 N, and holds the batch's answers for them; reads
are not held; WAITAOF's answer with fewer fsyncs than asked (on the
replicas, or on the primary itself), or an error, makes the writes
"outcome unknown", never a success, and so is a replay of an id until
enough have it; on 7.0 no WAITAOF is sent.
"""
import threading

import pytest
import redis
import requests

from redis72 import Redis72Proxy
from test_redis_store import AOF_ALWAYS, over, redis_factory  # noqa: F401
from test_redis_store import pytestmark  # noqa: F401

GET = 4      # REDIS_S_GET's place among the scripts loaded (redis_int.h)


@pytest.fixture
def proxied(redis_factory):  # noqa: F811
    """A real redis-server behind a Redis72Proxy."""
    rs = redis_factory(*AOF_ALWAYS)
    p = Redis72Proxy(rs.port)
    p.uri = f"redis://127.0.0.1:{p.port}"
    yield rs, p
    p.close()


def tallyd_over(tallyd_factory, proxy, **flags):
    class Via:
        uri = proxy.uri
    return over(tallyd_factory, Via, **flags)


def after_each_write_batch(proxy):
    """Check the store connection's commands: every command that may
    write (an EVALSHA but the get script's, or the native INCRBY and MSET
    of plain RESP requests) is followed, before the next batch, by WAIT 1
    and WAITAOF 1 1; returns how many batches wrote."""
    with proxy.lock:
        log = list(proxy.log)
    conn = next(n for n, a in log if a[0].upper() in ("EVALSHA", "INCRBY"))
    cmds = [a for n, a in log if n == conn]
    get_sha = proxy.shas[GET]
    batches, writing = 0, False
    for i, a in enumerate(cmds):
        name = a[0].upper()
        if (name == "EVALSHA" and a[1] != get_sha) or \
                name in ("INCRBY", "MSET"):
            writing = True
        elif name == "WAIT":
            assert a[1:] == ["1", "1000"], a
            assert writing, f"a WAIT after no write: {cmds[i - 3:i + 1]}"
            assert cmds[i + 1] == ["WAITAOF", "1", "1", "1000"], cmds[i + 1]
            batches += 1
            writing = False
    assert not writing, "writes without their WAITAOF"
    return batches


def test_waitaof_follows_each_write_batch_and_too_few_fsyncs_are_unknown(
        tallyd_factory, proxied):
    rs, proxy = proxied
    t = tallyd_over(tallyd_factory, proxy, store_wait_replicas=1)
    r = t.redis()
    info = r.info("store")
    assert info["store_redis_version"] == "7.2.4"
    assert info["store_waitaof"] == "yes"
    # Given a "7.2 primary" whose replicas fsync: writes succeed, each
    # batch followed by WAIT and WAITAOF; reads are not held for them
    assert r.incr("x") == 1
    assert r.get("x") == "1"
    assert r.execute_command("INCRBY.ONCE", "o", 5, "id-1") == 5
    errors = []

    def many(n):
        try:
            c = t.redis()
            for _ in range(20):
                c.incr(f"m{n}")
        except Exception as e:  # surfaced below
            errors.append(e)
    threads = [threading.Thread(target=many, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors, errors[:3]
    batches = after_each_write_batch(proxy)
    assert 3 <= batches <= 83
    s = requests.post(t.url + "/v1/batch", json={"ops": [
        {"op": "increment", "key": "b"}, {"op": "get", "key": "b"}]},
        headers={"Idempotency-Key": "k1"}, timeout=10)
    assert s.status_code == 200, s.text
    after_each_write_batch(proxy)
    # When WAITAOF answers that no replica fsynced in time
    proxy.waitaof = [1, 0]
    # Then a write is applied on the primary but never a success
    with pytest.raises(redis.ResponseError, match="(?i)unknown"):
        r.incr("x")
    assert rs.client().get("tally:{x}") == "2"
    with pytest.raises(redis.ResponseError, match="(?i)unknown"):
        r.execute_command("INCRBY.ONCE", "o", 5, "id-2")
    # and so is its replay, or a batch's replay, until the replicas have it
    with pytest.raises(redis.ResponseError, match="(?i)unknown"):
        r.execute_command("INCRBY.ONCE", "o", 5, "id-2")
    again = requests.post(t.url + "/v1/batch", json={"ops": [
        {"op": "increment", "key": "b"}, {"op": "get", "key": "b"}]},
        headers={"Idempotency-Key": "k1"}, timeout=10)
    assert again.status_code == 503 and "outcome-unknown" in again.text
    assert r.get("x") == "2"  # reads are not held
    proxy.waitaof = [1, 1]
    assert r.execute_command("INCRBY.ONCE", "o", 5, "id-2") == 10
    assert rs.client().get("tally:{o}") == "10"
    # The primary's own AOF not fsynced in time is too few fsyncs as well
    proxy.waitaof = [0, 1]
    with pytest.raises(redis.ResponseError, match="(?i)unknown"):
        r.incr("x")
    # And a WAITAOF refused (an error) is no success either
    proxy.waitaof = "ERR WAITAOF cannot be used with this configuration"
    with pytest.raises(redis.ResponseError, match="(?i)unknown"):
        r.incr("x")
    assert rs.client().get("tally:{x}") == "4"
    proxy.waitaof = [1, 1]
    assert r.incr("x") == 5
    after_each_write_batch(proxy)
    assert r.info("store")["store_unknown_outcomes"] >= 5


def test_no_waitaof_before_redis_7_2(tallyd_factory, redis_factory):  # noqa: F811
    rs = redis_factory(*AOF_ALWAYS)
    proxy = Redis72Proxy(rs.port, version="7.0.15")
    try:
        proxy.uri = f"redis://127.0.0.1:{proxy.port}"
        t = tallyd_over(tallyd_factory, proxy, store_wait_replicas=1)
        r = t.redis()
        assert r.info("store")["store_waitaof"] == "no"
        assert r.incr("x") == 1
        assert proxy.commands("WAIT") and not proxy.commands("WAITAOF")
        proxy.wait = 0
        with pytest.raises(redis.ResponseError, match="(?i)unknown"):
            r.incr("x")
    finally:
        proxy.close()


def test_waitaof_asks_no_local_fsync_of_a_redis_without_aof(
        tallyd_factory, redis_factory):  # noqa: F811
    """7.2 refuses WAITAOF 1 N when appendonly is no: asking it would make
    every write "outcome unknown".  Its durability is reported "none"; the
    replicas' fsyncs are still waited for."""
    rs = redis_factory("--appendonly", "no")
    proxy = Redis72Proxy(rs.port)
    try:
        proxy.uri = f"redis://127.0.0.1:{proxy.port}"
        t = tallyd_over(tallyd_factory, proxy, store_wait_replicas=1,
                        fsync="everysec")
        r = t.redis()
        assert r.incr("x") == 1
        assert proxy.commands("WAITAOF")[-1] == ["WAITAOF", "0", "1", "1000"]
        proxy.waitaof = [0, 0]
        with pytest.raises(redis.ResponseError, match="(?i)unknown"):
            r.incr("x")
        assert r.info("store")["store_durability"].startswith("none")
    finally:
        proxy.close()
