# SPDX-License-Identifier: BSD-3-Clause
"""What a tallyd on PostgreSQL does beyond the counters themselves.

--dir is left alone: the engine is not opened, so the directory is neither
written nor locked, and instances may share one.  A host that accepts
connections and never answers holds nothing for long: requests fail with
the clear unavailable error within a bound, /readyz is 503, and tallyd goes
on to the next host of its URI or reconnects by itself.
"""

import re
import socket
import threading
import time

import pytest
import requests

from conftest import RawResp, RespError
from pg_util import eventually, on_pg, require_store
from test_http_util import TIMEOUT, assert_problem

ANSWER_S = 2     # connect_timeout in the URIs below: the answer bound
FAST = ANSWER_S + 3.0


class Listener:
    """A TCP server on a free loopback port; on_conn(sock) runs on its
    accepting thread for each connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.socks.append(c)
            self.on_conn(c)

    def close(self):
        self.sock.close()
        for s in self.socks:
            s.close()


class Silent(Listener):
    """Accepts every connection and never sends a byte (a host whose
    PostgreSQL hangs, a black-holing proxy)."""

    def on_conn(self, c):
        pass

    @property
    def accepted(self):
        return len(self.socks)


class Freezer(Listener):
    """A TCP proxy to upstream that can go silent: while frozen it
    forwards nothing in either direction and keeps every socket open."""

    def __init__(self, upstream_port):
        self.up = upstream_port
        self.frozen = threading.Event()
        super().__init__()

    def on_conn(self, c):
        u = socket.create_connection(("127.0.0.1", self.up))
        self.socks.append(u)
        for a, b in ((c, u), (u, c)):
            threading.Thread(target=self._pump, args=(a, b),
                             daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                while self.frozen.is_set():
                    time.sleep(0.05)
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def timed(fn):
    t = time.monotonic()
    out = fn()
    return out, time.monotonic() - t

pytestmark = [pytest.mark.own_server, pytest.mark.needs_store]


def test_remote_store_neither_writes_nor_locks_dir(tallyd_factory, pg_db,
                                                   tmp_path):
    server, db = pg_db
    shared = tmp_path / "shared"
    # Given two tallyds on one database, both given the same --dir
    a = on_pg(tallyd_factory, server, db, dir=shared)
    b = on_pg(tallyd_factory, server, db, dir=shared)
    # When both serve
    assert a.redis().incr("k") == 1
    assert b.redis().incr("k") == 2
    a.stop()
    # Then neither made a file there (no log, no snapshot, no lock)
    assert list(shared.iterdir()) == []
    assert "--dir unused" in b.run_log()


def test_silent_first_host_is_given_up_and_the_next_one_serves(
        tallyd_factory, pg_db):
    server, db = pg_db
    silent = Silent()
    try:
        # Given a URI whose first host accepts and never answers
        store = (f"postgresql://postgres@127.0.0.1:{silent.port},"
                 f"127.0.0.1:{server.port}/{db}?connect_timeout={ANSWER_S}")
        require_store()
        d = tallyd_factory(store=store, wait_store=False)
        # Then tallyd gives up on it and serves from the second host
        assert eventually(lambda: d.redis().incr("k"),
                          timeout=4 * ANSWER_S) == 1
        assert silent.accepted >= 1
        assert re.search(r"no answer from 127\.0\.0\.1:%d" % silent.port,
                         d.run_log()), d.run_log()
    finally:
        silent.close()


def test_silent_host_fails_requests_in_time_and_is_retried(tallyd_factory):
    silent = Silent()
    try:
        require_store()
        d = tallyd_factory(store=f"postgresql://postgres@127.0.0.1:"
                           f"{silent.port}/t?connect_timeout={ANSWER_S}",
                           wait_store=False)
        # Requests get the clear unavailable error, within the bound
        with RawResp(d.host, d.port, timeout=30) as c:
            for args in (("INCR", "k"), ("GET", "k")):
                reply, took = timed(lambda: c.cmd(*args))
                assert isinstance(reply, RespError), (args, reply)
                assert reply.text.startswith("TRYAGAIN "), reply
                assert took < FAST, f"{args} took {took:.1f}s"
        # And /readyz is 503, saying the server does not answer
        resp = requests.get(d.url + "/readyz", timeout=TIMEOUT)
        body = assert_problem(resp, 503)
        assert re.search(r"postgres", body["detail"], re.I), body
        # And tallyd gives up on the connect and tries again by itself
        deadline = time.monotonic() + 4 * ANSWER_S + 5
        while silent.accepted < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert silent.accepted >= 2, "the silent connect was never retried"
        assert "no answer from" in d.run_log(), d.run_log()
    finally:
        silent.close()


def test_server_gone_silent_mid_transaction_fails_in_time_then_recovers(
        tallyd_factory, pg_db):
    server, db = pg_db
    proxy = Freezer(server.port)
    try:
        require_store()
        d = tallyd_factory(store=f"postgresql://postgres@127.0.0.1:"
                           f"{proxy.port}/{db}?connect_timeout={ANSWER_S}")
        r = d.redis()
        assert r.incr("k") == 1
        # Given the path to PostgreSQL goes silent (nothing refused, no RST)
        proxy.frozen.set()
        # Then an increment fails within the bound, with the clear error
        # that its outcome is unknown (or that nothing was sent)
        with RawResp(d.host, d.port, timeout=30) as c:
            reply, took = timed(lambda: c.cmd("INCR", "k"))
        assert isinstance(reply, RespError), reply
        assert re.match(r"(ERR outcome unknown|TRYAGAIN)\b", reply.text), reply
        assert took < FAST, f"INCR took {took:.1f}s"
        # And /readyz is 503 until the path answers again
        assert_problem(requests.get(d.url + "/readyz", timeout=TIMEOUT), 503)
        # When it does, tallyd reconnects by itself; nothing acknowledged
        # was lost, and the unknown increment either counted or did not
        proxy.frozen.clear()
        v = eventually(lambda: d.redis().incr("k"), timeout=4 * ANSWER_S + 10)
        assert v in (2, 3), v
        eventually(lambda: requests.get(d.url + "/readyz",
                                        timeout=TIMEOUT).raise_for_status())
    finally:
        proxy.close()
