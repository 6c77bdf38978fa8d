"""Tensor-level parity between two sets of raw outputs of the same inputs (Polygraphy-style).

An element passes when ``|a - b| <= atol`` or ``|a - b| <= rtol * |b|``: it
fails only when it exceeds both (``b`` is the reference). NaN in the same
place in both passes; NaN in one only is a mismatch and fails.

Default tolerances by precision, for outputs in [0, 1] where one grey level
is 1/255 = 3.9e-3:

- fp32: atol 1e-4, rtol 1e-3. The same fp32 graph on another provider or
  optimisation level differs by re-associated sums: 1e-7 to 1e-5 on these
  sizes. 1e-4 leaves room for that and stays 40x below a grey level.
- fp16: atol 4e-3, rtol 1e-2. float16 has an 11-bit mantissa: 4.9e-4
  relative rounding per operation, which a deep network accumulates to about
  1e-3; one grey level (3.9e-3) is what a viewer could notice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_TOLERANCES = {"fp32": (1e-4, 1e-3), "fp16": (4e-3, 1e-2)}
REL_EPS = 1e-12  # keeps relative differences finite where the reference is exactly 0


@dataclass(frozen=True)
class ParityResult:
    """The comparison of candidate outputs with reference outputs; truthy when it passed."""

    passed: bool
    atol: float
    rtol: float
    elements: int
    failing_elements: int
    nan_mismatches: int
    max_abs: float
    mean_abs: float
    median_abs: float
    p99_abs: float
    max_rel: float
    mean_rel: float
    median_rel: float
    p99_rel: float
    required_atol: float  # the smallest atol that would have passed with this rtol
    required_rtol: float  # the smallest rtol that would have passed with this atol

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict:
        return asdict(self)


def compare_outputs(reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float) -> ParityResult:
    """Parity statistics of ``candidate`` against ``reference`` (same shape, any float dtype)."""
    ref = np.asarray(reference, np.float64).ravel()
    cand = np.asarray(candidate, np.float64).ravel()
    if ref.shape != cand.shape:
        raise ValueError(f"reference {np.shape(reference)} and candidate {np.shape(candidate)} differ in shape")
    ref_nan, cand_nan = np.isnan(ref), np.isnan(cand)
    nan_mismatches = int(np.count_nonzero(ref_nan != cand_nan))
    both = ~(ref_nan | cand_nan)
    diff = np.abs(ref[both] - cand[both])
    with np.errstate(invalid="ignore"):
        diff[np.isnan(diff)] = 0.0  # inf - inf in the same place is agreement
    scale = np.abs(ref[both])
    rel = diff / np.maximum(scale, REL_EPS)
    failing = int(np.count_nonzero((diff > atol) & (diff > rtol * scale))) + nan_mismatches
    if diff.size:
        p = np.percentile(diff, [50, 99])
        pr = np.percentile(rel, [50, 99])
        stats = (float(diff.max()), float(diff.mean()), float(p[0]), float(p[1]),
                 float(rel.max()), float(rel.mean()), float(pr[0]), float(pr[1]))
        required_atol = float(max(0.0, (diff - rtol * scale).max()))
        required_rtol = float(max(0.0, ((diff - atol) / np.maximum(scale, REL_EPS)).max()))
    else:
        stats = (0.0,) * 8
        required_atol = required_rtol = 0.0
    return ParityResult(failing == 0, atol, rtol, int(ref.size), failing, nan_mismatches, *stats,
                        required_atol, required_rtol)


@dataclass(frozen=True)
class OutputComparison:
    """Two sets of raw outputs (frames first) compared: ``result`` when they could be, else ``note`` says why
    not; ``shapes_differ`` when each frame's output has another shape on each side (another model, not a
    backend's difference: the one case that makes two runs incomparable)."""

    result: ParityResult | None
    note: str | None
    frames: int
    shapes_differ: bool = False

    def tensor(self) -> dict | None:
        return self.result.to_dict() if self.result is not None else None


def compare_output_sets(reference: np.ndarray | None, candidate: np.ndarray | None, atol: float,
                        rtol: float) -> OutputComparison:
    """The one comparison of two runs' raw outputs, for parity between backends, golden outputs and
    ``evalkit compare``: shapes checked first (the first min(N) frames are compared when only the frame
    counts differ), then ``compare_outputs``."""
    if reference is None or candidate is None:
        return OutputComparison(None, "no raw tensors on one side (an external backend, or not kept)", 0)
    if reference.shape[1:] != candidate.shape[1:]:
        return OutputComparison(None, f"outputs differ in shape: {list(reference.shape[1:])} per frame against "
                                      f"{list(candidate.shape[1:])}", 0, shapes_differ=True)
    n = min(len(reference), len(candidate))
    if n == 0:
        return OutputComparison(None, "no raw outputs on one side", 0)
    return OutputComparison(compare_outputs(reference[:n], candidate[:n], atol, rtol), None, n)
