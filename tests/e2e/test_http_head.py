# SPDX-License-Identifier: BSD-3-Clause
"""HEAD answers carry no body (RFC 9110, section 9.3.2).

evhttp wrote whatever body an answer held, HEAD or not, and no
Content-Length: on a keep-alive connection the JSON of a HEAD answer was
then read as the start of the next answer (found while measuring issue 15).
Now a HEAD answer has GET's headers, Content-Length included, and no body.
"""

import json

import pytest

from test_http_pipeline import Conn, get, post_incr

pytestmark = pytest.mark.own_server


def head(host, target):
    return f"HEAD {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def read_heads(c, n):
    """The next n answers' header blocks, reading no body at all; then
    whatever follows."""
    while c.buf.count(b"\r\n\r\n") < n:
        chunk = c.sock.recv(65536)
        assert chunk, f"closed; got {c.buf!r}"
        c.buf += chunk
    parts = c.buf.split(b"\r\n\r\n", n)
    c.buf = parts[n]
    return [p.decode("latin-1") for p in parts[:n]]


def header(block, name):
    for line in block.split("\r\n")[1:]:
        k, _, v = line.partition(": ")
        if k.lower() == name.lower():
            return v
    return None


@pytest.mark.parametrize("target,status", [
    ("/v1/counters/headed", 200),   # a counter (held until durable)
    ("/v1/counters/missing", 404),  # a problem
    ("/healthz", 200),              # sent at once
])
def test_head_answer_has_no_body_so_the_next_answer_parses(tallyd_factory,
                                                          target, status):
    # Given a counter, and GET's answer for the target
    d = tallyd_factory()
    c = Conn(d)
    c.send(post_incr(c.host, "headed"))
    assert c.response()[0] == 200
    c.send(f"GET {target} HTTP/1.1\r\nHost: {c.host}\r\n\r\n".encode())
    got_status, body, _ = c.response()
    assert got_status == status
    # When HEAD of it and then a GET are sent on the same connection
    c.send(head(c.host, target) + get(c.host, "headed"))
    h = read_heads(c, 1)[0]
    # Then the HEAD answer is GET's status and length with no body: the very
    # next bytes are the GET's answer
    assert h.startswith(f"HTTP/1.1 {status} ")
    assert c.buf == b"" or c.buf.startswith(b"HTTP/1.1 "), c.buf
    assert int(header(h, "Content-Length")) == len(
        json.dumps(body, separators=(",", ":")).encode() + b"\n")
    assert c.response()[:2] == (200, {"key": "headed", "value": 1})
    c.close()
