# SPDX-License-Identifier: BSD-3-Clause
"""RESP's GET and plain INCR/INCRBY/DECR/DECRBY on the Redis store run as
Redis's own GET and INCRBY, not as a script (src/store/redis_ops.c,
native_incr; docs/redis-store.md, Atomicity): the script cost Redis about
ten times the CPU of the command, which was most of the hop's cost
(bench/README.md).  Everything else keeps its script, and the answers are
the script's: an expiry kept, overflow, a value that is no counter.  Each
test runs on a redis-server of its own (test_redis_store.py's).
"""
import socket
import time
from datetime import datetime

import pytest
import redis
import requests

from test_cpu import cpu_seconds
from test_redis_store import AOF_ALWAYS, over, redis_factory  # noqa: F401

pytestmark = pytest.mark.own_server

INT64_MAX = 2**63 - 1
INT64_MIN = -2**63


def unix_ms(rfc3339):
    return round(datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
                 .timestamp() * 1000)


def calls(rs):
    """Redis's calls per command since the last CONFIG RESETSTAT."""
    return {k.removeprefix("cmdstat_"): v["calls"]
            for k, v in rs.client().info("commandstats").items()}


def test_resp_incr_and_get_are_redis_commands_not_scripts(tallyd_factory,
                                                          redis_factory):
    # Given a tallyd on a Redis whose command statistics start now
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    r = t.redis()
    assert r.incr("warm") == 1
    rs.client().config_resetstat()
    # When RESP clients increment and read
    for i in range(1, 11):
        assert r.incr("n") == i
    assert r.incrby("n", 5) == 15
    assert r.decr("n") == 14
    assert r.decrby("n", 4) == 10
    assert r.get("n") == "10"
    assert r.get("missing") is None
    # Then Redis ran its own INCRBY and GET, and no script for them
    seen = calls(rs)
    assert seen.get("incrby") == 13
    assert seen.get("get") == 2
    assert "evalsha" not in seen, seen
    # while what needs more than the value keeps its script
    assert r.incr("n") == 11 and r.ttl("n") == -1
    assert r.execute_command("INCRBY.ONCE", "n", 1, "id") == 12
    assert calls(rs).get("evalsha") == 2


def test_a_native_incr_keeps_the_expiry_and_http_still_shows_it(
        tallyd_factory, redis_factory):
    # Given a counter with an expiry
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    r = t.redis()
    assert r.set("w", 7, px=100000) is True
    stored = rs.client().execute_command("PEXPIRETIME", "tally:{w}")
    # When RESP increments it (Redis's own INCRBY)
    assert r.incr("w") == 8
    assert r.incrby("w", -10) == -2
    # Then the expiry is the one it had, as the script kept it
    assert rs.client().execute_command("PEXPIRETIME", "tally:{w}") == stored
    assert 0 < r.pttl("w") <= 100000
    # and HTTP, which shows the expiry, still reads it with the value
    s = requests.Session()
    got = s.post(t.url + "/v1/counters/w/increment", json={"by": 3},
                 timeout=10).json()
    assert got["value"] == 1 and unix_ms(got["expires_at"]) == stored
    got = s.get(t.url + "/v1/counters/w", timeout=10).json()
    assert got["value"] == 1 and unix_ms(got["expires_at"]) == stored


def test_a_native_incr_refuses_what_the_script_refused(tallyd_factory,
                                                       redis_factory):
    # Given counters at the ends of the int64 range, and keys under the
    # prefix that something else than tally wrote
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    r = t.redis()
    direct = rs.client()
    r.set("top", INT64_MAX)
    r.set("bottom", INT64_MIN)
    direct.set("tally:{text}", "abc")
    direct.set("tally:{frac}", "1.5")
    direct.hset("tally:{hash}", "f", "1")
    # When RESP increments past the ends: overflow, nothing changed
    for key, call in [("top", lambda: r.incr("top")),
                      ("top", lambda: r.incrby("top", INT64_MAX)),
                      ("bottom", lambda: r.decr("bottom")),
                      ("bottom", lambda: r.decrby("bottom", INT64_MAX))]:
        with pytest.raises(redis.ResponseError, match="overflow"):
            call()
    assert r.get("top") == str(INT64_MAX)
    assert r.get("bottom") == str(INT64_MIN)
    assert r.incrby("top", -INT64_MAX) == 0  # exact: never a double
    # And a value that is no counter is an error, as through the script
    # (the HTTP increment still runs it), never a number
    for key in ["text", "frac", "hash"]:
        with pytest.raises(redis.ResponseError) as native:
            r.incr(key)
        with pytest.raises(redis.ResponseError):
            r.get(key)
        http = requests.post(t.url + f"/v1/counters/{key}/increment",
                             json={"by": 1}, timeout=10)
        assert http.status_code >= 500
        if key != "hash":  # WRONGTYPE: Redis's own words, either way
            assert "something else than tally" in str(native.value)
    assert direct.get("tally:{text}") == "abc"
    assert direct.get("tally:{frac}") == "1.5"
    # (after which the keys tally owns still count exactly)
    assert r.incr("fresh") == 1


def test_a_pipeline_waiting_for_a_paused_redis_burns_no_cpu(tallyd_factory,
                                                            redis_factory):
    # Given a tallyd whose Redis stops answering for a while (CLIENT PAUSE),
    # and a client that pipelines: while its first INCR waits for the
    # store, its second is already in tallyd's socket.  A connection that
    # waits keeps its read event (src/server/conn.c, update_reading, to
    # save two epoll_ctl calls per request), so bytes that arrive meanwhile
    # must stop the reading, or the loop runs every pass until the answer.
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    r = t.redis()
    assert r.incr("p") == 1
    rs.client().execute_command("CLIENT", "PAUSE", 1500, "ALL")
    with socket.create_connection(("127.0.0.1", t.port), timeout=10) as c:
        c0, t0 = cpu_seconds(t.pid), time.monotonic()
        c.sendall(b"INCR p\r\n")
        time.sleep(0.2)  # read, and waiting for Redis, when the rest comes
        c.sendall(b"INCR p\r\nGET p\r\n")
        got = b""
        while got.count(b"\r\n") < 4:
            chunk = c.recv(100)
            assert chunk, got
            got += chunk
        c1, t1 = cpu_seconds(t.pid), time.monotonic()
    # Then the answers came in order once Redis was back
    assert got == b":2\r\n:3\r\n$1\r\n3\r\n"
    assert t1 - t0 >= 1.0
    # and tallyd slept meanwhile
    share = (c1 - c0) / (t1 - t0)
    assert share < 0.1, f"tallyd used {share:.0%} of a core waiting"
