"""The last bad inputs of issue 26: each one line on stderr and exit 2, found before anything is generated or written.

Each case runs ``evalkit.cli.main`` in-process on real files made in its own temporary folder (from the short
fixture clip of tests/test_bad_inputs.py) and checks the exit code, that stderr is exactly one
``evalkit: error: ...`` line naming the file or field, that no file outside the output folder changed, and that
no run folder (finished or ``.partial``) appeared. And a dataset folder whose speech drives fewer frames than it
has images: compared on those first frames without a flag, and said.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import soundfile as sf
from onnx import TensorProto, helper

from evalkit.cli import main
from evalkit.config.contract import Contract
from evalkit.media.ffmpeg import FFMPEG_ENV, ffmpeg_exe
from tests.test_bad_inputs import (CLIP_FRAMES, assets, base_suite, check_one_line, dumped, good_lms,  # noqa: F401
                                   lms_folder, snapshot)

C = Contract()


def encoder_model(dest: Path, inputs: int = 1, out_values: int = C.feature_dim) -> Path:
    """A tiny audio encoder: the window's mean, broadcast to ``out_values`` values (a second input, if any, is
    added in as a scalar mean too)."""
    window = [1, 1, C.n_mels, C.mel_window]
    names = [f"mel{i}" for i in range(inputs)]
    nodes = [helper.make_node("ReduceMean", [n], [f"m{i}"], keepdims=0) for i, n in enumerate(names)]
    total = "m0"
    for i in range(1, inputs):
        nodes.append(helper.make_node("Add", [total, f"m{i}"], [f"s{i}"]))
        total = f"s{i}"
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, out_values])
    nodes.append(helper.make_node("Expand", [total, "shape"], ["features"]))
    graph = helper.make_graph(nodes, "encoder", [helper.make_tensor_value_info(n, TensorProto.FLOAT, window)
                                                  for n in names],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, out_values])],
                              initializer=[shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, dest)
    return dest


def wav(dest: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(dest, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    return dest


def dubbing(audio_of):
    def mutate(data, a, t):
        data["protocols"] = [{"name": "rec"}, {"name": "dub", "kind": "cross_driven", "audio": str(audio_of(a, t))}]
    return mutate


def text_file(name, text="not sound\n"):
    def make(a, t):
        (t / name).write_text(text)
        return t / name
    return make


def model_field(field, make):
    def mutate(data, a, t):
        data["models"][0][field] = str(make(a, t))
    return mutate


def input_field(field, make):
    def mutate(data, a, t):
        data["inputs"][0][field] = str(make(a, t))
    return mutate


def audio_only(a, t):
    out = t / "sound.mkv"
    import subprocess

    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(a.audio), "-c:a", "pcm_s16le", str(out)], check=True)
    return out


def sized_dataset(root: Path, sizes: list[tuple[int, int]]) -> Path:
    (root / "full_body_img").mkdir(parents=True)
    (root / "landmarks").mkdir()
    for i, (w, h) in enumerate(sizes):
        cv2.imwrite(str(root / "full_body_img" / f"{i}.jpg"), np.full((h, w, 3), 128, np.uint8))
        (root / "landmarks" / f"{i}.lms").write_bytes(good_lms(i))
    wav(root / "aud.wav", 1.0)
    return root


def dataset_input(sizes):
    def mutate(data, a, t):
        data["inputs"] = [{"name": "ds", "dataset": str(sized_dataset(t / "ds", sizes))}]
    return mutate


def suite_lines(mutate, expect, command="check"):
    def build(a, t):
        data = base_suite(a)
        mutate(data, a, t)
        path = t / "s.yaml"
        path.write_text(dumped(data))
        argv = ["suite", "check", str(path)] if command == "check" else ["run", str(path), "--out", str(t / "out")]
        return argv, expect
    return build


def raw_suite(text_of, expect):
    def build(a, t):
        path = t / "s.yaml"
        path.write_text(text_of(base_suite(a)))
        return ["suite", "check", str(path)], expect
    return build


def run_with(extra_of, expect, prepare=None):
    """A valid suite run with extra command-line flags (output targets), ``prepare`` making the bad target."""
    def build(a, t):
        path = t / "s.yaml"
        path.write_text(dumped(base_suite(a)))
        if prepare is not None:
            prepare(t)
        return ["run", str(path), "--out", str(t / "out"), *extra_of(t)], expect
    return build


def crop_boxes(content=good_lms, samples=None):
    def build(a, t):
        lms = lms_folder(t / "lms", CLIP_FRAMES, content)
        argv = ["crop-boxes", "--landmarks", str(lms), "--video", str(a.clip), "--out", str(t / "out" / "b.txt")]
        return argv + (["--samples", str(samples)] if samples is not None else []), None
    return build


def zero_width_lms(i: int) -> bytes:
    """Landmarks 1 and 31 at the same x: a box of no width."""
    return good_lms(i).replace(b"450 200", b"150 200")


CASES = {
    # a dubbing protocol's own speech is read by preflight, as the inputs' is
    "dubbing audio is text": suite_lines(dubbing(text_file("dub.wav")), r"protocol 'dub': cannot read audio .*dub\.wav"),
    "dubbing audio 0.1 s": suite_lines(dubbing(lambda a, t: wav(t / "dub.wav", 0.1)),
                                       r"protocol 'dub': audio .*dub\.wav: .*fewer than one window"),
    "dubbing audio at run": suite_lines(dubbing(lambda a, t: wav(t / "dub.wav", 0.1)), r"dub\.wav", command="run"),
    # the audio encoder's inputs and outputs, checked by preflight
    "encoder with two inputs": suite_lines(model_field("audio_encoder", lambda a, t: encoder_model(t / "e.onnx", 2)),
                                           r"audio encoder .*e\.onnx: 2 inputs .*expected 1", command="run"),
    "encoder with 256 outputs": suite_lines(model_field("audio_encoder", lambda a, t: encoder_model(
        t / "e.onnx", out_values=256)), r"audio encoder .*e\.onnx: output 'features' has 256 values .*feature_dim is "
                                        r"512", command="run"),
    "encoder 256 outputs, suite check": suite_lines(model_field("audio_encoder", lambda a, t: encoder_model(
        t / "e.onnx", out_values=256)), r"e\.onnx: output 'features' has 256 values"),
    # a dataset folder's frames are one size
    "dataset frame of another size": suite_lines(dataset_input([(640, 480), (640, 480), (320, 240), (640, 480)]),
                                                 r"full_body_img/2\.jpg is 320x240, 0\.jpg is 640x480"),
    "dataset frame of another size at run": suite_lines(dataset_input([(640, 480), (320, 240)]),
                                                        r"full_body_img/1\.jpg is 320x240", command="run"),
    # library text replaced by evalkit's own
    "template is audio only": suite_lines(input_field("video", audio_only),
                                          r"sound\.mkv: it holds no video stream \(sound only\)"),
    "audio of 0 samples": suite_lines(input_field("audio", lambda a, t: wav(t / "a.wav", 0)),
                                      r"audio .*a\.wav: holds no samples"),
    "features a text .npy": suite_lines(lambda d, a, t: (d["models"][0].pop("audio_encoder"), model_field(
        "audio_features", text_file("f.npy", "1 2 3\n"))(d, a, t)), r"f\.npy: not a \.npy array file"),
    # a symbolic link loop in a path relative to the suite's folder
    "a symlink loop in a suite path": suite_lines(input_field("video", lambda a, t: (
        os.symlink(t / "loop", t / "loop"), "loop/v.mkv")[1]),
        r"inputs\[0\]\.video: loop/v\.mkv .*a loop of symbolic links"),
    "a symlink loop in output_dir": suite_lines(lambda d, a, t: d.update(output_dir=(
        os.symlink(t / "loop", t / "loop"), "loop/out")[1]), r"output_dir: loop/out .*a loop of symbolic links"),
    # the schema's bound
    "intra_op_num_threads 1e18": raw_suite(lambda d: dumped({k: v for k, v in d.items() if k != "backends"})
                                           + "backends: [{name: cpu, session_options: "
                                           "{intra_op_num_threads: 1.0e+18}}]\n",
                                           r"intra_op_num_threads: .*less than or equal to 1024"),
    "intra_op_num_threads 1e18 int": raw_suite(lambda d: dumped({**d, "backends": [
        {"name": "cpu", "session_options": {"intra_op_num_threads": 10**18}}]}), r"intra_op_num_threads"),
    # the run's output targets, before the run
    "history database is a folder": run_with(lambda t: [], r"history database .*history\.sqlite: a folder",
                                             prepare=lambda t: (t / "out" / "history.sqlite").mkdir(parents=True)),
    "history database is garbage": run_with(lambda t: [], r"history\.sqlite: not an evalkit history database",
                                            prepare=lambda t: ((t / "out").mkdir(), (t / "out" / "history.sqlite")
                                                               .write_bytes(bytes(range(256)) * 64))),
    "--junit is a folder": run_with(lambda t: ["--junit", str(t / "jdir")], r"--junit .*jdir: a folder",
                                    prepare=lambda t: (t / "jdir").mkdir()),
    "--junit through a symlink loop": run_with(lambda t: ["--junit", str(t / "loop" / "j.xml")],
                                               r"--junit .*loop/j\.xml: .*a loop of symbolic links",
                                               prepare=lambda t: os.symlink(t / "loop", t / "loop")),
    "--summary-md below a file": run_with(lambda t: ["--summary-md", str(t / "afile" / "s.md")],
                                          r"--summary-md .*afile.* is a file, not a folder",
                                          prepare=lambda t: (t / "afile").write_text("x")),
    "--save-golden is a file": run_with(lambda t: ["--save-golden", str(t / "g")], r"--save-golden .*g: a file",
                                        prepare=lambda t: (t / "g").write_text("x")),
    "--save-golden's manifest damaged": run_with(lambda t: ["--save-golden", str(t / "g")], r"golden\.json",
                                                 prepare=lambda t: ((t / "g").mkdir(),
                                                                    (t / "g" / "golden.json").write_text("{no"))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_found_first_is_one_line_exit_2(case, assets, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    argv, expect = CASES[case](assets, tmp_path)
    out = tmp_path / "out"
    before = snapshot(tmp_path, out)
    out_before = snapshot(out, out / "none") if out.is_dir() else {}
    capsys.readouterr()
    code = main(argv)
    _, err = capsys.readouterr()
    check_one_line(code, err, expect)
    assert snapshot(tmp_path, out) == before, "files outside the output folder changed"
    assert (snapshot(out, out / "none") if out.is_dir() else {}) == out_before, "the output folder changed"


def test_ffmpeg_that_is_not_ffmpeg_is_blamed_not_the_video(assets, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.delenv(FFMPEG_ENV, raising=False)
    path = tmp_path / "s.yaml"
    path.write_text(dumped(base_suite(assets)))
    try:
        code = main(["--ffmpeg", "/bin/false", "suite", "check", str(path)])
    finally:
        os.environ.pop(FFMPEG_ENV, None)  # main sets it for the process
    _, err = capsys.readouterr()
    check_one_line(code, err, r"--ffmpeg / EVALKIT_FFMPEG /bin/false: not a working ffmpeg")
    assert "short.mkv" not in err


@pytest.mark.parametrize("build, expect", [
    (crop_boxes(zero_width_lms), r"\d+\.lms: landmark 31 \(x 150\) is not right of landmark 1 \(x 150\)"),
    (crop_boxes(samples=0), r"--samples 0: expected a whole number .* at least 1"),
    (crop_boxes(samples=-3), r"--samples -3: expected"),
], ids=["zero-size box", "samples 0", "samples -3"])
def test_crop_boxes_refuses_what_run_would_refuse(build, expect, assets, tmp_path, capsys):  # noqa: F811
    argv, _ = build(assets, tmp_path)
    code = main(argv)
    check_one_line(code, capsys.readouterr().err, expect)
    assert not (tmp_path / "out").exists(), "crop-boxes wrote something"


def test_crop_boxes_file_with_a_zero_size_box_is_refused_by_run_too(assets, tmp_path, capsys):  # noqa: F811
    """The same landmarks as a suite's input: one line, exit 2, in preflight (no run folder)."""
    data = base_suite(assets)
    data["inputs"][0].pop("crop_boxes")
    data["inputs"][0]["landmarks"] = str(lms_folder(tmp_path / "lms", CLIP_FRAMES, zero_width_lms))
    (tmp_path / "s.yaml").write_text(dumped(data))
    code = main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out")])
    check_one_line(code, capsys.readouterr().err, r"\d+\.lms: landmark 31 .* no width")
    assert not (tmp_path / "out").exists()


