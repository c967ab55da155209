"""What the server keeps of one run between requests, read incrementally: its metadata, params, logs and media
records, and its metrics index (stepline/logbook/index.py), each refresh reading only what was written since the last.

    cache = RunCache(run_path)
    cache.refresh()
    cache.index.summaries()["train/loss"].last
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stepline import events
from stepline.logbook import layout
from stepline.logbook.index import WRITE_BACK_BYTES, MetricIndex, read_index
from stepline.logbook.tail import RecordTail
from stepline.params import apply_operation

# What the cache counts for one log line and one metric, beside the rows it holds: estimates, to bound memory.
_LOG_LINE_BYTES = 400
_MEDIA_RECORD_BYTES = 1000  # a histogram's counts and edges are most of it
_METRIC_BYTES = 400


class RunCache:
    """One run's metadata, params, logs, media records and metrics index, kept current by :meth:`refresh`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reset()

    def _reset(self) -> None:
        self.meta: dict[str, Any] = {}
        self._meta_mtime = -1.0
        self.params: dict[str, Any] = {}
        self.logs: list[dict[str, Any]] = []
        self.media: list[dict[str, Any]] = []  # a live page asks for those past its cursor every few seconds
        self.index = MetricIndex(self.path)
        self._fresh_index = True
        self._tails = {kind: RecordTail(layout.record_path(self.path, kind))
                       for kind in (events.PARAMS, events.LOG, events.MEDIA)}

    def refresh(self) -> bool:
        """Take in what was written since the last refresh; False when the run's folder is gone."""
        meta_path = self.path / layout.META_FILE
        try:
            mtime = meta_path.stat().st_mtime
        except FileNotFoundError:
            return False
        if mtime != self._meta_mtime:
            meta = layout.read_meta(self.path)
            if meta is not None:
                self.meta, self._meta_mtime = meta, mtime
        for kind, tail in self._tails.items():
            records = tail.read_new()
            if records is None:  # rewritten: start again
                self._reset()
                return self.refresh()
            for record in records:
                if kind == events.PARAMS:
                    apply_operation(self.params, record)
                elif kind == events.LOG:
                    self.logs.append(record)
                else:
                    self.media.append(record)
        self._refresh_index()
        return True

    def _refresh_index(self) -> None:
        # Its keeper wrote a newer state: start from it, which holds what this cache read past the old one.
        if self._fresh_index or self.index.changed_on_disk() or not self.index.take_in():
            self.index, self._fresh_index = read_index(self.path), False
        elif self.index.covered - self.index.stored_bytes >= WRITE_BACK_BYTES:
            self.index.write_back()

    def reread_metrics(self) -> None:
        """The index's files do not hold what its state says (changed behind it): read the JSONL whole."""
        self.index = MetricIndex(self.path)
        self.index.take_in()

    def nbytes(self) -> int:
        """About how much memory the cache holds."""
        self.index.columns.settle()
        pending = self.index.columns.pending.nbytes + sum(
            column.pending.nbytes for column in self.index.columns.values())
        return (4096 + len(self.logs) * _LOG_LINE_BYTES + len(self.media) * _MEDIA_RECORD_BYTES
                + len(self.index.columns) * _METRIC_BYTES + pending)
