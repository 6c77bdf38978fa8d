"""The typed run record: today's version loads, old records migrate, typos and unknown versions are errors,
non-finite numbers round-trip; `evalkit record schema`; the record's floor imports nothing that generates."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pydantic
import pytest

from evalkit.cli import main
from evalkit.errors import UserError
from evalkit.record.io import atomic_output, write_json_atomic, write_text_atomic
from evalkit.record.layout import RUN_RECORD
from evalkit.record.schema import RECORD_SCHEMA_VERSION, RunRecord, validate_record
from evalkit.record.summary import load_run, load_run_record


def _entry(**changes) -> dict:
    """One finished entry as today's evalkit writes it (the parts a view reads; the rest null)."""
    entry = {
        "model": "reference", "backend": "cpu", "input": "talking_head", "protocol": "reconstruction",
        "protocol_kind": "reconstruction", "reference_frames": "same", "kind": "onnxruntime",
        "provider": "CPUExecutionProvider", "precision": "fp32", "driving_audio": "speech.wav",
        "status": "ok", "folder": "reference__cpu__talking_head", "frames": 3,
        "outputs": {"mp4": "a/output.mp4", "frames_full": "a/frames_full.mkv", "frames_inner": "a/frames_inner.mkv"},
        "timed_ms": [1.0, 2.0], "template_indices": [0, 1, 2],
        "fidelity": {r: {"psnr": ["inf", 30.5, "nan"], "ssim": [1.0, 0.9, "nan"]}
                     for r in ("inner", "mouth", "full", "mp4_full")},
        "sync": {"offset_frames": 0, "offset_ms": 0.0, "confidence": 5.0, "fps": 25.0, "no_signal": False,
                 "reliable": True, "reason": "", "peak_frames": 0.1, "lags": [-1, 0, 1], "curve": [0.1, 0.5, 0.2]},
        "copy": {"mouth_mse": [0.0, 4.0, 1.5], "psnr_db": 45.0},
        "summary": {"model": "reference", "psnr_mean": "inf", "throughput_fps": 500.0},
    }
    entry.update(changes)
    return entry


def _record(**changes) -> dict:
    record = {
        "schema_version": RECORD_SCHEMA_VERSION, "kind": "evalkit.run", "run_id": "20260101T000000Z-abcd",
        "created_utc": "2026-01-01T00:00:00+00:00", "finished_utc": "2026-01-01T00:01:00+00:00",
        "suite": {"name": "demo", "path": "/x/demo.yaml", "sha256": "0" * 64, "definition": {"name": "demo"}},
        "machine": {"cpu": "x"}, "versions": {"evalkit": "0"}, "available_providers": ["CPUExecutionProvider"],
        "models": {"reference": {"generator": {"path": "/x/g.onnx", "sha256": "1" * 64}, "audio_encoder": None,
                                 "audio_features": None, "contract": {"fps": 25}}},
        "inputs": {"talking_head": {"video": {"path": "/x/v.mp4", "sha256": "2" * 64},
                                    "audio": {"path": "/x/a.wav", "sha256": "3" * 64}, "crop_boxes": None,
                                    "landmarks": None, "ground_truth": {"path": "/x/v.mp4", "sha256": "2" * 64},
                                    "video_frames": 3, "fps": 25.0, "size": [64, 64]}},
        "runs": [_entry(), _entry(backend="cuda", status="skipped", reason="not available here", folder=None,
                                  outputs=None, frames=None, timed_ms=None, fidelity=None, sync=None, copy=None,
                                  template_indices=None, summary={"model": "reference"})],
        "parity": [],
    }
    record.update(changes)
    return record


def _write(folder, record) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_RECORD).write_text(json.dumps(record))