def test_model_check_of_an_empty_file_is_exit_2(tmp_path, capsys):
    (tmp_path / "g.onnx").write_bytes(b"")
    code = main(["model", "check", str(tmp_path / "g.onnx")])
    check_one_line(code, capsys.readouterr().err, r"g\.onnx: not an ONNX model \(an empty file, 0 bytes")


# --- compare: a damaged head_outputs.npz --------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(assets, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("one_run")
    data = base_suite(assets)
    data["parity"] = {"frames": 2}
    (root / "s.yaml").write_text(dumped(data))
    assert main(["-q", "run", str(root / "s.yaml"), "--out", str(root / "out")]) == 0
    [run_dir] = (root / "out" / "bad").iterdir()
    return run_dir


def test_compare_with_a_damaged_head_outputs_is_one_line(finished_run, tmp_path, capsys):
    other = tmp_path / "b"
    shutil.copytree(finished_run, other)
    [npz] = other.glob("*/head_outputs.npz")
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])  # cut in the middle
    capsys.readouterr()
    code = main(["-q", "compare", str(finished_run), str(other), "--out", str(tmp_path / "cmp")])
    check_one_line(code, capsys.readouterr().err, r"head_outputs\.npz: not the raw outputs evalkit wrote")
    assert not (tmp_path / "cmp").exists()


