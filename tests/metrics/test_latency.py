"""Latency statistics (evalkit.metrics.latency), exact on constructed data."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.metrics import latency_summary


def test_latency_summary_matches_numpy():
    samples = np.random.default_rng(3).gamma(4.0, 2.0, 500)
    s = latency_summary(samples)
    assert s["count"] == 500
    assert s["p50"] == np.percentile(samples, 50) and s["p99"] == np.percentile(samples, 99)
    assert s["mean"] == pytest.approx(samples.mean()) and s["throughput_fps"] == pytest.approx(1000 / samples.mean())
    assert s["cv"] == pytest.approx(samples.std() / samples.mean())
