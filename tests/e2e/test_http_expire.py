# SPDX-License-Identifier: BSD-3-Clause
"""End-to-end tests of counter expiry over HTTP.

PUT takes "ttl_ms" or "expires_at" (RFC 3339 or Unix ms), increment and
decrement take them too plus "ttl_if_new" (the fixed-window rate limiter in
one atomic request), POST .../expire sets or removes an expiry, and answers
carry "expires_at" when there is one.  The expiry is the same one RESP's
PTTL shows, and the fixed window keeps its count and its end across a
SIGKILL.  docs/http.md, "Expiry", describes the API.
"""

import time
from datetime import datetime, timezone

import pytest

from test_http_util import (TIMEOUT, assert_problem, counter_url, get_value,
                            session)

REPLAYED = "Idempotent-Replayed"


@pytest.fixture
def s(tallyd):
    return session(tallyd)


def ms_of(stamp):
    """Unix ms of an "expires_at" the server wrote."""
    assert stamp.endswith("Z") and len(stamp) == 24, stamp
    return round(datetime.fromisoformat(stamp).timestamp() * 1000)


def now_ms():
    return int(time.time() * 1000)


def put(s, server, key, body, **kw):
    return s.put(counter_url(server, key), json=body, timeout=TIMEOUT, **kw)


def post(s, server, key, action, body=None, **kw):
    return s.post(counter_url(server, key, action), json=body,
                  timeout=TIMEOUT, **kw)


def get(s, server, key):
    return s.get(counter_url(server, key), timeout=TIMEOUT)


def test_put_with_ttl_ms_expires(tallyd, s, key):
    k = key()
    before = now_ms()
    r = put(s, tallyd, k, {"value": 5, "ttl_ms": 1500})
    assert r.status_code == 200, r.text
    at = ms_of(r.json()["expires_at"])
    assert before + 1500 <= at <= now_ms() + 1500
    assert get(s, tallyd, k).json() == r.json()
    assert 0 < tallyd.redis().pttl(k) <= 1500        # one expiry, any protocol
    time.sleep(1.7)
    assert_problem(get(s, tallyd, k), 404, "not-found")


@pytest.mark.parametrize("given, shown", [
    ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00.000Z"),
    ("2030-01-01t00:00:00.5z", "2030-01-01T00:00:00.500Z"),
    ("2030-01-01T01:30:00.123456+01:30", "2030-01-01T00:00:00.123Z"),
    ("2029-12-31T22:00:00-02:00", "2030-01-01T00:00:00.000Z"),
    ("2028-02-29T12:00:00Z", "2028-02-29T12:00:00.000Z"),
    (1893456000123, "2030-01-01T00:00:00.123Z"),
    ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
])
def test_put_with_expires_at(tallyd, s, key, given, shown):
    r = put(s, tallyd, key(), {"value": 1, "expires_at": given})
    assert r.status_code == 200, r.text
    assert r.json() == {"key": key(), "value": 1, "expires_at": shown}
    assert get(s, tallyd, key()).json()["expires_at"] == shown
    assert tallyd.redis().pexpiretime(key()) == ms_of(shown)


def test_expires_at_in_the_past_deletes(tallyd, s, key):
    put(s, tallyd, key(), {"value": 3})
    r = put(s, tallyd, key(), {"value": 4, "expires_at": "2001-01-01T00:00:00Z"})
    assert r.status_code == 200, r.text
    assert "expires_at" not in r.json()
    assert get_value(s, tallyd, key()) is None


def test_plain_put_clears_the_expiry_and_increment_keeps_it(tallyd, s, key):
    k = key()
    at = put(s, tallyd, k, {"value": 1, "ttl_ms": 60000}).json()["expires_at"]
    r = post(s, tallyd, k, "increment", {"by": 4})
    assert r.json() == {"key": k, "value": 5, "expires_at": at}
    r = post(s, tallyd, k, "decrement")
    assert r.json() == {"key": k, "value": 4, "expires_at": at}
    r = put(s, tallyd, k, {"value": 9})
    assert r.json() == {"key": k, "value": 9}
    assert get(s, tallyd, k).json() == {"key": k, "value": 9}
    assert tallyd.redis().ttl(k) == -1


def test_increment_with_ttl_sets_it_each_time(tallyd, s, key):
    """Without ttl_if_new a TTL on increment moves the expiry every time (a
    sliding window)."""
    k = key()
    first = ms_of(post(s, tallyd, k, "increment",
                       {"ttl_ms": 60000}).json()["expires_at"])
    time.sleep(0.05)
    r = post(s, tallyd, k, "increment", {"by": 2, "ttl_ms": 60000})
    assert r.json()["value"] == 3
    assert ms_of(r.json()["expires_at"]) > first
    r = post(s, tallyd, k, "increment",
             {"expires_at": "2030-01-01T00:00:00Z"})
    assert r.json() == {"key": k, "value": 4,
                        "expires_at": "2030-01-01T00:00:00.000Z"}


