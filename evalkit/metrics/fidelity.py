"""Fidelity metrics: PSNR and SSIM per frame, as pure numpy functions over uint8 batches.

Inputs are (N, H, W, C) or a single (H, W, C) frame, uint8 (any integer or
float dtype is accepted and used as is); both arguments must have the same
shape. Each function returns one float64 value per frame, shape (N,).
``data_range`` defines the metric and has no default meaning beyond the
uint8 convention: pass it explicitly for other data.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numba
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
    """Mean squared error per frame: mean((reference - candidate)^2); exact for uint8 frames.

    uint8 frames go through OpenCV's NORM_L2SQR (integer squares summed in double: exact below 2**53);
    other dtypes through float64 numpy, one frame at a time.
    """
    reference, candidate = _as_batch(reference, candidate)
    n = len(reference)
    out = np.empty(n)
    size = reference[0].size if n else 1
    if reference.dtype == np.uint8 and candidate.dtype == np.uint8:
        for i in range(n):
            out[i] = cv2.norm(reference[i], candidate[i], cv2.NORM_L2SQR) / size
        return out
    diff = np.empty(reference.shape[1:], np.float64)  # one frame, reused
    flat = diff.reshape(-1)
    for i in range(n):
        np.subtract(reference[i], candidate[i], out=diff, dtype=np.float64)
        out[i] = np.square(diff, out=diff).sum() / flat.size
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
    below 1e-6 of scikit-image's float64 result), and only around the pixels
    where the frames differ: where a whole window is equal, S is exactly 1
    (see ``SsimKernel``). Frames are split over ``threads`` worker threads
    (default: one per CPU).

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
        kernel = SsimKernel(float(data_range))
        for i in range(n):
            out[i] = kernel.frame(reference[i], candidate[i])
        return out
    bounds = np.linspace(0, n, workers + 1).astype(int)

    def part(lo: int, hi: int) -> None:
        kernel = SsimKernel(float(data_range))
        for i in range(lo, hi):
            out[i] = kernel.frame(reference[i], candidate[i])

    with ThreadPoolExecutor(workers) as pool:  # OpenCV and numpy release the GIL in the heavy parts
        for job in [pool.submit(part, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]:
            job.result()
    return out


VIEWING_SCALE_SIDE = 256  # Wang et al.'s ssim.m: downsample by round(min(H, W) / 256)


def viewing_scale(height: int, width: int) -> int:
    """The factor by which SSIM's inputs are downsampled for a viewer's picture: ``max(1, round(min(H, W) / 256))``
    (the automatic downsampling of the SSIM authors' reference implementation, ssim.m, Wang et al. 2004: one
    factor for a picture of that size seen from a typical distance; MATLAB's rounding, halves up).

    >>> viewing_scale(354, 388), viewing_scale(800, 900), viewing_scale(1080, 1920)
    (1, 3, 4)
    """
    return max(1, math.floor(min(height, width) / VIEWING_SCALE_SIDE + 0.5))


def block_means(frame: np.ndarray, scale: int, out: np.ndarray | None = None) -> np.ndarray:
    """The means of ``scale`` x ``scale`` blocks of an (H, W, C) uint8 frame, in float32: (H // scale, W // scale,
    C), each the block's integer sum divided by scale^2 (correctly rounded to float32).

    The last H mod scale rows and W mod scale columns, which fill no whole block, are left out. ``out``: a
    buffer of that shape to fill.

    >>> block_means(np.arange(16, dtype=np.uint8).reshape(4, 4, 1), 2)[..., 0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    frame = np.ascontiguousarray(frame, np.uint8)
    h, w, c = frame.shape[0] // scale, frame.shape[1] // scale, frame.shape[2]
    if out is None:
        out = np.empty((h, w, c), np.float32)
    if out.shape != (h, w, c) or out.dtype != np.float32:
        raise ValueError(f"out is {out.shape} {out.dtype}, expected ({h}, {w}, {c}) float32")
    _block_means(frame.reshape(frame.shape[0], -1), scale, c, out.reshape(h, w * c),
                 np.empty(w * scale * c, np.int32))
    return out


@numba.njit(nogil=True, cache=True)
def _block_means(frame, scale, c, out, row):  # pragma: no cover (compiled)
    """Rows of (H, W * C) views: the ``scale`` rows of a block summed into ``row`` with unit stride (vectorised),
    then each block's ``scale`` columns."""
    h, wc = out.shape
    n = wc * scale
    d = np.float32(scale * scale)
    for i in range(h):
        row[:] = 0
        for k in range(scale):
            src = frame[i * scale + k]
            for x in range(n):
                row[x] += src[x]
        dst = out[i]
        for j in range(wc // c):
            for ch in range(c):
                total = 0
                for k in range(scale):
                    total += row[(j * scale + k) * c + ch]
                dst[j * c + ch] = np.float32(total) / d


class SsimKernel:
    """SSIM of one frame pair at a time (``ssim``'s definition), with its buffers kept between frames.

    Only the rectangle around the pixels where the two frames differ is filtered: a pixel whose whole
    window (``pad`` = 5 pixels each way) is equal in both frames has v = x - y = 0 there, so its filtered
    V and var v are exactly 0 and its S is exactly (U^2 + 2 C1)(var u + 2 C2) / (the same) = 1. Those
    pixels add exactly 1 each; the rest are computed on the rectangle grown by two window radii (clipped
    to the frame, where the reflected border is the frame's own), so every filtered value they use is the
    one a whole-frame pass computes. A pasted-back frame whose ground truth equals the template outside the
    face costs only the face's rectangle.
    """

    def __init__(self, data_range: float = 255.0):
        self.data_range = float(data_range)
        self.pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
        self._size = 0
        self._diff: np.ndarray | None = None
        self._row: np.ndarray | None = None
        self._scaled: np.ndarray | None = None  # the two frames' block means (``psnr_and_ssim``'s ssim_scale)

    def _buffers(self, shape: tuple[int, int, int]) -> None:
        size = shape[0] * shape[1] * shape[2]
        if size > self._size:  # grown, never shrunk: frames of one run share one set
            self._size = size
            self._flat = np.empty((4, size), np.float32)
        if self._row is None or len(self._row) < shape[1] * shape[2]:
            self._row = np.empty(shape[1] * shape[2], np.float32)  # one row of S
        if self._diff is None or self._diff.shape != shape:
            self._diff = np.empty(shape, np.uint8)

    def _planes(self, k: int, shape: tuple[int, ...]) -> np.ndarray:
        """Plane ``k`` of the flat buffers, viewed contiguously as ``shape``."""
        return self._flat[k, : int(np.prod(shape))].reshape(shape)

    def frame(self, reference: np.ndarray, candidate: np.ndarray) -> float:
        """SSIM of two (H, W, C) frames (uint8, or any dtype used as is)."""
        return self._measure(reference, candidate, with_psnr=False)[1]

    def psnr_and_ssim(self, reference: np.ndarray, candidate: np.ndarray, ssim_scale: int = 1) -> tuple[float, float]:
        """PSNR (``psnr``'s definition, with the kernel's data range) and SSIM of two (H, W, C) frames, from one
        look at where they differ: for uint8 frames the squared error is summed over the rectangle that holds
        every differing pixel (the same integer sum as over the whole frame: the rest adds zeros).

        ``ssim_scale`` > 1 (``viewing_scale``): PSNR as always, SSIM of the frames' ``block_means`` at that scale
        (the viewer's picture: output.mp4 against its ground truth)."""
        if ssim_scale == 1:
            return self._measure(reference, candidate, with_psnr=True)
        err = mse(reference, candidate)[0]
        h, w, c = reference.shape[0] // ssim_scale, reference.shape[1] // ssim_scale, reference.shape[2]
        if self._scaled is None or self._scaled.shape[1:] != (h, w, c):
            self._scaled = np.empty((2, h, w, c), np.float32)
        a = block_means(reference, ssim_scale, self._scaled[0])
        b = block_means(candidate, ssim_scale, self._scaled[1])
        return self._psnr(err), (1.0 if err == 0 else self._measure(a, b, with_psnr=False)[1])

    def _psnr(self, err) -> float:
        """PSNR of a mean squared error (``psnr``'s formula): inf for 0, nan for nan."""
        with np.errstate(divide="ignore"):
            return float(10.0 * np.log10(self.data_range ** 2 / np.float64(err)))

    def _measure(self, reference: np.ndarray, candidate: np.ndarray, with_psnr: bool) -> tuple[float, float]:
        h, w, c = reference.shape
        pad = self.pad
        self._buffers(reference.shape)
        err = math.nan
        if reference.dtype == np.uint8 and candidate.dtype == np.uint8:
            cv2.absdiff(reference, candidate, dst=self._diff)
            x, y, bw, bh = cv2.boundingRect(self._diff.reshape(h, w * c))
            if bw == 0:
                return math.inf, 1.0  # equal frames: no error, every window equal
            y0, y1, x0, x1 = y, y + bh, x // c, (x + bw - 1) // c + 1
            if with_psnr:
                err = cv2.norm(reference[y0:y1, x0:x1], candidate[y0:y1, x0:x1], cv2.NORM_L2SQR) / reference.size
        else:
            y0, y1, x0, x1 = 0, h, 0, w
            if with_psnr:
                err = float(mse(reference, candidate)[0])
        return self._psnr(err), self._ssim_in(reference, candidate, h, w, c, pad, y0, y1, x0, x1)

    def _ssim_in(self, reference, candidate, h, w, c, pad, y0, y1, x0, x1) -> float:
        """SSIM given the rectangle [y0, y1) x [x0, x1) outside which the frames are equal."""
        # pixels whose S may differ from 1 (within the measured area, which excludes a pad-wide border)
        iy0, iy1 = max(y0 - pad, pad), min(y1 + pad, h - pad)
        ix0, ix1 = max(x0 - pad, pad), min(x1 + pad, w - pad)
        if iy0 >= iy1 or ix0 >= ix1:
            return 1.0
        # the input those pixels' windows read, and the windows of that input's own filtered values
        sy0, sy1 = max(iy0 - 2 * pad, 0), min(iy1 + 2 * pad, h)
        sx0, sx1 = max(ix0 - 2 * pad, 0), min(ix1 + 2 * pad, w)
        inner = _ssim_rect_sum(self, reference, candidate, (sy0, sy1, sx0, sx1),
                               (slice(iy0 - sy0, iy1 - sy0), slice(ix0 - sx0, ix1 - sx0)))
        area = (h - 2 * pad) * (w - 2 * pad) * c
        computed = (iy1 - iy0) * (ix1 - ix0) * c
        return (inner + (area - computed)) / area


def _ssim_map_sum(kernel: SsimKernel, reference: np.ndarray, candidate: np.ndarray, keep: tuple[slice, slice]) -> float:
    """Sum of the SSIM map over ``keep`` of the (h, w, c) frames, in float64 (the whole frames filtered)."""
    h, w, _ = reference.shape
    kernel._buffers(reference.shape)
    return _ssim_rect_sum(kernel, reference, candidate, (0, h, 0, w), keep)


def _ssim_rect_sum(kernel: SsimKernel, reference: np.ndarray, candidate: np.ndarray,
                   rect: tuple[int, int, int, int], keep: tuple[slice, slice]) -> float:
    """Sum of the SSIM map over ``keep`` (slices of the rectangle) of the rectangle ``rect`` = (y0, y1, x0, x1) of
    two (H, W, C) frames, filtered as a picture of its own (borders reflected at the rectangle's edges), in float64.

    Four float32 planes, reused in place: u, v and their squares, each filtered in place; S itself is computed in
    a compiled pass and summed in float64.
    """
    y0, y1, x0, x1 = rect
    c = reference.shape[2]
    pad, data_range = kernel.pad, kernel.data_range
    c1, c2 = np.float32((SSIM_K1 * data_range) ** 2), np.float32((SSIM_K2 * data_range) ** 2)
    centre = np.float32(data_range / 2)
    ksize = (2 * pad + 1, 2 * pad + 1)
    # Four filtered planes per frame instead of five: SSIM needs only s_x^2 + s_y^2 and s_xy, and with
    # u = x + y, v = x - y (centred):  s_x^2 + s_y^2 = (var u + var v) / 2,  s_xy = (var u - var v) / 4,
    # mu_x^2 + mu_y^2 = (U^2 + V^2) / 2,  2 mu_x mu_y = (U^2 - V^2) / 2  (U, V the absolute means of u, v), so
    #     S = (U^2 - V^2 + 2 C1)(var u - var v + 2 C2) / ((U^2 + V^2 + 2 C1)(var u + var v + 2 C2)).
    shape = (y1 - y0, x1 - x0, c)
    u, v, uu, vv = (kernel._planes(k, shape) for k in range(4))
    # The compiled passes read rows of (H, W * C) views with unit stride, so that they run in vector registers
    # (a 3-deep loop over (h, w, c) did not); the filter sees the same memory as (h, w, c) planes.
    flat = [plane.reshape(shape[0], shape[1] * c) for plane in (u, v, uu, vv)]
    ref2 = np.ascontiguousarray(reference).reshape(reference.shape[0], -1)
    cand2 = np.ascontiguousarray(candidate).reshape(candidate.shape[0], -1)
    _sum_difference_squares(ref2, cand2, y0, x0 * c, centre, *flat)
    for plane in (u, v, uu, vv):  # in place: each plane becomes its Gaussian-weighted local mean
        cv2.GaussianBlur(plane, ksize, SSIM_SIGMA, dst=plane, sigmaY=SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)
    rows, cols = keep
    i0, i1, _ = rows.indices(shape[0])
    j0, j1, _ = cols.indices(shape[1])
    return _ssim_sum(*flat, i0, i1, j0 * c, j1 * c, 2 * c1, 2 * c2, np.float32(2 * centre), kernel._row)


@numba.njit(nogil=True, cache=True)
def _sum_difference_squares(reference, candidate, row0, col0, centre, u, v, uu, vv):  # pragma: no cover (compiled)
    """u = (x - c) + (y - c), v = x - y (exact: half-integers of at most 255 in magnitude) and their squares,
    in float32, from the (h, w * c) window at (row0, col0) of two (H, W * C) frames of any dtype: the four
    planes SSIM filters (see ``_ssim_rect_sum``). Row by row, on one-dimensional slices: the compiler runs
    those in vector registers (the same loop over two-dimensional indices, or (h, w, c), it did not)."""
    h, n = u.shape
    for i in range(h):
        _difference_squares_row(reference[row0 + i, col0:col0 + n], candidate[row0 + i, col0:col0 + n], centre,
                                u[i], v[i], uu[i], vv[i])


@numba.njit(nogil=True, cache=True)
def _difference_squares_row(x_row, y_row, centre, u, v, uu, vv):  # pragma: no cover (compiled)
    for j in range(u.shape[0]):
        x = np.float32(x_row[j]) - centre
        y = np.float32(y_row[j]) - centre
        a = x + y
        b = x - y
        u[j] = a
        v[j] = b
        uu[j] = a * a
        vv[j] = b * b


@numba.njit(nogil=True, cache=True)
def _ssim_sum(mu, mv, su, sv, i0, i1, j0, j1, two_c1, two_c2, centre2, row):  # pragma: no cover (compiled)
    """Sum of S over rows i0:i1 and columns j0:j1 of the filtered (h, w * c) planes: S of a row in float32
    arithmetic, in the order written (``_ssim_row``, into the float32 buffer ``row``), then the row summed in
    float64 (``_sum_row``) and the rows added. mu, mv: the means of the centred u and v; su, sv: the means of
    their squares (see ``_ssim_rect_sum``)."""
    total = 0.0
    s = row[: j1 - j0]
    for i in range(i0, i1):
        _ssim_row(mu[i, j0:j1], mv[i, j0:j1], su[i, j0:j1], sv[i, j0:j1], two_c1, two_c2, centre2, s)
        total += _sum_row(s)
    return total


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _ssim_row(mu, mv, su, sv, two_c1, two_c2, centre2, out):  # pragma: no cover (compiled)
    """S of one row (the numpy error model: a zero denominator would give inf, never an exception, and it cannot
    be zero, C1, C2 > 0; without the exception's branch the loop runs in vector registers)."""
    for j in range(out.shape[0]):
        a = mu[j]
        b = mv[j]
        var_u = su[j] - a * a  # subtract first: float32 cancellation
        var_v = sv[j] - b * b
        big_u = a + centre2  # the absolute mean of u = x + y
        uu = big_u * big_u
        vv = b * b
        numerator = (uu - vv + two_c1) * (var_u - var_v + two_c2)
        denominator = (uu + vv + two_c1) * (var_u + var_v + two_c2)
        out[j] = numerator / denominator


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _sum_row(values):  # pragma: no cover (compiled)
    """The float64 sum of a float32 row, the order of the additions left to the compiler (vector registers):
    it moves the sum by about 1e-16 of itself."""
    total = 0.0
    for j in range(values.shape[0]):
        total += np.float64(values[j])
    return total
