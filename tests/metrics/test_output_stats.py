"""Output statistics (evalkit.metrics.output_stats), exact on constructed data."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.metrics import OutputStats
from evalkit.metrics.output_stats import HIST_BIN


def test_output_stats_exact_on_constructed_tensors():
    rng = np.random.default_rng(0)
    first = rng.uniform(-0.2, 1.1, (1, 3, 20, 20)).astype(np.float32)
    second = rng.uniform(0, 1, (1, 3, 20, 20)).astype(np.float32)
    second[0, 0, 0, :3] = np.nan
    second[0, 1, 0, :2] = np.inf
    second[0, 2, 0, 0] = -np.inf
    second[0, 2, 1, 0] = 3.0  # above the histogram's range
    stats = OutputStats()
    stats.update(first)
    stats.update(second)
    r = stats.result()
    values = np.concatenate([first.ravel(), second.ravel()]).astype(np.float64)
    finite = values[np.isfinite(values)]
    assert r["count"] == 2400 and r["nan_count"] == 3 and r["inf_count"] == 3
    # mean: float64 sums of 2,394 values below 3 (~1e-15 apart from numpy's); std: from the sum of squares minus
    # the squared mean (one pass), whose cancellation costs digits numpy's two-pass std keeps: 1e-9 for that
    assert r["mean"] == pytest.approx(finite.mean(), abs=1e-12)
    assert r["std"] == pytest.approx(finite.std(), abs=1e-9)
    assert (r["min"], r["max"]) == (finite.min(), finite.max()) == (r["min"], 3.0)
    assert r["fraction_outside_0_1"] == np.count_nonzero((finite < 0) | (finite > 1)) / finite.size
    for q in (1, 50, 99):
        assert abs(r[f"p{q}"] - np.percentile(finite, q, method="lower")) <= HIST_BIN  # documented resolution
    hist = r["histogram"]
    assert sum(hist["counts"]) + hist["below"] + hist["above"] == finite.size and hist["above"] == 1


def test_output_stats_of_all_nan():
    stats = OutputStats()
    stats.update(np.full((1, 3, 4, 4), np.nan, np.float32))
    r = stats.result()
    assert r["nan_count"] == 48 and np.isnan(r["mean"]) and np.isnan(r["p50"])
