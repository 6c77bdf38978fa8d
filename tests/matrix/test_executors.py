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
from tests.helpers import assert_same_quality, run_cli, tiny_suite

def run_on_a_terminal(*args) -> tuple[int, str, str]:
    """``evalkit ARGS`` with stderr on a pseudo-terminal, as a person runs it: (exit code, stdout, stderr)."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import termios

    main_fd, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 24 x 120 (a new one is 0 x 0)
    proc = subprocess.Popen([sys.executable, "-m", "evalkit", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=terminal, text=True)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    out = proc.stdout.read()
    os.close(main_fd)
    return proc.wait(), out, b"".join(chunks).decode(errors="replace")


def test_two_workers_give_the_numbers_of_one(capsys, fixtures_dir, tmp_path):
    """... in the suite's order, though the workers take reference (7 KB) before copycat (0.4 KB), longest first;
    and on a terminal, a bar counts the combinations the workers finished (theirs show no bars)."""
    suite = write_suite(tmp_path / "s.yaml", tiny_suite(fixtures_dir, tmp_path, models=("copycat", "reference")))
    code, out, err = run_cli(capsys, "run", suite, "--out", tmp_path / "w1", "--workers", 1)
    assert code == 0 and "worker processes" not in err and "combinations:" not in err, err
    one = Path(out.strip().splitlines()[-1])
    code, out, err = run_on_a_terminal("run", suite, "--out", tmp_path / "w2", "--workers", 2)
    assert code == 0 and "running 2 combinations in 2 worker processes" in err, err
    assert re.search(r"combinations: +50%\|.*\| 1/2 ", err), err  # the bar, after the first one finished
    assert err.count("finished reference on cpu") == 1 and err.count("finished copycat on cpu") == 1, err
    two = Path(out.strip().splitlines()[-1])
    assert_same_quality(one, two)
    assert list(pd.read_csv(two / "summary.csv")["model"]) == ["copycat", "reference"]


def test_workers_take_the_longest_jobs_first(fixtures_dir, tmp_path):
    """Guessed length = seconds of speech x (1 + generator MB): mobile_unet (4.3 MB) on 6 s, 31.6; on 2 s, 10.5;
    reference (7 KB) on 6 s, 6.04; on 2 s, 2.01; copycat (0.4 KB) on 6 s, 6.002: just after reference."""
    data = tiny_suite(fixtures_dir, tmp_path, models=("reference", "copycat", "mobile_unet"))
    data["inputs"] = [dict(data["inputs"][0], name=f"s{seconds}",
                           audio=str(short_audio(fixtures_dir, tmp_path, seconds))) for seconds in (2, 6)]
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
