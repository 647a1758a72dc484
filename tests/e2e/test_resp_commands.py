# SPDX-License-Identifier: BSD-3-Clause
"""Every Redis command tallyd answers, driven by real clients (redis-py,
redis-cli) and, where the exact bytes matter, by RawResp: pipelining,
multi-key commands, SET's options, connection commands, HELLO 3 / RESP3,
INFO and CONFIG GET."""

import subprocess

import pytest
import redis

from conftest import RawResp, RespError


# ---- INCR and friends, pipelined ---------------------------------------------

def test_incr_family_counts_from_zero(tallyd, key):
    # Given a counter that does not exist
    r, k = tallyd.redis(), key()
    # When it is incremented and decremented
    # Then it counts from 0, and GET shows the decimal value
    assert r.incr(k) == 1
    assert r.incrby(k, 41) == 42
    assert r.decr(k) == 41
    assert r.decrby(k, 50) == -9
    assert r.incrby(k, -1) == -10
    assert r.get(k) == "-10"


def test_thousands_of_pipelined_incrs_reply_in_order(tallyd, key):
    # Given one pipeline of 5000 INCRs on one counter
    r, k = tallyd.redis(), key()
    p = r.pipeline(transaction=False)
    for _ in range(5000):
        p.incr(k)
    # When it runs
    # Then the replies are 1..5000 in order and the counter reads 5000
    assert p.execute() == list(range(1, 5001))
    assert r.get(k) == "5000"


def test_raw_pipeline_over_many_counters_replies_in_order(tallyd, key):
    # Given 20000 INCRBYs over 7 counters written in one burst of bytes
    names = [key(f"c{i}") for i in range(7)]
    reqs, expected, totals = [], [], dict.fromkeys(names, 0)
    for i in range(20000):
        k, by = names[i % 7], i % 5 - 2
        reqs.append(RawResp.encode("INCRBY", k, by))
        totals[k] += by
        expected.append(totals[k])
    with tallyd.raw(timeout=30) as c:
        # When they are sent at once
        c.send(b"".join(reqs))
        # Then every reply arrives, in order, with the right running total
        got = [c.read() for _ in expected]
    assert got == expected
    assert tallyd.redis().mget(names) == [str(totals[k]) for k in names]


# ---- multi-key commands -------------------------------------------------------

def test_mset_mget(tallyd, key):
    r = tallyd.redis()
    a, b, missing = key("a"), key("b"), key("missing")
    assert r.mset({a: 1, b: -2}) is True
    assert r.mget(a, missing, b, a) == ["1", None, "-2", "1"]


def test_mset_with_odd_arguments_changes_nothing(tallyd, key):
    a, b = key("a"), key("b")
    with tallyd.raw() as c:
        err = c.cmd("MSET", a, 1, b)
        assert err == RespError("ERR wrong number of arguments for 'mset' command")
        assert c.cmd("EXISTS", a, b) == 0


def test_mset_with_one_bad_value_changes_nothing(tallyd, key):
    # MSET is atomic: a non-integer anywhere refuses the whole command.
    a, b = key("a"), key("b")
    with tallyd.raw() as c:
        err = c.cmd("MSET", a, 1, b, "x")
        assert isinstance(err, RespError) and err.text.startswith(
            "ERR value is not an integer or out of range"), err
        assert c.cmd("EXISTS", a, b) == 0


def test_exists_del_getdel_getset(tallyd, key):
    r = tallyd.redis()
    a, b, missing = key("a"), key("b"), key("missing")
    # (SET one by one: on a Redis Cluster an MSET over two slots is refused)
    r.set(a, 5)
    r.set(b, 6)
    # EXISTS counts repeats again, like Redis
    assert r.exists(a, a, missing, b) == 3
    # GETSET answers the old value and stores the new one
    assert r.getset(a, 7) == "5"
    assert r.getset(missing, 1) is None
    assert r.get(a) == "7"
    # GETDEL answers the value and removes it
    assert r.getdel(a) == "7"
    assert r.getdel(a) is None
    # DEL counts what existed
    assert r.delete(a, b, missing, key("never")) == 2
    assert r.exists(a, b, missing) == 0


