"""Backends: providers present and absent, external commands, parity, golden outputs, run comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from evalkit.cli import main
from evalkit.metrics.parity import DEFAULT_TOLERANCES, compare_outputs
from evalkit.run import RequiredBackendMissing, run_suite
from evalkit.config.suite import load_suite
from tests.conftest import demo_suite_data, write_suite
from tests.conftest import short_audio as short_audio_file

EXTERNAL = ["{python}", "-m", "evalkit.examples.external_pipeline", "{request}"]
QUIET = {"log": lambda *_: None}


@pytest.fixture(scope="module")
def short_audio(fixtures_dir, tmp_path_factory):
    """4 s of the fixture audio: 321 mel frames drive int((321 - 16) / 80 * 25) + 2 = 97 video frames,
    enough for sync (its curve needs speech and pauses) and quick to run many times."""
    wav, sr = soundfile.read(fixtures_dir / "clip" / "speech.wav", dtype="float32")
    path = tmp_path_factory.mktemp("audio") / "short.wav"
    soundfile.write(path, wav[: 4 * sr], sr)
    return path


def suite_data(fixtures_dir, short_audio, models, backends, ground_truth=True, **extra):
    """ground_truth=False: no fidelity measurement (most of a run's time), for tests that assert none."""
    data = demo_suite_data(fixtures_dir)
    data["models"] = [m for m in data["models"] if m["name"] in models]
    data["inputs"][0]["audio"] = str(short_audio)
    if not ground_truth:
        data["inputs"][0].pop("ground_truth")
    data["backends"] = backends
    data["metrics"] = {"trim_to_shortest": True,  # default lags: the sync threshold is calibrated for +/-15
                       # no dlib landmarks and identity descriptors: backends, parity and timing are checked here,
                       # and they were about 0.09 CPU-s a frame of every backend's run (tests/measure/test_field.py
                       # checks them)
                       "face": False}
    data["timing"] = {"warmup": 2, "min_timed_frames": 10, "min_seconds": 0}
    data.update(extra)
    return data


@pytest.fixture(scope="module")
def one_second_audio(fixtures_dir, tmp_path_factory):
    """1 s of the fixture audio (24 video frames) for the tests whose answers do not depend on its length
    (nor on a ground truth): raw-output comparisons of the first 8 frames (parity, golden) and timing counts."""
    return short_audio_file(fixtures_dir, tmp_path_factory.mktemp("audio1s"), 1)


@pytest.fixture(scope="module")
def backends_run(fixtures_dir, tmp_path_factory):
    """reference on every backend (6 s: the off-by-one test needs a reliable sync estimate; at 4 s the
    off-by-one run's confidence, 7.3, sat just under the threshold of 7.5 while the faithful runs read 9.9).
    The second graph optimisation level runs in ``fp16_run`` instead: its check, parity of the first 8 frames'
    raw outputs, needs neither the 6 s nor the ground truth."""
    tmp = tmp_path_factory.mktemp("backends")
    audio = short_audio_file(fixtures_dir, tmp_path_factory.mktemp("audio6s"), 6)
    data = suite_data(
        fixtures_dir, audio, ["reference"],
        [{"name": "cpu", "session_options": {"graph_optimization_level": "all"}},
         {"name": "cuda", "provider": "CUDAExecutionProvider"},
         {"name": "external", "kind": "external", "command": EXTERNAL},
         {"name": "off-by-one", "kind": "external", "command": EXTERNAL + ["--shift-frames", "1"]}],
        parity={"baseline_backend": "cpu"},
    )
    return run_suite(load_suite(write_suite(tmp / "s.yaml", data)), out=tmp / "reports", **QUIET)


@pytest.fixture(scope="module")
def fp16_run(fixtures_dir, one_second_audio, tmp_path_factory):
    """reference and reference_fp16 on the CPU backend of backends_run, with their parity pair, and on the same
    CPU without graph optimisation. Its own run, so that reference_fp16 is not also run on the other backends;
    parity compares the raw outputs of the first 8 frames (parity.frames), the same tensors whatever the
    audio's length beyond them."""
    tmp = tmp_path_factory.mktemp("fp16")
    data = suite_data(
        fixtures_dir, one_second_audio, ["reference", "reference_fp16"],
        [{"name": "cpu", "session_options": {"graph_optimization_level": "all"}},
         {"name": "cpu-noopt", "session_options": {"graph_optimization_level": "disable"}}], ground_truth=False,
        parity={"baseline_backend": "cpu", "pairs": [
            {"reference": {"model": "reference", "backend": "cpu"},
             "candidate": {"model": "reference_fp16", "backend": "cpu"}, "precision": "fp16"}]},
    )
    return run_suite(load_suite(write_suite(tmp / "s.yaml", data)), out=tmp / "reports", **QUIET)


def entries(run_dir):
    """The record's entries by (model, backend), each with ``parity``: its comparison with its parity baseline
    backend, from the record's list (where parity is kept, once)."""
    record = json.loads((run_dir / "run.json").read_text())
    baseline = {p["candidate"]: p for p in record["parity"] if p["baseline"]}
    return {(e["model"], e["backend"]): dict(e, parity=baseline.get(f'{e["model"]}/{e["backend"]}/{e["input"]}'))
            for e in record["runs"]}


def test_fp32_against_fp16_differs_but_within_the_fp16_tolerance(fp16_run):
    record = json.loads((fp16_run / "run.json").read_text())
    pair = next(p for p in record["parity"] if p["candidate"].startswith("reference_fp16/cpu/"))
    tensor = pair["tensor"]
    assert pair["passed"] and pair["precision"] == "fp16"
    assert 0 < tensor["max_abs"] <= DEFAULT_TOLERANCES["fp16"][0]
    assert tensor["max_abs"] > DEFAULT_TOLERANCES["fp32"][0]  # the fp32 tolerance would not have passed it
    assert tensor["elements"] == 8 * 3 * 320 * 320


def test_two_graph_optimisation_levels_agree_within_fp32_tolerance(fp16_run):
    parity = entries(fp16_run)[("reference", "cpu-noopt")]["parity"]
    assert parity["passed"] and parity["tensor"]["max_abs"] <= DEFAULT_TOLERANCES["fp32"][0]
    assert parity["reference"] == "reference/cpu/talking_head"


def test_faithful_external_command_matches_the_in_process_runner(backends_run):
    e = entries(backends_run)
    inproc, external = e[("reference", "cpu")], e[("reference", "external")]
    assert external["frames"] == inproc["frames"] == 147  # 6 s at 25 fps, less the mel window's reach
    assert external["summary"]["full_psnr_mean"] == inproc["summary"]["full_psnr_mean"]  # the same pictures
    assert external["parity"]["passed"] and external["parity"]["picture"]["identical_frames"] == 147
    assert external["parity"]["tensor"] is None and len(external["timed_ms"]) == 147  # its own timings.json


def test_off_by_one_external_command_is_caught(backends_run):
    runs = entries(backends_run)
    e, faithful = runs[("reference", "off-by-one")], runs[("reference", "cpu")]
    assert not e["parity"]["passed"] and e["parity"]["picture"]["psnr_min"] < 40
    # Its mouth is one frame later than the faithful run's: against the ground truth's mouth (the video-to-video
    # lag, no audio) it reads +1 where the faithful run reads 0, and against the audio one frame later too. (The
    # audio's peak is broad on this drawn clip, its mouth following a 200 ms mel window: its position between
    # whole lags moved by only 0.29 of a frame here, so the whole-lag offsets are what is compared.)
    assert e["video_lag"]["offset_frames"] == 1 and e["video_lag"]["reliable"]
    assert faithful["video_lag"]["offset_frames"] == 0 and faithful["video_lag"]["reliable"]
    assert e["sync"]["offset_frames"] - faithful["sync"]["offset_frames"] == 1
    assert e["sync"]["reliable"] and faithful["sync"]["reliable"]


def test_missing_provider_is_skipped_and_reported(backends_run):
    summary = pd.read_csv(backends_run / "summary.csv")
    row = summary[(summary.backend == "cuda") & (summary.model == "reference")].iloc[0]
    assert row["status"] == "skipped" and row["reason"].startswith("not available here (available: ")
    assert "CPUExecutionProvider" in row["reason"]
    assert "skipped: not available here" in (backends_run / "report.html").read_text()


@pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")  # ONNX Runtime's, expected here
def test_a_provider_that_does_not_start_is_never_measured_under_its_name(fixtures_dir, one_second_audio, tmp_path,
                                                                        monkeypatch):
    """onnxruntime-gpu lists CUDA and TensorRT even where they cannot start (no GPU, a missing libcublasLt or
    cuDNN): ONNX Runtime then runs the session on the CPU, saying so only on stderr. Measured as it was, a
    "cuda" backend's numbers were the CPU's. Here the session and its fallback are real (this ONNX Runtime has
    no CUDA); only the list of what is installed is made to read as onnxruntime-gpu's."""
    from evalkit.config.contract import Contract
    from evalkit.config.suite import BackendSpec
    from evalkit.pipeline.runner import OnnxRuntimeRunner, ProviderDidNotStart

    runner = OnnxRuntimeRunner(fixtures_dir / "models" / "reference.onnx", Contract(),
                               BackendSpec(name="cuda", provider="CUDAExecutionProvider"))
    with pytest.raises(ProviderDidNotStart, match="CUDAExecutionProvider is not available here: ONNX Runtime fell "
                                                  "back to CPUExecutionProvider"):
        runner.activate()
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    for required, status in ((False, "skipped"), (True, "failed")):
        data = suite_data(fixtures_dir, one_second_audio, ["reference"],
                          [{"name": "cuda", "provider": "CUDAExecutionProvider", "required": required}],
                          ground_truth=False)
        run = run_suite(load_suite(write_suite(tmp_path / f"s{required}.yaml", data)), out=tmp_path / f"r{required}",
                        workers=1, **QUIET)
        entry = entries(run)[("reference", "cuda")]
        assert entry["status"] == status, entry
        assert entry["reason"].startswith("CUDAExecutionProvider is installed but did not start here: ONNX Runtime "
                                          "fell back to CPUExecutionProvider")
        assert "inference_ms" not in entry or not entry["inference_ms"]  # nothing measured under its name
        assert not (run / "reference__cuda__talking_head" / "output.mp4").exists()


def test_required_missing_provider_fails_with_exit_1(fixtures_dir, short_audio, tmp_path, capsys):
    data = suite_data(fixtures_dir, short_audio, ["reference"],
                      [{"name": "cpu"}, {"name": "trt", "provider": "TensorrtExecutionProvider", "required": True}])
    suite = write_suite(tmp_path / "s.yaml", data)
    with pytest.raises(RequiredBackendMissing):
        run_suite(load_suite(suite), out=tmp_path / "r", **QUIET)
    assert main(["run", str(suite), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "required backend not available here: trt (TensorrtExecutionProvider)" in err
    assert "this machine has" in err and "CPUExecutionProvider" in err


def test_golden_round_trip(fixtures_dir, one_second_audio, tmp_path):
    golden = tmp_path / "golden"
    base = suite_data(fixtures_dir, one_second_audio, ["reference"], [{"name": "cpu"}], ground_truth=False)
    run_suite(load_suite(write_suite(tmp_path / "a.yaml", base)), out=tmp_path / "r", save_golden_to=golden, **QUIET)
    manifest = json.loads((golden / "golden.json").read_text())["entries"]["reference__talking_head"]
    assert manifest["frames"] == 8 and len(manifest["model_sha256"]) == 64 and manifest["inputs_sha256"]
    assert (golden / "reference__talking_head.npz").is_file()

    same = run_suite(load_suite(write_suite(tmp_path / "b.yaml", {**base, "golden": str(golden)})),
                     out=tmp_path / "r", **QUIET)
    g = entries(same)[("reference", "cpu")]["golden"]
    assert g["passed"] and g["max_abs"] == 0.0 and g["same_model_file"] and g["same_input_tensors"]

    noisy = dict(base, golden=str(golden))
    noisy["models"] = [dict(base["models"][0], generator=str(fixtures_dir / "models" / "noisy.onnx"))]
    other = run_suite(load_suite(write_suite(tmp_path / "c.yaml", noisy)), out=tmp_path / "r", **QUIET)
    g = entries(other)[("reference", "cpu")]["golden"]
    assert not g["passed"] and not g["same_model_file"]
    # abs 1e-6: a difference of two float32 outputs in [0, 1] (float32 step 6e-8 near 1) against the exact 8/255
    assert g["max_abs"] == pytest.approx(8 / 255, abs=1e-6) and g["failing_elements"] > 0


def test_timing_counts_and_batches(fixtures_dir, one_second_audio, tmp_path):
    data = suite_data(fixtures_dir, one_second_audio, ["mobile-unet"], [{"name": "cpu"}], ground_truth=False)
    data["timing"] = {"warmup": 3, "min_timed_frames": 9, "min_seconds": 0, "batch_sizes": [1, 4]}
    e = entries(run_suite(load_suite(write_suite(tmp_path / "s.yaml", data)), out=tmp_path, **QUIET))
    e = e[("mobile-unet", "cpu")]
    assert len(e["warmup_ms"]) == 3 and len(e["timed_ms"]) == 9 and e["first_inference_ms"] == e["warmup_ms"][0]
    assert len(e["batch_timed_ms"]["4"]) == 9 // 4 + 1  # the dynamic batch axis is timed at 4 too
    assert e["summary"]["throughput_batch4_fps"] > 0 and e["session_seconds"] > 0


def test_parity_statistics_by_hand():
    ref = np.array([1.0, 2.0, 0.0, np.nan, 4.0])
    cand = np.array([1.0, 2.5, 0.0, np.nan, np.nan])
    # atol and rtol 0.1: the tolerances under test, not the test's: chosen so that 2.5 against 2 fails both
    # (0.5 > 0.1 + 0.1 x 2) and 2.15 passes
    r = compare_outputs(ref, cand, atol=0.1, rtol=0.1)
    assert not r and r.nan_mismatches == 1 and r.failing_elements == 2  # 2.5 vs 2 fails both; the NaN mismatch
    assert r.max_abs == 0.5 and r.max_rel == 0.25 and r.required_atol == pytest.approx(0.3)
    assert compare_outputs(ref, np.array([1.0, 2.15, 0.0, np.nan, 4.0]), atol=0.1, rtol=0.1)  # within rtol: passes


@pytest.fixture(scope="module")
def compared_with_itself(backends_run, tmp_path_factory):
    """`evalkit compare RUN RUN --json` of backends_run against itself, without --out, from another working
    directory: (exit code, the JSON it printed, that working directory). One comparison (its videos: 147 frames
    a run) for the two tests that read it."""
    import contextlib
    import io

    elsewhere = tmp_path_factory.mktemp("elsewhere")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.chdir(elsewhere)
        code = main(["compare", str(backends_run), str(backends_run), "--json"])
    return code, json.loads(out.getvalue()), elsewhere


def test_compare_two_runs(backends_run, compared_with_itself):
    code, result, _ = compared_with_itself
    assert code == 0
    cmp = Path(result["out"])
    table = pd.read_csv(cmp / "comparison.csv")
    psnr = table[(table.field == "psnr_mean") & (table.model == "reference") & (table.backend == "cpu")].iloc[0]
    assert psnr["delta"] == 0 and {"a", "b", "ratio_b_over_a"} <= set(table.columns)
    html = (cmp / "comparison.html").read_text()
    assert "Parity of B against A" in html and "different machines" not in html
    video = cmp / "reference__cpu__talking_head__reconstruction_a_vs_b.mp4"
    assert video.is_file() and "reference / cpu / talking_head / reconstruction, around the face" in html
    from evalkit.media.ffmpeg import probe_video
    from evalkit.media.frames import face_window

    record = json.loads((backends_run / "run.json").read_text())
    entry = next(e for e in record["runs"] if e["model"] == "reference" and e["backend"] == "cpu")
    boxes = np.loadtxt(record["inputs"]["talking_head"]["crop_boxes"]["path"])
    x0, y0, x1, y1 = face_window(boxes[entry["template_indices"]], *record["inputs"]["talking_head"]["size"])
    info = probe_video(video)
    assert (info.width, info.height, info.frames) == (2 * (x1 - x0), y1 - y0, entry["frames"])


def test_compare_a_baseline_with_a_run_by_numbers(backends_run, tmp_path, capsys):
    """A baseline keeps no videos: comparing it with a run gives the numbers, says why there is no picture
    parity and no video, and does not fail on the missing files."""
    assert main(["-q", "baseline", "set", str(backends_run), "--dir", str(tmp_path / "baselines"), "--name", "main"]) == 0
    out = tmp_path / "cmp"
    assert main(["compare", str(tmp_path / "baselines" / "main"), str(backends_run), "--out", str(out)]) == 0
    table = pd.read_csv(out / "comparison.csv")
    psnr = table[(table.field == "psnr_mean") & (table.model == "reference") & (table.backend == "cpu")].iloc[0]
    assert psnr["delta"] == 0
    html = (out / "comparison.html").read_text()
    assert "A is a baseline" in html and "no frames_inner.mkv on one side" in html
    assert not list(out.glob("*.mp4"))


def test_compare_defaults_beside_the_runs_and_prints_json(backends_run, compared_with_itself):
    """Without --out the comparison goes beside the runs' suite folders, whatever the working directory."""
    code, result, elsewhere = compared_with_itself
    assert code == 0
    expected = backends_run.resolve().parent.parent / "compare" / f"{backends_run.name}_vs_{backends_run.name}"
    assert Path(result["out"]) == expected and (expected / "comparison.html").is_file()
    assert "reference/cpu/talking_head/reconstruction" in result["compared"]
    assert result["significant_speed_changes"] == []  # the same samples: nothing is significant
    assert not (elsewhere / "reports").exists()


@pytest.mark.parametrize("allow", [False, True])
def test_session_spinning_follows_the_suite(fixtures_dir, allow):
    """allow_spinning reaches the ONNX Runtime session as its two config entries (off unless the suite asks)."""
    from evalkit.config.contract import Contract
    from evalkit.config.suite import BackendSpec, SessionOptions
    from evalkit.pipeline.runner import OnnxRuntimeRunner

    backend = BackendSpec(name="cpu", session_options=SessionOptions(intra_op_num_threads=1, allow_spinning=allow))
    with OnnxRuntimeRunner(fixtures_dir / "models" / "reference.onnx", Contract(), backend) as runner:
        options = runner.session.get_session_options()
        for pool in ("intra_op", "inter_op"):
            assert options.get_session_config_entry(f"session.{pool}.allow_spinning") == ("1" if allow else "0")
