"""Per-metric summaries of a run (last, min and max with their steps), shared by `list` and `show`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stepline import events
from stepline.logbook.reader import RunView


@dataclass
class MetricSummary:
    key: str
    count: int = 0
    last: Any = None
    last_step: int | None = None
    min: Any = None
    min_step: int | None = None
    max: Any = None
    max_step: int | None = None
    nan_count: int = 0


def summarise(view: RunView) -> tuple[dict[str, MetricSummary], int]:
    """``({key: summary}, number of metric records)``, in one pass over the run's metrics."""
    summaries: dict[str, MetricSummary] = {}
    records = 0
    for record in view.records(events.METRICS):
        records += 1
        step = record.get("step")
        for key, value in (record.get("values") or {}).items():
            summary = summaries.get(key)
            if summary is None:
                summary = summaries[key] = MetricSummary(key)
            summary.count += 1
            summary.last, summary.last_step = value, step
            if isinstance(value, float) and math.isnan(value):
                summary.nan_count += 1
                continue
            if summary.min is None or value < summary.min:
                summary.min, summary.min_step = value, step
            if summary.max is None or value > summary.max:
                summary.max, summary.max_step = value, step
    return summaries, records


def main_keys(summaries: dict[str, MetricSummary], limit: int = 3) -> list[str]:
    """The metrics a one-line overview shows: losses first, then the others in logged order."""
    keys = list(summaries)
    return sorted(keys, key=lambda k: (0 if "loss" in k.lower() else 1, keys.index(k)))[:limit]
