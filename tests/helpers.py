"""Helpers shared by several test files: one home for each (before, test files imported them from each other
or kept copies). Fixtures live in tests/conftest.py; these are plain functions and constants.

- the command line in-process: ``run_cli``, ``one_error_line``
- a headless browser for the page checks: ``find_browser``
- tiny ONNX networks of a feature extractor's shapes: ``conv_net``, ``pooled_net``
- the matrix's small suite on the fixtures (and a generator that fails at inference): ``tiny_suite``
- what two runs must agree on: ``quality``, ``assert_same_quality``
- a SyncTalk_2D dataset folder made from the fixture clip: ``build_dataset``, ``write_landmarks``,
  ``dataset_suite_data``
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pandas as pd
import soundfile
from onnx import TensorProto, helper, numpy_helper

from evalkit.config.contract import Contract
from evalkit.fixtures.models import GraphBuilder
from evalkit.metrics.perceptual import FVD_CLIP
from evalkit.pipeline.crop import load_crop_boxes
from tests.conftest import decode, short_audio

# --- the command line, in-process ------------------------------------------------------------------------------


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """``evalkit ARGS`` through ``evalkit.cli.main``: (exit code, stdout, stderr)."""
    from evalkit.cli import main

    code = main(list(map(str, args)))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    """The one line of a user error on stderr (``evalkit: error: ...``); fails if there are more."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evalkit: error: "), err
    return lines[0]


# --- a headless browser ----------------------------------------------------------------------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """The first Chromium-like browser on PATH, or None (the callers skip, saying how to install one)."""
    return next((found for found in map(shutil.which, BROWSERS) if found), None)


# --- tiny ONNX networks of the feature extractors' shapes ------------------------------------------------------

def save_onnx(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def conv_net(path, w1, w2):
    """[N, 3, H, W] -> relu(conv3x3(x, w1)) and relu(conv3x3 stride 2 of that, w2): two feature maps, as LPIPS's
    AlexNet gives five."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["f1"]),
        helper.make_node("Conv", ["f1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["f2"]),
    ]
    graph = helper.make_graph(
        nodes, "lpips_tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("f1", TensorProto.FLOAT, ["N", None, None, None]),
         helper.make_tensor_value_info("f2", TensorProto.FLOAT, ["N", None, None, None])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    return save_onnx(graph, path)


def pooled_net(path, weight, axes, flat):
    """Mean over ``axes``, flattened to ``flat`` values a row, times ``weight``: a feature network's shape."""
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=list(axes), keepdims=0),
             helper.make_node("Reshape", ["m", "shape"], ["r"]),
             helper.make_node("MatMul", ["r", "w"], ["features"])]
    dims = ["N", 3, 299, 299] if flat == 3 else ["N", 3, FVD_CLIP, 224, 224]
    graph = helper.make_graph(
        nodes, "features_tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", None])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.array([-1, flat], np.int64), "shape")])
    return save_onnx(graph, path)


# --- the matrix's small suite on the fixtures ------------------------------------------------------------------

TINY_AUDIO_SECONDS = 2.0  # 52 frames: enough for every metric, a few seconds per combination


def broken_generator(contract: Contract) -> onnx.ModelProto:
    """Loads and declares the contract's shapes, but fails at its first inference: its Reshape asks for one
    column too many, through a shape that depends on the audio's values (so no check can see it before)."""
    g = GraphBuilder("broken")
    copy = g.op("Slice", "image", g.ints([0]), g.ints([3]), g.ints([1]))
    zero = g.op("Cast", g.op("ReduceSum", g.op("Mul", "audio", g.const(0.0)), keepdims=0), to=onnx.TensorProto.INT64)
    _, _, height, width = contract.output_shape
    shape = g.op("Add", g.ints([1, 3, height, width + 1]), zero)
    return g.model({"image": list(contract.image_input_shape), "audio": [1, *contract.audio_input_shape]},
                   {"output": (g.op("Reshape", copy, shape), list(contract.output_shape))},
                   "evalkit test model: fails at run time (Reshape to a wrong size)")


