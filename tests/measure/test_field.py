"""The field's metrics in a run (summary.csv, the record, gates, the report) and ``evalkit metrics field``.

Known answers on the drawn fixture: ``copycat`` returns the frame it was given, which is the ground truth, so its
LPIPS is 0 and its FID and FVD are 0 up to rounding, while ``reference`` re-draws the mouth (above 0); ``lag2``
moves the mouth two frames late, which the landmarks' mouth opening reads as +2 like the built-in estimate.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data

from evalkit.cli import main
from evalkit.metrics.face import FACE_EXTRA_HINT, face_models_missing
from evalkit.record.field import FIELD_COLUMNS
from evalkit.record.summary import SUMMARY_COLUMNS, load_run
from tests.conftest import demo_suite_data, short_audio, write_suite
from tests.helpers import conv_net, pooled_net

SECONDS = 4  # 97 frames: 6 FVD clips of 16, and enough for the fixture's sync to be reliable
missing = face_models_missing()
needs_face = pytest.mark.skipif(missing is not None, reason=f"the face extra is not installed: {missing}")


@pytest.fixture(scope="module")
def field_run(fixtures_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("field")
    rng = np.random.default_rng(7)
    lpips = conv_net(tmp / "lpips.onnx", rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
                     rng.normal(size=(5, 4, 3, 3)).astype(np.float32))
    np.savez(tmp / "lin.npz", lin0=rng.uniform(0, 1, 4), lin1=rng.uniform(0, 1, 5))
    fid = pooled_net(tmp / "fid.onnx", rng.normal(size=(3, 8)).astype(np.float32), (2, 3), 3)
    fvd = pooled_net(tmp / "fvd.onnx", rng.normal(size=(48, 6)).astype(np.float32), (3, 4), 48)
    data = demo_suite_data(fixtures_dir)
    data["models"] = [m for m in data["models"] if m["name"] in ("reference", "lag2", "copycat")]
    data["inputs"][0]["audio"] = str(short_audio(fixtures_dir, tmp, SECONDS))
    data["metrics"] = {"trim_to_shortest": True, "lpips": {"model": str(lpips), "linear": str(tmp / "lin.npz")},
                       "fid": {"model": str(fid)}, "fvd": {"model": str(fvd), "region": "mouth"}}
    data["gates"] = [{"field": "cpbd_mouth", "op": ">", "value": 0},
                     {"field": "lpips_mean", "op": "<=", "value": 1e-9}]
    suite = write_suite(tmp / "field.yaml", data)
    code = main(["run", str(suite), "--out", str(tmp / "reports")])
    run_dir = sorted((tmp / "reports" / "demo").iterdir())[-1]
    return code, run_dir, load_run(run_dir).to_json_dict()


def rows(run_dir) -> dict[str, dict]:
    table = pd.read_csv(run_dir / "summary.csv")
    return {r["model"]: r for r in table.to_dict("records")}


def test_every_field_column_is_in_summary_csv(field_run):
    _, run_dir, _ = field_run
    assert set(FIELD_COLUMNS) <= set(SUMMARY_COLUMNS)
    assert set(FIELD_COLUMNS) <= set(pd.read_csv(run_dir / "summary.csv").columns)


def test_copycat_scores_zero_lpips_fid_fvd_and_reference_does_not(field_run):
    _, run_dir, record = field_run
    r = rows(run_dir)
    assert r["copycat"]["lpips_mean"] == 0.0 and r["copycat"]["lpips_max"] == 0.0
    # 1e-6: copycat's frames are the ground truth's, so FID and FVD are 0 but for float64 rounding (sqrtm of the
    # feature covariances); reference's re-drawn mouth is checked to score above copycat's
    assert abs(r["copycat"]["fid"]) < 1e-6 and abs(r["copycat"]["fvd"]) < 1e-6
    assert r["reference"]["lpips_mean"] > 0 and r["reference"]["fid"] > abs(r["copycat"]["fid"])
    assert r["reference"]["fvd"] > abs(r["copycat"]["fvd"])
    for row in r.values():  # the sample counts beside the values
        assert row["fid_samples"] == row["frames"]
        assert row["fvd_clips"] == row["frames"] // 16
    entry = next(e for e in record["runs"] if e["model"] == "reference")
    assert entry["field"]["fvd"]["region"] == "mouth" and entry["field"]["fid"]["region"] == "inner"
    assert len(entry["field"]["lpips"]["values"]) == entry["frames"]


def test_gates_on_field_columns(field_run):
    code, _, record = field_run
    verdicts = {(g["model"], g["field"]): g["passed"] for g in record["gates"]}
    assert all(verdicts[(m, "cpbd_mouth")] for m in ("reference", "lag2", "copycat"))
    assert verdicts[("copycat", "lpips_mean")] and not verdicts[("reference", "lpips_mean")]
    assert code == 1  # a gate failed


def test_cpbd_of_every_run(field_run):
    _, run_dir, _ = field_run
    for row in rows(run_dir).values():
        assert 0 < row["cpbd_mouth"] <= 1 and 0 < row["cpbd_mouth_template"] <= 1


@needs_face
def test_landmarks_and_identity_of_every_run_with_ground_truth(field_run):
    _, run_dir, record = field_run
    r = rows(run_dir)
    # copycat's inner region is the ground truth's; pasted back (two resizes) its full frame differs a little
    assert r["copycat"]["lmd_mouth_mean"] < 1.0  # 0.46 px
    assert r["copycat"]["lmd_mouth_mean"] <= r["reference"]["lmd_mouth_mean"] < 1.0  # 0.65 px
    assert r["lag2"]["lmd_mouth_mean"] > 2 * r["reference"]["lmd_mouth_mean"]  # a late mouth is further off: 1.68
    for row in r.values():
        assert row["identity_template_max"] < 0.6 and row["identity_gt_max"] < 0.6  # the same drawn face
        assert row["identity_frames"] > 0 and row["lmd_all_mean"] >= 0
    entry = next(e for e in record["runs"] if e["model"] == "reference")
    assert entry["field"]["face"]["rect_from"].startswith("the detector")  # calibrated on the clip itself
    assert len(entry["field"]["face"]["lmd_mouth"]) == entry["frames"]


@needs_face
def test_landmark_sync_reads_the_lag(field_run):
    """On this 4 s clip the ground truth's own peak lies half-way between lags 0 and 1 (0.45 from its landmarks,
    0.5 built-in), so whole offsets may read 0 or 1: the peaks' positions between lags are compared."""
    _, run_dir, record = field_run
    r = rows(run_dir)
    faces = {e["model"]: e["field"]["face"] for e in record["runs"]}
    source = faces["reference"]["ground_truth_sync"]  # the ground truth's own landmarks against the audio
    assert source["reliable"] and all(f["ground_truth_sync"] == source for f in faces.values())
    assert r["reference"]["lm_sync_reliable"] == 1 and r["lag2"]["lm_sync_reliable"] == 1
    assert faces["reference"]["sync"]["peak_frames"] == pytest.approx(source["peak_frames"], abs=0.5)
    assert faces["lag2"]["sync"]["peak_frames"] - faces["reference"]["sync"]["peak_frames"] == pytest.approx(2, abs=0.5)
    assert r["lag2"]["lm_sync_agrees"] == 1 and r["lag2"]["sync_offset_frames"] == r["lag2"]["lm_sync_offset_frames"]


