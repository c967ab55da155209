"""A run's metric points in columns, taken in from metrics records a batch at a time at numpy's speed:

- per metrics record (:data:`RECORD_FIELDS`): its step, time and epoch, records numbered from 0 in logged order;
- per metric, per point (:data:`POINT_FIELDS`): the record's number and the value; and the metric's summary.

Each field is its own array (and, on disk, its own file), so a reader reads only the fields it needs.

    columns = Columns()
    columns.add(records)                  # metrics records, in logged order
    columns["train/loss"].summary         # MetricSummary: count, last, min and max with their steps, NaNs

Records are taken in as they come (a writer's batch, a few thousand), and settled into rows and summaries
:data:`SETTLE_RECORDS` at a time or when asked: numpy's fixed cost per call is paid per settling, not per batch.

The logbook's index (``index.py``) keeps these on disk; this module only builds them.
"""

from __future__ import annotations

import math
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from stepline.logbook.metric_summary import MetricSummary
from stepline.metrics_batch import record_columns

if TYPE_CHECKING:
    from stepline.metrics_batch import RecordColumns

RECORD_FIELDS: dict[str, np.dtype] = {"step": np.dtype("<i8"), "time": np.dtype("<f8"), "epoch": np.dtype("<f8")}
POINT_FIELDS: dict[str, np.dtype] = {"record": np.dtype("<u4"), "value": np.dtype("<f8")}
MAX_RECORDS = 2**32  # a record's number must fit its field
SETTLE_RECORDS = 1 << 14
EXACT_INTEGERS = 2**53  # a float64 holds every integer below this exactly
KINDS = ("bool", "int", "float")  # what a metric's values were, widening left to right
_KIND_OF_DTYPE = {"b": "bool", "i": "int", "u": "int", "f": "float"}
# A record without an epoch: a NaN of its own, so that an epoch logged as NaN still reads back as NaN.
NO_EPOCH = np.array([0x7FF8_0000_0E90_C000], dtype=np.int64).view(np.float64)[0]


def missing_epochs(epochs: np.ndarray) -> np.ndarray:
    """Where the records had no epoch."""
    return epochs.view(np.int64) == NO_EPOCH.view(np.int64)


def epochs_or_nan(epochs: np.ndarray) -> np.ndarray:
    """The epochs, NaN where a record had none (what a store plots and keeps)."""
    return np.where(missing_epochs(epochs), np.nan, epochs)


class Pending:
    """Rows not on disk yet: per field, the arrays taken in, joined when read."""

    __slots__ = ("fields", "parts", "count")

    def __init__(self, fields: dict[str, np.dtype]) -> None:
        self.fields = fields
        self.parts: dict[str, list[np.ndarray]] = {field: [] for field in fields}
        self.count = 0

    def append(self, **arrays: np.ndarray) -> None:
        for field, array in arrays.items():
            self.parts[field].append(array)
        self.count += len(array)

    def field_parts(self, name: str) -> list[np.ndarray]:
        """The arrays of one field as taken in (to write them out without joining them first)."""
        return self.parts[name]

    def field(self, name: str) -> np.ndarray:
        parts = self.parts[name]
        if len(parts) != 1:
            parts[:] = [np.concatenate(parts).astype(self.fields[name], copy=False) if parts
                        else np.empty(0, self.fields[name])]
        return parts[0]

    def clear(self) -> None:
        for parts in self.parts.values():
            parts.clear()
        self.count = 0

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for parts in self.parts.values() for array in parts)


