"""Stage 4: the generator's audio input for each video frame.

For frame i: rows i - before .. i + after of the (end-padded) feature matrix,
zero rows where the window runs past either end, reshaped to the contract's
``audio_input_shape`` with a batch axis in front.
"""

from __future__ import annotations

import numpy as np

from evalkit.config.contract import Contract


def feature_window(features: np.ndarray, frame: int, contract: Contract, out: np.ndarray | None = None) -> np.ndarray:
    """Audio input of ``frame``, shape [1, *audio_input_shape], float32.

    ``out`` (same shape) is filled in place when given, so a hot loop allocates nothing.
    """
    rows = contract.feature_window_rows
    if out is None:
        out = np.empty((1, *contract.audio_input_shape), dtype=np.float32)
    flat = out.reshape(rows, features.shape[1])
    first = frame - contract.feature_window_before
    lo, hi = max(first, 0), min(first + rows, features.shape[0])
    flat[:] = 0.0
    if lo < hi:
        flat[lo - first : hi - first] = features[lo:hi]
    return out
