# SPDX-License-Identifier: BSD-3-Clause
"""Black-box stories of tallyd under a failing and a slow fsync.

tallyd runs with tests/fault/failsync.c under LD_PRELOAD: while the test's
fault directory holds `slow`, every fsync/fdatasync first sleeps that many
microseconds; while it holds `fail`, they fail with EIO (a sync asleep when
`fail` appears fails when it wakes).  The stories check two promises:

1. A failed fsync stops writes: every change is refused with an error on
   RESP, HTTP (503, and /readyz 503 with the reason) and memcached
   (SERVER_ERROR) while reads of durable values go on; replies held for the
   failed sync are never sent as a success (their connections are closed,
   HTTP gets a 503); SIGTERM then exits 1 (docs/threading.md); a restart
   recovers every acknowledged change.
2. A read of a counter whose latest change is durable is answered at once,
   even while another counter waits for a slow sync; a read of the counter
   being changed waits until that change is durable, and never shows it if
   the sync fails.

The shim is found at $TALLY_FAILSYNC, else next to $TALLYD
(build/tests/libtally_failsync.so, built by the default target).
"""

import os
import re
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from conftest import TALLYD, RawResp, RespError
from test_http_util import TIMEOUT, assert_problem, counter_url, session

pytestmark = [pytest.mark.own_server,
              pytest.mark.engine_files("the fsync shim on the engine's log")]

SHIM_NAME = "libtally_failsync.so"
SLOW_S = 0.3        # how long a slowed sync takes
FAST_S = SLOW_S / 4  # a read that must not wait for a sync answers within this


def shim_path():
    """The LD_PRELOAD shim; fails the test (it is part of the normal build)
    when it cannot be found."""
    given = os.environ.get("TALLY_FAILSYNC")
    if given:
        return given
    base = Path(TALLYD).resolve().parent
    for p in (base / "tests" / SHIM_NAME, base / SHIM_NAME):
        if p.exists():
            return str(p)
    pytest.fail(f"{SHIM_NAME} not found next to {TALLYD} (build the default "
                "target, or set $TALLY_FAILSYNC)")


class Faults:
    """The shim's control directory for one server."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def slow(self, seconds):
        # Renamed in whole, so the shim never reads a half-written number.
        tmp = self.path / "slow.tmp"
        tmp.write_text(str(int(seconds * 1_000_000)))
        tmp.rename(self.path / "slow")

    def fail(self):
        (self.path / "fail").touch()

    def clear(self):
        for name in ("slow", "fail"):
            (self.path / name).unlink(missing_ok=True)


@pytest.fixture
def faulty(tallyd_factory, tmp_path):
    """faulty(**flags) -> (Tallyd, Faults): a started tallyd whose syncs the
    test can slow down or fail."""
    n = iter(range(100))

    def make(**flags):
        faults = Faults(tmp_path / f"faults{next(n)}")
        # ASan wants to come first in the library list; the shim must come
        # first to be called at all.  Both work with the check off.
        asan = os.environ.get("ASAN_OPTIONS", "")
        env = {"LD_PRELOAD": shim_path(), "TALLY_FAULT_DIR": str(faults.path),
               "ASAN_OPTIONS": (asan + ":" if asan else "")
               + "verify_asan_link_order=0"}
        return tallyd_factory(env=env, **flags), faults

    return make


# ---- clients ----------------------------------------------------------------

class Stream:
    """A plain TCP connection for exact bytes (RESP or memcached text)."""

    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_until(self, end, timeout=TIMEOUT):
        """Bytes up to and including the first `end`; fails on close or
        timeout."""
        self.sock.settimeout(timeout)
        while end not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed; got {self.buf!r}"
            self.buf += chunk
        i = self.buf.index(end) + len(end)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def drain(self, quiet):
        """What arrives until the server is quiet for `quiet` seconds or
        closes: (bytes, closed)."""
        self.sock.settimeout(quiet)
        out, self.buf = self.buf, b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return out, True
                out += chunk
        except (socket.timeout, BlockingIOError):  # quiet=0 polls
            return out, False
        except ConnectionResetError:
            return out, True

    def close(self):
        self.sock.close()


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def mc_value(key, value):
    """tally's reply to memcached `get key` of a counter (docs/memcache.md)."""
    v = str(value).encode()
    return b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key.encode(), len(v), v)


