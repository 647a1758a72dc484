# SPDX-License-Identifier: BSD-3-Clause
"""End-to-end tests of expiry in `tally`, the command-line client.

`tally set ... --ttl` and `tally incr ... --ttl` give counters an expiry over
RESP; `tally dump` writes it as "expires_at" (Unix ms) and `tally restore`
brings it back; `tally check` counts the counters that have expired but are
still in the files.  docs/cli.md describes them.
"""

import json
import time

import pytest

from test_cli import ERROR, OK, dump, err, out, run


def test_set_with_ttl_and_without(tallyd, key):
    r = tallyd.redis()
    k = key()
    p = run("set", k, "5", "--ttl", "60", server=tallyd)
    assert (p.returncode, out(p)) == (OK, "OK\n"), err(p)
    assert 59 <= r.ttl(k) <= 60 and r.get(k) == "5"
    assert run("set", k, "6", "--ttl=1500ms", server=tallyd).returncode == OK
    assert 0 < r.pttl(k) <= 1500
    assert run("set", k, "7", "--ttl", "2m", server=tallyd).returncode == OK
    assert 119 <= r.ttl(k) <= 120
    assert run("set", k, "8", server=tallyd).returncode == OK
    assert r.ttl(k) == -1 and r.get(k) == "8"       # a plain set clears it


@pytest.mark.parametrize("ttl", ["0", "-5", "5x", "", "1.5", "ms",
                                 "99999999999999999999"])
def test_a_bad_ttl_is_a_usage_error_and_sends_nothing(tallyd, key, ttl):
    for args in (["set", key(), "1", "--ttl", ttl], ["incr", key(), "--ttl", ttl],
                 ["set", key(), "1", "--ttl=" + ttl]):
        p = run(*args, server=tallyd)
        assert p.returncode == ERROR, args
        assert "--ttl" in err(p), err(p)
    assert tallyd.redis().exists(key()) == 0


def test_incr_with_ttl_opens_a_fixed_window(tallyd, key):
    r = tallyd.redis()
    k = key()
    p = run("incr", k, "--ttl", "60", server=tallyd)
    assert (p.returncode, out(p)) == (OK, "1\n"), err(p)
    at = r.pexpiretime(k)
    assert 59000 <= at - time.time() * 1000 <= 60000
    time.sleep(0.05)
    p = run("--json", "incr", k, "4", "--ttl", "60", server=tallyd)
    assert json.loads(out(p)) == {"key": k, "value": 5}
    assert r.pexpiretime(k) == at                    # the window stays put
    assert run("decr", k, "--ttl=1h", server=tallyd).returncode == OK
    assert r.get(k) == "4" and r.pexpiretime(k) == at
    # A counter without an expiry gets one; plain incr keeps it.
    r.set(key("plain"), 1)
    assert out(run("incr", key("plain"), "--ttl", "10", server=tallyd)) == "2\n"
    assert 9 <= r.ttl(key("plain")) <= 10
    assert out(run("incr", key("plain"), server=tallyd)) == "3\n"
    assert 9 <= r.ttl(key("plain")) <= 10


def test_a_key_spelled_ttl_is_still_a_key(tallyd, key):
    """--ttl counts only after the key: `tally incr --ttl 5` adds 5 to the
    counter named "--ttl"."""
    r = tallyd.redis()
    r.delete("--ttl")
    p = run("incr", "--ttl", "5", server=tallyd)
    assert (p.returncode, out(p)) == (OK, "5\n"), err(p)
    assert r.get("--ttl") == "5" and r.ttl("--ttl") == -1
    r.delete("--ttl")


@pytest.mark.engine_files("the offline tools on a data directory")
@pytest.mark.own_server
def test_dump_restore_carry_expiry_and_check_counts_expired(tallyd_factory,
                                                           tmp_path):
    d = tallyd_factory()
    r = d.redis()
    r.set("plain", 1)
    r.set("later", 2, ex=1000)
    r.set("soon", 3, px=800)
    at = r.pexpiretime("later")
    d.stop()
    time.sleep(1.0)
    p = run("check", "--dir", d.dir)
    assert p.returncode == OK, err(p)
    assert "1 expired counters not yet purged" in out(p), out(p)
    assert "ok: 2 counters" in out(p), out(p)

    first = dump(d.dir)
    assert [json.loads(line) for line in first.splitlines()] == [
        {"key": "later", "value": 2, "expires_at": at},
        {"key": "plain", "value": 1},
    ]
    # Opening (dump) drops it from memory but writes nothing: it stays in
    # the files, and counted, until a snapshot leaves it out.
    assert "1 expired counters not yet purged" in out(run("check", "--dir",
                                                          d.dir))

    new = tmp_path / "restored"
    gone = b'{"key": "past", "value": 9, "expires_at": 1000}\n'
    p = run("restore", "--dir", new, input=first + gone)
    assert p.returncode == OK, err(p)
    assert out(p) == (f"restored 2 counters into {new} (1 more had expired "
                      "and were skipped)\n")
    assert dump(new) == first
    e = tallyd_factory(dir=new)
    r = e.redis()
    assert r.pexpiretime("later") == at and r.ttl("plain") == -1
    assert r.get("past") is None


@pytest.mark.engine_files("the offline tools on a data directory")
@pytest.mark.own_server
@pytest.mark.parametrize("bad", [
    b'{"key": "a", "value": 1, "expires_at": 0}\n',
    b'{"key": "a", "value": 1, "expires_at": -5}\n',
    b'{"key": "a", "value": 1, "expires_at": "2030-01-01T00:00:00Z"}\n',
    b'{"key": "a", "value": 1, "expires_at": 1.5}\n',
    b'{"key": "a", "value": 1, "expires_at": 281474976710656}\n',
    b'{"key": "a", "value": 1, "expires_at": 5, "x": 1}\n',
])
def test_restore_rejects_a_bad_expiry_and_writes_nothing(tmp_path, bad):
    new = tmp_path / "r"
    p = run("restore", "--dir", new, input=b'{"key": "ok", "value": 1}\n' + bad)
    assert p.returncode == ERROR
    assert "nothing written" in err(p) and "line 2 " in err(p), err(p)
    assert not new.exists() or not any(new.iterdir())
