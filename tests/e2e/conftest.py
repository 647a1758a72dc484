# SPDX-License-Identifier: BSD-3-Clause
"""Fixtures for the black-box tests: start the real tallyd, talk to it.

This file owns how a test gets a server: the Tallyd class (free loopback
ports, a temporary data directory, the ready-line handshake, graceful stop,
SIGKILL, restart), the `tallyd` and `tallyd_factory` fixtures, and RawResp, a
small RESP2/RESP3 client over a plain socket for the tests that must send
bytes no library would.  The tests themselves live in test_*.py; README.md
says how to run them.

Binaries come from $TALLYD and $TALLY_CLI (default <repo>/build/tallyd and
<repo>/build/tally).  $TALLY_TEST_ADDR=host:port points the suite at a server
that is already running: tests marked `own_server` (they restart, kill, need
special flags or an empty database) are skipped then, and the rest use keys
unique to the test so they cannot disturb the data already there.

$TALLY_TEST_STORE=postgresql runs the same tests with every tallyd the
fixtures start on `--store postgresql://...`: a fresh database per test on
one PostgreSQL server for the session (pgserver.py, which also gives the
test_pg_* tests their servers).  $TALLY_TEST_STORE=redis does the same on
`--store redis://...`: an emptied numbered database per data directory on
one redis-server for the session with appendfsync always (redisserver.py).
$TALLY_TEST_STORE=redis-cluster runs them on `--store redis+cluster://...`
with a key prefix of its own per data directory (`--store-prefix`) on one
Redis Cluster of three masters for the session (redisserver.py).
Tests marked `engine_files` (they are about the engine's data directory:
its files, torn tails, `tally check`, snapshots, the fsync shim on its log)
are skipped then; what each store does differently is listed in
pg_known.py, redis_known.py and cluster_known.py.  Unset, or "engine", every server runs on
the embedded engine as always.
"""

import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis

from pgserver import fresh_db, pg_db, pg_factory, pg_session  # noqa: F401
from redisserver import redis_cluster_session, redis_session  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
TALLYD = os.environ.get("TALLYD", str(REPO / "build" / "tallyd"))
TALLY_CLI = os.environ.get("TALLY_CLI", str(REPO / "build" / "tally"))
EXTERNAL_ADDR = os.environ.get("TALLY_TEST_ADDR")  # "host:port" or None
STORE = os.environ.get("TALLY_TEST_STORE", "engine")
if STORE not in ("engine", "postgresql", "redis", "redis-cluster"):
    raise RuntimeError(f"TALLY_TEST_STORE={STORE!r}: say engine, postgresql, "
                       "redis or redis-cluster")
START_TIMEOUT = float(os.environ.get("TALLY_TEST_START_TIMEOUT", "30"))
STOP_TIMEOUT = float(os.environ.get("TALLY_TEST_STOP_TIMEOUT", "30"))

# Lines a sanitizer build prints when it finds a bug; any of them in a
# server's stderr fails the test that ran it.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "own_server: needs a tallyd this suite starts (restarts, "
        "kills, special flags or an empty database); skipped under "
        "TALLY_TEST_ADDR")
    config.addinivalue_line(
        "markers", "engine_files(why): about the embedded engine's data "
        "directory (its files, torn tails, tally check, snapshots, the fsync "
        "shim); skipped under any other TALLY_TEST_STORE")
    config.addinivalue_line(
        "markers", "needs_store: runs tallyd with --store; skipped when "
        "the tallyd has no such option")


def _tallyd_has_store():
    """Whether $TALLYD takes --store (asked once, at collection)."""
    try:
        out = subprocess.run([TALLYD, "--help"], capture_output=True,
                             text=True, timeout=30)
    except OSError:
        return False
    return "--store" in out.stdout + out.stderr


def _mark_known_difference(item, known):
    """xfail (strict) a test the module known (pg_known, redis_known,
    cluster_known) lists as different on its store."""
    name = item.nodeid.rpartition("/")[2]
    for nodeid in (name, name.partition("[")[0]):
        if nodeid in known.KNOWN:
            item.add_marker(pytest.mark.xfail(
                reason=known.KNOWN[nodeid],
                strict=nodeid not in known.NOT_STRICT))
            return


