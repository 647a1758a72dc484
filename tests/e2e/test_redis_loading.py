# SPDX-License-Identifier: BSD-3-Clause
"""A Redis that restarts on a large AOF answers -LOADING until it has read
it (src/store/redis.c, docs/redis-store.md "Faults"): nothing ran, so
tallyd sends its handshake again, and a refused command again, with
backoff, and the requests it gets meanwhile wait for the load.  The story,
on one Redis and on a master of a cluster: counters in a Redis whose AOF
also holds 300,000 other keys (DEBUG POPULATE, then BGREWRITEAOF); the
server SIGKILLed and started again with Redis's own key-load-delay test
hook (a 1 us sleep every 20 keys), so that the load takes seconds on any
machine (300,000 keys take about a second here without it); clients
send increments, with and without ids, while it loads: each succeeds once
loading is over, none fails, none counts twice.
"""
import os
import subprocess
import threading
import time

import pytest
import redis
import requests

from test_redis_cluster import Cluster, pytestmark  # noqa: F401
from test_redis_store import AOF_ALWAYS, over, redis_factory  # noqa: F401

BULK = 300000            # keys of someone else's in the AOF
KEY_LOAD_DELAY = -20     # Redis's key-load-delay: a 1 us sleep every 20
                         # keys (negative: 1 in N), so the load takes
                         # seconds on any machine
DEBUG = ("--enable-debug-command", "local")
# How often a loading Redis serves its clients (Redis's default: every 2 MB
# read): more often, so that it is not silent for tallyd's 3 s (a server
# silent that long with commands on the wire is taken for lost) on a
# loaded machine.
EVENTS_EVERY = 100000


def bulk_up(client, tag="bulk"):
    """BULK keys that are no counter (under one hash tag, so that a
    cluster node takes them in one script), then an AOF rewrite, so that
    the server has a large base file to read on its next start."""
    client.execute_command("DEBUG", "POPULATE", BULK, "{%s}" % tag, 8)
    assert client.dbsize() >= BULK
    client.bgrewriteaof()
    Cluster.wait(lambda: not any(
        client.info("persistence")[k] for k in
        ("aof_rewrite_in_progress", "aof_rewrite_scheduled")), 120)


def loading(client):
    try:
        client.ping()
        return False
    except redis.BusyLoadingError:
        return True


def restart_loading(argv, logdir):
    """SIGKILLed before: start it again, slowed per key, and return once
    it is listening and loading."""
    argv = argv + ["--key-load-delay", str(KEY_LOAD_DELAY),
                   "--loading-process-events-interval-bytes",
                   str(EVENTS_EVERY)]
    proc = subprocess.Popen(argv, stdout=open(
        os.path.join(logdir, "redis.log"), "ab"), stderr=subprocess.STDOUT)
    port = int(argv[argv.index("--port") + 1])
    client = redis.Redis(port=port, socket_timeout=10)
    deadline = time.monotonic() + 30
    while True:
        try:
            if loading(client):
                return proc, client
        except redis.ConnectionError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)


def send_while_loading(t, client, plain="plain", counter="once", senders=6,
                       each=5):
    """senders clients each send `each` increments through tallyd, over
    RESP with and without an id and over HTTP with an Idempotency-Key,
    starting while the server loads.  Returns the answers, the errors,
    and how many of them came before the load was over."""
    answers, errors, lock = [], [], threading.Lock()
    go = threading.Barrier(senders + 1)

    def one(n):
        c, s = t.redis(socket_timeout=30), requests.Session()
        go.wait(30)
        for i in range(each):
            try:
                if n % 3 == 0:
                    got = ("plain", None, c.incr(plain))
                elif n % 3 == 1:
                    ident = f"r{n}-{i}"
                    got = ("once", ident, int(c.execute_command(
                        "INCRBY.ONCE", counter, 1, ident)))
                else:
                    ident = f"h{n}-{i}"
                    r = s.post(f"{t.url}/v1/counters/{counter}/increment",
                               json={"by": 1}, timeout=30,
                               headers={"Idempotency-Key": ident})
                    assert r.status_code == 200, r.text
                    got = ("once", ident, r.json()["value"])
                with lock:
                    answers.append(got + (loading(client),))
            except Exception as e:  # surfaced by the caller
                with lock:
                    errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(n,))
               for n in range(senders)]
    for th in threads:
        th.start()
    go.wait(30)
    began = time.monotonic()
    time.sleep(0.3)
    still = loading(client)
    for th in threads:
        th.join(60)
        assert not th.is_alive()
    return answers, errors, still, time.monotonic() - began


def check(t, answers, errors, still, before_once, plain_key="plain",
          counter="once"):
    # Requests were sent while the server loaded, and not answered then
    assert still, "the server was not loading any more"
    assert not errors, errors[:3]
    assert len(answers) == 30
    assert not [a for a in answers if a[3]], "answered while loading"
    # None counts twice: every id's answer is its own, and a retry of each
    # replays it
    plain = [a for a in answers if a[0] == "plain"]
    once = {a[1]: a[2] for a in answers if a[0] == "once"}
    r = t.redis()
    assert int(r.get(plain_key)) == 1 + len(plain)
    assert int(r.get(counter)) == before_once + len(once)
    assert sorted(once.values()) == list(
        range(before_once + 1, before_once + len(once) + 1))
    for ident, v in once.items():
        assert int(r.execute_command("INCRBY.ONCE", counter, 1, ident)) == v
    assert int(r.get(counter)) == before_once + len(once)


def given_a_bulky_redis(tallyd_factory, redis_factory):  # noqa: F811
    """A Redis holding counters "plain" and "once" beside BULK keys, and a
    tallyd on it."""
    rs = redis_factory(*AOF_ALWAYS, *DEBUG)
    t = over(tallyd_factory, rs)
    r = t.redis()
    assert r.incr("plain") == 1
    assert r.execute_command("INCRBY.ONCE", "once", 1, "before") == 1
    bulk_up(rs.client())
    return rs, t


