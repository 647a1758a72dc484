# SPDX-License-Identifier: BSD-3-Clause
"""Exactly-once increments over RESP: INCRBY.ONCE key delta id.

A client whose request timed out retries it with the same idempotency id;
the server applies it once, whatever happened in between: repeats, a
SIGKILL and restart, pipelined requests cut off by the kill.  An id reused
for another request is refused and changes nothing.  See docs/resp.md,
"Exactly once".
"""

import subprocess
import threading
import time
import uuid

import pytest
import redis

from conftest import TALLYD, Closed, RawResp, RespError

REUSED = ("ERR idempotency id was already used for a different request; "
          "nothing was applied")


def new_id(name="req"):
    return f"{name}-{uuid.uuid4()}"


def test_same_id_sent_100_times_counts_once(tallyd, key):
    # Given a counter and one logical request with its id
    r = tallyd.redis()
    k, rid = key("hits"), new_id()
    r.set(k, 10)
    # When the request is sent 100 times
    replies = [r.execute_command("INCRBY.ONCE", k, 5, rid) for _ in range(100)]
    # Then every reply is the first one's and the counter moved once
    assert replies == [15] * 100
    assert r.get(k) == "15"
    # And a plain INCRBY in between does not change what the id answers
    r.incrby(k, 1)
    assert r.execute_command("INCRBY.ONCE", k, 5, rid) == 15
    assert r.execute_command("DECRBY.ONCE", k, -5, rid) == 15
    assert r.get(k) == "16"


def test_reused_id_with_another_delta_is_refused(tallyd, key):
    # Given an id already used for INCRBY.ONCE k 5
    r = tallyd.redis()
    k, rid = key(), new_id()
    assert r.execute_command("INCRBY.ONCE", k, 5, rid) == 5
    # When it comes back with another delta, key or command
    for args in (("INCRBY.ONCE", k, 6, rid), ("INCRBY.ONCE", key("other"), 5, rid),
                 ("SET.ONCE", k, 5, rid), ("DEL.ONCE", k, rid)):
        with pytest.raises(redis.ResponseError) as e:
            r.execute_command(*args)
        # Then each is refused with words that say why, and nothing changes
        assert str(e.value) == REUSED.removeprefix("ERR ")
    assert r.get(k) == "5"
    assert r.exists(key("other")) == 0
    # And the first request still replays
    assert r.execute_command("INCRBY.ONCE", k, 5, rid) == 5


def test_set_del_getdel_once(tallyd, key):
    r = tallyd.redis()
    k = key()
    s, d, g = new_id("s"), new_id("d"), new_id("g")
    assert r.execute_command("SET.ONCE", k, 7, s) in ("OK", True)
    r.set(k, 8)
    assert r.execute_command("SET.ONCE", k, 7, s) in ("OK", True)
    assert r.get(k) == "8"
    assert r.execute_command("GETDEL.ONCE", k, g) == "8"
    r.set(k, 9)
    assert r.execute_command("GETDEL.ONCE", k, g) == "8"
    assert r.execute_command("DEL.ONCE", k, d) == 1
    r.set(k, 10)
    assert r.execute_command("DEL.ONCE", k, d) == 1
    assert r.get(k) == "10"


@pytest.mark.own_server
def test_retry_after_sigkill_and_restart_is_a_replay(tallyd):
    # Given an acknowledged INCRBY.ONCE (so it is durable)
    r = tallyd.redis()
    rid = new_id()
    r.set("crash", 100)
    assert r.execute_command("INCRBY.ONCE", "crash", 7, rid) == 107
    # When the server is SIGKILLed and restarted
    tallyd.restart(crash=True)
    r = tallyd.redis()
    # Then 100 retries of the same request are answered as the first
    replies = [r.execute_command("INCRBY.ONCE", "crash", 7, rid)
               for _ in range(100)]
    assert replies == [107] * 100
    assert r.get("crash") == "107"
    # And the id is still refused for another request
    with pytest.raises(redis.ResponseError):
        r.execute_command("INCRBY.ONCE", "crash", 8, rid)
    info = r.info("persistence")
    assert info["tally_once_ids"] >= 1
    assert info["tally_once_replays"] >= 100


