# SPDX-License-Identifier: BSD-3-Clause
"""PostgreSQL schema version 2 (docs/postgresql.md, Migrations): a whole
batch's answer is kept with its id in tally_once.answer.  A database made by
a version 1 tallyd is migrated at connect, under the advisory lock, and keeps
what it held: its counters and its single changes' ids."""

import pytest
import requests

from pg_util import on_pg
from test_http_util import TIMEOUT

pytestmark = [pytest.mark.own_server, pytest.mark.needs_store]

REPLAYED = "Idempotent-Replayed"

# What a version 1 tallyd created (src/store/pg_sql.c before version 2).
V1 = """
CREATE TABLE tally_schema (version integer PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE tally_counters (k bytea PRIMARY KEY, n bigint NOT NULL,
  expire_at bigint, h bigint NOT NULL GENERATED ALWAYS AS
  ((('x' || substr(md5(k), 1, 16))::bit(64)::bigint) & 9223372036854775807)
  STORED);
CREATE INDEX tally_counters_h ON tally_counters (h);
CREATE INDEX tally_counters_expire ON tally_counters (expire_at)
  WHERE expire_at IS NOT NULL;
CREATE TABLE tally_once (id bytea PRIMARY KEY, fp bigint NOT NULL DEFAULT 0,
  rc integer NOT NULL DEFAULT 0, found integer NOT NULL DEFAULT 0,
  value bigint NOT NULL DEFAULT 0, expire_at bigint NOT NULL DEFAULT 0,
  n bigint NOT NULL DEFAULT 0, keep_until bigint NOT NULL);
CREATE INDEX tally_once_keep ON tally_once (keep_until);
INSERT INTO tally_schema (version) VALUES (1);
INSERT INTO tally_counters (k, n) VALUES ('\\x6f6c64'::bytea, 41);
"""


def post(d, path, idem, **kw):
    return requests.post(d.url + path, headers={"Idempotency-Key": idem},
                         timeout=TIMEOUT, **kw)


def test_version_1_database_is_migrated_and_keeps_batch_answers(
        tallyd_factory, pg_db):
    server, db = pg_db
    # Given a database a version 1 tallyd made, with a counter in it
    server.psql(V1, db=db)
    # When this tallyd connects
    d = on_pg(tallyd_factory, server, db)
    # Then it migrated it to version 2, the counter still there
    assert server.psql("SELECT max(version) FROM tally_schema", db=db) == "2"
    assert server.psql("SELECT column_name FROM information_schema.columns "
                       "WHERE table_name = 'tally_once' AND "
                       "column_name = 'answer'", db=db) == "answer"
    assert d.redis().get("old") == "41"
    # And a single change's id and a whole batch's id both work there
    first = post(d, "/v1/counters/old/increment", "single-1")
    assert first.status_code == 200, first.text
    ops = {"ops": [{"op": "increment", "key": "old"},
                   {"op": "get", "key": "old"}]}
    b1 = post(d, "/v1/batch", "batch-1", json=ops)
    assert b1.status_code == 200 and REPLAYED not in b1.headers, b1.text
    # And the batch's answer is in the row, replayed after a SIGKILL
    assert server.psql("SELECT length(answer) > 0 FROM tally_once "
                       "WHERE id = 'batch-1'::bytea", db=db) == "t"
    d.restart(crash=True)
    b2 = post(d, "/v1/batch", "batch-1", json=ops)
    assert b2.status_code == 200 and b2.headers.get(REPLAYED) == "true"
    assert b2.content == b1.content
    again = post(d, "/v1/counters/old/increment", "single-1")
    assert again.headers.get(REPLAYED) == "true"
    assert d.redis().get("old") == "43"
    # And a second start migrates nothing more
    d.restart()
    assert server.psql("SELECT count(*) FROM tally_schema", db=db) == "2"
