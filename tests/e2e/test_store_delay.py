# SPDX-License-Identifier: BSD-3-Clause
"""The front ends over a store that answers later: tallyd --store
delay+engine (src/store/delay.c), the engine behind an answer that comes a
loop pass later, in a shuffled order across connections.  This is the path
a remote store (PostgreSQL) takes: a request whose result is not there yet
is dropped and run again when it is (docs/store.md, "the re-run design").
Replies must stay in request order, nothing may be applied twice,
MULTI/EXEC, scripts and RENAME run whole across pending operations (a
conflicting commit runs the request again), and a
connection closed with operations in flight must not crash or leak
(tallyd_factory checks the log for sanitizer reports).
"""
import socket
import threading
import time

import pytest
import redis
import requests
from pymemcache.client.base import Client as Memcache

pytestmark = pytest.mark.own_server


def delayed(tallyd_factory, **flags):
    return tallyd_factory(store="delay+engine", **flags)


def test_resp_commands_and_pipelines_answer_in_order(tallyd_factory):
    t = delayed(tallyd_factory)
    r = t.redis()
    assert r.incr("a") == 1
    assert r.incrby("a", 5) == 6
    assert r.set("b", 3) is True
    assert r.set("b", 4, nx=True) is None
    assert r.getset("b", 9) == "3"
    assert r.mget("a", "b", "nope") == ["6", "9", None]
    assert r.expire("a", 100) is True
    assert 0 < r.ttl("a") <= 100
    assert r.getdel("b") == "9"
    assert r.exists("a", "b") == 1
    # A pipeline: each request waits for its answer, replies stay in order.
    p = r.pipeline(transaction=False)
    for _ in range(300):
        p.incr("p")
    p.get("p")
    assert p.execute() == list(range(1, 301)) + ["300"]
    for i in range(50):
        r.set(f"k{i}", i)
    assert sorted(r.scan_iter("k*", count=7)) == sorted(f"k{i}" for i in range(50))
    assert r.dbsize() == 52
    assert r.delete("a", "k0", "nope") == 2


def test_many_clients_count_exactly_once(tallyd_factory):
    t = delayed(tallyd_factory)
    errors = []

    def client(n):
        try:
            c = t.redis()
            p = c.pipeline(transaction=False)
            for _ in range(n):
                p.incr("hot")
            got = p.execute()
            assert got == sorted(got), "replies out of order"
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(200,)) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert t.redis().get("hot") == "1600"


def test_multi_script_and_rename_run_whole_across_pending_operations(
        tallyd_factory):
    t = delayed(tallyd_factory)
    r = t.redis()
    r.set("src", 1)
    p = r.pipeline(transaction=True)
    p.incr("x")
    p.incrby("y", 5)
    p.get("x")
    p.mget("x", "y", "nope")
    assert p.execute() == [1, 5, "1", ["1", "5", None]]
    assert r.eval("redis.call('incr', 's'); redis.call('incrby', 's', 2); "
                  "return redis.call('get', 's')", 0) == "3"
    assert r.rename("src", "dst") is True
    assert r.get("src") is None and r.get("dst") == "1"
    assert r.copy("dst", "dst2") is True and r.get("dst2") == "1"
    # WATCH: an untouched key lets EXEC run; one another client changed
    # makes it the null reply with nothing run.
    other = t.redis()
    with r.pipeline(transaction=True) as p:
        p.watch("x")
        p.multi()
        p.incr("x")
        assert p.execute() == [2]
    with r.pipeline(transaction=True) as p:
        p.watch("x")
        other.incr("x")
        p.multi()
        p.incr("x")
        with pytest.raises(redis.WatchError):
            p.execute()
    assert r.get("x") == "3"
    assert r.ping() is True


