# SPDX-License-Identifier: BSD-3-Clause
"""One real redis-server for the black-box suite's pass on --store redis://.

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


class RedisSession:
    """A redis-server with AOF fsynced before each answer, and a pool of
    its databases.  take() gives an empty database's number; give_back(n)
    empties it and returns it to the pool."""

    host = "127.0.0.1"

    def __init__(self, port):
        parent = os.environ.get("TALLY_TEST_REDIS_DIR")
        if parent is None and os.access("/dev/shm", os.W_OK):
            parent = "/dev/shm"
        self.root = Path(tempfile.mkdtemp(prefix="tredis-session-",
                                          dir=parent))
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
