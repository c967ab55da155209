"""The PostgreSQL store's heavier reads, in SQL: the runs list's metric summaries, a run's times from its meta.

    summaries = series_summaries(db, [run_pk])    # {run_pk: {key: summary}}
"""

from __future__ import annotations

from typing import Any

import psycopg

from stepline.logbook.metric_summary import MetricSummary
from stepline.server.stores.postgres_schema import SUMMARY_COLUMNS


def meta_time(field: str, row: str = "r.") -> str:
    """SQL for a time field of a run's meta, NULL when it is not a number (never a failed cast)."""
    return f"CASE jsonb_typeof({row}meta->'{field}') WHEN 'number' THEN ({row}meta->>'{field}')::float8 END"


LAST_ACTIVITY = f"coalesce({meta_time('ended_at')}, {meta_time('heartbeat_at')}, {meta_time('started_at')})"


def series_summaries(db: psycopg.Connection, runs: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
    found: dict[int, dict[str, dict[str, Any]]] = {}
    for run, key, *stats in db.execute(f"SELECT run, key, {SUMMARY_COLUMNS} FROM series "
                                       "WHERE run = ANY(%s::bigint[]) ORDER BY run, position", (runs,)):
        found.setdefault(run, {})[key] = MetricSummary(*stats).as_dict()
    return found
