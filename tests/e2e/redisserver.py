# SPDX-License-Identifier: BSD-3-Clause
"""One real redis-server (or Redis Cluster) for the black-box suite's passes
on --store redis:// and redis+cluster://.

This module owns how a test gets a Redis database under
TALLY_TEST_STORE=redis: RedisSession starts one redis-server for the
session on a free loopback port, in its own temporary directory, with the
durability tally's default `--fsync always` asks for (appendonly yes,
appendfsync always), and hands out numbered databases (`redis://.../N`) from
a pool: one per tallyd data directory, so the tests never see each other's
counters, and each one emptied (FLUSHDB) when the test that used it has
killed its servers, before it is handed out again.

Its directory is on tmpfs (/dev/shm; $TALLY_TEST_REDIS_DIR names another
parent): tallyd still sees appendfsync always, so `--fsync always` is
promised and /readyz is 200, but Redis's fsync costs nothing there.  A
pipelined connection has one store operation in flight at a time
(docs/store.md, Debt), so on a disk each request would wait for one fsync
(about 3 ms here) and the pass would measure the disk, not tally: 20,000
pipelined INCRBYs took 51 s on ext4 and 6.6 s on tmpfs.  No test of this
pass kills the session's Redis; the SIGKILL-and-fsync stories are
test_redis_store.py's, on a Redis of their own on a real disk.  What tallyd stores
there is docs/redis-store.md; the redis_* tests that need a Redis of their
own (to kill, restart or reconfigure) start it themselves.

Under TALLY_TEST_STORE=redis-cluster, RedisClusterSession does the same on
a Redis Cluster of three masters without replicas (test_redis_cluster.py's
Cluster: appendonly yes, appendfsync always), also on tmpfs.  A cluster has
only database 0, so each tallyd data directory gets a key prefix of its own
instead (`--store-prefix tN:`, unique in the session): tallyd's DBSIZE,
FLUSHALL, SCAN and KEYS stay under it.  When the test that used it has
killed its servers, every key under the prefix is deleted on every master
(idempotency and batch records too), so the cluster stays small.
"""

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis

DATABASES = 256     # more than any one test's tallyd data directories

_live = set()       # sessions started and not yet stopped (atexit)


def _session_root(prefix):
    """A new directory for a session's Redis, on tmpfs when there is one
    ($TALLY_TEST_REDIS_DIR names another parent)."""
    parent = os.environ.get("TALLY_TEST_REDIS_DIR")
    if parent is None and os.access("/dev/shm", os.W_OK):
        parent = "/dev/shm"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


class RedisSession:
    """A redis-server with AOF fsynced before each answer, and a pool of
    its databases.  take() gives an empty database's number; give_back(n)
    empties it and returns it to the pool."""

    host = "127.0.0.1"

    def __init__(self, port):
        self.root = _session_root("tredis-session-")
        self.port = port
        self.proc = None
        self.free = list(range(DATABASES - 1, 0, -1))  # db 0 stays unused

    def start(self, timeout=30):
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port),
             "--bind", self.host, "--dir", str(self.root), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always",
             "--databases", str(DATABASES),
             "--logfile", str(self.root / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT)
        _live.add(self)
        client = self.client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        log = (self.root / "redis.log").read_text(errors="replace")
        self.cleanup()
        raise RuntimeError(f"redis-server did not start:\n{log}")

    def client(self, db=0):
        return redis.Redis(host=self.host, port=self.port, db=db,
                           socket_timeout=30)

    def uri(self, db):
        return f"redis://{self.host}:{self.port}/{db}"

    def take(self):
        if not self.free:
            raise RuntimeError(f"all {DATABASES - 1} redis databases in use")
        return self.free.pop()

    def give_back(self, db):
        with self.client(db) as c:
            c.flushdb()
        self.free.append(db)

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _live.discard(self)
        shutil.rmtree(self.root, ignore_errors=True)


class RedisClusterSession:
    """A Redis Cluster of three masters with AOF fsynced before each answer,
    and key prefixes handed out from it.  take() gives a prefix nothing in
    the cluster uses; give_back(p) deletes every key under p."""

    def __init__(self):
        self.root = _session_root("tcluster-session-")
        self.cluster = None
        self.given = 0

    def start(self):
        # The cluster the test_redis_cluster*.py stories make for themselves,
        # so both passes run on one recipe.
        from test_redis_cluster import Cluster
        _live.add(self)
        try:
            self.cluster = Cluster(str(self.root / "nodes"), replicas=0)
            # The stories' 1 s node timeout makes their failovers quick; no
            # test of the pass fails a node over, and on a loaded machine a
            # heartbeat late by a second marked a master failed and the
            # whole cluster down (CLUSTERDOWN), so Redis's default here.
            for port in self.cluster.ports:
                self.cluster.node(port).config_set("cluster-node-timeout",
                                                   15000)
        except BaseException:
            self.cleanup()
            raise
        return self

    def uri(self):
        return "redis+cluster://" + ",".join(
            f"127.0.0.1:{p}" for p in self.cluster.masters())

    def take(self):
        self.given += 1
        return f"t{self.given}:"

    def give_back(self, prefix):
        for port in self.cluster.masters():
            # Bytes, not str: a test's keys need not be UTF-8.
            with redis.Redis(port=port, socket_timeout=30) as c:
                doomed = list(c.scan_iter(match=prefix + "*", count=1000))
                for i in range(0, len(doomed), 1000):
                    # One key per call: the keys are in many slots.
                    p = c.pipeline(transaction=False)
                    for k in doomed[i:i + 1000]:
                        p.unlink(k)
                    p.execute()

    def cleanup(self):
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None
        _live.discard(self)
        shutil.rmtree(self.root, ignore_errors=True)


@atexit.register
def _kill_leftovers():
    for s in list(_live):
        s.cleanup()


@pytest.fixture(scope="session")
def redis_session():
    """The session's RedisSession; skipped if redis-server is missing."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    from conftest import free_port
    s = RedisSession(free_port()).start()
    try:
        yield s
    finally:
        s.cleanup()


@pytest.fixture(scope="session")
def redis_cluster_session():
    """The session's RedisClusterSession; skipped if redis-server or
    redis-cli is missing."""
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        pytest.skip("redis-server or redis-cli not installed")
    s = RedisClusterSession().start()
    try:
        yield s
    finally:
        s.cleanup()
