# SPDX-License-Identifier: BSD-3-Clause
"""The key and server commands client libraries and test suites send
(issue 10): replies compared with a real redis-server where both can give
the same answer, and tally's own rules (FLUSH only with --allow-flush,
counters are integers only) checked directly.
"""

import time

import pytest
import redis

# Steps run on a fresh tally and a flushed redis; replies must be equal.
SEQUENCES = {
    "type": [["SET", "a", "1"], ["TYPE", "a"], ["TYPE", "missing"]],
    "unlink_touch": [["MSET", "a", "1", "b", "2"], ["TOUCH", "a", "b", "c"],
                     ["UNLINK", "a", "c"], ["EXISTS", "a", "b"]],
    "rename_keeps_ttl": [["SET", "a", "5", "EX", "100"],
                         ["RENAME", "a", "b"], ["GET", "a"], ["GET", "b"],
                         ["TTL", "b"], ["RENAME", "missing", "x"],
                         ["RENAME", "b", "b"], ["GET", "b"]],
    "renamenx": [["MSET", "a", "1", "b", "2"], ["RENAMENX", "a", "b"],
                 ["RENAMENX", "a", "c"], ["MGET", "a", "b", "c"],
                 ["RENAMENX", "c", "c"], ["RENAMENX", "nope", "d"]],
    "copy": [["SET", "a", "7", "EX", "100"], ["COPY", "a", "b"],
             ["TTL", "b"], ["SET", "c", "1"], ["COPY", "a", "c"],
             ["COPY", "a", "c", "REPLACE"], ["MGET", "a", "b", "c"],
             ["COPY", "a", "a"], ["COPY", "missing", "d"],
             ["COPY", "a", "e", "DB", "0"], ["COPY", "a", "g", "BOGUS"]],
    "randomkey": [["RANDOMKEY"], ["SET", "only", "1"], ["RANDOMKEY"]],
    "object": [["SET", "a", "12"], ["OBJECT", "ENCODING", "a"],
               ["OBJECT", "ENCODING", "missing"]],
    "memory_missing": [["MEMORY", "USAGE", "missing"]],
    "wait": [["WAIT", "0", "0"], ["WAIT", "1", "-1"], ["WAIT", "x", "0"]],
    "client_no_evict": [["CLIENT", "NO-EVICT", "on"],
                        ["CLIENT", "NO-EVICT", "maybe"]],
    "rename_in_multi": [["SET", "a", "3"], ["MULTI"], ["RENAME", "a", "b"],
                        ["INCR", "b"], ["EXEC"], ["MGET", "a", "b"]],
}


@pytest.mark.own_server
@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_replies_match_redis(tallyd, real_redis, name):
    real_redis.flushall()
    with real_redis.raw() as ref, tallyd.raw() as t:
        for cmd in SEQUENCES[name]:
            assert t.cmd(*cmd) == ref.cmd(*cmd), cmd


def test_flush_needs_allow_flush(tallyd, key):
    r = tallyd.redis()
    r.set(key("a"), 1)
    for cmd in ("FLUSHDB", "FLUSHALL"):
        with pytest.raises(redis.ResponseError, match="--allow-flush"):
            r.execute_command(cmd)
    assert r.get(key("a")) == "1"


@pytest.mark.own_server
def test_flush_with_allow_flush_empties_and_breaks_watch(tallyd_factory):
    server = tallyd_factory(allow_flush=True)
    r = server.redis()
    # More than one DEL of 512 keys; SETs, not MSETs, so that a Redis
    # Cluster (an MSET over several slots refused) flushes them too.
    with r.pipeline(transaction=False) as p:
        for i in range(1500):
            p.set(f"k{i}", i)
        p.execute()
    w = server.redis()
    with w.pipeline() as p:
        p.watch("k1")
        assert r.flushdb(asynchronous=True) is True
        p.multi()
        p.incr("k1")
        with pytest.raises(redis.WatchError):
            p.execute()
    assert r.dbsize() == 0
    r.set("x", 1)
    assert r.flushall() is True
    assert r.dbsize() == 0
    server.restart(crash=True)
    assert server.redis().dbsize() == 0


def test_float_and_append_refused(tallyd, key):
    r = tallyd.redis()
    for args in (("INCRBYFLOAT", key("a"), "1.5"), ("APPEND", key("a"), "x")):
        with pytest.raises(redis.ResponseError, match="integer counters only"):
            r.execute_command(*args)


def test_time_lastsave_memory_usage(tallyd, key):
    r = tallyd.redis()
    secs, usecs = r.time()
    assert abs(secs - time.time()) < 5 and 0 <= usecs < 1000000
    assert r.lastsave().timestamp() <= time.time() + 1
    r.set(key("a"), 1)
    assert 0 < r.memory_usage(key("a")) < 2048
    assert r.memory_usage(key("missing")) is None


@pytest.mark.own_server
def test_rename_survives_a_crash_whole(tallyd):
    r = tallyd.redis()
    r.set("src", 42, ex=1000)
    assert r.rename("src", "dst") is True
    tallyd.restart(crash=True)
    r = tallyd.redis()
    assert r.get("src") is None
    assert r.get("dst") == "42"
    assert 900 < r.ttl("dst") <= 1000
