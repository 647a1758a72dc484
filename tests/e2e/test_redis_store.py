# SPDX-License-Identifier: BSD-3-Clause
"""tallyd over a real Redis: --store redis://127.0.0.1:PORT (src/store/redis.c,
docs/redis-store.md).  Each test starts its own redis-server on a free
loopback port in a temporary directory.  The scenarios of issue 12: counters
survive a tallyd restart; with appendfsync always nothing acknowledged is
lost when Redis is SIGKILLed; without persistence tally says it cannot
promise durability; two tallyd instances on one Redis sum exactly; ids
replay across instances; a lost connection gives an unknown outcome, never
a success, and a down Redis answers fast.
"""
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
import redis
import requests
from pymemcache.client.base import Client as Memcache

from conftest import end_process, free_port

pytestmark = [pytest.mark.own_server,
              pytest.mark.skipif(not shutil.which("redis-server"),
                                 reason="redis-server not installed")]


class RedisServer:
    """One redis-server on a free loopback port, data in its own dir."""

    def __init__(self, workdir, *conf):
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.conf = list(conf)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.dir), "--save", "", *self.conf],
            stdout=open(os.path.join(self.dir, "redis.log"), "ab"),
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def client(self):
        return redis.Redis(port=self.port, decode_responses=True,
                           socket_timeout=10)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc:
            end_process(self.proc)

    @property
    def uri(self):
        return f"redis://127.0.0.1:{self.port}"


@pytest.fixture
def redis_factory(tmp_path):
    made = []

    def make(*conf):
        r = RedisServer(str(tmp_path / f"redis{len(made)}"), *conf).start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")


def over(tallyd_factory, rs, **flags):
    """A tallyd on rs that has finished its handshake with it (ready or not:
    some tests expect /readyz to stay 503)."""
    flags.setdefault("store", rs.uri)
    flags.setdefault("wait_store", False)
    t = tallyd_factory(**flags)
    deadline = time.monotonic() + 10
    while "redis: connected" not in t.run_log():
        assert time.monotonic() < deadline, t.run_log()
        time.sleep(0.02)
    return t


def test_commands_over_resp_http_and_memcached(tallyd_factory, redis_factory):
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    r = t.redis()
    assert r.incr("a") == 1
    assert r.incrby("a", 5) == 6
    assert r.set("b", 3) is True
    assert r.set("b", 4, nx=True) is None
    assert r.getset("b", 9) == "3"
    assert r.mget("a", "b", "nope") == ["6", "9", None]
    assert r.expire("a", 100) is True
    assert 0 < r.ttl("a") <= 100
    assert r.expire("a", 50, gt=True) is False
    assert r.persist("a") is True and r.ttl("a") == -1
    assert r.getdel("b") == "9" and r.get("b") is None
    assert r.exists("a", "b", "a") == 2
    r.set("big", 2**63 - 2)
    assert r.incr("big") == 2**63 - 1  # exact: never a Lua double
    with pytest.raises(redis.ResponseError, match="overflow"):
        r.incr("big")
    assert r.get("big") == str(2**63 - 1)
    for k in ["k{1}", "k}", "{", "%7B", "k%"]:  # hash tags survive any key
        r.set(k, 7)
    assert sorted(r.scan_iter("k*", count=3)) == ["k%", "k{1}", "k}"]
    assert r.get("%7B") == "7" and r.get("{") == "7"
    assert r.delete("a", "k}", "nope") == 2
    # The data stays readable with redis-cli: the layout of docs/redis-store.md.
    assert rs.client().get("tally:{k%7B1%7D}") == "7"
    assert rs.client().get("tally:{%7B}") == "7"
    # HTTP
    s = requests.Session()
    for i in range(1, 6):
        assert s.post(t.url + "/v1/counters/h/increment", json={"by": 2},
                      timeout=10).json()["value"] == 2 * i
    assert s.get(t.url + "/v1/counters/nope", timeout=10).status_code == 404
    # memcached: cas and decr's floor are one script each
    m = Memcache(("127.0.0.1", t.mc_port), timeout=10)
    assert m.set("m", "5") is True
    value, cas = m.gets("m")
    assert m.cas("m", "9", b"12345") is False
    assert m.cas("m", "9", cas) is True
    assert m.incr("m", 2) == 11
    assert m.decr("m", 100) == 0
    assert m.incr("missing", 1) is None
    assert rs.client().exists("tally:{missing}") == 0
    # md with C deletes only if the counter still holds that value.
    import socket
    value, cas = m.gets("m")
    c = socket.create_connection(("127.0.0.1", t.mc_port))
    c.sendall(b"md m C12345\r\n")
    assert c.recv(100) == b"EX\r\n"
    assert m.get("m") == b"0"
    c.sendall(b"md m C" + cas + b"\r\n")
    assert c.recv(100) == b"HD\r\n"
    c.close()
    assert rs.client().exists("tally:{m}") == 0


