# SPDX-License-Identifier: BSD-3-Clause
"""tallyd over a real Redis Cluster: --store redis+cluster://h1:p1,h2:p2
(src/store/redis_cluster.c, docs/redis-store.md).  Each test starts its own
redis-server processes on free loopback ports (cluster-enabled, appendonly
yes, appendfsync always, cluster-node-timeout 1000) and makes three masters,
with one replica each where a test needs them, with `redis-cli --cluster
create`.  The stories: every operation goes to the master of its key's
slot, multi-key ones split per slot or refused (CROSSSLOT); a master
SIGKILLed while clients increment through tallyd loses no acknowledged
increment and counts no id twice once its replica has taken over; a slot
moved to another master is followed (ASK while it migrates, MOVED after);
a slot not served is waited for; rediss+cluster:// through a TLS terminator
on every node.
"""
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import redis
import requests
from pymemcache.client.base import Client as Memcache

from conftest import _given_ports, end_process, free_port

pytestmark = [pytest.mark.own_server,
              pytest.mark.skipif(not shutil.which("redis-server") or
                                 not shutil.which("redis-cli"),
                                 reason="redis-server not installed")]


def cluster_port():
    """A free port that leaves room for its cluster bus at port + 10000."""
    while True:
        p = free_port()
        if p <= 55535 and p + 10000 not in _given_ports:
            try:
                with socket.create_server(("127.0.0.1", p + 10000)):
                    _given_ports.add(p + 10000)  # no other node's port
                    return p
            except OSError:
                pass