def test_todays_record_loads_with_every_key_and_non_finite_numbers_round_trip(tmp_path):
    _write(tmp_path / "run", _record())
    typed = load_run_record(tmp_path / "run")
    inner = typed.runs[0].fidelity["inner"]
    assert math.isinf(inner.psnr[0]) and math.isnan(inner.psnr[2])  # floats in the typed record
    assert math.isinf(typed.runs[0].summary.psnr_mean) and typed.runs[0].summary.throughput_fps == 500.0
    assert typed.runs[0].summary.psnr_min is None  # every column there, typed; None where not measured
    loaded = load_run(tmp_path / "run").to_json_dict()
    assert loaded["runs"][0]["fidelity"]["inner"]["psnr"] == ["inf", 30.5, "nan"]  # strings again in JSON
    assert loaded["runs"][0]["summary"]["psnr_mean"] == "inf"
    assert loaded["runs"][1]["fidelity"] is None and loaded["runs"][1]["errors"] is None  # every key present
    assert loaded["gates"] is None and loaded["baseline"] is None
    (tmp_path / "again").mkdir()
    write_json_atomic(tmp_path / "again" / RUN_RECORD, loaded)
    assert load_run(tmp_path / "again").to_json_dict() == loaded  # what a reader gets, written again, reads the same


def test_a_version_2_record_reads_as_today_and_version_3_facts_name_the_frame_list(tmp_path):
    _write(tmp_path / "v2", _record(schema_version=2))
    assert load_run(tmp_path / "v2").schema_version == RECORD_SCHEMA_VERSION == 6
    facts = {"path": "/data/ds/full_body_img", "sha256": "a" * 64, "frame_list": "/tmp/cache/frames.ffconcat"}
    record = _record()
    record["inputs"]["talking_head"]["video"] = facts
    _write(tmp_path / "v3", record)
    assert load_run(tmp_path / "v3").inputs["talking_head"].video.model_dump() == facts


def test_a_version_4_record_states_the_viewer_region_and_encoding_it_was_measured_with(tmp_path):
    """Before version 5 the viewer pass measured the whole frame of an output.mp4 encoded with veryfast at CRF
    18; a migrated record says so, so a newer run's mp4_face is never read as the same number."""
    _write(tmp_path / "v4", _record(schema_version=4))
    [entry] = [e for e in load_run(tmp_path / "v4").runs if e.status == "ok"]
    assert entry.viewer.region == "mp4_full" and entry.viewer.window is None
    assert (entry.mp4_encoding.preset, entry.mp4_encoding.crf) == ("veryfast", 18)


def test_a_version_1_record_of_older_evalkit_migrates(tmp_path):
    old = _record(schema_version=1)
    del old["parity"], old["finished_utc"]
    entry = old["runs"][0]
    for key in ("protocol", "protocol_kind", "reference_frames"):  # before protocols
        del entry[key]
    del entry["sync"]["reliable"]  # before reliability
    entry["summary"]["fps"] = entry["summary"].pop("throughput_fps")  # before the speed names
    entry["copy"]["fraction"] = 0.5  # a key older code wrote
    _write(tmp_path / "old", old)
    loaded = load_run(tmp_path / "old").to_json_dict()
    assert loaded["schema_version"] == RECORD_SCHEMA_VERSION and loaded["parity"] == []
    first = loaded["runs"][0]
    assert (first["protocol"], first["protocol_kind"], first["reference_frames"]) == ("reconstruction",
                                                                                      "reconstruction", "same")
    assert first["sync"]["reliable"] is True  # it had a signal
    assert first["summary"]["throughput_fps"] == 500.0 and "fps" not in first["summary"]
    assert "fraction" not in first["copy"]


def test_a_typo_in_what_evalkit_writes_is_an_error(tmp_path):
    record = _record()
    record["runs"][0]["sync"]["confidance"] = record["runs"][0]["sync"].pop("confidence")
    with pytest.raises(pydantic.ValidationError, match="confidance"):
        RunRecord.model_validate(record)  # what run.py does before it writes run.json
    _write(tmp_path / "run", record)
    with pytest.raises(UserError, match=r"run\.json: damaged run record, runs\[0\]\.sync\.confidance: unknown key"):
        load_run(tmp_path / "run")
    for typo in (_record(finised_utc="2026"), _record(runs=[_entry(fidelty={})])):
        with pytest.raises(pydantic.ValidationError, match="finised_utc|fidelty"):
            RunRecord.model_validate(typo)


