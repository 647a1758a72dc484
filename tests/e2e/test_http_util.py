# SPDX-License-Identifier: BSD-3-Clause
"""Helpers the HTTP tests share (no tests here; the name keeps it among the
HTTP files): a requests session for a Tallyd (with its
bearer token when it has a password), counter URLs with the key
percent-encoded as one path segment, and checks for problem+json bodies."""

import base64
import http.client
import json
import socket
from urllib.parse import quote

import pytest
import requests

TIMEOUT = 10


def session(server, token=None):
    """A requests.Session for server; sends the server's password (or token)
    as a bearer token.  Skips the test if the server has no HTTP port."""
    if not server.http_port:
        pytest.skip("no HTTP port for this server (set TALLY_TEST_HTTP_PORT)")
    s = requests.Session()
    token = token if token is not None else server.password
    if token:
        s.headers["Authorization"] = f"Bearer {token}"
    return s


def counter_url(server, key, action=None):
    """URL of a counter; key may be str or bytes (any byte is encoded)."""
    raw = key.encode() if isinstance(key, str) else key
    url = f"{server.url}/v1/counters/{quote(raw, safe='')}"
    return f"{url}/{action}" if action else url


def json_key(body):
    """The key a counter object names, as bytes ("key" or "key_b64")."""
    if "key" in body:
        return body["key"].encode()
    return base64.b64decode(body["key_b64"])


def assert_problem(resp, status, slug=None):
    """resp is an RFC 9457 problem with this status (and type slug)."""
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status
    assert body["title"] and body["detail"], body
    assert body["type"].startswith("urn:tally:problem:"), body
    if slug:
        assert body["type"] == "urn:tally:problem:" + slug, body
    return body


def get_value(s, server, key):
    """The counter's value over HTTP, or None if it does not exist."""
    r = s.get(counter_url(server, key), timeout=TIMEOUT)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return r.json()["value"]


class RawResponse:
    def __init__(self, status, headers, body):
        self.status_code, self.headers, self.content = status, headers, body
        self.text = body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


def _bytes(v):
    return v if isinstance(v, bytes) else str(v).encode()


def raw_request(server, method, target, headers=None, body=None):
    """Send target exactly as given, str or bytes (requests re-quotes bad
    escapes and http.client refuses raw bytes); adds the server's bearer
    token.  headers is a dict, or a list of (name, value) pairs to send a
    header twice; values may be bytes, sent as they are."""
    hdrs = {"Host": f"{server.host}:{server.http_port}",
            "Connection": "close"}
    if server.password:
        hdrs["Authorization"] = f"Bearer {server.password}"
    if body is not None:
        hdrs["Content-Length"] = str(len(body))
    pairs = list(hdrs.items())
    pairs += list(headers.items()) if isinstance(headers, dict) else \
        list(headers or [])
    head = b"%s %s HTTP/1.1\r\n" % (_bytes(method), _bytes(target))
    head += b"".join(_bytes(k) + b": " + _bytes(v) + b"\r\n"
                     for k, v in pairs)
    with socket.create_connection((server.host, server.http_port),
                                  TIMEOUT) as c:
        c.sendall(head + b"\r\n" + (body or b""))
        r = http.client.HTTPResponse(c)
        r.begin()
        return RawResponse(r.status, r.headers, r.read())