def test_set_nx_xx_get(tallyd, key):
    r, k = tallyd.redis(), key()
    assert r.set(k, 1, xx=True) is None      # XX on a missing counter: not set
    assert r.get(k) is None
    assert r.set(k, 1, nx=True) is True      # NX on a missing counter: set
    assert r.set(k, 2, nx=True) is None      # NX on an existing one: not set
    assert r.get(k) == "1"
    assert r.set(k, 3, xx=True) is True
    assert r.set(k, 4, get=True) == "3"      # GET answers the old value
    assert r.set(key("new"), 4, get=True) is None
    assert r.get(k) == "4"
    with tallyd.raw() as c:
        assert c.cmd("SET", k, 5, "NX", "GET") == b"4"   # not set, old value
        assert c.cmd("GET", k) == b"4"
        assert c.cmd("SET", k, 5, "NX", "XX") == RespError("ERR syntax error")


def test_set_with_expiry_sets_the_ttl(tallyd, key):
    # Counters expire now (issue 9; tests/e2e/test_resp_expire.py has the rest).
    with tallyd.raw() as c:
        assert c.cmd("SET", key(), 1, "EX", 10) == b"OK"
        assert c.cmd("TTL", key()) == 10


@pytest.mark.own_server
def test_dbsize_and_keys(tallyd):
    r = tallyd.redis()
    assert r.dbsize() == 0
    for k, v in {"user:1": 1, "user:2": 2, "page:1": 3}.items():
        r.set(k, v)
    assert r.dbsize() == 3
    assert sorted(r.keys("user:*")) == ["user:1", "user:2"]
    assert sorted(r.keys()) == ["page:1", "user:1", "user:2"]
    assert r.keys("nothing*") == []
    r.delete("user:1")
    assert r.dbsize() == 2


def test_keys_match_a_prefix(tallyd, key):
    r = tallyd.redis()
    names = [key(f"item:{i}") for i in range(12)]
    for k in names:
        r.set(k, 1)
    assert sorted(r.keys(key("item:1*"))) == sorted(
        [key("item:1"), key("item:10"), key("item:11")])
    assert sorted(r.keys(key("item:?"))) == sorted(names[:10])


def test_binary_keys_round_trip(tallyd, key):
    # Keys are binary-safe: NUL, CR LF, bytes that are not UTF-8.
    k = key().encode() + b"\x00\r\n\xff\xfe end"
    with tallyd.raw() as c:
        assert c.cmd("INCRBY", k, 9) == 9
        assert c.cmd("GET", k) == b"9"
        assert c.cmd("KEYS", key().encode() + b"*") == [k]
        assert c.cmd("DEL", k) == 1


# ---- connection commands ------------------------------------------------------

def test_ping_echo_select_quit(tallyd):
    with tallyd.raw() as c:
        assert c.cmd("PING") == b"PONG"
        assert c.cmd("PING", "hi") == b"hi"
        assert c.cmd("ECHO", "a b") == b"a b"
        assert c.cmd("SELECT", 0) == b"OK"
        assert c.cmd("SELECT", 1) == RespError("ERR DB index is out of range")
        assert c.cmd("QUIT") == b"OK"
        assert c.is_closed(), "QUIT did not close the connection"


def test_client_setname_getname_id(tallyd):
    r = tallyd.redis(single_connection_client=True)
    assert r.client_getname() is None
    assert r.client_setname("worker-7") is True
    assert r.client_getname() == "worker-7"
    first = r.client_id()
    assert isinstance(first, int) and first > 0
    other = tallyd.redis(single_connection_client=True).client_id()
    assert other != first, "two connections share a CLIENT ID"


