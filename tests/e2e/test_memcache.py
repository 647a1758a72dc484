# SPDX-License-Identifier: BSD-3-Clause
"""End-to-end tests of tallyd's memcached text protocol port.

Real clients against the real binary: pymemcache for the commands, a raw
socket for the bytes no library sends, and a real memcached 1.6 (started here
on a free loopback port) as the reference: the same sessions go to both and
the replies must match byte for byte wherever docs/memcache.md does not say
tally differs.  The durability scenarios run across a graceful restart and a
SIGKILL, and a side-by-side run shows memcached's counts gone after a restart
while tally's are intact.
"""

import os
import shutil
import socket
import subprocess
import time

import pytest
import requests
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError

from conftest import free_port

MEMCACHED = shutil.which("memcached")


# ---- helpers ----------------------------------------------------------------

def mc_port(server):
    if not server.mc_port:
        pytest.skip("the memcached port is not configured")
    return server.mc_port


def client(server):
    """A pymemcache client with tally's password when one is set."""
    c = Client((server.host, mc_port(server)), connect_timeout=10,
               timeout=10, default_noreply=False)
    if getattr(server, "password", None):
        # memcached -Y style login: a set whose data is "user password".
        c.set("auth", f"user {server.password}")
    return c


def raw(port, data, host="127.0.0.1", quiet=0.3, timeout=10):
    """Send data on a fresh connection; return (reply bytes, closed) once the
    server has been quiet for `quiet` seconds or closed the connection."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        s.settimeout(quiet)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return out, False
            except ConnectionResetError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
        return out, False


def raw_until(port, data, end, host="127.0.0.1", timeout=10):
    """Send data, read until the reply ends with `end`."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while not out.endswith(end):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


