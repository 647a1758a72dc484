# SPDX-License-Identifier: BSD-3-Clause
"""'expired' events on the Redis store: Redis expires counters itself, and
tallyd learns of it from Redis's keyspace notifications on a second
connection (src/store/redis_notify.c, docs/redis-store.md "Expired
events").  It switches them on at connect when CONFIG SET is allowed, says
so in INFO # Store, says "off" (and logs why) when it is not, and
subscribes again after its connection is cut.  Each test starts its own
redis-server (test_redis_store.py's RedisServer).
"""
import time

import pytest

from test_dashboard_browser import wait
from test_redis_store import AOF_ALWAYS, over, redis_factory  # noqa: F401

pytestmark = pytest.mark.own_server


def store_fact(t, name):
    return t.redis().info("store").get(name)


def expired_keys(t):
    return t.redis().info("stats")["expired_keys"]


def test_expired_events_are_switched_on_at_connect_and_reach_subscribers(
        tallyd_factory, redis_factory):
    # Given a Redis with keyspace notifications off (its default)
    rs = redis_factory(*AOF_ALWAYS)
    direct = rs.client()
    assert direct.config_get("notify-keyspace-events")[
        "notify-keyspace-events"] == ""
    # When tallyd (with its own notifications of expiries on) connects
    t = over(tallyd_factory, rs, notify_keyspace_events="Ex")
    # Then it has switched on keyevent notifications of expiries
    wait(lambda: store_fact(t, "store_expired_events") == "on", what="on")
    flags = direct.config_get("notify-keyspace-events")[
        "notify-keyspace-events"]
    assert "E" in flags and "x" in flags, flags
    # and a counter Redis expires is an "expired" event at tallyd's
    # subscribers and in its statistics
    sub = t.redis().pubsub()
    sub.subscribe("__keyevent@0__:expired")
    assert sub.get_message(timeout=5)["type"] == "subscribe"
    r = t.redis()
    r.set("soon", 1, px=100)
    r.set("stays", 1)
    msg = wait(lambda: sub.get_message(timeout=0.2), what="the event")
    assert msg["data"] == "soon", msg
    assert expired_keys(t) == 1
    # Keys that are not tally's counters (another program's, an id record)
    # are not reported
    direct.set("other", 1, px=50)
    assert r.execute_command("INCRBY.ONCE", "stays", 1, "id-1") == 2
    direct.pexpire("tally:{stays}:id:id-1", 50)
    time.sleep(0.5)
    assert expired_keys(t) == 1
    assert int(store_fact(t, "store_expired_seen")) == 1
    sub.close()


def test_refused_config_set_is_reported_off_and_logged(tallyd_factory,
                                                       redis_factory):
    # Given a Redis user that may do everything but CONFIG SET
    rs = redis_factory(*AOF_ALWAYS, "--user", "tally", "on", ">s3cret", "~*",
                       "&*", "+@all", "-config|set")
    uri = f"redis://tally:s3cret@127.0.0.1:{rs.port}"
    # When tallyd connects as that user
    t = over(tallyd_factory, rs, store=uri)
    # Then INFO says the events are off, and why, and the log says it too
    state = wait(lambda: (store_fact(t, "store_expired_events") or "")
                 .startswith("off") and
                 store_fact(t, "store_expired_events"), what="off")
    assert "CONFIG SET" in state, state
    wait(lambda: "expired events" in t.run_log(), what="the log line")
    assert "refused" in t.run_log()
    # and counters still work
    assert t.redis().incr("k") == 1


def test_subscribes_again_after_its_connection_is_cut(tallyd_factory,
                                                      redis_factory):
    # Given a tallyd whose notification connection is up
    rs = redis_factory(*AOF_ALWAYS)
    direct = rs.client()
    t = over(tallyd_factory, rs)
    wait(lambda: store_fact(t, "store_expired_events") == "on", what="on")
    # When Redis cuts it (an operator's CLIENT KILL, a restart of a proxy)
    assert direct.client_kill_filter(_type="pubsub") >= 1
    # Then tallyd subscribes again, and later expiries are reported
    wait(lambda: direct.pubsub_numsub("__keyevent@0__:expired")[0][1] == 1,
         what="the new subscription")
    t.redis().set("later", 1, px=50)
    wait(lambda: expired_keys(t) == 1, what="the expiry after the reconnect")


def test_info_counts_every_expiry_published_before_it(tallyd_factory,
                                                      redis_factory):
    # Given counters whose time has just passed, that nobody read since
    # (Redis's active expiry may not have reached them yet)
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    wait(lambda: store_fact(t, "store_expired_events") == "on", what="on")
    r = t.redis()
    for rnd in range(5):
        p = r.pipeline(transaction=False)
        for i in range(5):
            p.set(f"gone:{rnd}:{i}", i, px=300)
        p.execute()
        time.sleep(0.31)
        # When INFO is asked once, without waiting for anything
        info = r.info()
        # Then its count found them gone (its SCAN expires what it meets),
        # and every one of those expiries was reported before it answered
        assert info.get("db0", {}).get("keys", 0) == 0
        assert info["expired_keys"] == 5 * (rnd + 1), rnd
