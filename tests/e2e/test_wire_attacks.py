# SPDX-License-Identifier: BSD-3-Clause
"""Hostile bytes on tallyd's RESP and memcached ports (issue 8), black box.

Cross-protocol attacks: a web page can make a browser send an HTTP request to
any port on localhost, and a line-based server that skips the lines it does
not understand runs the rest of the body as commands.  Redis hangs up on a
"POST" or "Host:" command and memcached on a line that ends in "HTTP/...";
tallyd must do the same, run nothing, and log it with the peer's address.
Then the limits: inline RESP commands keep the same limits as arrays, an
inline line stops at 64 KiB, a --password-file holding a NUL byte is
refused, and memcached numbers are read exactly as memcached reads them.

Wherever the reference has the behaviour, a real redis-server or memcached
(started here on a free loopback port) gets the same bytes and must answer
the same.  Each test starts its own tallyd.
"""

import shutil
import socket
import time

import pytest
import redis
from pymemcache.client.base import Client

from test_memcache import Memcached, raw, raw_until
from test_memcache import memcached  # noqa: F401 (the fixture)

pytestmark = pytest.mark.own_server

REDIS_SERVER = shutil.which("redis-server")
ATTACK_LOG = "Possible SECURITY ATTACK detected"


class RedisServer(Memcached):
    """A real redis-server on a free loopback port, no persistence."""

    def __init__(self, workdir):
        super().__init__()
        self.workdir = workdir
        self.log_path = workdir / "redis.log"

    def argv(self):
        return [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                "--logfile", str(self.log_path)]

    def log(self):
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def redis_server(tmp_path):
    if not REDIS_SERVER:
        pytest.skip("redis-server is not installed")
    d = tmp_path / "redis"
    d.mkdir()
    r = RedisServer(d).start()
    yield r
    r.stop()


