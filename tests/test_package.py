"""evalkit as a package: where its own files are, a run described by flags, `init`, -q / -v, history's default.

The wheel itself (build, install into a fresh virtual environment, `evalkit demo` from an empty folder) is
checked by .ci/run, not here: it takes minutes.
"""

from __future__ import annotations

import contextlib
import io
import math

import pytest
import soundfile
import yaml

from evalkit import locations
from evalkit.cli import build_parser, main
from evalkit.errors import UserError
from evalkit.record.summary import load_run
from evalkit.config.suite_flags import suite_data
from tests.conftest import REPO, write_suite
from tests.helpers import one_error_line, run_cli

COMPARED = ("psnr_mean", "ssim_mean", "sync_offset_frames", "copy_mouth_psnr")


@pytest.fixture(scope="module")
def short_wav(fixtures_dir, tmp_path_factory):
    """The first 2 s of the fixture speech: drives 52 of the clip's 317 frames (hence --trim-to-shortest)."""
    wav, sr = soundfile.read(fixtures_dir / "clip" / "speech.wav", dtype="float32")
    path = tmp_path_factory.mktemp("audio") / "short.wav"
    soundfile.write(path, wav[: 2 * sr], sr)
    return path


def flags(fixtures_dir, audio):
    clip, models = fixtures_dir / "clip", fixtures_dir / "models"
    return ["--generator", models / "reference.onnx", "--audio-encoder", models / "audio_encoder.onnx",
            "--video", clip / "talking_head.mkv", "--audio", audio, "--crop-boxes", clip / "crop_boxes.txt",
            "--ground-truth", clip / "talking_head.mkv", "--trim-to-shortest"]


@pytest.fixture(scope="module")
def two_runs(fixtures_dir, short_wav, tmp_path_factory):
    """The reference fixture run twice: described by flags (quiet), and by the equivalent suite file."""
    tmp = tmp_path_factory.mktemp("flag_run")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["-q", "run", *map(str, flags(fixtures_dir, short_wav)), "--out", str(tmp / "flags")])
    assert code == 0, err.getvalue()
    flag_run = tmp / "flags" / "reference" / out.getvalue().strip().splitlines()[-1].rsplit("/", 1)[-1]
    clip, models = fixtures_dir / "clip", fixtures_dir / "models"
    suite = write_suite(tmp / "equivalent.yaml", {
        "name": "reference",
        "models": [{"name": "reference", "generator": str(models / "reference.onnx"),
                    "audio_encoder": str(models / "audio_encoder.onnx")}],
        "inputs": [{"name": "talking_head", "video": str(clip / "talking_head.mkv"), "audio": str(short_wav),
                    "crop_boxes": str(clip / "crop_boxes.txt"), "ground_truth": str(clip / "talking_head.mkv")}],
        "metrics": {"trim_to_shortest": True},
    })
    out2, err2 = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out2), contextlib.redirect_stderr(err2):
        code = main(["run", str(suite), "--out", str(tmp / "suite")])
    assert code == 0, err2.getvalue()
    suite_run = tmp / "suite" / "reference" / out2.getvalue().strip().splitlines()[-1].rsplit("/", 1)[-1]
    return flag_run, suite_run, err.getvalue(), err2.getvalue()


def summary(run_dir) -> dict:
    (entry,) = load_run(run_dir).to_json_dict()["runs"]
    return entry["summary"]


@pytest.mark.slow
def test_a_flag_run_measures_what_the_equivalent_suite_does(two_runs):
    flag_run, suite_run, _, _ = two_runs
    a, b = summary(flag_run), summary(suite_run)
    for field in COMPARED:
        assert isinstance(a[field], (int, float)) and math.isfinite(a[field]), (field, a[field])
        assert a[field] == b[field], field  # the same pipeline on the same files: bit for bit the same numbers
    assert a["psnr_mean"] > 40  # the reference fixture redraws the ground truth (55 dB on the full clip)
    assert load_run(flag_run).to_json_dict()["suite"]["definition"] == load_run(suite_run).to_json_dict()["suite"]["definition"]


@pytest.mark.slow
def test_a_flag_run_keeps_its_suite_and_suite_check_accepts_it(two_runs, capsys):
    flag_run, _, _, _ = two_runs
    kept = flag_run / "suite.yaml"
    assert load_run(flag_run).to_json_dict()["suite"]["path"] == str(kept)
    code, out, err = run_cli(capsys, "suite", "check", kept)
    assert code == 0, err
    assert "valid suite 'reference'" in out and "= 1 runs" in out


@pytest.mark.slow
def test_quiet_prints_only_results_and_normal_prints_each_phase(two_runs):
    _, _, quiet_err, normal_err = two_runs
    assert quiet_err == ""
    for phase in ("generated and measured ", "comparing backends", "writing the report", "recording the run"):
        assert phase in normal_err, phase


