# SPDX-License-Identifier: BSD-3-Clause
"""CLIENT LIST, CLIENT KILL, CLIENT ID/INFO/SETNAME/GETNAME (issue 10):
the connection registry of tallyd as redis-py sees it, and the shape of the
lines beside a real redis-server's.
"""

import socket
import time

import pytest
import redis

# The fields tally shows, in Redis's order (docs/resp.md "CLIENT LIST").
FIELDS = ["id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db",
          "sub", "psub", "ssub", "multi", "qbuf", "qbuf-free", "argv-mem",
          "obl", "oll", "omem", "tot-mem", "events", "cmd", "user", "redir",
          "resp", "lib-name", "lib-ver"]
# Redis 7.2 added these; an older redis-server lacks them.
NEWER = {"lib-name", "lib-ver"}


def line_keys(line):
    return [kv.split("=", 1)[0] for kv in line.split(" ")]


def by_name(r, name):
    return [c for c in r.client_list() if c["name"] == name]


def test_client_list_shows_every_connection(tallyd):
    a = tallyd.redis()
    b = tallyd.redis()
    a.client_setname("alpha")
    b.client_setname("beta")
    b.incr("k")
    listed = a.client_list()
    names = {c["name"]: c for c in listed}
    assert {"alpha", "beta"} <= set(names)
    assert names["beta"]["cmd"] == "incrby"  # redis-py sends INCRBY k 1
    assert names["alpha"]["cmd"] == "client|list"
    assert names["alpha"]["id"] == str(a.client_id())
    assert names["beta"]["db"] == "0" and names["beta"]["flags"] == "N"
    assert names["beta"]["laddr"] == f"127.0.0.1:{tallyd.port}"
    # Oldest first, as Redis lists them.
    ids = [int(c["id"]) for c in listed]
    assert ids == sorted(ids)


def test_client_list_by_id_and_type(tallyd):
    a = tallyd.redis()
    b = tallyd.redis()
    ib = b.client_id()
    only = a.client_list(client_id=[str(ib)])
    assert [int(c["id"]) for c in only] == [ib]
    assert a.client_list(_type="pubsub") == []
    assert len(a.client_list(_type="normal")) >= 2
    with pytest.raises(redis.ResponseError, match="Unknown client type"):
        a.execute_command("CLIENT", "LIST", "TYPE", "bogus")
    with pytest.raises(redis.ResponseError, match="Invalid client ID"):
        a.execute_command("CLIENT", "LIST", "ID", "x")


def test_client_list_multi_flag(tallyd):
    with tallyd.raw() as t:
        t.cmd("CLIENT", "SETNAME", "tx")
        t.cmd("MULTI")
        t.cmd("INCR", "a")
        t.cmd("INCR", "b")
        (tx,) = by_name(tallyd.redis(), "tx")
        assert tx["flags"] == "x" and tx["multi"] == "2"


def test_client_id_setname_getname(tallyd):
    r = tallyd.redis()
    assert r.client_getname() is None
    assert r.client_setname("worker-1") is True
    assert r.client_getname() == "worker-1"
    info = r.client_info()
    assert info["name"] == "worker-1" and int(info["id"]) == r.client_id()
    with pytest.raises(redis.ResponseError, match="cannot contain spaces"):
        r.client_setname("has space")


