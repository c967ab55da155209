"""The PostgreSQL store: a team server's runs in one database instead of one disk.

Points go in with COPY, one row per point, keyed by (series, place in the series); downsampling is one
grouped scan in SQL; each run's (kind, seq) is stored once, under a lock on the run's row, so two server
processes on one database store a record once too. The schema is stepline's own (postgres_schema.py).

    store = PostgresStore("postgresql://stepline@db.internal/stepline")
    store.runs("mnist")
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Collection, Iterator
from typing import Any

import numpy as np
import orjson
import psycopg
from psycopg.types.json import Jsonb, set_json_loads
from psycopg_pool import ConnectionPool

from stepline import events
from stepline.config import heartbeat_timeout as configured_heartbeat_timeout
from stepline.errors import ConfigError, RunNotFoundError
from stepline.logbook import layout
from stepline.logbook.metric_summary import MetricSummary
from stepline.logbook.reader import derived_status
from stepline.names import check_name, check_project
from stepline.params import apply_operation
from stepline.remote.shipper import redacted
from stepline.server.downsample import MIN_POINTS
from stepline.server.stores.base import (
    MadeRecords,
    RunState,
    SeriesPoints,
    check_axis,
    check_project_deletable,
    check_run_deletable,
    oldest_first,
    opened_meta,
    overview,
)
from stepline.server.stores.postgres_accounts import PostgresAccounts
from stepline.server.stores.postgres_schema import upgrade

CHUNK_BYTES = 1 << 20  # a file is kept as rows of this many bytes
_NAMING_LOCK = 0x5E97  # the advisory lock class of open_named, per project and run name
BLOCK = 64  # points a row of the blocks table summarises (postgres_schema.py)
_STANDARD_METRIC_FIELDS = {"type", "seq", "time", "step", "epoch", "values"}
_POINT_COLUMNS = ("i", "step", "value", "time", "epoch")
_SUMMARY_COLUMNS = "count, nan_count, last, last_step, min, min_step, max, max_step"  # MetricSummary's fields


def _meta_time(field: str, row: str = "r.") -> str:
    """SQL for a time field of a run's meta, NULL when it is not a number (never a failed cast)."""
    return f"CASE jsonb_typeof({row}meta->'{field}') WHEN 'number' THEN ({row}meta->>'{field}')::float8 END"


_LAST_ACTIVITY = f"coalesce({_meta_time('ended_at')}, {_meta_time('heartbeat_at')}, {_meta_time('started_at')})"


def _json(value: Any) -> Jsonb:
    # jsonb cannot hold U+0000: a NUL in a log line becomes U+2400 (the symbol for NUL) rather than fail the batch.
    return Jsonb(value, dumps=lambda v: orjson.dumps(v).decode().replace("\\u0000", "\u2400"))


def _text(value: str) -> str:
    return value.replace("\0", "\u2400")


