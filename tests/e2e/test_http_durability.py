# SPDX-License-Identifier: BSD-3-Clause
"""Over HTTP: the service's three promises across a graceful restart
(SIGTERM) and a crash (SIGKILL), acknowledged increments surviving a crash
in the middle of traffic, and bearer-token authentication."""

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from test_http_util import (TIMEOUT, assert_problem, counter_url, get_value,
                            session)

pytestmark = pytest.mark.own_server

RESTARTS = [pytest.param(False, id="sigterm"), pytest.param(True, id="sigkill")]


@pytest.mark.parametrize("crash", RESTARTS)
def test_counter_at_10_reads_10_after_restart(tallyd, crash):
    # Given a counter set to 10 over HTTP
    s = session(tallyd)
    assert s.put(counter_url(tallyd, "visits"), json={"value": 10},
                 timeout=TIMEOUT).status_code == 200
    # When the server restarts
    tallyd.restart(crash=crash)
    # Then it reads 10
    assert get_value(session(tallyd), tallyd, "visits") == 10


@pytest.mark.parametrize("crash", RESTARTS)
def test_counter_10_incremented_reads_11_after_restart(tallyd, crash):
    s = session(tallyd)
    s.put(counter_url(tallyd, "visits"), json={"value": 10}, timeout=TIMEOUT)
    r = s.post(counter_url(tallyd, "visits", "increment"), timeout=TIMEOUT)
    assert r.json()["value"] == 11
    tallyd.restart(crash=crash)
    assert get_value(session(tallyd), tallyd, "visits") == 11


@pytest.mark.parametrize("crash", RESTARTS)
def test_counter_10_incremented_five_times_reads_15_after_restart(tallyd,
                                                                  crash):
    s = session(tallyd)
    s.put(counter_url(tallyd, "visits"), json={"value": 10}, timeout=TIMEOUT)
    url = counter_url(tallyd, "visits", "increment")
    assert [s.post(url, timeout=TIMEOUT).json()["value"]
            for _ in range(5)] == [11, 12, 13, 14, 15]
    tallyd.restart(crash=crash)
    assert get_value(session(tallyd), tallyd, "visits") == 15


@pytest.mark.parametrize("crash", RESTARTS)
def test_delete_stays_deleted_after_restart(tallyd, crash):
    s = session(tallyd)
    s.put(counter_url(tallyd, "gone"), json={"value": 1}, timeout=TIMEOUT)
    assert s.delete(counter_url(tallyd, "gone"),
                    timeout=TIMEOUT).status_code == 204
    tallyd.restart(crash=crash)
    assert get_value(session(tallyd), tallyd, "gone") is None


def test_acknowledged_increments_survive_sigkill_mid_traffic(tallyd):
    # Given four clients incrementing their own counters as fast as they can
    acked = {}
    stop = threading.Event()

    def worker(n):
        s = session(tallyd)
        url = counter_url(tallyd, f"w{n}", "increment")
        last = 0
        while not stop.is_set():
            try:
                r = s.post(url, timeout=TIMEOUT)
            except requests.RequestException:
                break
            if r.status_code != 200:
                break
            last = r.json()["value"]
        acked[n] = last

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    # When the server is killed while they run
    time.sleep(1.0)
    tallyd.kill()
    stop.set()
    for t in threads:
        t.join(30)
    tallyd.start()
    # Then every acknowledged value survived (one more may have landed
    # without its answer reaching the client)
    s = session(tallyd)
    for n, last in acked.items():
        assert last > 0
        got = get_value(s, tallyd, f"w{n}")
        assert got in (last, last + 1), (n, last, got)


# ---- authentication ---------------------------------------------------------

