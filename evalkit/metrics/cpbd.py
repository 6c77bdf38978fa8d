"""CPBD: the no-reference sharpness of Narvekar & Karam, "A No-Reference Image Blur Metric Based on the Cumulative
Probability of Blur Detection (CPBD)", IEEE Trans. Image Processing 20(9), 2011.

The ``cpbd`` package on PyPI (1.0.7) does not import with today's SciPy (it imports ``scipy.ndimage.imread``,
removed in SciPy 1.2) and walks every pixel in Python; this is its algorithm, vectorised with numpy, step for step:

1. Canny edges (scikit-image, sigma 1) decide which 64x64 blocks are edge blocks (more than 0.2 % edge pixels).
2. Vertical edges from the Octave-style Sobel (horizontal gradient, kernel normalised by its absolute sum; squared
   strength above 2 sqrt(mean), thinned to local maxima across rows or columns).
3. Each such edge's width (Marziliano et al.): from the pixel, the steps left and right over which the intensity
   keeps rising (or falling) in the gradient's direction, each side at most 101, for edges whose gradient angle
   rounds to 0 or 180 degrees (the reference's quirk kept: a pixel with no horizontal gradient counts as 0 degrees).
4. Per edge block, the just-noticeable width w_JNB (5 where the block's contrast max - min is at most 50, else 3)
   and the probability of detecting blur 1 - exp(-(w / w_JNB)^3.6), rounded to a percent.
5. CPBD: the fraction of all those edges whose probability is at most 63 % (1 - 1/e). Higher is sharper, in [0, 1].

One deviation: an image with no edge block scores NaN (there is nothing to judge), where the reference says 0.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
from skimage.feature import canny

BLOCK = 64  # block side (px)
EDGE_BLOCK_FRACTION = 0.002  # a block is an edge block above this fraction of Canny edge pixels
BETA = 3.6
MAX_STEPS = 100  # the reference walks at most 101 pixels to each side
HIGHER_IS_BETTER = {"cpbd": True}


def _sobel_vertical_edges(image: np.ndarray) -> np.ndarray:
    h1 = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]) / 4.0
    h1 /= np.abs(h1).sum()
    strength = np.square(scipy.ndimage.convolve(image, h1.T))
    strength[strength <= 2 * np.sqrt(strength.mean())] = 0
    zero_col, zero_row = np.zeros((image.shape[0], 1)), np.zeros((1, image.shape[1]))
    across = (strength > np.c_[zero_col, strength[:, :-1]]) & (strength > np.c_[strength[:, 1:], zero_col])
    down = (strength > np.r_[zero_row, strength[:-1, :]]) & (strength > np.r_[strength[1:, :], zero_row])
    return across | down


def _runs(step_sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a boolean (H, W-1) array of steps: per position k, the length of the run of True ending at k going left
    (k, k-1, ...) and starting at k going right (k, k+1, ...)."""
    h, w = step_sign.shape
    left = np.zeros((h, w), np.int32)
    right = np.zeros((h, w), np.int32)
    run = np.zeros(h, np.int32)
    for k in range(w):
        run = (run + 1) * step_sign[:, k]
        left[:, k] = run
    run[:] = 0
    for k in range(w - 1, -1, -1):
        run = (run + 1) * step_sign[:, k]
        right[:, k] = run
    return left, right


def edge_widths(image: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Marziliano edge widths at the ``edges`` pixels of a float grey image (0 elsewhere), as the reference."""
    h, w = image.shape
    widths = np.zeros((h, w))
    gy, gx = np.gradient(image)
    angles = np.where(gx != 0, np.degrees(np.arctan2(gy, gx)), 0.0)
    if not np.any(angles) or w < 3:
        return widths
    quantized = 45 * np.round(angles / 45)
    step = np.diff(image, axis=1)  # step[:, k] = image[:, k + 1] - image[:, k]
    rise_left, rise_right = _runs(step > 0)
    fall_left, fall_right = _runs(step < 0)
    interior = np.zeros((h, w), bool)
    interior[1:-1, 1:-1] = True
    cols = np.arange(w)

    def side_widths(left_runs: np.ndarray, right_runs: np.ndarray) -> np.ndarray:
        # left: steps k = col-2, col-3, ... ; right: steps k = col+1, col+2, ... (np.take clips; masked below)
        lk, rk = cols - 2, cols + 1
        left_len = np.where(lk >= 0, np.take(left_runs, np.clip(lk, 0, w - 2), axis=1), 0)
        right_len = np.where(rk <= w - 2, np.take(right_runs, np.clip(rk, 0, w - 2), axis=1), 0)
        return np.minimum(left_len, MAX_STEPS) + 1 + np.minimum(right_len, MAX_STEPS) + 1

    zero = interior & edges & (quantized == 0)  # intensity rising left to right
    flat = interior & edges & ((quantized == 180) | (quantized == -180))  # falling
    widths[zero] = side_widths(rise_left, rise_right)[zero]
    widths[flat] = side_widths(fall_left, fall_right)[flat]
    return widths


def cpbd(image: np.ndarray, block: int = BLOCK) -> float:
    """CPBD sharpness of one grey (H, W) or RGB (H, W, 3) uint8 image, in [0, 1] (higher: sharper); NaN when no
    ``block`` x ``block`` block holds edges (e.g. a region smaller than a block)."""
    image = np.asarray(image)
    if image.ndim == 3:
        image = image.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])  # MATLAB's rgb2gray
    image = image.astype(np.float64)
    canny_edges = canny(image)
    widths = edge_widths(image, _sobel_vertical_edges(image))
    hist = np.zeros(101)
    for i in range(image.shape[0] // block):
        for j in range(image.shape[1] // block):
            rows, cols = slice(block * i, block * (i + 1)), slice(block * j, block * (j + 1))
            if np.count_nonzero(canny_edges[rows, cols]) <= block * block * EDGE_BLOCK_FRACTION:
                continue
            w = widths[rows, cols]
            w = w[w != 0]
            pixels = image[rows, cols]
            jnb = 5.0 if int(pixels.max() - pixels.min()) <= 50 else 3.0
            p = 1 - np.exp(-np.abs(w / jnb) ** BETA)
            np.add.at(hist, np.round(p * 100).astype(int), 1)
    total = hist.sum()
    return float(hist[:64].sum() / total) if total else float("nan")


def cpbd_batch(frames: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """CPBD of each frame of an (N, H, W[, 3]) batch, (N,)."""
    return np.array([cpbd(f, block) for f in np.asarray(frames)], np.float64)
