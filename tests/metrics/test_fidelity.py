"""PSNR and SSIM against an independent reference (scikit-image) and hand-computed cases."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from evalkit.metrics import psnr, ssim, summarise
from evalkit.metrics.fidelity import SsimKernel, block_means, viewing_scale
from tests.conftest import REAL, decode, real_file

# The bound: scikit-image computes in float64; evalkit in float32 on
# centred values. Measured worst case on the real crops: 5e-7.
AGREEMENT = 1e-5


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255)


def distortions(frames: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Realistic distortions of (N, H, W, 3) frames, each the same shape."""
    rng = np.random.default_rng(seed)
    jpeg = np.stack([cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 35])[1], cv2.IMREAD_COLOR)
                     for f in frames])
    return {
        "jpeg": jpeg,
        "blur": np.stack([cv2.GaussianBlur(f, (5, 5), 1.2) for f in frames]),
        "noise": np.clip(frames + rng.normal(0, 6, frames.shape), 0, 255).astype(np.uint8),
        "shifted": np.roll(frames, (3, -2), axis=(1, 2)),
    }


def check_against_skimage(reference: np.ndarray, distorted: dict[str, np.ndarray]) -> None:
    for name, candidate in distorted.items():
        ours_ssim, ours_psnr = ssim(reference, candidate), psnr(reference, candidate)
        for i, (a, b) in enumerate(zip(reference, candidate)):
            assert abs(ours_ssim[i] - skimage_ssim(a, b)) < AGREEMENT, (name, i)
            assert abs(ours_psnr[i] - peak_signal_noise_ratio(a, b, data_range=255)) < AGREEMENT, (name, i)


def test_agrees_with_skimage_on_the_real_face_crops():
    real_file("face_crop328_0.png")
    frames = np.stack([cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1] for p in sorted(REAL.glob("*.png"))])
    assert frames.shape == (6, 328, 328, 3)
    check_against_skimage(frames, distortions(frames))


def test_agrees_with_skimage_on_the_fixture_clip(fixtures_dir):
    frames = decode(fixtures_dir / "clip" / "talking_head.mkv", 4)[:, 100:400, 150:500]
    check_against_skimage(frames, distortions(frames, seed=1))


def test_local_differences_agree_with_skimage_wherever_they_sit():
    """SSIM filters only around the pixels that differ (SsimKernel): a patch pasted anywhere, at the corners,
    touching a border or one pixel wide, must give scikit-image's whole-frame value."""
    real_file("face_crop328_0.png")
    face = cv2.imread(str(REAL / "face_crop328_0.png"), cv2.IMREAD_COLOR)[:, :, ::-1]
    rng = np.random.default_rng(7)
    patches = [(0, 0, 1, 1), (0, 0, 40, 40), (300, 300, 28, 28), (5, 5, 1, 30), (160, 0, 12, 328), (100, 320, 20, 8),
               (11, 11, 1, 1), (317, 4, 11, 3)] + [(*rng.integers(0, 320, 2), *rng.integers(1, 60, 2)) for _ in range(8)]
    for y, x, h, w in patches:
        other = face.copy()
        region = other[y:y + h, x:x + w]
        region[:] = np.clip(region.astype(int) + rng.integers(-60, 60, region.shape), 0, 255)
        assert abs(ssim(face, other)[0] - skimage_ssim(face, other)) < AGREEMENT, (y, x, h, w)


def test_psnr_and_ssim_from_one_look_are_the_two_functions_exactly():
    """SsimKernel.psnr_and_ssim (the streamed pass's: the squared error summed only where the frames differ) gives
    bit for bit what psnr and ssim give, with a local difference anywhere, none, or everywhere."""
    real_file("face_crop328_0.png")
    face = cv2.imread(str(REAL / "face_crop328_0.png"), cv2.IMREAD_COLOR)[:, :, ::-1]
    rng = np.random.default_rng(11)
    kernel = SsimKernel()
    for y, x, h, w in [(0, 0, 0, 0), (0, 0, 328, 328), (0, 0, 1, 1), (300, 2, 28, 50), (100, 100, 3, 200)]:
        other = face.copy()
        region = other[y:y + h, x:x + w]
        region[:] = np.clip(region.astype(int) + rng.integers(-30, 31, region.shape), 0, 255)
        assert kernel.psnr_and_ssim(face, other) == (psnr(face, other)[0], ssim(face, other)[0]), (y, x, h, w)


