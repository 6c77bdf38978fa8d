"""Metrics: small pure functions over numpy batches, no I/O.

- ``fidelity``: ``psnr``, ``ssim`` (and ``mse``) per frame of uint8 batches.
- ``output_stats``: statistics of raw model outputs, streamed.
- ``latency``: latency statistics from raw samples.
"""

from __future__ import annotations

import math

import numpy as np

from evalkit.metrics.latency import latency_summary

__all__ = ["HIGHER_IS_BETTER", "OutputStats", "latency_summary", "mse", "psnr", "ssim", "summarise"]

_LAZY = {"HIGHER_IS_BETTER": "fidelity", "mse": "fidelity", "psnr": "fidelity", "ssim": "fidelity",
         "OutputStats": "output_stats"}


def __getattr__(name: str):
    """The fidelity metrics and OutputStats, imported when first asked for: they load numba and OpenCV (0.2 CPU-s),
    which the views of a record (``evalkit report``, ``history``, ``compare``: ``summarise`` and
    ``latency_summary`` only) never use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"evalkit.metrics.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def summarise(values) -> dict:
    """Aggregate per-frame values: mean and min over the finite values, and counts of the others.

    ``inf`` (a PSNR of identical frames) is not averaged, it is counted in
    ``inf_count``; ``min`` is over all values, so it is ``inf`` only when every
    frame is identical. NaN is counted in ``nan_count`` and left out.

    >>> summarise([30.0, 40.0, float("inf")])
    {'mean': 35.0, 'min': 30.0, 'max': inf, 'inf_count': 1, 'nan_count': 0, 'frames': 3}
    """
    x = np.asarray(values, dtype=np.float64)
    finite = x[np.isfinite(x)]
    not_nan = x[~np.isnan(x)]
    return {
        "mean": float(finite.mean()) if finite.size else (math.inf if np.isposinf(x).any() else math.nan),
        "min": float(not_nan.min()) if not_nan.size else math.nan,
        "max": float(not_nan.max()) if not_nan.size else math.nan,
        "inf_count": int(np.isinf(x).sum()),
        "nan_count": int(np.isnan(x).sum()),
        "frames": int(x.size),
    }
