# SPDX-License-Identifier: BSD-3-Clause
"""Regressions the black-box suite's pass over --store redis:// found in the
Redis store (src/store/redis_lua.c), each named after what broke, on a
redis-server of the test's own (test_redis_store.py's RedisServer).  The
suite's own tests that found them run in that pass too (./test.sh).
"""
from datetime import datetime

import pytest
import redis
import requests

from test_redis_store import AOF_ALWAYS, over, redis_factory  # noqa: F401

pytestmark = pytest.mark.own_server

INT64_MAX = 2**63 - 1


def unix_ms(rfc3339):
    return round(datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
                 .timestamp() * 1000)


def test_an_expiry_reads_back_as_the_same_instant_every_time(
        tallyd_factory, redis_factory):
    # Given a counter with an expiry, set through tally
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    assert t.redis().set("w", 7, px=100000) is True
    stored = rs.client().execute_command("PEXPIRETIME", "tally:{w}")
    # When it is read many times (the store's clock moving on)
    s = requests.Session()
    shown = {unix_ms(s.get(t.url + "/v1/counters/w", timeout=10)
                     .json()["expires_at"]) for _ in range(60)}
    # Then every read shows the instant Redis keeps, not now + PTTL (which
    # moved by a millisecond from one read to the next)
    assert shown == {stored}


def test_an_overflowing_first_request_leaves_its_id_unused(tallyd_factory,
                                                          redis_factory):
    # Given a counter at the top of the int64 range
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    r = t.redis()
    r.set("top", INT64_MAX)
    # When the first request with an id would overflow
    with pytest.raises(redis.ResponseError, match="overflow"):
        r.execute_command("INCRBY.ONCE", "top", 1, "id-1")
    # Then nothing recorded the id, as on the engine: a request that fits
    # may use it, and is applied
    assert rs.client().exists("tally:{top}:id:id-1") == 0
    assert r.execute_command("INCRBY.ONCE", "top", -1, "id-1") == INT64_MAX - 1
    assert r.execute_command("INCRBY.ONCE", "top", -1, "id-1") == INT64_MAX - 1
    assert r.get("top") == str(INT64_MAX - 1)
