"""Latency statistics from raw samples (milliseconds). Warm-up samples are never passed in."""

from __future__ import annotations

import math

import numpy as np

HIGH_CV = 0.25  # coefficient of variation above which a report warns that the machine was noisy
BUSY_SHARE = 0.25  # other processes' share of the machine while timing above which a run's timing is noisy

SAMPLED_STATISTICS = {  # summary field -> (latency_summary key, higher is better, what it is)
    "throughput_fps": ("throughput_fps", True, "throughput = timed frames / total timed seconds"),
    "latency_mean_ms": ("mean", False, "mean latency"),
    "latency_p50_ms": ("p50", False, "median latency"),
    "latency_p90_ms": ("p90", False, "90th-percentile latency"),
    "latency_p99_ms": ("p99", False, "99th-percentile latency"),
}
"""The speed fields computed from the raw timed samples (timed_ms), so a test on those samples can back them."""


def latency_summary(samples_ms) -> dict:
    """count, mean, std, min, max, p50/p90/p99 (numpy's linear interpolation), cv = std / mean, and
    throughput_fps = count / total timed seconds (the sum of the samples: frames per second over the timed runs).

    Throughput is a total over the samples, so one slow outlier lowers it; the median (p50) ignores it. Gates
    and reports name which of the two they use.

    >>> latency_summary([10.0, 10.0, 20.0, 40.0])["p50"], latency_summary([10.0, 30.0])["throughput_fps"]
    (15.0, 50.0)
    """
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size == 0:
        nan = math.nan
        return {"count": 0, "mean": nan, "std": nan, "min": nan, "max": nan, "p50": nan, "p90": nan, "p99": nan,
                "cv": nan, "throughput_fps": nan}
    mean = float(x.mean())
    std = float(x.std())
    p50, p90, p99 = (float(v) for v in np.percentile(x, [50, 90, 99]))
    return {"count": int(x.size), "mean": mean, "std": std, "min": float(x.min()), "max": float(x.max()),
            "p50": p50, "p90": p90, "p99": p99, "cv": std / mean if mean > 0 else math.nan,
            "throughput_fps": x.size / (float(x.sum()) / 1e3) if mean > 0 else math.nan}
