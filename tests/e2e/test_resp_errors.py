# SPDX-License-Identifier: BSD-3-Clause
"""Wrong requests get Redis 7's error texts, and malformed or oversized input
over a raw socket gets an error reply (or, past the size cut-off, a closed
connection) while the server goes on serving everyone else."""

import socket
import threading
import time

import pytest

from conftest import Closed, RawResp, RespError

INT64_MAX = 2**63 - 1
INT64_MIN = -2**63


def error_text(reply):
    assert isinstance(reply, RespError), f"expected an error reply, got {reply!r}"
    return reply.text


# ---- command errors: exact texts -------------------------------------------

def test_non_integer_increment(tallyd, key):
    with tallyd.raw() as c:
        for bad in ("abc", "1.5", " 1", "1 ", "+1", "01", "", "9223372036854775808"):
            assert c.cmd("INCRBY", key(), bad) == RespError(
                "ERR value is not an integer or out of range"), repr(bad)
        assert c.cmd("EXISTS", key()) == 0


def test_increment_past_int64_is_refused_and_changes_nothing(tallyd, key):
    up, down = key("up"), key("down")
    with tallyd.raw() as c:
        c.cmd("SET", up, INT64_MAX)
        c.cmd("SET", down, INT64_MIN)
        overflow = RespError("ERR increment or decrement would overflow")
        assert c.cmd("INCR", up) == overflow
        assert c.cmd("INCRBY", up, INT64_MAX) == overflow
        assert c.cmd("DECR", down) == overflow
        assert c.cmd("DECRBY", down, 1) == overflow
        assert c.cmd("GET", up) == str(INT64_MAX).encode()
        assert c.cmd("GET", down) == str(INT64_MIN).encode()
        # DECRBY of INT64_MIN cannot be negated: Redis refuses it too
        assert error_text(c.cmd("DECRBY", key("other"), INT64_MIN)).startswith("ERR")


@pytest.mark.parametrize("args,name", [
    (("INCR",), "incr"),
    (("INCR", "a", "b"), "incr"),
    (("GET",), "get"),
    (("INCRBY", "a"), "incrby"),
    (("DECRBY",), "decrby"),
    (("SET", "a"), "set"),
    (("GETSET", "a"), "getset"),
    (("MGET",), "mget"),
    (("DEL",), "del"),
])
def test_wrong_number_of_arguments(tallyd, args, name):
    with tallyd.raw() as c:
        assert c.cmd(*args) == RespError(
            f"ERR wrong number of arguments for '{name}' command")
        assert c.cmd("PING") == b"PONG"


def test_unknown_command_is_worded_like_redis_7(tallyd):
    with tallyd.raw() as c:
        assert c.cmd("FOO", "a", "b") == RespError(
            "ERR unknown command 'FOO', with args beginning with: 'a' 'b' ")
        assert c.cmd("nosuchcmd") == RespError(
            "ERR unknown command 'nosuchcmd', with args beginning with: ")
        assert c.cmd("PING") == b"PONG"


def test_set_of_a_non_integer_value_is_refused(tallyd, key):
    # tally stores integer counters only; the text keeps Redis's prefix so
    # clients treat it as the same error.
    with tallyd.raw() as c:
        for bad in ("hello", "1.5", "12abc"):
            text = error_text(c.cmd("SET", key(), bad))
            assert text.startswith("ERR value is not an integer or out of range"), text
        assert c.cmd("EXISTS", key()) == 0


def test_key_over_1024_bytes_is_refused_and_connection_stays(tallyd):
    with tallyd.raw() as c:
        assert error_text(c.cmd("INCR", "k" * 2048)).startswith("ERR")
        assert error_text(c.cmd("SET", "k" * 1025, 1)).startswith("ERR")
        assert c.cmd("INCR", "k" * 1024) == 1   # exactly the limit is fine
        assert c.cmd("DEL", "k" * 1024) == 1


# ---- malformed and oversized input ------------------------------------------

# (name, bytes sent, what must happen):
#   "error+close": an error reply starting with the given prefix, then close
#   "error":       an error reply starting with the prefix, connection stays
#   "cutoff":      an error reply or a closed connection (oversize cut-off)
MALFORMED = [
    ("array count not a number", b"*abc\r\n", "error+close",
     "ERR Protocol error"),
    ("bulk length not a number", b"*1\r\n$x\r\nPING\r\n", "error+close",
     "ERR Protocol error"),
    ("negative bulk length", b"*2\r\n$3\r\nGET\r\n$-5\r\nabc\r\n",
     "error+close", "ERR Protocol error"),
    ("bulk header missing", b"*1\r\nPING\r\n", "error+close",
     "ERR Protocol error"),
    ("bulk without its CRLF", b"*1\r\n$4\r\nPINGxx\r\n", "error+close",
     "ERR Protocol error"),
    ("array count over the argument limit", b"*2000\r\n", "error+close",
     "ERR"),
    ("unbalanced quotes inline", b'SET "a 1\r\n', "error+close",
     "ERR Protocol error"),
    ("binary garbage inline", b"\x00\xff\xfe\x80garbage\x01\r\n", "error", "ERR"),
    ("binary garbage after a type byte", b"*\xff\xfe\r\n", "error+close",
     "ERR Protocol error"),
]


