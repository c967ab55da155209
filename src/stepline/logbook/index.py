"""The logbook's index of a run's metrics: what `metrics.jsonl` holds, in columns, so that readers never parse
the JSON to answer (docs/format.md, "The index").

    index = MetricIndex.read(run_path)     # the index on disk, and the file's lines past what it covers
    index.columns["train/loss"].summary    # count, last, min and max with their steps
    index.series("train/loss")             # every point: {"step": array, "value": array, "time": ..., ...}

``metrics.jsonl`` stays the source of truth. ``index/state.json`` says how many bytes of it the index covers
(and a checksum of its head), and how many rows are valid of each field's file: the records' (one row per
metrics record: ``index/records.step``, ``.time``, ``.epoch``) and each metric's (``index/<n>.record``,
``index/<n>.value``). It is replaced atomically after the rows it counts are written, so a process killed at
any moment leaves an index that is valid up to its state, and rows past what the state counts are ignored.
What lies past the covered bytes is read from the JSONL. An index that does not match its file is rebuilt,
never served.

One process at a time keeps a run's index (the run's writer, else a reader catching up on a large tail): it
holds an advisory lock on ``index/lock``, so a killed owner releases it.
"""

from __future__ import annotations

import os
from itertools import repeat
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import orjson

from stepline import events
from stepline.logbook import layout
from stepline.logbook.columns import POINT_FIELDS, RECORD_FIELDS, Columns, Pending
from stepline.logbook.index_files import (
    LOCK_FILE,
    RECORDS,
    STATE_FILE,
    TornIndexError,
    columns_of,
    field_file,
    head_of,
    locked,
    parse_field_file,
    state_of,
)
from stepline.logbook.metric_summary import MetricSummary
from stepline.logbook.tail import RecordTail

if TYPE_CHECKING:
    from stepline.metrics_batch import MetricsBatch, ReceivedLines, RecordColumns

__all__ = ["MetricIndex", "TornIndexError", "read_index", "rebuild_index"]

READ_BYTES = 16 << 20  # the JSONL is taken in this many bytes at a time, so a rebuild's memory is bounded
OPEN_FILES = 64  # row files an owner keeps open at once
LOCK_PATIENCE = 2.0  # seconds a writer waits for a reader that is writing the index to finish
# A reader that had to take in this many bytes past the index writes it back, for the next reader.
WRITE_BACK_BYTES = 8 << 20


def read_index(run_path: Path) -> MetricIndex:
    """The run's index, current as of this call; written back when a large part of it was missing and nobody
    keeps it (a run from before the index, or one whose writer could not keep it)."""
    index = MetricIndex.read(run_path)
    if index.covered - index.stored_bytes >= WRITE_BACK_BYTES:
        index.write_back()
    return index


def rebuild_index(run_path: Path) -> MetricIndex | None:
    """Build the run's index anew from its metrics.jsonl (``stepline reindex``); None when another process
    keeps it (the run's writer, which keeps it current) or its folder cannot be written."""
    index = MetricIndex(run_path)
    if not index.own():
        return None
    try:
        index._forget()
        index.take_in(store=True)
        index.write_state()
    finally:
        index.release()
    return index