def exchange(port, data, quiet=0.5):
    """Send data on a fresh connection: (reply bytes, closed?, our address)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        me = "%s:%d" % s.getsockname()
        s.sendall(data)
        s.settimeout(quiet)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out, True, me
                out += chunk
        except socket.timeout:
            return out, False, me
        except ConnectionResetError:
            return out, True, me


def wait_for_log(server, text, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log():
            return True
        time.sleep(0.02)
    return False


# ---- RESP: POST and Host: ---------------------------------------------------

BROWSER_POST = (b"POST / HTTP/1.1\r\nHost: evil.example\r\n"
                b"Content-Type: text/plain\r\nContent-Length: 9\r\n\r\n"
                b"INCR k\r\n\r\n")


def test_http_post_body_does_not_run_on_resp_port(tallyd_factory,
                                                  redis_server):
    # Given tallyd and a real Redis, when a browser's POST arrives on each,
    for port in (tallyd_factory().port, redis_server.port):
        out, closed, _ = exchange(port, BROWSER_POST)
        # then the connection is closed without a reply,
        assert (out, closed) == (b"", True), port
        # and the INCR in its body never ran.
        assert redis.Redis(port=port).get("k") is None, port


def test_host_line_after_get_line_closes_like_redis(tallyd_factory,
                                                   redis_server):
    # GET is a real command: "GET / HTTP/1.1" is a wrong-arity error, and the
    # Host: line after it is the one that hangs up, on both servers.
    attack = b"GET / HTTP/1.1\r\nHost: evil\r\n\r\nSET k 1\r\n"
    t = tallyd_factory()
    assert exchange(redis_server.port, attack)[1] is True
    # tally still sends the reply of what ran before the Host: line (Redis
    # drops it with the connection; docs/resp.md).
    assert exchange(t.port, attack)[:2] == (
        b"-ERR wrong number of arguments for 'get' command\r\n", True)
    for port in (t.port, redis_server.port):
        assert redis.Redis(port=port).get("k") is None, port


def test_http_attack_on_resp_port_is_logged_with_peer(tallyd_factory,
                                                      redis_server):
    t = tallyd_factory()
    _, _, me = exchange(t.port, b"POST / HTTP/1.1\r\nINCR k\r\n")
    assert wait_for_log(t, ATTACK_LOG)
    line = next(ln for ln in t.log().splitlines() if ATTACK_LOG in ln)
    assert me in line and "resp" in line and " WARN " in line
    # Redis logs the same event under the same words.
    exchange(redis_server.port, b"POST / HTTP/1.1\r\n")
    assert wait_for_log(redis_server, ATTACK_LOG)


def test_http_attack_log_is_rate_limited(tallyd_factory):
    t = tallyd_factory()
    for _ in range(50):
        exchange(t.port, b"Host: evil\r\n", quiet=0.05)
    # 50 attacks within a second or two: the log line is rate-limited per
    # second, not written 50 times.
    time.sleep(0.2)
    n = t.log().count(ATTACK_LOG)
    assert 1 <= n <= 5, n
    # And a real client on the port is not disturbed.
    assert redis.Redis(port=t.port).incr("k") == 1


def test_http_post_before_auth_hangs_up(tallyd_factory):
    t = tallyd_factory(requirepass="s3cret")
    out, closed, _ = exchange(t.port, b"POST / HTTP/1.1\r\nAUTH s3cret\r\n"
                                      b"INCR k\r\n")
    assert (out, closed) == (b"", True)
    assert redis.Redis(port=t.port, password="s3cret").get("k") is None


# ---- memcached: HTTP request lines ------------------------------------------

HTTP_LINES = [b"GET / HTTP/1.0\r\n", b"PUT /x HTTP/1.1\r\n",
              b"DELETE HTTP/1.1\r\n",
              b"PUT /asdf/asd/fasdfasdf/sadf HTTP/1.1\r\n",
              b"POST / HTTP/1.1\r\nHost: evil\r\n\r\nincr k 1\r\n"]


def test_http_lines_on_memcached_port_hang_up_like_memcached(
        tallyd_factory, memcached):  # noqa: F811 (the fixture imported above)
    t = tallyd_factory()
    for port in (t.mc_port, memcached.port):
        c = Client(("127.0.0.1", port), timeout=10)
        c.set("k", "5")
        for line in HTTP_LINES:
            assert raw(port, line) == (b"", True), (port, line)
        # Nothing after the request line ran.
        assert c.get("k") == b"5", port
        c.close()
    # And a line that merely mentions HTTP is answered like memcached.
    for line in (b"get / HTTP/1.0\r\n", b"FOO http/1.1\r\n",
                 b"FOO HTTPX\r\n"):
        assert raw(t.mc_port, line) == raw(memcached.port, line), line
    assert wait_for_log(t, ATTACK_LOG)
    assert "memcache" in next(ln for ln in t.log().splitlines()
                              if ATTACK_LOG in ln)


def test_http_line_before_memcached_login_hangs_up(tallyd_factory):
    t = tallyd_factory(requirepass="s3cret")
    out, closed = raw(t.mc_port, b"POST / HTTP/1.1\r\nset a 0 0 11\r\n"
                                 b"user s3cret\r\n")
    assert (out, closed) == (b"", True)


# ---- RESP inline limits -----------------------------------------------------

def test_inline_line_over_64_kib_refused_like_redis(tallyd_factory,
                                                    redis_server):
    line = b"SET k " + b"a" * (70 * 1024)  # no newline yet
    want = exchange(redis_server.port, line)[:2]
    got = exchange(tallyd_factory().port, line)[:2]
    assert got == want
    assert got == (b"-ERR Protocol error: too big inline request\r\n", True)


def test_inline_command_before_auth_keeps_unauthenticated_limits(
        tallyd_factory):
    t = tallyd_factory(requirepass="s3cret")
    # A stranger's inline line could carry 1,024 arguments and a megabyte.
    many = b"AUTH " + b" ".join(b"x" for _ in range(1000)) + b"\r\n"
    assert exchange(t.port, many)[:2] == (
        b"-ERR Protocol error: unauthenticated multibulk length\r\n", True)
    big = b"AUTH " + b"x" * 20000 + b"\r\n"
    assert exchange(t.port, big)[:2] == (
        b"-ERR Protocol error: unauthenticated bulk length\r\n", True)
    # The same limits as an array before AUTH.
    arr = b"*2\r\n$4\r\nAUTH\r\n$20000\r\n"
    assert exchange(t.port, arr)[:2] == (
        b"-ERR Protocol error: unauthenticated bulk length\r\n", True)
    # After AUTH the ordinary limits apply to inline lines too.
    with t.raw() as c:
        assert c.cmd("AUTH", "s3cret") == b"OK"
        c.send(b"DEL " + b" ".join(b"k%d" % i for i in range(100)) + b"\r\n")
        assert c.read() == 0


# ---- --password-file --------------------------------------------------------

def test_password_file_with_nul_byte_is_refused(tallyd_factory, tmp_path):
    pw = tmp_path / "password"
    pw.write_bytes(b"abc\0def\n")
    t = tallyd_factory(start=False, password_file=pw)
    t.spawn()
    rc = t.wait_exit()
    assert rc != 0
    assert "NUL" in t.run_log() and str(pw) in t.run_log()


# ---- memcached numbers ------------------------------------------------------

# Tokens for a number, odd ones above all.  " 5" is two spaces before the
# 5 (the tokenizer skips them) and "" leaves the number out altogether.
NUMBERS = [b"5", b"+5", b"-5", b"-+5", b"+-5", b"--5", b"++5", b"05", b"-0",
           b"+0", b"\t5", b"5\t", b"\x0b5", b"\x0c5", b"5\r", b" 5", b"5 ",
           b"", b"+", b"-", b"0x5", b"5x", b"5.0", b"1e3",
           b"4294967296", b"9223372036854775807", b"9223372036854775808",
           b"-9223372036854775808", b"-9223372036854775809",
           b"18446744073709551615", b"18446744073709551616",
           b"-18446744073709551615", b"99999999999999999999999"]

# Lengths of a data block of "1": tokens that read as 1, or as nothing.
LENGTHS = [b"1", b"+1", b"01", b"001", b"\t1", b"1\t", b"-0", b"-1", b"-+1",
           b"+-1", b"1x", b"0x1", b"", b"2147483646", b"9223372036854775808"]

# Where memcached reads a number, and the reset that runs before each token.
RESET = b"set a 0 0 1\r\n5\r\n"
NUMBER_COMMANDS = [
    b"incr a %s\r\n", b"decr a %s\r\n", b"touch a %s\r\n", b"gat %s a\r\n",
    b"set b %s 0 1\r\n1\r\n", b"set b 0 %s 1\r\n1\r\n",
    b"cas nokey 0 0 1 %s\r\n1\r\n", b"verbosity %s\r\n",
    b"ma a D%s v\r\n", b"ma c N%s J%s v\r\n", b"mg a v T%s\r\n",
    b"ms b 1 F%s\r\n1\r\n", b"ms b 1 T%s\r\n1\r\n",
]
LENGTH_COMMANDS = [b"set b 0 0 %s\r\n1\r\n", b"ms b %s\r\n1\r\n"]


def number_session(template, tokens):
    out = []
    for tok in tokens:
        line = template.replace(b"%s", tok)
        out.append(RESET + b"delete c noreply\r\n" + line)
    return b"".join(out) + b"mn\r\n"


# Deltas that take 5 past INT64_MAX: memcached's unsigned counter wraps or
# grows, tally's signed one refuses (docs/memcache.md); decr reads them.
PAST_INT64 = {b"9223372036854775807", b"9223372036854775808",
              b"18446744073709551615", b"-9223372036854775809"}


def test_memcached_numbers_read_as_memcached_reads_them(
        tallyd_factory, memcached):  # noqa: F811 (the fixture imported above)
    t = tallyd_factory()
    sessions = ([number_session(c, [n for n in NUMBERS
                                    if not (c.startswith((b"incr", b"ma a")) and
                                            n in PAST_INT64)])
                 for c in NUMBER_COMMANDS] +
                [number_session(c, LENGTHS) for c in LENGTH_COMMANDS])
    for session in sessions:
        want = raw_until(memcached.port, session, b"MN\r\n")
        got = raw_until(t.mc_port, session, b"MN\r\n")
        assert got.split(b"\r\n") == want.split(b"\r\n"), session[:120]
