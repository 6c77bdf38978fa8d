"""The Ray executor on a real local Ray cluster, on loopback only.

The same small suite (2 models, 2 s of speech) runs locally and as Ray tasks; the quality columns of the two
summaries must be equal. To show that the tasks got their files through Ray's object store and not from the
caller's paths, the suite's input folder is moved away as soon as the driver says it has shipped them, and
put back only when every task has finished. About 50 s on a 2-core machine (Ray's start is ~12 s of it).
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
from tests.conftest import write_suite
from tests.matrix.test_executors import assert_same_quality
from tests.matrix.test_jobs import tiny_suite

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
    inputs = tmp_path / "inputs"  # every file the suite names, in one folder that can be moved away
    (inputs / "models").mkdir(parents=True)
    for name in ("reference.onnx", "copycat.onnx", "audio_encoder.onnx"):
        shutil.copy(fixtures_dir / "models" / name, inputs / "models")
    shutil.copytree(fixtures_dir / "clip", inputs / "clip")
    suite = write_suite(tmp_path / "s.yaml", tiny_suite(inputs, inputs))
    local = run_suite(load_suite(suite), out=tmp_path / "local", log=lambda *_: None, workers=1)

    away = tmp_path / "away"
    lines = []

    def log(line: str) -> None:
        lines.append(line)
        if line.startswith("shipped "):  # the driver has put the files into the object store
            inputs.rename(away)
        elif line.startswith("comparing backends"):  # every task has finished
            away.rename(inputs)

    remote = run_suite(load_suite(suite), out=tmp_path / "ray", log=log, executor="ray", ray_address=ray_cluster)
    assert any(line.startswith("shipped 6 input files") for line in lines), lines
    assert sum(line.startswith("finished ") and line.endswith("on 127.0.0.1") for line in lines) == 2, lines
    assert inputs.is_dir()
    assert_same_quality(local, remote)
    assert sorted(p.name for p in (remote / "reference__cpu__th").iterdir()) == \
        sorted(p.name for p in (local / "reference__cpu__th").iterdir())
