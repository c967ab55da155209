"""The PostgreSQL store's schema, created and upgraded by stepline itself.

Each migration is applied once, in order, inside one transaction under an advisory lock, and recorded in
``stepline_schema``: a newer stepline upgrades an older database when it opens it, and an older stepline
refuses a database that a newer one has upgraded. Never edit a migration that has shipped; add the next.

    upgrade(connection)          # -> the schema version the database now has
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from stepline.errors import ConfigError

_LOCK = 0x5E971E  # the advisory lock two servers starting at once take turns on
SUMMARY_COLUMNS = "count, nan_count, last, last_step, min, min_step, max, max_step"  # MetricSummary's fields


def jsonb(value: Any) -> Jsonb:
    """A value for a jsonb column."""
    # jsonb cannot hold U+0000: a NUL in a log line becomes U+2400 (the symbol for NUL) rather than fail the batch.
    return Jsonb(value, dumps=lambda v: orjson.dumps(v).decode().replace("\\u0000", "\u2400"))


def stored_text(value: str) -> str:
    """Text for a text column: NUL, which PostgreSQL cannot hold, as U+2400."""
    return value.replace("\0", "\u2400")

MIGRATIONS: Sequence[tuple[int, str]] = (
    (1, """
    CREATE TABLE projects (
        name text PRIMARY KEY,
        created_at double precision NOT NULL
    );
    CREATE TABLE runs (
        pk bigserial PRIMARY KEY,
        project text NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
        id text NOT NULL,
        meta jsonb NOT NULL,
        params jsonb NOT NULL DEFAULT '{}',
        max_seq jsonb NOT NULL DEFAULT '{"metrics": 0, "params": 0, "log": 0}',
        metric_records bigint NOT NULL DEFAULT 0,
        UNIQUE (project, id)
    );
    -- One row per metric of a run, with what the runs list shows of it, kept current on ingest.
    CREATE TABLE series (
        pk bigserial PRIMARY KEY,
        run bigint NOT NULL REFERENCES runs (pk) ON DELETE CASCADE,
        key text NOT NULL,
        position integer NOT NULL,
        count bigint NOT NULL DEFAULT 0,
        nan_count bigint NOT NULL DEFAULT 0,
        last double precision, last_step bigint,
        min double precision, min_step bigint,
        max double precision, max_step bigint,
        UNIQUE (run, key)
    );
    -- The points: i is the point's place in its series, so a range of a series is one index range.
    -- No foreign key, whose per-row check would halve COPY's speed: deletes remove points first.
    CREATE TABLE points (
        series bigint NOT NULL,
        i bigint NOT NULL,
        seq bigint NOT NULL,
        step bigint NOT NULL,
        value double precision NOT NULL,
        time double precision NOT NULL,
        epoch double precision NOT NULL,
        PRIMARY KEY (series, i)
    );
    -- Each run of BLOCK (64) points of a series, summarised on ingest: downsampling a long series reads
    -- these instead of every point. lo/hi are the first minimum and maximum (NaN left out), nan_i the first NaN.
    CREATE TABLE blocks (
        series bigint NOT NULL,
        block bigint NOT NULL,
        lo double precision, lo_i bigint,
        hi double precision, hi_i bigint,
        nan_i bigint,
        PRIMARY KEY (series, block)
    );
    -- params and log records whole; of a metrics record, the fields beyond type/seq/time/step/epoch/values.
    CREATE TABLE records (
        run bigint NOT NULL REFERENCES runs (pk) ON DELETE CASCADE,
        kind text NOT NULL,
        seq bigint NOT NULL,
        record jsonb NOT NULL,
        PRIMARY KEY (run, kind, seq)
    );
    CREATE TABLE files (
        run bigint NOT NULL REFERENCES runs (pk) ON DELETE CASCADE,
        path text NOT NULL,
        size bigint NOT NULL,
        chunks integer NOT NULL,
        PRIMARY KEY (run, path)
    );
    CREATE TABLE file_chunks (
        run bigint NOT NULL,
        path text NOT NULL,
        n integer NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (run, path, n),
        FOREIGN KEY (run, path) REFERENCES files (run, path) ON DELETE CASCADE
    );
    """),
    (2, """
    -- A server's users and API tokens (hashes only), shared by every server process on the database.
    CREATE TABLE users (
        name text PRIMARY KEY,
        created_at double precision NOT NULL,
        password text
    );
    CREATE TABLE tokens (
        id text PRIMARY KEY,
        user_name text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        hash text NOT NULL,
        projects text[],
        created_at double precision NOT NULL
    );
    -- LMTracker's and Trackio's clients name their run on every request.
    CREATE INDEX runs_name ON runs (project, (meta->>'name'));
    -- Trackio's idempotency keys, looked up under the run's lock before each of its batches is stored.
    CREATE INDEX records_log_id ON records (run, (record->>'log_id')) WHERE record ? 'log_id';
    """),
    (3, """
    -- The points in chunks: a row holds up to 65,536 consecutive points of a series (places first_i to
    -- first_i + n - 1), each field an array of big-endian 8-byte numbers (int8send / float8send's bytes). A
    -- row a point cost PostgreSQL ~2 us a point on ingest; a chunk costs it next to nothing a point.
    CREATE TABLE chunks (
        series bigint NOT NULL,
        first_i bigint NOT NULL,
        n integer NOT NULL,
        seq bytea NOT NULL,
        step bytea NOT NULL,
        value bytea NOT NULL,
        time bytea NOT NULL,
        epoch bytea NOT NULL,
        PRIMARY KEY (series, first_i)
    );
    -- Stored as they are: compressing numbers (pglz) cost more CPU than the rest of an ingest and saves little.
    ALTER TABLE chunks ALTER COLUMN seq SET STORAGE EXTERNAL, ALTER COLUMN step SET STORAGE EXTERNAL,
        ALTER COLUMN value SET STORAGE EXTERNAL, ALTER COLUMN time SET STORAGE EXTERNAL,
        ALTER COLUMN epoch SET STORAGE EXTERNAL;
    INSERT INTO chunks
        SELECT series, min(i), count(*)::integer,
               string_agg(int8send(seq), ''::bytea ORDER BY i), string_agg(int8send(step), ''::bytea ORDER BY i),
               string_agg(float8send(value), ''::bytea ORDER BY i),
               string_agg(float8send(time), ''::bytea ORDER BY i),
               string_agg(float8send(epoch), ''::bytea ORDER BY i)
        FROM points GROUP BY series, i / 65536;
    -- Downsampling reads the chunks (downsample.py, as the folder store does): no block summaries to keep.
    DROP TABLE points;
    DROP TABLE blocks;
    """),
    (4, """
    -- The points in the logbook index's layout: a metrics record's seq, step, time and epoch once, in its run's
    -- record chunks (records numbered from 0 in stored order), and a series' points as (record number, value).
    -- Per point of a record of 8 metrics: 12 bytes and 4 of the record's, against 40 as schema 3 kept them,
    -- which was most of PostgreSQL's work on ingest.
    CREATE TABLE record_chunks (
        run bigint NOT NULL,
        first_i bigint NOT NULL,
        n integer NOT NULL,
        seq bytea NOT NULL,
        step bytea NOT NULL,
        time bytea NOT NULL,
        epoch bytea NOT NULL,
        PRIMARY KEY (run, first_i)
    );
    CREATE TABLE point_chunks (
        series bigint NOT NULL,
        first_i bigint NOT NULL,
        n integer NOT NULL,
        record bytea NOT NULL,  -- 4-byte big-endian record numbers
        value bytea NOT NULL,
        PRIMARY KEY (series, first_i)
    );
    ALTER TABLE record_chunks ALTER COLUMN seq SET STORAGE EXTERNAL, ALTER COLUMN step SET STORAGE EXTERNAL,
        ALTER COLUMN time SET STORAGE EXTERNAL, ALTER COLUMN epoch SET STORAGE EXTERNAL;
    ALTER TABLE point_chunks ALTER COLUMN record SET STORAGE EXTERNAL, ALTER COLUMN value SET STORAGE EXTERNAL;
    -- Each point of the old chunks; its fields as their 8 bytes (a seq's big-endian bytes sort as the seq does).
    CREATE TEMPORARY TABLE old_points ON COMMIT DROP AS
        SELECT s.run, c.series, c.first_i + k AS i, substring(c.seq FROM k * 8 + 1 FOR 8) AS seq,
               substring(c.step FROM k * 8 + 1 FOR 8) AS step, substring(c.value FROM k * 8 + 1 FOR 8) AS value,
               substring(c.time FROM k * 8 + 1 FOR 8) AS time, substring(c.epoch FROM k * 8 + 1 FOR 8) AS epoch
        FROM chunks c JOIN series s ON s.pk = c.series, generate_series(0, c.n - 1) AS k;
    CREATE TEMPORARY TABLE old_records ON COMMIT DROP AS
        SELECT run, seq, step, time, epoch, row_number() OVER (PARTITION BY run ORDER BY seq) - 1 AS r
        FROM (SELECT DISTINCT ON (run, seq) run, seq, step, time, epoch FROM old_points ORDER BY run, seq) AS one;
    INSERT INTO record_chunks
        SELECT run, min(r), count(*)::integer, string_agg(seq, ''::bytea ORDER BY r),
               string_agg(step, ''::bytea ORDER BY r), string_agg(time, ''::bytea ORDER BY r),
               string_agg(epoch, ''::bytea ORDER BY r)
        FROM old_records GROUP BY run, r / 65536;
    INSERT INTO point_chunks
        SELECT p.series, min(p.i), count(*)::integer, string_agg(int4send(r.r::integer), ''::bytea ORDER BY p.i),
               string_agg(p.value, ''::bytea ORDER BY p.i)
        FROM old_points p JOIN old_records r ON r.run = p.run AND r.seq = p.seq GROUP BY p.series, p.i / 65536;
    UPDATE runs SET metric_records = (SELECT count(*) FROM old_records r WHERE r.run = runs.pk);
    DROP TABLE chunks;
    """),
)


def upgrade(connection: psycopg.Connection, migrations: Sequence[tuple[int, str]] = MIGRATIONS) -> int:
    """Apply the migrations the database has not had yet; the schema version it has afterwards."""
    newest = migrations[-1][0]
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        connection.execute("CREATE TABLE IF NOT EXISTS stepline_schema (version integer PRIMARY KEY, "
                           "applied_at timestamptz NOT NULL DEFAULT now())")
        row = connection.execute("SELECT coalesce(max(version), 0) FROM stepline_schema").fetchone()
        current = row[0] if row else 0
        if current > newest:
            raise ConfigError(f"this database's stepline schema is version {current}, made by a newer stepline than "
                              f"this one (which knows up to {newest}): upgrade stepline (pip install -U stepline)")
        for version, statements in migrations:
            if version > current:
                connection.execute(statements.encode())
                connection.execute("INSERT INTO stepline_schema (version) VALUES (%s)", (version,))
    return max(current, newest)