def test_script_run_again_asks_the_same_random_time_and_logs_once(
        tallyd_factory):
    # A script's store calls pend, so it runs several times; math.random,
    # TIME and redis.log must come out as if it ran once.
    t = delayed(tallyd_factory)
    r = t.redis()
    k, v = r.eval("local k = 'r:' .. math.random(1000000000) .. ':' .. "
                  "redis.call('time')[2]; "
                  "redis.call('incr', k); redis.call('incr', k); "
                  "redis.log(redis.LOG_WARNING, 'wrote', k); "
                  "return {k, redis.call('get', k)}", 0)
    assert v == "2"
    assert list(r.scan_iter("r:*")) == [k]
    deadline = time.monotonic() + 5
    while "script: wrote " + k not in t.run_log():
        assert time.monotonic() < deadline, t.run_log()
        time.sleep(0.05)
    assert t.run_log().count("script: wrote ") == 1


def test_script_stops_at_its_first_pending_call_not_at_its_end(
        tallyd_factory):
    # A run that is abandoned (a store call pends) must not go on running
    # the rest of the script, even past a pcall that would swallow the
    # error: here, what the script does with an INCR that gave no number
    # is ten seconds of Lua; the run that gets the INCR's answer skips it.
    t = delayed(tallyd_factory)
    r = t.redis(socket_timeout=5)
    t0 = time.monotonic()
    assert r.eval("local v = redis.pcall('incr', 'a') "
                  "if type(v) ~= 'number' then "
                  "  local i = 0 while i < 3e8 do i = i + 1 end "
                  "end "
                  "return v", 0) == 1
    assert time.monotonic() - t0 < 2


def test_publish_inside_multi_goes_out_once_across_re_runs(tallyd_factory):
    t = delayed(tallyd_factory)
    sub = t.redis().pubsub()
    sub.subscribe("ch")
    assert sub.get_message(timeout=5)["type"] == "subscribe"
    p = t.redis().pipeline(transaction=True)
    p.incr("x")
    p.publish("ch", "hello")
    p.incr("x")
    assert p.execute() == [1, 1, 2]
    got = []
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        m = sub.get_message(timeout=0.1)
        if m:
            got.append(m["data"])
    assert got == ["hello"]
    sub.close()


def test_concurrent_transfers_conflict_run_again_and_conserve_the_sum(
        tallyd_factory):
    t = delayed(tallyd_factory)
    t.redis().mset({"a": 1000, "b": 1000})
    errors = []

    def client(n):
        try:
            c = t.redis()
            for i in range(40):
                src, dst = ("a", "b") if (n + i) % 2 else ("b", "a")
                p = c.pipeline(transaction=True)
                p.decrby(src, 3)
                p.incrby(dst, 3)
                p.incr("done")
                p.execute()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    r = t.redis()
    assert int(r.get("a")) + int(r.get("b")) == 2000
    assert r.get("done") == "240"


def test_info_and_metrics_say_which_store(tallyd_factory):
    t = delayed(tallyd_factory)
    info = t.redis().info("store")
    assert info["store"] == "delay+engine"
    assert info["store_ready"] == 1
    assert "fsync always" in info["store_durability"]
    text = requests.get(t.url + "/metrics", timeout=10).text
    assert 'tally_store_info{store="delay+engine"' in text
    assert "tally_store_ready 1" in text
    assert requests.get(t.url + "/readyz", timeout=10).status_code == 200


def test_memcached_over_a_store_that_answers_later(tallyd_factory):
    t = delayed(tallyd_factory)
    m = Memcache(("127.0.0.1", t.mc_port), timeout=10)
    assert m.set("m", "5") is True
    value, cas = m.gets("m")
    assert value == b"5"
    assert m.cas("m", "9", b"12345") is False  # another unique: EXISTS
    assert m.cas("m", "9", cas) is True
    assert m.get("m") == b"9"
    assert m.incr("m", 2) == 11
    assert m.decr("m", 100) == 0  # the floor, in one store operation
    assert m.incr("missing", 1) is None
    m.set("q", "1", noreply=True)
    m.incr("q", 4, noreply=True)
    assert m.get_many(["m", "q", "nope"]) == {"m": b"0", "q": b"5"}
    assert m.delete("q") is True
    assert m.get("q") is None
    # Each request is counted once, however often it ran.
    st = m.stats()
    assert (st[b"cmd_set"], st[b"cas_hits"], st[b"cas_badval"]) == (4, 1, 1)
    assert (st[b"incr_hits"], st[b"incr_misses"], st[b"decr_hits"]) == (2, 1, 1)