class MetricIndex:
    """A run's metrics as its index and the lines of ``metrics.jsonl`` past it hold them."""

    def __init__(self, run_path: Path) -> None:
        self.run_path = run_path
        self.folder = run_path / layout.INDEX_DIR
        self.columns = Columns()
        self.tail = RecordTail(layout.record_path(run_path, events.METRICS))
        self.stored_bytes = 0  # of metrics.jsonl, covered by the state on disk
        self.stamp: tuple[int, int] | None = None  # the state file's (inode, mtime) when read
        self._lock: IO[bytes] | None = None
        self._open: dict[str, IO[bytes]] = {}

    @property
    def covered(self) -> int:
        """Bytes of metrics.jsonl taken in (stored, or pending in memory)."""
        return self.tail.offset

    @property
    def records(self) -> int:
        return self.columns.records

    @classmethod
    def read(cls, run_path: Path) -> MetricIndex:
        """The index on disk (or an empty one when it is missing or does not match the file), with every
        line past it taken in. Raises nothing for a bad index: it just reads more of the JSONL."""
        index = cls(run_path)
        index.load()
        if not index.take_in():  # the file was rewritten under the index
            index = cls(run_path)
            index.take_in()
        return index

    def load(self) -> bool:
        """Take the state on disk, when it is valid; False (and nothing taken) otherwise."""
        try:
            stat = os.stat(self.folder / STATE_FILE)
            state = orjson.loads((self.folder / STATE_FILE).read_bytes())
            columns = columns_of(state)
            self._check(state, columns)
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, TornIndexError):
            return False
        self.columns = columns
        self.tail.offset = self.stored_bytes = state["covered"]
        self.tail.last_seq, self.tail.torn_lines, self.tail.duplicate_records = (
            state["last_seq"], state["torn_lines"], state["duplicate_records"])
        self.stamp = (stat.st_ino, stat.st_mtime_ns)
        return True

    def _check(self, state: dict[str, Any], columns: Columns) -> None:
        covered = state["covered"]
        if os.stat(self.tail.path).st_size < covered or head_of(self.tail.path, covered) != state["head"]:
            raise TornIndexError("metrics.jsonl is not the file the index was made from")
        for field, dtype in RECORD_FIELDS.items():
            if _size(self.folder / field_file(RECORDS, field)) < columns.stored_records * dtype.itemsize:
                raise TornIndexError(f"records' {field} rows are missing")
        for column in columns.values():
            for field, dtype in POINT_FIELDS.items():
                if _size(self.folder / field_file(column.number, field)) < column.stored * dtype.itemsize:
                    raise TornIndexError(f"{column.key!r}'s {field} rows are missing")

    def changed_on_disk(self) -> bool:
        """Whether the state file is another than the one read (its owner wrote a newer one, or removed it)."""
        try:
            stat = os.stat(self.folder / STATE_FILE)
        except OSError:
            return self.stamp is not None
        return self.stamp != (stat.st_ino, stat.st_mtime_ns)

    def take_in(self, store: bool = False) -> bool:
        """Read the lines appended past what is covered; with ``store``, write their rows out as it goes (the
        owner). False when the file shrank: it was rewritten, and this index is of no use."""
        while True:
            start = self.tail.offset
            records = self.tail.read_new(READ_BYTES)
            if records is None:
                return False
            self.columns.add([r for r in records if r.get("type") == events.METRICS])
            if store:
                self.write_rows()
            if self.tail.offset == start:
                return True

    def unread_bytes(self) -> int:
        """Bytes of metrics.jsonl past the last whole line taken in (a line being written, or torn)."""
        return max(0, _size(self.tail.path) - self.covered)

    def add(self, records: list[dict[str, Any]]) -> None:
        """Take in metrics records just written to the file (the owner), by the readers' rule for seq."""
        if not records:
            return
        seqs = list(map(dict.get, records, repeat("seq")))
        first = seqs[0]
        if type(first) is int and first > self.tail.last_seq and seqs == list(range(first, first + len(seqs))):
            self.tail.last_seq = seqs[-1]  # numbered by a writer in one go, as most are: all of them, at speed
        else:
            records = self.tail.fresh(records)
        self.columns.add_records(records)

    def add_batch(self, batch: MetricsBatch | ReceivedLines, columns: RecordColumns) -> None:
        """Take in a batch just written to the file: a writer's, or lines a server received; from their columns
        (from their records when the batch is not past what the index holds)."""
        if batch.first_seq <= self.tail.last_seq:
            self.add(batch.records)  # by the readers' rule for seq
            return
        self.tail.last_seq = batch.last_seq
        self.columns.add_columns(columns)

    def summaries(self) -> dict[str, MetricSummary]:
        self.columns.settle()
        return {key: column.summary for key, column in self.columns.items()}

    def series(self, key: str, after: int = 0,
               fields: tuple[str, ...] = ("step", "value", "time", "epoch")) -> dict[str, np.ndarray]:
        """The points of ``key`` past the first ``after``, in logged order: per field asked for (``value``, and
        the records' ``step``, ``time``, ``epoch``), an array. Reads those fields' files only, and of them only
        the rows it needs. Raises :class:`TornIndexError` when the files hold fewer rows than the state says."""
        self.columns.settle()
        column = self.columns[key]
        wanted = [field for field in fields if field in RECORD_FIELDS]
        found = {}
        if "value" in fields:
            found["value"] = self._field(column.number, "value", column.stored, column.pending, after, column.count)
        if wanted:
            numbers = self._field(column.number, "record", column.stored, column.pending, after, column.count)
            first, last = (int(numbers[0]), int(numbers[-1]) + 1) if len(numbers) else (0, 0)
            dense = last - first == len(numbers)  # the metric is in every record of the range: no gather
            records = self.columns
            for field in wanted:
                rows = self._field(RECORDS, field, records.stored_records, records.pending, first, last)
                found[field] = rows if dense else rows[numbers - first]
        return found

    def record_field(self, field: str) -> np.ndarray:
        """One field (``step``, ``time``, ``epoch``) of every metrics record."""
        records = self.columns
        return self._field(RECORDS, field, records.stored_records, records.pending, 0, records.records)

    def _field(self, owner: str | int, field: str, stored: int, pending: Pending, start: int,
               stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` of a field: those stored from its file, the rest from ``pending``."""
        dtype = pending.fields[field]
        parts = []
        if start < stored:
            end = min(stop, stored)
            try:
                rows = np.fromfile(self.folder / field_file(owner, field), dtype=dtype, count=end - start,
                                   offset=start * dtype.itemsize)
            except (OSError, ValueError) as err:
                raise TornIndexError(str(err)) from None
            if len(rows) < end - start:
                raise TornIndexError(f"{field_file(owner, field)} holds fewer rows than its state counts")
            parts.append(rows)
        if stop > stored:
            parts.append(pending.field(field)[max(start - stored, 0): stop - stored])
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty(0, dtype)

    # Keeping the index on disk: only its owner does.

    def write_back(self) -> bool:
        """Store what this reader took in, unless another process keeps the index; True when stored."""
        if not self.own():
            return False
        try:
            self.take_in(store=True)
            self.write_state()
        except OSError:
            return False
        finally:
            self.release()
        return True

    def own(self, wait: float = 0.0) -> bool:
        """Become the index's one keeper: lock it and make its files match its state (rows past the state,
        from a keeper killed mid-write, are cut off; a bad index is removed, to be rebuilt). False when
        another process keeps it, or the folder cannot be written."""
        try:
            self.folder.mkdir(exist_ok=True)
            self._lock = locked(self.folder / LOCK_FILE, wait)
        except OSError:
            return False
        if self._lock is None:
            return False
        try:
            if self.changed_on_disk() and not self._reload():
                self._remove_state()
            self._cut_to_state()
        except OSError:
            self.release()
            return False
        return True

    def _cut_to_state(self) -> None:
        """Cut each field's file to the rows the state counts; remove the files of metrics it does not know."""
        keeps: dict[str | int, int] = {column.number: column.stored for column in self.columns.values()}
        keeps[RECORDS] = self.columns.stored_records
        for entry in os.scandir(self.folder):
            parsed = parse_field_file(entry.name)
            if parsed is None:
                continue
            owner, field = parsed
            dtype = (RECORD_FIELDS if owner == RECORDS else POINT_FIELDS).get(field)
            if owner in keeps and dtype is not None:
                os.truncate(entry.path, keeps[owner] * dtype.itemsize)
            else:
                os.unlink(entry.path)

    def _forget(self) -> None:
        """Start from nothing (the owner): no state, no rows, nothing of the JSONL taken in."""
        self._remove_state()
        self.columns, self.tail, self.stored_bytes = Columns(), RecordTail(self.tail.path), 0
        self._cut_to_state()

    def _reload(self) -> bool:
        """Start again from the state on disk (a reader that became the owner after another wrote it); with
        no valid state, from nothing. False in that case."""
        fresh = MetricIndex(self.run_path)
        valid = fresh.load() and fresh.take_in()
        if not valid:
            fresh = MetricIndex(self.run_path)
        self.columns, self.tail, self.stored_bytes, self.stamp = fresh.columns, fresh.tail, fresh.stored_bytes, \
            fresh.stamp
        return valid

    def write_rows(self, settle: bool = True) -> None:
        """Append the pending rows to their files (the owner): the records' first, as points refer to them.
        Without ``settle``, only the rows settled already (a writer's flush, between two states)."""
        if settle:
            self.columns.settle()
        elif self.columns.unsettled:
            return  # they go out with the rest once settled
        records = self.columns
        if records.pending.count:
            stored = records.pending.count
            self._write_pending(RECORDS, records.pending)
            records.stored_records += stored
        for column in self.columns.values():
            if column.pending.count:
                stored = column.pending.count
                self._write_pending(column.number, column.pending)
                column.stored += stored

    def _write_pending(self, owner: str | int, pending: Pending) -> None:
        for field, dtype in pending.fields.items():
            handle = self._file(field_file(owner, field))
            for part in pending.field_parts(field):
                handle.write(part.astype(dtype, copy=False).data)
        pending.clear()

    def write_state(self) -> None:
        """Write the rows out, then the state that counts them, atomically (the owner). ``covered`` is what
        the tail has taken in: the owner moves it on as it writes lines (:meth:`covered_to`)."""
        self.write_rows()
        for handle in self._open.values():
            handle.flush()
        state = state_of(self.columns, self.covered, head_of(self.tail.path, self.covered), self.tail)
        target = self.folder / STATE_FILE
        temporary = self.folder / layout.temporary_name(STATE_FILE)
        temporary.write_bytes(orjson.dumps(state))
        os.replace(temporary, target)
        stat = os.stat(target)
        self.stamp, self.stored_bytes = (stat.st_ino, stat.st_mtime_ns), self.covered

    def covered_to(self, offset: int) -> None:
        """The owner wrote every line it took in with :meth:`add`, and the file now ends at ``offset``."""
        self.tail.offset = offset

    def release(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    def abandon(self) -> None:
        """The owner can no longer vouch for the index (a write to the run's files failed): remove its state,
        so that readers read the JSONL and a later keeper rebuilds it."""
        self._remove_state()
        self.release()

    def _remove_state(self) -> None:
        try:
            os.unlink(self.folder / STATE_FILE)
        except OSError:
            pass
        self.stamp = None

    def _file(self, name: str) -> IO[bytes]:
        handle = self._open.pop(name, None)
        if handle is None:
            if len(self._open) >= OPEN_FILES:
                oldest = next(iter(self._open))
                self._open.pop(oldest).close()
            handle = open(self.folder / name, "ab")
        self._open[name] = handle  # most recently used last
        return handle


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
