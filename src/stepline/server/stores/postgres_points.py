"""A series' points as the PostgreSQL store keeps them (schema 3): chunks of at most :data:`MAX_CHUNK`
consecutive points, one row each, every field an array of big-endian 8-byte numbers (the bytes int8send and
float8send give, so the migration from a row a point was plain SQL).

    rows = chunk_rows(series_pk, first_i, seq=..., step=..., value=..., time=..., epoch=...)  # to COPY in
    arrays = read_points(db, series_pk, start=0, fields=("step", "value"))  # {"step": int64 array, ...}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

MAX_CHUNK = 65_536  # points a row at most: a read from any place starts at most this far back
FIELD_TYPES = {"seq": ">i8", "step": ">i8", "value": ">f8", "time": ">f8", "epoch": ">f8"}
COPY_COLUMNS = "series, first_i, n, seq, step, value, time, epoch"
COPY_TYPES = ["int8", "int8", "int4", "bytea", "bytea", "bytea", "bytea", "bytea"]


def chunk_rows(series: int, first_i: int, **fields: np.ndarray) -> list[tuple[Any, ...]]:
    """The rows of a series' new points, its places from ``first_i`` on (one row per :data:`MAX_CHUNK`)."""
    count = len(fields["value"])
    rows = []
    for start in range(0, count, MAX_CHUNK):
        stop = min(start + MAX_CHUNK, count)
        rows.append((series, first_i + start, stop - start,
                     *(np.asarray(fields[name][start:stop]).astype(kind).tobytes()
                       for name, kind in FIELD_TYPES.items())))
    return rows


def read_points(db: psycopg.Connection, series: int, start: int, fields: Sequence[str],
                ) -> dict[str, np.ndarray]:
    """The ``fields`` of a series' points from place ``start`` on, as native arrays, in place order."""
    for name in fields:
        if name not in FIELD_TYPES:
            raise ValueError(f"no point field {name!r}")  # names go into the SQL: ours only
    # A chunk holding place ``start`` begins less than MAX_CHUNK before it: the key's index bounds the scan.
    rows = db.cursor(binary=True).execute(
        f"SELECT first_i, {', '.join(fields)} FROM chunks WHERE series = %s AND first_i > %s AND first_i + n > %s "
        "ORDER BY first_i", (series, start - MAX_CHUNK, start)).fetchall()
    skip = max(0, start - rows[0][0]) if rows else 0
    found = {}
    for number, name in enumerate(fields, start=1):
        kind = np.dtype(FIELD_TYPES[name])
        parts = [np.frombuffer(row[number], dtype=kind) for row in rows]
        joined = np.concatenate(parts) if parts else np.empty(0, kind)
        found[name] = joined[skip:].astype(kind.newbyteorder("="))
    return found