def test_password_is_required_as_a_bearer_token(tallyd_factory):
    d = tallyd_factory(requirepass="s3cret pass")
    url = counter_url(d, "k")
    anon = requests.Session()
    # Without a token: 401 and a challenge, for reads, writes and /metrics
    for method, u in (("GET", url), ("PUT", url), ("DELETE", url),
                      ("POST", url + "/increment"),
                      ("GET", d.url + "/v1/counters"),
                      ("GET", d.url + "/metrics")):
        r = anon.request(method, u, json={"value": 1}, timeout=TIMEOUT)
        assert_problem(r, 401, "unauthorized")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # A wrong token, another scheme, or a prefix of the password: 401
    for auth in ("Bearer wrong", "Basic czNjcmV0", "Bearer s3cret",
                 "Bearer s3cret pass2", "Bearer"):
        r = anon.get(url, headers={"Authorization": auth}, timeout=TIMEOUT)
        assert_problem(r, 401, "unauthorized")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # Nothing was written
    assert d.redis(password="s3cret pass").get("k") is None
    # The right token works, and the scheme is case-insensitive
    s = session(d)
    assert s.post(url + "/increment", timeout=TIMEOUT).json()["value"] == 1
    r = anon.get(url, headers={"Authorization": "bearer s3cret pass"},
                 timeout=TIMEOUT)
    assert r.json()["value"] == 1
    assert s.get(d.url + "/metrics", timeout=TIMEOUT).status_code == 200


def test_health_probes_need_no_token(tallyd_factory):
    d = tallyd_factory(requirepass="pw")
    assert requests.get(d.url + "/healthz", timeout=TIMEOUT).status_code == 200
    assert requests.get(d.url + "/readyz", timeout=TIMEOUT).status_code == 200


def test_each_request_authenticates_on_its_own(tallyd_factory):
    # A good request on a keep-alive connection must not let the next one in.
    d = tallyd_factory(requirepass="pw")
    s = requests.Session()
    r = s.get(counter_url(d, "k"), headers={"Authorization": "Bearer pw"},
              timeout=TIMEOUT)
    assert r.status_code == 404
    assert_problem(s.get(counter_url(d, "k"), timeout=TIMEOUT), 401)



# ---- a full disk --------------------------------------------------------------

def set_file_size_limit(pid, limit):
    """RLIMIT_FSIZE of a running process: the engine treats a write past it
    like a full disk (it checks the limit, so no SIGXFSZ)."""
    # Soft limit only ("N:"): raising a hard limit needs CAP_SYS_RESOURCE.
    subprocess.run(["prlimit", f"--pid={pid}", f"--fsize={limit}:"],
                   check=True)


@pytest.mark.engine_files("a full disk under the engine's log")
def test_full_disk_is_507_and_readyz_503_until_space_returns(tallyd_factory):
    if not shutil.which("prlimit"):
        pytest.skip("prlimit not installed")
    d = tallyd_factory()
    s = session(d)
    s.put(counter_url(d, "kept"), json={"value": 7}, timeout=TIMEOUT)
    # Given the log files may not grow past their current size
    biggest = max(p.stat().st_size for p in Path(d.dir).iterdir())
    set_file_size_limit(d.pid, biggest)
    # When changes fill the space already reserved
    status = None
    for i in range(20_000):
        r = s.put(counter_url(d, f"{i:06d}" + "x" * 1000), json={"value": i},
                  timeout=TIMEOUT)
        status = r.status_code
        if status != 200:
            break
    # Then a change is refused with 507, and nothing of it is kept
    body = assert_problem(r, 507, "disk-full")
    assert "nothing changed" in body["detail"]
    assert get_value(s, d, f"{i:06d}" + "x" * 1000) is None
    assert_problem(s.post(counter_url(d, "y" * 1000, "increment"),
                          timeout=TIMEOUT), 507, "disk-full")
    # and readiness says why, while reads go on
    ready = assert_problem(s.get(d.url + "/readyz", timeout=TIMEOUT), 503,
                           "not-ready")
    assert "space" in ready["detail"]
    assert s.get(d.url + "/healthz", timeout=TIMEOUT).status_code == 200
    assert get_value(s, d, "kept") == 7
    metrics = s.get(d.url + "/metrics", timeout=TIMEOUT).text
    assert "\ntally_healthy 0\n" in metrics
    assert "\ntally_health_code -7\n" in metrics
    # When space returns, the next change succeeds and readiness comes back
    set_file_size_limit(d.pid, "unlimited")
    r = s.post(counter_url(d, "y" * 1000, "increment"), timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["value"] == 1
    assert s.get(d.url + "/readyz", timeout=TIMEOUT).status_code == 200
    # and what was acknowledged survives a crash
    d.restart(crash=True)
    assert get_value(session(d), d, "y" * 1000) == 1
    assert get_value(session(d), d, "kept") == 7
    assert get_value(session(d), d, "000000" + "x" * 1000) == 0
