"""Downsampling that hides nothing: each bucket keeps its minimum, its maximum and its first NaN.

    indexes = keep_extremes(values, points=1000)   # sorted positions into the series, at most 1000
"""

from __future__ import annotations

import numpy as np

MIN_POINTS = 8


def keep_extremes(values: np.ndarray, points: int) -> np.ndarray:
    """Positions to keep: at most ``points`` (at least 8), and no spike or NaN disappears."""
    n = len(values)
    points = max(points, MIN_POINTS)
    if n <= points:
        return np.arange(n)
    # The first and last point, then per bucket its minimum, its maximum and, if it has one, a NaN.
    per_bucket = 3 if np.isnan(values).any() else 2
    size = -(-n // ((points - 2) // per_bucket))  # points per bucket, rounded up
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
