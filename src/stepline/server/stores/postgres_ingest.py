"""The PostgreSQL store's ingest: one run's records appended in one transaction a batch, under a lock on the
run's row; records and points go in as chunks (postgres_points.py) with binary COPY, and each metric's summary
is kept up to date as they arrive.

    writer = PostgresRunWriter(pool, pk, meta, max_seq)
    writer.append(records)     # (stored, duplicates)
"""

from __future__ import annotations

from collections.abc import Collection
from operator import itemgetter
from typing import Any

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool

from stepline import events
from stepline.errors import RunNotFoundError
from stepline.logbook.columns import MAX_RECORDS, Column, Columns, epochs_or_nan
from stepline.logbook.metric_summary import MetricSummary
from stepline.metrics_batch import ReceivedLines
from stepline.params import apply_operation
from stepline.server.stores.base import IDEMPOTENCY_KEY, MadeRecords, RunState, not_stored_yet
from stepline.server.stores.postgres_files import MEDIA_PREFIX, FileReceiver, files_of
from stepline.server.stores.postgres_points import POINTS, RECORDS, chunk_rows
from stepline.server.stores.postgres_schema import SUMMARY_COLUMNS, jsonb, stored_text

STANDARD_METRIC_FIELDS = frozenset(("type", "seq", "time", "step", "epoch", "values"))


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
            if db.execute("UPDATE runs SET meta = %s WHERE pk = %s", (jsonb(meta), self.pk)).rowcount == 0:
                raise RunNotFoundError("the run was deleted")
        self._meta = dict(meta)

    def append(self, records: list[dict[str, Any]], lines: list[bytes] | None = None) -> tuple[int, int]:
        with self.pool.connection() as db:  # the lines go unused: points are stored in columns
            return self._append(db, records)

    def append_lines(self, received: ReceivedLines) -> tuple[int, int]:
        with self.pool.connection() as db:
            row = db.execute("SELECT max_seq, metric_records FROM runs WHERE pk = %s FOR UPDATE", (self.pk,)).fetchone()
            if row is None:
                raise RunNotFoundError("the run was deleted while records for it arrived")
            max_seq, metric_records = row
            stored = max_seq.get(events.METRICS, 0)
            if received.last_seq <= stored:  # sent again after a lost answer
                return 0, len(received)
            if received.first_seq <= stored:  # partly: by the general rule
                return self._append(db, received.records)
            columns = Columns()  # a shipper's next batch: its points from the columns read natively
            columns.add_columns(received.columns())
            self._store_points(db, columns, np.frombuffer(received.seqs(), np.int64), metric_records)
            max_seq[events.METRICS] = received.last_seq
            db.execute("UPDATE runs SET max_seq = %s, metric_records = %s WHERE pk = %s",
                       (jsonb(max_seq), metric_records + len(received), self.pk))
            self.max_seq = max_seq
            return len(received), 0

    def append_made(self, make: MadeRecords) -> int:
        with self.pool.connection() as db:  # one transaction: the row stays locked from reading to storing
            row = db.execute("SELECT max_seq, meta FROM runs WHERE pk = %s FOR UPDATE", (self.pk,)).fetchone()
            if row is None:
                raise RunNotFoundError("the run was deleted while records for it arrived")
            records, meta = make(RunState(row[0], row[1], lambda keys: stored_keys(db, self.pk, keys)))
            if meta is not None:
                db.execute("UPDATE runs SET meta = %s WHERE pk = %s", (jsonb(meta), self.pk))
                self._meta = dict(meta)
            return self._append(db, records)[0] if records else 0

    def _append(self, db: psycopg.Connection, records: list[dict[str, Any]]) -> tuple[int, int]:
        """Store the records not stored yet, in ``db``'s transaction, under the lock on the run's row."""
        row = db.execute("SELECT max_seq, params, metric_records FROM runs WHERE pk = %s FOR UPDATE",
                         (self.pk,)).fetchone()
        if row is None:
            raise RunNotFoundError("the run was deleted while records for it arrived")
        max_seq, params, metric_records = row
        max_seq.setdefault(events.MEDIA, 0)  # a run made before media were shipped
        fresh = not_stored_yet(records, max_seq)
        # A shipper's batch is all metrics with the standard fields: found at C speed, not a record at a time.
        only_metrics = list(map(itemgetter("type"), fresh)).count(events.METRICS) == len(fresh)
        metrics = fresh if only_metrics else [r for r in fresh if r["type"] == events.METRICS]
        if metrics:
            columns = Columns()
            columns.add_records(metrics)
            seqs = np.fromiter(map(itemgetter("seq"), metrics), np.int64, len(metrics))
            self._store_points(db, columns, seqs, metric_records)
        kept = [] if only_metrics else [(r["type"], r["seq"], r) for r in fresh
                                        if r["type"] in (events.PARAMS, events.LOG, events.MEDIA)]
        if not all(map(STANDARD_METRIC_FIELDS.issuperset, metrics)):
            kept += [(events.METRICS, r["seq"], {k: v for k, v in r.items() if k not in STANDARD_METRIC_FIELDS})
                     for r in metrics if not STANDARD_METRIC_FIELDS.issuperset(r)]
        if kept:
            with db.cursor().copy("COPY records (run, kind, seq, record) FROM STDIN") as copy:
                for kind, seq, record in kept:
                    copy.write_row((self.pk, kind, seq, jsonb(record)))
        if not only_metrics:
            for record in fresh:
                if record["type"] == events.PARAMS:
                    apply_operation(params, record)
        db.execute("UPDATE runs SET max_seq = %s, params = %s, metric_records = %s WHERE pk = %s",
                   (jsonb(max_seq), jsonb(params), metric_records + len(metrics), self.pk))
        self.max_seq = max_seq
        return len(fresh), len(records) - len(fresh)

    def _store_points(self, db: psycopg.Connection, columns: Columns, seqs: np.ndarray, first_record: int) -> None:
        """A batch's records (taken into ``columns``, with their ``seqs``; numbered in the run from
        ``first_record``) and their points, sent as chunks with binary COPY; each series' summary updated from the
        columns."""
        series = {key: SeriesState(pk, MetricSummary(*stats)) for pk, key, *stats in db.execute(
            f"SELECT pk, key, {SUMMARY_COLUMNS} FROM series WHERE run = %s", (self.pk,))}
        columns.settle()
        by_key: dict[str, list[Column]] = {}  # text PostgreSQL holds -> the batch's metrics stored under it
        for column in columns.values():
            by_key.setdefault(stored_text(column.key), []).append(column)
        for key in by_key:  # new series first: no other statement may run on the connection during COPY
            if key not in series:
                series[key] = SeriesState.created(db, self.pk, key, len(series))
        steps, times = columns.pending.field("step"), columns.pending.field("time")
        epochs = columns.pending.field("epoch")
        epochs = epochs_or_nan(epochs)
        if first_record + len(seqs) > MAX_RECORDS:
            raise OverflowError(f"a run holds at most {MAX_RECORDS} metrics records")
        points = []
        for key, found in by_key.items():
            numbers, values = _points_of(found)
            state = series[key]
            points += chunk_rows(POINTS, state.pk, state.stats.count, record=numbers + first_record, value=values)
            state.stats.add_many(steps[numbers], values)
        records = chunk_rows(RECORDS, self.pk, first_record, seq=seqs, step=steps, time=times, epoch=epochs)
        for table, rows in ((RECORDS, records), (POINTS, points)):
            with db.cursor().copy(table.copy_statement) as copy:
                copy.set_types(table.copy_types)
                for row in rows:
                    copy.write_row(row)
        db.cursor().executemany(
            "UPDATE series SET count = %s, nan_count = %s, last = %s, last_step = %s, min = %s, min_step = %s, "
            "max = %s, max_step = %s WHERE pk = %s", [series[key].row() for key in by_key])

    def files(self) -> dict[str, int]:
        with self.pool.connection() as db:
            return files_of(db, self.pk)

    def receive_file(self, path: str) -> FileReceiver:
        return FileReceiver(self.pool, self.pk, path)

    def receive_media(self, name: str) -> FileReceiver:
        return FileReceiver(self.pool, self.pk, MEDIA_PREFIX + name)