def test_hello_3_switches_to_resp3(tallyd, key):
    with tallyd.raw() as c:
        # Given a connection that said HELLO 3
        hello = c.cmd("HELLO", 3)
        assert isinstance(hello, dict), hello
        assert hello[b"proto"] == 3
        assert b"server" in hello and b"version" in hello
        assert isinstance(hello[b"id"], int)
        # Then a missing counter is RESP3's null, and CONFIG GET is a map
        c.send(c.encode("GET", key("missing")))
        assert c.sock.recv(64) == b"_\r\n"
        assert c.cmd("INCR", key()) == 1
        conf = c.cmd("CONFIG", "GET", "appendonly")
        assert isinstance(conf, dict) and b"appendonly" in conf, conf
        # And HELLO 2 goes back to RESP2
        assert isinstance(c.cmd("HELLO", 2), list)
        c.send(c.encode("GET", key("missing")))
        assert c.sock.recv(64) == b"$-1\r\n"


def test_hello_with_unknown_protocol_is_refused(tallyd):
    with tallyd.raw() as c:
        reply = c.cmd("HELLO", 4)
        assert isinstance(reply, RespError) and reply.text.startswith(
            "NOPROTO"), reply
        assert c.cmd("PING") == b"PONG"


@pytest.mark.skipif(int(redis.__version__.split(".")[0]) < 5,
                    reason=f"redis-py {redis.__version__} has no protocol=3")
def test_redis_py_speaks_resp3(tallyd, key):
    r = tallyd.redis(protocol=3)
    k = key()
    assert r.incr(k) == 1
    assert r.get(key("missing")) is None
    assert r.mget(k, key("missing")) == ["1", None]


def test_info_sections(tallyd, key):
    r = tallyd.redis()
    r.incr(key())
    server = r.info("server")
    assert "redis_version" in server, server
    assert "tally_version" in server, server
    assert int(r.info("clients")["connected_clients"]) >= 1
    persistence = r.info("persistence")
    assert "aof_enabled" in persistence, persistence
    assert int(r.info("stats")["total_commands_processed"]) >= 1
    everything = r.info()
    for field in ("redis_version", "connected_clients", "aof_enabled"):
        assert field in everything, field


@pytest.mark.own_server
def test_info_keyspace_counts_counters(tallyd):
    r = tallyd.redis()
    r.mset({"a": 1, "b": 2})
    assert r.info("keyspace")["db0"]["keys"] == 2


def test_config_get_save_and_appendonly(tallyd):
    # redis-benchmark and other tools ask these before they start.
    r = tallyd.redis()
    assert "save" in r.config_get("save")
    assert "appendonly" in r.config_get("appendonly")
    assert r.config_get("no-such-parameter") == {}
    with tallyd.raw() as c:
        flat = c.cmd("CONFIG", "GET", "save")
        assert isinstance(flat, list) and flat[0] == b"save" and len(flat) == 2


@pytest.mark.engine_files("the engine's snapshots (SAVE, BGSAVE)")
def test_save_and_bgsave_answer_like_redis(tallyd, key):
    r = tallyd.redis()
    r.incr(key())
    assert r.save() is True
    with tallyd.raw() as c:
        reply = c.cmd("BGSAVE")
        # A snapshot may still be running from SAVE's trigger; both are fine.
        assert reply == b"Background saving started" or (
            isinstance(reply, RespError) and "progress" in reply.text), reply


def test_redis_cli_works(tallyd, key):
    k = key()
    argv = ["redis-cli", "-h", tallyd.host, "-p", str(tallyd.port)]
    if tallyd.password:
        argv += ["--no-auth-warning", "-a", tallyd.password]
    for expected in ("1", "2"):
        out = subprocess.run(argv + ["INCR", k], capture_output=True,
                             text=True, timeout=10)
        assert out.returncode == 0 and out.stdout.strip() == expected, out
    out = subprocess.run(argv + ["GET", k], capture_output=True, text=True,
                         timeout=10)
    assert out.stdout.strip() == "2", out