class Column:
    """One metric: its summary, what its values were, and its points not yet stored on disk."""

    __slots__ = ("key", "number", "stored", "summary", "kind", "exact", "pending", "waiting")

    def __init__(self, key: str, number: int, stored: int = 0, summary: MetricSummary | None = None,
                 kind: str = "bool", exact: bool = True) -> None:
        self.key = key
        self.number = number  # names its file in the index
        self.stored = stored  # points on disk
        self.summary = summary or MetricSummary()
        self.kind = kind
        self.exact = exact  # False: a value the rows cannot hold as logged (an integer beyond 2**53, text)
        self.pending = Pending(POINT_FIELDS)  # settled
        self.waiting: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (numbers, steps, values) taken in

    @property
    def count(self) -> int:
        """Points settled (every point, once :meth:`Columns.settle` ran)."""
        return self.summary.count

    def take(self, numbers: np.ndarray, steps: np.ndarray, values: np.ndarray, exact: bool) -> None:
        self.exact &= exact
        kind = _KIND_OF_DTYPE.get(values.dtype.kind)
        if kind is None:  # text or objects: the rows hold what converts, the series is read from the file
            self.exact = False
            values = np.array([_number(v) for v in values.tolist()], dtype=np.float64)
            kind = "float"
        if KINDS.index(kind) > KINDS.index(self.kind):
            self.kind = kind
        self.waiting.append((numbers, steps, values))

    def settle(self, joined: dict[tuple[int, ...], Any] | None = None) -> None:
        """Turn what was taken in into rows, and into the summary; ``joined``: the record numbers and steps that
        :meth:`Columns.settle` joined for another column already (the keys of a batch share them)."""
        if not self.waiting:
            return
        numbers, steps, values = (_join(part, joined) for part in zip(*self.waiting))
        self.waiting = []
        self.summary.add_many(steps, values)
        self.pending.append(record=numbers, value=values.astype(np.float64, copy=False))

    def typed(self, values: np.ndarray) -> list[Any]:
        """Values read from the rows as the types they were logged as."""
        if self.kind == "bool":
            return values.astype(bool).tolist()
        if self.kind == "int":
            return values.astype(np.int64).tolist()
        return values.tolist()


class Columns(dict[str, Column]):
    """Every metric of a run, in first-logged order, and the rows of its records."""

    def __init__(self, records: int = 0) -> None:
        super().__init__()
        self.records = records  # taken in, stored or pending
        self.stored_records = records
        self.pending = Pending(RECORD_FIELDS)
        self.unsettled = 0  # records taken in, not yet settled

    def column(self, key: str) -> Column:
        found = self.get(key)
        if found is None:
            found = self[key] = Column(key, len(self))
        return found

    def settle(self) -> None:
        """Every point taken in, in rows and summaries."""
        if self.unsettled:
            joined: dict[tuple[int, ...], Any] = {}
            for column in self.values():
                column.settle(joined)
            self.unsettled = 0

    def add(self, records: list[dict[str, Any]]) -> None:
        """Take in metrics records, in logged order."""
        if not records:
            return
        n = len(records)
        numbers = self._numbers(n)
        try:
            steps = np.fromiter(map(itemgetter("step"), records), dtype=np.int64, count=n)
        except (KeyError, TypeError, ValueError, OverflowError):
            steps = np.array([_step(r.get("step")) for r in records], dtype=np.int64)
        try:
            times = np.fromiter(map(itemgetter("time"), records), dtype=np.float64, count=n)
        except (KeyError, TypeError, ValueError):
            times = _floats(list(map(dict.get, records, repeat("time"))))
        epochs = list(map(dict.get, records, repeat("epoch")))
        if epochs.count(None) == n:
            epoch_array = np.full(n, NO_EPOCH)
        else:
            epoch_array = _floats([NO_EPOCH if epoch is None else epoch for epoch in epochs])
        if not self._add_alike(records, numbers, steps):
            self._add_grouped(records, numbers, steps)
        self._took(steps, times, epoch_array)

    def add_records(self, records: list[dict[str, Any]]) -> None:
        """:meth:`add`, with the records read natively into columns when they are all plain, as most are."""
        columns = record_columns(records)
        if columns is None:
            self.add(records)
        else:
            self.add_columns(columns)

    def add_columns(self, columns: RecordColumns) -> None:
        """Take in metrics records given as columns (a native metrics segment's, ``stepline.metrics_batch``): per
        key, the kind :meth:`add` would keep it as, whether the rows hold it exactly, and its values as float64
        and int64 rows, with the places of their records where not every record has every key."""
        steps = np.frombuffer(columns.steps, np.int64)
        n = len(steps)
        numbers = self._numbers(n)
        floats = np.frombuffer(columns.floats, np.float64)
        integers = None if columns.integers is None else np.frombuffer(columns.integers, np.int64)
        places = None if columns.places is None else np.frombuffer(columns.places, np.uint32)
        start = 0
        for key, kind, is_exact, count in zip(columns.keys, columns.kinds, columns.exact, columns.counts or
                                              [n] * len(columns.keys)):
            part = slice(start, start + count)
            start += count
            values: np.ndarray = floats[part]
            if kind != "float" and integers is not None:
                values = integers[part] if kind == "int" else integers[part] != 0
            if places is None or count == n:  # every record has the key: their numbers and steps are shared
                self.column(key).take(numbers, steps, values, is_exact)
            else:
                where = places[part]
                self.column(key).take(numbers[where], steps[where], values, is_exact)
        self._took(steps, np.frombuffer(columns.times, np.float64), np.frombuffer(columns.epochs, np.float64))

    def _numbers(self, n: int) -> np.ndarray:
        """The numbers of ``n`` records about to be taken in."""
        if self.records + n > MAX_RECORDS:
            raise OverflowError(f"a run's index holds at most {MAX_RECORDS} metrics records")
        return np.arange(self.records, self.records + n, dtype=np.uint32)

    def _took(self, steps: np.ndarray, times: np.ndarray, epochs: np.ndarray) -> None:
        self.pending.append(step=steps, time=times, epoch=epochs)
        self.records += len(steps)
        self.unsettled += len(steps)
        if self.unsettled >= SETTLE_RECORDS:
            self.settle()

    def _add_alike(self, records: list[dict[str, Any]], numbers: np.ndarray, steps: np.ndarray) -> bool:
        """The common case, at C speed: every record logs the same keys (False, and nothing taken, otherwise)."""
        n = len(records)
        try:
            values = list(map(itemgetter("values"), records))
            sizes = list(map(len, values))
            if sizes.count(sizes[0]) != n or not sizes[0]:
                return False
            # Every record has as many keys as the first, and each of the first's keys: the same keys.
            taken = {key: _fast_values(map(itemgetter(key), values), n, type(value) is float)
                     for key, value in values[0].items()}
        except (KeyError, TypeError, ValueError, OverflowError):
            return False
        for key, (array, exact) in taken.items():
            self.column(key).take(numbers, steps, array, exact)
        return True

    def _add_grouped(self, records: list[dict[str, Any]], numbers: np.ndarray, steps: np.ndarray) -> None:
        """Any records, a metric at a time, each metric's points in logged order."""
        positions: dict[str, list[int]] = {}
        for position, record in enumerate(records):
            for key in record.get("values") or ():
                found = positions.get(key)
                if found is None:
                    positions[key] = [position]
                else:
                    found.append(position)
        for key, where in positions.items():
            values, exact = _values([records[p]["values"][key] for p in where])
            self.column(key).take(numbers[where], steps[where], values, exact)