def test_requests_while_redis_loads_its_aof_succeed_once_after_it(
        tallyd_factory, redis_factory):  # noqa: F811
    rs, t = given_a_bulky_redis(tallyd_factory, redis_factory)
    # When the server is SIGKILLed and starts again on its large AOF
    rs.kill()
    argv = ["redis-server", "--port", str(rs.port), "--bind", "127.0.0.1",
            "--dir", str(rs.dir), "--save", "", *rs.conf]
    rs.proc, client = restart_loading(argv, rs.dir)
    # and tallyd has reconnected and been told LOADING
    Cluster.wait(lambda: "LOADING" in t.run_log(), 10)
    ready = requests.get(t.url + "/readyz", timeout=10)
    assert ready.status_code == 503 and "LOADING" in ready.text
    # Then what clients send meanwhile succeeds after the load, once each
    answers, errors, still, took = send_while_loading(t, client)
    check(t, answers, errors, still, 1)
    assert took >= 0.3
    assert "SCRIPT LOAD refused" not in t.run_log()
    assert requests.get(t.url + "/readyz", timeout=10).status_code == 200
    assert t.redis().info("store")["store_unknown_outcomes"] == 0


def given_a_bulky_master(t, cluster):
    """Counters "once" and another one, beside BULK keys, on one master,
    which the other nodes will not fail over while it loads (it has no
    replica anyway): a restart quicker than the node timeout keeps its
    slots.  Returns its port and the other counter's name."""
    port = cluster.master_of(cluster.slot("tally:{once}"))

    def first(fmt):
        return next(fmt % i for i in range(1000) if cluster.master_of(
            cluster.slot("tally:{%s}" % (fmt % i))) == port)
    plain = first("plain%d")
    r = t.redis()
    assert r.incr(plain) == 1
    assert r.execute_command("INCRBY.ONCE", "once", 1, "before") == 1
    bulk_up(redis.Redis(port=port, socket_timeout=60), first("bulk%d"))
    for p in cluster.alive():
        cluster.node(p).config_set("cluster-node-timeout", 60000)
    return port, plain


@pytest.fixture
def masters_debug(tmp_path):
    """Three masters without replicas that take DEBUG POPULATE."""
    c = Cluster(str(tmp_path / "cluster"), replicas=0, extra=DEBUG)
    yield c
    c.stop()


def test_requests_while_a_cluster_master_loads_succeed_once_after_it(
        tallyd_factory, masters_debug):
    cluster = masters_debug
    t = tallyd_factory(store=cluster.uri)
    port, plain = given_a_bulky_master(t, cluster)
    # When that master is SIGKILLed and starts again on its large AOF
    cluster.kill(port)
    d = os.path.join(cluster.dir, str(port))
    cluster.procs[port], client = restart_loading(cluster.argv[port], d)
    # Then what clients send meanwhile succeeds after the load, once each
    answers, errors, still, _ = send_while_loading(t, client, plain)
    check(t, answers, errors, still, 1, plain)
    assert t.redis().info("store")["store_unknown_outcomes"] == 0


def reload_slowly(port):
    """DEBUG RELOAD on the server at port, in a thread: it empties itself
    and loads its RDB again (saved first by BGSAVE, so that it is not
    blocked saving), answering -LOADING on the connections it has
    meanwhile (tallyd's, already set up).  Returns the thread and a client
    of the server, once it is loading."""
    c = redis.Redis(port=port, socket_timeout=120)
    c.bgsave()
    Cluster.wait(lambda: not c.info("persistence")[
        "rdb_bgsave_in_progress"], 120)
    c.config_set("key-load-delay", KEY_LOAD_DELAY)
    c.config_set("loading-process-events-interval-bytes", EVENTS_EVERY)
    done = []
    th = threading.Thread(target=lambda: done.append(
        c.execute_command("DEBUG", "RELOAD", "NOSAVE")))
    th.start()
    probe = redis.Redis(port=port, socket_timeout=30)
    Cluster.wait(lambda: loading(probe), 30)
    return th, done, probe


def test_commands_refused_while_redis_reloads_are_sent_again(
        tallyd_factory, redis_factory):  # noqa: F811
    rs, t = given_a_bulky_redis(tallyd_factory, redis_factory)
    # When the server reloads its data under tallyd's live connection
    th, done, probe = reload_slowly(rs.port)
    # Then what clients send meanwhile is refused with LOADING, sent again
    # with backoff, and succeeds after the load, once each
    answers, errors, still, _ = send_while_loading(t, probe)
    th.join(60)
    assert done == [b"OK"]
    check(t, answers, errors, still, 1)
    assert t.redis().info("store")["store_unknown_outcomes"] == 0
    assert t.redis().info("store")["store_reconnects"] == 0


def test_commands_refused_while_a_cluster_master_reloads_are_retried(
        tallyd_factory, masters_debug):
    cluster = masters_debug
    t = tallyd_factory(store=cluster.uri)
    port, plain = given_a_bulky_master(t, cluster)
    # When it reloads its data under tallyd's live connection to it
    th, done, probe = reload_slowly(port)
    answers, errors, still, _ = send_while_loading(t, probe, plain)
    th.join(60)
    assert done == [b"OK"]
    check(t, answers, errors, still, 1, plain)
    # The node answered LOADING and the cluster sent them again (backoff),
    # or, its connection taken for lost on a loaded machine, the node's
    # handshake met LOADING and they waited on it
    assert t.redis().info("store")["store_cluster_retried"] >= 1 or \
        "is loading its data" in t.run_log()