class Memcached:
    """A real memcached on a free loopback port (the reference server).
    Subclasses start another reference server by overriding argv()."""

    def __init__(self):
        self.port = free_port()
        self.proc = None

    def argv(self):
        argv = [MEMCACHED, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0"]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # memcached refuses to run as root
        return argv

    def start(self):
        argv = self.argv()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{argv[0]} did not start")

    def restart(self):
        self.proc.kill()
        self.proc.wait()
        return self.start()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def memcached():
    if not MEMCACHED:
        pytest.skip("memcached is not installed")
    m = Memcached().start()
    yield m
    m.stop()


# ---- every command, through a real client ------------------------------------

def test_storage_and_retrieval(tallyd, key):
    c = client(tallyd)
    k = key("a")
    assert c.get(k) is None
    assert c.set(k, 10) is True
    assert c.get(k) == b"10"
    assert c.add(k, 1) is False
    assert c.replace(k, -3) is True
    assert c.get(k) == b"-3"
    assert c.add(key("b"), 7) is True
    assert c.replace(key("nope"), 1) is False
    assert c.get_many([k, key("b"), key("nope")]) == {k: b"-3", key("b"): b"7"}
    value, cas = c.gets(k)
    assert value == b"-3"
    assert c.cas(k, 5, cas) is True
    assert c.cas(k, 6, cas) is False     # the value moved on
    assert c.cas(key("nope"), 1, b"1") is None
    assert c.get(k) == b"5"
    with pytest.raises(MemcacheClientError):
        c.set(k, "not a number")
    assert c.get(k) == b"5"


def test_arithmetic(tallyd, key):
    c = client(tallyd)
    k = key("n")
    assert c.incr(k, 1) is None           # NOT_FOUND: memcached never autovivifies
    c.set(k, 10)
    assert c.incr(k, 5) == 15
    assert c.decr(k, 100) == 0            # decr stops at 0
    assert c.incr(k, 2**63 - 1) == 2**63 - 1
    with pytest.raises(MemcacheClientError):
        c.incr(k, 1)                       # past INT64_MAX: an error, no wrap
    assert c.get(k) == str(2**63 - 1).encode()
    c.incr(k, 1, noreply=True)  # the error is not sent back either
    assert c.get(k) == str(2**63 - 1).encode()


def test_delete_touch_version_stats_misc(tallyd, key):
    c = client(tallyd)
    k = key("d")
    c.set(k, 1)
    assert c.touch(k, 100) is True
    assert c.touch(key("nope"), 100) is False
    assert c.delete(k) is True
    assert c.delete(k, noreply=False) is False
    assert c.version()
    stats = c.stats()
    for name in (b"pid", b"uptime", b"time", b"version", b"curr_connections",
                 b"total_connections", b"cmd_get", b"cmd_set", b"get_hits",
                 b"get_misses", b"incr_hits", b"incr_misses", b"decr_hits",
                 b"decr_misses", b"curr_items", b"total_items"):
        assert name in stats, name
    if tallyd.proc is not None:
        assert stats[b"pid"] == tallyd.proc.pid
    assert stats[b"curr_connections"] >= 1
    with pytest.raises(MemcacheClientError):
        c.flush_all()                      # refused without --allow-flush
    assert raw(mc_port(tallyd), b"verbosity 1\r\nmn\r\n")[0] == b"OK\r\nMN\r\n"
    out, closed = raw(mc_port(tallyd), b"quit\r\n")
    assert (out, closed) == (b"", True)


def test_meta_commands(tallyd, key):
    k = key("m").encode()
    out = raw_until(mc_port(tallyd),
                    b"ma %s\r\nma %s N0 J10 v\r\nma %s v D5 MD\r\nmg %s v k\r\n"
                    b"ms %s 2 MR\r\n-7\r\nmg %s v\r\nmd %s q\r\nmg %s v\r\n"
                    b"mn\r\n" % ((k,) * 8), b"MN\r\n")
    assert out == (b"NF\r\nVA 2\r\n10\r\nVA 1\r\n5\r\nVA 1 k%s\r\n5\r\n"
                   b"HD\r\nVA 2\r\n-7\r\nEN\r\nMN\r\n" % k)


@pytest.mark.own_server
def test_flush_all_when_allowed_is_durable(tallyd_factory):
    t = tallyd_factory(allow_flush=True)
    c = client(t)
    for i in range(50):
        c.set(f"f{i}", i)
    c.flush_all()
    assert c.get("f3") is None
    t.restart(crash=True)
    c = client(t)
    assert c.get_many([f"f{i}" for i in range(50)]) == {}


# ---- durability: the service's three scenarios --------------------------------

@pytest.mark.own_server
@pytest.mark.parametrize("crash", [False, True], ids=["restart", "sigkill"])
def test_three_scenarios_survive(tallyd_factory, crash):
    t = tallyd_factory()
    c = client(t)
    c.set("at10", 10)
    c.set("to11", 10)
    assert c.incr("to11", 1) == 11
    c.set("to15", 10)
    for _ in range(5):
        c.incr("to15", 1)
    t.restart(crash=crash)
    c = client(t)
    assert c.get_many(["at10", "to11", "to15"]) == {
        "at10": b"10", "to11": b"11", "to15": b"15"}


def test_counter_made_over_memcached_reads_over_resp_and_http(tallyd, key):
    k = key("x")
    c = client(tallyd)
    c.set(k, 40)
    assert c.incr(k, 2) == 42
    assert tallyd.redis().get(k) in (b"42", "42")
    if not tallyd.http_port:
        pytest.skip("no HTTP port")
    try:
        r = requests.get(f"{tallyd.url}/v1/counters/{k}", timeout=5)
    except requests.ConnectionError:
        pytest.skip("the HTTP front end is not serving yet")
    assert r.status_code == 200
    assert r.json() == {"key": k, "value": 42}


# ---- bad input ------------------------------------------------------------------

def test_bad_input_never_harms_other_clients(tallyd, key):
    port = mc_port(tallyd)
    k = key("ok")
    good = client(tallyd)
    good.set(k, 1)
    long_key = b"k" * 251
    assert raw(port, b"get " + long_key + b"\r\n")[0] == \
        b"CLIENT_ERROR bad command line format\r\n"
    assert raw(port, b"bogus\r\n\r\n")[0] == b"ERROR\r\nERROR\r\n"
    assert raw(port, b"set x 0 0 3\r\n10\r\nmn\r\n")[0] == \
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"
    out, closed = raw(port, b"x" * 5000)
    assert closed and out in (b"", b"CLIENT_ERROR line too long\r\n")
    out, closed = raw(port, b"set big 0 0 2000000\r\n" + b"1" * 2000000 +
                      b"\r\nmn\r\n", quiet=1)
    assert out == b"SERVER_ERROR object too large for cache\r\nMN\r\n"
    assert good.incr(k, 1) == 2


# ---- byte for byte against memcached ----------------------------------------------

# Sessions whose replies must be identical (values are integers, no cas
# uniques or versions in the replies).  Each runs on a fresh connection.
SESSIONS = [
    b"get a\r\nset a 0 0 2\r\n10\r\nget a\r\n",
    b"set a 0 0 2\r\n10\r\nincr a 5\r\ndecr a 100\r\nincr a\r\nincr a x\r\n"
    b"incr a -1\r\nincr a 18446744073709551616\r\n",
    b"incr nope 1\r\ndecr nope 1\r\n",
    b"set a 0 0 3\r\n10\r\nget a\r\n",
    b"set a 0 0 1\r\n10\r\nget a\r\n",
    b"set a 0 0 x\r\n10\r\nset a 0 0 -1\r\nset a 0 0\r\n",
    b"set a 0 0 2 noreply\r\n10\r\nget a\r\n",
    b"set " + b"k" * 250 + b" 0 0 1\r\n1\r\nget " + b"k" * 250 + b"\r\n",
    b"set " + b"k" * 251 + b" 0 0 1\r\n1\r\nmn\r\n",
    b"set " + b"k" * 251 + b" 0 0 1\r\nmn\r\n",
    b"get a " + b"k" * 251 + b" b\r\nmn\r\n",
    b"delete a\r\nset a 0 0 1\r\n1\r\ndelete a\r\ndelete a noreply\r\n"
    b"delete a 0\r\ndelete a 1\r\ndelete a x\r\n",
    b"touch a 0\r\nset a 0 0 1\r\n1\r\ntouch a 10\r\ntouch a x\r\ntouch a\r\n",
    b"verbosity 1\r\nverbosity\r\nverbosity x\r\nverbosity 1 noreply\r\nmn\r\n",
    b"GET a\r\n\r\nget\ta\r\nget a\n",
    b"add a 0 0 1\r\n1\r\nadd a 0 0 1\r\n2\r\nreplace b 0 0 1\r\n1\r\n"
    b"replace a 0 0 1\r\n3\r\nget a b\r\n",
    b"set a x 0 1\r\n1\r\nset a 0 0 1 2\r\n1\r\nset a 0 0 1 noreply extra\r\n1\r\n",
    b"incr a 1 noreply\r\nincr a 1 2\r\nincr\r\nmn\r\n",
    b"set a 0 0 1\r\n9\r\ncas b 0 0 1 1\r\n1\r\ncas a 0 0 1\r\n",
    b"get " + b" ".join(b"k%d" % i for i in range(1000)) + b"\r\nmn\r\n",
    b"set a 0 0 5 noreply\r\n12\r\nmn\r\n",
    b"mn\r\nmn extra\r\nquit\r\nmn\r\n",
    b"set n 0 0 1\r\n5\r\nmg n\r\nmg n v\r\nmg n v k f s t\r\nmg missing v\r\n"
    b"mg missing v q\r\nmg n v q Oabc k\r\nmg miss v Oab k\r\nmn\r\n",
    b"mg\r\nmg n zz\r\nmg n v v\r\nmg " + b"k" * 251 + b" v\r\nmg n O" +
    b"x" * 40 + b"\r\nmg n Tx\r\nmn\r\n",
    b"ma x\r\nma x N0\r\nma x v\r\nma x N0 J10 v\r\nma y N0 J10 v D5 MI\r\n"
    b"ma y v D3 MD\r\nma y v D100 M-\r\nma y v M+ q\r\nma y q\r\n"
    b"ma y v t k Oop\r\nmn\r\n",
    b"ma nf q\r\nma nf q Oop\r\nma nf Dx\r\nma nf MX\r\nma nf Jx N0\r\n"
    b"ma nf N0 q v\r\nma k N0 J5 D2 v q\r\nma k q\r\nmg k v\r\nmn\r\n",
    b"ms m 2\r\n10\r\nms m 2 k Oo\r\n11\r\nms m 2 q\r\n12\r\nms m 2 ME\r\n13\r\n"
    b"ms m2 2 MR\r\n14\r\nms m 2 MR q\r\n15\r\nmg m v\r\nmn\r\n",
    b"ms m S2\r\n10\r\nms m\r\nms m x\r\n10\r\nmn\r\n",
    b"ms a 1 Z\r\n1\r\nms a 1 MX\r\n1\r\nms a 1 Fx\r\n1\r\nms a 1 Cx\r\n1\r\n"
    b"ms a 1 q q\r\n1\r\nms m 3\r\n10\r\nmn\r\n",
    b"ms m 2 T0 F5\r\n10\r\nmd m\r\nmd m\r\nmd m q\r\nmd m k Oo\r\nmd a Z\r\n"
    b"md a Cx\r\nmd\r\nmn\r\n",
    b"ms e 1 C5\r\n1\r\nma e C5\r\nmd e C5 Oz k\r\nma e N0 C5 v\r\nmn\r\n",
]


@pytest.mark.own_server
def test_replies_match_memcached_byte_for_byte(tallyd_factory, memcached):
    t = tallyd_factory()
    for session in SESSIONS:
        want = raw(memcached.port, session)
        got = raw(mc_port(t), session)
        assert got == want, session[:200]
        # Leave both servers empty for the next session.
        for k in (b"a", b"b", b"n", b"x", b"y", b"k", b"m", b"m2", b"e", b"nf",
                  b"k" * 250):
            raw(memcached.port, b"delete " + k + b" noreply\r\n", quiet=0.05)
            raw(mc_port(t), b"delete " + k + b" noreply\r\n", quiet=0.05)


@pytest.mark.own_server
@pytest.mark.parametrize("crash", [False, True], ids=["restart", "sigkill"])
def test_side_by_side_memcached_forgets_tally_keeps(tallyd_factory, memcached,
                                                    crash):
    t = tallyd_factory()
    ref = Client(("127.0.0.1", memcached.port), default_noreply=False)
    ours = client(t)
    for c in (ref, ours):
        for name in ("pageviews", "signups"):
            c.set(name, 0)
        for _ in range(100):
            c.incr("pageviews", 1)
        for _ in range(7):
            c.incr("signups", 3)
    want = {"pageviews": b"100", "signups": b"21"}
    assert ref.get_many(want) == want
    assert ours.get_many(want) == want
    ref.close()
    memcached.restart()
    t.restart(crash=crash)
    ref = Client(("127.0.0.1", memcached.port), default_noreply=False)
    assert ref.get_many(want) == {}        # memcached's counts are gone
    assert client(t).get_many(want) == want  # tally's are intact
