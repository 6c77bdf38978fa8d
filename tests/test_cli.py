"""The command line: bad input gets one clear line, exit code 2 and no complete-looking run folder."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import soundfile

from evalkit.config.contract import Contract
from evalkit.fixtures.models import talking_head_generator
from evalkit.fixtures.talking_head import FaceDesign
from tests.conftest import demo_suite_data, write_suite
from tests.helpers import run_cli


@pytest.fixture
def small_suite(fixtures_dir, tmp_path):
    """The demo suite with one model and 2 s of the fixture audio: fast to run."""
    wav, sr = soundfile.read(fixtures_dir / "clip" / "speech.wav", dtype="float32")
    short = tmp_path / "short.wav"
    soundfile.write(short, wav[: 2 * sr], sr)
    data = demo_suite_data(fixtures_dir)
    data["models"] = data["models"][:1]
    data["inputs"][0]["audio"] = str(short)
    data["metrics"] = {"trim_to_shortest": True,  # 2 s of audio drive 52 of the clip's 317 frames
                       "face": False}  # messages and files are checked here, not dlib's face metrics
    data["timing"] = {"warmup": 1, "min_timed_frames": 5, "min_seconds": 0}
    return data


def assert_user_error(capsys, out_dir, args, pattern):
    code, _, err = run_cli(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("evalkit: error: "), err
    assert pytest.importorskip("re").search(pattern, lines[0]), lines[0]
    assert not list(out_dir.rglob("run.json")) and not list(out_dir.rglob("*.partial"))


def test_run_prints_the_run_folder_last(capsys, small_suite, tmp_path):
    suite = write_suite(tmp_path / "s.yaml", small_suite)
    code, out, err = run_cli(capsys, "run", suite, "--out", tmp_path / "reports")
    assert code == 0, err
    run_dir = out.strip().splitlines()[-1]
    assert code == 0 and run_dir.startswith(str(tmp_path / "reports" / "demo"))
    assert (tmp_path / "reports" / "demo" / run_dir.rsplit("/", 1)[-1] / "run.json").is_file()


def test_missing_file(capsys, small_suite, tmp_path):
    small_suite["inputs"][0]["crop_boxes"] = "no_such_boxes.txt"
    suite = write_suite(tmp_path / "s.yaml", small_suite)
    assert_user_error(capsys, tmp_path, ["run", suite, "--out", tmp_path / "r"],
                      r"s\.yaml: inputs\[0\]\.crop_boxes: file not found: .*no_such_boxes\.txt")


def test_unreadable_video(capsys, small_suite, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(5000))
    small_suite["inputs"][0]["video"] = str(bad)
    suite = write_suite(tmp_path / "s.yaml", small_suite)
    assert_user_error(capsys, tmp_path, ["run", suite, "--out", tmp_path / "r"], r"cannot read video .*broken\.mp4")


def test_audio_shorter_than_one_mel_window(capsys, small_suite, tmp_path):
    tiny = tmp_path / "tiny.wav"
    soundfile.write(tiny, np.zeros(1600, np.float32), 16000)  # 0.1 s
    small_suite["inputs"][0]["audio"] = str(tiny)
    suite = write_suite(tmp_path / "s.yaml", small_suite)
    assert_user_error(capsys, tmp_path, ["run", suite, "--out", tmp_path / "r"],
                      r"audio .*tiny\.wav: the audio gives 9 mel frames, fewer than one window of 16 "
                      r"\(it must be at least 0\.188 s long\)")


def test_model_that_does_not_fit_the_contract(capsys, small_suite, tmp_path):
    other = Contract(audio_input_shape=(16, 32, 16))
    wrong = tmp_path / "wrong.onnx"
    onnx.save(talking_head_generator(other, FaceDesign(), 7), wrong)
    small_suite["models"][0]["generator"] = str(wrong)
    suite = write_suite(tmp_path / "s.yaml", small_suite)
    assert_user_error(capsys, tmp_path, ["run", suite, "--out", tmp_path / "r"],
                      r"wrong\.onnx: input 'audio' has shape \[1, 16, 32, 16\], the contract expects \[1, 32, 16, 16\]")


def test_unknown_key(capsys, small_suite, tmp_path):
    small_suite["backends"][0]["threads"] = 4
    suite = write_suite(tmp_path / "s.yaml", small_suite)
    assert_user_error(capsys, tmp_path, ["run", suite, "--out", tmp_path / "r"],
                      r"backends\[0\]\.threads: unknown key 'threads' \(valid keys: name, kind, provider, provider_options")


def test_audio_at_another_rate_is_resampled_not_refused(capsys, small_suite, tmp_path):
    wav, sr = soundfile.read(small_suite["inputs"][0]["audio"], dtype="float32")
    import librosa

    resampled = tmp_path / "speech_44k.wav"
    soundfile.write(resampled, librosa.resample(wav, orig_sr=sr, target_sr=44100), 44100)
    small_suite["inputs"][0]["audio"] = str(resampled)
    suite = write_suite(tmp_path / "s.yaml", small_suite)
    code, out, _ = run_cli(capsys, "run", suite, "--out", tmp_path / "r")
    assert code == 0
    import json
    from pathlib import Path

    record = json.loads((Path(out.strip().splitlines()[-1]) / "run.json").read_text())
    assert record["runs"][0]["frames"] == int((161 - 16) / 80 * 25) + 2  # 2 s at 16 kHz: 161 mel frames


def test_suite_check_and_schema(capsys, small_suite, tmp_path):
    suite = write_suite(tmp_path / "s.yaml", small_suite)
    code, out, _ = run_cli(capsys, "suite", "check", suite)
    assert code == 0 and "valid suite 'demo': 1 models x 1 backends x 1 inputs x 1 protocols (reconstruction) = 1 runs" in out
    code, out, _ = run_cli(capsys, "suite", "schema")
    assert code == 0 and '"title": "evalkit suite"' in out


def test_help_and_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "evalkit", "run", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "SUITE.yaml" in result.stdout and "last line" in result.stdout
    result = subprocess.run([sys.executable, "-m", "evalkit", "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_the_process_ends_as_the_interpreter_would_where_it_matters(tmp_path):
    """``entry`` ends the process by ``os._exit`` (skipping the interpreter's teardown), after what exit does that
    matters: a non-daemon thread still writing is joined, an executor's queued work done, atexit handlers and
    temporary folders' finalizers run, buffered output flushed, and the code returned."""
    code = f"""
import atexit, concurrent.futures, pathlib, sys, tempfile, threading, time
out = pathlib.Path({str(tmp_path)!r})
def late():
    time.sleep(0.3)
    (out / "thread.txt").write_text("joined")
threading.Thread(target=late).start()
pool = concurrent.futures.ThreadPoolExecutor(1)
pool.submit(time.sleep, 0.2)
pool.submit(lambda: (out / "pool.txt").write_text("done"))
atexit.register(lambda: (out / "atexit.txt").write_text("ran"))
kept = tempfile.TemporaryDirectory(dir=out)
(out / "tmpname.txt").write_text(kept.name)
sys.stdout.write("buffered, no newline")
from evalkit.cli import exit_without_teardown
exit_without_teardown(7)
print("never")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 7 and done.stdout == "buffered, no newline", (done.stdout, done.stderr)
    assert (tmp_path / "thread.txt").read_text() == "joined" and (tmp_path / "pool.txt").read_text() == "done"
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert not pytest.importorskip("pathlib").Path((tmp_path / "tmpname.txt").read_text()).exists()


@pytest.mark.parametrize("args", [["run", "MISSING"], ["run", "BAD"], ["run", "BAD", "--workers", "0"]])
def test_a_mistake_in_the_suite_or_options_is_told_before_the_pipeline_is_imported(args, tmp_path):
    """`evalkit run` checks its options and its suite before it imports the pipeline (onnxruntime, scipy,
    matplotlib: about 2 s here), so the commonest mistakes are told at once."""
    (tmp_path / "bad.yaml").write_text("name: x\nmodels: 3\n")
    args = [{"MISSING": str(tmp_path / "missing.yaml"), "BAD": str(tmp_path / "bad.yaml")}.get(a, a) for a in args]
    code = ("import sys\nfrom evalkit.cli import main\nrc = main(sys.argv[1:])\n"
            "print(rc, sorted(m for m in ('evalkit.run', 'onnxruntime', 'matplotlib', 'scipy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert done.stdout.split("\n")[-2] == "2 []", (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("evalkit: error:"), done.stderr
