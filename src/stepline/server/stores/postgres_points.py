"""A batch's metric points as PostgreSQL takes them, built with numpy rather than a point at a time: the binary
COPY stream of the ``points`` table, and the rows of the 64-point ``blocks`` summaries.

    stream = copy_stream([points_of(series_pk, first_i, seq, step, value, time, epoch), ...])
    rows = block_rows(series_pk, first_i, values)   # [(series, block, lo, lo_i, hi, hi_i, nan_i), ...]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stepline.server.downsample import BLOCK

# One row of the points table in PostgreSQL's binary COPY format: the field count, then each field's length
# and its big-endian value (series, i, seq, step: int8; value, time, epoch: float8).
_FIELDS = (("series", ">i8"), ("i", ">i8"), ("seq", ">i8"), ("step", ">i8"), ("value", ">f8"), ("time", ">f8"),
           ("epoch", ">f8"))
COPY_ROW = np.dtype([("count", ">i2")] + [part for name, kind in _FIELDS for part in ((f"{name}_size", ">i4"),
                                                                                       (name, kind))])
_SIGNATURE = b"PGCOPY\n\xff\r\n\0" + b"\0\0\0\0" + b"\0\0\0\0"  # flags, header extension length
_TRAILER = b"\xff\xff"


def points_of(series: int, first_i: int, seq: np.ndarray, step: np.ndarray, value: np.ndarray,
              time: np.ndarray, epoch: np.ndarray) -> np.ndarray:
    """One series' new points (its places from ``first_i`` on) as COPY rows."""
    rows = np.empty(len(value), COPY_ROW)
    rows["count"] = len(_FIELDS)
    for name, _ in _FIELDS:
        rows[f"{name}_size"] = 8
    rows["series"] = series
    rows["i"] = np.arange(first_i, first_i + len(value))
    rows["seq"], rows["step"], rows["value"], rows["time"], rows["epoch"] = seq, step, value, time, epoch
    return rows


def copy_stream(parts: list[np.ndarray]) -> bytes:
    """The whole binary COPY stream of these rows: psycopg sends a stream written whole as it is."""
    return b"".join([_SIGNATURE, *(part.tobytes() for part in parts), _TRAILER])


def block_rows(series: int, first_i: int, values: np.ndarray) -> list[tuple[Any, ...]]:
    """The block summaries of a series' new points (places from ``first_i`` on): per block touched, its first
    minimum and maximum with their places, and its first NaN's place (None where the block has none). A block
    begun by an earlier batch is merged with its row by the upsert, keeping the earlier extremes on ties."""
    n = len(values)
    if not n:
        return []
    places = first_i + np.arange(n)
    blocks = places // BLOCK
    starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]])
    ends = np.r_[starts[1:], n]
    nan = np.isnan(values)
    low, high = np.where(nan, np.inf, values), np.where(nan, -np.inf, values)
    group = np.repeat(np.arange(len(starts)), ends - starts)
    lo_at = _first_in_each(~nan & (low == np.minimum.reduceat(low, starts)[group]), starts, ends)
    hi_at = _first_in_each(~nan & (high == np.maximum.reduceat(high, starts)[group]), starts, ends)
    nan_at = _first_in_each(nan, starts, ends)
    rows = []
    for block, lo, hi, first_nan in zip(blocks[starts].tolist(), lo_at.tolist(), hi_at.tolist(), nan_at.tolist()):
        rows.append((series, block,
                     None if lo < 0 else float(values[lo]), None if lo < 0 else first_i + lo,
                     None if hi < 0 else float(values[hi]), None if hi < 0 else first_i + hi,
                     None if first_nan < 0 else first_i + first_nan))
    return rows


def _first_in_each(mask: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per group [start, end): the first position where ``mask`` holds, or -1."""
    hits = np.flatnonzero(mask)
    if not len(hits):
        return np.full(len(starts), -1)
    k = np.searchsorted(hits, starts)
    found = hits[np.minimum(k, len(hits) - 1)]
    return np.where((k < len(hits)) & (found < ends), found, -1)