class Cluster:
    """Three masters, each with a replica unless replicas=0; extra: more
    redis-server arguments for every node."""

    def __init__(self, workdir, password=None, replicas=1, extra=()):
        self.dir = workdir
        self.password = password
        self.replicas = replicas
        self.extra = list(extra)
        self.ports = [cluster_port() for _ in range(3 * (1 + replicas))]
        self.procs = {}
        self.argv = {}
        try:
            self.create()
        except BaseException:
            self.stop()
            raise

    def create(self):
        workdir = self.dir
        for p in self.ports:
            d = os.path.join(workdir, str(p))
            os.makedirs(d)
            self.argv[p] = [
                "redis-server", "--port", str(p), "--bind", "127.0.0.1",
                "--dir", d, "--save", "", "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "1000",
                "--cluster-replica-validity-factor", "0",
                "--appendonly", "yes", "--appendfsync", "always",
                *self.extra]
            if self.password:
                self.argv[p] += ["--requirepass", self.password,
                                 "--masterauth", self.password]
            self.start(p)
        for p in self.ports:
            self.wait(lambda: self.node(p).ping())
        auth = ["-a", self.password, "--no-auth-warning"] \
            if self.password else []
        subprocess.run(["redis-cli", *auth, "--cluster", "create",
                        *[f"127.0.0.1:{p}" for p in self.ports],
                        "--cluster-replicas", str(self.replicas),
                        "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        self.wait(self.healthy, 60)

    def start(self, port):
        """Start (or restart, with its nodes.conf) the node on port."""
        d = os.path.join(self.dir, str(port))
        self.procs[port] = subprocess.Popen(
            self.argv[port], stdout=open(os.path.join(d, "redis.log"), "ab"),
            stderr=subprocess.STDOUT)

    @staticmethod
    def wait(pred, limit=30):
        deadline = time.monotonic() + limit
        while True:
            try:
                if pred():
                    return
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, "redis cluster not ready"
            time.sleep(0.05)

    def node(self, port):
        return redis.Redis(port=port, password=self.password,
                           decode_responses=True, socket_timeout=5)

    def alive(self):
        return [p for p in self.ports if self.procs[p].poll() is None]

    def healthy(self):
        """Every live node says ok and every master has its replica."""
        for p in self.alive():
            if self.node(p).cluster("info")["cluster_state"] != "ok":
                return False
        for m in self.masters() if self.replicas else []:
            rep = self.node(m).info("replication")
            if rep["connected_slaves"] < 1 or rep["slave0"]["state"] != "online":
                return False
        return True

    def slots(self):
        """[(start, end, master port, [replica ports])] from a live node."""
        raw = self.node(self.alive()[0]).execute_command("CLUSTER SLOTS")
        return [(int(s[0]), int(s[1]), int(s[2][1]),
                 [int(r[1]) for r in s[3:]]) for s in raw]

    def masters(self):
        return sorted({m for _, _, m, _ in self.slots()})

    def master_of(self, slot):
        for lo, hi, m, _ in self.slots():
            if lo <= slot <= hi:
                return m
        raise AssertionError(f"slot {slot} has no master")

    def slot(self, rkey):
        return self.node(self.alive()[0]).cluster("keyslot", rkey)

    def get(self, rkey):
        """A Redis key read on the master of its slot."""
        return self.node(self.master_of(self.slot(rkey))).get(rkey)

    def kill(self, port):
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait()

    def stop(self):
        for proc in self.procs.values():
            end_process(proc)

    @property
    def uri(self):
        auth = f"default:{self.password}@" if self.password else ""
        return "redis+cluster://" + auth + ",".join(
            f"127.0.0.1:{p}" for p in self.ports[:2])


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(str(tmp_path / "cluster"))
    yield c
    c.stop()


@pytest.fixture
def masters(tmp_path):
    """Three masters without replicas: quicker to make."""
    c = Cluster(str(tmp_path / "cluster"), replicas=0)
    yield c
    c.stop()


@pytest.fixture
def masters_with_auth(tmp_path):
    c = Cluster(str(tmp_path / "cluster"), password="s3cret", replicas=0)
    yield c
    c.stop()


def info(t):
    return t.redis().info("store")


def test_each_operation_goes_to_the_master_of_its_slot(tallyd_factory,
                                                       masters_with_auth):
    cluster = masters_with_auth  # redis+cluster://default:s3cret@...
    t = tallyd_factory(store=cluster.uri, allow_flush=True)
    r = t.redis()
    keys = [f"k{i}" for i in range(60)] + ["k{1}", "k}", "{", "%7B", "k%", ""]
    for i, k in enumerate(keys):
        assert r.incrby(k, i + 1) == i + 1
    # Each counter is where Redis Cluster itself puts tally's key layout,
    # and tallyd never had to be redirected to find it.
    for i, k in enumerate(keys):
        esc = (k.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
               or "%")
        assert cluster.get("tally:{" + esc + "}") == str(i + 1), k
    assert info(t)["store_cluster_redirects"] == 0
    assert info(t)["store_cluster_masters"] == 3
    # They are spread over every master.
    assert len({cluster.master_of(cluster.slot("tally:{" + k + "}"))
                for k in keys[:60]}) == 3
    # Multi-key operations over many slots are split per slot...
    assert r.mget("k0", "nope", "k59", "k{1}") == ["1", None, "60", "61"]
    assert r.exists("k1", "k2", "k1", "nope") == 3
    assert r.delete("k1", "k2", "nope") == 2
    assert r.mget("k1", "k2", "k3") == [None, None, "4"]
    # ...except MSET, which would lose its atomicity: refused, as Redis does.
    with pytest.raises(redis.ResponseError, match="CROSSSLOT"):
        r.mset({"k3": 0, "k4": 0})
    assert r.mget("k3", "k4") == ["4", "5"]
    assert r.mset({"k3": 0}) is True and r.get("k3") == "0"
    # SCAN, DBSIZE and FLUSHALL walk every master.
    assert sorted(r.scan_iter(count=7)) == sorted(
        set(keys) - {"k1", "k2"})
    assert sorted(r.scan_iter("k5*")) == ["k5"] + [f"k5{i}" for i in range(10)]
    assert r.dbsize() == len(keys) - 2
    # Pipelined increments on many slots come back in request order.
    p = r.pipeline(transaction=False)
    for i in range(200):
        p.incr(f"p{i % 40}")
    assert p.execute() == [i // 40 + 1 for i in range(200)]
    # Scripts flushed on every master (as on a fresh one): NOSCRIPT, loaded
    # again on that node, sent again.
    for m in cluster.masters():
        cluster.node(m).script_flush()
    p = r.pipeline(transaction=False)
    for i in range(40):
        p.incr(f"p{i}")
    assert p.execute() == [6] * 40
    # Ids sit beside their counter, in its slot: they replay.
    first = r.execute_command("INCRBY.ONCE", "o", 5, "id-1")
    assert r.execute_command("INCRBY.ONCE", "o", 5, "id-1") == first == 5
    assert cluster.get("tally:{o}:id:id-1") is not None
    h = requests.post(t.url + "/v1/counters/h/increment", json={"by": 3},
                      headers={"Idempotency-Key": "x"}, timeout=10)
    assert h.status_code == 200 and h.json()["value"] == 3
    assert requests.get(t.url + "/readyz", timeout=10).status_code == 200
    # memcached: cas and decr's floor, each one script on its key's master.
    m = Memcache(("127.0.0.1", t.mc_port), timeout=10)
    assert m.set("m", "5") is True
    _, cas = m.gets("m")
    assert m.cas("m", "9", cas) is True
    assert m.decr("m", 100) == 0
    assert cluster.get("tally:{m}") == "0"
    assert r.flushall() is True
    assert r.dbsize() == 0 and cluster.get("tally:{k0}") is None


def test_a_master_killed_under_load_loses_no_acknowledged_increment(
        tallyd_factory, cluster):
    t = tallyd_factory(store=cluster.uri, store_wait_replicas=1)
    hot_master = cluster.master_of(cluster.slot("tally:{hot}"))
    stop = threading.Event()
    lock = threading.Lock()
    acked = {}        # counter -> increments acknowledged
    ids = {}          # id -> (counter, value first answered)
    plain = {"acked": 0, "unknown": 0}

    def once_loop(name, send):
        """Each id is sent until it is acknowledged (retries replay it),
        so every id ends acknowledged exactly once."""
        seq = 0
        while not stop.is_set():
            seq += 1
            key = "hot" if seq % 3 == 0 else f"c{(seq * 7) % 97}"
            ident = f"{name}-{seq}"
            deadline = time.monotonic() + 30
            while True:
                assert time.monotonic() < deadline, ident
                try:
                    value = send(key, ident)
                except (redis.RedisError, requests.RequestException):
                    value = None
                if value is not None:
                    break
                time.sleep(0.02)
            with lock:
                acked[key] = acked.get(key, 0) + 1
                ids[ident] = (key, value)

    def resp(name):
        c = t.redis()
        once_loop(name, lambda k, i: int(
            c.execute_command("INCRBY.ONCE", k, 1, i)))

    def http(name):
        s = requests.Session()

        def send(k, i):
            r = s.post(f"{t.url}/v1/counters/{k}/increment", json={"by": 1},
                       headers={"Idempotency-Key": i}, timeout=15)
            return r.json()["value"] if r.status_code == 200 else None
        once_loop(name, send)

    def plain_incr():
        c = t.redis()
        while not stop.is_set():
            try:
                c.incr("plain")
                plain["acked"] += 1
            except redis.ResponseError as e:
                if "unknown" in str(e):
                    plain["unknown"] += 1
                time.sleep(0.02)

    threads = [threading.Thread(target=resp, args=("r1",)),
               threading.Thread(target=resp, args=("r2",)),
               threading.Thread(target=http, args=("h1",)),
               threading.Thread(target=plain_incr)]
    for th in threads:
        th.start()
    time.sleep(1.0)
    with lock:
        before = dict(ids)
    cluster.kill(hot_master)
    # The replica takes over; tallyd follows the new slot map.
    deadline = time.monotonic() + 20
    while cluster.master_of(cluster.slot("tally:{hot}")) == hot_master:
        assert time.monotonic() < deadline, "no failover"
        time.sleep(0.1)
    while requests.get(t.url + "/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, t.run_log()
        time.sleep(0.05)
    # The new master has no replica: WAIT 1 cannot be met, so nothing on
    # its slots is acknowledged until the old master is back as its replica.
    count_at_failover = len(ids)
    cluster.start(hot_master)
    cluster.wait(cluster.healthy, 60)
    time.sleep(1.0)
    stop.set()
    for th in threads:
        th.join(40)
        assert not th.is_alive()
    assert len(ids) > count_at_failover >= len(before) > 0
    assert acked.get("hot", 0) > 0
    # Every acknowledged increment is there, and no id counted twice.
    for key, n in acked.items():
        assert int(cluster.get("tally:{" + key + "}") or 0) == n, key
    got = int(cluster.get("tally:{plain}") or 0)
    assert plain["acked"] <= got <= plain["acked"] + plain["unknown"]
    # Ids answered before the failover replay after it, on the new master.
    r = t.redis()
    hot_ids = [i for i, (k, _) in before.items() if k == "hot"]
    assert hot_ids
    for ident in hot_ids + list(before)[-10:]:
        key, value = before[ident]
        if ident.startswith("h"):  # over HTTP, as it was first sent
            again = requests.post(f"{t.url}/v1/counters/{key}/increment",
                                  json={"by": 1},
                                  headers={"Idempotency-Key": ident},
                                  timeout=15).json()["value"]
        else:
            again = int(r.execute_command("INCRBY.ONCE", key, 1, ident))
        assert again == value, ident
    assert int(cluster.get("tally:{hot}")) == acked["hot"]
    assert "slot map" in t.run_log()


def test_a_slot_moved_to_another_master_is_followed(tallyd_factory, masters):
    cluster = masters
    t = tallyd_factory(store=cluster.uri)
    r = t.redis()
    assert r.incr("mv") == 1
    assert r.execute_command("INCRBY.ONCE", "mv", 1, "id-mv") == 2
    slot = cluster.slot("tally:{mv}")
    src = cluster.master_of(slot)
    dst = next(m for m in cluster.masters() if m != src)
    s, d = cluster.node(src), cluster.node(dst)
    src_id, dst_id = s.cluster("myid"), d.cluster("myid")
    # Migrating: the keys move first, the slot after; meanwhile the old
    # owner answers ASK for keys it no longer has.
    d.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
    s.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
    rkeys = s.execute_command("CLUSTER GETKEYSINSLOT", slot, 100)
    assert "tally:{mv}" in rkeys and "tally:{mv}:id:id-mv" in rkeys
    s.execute_command("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS",
                      *rkeys)
    assert r.incr("mv") == 3
    assert info(t)["store_cluster_redirects"] >= 1  # ASK
    for port in cluster.masters():
        cluster.node(port).execute_command("CLUSTER SETSLOT", slot, "NODE",
                                           dst_id)
    # Moved: the old owner answers MOVED; tallyd takes the new map.
    assert r.incr("mv") == 4
    assert r.execute_command("INCRBY.ONCE", "mv", 1, "id-mv") == 2
    assert d.get("tally:{mv}") == "4"
    moved = info(t)["store_cluster_redirects"]
    assert r.incr("mv") == 5
    assert info(t)["store_cluster_redirects"] == moved  # the map is current


def test_a_replayed_id_is_not_acknowledged_before_a_replica_has_it(
        tallyd_factory, cluster):
    t = tallyd_factory(store=cluster.uri, store_wait_replicas=1)
    r = t.redis()
    assert r.execute_command("INCRBY.ONCE", "w", 1, "a") == 1
    master = cluster.master_of(cluster.slot("tally:{w}"))
    replica = cluster.node(master).info("replication")["slave0"]["port"]
    cluster.kill(replica)
    # Applied on the master alone: unknown, and so is its replay, which
    # shows a change no replica may hold yet (it was acknowledged before).
    for _ in range(2):
        with pytest.raises(redis.ResponseError, match="(?i)unknown"):
            r.execute_command("INCRBY.ONCE", "w", 1, "b")
    cluster.start(replica)
    cluster.wait(cluster.healthy, 60)
    assert r.execute_command("INCRBY.ONCE", "w", 1, "b") == 2
    assert r.execute_command("INCRBY.ONCE", "w", 1, "a") == 1
    assert cluster.get("tally:{w}") == "2"


def test_no_cluster_there_is_said_once_and_answers_fast(tallyd_factory,
                                                       tmp_path):
    # Nothing listens: requests fail at once, as with one Redis.
    t = tallyd_factory(store=f"redis+cluster://127.0.0.1:{free_port()}",
                       wait_store=False)
    began = time.monotonic()
    with pytest.raises(redis.ResponseError, match="TRYAGAIN"):
        t.redis().incr("x")
    assert time.monotonic() - began < 3
    assert requests.get(t.url + "/readyz", timeout=10).status_code == 503
    # A Redis without cluster-enabled: said in the log once, not at each
    # of the map's retries, and /readyz says why.
    port = free_port()
    plain = subprocess.Popen(["redis-server", "--port", str(port), "--bind",
                              "127.0.0.1", "--save", "", "--dir",
                              str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        Cluster.wait(lambda: redis.Redis(port=port).ping())
        t2 = tallyd_factory(store=f"redis+cluster://127.0.0.1:{port}",
                            wait_store=False)
        Cluster.wait(lambda: "cluster-enabled" in t2.run_log(), 10)
        time.sleep(1)
        assert t2.run_log().count("cluster-enabled") == 1, t2.run_log()
        r = requests.get(t2.url + "/readyz", timeout=10)
        assert r.status_code == 503 and "CLUSTER SLOTS" in r.text
    finally:
        end_process(plain)


def test_rediss_cluster_through_tls_on_every_node(tallyd_factory, tmp_path):
    """Three masters, each behind a TLS terminator whose port it announces
    (Debian's redis-server has no TLS): what tally talks to, the seeds and
    every node CLUSTER SLOTS names, is TLS."""
    from test_redis_store import TlsFront, make_pki
    pki = make_pki(str(tmp_path))
    ports = [cluster_port() for _ in range(3)]
    fronts = [TlsFront(pki, p) for p in ports]
    procs = []
    try:
        for p, f in zip(ports, fronts):
            d = tmp_path / str(p)
            d.mkdir()
            procs.append(subprocess.Popen(
                ["redis-server", "--port", str(p), "--bind", "127.0.0.1",
                 "--dir", str(d), "--save", "", "--cluster-enabled", "yes",
                 "--cluster-announce-port", str(f.port)],
                stdout=subprocess.DEVNULL))
        nodes = [redis.Redis(port=p, decode_responses=True) for p in ports]
        for n in nodes:
            Cluster.wait(n.ping)
        for n, (lo, hi) in zip(nodes, [(0, 5460), (5461, 10922),
                                       (10923, 16383)]):
            n.execute_command("CLUSTER ADDSLOTSRANGE", lo, hi)
        for p in ports[1:]:
            nodes[0].execute_command("CLUSTER MEET", "127.0.0.1", p)
        Cluster.wait(lambda: all(n.cluster("info")["cluster_state"] == "ok"
                                 for n in nodes))
        uri = f"rediss+cluster://127.0.0.1:{fronts[0].port}"
        t = tallyd_factory(store=uri, store_tls_ca_file=pki["ca.crt"],
                           fsync="everysec")  # these nodes have no AOF
        r = t.redis()
        for i in range(30):
            assert r.incrby(f"s{i}", i) == i
        assert r.mget("s1", "s29") == ["1", "29"]
        assert info(t)["store_cluster_masters"] == 3
        assert all(str(f.port) in info(t)["store_cluster_map"]
                   for f in fronts)
        assert sum(n.dbsize() for n in nodes) == 30
        assert all(n.dbsize() > 0 for n in nodes)
        # A CA that did not sign the nodes' certificate: refused, said so.
        bad = tallyd_factory(store=uri, store_tls_ca_file=pki["other.crt"],
                             wait_store=False)
        Cluster.wait(lambda: "certificate was refused" in bad.run_log(), 10)
        ready = requests.get(bad.url + "/readyz", timeout=10)
        assert ready.status_code == 503
    finally:
        for f in fronts:
            f.close()
        for proc in procs:
            end_process(proc)


def test_a_slot_not_served_is_retried_until_it_is_and_order_kept(
        tallyd_factory, masters):
    cluster = masters
    t = tallyd_factory(store=cluster.uri)
    assert t.redis().set("ord", 1) is True
    slot = cluster.slot("tally:{ord}")
    owner = cluster.node(cluster.master_of(slot))
    owner.execute_command("CLUSTER DELSLOTS", slot)  # CLUSTERDOWN for it
    c = socket.create_connection(("127.0.0.1", t.port), timeout=20)
    # CLUSTERDOWN: the SET is retried with backoff until the slot is served
    # again; the INCR sent later on the same connection comes after it.
    # (conn.c has one store operation per pipeline in flight today, so
    # only the store's own order, one parked queue per slot, keeps this
    # once that goes.)
    c.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nord\r\n$1\r\n5\r\n")
    time.sleep(0.15)
    c.sendall(b"*2\r\n$4\r\nINCR\r\n$3\r\nord\r\n")
    time.sleep(0.25)
    owner.execute_command("CLUSTER ADDSLOTS", slot)
    got = b""
    while got.count(b"\r\n") < 2:
        got += c.recv(100)
    c.close()
    assert got == b"+OK\r\n:6\r\n"
    assert info(t)["store_cluster_retried"] >= 1
    assert cluster.get("tally:{ord}") == "6"


def expire_on(t, names):
    """Give each counter a 100 ms TTL."""
    r = t.redis()
    p = r.pipeline(transaction=False)
    for n in names:
        p.set(n, 1, px=100)
    p.execute()


def wait_expired(t, want, limit=15):
    r = t.redis()
    deadline = time.monotonic() + limit
    while r.info("stats")["expired_keys"] < want:
        assert time.monotonic() < deadline, r.info("stats")["expired_keys"]
        time.sleep(0.1)
    assert r.info("stats")["expired_keys"] == want


def subscribed(t, masters):
    s = info(t)
    return (s["store_expired_events"] == "on" and
            s["store_cluster_masters"] == masters)


def test_expiries_on_every_master_are_reported_also_after_a_failover(
        tallyd_factory, cluster):
    from redis.crc import key_slot

    def master_of_name(n):
        slot = key_slot(f"tally:{{{n}}}".encode())
        for lo, hi, m, _ in slots:
            if lo <= slot <= hi:
                return m
    # Given tallyd over three masters with a replica each, subscribed to
    # each master's own "expired" notifications (redis_notify.c)
    t = tallyd_factory(store=cluster.uri)
    Cluster.wait(lambda: subscribed(t, 3))
    slots = cluster.slots()
    names = [f"e{i}" for i in range(300)]
    assert {master_of_name(n) for n in names} == set(cluster.masters())
    # When counters on every master expire without being read
    expire_on(t, names)
    # Then each expiry is reported once (the count waits for every master's
    # notifications, redis_notify_barrier)
    wait_expired(t, 300)
    assert info(t)["store_expired_seen"] == 300
    assert t.redis().dbsize() == 0
    # When a master is killed and its replica takes over
    dead = master_of_name("e0")
    cluster.kill(dead)
    deadline = time.monotonic() + 20
    while dead in cluster.masters():
        assert time.monotonic() < deadline, "no failover"
        time.sleep(0.1)
    slots = cluster.slots()
    Cluster.wait(lambda: subscribed(t, 3))
    # Then counters the new master expires are reported too
    moved = [f"f{i}" for i in range(300)]
    new = {master_of_name(n) for n in moved}
    assert len(new) == 3 and dead not in new
    expire_on(t, moved)
    wait_expired(t, 600)
    assert info(t)["store_expired_seen"] == 600
