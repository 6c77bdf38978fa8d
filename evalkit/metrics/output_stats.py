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

import numba
import numpy as np

HIST_LOW, HIST_HIGH, HIST_BINS = -0.5, 1.5, 8000  # bin width 2.5e-4, finer than one grey level (1/255)
HIST_BIN = (HIST_HIGH - HIST_LOW) / HIST_BINS
SQUARES_CHUNK = 1 << 16
REPORT_BINS = 100  # the coarser histogram kept in the run record for the report
HIST_PARTS = 4  # histograms counted side by side (_count_bins), then added


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
        self._chunk = np.empty(SQUARES_CHUNK, np.float64)  # reused: no float64 copy per frame
        self._parts = np.zeros((HIST_PARTS, HIST_BINS + 2), np.int64)  # reused by _count_bins

    def update(self, values: np.ndarray) -> None:
        flat = np.ascontiguousarray(values, np.float32).reshape(-1)
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
        self._parts.fill(0)
        _count_bins(flat, np.float32(1.0 / HIST_BIN), np.float32(1.0 - HIST_LOW / HIST_BIN), self._parts)
        self.bins += self._parts.sum(axis=0)

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


@numba.njit(nogil=True, cache=True)
def _count_bins(flat, inverse_bin, offset, parts):  # pragma: no cover (compiled)
    """Each finite float32 value's histogram bin counted into ``parts`` (HIST_PARTS, HIST_BINS + 2), in the
    float32 arithmetic numpy's way used (v * inverse_bin, + offset, clipped to [0, HIST_BINS + 1.5], truncated),
    so the bins are the same. Consecutive values go to different rows: a clip whose values repeat (outputs
    quantised to grey levels) would otherwise wait on the previous increment of the same counter."""
    top = np.float32(HIST_BINS + 1.5)
    zero = np.float32(0.0)
    n = flat.size
    whole = n - n % HIST_PARTS
    for i in range(0, whole, HIST_PARTS):
        for k in range(HIST_PARTS):
            x = flat[i + k] * inverse_bin
            x = x + offset
            parts[k, int(min(max(x, zero), top))] += 1
    for i in range(whole, n):
        x = flat[i] * inverse_bin
        x = x + offset
        parts[0, int(min(max(x, zero), top))] += 1