def pytest_collection_modifyitems(config, items):
    has_store = None
    for item in items:
        if "needs_store" in item.keywords:
            if has_store is None:
                has_store = _tallyd_has_store()
            if not has_store:
                item.add_marker(pytest.mark.skip(
                    reason=f"{TALLYD} has no --store option (the "
                    "PostgreSQL store is not in this build)"))
        if EXTERNAL_ADDR and "own_server" in item.keywords:
            item.add_marker(pytest.mark.skip(
                reason="TALLY_TEST_ADDR is set: this test needs a tallyd it "
                "starts itself"))
        if STORE == "postgresql":
            import pg_known
            _mark_known_difference(item, pg_known)
        elif STORE == "redis":
            import redis_known
            _mark_known_difference(item, redis_known)
        elif STORE == "redis-cluster":
            import cluster_known
            _mark_known_difference(item, cluster_known)
        mark = item.get_closest_marker("engine_files")
        if STORE != "engine" and mark is not None:
            why = mark.args[0] if mark.args else "the engine's files"
            item.add_marker(pytest.mark.skip(
                reason=f"TALLY_TEST_STORE={STORE}: about {why}"))


# Ports handed out in this process, so two servers of one test never get the
# same port between its probe and the server's bind.
_given_ports = set()


def end_process(proc, timeout=20):
    """SIGTERM proc, and SIGKILL it if it is still there after timeout s.
    A redis-server refuses SIGTERM while it writes its first AOF after a
    full resync ("Writing initial AOF, can't exit") and never retries, so a
    bare wait() after terminate() hung a CI run for good."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port():
    """A loopback TCP port that nothing listens on right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port
    raise RuntimeError("no free loopback port found")


def _flag_args(flags):
    """{"fsync": "no", "allow_flush": True} -> ["--fsync", "no", "--allow-flush"].
    False and None leave a flag out; a list or tuple repeats the flag once
    per item ({"http_cors_origin": ["a", "b"]})."""
    args = []
    for name, value in flags.items():
        if value is None or value is False:
            continue
        opt = "--" + name.replace("_", "-")
        if value is True:
            args.append(opt)
        elif isinstance(value, (list, tuple)):
            for item in value:
                args += [opt, str(item)]
        else:
            args += [opt, str(value)]
    return args


