"""Reading a logbook's record files: the one place that decodes their lines, and following a growing one.

    tail = RecordTail(run_path / "metrics.jsonl")
    tail.read_new()   # [record, ...]; a line still being written waits for the next call
    chunk, end = whole_lines(path, offset, stop, limit_bytes)   # lines as written
    batch = line_batch(path, offset, stop, limit_bytes, limit_lines)   # and counted, for a shipper
    count_lines(path, offset)   # the lines past offset, not read yet

``decode_lines`` is the one reading rule, shared by :class:`RecordTail` (the server's run caches and the
remote shipper, which never read a whole file twice) and ``RunView.records``: a torn line (a process killed
mid-write) and a record whose ``seq`` is not past the one before it (a write retried after an error) are
skipped, and counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from stepline import events
from stepline.metrics_batch import NATIVE, native

# Files are read in chunks of this size, so a large backlog never needs its whole size in memory at once.
READ_CHUNK = 16 << 20


class LineCounts:
    """Where a reading of one record file stands: the last ``seq`` read, and the lines it skipped."""

    __slots__ = ("last_seq", "torn_lines", "duplicate_records")

    def __init__(self) -> None:
        self.last_seq = 0
        self.torn_lines = 0
        self.duplicate_records = 0

    def takes(self, record: dict[str, Any]) -> bool:
        """Whether a reader takes this record, next in its file: not when its ``seq`` was read already (counted)."""
        seq = record.get("seq")
        if type(seq) is int:
            if seq <= self.last_seq:
                self.duplicate_records += 1
                return False
            self.last_seq = seq
        return True

    def fresh(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records a reader of the file they were written to will read (:meth:`takes`)."""
        return [record for record in records if self.takes(record)]


def decode_lines(lines: Iterable[bytes], counts: LineCounts) -> Iterator[dict[str, Any]]:
    """The records of a record file's lines, in order, by the one reading rule (see the module's docstring)."""
    for line in lines:
        if not line.strip():
            continue
        try:
            record = events.decode(line)
        except orjson.JSONDecodeError:
            counts.torn_lines += 1
            continue
        if counts.takes(record):
            yield record


class RecordTail(LineCounts):
    """The records of one logbook file past ``offset``; a record whose ``seq`` was read already is skipped."""

    __slots__ = ("path", "offset")

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.offset = 0

    def read_new(self, limit_bytes: int | None = None) -> list[dict[str, Any]] | None:
        """New records (reading at most about ``limit_bytes``), or None when the file shrank (rewritten)."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return [] if self.offset == 0 else None
        if size < self.offset:
            return None
        stop = size if limit_bytes is None else min(size, self.offset + limit_bytes)
        records: list[dict[str, Any]] = []
        while self.offset < stop:
            chunk, self.offset = whole_lines(self.path, self.offset, size, min(stop - self.offset, READ_CHUNK))
            if not chunk:
                break  # a line still being written waits for the next call
            records.extend(decode_lines(chunk.splitlines(), self))
        return records


def whole_lines(path: Path, offset: int, stop: int, limit_bytes: int) -> tuple[bytes, int]:
    """The lines of a record file that end between ``offset`` and ``stop``, as written, each with its newline:
    at most about ``limit_bytes`` of them, but at least one; and the offset past the last. A line not finished
    by ``stop`` waits. Nothing is decoded: what the lines hold is for their reader to check."""
    chunk = _read_lines(path, offset, stop, limit_bytes)
    end = chunk.rfind(b"\n") + 1
    return chunk[:end], offset + end


class LineBatch(NamedTuple):
    """A shipper's batch of a record file's whole lines (:func:`line_batch`)."""

    lines: bytes  # as written, each with its newline
    end: int  # the file's offset past the last
    line_count: int
    has_empty_line: bool


def line_batch(path: Path, offset: int, stop: int, limit_bytes: int, limit_lines: int) -> LineBatch:
    """:func:`whole_lines`, at most ``limit_lines`` of them (but at least one), counted in the same pass."""
    chunk = _read_lines(path, offset, stop, limit_bytes)
    end, line_count, has_empty_line = scan_lines(chunk, limit_lines)
    return LineBatch(chunk[:end], offset + end, line_count, has_empty_line)


def _read_lines(path: Path, offset: int, stop: int, limit_bytes: int) -> bytes:
    """About ``limit_bytes`` of a record file from ``offset``, and on to the first newline where they hold none
    (not past ``stop``); empty for a file that is not there."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return b""
    with handle:
        handle.seek(offset)
        chunk = handle.read(max(0, min(stop - offset, limit_bytes)))
        end = chunk.rfind(b"\n") + 1
        while end == 0 and offset + len(chunk) < stop:  # one line longer than the limit
            more = handle.read(min(stop - offset - len(chunk), limit_bytes))
            if not more:
                break
            chunk += more
            end = chunk.rfind(b"\n") + 1
    return chunk


def scan_lines(chunk: bytes, limit: int) -> tuple[int, int, bool]:
    """Of ``chunk``'s first ``limit`` lines that end with a newline: where the last of them ends (past its
    newline), how many there are, and whether one is empty. Natively, without the interpreter lock, when the
    metrics segment is built."""
    if NATIVE and native is not None:
        return native.scan_lines(chunk, limit)  # type: ignore[no-any-return]
    end = chunk.rfind(b"\n") + 1
    lines = chunk.count(b"\n", 0, end)
    if lines > limit:
        end, lines = 0, limit
        for _ in range(limit):
            end = chunk.index(b"\n", end) + 1
    return end, lines, end > 0 and (chunk.startswith(b"\n") or chunk.find(b"\n\n", 0, end) >= 0)


def count_lines(path: Path, offset: int = 0) -> int:
    """The lines of a record file past ``offset`` (0 for a file that is not there), read a block at a time."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return 0
    with handle:
        handle.seek(offset)
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
