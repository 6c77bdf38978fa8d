"""CPBD (evalkit.metrics.cpbd) against the published algorithm walked pixel by pixel, and on a real face crop."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import scipy.ndimage
from skimage.feature import canny

from evalkit.metrics.cpbd import _sobel_vertical_edges, cpbd, edge_widths
from tests.conftest import real_file


def reference_widths(image: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The published Marziliano edge widths, one pixel at a time (python-cpbd 1.0.7's loops, as published)."""
    h, w = image.shape
    widths = np.zeros((h, w))
    gy, gx = np.gradient(image)
    angles = np.zeros((h, w))
    for r in range(h):
        for c in range(w):
            if gx[r, c] != 0:
                angles[r, c] = math.atan2(gy[r, c], gx[r, c]) * (180 / math.pi)
    if not np.any(angles):
        return widths
    q = 45 * np.round(angles / 45)
    for r in range(1, h - 1):
        for c in range(1, w - 1):
            if not edges[r, c]:
                continue
            if q[r, c] in (180, -180) or q[r, c] == 0:
                rising = q[r, c] == 0
                for m in range(101):
                    inner, outer = c - 1 - m, c - 2 - m
                    if outer < 0 or ((image[r, outer] - image[r, inner] >= 0) if rising
                                     else (image[r, outer] - image[r, inner] <= 0)):
                        break
                left = m + 1
                for m in range(101):
                    inner, outer = c + 1 + m, c + 2 + m
                    if outer >= w or ((image[r, outer] - image[r, inner] <= 0) if rising
                                      else (image[r, outer] - image[r, inner] >= 0)):
                        break
                widths[r, c] = left + m + 1
    return widths


def reference_cpbd(image: np.ndarray) -> float:
    image = image.astype(np.float64)
    edges, widths = canny(image), reference_widths(image, _sobel_vertical_edges(image))
    hist, total = np.zeros(101), 0
    for i in range(image.shape[0] // 64):
        for j in range(image.shape[1] // 64):
            block = np.s_[64 * i : 64 * (i + 1), 64 * j : 64 * (j + 1)]
            if np.count_nonzero(edges[block]) > 64 * 64 * 0.002:
                wb = widths[block][widths[block] != 0]
                jnb = 5 if int(image[block].max() - image[block].min()) <= 50 else 3
                for p in 1 - np.exp(-np.abs(wb / jnb) ** 3.6):
                    hist[int(round(p * 100))] += 1
                    total += 1
    return float(hist[:64].sum() / total)


def textured(seed: int = 3, shape=(128, 192)) -> np.ndarray:
    """Smoothed noise with sharp steps: edges of many widths in both directions."""
    rng = np.random.default_rng(seed)
    image = scipy.ndimage.gaussian_filter(rng.uniform(0, 255, shape), 2.0)
    image[:, 40:90] += 60
    image[70:, 120:] -= 50
    return np.clip(image, 0, 255).round()


def test_widths_equal_the_published_loops():
    image = textured()
    edges = _sobel_vertical_edges(image)
    assert edges.sum() > 100
    np.testing.assert_array_equal(edge_widths(image, edges), reference_widths(image, edges))


@pytest.mark.parametrize("blur", [0.0, 1.5])
def test_cpbd_equals_the_published_loops(blur):
    image = textured()
    if blur:
        image = scipy.ndimage.gaussian_filter(image, blur).round()
    # abs 1e-12: both in float64 from the same edge widths, only the order of the sums differs (~1e-16); one edge
    # counted differently moves CPBD by 1 / (number of edges)
    assert cpbd(image) == pytest.approx(reference_cpbd(image), abs=1e-12)


def test_flat_image_has_no_edge_block():
    assert math.isnan(cpbd(np.full((128, 128), 90, np.uint8)))
    assert math.isnan(cpbd(np.zeros((40, 300), np.uint8)))  # smaller than a block


def test_real_face_crop_sharp_beats_blurred():
    crop = cv2.cvtColor(cv2.imread(str(real_file("face_crop328_0.png"))), cv2.COLOR_BGR2RGB)
    mouth = crop[90:196, 26:273]  # the contract's mouth box (inner region [4:324] + mouth_box)
    sharp = cpbd(mouth)
    blurred = [cpbd(cv2.GaussianBlur(mouth, (0, 0), sigma)) for sigma in (1.0, 2.0)]
    assert sharp > blurred[0] > blurred[1]
    whole = cpbd(crop)
    assert whole > cpbd(cv2.GaussianBlur(crop, (0, 0), 1.5))
    # abs 1e-12: float64 both ways, as in test_cpbd_equals_the_published_loops
    assert cpbd(crop[:, :, 0]) == pytest.approx(reference_cpbd(crop[:, :, 0]), abs=1e-12)
