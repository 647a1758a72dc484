# SPDX-License-Identifier: BSD-3-Clause
"""A small Server-Sent Events client for the change-stream tests (no tests
here): requests streams the chunked response, this splits it into events."""

import json
import time

import requests

from test_http_util import TIMEOUT


class SSE:
    """One open stream: next() returns {"id", "event", "data"} for the next
    event (comments are skipped and counted in .comments)."""

    def __init__(self, url, last_id=None, headers=None, timeout=TIMEOUT):
        h = dict(headers or {})
        if last_id is not None:
            h["Last-Event-ID"] = str(last_id)
        self.r = requests.get(url, headers=h, stream=True,
                              timeout=(TIMEOUT, timeout))
        self.r.raise_for_status()
        assert self.r.headers["Content-Type"].startswith("text/event-stream")
        self.chunks = self.r.iter_content(chunk_size=None)
        self.buf = b""
        self.comments = 0

    def _block(self):
        while b"\n\n" not in self.buf:
            self.buf += next(self.chunks)
        block, self.buf = self.buf.split(b"\n\n", 1)
        return block.decode()

    def next(self):
        while True:
            ev = {}
            for line in self._block().split("\n"):
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(": ")
                ev[name] = value
            if "data" in ev:
                ev["data"] = json.loads(ev["data"])
                return ev

    def take(self, n):
        return [self.next() for _ in range(n)]

    def close(self):
        self.r.close()


def quiet_for(sse, seconds):
    """True if no event arrives within seconds (the stream's read timeout
    must be shorter than that, see SSE(timeout=))."""
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            sse.next()
            return False
    except (requests.exceptions.ConnectionError, StopIteration):
        return True
    return True


class RawSSE:
    """A stream over a plain socket, for timing and for a client that never
    reads: bytes as they come, chunk framing and all."""

    def __init__(self, server, path, rcvbuf=None):
        import socket
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((server.host, server.http_port))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.buf = b""

    def wait_for(self, needle, timeout):
        """The bytes so far once needle is among them, or None after
        timeout (or if the server closed)."""
        import socket
        end = time.monotonic() + timeout
        while needle not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                return None
            self.buf += chunk
        return self.buf

    def closed_within(self, timeout):
        """True if the server closes the connection within timeout (reading
        and dropping whatever it sends meanwhile)."""
        import socket
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                if not self.sock.recv(1 << 20):
                    return True
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
        return False

    def close(self):
        self.sock.close()
