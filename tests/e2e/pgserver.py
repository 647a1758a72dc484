# SPDX-License-Identifier: BSD-3-Clause
"""Real PostgreSQL 15 servers for the black-box tests, started on loopback.

This module owns how a test gets a database: PgServer (initdb into a
temporary directory, a free port, its own socket directory, fsync on; start,
fast restart, SIGKILL of the whole server, a synchronous streaming standby,
promote, psql queries) and the `pg_session` / `pg_db` / `pg_factory`
fixtures that conftest.py re-exports.  What tallyd does with the database is
for the tests to say; docs/postgresql.md says what tally stores there.

CI runs as root and initdb refuses root, so when this process is root every
PostgreSQL program runs as the `postgres` system user that Debian's
postgresql-15 package creates (the directories are chown'd to it); as any
other user they run as that user.  The postmaster is started directly (not
through pg_ctl) so that this process is its parent: it can SIGKILL it and
reap it.  Every directory is under one temporary root per server that is
removed when the fixture ends, also when the test fails; an atexit hook
kills whatever a crashed fixture left running.
"""

import atexit
import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("TALLY_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT = float(os.environ.get("TALLY_TEST_START_TIMEOUT", "30"))
OS_USER = "postgres"        # the system user Debian's package creates
DB_USER = "postgres"        # the superuser initdb makes (trust on loopback)

_live = set()               # servers started and not yet stopped (atexit)


def available():
    """None if PostgreSQL 15 can be run here, else why not (a skip reason)."""
    for prog in ("initdb", "postgres", "pg_basebackup", "psql"):
        if not os.access(PG_BIN / prog, os.X_OK):
            return (f"PostgreSQL 15 not installed ({PG_BIN / prog} missing; "
                    "./test.sh installs postgresql-15)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            return f"running as root and there is no '{OS_USER}' user"
    return None


def _as_postgres():
    """Popen keywords that run a program as the postgres user when root."""
    if os.geteuid() != 0:
        return {}
    return {"user": OS_USER, "group": OS_USER, "extra_groups": []}


def _chown(path):
    if os.geteuid() == 0:
        shutil.chown(path, OS_USER, OS_USER)


def _run(argv, timeout=60, **kw):
    """Run a PostgreSQL program as the server's user; raise with its output
    if it fails."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, **_as_postgres(), **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited "
                           f"{p.returncode}:\n{p.stdout}{p.stderr}")
    return p.stdout


def _free_port():
    # conftest's free_port remembers what it gave out; import late so this
    # module can be used without conftest (bench scripts, a REPL).
    try:
        from conftest import free_port
    except ImportError:  # pragma: no cover
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    return free_port()


class PgServer:
    """One PostgreSQL 15 cluster: its own data directory, socket directory
    and loopback port; the postmaster is this process's child.

    conf holds extra settings (-c name=value) for every start.  dsn(db)
    gives a libpq URI for tallyd's --store; psql(sql) runs a query.
    """

    def __init__(self, name="pg", port=None, conf=None, root=None):
        self.name = name
        # Short and world-traversable: Unix socket paths are limited to
        # 107 bytes, and the postgres user cannot enter pytest's 0700
        # directories under /tmp/pytest-of-root.
        self.root = Path(root) if root else Path(
            tempfile.mkdtemp(prefix=f"tpg-{name}-"))
        os.chmod(self.root, 0o755)
        self.data = self.root / "data"
        self.sock = self.root / "s"
        self.log_path = self.root / "postgres.log"
        self.port = port if port is not None else _free_port()
        self.conf = dict(conf or {})
        self.proc = None
        self._log_file = None
        self.standbys = []  # made by standby(); cleanup() removes them too

    # ---- addresses -----------------------------------------------------

    host = "127.0.0.1"

    def dsn(self, db="postgres", **params):
        """postgresql://postgres@127.0.0.1:PORT/DB?params (for --store)."""
        q = "&".join(f"{k}={v}" for k, v in params.items())
        return (f"postgresql://{DB_USER}@{self.host}:{self.port}/{db}"
                + (f"?{q}" if q else ""))

    # ---- lifecycle -----------------------------------------------------

    def initdb(self):
        """Create the cluster (trust authentication on loopback only): a
        copy of one made by initdb once per process, which takes seconds
        where a copy takes a fraction of one."""
        self.sock.mkdir(exist_ok=True)
        _chown(self.root)
        _chown(self.sock)
        _run(["cp", "-a", _template(), self.data])
        return self

    def argv(self):
        settings = {
            "port": self.port,
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.sock),
            "fsync": "on",
            "synchronous_commit": "on",
            "max_connections": 200,
            "shared_buffers": "32MB",
            "logging_collector": "off",
            "log_min_messages": "warning",
            **self.conf,
        }
        args = [PG_BIN / "postgres", "-D", self.data]
        for k, v in settings.items():
            args += ["-c", f"{k}={v}"]
        return args

    def start(self, timeout=START_TIMEOUT):
        """Start the postmaster and wait until it accepts connections (a
        standby: until it accepts read-only ones)."""
        assert self.proc is None, f"{self.name} already running"
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=self._log_file,
                                     stderr=subprocess.STDOUT,
                                     **_as_postgres())
        _live.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._reap()
                raise RuntimeError(f"{self.name}: postgres exited at start:\n"
                                   f"{self.log()[-4000:]}")
            p = subprocess.run([PG_BIN / "pg_isready", "-q", "-h", self.host,
                                "-p", str(self.port), "-t", "1"],
                               stdin=subprocess.DEVNULL)
            if p.returncode == 0:
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name}: not ready within {timeout}s:\n"
                           f"{self.log()[-4000:]}")

    def stop(self, mode="fast", timeout=60):
        """Shut down: "fast" (SIGINT: roll back sessions, checkpoint),
        "smart" (SIGTERM) or "immediate" (SIGQUIT: no checkpoint, crash
        recovery at the next start)."""
        if self.proc is None:
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT,
               "immediate": signal.SIGQUIT}[mode]
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"{self.name}: no exit within {timeout}s of "
                               f"a {mode} shutdown")
        self._reap()

    def restart(self, mode="fast"):
        """Stop (fast shutdown by default) and start on the same port."""
        self.stop(mode)
        return self.start()

    def kill(self):
        """Crash: SIGKILL the postmaster and every process it started, as if
        the machine lost power (what reached the WAL with fsync survives),
        and wait until none is left holding the shared memory, so that the
        next start() runs crash recovery instead of refusing."""
        if self.proc is None:
            return
        _become_subreaper()
        pids = [self.proc.pid] + self._children()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self._reap()
        # The orphaned backends are re-parented to this process (a child
        # subreaper): reap them, or they stay zombies for the session.
        left = set(pids[1:])
        deadline = time.monotonic() + 30
        while left:
            for pid in list(left):
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        left.discard(pid)
                except ChildProcessError:
                    if not os.path.exists(f"/proc/{pid}"):
                        left.discard(pid)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: backends {sorted(left)} "
                                   "survived SIGKILL")
            if left:
                time.sleep(0.01)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _children(self):
        kids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            # The ppid is the 2nd field after the parenthesised command.
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                kids.append(int(d))
        return kids

    def _reap(self):
        self.proc = None
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        _live.discard(self)

    def cleanup(self):
        """Kill the server (and its standbys) if running and remove their
        directories."""
        try:
            for sb in self.standbys:
                sb.cleanup()
            self.kill()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- replication ---------------------------------------------------

    def standby(self, name="standby", synchronous=True):
        """Make and start a streaming standby of this (running) server with
        pg_basebackup -R on a port of its own.  With synchronous, this
        server then waits for the standby's flush before a commit returns
        (synchronous_standby_names), and the call returns once
        pg_stat_replication shows it attached as sync.  The standby's own
        configuration has no synchronous_standby_names: promoted, it
        commits alone."""
        sb = PgServer(name)
        self.standbys.append(sb)
        sb.sock.mkdir(exist_ok=True)
        _chown(sb.root)
        _chown(sb.sock)
        _run([PG_BIN / "pg_basebackup", "-h", self.host, "-p",
              str(self.port), "-U", DB_USER, "-D", sb.data, "-R", "-X",
              "stream", "-c", "fast", "--no-sync"], timeout=120)
        # The walreceiver reports cluster_name as its application_name.
        sb.conf["cluster_name"] = name
        sb.start()
        if synchronous:
            self.psql(f"ALTER SYSTEM SET synchronous_standby_names = "
                      f"'\"{name}\"'")
            self.psql("SELECT pg_reload_conf()")
            self.wait_sync(name)
        return sb

    def wait_sync(self, name, timeout=30):
        """Wait until standby NAME is attached with sync_state 'sync'."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.psql("SELECT sync_state FROM pg_stat_replication "
                              f"WHERE application_name = '{name}'")
            if state == "sync":
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: standby {name} not sync in "
                           f"{timeout}s: {self.psql('TABLE pg_stat_replication')}")

    def promote(self, timeout=60):
        """Promote this standby to a primary and wait until it is one."""
        out = self.psql(f"SELECT pg_promote(true, {int(timeout)})")
        if out != "t":
            raise RuntimeError(f"{self.name}: pg_promote said {out!r}")
        assert self.psql("SELECT pg_is_in_recovery()") == "f"

    # ---- queries -------------------------------------------------------

    def psql(self, sql, db="postgres", timeout=30):
        """Run SQL with psql and return its unaligned, tuples-only output
        stripped (rows on lines, columns separated by '|')."""
        p = subprocess.run(
            [PG_BIN / "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
             "-h", self.host, "-p", str(self.port), "-U", DB_USER, "-d", db,
             "-c", sql],
            capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
        if p.returncode != 0:
            raise RuntimeError(f"psql {sql!r} on {self.name}: "
                               f"{p.stderr.strip()}")
        return p.stdout.strip()

    def create_db(self, name):
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def log(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


_template_root = None


def _template():
    """The data directory of a fresh cluster to copy, made on first use and
    removed at exit.  --no-sync only skips initdb's own flush of the files;
    the servers run with fsync on."""
    global _template_root
    if _template_root is None:
        root = Path(tempfile.mkdtemp(prefix="tpg-template-"))
        os.chmod(root, 0o755)
        _chown(root)
        atexit.register(shutil.rmtree, root, True)
        _run([PG_BIN / "initdb", "-D", root / "data", "-U", DB_USER, "-A",
              "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        _template_root = root
    return _template_root / "data"


def _become_subreaper():
    """Make this process the one orphans of its children are re-parented
    to (prctl PR_SET_CHILD_SUBREAPER), so that kill() can reap the backends
    of a postmaster it killed.  Idempotent; harmless where unsupported."""
    global _subreaper
    if _subreaper:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass
    _subreaper = True


_subreaper = False


@atexit.register
def _kill_leftovers():
    for s in list(_live):
        try:
            s.kill()
        except Exception:  # exiting anyway; the next run gets new ports
            pass


# ---- fixtures (re-exported by conftest.py) -------------------------------

def _skip_unless_available():
    why = available()
    if why:
        pytest.skip(why)


@pytest.fixture(scope="session")
def pg_session():
    """One PostgreSQL server for the whole session; tests take a fresh
    database each with pg_db."""
    _skip_unless_available()
    s = PgServer("session").initdb()
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


_db_seq = iter(range(1, 1 << 30))


def fresh_db(server):
    """Create an empty database on server; return its name."""
    return server.create_db(f"t{os.getpid()}_{next(_db_seq)}")


@pytest.fixture
def pg_db(pg_session):
    """(server, database name): an empty database on the session server."""
    return pg_session, fresh_db(pg_session)


@pytest.fixture
def pg_factory():
    """pg_factory(name="pg", start=True, **conf) -> a PgServer of this test's
    own (for tests that restart, kill or replicate it).  All are killed and
    removed when the test ends."""
    _skip_unless_available()
    made = []

    def make(name="pg", start=True, **conf):
        s = PgServer(name, conf=conf)
        made.append(s)
        s.initdb()
        return s.start() if start else s

    yield make
    for s in made:
        s.cleanup()
