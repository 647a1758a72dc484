# SPDX-License-Identifier: BSD-3-Clause
"""Exactly-once changes that carry an expiry, over RESP (issue 9):
INCRBY.ONCE / DECRBY.ONCE key n id [EX s|PX ms|EXAT t|PXAT t] [NX] and
SET.ONCE key n id [EX|PX|EXAT|PXAT|KEEPTTL].

A retry with the same id replays the first answer and moves neither the
counter nor its expiry, also after a SIGKILL and restart; a retry with
another expiry is a different request and is refused.  NX is the fixed-window
rate limiter: the expiry is set only by the increment that creates the
counter.  See docs/resp.md, "Exactly once".
"""

import time
import uuid

import pytest
import redis

from test_http_util import TIMEOUT, counter_url, session

REPLAYED = "Idempotent-Replayed"

REUSED = ("idempotency id was already used for a different request; "
          "nothing was applied")


def new_id(name="req"):
    return f"{name}-{uuid.uuid4()}"


def once(r, *args):
    return r.execute_command(*args)


def test_retry_with_ex_replays_and_does_not_move_the_ttl(tallyd, key):
    # Given an INCRBY.ONCE with EX that created its counter
    r = tallyd.redis()
    k, rid = key("ex"), new_id()
    assert once(r, "INCRBY.ONCE", k, 5, rid, "EX", 100) == 5
    at = r.pexpiretime(k)
    assert 99_000 <= r.pttl(k) <= 100_000
    # When the same request is retried later, after another change
    time.sleep(0.3)
    r.incrby(k, 1)
    replies = [once(r, "INCRBY.ONCE", k, 5, rid, "EX", 100) for _ in range(20)]
    # Then each retry gets the first answer, and neither the value nor the
    # expiry moved (a fresh EX 100 would be 300 ms later)
    assert replies == [5] * 20
    assert r.get(k) == "6"
    assert r.pexpiretime(k) == at
    # And PX with the same time is the same request
    assert once(r, "DECRBY.ONCE", k, -5, rid, "PX", 100_000) == 5


def test_nx_sets_the_ttl_only_when_the_increment_creates(tallyd, key):
    # Given a window counter created by INCRBY.ONCE ... EX 100 NX
    r = tallyd.redis()
    k = key("window")
    assert once(r, "INCRBY.ONCE", k, 1, new_id(), "EX", 100, "NX") == 1
    at = r.pexpiretime(k)
    assert at > 0
    # When later hits in the window come with their own ids
    time.sleep(0.3)
    for i in range(2, 6):
        assert once(r, "INCRBY.ONCE", k, 1, new_id(), "NX", "EX", 100) == i
    # Then the window's end stays where the first hit put it
    assert r.pexpiretime(k) == at
    # And on a counter that exists without an expiry NX sets none
    r.persist(k)
    assert once(r, "INCRBY.ONCE", k, 1, new_id(), "EX", 100, "NX") == 6
    assert r.ttl(k) == -1
    # While without NX the expiry is set, and without options kept
    assert once(r, "INCRBY.ONCE", k, 1, new_id(), "PX", 50_000) == 7
    at = r.pexpiretime(k)
    assert 49_000 <= r.pttl(k) <= 50_000
    assert once(r, "INCRBY.ONCE", k, 1, new_id()) == 8
    assert r.pexpiretime(k) == at


def test_nx_window_ends_and_the_next_hit_opens_a_new_one(tallyd, key):
    r = tallyd.redis()
    k = key("short")
    assert once(r, "INCRBY.ONCE", k, 1, new_id(), "PX", 800, "NX") == 1
    assert once(r, "INCRBY.ONCE", k, 1, new_id(), "PX", 800, "NX") == 2
    time.sleep(1.0)
    assert r.exists(k) == 0
    assert once(r, "INCRBY.ONCE", k, 1, new_id(), "PX", 60_000, "NX") == 1
    assert r.pttl(k) > 50_000


@pytest.mark.parametrize("other", [
    ("EX", 200), ("PX", 100_001), ("EXAT", 4_000_000_000), (),
    ("EX", 100, "NX"),
])
def test_retry_with_another_ttl_is_refused_as_reuse(tallyd, key, other):
    # Given an id used for INCRBY.ONCE k 5 id EX 100
    r = tallyd.redis()
    k, rid = key(), new_id()
    assert once(r, "INCRBY.ONCE", k, 5, rid, "EX", 100) == 5
    at = r.pexpiretime(k)
    # When it comes back with another expiry (or none, or NX added)
    with pytest.raises(redis.ResponseError) as e:
        once(r, "INCRBY.ONCE", k, 5, rid, *other)
    # Then it is refused as reuse and nothing moved
    assert str(e.value) == REUSED
    assert r.get(k) == "5"
    assert r.pexpiretime(k) == at
    # And the first request still replays
    assert once(r, "INCRBY.ONCE", k, 5, rid, "EX", 100) == 5


