"""Bad input of every kind: one line on stderr naming the file or field, exit 2, nothing outside the output changed.

Each case builds its files in its own temporary folder (from a short copy of the fixture clip), runs
``evalkit.cli.main`` in-process and checks: the exit code (2; argparse's usage errors are their own category,
also 2), exactly one stderr line ``evalkit: error: ...`` that names the file or field, and that no file outside
the output folder was created, changed or removed. Cases that would generate fail in preflight, before
generating: no run folder appears. Signals and a closed pipe need a real process and run as subprocesses.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
import yaml
from onnx import TensorProto, helper

from evalkit.cli import main
from evalkit.media.ffmpeg import ffmpeg_exe
from tests.conftest import REPO, short_audio

CLIP_FRAMES = 40  # frames of the short template: long enough for a mel window, short enough to decode fast
AUDIO_SECONDS = 1.6  # drives 37 frames (trim_to_shortest is on in the base suite)
HEADER_BYTES = 569  # the short clip's Matroska header ends here (its first Cluster starts at byte 569)


@dataclass(frozen=True)
class Assets:
    """The good files every case starts from (outside the cases' folders)."""

    clip: Path
    audio: Path
    boxes: Path
    generator: Path
    encoder: Path


@pytest.fixture(scope="module")
def assets(fixtures_dir, tmp_path_factory) -> Assets:
    root = tmp_path_factory.mktemp("bad_inputs_assets")
    clip = root / "short.mkv"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(fixtures_dir / "clip" / "talking_head.mkv"),
                    "-frames:v", str(CLIP_FRAMES), "-c", "copy", str(clip)], check=True)
    wav, rate = sf.read(fixtures_dir / "clip" / "speech.wav")
    sf.write(root / "speech.wav", wav[: int(AUDIO_SECONDS * rate)], rate)
    lines = [line for line in (fixtures_dir / "clip" / "crop_boxes.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    (root / "boxes.txt").write_text("\n".join(lines[:CLIP_FRAMES]) + "\n")
    return Assets(clip, root / "speech.wav", root / "boxes.txt", fixtures_dir / "models" / "reference.onnx",
                  fixtures_dir / "models" / "audio_encoder.onnx")


def base_suite(a: Assets) -> dict:
    return {
        "name": "bad",
        "models": [{"name": "ref", "generator": str(a.generator), "audio_encoder": str(a.encoder)}],
        "inputs": [{"name": "clip", "video": str(a.clip), "audio": str(a.audio), "crop_boxes": str(a.boxes),
                    "ground_truth": str(a.clip)}],
        "backends": [{"name": "cpu", "provider": "CPUExecutionProvider"}],
        "metrics": {"trim_to_shortest": True},
        "timing": {"warmup": 1, "min_timed_frames": 2, "min_seconds": 0},
    }


# --- builders of bad files -------------------------------------------------------------------------------

def cut(src: Path, dest: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def garble(src: Path, dest: Path) -> Path:
    data = bytearray(src.read_bytes())
    rnd = random.Random(0)
    mid = len(data) // 2
    data[mid: mid + 4000] = bytes(rnd.randrange(256) for _ in range(4000))
    dest.write_bytes(bytes(data))
    return dest


def scaled_clip(src: Path, dest: Path) -> Path:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(src), "-vf", "scale=320:240", "-c:v", "ffv1",
                    str(dest)], check=True)
    return dest


def generator_model(dest: Path, image=(1, 6, 320, 320), audio=(1, 32, 16, 16), names=("image", "audio"),
                    dtype=TensorProto.FLOAT, out_channels=3) -> Path:
    """A tiny generator: the output is the first ``out_channels`` image channels (declared shapes as given)."""
    starts = helper.make_tensor("starts", TensorProto.INT64, [1], [0])
    ends = helper.make_tensor("ends", TensorProto.INT64, [1], [out_channels])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [helper.make_node("Slice", [names[0], "starts", "ends", "axes"], ["sliced"]),
             helper.make_node("ReduceMean", [names[1]], ["level"], keepdims=1),
             helper.make_node("Mul", ["level", "zero"], ["nothing"]),
             helper.make_node("Add", ["sliced", "nothing_r"], ["output"]),
             helper.make_node("ReduceMean", ["nothing"], ["nothing_r"], keepdims=1)]
    zero = helper.make_tensor("zero", dtype, [], [0.0])
    graph = helper.make_graph(
        nodes, "generator",
        [helper.make_tensor_value_info(names[0], dtype, list(image)),
         helper.make_tensor_value_info(names[1], dtype, list(audio))],
        [helper.make_tensor_value_info("output", dtype, [image[0], out_channels, image[2], image[3]])],
        initializer=[starts, ends, axes, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, dest)
    return dest


def lms_folder(dest: Path, frames: int, content) -> Path:
    dest.mkdir()
    for i in range(frames):
        (dest / f"{i}.lms").write_bytes(content(i))
    return dest


def good_lms(i: int) -> bytes:
    points = [(100 + j % 30, 100 + j // 2) for j in range(68)]
    points[1], points[31], points[52] = (150, 200), (450, 200), (0, 150)
    return "\n".join(f"{x} {y}" for x, y in points).encode()


def fake_run(dest: Path, text: str | bytes) -> Path:
    dest.mkdir(parents=True)
    (dest / "run.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    return dest


# --- the cases -------------------------------------------------------------------------------------------
# Each case: (id, build) where build(assets, tmp) returns (argv, expected text on the error line), or for
# argparse usage errors ("usage", argv). Suites are written to tmp / "s.yaml"; outputs go to tmp / "out".

def suite_case(mutate, expect, command="check"):
    def build(a: Assets, tmp: Path):
        data = base_suite(a)
        extra = mutate(data, a, tmp)
        path = tmp / "s.yaml"
        if isinstance(extra, Raw):
            path.write_bytes(extra.content if isinstance(extra.content, bytes) else extra.content.encode())
        else:
            path.write_text(yaml.safe_dump(data, sort_keys=False))
        argv = ["suite", "check", str(path)] if command == "check" else ["run", str(path), "--out", str(tmp / "out")]
        return argv, expect
    return build


def setin(path: str, value):
    """A mutation that sets data[a][b]... (ints index lists)."""
    def mutate(data, a, tmp):
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {}) if isinstance(k, str) else node[k]
        node[keys[-1]] = value(a, tmp) if callable(value) else value
    return mutate


@dataclass(frozen=True)
class Raw:
    content: str | bytes


def raw(text_of):
    """A mutation that replaces the whole suite file with raw text or bytes."""
    return lambda data, a, tmp: Raw(text_of(data, a, tmp))


def dumped(data) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def input_file(field, make):
    return setin(f"inputs.0.{field}", lambda a, tmp: str(make(a, tmp)))


def model_file(field, make):
    return setin(f"models.0.{field}", lambda a, tmp: str(make(a, tmp)))


def write(name, content):
    def make(a, tmp):
        p = tmp / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return p
    return make


def boxes(content):
    return input_file("crop_boxes", write("boxes.txt", content))


def landmarks(content, frames=CLIP_FRAMES):
    def mutate(data, a, tmp):
        data["inputs"][0].pop("crop_boxes")
        data["inputs"][0]["landmarks"] = str(lms_folder(tmp / "lms", frames, content))
    return mutate


def good_box_lines(a, n=CLIP_FRAMES):
    return a.boxes.read_text().splitlines()[:n]


def boxes_with(line_index, line):
    def mutate(data, a, tmp):
        lines = good_box_lines(a)
        lines[line_index] = line
        p = tmp / "boxes.txt"
        p.write_text("\n".join(lines) + "\n")
        data["inputs"][0]["crop_boxes"] = str(p)
    return mutate


def gate(**g):
    return setin("gates", [{"field": "psnr_mean", "op": ">=", "value": 10, **g}])


def both(*mutations):
    def mutate(data, a, tmp):
        for m in mutations:
            m(data, a, tmp)
    return mutate


CASES = {
    # suite files: structure, keys, types
    "unknown top-level key": suite_case(setin("colour", "red"), r"colour: unknown key 'colour'"),
    "unknown model key": suite_case(setin("models.0.weights", "x"), r"models\[0\]\.weights: unknown key"),
    "missing models": suite_case(lambda d, a, t: d.pop("models"), r"models: required field is missing"),
    "models is a string": suite_case(setin("models", "ref"), r"models: "),
    "video file missing": suite_case(setin("inputs.0.video", "nope.mkv"), r"inputs\[0\]\.video: file not found"),
    "duplicate key erases gates": suite_case(raw(lambda d, a, t: dumped({**d, "gates": [
        {"field": "psnr_mean", "op": ">=", "value": 99}]}) + "gates: []\n"), r"line \d+: duplicate key 'gates'"),
    "duplicate nested key": suite_case(raw(lambda d, a, t: dumped(d).replace(
        "  min_seconds: 0\n", "  min_seconds: 0\n  min_seconds: 5\n")), r"duplicate key 'min_seconds'"),
    "not UTF-8": suite_case(raw(lambda d, a, t: dumped(d).encode() + b"description: caf\xe9\n"), r"not UTF-8"),
    "binary garbage": suite_case(raw(lambda d, a, t: bytes(range(256)) * 4), r"s\.yaml"),
    "NUL bytes in text": suite_case(raw(lambda d, a, t: dumped(d) + "description: a\x00b\n"), r"s\.yaml.*YAML"),
    "YAML syntax error": suite_case(raw(lambda d, a, t: "name: x\nmodels: [\n  - a: b\n"), r"s\.yaml:\d+: not valid"),
    "top level is a list": suite_case(raw(lambda d, a, t: "- a\n- b\n"), r"expected a mapping"),
    "empty file": suite_case(raw(lambda d, a, t: ""), r"expected a mapping"),
    "name with a slash": suite_case(setin("name", "a/b"), r"name: String should match pattern"),
    "both feature sources": suite_case(setin("models.0.audio_features", lambda a, t: str(a.audio)),
                                       r"models\[0\]: .*exactly one of audio_encoder"),
    "no box source": suite_case(lambda d, a, t: d["inputs"][0].pop("crop_boxes"), r"exactly one of crop_boxes"),
    "duplicate model names": suite_case(lambda d, a, t: d["models"].append(dict(d["models"][0])),
                                        r"names must be unique"),
    "external without command": suite_case(setin("backends.0.kind", "external"), r"needs a command"),
    "parity pair unknown model": suite_case(setin("parity", {"pairs": [{"reference": {"model": "ref", "backend": "cpu"},
                                                                      "candidate": {"model": "x", "backend": "cpu"}}]}),
                                            r"parity pair names x"),
    "channel order typo": suite_case(setin("contract", {"channel_order": "rbg"}), r"contract\.channel_order"),
    "mask box outside": suite_case(setin("contract", {"mask_box": [5, 5, 400, 310]}), r"mask_box .* does not fit"),
    # non-finite and absurd numbers
    "contract fps inf": suite_case(raw(lambda d, a, t: dumped(d) + "contract: {fps: .inf}\n"), r"contract\.fps: .*finite"),
    "contract fps 1e400": suite_case(raw(lambda d, a, t: dumped(d) + "contract: {fps: 1e400}\n"), r"contract\.fps"),
    "contract fps too high": suite_case(setin("contract", {"fps": 25000}), r"contract\.fps: .*less than or equal"),
    "ref_level_db NaN": suite_case(raw(lambda d, a, t: dumped(d) + "contract: {ref_level_db: .nan}\n"),
                                   r"contract\.ref_level_db: .*finite"),
    "min_seconds inf": suite_case(raw(lambda d, a, t: dumped({k: v for k, v in d.items() if k != "timing"})
                                      + "timing: {min_seconds: .inf}\n"), r"timing\.min_seconds: .*finite"),
    "min_seconds a day": suite_case(setin("timing.min_seconds", 86400), r"timing\.min_seconds: .*less than or equal"),
    "warmup negative": suite_case(setin("timing.warmup", -1), r"timing\.warmup"),
    "batch size zero": suite_case(setin("timing.batch_sizes", [0]), r"timing\.batch_sizes\[0\]"),
    "timeout a century": suite_case(both(setin("backends.0.kind", "external"), setin("backends.0.command", ["x"]),
                                         setin("backends.0.timeout_seconds", 3e9)), r"backends\[0\]\.timeout_seconds"),
    "gate value NaN": suite_case(raw(lambda d, a, t: dumped(d) + "gates: [{field: psnr_mean, op: '>=', value: .nan}]\n"),
                                 r"gates\[0\]\.value: .*finite"),
    # gates and backends that name nothing
    "gate unknown field": suite_case(gate(field="psnr_meen"), r"gates\[0\]\.field: unknown field 'psnr_meen'"),
    "gate model filter": suite_case(gate(models=["nobody"]), r"gates\[0\]\.models: 'nobody' match no model"),
    "gate backend filter": suite_case(gate(backends=["gpu"]), r"gates\[0\]\.backends: 'gpu' match no backend"),
    "gate input filter": suite_case(gate(inputs=["other"]), r"gates\[0\]\.inputs: 'other' match no input"),
    "provider typo": suite_case(setin("backends.0.provider", "CPUExecutionProviderr"),
                                r"backends\[0\]\.provider: unknown ONNX Runtime provider 'CPUExecutionProviderr'.*known: "),
    "provider typo at run": suite_case(setin("backends.0.provider", "CPUExecutionProviderr"),
                                       r"unknown ONNX Runtime provider", command="run"),
    "baseline gate without baseline": suite_case(setin("gates", [{"field": "psnr_mean", "max_drop": 1}]),
                                                 r"names none", command="run"),
    "baseline folder missing": suite_case(both(setin("gates", [{"field": "psnr_mean", "max_drop": 1}]),
                                               setin("baseline", "no_such_baseline")), r"no_such_baseline",
                                          command="run"),
    "golden folder without manifest": suite_case(setin("golden", lambda a, t: str((t / "golden").mkdir() or t / "golden")),
                                                 r"golden.* holds no golden\.json", command="run"),
    # media
    "template cut at 60%": suite_case(input_file("video", lambda a, t: cut(a.clip, t / "cut.mkv", 0.6)),
                                      r"cut\.mkv: only \d+ of the 40 frames it claims decode", command="run"),
    "template garbled": suite_case(input_file("video", lambda a, t: garble(a.clip, t / "garbled.mkv")),
                                   r"garbled\.mkv: .*(damaged|only \d+ of)", command="run"),
    "template header only": suite_case(input_file("video", lambda a, t: write("head.mkv",
                                                                                    a.clip.read_bytes()[:HEADER_BYTES])(a, t)),
                                       r"head\.mkv", command="run"),
    "template not a video": suite_case(input_file("video", write("clip.mkv", "just text\n")), r"clip\.mkv",
                                       command="run"),
    "template empty": suite_case(input_file("video", write("clip.mkv", b"")), r"clip\.mkv", command="run"),
    "ground truth cut": suite_case(input_file("ground_truth", lambda a, t: cut(a.clip, t / "gt.mkv", 0.5)),
                                   r"ground truth .*gt\.mkv: only", command="run"),
    "ground truth other size": suite_case(input_file("ground_truth", lambda a, t: scaled_clip(a.clip, t / "gt.mkv")),
                                          r"gt\.mkv is 320x240, the output will be 640x480", command="run"),
    # (a copy: a ground truth that is the template itself is compared on its first frames without asking)
    "ground truth other length": suite_case(both(setin("metrics", {"trim_to_shortest": False}), input_file(
        "ground_truth", lambda a, t: write("gt.mkv", a.clip.read_bytes())(a, t))),
        r"ground truth .*gt\.mkv has 40 frames, the run will generate 37", command="run"),
    "template at another fps": suite_case(setin("contract", {"fps": 30}), r"is 25 fps, the contract drives 30",
                                          command="run"),
    "audio garbage": suite_case(input_file("audio", write("a.wav", bytes(random.Random(1).randrange(256)
                                                                         for _ in range(5000)))),
                                r"cannot read audio .*a\.wav: \S", command="run"),
    "audio empty": suite_case(input_file("audio", write("a.wav", b"")), r"a\.wav", command="run"),
    "audio is text": suite_case(input_file("audio", write("a.wav", "hello\n")), r"cannot read audio .*a\.wav",
                                command="run"),
    "audio too short": suite_case(input_file("audio", lambda a, t: (sf.write(t / "a.wav", np.zeros(800), 16000),
                                                                    t / "a.wav")[1]),
                                  r"a\.wav: .*fewer than one window", command="run"),
    # models
    "generator not ONNX": suite_case(model_file("generator", write("g.onnx", "not a model")),
                                     r"cannot load generator .*g\.onnx", command="run"),
    "generator float16 inputs": suite_case(model_file("generator", lambda a, t: generator_model(
        t / "g.onnx", dtype=TensorProto.FLOAT16)), r"g\.onnx: input 'image' is tensor\(float16\)", command="run"),
    "generator wrong image shape": suite_case(model_file("generator", lambda a, t: generator_model(
        t / "g.onnx", image=(1, 6, 256, 256))), r"g\.onnx: .*(no input of shape|has shape)", command="run"),
    "generator wrong audio shape": suite_case(model_file("generator", lambda a, t: generator_model(
        t / "g.onnx", audio=(1, 32, 16, 8))), r"g\.onnx: input 'audio' has shape", command="run"),
    "generator wrong input name": suite_case(both(model_file("generator", lambda a, t: generator_model(
        t / "g.onnx", names=("img", "aud"))), setin("models.0.contract", {"image_input": "image"})),
        r"g\.onnx: no input of shape", command="run"),
    "generator wrong output": suite_case(model_file("generator", lambda a, t: generator_model(
        t / "g.onnx", out_channels=4)), r"g\.onnx: output 'output' has shape", command="run"),
    "audio encoder not ONNX": suite_case(model_file("audio_encoder", write("e.onnx", b"\x00\x01garbage")),
                                         r"cannot load audio encoder .*e\.onnx", command="run"),
    "features wrong shape": suite_case(both(lambda d, a, t: d["models"][0].pop("audio_encoder"), model_file(
        "audio_features", lambda a, t: (np.save(t / "f.npy", np.zeros((37, 5), np.float32)), t / "f.npy")[1])),
        r"f\.npy: shape \[37, 5\]", command="run"),
    "features not npy": suite_case(both(lambda d, a, t: d["models"][0].pop("audio_encoder"), model_file(
        "audio_features", write("f.npy", "text"))), r"f\.npy", command="run"),
    # crop boxes and landmarks
    "boxes inf": suite_case(boxes_with(3, "10 10 inf 300"), r"boxes\.txt:4: .*finite", command="run"),
    "boxes 1e400": suite_case(boxes_with(0, "10 10 1e400 300"), r"boxes\.txt:1: .*finite", command="run"),
    "boxes NaN": suite_case(boxes_with(5, "nan 10 300 300"), r"boxes\.txt:6: .*finite", command="run"),
    "boxes binary": suite_case(boxes(bytes(range(256))), r"boxes\.txt: binary content", command="run"),
    "boxes Latin-1": suite_case(boxes(b"10 10 300 300 # caf\xe9\n"), r"boxes\.txt:1: not UTF-8", command="run"),
    "boxes 3 columns": suite_case(boxes_with(2, "10 10 300"), r"boxes\.txt:3: expected a box of 4 numbers",
                                  command="run"),
    "boxes 5 columns": suite_case(boxes_with(2, "10 10 300 300 1"), r"boxes\.txt:3: expected a box of 4 numbers",
                                  command="run"),
    "boxes words": suite_case(boxes_with(7, "ten 10 300 300"), r"boxes\.txt:8: expected a box", command="run"),
    "boxes inverted": suite_case(boxes_with(1, "300 10 10 300"), r"boxes\.txt:2: .*x1 < x2", command="run"),
    "boxes outside frame": suite_case(boxes_with(0, "10 10 9000 300"), r"boxes\.txt: box 0 .* outside the 640x480",
                                      command="run"),
    "boxes too few": suite_case(boxes("10 10 300 300\n"), r"boxes\.txt: 1 crop boxes for a video of 40 frames",
                                command="run"),
    "boxes empty": suite_case(boxes(""), r"boxes\.txt: no crop boxes", command="run"),
    "landmarks none": suite_case(landmarks(good_lms, frames=0), r"lms: no \.lms files", command="run"),
    "landmarks inf": suite_case(landmarks(lambda i: good_lms(i).replace(b"450 200", b"inf 200")),
                                r"\d+\.lms: landmark coordinates must be finite", command="run"),
    "landmarks too few points": suite_case(landmarks(lambda i: b"1 2\n3 4\n"), r"\d+\.lms: 2 landmarks",
                                           command="run"),
    "landmarks binary": suite_case(landmarks(lambda i: bytes(range(256))), r"\d+\.lms: not a landmark file",
                                   command="run"),
}


def record_case(argv_of, expect):
    def build(a: Assets, tmp: Path):
        return argv_of(a, tmp), expect
    return build


CASES.update({
    # records: run folders, baselines, golden sets, history, sign-off
    "report: run.json cut": record_case(lambda a, t: ["report", str(fake_run(t / "run", '{"schema_version": 1, "ru'))],
                                        r"run\.json"),
    "report: run.json not UTF-8": record_case(lambda a, t: ["report", str(fake_run(t / "run", b'{"a": "\xff"}'))],
                                              r"run\.json"),
    "report: run.json edited": record_case(lambda a, t: ["report", str(fake_run(t / "run", '{"schema_version": 1}'))],
                                           r"run\.json|run"),
    "report: future schema": record_case(lambda a, t: ["report", str(fake_run(t / "run", json.dumps(
        {"schema_version": 999, "kind": "evalkit.run"})))], r"run\.json|999"),
    "report: no run folder": record_case(lambda a, t: ["report", str(t / "missing")], r"missing"),
    "compare: not runs": record_case(lambda a, t: ["compare", str(fake_run(t / "a", "[]")),
                                                   str(fake_run(t / "b", "[]")), "--out", str(t / "out")], r"run"),
    "baseline set: damaged run": record_case(lambda a, t: ["baseline", "set", str(fake_run(t / "run", "{]")),
                                                           "--dir", str(t / "out")], r"run\.json"),
    "suite baseline damaged": suite_case(both(setin("gates", [{"field": "psnr_mean", "max_drop": 1}]),
                                              setin("baseline", lambda a, t: str(fake_run(t / "base", "{oops")))),
                                         r"base", command="run"),
    "golden manifest damaged": suite_case(setin("golden", lambda a, t: str(
        ((t / "golden").mkdir(), (t / "golden" / "golden.json").write_text("{nope"), t / "golden")[2])),
        r"golden", command="run"),
    "history: DB garbage": record_case(lambda a, t: ["history", "--db", str(write("h.sqlite", bytes(range(256)) * 64)(
        a, t)), "--out", str(t / "out" / "h.html")], r"h\.sqlite"),
    "history: DB missing": record_case(lambda a, t: ["history", "--db", str(t / "none.sqlite")], r"none\.sqlite"),
    "signoff verify: garbage record": record_case(lambda a, t: ["signoff", "verify", str(write("so.json", "{x")(a, t)),
                                                                "--model", str(a.generator)], r"so\.json"),
    "metrics fidelity: missing file": record_case(lambda a, t: ["metrics", "fidelity", "--reference", str(t / "r.mkv"),
                                                                "--candidate", str(a.clip)], r"r\.mkv"),
    "metrics fidelity: bad roi": record_case(lambda a, t: ["metrics", "fidelity", "--reference", str(a.clip),
                                                           "--candidate", str(a.clip), "--roi", "1,2"], r"--roi"),
    # paths and file-system faults
    "suite path missing": record_case(lambda a, t: ["suite", "check", str(t / "none.yaml")], r"none\.yaml"),
    "suite path is a folder": record_case(lambda a, t: ["suite", "check", str(t)], r"suite file not found.*folder"),
    "suite path part of 300 bytes": record_case(lambda a, t: ["suite", "check", str(t / ("s" * 300) / "s.yaml")],
                                                r"s{300}"),
    "suite path through a symlink loop": record_case(lambda a, t: (os.symlink(t / "loop", t / "loop"),
                                                                   ["suite", "check", str(t / "loop" / "s.yaml")])[1],
                                                     r"loop"),
})


def fs_case(make_out, expect):
    """A valid suite whose output folder can't be made: fails after preflight, before generating."""
    def build(a: Assets, tmp: Path):
        path = tmp / "s.yaml"
        path.write_text(dumped(base_suite(a)))
        return ["run", str(path), "--out", str(make_out(tmp))], expect
    return build


CASES.update({
    "out is a file": fs_case(lambda t: ((t / "out").write_text("x"), t / "out")[1],
                             r"out.*(file stands where a folder|already exists)"),
    "out below a file": fs_case(lambda t: ((t / "out").write_text("x"), t / "out" / "sub")[1],
                                r"out.*a file stands where a folder is expected"),
    "out part of 300 bytes": fs_case(lambda t: t / "out" / ("o" * 300), r"name is too long"),
    "out through a symlink loop": fs_case(lambda t: ((t / "out").mkdir(), os.symlink(t / "out" / "l", t / "out" / "l"),
                                                     t / "out" / "l" / "x")[2], r"symbolic links"),
})

# Faults that a root-run test can't make with chmod: injected where evalkit creates the run folder.
INJECTED = {
    "out read-only (EROFS)": (errno.EROFS, r"read-only file system"),
    "out permission denied (EACCES)": (errno.EACCES, r"permission denied"),
    "disk full (ENOSPC)": (errno.ENOSPC, r"no space left"),
}

USAGE = {
    "unknown flag": ["run", "s.yaml", "--bogus"],
    "missing run folder argument": ["baseline", "set"],
    "unknown command": ["frobnicate"],
    "missing required option": ["metrics", "fidelity", "--candidate", "x"],
    "missing action": ["baseline"],
    "bad choice of action": ["suite", "validate"],
}


def snapshot(root: Path, exclude: Path) -> dict:
    """Every path under ``root`` (not following links) but ``exclude``: size and modification time."""
    facts = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != exclude]
        for name in dirnames + filenames:
            p = here / name
            if p == exclude:
                continue
            st = p.lstat()
            facts[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return facts


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def check_one_line(code: int, err: str, expect: str) -> None:
    assert code != 3, f"internal error (exit 3) instead of a user error:\n{err}"
    assert code == 2, f"exit {code}, expected 2:\n{err}"
    lines = error_lines(err)
    assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}:\n{err}"
    assert lines[0].startswith("evalkit: error: "), lines[0]
    assert re.search(expect, lines[0]), f"{expect!r} not in {lines[0]!r}"


def no_run_folder(out: Path) -> None:
    finished = [p for p in out.rglob("run.json")] if out.is_dir() else []
    assert not finished, f"a run folder appeared: {finished}"


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2(case, assets, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a stray relative path lands here, where the snapshot sees it
    argv, expect = CASES[case](assets, tmp_path)
    out = tmp_path / "out"
    before = snapshot(tmp_path, out)
    capsys.readouterr()
    code = main(argv)
    _, err = capsys.readouterr()
    check_one_line(code, err, expect)
    assert snapshot(tmp_path, out) == before, "files outside the output folder changed"
    no_run_folder(out)


@pytest.mark.parametrize("case", list(INJECTED))
def test_disk_faults_are_one_line_exit_2(case, assets, tmp_path, capsys, monkeypatch):
    code_no, expect = INJECTED[case]
    out = tmp_path / "out"
    real_mkdir = pathlib.Path.mkdir

    def failing_mkdir(self, *args, **kwargs):
        if str(self).startswith(str(out)):
            raise OSError(code_no, os.strerror(code_no), str(self))
        return real_mkdir(self, *args, **kwargs)

    path = tmp_path / "s.yaml"
    path.write_text(dumped(base_suite(assets)))
    before = snapshot(tmp_path, out)
    monkeypatch.setattr(pathlib.Path, "mkdir", failing_mkdir)
    code = main(["run", str(path), "--out", str(out)])
    _, err = capsys.readouterr()
    check_one_line(code, err, expect)
    assert str(out) in err
    assert snapshot(tmp_path, out) == before
    no_run_folder(out)


@pytest.mark.parametrize("case", list(USAGE))
def test_command_line_misuse_is_argparse_exit_2(case, tmp_path, capsys):
    before = snapshot(tmp_path, tmp_path / "out")
    with pytest.raises(SystemExit) as exc:
        main(USAGE[case])
    _, err = capsys.readouterr()
    assert exc.value.code == 2
    assert re.search(r"^evalkit[\w ]*: error: ", err, re.MULTILINE), err
    assert "Traceback" not in err
    assert snapshot(tmp_path, tmp_path / "out") == before


def test_suite_check_lists_every_problem_one_per_line(assets, tmp_path, capsys):
    data = base_suite(assets)
    data["gates"] = [{"field": "psnr_meen", "op": ">=", "value": 1}, {"field": "ssim_mean", "op": ">=", "value": 1,
                                                                     "models": ["nobody"]}]
    data["backends"][0]["provider"] = "CPUExecutionProviderr"
    path = tmp_path / "s.yaml"
    path.write_text(dumped(data))
    assert main(["suite", "check", str(path)]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 3 and all(line.startswith("evalkit: error: ") for line in lines), lines
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "and 2 more errors" in lines[0], lines


def test_optional_backend_with_an_unknown_provider_is_accepted(assets, tmp_path, capsys):
    data = base_suite(assets)
    data["backends"].append({"name": "plugin", "provider": "SomePluginExecutionProvider", "optional": True})
    path = tmp_path / "s.yaml"
    path.write_text(dumped(data))
    assert main(["suite", "check", str(path)]) == 0, capsys.readouterr().err


def test_internal_bugs_stay_exit_3(tmp_path, capsys, monkeypatch):
    """A KeyError inside evalkit is a bug, not bad input: exit 3 with the traceback."""
    import evalkit.config.suite

    def broken(*_):
        raise KeyError("bug")

    monkeypatch.setattr(evalkit.config.suite, "suite_json_schema", broken)
    assert main(["suite", "schema"]) == 3
    assert "Traceback" in capsys.readouterr().err


# --- real processes: signals and a closed pipe ---------------------------------------------------------

# `python -m evalkit` as a terminal starts it: Ctrl-C raises KeyboardInterrupt. A child inherits an ignored
# SIGINT, and Python then leaves it ignored; twice in eight runs of the tests in two xdist workers, the signal
# test's Ctrl-C went unanswered and the run finished with exit 0, as it would with SIGINT ignored.
AS_FROM_A_TERMINAL = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                      "runpy.run_module('evalkit', run_name='__main__')")


def _evalkit(*args, **kwargs) -> subprocess.Popen:
    """``evalkit ARGS`` in a child process, started as from a terminal (``AS_FROM_A_TERMINAL``)."""
    return subprocess.Popen([sys.executable, "-c", AS_FROM_A_TERMINAL, *args], cwd=REPO, stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.parametrize("signum, code, after_one", [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, False),
                                                    (signal.SIGTERM, 143, True)])
def test_signal_during_a_run_leaves_no_finished_folder(signum, code, after_one, assets, fixtures_dir, tmp_path):
    """Stopped before any combination finished: no folder is left. Stopped after one finished: the unfinished
    folder (.<run-id>.partial) is kept, and the message says how to complete it; never a run.json."""
    data = base_suite(assets)
    clip = fixtures_dir / "clip"
    # 4 s of speech: 97 frames per combination, seconds of generating and measuring, many times the 0.5 s the
    # signal waits (the whole 12.8 s clip only made the wait for the first combination longer).
    data["inputs"][0].update(video=str(clip / "talking_head.mkv"), ground_truth=str(clip / "talking_head.mkv"),
                             audio=str(short_audio(fixtures_dir, tmp_path, 4)), crop_boxes=str(clip / "crop_boxes.txt"))
    data["models"].append(dict(data["models"][0], name="ref2"))
    # without dlib's face metrics (what is checked is the process, its files and its message, as in
    # tests/test_faults.py): a combination is still seconds of generating and measuring
    data["metrics"]["face"] = False
    path = tmp_path / "s.yaml"
    path.write_text(dumped(data))
    out = tmp_path / "out"
    proc = _evalkit("run", str(path), "--out", str(out), "--workers", "1")
    started = "*/.*.partial/*/entry.json" if after_one else "*/.*.partial"
    try:
        deadline = time.monotonic() + 180
        while not list(out.glob(started)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before the signal: {proc.communicate()}"
        time.sleep(0.5)  # inside generation
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    assert not [p for p in out.rglob("run.json")], "a run folder was presented as finished"
    partial = list(out.glob("*/.*.partial"))
    if after_one:
        assert len(partial) == 1 and f"continue with: evalkit run --resume {partial[0]}" in err, err
        assert [p.parent.name for p in partial[0].glob("*/entry.json")] == ["ref__cpu__clip"]
    else:
        assert not partial, "the half-written run folder was left behind"
        assert "no run folder was completed" in err


def test_closed_stdout_pipe_exits_quietly(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "evalkit", "suite", "schema"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # like `| head` that has stopped reading
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert proc.returncode == 141, err
    assert err == "", err
