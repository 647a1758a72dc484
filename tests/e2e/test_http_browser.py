# SPDX-License-Identifier: BSD-3-Clause
"""Browser safety of the HTTP API (docs/http.md, "Browsers"): what a page on
another origin can and cannot make a visitor's browser do to tally.

First with raw requests, sending exactly the headers a browser would: each
refusal (a simple text/plain or form post is a 415, a foreign Origin a 403
with the counter unchanged, a rebinding Host a 421) and each allowed path
(the server's own origin, a listed origin's preflight and request, no
Origin at all).  Then in a real headless chromium: a page served from a
second local port posts to tally with fetch and with forms, and nothing
changes, until its origin is listed with --http-cors-origin; then its JSON
fetch works and can read the answer.  The browser test saves a screenshot
under build/artifacts/."""

import http.server
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import REPO, free_port
from test_http_util import (TIMEOUT, assert_problem, counter_url, get_value,
                            raw_request, session)

EVIL = "http://evil.example"
APP = "http://app.example:8443"
JSON = {"Content-Type": "application/json"}

pytestmark = pytest.mark.own_server


@pytest.fixture
def d(tallyd_factory):
    return tallyd_factory(http_cors_origin=APP)


@pytest.fixture
def s(d):
    sess = session(d)
    yield sess
    sess.close()


def own_origin(server):
    return f"http://{server.host}:{server.http_port}"


def incr(s, server, key, headers=None, **kw):
    return s.post(counter_url(server, key, "increment"), headers=headers,
                  timeout=TIMEOUT, **kw)


# ---- a change must be application/json ------------------------------------

def test_text_plain_post_is_415_and_changes_nothing(d, s):
    # What fetch(url, {method: "POST", body: '{"by": 5}'}) sends.
    r = incr(s, d, "x", data=b'{"by": 5}',
             headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert_problem(r, 415, "unsupported-media-type")
    assert get_value(s, d, "x") is None


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x",
                                   "text/plain"])
def test_form_post_without_a_body_is_415(d, s, ctype):
    # A <form method=post> with no fields: an empty body, but a form type.
    r = raw_request(d, "POST", "/v1/counters/x/increment",
                    headers={"Content-Type": ctype}, body=b"")
    assert_problem(r, 415, "unsupported-media-type")
    assert get_value(s, d, "x") is None


def test_a_body_without_content_type_is_415(d, s):
    r = raw_request(d, "PUT", "/v1/counters/x", body=b'{"value": 5}')
    assert_problem(r, 415, "unsupported-media-type")
    assert get_value(s, d, "x") is None


def test_a_browser_change_without_a_body_still_needs_json(d, s):
    # Even the server's own pages send Content-Type on a change, so that no
    # request a browser sends without asking can change a counter.
    hdrs = {"Origin": own_origin(d), "Sec-Fetch-Site": "same-origin"}
    assert_problem(incr(s, d, "x", headers=hdrs), 415,
                   "unsupported-media-type")
    assert get_value(s, d, "x") is None
    assert incr(s, d, "x", headers={**hdrs, **JSON}).json()["value"] == 1


@pytest.mark.parametrize("ctype", ["application/json",
                                   "application/json; charset=utf-8",
                                   "Application/JSON"])
def test_json_content_types_are_accepted(d, s, ctype):
    r = incr(s, d, "x", data=b'{"by": 2}', headers={"Content-Type": ctype})
    assert r.status_code == 200 and r.json()["value"] == 2


def test_curl_without_origin_or_body_still_works(d, s):
    # curl -X POST, wrk, server-to-server calls: no Origin, no body, no
    # Content-Type.
    r = raw_request(d, "POST", "/v1/counters/x/increment")
    assert r.status_code == 200 and r.json()["value"] == 1
    r = raw_request(d, "DELETE", "/v1/counters/x")
    assert r.status_code == 204


# ---- Origin ---------------------------------------------------------------

@pytest.mark.parametrize("method,action,body", [
    ("POST", "increment", {"by": 5}), ("POST", "decrement", {"by": 5}),
    ("PUT", None, {"value": 99}), ("DELETE", None, None)])
@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.1:1",
                                    "https://app.example:8443"])
def test_foreign_origin_is_403_and_the_counter_is_unchanged(d, s, method,
                                                            action, body,
                                                            origin):
    s.put(counter_url(d, "x"), json={"value": 10}, timeout=TIMEOUT)
    r = s.request(method, counter_url(d, "x", action), json=body,
                  headers={"Origin": origin}, timeout=TIMEOUT)
    assert_problem(r, 403, "origin-not-allowed")
    assert "Access-Control-Allow-Origin" not in r.headers
    assert get_value(s, d, "x") == 10