@pytest.mark.own_server
def test_requests_cut_off_by_a_kill_count_once_when_retried(tallyd):
    """Many pipelined INCRBY.ONCE with distinct ids, the server SIGKILLed
    while they are in flight: some were applied, some not, the client cannot
    tell which.  It retries all of them after the restart; each must count
    exactly once."""
    n, delta = 2000, 3
    ids = [new_id(str(i)) for i in range(n)]
    conn = RawResp(tallyd.host, tallyd.port, timeout=10)
    acked, errors = [], []

    def reader():
        try:
            while len(acked) < n:
                reply = conn.read()
                (errors if isinstance(reply, RespError) else acked).append(reply)
        except (Closed, OSError):
            pass

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        for i in range(0, n, 50):
            conn.send(b"".join(RawResp.encode("INCRBY.ONCE", "cut", delta, x)
                               for x in ids[i:i + 50]))
            if i == n // 2:
                break  # the second half is never sent before the kill
    except OSError:
        pass
    # Kill as soon as the first replies are in: the rest are in flight.
    deadline = time.monotonic() + 10
    while len(acked) < 20 and time.monotonic() < deadline:
        time.sleep(0.0005)
    tallyd.restart(crash=True)
    t.join(10)
    conn.close()
    assert errors == []
    assert len(acked) >= 20
    # Replies are in order and the counter only grew by delta each time.
    assert acked == [delta * (i + 1) for i in range(len(acked))]

    r = tallyd.redis()
    # Retry every id: the acknowledged ones are replays of their first reply
    for i, rid in enumerate(ids):
        v = r.execute_command("INCRBY.ONCE", "cut", delta, rid)
        if i < len(acked):
            assert v == acked[i]
    assert r.get("cut") == str(n * delta)
    # And once more, after a clean restart: nothing moves
    tallyd.restart()
    r = tallyd.redis()
    for rid in ids[::97]:
        r.execute_command("INCRBY.ONCE", "cut", delta, rid)
    assert r.get("cut") == str(n * delta)


def test_bad_ids_and_arguments(tallyd, key):
    r = tallyd.redis()
    k = key()
    with pytest.raises(redis.ResponseError, match="must be 1 to 256 bytes"):
        r.execute_command("INCRBY.ONCE", k, 1, "x" * 257)
    with pytest.raises(redis.ResponseError, match="must be 1 to 256 bytes"):
        r.execute_command("INCRBY.ONCE", k, 1, "")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        r.execute_command("INCRBY.ONCE", k, 1)
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.execute_command("INCRBY.ONCE", k, "x", new_id())
    assert r.execute_command("INCRBY.ONCE", k, 1, "x" * 256) == 1
    assert r.exists(k) == 1


def test_ids_are_forgotten_after_the_idempotency_ttl(tallyd_factory, key):
    # Given a server that keeps idempotency ids for one second
    srv = tallyd_factory(**{"idempotency-ttl": "1s"})
    r = srv.redis()
    k, rid = key("ttl"), new_id()
    assert r.execute_command("INCRBY.ONCE", k, 5, rid) == 5
    assert r.execute_command("INCRBY.ONCE", k, 5, rid) == 5
    # When the retention window has passed (across a restart too)
    time.sleep(1.5)
    srv.restart()
    r = srv.redis()
    # Then the id is unknown again: the same request is applied anew
    assert r.execute_command("INCRBY.ONCE", k, 5, rid) == 10
    assert r.execute_command("INCRBY.ONCE", k, 5, rid) == 10


@pytest.mark.parametrize("ttl", ["soon", "0", "-5s", "10y", ""])
def test_bad_idempotency_ttl_is_refused(tmp_path, ttl):
    # Flags are checked before anything is opened or bound
    p = subprocess.run([TALLYD, "--dir", str(tmp_path), "--idempotency-ttl", ttl],
                       capture_output=True, timeout=10)
    assert p.returncode == 2, p.stderr
    assert b"idempotency-ttl" in p.stderr