def wait_closed(sock, timeout=5):
    """Read (and drop) what is left until the server closes: True, or
    False if it does not within timeout."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_client_kill_by_id_closes_the_other(tallyd):
    r = tallyd.redis()
    with tallyd.raw() as victim:
        victim.cmd("CLIENT", "SETNAME", "victim")
        vid = victim.cmd("CLIENT", "ID")
        assert r.client_kill_filter(_id=vid) == 1
        assert wait_closed(victim.sock)
    assert by_name(r, "victim") == []
    assert r.client_kill_filter(_id=vid) == 0


def test_client_kill_old_form_by_addr(tallyd):
    r = tallyd.redis()
    s = socket.create_connection((tallyd.host, tallyd.port))
    addr = "%s:%d" % s.getsockname()[:2]
    for _ in range(50):
        if any(c["addr"] == addr for c in r.client_list()):
            break
        time.sleep(0.02)
    assert r.client_kill(addr) is True
    assert wait_closed(s)
    s.close()
    with pytest.raises(redis.ResponseError, match="No such client"):
        r.client_kill(addr)


def test_client_kill_filter_addr_laddr_skipme(tallyd):
    r = tallyd.redis()
    others = [tallyd.redis() for _ in range(2)]
    for o in others:
        o.ping()
    me = r.client_info()
    n = len(r.client_list())
    # LADDR matches every connection to this port; SKIPME yes (the default)
    # spares the caller.
    assert r.client_kill_filter(laddr=me["laddr"]) == n - 1
    assert [c["id"] for c in r.client_list()] == [str(me["id"])]
    assert r.client_kill_filter(addr="127.0.0.1:1") == 0
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("CLIENT", "KILL", "ID", "1", "SKIPME")
    with pytest.raises(redis.ResponseError, match="greater than 0"):
        r.execute_command("CLIENT", "KILL", "ID", "0")


def test_client_kill_skipme_no_closes_after_reply(tallyd):
    with tallyd.raw() as t:
        cid = t.cmd("CLIENT", "ID")
        assert t.cmd("CLIENT", "KILL", "ID", str(cid), "SKIPME", "no") == 1
        t.sock.settimeout(5)
        assert t.sock.recv(1) == b""


def test_killed_client_with_pending_change_keeps_it(tallyd, key):
    """A killed connection's acknowledged-or-not changes stay applied (and
    durable): it is a lost connection, not a rollback (docs/resp.md)."""
    r = tallyd.redis()
    v = tallyd.redis()
    v.incrby(key("k"), 5)
    assert r.client_kill_filter(_id=v.client_id()) == 1
    tallyd.restart(crash=True)
    assert tallyd.redis().get(key("k")) == "5"


@pytest.mark.own_server
def test_client_list_fields_match_redis(tallyd, real_redis):
    """Every field tally shows is one Redis shows, in Redis's order."""
    ref = real_redis.execute_command("CLIENT", "LIST")
    ref_keys = line_keys(ref.strip().splitlines()[0])
    mine = tallyd.redis().execute_command("CLIENT", "LIST")
    keys = line_keys(mine.strip().splitlines()[0])
    assert keys == FIELDS
    assert set(keys) - NEWER <= set(ref_keys)
    assert [k for k in keys if k in ref_keys] == \
        [k for k in ref_keys if k in keys]
    info = tallyd.redis().execute_command("CLIENT", "INFO")
    assert line_keys(info.strip()) == FIELDS


@pytest.mark.own_server
@pytest.mark.parametrize("cmd", [
    ["CLIENT", "KILL", "127.0.0.1:1"],
    ["CLIENT", "KILL", "ID", "999999"],
    ["CLIENT", "KILL", "ID", "x"],
    ["CLIENT", "KILL", "ID", "0"],
    ["CLIENT", "KILL", "ADDR", "127.0.0.1:1", "SKIPME", "maybe"],
    ["CLIENT", "KILL", "TYPE", "bogus"],
    ["CLIENT", "KILL", "TYPE", "pubsub"],
    ["CLIENT", "KILL", "USER", "nobody"],
    ["CLIENT", "KILL", "ID", "1", "EXTRA"],
    ["CLIENT", "KILL", "BOGUS", "1"],
    ["CLIENT", "LIST", "TYPE", "bogus"],
    ["CLIENT", "LIST", "TYPE", "pubsub"],
    ["CLIENT", "LIST", "ID", "x"],
    ["CLIENT", "LIST", "ID", "999999"],
    ["CLIENT", "LIST", "BOGUS"],
])
def test_client_errors_match_redis(tallyd, real_redis, cmd):
    with real_redis.raw() as ref, tallyd.raw() as t:
        assert t.cmd(*cmd) == ref.cmd(*cmd)


def test_client_list_pubsub_type(tallyd):
    r = tallyd.redis()
    with tallyd.raw() as t:
        t.cmd("CLIENT", "SETNAME", "sub")
        t.cmd("SUBSCRIBE", "ch1", "ch2")
        t.cmd("PSUBSCRIBE", "p*")
        (s,) = by_name(r, "sub")
        assert (s["flags"], s["sub"], s["psub"]) == ("P", "2", "1")
        assert [c["name"] for c in r.client_list(_type="pubsub")] == ["sub"]
        assert "sub" not in [c["name"] for c in r.client_list(_type="normal")]
        assert r.client_kill_filter(_type="pubsub") == 1
        assert wait_closed(t.sock)
