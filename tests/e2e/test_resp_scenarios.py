# SPDX-License-Identifier: BSD-3-Clause
"""The service's three promises over the Redis protocol, across a graceful
restart (SIGTERM) and a crash (SIGKILL); plus the lifecycle around them:
snapshots then restart, SHUTDOWN, the single-owner lock on the data
directory and the recovery line after a crash."""

import re
import signal

import pytest

pytestmark = pytest.mark.own_server

RESTARTS = [pytest.param(False, id="sigterm"), pytest.param(True, id="sigkill")]


@pytest.mark.parametrize("crash", RESTARTS)
def test_counter_at_10_reads_10_after_restart(tallyd, crash):
    # Given a counter set to 10
    assert tallyd.redis().set("visits", 10) is True
    # When the server restarts
    tallyd.restart(crash=crash)
    # Then it reads 10
    assert tallyd.redis().get("visits") == "10"


@pytest.mark.parametrize("crash", RESTARTS)
def test_counter_10_incremented_reads_11_after_restart(tallyd, crash):
    # Given a counter at 10, incremented once
    r = tallyd.redis()
    r.set("visits", 10)
    assert r.incr("visits") == 11
    # When the server restarts
    tallyd.restart(crash=crash)
    # Then it reads 11
    assert tallyd.redis().get("visits") == "11"


@pytest.mark.parametrize("crash", RESTARTS)
def test_counter_10_incremented_five_times_reads_15_after_restart(tallyd, crash):
    # Given a counter at 10, incremented in five steps
    r = tallyd.redis()
    r.set("visits", 10)
    assert [r.incr("visits") for _ in range(5)] == [11, 12, 13, 14, 15]
    # When the server restarts
    tallyd.restart(crash=crash)
    # Then it reads 15
    assert tallyd.redis().get("visits") == "15"


@pytest.mark.engine_files("the engine's snapshots")
@pytest.mark.parametrize("crash", RESTARTS)
def test_save_then_restart_keeps_counters(tallyd, crash):
    # Given counters written before and after a SAVE
    r = tallyd.redis()
    r.mset({"a": 1, "b": 2})
    assert r.save() is True
    r.incrby("a", 10)
    r.set("c", -3)
    # When the server restarts
    tallyd.restart(crash=crash)
    # Then snapshot plus log give back every counter
    assert tallyd.redis().mget("a", "b", "c", "missing") == ["11", "2", "-3", None]


@pytest.mark.engine_files("the engine's snapshots")
def test_bgsave_then_crash_keeps_counters(tallyd):
    # Given counters, a background snapshot, and more changes after it
    r = tallyd.redis()
    r.mset({f"k{i}": i for i in range(500)})   # 1001 args: under the limit
    with tallyd.raw() as c:
        assert c.cmd("BGSAVE") == b"Background saving started"
    r.incr("k0")
    r.delete("k1")
    # When the server is killed (the snapshot may or may not be finished)
    tallyd.restart(crash=True)
    # Then everything acknowledged is there
    r = tallyd.redis()
    assert r.dbsize() == 499
    assert r.get("k0") == "1"
    assert r.get("k1") is None
    assert r.get("k499") == "499"


@pytest.mark.engine_files("the engine's snapshots")
def test_automatic_snapshots_then_crash_keep_counters(tallyd_factory):
    # Given a server that snapshots after every few KiB of log
    d = tallyd_factory(snapshot_min_log=4096)
    r = d.redis()
    # When thousands of increments go through it (several snapshots) and it
    # is killed
    p = r.pipeline(transaction=False)
    for i in range(3000):
        p.incr(f"c{i % 50}")
    p.execute()
    d.restart(crash=True)
    # Then every counter holds what was acknowledged
    assert d.redis().mget([f"c{i}" for i in range(50)]) == ["60"] * 50


def test_shutdown_command_stops_gracefully_and_keeps_data(tallyd):
    # Given a counter
    r = tallyd.redis()
    r.set("k", 42)
    # When a client sends SHUTDOWN
    with tallyd.raw() as c:
        c.send(c.encode("SHUTDOWN"))
        assert c.is_closed(10), "SHUTDOWN did not close the connection"
    # Then the server exits with status 0 and the counter survives
    assert tallyd.wait_exit() == 0, tallyd.run_log()
    tallyd.start()
    assert tallyd.redis().get("k") == "42"


@pytest.mark.engine_files("the lock on the engine's data directory")
def test_second_tallyd_on_same_dir_exits_1_with_clear_message(tallyd, tallyd_factory):
    # Given a running server
    tallyd.redis().set("k", 1)
    # When a second one is started on the same data directory
    second = tallyd_factory(dir=tallyd.dir, start=False).spawn()
    # Then it exits at once with status 1 and says why
    assert second.wait_exit(10) == 1
    msg = second.log().lower()
    assert re.search(r"lock|already|another|in use|running", msg), msg
    # And the first one goes on serving
    assert tallyd.redis().incr("k") == 2


@pytest.mark.engine_files("the engine's log recovery")
def test_restart_after_sigkill_prints_recovery_line(tallyd):
    # Given a server with some counters
    tallyd.redis().mset({"a": 1, "b": 2})
    # When it is killed and started again
    tallyd.restart(crash=True)
    # Then its log says what recovery found: that it recovered, and the two
    # counters it holds (the ready line, e.g. "ready: 2 counters, recovered
    # 1 log records in 2.6 ms ...")
    log = tallyd.run_log()
    assert re.search(r"recover", log, re.I), log
    assert re.search(r"\b2 counters\b", log), log
    assert tallyd.redis().dbsize() == 2


def test_sigint_is_graceful_and_keeps_data(tallyd):
    # Given a counter
    tallyd.redis().set("k", 5)
    # When the server gets SIGINT (Ctrl-C)
    tallyd.proc.send_signal(signal.SIGINT)
    # Then it exits 0 and the counter survives
    assert tallyd.wait_exit() == 0, tallyd.run_log()
    tallyd.start()
    assert tallyd.redis().get("k") == "5"