def test_counters_survive_a_tallyd_restart(tallyd_factory, redis_factory):
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    t.redis().incrby("r", 41)
    requests.post(t.url + "/v1/counters/r/increment", json={"by": 1},
                  timeout=10)
    t.kill()
    t2 = over(tallyd_factory, rs)  # a fresh --dir: the counters are Redis's
    assert t2.redis().get("r") == "42"
    m = Memcache(("127.0.0.1", t2.mc_port), timeout=10)
    assert m.get("r") == b"42"


def test_redis_sigkill_with_appendfsync_always_loses_nothing_acknowledged(
        tallyd_factory, redis_factory):
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    acked = {"resp": 0, "http": 0, "mc": 0}
    stop = threading.Event()

    def resp():
        c = t.redis()
        while not stop.is_set():
            try:
                c.incr("resp")
                acked["resp"] += 1
            except redis.RedisError:
                time.sleep(0.01)

    def http():
        s = requests.Session()
        while not stop.is_set():
            try:
                if s.post(t.url + "/v1/counters/http/increment", json={"by": 1},
                          timeout=10).status_code == 200:
                    acked["http"] += 1
            except requests.RequestException:
                time.sleep(0.01)

    def mc():
        m = Memcache(("127.0.0.1", t.mc_port), timeout=10)
        m.set("mc", "0")
        acked["mc"] = 0
        while not stop.is_set():
            try:
                if m.incr("mc", 1) is not None:
                    acked["mc"] += 1
            except Exception:
                time.sleep(0.01)
                m = Memcache(("127.0.0.1", t.mc_port), timeout=10)

    threads = [threading.Thread(target=f) for f in (resp, http, mc)]
    for th in threads:
        th.start()
    time.sleep(0.7)
    rs.kill()
    time.sleep(0.3)
    # Down: requests fail fast and /readyz says why.
    began = time.monotonic()
    with pytest.raises(redis.ResponseError, match="TRYAGAIN|unavailable"):
        t.redis().incr("down")
    assert time.monotonic() - began < 1
    ready = requests.get(t.url + "/readyz", timeout=10)
    assert ready.status_code == 503
    rs.start()
    deadline = time.monotonic() + 10
    while requests.get(t.url + "/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, t.run_log()
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    for th in threads:
        th.join()
    direct = rs.client()
    for key in acked:
        assert acked[key] > 0
        # At least every acknowledged one; more only for unknown outcomes.
        assert int(direct.get(f"tally:{{{key}}}") or 0) >= acked[key], key
    info = t.redis().info("store")
    assert info["store_reconnects"] >= 1


def test_no_persistence_is_reported_not_durable(tallyd_factory, redis_factory):
    rs = redis_factory("--appendonly", "no", "--appendfsync", "no")
    t = over(tallyd_factory, rs)  # --fsync always by default
    info = t.redis().info("store")
    assert info["store"] == "redis"
    assert info["store_redis_appendonly"] == "no"
    assert info["store_durability"].startswith("none")
    assert "warning" in t.run_log() and "appendonly no" in t.run_log()
    r = requests.get(t.url + "/readyz", timeout=10)
    assert r.status_code == 503 and "appendonly no" in r.text
    text = requests.get(t.url + "/metrics", timeout=10).text
    assert 'tally_store_info{store="redis"' in text
    # It still serves; it only does not promise.
    assert t.redis().incr("n") == 1
    # With --fsync everysec nothing was promised: ready.
    t2 = over(tallyd_factory, rs, fsync="everysec")
    assert requests.get(t2.url + "/readyz", timeout=10).status_code == 200


def test_two_tallyd_instances_sum_exactly(tallyd_factory, redis_factory):
    rs = redis_factory(*AOF_ALWAYS)
    a, b = over(tallyd_factory, rs), over(tallyd_factory, rs)
    errors = []

    def client(t, n):
        try:
            p = t.redis().pipeline(transaction=False)
            for _ in range(n):
                p.incr("hot")
            p.execute()
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(t, 300))
               for t in (a, b, a, b, a, b)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert a.redis().get("hot") == "1800" == b.redis().get("hot")


