"""The PostgreSQL store's heavier reads, in SQL: a metric downsampled from its block summaries, the runs
list's metric summaries, a run's times from its meta.

    rows = downsampled_rows(db, series_pk, after=0, count=1_000_000, points=1000, has_nan=False)
"""

from __future__ import annotations

from typing import Any

import psycopg

from stepline.logbook.metric_summary import MetricSummary
from stepline.server.downsample import BLOCK, bucket_size
from stepline.server.stores.postgres_schema import SUMMARY_COLUMNS


def meta_time(field: str, row: str = "r.") -> str:
    """SQL for a time field of a run's meta, NULL when it is not a number (never a failed cast)."""
    return f"CASE jsonb_typeof({row}meta->'{field}') WHEN 'number' THEN ({row}meta->>'{field}')::float8 END"


LAST_ACTIVITY = f"coalesce({meta_time('ended_at')}, {meta_time('heartbeat_at')}, {meta_time('started_at')})"


def downsampled_rows(db: psycopg.Connection, series: int, after: int, count: int, points: int,
                     nan_count: int) -> list[tuple[Any, ...]]:
    """keep_extremes (downsample.py) in SQL, the same buckets and the same points: per bucket the first minimum,
    the first maximum and the first NaN, plus the first and last point. A bucket of whole blocks reads the
    blocks table (1/64 of the rows)."""
    has_nan = nan_count > 0 and (after == 0 or nan_after(db, series, after))  # the summary answers most asks
    size = bucket_size(count - after, points, has_nan)
    if after % BLOCK == 0 and size % BLOCK == 0:
        buckets = db.execute("""
            SELECT min(ARRAY[lo, lo_i]) FILTER (WHERE lo IS NOT NULL),
                   max(ARRAY[hi, -hi_i]) FILTER (WHERE hi IS NOT NULL),
                   min(nan_i)
            FROM blocks WHERE series = %s AND block >= %s GROUP BY (block - %s) / %s""",
                             (series, after // BLOCK, after // BLOCK, size // BLOCK)).fetchall()
    else:
        buckets = db.execute("""
            SELECT min(ARRAY[value, i]) FILTER (WHERE value <> 'NaN'),
                   max(ARRAY[value, -i]) FILTER (WHERE value <> 'NaN'),
                   min(i) FILTER (WHERE value = 'NaN')
            FROM points WHERE series = %s AND i >= %s GROUP BY (i - %s) / %s""",
                             (series, after, after, size)).fetchall()
    keep = {after, count - 1}
    for low, high, nan in buckets:
        if low is not None:
            keep.update((int(low[1]), -int(high[1])))
        if nan is not None:
            keep.add(nan)
    # bigint[] said outright: a list of small ints would go over as a type the points index cannot serve
    return db.execute("SELECT i, step, value, time, epoch FROM points WHERE series = %s AND i = ANY(%s::bigint[]) "
                      "ORDER BY i", (series, sorted(keep))).fetchall()


def nan_after(db: psycopg.Connection, series: int, after: int) -> bool:
    """Whether the series holds a NaN at a place from ``after`` on: whole blocks from their summaries, the
    block ``after`` falls in from its points."""
    first_whole = -(-after // BLOCK)
    row = db.execute("""
        SELECT EXISTS (SELECT 1 FROM blocks WHERE series = %s AND block >= %s AND nan_i IS NOT NULL)
            OR EXISTS (SELECT 1 FROM points WHERE series = %s AND i >= %s AND i < %s AND value = 'NaN')""",
                     (series, first_whole, series, after, first_whole * BLOCK)).fetchone()
    return bool(row and row[0])


def series_summaries(db: psycopg.Connection, runs: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
    found: dict[int, dict[str, dict[str, Any]]] = {}
    for run, key, *stats in db.execute(f"SELECT run, key, {SUMMARY_COLUMNS} FROM series "
                                       "WHERE run = ANY(%s::bigint[]) ORDER BY run, position", (runs,)):
        found.setdefault(run, {})[key] = MetricSummary(*stats).as_dict()
    return found
