# SPDX-License-Identifier: BSD-3-Clause
"""Pipelined look-ahead on the Redis store (src/server/conn.c conn_ahead,
cmd.h "Pipelined look-ahead"): while the first request of a client's
pipeline waits for Redis, the plain commands behind it (GET, INCR..., SET
key value, MGET, EXISTS, DEL, TTL) run too, so their calls reach Redis in
one write instead of a round trip each.  The replies must still be the
client's order and Redis's own answers, also around commands that cannot
go ahead (MULTI, PING, errors), and a retry Redis forces (NOSCRIPT) must
never apply behind a later call of the same pipeline.  Each test runs on a
redis-server of its own (test_redis_store.py's).
"""
import socket
import threading
import time

import pytest
import redis

from test_memcache import memcached, raw_until  # noqa: F401
from test_redis_store import AOF_ALWAYS, over, redis_factory  # noqa: F401

pytestmark = pytest.mark.own_server


def flushes(t):
    return int(t.redis().info()["store_redis_flushes"])


def test_a_pipeline_reaches_redis_in_a_few_writes(tallyd_factory,
                                                  redis_factory):
    # Given a tallyd on a Redis, and how many writes it has made so far
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    r = t.redis()
    assert r.set("base", 10) is True
    before = flushes(t)
    # When one client pipelines 300 increments and reads
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.incr("n")
        p.incrby("base", 2)
        p.get("n")
    got = p.execute()
    # Then every reply is the one its turn gives
    want = []
    for i in range(1, 101):
        want += [i, 10 + 2 * i, str(i)]
    assert got == want
    assert rs.client().get("tally:{n}") == "100"
    # and they went to Redis together, not one write per request (at most
    # 64 run ahead of the one that waits: five or six writes, plus the
    # INFO; one each would be 300)
    assert flushes(t) - before <= 20, flushes(t) - before


def test_pipelined_replies_are_redis_s_around_what_cannot_go_ahead(
        tallyd_factory, redis_factory):
    # Given a tallyd on a Redis, and that Redis itself as the reference
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)

    cmds = [("SET", "a", 1), ("INCR", "a"),
            ("INCRBY", "a", "notanumber"),  # refused at once
            ("INCR", "a"),
            ("INCRBY", "a"),  # wrong number of arguments
            ("GET", "a"), ("PING",), ("INCRBY", "a", 5),
            ("MULTI",), ("INCR", "a"), ("GET", "a"), ("EXEC",),
            ("MGET", "a", "nope", "a"), ("EXISTS", "a", "nope", "a"),
            ("EXPIRE", "a", 100), ("TTL", "a"), ("DEL", "a", "nope"),
            ("EXISTS", "a"), ("GET", "a"), ("DECR", "a"), ("DECRBY", "a", 3),
            ("SET", "a", 2**63 - 1), ("INCR", "a"),  # overflow, refused
            ("GET", "a"), ("UNLINK", "a"), ("PTTL", "a"), ("GET", "a")]

    def pipeline(port):
        """The replies as read off the wire, no client callbacks (QUEUED
        is not an integer)."""
        c = redis.Connection(port=port, decode_responses=True)
        c.send_packed_command(c.pack_commands([list(x) for x in cmds]))
        got = []
        for _ in cmds:
            try:
                got.append(c.read_response())
            except redis.ResponseError as e:
                got.append(("error", str(e)))
        c.disconnect()
        return got

    # When the same pipeline goes to both
    got = pipeline(t.port)
    want = pipeline(rs.port)
    # Then tally answers as Redis does, in the same order
    assert got == want


def test_a_retry_after_noscript_never_applies_behind_a_later_call(
        tallyd_factory, redis_factory):
    # Given a counter, and Redis's scripts flushed (a failover to a server
    # without them): tally's next SET runs a script Redis no longer has
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    r = t.redis()
    assert r.incr("k") == 1
    rs.client().script_flush()
    # When a pipeline sets it and then increments it (Redis's own INCRBY,
    # sent in the same write behind the SET's script)
    p = r.pipeline(transaction=False)
    p.set("k", 5)
    p.incr("k")
    got = p.execute(raise_on_error=False)
    # Then the SET, which Redis refused with NOSCRIPT after the INCR had
    # run, is not sent again to apply after it: it fails, nothing of it
    # applied, and what the client saw is what Redis holds
    assert isinstance(got[0], redis.ResponseError), got
    assert str(got[0]).startswith("TRYAGAIN"), got
    assert got[1] == 2
    assert r.get("k") == "2" and rs.client().get("tally:{k}") == "2"
    # and the scripts are loaded again for what comes next, pipelined too
    p = r.pipeline(transaction=False)
    p.set("k", 5)
    p.incr("k")
    assert p.execute() == [True, 6]