class Tallyd:
    """One tallyd process on free loopback ports and its own data directory.

    flags are tallyd's command-line options in Python spelling
    (requirepass="x", password_file=path, maxclients=10, allow_flush=True,
    snapshot_min_log=4096, fsync="everysec", log_level="debug", ...).
    port, http_port and memcache_port default to free ports (always passed, so
    a test never collides with the defaults 7379/7380); http_port=0 or
    memcache_port=0 turn those listeners off.  Its stderr (and stdout) go to
    <workdir>/tallyd.log, which log() reads.  env adds variables to (or,
    with None as the value, removes them from) the environment tallyd
    inherits, e.g. env={"LD_PRELOAD": shim}; it holds for every run.
    store is a --store URI (postgresql://...); None runs on the engine in
    dir, which is still passed (and made) either way.
    """

    host = "127.0.0.1"

    def __init__(self, workdir, dir=None, port=None, http_port=None,
                 memcache_port=None, fsync="always", env=None, store=None,
                 wait_store=True, **flags):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(dir) if dir is not None else self.workdir / "data"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else free_port()
        self.http_port = http_port if http_port is not None else free_port()
        self.mc_port = (memcache_port if memcache_port is not None
                        else free_port())
        self.fsync = fsync
        self.store = store
        # start() waits for a remote store to be ready (/readyz 200) unless
        # the test expects it not to be (a store that is down, refused or
        # not durable): then it waits for what it expects itself.
        self.wait_store = wait_store
        self.env = dict(env or {})
        self.flags = dict(flags)
        self.password = flags.get("requirepass")
        if self.password is None and flags.get("password_file"):
            first = Path(flags["password_file"]).read_text().split("\n")[0]
            self.password = first.rstrip("\r")
        self.log_path = self.workdir / "tallyd.log"
        self.proc = None
        self.returncode = None
        self._log_file = None
        self._run_start = 0  # offset in the log where the current run began
        self._clients = []

    # ---- addresses ---------------------------------------------------------

    @property
    def url(self):
        """Base URL of the HTTP front end, e.g. http://127.0.0.1:41234."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def argv(self):
        return [TALLYD, "--dir", str(self.dir), "--bind", self.host,
                "--port", str(self.port), "--http-port", str(self.http_port),
                "--memcache-port", str(self.mc_port), "--fsync", self.fsync,
                *(["--store", self.store] if self.store else []),
                *_flag_args(self.flags)]

    # ---- lifecycle ---------------------------------------------------------

    def spawn(self):
        """Start the process and return at once (no ready wait).  For tests
        that expect it to fail; start() is the usual way."""
        assert self.proc is None, "tallyd already running"
        if not os.access(TALLYD, os.X_OK):
            pytest.fail(f"tallyd binary not found at {TALLYD} (build it, or "
                        "set $TALLYD)")
        self._log_file = open(self.log_path, "ab")
        self._run_start = self._log_file.tell()
        self.returncode = None
        env = None
        if self.env:
            env = dict(os.environ)
            for name, value in self.env.items():
                if value is None:
                    env.pop(name, None)
                else:
                    env[name] = value
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=self._log_file,
                                     stderr=subprocess.STDOUT, env=env)
        return self

    def start(self, timeout=START_TIMEOUT):
        """Start tallyd and wait for the line containing ' ready'.  Fails the
        test, quoting the log, if it exits or is not ready in time."""
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready" in self.run_log() and self._store_ready():
                return self
            if self.proc.poll() is not None:
                rc = self._reap()
                pytest.fail(f"tallyd exited with status {rc} before it was "
                            f"ready; argv {self.argv()}\n{self.run_log()}")
            time.sleep(0.01)
        self.kill()
        pytest.fail(f"tallyd not ready within {timeout}s; argv {self.argv()}"
                    f"\n{self.run_log()}")

    def _store_ready(self):
        """True once the store answers: at once on the engine; on a remote
        store (which tallyd connects to in the background after its ready
        line) once /readyz is 200, or with no HTTP port once a read over
        RESP is not an error."""
        if not self.wait_store or not self.store or "--store" not in self.argv():
            return True
        try:
            if self.http_port:
                with socket.create_connection((self.host, self.http_port),
                                              5) as s:
                    s.sendall(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                    return s.recv(64).split(b" ")[1:2] == [b"200"]
            with RawResp(self.host, self.port, 5) as c:
                if self.password:
                    c.cmd("AUTH", self.password)
                return not isinstance(c.cmd("EXISTS", "ready-probe"),
                                      RespError)
        except OSError:
            return False

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Wait for the process to exit on its own; return its status, or
        fail the test (after killing it) if it does not exit in time."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"tallyd did not exit within {timeout}s\n"
                        f"{self.run_log()}")
        return self._reap()

    def stop(self, timeout=STOP_TIMEOUT):
        """Graceful stop: SIGTERM, wait, and require exit status 0."""
        assert self.proc is not None, "tallyd not running"
        self._close_clients()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        assert rc == 0, (f"tallyd exited with status {rc} after SIGTERM\n"
                         f"{self.run_log()}")
        self.check_sanitizers()
        return rc

    def kill(self):
        """Crash: SIGKILL and reap.  Nothing the server did not sync may
        survive."""
        if self.proc is None:
            return None
        self._close_clients()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        return self._reap()

    def restart(self, crash=False, timeout=START_TIMEOUT):
        """Stop (SIGTERM, or SIGKILL if crash) and start again on the same
        ports and data directory."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start(timeout)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _reap(self):
        self.returncode = self.proc.returncode
        self.proc = None
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        return self.returncode

    def cleanup(self):
        """Kill it if still running and close clients (fixture finalizer)."""
        self.kill()
        self._close_clients()

    # ---- output ------------------------------------------------------------

    def log(self):
        """Everything this server (all its runs) wrote so far."""
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def run_log(self):
        """What the current (or last) run wrote."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._run_start)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def check_sanitizers(self):
        text = self.log()
        for mark in SANITIZER_MARKS:
            assert mark not in text, f"sanitizer report in tallyd's log:\n{text}"

    # ---- clients -----------------------------------------------------------

    def redis(self, **kw):
        """A redis.Redis client for this server (decode_responses=True and a
        10 s socket timeout unless given).  Closed when the server stops."""
        kw.setdefault("decode_responses", True)
        kw.setdefault("socket_timeout", 10)
        kw.setdefault("socket_connect_timeout", 10)
        client = redis.Redis(host=self.host, port=self.port, **kw)
        self._clients.append(client)
        return client

    def raw(self, timeout=10):
        """A RawResp connection to this server."""
        return RawResp(self.host, self.port, timeout)

    def cli(self, *args, timeout=30, input=None):
        """Run the tally CLI against this server; returns CompletedProcess
        (text mode) without checking the exit status."""
        argv = [TALLY_CLI, "-H", self.host, "-p", str(self.port)]
        if self.password:
            argv += ["-a", self.password]
        return subprocess.run(argv + [str(a) for a in args], input=input,
                              capture_output=True, text=True, timeout=timeout)

    def _close_clients(self):
        for c in self._clients:
            try:
                c.close()
            except Exception:  # a client of a dead server may fail to close
                pass
        self._clients = []


class ExternalTallyd(Tallyd):
    """A server somebody else runs ($TALLY_TEST_ADDR).  The suite cannot
    start, stop or restart it: those calls skip the test."""

    def __init__(self, addr):
        host, _, port = addr.rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self.password = os.environ.get("TALLY_TEST_PASSWORD")
        http = os.environ.get("TALLY_TEST_HTTP_PORT")
        mc = os.environ.get("TALLY_TEST_MC_PORT")
        self.http_port = int(http) if http else None
        self.mc_port = int(mc) if mc else None
        self.dir = None
        self.proc = None
        self._clients = []

    def _refuse(self, *a, **kw):
        pytest.skip("TALLY_TEST_ADDR is set: the suite cannot control that "
                    "server")

    spawn = start = stop = kill = restart = wait_exit = _refuse

    def log(self):
        return ""

    run_log = log

    def check_sanitizers(self):
        pass

    def cleanup(self):
        self._close_clients()


_counter = itertools.count()


class StoreFor:
    """What --store the servers of one test get under $TALLY_TEST_STORE:
    store_for(dir) gives the flags of one fresh database per data directory
    (two servers sharing a dir= share a database): {"store": URI}, and on a
    cluster {"store": URI, "store_prefix": P}, P a prefix of its own, since
    a cluster has only database 0.  release() hands Redis databases (or
    prefixes, emptied) back once the test's servers are dead."""

    SESSIONS = {"postgresql": "pg_session", "redis": "redis_session",
                "redis-cluster": "redis_cluster_session"}

    def __init__(self, request):
        self.dbs = {}
        self.server = request.getfixturevalue(self.SESSIONS[STORE])

    def __call__(self, dir):
        if dir not in self.dbs:
            self.dbs[dir] = (fresh_db(self.server) if STORE == "postgresql"
                             else self.server.take())
        db = self.dbs[dir]
        if STORE == "postgresql":
            return {"store": self.server.dsn(db)}
        if STORE == "redis-cluster":
            return {"store": self.server.uri(), "store_prefix": db}
        return {"store": self.server.uri(db)}

    def release(self):
        if STORE != "postgresql":
            for db in self.dbs.values():
                self.server.give_back(db)
        self.dbs = {}


