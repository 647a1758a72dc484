# SPDX-License-Identifier: BSD-3-Clause
"""Counters that expire, over RESP (issue 9).

Every expiry command and option is run against tallyd and against a real
redis-server that this file starts, with the same arguments, and the
replies must be the same (PTTL within a few ms of each other), except the
documented integer-only difference.  Then what only tally promises: the
fixed-window rate limiter as rate-limiting libraries issue it, across
SIGKILL and restart (the window's count and remaining TTL survive, the
counter is gone after the window); expired counters never come back after a
crash; active expiry removes counters nobody reads; and the three scenarios
the service was asked for with a TTL far in the future, across SIGTERM and
SIGKILL.
"""

import time

import pytest
import redis

FAR = 10 * 365 * 24 * 3600  # ten years, in seconds
RESTARTS = [pytest.param(False, id="sigterm"), pytest.param(True, id="sigkill")]


def reply(r, args):
    try:
        return r.execute_command(*args)
    except redis.ResponseError as e:
        return ("error", str(e))


def same(cmd, a, b):
    """PTTL and PTTL-like replies may differ by the ms between the two
    servers' calls; everything else must be equal."""
    if (cmd.upper() == "PTTL" and isinstance(a, int) and isinstance(b, int)
            and a >= 0 and b >= 0):
        return abs(a - b) <= 200
    return a == b


def compare(tallyd, real_redis, seq):
    """Run seq (a list of argument lists; a callable argument is called
    once, so both servers get the same absolute time) on a fresh tally
    database and a flushed redis; assert the replies match one by one."""
    t = tallyd.redis()
    real_redis.flushall()
    for cmd in seq:
        args = [a() if callable(a) else a for a in cmd]
        got, want = reply(t, args), reply(real_redis, args)
        assert same(args[0], got, want), f"{args}: tally {got!r}, redis {want!r}"


def now_s(offset=0):
    return lambda: str(int(time.time()) + offset)


def now_ms(offset=0):
    return lambda: str(int(time.time() * 1000) + offset)


pytestmark = pytest.mark.own_server

