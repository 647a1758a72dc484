# SPDX-License-Identifier: BSD-3-Clause
"""SCAN over many counters: every matching key exactly once, a cursor that
ends, MATCH and COUNT honoured; KEYS and DBSIZE agree with it."""

import concurrent.futures

import pytest

from conftest import STORE, RespError

N = 100_000
BATCH = 500  # 1001 arguments per MSET: under the 1024-argument limit


def fill(server, pairs):
    """Write the (key, value) pairs through server: pipelined MSETs of BATCH
    counters; on a Redis Cluster, where an MSET over counters of several
    slots is refused (CROSSSLOT, docs/redis-store.md), pipelined SETs over
    four connections (each has one store operation in flight)."""
    cmds = ([["SET", k, v] for k, v in pairs] if STORE == "redis-cluster"
            else [["MSET", *(x for kv in pairs[i:i + BATCH] for x in kv)]
                  for i in range(0, len(pairs), BATCH)])

    def send(part):
        with server.raw(timeout=120) as c:
            for i in range(0, len(part), 1000):
                chunk = part[i:i + 1000]
                c.send(b"".join(c.encode(*cmd) for cmd in chunk))
                for _ in chunk:
                    assert c.read() == b"OK"
    parts = [cmds[i::4] for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(send, parts))


def scan_all(c, *opts, limit=100_000):
    """Walk SCAN from cursor 0 to 0 over RawResp c; returns the keys in the
    order they came (so repeats show) and the number of calls."""
    cursor, keys, calls = b"0", [], 0
    while True:
        reply = c.cmd("SCAN", cursor, *opts)
        assert isinstance(reply, list) and len(reply) == 2, reply
        cursor, batch = reply
        keys += batch
        calls += 1
        if cursor == b"0":
            return keys, calls
        assert calls < limit, "SCAN cursor never returned to 0"


def assert_exactly_once(got, want):
    dup = len(got) - len(set(got))
    assert dup == 0, f"SCAN returned {dup} keys more than once"
    missing, extra = want - set(got), set(got) - want
    assert not missing and not extra, (
        f"{len(missing)} missing (e.g. {sorted(missing)[:3]}), "
        f"{len(extra)} unexpected (e.g. {sorted(extra)[:3]})")


@pytest.fixture(scope="module")
def many(request, tmp_path_factory):
    """One server holding N counters scan:000000..scan:099999 (value = i),
    shared by this module's read-only tests; filling it is the slow part."""
    from conftest import EXTERNAL_ADDR, Tallyd, store_for_test
    if EXTERNAL_ADDR:
        pytest.skip("needs an empty database of its own")
    work = tmp_path_factory.mktemp("scan")
    store_for = store_for_test(request)
    d = Tallyd(work, fsync="everysec",
               **(store_for(str(work / "data")) if store_for else {}))
    d.start()
    try:
        # The fill takes a second or two (a cluster's SETs: longer).
        fill(d, [(f"scan:{i:06d}", i) for i in range(N)])
        yield d
    finally:
        d.cleanup()
        if store_for:
            store_for.release()
    d.check_sanitizers()


ALL = {f"scan:{i:06d}".encode() for i in range(N)}


def test_dbsize_counts_every_counter(many):
    with many.raw() as c:
        assert c.cmd("DBSIZE") == N


def test_scan_returns_every_key_exactly_once(many):
    with many.raw(timeout=60) as c:
        got, calls = scan_all(c, "COUNT", 1000)
    assert_exactly_once(got, ALL)
    # COUNT is a hint, but 1000 per call should not take 10x the calls.
    assert calls <= 10 * N // 1000, f"{calls} SCAN calls for COUNT 1000"


def test_scan_with_default_count_terminates(many):
    with many.raw(timeout=60) as c:
        got, _ = scan_all(c, "MATCH", "scan:00*")
    assert_exactly_once(got, {k for k in ALL if k.startswith(b"scan:00")})


@pytest.mark.parametrize("pattern,pick", [
    ("scan:01*", lambda i: 10_000 <= i < 20_000),
    ("scan:*7", lambda i: i % 10 == 7),
    ("scan:0?0000", lambda i: i % 10_000 == 0),
    ("scan:09999[0-4]", lambda i: 99_990 <= i <= 99_994),
    ("nothing:*", lambda i: False),
])
def test_scan_match_returns_exactly_the_matching_keys(many, pattern, pick):
    with many.raw(timeout=60) as c:
        got, _ = scan_all(c, "MATCH", pattern, "COUNT", 5000)
    assert_exactly_once(got, {f"scan:{i:06d}".encode() for i in range(N) if pick(i)})


def test_scan_type_string_is_accepted(many):
    with many.raw(timeout=60) as c:
        got, _ = scan_all(c, "MATCH", "scan:0000*", "TYPE", "string")
    assert_exactly_once(got, {f"scan:{i:06d}".encode() for i in range(100)})


def test_scan_with_bad_arguments(many):
    with many.raw() as c:
        assert c.cmd("SCAN", "abc") == RespError("ERR invalid cursor")
        assert c.cmd("SCAN", 0, "COUNT", 0) == RespError("ERR syntax error")
        assert c.cmd("SCAN", 0, "COUNT", "x") == RespError(
            "ERR value is not an integer or out of range")
        assert c.cmd("SCAN", 0, "BOGUS", 1) == RespError("ERR syntax error")


def test_keys_with_a_pattern_over_many_counters(many):
    with many.raw(timeout=60) as c:
        assert sorted(c.cmd("KEYS", "scan:0001*")) == [
            f"scan:{i:06d}".encode() for i in range(100, 200)]
        assert len(c.cmd("KEYS", "*")) == N


def test_mget_reads_back_what_mset_wrote(many):
    with many.raw() as c:
        keys = [f"scan:{i:06d}" for i in range(0, N, 997)]
        assert c.cmd("MGET", *keys) == [str(i).encode() for i in range(0, N, 997)]


def test_scan_sees_every_key_that_lives_through_the_walk(tallyd_factory):
    # Given counters that exist for the whole walk, and others that come and
    # go while it runs
    d = tallyd_factory()
    fill(d, [(f"stay:{i}", 1) for i in range(20_000)])
    with d.raw(timeout=60) as c:
        cursor, seen, churn = b"0", [], 0
        while True:
            cursor, batch = c.cmd("SCAN", cursor, "COUNT", 500)
            seen += batch
            # When keys are added and deleted between calls
            for j in range(50):
                c.cmd("INCR", f"churn:{churn}")
                c.cmd("DEL", f"churn:{churn - 25}")
                churn += 1
            if cursor == b"0":
                break
    # Then every key that lived through the walk came back at least once
    stay = {k for k in seen if k.startswith(b"stay:")}
    assert len(stay) == 20_000, f"{20_000 - len(stay)} long-lived keys missed"
