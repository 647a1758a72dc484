# SPDX-License-Identifier: BSD-3-Clause
"""The durability hold in its corners: no reply may show what a crash could
take back, also when the change it follows wrote no reply of its own
(memcached noreply, meta quiet mode), when the reply is an error computed
from a value or an idempotency id that is still being synced, when HTTP
requests are pipelined behind a held one, and for each protocol's plainest
increment, which takes the engine's fast path.

Each test slows the server's fsyncs with the failsync shim (the `faulty`
fixture of test_faults.py) and checks that a reply comes only after the sync
of the change it depends on.  docs/threading.md ("The durability hold") and
docs/durability.md say what is promised.
"""

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from test_faults import (Stream, faulty, mc_value, resp,  # noqa: F401
                         wait_change_pending)
from test_http_util import (TIMEOUT, assert_problem, counter_url, get_value,
                            session)

pytestmark = [pytest.mark.own_server,
              pytest.mark.engine_files("the fsync shim on the engine's log")]

SLOW = 0.5  # seconds one slowed fsync takes
INT64_MAX = 2**63 - 1


def slowed(faulty, **setup):
    """A tallyd holding the counters in `setup` (durable), whose fsyncs from
    now on take SLOW seconds."""
    d, faults = faulty()
    r = d.redis()
    for k, v in setup.items():
        assert r.set(k, v) is True
    # Not left open (close() would): a test's own clients are all there is.
    r.connection_pool.disconnect()
    faults.slow(SLOW)
    return d, faults


def held_change(d, request):
    """Send a change over RESP and return once it is applied but its sync
    still runs: (its connection, when it was sent).  Another client is
    connected first and stays so (w.bystander): these tests are about a
    second client's request while the sync runs, and a client alone has
    the loop fsync its changes itself, answering nobody meanwhile
    (docs/threading.md, "With one client")."""
    bystander = Stream(d.port)
    w = Stream(d.port)
    w.bystander = bystander
    t0 = time.monotonic()
    w.send(request)
    wait_change_pending(d)
    return w, t0


# ---- 1. changes that write no reply still hold what follows ----------------

@pytest.mark.parametrize("quiet", [
    b"set b 0 0 1 noreply\r\n5\r\n",
    b"incr b 3 noreply\r\n",
    b"decr b 1 noreply\r\n",
    b"delete b noreply\r\n",
    b"ms b 1 q\r\n7\r\n",
    b"ma b q\r\n",
    b"md b q\r\n",
], ids=["set-noreply", "incr-noreply", "decr-noreply", "delete-noreply",
        "ms-q", "ma-q", "md-q"])
def test_memcached_noreply_change_holds_the_mn_after_it(faulty, quiet):
    # Given b = 1, durable, a memcached connection and slow syncs
    d, _ = slowed(faulty, b=1)
    m = Stream(d.mc_port)
    # When a change without a reply is followed by mn
    t0 = time.monotonic()
    m.send(quiet + b"mn\r\n")
    # Then MN (and nothing else) comes only once that change is durable
    assert m.read_until(b"MN\r\n") == b"MN\r\n"
    assert time.monotonic() - t0 >= SLOW
    m.close()


def test_memcached_noreply_change_holds_a_read_of_another_counter(faulty):
    # Given a durable counter other = 9 and slow syncs
    d, _ = slowed(faulty, other=9)
    m = Stream(d.mc_port)
    # When a quiet set of b is followed, on the same connection, by a read
    # of a counter that is already durable
    t0 = time.monotonic()
    m.send(b"set b 0 0 1 noreply\r\n5\r\nget other\r\n")
    # Then the read still waits for the set: replies leave in order, and
    # the client may take it as "everything before is durable"
    assert m.read_until(b"END\r\n") == mc_value("other", 9)
    assert time.monotonic() - t0 >= SLOW
    m.close()


