# SPDX-License-Identifier: BSD-3-Clause
"""End-to-end tests of exptime on tallyd's memcached port.

memcached's rules (doc/protocol.txt, "Expiration times"): an exptime of 0
never expires, 1 to 2,592,000 seconds (30 days) is relative, anything larger
is an absolute Unix time, and a negative one is already expired.  tally keeps
the expiry durably.  The same sessions go to a real memcached and to tally and
must get the same replies (values are integers; the seconds mg's t flag shows
may differ by one, since memcached's clock ticks once a second); pymemcache
drives the commands it has; a raw socket sends the rest (gat, gats, meta).
"""

import re
import time

import pytest
import redis

from test_memcache import Memcached, client, mc_port, memcached, raw  # noqa: F401

T_FLAG = re.compile(rb" t(-?\d+)")


def ttl_flags(reply):
    """The t values in a reply, in order."""
    return [int(x) for x in T_FLAG.findall(reply)]


def without_ttls(reply):
    return T_FLAG.sub(b" t?", reply)


def same_as_memcached(mc, t, session):
    """Send session to both servers; the replies must be equal but for the
    seconds in t flags, which may differ by up to two: memcached's clock
    ticks once a second (its current_time lags the wall clock by up to 1 s),
    tally rounds the milliseconds left to seconds (up to 1 s more), and the
    two sessions run one after the other.  The rules under test (expired
    or not, -1 for none, clamping) differ by far more than that."""
    want, _ = raw(mc.port, session)
    got, _ = raw(mc_port(t), session)
    assert without_ttls(got) == without_ttls(want), session
    for a, b in zip(ttl_flags(got), ttl_flags(want)):
        assert abs(a - b) <= 2, (session, got, want)
    return got


# Sessions over every exptime rule, each on fresh keys; a far future absolute
# time is built at run time.
def sessions(now):
    future = b"%d" % (now + 1000)
    return [
        # relative, zero, negative; stores replace the expiry
        b"set r 0 100 1\r\n1\r\nmg r t v\r\nset r 0 0 1\r\n2\r\nmg r t v\r\n"
        b"set n 0 -1 1\r\n3\r\nget n\r\nmg n t\r\nmn\r\n",
        # the 30-day boundary: 2592000 is relative, 2592001 a Unix time long
        # past (already expired)
        b"set b 0 2592000 1\r\n1\r\nmg b t\r\nset p 0 2592001 1\r\n1\r\n"
        b"get p\r\nmn\r\n",
        # an absolute time in the future
        b"set f 0 " + future + b" 1\r\n1\r\nmg f t v\r\nmn\r\n",
        # add, replace and cas take an exptime too
        b"add a 0 -1 1\r\n1\r\nget a\r\nadd a 0 100 1\r\n2\r\nmg a t v\r\n"
        b"replace a 0 -1 1\r\n3\r\nget a\r\nmn\r\n",
        # touch: relative, 0 (never), negative (gone), a missing key
        b"set k 0 0 1\r\n1\r\ntouch k 50\r\nmg k t\r\ntouch k 0\r\nmg k t\r\n"
        b"touch k -1\r\nget k\r\ntouch k 10\r\ntouch nope 10\r\nmn\r\n",
        # gat and gats: return the value, then apply the exptime
        b"set g 0 0 2\r\n10\r\nset h 0 0 2\r\n20\r\ngat 40 g h nope\r\n"
        b"mg g t\r\nmg h t\r\ngat 0 g\r\nmg g t\r\ngat -1 h\r\nget h\r\nmn\r\n",
        # memcached keeps the low 32 bits of an exptime, as a signed number
        b"set o 0 4294967296 1\r\n1\r\nmg o t\r\nset o 0 9999999999999 1\r\n"
        b"1\r\nget o\r\nset o 0 -2147483649 1\r\n1\r\nmg o t\r\n"
        b"mg o T4294967296 t\r\ntouch o 2147483648\r\nget o\r\nmn\r\n",
        # the largest exptime, and one that is not a number
        b"set o 0 2147483647 1\r\n1\r\nget o\r\ngat x o\r\ntouch o x\r\n"
        b"set o 0 x 1\r\n1\r\nmn\r\n",
        # incr and decr keep the expiry
        b"set i 0 100 1\r\n5\r\nincr i 3\r\ndecr i 1\r\nmg i t v\r\nmn\r\n",
        # mg T sets it, t shows it where it stands in the request
        b"set m 0 0 1\r\n1\r\nmg m t T30 t v\r\nmg m T0 t\r\nmg m T-1 v\r\n"
        b"get m\r\nmg m T10\r\nmn\r\n",
        # ms T; ms without T leaves no expiry
        b"ms s 1 T60\r\n7\r\nmg s t v\r\nms s 1\r\n8\r\nmg s t v\r\n"
        b"ms s 1 T-1\r\n9\r\nmg s v\r\nmn\r\n",
        # ma N creates with a TTL, T sets one, the change keeps it
        b"ma w N60 J1 v t\r\nma w v t\r\nma w T20 t v\r\nma w T0 t v\r\n"
        b"ma z N0 J3 v t\r\nma y N-1 J1 v\r\nmg y v\r\nmn\r\n",
        # bad TTL tokens
        b"mg m TX\r\nma m Nx\r\nms m 1 T1.5\r\n1\r\nmn\r\n",
    ]


@pytest.mark.own_server
def test_exptime_rules_match_memcached(tallyd_factory, memcached):
    t = tallyd_factory()
    for session in sessions(int(time.time())):
        same_as_memcached(memcached, t, session)