def metric(d, name):
    text = session(d).get(d.url + "/metrics", timeout=TIMEOUT).text
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return int(m.group(1))


def wait_change_pending(d, timeout=5):
    """Return once a change is applied but not durable (the log's head is
    past its durable point): a sync for it is running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric(d, "tally_log_head") > metric(d, "tally_log_durable"):
            return
        time.sleep(0.005)
    pytest.fail("no change became pending")


def timed(fn):
    t = time.monotonic()
    v = fn()
    return v, time.monotonic() - t


def fail_write_path(d, faults, key):
    """Make the next sync fail under an INCR of key; that INCR's reply was
    held for the sync, so its connection must close without a reply."""
    faults.fail()
    s = Stream(d.port)
    s.send(resp("INCR", key))
    got, closed = s.drain(TIMEOUT)
    s.close()
    assert (got, closed) == (b"", True), \
        "the held INCR was answered although its sync failed"


def failed_server(faulty):
    """A tallyd where a=5 and b=2 were acknowledged, then a sync failed under
    a third INCR of b: a is durable, b's latest change is not."""
    d, faults = faulty()
    r = d.redis()
    assert r.set("a", 5) is True
    assert r.incr("b") == 1 and r.incr("b") == 2
    fail_write_path(d, faults, "b")
    return d, faults


# ---- 1. a failed fsync stops writes -----------------------------------------

def test_after_a_failed_fsync_resp_refuses_every_change_and_reads_durable_values(
        faulty):
    # Given a failed sync (a durable, b's last change lost with it)
    d, _ = failed_server(faulty)
    with RawResp(d.host, d.port) as c:
        # Then reads of durable values go on
        assert c.cmd("GET", "a") == b"5"
        assert c.cmd("GET", "never") is None
        assert c.cmd("MGET", "a", "never") == [b"5", None]
        # and every change is refused, with the reason
        for args in (("INCR", "a"), ("INCRBY", "a", 3), ("DECR", "new"),
                     ("SET", "a", 9), ("SET", "new", 1), ("DEL", "a"),
                     ("MSET", "a", 1, "c", 2), ("GETSET", "a", 1),
                     ("INCRBY.ONCE", "a", 1, "id-1")):
            got = c.cmd(*args)
            assert isinstance(got, RespError), (args, got)
            assert got.text.startswith("ERR write path failed, tally refuses "
                                       "changes until it is restarted"), got
            assert "fdatasync" in got.text and "Input/output error" in got.text
        # and a value the failed sync may have lost is never shown
        assert c.cmd("GET", "b") == RespError(
            "ERR value not durable: the write path failed before its last "
            "change was synced")
        # while nothing was changed by the refused requests
        assert c.cmd("GET", "a") == b"5"
        assert c.cmd("EXISTS", "new", "c") == 0
    log = d.run_log()
    assert "fdatasync of the log" in log and "Input/output error" in log
    assert "check the disk" in log and "restart tallyd" in log