def test_memcached_noreply_change_after_sent_replies_holds_a_later_mn(faulty):
    # Given a durable counter other = 9 and slow syncs
    d, _ = slowed(faulty, other=9)
    m = Stream(d.mc_port)
    # When a read and a quiet set arrive together, and mn only later
    t0 = time.monotonic()
    m.send(b"get other\r\nset b 0 0 1 noreply\r\n5\r\n")
    # Then the read, which came before the set, is answered at once
    assert m.read_until(b"END\r\n") == mc_value("other", 9)
    assert time.monotonic() - t0 < SLOW
    time.sleep(0.05)
    m.send(b"mn\r\n")
    # and the mn sent afterwards waits for the set, with nothing else
    assert m.read_until(b"MN\r\n") == b"MN\r\n"
    assert time.monotonic() - t0 >= SLOW
    assert m.drain(0.1) == (b"", False)
    m.close()


# ---- 2. errors that reveal state wait for that state's sync ----------------

def test_overflow_error_waits_for_the_change_it_was_computed_from_resp(faulty):
    # Given a SET big INT64_MAX waiting for its slow sync
    d, _ = slowed(faulty)
    w, t0 = held_change(d, resp("SET", "big", INT64_MAX))
    # When another client increments big
    r = Stream(d.port)
    r.send(resp("INCRBY", "big", 1))
    # Then the overflow error (which shows big's new value) comes only after
    # that value is durable: a crash before would have made it a lie
    assert r.read_until(b"\r\n").startswith(b"-ERR")
    assert time.monotonic() - t0 >= SLOW
    assert w.read_until(b"\r\n") == b"+OK\r\n"
    r.close()
    w.close()


def test_overflow_error_waits_for_the_change_it_was_computed_from_http(faulty):
    d, _ = slowed(faulty)
    w, t0 = held_change(d, resp("SET", "big", INT64_MAX))
    got = session(d).post(counter_url(d, "big", "increment"),
                          json={"by": 1}, timeout=TIMEOUT)
    assert_problem(got, 409, "overflow")
    assert time.monotonic() - t0 >= SLOW
    w.close()


def test_overflow_error_waits_for_the_change_it_was_computed_from_memcached(
        faulty):
    d, _ = slowed(faulty)
    w, t0 = held_change(d, resp("SET", "big", INT64_MAX))
    m = Stream(d.mc_port)
    m.send(b"incr big 1\r\n")
    assert m.read_until(b"\r\n").startswith(b"CLIENT_ERROR")
    assert time.monotonic() - t0 >= SLOW
    m.close()
    w.close()


def test_idempotency_id_reused_error_waits_for_the_first_request_resp(faulty):
    # Given INCRBY.ONCE k 5 id1 waiting for its slow sync
    d, _ = slowed(faulty)
    w, t0 = held_change(d, resp("INCRBY.ONCE", "k", 5, "id1"))
    # When another request comes with the same id
    r = Stream(d.port)
    r.send(resp("INCRBY.ONCE", "k", 6, "id1"))
    # Then "id already used" waits until the first request is durable
    assert r.read_until(b"\r\n").startswith(b"-")
    assert time.monotonic() - t0 >= SLOW
    assert w.read_until(b"\r\n") == b":5\r\n"
    r.close()
    w.close()


def test_a_client_alone_is_answered_after_its_sync_and_a_second_one_at_once(
        faulty):
    # Given one client alone, whose INCR waits for a slow sync (which the
    # loop runs itself: nobody else is connected)
    d, _ = slowed(faulty, a=5)
    w = Stream(d.port)
    t0 = time.monotonic()
    w.send(resp("INCR", "x"))
    # Then its reply still comes only once the change is durable
    assert w.read_until(b"\r\n") == b":1\r\n"
    assert time.monotonic() - t0 >= SLOW
    # When a second client connects and the first sends another INCR
    r = Stream(d.port)
    r.send(resp("PING"))
    assert r.read_until(b"\r\n") == b"+PONG\r\n"
    t1 = time.monotonic()
    w.send(resp("INCR", "x"))
    wait_change_pending(d)
    # Then the second client's durable read is answered while that sync
    # runs: with two clients the sync thread has it, not the loop
    r.send(resp("GET", "a"))
    assert r.read_until(b"\r\n", timeout=SLOW / 2) == b"$1\r\n"
    assert time.monotonic() - t1 < SLOW
    assert w.read_until(b"\r\n") == b":2\r\n"
    assert time.monotonic() - t1 >= SLOW
    r.close()
    w.close()