def test_a_failed_entry_carries_its_reason_and_errors():
    failed = _entry(status="failed", reason="generator raised", errors="RuntimeError: boom",
                    traceback="Traceback (most recent call last): ...", fidelity=None, sync=None)
    record = validate_record(_record(runs=[failed]))
    assert record.runs[0].status == "failed" and record.runs[0].errors == "RuntimeError: boom"
    with pytest.raises(pydantic.ValidationError, match="status"):
        validate_record(_record(runs=[_entry(status="crashed")]))


@pytest.mark.parametrize("version", [0, RECORD_SCHEMA_VERSION + 1, 99, None, "2"])
def test_an_unknown_version_is_one_user_error_naming_the_file(tmp_path, version):
    _write(tmp_path / "run", _record(schema_version=version))
    with pytest.raises(UserError, match=rf"{tmp_path / 'run' / RUN_RECORD}: schema_version .* not one this evalkit"):
        load_run(tmp_path / "run")


def test_record_schema_command_prints_the_json_schema(capsys):
    assert main(["record", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert f"schema_version {RECORD_SCHEMA_VERSION}" in schema["title"]
    entry = schema["$defs"]["RunEntry"]
    assert entry["additionalProperties"] is False and {"status", "copy", "fidelity", "errors"} <= set(entry["properties"])


def test_the_record_and_ci_floors_import_nothing_that_generates():
    code = ("import sys, evalkit.ci.gates, evalkit.record.summary, evalkit.record.schema, evalkit.report.html; "
            "print(sorted(m for m in sys.modules if m.startswith(('evalkit.pipeline', 'evalkit.measure'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_atomic_writes_leave_the_file_whole_or_untouched(tmp_path):
    path = write_text_atomic(tmp_path / "a.txt", "one")
    with pytest.raises(RuntimeError), atomic_output(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert path.read_text() == "one" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with atomic_output(tmp_path / "b.npz") as tmp:
        assert tmp.suffix == ".npz"  # writers that go by the suffix (numpy, ffmpeg, matplotlib) still do
        tmp.write_bytes(b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.npz"]


def test_a_version_3_record_is_given_its_verdicts_from_its_summaries_and_gates(tmp_path):
    """Records from before the verdict (schema 3) read with one per run, from what they hold."""
    record = _record(schema_version=3, gates=[
        {"gate": "psnr_mean >= 60", "field": "psnr_mean", "model": "reference", "backend": "cpu",
         "input": "talking_head", "value": 41.7, "limit": ">= 60", "baseline_value": None, "passed": False,
         "message": "FAILED: psnr_mean = 41.7, needs >= 60", "protocol": "reconstruction"}], gates_passed=False)
    record["runs"][0]["summary"] = {"model": "reference", "psnr_mean": 41.7, "copy_flag": 1,
                                    "copy_mouth_psnr": "inf", "sync_offset_frames": 2, "sync_reliable": 1,
                                    "gt_sync_offset_frames": 0, "gt_sync_reliable": 1}
    _write(tmp_path / "v3", record)
    loaded = load_run(tmp_path / "v3").to_json_dict()
    first, skipped = (e["verdict"] for e in loaded["runs"])
    assert first["status"] == "flagged" and first["text"] == "gate failed; near-copy; sync late"
    assert [f["kind"] for f in first["findings"]] == ["gate failed", "near-copy", "sync late"]
    assert "offset +2 frames against the source's +0" in first["findings"][2]["detail"]
    assert loaded["runs"][0]["summary"]["verdict"] == first["text"]
    assert skipped == {"status": "skipped", "ok": False, "text": "skipped",
                       "findings": [{"kind": "skipped", "detail": "not available here"}]}


def _parity(candidate: str, passed: bool = True) -> dict:
    return {"reference": "reference/cpu/talking_head", "candidate": candidate, "precision": "fp32", "atol": 1e-5,
            "rtol": 1e-4, "passed": passed, "tensor": {"max_abs": 2e-6, "passed": passed}, "tensor_note": None,
            "picture": {"psnr_mean": "inf", "ssim_min": 1.0, "passed": True}}


def test_a_version_4_record_keeps_its_parity_once(tmp_path):
    """Version 4 kept a candidate's baseline comparison twice (the record's list and the entry); version 5 keeps
    the list, the baseline one marked, and the candidate's summary row still shows it."""
    baseline_one, pair = _parity("reference/cuda/talking_head"), _parity("reference/cuda/talking_head", False)
    pair["reference"] = "other/cpu/talking_head"  # an explicit pair: in the list only
    candidate = _entry(backend="cuda", folder="reference__cuda__talking_head", parity=dict(baseline_one),
                       summary={"model": "reference", "parity_against": "reference/cpu/talking_head",
                                "parity_passed": 1, "parity_max_abs": 2e-6})
    only_in_entry = _entry(input="other", folder="reference__cuda__other", backend="cuda",
                           parity=_parity("reference/cuda/other"))
    record = _record(schema_version=4, runs=[_entry(), candidate, only_in_entry], parity=[baseline_one, pair])
    _write(tmp_path / "v4", record)
    loaded = load_run(tmp_path / "v4")
    assert loaded.schema_version == RECORD_SCHEMA_VERSION
    assert [(p.candidate, p.reference, p.baseline) for p in loaded.parity] == [
        ("reference/cuda/talking_head", "reference/cpu/talking_head", True),
        ("reference/cuda/talking_head", "other/cpu/talking_head", False),
        ("reference/cuda/other", "reference/cpu/talking_head", True)]  # the entry's own, kept in the list
    stored = loaded.to_json_dict()
    assert all("parity" not in e for e in stored["runs"])  # once: the record's list
    assert loaded.baseline_parity(loaded.runs[1]) is loaded.parity[0]
    assert loaded.baseline_parity(loaded.runs[0]) is None  # the baseline backend itself
    assert loaded.runs[1].summary.parity_against == "reference/cpu/talking_head"  # the row as written
    from evalkit.record.summary import summary_row

    row = summary_row(loaded.runs[1], loaded.baseline_parity(loaded.runs[1]))
    assert (row.parity_against, row.parity_passed, row.parity_max_abs) == ("reference/cpu/talking_head", 1, 2e-6)
    assert summary_row(loaded.runs[0]).parity_against is None


def test_the_summary_row_is_typed_and_a_misspelt_column_is_an_error(tmp_path):
    record = _record()
    record["runs"][0]["summary"]["psnr_maen"] = 3.0
    with pytest.raises(pydantic.ValidationError, match="psnr_maen"):
        RunRecord.model_validate(record)
    typed = validate_record(_record())
    with pytest.raises(pydantic.ValidationError):
        typed.runs[0].summary.copy_flag = "yes"  # a part stays what its type says
    from evalkit.record.summary import SUMMARY_COLUMNS, Summary

    assert list(Summary.model_fields) == list(SUMMARY_COLUMNS)  # the type is the CSV's columns, in order


def test_a_version_5_record_states_the_old_viewer_definitions(tmp_path):
    """Version 6 changed two definitions of the mp4 columns (the viewer's SSIM at a viewing scale, output.mp4 on
    one x264 thread): a version-5 record reads with what it measured, scale 1 and x264's default threads."""
    entry = _entry(viewer={"region": "mp4_face", "window": [10, 20, 400, 380]},
                   mp4_encoding={"preset": "superfast", "crf": 18})
    _write(tmp_path / "v5", _record(schema_version=5, runs=[entry]))
    loaded = load_run(tmp_path / "v5")
    assert loaded.schema_version == 6
    assert loaded.runs[0].viewer.ssim_scale == 1 and loaded.runs[0].mp4_encoding.threads is None
