# SPDX-License-Identifier: BSD-3-Clause
"""The dashboard in a real headless chromium (the same setup as
test_http_browser.py): load /, find a counter by prefix, see its value move
after a redis-cli INCR (live, through the change stream), click increment
and find the change in GET /v1/counters/{key}; then the Server view, and
the password prompt.  Screenshots go to build/artifacts/."""

import subprocess
import time

import pytest

from test_http_browser import browser, shoot  # noqa: F401 (a fixture)
from test_http_util import TIMEOUT, counter_url, session

pytestmark = pytest.mark.own_server


def wait(pred, timeout=10, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    pytest.fail("timed out waiting for " + what)


def cell(browser, key):
    """key's row, or None (also when the table changed under the look:
    callers poll)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    try:
        for tr in browser.find_elements(By.CSS_SELECTOR, "#list tbody tr"):
            if tr.find_element(By.CSS_SELECTOR, "td.key").text == key:
                return tr
    except StaleElementReferenceException:
        return None
    return None


def value_of(browser, key):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    tr = cell(browser, key)
    try:
        return tr and tr.find_element(By.CSS_SELECTOR, "td.value").text
    except StaleElementReferenceException:
        return None


def search(browser, prefix):
    from selenium.webdriver.common.by import By
    box = browser.find_element(By.ID, "prefix")
    box.clear()
    box.send_keys(prefix)
    browser.find_element(By.CSS_SELECTOR, "#search button").click()


def test_dashboard_live_counter_and_increment_button(tallyd_factory, browser):
    from selenium.webdriver.common.by import By
    d = tallyd_factory()
    r = d.redis()
    for i in range(5):
        r.set(f"page:{i}", i * 10)
    r.set("other", 1)
    browser.get(d.url + "/")
    assert browser.title == "tally"
    search(browser, "page:")
    wait(lambda: value_of(browser, "page:3") == "30", what="page:3 listed")
    assert cell(browser, "other") is None
    wait(lambda: "live" == browser.find_element(By.ID, "live").text,
         what="the stream")
    # A change over RESP, by redis-cli, shows up live.
    subprocess.run(["redis-cli", "-p", str(d.port), "INCR", "page:3"],
                   check=True, capture_output=True, timeout=TIMEOUT)
    wait(lambda: value_of(browser, "page:3") == "31", what="the live value")
    # Increment from the page; the API agrees.
    cell(browser, "page:3").find_element(
        By.CSS_SELECTOR, "button[aria-label='increment page:3']").click()
    wait(lambda: value_of(browser, "page:3") == "32", what="the click")
    s = session(d)
    assert s.get(counter_url(d, "page:3"),
                 timeout=TIMEOUT).json() == {"key": "page:3", "value": 32}
    # A time to live from the page: the row goes once the counter expires.
    tr = cell(browser, "page:4")
    tr.find_element(By.CSS_SELECTOR,
                    "input[aria-label='seconds until page:4 expires']"
                    ).send_keys("1")
    tr.find_element(By.CSS_SELECTOR, "button[aria-label='set the time to "
                    "live of page:4']").click()
    wait(lambda: 0 < r.pttl("page:4") <= 1000, what="the expiry")
    wait(lambda: cell(browser, "page:4") is None, what="the expired row")
    assert r.get("page:4") is None
    for _ in range(6):  # some rate for the sparkline
        r.incrby("page:1", 3)
        time.sleep(0.3)
    wait(lambda: value_of(browser, "page:1") == "28", what="page:1")
    time.sleep(1.2)
    shoot(browser, "dashboard_counters")
    browser.set_window_size(390, 800)  # a phone
    shoot(browser, "dashboard_phone")
    browser.set_window_size(900, 700)
    browser.find_element(By.ID, "tab-server").click()
    wait(lambda: browser.find_element(By.ID, "health").text == "healthy",
         what="the server view")
    wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#fsync-hist div"),
         what="the fsync histogram")
    time.sleep(2.2)  # a second scrape gives ops/s
    shoot(browser, "dashboard_server")
    assert "fsync always" in browser.find_element(By.ID, "policy").text


def test_dashboard_asks_for_the_password_once(tallyd_factory, browser):
    from selenium.webdriver.common.by import By
    d = tallyd_factory(requirepass="sekret")
    d.redis(password="sekret").set("k", 7)
    browser.get(d.url + "/")
    box = wait(lambda: browser.find_element(By.ID, "token").is_displayed()
               and browser.find_element(By.ID, "token"), what="the prompt")
    box.send_keys("wrong")
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(lambda: "not right" in browser.find_element(By.ID, "login-error").text,
         what="the refusal")
    box.clear()
    box.send_keys("sekret")
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(lambda: value_of(browser, "k") == "7", what="the list")
    cell(browser, "k").find_element(
        By.CSS_SELECTOR, "button[aria-label='increment k']").click()
    wait(lambda: value_of(browser, "k") == "8", what="the click")
    assert browser.execute_script(
        "return sessionStorage.getItem('tally-token')") == "sekret"
    assert browser.execute_script(
        "return localStorage.length") == 0
