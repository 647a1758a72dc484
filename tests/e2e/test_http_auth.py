# SPDX-License-Identifier: BSD-3-Clause
"""The HTTP bearer token, byte for byte: a password that starts with a space
works over HTTP as it does over RESP, and authenticating an HTTP request is
not an AUTH command, so it shows in neither /metrics nor INFO commandstats.
(The 401s themselves are in test_http_durability.py.)"""

import re

import pytest
import requests

from test_http_util import TIMEOUT, assert_problem, counter_url

pytestmark = pytest.mark.own_server

PASSWORDS = [" s3cret", "  two leading", "\tx"]


def bearer(token):
    return {"Authorization": "Bearer " + token}


@pytest.mark.parametrize("password", PASSWORDS,
                         ids=["one-space", "two-spaces", "tab"])
def test_password_starting_with_a_space_works_over_http_and_resp(
        tallyd_factory, password):
    d = tallyd_factory(requirepass=password)
    r = d.redis(password=password)
    assert r.incr("x") == 1
    url = counter_url(d, "x")
    got = requests.get(url, headers=bearer(password), timeout=TIMEOUT)
    assert got.status_code == 200 and got.json()["value"] == 1, got.text
    # The bytes after "Bearer " are the password: no space is skipped, so
    # the password without its leading blanks is wrong.
    stripped = password.lstrip(" \t")
    if stripped:
        assert_problem(requests.get(url, headers=bearer(stripped),
                                    timeout=TIMEOUT), 401, "unauthorized")
    assert_problem(requests.get(url, headers=bearer(" " + password),
                                timeout=TIMEOUT), 401, "unauthorized")


def test_a_password_ending_in_a_blank_is_logged_as_unusable_over_http(
        tallyd_factory):
    # HTTP drops blanks around a header value (RFC 9110, section 5.5), so
    # no client can send such a password; tallyd says so when it starts.
    d = tallyd_factory(requirepass="pw ")
    assert "ends in a space or tab" in d.run_log()
    assert_problem(requests.get(counter_url(d, "x"), headers=bearer("pw "),
                                timeout=TIMEOUT), 401, "unauthorized")
    assert "ends in a space" not in tallyd_factory(
        requirepass=" pw").run_log()


def http_auth_calls(metrics_text):
    """tally_commands_total and _errors for protocol http, command auth."""
    out = {}
    for name in ("tally_commands_total", "tally_command_errors_total"):
        m = re.search(r'^%s\{protocol="http",command="auth"\} (\d+)$' % name,
                      metrics_text, re.M)
        out[name] = int(m.group(1)) if m else 0
    return out


def test_http_authentication_is_not_counted_as_auth(tallyd_factory):
    d = tallyd_factory(requirepass="pw")
    r = d.redis(password="pw")  # one connection: one AUTH
    good, bad = bearer("pw"), bearer("wrong")
    with requests.Session() as s:
        for _ in range(5):
            assert s.post(counter_url(d, "x", "increment"), headers=good,
                          timeout=TIMEOUT).status_code == 200
        for _ in range(3):
            assert s.get(counter_url(d, "x"), headers=bad,
                         timeout=TIMEOUT).status_code == 401
        text = s.get(d.url + "/metrics", headers=good, timeout=TIMEOUT).text
    assert http_auth_calls(text) == {"tally_commands_total": 0,
                                     "tally_command_errors_total": 0}
    assert re.search(r'^tally_commands_total\{protocol="http",'
                     r'command="incrby"\} 5$', text, re.M), text
    stats = r.info("commandstats")["cmdstat_auth"]
    assert stats["calls"] == 1, stats
    assert stats["calls_http"] == 0 and stats["calls_resp"] == 1, stats
    assert stats["failed_calls"] == 0, stats
