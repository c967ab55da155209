"""Downsampling keeps every bucket's extremes and NaN, for any length and any number of points."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stepline.server.downsample import keep_extremes


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(8, 600), st.integers(0, 2**32 - 1))
def test_keeps_extremes_and_nans_within_bounds(n, points, seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n)
    values[rng.random(n) < 0.01] = np.nan
    keep = keep_extremes(values, points)
    assert np.all(np.diff(keep) > 0) and keep[0] >= 0 and keep[-1] < n
    assert len(keep) == n if n <= points else len(keep) <= points
    finite = values[~np.isnan(values)]
    if len(finite):
        assert np.nanmax(values) in values[keep] and np.nanmin(values) in values[keep]
    if np.isnan(values).any():
        assert np.isnan(values[keep]).any()
