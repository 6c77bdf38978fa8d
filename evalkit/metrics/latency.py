"""Latency statistics from raw samples (milliseconds). Warm-up samples are never passed in."""

from __future__ import annotations

import math

import numpy as np

HIGH_CV = 0.25  # coefficient of variation above which a report warns that the machine was noisy


def latency_summary(samples_ms) -> dict:
    """count, mean, std, min, max, p50/p90/p99 (numpy's linear interpolation), cv = std / mean, fps = 1000 / mean.

    >>> latency_summary([10.0, 10.0, 20.0, 40.0])["p50"], latency_summary([10.0, 30.0])["fps"]
    (15.0, 50.0)
    """
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size == 0:
        nan = math.nan
        return {"count": 0, "mean": nan, "std": nan, "min": nan, "max": nan, "p50": nan, "p90": nan, "p99": nan,
                "cv": nan, "fps": nan}
    mean = float(x.mean())
    std = float(x.std())
    p50, p90, p99 = (float(v) for v in np.percentile(x, [50, 90, 99]))
    return {"count": int(x.size), "mean": mean, "std": std, "min": float(x.min()), "max": float(x.max()),
            "p50": p50, "p90": p90, "p99": p99, "cv": std / mean if mean > 0 else math.nan,
            "fps": 1000.0 / mean if mean > 0 else math.nan}