SEQUENCES = {
    "set_ex_px_exat_pxat": [
        ["SET", "k", "1", "EX", "100"], ["TTL", "k"], ["PTTL", "k"],
        ["SET", "k", "2", "PX", "100000"], ["TTL", "k"], ["PTTL", "k"],
        ["SET", "k", "3", "EXAT", now_s(500)], ["EXPIRETIME", "k"],
        ["SET", "k", "4", "PXAT", now_ms(700000)], ["PEXPIRETIME", "k"],
        ["EXPIRETIME", "k"], ["GET", "k"],
    ],
    "set_clears_keepttl_keeps": [
        ["SET", "k", "1", "EX", "100"], ["SET", "k", "2", "KEEPTTL"],
        ["TTL", "k"], ["SET", "k", "3"], ["TTL", "k"],
        ["SET", "k", "4", "ex", "50", "ex", "60"], ["TTL", "k"],
        ["GETSET", "k", "5"], ["TTL", "k"],
        ["SET", "k", "6", "EX", "100"], ["MSET", "k", "7"], ["TTL", "k"],
    ],
    "set_conditions_with_expiry": [
        ["SET", "k", "1", "EX", "100", "NX"], ["TTL", "k"],
        ["SET", "k", "2", "EX", "200", "NX"], ["TTL", "k"],
        ["SET", "k", "3", "XX", "PX", "300000"], ["TTL", "k"],
        ["SET", "k", "4", "EX", "50", "GET"], ["TTL", "k"],
        ["SET", "n", "1", "XX", "EX", "10"], ["EXISTS", "n"],
        ["SET", "k", "5", "EXAT", "1"], ["EXISTS", "k"],
        ["SET", "k", "6", "PXAT", "1", "GET"], ["EXISTS", "k"],
    ],
    "set_bad_expiry": [
        ["SET", "k", "1", "EX", "0"], ["SET", "k", "1", "EX", "-1"],
        ["SET", "k", "1", "PX", "0"], ["SET", "k", "1", "EXAT", "0"],
        ["SET", "k", "1", "EX", "abc"], ["SET", "k", "1", "EX"],
        ["SET", "k", "1", "EX", "9999999999999999"],
        ["SET", "k", "1", "PX", "9223372036854775807"],
        ["SET", "k", "1", "KEEPTTL", "EX", "10"],
        ["SET", "k", "1", "EX", "10", "KEEPTTL"],
        ["SET", "k", "1", "EX", "10", "PX", "10"],
        ["SET", "k", "1", "GET", "EX", "0"], ["EXISTS", "k"],
    ],
    "setex_psetex": [
        ["SETEX", "k", "100", "5"], ["TTL", "k"], ["GET", "k"],
        ["PSETEX", "k", "100000", "6"], ["PTTL", "k"],
        ["SETEX", "k", "0", "5"], ["SETEX", "k", "-1", "5"],
        ["PSETEX", "k", "0", "5"], ["SETEX", "k", "abc", "5"],
        ["SETEX", "k", "9223372036854775807", "1"], ["SETEX", "k", "10"],
        ["GET", "k"],
    ],
    "getex": [
        ["GETEX", "k"], ["GETEX", "k", "EX", "0"], ["SET", "k", "9"],
        ["GETEX", "k"], ["TTL", "k"], ["GETEX", "k", "EX", "100"],
        ["TTL", "k"], ["GETEX", "k", "PERSIST"], ["TTL", "k"],
        ["GETEX", "k", "PX", "100000"], ["PTTL", "k"],
        ["GETEX", "k", "EXAT", now_s(1000)], ["EXPIRETIME", "k"],
        ["GETEX", "k", "PXAT", now_ms(2000000)], ["PEXPIRETIME", "k"],
        ["GETEX", "k", "EX", "0"], ["GETEX", "k", "EX", "abc"],
        ["GETEX", "k", "PERSIST", "EX", "10"], ["GETEX", "k", "foo"],
        ["GETEX", "k", "EX"], ["GETEX", "k", "EX", "10", "EX", "20"],
        ["TTL", "k"], ["GETEX", "k", "PERSIST", "PERSIST"], ["TTL", "k"],
        ["GETEX", "k", "EXAT", "1"], ["EXISTS", "k"],
    ],
    "expire_conditions": [
        ["EXPIRE", "k", "100"], ["SET", "k", "1"],
        ["EXPIRE", "k", "100", "XX"], ["EXPIRE", "k", "100", "GT"],
        ["EXPIRE", "k", "100", "NX"], ["TTL", "k"],
        ["EXPIRE", "k", "200", "NX"], ["EXPIRE", "k", "200", "XX"],
        ["TTL", "k"], ["EXPIRE", "k", "150", "GT"],
        ["EXPIRE", "k", "300", "gt"], ["TTL", "k"],
        ["EXPIRE", "k", "400", "LT"], ["EXPIRE", "k", "50", "lt"],
        ["TTL", "k"], ["EXPIRE", "k", "60", "XX", "GT"], ["TTL", "k"],
        ["EXPIRE", "k", "10", "NX", "NX"], ["EXPIRE", "k", "10", "NX", "XX"],
        ["EXPIRE", "k", "10", "GT", "LT"], ["EXPIRE", "k", "10", "foo"],
        ["EXPIRE", "k", "abc"], ["EXPIRE", "k", "abc", "foo"],
        ["EXPIRE", "k", "9999999999999999"],
        ["EXPIRE", "nokey", "99999999999999999"],
        ["PEXPIRE", "k", "9223372036854775000"],
        ["EXPIREAT", "k", "9223372036854775807"], ["TTL", "k"],
        ["PERSIST", "k"], ["EXPIRE", "k", "-5", "GT"], ["EXISTS", "k"],
        ["EXPIRE", "k", "-5", "LT"], ["EXISTS", "k"],
    ],
    "expire_absolute_and_past": [
        ["SET", "k", "1"], ["EXPIREAT", "k", now_s(1000)],
        ["EXPIRETIME", "k"], ["PEXPIREAT", "k", now_ms(99999)],
        ["PEXPIRETIME", "k"], ["PEXPIRE", "k", "50000"], ["PTTL", "k"],
        ["EXPIRE", "k", "0"], ["EXISTS", "k"], ["SET", "k", "1"],
        ["EXPIRE", "k", "-1"], ["EXISTS", "k"], ["SET", "k", "1"],
        ["EXPIREAT", "k", "1"], ["EXISTS", "k"], ["SET", "k", "1"],
        ["PEXPIREAT", "k", "-5"], ["EXISTS", "k"], ["SET", "k", "1"],
        ["PEXPIRE", "k", "0"], ["GET", "k"],
    ],
    "ttl_family_and_persist": [
        ["TTL", "k"], ["PTTL", "k"], ["EXPIRETIME", "k"], ["PEXPIRETIME", "k"],
        ["PERSIST", "k"], ["SET", "k", "1"], ["TTL", "k"], ["PTTL", "k"],
        ["EXPIRETIME", "k"], ["PEXPIRETIME", "k"], ["PERSIST", "k"],
        ["EXPIRE", "k", "100"], ["PERSIST", "k"], ["PERSIST", "k"],
        ["TTL", "k"], ["TTL"], ["PTTL", "a", "b"], ["PERSIST"],
        ["EXPIRE", "k"], ["GETEX"],
    ],
    "incr_family_keeps_ttl": [
        ["SET", "k", "5", "EX", "100"], ["INCR", "k"], ["INCRBY", "k", "5"],
        ["DECR", "k"], ["DECRBY", "k", "2"], ["TTL", "k"], ["GET", "k"],
        ["DEL", "k"], ["INCR", "k"], ["TTL", "k"],
    ],
    "rate_limiter_commands": [
        ["INCR", "rl"], ["EXPIRE", "rl", "60", "NX"], ["INCR", "rl"],
        ["EXPIRE", "rl", "60", "NX"], ["TTL", "rl"],
        ["SET", "w", "0", "EX", "60", "NX"], ["INCR", "w"],
        ["SET", "w", "0", "EX", "60", "NX"], ["INCR", "w"], ["TTL", "w"],
    ],
}


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_same_replies_as_redis(tallyd, real_redis, name):
    compare(tallyd, real_redis, SEQUENCES[name])


