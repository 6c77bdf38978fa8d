"""The Ray executor on a real local Ray cluster, on loopback only.

The demo suite (six models, on 2 s of speech) runs locally and, through the command line, as Ray tasks; the
quality columns of the two summaries must be equal. To show that the tasks got their files through Ray's
object store and not from the caller's paths, the suite's input folder is moved away as soon as the driver says it has shipped them, and
put back only when every task has finished. About 75 s on a 2-core machine (Ray's start and stop ~15 s).
"""

from __future__ import annotations

import importlib.util
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
from tests.matrix.test_executors import assert_same_quality

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason='Ray is not installed (pip install "evalkit[ray]")')

LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray's switch that keeps a node on 127.0.0.1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(monkeypatch):
    """A one-node Ray cluster with 2 CPUs on 127.0.0.1, stopped afterwards whatever the test did."""
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if "ray" in sys.modules:  # read by Ray at import: a Ray imported earlier in this process must see it too
        monkeypatch.setattr(sys.modules["ray"]._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
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


def test_ray_tasks_get_their_files_through_ray_and_match_a_local_run(ray_cluster, fixtures_dir, tmp_path):
    """The demo suite (its six models, on 2 s of its speech) with `evalkit run --executor ray --ray-address`:
    every task finds its inputs through Ray (the suite's files are moved away once the driver has shipped
    them), and the summary equals a local run's."""
    inputs = tmp_path / "inputs"  # every file the suite names, in one folder that can be moved away
    shutil.copytree(fixtures_dir / "models", inputs / "models")
    shutil.copytree(fixtures_dir / "clip", inputs / "clip")
    data = demo_suite_data(inputs)
    data["inputs"][0]["audio"] = str(short_audio(inputs, inputs, 2))
    data["metrics"] = {"trim_to_shortest": True}
    data["store_full_frames"] = False
    suite = write_suite(tmp_path / "demo.yaml", data)
    local = run_suite(load_suite(suite), out=tmp_path / "local", log=lambda *_: None, workers=1)

    away = tmp_path / "away"
    lines = []
    command = [sys.executable, "-m", "evalkit", "run", str(suite), "--out", str(tmp_path / "ray"),
               "--executor", "ray", "--ray-address", ray_cluster]
    with subprocess.Popen(command, env={**os.environ, **LOOPBACK}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as driver:
        for line in driver.stderr:  # the driver's progress, as it happens
            lines.append(line.rstrip("\n"))
            if line.startswith("shipped "):  # the driver has put the files into the object store
                inputs.rename(away)
            elif line.startswith("comparing backends"):  # every task has finished
                away.rename(inputs)
        out = driver.stdout.read()
    assert driver.returncode == 0, "\n".join(lines[-20:])
    remote = Path(out.strip().splitlines()[-1])
    # six generators, the audio encoder, the video (also the ground truth: shipped once), the speech, the boxes
    assert any(line.startswith("shipped 10 input files") for line in lines), lines
    assert sum(line.startswith("finished ") and line.endswith("on 127.0.0.1") for line in lines) == 6, lines
    assert inputs.is_dir()
    assert_same_quality(local, remote)
    for model in ("reference", "copycat", "mobile-unet"):
        folder = f"{model}__cpu__talking_head"
        assert sorted(p.name for p in (remote / folder).iterdir()) == sorted(p.name for p in (local / folder).iterdir())
