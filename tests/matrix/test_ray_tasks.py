"""The Ray executor on a real local Ray cluster, on loopback only.

Three of the demo suite's models (on 1.5 s of speech) run locally and, through the command line, as Ray tasks; the
quality columns of the two summaries must be equal. To show that the tasks got their files through Ray's
object store and not from the caller's paths, the suite's input folder is moved away as soon as the driver says
it has shipped them, and put back only when every task has finished. A SyncTalk_2D dataset input (frames as
images, read through a frame list) does the same. One cluster for both tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.config.suite import load_suite
from evalkit.run import run_suite
from tests.conftest import demo_suite_data, short_audio, write_suite
from tests.helpers import assert_same_quality

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason='Ray is not installed (pip install "evalkit[ray]")')

LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray's switch that keeps a node on 127.0.0.1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """A one-node Ray cluster with 2 CPUs on 127.0.0.1 for this file's tests, stopped afterwards whatever they
    did."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if "ray" in sys.modules:  # read by Ray at import: a Ray imported earlier in this process must see it too
            patch.setattr(sys.modules["ray"]._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
        ray = str(Path(sys.executable).with_name("ray"))
        env = {**os.environ, **LOOPBACK}
        port = _free_port()
        started = subprocess.run([ray, "start", "--head", "--num-cpus", "2", "--port", str(port),
                                  "--include-dashboard=false", "--disable-usage-stats"],
                                 env=env, capture_output=True, text=True, timeout=180)
        try:
            assert started.returncode == 0, started.stderr
            yield f"127.0.0.1:{port}"
        finally:
            subprocess.run([ray, "stop"], env=env, capture_output=True, timeout=180)


def run_on_ray_with_inputs_away(suite: Path, inputs: Path, out: Path, address: str, env: dict) -> tuple[Path, list]:
    """`evalkit run SUITE --executor ray` in a driver process; ``inputs`` is moved away as soon as the driver
    says it has shipped the files, and put back once every task has finished. (run folder, driver's lines)"""
    away = inputs.with_name(inputs.name + "-away")
    lines = []
    command = [sys.executable, "-m", "evalkit", "run", str(suite), "--out", str(out), "--executor", "ray",
               "--ray-address", address]
    with subprocess.Popen(command, env={**os.environ, **LOOPBACK, **env}, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as driver:
        for line in driver.stderr:  # the driver's progress, as it happens
            lines.append(line.rstrip("\n"))
            if line.startswith("shipped "):  # the driver has put the files into the object store
                inputs.rename(away)
            elif line.startswith("comparing backends"):  # every task has finished
                away.rename(inputs)
        stdout = driver.stdout.read()
    assert driver.returncode == 0, "\n".join(lines[-20:])
    assert inputs.is_dir()
    return Path(stdout.strip().splitlines()[-1]), lines


def test_ray_tasks_get_their_files_through_ray_and_match_a_local_run(ray_cluster, fixtures_dir, tmp_path):
    """Three of the demo suite's models (three tasks for the cluster's two CPUs; on 1.5 s of its speech, with a
    short latency pass: the comparison is of quality, not speed; without the face metrics, which the dataset
    test below measures through Ray) with
    `evalkit run --executor ray --ray-address`:
    every task finds its inputs through Ray (the suite's files are moved away once the driver has shipped
    them), and the summary equals a local run's."""
    inputs = tmp_path / "inputs"  # every file the suite names, in one folder that can be moved away
    shutil.copytree(fixtures_dir / "models", inputs / "models")
    shutil.copytree(fixtures_dir / "clip", inputs / "clip")
    data = demo_suite_data(inputs)
    # reference, copycat and mobile-unet: the demo's other three are generators of the same kind (a small ONNX
    # file, shipped and run the same way), which six tasks ran twice over without checking anything more
    data["models"] = [m for m in data["models"] if m["name"] in ("reference", "copycat", "mobile-unet")]
    # 1.5 s (35 frames): every column a 2 s run fills is filled (sync and video lag too; at 1 s they are empty)
    data["inputs"][0]["audio"] = str(short_audio(inputs, inputs, 1.5))
    # without dlib's landmarks and identity (a third of each of the 12 combinations' CPU time): what is checked
    # here is where the tasks' files come from and that the numbers equal a local run's; the dataset test below
    # keeps the face metrics on, so a Ray task that measures faces is still run and compared
    data["metrics"] = {"trim_to_shortest": True, "face": False}
    data["store_full_frames"] = False
    # the shortest latency pass (no batch of 4, 2 timed runs on 2 inputs): the timing columns are not compared
    data["timing"] = {"warmup": 1, "min_timed_frames": 2, "min_seconds": 0, "timing_inputs": 2, "batch_sizes": [1]}
    suite = write_suite(tmp_path / "demo.yaml", data)
    local = run_suite(load_suite(suite), out=tmp_path / "local", log=lambda *_: None, workers=1)

    remote, lines = run_on_ray_with_inputs_away(suite, inputs, tmp_path / "ray", ray_cluster, {})
    # three generators, the audio encoder, the video (also the ground truth: shipped once), the speech, the boxes
    assert any(line.startswith("shipped 7 input files") for line in lines), lines
    assert sum(line.startswith("finished ") and line.endswith("on 127.0.0.1") for line in lines) == 3, lines
    assert_same_quality(local, remote)
    for model in ("reference", "copycat", "mobile-unet"):
        folder = f"{model}__cpu__talking_head"
        assert sorted(p.name for p in (remote / folder).iterdir()) == sorted(p.name for p in (local / folder).iterdir())


def test_a_dataset_input_travels_through_ray(ray_cluster, fixtures_dir, tmp_path, monkeypatch):
    """A SyncTalk_2D dataset input (JPEG frames, landmarks, aud.wav) as a Ray task: the frame list evalkit reads
    the frames through, every image it names and the landmark folder go through the object store (the dataset
    is moved away once the driver has shipped them), and the summary equals a local run's."""
    from tests.helpers import build_dataset
    from tests.helpers import dataset_suite_data as dataset_suite

    cache = {"EVALKIT_CACHE": str(tmp_path / "cache")}  # the frame lists: this test's own
    monkeypatch.setenv("EVALKIT_CACHE", cache["EVALKIT_CACHE"])
    inputs = tmp_path / "inputs"
    dataset = build_dataset(inputs / "may", fixtures_dir)
    suite = write_suite(tmp_path / "ds.yaml", dataset_suite(fixtures_dir, [{"name": "may", "dataset": str(dataset)}]))
    local = run_suite(load_suite(suite), out=tmp_path / "local", log=lambda *_: None, workers=1)
    remote, lines = run_on_ray_with_inputs_away(suite, inputs, tmp_path / "ray", ray_cluster, cache)
    # the generator, the audio encoder, the frame list (also the ground truth: shipped once), aud.wav, landmarks
    assert any(line.startswith("shipped 5 input files and folders") for line in lines), lines
    assert_same_quality(local, remote)
    record = json.loads((remote / "run.json").read_text())
    assert record["runs"][0]["frames"] == 57 and record["runs"][0]["status"] == "ok"