def test_expired_is_gone_everywhere_at_its_time(tallyd, real_redis):
    # Given counters with a short TTL, on both servers
    for r in (tallyd.redis(), real_redis):
        r.flushall() if r is real_redis else None
        r.set("short", 1, px=300)
        r.set("long", 2, ex=100)
    # When the TTL has passed
    time.sleep(0.45)
    # Then every read agrees the counter is gone
    for r in (tallyd.redis(), real_redis):
        assert r.get("short") is None
        assert r.exists("short") == 0
        assert r.ttl("short") == -2
        assert r.dbsize() == 1
        assert r.keys("*") == ["long"]
        assert r.mget("short", "long") == [None, "2"]
        assert r.scan(0, count=100)[1] == ["long"]
    info = tallyd.redis().info("keyspace")["db0"]
    assert info["keys"] == 1 and info["expires"] == 1
    assert 98000 <= info["avg_ttl"] <= 100000


def test_values_must_be_integers_the_documented_difference(tallyd, real_redis):
    # redis stores any string; tally refuses a non-integer value, as for SET.
    real_redis.flushall()
    assert real_redis.psetex("k", 100000, "abc") is True
    with pytest.raises(redis.ResponseError, match="integer"):
        tallyd.redis().psetex("k", 100000, "abc")
    with pytest.raises(redis.ResponseError, match="integer"):
        tallyd.redis().setex("k", 100, "abc")


def test_expiry_beyond_the_year_10889_is_refused(tallyd):
    # Documented: redis accepts it, tally's expiries end at Unix ms 2^48-1.
    r = tallyd.redis()
    r.set("k", 1)
    with pytest.raises(redis.ResponseError,
                       match="invalid expire time in 'pexpireat' command"):
        r.pexpireat("k", 2**48)
    assert r.pexpireat("k", 2**48 - 1) == 1
    assert r.pexpiretime("k") == 2**48 - 1


def test_active_expiry_removes_counters_nobody_reads(tallyd):
    # Given 2000 counters with a 100 ms TTL that nobody reads again
    r = tallyd.redis()
    p = r.pipeline(transaction=False)
    for i in range(2000):
        p.set(f"gone:{i}", i, px=100)
    p.set("stays", 1)
    p.execute()
    # When the server's tick has had a second
    deadline = time.time() + 5
    while time.time() < deadline:
        if r.info("stats")["expired_keys"] >= 2000:
            break
        time.sleep(0.1)
    # Then they were removed without being read (INFO stats does not purge)
    assert r.info("stats")["expired_keys"] == 2000
    assert r.dbsize() == 1