# --- a dataset folder whose speech is shorter than its frames ---------------------------------------------------

def test_dataset_run_compares_the_first_frames_without_a_flag(fixtures_dir, tmp_path, capsys):
    """60 images, speech that drives 57 frames: exit 0 without --trim-to-shortest, 57 frames compared, and the run
    says so (a line on stderr, the entry's ground_truth_note in run.json)."""
    from tests.helpers import build_dataset

    dataset = build_dataset(tmp_path / "may", fixtures_dir, frames=60)
    models = fixtures_dir / "models"
    code = main(["run", "--generator", str(models / "reference.onnx"), "--audio-encoder",
                 str(models / "audio_encoder.onnx"), "--dataset", str(dataset), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    note = "ground truth: the first 57 of 60 frames of full_body_img/"
    assert re.search(re.escape(note), err), err
    run_dir = Path(out.strip().splitlines()[-1])
    record = json.loads((run_dir / "run.json").read_text())
    [entry] = record["runs"]
    assert entry["status"] == "ok" and entry["frames"] == 57 and entry["compared_frames"] == 57
    assert entry["ground_truth_note"].startswith(note)
    assert len(entry["fidelity"]["inner"]["psnr"]) == 57
    assert note in (run_dir / "report.html").read_text()


def test_dataset_run_as_long_as_its_frames_has_no_note(fixtures_dir, tmp_path, capsys):
    """The same folder with 57 images: every frame compared, nothing to say (the note can be absent)."""
    from tests.helpers import build_dataset
    from evalkit.run import preflight
    from evalkit.config.suite import load_suite
    from tests.conftest import write_suite
    from tests.helpers import dataset_suite_data as suite_data

    notes = []
    for frames in (57, 60):
        dataset = build_dataset(tmp_path / f"d{frames}", fixtures_dir, frames=frames)
        data = suite_data(fixtures_dir, [{"name": "ds", "dataset": str(dataset)}])
        data["metrics"] = {"trim_to_shortest": False}
        said: list[str] = []
        preflight(load_suite(write_suite(tmp_path / f"s{frames}.yaml", data)), said)
        notes.append(said)
    assert notes[0] == []
    assert len(notes[1]) == 1 and "the first 57 of 60 frames of full_body_img/" in notes[1][0]