@needs_face
def test_report_shows_the_field_table(field_run):
    _, run_dir, _ = field_run
    page = (run_dir / "report.html").read_text()
    assert "The field&#39;s metrics" in page and "LMD mouth" in page
    assert "landmarks: offset +3, confidence" in page and "agreeing" in page  # lag2 on this clip: +3 both ways


@pytest.mark.skipif(missing is None, reason="the face extra is installed: this checks the run without it")
def test_without_the_extra_the_report_says_how_to_get_it(field_run):
    _, run_dir, record = field_run
    assert all(e["field"]["face_missing"] == FACE_EXTRA_HINT for e in record["runs"])
    assert rows(run_dir)["reference"]["lmd_mouth_mean"] != rows(run_dir)["reference"]["lmd_mouth_mean"]  # empty: NaN
    assert "evalkit[face]" in (run_dir / "report.html").read_text()


def test_where_the_extra_is_missing_the_face_part_says_so_and_the_rest_is_measured(field_run, fixtures_dir,
                                                                                    monkeypatch):
    """The same measuring code as a machine without evalkit[face] runs (the check of the extra answers "missing"):
    no face part, the one line in its place, no face column in the summary row, the run section's line."""
    import evalkit.measure.field as field_module
    from evalkit.config.contract import Contract
    from evalkit.config.suite import MetricsSpec
    from evalkit.pipeline.audio import load_audio
    from evalkit.pipeline.crop import load_crop_boxes
    from evalkit.record.field import field_row
    from evalkit.report.html import run_section

    _, run_dir, record = field_run
    entry = next(e for e in record["runs"] if e["model"] == "reference")
    monkeypatch.setattr(field_module, "face_models_missing", lambda: FACE_EXTRA_HINT)
    clip = fixtures_dir / "clip"
    field = field_module.measure_field(run_dir / entry["folder"], entry["frames"], entry["template_indices"],
                                       load_crop_boxes(clip / "crop_boxes.txt"), clip / "talking_head.mkv",
                                       clip / "talking_head.mkv", Contract(), MetricsSpec(),
                                       load_audio(clip / "speech.wav", 16000), entry["sync"])
    assert field["face"] is None and field["face_missing"] == FACE_EXTRA_HINT
    assert field["cpbd_mouth"] == entry["field"]["cpbd_mouth"]  # CPBD needs no extra
    from evalkit.record.schema import FieldMetrics
    from evalkit.record.summary import json_safe

    typed_field = FieldMetrics.model_validate(json_safe(field))
    row = field_row(typed_field)
    assert "lmd_mouth_mean" not in row and "identity_template_max" not in row and row["cpbd_mouth"] > 0
    typed = load_run(run_dir)
    typed_entry = next(e for e in typed.runs if e.model == "reference")
    section = run_section(run_dir, typed, typed_entry.model_copy(update={"field": typed_field}), [])
    assert ("LMD, identity", FACE_EXTRA_HINT) in section["facts"]