def test_after_a_failed_fsync_http_changes_and_readyz_are_503(faulty):
    d, _ = failed_server(faulty)
    s = session(d)
    # Then /readyz says why changes are refused, /healthz still answers
    ready = assert_problem(s.get(d.url + "/readyz", timeout=TIMEOUT), 503,
                           "not-ready")
    assert "write path failed" in ready["detail"], ready
    assert s.get(d.url + "/healthz", timeout=TIMEOUT).status_code == 200
    # and every change is a 503 write-failed
    for method, url, body in (
            ("POST", counter_url(d, "a", "increment"), None),
            ("POST", counter_url(d, "a", "decrement"), {"by": 2}),
            ("POST", counter_url(d, "new", "increment"), None),
            ("PUT", counter_url(d, "a"), {"value": 1}),
            ("DELETE", counter_url(d, "a"), None)):
        r = s.request(method, url, json=body, timeout=TIMEOUT)
        problem = assert_problem(r, 503, "write-failed")
        assert "fsync" in problem["detail"], problem
    # and reads of durable values go on, a lost one is 503 not-durable
    r = s.get(counter_url(d, "a"), timeout=TIMEOUT)
    assert (r.status_code, r.json()) == (200, {"key": "a", "value": 5})
    assert s.get(counter_url(d, "never"), timeout=TIMEOUT).status_code == 404
    assert_problem(s.get(counter_url(d, "b"), timeout=TIMEOUT), 503,
                   "not-durable")
    metrics = s.get(d.url + "/metrics", timeout=TIMEOUT).text
    assert "\ntally_healthy 0\n" in metrics
    assert "\ntally_health_code -8\n" in metrics


def test_after_a_failed_fsync_memcached_changes_are_server_errors(faulty):
    d, _ = failed_server(faulty)
    m = Stream(d.mc_port)
    # Then reads of durable values go on
    m.send(b"get a\r\n")
    assert m.read_until(b"END\r\n") == mc_value("a", 5)
    # and every change is a SERVER_ERROR
    refused = b"SERVER_ERROR writes refused: a sync to disk failed " \
              b"(see the server log)\r\n"
    for req in (b"incr a 1\r\n", b"decr a 1\r\n", b"set a 0 0 1\r\n9\r\n",
                b"add new 0 0 1\r\n1\r\n", b"delete a\r\n"):
        m.send(req)
        assert m.read_until(b"\r\n") == refused, req
    # and a value the failed sync may have lost is a SERVER_ERROR too
    m.send(b"get b\r\n")
    assert m.read_until(b"\r\n") == \
        b"SERVER_ERROR value is not durable after a failed sync\r\n"
    m.send(b"get a\r\n")
    assert m.read_until(b"END\r\n") == mc_value("a", 5)
    m.close()


def test_replies_held_when_the_fsync_fails_are_never_sent_as_success(faulty):
    # Given a durable counter and a slow sync
    d, faults = faulty()
    r = d.redis()
    r.set("a", 5)
    r.set("x", 10)
    faults.slow(SLOW_S)
    # When a RESP client pipelines a durable read and three writes, a
    # memcached client a durable read and a write, and an HTTP client a write
    c = Stream(d.port)
    c.send(resp("GET", "a") + resp("INCR", "x") + resp("SET", "y", 1)
           + resp("INCRBY", "x", 5) + resp("GET", "x"))
    m = Stream(d.mc_port)
    m.send(b"get a\r\nincr x 1\r\nget a\r\n")
    with ThreadPoolExecutor(1) as pool:
        http = pool.submit(session(d).post, counter_url(d, "x", "increment"),
                           timeout=TIMEOUT)
        wait_change_pending(d)
        time.sleep(0.05)  # the HTTP request has had time to reach the server
        # then only the durable reads are answered while the sync runs
        assert c.drain(0.05) == (b"$1\r\n5\r\n", False)
        assert m.drain(0.05) == (mc_value("a", 5), False)
        assert not http.done()
        # and when that sync fails, the writes are never acknowledged: the
        # stream connections are closed, HTTP gets a 503
        faults.fail()
        assert c.drain(TIMEOUT) == (b"", True)
        assert m.drain(TIMEOUT) == (b"", True)
        assert_problem(http.result(), 503, "write-failed")
    c.close()
    m.close()
    # (one warning line: repeats from one call site are rate-limited)
    assert "the client must treat those requests as of unknown outcome" in \
        d.run_log()