class PostgresStore:
    """Runs in a PostgreSQL database; the schema is created or upgraded on opening."""

    def __init__(self, url: str, *, heartbeat_timeout: float | None = None, max_connections: int = 10) -> None:
        self.url = url
        self.heartbeat_timeout = heartbeat_timeout or configured_heartbeat_timeout()
        try:
            with psycopg.connect(url) as connection:
                self.schema_version = upgrade(connection)
        except psycopg.OperationalError as err:
            raise ConfigError(f"cannot open the PostgreSQL store {redacted(url)}: {str(err).strip()}") from None
        self.pool = ConnectionPool(url, min_size=1, max_size=max_connections, configure=_configure, open=True)
        self._writers: dict[tuple[str, str], PostgresRunWriter] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"{redacted(self.url)} (PostgreSQL, schema {self.schema_version})"

    def accounts(self) -> PostgresAccounts:
        return PostgresAccounts(self.pool)

    def projects(self) -> list[dict[str, Any]]:
        with self.pool.connection() as db:
            rows = db.execute(f"""
                SELECT p.name, count(r.pk), coalesce(max({_LAST_ACTIVITY}), p.created_at)
                FROM projects p LEFT JOIN runs r ON r.project = p.name
                GROUP BY p.name ORDER BY p.name""").fetchall()
        return [{"name": name, "runs": count, "last_activity": last} for name, count, last in rows]

    def create_project(self, project: str) -> None:
        with self.pool.connection() as db:
            _create_project(db, check_project(project))

    def has_project(self, project: str) -> bool:
        with self.pool.connection() as db:
            return db.execute("SELECT 1 FROM projects WHERE name = %s", (check_project(project),)).fetchone() \
                is not None

    def runs(self, project: str) -> list[dict[str, Any]]:
        check_project(project)
        with self.pool.connection() as db:
            rows = db.execute("SELECT pk, meta, params, metric_records FROM runs r WHERE project = %s",
                              (project,)).fetchall()
            metrics = _series_summaries(db, [row[0] for row in rows])
        found = [self._overview(meta, params, records, metrics.get(pk, {})) for pk, meta, params, records in rows]
        return oldest_first(found)

    def run(self, project: str, run_id: str) -> dict[str, Any]:
        with self.pool.connection() as db:
            pk, meta, params, records = self._row(db, project, run_id, "pk, meta, params, metric_records")
            metrics = _series_summaries(db, [pk]).get(pk, {})
        return {**self._overview(meta, params, records, metrics), "meta": meta}

    def runs_named(self, project: str, name: str) -> list[dict[str, Any]]:
        check_project(project)
        with self.pool.connection() as db:
            rows = db.execute("SELECT meta FROM runs WHERE project = %s AND meta->>'name' = %s",
                              (project, name)).fetchall()
        return oldest_first(meta for (meta,) in rows)

    def metric_keys(self, project: str, run_id: str) -> list[str]:
        with self.pool.connection() as db:
            [pk] = self._row(db, project, run_id, "pk")
            rows = db.execute("SELECT key FROM series WHERE run = %s ORDER BY position", (pk,)).fetchall()
        return [key for (key,) in rows]

    def series(self, project: str, run_id: str, keys: list[str], x: str, points: int | None,
               after: int) -> list[SeriesPoints]:
        column = _POINT_COLUMNS.index(check_axis(x))
        found = []
        with self.pool.connection() as db:
            [pk] = self._row(db, project, run_id, "pk")
            for key in keys:
                row = db.execute("SELECT pk, count, nan_count FROM series WHERE run = %s AND key = %s",
                                 (pk, _text(key))).fetchone()
                if row is None:
                    found.append(SeriesPoints.empty(key))
                    continue
                series, count, nan_count = row
                wanted = count - after
                downsampled = points is not None and wanted > max(points, MIN_POINTS)
                if points is not None and downsampled:
                    rows = _downsampled(db, series, after, count, points, nan_count > 0)
                else:
                    rows = db.execute("SELECT i, step, value, time, epoch FROM points WHERE series = %s AND i >= %s "
                                      "ORDER BY i", (series, after)).fetchall()
                table = np.array(rows, dtype=float).reshape(-1, len(_POINT_COLUMNS))
                found.append(SeriesPoints(key, count, downsampled, table[:, column], table[:, 2], table[:, 1]))
        return found

    def metric_rows(self, project: str, run_id: str) -> list[tuple[int, dict[str, float]]]:
        with self.pool.connection() as db:
            [pk] = self._row(db, project, run_id, "pk")
            points = db.execute("SELECT p.seq, p.step, s.key, p.value FROM points p JOIN series s ON s.pk = p.series "
                                "WHERE s.run = %s ORDER BY p.seq, s.position", (pk,)).fetchall()
        rows: dict[int, tuple[int, dict[str, float]]] = {}
        for seq, step, key, value in points:
            rows.setdefault(seq, (step, {}))[1][key] = value
        return list(rows.values())

    def logs(self, project: str, run_id: str, level: str | None, offset: int,
             limit: int) -> tuple[int, list[dict[str, Any]]]:
        where = "run = %s AND kind = 'log'"
        arguments: list[Any] = [self._pk(project, run_id)]
        if level:
            where += " AND record->>'level' = %s"
            arguments.append(level.upper())
        with self.pool.connection() as db:
            row = db.execute(f"SELECT count(*) FROM records WHERE {where}", arguments).fetchone()
            page = db.execute(f"SELECT record FROM records WHERE {where} ORDER BY seq OFFSET %s LIMIT %s",
                              [*arguments, offset, limit]).fetchall()
        return (row[0] if row else 0), [record for (record,) in page]

    def files(self, project: str, run_id: str) -> dict[str, int]:
        with self.pool.connection() as db:
            return _files(db, self._pk(project, run_id))

    def read_file(self, project: str, run_id: str, path: str) -> tuple[int, Iterator[bytes]]:
        pk = self._pk(project, run_id)
        with self.pool.connection() as db:
            row = db.execute("SELECT size, chunks FROM files WHERE run = %s AND path = %s", (pk, path)).fetchone()
        if row is None:
            raise RunNotFoundError(f"run {run_id} has no file {path!r}")
        size, chunks = row

        def read() -> Iterator[bytes]:  # a chunk a query, so a large file never sits in memory whole
            for n in range(chunks):
                with self.pool.connection() as db:
                    chunk = db.execute("SELECT data FROM file_chunks WHERE run = %s AND path = %s AND n = %s",
                                       (pk, path, n)).fetchone()
                if chunk is None:
                    raise RunNotFoundError(f"run {run_id}'s file {path!r} was replaced while being read")
                yield chunk[0]

        return size, read()

    def delete_run(self, project: str, run_id: str, *, force: bool = False) -> None:
        with self.pool.connection() as db:
            pk, meta = self._row(db, project, run_id, "pk, meta")
            check_run_deletable(run_id, derived_status(meta, self.heartbeat_timeout), force)
            for table in ("points", "blocks"):
                db.execute(f"DELETE FROM {table} WHERE series IN (SELECT pk FROM series WHERE run = %s)", (pk,))
            db.execute("DELETE FROM runs WHERE pk = %s", (pk,))
        with self._lock:
            self._writers.pop((project, run_id), None)

    def delete_project(self, project: str, *, force: bool = False) -> int:
        if not self.has_project(project):
            raise RunNotFoundError(f"no project {project!r}")
        runs = self.runs(project)
        check_project_deletable(project, runs, force)
        with self.pool.connection() as db:
            for table in ("points", "blocks"):
                db.execute(f"DELETE FROM {table} WHERE series IN (SELECT s.pk FROM series s JOIN runs r "
                           "ON r.pk = s.run WHERE r.project = %s)", (project,))
            db.execute("DELETE FROM projects WHERE name = %s", (project,))
        with self._lock:
            for key in [key for key in self._writers if key[0] == project]:
                del self._writers[key]
        return len(runs)

    def open(self, project: str, run_id: str, meta: dict[str, Any]) -> PostgresRunWriter:
        check_project(project)
        check_name(run_id, "run id")
        meta = opened_meta(project, run_id, meta)
        with self._lock:
            writer = self._writers.get((project, run_id))
        if writer is not None:
            try:
                writer.replace_meta(meta)
                return writer
            except RunNotFoundError:  # deleted through another server process since: made anew below
                with self._lock:
                    self._writers.pop((project, run_id), None)
        with self.pool.connection() as db:
            return self._insert(db, project, run_id, meta)

    def writer(self, project: str, run_id: str) -> PostgresRunWriter:
        with self._lock:
            writer = self._writers.get((project, run_id))
        if writer is not None:
            return writer
        with self.pool.connection() as db:
            row = db.execute("SELECT pk, meta, max_seq FROM runs WHERE project = %s AND id = %s",
                             (project, run_id)).fetchone()
        if row is None:
            raise RunNotFoundError(f"run {run_id} of project {project!r} was never opened: PUT it first")
        return self._cached(project, run_id, *row)

    def open_named(self, project: str, name: str, source: str, meta: dict[str, Any]) -> PostgresRunWriter:
        check_project(project)
        with self.pool.connection() as db:  # one connection throughout: a second one could wait on a full pool
            # Held until this transaction ends, after a run made below is committed: the next one finds it.
            db.execute("SELECT pg_advisory_xact_lock(%s::int4, hashtext(%s))", (_NAMING_LOCK, f"{project}/{name}"))
            row = db.execute(f"SELECT id, pk, meta, max_seq FROM runs WHERE project = %s AND meta->>'name' = %s "
                             f"AND meta->'tags' ? %s ORDER BY coalesce({_meta_time('started_at', '')}, 0) DESC, "
                             "id DESC LIMIT 1", (project, name, source)).fetchone()
            if row is not None:
                return self._cached(project, *row)
            run_id = layout.new_run_id()
            return self._insert(db, project, run_id, opened_meta(project, run_id, meta))

    def _insert(self, db: psycopg.Connection, project: str, run_id: str, meta: dict[str, Any]) -> PostgresRunWriter:
        """Make the run (or take ``meta`` for it, when it exists) in ``db``'s transaction; its writer."""
        _create_project(db, project)
        row = db.execute("INSERT INTO runs (project, id, meta) VALUES (%s, %s, %s) ON CONFLICT (project, id) "
                         "DO UPDATE SET meta = excluded.meta RETURNING pk, max_seq",
                         (project, run_id, _json(meta))).fetchone()
        assert row is not None
        return self._cached(project, run_id, row[0], meta, row[1])

    def _cached(self, project: str, run_id: str, pk: int, meta: dict[str, Any],
                max_seq: dict[str, int]) -> PostgresRunWriter:
        """The run's writer: the one this process has already, or a new one of this row."""
        with self._lock:
            return self._writers.setdefault((project, run_id), PostgresRunWriter(self.pool, pk, meta, max_seq))

    def close(self) -> None:
        self.pool.close()

    def _row(self, db: psycopg.Connection, project: str, run_id: str, columns: str) -> tuple[Any, ...]:
        check_project(project)
        check_name(run_id, "run id")
        row = db.execute(f"SELECT {columns} FROM runs WHERE project = %s AND id = %s",  # columns: ours, not a user's
                         (project, run_id)).fetchone()
        if row is None:
            raise RunNotFoundError(f"no run {run_id!r} in project {project!r}")
        return tuple(row)

    def _pk(self, project: str, run_id: str) -> int:
        with self.pool.connection() as db:
            return int(self._row(db, project, run_id, "pk")[0])

    def _overview(self, meta: dict[str, Any], params: dict[str, Any], records: int,
                  metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return overview(meta, derived_status(meta, self.heartbeat_timeout), params, records, metrics)


class PostgresRunWriter:
    """Appends one run's records in one transaction a batch, under a lock on the run's row (which serves
    threads and server processes alike)."""

    def __init__(self, pool: ConnectionPool, pk: int, meta: dict[str, Any], max_seq: dict[str, int]) -> None:
        self.pool = pool
        self.pk = pk
        self._meta = dict(meta)
        self.max_seq = dict(max_seq)

    @property
    def meta(self) -> dict[str, Any]:
        return self._meta

    def replace_meta(self, meta: dict[str, Any]) -> None:
        with self.pool.connection() as db:
            if db.execute("UPDATE runs SET meta = %s WHERE pk = %s", (_json(meta), self.pk)).rowcount == 0:
                raise RunNotFoundError("the run was deleted")
        self._meta = dict(meta)

    def append(self, records: list[dict[str, Any]]) -> tuple[int, int]:
        with self.pool.connection() as db:
            return self._append(db, records)

    def append_made(self, make: MadeRecords) -> int:
        with self.pool.connection() as db:  # one transaction: the row stays locked from reading to storing
            row = db.execute("SELECT max_seq, meta FROM runs WHERE pk = %s FOR UPDATE", (self.pk,)).fetchone()
            if row is None:
                raise RunNotFoundError("the run was deleted while records for it arrived")
            records, meta = make(RunState(row[0], row[1], lambda ids: _stored_log_ids(db, self.pk, ids)))
            if meta is not None:
                db.execute("UPDATE runs SET meta = %s WHERE pk = %s", (_json(meta), self.pk))
                self._meta = dict(meta)
            return self._append(db, records)[0] if records else 0

    def _append(self, db: psycopg.Connection, records: list[dict[str, Any]]) -> tuple[int, int]:
        """Store the records not stored yet, in ``db``'s transaction, under the lock on the run's row."""
        row = db.execute("SELECT max_seq, params, metric_records FROM runs WHERE pk = %s FOR UPDATE",
                         (self.pk,)).fetchone()
        if row is None:
            raise RunNotFoundError("the run was deleted while records for it arrived")
        max_seq, params, metric_records = row
        fresh = []
        for record in records:
            kind = record["type"]
            if kind in max_seq:
                if record["seq"] <= max_seq[kind]:
                    continue  # sent again after a lost answer: already stored
                max_seq[kind] = record["seq"]
            fresh.append(record)
        metrics = [r for r in fresh if r["type"] == events.METRICS]
        if metrics:
            self._append_points(db, metrics)
        kept = [(r["type"], r["seq"], r) for r in fresh if r["type"] in (events.PARAMS, events.LOG)]
        kept += [(events.METRICS, r["seq"], extra) for r in metrics
                 if (extra := {k: v for k, v in r.items() if k not in _STANDARD_METRIC_FIELDS})]
        if kept:
            with db.cursor().copy("COPY records (run, kind, seq, record) FROM STDIN") as copy:
                for kind, seq, record in kept:
                    copy.write_row((self.pk, kind, seq, _json(record)))
        for record in fresh:
            if record["type"] == events.PARAMS:
                apply_operation(params, record)
        db.execute("UPDATE runs SET max_seq = %s, params = %s, metric_records = %s WHERE pk = %s",
                   (_json(max_seq), _json(params), metric_records + len(metrics), self.pk))
        self.max_seq = max_seq
        return len(fresh), len(records) - len(fresh)

    def _append_points(self, db: psycopg.Connection, metrics: list[dict[str, Any]]) -> None:
        series = {key: _SeriesState(pk, MetricSummary(*stats)) for pk, key, *stats in db.execute(
            f"SELECT pk, key, {_SUMMARY_COLUMNS} FROM series WHERE run = %s", (self.pk,))}
        for record in metrics:  # new series first: no other statement may run on the connection during COPY
            for key in record["values"]:
                key = _text(key)
                if key not in series:
                    series[key] = _SeriesState.created(db, self.pk, key, len(series))
        changed: set[str] = set()
        blocks: dict[tuple[int, int], list[Any]] = {}  # (series, block) -> [lo, lo_i, hi, hi_i, nan_i]
        with db.cursor().copy("COPY points (series, i, seq, step, value, time, epoch) FROM STDIN "
                              "(FORMAT BINARY)") as copy:
            copy.set_types(["int8", "int8", "int8", "int8", "float8", "float8", "float8"])
            for record in metrics:
                seq, step, when = record["seq"], record.get("step", 0), record.get("time", math.nan)
                epoch = record.get("epoch")
                epoch = math.nan if epoch is None else float(epoch)
                for key, value in record["values"].items():
                    key = _text(key)
                    state = series[key]
                    value = float(value)
                    i = state.stats.count
                    copy.write_row((state.pk, i, seq, step, value, when, epoch))
                    state.stats.add(step, value)
                    changed.add(key)
                    block = blocks.get((state.pk, i // BLOCK))
                    if block is None:
                        block = blocks[(state.pk, i // BLOCK)] = [None, None, None, None, None]
                    if value != value:
                        if block[4] is None:
                            block[4] = i
                    else:
                        if block[0] is None or value < block[0]:
                            block[0], block[1] = value, i
                        if block[2] is None or value > block[2]:
                            block[2], block[3] = value, i
        db.cursor().executemany(
            "UPDATE series SET count = %s, nan_count = %s, last = %s, last_step = %s, min = %s, min_step = %s, "
            "max = %s, max_step = %s WHERE pk = %s", [series[key].row() for key in changed])
        # A block begun by an earlier batch keeps its first extremes: the new points come after them.
        db.cursor().executemany("""
            INSERT INTO blocks (series, block, lo, lo_i, hi, hi_i, nan_i) VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (series, block) DO UPDATE SET
                lo = CASE WHEN blocks.lo IS NULL OR excluded.lo < blocks.lo THEN excluded.lo ELSE blocks.lo END,
                lo_i = CASE WHEN blocks.lo IS NULL OR excluded.lo < blocks.lo THEN excluded.lo_i ELSE blocks.lo_i END,
                hi = CASE WHEN blocks.hi IS NULL OR excluded.hi > blocks.hi THEN excluded.hi ELSE blocks.hi END,
                hi_i = CASE WHEN blocks.hi IS NULL OR excluded.hi > blocks.hi THEN excluded.hi_i ELSE blocks.hi_i END,
                nan_i = coalesce(blocks.nan_i, excluded.nan_i)""",
            [(pk, block, *stats) for (pk, block), stats in blocks.items()])

    def files(self) -> dict[str, int]:
        with self.pool.connection() as db:
            return _files(db, self.pk)

    def receive_file(self, path: str) -> _FileReceiver:
        return _FileReceiver(self.pool, self.pk, path)



class _SeriesState:
    """A series' row while a batch is appended to it: its pk, its next place (the count) and its summary."""

    __slots__ = ("pk", "stats")

    def __init__(self, pk: int, stats: MetricSummary) -> None:
        self.pk, self.stats = pk, stats

    @classmethod
    def created(cls, db: psycopg.Connection, run: int, key: str, position: int) -> _SeriesState:
        row = db.execute("INSERT INTO series (run, key, position) VALUES (%s, %s, %s) RETURNING pk",
                         (run, key, position)).fetchone()
        assert row is not None
        return cls(row[0], MetricSummary())

    def row(self) -> tuple[Any, ...]:
        stats = self.stats
        return (stats.count, stats.nan_count, stats.last, stats.last_step, stats.min, stats.min_step, stats.max,
                stats.max_step, self.pk)


class _FileReceiver:
    """An upload written in one transaction: the old file stays readable until the new one is whole."""

    def __init__(self, pool: ConnectionPool, run: int, path: str) -> None:
        self.pool, self.run, self.path = pool, run, path
        self.db = pool.getconn()
        self.db.execute("DELETE FROM files WHERE run = %s AND path = %s", (run, path))
        self.db.execute("INSERT INTO files (run, path, size, chunks) VALUES (%s, %s, 0, 0)", (run, path))
        self.buffer = bytearray()
        self.size = 0
        self.chunks = 0

    def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        self.size += len(chunk)
        while len(self.buffer) >= CHUNK_BYTES:
            self._store(bytes(self.buffer[:CHUNK_BYTES]))
            del self.buffer[:CHUNK_BYTES]

    def commit(self) -> int:
        try:
            if self.buffer or not self.chunks:
                self._store(bytes(self.buffer))
            self.db.execute("UPDATE files SET size = %s, chunks = %s WHERE run = %s AND path = %s",
                            (self.size, self.chunks, self.run, self.path))
            self.db.commit()
        finally:
            self.pool.putconn(self.db)
        return self.size

    def abort(self) -> None:
        self.db.rollback()
        self.pool.putconn(self.db)

    def _store(self, data: bytes) -> None:
        self.db.execute("INSERT INTO file_chunks (run, path, n, data) VALUES (%s, %s, %s, %s)",
                        (self.run, self.path, self.chunks, data))
        self.chunks += 1


def _downsampled(db: psycopg.Connection, series: int, after: int, count: int, points: int,
                 has_nan: bool) -> list[tuple[Any, ...]]:
    """keep_extremes (downsample.py) in SQL: per bucket the first minimum, the first maximum and the first
    NaN, plus the first and last point. Buckets of whole blocks read the blocks table (1/64 of the rows)."""
    points = max(points, MIN_POINTS)
    wanted = count - after
    size = -(-wanted // ((points - 2) // (3 if has_nan else 2)))
    if after % BLOCK == 0 and size >= BLOCK:
        per_bucket = -(-size // BLOCK)  # blocks a bucket, rounded up: never more than `points` points
        buckets = db.execute("""
            SELECT min(ARRAY[lo, lo_i]) FILTER (WHERE lo IS NOT NULL),
                   max(ARRAY[hi, -hi_i]) FILTER (WHERE hi IS NOT NULL),
                   min(nan_i)
            FROM blocks WHERE series = %s AND block >= %s GROUP BY (block - %s) / %s""",
                             (series, after // BLOCK, after // BLOCK, per_bucket)).fetchall()
    else:
        buckets = db.execute("""
            SELECT min(ARRAY[value, i]) FILTER (WHERE value <> 'NaN'),
                   max(ARRAY[value, -i]) FILTER (WHERE value <> 'NaN'),
                   min(i) FILTER (WHERE value = 'NaN')
            FROM points WHERE series = %s AND i >= %s GROUP BY (i - %s) / %s""",
                             (series, after, after, size)).fetchall()
    keep = {after, count - 1}
    for low, high, nan in buckets:
        if low is not None:
            keep.update((int(low[1]), -int(high[1])))
        if nan is not None:
            keep.add(nan)
    # bigint[] said outright: a list of small ints would go over as a type the points index cannot serve
    return db.execute("SELECT i, step, value, time, epoch FROM points WHERE series = %s AND i = ANY(%s::bigint[]) "
                      "ORDER BY i", (series, sorted(keep))).fetchall()


def _series_summaries(db: psycopg.Connection, runs: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
    found: dict[int, dict[str, dict[str, Any]]] = {}
    for run, key, *stats in db.execute(f"SELECT run, key, {_SUMMARY_COLUMNS} FROM series "
                                       "WHERE run = ANY(%s::bigint[]) ORDER BY run, position", (runs,)):
        found.setdefault(run, {})[key] = MetricSummary(*stats).as_dict()
    return found


def _stored_log_ids(db: psycopg.Connection, run: int, log_ids: Collection[str]) -> set[str]:
    rows = db.execute("SELECT record->>'log_id' FROM records WHERE run = %s AND record ? 'log_id' "
                      "AND record->>'log_id' = ANY(%s)", (run, list(log_ids))).fetchall()
    return {log_id for (log_id,) in rows}


def _files(db: psycopg.Connection, run: int) -> dict[str, int]:
    rows = db.execute("SELECT path, size FROM files WHERE run = %s ORDER BY path", (run,)).fetchall()
    return dict(rows)


def _create_project(db: psycopg.Connection, project: str) -> None:
    db.execute("INSERT INTO projects (name, created_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
               (project, time.time()))


def _configure(connection: psycopg.Connection) -> None:
    set_json_loads(orjson.loads, connection)
