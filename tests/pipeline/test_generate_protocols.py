"""Protocols that a copying model cannot pass, copy detection, and the reference-inference options.

The ``copycat`` fixture returns its input's unmasked reference channels and ignores the audio. In the
deployment pipeline those channels are the frame being re-drawn, so it reconstructs perfectly: only copy
detection, a distant reference frame and cross-driven sync can tell it from lip-sync.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from evalkit.cli import main
from evalkit.config.contract import Contract
from evalkit.metrics.output_stats import OutputStats
from evalkit.pipeline.paste import Paster
from evalkit.pipeline.generate import compute_audio_features, template_index
from evalkit.record.summary import load_run
from tests.conftest import release_suite_data, short_audio, write_suite

SECONDS = 4  # 97 frames: enough for the fixture's sync to be reliable at the default +/-15 lags


@pytest.fixture(scope="module")
def protocol_run(fixtures_dir, tmp_path_factory):
    """suites/release.yaml (three protocols, its gates) with reference and copycat as the models."""
    tmp = tmp_path_factory.mktemp("protocols")
    data = release_suite_data(fixtures_dir, tmp, SECONDS)
    candidate = data["models"][0]
    data["models"] = [dict(candidate, name="reference"),
                      dict(candidate, name="copycat", generator=str(fixtures_dir / "models" / "copycat.onnx"))]
    suite = write_suite(tmp / "protocols.yaml", data)
    code = main(["run", str(suite), "--out", str(tmp / "reports")])
    run_dir = sorted((tmp / "reports" / "release").iterdir())[-1]
    return code, run_dir, load_run(run_dir).to_json_dict()


def summary(record: dict) -> dict[tuple[str, str], dict]:
    return {(e["model"], e["summary"]["protocol"]): e["summary"] for e in record["runs"]}


def failed_gates(record: dict, model: str) -> set[tuple[str, str]]:
    return {(g["gate"], g["protocol"]) for g in record["gates"] if g["model"] == model and not g["passed"]}


def test_copycat_passes_same_reconstruction_on_psnr_but_is_flagged_as_a_copy(protocol_run):
    _, _, record = protocol_run
    rows = summary(record)
    copycat, reference = rows[("copycat", "reconstruction")], rows[("reference", "reconstruction")]
    assert math.isinf(float(copycat["psnr_mean"])) and float(copycat["ssim_min"]) == 1.0  # a perfect score
    assert copycat["copy_flag"] == 1 and math.isinf(float(copycat["copy_mouth_psnr"]))
    # The drawn fixture's exact re-draw is close to its input but not a copy (46 dB over 317 frames).
    assert reference["copy_flag"] == 0 and float(reference["copy_mouth_psnr"]) < 50
    assert float(reference["psnr_mean"]) > 50


def test_a_distant_reference_frame_makes_the_copy_draw_the_wrong_mouth(protocol_run):
    _, _, record = protocol_run
    rows = summary(record)
    assert float(rows[("copycat", "distant")]["mouth_psnr_mean"]) < 35  # another frame's mouth
    assert float(rows[("reference", "distant")]["mouth_psnr_mean"]) > 45  # the mouth follows the audio
    assert rows[("copycat", "distant")]["copy_flag"] == 1 and rows[("reference", "distant")]["copy_flag"] == 0


def test_cross_driven_sync_follows_the_driving_speech_only_for_lip_sync(protocol_run):
    _, _, record = protocol_run
    rows = summary(record)
    reference, copycat = rows[("reference", "dubbed")], rows[("copycat", "dubbed")]
    assert reference["sync_reliable"] == 1 and abs(reference["sync_offset_frames"]) <= 1
    assert reference["psnr_mean"] is None  # no ground truth when dubbing
    assert not (copycat["sync_reliable"] == 1 and abs(copycat["sync_offset_frames"]) <= 1)
    assert float(reference["mouth_sharpness_ratio"]) > 0


def test_gates_pass_reference_and_fail_copycat_with_reasons(protocol_run):
    code, _, record = protocol_run
    assert code == 1
    assert failed_gates(record, "reference") == set()
    failed = failed_gates(record, "copycat")
    copy_gate = "the output does not copy its input's reference frame"
    assert {(copy_gate, p) for p in ("reconstruction", "distant", "dubbed")} <= failed
    assert ("the mouth follows the audio, not the reference frame", "distant") in failed
    assert ("dubbed lips in sync with the driving speech (+/-1 frame)", "dubbed") in failed
    assert ("psnr_mean >= 50", "reconstruction") not in failed  # it does reconstruct perfectly


def test_every_output_row_and_folder_names_its_protocol(protocol_run):
    _, run_dir, record = protocol_run
    table = pd.read_csv(run_dir / "summary.csv")
    assert sorted(set(table["protocol"])) == ["distant", "dubbed", "reconstruction"]
    folders = {e["folder"] for e in record["runs"]}
    assert {"copycat__cpu__talking_head", "copycat__cpu__talking_head__distant",
            "copycat__cpu__talking_head__dubbed"} <= folders
    html = (run_dir / "report.html").read_text()
    assert "NEAR-COPY" in html and "copycat / cpu / talking_head / distant" in html


def test_signoff_of_copycat_exits_1_saying_it_copies_its_input(fixtures_dir, tmp_path, capsys):
    # 2 s of audio: the copy gate fails on every protocol whatever the length (a copy scores infinite dB).
    data = release_suite_data(fixtures_dir, tmp_path, 2)
    # the sign-off's verdict and record are checked here: no gate reads dlib's face metrics (protocol_run
    # measures them under the three protocols)
    data["metrics"] = dict(data["metrics"], face=False)
    suite = write_suite(tmp_path / "release.yaml", data)
    code = main(["signoff", str(suite), "--model", str(fixtures_dir / "models" / "copycat.onnx"),
                 "--out", str(tmp_path / "reports")])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out and "copy its input's reference frame" in out
    record = [line for line in out.splitlines() if line.endswith("signoff.json")][-1]
    # The record of a failed sign-off is intact: --json says verified, and that only integrity was checked.
    assert main(["signoff", "verify", record, "--model", str(fixtures_dir / "models" / "copycat.onnx"), "--json"]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified == {"record": record, "model": str(fixtures_dir / "models" / "copycat.onnx"), "verified": True,
                        "origin_checked": False, "problems": []}


def test_a_distant_reference_needs_a_long_enough_template(fixtures_dir, tmp_path, capsys):
    data = release_suite_data(fixtures_dir, tmp_path, SECONDS)
    data["protocols"] = [{"name": "far", "reference": "distant", "min_distance": 1000}]
    data["gates"] = []
    suite = write_suite(tmp_path / "far.yaml", data)
    assert main(["run", str(suite), "--out", str(tmp_path / "reports")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "protocol 'far'" in err[0] and "at least 2000" in err[0]
    assert not (tmp_path / "reports").exists()  # refused before anything was written


# --- Reproducing the reference inference script exactly -------------------------------------------

def synctalk_walk(frames: int, template_frames: int) -> list[int]:
    """The template walk of SyncTalk_2D's inference script, transcribed: it steps before it reads."""
    last = template_frames - 1
    img_idx, step, out = 0, 0, []
    for _ in range(frames):
        if img_idx > last - 1:
            step = -1
        if img_idx < 1:
            step = 1
        img_idx += step
        out.append(img_idx)
    return out