def test_ids_replay_across_instances_and_restarts(tallyd_factory,
                                                  redis_factory):
    rs = redis_factory(*AOF_ALWAYS)
    a, b = over(tallyd_factory, rs), over(tallyd_factory, rs)
    first = a.redis().execute_command("INCRBY.ONCE", "o", 5, "id-1")
    assert b.redis().execute_command("INCRBY.ONCE", "o", 5, "id-1") == first
    assert a.redis().get("o") == "5"
    with pytest.raises(redis.ResponseError):
        b.redis().execute_command("INCRBY.ONCE", "o", 6, "id-1")
    hdr = {"Idempotency-Key": "k-1"}
    r1 = requests.post(a.url + "/v1/counters/w/increment", json={"by": 3},
                       headers=hdr, timeout=10)
    r2 = requests.post(b.url + "/v1/counters/w/increment", json={"by": 3},
                       headers=hdr, timeout=10)
    assert r1.status_code == r2.status_code == 200
    assert r1.json()["value"] == r2.json()["value"] == 3
    a.kill()
    c = over(tallyd_factory, rs)
    assert c.redis().execute_command("INCRBY.ONCE", "o", 5, "id-1") == first
    assert c.redis().get("o") == "5"
    # The id record sits next to its counter, in the same hash tag.
    assert rs.client().exists("tally:{o}:id:id-1") == 1
    assert 0 < rs.client().pttl("tally:{o}:id:id-1") <= 24 * 3600 * 1000


def test_connection_lost_mid_script_is_unknown_never_success(
        tallyd_factory, redis_factory):
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    r = t.redis()
    r.set("slow", 1)
    # Redis stops answering with the script on the wire, then dies.
    rs.proc.send_signal(signal.SIGSTOP)
    got = {}

    def incr():
        try:
            got["v"] = t.redis().incr("slow")
        except redis.RedisError as e:
            got["e"] = str(e)

    th = threading.Thread(target=incr)
    th.start()
    time.sleep(0.3)
    rs.proc.send_signal(signal.SIGKILL)
    rs.proc.send_signal(signal.SIGCONT)
    rs.proc.wait()
    th.join(10)
    assert "v" not in got, got
    assert "unknown" in got["e"].lower(), got
    assert t.redis().info("store")["store_unknown_outcomes"] >= 1


