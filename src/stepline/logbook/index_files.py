"""The files of the logbook's index (see index.py): their names, its state's form, and the lock on it.

    state = state_of(columns, covered=..., head=head_of(path, covered), counts=tail)
    field_file(3, "value")   # "3.value": metric number 3's values
    columns = columns_of(state)
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import IO, Any

from stepline import events
from stepline.logbook.columns import Column, Columns
from stepline.logbook.metric_summary import MetricSummary
from stepline.logbook.tail import LineCounts
from stepline.values import NON_FINITE_NAMES

try:
    import fcntl
except ImportError:  # Windows: the writer keeps its index without a lock; readers never write one
    fcntl = None  # type: ignore[assignment]

VERSION = 1
STATE_FILE = "state.json"
LOCK_FILE = "lock"
RECORDS = "records"  # the name of the record fields' files: records.step, records.time, records.epoch
HEAD_BYTES = 4096  # the start of metrics.jsonl the state checksums: a file replaced by another is noticed


class TornIndexError(Exception):
    """The index's files do not hold what its state says: it is rebuilt from the JSONL."""


def field_file(owner: str | int, field: str) -> str:
    """The file of one field: of the records (``records.step``) or of metric number n (``3.value``)."""
    return f"{owner}.{field}"


def parse_field_file(name: str) -> tuple[str | int, str] | None:
    """(``"records"`` or a metric's number, field) of a field's file; None for another file."""
    owner, dot, field = name.partition(".")
    if not dot or not field.isalpha():
        return None
    if owner == RECORDS:
        return owner, field
    return (int(owner), field) if owner.isdigit() else None


def locked(path: Path, wait: float) -> IO[bytes] | None:
    """The lock file, opened and locked (closing it unlocks); None when another process holds it ``wait`` s."""
    handle = open(path, "ab")
    if fcntl is None:
        return handle
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                return None
            time.sleep(0.01)


def head_of(path: Path, covered: int) -> list[int]:
    """The length and CRC-32 of the first bytes of what the index covers."""
    length = min(covered, HEAD_BYTES)
    with open(path, "rb") as handle:
        return [length, zlib.crc32(handle.read(length))]


def state_of(columns: Columns, covered: int, head: list[int], counts: LineCounts) -> dict[str, Any]:
    """The state that counts what ``columns`` stored (docs/format.md, "The index")."""
    return {
        "index": VERSION,
        "covered": covered,
        "head": head,
        "records": columns.stored_records,
        "last_seq": counts.last_seq,
        "torn_lines": counts.torn_lines,
        "duplicate_records": counts.duplicate_records,
        "columns": [_column_state(column) for column in columns.values()],
    }


def columns_of(state: dict[str, Any]) -> Columns:
    """The columns a state counts, with nothing pending; raises KeyError, TypeError, ValueError or
    :class:`TornIndexError` for a state that is not one."""
    if state.get("index") != VERSION:
        raise TornIndexError("another version")
    columns = Columns(int(state["records"]))
    for entry in state["columns"]:
        figures: list[Any] = [NON_FINITE_NAMES.get(v, v) if type(v) is str else v for v in entry["summary"]]
        column = Column(entry["key"], int(entry["file"]), int(entry["rows"]), MetricSummary(*figures),
                        entry["kind"], bool(entry["exact"]))
        if column.stored != column.count:
            raise TornIndexError(f"{column.key!r}: {column.stored} rows for {column.count} points")
        columns[column.key] = column
    return columns


def _column_state(column: Column) -> dict[str, Any]:
    s = column.summary
    figures = [s.count, s.nan_count, events.json_number(s.last), s.last_step, events.json_number(s.min),
               s.min_step, events.json_number(s.max), s.max_step]
    return {"key": column.key, "file": column.number, "rows": column.stored, "kind": column.kind,
            "exact": column.exact, "summary": figures}