def tiny_suite(fixtures_dir: Path, folder: Path, models=("reference", "copycat"), face: bool = True) -> dict:
    """Fixture models (or "broken") on the fixture clip driven by its first 2 s of speech, one CPU thread.

    ``face=False``: without dlib's landmarks and identity descriptors (``metrics.face``), for tests that look at
    processes, files and messages rather than those numbers: they were a third of a combination's CPU time
    (4.7 of 14 CPU-s). tests/measure/test_field.py checks them in a run."""
    def generator(name):
        if name == "broken":
            path = folder / "broken.onnx"
            onnx.save(broken_generator(Contract()), path)
            return str(path)
        return str(fixtures_dir / "models" / f"{name}.onnx")

    clip = fixtures_dir / "clip"
    return {
        "name": "tiny",
        "models": [{"name": m, "generator": generator(m), "audio_encoder": str(fixtures_dir / "models" /
                                                                               "audio_encoder.onnx")} for m in models],
        "inputs": [{"name": "th", "video": str(clip / "talking_head.mkv"),
                    "audio": str(short_audio(fixtures_dir, folder, TINY_AUDIO_SECONDS)),
                    "crop_boxes": str(clip / "crop_boxes.txt"), "ground_truth": str(clip / "talking_head.mkv")}],
        "backends": [{"name": "cpu", "provider": "CPUExecutionProvider",
                      "session_options": {"intra_op_num_threads": 1}}],
        "metrics": {"trim_to_shortest": True, "face": face},
        "timing": {"warmup": 1, "min_timed_frames": 5, "min_seconds": 0},
    }


# --- what two runs of the same suite must agree on -------------------------------------------------------------

TIMING = re.compile(r"fps|_ms$|latency|seconds|timed_inferences|warmup_iterations|timing_")
"""summary.csv columns that time something: they differ from run to run, every other column must not."""


def quality(run_dir: Path) -> pd.DataFrame:
    summary = pd.read_csv(run_dir / "summary.csv")
    return summary[[c for c in summary.columns if not TIMING.search(c)]]


def assert_same_quality(a: Path, b: Path) -> None:
    qa, qb = quality(a), quality(b)
    assert len(qa.columns) > 40 and qa["status"].eq("ok").all()  # the comparison covers the metrics
    pd.testing.assert_frame_equal(qa, qb)


# --- a SyncTalk_2D dataset folder made from the fixture clip ---------------------------------------------------

LANDMARK_POINTS = 68  # any count above 52 works: the contract reads points 1, 31 and 52
DATASET_FRAMES = 60  # more than the 57 frames 2.4 s of audio drives: no ping-pong walk
DATASET_AUDIO_SECONDS = 2.4  # drives 57 frames
JPEG_QUALITY = 95


def write_landmarks(folder, boxes, points: int = LANDMARK_POINTS) -> None:
    """N.lms files whose points 1, 31 and 52 give ``boxes`` (square) by the contract's rule; the other points sit
    at the box centre."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes).tolist()):
        assert y2 - y1 == x2 - x1, "the contract's boxes from landmarks are square"
        pts = np.tile([(x1 + x2) / 2, (y1 + y2) / 2], (points, 1))
        pts[1] = (x1, y1 + (y2 - y1) / 2)
        pts[31] = (x2, y1 + (y2 - y1) / 2)
        pts[52] = ((x1 + x2) / 2, y1)
        (folder / f"{i}.lms").write_text("".join(f"{x:g} {y:g}\n" for x, y in pts))


def build_dataset(root, fixtures_dir, frames: int = DATASET_FRAMES):
    clip = fixtures_dir / "clip"
    (root / "full_body_img").mkdir(parents=True)
    for i, frame in enumerate(decode(clip / "talking_head.mkv", frames)):
        cv2.imwrite(str(root / "full_body_img" / f"{i}.jpg"), frame[:, :, ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    write_landmarks(root / "landmarks", load_crop_boxes(clip / "crop_boxes.txt")[:frames])
    wav, sr = soundfile.read(clip / "speech.wav", dtype="float32")
    soundfile.write(root / "aud.wav", wav[: int(DATASET_AUDIO_SECONDS * sr)], sr)
    return root


def dataset_suite_data(fixtures_dir, inputs: list[dict]) -> dict:
    models = fixtures_dir / "models"
    return {
        "name": "dataset", "inputs": inputs,
        "models": [{"name": "reference", "generator": str(models / "reference.onnx"),
                    "audio_encoder": str(models / "audio_encoder.onnx")}],
        "metrics": {"trim_to_shortest": True},
        "timing": {"warmup": 1, "min_timed_frames": 2, "min_seconds": 0.0},
        "parity": {"frames": 2},
    }
