# SPDX-License-Identifier: BSD-3-Clause
"""Change streams over HTTP (Server-Sent Events, docs/events.md): one event
per durable change with key, value (or deleted), op, time and id; resume
with Last-Event-ID from the window without a gap, or a reset when too far
behind; keep-alive comments; and the badge, which is a read like GET."""

import threading
import time
import xml.dom.minidom

import pytest
import requests

from sse_util import SSE, RawSSE
from test_http_util import TIMEOUT, counter_url, session


def events_url(server, prefix=None, key=None):
    if key is not None:
        return counter_url(server, key, "events")
    return f"{server.url}/v1/events" + ("" if prefix is None
                                        else f"?prefix={prefix}")


def test_sse_incr_over_resp_produces_an_event(tallyd, key):
    key = key()
    sse = SSE(events_url(tallyd, key=key))
    try:
        tallyd.redis().incrby(key, 5)
        ev = sse.next()
    finally:
        sse.close()
    assert ev["event"] == "change"
    assert int(ev["id"]) > 0
    d = ev["data"]
    assert (d["key"], d["value"], d["op"]) == (key, 5, "incrby")
    assert d["time"].endswith("Z") and d["time"][:4].isdigit()


def test_sse_prefix_stream_has_every_kind_of_change_and_nothing_else(tallyd,
                                                                      key):
    key = key()
    r = tallyd.redis()
    sse = SSE(events_url(tallyd, prefix=key + ":"))
    try:
        r.incr(key + ":a")
        r.set(key + "-other", 1)        # outside the prefix
        r.set(key + ":b", 7)
        r.mset({key + ":c": 1})
        r.delete(key + ":a", key + ":missing")
        r.getdel(key + ":b")
        r.set(key + ":c", 9, nx=True)   # not set: no event
        s = session(tallyd)
        s.post(counter_url(tallyd, key + ":d", "decrement"), json={"by": 2},
               timeout=TIMEOUT).raise_for_status()
        got = [(e["data"]["key"], e["data"].get("value"),
                e["data"].get("deleted"), e["data"]["op"])
               for e in sse.take(6)]
    finally:
        sse.close()
    k = key + ":"
    assert got == [(k + "a", 1, None, "incrby"), (k + "b", 7, None, "set"),
                   (k + "c", 1, None, "mset"), (k + "a", None, True, "del"),
                   (k + "b", None, True, "getdel"),
                   (k + "d", -2, None, "incrby")]


@pytest.mark.own_server
def test_sse_reconnect_with_last_event_id_misses_nothing_across_1000_changes(
        tallyd_factory):
    server = tallyd_factory(fsync="everysec")
    r = server.redis()
    done = threading.Event()

    def write():
        for i in range(1000):
            r.incr("page")
            if i % 100 == 0:
                time.sleep(0.01)  # let the reader fall behind and rejoin
        done.set()

    seen = []
    sse = SSE(events_url(server, key="page"))
    writer = threading.Thread(target=write)
    writer.start()
    try:
        # Three connections: read some, drop the stream while the writer
        # goes on, come back with the last id seen.
        for stop_at in (150, 600, 1000):
            while len(seen) < stop_at:
                ev = sse.next()
                assert ev["event"] == "change", ev
                seen.append((int(ev["id"]), ev["data"]["value"]))
            sse.close()
            if stop_at < 1000:
                time.sleep(0.05)
                sse = SSE(events_url(server, key="page"), last_id=seen[-1][0])
    finally:
        writer.join()
        sse.close()
    assert [v for _, v in seen] == list(range(1, 1001))
    ids = [i for i, _ in seen]
    assert ids == list(range(ids[0], ids[0] + 1000))


@pytest.mark.own_server
def test_sse_too_far_behind_gets_a_reset_with_the_current_value(
        tallyd_factory):
    server = tallyd_factory(events_window=10)
    r = server.redis()
    sse = SSE(events_url(server, key="k"))
    r.incr("k")
    first = int(sse.next()["id"])
    sse.close()
    for _ in range(30):
        r.incr("k")
    sse = SSE(events_url(server, key="k"), last_id=first)
    try:
        ev = sse.next()
        assert ev["event"] == "reset"
        assert ev["data"] == {"key": "k", "value": 31}
        r.incr("k")
        ev = sse.next()
        assert (ev["event"], ev["data"]["value"]) == ("change", 32)
    finally:
        sse.close()
    # A prefix stream is told to list again.
    sse = SSE(events_url(server, prefix="k"), last_id=first)
    try:
        ev = sse.next()
        assert ev["event"] == "reset" and ev["data"] == {"prefix": "k"}
    finally:
        sse.close()