def test_ttl_if_new_sets_the_expiry_only_when_it_creates(tallyd, s, key):
    k = key()
    body = {"ttl_ms": 60000, "ttl_if_new": True}
    first = post(s, tallyd, k, "increment", body).json()
    time.sleep(0.05)
    second = post(s, tallyd, k, "increment", body).json()
    assert (first["value"], second["value"]) == (1, 2)
    assert second["expires_at"] == first["expires_at"]   # the window is fixed
    # An existing counter without an expiry keeps having none.
    put(s, tallyd, key("plain"), {"value": 7})
    r = post(s, tallyd, key("plain"), "increment", body)
    assert r.json() == {"key": key("plain"), "value": 8}


def test_list_shows_expires_at(tallyd, s, key):
    put(s, tallyd, key("a"), {"value": 1})
    put(s, tallyd, key("b"), {"value": 2, "expires_at": 1893456000000})
    put(s, tallyd, key("gone"), {"value": 3, "ttl_ms": 1})
    time.sleep(0.01)
    r = s.get(f"{tallyd.url}/v1/counters", params={"prefix": key("")},
              timeout=TIMEOUT)
    items = sorted(r.json()["items"], key=lambda it: it["key"])
    assert items == [{"key": key("a"), "value": 1},
                     {"key": key("b"), "value": 2,
                      "expires_at": "2030-01-01T00:00:00.000Z"}]


def test_expire_endpoint_sets_and_removes(tallyd, s, key):
    k = key()
    put(s, tallyd, k, {"value": 6})
    r = post(s, tallyd, k, "expire", {"ttl_ms": 30000})
    assert r.status_code == 200, r.text
    assert r.json()["value"] == 6
    assert 29000 < ms_of(r.json()["expires_at"]) - now_ms() <= 30000
    r = post(s, tallyd, k, "expire", {"expires_at": "2031-05-06T07:08:09Z"})
    assert r.json() == {"key": k, "value": 6,
                        "expires_at": "2031-05-06T07:08:09.000Z"}
    for clear in ({"expires_at": None}, {"ttl_ms": None}):
        post(s, tallyd, k, "expire", {"ttl_ms": 30000})
        r = post(s, tallyd, k, "expire", clear)
        assert r.json() == {"key": k, "value": 6}
        assert tallyd.redis().ttl(k) == -1
    assert_problem(post(s, tallyd, key("missing"), "expire",
                        {"ttl_ms": 1000}), 404, "not-found")
    # A time already past shows the value once and deletes the counter.
    r = post(s, tallyd, k, "expire", {"expires_at": 1000})
    assert r.json() == {"key": k, "value": 6}
    assert get_value(s, tallyd, k) is None
    r = s.get(counter_url(tallyd, k, "expire"), timeout=TIMEOUT)
    assert_problem(r, 405, "method-not-allowed")
    assert r.headers["Allow"] == "POST, OPTIONS"


@pytest.mark.parametrize("method, action, body", [
    ("put", None, {"value": 1, "ttl_ms": 0}),
    ("put", None, {"value": 1, "ttl_ms": -5}),
    ("put", None, {"value": 1, "ttl_ms": 1.5}),
    ("put", None, {"value": 1, "ttl_ms": "10"}),
    ("put", None, {"value": 1, "ttl_ms": None}),
    ("put", None, {"value": 1, "ttl_ms": 10, "expires_at": 2000000000000}),
    ("put", None, {"value": 1, "ttl_ms": 10, "ttl_if_new": True}),
    ("put", None, {"value": 1, "expires_at": "2030-02-30T00:00:00Z"}),
    ("put", None, {"value": 1, "expires_at": "2029-02-29T00:00:00Z"}),
    ("put", None, {"value": 1, "expires_at": "2030-01-01"}),
    ("put", None, {"value": 1, "expires_at": "2030-01-01T00:00:00"}),
    ("put", None, {"value": 1, "expires_at": "2030-01-01T00:00:00.Z"}),
    ("put", None, {"value": 1, "expires_at": "2030-01-01T24:00:00Z"}),
    ("put", None, {"value": 1, "expires_at": "2030-01-01T00:00:00+0100"}),
    ("put", None, {"value": 1, "expires_at": "2030-01-01 00:00:00Z"}),
    ("put", None, {"value": 1, "expires_at": 0}),
    ("put", None, {"value": 1, "expires_at": 253402300800000}),
    ("put", None, {"value": 1, "expires_at": 1.5e12}),
    ("put", None, {"ttl_ms": 10}),
    ("post", "increment", {"ttl_if_new": True}),
    ("post", "increment", {"ttl_ms": 10, "ttl_if_new": 1}),
    ("post", "increment", {"ttl_ms": 0}),
    ("post", "decrement", {"expires_at": "soon"}),
    ("post", "expire", {}),
    ("post", "expire", None),
    ("post", "expire", {"by": 1}),
    ("post", "expire", {"ttl_ms": 10, "expires_at": None}),
    ("post", "expire", {"ttl_ms": 0}),
])
def test_bad_expiry_is_400_and_changes_nothing(tallyd, s, key, method,
                                               action, body):
    k = key()
    put(s, tallyd, k, {"value": 7, "ttl_ms": 600000})
    before = get(s, tallyd, k).json()
    r = s.request(method, counter_url(tallyd, k, action), json=body,
                  timeout=TIMEOUT)
    assert_problem(r, 400, "bad-request")
    assert get(s, tallyd, k).json() == before


