# SPDX-License-Identifier: BSD-3-Clause
"""RESP publish/subscribe and keyspace notifications, side by side with a
real redis-server started with the same notify-keyspace-events: redis-py's
pubsub() must see the same messages from both for the same commands.  Also
RESP3 push frames, RESP2 subscriber mode, PUBSUB introspection, and a
subscriber that never reads: cut off, counted, and no drag on writers."""

import socket
import threading
import time

import pytest
import redis

from test_http_util import TIMEOUT, session
from test_wire_attacks import redis_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.own_server

NOTIFY = "KEA"


@pytest.fixture
def reference(redis_server):
    """A real redis-server with the same notify-keyspace-events."""
    r = redis.Redis(port=redis_server.port, decode_responses=True,
                    socket_timeout=10)
    r.config_set("notify-keyspace-events", NOTIFY)
    return r


def story(r):
    """The same commands against either server."""
    r.incr("a")
    r.incrby("a", 5)
    r.decr("a")
    r.set("b", 7)
    r.set("b", 8, nx=True)        # not set: no event
    r.mset({"c": 1, "d": 2})
    r.delete("a", "b", "a", "missing")  # a repeated key: one event
    r.getdel("c")
    r.delete("missing")           # nothing deleted: no event


def messages(client, pattern="__key*__:*", run=story):
    """Run run() under a psubscribe and return what pubsub() received."""
    p = client.pubsub()
    p.psubscribe(pattern)
    assert p.get_message(timeout=5)["type"] == "psubscribe"
    run(client)
    got = []
    while True:
        m = p.get_message(timeout=0.5)
        if m is None:
            break
        got.append((m["type"], m["pattern"], m["channel"], m["data"]))
    p.close()
    return got


def test_keyspace_and_keyevent_messages_match_redis(tallyd_factory,
                                                    reference):
    server = tallyd_factory(notify_keyspace_events=NOTIFY)
    ours = messages(server.redis())
    theirs = messages(reference)
    assert ours == theirs
    assert ("pmessage", "__key*__:*", "__keyevent@0__:incrby", "a") in ours
    assert ("pmessage", "__key*__:*", "__keyspace@0__:c", "del") in ours


def expiry_story(r):
    """Expiry's events: expire, persist, del for a time already past, and
    expired, both found by a read (b) and by active expiry (d)."""
    r.set("a", 1, ex=100)
    r.expire("a", 200)
    r.persist("a")
    r.persist("a")                # no expiry left: no event
    r.set("b", 1, px=50)
    r.set("c", 1)
    r.expire("c", 0)              # already past: del
    r.incr("d")
    r.pexpire("d", 100)
    time.sleep(0.2)
    assert r.get("b") is None     # found expired by a read
    time.sleep(1.0)               # d goes by active expiry


def per_key(msgs):
    """Each key's events in order (expiry times differ between servers)."""
    out = {}
    for _, _, chan, data in msgs:
        if chan.startswith("__keyspace@0__:"):
            out.setdefault(chan.split(":", 1)[1], []).append(data)
    return out


def test_expire_and_expired_messages_match_redis(tallyd_factory, reference):
    server = tallyd_factory(notify_keyspace_events=NOTIFY)
    ours = per_key(messages(server.redis(), run=expiry_story))
    theirs = per_key(messages(reference, run=expiry_story))
    assert ours == theirs
    assert ours["b"][-1] == "expired" and ours["d"][-1] == "expired"


def test_config_set_notify_keyspace_events_like_redis(tallyd_factory,
                                                      reference):
    server = tallyd_factory()
    r = server.redis()
    assert r.config_get("notify-keyspace-events") == {
        "notify-keyspace-events": ""}
    for flags in ("KEA", "Kg$", "Ex", "AKE", "KEA$"):
        r.config_set("notify-keyspace-events", flags)
        reference.config_set("notify-keyspace-events", flags)
        assert (r.config_get("notify-keyspace-events") ==
                reference.config_get("notify-keyspace-events")), flags
    # Only the keyevent channel, only generic events: del but not incrby.
    r.config_set("notify-keyspace-events", "Eg")
    p = r.pubsub()
    p.psubscribe("*")
    p.get_message(timeout=5)
    r.incr("x")
    r.delete("x")
    m = p.get_message(timeout=5)
    assert (m["channel"], m["data"]) == ("__keyevent@0__:del", "x")
    assert p.get_message(timeout=0.3) is None
    with pytest.raises(redis.ResponseError):
        r.config_set("notify-keyspace-events", "KQ")


def test_no_notifications_without_k_or_e(tallyd_factory):
    server = tallyd_factory(notify_keyspace_events="A")
    r = server.redis()
    p = r.pubsub()
    p.psubscribe("*")
    p.get_message(timeout=5)
    r.incr("a")
    assert p.get_message(timeout=0.3) is None


