# SPDX-License-Identifier: BSD-3-Clause
"""SHUTDOWN while another client's script is past busy-reply-threshold.

Redis 7 lets SHUTDOWN through its -BUSY filter (allow_busy) and then takes
only SHUTDOWN NOSAVE: it exits at once, the script's client loses its
connection without a reply, and the script's writes are never propagated.
Plain SHUTDOWN, SHUTDOWN SAVE (NOW, FORCE) and SAVE get -BUSY, a malformed
SHUTDOWN its syntax error, SHUTDOWN ABORT "No shutdown in progress"; all
that whether the script has written or not.  Each reply is compared with a
real redis-server started here; tally must also keep every acknowledged
change and none of the script's (its batch was never committed).
"""

import shutil
import subprocess

import pytest

from conftest import Closed, RawResp, RespError, start_redis_server
from test_resp_script import start_script, wait_busy

SCRIPTS = {"read-only": "while true do end",
           "wrote": "redis.call('INCR', ARGV[1]) while true do end"}

# Refused while busy, in this order, then SHUTDOWN NOSAVE ends the server.
REFUSED = [("SHUTDOWN",), ("SHUTDOWN", "SAVE"), ("SHUTDOWN", "NOW"),
           ("SHUTDOWN", "FORCE"), ("shutdown", "save", "now"), ("SAVE",),
           ("SHUTDOWN", "ABORT"), ("SHUTDOWN", "NOSAVE", "SAVE"),
           ("SHUTDOWN", "BOGUS")]


class Redis7:
    """A redis-server without persistence whose scripts are busy after
    300 ms, as the tallyd of these tests."""

    def __init__(self, tmp):
        tmp.mkdir()
        self.proc, self.port = start_redis_server(
            tmp, "--busy-reply-threshold", "300")

    def raw(self, timeout=10):
        return RawResp("127.0.0.1", self.port, timeout)

    def exited(self, timeout=10):
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def redis7(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    made = []

    def make():
        made.append(Redis7(tmp_path / f"redis{len(made)}"))
        return made[-1]
    yield make
    for r in made:
        r.kill()


def shutdown_story(server, script, key):
    """Given a busy script, the replies to REFUSED, then what SHUTDOWN
    NOSAVE did: (replies, its reply or None if the connection closed, the
    script's client's outcome)."""
    t, box = start_script(server, script, key)
    busy = wait_busy(server)
    replies = [busy]
    with server.raw() as c:
        for cmd in REFUSED:
            replies.append(c.cmd(*cmd))
        replies.append(c.cmd("PING"))
        try:
            final = c.cmd("SHUTDOWN", "NOSAVE")
        except (Closed, OSError):
            final = None
    t.join(15)
    assert not t.is_alive(), "the script's client never heard back"
    outcome = "closed" if isinstance(box[0], (Closed, OSError)) else box[0]
    return replies, final, outcome


@pytest.mark.own_server
@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_shutdown_during_a_busy_script_is_what_redis_does(
        tallyd_factory, redis7, kind):
    # Given a tallyd with an acknowledged change, and a redis-server
    tally = tallyd_factory(busy_reply_threshold=300)
    tally.redis().set("acked", 41)
    ref = redis7()
    # When a script runs past the threshold and others ask for a shutdown
    want = shutdown_story(ref, SCRIPTS[kind], "w")
    got = shutdown_story(tally, SCRIPTS[kind], "w")
    # Then tally answers every request as Redis does: -BUSY for all but
    # SHUTDOWN NOSAVE (a syntax error or ABORT's error first), and NOSAVE
    # ends the server, closing the script's client without a reply
    assert got == want
    assert want[0][0] == RespError("BUSY Redis is busy running a script. "
                                   "You can only call SCRIPT KILL or "
                                   "SHUTDOWN NOSAVE.")
    assert want[1] is None and want[2] == "closed"
    assert ref.exited()
    assert tally.wait_exit() == 0
    # And after a restart the acknowledged change is there, the script's
    # write is not (its batch was never committed: nothing half-applied)
    tally.start()
    r = tally.redis()
    assert r.get("acked") == "41"
    assert r.get("w") is None


@pytest.mark.own_server
def test_shutdown_nosave_without_a_busy_script_keeps_everything(
        tallyd_factory):
    tally = tallyd_factory(busy_reply_threshold=300)
    r = tally.redis()
    r.set("a", 1)
    assert r.eval("return redis.call('INCR', KEYS[1])", 1, "a") == 2
    with tally.raw() as c:
        with pytest.raises(Closed):
            c.cmd("SHUTDOWN", "NOSAVE")
    assert tally.wait_exit() == 0
    tally.start()
    assert tally.redis().get("a") == "2"


@pytest.mark.own_server
def test_shutdown_refused_during_a_busy_script_leaves_it_running(
        tallyd_factory, key):
    # A refused SHUTDOWN changes nothing: SCRIPT KILL still ends a script
    # that has not written, and the server goes on serving.
    tally = tallyd_factory(busy_reply_threshold=300)
    t, box = start_script(tally, "while true do end")
    wait_busy(tally)
    with tally.raw() as c:
        assert isinstance(c.cmd("SHUTDOWN"), RespError)
        assert c.cmd("SCRIPT", "KILL") == b"OK"
    t.join(10)
    assert "Script killed by user with SCRIPT KILL" in box[0].text
    assert tally.redis().incr(key("after")) == 1
    assert tally.running()