def check_case(tallyd, data, want, prefix):
    with tallyd.raw() as c:
        try:
            c.send(data)
            reply = c.read()
        except (Closed, ConnectionResetError, BrokenPipeError) as e:
            assert want == "cutoff", f"closed without an error reply: {e}"
            return
        if want == "cutoff" and not isinstance(reply, RespError):
            pytest.fail(f"oversize request answered {reply!r}")
        assert error_text(reply).startswith(prefix), reply
        if want in ("error+close", "cutoff"):
            assert c.is_closed(), "connection left open after a protocol error"
        else:
            assert c.cmd("PING") == b"PONG"


@pytest.fixture
def bystander(tallyd, key):
    """A client connected before the abuse; must be served throughout."""
    c = tallyd.raw()
    k = key("bystander")
    state = {"n": 0}

    def check():
        state["n"] += 1
        assert c.cmd("INCR", k) == state["n"], "bystander no longer served"
    check()
    yield check
    check()
    c.close()


@pytest.mark.parametrize("name,data,want,prefix", MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed_input_gets_an_error(tallyd, bystander, name, data, want, prefix):
    check_case(tallyd, data, want, prefix)
    bystander()


def test_non_positive_array_counts_are_ignored_or_refused(tallyd, bystander):
    # Redis skips "*0" and "*-1" silently; an error reply is fine too.  Either
    # way the next command on the connection must still get its own reply.
    for header in (b"*0\r\n", b"*-1\r\n", b"*-7\r\n"):
        with tallyd.raw() as c:
            c.send(header + RawResp.encode("PING"))
            reply = c.read()
            if isinstance(reply, RespError):
                assert reply.text.startswith("ERR"), reply
            else:
                assert reply == b"PONG", (header, reply)
    bystander()


def test_2000_arguments_sent_whole_are_refused(tallyd, bystander, key):
    # The server refuses at the header and closes while the rest is still
    # arriving, so TCP may reset the connection before the error is read:
    # an error reply or a close are both a refusal.  (The header alone is in
    # MALFORMED, where the error reply is required.)
    data = RawResp.encode("MGET", *[key(str(i)) for i in range(1999)])
    check_case(tallyd, data, "cutoff", "ERR")
    bystander()


def test_1mib_bulk_is_refused_from_its_header(tallyd, bystander):
    # The header alone announces the size: the reply must not wait for the
    # megabyte to arrive.
    with tallyd.raw() as c:
        c.send(b"*2\r\n$3\r\nGET\r\n$%d\r\n" % (1 << 20))
        assert error_text(c.read()).startswith("ERR")
        assert c.is_closed()
    bystander()


def test_1mib_bulk_sent_whole_is_refused(tallyd, bystander):
    data = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n" % (1 << 20, b"1" * (1 << 20))
    check_case(tallyd, data, "cutoff", "ERR")
    bystander()


def test_5mb_inline_line_is_cut_off(tallyd, bystander):
    data = b"PING " + b"x" * (5 * 1000 * 1000) + b"\r\n"
    check_case(tallyd, data, "cutoff", "ERR")
    bystander()


def test_5mb_inline_line_without_newline_is_cut_off(tallyd, bystander):
    # The line never ends: the server must not buffer it forever.
    with tallyd.raw() as c:
        try:
            for _ in range(50):
                c.send(b"x" * 100_000)
        except (ConnectionResetError, BrokenPipeError):
            pass
        assert c.is_closed(10), "server kept buffering a 5 MB line"
    bystander()


def test_half_a_request_stalls_only_its_own_client(tallyd, bystander, key):
    k = key()
    with tallyd.raw() as slow:
        # Given a client that sent half an INCR and stalls
        whole = RawResp.encode("INCR", k)
        slow.send(whole[:len(whole) // 2])
        # When others keep working
        with tallyd.raw() as fast:
            for i in range(1, 201):
                assert fast.cmd("INCR", k) == i
        for _ in range(5):
            bystander()
        # Then the slow client, once it finishes, is answered in turn
        slow.send(whole[len(whole) // 2:])
        assert slow.read() == 201


def test_slow_byte_by_byte_client_is_answered(tallyd, key):
    with tallyd.raw() as c:
        for b in RawResp.encode("INCRBY", key(), 12):
            c.send(bytes([b]))
        assert c.read() == 12


def test_client_that_never_reads_does_not_block_others(tallyd, bystander, key):
    # A client pipelines a flood and never reads its replies; the server must
    # stop reading from it rather than stall or grow without bound.
    stop = threading.Event()
    flooder = socket.create_connection((tallyd.host, tallyd.port))
    flooder.settimeout(0.5)
    req = RawResp.encode("INCR", key("flood")) * 10000

    def flood():
        while not stop.is_set():
            try:
                flooder.send(req)
            except socket.timeout:
                continue
            except OSError:
                return
    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            bystander()
    finally:
        stop.set()
        t.join(5)
        flooder.close()


@pytest.mark.own_server
def test_over_maxclients_gets_error_then_close(tallyd_factory):
    d = tallyd_factory(maxclients=2)
    a, b = d.raw(), d.raw()
    try:
        assert a.cmd("PING") == b"PONG" and b.cmd("PING") == b"PONG"
        with d.raw() as c:
            try:
                reply = c.read()
            except Closed:
                reply = None
            assert reply == RespError("ERR max number of clients reached"), reply
            assert c.is_closed()
        assert a.cmd("PING") == b"PONG"
    finally:
        a.close()
        b.close()
