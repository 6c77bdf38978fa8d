"""The 160 px family as a shipped contract preset (``contract: ultralight-160``), its model check and its fixture.

The preset's numbers are those of Ultralight-Digital-Human's inference script: a 168 px crop, the model's
[4:164] region, ``cv2.rectangle(img, (5, 5, 150, 145))`` as the mask, 8 feature rows (i - 4 .. i + 3, zero past
either end) reshaped to [16, 32, 32] (HuBERT, 25 fps) or [128, 16, 32] (WeNet, 20 fps). The fixture
``reference_160`` redraws the drawn clip's mouth at 160 px from the row of that window that holds the loudness
the ground truth follows, so through the preset's pipeline it reproduces the ground truth.
"""

from __future__ import annotations

import pandas as pd
import pytest

from evalkit.cli import main
from evalkit.config.contract import PRESETS, Contract, expand_preset
from evalkit.record.summary import load_run
from tests.conftest import demo_suite_data, short_audio, write_suite

SECONDS = 4


def test_preset_numbers_are_the_family_scripts():
    hubert = Contract().with_overrides({"preset": "ultralight-160", "audio_features": "hubert"})
    assert hubert.crop_size == 168 and hubert.inner_box == (4, 4, 164, 164)
    assert hubert.image_input_shape == (1, 6, 160, 160) and hubert.output_shape == (1, 3, 160, 160)
    assert hubert.mask_box == (5, 5, 155, 150)  # cv2.rectangle (x, y, w, h) = (5, 5, 150, 145), half-open
    assert (hubert.feature_window_before, hubert.feature_window_after, hubert.feature_pad_repeat) == (4, 3, 0)
    assert hubert.audio_input_shape == (16, 32, 32) and hubert.feature_dim == 2048 and hubert.fps == 25
    assert hubert.resize_interpolation == "bilinear"
    wenet = Contract().with_overrides({"preset": "ultralight-160", "audio_features": "wenet"})
    assert wenet.audio_input_shape == (128, 16, 32) and wenet.feature_dim == 8192 and wenet.fps == 20
    assert Contract().with_overrides({"preset": "ultralight-160"}) == hubert  # hubert unless told
    assert Contract().with_overrides({"preset": "ultralight-160", "fps": 30}).fps == 30  # overrides win
    with pytest.raises(ValueError, match="audio_features: 'wav2vec'"):
        expand_preset({"preset": "ultralight-160", "audio_features": "wav2vec"})
    assert set(PRESETS) == {"ultralight-160"}


def test_model_check_names_the_preset_for_a_160_px_export(fixtures_dir, capsys):
    model = fixtures_dir / "models" / "reference_160.onnx"
    assert main(["model", "check", str(model)]) != 0  # the default contract is 320 px
    out = capsys.readouterr()
    text = out.out + out.err
    assert "a 160 px export of the family" in text
    assert "contract: {preset: ultralight-160, audio_features: hubert}" in text


def test_model_check_passes_under_the_preset(fixtures_dir, tmp_path, capsys):
    contract = tmp_path / "contract.yaml"
    contract.write_text("preset: ultralight-160\naudio_features: hubert\n")
    model, encoder = fixtures_dir / "models" / "reference_160.onnx", fixtures_dir / "models" / "audio_encoder_160.onnx"
    assert main(["model", "check", str(model), str(encoder), "--contract", str(contract)]) == 0, \
        capsys.readouterr()


@pytest.fixture(scope="module")
def run_160(fixtures_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("preset160")
    data = demo_suite_data(fixtures_dir)
    data["contract"] = "ultralight-160"
    data["models"] = [{"name": "reference_160", "generator": str(fixtures_dir / "models" / "reference_160.onnx"),
                       "audio_encoder": str(fixtures_dir / "models" / "audio_encoder_160.onnx")}]
    data["inputs"][0]["audio"] = str(short_audio(fixtures_dir, tmp, SECONDS))
    data["metrics"] = {"trim_to_shortest": True}
    suite = write_suite(tmp / "p160.yaml", data)
    code = main(["run", str(suite), "--out", str(tmp / "reports")])
    run_dir = sorted((tmp / "reports" / "demo").iterdir())[-1]
    return code, run_dir, load_run(run_dir).to_json_dict()


def test_the_160_px_fixture_runs_end_to_end_under_the_preset(run_160):
    code, run_dir, record = run_160
    assert code == 0
    entry = record["runs"][0]
    assert entry["status"] == "ok"
    assert record["models"]["reference_160"]["contract"]["inner_box"] == [4, 4, 164, 164]
    row = pd.read_csv(run_dir / "summary.csv").iloc[0]
    assert row["psnr_mean"] > 35  # the 160 px redraw matches the ground truth's 160 px region
    assert row["full_psnr_mean"] > 35
    # in step with the ground truth: on this 4 s clip both peaks lie half-way between lags 0 and 1 (0.498, 0.503)
    assert row["sync_reliable"] == 1
    # abs 0.25 frame: the two peaks differ by 0.005 here (0.498, 0.503); a sync one frame off misses by 1
    assert entry["sync"]["peak_frames"] == pytest.approx(entry["ground_truth_sync"]["peak_frames"], abs=0.25)
    assert 0 < row["cpbd_mouth"] <= 1  # the 123 x 53 px mouth box: one 53 px block a step


def test_hubert_pairs_as_the_family_saves_them_are_read_as_rows(tmp_path):
    """The family's inference script saves HuBERT features as [frames, 2, 1024]: one 2048-value row a frame."""
    import numpy as np

    from evalkit.errors import UserError
    from evalkit.pipeline.audio_encoder import load_features

    hubert = Contract().with_overrides({"preset": "ultralight-160"})
    pairs = np.arange(5 * 2 * 1024, dtype=np.float32).reshape(5, 2, 1024)
    np.save(tmp_path / "speech_hu.npy", pairs)
    rows = load_features(tmp_path / "speech_hu.npy", 5, hubert)
    assert rows.shape == (5, 2048) and rows[3, 1024] == pairs[3, 1, 0]
    np.save(tmp_path / "bad.npy", pairs[:, :, :512])
    with pytest.raises(UserError, match=r"shape \[5, 1024\], expected \[frames, 2048\]"):
        load_features(tmp_path / "bad.npy", 5, hubert)
