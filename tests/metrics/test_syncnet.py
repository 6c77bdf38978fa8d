"""SyncNet's LSE-D / LSE-C: the plumbing with a random network, the algebra against numpy."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from evalkit.metrics.syncnet import lse_metrics, mfcc, window_count
from evalkit.run import run_suite
from evalkit.config.suite import load_suite
from tests.conftest import demo_suite_data, real_file, short_audio, write_suite


def direct_lse(video: np.ndarray, audio: np.ndarray, vshift: int):
    """The definition, written out: mean over windows i of ||v_i - a_(i+k)||, zero rows past the ends."""
    n, dim = video.shape
    curve = []
    for k in range(-vshift, vshift + 1):
        dists = [np.linalg.norm(video[i] - (audio[i + k] if 0 <= i + k < n else np.zeros(dim))) for i in range(n)]
        curve.append(np.mean(dists))
    curve = np.array(curve)
    k_best = int(np.argmin(curve)) - vshift  # video i matches audio i + k_best
    return curve.min(), np.median(curve) - curve.min(), -k_best, curve


def test_lse_algebra_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((60, 16))
    video = np.roll(audio, 3, axis=0) + 0.1 * rng.standard_normal((60, 16))  # video i shows audio i - 3
    got = lse_metrics(video, audio, vshift=15)
    lse_d, lse_c, offset, curve = direct_lse(video, audio, 15)
    assert got["lse_d"] == pytest.approx(lse_d) and got["lse_c"] == pytest.approx(lse_c)
    np.testing.assert_allclose(got["curve"], curve)
    assert got["offset_frames"] == offset == 3  # the mouth 3 frames after its sound: +3 in evalkit's convention


def test_mfcc_matches_python_speech_features():
    psf = pytest.importorskip("python_speech_features")
    from evalkit.pipeline.audio import load_audio

    wav = (load_audio(real_file("speech_16k.wav"), 16000) * 32768).astype(np.int16)
    # atol 1e-9: both float64 on the same int16 samples (coefficients up to ~100: float64 rounding ~1e-13)
    np.testing.assert_allclose(mfcc(wav.astype(np.float64), 16000), psf.mfcc(wav, 16000), rtol=0, atol=1e-9)


def test_window_count():
    assert window_count(100, 400) == 96  # every v with frames v..v+4 and columns 4v..4v+19
    assert window_count(100, 60) == 11
    assert window_count(4, 400) == 0


def test_random_syncnet_through_a_suite_equals_numpy_on_its_embeddings(fixtures_dir, tmp_path):
    data = demo_suite_data(fixtures_dir)
    data["models"] = [m for m in data["models"] if m["name"] == "lag2"]
    # 2 s of the audio (47 frames, 43 SyncNet windows, more than the 31 lags): the comparison with numpy holds
    # at any length, and the recomputation below reads the same file.
    speech = short_audio(fixtures_dir, tmp_path, 2)
    data["inputs"][0]["audio"] = str(speech)
    data["metrics"] = {"syncnet": {"video_model": str(fixtures_dir / "models" / "syncnet_random_video.onnx"),
                                   "audio_model": str(fixtures_dir / "models" / "syncnet_random_audio.onnx"),
                                   "vshift": 15},
                       "trim_to_shortest": True}  # the ground truth's 317 frames against the 47 generated
    data["timing"] = {"warmup": 1, "min_timed_frames": 3, "min_seconds": 0}
    run_dir = run_suite(load_suite(write_suite(tmp_path / "s.yaml", data)), out=tmp_path, log=lambda *_: None)
    entry = json.loads((run_dir / "run.json").read_text())["runs"][0]
    got = entry["syncnet"]
    # Recompute: the same crops and MFCCs through the same two networks, then the definition in numpy.
    from evalkit.pipeline.audio import load_audio
    from evalkit.config.contract import Contract
    from evalkit.metrics.syncnet import MFCC_PER_WINDOW
    from tests.conftest import decode

    import cv2

    x1, y1, x2, y2 = Contract().mouth_box
    frames = decode(run_dir / entry["folder"] / "frames_inner.mkv")[:, y1:y2, x1:x2]
    crops = np.stack([cv2.resize(f, (224, 224), interpolation=cv2.INTER_LINEAR)[:, :, ::-1] for f in frames])
    cep = mfcc(load_audio(speech, 16000).astype(np.float64) * 32768, 16000).T
    n = window_count(len(frames), cep.shape[1])
    v_sess = ort.InferenceSession(str(fixtures_dir / "models" / "syncnet_random_video.onnx"))
    a_sess = ort.InferenceSession(str(fixtures_dir / "models" / "syncnet_random_audio.onnx"))
    video = np.stack([v_sess.run(None, {"video": crops[v:v + 5].transpose(3, 0, 1, 2)[None].astype(np.float32)})[0][0]
                      for v in range(n)])
    audio = np.stack([a_sess.run(None, {"mfcc": cep[None, None, :, 4 * v:4 * v + MFCC_PER_WINDOW].astype(np.float32)})[0][0]
                      for v in range(n)])
    lse_d, lse_c, offset, _ = direct_lse(video, audio, 15)
    # rel 1e-5: evalkit's distances in float32 (rounding ~6e-8 a step, summed over the embedding) against numpy's
    # float64; LSE-C is a difference of two distances (median minus minimum), so its relative error is larger: 1e-4
    assert got["lse_d"] == pytest.approx(lse_d, rel=1e-5) and got["lse_c"] == pytest.approx(lse_c, rel=1e-4, abs=1e-6)
    assert got["offset_frames"] == offset
    assert entry["summary"]["lse_d"] == got["lse_d"] and entry["summary"]["lse_c"] == got["lse_c"]