class SeriesState:
    """A series' row while a batch is appended to it: its pk, its next place (the count) and its summary."""

    __slots__ = ("pk", "stats")

    def __init__(self, pk: int, stats: MetricSummary) -> None:
        self.pk, self.stats = pk, stats

    @classmethod
    def created(cls, db: psycopg.Connection, run: int, key: str, position: int) -> SeriesState:
        row = db.execute("INSERT INTO series (run, key, position) VALUES (%s, %s, %s) RETURNING pk",
                         (run, key, position)).fetchone()
        assert row is not None
        return cls(row[0], MetricSummary())

    def row(self) -> tuple[Any, ...]:
        stats = self.stats
        return (stats.count, stats.nan_count, stats.last, stats.last_step, stats.min, stats.min_step, stats.max,
                stats.max_step, self.pk)


def _points_of(columns: list[Column]) -> tuple[np.ndarray, np.ndarray]:
    """(record numbers, values) of the batch's points of one series: of one metric, or, where two keys are
    stored as one text (a NUL and U+2400), of both, in logged order."""
    if len(columns) == 1:
        return columns[0].pending.field("record").astype(np.intp), columns[0].pending.field("value")
    numbers = np.concatenate([column.pending.field("record") for column in columns])
    values = np.concatenate([column.pending.field("value") for column in columns])
    order = np.argsort(numbers, kind="stable")
    return numbers[order].astype(np.intp), values[order]


def stored_keys(db: psycopg.Connection, run: int, keys: Collection[str]) -> set[str]:
    """Which of ``keys`` the run holds as idempotency keys (records' IDEMPOTENCY_KEY field, indexed)."""
    rows = db.execute(f"SELECT record->>'{IDEMPOTENCY_KEY}' FROM records WHERE run = %s AND record ? "
                      f"'{IDEMPOTENCY_KEY}' AND record->>'{IDEMPOTENCY_KEY}' = ANY(%s)", (run, list(keys))).fetchall()
    return {key for (key,) in rows}
