"""The PostgreSQL store: a team server's runs in one database instead of one disk.

Records and points go in with COPY, in chunks (postgres_points.py: each record's fields once, a series' points
as record numbers and values, as the logbook's index keeps them), read back from a
cursor on and downsampled as the logbook store does; each run's (kind, seq) is stored once, under a lock on
the run's row, so two server processes on one database store a record once too. The schema is stepline's
own (postgres_schema.py).

    store = PostgresStore("postgresql://stepline@db.internal/stepline")
    store.runs("mnist")
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

from stepline import events
from stepline.config import heartbeat_timeout as configured_heartbeat_timeout
from stepline.errors import ConfigError, RunNotFoundError
from stepline.logbook import layout
from stepline.logbook.reader import derived_status
from stepline.names import check_name, check_project
from stepline.server.stores.base import (
    SeriesPoints,
    check_axis,
    check_project_deletable,
    check_run_deletable,
    oldest_first,
    opened_meta,
    overview,
    series_points,
)
from stepline.server.stores.postgres_accounts import PostgresAccounts
from stepline.server.stores.postgres_files import MEDIA_PREFIX, files_of
from stepline.server.stores.postgres_ingest import PostgresRunWriter
from stepline.server.stores.postgres_points import read_points
from stepline.server.stores.postgres_queries import LAST_ACTIVITY, meta_time, series_summaries
from stepline.server.stores.postgres_schema import jsonb, stored_text, upgrade
from stepline.urls import redacted

_NAMING_LOCK = 0x5E97  # the advisory lock class of open_named, per project and run name


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
                SELECT p.name, count(r.pk), coalesce(max({LAST_ACTIVITY}), p.created_at)
                FROM projects p LEFT JOIN runs r ON r.project = p.name AND r.meta->>'node_of' IS NULL
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
            rows = db.execute("SELECT pk, meta, params, metric_records FROM runs r WHERE project = %s "
                              "AND meta->>'node_of' IS NULL", (project,)).fetchall()  # parts show as their run
            metrics = series_summaries(db, [row[0] for row in rows])
        found = [self._overview(meta, params, records, metrics.get(pk, {})) for pk, meta, params, records in rows]
        return oldest_first(found)

    def run(self, project: str, run_id: str) -> dict[str, Any]:
        with self.pool.connection() as db:
            pk, meta, params, records = self._row(db, project, run_id, "pk, meta, params, metric_records")
            metrics = series_summaries(db, [pk]).get(pk, {})
        return {**self._overview(meta, params, records, metrics), "meta": meta}

    def meta(self, project: str, run_id: str) -> dict[str, Any]:
        with self.pool.connection() as db:
            return dict(self._row(db, project, run_id, "meta")[0])

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
        fields = ("step", "value") if check_axis(x) == "step" else ("step", "value", x)
        found = []
        with self.pool.connection() as db:
            [pk] = self._row(db, project, run_id, "pk")
            for key in keys:
                row = db.execute("SELECT pk, count FROM series WHERE run = %s AND key = %s",
                                 (pk, stored_text(key))).fetchone()
                if row is None:
                    found.append(SeriesPoints.empty(key))
                    continue
                series, count = row
                found.append(series_points(key, count, read_points(db, pk, series, after, fields), x, points))
        return found

    def metric_rows(self, project: str, run_id: str) -> list[tuple[int, dict[str, float]]]:
        with self.pool.connection() as db:
            [pk] = self._row(db, project, run_id, "pk")
            keys = db.execute("SELECT pk, key FROM series WHERE run = %s ORDER BY position", (pk,)).fetchall()
            points = [(key, read_points(db, pk, series, 0, ("seq", "step", "value"))) for series, key in keys]
        rows: dict[int, tuple[int, dict[str, float]]] = {}
        for key, arrays in points:  # keys in their order, each record's values in it
            for seq, step, value in zip(arrays["seq"].tolist(), arrays["step"].tolist(), arrays["value"].tolist()):
                rows.setdefault(seq, (step, {}))[1][key] = value
        return [rows[seq] for seq in sorted(rows)]

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
            return files_of(db, self._pk(project, run_id))

    def read_file(self, project: str, run_id: str, path: str) -> tuple[int, Iterator[bytes]]:
        return self._file(self._pk(project, run_id), path, f"run {run_id}'s file {path!r}")

    def media(self, project: str, run_id: str, key: str | None) -> list[dict[str, Any]]:
        pk = self._pk(project, run_id)
        with self.pool.connection() as db:
            rows = db.execute("SELECT record FROM records WHERE run = %s AND kind = %s ORDER BY seq",
                              (pk, events.MEDIA)).fetchall()
        return [record for (record,) in rows if key is None or record.get("key") == key]

    def media_file(self, project: str, run_id: str, name: str) -> tuple[int, Iterator[bytes]]:
        return self._file(self._pk(project, run_id), MEDIA_PREFIX + name, f"run {run_id}'s media file {name!r}")

    def _file(self, pk: int, path: str, what: str) -> tuple[int, Iterator[bytes]]:
        with self.pool.connection() as db:
            row = db.execute("SELECT size, chunks FROM files WHERE run = %s AND path = %s", (pk, path)).fetchone()
        if row is None:
            raise RunNotFoundError(f"there is no {what}")
        size, chunks = row

        def read() -> Iterator[bytes]:  # a chunk a query, so a large file never sits in memory whole
            for n in range(chunks):
                with self.pool.connection() as db:
                    chunk = db.execute("SELECT data FROM file_chunks WHERE run = %s AND path = %s AND n = %s",
                                       (pk, path, n)).fetchone()
                if chunk is None:
                    raise RunNotFoundError(f"{what} was replaced while being read")
                yield chunk[0]

        return size, read()

    def delete_run(self, project: str, run_id: str, *, force: bool = False) -> None:
        with self.pool.connection() as db:
            pk, meta = self._row(db, project, run_id, "pk, meta")
            check_run_deletable(run_id, derived_status(meta, self.heartbeat_timeout), force)
            db.execute("DELETE FROM point_chunks WHERE series IN (SELECT pk FROM series WHERE run = %s)", (pk,))
            db.execute("DELETE FROM record_chunks WHERE run = %s", (pk,))
            db.execute("DELETE FROM runs WHERE pk = %s", (pk,))
        with self._lock:
            self._writers.pop((project, run_id), None)

    def delete_project(self, project: str, *, force: bool = False) -> int:
        if not self.has_project(project):
            raise RunNotFoundError(f"no project {project!r}")
        runs = self.runs(project)
        check_project_deletable(project, runs, force)
        with self.pool.connection() as db:
            db.execute("DELETE FROM point_chunks WHERE series IN (SELECT s.pk FROM series s JOIN runs r "
                       "ON r.pk = s.run WHERE r.project = %s)", (project,))
            db.execute("DELETE FROM record_chunks WHERE run IN (SELECT pk FROM runs WHERE project = %s)", (project,))
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
                             f"AND meta->'tags' ? %s ORDER BY coalesce({meta_time('started_at', '')}, 0) DESC, "
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
                         (project, run_id, jsonb(meta))).fetchone()
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


def _create_project(db: psycopg.Connection, project: str) -> None:
    db.execute("INSERT INTO projects (name, created_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
               (project, time.time()))


def _configure(connection: psycopg.Connection) -> None:
    set_json_loads(orjson.loads, connection)
