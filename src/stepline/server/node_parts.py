"""A job's run over several nodes as the query API shows it: one run. Each node other than rank zero's records
its machine into a part of the run (``<run id>.node<N>``, a run of its own to every store, so it is pushed,
numbered and synced like one); here its ``system/node.<N>/...`` keys are read as the run's own.

    keys = node_parts.metric_keys(store, "vision", "k3x9...")       # the run's keys, then each part's
    found = node_parts.series(store, "vision", "k3x9...", ["system/node.1/cpu.percent"], "time", 1000, 0)
"""

from __future__ import annotations

from typing import Any

from stepline.errors import RunNotFoundError
from stepline.job import node_of_key, node_part_ids
from stepline.server.stores import Store
from stepline.server.stores.base import SeriesPoints


def part_ids(store: Store, project: str, meta: dict[str, Any]) -> dict[int, str]:
    """node -> the id of its part, for the parts of a run that exist."""
    found = {}
    for node, part_id in enumerate(node_part_ids(meta), start=1):
        try:
            store.meta(project, part_id)
        except RunNotFoundError:
            continue  # that node has not pushed (yet)
        found[node] = part_id
    return found


def run(store: Store, project: str, run_id: str) -> dict[str, Any]:
    """The run's overview with its whole meta, its parts' metrics summaries among its own."""
    found = store.run(project, run_id)
    for part_id in part_ids(store, project, found["meta"]).values():
        found["metrics"].update(store.run(project, part_id)["metrics"])
    return found


def metric_keys(store: Store, project: str, run_id: str) -> list[str]:
    keys = store.metric_keys(project, run_id)
    for part_id in part_ids(store, project, store.meta(project, run_id)).values():
        keys.extend(store.metric_keys(project, part_id))
    return keys


def series(store: Store, project: str, run_id: str, keys: list[str], x: str, points: int | None,
           after: int) -> list[SeriesPoints]:
    """Points of ``keys`` as ``store.series`` gives them, a ``system/node.<N>/`` key's from node N's part."""
    parts = part_ids(store, project, store.meta(project, run_id)) \
        if any(node_of_key(key) for key in keys) else {}
    by_run: dict[str, list[str]] = {}
    for key in keys:
        by_run.setdefault(parts.get(node_of_key(key) or 0, run_id), []).append(key)
    found = {points_of.key: points_of for source, wanted in by_run.items()
             for points_of in store.series(project, source, wanted, x, points, after)}
    return [found[key] for key in keys]


def delete_run(store: Store, project: str, run_id: str, force: bool) -> None:
    """Delete the run, then its parts (a part outlives its run only if deleting it failed)."""
    parts = part_ids(store, project, store.meta(project, run_id))
    store.delete_run(project, run_id, force=force)
    for part_id in parts.values():
        store.delete_run(project, part_id, force=True)