@pytest.mark.parametrize("crash", RESTARTS)
def test_rate_limiter_incr_then_expire_nx_across_restart(tallyd, crash):
    # Given a 2 s window counted with INCR + EXPIRE NX, pipelined
    r = tallyd.redis()
    for want in (1, 2, 3):
        p = r.pipeline(transaction=False)
        p.incr("rl:ip")
        p.expire("rl:ip", 2, nx=True)
        assert p.execute() == [want, want == 1]
    left = r.pttl("rl:ip")
    assert 0 < left <= 2000
    # When the server is killed (or stopped) and restarted
    tallyd.restart(crash=crash)
    r = tallyd.redis()
    # Then the window's count and its remaining TTL survive
    assert r.get("rl:ip") == "3"
    after = r.pttl("rl:ip")
    assert 0 < after <= left, (left, after)
    # And after the window the counter is gone: a new window starts at 1
    time.sleep(after / 1000 + 0.05)
    assert r.get("rl:ip") is None
    p = r.pipeline(transaction=False)
    p.incr("rl:ip")
    p.expire("rl:ip", 2, nx=True)
    assert p.execute() == [1, True]


@pytest.mark.parametrize("crash", RESTARTS)
def test_rate_limiter_set_nx_ex_then_incr_across_restart(tallyd, crash):
    # Given a 2 s window opened with SET k 0 EX 2 NX, then INCRs
    r = tallyd.redis()
    assert r.set("rl:user", 0, ex=2, nx=True) is True
    assert r.incr("rl:user") == 1
    assert r.set("rl:user", 0, ex=2, nx=True) is None  # window already open
    assert r.incr("rl:user") == 2
    left = r.pttl("rl:user")
    # When the server restarts
    tallyd.restart(crash=crash)
    r = tallyd.redis()
    # Then count and remaining TTL survive, and the window closes on time
    assert r.get("rl:user") == "2"
    after = r.pttl("rl:user")
    assert 0 < after <= left, (left, after)
    time.sleep(after / 1000 + 0.05)
    assert r.exists("rl:user") == 0
    assert r.set("rl:user", 0, ex=2, nx=True) is True


def test_counter_that_expired_while_down_does_not_come_back(tallyd):
    # Given a counter with 1 s left and one without a TTL, durable
    r = tallyd.redis()
    r.set("soon", 5, px=1000)
    r.set("plain", 1)
    # When the server is killed and stays down past the expiry
    tallyd.kill()
    time.sleep(1.2)
    tallyd.start()
    r = tallyd.redis()
    # Then recovery does not bring it back, by any read
    assert r.get("soon") is None
    assert r.dbsize() == 1
    assert r.keys("*") == ["plain"]
    assert r.info("keyspace")["db0"]["expires"] == 0


def test_removed_by_active_expiry_stays_gone_after_a_crash(tallyd):
    # Given a counter removed by active expiry after its 200 ms TTL
    r = tallyd.redis()
    r.set("short", 1, px=200)
    deadline = time.time() + 5
    while r.info("stats")["expired_keys"] < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert r.info("stats")["expired_keys"] == 1
    # When the server crashes and restarts
    tallyd.restart(crash=True)
    # Then it is still gone (its record holds a time in the past)
    assert tallyd.redis().get("short") is None
    assert tallyd.redis().dbsize() == 0


# ---- The three scenarios, with a TTL far in the future -----------------------

@pytest.mark.parametrize("crash", RESTARTS)
def test_counter_at_10_with_far_ttl_reads_10_after_restart(tallyd, crash):
    # Given a counter set to 10 that expires in ten years
    r = tallyd.redis()
    assert r.set("visits", 10, ex=FAR) is True
    # When the server restarts
    tallyd.restart(crash=crash)
    # Then it reads 10 and keeps its expiry
    r = tallyd.redis()
    assert r.get("visits") == "10"
    assert FAR - 60 <= r.ttl("visits") <= FAR


@pytest.mark.parametrize("crash", RESTARTS)
def test_counter_10_with_far_ttl_incremented_reads_11_after_restart(
        tallyd, crash):
    r = tallyd.redis()
    r.set("visits", 10, ex=FAR)
    assert r.incr("visits") == 11
    tallyd.restart(crash=crash)
    r = tallyd.redis()
    assert r.get("visits") == "11"
    assert FAR - 60 <= r.ttl("visits") <= FAR


@pytest.mark.engine_files("the engine's snapshots (a SAVE in between)")
@pytest.mark.parametrize("crash", RESTARTS)
def test_counter_10_with_far_ttl_incremented_five_times_reads_15(tallyd, crash):
    r = tallyd.redis()
    r.set("visits", 10, ex=FAR)
    assert [r.incr("visits") for _ in range(5)] == [11, 12, 13, 14, 15]
    # A snapshot in between: the snapshot carries the expiry too
    assert r.save() is True
    tallyd.restart(crash=crash)
    r = tallyd.redis()
    assert r.get("visits") == "15"
    assert FAR - 60 <= r.ttl("visits") <= FAR