def test_set_once_with_px_and_keepttl(tallyd, key):
    r = tallyd.redis()
    k, s1, s2 = key(), new_id("s1"), new_id("s2")
    # SET.ONCE with PX sets the expiry; its retry applies nothing
    assert once(r, "SET.ONCE", k, 7, s1, "PX", 20_000) in ("OK", True)
    at = r.pexpiretime(k)
    assert 19_000 <= r.pttl(k) <= 20_000
    r.set(k, 8, keepttl=True)
    time.sleep(0.2)
    assert once(r, "SET.ONCE", k, 7, s1, "PX", 20_000) in ("OK", True)
    assert r.get(k) == "8"
    assert r.pexpiretime(k) == at
    with pytest.raises(redis.ResponseError, match=REUSED):
        once(r, "SET.ONCE", k, 7, s1, "PX", 30_000)
    # KEEPTTL keeps it; no option clears it, as SET does
    assert once(r, "SET.ONCE", k, 9, s2, "KEEPTTL") in ("OK", True)
    assert r.get(k) == "9" and r.pexpiretime(k) == at
    assert once(r, "SET.ONCE", k, 10, new_id()) in ("OK", True)
    assert r.ttl(k) == -1
    # An expiry that has gone by still expires the counter
    assert once(r, "SET.ONCE", k, 1, new_id(), "PX", 200) in ("OK", True)
    time.sleep(0.4)
    assert r.exists(k) == 0


@pytest.mark.own_server
def test_replay_with_ttl_survives_sigkill_and_restart(tallyd):
    # Given acknowledged .ONCE requests with expiries (so they are durable)
    r = tallyd.redis()
    inc, setid, win = new_id("i"), new_id("s"), new_id("w")
    assert once(r, "INCRBY.ONCE", "c", 7, inc, "EX", 1000) == 7
    assert once(r, "INCRBY.ONCE", "w", 1, win, "EX", 1000, "NX") == 1
    assert once(r, "SET.ONCE", "s", 3, setid, "PX", 900_000) in ("OK", True)
    ats = {k: r.pexpiretime(k) for k in ("c", "w", "s")}
    # When the server is SIGKILLed and restarted a while later
    time.sleep(0.3)
    tallyd.restart(crash=True)
    r = tallyd.redis()
    # Then each retry replays its first answer and nothing moves
    for _ in range(10):
        assert once(r, "INCRBY.ONCE", "c", 7, inc, "EX", 1000) == 7
        assert once(r, "INCRBY.ONCE", "w", 1, win, "EX", 1000, "NX") == 1
        assert once(r, "SET.ONCE", "s", 3, setid, "PX", 900_000) in ("OK", True)
    assert (r.get("c"), r.get("w"), r.get("s")) == ("7", "1", "3")
    assert {k: r.pexpiretime(k) for k in ("c", "w", "s")} == ats
    # And another expiry with the same id is still reuse
    with pytest.raises(redis.ResponseError, match=REUSED):
        once(r, "INCRBY.ONCE", "c", 7, inc, "EX", 999)


@pytest.mark.parametrize("args,err", [
    (("INCRBY.ONCE", 1, "EX"), "syntax error"),
    (("INCRBY.ONCE", 1, "NX"), "syntax error"),
    (("INCRBY.ONCE", 1, "EX", 10, "PX", 10), "syntax error"),
    (("INCRBY.ONCE", 1, "KEEPTTL"), "syntax error"),
    (("INCRBY.ONCE", 1, "XX", "EX", 10), "syntax error"),
    (("DECRBY.ONCE", 1, "GET"), "syntax error"),
    (("SET.ONCE", 1, "NX"), "syntax error"),
    (("SET.ONCE", 1, "EX", 10, "KEEPTTL"), "syntax error"),
    (("INCRBY.ONCE", 1, "EX", 0), "invalid expire time in 'incrby.once' command"),
    (("INCRBY.ONCE", 1, "PX", -1, "NX"),
     "invalid expire time in 'incrby.once' command"),
    (("DECRBY.ONCE", 1, "EXAT", 0), "invalid expire time in 'decrby.once' command"),
    (("SET.ONCE", 1, "PX", 0), "invalid expire time in 'set.once' command"),
    (("INCRBY.ONCE", 1, "EX", "soon"), "value is not an integer or out of range"),
])
def test_bad_options_are_refused_with_redis_words(tallyd, key, args, err):
    r = tallyd.redis()
    k, rid = key(), new_id()
    cmd, n, *opts = args
    with pytest.raises(redis.ResponseError) as e:
        once(r, cmd, k, n, rid, *opts)
    assert str(e.value) == err
    # Nothing was created and the id was not used up
    assert r.exists(k) == 0
    assert once(r, "INCRBY.ONCE", k, 2, rid) == 2


def test_ttl_requests_are_one_request_across_resp_and_http(tallyd, key):
    """HTTP's ttl_ms / ttl_if_new are RESP's PX / NX in the one id table."""
    s, r = session(tallyd), tallyd.redis()
    k, i, w = key(), new_id("i"), new_id("w")
    assert once(r, "INCRBY.ONCE", k, 5, i, "PX", 60_000) == 5
    rep = s.post(counter_url(tallyd, k, "increment"),
                 json={"by": 5, "ttl_ms": 60_000},
                 headers={"Idempotency-Key": i}, timeout=TIMEOUT)
    assert rep.status_code == 200 and rep.headers.get(REPLAYED) == "true"
    rep = s.post(counter_url(tallyd, k, "increment"),
                 json={"by": 1, "ttl_ms": 60_000, "ttl_if_new": True},
                 headers={"Idempotency-Key": w}, timeout=TIMEOUT)
    assert rep.status_code == 200 and REPLAYED not in rep.headers
    assert once(r, "INCRBY.ONCE", k, 1, w, "PX", 60_000, "NX") == 6
    with pytest.raises(redis.ResponseError, match=REUSED):
        once(r, "INCRBY.ONCE", k, 1, w, "PX", 60_000)
    assert r.get(k) == "6"
