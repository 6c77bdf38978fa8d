"""LPIPS, FID and FVD: the formulas with tiny random ONNX networks of the right shapes (built here with onnx.helper,
run by ONNX Runtime) against independent numpy / scipy computations, and the Fréchet distance's closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.errors import UserError
from evalkit.metrics.perceptual import (FVD_CLIP, FeatureExtractor, FeatureGaussian, Lpips, frechet_distance,
                                        frechet_of)
from tests.helpers import conv_net, pooled_net

RNG = np.random.default_rng(20261207)


def conv3x3(x, w, stride=1):
    """Independent direct convolution (cross-correlation, zero padding 1), float64: x (N, C, H, W), w (K, C, 3, 3)."""
    n, c, h, wd = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out_h, out_w = (h - 1) // stride + 1, (wd - 1) // stride + 1
    out = np.zeros((n, w.shape[0], out_h, out_w))
    for dy in range(3):
        for dx in range(3):
            patch = padded[:, :, dy : dy + stride * out_h : stride, dx : dx + stride * out_w : stride]
            out += np.einsum("nchw,kc->nkhw", patch, w[:, :, dy, dx])
    return out


def test_lpips_equals_the_definition(tmp_path):
    w1 = RNG.normal(size=(4, 3, 3, 3)).astype(np.float32)
    w2 = RNG.normal(size=(5, 4, 3, 3)).astype(np.float32)
    model = conv_net(tmp_path / "alex_tiny.onnx", w1, w2)
    lin = [RNG.uniform(0, 1, 4), RNG.uniform(0, 1, 5)]
    np.savez(tmp_path / "lin.npz", lin0=lin[0], lin1=lin[1])
    a = RNG.integers(0, 256, (3, 12, 10, 3), dtype=np.uint8)
    b = a.copy()
    b[1] = np.clip(b[1].astype(int) + RNG.integers(-40, 40, b[1].shape), 0, 255)
    b[2] = RNG.integers(0, 256, b[2].shape)
    got = Lpips(model, tmp_path / "lin.npz")(a, b)

    def features(img):
        x = img.astype(np.float64).transpose(0, 3, 1, 2) / 255 * 2 - 1
        x = (x - np.array([-0.030, -0.088, -0.188])[:, None, None]) / np.array([0.458, 0.448, 0.450])[:, None, None]
        f1 = np.maximum(conv3x3(x, w1.astype(np.float64)), 0)
        return [f1, np.maximum(conv3x3(f1, w2.astype(np.float64), stride=2), 0)]

    expected = np.zeros(3)
    for f0, f1, w in zip(features(a), features(b), lin):
        for i in range(3):
            for y in range(f0.shape[2]):
                for x in range(f0.shape[3]):
                    u = f0[i, :, y, x] / (np.linalg.norm(f0[i, :, y, x]) + 1e-10)
                    v = f1[i, :, y, x] / (np.linalg.norm(f1[i, :, y, x]) + 1e-10)
                    expected[i] += np.sum(w * (u - v) ** 2) / (f0.shape[2] * f0.shape[3])
    assert got[0] == 0.0
    # rtol 2e-5: ONNX Runtime's float32 (unit-normalised features, weighted channel sums) against this float64
    # definition: float32 rounding (~6e-8 a step) over the channel and spatial sums
    np.testing.assert_allclose(got, expected, rtol=2e-5)
    assert got[2] > got[1] > 0


def test_lpips_weights_must_match_the_outputs(tmp_path):
    model = conv_net(tmp_path / "n.onnx", np.ones((4, 3, 3, 3), np.float32), np.ones((5, 4, 3, 3), np.float32))
    np.savez(tmp_path / "lin.npz", lin0=np.ones(4))
    with pytest.raises(UserError, match="2 outputs.*1 weight"):
        Lpips(model, tmp_path / "lin.npz")


def test_fid_features_equal_the_definition(tmp_path):
    weight = RNG.normal(size=(3, 8)).astype(np.float32)
    extractor = FeatureExtractor(pooled_net(tmp_path / "inception_tiny.onnx", weight, (2, 3), 3), "FID")
    frames = RNG.integers(0, 256, (5, 299, 299, 3), dtype=np.uint8)  # 299: the resize leaves them as they are
    means = (frames.astype(np.float64) / 127.5 - 1).mean(axis=(1, 2))  # (N, 3) in RGB order
    # rtol 1e-5: the network's float32 mean over 299x299 pixels (89,401 terms) against float64; atol 1e-6 for
    # features near 0, where a relative bound means nothing
    np.testing.assert_allclose(extractor.frames(frames), means @ weight, rtol=1e-5, atol=1e-6)


def test_fvd_clip_layout_equals_the_definition(tmp_path):
    weight = RNG.normal(size=(3 * FVD_CLIP, 6)).astype(np.float32)
    extractor = FeatureExtractor(pooled_net(tmp_path / "i3d_tiny.onnx", weight, (3, 4), 3 * FVD_CLIP), "FVD")
    clip = RNG.integers(0, 256, (FVD_CLIP, 224, 224, 3), dtype=np.uint8)
    per_frame = (clip.astype(np.float64) / 127.5 - 1).mean(axis=(1, 2))  # (16, 3)
    expected = per_frame.T.reshape(1, -1) @ weight  # [channel][time], as the [N, 3, T, H, W] layout
    # float32 against float64 means, as for FID above
    np.testing.assert_allclose(extractor.clip(clip), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="16 frames"):
        extractor.clip(clip[:15])


def test_frechet_closed_form_diagonal():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)  # 5 + 1 + 1 + 0
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected) == 7.0


def test_frechet_closed_form_scaled_covariance():
    a = RNG.normal(size=(6, 6))
    sigma = a @ a.T + np.eye(6)
    mu = RNG.normal(size=6)
    # S2 = c^2 S1: sqrtm(S1 S2) = c S1, so the distance is |mu1 - mu2|^2 + (1 - c)^2 tr(S1)
    # rel 1e-9: scipy's float64 sqrtm of a well-conditioned 6x6 matrix (eigenvalues >= 1) is good to ~1e-13
    assert frechet_distance(mu, sigma, mu + 0.5, 9 * sigma) == pytest.approx(6 * 0.25 + 4 * np.trace(sigma), rel=1e-9)


def test_frechet_of_identical_feature_sets_is_zero_and_gaussian_matches_numpy():
    rows = RNG.normal(size=(200, 16))
    a, b = FeatureGaussian(), FeatureGaussian()
    a.add(rows[:70])
    a.add(rows[70:])
    b.add(rows)
    mu, sigma = a.stats()
    # two batches merged against one pass, float64 on unit-normal rows: rounding ~1e-16 for the mean; the
    # covariance's merge subtracts products (cancellation), 1e-10 for that
    np.testing.assert_allclose(mu, rows.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(rows, rowvar=False), atol=1e-10)
    # 1e-8: the same rows on both sides, so the distance is 0 but for float64 rounding in sqrtm of the 16x16
    # covariance product
    assert abs(frechet_of(a, b)) < 1e-8
    # fewer samples than dimensions (a short run's FID): singular covariances still give a finite distance
    few = FeatureGaussian()
    few.add(rows[:5])
    assert np.isfinite(frechet_of(few, b)) and frechet_of(few, b) > 0


def test_frechet_sample_estimate_approaches_the_closed_form():
    n, d = 20000, 4
    mu2 = np.array([1.0, 0.0, -1.0, 0.5])
    a, b = FeatureGaussian(), FeatureGaussian()
    a.add(RNG.normal(size=(n, d)))
    b.add(RNG.normal(size=(n, d)) * 2 + mu2)  # N(mu2, 4 I): closed form |mu2|^2 + d (2 - 1)^2
    # rel 3 %: a sample estimate; at n = 20,000 the sampling error of the means (1/sqrt(n)) and variances
    # (sqrt(2/n)) is about 1 % of the 6.25 here, so 3 % is a few times it, while a trace term without the
    # factor 2 gives 14.25
    assert frechet_of(a, b) == pytest.approx(mu2 @ mu2 + d, rel=0.03)