def test_memcached_get_of_many_keys_then_mn_answers_at_once(tallyd_factory):
    # A get of 1000 keys is one store operation (STORE_MGET), not one per
    # key each re-running the whole line: the reply, then mn's, come before
    # the client has waited 0.3 s in silence.
    t = delayed(tallyd_factory)
    m = Memcache(("127.0.0.1", t.mc_port), timeout=10)
    for i in range(0, 1000, 100):
        m.set(f"k{i}", str(i), noreply=False)
    keys = b" ".join(b"k%d" % i for i in range(1000))
    want = b"".join(b"VALUE k%d 0 %d\r\n%d\r\n" % (i, len(str(i)), i)
                    for i in range(0, 1000, 100)) + b"END\r\nMN\r\n"
    r = t.redis()
    ops = r.info("store")["store_delay_ops"]
    with socket.create_connection(("127.0.0.1", t.mc_port), timeout=10) as c:
        c.sendall(b"get " + keys + b" k0\r\nmn\r\n")
        c.settimeout(0.3)
        got = b""
        start = time.monotonic()
        while not got.endswith(b"MN\r\n"):
            try:
                chunk = c.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            got += chunk
        took = time.monotonic() - start
    # k0 asked twice is shown twice, as memcached does.
    assert got == want.replace(b"END", b"VALUE k0 0 1\r\n0\r\nEND"), took
    assert took < 0.3
    assert r.info("store")["store_delay_ops"] - ops == 1
    st = m.stats()
    assert (st[b"cmd_get"], st[b"get_hits"], st[b"get_misses"]) == (1001, 11, 990)


