# SPDX-License-Identifier: BSD-3-Clause
"""Helpers the test_pg_* files share (no tests here): a tallyd on a
PostgreSQL database, the three front ends behind one small interface,
waiting for a server to recover by itself, and the load that counts both
bounds (acknowledged <= final <= attempted) while servers are killed.

The servers come from pgserver.py; the fixtures from conftest.py.  Each
test_pg_* file states what it disrupts and what must hold afterwards.
"""

import random
import socket
import threading
import time

import pytest
import requests
from pymemcache.client.base import Client as McClient

from conftest import TALLYD, Closed, RawResp, RespError, _tallyd_has_store
from test_http_util import TIMEOUT, counter_url, get_value

RECOVER_TIMEOUT = 30    # seconds tallyd may take to reconnect by itself

_has_store = None


def require_store():
    """Skip unless this tallyd takes --store (the store work merged)."""
    global _has_store
    if _has_store is None:
        _has_store = _tallyd_has_store()
    if not _has_store:
        pytest.skip(f"{TALLYD} has no --store option (the PostgreSQL store "
                    "is not in this build)")


def on_pg(factory, server, db, **flags):
    """A started tallyd (from tallyd_factory) on database db of server."""
    require_store()
    flags.setdefault("store", server.dsn(db))
    return factory(**flags)


