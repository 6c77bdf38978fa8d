"""Statistics of the generator's raw outputs (before the uint8 conversion), streamed frame by frame.

A healthy model's output lies in [0, 1]. These numbers catch what pictures
hide: a drift of the mean, values outside [0, 1] that the uint8 conversion
clips, NaN and Inf. Exact: count, mean, std (float64 sums), min, max, the
fraction outside [0, 1], NaN and Inf counts, and how many values a plain uint8
cast (the reference script's, without clipping) would wrap around. Percentiles come from a fine
histogram over [HIST_LOW, HIST_HIGH) (width HIST_BIN): exact to within one
bin, plus exact counts below and above that range.
"""

from __future__ import annotations

import math

import numpy as np

HIST_LOW, HIST_HIGH, HIST_BINS = -0.5, 1.5, 8000  # bin width 2.5e-4, finer than one grey level (1/255)
HIST_BIN = (HIST_HIGH - HIST_LOW) / HIST_BINS
SQUARES_CHUNK = 1 << 16
REPORT_BINS = 100  # the coarser histogram kept in the run record for the report


class OutputStats:
    """Accumulates statistics over model outputs; ``update`` per batch, ``result`` once.

    >>> s = OutputStats(); s.update(np.array([0.0, 0.5, 1.0, 2.0, np.nan], np.float32))
    >>> r = s.result(); (r["count"], r["mean"], r["max"], r["fraction_outside_0_1"], r["nan_count"])
    (5, 0.875, 2.0, 0.25, 1)
    """

    def __init__(self, scale: float = 255.0):
        self.scale = scale  # output -> pixel multiplier: decides which values a uint8 cast would wrap
        self.wrap = 0
        self.count = 0
        self.finite = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.nan = 0
        self.posinf = 0
        self.neginf = 0
        self.outside = 0
        self.bins = np.zeros(HIST_BINS + 2, np.int64)  # [below, bins..., above]
        self._buf: np.ndarray | None = None
        self._chunk = np.empty(SQUARES_CHUNK, np.float64)  # reused: no float64 copy per frame
        self._idx: np.ndarray | None = None

    def update(self, values: np.ndarray) -> None:
        flat = np.asarray(values, np.float32).reshape(-1)
        if self._buf is None or self._buf.size != flat.size:
            self._buf = np.empty(flat.size, np.float32)
            self._idx = np.empty(flat.size, np.int32)
        self.count += flat.size
        total = float(flat.sum(dtype=np.float64))
        if not np.isfinite(total):  # rare: only then look for NaN and Inf one by one
            self.nan += int(np.isnan(flat).sum())
            self.posinf += int(np.isposinf(flat).sum())
            self.neginf += int(np.isneginf(flat).sum())
            flat = flat[np.isfinite(flat)]
            total = float(flat.sum(dtype=np.float64))
        if flat.size == 0:
            return
        buf, idx = self._buf[: flat.size], self._idx[: flat.size]
        self.finite += flat.size
        self.total += total
        self.total_sq += _sum_squares(flat, self._chunk)
        lo, hi = float(flat.min()), float(flat.max())
        self.minimum, self.maximum = min(self.minimum, lo), max(self.maximum, hi)
        if lo < 0.0 or hi > 1.0:
            self.outside += int(np.count_nonzero(flat < 0.0) + np.count_nonzero(flat > 1.0))
            # A plain uint8 cast (the reference script's) wraps what truncates outside [0, 255].
            if lo * self.scale <= -1.0 or hi * self.scale >= 256.0:
                self.wrap += int(np.count_nonzero(flat * self.scale <= -1.0)
                                 + np.count_nonzero(flat * self.scale >= 256.0))
        # Histogram bin of each value: floor((v - low) / width) + 1, clipped to [0, bins + 1]
        # (0: below the range, bins + 1: above it). float32 can move a value that sits on a
        # bin edge to the next bin: percentiles are exact to within one bin, as documented.
        np.multiply(flat, np.float32(1.0 / HIST_BIN), out=buf)
        buf += np.float32(1.0 - HIST_LOW / HIST_BIN)
        np.clip(buf, 0.0, HIST_BINS + 1.5, out=buf)
        np.copyto(idx, buf, casting="unsafe")  # truncation = floor for non-negative values
        self.bins += np.bincount(idx, minlength=HIST_BINS + 2)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0-100) of the finite values: the midpoint of the bin that holds it."""
        if self.finite == 0:
            return math.nan
        rank = q / 100 * (self.finite - 1)
        k = int(np.searchsorted(np.cumsum(self.bins), rank, side="right"))
        if k == 0:
            return self.minimum  # below the histogram: the exact minimum bounds it
        if k == HIST_BINS + 1:
            return self.maximum
        return min(max(HIST_LOW + (k - 0.5) * HIST_BIN, self.minimum), self.maximum)

    def result(self) -> dict:
        n = self.finite
        mean = self.total / n if n else math.nan
        var = max(self.total_sq / n - mean * mean, 0.0) if n else math.nan
        coarse = self.bins[1:-1].reshape(REPORT_BINS, -1).sum(axis=1)
        return {
            "count": self.count,
            "mean": mean,
            "std": math.sqrt(var),
            "min": self.minimum if n else math.nan,
            "max": self.maximum if n else math.nan,
            "p1": self.percentile(1),
            "p50": self.percentile(50),
            "p99": self.percentile(99),
            "fraction_outside_0_1": (self.outside / n) if n else math.nan,
            "nan_count": self.nan,
            "inf_count": self.posinf + self.neginf,
            "wrap_count": self.wrap,
            "histogram": {
                "low": HIST_LOW,
                "high": HIST_HIGH,
                "counts": coarse.tolist(),
                "below": int(self.bins[0]),
                "above": int(self.bins[-1]),
            },
        }


def _sum_squares(flat: np.ndarray, chunk: np.ndarray) -> float:
    """Sum of squares of float32 values, accumulated in float64 chunk by chunk through the reused ``chunk``."""
    total = 0.0
    for start in range(0, flat.size, chunk.size):
        part = flat[start : start + chunk.size]
        buf = chunk[: part.size]
        np.square(part, out=buf, dtype=np.float64)
        total += float(buf.sum())  # numpy's pairwise sum: no BLAS threads
    return total