def test_cross_site_fetch_metadata_without_origin_is_403(d, s):
    r = incr(s, d, "x", json={"by": 1}, headers={"Sec-Fetch-Site":
                                                 "cross-site"})
    assert_problem(r, 403, "origin-not-allowed")
    assert get_value(s, d, "x") is None


def test_same_origin_request_is_allowed(d, s):
    # The dashboard: a page served by tally itself.
    hdrs = {"Origin": own_origin(d), "Sec-Fetch-Site": "same-origin"}
    r = incr(s, d, "x", json={"by": 3}, headers=hdrs)
    assert r.status_code == 200 and r.json()["value"] == 3
    assert r.headers["Vary"] == "Origin"


def test_listed_origin_preflight_and_request(d, s):
    url = counter_url(d, "x", "increment")
    pre = s.options(url, headers={
        "Origin": APP, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,idempotency-key"},
        timeout=TIMEOUT)
    assert pre.status_code == 204, pre.text
    h = pre.headers
    assert h["Access-Control-Allow-Origin"] == APP
    assert "POST" in h["Access-Control-Allow-Methods"].split(", ")
    allowed = {x.strip().lower()
               for x in h["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert int(h["Access-Control-Max-Age"]) > 0
    assert h["Vary"] == "Origin"
    assert "Access-Control-Allow-Private-Network" not in h
    # Chrome's Private Network Access question, from a public page.
    pna = s.options(url, headers={
        "Origin": APP, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Private-Network": "true"}, timeout=TIMEOUT)
    assert pna.headers["Access-Control-Allow-Private-Network"] == "true"

    hdrs = {"Origin": APP, "Sec-Fetch-Site": "cross-site",
            "Idempotency-Key": "k1"}
    for replayed in (False, True):
        r = incr(s, d, "x", json={"by": 4}, headers=hdrs)
        assert r.status_code == 200 and r.json()["value"] == 4
        assert r.headers["Access-Control-Allow-Origin"] == APP
        assert r.headers["Vary"] == "Origin"
        exposed = {x.strip() for x in
                   r.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"Idempotent-Replayed", "Retry-After"} <= exposed
        assert ("Idempotent-Replayed" in r.headers) == replayed


def test_listed_origin_still_needs_json(d, s):
    r = incr(s, d, "x", data=b'{"by": 4}',
             headers={"Origin": APP, "Content-Type": "text/plain"})
    assert_problem(r, 415, "unsupported-media-type")
    assert get_value(s, d, "x") is None


def test_preflight_from_an_unlisted_origin_is_403(d, s):
    r = s.options(counter_url(d, "x", "increment"), headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Private-Network": "true"},
        timeout=TIMEOUT)
    assert_problem(r, 403, "origin-not-allowed")
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "Access-Control-Allow-Private-Network" not in r.headers


def test_plain_options_is_204_with_allow_and_needs_no_password(
        tallyd_factory):
    d = tallyd_factory(requirepass="pw")
    r = requests.options(counter_url(d, "x"), timeout=TIMEOUT)
    assert r.status_code == 204
    assert r.headers["Allow"] == "GET, HEAD, PUT, DELETE, OPTIONS"
    assert "Access-Control-Allow-Origin" not in r.headers


def test_public_reads_are_readable_from_any_origin_without_credentials(d, s):
    s.put(counter_url(d, "x"), json={"value": 7}, timeout=TIMEOUT)
    for url in (counter_url(d, "x"), d.url + "/healthz"):
        r = s.get(url, headers={"Origin": EVIL}, timeout=TIMEOUT)
        assert r.status_code == 200
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in r.headers
        assert r.headers["Vary"] == "Origin"
    # The listing and /metrics are not public: no CORS for a foreign page.
    for url in (d.url + "/v1/counters", d.url + "/metrics"):
        r = s.get(url, headers={"Origin": EVIL}, timeout=TIMEOUT)
        assert r.status_code == 200
        assert "Access-Control-Allow-Origin" not in r.headers
        r = s.get(url, headers={"Origin": APP}, timeout=TIMEOUT)
        assert r.headers["Access-Control-Allow-Origin"] == APP


def test_cors_origin_list_and_repeat(tallyd_factory):
    d = tallyd_factory(http_cors_origin=["http://a.example, HTTP://B.example",
                                         "http://c.example:81"])
    s = session(d)
    for i, origin in enumerate(["http://a.example", "http://b.example",
                                "http://c.example:81"], 1):
        r = incr(s, d, "x", json={"by": 1}, headers={"Origin": origin})
        assert r.status_code == 200 and r.json()["value"] == i, r.text
    assert_problem(incr(s, d, "x", json={"by": 1},
                        headers={"Origin": "http://c.example"}), 403)


def test_cors_origin_star_needs_a_password(tallyd_factory):
    d = tallyd_factory(start=False, http_cors_origin="*")
    d.spawn()
    assert d.wait_exit() == 2
    assert "--http-cors-origin '*' needs a password" in d.run_log()
    d = tallyd_factory(http_cors_origin="*", requirepass="pw")
    s = session(d)
    r = incr(s, d, "x", json={"by": 1}, headers={"Origin": EVIL})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == EVIL
    r = requests.post(counter_url(d, "x", "increment"), json={"by": 1},
                      headers={"Origin": EVIL}, timeout=TIMEOUT)
    assert_problem(r, 401, "unauthorized")


@pytest.mark.parametrize("flag,value,says", [
    ("http_cors_origin", "http://app.example/", "is not an origin"),
    ("http_cors_origin", "app.example", "is not an origin"),
    ("http_cors_origin", "null", "'null'"),
    ("http_cors_origin", "http://a.example,,http://b.example", "empty"),
    ("http_allowed_host", "tally.example:7380", "without a port"),
    ("http_allowed_host", "::1", "in brackets"),
    ("http_allowed_host", "a b", "not a host name"),
])
def test_bad_browser_flags_are_refused(tallyd_factory, flag, value, says):
    d = tallyd_factory(start=False, **{flag: value})
    d.spawn()
    assert d.wait_exit() == 2
    assert says in d.run_log()


# ---- Host (DNS rebinding) ---------------------------------------------------

def raw_with_host(server, host, method="GET", path="/v1/counters/x",
                  body=None):
    """The status of a request whose only Host header is host (raw_request
    sends the server's own); a body goes as application/json."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    if body is not None:
        head += (f"Content-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n")
    with socket.create_connection((server.host, server.http_port),
                                  TIMEOUT) as c:
        c.sendall(head.encode() + b"\r\n" + (body or b""))
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    if status == 421:
        problem = json.loads(data.split(b"\r\n\r\n", 1)[1])
        assert problem["type"] == "urn:tally:problem:host-not-allowed"
        assert data.lower().count(b"content-type: application/problem+json")
    return status


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7380",
                                  "localhost.evil.example", "10.0.0.1",
                                  "[::2]:80", "127.0.0.1:x", "localhost:80:1"])
def test_a_rebinding_host_is_421(d, s, host):
    s.put(counter_url(d, "x"), json={"value": 1}, timeout=TIMEOUT)
    for method, path, body in (("GET", "/v1/counters/x", None),
                               ("GET", "/v1/counters", None),
                               ("GET", "/healthz", None),
                               ("POST", "/v1/counters/x/increment", b"{}")):
        assert raw_with_host(d, host, method, path, body) == 421, path
    assert get_value(s, d, "x") == 1


@pytest.mark.parametrize("host", ["localhost", "localhost:1", "LOCALHOST.",
                                  "127.0.0.1", "127.0.0.1:7380", "[::1]",
                                  "[::1]:7380"])
def test_loopback_names_with_any_port_are_served(d, host):
    assert raw_with_host(d, host) == 404  # served: the counter is missing


def test_allowed_host_names_are_served(tallyd_factory):
    d = tallyd_factory(http_allowed_host="tally.example,Other.Example.")
    for host in ("tally.example", "tally.example:8080", "other.example"):
        assert raw_with_host(d, host) == 404, host
    assert raw_with_host(d, "evil.example") == 421


def test_allowed_host_star_turns_the_check_off(tallyd_factory):
    d = tallyd_factory(http_allowed_host="*")
    assert raw_with_host(d, "anything.example:1") == 404


def test_non_loopback_bind_serves_addresses_but_not_unlisted_names(
        tallyd_factory):
    d = tallyd_factory(bind="0.0.0.0")
    assert "get 421 unless the name is given" in d.run_log()
    for host in ("127.0.0.1", "192.0.2.7:7380", "[2001:db8::1]", "localhost"):
        assert raw_with_host(d, host) == 404, host
    assert raw_with_host(d, "tally.example") == 421
    d2 = tallyd_factory(bind="0.0.0.0", http_allowed_host="tally.example")
    assert raw_with_host(d2, "tally.example") == 404
    assert "get 421" not in d2.run_log()


# ---- a real browser ---------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = REPO / "build" / "artifacts"

# Runs in the page; arguments: tally's base URL, a key, a callback.  Tries
# every way a page can post without asking and reports what the page saw.
ATTACKS = r"""
const [base, key, done] = arguments;
const url = base + "/v1/counters/" + key + "/increment";
const out = {};
async function attempt(name, init) {
  try {
    const r = await fetch(url, init);
    out[name] = "status " + r.status;
  } catch (e) {
    out[name] = "blocked: " + e.name;
  }
}
async function form(name, enctype, fields) {
  const frame = document.createElement("iframe");
  frame.name = name;
  document.body.appendChild(frame);
  const f = document.createElement("form");
  f.method = "POST"; f.action = url; f.target = name; f.enctype = enctype;
  for (const [k, v] of fields) {
    const i = document.createElement("input");
    i.type = "hidden"; i.name = k; i.value = v; f.appendChild(i);
  }
  document.body.appendChild(f);
  const loaded = new Promise(res => frame.onload = res);
  f.submit();
  await Promise.race([loaded, new Promise(res => setTimeout(res, 3000))]);
  out[name] = "submitted";
}
(async () => {
  await attempt("fetch text/plain", {method: "POST", body: '{"by": 5}'});
  await attempt("fetch no-cors", {method: "POST", mode: "no-cors",
                                  body: '{"by": 5}'});
  await attempt("fetch no body", {method: "POST", mode: "no-cors"});
  await attempt("fetch json", {method: "POST", body: '{"by": 5}',
                               headers: {"Content-Type": "application/json"}});
  await form("form-urlencoded", "application/x-www-form-urlencoded", []);
  await form("form-text", "text/plain", [['{"by": 5, "x": "', '"}']]);
  document.body.insertAdjacentHTML("beforeend",
    "<pre id=attacks>" + JSON.stringify(out, null, 1) + "</pre>");
  done(out);
})();
"""

# The legitimate app: a JSON fetch it can read, with a retry it can tell.
APP_FETCH = r"""
const [base, key, done] = arguments;
const url = base + "/v1/counters/" + key + "/increment";
const init = {method: "POST", body: '{"by": 2}',
              headers: {"Content-Type": "application/json",
                        "Idempotency-Key": "browser-1"}};
(async () => {
  try {
    const out = [];
    for (let i = 0; i < 2; i++) {
      const r = await fetch(url, init);
      out.push({status: r.status, body: await r.json(),
                replayed: r.headers.get("Idempotent-Replayed")});
    }
    document.body.insertAdjacentHTML("beforeend",
      "<pre id=app>" + JSON.stringify(out, null, 1) + "</pre>");
    done(out);
  } catch (e) {
    done("failed: " + e);
  }
})();
"""


@pytest.fixture
def other_origin(tmp_path):
    """An http.server on a second loopback port serving one page: the
    origin http://127.0.0.1:PORT, not tally's."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(
        "<!doctype html><title>another origin</title>"
        "<h1>a page on another origin</h1>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Quiet)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def browser(tmp_path):
    """Headless chromium through chromedriver, with a fresh profile."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("python3-selenium is not installed (scripts/deps.sh test)")
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("chromium and chromium-driver are not installed "
                    "(scripts/deps.sh test)")
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update",
              "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
              f"--user-data-dir={profile}", "--window-size=900,700"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_script_timeout(20)
    drv.set_page_load_timeout(20)
    yield drv
    drv.quit()


def shoot(browser, name):
    """Save what the page shows as build/artifacts/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    assert browser.save_screenshot(str(shot)), shot


def test_browser_page_on_another_origin_cannot_change_a_counter(
        tallyd_factory, other_origin, browser, tmp_path):
    t0 = time.monotonic()
    d = tallyd_factory()
    s = session(d)
    s.put(counter_url(d, "x"), json={"value": 10}, timeout=TIMEOUT)

    browser.get(other_origin + "/index.html")
    seen = browser.execute_async_script(ATTACKS, d.url, "x")
    assert get_value(s, d, "x") == 10, seen
    # The JSON fetch needed a preflight, which tally refused.
    assert seen["fetch json"].startswith("blocked"), seen
    assert seen["fetch text/plain"].startswith("blocked"), seen
    shoot(browser, "http_browser_refused")
    refused = seen

    # Listed, the same origin's JSON fetch works (by 5) and reads the
    # answer; its simple requests and forms still change nothing.
    d.flags["http_cors_origin"] = other_origin
    d.restart()
    browser.get(other_origin + "/index.html")
    seen = browser.execute_async_script(ATTACKS, d.url, "x")
    assert seen["fetch json"] == "status 200", seen
    assert seen["fetch text/plain"] == "status 415", seen
    assert get_value(s, d, "x") == 15, seen
    out = browser.execute_async_script(APP_FETCH, d.url, "x")
    assert out[0] == {"status": 200, "body": {"key": "x", "value": 17},
                      "replayed": None}, out
    # Idempotent-Replayed is exposed to the page.
    assert out[1] == {"status": 200, "body": {"key": "x", "value": 17},
                      "replayed": "true"}, out
    assert get_value(s, d, "x") == 17

    shoot(browser, "http_browser_allowed")
    (ARTIFACTS / "http_browser.json").write_text(json.dumps(
        {"unlisted": refused, "listed": seen, "app": out}, indent=1))
    assert time.monotonic() - t0 < 30