def test_a_silent_redis_gives_unknown_then_reconnects(tallyd_factory,
                                                      redis_factory):
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    t.redis().set("s", 1)
    rs.proc.send_signal(signal.SIGSTOP)  # alive, but never answers
    try:
        began = time.monotonic()
        with pytest.raises(redis.ResponseError, match="(?i)unknown"):
            t.redis().incr("s")
        assert time.monotonic() - began < 6
    finally:
        rs.proc.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 10
    while requests.get(t.url + "/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, t.run_log()
        time.sleep(0.05)
    # The increment sent before the silence ran once: 2, and now 3.
    assert t.redis().incr("s") == 3


def test_custom_prefix_and_a_down_redis_at_start(tallyd_factory, redis_factory):
    port = free_port()
    t = tallyd_factory(store=f"redis://127.0.0.1:{port}", store_prefix="app:",
                       wait_store=False)
    began = time.monotonic()
    with pytest.raises(redis.ResponseError):
        t.redis().incr("x")
    assert time.monotonic() - began < 3
    r = requests.get(t.url + "/readyz", timeout=10)
    assert r.status_code == 503 and "redis" in r.text
    rs = redis_factory(*AOF_ALWAYS)
    t2 = over(tallyd_factory, rs, store_prefix="app:")
    t2.redis().incr("x")
    assert rs.client().get("app:{x}") == "1"
    bad = tallyd_factory(start=False, store=rs.uri, store_prefix="a{b")
    bad.spawn()
    assert bad.wait_exit() != 0
    assert "prefix" in bad.run_log()


# ---- rediss:// -------------------------------------------------------------

def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 signed by it, and another
    CA that signed nothing of ours: made with openssl for this test."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True,
                       capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
        "-out", "ca.crt", "-days", "2", "-subj", "/CN=tally test CA")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
        "other.key", "-out", "other.crt", "-days", "2", "-subj", "/CN=other")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
        "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey",
        "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2",
        "-extfile", "ext")
    return {n: os.path.join(d, n) for n in
            ("ca.crt", "other.crt", "server.crt", "server.key")}


def redis_has_tls():
    out = subprocess.run(["redis-server", "--port", "0", "--tls-port", "0",
                          "--tls-cert-file", "/nonexistent", "--test-memory",
                          "1"], capture_output=True, text=True)
    return "Bad directive" not in (out.stdout + out.stderr)


class TlsFront:
    """A TLS terminator on a free port in front of a plain Redis, for a
    redis-server built without TLS (Debian's is): what tally talks to is
    TLS either way, as it would be to stunnel or a managed endpoint."""

    def __init__(self, pki, backend_port):
        import socket
        import ssl
        self.port = free_port()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki["server.crt"], pki["server.key"])
        self.lsock = socket.create_server(("127.0.0.1", self.port))
        self.backend = backend_port
        self.alive = True
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        import socket
        while self.alive:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                s = self.ctx.wrap_socket(c, server_side=True)
            except OSError:
                c.close()
                continue
            b = socket.create_connection(("127.0.0.1", self.backend))
            for src, dst in ((s, b), (b, s)):
                threading.Thread(target=self.pipe, args=(src, dst),
                                 daemon=True).start()

    @staticmethod
    def pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.close()
            except OSError:
                pass

    def close(self):
        self.alive = False
        self.lsock.close()


