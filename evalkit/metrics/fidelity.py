"""Fidelity metrics: PSNR and SSIM per frame, as pure numpy functions over uint8 batches.

Inputs are (N, H, W, C) or a single (H, W, C) frame, uint8 (any integer or
float dtype is accepted and used as is); both arguments must have the same
shape. Each function returns one float64 value per frame, shape (N,).
``data_range`` defines the metric and has no default meaning beyond the
uint8 convention: pass it explicitly for other data.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scipy/scikit-image: radius = int(truncate * sigma + 0.5) = 5, an 11-tap window
SSIM_K1, SSIM_K2 = 0.01, 0.03

HIGHER_IS_BETTER = {"psnr": True, "ssim": True}


def _as_batch(reference: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape:
        raise ValueError(f"reference {reference.shape} and candidate {candidate.shape} differ in shape")
    if reference.ndim == 3:
        reference, candidate = reference[None], candidate[None]
    if reference.ndim != 4:
        raise ValueError(f"expected (N, H, W, C) or (H, W, C) frames, got shape {reference.shape}")
    return reference, candidate


def mse(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Mean squared error per frame: mean((reference - candidate)^2); exact for uint8 frames."""
    reference, candidate = _as_batch(reference, candidate)
    n = len(reference)
    out = np.empty(n)
    diff = np.empty(reference.shape[1:], np.float64)  # one frame, reused; integer sums stay exact below 2**53
    flat = diff.reshape(-1)
    for i in range(n):
        np.subtract(reference[i], candidate[i], out=diff, dtype=np.float64)
        out[i] = np.dot(flat, flat) / flat.size
    return out


def psnr(reference: np.ndarray, candidate: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Peak signal-to-noise ratio per frame, in dB: 10 * log10(data_range^2 / MSE).

    Identical frames (MSE 0) give ``inf``; it is returned, never dropped:
    aggregate with ``summarise`` which counts it.

    >>> a = np.zeros((2, 4, 4, 3), np.uint8); b = a.copy(); b[1] += 5
    >>> psnr(a, b).round(3).tolist()
    [inf, 34.151]
    """
    err = mse(reference, candidate)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(float(data_range) ** 2 / err)


def ssim(reference: np.ndarray, candidate: np.ndarray, data_range: float = 255.0,
         threads: int | None = None) -> np.ndarray:
    """Structural similarity per frame, the definition of scikit-image's
    ``structural_similarity(..., channel_axis=-1, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range)``.

    With Gaussian-weighted local means mu, variances s^2 and covariance s_xy
    (sigma 1.5, 11 taps, borders reflected), C1 = (0.01 R)^2, C2 = (0.03 R)^2::

        S = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))

    averaged over the image less a 5-pixel border, then over channels.
    Computed in float32 with OpenCV's separable filter on values centred at
    R/2 (variance and covariance do not change; centring keeps float32 error
    below 1e-6 of scikit-image's float64 result). Frames are split over
    ``threads`` worker threads (default: one per CPU).

    >>> a = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    >>> float(ssim(a, a)[0])
    1.0
    """
    reference, candidate = _as_batch(reference, candidate)
    n, h, w, c = reference.shape
    pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    if h <= 2 * pad or w <= 2 * pad:
        raise ValueError(f"frames of {h}x{w} are too small for SSIM's {2 * pad + 1}-pixel window")
    out = np.empty(n)
    workers = max(1, min(threads or os.cpu_count() or 1, n))
    if workers == 1:
        _ssim_into(reference, candidate, float(data_range), out)
        return out
    bounds = np.linspace(0, n, workers + 1).astype(int)
    with ThreadPoolExecutor(workers) as pool:  # OpenCV and numpy release the GIL in the heavy parts
        jobs = [pool.submit(_ssim_into, reference[lo:hi], candidate[lo:hi], float(data_range), out[lo:hi])
                for lo, hi in zip(bounds[:-1], bounds[1:])]
        for job in jobs:
            job.result()
    return out


def _ssim_into(reference: np.ndarray, candidate: np.ndarray, data_range: float, out: np.ndarray) -> None:
    """SSIM of each frame pair into ``out``, with buffers reused across frames."""
    n, h, w, c = reference.shape
    pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    c1, c2 = np.float32((SSIM_K1 * data_range) ** 2), np.float32((SSIM_K2 * data_range) ** 2)
    centre = np.float32(data_range / 2)
    ksize = (2 * pad + 1, 2 * pad + 1)
    # Four filtered planes per frame instead of five: SSIM needs only s_x^2 + s_y^2 and s_xy, and with
    # u = x + y, v = x - y (centred):  s_x^2 + s_y^2 = (var u + var v) / 2,  s_xy = (var u - var v) / 4,
    # mu_x^2 + mu_y^2 = (U^2 + V^2) / 2,  2 mu_x mu_y = (U^2 - V^2) / 2  (U, V the absolute means of u, v), so
    #     S = (U^2 - V^2 + 2 C1)(var u - var v + 2 C2) / ((U^2 + V^2 + 2 C1)(var u + var v + 2 C2)).
    raw = np.empty((4, h, w, c), np.float32)  # u, v, u^2, v^2
    blurred = np.empty((4, h, w, c), np.float32)
    x = np.empty((h, w, c), np.float32)
    inner = (slice(pad, h - pad), slice(pad, w - pad))
    big_u, big_v, var_u, var_v, t = np.empty((5, h - 2 * pad, w - 2 * pad, c), np.float32)
    two_c1, two_c2 = 2 * c1, 2 * c2
    for i in range(n):
        np.subtract(reference[i], centre, out=x, dtype=np.float32)
        np.subtract(candidate[i], centre, out=raw[1], dtype=np.float32)  # y, for now
        np.add(x, raw[1], out=raw[0])
        np.subtract(x, raw[1], out=raw[1])
        np.square(raw[0], out=raw[2])
        np.square(raw[1], out=raw[3])
        for k in range(4):
            cv2.GaussianBlur(raw[k], ksize, SSIM_SIGMA, dst=blurred[k], sigmaY=SSIM_SIGMA,
                             borderType=cv2.BORDER_REFLECT)
        mu, mv, su, sv = (blurred[k][inner] for k in range(4))
        np.subtract(su, np.square(mu, out=var_u), out=var_u)  # subtract first: float32 cancellation
        np.subtract(sv, np.square(mv, out=var_v), out=var_v)
        np.add(mu, 2 * centre, out=big_u)  # absolute mean of u = x + y
        np.square(big_u, out=big_u)
        np.square(mv, out=big_v)
        np.subtract(big_u, big_v, out=t)
        t += two_c1  # U^2 - V^2 + 2 C1
        big_u += big_v
        big_u += two_c1  # U^2 + V^2 + 2 C1
        np.subtract(var_u, var_v, out=big_v)
        big_v += two_c2  # var u - var v + 2 C2
        t *= big_v  # numerator
        var_u += var_v
        var_u += two_c2  # var u + var v + 2 C2
        big_u *= var_u  # denominator
        t /= big_u
        out[i] = t.sum(dtype=np.float64) / t.size  # equal pixels per channel: the mean of channel means
