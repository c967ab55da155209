"""Downsampling that hides nothing: each bucket keeps its minimum, its maximum and its first NaN.

    indexes = keep_extremes(values, points=1000)   # sorted positions into the series, at most 1000

The buckets are defined once, here (docs/server.md), and every store answers with the same points: each
reads a series' points past the cursor and hands them to ``stores.base.series_points``.
"""

from __future__ import annotations

import numpy as np

MIN_POINTS = 8
BLOCK = 64  # once a bucket holds more points than this, it holds whole blocks of this many


def bucket_size(n: int, points: int, has_nan: bool) -> int:
    """Points per bucket for ``n`` points shown as at most ``points``: the first and last point, then per
    bucket its minimum, its maximum and (when the points hold a NaN) its first NaN; rounded up to whole
    blocks of :data:`BLOCK` points once a bucket is larger than one (so the answers stay what they were when
    the PostgreSQL store read block summaries)."""
    size = -(-n // ((max(points, MIN_POINTS) - 2) // (3 if has_nan else 2)))
    return size if size <= BLOCK else -(-size // BLOCK) * BLOCK


def keep_extremes(values: np.ndarray, points: int) -> np.ndarray:
    """Positions to keep: at most ``points`` (at least 8), and no spike or NaN disappears."""
    n = len(values)
    points = max(points, MIN_POINTS)
    if n <= points:
        return np.arange(n)
    nan = np.isnan(values)
    has_nan = bool(nan.any())
    size = bucket_size(n, points, has_nan)
    whole = n // size * size
    keep = [np.array([0, n - 1])]
    for start, stop in ((0, whole), (whole, n)):  # the whole buckets, then the last one's rest
        if stop > start:
            keep.extend(_bucket_extremes(values[start:stop], nan[start:stop] if has_nan else None,
                                         stop - start if start else size, start))
    return np.unique(np.concatenate(keep))


def _bucket_extremes(values: np.ndarray, nan: np.ndarray | None, size: int, start: int) -> list[np.ndarray]:
    """Per bucket of ``size`` points (``values`` holds whole buckets): its first minimum, first maximum and
    first NaN, as positions in the series."""
    grid = values.reshape(-1, size)
    offsets = start + np.arange(grid.shape[0]) * size
    if nan is None:  # the common case: no copies
        return [offsets + grid.argmin(axis=1), offsets + grid.argmax(axis=1)]
    nans = nan.reshape(-1, size)
    finite_any = ~nans.all(axis=1)
    return [
        (offsets + np.where(nans, np.inf, grid).argmin(axis=1))[finite_any],
        (offsets + np.where(nans, -np.inf, grid).argmax(axis=1))[finite_any],
        (offsets + nans.argmax(axis=1))[nans.any(axis=1)],
    ]
