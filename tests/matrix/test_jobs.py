"""Each combination its own unit: a failure stays in its entry, finished entries are kept, a run resumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

import evalkit.matrix.jobs
from evalkit.matrix.jobs import ENTRY_JSON, STATE_JSON, TRACEBACK_TXT
from tests.conftest import write_suite
from tests.helpers import run_cli, tiny_suite

def only_run(out: Path) -> Path:
    runs = [p for p in (out / "tiny").iterdir() if (p / "run.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]


def fail_for(model: str, exc: BaseException, monkeypatch) -> None:
    """Make evalkit's own pipeline raise ``exc`` for ``model`` (in this process: run with --workers 1)."""
    real = evalkit.matrix.jobs.generate

    def generate(runner, audio, prep, folder, label="", **kwargs):
        if label.startswith(f"{model}/"):
            raise exc
        return real(runner, audio, prep, folder, label=label, **kwargs)

    monkeypatch.setattr(evalkit.matrix.jobs, "generate", generate)


def test_a_model_that_fails_at_inference_fails_its_entry_only(capsys, fixtures_dir, tmp_path):
    data = tiny_suite(fixtures_dir, tmp_path, models=("reference", "broken"), face=False)
    data["gates"] = [{"field": "psnr_mean", "op": ">=", "value": 0, "models": ["broken"]}]
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "run", write_suite(tmp_path / "s.yaml", data), "--out", out, "--workers", 1)
    assert code == 1, err  # an ONNX Runtime error: the user's model, not evalkit's bug
    assert "evalkit: error: broken/cpu/th/reconstruction failed: Fail: [ONNXRuntimeError]" in err
    run_dir = only_run(out)
    assert stdout.strip().splitlines()[-1] == str(run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    status = {e["model"]: e for e in record["runs"]}
    assert status["reference"]["status"] == "ok" and status["broken"]["status"] == "failed"
    assert "cannot be reshaped" in status["broken"]["reason"] and status["broken"]["errors"].startswith("user")
    assert not (run_dir / status["broken"]["folder"] / TRACEBACK_TXT).exists()
    for entry in record["runs"]:
        assert json.loads((run_dir / entry["folder"] / ENTRY_JSON).read_text())["status"] == entry["status"]
    (gate,) = record["gates"]  # it matched only the failed run: a failure, never a vacuous pass
    assert not gate["passed"] and "matched no finished run" in gate["message"]
    summary = pd.read_csv(run_dir / "summary.csv")
    assert sorted(summary["status"]) == ["failed", "ok"]
    assert "failed" in (run_dir / "report.html").read_text()


def test_a_bug_in_one_combination_exits_3_after_the_others_ran(capsys, fixtures_dir, tmp_path, monkeypatch):
    fail_for("copycat", KeyError("bug"), monkeypatch)
    out = tmp_path / "out"
    suite = write_suite(tmp_path / "s.yaml", tiny_suite(fixtures_dir, tmp_path, face=False))
    code, _, err = run_cli(capsys, "run", suite, "--out", out, "--workers", 1)
    assert code == 3, err
    assert "copycat/cpu/th/reconstruction failed: KeyError: 'bug' (a bug in evalkit" in err
    run_dir = only_run(out)
    entries = {e["model"]: e for e in json.loads((run_dir / "run.json").read_text())["runs"]}
    assert entries["reference"]["status"] == "ok"
    assert entries["copycat"]["errors"] == "internal: KeyError"
    assert "KeyError: 'bug'" in (run_dir / entries["copycat"]["traceback"]).read_text()


def test_signoff_of_a_model_whose_combination_hit_a_bug_exits_3(capsys, fixtures_dir, tmp_path, monkeypatch):
    data = tiny_suite(fixtures_dir, tmp_path, models=("candidate",), face=False)
    data["models"][0]["generator"] = str(fixtures_dir / "models" / "reference.onnx")
    data["gates"] = [{"field": "psnr_mean", "op": ">=", "value": 20}]
    fail_for("candidate", KeyError("bug"), monkeypatch)
    code, stdout, err = run_cli(capsys, "signoff", write_suite(tmp_path / "s.yaml", data), "--model",
                                fixtures_dir / "models" / "reference.onnx", "--out", tmp_path / "out")
    assert code == 3, err  # not 1: the model did not miss a criterion, evalkit failed to measure it
    assert "sign-off FAIL" in stdout
    assert "candidate/cpu/th/reconstruction failed: KeyError: 'bug' (a bug in evalkit" in err


def test_an_interrupted_run_keeps_what_finished_and_resumes(capsys, fixtures_dir, tmp_path, monkeypatch):
    suite = write_suite(tmp_path / "s.yaml", tiny_suite(fixtures_dir, tmp_path, face=False))
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        fail_for("copycat", KeyboardInterrupt(), patch)  # Ctrl-C while the second combination generates
        code, _, err = run_cli(capsys, "run", suite, "--out", out, "--workers", 1)
    assert code == 130, err
    (partial,) = (out / "tiny").glob(".*.partial")
    assert f"1 of 2 combinations finished and are kept in {partial}; continue with: evalkit run --resume " \
           f"{partial}" in err
    kept = json.loads((partial / "reference__cpu__th" / ENTRY_JSON).read_text())
    state = json.loads((partial / STATE_JSON).read_text())
    assert state["suite_path"] == str(suite.resolve()) and state["pid"] is None

    code, stdout, _ = run_cli(capsys, "runs", "partial", out)
    assert code == 0 and f"{partial}  stopped" in stdout and "1 of 2 combinations finished" in stdout
    spare = tmp_path / "spare" / "tiny" / partial.name
    shutil.copytree(partial, spare)

    original = suite.read_text()
    suite.write_text(original + "# changed\n")
    code, _, err = run_cli(capsys, "run", "--resume", partial)
    assert code == 2 and err.count("\n") == 1 and "the suite" in err and "changed since run" in err, err
    suite.write_text(original)

    code, stdout, err = run_cli(capsys, "run", "--resume", partial)
    assert code == 0, err
    assert "1 of 2 combinations already finished" in err and "reference on cpu" not in err  # not run again
    run_dir = Path(stdout.strip().splitlines()[-1])
    assert run_dir == partial.parent / state["run_id"] and not partial.exists()
    record = json.loads((run_dir / "run.json").read_text())
    assert [e["status"] for e in record["runs"]] == ["ok", "ok"]
    assert record["created_utc"] == state["created_utc"]
    assert record["runs"][0]["generate_seconds"] == kept["generate_seconds"]

    code, stdout, _ = run_cli(capsys, "runs", "partial", tmp_path / "spare", "--remove")
    assert code == 0 and "removed" in stdout and not spare.exists()


def test_a_combination_runs_with_one_blas_thread():
    from threadpoolctl import threadpool_info, threadpool_limits

    from evalkit.matrix.jobs import one_blas_thread

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):  # as a library caller's process may have it
        assert blas_threads() == {2}, "numpy's BLAS is not visible to threadpoolctl"
        with one_blas_thread():
            assert blas_threads() == {1}
        assert blas_threads() == {2}