@pytest.mark.own_server
def test_sse_keepalive_comments(tallyd_factory):
    server = tallyd_factory(events_keepalive=1)
    raw = RawSSE(server, "/v1/events")
    try:
        assert raw.wait_for(b": keep-alive", 3) is not None
    finally:
        raw.close()


def test_sse_stream_is_a_public_read(tallyd, key):
    key = key()
    r = requests.get(events_url(tallyd, key=key), stream=True,
                     headers={"Origin": "https://elsewhere.example"},
                     timeout=TIMEOUT)
    try:
        assert r.status_code == 200
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert r.headers["Cache-Control"] == "no-store"
    finally:
        r.close()
    r = requests.post(events_url(tallyd, key=key), timeout=TIMEOUT)
    assert r.status_code == 405


@pytest.mark.own_server
def test_sse_needs_the_password_when_there_is_one(tallyd_factory):
    server = tallyd_factory(requirepass="sekret")
    r = requests.get(events_url(server, prefix=""), timeout=TIMEOUT)
    assert r.status_code == 401
    sse = SSE(events_url(server, key="k"),
              headers={"Authorization": "Bearer sekret"})
    try:
        server.redis(password="sekret").incr("k")
        assert sse.next()["data"]["value"] == 1
    finally:
        sse.close()


@pytest.mark.own_server
def test_sse_subscriber_that_never_reads_is_cut_off_and_counted(
        tallyd_factory):
    server = tallyd_factory(fsync="no", subscriber_output_limit=65536)
    slow = RawSSE(server, "/v1/events", rcvbuf=4096)
    assert slow.wait_for(b"retry:", 5)
    r = server.redis()
    pipe = r.pipeline(transaction=False)
    big = "x" * 1000
    for i in range(3000):
        pipe.incr(f"{big}{i % 50}")
    pipe.execute()
    s = session(server)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = s.get(server.url + "/metrics", timeout=TIMEOUT).text
        if 'tally_subscribers_cut_off_total{proto="http"} 1' in text:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the slow SSE client was not counted as cut off")
    assert slow.closed_within(5)
    slow.close()


def test_badge_is_svg_with_escaped_label_and_safe_colour(tallyd, key):
    key = key()
    tallyd.redis().set(key, 42)
    s = session(tallyd)
    r = s.get(counter_url(tallyd, key, "badge.svg"),
              params={"label": "<visits & \"more\">", "color": "red"},
              timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("image/svg+xml")
    assert "max-age" in r.headers["Cache-Control"]
    doc = xml.dom.minidom.parseString(r.content)  # well-formed XML
    texts = [t.firstChild.data for t in doc.getElementsByTagName("text")]
    assert texts == ['<visits & "more">'] * 2 + ["42"] * 2
    assert "#e05d44" in r.text
    r = s.get(counter_url(tallyd, key, "badge.svg"),
              params={"color": "red\"/><script>"}, timeout=TIMEOUT)
    assert "<script" not in r.text and "#007ec6" in r.text
    # The label defaults to the key (cut at 64 characters); a counter never
    # counted shows 0.
    r = s.get(counter_url(tallyd, key + "-none", "badge.svg"), timeout=TIMEOUT)
    doc = xml.dom.minidom.parseString(r.content)
    texts = [t.firstChild.data for t in doc.getElementsByTagName("text")]
    assert texts == [(key + "-none")[:64]] * 2 + ["0"] * 2


def test_sse_expire_and_expired_events(tallyd, key):
    key = key()
    r = tallyd.redis()
    sse = SSE(events_url(tallyd, key=key))
    try:
        r.set(key, 5, px=200)
        got = [(e["data"].get("value"), e["data"].get("expired"),
                e["data"]["op"]) for e in sse.take(3)]
    finally:
        sse.close()
    # set, expire, then (found by active expiry, no read needed) expired.
    assert got == [(5, None, "set"), (5, None, "expire"),
                   (None, True, "expired")]
