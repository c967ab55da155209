"""What an overview shows of one metric: its point count, its last value and its extremes, with their steps.
Kept up point by point, the same way by `stepline list` / `show` and by both of the server's stores.

    summary = MetricSummary()
    summary.add(step=3, value=0.25)
    summary.as_dict()   # {"count": 1, "last": 0.25, "last_step": 3, "min": 0.25, "min_step": 3, ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
        if value != value:  # NaN counts for last, not for min and max
            self.nan_count += 1
            return
        if self.min is None or value < self.min:
            self.min, self.min_step = value, step
        if self.max is None or value > self.max:
            self.max, self.max_step = value, step

    def as_dict(self) -> dict[str, Any]:
        """The summary as the server's API shows it."""
        return {"count": self.count, "last": self.last, "last_step": self.last_step, "min": self.min,
                "min_step": self.min_step, "max": self.max, "max_step": self.max_step}
