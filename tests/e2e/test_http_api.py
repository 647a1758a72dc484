# SPDX-License-Identifier: BSD-3-Clause
"""The HTTP/JSON API, endpoint by endpoint: each route and status code, bad
bodies and numbers, oversized requests, odd keys, listing with a cursor, and
the same counter seen over RESP and HTTP.  Durability across restarts and
authentication are in test_http_durability.py, /metrics in
test_http_metrics.py."""

import base64
from pathlib import Path

import pytest

from test_http_util import (TIMEOUT, assert_problem, counter_url, get_value,
                            json_key, raw_request, session)

INT64_MAX = 2**63 - 1
INT64_MIN = -2**63


@pytest.fixture
def s(tallyd):
    sess = session(tallyd)
    yield sess
    sess.close()


# ---- single counters --------------------------------------------------------

def test_get_of_a_missing_counter_is_404(tallyd, s, key):
    r = s.get(counter_url(tallyd, key("none")), timeout=TIMEOUT)
    assert_problem(r, 404, "not-found")


def test_put_then_get(tallyd, s, key):
    # Given a counter set to 10
    r = s.put(counter_url(tallyd, key()), json={"value": 10}, timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"key": key(), "value": 10}
    # Then it reads 10
    r = s.get(counter_url(tallyd, key()), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json() == {"key": key(), "value": 10}


def test_put_overwrites_and_takes_the_extremes(tallyd, s, key):
    for v in (INT64_MAX, INT64_MIN, 0, -5):
        r = s.put(counter_url(tallyd, key()), json={"value": v},
                  timeout=TIMEOUT)
        assert r.json()["value"] == v
        assert get_value(s, tallyd, key()) == v


def test_increment_of_a_missing_counter_starts_at_0(tallyd, s, key):
    r = s.post(counter_url(tallyd, key(), "increment"), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json() == {"key": key(), "value": 1}


def test_increment_and_decrement_by(tallyd, s, key):
    url = counter_url(tallyd, key())
    assert s.post(url + "/increment", json={"by": 5},
                  timeout=TIMEOUT).json()["value"] == 5
    assert s.post(url + "/increment", json={"by": -2},
                  timeout=TIMEOUT).json()["value"] == 3
    assert s.post(url + "/decrement", timeout=TIMEOUT).json()["value"] == 2
    assert s.post(url + "/decrement", json={"by": 10},
                  timeout=TIMEOUT).json()["value"] == -8
    # An empty object means the default step too.
    assert s.post(url + "/increment", json={},
                  timeout=TIMEOUT).json()["value"] == -7
    assert get_value(s, tallyd, key()) == -7


def test_delete_is_204_then_404(tallyd, s, key):
    url = counter_url(tallyd, key())
    s.put(url, json={"value": 3}, timeout=TIMEOUT)
    r = s.delete(url, timeout=TIMEOUT)
    assert r.status_code == 204 and r.content == b""
    assert_problem(s.delete(url, timeout=TIMEOUT), 404, "not-found")
    assert_problem(s.get(url, timeout=TIMEOUT), 404, "not-found")


def test_head_of_a_counter(tallyd, s, key):
    url = counter_url(tallyd, key())
    assert s.head(url, timeout=TIMEOUT).status_code == 404
    s.put(url, json={"value": 1}, timeout=TIMEOUT)
    r = s.head(url, timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == b""


# ---- bad requests -----------------------------------------------------------

BAD_BODIES = [
    ("not-json", b"{"),
    ("array", b"[1]"),
    ("bare-number", b"5"),
    ("fraction", b'{"by": 1.5}'),
    ("integral-float", b'{"by": 2.0}'),
    ("exponent", b'{"by": 1e3}'),
    ("string", b'{"by": "5"}'),
    ("null", b'{"by": null}'),
    ("bool", b'{"by": true}'),
    ("above-int64", b'{"by": 9223372036854775808}'),
    ("below-int64", b'{"by": -9223372036854775809}'),
    ("huge-number", b'{"by": 1' + b"0" * 400 + b"}"),
    ("duplicate", b'{"by": 1, "by": 2}'),
    ("unknown-member", b'{"step": 1}'),
    ("extra-member", b'{"by": 1, "x": 2}'),
    ("trailing-garbage", b'{"by": 1} x'),
    ("not-utf8", b'{"by": "\xff"}'),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_BODIES],
                         ids=[n for n, _ in BAD_BODIES])
@pytest.mark.parametrize("action", ["increment", "decrement"])
def test_bad_increment_body_is_400_and_changes_nothing(tallyd, s, key, body,
                                                       action):
    r = s.post(counter_url(tallyd, key(), action), data=body,
               headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert_problem(r, 400, "bad-request")
    assert get_value(s, tallyd, key()) is None


@pytest.mark.parametrize("body", [b"", b"{}", b'{"value": "10"}',
                                  b'{"value": 10.5}', b'{"value": 1e2}',
                                  b'{"value": 9223372036854775808}',
                                  b'{"by": 10}', b"[10]"])
def test_bad_put_body_is_400_and_changes_nothing(tallyd, s, key, body):
    s.put(counter_url(tallyd, key()), json={"value": 7}, timeout=TIMEOUT)
    r = s.put(counter_url(tallyd, key()), data=body,
              headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert_problem(r, 400, "bad-request")
    assert get_value(s, tallyd, key()) == 7


def test_detail_names_the_problem(tallyd, s, key):
    r = s.post(counter_url(tallyd, key(), "increment"), data=b'{"by": 1.5}',
               headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert "integer" in assert_problem(r, 400)["detail"]
    r = s.post(counter_url(tallyd, key(), "increment"),
               data=b'{"by": 99999999999999999999}',
               headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert "9223372036854775807" in assert_problem(r, 400)["detail"]


def test_increment_past_int64_is_409_and_changes_nothing(tallyd, s, key):
    url = counter_url(tallyd, key())
    s.put(url, json={"value": INT64_MAX}, timeout=TIMEOUT)
    assert_problem(s.post(url + "/increment", timeout=TIMEOUT), 409,
                   "overflow")
    assert get_value(s, tallyd, key()) == INT64_MAX
    s.put(url, json={"value": INT64_MIN}, timeout=TIMEOUT)
    assert_problem(s.post(url + "/decrement", timeout=TIMEOUT), 409,
                   "overflow")
    assert get_value(s, tallyd, key()) == INT64_MIN


def test_decrement_by_int64_min_is_400(tallyd, s, key):
    r = s.post(counter_url(tallyd, key(), "decrement"),
               json={"by": INT64_MIN}, timeout=TIMEOUT)
    assert_problem(r, 400)
    assert get_value(s, tallyd, key()) is None


def test_body_over_64k_is_413_problem(tallyd, s, key):
    body = b'{"by": 1' + b" " * 100_000 + b"}"
    r = s.post(counter_url(tallyd, key(), "increment"), data=body,
               headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert_problem(r, 413, "too-large")
    assert get_value(s, tallyd, key()) is None


def test_body_over_1mib_is_413_before_it_is_read(tallyd, s, key):
    # evhttp refuses it from Content-Length; its page is not problem+json.
    r = s.post(counter_url(tallyd, key(), "increment"),
               data=b"x" * (2 << 20), timeout=TIMEOUT)
    assert r.status_code == 413
    assert get_value(s, tallyd, key()) is None


def test_uri_over_8k_is_414_problem(tallyd, s):
    r = s.get(f"{tallyd.url}/v1/counters/{'a' * 10_000}", timeout=TIMEOUT)
    assert_problem(r, 414, "uri-too-long")
    r = s.get(f"{tallyd.url}/v1/counters?prefix={'a' * 10_000}",
              timeout=TIMEOUT)
    assert_problem(r, 414, "uri-too-long")


def test_request_line_over_64k_is_refused_by_evhttp(tallyd, s):
    # evhttp stops reading it and answers 400 with its own page.
    r = s.get(f"{tallyd.url}/v1/counters/{'a' * 70_000}", timeout=TIMEOUT)
    assert r.status_code == 400


def test_headers_over_64k_are_refused_by_evhttp(tallyd, s):
    r = s.get(f"{tallyd.url}/healthz", headers={"X-Big": "a" * 70_000},
              timeout=TIMEOUT)
    assert r.status_code == 400
    r = s.get(f"{tallyd.url}/healthz", timeout=TIMEOUT,
              headers={f"X-{i}": "a" * 1000 for i in range(70)})
    assert r.status_code == 400


def test_key_of_1024_bytes_works_and_1025_is_414(tallyd, s, key):
    k = key()
    k1024 = k + "x" * (1024 - len(k))
    r = s.put(counter_url(tallyd, k1024), json={"value": 1}, timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["key"] == k1024
    r = s.put(counter_url(tallyd, k1024 + "y"), json={"value": 1},
              timeout=TIMEOUT)
    assert_problem(r, 414, "key-too-long")
    r = s.post(counter_url(tallyd, k1024 + "y", "increment"), timeout=TIMEOUT)
    assert_problem(r, 414, "key-too-long")


@pytest.mark.parametrize("path", ["/v1/counters/a%zz", "/v1/counters/a%2",
                                  "/v1/counters/%", "/v1/counters/%g0/increment",
                                  "/v1/counters?prefix=%zz",
                                  "/v1/counters?prefix=a%"])
def test_bad_percent_encoding_is_400(tallyd, path):
    method = "POST" if path.endswith("increment") else "GET"
    assert_problem(raw_request(tallyd, method, path), 400, "bad-request")


@pytest.mark.parametrize("path", ["/ui/", "/ui/nope.js", "/v1",
                                  "/v1/counters/", "/v1/counter/x",
                                  "/v1/counters/a/b", "/v1/counters/a/inc",
                                  "/v1/counters/a/increment/x", "/nope",
                                  "/v1/events/x"])
def test_unknown_paths_are_404(tallyd, s, path):
    assert_problem(s.get(tallyd.url + path, timeout=TIMEOUT), 404, "no-route")


def test_root_is_the_dashboard_with_its_files(tallyd, s):
    r = s.get(tallyd.url + "/", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    for path, ctype in (("/ui/app.js", "text/javascript"),
                        ("/ui/app.css", "text/css")):
        r = s.get(tallyd.url + path, timeout=TIMEOUT)
        assert r.status_code == 200 and r.text, path
        assert r.headers["Content-Type"].startswith(ctype), path
        # No request leaves the server: nothing names another origin.
    page = s.get(tallyd.url + "/", timeout=TIMEOUT).text
    assert "http://" not in page and "https://" not in page


@pytest.mark.parametrize("method,path,allow", [
    ("POST", "/v1/counters/k", "GET, HEAD, PUT, DELETE, OPTIONS"),
    ("PATCH", "/v1/counters/k", "GET, HEAD, PUT, DELETE, OPTIONS"),
    ("GET", "/v1/counters/k/increment", "POST, OPTIONS"),
    ("PUT", "/v1/counters/k/decrement", "POST, OPTIONS"),
    ("POST", "/v1/counters", "GET, HEAD, OPTIONS"),
    ("DELETE", "/healthz", "GET, HEAD, OPTIONS"),
    ("POST", "/readyz", "GET, HEAD, OPTIONS"),
    ("PUT", "/metrics", "GET, HEAD, OPTIONS"),
    ("TRACE", "/v1/counters/k", "GET, HEAD, PUT, DELETE, OPTIONS"),
])
def test_wrong_method_is_405_with_allow(tallyd, s, method, path, allow):
    r = s.request(method, tallyd.url + path, timeout=TIMEOUT)
    assert_problem(r, 405, "method-not-allowed")
    assert r.headers["Allow"] == allow


# ---- odd keys ---------------------------------------------------------------

ODD_KEYS = [
    ("slash", "a/b/c"),
    ("space", "with space"),
    ("plus", "a+b"),
    ("percent", "100%"),
    ("reserved", "?#&=;"),
    ("utf8", "zähler-計數-🙂"),
    ("glob", "*[?]\\"),
    ("dots", ".."),
    ("nul", "a\x00b"),
    ("newline", "line\r\nbreak"),
]


@pytest.mark.parametrize("name", [k for _, k in ODD_KEYS],
                         ids=[n for n, _ in ODD_KEYS])
def test_odd_keys_round_trip(tallyd, s, key, name):
    k = key(name)
    r = s.post(counter_url(tallyd, k, "increment"), json={"by": 3},
               timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.json() == {"key": k, "value": 3}
    r = s.get(counter_url(tallyd, k), timeout=TIMEOUT)
    assert r.json() == {"key": k, "value": 3}
    # And RESP sees the same bytes as the same counter.
    assert tallyd.redis(decode_responses=False).get(k.encode()) == b"3"


def test_key_that_is_not_utf8_is_shown_as_key_b64(tallyd, s, key):
    k = key().encode() + b"\xff\xfe\x00"
    r = s.put(counter_url(tallyd, k), json={"value": 4}, timeout=TIMEOUT)
    body = r.json()
    assert "key" not in body
    assert body == {"key_b64": base64.b64encode(k).decode(), "value": 4}
    assert json_key(s.get(counter_url(tallyd, k), timeout=TIMEOUT).json()) == k


def test_literal_non_ascii_bytes_in_the_path_are_key_bytes(tallyd, s, key):
    # Some clients send UTF-8 unencoded; it names the same key.
    k = key("ü")
    s.put(counter_url(tallyd, k), json={"value": 9}, timeout=TIMEOUT)
    target = counter_url(tallyd, k)[len(tallyd.url):].replace("%C3%BC", "ü")
    r = raw_request(tallyd, "GET", target)
    assert r.status_code == 200, r.text
    assert r.json() == {"key": k, "value": 9}


# ---- listing ----------------------------------------------------------------

def list_all(s, tallyd, **params):
    """Follow the cursor to the end; returns (items, pages)."""
    items, pages, cursor = [], 0, None
    while True:
        p = dict(params)
        if cursor:
            p["cursor"] = cursor
        r = s.get(f"{tallyd.url}/v1/counters", params=p, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "cursor"}
        items += body["items"]
        pages += 1
        cursor = body["cursor"]
        if cursor is None:
            return items, pages
        assert isinstance(cursor, str)
        assert pages < 10_000


def test_list_by_prefix_follows_the_cursor(tallyd, s, key):
    want = {}
    for i in range(57):
        k = key(f"list:{i}")
        want[k] = i
        s.put(counter_url(tallyd, k), json={"value": i}, timeout=TIMEOUT)
    s.put(counter_url(tallyd, key("other")), json={"value": 1},
          timeout=TIMEOUT)
    items, pages = list_all(s, tallyd, prefix=key("list:"), limit=10)
    got = {it["key"]: it["value"] for it in items}
    assert got == want
    # Paged, not one answer: a page may pass the limit by one hash chain
    # (docs/http.md), so 57 counters take at least 3 pages of about 10, not
    # always 6 (the seeded hash decides how chains fall).
    assert pages >= 3
    # Each page honours the limit up to one hash chain's worth.
    items, _ = list_all(s, tallyd, prefix=key("list:"), limit=1000)
    assert {it["key"]: it["value"] for it in items} == want


def test_list_prefix_is_literal_not_a_glob(tallyd, s, key):
    for name in ("g*", "g?x", "g[a]", "g\\", "gz"):
        s.put(counter_url(tallyd, key(name)), json={"value": 1},
              timeout=TIMEOUT)
    for name in ("g*", "g?", "g[a]", "g\\"):
        items, _ = list_all(s, tallyd, prefix=key(name))
        assert sorted(it["key"] for it in items) == sorted(
            k for k in (key(n) for n in ("g*", "g?x", "g[a]", "g\\", "gz"))
            if k.startswith(key(name)))


def test_list_of_an_unused_prefix_is_empty(tallyd, s, key):
    items, _ = list_all(s, tallyd, prefix=key("nothing-here:"))
    assert items == []


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=abc",
                                   "limit=-1", "limit=", "cursor=abc",
                                   "cursor=-1", "cursor=99999999999999999999",
                                   "prefix=a&prefix=b", "colour=red"])
def test_list_with_a_bad_query_is_400(tallyd, s, query):
    r = s.get(f"{tallyd.url}/v1/counters?{query}", timeout=TIMEOUT)
    assert_problem(r, 400, "bad-request")


def test_list_limit_1000_is_accepted(tallyd, s, key):
    r = s.get(f"{tallyd.url}/v1/counters",
              params={"limit": 1000, "prefix": key()}, timeout=TIMEOUT)
    assert r.status_code == 200


def test_list_of_a_prefix_longer_than_a_key_is_414(tallyd, s):
    r = s.get(f"{tallyd.url}/v1/counters", params={"prefix": "p" * 1025},
              timeout=TIMEOUT)
    assert_problem(r, 414, "key-too-long")


# ---- health -----------------------------------------------------------------

def test_healthz_and_readyz(tallyd, s):
    r = s.get(tallyd.url + "/healthz", timeout=TIMEOUT)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = s.get(tallyd.url + "/readyz", timeout=TIMEOUT)
    assert r.status_code == 200 and r.json() == {"status": "ready"}


# ---- one counter, two protocols ---------------------------------------------

def test_counter_changed_over_resp_reads_over_http(tallyd, s, key):
    r = tallyd.redis()
    r.set(key(), 10)
    r.incrby(key(), 5)
    assert get_value(s, tallyd, key()) == 15
    r.delete(key())
    assert get_value(s, tallyd, key()) is None


def test_counter_changed_over_http_reads_over_resp(tallyd, s, key):
    s.put(counter_url(tallyd, key()), json={"value": 10}, timeout=TIMEOUT)
    s.post(counter_url(tallyd, key(), "increment"), json={"by": 2},
           timeout=TIMEOUT)
    s.post(counter_url(tallyd, key(), "decrement"), timeout=TIMEOUT)
    r = tallyd.redis()
    assert r.get(key()) == "11"
    assert r.incr(key()) == 12
    assert get_value(s, tallyd, key()) == 12


def test_binary_key_written_over_resp_is_key_b64_over_http(tallyd, s, key):
    k = key().encode() + b"\x80"
    tallyd.redis(decode_responses=False).set(k, 5)
    r = s.get(counter_url(tallyd, k), timeout=TIMEOUT)
    assert r.json() == {"key_b64": base64.b64encode(k).decode(), "value": 5}
    items, _ = list_all(s, tallyd, prefix=key())
    assert [(json_key(it), it["value"]) for it in items] == [(k, 5)]


def test_keep_alive_serves_many_requests_on_one_connection(tallyd, s, key):
    url = counter_url(tallyd, key(), "increment")
    values = [s.post(url, timeout=TIMEOUT).json()["value"] for _ in range(50)]
    assert values == list(range(1, 51))


# ---- the documents match the server -----------------------------------------

def test_openapi_lists_exactly_the_methods_each_path_allows(tallyd, s):
    yaml = pytest.importorskip("yaml")
    spec_path = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    assert spec["openapi"].startswith("3.1")
    verbs = {"get", "head", "put", "post", "delete", "patch", "options"}
    for path, item in spec["paths"].items():
        documented = {m.upper() for m in item if m in verbs}
        if "GET" in documented:
            documented.add("HEAD")  # evhttp answers HEAD wherever GET works
        r = s.request("PATCH", tallyd.url + path.replace("{key}", "k"),
                      timeout=TIMEOUT)
        assert r.status_code == 405, path
        assert set(r.headers["Allow"].split(", ")) == documented, path
