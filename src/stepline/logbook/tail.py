"""Following a growing JSONL file: each call returns only the complete records appended since the last.

    tail = RecordTail(run_path / "metrics.jsonl")
    tail.read_new()   # [record, ...]; a line still being written waits for the next call

Used by the server's run caches and by the remote shipper: neither ever reads a whole file twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from stepline import events

# Files are read in chunks of this size, so a large backlog never needs its whole size in memory at once.
READ_CHUNK = 16 << 20


class RecordTail:
    """The records of one logbook file past ``offset``; a record whose ``seq`` was read already is skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.last_seq = 0
        self.torn_lines = 0

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
        with open(self.path, "rb") as handle:
            while self.offset < stop:
                handle.seek(self.offset)
                chunk = handle.read(min(size - self.offset, READ_CHUNK))
                end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next call
                if end == 0:
                    break
                self._parse(chunk[:end], records)
                self.offset += end
        return records

    def _parse(self, block: bytes, records: list[dict[str, Any]]) -> None:
        for line in block.splitlines():
            if not line.strip():
                continue
            try:
                record = events.decode(line)
            except orjson.JSONDecodeError:
                self.torn_lines += 1
                continue
            seq = record.get("seq")
            if type(seq) is int:
                if seq <= self.last_seq:
                    continue
                self.last_seq = seq
            records.append(record)