def test_a_client_leaving_with_its_pipeline_in_flight(tallyd_factory,
                                                      redis_factory):
    # Given a tallyd on a Redis
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    # When clients send long pipelines and leave without reading a reply
    cmd = b"*2\r\n$4\r\nINCR\r\n$4\r\ngone\r\n"
    for _ in range(20):
        c = socket.create_connection(("127.0.0.1", t.port))
        c.sendall(cmd * 500)
        c.close()
    # Then tallyd serves on, and what was applied applied whole
    r = t.redis()
    deadline = time.monotonic() + 10
    last = None
    while time.monotonic() < deadline:
        now = r.get("gone")
        if now == last:
            break
        last = now
        time.sleep(0.3)
    n = int(r.get("gone") or 0)
    assert 0 <= n <= 20 * 500
    assert r.incr("gone") == n + 1
    assert rs.client().get("tally:{gone}") == str(n + 1)
    assert t.proc.poll() is None


def test_pipelines_cut_by_a_redis_kill_answer_in_order_losing_nothing_acked(
        tallyd_factory, redis_factory):
    # Given a tallyd on a Redis that fsyncs every write, and clients that
    # keep pipelining increments of one counter through it
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    replies, stop = [], threading.Event()
    cmd = b"*2\r\n$4\r\nINCR\r\n$3\r\ncut\r\n"

    def client():
        c = redis.Connection(port=t.port, socket_timeout=30)
        while not stop.is_set():
            got = []
            c.send_packed_command([cmd * 50])
            for _ in range(50):
                try:
                    got.append(c.read_response())
                except redis.ResponseError as e:
                    got.append(e)
            replies.append(got)
        c.disconnect()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for th in threads:
        th.start()
    # When Redis is SIGKILLed under them and comes back
    time.sleep(0.5)
    rs.kill()
    time.sleep(0.3)
    rs.start()
    deadline = time.monotonic() + 10
    while t.redis().info("store")["store_connected"] != "yes":
        assert time.monotonic() < deadline, t.run_log()
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    for th in threads:
        th.join(30)
        assert not th.is_alive()
    # Then every pipeline's answers are in its order: its successes only
    # grow, and its failures are errors (never a success for what was
    # lost) ...
    acked, errors = [], 0
    for got in replies:
        values = [x for x in got if isinstance(x, int)]
        assert values == sorted(values) and len(set(values)) == len(values)
        acked += values
        errors += len(got) - len(values)
        for e in got:
            if not isinstance(e, int):
                assert "outcome unknown" in str(e) or "TRYAGAIN" in str(e), e
    assert acked and errors, (len(acked), errors)
    # ... no two clients were told the same value, and Redis still holds
    # at least every acknowledged increment
    assert len(set(acked)) == len(acked)
    assert int(rs.client().get("tally:{cut}")) >= max(acked)


def test_a_memcached_pipeline_reaches_redis_together_with_memcached_s_replies(
        tallyd_factory, redis_factory, memcached):  # noqa: F811
    # Given a tallyd on a Redis, and a real memcached as the reference
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    before = flushes(t)
    # When one memcached client pipelines increments among other commands
    # (a refused delta, a missing counter, decr's floor, noreply, a
    # storage command with its data block, version; no get right after a
    # decr that shortened the number, which memcached pads with spaces)
    data = (b"set m 0 0 1\r\n5\r\n" + b"incr m 1\r\n" * 100 +
            b"incr m abc\r\nincr nope 1\r\nget m nope\r\ndecr m 1000\r\n"
            b"incr m 7 noreply\r\nincr m 1\r\nset m 0 0 2\r\n40\r\n"
            b"decr m 1\r\nversion\r\nget m\r\n")
    end = b"VALUE m 0 2\r\n39\r\nEND\r\n"
    got = raw_until(t.mc_port, data, end)
    want = raw_until(memcached.port, data, end)
    # Then tally answers as memcached does (but its version), in order
    strip = [ln for ln in got.split(b"\r\n") if not ln.startswith(b"VERSION")]
    assert strip == [ln for ln in want.split(b"\r\n")
                     if not ln.startswith(b"VERSION")]
    assert b"\r\n105\r\n" in got and b"\r\n8\r\n" in got
    # and the increments went to Redis in a few writes, not one each
    assert flushes(t) - before <= 30, flushes(t) - before