def eventually(fn, timeout=RECOVER_TIMEOUT, what="the call"):
    """Call fn until it returns without raising; return its result.  Fails
    the test with the last error if it never succeeds within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except Exception as e:  # any failure while the server recovers
            if time.monotonic() > deadline:
                pytest.fail(f"{what} still failing after {timeout}s: {e!r}")
            time.sleep(0.1)


# ---- the three front ends behind one interface ----------------------------

class Resp:
    name = "resp"

    def __init__(self, d):
        self.d = d

    def set(self, k, v):
        assert self.d.redis().set(k, v) is True

    def incr(self, k):
        return self.d.redis().incr(k)

    def get(self, k):
        v = self.d.redis().get(k)
        return None if v is None else int(v)


class Http:
    name = "http"

    def __init__(self, d):
        self.d = d

    def set(self, k, v):
        r = requests.put(counter_url(self.d, k), json={"value": v},
                         timeout=TIMEOUT)
        assert r.status_code == 200, (r.status_code, r.text)

    def incr(self, k):
        r = requests.post(counter_url(self.d, k, "increment"), timeout=TIMEOUT)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()["value"]

    def get(self, k):
        return get_value(requests.Session(), self.d, k)


class Memcache:
    name = "memcache"

    def __init__(self, d):
        self.d = d

    def _client(self):
        return McClient((self.d.host, self.d.mc_port), connect_timeout=10,
                        timeout=10, default_noreply=False)

    def set(self, k, v):
        c = self._client()
        try:
            assert c.set(k, str(v).encode()) is True
        finally:
            c.close()

    def incr(self, k):
        c = self._client()
        try:
            return c.incr(k, 1)
        finally:
            c.close()

    def get(self, k):
        c = self._client()
        try:
            v = c.get(k)
        finally:
            c.close()
        return None if v is None else int(v)


PROTOCOLS = [pytest.param(Resp, id="resp"), pytest.param(Http, id="http"),
             pytest.param(Memcache, id="memcache")]


# ---- load with both bounds ------------------------------------------------

class Incrementer(threading.Thread):
    """One client sending pipelined INCRs over raw RESP (no library retries,
    so each request is sent exactly once) to one of servers (a list it may
    change under it: reconnects pick again), on the hot counter and on cold
    ones of its own.  Counts per counter what was attempted (sent) and
    acknowledged (an integer reply arrived).  An error reply that says
    "nothing changed" (the store was unreachable: -TRYAGAIN) is taken at its
    word and no longer counted as attempted, so the upper bound checks that
    claim too; any other error (an outcome unknown after a lost COMMIT)
    stays attempted, not acknowledged."""

    def __init__(self, servers, idx, stop, cold=20, hot="hot"):
        super().__init__(daemon=True)
        self.servers, self.idx, self.stop = servers, idx, stop
        self.hot = hot
        self.cold = [f"cold:{idx}:{i}" for i in range(cold)]
        self.acked, self.attempted = {}, {}
        self.values = {k: [] for k in self.cold}  # single writer: must rise
        self.errors = []   # (key, text) of replies with an unknown outcome
        self.refused = []  # (key, text) of replies that say nothing changed
        self.rng = random.Random(idx)

    def connect(self):
        while not self.stop.is_set():
            d = self.rng.choice(self.servers)
            try:
                return RawResp(d.host, d.port, timeout=5)
            except OSError:
                time.sleep(0.01)  # that one is down; it comes back soon
        return None

    def run(self):
        conn = None
        while not self.stop.is_set():
            if conn is None:
                conn = self.connect()
                if conn is None:
                    return
            batch = [self.hot if self.rng.random() < 0.5
                     else self.rng.choice(self.cold)
                     for _ in range(self.rng.randint(1, 8))]
            for k in batch:
                self.attempted[k] = self.attempted.get(k, 0) + 1
            try:
                conn.send(b"".join(RawResp.encode("INCR", k) for k in batch))
                for k in batch:
                    reply = conn.read()
                    if isinstance(reply, RespError):
                        if "nothing changed" in reply.text:
                            self.attempted[k] -= 1
                            self.refused.append((k, reply.text))
                        else:
                            self.errors.append((k, reply.text))
                        continue
                    self.acked[k] = self.acked.get(k, 0) + 1
                    if k in self.values:
                        self.values[k].append(reply)
            except (Closed, OSError, socket.timeout):
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


def run_load(servers, disrupt, clients=8, cold=20):
    """Start clients Incrementers on servers, call disrupt() while they run
    (it kills and restarts things), stop them, and return them."""
    stop = threading.Event()
    workers = [Incrementer(servers, i, stop, cold) for i in range(clients)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.3)  # traffic before the first disruption
        disrupt()
        time.sleep(0.3)  # and after the last
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert not any(w.is_alive() for w in workers), "a client thread hung"
    return workers


def check_bounds(workers, read):
    """Per counter: acknowledged <= final <= attempted, and the INCR replies
    of each single-writer counter rose and never passed its final value.
    read(keys) returns the final values (None for a missing counter).
    Returns (acknowledged, final) summed over every counter."""
    keys = sorted({k for w in workers for k in w.attempted})
    finals = dict(zip(keys, read(keys)))
    acked_sum = final_sum = 0
    for k in keys:
        acked = sum(w.acked.get(k, 0) for w in workers)
        attempted = sum(w.attempted.get(k, 0) for w in workers)
        final = finals[k] or 0
        assert acked <= final <= attempted, (
            f"{k}: acknowledged {acked}, final {final}, attempted {attempted}")
        acked_sum += acked
        final_sum += final
    for w in workers:
        for k, vals in w.values.items():
            assert all(a < b for a, b in zip(vals, vals[1:])), (
                f"{k}: INCR replies went backwards or repeated: {vals}")
            assert not vals or vals[-1] <= (finals.get(k) or 0), (
                f"{k}: INCR once answered {vals[-1]}, the counter reads "
                f"{finals.get(k)}")
    assert acked_sum > 0, "no increment was ever acknowledged"
    return acked_sum, final_sum


def read_all(d):
    """read(keys) for check_bounds: MGET through tallyd d, retried while it
    recovers."""
    def read(keys):
        return [None if v is None else int(v) for v in
                eventually(lambda: d.redis().mget(keys), what="MGET")]
    return read


def store_errors(workers):
    """Error replies whose outcome is unknown, and refusals that are not
    -TRYAGAIN: while PostgreSQL stays up there must be none.  (A tallyd
    just started refuses with -TRYAGAIN until its store is connected.)"""
    return ([e for w in workers for e in w.errors]
            + [e for w in workers for e in w.refused
               if not e[1].startswith("TRYAGAIN ")])


class OnceClient(threading.Thread):
    """Sends INCRBY.ONCE once 1 <id> for ids 0, 1, 2, ... over raw RESP,
    each id again and again until a reply is an integer (an error or a lost
    connection leaves the outcome unknown: the retry resolves it).  When
    told to stop it finishes the id in hand, so every id it began is
    acknowledged; replies[i] is what id i was answered."""

    def __init__(self, d, stop, prefix):
        super().__init__(daemon=True)
        self.d, self.stop, self.prefix = d, stop, prefix
        self.replies = []
        self.retries = 0
        self.failed = None

    def run(self):
        self.conn = None
        try:
            while not self.stop.is_set():
                reply = self.until_acknowledged(len(self.replies))
                if reply is None:
                    return
                self.replies.append(reply)
        finally:
            if self.conn is not None:
                self.conn.close()

    def until_acknowledged(self, i):
        """Send id i until an integer comes back; None (and self.failed) if
        that takes over a minute after stop was set."""
        deadline = None
        while True:
            if self.stop.is_set() and deadline is None:
                deadline = time.monotonic() + 60
            if deadline and time.monotonic() > deadline:
                self.failed = f"id {i} never acknowledged"
                return None
            try:
                if self.conn is None:
                    self.conn = RawResp(self.d.host, self.d.port, timeout=5)
                reply = self.conn.cmd("INCRBY.ONCE", "once", 1,
                                      f"{self.prefix}-{i}")
                if not isinstance(reply, RespError):
                    return reply
            except (Closed, OSError, socket.timeout):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
            self.retries += 1
            time.sleep(0.02)
