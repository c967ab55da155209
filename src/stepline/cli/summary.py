"""Per-metric summaries of a run (last, min and max with their steps), shared by `list` and `show`."""

from __future__ import annotations

from stepline.logbook.metric_summary import MetricSummary
from stepline.logbook.reader import RunView


def summarise(view: RunView) -> tuple[dict[str, MetricSummary], int]:
    """``({key: summary}, number of metric records)``, from the run's index: what it costs does not grow with
    the run's points."""
    index = view.index()
    return index.summaries(), index.records


def main_keys(summaries: dict[str, MetricSummary], limit: int = 3) -> list[str]:
    """The metrics a one-line overview shows: losses first, then the others in logged order."""
    keys = list(summaries)
    return sorted(keys, key=lambda k: (0 if "loss" in k.lower() else 1, keys.index(k)))[:limit]