@pytest.fixture(scope="module")
def astronaut_frames(tmp_path_factory):
    """Three frames: the astronaut, a flat grey frame (no face), the astronaut blurred (never changed here)."""
    folder = tmp_path_factory.mktemp("astronaut") / "frames"
    folder.mkdir()
    image = skimage.data.astronaut()[:, :, ::-1]
    cv2.imwrite(str(folder / "0.png"), image)
    cv2.imwrite(str(folder / "1.png"), np.full_like(image, 128))
    cv2.imwrite(str(folder / "2.png"), cv2.GaussianBlur(image, (0, 0), 1.5))
    return folder


@pytest.fixture(scope="module")
def astronaut_json(astronaut_frames):
    """``evalkit metrics field --json`` of the astronaut frames against themselves, run once for the tests that
    read it (it was run three times, with the same arguments): (exit code, the JSON)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["metrics", "field", "--reference", str(astronaut_frames), "--candidate", str(astronaut_frames),
                     "--json"])
    return code, json.loads(out.getvalue())


@needs_face
def test_metrics_field_reports_a_frame_without_a_face(astronaut_frames, astronaut_json, capsys):
    code, result = astronaut_json
    assert code == 0
    assert result["no_face_frames"] == [1]
    assert result["lmd_mouth"][0] == 0.0 and result["lmd_mouth"][1] is None and result["lmd_mouth"][2] == 0.0
    assert result["lmd_mouth_mean"] == 0.0 and result["identity_max"] == 0.0
    assert main(["metrics", "field", "--reference", str(astronaut_frames), "--candidate", str(astronaut_frames)]) == 0
    text = capsys.readouterr().out
    assert "no face found in 1 of 3 reference frames (frames 1)" in text
    assert "LMD mouth (points 48-67) 0.000 px" in text


def test_metrics_field_cpbd_and_bad_options(astronaut_frames, astronaut_json, tmp_path, capsys):
    code, result = astronaut_json
    assert code == 0
    assert 0 < result["cpbd_candidate"] == result["cpbd_reference"] <= 1
    assert main(["metrics", "field", "--reference", str(astronaut_frames), "--candidate", str(astronaut_frames),
                 "--lpips", str(tmp_path / "absent.onnx")]) == 2
    assert "--lpips and --lpips-linear go together" in capsys.readouterr().err
    assert main(["metrics", "field", "--reference", str(astronaut_frames), "--candidate", str(astronaut_frames),
                 "--fid", str(tmp_path / "absent.onnx")]) == 2
    assert "absent.onnx: file not found" in capsys.readouterr().err
    assert not math.isnan(result["cpbd_reference"])


@needs_face
def test_metrics_field_times_the_landmark_opening_against_the_audio(astronaut_frames, astronaut_json, tmp_path,
                                                                    capsys):
    """A frame folder has no frame rate: no landmark sync, and no error; an audio file that is absent is a usage
    error naming it."""
    code, result = astronaut_json
    assert code == 0 and result["lm_sync"] is None
    assert main(["metrics", "field", "--reference", str(astronaut_frames), "--candidate", str(astronaut_frames),
                 "--audio", str(tmp_path / "absent.wav")]) == 2
    assert "absent.wav: file not found" in capsys.readouterr().err