def test_ttl_past_the_engines_range_is_bad_expiry(tallyd, s, key):
    r = put(s, tallyd, key(), {"value": 1, "ttl_ms": 9223372036854775807})
    assert_problem(r, 400, "bad-expiry")
    assert get_value(s, tallyd, key()) is None


def test_idempotency_key_with_a_ttl_replays_exactly(tallyd, s, key):
    """A retry of a change with a TTL gets the first answer byte for byte,
    applies nothing, and does not move the expiry (the TTL counts from the
    first request)."""
    k = key()
    hdr = {"Idempotency-Key": "put-" + k}
    first = put(s, tallyd, k, {"value": 10, "ttl_ms": 60000}, headers=hdr)
    assert first.status_code == 200 and REPLAYED not in first.headers
    at = get(s, tallyd, k).json()["expires_at"]
    time.sleep(0.05)
    again = put(s, tallyd, k, {"value": 10, "ttl_ms": 60000}, headers=hdr)
    assert again.content == first.content
    assert again.headers[REPLAYED] == "true"
    assert get(s, tallyd, k).json()["expires_at"] == at
    # The same key with another TTL is another request.
    other = put(s, tallyd, k, {"value": 10, "ttl_ms": 5000}, headers=hdr)
    assert_problem(other, 422, "idempotency-key-reused")

    w = key("window")
    hdr = {"Idempotency-Key": "incr-" + w}
    body = {"ttl_ms": 60000, "ttl_if_new": True}
    first = post(s, tallyd, w, "increment", body, headers=hdr)
    at = get(s, tallyd, w).json()["expires_at"]
    for _ in range(3):
        again = post(s, tallyd, w, "increment", body, headers=hdr)
        assert again.content == first.content
        assert again.headers[REPLAYED] == "true"
    assert get(s, tallyd, w).json() == {"key": w, "value": 1,
                                        "expires_at": at}


def test_resp_once_on_a_counter_with_a_ttl_replays_and_keeps_it(tallyd, key):
    r = tallyd.redis()
    k = key()
    r.set(k, 5, px=60000)
    at = r.pexpiretime(k)
    assert r.execute_command("INCRBY.ONCE", k, 2, "id-" + k) == 7
    assert r.execute_command("INCRBY.ONCE", k, 2, "id-" + k) == 7
    assert r.get(k) == "7" and r.pexpiretime(k) == at


@pytest.mark.own_server
def test_fixed_window_survives_sigkill_then_ends(tallyd_factory):
    """The rate limiter as an HTTP client issues it: one increment per hit,
    the window opened by the first.  Count and end survive a SIGKILL; after
    the end the counter is gone and the next hit opens a new window."""
    t = tallyd_factory()
    s = session(t)
    body = {"ttl_ms": 2500, "ttl_if_new": True}
    hits = [post(s, t, "rl:user1", "increment", body).json()
            for _ in range(5)]
    assert [h["value"] for h in hits] == [1, 2, 3, 4, 5]
    assert len({h["expires_at"] for h in hits}) == 1
    end = ms_of(hits[0]["expires_at"])
    t.restart(crash=True)
    s = session(t)
    assert get(s, t, "rl:user1").json() == hits[-1]
    assert 0 < t.redis().pttl("rl:user1") <= end - now_ms() + 5
    r = post(s, t, "rl:user1", "increment", body).json()
    assert r == {"key": "rl:user1", "value": 6,
                 "expires_at": hits[0]["expires_at"]}
    time.sleep(max(0, end - now_ms()) / 1000 + 0.2)
    assert_problem(get(s, t, "rl:user1"), 404, "not-found")
    t.restart(crash=True)
    s = session(t)
    assert_problem(get(s, t, "rl:user1"), 404, "not-found")
    r = post(s, t, "rl:user1", "increment", body).json()
    assert r["value"] == 1 and ms_of(r["expires_at"]) > end


@pytest.mark.own_server
def test_idempotent_window_increment_replays_after_sigkill(tallyd_factory):
    """The retry of a TTL'd increment whose answer was lost to a crash gets
    the first answer, and the window neither moves nor counts twice."""
    t = tallyd_factory()
    s = session(t)
    hdr = {"Idempotency-Key": "hit-1"}
    body = {"ttl_ms": 60000, "ttl_if_new": True}
    first = post(s, t, "rl:w", "increment", body, headers=hdr)
    assert first.status_code == 200, first.text
    at = get(s, t, "rl:w").json()["expires_at"]
    t.restart(crash=True)
    s = session(t)
    again = post(s, t, "rl:w", "increment", body, headers=hdr)
    assert again.content == first.content
    assert again.headers[REPLAYED] == "true"
    assert get(s, t, "rl:w").json() == {"key": "rl:w", "value": 1,
                                        "expires_at": at}
