"""Downsampling that hides nothing: each bucket keeps its minimum, its maximum and its first NaN.

    indexes = keep_extremes(values, points=1000)   # sorted positions into the series, at most 1000

The buckets are defined once, here (docs/server.md), and every store answers with the same points: the
PostgreSQL store computes the same buckets in SQL, from its 64-point block summaries where a bucket is
made of whole blocks.
"""

from __future__ import annotations

import numpy as np

MIN_POINTS = 8
BLOCK = 64  # once a bucket holds more points than this, it holds whole blocks of this many


def bucket_size(n: int, points: int, has_nan: bool) -> int:
    """Points per bucket for ``n`` points shown as at most ``points``: the first and last point, then per
    bucket its minimum, its maximum and (when the points hold a NaN) its first NaN; rounded up to whole
    blocks of :data:`BLOCK` points once a bucket is larger than one, so that a store keeping block summaries
    reads them instead of the points."""
    size = -(-n // ((max(points, MIN_POINTS) - 2) // (3 if has_nan else 2)))
    return size if size <= BLOCK else -(-size // BLOCK) * BLOCK


def keep_extremes(values: np.ndarray, points: int) -> np.ndarray:
    """Positions to keep: at most ``points`` (at least 8), and no spike or NaN disappears."""
    n = len(values)
    points = max(points, MIN_POINTS)
    if n <= points:
        return np.arange(n)
    size = bucket_size(n, points, bool(np.isnan(values).any()))
    buckets = -(-n // size)  # so that no bucket is padding only
    padded = np.full(buckets * size, np.nan)
    padded[:n] = values
    grid = padded.reshape(buckets, size)
    is_nan = np.isnan(grid) & (np.arange(buckets * size) < n).reshape(buckets, size)  # padding is no NaN
    finite_any = ~np.all(np.isnan(grid), axis=1)
    filled_low = np.where(np.isnan(grid), np.inf, grid)
    filled_high = np.where(np.isnan(grid), -np.inf, grid)
    offsets = np.arange(buckets) * size
    keep = [
        (offsets + np.argmin(filled_low, axis=1))[finite_any],
        (offsets + np.argmax(filled_high, axis=1))[finite_any],
        (offsets + np.argmax(is_nan, axis=1))[is_nan.any(axis=1)],
        np.array([0, n - 1]),
    ]
    return np.unique(np.concatenate(keep))
