"""Executors: worker processes give the same quality numbers as one process; the defaults fit the machine."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from evalkit.config.suite import BackendSpec, SessionOptions, load_suite
from evalkit.matrix.executors import default_workers
from evalkit.matrix.jobs import longest_first, plan_jobs
from tests.conftest import short_audio, write_suite
from tests.matrix.test_jobs import run_cli, tiny_suite

TIMING = re.compile(r"fps|_ms$|latency|seconds|timed_inferences|warmup_iterations")
"""summary.csv columns that time something: they differ from run to run, every other column must not."""


def quality(run_dir: Path) -> pd.DataFrame:
    summary = pd.read_csv(run_dir / "summary.csv")
    return summary[[c for c in summary.columns if not TIMING.search(c)]]


def assert_same_quality(a: Path, b: Path) -> None:
    qa, qb = quality(a), quality(b)
    assert len(qa.columns) > 40 and qa["status"].eq("ok").all()  # the comparison covers the metrics
    pd.testing.assert_frame_equal(qa, qb)


def test_two_workers_give_the_numbers_of_one(capsys, fixtures_dir, tmp_path):
    suite = write_suite(tmp_path / "s.yaml", tiny_suite(fixtures_dir, tmp_path))
    dirs = []
    for workers in (1, 2):
        code, out, err = run_cli(capsys, "run", suite, "--out", tmp_path / f"w{workers}", "--workers", workers)
        assert code == 0, err
        assert ("in 2 worker processes" in err) == (workers == 2)
        dirs.append(Path(out.strip().splitlines()[-1]))
    assert_same_quality(*dirs)


def test_workers_take_the_longest_jobs_first(fixtures_dir, tmp_path):
    """Guessed length = seconds of speech x (1 + generator MB): mobile_unet (4.3 MB) on 6 s, 31.6; on 2 s, 10.5;
    reference (7 KB) on 6 s, 6.04; on 2 s, 2.01; copycat (0.4 KB) on 6 s, 6.002: just after reference."""
    data = tiny_suite(fixtures_dir, tmp_path, models=("reference", "copycat", "mobile_unet"))
    data["inputs"] = [dict(data["inputs"][0], name=f"s{seconds}", audio=str(short_audio(fixtures_dir, tmp_path, seconds)))
                      for seconds in (2, 6)]
    suite = load_suite(write_suite(tmp_path / "s.yaml", data)).suite
    order = [(job.model, job.input) for job in longest_first(suite, plan_jobs(suite))]
    assert order == [("mobile_unet", "s6"), ("mobile_unet", "s2"), ("reference", "s6"), ("copycat", "s6"),
                     ("reference", "s2"), ("copycat", "s2")]


def test_default_workers_fit_the_cores(monkeypatch):
    class Suite:
        backends = [BackendSpec(name="a", session_options=SessionOptions(intra_op_num_threads=2)),
                    BackendSpec(name="b", session_options=SessionOptions(intra_op_num_threads=1))]

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert default_workers(Suite) == 4  # the largest session takes 2 of 8 cores
    Suite.backends = [BackendSpec(name="a")]  # threads unset: ONNX Runtime takes every core
    assert default_workers(Suite) == 1
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    Suite.backends = [BackendSpec(name="a", session_options=SessionOptions(intra_op_num_threads=2))]
    assert default_workers(Suite) == 1  # the demo on this 2-core machine


def test_ray_executor_without_ray_says_how_to_install(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code, _, err = run_cli(capsys, "run", tmp_path / "any.yaml", "--executor", "ray", "--ray-address", "x:1")
    assert code == 2 and err.count("\n") == 1 and 'pip install "evalkit[ray]"' in err, err


def test_executor_options_are_checked_before_running(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", tmp_path / "any.yaml", "--workers", 0)
    assert code == 2 and "--workers 0" in err
    code, _, err = run_cli(capsys, "run", tmp_path / "any.yaml", "--ray-address", "x:1")
    assert code == 2 and "--ray-address is for --executor ray" in err
