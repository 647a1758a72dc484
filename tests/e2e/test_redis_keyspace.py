# SPDX-License-Identifier: BSD-3-Clause
"""tallyd over a Redis that holds other data too: DBSIZE and FLUSHALL walk
tally's keys in bounded SCAN pages (one short script per page, so Redis
keeps serving everyone else) and touch nothing outside tally's prefix; and
--idempotency-ttl is the PX of the id records (docs/redis-store.md).  Each
test starts its own redis-server (test_redis_store.py's RedisServer).
"""
import time

import pytest
import requests

from test_redis_store import AOF_ALWAYS, over, redis_factory  # noqa: F401

pytestmark = pytest.mark.own_server


def evalsha_calls(direct):
    return direct.info("commandstats").get("cmdstat_evalsha",
                                           {}).get("calls", 0)


def test_dbsize_and_flushall_walk_scan_pages_and_leave_other_data_alone(
        tallyd_factory, redis_factory):
    # Given a Redis shared with another application's 60,000 keys
    rs = redis_factory(*AOF_ALWAYS, "--enable-debug-command", "yes")
    direct = rs.client()
    direct.execute_command("DEBUG", "POPULATE", 60000, "other")
    direct.set("tally:x", "not a counter: no hash tag")
    direct.set("tallyx{y}", "another prefix")
    t = over(tallyd_factory, rs, allow_flush=True)
    r = t.redis()
    # and 3,000 counters of tally's, 500 of them expiring, one with an id
    p = r.pipeline(transaction=False)
    for i in range(3000):
        p.set(f"c{i}", i, ex=1000 if i < 500 else None)
    p.execute()
    assert r.execute_command("INCRBY.ONCE", "c0", 1, "id-1") == 1
    # When DBSIZE counts them
    before = evalsha_calls(direct)
    assert r.dbsize() == 3000
    # Then it took one short script per page of about 1,000 of the 63,000
    # keys, not one script over the whole keyspace
    pages = evalsha_calls(direct) - before
    assert pages >= 30, pages
    # When FLUSHALL empties tally
    before = evalsha_calls(direct)
    assert r.flushall() is True
    assert evalsha_calls(direct) - before >= 30
    # Then every counter is gone, and nothing else is
    assert r.dbsize() == 0 and r.get("c1") is None
    assert direct.dbsize() == 60000 + 2 + 1  # theirs, the two, c0's id
    assert direct.get("other:59999") == "value:59999"
    assert direct.get("tally:x") and direct.get("tallyx{y}")
    assert direct.exists("tally:{c0}:id:id-1") == 1


def test_idempotency_ttl_is_the_px_of_the_id_records(tallyd_factory,
                                                     redis_factory):
    # Given a tallyd that keeps ids for 2 s
    rs = redis_factory(*AOF_ALWAYS)
    direct = rs.client()
    t = over(tallyd_factory, rs, idempotency_ttl="2s")
    r = t.redis()
    # When an INCRBY.ONCE and an Idempotency-Key request are applied
    assert r.execute_command("INCRBY.ONCE", "k", 5, "id-1") == 5
    h = requests.post(t.url + "/v1/counters/h/increment", json={"by": 2},
                      headers={"Idempotency-Key": "key-1"}, timeout=10)
    assert h.status_code == 200
    # Then their records expire on Redis after 2 s, not 24 h
    assert 0 < direct.pttl("tally:{k}:id:id-1") <= 2000
    records = [k for k in direct.keys("tally:{h}:id:*")]
    assert len(records) == 1 and 0 < direct.pttl(records[0]) <= 2000
    # and within them a retry is a replay; after them it is new
    assert r.execute_command("INCRBY.ONCE", "k", 5, "id-1") == 5
    time.sleep(2.2)
    assert direct.exists("tally:{k}:id:id-1") == 0
    assert r.execute_command("INCRBY.ONCE", "k", 5, "id-1") == 10
