"""History of runs, and release sign-off records that can be verified."""

from __future__ import annotations

import json
import sqlite3

import pytest
import soundfile
import yaml

from evalkit.cli import main
from tests.conftest import REPO, demo_suite_data, write_suite


@pytest.fixture(scope="module")
def release_suite(fixtures_dir, tmp_path_factory):
    """suites/release.yaml on the test fixtures, with 4 s of the audio."""
    tmp = tmp_path_factory.mktemp("release")
    wav, sr = soundfile.read(fixtures_dir / "clip" / "speech.wav", dtype="float32")
    soundfile.write(tmp / "short.wav", wav[: 4 * sr], sr)
    data = yaml.safe_load((REPO / "suites" / "release.yaml").read_text())
    demo = demo_suite_data(fixtures_dir)
    data["models"][0].update(generator=demo["models"][0]["generator"], audio_encoder=demo["models"][0]["audio_encoder"])
    data["inputs"] = [dict(demo["inputs"][0], audio=str(tmp / "short.wav"))]
    data["metrics"] = {"trim_to_shortest": True, "sync_max_offset": 8}
    data["timing"] = {"warmup": 2, "min_timed_frames": 30, "min_seconds": 0}
    data.pop("output_dir")
    return tmp, write_suite(tmp / "release.yaml", data)


@pytest.fixture(scope="module")
def signed(release_suite, fixtures_dir):
    tmp, suite = release_suite
    code = main(["signoff", str(suite), "--model", str(fixtures_dir / "models" / "reference.onnx"),
                 "--out", str(tmp / "reports")])
    run_dir = sorted((tmp / "reports" / "release").iterdir())[-1]
    return code, run_dir


def test_signoff_passes_and_records_hashes_and_criteria(signed, release_suite, fixtures_dir):
    code, run_dir = signed
    record = json.loads((run_dir / "signoff.json").read_text())
    assert code == 0 and record["verdict"] == "PASS"
    assert len(record["criteria"]) == 9 and all(c["passed"] for c in record["criteria"])
    assert record["model"]["sha256"] == json.loads((fixtures_dir / "manifest.json").read_text())[
        "files"]["models/reference.onnx"]["sha256"]
    assert len(record["suite"]["sha256"]) == 64 and record["evalkit"] and len(record["digest"]) == 64
    assert "PASS" in (run_dir / "signoff.html").read_text()


def test_verify_untouched_altered_and_other_model(signed, fixtures_dir, tmp_path, capsys):
    _, run_dir = signed
    model = str(fixtures_dir / "models" / "reference.onnx")
    assert main(["signoff", "verify", str(run_dir / "signoff.json"), "--model", model]) == 0
    record = json.loads((run_dir / "signoff.json").read_text())
    record["criteria"][0]["value"] = 99.0  # one value changed
    altered = tmp_path / "signoff.json"
    altered.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["signoff", "verify", str(altered), "--model", model]) == 1
    assert "was altered" in capsys.readouterr().out
    other = str(fixtures_dir / "models" / "noisy.onnx")
    assert main(["signoff", "verify", str(run_dir / "signoff.json"), "--model", other]) == 1
    assert "is not the model this record signs off" in capsys.readouterr().out


def test_signoff_fails_a_model_that_misses_the_criteria(release_suite, fixtures_dir, capsys):
    tmp, suite = release_suite
    code = main(["signoff", str(suite), "--model", str(fixtures_dir / "models" / "noisy.onnx"),
                 "--out", str(tmp / "reports-noisy")])
    out = capsys.readouterr().out
    assert code == 1 and "sign-off FAIL" in out and "psnr_mean" in out


def test_history_shows_both_runs_in_order(release_suite, tmp_path, capsys):
    _, suite = release_suite
    for _ in range(2):
        assert main(["run", str(suite), "--out", str(tmp_path)]) == 0
    db = tmp_path / "history.sqlite"
    with sqlite3.connect(db) as con:
        run_ids = [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY created_utc, run_id")]
    assert len(run_ids) == 2
    capsys.readouterr()
    assert main(["history", "--db", str(db), "--suite", "release", "--field", "psnr_mean"]) == 0
    out = capsys.readouterr().out
    assert out.index(run_ids[0]) < out.index(run_ids[1])
    assert "psnr_mean:" in out and "candidate/cpu/talking_head" in out
    html = (tmp_path / "history.html").read_text()
    assert html.count("data:image/png;base64,") == 1  # the one field asked for
    assert run_ids[0] in html and run_ids[1] in html
    from evalkit.history import gate_limits, runs

    assert gate_limits(runs(db, "release"), "psnr_mean") == [(">=", 50.0, False)]  # drawn on the trend
    assert gate_limits(runs(db, "release"), "sync_offset_vs_ground_truth_frames") == [("<=", 1.0, True)]