def _join(parts: tuple[np.ndarray, ...], joined: dict[tuple[int, ...], Any] | None) -> np.ndarray:
    """The parts as one array, joined once for all the columns that took the same arrays."""
    if len(parts) == 1:
        return parts[0]
    if joined is None:
        return np.concatenate(parts)
    key = tuple(map(id, parts))
    found = joined.get(key)
    if found is None:
        found = joined[key] = (parts, np.concatenate(parts))  # the parts kept: their ids stay theirs
    return found[1]  # type: ignore[no-any-return]


def _fast_values(values: Any, n: int, floats: bool) -> tuple[np.ndarray, bool]:
    """A metric's values in a batch: straight into float64 when the first is a float (a column with one float
    is a float column), else by numpy's reading of their types."""
    if floats:
        return np.fromiter(values, dtype=np.float64, count=n), True
    return _values(list(values))


def _values(items: list[Any]) -> tuple[np.ndarray, bool]:
    """The values as an array of the type they were logged as, and whether the rows hold them exactly."""
    try:
        values = np.array(items)
    except (OverflowError, ValueError):
        values = np.array(items, dtype=object)
    kind = values.dtype.kind
    if kind in "iuf" and len(values):
        large = values.max() >= EXACT_INTEGERS or values.min() <= -EXACT_INTEGERS
        # numpy makes integers past int64 floats: only then is a large float worth looking at one by one
        if large and (kind != "f" or any(type(v) is int and abs(v) >= EXACT_INTEGERS for v in items)):
            return values, False
    return values, True


def _floats(items: list[Any]) -> np.ndarray:
    try:
        return np.array(items, dtype=np.float64)  # None (a record without an epoch) is NaN
    except (TypeError, ValueError):
        return np.array([_number(item) for item in items], dtype=np.float64)


def _step(step: Any) -> int:
    return step if type(step) is int and -(2**63) <= step < 2**63 else 0


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan
