# SPDX-License-Identifier: BSD-3-Clause
"""What a connection does while its answer is held for a sync (issue 15).

tallyd keeps reading a connection whose answer waits for durability, so
that a request costs no epoll_ctl to take the socket out of epoll and put
it back (src/proto/http_reply.c, http_hold_begin).  These check that
nothing a client sees changed with it: a request pipelined while the one
before it is held still runs after it, in order; a client that half-closes
still gets its answer; one that resets does not disturb the server; and the
Date and Content-Length headers tallyd now adds itself to held answers are
what evhttp wrote.

Slow syncs come from the failsync shim (the `faulty` fixture of
test_faults.py).
"""

import email.utils
import json
import socket
import struct
import time

import pytest

from test_faults import faulty  # noqa: F401
from test_http_pipeline import Conn, get, post_incr, warm_then_slow

pytestmark = [pytest.mark.own_server,
              pytest.mark.engine_files("the fsync shim on the engine's log")]

SLOW = 0.3  # seconds one slowed fsync takes


def read_all(sock):
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


def test_request_pipelined_while_the_answer_before_is_held_runs_after_it(
        faulty):
    # Given slow syncs and a keep-alive connection whose increment is held
    d, faults, c = warm_then_slow(faulty)
    t0 = time.monotonic()
    c.send(post_incr(c.host, "held"))
    time.sleep(SLOW / 3)
    # When a read and another increment of the same counter arrive while it
    # is held (the server reads them into its buffer meanwhile)
    c.send(get(c.host, "held") + post_incr(c.host, "held"))
    got = [c.response() for _ in range(3)]
    c.close()
    # Then they run after it, in order, and the first answer came after
    # its sync
    assert [(s, b["value"]) for s, b, _ in got] == \
        [(200, 1), (200, 1), (200, 2)]
    assert got[0][2] - t0 >= SLOW


def test_half_closed_client_gets_its_held_answer(faulty):
    # Given slow syncs
    d, faults = faulty()
    faults.slow(SLOW)
    # When a client sends an increment and shuts down its sending side
    # while the answer is held (printf ... | nc does that)
    c = Conn(d)
    c.send(post_incr(c.host, "halfclosed"))
    c.sock.shutdown(socket.SHUT_WR)
    got = read_all(c.sock)
    c.close()
    # Then it still gets the whole answer
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), got
    assert json.loads(body) == {"key": "halfclosed", "value": 1}


def test_client_that_resets_while_held_leaves_the_server_serving(faulty):
    # Given slow syncs
    d, faults = faulty()
    faults.slow(SLOW)
    # When a client sends an increment and resets the connection while
    # its answer is held
    c = Conn(d)
    c.send(post_incr(c.host, "reset"))
    time.sleep(SLOW / 3)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      struct.pack("ii", 1, 0))
    c.close()
    time.sleep(SLOW)
    faults.clear()
    # Then the change was made (it was run) and the server goes on serving
    c = Conn(d)
    c.send(get(c.host, "reset"))
    assert c.response()[:2] == (200, {"key": "reset", "value": 1})
    c.close()


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_held_answer_has_date_and_content_length(faulty, version):
    # Given a server
    d, _ = faulty()
    c = Conn(d)
    # When an increment is answered (HTTP/1.0: the server then closes)
    c.send(f"POST /v1/counters/stamped/increment {version}\r\nHost: {c.host}"
           f"\r\n\r\n".encode())
    if version == "HTTP/1.0":
        got = read_all(c.sock)
    else:
        got = b""
        while b"\r\n\r\n" not in got or not got.endswith(b"}\n"):
            got += c.sock.recv(65536)
    c.close()
    # Then it carries today's Date in RFC 9110's format and the body's
    # exact length, once each
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    dates = [v for k, _, v in (x.partition(": ") for x in lines) if k == "Date"]
    lens = [v for k, _, v in (x.partition(": ") for x in lines)
            if k == "Content-Length"]
    assert len(dates) == 1 and len(lens) == 1, head
    when = email.utils.parsedate_to_datetime(dates[0]).timestamp()
    assert abs(when - time.time()) < 5
    assert dates[0].endswith(" GMT") and len(dates[0]) == 29
    assert int(lens[0]) == len(body) == len(b'{"key":"stamped","value":1}\n')
