# SPDX-License-Identifier: BSD-3-Clause
"""What a tallyd on PostgreSQL does beyond the counters themselves.

--dir is left alone: the engine is not opened, so the directory is neither
written nor locked, and instances may share one.  A host that accepts
connections and never answers holds nothing for long: requests fail with
the clear unavailable error within a bound, /readyz is 503, and tallyd goes
on to the next host of its URI or reconnects by itself.
"""

import pytest

from pg_util import on_pg

pytestmark = [pytest.mark.own_server, pytest.mark.needs_store]


def test_remote_store_neither_writes_nor_locks_dir(tallyd_factory, pg_db,
                                                   tmp_path):
    server, db = pg_db
    shared = tmp_path / "shared"
    # Given two tallyds on one database, both given the same --dir
    a = on_pg(tallyd_factory, server, db, dir=shared)
    b = on_pg(tallyd_factory, server, db, dir=shared)
    # When both serve
    assert a.redis().incr("k") == 1
    assert b.redis().incr("k") == 2
    a.stop()
    # Then neither made a file there (no log, no snapshot, no lock)
    assert list(shared.iterdir()) == []
    assert "--dir unused" in b.run_log()