def test_a_run_still_running_is_told_from_a_reused_pid(capsys, tmp_path):
    """A .partial folder's writer is running only if its pid lives and is the same process (its recorded start):
    a pid given to another process after a crash (here: this test's own) reads as stopped, and may be removed; a
    run really running is never removed, and `--resume` refuses it."""
    import os
    import socket

    from evalkit.matrix.jobs import STATE_KIND, process_started

    def partial(name: str, **state) -> Path:
        folder = tmp_path / "out" / "tiny" / f".{name}.partial"
        folder.mkdir(parents=True)
        (folder / STATE_JSON).write_text(json.dumps({"kind": STATE_KIND, "run_id": name, "combinations": 2,
                                                     "host": socket.gethostname(), "pid": os.getpid(), **state}))
        return folder

    mine = partial("running", pid_started=process_started(os.getpid()))
    reused = partial("crashed", pid_started=process_started(1))  # another process's start: the pid was reused
    code, stdout, _ = run_cli(capsys, "runs", "partial", tmp_path / "out", "--remove")
    assert code == 0 and f"{mine}  running" in stdout and f"{reused}  removed" in stdout, stdout
    assert mine.is_dir() and not reused.exists()
    code, _, err = run_cli(capsys, "run", "--resume", mine)
    assert code == 2 and err.count("\n") == 1, err
    assert f"run running is still running (process {os.getpid()} on this machine)" in err, err