def test_a_client_alone_on_a_slow_disk_leaves_its_syncs_to_the_sync_thread(
        faulty):
    # Given one client alone on a disk whose fdatasyncs take SLOW seconds,
    # far over the average at which the loop still syncs for a client alone
    # itself (conn.c CONN_INLINE_MAX_US); its first change, synced on the
    # loop, taught the engine's estimate that much
    d, _ = slowed(faulty, a=5)
    w = Stream(d.port)
    w.send(resp("INCR", "x"))
    assert w.read_until(b"\r\n") == b":1\r\n"
    # When it sends another change, still alone, and a client connects
    # while that change syncs (no metrics poll: it would be a second client)
    t1 = time.monotonic()
    w.send(resp("INCR", "x"))
    time.sleep(SLOW / 5)
    r = Stream(d.port)
    # Then the newcomer's durable read is answered at once: the sync thread
    # runs that sync, not the loop
    r.send(resp("GET", "a"))
    assert r.read_until(b"\r\n", timeout=SLOW / 2) == b"$1\r\n"
    assert r.read_until(b"\r\n") == b"5\r\n"
    assert time.monotonic() - t1 < SLOW
    # And the change's reply still waits for its sync
    assert w.read_until(b"\r\n") == b":2\r\n"
    assert time.monotonic() - t1 >= SLOW
    r.close()
    w.close()


@pytest.mark.parametrize("second", ["http", "resp"])
def test_an_http_client_alone_is_answered_after_its_sync_and_a_second_one_at_once(
        faulty, second):
    # Given one HTTP client alone (on a keep-alive connection), whose
    # increment waits for a slow sync, which the loop runs itself
    d, _ = slowed(faulty, a=5)
    w = session(d)
    url = counter_url(d, "x", "increment")
    t0 = time.monotonic()
    r = w.post(url, timeout=TIMEOUT)
    # Then its answer still comes only once the change is durable
    assert r.status_code == 200 and r.json()["value"] == 1
    assert time.monotonic() - t0 >= SLOW
    # When a second client has been served once (over HTTP or RESP), and
    # the first sends another increment
    if second == "http":
        o = session(d)
        assert o.get(d.url + "/healthz", timeout=TIMEOUT).status_code == 200

        def read_a():
            return get_value(o, d, "a")
    else:
        o = Stream(d.port)
        o.send(resp("PING"))
        assert o.read_until(b"\r\n") == b"+PONG\r\n"

        def read_a():
            o.send(resp("GET", "a"))
            assert o.read_until(b"\r\n", timeout=SLOW / 2) == b"$1\r\n"
            return int(o.read_until(b"\r\n"))
    with ThreadPoolExecutor(1) as pool:
        t1 = time.monotonic()
        held = pool.submit(w.post, url, timeout=TIMEOUT)
        wait_change_pending(d)
        # Then the second client's durable read is answered while that
        # sync runs: with two connections the sync thread has it
        t2 = time.monotonic()
        assert read_a() == 5
        assert time.monotonic() - t2 < SLOW / 2
        assert held.result().json()["value"] == 2
        assert time.monotonic() - t1 >= SLOW
    o.close()


def test_idempotency_id_reused_error_waits_for_the_first_request_http(faulty):
    d, _ = slowed(faulty)
    s1, s2 = session(d), session(d)
    url = counter_url(d, "k", "increment")
    # Both connections are in use before the first request: s1 alone would
    # have the loop run its sync itself, and s2's request wait for it
    # (docs/threading.md, "With one client")
    for s in (s1, s2):
        assert s.get(d.url + "/healthz", timeout=TIMEOUT).status_code == 200

    def post(s, by):
        return s.post(url, json={"by": by}, timeout=TIMEOUT,
                      headers={"Idempotency-Key": "id1"})

    with ThreadPoolExecutor(1) as pool:
        t0 = time.monotonic()
        first = pool.submit(post, s1, 5)
        wait_change_pending(d)
        reused = post(s2, 6)
        assert_problem(reused, 422, "idempotency-key-reused")
        assert time.monotonic() - t0 >= SLOW
        assert first.result().status_code == 200