def test_sigterm_after_failed_fsync_exits_1_and_restart_keeps_acknowledged(
        faulty):
    # Given four clients incrementing their own counter and a shared one
    d, faults = faulty()
    attempted, acked = {}, {}
    shared_attempts, shared_acked = [0], [0]
    lock = threading.Lock()
    stop = threading.Event()

    def client(n):
        k = f"own{n}"
        r = redis.Redis(host=d.host, port=d.port, socket_timeout=TIMEOUT,
                        decode_responses=True)
        attempted[k] = acked[k] = 0
        try:
            while not stop.is_set():
                attempted[k] += 1
                acked[k] = r.incr(k)
                with lock:
                    shared_attempts[0] += 1
                v = r.incr("shared")
                with lock:
                    shared_acked[0] = max(shared_acked[0], v)
        except (redis.ConnectionError, redis.ResponseError):
            pass  # closed (held) or refused: the failure reached this client
        finally:
            r.close()

    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(client, n) for n in range(4)]
        time.sleep(0.5)
        # When the fsync fails mid-traffic
        faults.fail()
        try:
            for j in jobs:
                j.result(timeout=TIMEOUT)  # every client stopped on its own
        finally:
            stop.set()  # so a client that did not stop cannot hang the test
    assert all(acked[k] > 0 for k in acked), acked
    # Then a change is refused, and SIGTERM exits with status 1 (the final
    # sync fails too) after saying acknowledged changes were durable
    r = d.redis()
    with pytest.raises(redis.ResponseError, match="write path failed"):
        r.incr("own0")
    d.proc.send_signal(signal.SIGTERM)
    assert d.wait_exit() == 1
    assert "final sync failed" in d.log()
    # When it is restarted on a healthy disk
    faults.clear()
    d.start()
    # Then every acknowledged change is there, and nothing never attempted
    r = d.redis()
    for k in acked:
        assert acked[k] <= int(r.get(k)) <= attempted[k], k
    assert shared_acked[0] <= int(r.get("shared")) <= shared_attempts[0]
    # and changes are accepted again
    assert r.incr("own0") == int(r.get("own0"))
    ready = session(d).get(d.url + "/readyz", timeout=TIMEOUT)
    assert ready.status_code == 200, ready.text
    d.stop()


# ---- 2. reads wait only for their own counter's sync ------------------------

def test_read_of_a_durable_counter_does_not_wait_for_another_counters_slow_sync(
        faulty):
    # Given a durable counter, connections already open, and slow syncs
    d, faults = faulty()
    r = d.redis()
    r.set("durable", 7)
    s = session(d)
    s.get(counter_url(d, "durable"), timeout=TIMEOUT)
    m = Stream(d.mc_port)
    faults.slow(SLOW_S)
    # When another counter's INCR waits for its sync
    w = Stream(d.port)
    t0 = time.monotonic()
    w.send(resp("INCR", "other"))
    wait_change_pending(d)
    # Then the durable counter reads at once over RESP, HTTP and memcached
    got, resp_s = timed(lambda: r.get("durable"))
    assert got == "7"
    got, http_s = timed(lambda: s.get(counter_url(d, "durable"),
                                      timeout=TIMEOUT))
    assert got.json()["value"] == 7
    m.send(b"get durable\r\n")
    got, mc_s = timed(lambda: m.read_until(b"END\r\n"))
    assert got == mc_value("durable", 7)
    # while the INCR was still waiting (so the reads ran inside its sync)
    assert w.drain(0) == (b"", False)
    assert max(resp_s, http_s, mc_s) < FAST_S, (resp_s, http_s, mc_s)
    # and the INCR itself is answered only after its slow sync
    assert w.read_until(b"\r\n") == b":1\r\n"
    assert time.monotonic() - t0 >= SLOW_S
    w.close()
    m.close()


