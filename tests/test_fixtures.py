"""The fixtures evalkit builds: deterministic bytes, and models that do what their names say."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from evalkit.config.contract import Contract
from evalkit.pipeline.crop import CropPreparer, load_crop_boxes
from evalkit.fixtures.build import build_fixtures
from evalkit.fixtures.models import NOISE_LEVELS
from evalkit.fixtures.talking_head import FaceDesign
from tests.conftest import decode


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_build_is_byte_for_byte_deterministic(fixtures_dir, tmp_path):
    again = build_fixtures(tmp_path / "again")
    first = json.loads((fixtures_dir / "manifest.json").read_text())
    assert again == first
    assert (tmp_path / "again" / "manifest.json").read_bytes() == (fixtures_dir / "manifest.json").read_bytes()


def test_clip_facts(fixtures_dir):
    manifest = json.loads((fixtures_dir / "manifest.json").read_text())
    facts = manifest["facts"]
    assert facts["video_frames"] == facts["audio_driven_frames"] == 317 and facts["video_frames"] / facts["fps"] >= 12
    assert 0.3 < facts["mouth_open_fraction"] < 0.9  # the mouth moves: open in speech, closed in pauses
    total = sum(f["bytes"] for f in manifest["files"].values())
    assert total < 20e6  # not committed, but kept small enough to build in seconds


def test_audio_encoder_outputs_the_window_mean(fixtures_dir):
    s = session(fixtures_dir / "models" / "audio_encoder.onnx")
    window = np.random.default_rng(0).uniform(-4, 4, (1, 1, 80, 16)).astype(np.float32)
    out = s.run(None, {"mel": window})[0]
    assert out.shape == (1, 512)
    np.testing.assert_allclose(out, window.mean(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["reference", "lag2", "noisy", "reference_fp16", "mobile_unet"])
def test_generators_have_the_exact_contract(fixtures_dir, name):
    s = session(fixtures_dir / "models" / f"{name}.onnx")
    shapes = {i.name: i.shape for i in s.get_inputs()}
    batch = "batch" if name == "mobile_unet" else 1
    assert shapes == {"image": [batch, 6, 320, 320], "audio": [batch, 32, 16, 16]}
    out = s.run(None, {"image": np.zeros((1, 6, 320, 320), np.float32), "audio": np.zeros((1, 32, 16, 16), np.float32)})[0]
    assert out.shape == (1, 3, 320, 320) and out.dtype == np.float32


def _inputs(fixtures_dir, frame_index, loudness_by_row):
    frame = decode(fixtures_dir / "clip" / "talking_head.mkv", frame_index + 1)[frame_index]
    box = load_crop_boxes(fixtures_dir / "clip" / "crop_boxes.txt")[frame_index]
    prep = CropPreparer(Contract())
    image = prep.prepare(frame, box).copy()
    audio = np.repeat(np.asarray(loudness_by_row, np.float32)[:, None], 512, axis=1).reshape(1, 32, 16, 16)
    return image, audio, prep.inner.copy()


def test_reference_ignores_the_reference_mouth_and_follows_row_7(fixtures_dir):
    d = FaceDesign()
    image, _, _ = _inputs(fixtures_dir, 40, [0] * 16)
    s = session(fixtures_dir / "models" / "reference.onnx")
    quiet = np.full(16, d.loud_lo - 1, np.float32)
    loud_row7 = quiet.copy()
    loud_row7[7] = d.loud_hi + 1
    loud_row5 = quiet.copy()
    loud_row5[5] = d.loud_hi + 1

    def mouth_pixels(audio_rows, model="reference"):
        out = session(fixtures_dir / "models" / f"{model}.onnx").run(
            None, {"image": image, "audio": np.repeat(audio_rows[:, None], 512, 1).reshape(1, 32, 16, 16)})[0]
        lips_bgr = np.array(d.lips[::-1]) / 255
        return int((np.abs(out[0] - lips_bgr[:, None, None]).max(axis=0) < 0.02).sum())

    closed, open7, open5 = mouth_pixels(quiet), mouth_pixels(loud_row7), mouth_pixels(loud_row5)
    assert open7 > 5 * closed  # loud row 7 opens the mouth wide
    assert open5 == closed  # reference does not read row 5 ...
    assert mouth_pixels(loud_row5, "lag2") == open7  # ... lag2 does, and draws the same mouth
    # The reference channels' own mouth is ignored: a black image region changes nothing inside the fill box.
    blank = image.copy()
    fu1, fv1, fu2, fv2 = d.fill_box
    y1, y2 = int(fv1 * 328) - 4 + 2, int(fv2 * 328) - 4 - 2
    x1, x2 = int(fu1 * 328) - 4 + 2, int(fu2 * 328) - 4 - 2
    blank[0, :3, y1:y2, x1:x2] = 0
    audio = np.repeat(loud_row7[:, None], 512, 1).reshape(1, 32, 16, 16)
    a = s.run(None, {"image": image, "audio": audio})[0]
    b = s.run(None, {"image": blank, "audio": audio})[0]
    assert np.array_equal(a[..., y1:y2, x1:x2], b[..., y1:y2, x1:x2])


def test_noisy_adds_exactly_the_fixed_pattern(fixtures_dir):
    image, audio, _ = _inputs(fixtures_dir, 10, np.full(16, -2.0))
    ref = session(fixtures_dir / "models" / "reference.onnx").run(None, {"image": image, "audio": audio})[0]
    noisy = session(fixtures_dir / "models" / "noisy.onnx").run(None, {"image": image, "audio": audio})[0]
    diff = np.round((noisy - ref) * 255, 3)
    assert set(np.unique(np.abs(diff))) == {float(NOISE_LEVELS)}  # no clipping on this face


def test_fp16_is_close_to_fp32_but_not_equal(fixtures_dir):
    image, audio, _ = _inputs(fixtures_dir, 10, np.full(16, -1.0))
    a = session(fixtures_dir / "models" / "reference.onnx").run(None, {"image": image, "audio": audio})[0]
    b = session(fixtures_dir / "models" / "reference_fp16.onnx").run(None, {"image": image, "audio": audio})[0]
    err = np.abs(a - b).max()
    assert 0 < err < 2e-3  # float16 has an 11-bit mantissa: ~5e-4 relative on values up to 1, plus the ellipse edge


def test_mobile_unet_is_in_the_real_models_size_class(fixtures_dir):
    manifest = json.loads((fixtures_dir / "manifest.json").read_text())
    assert 1.0 <= manifest["facts"]["mobile_unet_gflops_per_frame"] <= 5.0
    s = session(fixtures_dir / "models" / "mobile_unet.onnx")
    out = s.run(None, {"image": np.zeros((2, 6, 320, 320), np.float32), "audio": np.zeros((2, 32, 16, 16), np.float32)})[0]
    assert out.shape == (2, 3, 320, 320) and 0 <= out.min() and out.max() <= 1  # dynamic batch, sigmoid output