# ---- 3. HTTP: a pipelined request never answers ahead of a held one --------

def test_http_pipelined_read_is_answered_after_the_held_change_before_it(
        faulty):
    # Given a durable counter and slow syncs
    d, _ = slowed(faulty, durable=7)
    host = f"{d.host}:{d.http_port}"
    body = b'{"by": 1}'
    change = (b"POST /v1/counters/x/increment HTTP/1.1\r\nHost: %s\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (host.encode(), len(body), body))
    read = (b"GET /v1/counters/durable HTTP/1.1\r\nHost: %s\r\n\r\n"
            % host.encode())
    # When an increment and a read of a durable counter are pipelined on one
    # keep-alive connection
    c = socket.create_connection((d.host, d.http_port), TIMEOUT)
    t0 = time.monotonic()
    c.sendall(change + read)
    got = b""
    c.settimeout(TIMEOUT)
    while got.count(b"HTTP/1.1 ") < 2 or not got.rstrip().endswith(b"}"):
        chunk = c.recv(65536)
        assert chunk, got
        got += chunk
    c.close()
    # Then both are answered in order, the read after the change, whose
    # answer waited for its sync
    first = got.index(b"HTTP/1.1 ")
    second = got.index(b"HTTP/1.1 ", first + 1)
    assert got[first:].startswith(b"HTTP/1.1 200"), got
    assert b'"value": 1' in got[first:second] or \
        b'"value":1' in got[first:second], got
    assert b'"durable"' in got[second:], got
    assert time.monotonic() - t0 >= SLOW


# ---- 4. a plain increment's own reply waits for its sync -------------------

@pytest.mark.parametrize("proto", ["resp-incr", "resp-decrby", "memcached",
                                   "http"])
def test_plain_increment_reply_waits_for_its_own_sync(faulty, proto):
    # Given c = 10, durable, and slow syncs
    d, _ = slowed(faulty, c=10)
    t0 = time.monotonic()
    # When c is incremented by each protocol's plainest request (RESP's INCR
    # and DECRBY take the engine's fast path: commit 3b96ebe lost its ticket
    # there, so its reply left before the change was on disk)
    if proto == "http":
        got = session(d).post(counter_url(d, "c", "increment"),
                              json={"by": 1}, timeout=TIMEOUT)
        assert got.status_code == 200 and got.json()["value"] == 11, got.text
    else:
        s = Stream(d.mc_port if proto == "memcached" else d.port)
        request, reply = {
            "resp-incr": (resp("INCR", "c"), b":11\r\n"),
            "resp-decrby": (resp("DECRBY", "c", 3), b":7\r\n"),
            "memcached": (b"incr c 1\r\n", b"11\r\n"),
        }[proto]
        s.send(request)
        assert s.read_until(b"\r\n") == reply
        s.close()
    # Then the reply came only once that change was durable
    assert time.monotonic() - t0 >= SLOW


# ---- 5. multi-key deletes are single records, so they must fit in one -------

def test_memcached_flush_all_deletes_many_keys_of_the_longest_length(
        tallyd_factory):
    # Given 1100 counters with 1024-byte keys (made over RESP: memcached keys
    # are shorter), more than one flush_all batch of them
    d = tallyd_factory(allow_flush=True)
    r = d.redis()
    keys = [("%04d" % i).encode() * 256 for i in range(1100)]
    for i in range(0, len(keys), 100):
        assert r.mset({k: 1 for k in keys[i:i + 100]}) is True
    # When memcached's flush_all deletes them, batch by batch, each batch one
    # atomic DEL
    m = Stream(d.mc_port)
    m.send(b"flush_all\r\n")
    # Then every batch fits in one log record and everything is gone
    assert m.read_until(b"\r\n") == b"OK\r\n"
    assert r.dbsize() == 0
    m.close()
