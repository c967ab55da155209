"""What an overview shows of one metric: its point count, its last value and its extremes, with their steps.
The same figures for `stepline list` / `show`, the logbook's index and both of the server's stores.

    summary = MetricSummary()
    summary.add(step=3, value=0.25)
    summary.as_dict()   # {"count": 1, "last": 0.25, "last_step": 3, "min": 0.25, "min_step": 3, ...}

A NaN counts for ``count`` and ``last`` but never for ``min`` and ``max``; of equal extremes, the first is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(slots=True)
class MetricSummary:
    count: int = 0
    nan_count: int = 0
    last: Any = None
    last_step: int | None = None
    min: Any = None
    min_step: int | None = None
    max: Any = None
    max_step: int | None = None

    def add(self, step: int | None, value: Any) -> None:
        self.count += 1
        self.last, self.last_step = value, step
        if value != value:
            self.nan_count += 1
            return
        self._take_min(value, step)
        self._take_max(value, step)

    def add_many(self, steps: np.ndarray, values: np.ndarray) -> None:
        """:meth:`add` for each point, in order, at numpy's speed (``values`` keeps the logged type: bool,
        int or float, so the figures do too)."""
        if not len(values):
            return
        self.count += len(values)
        self.last, self.last_step = values[-1].item(), int(steps[-1])
        nans = int(np.count_nonzero(np.isnan(values))) if values.dtype.kind == "f" else 0
        if nans:
            self.nan_count += nans
            if nans == len(values):
                return
            positions = np.flatnonzero(~np.isnan(values))
            real = values[positions]
            low, high = positions[int(np.argmin(real))], positions[int(np.argmax(real))]
        else:
            low, high = int(np.argmin(values)), int(np.argmax(values))
        self._take_min(values[low].item(), int(steps[low]))
        self._take_max(values[high].item(), int(steps[high]))

    def merge(self, later: MetricSummary) -> MetricSummary:
        """This summary followed by ``later``'s points, as one."""
        merged = MetricSummary(self.count, self.nan_count, self.last, self.last_step, self.min, self.min_step,
                               self.max, self.max_step)
        if later.count:
            merged.count += later.count
            merged.nan_count += later.nan_count
            merged.last, merged.last_step = later.last, later.last_step
            if later.min is not None:
                merged._take_min(later.min, later.min_step)
                merged._take_max(later.max, later.max_step)
        return merged

    def _take_min(self, value: Any, step: int | None) -> None:
        if self.min is None or value < self.min:
            self.min, self.min_step = value, step

    def _take_max(self, value: Any, step: int | None) -> None:
        if self.max is None or value > self.max:
            self.max, self.max_step = value, step

    def as_dict(self) -> dict[str, Any]:
        """The summary as the server's API shows it."""
        return {"count": self.count, "last": self.last, "last_step": self.last_step, "min": self.min,
                "min_step": self.min_step, "max": self.max, "max_step": self.max_step}