def store_for_test(request):
    """A StoreFor for this test, or None on the engine."""
    return None if STORE == "engine" else StoreFor(request)


@pytest.fixture
def tallyd_factory(request, tmp_path):
    """tallyd_factory(start=True, **flags) -> a Tallyd (see its docstring for
    flags; dir= shares a data directory, or under TALLY_TEST_STORE a
    database, between two servers; store= names a store outright).  Every
    server made is killed when the test ends."""
    if EXTERNAL_ADDR:
        pytest.skip("TALLY_TEST_ADDR is set: this test starts its own tallyd")
    made = []
    store_for = store_for_test(request)

    def make(start=True, **flags):
        workdir = tmp_path / f"tallyd{next(_counter)}"
        if store_for and "store" not in flags:
            flags.update(store_for(str(flags.get("dir", workdir / "data"))))
        d = Tallyd(workdir, **flags)
        made.append(d)
        return d.start() if start else d

    yield make
    for d in made:
        d.cleanup()
    if store_for:
        store_for.release()
    for d in made:
        d.check_sanitizers()


@pytest.fixture
def tallyd(request, tmp_path):
    """A started tallyd with default flags (--fsync always) and a fresh data
    directory (and, under TALLY_TEST_STORE, a fresh database); or the
    server at $TALLY_TEST_ADDR."""
    if EXTERNAL_ADDR:
        d = ExternalTallyd(EXTERNAL_ADDR)
        yield d
        d.cleanup()
        return
    workdir = tmp_path / f"tallyd{next(_counter)}"
    store_for = store_for_test(request)
    d = Tallyd(workdir,
               **(store_for(str(workdir / "data")) if store_for else {}))
    try:
        d.start()
        yield d
    finally:
        d.cleanup()
        if store_for:
            store_for.release()
    d.check_sanitizers()