def _numpy_block_means(frame: np.ndarray, f: int) -> np.ndarray:
    h, w = frame.shape[0] // f, frame.shape[1] // f
    return frame[: h * f, : w * f].astype(np.float64).reshape(h, f, w, f, -1).mean(axis=(1, 3))


def test_viewing_scale_is_the_ssim_authors_rule():
    """ssim.m (Wang et al.): f = max(1, round(min(M, N) / 256)), MATLAB's round (halves away from zero)."""
    assert [viewing_scale(s, 2000) for s in (11, 255, 383, 384, 639, 640, 800, 1080)] == [1, 1, 1, 2, 2, 3, 3, 4]
    assert viewing_scale(2000, 384) == 2


def test_the_viewers_ssim_is_skimages_on_block_means_of_real_faces():
    """The viewer's picture (region mp4_face): PSNR of the full-size frames, SSIM of their f x f block means,
    against scikit-image on block means computed independently in float64, for real faces enlarged to a
    1080p face window's size (odd sizes: partial blocks left out) under realistic distortions."""
    real_file("face_crop328_0.png")
    faces = [cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1] for p in sorted(REAL.glob("*.png"))[:3]]
    frames = np.stack([cv2.resize(f, (901, 799), interpolation=cv2.INTER_CUBIC) for f in faces])
    scale = viewing_scale(799, 901)
    assert scale == 3
    kernel = SsimKernel()
    for name, candidate in distortions(frames, seed=2).items():
        for a, b in zip(frames, candidate):
            value, similarity = kernel.psnr_and_ssim(a, b, scale)
            assert value == psnr(a, b)[0] and abs(value - peak_signal_noise_ratio(a, b, data_range=255)) < 1e-9, name
            expected = skimage_ssim(_numpy_block_means(a, scale), _numpy_block_means(b, scale))
            assert abs(similarity - expected) < AGREEMENT, name
            assert abs(similarity - kernel.psnr_and_ssim(a, b)[1]) > 1e-4, name  # another measure than scale 1
    assert kernel.psnr_and_ssim(frames[0], frames[0], scale) == (math.inf, 1.0)


@pytest.mark.parametrize("shape, f", [((10, 12, 3), 2), ((11, 13, 3), 3), ((64, 40, 1), 4), ((49, 49, 3), 7)])
def test_block_means_are_the_mean_of_each_whole_block(shape, f):
    frame = np.random.default_rng(f).integers(0, 256, shape, dtype=np.uint8)
    got = block_means(frame, f)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _numpy_block_means(frame, f), rtol=1e-7, atol=0)


def test_identical_frames_give_inf_and_one():
    a = np.random.default_rng(0).integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    assert np.isposinf(psnr(a, a)).all()
    assert (ssim(a, a) == 1.0).all()


@pytest.mark.parametrize("d", [1, 5, 20, 100])
def test_constant_offset_of_d_grey_levels(d):
    a = np.full((2, 16, 16, 3), 100, np.uint8)
    b = a + np.uint8(d)
    # atol 1e-12 dB: the squared error d^2 is an exact integer in float64, so only log10's rounding (~1e-14) differs
    np.testing.assert_allclose(psnr(a, b), 20 * math.log10(255 / d), rtol=0, atol=1e-12)


def test_single_frame_and_shape_checks():
    a = np.zeros((20, 20, 3), np.uint8)
    assert psnr(a, a + 1).shape == (1,) and ssim(a, a + 1).shape == (1,)
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(a, np.zeros((20, 21, 3), np.uint8))
    with pytest.raises(ValueError, match="too small"):
        ssim(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))


def test_threads_do_not_change_the_result():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (5, 40, 40, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (5, 40, 40, 3), dtype=np.uint8)
    assert np.array_equal(ssim(a, b, threads=1), ssim(a, b, threads=2))


def test_summary_counts_inf_instead_of_dropping_it():
    s = summarise([30.0, 40.0, math.inf, math.nan])
    assert s == {"mean": 35.0, "min": 30.0, "max": math.inf, "inf_count": 1, "nan_count": 1, "frames": 4}
    assert summarise([math.inf, math.inf])["mean"] == math.inf
