"""The logbook's index of a run's metrics: what `metrics.jsonl` holds, in columns, so that readers never parse
the JSON to answer (docs/format.md, "The index").

    index = MetricIndex.read(run_path)     # the index on disk, and the file's lines past what it covers
    index.columns["train/loss"].summary    # count, last, min and max with their steps
    index.series("train/loss")             # every point: numpy arrays of steps, values, times and epochs

``metrics.jsonl`` stays the source of truth. ``index/state.json`` says how many bytes of it the index covers
(and a checksum of its head), how many rows of ``index/records.rows`` (one per metrics record) and of each
metric's ``index/<n>.points`` are valid; it is replaced atomically after the rows it counts are written, so a
process killed at any moment leaves an index that is valid up to its state, and rows past what the state
counts are ignored. What lies past the covered bytes is read from the JSONL. An index that does not match its
file is rebuilt, never served.

One process at a time keeps a run's index (the run's writer, else a reader catching up on a large tail): it
holds an advisory lock on ``index/lock``, so a killed owner releases it.
"""

from __future__ import annotations

import os
from itertools import repeat
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from stepline import events
from stepline.logbook import layout
from stepline.logbook.columns import POINT, RECORD, Columns
from stepline.logbook.index_files import (
    LOCK_FILE,
    RECORDS_FILE,
    STATE_FILE,
    TornIndexError,
    columns_of,
    head_of,
    locked,
    points_file,
    points_number,
    state_of,
)
from stepline.logbook.metric_summary import MetricSummary
from stepline.logbook.tail import RecordTail

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
    keeps it (the run's writer, which keeps it current)."""
    index = MetricIndex(run_path)
    index.folder.mkdir(exist_ok=True)
    index._lock = locked(index.folder / LOCK_FILE, 0.0)
    if index._lock is None:
        return None
    try:
        index._remove_state()
        for entry in os.scandir(index.folder):
            if entry.name == RECORDS_FILE or points_number(entry.name) is not None:
                os.unlink(entry.path)
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
        if _size(self.folder / RECORDS_FILE) < columns.stored_records * RECORD.itemsize:
            raise TornIndexError("records are missing")
        for column in columns.values():
            if _size(self._points_path(column.number)) < column.stored * POINT.itemsize:
                raise TornIndexError(f"points of {column.key!r} are missing")

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
        self.columns.add(records)

    def summaries(self) -> dict[str, MetricSummary]:
        self.columns.settle()
        return {key: column.summary for key, column in self.columns.items()}

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every point of ``key`` in logged order: (steps, values, times, epochs); raises
        :class:`TornIndexError` when the stored rows are missing (the files were changed behind the index)."""
        points = self.points(key)
        records = self.record_rows()[points["record"]]
        return records["step"], points["value"], records["time"], records["epoch"]

    def points(self, key: str) -> np.ndarray:
        """The stored and pending :data:`POINT` rows of ``key``."""
        self.columns.settle()
        column = self.columns[key]
        return _stored_and(self._points_path(column.number), column.stored, column.pending_points(), POINT)

    def record_rows(self) -> np.ndarray:
        """The stored and pending :data:`RECORD` rows."""
        return _stored_and(self.folder / RECORDS_FILE, self.columns.stored_records,
                           self.columns.pending_records(), RECORD)

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
            known = {column.number: column.stored for column in self.columns.values()}
            for entry in os.scandir(self.folder):
                number = points_number(entry.name)
                if number in known:
                    os.truncate(entry.path, known[number] * POINT.itemsize)
                elif number is not None:
                    os.unlink(entry.path)
            with open(self.folder / RECORDS_FILE, "ab") as records:
                records.truncate(self.columns.stored_records * RECORD.itemsize)
        except OSError:
            self.release()
            return False
        return True

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
        if self.columns.pending:
            rows = self.columns.pending_records()
            self._file(RECORDS_FILE).write(rows.data)
            self.columns.stored_records += len(rows)
            self.columns.pending = []
        for column in self.columns.values():
            if column.pending:
                points = column.pending_points()
                self._file(points_file(column.number)).write(points.data)
                column.stored += len(points)
                column.pending = []

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

    def _points_path(self, number: int) -> Path:
        return self.folder / points_file(number)

    def _file(self, name: str) -> IO[bytes]:
        handle = self._open.pop(name, None)
        if handle is None:
            if len(self._open) >= OPEN_FILES:
                oldest = next(iter(self._open))
                self._open.pop(oldest).close()
            handle = open(self.folder / name, "ab")
        self._open[name] = handle  # most recently used last
        return handle


def _stored_and(path: Path, stored: int, pending: np.ndarray, dtype: np.dtype) -> np.ndarray:
    rows = np.empty(0, dtype)
    if stored:
        try:
            rows = np.fromfile(path, dtype=dtype, count=stored)
        except (OSError, ValueError) as err:
            raise TornIndexError(str(err)) from None
        if len(rows) < stored:
            raise TornIndexError(f"{path.name} holds {len(rows)} rows of {stored}")
    return np.concatenate([rows, pending]) if len(pending) else rows


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