def start_redis_server(d, *args):
    """Start redis-server without persistence in directory d on a free
    port, with more args (e.g. "--busy-reply-threshold", "300"); return
    (process, port) once it answers, or fail the test."""
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(d),
         *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(port=port, socket_timeout=10)
    for _ in range(100):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    r.close()
    return proc, port


@pytest.fixture(scope="module")
def real_redis(tmp_path_factory):
    """A real redis-server 7 without persistence on a free port, for tests
    that compare tally's replies with Redis's: a redis.Redis client with
    decode_responses=True, whose .raw() opens a RawResp to the same server;
    skipped if the binary is missing."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    proc, port = start_redis_server(tmp_path_factory.mktemp("redis"))
    r = redis.Redis(port=port, decode_responses=True, socket_timeout=10)
    r.raw = lambda: RawResp("127.0.0.1", port)
    yield r
    r.close()
    proc.kill()
    proc.wait()


@pytest.fixture
def key(request):
    """key("name") -> a key unique to this test run, so tests can share an
    external server: "t:<test>:<random>:name"."""
    prefix = f"t:{request.node.name}:{uuid.uuid4().hex[:8]}:"
    return lambda name="k": prefix + name


# ---- RawResp: a RESP client over a plain socket ----------------------------

class RespError:
    """An error reply (-ERR ... or !... in RESP3); compare .text."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return f"RespError({self.text!r})"

    def __eq__(self, other):
        return isinstance(other, RespError) and other.text == self.text

    def __hash__(self):
        return hash(self.text)


class Closed(Exception):
    """The server closed the connection before a whole reply arrived."""


class RawResp:
    """RESP2/RESP3 over a socket, for the bytes no client library sends.

    send(bytes) writes raw bytes; cmd(*args) sends one command as an array of
    bulk strings and reads its reply; read() parses one reply: int, bytes,
    None, list, dict (RESP3 map), set, bool, float, or RespError (returned,
    not raised, so tables of cases can compare).  Closed is raised if the
    server closes mid-reply; is_closed() tells whether it closed.
    """

    def __init__(self, host, port, timeout=10):
        self.sock = socket.create_connection((host, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, *args):
        self.send(self.encode(*args))
        return self.read()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed(f"connection closed; unparsed bytes {self.buf[:200]!r}")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest.decode("utf-8", "replace"))
        if kind in (b":", b"("):
            return int(rest)
        if kind in (b"$", b"=", b"!"):
            n = int(rest)
            if n < 0:
                return None
            data = self._exact(n)
            if kind == b"!":
                return RespError(data.decode("utf-8", "replace"))
            return data[4:] if kind == b"=" else data
        if kind in (b"*", b">", b"~"):
            n = int(rest)
            if n < 0:
                return None
            items = [self.read() for _ in range(n)]
            return set(items) if kind == b"~" else items
        if kind == b"%":
            return {self._key(self.read()): self.read()
                    for _ in range(int(rest))}
        if kind == b"|":  # attributes precede the real reply
            for _ in range(int(rest) * 2):
                self.read()
            return self.read()
        if kind == b"_":
            return None
        if kind == b"#":
            return rest == b"t"
        if kind == b",":
            return float(rest)
        raise AssertionError(f"not a RESP reply: {line[:200]!r}")

    @staticmethod
    def _key(k):
        return tuple(k) if isinstance(k, list) else k

    def is_closed(self, timeout=5):
        """True if the server closes the connection within timeout (any
        bytes still in flight are read and dropped)."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        return False