@pytest.mark.own_server
def test_counters_expire_on_time_like_memcached(tallyd_factory, memcached):
    """Relative and absolute exptimes, and touch, expire when memcached's
    do; a counter without one stays."""
    t = tallyd_factory()
    now = int(time.time())
    setup = (b"set rel 0 2 1\r\n1\r\nset abs 0 %d 1\r\n2\r\n"
             b"set keep 0 0 1\r\n3\r\nset tch 0 0 1\r\n4\r\ntouch tch 2\r\n"
             b"gat 2 keep2\r\nset keep2 0 0 1\r\n5\r\ngat 100 keep2\r\n"
             b"get rel abs keep tch keep2\r\n" % (now + 3))
    same_as_memcached(memcached, t, setup)
    time.sleep(4.2)
    after = same_as_memcached(memcached, t, b"get rel abs keep tch keep2\r\n")
    assert after == (b"VALUE keep 0 1\r\n3\r\nVALUE keep2 0 1\r\n5\r\nEND\r\n")


def test_pymemcache_expire_and_touch(tallyd, key):
    c = client(tallyd)
    k, n = key("p"), key("n")
    assert c.set(k, 5, expire=100) is True
    assert c.set(n, 6, expire=-1) is True
    assert c.get(n) is None
    assert c.add(n, 7, expire=100) is True
    assert c.incr(k, 2) == 7
    r = tallyd.redis()
    assert 98 <= r.ttl(k) <= 100             # the same counter over RESP
    assert c.touch(k, 0) is True
    assert r.ttl(k) == -1
    assert c.touch(k, 1000) is True
    assert 998 <= r.ttl(k) <= 1000
    assert c.replace(k, 1) is True           # a store without exptime clears
    assert r.ttl(k) == -1
    assert c.touch(key("missing"), 10) is False
    r.set(k, 9, ex=50)                       # and the other way round
    out, _ = raw(mc_port(tallyd), b"mg %s t v\r\n" % k.encode())
    assert out in (b"VA 1 t50\r\n9\r\n", b"VA 1 t49\r\n9\r\n")


def test_cas_takes_an_exptime(tallyd, key):
    """cas with an exptime stores it (the cas unique is tally's own, so
    memcached cannot be compared here)."""
    k = key("c").encode()
    port = mc_port(tallyd)
    out, _ = raw(port, b"set %s 0 0 1\r\n5\r\ngets %s\r\n" % (k, k))
    unique = out.split(b"\r\n")[1].split()[-1]
    out, _ = raw(port, b"cas %s 0 100 1 %s\r\n6\r\nmg %s v t\r\n"
                       b"gets %s\r\n" % (k, unique, k, k))
    assert out.startswith(b"STORED\r\nVA 1 t100\r\n6\r\n"), out
    unique = out.split(b"\r\n")[3].split()[-1]
    out, _ = raw(port, b"cas %s 0 -1 1 %s\r\n7\r\nget %s\r\n"
                 % (k, unique, k))
    assert out == b"STORED\r\nEND\r\n"


def test_incr_past_int64_max_delta_keeps_the_expiry(tallyd, key):
    """A delta above 2^63-1 on a negative counter is applied as a store; it
    must keep the counter's expiry like every incr."""
    k = key("big").encode()
    out, _ = raw(mc_port(tallyd),
                 b"set %s 0 100 20\r\n-9223372036854775808\r\n"
                 b"incr %s 9223372036854775810\r\nmg %s v t\r\n" % (k, k, k))
    assert out == b"STORED\r\n2\r\nVA 1 t100\r\n2\r\n"


def test_stats_count_expired_counters(tallyd, key):
    c = client(tallyd)
    before = c.stats()
    for i in range(5):
        c.set(key("s%d" % i), i, expire=1)
    c.set(key("stay"), 1, expire=1000)
    mid = c.stats()
    assert mid[b"curr_items"] - before[b"curr_items"] == 6
    assert mid[b"tally_expires"] - before[b"tally_expires"] == 6
    time.sleep(1.3)
    after = c.stats()
    assert after[b"curr_items"] - before[b"curr_items"] == 1
    assert after[b"tally_expires"] - before[b"tally_expires"] == 1
    assert after[b"reclaimed"] - before[b"reclaimed"] == 5
    assert after[b"evictions"] == 0


@pytest.mark.own_server
@pytest.mark.parametrize("crash", [False, True], ids=["restart", "sigkill"])
def test_meta_fixed_window_survives_restart(tallyd_factory, crash):
    """ma N creates the window's counter with its TTL in one change; the
    count and the time left survive a restart, and the counter is gone once
    the window ends."""
    t = tallyd_factory()
    port = mc_port(t)
    out, _ = raw(port, b"ma win N3 J1 v t\r\nma win v t\r\nma win v t\r\n"
                       b"ma long N1000 J1 v\r\n")
    assert ttl_flags(out) == [3, 3, 3], out
    assert out.startswith(b"VA 1 t3\r\n1\r\nVA 1 t3\r\n2\r\nVA 1 t3\r\n3\r\n")
    t.restart(crash=crash)
    out, _ = raw(port, b"mg win v t\r\nmg long v t\r\n")
    left = ttl_flags(out)
    assert out.startswith(b"VA 1 t") and b"\r\n3\r\n" in out, out
    assert 1 <= left[0] <= 3 and 990 <= left[1] <= 1000
    time.sleep(3.2)
    out, _ = raw(port, b"mg win v\r\nmg long v\r\n")
    assert out == b"EN\r\nVA 1\r\n1\r\n"
