"""Per-metric summaries of a run (last, min and max with their steps), shared by `list` and `show`."""

from __future__ import annotations

from stepline import events
from stepline.logbook.metric_summary import MetricSummary
from stepline.logbook.reader import RunView


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
                summary = summaries[key] = MetricSummary()
            summary.add(step, value)
    return summaries, records


def main_keys(summaries: dict[str, MetricSummary], limit: int = 3) -> list[str]:
    """The metrics a one-line overview shows: losses first, then the others in logged order."""
    keys = list(summaries)
    return sorted(keys, key=lambda k: (0 if "loss" in k.lower() else 1, keys.index(k)))[:limit]