@pytest.mark.slow
def test_history_finds_the_database_from_a_run_folder(two_runs, capsys, monkeypatch, tmp_path):
    flag_run, _, _, _ = two_runs
    monkeypatch.chdir(tmp_path)  # no reports/ here: the database must come from the run folder
    code, out, err = run_cli(capsys, "history", flag_run)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == str(flag_run.parent.parent / "history.html")
    assert flag_run.name in out


def test_suite_and_generator_together_is_a_usage_error(capsys, fixtures_dir, short_wav, tmp_path):
    code, _, err = run_cli(capsys, "run", REPO / "suites" / "demo.yaml", *flags(fixtures_dir, short_wav),
                           "--out", tmp_path)
    assert code == 2
    assert "give either SUITE.yaml" in one_error_line(err) and "--generator" in err
    assert not list(tmp_path.iterdir())


def test_run_without_suite_or_generator_says_what_to_give(capsys):
    code, _, err = run_cli(capsys, "run")
    assert code == 2 and "give SUITE.yaml, or describe one run with flags" in one_error_line(err)


def test_a_missing_flag_file_is_named_by_its_flag(capsys, fixtures_dir, tmp_path):
    args = [str(a) for a in flags(fixtures_dir, tmp_path / "nope.wav")]
    code, _, err = run_cli(capsys, "run", *args, "--out", tmp_path / "r")
    assert code == 2 and "--audio" in one_error_line(err) and "nope.wav: no such file" in err


def parse(*args):
    return build_parser().parse_args(["run", *map(str, args)])


def test_protocols_and_providers_from_flags(fixtures_dir, short_wav, tmp_path):
    other = tmp_path / "other.wav"
    other.write_bytes(short_wav.read_bytes())
    data = suite_data(parse(*flags(fixtures_dir, short_wav), "--protocol", "reconstruction", "--protocol", "distant",
                            "--protocol", f"dubbed:{other}", "--provider", "cpu", "--provider",
                            "CUDAExecutionProvider", "--name", "mine"))
    assert data["name"] == "mine"
    assert data["protocols"] == [
        {"name": "reconstruction"}, {"name": "distant", "kind": "reconstruction", "reference": "distant"},
        {"name": "dubbed", "kind": "cross_driven", "audio": str(other.resolve())}]
    assert data["backends"] == [{"name": "cpu", "provider": "CPUExecutionProvider"},
                                {"name": "cuda", "provider": "CUDAExecutionProvider"}]
    with pytest.raises(UserError, match=r"--protocol dubbed: dubbing needs the speech .* dubbed:other_speech\.wav"):
        suite_data(parse(*flags(fixtures_dir, short_wav), "--protocol", "dubbed"))
    with pytest.raises(UserError, match=r"--protocol same: unknown protocol; give one of reconstruction, distant, "
                       r"dubbed:SPEECH\.wav"):
        suite_data(parse(*flags(fixtures_dir, short_wav), "--protocol", "same"))
    with pytest.raises(UserError, match=r"--provider warp: not an ONNX Runtime execution provider.*cpu"):
        suite_data(parse(*flags(fixtures_dir, short_wav), "--provider", "warp"))


def init_flags(fixtures_dir, audio):
    return [a for a in flags(fixtures_dir, audio) if a != "--trim-to-shortest"] + ["--trim-to-shortest"]


def test_init_writes_a_suite_that_suite_check_accepts(capsys, fixtures_dir, short_wav, tmp_path):
    target = tmp_path / "mine" / "suite.yaml"
    code, out, err = run_cli(capsys, "init", *init_flags(fixtures_dir, short_wav), "--out", target)
    assert code == 0, err
    assert out.strip() == str(target)
    assert "checked" in err and "loads in ONNX Runtime" in err and "decodes (317 frames" in err
    text = target.read_text()
    assert text.startswith("# Written by `evalkit init`") and "\n# gates:\n" in text  # commented examples
    assert yaml.safe_load(text)["models"][0]["generator"] == str(fixtures_dir / "models" / "reference.onnx")
    code, out, err = run_cli(capsys, "suite", "check", target)
    assert code == 0, err
    assert [p.name for p in target.parent.iterdir()] == ["suite.yaml"]  # no temporary file left


def test_init_refuses_to_overwrite_without_force(capsys, fixtures_dir, short_wav, tmp_path):
    target = tmp_path / "suite.yaml"
    target.write_text("mine: do not touch\n")
    code, _, err = run_cli(capsys, "init", *init_flags(fixtures_dir, short_wav), "--out", target)
    assert code == 2 and "already exists" in one_error_line(err) and "--force" in err
    assert target.read_text() == "mine: do not touch\n"
    code, _, err = run_cli(capsys, "-q", "init", *init_flags(fixtures_dir, short_wav), "--out", target, "--force")
    assert code == 0 and err == ""  # -q: only the result (the file, on stdout)
    assert yaml.safe_load(target.read_text())["name"] == "reference"