def test_publish_subscribe_and_pubsub_introspection_match_redis(
        tallyd_factory, reference):
    server = tallyd_factory()

    def run(r):
        p1, p2 = r.pubsub(), r.pubsub()
        p1.subscribe("news", "sport")
        p2.psubscribe("n*")
        for _ in range(3):
            (p1 if _ < 2 else p2).get_message(timeout=5)
        out = [r.publish("news", "hello"), r.publish("other", "x"),
               sorted(r.pubsub_channels()), r.pubsub_channels("s*"),
               r.pubsub_numsub("news", "nobody"), r.pubsub_numpat()]
        out.append(p1.get_message(timeout=5))
        out.append(p2.get_message(timeout=5))
        p1.unsubscribe()
        out.append(sorted([p1.get_message(timeout=5)["channel"]
                           for _ in range(2)]))
        out.append(r.pubsub_numsub("news"))
        p1.close()
        p2.close()
        return out

    assert run(server.redis()) == run(reference)


def raw_exchange(sock, data, quiet=0.3):
    sock.sendall(data)
    sock.settimeout(quiet)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    return out


def test_resp2_subscriber_mode_and_resp3_push_frames(tallyd_factory):
    server = tallyd_factory()
    with socket.create_connection((server.host, server.port), 10) as s:
        assert raw_exchange(s, b"SUBSCRIBE ch\r\n") == \
            b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
        assert raw_exchange(s, b"GET x\r\n").startswith(
            b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE")
        assert raw_exchange(s, b"PING\r\n") == \
            b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        server.redis().publish("ch", "hi")
        assert raw_exchange(s, b"") == \
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        assert raw_exchange(s, b"UNSUBSCRIBE\r\n") == \
            b"*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n"
        assert raw_exchange(s, b"GET x\r\n") == b"$-1\r\n"
    with socket.create_connection((server.host, server.port), 10) as s:
        assert raw_exchange(s, b"HELLO 3\r\n").startswith(b"%")
        assert raw_exchange(s, b"SUBSCRIBE ch\r\n") == \
            b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
        assert raw_exchange(s, b"GET x\r\n") == b"_\r\n"  # no subscriber mode
        assert raw_exchange(s, b"PUBLISH ch me\r\n") == \
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nme\r\n:1\r\n"
        assert raw_exchange(s, b"UNSUBSCRIBE nope\r\n") == \
            b">3\r\n$11\r\nunsubscribe\r\n$4\r\nnope\r\n:1\r\n"


def writes_per_second(server, seconds=1.0):
    """INCRs a second, pipelined 100 at a time, on 1,000-byte keys (so that each
    notification is big and a stuck subscriber's output grows fast)."""
    r = server.redis()
    pipe = r.pipeline(transaction=False)
    big = "w" * 1000
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for i in range(99):
            pipe.incr(f"{big}{i}")
        pipe.incr("tick")  # what the well-behaved subscriber follows
        pipe.execute()
        n += 100
    return n / seconds


def test_slow_subscriber_is_cut_off_and_writers_do_not_slow_down(
        tallyd_factory):
    server = tallyd_factory(fsync="no", notify_keyspace_events="KEA",
                            subscriber_output_limit=256 * 1024)
    # A well-behaved subscriber, reading everything, all along.
    good = server.redis().pubsub()
    good.subscribe("__keyspace@0__:tick")
    good.get_message(timeout=5)
    received = []
    stop = threading.Event()

    def read():
        while not stop.is_set():
            m = good.get_message(timeout=0.1)
            if m:
                received.append(m)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        alone = writes_per_second(server)
        n_alone = len(received)
        # Now a subscriber to everything that never reads, with a tiny
        # receive window.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect((server.host, server.port))
        slow.sendall(b"PSUBSCRIBE *\r\n")
        time.sleep(0.1)
        with_slow = writes_per_second(server)
        time.sleep(0.5)
    finally:
        stop.set()
        reader.join()
    text = session(server).get(server.url + "/metrics", timeout=TIMEOUT).text
    assert 'tally_subscribers_cut_off_total{proto="resp"} 1' in text
    assert "closing subscriber" in server.log()
    slow.settimeout(5)
    try:
        while slow.recv(1 << 20):
            pass  # drains what was sent, then the close
    except ConnectionResetError:
        pass
    slow.close()
    # The other subscriber went on getting its messages.
    assert n_alone > 0 and len(received) > n_alone
    ratio = with_slow / alone
    print(f"writes/s with a reading subscriber {alone:.0f}, and a stuck one "
          f"too {with_slow:.0f} (ratio {ratio:.2f})")
    # One round each on a shared 2-core machine swings by 2x (0.35-1.18
    # seen); a writer that waited on the stuck subscriber would stall near
    # 0.  bench/ has the measured figures.
    assert ratio > 0.25, ratio
