"""Plain metrics calls on their way to the sinks without a Python object per call, when the native metrics
segment (src/stepline/metrics_segment.cpp) is built.

``run.log`` adds each call whose values are plain numbers to the run's open :func:`new_segment`, which reads the
numbers at once (while they are in the caller's cache) into flat arrays; the segment sits in the run's queue like
any record. The writer closes it, numbers its records and hands it to the sinks as a :class:`MetricsBatch`, whose
:meth:`MetricsBatch.encoded` writes the JSON lines and the index's columns with the interpreter lock released.
The records as dicts are made only for whoever asks for :attr:`MetricsBatch.records` (a sink's backlog, a sink
with no faster way).

    segment = new_segment()
    segment.add(1764100000.25, 3, None, {"loss": 0.25})           # TAKEN, in run.log
    batch = MetricsBatch(segment, first_seq=7)                   # in the writer
    batch.encoded().lines   # b'{"type":"metrics","seq":7,"time":1764100000.25,"step":3,"values":{"loss":0.25}}\\n'

A server reads what a shipper sends, the lines as the logbook holds them, with :func:`read_lines`: one native pass
takes the records' seqs and the index's columns (no dict per record), and the body is stored as it came.

    received = read_lines(body, limit=100_000)    # None unless every line is one stepline writes
    received.first_seq, received.last_seq, received.columns()

Without the compiled segment (an install with no C++17 compiler), or with ``STEPLINE_NATIVE=0``,
:func:`new_segment` is None and ``run.log`` queues each call for the writer to encode in Python: the same lines,
as tests/test_metrics_segment.py checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

native: ModuleType | None
try:
    from stepline import metrics_segment as native
except ImportError:  # built without a C++17 compiler: run.log queues records for the Python path
    native = None

# Whether plain metrics calls go into native segments; STEPLINE_NATIVE=0 turns it off (to compare, or to rule
# it out).
NATIVE = native is not None and os.environ.get("STEPLINE_NATIVE", "1") != "0"
# The most calls one segment holds: the writer's batch, and how far the queue's bound may be overshot.
SEGMENT_RECORDS = 2_000
# The most values one segment takes from log calls (12 MB: 24 bytes each), for a loop logging thousands of
# metrics a call; the queue counts a segment's memory once it is closed.
SEGMENT_VALUES = 1 << 19
VALUE_BYTES = 24  # sizeof(Value), segment_store.hpp
# What Segment.add answers: the call is in; the segment takes no more (start another); a value, key, step or
# epoch the segment does not hold (the Python path takes the call).
TAKEN, CLOSED, NOT_PLAIN = 0, 1, 2


def new_segment(limit: int = SEGMENT_RECORDS, value_limit: int = SEGMENT_VALUES) -> Any:
    """An empty segment of up to ``limit`` calls (fewer where they hold over ``value_limit`` values); None when
    segments are not in use."""
    return native.Segment(limit, value_limit) if NATIVE and native is not None else None


def is_segment(item: Any) -> bool:
    return native is not None and type(item) is native.Segment


@dataclass(frozen=True)
class RecordColumns:
    """Metrics records as the index takes them: the bytes of arrays in the machine's byte order (the index reads
    them with numpy; this module needs none)."""

    steps: bytes  # int64, one per record
    times: bytes  # float64
    epochs: bytes  # float64, columns.NO_EPOCH where a record has none
    # The keys logged, in the order first logged, the kind the index keeps each as ("float", "int" or "bool") and
    # whether its rows hold every value exactly; each key's values as float64 and as int64 (None when every kind
    # is float), a key's values after another's.
    keys: tuple[str, ...]
    kinds: tuple[str, ...]
    exact: tuple[bool, ...]
    floats: bytes
    integers: bytes | None
    # None when every record has every key (each key has a value per record). Otherwise each value's record, its
    # place among these records (uint32), and how many values each key has.
    places: bytes | None
    counts: tuple[int, ...] | None


@dataclass(frozen=True)
class EncodedBatch:
    """A batch's lines, and its columns for the index."""

    lines: bytes
    columns: RecordColumns


def record_columns(records: list[dict[str, Any]]) -> RecordColumns | None:
    """Parsed metrics records (a server's, a reader's) in columns for the index, read natively; None when they
    are not all plain, or without segments."""
    if not NATIVE or native is None or not records:
        return None
    segment = native.Segment(len(records))
    if segment.add_records(records) != len(records):
        return None
    return RecordColumns(*segment.columns())


class ReceivedLines:
    """Metrics lines as a shipper sends them (the logbook's own), read natively by :func:`read_lines`."""

    __slots__ = ("body", "segment", "count", "first_seq", "last_seq", "_records")

    def __init__(self, body: bytes, segment: Any, count: int, first_seq: int, last_seq: int) -> None:
        self.body = body
        self.segment = segment
        self.count = count
        self.first_seq = first_seq  # the seqs rise from the first line to the last
        self.last_seq = last_seq
        self._records: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return self.count

    @property
    def lines(self) -> bytes:
        """The lines as received, each with its newline (what a logbook file appends)."""
        return self.body if self.body.endswith(b"\n") else self.body + b"\n"

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records as the general parser makes them (NaN and the infinities as floats)."""
        if self._records is None:
            self._records = self.segment.records()
        return self._records

    def columns(self) -> RecordColumns:
        return RecordColumns(*self.segment.columns())

    def seqs(self) -> bytes:
        """Each record's seq, int64 in the machine's byte order."""
        return self.segment.seqs()  # type: ignore[no-any-return]


def read_lines(body: bytes, limit: int) -> ReceivedLines | None:
    """A body of metrics lines, read natively when every line is a metrics record exactly as stepline writes it
    (docs/format.md), with seqs from 1 up that rise line by line, at most ``limit`` of them: most bodies a
    server receives. None otherwise (or without segments), for the general parser, which says what is wrong."""
    if not NATIVE or native is None or not body:
        return None
    segment = native.Segment(limit)
    count, end, first_seq, last_seq = segment.add_lines(body)
    if end != len(body):
        return None
    return ReceivedLines(body, segment, count, first_seq, last_seq)


class MetricsBatch:
    """A closed segment's calls, numbered from ``first_seq`` (see the module's docstring)."""

    __slots__ = ("segment", "first_seq", "_records")

    def __init__(self, segment: Any, first_seq: int) -> None:
        self.segment = segment
        self.first_seq = first_seq
        self._records: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.segment)

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.segment) - 1

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records as the Python path writes them."""
        if self._records is None:
            self._records = self.segment.records(self.first_seq)
        return self._records

    def encoded(self) -> EncodedBatch:
        """The lines and the index's columns, written with the interpreter lock released."""
        lines, *columns = self.segment.encode(self.first_seq)
        return EncodedBatch(lines, RecordColumns(*columns))
