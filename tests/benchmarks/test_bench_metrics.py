"""Speed of PSNR + SSIM: evalkit's batched version against scikit-image frame by frame.

Run with ``python -m pytest tests/benchmarks --benchmark-enable``; in the
normal test run (benchmarks disabled) each body runs once, as a test.
Speed is reported here, never asserted.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from evalkit.metrics import psnr, ssim
from tests.conftest import REAL, real_file

REPEAT = 10  # 6 real crops x 10 = 60 frames of 328x328


@pytest.fixture(scope="module")
def frame_pairs():
    real_file("face_crop328_0.png")
    frames = np.stack([cv2.imread(str(p))[:, :, ::-1] for p in sorted(REAL.glob("*.png"))] * REPEAT)
    jpeg = np.stack([cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 40])[1], cv2.IMREAD_COLOR)
                     for f in frames])
    return frames, jpeg


@pytest.mark.benchmark(group="psnr+ssim, 60 real 328x328 frames")
def test_evalkit_batched(benchmark, frame_pairs):
    a, b = frame_pairs
    result = benchmark(lambda: (psnr(a, b), ssim(a, b)))
    assert len(result[1]) == len(a)


@pytest.mark.benchmark(group="psnr+ssim, 60 real 328x328 frames")
def test_skimage_frame_by_frame(benchmark, frame_pairs):
    a, b = frame_pairs

    def per_frame():
        return [(peak_signal_noise_ratio(x, y, data_range=255),
                 structural_similarity(x, y, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=255)) for x, y in zip(a, b)]

    result = benchmark.pedantic(per_frame, rounds=5, iterations=1)
    assert len(result) == len(a)