def test_init_names_the_flag_of_a_file_that_is_not_onnx(capsys, fixtures_dir, short_wav, tmp_path):
    fake = tmp_path / "fake.onnx"
    fake.write_text("not a model")
    args = init_flags(fixtures_dir, short_wav)
    args[args.index("--generator") + 1] = fake
    code, _, err = run_cli(capsys, "init", *args, "--out", tmp_path / "s.yaml")
    assert code == 2 and one_error_line(err).startswith(f"evalkit: error: --generator {fake}: ONNX Runtime cannot")
    assert not (tmp_path / "s.yaml").exists()


def test_init_with_a_suite_that_fails_the_check_writes_nothing(capsys, fixtures_dir, short_wav, tmp_path):
    import shutil

    # a ground truth in its own file (a copy of the template: the template itself is compared on its first
    # frames without a flag) of 317 frames against the 52 the speech drives
    truth = shutil.copy(fixtures_dir / "clip" / "talking_head.mkv", tmp_path.parent / f"{tmp_path.name}_truth.mkv")
    args = [a for a in init_flags(fixtures_dir, short_wav) if a != "--trim-to-shortest"]
    args[args.index("--ground-truth") + 1] = truth
    code, _, err = run_cli(capsys, "init", *args, "--out", tmp_path / "s.yaml")
    *checked, last = err.strip().splitlines()
    assert code == 2 and all(line.startswith("checked ") for line in checked)  # the files were fine
    assert last.startswith(f"evalkit: error: {tmp_path / 's.yaml'} not written: input 'talking_head': ground truth")
    assert "set metrics.trim_to_shortest: true" in last
    assert not list(tmp_path.iterdir())


def test_verbose_adds_debug_lines(capsys, tmp_path):
    code, _, err = run_cli(capsys, "-v", "history", "--db", tmp_path / "none.sqlite")
    assert code == 2
    assert f"evalkit: debug: history database: {tmp_path / 'none.sqlite'}" in err
    code, _, err = run_cli(capsys, "history", "--db", tmp_path / "none.sqlite")
    assert code == 2 and "evalkit: debug:" not in err


def test_the_packaged_suites_and_notebook_are_the_checkouts():
    """The wheel takes suites/ and notebooks/ through the links evalkit/suites and evalkit/notebooks."""
    for name in ("suites/demo.yaml", "suites/release.yaml", "notebooks/explore_run.ipynb"):
        assert (locations.PACKAGE_DIR / name).read_bytes() == (REPO / name).read_bytes(), name
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"evalkit" = ["suites/*.yaml", "notebooks/*.ipynb"]' in pyproject
    assert locations.source_checkout() == REPO


def test_fixtures_folder_outside_a_checkout_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(locations.FIXTURES_ENV, raising=False)
    assert locations.default_fixtures_dir() == REPO / "data" / "fixtures"
    monkeypatch.setattr(locations, "source_checkout", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert locations.default_fixtures_dir() == tmp_path / "cache" / "evalkit" / "fixtures"
    monkeypatch.setenv(locations.FIXTURES_ENV, str(tmp_path / "mine"))
    assert locations.default_fixtures_dir() == tmp_path / "mine"


def test_the_demo_suite_outside_the_checkout_points_into_the_fixtures(fixtures_dir, capsys):
    copy = locations.demo_suite_for(fixtures_dir)
    assert copy == fixtures_dir / "demo.yaml"
    data = yaml.safe_load(copy.read_text())
    assert "output_dir" not in data
    assert data["models"][0]["generator"] == str(fixtures_dir / "models" / "reference.onnx")
    assert data["inputs"][0]["audio"] == str(fixtures_dir / "clip" / "speech.wav")
    code, out, err = run_cli(capsys, "suite", "check", copy)
    assert code == 0, err
    assert locations.demo_suite_for(REPO / "data" / "fixtures") == REPO / "suites" / "demo.yaml"


def test_the_demo_runs_only_the_models_asked_for(fixtures_dir, capsys, monkeypatch):
    copy = locations.demo_suite_for(fixtures_dir, ["copycat", "reference"])
    data = yaml.safe_load(copy.read_text())
    assert [m["name"] for m in data["models"]] == ["reference", "copycat"]  # the suite's order, not the flag's
    assert data["models"][1]["generator"] == str(fixtures_dir / "models" / "copycat.onnx")
    assert "--models copycat,reference" in copy.read_text()
    # even in the checkout's own fixtures folder a selection is a copy, never suites/demo.yaml cut down
    full = yaml.safe_load((REPO / "suites" / "demo.yaml").read_text())
    assert len(full["models"]) == 6
    monkeypatch.setenv(locations.FIXTURES_ENV, str(fixtures_dir))
    code, out, err = run_cli(capsys, "demo", "--models", "reference,nope")
    assert code == 2
    errors = [line for line in err.splitlines() if "error" in line]
    assert errors == ["evalkit: error: --models reference,nope: the demo has no model nope; its models are "
                      "reference,lag2,noisy,reference_fp16,mobile-unet,copycat"]
    assert yaml.safe_load(copy.read_text())["models"][1]["name"] == "copycat"  # the refused call wrote nothing