def test_template_start_1_walks_the_template_as_the_reference_script():
    for t in (2, 3, 5, 8):
        contract = Contract(template_start=1)
        assert [template_index(i, t, contract) for i in range(40)] == synctalk_walk(40, t)
    # The default is the contract's walk: 0, 1, ..., T-1, T-2, ..., 0, 1, ...
    assert [template_index(i, 4, Contract()) for i in range(8)] == [0, 1, 2, 3, 2, 1, 0, 1]


def test_padded_features_frame_count_adds_the_end_padding(fixtures_dir, tmp_path):
    audio = short_audio(fixtures_dir, tmp_path, 2)
    encoder = fixtures_dir / "models" / "audio_encoder.onnx"
    plain = compute_audio_features(audio, encoder, None, Contract())
    padded = compute_audio_features(audio, encoder, None, Contract(frame_count="padded_features"))
    assert plain.frames == 47  # int((161 - 16) / 80 * 25) + 2 for 2 s of audio (161 mel frames)
    assert padded.frames == plain.frames + 2 == len(padded.features)  # one per padded row, as the script loops


def test_wrap_cast_wraps_exactly_where_a_plain_uint8_cast_does():
    # Raw outputs x 255: 127.5, 256.5, -1.5, 382.5, 255.9 (hand-computed uint8 below).
    values = np.array([127.5, 256.5, -1.5, 382.5, 255.9], np.float32) / np.float32(255)
    output = np.zeros((1, 3, 1, 5), np.float32)
    output[0, :, 0, :] = values
    wrap = Paster(Contract(inner_box=(0, 0, 5, 1), mask_box=(0, 0, 5, 1), mouth_box=(0, 0, 5, 1), crop_size=5,
                           output_cast="wrap"))
    clip = Paster(Contract(inner_box=(0, 0, 5, 1), mask_box=(0, 0, 5, 1), mouth_box=(0, 0, 5, 1), crop_size=5))
    assert wrap.to_uint8(output)[0, :, 0].tolist() == [127, 0, 255, 126, 255]  # 256 -> 0, -1 -> 255, 382 -> 126
    assert clip.to_uint8(output)[0, :, 0].tolist() == [127, 255, 0, 255, 255]
    stats = OutputStats(255.0)
    stats.update(values)
    assert stats.result()["wrap_count"] == 3  # exactly the three values whose pixels differ


def test_reference_options_run_end_to_end(fixtures_dir, tmp_path):
    """template_start 1 and padded_features in a real run: the record shows the walk and the frame count."""
    data = release_suite_data(fixtures_dir, tmp_path, 2)
    data["contract"] = {"template_start": 1, "frame_count": "padded_features", "output_cast": "wrap"}
    data["protocols"] = [{"name": "reconstruction"}]
    data["gates"] = []
    data["inputs"][0].pop("ground_truth")
    data["metrics"] = dict(data["metrics"], face=False)  # the walk and the frame count are checked, not faces
    suite = write_suite(tmp_path / "options.yaml", data)
    assert main(["run", str(suite), "--out", str(tmp_path / "reports")]) == 0
    record = load_run(sorted((tmp_path / "reports" / "release").iterdir())[-1]).to_json_dict()
    entry = record["runs"][0]
    assert entry["frames"] == 49  # 47 + 2
    assert entry["template_indices"] == synctalk_walk(49, 317)  # starts at template frame 1


def test_the_demo_shows_the_copy_being_caught(demo_run):
    record = load_run(demo_run).to_json_dict()
    flags = {e["model"]: e["summary"]["copy_flag"] for e in record["runs"]}
    assert flags.pop("copycat") == 1
    assert set(flags.values()) == {0}  # every model that re-draws the mouth, even the exact reference
    html = (demo_run / "report.html").read_text()
    assert "copycat / cpu / talking_head: a near-copy" in html and html.count("NEAR-COPY") == 1
