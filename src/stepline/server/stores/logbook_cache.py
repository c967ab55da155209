"""What the server keeps of one run between requests, read incrementally: each refresh parses only the
bytes appended to the run's files since the last one, never whole files again.

    cache = RunCache(run_path)
    cache.refresh()
    steps, values = cache.series["train/loss"].arrays()
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from stepline import events
from stepline.logbook import layout
from stepline.logbook.metric_summary import MetricSummary
from stepline.logbook.tail import RecordTail
from stepline.params import apply_operation


class SeriesCache:
    """One metric's points, in logged order, appended to as the file grows."""

    __slots__ = ("steps", "values", "times", "epochs", "_arrays", "stats")

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.values: list[float] = []
        self.times: list[float] = []
        self.epochs: list[float] = []
        self._arrays: tuple[np.ndarray, ...] | None = None
        self.stats = MetricSummary()

    def add(self, step: int, value: float, when: float, epoch: float) -> None:
        self.steps.append(step)
        self.values.append(value)
        self.times.append(when)
        self.epochs.append(epoch)
        self.stats.add(step, value)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(steps, values, times, epochs) as float arrays; converts only what was added since the last call."""
        done = 0 if self._arrays is None else len(self._arrays[0])
        if done != len(self.steps):
            tails = [np.asarray(column[done:], dtype=float) for column in (self.steps, self.values, self.times,
                                                                           self.epochs)]
            self._arrays = tuple(tails) if self._arrays is None else tuple(  # type: ignore[assignment]
                np.concatenate([old, new]) for old, new in zip(self._arrays, tails))
        if self._arrays is None:
            return tuple(np.empty(0) for _ in range(4))  # type: ignore[return-value]
        return self._arrays  # type: ignore[return-value]

class RunCache:
    """One run's metadata, params, metric series and logs, kept current by :meth:`refresh`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reset()

    def _reset(self) -> None:
        self.meta: dict[str, Any] = {}
        self._meta_mtime = -1.0
        self.params: dict[str, Any] = {}
        self.series: dict[str, SeriesCache] = {}
        self.metric_records = 0
        self.logs: list[dict[str, Any]] = []
        self._tails = {kind: RecordTail(layout.record_path(self.path, kind)) for kind in layout.RECORD_FILES}

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
            if records is None:
                self._reset()
                return self.refresh()
            for record in records:
                self._take(kind, record)
        return True

    def _take(self, kind: str, record: dict[str, Any]) -> None:
        if kind == events.METRICS:
            self.metric_records += 1
            step, when = record.get("step", 0), record.get("time", math.nan)
            epoch = record.get("epoch", math.nan)
            for key, value in (record.get("values") or {}).items():
                series = self.series.get(key)
                if series is None:
                    series = self.series[key] = SeriesCache()
                series.add(step, float(value), when, math.nan if epoch is None else epoch)
        elif kind == events.PARAMS:
            apply_operation(self.params, record)
        else:
            self.logs.append(record)