def test_rediss_with_an_acl_user_and_a_wrong_ca_refused(tallyd_factory,
                                                        redis_factory,
                                                        tmp_path):
    pki = make_pki(str(tmp_path))
    acl = ("--user", "tally", "on", ">s3cret", "~tally:*", "+@all",
           "--user", "default", "off")
    if redis_has_tls():
        rs = redis_factory(*AOF_ALWAYS, *acl, "--tls-port", str(free_port()),
                           "--tls-cert-file", pki["server.crt"],
                           "--tls-key-file", pki["server.key"],
                           "--tls-ca-file", pki["ca.crt"],
                           "--tls-auth-clients", "no")
        tls_port, front = rs.conf[rs.conf.index("--tls-port") + 1], None
    else:
        rs = RedisServer(str(tmp_path / "redis"), *AOF_ALWAYS, *acl)
        rs.client = lambda: redis.Redis(port=rs.port, username="tally",
                                        password="s3cret",
                                        decode_responses=True)
        rs.start()
        front = TlsFront(pki, rs.port)
        tls_port = front.port
    try:
        uri = f"rediss://tally:s3cret@127.0.0.1:{tls_port}"
        t = over(tallyd_factory, rs, store=uri,
                 store_tls_ca_file=pki["ca.crt"])
        assert t.redis().incrby("secure", 3) == 3
        assert rs.client().get("tally:{secure}") == "3"
        # A CA that did not sign the server's certificate: refused, and
        # said so in the log and /readyz; nothing was sent.
        bad = tallyd_factory(store=uri, store_tls_ca_file=pki["other.crt"],
                             wait_store=False)
        deadline = time.monotonic() + 10
        while "certificate" not in bad.run_log():
            assert time.monotonic() < deadline, bad.run_log()
            time.sleep(0.02)
        assert "certificate was refused" in bad.run_log()
        r = requests.get(bad.url + "/readyz", timeout=10)
        assert r.status_code == 503 and "certificate" in r.text
        with pytest.raises(redis.ResponseError):
            bad.redis().incr("secure")
        assert rs.client().get("tally:{secure}") == "3"
        # A wrong password: AUTH refused, said so.
        nopw = tallyd_factory(store=f"rediss://tally:nope@127.0.0.1:{tls_port}",
                              store_tls_ca_file=pki["ca.crt"],
                              wait_store=False)
        deadline = time.monotonic() + 10
        while "AUTH refused" not in nopw.run_log():
            assert time.monotonic() < deadline, nopw.run_log()
            time.sleep(0.02)
    finally:
        if front:
            front.close()
        rs.stop()


def test_wait_replicas_holds_answers_and_too_few_is_unknown(tallyd_factory,
                                                           redis_factory):
    primary = redis_factory(*AOF_ALWAYS)
    replica = redis_factory("--replicaof", "127.0.0.1", str(primary.port))
    deadline = time.monotonic() + 10
    while replica.client().info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t = over(tallyd_factory, primary, store_wait_replicas=1)
    assert t.redis().incr("w") == 1
    assert t.redis().info("store")["store_wait_replicas"] == 1
    # The acknowledged increment is on the replica already.
    assert replica.client().get("tally:{w}") == "1"
    # Without the replica WAIT times out: applied on the primary, but not
    # as promised, so never reported as a success.
    replica.kill()
    with pytest.raises(redis.ResponseError, match="(?i)unknown"):
        t.redis().incr("w")
    assert primary.client().get("tally:{w}") == "2"
    assert t.redis().get("w") == "2"  # reads are not held


def test_scripts_flushed_on_the_server_are_loaded_again(tallyd_factory,
                                                        redis_factory):
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    r = t.redis()
    assert r.incr("f") == 1
    rs.client().script_flush()  # as after a failover to a fresh server
    p = r.pipeline(transaction=False)
    for _ in range(20):
        p.incr("f")
    assert p.execute() == list(range(2, 22))  # NOSCRIPT: loaded, sent again
    assert r.execute_command("INCRBY.ONCE", "f", 1, "x") == 22
    assert rs.client().get("tally:{f}") == "22"


def test_a_durability_change_on_the_server_is_noticed(tallyd_factory,
                                                      redis_factory):
    rs = redis_factory(*AOF_ALWAYS)
    t = over(tallyd_factory, rs)
    assert requests.get(t.url + "/readyz", timeout=10).status_code == 200
    rs.client().config_set("appendfsync", "everysec")
    deadline = time.monotonic() + 6
    while t.redis().info("store")["store_redis_appendfsync"] != "everysec":
        assert time.monotonic() < deadline, t.run_log()
        time.sleep(0.1)
    assert "appendfsync is now everysec" in t.run_log()
    r = requests.get(t.url + "/readyz", timeout=10)
    assert r.status_code == 503 and "everysec" in r.text