def test_http_keep_alive_over_a_store_that_answers_later(tallyd_factory):
    t = delayed(tallyd_factory)
    s = requests.Session()
    for i in range(1, 41):
        r = s.post(t.url + "/v1/counters/h/increment", json={"by": 1},
                   timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["value"] == i
    assert s.get(t.url + "/v1/counters/h", timeout=10).json()["value"] == 40
    assert s.get(t.url + "/v1/counters/nope", timeout=10).status_code == 404
    r = s.post(t.url + "/v1/batch", timeout=10,
               json={"ops": [{"op": "increment", "key": "z"},
                             {"op": "increment", "key": "z", "by": 2},
                             {"op": "get", "key": "z"}]})
    assert r.status_code == 200, r.text
    assert [x.get("value") for x in r.json()["results"]] == [1, 3, 3]
    assert s.get(t.url + "/v1/counters/z", timeout=10).json()["value"] == 3
    # One that fails applies nothing, across pending operations too.
    r = s.post(t.url + "/v1/batch", timeout=10,
               json={"ops": [{"op": "increment", "key": "z"},
                             {"op": "increment", "key": "z",
                              "by": 9223372036854775807}]})
    assert r.status_code == 409, r.text
    assert s.get(t.url + "/v1/counters/z", timeout=10).json()["value"] == 3
    # With an Idempotency-Key it needs once_answer at once: not yet here.
    r = s.post(t.url + "/v1/batch", timeout=10,
               headers={"Idempotency-Key": "k1"},
               json={"ops": [{"op": "increment", "key": "z"}]})
    assert r.status_code == 501, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert s.get(t.url + "/v1/counters/z", timeout=10).json()["value"] == 3


def test_connections_closed_with_operations_in_flight(tallyd_factory):
    t = delayed(tallyd_factory)
    # Each client sends its requests and goes at once, while they wait.
    for _ in range(30):
        c = socket.create_connection(("127.0.0.1", t.port))
        c.sendall(b"INCR gone\r\n" * 20)
        c.close()
        c = socket.create_connection(("127.0.0.1", t.mc_port))
        c.sendall(b"incr gone 1\r\nget gone\r\n")
        c.close()
        c = socket.create_connection(("127.0.0.1", t.http_port))
        c.sendall(b"POST /v1/counters/web/increment HTTP/1.1\r\n"
                  b"Host: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
        c.close()
    time.sleep(0.5)
    r = t.redis()
    assert r.ping() is True
    assert int(r.get("gone") or 0) >= 0
    # A graceful stop answers, syncs and frees everything (ASan's leak
    # check runs at exit).
    t.stop()


def test_sse_reset_over_a_store_that_answers_later_shows_the_value(
        tallyd_factory):
    # The stream has started before its reset reads the counter, so it is
    # not run again: it takes the read over and resets with the value once
    # the store answers; live changes wait behind it.
    from sse_util import SSE
    t = delayed(tallyd_factory, events_window=10)
    r = t.redis()
    url = t.url + "/v1/counters/k/events"
    sse = SSE(url)
    r.incr("k")
    first = int(sse.next()["id"])
    sse.close()
    for _ in range(30):
        r.incr("k")
    sse = SSE(url, last_id=first)
    try:
        ev = sse.next()
        assert ev["event"] == "reset" and ev["data"] == {"key": "k",
                                                         "value": 31}
        r.incr("k")
        ev = sse.next()
        assert (ev["event"], ev["data"]["value"]) == ("change", 32)
    finally:
        sse.close()
    # A counter deleted meanwhile is shown deleted.
    r.delete("k")
    sse = SSE(url, last_id=first)
    try:
        ev = sse.next()
        assert ev["event"] == "reset" and ev["data"] == {"key": "k",
                                                         "deleted": True}
    finally:
        sse.close()
    # Streams that go while their reset's read is in flight must not be
    # used after they are freed (the sanitizer builds report it).
    for _ in range(20):
        c = socket.create_connection(("127.0.0.1", t.http_port))
        c.sendall(b"GET /v1/counters/k/events HTTP/1.1\r\nHost: x\r\n"
                  b"Last-Event-ID: %d\r\n\r\n" % first)
        c.close()
    time.sleep(0.2)
    assert r.ping() is True


def test_an_unknown_store_scheme_stops_the_start(tallyd_factory):
    t = tallyd_factory(start=False, store="mongodb://127.0.0.1:1")
    t.spawn()
    rc = t.wait_exit()
    assert rc != 0
    assert "--store: unknown scheme" in t.run_log()


def test_idempotency_outcomes_count_once_when_the_store_answers_later(
        tallyd_factory):
    """A request with an Idempotency-Key that waits for the store runs more
    than once: only the run with the answer is counted (each waiting run was
    counted as "failed" before)."""
    from test_http_idempotency import idem_metrics, new_key, post
    from test_http_util import session
    t = delayed(tallyd_factory)
    s = session(t)
    before = idem_metrics(s, t)
    idem = new_key()
    assert post(s, t, "k", "increment", idem).status_code == 200
    assert post(s, t, "k", "increment", idem).status_code == 200
    after = idem_metrics(s, t)
    for outcome, n in (("applied", 1), ("replayed", 1), ("failed", 0)):
        assert after[outcome] - before[outcome] == n, outcome


def test_info_and_stats_wait_for_the_store(tallyd_factory):
    """INFO's keyspace and memcached's curr_items ask the store like any
    command: over a store that answers later they show its counts, not
    zeros."""
    t = delayed(tallyd_factory)
    r = t.redis()
    r.mset({"a": 1, "b": 2})
    r.set("c", 3, ex=100)
    ks = r.info("keyspace")["db0"]
    assert ks["keys"] == 3 and ks["expires"] == 1
    mc = Memcache(("127.0.0.1", t.mc_port), timeout=10)
    assert mc.stats()[b"curr_items"] == 3
    mc.close()
