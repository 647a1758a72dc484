# SPDX-License-Identifier: BSD-3-Clause
"""pgserver.py's own promises, which every test_pg_* file leans on: a
commit survives a SIGKILL of the whole server (fsync is on, and kill()
leaves nothing behind that would stop the next start), a synchronous
standby really holds commits until it has them, promote() gives a primary
with every committed row, and cleanup() leaves no process or directory.
No tallyd here."""

import os
import subprocess

import pytest

pytestmark = pytest.mark.own_server


def pids_of(server_root):
    """Processes whose command line names this server's directory."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if str(server_root).encode() in f.read():
                    found.append(int(d))
        except OSError:
            pass
    return found


def test_a_commit_survives_sigkill_and_the_server_starts_again(pg_factory):
    s = pg_factory("crash")
    s.psql("CREATE TABLE c (k int PRIMARY KEY, n bigint)")
    s.psql("INSERT INTO c VALUES (1, 42)")
    assert s.psql("SHOW fsync") == "on"
    s.kill()
    assert not pids_of(s.root), "processes survived kill()"
    s.start()
    assert s.psql("SELECT n FROM c WHERE k = 1") == "42"
    s.restart()
    assert s.psql("SELECT n FROM c WHERE k = 1") == "42"


def test_a_synchronous_standby_holds_commits_and_promotes(pg_factory):
    p = pg_factory("primary")
    p.psql("CREATE TABLE c (k int PRIMARY KEY, n bigint)")
    sb = p.standby("sb1")
    # synchronous_commit = on waits for the standby's flush, not for its
    # replay: a read there right after could miss the row (CI of stop 22
    # did).  remote_apply waits until the standby shows it too.
    p.psql("SET synchronous_commit = remote_apply; "
           "INSERT INTO c VALUES (1, 1)")
    assert sb.psql("SELECT n FROM c") == "1"  # there as soon as committed
    # With the standby gone, a commit on the primary waits for it
    sb.kill()
    with pytest.raises(subprocess.TimeoutExpired):
        p.psql("UPDATE c SET n = 2", timeout=2)
    sb.start()
    p.wait_sync("sb1")
    assert p.psql("SELECT n FROM c") == "2"
    # Promoted after the primary dies, the standby has every commit and
    # takes writes alone
    p.kill()
    sb.promote()
    assert sb.psql("UPDATE c SET n = n + 1 RETURNING n") == "3"


def test_cleanup_leaves_no_process_and_no_directory(pg_factory):
    p = pg_factory("gone")
    sb = p.standby("sb", synchronous=False)
    roots = [p.root, sb.root]
    p.cleanup()
    for root in roots:
        assert not root.exists()
        assert not pids_of(root)