def read_all_protocols(d, key):
    """GET key over RESP, HTTP and memcached at once, each on a new
    connection: {protocol: (reply, time.monotonic() when it came)}.  A
    stream reply is (bytes, closed): a whole reply, or what came before the
    server closed the connection; an HTTP reply is (status, JSON body)."""
    def over_stream(port, request, complete):
        c = Stream(port)
        c.send(request)
        c.sock.settimeout(TIMEOUT)
        out = b""
        try:
            while not complete(out):
                chunk = c.sock.recv(65536)
                if not chunk:
                    return out, True
                out += chunk
        except ConnectionResetError:
            return out, True
        finally:
            c.close()
        return out, False

    def resp_complete(b):  # one bulk string, nil or error reply
        if b.startswith(b"$") and not b.startswith(b"$-1"):
            return b.count(b"\r\n") >= 2
        return b.endswith(b"\r\n")

    def mc_complete(b):  # VALUE ... END, END alone, or an error line
        return b.endswith(b"END\r\n") or (b.endswith(b"\r\n") and
                                          b.startswith(b"SERVER_ERROR"))

    def over_http():
        r = session(d).get(counter_url(d, key), timeout=TIMEOUT)
        return r.status_code, r.json()

    readers = {
        "resp": lambda: over_stream(d.port, resp("GET", key), resp_complete),
        "http": over_http,
        "mc": lambda: over_stream(d.mc_port, b"get %s\r\n" % key.encode(),
                                  mc_complete),
    }
    with ThreadPoolExecutor(len(readers)) as pool:
        jobs = {p: pool.submit(lambda f=f: (f(), time.monotonic()))
                for p, f in readers.items()}
        return {p: j.result() for p, j in jobs.items()}


def incr_in_slow_sync(faulty, key):
    """Given key = 1, durable, slow syncs, and an INCR of key waiting for its
    sync: (server, faults, the INCR's connection, when it was sent)."""
    d, faults = faulty()
    d.redis().set(key, 1)
    faults.slow(SLOW_S)
    w = Stream(d.port)
    t0 = time.monotonic()
    w.send(resp("INCR", key))
    wait_change_pending(d)
    return d, faults, w, t0


def test_read_of_the_counter_being_changed_waits_until_its_change_is_durable(
        faulty):
    # Given x = 1, durable, and an INCR of x waiting for its slow sync
    d, _, w, t0 = incr_in_slow_sync(faulty, "x")
    # When x is read over every protocol while that waits
    got = read_all_protocols(d, "x")
    # Then each read shows the new value, but not before the change's sync
    # (it began after t0) had run
    assert w.read_until(b"\r\n") == b":2\r\n"
    assert got["resp"][0] == (b"$1\r\n2\r\n", False), got
    assert got["http"][0] == (200, {"key": "x", "value": 2}), got
    assert got["mc"][0] == (mc_value("x", 2), False), got
    for p, (_, when) in got.items():
        assert when - t0 >= SLOW_S, (p, when - t0)
    w.close()


def test_read_of_the_counter_being_changed_never_shows_a_change_whose_sync_fails(
        faulty):
    # Given x = 1, durable, and an INCR of x waiting for its slow sync
    d, faults, w, _ = incr_in_slow_sync(faulty, "x")
    # When x is read over every protocol and that sync then fails
    with ThreadPoolExecutor(1) as pool:
        reads = pool.submit(read_all_protocols, d, "x")
        time.sleep(SLOW_S / 3)
        faults.fail()
        got = reads.result()
    # Then no read showed 2: the stream connections were closed without a
    # reply and HTTP answered 503
    assert w.drain(TIMEOUT) == (b"", True)
    assert got["resp"][0] == (b"", True), got
    assert got["mc"][0] == (b"", True), got
    status, body = got["http"][0]
    assert status == 503 and body["type"] in (
        "urn:tally:problem:write-failed", "urn:tally:problem:not-durable"), got
    # and later reads of x are refused, never answered with a lost value
    with RawResp(d.host, d.port) as c:
        assert isinstance(c.cmd("GET", "x"), RespError)
    w.close()
