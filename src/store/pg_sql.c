/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pg_sql.c - every SQL text the PostgreSQL store sends, and the encoders of
 * its text-format array parameters.  docs/postgresql.md lists the same
 * statements for operators and for other engines on the same wire; change
 * both together.
 *
 * Schema (version 2; tally_schema holds the versions applied):
 *   tally_counters(k bytea primary key, n bigint, expire_at bigint null,
 *                  h bigint generated from md5(k), the SCAN order)
 *   tally_once(id bytea primary key, fp, rc, found, value, expire_at, n:
 *              the first request's fingerprint and result; keep_until;
 *              answer: a whole batch's answer, '' for a single change's,
 *              version 2)
 * Times are Unix ms from the database's clock (PG_NOW).  A counter whose
 * expire_at is at or before now does not exist: every read filters, the
 * purge deletes it later.  expire_at 0 marks a placeholder row that a
 * running transaction created to lock a key it may not keep (it is
 * deleted or overwritten before that transaction commits).  An id whose
 * keep_until has passed is forgotten the same way.
 *
 * Migrations: pg_sql_schema is idempotent (IF NOT EXISTS) and runs at
 * every connect under an advisory lock, so concurrent first starts of many
 * instances are safe.  A later version appends its own idempotent steps
 * and its row in tally_schema; a tallyd that finds a version newer than
 * PG_SCHEMA_VERSION refuses the database (pg.c).
 */
#include <string.h>

#include "pg_int.h"

/* The database's clock in Unix ms, once per statement (an InitPlan). */
#define PG_NOW "(SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint)"
#define PG_LIVE(t) "(" t ".expire_at IS NULL OR " t ".expire_at > " PG_NOW ")"

