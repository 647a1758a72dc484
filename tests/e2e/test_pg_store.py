# SPDX-License-Identifier: BSD-3-Clause
"""The PostgreSQL store's own promises seen through tallyd (docs/postgresql.md).

Closest to src/store/pg*.c: many clients' increments of one counter share
transactions, an increment that would overflow fails alone, SCAN's integer
cursor walks every key once, TTLs come from the database's clock, INFO says
what a commit survives.  One throwaway PostgreSQL 15 for the module, started
by tests/store/pg_server.sh as the postgres user; a database per test.  The
big scenarios (crashes, instances, failover) are the test_pg_* files.
"""

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis

pytestmark = [pytest.mark.own_server]

SERVER = Path(__file__).resolve().parents[1] / "store" / "pg_server.sh"
PG_BIN = os.environ.get("TALLY_PG_BIN", "/usr/lib/postgresql/15/bin")
_dbs = itertools.count()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg():
    if not Path(PG_BIN, "initdb").exists():
        pytest.skip("PostgreSQL 15 is not installed (scripts/deps.sh test)")
    top = tempfile.mkdtemp(prefix="tally-pgstore.")
    os.chmod(top, 0o755)
    if os.geteuid() == 0:
        shutil.chown(top, "postgres", "postgres")
    data, port = os.path.join(top, "data"), _free_port()
    subprocess.run([str(SERVER), "start", data, str(port)], check=True)
    yield port
    subprocess.run([str(SERVER), "stop", data, "immediate"], check=False)
    shutil.rmtree(top, ignore_errors=True)


def psql(port, sql, db="postgres"):
    out = subprocess.run([f"{PG_BIN}/psql", "-X", "-q", "-A", "-t", "-v",
                          "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port),
                          "-U", "postgres", "-d", db, "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def on_pg(pg, tallyd_factory):
    """on_pg(**flags) -> a started tallyd on a fresh database."""
    def make(**flags):
        db = f"t{os.getpid()}_{next(_dbs)}"
        psql(pg, f"CREATE DATABASE {db}")
        d = tallyd_factory(store=f"postgresql://postgres@127.0.0.1:{pg}/{db}",
                           **flags)
        d.db = db
        return d
    return make


def store_info(r):
    return r.info("store")


def test_hot_counter_increments_share_transactions(on_pg, pg):
    # Given 50 clients, each incrementing one counter 40 times
    d = on_pg()
    before = store_info(d.redis())
    seen, lock = [], threading.Lock()

    def client():
        r = d.redis()
        mine = [r.incr("hot") for _ in range(40)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then every reply is a distinct step of one serial order, all counted
    assert sorted(seen) == list(range(1, 2001))
    assert psql(pg, "SELECT n FROM tally_counters WHERE k = 'hot'", d.db) == "2000"
    # And they went in far fewer transactions than increments
    after = store_info(d.redis())
    txns = after["store_pg_transactions"] - before["store_pg_transactions"]
    assert txns < 2000 / 3, (txns, after)


def test_increment_that_would_overflow_fails_alone(on_pg):
    d = on_pg()
    r = d.redis()
    r.set("big", 2**63 - 2)
    # When one pass holds two increments of the counter near the top and one
    # of another counter
    p = r.pipeline(transaction=False)
    p.incr("big")
    p.incr("big")
    p.incr("small")
    p.decrby("big", 5)
    out = p.execute(raise_on_error=False)
    # Then only the one that would leave int64 fails
    assert out[0] == 2**63 - 1
    assert isinstance(out[1], redis.ResponseError) and "overflow" in str(out[1])
    assert out[2] == 1
    assert out[3] == 2**63 - 6


def test_scan_cursor_walks_every_key_once(on_pg):
    d = on_pg()
    r = d.redis()
    for first in range(0, 600, 200):  # tallyd takes 1024 arguments at most
        r.mset({f"s:{i}": i for i in range(first, first + 200)})
    r.mset({f"other:{i}": i for i in range(50)})
    cursor, keys, pages = 0, [], 0
    while True:
        cursor, page = r.scan(cursor, match="s:*", count=50)
        assert isinstance(cursor, int) and 0 <= cursor < 2**63
        assert len(page) <= 51
        keys += page
        pages += 1
        if cursor == 0:
            break
    assert sorted(keys) == sorted(f"s:{i}" for i in range(600))
    assert pages >= 12
    assert sorted(r.scan_iter(match="other:*")) == sorted(f"other:{i}" for i in range(50))


def test_ttl_comes_from_the_database_clock(on_pg, pg):
    d = on_pg()
    r = d.redis()
    assert r.set("ttl", 5, px=400)
    left = r.pttl("ttl")
    assert 0 < left <= 400
    # The row holds an absolute time on the database's clock
    db_left = int(psql(pg, "SELECT expire_at - (extract(epoch FROM clock_timestamp())"
                           " * 1000)::bigint FROM tally_counters WHERE k = 'ttl'", d.db))
    assert 0 < db_left <= 400
    time.sleep(0.5)
    # Expired: gone for every read at once
    assert r.get("ttl") is None
    assert r.exists("ttl") == 0
    assert r.dbsize() == 0
    assert list(r.scan_iter()) == []
    # And an increment starts again from 0 without the old TTL
    assert r.incr("ttl") == 1
    assert r.ttl("ttl") == -1


@pytest.mark.parametrize("fsync,setting", [("always", "on"), ("everysec", "off"),
                                           ("no", "off")])
def test_info_says_what_a_commit_survives(on_pg, fsync, setting):
    d = on_pg(fsync=fsync)
    r = d.redis()
    r.incr("x")
    deadline = time.time() + 10
    while time.time() < deadline:
        info = store_info(r)
        if info.get("store_pg_synchronous_commit") == setting:
            break
        time.sleep(0.2)
    assert info["store"] == "postgresql"
    assert info["store_pg_synchronous_commit"] == setting
    assert info["store_pg_sync_standby_configured"] == 0
    assert "no synchronous standby configured" in info["store_durability"]
