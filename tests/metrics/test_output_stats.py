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


def test_histogram_bins_are_numpys_float32_arithmetic_bit_for_bit():
    """The compiled count puts every value in the bin numpy's float32 arithmetic gives (v * (1 / width) +
    offset, clipped, truncated: the way before it), on the bin edges and one float32 step either side, values
    quantised to grey levels (repeats), values outside the range, and lengths not a multiple of its rows."""
    from evalkit.metrics.output_stats import HIST_BINS, HIST_LOW

    edges = (np.arange(-10, HIST_BINS + 10) * HIST_BIN + HIST_LOW).astype(np.float32)
    rng = np.random.default_rng(11)
    values = np.concatenate([edges, np.nextafter(edges, np.float32(9)), np.nextafter(edges, np.float32(-9)),
                             np.repeat(np.arange(256, dtype=np.float32) / np.float32(255), 7),
                             rng.normal(0.5, 2.0, 1001).astype(np.float32), np.float32([1e30, -1e30, -0.5, 1.5])])
    buf = np.multiply(values, np.float32(1.0 / HIST_BIN))
    buf += np.float32(1.0 - HIST_LOW / HIST_BIN)
    np.clip(buf, 0.0, HIST_BINS + 1.5, out=buf)
    expected = np.bincount(buf.astype(np.int32), minlength=HIST_BINS + 2)
    for size in (len(values), len(values) - 1, 3):
        stats = OutputStats()
        stats.update(values[:size])
        if size == len(values):
            assert np.array_equal(stats.bins, expected)
        else:
            assert np.array_equal(stats.bins, np.bincount(buf[:size].astype(np.int32), minlength=HIST_BINS + 2))
    assert expected[0] > 0 and expected[-1] > 0  # both ends of the range were exercised
