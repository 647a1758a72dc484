# SPDX-License-Identifier: BSD-3-Clause
"""Store failures seen from the clients of a tallyd on PostgreSQL.

Idempotency: an id recorded before PostgreSQL crashes (or restarts) is
recognised after it, over RESP (.ONCE) and HTTP (Idempotency-Key), also for
ids whose outcome a client never learnt.  PostgreSQL down: every front end
answers fast with a clear error (RESP -TRYAGAIN or -ERR, HTTP 503
problem+json, memcached SERVER_ERROR), /readyz is 503 saying why, and when
PostgreSQL is back tallyd recovers by itself with nothing lost.
"""

import re
import socket
import threading
import time

import pytest
import redis
import requests

from conftest import RawResp, RespError
from pg_util import OnceClient, eventually, on_pg, require_store
from test_http_util import TIMEOUT, assert_problem, counter_url

pytestmark = [pytest.mark.own_server, pytest.mark.needs_store]

FAST = 5.0  # seconds: an answer while PostgreSQL is down is no slower
CRASHES = [pytest.param("kill", id="pg-sigkill"),
           pytest.param("restart", id="pg-restart")]


def bounce(server, how):
    if how == "kill":
        server.kill()
        server.start()
    else:
        server.restart("fast")


@pytest.mark.parametrize("how", CRASHES)
def test_once_id_recorded_before_a_pg_crash_is_recognised_after(
        tallyd_factory, pg_factory, how):
    server = pg_factory("pg")
    server.create_db("t")
    d = on_pg(tallyd_factory, server, "t")
    r = d.redis()
    # Given an acknowledged INCRBY.ONCE and an HTTP increment with a key
    assert r.execute_command("INCRBY.ONCE", "k", 5, "id-1") == 5
    first = requests.post(counter_url(d, "h", "increment"), json={"by": 3},
                          headers={"Idempotency-Key": "idem-1"},
                          timeout=TIMEOUT)
    assert first.status_code == 200 and first.json()["value"] == 3
    # When PostgreSQL crashes (or restarts) and comes back
    bounce(server, how)
    # Then the retries replay instead of counting again
    assert eventually(lambda: d.redis().execute_command(
        "INCRBY.ONCE", "k", 5, "id-1")) == 5
    again = requests.post(counter_url(d, "h", "increment"), json={"by": 3},
                          headers={"Idempotency-Key": "idem-1"},
                          timeout=TIMEOUT)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    # And a reused id with another request is still refused
    other = d.redis()
    with pytest.raises(redis.ResponseError):
        other.execute_command("INCRBY.ONCE", "k", 6, "id-1")
    assert other.mget("k", "h") == ["5", "3"]
    # And so after a tallyd crash on top
    d.restart(crash=True)
    assert d.redis().execute_command("INCRBY.ONCE", "k", 5, "id-1") == 5
    assert d.redis().get("k") == "5"


def test_once_ids_retried_across_pg_crashes_count_exactly_once(
        tallyd_factory, pg_factory):
    server = pg_factory("pg")
    server.create_db("t")
    d = on_pg(tallyd_factory, server, "t")
    # Given a client that sends each id until it is acknowledged
    stop = threading.Event()
    once = OnceClient(d, stop, "c")
    once.start()
    try:
        # When PostgreSQL is SIGKILLed three times under it
        for _ in range(3):
            time.sleep(0.5)
            server.kill()
            time.sleep(0.2)
            server.start()
        time.sleep(0.5)
    finally:
        stop.set()
        once.join(90)
    assert not once.is_alive() and once.failed is None, once.failed
    # Then each id counted once: ids whose replies were lost to a crash and
    # were sent again replayed
    n = len(once.replies)
    assert n > 0 and once.replies == list(range(1, n + 1)), once.replies[:20]
    assert int(eventually(lambda: d.redis().get("once"))) == n
    assert once.retries > 0, "no retry was ever needed: nothing was proved"


def timed(fn):
    t = time.monotonic()
    out = fn()
    return out, time.monotonic() - t


def mc_raw(d, line):
    with socket.create_connection((d.host, d.mc_port), timeout=10) as s:
        s.sendall(line)
        buf = b""
        while not buf.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf


def test_pg_down_gives_clear_errors_fast_and_tallyd_recovers_by_itself(
        tallyd_factory, pg_factory):
    server = pg_factory("pg")
    server.create_db("t")
    d = on_pg(tallyd_factory, server, "t")
    d.redis().set("kept", 7)
    # Given PostgreSQL goes away
    server.stop("fast")
    s = requests.Session()

    # Then RESP changes and reads are errors, not hangs, not successes
    with d.raw() as c:
        for args in (("INCR", "kept"), ("GET", "kept"), ("SET", "new", "1")):
            reply, took = timed(lambda: c.cmd(*args))
            assert isinstance(reply, RespError), (args, reply)
            assert re.match(r"(TRYAGAIN|ERR) \S", reply.text), reply
            assert took < FAST, f"{args} took {took:.1f}s"
    # And HTTP answers 503 problem+json
    for method, url in (("POST", counter_url(d, "kept", "increment")),
                        ("GET", counter_url(d, "kept"))):
        resp, took = timed(lambda: s.request(method, url, timeout=TIMEOUT))
        assert_problem(resp, 503)
        assert took < FAST, f"{method} took {took:.1f}s"
    # And memcached SERVER_ERROR
    for line in (b"incr kept 1\r\n", b"get kept\r\n"):
        out, took = timed(lambda: mc_raw(d, line))
        assert out.startswith(b"SERVER_ERROR "), (line, out)
        assert took < FAST
    # And /readyz is 503 and says it is the store, /healthz still 200
    ready = assert_problem(s.get(d.url + "/readyz", timeout=TIMEOUT), 503)
    assert re.search(r"postgres|store|database", ready["detail"], re.I), ready
    assert s.get(d.url + "/healthz", timeout=TIMEOUT).status_code == 200

    # When PostgreSQL comes back, tallyd recovers by itself
    server.start()
    assert eventually(lambda: d.redis().incr("kept")) == 8
    eventually(lambda: s.get(d.url + "/readyz",
                             timeout=TIMEOUT).raise_for_status())
    assert s.get(counter_url(d, "kept"), timeout=TIMEOUT).json()["value"] == 8
    assert mc_raw(d, b"incr kept 1\r\n") == b"9\r\n"
    assert d.run_log().count("\n") < 1000, "a log line per failed request?"


def test_pg_never_up_tallyd_still_starts_or_says_why(tallyd_factory,
                                                      pg_factory):
    """A tallyd started while its database is down: it either serves
    errors until PostgreSQL comes up, then works, or refuses to start
    saying what it could not reach.  Either is honest; a hang is not."""
    server = pg_factory("pg", start=True)
    server.create_db("t")
    server.stop("fast")
    require_store()
    d = tallyd_factory(start=False, store=server.dsn("t"))
    d.spawn()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and d.running():
        if " ready" in d.run_log():
            break
        time.sleep(0.05)
    if not d.running():
        assert re.search(r"postgres|store|connect", d.run_log(), re.I), (
            d.run_log())
        return
    assert " ready" in d.run_log(), f"neither ready nor exited:\n{d.run_log()}"
    reply = RawResp(d.host, d.port).cmd("INCR", "x")
    assert isinstance(reply, RespError), reply
    server.start()
    assert eventually(lambda: d.redis().incr("x")) == 1