const char pg_sql_schema[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(7961534420);"
    "CREATE TABLE IF NOT EXISTS tally_schema ("
    " version integer PRIMARY KEY,"
    " applied_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS tally_counters ("
    " k bytea PRIMARY KEY,"
    " n bigint NOT NULL,"
    " expire_at bigint,"
    " h bigint NOT NULL GENERATED ALWAYS AS"
    "  ((('x' || substr(md5(k), 1, 16))::bit(64)::bigint) & 9223372036854775807) STORED);"
    "CREATE INDEX IF NOT EXISTS tally_counters_h ON tally_counters (h);"
    "CREATE INDEX IF NOT EXISTS tally_counters_expire ON tally_counters (expire_at)"
    " WHERE expire_at IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS tally_once ("
    " id bytea PRIMARY KEY,"
    " fp bigint NOT NULL DEFAULT 0,"
    " rc integer NOT NULL DEFAULT 0,"
    " found integer NOT NULL DEFAULT 0,"
    " value bigint NOT NULL DEFAULT 0,"
    " expire_at bigint NOT NULL DEFAULT 0,"
    " n bigint NOT NULL DEFAULT 0,"
    " keep_until bigint NOT NULL);"
    "CREATE INDEX IF NOT EXISTS tally_once_keep ON tally_once (keep_until);"
    "INSERT INTO tally_schema (version) VALUES (1) ON CONFLICT DO NOTHING;"
    /* Version 2: a whole batch's answer kept with its id (HTTP /v1/batch
     * with an Idempotency-Key); '' for a single change's id. */
    "ALTER TABLE tally_once ADD COLUMN IF NOT EXISTS"
    " answer bytea NOT NULL DEFAULT ''::bytea;"
    "INSERT INTO tally_schema (version) VALUES (2) ON CONFLICT DO NOTHING;"
    "COMMIT;"
    "SELECT max(version) FROM tally_schema;";

const char *const pg_sql_name[PG_S_COUNT_ALL] = {
    "tally_hot", "tally_lock", "tally_read", "tally_ids", "tally_write",
    "tally_delete", "tally_idsave", "tally_scan", "tally_count",
    "tally_flush", "tally_purge", "tally_info", "tally_count_once"};

const char *const pg_sql_text[PG_S_COUNT_ALL] = {
    /* PG_S_HOT ($1 keys sorted, $2 summed deltas, $3..$4 the bound every
     * live value must lie in for no running value to leave int64): rows
     * outside the bound are left alone and come back missing. */
    "INSERT INTO tally_counters AS c (k, n)"
    " SELECT k, d FROM unnest($1::bytea[], $2::bigint[]) AS u(k, d) ORDER BY k"
    " ON CONFLICT (k) DO UPDATE SET"
    "  n = CASE WHEN " PG_LIVE("c") " THEN c.n + excluded.n ELSE excluded.n END,"
    "  expire_at = CASE WHEN " PG_LIVE("c") " THEN c.expire_at END"
    " WHERE NOT " PG_LIVE("c") " OR c.n BETWEEN $3::bigint AND $4::bigint"
    " RETURNING c.k, c.n, c.expire_at, " PG_NOW,
    /* PG_S_LOCK ($1 keys sorted): lock each row, creating a placeholder
     * (expire_at 0) where none exists, so that no other instance can
     * change or create it until this transaction ends. */
    "INSERT INTO tally_counters AS c (k, n, expire_at)"
    " SELECT k, 0, 0 FROM unnest($1::bytea[]) AS u(k) ORDER BY k"
    " ON CONFLICT (k) DO UPDATE SET n = c.n"
    " RETURNING c.k, c.n, c.expire_at, " PG_NOW,
    /* PG_S_READ ($1 keys) */
    "SELECT k, n, expire_at, " PG_NOW " FROM tally_counters"
    " WHERE k = ANY($1::bytea[])",
    /* PG_S_IDS ($1 ids sorted): lock or create (keep_until 0: none). */
    "INSERT INTO tally_once AS o (id, keep_until)"
    " SELECT id, 0 FROM unnest($1::bytea[]) AS u(id) ORDER BY id"
    " ON CONFLICT (id) DO UPDATE SET keep_until = o.keep_until"
    " RETURNING o.id, o.fp, o.rc, o.found, o.value, o.expire_at, o.n,"
    "  o.keep_until, " PG_NOW ", o.answer",
    /* PG_S_WRITE ($1 keys, $2 values, $3 expiries or NULL): rows locked by
     * PG_S_LOCK. */
    "INSERT INTO tally_counters AS c (k, n, expire_at)"
    " SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bigint[])"
    " ON CONFLICT (k) DO UPDATE SET n = excluded.n, expire_at = excluded.expire_at",
    /* PG_S_DELETE ($1 keys) */
    "DELETE FROM tally_counters WHERE k = ANY($1::bytea[])",
    /* PG_S_IDSAVE ($1 ids, $2..$7 the result, $8 ms to keep it, $9 the
     * answers: a whole batch's, '' for a single change's) */
    "INSERT INTO tally_once AS o (id, fp, rc, found, value, expire_at, n, answer,"
    "  keep_until)"
    " SELECT u.*, " PG_NOW " + $8::bigint FROM unnest($1::bytea[], $2::bigint[],"
    "  $3::integer[], $4::integer[], $5::bigint[], $6::bigint[], $7::bigint[],"
    "  $9::bytea[]) AS u(id, fp, rc, found, value, expire_at, n, answer)"
    " ON CONFLICT (id) DO UPDATE SET fp = excluded.fp, rc = excluded.rc,"
    "  found = excluded.found, value = excluded.value,"
    "  expire_at = excluded.expire_at, n = excluded.n,"
    "  answer = excluded.answer, keep_until = excluded.keep_until",
    /* PG_S_SCAN ($1 cursor: the first h of the page, $2 rows) */
    "SELECT k, n, expire_at, h, " PG_NOW " FROM tally_counters"
    " WHERE h >= $1::bigint ORDER BY h LIMIT $2::bigint",
    /* PG_S_COUNT */
    "SELECT count(c.k), count(c.expire_at),"
    " coalesce(avg(c.expire_at - t.now), 0)::bigint, min(t.now)"
    " FROM (SELECT " PG_NOW " AS now) t LEFT JOIN tally_counters c"
    " ON c.expire_at IS NULL OR c.expire_at > t.now",
    /* PG_S_FLUSH: how many live counters it deleted */
    "WITH d AS (DELETE FROM tally_counters RETURNING expire_at)"
    " SELECT count(*) FILTER (WHERE d.expire_at IS NULL OR d.expire_at > "
    PG_NOW "), " PG_NOW " FROM d",
    /* PG_S_PURGE ($1 rows at most of each table); rows a running
     * transaction holds (its placeholders) are skipped.  A row per counter
     * deleted (its key: the "expired" events), then one with a NULL key,
     * the counts and the clock.  Placeholders (expire_at 0) are no
     * counters: deleted, never reported. */
    "WITH t AS (SELECT " PG_NOW " AS now),"
    " a AS (DELETE FROM tally_counters WHERE k IN"
    "  (SELECT k FROM tally_counters WHERE expire_at <= (SELECT now FROM t)"
    "   ORDER BY expire_at LIMIT $1::bigint FOR UPDATE SKIP LOCKED)"
    "  AND expire_at <= (SELECT now FROM t) RETURNING k, expire_at),"
    " b AS (DELETE FROM tally_once WHERE id IN"
    "  (SELECT id FROM tally_once WHERE keep_until <= (SELECT now FROM t)"
    "   ORDER BY keep_until LIMIT $1::bigint FOR UPDATE SKIP LOCKED)"
    "  AND keep_until <= (SELECT now FROM t) RETURNING 1)"
    " SELECT k, NULL::bigint, NULL::bigint, NULL::bigint FROM a"
    "  WHERE expire_at <> 0"
    " UNION ALL SELECT NULL, (SELECT count(*) FROM a), (SELECT count(*) FROM b),"
    " (SELECT now FROM t)",
    /* PG_S_INFO */
    "SELECT current_setting('synchronous_commit'),"
    " current_setting('synchronous_standby_names'),"
    " (SELECT count(*) FROM pg_stat_replication"
    "  WHERE sync_state IN ('sync', 'quorum')),"
    " (SELECT count(*) FROM pg_stat_replication),"
    " pg_is_in_recovery()::integer, " PG_NOW,
    /* PG_S_COUNT_ONCE: PG_S_COUNT's four columns, then the ids kept and
     * the bytes their rows take (INFO, /metrics: a pass over both tables,
     * on request, never cached) */
    "SELECT count(c.k), count(c.expire_at),"
    " coalesce(avg(c.expire_at - t.now), 0)::bigint, min(t.now),"
    " (SELECT count(*) FROM tally_once o WHERE o.keep_until > min(t.now)),"
    " (SELECT coalesce(sum(pg_column_size(o.*)), 0)::bigint FROM tally_once o"
    "  WHERE o.keep_until > min(t.now))"
    " FROM (SELECT " PG_NOW " AS now) t LEFT JOIN tally_counters c"
    " ON c.expire_at IS NULL OR c.expire_at > t.now",
};

void pg_arr_bytea(struct buf *b, const char *const *v, const size_t *lens,
                  size_t n)
{
    static const char hex[] = "0123456789abcdef";
    buf_clear(b);
    buf_addc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_addc(b, ',');
        buf_adds(b, "\"\\\\x");
        buf_reserve(b, lens[i] * 2);
        for (size_t j = 0; j < lens[i]; j++) {
            unsigned char c = (unsigned char)v[i][j];
            b->p[b->len++] = hex[c >> 4];
            b->p[b->len++] = hex[c & 15];
        }
        buf_addc(b, '"');
    }
    buf_addc(b, '}');
}

void pg_arr_i64(struct buf *b, const int64_t *v, const unsigned char *null,
                size_t n)
{
    buf_clear(b);
    buf_addc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_addc(b, ',');
        if (null && null[i])
            buf_adds(b, "NULL");
        else
            buf_addi64(b, v[i]);
    }
    buf_addc(b, '}');
}

int64_t pg_get_i64(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | u[i];
    return (int64_t)v;
}

int32_t pg_get_i32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (int32_t)((uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 |
                     (uint32_t)u[2] << 8 | u[3]);
}
