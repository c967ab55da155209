"""A writer's batch of metrics records in their queue form, encoded by the native batch encoder when it is built.

The writer hands a batch of plain metrics calls to its sinks as a :class:`MetricsBatch`: the queue's tuples
``(tag, time, step, epoch, values)`` and the first record's ``seq``. :meth:`MetricsBatch.encoded` gives the JSON
lines and the index's columns from ``stepline.batch_encoder`` (src/stepline/batch_encoder.cpp), which holds the
interpreter lock only to read the numbers and formats the lines while the training loop runs; the records as
dicts are made only for whoever asks for :attr:`MetricsBatch.records` (the Python path, a sink's backlog).

    batch = MetricsBatch([("m", 1764100000.25, 3, None, {"loss": 0.25})], first_seq=7)
    batch.encoded().lines   # b'{"type":"metrics","seq":7,"time":1764100000.25,"step":3,"values":{"loss":0.25}}\\n'

Without the compiled encoder (an install with no C++17 compiler), or for a batch it does not take (a value past
64 bits, a key with a lone surrogate), ``encoded()`` is None and the sink encodes :attr:`records` in Python:
the same lines, as tests/test_batch_encoder.py checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from stepline import events

native: ModuleType | None
try:
    from stepline import batch_encoder as native
except ImportError:  # built without a C++17 compiler: the sinks encode in Python
    native = None

# Whether batches are encoded natively; STEPLINE_NATIVE=0 turns it off (to compare, or to rule it out).
NATIVE = native is not None and os.environ.get("STEPLINE_NATIVE", "1") != "0"


@dataclass(frozen=True)
class EncodedBatch:
    """A batch's lines, and its columns for the index: the bytes of arrays in the machine's byte order (the index
    reads them with numpy; this module needs none)."""

    lines: bytes
    steps: bytes  # int64, one per record
    times: bytes  # float64
    epochs: bytes  # float64, columns.NO_EPOCH where a record has none
    # With the same keys in every record: those keys, whether the first record's value of each is a float, and
    # every value as a float64, a key's values after another's. Otherwise None, and the index takes the records.
    keys: tuple[str, ...] | None
    floats_first: tuple[bool, ...] | None
    values: bytes | None


class MetricsBatch:
    """Metrics records in their queue form, numbered from ``first_seq`` (see the module's docstring)."""

    __slots__ = ("items", "first_seq", "_records")

    def __init__(self, items: list[tuple[str, float, int, Any, dict[str, Any]]], first_seq: int) -> None:
        self.items = items
        self.first_seq = first_seq
        self._records: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records as the Python path writes them."""
        if self._records is None:
            seq = self.first_seq
            self._records = [
                {"type": events.METRICS, "seq": number, "time": when, "step": step, "values": values}
                if epoch is None else
                {"type": events.METRICS, "seq": number, "time": when, "step": step, "epoch": epoch, "values": values}
                for number, (_, when, step, epoch, values) in zip(range(seq, seq + len(self.items)), self.items)
            ]
        return self._records

    def encoded(self) -> EncodedBatch | None:
        """The lines and columns from the native encoder; None without it, or for a batch it leaves to Python."""
        if native is None or not NATIVE or not self.items:
            return None
        found = native.encode(self.items, self.first_seq)
        if found is None:
            return None
        return EncodedBatch(*found)
